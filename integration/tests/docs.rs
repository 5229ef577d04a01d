//! The docs cannot drift from the code: every fenced block of README.md and
//! docs/*.md that holds something ocinet (or a tool the docs configure for
//! it) reads is parsed here by the parser that reads it for real, and every
//! link between the pages points at a page and heading that exist.
//!
//! A block says what it is in its info string, after the language:
//!
//! - ```` ```json check=KIND ````: parsed by the parser of KIND (see
//!   `check_block`); a failure names the file and the line of the fence;
//! - ```` ```toml skip=WHAT ````: knowingly not parsed (a file of another
//!   program that ocinet never reads, such as podman's containers.conf);
//! - ```` ```sh ````, `console`, `text`: commands, sessions and listings,
//!   not configuration.
//!
//! Anything else (a `json` block without `check=`, a block with no info
//! string, an unknown KIND) fails, so a new block is a decision, not an
//! accident. No kernel, runtime or network is touched: the parsers only read
//! files this test writes into a scratch directory (and run `promtool` on
//! its own files).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use clap::Parser;
use serde_json::Value;

use ocinet_exporter::{cli as exportercli, web_config as webconfig};

/// Languages that are commands, shell sessions or listings: never parsed.
const PLAIN: &[&str] = &["sh", "console", "text"];

/// The least number of blocks of each kind the docs must hold: a block
/// deleted or retagged by mistake is noticed here, not by a reader.
const AT_LEAST: &[(&str, usize)] = &[
    ("oci-config", 2),
    ("hooks-d", 2),
    ("ports-annotation", 2),
    ("cni-conflist", 2),
    ("cni-plugin", 1),
    ("cni-result", 1),
    ("network", 3),
    ("web-config", 1),
    ("prometheus-config", 1),
    ("promql", 1),
    ("ocinet-usage", 8),
    ("exporter-usage", 1),
    ("oci-state", 1),
    ("cluster-config", 1),
];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("integration/ lies in the workspace")
        .to_path_buf()
}

/// README.md and docs/*.md (not docs/notes/: research notes, kept as they
/// were written).
fn pages() -> Vec<PathBuf> {
    let root = repo();
    let mut out = vec![root.join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("docs/ exists")
        .map(|e| e.expect("docs/ entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    out.extend(docs);
    out
}

fn shown(path: &Path) -> String {
    path.strip_prefix(repo())
        .unwrap_or(path)
        .display()
        .to_string()
}

#[derive(Debug)]
struct Block {
    file: PathBuf,
    /// 1-based line of the opening fence.
    line: usize,
    lang: String,
    check: Option<String>,
    skip: Option<String>,
    text: String,
}

impl Block {
    fn at(&self) -> String {
        format!("{}:{}", shown(&self.file), self.line)
    }
}

/// The fenced blocks of one page. Fences may be indented (a block inside a
/// list item): the fence's indentation is taken off each line inside.
fn blocks(file: &Path) -> Vec<Block> {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let mut out = Vec::new();
    let mut open: Option<(usize, usize, String, String, Vec<String>)> = None;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        match open.as_mut() {
            None => {
                if let Some(rest) = trimmed.strip_prefix("```") {
                    let fence = "`".repeat(3 + rest.chars().take_while(|c| *c == '`').count());
                    let info = rest.trim_start_matches('`').trim().to_string();
                    open = Some((i + 1, indent, fence, info, Vec::new()));
                }
            }
            Some((start, ind, fence, info, body)) => {
                if trimmed.starts_with(fence.as_str()) && trimmed.trim_end() == fence.as_str() {
                    let mut words = info.split_whitespace();
                    let lang = words.next().unwrap_or("").to_string();
                    let (mut check, mut skip) = (None, None);
                    for w in words {
                        if let Some(k) = w.strip_prefix("check=") {
                            check = Some(k.to_string());
                        } else if let Some(k) = w.strip_prefix("skip=") {
                            skip = Some(k.to_string());
                        }
                    }
                    out.push(Block {
                        file: file.to_path_buf(),
                        line: *start,
                        lang,
                        check,
                        skip,
                        text: body.join("\n"),
                    });
                    open = None;
                } else {
                    let cut = line
                        .char_indices()
                        .take_while(|(n, c)| *n < *ind && *c == ' ')
                        .count();
                    body.push(line[cut..].to_string());
                }
            }
        }
    }
    if let Some((start, ..)) = open {
        panic!("{}:{start}: a fence that is never closed", shown(file));
    }
    out
}

/// A directory of this test's own, 0700 (the config loader refuses a
/// directory others can write), removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(what: &str) -> Scratch {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "ocinet-docs-{}-{}-{what}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        Scratch(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn json(b: &Block) -> Result<Value, String> {
    serde_json::from_str(&b.text).map_err(|e| format!("not JSON: {e}"))
}

/// An `ocinet ...` argument list, through the CLI's own definitions.
fn cli(args: &[String]) -> Result<ocinet::cli::Cli, String> {
    ocinet::cli::Cli::try_parse_from(args).map_err(|e| {
        format!(
            "args {args:?} are not an ocinet command line: {}",
            e.to_string().lines().next().unwrap_or("")
        )
    })
}

fn string_list(v: &Value, what: &str) -> Result<Vec<String>, String> {
    v.as_array()
        .ok_or(format!("{what} is not a list"))?
        .iter()
        .map(|a| {
            a.as_str()
                .map(str::to_string)
                .ok_or(format!("{what}: {a} is not a string"))
        })
        .collect()
}

/// A hook entry running ocinet: its args are an `ocinet hook STAGE` command
/// line whose stage is the one it is listed under.
fn check_hook_entry(entry: &Value, stage: &str) -> Result<(), String> {
    let path = entry["path"]
        .as_str()
        .ok_or("a hook entry without a path")?;
    if !Path::new(path).is_absolute() {
        return Err(format!("hook path {path:?} is not absolute"));
    }
    let args = string_list(&entry["args"], "hook args")?;
    let parsed = cli(&args)?;
    match parsed.command {
        ocinet::cli::Command::Hook(h) if h.stage.to_string() == stage => Ok(()),
        ocinet::cli::Command::Hook(h) => Err(format!(
            "a hook listed under {stage} runs `ocinet hook {}`",
            h.stage
        )),
        other => Err(format!(
            "a hook listed under {stage} runs {other:?}, not `ocinet hook`"
        )),
    }
}

/// config.json as the hook reads it (`oci::request`: the bundle, the
/// annotations resolved and validated, the network namespace), and each
/// of ocinet's hook entries as a command line.
fn oci_config(b: &Block) -> Result<(), String> {
    let doc = json(b)?;
    let dir = Scratch::new("bundle");
    std::fs::write(dir.0.join("config.json"), &b.text).map_err(|e| e.to_string())?;
    let st = ocinet::oci::OciState {
        id: "docs-check".into(),
        pid: Some(1),
        bundle: dir.0.clone(),
        annotations: HashMap::new(),
    };
    ocinet::oci::request(&st, &ocinet::cli::ContainerDefaults::default())
        .map_err(|e| e.to_string())?;
    let hooks = doc["hooks"].as_object().ok_or("no hooks object")?;
    let mut ours = 0;
    for (stage, entries) in hooks {
        for entry in entries
            .as_array()
            .ok_or(format!("hooks.{stage} is not a list"))?
        {
            if entry["path"]
                .as_str()
                .is_some_and(|p| p.ends_with("/ocinet"))
            {
                check_hook_entry(entry, stage)?;
                ours += 1;
            }
        }
    }
    if ours < 2 {
        return Err(format!(
            "{ours} ocinet hook entries: a setup and a poststop stage are needed"
        ));
    }
    Ok(())
}

/// A podman hooks.d file: its hook is an `ocinet hook STAGE` command line,
/// and the whole file is what `ocinet install-podman-hook` writes for the
/// same settings (its `path` is whichever binary ran the command).
fn hooks_d(b: &Block) -> Result<(), String> {
    let doc = json(b)?;
    let stages = string_list(&doc["stages"], "stages")?;
    let [stage] = stages.as_slice() else {
        return Err(format!(
            "stages {stages:?}: ocinet writes one stage per file"
        ));
    };
    check_hook_entry(&doc["hook"], stage)?;
    let args = string_list(&doc["hook"]["args"], "hook args")?;
    let hooks_dir = Scratch::new("hooks.d");
    // The block's settings, given to install-podman-hook: every flag after
    // `ocinet hook STAGE`.
    let mut install = vec![
        "ocinet".to_string(),
        "install-podman-hook".into(),
        "--hooks-dir".into(),
        hooks_dir.0.display().to_string(),
    ];
    install.extend(args.iter().skip(3).cloned());
    let parsed = cli(&install)?;
    let ocinet::cli::Command::InstallPodmanHook(a) = &parsed.command else {
        return Err("install-podman-hook did not parse as itself".into());
    };
    ocinet::commands::podman::install(&parsed.globals, a).map_err(|e| e.to_string())?;
    let written = hooks_dir.0.join(format!("ocinet-{stage}.json"));
    let mut want: Value = serde_json::from_slice(
        &std::fs::read(&written).map_err(|e| format!("{}: {e}", written.display()))?,
    )
    .map_err(|e| format!("{}: {e}", written.display()))?;
    want["hook"]["path"] = doc["hook"]["path"].clone();
    if want != doc {
        return Err(format!(
            "not what `ocinet install-podman-hook` writes for these settings:\n{}",
            serde_json::to_string_pretty(&want).unwrap_or_default()
        ));
    }
    Ok(())
}

/// Lines `io.ocinet.ports = "LIST"`, through the one parser of port specs.
fn ports_annotation(b: &Block) -> Result<(), String> {
    let mut n = 0;
    for line in b.text.lines().filter(|l| !l.trim().is_empty()) {
        let list = line
            .trim()
            .strip_prefix("io.ocinet.ports = ")
            .and_then(|v| v.strip_prefix('"')?.strip_suffix('"'))
            .ok_or(format!("{line:?} is not io.ocinet.ports = \"LIST\""))?;
        ocinet_common::model::ports::parse_list("io.ocinet.ports", list)
            .map_err(|e| e.to_string())?;
        n += 1;
    }
    if n == 0 {
        return Err("no io.ocinet.ports line".into());
    }
    Ok(())
}

/// One plugin's network configuration as libcni hands it over (the list's
/// cniVersion and name added), through the plugin's own parser.
fn cni_stdin(plugin: &Value, version: &Value, name: &Value) -> Result<(), String> {
    let mut conf = plugin.clone();
    let obj = conf.as_object_mut().ok_or("a plugin is not an object")?;
    obj.entry("cniVersion").or_insert(version.clone());
    obj.entry("name").or_insert(name.clone());
    let bytes = serde_json::to_vec(&conf).map_err(|e| e.to_string())?;
    ocinet_cni::conf::Conf::parse(&bytes).map_err(|e| format!("{e:?}"))?;
    Ok(())
}

fn cni_conflist(b: &Block) -> Result<(), String> {
    let doc = json(b)?;
    let list: rscni_types::types::NetConfList =
        serde_json::from_value(doc.clone()).map_err(|e| format!("not a conflist: {e}"))?;
    if list.name.is_empty() {
        return Err("a conflist without a name".into());
    }
    let plugins = doc["plugins"].as_array().ok_or("no plugins list")?;
    let ours: Vec<&Value> = plugins.iter().filter(|p| p["type"] == "ocinet").collect();
    if ours.is_empty() {
        return Err("no plugin of type ocinet".into());
    }
    for p in ours {
        cni_stdin(p, &doc["cniVersion"], &doc["name"])?;
    }
    Ok(())
}

/// One plugin object of a conflist, shown on its own.
fn cni_plugin(b: &Block) -> Result<(), String> {
    let doc = json(b)?;
    if doc["type"] != "ocinet" {
        return Err(format!("type {} is not ocinet", doc["type"]));
    }
    let name = doc.get("network").cloned().unwrap_or(Value::from("docs"));
    cni_stdin(&doc, &Value::from("1.0.0"), &name)
}

/// A result as a runtime reads it (the spec's shape, rscni-types' type,
/// which is what ocinet renders results from).
fn cni_result(b: &Block) -> Result<(), String> {
    let doc = json(b)?;
    let r: rscni_types::types::CNIResult =
        serde_json::from_value(doc).map_err(|e| format!("not a CNI result: {e}"))?;
    if r.interfaces.is_empty() || r.ips.is_empty() {
        return Err("a result without interfaces or ips".into());
    }
    Ok(())
}

/// A network definition, saved where `--config-dir` keeps it and read back
/// by the loader every command uses (parse, then the checks of `network
/// create`).
fn network(b: &Block) -> Result<(), String> {
    let doc = json(b)?;
    let name = doc["name"].as_str().ok_or("a definition without a name")?;
    let dir = Scratch::new("config");
    let nets = dir.0.join("networks");
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&nets)
        .map_err(|e| e.to_string())?;
    let file = nets.join(format!("{name}.json"));
    std::fs::write(&file, &b.text).map_err(|e| e.to_string())?;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| e.to_string())?;
    match ocinet_common::store::networks::ConfigDir::new(&dir.0).load(name) {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err("the loader found no definition".into()),
        Err(e) => Err(e.to_string()),
    }
}

fn web_config(b: &Block) -> Result<(), String> {
    let dir = Scratch::new("web");
    let file = dir.0.join("web.yml");
    std::fs::write(&file, &b.text).map_err(|e| e.to_string())?;
    webconfig::WebConfig::load(&file).map(|_| ())
}

fn promtool(args: &[&str], file: &Path) -> Result<(), String> {
    let out = Command::new("promtool")
        .args(args)
        .arg(file)
        .output()
        .map_err(|e| format!("promtool (scripts/install-deps.sh installs it): {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "promtool {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

fn prometheus_config(b: &Block) -> Result<(), String> {
    let dir = Scratch::new("prometheus");
    let file = dir.0.join("prometheus.yml");
    std::fs::write(&file, &b.text).map_err(|e| e.to_string())?;
    promtool(&["check", "config", "--syntax-only"], &file)
}

/// A block of PromQL expressions (comments and blank lines between them, a
/// continued expression indented), each made a recording rule and checked
/// by `promtool check rules`, which parses every expression.
fn promql(b: &Block) -> Result<(), String> {
    let mut exprs: Vec<String> = Vec::new();
    let mut continues = false;
    for line in b.text.lines() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continues = false;
            continue;
        }
        if continues && line.starts_with(char::is_whitespace) {
            let last = exprs.last_mut().expect("a continued expression");
            last.push(' ');
            last.push_str(t);
        } else {
            exprs.push(t.to_string());
        }
        continues = true;
    }
    if exprs.is_empty() {
        return Err("no expression".into());
    }
    let rules: Vec<Value> = exprs
        .iter()
        .enumerate()
        .map(|(i, e)| serde_json::json!({"record": format!("docs:expr_{i}"), "expr": e}))
        .collect();
    let file_doc = serde_json::json!({"groups": [{"name": "docs", "rules": rules}]});
    let dir = Scratch::new("promql");
    // YAML is a superset of JSON: promtool reads the file as it is.
    let file = dir.0.join("rules.yml");
    std::fs::write(&file, file_doc.to_string()).map_err(|e| e.to_string())?;
    promtool(&["check", "rules"], &file)
}

/// Command lines of `program` (a synopsis or examples): each subcommand
/// and each `--flag` must be one the CLI's definitions (`root`) have, so a
/// flag renamed or removed in the code cannot stay in the docs. A line
/// ending in `\`, and an indented line after a command line, continue it;
/// comments and lines of other programs are not read. `--a.{b,c}` is
/// `--a.b` and `--a.c`, as a shell expands it.
fn usage(b: &Block, program: &str, mut root: clap::Command) -> Result<(), String> {
    root.build();
    // One entry per command line; `None` for another program's, whose
    // continuation lines are its own too.
    let mut lines: Vec<Option<String>> = Vec::new();
    let mut joining = false;
    for raw in b.text.lines() {
        let code = match raw.find(" #") {
            Some(i) => &raw[..i],
            None if raw.trim_start().starts_with('#') => "",
            None => raw,
        };
        let continued = code.trim_end().ends_with('\\');
        let code = code.trim_end().trim_end_matches('\\').trim();
        let indented = raw.starts_with(char::is_whitespace);
        if joining || (indented && !code.is_empty() && !lines.is_empty()) {
            if let Some(Some(last)) = lines.last_mut() {
                last.push(' ');
                last.push_str(code);
            }
        } else if code.starts_with(&format!("{program} ")) {
            lines.push(Some(code.to_string()));
        } else if !code.is_empty() {
            lines.push(None);
        }
        joining = continued;
    }
    let lines: Vec<String> = lines.into_iter().flatten().collect();
    if lines.is_empty() {
        return Err(format!("no `{program}` command line"));
    }
    for line in &lines {
        let tokens: Vec<String> = line
            .split_whitespace()
            .map(|t| {
                t.trim_matches(|c| matches!(c, '[' | ']' | '(' | ')' | ','))
                    .trim_end_matches("...")
                    .trim_end_matches(']')
                    .to_string()
            })
            .filter(|t| !t.is_empty())
            .collect();
        let mut cmd = &root;
        let mut path = vec![program.to_string()];
        let mut descending = true;
        let mut i = 1;
        while i < tokens.len() {
            let tok = &tokens[i];
            i += 1;
            if let Some(flag) = tok.strip_prefix("--") {
                let (flag, inline) = match flag.split_once('=') {
                    Some((n, _)) => (n, true),
                    None => (flag, false),
                };
                let names: Vec<String> = match flag.split_once('{') {
                    Some((head, rest)) => {
                        let (alts, tail) = rest.split_once('}').unwrap_or((rest, ""));
                        alts.split(',')
                            .map(|a| format!("{head}{a}{tail}"))
                            .collect()
                    }
                    None => vec![flag.to_string()],
                };
                let mut takes_values = false;
                for name in &names {
                    let arg = cmd
                        .get_arguments()
                        .find(|a| a.get_long() == Some(name.as_str()))
                        .ok_or(format!(
                            "`{}` has no --{name} (in {line:?})",
                            path.join(" ")
                        ))?;
                    takes_values |= arg.get_action().takes_values();
                }
                if descending && !inline && takes_values {
                    i += 1;
                }
            } else if descending {
                match cmd.find_subcommand(tok.as_str()) {
                    Some(sub) => {
                        cmd = sub;
                        path.push(tok.clone());
                    }
                    None if cmd.has_subcommands() => {
                        return Err(format!(
                            "`{}` has no subcommand {tok:?} (in {line:?})",
                            path.join(" ")
                        ));
                    }
                    None => descending = false,
                }
            }
        }
    }
    Ok(())
}

/// The OCI state a runtime writes on the hook's stdin, through the hook's
/// own reading of it.
fn oci_state(b: &Block) -> Result<(), String> {
    ocinet::oci::read_state(b.text.as_bytes())
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// This host's cluster membership (`cluster.json`, what `ocinet cluster
/// join` writes), read by the loader the agent and the hook use.
fn cluster_config(b: &Block) -> Result<(), String> {
    let dir = Scratch::new("cluster");
    let file = dir.0.join("cluster.json");
    std::fs::write(&file, &b.text).map_err(|e| e.to_string())?;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| e.to_string())?;
    match ocinet_cluster::config::ClusterConfig::load(&dir.0) {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err("the loader found no cluster.json".into()),
        Err(e) => Err(e.to_string()),
    }
}

fn check_block(kind: &str, b: &Block) -> Option<Result<(), String>> {
    Some(match kind {
        "oci-state" => oci_state(b),
        "cluster-config" => cluster_config(b),
        "ocinet-usage" => {
            use clap::CommandFactory;
            usage(b, "ocinet", ocinet::cli::Cli::command())
        }
        "exporter-usage" => {
            use clap::CommandFactory;
            usage(b, "ocinet-exporter", exportercli::Cli::command())
        }
        "oci-config" => oci_config(b),
        "hooks-d" => hooks_d(b),
        "ports-annotation" => ports_annotation(b),
        "cni-conflist" => cni_conflist(b),
        "cni-plugin" => cni_plugin(b),
        "cni-result" => cni_result(b),
        "network" => network(b),
        "web-config" => web_config(b),
        "prometheus-config" => prometheus_config(b),
        "promql" => promql(b),
        _ => return None,
    })
}

#[test]
fn every_config_block_parses_with_ocinets_own_parsers() {
    let mut failures = Vec::new();
    let mut checked: BTreeMap<String, usize> = BTreeMap::new();
    let (mut plain, mut skipped) = (0, 0);
    for page in pages() {
        for b in blocks(&page) {
            match (&b.check, &b.skip) {
                (Some(kind), _) => match check_block(kind, &b) {
                    Some(Ok(())) => *checked.entry(kind.clone()).or_default() += 1,
                    Some(Err(e)) => failures.push(format!("{} (check={kind}): {e}", b.at())),
                    None => failures.push(format!("{}: unknown check={kind}", b.at())),
                },
                (None, Some(why)) => {
                    eprintln!("{}: skipped knowingly ({why})", b.at());
                    skipped += 1;
                }
                (None, None) if PLAIN.contains(&b.lang.as_str()) => plain += 1,
                (None, None) => failures.push(format!(
                    "{}: a ```{} block that says neither check=KIND nor skip=WHAT \
                     (or is not one of {PLAIN:?})",
                    b.at(),
                    b.lang
                )),
            }
        }
    }
    eprintln!("checked {checked:?}; {skipped} skipped knowingly; {plain} commands and listings");
    for (kind, least) in AT_LEAST {
        let n = checked.get(*kind).copied().unwrap_or(0);
        if n < *least {
            failures.push(format!(
                "only {n} block(s) of check={kind} parsed, at least {least} expected"
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// GitHub's anchor for a heading: lower case, punctuation but `-` and `_`
/// dropped, spaces made `-`.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == '-' || *c == '_' || *c == ' ')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// Headings and `<a id>` anchors of a page, outside its code blocks.
fn anchors(page: &Path) -> HashSet<String> {
    let text = std::fs::read_to_string(page).unwrap_or_default();
    let mut out = HashSet::new();
    let mut fence = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fence = !fence;
            continue;
        }
        if fence {
            continue;
        }
        if let Some(h) = line.strip_prefix('#') {
            out.insert(slug(h.trim_start_matches('#')));
        }
        let mut rest = line;
        while let Some(i) = rest.find("<a id=\"") {
            rest = &rest[i + 7..];
            if let Some(end) = rest.find('"') {
                out.insert(rest[..end].to_string());
            }
        }
    }
    out
}

/// Pages other parts of the project write (the package's and the
/// dashboard's): linked from here before they land, checked once they do.
const WRITTEN_ELSEWHERE: &[&str] = &["docs/install.md", "docs/monitoring.md"];

#[test]
fn every_link_between_pages_resolves() {
    let mut failures = Vec::new();
    let mut n = 0;
    for page in pages() {
        let text = std::fs::read_to_string(&page).expect("page");
        let mut fence = false;
        for (i, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("```") {
                fence = !fence;
                continue;
            }
            if fence {
                continue;
            }
            let mut rest = line;
            while let Some(at) = rest.find("](") {
                rest = &rest[at + 2..];
                let Some(end) = rest.find(')') else { break };
                let target = &rest[..end];
                rest = &rest[end..];
                if target.contains("://") || target.starts_with("mailto:") {
                    continue;
                }
                let (file, anchor) = match target.split_once('#') {
                    Some((f, a)) => (f, Some(a)),
                    None => (target, None),
                };
                let dest = if file.is_empty() {
                    page.clone()
                } else {
                    page.parent().expect("page dir").join(file)
                };
                let dest = std::fs::canonicalize(&dest).unwrap_or(dest);
                let at = format!("{}:{}", shown(&page), i + 1);
                n += 1;
                if !dest.exists() {
                    let rel = shown(&dest);
                    if WRITTEN_ELSEWHERE.contains(&rel.as_str()) {
                        eprintln!("{at}: {rel} is not here yet (written elsewhere)");
                    } else {
                        failures.push(format!("{at}: link to {target}: {rel} does not exist"));
                    }
                    continue;
                }
                if let Some(a) = anchor {
                    if dest.extension().is_some_and(|e| e == "md") && !anchors(&dest).contains(a) {
                        failures.push(format!("{at}: link to {target}: no heading #{a} there"));
                    }
                }
            }
        }
    }
    assert!(n > 50, "only {n} links found: is the scanner broken?");
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

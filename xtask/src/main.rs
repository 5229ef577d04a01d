//! `cargo run -p xtask -- gen OUT`: the package's man pages (`OUT/man/*.1`,
//! one per binary and one per subcommand, as `git-commit(1)`) and shell
//! completions (`OUT/completions/{bash,zsh,fish}/`), generated from the same
//! clap definitions the binaries parse, so a flag is written once.
//! `scripts/package.sh` runs it before `cargo deb`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::CommandFactory;
use clap_complete::Shell;

#[derive(Debug, thiserror::Error)]
enum Error {
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("usage: xtask gen OUT_DIR (got {0:?})")]
    Usage(Vec<String>),
}

/// Every binary the package installs, by its command line.
fn commands() -> Vec<clap::Command> {
    vec![
        ocinet::cli::Cli::command(),
        ocinet_dns::cli::Cli::command(),
        ocinet_proxy::cli::Cli::command(),
        ocinet_exporter::cli::Cli::command(),
    ]
}

fn mkdir(p: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(p).map_err(|source| Error::Write {
        path: p.to_path_buf(),
        source,
    })
}

fn generate(out: &Path) -> Result<(), Error> {
    let man = out.join("man");
    mkdir(&man)?;
    let cmds = commands();
    // `ocinet dns` and `ocinet proxy` (status verbs) would be pages named
    // like the resolver's and the proxy's own binaries, which ocinet(1)'s
    // list of subcommands then points at: the binaries keep those names,
    // and their pages get a section listing the group's verbs, whose own
    // pages (`ocinet-dns-status.1`) remain.
    let binaries: Vec<String> = cmds.iter().map(|c| c.get_name().to_string()).collect();
    let mut shadowed: Vec<(String, clap::Command)> = Vec::new();
    for cmd in cmds {
        let mut built = cmd.clone().disable_help_subcommand(true);
        built.build();
        let own = built.get_name().to_string();
        let mut todo = vec![built];
        while let Some(c) = todo.pop() {
            todo.extend(c.get_subcommands().filter(|s| !s.is_hide_set()).cloned());
            // Subcommands carry no version of their own: the page footer
            // names the package's.
            let page = clap_mangen::Man::new(c.clone().version(env!("CARGO_PKG_VERSION")));
            let file = page.get_filename();
            if file != format!("{own}.1") && binaries.iter().any(|b| file == format!("{b}.1")) {
                shadowed.push((file, c.clone()));
                continue;
            }
            let path = man.join(file);
            let mut buf = Vec::new();
            page.render(&mut buf).map_err(|source| Error::Write {
                path: path.clone(),
                source,
            })?;
            std::fs::write(&path, buf).map_err(|source| Error::Write { path, source })?;
        }
        for (shell, dir, file) in [
            (Shell::Bash, "bash", cmd.get_name().to_string()),
            (Shell::Zsh, "zsh", format!("_{}", cmd.get_name())),
            (Shell::Fish, "fish", format!("{}.fish", cmd.get_name())),
        ] {
            let dir = out.join("completions").join(dir);
            mkdir(&dir)?;
            let path = dir.join(file);
            let mut buf = Vec::new();
            let mut c = cmd.clone();
            let name = c.get_name().to_string();
            clap_complete::generate(shell, &mut c, name, &mut buf);
            std::fs::write(&path, buf).map_err(|source| Error::Write { path, source })?;
        }
    }
    for (file, group) in shadowed {
        let path = man.join(file);
        let mut page = std::fs::read_to_string(&path).map_err(|source| Error::Write {
            path: path.clone(),
            source,
        })?;
        page.push_str(&format!(
            ".SH \"{}\"\n{}\n",
            roff(&group.get_bin_name().unwrap_or_default().to_uppercase()),
            roff(&format!(
                "`{}` (a subcommand of ocinet(1)): {}.",
                group.get_bin_name().unwrap_or_default(),
                group.get_about().map(|a| a.to_string()).unwrap_or_default()
            ))
        ));
        for verb in group.get_subcommands().filter(|s| !s.is_hide_set()) {
            page.push_str(&format!(
                ".TP\n{}(1)\n{}\n",
                roff(verb.get_display_name().unwrap_or_default()),
                roff(&verb.get_about().map(|a| a.to_string()).unwrap_or_default())
            ));
        }
        std::fs::write(&path, page).map_err(|source| Error::Write { path, source })?;
    }
    Ok(())
}

/// Text for a roff line: backslashes and hyphens escaped, and no line
/// starting with a control character.
fn roff(text: &str) -> String {
    let escaped = text.replace('\\', "\\e").replace('-', "\\-");
    if escaped.starts_with('.') || escaped.starts_with('\'') {
        format!("\\&{escaped}")
    } else {
        escaped
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.as_slice() {
        [verb, out] if verb == "gen" => generate(Path::new(out)),
        _ => Err(Error::Usage(args.clone())),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

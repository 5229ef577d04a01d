//! `ocinet install-podman-hook`: podman's hooks.d. One file per stage,
//! because a hooks.d entry has one argument list and the stage is an
//! argument. Every setting goes into the args: podman runs poststop hooks
//! itself with an empty environment.

use ocinet_common::store::fsutil;
use ocinet_common::{Error, Result};
use serde_json::json;

use crate::cli::{ContainerDefaults, Globals, InstallPodmanHookArgs};

/// Containers opt in with any io.ocinet.* annotation.
const WHEN_ANNOTATION: &str = "^io\\.ocinet\\..*$";

fn defaults_args(d: &ContainerDefaults) -> Vec<String> {
    let mut out = Vec::new();
    let mut push = |flag: &str, v: &Option<String>| {
        if let Some(v) = v {
            out.push(flag.to_string());
            out.push(v.clone());
        }
    };
    push("--network", &d.network);
    push("--ip", &d.ip);
    push("--mac", &d.mac);
    push("--name", &d.name);
    for p in &d.publish {
        out.push("--publish".into());
        out.push(p.clone());
    }
    out
}

pub fn install(globals: &Globals, a: &InstallPodmanHookArgs) -> Result<String> {
    let (state_dir, config_dir, log_level) = (
        globals.state_dir.as_path(),
        globals.config_dir.as_path(),
        globals.log_level.as_str(),
    );
    let exe = std::env::current_exe().map_err(|e| Error::io("/proc/self/exe", e))?;
    for (flag, p) in [
        ("--state-dir", state_dir),
        ("--config-dir", config_dir),
        ("--hooks-dir", a.hooks_dir.as_path()),
    ] {
        if !p.is_absolute() {
            return Err(Error::invalid(
                flag,
                p.display(),
                "must be an absolute path (podman runs hooks from its own working directory)",
            ));
        }
    }
    std::fs::create_dir_all(&a.hooks_dir).map_err(|e| Error::io(&a.hooks_dir, e))?;
    let mut out = String::new();
    for stage in ["prestart", "poststop"] {
        let mut args: Vec<String> = vec!["ocinet".into(), "hook".into(), stage.into()];
        args.extend(["--state-dir".into(), state_dir.display().to_string()]);
        args.extend(["--config-dir".into(), config_dir.display().to_string()]);
        args.extend(["--log-level".into(), log_level.to_string()]);
        if stage == "prestart" {
            args.extend(defaults_args(&a.defaults));
        }
        let doc = json!({
            "version": "1.0.0",
            "hook": {"path": exe, "args": args},
            "when": {"annotations": {WHEN_ANNOTATION: ".*"}},
            "stages": [stage],
        });
        let path = a.hooks_dir.join(format!("ocinet-{stage}.json"));
        let mut data =
            serde_json::to_vec_pretty(&doc).map_err(|e| Error::Conflict(e.to_string()))?;
        data.push(b'\n');
        fsutil::write_atomic(&path, &data, fsutil::Durability::Persistent)?;
        // podman reads hooks.d as an ordinary user may: world-readable is fine
        // (write_atomic makes 0600).
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))
            .map_err(|e| Error::io(&path, e))?;
        out += &format!("{}\n", path.display());
    }
    Ok(out)
}

//! The exporter-toolkit web configuration file, the YAML every Prometheus
//! exporter takes with `--web.config.file`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebConfig {
    #[serde(default)]
    pub tls_server_config: Option<TlsServerConfig>,
    /// user -> bcrypt hash
    #[serde(default)]
    pub basic_auth_users: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsServerConfig {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

impl WebConfig {
    /// Load and check a config file; relative paths are relative to it, as
    /// in exporter-toolkit.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut cfg: WebConfig = if text.trim().is_empty() {
            WebConfig::default()
        } else {
            serde_yaml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?
        };
        let base = path.parent().unwrap_or(Path::new("."));
        if let Some(tls) = cfg.tls_server_config.as_mut() {
            tls.cert_file = base.join(&tls.cert_file);
            tls.key_file = base.join(&tls.key_file);
        }
        for (user, hash) in &cfg.basic_auth_users {
            if !hash.starts_with("$2") {
                return Err(format!(
                    "{}: basic_auth_users.{user}: not a bcrypt hash",
                    path.display()
                ));
            }
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<WebConfig, String> {
        let p = std::env::temp_dir().join(format!(
            "ocinet-webcfg-{}-{}.yml",
            std::process::id(),
            text.len()
        ));
        std::fs::write(&p, text).unwrap();
        let r = WebConfig::load(&p);
        std::fs::remove_file(&p).unwrap();
        r
    }

    #[test]
    fn parses_exporter_toolkit_files() {
        let c = load("tls_server_config:\n  cert_file: a.crt\n  key_file: /abs/a.key\nbasic_auth_users:\n  alice: $2y$10$abcdefghijklmnopqrstuv\n").unwrap();
        let tls = c.tls_server_config.unwrap();
        assert!(tls.cert_file.ends_with("a.crt") && tls.cert_file.is_absolute());
        assert_eq!(tls.key_file, PathBuf::from("/abs/a.key"));
        assert!(c.basic_auth_users.contains_key("alice"));
        assert!(load("").unwrap().tls_server_config.is_none());
    }

    #[test]
    fn rejects_unknown_keys_and_plain_passwords() {
        assert!(
            load("tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: x\n")
                .unwrap_err()
                .contains("client_auth_type")
        );
        assert!(load("basic_auth_users:\n  bob: hunter2\n")
            .unwrap_err()
            .contains("bob"));
        assert!(load("nonsense: 1\n").unwrap_err().contains("nonsense"));
    }
}

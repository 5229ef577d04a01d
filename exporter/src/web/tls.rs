use std::sync::Arc;

use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

use super::config::TlsServerConfig;

pub fn acceptor(cfg: &TlsServerConfig) -> Result<TlsAcceptor, String> {
    let read = |p: &std::path::Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
    let certs: Vec<CertificateDer<'static>> =
        rustls_pemfile::certs(&mut read(&cfg.cert_file)?.as_slice())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("{}: {e}", cfg.cert_file.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate found", cfg.cert_file.display()));
    }
    let key: PrivateKeyDer<'static> =
        rustls_pemfile::private_key(&mut read(&cfg.key_file)?.as_slice())
            .map_err(|e| format!("{}: {e}", cfg.key_file.display()))?
            .ok_or_else(|| format!("{}: no private key found", cfg.key_file.display()))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("{}: {e}", cfg.cert_file.display()))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

//! The server side of mTLS: our certificate, and the CA that client certificates must chain
//! to. Client certificates are optional at the TLS layer so that health probes can connect
//! without one; every gezinsdossier service then refuses calls without a registered one.

use std::path::Path;
use tonic::transport::{Certificate, Identity, ServerTlsConfig};

/// Makes *ring* the process's TLS crypto provider. Both of rustls' providers are compiled in
/// (the KurrentDB client brings aws-lc-rs), and rustls then refuses to guess; every place
/// that builds a TLS config calls this first. Later calls do nothing.
pub fn use_ring_crypto() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Fails only when a provider is already installed, which is the state we want.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Paths to the PEM files of the server's TLS setup.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TlsFiles {
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
    pub client_ca: std::path::PathBuf,
}

/// # Errors
/// An I/O error naming the file that could not be read.
pub fn server_tls_config(files: &TlsFiles) -> anyhow::Result<ServerTlsConfig> {
    use_ring_crypto();
    let read = |p: &Path| std::fs::read(p).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", p.display()));
    let identity = Identity::from_pem(read(&files.cert)?, read(&files.key)?);
    Ok(ServerTlsConfig::new()
        .identity(identity)
        .client_ca_root(Certificate::from_pem(read(&files.client_ca)?))
        .client_auth_optional(true))
}

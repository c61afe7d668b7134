//! Why the runtime refused to start. Once running, the runtime does not fail: link
//! problems are retried (and logged), command failures become `Failed` events.

use std::path::PathBuf;

/// A startup problem, naming the setting and what was expected.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("coordinator {url:?}: {reason}")]
    Coordinator { url: String, reason: String },
    #[error("ca_file {}: {reason}", path.display())]
    CaFile { path: PathBuf, reason: String },
    /// `field` is `tls.client_cert_file` or `tls.client_key_file`.
    #[error("{field} {}: {reason}", path.display())]
    ClientCert {
        field: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("token_file {}: {reason}", path.display())]
    TokenFile { path: PathBuf, reason: String },
    #[error("health_listen {addr}: {reason}")]
    HealthListen { addr: String, reason: String },
    #[error("backend {backend:?}: {reason}")]
    Backend { backend: String, reason: String },
}

//! The coordinator's outbound HTTPS client: rustls on ring (like the rest of the
//! workspace) verifying servers against the system's CA roots. Used for etcd's gateway
//! and notification webhooks.

use std::sync::Arc;
use std::time::Duration;

/// A client with `timeout` per request (connecting within at most 3 s of it); the error
/// says what could not be set up.
pub fn https_client(timeout: Duration) -> Result<reqwest::Client, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls_platform_verifier::Verifier::new(provider.clone())
        .map_err(|e| format!("cannot load the system's CA roots: {e}"))?;
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(3)))
        .tls_backend_preconfigured(tls)
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

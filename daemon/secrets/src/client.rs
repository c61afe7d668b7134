//! The HTTP side: one reqwest client per [`crate::Vault`] (rustls on ring, like kube
//! and tonic in this workspace), a cheap vaultrs client per call carrying the token of
//! the session making it, and the translation of vaultrs errors into [`Cause`]s.

use std::sync::Arc;
use std::time::Duration;

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use vaultrs::api::EndpointMiddleware;
use vaultrs::client::{VaultClient, VaultClientSettings};
use vaultrs::error::ClientError;

use crate::config::VaultConfig;
use crate::error::{Cause, Result, SecretsError};

/// Address, namespace and the shared HTTP client: everything a call needs but the token.
pub(crate) struct Connection {
    http: reqwest::Client,
    address: url::Url,
    namespace: Option<String>,
    timeout: Duration,
}

impl Connection {
    pub(crate) fn new(config: &VaultConfig) -> Result<Self> {
        let address = url::Url::parse(&config.address).map_err(|e| SecretsError::Config {
            key: "address".into(),
            reason: format!("{:?} is not a URL: {e}", config.address),
        })?;
        let timeout = Duration::from_secs(config.request_timeout_secs);
        let tls = tls_config(config)?;
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .tls_backend_preconfigured(tls)
            .build()
            .map_err(|e| SecretsError::Config {
                key: "address".into(),
                reason: format!("cannot build the HTTP client: {e}"),
            })?;
        Ok(Connection {
            http,
            address,
            namespace: config.namespace.clone(),
            timeout,
        })
    }

    /// A vaultrs client that sends `token` (empty: none, for logins).
    pub(crate) fn client(&self, token: &str) -> VaultClient {
        let base = self.address.as_str().trim_end_matches('/');
        VaultClient {
            http: rustify::clients::reqwest::Client::new(base, self.http.clone()),
            middle: EndpointMiddleware {
                token: token.to_string(),
                version: "v1".into(),
                wrap: None,
                namespace: self.namespace.clone(),
            },
            // Filled in for completeness: the calls made here read only `http` and
            // `middle`. Built literally so VAULT_* environment variables never leak in.
            settings: VaultClientSettings {
                address: self.address.clone(),
                ca_certs: Vec::new(),
                identity: None,
                timeout: Some(self.timeout),
                token: token.to_string(),
                verify: true,
                version: 1,
                wrapping: false,
                namespace: self.namespace.clone(),
                proxy: None,
            },
        }
    }
}

/// rustls with the ring provider. With `ca_file`, only its CAs are trusted (as with
/// `VAULT_CACERT`); otherwise the platform's verifier and roots.
fn tls_config(config: &VaultConfig) -> Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls_error = |reason: String| SecretsError::Config {
        key: if config.ca_file.is_some() {
            "ca_file"
        } else {
            "address"
        }
        .into(),
        reason,
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error(format!("TLS setup: {e}")))?;
    let config = match &config.ca_file {
        Some(path) => {
            let shown = path.display();
            let pem = std::fs::read(path).map_err(|e| tls_error(format!("cannot read {shown}: {e}")))?;
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| tls_error(format!("{shown}: bad PEM: {e}")))?;
                roots
                    .add(cert)
                    .map_err(|e| tls_error(format!("{shown}: not a usable CA certificate: {e}")))?;
            }
            if roots.is_empty() {
                return Err(tls_error(format!("{shown} holds no PEM certificate")));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        None => {
            let verifier = rustls_platform_verifier::Verifier::new(provider)
                .map_err(|e| tls_error(format!("cannot load the system's CA roots: {e}")))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verifier))
                .with_no_client_auth()
        }
    };
    Ok(config)
}

/// Sorts a vaultrs error into the classes operators act on. Only status codes,
/// Vault's `errors` strings and transport errors are kept: a response body may hold
/// secret data and is never quoted.
pub(crate) fn classify(err: &ClientError) -> Cause {
    use rustify::errors::ClientError as Rest;
    match err {
        ClientError::APIError { code, errors } => by_status(*code, errors),
        ClientError::RestClientError { source } => match source {
            Rest::ServerResponseError { code, .. } => by_status(*code, &[]),
            Rest::RequestError { source, .. } | Rest::ResponseError { source } => {
                Cause::Unreachable(error_chain(source.as_ref()))
            }
            Rest::ResponseParseError { .. } | Rest::ResponseConversionError { .. } => {
                Cause::Unexpected("the response is not the JSON the API documents".into())
            }
            other => Cause::Unexpected(other.to_string()),
        },
        ClientError::ResponseEmptyError | ClientError::ResponseDataEmptyError => {
            Cause::Unexpected("the response has no data".into())
        }
        ClientError::JsonParseError { .. } => {
            Cause::Unexpected("the response is not the JSON the API documents".into())
        }
        other => Cause::Unexpected(other.to_string()),
    }
}

fn by_status(code: u16, errors: &[String]) -> Cause {
    let message = errors
        .iter()
        .map(|e| e.trim().replace('\n', " "))
        .collect::<Vec<_>>()
        .join("; ");
    match code {
        403 => Cause::PermissionDenied,
        404 => Cause::MissingPath,
        503 if message.to_ascii_lowercase().contains("sealed") => Cause::Sealed,
        _ => Cause::Vault {
            status: code,
            message: if message.is_empty() {
                "(no error message)".into()
            } else {
                message
            },
        },
    }
}

/// `outer: inner: innermost`, for transport errors (which never carry secret data).
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![err.to_string()];
    let mut next = err.source();
    while let Some(e) = next {
        let s = e.to_string();
        if !parts.last().is_some_and(|p| p.contains(&s)) {
            parts.push(s);
        }
        next = e.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_causes() {
        let api = |code, errors: &[&str]| ClientError::APIError {
            code,
            errors: errors.iter().map(|s| s.to_string()).collect(),
        };
        assert_eq!(
            classify(&api(403, &["permission denied"])),
            Cause::PermissionDenied
        );
        assert_eq!(classify(&api(404, &[])), Cause::MissingPath);
        assert_eq!(classify(&api(503, &["Vault is sealed"])), Cause::Sealed);
        assert_eq!(
            classify(&api(500, &["1 error occurred:\n\t* internal\n"])),
            Cause::Vault {
                status: 500,
                message: "1 error occurred: \t* internal".into()
            }
        );
        assert_eq!(
            classify(&api(503, &[])),
            Cause::Vault {
                status: 503,
                message: "(no error message)".into()
            }
        );
    }

    #[test]
    fn a_parse_error_never_quotes_the_body() {
        let err = ClientError::RestClientError {
            source: rustify::errors::ClientError::ResponseParseError {
                source: std::io::Error::other("expected u64").into(),
                content: Some(r#"{"data":{"password":"CANARY"}}"#.into()),
            },
        };
        let cause = classify(&err);
        assert!(matches!(cause, Cause::Unexpected(_)));
        assert!(!format!("{cause} {cause:?}").contains("CANARY"));
    }

    #[test]
    fn a_missing_ca_file_names_the_key() {
        let config: VaultConfig = serde_yaml::from_str(
            "address: https://v:8200\nca_file: /nonexistent/ca.pem\nauth: {method: token, token: t}\n",
        )
        .unwrap();
        match Connection::new(&config) {
            Err(SecretsError::Config { key, reason }) => {
                assert_eq!(key, "ca_file");
                assert!(reason.contains("/nonexistent/ca.pem"), "{reason}");
            }
            Err(other) => panic!("{other}"),
            Ok(_) => panic!("a missing CA file was accepted"),
        }
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let config: VaultConfig = serde_yaml::from_str(&format!(
            "address: https://v:8200\nca_file: {}\nauth: {{method: token, token: t}}\n",
            path.display()
        ))
        .unwrap();
        assert!(
            matches!(Connection::new(&config), Err(SecretsError::Config { key, .. }) if key == "ca_file")
        );
    }
}

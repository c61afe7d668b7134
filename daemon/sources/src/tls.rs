//! Per-source TLS: `ca_file` (the roots that verify the source, instead of the
//! built-in ones) and `client_cert_file` + `client_key_file` (a client certificate for
//! sources that require mutual TLS). Read from their files at each fetch, so renewed
//! certificates are picked up, and checked once at start so a bad file stops convoyd
//! naming its key; handed to each HTTP client in its own form (ureq for chart
//! repositories, reqwest for OCI registries and git).

use std::path::Path;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::ChartSourceConfig;

/// The TLS material of one source, as PEM.
#[derive(Clone, Default)]
pub(crate) struct SourceTls {
    /// `ca_file`: the only roots trusted for this source.
    pub ca: Option<Vec<u8>>,
    /// `client_cert_file` and `client_key_file`.
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for SourceTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceTls")
            .field("ca", &self.ca.is_some())
            .field("identity", &self.identity.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl SourceTls {
    /// Reads and checks entry `i`'s files: errors name `chart_sources[i].KEY PATH`
    /// and what was expected.
    pub(crate) fn load(i: usize, s: &ChartSourceConfig) -> Result<SourceTls, String> {
        let at =
            |key: &str, path: &Path| format!("the coordinator's chart_sources[{i}].{key} {}", path.display());
        let read = |key: &str, path: &Path| {
            std::fs::read(path).map_err(|e| format!("{}: cannot read it: {e}", at(key, path)))
        };
        let certs = |key: &str, path: &Path, pem: &[u8]| {
            let certs = CertificateDer::pem_slice_iter(pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("{}: not PEM certificates: {e}", at(key, path)))?;
            if certs.is_empty() {
                return Err(format!(
                    "{}: no certificate in it (expected PEM `-----BEGIN CERTIFICATE-----` blocks)",
                    at(key, path)
                ));
            }
            Ok(certs)
        };
        let ca = match &s.ca_file {
            Some(path) => {
                let pem = read("ca_file", path)?;
                certs("ca_file", path, &pem)?;
                Some(pem)
            }
            None => None,
        };
        let identity = match (&s.client_cert_file, &s.client_key_file) {
            (Some(cert_path), Some(key_path)) => {
                let cert_pem = read("client_cert_file", cert_path)?;
                let chain = certs("client_cert_file", cert_path, &cert_pem)?;
                let key_pem = read("client_key_file", key_path)?;
                let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
                    format!(
                        "{}: not a PEM private key (PKCS#8, PKCS#1 or SEC1): {e}",
                        at("client_key_file", key_path)
                    )
                })?;
                let signer = rustls::crypto::ring::sign::any_supported_type(&key)
                    .map_err(|e| format!("{}: unusable private key: {e}", at("client_key_file", key_path)))?;
                rustls::sign::CertifiedKey::new(chain, signer)
                    .keys_match()
                    .map_err(|_| {
                        format!(
                            "{}: does not match the certificate of client_cert_file {}",
                            at("client_key_file", key_path),
                            cert_path.display()
                        )
                    })?;
                Some((cert_pem, key_pem))
            }
            _ => None,
        };
        Ok(SourceTls { ca, identity })
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.ca.is_none() && self.identity.is_none()
    }

    /// The client certificate and key in one PEM buffer, as reqwest takes them.
    fn identity_pem(&self) -> Option<Vec<u8>> {
        self.identity.as_ref().map(|(cert, key)| {
            let mut pem = cert.clone();
            pem.push(b'\n');
            pem.extend_from_slice(key);
            pem
        })
    }

    /// reqwest's form (OCI registries through oci-client, git through gix).
    pub(crate) fn reqwest_parts(
        &self,
    ) -> Result<(Option<Vec<reqwest::Certificate>>, Option<reqwest::Identity>), String> {
        let roots = self
            .ca
            .as_deref()
            .map(reqwest::Certificate::from_pem_bundle)
            .transpose()
            .map_err(|e| format!("ca_file: {e}"))?;
        let identity = self
            .identity_pem()
            .map(|pem| reqwest::Identity::from_pem(&pem))
            .transpose()
            .map_err(|e| format!("client certificate: {e}"))?;
        Ok((roots, identity))
    }

    /// An async reqwest client builder with this material.
    pub(crate) fn apply_async(
        &self,
        mut b: reqwest::ClientBuilder,
    ) -> Result<reqwest::ClientBuilder, String> {
        let (roots, identity) = self.reqwest_parts()?;
        if let Some(roots) = roots {
            b = b.tls_certs_only(roots);
        }
        if let Some(identity) = identity {
            b = b.identity(identity);
        }
        Ok(b)
    }

    /// convoy-chart's form (chart repositories).
    pub(crate) fn repo_tls(&self) -> Option<convoy_chart::repo::RepoTls> {
        (!self.is_empty()).then(|| convoy_chart::repo::RepoTls {
            ca_pem: self.ca.clone(),
            client_pem: self.identity.clone(),
        })
    }
}

/// A TLS failure said plainly: which side refused and what to check. `text` is the
/// client's error chain.
pub(crate) fn describe_tls_failure(text: &str) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    let refused_us = lower.contains("certificate required")
        || lower.contains("certificaterequired")
        || lower.contains("bad certificate")
        || lower.contains("badcertificate")
        || lower.contains("unknown ca")
        || lower.contains("unknownca")
        || lower.contains("handshake failure")
        || lower.contains("handshakefailure");
    let refused_them = lower.contains("invalid peer certificate") || lower.contains("unknownissuer");
    if refused_us {
        Some(format!(
            "the TLS handshake failed: the source refused the client certificate (check chart_sources client_cert_file/client_key_file for this source): {text}"
        ))
    } else if refused_them {
        Some(format!(
            "the TLS handshake failed: the source's certificate is not trusted (check chart_sources ca_file for this source): {text}"
        ))
    } else {
        None
    }
}

/// `e` with a hint when a source reached over TLS dropped the connection without
/// saying why: a server requiring a client certificate may close (or reset) it at or
/// right after the handshake, before its alert reaches the client (TLS 1.3 checks the
/// client certificate after the client's side of the handshake is done).
pub(crate) fn hint_dropped_connection(e: String) -> String {
    let lower = e.to_ascii_lowercase();
    let dropped = [
        "connection closed",
        "connection reset",
        "broken pipe",
        "unexpected eof",
        "peer closed connection",
    ]
    .iter()
    .any(|s| lower.contains(s));
    if dropped && !lower.contains("tls handshake failed") {
        format!(
            "{e} (the source closed the connection at or right after the TLS handshake, as one that requires a client certificate does without an accepted one: check chart_sources client_cert_file/client_key_file for this source)"
        )
    } else {
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_failures_are_said_plainly() {
        let refused =
            describe_tls_failure("error sending request: received fatal alert: CertificateRequired").unwrap();
        assert!(refused.contains("refused the client certificate"), "{refused}");
        let untrusted = describe_tls_failure("invalid peer certificate: UnknownIssuer").unwrap();
        assert!(untrusted.contains("ca_file"), "{untrusted}");
        assert!(describe_tls_failure("HTTP 404").is_none());
        let dropped = hint_dropped_connection("client error (Canceled): connection closed".into());
        assert!(dropped.contains("client_cert_file"), "{dropped}");
        assert_eq!(hint_dropped_connection("HTTP 500".into()), "HTTP 500");
        assert_eq!(hint_dropped_connection(refused.clone()), refused);
    }
}

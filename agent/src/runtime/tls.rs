//! TLS on the agent link: the coordinator's CA (`ca_file`) and, for a coordinator that
//! requires client certificates (convoyd's `tls.client_ca_file` without
//! `client_cert_optional`), the agent's own certificate and key.
//!
//! The certificate and key files are read at every connect (and once at startup, so a
//! bad file refuses the start): a certificate renewed in place (cert-manager, a
//! short-lived CA) is presented from the next connection on, without a restart.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

use crate::runtime::{RuntimeConfig, RuntimeError};

const CERT_KEY: &str = "tls.client_cert_file";
const KEY_KEY: &str = "tls.client_key_file";

/// The files of the client certificate the agent presents (mTLS). Holds paths only:
/// the private key is read when a connection is made and never kept here, so `Debug`
/// cannot show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    /// PEM certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// PEM private key of the leaf.
    pub key_file: PathBuf,
}

impl ClientIdentity {
    /// Reads both files, checking each holds what its setting promises. Errors name
    /// the setting and the file, never the content.
    fn load(&self) -> Result<Identity, RuntimeError> {
        let cert = read_pem(CERT_KEY, &self.cert_file, "CERTIFICATE-----", "a certificate")?;
        let key = read_pem(KEY_KEY, &self.key_file, "PRIVATE KEY-----", "a private key")?;
        Ok(Identity::from_pem(cert, key))
    }
}

/// Reads `path` and checks it holds a PEM block whose label ends with `label_end`
/// (`-----BEGIN CERTIFICATE-----`, `-----BEGIN EC PRIVATE KEY-----`).
fn read_pem(field: &'static str, path: &Path, label_end: &str, what: &str) -> Result<Vec<u8>, RuntimeError> {
    let err = |reason: String| RuntimeError::ClientCert {
        field,
        path: path.to_path_buf(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    if !has_pem_block(&pem, label_end) {
        return Err(err(format!(
            "expected {what} in PEM form (-----BEGIN ...{label_end}), found none"
        )));
    }
    Ok(pem)
}

/// Whether `pem` holds a block whose `-----BEGIN ...` line ends with `label_end`.
pub(crate) fn has_pem_block(pem: &[u8], label_end: &str) -> bool {
    String::from_utf8_lossy(pem).lines().any(|l| {
        let l = l.trim();
        l.starts_with("-----BEGIN ") && l.ends_with(label_end)
    })
}

/// The endpoint for one connection to the coordinator, with TLS when `ca_pem` is set
/// (https) and the client certificate when one is configured. Fails when a file is
/// unreadable, not PEM, or the key does not belong to the certificate.
pub(crate) fn endpoint(cfg: &RuntimeConfig, url: &str) -> Result<Endpoint, RuntimeError> {
    let coordinator = |reason: String| RuntimeError::Coordinator {
        url: url.to_string(),
        reason,
    };
    let ep = Endpoint::from_shared(url.to_string())
        .map_err(|e| coordinator(format!("not a valid URL: {e}")))?
        .connect_timeout(cfg.connect_timeout)
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(20))
        .keep_alive_while_idle(true);
    let Some(ca) = &cfg.ca_pem else {
        return match &cfg.client_identity {
            None => Ok(ep),
            Some(_) => Err(coordinator(format!(
                "a client certificate ({CERT_KEY}) is only presented over TLS: use https:// and ca_file"
            ))),
        };
    };
    // A CA file's unparsable certificates are skipped here (and trust nothing), so a
    // failure with a client certificate is that certificate's or its key's.
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca));
    if let Some(id) = &cfg.client_identity {
        tls = tls.identity(id.load()?);
    }
    ep.tls_config(tls).map_err(|e| {
        let why = super::link::error_chain(&e);
        match &cfg.client_identity {
            Some(id) => RuntimeError::ClientCert {
                field: CERT_KEY,
                path: id.cert_file.clone(),
                reason: format!(
                    "refused with {KEY_KEY} {} (does the key belong to the certificate?): {why}",
                    id.key_file.display()
                ),
            },
            None => coordinator(format!("TLS settings refused (ca_file): {why}")),
        }
    })
}

/// What a TLS alert the coordinator sent says about this agent's settings, from the
/// text of a connection or call error; None when the error carries no such alert.
/// The coordinator checks a client certificate only after the TLS 1.3 handshake, so
/// its refusal arrives as an alert on the first call rather than as a gRPC status.
pub(crate) fn refusal_hint(error_text: &str) -> Option<&'static str> {
    const ALERT: &str = "received fatal alert: ";
    let start = error_text.find(ALERT)? + ALERT.len();
    let alert = error_text[start..]
        .split(|c: char| !c.is_ascii_alphanumeric())
        .next()
        .unwrap_or_default();
    match alert {
        "CertificateRequired" => Some(
            "the coordinator requires a client certificate: set tls.client_cert_file and tls.client_key_file",
        ),
        "UnknownCA"
        | "BadCertificate"
        | "CertificateExpired"
        | "CertificateRevoked"
        | "CertificateUnknown"
        | "UnsupportedCertificate"
        | "AccessDenied" => Some(
            "the coordinator refused this agent's client certificate (tls.client_cert_file): it must be signed by \
             the CA of convoyd's tls.client_ca_file and be valid now",
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(name: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn config(identity: Option<ClientIdentity>) -> RuntimeConfig {
        let mut cfg = RuntimeConfig::new("https://convoyd:7443", "dev");
        cfg.ca_pem = Some(pair("ca").0.into_bytes());
        cfg.client_identity = identity;
        cfg
    }

    #[test]
    fn a_matching_certificate_and_key_make_an_endpoint() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = pair("agent");
        let id = ClientIdentity {
            cert_file: dir.path().join("agent.pem"),
            key_file: dir.path().join("agent-key.pem"),
        };
        std::fs::write(&id.cert_file, cert).unwrap();
        std::fs::write(&id.key_file, key).unwrap();
        endpoint(&config(Some(id)), "https://convoyd.test:7443").unwrap();
    }

    #[test]
    fn bad_files_are_refused_naming_the_setting_and_never_showing_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = pair("agent");
        let (_, other_key) = pair("other");
        let write = |name: &str, content: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, content).unwrap();
            p
        };
        let good_cert = write("agent.pem", &cert);
        let good_key = write("agent-key.pem", &key);
        let cases = [
            (
                ClientIdentity {
                    cert_file: write("swapped.pem", &key),
                    key_file: good_key.clone(),
                },
                "tls.client_cert_file",
                "expected a certificate in PEM form",
            ),
            (
                ClientIdentity {
                    cert_file: good_cert.clone(),
                    key_file: write("cert-as-key.pem", &cert),
                },
                "tls.client_key_file",
                "expected a private key in PEM form",
            ),
            (
                ClientIdentity {
                    cert_file: good_cert.clone(),
                    key_file: write("other-key.pem", &other_key),
                },
                "tls.client_cert_file",
                "does the key belong to the certificate?",
            ),
            (
                ClientIdentity {
                    cert_file: good_cert,
                    key_file: dir.path().join("gone.pem"),
                },
                "tls.client_key_file",
                "gone.pem",
            ),
        ];
        let secret = |pem: &str| pem.lines().nth(1).unwrap().to_string();
        for (id, field, want) in cases {
            let err = endpoint(&config(Some(id.clone())), "https://convoyd.test:7443")
                .unwrap_err()
                .to_string();
            assert!(err.starts_with(field) && err.contains(want), "{id:?}: {err}");
            assert!(
                !err.contains(&secret(&key)) && !err.contains(&secret(&other_key)),
                "{err}"
            );
            assert!(!format!("{:?}", config(Some(id))).contains(&secret(&key)));
        }
    }

    #[test]
    fn a_client_certificate_needs_tls() {
        let mut cfg = config(Some(ClientIdentity {
            cert_file: "/nonexistent/agent.pem".into(),
            key_file: "/nonexistent/agent-key.pem".into(),
        }));
        cfg.coordinator = "http://convoyd:7443".into();
        cfg.ca_pem = None;
        let err = endpoint(&cfg, &cfg.coordinator.clone()).unwrap_err().to_string();
        assert!(err.contains("only presented over TLS"), "{err}");
    }

    #[test]
    fn certificate_alerts_from_the_coordinator_name_the_settings_to_fix() {
        let missing = "status: Unknown, message: \"transport error\": connection error: \
                       received fatal alert: CertificateRequired";
        assert!(
            refusal_hint(missing)
                .unwrap()
                .contains("set tls.client_cert_file")
        );
        let rogue = "transport error: received fatal alert: UnknownCA";
        assert!(refusal_hint(rogue).unwrap().contains("tls.client_ca_file"));
        // Our own verdict on the coordinator's certificate is not the coordinator's
        // refusal, and neither is a plain network failure.
        assert_eq!(refusal_hint("invalid peer certificate: UnknownIssuer"), None);
        assert_eq!(refusal_hint("tcp connect error: Connection refused"), None);
        assert_eq!(refusal_hint("received fatal alert: HandshakeFailure"), None);
    }
}

//! The agent's configuration: one file (YAML or TOML), overridable by
//! `CONVOY_AGENT__<KEY>` environment variables (`__` between nesting levels), loaded
//! once into typed structs and validated before anything starts.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The environment-variable prefix for agent settings.
pub const ENV_PREFIX: &str = "CONVOY_AGENT";

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{source_name}: {message}")]
    Load { source_name: String, message: String },
    #[error("{source_name}: `{key}`: {reason}")]
    Invalid {
        source_name: String,
        key: String,
        reason: String,
    },
}

/// Everything `convoy-agent` is configured with.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// The coordinator's gRPC address (`https://convoyd.example:7443`), or several
    /// separated by commas for coordinators in high availability without a load
    /// balancer: tried in turn, the agent stays with the one that welcomes it.
    pub coordinator: String,
    /// The registry context this agent serves.
    pub context: String,
    /// A file holding this context's bearer token for the agent link.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// A PEM CA bundle to verify the coordinator's certificate (https only).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// The agent's own side of TLS: a client certificate for coordinators that
    /// require one (mTLS).
    #[serde(default)]
    pub tls: TlsSettings,
    /// `kubernetes` (the real cluster) or `simulated` (in memory, for demos and benchmarks).
    #[serde(default = "default_backend")]
    pub backend: String,
    /// A kubeconfig for the `kubernetes` backend; absent means in-cluster config.
    #[serde(default)]
    pub kubeconfig: Option<PathBuf>,
    /// The namespace holding the agent's revision history and locks.
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// Revisions kept per release in the cluster.
    #[serde(default = "default_history_limit")]
    pub history_limit: u32,
    /// An apply that would prune more than this percentage (0 to 100) of a release's
    /// objects, or all of them, is refused unless its submit allows mass deletion.
    #[serde(default = "default_max_prune_percent")]
    pub max_prune_percent: u32,
    /// HTTP listen address for `/healthz`, `/readyz` and `/metrics`; none to disable.
    #[serde(default)]
    pub health_listen: Option<String>,
    /// `pretty` or `json`.
    #[serde(default = "default_log_format")]
    pub log_format: String,
    /// `simulated` backend only: milliseconds added to every apply, dry run and
    /// rollback, to model a real cluster API's latency (demos, benchmarks).
    #[serde(default)]
    pub sim_latency_ms: u64,
    /// `simulated` backend only: the Kubernetes version the simulated cluster reports,
    /// which charts rendered for its context see as `.Capabilities.KubeVersion` (its API
    /// versions are Helm's default list).
    #[serde(default = "default_sim_kube_version")]
    pub sim_kube_version: String,
    /// Dial an `http://` (plaintext) coordinator outside loopback. Refused unless set:
    /// the agent's token would cross the network in the clear.
    #[serde(default)]
    pub allow_plaintext: bool,
}

/// Whether an `http://` URL's host is a loopback address (`127.0.0.1`, `[::1]`,
/// `localhost`).
fn is_loopback_url(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or_default();
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        authority.split(':').next().unwrap_or_default()
    };
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The `tls:` section. A coordinator with `tls.client_cert_optional: false` refuses
/// the TLS handshake of a client without a certificate signed by its client CA, so an
/// agent behind such a listener must present one.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// A PEM client certificate (chain, leaf first) presented on the agent link.
    /// Re-read at every connect, so a renewed certificate needs no restart.
    #[serde(default)]
    pub client_cert_file: Option<PathBuf>,
    /// The PEM private key of `client_cert_file` (PKCS#8, PKCS#1 or SEC1).
    #[serde(default)]
    pub client_key_file: Option<PathBuf>,
}

fn default_backend() -> String {
    "kubernetes".into()
}
fn default_namespace() -> String {
    "convoy-system".into()
}
fn default_history_limit() -> u32 {
    10
}
fn default_max_prune_percent() -> u32 {
    crate::kube::DEFAULT_MAX_PRUNE_PERCENT
}
fn default_log_format() -> String {
    "pretty".into()
}
fn default_sim_kube_version() -> String {
    crate::sim::DEFAULT_SIM_KUBE_VERSION.into()
}

/// `1.21`, `v1.21.3`, `v1.21.3-gke.100`: what Kubernetes' `gitVersion` looks like.
fn is_kube_version(v: &str) -> bool {
    let v = v.strip_prefix('v').unwrap_or(v);
    let core = v.split(['-', '+']).next().unwrap_or_default();
    let parts: Vec<&str> = core.split('.').collect();
    (2..=3).contains(&parts.len())
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

impl AgentConfig {
    /// Loads `path` (if given) under `CONVOY_AGENT__*` overrides and validates.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_with_env(path, std::env::vars())
    }

    /// As [`AgentConfig::load`], with the environment given explicitly (for tests).
    pub fn load_with_env(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let source_name = path.map_or_else(|| "<environment>".to_string(), |p| p.display().to_string());
        let cfg: AgentConfig =
            convoy_common::layered_config::load(path, ENV_PREFIX, env).map_err(|message| {
                ConfigError::Load {
                    source_name: source_name.clone(),
                    message,
                }
            })?;
        cfg.validate().map_err(|(key, reason)| ConfigError::Invalid {
            source_name,
            key: key.to_string(),
            reason,
        })?;
        Ok(cfg)
    }

    /// The coordinator addresses, in the order they are tried.
    fn coordinators(&self) -> impl Iterator<Item = &str> {
        crate::runtime::coordinator_urls(&self.coordinator)
    }

    fn validate(&self) -> Result<(), (&'static str, String)> {
        let urls: Vec<&str> = self.coordinators().collect();
        if urls.is_empty() {
            return Err((
                "coordinator",
                "expected an http:// or https:// URL (or several, separated by commas)".into(),
            ));
        }
        if let Some(bad) = urls
            .iter()
            .find(|u| !(u.starts_with("http://") || u.starts_with("https://")))
        {
            return Err((
                "coordinator",
                format!("expected an http:// or https:// URL, got {bad:?}"),
            ));
        }
        if !self.allow_plaintext
            && let Some(plain) = urls
                .iter()
                .find(|u| u.starts_with("http://") && !is_loopback_url(u))
        {
            return Err((
                "coordinator",
                format!(
                    "{plain:?} is plaintext outside loopback: the agent's token would cross the network in the clear; use https:// (with ca_file), or set allow_plaintext: true"
                ),
            ));
        }
        if self.context.trim().is_empty() {
            return Err((
                "context",
                "must name the registry context this agent serves".into(),
            ));
        }
        self.validate_tls()?;
        if !matches!(self.backend.as_str(), "kubernetes" | "simulated") {
            return Err((
                "backend",
                format!("expected `kubernetes` or `simulated`, got {:?}", self.backend),
            ));
        }
        if self.history_limit == 0 {
            return Err((
                "history_limit",
                "must keep at least 1 revision (rollback needs history)".into(),
            ));
        }
        if self.max_prune_percent > 100 {
            return Err((
                "max_prune_percent",
                format!("expected 0 to 100, got {}", self.max_prune_percent),
            ));
        }
        if let Some(h) = &self.health_listen
            && h.parse::<SocketAddr>().is_err()
        {
            return Err(("health_listen", format!("expected host:port, got {h:?}")));
        }
        if !is_kube_version(&self.sim_kube_version) {
            return Err((
                "sim_kube_version",
                format!(
                    "expected a Kubernetes version like v1.21.3, got {:?}",
                    self.sim_kube_version
                ),
            ));
        }
        if !matches!(self.log_format.as_str(), "pretty" | "json") {
            return Err((
                "log_format",
                format!("expected `pretty` or `json`, got {:?}", self.log_format),
            ));
        }
        Ok(())
    }

    /// A client certificate needs its key (and the key its certificate), both files
    /// present, and TLS to the coordinator. Their content is checked when the runtime
    /// loads them ([`crate::runtime::RuntimeConfig::from_agent_config`]).
    fn validate_tls(&self) -> Result<(), (&'static str, String)> {
        const CERT: &str = "tls.client_cert_file";
        const KEY: &str = "tls.client_key_file";
        let (cert, key) = match (&self.tls.client_cert_file, &self.tls.client_key_file) {
            (None, None) => return Ok(()),
            (Some(_), None) => {
                return Err((
                    KEY,
                    format!("must be set together with {CERT}: the certificate's private key"),
                ));
            }
            (None, Some(_)) => {
                return Err((
                    CERT,
                    format!("must be set together with {KEY}: the certificate that key belongs to"),
                ));
            }
            (Some(c), Some(k)) => (c, k),
        };
        for (field, path) in [(CERT, cert), (KEY, key)] {
            if !path.is_file() {
                return Err((
                    field,
                    format!("{} does not exist or is not a regular file", path.display()),
                ));
            }
        }
        if self.coordinators().any(|u| !u.starts_with("https://")) {
            return Err((
                CERT,
                format!(
                    "a client certificate is only presented over TLS; the coordinator is {:?} (use https://)",
                    self.coordinator
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn environment_alone_is_enough() {
        let cfg = AgentConfig::load_with_env(
            None,
            env(&[
                ("CONVOY_AGENT__COORDINATOR", "https://convoyd:7443"),
                ("CONVOY_AGENT__CONTEXT", "dev-us-central1-0"),
                ("CONVOY_AGENT__HISTORY_LIMIT", "5"),
            ]),
        )
        .unwrap();
        assert_eq!(cfg.context, "dev-us-central1-0");
        assert_eq!(cfg.history_limit, 5);
        assert_eq!(cfg.backend, "kubernetes");
        assert_eq!(cfg.sim_kube_version, "v1.20.0", "Helm's default");
        for ok in ["1.21", "v1.21.3", "v1.21.3-gke.100"] {
            assert!(is_kube_version(ok), "{ok}");
        }
    }

    #[test]
    fn several_coordinators_are_tried_in_turn() {
        let cfg = AgentConfig::load_with_env(
            None,
            env(&[
                ("CONVOY_AGENT__COORDINATOR", "http://a:7443, http://b:7443"),
                ("CONVOY_AGENT__CONTEXT", "x"),
                ("CONVOY_AGENT__ALLOW_PLAINTEXT", "true"),
            ]),
        )
        .unwrap();
        assert_eq!(
            cfg.coordinators().collect::<Vec<_>>(),
            ["http://a:7443", "http://b:7443"]
        );
    }

    #[test]
    fn plaintext_coordinators_only_on_loopback() {
        let load = |url: &str, allow: bool| {
            let mut pairs = vec![("CONVOY_AGENT__COORDINATOR", url), ("CONVOY_AGENT__CONTEXT", "x")];
            if allow {
                pairs.push(("CONVOY_AGENT__ALLOW_PLAINTEXT", "true"));
            }
            AgentConfig::load_with_env(None, env(&pairs))
        };
        for ok in [
            "http://127.0.0.1:7443",
            "http://localhost:7443",
            "http://[::1]:7443",
            "https://convoyd.example:7443",
        ] {
            assert!(load(ok, false).is_ok(), "{ok}");
        }
        let err = load("https://c1:7443,http://convoyd.example:7443", false)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`coordinator`") && err.contains("\"http://convoyd.example:7443\" is plaintext"),
            "{err}"
        );
        assert!(load("http://10.0.0.1:7443", false).is_err());
        assert!(load("http://10.0.0.1:7443", true).is_ok());
    }

    #[test]
    fn missing_required_key_is_named() {
        let err = AgentConfig::load_with_env(None, env(&[("CONVOY_AGENT__CONTEXT", "x")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("coordinator"), "{err}");
    }

    #[test]
    fn invalid_values_are_refused_with_key_and_reason() {
        let base = [
            ("CONVOY_AGENT__COORDINATOR", "https://c:1"),
            ("CONVOY_AGENT__CONTEXT", "x"),
        ];
        for (k, v, want) in [
            ("CONVOY_AGENT__BACKEND", "docker", "`backend`"),
            ("CONVOY_AGENT__HISTORY_LIMIT", "0", "`history_limit`"),
            ("CONVOY_AGENT__HISTORY_LIMIT", "lots", "history_limit"),
            ("CONVOY_AGENT__MAX_PRUNE_PERCENT", "101", "`max_prune_percent`"),
            ("CONVOY_AGENT__COORDINATOR", "convoyd:7443", "`coordinator`"),
            ("CONVOY_AGENT__COORDINATOR", "https://a:1,b:2", "\"b:2\""),
            ("CONVOY_AGENT__COORDINATOR", " , ", "`coordinator`"),
            ("CONVOY_AGENT__SIM_KUBE_VERSION", "1.x", "`sim_kube_version`"),
            ("CONVOY_AGENT__SIM_KUBE_VERSION", "v1", "`sim_kube_version`"),
        ] {
            let mut e = env(&base);
            e.retain(|(key, _)| key != k);
            e.push((k.into(), v.into()));
            let err = AgentConfig::load_with_env(None, e).unwrap_err().to_string();
            assert!(err.contains(want), "{k}={v}: {err}");
        }
    }

    #[test]
    fn a_client_certificate_comes_with_its_key_from_files_that_exist() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("agent.pem");
        let key = dir.path().join("agent-key.pem");
        std::fs::write(&cert, "cert").unwrap();
        std::fs::write(&key, "key").unwrap();
        let missing = dir.path().join("missing.pem");
        let (cert, key, missing) = (
            cert.to_str().unwrap(),
            key.to_str().unwrap(),
            missing.to_str().unwrap(),
        );
        let load = |pairs: &[(&str, &str)]| {
            let mut e = env(&[("CONVOY_AGENT__CONTEXT", "x")]);
            e.extend(env(pairs));
            AgentConfig::load_with_env(None, e)
        };
        const HTTPS: (&str, &str) = ("CONVOY_AGENT__COORDINATOR", "https://c:1");
        const CERT: &str = "CONVOY_AGENT__TLS__CLIENT_CERT_FILE";
        const KEY: &str = "CONVOY_AGENT__TLS__CLIENT_KEY_FILE";

        // Both, from the environment (the nested key takes `__` twice).
        let cfg = load(&[HTTPS, (CERT, cert), (KEY, key)]).unwrap();
        assert_eq!(cfg.tls.client_cert_file.as_deref(), Some(Path::new(cert)));
        assert_eq!(cfg.tls.client_key_file.as_deref(), Some(Path::new(key)));
        // Neither: no client certificate.
        assert!(load(&[HTTPS]).unwrap().tls.client_cert_file.is_none());

        for (pairs, want) in [
            (
                vec![HTTPS, (CERT, cert)],
                "`tls.client_key_file`: must be set together with tls.client_cert_file",
            ),
            (
                vec![HTTPS, (KEY, key)],
                "`tls.client_cert_file`: must be set together with tls.client_key_file",
            ),
            (vec![HTTPS, (CERT, missing), (KEY, key)], "`tls.client_cert_file`"),
            (vec![HTTPS, (CERT, cert), (KEY, missing)], "`tls.client_key_file`"),
            (
                vec![
                    ("CONVOY_AGENT__COORDINATOR", "http://127.0.0.1:1"),
                    (CERT, cert),
                    (KEY, key),
                ],
                "only presented over TLS",
            ),
        ] {
            let err = load(&pairs).unwrap_err().to_string();
            assert!(err.contains(want), "{pairs:?}: {err}");
            if want.ends_with('`') {
                assert!(err.contains("missing.pem does not exist"), "{err}");
            }
        }
        // An unknown key inside the section is refused like any other.
        let err = load(&[HTTPS, ("CONVOY_AGENT__TLS__CLIENT_CA_FILE", cert)])
            .unwrap_err()
            .to_string();
        assert!(err.contains("client_ca_file"), "{err}");
    }
}

#[cfg(test)]
mod example_config {
    use super::*;

    #[test]
    fn the_shipped_example_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/agent.yaml");
        let cfg = AgentConfig::load_with_env(Some(&path), Vec::new()).unwrap();
        assert_eq!(cfg.context, "dev-us-central1-0");
    }
}

//! The agent runtime: the agent-link client that drives a [`Backend`].
//!
//! ```text
//!             +-------------------- link (one session at a time, reconnects) -----+
//! coordinator | hello/welcome, heartbeats, commands in, events out                 |
//!             +--------+-----------------------------------------------^----------+
//!                      | commands                                      | events
//!                      v                                               |
//!               ops: ledger (idempotence) --> one task per operation --+--> outbox
//!                       lock -> pre hooks, apply, watch, post hooks,       (buffers finals)
//!                               record the outcome -> unlock
//! ```
//!
//! Operations do not belong to a session: they keep running across a disconnect, and
//! their final events wait in the outbox until a coordinator acknowledges them.

mod backoff;
mod error;
mod http;
mod ledger;
mod link;
pub mod metrics;
mod ops;
mod outbox;
mod start;
mod tls;
pub mod wire;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::backend::Backend;
use crate::config::AgentConfig;
pub use error::RuntimeError;
use ledger::Ledger;
use metrics::Metrics;
use outbox::Outbox;
pub use start::{check_backend, run_agent};
pub use tls::ClientIdentity;

/// A bearer token. Never printed: `Debug` shows only that one is set.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    pub fn new(token: impl Into<String>) -> Self {
        Token(token.into())
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// Where the agent's per-context credential comes from.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// No token (mTLS, or a coordinator without auth).
    None,
    Token(Token),
    /// Read at every connect, so a rotated token is picked up without a restart.
    TokenFile(PathBuf),
}

/// How the runtime behaves; [`RuntimeConfig::new`] has production defaults.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// `http://` or `https://` address of the coordinator; several separated by commas
    /// (coordinators in high availability on etcd, without a load balancer in front):
    /// the agent tries them in turn and stays with the one that welcomes it (a standby
    /// refuses it with UNAVAILABLE).
    pub coordinator: String,
    pub context: String,
    pub credentials: Credentials,
    /// PEM CA bundle the coordinator's certificate must chain to (required for https).
    pub ca_pem: Option<Vec<u8>>,
    /// The client certificate presented to the coordinator (mTLS; https only).
    pub client_identity: Option<ClientIdentity>,
    /// This agent's instance name (pod or host name), for the hello.
    pub instance: String,
    /// Where `/healthz`, `/readyz` and `/metrics` listen; None disables them.
    pub health_listen: Option<SocketAddr>,
    /// First and largest reconnect delay (exponential with jitter in between).
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// The delay after the coordinator refused the credentials: a configuration
    /// problem that retrying fast would not fix.
    pub auth_retry: Duration,
    /// Time to connect, and to be welcomed after the hello.
    pub connect_timeout: Duration,
    /// Minimum time between two progress events of one operation.
    pub progress_interval: Duration,
    /// How long an operation waits for a release lock held by someone else.
    pub lock_wait: Duration,
    /// Finished operations remembered for idempotent replay.
    pub ledger_capacity: usize,
    /// Final events kept until the coordinator acknowledges them.
    pub unacked_capacity: usize,
    /// On shutdown, how long running operations get to release their locks.
    pub shutdown_grace: Duration,
    /// How often the agent looks for old blue/green slots whose retire deadline has
    /// passed (and once at start).
    pub retire_interval: Duration,
}

impl RuntimeConfig {
    pub fn new(coordinator: impl Into<String>, context: impl Into<String>) -> Self {
        RuntimeConfig {
            coordinator: coordinator.into(),
            context: context.into(),
            credentials: Credentials::None,
            ca_pem: None,
            client_identity: None,
            instance: default_instance(),
            health_listen: None,
            backoff_initial: Duration::from_millis(200),
            backoff_max: Duration::from_secs(10),
            auth_retry: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            progress_interval: Duration::from_millis(300),
            lock_wait: Duration::from_secs(60),
            ledger_capacity: 4096,
            unacked_capacity: 256,
            shutdown_grace: Duration::from_secs(5),
            retire_interval: Duration::from_secs(5),
        }
    }

    /// The runtime settings of an agent configuration; reads the CA file now (a
    /// missing CA is a startup error), the token file and the client certificate at
    /// every connect (and once now, to refuse a start with unusable ones).
    pub fn from_agent_config(cfg: &AgentConfig) -> Result<Self, RuntimeError> {
        let mut rc = RuntimeConfig::new(cfg.coordinator.clone(), cfg.context.clone());
        if let Some(path) = &cfg.token_file {
            read_token(path)?;
            rc.credentials = Credentials::TokenFile(path.clone());
        }
        if let Some(path) = &cfg.ca_file {
            let err = |reason: String| RuntimeError::CaFile {
                path: path.clone(),
                reason,
            };
            let pem = std::fs::read(path).map_err(|e| err(e.to_string()))?;
            // An empty or non-PEM file would trust nothing and fail every connect.
            if !tls::has_pem_block(&pem, "CERTIFICATE-----") {
                return Err(err(
                    "expected the coordinator's CA certificate in PEM form (-----BEGIN CERTIFICATE-----), found none"
                        .into(),
                ));
            }
            rc.ca_pem = Some(pem);
        }
        if let (Some(cert_file), Some(key_file)) = (&cfg.tls.client_cert_file, &cfg.tls.client_key_file) {
            rc.client_identity = Some(ClientIdentity {
                cert_file: cert_file.clone(),
                key_file: key_file.clone(),
            });
        }
        rc.health_listen = match &cfg.health_listen {
            None => None,
            Some(h) => Some(h.parse().map_err(|_| RuntimeError::HealthListen {
                addr: h.clone(),
                reason: "expected host:port".into(),
            })?),
        };
        rc.validate()?;
        Ok(rc)
    }

    /// The coordinator addresses, in the order they are tried.
    pub fn coordinators(&self) -> Vec<&str> {
        coordinator_urls(&self.coordinator).collect()
    }

    fn validate(&self) -> Result<(), RuntimeError> {
        let urls = self.coordinators();
        if urls.is_empty() {
            return Err(RuntimeError::Coordinator {
                url: self.coordinator.clone(),
                reason: "expected an http:// or https:// URL (or several, separated by commas)".into(),
            });
        }
        for url in urls {
            let err = |reason: &str| RuntimeError::Coordinator {
                url: url.to_string(),
                reason: reason.into(),
            };
            if url.starts_with("https://") {
                if self.ca_pem.is_none() {
                    return Err(err(
                        "https needs ca_file: the agent trusts only the CA it is given for the coordinator",
                    ));
                }
            } else if !url.starts_with("http://") {
                return Err(err("expected an http:// or https:// URL"));
            }
            // Builds what a connect builds: the URL, the CA, the client certificate.
            tls::endpoint(self, url)?;
        }
        Ok(())
    }
}

/// The addresses in a `coordinator` setting: one, or several separated by commas.
pub(crate) fn coordinator_urls(setting: &str) -> impl Iterator<Item = &str> {
    setting.split(',').map(str::trim).filter(|u| !u.is_empty())
}

/// Reads a token file: trimmed, non-empty. The error never includes the content.
pub(crate) fn read_token(path: &std::path::Path) -> Result<Token, RuntimeError> {
    let err = |reason: String| RuntimeError::TokenFile {
        path: path.to_path_buf(),
        reason,
    };
    let raw = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let token = raw.trim();
    if token.is_empty() {
        return Err(err(
            "the file is empty; expected the context's bearer token".into()
        ));
    }
    if token.chars().any(|c| c.is_control() || c == ' ') {
        return Err(err("the token has spaces or control characters inside it".into()));
    }
    Ok(Token::new(token))
}

fn default_instance() -> String {
    ["POD_NAME", "HOSTNAME"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| format!("convoy-agent-{}", std::process::id()))
}

/// What the link, the operations and the health endpoint share.
struct Shared<B> {
    backend: B,
    config: RuntimeConfig,
    ledger: Mutex<Ledger>,
    outbox: Mutex<Outbox>,
    metrics: Arc<Metrics>,
    /// One operation per release at a time inside this agent; the backend lock then
    /// guards against other agents.
    gates: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Fires on shutdown; every operation's cancel token is a child of it.
    stopping: CancellationToken,
    /// Per release, the secret digests of its latest apply or dry run: what its
    /// commands' messages are masked with (a rollback carries none of its own).
    maskers: Mutex<HashMap<String, crate::mask::DigestMasker>>,
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section is a few map operations that leave the data consistent
    // even if a panic interrupted another holder.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The agent-link client around a backend.
pub struct AgentRuntime<B: Backend> {
    shared: Arc<Shared<B>>,
    health: Option<TcpListener>,
}

impl<B: Backend> AgentRuntime<B> {
    pub fn new(config: RuntimeConfig, backend: B) -> Self {
        let shared = Shared {
            ledger: Mutex::new(Ledger::new(config.ledger_capacity)),
            outbox: Mutex::new(Outbox::new(config.unacked_capacity)),
            backend,
            config,
            metrics: Arc::new(Metrics::default()),
            gates: Mutex::new(HashMap::new()),
            stopping: CancellationToken::new(),
            maskers: Mutex::new(HashMap::new()),
        };
        AgentRuntime {
            shared: Arc::new(shared),
            health: None,
        }
    }

    /// The counters `/metrics` shows (also for embedding and tests).
    pub fn metrics(&self) -> Arc<Metrics> {
        self.shared.metrics.clone()
    }

    /// Binds the health endpoint now (instead of in [`AgentRuntime::run`]) and returns
    /// its address: a startup error surfaces before anything else, and port 0 works.
    pub async fn bind_health(&mut self) -> Result<Option<SocketAddr>, RuntimeError> {
        let Some(addr) = self.shared.config.health_listen else {
            return Ok(None);
        };
        if self.health.is_none() {
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|e| RuntimeError::HealthListen {
                    addr: addr.to_string(),
                    reason: e.to_string(),
                })?;
            self.health = Some(listener);
        }
        Ok(self.health.as_ref().and_then(|l| l.local_addr().ok()))
    }

    /// Runs until `shutdown` fires: keeps a session with the coordinator (reconnecting
    /// as needed), runs the commands it sends, serves the health endpoint. On shutdown,
    /// running operations are stopped and release their locks; they send no final
    /// event (the coordinator sees them gone from the next hello).
    pub async fn run(mut self, shutdown: CancellationToken) -> Result<(), RuntimeError> {
        self.shared.config.validate()?;
        self.bind_health().await?;
        let stopping = self.shared.stopping.clone();
        let http = self.health.take().map(|listener| {
            tokio::spawn(http::serve(
                listener,
                self.shared.metrics.clone(),
                stopping.clone(),
            ))
        });
        tracing::info!(
            coordinator = %self.shared.config.coordinator,
            context = %self.shared.config.context,
            instance = %self.shared.config.instance,
            backend = self.shared.backend.kind(),
            "agent starting"
        );
        match self.shared.backend.recover().await {
            Ok(settled) => {
                for (release, revision) in settled {
                    tracing::warn!(%release, revision, "an apply interrupted by the agent's last exit: revision marked failed; it owns what it may have created");
                }
            }
            Err(f) => {
                tracing::warn!(error = %f.message, "could not settle interrupted applies at start: they stay pending, and the next revision still prunes from their records")
            }
        }
        let retire = tokio::spawn(ops::retire_loop(self.shared.clone(), stopping.clone()));
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = link::run(self.shared.clone(), stopping.clone()) => {}
        }
        tracing::info!("agent stopping");
        stopping.cancel();
        ops::drain(&self.shared).await;
        let _ = retire.await;
        if let Some(h) = http {
            let _ = h.await;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent_config(pairs: &[(&str, &str)]) -> Result<AgentConfig, crate::config::ConfigError> {
        let env = pairs
            .iter()
            .map(|(k, v)| (format!("CONVOY_AGENT__{k}"), v.to_string()));
        AgentConfig::load_with_env(None, env)
    }

    #[test]
    fn startup_problems_name_the_setting() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty-token");
        std::fs::write(&empty, "\n").unwrap();
        let missing = dir.path().join("missing");
        let cases = [
            (vec![("COORDINATOR", "https://c:7443")], "https needs ca_file"),
            (
                vec![
                    ("COORDINATOR", "http://127.0.0.1:7443"),
                    ("TOKEN_FILE", missing.to_str().unwrap()),
                ],
                "token_file",
            ),
            (
                vec![
                    ("COORDINATOR", "http://127.0.0.1:7443"),
                    ("TOKEN_FILE", empty.to_str().unwrap()),
                ],
                "is empty",
            ),
            (
                vec![
                    ("COORDINATOR", "https://c:7443"),
                    ("CA_FILE", missing.to_str().unwrap()),
                ],
                "ca_file",
            ),
            (
                vec![
                    ("COORDINATOR", "https://c:7443"),
                    ("CA_FILE", empty.to_str().unwrap()),
                ],
                "expected the coordinator's CA certificate in PEM form",
            ),
        ];
        for (mut pairs, want) in cases {
            pairs.push(("CONTEXT", "dev"));
            let cfg = agent_config(&pairs).unwrap();
            let err = RuntimeConfig::from_agent_config(&cfg).unwrap_err().to_string();
            assert!(err.contains(want), "{pairs:?}: {err}");
        }
    }

    #[test]
    fn tokens_never_show_in_debug_output_or_errors() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "hunter2 and more\n").unwrap();
        let err = read_token(&file).unwrap_err().to_string();
        assert!(!err.contains("hunter2"), "{err}");
        std::fs::write(&file, "  hunter2\n").unwrap();
        let token = read_token(&file).unwrap();
        assert_eq!(token.expose(), "hunter2");
        let mut cfg = RuntimeConfig::new("http://c:1", "dev");
        cfg.credentials = Credentials::Token(token);
        assert!(!format!("{cfg:?}").contains("hunter2"));
    }
}

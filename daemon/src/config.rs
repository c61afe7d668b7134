//! The coordinator's configuration: one file (YAML or TOML), overridable by
//! `CONVOY_DAEMON__<KEY>` environment variables (`__` separates nesting levels:
//! `CONVOY_DAEMON__STORE__PATH=/var/lib/convoy`), loaded once into typed structs and
//! validated before anything starts. An invalid config is refused with the key and
//! the reason.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read or parsed, or a value has the wrong type. The
    /// message from the `config` crate names the key.
    #[error("{source_name}: {message}")]
    Load { source_name: String, message: String },
    /// A value parsed but makes no sense.
    #[error("{source_name}: `{key}`: {reason}")]
    Invalid {
        source_name: String,
        key: String,
        reason: String,
    },
}

/// The environment-variable prefix for daemon settings.
pub const ENV_PREFIX: &str = "CONVOY_DAEMON";

/// Everything `convoyd` is configured with.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonConfig {
    /// gRPC listen address (public API and agent link), `host:port`.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// HTTP listen address for `/metrics`, `/healthz`; none to disable.
    #[serde(default)]
    pub metrics_listen: Option<String>,
    /// Where durable state lives.
    #[serde(default)]
    pub store: StoreConfig,
    /// The context registry: the clusters releases can target.
    #[serde(default)]
    pub contexts: Vec<ContextConfig>,
    /// A context-registry file (YAML list of contexts), instead of or in addition to
    /// the inline `contexts`.
    #[serde(default)]
    pub registry_file: Option<PathBuf>,
    /// API tokens, agent credentials.
    #[serde(default)]
    pub auth: crate::auth::AuthConfig,
    /// Vault (or OpenBao) for release secrets.
    #[serde(default)]
    pub vault: Option<convoy_secrets::VaultConfig>,
    /// DEVELOPMENT ONLY: secrets from a local YAML file (`"path#key": value`) instead of
    /// Vault. Refused together with `vault`.
    #[serde(default)]
    pub dev_secrets_file: Option<PathBuf>,
    /// Which Vault paths releases may name, per environment and namespace (prefix
    /// templates such as `kv/{env}/{namespace}/`). Absent: any path (warned at start).
    #[serde(default)]
    pub secret_paths: Option<crate::pipeline::SecretPaths>,
    /// Chart repositories and OCI registries the coordinator fetches `spec.chart.repo`
    /// and `spec.chart.oci` charts from, with their credentials (see the `convoy-sources` crate, `daemon/sources`).
    /// Only listed sources may be used (per entry, optionally only by some environments).
    #[serde(default)]
    pub chart_sources: Vec<crate::sources::ChartSourceConfig>,
    /// TLS for the gRPC listener (API and agent link); plaintext when absent.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// Serve plaintext gRPC (no `tls`) on a non-loopback `listen` address. Refused
    /// unless set: tokens would cross the network in the clear.
    #[serde(default)]
    pub allow_plaintext: bool,
    /// How often agents send heartbeats, in seconds.
    #[serde(default = "default_heartbeat")]
    pub heartbeat_seconds: u32,
    /// The largest command sent to an agent, in bytes: a release whose rendered
    /// manifests for one context make a larger one is refused at submit. At most
    /// [`convoy_proto::AGENT_LINK_MESSAGE_LIMIT`] (what agents accept), the default.
    #[serde(default = "default_link_limit")]
    pub agent_link_max_message_bytes: usize,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
    /// Bounds on loading and rendering a submitted chart.
    #[serde(default)]
    pub render: RenderConfig,
    /// Webhooks told about operations (Slack-compatible or JSON).
    #[serde(default)]
    pub notifications: crate::notify::NotificationsConfig,
    /// The Prometheus servers and webhooks release files' `spec.strategy.gates` may name.
    #[serde(default)]
    pub gates: crate::gates::GatesConfig,
    /// Promotion between environments: `{prod: {after: staging}}` lets a release in
    /// `prod` use only a chart archive (by digest) that already ran healthy in `staging`.
    #[serde(default)]
    pub promotion: BTreeMap<String, PromotionRule>,
    /// The web status page, served on `metrics_listen` under `/ui`.
    #[serde(default)]
    pub ui: UiConfig,
}

/// The live web status page (`/ui` on `metrics_listen`): the fleet, the rollouts and
/// the audit log, with pause, resume, abort and rollback for operators. Its login
/// takes an API token; the session lives in a cookie.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UiConfig {
    /// Serve the page. Off by default.
    #[serde(default)]
    pub enabled: bool,
    /// How long a login lasts, in hours (1 to 168).
    #[serde(default = "default_session_hours")]
    pub session_hours: u32,
}

impl Default for UiConfig {
    fn default() -> Self {
        UiConfig {
            enabled: false,
            session_hours: default_session_hours(),
        }
    }
}

fn default_session_hours() -> u32 {
    12
}

/// Bounds on loading and rendering charts, so a hostile or broken chart fails with a
/// clear error while the API and the agent links keep answering. The defaults are
/// bounds no real chart meets (Helm's own for the archive).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenderConfig {
    /// How long one context's render may run, in seconds.
    #[serde(default = "default_render_time_limit")]
    pub time_limit_seconds: u32,
    /// How much one context's render may write, in MiB.
    #[serde(default = "default_render_max_output")]
    pub max_output_mib: u32,
    /// How large a chart may unpack to, its subcharts included, in MiB.
    #[serde(default = "default_max_chart")]
    pub max_chart_mib: u32,
    /// How large one file of a chart may unpack to, in MiB.
    #[serde(default = "default_max_chart_file")]
    pub max_chart_file_mib: u32,
    /// How deep subcharts may nest (1: no subcharts).
    #[serde(default = "default_max_subchart_depth")]
    pub max_subchart_depth: u32,
    /// How many submits (or diffs) may render at the same time; each spreads its
    /// contexts over the machine's cores. Others wait their turn.
    #[serde(default = "default_concurrent_renders")]
    pub concurrent_submits: u32,
}

impl Default for RenderConfig {
    fn default() -> Self {
        RenderConfig {
            time_limit_seconds: default_render_time_limit(),
            max_output_mib: default_render_max_output(),
            max_chart_mib: default_max_chart(),
            max_chart_file_mib: default_max_chart_file(),
            max_subchart_depth: default_max_subchart_depth(),
            concurrent_submits: default_concurrent_renders(),
        }
    }
}

impl RenderConfig {
    /// The pipeline's bounds.
    pub fn limits(&self) -> crate::pipeline::PipelineLimits {
        const MIB: u64 = 1024 * 1024;
        crate::pipeline::PipelineLimits {
            render: convoy_release::RenderLimits {
                time: std::time::Duration::from_secs(self.time_limit_seconds.into()),
                output_bytes: (u64::from(self.max_output_mib) * MIB) as usize,
            },
            load: convoy_chart::LoadLimits {
                max_total_bytes: u64::from(self.max_chart_mib) * MIB,
                max_file_bytes: u64::from(self.max_chart_file_mib) * MIB,
                max_depth: self.max_subchart_depth as usize,
            },
            concurrent_submits: self.concurrent_submits as usize,
        }
    }

    fn validate(&self) -> Result<(), (String, String)> {
        let fields = [
            ("time_limit_seconds", self.time_limit_seconds),
            ("max_output_mib", self.max_output_mib),
            ("max_chart_mib", self.max_chart_mib),
            ("max_chart_file_mib", self.max_chart_file_mib),
            ("max_subchart_depth", self.max_subchart_depth),
            ("concurrent_submits", self.concurrent_submits),
        ];
        if let Some((k, _)) = fields.iter().find(|(_, v)| *v == 0) {
            return Err((format!("render.{k}"), "must be at least 1".into()));
        }
        if self.max_output_mib > 4096 || self.max_chart_mib > 4096 {
            return Err((
                "render".into(),
                "max_output_mib and max_chart_mib must be at most 4096".into(),
            ));
        }
        if self.max_chart_file_mib > self.max_chart_mib {
            return Err((
                "render.max_chart_file_mib".into(),
                format!(
                    "{} is more than render.max_chart_mib ({}): one file cannot be larger than the chart",
                    self.max_chart_file_mib, self.max_chart_mib
                ),
            ));
        }
        Ok(())
    }
}

fn default_render_time_limit() -> u32 {
    convoy_release::RenderLimits::default().time.as_secs() as u32
}
fn default_render_max_output() -> u32 {
    (convoy_release::RenderLimits::default().output_bytes / (1024 * 1024)) as u32
}
fn default_max_chart() -> u32 {
    (convoy_chart::LoadLimits::default().max_total_bytes / (1024 * 1024)) as u32
}
fn default_max_chart_file() -> u32 {
    (convoy_chart::LoadLimits::default().max_file_bytes / (1024 * 1024)) as u32
}
fn default_max_subchart_depth() -> u32 {
    convoy_chart::LoadLimits::default().max_depth as u32
}
fn default_concurrent_renders() -> u32 {
    2
}

/// One environment's promotion rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromotionRule {
    /// The environment a chart must have run healthy in first.
    pub after: String,
}

/// Server TLS.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain and key of the coordinator.
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// A PEM CA bundle: when set, clients must present a certificate it signed (mTLS),
    /// which `auth.certificates` can map to a role.
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
    /// With `client_ca_file`: also accept connections that present no certificate (they
    /// then need a bearer token). For a listener shared by certificate holders and
    /// token holders, such as agents, which connect without a client certificate.
    /// A certificate that is presented is still verified against the CA.
    #[serde(default)]
    pub client_cert_optional: bool,
}

/// Durable state backend.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `embedded` (a file on local disk; the default) or `etcd` (highly available).
    #[serde(default = "default_store_backend")]
    pub backend: String,
    /// The embedded store's file.
    #[serde(default = "default_store_path")]
    pub path: PathBuf,
    /// The embedded store's page cache, in MiB: pages read or written stay in memory up
    /// to this size (redb's own default is 1 GiB, which a long-lived coordinator reaches
    /// as its file grows with history).
    #[serde(default = "default_store_cache_size_mb")]
    pub cache_size_mb: u32,
    /// etcd endpoints (`http://10.0.0.1:2379`), for the `etcd` backend.
    #[serde(default)]
    pub etcd_endpoints: Vec<String>,
    /// Every key convoy writes lives under this prefix (`<prefix>/<table>/<key>`,
    /// `<prefix>/leader`), so several installations can share one etcd.
    #[serde(default = "default_etcd_prefix")]
    pub etcd_prefix: String,
    /// How long a dead leader keeps the role before a standby takes over (the leader
    /// lease's TTL), in seconds.
    #[serde(default = "default_etcd_lease_ttl")]
    pub etcd_lease_ttl_seconds: u32,
    /// The etcd cluster's `--max-txn-ops` (128 unless changed there): no transaction
    /// holds more writes (see `store::etcd`).
    #[serde(default = "default_etcd_max_txn_ops")]
    pub etcd_max_txn_ops: u32,
    /// The name this coordinator leads under, shown by standbys (`standby: leader is
    /// X`): the address operators and clients recognise. Default: `<hostname>:<port of
    /// listen>`.
    #[serde(default)]
    pub etcd_instance_name: Option<String>,
    /// TLS to etcd, for `https://` endpoints.
    #[serde(default)]
    pub etcd_tls: Option<EtcdTlsConfig>,
    /// etcd's user (etcd run with `auth enable`); its password is read from
    /// `etcd_password_file`, never written in this file.
    #[serde(default)]
    pub etcd_username: Option<String>,
    /// A file holding the etcd user's password (one line; a trailing newline is
    /// ignored).
    #[serde(default)]
    pub etcd_password_file: Option<PathBuf>,
}

/// TLS to etcd.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EtcdTlsConfig {
    /// The CA that signed etcd's serving certificates (PEM).
    pub ca_file: PathBuf,
    /// A client certificate (PEM), for etcd run with `--client-cert-auth`.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// Its private key (PEM).
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// The name etcd's certificate is checked against when it is not the endpoints'
    /// host.
    #[serde(default)]
    pub server_name: Option<String>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            backend: default_store_backend(),
            path: default_store_path(),
            cache_size_mb: default_store_cache_size_mb(),
            etcd_endpoints: Vec::new(),
            etcd_prefix: default_etcd_prefix(),
            etcd_lease_ttl_seconds: default_etcd_lease_ttl(),
            etcd_max_txn_ops: default_etcd_max_txn_ops(),
            etcd_instance_name: None,
            etcd_tls: None,
            etcd_username: None,
            etcd_password_file: None,
        }
    }
}

/// One registry entry: a cluster releases can target (the environment abstraction).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ContextConfig {
    pub name: String,
    pub region: String,
    pub env: String,
    pub cloud: String,
    pub cluster_name: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

impl From<ContextConfig> for convoy_release::Context {
    fn from(c: ContextConfig) -> Self {
        convoy_release::Context {
            name: c.name,
            region: c.region,
            env: c.env,
            cloud: c.cloud,
            cluster_name: c.cluster_name,
            labels: c.labels,
        }
    }
}

/// Log output.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `pretty` or `json`.
    #[serde(default = "default_log_format")]
    pub format: String,
    /// An `EnvFilter` directive (`info`, `convoy_daemon=debug`); `RUST_LOG` overrides it.
    #[serde(default = "default_log_level")]
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: default_log_format(),
            level: default_log_level(),
        }
    }
}

fn default_heartbeat() -> u32 {
    10
}
fn default_listen() -> String {
    "127.0.0.1:7443".into()
}
fn default_store_backend() -> String {
    "embedded".into()
}
fn default_store_path() -> PathBuf {
    PathBuf::from("convoy-state.redb")
}
fn default_etcd_prefix() -> String {
    "/convoy".into()
}
fn default_etcd_lease_ttl() -> u32 {
    10
}
fn default_link_limit() -> usize {
    convoy_proto::AGENT_LINK_MESSAGE_LIMIT
}

fn default_store_cache_size_mb() -> u32 {
    64
}
fn default_etcd_max_txn_ops() -> u32 {
    128
}
fn default_log_format() -> String {
    "pretty".into()
}
fn default_log_level() -> String {
    "info".into()
}

impl DaemonConfig {
    /// Loads `path` (if given), applies `CONVOY_DAEMON__*` overrides from the process
    /// environment, and validates the result.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_with_env(path, std::env::vars())
    }

    /// As [`DaemonConfig::load`], with the environment given explicitly (for tests).
    pub fn load_with_env(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let source_name = path.map_or_else(|| "<defaults>".to_string(), |p| p.display().to_string());
        let cfg: DaemonConfig =
            convoy_common::layered_config::load(path, ENV_PREFIX, env).map_err(|message| {
                ConfigError::Load {
                    source_name: source_name.clone(),
                    message,
                }
            })?;
        cfg.validate().map_err(|(key, reason)| ConfigError::Invalid {
            source_name,
            key,
            reason,
        })?;
        Ok(cfg)
    }

    /// The parsed gRPC listen address.
    pub fn listen_addr(&self) -> SocketAddr {
        // validate() checked it parses.
        self.listen
            .parse()
            .unwrap_or_else(|_| default_listen().parse().expect("default"))
    }

    fn validate(&self) -> Result<(), (String, String)> {
        let bad = |k: &str, r: String| Err((k.to_string(), r));
        if self.listen.parse::<SocketAddr>().is_err() {
            return bad(
                "listen",
                format!("expected host:port (an IP and a port), got {:?}", self.listen),
            );
        }
        if self.tls.is_none() && !self.listen_addr().ip().is_loopback() && !self.allow_plaintext {
            return bad(
                "listen",
                format!(
                    "{} is not a loopback address and `tls` is not configured: bearer tokens would cross the network in plaintext; configure `tls`, listen on 127.0.0.1, or set `allow_plaintext: true` (e.g. behind a TLS-terminating proxy)",
                    self.listen
                ),
            );
        }
        if let Some(p) = &self.secret_paths {
            p.validate()?;
        }
        self.render.validate()?;
        self.notifications.validate()?;
        self.gates.validate()?;
        let envs: std::collections::BTreeSet<&str> = self.contexts.iter().map(|c| c.env.as_str()).collect();
        for (env, rule) in &self.promotion {
            if rule.after.trim().is_empty() || rule.after == *env {
                return bad(
                    &format!("promotion.{env}.after"),
                    format!("expected another environment's name, got {:?}", rule.after),
                );
            }
            let known = |e: &str| self.contexts.is_empty() || envs.contains(e);
            if !known(env) || !known(&rule.after) {
                return bad(
                    &format!("promotion.{env}"),
                    format!(
                        "{env} after {}: both must be environments of the registry ({})",
                        rule.after,
                        envs.iter().copied().collect::<Vec<_>>().join(", ")
                    ),
                );
            }
        }
        crate::sources::validate(&self.chart_sources)?;
        if self.vault.is_none()
            && let Some(key) = crate::sources::first_vault_reference(&self.chart_sources)
        {
            return bad(
                &key,
                "names a Vault secret, but the coordinator has no `vault:` section to read it with (configure `vault`, or use a file)".into(),
            );
        }
        if let Some(m) = &self.metrics_listen
            && m.parse::<SocketAddr>().is_err()
        {
            return bad("metrics_listen", format!("expected host:port, got {m:?}"));
        }
        if !(1..=168).contains(&self.ui.session_hours) {
            return bad(
                "ui.session_hours",
                format!("expected 1 to 168 hours, got {}", self.ui.session_hours),
            );
        }
        if self.ui.enabled {
            let Some(m) = self
                .metrics_listen
                .as_deref()
                .and_then(|m| m.parse::<SocketAddr>().ok())
            else {
                return bad(
                    "ui.enabled",
                    "the web status page is served on `metrics_listen`, which is not set".into(),
                );
            };
            if !m.ip().is_loopback() && !self.allow_plaintext {
                return bad(
                    "ui.enabled",
                    format!(
                        "metrics_listen {m} is not a loopback address and serves plain HTTP: the page's login would send API tokens, and its session cookie, across the network in plaintext; listen on 127.0.0.1, or set `allow_plaintext: true` behind a TLS-terminating proxy"
                    ),
                );
            }
        }
        match self.store.backend.as_str() {
            "embedded" => {}
            "etcd" if self.store.etcd_endpoints.is_empty() => {
                return bad(
                    "store.etcd_endpoints",
                    "the etcd backend needs at least one endpoint".into(),
                );
            }
            "etcd" => {
                let st = &self.store;
                if !st.etcd_prefix.starts_with('/') || st.etcd_prefix.ends_with('/') {
                    return bad(
                        "store.etcd_prefix",
                        format!(
                            "expected a key prefix starting with `/` and not ending with one, like `/convoy`; got {:?}",
                            st.etcd_prefix
                        ),
                    );
                }
                if !(2..=3600).contains(&st.etcd_lease_ttl_seconds) {
                    return bad(
                        "store.etcd_lease_ttl_seconds",
                        format!("expected 2 to 3600 seconds, got {}", st.etcd_lease_ttl_seconds),
                    );
                }
                if st.etcd_max_txn_ops == 0 {
                    return bad("store.etcd_max_txn_ops", "must be at least 1".into());
                }
                if st
                    .etcd_instance_name
                    .as_deref()
                    .is_some_and(|n| n.trim().is_empty())
                {
                    return bad("store.etcd_instance_name", "must not be empty when set".into());
                }
                if st.etcd_username.is_some() != st.etcd_password_file.is_some() {
                    return bad(
                        if st.etcd_username.is_some() {
                            "store.etcd_password_file"
                        } else {
                            "store.etcd_username"
                        },
                        "etcd authentication needs both store.etcd_username and store.etcd_password_file"
                            .into(),
                    );
                }
                if let Some(t) = &st.etcd_tls
                    && t.cert_file.is_some() != t.key_file.is_some()
                {
                    return bad(
                        if t.cert_file.is_some() {
                            "store.etcd_tls.key_file"
                        } else {
                            "store.etcd_tls.cert_file"
                        },
                        "a client certificate needs both cert_file and key_file".into(),
                    );
                }
                for e in &st.etcd_endpoints {
                    let https = e.starts_with("https://");
                    if !https && !e.starts_with("http://") {
                        return bad(
                            "store.etcd_endpoints",
                            format!("{e:?} is not a URL (expected http://HOST:2379 or https://HOST:2379)"),
                        );
                    }
                    if https != st.etcd_tls.is_some() {
                        return bad(
                            "store.etcd_endpoints",
                            if https {
                                format!(
                                    "{e} is https but store.etcd_tls is not set (its ca_file verifies etcd)"
                                )
                            } else {
                                format!(
                                    "{e} is plain http while store.etcd_tls is set: use https:// endpoints"
                                )
                            },
                        );
                    }
                }
                if !cfg!(feature = "etcd") {
                    return bad(
                        "store.backend",
                        "this convoyd was built without the `etcd` cargo feature (on by default): rebuild with it to use etcd".into(),
                    );
                }
            }
            other => {
                return bad(
                    "store.backend",
                    format!("expected `embedded` or `etcd`, got {other:?}"),
                );
            }
        }
        if !matches!(self.log.format.as_str(), "pretty" | "json") {
            return bad(
                "log.format",
                format!("expected `pretty` or `json`, got {:?}", self.log.format),
            );
        }
        if self.vault.is_some() && self.dev_secrets_file.is_some() {
            return bad(
                "dev_secrets_file",
                "set either `vault` or `dev_secrets_file`, not both".into(),
            );
        }
        if self.heartbeat_seconds == 0 {
            return bad("heartbeat_seconds", "must be at least 1".into());
        }
        let most = convoy_proto::AGENT_LINK_MESSAGE_LIMIT;
        if !(64 << 10..=most).contains(&self.agent_link_max_message_bytes) {
            return bad(
                "agent_link_max_message_bytes",
                format!(
                    "expected 65536 to {most} (what agents accept), got {}",
                    self.agent_link_max_message_bytes
                ),
            );
        }
        if let Some(t) = &self.tls {
            for (k, p) in [
                ("tls.cert_file", Some(&t.cert_file)),
                ("tls.key_file", Some(&t.key_file)),
                ("tls.client_ca_file", t.client_ca_file.as_ref()),
            ] {
                if let Some(p) = p
                    && !p.is_file()
                {
                    return bad(k, format!("{} does not exist or is not a file", p.display()));
                }
            }
            if t.client_cert_optional && t.client_ca_file.is_none() {
                return bad(
                    "tls.client_cert_optional",
                    "only means something with `tls.client_ca_file` (without it no client certificate is asked for)".into(),
                );
            }
        }
        crate::auth::check_tokens(&self.auth.tokens)?;
        crate::auth::compile_certificates(&self.auth.certificates)?;
        if !self.auth.certificates.is_empty() && self.tls.as_ref().is_none_or(|t| t.client_ca_file.is_none())
        {
            return bad(
                "auth.certificates",
                "client-certificate mappings need `tls.client_ca_file` (the CA that verifies client certificates); without it no certificate is ever presented".into(),
            );
        }
        if let Some(i) = self.auth.agents.iter().position(|a| a.common_name.is_some())
            && self.tls.as_ref().is_none_or(|t| t.client_ca_file.is_none())
        {
            return bad(
                &format!("auth.agents[{i}].common_name"),
                "binding an agent to a client certificate needs `tls.client_ca_file` (the CA that verifies it)".into(),
            );
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, c) in self.contexts.iter().enumerate() {
            if c.name.is_empty() {
                return bad(&format!("contexts[{i}].name"), "must not be empty".into());
            }
            if !seen.insert(&c.name) {
                return bad(
                    &format!("contexts[{i}].name"),
                    format!("duplicate context {:?}", c.name),
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file(contents: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
        f.write_all(contents.as_bytes()).unwrap();
        f
    }

    fn load(contents: &str, env: &[(&str, &str)]) -> Result<DaemonConfig, ConfigError> {
        let f = file(contents);
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        DaemonConfig::load_with_env(Some(f.path()), env)
    }

    #[test]
    fn etcd_store_options() {
        let cfg = load(
            "store: {backend: etcd, etcd_endpoints: [\"http://e:2379\"], etcd_lease_ttl_seconds: 4}\n",
            &[],
        )
        .unwrap();
        assert_eq!(cfg.store.etcd_prefix, "/convoy");
        assert_eq!(cfg.store.etcd_lease_ttl_seconds, 4);
        assert_eq!(cfg.store.etcd_max_txn_ops, 128);
        for (bad, key) in [
            ("etcd_prefix: convoy", "store.etcd_prefix"),
            ("etcd_prefix: /convoy/", "store.etcd_prefix"),
            ("etcd_lease_ttl_seconds: 1", "store.etcd_lease_ttl_seconds"),
            ("etcd_max_txn_ops: 0", "store.etcd_max_txn_ops"),
        ] {
            let err = load(
                &format!("store: {{backend: etcd, etcd_endpoints: [\"http://e:2379\"], {bad}}}\n"),
                &[],
            )
            .unwrap_err()
            .to_string();
            assert!(err.contains(key), "{bad}: {err}");
        }
    }

    #[test]
    fn the_agent_link_limit_is_at_most_what_agents_accept() {
        let cfg = load("", &[]).unwrap();
        assert_eq!(
            cfg.agent_link_max_message_bytes,
            convoy_proto::AGENT_LINK_MESSAGE_LIMIT
        );
        assert_eq!(
            load("agent_link_max_message_bytes: 1048576\n", &[])
                .unwrap()
                .agent_link_max_message_bytes,
            1 << 20
        );
        for bad in ["100", "33554432"] {
            let err = load(&format!("agent_link_max_message_bytes: {bad}\n"), &[])
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("agent_link_max_message_bytes") && err.contains("what agents accept"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn defaults_without_a_file() {
        let cfg = DaemonConfig::load_with_env(None, Vec::new()).unwrap();
        assert_eq!(cfg.listen, "127.0.0.1:7443");
        assert_eq!(cfg.store.backend, "embedded");
    }

    #[test]
    fn file_then_environment_override() {
        let cfg = load(
            "listen: 127.0.0.1:9000\nstore: {path: /tmp/a.redb}\n",
            &[
                ("CONVOY_DAEMON__STORE__PATH", "/tmp/b.redb"),
                ("CONVOY_SERVER", "x"),
            ],
        )
        .unwrap();
        assert_eq!(cfg.listen, "127.0.0.1:9000");
        assert_eq!(cfg.store.path, PathBuf::from("/tmp/b.redb"));
    }

    #[test]
    fn unknown_key_is_refused_with_its_name() {
        let err = load("lisen: 127.0.0.1:9000\n", &[]).unwrap_err().to_string();
        assert!(err.contains("lisen"), "{err}");
    }

    #[test]
    fn etcd_tls_and_authentication_must_be_whole() {
        let store = |keys: &str| load(&format!("store: {{backend: etcd, {keys}}}\n"), &[]);
        let err = store("etcd_endpoints: [\"https://e:2379\"]")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("store.etcd_endpoints") && err.contains("store.etcd_tls"),
            "{err}"
        );
        let err = store("etcd_endpoints: [\"http://e:2379\"], etcd_tls: {ca_file: /ca.pem}")
            .unwrap_err()
            .to_string();
        assert!(err.contains("use https://"), "{err}");
        let err = store("etcd_endpoints: [\"http://e:2379\"], etcd_username: convoy")
            .unwrap_err()
            .to_string();
        assert!(err.contains("store.etcd_password_file"), "{err}");
        let err =
            store("etcd_endpoints: [\"https://e:2379\"], etcd_tls: {ca_file: /ca.pem, cert_file: /c.pem}")
                .unwrap_err()
                .to_string();
        assert!(err.contains("store.etcd_tls.key_file"), "{err}");
        let cfg = store(
            "etcd_endpoints: [\"https://e:2379\"], etcd_tls: {ca_file: /ca.pem, cert_file: /c.pem, key_file: /k.pem}, \
             etcd_username: convoy, etcd_password_file: /pw",
        )
        .unwrap();
        assert_eq!(cfg.store.etcd_username.as_deref(), Some("convoy"));
        // The files are read when convoyd starts (and by --check-config), naming the key.
        let err = crate::server::etcd_settings(&cfg).unwrap_err().to_string();
        assert!(
            err.contains("store.etcd_tls.cert_file /c.pem") && err.contains("cannot read"),
            "{err}"
        );
    }

    #[test]
    fn a_chart_source_naming_vault_needs_the_vault_section() {
        let source = "chart_sources:\n  - {url: oci://r.example.com/team, username: ci, password_from_vault: {vault_path: /kv/ci/registry, vault_key: password}}\n";
        let err = load(source, &[]).unwrap_err().to_string();
        assert!(
            err.contains("chart_sources[0].password_from_vault") && err.contains("no `vault:` section"),
            "{err}"
        );
        let token = "chart_sources:\n  - {url: https://c.example.com}\n  - {url: https://d.example.com, token_from_vault: {vault_path: /kv/ci/d, vault_key: token}}\n";
        let err = load(token, &[]).unwrap_err().to_string();
        assert!(err.contains("chart_sources[1].token_from_vault"), "{err}");
        let with_vault =
            format!("{source}vault: {{address: http://127.0.0.1:8200, auth: {{method: token, token: t}}}}\n");
        let cfg = load(&with_vault, &[]).unwrap();
        let shown = format!("{:?}", cfg.chart_sources);
        assert!(shown.contains("/kv/ci/registry"), "{shown}");
        let typo = "chart_sources:\n  - {url: https://c.example.com, token_from_vault: {path: /kv/ci/d, key: token}}\n";
        assert!(load(typo, &[]).is_err());
    }

    #[test]
    fn bad_listen_is_refused_with_key_and_reason() {
        let err = load("listen: nowhere\n", &[]).unwrap_err().to_string();
        assert!(err.contains("`listen`") && err.contains("host:port"), "{err}");
    }

    #[test]
    fn wrong_type_names_the_key() {
        let err = load("contexts: {a: 1}\n", &[]).unwrap_err().to_string();
        assert!(err.contains("contexts"), "{err}");
    }

    #[test]
    fn env_override_is_validated_too() {
        let err = load("", &[("CONVOY_DAEMON__STORE__BACKEND", "postgres")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("store.backend") && err.contains("postgres"), "{err}");
    }

    #[test]
    fn render_limits_default_to_bounds_no_chart_meets_and_are_validated() {
        let cfg = DaemonConfig::load_with_env(None, Vec::new()).unwrap();
        let l = cfg.render.limits();
        assert_eq!(l.render, convoy_release::RenderLimits::default());
        assert_eq!(l.load, convoy_chart::LoadLimits::default());
        assert_eq!(l.load.max_total_bytes, 100 << 20);
        let cfg = load(
            "render: {time_limit_seconds: 3, max_chart_mib: 8}\n",
            &[("CONVOY_DAEMON__RENDER__CONCURRENT_SUBMITS", "4")],
        )
        .unwrap();
        let l = cfg.render.limits();
        assert_eq!(l.render.time, std::time::Duration::from_secs(3));
        assert_eq!(l.load.max_total_bytes, 8 << 20);
        assert_eq!(l.concurrent_submits, 4);
        let err = load("render: {time_limit_seconds: 0}\n", &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("render.time_limit_seconds") && err.contains("at least 1"),
            "{err}"
        );
        let err = load("render: {max_chart_mib: 2, max_chart_file_mib: 5}\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("render.max_chart_file_mib"), "{err}");
        let err = load("render: {time_limit: 3}\n", &[]).unwrap_err().to_string();
        assert!(err.contains("time_limit"), "{err}");
    }

    /// A TLS section whose files exist, with or without a client CA.
    fn tls(dir: &Path, client_ca: bool) -> String {
        for f in ["cert.pem", "key.pem", "ca.pem"] {
            std::fs::write(dir.join(f), "PEM").unwrap();
        }
        let ca = if client_ca {
            format!(", client_ca_file: {}", dir.join("ca.pem").display())
        } else {
            String::new()
        };
        format!(
            "tls: {{cert_file: {}, key_file: {}{ca}}}\n",
            dir.join("cert.pem").display(),
            dir.join("key.pem").display()
        )
    }

    #[test]
    fn certificate_mappings_are_validated_at_load() {
        let dir = tempfile::tempdir().unwrap();
        let mapped = "auth:\n  certificates:\n    - {common_name: jenkins-prod, role: deployer}\n";
        let cfg = load(&format!("{}{mapped}", tls(dir.path(), true)), &[]).unwrap();
        assert_eq!(cfg.auth.certificates.len(), 1);

        // Nothing would verify (or even ask for) a client certificate.
        for tls_section in [String::new(), tls(dir.path(), false)] {
            let err = load(&format!("{tls_section}{mapped}"), &[])
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("`auth.certificates`") && err.contains("tls.client_ca_file"),
                "{err}"
            );
        }
        let err = load(
            &format!(
                "{}auth:\n  certificates:\n    - {{common_name: a, role: viewer}}\n    - {{common_name: '', role: viewer}}\n",
                tls(dir.path(), true)
            ),
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("`auth.certificates[1].common_name`"), "{err}");
    }

    #[test]
    fn optional_client_certificates_need_a_client_ca() {
        let dir = tempfile::tempdir().unwrap();
        let optional = [("CONVOY_DAEMON__TLS__CLIENT_CERT_OPTIONAL", "true")];
        assert!(
            load(&tls(dir.path(), true), &optional)
                .unwrap()
                .tls
                .unwrap()
                .client_cert_optional
        );
        let err = load(&tls(dir.path(), false), &optional).unwrap_err().to_string();
        assert!(
            err.contains("`tls.client_cert_optional`") && err.contains("client_ca_file"),
            "{err}"
        );
    }

    #[test]
    fn unknown_certificate_role_names_the_field() {
        let err = load(
            "auth:\n  certificates:\n    - {common_name: a, role: viewer}\n    - {common_name: b, role: root}\n",
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("auth.certificates[1].role") && err.contains("root"),
            "{err}"
        );
    }

    #[test]
    fn unknown_token_role_names_the_field_and_the_roles() {
        let err = load(
            "auth:\n  tokens:\n    - {name: ci, role: deployer, token: t1}\n    - {name: ops, role: root, token: t2}\n",
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.ends_with(
                ": `auth.tokens[1].role`: unknown role \"root\"; expected one of viewer, deployer, operator, admin"
            ),
            "{err}"
        );
        assert!(!err.contains("t2"), "never the token: {err}");
    }

    #[test]
    fn plaintext_outside_loopback_needs_allow_plaintext() {
        let err = load("listen: 0.0.0.0:7443\n", &[]).unwrap_err().to_string();
        assert!(
            err.contains("`listen`") && err.contains("plaintext") && err.contains("allow_plaintext"),
            "{err}"
        );
        assert!(load("listen: 0.0.0.0:7443\nallow_plaintext: true\n", &[]).is_ok());
        assert!(load("listen: '[::1]:7443'\n", &[]).is_ok());
    }

    #[test]
    fn ui_needs_a_loopback_metrics_listener_unless_plaintext_is_allowed() {
        let cfg = load("metrics_listen: 127.0.0.1:9090\nui: {enabled: true}\n", &[]).unwrap();
        assert!(cfg.ui.enabled);
        assert_eq!(cfg.ui.session_hours, 12);
        let err = load("ui: {enabled: true}\n", &[]).unwrap_err().to_string();
        assert!(
            err.contains("`ui.enabled`") && err.contains("metrics_listen"),
            "{err}"
        );
        let err = load("metrics_listen: 0.0.0.0:9090\nui: {enabled: true}\n", &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`ui.enabled`") && err.contains("plaintext") && err.contains("allow_plaintext"),
            "{err}"
        );
        assert!(
            load(
                "metrics_listen: 0.0.0.0:9090\nallow_plaintext: true\nui: {enabled: true}\n",
                &[]
            )
            .is_ok()
        );
        // Without the page, metrics may listen anywhere as before.
        assert!(load("metrics_listen: 0.0.0.0:9090\n", &[]).is_ok());
        let err = load("ui: {enabled: false, session_hours: 0}\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("`ui.session_hours`"), "{err}");
        let err = load("ui: {enabled: true, sessions: 3}\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("sessions"), "{err}");
    }

    #[test]
    fn scopes_and_secret_paths_are_validated_at_load() {
        let cfg = load(
            "auth:\n  tokens:\n    - {name: ci-dev, role: deployer, token: t1, scope: {environments: [dev], namespaces: [shop]}}\n    - {name: admin, role: admin, token: t2}\n\
             secret_paths:\n  default: ['kv/{env}/{namespace}/']\n  environments: {prod: ['/kv/prod/{namespace}/']}\n",
            &[],
        )
        .unwrap();
        let scope = cfg.auth.tokens[0].scope.as_ref().unwrap();
        assert_eq!(scope.environments, ["dev"]);
        let warnings = crate::auth::unscoped_warnings(&cfg.auth);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].starts_with("auth.tokens[1] (admin) has no scope"),
            "{warnings:?}"
        );
        let paths = cfg.secret_paths.unwrap();
        assert_eq!(paths.allowed("dev", "shop"), ["kv/dev/shop/"]);
        assert_eq!(paths.allowed("prod", "shop"), ["kv/prod/shop/"]);

        let err = load(
            "auth:\n  tokens:\n    - {name: a, role: viewer, token: t1, scope: {envs: [dev]}}\n",
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("envs"), "unknown keys in a scope are errors: {err}");
        let err = load(
            "auth:\n  tokens:\n    - {name: a, role: viewer, token: t1, scope: {}}\n",
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("`auth.tokens[0].scope`"), "{err}");
        let err = load("secret_paths: {default: ['kv/{team}/']}\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("`secret_paths.default[0]`"), "{err}");
    }

    #[test]
    fn duplicate_context_is_refused() {
        let ctx = "{name: a, region: r, env: dev, cloud: gcp, clusterName: c}";
        let err = load(&format!("contexts: [{ctx}, {ctx}]\n"), &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("contexts[1].name") && err.contains("duplicate"),
            "{err}"
        );
    }
}

#[cfg(test)]
mod example_config {
    use super::*;

    #[test]
    fn the_shipped_example_is_valid() {
        // Every key and type (the files it names exist on a real host, not here).
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/convoyd.yaml");
        let text = std::fs::read_to_string(&path).unwrap();
        let cfg: DaemonConfig = serde_yaml::from_str(&text).unwrap();
        assert_eq!(cfg.auth.agents.len(), 3);
        let certs = crate::auth::compile_certificates(&cfg.auth.certificates).unwrap();
        assert_eq!(certs[0].principal_name(), "cert:CN=jenkins-prod");
        assert!(cfg.tls.as_ref().is_some_and(|t| t.client_ca_file.is_some()));
        assert!(cfg.vault.is_some() && cfg.tls.is_some());
        // Loading checks the files too, and names the missing one.
        let err = DaemonConfig::load_with_env(Some(&path), Vec::new())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`tls.cert_file`") && err.contains("does not exist"),
            "{err}"
        );
    }
}

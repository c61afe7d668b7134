//! Wiring: the gRPC server (public API, agent link, health, reflection) around a
//! started core. `convoyd` and the tests both start the daemon through [`start`].
//!
//! On the etcd backend several coordinators share one state and exactly one acts:
//! [`start`] first wins the leader election (serving as a standby meanwhile: `/readyz`
//! 503, every gRPC call UNAVAILABLE naming the leader), then restores and serves; a
//! leader that loses its leadership stops (see [`Running::wait_for_exit`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use convoy_proto::v1 as pb;
use tokio::net::TcpListener;

use crate::api::{ClusterApi, ReleaseApi};
use crate::auth::Authenticator;
use crate::config::DaemonConfig;
use crate::core::{ContextInfo, Coordinator, CoreError, CoreSettings};
use crate::link::AgentLinkService;
use crate::prepare::Preparer;
use crate::store::etcd::{
    Campaign, Candidate, EtcdCredentials, EtcdSettings, EtcdStore, EtcdTls, Leadership,
};
use crate::store::{MemoryStore, RedbStore, StateStore, StoreError};

/// How long a graceful stop waits for the core and for open calls.
pub const STOP_GRACE: Duration = Duration::from_secs(3);

/// Why the coordinator refused to start, or stopped serving. Each names the setting,
/// file or part at fault and, where another error is behind it, keeps it as its
/// source.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// `registry_file` could not be read or is invalid (the release crate's error names
    /// the file and, for a validation error, the line and column of each problem).
    #[error("registry_file: {source}")]
    RegistryFile {
        path: PathBuf,
        #[source]
        source: convoy_release::ReleaseError,
    },
    /// A context of `registry_file` is also defined inline.
    #[error("registry_file {}: context {context:?} is also defined inline in `contexts`", path.display())]
    DuplicateContext { path: PathBuf, context: String },
    /// The contexts, inline and from `registry_file`, do not make a valid registry.
    #[error("registry: {reason}")]
    Registry { reason: String },
    /// The `vault` section is invalid (names the key).
    #[error(transparent)]
    Vault(#[from] convoy_secrets::SecretsError),
    /// `dev_secrets_file` could not be read or is not a map of `"path#key": value`
    /// (the reason names the file).
    #[error("{reason}")]
    DevSecrets { path: PathBuf, reason: String },
    /// A credential or certificate file of `chart_sources` could not be read or is
    /// malformed (the reason names the entry, the key and the file).
    #[error("{reason}")]
    ChartSources { reason: String },
    /// The `auth` section is invalid (the reason names the key).
    #[error("refusing to start: {reason}")]
    Auth { reason: String },
    /// The notifications could not be set up (the reason names the webhook and its
    /// `url_file`, or the HTTPS client).
    #[error("refusing to start: {reason}")]
    Notifications { reason: String },
    /// The `gates` section could not be set up (the reason names the key and file).
    #[error("refusing to start: {reason}")]
    Gates { reason: String },
    /// `store.backend` names a backend this build does not have.
    #[error("store.backend {backend:?} is not available in this build (configure embedded or etcd)")]
    UnknownStore { backend: String },
    /// The etcd store was opened before this coordinator won the election.
    #[error("store.backend etcd: the store opens only once this coordinator leads (see server::start)")]
    NotLeading,
    /// The state store could not be opened, or (etcd) this coordinator could not
    /// stand for election; the store's error names the store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A file named by the configuration (`setting`) could not be read.
    #[error("{setting} {}: {source}", path.display())]
    ReadFile {
        setting: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The `tls` certificate, key or client CA is not usable.
    #[error("tls configuration: {0}")]
    Tls(#[source] tonic::transport::Error),
    /// `metrics_listen` could not be bound.
    #[error("binding metrics_listen {addr}: {source}")]
    BindMetrics {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    /// A listening socket (`which`: the gRPC one handed to [`start`], or
    /// `metrics_listen`) could not be used.
    #[error("the {which} listener: {source}")]
    Listener {
        which: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The gRPC reflection service could not be built.
    #[error("gRPC reflection: {0}")]
    Reflection(#[source] tonic_reflection::server::Error),
    /// The core could not start (restoring the state from the store).
    #[error("starting the core: {0}")]
    Core(#[source] CoreError),
    /// The gRPC server failed while serving.
    #[error("gRPC server: {0}")]
    Serve(#[source] tonic::transport::Error),
    /// On etcd: this coordinator lost its leadership (`reason`) and stopped acting.
    #[error("{reason}: stopped acting; restart convoyd to rejoin as a standby")]
    LeadershipLost { reason: String },
    /// The core stopped because a commit failed (`reason`): its memory is ahead of
    /// the store.
    #[error("{reason}: stopped; restart convoyd to resume from the state store")]
    CoreFailed { reason: String },
    /// The server task panicked or was cancelled.
    #[error("server task: {0}")]
    Task(#[source] tokio::task::JoinError),
}

/// The result of this module's functions.
pub type Result<T, E = ServerError> = std::result::Result<T, E>;

/// A running daemon.
pub struct Running {
    pub addr: SocketAddr,
    pub core: Coordinator,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<Result<()>>,
    /// On etcd: this coordinator's term, given up on a clean stop.
    leadership: Option<Leadership>,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Running({})", self.addr)
    }
}

impl Running {
    /// Stops serving and the core.
    /// A graceful stop (SIGTERM, SIGINT): the server takes no new connection or call,
    /// the core finishes the message at hand and its commit, then stops, which closes
    /// every agent session; calls still open are cut after [`STOP_GRACE`]. Unfinished
    /// operations are in the store and resume at the next start.
    pub async fn stop(mut self) -> Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.core.shutdown();
        if tokio::time::timeout(STOP_GRACE, self.core.stopped())
            .await
            .is_err()
        {
            tracing::warn!(grace = ?STOP_GRACE, "the core did not stop in time");
        }
        let served = match tokio::time::timeout(STOP_GRACE, &mut self.server).await {
            Ok(joined) => joined.map_err(ServerError::Task)?,
            Err(_) => {
                tracing::warn!(grace = ?STOP_GRACE, "calls still open after the grace period: closing them");
                self.server.abort();
                Ok(())
            }
        };
        if let Some(l) = self.leadership.take() {
            l.resign().await;
        }
        served
    }

    /// Resolves when the server stops by itself: its error, or why it stopped acting
    /// (leadership lost, a failed commit), for convoyd to exit non-zero.
    pub async fn wait_for_exit(&mut self) -> Result<()> {
        (&mut self.server).await.map_err(ServerError::Task)?
    }
}

/// The registry: inline contexts plus the registry file's.
pub fn registry(cfg: &DaemonConfig) -> Result<Vec<ContextInfo>> {
    let mut out: Vec<ContextInfo> = cfg.contexts.iter().cloned().map(ContextInfo::from).collect();
    if let Some(path) = &cfg.registry_file {
        let file = convoy_release::Registry::load(path).map_err(|source| ServerError::RegistryFile {
            path: path.clone(),
            source,
        })?;
        for c in file.contexts() {
            if out.iter().any(|o| o.name == c.name) {
                return Err(ServerError::DuplicateContext {
                    path: path.clone(),
                    context: c.name.clone(),
                });
            }
            out.push(c.clone());
        }
    }
    Ok(out)
}

/// The production preparer for a config: its registry and secret source.
pub fn pipeline(cfg: &DaemonConfig) -> Result<crate::pipeline::Pipeline> {
    use crate::pipeline::{Pipeline, SecretSource};
    let reg = convoy_release::Registry::from_contexts(registry(cfg)?)
        .map_err(|reason| ServerError::Registry { reason })?;
    let mut chart_sources = crate::sources::ChartSources::new(cfg.chart_sources.clone());
    let secrets = match (&cfg.vault, &cfg.dev_secrets_file) {
        (Some(v), _) => {
            let vault = std::sync::Arc::new(convoy_secrets::Vault::new(v)?);
            vault.spawn_renewal();
            chart_sources = chart_sources.with_vault(std::sync::Arc::new(SourceVault(vault.clone())));
            SecretSource::Vault(vault)
        }
        (None, Some(f)) => {
            tracing::warn!(file = %f.display(), "secrets come from a DEVELOPMENT secrets file, not Vault: never use this in production");
            SecretSource::DevFile(
                Pipeline::dev_secrets(f).map_err(|reason| ServerError::DevSecrets {
                    path: f.clone(),
                    reason,
                })?,
            )
        }
        (None, None) => SecretSource::None,
    };
    if cfg.secret_paths.is_none() && !matches!(secrets, SecretSource::None) {
        tracing::warn!(
            "secret_paths is not configured: a release may name any Vault path its environment's Vault role can read; configure prefixes such as `kv/{{env}}/{{namespace}}/`"
        );
    }
    chart_sources
        .check_credential_files()
        .map_err(|reason| ServerError::ChartSources { reason })?;
    Ok(Pipeline::new(reg, secrets)
        .with_secret_paths(cfg.secret_paths.clone())
        .with_limits(cfg.render.limits())
        .with_chart_sources(chart_sources)
        .with_gates(cfg.gates.clone()))
}

/// What automatic gates are measured with (`None` when none is configured): their token
/// files read, once at start (`convoyd --check-config` calls it too).
pub fn gates(cfg: &DaemonConfig) -> Result<Option<crate::gates::Gates>, ServerError> {
    if cfg.gates.prometheus.is_empty() && cfg.gates.webhooks.is_empty() {
        return Ok(None);
    }
    crate::gates::Gates::new(&cfg.gates)
        .map(Some)
        .map_err(|reason| ServerError::Gates { reason })
}

/// The chart sources' `password_from_vault` / `token_from_vault`, read with the
/// coordinator's own Vault auth (`vault.auth`).
struct SourceVault(std::sync::Arc<convoy_secrets::Vault>);

impl crate::sources::VaultReader for SourceVault {
    fn read<'a>(&'a self, path: &'a str, key: &'a str) -> crate::sources::ReadFuture<'a> {
        Box::pin(async move {
            use convoy_secrets::SecretsError;
            match self.0.read_own("chart_sources", path, key).await {
                Ok(value) => Ok(value.expose().to_string()),
                // The caller names the entry, path and key: only why is said here.
                Err(SecretsError::Secret(f)) => Err(f.cause.to_string()),
                Err(SecretsError::Login { auth, cause, .. }) => {
                    Err(format!("Vault login with {auth} failed: {cause}"))
                }
                Err(other) => Err(other.to_string()),
            }
        })
    }
}

/// Opens the configured store. The etcd backend needs this coordinator's leadership:
/// every commit is fenced on it.
pub fn open_store(cfg: &DaemonConfig, leadership: Option<&Leadership>) -> Result<StateStore> {
    match (cfg.store.backend.as_str(), leadership) {
        ("embedded", _) => Ok(StateStore::new(Box::new(RedbStore::open_with_cache(
            &cfg.store.path,
            (cfg.store.cache_size_mb as usize) << 20,
        )?))),
        ("memory", _) => Ok(StateStore::new(Box::new(MemoryStore::default()))),
        ("etcd", Some(l)) => Ok(StateStore::new(Box::new(EtcdStore::fenced(
            etcd_settings(cfg)?,
            l,
        )?))),
        ("etcd", None) => Err(ServerError::NotLeading),
        (other, _) => Err(ServerError::UnknownStore {
            backend: other.to_string(),
        }),
    }
}

/// The etcd connection settings of a config, with its TLS files and password read
/// (`convoyd --check-config` reads them too).
pub fn etcd_settings(cfg: &DaemonConfig) -> Result<EtcdSettings, StoreError> {
    let st = &cfg.store;
    let read = |field: &str, path: &std::path::Path| {
        std::fs::read(path).map_err(|e| StoreError::Backend {
            path: format!("{field} {}", path.display()),
            message: format!("cannot read it: {e}"),
        })
    };
    let mut s = EtcdSettings::new(st.etcd_endpoints.clone());
    s.prefix.clone_from(&st.etcd_prefix);
    s.max_txn_ops = st.etcd_max_txn_ops as usize;
    if let Some(t) = &st.etcd_tls {
        let identity = match (&t.cert_file, &t.key_file) {
            (Some(c), Some(k)) => Some((
                read("store.etcd_tls.cert_file", c)?,
                read("store.etcd_tls.key_file", k)?,
            )),
            _ => None,
        };
        s.tls = Some(EtcdTls {
            ca_pem: read("store.etcd_tls.ca_file", &t.ca_file)?,
            identity,
            server_name: t.server_name.clone(),
        });
    }
    if let (Some(user), Some(file)) = (&st.etcd_username, &st.etcd_password_file) {
        let password =
            String::from_utf8(read("store.etcd_password_file", file)?).map_err(|_| StoreError::Backend {
                path: format!("store.etcd_password_file {}", file.display()),
                message: "expected a UTF-8 password".into(),
            })?;
        let password = password.trim_end_matches(['\n', '\r']).to_string();
        if password.is_empty() {
            return Err(StoreError::Backend {
                path: format!("store.etcd_password_file {}", file.display()),
                message: "the file is empty: expected the etcd user's password".into(),
            });
        }
        s.credentials = Some(EtcdCredentials {
            username: user.clone(),
            password,
        });
    }
    Ok(s)
}

/// `store.etcd_instance_name`, or `<hostname>:<listen port>`.
fn instance_name(cfg: &DaemonConfig) -> String {
    if let Some(n) = &cfg.store.etcd_instance_name {
        return n.clone();
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!("{host}:{}", cfg.listen_addr().port())
}

/// Two handles on one listening socket: the standby serves on one and hands the other,
/// still bound, to the leader's server (no window where the port is free).
fn twin(l: TcpListener) -> std::io::Result<(TcpListener, TcpListener)> {
    let std = l.into_std()?;
    let other = std.try_clone()?;
    Ok((TcpListener::from_std(std)?, TcpListener::from_std(other)?))
}

/// The gRPC server builder with the configured TLS.
fn grpc_builder(cfg: &DaemonConfig) -> Result<tonic::transport::Server> {
    let mut builder = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .tcp_nodelay(true);
    if let Some(tls) = &cfg.tls {
        let cert = read_file("tls.cert_file", &tls.cert_file)?;
        let key = read_file("tls.key_file", &tls.key_file)?;
        let mut t = tonic::transport::ServerTlsConfig::new()
            .identity(tonic::transport::Identity::from_pem(cert, key));
        if let Some(ca) = &tls.client_ca_file {
            let ca = read_file("tls.client_ca_file", ca)?;
            t = t
                .client_ca_root(tonic::transport::Certificate::from_pem(ca))
                .client_auth_optional(tls.client_cert_optional);
        }
        builder = builder.tls_config(t).map_err(ServerError::Tls)?;
    }
    Ok(builder)
}

fn listener_error(which: &'static str) -> impl FnOnce(std::io::Error) -> ServerError {
    move |source| ServerError::Listener { which, source }
}

/// Reads a file the configuration names at `setting`.
fn read_file(setting: &'static str, path: &std::path::Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| ServerError::ReadFile {
        setting,
        path: path.to_path_buf(),
        source,
    })
}

/// Waits until this coordinator leads. Meanwhile it serves as a standby on both
/// listeners: every gRPC call (API and agent link alike) is refused UNAVAILABLE with
/// the leader's name, so clients behind a load balancer retry elsewhere and agents
/// retry; `/readyz` answers 503. Returns the listeners for the leader's servers.
async fn win_leadership(
    cfg: &DaemonConfig,
    listener: TcpListener,
    metrics: Option<TcpListener>,
) -> Result<(Leadership, TcpListener, Option<TcpListener>)> {
    let ttl = Duration::from_secs(u64::from(cfg.store.etcd_lease_ttl_seconds));
    let name = instance_name(cfg);
    let candidate = Candidate::new(&etcd_settings(cfg)?, name.clone(), ttl)?;
    let (leader_tx, leader_rx) = tokio::sync::watch::channel("unknown (campaigning)".to_string());
    match candidate.campaign().await {
        Ok(Campaign::Won(l)) => {
            tracing::info!(name = %name, "elected leader on etcd");
            return Ok((l, listener, metrics));
        }
        Ok(Campaign::Standby(leader)) => {
            tracing::info!(name = %name, %leader, "standby: another coordinator leads; waiting to take over");
            leader_tx.send_replace(leader);
        }
        Err(e) => tracing::warn!(error = %e, "standby: cannot reach etcd to campaign; retrying"),
    }
    let (grpc, grpc_keep) = twin(listener).map_err(listener_error("gRPC"))?;
    let (grpc_stop, grpc_stopped) = tokio::sync::oneshot::channel::<()>();
    let refusals = tonic::service::Routes::from(axum::Router::new().fallback({
        let leader = leader_rx.clone();
        move || {
            let name = leader.borrow().clone();
            async move {
                tonic::Status::unavailable(format!(
                    "standby: this coordinator does not lead; the leader is {name}"
                ))
                .into_http::<axum::body::Body>()
            }
        }
    }));
    let standby = grpc_builder(cfg)?
        .add_routes(refusals)
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(grpc).with_nodelay(Some(true)),
            async {
                let _ = grpc_stopped.await;
            },
        );
    let standby = tokio::spawn(standby);
    let mut http_stop = None;
    let metrics = match metrics {
        Some(m) => {
            let (serve, keep) = twin(m).map_err(listener_error("metrics_listen"))?;
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            http_stop = Some(tx);
            let leader = leader_rx.clone();
            tokio::spawn(async move {
                let stopped = async {
                    let _ = rx.await;
                };
                if let Err(e) = crate::http::serve_standby(serve, leader, stopped).await {
                    tracing::error!(error = %e, "standby health endpoint stopped");
                }
            });
            Some(keep)
        }
        None => None,
    };
    // Between attempts the standby watches the leader key; this paces retries while
    // etcd does not answer.
    let retry = (ttl / 4).clamp(Duration::from_millis(200), Duration::from_secs(1));
    let leadership = candidate.lead(&leader_tx, retry).await;
    tracing::info!(name = %name, "elected leader on etcd: taking over");
    let _ = grpc_stop.send(());
    if let Some(tx) = http_stop {
        let _ = tx.send(());
    }
    // In-flight refusals finish; a client stuck on a connection does not hold us.
    if let Ok(Ok(Err(e))) = tokio::time::timeout(Duration::from_secs(5), standby).await {
        tracing::warn!(error = %e, "standby gRPC server");
    }
    Ok((leadership, grpc_keep, metrics))
}

/// Starts the core (restoring state) and serves on `listener`.
pub async fn start(
    cfg: &DaemonConfig,
    listener: TcpListener,
    preparer: Arc<dyn Preparer>,
) -> Result<Running> {
    let auth = Authenticator::from_config(&cfg.auth).map_err(|reason| ServerError::Auth { reason })?;
    if auth.allows_anonymous() {
        tracing::warn!(
            "auth.allow_anonymous is on: every caller is an admin and agents need no credentials (development only)"
        );
    }
    for w in crate::auth::unscoped_warnings(&cfg.auth) {
        tracing::warn!("{w}");
    }
    if cfg.tls.is_none() && !cfg.listen_addr().ip().is_loopback() {
        tracing::warn!(listen = %cfg.listen, "allow_plaintext: serving gRPC without TLS on a non-loopback address");
    }
    let registry = registry(cfg)?;
    let metrics_listener = match &cfg.metrics_listen {
        Some(m) => Some(
            TcpListener::bind(m)
                .await
                .map_err(|source| ServerError::BindMetrics {
                    addr: m.clone(),
                    source,
                })?,
        ),
        None => None,
    };
    let (leadership, listener, metrics_listener) = if cfg.store.backend == "etcd" {
        let (l, g, m) = win_leadership(cfg, listener, metrics_listener).await?;
        (Some(l), g, m)
    } else {
        (None, listener, metrics_listener)
    };
    let store = open_store(cfg, leadership.as_ref())?;
    let gates = gates(cfg)?;
    let core = Coordinator::start(
        store,
        preparer,
        CoreSettings {
            registry: registry.clone(),
            heartbeat: Duration::from_secs(u64::from(cfg.heartbeat_seconds)),
            tick: Duration::from_millis(250),
            gates,
            link_message_limit: cfg.agent_link_max_message_bytes,
        },
    )
    .await
    .map_err(ServerError::Core)?
    .with_promotion(
        cfg.promotion
            .iter()
            .map(|(env, rule)| (env.clone(), rule.after.clone()))
            .collect(),
    );
    if !cfg.notifications.webhooks.is_empty() {
        let by_name = registry.iter().map(|c| (c.name.clone(), c.clone())).collect();
        crate::notify::spawn(&cfg.notifications, by_name, core.subscribe_operations())
            .map_err(|reason| ServerError::Notifications { reason })?;
    }

    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    health_reporter
        .set_serving::<pb::release_service_server::ReleaseServiceServer<ReleaseApi>>()
        .await;
    // Both reflection versions: grpcurl asks v1 first, older clients (and grpcio's
    // reflection helper) only speak v1alpha.
    let reflection_builder = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(convoy_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection = reflection_builder().build_v1().map_err(ServerError::Reflection)?;
    let reflection_alpha = reflection_builder()
        .build_v1alpha()
        .map_err(ServerError::Reflection)?;
    // Every API call is authenticated before its body is read or decoded, and each RPC
    // takes requests no larger than it needs: a submit carries a chart archive, the
    // other calls a name or a filter (`api::limits`).
    use crate::api::limits::{BodyLimit, SMALL_LIMIT, SUBMIT_LIMIT};
    use tonic::service::interceptor::InterceptedService;
    let authenticate = crate::api::Authenticate(Arc::new(auth.clone()));
    let ui_auth = auth.clone();
    let releases = BodyLimit::new(InterceptedService::new(
        pb::release_service_server::ReleaseServiceServer::new(ReleaseApi {
            core: core.clone(),
            auth: auth.clone(),
        })
        .max_decoding_message_size(SUBMIT_LIMIT),
        authenticate.clone(),
    ));
    let clusters = BodyLimit::new(InterceptedService::new(
        pb::cluster_service_server::ClusterServiceServer::new(ClusterApi {
            core: core.clone(),
            auth: auth.clone(),
        })
        .max_decoding_message_size(SMALL_LIMIT),
        authenticate,
    ));
    let link = pb::agent_link_server::AgentLinkServer::new(AgentLinkService::new(
        core.clone(),
        auth,
        registry.iter().map(|c| c.name.clone()),
    ))
    // Commands are refused at submit when larger than the configured limit (which is at
    // most what agents accept); agents send at most the shared limit.
    .max_encoding_message_size(cfg.agent_link_max_message_bytes)
    .max_decoding_message_size(convoy_proto::AGENT_LINK_MESSAGE_LIMIT);

    let mut builder = grpc_builder(cfg)?;
    let addr = listener.local_addr().map_err(listener_error("gRPC"))?;
    let (shutdown, rx) = tokio::sync::oneshot::channel::<()>();
    let router = builder
        .add_service(health_service)
        .add_service(reflection)
        .add_service(reflection_alpha)
        .add_service(releases)
        .add_service(clusters)
        .add_service(link);
    let lost = leadership.as_ref().map(Leadership::lost);
    let fenced_core = core.clone();
    let server = tokio::spawn(async move {
        let serve = router
            // The listener is ours (bound by the caller), so the builder's socket options
            // do not reach it: set TCP_NODELAY here, or small responses wait on delayed ACKs.
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
                async {
                    let _ = rx.await;
                },
            );
        let leadership_lost = async {
            match lost {
                Some(mut lost) => lost.wait_for(Option::is_some).await.map_or_else(
                    |_| "leadership lost".to_string(),
                    |w| w.clone().unwrap_or_default(),
                ),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = serve => r.map_err(ServerError::Serve),
            why = leadership_lost => {
                // Stop acting at once: another coordinator may lead already, and every
                // further write would be refused anyway (fencing).
                fenced_core.shutdown();
                tracing::error!(reason = %why, "no longer the leader: stopping so that a standby takes over (restart to rejoin as a standby)");
                Err(ServerError::LeadershipLost { reason: why })
            }
            why = fenced_core.failed() => {
                // Fail-stop: the core's memory is ahead of the store. Exiting (non-zero)
                // lets the supervisor restart convoyd, which resumes from the store.
                tracing::error!(reason = %why, "stopping: convoyd exits so that a restart resumes from the state store");
                Err(ServerError::CoreFailed { reason: why })
            }
        }
    });
    if let Some(l) = metrics_listener {
        let metrics_addr = l.local_addr().map_err(listener_error("metrics_listen"))?;
        tracing::info!(addr = %metrics_addr, "metrics and health endpoints listening");
        let c = core.clone();
        let ui = cfg.ui.enabled.then(|| {
            tracing::info!(addr = %metrics_addr, "web status page on /ui");
            crate::ui::Ui::new(core.clone(), ui_auth, cfg.ui.session_hours)
        });
        tokio::spawn(async move {
            if let Err(e) = crate::http::serve(l, c, ui, std::future::pending()).await {
                tracing::error!(error = %e, "metrics endpoint stopped");
            }
        });
    }
    tracing::info!(%addr, contexts = registry.len(), "convoyd serving");
    Ok(Running {
        addr,
        core,
        shutdown: Some(shutdown),
        server,
        leadership,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const CONTEXT: &str = "{name: sim-a, region: r1, env: dev, cloud: sim, clusterName: a}";

    fn config(dir: &Path, extra: &str) -> DaemonConfig {
        let path = dir.join("convoyd.yaml");
        std::fs::write(
            &path,
            format!(
                "listen: 127.0.0.1:0\nstore: {{backend: embedded, path: {}}}\nauth: {{allow_anonymous: true}}\n{extra}",
                dir.join("state.redb").display()
            ),
        )
        .unwrap();
        DaemonConfig::load_with_env(Some(&path), Vec::new()).unwrap()
    }

    #[test]
    fn a_context_both_in_the_registry_file_and_inline_is_refused_naming_the_file_and_context() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("contexts.yaml");
        std::fs::write(&file, format!("contexts:\n  - {CONTEXT}\n")).unwrap();
        let cfg = config(
            dir.path(),
            &format!("registry_file: {}\ncontexts:\n  - {CONTEXT}\n", file.display()),
        );
        let err = registry(&cfg).unwrap_err();
        assert!(
            matches!(&err, ServerError::DuplicateContext { path, context } if *path == file && context == "sim-a"),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "registry_file {}: context \"sim-a\" is also defined inline in `contexts`",
                file.display()
            )
        );
    }

    #[test]
    fn an_unreadable_registry_file_is_named_and_keeps_its_cause() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(dir.path(), "");
        let missing = dir.path().join("missing.yaml");
        cfg.registry_file = Some(missing.clone());
        let err = registry(&cfg).unwrap_err();
        let ServerError::RegistryFile { path, source } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(*path, missing);
        assert!(
            matches!(source, convoy_release::ReleaseError::Read { .. }),
            "{source:?}"
        );
        let text = err.to_string();
        assert!(
            text.starts_with("registry_file: ") && text.contains(&missing.display().to_string()),
            "{text}"
        );
        assert!(std::error::Error::source(&err).is_some());
    }

    #[test]
    fn an_unknown_store_backend_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(dir.path(), "");
        cfg.store.backend = "sqlite".into();
        let Err(err) = open_store(&cfg, None) else {
            panic!("a store named sqlite opened")
        };
        assert!(
            matches!(&err, ServerError::UnknownStore { backend } if backend == "sqlite"),
            "{err:?}"
        );
        assert!(err.to_string().contains("store.backend \"sqlite\""), "{err}");
    }
}

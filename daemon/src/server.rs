//! Wiring: the gRPC server (public API, agent link, health, reflection) around a
//! started core. `convoyd` and the tests both start the daemon through [`start`].
//!
//! On the etcd backend several coordinators share one state and exactly one acts:
//! [`start`] first wins the leader election (serving as a standby meanwhile: `/readyz`
//! 503, every gRPC call UNAVAILABLE naming the leader), then restores and serves; a
//! leader that loses its leadership stops (see [`Running::wait_for_exit`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use convoy_proto::v1 as pb;
use tokio::net::TcpListener;

use crate::api::{ClusterApi, ReleaseApi};
use crate::auth::Authenticator;
use crate::config::DaemonConfig;
use crate::core::{ContextInfo, Coordinator, CoreSettings};
use crate::link::AgentLinkService;
use crate::prepare::Preparer;
use crate::store::etcd::{
    Campaign, Candidate, EtcdCredentials, EtcdSettings, EtcdStore, EtcdTls, Leadership,
};
use crate::store::{MemoryStore, RedbStore, StateStore, StoreError};

/// A running daemon.
/// How long a graceful stop waits for the core and for open calls.
pub const STOP_GRACE: Duration = Duration::from_secs(3);

pub struct Running {
    pub addr: SocketAddr,
    pub core: Coordinator,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
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
    pub async fn stop(mut self) -> anyhow::Result<()> {
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
            Ok(joined) => joined.context("server task")?,
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

    pub async fn wait_for_exit(&mut self) -> anyhow::Result<()> {
        (&mut self.server).await.context("server task")?
    }
}

/// The registry: inline contexts plus the registry file's.
pub fn registry(cfg: &DaemonConfig) -> anyhow::Result<Vec<ContextInfo>> {
    let mut out: Vec<ContextInfo> = cfg.contexts.iter().cloned().map(ContextInfo::from).collect();
    if let Some(path) = &cfg.registry_file {
        let file = convoy_release::Registry::load(path)?;
        for c in file.contexts() {
            if out.iter().any(|o| o.name == c.name) {
                anyhow::bail!(
                    "registry_file {}: context {:?} is also defined inline in `contexts`",
                    path.display(),
                    c.name
                );
            }
            out.push(c.clone());
        }
    }
    Ok(out)
}

/// The production preparer for a config: its registry and secret source.
pub fn pipeline(cfg: &DaemonConfig) -> anyhow::Result<crate::pipeline::Pipeline> {
    use crate::pipeline::{Pipeline, SecretSource};
    let reg = convoy_release::Registry::from_contexts(registry(cfg)?)
        .map_err(|e| anyhow::anyhow!("registry: {e}"))?;
    let secrets = match (&cfg.vault, &cfg.dev_secrets_file) {
        (Some(v), _) => {
            let vault = std::sync::Arc::new(convoy_secrets::Vault::new(v)?);
            vault.spawn_renewal();
            SecretSource::Vault(vault)
        }
        (None, Some(f)) => {
            tracing::warn!(file = %f.display(), "secrets come from a DEVELOPMENT secrets file, not Vault: never use this in production");
            SecretSource::DevFile(Pipeline::dev_secrets(f).map_err(|e| anyhow::anyhow!(e))?)
        }
        (None, None) => SecretSource::None,
    };
    if cfg.secret_paths.is_none() && !matches!(secrets, SecretSource::None) {
        tracing::warn!(
            "secret_paths is not configured: a release may name any Vault path its environment's Vault role can read; configure prefixes such as `kv/{{env}}/{{namespace}}/`"
        );
    }
    let chart_sources = crate::sources::ChartSources::new(cfg.chart_sources.clone());
    chart_sources
        .check_credential_files()
        .map_err(|e| anyhow::anyhow!(e))?;
    Ok(Pipeline::new(reg, secrets)
        .with_secret_paths(cfg.secret_paths.clone())
        .with_limits(cfg.render.limits())
        .with_chart_sources(chart_sources))
}

/// Opens the configured store. The etcd backend needs this coordinator's leadership:
/// every commit is fenced on it.
pub fn open_store(cfg: &DaemonConfig, leadership: Option<&Leadership>) -> anyhow::Result<StateStore> {
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
        ("etcd", None) => anyhow::bail!(
            "store.backend etcd: the store opens only once this coordinator leads (see server::start)"
        ),
        (other, _) => anyhow::bail!("store.backend {other:?} is not available in this build"),
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
fn grpc_builder(cfg: &DaemonConfig) -> anyhow::Result<tonic::transport::Server> {
    let mut builder = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .tcp_nodelay(true);
    if let Some(tls) = &cfg.tls {
        let cert = std::fs::read(&tls.cert_file)
            .with_context(|| format!("tls.cert_file {}", tls.cert_file.display()))?;
        let key = std::fs::read(&tls.key_file)
            .with_context(|| format!("tls.key_file {}", tls.key_file.display()))?;
        let mut t = tonic::transport::ServerTlsConfig::new()
            .identity(tonic::transport::Identity::from_pem(cert, key));
        if let Some(ca) = &tls.client_ca_file {
            let ca = std::fs::read(ca).with_context(|| format!("tls.client_ca_file {}", ca.display()))?;
            t = t
                .client_ca_root(tonic::transport::Certificate::from_pem(ca))
                .client_auth_optional(tls.client_cert_optional);
        }
        builder = builder.tls_config(t).context("tls configuration")?;
    }
    Ok(builder)
}

/// Waits until this coordinator leads. Meanwhile it serves as a standby on both
/// listeners: every gRPC call (API and agent link alike) is refused UNAVAILABLE with
/// the leader's name, so clients behind a load balancer retry elsewhere and agents
/// retry; `/readyz` answers 503. Returns the listeners for the leader's servers.
async fn win_leadership(
    cfg: &DaemonConfig,
    listener: TcpListener,
    metrics: Option<TcpListener>,
) -> anyhow::Result<(Leadership, TcpListener, Option<TcpListener>)> {
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
    let (grpc, grpc_keep) = twin(listener)?;
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
            let (serve, keep) = twin(m)?;
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
) -> anyhow::Result<Running> {
    let auth =
        Authenticator::from_config(&cfg.auth).map_err(|e| anyhow::anyhow!("refusing to start: {e}"))?;
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
                .with_context(|| format!("binding metrics_listen {m}"))?,
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
    let core = Coordinator::start(
        store,
        preparer,
        CoreSettings {
            registry: registry.clone(),
            heartbeat: Duration::from_secs(u64::from(cfg.heartbeat_seconds)),
            tick: Duration::from_millis(250),
            link_message_limit: cfg.agent_link_max_message_bytes,
        },
    )
    .await?
    .with_promotion(
        cfg.promotion
            .iter()
            .map(|(env, rule)| (env.clone(), rule.after.clone()))
            .collect(),
    );
    if !cfg.notifications.webhooks.is_empty() {
        let by_name = registry.iter().map(|c| (c.name.clone(), c.clone())).collect();
        crate::notify::spawn(&cfg.notifications, by_name, core.subscribe_operations())
            .map_err(|e| anyhow::anyhow!("refusing to start: {e}"))?;
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
    let reflection = reflection_builder().build_v1()?;
    let reflection_alpha = reflection_builder().build_v1alpha()?;
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
    let addr = listener.local_addr()?;
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
            r = serve => r.context("gRPC server"),
            why = leadership_lost => {
                // Stop acting at once: another coordinator may lead already, and every
                // further write would be refused anyway (fencing).
                fenced_core.shutdown();
                tracing::error!(reason = %why, "no longer the leader: stopping so that a standby takes over (restart to rejoin as a standby)");
                Err(anyhow::anyhow!("{why}: stopped acting; restart convoyd to rejoin as a standby"))
            }
            why = fenced_core.failed() => {
                // Fail-stop: the core's memory is ahead of the store. Exiting (non-zero)
                // lets the supervisor restart convoyd, which resumes from the store.
                tracing::error!(reason = %why, "stopping: convoyd exits so that a restart resumes from the state store");
                Err(anyhow::anyhow!("{why}: stopped; restart convoyd to resume from the state store"))
            }
        }
    });
    if let Some(l) = metrics_listener {
        tracing::info!(addr = %l.local_addr()?, "metrics and health endpoints listening");
        let c = core.clone();
        let ui = cfg.ui.enabled.then(|| {
            tracing::info!(addr = %l.local_addr().map(|a| a.to_string()).unwrap_or_default(), "web status page on /ui");
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

//! Wiring: the gRPC server (public API, agent link, health, reflection) around a
//! started core. `convoyd` and the tests both start the daemon through [`start`].

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
use crate::store::{MemoryStore, RedbStore, StateStore};

/// A running daemon.
pub struct Running {
    pub addr: SocketAddr,
    pub core: Coordinator,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Running({})", self.addr)
    }
}

impl Running {
    /// Stops serving and the core.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.core.shutdown();
        (&mut self.server).await.context("server task")?
    }

    /// Resolves when the server stops on its own (an error).
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
    Ok(Pipeline::new(reg, secrets))
}

/// Opens the configured store.
pub fn open_store(cfg: &DaemonConfig) -> anyhow::Result<StateStore> {
    match cfg.store.backend.as_str() {
        "embedded" => Ok(StateStore::new(Box::new(RedbStore::open(&cfg.store.path)?))),
        "memory" => Ok(StateStore::new(Box::new(MemoryStore::default()))),
        other => anyhow::bail!("store.backend {other:?} is not available in this build"),
    }
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
    let registry = registry(cfg)?;
    let store = open_store(cfg)?;
    let core = Coordinator::start(
        store,
        preparer,
        CoreSettings {
            registry: registry.clone(),
            heartbeat: Duration::from_secs(u64::from(cfg.heartbeat_seconds)),
            tick: Duration::from_millis(250),
        },
    )
    .await?;

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
    let releases = pb::release_service_server::ReleaseServiceServer::new(ReleaseApi {
        core: core.clone(),
        auth: auth.clone(),
    })
    .max_decoding_message_size(64 << 20);
    let clusters = pb::cluster_service_server::ClusterServiceServer::new(ClusterApi {
        core: core.clone(),
        auth: auth.clone(),
    });
    let link = pb::agent_link_server::AgentLinkServer::new(AgentLinkService::new(
        core.clone(),
        auth,
        registry.iter().map(|c| c.name.clone()),
    ))
    .max_encoding_message_size(64 << 20)
    .max_decoding_message_size(64 << 20);

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
    let addr = listener.local_addr()?;
    let (shutdown, rx) = tokio::sync::oneshot::channel::<()>();
    let router = builder
        .add_service(health_service)
        .add_service(reflection)
        .add_service(reflection_alpha)
        .add_service(releases)
        .add_service(clusters)
        .add_service(link);
    let server = tokio::spawn(async move {
        router
            // The listener is ours (bound by the caller), so the builder's socket options
            // do not reach it: set TCP_NODELAY here, or small responses wait on delayed ACKs.
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
                async {
                    let _ = rx.await;
                },
            )
            .await
            .context("gRPC server")
    });
    if let Some(m) = &cfg.metrics_listen {
        let l = TcpListener::bind(m)
            .await
            .with_context(|| format!("binding metrics_listen {m}"))?;
        tracing::info!(addr = %l.local_addr()?, "metrics and health endpoints listening");
        let c = core.clone();
        tokio::spawn(async move {
            if let Err(e) = crate::http::serve(l, c, std::future::pending()).await {
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
    })
}

//! From a loaded [`AgentConfig`] to a running agent: builds the configured backend
//! and runs the runtime around it. What the binary calls after parsing arguments.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::AgentConfig;
use crate::kube::{KubeBackend, KubeBackendConfig};
use crate::runtime::{AgentRuntime, RuntimeConfig, RuntimeError};
use crate::sim::{SimBackend, SimConfig};

/// Runs the agent described by `cfg` until `shutdown` fires.
pub async fn run_agent(cfg: &AgentConfig, shutdown: CancellationToken) -> Result<(), RuntimeError> {
    let runtime = RuntimeConfig::from_agent_config(cfg)?;
    match cfg.backend.as_str() {
        "simulated" => {
            let sim = SimBackend::new(SimConfig {
                history_limit: cfg.history_limit as usize,
                apply_latency: Duration::from_millis(cfg.sim_latency_ms),
                kube_version: cfg.sim_kube_version.clone(),
            });
            AgentRuntime::new(runtime, sim).run(shutdown).await
        }
        "kubernetes" => {
            let client = kube_client(cfg).await?;
            let backend = KubeBackend::new(
                client,
                KubeBackendConfig {
                    history_namespace: cfg.namespace.clone(),
                    history_limit: cfg.history_limit,
                    max_prune_percent: cfg.max_prune_percent,
                    holder_id: runtime.instance.clone(),
                    ..KubeBackendConfig::default()
                },
            );
            AgentRuntime::new(runtime, backend).run(shutdown).await
        }
        other => Err(RuntimeError::Backend {
            backend: other.to_string(),
            reason: "expected `kubernetes` or `simulated`".into(),
        }),
    }
}

/// What start-up checks of the backend before it contacts anything, for
/// `--check-config`: the backend's name, and for `kubernetes` that the kubeconfig (or
/// the in-cluster service account) yields a client configuration.
pub async fn check_backend(cfg: &AgentConfig) -> Result<(), RuntimeError> {
    if cfg.backend == "kubernetes" {
        kube_client(cfg).await?;
    }
    Ok(())
}

/// A client from `kubeconfig` when set, else the in-cluster service account. Builds the
/// client only: nothing is contacted yet.
async fn kube_client(cfg: &AgentConfig) -> Result<kube::Client, RuntimeError> {
    let err = |reason: String| RuntimeError::Backend {
        backend: "kubernetes".into(),
        reason,
    };
    let config = match &cfg.kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)
                .map_err(|e| err(format!("kubeconfig {}: {e}", path.display())))?;
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(|e| err(format!("kubeconfig {}: {e}", path.display())))?
        }
        None => kube::Config::incluster().map_err(|e| {
            err(format!(
                "no kubeconfig set and not running in a pod ({e}); set `kubeconfig` in the agent config"
            ))
        })?,
    };
    kube::Client::try_from(config).map_err(|e| err(format!("cannot build a Kubernetes client: {e}")))
}

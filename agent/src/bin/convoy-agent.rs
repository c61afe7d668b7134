//! `convoy-agent`: parse arguments, load and check the config, set up logging, and run
//! the agent (the library's `run_agent`) until SIGINT or SIGTERM.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use convoy_agent::config::AgentConfig;
use tokio_util::sync::CancellationToken;

/// The convoy agent: runs in (or next to) one cluster, dials the coordinator, applies
/// releases with server-side apply, tracks rollout health and rolls back.
///
/// Every configuration key can be set in the file or overridden by an environment
/// variable `CONVOY_AGENT__<KEY>` (e.g. `CONVOY_AGENT__BACKEND=simulated`). Keys:
/// coordinator, context, token_file, ca_file, tls.client_cert_file and
/// tls.client_key_file (a client certificate for mTLS; nested keys take `__` twice:
/// CONVOY_AGENT__TLS__CLIENT_CERT_FILE), backend (kubernetes | simulated),
/// kubeconfig, namespace, history_limit, health_listen, log_format (pretty | json),
/// sim_latency_ms, sim_kube_version. Log verbosity follows RUST_LOG (default `info`).
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Args {
    /// Configuration file (YAML or TOML). Every key can be overridden with a
    /// `CONVOY_AGENT__<KEY>` environment variable.
    #[arg(short, long, env = "CONVOY_AGENT_CONFIG")]
    config: Option<PathBuf>,
    /// Check the configuration and exit.
    #[arg(long)]
    check_config: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let cfg =
        AgentConfig::load(args.config.as_deref()).context("refusing to start: invalid configuration")?;
    if args.check_config {
        // The runtime's own checks too: https without ca_file, unreadable files, a
        // client certificate and key that do not belong together; everything start-up
        // checks before it connects.
        convoy_agent::runtime::RuntimeConfig::from_agent_config(&cfg)
            .context("refusing to start: invalid configuration")?;
        // And the backend's: the kubeconfig exists, parses and names a usable context.
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?
            .block_on(convoy_agent::runtime::check_backend(&cfg))
            .context("refusing to start: invalid configuration")?;
        println!(
            "configuration ok (context {}, backend {})",
            cfg.context, cfg.backend
        );
        return Ok(());
    }
    convoy_agent::telemetry::init(&cfg.log_format)?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let shutdown = CancellationToken::new();
        tokio::spawn(stop_on_signal(shutdown.clone()));
        convoy_agent::runtime::run_agent(&cfg, shutdown)
            .await
            .context("refusing to start")
    })
}

/// Cancels `shutdown` on SIGINT or SIGTERM.
async fn stop_on_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM; stop with SIGINT");
            let _ = tokio::signal::ctrl_c().await;
            shutdown.cancel();
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
    }
    shutdown.cancel();
}

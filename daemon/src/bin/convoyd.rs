//! `convoyd`: parse arguments, load the config, start telemetry, serve.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use convoy_daemon::config::DaemonConfig;

/// The convoy coordinator: accepts releases over gRPC and rolls them out to every
/// target cluster through the agents, rolling the whole fleet back on failure.
///
/// Examples:
///   convoyd --config /etc/convoy/convoyd.yaml
///   CONVOY_DAEMON__LOG__FORMAT=json convoyd -c convoyd.yaml
///   convoyd --check-config -c convoyd.yaml
/// jemalloc rather than glibc's allocator: each agent connection holds HTTP/2 buffers of
/// 16 KiB that are mostly never written; jemalloc gives allocations of that size whole
/// pages, which stay unbacked until written, where glibc's heap backs them.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Args {
    /// Configuration file (YAML or TOML). Every key can be overridden with a
    /// `CONVOY_DAEMON__<KEY>` environment variable (`__` between nested keys).
    #[arg(short, long, env = "CONVOY_DAEMON_CONFIG")]
    config: Option<PathBuf>,
    /// Check the configuration (and the registry, auth and secret settings) and exit.
    #[arg(long)]
    check_config: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let cfg =
        DaemonConfig::load(args.config.as_deref()).context("refusing to start: invalid configuration")?;
    convoy_daemon::telemetry::init(&cfg.log.format, &cfg.log.level);
    let pipeline = convoy_daemon::server::pipeline(&cfg).context("refusing to start")?;
    if args.check_config {
        convoy_daemon::auth::Authenticator::from_config(&cfg.auth)
            .map_err(|e| anyhow::anyhow!("refusing to start: {e}"))?;
        if cfg.store.backend == "etcd" {
            convoy_daemon::server::etcd_settings(&cfg).context("refusing to start")?;
        }
        convoy_daemon::server::gates(&cfg).context("refusing to start")?;
        println!("configuration ok");
        return Ok(());
    }
    let listener = tokio::net::TcpListener::bind(cfg.listen_addr())
        .await
        .with_context(|| format!("binding {}", cfg.listen))?;
    let mut running = convoy_daemon::server::start(&cfg, listener, Arc::new(pipeline)).await?;
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    let exited = tokio::select! {
        r = tokio::signal::ctrl_c() => {
            r.context("waiting for SIGINT")?;
            Some("SIGINT")
        }
        _ = terminate.recv() => Some("SIGTERM"),
        r = running.wait_for_exit() => return Ok(r?),
    };
    if let Some(signal) = exited {
        tracing::info!(
            signal,
            "shutting down: refusing new requests, finishing the state store's commits, closing agent sessions"
        );
    }
    running.stop().await?;
    tracing::info!("stopped cleanly; unfinished operations resume at the next start");
    Ok(())
}

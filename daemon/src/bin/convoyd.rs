//! `convoyd`: parse arguments, load the config, start telemetry, serve.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use convoy_daemon::config::DaemonConfig;

/// The convoy coordinator: accepts releases over gRPC and rolls them out to every
/// target cluster through the agents, rolling the whole fleet back on failure.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
struct Args {
    /// Configuration file (YAML or TOML). Every key can be overridden with a
    /// `CONVOY_DAEMON__<KEY>` environment variable (`__` between nested keys).
    #[arg(short, long, env = "CONVOY_DAEMON_CONFIG")]
    config: Option<PathBuf>,
    /// Check the configuration and exit.
    #[arg(long)]
    check_config: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let cfg =
        DaemonConfig::load(args.config.as_deref()).context("refusing to start: invalid configuration")?;
    if args.check_config {
        println!("configuration ok");
        return Ok(());
    }
    convoy_daemon::telemetry::init(&cfg.log.format, &cfg.log.level);
    let listener = tokio::net::TcpListener::bind(cfg.listen_addr())
        .await
        .with_context(|| format!("binding {}", cfg.listen))?;
    convoy_daemon::server::serve(listener, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
}

//! `convoy-agent`: parse arguments, load and check the config.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use convoy_agent::config::AgentConfig;

/// The convoy agent: runs in (or next to) one cluster, dials the coordinator, applies
/// releases with server-side apply, tracks rollout health and rolls back.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
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
        println!(
            "configuration ok (context {}, backend {})",
            cfg.context, cfg.backend
        );
        return Ok(());
    }
    anyhow::bail!(
        "the agent link is not implemented yet (see issue 5); only --check-config works in this build"
    )
}

//! `convoy`: the command line for engineers, Jenkins and on-call.

use clap::{Parser, Subcommand};

/// Deploy one release to many Kubernetes clusters, watch every rollout, and roll the
/// whole fleet back when any region goes bad.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the self-contained demo: a coordinator with simulated clusters in three regions.
    Demo,
}

fn main() -> anyhow::Result<()> {
    match Args::parse().command {
        Command::Demo => {
            println!(
                "convoy demo: not built yet. It arrives with the CLI (issue 7), once the coordinator \
                 (issue 6) and the agent (issue 5) exist. Today: `.ci/test` runs the test suite."
            );
            Ok(())
        }
    }
}

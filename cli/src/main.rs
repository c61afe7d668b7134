//! `convoy`: the command line for engineers, Jenkins and on-call.

use clap::{CommandFactory as _, Parser, Subcommand};

mod client;
mod commands;
mod completions;
#[cfg(feature = "demo")]
mod demo;
#[cfg(not(feature = "demo"))]
#[path = "demo_absent.rs"]
mod demo;
mod demo_args;
mod exit;
mod offline;
mod output;
mod package;
mod progress;
mod template;

/// Deploy one release to many Kubernetes clusters, watch every rollout, and roll the
/// whole fleet back when any region goes bad.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None, after_help = exit::EXIT_CODES_HELP)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the self-contained demo: a coordinator with simulated clusters in three regions.
    #[command(after_help = demo::EXAMPLES)]
    Demo(demo::DemoArgs),
    /// Render a Helm chart locally, as `helm template` does (same arguments and flags).
    Template(template::TemplateArgs),
    /// Validate a release file and render every target context offline (no daemon).
    Lint(offline::LintArgs),
    /// Print what one context of a release would receive, secret values masked (no daemon).
    Render(offline::RenderArgs),
    /// Package a chart directory as NAME-VERSION.tgz, as `helm package` does.
    Package(package::PackageArgs),
    /// Push a packaged chart to an OCI registry, as `helm push` does.
    Push(package::PushArgs),
    #[command(flatten)]
    Online(commands::Online),
    /// Print a shell completion script (bash, zsh, fish, ...).
    Completions(completions::CompletionsArgs),
}

fn main() -> anyhow::Result<()> {
    match Args::parse().command {
        Command::Demo(args) => demo::run(args),
        Command::Template(args) => template::run(args),
        Command::Lint(args) => offline::lint(args),
        Command::Render(args) => offline::render(args),
        Command::Package(args) => package::package(args),
        Command::Push(args) => package::push(args),
        Command::Online(cmd) => commands::run(cmd),
        Command::Completions(args) => completions::run(args, Args::command()),
    }
}

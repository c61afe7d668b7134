//! The commands that talk to the coordinator. Each module parses its flags, makes its
//! calls through [`crate::client::Client`] and prints through [`crate::output`]; every
//! failure is a [`CliError`], turned into the documented exit code in [`run`].

mod audit;
mod control;
mod diff;
mod inspect;
mod release_file;
mod submit;
mod wait;

use std::io::IsTerminal;

use clap::Subcommand;

use crate::client::{Client, ConnectArgs};
use crate::exit::{CliError, Result};
use crate::output::OutputArgs;

/// Flags every online command takes.
#[derive(Debug, Clone, clap::Args)]
pub struct Common {
    #[command(flatten)]
    pub connect: ConnectArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

impl Common {
    async fn client(&self) -> Result<Client> {
        Client::connect(&self.connect).await
    }
}

/// The online subcommands, flattened into `convoy`'s command list.
#[derive(Debug, Subcommand)]
pub enum Online {
    /// Submit a release file to the coordinator (and optionally wait for the rollout).
    #[command(after_help = submit::EXAMPLES)]
    Submit(submit::SubmitArgs),
    /// Show what a submit of a release file would change in every context (agents' dry runs).
    #[command(after_help = diff::EXAMPLES)]
    Diff(diff::DiffArgs),
    /// Show where a release stands in every context.
    #[command(after_help = inspect::STATUS_EXAMPLES)]
    Status(inspect::StatusArgs),
    /// Follow a rollout as it happens (a live table on a terminal, lines in a log).
    #[command(after_help = wait::WATCH_EXAMPLES)]
    Watch(wait::WatchArgs),
    /// List a release's revisions, newest first, with the outcome in each context.
    #[command(after_help = inspect::HISTORY_EXAMPLES)]
    History(inspect::HistoryArgs),
    /// Roll every context of a release back to the previous (or a named) revision.
    #[command(after_help = control::ROLLBACK_EXAMPLES)]
    Rollback(control::RollbackArgs),
    /// Stop dispatching further waves of the running operation.
    #[command(after_help = control::PAUSE_EXAMPLES)]
    Pause(control::ControlArgs),
    /// Continue a paused operation.
    #[command(after_help = control::RESUME_EXAMPLES)]
    Resume(control::ControlArgs),
    /// Abort the running operation (what was applied stays; roll back to undo it).
    #[command(after_help = control::ABORT_EXAMPLES)]
    Abort(control::ControlArgs),
    /// Approve a gated wave (`strategy.approval`): it starts once the waves before it
    /// settled; or pass an inconclusive gate, or an in-cluster canary's `approval` step
    /// in the wave (`--wave` names the wave whose canary waits). Default: the wave the
    /// rollout waits at. Recorded in the audit log.
    #[command(after_help = control::APPROVE_EXAMPLES)]
    Approve(control::GateArgs),
    /// Refuse a gated wave, an inconclusive gate or a canary's `approval` step: the gate
    /// fails and the release's onFailure applies (a fleet-wide rollback by default).
    #[command(after_help = control::REFUSE_EXAMPLES)]
    Refuse(control::GateArgs),
    /// List the running operation and those queued behind it.
    #[command(after_help = inspect::QUEUE_EXAMPLES)]
    Queue(inspect::QueueArgs),
    /// Cancel a queued operation before it starts.
    #[command(after_help = control::CANCEL_EXAMPLES)]
    Cancel(control::CancelArgs),
    /// List the clusters (contexts) the coordinator knows and whether their agents are connected.
    #[command(after_help = inspect::CLUSTERS_EXAMPLES)]
    Clusters(inspect::ClustersArgs),
    /// Show the audit log: submits (dry runs too), diffs, rollbacks, pauses, aborts, cancels.
    #[command(after_help = audit::EXAMPLES)]
    Audit(audit::AuditArgs),
}

/// Parses a full argv (`convoy submit ...`) as one online command, as the binary would
/// (the demo runs its steps through it).
#[cfg(any(feature = "demo", test))]
pub(crate) fn parse_online(argv: &[String]) -> std::result::Result<Online, clap::Error> {
    #[derive(clap::Parser)]
    struct Wrap {
        #[command(subcommand)]
        cmd: Online,
    }
    <Wrap as clap::Parser>::try_parse_from(argv).map(|w| w.cmd)
}

/// Runs one online command and exits the process with its documented exit code.
pub fn run(cmd: Online) -> ! {
    let code = match execute(cmd) {
        Ok(()) => crate::exit::SUCCESS,
        // A verdict, not an error: no "error:" prefix in the job's log.
        Err(e @ CliError::ChangesFound(_)) => {
            eprintln!("{e}");
            e.code()
        }
        Err(e) => {
            eprintln!("error: {e}");
            e.code()
        }
    };
    std::process::exit(i32::from(code))
}

pub(crate) fn execute(cmd: Online) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Other(format!("starting the async runtime: {e}")))?;
    // Rollback asks on stderr and reads stdin: both must be a person's terminal.
    let terminal = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    let stdout_terminal = std::io::stdout().is_terminal();
    rt.block_on(async move {
        match cmd {
            Online::Submit(a) => submit::run(a, stdout_terminal).await,
            Online::Diff(a) => diff::run(a).await,
            Online::Status(a) => inspect::status(a).await,
            Online::Watch(a) => wait::watch(a, stdout_terminal).await,
            Online::History(a) => inspect::history(a).await,
            Online::Rollback(a) => control::rollback(a, terminal, stdout_terminal).await,
            Online::Pause(a) => control::control(control::Action::Pause, a).await,
            Online::Resume(a) => control::control(control::Action::Resume, a).await,
            Online::Abort(a) => control::control(control::Action::Abort, a).await,
            Online::Approve(a) => control::gate(true, a).await,
            Online::Refuse(a) => control::gate(false, a).await,
            Online::Queue(a) => inspect::queue(a).await,
            Online::Cancel(a) => control::cancel(a).await,
            Online::Clusters(a) => inspect::clusters(a).await,
            Online::Audit(a) => audit::run(a).await,
        }
    })
}

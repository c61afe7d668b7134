//! Commands that change a running release (role operator, or deployer for cancelling
//! one's own submit): `rollback`, `pause`, `resume`, `abort`, `approve`, `refuse`,
//! `cancel`.

use std::io::{BufRead, Write};

use convoy_proto::v1 as pb;

use super::Common;
use super::wait::{follow, outcome};
use crate::client::Client;
use crate::exit::{CliError, Result};
use crate::output::{self, Format, op_kind, op_phase};
use crate::progress::Mode;

pub const ROLLBACK_EXAMPLES: &str = "\
Examples:
  convoy rollback web.shop --reason \"INC-42 errors in eu\"      # to the previous revision
  convoy rollback web.shop --to-revision 7 --reason \"INC-42\" --wait
  convoy rollback web.shop --reason \"INC-42\" --preempt --yes   # abort the running one first
  convoy rollback web.shop --context prod-eu-1 --context prod-eu-2 --reason \"INC-42 eu only\"

On a terminal it asks for confirmation unless --yes. The reason is required and recorded
in history and the audit log. With --wait it exits 3 if the rollback itself fails.";

pub const PAUSE_EXAMPLES: &str = "\
Examples:
  convoy pause web.shop --reason \"checking eu dashboards\"";

pub const RESUME_EXAMPLES: &str = "\
Examples:
  convoy resume web.shop --reason \"eu looks fine\"";

pub const ABORT_EXAMPLES: &str = "\
Examples:
  convoy abort web.shop --reason \"INC-42\"
  convoy rollback web.shop --reason \"INC-42\" --yes    # then undo what was applied";

pub const APPROVE_EXAMPLES: &str = "\
Examples:
  convoy status web.shop                                 # \"waiting for an approval to start wave 2\"
  convoy approve web.shop --reason \"canary dashboards clean\"
  convoy approve web.shop --wave 3 --reason \"approved ahead for tonight\"";

pub const REFUSE_EXAMPLES: &str = "\
Examples:
  convoy refuse web.shop --reason \"p99 latency up 30% in eu\"   # onFailure applies (rollback by default)";

pub const CANCEL_EXAMPLES: &str = "\
Examples:
  convoy queue web.shop                                  # find the operation id
  convoy cancel web.shop op-7f3a --reason \"superseded by the next build\"";

#[derive(Debug, clap::Args)]
pub struct RollbackArgs {
    /// The release, `app.namespace`.
    pub release: String,
    /// The revision to go back to (default: the one before the deployed revision).
    #[arg(long, value_name = "N")]
    pub to_revision: Option<u64>,
    /// Why: required, recorded in history and the audit log.
    #[arg(long, required = true, value_name = "TEXT")]
    pub reason: String,
    /// Wait for the rollback to finish, showing its progress.
    #[arg(long)]
    pub wait: bool,
    /// Do not ask for confirmation.
    #[arg(short = 'y', long)]
    pub yes: bool,
    /// Abort the running operation first instead of queueing behind it.
    #[arg(long)]
    pub preempt: bool,
    /// Only this context (repeat for several); the others stay where they are.
    /// Default: every context of the release.
    #[arg(long = "context", value_name = "CONTEXT")]
    pub contexts: Vec<String>,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, clap::Args)]
pub struct ControlArgs {
    /// The release, `app.namespace`.
    pub release: String,
    /// Why; recorded in the audit log (required for abort).
    #[arg(long, default_value = "", value_name = "TEXT")]
    pub reason: String,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, clap::Args)]
pub struct GateArgs {
    /// The release, `app.namespace`.
    pub release: String,
    /// The gated wave (1-based). Default: the one the rollout waits at.
    #[arg(long, value_name = "N")]
    pub wave: Option<u32>,
    /// Why; recorded in the audit log (required to refuse).
    #[arg(long, default_value = "", value_name = "TEXT")]
    pub reason: String,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, clap::Args)]
pub struct CancelArgs {
    /// The release, `app.namespace`.
    pub release: String,
    /// The queued operation's id (from `convoy queue` or submit's output).
    pub operation_id: String,
    /// Why; recorded in the audit log.
    #[arg(long, default_value = "", value_name = "TEXT")]
    pub reason: String,
    #[command(flatten)]
    pub common: Common,
}

/// Which control call `ControlArgs` drives.
#[derive(Debug, Clone, Copy)]
pub enum Action {
    Pause,
    Resume,
    Abort,
}

pub async fn rollback(a: RollbackArgs, interactive: bool, stdout_terminal: bool) -> Result<()> {
    if a.reason.trim().is_empty() {
        return Err(CliError::InvalidInput(
            "rollback needs a --reason (it is recorded in history and the audit log)".into(),
        ));
    }
    let client = a.common.client().await?;
    if interactive && !a.yes && !confirm(&client, &a).await? {
        return Err(CliError::Other("rollback not confirmed; nothing was done".into()));
    }
    let req = pb::RollbackReleaseRequest {
        release: a.release.clone(),
        to_revision: a.to_revision.unwrap_or(0),
        reason: a.reason.clone(),
        preempt: a.preempt,
        contexts: a.contexts.clone(),
    };
    let mut releases = client.releases.clone();
    let resp = client
        .call(&format!("rollback {}", a.release), releases.rollback_release(req))
        .await?;
    let fmt = a.common.output.output;
    let line = format!(
        "rollback of {} to revision {} recorded as revision {} (operation {}, {})",
        resp.release,
        resp.rollback_to,
        resp.revision,
        resp.operation_id,
        op_phase(resp.phase)
    );
    if !a.wait {
        let mut out = std::io::stdout().lock();
        return match fmt {
            Some(Format::Json) => Ok(output::print_json(&mut out, &output::json::rollback(&resp))?),
            _ => Ok(writeln!(out, "{line}")?),
        };
    }
    let mode = Mode::pick(fmt, stdout_terminal);
    if mode == Mode::Json {
        println!(
            "{}",
            serde_json::json!({ "rollback": output::json::rollback(&resp) })
        );
    } else {
        println!("{line}");
    }
    let done = follow(&client, &resp.release, &resp.operation_id, false, mode).await?;
    outcome(&resp.release, &done)
}

/// Shows what the rollback will touch and asks on the terminal; true to go ahead.
async fn confirm(client: &Client, a: &RollbackArgs) -> Result<bool> {
    let mut releases = client.releases.clone();
    let req = pb::GetReleaseRequest {
        release: a.release.clone(),
    };
    let r = client
        .call(&format!("status {}", a.release), releases.get_release(req))
        .await?;
    let target = a.to_revision.map_or_else(
        || "the previous revision".to_string(),
        |n| format!("revision {n}"),
    );
    let contexts: Vec<&str> = r
        .contexts
        .iter()
        .map(|c| c.context.as_str())
        .filter(|c| a.contexts.is_empty() || a.contexts.iter().any(|only| only == c))
        .collect();
    let mut err = std::io::stderr().lock();
    writeln!(
        err,
        "Roll back {} (deployed revision {}, latest {}) to {target} in {} context(s): {}",
        r.name,
        r.deployed_revision,
        r.latest_revision,
        contexts.len(),
        contexts.join(", ")
    )?;
    if let Some(o) = &r.current_operation {
        let how = if a.preempt {
            "will be aborted first (--preempt)"
        } else {
            "runs first; the rollback queues behind it"
        };
        writeln!(
            err,
            "A {} to revision {} is {}: it {how}.",
            op_kind(o.kind).to_lowercase(),
            o.revision,
            op_phase(o.phase)
        )?;
    }
    write!(err, "Reason: {}\nProceed? [y/N] ", a.reason)?;
    err.flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes"))
}

pub async fn control(action: Action, a: ControlArgs) -> Result<()> {
    if matches!(action, Action::Abort) && a.reason.trim().is_empty() {
        return Err(CliError::InvalidInput(
            "abort needs a --reason (it is recorded in the audit log)".into(),
        ));
    }
    let client = a.common.client().await?;
    let mut releases = client.releases.clone();
    let req = pb::ControlRequest {
        release: a.release.clone(),
        reason: a.reason.clone(),
        wave: 0,
    };
    let (verb, resp) = match action {
        Action::Pause => (
            "pause",
            client
                .call(&format!("pause {}", a.release), releases.pause_release(req))
                .await?,
        ),
        Action::Resume => (
            "resume",
            client
                .call(&format!("resume {}", a.release), releases.resume_release(req))
                .await?,
        ),
        Action::Abort => (
            "abort",
            client
                .call(&format!("abort {}", a.release), releases.abort_release(req))
                .await?,
        ),
    };
    print_operation(
        &a.common,
        &format!("{verb} {}", a.release),
        resp.operation.as_ref(),
    )
}

/// `convoy approve` (`approve`) or `convoy refuse`.
pub async fn gate(approve: bool, a: GateArgs) -> Result<()> {
    if !approve && a.reason.trim().is_empty() {
        return Err(CliError::InvalidInput(
            "refuse needs a --reason (it is recorded in the audit log and shown as why the gate failed)"
                .into(),
        ));
    }
    if a.wave == Some(0) {
        return Err(CliError::InvalidInput("--wave counts from 1".into()));
    }
    let client = a.common.client().await?;
    let mut releases = client.releases.clone();
    let req = pb::ControlRequest {
        release: a.release.clone(),
        reason: a.reason.clone(),
        wave: a.wave.unwrap_or(0),
    };
    let verb = if approve { "approve" } else { "refuse" };
    let what = format!("{verb} {}", a.release);
    let resp = if approve {
        client.call(&what, releases.approve_release(req)).await?
    } else {
        client.call(&what, releases.refuse_release(req)).await?
    };
    print_operation(&a.common, &what, resp.operation.as_ref())
}

pub async fn cancel(a: CancelArgs) -> Result<()> {
    let client = a.common.client().await?;
    let mut releases = client.releases.clone();
    let req = pb::CancelQueuedRequest {
        release: a.release.clone(),
        operation_id: a.operation_id.clone(),
        reason: a.reason.clone(),
    };
    let what = format!("cancel {} {}", a.release, a.operation_id);
    let resp = client.call(&what, releases.cancel_queued(req)).await?;
    print_operation(&a.common, &what, resp.operation.as_ref())
}

fn print_operation(common: &Common, what: &str, op: Option<&pb::Operation>) -> Result<()> {
    let mut out = std::io::stdout().lock();
    if common.output.format() == Format::Json {
        let doc = serde_json::json!({ "operation": op.map(output::json::operation) });
        return Ok(output::print_json(&mut out, &doc)?);
    }
    match op {
        Some(o) => writeln!(
            out,
            "{what}: {} to revision {} is now {} [{}]",
            op_kind(o.kind).to_lowercase(),
            o.revision,
            op_phase(o.phase),
            o.id
        )?,
        None => writeln!(out, "{what}: done")?,
    }
    Ok(())
}

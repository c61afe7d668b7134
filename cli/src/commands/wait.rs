//! `convoy watch`, and the waiting shared by `submit --wait` and `rollback --wait`:
//! stream the operation's events into a [`Progress`] renderer, then turn its final
//! phase into success or a "rollout failed" error (exit 3) that says what was rolled back.
//!
//! A release of more than [`SUMMARY_THRESHOLD`] contexts is shown as counts by phase
//! (per wave) and the failed contexts instead of one row or line per context (see
//! `crate::progress`). A watch the coordinator cuts off (restart, or
//! `RESOURCE_EXHAUSTED` when this watcher fell behind) is reopened; the new watch's
//! snapshot replaces what was shown.

use std::time::Duration;

use convoy_proto::v1 as pb;

use super::Common;
use crate::client::Client;
use crate::exit::{CliError, Result};
use crate::output::{ctx_phase, op_kind, op_phase};
use crate::progress::{Mode, PLAIN_SUMMARY_EVERY, Progress, SUMMARY_THRESHOLD};

pub const WATCH_EXAMPLES: &str = "\
Examples:
  convoy watch web.shop                      # the running (or next) operation, until it ends
  convoy watch web.shop --operation op-7f3a  # one operation by id (from submit's output)
  convoy watch web.shop --follow -o json     # every operation, as JSON lines, until Ctrl-C

Exits 0 when the watched operation succeeds, 3 when it fails or is aborted.

Above 50 contexts (the same for submit --wait and rollback --wait), the live view
shows counts by phase per wave and the failed contexts instead of one row per
context, and plain output (-o plain, or not a terminal) prints a summary line on every
operation change and at most every 5 seconds, plus one line per failed context.
-o json prints every event, whatever the size.";

#[derive(Debug, clap::Args)]
pub struct WatchArgs {
    /// The release, `app.namespace`.
    pub release: String,
    /// Watch this operation (default: the running one, or the next to start).
    #[arg(long, value_name = "ID")]
    pub operation: Option<String>,
    /// Keep watching across operations instead of stopping when this one ends.
    #[arg(long)]
    pub follow: bool,
    #[command(flatten)]
    pub common: Common,
}

pub async fn watch(a: WatchArgs, stdout_terminal: bool) -> Result<()> {
    let client = a.common.client().await?;
    let mode = Mode::pick(a.common.output.output, stdout_terminal);
    let op = a.operation.as_deref().unwrap_or("");
    let done = follow(&client, &a.release, op, a.follow, mode).await?;
    outcome(&a.release, &done)
}

/// What a finished watch saw.
pub struct Finished {
    pub operation: Option<pb::Operation>,
    pub contexts: Vec<pb::ContextState>,
}

/// How often, and how far apart, a broken watch is reopened. The coordinator keeps its
/// rollouts across restarts, so a Jenkins job waiting on one should outlive a restart
/// (about a minute) rather than fail while the rollout carries on.
const RECONNECT_ATTEMPTS: u32 = 30;
const RECONNECT_PAUSE: Duration = Duration::from_secs(2);
/// The longest the coordinator may take to open a watch.
const OPEN_TIMEOUT: Duration = Duration::from_secs(60);
/// How often a summarised view catches up with changes its pacing held back.
const TICK: Duration = Duration::from_millis(250);
// The help text above quotes these.
const _: () = assert!(SUMMARY_THRESHOLD == 50 && PLAIN_SUMMARY_EVERY.as_secs() == 5);

/// Streams one operation (or all, with `follow_all`) to stdout until it ends,
/// reopening the watch when the connection breaks or the watcher falls behind.
pub async fn follow(
    client: &Client,
    release: &str,
    operation_id: &str,
    follow_all: bool,
    mode: Mode,
) -> Result<Finished> {
    let what = format!("watch {release}");
    let mut releases = client.releases.clone();
    let stdout = std::io::stdout();
    let mut progress = Progress::new(mode, release, stdout.lock());
    if mode != Mode::Json {
        // The size decides between rows and counts from the first event on; without
        // it (no answer), counts take over once more than the threshold arrived.
        let get = releases.get_release(pb::GetReleaseRequest {
            release: release.to_string(),
        });
        if let Ok(r) = client.call(&what, get).await {
            progress.expect_contexts(r.contexts.len());
        }
    }
    let mut operation_id = operation_id.to_string();
    let mut failures = 0;
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let req = pb::WatchReleaseRequest {
            release: release.to_string(),
            operation_id: operation_id.clone(),
            follow: follow_all,
        };
        // Not `client.call`: a refusal to open (RESOURCE_EXHAUSTED while the coordinator
        // sheds watchers, UNAVAILABLE while it restarts) is as retryable as a cut.
        let opened = match tokio::time::timeout(OPEN_TIMEOUT, releases.watch_release(req)).await {
            Ok(Ok(r)) => Ok(r.into_inner()),
            Ok(Err(s)) => Err(s),
            Err(_) => Err(tonic::Status::deadline_exceeded(format!(
                "no answer within {}s",
                OPEN_TIMEOUT.as_secs()
            ))),
        };
        let broken = match opened {
            Ok(mut stream) => loop {
                // `Streaming::message` is cancel safe: a tick loses no event.
                tokio::select! {
                    m = stream.message() => match m {
                        Ok(Some(e)) => {
                            failures = 0;
                            progress.event(&e)?;
                        }
                        Ok(None) => break None,
                        Err(s) => break Some((retryable(s.code()), CliError::from_status(&what, &s))),
                    },
                    _ = tick.tick() => progress.tick()?,
                }
            },
            Err(s) => Some((
                retryable(s.code()) || s.code() == tonic::Code::DeadlineExceeded,
                CliError::from_status(&what, &s),
            )),
        };
        let ended = !follow_all && progress.operation().is_some_and(|o| is_final(o.phase));
        let (retry, err) = match broken {
            None if ended => break,
            None => (
                true,
                CliError::Unreachable(format!(
                    "{what}: the coordinator closed the watch before the operation ended"
                )),
            ),
            Some(b) => b,
        };
        failures += 1;
        if !retry || failures > RECONNECT_ATTEMPTS {
            progress.finish()?;
            return Err(err);
        }
        // Keep watching the same operation, even if the watch started without an id.
        if operation_id.is_empty() && !follow_all {
            operation_id = progress.operation().map(|o| o.id.clone()).unwrap_or_default();
        }
        eprintln!(
            "{err}; watching again in {}s (attempt {failures} of {RECONNECT_ATTEMPTS})",
            RECONNECT_PAUSE.as_secs()
        );
        // The reopened watch starts with a full snapshot: it replaces what is known.
        progress.resync();
        tokio::time::sleep(RECONNECT_PAUSE).await;
    }
    progress.finish()?;
    Ok(Finished {
        operation: progress.operation().cloned(),
        contexts: progress.contexts().cloned().collect(),
    })
}

/// Whether a watch that broke with `code` is worth reopening: the connection dropped
/// (the coordinator restarted) or the watcher fell behind the event stream.
fn retryable(code: tonic::Code) -> bool {
    use tonic::Code;
    matches!(
        code,
        Code::Unavailable | Code::ResourceExhausted | Code::Unknown | Code::Cancelled
    )
}

fn is_final(phase: i32) -> bool {
    use pb::OperationPhase as P;
    [P::Succeeded, P::Failed, P::Aborted, P::Cancelled]
        .iter()
        .any(|p| *p as i32 == phase)
}

/// Success for a SUCCEEDED operation; exit 3 with what failed and what was rolled back
/// otherwise.
pub fn outcome(release: &str, done: &Finished) -> Result<()> {
    let Some(op) = &done.operation else {
        return Err(CliError::Unreachable(format!(
            "the watch of {release} ended before any operation was reported; is the coordinator shutting down?"
        )));
    };
    let phase = pb::OperationPhase::try_from(op.phase).unwrap_or(pb::OperationPhase::Unspecified);
    let head = format!(
        "{release} {} to revision {}",
        op_kind(op.kind).to_lowercase(),
        op.revision
    );
    match phase {
        pb::OperationPhase::Succeeded => Ok(()),
        pb::OperationPhase::Failed | pb::OperationPhase::Aborted | pb::OperationPhase::Cancelled => {
            let mut msg = format!("{head} {}: {}", op_phase(op.phase), op.message);
            let failed: Vec<String> = done
                .contexts
                .iter()
                .filter(|c| c.phase == pb::ContextPhase::Failed as i32)
                .map(|c| format!("{} ({})", c.context, c.message))
                .collect();
            if !failed.is_empty() {
                msg.push_str(&format!("\n  failed: {}", failed.join("; ")));
            }
            let rolled: Vec<&str> = done
                .contexts
                .iter()
                .filter(|c| c.phase == pb::ContextPhase::RolledBack as i32)
                .map(|c| c.context.as_str())
                .collect();
            if !rolled.is_empty() {
                msg.push_str(&format!("\n  rolled back: {}", rolled.join(", ")));
            }
            let other: Vec<String> = done
                .contexts
                .iter()
                .filter(|c| {
                    ![
                        pb::ContextPhase::Failed as i32,
                        pb::ContextPhase::RolledBack as i32,
                    ]
                    .contains(&c.phase)
                })
                .map(|c| format!("{} {}", c.context, ctx_phase(c.phase)))
                .collect();
            if !other.is_empty() && !rolled.is_empty() {
                msg.push_str(&format!("\n  not rolled back: {}", other.join(", ")));
            }
            Err(CliError::RolloutFailed(msg))
        }
        _ => Err(CliError::Unreachable(format!(
            "the watch of {release} ended while the operation was still {}; run `convoy watch {release}` to follow it",
            op_phase(op.phase)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(name: &str, phase: pb::ContextPhase, message: &str) -> pb::ContextState {
        pb::ContextState {
            context: name.into(),
            phase: phase as i32,
            message: message.into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_failed_rollout_names_what_failed_and_what_was_rolled_back() {
        let done = Finished {
            operation: Some(pb::Operation {
                kind: pb::OperationKind::Deploy as i32,
                phase: pb::OperationPhase::Failed as i32,
                revision: 2,
                message: "revision 2 failed; rolled 2 context(s) back to revision 1".into(),
                ..Default::default()
            }),
            contexts: vec![
                ctx("east", pb::ContextPhase::RolledBack, "rolled back; healthy"),
                ctx("west", pb::ContextPhase::Failed, "CrashLoopBackOff"),
                ctx("south", pb::ContextPhase::RolledBack, "rolled back; healthy"),
            ],
        };
        let e = outcome("web.shop", &done).unwrap_err();
        assert_eq!(e.code(), crate::exit::ROLLOUT_FAILED);
        assert_eq!(
            e.to_string(),
            "web.shop deploy to revision 2 FAILED: revision 2 failed; rolled 2 context(s) back to revision 1\n  \
             failed: west (CrashLoopBackOff)\n  rolled back: east, south"
        );
    }

    #[test]
    fn a_watch_cut_off_or_refused_for_load_is_reopened() {
        use tonic::Code;
        // `watcher fell N events behind`, a restart, a reset stream: reopen.
        for code in [
            Code::ResourceExhausted,
            Code::Unavailable,
            Code::Unknown,
            Code::Cancelled,
        ] {
            assert!(retryable(code), "{code:?}");
        }
        // What another attempt would not change: fail at once.
        for code in [Code::NotFound, Code::PermissionDenied, Code::InvalidArgument] {
            assert!(!retryable(code), "{code:?}");
        }
    }

    #[test]
    fn success_and_unfinished() {
        let mut done = Finished {
            operation: Some(pb::Operation {
                phase: pb::OperationPhase::Succeeded as i32,
                ..Default::default()
            }),
            contexts: vec![],
        };
        assert!(outcome("web.shop", &done).is_ok());
        done.operation.as_mut().unwrap().phase = pb::OperationPhase::Running as i32;
        assert_eq!(
            outcome("web.shop", &done).unwrap_err().code(),
            crate::exit::UNREACHABLE
        );
    }
}

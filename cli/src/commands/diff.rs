//! `convoy diff -f FILE`: what submitting a release file would change in every target
//! context, from the agents' server-side dry runs against what runs there now. Nothing
//! is recorded, queued or applied.
//!
//! The request is the one `submit` sends ([`release_file`]); the output is printed in
//! full first, then [`verdict`] picks the exit code: 3 a submit would fail somewhere,
//! 1 some context was not compared, 7 (`--exit-code`) something would change, else 0.

use std::io::Write;
use std::path::PathBuf;

use convoy_proto::v1 as pb;

use super::{Common, release_file};
use crate::exit::{CliError, Result};
use crate::output::diff::{Summary, text};
use crate::output::{self, Format};

pub const EXAMPLES: &str = "\
Examples:
  convoy diff -f releases/web.yaml                   # per context: what a submit would change
  convoy diff -f releases/web.yaml --show-unchanged  # list unchanged objects too
  convoy diff -f releases/web.yaml -o json | jq '.contexts[] | select(.changed) | .context'
  convoy diff -f releases/web.yaml --timeout 30      # contexts slower than ~25s: timed out

In a Jenkins job (skip the deploy when nothing would change):
  rc=0; convoy diff -f releases/web.yaml --exit-code || rc=$?
  case $rc in
    0) echo 'no changes: nothing to deploy' ;;
    7) convoy submit -f releases/web.yaml --wait --reason \"$BUILD_TAG\" ;;
    3) echo 'a submit would fail (see the diff above)'; exit 3 ;;
    *) echo 'diff incomplete or failed'; exit $rc ;;
  esac

Secret values are never shown (`(value hidden)`). The diff is printed first in every
case; the exit code then says: 0 every context compared (with or without changes);
7 with --exit-code, something would change; 1 a context was not compared (agent
offline or too slow; named on stderr); 3 a context's dry run failed or an object would
be refused, so a submit would fail its preflight there. 3 wins over 1, 1 over 7.";

#[derive(Debug, clap::Args)]
#[command(mut_arg("timeout", |a| a
    .default_value("65")
    .help("Give up after this many seconds. The agents get all of it but a 5-second \
           margin for their dry runs; a context whose agent has not answered by then \
           is reported as timed out")),
    mut_arg("output", |a| a
    .help("Output format: `text` (the default; `table` and `plain` are the same here) \
           for people and logs, `json` for scripts")))]
pub struct DiffArgs {
    /// The release file (`kind: Release`), as for `convoy submit`; its local chart and
    /// values files are sent too.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: PathBuf,
    /// Exit 7 when a submit would change anything (as `git diff --exit-code`).
    #[arg(long)]
    pub exit_code: bool,
    /// List unchanged objects too (`= ...`) instead of only counting them. Text output only.
    #[arg(long)]
    pub show_unchanged: bool,
    #[command(flatten)]
    pub common: Common,
}

pub async fn run(a: DiffArgs) -> Result<()> {
    let agents = agent_timeout(a.common.connect.timeout)?;
    let submit = release_file::submit_request(&a.file, "", false)?;
    let shown = submit.source_name.clone();
    let client = a.common.client().await?;
    let req = pb::DiffReleaseRequest {
        submit: Some(submit),
        timeout_seconds: agents,
    };
    let mut releases = client.releases.clone();
    // The call can take up to the timeout (a slow agent): say what it is waiting for,
    // on a terminal only (logs get the result, which says the same).
    let waiting = std::io::IsTerminal::is_terminal(&std::io::stderr());
    if waiting {
        eprint!("diff {shown}: rendering and waiting for the agents' dry runs (up to {agents}s)...");
    }
    let resp = client
        .call(&format!("diff {shown}"), releases.diff_release(req))
        .await;
    if waiting {
        // Erase the line before the diff (or the error) is printed.
        eprint!("\r\x1b[2K");
    }
    let resp = resp?;
    let mut out = std::io::stdout().lock();
    match a.common.output.format() {
        Format::Json => output::print_json(&mut out, &output::json::diff(&resp))?,
        Format::Table | Format::Plain => {
            let opts = text::Options {
                show_unchanged: a.show_unchanged,
            };
            text::write(&mut out, &resp, opts)?;
        }
    }
    // The diff is out before the verdict's stderr line, in a log that merges both.
    out.flush()?;
    verdict(&resp, a.exit_code)
}

/// The seconds the agents get, out of the request's `--timeout`: the coordinator needs
/// a moment after its deadline to answer with the contexts that timed out, or the
/// whole call would fail as unreachable instead.
fn agent_timeout(request_secs: u64) -> Result<u32> {
    if request_secs == 0 {
        return Err(CliError::InvalidInput(
            "diff: --timeout must be at least 1 second".into(),
        ));
    }
    let margin = (request_secs / 2).min(5);
    Ok(u32::try_from(request_secs - margin).unwrap_or(u32::MAX))
}

/// The exit status of a printed diff: 3 a submit would fail its preflight somewhere,
/// 1 a context was not compared, 7 with `exit_code` something would change, else 0.
/// The error's message names every failed and uncompared context.
pub fn verdict(r: &pb::DiffReleaseResponse, exit_code: bool) -> Result<()> {
    let s = Summary::of(r);
    let list = |v: &[(String, String)]| {
        v.iter()
            .map(|(c, why)| {
                if why.is_empty() {
                    c.clone()
                } else {
                    format!("{c} ({why})")
                }
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    let mut problems = Vec::new();
    if !s.failed.is_empty() {
        problems.push(format!(
            "diff of {}: a submit would fail its preflight in {}",
            r.release,
            list(&s.failed)
        ));
    }
    if !s.not_compared.is_empty() {
        problems.push(format!(
            "diff of {} is incomplete: not compared in {}",
            r.release,
            list(&s.not_compared)
        ));
    }
    let message = problems.join("\n  ");
    if !s.failed.is_empty() {
        Err(CliError::Precondition(message))
    } else if !s.not_compared.is_empty() {
        Err(CliError::Incomplete(message))
    } else if exit_code && s.changed > 0 {
        Err(CliError::ChangesFound(format!(
            "{}: changes in {} of {} contexts (--exit-code)",
            r.release, s.changed, s.contexts
        )))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::{CHANGES_FOUND, INVALID_INPUT, OTHER, ROLLOUT_FAILED};

    fn ctx(name: &str, status: pb::DiffStatus, actions: &[pb::DiffAction]) -> pb::ContextDiff {
        pb::ContextDiff {
            context: name.into(),
            region: "r".into(),
            status: status as i32,
            message: if status == pb::DiffStatus::Failed {
                "Deployment shop/web: spec.replicas: Invalid value".into()
            } else {
                String::new()
            },
            objects: actions
                .iter()
                .enumerate()
                .map(|(i, a)| pb::ObjectDiff {
                    api_version: "v1".into(),
                    kind: "ConfigMap".into(),
                    namespace: "shop".into(),
                    name: format!("cm{i}"),
                    action: *a as i32,
                    message: if *a == pb::DiffAction::Refused {
                        "owned by release other.shop".into()
                    } else {
                        String::new()
                    },
                    changes: Vec::new(),
                })
                .collect(),
        }
    }

    fn resp(contexts: Vec<pb::ContextDiff>) -> pb::DiffReleaseResponse {
        pb::DiffReleaseResponse {
            release: "web.shop".into(),
            contexts,
        }
    }

    fn code(r: &pb::DiffReleaseResponse, exit_code: bool) -> u8 {
        verdict(r, exit_code).map_or_else(|e| e.code(), |()| crate::exit::SUCCESS)
    }

    use pb::DiffAction::{Refused, Unchanged, Update};
    use pb::DiffStatus::{AgentOffline, Done, Failed, TimedOut};

    #[test]
    fn changes_exit_0_unless_asked_then_7() {
        let r = resp(vec![
            ctx("east", Done, &[Update, Unchanged]),
            ctx("west", Done, &[Unchanged]),
        ]);
        assert_eq!(code(&r, false), 0);
        assert_eq!(code(&r, true), CHANGES_FOUND);
        let e = verdict(&r, true).unwrap_err();
        assert_eq!(
            e.to_string(),
            "web.shop: changes in 1 of 2 contexts (--exit-code)"
        );
        let same = resp(vec![ctx("east", Done, &[Unchanged])]);
        assert_eq!(code(&same, true), 0);
    }

    #[test]
    fn an_incomplete_diff_exits_1_naming_the_contexts_over_changes() {
        let r = resp(vec![
            ctx("east", Done, &[Update]),
            ctx("west", AgentOffline, &[]),
            ctx("south", TimedOut, &[]),
        ]);
        assert_eq!(code(&r, true), OTHER);
        assert_eq!(
            verdict(&r, false).unwrap_err().to_string(),
            "diff of web.shop is incomplete: not compared in west (agent offline); south (timed out)"
        );
        // A status this CLI does not know is not a comparison either.
        let unknown = pb::ContextDiff {
            status: 42,
            ..ctx("north", Done, &[])
        };
        assert_eq!(code(&resp(vec![unknown]), false), OTHER);
    }

    #[test]
    fn a_failed_dry_run_exits_3_over_everything_and_names_both_problems() {
        let r = resp(vec![
            ctx("east", Done, &[Update]),
            ctx("west", Failed, &[]),
            ctx("south", AgentOffline, &[]),
        ]);
        assert_eq!(code(&r, true), ROLLOUT_FAILED);
        assert_eq!(
            verdict(&r, false).unwrap_err().to_string(),
            "diff of web.shop: a submit would fail its preflight in west (Deployment shop/web: \
             spec.replicas: Invalid value)\n  diff of web.shop is incomplete: not compared in south (agent offline)"
        );
    }

    #[test]
    fn a_refused_object_exits_3_as_the_submits_preflight_would_fail() {
        let r = resp(vec![ctx("east", Done, &[Unchanged, Refused])]);
        assert_eq!(code(&r, false), ROLLOUT_FAILED);
        assert!(
            verdict(&r, false)
                .unwrap_err()
                .to_string()
                .contains("east (v1 ConfigMap shop/cm1 refused: owned by release other.shop)")
        );
    }

    #[test]
    fn agents_get_the_timeout_less_a_margin() {
        assert_eq!(agent_timeout(65).unwrap(), 60);
        assert_eq!(agent_timeout(4).unwrap(), 2);
        assert_eq!(agent_timeout(1).unwrap(), 1);
        assert_eq!(agent_timeout(0).unwrap_err().code(), INVALID_INPUT);
    }

    #[test]
    fn the_flags_parse_and_the_timeout_defaults_for_diff_only() {
        let argv = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let crate::commands::Online::Diff(d) = crate::commands::parse_online(&argv(&[
            "convoy",
            "diff",
            "-f",
            "web.yaml",
            "--exit-code",
            "-o",
            "json",
        ]))
        .unwrap() else {
            panic!("not a diff");
        };
        assert!(d.exit_code && !d.show_unchanged);
        assert_eq!(d.common.connect.timeout, 65);
        assert_eq!(d.common.output.output, Some(Format::Json));
        let crate::commands::Online::Submit(s) =
            crate::commands::parse_online(&argv(&["convoy", "submit", "-f", "web.yaml"])).unwrap()
        else {
            panic!("not a submit");
        };
        assert_eq!(s.common.connect.timeout, 120);
    }
}

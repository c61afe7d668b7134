//! `convoy submit -f FILE`: send a release file, its local chart and its values files
//! (see [`release_file`]) to the coordinator, which validates, resolves secrets,
//! renders and queues a deploy.

use std::path::PathBuf;

use convoy_proto::v1 as pb;

use super::wait::{follow, outcome};
use super::{Common, release_file};
use crate::exit::Result;
use crate::output::{self, Format, op_phase};
use crate::progress::Mode;

pub const EXAMPLES: &str = "\
Examples:
  convoy submit -f releases/web.yaml
  convoy submit -f releases/web.yaml --wait --reason \"JIRA-123 new image\"
  convoy submit -f releases/web.yaml --dry-run        # validate, resolve and render only
  convoy submit -f releases/web.yaml --allow-mass-deletion   # this revision may prune most objects
  CONVOY_SERVER=https://convoy:7443 CONVOY_TOKEN=... convoy submit -f web.yaml --wait --ca-file ca.pem

With --wait it exits 0 when every context is healthy and 3 when the rollout failed
(the message says which contexts failed and which were rolled back).";

#[derive(Debug, clap::Args)]
pub struct SubmitArgs {
    /// The release file (`kind: Release`).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: PathBuf,
    /// Wait for the rollout to finish, showing its progress.
    #[arg(long)]
    pub wait: bool,
    /// Why (a ticket, a commit); recorded in history and the audit log.
    #[arg(long, default_value = "", value_name = "TEXT")]
    pub reason: String,
    /// Validate, resolve secrets and render only: no revision is recorded, no cluster touched.
    #[arg(long, conflicts_with = "wait")]
    pub dry_run: bool,
    /// Let this revision delete more than the agents' share of the release's objects
    /// (default 50 %), or all of them (an empty render); without it (or the release
    /// file's `spec.options.allowMassDeletion: true`) the agents refuse such a revision.
    #[arg(long)]
    pub allow_mass_deletion: bool,
    #[command(flatten)]
    pub common: Common,
}

pub async fn run(a: SubmitArgs, stdout_terminal: bool) -> Result<()> {
    let mut req = release_file::submit_request(&a.file, &a.reason, a.dry_run)?;
    req.allow_mass_deletion = a.allow_mass_deletion;
    let shown = req.source_name.clone();
    let client = a.common.client().await?;
    let mut releases = client.releases.clone();
    let resp = client
        .call(&format!("submit {shown}"), releases.submit_release(req))
        .await?;
    let fmt = a.common.output.output;
    if !a.wait {
        return print_response(&resp, fmt.unwrap_or(Format::Table), a.dry_run);
    }
    let mode = Mode::pick(fmt, stdout_terminal);
    if mode == Mode::Json {
        // The first JSON line is the submit's answer; the rollout events follow.
        println!(
            "{}",
            serde_json::json!({ "submitted": output::json::submitted(&resp) })
        );
    } else {
        println!("{}", accepted_line(&resp));
    }
    let done = follow(&client, &resp.release, &resp.operation_id, false, mode).await?;
    outcome(&resp.release, &done)
}

fn accepted_line(r: &pb::SubmitReleaseResponse) -> String {
    let queued = if r.queue_position > 0 {
        format!(", {} ahead in the queue", r.queue_position)
    } else {
        String::new()
    };
    format!(
        "submitted {} revision {} (operation {}, {}{queued})",
        r.release,
        r.revision,
        r.operation_id,
        op_phase(r.phase)
    )
}

fn print_response(r: &pb::SubmitReleaseResponse, fmt: Format, dry_run: bool) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match fmt {
        Format::Json => output::print_json(&mut out, &output::json::submitted(r))?,
        Format::Plain | Format::Table => {
            use std::io::Write;
            if dry_run {
                writeln!(
                    out,
                    "dry run of {}: valid; nothing recorded or applied",
                    r.release
                )?;
            } else {
                writeln!(out, "{}", accepted_line(r))?;
            }
            let rows: Vec<Vec<String>> = r
                .rendered
                .iter()
                .map(|s| {
                    vec![
                        s.context.clone(),
                        s.objects.to_string(),
                        s.manifest_digest.clone(),
                    ]
                })
                .collect();
            output::table(&mut out, &["CONTEXT", "OBJECTS", "MANIFEST DIGEST"], &rows)?;
        }
    }
    Ok(())
}

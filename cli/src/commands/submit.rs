//! `convoy submit -f FILE`: send a release file, its local chart and its values files
//! to the coordinator, which validates, resolves secrets, renders and queues a deploy.
//!
//! The file is only peeked at (YAML, `spec.chart.path`, `spec.valuesFiles`): the
//! coordinator owns validation, so its errors (with file:line:col) are the ones shown.

use std::path::{Path, PathBuf};

use convoy_proto::v1 as pb;
use serde_yaml::Value;

use super::Common;
use super::wait::{follow, outcome};
use crate::exit::{CliError, Result};
use crate::output::{self, Format, op_phase};
use crate::progress::Mode;

pub const EXAMPLES: &str = "\
Examples:
  convoy submit -f releases/web.yaml
  convoy submit -f releases/web.yaml --wait --reason \"JIRA-123 new image\"
  convoy submit -f releases/web.yaml --dry-run        # validate, resolve and render only
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
    #[command(flatten)]
    pub common: Common,
}

/// What is sent besides the file itself.
#[derive(Debug, PartialEq)]
struct Attachments {
    /// The directory of a local chart (`spec.chart.path`), resolved against the file's directory.
    chart_dir: Option<PathBuf>,
    /// `spec.valuesFiles` as written, with their contents.
    values_files: Vec<pb::ValuesFile>,
}

pub async fn run(a: SubmitArgs, stdout_terminal: bool) -> Result<()> {
    let shown = a.file.display().to_string();
    let text = std::fs::read_to_string(&a.file)
        .map_err(|e| CliError::InvalidInput(format!("cannot read release file {shown}: {e}")))?;
    let dir = a.file.parent().unwrap_or(Path::new(""));
    let att = attachments(&text, &shown, dir)?;
    let chart_archive = match &att.chart_dir {
        Some(d) => convoy_chart::package_dir(d).map_err(|e| {
            CliError::InvalidInput(format!(
                "{shown}: spec.chart.path: cannot package {}: {e}",
                d.display()
            ))
        })?,
        None => Vec::new(),
    };
    let client = a.common.client().await?;
    let req = pb::SubmitReleaseRequest {
        release_yaml: text,
        source_name: shown.clone(),
        chart_archive,
        values_files: att.values_files,
        reason: a.reason.clone(),
        dry_run: a.dry_run,
    };
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

/// Finds the local chart and the values files the coordinator cannot read itself.
fn attachments(text: &str, shown: &str, dir: &Path) -> Result<Attachments> {
    let doc: Value = serde_yaml::from_str(text).map_err(|e| {
        let pos = e
            .location()
            .map(|l| format!("{}:{}:", l.line(), l.column()))
            .unwrap_or_default();
        CliError::InvalidInput(format!("{shown}:{pos} not valid YAML: {e}"))
    })?;
    let spec = doc.get("spec");
    let chart_dir = match spec.and_then(|s| s.get("chart")).and_then(|c| c.get("path")) {
        Some(Value::String(p)) => Some(dir.join(p)),
        Some(_) => {
            return Err(CliError::InvalidInput(format!(
                "{shown}: spec.chart.path: expected a path string"
            )));
        }
        None => None,
    };
    let mut values_files = Vec::new();
    match spec.and_then(|s| s.get("valuesFiles")) {
        None | Some(Value::Null) => {}
        Some(Value::Sequence(names)) => {
            for (i, n) in names.iter().enumerate() {
                let Value::String(name) = n else {
                    return Err(CliError::InvalidInput(format!(
                        "{shown}: spec.valuesFiles[{i}]: expected a path string"
                    )));
                };
                let path = dir.join(name);
                let content = std::fs::read_to_string(&path).map_err(|e| {
                    CliError::InvalidInput(format!(
                        "{shown}: spec.valuesFiles[{i}]: cannot read values file {}: {e}",
                        path.display()
                    ))
                })?;
                values_files.push(pb::ValuesFile {
                    name: name.clone(),
                    content,
                });
            }
        }
        Some(_) => {
            return Err(CliError::InvalidInput(format!(
                "{shown}: spec.valuesFiles: expected a list of file paths"
            )));
        }
    }
    Ok(Attachments {
        chart_dir,
        values_files,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_chart_and_reads_values_files_relative_to_the_release() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("values")).unwrap();
        std::fs::write(dir.path().join("values/prod.yaml"), "replicas: 3\n").unwrap();
        let text = "spec:\n  chart: {path: ../charts/web}\n  valuesFiles: [values/prod.yaml]\n";
        let att = attachments(text, "web.yaml", dir.path()).unwrap();
        assert_eq!(att.chart_dir, Some(dir.path().join("../charts/web")));
        assert_eq!(
            att.values_files,
            vec![pb::ValuesFile {
                name: "values/prod.yaml".into(),
                content: "replicas: 3\n".into()
            }]
        );
    }

    #[test]
    fn a_repo_chart_sends_no_archive() {
        let text = "spec:\n  chart: {repo: https://charts.example, name: web, version: 1.0.0}\n";
        let att = attachments(text, "web.yaml", Path::new(".")).unwrap();
        assert_eq!(att.chart_dir, None);
    }

    #[test]
    fn broken_yaml_is_invalid_input_with_a_position() {
        let e = attachments("spec:\n  chart: [\n", "web.yaml", Path::new(".")).unwrap_err();
        assert_eq!(e.code(), crate::exit::INVALID_INPUT);
        assert!(e.to_string().starts_with("web.yaml:"), "{e}");
    }

    #[test]
    fn a_missing_values_file_is_named() {
        let e = attachments(
            "spec:\n  valuesFiles: [nope.yaml]\n",
            "web.yaml",
            Path::new("/nonexistent"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("spec.valuesFiles[0]"), "{e}");
        assert!(e.to_string().contains("/nonexistent/nope.yaml"), "{e}");
    }
}

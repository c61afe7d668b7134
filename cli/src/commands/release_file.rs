//! A release file as the coordinator receives it, shared by `submit` and `diff` so both
//! send exactly the same request: the file's text, its local chart packaged, and the
//! values files it names.
//!
//! The file is only peeked at (YAML, `spec.chart.path`, `spec.valuesFiles`): the
//! coordinator owns validation, so its errors (with file:line:col) are the ones shown.

use std::path::{Path, PathBuf};

use convoy_proto::v1 as pb;
use serde_yaml::Value;

use crate::exit::{CliError, Result};

/// Reads `file` and builds the submit request for it. Everything local is read here,
/// before any connection, so a bad file fails with exit 2 even when the coordinator is
/// down.
pub fn submit_request(file: &Path, reason: &str, dry_run: bool) -> Result<pb::SubmitReleaseRequest> {
    let shown = file.display().to_string();
    let text = std::fs::read_to_string(file)
        .map_err(|e| CliError::InvalidInput(format!("cannot read release file {shown}: {e}")))?;
    let dir = file.parent().unwrap_or(Path::new(""));
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
    Ok(pb::SubmitReleaseRequest {
        release_yaml: text,
        source_name: shown,
        chart_archive,
        values_files: att.values_files,
        reason: reason.to_string(),
        dry_run,
        allow_mass_deletion: false,
    })
}

/// What is sent besides the file itself.
#[derive(Debug, PartialEq)]
struct Attachments {
    /// The directory of a local chart (`spec.chart.path`), resolved against the file's directory.
    chart_dir: Option<PathBuf>,
    /// `spec.valuesFiles` as written, with their contents.
    values_files: Vec<pb::ValuesFile>,
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
    fn a_request_carries_the_file_its_packaged_chart_and_values() {
        let dir = tempfile::tempdir().unwrap();
        let chart = dir.path().join("chart");
        std::fs::create_dir_all(chart.join("templates")).unwrap();
        std::fs::write(
            chart.join("Chart.yaml"),
            "apiVersion: v2\nname: web\nversion: 1.0.0\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("prod.yaml"), "replicas: 3\n").unwrap();
        let text = "spec:\n  chart: {path: chart}\n  valuesFiles: [prod.yaml]\n";
        std::fs::write(dir.path().join("web.yaml"), text).unwrap();
        let req = submit_request(&dir.path().join("web.yaml"), "JIRA-1", true).unwrap();
        assert_eq!(req.release_yaml, text);
        assert!(req.source_name.ends_with("web.yaml"), "{}", req.source_name);
        assert!(!req.chart_archive.is_empty());
        assert_eq!(req.values_files.len(), 1);
        assert_eq!((req.reason.as_str(), req.dry_run), ("JIRA-1", true));
    }

    #[test]
    fn a_missing_release_file_is_invalid_input() {
        let e = submit_request(Path::new("/nonexistent/web.yaml"), "", false).unwrap_err();
        assert_eq!(e.code(), crate::exit::INVALID_INPUT);
        assert!(e.to_string().contains("/nonexistent/web.yaml"), "{e}");
    }

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

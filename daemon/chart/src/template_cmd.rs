//! `convoy template`: Helm's `template` command as a library call, so the CLI and the
//! conformance tests run exactly the same code.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value as Json};

use crate::error::{ChartError, Result};
use crate::render::{RenderOptions, render};
use crate::strvals::{self, ValueKind};
use crate::{Chart, Rendered};

/// Everything `helm template` takes on its command line.
#[derive(Debug, Clone, Default)]
pub struct TemplateRequest {
    /// Positional arguments: `[NAME] CHART`.
    pub args: Vec<String>,
    /// `-f/--values` files, in order (later wins).
    pub values_files: Vec<String>,
    /// `--set` expressions.
    pub set: Vec<String>,
    /// `--set-string` expressions.
    pub set_string: Vec<String>,
    /// `--set-file` expressions (`key=path`).
    pub set_file: Vec<String>,
    /// `--set-json`
    pub set_json: Vec<String>,
    /// `-n/--namespace`.
    pub namespace: Option<String>,
    /// `--name-template`: a Go template that produces the release name.
    pub name_template: Option<String>,
    /// `-g/--generate-name`.
    pub generate_name: bool,
    /// `--kube-version`.
    pub kube_version: Option<String>,
    /// `-a/--api-versions`.
    pub api_versions: Vec<String>,
    /// `--include-crds`.
    pub include_crds: bool,
    /// `--skip-crds` (wins over `--include-crds`).
    pub skip_crds: bool,
    /// `--skip-tests`.
    pub skip_tests: bool,
    /// `--no-hooks`.
    pub no_hooks: bool,
    /// `-s/--show-only`.
    pub show_only: Vec<String>,
    /// `--is-upgrade`.
    pub is_upgrade: bool,
    /// `--output-dir`: write each template's documents to files instead of stdout.
    pub output_dir: Option<PathBuf>,
    /// `--repo`: take CHART from this chart repository.
    pub repo: Option<String>,
    /// `--version`: the version range to pick from `--repo`.
    pub version: Option<String>,
    /// Where relative paths are resolved (the CLI's working directory).
    pub base_dir: PathBuf,
    /// Repository access (credentials, cache); only used with `--repo`.
    pub repo_options: crate::repo::RepoOptions,
}

/// Helm's release-name rule (DNS-1123 subdomain, at most 53 characters).
pub fn validate_release_name(name: &str) -> Result<()> {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if name.is_empty() || name.len() > 53 || !name.split('.').all(label_ok) {
        return Err(ChartError::Invalid(format!(
            "invalid release name {name:?}: it must match ^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$ and be at most 53 characters long"
        )));
    }
    Ok(())
}

impl TemplateRequest {
    fn path(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
    }

    /// The user values from `-f`, `--set-json`, `--set`, `--set-string`, `--set-file`, in
    /// Helm's order.
    pub fn user_values(&self) -> Result<Map<String, Json>> {
        let mut base = Map::new();
        for f in &self.values_files {
            let path = self.path(f);
            let src = std::fs::read_to_string(&path).map_err(|e| ChartError::io(&path, e))?;
            let vals = crate::values::parse_values(&src, f)?;
            crate::values::merge_user_values(&mut base, vals);
        }
        // Helm's order: files, --set-json, --set, --set-string, --set-file.
        for s in &self.set_json {
            strvals::parse_into(s, &mut base, ValueKind::Json)?;
        }
        for s in &self.set {
            strvals::parse_into(s, &mut base, ValueKind::Typed)?;
        }
        for s in &self.set_string {
            strvals::parse_into(s, &mut base, ValueKind::String)?;
        }
        let read = |p: &str| -> std::result::Result<String, String> {
            let path = self.path(p);
            std::fs::read_to_string(&path).map_err(|e| format!("reading {}: {e}", path.display()))
        };
        for s in &self.set_file {
            strvals::parse_into(s, &mut base, ValueKind::File(&read))?;
        }
        Ok(base)
    }

    /// `[NAME] CHART` into (release name, chart reference), applying the naming flags.
    fn name_and_chart(&self) -> Result<(String, String)> {
        let generated = self.generate_name || self.name_template.is_some();
        match self.args.as_slice() {
            [] => Err(ChartError::Invalid(
                "\"convoy template\" requires at least 1 argument: [NAME] CHART".into(),
            )),
            [chart] => {
                let name = if let Some(t) = &self.name_template {
                    crate::engine::render_name_template(t)?
                } else if self.generate_name {
                    generate_name(chart)
                } else {
                    "release-name".to_string()
                };
                Ok((name, chart.clone()))
            }
            [name, chart] if !generated => Ok((name.clone(), chart.clone())),
            [_, _] => Err(ChartError::Invalid(
                "cannot set a release name and also use --generate-name or --name-template".into(),
            )),
            more => Err(ChartError::Invalid(format!(
                "expected at most 2 arguments ([NAME] CHART), got {}",
                more.len()
            ))),
        }
    }

    /// Loads the chart: a directory, a .tgz, or `--repo` + CHART (+ `--version`).
    pub fn load_chart(&self, chart_ref: &str) -> Result<Chart> {
        if let Some(repo) = &self.repo {
            let range = self.version.as_deref().unwrap_or("*");
            let bytes = crate::repo::fetch_chart(repo, chart_ref, range, &self.repo_options)?;
            return Chart::load_archive(&bytes);
        }
        Chart::load(&self.path(chart_ref))
    }

    /// Renders; the caller prints [`Rendered::to_helm_output`] (or uses `--output-dir`).
    pub fn render(&self) -> Result<Rendered> {
        let (name, chart_ref) = self.name_and_chart()?;
        validate_release_name(&name)?;
        let chart = self.load_chart(&chart_ref)?;
        let values = Json::Object(self.user_values()?);
        let opts = RenderOptions {
            release_name: name,
            namespace: self.namespace.clone().unwrap_or_default(),
            revision: 1,
            is_upgrade: self.is_upgrade,
            kube_version: self.kube_version.clone(),
            api_versions: self.api_versions.clone(),
            replace_default_api_versions: false,
            include_crds: self.include_crds && !self.skip_crds,
            skip_tests: self.skip_tests,
            show_only: self.show_only.clone(),
            no_hooks: self.no_hooks,
            // As `helm template`: no deadline, no output budget.
            time_limit: None,
            max_output_bytes: None,
            // `convoy template` is `helm template`: getHostByName resolves.
            no_network_functions: false,
        };
        render(&chart, &values, &opts)
    }

    /// Runs the command: the text `helm template` prints, or with `--output-dir` the
    /// `wrote PATH` lines after writing the files.
    pub fn run(&self) -> Result<String> {
        let rendered = self.render()?;
        match &self.output_dir {
            None => Ok(rendered.to_helm_output()),
            Some(dir) => write_output_dir(&rendered, &self.path(&dir.to_string_lossy())),
        }
    }
}

fn generate_name(chart: &str) -> String {
    let base = Path::new(chart)
        .file_name()
        .map(|b| b.to_string_lossy().into_owned())
        .unwrap_or_default();
    let base = if base.is_empty() || base == "." {
        "chart".to_string()
    } else {
        base
    };
    let base = base.split('.').next().unwrap_or("chart").to_string();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!("{base}-{now}")
}

/// Helm's `--output-dir`: one file per template, documents appended with their header.
fn write_output_dir(r: &Rendered, dir: &Path) -> Result<String> {
    let mut written: Vec<String> = Vec::new();
    let mut out = String::new();
    let docs = r.crds.iter().chain(&r.manifests).chain(&r.hooks);
    for m in docs {
        if m.source.split('/').any(|c| c == "..") {
            return Err(ChartError::Invalid(format!(
                "refusing to write outside --output-dir: {}",
                m.source
            )));
        }
        let path = dir.join(&m.source);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| ChartError::io(parent, e))?;
        }
        let append = written.contains(&m.source);
        let text = format!("---\n# Source: {}\n{}\n", m.source, m.content);
        let result = if append {
            use std::io::Write;
            std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .and_then(|mut f| f.write_all(text.as_bytes()))
        } else {
            std::fs::write(&path, text)
        };
        result.map_err(|e| ChartError::io(&path, e))?;
        if !append {
            written.push(m.source.clone());
            out.push_str(&format!("wrote {}\n", path.display()));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_names() {
        assert!(validate_release_name("release-name").is_ok());
        assert!(validate_release_name("a.b-c").is_ok());
        for bad in ["", "Upper", "-x", "x-", &"a".repeat(54), "a_b"] {
            assert!(validate_release_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn argument_count_errors() {
        let r = TemplateRequest::default();
        assert!(
            r.run()
                .unwrap_err()
                .to_string()
                .contains("requires at least 1 argument")
        );
        let r = TemplateRequest {
            args: vec!["a".into(), "b".into()],
            generate_name: true,
            ..Default::default()
        };
        assert!(r.run().unwrap_err().to_string().contains("--generate-name"));
    }

    fn chart_dir() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let w = |n: &str, c: &str| {
            let p = d.path().join(n);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, c).unwrap();
        };
        w("app/Chart.yaml", "apiVersion: v2\nname: app\nversion: 1.0.0\n");
        w("app/values.yaml", "a: 1\nb: x\n");
        w(
            "app/templates/cm.yaml",
            "kind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\ndata:\n  a: \"{{ .Values.a }}\"\n  b: {{ .Values.b }}\n  f: {{ .Values.f | quote }}\n",
        );
        w("over.yaml", "a: 2\nb: from-file\n");
        w("f.txt", "file-content");
        d
    }

    #[test]
    fn values_precedence_files_then_set_then_set_string_then_set_file() {
        let d = chart_dir();
        let req = TemplateRequest {
            args: vec!["my-rel".into(), "app".into()],
            values_files: vec!["over.yaml".into()],
            set: vec!["a=3".into()],
            set_string: vec!["b=007".into()],
            set_file: vec!["f=f.txt".into()],
            base_dir: d.path().to_path_buf(),
            ..Default::default()
        };
        let out = req.run().unwrap();
        assert_eq!(
            out,
            "---\n# Source: app/templates/cm.yaml\nkind: ConfigMap\nmetadata:\n  name: my-rel\ndata:\n  a: \"3\"\n  b: 007\n  f: \"file-content\"\n"
        );
    }

    #[test]
    fn name_template_and_output_dir() {
        let d = chart_dir();
        let out_dir = d.path().join("out");
        let req = TemplateRequest {
            args: vec!["app".into()],
            name_template: Some("rel-{{ \"X\" | lower }}".into()),
            output_dir: Some(out_dir.clone()),
            base_dir: d.path().to_path_buf(),
            ..Default::default()
        };
        let printed = req.run().unwrap();
        let file = out_dir.join("app/templates/cm.yaml");
        assert_eq!(printed, format!("wrote {}\n", file.display()));
        assert!(std::fs::read_to_string(file).unwrap().contains("name: rel-x"));
    }

    #[test]
    fn bad_release_name_and_missing_values_file() {
        let d = chart_dir();
        let req = TemplateRequest {
            args: vec!["Bad_Name".into(), "app".into()],
            base_dir: d.path().to_path_buf(),
            ..Default::default()
        };
        assert!(
            req.run()
                .unwrap_err()
                .to_string()
                .contains("invalid release name \"Bad_Name\"")
        );
        let req = TemplateRequest {
            args: vec!["app".into()],
            values_files: vec!["nope.yaml".into()],
            base_dir: d.path().to_path_buf(),
            ..Default::default()
        };
        assert!(req.run().unwrap_err().to_string().contains("nope.yaml"));
    }

    #[test]
    fn generated_names_strip_extensions() {
        assert!(generate_name("charts/nginx-1.0.0.tgz").starts_with("nginx-1-"));
        assert!(generate_name(".").starts_with("chart-"));
    }
}

//! From rendered template text to what `helm template` prints: documents split as Helm
//! splits them, hooks separated, Helm's install kind order, CRDs, `--show-only`.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use convoy_common::install_order::rank as kind_rank;
use regex::Regex;

use crate::chart::Chart;
use crate::error::{ChartError, Result};
use crate::glob::{Dialect, matches};
use crate::render::{RenderOptions, base_name};

const HOOK_EVENTS: &[&str] = &[
    "pre-install",
    "post-install",
    "pre-delete",
    "post-delete",
    "pre-upgrade",
    "post-upgrade",
    "pre-rollback",
    "post-rollback",
    "test",
    "test-success",
];

/// One rendered YAML document.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderedManifest {
    /// The template it came from: `mychart/templates/deployment.yaml`.
    pub source: String,
    /// The document, trimmed, without `---`.
    pub content: String,
    /// `kind`, empty when the document has none (a comment-only document).
    pub kind: String,
    /// `metadata.name`.
    pub name: String,
}

/// The result of rendering a chart.
#[derive(Debug, Clone, Default)]
pub struct Rendered {
    /// Regular manifests, in install kind order.
    pub manifests: Vec<RenderedManifest>,
    /// Hook documents (`helm.sh/hook`), in kind order; test hooks left out with `skip_tests`.
    pub hooks: Vec<RenderedManifest>,
    /// crds/ files, when `include_crds` was asked for.
    pub crds: Vec<RenderedManifest>,
    /// The root chart's rendered NOTES.txt.
    pub notes: Option<String>,
    /// The documents `--show-only` selected, in Helm's output order.
    shown: Option<Vec<String>>,
}

impl Rendered {
    /// Exactly what `helm template` prints for this render.
    pub fn to_helm_output(&self) -> String {
        if let Some(shown) = &self.shown {
            return shown.iter().map(|d| format!("---\n{d}\n")).collect();
        }
        full_text(self)
    }
}

fn full_text(r: &Rendered) -> String {
    let mut body = String::new();
    for c in &r.crds {
        body.push_str(&format!("---\n# Source: {}\n{}\n", c.source, c.content));
    }
    for m in &r.manifests {
        body.push_str(&format!("---\n# Source: {}\n{}\n", m.source, m.content));
    }
    let mut out = format!("{}\n", body.trim());
    for h in &r.hooks {
        out.push_str(&format!("---\n# Source: {}\n{}\n", h.source, h.content));
    }
    out
}

fn separator() -> &'static Regex {
    static SEP: OnceLock<Regex> = OnceLock::new();
    SEP.get_or_init(|| Regex::new(r"(?:^|\s*\n)---\s*").expect("constant regex compiles"))
}

/// Helm's `releaseutil.SplitManifests`: documents between `---` lines, trimmed, empty
/// ones dropped.
pub fn split_manifests(text: &str) -> Vec<String> {
    separator()
        .split(text.trim())
        .filter(|d| !d.is_empty())
        .map(|d| d.trim().to_string())
        .collect()
}

struct Head {
    kind: String,
    name: String,
    hook: Option<String>,
}

#[derive(serde::Deserialize)]
struct HeadDoc {
    kind: Option<serde_yaml::Value>,
    metadata: Option<HeadMeta>,
}

#[derive(serde::Deserialize, Default)]
struct HeadMeta {
    name: Option<serde_yaml::Value>,
    annotations: Option<HeadAnnotations>,
}

#[derive(serde::Deserialize)]
struct HeadAnnotations {
    #[serde(rename = "helm.sh/hook")]
    hook: Option<serde_yaml::Value>,
}

fn head(doc: &str, source: &str) -> Result<Head> {
    let err = |message: String| ChartError::RenderedYaml {
        source_name: source.to_string(),
        message,
        rendered: String::new(),
    };
    // Most documents are maps: read only the fields needed (the rest is skipped, not
    // built); anything else takes the full path below for Helm's exact errors.
    if let Ok(Some(h)) = serde_yaml::from_str::<Option<HeadDoc>>(doc) {
        let text = |v: &Option<serde_yaml::Value>| match v {
            Some(serde_yaml::Value::String(s)) => s.clone(),
            Some(serde_yaml::Value::Number(n)) => n.to_string(),
            Some(serde_yaml::Value::Bool(b)) => b.to_string(),
            _ => String::new(),
        };
        let meta = h.metadata.unwrap_or_default();
        return Ok(Head {
            kind: text(&h.kind),
            name: text(&meta.name),
            hook: meta.annotations.and_then(|a| a.hook).map(|v| text(&Some(v))),
        });
    }
    let v: serde_yaml::Value =
        serde_yaml::from_str(doc).map_err(|e| err(format!("error converting YAML to JSON: yaml: {e}")))?;
    let v = match v {
        serde_yaml::Value::Null => {
            return Ok(Head {
                kind: String::new(),
                name: String::new(),
                hook: None,
            });
        }
        serde_yaml::Value::Mapping(_) => v,
        _ => {
            return Err(err(
                "error unmarshaling JSON: the document is not a YAML map".into()
            ));
        }
    };
    let text = |v: Option<&serde_yaml::Value>| match v {
        Some(serde_yaml::Value::String(s)) => s.clone(),
        Some(serde_yaml::Value::Number(n)) => n.to_string(),
        Some(serde_yaml::Value::Bool(b)) => b.to_string(),
        _ => String::new(),
    };
    let meta = v.get("metadata");
    let hook = meta
        .and_then(|m| m.get("annotations"))
        .and_then(|a| a.get("helm.sh/hook"))
        .map(|h| text(Some(h)));
    Ok(Head {
        kind: text(v.get("kind")),
        name: text(meta.and_then(|m| m.get("name"))),
        hook,
    })
}

/// Helm's `sortManifestsByKind`: known kinds in install order, unknown kinds after them
/// alphabetically, the original order kept within a kind.
pub fn sort_by_kind(items: &mut [RenderedManifest]) {
    items.sort_by(|a, b| match (kind_rank(&a.kind), kind_rank(&b.kind)) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.kind.cmp(&b.kind),
    });
}

fn is_test_hook(events: &str) -> bool {
    events
        .split(',')
        .any(|e| matches!(e.trim().to_lowercase().as_str(), "test" | "test-success"))
}

/// Turns rendered templates into the sorted manifest lists.
pub(crate) fn assemble(
    chart: &Chart,
    outputs: BTreeMap<String, String>,
    opts: &RenderOptions,
) -> Result<Rendered> {
    let mut r = Rendered::default();
    let notes_name = format!("{}/templates/NOTES.txt", chart.name());
    for (name, text) in &outputs {
        if name.ends_with("NOTES.txt") {
            if *name == notes_name {
                r.notes = Some(text.clone());
            }
            continue;
        }
        if base_name(name).starts_with('_') || text.trim().is_empty() {
            continue;
        }
        for doc in split_manifests(text) {
            let h = head(&doc, name).map_err(|e| match e {
                ChartError::RenderedYaml {
                    source_name, message, ..
                } => ChartError::RenderedYaml {
                    source_name,
                    message,
                    rendered: debug_dump(&outputs),
                },
                other => other,
            })?;
            let m = RenderedManifest {
                source: name.clone(),
                content: doc,
                kind: h.kind,
                name: h.name,
            };
            match h.hook {
                None => r.manifests.push(m),
                Some(events) => {
                    let known = events
                        .split(',')
                        .all(|e| HOOK_EVENTS.contains(&e.trim().to_lowercase().as_str()));
                    if !known || opts.no_hooks || (opts.skip_tests && is_test_hook(&events)) {
                        continue;
                    }
                    r.hooks.push(m);
                }
            }
        }
    }
    sort_by_kind(&mut r.manifests);
    sort_by_kind(&mut r.hooks);
    if opts.include_crds {
        collect_crds(chart, "", &mut r.crds);
    }
    if !opts.show_only.is_empty() {
        r.shown = Some(show_only(&full_text(&r), &opts.show_only)?);
    }
    Ok(r)
}

/// What Helm prints with `--debug` when a document does not parse: every rendered file.
fn debug_dump(outputs: &BTreeMap<String, String>) -> String {
    outputs
        .iter()
        .filter(|(n, t)| !t.trim().is_empty() && !base_name(n).starts_with('_'))
        .map(|(n, t)| format!("---\n# Source: {n}\n{t}\n"))
        .collect()
}

fn collect_crds(c: &Chart, parent: &str, out: &mut Vec<RenderedManifest>) {
    let full = if parent.is_empty() {
        c.name().to_string()
    } else {
        format!("{parent}/charts/{}", c.name())
    };
    for f in c.crd_files() {
        let content = String::from_utf8_lossy(&f.data).into_owned();
        let (kind, name) = match head(&content, &f.name) {
            Ok(h) => (h.kind, h.name),
            Err(_) => (String::new(), String::new()),
        };
        out.push(RenderedManifest {
            source: format!("{full}/{}", f.name),
            content,
            kind,
            name,
        });
    }
    for d in &c.dependencies {
        collect_crds(d, &full, out);
    }
}

/// `--show-only`: documents whose `# Source:` path (without the chart name) matches one
/// of the patterns, pattern by pattern; a pattern matching nothing is an error.
fn show_only(text: &str, patterns: &[String]) -> Result<Vec<String>> {
    let docs = split_manifests(text);
    let mut out = Vec::new();
    for p in patterns {
        let p = p.replace('\\', "/");
        let mut found = false;
        for d in &docs {
            let Some(rest) = d.find("# Source: ").map(|i| &d[i + "# Source: ".len()..]) else {
                continue;
            };
            let line = rest.lines().next().unwrap_or_default();
            let Some((_, path)) = line.split_once('/') else {
                continue;
            };
            if matches(&p, path, Dialect::GoPath) {
                out.push(d.clone());
                found = true;
            }
        }
        if !found {
            return Err(ChartError::ShowOnlyMissing(p));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_like_helm() {
        let docs = split_manifests("\n---\na: 1\n---  \nb: 2\n# trailing\n---\n\n");
        assert_eq!(docs, ["a: 1", "b: 2\n# trailing"]);
        assert_eq!(split_manifests("a: 1"), ["a: 1"]);
    }

    #[test]
    fn kind_order_is_stable_and_unknown_last() {
        let m = |k: &str, n: &str| RenderedManifest {
            source: String::new(),
            content: String::new(),
            kind: k.into(),
            name: n.into(),
        };
        let mut v = vec![
            m("Deployment", "d"),
            m("Zebra", "z"),
            m("Alpha", "a"),
            m("Service", "s1"),
            m("Namespace", "n"),
            m("Service", "s2"),
        ];
        sort_by_kind(&mut v);
        let names: Vec<_> = v.iter().map(|x| x.name.as_str()).collect();
        assert_eq!(names, ["n", "s1", "s2", "d", "a", "z"]);
    }

    #[test]
    fn invalid_yaml_names_the_template() {
        let e = head("a: b\nc", "chart/templates/x.yaml")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.starts_with("YAML parse error on chart/templates/x.yaml"), "{e}");
    }
}

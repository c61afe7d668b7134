//! Rendering the chart for one context: values merged per context, the chart engine,
//! then scaling applied to the named Deployments and StatefulSets.

use std::collections::BTreeMap;
use std::fmt;

use convoy_chart::{Chart, RenderOptions};
use serde_json::Value;

use crate::de::{index, join};
use crate::error::{Diagnostic, Diagnostics, ReleaseError, Result};
use crate::model::Release;
use crate::registry::Context;
use crate::values::{context_values, values_digest};
use crate::yaml::{self, Node, NodeKind, Pos};

/// How long one context's render may run before it fails (a chart renders in milliseconds).
pub const RENDER_TIME_LIMIT: std::time::Duration = std::time::Duration::from_secs(20);
/// How much one context's render may write (real charts write kilobytes to a few MiB).
pub const RENDER_OUTPUT_LIMIT: usize = 64 * 1024 * 1024;

/// Bounds on one context's render, so a hostile or broken chart cannot stall the
/// coordinator: it fails with an error naming the bound instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RenderLimits {
    /// How long the render may run.
    pub time: std::time::Duration,
    /// How many bytes of manifests it may write.
    pub output_bytes: usize,
}

impl Default for RenderLimits {
    /// [`RENDER_TIME_LIMIT`] and [`RENDER_OUTPUT_LIMIT`]: bounds no real chart meets.
    fn default() -> Self {
        RenderLimits {
            time: RENDER_TIME_LIMIT,
            output_bytes: RENDER_OUTPUT_LIMIT,
        }
    }
}

/// Kinds a scaling entry may name.
const SCALABLE: &[&str] = &["Deployment", "StatefulSet"];

/// What one context receives.
///
/// Its manifests may hold resolved secrets, so `Debug` shows names and sizes only.
#[derive(Clone)]
pub struct RenderedContext {
    pub context: String,
    pub revision: u64,
    /// `sha256:` of the merged values without secrets (for history).
    pub values_digest: String,
    /// Objects to apply, in Helm's install order.
    pub manifests: Vec<Manifest>,
    /// Helm hooks, kept apart: the agent runs them around the apply.
    pub hooks: Vec<Manifest>,
    /// The chart's `crds/`, applied before everything else.
    pub crds: Vec<Manifest>,
}

/// One rendered object.
#[derive(Clone, PartialEq)]
pub struct Manifest {
    /// The template it came from (`app1/templates/deployment.yaml`).
    pub source: String,
    pub kind: String,
    pub name: String,
    /// The object as YAML.
    pub content: String,
}

impl fmt::Debug for Manifest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Manifest")
            .field("source", &self.source)
            .field("kind", &self.kind)
            .field("name", &self.name)
            .field("content", &format_args!("<{} bytes>", self.content.len()))
            .finish()
    }
}

impl fmt::Debug for RenderedContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RenderedContext")
            .field("context", &self.context)
            .field("revision", &self.revision)
            .field("values_digest", &self.values_digest)
            .field("manifests", &self.manifests)
            .field("hooks", &self.hooks)
            .field("crds", &self.crds)
            .finish()
    }
}

impl RenderedContext {
    /// Every object, in apply order: CRDs, then manifests (hooks are separate).
    pub fn objects(&self) -> impl Iterator<Item = &Manifest> {
        self.crds.iter().chain(self.manifests.iter())
    }
}

/// What a context's render depends on besides the release and its values: the target
/// cluster (Helm's `.Capabilities`) and the release's history there (`.Release`).
/// The default is what `helm template` assumes: a first install at revision 1 on a
/// cluster it knows nothing about.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RenderEnv<'a> {
    /// `.Release.Revision` (0 means 1).
    pub revision: u64,
    /// `.Release.IsUpgrade` (else `.Release.IsInstall`).
    pub is_upgrade: bool,
    /// `.Capabilities.KubeVersion` (`v1.20.2`); None: Helm's default, v1.20.0.
    pub kube_version: Option<&'a str>,
    /// `.Capabilities.APIVersions`, exactly (a cluster's `group/version` and
    /// `group/version/Kind` entries); None: Helm's default list.
    pub api_versions: Option<&'a [String]>,
    /// The render's time and output bounds.
    pub limits: RenderLimits,
}

/// Renders `chart` for `context`: values in the documented order, `.Release.Name` = the
/// app part of `metadata.name`, `.Release.Namespace` = `metadata.namespace`, then scaling.
/// A scaling entry naming no Deployment/StatefulSet of the render is an error.
/// `.Release.Revision` is `revision` (an upgrade after 1) and `.Capabilities` Helm's
/// defaults; [`render_context_in`] renders for a known cluster and history.
pub fn render_context(
    release: &Release,
    chart: &Chart,
    context: &Context,
    secrets: &BTreeMap<String, Value>,
    revision: u64,
) -> Result<RenderedContext> {
    let env = RenderEnv {
        revision,
        is_upgrade: revision > 1,
        ..RenderEnv::default()
    };
    render_context_in(release, chart, context, secrets, &env)
}

/// [`render_context`] for the cluster and history `env` describes.
pub fn render_context_in(
    release: &Release,
    chart: &Chart,
    context: &Context,
    secrets: &BTreeMap<String, Value>,
    env: &RenderEnv<'_>,
) -> Result<RenderedContext> {
    render_context_with(release, Renderer::Chart(chart), context, secrets, env)
}

/// What renders a context's chart: the chart itself, or a memo of its renders that
/// shares the output of renders that cannot differ ([`convoy_chart::RenderMemo`]).
#[derive(Debug, Clone, Copy)]
pub enum Renderer<'a> {
    /// Every render runs the templates.
    Chart(&'a Chart),
    /// Renders of one chart for many contexts.
    Memo(&'a convoy_chart::RenderMemo<'a>),
}

/// [`render_context_in`] through `renderer`.
pub fn render_context_with(
    release: &Release,
    renderer: Renderer<'_>,
    context: &Context,
    secrets: &BTreeMap<String, Value>,
    env: &RenderEnv<'_>,
) -> Result<RenderedContext> {
    let revision = env.revision;
    // A `valuesFrom` file not fetched would silently drop its values: refused.
    let missing: Vec<crate::error::Diagnostic> = release
        .spec
        .values_from
        .iter()
        .enumerate()
        .filter(|(_, v)| v.values.is_none())
        .map(|(i, v)| crate::error::Diagnostic {
            file: release.source.clone(),
            pos: v.pos,
            path: format!("spec.valuesFrom[{i}]"),
            message: format!("{} {} {} was not fetched", v.git, v.reference, v.path),
        })
        .collect();
    if !missing.is_empty() {
        return Err(ReleaseError::Invalid(crate::error::Diagnostics(missing)));
    }
    let values = context_values(release, context, secrets);
    let opts = RenderOptions {
        release_name: release.metadata.app.clone(),
        namespace: release.metadata.namespace.clone(),
        revision,
        is_upgrade: env.is_upgrade,
        kube_version: env.kube_version.map(str::to_string),
        api_versions: env.api_versions.map(<[String]>::to_vec).unwrap_or_default(),
        replace_default_api_versions: env.api_versions.is_some(),
        // CRDs go to the cluster like everything else, first.
        include_crds: true,
        // A render must not stall the coordinator: bounds no real chart meets.
        time_limit: Some(env.limits.time),
        max_output_bytes: Some(env.limits.output_bytes),
        // A deploy render must not reach the network (getHostByName resolves DNS).
        no_network_functions: true,
        ..RenderOptions::default()
    };
    let rendered = match renderer {
        Renderer::Chart(chart) => convoy_chart::render(chart, &values, &opts),
        Renderer::Memo(memo) => memo.render(&values, &opts),
    };
    let rendered = rendered.map_err(|source| ReleaseError::Render {
        context: context.name.clone(),
        source,
    })?;
    let convert = |m: convoy_chart::RenderedManifest| Manifest {
        source: m.source,
        kind: m.kind,
        name: m.name,
        content: m.content,
    };
    let mut out = RenderedContext {
        context: context.name.clone(),
        revision,
        values_digest: values_digest(release, context),
        // A comment-only document has no kind: nothing to apply.
        manifests: rendered
            .manifests
            .into_iter()
            .filter(|m| !m.kind.is_empty())
            .map(convert)
            .collect(),
        hooks: rendered.hooks.into_iter().map(convert).collect(),
        crds: rendered.crds.into_iter().map(convert).collect(),
    };
    apply_scaling(release, &context.name, &mut out.manifests)?;
    Ok(out)
}

/// Sets `spec.replicas` on each object a scaling entry of `context` names.
fn apply_scaling(release: &Release, context: &str, manifests: &mut [Manifest]) -> Result<()> {
    let mut diags = Vec::new();
    for (i, scaling) in release.spec.scaling.iter().enumerate() {
        if scaling.context != context {
            continue;
        }
        for (j, rep) in scaling.replicas.iter().enumerate() {
            let targets: Vec<usize> = manifests
                .iter()
                .enumerate()
                .filter(|(_, m)| m.name == rep.name && SCALABLE.contains(&m.kind.as_str()))
                .map(|(k, _)| k)
                .collect();
            if targets.is_empty() {
                let found: Vec<String> = manifests
                    .iter()
                    .filter(|m| SCALABLE.contains(&m.kind.as_str()))
                    .map(|m| format!("{}/{}", m.kind, m.name))
                    .collect();
                let found = if found.is_empty() {
                    "it has none".to_string()
                } else {
                    format!("it has {}", found.join(", "))
                };
                diags.push(Diagnostic {
                    file: release.source.clone(),
                    pos: rep.pos,
                    path: index(&join(&index("spec.scaling", i), "replicas"), j),
                    message: format!(
                        "no Deployment or StatefulSet named `{}` in the render for context {context}; {found}",
                        rep.name
                    ),
                });
                continue;
            }
            for k in targets {
                let m = &mut manifests[k];
                m.content =
                    set_replicas(&m.content, rep.count).map_err(|message| ReleaseError::Manifest {
                        context: context.to_string(),
                        source_path: m.source.clone(),
                        message,
                    })?;
            }
        }
    }
    if diags.is_empty() {
        Ok(())
    } else {
        Err(ReleaseError::Invalid(Diagnostics(diags)))
    }
}

/// Rewrites one object with `spec.replicas: count`. The object is re-emitted as YAML (key
/// order kept, comments dropped); others keep the chart's exact text.
fn set_replicas(content: &str, count: u32) -> std::result::Result<String, String> {
    let mut docs = yaml::parse_all(content).map_err(|e| format!("{}: {}", e.pos, e.message))?;
    if docs.len() != 1 {
        return Err(format!(
            "expected one object, found {} YAML documents",
            docs.len()
        ));
    }
    let mut doc = docs.remove(0);
    let NodeKind::Map(entries) = &mut doc.kind else {
        return Err("expected a mapping".into());
    };
    let replicas = (scalar_node("replicas"), scalar_node(&count.to_string()));
    match entries.iter_mut().find(|(k, _)| k.key_text() == Some("spec")) {
        Some((_, spec)) => match &mut spec.kind {
            NodeKind::Map(spec_entries) => {
                match spec_entries
                    .iter_mut()
                    .find(|(k, _)| k.key_text() == Some("replicas"))
                {
                    Some((_, v)) => *v = replicas.1,
                    None => spec_entries.insert(0, replicas),
                }
            }
            _ => return Err("`spec` is not a mapping".into()),
        },
        None => entries.push((
            scalar_node("spec"),
            Node {
                pos: Pos::default(),
                kind: NodeKind::Map(vec![replicas]),
            },
        )),
    }
    emit(&doc)
}

fn scalar_node(text: &str) -> Node {
    Node {
        pos: Pos::default(),
        kind: NodeKind::Scalar {
            text: text.to_string(),
            plain: true,
            tag: None,
        },
    }
}

fn emit(node: &Node) -> std::result::Result<String, String> {
    let mut out = String::new();
    let mut emitter = yaml_rust2::YamlEmitter::new(&mut out);
    emitter.multiline_strings(true);
    emitter.dump(&to_yaml(node)).map_err(|e| e.to_string())?;
    let body = out.strip_prefix("---\n").unwrap_or(&out);
    Ok(format!("{body}\n"))
}

fn to_yaml(node: &Node) -> yaml_rust2::Yaml {
    use yaml_rust2::Yaml;
    use yaml_rust2::yaml::Hash;
    match &node.kind {
        NodeKind::Scalar { text, plain, tag } => scalar_yaml(text, *plain, tag.as_deref()),
        NodeKind::Seq(items) => Yaml::Array(items.iter().map(to_yaml).collect()),
        NodeKind::Map(entries) => {
            let mut h = Hash::new();
            for (k, v) in entries {
                h.insert(to_yaml(k), to_yaml(v));
            }
            Yaml::Hash(h)
        }
    }
}

/// A scalar in its source form rather than re-typed: plain scalars verbatim, so `0644`,
/// `yes` and `1_000` mean to Kubernetes (which reads YAML 1.1, as Helm does) what they
/// meant in the chart's output; quoted and block scalars as double-quoted or literal
/// text, which every YAML version reads as a string.
fn scalar_yaml(text: &str, plain: bool, tag: Option<&str>) -> yaml_rust2::Yaml {
    use yaml_rust2::Yaml;
    let body = match (plain, tag) {
        (true, None) if text.is_empty() => return Yaml::Null,
        (true, _) => text.to_string(),
        // The emitter writes these as a literal block or double-quoted.
        (false, None) if text.contains('\n') => return Yaml::String(text.to_string()),
        // A JSON string is a valid YAML double-quoted scalar.
        (false, _) => serde_json::Value::String(text.to_string()).to_string(),
    };
    match tag {
        None => Yaml::Real(body),
        Some(t) => {
            let tag = match t.strip_prefix("tag:yaml.org,2002:") {
                Some(core) => format!("!!{core}"),
                None if t.starts_with('!') => t.to_string(),
                None => format!("!<{t}>"),
            };
            Yaml::Real(format!("{tag} {body}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The document as Kubernetes reads it (YAML 1.1, as Helm's values reader).
    fn as_kube_reads_it(doc: &str) -> serde_json::Value {
        yaml::parse_single(doc)
            .unwrap()
            .unwrap()
            .to_values_json("")
            .unwrap()
    }

    #[test]
    fn replicas_are_set_or_inserted_and_the_rest_survives() {
        let doc = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: hermes\n  labels: {a: \"1\", b: 'true', c: \"1_000\", d: '0o17', e: \"yes\", f: \"say \\\"hi\\\"\\t\"}\nspec:\n  replicas: 1\n  template:\n    spec:\n      hostNetwork: yes\n      volumes:\n        - name: v\n          configMap: {name: cm, defaultMode: 0644}\n      containers:\n        - name: c\n          args: [\"--x\", \"on\", off, 1_000]\n          tty: !!bool true\n          empty:\n          command: |\n            multi\n            line\n";
        let out = set_replicas(doc, 3).unwrap();
        let mut expected = as_kube_reads_it(doc);
        expected["spec"]["replicas"] = serde_json::json!(3.0);
        assert_eq!(as_kube_reads_it(&out), expected, "{out}");
        assert_eq!(
            expected["spec"]["template"]["spec"]["volumes"][0]["configMap"]["defaultMode"],
            420.0
        );

        let no_replicas = "kind: StatefulSet\nmetadata: {name: db}\nspec:\n  serviceName: db\n";
        let out = set_replicas(no_replicas, 0).unwrap();
        assert_eq!(
            yaml::parse_single(&out).unwrap().unwrap().to_json()["spec"]["replicas"],
            serde_json::json!(0)
        );
    }
}

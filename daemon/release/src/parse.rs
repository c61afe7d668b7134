//! Reading a release file into [`Release`]: the document's structure and types, field by
//! field with positions. Section readers are in `sections`; once the file has parsed, the
//! checks that need only the file run (`consistency`); checks against the context registry
//! are in `validate`.

use std::path::Path;

use serde_json::Value;

use crate::consistency::check_self_consistency;
use crate::de::{Reader, index, join, single_root};
use crate::error::{Diagnostic, Diagnostics, ReleaseError, Result};
use crate::model::*;
use crate::sections::{
    default_health, default_strategy, read_health, read_list, read_options, read_scaling, read_secret,
    read_strategy,
};
use crate::yaml::{self, Node, Scalar};

const TOP: &[&str] = &["apiVersion", "kind", "metadata", "spec"];
const METADATA: &[&str] = &["name", "namespace", "environment"];
const SPEC: &[&str] = &[
    "chart",
    "values",
    "valuesFiles",
    "valuesFrom",
    "contextValues",
    "contexts",
    "scaling",
    "secrets",
    "strategy",
    "health",
    "options",
];
const CHART: &[&str] = &["path", "repo", "oci", "git", "ref", "name", "version", "digest"];
impl Release {
    /// Reads and parses a release file; relative paths in it resolve against its directory.
    pub fn load(path: &Path) -> Result<Release> {
        let text = std::fs::read_to_string(path).map_err(|source| ReleaseError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        parse_release(&text, &path.display().to_string(), Some(&dir))
    }

    /// Parses release text that did not come from a file (an API submit). `source` names it
    /// in messages. `valuesFiles` is refused: there is no directory to read them from.
    pub fn parse_str(text: &str, source: &str) -> Result<Release> {
        parse_release(text, source, None)
    }

    /// Parses release text read from `source`, resolving relative paths against `base_dir`.
    pub fn parse_in(text: &str, source: &str, base_dir: &Path) -> Result<Release> {
        parse_release(text, source, Some(base_dir))
    }
}

fn parse_release(text: &str, source: &str, base_dir: Option<&Path>) -> Result<Release> {
    let mut r = Reader::new(source);
    let empty = "the file is empty; expected a release (`apiVersion: convoy.dev/v1`, `kind: Release`)";
    let Some(root) = single_root(&mut r, text, empty) else {
        return Err(invalid(r));
    };
    let release = read_release(&mut r, &root, base_dir);
    match release {
        Some(release) if r.diags.is_empty() => {
            check_self_consistency(&mut r, &release);
            if r.diags.is_empty() {
                Ok(release)
            } else {
                Err(invalid(r))
            }
        }
        _ => Err(invalid(r)),
    }
}

pub(crate) fn invalid(r: Reader) -> ReleaseError {
    let mut diags = r.diags;
    diags.sort_by(|a, b| (&a.file, a.pos).cmp(&(&b.file, b.pos)));
    ReleaseError::Invalid(Diagnostics(diags))
}

fn read_release(r: &mut Reader, root: &Node, base_dir: Option<&Path>) -> Option<Release> {
    let top = r.fields(root, "", TOP)?;
    if let Some(v) = top.required(r, "apiVersion", "`convoy.dev/v1`")
        && let Some(s) = r.string(v, "apiVersion", "`convoy.dev/v1`")
        && s != API_VERSION
    {
        r.error(
            v.pos,
            "apiVersion",
            format!("expected `{API_VERSION}`, found `{s}`"),
        );
    }
    if let Some(v) = top.required(r, "kind", "`Release`")
        && let Some(s) = r.string(v, "kind", "`Release`")
        && s != KIND
    {
        r.error(v.pos, "kind", format!("expected `{KIND}`, found `{s}`"));
    }
    let metadata = top
        .required(r, "metadata", "a mapping with `name`")
        .and_then(|m| read_metadata(r, m));
    let spec = top
        .required(r, "spec", "a mapping with `chart` and `contexts`")
        .and_then(|s| read_spec(r, s, base_dir));
    Some(Release {
        source: r.file.clone(),
        base_dir: base_dir.map(Path::to_path_buf),
        metadata: metadata?,
        spec: spec?,
    })
}

fn read_metadata(r: &mut Reader, node: &Node) -> Option<Metadata> {
    let f = r.fields(node, "metadata", METADATA)?;
    let name_node = f.required(r, "name", "`app.namespace`, such as `app1.ns1`")?;
    let name = r.string(name_node, "metadata.name", "`app.namespace`, such as `app1.ns1`")?;
    let Some((app, ns_from_name)) = name.split_once('.') else {
        r.error(
            name_node.pos,
            "metadata.name",
            format!("expected `app.namespace`, such as `app1.ns1`, found `{name}` (no dot)"),
        );
        return None;
    };
    let mut ok = true;
    for (part, what) in [(app, "app"), (ns_from_name, "namespace")] {
        if let Err(why) = check_dns_label(part) {
            r.error(
                name_node.pos,
                "metadata.name",
                format!("the {what} part `{part}` {why}"),
            );
            ok = false;
        }
    }
    let namespace = match f.optional("namespace") {
        Some(n) => {
            let ns = r.string(n, "metadata.namespace", "a namespace name")?;
            if ns != ns_from_name {
                r.error(
                    n.pos,
                    "metadata.namespace",
                    format!("`{ns}` differs from the namespace in metadata.name `{name}` (`{ns_from_name}`); make them equal or drop this field"),
                );
                ok = false;
            }
            ns
        }
        None => ns_from_name.to_string(),
    };
    let environment = match f.optional("environment") {
        Some(e) => Some(r.string(e, "metadata.environment", "an environment name such as `dev`")?),
        None => None,
    };
    ok.then(|| Metadata {
        app: app.to_string(),
        name: name.clone(),
        namespace,
        environment,
        pos: node.pos,
    })
}

/// A Kubernetes DNS-1123 label: what an app (Helm release) name and a namespace must be.
fn check_dns_label(s: &str) -> std::result::Result<(), &'static str> {
    if s.is_empty() {
        return Err("is empty");
    }
    if s.len() > 53 {
        // Helm limits release names to 53 so that generated object names fit 63.
        return Err("is longer than 53 characters");
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err("must hold only lowercase letters, digits and `-`");
    }
    if s.starts_with('-') || s.ends_with('-') {
        return Err("must start and end with a letter or digit");
    }
    Ok(())
}

fn read_spec(r: &mut Reader, node: &Node, base_dir: Option<&Path>) -> Option<Spec> {
    let f = r.fields(node, "spec", SPEC)?;
    let chart = f
        .required(
            r,
            "chart",
            "`{path: ./charts/app1}` or `{repo: URL, name: NAME, version: VERSION}`",
        )
        .and_then(|c| read_chart(r, c));
    let values = match f.optional("values") {
        Some(v) => read_values(r, v, "spec.values"),
        None => Some(Value::Object(Default::default())),
    };
    let values_files = match f.optional("valuesFiles") {
        Some(v) => read_values_files(r, v, base_dir),
        None => Some(Vec::new()),
    };
    let values_from = match f.optional("valuesFrom") {
        Some(v) => read_values_from(r, v),
        None => Some(Vec::new()),
    };
    let context_values = match f.optional("contextValues") {
        Some(v) => read_context_values(r, v),
        None => Some(Vec::new()),
    };
    let contexts = f
        .required(r, "contexts", "a list of context names")
        .and_then(|c| read_names(r, c, "spec.contexts", "context names"));
    if let (Some(c), Some(n)) = (&contexts, f.get("contexts"))
        && c.is_empty()
    {
        r.error(n.pos, "spec.contexts", "expected at least one context");
    }
    let scaling = match f.optional("scaling") {
        Some(v) => read_list(r, v, "spec.scaling", "scaling entries", read_scaling),
        None => Some(Vec::new()),
    };
    let secrets = match f.optional("secrets") {
        Some(v) => read_list(r, v, "spec.secrets", "secrets", read_secret),
        None => Some(Vec::new()),
    };
    let strategy = match f.optional("strategy") {
        Some(v) => read_strategy(r, v),
        None => Some(default_strategy()),
    };
    let health = match f.optional("health") {
        Some(v) => read_health(r, v),
        None => Some(default_health()),
    };
    let options = match f.optional("options") {
        Some(v) => read_options(r, v),
        None => Some(Options::default()),
    };
    Some(Spec {
        chart: chart?,
        values: values?,
        values_files: values_files?,
        values_from: values_from?,
        context_values: context_values?,
        contexts: contexts?,
        scaling: scaling?,
        secrets: secrets?,
        strategy: strategy?,
        health: health?,
        options: options?,
    })
}

fn read_chart(r: &mut Reader, node: &Node) -> Option<ChartRef> {
    let f = r.fields(node, "spec.chart", CHART)?;
    if let Some(g) = f.optional("git") {
        return read_git_chart(r, node, &f, g);
    }
    if let Some(n) = f.get("ref") {
        r.error(n.pos, &f.at("ref"), "only used with `git`");
    }
    let kinds: Vec<&str> = ["path", "repo", "oci"]
        .into_iter()
        .filter(|k| f.optional(k).is_some())
        .collect();
    if kinds.len() > 1 {
        let second = kinds[1];
        if let Some(n) = f.get(second) {
            r.error(
                n.pos,
                &f.at(second),
                format!(
                    "give only one of `path`, `repo` or `oci`, not {}",
                    kinds.join(" and ")
                ),
            );
        }
        return None;
    }
    let only = |r: &mut Reader, keys: &[&str], why: &str| {
        for other in keys {
            if let Some(n) = f.get(other) {
                r.error(n.pos, &f.at(other), why);
            }
        }
    };
    match kinds.first().copied() {
        Some("path") => {
            let p = f.optional("path")?;
            only(
                r,
                &["name", "version", "digest"],
                "only used with `repo` or `oci`; a `path` chart takes its name and version from its Chart.yaml",
            );
            let path = r.string(
                p,
                "spec.chart.path",
                "a chart directory or .tgz, relative to this file",
            )?;
            Some(ChartRef::Path { path, pos: p.pos })
        }
        Some("repo") => {
            let repo = f.optional("repo")?;
            only(
                r,
                &["digest"],
                "only used with `oci`; a repository's index.yaml gives the digest",
            );
            let repo = r.string(repo, "spec.chart.repo", "a chart repository URL");
            let name = f
                .required(r, "name", "the chart's name in the repository")
                .and_then(|n| r.string(n, "spec.chart.name", "the chart's name in the repository"));
            let version = f
                .required(
                    r,
                    "version",
                    "a chart version or semver range, such as `1.4.2` or `~1.4`",
                )
                .and_then(|n| r.string_or_number(n, "spec.chart.version", "a chart version"));
            Some(ChartRef::Repo {
                repo: repo?,
                name: name?,
                version: version?,
                pos: node.pos,
            })
        }
        Some(_) => {
            let oci_node = f.optional("oci")?;
            only(
                r,
                &["name"],
                "only used with `repo`; an `oci` reference ends with the chart's name",
            );
            let oci = r.string(
                oci_node,
                "spec.chart.oci",
                "an OCI reference such as `oci://registry.example.com/charts/app1`",
            );
            if let Some(o) = &oci
                && (!o.starts_with("oci://")
                    || o.contains('@')
                    || o.trim_end_matches('/')
                        .rsplit('/')
                        .next()
                        .is_some_and(|last| last.contains(':')))
            {
                r.error(
                    oci_node.pos,
                    "spec.chart.oci",
                    "expected `oci://REGISTRY/PATH/NAME` without a tag or digest (give `version` or `digest` instead)",
                );
            }
            let version = f
                .optional("version")
                .and_then(|n| r.string_or_number(n, "spec.chart.version", "a chart version (an OCI tag)"));
            let digest = f
                .optional("digest")
                .and_then(|n| r.string(n, "spec.chart.digest", "a manifest digest `sha256:<64 hex>`"));
            if let Some(d) = &digest
                && !is_sha256_digest(d)
            {
                r.error(
                    f.get("digest").map_or(node.pos, |n| n.pos),
                    "spec.chart.digest",
                    "expected a manifest digest `sha256:<64 hex>`",
                );
            }
            if version.is_none() && digest.is_none() {
                r.error(
                    node.pos,
                    "spec.chart",
                    "an `oci` chart needs `version` (a tag such as `1.4.2`) or `digest` (`sha256:...`)",
                );
            }
            Some(ChartRef::Oci {
                oci: oci?,
                version,
                digest,
                pos: node.pos,
            })
        }
        None => {
            r.error(
                node.pos,
                "spec.chart",
                "expected `path` (a local chart), `repo` + `name` + `version`, or `oci` + `version` or `digest`",
            );
            None
        }
    }
}

/// `spec.chart: {git: URL, ref: REF, path: DIR}`.
fn read_git_chart(r: &mut Reader, node: &Node, f: &crate::de::Fields<'_>, g: &Node) -> Option<ChartRef> {
    for other in ["repo", "oci", "name", "version", "digest"] {
        if let Some(n) = f.get(other) {
            r.error(
                n.pos,
                &f.at(other),
                "not with `git`: a git chart is `{git: URL, ref: TAG|BRANCH|COMMIT, path: DIR}`",
            );
        }
    }
    let git = r.string(
        g,
        "spec.chart.git",
        "a git repository URL (https://, http://, git:// or file://)",
    );
    if let Some(u) = &git
        && !["https://", "http://", "git://", "file://"]
            .iter()
            .any(|s| u.starts_with(s))
    {
        r.error(
            g.pos,
            "spec.chart.git",
            "expected a git repository URL starting with https://, http://, git:// or file://",
        );
    }
    let reference = f
        .required(r, "ref", "a tag, a branch or a full commit id")
        .and_then(|n| r.string_or_number(n, "spec.chart.ref", "a tag, a branch or a full commit id"));
    let path = f
        .required(
            r,
            "path",
            "the chart's directory in the repository, such as `charts/app1`",
        )
        .and_then(|n| {
            let p = r.string(n, "spec.chart.path", "the chart's directory in the repository")?;
            let bad = p.starts_with('/') || p.split('/').any(|c| c == "..");
            if bad {
                r.error(
                    n.pos,
                    "spec.chart.path",
                    "expected a relative directory inside the repository, without `..`",
                );
                return None;
            }
            Some(p)
        });
    Some(ChartRef::Git {
        git: git?,
        reference: reference?,
        path: path?,
        pos: node.pos,
    })
}

/// `spec.valuesFrom: [{git: URL, ref: REF, path: FILE}]`.
fn read_values_from(r: &mut Reader, node: &Node) -> Option<Vec<ValuesFrom>> {
    let items = r.seq(
        node,
        "spec.valuesFrom",
        "a list of `{git: URL, ref: REF, path: FILE}`",
    )?;
    let mut out = Vec::new();
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let at = index("spec.valuesFrom", i);
        let Some(f) = r.fields(item, &at, &["git", "ref", "path"]) else {
            ok = false;
            continue;
        };
        let git = f.required(r, "git", "a git repository URL").and_then(|n| {
            let u = r.string(n, &format!("{at}.git"), "a git repository URL")?;
            if !["https://", "http://", "git://", "file://"]
                .iter()
                .any(|s| u.starts_with(s))
            {
                r.error(
                    n.pos,
                    &format!("{at}.git"),
                    "expected a git repository URL starting with https://, http://, git:// or file://",
                );
                return None;
            }
            Some(u)
        });
        let reference = f
            .required(r, "ref", "a tag, a branch or a full commit id")
            .and_then(|n| r.string_or_number(n, &format!("{at}.ref"), "a tag, a branch or a full commit id"));
        let path = f
            .required(r, "path", "the values file's path in the repository")
            .and_then(|n| {
                let p = r.string(
                    n,
                    &format!("{at}.path"),
                    "the values file's path in the repository",
                )?;
                if p.starts_with('/') || p.split('/').any(|c| c == ".." || c.is_empty()) {
                    r.error(
                        n.pos,
                        &format!("{at}.path"),
                        "expected a relative file path inside the repository, without `..`",
                    );
                    return None;
                }
                Some(p)
            });
        match (git, reference, path) {
            (Some(git), Some(reference), Some(path)) => out.push(ValuesFrom {
                git,
                reference,
                path,
                pos: item.pos,
                values: None,
            }),
            _ => ok = false,
        }
    }
    ok.then_some(out)
}

/// Values YAML text (a values file fetched from elsewhere) as a JSON mapping; `shown`
/// names it in errors (`shown:LINE:COL: message`). An empty document is `{}`.
pub fn parse_values_text(text: &str, shown: &str) -> std::result::Result<Value, String> {
    match yaml::parse_single(text) {
        Ok(None) => Ok(Value::Object(Default::default())),
        Ok(Some(n)) if n.as_map().is_none() => Err(format!(
            "{shown}:{}: expected a mapping of chart values, found {}",
            n.pos,
            n.describe()
        )),
        Ok(Some(n)) => n.to_values_json("").map_err(|e| {
            format!(
                "{shown}:{}: {}: {}",
                e.pos,
                e.path.trim_start_matches('.'),
                e.message
            )
        }),
        Err(e) => Err(format!("{shown}:{}: invalid YAML: {}", e.pos, e.message)),
    }
}

impl Release {
    /// Sets the values of `spec.valuesFrom`, fetched elsewhere: `(origin, text)` per
    /// entry, in order (`origin` names the file in errors). Refuses a count that does
    /// not match the release's entries.
    pub fn attach_values_from(&mut self, fetched: &[(String, String)]) -> std::result::Result<(), String> {
        if fetched.len() != self.spec.values_from.len() {
            return Err(format!(
                "{}: spec.valuesFrom: {} file(s) fetched for {} entries",
                self.source,
                fetched.len(),
                self.spec.values_from.len()
            ));
        }
        for (i, (entry, (origin, text))) in self.spec.values_from.iter_mut().zip(fetched).enumerate() {
            let values = parse_values_text(text, origin)
                .map_err(|e| format!("{}: spec.valuesFrom[{i}]: {e}", self.source))?;
            entry.values = Some(values);
        }
        Ok(())
    }
}

/// `sha256:` and 64 lowercase hex digits.
fn is_sha256_digest(d: &str) -> bool {
    d.strip_prefix("sha256:").is_some_and(|h| {
        h.len() == 64
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

fn read_values(r: &mut Reader, node: &Node, path: &str) -> Option<Value> {
    if node.as_map().is_none() {
        r.error(
            node.pos,
            path,
            format!("expected a mapping of chart values, found {}", node.describe()),
        );
        return None;
    }
    match node.to_values_json(path) {
        Ok(v) => Some(v),
        Err(e) => {
            r.error(e.pos, &e.path, e.message);
            None
        }
    }
}

fn read_values_files(r: &mut Reader, node: &Node, base_dir: Option<&Path>) -> Option<Vec<ValuesFile>> {
    let names = read_names(r, node, "spec.valuesFiles", "values file paths")?;
    let mut out = Vec::new();
    let mut ok = true;
    for (i, name) in names.into_iter().enumerate() {
        let path = index("spec.valuesFiles", i);
        let Some(dir) = base_dir else {
            r.error(name.pos, &path, "values files need the release file's directory; submit with `convoy submit -f FILE`, which inlines them, or move the values into `spec.values`");
            ok = false;
            continue;
        };
        let file = dir.join(&name.value);
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) => {
                r.error(
                    name.pos,
                    &path,
                    format!("cannot read values file {}: {e}", file.display()),
                );
                ok = false;
                continue;
            }
        };
        let shown = file.display().to_string();
        let values = match yaml::parse_single(&text) {
            Ok(None) => Value::Object(Default::default()),
            Ok(Some(n)) if n.as_map().is_none() => {
                r.diags.push(Diagnostic {
                    file: shown,
                    pos: n.pos,
                    path: String::new(),
                    message: format!("expected a mapping of chart values, found {}", n.describe()),
                });
                ok = false;
                continue;
            }
            Ok(Some(n)) => match n.to_values_json("") {
                Ok(v) => v,
                Err(e) => {
                    r.diags.push(Diagnostic {
                        file: shown,
                        pos: e.pos,
                        path: e.path.trim_start_matches('.').to_string(),
                        message: e.message,
                    });
                    ok = false;
                    continue;
                }
            },
            Err(e) => {
                r.diags.push(Diagnostic {
                    file: shown,
                    pos: e.pos,
                    path: String::new(),
                    message: e.message,
                });
                ok = false;
                continue;
            }
        };
        out.push(ValuesFile {
            path: name.value,
            pos: name.pos,
            values,
        });
    }
    ok.then_some(out)
}

fn read_context_values(r: &mut Reader, node: &Node) -> Option<Vec<ContextValues>> {
    let Some(entries) = node.as_map() else {
        r.error(
            node.pos,
            "spec.contextValues",
            format!(
                "expected a mapping from context name to values, found {}",
                node.describe()
            ),
        );
        return None;
    };
    let mut out = Vec::new();
    let mut ok = true;
    for (k, v) in entries {
        let name = k.key_text().unwrap_or_default().to_string();
        let path = join("spec.contextValues", &name);
        let values = if v.scalar() == Some(Scalar::Null) {
            Some(Value::Object(Default::default()))
        } else {
            read_values(r, v, &path)
        };
        match values {
            Some(values) => out.push(ContextValues {
                context: name,
                pos: k.pos,
                values,
            }),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

pub(crate) fn read_names(
    r: &mut Reader,
    node: &Node,
    path: &str,
    what: &str,
) -> Option<Vec<Spanned<String>>> {
    let items = r.seq(node, path, what)?;
    let mut out = Vec::with_capacity(items.len());
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        match r.string(item, &index(path, i), "a name") {
            Some(value) => out.push(Spanned { value, pos: item.pos }),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

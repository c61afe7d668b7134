//! `render`: a chart and user values in, Kubernetes manifests out, as `helm template`.
//!
//! ```text
//! check deps -> process deps (conditions, tags, aliases, import-values)
//!   -> coalesce values -> schema -> engine (render every template)
//!   -> split documents -> hooks vs manifests -> kind order -> Rendered
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Map, Value as Json};

use crate::chart::Chart;
use crate::engine::convert::{map_of, map_value, s};
use crate::engine::objects::{KubeVersion, capabilities_object, files_object};
use crate::engine::{Engine, Source};
use crate::error::{ChartError, Result};
use crate::manifest::{self, Rendered};
use crate::tmpl::Value;

/// How to render: the `helm template` flags that are not values.
#[derive(Debug, Clone, Default)]
pub struct RenderOptions {
    /// `.Release.Name`.
    pub release_name: String,
    /// `.Release.Namespace` (empty means `default`).
    pub namespace: String,
    /// `.Release.Revision` (0 means 1, as for a first install).
    pub revision: u64,
    /// `.Release.IsUpgrade` (and not IsInstall).
    pub is_upgrade: bool,
    /// `.Capabilities.KubeVersion` (default v1.20.0, what `helm template` reports).
    pub kube_version: Option<String>,
    /// Extra `.Capabilities.APIVersions`, added to Helm's default list (`--api-versions`).
    pub api_versions: Vec<String>,
    /// `.Capabilities.APIVersions` is exactly `api_versions`, without Helm's default list:
    /// a live cluster's discovery (every `group/version` and `group/version/Kind` it
    /// serves), as Helm reads it when it talks to the cluster.
    pub replace_default_api_versions: bool,
    /// Print crds/ files too.
    pub include_crds: bool,
    /// Leave out `helm.sh/hook: test` documents.
    pub skip_tests: bool,
    /// Only these templates (Go globs over `templates/x.yaml`-style paths).
    pub show_only: Vec<String>,
    /// Leave out hooks altogether (`--no-hooks`).
    pub no_hooks: bool,
    /// Fail a render still running after this long (`None`: no limit, as `helm template`).
    pub time_limit: Option<std::time::Duration>,
    /// Fail a render whose templates write more than this many bytes in all.
    pub max_output_bytes: Option<usize>,
    /// Functions that reach the network (`getHostByName`, which resolves DNS: a way
    /// to send rendered data out) fail instead. The coordinator's deploy renders set
    /// it; `convoy template` does not (Helm resolves).
    pub no_network_functions: bool,
}

/// The default Kubernetes version `helm template` assumes without a cluster.
pub const DEFAULT_KUBE_VERSION: &str = "v1.20.0";

/// Renders `chart` with the user's `values` (already merged from files and `--set`).
///
/// Helm reads values files through JSON, so their numbers are floats (`1000000` prints as
/// `1e+06`); parse values files with [`crate::values::parse_values`] to get the same output
/// as `helm template`. Integers (as `--set` produces) print as integers.
pub fn render(chart: &Chart, values: &Json, opts: &RenderOptions) -> Result<Rendered> {
    on_render_thread(|| render_inner(chart, values, opts))
}

/// Runs `f` on a thread of its own. Deep include/tpl chains recurse through the template
/// executor; a big stack keeps them (and hostile templates) from overflowing the caller's
/// thread.
pub(crate) fn on_render_thread<T: Send>(f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("chart-render".into())
            .stack_size(256 * 1024 * 1024)
            .spawn_scoped(scope, f)
            .map_err(|e| ChartError::Invalid(format!("cannot start render thread: {e}")))?
            .join()
            .map_err(|_| ChartError::Invalid("template rendering panicked".into()))?
    })
}

/// Renders one template text with `values` as `.Values` (and the default `.Release`,
/// `.Capabilities`), outside any chart: for previews, `convoy lint`-style checks and the
/// fuzz target. Errors are Helm's template errors.
pub fn render_str(name: &str, src: &str, values: &Json) -> Result<String> {
    on_render_thread(|| StrTemplate::new(name, src, values)?.execute())
}

/// One template text parsed with the data [`render_str`] gives it, ready to execute any
/// number of times (on the current thread: deeply nested templates need a large stack, as
/// `render_str` provides). For benchmarks that separate parsing from execution.
pub struct StrTemplate {
    engine: Engine,
    name: String,
    data: Value,
}

impl std::fmt::Debug for StrTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StrTemplate").field("name", &self.name).finish()
    }
}

impl StrTemplate {
    /// Parses `src` as template `name`, with `values` as `.Values`.
    pub fn new(name: &str, src: &str, values: &Json) -> Result<StrTemplate> {
        let kube = KubeVersion::parse(DEFAULT_KUBE_VERSION)
            .ok_or_else(|| ChartError::Invalid("bad default".into()))?;
        let vals = match values {
            Json::Object(m) => map_value(m),
            _ => Value::empty_map(),
        };
        let ctx = map_of([
            ("Values", vals),
            (
                "Release",
                map_of([
                    ("Name", s("release-name")),
                    ("Namespace", s("default")),
                    ("Service", s("Helm")),
                ]),
            ),
            ("Capabilities", capabilities_object(&kube, &[], true)),
            ("Files", files_object(&[])),
        ]);
        let data = with_template(&ctx, name, "");
        let sources = [Source {
            name: name.to_string(),
            src: src.to_string(),
        }];
        let engine = Engine::new(&sources).map_err(ChartError::TemplateParse)?;
        Ok(StrTemplate {
            engine,
            name: name.to_string(),
            data,
        })
    }

    /// Executes the template. Functions that mutate values (`set`) see what earlier
    /// executions left, as repeated executions of one Go template with one data map do.
    pub fn execute(&self) -> Result<String> {
        self.engine
            .execute(&self.name, &self.data)
            .map_err(ChartError::TemplateExec)
    }
}

fn render_inner(chart: &Chart, values: &Json, opts: &RenderOptions) -> Result<Rendered> {
    let started = std::time::Instant::now();
    let prepared = prepare(chart, values, opts)?;
    execute(&prepared, opts, started, false)
}

/// A chart ready to execute: its dependencies processed for the values, the values
/// coalesced and checked against its schemas, its Kubernetes version checked.
pub(crate) struct Prepared {
    pub(crate) chart: Chart,
    pub(crate) values: Map<String, Json>,
    kube: KubeVersion,
}

pub(crate) fn prepare(chart: &Chart, values: &Json, opts: &RenderOptions) -> Result<Prepared> {
    let user = match values {
        Json::Object(m) => m.clone(),
        Json::Null => Map::new(),
        other => return Err(ChartError::Invalid(format!("values must be a map, got {other}"))),
    };
    match chart.metadata.chart_type.as_str() {
        "" | "application" => {}
        other => {
            return Err(ChartError::Invalid(format!(
                "validation: {other} charts are not installable"
            )));
        }
    }
    crate::deps::check_dependencies(chart)?;
    let mut chart = chart.clone();
    crate::deps::process_dependencies(&mut chart, &user);
    let vals = crate::coalesce::coalesce_values(&chart, &user);
    crate::schema::validate_chart(&chart, &vals)?;

    let kube = match &opts.kube_version {
        Some(v) => {
            KubeVersion::parse(v).ok_or_else(|| ChartError::Invalid(format!("invalid kube version {v:?}")))?
        }
        None => KubeVersion::parse(DEFAULT_KUBE_VERSION)
            .ok_or_else(|| ChartError::Invalid("bad default".into()))?,
    };
    if !chart.metadata.kube_version.is_empty()
        && !crate::constraint::is_compatible_range(&chart.metadata.kube_version, &kube.version)
    {
        return Err(ChartError::Invalid(format!(
            "chart requires kubeVersion: {} which is incompatible with Kubernetes {}",
            chart.metadata.kube_version, kube.version
        )));
    }
    Ok(Prepared {
        chart,
        values: vals,
        kube,
    })
}

/// Executes every template of a prepared chart; with `traced`, the values record what
/// the templates observe ([`crate::tmpl::trace`]: the caller started the trace).
pub(crate) fn execute(
    prepared: &Prepared,
    opts: &RenderOptions,
    started: std::time::Instant,
    traced: bool,
) -> Result<Rendered> {
    let Prepared { chart, values, kube } = prepared;
    let namespace = if opts.namespace.is_empty() {
        "default"
    } else {
        &opts.namespace
    };
    let release = map_of([
        ("Name", s(&opts.release_name)),
        ("Namespace", s(namespace)),
        ("IsUpgrade", Value::Bool(opts.is_upgrade)),
        ("IsInstall", Value::Bool(!opts.is_upgrade)),
        (
            "Revision",
            Value::Int(i64::try_from(opts.revision.max(1)).unwrap_or(i64::MAX)),
        ),
        ("Service", s("Helm")),
    ]);
    let common = Common {
        release,
        capabilities: capabilities_object(kube, &opts.api_versions, !opts.replace_default_api_versions),
    };
    let mut tpls = Vec::new();
    let root_values = if traced {
        crate::tmpl::trace::traced_value(values)
    } else {
        map_value(values)
    };
    collect(chart, &common, root_values, "", true, &mut tpls);

    // Helm's sortTemplates: deepest paths first, then reverse lexical order, so that a
    // parent's `define` (parsed later) overrides a subchart's.
    tpls.sort_by(|a, b| {
        let (da, db) = (a.name.matches('/').count(), b.name.matches('/').count());
        db.cmp(&da).then_with(|| b.name.cmp(&a.name))
    });
    let sources: Vec<Source> = tpls
        .iter()
        .map(|t| Source {
            name: t.name.clone(),
            src: t.src.clone(),
        })
        .collect();
    let engine =
        Engine::with_network(&sources, !opts.no_network_functions).map_err(ChartError::TemplateParse)?;
    let mut outputs = BTreeMap::new();
    let mut limits = crate::tmpl::Limits {
        deadline: opts.time_limit.map(|d| started + d),
        time_limit: opts.time_limit,
        max_output: opts.max_output_bytes,
    };
    for t in &tpls {
        if base_name(&t.name).starts_with('_') {
            continue;
        }
        let data = with_template(&t.ctx, &t.name, &t.base_path);
        let out = engine
            .execute_limited(&t.name, &data, &limits)
            .map_err(ChartError::TemplateExec)?;
        limits.max_output = limits.max_output.map(|m| m.saturating_sub(out.len()));
        outputs.insert(t.name.clone(), out);
    }
    manifest::assemble(chart, outputs, opts)
}

struct Common {
    release: Value,
    capabilities: Value,
}

struct Tpl {
    name: String,
    src: String,
    ctx: Value,
    base_path: String,
}

/// Helm's `recAllTpls`: the context each chart's templates run with.
fn collect(
    c: &Chart,
    common: &Common,
    values: Value,
    parent: &str,
    is_root: bool,
    out: &mut Vec<Tpl>,
) -> Value {
    let full = if parent.is_empty() {
        c.name().to_string()
    } else {
        format!("{parent}/charts/{}", c.name())
    };
    let mut subcharts = BTreeMap::new();
    for d in &c.dependencies {
        let sub_values = match &values {
            Value::Map(m) => match m.get(d.name()) {
                Some(v @ Value::Map(_)) => v,
                _ => Value::empty_map(),
            },
            _ => Value::empty_map(),
        };
        let sub_ctx = collect(d, common, sub_values, &full, false, out);
        subcharts.insert(Arc::from(d.name()), sub_ctx);
    }
    let ctx = map_of([
        (
            "Chart",
            crate::engine::convert::to_value(&c.metadata.to_template_object(is_root)),
        ),
        ("Files", files_object(&c.files)),
        ("Release", common.release.clone()),
        ("Capabilities", common.capabilities.clone()),
        ("Values", chart_values(values)),
        ("Subcharts", Value::map(subcharts)),
    ]);
    for t in &c.templates {
        // Library charts contribute their helpers only.
        if c.metadata.is_library() && !base_name(&t.name).starts_with('_') {
            continue;
        }
        out.push(Tpl {
            name: format!("{full}/{}", t.name),
            src: String::from_utf8_lossy(&t.data).into_owned(),
            ctx: ctx.clone(),
            base_path: format!("{full}/templates"),
        });
    }
    ctx
}

/// `.Values` as Helm types it (`chartutil.Values`, with its methods), same map.
fn chart_values(v: Value) -> Value {
    match v {
        Value::Map(m) => Value::Map(m.as_chart_values()),
        other => other,
    }
}

/// Sets `.Template` in the chart's context and returns it. Helm does the same: every
/// template of a chart runs with one shared top-level map (so `set $ ...` in one template
/// is seen by the next), its `Template` entry replaced before each.
fn with_template(ctx: &Value, name: &str, base_path: &str) -> Value {
    if let Value::Map(m) = ctx {
        m.insert(
            Arc::from("Template"),
            map_of([("Name", s(name)), ("BasePath", s(base_path))]),
        );
    }
    ctx.clone()
}

pub(crate) fn base_name(p: &str) -> &str {
    p.rsplit('/').next().unwrap_or(p)
}

//! `convoy lint` and `convoy render`: the release checked and rendered on this machine, with
//! no coordinator, no cluster and (for now) no Vault.
//!
//! Secrets are not resolved here yet: each one is replaced by a placeholder that says where
//! it would come from, unless `--secrets-file` gives a value. Values from that file are
//! masked in everything printed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use convoy_chart::Chart;
use convoy_chart::repo::{Auth, RepoOptions};
use convoy_release::{
    ChartRef, Registry, Release, ReleaseError, SecretRequest, mask, plan_secrets, render_context,
};
use serde_json::Value;

const LINT_EXAMPLES: &str = "\
Examples:
  convoy lint -f configs/releases/app1.yaml
  convoy lint -f app1.yaml --registry configs/contexts.yaml --chart-dir ./charts/app1
  CONVOY_REGISTRY=/etc/convoy/contexts.yaml convoy lint -f app1.yaml

Exit status: 0 when the release is valid and renders for every target context; 2 when the\nrelease, registry or chart is invalid; 1 for anything else (a chart repository unreachable).";

const RENDER_EXAMPLES: &str = "\
Examples:
  convoy render -f configs/releases/app1.yaml --context dev-europe-west1-0
  convoy render -f app1.yaml --context dev-us-central1-0 --secrets-file ./dev-secrets.yaml > out.yaml

Secret values never appear in the output: every value under a Secret's data/stringData is
printed as <masked>, and so is any secret text found elsewhere.";

/// Flags `lint` and `render` share.
#[derive(Debug, clap::Args)]
pub struct Offline {
    /// The release file.
    #[arg(short = 'f', long = "file", value_name = "RELEASE")]
    pub file: PathBuf,
    /// The context registry. Default: the nearest `contexts.yaml` in the release file's
    /// directory or any directory above it.
    #[arg(long, env = "CONVOY_REGISTRY", value_name = "FILE")]
    pub registry: Option<PathBuf>,
    /// Render this chart directory or .tgz instead of the release's `spec.chart`. A chart
    /// from a repository is otherwise downloaded (CONVOY_REPO_TOKEN, or CONVOY_REPO_USERNAME and
    /// CONVOY_REPO_PASSWORD, authenticate; CONVOY_CACHE/charts caches it).
    #[arg(long, value_name = "DIR")]
    pub chart_dir: Option<PathBuf>,
    /// A YAML file `secret_id: value` standing in for Vault; its values are never printed.
    #[arg(long, value_name = "FILE")]
    pub secrets_file: Option<PathBuf>,
}

/// `convoy lint`: validates the release and renders every target context offline.
#[derive(Debug, clap::Args)]
#[command(after_help = LINT_EXAMPLES)]
pub struct LintArgs {
    #[command(flatten)]
    pub offline: Offline,
}

/// `convoy render`: what one context would receive, secret values masked.
#[derive(Debug, clap::Args)]
#[command(after_help = RENDER_EXAMPLES)]
pub struct RenderArgs {
    #[command(flatten)]
    pub offline: Offline,
    /// The target context to render for.
    #[arg(long, value_name = "NAME")]
    pub context: String,
}

/// Everything loaded before rendering.
struct Loaded {
    release: Release,
    registry: Registry,
    registry_path: PathBuf,
    chart: Chart,
    chart_path: PathBuf,
    plan: Vec<SecretRequest>,
    /// Values from `--secrets-file`: the only real secrets here, so the only ones to mask.
    supplied: BTreeMap<String, Value>,
}

/// Runs `convoy lint`; on failure prints the problems and exits with the CLI's exit code
/// (2 for an invalid release or chart, 1 for anything else).
/// Whether every rendered object (and hook) converts to the JSON a submit ships, as
/// Helm reads it (YAML 1.1): what a submit would refuse, lint refuses too.
fn shippable(r: &convoy_release::RenderedContext) -> Result<(), String> {
    for m in r.objects().chain(&r.hooks) {
        convoy_chart::manifest_documents_to_json(&m.content).map_err(|e| format!("{}: {e}", m.source))?;
    }
    Ok(())
}

pub fn lint(args: LintArgs) -> anyhow::Result<()> {
    exit_on_error(run_lint(&args))
}

/// Runs `convoy render`; on failure prints the problems and exits as `lint` does.
pub fn render(args: RenderArgs) -> anyhow::Result<()> {
    exit_on_error(run_render(&args))
}

/// Diagnostics are the output a user acts on: printed as they are, one per line, without
/// the `Error:` prefix and backtrace that returning them from `main` would add.
fn exit_on_error(result: anyhow::Result<()>) -> anyhow::Result<()> {
    if let Err(e) = result {
        eprintln!("{e:#}");
        let code = if e.downcast_ref::<InvalidInput>().is_some() {
            crate::exit::INVALID_INPUT
        } else {
            crate::exit::OTHER
        };
        std::process::exit(i32::from(code));
    }
    Ok(())
}

/// The user's input (release, registry, chart, secrets file) is wrong: exit code 2.
#[derive(Debug)]
struct InvalidInput(String);

impl std::fmt::Display for InvalidInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InvalidInput {}

fn invalid(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(InvalidInput(message.into()))
}

fn run_lint(args: &LintArgs) -> anyhow::Result<()> {
    let o = &args.offline;
    let mut release = Release::load(&o.file).map_err(report)?;
    fetch_values_from(&mut release)?;
    let (registry, registry_path) = load_registry(o)?;
    let valid = match release.validate(&registry) {
        Ok(()) => true,
        Err(e) => {
            eprintln!("{e}");
            false
        }
    };
    let loaded = load_rest(o, release, registry, registry_path)?;
    print_header(&loaded);
    let mut failed = Vec::new();
    for name in loaded.release.targets() {
        let Some(ctx) = loaded.registry.get(name) else {
            println!("{name}: SKIPPED (not in the registry)");
            failed.push(name.to_string());
            continue;
        };
        let secrets = context_secrets(&loaded, name);
        let masker = mask::Masker::new(loaded.supplied.values());
        match render_context(&loaded.release, &loaded.chart, ctx, &secrets, 1)
            .map_err(|e| masker.mask(&e.to_string()))
            .and_then(|r| shippable(&r).map(|()| r))
        {
            Ok(r) => println!(
                "{name}: OK, {} objects ({})",
                r.objects().count(),
                r.values_digest
            ),
            Err(e) => {
                println!("{name}: FAILED");
                eprintln!("{}", indent(&e));
                failed.push(name.to_string());
            }
        }
    }
    let total = loaded.release.targets().count();
    if !valid || !failed.is_empty() {
        return Err(invalid(format!(
            "lint failed: {} of {total} contexts failed{}",
            failed.len(),
            if valid {
                ""
            } else {
                "; the release has validation errors (above)"
            }
        )));
    }
    println!("lint: OK, {total} contexts");
    Ok(())
}

fn run_render(args: &RenderArgs) -> anyhow::Result<()> {
    let o = &args.offline;
    let mut release = Release::load(&o.file).map_err(report)?;
    fetch_values_from(&mut release)?;
    let (registry, registry_path) = load_registry(o)?;
    release.validate(&registry).map_err(report)?;
    if !release.targets().any(|t| t == args.context) {
        let targets: Vec<&str> = release.targets().collect();
        let hint = convoy_release::did_you_mean(&args.context, targets.iter().copied())
            .map(|s| format!(" (did you mean `{s}`?)"))
            .unwrap_or_default();
        return Err(invalid(format!(
            "`{}` is not a target of {}{hint}; its targets: {}",
            args.context,
            release.metadata.name,
            targets.join(", ")
        )));
    }
    let loaded = load_rest(o, release, registry, registry_path)?;
    let ctx = loaded
        .registry
        .get(&args.context)
        .ok_or_else(|| invalid(format!("context `{}` is not in the registry", args.context)))?;
    let secrets = context_secrets(&loaded, &args.context);
    if std::env::var_os("VAULT_ADDR").is_some() {
        println!("# note: VAULT_ADDR is set, but render does not read Vault yet");
    }
    // A template error may quote a supplied secret (`fail`): masked as the output is.
    let masker = mask::Masker::new(loaded.supplied.values());
    let rendered = render_context(&loaded.release, &loaded.chart, ctx, &secrets, 1)
        .map_err(|e| invalid(masker.mask(&e.to_string())))?;
    let rel = &loaded.release;
    println!(
        "# convoy render: release {} to context {} (region {}, env {}, cloud {}, cluster {}), revision 1",
        rel.metadata.name, ctx.name, ctx.region, ctx.env, ctx.cloud, ctx.cluster_name
    );
    println!(
        "# chart: {} {} ({})",
        loaded.chart.name(),
        loaded.chart.version(),
        loaded.chart_path.display()
    );
    println!("# values: {}", rendered.values_digest);
    for req in loaded.plan.iter().filter(|r| r.context == args.context) {
        let how = if loaded.supplied.contains_key(&req.secret_id) {
            "from --secrets-file"
        } else {
            "not resolved offline: placeholder"
        };
        println!(
            "# secret {}: {}#{} ({how}; values masked)",
            req.secret_id, req.vault_path, req.vault_key
        );
    }
    for m in rendered.objects() {
        println!("---\n# Source: {}", m.source);
        println!(
            "{}",
            mask::mask_manifest(&m.kind, &m.content, &loaded.supplied).trim_end()
        );
    }
    for m in &rendered.hooks {
        println!("---\n# Source: {} (hook)", m.source);
        println!(
            "{}",
            mask::mask_manifest(&m.kind, &m.content, &loaded.supplied).trim_end()
        );
    }
    Ok(())
}

/// Turns a release error into one that prints every diagnostic, one per line.
fn report(e: ReleaseError) -> anyhow::Error {
    invalid(e.to_string())
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn load_registry(o: &Offline) -> anyhow::Result<(Registry, PathBuf)> {
    let path = match &o.registry {
        Some(p) => p.clone(),
        None => find_registry(&o.file).ok_or_else(|| {
            invalid(format!(
                "no context registry: pass --registry FILE (or set CONVOY_REGISTRY); no contexts.yaml was found in {} or above",
                o.file.parent().map_or_else(|| ".".into(), |p| p.display().to_string())
            ))
        })?,
    };
    let registry = Registry::load(&path).map_err(report)?;
    Ok((registry, path))
}

/// The nearest `contexts.yaml` from the release file's directory upward.
fn find_registry(release: &Path) -> Option<PathBuf> {
    let start = release
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    start
        .ancestors()
        .map(|dir| dir.join("contexts.yaml"))
        .find(|p| p.is_file())
}

fn load_rest(
    o: &Offline,
    release: Release,
    registry: Registry,
    registry_path: PathBuf,
) -> anyhow::Result<Loaded> {
    let (chart, chart_path) = match (o.chart_dir.clone(), release.chart_path(), &release.spec.chart) {
        (Some(path), _, _) | (None, Some(path), _) => {
            let chart = Chart::load(&path).map_err(|e| {
                invalid(format!(
                    "{}: loading chart {}: {e}",
                    release.source,
                    path.display()
                ))
            })?;
            let chart = with_dependencies(chart, &release.source, || {
                if path.is_dir() {
                    Ok(convoy_chart::package_dir(&path)?)
                } else {
                    Ok(std::fs::read(&path)?)
                }
            })?;
            (chart, path)
        }
        (
            None,
            None,
            ChartRef::Repo {
                repo, name, version, ..
            },
        ) => {
            let bytes =
                convoy_chart::repo::fetch_chart(repo, name, version, &repo_options()).with_context(|| {
                    format!("{}: fetching chart {name} {version} from {repo}", release.source)
                })?;
            let chart = Chart::load_archive(&bytes).map_err(|e| {
                invalid(format!(
                    "{}: chart {name} {version} from {repo}: {e}",
                    release.source
                ))
            })?;
            let chart = with_dependencies(chart, &release.source, || Ok(bytes.clone()))?;
            (chart, PathBuf::from(format!("{repo} {name} {version}")))
        }
        (
            None,
            None,
            ChartRef::Git {
                git, reference, path, ..
            },
        ) => {
            let sources = oci_sources()?;
            let fetched = block_on(sources.fetch(&release.spec.chart, ""))?
                .map_err(|e| anyhow::anyhow!("{}: spec.chart: {e}", release.source))?
                .ok_or_else(|| anyhow::anyhow!("{}: spec.chart: nothing fetched", release.source))?;
            let chart = Chart::load_archive(&fetched.archive)
                .map_err(|e| invalid(format!("{}: chart {}: {e}", release.source, fetched.origin)))?;
            let chart = with_dependencies(chart, &release.source, || Ok(fetched.archive.clone()))?;
            (chart, PathBuf::from(format!("{git} {reference} {path}")))
        }
        (None, None, ChartRef::Oci { oci, .. }) => {
            let sources = oci_sources()?;
            let fetched = block_on(sources.fetch(&release.spec.chart, ""))?
                .map_err(|e| anyhow::anyhow!("{}: spec.chart: {e}", release.source))?
                .ok_or_else(|| anyhow::anyhow!("{}: spec.chart: nothing fetched", release.source))?;
            let chart = Chart::load_archive(&fetched.archive)
                .map_err(|e| invalid(format!("{}: chart {}: {e}", release.source, fetched.origin)))?;
            let chart = with_dependencies(chart, &release.source, || Ok(fetched.archive.clone()))?;
            (chart, PathBuf::from(oci))
        }
        (None, None, ChartRef::Path { .. }) => {
            return Err(invalid(format!("{}: no chart path", release.source)));
        }
    };
    let plan = plan_secrets(&release);
    let supplied = match &o.secrets_file {
        Some(p) => load_secrets_file(p)?,
        None => BTreeMap::new(),
    };
    Ok(Loaded {
        release,
        registry,
        registry_path,
        chart,
        chart_path,
        plan,
        supplied,
    })
}

/// `chart` with the Chart.yaml dependencies it does not vendor fetched as the
/// coordinator fetches them (same credentials as [`oci_sources`]); `archive` gives the
/// chart packaged, asked only when something is missing.
fn with_dependencies(
    chart: Chart,
    source: &str,
    archive: impl FnOnce() -> anyhow::Result<Vec<u8>>,
) -> anyhow::Result<Chart> {
    let missing = chart
        .metadata()
        .dependencies
        .iter()
        .any(|d| !chart.dependencies().iter().any(|c| c.name() == d.name));
    if !missing {
        return Ok(chart);
    }
    let bytes = archive()?;
    let sources = oci_sources()?;
    match block_on(sources.complete_dependencies(&bytes, ""))?
        .map_err(|e| anyhow::anyhow!("{source}: spec.chart: {e}"))?
    {
        Some((completed, _)) => Chart::load_archive(&completed)
            .map_err(|e| invalid(format!("{source}: chart with its dependencies: {e}"))),
        None => Ok(chart),
    }
}

/// Fetches `spec.valuesFrom` (with the same credentials as [`oci_sources`]) into
/// `release`, as the coordinator does at submit.
fn fetch_values_from(release: &mut Release) -> anyhow::Result<()> {
    if release.spec.values_from.is_empty() {
        return Ok(());
    }
    let sources = oci_sources()?;
    let mut fetched = Vec::new();
    for (i, from) in release.spec.values_from.iter().enumerate() {
        let v = block_on(sources.fetch_values(from, ""))?
            .map_err(|e| anyhow::anyhow!("{}: spec.valuesFrom[{i}]: {e}", release.source))?;
        fetched.push(v);
    }
    release.attach_values_from(&fetched).map_err(invalid)
}

/// Registry access for `spec.chart.oci`: the same credentials as [`repo_options`];
/// `CONVOY_OCI_PLAIN_HTTP=1` talks plain HTTP (a registry on loopback).
pub fn oci_sources() -> anyhow::Result<convoy_sources::ChartSources> {
    use convoy_sources::{ChartSources, Credentials};
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let creds = match (
        env("CONVOY_REPO_TOKEN"),
        env("CONVOY_REPO_USERNAME"),
        env("CONVOY_REPO_PASSWORD"),
    ) {
        (Some(token), _, _) => Credentials::Bearer(token),
        (None, Some(username), Some(password)) => Credentials::Basic(username, password),
        _ => Credentials::Anonymous,
    };
    let plain = env("CONVOY_OCI_PLAIN_HTTP").is_some_and(|v| v == "1" || v == "true");
    Ok(ChartSources::direct(creds, plain))
}

/// Runs `f` to completion on a runtime of its own (the offline commands are
/// synchronous, and may be called from within the CLI's runtime).
pub fn block_on<F>(f: F) -> anyhow::Result<F::Output>
where
    F: std::future::Future + Send,
    F::Output: Send,
{
    std::thread::scope(|s| {
        s.spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map(|rt| rt.block_on(f))
        })
        .join()
    })
    .map_err(|_| anyhow::anyhow!("the fetch panicked"))?
    .map_err(|e| anyhow::anyhow!("cannot start a runtime: {e}"))
}

/// Repository access for `spec.chart.repo`: credentials from `CONVOY_REPO_TOKEN` (bearer)
/// or `CONVOY_REPO_USERNAME` + `CONVOY_REPO_PASSWORD`; downloads cached by digest under
/// `$CONVOY_CACHE/charts` (default `~/.cache/convoy/charts`).
fn repo_options() -> RepoOptions {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let auth = match (
        env("CONVOY_REPO_TOKEN"),
        env("CONVOY_REPO_USERNAME"),
        env("CONVOY_REPO_PASSWORD"),
    ) {
        (Some(token), _, _) => Some(Auth::Bearer(token)),
        (None, Some(username), Some(password)) => Some(Auth::Basic { username, password }),
        _ => None,
    };
    let cache_dir = env("CONVOY_CACHE")
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|h| Path::new(&h).join(".cache/convoy")))
        .map(|d| d.join("charts"));
    RepoOptions {
        auth,
        cache_dir,
        timeout: None,
        tls: None,
    }
}

/// Reads `secret_id: value` pairs. Errors name the file and position, never a value.
fn load_secrets_file(path: &Path) -> anyhow::Result<BTreeMap<String, Value>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let node = convoy_release::yaml::parse_single(&text)
        .map_err(|e| invalid(format!("{}:{}: {}", path.display(), e.pos, e.message)))?;
    match node.map(|n| n.to_json()) {
        None => Ok(BTreeMap::new()),
        Some(Value::Object(m)) => Ok(m.into_iter().collect()),
        Some(_) => Err(invalid(format!(
            "{}: expected a mapping `secret_id: value`",
            path.display()
        ))),
    }
}

/// The secret values one context renders with: supplied ones, else placeholders.
fn context_secrets(loaded: &Loaded, context: &str) -> BTreeMap<String, Value> {
    loaded
        .plan
        .iter()
        .filter(|r| r.context == context)
        .map(|r| {
            let value = loaded.supplied.get(&r.secret_id).cloned().unwrap_or_else(|| {
                Value::String(format!(
                    "<secret:{} from {}#{}: not resolved offline>",
                    r.secret_id, r.vault_path, r.vault_key
                ))
            });
            (r.secret_id.clone(), value)
        })
        .collect()
}

fn print_header(l: &Loaded) {
    let rel = &l.release;
    println!("release {} ({})", rel.metadata.name, rel.source);
    println!(
        "  chart:    {} {} ({})",
        l.chart.name(),
        l.chart.version(),
        l.chart_path.display()
    );
    println!(
        "  registry: {} ({} contexts)",
        l.registry_path.display(),
        l.registry.len()
    );
    let ids: Vec<&str> = rel.spec.secrets.iter().map(|s| s.secret_id.as_str()).collect();
    if ids.is_empty() {
        println!("  secrets:  none");
    } else {
        let missing: Vec<&str> = ids
            .iter()
            .copied()
            .filter(|id| !l.supplied.contains_key(*id))
            .collect();
        if missing.is_empty() {
            println!("  secrets:  {} (from --secrets-file)", ids.join(", "));
        } else {
            println!(
                "  secrets:  {} not resolved offline: placeholders stand in for them{}",
                missing.join(", "),
                if std::env::var_os("VAULT_ADDR").is_some() {
                    " (VAULT_ADDR is set, but lint does not read Vault yet)"
                } else {
                    ""
                }
            );
        }
    }
}

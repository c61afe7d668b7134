//! The production [`Preparer`]: parse and validate the release against the registry,
//! resolve every target context's secrets (Vault, or a development secrets file), and
//! render the chart for every context, before any cluster is touched.

use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use convoy_release::{Registry, Release, ReleaseError};
use serde_json::Value;

use crate::capabilities::{FactsSource, RenderFacts};
use crate::model::{FailureBudget, OnFailure, Plan, SecretVersion};
use crate::prepare::{
    ApplyOptions, PrepareError, PrepareFuture, Prepared, Preparer, Preview, ReleaseMeta, RenderedManifest,
};
use crate::store::SubmitInputs;

/// Rendered objects (and Helm hooks) of some contexts.
type ContextManifests = Vec<(String, Arc<Rendered>)>;

/// One render's outcome, shared by every context whose render wrote the same objects
/// (most of a fleet, in practice: contexts that differ only in values the chart does not
/// use): the objects to apply, the hooks the agent runs around them, their images.
struct Rendered {
    manifests: Arc<Vec<RenderedManifest>>,
    hooks: Arc<Vec<RenderedManifest>>,
    /// Its workloads' images, for the revision's history.
    images: Images,
}

/// (workload, container, image) of each container of a render.
type Images = Arc<Vec<(String, String, String)>>;

/// What a chart's render wrote (template path and YAML of each object, then each hook),
/// the key under which identical renders share one [`Rendered`]: converting to JSON and
/// reading the images is done once per distinct render, and its objects are kept once
/// however many contexts ship them. Compared whole, so a match is exact. In memory only
/// (it may hold secrets), for the length of one submit.
type RenderKey = Vec<(String, String)>;

/// What [`Pipeline::render_all`] gives: objects and hooks per context, and each
/// context's images.
struct RenderedAll {
    manifests: PerContext,
    hooks: PerContext,
    images: BTreeMap<String, Images>,
}

/// Rendered objects per context (contexts with the same render share one list).
type PerContext = BTreeMap<String, Arc<Vec<RenderedManifest>>>;

/// `e` with every resolved secret masked in its message.
pub fn mask_error(e: PrepareError, masker: &convoy_release::mask::Masker) -> PrepareError {
    match e {
        PrepareError::Invalid(m) => PrepareError::Invalid(masker.mask(&m)),
        PrepareError::Secrets(m) => PrepareError::Secrets(masker.mask(&m)),
        PrepareError::SecretsUnavailable(m) => PrepareError::SecretsUnavailable(masker.mask(&m)),
        PrepareError::Render(m) => PrepareError::Render(masker.mask(&m)),
        PrepareError::Denied(m) => PrepareError::Denied(masker.mask(&m)),
        PrepareError::Source(m) => PrepareError::Source(masker.mask(&m)),
    }
}

/// Logs (by secret id and context, never the value) each secret shorter than
/// [`convoy_release::mask::MIN_LITERAL_LEN`] bytes: it is masked only where it stands
/// whole between quotes, never as a substring.
fn warn_short_secrets(release: &str, values: &BTreeMap<String, BTreeMap<String, Value>>) {
    for (context, secrets) in values {
        for (id, v) in secrets {
            let short = match v {
                Value::String(s) => s.len() < convoy_release::mask::MIN_LITERAL_LEN,
                Value::Number(n) => n.to_string().len() < convoy_release::mask::MIN_LITERAL_LEN,
                _ => false,
            };
            if short {
                tracing::warn!(
                    release,
                    context = %context,
                    secret_id = %id,
                    "secret is shorter than {} bytes: it is masked in messages only where it stands whole between quotes, not as a substring",
                    convoy_release::mask::MIN_LITERAL_LEN
                );
            }
        }
    }
}

/// Runs CPU-bound `f` without holding up the async workers (so the API and the agent
/// links keep answering): in place on a multi-threaded runtime, which moves its other
/// tasks elsewhere meanwhile; directly elsewhere (tests on a current-thread runtime).
fn off_async<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// Where secret values come from.
pub enum SecretSource {
    Vault(Arc<convoy_secrets::Vault>),
    /// A development-only file: `"<vaultPath>#<vaultKey>": value`. Never for production:
    /// it puts secrets on the coordinator's disk.
    DevFile(BTreeMap<String, String>),
    /// No secret backend: a release that declares secrets is refused.
    None,
}

/// Which Vault paths a release may name: prefix templates (`kv/{env}/{namespace}/`)
/// per environment, else the default list. See `secret_paths` in the daemon config.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretPaths {
    /// For environments without their own entry.
    #[serde(default)]
    pub default: Vec<String>,
    /// Per environment (the registry's `env`), replacing `default`.
    #[serde(default)]
    pub environments: BTreeMap<String, Vec<String>>,
}

impl SecretPaths {
    /// Checks the templates; the error is `(key, reason)`.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let lists = std::iter::once(("secret_paths.default".to_string(), &self.default)).chain(
            self.environments
                .iter()
                .map(|(e, l)| (format!("secret_paths.environments.{e}"), l)),
        );
        for (key, list) in lists {
            for (i, t) in list.iter().enumerate() {
                let rest = t.replace("{env}", "").replace("{namespace}", "");
                if t.trim_matches('/').is_empty() || rest.contains(['{', '}']) {
                    return Err((
                        format!("{key}[{i}]"),
                        format!(
                            "{t:?}: expected a Vault path prefix such as `kv/{{env}}/{{namespace}}/` (placeholders: {{env}}, {{namespace}})"
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The prefixes `environment` and `namespace` may read, placeholders filled in,
    /// without a leading `/`.
    pub fn allowed(&self, environment: &str, namespace: &str) -> Vec<String> {
        self.environments
            .get(environment)
            .unwrap_or(&self.default)
            .iter()
            .map(|t| {
                t.replace("{env}", environment)
                    .replace("{namespace}", namespace)
                    .trim_start_matches('/')
                    .to_string()
            })
            .collect()
    }

    /// Whether `path` (`/kv/dev/shop/db`) lies under one of `allowed`: on a path
    /// segment boundary, so `kv/dev/shop` does not admit `kv/dev/shopping/x`.
    pub fn admits(allowed: &[String], path: &str) -> bool {
        let path = path.trim_start_matches('/');
        allowed.iter().any(|prefix| {
            let bare = prefix.trim_end_matches('/');
            path == bare || path.strip_prefix(bare).is_some_and(|rest| rest.starts_with('/'))
        })
    }
}

/// Parse, resolve, render.
pub struct Pipeline {
    registry: Registry,
    secrets: SecretSource,
    /// Which Vault paths releases may name; `None`: any (not recommended).
    secret_paths: Option<SecretPaths>,
    /// Parallel rendering of contexts (bounded by the machine's cores).
    render_threads: usize,
    /// Submits rendering at once ([`PipelineLimits::concurrent_submits`]).
    render_slots: tokio::sync::Semaphore,
    limits: PipelineLimits,
    /// Where `repo` and `oci` charts are fetched from, with which credentials.
    chart_sources: crate::sources::ChartSources,
    /// The Prometheus servers and webhooks release gates may name.
    gates: crate::gates::GatesConfig,
}

/// Bounds on loading and rendering a submit (the daemon config's `render` section).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PipelineLimits {
    /// Each context's render.
    pub render: convoy_release::RenderLimits,
    /// The submitted chart archive.
    pub load: convoy_chart::LoadLimits,
    /// How many submits may render at the same time (each spreads its contexts over
    /// the cores).
    pub concurrent_submits: usize,
}

impl Default for PipelineLimits {
    fn default() -> Self {
        PipelineLimits {
            render: convoy_release::RenderLimits::default(),
            load: convoy_chart::LoadLimits::default(),
            concurrent_submits: 2,
        }
    }
}

impl Pipeline {
    pub fn new(registry: Registry, secrets: SecretSource) -> Self {
        let render_threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        Pipeline {
            registry,
            secrets,
            secret_paths: None,
            render_threads,
            render_slots: tokio::sync::Semaphore::new(PipelineLimits::default().concurrent_submits),
            limits: PipelineLimits::default(),
            chart_sources: crate::sources::ChartSources::default(),
            gates: crate::gates::GatesConfig::default(),
        }
    }

    /// The Prometheus servers and webhooks release gates may name.
    pub fn with_gates(mut self, gates: crate::gates::GatesConfig) -> Self {
        self.gates = gates;
        self
    }

    /// Refuses gates naming a Prometheus or webhook the coordinator does not know.
    fn check_gates(&self, release: &Release) -> Result<(), PrepareError> {
        for (i, g) in release.spec.strategy.gates.iter().enumerate() {
            let (key, name, section, known) = match &g.check {
                convoy_release::GateCheck::Analysis(a) => (
                    "analysis.provider",
                    &a.provider,
                    "gates.prometheus",
                    &self.gates.prometheus,
                ),
                convoy_release::GateCheck::Webhook(w) => {
                    ("webhook.name", &w.name, "gates.webhooks", &self.gates.webhooks)
                }
            };
            if !known.iter().any(|e| e.name == *name) {
                let names: Vec<&str> = known.iter().map(|e| e.name.as_str()).collect();
                return Err(PrepareError::Invalid(format!(
                    "{}: spec.strategy.gates[{i}].{key}: {name:?} is not in the coordinator's `{section}` (known: {})",
                    release.source,
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    }
                )));
            }
        }
        Ok(())
    }

    /// Bounds loading and rendering.
    pub fn with_limits(mut self, limits: PipelineLimits) -> Self {
        self.render_slots = tokio::sync::Semaphore::new(limits.concurrent_submits.max(1));
        self.limits = limits;
        self
    }

    /// The chart repositories and registries `repo` and `oci` charts are fetched from.
    pub fn with_chart_sources(mut self, sources: crate::sources::ChartSources) -> Self {
        self.chart_sources = sources;
        self
    }

    /// Restricts the Vault paths releases may name.
    pub fn with_secret_paths(mut self, paths: Option<SecretPaths>) -> Self {
        self.secret_paths = paths;
        self
    }

    /// The release's environment: the registry `env` of its target contexts, which
    /// must all agree (the release file's `metadata.environment`, when set, must
    /// agree too; `validate` checks that). It picks the Vault role and the allowed
    /// secret paths, so a release file cannot choose them.
    fn environment(&self, release: &Release) -> Result<String, PrepareError> {
        let mut envs: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for c in release.targets() {
            if let Some(info) = self.registry.get(c) {
                envs.entry(info.env.as_str()).or_default().push(c);
            }
        }
        match envs.len() {
            0 => Ok(release.metadata.environment.clone().unwrap_or_default()),
            1 => Ok(envs.into_keys().next().unwrap_or_default().to_string()),
            _ => {
                let spans: Vec<String> = envs
                    .iter()
                    .map(|(e, cs)| format!("{e} ({})", cs.join(", ")))
                    .collect();
                Err(PrepareError::Invalid(format!(
                    "{}: release {} targets contexts in more than one environment: {}; a release deploys to one environment (its Vault role and secret paths follow it): split it",
                    release.source,
                    release.metadata.name,
                    spans.join(" and ")
                )))
            }
        }
    }

    /// Refuses a secret path outside what the environment and namespace may read,
    /// before anything is read.
    fn check_secret_paths(
        &self,
        release: &Release,
        environment: &str,
        requests: &[convoy_release::SecretRequest],
    ) -> Result<(), PrepareError> {
        let Some(paths) = &self.secret_paths else {
            return Ok(());
        };
        let namespace = &release.metadata.namespace;
        let allowed = paths.allowed(environment, namespace);
        for r in requests {
            if !SecretPaths::admits(&allowed, &r.vault_path) {
                return Err(PrepareError::Denied(format!(
                    "release {}: secret {:?} for context {} names Vault path {}, outside what environment {environment} and namespace {namespace} may read: [{}]",
                    release.metadata.name,
                    r.secret_id,
                    r.context,
                    r.vault_path,
                    allowed.join(", ")
                )));
            }
        }
        Ok(())
    }

    /// Parses and validates the release only (no chart, no secrets).
    fn preview_release(&self, inputs: &SubmitInputs) -> Result<Preview, PrepareError> {
        let release = self.parse(inputs)?;
        release.validate(&self.registry).map_err(invalid)?;
        self.check_gates(&release)?;
        let environment = self.environment(&release)?;
        let o = &release.spec.options;
        Ok(Preview {
            meta: ReleaseMeta {
                name: release.metadata.name.clone(),
                namespace: release.metadata.namespace.clone(),
                environment,
            },
            contexts: release.targets().map(str::to_string).collect(),
            options: ApplyOptions {
                force_roll: o.force_roll,
                adopt: o.adopt,
                force_conflicts: o.force_conflicts,
                allow_mass_deletion: o.allow_mass_deletion,
            },
        })
    }

    /// Reads a development secrets file (YAML map of `path#key` to value).
    pub fn dev_secrets(path: &Path) -> Result<BTreeMap<String, String>, String> {
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("dev_secrets_file {}: {e}", path.display()))?;
        serde_yaml::from_str(&text).map_err(|e| {
            format!(
                "dev_secrets_file {}: expected a map of \"path#key\": value ({e})",
                path.display()
            )
        })
    }

    /// `pinned`: read each secret at the version a recorded revision shipped.
    async fn run(
        &self,
        inputs: &SubmitInputs,
        pinned: Option<&[SecretVersion]>,
        facts: &dyn FactsSource,
    ) -> Result<Prepared, PrepareError> {
        // Unpacking a chart (up to `render.max_chart_mib`) is CPU work too: a render slot,
        // off the async workers.
        let (release, chart) = {
            let _slot = self.render_slot().await?;
            off_async(|| self.load(inputs))?
        };
        release.validate(&self.registry).map_err(invalid)?;
        self.check_gates(&release)?;
        let environment = self.environment(&release)?;
        let requests = convoy_release::plan_secrets(&release);
        self.check_secret_paths(&release, &environment, &requests)?;
        let (values, versions) = self.resolve(&release, &environment, &requests, pinned).await?;
        let facts = self.facts(&release, facts).await;
        let masker = convoy_release::mask::Masker::new(values.values().flat_map(|v| v.values()));
        warn_short_secrets(&release.metadata.name, &values);
        // A template error may quote a secret (`{{ fail .Values.secrets.db }}`, a
        // scaling or YAML error citing a value): it is masked before anyone sees it.
        // Rendering is CPU work: it runs off the async workers (so the API and the agent
        // links keep answering while a chart renders) and at most `concurrent_submits`
        // render at once; each render is bounded by its deadline and output budget.
        let _slot = self.render_slot().await?;
        let rendered = off_async(|| self.render_all(&release, &chart, &values, &facts));
        let RenderedAll {
            manifests,
            hooks,
            images,
        } = rendered.map_err(|e| mask_error(e, &masker))?;
        let images = crate::deployed::group_images(&images, manifests.len());
        let values_record = crate::deployed::values_record(&release, &masker);
        let first = release.targets().next().and_then(|c| self.registry.get(c));
        let values_digest = first
            .map(|c| convoy_release::values_digest(&release, c))
            .unwrap_or_default();
        let s = &release.spec.strategy;
        let plan = Plan {
            waves: release.waves(),
            max_concurrency: s.max_concurrency.map_or(0, |n| n as usize),
            max_failures: match s.max_failures {
                convoy_release::MaxFailures::Count(n) => FailureBudget::Count(n),
                convoy_release::MaxFailures::Percent(p) => FailureBudget::Percent(p),
            },
            on_failure: match s.on_failure {
                convoy_release::OnFailure::Rollback => OnFailure::Rollback,
                convoy_release::OnFailure::Pause => OnFailure::Pause,
                convoy_release::OnFailure::Continue => OnFailure::Continue,
            },
            soak: s.soak,
            offline_deadline: s.offline_agent_deadline,
            progress_deadline: release.spec.health.progress_deadline,
            min_ready_window: release.spec.health.min_ready_window,
            preflight: true,
            approval: s
                .approval
                .as_ref()
                .map(|a| crate::model::ApprovalGates {
                    before: a.before_waves.iter().map(|w| *w as usize - 1).collect(),
                    deadline: a.deadline,
                })
                .unwrap_or_default(),
            gates: s.gates.iter().map(crate::gates::plan_gate).collect(),
            canary: plan_canary(s),
            blue_green: match &s.in_cluster {
                Some(convoy_release::InCluster::BlueGreen(b)) => Some(crate::model::BlueGreenPlan {
                    preview_service: b.preview_service,
                    keep_previous_for: b.keep_previous_for,
                }),
                _ => None,
            },
        };
        let o = &release.spec.options;
        Ok(Prepared {
            meta: ReleaseMeta {
                name: release.metadata.name.clone(),
                namespace: release.metadata.namespace.clone(),
                environment,
            },
            plan,
            manifests,
            hooks,
            chart_name: chart.name().to_string(),
            chart_version: chart.version().to_string(),
            values_digest,
            images,
            values: values_record,
            secret_versions: versions,
            options: ApplyOptions {
                force_roll: o.force_roll,
                adopt: o.adopt,
                force_conflicts: o.force_conflicts,
                allow_mass_deletion: o.allow_mass_deletion || inputs.allow_mass_deletion,
            },
            masker,
            facts,
        })
    }

    /// Every target context's facts, a context the source leaves out a first install
    /// with Helm's defaults. Contexts rendered with Helm's defaults are logged: their
    /// `.Capabilities` may claim APIs their cluster does not serve.
    async fn facts(&self, release: &Release, source: &dyn FactsSource) -> BTreeMap<String, RenderFacts> {
        let targets: Vec<String> = release.targets().map(str::to_string).collect();
        let mut known = source.facts(&release.metadata.name, &targets).await;
        let facts: BTreeMap<String, RenderFacts> = targets
            .iter()
            .map(|c| {
                let f = known
                    .remove(c)
                    .unwrap_or_else(|| RenderFacts::of_revision(1, false, None));
                (c.clone(), f)
            })
            .collect();
        let defaults: Vec<&str> = facts
            .iter()
            .filter(|(_, f)| f.capabilities.is_none())
            .map(|(c, _)| c.as_str())
            .collect();
        if !defaults.is_empty() {
            tracing::warn!(
                release = %release.metadata.name,
                contexts = %defaults.join(", "),
                "no cluster capabilities known for these contexts (their agents never reported any): rendered with Helm's defaults, Kubernetes {} and Helm's default API versions",
                convoy_chart::DEFAULT_KUBE_VERSION
            );
        }
        facts
    }

    /// Parses the release with its values files laid out in a scratch directory (they
    /// came over the wire), and loads the chart from the submitted archive.
    fn load(&self, inputs: &SubmitInputs) -> Result<(Release, convoy_chart::Chart), PrepareError> {
        let mut release = self.parse(inputs)?;
        release
            .attach_values_from(&inputs.values_from)
            .map_err(PrepareError::Invalid)?;
        if inputs.chart_archive.is_empty() {
            let what = match &release.spec.chart {
                convoy_release::ChartRef::Path { path, .. } => {
                    format!("spec.chart.path {path:?} is on the submitter's disk")
                }
                convoy_release::ChartRef::Repo { repo, name, .. } => format!(
                    "spec.chart {name} from {}: not fetched",
                    crate::sources::redact(repo)
                ),
                convoy_release::ChartRef::Oci { oci, .. } => {
                    format!("spec.chart {}: not fetched", crate::sources::redact(oci))
                }
                convoy_release::ChartRef::Git { git, reference, .. } => format!(
                    "spec.chart {} {reference}: not fetched",
                    crate::sources::redact(git)
                ),
            };
            return Err(PrepareError::Invalid(format!(
                "{}: {what}: send the chart with the submit (the convoy CLI packages it: `convoy submit -f FILE`)",
                inputs.source_name
            )));
        }
        // What the revision recorded is what is rendered: the archive kept with it must
        // still be the one its digest names.
        if !inputs.chart_digest.is_empty() {
            let actual = crate::sources::sha256(&inputs.chart_archive);
            if actual != inputs.chart_digest {
                return Err(PrepareError::Render(format!(
                    "{}: the kept chart archive is {actual}, but the revision recorded {}",
                    inputs.source_name, inputs.chart_digest
                )));
            }
        }
        let chart = convoy_chart::Chart::load_archive_within(&inputs.chart_archive, &self.limits.load)
            .map_err(|e| {
                PrepareError::Render(format!(
                    "{}: the submitted chart archive: {e}",
                    inputs.source_name
                ))
            })?;
        Ok((release, chart))
    }

    /// The release file, with its values files laid out in a scratch directory.
    fn parse(&self, inputs: &SubmitInputs) -> Result<Release, PrepareError> {
        let scratch =
            tempfile::tempdir().map_err(|e| PrepareError::Render(format!("scratch directory: {e}")))?;
        for (name, content) in &inputs.values_files {
            let rel = safe_relative(name).ok_or_else(|| {
                PrepareError::Invalid(format!(
                    "{}: values file name {name:?} must be a relative path inside the release's directory",
                    inputs.source_name
                ))
            })?;
            let path = scratch.path().join(rel);
            let scratch_error = |e: std::io::Error| {
                PrepareError::Render(format!("scratch directory: writing values file {name:?}: {e}"))
            };
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(scratch_error)?;
            }
            std::fs::write(&path, content).map_err(scratch_error)?;
        }
        Release::parse_in(&inputs.release_yaml, &inputs.source_name, scratch.path()).map_err(invalid)
    }

    /// Per context, `secret_id -> value` for `.Values.secrets`, and the versions read.
    async fn resolve(
        &self,
        release: &Release,
        environment: &str,
        requests: &[convoy_release::SecretRequest],
        pinned: Option<&[SecretVersion]>,
    ) -> Result<(BTreeMap<String, BTreeMap<String, Value>>, Vec<SecretVersion>), PrepareError> {
        let mut values: BTreeMap<String, BTreeMap<String, Value>> = BTreeMap::new();
        if requests.is_empty() {
            return Ok((values, Vec::new()));
        }
        let name = &release.metadata.name;
        match &self.secrets {
            SecretSource::None => Err(PrepareError::Secrets(format!(
                "{name}: the release declares {} secret(s) but this coordinator has no `vault` configured",
                requests.len()
            ))),
            SecretSource::DevFile(map) => {
                let mut versions = Vec::new();
                for r in requests {
                    let key = format!("{}#{}", r.vault_path, r.vault_key);
                    let v = map.get(&key).ok_or_else(|| {
                        PrepareError::Secrets(format!(
                            "{name}: secret {} for context {}: {key} is not in the development secrets file",
                            r.secret_id, r.context
                        ))
                    })?;
                    values
                        .entry(r.context.clone())
                        .or_default()
                        .insert(r.secret_id.clone(), Value::String(v.clone()));
                    versions.push(version_of(r, 0));
                }
                Ok((values, versions))
            }
            SecretSource::Vault(vault) => {
                let reqs: Vec<convoy_secrets::SecretRequest> = requests
                    .iter()
                    .map(|r| convoy_secrets::SecretRequest {
                        context: r.context.clone(),
                        secret_id: r.secret_id.clone(),
                        vault_path: r.vault_path.clone(),
                        vault_key: r.vault_key.clone(),
                    })
                    .collect();
                // The environment of the contexts' registry entries, never the file's.
                let env = Some(environment).filter(|e| !e.is_empty());
                // A recorded revision is re-read at the versions it shipped, never the
                // latest: a secret rotated since must not change what it deploys. (A
                // request without a pin is then "not resolved" below, not read fresh.)
                let resolved = match pinned {
                    Some(pins) => {
                        let pins: Vec<convoy_secrets::SecretVersion> = pins
                            .iter()
                            .map(|v| convoy_secrets::SecretVersion {
                                context: v.context.clone(),
                                secret_id: v.secret_id.clone(),
                                vault_path: v.vault_path.clone(),
                                vault_key: v.vault_key.clone(),
                                version: v.version,
                            })
                            .collect();
                        vault.resolve_pinned(name, env, &pins).await
                    }
                    None => vault.resolve(name, env, &reqs).await,
                }
                .map_err(|e| {
                    use convoy_secrets::Cause;
                    let transient = e.cause().is_some_and(|c| {
                        matches!(c, Cause::Unreachable(_) | Cause::Sealed)
                            || matches!(c, Cause::Vault { status, .. } if *status >= 500)
                    });
                    if transient {
                        PrepareError::SecretsUnavailable(e.to_string())
                    } else {
                        PrepareError::Secrets(e.to_string())
                    }
                })?;
                for r in requests {
                    let v = resolved.get(&r.context, &r.secret_id).ok_or_else(|| {
                        PrepareError::Secrets(format!(
                            "{name}: secret {} for context {} was not resolved",
                            r.secret_id, r.context
                        ))
                    })?;
                    values
                        .entry(r.context.clone())
                        .or_default()
                        .insert(r.secret_id.clone(), Value::String(v.expose().to_string()));
                }
                let versions = resolved
                    .versions
                    .iter()
                    .map(|v| SecretVersion {
                        secret_id: v.secret_id.clone(),
                        context: v.context.clone(),
                        vault_path: v.vault_path.clone(),
                        vault_key: v.vault_key.clone(),
                        version: v.version,
                    })
                    .collect();
                Ok((values, versions))
            }
        }
    }

    /// Waits for one of the `concurrent_submits` render slots.
    async fn render_slot(&self) -> Result<tokio::sync::SemaphorePermit<'_>, PrepareError> {
        self.render_slots
            .acquire()
            .await
            .map_err(|_| PrepareError::Render("the render pool is closed".into()))
    }

    /// Renders every target context with its facts, spread over a few threads.
    /// Contexts whose renders wrote the same objects share one converted result
    /// ([`RenderKey`]).
    fn render_all(
        &self,
        release: &Release,
        chart: &convoy_chart::Chart,
        values: &BTreeMap<String, BTreeMap<String, Value>>,
        facts: &BTreeMap<String, RenderFacts>,
    ) -> Result<RenderedAll, PrepareError> {
        let targets: Vec<&str> = release.targets().collect();
        let empty = BTreeMap::new();
        let install = RenderFacts::of_revision(1, false, None);
        let seen: std::sync::Mutex<HashMap<RenderKey, Arc<Rendered>>> = std::sync::Mutex::default();
        let memo = convoy_chart::RenderMemo::new(chart);
        let started = std::time::Instant::now();
        let render_one = |ctx: &str| -> Result<Arc<Rendered>, PrepareError> {
            let context = self
                .registry
                .get(ctx)
                .ok_or_else(|| PrepareError::Invalid(format!("{}: unknown context {ctx}", release.source)))?;
            let secrets = values.get(ctx).unwrap_or(&empty);
            let mut env = facts.get(ctx).unwrap_or(&install).env();
            env.limits = self.limits.render;
            let renderer = convoy_release::Renderer::Memo(&memo);
            let r = convoy_release::render_context_with(release, renderer, context, secrets, &env)
                .map_err(render_error)?;
            let objects = r.crds.len() + r.manifests.len();
            let key: RenderKey = r
                .crds
                .into_iter()
                .chain(r.manifests)
                .chain(r.hooks)
                .map(|m| (m.source, m.content))
                .collect();
            let shared = seen
                .lock()
                .map_err(|_| PrepareError::Render("a render thread panicked".into()))?
                .get(&key)
                .cloned();
            if let Some(shared) = shared {
                return Ok(shared);
            }
            let manifests = as_kube_json(&key[..objects], ctx)?;
            let rendered = Arc::new(Rendered {
                images: Arc::new(crate::deployed::images_of(&manifests)),
                manifests: Arc::new(manifests),
                hooks: Arc::new(as_kube_json(&key[objects..], ctx)?),
            });
            let mut seen = seen
                .lock()
                .map_err(|_| PrepareError::Render("a render thread panicked".into()))?;
            // Another thread may have converted the same render meanwhile: theirs wins,
            // so that every context with this render shares one copy.
            Ok(seen.entry(key).or_insert(rendered).clone())
        };
        let chunk = targets.len().div_ceil(self.render_threads.max(1)).max(1);
        let results: Vec<Result<ContextManifests, PrepareError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = targets
                .chunks(chunk)
                .map(|part| {
                    scope.spawn(|| {
                        part.iter()
                            .map(|ctx| Ok((ctx.to_string(), render_one(ctx)?)))
                            .collect()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(PrepareError::Render("a render thread panicked".into())))
                })
                .collect()
        });
        let counts = memo.counts();
        tracing::info!(
            release = %release.metadata.name,
            contexts = targets.len(),
            executed = counts.executed,
            shared = counts.shared,
            distinct = seen.lock().map(|s| s.len()).unwrap_or_default(),
            ms = started.elapsed().as_millis() as u64,
            "rendered: templates ran for {} context(s); {} shared an earlier render whose values agree on everything the templates read",
            counts.executed,
            counts.shared
        );
        let mut all = RenderedAll {
            manifests: BTreeMap::new(),
            hooks: BTreeMap::new(),
            images: BTreeMap::new(),
        };
        for r in results {
            for (ctx, rendered) in r? {
                if !rendered.hooks.is_empty() {
                    all.hooks.insert(ctx.clone(), rendered.hooks.clone());
                }
                all.images.insert(ctx.clone(), rendered.images.clone());
                all.manifests.insert(ctx, rendered.manifests.clone());
            }
        }
        Ok(all)
    }
}

impl Preparer for Pipeline {
    fn prepare<'a>(
        &'a self,
        inputs: &'a SubmitInputs,
        pinned: Option<&'a [SecretVersion]>,
        facts: &'a dyn FactsSource,
    ) -> PrepareFuture<'a> {
        Box::pin(self.run(inputs, pinned, facts))
    }

    fn preview(&self, inputs: &SubmitInputs) -> Result<Preview, PrepareError> {
        self.preview_release(inputs)
    }

    fn fetch_sources<'a>(&'a self, inputs: &'a SubmitInputs) -> crate::prepare::FetchFuture<'a> {
        Box::pin(async move {
            let release = self.parse(inputs)?;
            let environment = self.environment(&release)?;
            let source_err =
                |e: String, at: &str| PrepareError::Source(format!("{}: {at}: {e}", inputs.source_name));
            let mut fetched = crate::sources::Fetched::default();
            for (i, from) in release.spec.values_from.iter().enumerate() {
                let v = self
                    .chart_sources
                    .fetch_values(from, &environment)
                    .await
                    .map_err(|e| source_err(e, &format!("spec.valuesFrom[{i}]")))?;
                fetched.values_from.push(v);
            }
            let chart = &release.spec.chart;
            let deps_err =
                |e: String| PrepareError::Source(format!("{}: spec.chart: {e}", inputs.source_name));
            if matches!(chart, convoy_release::ChartRef::Path { .. }) {
                // A chart sent with the submit may leave its dependencies to be fetched.
                if let Some((archive, deps)) = self
                    .chart_sources
                    .complete_dependencies(&inputs.chart_archive, &environment)
                    .await
                    .map_err(deps_err)?
                {
                    fetched.chart = Some(crate::sources::FetchedChart {
                        archive,
                        origin: format!("dependencies: {}", deps.join("; ")),
                    });
                }
                return Ok(fetched);
            }
            if !inputs.chart_archive.is_empty() {
                return Err(PrepareError::Invalid(format!(
                    "{}: spec.chart: the coordinator fetches `repo`, `oci` and `git` charts itself; the submit must not carry a chart archive",
                    inputs.source_name
                )));
            }
            fetched.chart = self
                .chart_sources
                .fetch(chart, &environment)
                .await
                .map_err(|e| source_err(e, "spec.chart"))?;
            if let Some(c) = &mut fetched.chart
                && let Some((archive, deps)) = self
                    .chart_sources
                    .complete_dependencies(&c.archive, &environment)
                    .await
                    .map_err(deps_err)?
            {
                c.archive = archive;
                c.origin = format!("{}; dependencies: {}", c.origin, deps.join("; "));
            }
            Ok(fetched)
        })
    }
}

/// The objects as Helm would send them to Kubernetes: each YAML document read as YAML 1.1
/// and converted to JSON (`defaultMode: 0644` is 420, `hostNetwork: yes` is `true`), one
/// shipped manifest per object. The agent reads its manifests with a YAML 1.2 parser, which
/// would read those scalars differently; JSON reads the same in both, so what reaches the
/// API server is what `helm install` would have sent. `source` stays the template's path;
/// a document that cannot be converted fails the submit naming it.
fn as_kube_json(
    manifests: &[(String, String)],
    context: &str,
) -> Result<Vec<RenderedManifest>, PrepareError> {
    let mut out = Vec::new();
    for (source, content) in manifests {
        let docs = convoy_chart::manifest_documents_to_json(content)
            .map_err(|e| PrepareError::Render(format!("{source}: rendered for context {context}: {e}")))?;
        out.extend(docs.into_iter().map(|content| RenderedManifest {
            source: source.clone(),
            content,
        }));
    }
    Ok(out)
}

fn version_of(r: &convoy_release::SecretRequest, version: u64) -> SecretVersion {
    SecretVersion {
        secret_id: r.secret_id.clone(),
        context: r.context.clone(),
        vault_path: r.vault_path.clone(),
        vault_key: r.vault_key.clone(),
        version,
    }
}

fn invalid(e: ReleaseError) -> PrepareError {
    PrepareError::Invalid(e.to_string())
}

fn render_error(e: ReleaseError) -> PrepareError {
    match e {
        ReleaseError::Render { .. } => PrepareError::Render(e.to_string()),
        other => PrepareError::Invalid(other.to_string()),
    }
}

/// A relative path that stays inside its directory.
fn safe_relative(name: &str) -> Option<PathBuf> {
    let p = Path::new(name);
    p.components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
        .then(|| p.to_path_buf())
}

/// The in-cluster steps as the plan keeps them (gates by index): a canary's, or a
/// blue/green's after its `Stage`.
fn plan_canary(s: &convoy_release::Strategy) -> Vec<crate::model::CanaryStepSpec> {
    use crate::model::CanaryStepSpec;
    let Some(in_cluster) = &s.in_cluster else {
        return Vec::new();
    };
    let first = match in_cluster {
        convoy_release::InCluster::BlueGreen(_) => Some(CanaryStepSpec::Stage),
        convoy_release::InCluster::Canary(_) => None,
    };
    first
        .into_iter()
        .chain(in_cluster.steps().iter().filter_map(|step| {
            Some(match step {
                convoy_release::CanaryStep::SetWeight(w) => CanaryStepSpec::SetWeight { weight: *w },
                convoy_release::CanaryStep::Pause(d) => CanaryStepSpec::Pause { duration: *d },
                convoy_release::CanaryStep::Approval(d) => CanaryStepSpec::Approval {
                    deadline_ms: d.map(|d| d.as_millis() as u64),
                },
                // Validated: every step's gate is one of the release's.
                convoy_release::CanaryStep::Gate { name, .. } => CanaryStepSpec::Gate {
                    gate: s.gates.iter().position(|g| g.name == *name)?,
                },
            })
        }))
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const REGISTRY: &str = "contexts:\n  - {name: dev-a, region: r1, env: dev, cloud: gcp, clusterName: a}\n";

    /// A submit of chart `app` (its files given) to context `dev-a`, as the CLI sends it.
    fn submit(files: &[(&str, &str)]) -> SubmitInputs {
        let dir = tempfile::tempdir().expect("temp dir");
        let chart = dir.path().join("app");
        let mut all = vec![("Chart.yaml", "apiVersion: v2\nname: app\nversion: 1.0.0\n")];
        all.extend_from_slice(files);
        for (name, content) in all {
            let path = chart.join(name);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(path, content).expect("write");
        }
        SubmitInputs {
            release_yaml: concat!(
                "apiVersion: convoy.dev/v1\nkind: Release\nmetadata: {name: app.ns1, namespace: ns1}\n",
                "spec: {chart: {path: ./app}, contexts: [dev-a]}\n",
            )
            .into(),
            source_name: "app.yaml".into(),
            values_files: Vec::new(),
            chart_archive: convoy_chart::package_dir(&chart).expect("chart packs"),
            chart_digest: String::new(),
            chart_origin: String::new(),
            values_from: Vec::new(),
            allow_mass_deletion: false,
        }
    }

    async fn prepare(inputs: &SubmitInputs) -> Result<Prepared, PrepareError> {
        let registry = Registry::parse(REGISTRY, "contexts.yaml").expect("registry");
        Pipeline::new(registry, SecretSource::None)
            .run(inputs, None, &crate::capabilities::HelmDefaults)
            .await
    }

    /// A template error quoting a secret (`fail`, also transformed) is masked; a short
    /// secret only where it stands whole between quotes.
    #[tokio::test]
    async fn render_errors_are_masked() {
        let mut inputs = submit(&[(
            "templates/cm.yaml",
            "{{ fail (printf \"bad %s / %s / %q / %s\" .Values.secrets.db (.Values.secrets.db | upper) .Values.secrets.pin (.Values.secrets.db | b64enc)) }}\n",
        )]);
        inputs.release_yaml = concat!(
            "apiVersion: convoy.dev/v1\nkind: Release\nmetadata: {name: app.ns1, namespace: ns1}\n",
            "spec:\n  chart: {path: ./app}\n  contexts: [dev-a]\n  secrets:\n",
            "    - {secret_id: db, contexts: [{name: default, vaultPath: /kv/db, vaultKey: pw}]}\n",
            "    - {secret_id: pin, contexts: [{name: default, vaultPath: /kv/pin, vaultKey: pw}]}\n",
        )
        .into();
        let secrets = BTreeMap::from([
            ("/kv/db#pw".to_string(), "hunter22-canary".to_string()),
            ("/kv/pin#pw".to_string(), "1234".to_string()),
        ]);
        let registry = Registry::parse(REGISTRY, "contexts.yaml").expect("registry");
        let err = Pipeline::new(registry, SecretSource::DevFile(secrets))
            .run(&inputs, None, &crate::capabilities::HelmDefaults)
            .await
            .expect_err("fail fails");
        let msg = err.to_string();
        assert!(
            msg.contains("bad <masked> / <masked> / \"<masked>\" / <masked>"),
            "{msg}"
        );
        assert!(
            !msg.contains("hunter22") && !msg.contains("HUNTER22") && !msg.contains("1234"),
            "{msg}"
        );
    }

    /// What Helm sends for `defaultMode: 0644` is 420 and for `hostNetwork: yes` is `true`;
    /// read as YAML 1.2 (the agent's parser) they would be 644 (refused by the API server)
    /// and the string "yes". The shipped manifest is the JSON, read the same either way.
    #[tokio::test]
    async fn shipped_manifests_are_the_json_helm_would_send() {
        let deployment = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  labels: {mode: \"0644\"}\n\
                          spec:\n  replicas: 1_0\n  template:\n    spec:\n      hostNetwork: yes\n\
                          \x20     volumes:\n        - name: cfg\n          configMap: {name: cfg, defaultMode: 0644}\n";
        let crds = "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: a.example.com}\n\
                    ---\n# nothing\n---\napiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: b.example.com}\n";
        let hook = "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: migrate\n  annotations: {helm.sh/hook: pre-upgrade}\nspec: {backoffLimit: 0x2}\n";
        let inputs = submit(&[
            ("templates/deployment.yaml", deployment),
            ("templates/hook.yaml", hook),
            ("crds/two.yaml", crds),
        ]);
        let prepared = prepare(&inputs).await.expect("prepares");
        let shipped = &prepared.manifests["dev-a"];
        let sources: Vec<&str> = shipped.iter().map(|m| m.source.as_str()).collect();
        assert_eq!(
            sources,
            [
                "app/crds/two.yaml",
                "app/crds/two.yaml",
                "app/templates/deployment.yaml"
            ],
            "a crds/ file of two objects ships as two, each keeping its source"
        );
        let objects: Vec<Value> = shipped
            .iter()
            .map(|m| serde_json::from_str(&m.content).expect("shipped content is JSON"))
            .collect();
        assert_eq!(objects[0]["metadata"]["name"], "a.example.com");
        assert_eq!(objects[1]["metadata"]["name"], "b.example.com");
        let web = &objects[2];
        assert_eq!(
            web["spec"]["template"]["spec"]["volumes"][0]["configMap"]["defaultMode"],
            serde_json::json!(420)
        );
        assert_eq!(web["spec"]["template"]["spec"]["hostNetwork"], Value::Bool(true));
        assert_eq!(web["spec"]["replicas"], serde_json::json!(10));
        assert_eq!(web["metadata"]["labels"]["mode"], "0644", "quoted stays a string");
        let hooks = &prepared.hooks["dev-a"];
        assert_eq!(hooks.len(), 1);
        assert_eq!(hooks[0].source, "app/templates/hook.yaml");
        let job: Value = serde_json::from_str(&hooks[0].content).expect("hooks ship as JSON too");
        assert_eq!(job["spec"]["backoffLimit"], serde_json::json!(2));
        // The agent's YAML 1.2 reader sees the same integer.
        let as_agent_reads: serde_yaml::Value = serde_yaml::from_str(&shipped[2].content).expect("YAML");
        assert_eq!(
            as_agent_reads["spec"]["template"]["spec"]["volumes"][0]["configMap"]["defaultMode"].as_u64(),
            Some(420)
        );
    }

    /// Contexts whose renders wrote the same objects ship one shared list (converted once);
    /// a context whose render differs (here its region) gets its own, with its own values.
    #[tokio::test]
    async fn identical_renders_share_one_list_and_different_ones_do_not() {
        const THREE: &str = "contexts:\n  - {name: dev-a, region: r1, env: dev, cloud: gcp, clusterName: a}\n  - {name: dev-b, region: r1, env: dev, cloud: gcp, clusterName: b}\n  - {name: dev-c, region: r2, env: dev, cloud: gcp, clusterName: c}\n";
        let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {region: {{ .Values.global.region | quote }}}\n";
        let hook = "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: migrate\n  annotations: {helm.sh/hook: pre-upgrade}\nspec: {backoffLimit: 1}\n";
        let base = submit(&[("templates/cm.yaml", cm), ("templates/hook.yaml", hook)]);
        let registry = Registry::parse(THREE, "contexts.yaml").expect("registry");
        let prepared = Pipeline::new(registry, SecretSource::None)
            .run(
                &with_contexts(&base, "dev-a, dev-b, dev-c", ""),
                None,
                &crate::capabilities::HelmDefaults,
            )
            .await
            .expect("prepares");
        let m = &prepared.manifests;
        assert!(Arc::ptr_eq(&m["dev-a"], &m["dev-b"]), "same render, one list");
        assert!(Arc::ptr_eq(&prepared.hooks["dev-a"], &prepared.hooks["dev-b"]));
        assert!(!Arc::ptr_eq(&m["dev-a"], &m["dev-c"]));
        let region = |ctx: &str| -> Value {
            let o: Value = serde_json::from_str(&m[ctx][0].content).expect("JSON");
            o["data"]["region"].clone()
        };
        assert_eq!(
            (region("dev-a"), region("dev-b"), region("dev-c")),
            ("r1".into(), "r1".into(), "r2".into())
        );
        assert_eq!(
            prepared.hooks["dev-c"].len(),
            1,
            "the hook is shipped to each context"
        );
    }

    /// A PodDisruptionBudget at policy/v1 where the cluster serves it, else v1beta1, and
    /// what the render saw.
    const PDB: &str = "{{- if .Capabilities.APIVersions.Has \"policy/v1\" }}\napiVersion: policy/v1\n{{- else }}\napiVersion: policy/v1beta1\n{{- end }}\nkind: PodDisruptionBudget\nmetadata: {name: web}\nspec: {minAvailable: 1, selector: {matchLabels: {app: web}}}\n";
    const SEEN: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: seen}\ndata:\n  kube: {{ .Capabilities.KubeVersion.Version | quote }}\n  install: {{ .Release.IsInstall | quote }}\n  upgrade: {{ .Release.IsUpgrade | quote }}\n  revision: {{ .Release.Revision | quote }}\n  pdbKind: {{ .Capabilities.APIVersions.Has \"policy/v1beta1/PodDisruptionBudget\" | quote }}\n";

    fn object(prepared: &Prepared, kind: &str) -> Value {
        prepared.manifests["dev-a"]
            .iter()
            .map(|m| serde_json::from_str::<Value>(&m.content).expect("JSON"))
            .find(|o| o["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind}"))
    }

    /// A context renders with its cluster's capabilities (exactly its list, not Helm's
    /// defaults plus it) and the release's history there; without them, with Helm's
    /// defaults as a first install, which picks an API a 1.20 cluster does not serve.
    #[tokio::test]
    async fn each_context_renders_with_its_cluster_and_history() {
        use crate::capabilities::{ClusterCapabilities, HelmDefaults};
        let inputs = submit(&[("templates/pdb.yaml", PDB), ("templates/seen.yaml", SEEN)]);
        let registry = Registry::parse(REGISTRY, "contexts.yaml").expect("registry");
        let pipeline = Pipeline::new(registry, SecretSource::None);

        let defaults = pipeline
            .run(&inputs, None, &HelmDefaults)
            .await
            .expect("prepares");
        assert_eq!(
            object(&defaults, "PodDisruptionBudget")["apiVersion"],
            "policy/v1"
        );
        let seen = object(&defaults, "ConfigMap");
        assert_eq!(
            (
                &seen["data"]["kube"],
                &seen["data"]["install"],
                &seen["data"]["revision"]
            ),
            (&json!("v1.20.0"), &json!("true"), &json!("1"))
        );
        assert_eq!(seen["data"]["pdbKind"], "false", "Helm's defaults list no kinds");
        assert!(defaults.facts["dev-a"].capabilities.is_none());

        let cluster = ClusterCapabilities::new(
            "v1.20.2",
            [
                "v1",
                "v1/ConfigMap",
                "policy/v1beta1",
                "policy/v1beta1/PodDisruptionBudget",
            ]
            .map(String::from),
        )
        .expect("capabilities");
        let facts = BTreeMap::from([(
            "dev-a".to_string(),
            RenderFacts::of_revision(3, true, Some(std::sync::Arc::new(cluster))),
        )]);
        let prepared = pipeline.run(&inputs, None, &facts).await.expect("prepares");
        assert_eq!(
            object(&prepared, "PodDisruptionBudget")["apiVersion"],
            "policy/v1beta1"
        );
        let seen = object(&prepared, "ConfigMap");
        assert_eq!(
            (
                &seen["data"]["kube"],
                &seen["data"]["install"],
                &seen["data"]["upgrade"],
                &seen["data"]["revision"]
            ),
            (&json!("v1.20.2"), &json!("false"), &json!("true"), &json!("3"))
        );
        assert_eq!(seen["data"]["pdbKind"], "true");
        assert_eq!(prepared.facts, facts, "the facts used travel with the render");
    }

    #[test]
    fn secret_paths_fill_in_env_and_namespace_and_match_on_segments() {
        let p: SecretPaths = serde_yaml::from_str(
            "default: ['/kv/{env}/{namespace}/']\nenvironments: {prod: ['kv/prod/{namespace}', 'kv/shared-prod/']}\n",
        )
        .unwrap();
        p.validate().unwrap();
        let dev = p.allowed("dev", "shop");
        assert_eq!(dev, ["kv/dev/shop/"]);
        assert!(SecretPaths::admits(&dev, "/kv/dev/shop/db"));
        assert!(SecretPaths::admits(&dev, "kv/dev/shop/a/b"));
        assert!(!SecretPaths::admits(&dev, "/kv/dev/shopping/db"));
        assert!(!SecretPaths::admits(&dev, "/kv/prod/shop/db"));
        let prod = p.allowed("prod", "shop");
        assert!(SecretPaths::admits(&prod, "/kv/prod/shop/db"));
        assert!(!SecretPaths::admits(&prod, "/kv/prod/shopx/db"));
        assert!(SecretPaths::admits(&prod, "/kv/shared-prod/tls"));
        assert!(!SecretPaths::admits(&prod, "/kv/dev/shop/db"));
        let none = SecretPaths::default();
        assert!(!SecretPaths::admits(
            &none.allowed("dev", "shop"),
            "/kv/dev/shop/db"
        ));
        for bad in [
            "default: ['']",
            "default: ['kv/{team}/']",
            "environments: {prod: ['/']}",
        ] {
            let p: SecretPaths = serde_yaml::from_str(bad).unwrap();
            assert!(p.validate().is_err(), "{bad}");
        }
    }

    const TWO_ENVS: &str = "contexts:\n  - {name: dev-a, region: r1, env: dev, cloud: gcp, clusterName: a}\n  - {name: prod-a, region: r1, env: prod, cloud: gcp, clusterName: p}\n";

    fn with_contexts(inputs: &SubmitInputs, contexts: &str, extra: &str) -> SubmitInputs {
        SubmitInputs {
            release_yaml: format!(
                "apiVersion: convoy.dev/v1\nkind: Release\nmetadata: {{name: app.ns1, namespace: ns1}}\n\
                 spec: {{chart: {{path: ./app}}, contexts: [{contexts}]{extra}}}\n"
            ),
            ..inputs.clone()
        }
    }

    #[tokio::test]
    async fn the_environment_comes_from_the_registry_and_may_not_span() {
        let registry = Registry::parse(TWO_ENVS, "contexts.yaml").expect("registry");
        let pipeline = Pipeline::new(registry, SecretSource::None);
        let base = submit(&[]);
        let preview = pipeline.preview(&with_contexts(&base, "prod-a", "")).unwrap();
        assert_eq!(
            preview.meta.environment, "prod",
            "no metadata.environment: the registry's"
        );
        assert_eq!(preview.contexts, ["prod-a"]);
        let err = pipeline
            .preview(&with_contexts(&base, "dev-a, prod-a", ""))
            .unwrap_err();
        assert!(
            matches!(&err, PrepareError::Invalid(m) if m.contains("more than one environment: dev (dev-a) and prod (prod-a)")),
            "{err}"
        );
        let err = pipeline
            .run(
                &with_contexts(&base, "dev-a, prod-a", ""),
                None,
                &crate::capabilities::HelmDefaults,
            )
            .await
            .unwrap_err();
        assert!(matches!(err, PrepareError::Invalid(_)), "{err}");
        let adopt = pipeline
            .preview(&with_contexts(&base, "dev-a", ", options: {adopt: true}"))
            .unwrap();
        assert!(adopt.options.adopt && !adopt.options.force_conflicts);
    }

    #[tokio::test]
    async fn a_secret_path_outside_the_allowed_prefixes_is_refused_before_any_read() {
        let registry = Registry::parse(TWO_ENVS, "contexts.yaml").expect("registry");
        let paths: SecretPaths = serde_yaml::from_str("default: ['kv/{env}/{namespace}/']").unwrap();
        // An empty development secrets file: a read would fail with "not in the file".
        let pipeline =
            Pipeline::new(registry, SecretSource::DevFile(BTreeMap::new())).with_secret_paths(Some(paths));
        let secret = |path: &str| {
            format!(
                ", secrets: [{{secret_id: db, contexts: [{{name: default, vaultPath: {path}, vaultKey: k}}]}}]"
            )
        };
        let base = submit(&[]);
        let err = pipeline
            .run(
                &with_contexts(&base, "dev-a", &secret("/kv/prod/ns1/db")),
                None,
                &crate::capabilities::HelmDefaults,
            )
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "permission denied: release app.ns1: secret \"db\" for context dev-a names Vault path /kv/prod/ns1/db, outside what environment dev and namespace ns1 may read: [kv/dev/ns1/]"
        );
        let err = pipeline
            .run(
                &with_contexts(&base, "dev-a", &secret("/kv/dev/ns1/db")),
                None,
                &crate::capabilities::HelmDefaults,
            )
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("not in the development secrets file"),
            "allowed, so read: {err}"
        );
    }

    #[tokio::test]
    async fn a_document_json_cannot_hold_fails_the_submit_naming_its_template() {
        let bad = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\nspec:\n  weight: .inf\n";
        let inputs = submit(&[("templates/bad.yaml", bad)]);
        match prepare(&inputs).await {
            Err(PrepareError::Render(message)) => {
                assert!(
                    message.starts_with("app/templates/bad.yaml: rendered for context dev-a: ")
                        && message.contains("line 5")
                        && message.contains("unsupported value: +Inf"),
                    "{message}"
                );
            }
            Err(other) => panic!("expected a render error, got {other}"),
            Ok(_) => panic!("`.inf` has no JSON form; the submit must fail"),
        }
    }
}

//! The release file as typed data. `README.md` in this crate is the reference for
//! every field; positions are kept where semantic checks need to point back at the file.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use crate::yaml::Pos;

/// The API version and kind every release file declares.
pub const API_VERSION: &str = "convoy.dev/v1";
pub const KIND: &str = "Release";

/// A value with the position it was read from.
#[derive(Debug, Clone, PartialEq)]
pub struct Spanned<T> {
    pub value: T,
    pub pos: Pos,
}

/// One release: one app in one namespace, deployed to many contexts.
#[derive(Debug, Clone, PartialEq)]
pub struct Release {
    /// The file name used in messages (`configs/releases/app1.yaml`).
    pub source: String,
    /// The directory relative paths (chart, values files) are resolved against; `None`
    /// for a release that did not come from a file.
    pub base_dir: Option<PathBuf>,
    pub metadata: Metadata,
    pub spec: Spec,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Metadata {
    /// `app.namespace`, unique across the fleet.
    pub name: String,
    /// The part before the first dot: the Helm release name the chart sees as `.Release.Name`.
    pub app: String,
    /// The Kubernetes namespace; defaults to the part after the first dot of `name`.
    pub namespace: String,
    /// When set, every target context's `env` must equal it (a dev release cannot reach prod).
    pub environment: Option<String>,
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    pub chart: ChartRef,
    /// Inline values, over the chart's defaults.
    pub values: Value,
    /// Values files, applied in order after `values`.
    pub values_files: Vec<ValuesFile>,
    /// `spec.valuesFrom`: values files in git repositories, merged after `valuesFiles`.
    /// Their values are `None` until fetched (the coordinator fetches them at submit).
    pub values_from: Vec<ValuesFrom>,
    /// Values for single contexts, over the release-wide values.
    pub context_values: Vec<ContextValues>,
    /// The target contexts, in the order given.
    pub contexts: Vec<Spanned<String>>,
    pub scaling: Vec<Scaling>,
    pub secrets: Vec<SecretSpec>,
    pub strategy: Strategy,
    pub health: Health,
    pub options: Options,
}

/// Where the chart comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum ChartRef {
    /// A chart directory or `.tgz`, relative to the release file's directory.
    Path { path: String, pos: Pos },
    /// A chart in an HTTP chart repository.
    Repo {
        repo: String,
        name: String,
        version: String,
        pos: Pos,
    },
    /// A chart in an OCI registry (Helm's layout), by tag or manifest digest. With both,
    /// the digest decides and the tag is only shown.
    Oci {
        /// `oci://REGISTRY/PATH/NAME`, without tag or digest.
        oci: String,
        version: Option<String>,
        /// `sha256:<hex>` of the manifest.
        digest: Option<String>,
        pos: Pos,
    },
    /// A chart directory in a git repository at a tag, branch or commit.
    Git {
        /// The repository URL (`https://`, `http://`, `git://`, `file://`).
        git: String,
        /// A tag, a branch or a full commit id.
        reference: String,
        /// The chart directory inside the repository (`charts/app1`).
        path: String,
        pos: Pos,
    },
}

/// `spec.valuesFrom[]`: a values file in a git repository at a tag, branch or commit.
#[derive(Debug, Clone, PartialEq)]
pub struct ValuesFrom {
    pub git: String,
    /// A tag, a branch or a full commit id.
    pub reference: String,
    /// The file's path in the repository.
    pub path: String,
    pub pos: Pos,
    /// The file's values once fetched ([`Release::attach_values_from`]).
    pub values: Option<serde_json::Value>,
}

/// A values file named in `spec.valuesFiles`, with its content.
#[derive(Debug, Clone, PartialEq)]
pub struct ValuesFile {
    pub path: String,
    pub pos: Pos,
    pub values: Value,
}

/// `spec.contextValues.<context>`.
#[derive(Debug, Clone, PartialEq)]
pub struct ContextValues {
    pub context: String,
    pub pos: Pos,
    pub values: Value,
}

/// `spec.scaling[]`: replica counts for one context.
#[derive(Debug, Clone, PartialEq)]
pub struct Scaling {
    pub context: String,
    pub pos: Pos,
    pub replicas: Vec<Replicas>,
}

/// Sets `spec.replicas` of the Deployment or StatefulSet called `name`.
#[derive(Debug, Clone, PartialEq)]
pub struct Replicas {
    pub name: String,
    pub count: u32,
    pub pos: Pos,
}

/// `spec.secrets[]`: where one secret comes from, per context.
#[derive(Debug, Clone, PartialEq)]
pub struct SecretSpec {
    /// The key the chart reads: `.Values.secrets.<secret_id>`.
    pub secret_id: String,
    pub pos: Pos,
    pub sources: Vec<SecretSource>,
}

/// Where one context (or every context without its own entry: `default`) reads a secret.
#[derive(Debug, Clone, PartialEq)]
pub struct SecretSource {
    /// A context name or [`DEFAULT_CONTEXT`].
    pub context: String,
    pub vault_path: String,
    pub vault_key: String,
    pub pos: Pos,
}

/// The secret source name that applies to every context without its own entry.
pub const DEFAULT_CONTEXT: &str = "default";

/// How contexts are rolled out.
#[derive(Debug, Clone, PartialEq)]
pub struct Strategy {
    pub order: Order,
    /// Most contexts updating at once within a wave; `None` means all of the wave.
    pub max_concurrency: Option<u32>,
    pub max_failures: MaxFailures,
    /// Where `maxFailures` was written, if it was (for the check against the target count).
    pub max_failures_pos: Option<Pos>,
    pub on_failure: OnFailure,
    /// How long a finished wave must stay healthy before the next one starts.
    pub soak: Duration,
    /// How long an agent may stay disconnected during a rollout before its context counts as failed.
    pub offline_agent_deadline: Duration,
    /// Waves that start only once an operator approves them (`convoy approve`).
    pub approval: Option<Approval>,
    /// Checks that must pass before some waves start (`spec.strategy.gates`), in order.
    pub gates: Vec<Gate>,
    /// How each cluster takes the revision (`spec.strategy.inCluster`): a rolling
    /// update of the release's workloads when absent.
    pub in_cluster: Option<InCluster>,
}

/// `spec.strategy.inCluster`: how the revision is rolled out inside each cluster.
#[derive(Debug, Clone, PartialEq)]
pub enum InCluster {
    /// `canary: {steps: [...]}`: a canary of each Deployment runs beside the primary,
    /// through the steps, then the primary is upgraded and the canary removed.
    Canary(CanaryStrategy),
    /// `blueGreen: {...}`: the revision is deployed into the idle slot beside the live
    /// one, through the steps, then the Services are switched to it.
    BlueGreen(BlueGreenStrategy),
}

impl InCluster {
    /// The steps: a canary's, or those a blue/green runs between staging and switching.
    pub fn steps(&self) -> &[CanaryStep] {
        match self {
            InCluster::Canary(c) => &c.steps,
            InCluster::BlueGreen(b) => &b.steps,
        }
    }
}

/// `spec.strategy.inCluster.blueGreen`.
#[derive(Debug, Clone, PartialEq)]
pub struct BlueGreenStrategy {
    /// `previewService`: a `<service>-preview` selecting the new slot, for tests.
    pub preview_service: bool,
    /// `keepPreviousFor`: how long the previous slot stays up after the switch, so
    /// that a rollback is a selector switch; then it is deleted.
    pub keep_previous_for: Duration,
    /// Steps between staging the new slot and switching to it: `pause`, `approval`,
    /// `gate` (no `setWeight`).
    pub steps: Vec<CanaryStep>,
    pub pos: Pos,
}

/// `spec.strategy.inCluster.canary`.
#[derive(Debug, Clone, PartialEq)]
pub struct CanaryStrategy {
    pub steps: Vec<CanaryStep>,
    pub pos: Pos,
}

/// One step of an in-cluster canary. The steps run in step across a wave: every
/// context of the wave finishes one before the next starts.
#[derive(Debug, Clone, PartialEq)]
pub enum CanaryStep {
    /// `setWeight: 10`: the canary holds about this percentage of the pods (1 to 99).
    SetWeight(u32),
    /// `pause: 2m`: wait.
    Pause(Duration),
    /// `approval: {}` or `approval: {deadline: 30m}`: wait for `convoy approve RELEASE
    /// --wave N` (or a refusal), until the deadline (default: `approval.deadline`, else
    /// an hour); unanswered, the step fails and `onFailure` applies.
    Approval(Option<Duration>),
    /// `gate: error-rate`: run the named `spec.strategy.gates` entry against the
    /// wave's contexts (per context when its query names a context's facts).
    Gate { name: String, pos: Pos },
}

impl CanaryStep {
    /// As written in the release: `setWeight 10`, `pause 2m`, `gate error-rate`.
    pub fn describe(&self) -> String {
        match self {
            CanaryStep::SetWeight(w) => format!("setWeight {w}"),
            CanaryStep::Pause(d) => format!("pause {}", crate::duration::format_duration(*d)),
            CanaryStep::Approval(None) => "approval".into(),
            CanaryStep::Approval(Some(d)) => {
                format!("approval within {}", crate::duration::format_duration(*d))
            }
            CanaryStep::Gate { name, .. } => format!("gate {name}"),
        }
    }
}

/// `spec.strategy.gates[i]`: an automatic check run once the waves before a gated wave
/// settled (and soaked), before that wave starts. A failed gate follows `onFailure`.
#[derive(Debug, Clone, PartialEq)]
pub struct Gate {
    /// Names the gate in status, history and errors.
    pub name: String,
    /// The gated waves, 1-based (2 and up); empty for a gate only named by canary steps.
    pub before_waves: Vec<u32>,
    pub check: GateCheck,
    pub pos: Pos,
}

/// What a gate checks.
#[derive(Debug, Clone, PartialEq)]
pub enum GateCheck {
    /// Measurements of a PromQL query against a Prometheus the coordinator knows.
    Analysis(Analysis),
    /// A call to a webhook the coordinator knows, which must answer 2xx.
    Webhook(WebhookGate),
}

/// `analysis:` — `count` measurements, `interval` apart, of `query` (per context when it
/// names a context's facts, such as `{{region}}`), each judged by `successCondition`.
#[derive(Debug, Clone, PartialEq)]
pub struct Analysis {
    /// A `gates.prometheus[].name` of the coordinator's config.
    pub provider: String,
    pub query: String,
    pub interval: Duration,
    pub count: u32,
    pub success: Condition,
    /// When given, a value meeting neither condition is inconclusive (not failed).
    pub failure: Option<Condition>,
    /// Failed measurements tolerated; one more fails the gate.
    pub failure_limit: u32,
    /// Measurements without an answer (no series, NaN, Prometheus unreachable)
    /// tolerated; one more makes the gate inconclusive: it waits for an operator.
    pub inconclusive_limit: u32,
}

/// `webhook:` — one call (retried on timeouts, connection errors and 5xx).
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookGate {
    /// A `gates.webhooks[].name` of the coordinator's config.
    pub name: String,
    pub timeout: Duration,
    pub retries: u32,
}

/// A condition on a measurement: `result < 0.05`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Condition {
    pub op: CmpOp,
    pub threshold: f64,
}

/// A comparison operator of a [`Condition`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl CmpOp {
    pub fn symbol(self) -> &'static str {
        match self {
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
        }
    }
}

impl Condition {
    /// Parses `result OP NUMBER`.
    pub fn parse(text: &str) -> std::result::Result<Condition, String> {
        let expected =
            "expected `result OP NUMBER` with OP one of <, <=, >, >=, ==, != (such as `result < 0.05`)";
        let rest = text
            .trim()
            .strip_prefix("result")
            .ok_or_else(|| format!("{text:?}: {expected}"))?
            .trim_start();
        let (op, number) = [
            ("<=", CmpOp::Le),
            (">=", CmpOp::Ge),
            ("==", CmpOp::Eq),
            ("!=", CmpOp::Ne),
            ("<", CmpOp::Lt),
            (">", CmpOp::Gt),
        ]
        .iter()
        .find_map(|(sym, op)| rest.strip_prefix(sym).map(|n| (*op, n.trim())))
        .ok_or_else(|| format!("{text:?}: {expected}"))?;
        let threshold: f64 = number
            .parse()
            .ok()
            .filter(|n: &f64| n.is_finite())
            .ok_or_else(|| format!("{text:?}: {number:?} is not a number; {expected}"))?;
        Ok(Condition { op, threshold })
    }

    /// Whether `value` meets the condition (NaN never does).
    pub fn holds(&self, value: f64) -> bool {
        match self.op {
            CmpOp::Lt => value < self.threshold,
            CmpOp::Le => value <= self.threshold,
            CmpOp::Gt => value > self.threshold,
            CmpOp::Ge => value >= self.threshold,
            CmpOp::Eq => value == self.threshold,
            CmpOp::Ne => !value.is_nan() && value != self.threshold,
        }
    }
}

impl std::fmt::Display for Condition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "result {} {}", self.op.symbol(), self.threshold)
    }
}

/// The facts of a context a gate's query may name, as `{{name}}`.
pub const GATE_QUERY_FACTS: &[&str] = &[
    "context",
    "region",
    "env",
    "cloud",
    "cluster",
    "release",
    "namespace",
];

/// The `{{name}}` placeholders of `query`, in order; an unclosed `{{` is an error.
pub fn query_placeholders(query: &str) -> std::result::Result<Vec<&str>, String> {
    let mut out = Vec::new();
    let mut rest = query;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| "a `{{` without its `}}`".to_string())?;
        out.push(after[..end].trim());
        rest = &after[end + 2..];
    }
    Ok(out)
}

/// `spec.strategy.approval`: a manual gate before some waves.
#[derive(Debug, Clone, PartialEq)]
pub struct Approval {
    /// The gated waves, 1-based (2 and up: the first wave starts with the submit).
    pub before_waves: Vec<u32>,
    /// How long a gate waits; nobody answering fails it (then `onFailure` applies).
    pub deadline: Duration,
    pub pos: Pos,
}

/// The order of contexts.
#[derive(Debug, Clone, PartialEq)]
pub enum Order {
    /// One wave holding every target.
    AllAtOnce,
    /// Explicit waves, each covering targets; together they cover every target once.
    Waves(Vec<Vec<Spanned<String>>>),
    /// These contexts first, then, after the soak, all the others.
    Canary(Vec<Spanned<String>>),
}

/// How many failed contexts the rollout tolerates before `onFailure` applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxFailures {
    Count(u32),
    /// A percentage (0 to 100) of the target contexts, rounded down.
    Percent(u32),
}

impl MaxFailures {
    /// The failures tolerated out of `targets` contexts.
    pub fn allowed(self, targets: usize) -> usize {
        match self {
            MaxFailures::Count(n) => usize::try_from(n).unwrap_or(usize::MAX),
            MaxFailures::Percent(p) => targets.saturating_mul(p as usize) / 100,
        }
    }
}

/// What happens when failures exceed `maxFailures`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFailure {
    /// Roll every updated context back to its previous revision.
    Rollback,
    /// Stop where it is and wait for `convoy resume` or `convoy rollback`.
    Pause,
    /// Carry on with the remaining contexts; the release ends failed.
    Continue,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Health {
    /// How long a context may take to become healthy.
    pub progress_deadline: Duration,
    /// How long the healthy state must hold, without restarts, to count.
    pub min_ready_window: Duration,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Options {
    /// Roll pods even when nothing in their template changed (a checksum annotation).
    pub force_roll: bool,
    /// Take over objects that exist in a cluster but were not created by convoy.
    pub adopt: bool,
    /// Server-side apply with `force`: take fields owned by other field managers.
    pub force_conflicts: bool,
    /// Let a revision prune more than the agent's share of the release's objects
    /// (default 50 %), or all of them (an empty render). Off: such a revision is
    /// refused before anything changes.
    pub allow_mass_deletion: bool,
}

impl Release {
    /// The target context names, in order.
    pub fn targets(&self) -> impl Iterator<Item = &str> {
        self.spec.contexts.iter().map(|c| c.value.as_str())
    }

    /// The waves the rollout goes through, resolved from the strategy.
    pub fn waves(&self) -> Vec<Vec<String>> {
        match &self.spec.strategy.order {
            Order::AllAtOnce => vec![self.targets().map(str::to_string).collect()],
            Order::Waves(waves) => waves
                .iter()
                .map(|w| w.iter().map(|c| c.value.clone()).collect())
                .collect(),
            Order::Canary(canary) => {
                let first: Vec<String> = canary.iter().map(|c| c.value.clone()).collect();
                let rest: Vec<String> = self
                    .targets()
                    .filter(|t| !first.iter().any(|c| c == t))
                    .map(str::to_string)
                    .collect();
                [first, rest].into_iter().filter(|w| !w.is_empty()).collect()
            }
        }
    }

    /// The chart directory or archive for a `path` chart, resolved against the release file.
    pub fn chart_path(&self) -> Option<PathBuf> {
        match &self.spec.chart {
            ChartRef::Path { path, .. } => Some(match &self.base_dir {
                Some(dir) => dir.join(path),
                None => PathBuf::from(path),
            }),
            ChartRef::Repo { .. } | ChartRef::Oci { .. } | ChartRef::Git { .. } => None,
        }
    }
}

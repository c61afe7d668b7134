//! The coordinator's domain types: operations, per-context states, rollout plans and
//! revision records. No gRPC or kube types here; `api` translates to `convoy.v1`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch. Plain numbers keep the state machine free of
/// clocks: callers pass `now` in, tests pick it.
pub type Millis = u64;

/// The current wall-clock time in [`Millis`].
pub fn now_millis() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// What an operation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OperationKind {
    /// Roll out a newly submitted revision.
    Deploy,
    /// Re-apply an earlier revision from the clusters' own history.
    Rollback,
}

/// Where an operation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OperationPhase {
    Queued,
    /// Server-side dry run in every target context before anything changes.
    Preflight,
    Running,
    Paused,
    /// A deploy failed beyond maxFailures; every context that received it goes back.
    RollingBack,
    Succeeded,
    Failed,
    Aborted,
    Cancelled,
}

impl OperationPhase {
    /// No further transitions.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            OperationPhase::Succeeded
                | OperationPhase::Failed
                | OperationPhase::Aborted
                | OperationPhase::Cancelled
        )
    }
}

/// Where one context stands within an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ContextPhase {
    Pending,
    WaitingForAgent,
    Dispatched,
    Applying,
    Progressing,
    Healthy,
    Failed,
    RollingBack,
    RolledBack,
    Skipped,
}

impl ContextPhase {
    /// The context's part of the rollout (or its rollback) is over.
    pub fn is_settled(self) -> bool {
        matches!(
            self,
            ContextPhase::Healthy | ContextPhase::Failed | ContextPhase::RolledBack | ContextPhase::Skipped
        )
    }

    /// The agent is working on it now.
    pub fn is_in_flight(self) -> bool {
        matches!(
            self,
            ContextPhase::Dispatched
                | ContextPhase::Applying
                | ContextPhase::Progressing
                | ContextPhase::RollingBack
        )
    }
}

/// A failure budget: how many contexts may fail before the operation fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FailureBudget {
    Count(u32),
    /// Percent of the target contexts, rounded down.
    Percent(u32),
}

impl FailureBudget {
    /// How many failures are tolerated out of `targets`.
    pub fn allowed(self, targets: usize) -> usize {
        match self {
            FailureBudget::Count(n) => n as usize,
            FailureBudget::Percent(p) => targets * p.min(100) as usize / 100,
        }
    }
}

/// What to do when failures exceed the budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OnFailure {
    /// Roll every context that received the revision back to its previous revision.
    Rollback,
    /// Stop dispatching and wait for an operator.
    Pause,
    /// Keep going; the operation ends Failed.
    Continue,
}

/// How a revision is rolled out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// Contexts in waves; a wave starts when the previous one is settled and soaked.
    /// A canary strategy is a first wave of the canary contexts; all-at-once is one wave.
    pub waves: Vec<Vec<String>>,
    /// At most this many contexts in flight at once (0 = unlimited).
    pub max_concurrency: usize,
    pub max_failures: FailureBudget,
    pub on_failure: OnFailure,
    /// Wait between a settled wave and the next.
    #[serde(with = "duration_ms")]
    pub soak: Duration,
    /// A context whose agent is not connected waits this long, then counts as failed.
    #[serde(with = "duration_ms")]
    pub offline_deadline: Duration,
    /// Passed to agents.
    #[serde(with = "duration_ms")]
    pub progress_deadline: Duration,
    #[serde(with = "duration_ms")]
    pub min_ready_window: Duration,
    /// Server-side dry run in every target context before anything is applied.
    pub preflight: bool,
    /// Waves that start only once an operator approves them.
    #[serde(default)]
    pub approval: ApprovalGates,
    /// Automatic checks before some waves (`spec.strategy.gates`), in order.
    #[serde(default)]
    pub gates: Vec<GateSpec>,
    /// The in-cluster canary's steps (`spec.strategy.inCluster.canary`); empty: a
    /// rolling update.
    #[serde(default)]
    pub canary: Vec<CanaryStepSpec>,
    /// A blue/green release (`spec.strategy.inCluster.blueGreen`): `canary` then holds
    /// its steps, the first a `Stage`.
    #[serde(default)]
    pub blue_green: Option<BlueGreenPlan>,
}

/// How a blue/green release is deployed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlueGreenPlan {
    /// A `<service>-preview` selects the new slot.
    pub preview_service: bool,
    /// The previous slot stays up this long after the switch.
    #[serde(with = "duration_ms")]
    pub keep_previous_for: Duration,
}

/// One in-cluster canary step, as the plan keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CanaryStepSpec {
    /// The canary holds about `weight` percent of the pods.
    SetWeight { weight: u32 },
    /// A blue/green's first step: the revision deployed into the idle slot.
    Stage,
    Pause {
        #[serde(with = "duration_ms")]
        duration: Duration,
    },
    /// Waits for an operator (`convoy approve`), until its deadline (in ms; None: the
    /// release's approval deadline).
    Approval {
        #[serde(default)]
        deadline_ms: Option<u64>,
    },
    /// Runs the plan's gate `gate` against the wave's contexts.
    Gate { gate: usize },
}

impl CanaryStepSpec {
    /// `setWeight 10`, `pause 2m`, `approval`, `gate error-rate`.
    pub fn describe(&self, gates: &[GateSpec]) -> String {
        match self {
            CanaryStepSpec::SetWeight { weight } => format!("setWeight {weight}"),
            CanaryStepSpec::Stage => "deploy the new slot".into(),
            CanaryStepSpec::Pause { duration } => {
                format!("pause {}", convoy_release::duration::format_duration(*duration))
            }
            CanaryStepSpec::Approval { deadline_ms: None } => "approval".into(),
            CanaryStepSpec::Approval {
                deadline_ms: Some(ms),
            } => format!(
                "approval within {}",
                convoy_release::duration::format_duration(Duration::from_millis(*ms))
            ),
            CanaryStepSpec::Gate { gate } => {
                format!("gate {}", gates.get(*gate).map_or("?", |g| g.name.as_str()))
            }
        }
    }
}

/// Where a wave's in-cluster canary stands: its steps run in step across the wave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CanaryAt {
    /// The wave, 0-based.
    pub wave: usize,
    /// The step being run, 0-based; the number of steps once promoting.
    pub step: usize,
    /// When the step began (a pause runs from here, an approval's deadline too).
    pub since: Millis,
    /// The step's gate passed or its approval was given: the step is done.
    #[serde(default)]
    pub cleared: bool,
}

/// A context's canary, while one runs there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContextCanary {
    /// The step whose command the context was sent (0-based).
    pub step: usize,
    /// The weight it runs at.
    pub weight: u32,
    /// That command reported healthy.
    pub ready: bool,
}

/// One automatic gate (`spec.strategy.gates[i]`), as the plan keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateSpec {
    pub name: String,
    /// The gated waves, 0-based.
    pub before: Vec<usize>,
    pub check: GateCheckSpec,
}

/// What a gate checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum GateCheckSpec {
    /// `count` measurements of `query`, `interval` apart.
    Analysis {
        provider: String,
        query: String,
        #[serde(with = "duration_ms")]
        interval: Duration,
        count: u32,
        /// `result < 0.05`, as written (checked at submit).
        success: String,
        /// `result >= 0.1`: when given, a value meeting neither is inconclusive.
        #[serde(default)]
        failure: Option<String>,
        failure_limit: u32,
        inconclusive_limit: u32,
    },
    /// One call to a named webhook, retried.
    Webhook {
        name: String,
        #[serde(with = "duration_ms")]
        timeout: Duration,
        retries: u32,
    },
}

impl GateSpec {
    /// How a measurement is judged: (measurements, failures tolerated, inconclusive
    /// tolerated). A webhook is one measurement that must pass.
    pub fn limits(&self) -> (u32, u32, u32) {
        match &self.check {
            GateCheckSpec::Analysis {
                count,
                failure_limit,
                inconclusive_limit,
                ..
            } => (*count, *failure_limit, *inconclusive_limit),
            GateCheckSpec::Webhook { .. } => (1, 0, 0),
        }
    }

    /// `analysis error-rate` / `webhook smoke`.
    pub fn title(&self) -> String {
        match &self.check {
            GateCheckSpec::Analysis { .. } => format!("analysis {}", self.name),
            GateCheckSpec::Webhook { .. } => format!("webhook gate {}", self.name),
        }
    }
}

/// How one measurement of a gate came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Passed,
    Failed,
    /// No answer to judge (no series, NaN, the provider unreachable).
    Inconclusive,
}

/// One measurement of a gate: when, the verdict, and what was seen (the query per
/// context, the value, the condition; or the webhook's answer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Measurement {
    pub at: Millis,
    pub verdict: Verdict,
    pub detail: String,
}

/// A rollout checking a gate before a wave: which, since when, the measurements so far
/// (kept with the operation, so a restarted coordinator resumes at the same one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verifying {
    /// The gated wave, 0-based.
    pub wave: usize,
    /// The gate's index in the plan's gates.
    pub gate: usize,
    pub since: Millis,
    pub measurements: Vec<Measurement>,
    /// A gate of the wave's canary: the step (0-based); the gate then runs against
    /// the wave's own contexts, not the ones before it.
    #[serde(default)]
    pub step: Option<usize>,
}

/// Manual approval gates before waves (`spec.strategy.approval`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalGates {
    /// The gated waves, 0-based.
    pub before: Vec<usize>,
    /// How long a gate waits for an answer (zero: no gate).
    #[serde(with = "duration_ms")]
    pub deadline: Duration,
}

/// A rollout waiting at an approval gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AwaitingApproval {
    /// The wave that starts once approved, 0-based.
    pub wave: usize,
    pub since: Millis,
    /// Waiting because this automatic gate (index in the plan's gates) was
    /// inconclusive: an approval passes it, a refusal fails it.
    #[serde(default)]
    pub gate: Option<usize>,
    /// Waiting at this step of the wave's in-cluster canary (0-based), not before
    /// the wave.
    #[serde(default)]
    pub step: Option<usize>,
}

#[cfg(test)]
impl Plan {
    /// A plan for tests: `waves` of contexts, no failures allowed, rollback on failure, no
    /// soak, 60 s offline and 600 s progress deadlines, a 30 s ready window, no preflight,
    /// gates or in-cluster steps. Tests change what they need with `..Plan::for_tests(..)`.
    pub(crate) fn for_tests(waves: &[&[&str]]) -> Plan {
        Plan {
            waves: waves
                .iter()
                .map(|w| w.iter().map(|s| s.to_string()).collect())
                .collect(),
            max_concurrency: 0,
            max_failures: FailureBudget::Count(0),
            on_failure: OnFailure::Rollback,
            soak: Duration::ZERO,
            offline_deadline: Duration::from_secs(60),
            progress_deadline: Duration::from_secs(600),
            min_ready_window: Duration::from_secs(30),
            preflight: false,
            approval: Default::default(),
            gates: Vec::new(),
            canary: Vec::new(),
            blue_green: None,
        }
    }
}

impl Plan {
    /// Every target context, wave order.
    pub fn contexts(&self) -> impl Iterator<Item = &String> {
        self.waves.iter().flatten()
    }
}

mod duration_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

/// One context's state within an operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContextState {
    pub context: String,
    pub wave: usize,
    pub phase: ContextPhase,
    pub ready: u32,
    pub desired: u32,
    pub message: String,
    /// The revision this context was at before the operation (what a rollback
    /// restores); None when the release was new there.
    pub previous_revision: Option<u64>,
    /// Whether the operation's revision reached this context (applied, even partly):
    /// such a context is rolled back when the operation fails.
    pub received: bool,
    pub dispatched_at: Option<Millis>,
    pub waiting_since: Option<Millis>,
    pub finished_at: Option<Millis>,
    pub updated_at: Millis,
    /// The dry run passed here.
    pub preflight_ok: bool,
    /// The in-cluster canary running here, until promoted or rolled back.
    #[serde(default)]
    pub canary: Option<ContextCanary>,
}

impl ContextState {
    pub fn new(context: &str, wave: usize, previous_revision: Option<u64>, now: Millis) -> Self {
        ContextState {
            context: context.to_string(),
            wave,
            phase: ContextPhase::Pending,
            ready: 0,
            desired: 0,
            message: String::new(),
            previous_revision,
            received: false,
            dispatched_at: None,
            waiting_since: None,
            finished_at: None,
            updated_at: now,
            preflight_ok: false,
            canary: None,
        }
    }
}

/// One operation on a release, as stored and as the orchestrator drives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation {
    pub id: String,
    pub release: String,
    pub kind: OperationKind,
    pub phase: OperationPhase,
    /// The revision this operation records (a rollback records a new revision too).
    pub revision: u64,
    /// For a rollback: the revision whose objects are re-applied.
    pub rollback_to: Option<u64>,
    /// For a failed deploy rolling back: the revision number the rollback records.
    pub rollback_revision: Option<u64>,
    pub plan: Plan,
    pub contexts: BTreeMap<String, ContextState>,
    pub current_wave: usize,
    /// When the current wave settled (soak runs from here).
    pub wave_settled_at: Option<Millis>,
    pub requested_by: String,
    pub reason: String,
    pub created_at: Millis,
    pub started_at: Option<Millis>,
    pub finished_at: Option<Millis>,
    pub message: String,
    /// Set by pause while a step is pending; resume clears it.
    pub paused: bool,
    /// Failures an operator accepted by resuming a paused rollout: not counted again.
    #[serde(default)]
    pub accepted_failures: usize,
    /// Gated waves approved so far (0-based; who approved is in the audit log).
    #[serde(default)]
    pub approved: Vec<usize>,
    /// The gate the rollout waits at, if it does.
    #[serde(default)]
    pub awaiting_approval: Option<AwaitingApproval>,
    /// Why the rollout failed when no context did (a refused or unanswered gate):
    /// kept for the final message once the rollback is done.
    #[serde(default)]
    pub failed_because: Option<String>,
    /// The automatic gate being checked, if one is.
    #[serde(default)]
    pub verifying: Option<Verifying>,
    /// Automatic gates passed so far: (gated wave, gate index), both 0-based.
    #[serde(default)]
    pub passed_gates: Vec<(usize, usize)>,
    /// The automatic gate that failed the rollout, if one did: (gated wave, gate index).
    #[serde(default)]
    pub failed_gate: Option<(usize, usize)>,
    /// The current wave's in-cluster canary, while it runs.
    #[serde(default)]
    pub canary: Option<CanaryAt>,
    /// Running counts of the contexts by phase (derived, never stored).
    #[serde(skip)]
    pub tally: crate::orchestrator::tally::TallyCache,
}

/// Who asked for an operation, why, and when.
#[derive(Debug, Clone, Copy)]
pub struct Requested<'a> {
    pub by: &'a str,
    pub reason: &'a str,
    pub at: Millis,
}

impl Operation {
    /// A queued operation whose contexts are all pending; `deployed` gives each
    /// context's current revision (what a rollback of this operation restores).
    pub fn queued(
        id: String,
        release: String,
        kind: OperationKind,
        revision: u64,
        plan: Plan,
        deployed: &BTreeMap<String, u64>,
        req: Requested<'_>,
    ) -> Self {
        Operation {
            id,
            release,
            kind,
            phase: OperationPhase::Queued,
            revision,
            rollback_to: None,
            rollback_revision: None,
            contexts: crate::orchestrator::initial_contexts(&plan, &|c| deployed.get(c).copied(), req.at),
            plan,
            current_wave: 0,
            wave_settled_at: None,
            requested_by: req.by.to_string(),
            reason: req.reason.to_string(),
            created_at: req.at,
            started_at: None,
            finished_at: None,
            message: String::new(),
            paused: false,
            accepted_failures: 0,
            approved: Vec::new(),
            awaiting_approval: None,
            failed_because: None,
            verifying: None,
            passed_gates: Vec::new(),
            failed_gate: None,
            canary: None,
            tally: Default::default(),
        }
    }
}

/// Which secret version a revision shipped in one context (never the value).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretVersion {
    pub secret_id: String,
    pub context: String,
    pub vault_path: String,
    pub vault_key: String,
    pub version: u64,
}

/// A context's final outcome in a revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContextOutcome {
    pub context: String,
    pub phase: ContextPhase,
    pub message: String,
    pub duration_ms: u64,
}

/// One container image a revision deployed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct WorkloadImage {
    /// `Deployment/web`.
    pub workload: String,
    pub container: String,
    pub image: String,
    /// The contexts that run it; empty: every target context.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contexts: Vec<String>,
}

/// The values a revision was submitted with, over the chart's defaults and without the
/// registry's globals or any secret (a value equal to a resolved secret is masked):
/// `spec.values`, `valuesFiles` and `valuesFrom` merged, and each context's
/// `contextValues`. What `convoy history` compares between revisions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValuesRecord {
    pub release: serde_json::Value,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub contexts: BTreeMap<String, serde_json::Value>,
    /// Set instead of the values when they were too large to keep (bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub omitted_bytes: Option<u64>,
}

/// A recorded revision of a release (metadata only: never manifests or secret values).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevisionRecord {
    pub release: String,
    pub number: u64,
    pub kind: OperationKind,
    pub rollback_to: Option<u64>,
    pub operation_id: String,
    pub submitted_by: String,
    pub reason: String,
    pub submitted_at: Millis,
    pub chart_name: String,
    pub chart_version: String,
    /// `sha256:<hex>` of the chart archive rendered (empty in records from before
    /// convoy kept it).
    #[serde(default)]
    pub chart_digest: String,
    /// Where the coordinator fetched the chart (see `SubmitInputs::chart_origin`).
    #[serde(default)]
    pub chart_origin: String,
    pub values_digest: String,
    pub secret_versions: Vec<SecretVersion>,
    pub outcomes: Vec<ContextOutcome>,
    pub phase: OperationPhase,
    /// Every target context.
    pub contexts: Vec<String>,
    /// What each context's render was made with besides the release (a deploy's).
    #[serde(default)]
    pub rendered_with: RenderRecord,
    /// The container images of every workload it deployed (a rollback's: its target's).
    #[serde(default)]
    pub images: Vec<WorkloadImage>,
    /// The values it was submitted with (a rollback's: its target's).
    #[serde(default)]
    pub values: ValuesRecord,
    /// How its operation ended, in one sentence (a failed gate names its query, value
    /// and condition); empty while it runs.
    #[serde(default)]
    pub message: String,
}

impl RevisionRecord {
    /// A rollback revision shipping what `base` shipped (its chart, values, secret
    /// versions and images); the caller fills in the rest with struct update syntax.
    pub fn rollback_shipping(base: Option<&RevisionRecord>) -> RevisionRecord {
        let shipped = |f: fn(&RevisionRecord) -> String| base.map(f).unwrap_or_default();
        RevisionRecord {
            release: String::new(),
            number: 0,
            kind: OperationKind::Rollback,
            rollback_to: None,
            operation_id: String::new(),
            submitted_by: String::new(),
            reason: String::new(),
            submitted_at: Millis::default(),
            chart_name: shipped(|b| b.chart_name.clone()),
            chart_version: shipped(|b| b.chart_version.clone()),
            chart_digest: shipped(|b| b.chart_digest.clone()),
            chart_origin: shipped(|b| b.chart_origin.clone()),
            values_digest: shipped(|b| b.values_digest.clone()),
            secret_versions: base.map(|b| b.secret_versions.clone()).unwrap_or_default(),
            outcomes: Vec::new(),
            phase: OperationPhase::Queued,
            contexts: Vec::new(),
            message: String::new(),
            rendered_with: RenderRecord::default(),
            images: base.map(|b| b.images.clone()).unwrap_or_default(),
            values: base.map(|b| b.values.clone()).unwrap_or_default(),
        }
    }
}

/// What a revision's render of each context was made with besides the release: the
/// cluster's capabilities (by digest: the data is in the store's capabilities table),
/// and whether the release had history there. Re-rendering the revision (after a
/// restart) with it gives what the first render gave. A revision recorded before
/// convoy kept this renders every context as it did then: Helm's defaults, an install.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenderRecord {
    /// Capabilities digest -> the contexts rendered with them; a context in none was
    /// rendered with Helm's defaults (its agent had not reported any).
    pub capabilities: BTreeMap<String, Vec<String>>,
    /// Contexts rendered as an upgrade (`.Release.IsUpgrade`, `.Release.Revision` = the
    /// revision's number); the others as a first install (revision 1).
    pub upgrades: std::collections::BTreeSet<String>,
}

impl RenderRecord {
    /// The record of `facts` (per context).
    pub fn of(facts: &BTreeMap<String, crate::capabilities::RenderFacts>) -> Self {
        let mut r = RenderRecord::default();
        for (context, f) in facts {
            if let Some(c) = &f.capabilities {
                r.capabilities
                    .entry(c.digest().to_string())
                    .or_default()
                    .push(context.clone());
            }
            if f.is_upgrade {
                r.upgrades.insert(context.clone());
            }
        }
        r
    }

    /// The facts of revision `number` in `contexts`, the capabilities looked up by
    /// digest; an error names a digest `lookup` does not know.
    pub fn facts<'a>(
        &self,
        number: u64,
        contexts: impl IntoIterator<Item = &'a String>,
        lookup: impl Fn(&str) -> Option<std::sync::Arc<crate::capabilities::ClusterCapabilities>>,
    ) -> Result<BTreeMap<String, crate::capabilities::RenderFacts>, String> {
        let mut by_context = BTreeMap::new();
        for (digest, ctxs) in &self.capabilities {
            let caps =
                lookup(digest).ok_or_else(|| format!("the cluster capabilities {digest} are not stored"))?;
            for c in ctxs {
                by_context.insert(c.as_str(), caps.clone());
            }
        }
        Ok(contexts
            .into_iter()
            .map(|c| {
                let upgrade = self.upgrades.contains(c);
                let caps = by_context.get(c.as_str()).cloned();
                (
                    c.clone(),
                    crate::capabilities::RenderFacts::of_revision(number, upgrade, caps),
                )
            })
            .collect())
    }
}

impl RevisionRecord {
    /// The revision whose objects this revision put in the clusters.
    pub fn content_revision(&self) -> u64 {
        self.rollback_to.unwrap_or(self.number)
    }
}

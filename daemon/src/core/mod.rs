//! The coordinator's core: one thread that owns every release's state, applies
//! commands and agent reports to it through the orchestrator, writes each change to the
//! store, and only then sends commands to agents and events to watchers.
//!
//! ```text
//! gRPC API ──Msg──▶ ┌──────── core thread ────────┐ ──commands──▶ agent sessions
//! agent link ─Msg─▶ │ releases, queues, operations │ ──events────▶ watch streams
//!        ticks ───▶ │ orchestrator steps → store   │
//!                   └──────────────────────────────┘
//! ```
//!
//! One thread keeps every transition ordered without locks; submits are prepared
//! (secrets, rendering) before they reach it, so it never waits on Vault or a chart.
//! Agent reports are drained in batches and committed together (group commit).

mod diffs;
mod state;
#[cfg(test)]
mod tests;
mod views;
pub mod watch;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::auth::{AuthError, Principal};
use crate::capabilities::{FactsFuture, FactsSource, RenderFacts};
use crate::model::{ContextState, Millis, Operation, RevisionRecord};
use crate::orchestrator::Report;
use crate::prepare::{ApplyOptions, PrepareError, Prepared, Preparer, RenderedManifest};
use crate::store::{AuditEntry, StateStore, StoreError, SubmitInputs};

pub use diffs::{DIFF_PREFIX, DiffWait};
pub use views::{ClusterView, ReleaseView};

/// One registry context (the release crate's type: the registry file, the inline
/// `contexts` of the config and the core all speak it).
pub use convoy_release::Context as ContextInfo;

/// Why the core refused a request. The API maps each kind to a gRPC status once
/// (`api::status`), the web page to an HTTP status (`ui::core_error`).
#[derive(Debug, Clone, thiserror::Error)]
pub enum CoreError {
    /// No release of this name.
    #[error("release {release:?} not found")]
    NotFound { release: String },
    /// The request is invalid as the core sees it (an unknown context, a missing
    /// reason, a revision that does not exist...): says what and what is expected.
    #[error("{0}")]
    Invalid(String),
    /// The request is valid but the release's state does not allow it now (nothing to
    /// roll back to, an operation already running...): says what to do instead.
    #[error("{0}")]
    FailedPrecondition(String),
    /// The caller's role or scope does not allow it: who, what it may do, what it asked.
    #[error(transparent)]
    Denied(#[from] AuthError),
    /// The submit could not be prepared: an invalid release file, a secret, the chart,
    /// its source, or the coordinator's policy (see [`PrepareError`]; already masked).
    #[error(transparent)]
    Prepare(#[from] PrepareError),
    /// Reading or writing the state store failed while `doing` (the store's error
    /// names the store and the record).
    #[error("{doing}: {source}")]
    Store {
        doing: &'static str,
        #[source]
        source: Arc<StoreError>,
    },
    /// The core's thread could not be started.
    #[error("starting the core thread: {0}")]
    Thread(#[source] Arc<std::io::Error>),
    #[error("the coordinator is shutting down")]
    Unavailable,
}

impl CoreError {
    /// A state store failure while doing `doing`.
    pub(crate) fn store(doing: &'static str) -> impl Fn(StoreError) -> CoreError + Copy {
        move |e| CoreError::Store {
            doing,
            source: Arc::new(e),
        }
    }

    /// The caller was refused (role, scope or policy), rather than the request failing:
    /// what the audit log records as "refused".
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            CoreError::Denied(_) | CoreError::Prepare(PrepareError::Denied(_))
        )
    }
}

/// A command for an agent, in domain terms; the link turns it into `convoy.v1`.
#[derive(Debug, Clone)]
pub struct OutCommand {
    pub release: String,
    pub revision: u64,
    pub operation_id: String,
    pub body: OutBody,
}

/// The core's end of an agent session: commands go boxed, so that the channel's
/// storage (allocated in blocks of 32 slots, one channel per connected agent) holds
/// pointers rather than whole commands: 256 bytes per agent instead of about 6 KB.
pub type CommandSender = mpsc::UnboundedSender<Box<OutCommand>>;
/// The link's end of an agent session.
pub type CommandReceiver = mpsc::UnboundedReceiver<Box<OutCommand>>;

#[derive(Debug, Clone)]
pub enum OutBody {
    Apply(ApplyBody),
    DryRun(ApplyBody),
    /// One step of an in-cluster canary: the revision's render, and the weight.
    Canary(ApplyBody, u32),
    /// A blue/green promotion: the Services switch to the revision's slot; the old
    /// slot goes this many seconds later.
    Switch {
        retire_after_seconds: u32,
    },
    Rollback {
        target: u64,
        health: (Duration, Duration),
    },
    Abort {
        reason: String,
    },
}

#[derive(Debug, Clone)]
pub struct ApplyBody {
    pub namespace: String,
    pub manifests: Arc<Vec<RenderedManifest>>,
    /// Helm hooks, run by the agent around the apply.
    pub hooks: Arc<Vec<RenderedManifest>>,
    /// (progress deadline, min ready window).
    pub health: (Duration, Duration),
    pub options: ApplyOptions,
    pub chart: String,
    /// The render's secrets, sent to the agent only as salted digests.
    pub masker: convoy_release::mask::Masker,
    /// Blue/green: deploy into the idle slot (with a preview Service when true).
    pub blue_green: Option<bool>,
}

impl ApplyBody {
    /// What the agent of `context` gets for `prepared`, judged by `health`.
    pub(crate) fn of(prepared: &Prepared, context: &str, health: (Duration, Duration)) -> Self {
        let of_context =
            |m: &BTreeMap<String, Arc<Vec<RenderedManifest>>>| m.get(context).cloned().unwrap_or_default();
        ApplyBody {
            namespace: prepared.meta.namespace.clone(),
            manifests: of_context(&prepared.manifests),
            hooks: of_context(&prepared.hooks),
            health,
            options: prepared.options,
            chart: format!("{}-{}", prepared.chart_name, prepared.chart_version),
            masker: prepared.masker.clone(),
            blue_green: None,
        }
    }
}

/// A change for watchers of one release.
#[derive(Debug, Clone)]
pub struct WatchEvent {
    pub release: String,
    pub operation_id: String,
    pub revision: u64,
    pub at: Millis,
    pub kind: WatchKind,
}

#[derive(Debug, Clone)]
pub enum WatchKind {
    Context {
        state: ContextState,
        region: String,
        agent_connected: bool,
    },
    Operation(Box<Operation>),
}

/// What a connecting agent said about itself.
#[derive(Debug, Clone)]
pub struct AgentHello {
    pub context: String,
    pub session_id: String,
    pub version: String,
    pub instance: String,
    pub backend: String,
    pub in_flight: u32,
    /// Final events buffered while disconnected.
    pub unacknowledged: Vec<AgentReport>,
    /// Per release the cluster's history holds, the revision applied there.
    pub deployed: Vec<(String, u64)>,
    /// What the cluster serves, as the agent's discovery found it.
    pub capabilities: ReportedCapabilities,
}

/// An agent's report of its cluster's capabilities.
#[derive(Debug, Clone)]
pub enum ReportedCapabilities {
    /// The agent sent none: it is older than capability reporting. Its context renders
    /// with Helm's defaults, as before.
    NotSent,
    /// Discovery failed (or reported something unusable): why. The context keeps what
    /// it reported before.
    Failed(String),
    Reported(crate::capabilities::ClusterCapabilities),
}

/// What rendering produced for one context of a submit.
#[derive(Debug, Clone)]
pub struct RenderSummary {
    pub context: String,
    /// Objects rendered (hooks not counted).
    pub objects: usize,
    /// [`digest`] of its manifests and hooks.
    pub digest: String,
    /// What the render was made with besides the release.
    pub facts: RenderFacts,
}

/// One report from an agent, in domain terms.
#[derive(Debug, Clone)]
pub struct AgentReport {
    pub release: String,
    pub revision: u64,
    pub operation_id: String,
    pub report: Report,
}

/// The result of a submit or rollback request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub release: String,
    pub revision: u64,
    pub rollback_to: Option<u64>,
    pub operation_id: String,
    pub phase: crate::model::OperationPhase,
    pub queue_position: u32,
}

/// A succeeded deploy of a chart archive: where a digest has run healthy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestRun {
    pub environment: String,
    pub release: String,
    pub revision: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Pause,
    Resume,
    Abort,
    /// Approve a gated wave (0-based; `None`: the one the rollout waits at).
    Approve(Option<usize>),
    /// Refuse a gated wave: the gate fails.
    Refuse(Option<usize>),
}

type Reply<T> = oneshot::Sender<Result<T, CoreError>>;

/// Messages into the core thread.
pub(crate) enum Msg {
    Submit {
        who: Principal,
        prepared: Box<Prepared>,
        inputs: SubmitInputs,
        reason: String,
        reply: Reply<Accepted>,
    },
    Rollback {
        who: Principal,
        release: String,
        to_revision: u64,
        reason: String,
        preempt: bool,
        /// Only these contexts; empty for every context of the release.
        contexts: Vec<String>,
        reply: Reply<Accepted>,
    },
    Control {
        who: Principal,
        release: String,
        control: Control,
        reason: String,
        reply: Reply<Operation>,
    },
    Cancel {
        who: Principal,
        release: String,
        operation_id: String,
        reason: String,
        reply: Reply<Operation>,
    },
    GetRelease(String, Reply<ReleaseView>),
    ListReleases(Reply<Vec<ReleaseView>>),
    History(String, Reply<Vec<RevisionRecord>>),
    Queue(String, Reply<Vec<Operation>>),
    Watch {
        release: String,
        reply: Reply<(Vec<WatchEvent>, Arc<watch::WatchQueue>)>,
    },
    Clusters(Reply<Vec<ClusterView>>),
    Audit(Reply<Vec<AuditEntry>>),
    /// A deploy revision of a release in `environment` whose chart archive had `digest`
    /// and that succeeded: (release, revision).
    RanHealthy {
        digest: String,
        environment: String,
        reply: Reply<Option<(String, u64)>>,
    },
    /// For each digest, every succeeded deploy that shipped a chart archive with it.
    DigestRuns(Vec<String>, Reply<BTreeMap<String, Vec<DigestRun>>>),
    /// Every committed change of an operation, from now on (the notifier).
    SubscribeOperations(tokio::sync::mpsc::UnboundedSender<crate::model::Operation>),
    /// Write an audit entry for something decided outside the core thread (a diff, a
    /// dry-run submit, a submit refused or failed before it reached the core).
    Record {
        who: Principal,
        action: String,
        release: String,
        reason: String,
        outcome: String,
    },
    Metrics(Reply<String>),
    /// An agent's hello. `stored` is answered once the reports it brought (its
    /// unacknowledged final events) are durable: only then may the link acknowledge
    /// them in its welcome, and the agent drop them.
    AgentConnected {
        hello: AgentHello,
        tx: CommandSender,
        stored: Reply<()>,
    },
    AgentDisconnected {
        context: String,
        session_id: String,
    },
    AgentReport {
        context: String,
        report: AgentReport,
    },
    AgentHeartbeat {
        context: String,
        in_flight: u32,
    },
    /// Send a prepared submit's dry runs to the connected agents (see `Coordinator::diff`).
    Diff {
        prepared: Box<Prepared>,
        reply: oneshot::Sender<Vec<DiffWait>>,
    },
    /// An agent's answer to a diff's dry run.
    DiffAnswer {
        context: String,
        operation_id: String,
        outcome: crate::diff::DiffOutcome,
    },
    /// What `release` would render with in each of `contexts` if submitted now.
    RenderFacts {
        release: String,
        contexts: Vec<String>,
        reply: oneshot::Sender<BTreeMap<String, RenderFacts>>,
    },
    /// An operation that waited for Vault after a restart was prepared again, or can
    /// never be (see `Coordinator::start`).
    Reprepared {
        op_id: String,
        result: Result<Box<Prepared>, String>,
    },
    /// Vault still does not answer for an operation waiting to be prepared again.
    StillWaitingForVault {
        op_id: String,
        why: String,
    },
    /// A queued deploy rendered again before it starts (see [`RenderJob`]).
    Rendered {
        op_id: String,
        result: Result<Box<Prepared>, String>,
    },
    /// A measurement of the gate an operation is checking (see [`crate::gates`]).
    Measured {
        op_id: String,
        at: crate::orchestrator::GateAt,
        measurement: crate::model::Measurement,
    },
    Shutdown,
}

/// A queued deploy to render again before it starts, because the facts it was rendered
/// with (the release's history in a context, a cluster's capabilities) changed while it
/// waited. Run off the core thread; the answer comes back as [`Msg::Rendered`].
pub(crate) struct RenderJob {
    pub op_id: String,
    pub inputs: SubmitInputs,
    pub pinned: Vec<crate::model::SecretVersion>,
    pub facts: BTreeMap<String, RenderFacts>,
}

/// A handle on the core thread. Cheap to clone.
#[derive(Clone)]
pub struct Coordinator {
    tx: std_mpsc::Sender<Msg>,
    preparer: Arc<dyn Preparer>,
    heartbeat: Duration,
    /// The context registry by name, for scope checks.
    registry: Arc<BTreeMap<String, ContextInfo>>,
    link_message_limit: usize,
    /// Why the core stopped, once a commit failed; closed when the core thread ends.
    failure: tokio::sync::watch::Receiver<Option<String>>,
    /// Environment -> the environment a chart must have run healthy in first.
    promotion: Arc<BTreeMap<String, String>>,
}

impl std::fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Coordinator")
    }
}

/// How soon an operation waiting for Vault after a restart is prepared again, and the
/// most it waits between two attempts (doubling in between).
const PREPARE_RETRY_FIRST: Duration = Duration::from_secs(1);
const PREPARE_RETRY_MAX: Duration = Duration::from_secs(15);

/// Settings of the core.
#[derive(Debug, Clone)]
pub struct CoreSettings {
    pub registry: Vec<ContextInfo>,
    /// How often agents send heartbeats.
    pub heartbeat: Duration,
    /// How often deadlines and soak times are checked.
    pub tick: Duration,
    /// What automatic gates are measured with (`None`: releases with gates are
    /// refused before they get here, see [`crate::pipeline::Pipeline::with_gates`]).
    pub gates: Option<crate::gates::Gates>,
    /// The largest command the agent link sends (see
    /// [`convoy_proto::AGENT_LINK_MESSAGE_LIMIT`]): a release whose command for a
    /// context would be larger is refused before anything is recorded or sent.
    pub link_message_limit: usize,
}

#[cfg(test)]
impl CoreSettings {
    /// Settings for tests: `registry`'s contexts, 5 s heartbeats, a 50 ms tick, no gates,
    /// the agent link's own message limit.
    pub(crate) fn for_tests(registry: &convoy_release::Registry) -> CoreSettings {
        CoreSettings {
            registry: registry.contexts().cloned().collect(),
            heartbeat: Duration::from_secs(5),
            tick: Duration::from_millis(50),
            gates: None,
            link_message_limit: convoy_proto::AGENT_LINK_MESSAGE_LIMIT,
        }
    }
}

impl Coordinator {
    /// Loads the state from `store`, re-prepares the operations that were running or
    /// queued (their rendered objects are never stored), and starts the core thread.
    pub async fn start(
        store: StateStore,
        preparer: Arc<dyn Preparer>,
        settings: CoreSettings,
    ) -> Result<Self, CoreError> {
        let (mut core, to_prepare) = state::Core::restore(store, &settings)?;
        let limit = settings.link_message_limit;
        let mut waiting = Vec::new();
        for t in to_prepare {
            // Rendered again with what the revision recorded: the same clusters'
            // capabilities and history as its first render.
            let facts = match t.facts {
                Ok(f) => f,
                Err(why) => {
                    let _ = core.unpreparable(&t.op_id, &why);
                    continue;
                }
            };
            match preparer.prepare(&t.inputs, Some(&t.pinned), &facts).await {
                Ok(p) => match fits_the_link(&p, limit) {
                    Ok(()) => {
                        core.attach_prepared(&t.op_id, p);
                        core.resume_if_it_waited(&t.op_id);
                    }
                    Err(why) => {
                        let _ = core.unpreparable(&t.op_id, &why);
                    }
                },
                // Vault does not answer: the operation waits (held, saying why) and is
                // prepared again in the background until it does.
                Err(PrepareError::SecretsUnavailable(why)) => {
                    core.wait_for_secrets(&t.op_id, &why);
                    waiting.push((t.op_id, t.inputs, t.pinned, facts));
                }
                Err(e) => {
                    let _ = core.unpreparable(&t.op_id, &e.to_string());
                }
            }
        }
        let (tx, rx) = std_mpsc::channel();
        core.set_renderer(spawn_renderer(
            preparer.clone(),
            tx.clone(),
            settings.link_message_limit,
        ));
        if let Some(gates) = settings.gates.clone() {
            let to_core = std::sync::Mutex::new(tx.clone());
            let report: crate::gates::Report = Arc::new(move |op_id, at, measurement| {
                let tx = to_core.lock().unwrap_or_else(|p| p.into_inner());
                let _ = tx.send(Msg::Measured {
                    op_id,
                    at,
                    measurement,
                });
            });
            core.set_gate_runner(crate::gates::GateRunner::spawn(gates, report));
        }
        for (op_id, inputs, pinned, facts) in waiting {
            let (preparer, tx) = (preparer.clone(), tx.clone());
            tokio::spawn(async move {
                let mut delay = PREPARE_RETRY_FIRST;
                loop {
                    tokio::time::sleep(delay).await;
                    let msg = match preparer.prepare(&inputs, Some(&pinned), &facts).await {
                        Ok(p) => Msg::Reprepared {
                            op_id: op_id.clone(),
                            result: fits_the_link(&p, limit).map(|()| Box::new(p)),
                        },
                        Err(PrepareError::SecretsUnavailable(why)) => {
                            delay = (delay * 2).min(PREPARE_RETRY_MAX);
                            if tx
                                .send(Msg::StillWaitingForVault {
                                    op_id: op_id.clone(),
                                    why,
                                })
                                .is_err()
                            {
                                return;
                            }
                            continue;
                        }
                        Err(e) => Msg::Reprepared {
                            op_id: op_id.clone(),
                            result: Err(e.to_string()),
                        },
                    };
                    let _ = tx.send(msg);
                    return;
                }
            });
        }
        let tick = settings.tick;
        let failure = core.failure.subscribe();
        let registry = Arc::new(
            settings
                .registry
                .iter()
                .map(|c| (c.name.clone(), c.clone()))
                .collect(),
        );
        std::thread::Builder::new()
            .name("convoy-core".into())
            .spawn(move || core.run(rx, tick))
            .map_err(|e| CoreError::Thread(Arc::new(e)))?;
        Ok(Coordinator {
            tx,
            preparer,
            heartbeat: settings.heartbeat,
            registry,
            link_message_limit: settings.link_message_limit,
            failure,
            promotion: Arc::new(BTreeMap::new()),
        })
    }

    /// Promotion rules: a submit to environment `E` (a key) may only use a chart whose
    /// archive digest already ran healthy in the environment it maps to.
    pub fn with_promotion(mut self, rules: BTreeMap<String, String>) -> Self {
        self.promotion = Arc::new(rules);
        self
    }

    /// Refuses a submit whose chart has not run healthy where the promotion rule for its
    /// environment says it must have (before any secret is read).
    async fn check_promotion(&self, environment: &str, digest: &str) -> Result<(), CoreError> {
        let Some(earlier) = self.promotion.get(environment) else {
            return Ok(());
        };
        let ran = if digest.is_empty() {
            None
        } else {
            let (digest, earlier) = (digest.to_string(), earlier.clone());
            self.ask(|reply| Msg::RanHealthy {
                digest,
                environment: earlier,
                reply,
            })
            .await?
        };
        match ran {
            Some((release, revision)) => {
                tracing::info!(environment, digest, promoted_from = %format!("{release} revision {revision}"), "promotion rule met");
                Ok(())
            }
            None => Err(CoreError::FailedPrecondition(format!(
                "promotion: environment {environment} takes only charts that already ran healthy in {earlier}; chart {} has not run healthy there (deploy it to {earlier} first)",
                if digest.is_empty() { "(no archive)" } else { digest }
            ))),
        }
    }

    /// Resolves when the core stopped because a commit failed, with why; never if it
    /// stops for a shutdown. The server then exits non-zero (see `server::start`).
    pub async fn failed(&self) -> String {
        let mut rx = self.failure.clone();
        let why = rx.wait_for(Option::is_some).await.map(|w| w.clone());
        match why {
            Ok(why) => why.unwrap_or_default(),
            Err(_) => std::future::pending().await,
        }
    }

    /// Resolves once the core thread has ended, its last commit done.
    pub async fn stopped(&self) {
        let mut rx = self.failure.clone();
        while rx.changed().await.is_ok() {}
    }

    pub fn heartbeat_interval(&self) -> Duration {
        self.heartbeat
    }

    /// The context registry by name.
    pub fn registry(&self) -> &BTreeMap<String, ContextInfo> {
        &self.registry
    }

    /// Writes an audit entry (asynchronously, through the core thread).
    pub fn record(&self, who: &Principal, action: &str, release: &str, reason: &str, outcome: &str) {
        self.tell(Msg::Record {
            who: who.clone(),
            action: action.to_string(),
            release: release.to_string(),
            reason: reason.to_string(),
            outcome: outcome.to_string(),
        });
    }

    /// Reads the release file (nothing else) and decides whether `who` may `action`
    /// it: the role (deployer; operator for `spec.options.adopt`, `forceConflicts` or
    /// `allowMassDeletion`, or the request's `allow_mass_deletion`)
    /// and the scope (its name, namespace and every target context). Runs before any
    /// secret is read; a refusal is audited and names what was missing.
    fn authorize_submit(
        &self,
        who: &Principal,
        inputs: &SubmitInputs,
        action: &str,
        reason: &str,
    ) -> Result<crate::prepare::Preview, CoreError> {
        use crate::auth::Role;
        let preview = self.preparer.preview(inputs).map_err(|e| {
            // Audited too (no secret was read): who sent what could not be parsed. The
            // release is unknown; the file names it. The first line says why.
            let e = CoreError::Prepare(e);
            let why = e.to_string();
            let first = why.lines().next().unwrap_or_default();
            self.record(who, action, "", reason, &format!("refused: {first}"));
            e
        })?;
        let meta = &preview.meta;
        let o = preview.options;
        // Role messages say what the caller did (`submit`, `diff`); the audit entry
        // says which kind (`submit-dry-run`).
        let verb = if action == "diff" { "diff" } else { "submit" };
        let checked = who
            .require(Role::Deployer, verb)
            .and_then(|()| {
                // What can take or destroy objects beyond the release's own needs the
                // operator role, from the file or from the request.
                let risky: Vec<&str> = [
                    ("spec.options.adopt", o.adopt),
                    ("spec.options.forceConflicts", o.force_conflicts),
                    ("spec.options.allowMassDeletion", o.allow_mass_deletion),
                    (
                        "allow_mass_deletion (--allow-mass-deletion)",
                        inputs.allow_mass_deletion,
                    ),
                ]
                .into_iter()
                .filter_map(|(name, on)| on.then_some(name))
                .collect();
                if risky.is_empty() {
                    Ok(())
                } else {
                    who.require(Role::Operator, &format!("{verb} with {}", risky.join(" and ")))
                }
            })
            .and_then(|()| {
                who.check_scope(
                    "deploy to",
                    &meta.name,
                    &meta.namespace,
                    preview.contexts.iter().map(String::as_str),
                    &self.registry,
                )
            });
        if let Err(e) = checked {
            self.record(who, action, &meta.name, reason, &format!("refused: {e}"));
            return Err(CoreError::Denied(e));
        }
        Ok(preview)
    }

    async fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> Msg) -> Result<T, CoreError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(make(reply)).map_err(|_| CoreError::Unavailable)?;
        rx.await.map_err(|_| CoreError::Unavailable)?
    }

    pub(crate) fn tell(&self, msg: Msg) {
        // The core only goes away at shutdown; a message lost then is harmless.
        let _ = self.tx.send(msg);
    }

    /// Prepares a submit, each context rendered for its cluster and the release's
    /// history there as they are now; an invalid file is INVALID_ARGUMENT, secrets or
    /// rendering that fail are FAILED_PRECONDITION.
    async fn prepare(&self, inputs: &SubmitInputs) -> Result<Prepared, CoreError> {
        self.preparer
            .prepare(inputs, None, self)
            .await
            .map_err(CoreError::Prepare)
    }

    /// Authorizes, then prepares (reading secrets); both audited when refused or failed.
    /// A chart in a repository or registry is fetched here, after authorization and
    /// before anything else, into `inputs` (kept with the revision, by digest).
    async fn authorize_and_prepare(
        &self,
        who: &Principal,
        inputs: &mut SubmitInputs,
        action: &str,
        reason: &str,
    ) -> Result<Prepared, CoreError> {
        let preview = self.authorize_submit(who, inputs, action, reason)?;
        let prepared = async {
            let fetched = self
                .preparer
                .fetch_sources(inputs)
                .await
                .map_err(CoreError::Prepare)?;
            inputs.values_from = fetched.values_from;
            if let Some(fetched) = fetched.chart {
                tracing::info!(
                    release = %preview.meta.name,
                    source = %fetched.origin,
                    bytes = fetched.archive.len(),
                    "fetched the chart"
                );
                inputs.chart_archive = fetched.archive;
                inputs.chart_origin = fetched.origin;
            }
            inputs.chart_digest = if inputs.chart_archive.is_empty() {
                String::new()
            } else {
                crate::sources::sha256(&inputs.chart_archive)
            };
            if action.starts_with("submit") {
                self.check_promotion(&preview.meta.environment, &inputs.chart_digest)
                    .await?;
            }
            self.prepare(inputs).await
        };
        prepared.await.inspect_err(|e| {
            let kind = if e.is_refusal() { "refused" } else { "failed" };
            self.record(who, action, &preview.meta.name, reason, &format!("{kind}: {e}"));
        })
    }

    /// Validates, resolves and renders a submit (before any cluster is touched), then
    /// records revision N and queues its rollout. `dry_run` stops after preparing.
    pub async fn submit(
        &self,
        who: Principal,
        mut inputs: SubmitInputs,
        reason: String,
        dry_run: bool,
    ) -> Result<(Accepted, Vec<RenderSummary>), CoreError> {
        let action = if dry_run { "submit-dry-run" } else { "submit" };
        let prepared = self
            .authorize_and_prepare(&who, &mut inputs, action, &reason)
            .await?;
        if let Err(why) = fits_the_link(&prepared, self.link_message_limit) {
            self.record(
                &who,
                action,
                &prepared.meta.name,
                &reason,
                &format!("refused: {why}"),
            );
            return Err(CoreError::Invalid(why));
        }
        // Contexts that share a render share its digest: hashed once per render.
        let mut digests: HashMap<RenderId, String> = HashMap::new();
        let summary: Vec<RenderSummary> = prepared
            .manifests
            .iter()
            .map(|(ctx, ms)| {
                let hooks = prepared.hooks.get(ctx);
                let digest = digests
                    .entry(render_id(ms, hooks))
                    .or_insert_with(|| digest(ms.iter().chain(hooks.into_iter().flat_map(|h| h.iter()))))
                    .clone();
                RenderSummary {
                    context: ctx.clone(),
                    objects: ms.len(),
                    digest,
                    facts: prepared.facts.get(ctx).cloned().unwrap_or_default(),
                }
            })
            .collect();
        if dry_run {
            let contexts: Vec<&str> = summary.iter().map(|r| r.context.as_str()).collect();
            self.record(
                &who,
                action,
                &prepared.meta.name,
                &reason,
                &format!(
                    "accepted: rendered {} (nothing recorded or applied)",
                    contexts.join(", ")
                ),
            );
            let accepted = Accepted {
                release: prepared.meta.name.clone(),
                revision: 0,
                rollback_to: None,
                operation_id: String::new(),
                phase: crate::model::OperationPhase::Queued,
                queue_position: 0,
            };
            return Ok((accepted, summary));
        }
        let accepted = self
            .ask(|reply| Msg::Submit {
                who,
                prepared: Box::new(prepared),
                inputs,
                reason,
                reply,
            })
            .await?;
        Ok((accepted, summary))
    }

    /// What submitting `inputs` would change in each target context: prepares them as a
    /// submit would (so the same errors come back), then asks every connected agent for
    /// a server-side dry run and waits up to `timeout` for the answers. Nothing is
    /// recorded. Secret values are masked in what comes back.
    pub async fn diff(
        &self,
        who: Principal,
        mut inputs: SubmitInputs,
        timeout: Duration,
    ) -> Result<(String, Vec<crate::diff::ContextDiff>), CoreError> {
        use crate::diff::{ContextDiff, DiffOutcome};
        let prepared = self.authorize_and_prepare(&who, &mut inputs, "diff", "").await?;
        let release = prepared.meta.name.clone();
        let masker = prepared.masker.clone();
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Msg::Diff {
                prepared: Box::new(prepared),
                reply,
            })
            .map_err(|_| CoreError::Unavailable)?;
        let waits = rx.await.map_err(|_| CoreError::Unavailable)?;
        let deadline = tokio::time::Instant::now() + timeout;
        let answers = waits.into_iter().map(|w| async move {
            match w {
                DiffWait::Ready(d) => d,
                DiffWait::Pending {
                    context,
                    region,
                    answer,
                } => {
                    let outcome = match tokio::time::timeout_at(deadline, answer).await {
                        Ok(Ok(outcome)) => outcome,
                        Ok(Err(_)) => DiffOutcome::AgentOffline("the coordinator is shutting down".into()),
                        Err(_) => DiffOutcome::TimedOut(format!(
                            "the agent did not answer the dry run within {}s",
                            timeout.as_secs()
                        )),
                    };
                    ContextDiff {
                        context,
                        region,
                        outcome,
                    }
                }
            }
        });
        let mut diffs = futures::future::join_all(answers).await;
        for d in &mut diffs {
            crate::diff::mask(&mut d.outcome, &masker);
        }
        let compared: Vec<&str> = diffs
            .iter()
            .filter(|d| matches!(d.outcome, DiffOutcome::Done(_)))
            .map(|d| d.context.as_str())
            .collect();
        self.record(
            &who,
            "diff",
            &release,
            "",
            &format!(
                "accepted: dry run in {} of {} context(s){}{}",
                compared.len(),
                diffs.len(),
                if compared.is_empty() { "" } else { ": " },
                compared.join(", ")
            ),
        );
        Ok((release, diffs))
    }

    pub async fn rollback(
        &self,
        who: Principal,
        release: String,
        to_revision: u64,
        reason: String,
        preempt: bool,
        contexts: Vec<String>,
    ) -> Result<Accepted, CoreError> {
        self.ask(|reply| Msg::Rollback {
            who,
            release,
            to_revision,
            reason,
            preempt,
            contexts,
            reply,
        })
        .await
    }

    pub async fn control(
        &self,
        who: Principal,
        release: String,
        control: Control,
        reason: String,
    ) -> Result<Operation, CoreError> {
        self.ask(|reply| Msg::Control {
            who,
            release,
            control,
            reason,
            reply,
        })
        .await
    }

    pub async fn cancel(
        &self,
        who: Principal,
        release: String,
        operation_id: String,
        reason: String,
    ) -> Result<Operation, CoreError> {
        self.ask(|reply| Msg::Cancel {
            who,
            release,
            operation_id,
            reason,
            reply,
        })
        .await
    }

    pub async fn release(&self, name: String) -> Result<ReleaseView, CoreError> {
        self.ask(|r| Msg::GetRelease(name, r)).await
    }

    pub async fn releases(&self) -> Result<Vec<ReleaseView>, CoreError> {
        self.ask(Msg::ListReleases).await
    }

    pub async fn history(&self, name: String) -> Result<Vec<RevisionRecord>, CoreError> {
        self.ask(|r| Msg::History(name, r)).await
    }

    /// Where each of `digests` ran healthy: the succeeded deploys of every release that
    /// shipped a chart archive with it, oldest first.
    pub async fn digest_runs(
        &self,
        digests: Vec<String>,
    ) -> Result<BTreeMap<String, Vec<DigestRun>>, CoreError> {
        self.ask(|r| Msg::DigestRuns(digests, r)).await
    }

    pub async fn queue(&self, name: String) -> Result<Vec<Operation>, CoreError> {
        self.ask(|r| Msg::Queue(name, r)).await
    }

    /// A snapshot of the release's current operation, and its live events.
    pub async fn watch(
        &self,
        release: String,
    ) -> Result<(Vec<WatchEvent>, Arc<watch::WatchQueue>), CoreError> {
        self.ask(|reply| Msg::Watch { release, reply }).await
    }

    pub async fn clusters(&self) -> Result<Vec<ClusterView>, CoreError> {
        self.ask(Msg::Clusters).await
    }

    pub async fn audit(&self) -> Result<Vec<AuditEntry>, CoreError> {
        self.ask(Msg::Audit).await
    }

    /// Every change of every operation once it is committed, from now on, in order.
    pub fn subscribe_operations(&self) -> tokio::sync::mpsc::UnboundedReceiver<crate::model::Operation> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        self.tell(Msg::SubscribeOperations(tx));
        rx
    }

    /// Prometheus text for `/metrics`.
    pub async fn metrics(&self) -> Result<String, CoreError> {
        self.ask(Msg::Metrics).await
    }

    /// Stops the core thread (after it finishes the message at hand).
    pub fn shutdown(&self) {
        self.tell(Msg::Shutdown);
    }
}

/// The facts of a submit as it would be recorded now: asked of the core thread.
impl FactsSource for Coordinator {
    fn facts<'a>(&'a self, release: &'a str, contexts: &'a [String]) -> FactsFuture<'a> {
        Box::pin(async move {
            let (reply, rx) = oneshot::channel();
            self.tell(Msg::RenderFacts {
                release: release.to_string(),
                contexts: contexts.to_vec(),
                reply,
            });
            // A core going away fails the submit right after; the defaults do meanwhile.
            rx.await.unwrap_or_default()
        })
    }
}

/// Renders queued deploys again off the core thread, one at a time, and hands each
/// result back to the core. Ends when the core drops its sender (at shutdown).
fn spawn_renderer(
    preparer: Arc<dyn Preparer>,
    core: std_mpsc::Sender<Msg>,
    link_message_limit: usize,
) -> mpsc::UnboundedSender<RenderJob> {
    let (tx, mut rx) = mpsc::unbounded_channel::<RenderJob>();
    tokio::spawn(async move {
        while let Some(job) = rx.recv().await {
            let result = preparer
                .prepare(&job.inputs, Some(&job.pinned), &job.facts)
                .await
                .map_err(|e| e.to_string())
                .and_then(|p| fits_the_link(&p, link_message_limit).map(|()| Box::new(p)));
            if core
                .send(Msg::Rendered {
                    op_id: job.op_id,
                    result,
                })
                .is_err()
            {
                break;
            }
        }
    });
    tx
}

/// Whether every context's apply of `prepared` fits in one agent-link message of
/// `limit` bytes, encoded as the link sends it; if not, why, naming the context, the
/// size and the limit.
pub(crate) fn fits_the_link(prepared: &Prepared, limit: usize) -> Result<(), String> {
    use convoy_proto::v1 as pb;
    use prost::Message;
    // The largest operation id, revision and health: an upper bound of what is sent.
    // The context's name is not in the command: contexts that share a render (the same
    // lists) make the same command, measured once.
    let mut measured = std::collections::HashSet::new();
    for context in prepared.manifests.keys().chain(prepared.hooks.keys()) {
        let manifests = prepared.manifests.get(context);
        let hooks = prepared.hooks.get(context);
        if let Some(m) = manifests
            && !measured.insert(render_id(m, hooks))
        {
            continue;
        }
        let cmd = OutCommand {
            release: prepared.meta.name.clone(),
            revision: u64::MAX,
            operation_id: "op-00000000000000000000-preflight".into(),
            body: OutBody::Apply(ApplyBody::of(prepared, context, (Duration::MAX, Duration::MAX))),
        };
        let size = pb::CoordinatorMessage {
            message: Some(pb::coordinator_message::Message::Command(
                crate::link::command_to_wire(&cmd),
            )),
        }
        .encoded_len();
        if size > limit {
            return Err(format!(
                "release {} is too large for context {context}: its rendered manifests and hooks make a {} command, over the {} agent-link message limit (agent_link_max_message_bytes); nothing was recorded or applied: split the release or make its manifests smaller",
                prepared.meta.name,
                bytes(size),
                bytes(limit),
            ));
        }
    }
    Ok(())
}

/// Which shared render a context ships: its object list and its hook list, by identity
/// (contexts whose renders wrote the same objects hold the same lists, see
/// [`Prepared::manifests`]).
type RenderId = (usize, Option<usize>);

fn render_id(manifests: &Arc<Vec<RenderedManifest>>, hooks: Option<&Arc<Vec<RenderedManifest>>>) -> RenderId {
    (
        Arc::as_ptr(manifests) as usize,
        hooks.map(|h| Arc::as_ptr(h) as usize),
    )
}

/// `16.0 MiB (16777216 bytes)`.
fn bytes(n: usize) -> String {
    format!("{:.1} MiB ({n} bytes)", n as f64 / f64::from(1 << 20))
}

/// sha256 over a context's manifests (and hooks), to compare renders without content.
pub fn digest<'a>(manifests: impl IntoIterator<Item = &'a RenderedManifest>) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for m in manifests {
        h.update(m.source.as_bytes());
        h.update([0]);
        h.update(m.content.as_bytes());
        h.update([0]);
    }
    format!("sha256:{:x}", h.finalize())
}

//! The core thread's state and its handlers. Each handler changes memory, writes the
//! change to the store, and only then lets commands and events out (see `flush`).
//! Admission (submit, rollback, control, cancel) is first decided on the state read
//! only, then applied (see `admission`).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use tokio::sync::mpsc;

use super::diffs::{DiffWait, PendingDiffs};
use super::{
    Accepted, AgentHello, AgentReport, ApplyBody, CommandSender, ContextInfo, Control, CoreError,
    CoreSettings, Msg, OutBody, OutCommand, RenderJob, ReportedCapabilities, WatchEvent, WatchKind,
};
use crate::auth::{Principal, Role};
use crate::capabilities::{ClusterCapabilities, RenderFacts};
use crate::model::{
    ContextOutcome, ContextPhase, FailureBudget, Millis, OnFailure, Operation, OperationKind, OperationPhase,
    Plan, RenderRecord, Requested, RevisionRecord, SecretVersion, now_millis,
};
use crate::orchestrator::{Action, Command, Env, Report, Stage, Step};
use crate::prepare::Prepared;
use crate::store::{
    AuditEntry, Batch, ReleaseRecord, StateStore, SubmitInputs, Table, capabilities_key,
    context_capabilities_key, operation_key, revision_key,
};

mod admission;
#[cfg(test)]
mod admission_tests;
mod events;
mod metrics;
mod sessions;

use metrics::Metrics;

/// A connected agent, or what is remembered of one.
pub(super) struct AgentState {
    pub session_id: Option<String>,
    pub tx: Option<CommandSender>,
    pub version: String,
    pub instance: String,
    pub backend: String,
    pub connected_at: Millis,
    pub last_seen: Millis,
    pub in_flight: u32,
    /// Releases the cluster's history held when the agent connected.
    pub releases: BTreeSet<String>,
}

pub(super) struct ReleaseState {
    pub record: ReleaseRecord,
    /// Operation ids: the head runs, the rest wait in order.
    pub queue: VecDeque<String>,
    /// The last operation that ran (for status when nothing runs).
    pub last_op: Option<String>,
    /// Storage keys of queued/running operations.
    pub op_keys: HashMap<String, String>,
}

pub(super) struct Core {
    pub store: StateStore,
    pub registry: BTreeMap<String, ContextInfo>,
    seq: u64,
    pub releases: BTreeMap<String, ReleaseState>,
    pub ops: HashMap<String, Operation>,
    prepared: HashMap<String, Arc<Prepared>>,
    /// Per release, the secrets of its latest prepared submit, to mask agents' messages
    /// about it (a rollback has no render of its own). In memory only.
    maskers: HashMap<String, convoy_release::mask::Masker>,
    pub revisions: BTreeMap<String, Vec<RevisionRecord>>,
    pub agents: BTreeMap<String, AgentState>,
    watchers: super::watch::Watchers,
    /// Who hears of every committed operation change (the notifier).
    op_listeners: Vec<mpsc::UnboundedSender<Operation>>,
    metrics: Metrics,
    // Pending effects, released by `flush` after the store write.
    batch: Batch,
    dirty_ops: Vec<String>,
    /// Operations whose own record changed (phase, wave, message), to write at the
    /// next commit.
    dirty_heads: Vec<String>,
    /// (operation, context) whose state changed, to write at the next commit.
    dirty_contexts: Vec<(String, String)>,
    sends: Vec<(String, OutCommand)>,
    events: Vec<WatchEvent>,
    /// Dry runs of `DiffRelease` calls waiting for their agents.
    diffs: PendingDiffs,
    /// Per context, the capabilities its agent reported last (kept across restarts).
    capabilities: BTreeMap<String, Arc<ClusterCapabilities>>,
    /// Each distinct set of capabilities by digest, shared by the contexts that report
    /// it: clusters of one Kubernetes version and setup report the same few hundred API
    /// versions, kept once rather than once per context.
    capability_sets: HashMap<String, std::sync::Weak<ClusterCapabilities>>,
    /// Renders queued deploys again before they start (see [`RenderJob`]).
    renderer: Option<mpsc::UnboundedSender<RenderJob>>,
    /// Measures the automatic gates operations are checking.
    gate_runner: Option<crate::gates::GateRunner>,
    /// Queued deploys being rendered again; they start when the render is back.
    rendering: HashSet<String>,
    /// Queued deploys rendered again for the facts at their start: they start as they are.
    rerendered: HashSet<String>,
    /// (context, instance) of agents already logged as reporting no capabilities.
    silent_agents: HashSet<(String, String)>,
    stop: bool,
    /// Operations waiting, after a restart, for Vault to answer so that they can be
    /// rendered again; whether each resumes then (it was rolling out, not queued or
    /// paused by an operator).
    vault_wait: HashMap<String, bool>,
    /// Set once a commit failed: why the core stopped (see [`Core::flush`]).
    pub failure: tokio::sync::watch::Sender<Option<String>>,
    /// Commit once this many writes are pending (half the backend's atomic limit), so
    /// a burst of reports is committed in several whole batches, each within etcd's
    /// `--max-txn-ops`, rather than one that the store must split.
    commit_every: Option<usize>,
}

/// The orchestrator's view of the world during one step.
struct StepEnv<'a> {
    agents: &'a BTreeMap<String, AgentState>,
    record: &'a mut ReleaseRecord,
    batch: &'a mut Batch,
}

/// Whether an agent serving `context` is connected.
fn is_online(agents: &BTreeMap<String, AgentState>, context: &str) -> bool {
    agents.get(context).is_some_and(|a| a.tx.is_some())
}

impl Env for StepEnv<'_> {
    fn is_online(&self, context: &str) -> bool {
        is_online(self.agents, context)
    }

    fn allocate_revision(&mut self) -> u64 {
        self.record.latest_revision += 1;
        self.batch
            .put(Table::Releases, self.record.name.clone(), &*self.record);
        self.record.latest_revision
    }
}

const PREFLIGHT_SUFFIX: &str = "-preflight";
/// An in-cluster canary step's operation id: `<operation>~canary-<step>` (0-based), so
/// that each step is its own command for the agent's idempotence.
const CANARY_INFIX: &str = "~canary-";

fn canary_operation_id(op_id: &str, step: usize) -> String {
    format!("{op_id}{CANARY_INFIX}{step}")
}

/// The operation and canary step an agent's operation id names.
fn split_canary_id(oid: &str) -> Option<(&str, usize)> {
    let (base, k) = oid.rsplit_once(CANARY_INFIX)?;
    Some((base, k.parse().ok()?))
}

/// How the status of an operation waiting for Vault after a restart begins.
pub(super) const WAITING_FOR_VAULT: &str = "waiting for Vault: ";

/// The gauges of `/metrics`, read from the core's state when asked.
#[derive(Clone, Copy)]
struct Gauges {
    connected: usize,
    contexts: usize,
    running: usize,
    queued: usize,
    diffs_pending: usize,
}

/// What an audit entry is about.
struct Audit<'a> {
    action: &'a str,
    release: &'a str,
    revision: Option<u64>,
    op: Option<&'a str>,
}

/// An audit entry to record: who did what, why, and how it ended (`accepted`,
/// `refused: ...`). Its number and time are given when it is recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct AuditNote {
    pub who: String,
    pub action: String,
    pub release: String,
    pub revision: Option<u64>,
    pub op: Option<String>,
    pub reason: String,
    pub outcome: String,
}

impl AuditNote {
    fn new(who: &Principal, what: Audit<'_>, reason: &str, outcome: &str) -> Self {
        AuditNote {
            who: who.name.clone(),
            action: what.action.to_string(),
            release: what.release.to_string(),
            revision: what.revision,
            op: what.op.map(str::to_string),
            reason: reason.to_string(),
            outcome: outcome.to_string(),
        }
    }
}

/// An operation to prepare again after a restart: its submit inputs, the secret
/// versions its revision recorded and what each context was rendered with (or why that
/// cannot be had).
pub(super) struct ToPrepare {
    pub op_id: String,
    pub inputs: SubmitInputs,
    pub pinned: Vec<SecretVersion>,
    pub facts: Result<BTreeMap<String, RenderFacts>, String>,
}

impl Core {
    /// Loads every release, revision and unfinished operation. Returns the operations
    /// whose rendered objects must be prepared again (never stored: they hold secrets).
    pub fn restore(store: StateStore, settings: &CoreSettings) -> Result<(Self, Vec<ToPrepare>), CoreError> {
        let st = CoreError::store("restoring the releases and operations");
        let seq = store.load_seq().map_err(st)?;
        let mut core = Core {
            registry: settings
                .registry
                .iter()
                .map(|c| (c.name.clone(), c.clone()))
                .collect(),
            seq,
            releases: BTreeMap::new(),
            ops: HashMap::new(),
            prepared: HashMap::new(),
            maskers: HashMap::new(),
            revisions: BTreeMap::new(),
            agents: BTreeMap::new(),
            watchers: Default::default(),
            op_listeners: Vec::new(),
            metrics: Metrics::default(),
            batch: Batch::default(),
            dirty_ops: Vec::new(),
            dirty_heads: Vec::new(),
            dirty_contexts: Vec::new(),
            sends: Vec::new(),
            events: Vec::new(),
            diffs: PendingDiffs::new(now_millis()),
            capabilities: BTreeMap::new(),
            capability_sets: HashMap::new(),
            renderer: None,
            gate_runner: None,
            rendering: HashSet::new(),
            rerendered: HashSet::new(),
            silent_agents: HashSet::new(),
            stop: false,
            vault_wait: HashMap::new(),
            failure: tokio::sync::watch::channel(None).0,
            commit_every: store.max_batch_writes().map(|n| (n / 2).max(1)),
            store,
        };
        for (context, caps) in core.store.context_capabilities().map_err(st)? {
            let caps = core.shared_capabilities(caps);
            core.capabilities.insert(context, caps);
        }
        for record in core.store.releases().map_err(st)? {
            let revisions = core.store.revisions(&record.name).map_err(st)?;
            core.revisions.insert(record.name.clone(), revisions);
            core.releases.insert(
                record.name.clone(),
                ReleaseState {
                    record,
                    queue: VecDeque::new(),
                    last_op: None,
                    op_keys: HashMap::new(),
                },
            );
        }
        let mut to_prepare = Vec::new();
        for (key, op) in core.store.operations().map_err(st)? {
            let Some(rel) = core.releases.get_mut(&op.release) else {
                continue;
            };
            if op.phase.is_final() {
                rel.last_op = Some(op.id.clone());
                // Keep the newest finished operation of each release for status.
                core.ops.insert(op.id.clone(), op);
                continue;
            }
            rel.queue.push_back(op.id.clone());
            rel.op_keys.insert(op.id.clone(), key);
            if op.kind == OperationKind::Deploy {
                let inputs = core.store.inputs(&op.release, op.revision).map_err(st)?;
                let recorded = core
                    .revisions
                    .get(&op.release)
                    .and_then(|rs| rs.iter().find(|r| r.number == op.revision));
                let pinned = recorded.map(|r| r.secret_versions.clone()).unwrap_or_default();
                let rendered_with = recorded.map(|r| r.rendered_with.clone()).unwrap_or_default();
                let facts = core.recorded_facts(&rendered_with, op.revision, op.plan.contexts());
                if let Some(inputs) = inputs {
                    to_prepare.push(ToPrepare {
                        op_id: op.id.clone(),
                        inputs,
                        pinned,
                        facts,
                    });
                }
            }
            core.ops.insert(op.id.clone(), op);
        }
        Ok((core, to_prepare))
    }

    pub fn attach_prepared(&mut self, op_id: &str, prepared: Prepared) {
        self.remember_masker(&prepared);
        self.prepared.insert(op_id.to_string(), Arc::new(prepared));
    }

    fn remember_masker(&mut self, prepared: &Prepared) {
        self.maskers
            .insert(prepared.meta.name.clone(), prepared.masker.clone());
    }

    /// `caps`, or the equal set another context already holds.
    pub(super) fn shared_capabilities(&mut self, caps: ClusterCapabilities) -> Arc<ClusterCapabilities> {
        if let Some(shared) = self.capability_sets.get(caps.digest()).and_then(|w| w.upgrade()) {
            return shared;
        }
        // A set no context holds any more is forgotten when a new one comes (new sets
        // are rare: a cluster upgraded, a new kind of cluster).
        self.capability_sets.retain(|_, w| w.strong_count() > 0);
        let caps = Arc::new(caps);
        self.capability_sets
            .insert(caps.digest().to_string(), Arc::downgrade(&caps));
        caps
    }

    /// The capabilities `context`'s agent reported last.
    pub(super) fn capabilities_of(&self, context: &str) -> Option<&ClusterCapabilities> {
        self.capabilities.get(context).map(|c| &**c)
    }

    pub fn set_renderer(&mut self, renderer: mpsc::UnboundedSender<RenderJob>) {
        self.renderer = Some(renderer);
    }

    pub fn set_gate_runner(&mut self, runner: crate::gates::GateRunner) {
        self.gate_runner = Some(runner);
    }

    /// Starts or stops operation `id`'s gate measurements to match its `verifying`.
    fn reconcile_gate(&mut self, id: &str) {
        let Some(runner) = self.gate_runner.as_mut() else {
            return;
        };
        let op = self.ops.get(id);
        let namespace = op
            .and_then(|o| self.releases.get(&o.release))
            .map_or("", |r| r.record.namespace.as_str());
        runner.reconcile(id, op, namespace, &self.registry);
    }

    /// What a revision recorded its contexts were rendered with, the capabilities read
    /// back from the store by digest.
    fn recorded_facts<'a>(
        &self,
        record: &RenderRecord,
        number: u64,
        contexts: impl IntoIterator<Item = &'a String>,
    ) -> Result<BTreeMap<String, RenderFacts>, String> {
        record.facts(number, contexts, |digest| {
            if let Some(c) = self.capabilities.values().find(|c| c.digest() == digest) {
                return Some(c.clone());
            }
            match self.store.capabilities(digest) {
                Ok(c) => c.map(Arc::new),
                Err(e) => {
                    tracing::error!(error = %e, digest, "reading recorded cluster capabilities failed");
                    None
                }
            }
        })
    }

    /// What revision `revision` of `release` renders with in each of `contexts` now:
    /// the capabilities each context's agent reported last, and whether the release
    /// has history there (the coordinator's records, or the agent's hello).
    fn current_facts<'a>(
        &self,
        release: &str,
        revision: u64,
        contexts: impl IntoIterator<Item = &'a String>,
    ) -> BTreeMap<String, RenderFacts> {
        let record = self.releases.get(release).map(|r| &r.record);
        contexts
            .into_iter()
            .map(|c| {
                let upgrade = record.is_some_and(|r| r.has_history_in(c))
                    || self.agents.get(c).is_some_and(|a| a.releases.contains(release));
                let caps = self.capabilities.get(c).cloned();
                (c.clone(), RenderFacts::of_revision(revision, upgrade, caps))
            })
            .collect()
    }

    /// A recorded operation that cannot be rendered again after a restart (its chart or
    /// its secrets are gone) fails, with the reason, rather than half-running.
    pub fn fail_unpreparable(&mut self, op_id: &str, why: &str) {
        if let Some(op) = self.ops.get_mut(op_id) {
            let now = now_millis();
            op.phase = OperationPhase::Failed;
            op.finished_at = Some(now);
            op.message = format!("could not resume after a coordinator restart: re-rendering failed: {why}");
            self.dirty_ops.push(op_id.to_string());
        }
    }

    /// An operation that cannot be rendered again after a restart. Where no context has
    /// received its revision, it fails (nothing was applied). Where some has, the
    /// contexts that have not fail with the reason and the release's `onFailure` policy
    /// decides (a rollback needs no render): no context is left on the new revision
    /// while the others stay behind unnoticed.
    /// True when the operation failed outright (the caller finishes it).
    pub fn unpreparable(&mut self, op_id: &str, why: &str) -> bool {
        let Some(op) = self.ops.get(op_id) else {
            return false;
        };
        let applied_somewhere = op.kind == OperationKind::Deploy
            && (op.contexts.values().all(|c| c.preflight_ok) || !op.plan.preflight)
            && op.contexts.values().any(|c| {
                !matches!(
                    c.phase,
                    crate::model::ContextPhase::Pending | crate::model::ContextPhase::WaitingForAgent
                )
            })
            && matches!(op.phase, OperationPhase::Running | OperationPhase::Paused);
        if !applied_somewhere {
            self.fail_unpreparable(op_id, why);
            return true;
        }
        let why = format!("could not resume after a coordinator restart: re-rendering failed: {why}");
        tracing::error!(operation = %op_id, reason = %why, "contexts not yet updated fail; the release's onFailure policy applies");
        let step = self.step(op_id, |op, env, now| op.fail_unstarted(env, now, &why));
        self.apply_step(op_id, step);
        self.push_op_event(op_id);
        false
    }

    /// After a restart, Vault does not answer for `op_id`'s secrets: the operation is
    /// held (no new context or wave starts; in-flight ones finish) with `why` in its
    /// status until it can be prepared again (see [`Msg::Reprepared`]).
    pub fn wait_for_secrets(&mut self, op_id: &str, why: &str) {
        let Some(op) = self.ops.get_mut(op_id) else { return };
        let message = format!(
            "{WAITING_FOR_VAULT}{why}; the rollout goes on when Vault answers (contexts already updating finish meanwhile)"
        );
        if op.message == message {
            return;
        }
        let resume = match op.phase {
            OperationPhase::Running | OperationPhase::Preflight => true,
            OperationPhase::Paused => op.message.starts_with(WAITING_FOR_VAULT),
            _ => false,
        };
        let first = !self.vault_wait.contains_key(op_id);
        self.vault_wait.insert(op_id.to_string(), resume);
        if first {
            tracing::warn!(operation = %op_id, release = %op.release, reason = %why, "waiting for Vault to render this operation again after the restart");
        }
        if resume {
            let step = self.step(op_id, |op, _, _| op.hold(&message));
            self.apply_step(op_id, step);
        } else if op.phase == OperationPhase::Queued {
            op.message = message;
            self.dirty_ops.push(op_id.to_string());
        }
        self.push_op_event(op_id);
    }

    /// A restored operation held waiting for Vault by the coordinator before this one
    /// (its stored status says so) that is prepared now: it goes on.
    pub fn resume_if_it_waited(&mut self, op_id: &str) {
        let held = self.ops.get(op_id).is_some_and(|op| {
            op.phase == OperationPhase::Paused && op.message.starts_with(WAITING_FOR_VAULT)
        });
        if held {
            let step = self.step(op_id, |op, env, now| {
                op.release_hold(env, now, "Vault answered: rendered again, the rollout goes on")
            });
            self.apply_step(op_id, step);
        }
    }

    /// An operation that waited for Vault is prepared again (it goes on where it
    /// stood), or can never be (see [`Core::unpreparable`]).
    fn reprepared(&mut self, op_id: &str, result: Result<Box<Prepared>, String>) {
        let Some(resume) = self.vault_wait.remove(op_id) else {
            return;
        };
        let Some(op) = self.ops.get(op_id) else { return };
        if op.phase.is_final() {
            return;
        }
        let release = op.release.clone();
        match result {
            Ok(prepared) => {
                tracing::info!(operation = %op_id, %release, "Vault answered: the operation was rendered again and goes on");
                self.attach_prepared(op_id, *prepared);
                let phase = self.ops[op_id].phase;
                if phase == OperationPhase::Queued {
                    if let Some(op) = self.ops.get_mut(op_id) {
                        op.message.clear();
                        self.dirty_ops.push(op_id.to_string());
                    }
                    self.start_next(&release);
                    return;
                }
                if !resume {
                    return;
                }
                let step = self.step(op_id, |op, env, now| {
                    op.release_hold(env, now, "Vault answered: rendered again, the rollout goes on")
                });
                self.apply_step(op_id, step);
                // Commands for contexts in flight were held back while it waited.
                let in_flight: Vec<String> = self.ops[op_id]
                    .contexts
                    .values()
                    .filter(|c| c.phase.is_in_flight())
                    .map(|c| c.context.clone())
                    .collect();
                for ctx in in_flight {
                    let step = self.step(op_id, |op, env, now| op.on_agent_online(env, &ctx, now));
                    self.apply_step(op_id, step);
                }
                self.push_op_event(op_id);
            }
            Err(why) => {
                if self.unpreparable(op_id, &why) {
                    self.push_op_event(op_id);
                    self.finish_op(op_id);
                }
            }
        }
    }

    /// The core loop: handle a message, drain what else is waiting, commit once, then
    /// let the effects out. Ticks drive deadlines and soak times.
    pub fn run(mut self, rx: std_mpsc::Receiver<Msg>, tick: Duration) {
        // Finish what a restart left: failed resumes, and queue heads to start.
        self.finish_restored();
        // A failed write stops the core (see flush).
        let _ = self.flush();
        let mut next_tick = Instant::now() + tick;
        while !self.stop {
            let wait = next_tick.saturating_duration_since(Instant::now());
            match rx.recv_timeout(wait) {
                Ok(msg) => {
                    self.handle(msg);
                    for msg in rx.try_iter().take(4096) {
                        if self.stop {
                            break;
                        }
                        if self.commit_every.is_some_and(|n| self.pending_writes() >= n) {
                            let _ = self.flush();
                            if self.stop {
                                break;
                            }
                        }
                        self.handle(msg);
                    }
                }
                Err(std_mpsc::RecvTimeoutError::Timeout) => {}
                Err(std_mpsc::RecvTimeoutError::Disconnected) => break,
            }
            if self.stop {
                let _ = self.flush();
                break;
            }
            if Instant::now() >= next_tick {
                self.tick();
                next_tick = Instant::now() + tick;
            }
            let _ = self.flush();
        }
        if self.failure.borrow().is_none() {
            tracing::info!("core stopped; every change is in the store");
        }
    }

    fn finish_restored(&mut self) {
        let finished: Vec<String> = self
            .releases
            .values()
            .flat_map(|r| r.queue.iter())
            .filter(|id| self.ops.get(*id).is_some_and(|o| o.phase.is_final()))
            .cloned()
            .collect();
        for id in finished {
            self.finish_op(&id);
        }
        let names: Vec<String> = self.releases.keys().cloned().collect();
        for n in names {
            self.start_next(&n);
        }
    }

    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Submit {
                who,
                prepared,
                inputs,
                reason,
                reply,
            } => {
                let r = self.submit(&who, *prepared, inputs, &reason);
                self.reply(reply, r);
            }
            Msg::Rollback {
                who,
                release,
                to_revision,
                reason,
                preempt,
                contexts,
                reply,
            } => {
                let r = self.rollback(&who, &release, to_revision, &reason, preempt, &contexts);
                self.reply(reply, r);
            }
            Msg::Control {
                who,
                release,
                control,
                reason,
                reply,
            } => {
                let r = self.control(&who, &release, control, &reason);
                self.reply(reply, r);
            }
            Msg::Cancel {
                who,
                release,
                operation_id,
                reason,
                reply,
            } => {
                let r = self.cancel(&who, &release, &operation_id, &reason);
                self.reply(reply, r);
            }
            Msg::GetRelease(name, reply) => {
                let _ = reply.send(self.release_view(&name));
            }
            Msg::ListReleases(reply) => {
                let names: Vec<String> = self.releases.keys().cloned().collect();
                let _ = reply.send(names.iter().map(|n| self.release_view(n)).collect());
            }
            Msg::History(name, reply) => {
                let r = match self.revisions.get(&name) {
                    Some(revs) => Ok(revs.iter().rev().cloned().collect()),
                    None => Err(CoreError::NotFound { release: name }),
                };
                let _ = reply.send(r);
            }
            Msg::Queue(name, reply) => {
                let r = match self.releases.get(&name) {
                    Some(rel) => Ok(rel
                        .queue
                        .iter()
                        .filter_map(|id| self.ops.get(id).cloned())
                        .collect()),
                    None => Err(CoreError::NotFound { release: name }),
                };
                let _ = reply.send(r);
            }
            Msg::Watch { release, reply } => {
                let _ = reply.send(self.watch(&release));
            }
            Msg::Clusters(reply) => {
                let _ = reply.send(Ok(self.cluster_views()));
            }
            Msg::Audit(reply) => {
                let _ = reply.send(
                    self.store
                        .audit()
                        .map_err(CoreError::store("reading the audit log")),
                );
            }
            Msg::SubscribeOperations(tx) => self.op_listeners.push(tx),
            Msg::DigestRuns(digests, reply) => {
                let mut runs: BTreeMap<String, Vec<super::DigestRun>> = BTreeMap::new();
                for (name, revs) in &self.revisions {
                    let environment = self
                        .releases
                        .get(name)
                        .map(|r| r.record.environment.clone())
                        .unwrap_or_default();
                    for r in revs.iter().filter(|r| {
                        r.kind == OperationKind::Deploy
                            && r.phase == OperationPhase::Succeeded
                            && digests.contains(&r.chart_digest)
                    }) {
                        runs.entry(r.chart_digest.clone())
                            .or_default()
                            .push(super::DigestRun {
                                environment: environment.clone(),
                                release: name.clone(),
                                revision: r.number,
                            });
                    }
                }
                let _ = reply.send(Ok(runs));
            }
            Msg::RanHealthy {
                digest,
                environment,
                reply,
            } => {
                let _ = reply.send(self.ran_healthy(&digest, &environment));
            }
            Msg::Record {
                who,
                action,
                release,
                reason,
                outcome,
            } => {
                let what = Audit {
                    action: &action,
                    release: &release,
                    revision: None,
                    op: None,
                };
                self.audit(&who, what, &reason, &outcome);
            }
            Msg::AgentConnected { hello, tx, stored } => {
                self.agent_connected(hello, tx);
                self.reply(stored, Ok(()));
            }
            Msg::AgentDisconnected { context, session_id } => self.agent_disconnected(&context, &session_id),
            Msg::AgentReport { context, report } => self.agent_report(&context, report),
            Msg::AgentHeartbeat { context, in_flight } => {
                if let Some(a) = self.agents.get_mut(&context) {
                    a.last_seen = now_millis();
                    a.in_flight = in_flight;
                }
            }
            Msg::Metrics(reply) => {
                let connected = self.agents.values().filter(|a| a.tx.is_some()).count();
                let running = self
                    .releases
                    .values()
                    .filter_map(|r| r.queue.front())
                    .filter(|id| {
                        self.ops
                            .get(*id)
                            .is_some_and(|o| o.phase != OperationPhase::Queued)
                    })
                    .count();
                let queued: usize = self.releases.values().map(|r| r.queue.len()).sum::<usize>() - running;
                let gauges = Gauges {
                    connected,
                    contexts: self.registry.len(),
                    running,
                    queued,
                    diffs_pending: self.diffs.len(),
                };
                let _ = reply.send(Ok(self.metrics.render(&gauges)));
            }
            Msg::Diff { prepared, reply } => {
                let waits = self.start_diff(&prepared);
                let _ = reply.send(waits);
            }
            Msg::DiffAnswer {
                context,
                operation_id,
                outcome,
            } => {
                if let Some(a) = self.agents.get_mut(&context) {
                    a.last_seen = now_millis();
                }
                self.diffs.answer(&operation_id, &context, outcome);
            }
            Msg::RenderFacts {
                release,
                contexts,
                reply,
            } => {
                // The revision a submit now would get.
                let revision = self
                    .releases
                    .get(&release)
                    .map_or(0, |r| r.record.latest_revision)
                    + 1;
                let _ = reply.send(self.current_facts(&release, revision, &contexts));
            }
            Msg::Rendered { op_id, result } => self.rendered(&op_id, result),
            Msg::Reprepared { op_id, result } => self.reprepared(&op_id, result),
            Msg::StillWaitingForVault { op_id, why } => {
                if self.vault_wait.contains_key(&op_id) {
                    self.wait_for_secrets(&op_id, &why);
                }
            }
            Msg::Measured {
                op_id,
                at,
                measurement,
            } => {
                let step = self.step(&op_id, |op, env, now| {
                    op.on_measurement(env, at, measurement, now)
                });
                self.apply_step(&op_id, step);
            }
            Msg::Shutdown => self.stop = true,
        }
    }

    /// Sends a dry run of `p` to each target context's agent, outside any operation
    /// (nothing to record, so nothing waits for a commit). Contexts without a connected
    /// agent are answered at once.
    fn start_diff(&mut self, p: &Prepared) -> Vec<DiffWait> {
        use crate::diff::{ContextDiff, DiffOutcome};
        let operation_id = self.diffs.next_id();
        // The revision a submit would get: the agent compares against what the cluster
        // runs and prunes what the newest earlier revision had.
        let revision = self
            .releases
            .get(&p.meta.name)
            .map_or(0, |r| r.record.latest_revision)
            + 1;
        let health = (p.plan.progress_deadline, p.plan.min_ready_window);
        let order: Vec<&String> = p.plan.waves.iter().flatten().collect();
        let mut waits = Vec::with_capacity(order.len());
        for context in order {
            let region = self
                .registry
                .get(context)
                .map(|c| c.region.clone())
                .unwrap_or_default();
            let cmd = OutCommand {
                release: p.meta.name.clone(),
                revision,
                operation_id: operation_id.clone(),
                body: OutBody::DryRun(ApplyBody::of(p, context, health)),
            };
            let agent = self.agents.get(context);
            let sent = agent
                .and_then(|a| a.tx.as_ref())
                .is_some_and(|tx| tx.send(Box::new(cmd)).is_ok());
            if sent {
                let (tx, answer) = tokio::sync::oneshot::channel();
                self.diffs.wait_for(&operation_id, context, tx);
                waits.push(DiffWait::Pending {
                    context: context.clone(),
                    region,
                    answer,
                });
            } else {
                let why = match agent {
                    Some(a) => format!(
                        "no agent connected (last seen {}s ago): nothing compared",
                        now_millis().saturating_sub(a.last_seen) / 1000
                    ),
                    None => "no agent has connected for this context: nothing compared".to_string(),
                };
                waits.push(DiffWait::Ready(ContextDiff {
                    context: context.clone(),
                    region,
                    outcome: DiffOutcome::AgentOffline(why),
                }));
            }
        }
        tracing::info!(release = %p.meta.name, operation = %operation_id, contexts = waits.len(), "diff dry runs sent");
        waits
    }

    /// Replies after the change is durable: commit first, and turn a failed commit
    /// into an error for the caller instead of a false "accepted".
    fn reply<T>(
        &mut self,
        reply: tokio::sync::oneshot::Sender<Result<T, CoreError>>,
        r: Result<T, CoreError>,
    ) {
        let committed = self.flush();
        let r = match (r, committed) {
            (Ok(v), Ok(())) => Ok(v),
            (Ok(_), Err(e)) => Err(e),
            (Err(e), _) => Err(e),
        };
        let _ = reply.send(r);
    }

    /// Writes pending changes, then sends commands and events. Nothing leaves before
    /// the store has it.
    ///
    /// Fail-stop: a commit that fails leaves the in-memory state ahead of the store
    /// (revisions, audit entries, operation steps the store never got), so the core
    /// acts on none of it. It holds the effects back, answers the caller with the
    /// error, stops taking messages and reports why on [`Core::failure`]; the server
    /// then exits non-zero and a restarted coordinator resumes from what the store
    /// holds, as after a crash.
    fn flush(&mut self) -> Result<(), CoreError> {
        if self.failure.borrow().is_some() {
            return Err(CoreError::Unavailable);
        }
        // A commit writes what changed: the contexts whose state changed and the
        // operation records whose phase, wave or message did, each once however many
        // reports touched it. (Writing the whole operation on every commit made a
        // rollout's writes grow with the square of the fleet.) Contexts go first and the
        // operation records last, the order a backend that must split a large commit
        // keeps (see `store::etcd`).
        let mut full = std::mem::take(&mut self.dirty_ops);
        full.sort_unstable();
        full.dedup();
        let mut heads = std::mem::take(&mut self.dirty_heads);
        heads.sort_unstable();
        heads.dedup();
        heads.retain(|id| full.binary_search(id).is_err());
        let mut contexts = std::mem::take(&mut self.dirty_contexts);
        contexts.sort_unstable();
        contexts.dedup();
        contexts.retain(|(id, _)| full.binary_search(id).is_err());
        for (id, ctx) in &contexts {
            let Some(key) = self.op_key(id) else { continue };
            if let Some(c) = self.ops.get(id).and_then(|op| op.contexts.get(ctx)) {
                StateStore::put_operation_context(&mut self.batch, &key, c);
            }
        }
        for (id, whole) in full
            .iter()
            .map(|id| (id, true))
            .chain(heads.iter().map(|id| (id, false)))
        {
            let Some(key) = self.op_key(id) else { continue };
            let Some(op) = self.ops.get_mut(id) else { continue };
            if whole {
                StateStore::put_operation(&mut self.batch, &key, op);
            } else {
                StateStore::put_operation_head(&mut self.batch, &key, op);
            }
        }
        let batch = std::mem::take(&mut self.batch);
        if let Err(e) = self.store.commit(batch) {
            tracing::error!(
                error = %e,
                "state store commit failed: stopping the coordinator so that it restarts from what the store holds; no command or event of the lost change was sent"
            );
            self.sends.clear();
            self.events.clear();
            self.stop = true;
            self.failure
                .send_replace(Some(format!("state store commit failed: {e}")));
            return Err(CoreError::store("committing a change")(e));
        }
        for (ctx, cmd) in std::mem::take(&mut self.sends) {
            if let Some(tx) = self.agents.get(&ctx).and_then(|a| a.tx.as_ref()) {
                // A closed session is noticed by the link; the command is re-sent when
                // the agent reconnects (commands are idempotent).
                let _ = tx.send(Box::new(cmd));
            }
        }
        for ev in std::mem::take(&mut self.events) {
            if let WatchKind::Operation(op) = &ev.kind {
                self.op_listeners.retain(|l| l.send((**op).clone()).is_ok());
            }
            self.watchers.publish(&ev);
        }
        Ok(())
    }

    /// Where operation `id` is stored.
    fn op_key(&self, id: &str) -> Option<String> {
        let op = self.ops.get(id)?;
        let rel = self.releases.get(&op.release)?;
        Some(
            rel.op_keys
                .get(id)
                .cloned()
                .unwrap_or_else(|| operation_key(&op.release, 0, id)),
        )
    }

    /// Writes waiting for the next commit (an upper bound).
    fn pending_writes(&self) -> usize {
        self.batch.len() + self.dirty_ops.len() + self.dirty_heads.len() + self.dirty_contexts.len()
    }

    /// The newest succeeded deploy of a release in `environment` that shipped the
    /// chart archive `digest`.
    fn ran_healthy(&self, digest: &str, environment: &str) -> Result<Option<(String, u64)>, CoreError> {
        for rel in self
            .releases
            .values()
            .filter(|r| r.record.environment == environment)
        {
            let revisions = self
                .store
                .revisions(&rel.record.name)
                .map_err(CoreError::store("reading the release's revisions"))?;
            if let Some(r) = revisions.iter().rev().find(|r| {
                r.kind == OperationKind::Deploy
                    && r.phase == OperationPhase::Succeeded
                    && r.chart_digest == digest
            }) {
                return Ok(Some((rel.record.name.clone(), r.number)));
            }
        }
        Ok(None)
    }

    fn next_seq(&mut self) -> u64 {
        let mut seq = self.seq;
        let s = self.store.next_seq(&mut self.batch, &mut seq);
        self.seq = seq;
        s
    }

    fn audit(&mut self, who: &Principal, what: Audit<'_>, reason: &str, outcome: &str) {
        self.record_audit(AuditNote::new(who, what, reason, outcome));
    }

    /// Writes an audit entry (numbered, and stamped with the time now).
    fn record_audit(&mut self, note: AuditNote) {
        let seq = self.next_seq();
        let AuditNote {
            who,
            action,
            release,
            revision,
            op,
            reason,
            outcome,
        } = note;
        tracing::info!(
            who = %who,
            action = action.as_str(),
            release = release.as_str(),
            ?revision,
            reason = reason.as_str(),
            outcome = outcome.as_str(),
            "audit"
        );
        let entry = AuditEntry {
            seq,
            at: now_millis(),
            who,
            action,
            release,
            revision,
            operation_id: op,
            reason,
            outcome,
        };
        self.batch.put(Table::Audit, format!("{seq:020}"), &entry);
    }

    // ---- operations ------------------------------------------------------------------

    fn start_next(&mut self, release: &str) {
        loop {
            let Some(id) = self.releases.get(release).and_then(|r| r.queue.front().cloned()) else {
                return;
            };
            if self.ops[&id].phase != OperationPhase::Queued {
                return;
            }
            if self.vault_wait.contains_key(&id) {
                // Started once Vault answers (see `reprepared`).
                return;
            }
            if self.ops[&id].kind == OperationKind::Deploy && !self.prepared.contains_key(&id) {
                self.fail_unpreparable(&id, "its rendered objects are gone");
                self.finish_op(&id);
                continue;
            }
            if self.ops[&id].kind == OperationKind::Deploy {
                if self.rendering.contains(&id) {
                    return;
                }
                match self.render_again_if_stale(&id) {
                    Ok(true) => return,
                    Ok(false) => {}
                    Err(why) => {
                        self.fail_render(&id, &why);
                        self.finish_op(&id);
                        continue;
                    }
                }
            }
            let step = self.step(&id, |op, env, now| op.start(env, now));
            self.apply_step(&id, step);
            if !self.ops[&id].phase.is_final() {
                return;
            }
        }
    }

    /// A deploy about to start whose render was made with other facts than hold now
    /// (it waited behind another operation that changed the release's history in a
    /// context, an agent reported other capabilities, or a concurrent submit took the
    /// revision number it expected) is rendered again first, with its recorded secret
    /// versions: true when that was asked for. A render made for this start is used
    /// as it is.
    fn render_again_if_stale(&mut self, id: &str) -> Result<bool, String> {
        if self.rerendered.contains(id) {
            return Ok(false);
        }
        let (Some(op), Some(prepared)) = (self.ops.get(id), self.prepared.get(id)) else {
            return Ok(false);
        };
        let (release, revision) = (op.release.clone(), op.revision);
        let current = self.current_facts(&release, revision, op.plan.contexts());
        let stale: Vec<&str> = current
            .iter()
            .filter(|(c, f)| prepared.facts.get(*c) != Some(*f))
            .map(|(c, _)| c.as_str())
            .collect();
        if stale.is_empty() {
            return Ok(false);
        }
        let stale = stale.join(", ");
        let renderer = self
            .renderer
            .as_ref()
            .ok_or("this coordinator cannot render again")?;
        let inputs = self
            .store
            .inputs(&release, revision)
            .map_err(|e| e.to_string())?
            .ok_or("its submitted release and chart are not stored")?;
        let pinned = self
            .revisions
            .get(&release)
            .and_then(|rs| rs.iter().find(|r| r.number == revision))
            .map(|r| r.secret_versions.clone())
            .unwrap_or_default();
        tracing::info!(
            %release,
            revision,
            operation = %id,
            contexts = %stale,
            "rendering again before the start: the clusters or the release's history there changed since the submit"
        );
        renderer
            .send(RenderJob {
                op_id: id.to_string(),
                inputs,
                pinned,
                facts: current,
            })
            .map_err(|_| "the renderer stopped".to_string())?;
        self.rendering.insert(id.to_string());
        Ok(true)
    }

    /// A render asked for by [`Core::render_again_if_stale`] is back: the revision
    /// records what it was made with, and the operation starts (or fails, with why).
    fn rendered(&mut self, id: &str, result: Result<Box<Prepared>, String>) {
        if !self.rendering.remove(id) {
            return;
        }
        let Some(op) = self.ops.get(id) else { return };
        if op.phase != OperationPhase::Queued {
            // Cancelled meanwhile.
            return;
        }
        let (release, revision) = (op.release.clone(), op.revision);
        match result {
            Ok(prepared) => {
                if let Some(r) = self
                    .revisions
                    .get_mut(&release)
                    .and_then(|rs| rs.iter_mut().find(|r| r.number == revision))
                {
                    r.rendered_with = RenderRecord::of(&prepared.facts);
                    self.batch
                        .put(Table::Revisions, revision_key(&release, revision), &*r);
                }
                self.remember_masker(&prepared);
                self.prepared.insert(id.to_string(), Arc::new(*prepared));
                self.rerendered.insert(id.to_string());
            }
            Err(why) => {
                self.fail_render(id, &why);
                self.finish_op(id);
                return;
            }
        }
        self.start_next(&release);
    }

    /// A deploy whose render for its start failed does not start.
    fn fail_render(&mut self, id: &str, why: &str) {
        if let Some(op) = self.ops.get_mut(id) {
            op.phase = OperationPhase::Failed;
            op.finished_at = Some(now_millis());
            op.message = format!("rendering for the clusters as they are at the start failed: {why}");
            self.dirty_ops.push(id.to_string());
            self.push_op_event(id);
        }
    }

    /// Runs one orchestrator step on an operation.
    fn step(&mut self, id: &str, f: impl FnOnce(&mut Operation, &mut dyn Env, Millis) -> Step) -> Step {
        let now = now_millis();
        let Some(op) = self.ops.get_mut(id) else {
            return Step::default();
        };
        let Some(rel) = self.releases.get_mut(&op.release) else {
            return Step::default();
        };
        let mut env = StepEnv {
            agents: &self.agents,
            record: &mut rel.record,
            batch: &mut self.batch,
        };
        f(op, &mut env, now)
    }

    /// Turns a step's actions into pending effects.
    fn apply_step(&mut self, id: &str, step: Step) {
        if step.persist {
            // What to write: the contexts the step changed, and the operation's own
            // record when it changed (or, for a step that says neither, all of it).
            let mut named = false;
            for a in &step.actions {
                match a {
                    Action::ContextChanged(state) => {
                        self.dirty_contexts.push((id.to_string(), state.context.clone()));
                        named = true;
                    }
                    Action::OperationChanged => {
                        self.dirty_heads.push(id.to_string());
                        named = true;
                    }
                    Action::Send { .. } => {}
                }
            }
            if !named {
                self.dirty_ops.push(id.to_string());
            }
        }
        for action in step.actions {
            match action {
                Action::Send { context, command } => {
                    if let Some(cmd) = self.out_command(id, &context, command) {
                        self.sends.push((context, cmd));
                    }
                }
                Action::ContextChanged(state) => self.push_context_state(id, *state),
                Action::OperationChanged => self.push_op_event(id),
            }
        }
        if self.ops.get(id).is_some_and(|o| o.phase.is_final()) {
            self.finish_op(id);
        }
        self.reconcile_gate(id);
    }

    fn out_command(&self, id: &str, context: &str, command: Command) -> Option<OutCommand> {
        let op = self.ops.get(id)?;
        let health = (op.plan.progress_deadline, op.plan.min_ready_window);
        let apply_body = || Some(ApplyBody::of(self.prepared.get(id)?, context, health));
        let (revision, operation_id, body) = match command {
            Command::Apply { revision } => (revision, op.id.clone(), OutBody::Apply(apply_body()?)),
            // A blue/green's stage is an apply into the idle slot, as its own command.
            Command::Canary {
                revision,
                step,
                weight,
            } => {
                let body = match op.plan.blue_green {
                    Some(bg) => OutBody::Apply(ApplyBody {
                        blue_green: Some(bg.preview_service),
                        ..apply_body()?
                    }),
                    None => OutBody::Canary(apply_body()?, weight),
                };
                (revision, canary_operation_id(&op.id, step), body)
            }
            Command::Switch { revision } => (
                revision,
                op.id.clone(),
                OutBody::Switch {
                    retire_after_seconds: op.plan.blue_green.map_or(0, |bg| {
                        u32::try_from(bg.keep_previous_for.as_secs()).unwrap_or(u32::MAX)
                    }),
                },
            ),
            // A blue/green's preflight dry-runs the stage (the slot objects, the live
            // slot kept), not a plain apply, which would prune the slots.
            Command::DryRun { revision } => (
                revision,
                format!("{}{PREFLIGHT_SUFFIX}", op.id),
                OutBody::DryRun(ApplyBody {
                    blue_green: op.plan.blue_green.map(|bg| bg.preview_service),
                    ..apply_body()?
                }),
            ),
            Command::Rollback { revision, target } => {
                (revision, op.id.clone(), OutBody::Rollback { target, health })
            }
            Command::Abort { revision, stage } => {
                let oid = match stage {
                    Stage::Preflight => format!("{}{PREFLIGHT_SUFFIX}", op.id),
                    Stage::Canary(k) => canary_operation_id(&op.id, k),
                    Stage::Main | Stage::Rollback => op.id.clone(),
                };
                (
                    revision,
                    oid,
                    OutBody::Abort {
                        reason: op.message.clone(),
                    },
                )
            }
        };
        Some(OutCommand {
            release: op.release.clone(),
            revision,
            operation_id,
            body,
        })
    }

    /// Completes a finished operation: outcome in its revision, deployed revisions per
    /// context, off the queue, next one started.
    fn finish_op(&mut self, id: &str) {
        // Once only: a finished operation stays known (for status), and a late report
        // for it (an agent's unacknowledged final event after a restart) steps it
        // again; finishing it twice would record its rollback revision twice. Checked
        // before the copy below: after a restart of a 10,000-context fleet every agent
        // brings such reports, and copying the operation for each made the restart
        // quadratic (11 minutes to resume, 4 GB).
        let Some(release) = self.ops.get(id).map(|op| op.release.clone()) else {
            return;
        };
        if !self
            .releases
            .get(&release)
            .is_some_and(|r| r.queue.iter().any(|q| q == id))
        {
            return;
        }
        let Some(mut op) = self.ops.get(id).cloned() else {
            return;
        };
        let now = now_millis();
        let outcomes: Vec<ContextOutcome> = op
            .contexts
            .values()
            .map(|c| ContextOutcome {
                context: c.context.clone(),
                phase: c.phase,
                message: c.message.clone(),
                duration_ms: match (c.dispatched_at, c.finished_at) {
                    (Some(a), Some(b)) => b.saturating_sub(a),
                    _ => 0,
                },
            })
            .collect();
        self.metrics.record(&op);
        let release = op.release.clone();
        let Some(rel) = self.releases.get_mut(&release) else {
            return;
        };
        for c in op.contexts.values() {
            if c.received {
                rel.record.applied.insert(c.context.clone(), op.revision);
            }
            match c.phase {
                ContextPhase::Healthy if op.kind == OperationKind::Deploy => {
                    rel.record.deployed.insert(c.context.clone(), op.revision);
                }
                ContextPhase::RolledBack => {
                    let r = if op.kind == OperationKind::Rollback {
                        op.revision
                    } else {
                        op.rollback_revision.unwrap_or(op.revision)
                    };
                    rel.record.deployed.insert(c.context.clone(), r);
                }
                _ => {}
            }
        }
        rel.queue.retain(|q| q != id);
        rel.last_op = Some(id.to_string());
        let key = rel.op_keys.remove(id);
        let record = rel.record.clone();
        self.batch.put(Table::Releases, release.clone(), &record);
        if let Some(key) = key {
            StateStore::put_operation(&mut self.batch, &key, &mut op);
        }
        let revs = self.revisions.entry(release.clone()).or_default();
        if let Some(r) = revs.iter_mut().find(|r| r.number == op.revision) {
            r.phase = op.phase;
            r.outcomes = outcomes.clone();
            r.message = op.message.clone();
            let r = r.clone();
            self.batch
                .put(Table::Revisions, revision_key(&release, r.number), &r);
        }
        // An automatic rollback is a revision of its own, like Helm's.
        if let Some(rb) = op.rollback_revision {
            let failed = revs.iter().find(|r| r.number == op.revision).cloned();
            let target = op.contexts.values().filter_map(|c| c.previous_revision).max();
            // The rollback ships what the target revision shipped.
            let restored = target.and_then(|t| revs.iter().find(|r| r.number == t)).cloned();
            let rolled_back_ok = op
                .contexts
                .values()
                .filter(|c| c.received)
                .all(|c| c.phase == ContextPhase::RolledBack);
            let rec = RevisionRecord {
                release: release.clone(),
                number: rb,
                rollback_to: target,
                operation_id: op.id.clone(),
                submitted_by: "convoy (automatic rollback)".into(),
                reason: op.message.clone(),
                submitted_at: now,
                outcomes,
                phase: if rolled_back_ok {
                    OperationPhase::Succeeded
                } else {
                    OperationPhase::Failed
                },
                contexts: failed.map(|b| b.contexts).unwrap_or_default(),
                ..RevisionRecord::rollback_shipping(restored.as_ref())
            };
            self.batch.put(Table::Revisions, revision_key(&release, rb), &rec);
            revs.push(rec);
            revs.sort_by_key(|r| r.number);
        }
        self.prepared.remove(id);
        self.rendering.remove(id);
        self.rerendered.remove(id);
        // Keep only the newest finished operation of a release in memory.
        let stale: Vec<String> = self
            .ops
            .values()
            .filter(|o| o.release == release && o.phase.is_final() && o.id != id)
            .map(|o| o.id.clone())
            .collect();
        for s in stale {
            self.ops.remove(&s);
        }
        self.start_next(&release);
    }

    /// The operation at the front of each release's queue that has started (not
    /// `Queued`) and for which `keep` holds.
    pub(super) fn started_ops(&self, keep: impl Fn(&Operation) -> bool) -> Vec<String> {
        self.releases
            .values()
            .filter_map(|r| r.queue.front().cloned())
            .filter(|id| {
                self.ops
                    .get(id)
                    .is_some_and(|o| o.phase != OperationPhase::Queued && keep(o))
            })
            .collect()
    }

    fn tick(&mut self) {
        self.diffs.sweep();
        let running = self.started_ops(|o| !o.phase.is_final());
        for id in running {
            let step = self.step(&id, |op, env, now| op.on_tick(env, now));
            // (which also starts measuring for an operation restored mid-gate)
            self.apply_step(&id, step);
        }
    }
}

//! The simulated cluster: an in-memory [`Backend`] for the demo, benchmarks and fast
//! tests.
//!
//! It keeps objects (with the release that owns each), per-release history (the last
//! `history_limit` revisions with their full objects, so rollback needs nothing
//! else), per-release locks, and the rollouts of the current revision. Rollouts follow
//! the `sim.convoy.dev/behavior` pod-template annotation (see [`crate::sim::behavior`])
//! and are computed as timelines ([`crate::sim::rollout`]): a watch sleeps until the
//! next change, so one process can hold a thousand clusters. All timing uses tokio's
//! clock, so tests run under `tokio::time::pause()`.

// `Failure` is the Backend trait's error (the runtime sends it as is); it is built
// once per failed command, never on a hot path, so its size does not matter.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::backend::{
    ApplyRequest, Backend, CanaryRequest, ChangeError, ClusterCapabilities, DeployedRevision, Failure,
    FailureReason, FieldChange, HealthOutcome, HealthPolicy, HookOutcome, LockToken, Manifest, ObjectAction,
    ObjectRef, ObjectResult, OpRef, ProgressUpdate, StoredHooks,
};
use crate::bluegreen;
use crate::canary;
use crate::diff;
use crate::hooks::{Hook, HookEvent};
use crate::sim::objects::{self, Parsed};
use crate::sim::rollout::{Rollout, Watch};

mod hooks;
pub use hooks::HookRun;

/// Settings of one simulated cluster.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Revisions kept per release (at least 1).
    pub history_limit: usize,
    /// Added to every apply, dry run and rollback, to model a cluster API's latency.
    pub apply_latency: Duration,
    /// The Kubernetes version the cluster reports (`v1.20.0`, what `helm template`
    /// assumes, by default).
    pub kube_version: String,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            history_limit: 10,
            apply_latency: Duration::ZERO,
            kube_version: DEFAULT_SIM_KUBE_VERSION.to_string(),
        }
    }
}

/// The version a simulated cluster reports unless configured otherwise: Helm's default.
pub const DEFAULT_SIM_KUBE_VERSION: &str = "v1.20.0";

/// The API versions a simulated cluster reports: the list `helm template` assumes
/// without a cluster.
pub use convoy_common::DEFAULT_API_VERSIONS as HELM_DEFAULT_API_VERSIONS;

/// An in-memory cluster behind the [`Backend`] trait.
#[derive(Debug)]
pub struct SimBackend {
    config: SimConfig,
    state: Mutex<Cluster>,
}

#[derive(Debug, Default)]
struct Cluster {
    objects: BTreeMap<ObjectRef, Live>,
    releases: HashMap<String, Release>,
}

/// An object in the cluster and the release that owns it.
#[derive(Debug, Clone)]
struct Live {
    release: String,
    body: Arc<Value>,
}

#[derive(Debug, Default)]
struct Release {
    /// Oldest first.
    history: VecDeque<Revision>,
    current: Option<u64>,
    lock: Option<String>,
    /// The workloads of the current revision, by object.
    rollouts: BTreeMap<ObjectRef, Rollout>,
    /// Blue/green: the workloads the current revision kept (the old slot), by object,
    /// so a rollback re-applying one unchanged finds it rolled out already.
    kept_rollouts: BTreeMap<ObjectRef, Rollout>,
    /// The canary Deployments of the last canary step, by object (their objects are
    /// in `Cluster::objects`, labelled `convoy.dev/track: canary`, never in history).
    canary: BTreeMap<ObjectRef, Rollout>,
    /// Hook objects left in the cluster (their delete policy kept them): apart from
    /// `Cluster::objects`, as hooks are neither pruned nor judged for health.
    hook_objects: BTreeMap<ObjectRef, Arc<Value>>,
    /// Every hook run, oldest first.
    hook_runs: Vec<HookRun>,
}

#[derive(Debug, Clone)]
struct Revision {
    revision: u64,
    chart: String,
    namespace: String,
    objects: Arc<Vec<(ObjectRef, Arc<Value>)>>,
    /// The revision's hooks as sent, for a rollback to it.
    hooks: Arc<Vec<Manifest>>,
    healthy: bool,
    /// Blue/green state (see `kube::history::RevisionRecord`'s fields of the names).
    slots: Slots,
}

/// Objects as stored: identity and body.
type Stored = Vec<(ObjectRef, Arc<Value>)>;

/// A revision's blue/green state; the default: none.
#[derive(Debug, Clone, Default)]
struct Slots {
    slot: Option<String>,
    live_slot: Option<String>,
    switched: bool,
    services: Vec<String>,
    /// What the revision kept of the one it replaced (not pruned, not its own).
    kept: Arc<Vec<(ObjectRef, Arc<Value>)>>,
    retire_at: Option<Instant>,
    retired: bool,
}

impl Slots {
    fn serving(&self) -> Option<&str> {
        self.slot.as_ref()?;
        if self.switched {
            self.slot.as_deref()
        } else {
            self.live_slot.as_deref()
        }
    }

    fn kept_live(&self) -> &[(ObjectRef, Arc<Value>)] {
        if self.retired { &[] } else { &self.kept }
    }
}

impl Default for SimBackend {
    fn default() -> Self {
        SimBackend::new(SimConfig::default())
    }
}

impl SimBackend {
    pub fn new(config: SimConfig) -> Self {
        SimBackend {
            config: SimConfig {
                history_limit: config.history_limit.max(1),
                ..config
            },
            state: Mutex::new(Cluster::default()),
        }
    }

    fn cluster(&self) -> MutexGuard<'_, Cluster> {
        // A panic elsewhere while holding the lock leaves consistent data (every
        // mutation below completes before returning): keep serving.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn latency(&self) {
        if !self.config.apply_latency.is_zero() {
            tokio::time::sleep(self.config.apply_latency).await;
        }
    }

    /// The latency of a change, cut short by `cancel`: the whole change happens
    /// after it at once, so a cancelled one has changed nothing.
    async fn latency_until(&self, cancel: &CancellationToken) -> Result<(), ChangeError> {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => Err(ChangeError::Cancelled),
            _ = self.latency() => Ok(()),
        }
    }

    /// The live object, if any (for tests and the demo's inspection).
    pub fn object(&self, object: &ObjectRef) -> Option<Value> {
        self.cluster().objects.get(object).map(|l| (*l.body).clone())
    }

    /// Every live object owned by `release`.
    pub fn objects_of(&self, release: &str) -> Vec<ObjectRef> {
        self.cluster()
            .objects
            .iter()
            .filter(|(_, l)| l.release == release)
            .map(|(o, _)| o.clone())
            .collect()
    }

    /// Applies `objects` as `op.revision` of `op.release`: the shared core of apply
    /// and rollback. Fails before changing anything when an object belongs to another
    /// release and `adopt` is off.
    ///
    /// `slots`: the blue/green state to record; its `kept` objects (of the current
    /// revision) are neither applied nor pruned. Or a function of the current
    /// revision computing the objects and the state (blue/green reads its live slot).
    fn commit(
        &self,
        op: &OpRef,
        stored: (&str, &str, Arc<Vec<Manifest>>),
        make: impl FnOnce(Option<&Revision>) -> Result<(Stored, Slots), Failure>,
        adopt: bool,
    ) -> Result<Vec<ObjectResult>, Failure> {
        let (chart, namespace, hooks) = stored;
        let now = Instant::now();
        let mut guard = self.cluster();
        let cluster = &mut *guard;
        let (objects, mut slots) = make(cluster.releases.get(&op.release).and_then(current_revision))?;
        check_ownership(cluster, &op.release, objects.iter().map(|(o, _)| o), adopt)?;
        let release = cluster.releases.entry(op.release.clone()).or_default();
        let new: std::collections::BTreeSet<&ObjectRef> = objects.iter().map(|(o, _)| o).collect();
        let kept: Vec<(ObjectRef, Arc<Value>)> = slots
            .kept
            .iter()
            .filter(|(o, _)| !new.contains(o))
            .cloned()
            .collect();
        let kept_refs: std::collections::BTreeSet<ObjectRef> = kept.iter().map(|(o, _)| o.clone()).collect();
        slots.kept = Arc::new(kept);
        let mut previous: Vec<ObjectRef> = Vec::new();
        if let Some(r) = current_revision(release) {
            for (o, _) in r.objects.iter().chain(r.slots.kept_live()) {
                if !kept_refs.contains(o) && !previous.contains(o) {
                    previous.push(o.clone());
                }
            }
        }

        // Decide everything before changing anything, so a refusal leaves no trace.
        let planned = plan_changes(&cluster.objects, &op.release, objects.clone())?;
        let (mut results, rollouts) = write_planned(&mut cluster.objects, &op.release, planned, now, |o| {
            release.rollouts.get(o).or_else(|| release.kept_rollouts.get(o))
        });
        let keep: std::collections::BTreeSet<&ObjectRef> = objects.iter().map(|(o, _)| o).collect();
        let mut pruned: Vec<ObjectRef> = previous.into_iter().filter(|o| !keep.contains(o)).collect();
        pruned.sort_by_key(|o| std::cmp::Reverse(objects::tier(&o.kind)));
        for object in pruned {
            if cluster
                .objects
                .get(&object)
                .is_some_and(|l| l.release == op.release)
            {
                cluster.objects.remove(&object);
            }
            results.push(result(object, ObjectAction::Pruned, Vec::new()));
        }

        let old_rollouts = std::mem::replace(&mut release.rollouts, rollouts);
        let old_kept = std::mem::take(&mut release.kept_rollouts);
        release.kept_rollouts = old_rollouts
            .into_iter()
            .chain(old_kept)
            .filter(|(o, _)| kept_refs.contains(o))
            .collect();
        release.current = Some(op.revision);
        let record = Revision {
            revision: op.revision,
            chart: chart.to_string(),
            namespace: namespace.to_string(),
            objects: Arc::new(objects),
            hooks,
            healthy: false,
            slots,
        };
        match release.history.iter_mut().find(|r| r.revision == op.revision) {
            Some(existing) => *existing = record,
            None => release.history.push_back(record),
        }
        while release.history.len() > self.config.history_limit {
            release.history.pop_front();
        }
        Ok(results)
    }
}

/// A request's objects: the render, or its blue/green transform (see
/// [`crate::bluegreen`]) beside `current`, with the slot state to record.
fn revision_objects(req: &ApplyRequest, current: Option<&Revision>) -> Result<(Stored, Slots), Failure> {
    let Some(bg) = req.blue_green else {
        return Ok((into_stored(objects::parse_request(req)?), Slots::default()));
    };
    let live = current.and_then(|r| r.slots.serving());
    let plan = bluegreen::plan(&req.manifests, &req.namespace, live, bg.preview_service)?;
    let docs = plan.objects.into_iter().map(|o| (o.source, o.body)).collect();
    let parsed = into_stored(objects::parse_bodies(req, docs)?);
    let kept = match current {
        None => Vec::new(),
        Some(r) => {
            let objects: Vec<&Value> = r.objects.iter().map(|(_, b)| &**b).collect();
            let kept_bodies: Vec<&Value> = r.slots.kept_live().iter().map(|(_, b)| &**b).collect();
            let keep = bluegreen::to_keep(&objects, &kept_bodies, r.slots.slot.is_some(), live);
            r.objects
                .iter()
                .chain(r.slots.kept_live())
                .filter(|(_, b)| keep.iter().any(|k| std::ptr::eq(*k, &**b)))
                .cloned()
                .collect()
        }
    };
    let slots = Slots {
        slot: Some(plan.slot),
        live_slot: live.map(str::to_string),
        switched: false,
        services: plan.services,
        kept: Arc::new(kept),
        retire_at: None,
        retired: false,
    };
    Ok((parsed, slots))
}

fn current_revision(release: &Release) -> Option<&Revision> {
    let current = release.current?;
    release.history.iter().find(|r| r.revision == current)
}

fn result(object: ObjectRef, action: ObjectAction, changes: Vec<FieldChange>) -> ObjectResult {
    ObjectResult {
        object,
        action,
        changes,
        message: String::new(),
    }
}

/// One object an apply will write: its body, what happens to it, and its pod spec when
/// it is a workload.
type Planned = (
    ObjectRef,
    Arc<Value>,
    ObjectAction,
    Option<crate::sim::rollout::PodSpec>,
);

/// What applying `objects` for `release` would do to each, in apply order, decided
/// against the live objects before anything changes (a refusal leaves no trace).
fn plan_changes(
    live: &BTreeMap<ObjectRef, Live>,
    release: &str,
    objects: Vec<(ObjectRef, Arc<Value>)>,
) -> Result<Vec<Planned>, Failure> {
    let mut planned = Vec::with_capacity(objects.len());
    for (object, body) in sorted(objects) {
        let action = match live.get(&object) {
            None => ObjectAction::Created,
            Some(l) if l.body == body && l.release == release => ObjectAction::Unchanged,
            Some(_) => ObjectAction::Configured,
        };
        let spec = objects::pod_spec(&object, &body, action == ObjectAction::Created)
            .map_err(|m| Failure::new(FailureReason::ApplyRefused, m).with_object(object.clone()))?;
        planned.push((object, body, action, spec));
    }
    Ok(planned)
}

/// Writes `planned` into the cluster as `release`'s; returns the results and each
/// workload's rollout. An unchanged workload keeps rolling (or stays rolled out) from
/// when it last changed, as its controller would: the rollout `previous` gives for it.
fn write_planned<'r>(
    live: &mut BTreeMap<ObjectRef, Live>,
    release: &str,
    planned: Vec<Planned>,
    now: Instant,
    previous: impl Fn(&ObjectRef) -> Option<&'r Rollout>,
) -> (Vec<ObjectResult>, BTreeMap<ObjectRef, Rollout>) {
    let mut results = Vec::with_capacity(planned.len());
    let mut rollouts = BTreeMap::new();
    for (object, body, action, spec) in planned {
        if let Some(spec) = spec {
            let rollout = match previous(&object).filter(|_| action == ObjectAction::Unchanged) {
                Some(r) => r.clone(),
                None => Rollout {
                    object: object.clone(),
                    pod_prefix: format!("{}-{}", object.name, objects::template_hash(&body)),
                    spec,
                    started: now,
                },
            };
            rollouts.insert(object.clone(), rollout);
        }
        let l = Live {
            release: release.to_string(),
            body,
        };
        live.insert(object.clone(), l);
        results.push(result(object, action, Vec::new()));
    }
    (results, rollouts)
}

/// Namespaces and CRDs first, then Helm's kind order; stable inside a tier.
fn sorted(mut objects: Vec<(ObjectRef, Arc<Value>)>) -> Vec<(ObjectRef, Arc<Value>)> {
    objects.sort_by_key(|(o, _)| objects::tier(&o.kind));
    objects
}

fn owned_elsewhere_message(object: &ObjectRef, owner: &str) -> String {
    format!("{object} belongs to release {owner}; set adopt to take it over")
}

fn check_ownership<'a>(
    cluster: &Cluster,
    release: &str,
    objects: impl Iterator<Item = &'a ObjectRef>,
    adopt: bool,
) -> Result<(), Failure> {
    if adopt {
        return Ok(());
    }
    for object in objects {
        if let Some(live) = cluster.objects.get(object)
            && live.release != release
        {
            return Err(Failure::new(
                FailureReason::OwnedByAnotherRelease,
                owned_elsewhere_message(object, &live.release),
            )
            .with_object(object.clone()));
        }
    }
    Ok(())
}

fn into_stored(parsed: Vec<Parsed>) -> Vec<(ObjectRef, Arc<Value>)> {
    parsed.into_iter().map(|p| (p.object, Arc::new(p.body))).collect()
}

/// Whether a live object is a canary object of `release` in `namespace`.
fn is_canary_of(object: &ObjectRef, live: &Live, release: &str, namespace: &str) -> bool {
    live.release == release
        && object.namespace.as_deref() == Some(namespace)
        && live.body["metadata"]["labels"][canary::TRACK_LABEL] == canary::CANARY_TRACK
}

/// Follows `rollouts` on tokio's clock until they settle or `cancel` fires.
async fn run_watch(
    rollouts: Vec<Rollout>,
    health: HealthPolicy,
    progress: mpsc::Sender<ProgressUpdate>,
    cancel: CancellationToken,
) -> HealthOutcome {
    let mut watch = Watch::new(rollouts, health, Instant::now());
    loop {
        if cancel.is_cancelled() {
            return HealthOutcome::Cancelled;
        }
        let step = watch.step(Instant::now());
        if let Some(update) = step.progress {
            // A gone receiver only means nobody listens to progress any more.
            let _ = progress.send(update).await;
        }
        if let Some(outcome) = step.outcome {
            return outcome;
        }
        match step.next {
            Some(at) => {
                tokio::select! {
                    biased;
                    _ = cancel.cancelled() => return HealthOutcome::Cancelled,
                    _ = tokio::time::sleep_until(at) => {}
                }
            }
            None => {
                cancel.cancelled().await;
                return HealthOutcome::Cancelled;
            }
        }
    }
}

impl SimBackend {
    /// Applies a canary step's objects (see [`Backend::apply_canary_until`]): decided
    /// before anything changes, so a refusal leaves no trace.
    fn commit_canary(&self, req: &CanaryRequest) -> Result<Vec<ObjectResult>, Failure> {
        let op = &req.apply.op;
        let namespace = req.apply.namespace.as_str();
        let plan = canary::plan(&req.apply.manifests, namespace, req.weight_percent)?;
        let mut objects = Vec::with_capacity(plan.objects.len());
        for o in plan.objects {
            let parsed = objects::place_and_label(o.body, &o.source, namespace, &op.release)?;
            objects.push((parsed.object, Arc::new(parsed.body)));
        }
        let now = Instant::now();
        let mut guard = self.cluster();
        let cluster = &mut *guard;
        check_ownership(
            cluster,
            &op.release,
            objects.iter().map(|(o, _)| o),
            req.apply.adopt,
        )?;
        let planned = plan_changes(&cluster.objects, &op.release, objects)?;
        let release = cluster.releases.entry(op.release.clone()).or_default();
        let (mut results, rollouts) = write_planned(&mut cluster.objects, &op.release, planned, now, |o| {
            release.canary.get(o)
        });
        release.canary = rollouts;
        let keep: std::collections::BTreeSet<ObjectRef> = results.iter().map(|r| r.object.clone()).collect();
        let mut stale: Vec<ObjectRef> = cluster
            .objects
            .iter()
            .filter(|(o, l)| !keep.contains(*o) && is_canary_of(o, l, &op.release, namespace))
            .map(|(o, _)| o.clone())
            .collect();
        stale.sort_by_key(|o| std::cmp::Reverse(objects::tier(&o.kind)));
        for object in stale {
            cluster.objects.remove(&object);
            results.push(result(object, ObjectAction::Pruned, Vec::new()));
        }
        Ok(results)
    }
}

impl Backend for SimBackend {
    fn kind(&self) -> &'static str {
        "simulated"
    }

    /// In memory there is no dead holder to recover from (the lock dies with the
    /// process); the same operation taking it again succeeds, as a resumed one would.
    async fn lock(&self, op: &OpRef) -> Result<LockToken, Failure> {
        let mut cluster = self.cluster();
        let release = cluster.releases.entry(op.release.clone()).or_default();
        match &release.lock {
            Some(holder) if *holder != op.operation_id => Err(Failure::new(
                FailureReason::LockHeld,
                format!("release {} is locked by operation {holder}", op.release),
            )),
            _ => {
                release.lock = Some(op.operation_id.clone());
                Ok(LockToken {
                    release: op.release.clone(),
                    holder: op.operation_id.clone(),
                })
            }
        }
    }

    async fn unlock(&self, token: LockToken) -> Result<(), Failure> {
        let mut cluster = self.cluster();
        if let Some(release) = cluster.releases.get_mut(&token.release)
            && release.lock.as_deref() == Some(token.holder.as_str())
        {
            release.lock = None;
        }
        Ok(())
    }

    async fn apply_until(
        &self,
        req: &ApplyRequest,
        cancel: CancellationToken,
    ) -> Result<Vec<ObjectResult>, ChangeError> {
        self.latency_until(&cancel).await?;
        let stored = (
            req.chart.as_str(),
            req.namespace.as_str(),
            Arc::new(req.hooks.clone()),
        );
        Ok(self.commit(
            &req.op,
            stored,
            |current| revision_objects(req, current),
            req.adopt,
        )?)
    }

    async fn dry_run(&self, req: &ApplyRequest) -> Result<Vec<ObjectResult>, Failure> {
        self.latency().await;
        let cluster = self.cluster();
        let current = cluster.releases.get(&req.op.release).and_then(current_revision);
        let (objects, slots) = revision_objects(req, current)?;
        let kept: std::collections::BTreeSet<&ObjectRef> = slots.kept.iter().map(|(o, _)| o).collect();
        let previous: Vec<ObjectRef> = current
            .map(|r| {
                r.objects
                    .iter()
                    .chain(r.slots.kept_live())
                    .map(|(o, _)| o.clone())
                    .filter(|o| !kept.contains(o))
                    .collect()
            })
            .unwrap_or_default();
        let mut results = Vec::with_capacity(objects.len());
        let stored = sorted(objects);
        for (object, body) in &stored {
            let r = match cluster.objects.get(object) {
                Some(live) if live.release != req.op.release && !req.adopt => ObjectResult {
                    message: owned_elsewhere_message(object, &live.release),
                    ..result(object.clone(), ObjectAction::Refused, Vec::new())
                },
                None => result(object.clone(), ObjectAction::Created, Vec::new()),
                Some(live) => {
                    let changes = diff::changes(&live.body, body, objects::REVISION_ANNOTATION);
                    let action = if changes.is_empty() {
                        ObjectAction::Unchanged
                    } else {
                        ObjectAction::Configured
                    };
                    result(object.clone(), action, changes)
                }
            };
            results.push(r);
        }
        let keep: std::collections::BTreeSet<&ObjectRef> = stored.iter().map(|(o, _)| o).collect();
        let mut pruned: Vec<ObjectRef> = previous.into_iter().filter(|o| !keep.contains(o)).collect();
        pruned.sort_by_key(|o| std::cmp::Reverse(objects::tier(&o.kind)));
        results.extend(
            pruned
                .into_iter()
                .map(|o| result(o, ObjectAction::Pruned, Vec::new())),
        );
        Ok(results)
    }

    async fn rollback_until(
        &self,
        op: &OpRef,
        target_revision: u64,
        cancel: CancellationToken,
    ) -> Result<Vec<ObjectResult>, ChangeError> {
        self.latency_until(&cancel).await?;
        let target = {
            let cluster = self.cluster();
            let release = cluster.releases.get(&op.release);
            let found = release.and_then(|r| r.history.iter().find(|h| h.revision == target_revision));
            match found {
                Some(r) => r.clone(),
                None => {
                    let kept: Vec<String> = release
                        .map(|r| r.history.iter().map(|h| h.revision.to_string()).collect())
                        .unwrap_or_default();
                    return Err(Failure::new(
                        FailureReason::RevisionNotInHistory,
                        format!(
                            "release {} has no revision {target_revision} in this cluster's history (kept: [{}])",
                            op.release,
                            kept.join(", ")
                        ),
                    )
                    .into());
                }
            }
        };
        let stored = (
            target.chart.as_str(),
            target.namespace.as_str(),
            target.hooks.clone(),
        );
        // Blue/green: the restored revision's slot and switch state; a switched one
        // keeps nothing, an unswitched one what it kept (its Services select that).
        let mut slots = target.slots.clone();
        if slots.slot.is_none() || slots.switched {
            slots.kept = Arc::new(Vec::new());
        }
        slots.retire_at = None;
        slots.retired = false;
        let objects = (*target.objects).clone();
        Ok(self.commit(op, stored, move |_| Ok((objects, slots)), false)?)
    }

    async fn watch_rollout(
        &self,
        op: &OpRef,
        health: HealthPolicy,
        progress: mpsc::Sender<ProgressUpdate>,
        cancel: CancellationToken,
    ) -> HealthOutcome {
        let rollouts: Vec<Rollout> = {
            let cluster = self.cluster();
            let release = cluster.releases.get(&op.release);
            match release.and_then(|r| r.current) {
                Some(current) if current == op.revision => release
                    .map(|r| r.rollouts.values().cloned().collect())
                    .unwrap_or_default(),
                other => {
                    let at = other.map_or_else(|| "nothing".to_string(), |r| format!("revision {r}"));
                    return HealthOutcome::Failed(Failure::new(
                        FailureReason::Internal,
                        format!(
                            "cannot watch revision {} of release {}: the cluster has {at} applied",
                            op.revision, op.release
                        ),
                    ));
                }
            }
        };
        run_watch(rollouts, health, progress, cancel).await
    }

    async fn apply_canary_until(
        &self,
        req: &CanaryRequest,
        cancel: CancellationToken,
    ) -> Result<Vec<ObjectResult>, ChangeError> {
        self.latency_until(&cancel).await?;
        Ok(self.commit_canary(req)?)
    }

    async fn watch_canary(
        &self,
        op: &OpRef,
        workloads: &[ObjectRef],
        health: HealthPolicy,
        progress: mpsc::Sender<ProgressUpdate>,
        cancel: CancellationToken,
    ) -> HealthOutcome {
        let rollouts: Vec<Rollout> = {
            let cluster = self.cluster();
            let canary = cluster.releases.get(&op.release).map(|r| &r.canary);
            workloads
                .iter()
                .filter_map(|w| canary.and_then(|c| c.get(w)).cloned())
                .collect()
        };
        run_watch(rollouts, health, progress, cancel).await
    }

    async fn remove_canary(&self, release: &str, namespace: &str) -> Result<Vec<ObjectResult>, Failure> {
        self.latency().await;
        let mut guard = self.cluster();
        let cluster = &mut *guard;
        let mut gone: Vec<ObjectRef> = cluster
            .objects
            .iter()
            .filter(|(o, l)| is_canary_of(o, l, release, namespace))
            .map(|(o, _)| o.clone())
            .collect();
        gone.sort_by_key(|o| std::cmp::Reverse(objects::tier(&o.kind)));
        for object in &gone {
            cluster.objects.remove(object);
        }
        if let Some(r) = cluster.releases.get_mut(release) {
            r.canary.retain(|o, _| o.namespace.as_deref() != Some(namespace));
        }
        Ok(gone
            .into_iter()
            .map(|o| result(o, ObjectAction::Pruned, Vec::new()))
            .collect())
    }

    async fn switch_slot(&self, op: &OpRef, retire_after: Duration) -> Result<Vec<ObjectResult>, Failure> {
        self.latency().await;
        let now = Instant::now();
        let mut guard = self.cluster();
        let cluster = &mut *guard;
        let release = cluster.releases.get_mut(&op.release);
        let current = release.and_then(|r| {
            let c = r.current?;
            r.history.iter_mut().find(|h| h.revision == c)
        });
        let Some(rev) = current.filter(|r| r.revision == op.revision) else {
            return Err(Failure::new(
                FailureReason::RevisionNotInHistory,
                format!(
                    "release {} revision {} is not the current revision in this cluster's history: only the current one can be switched to",
                    op.release, op.revision
                ),
            ));
        };
        let Some(slot) = rev.slots.slot.clone() else {
            return Err(Failure::new(
                FailureReason::NotBlueGreen,
                format!(
                    "release {} revision {} was not applied with blue/green: it has no slot to switch to",
                    op.release, op.revision
                ),
            ));
        };
        let mut objects = (*rev.objects).clone();
        let mut results = Vec::new();
        for (object, body) in objects.iter_mut() {
            if object.kind != "Service" || !rev.slots.services.contains(&object.name) {
                continue;
            }
            let mut switched = (**body).clone();
            bluegreen::select_slot(&mut switched, &slot);
            let action = if switched == **body {
                ObjectAction::Unchanged
            } else {
                ObjectAction::Configured
            };
            *body = Arc::new(switched);
            cluster.objects.insert(
                object.clone(),
                Live {
                    release: op.release.clone(),
                    body: body.clone(),
                },
            );
            results.push(result(object.clone(), action, Vec::new()));
        }
        rev.objects = Arc::new(objects);
        if !rev.slots.switched || rev.slots.retire_at.is_none() {
            rev.slots.retire_at = Some(now + retire_after);
        }
        rev.slots.switched = true;
        Ok(results)
    }

    async fn retirements_due(&self) -> Result<Vec<(String, u64)>, Failure> {
        let now = Instant::now();
        let cluster = self.cluster();
        let mut due: Vec<(String, u64)> = cluster
            .releases
            .iter()
            .filter_map(|(name, r)| {
                let c = current_revision(r)?;
                let at = c.slots.retire_at?;
                (at <= now && !c.slots.retired && !c.slots.kept.is_empty())
                    .then(|| (name.clone(), c.revision))
            })
            .collect();
        due.sort();
        Ok(due)
    }

    async fn retire(&self, release: &str, revision: u64) -> Result<Vec<ObjectResult>, Failure> {
        let now = Instant::now();
        let mut guard = self.cluster();
        let cluster = &mut *guard;
        let Some(r) = cluster.releases.get_mut(release) else {
            return Ok(Vec::new());
        };
        if r.current != Some(revision) {
            return Ok(Vec::new());
        }
        let Some(rev) = r.history.iter_mut().find(|h| h.revision == revision) else {
            return Ok(Vec::new());
        };
        if rev.slots.retired || rev.slots.retire_at.is_none_or(|at| at > now) {
            return Ok(Vec::new());
        }
        rev.slots.retired = true;
        let mut gone: Vec<ObjectRef> = rev.slots.kept.iter().map(|(o, _)| o.clone()).collect();
        gone.sort_by_key(|o| std::cmp::Reverse(objects::tier(&o.kind)));
        let mut out = Vec::new();
        for object in gone {
            r.kept_rollouts.remove(&object);
            if cluster.objects.get(&object).is_some_and(|l| l.release == release) {
                cluster.objects.remove(&object);
                out.push(result(object, ObjectAction::Pruned, Vec::new()));
            }
        }
        Ok(out)
    }

    /// Records on `op.revision` itself, whether or not a later revision has replaced
    /// it since (that one gets its own verdict).
    async fn record_outcome(&self, op: &OpRef, healthy: bool) -> Result<(), Failure> {
        let mut cluster = self.cluster();
        if let Some(release) = cluster.releases.get_mut(&op.release)
            && let Some(r) = release.history.iter_mut().find(|h| h.revision == op.revision)
        {
            r.healthy = healthy;
        }
        Ok(())
    }

    async fn installed(&self, release: &str, revision: u64) -> Result<bool, Failure> {
        let cluster = self.cluster();
        Ok(cluster
            .releases
            .get(release)
            .is_some_and(|r| r.history.iter().any(|h| h.revision != revision)))
    }

    async fn stored_hooks(&self, release: &str, revision: u64) -> Result<StoredHooks, Failure> {
        let cluster = self.cluster();
        let found = cluster
            .releases
            .get(release)
            .and_then(|r| r.history.iter().find(|h| h.revision == revision));
        match found {
            Some(r) => Ok(StoredHooks {
                namespace: r.namespace.clone(),
                hooks: (*r.hooks).clone(),
            }),
            None => Err(Failure::new(
                FailureReason::RevisionNotInHistory,
                format!("release {release} has no revision {revision} in this cluster's history"),
            )),
        }
    }

    async fn run_hook(
        &self,
        op: &OpRef,
        namespace: &str,
        hook: &Hook,
        event: HookEvent,
        deadline: Duration,
        cancel: CancellationToken,
    ) -> HookOutcome {
        self.run_hook_in_sim(op, namespace, hook, event, deadline, cancel)
            .await
    }

    async fn deployed(&self) -> Result<Vec<DeployedRevision>, Failure> {
        let cluster = self.cluster();
        let mut out: Vec<DeployedRevision> = cluster
            .releases
            .iter()
            .filter_map(|(name, r)| {
                let current = current_revision(r)?;
                Some(DeployedRevision {
                    release: name.clone(),
                    revision: current.revision,
                    healthy: current.healthy,
                    kept: r.history.iter().map(|h| h.revision).collect(),
                    slot: current.slots.slot.clone(),
                    switched: current.slots.switched,
                })
            })
            .collect();
        out.sort_by(|a, b| a.release.cmp(&b.release));
        Ok(out)
    }

    /// The configured version, and the API versions `helm template` assumes: a simulated
    /// cluster renders as a chart renders without a cluster.
    async fn capabilities(&self) -> Result<ClusterCapabilities, Failure> {
        let mut api_versions: Vec<String> = HELM_DEFAULT_API_VERSIONS.iter().map(|a| a.to_string()).collect();
        api_versions.sort();
        Ok(ClusterCapabilities {
            kube_version: self.config.kube_version.clone(),
            api_versions,
        })
    }
}

/// A shared simulated cluster: the runtime drives it while a demo or a test inspects
/// it ([`SimBackend::object`], [`SimBackend::objects_of`]).
impl Backend for Arc<SimBackend> {
    fn kind(&self) -> &'static str {
        SimBackend::kind(self)
    }

    async fn lock(&self, op: &OpRef) -> Result<LockToken, Failure> {
        SimBackend::lock(self, op).await
    }

    async fn unlock(&self, token: LockToken) -> Result<(), Failure> {
        SimBackend::unlock(self, token).await
    }

    async fn apply_until(
        &self,
        req: &ApplyRequest,
        cancel: CancellationToken,
    ) -> Result<Vec<ObjectResult>, ChangeError> {
        SimBackend::apply_until(self, req, cancel).await
    }

    async fn dry_run(&self, req: &ApplyRequest) -> Result<Vec<ObjectResult>, Failure> {
        SimBackend::dry_run(self, req).await
    }

    async fn rollback_until(
        &self,
        op: &OpRef,
        target_revision: u64,
        cancel: CancellationToken,
    ) -> Result<Vec<ObjectResult>, ChangeError> {
        SimBackend::rollback_until(self, op, target_revision, cancel).await
    }

    async fn watch_rollout(
        &self,
        op: &OpRef,
        health: HealthPolicy,
        progress: mpsc::Sender<ProgressUpdate>,
        cancel: CancellationToken,
    ) -> HealthOutcome {
        SimBackend::watch_rollout(self, op, health, progress, cancel).await
    }

    async fn record_outcome(&self, op: &OpRef, healthy: bool) -> Result<(), Failure> {
        SimBackend::record_outcome(self, op, healthy).await
    }

    async fn apply_canary_until(
        &self,
        req: &CanaryRequest,
        cancel: CancellationToken,
    ) -> Result<Vec<ObjectResult>, ChangeError> {
        SimBackend::apply_canary_until(self, req, cancel).await
    }

    async fn watch_canary(
        &self,
        op: &OpRef,
        workloads: &[ObjectRef],
        health: HealthPolicy,
        progress: mpsc::Sender<ProgressUpdate>,
        cancel: CancellationToken,
    ) -> HealthOutcome {
        SimBackend::watch_canary(self, op, workloads, health, progress, cancel).await
    }

    async fn remove_canary(&self, release: &str, namespace: &str) -> Result<Vec<ObjectResult>, Failure> {
        SimBackend::remove_canary(self, release, namespace).await
    }

    async fn switch_slot(&self, op: &OpRef, retire_after: Duration) -> Result<Vec<ObjectResult>, Failure> {
        SimBackend::switch_slot(self, op, retire_after).await
    }

    async fn retirements_due(&self) -> Result<Vec<(String, u64)>, Failure> {
        SimBackend::retirements_due(self).await
    }

    async fn retire(&self, release: &str, revision: u64) -> Result<Vec<ObjectResult>, Failure> {
        SimBackend::retire(self, release, revision).await
    }

    async fn installed(&self, release: &str, revision: u64) -> Result<bool, Failure> {
        SimBackend::installed(self, release, revision).await
    }

    async fn stored_hooks(&self, release: &str, revision: u64) -> Result<StoredHooks, Failure> {
        SimBackend::stored_hooks(self, release, revision).await
    }

    async fn run_hook(
        &self,
        op: &OpRef,
        namespace: &str,
        hook: &Hook,
        event: HookEvent,
        deadline: Duration,
        cancel: CancellationToken,
    ) -> HookOutcome {
        SimBackend::run_hook(self, op, namespace, hook, event, deadline, cancel).await
    }

    async fn deployed(&self) -> Result<Vec<DeployedRevision>, Failure> {
        SimBackend::deployed(self).await
    }

    async fn capabilities(&self) -> Result<ClusterCapabilities, Failure> {
        SimBackend::capabilities(self).await
    }
}

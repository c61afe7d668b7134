//! Commands: admission through the idempotence ledger, one task per operation, and
//! the events each operation produces.
//!
//! A deploy or rollback runs `gate -> lock -> pre hooks -> apply/rollback ->
//! watch_rollout -> post hooks -> record_outcome -> unlock` (hooks: [`crate::hooks`]);
//! the outcome recorded in the cluster's history covers the post hooks; the gate
//! serializes operations on one release inside this agent (an abort followed at once
//! by a rollback must not race it for the lock), the lock guards against other
//! agents. Different releases run in parallel.
//!
//! A canary step (`ApplyCanary`) runs under the same gate and lock: `apply canary
//! objects -> watch the canary Deployments` (no hooks, nothing recorded in history).
//! A deploy removes the release's canary objects once healthy (a promotion), before
//! its Healthy; a rollback removes them at once, right after its apply.
//!
//! A blue/green switch (`SwitchSlot`) runs under the same gate and lock: `switch the
//! Services -> Applied -> Healthy` (no hooks, no rollout: the slot was healthy
//! already). The retirement task ([`retire_loop`]) deletes old slots whose window has
//! passed, under the gate and lock too.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use convoy_proto::v1 as pb;
use pb::agent_event::Event;
use pb::command::Command as Cmd;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::backend::{
    ApplyRequest, Backend, CanaryRequest, ChangeError, Failure, FailureReason, HealthOutcome, HealthPolicy,
    HookOutcome, LockToken, ObjectAction, ObjectProgress, ObjectRef, OpRef, ProgressUpdate,
};
use crate::hooks::{self, Hook, HookEvent};
use crate::runtime::ledger::{AbortFound, Admission};
use crate::runtime::{Shared, locked, wire};

/// The work of one command.
enum Work {
    Apply(ApplyRequest),
    DryRun(ApplyRequest),
    Rollback { target: u64, health: HealthPolicy },
    Canary(CanaryRequest),
    Switch { retire_after: Duration },
}

/// How an operation ended, before it becomes a final event.
enum End {
    Event(Event),
    /// Stopped by the agent's shutdown: no final event.
    Shutdown,
}

/// Handles one command from the coordinator.
pub(crate) fn dispatch<B: Backend>(shared: &Arc<Shared<B>>, command: pb::Command) {
    let Some(op) = command.op.map(wire::op_from_wire) else {
        tracing::warn!("command without an operation reference ignored (protocol error)");
        return;
    };
    let work = match command.command {
        Some(Cmd::Apply(a)) => Work::Apply(wire::apply_from_wire(op.clone(), a)),
        Some(Cmd::DryRun(d)) => Work::DryRun(wire::apply_from_wire(op.clone(), d.apply.unwrap_or_default())),
        Some(Cmd::Rollback(r)) => Work::Rollback {
            target: r.target_revision,
            health: wire::health_from_wire(r.health),
        },
        Some(Cmd::Abort(a)) => return abort(shared, &op, a.reason),
        Some(Cmd::Canary(c)) => Work::Canary(CanaryRequest {
            apply: wire::apply_from_wire(op.clone(), c.apply.unwrap_or_default()),
            weight_percent: c.weight_percent,
        }),
        Some(Cmd::SwitchSlot(s)) => Work::Switch {
            retire_after: Duration::from_secs(u64::from(s.retire_after_seconds)),
        },
        None => {
            let f = Failure::new(
                FailureReason::Internal,
                "the command carries no apply, rollback, abort, dry_run, canary or switch_slot (is the coordinator newer than this agent?)",
            );
            tracing::warn!(release = %op.release, revision = op.revision, operation = %op.operation_id, "empty command");
            // Answered, not recorded: a well-formed command for this operation may follow.
            shared.metrics.count("failed");
            return locked(&shared.outbox).send(wire::event(&op, wire::failed(&f)));
        }
    };
    if let Work::Apply(req) | Work::DryRun(req) | Work::Canary(CanaryRequest { apply: req, .. }) = &work {
        let masker = crate::mask::DigestMasker::new(&req.secret_digests);
        locked(&shared.maskers).insert(op.release.clone(), masker);
    }
    let admission = locked(&shared.ledger).admit(&op, &shared.stopping);
    match admission {
        Admission::Finished(final_event) => {
            tracing::info!(release = %op.release, revision = op.revision, operation = %op.operation_id, "command already finished: replaying its final event");
            locked(&shared.outbox).send(final_event);
        }
        Admission::Running(latest) => {
            tracing::info!(release = %op.release, revision = op.revision, operation = %op.operation_id, "command already running: not starting it twice");
            let mut outbox = locked(&shared.outbox);
            outbox.send(wire::event(&op, Event::Accepted(pb::Accepted { replay: true })));
            for e in latest {
                outbox.send(e);
            }
        }
        Admission::New(cancel) => {
            tracing::info!(release = %op.release, revision = op.revision, operation = %op.operation_id, kind = work.name(), "command accepted");
            locked(&shared.outbox).emit(wire::event(&op, Event::Accepted(pb::Accepted { replay: false })));
            shared.metrics.started();
            let shared = shared.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                let end = run(&shared, &op, work, &cancel, started).await;
                match end {
                    End::Event(event) => finish(&shared, &op, event, true),
                    End::Shutdown => {
                        locked(&shared.ledger).forget(&op);
                        shared.metrics.finished(None);
                    }
                }
            });
        }
    }
}

impl Work {
    fn name(&self) -> &'static str {
        match self {
            Work::Apply(_) => "apply",
            Work::DryRun(_) => "dry_run",
            Work::Rollback { .. } => "rollback",
            Work::Canary(_) => "canary",
            Work::Switch { .. } => "switch_slot",
        }
    }
}

/// Masks the release's secrets in `event` (before it is logged, recorded or sent).
fn mask<B: Backend>(shared: &Shared<B>, op: &OpRef, event: &mut Event) {
    if let Some(m) = locked(&shared.maskers).get(&op.release) {
        wire::mask_event(event, m);
    }
}

/// Records and sends an operation's final event.
/// `running`: it ran as an operation (counted in flight).
fn finish<B: Backend>(shared: &Shared<B>, op: &OpRef, mut event: Event, running: bool) {
    mask(shared, op, &mut event);
    let event = wire::event(op, event);
    let label = wire::outcome_label(&event);
    match &event.event {
        Some(Event::Failed(f)) => {
            tracing::warn!(release = %op.release, revision = op.revision, operation = %op.operation_id, reason = %f.reason, message = %f.message, "operation failed");
        }
        _ => {
            tracing::info!(release = %op.release, revision = op.revision, operation = %op.operation_id, outcome = label, "operation finished")
        }
    }
    locked(&shared.ledger).finish(op, event.clone());
    locked(&shared.outbox).emit(event);
    if running {
        shared.metrics.finished(Some(label));
    } else {
        shared.metrics.count(label);
    }
}

fn abort<B: Backend>(shared: &Arc<Shared<B>>, op: &OpRef, reason: String) {
    let found = locked(&shared.ledger).abort(op, &reason);
    match found {
        AbortFound::Cancelling => {
            tracing::info!(release = %op.release, revision = op.revision, operation = %op.operation_id, "aborting");
        }
        AbortFound::Finished(final_event) => locked(&shared.outbox).send(*final_event),
        AbortFound::Unknown => {
            // Record it: should the command itself arrive later, it must not run.
            let reason = format!("{reason} (the operation had not started on this agent)");
            finish(shared, op, Event::Aborted(pb::Aborted { reason }), false);
        }
    }
}

async fn run<B: Backend>(
    shared: &Arc<Shared<B>>,
    op: &OpRef,
    work: Work,
    cancel: &CancellationToken,
    started: Instant,
) -> End {
    let result = match work {
        Work::DryRun(req) => {
            // Hooks are not run by a dry run; a malformed one is reported all the same.
            if let Err(f) = hooks::parse(&req.hooks) {
                return End::Event(wire::failed(&f));
            }
            tokio::select! {
                biased;
                _ = cancel.cancelled() => Err(Stop),
                r = shared.backend.dry_run(&req) => Ok(match r {
                    Ok(objects) => Event::DryRun(pb::DryRunResult { objects: wire::results_to_wire(&objects) }),
                    Err(f) => wire::failed(&f),
                }),
            }
        }
        Work::Apply(req) => locked_op(shared, op, cancel, started, req.health, Change::Apply(&req)).await,
        Work::Rollback { target, health } => {
            locked_op(shared, op, cancel, started, health, Change::Rollback(target)).await
        }
        Work::Canary(req) => {
            locked_op(
                shared,
                op,
                cancel,
                started,
                req.apply.health,
                Change::Canary(&req),
            )
            .await
        }
        Work::Switch { retire_after } => {
            // No rollout to watch: the new slot was healthy already.
            let health = HealthPolicy {
                progress_deadline: wire::DEFAULT_PROGRESS_DEADLINE,
                min_ready_window: Duration::ZERO,
            };
            locked_op(shared, op, cancel, started, health, Change::Switch(retire_after)).await
        }
    };
    match result {
        Ok(event) => End::Event(event),
        Err(Stop) => match locked(&shared.ledger).abort_reason(op) {
            Some(reason) => End::Event(Event::Aborted(pb::Aborted { reason })),
            None => End::Shutdown,
        },
    }
}

/// The operation was cancelled (abort or shutdown).
struct Stop;

/// What a locked operation changes in the cluster.
enum Change<'a> {
    Apply(&'a ApplyRequest),
    Rollback(u64),
    /// One canary step: no hooks, nothing recorded in the history.
    Canary(&'a CanaryRequest),
    /// A blue/green switch: no hooks, no rollout; healthy once the Services point at
    /// the revision's slot.
    Switch(Duration),
}

/// gate -> lock -> change -> watch -> unlock.
async fn locked_op<B: Backend>(
    shared: &Arc<Shared<B>>,
    op: &OpRef,
    cancel: &CancellationToken,
    started: Instant,
    health: HealthPolicy,
    change: Change<'_>,
) -> Result<Event, Stop> {
    let gate = {
        let mut gates = locked(&shared.gates);
        gates.entry(op.release.clone()).or_default().clone()
    };
    let result = async {
        let _turn = tokio::select! {
            biased;
            _ = cancel.cancelled() => return Err(Stop),
            g = gate.clone().lock_owned() => g,
        };
        let token = match lock(shared, op, cancel).await? {
            Ok(t) => t,
            Err(f) => return Ok(wire::failed(&f)),
        };
        let outcome = change_and_watch(shared, op, cancel, started, health, change).await;
        if let Err(f) = shared.backend.unlock(token).await {
            tracing::warn!(release = %op.release, error = %f, "could not release the release lock (it expires on its own)");
        }
        outcome
    }
    .await;
    let mut gates = locked(&shared.gates);
    // The map's handle and ours: nobody else waits, drop the gate.
    if Arc::strong_count(&gate) <= 2 {
        gates.remove(&op.release);
    }
    result
}

/// Takes the backend lock, waiting up to `lock_wait` while another holder has it.
async fn lock<B: Backend>(
    shared: &Shared<B>,
    op: &OpRef,
    cancel: &CancellationToken,
) -> Result<Result<LockToken, Failure>, Stop> {
    let give_up = Instant::now() + shared.config.lock_wait;
    loop {
        // Not raced against the cancel token: a lock taken by a dropped call would
        // stay held until it expires.
        let attempt = shared.backend.lock(op).await;
        if cancel.is_cancelled() {
            if let Ok(token) = attempt
                && let Err(f) = shared.backend.unlock(token).await
            {
                tracing::warn!(release = %op.release, error = %f, "could not release the release lock (it expires on its own)");
            }
            return Err(Stop);
        }
        match attempt {
            Err(f) if f.reason == FailureReason::LockHeld && Instant::now() < give_up => {
                tracing::info!(release = %op.release, holder = %f.message, "release locked: waiting");
                tokio::select! {
                    biased;
                    _ = cancel.cancelled() => return Err(Stop),
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
            other => return Ok(other),
        }
    }
}

async fn change_and_watch<B: Backend>(
    shared: &Arc<Shared<B>>,
    op: &OpRef,
    cancel: &CancellationToken,
    started: Instant,
    health: HealthPolicy,
    change: Change<'_>,
) -> Result<Event, Stop> {
    if cancel.is_cancelled() {
        return Err(Stop);
    }
    let plan = match hook_plan(shared, op, &change).await {
        Ok(p) => p,
        Err(f) => return Ok(wire::failed(&f)),
    };
    let deadline = health.progress_deadline;
    if let Some(f) = run_hooks(shared, op, &plan, plan.pre, (0, 0), deadline, cancel).await? {
        return Ok(wire::failed(&f));
    }
    // The backend stops at its next tier when cancelled, having recorded what it
    // applied (the history never falls behind the cluster): an abort does not wait
    // for a long apply.
    let changed = match change {
        Change::Apply(req) => shared.backend.apply_until(req, cancel.clone()).await,
        Change::Rollback(target) => shared.backend.rollback_until(op, target, cancel.clone()).await,
        Change::Canary(req) => shared.backend.apply_canary_until(req, cancel.clone()).await,
        Change::Switch(retire_after) => shared
            .backend
            .switch_slot(op, retire_after)
            .await
            .map_err(ChangeError::Failed),
    };
    let mut objects = match changed {
        Ok(objects) => objects,
        Err(ChangeError::Failed(f)) => return Ok(wire::failed(&f)),
        Err(ChangeError::Cancelled) => return Err(Stop),
    };
    // A rollback aborts a canary: its objects go at once (the rollback re-applied the
    // live revision, which left the primaries as they were).
    if let Change::Rollback(_) = change {
        match shared.backend.remove_canary(&op.release, &plan.namespace).await {
            Ok(removed) => objects.extend(removed),
            Err(f) => return Ok(wire::failed(&f)),
        }
    }
    let applied = wire::event(
        op,
        Event::Applied(pb::Applied {
            objects: wire::results_to_wire(&objects),
        }),
    );
    locked(&shared.ledger).record(op, &applied, true);
    locked(&shared.outbox).emit(applied);
    if let Change::Switch(retire_after) = change {
        tracing::info!(release = %op.release, revision = op.revision, operation = %op.operation_id, retire_after_s = retire_after.as_secs(), "slot switched: the Services select the revision's slot");
        return Ok(Event::Healthy(pb::Healthy {
            seconds: u32::try_from(started.elapsed().as_secs()).unwrap_or(u32::MAX),
        }));
    }
    if cancel.is_cancelled() {
        return Err(Stop);
    }
    let (tx, rx) = mpsc::channel(64);
    if let Change::Canary(_) = change {
        // The canary's Deployments only; the history learns nothing of a canary.
        let workloads: Vec<ObjectRef> = objects
            .iter()
            .filter(|r| r.action != ObjectAction::Pruned && r.object.kind == "Deployment")
            .map(|r| r.object.clone())
            .collect();
        let watch = shared
            .backend
            .watch_canary(op, &workloads, health, tx, cancel.clone());
        let (outcome, _) = tokio::join!(watch, forward_progress(shared, op, rx));
        return match outcome {
            HealthOutcome::Healthy { .. } => Ok(Event::Healthy(pb::Healthy {
                seconds: u32::try_from(started.elapsed().as_secs()).unwrap_or(u32::MAX),
            })),
            HealthOutcome::Failed(f) => Ok(wire::failed(&f)),
            HealthOutcome::Cancelled => Err(Stop),
        };
    }
    let watch = shared.backend.watch_rollout(op, health, tx, cancel.clone());
    let (outcome, totals) = tokio::join!(watch, forward_progress(shared, op, rx));
    // The history learns the verdict only after the post hooks: a revision whose post
    // hook failed (or is still running) is never listed healthy in a hello. Stopped
    // (abort, shutdown), it stays as applied: not healthy.
    let verdict = match outcome {
        HealthOutcome::Healthy { .. } => {
            match run_hooks(shared, op, &plan, plan.post, totals, deadline, cancel).await? {
                Some(f) => Err(f),
                None => Ok(()),
            }
        }
        HealthOutcome::Failed(f) => Err(f),
        HealthOutcome::Cancelled => return Err(Stop),
    };
    // A healthy deploy promotes: the release's canary objects go before it is
    // reported (and recorded) healthy.
    let verdict = match (verdict, &change) {
        (Ok(()), Change::Apply(_)) => {
            match shared.backend.remove_canary(&op.release, &plan.namespace).await {
                Ok(removed) => {
                    if !removed.is_empty() {
                        tracing::info!(release = %op.release, revision = op.revision, operation = %op.operation_id, removed = removed.len(), "canary promoted: its objects were deleted");
                    }
                    Ok(())
                }
                Err(f) => Err(f),
            }
        }
        (v, _) => v,
    };
    if let Err(e) = shared.backend.record_outcome(op, verdict.is_ok()).await {
        tracing::warn!(release = %op.release, revision = op.revision, error = %e, "recording the outcome in the cluster's history failed");
    }
    match verdict {
        Ok(()) => Ok(Event::Healthy(pb::Healthy {
            seconds: u32::try_from(started.elapsed().as_secs()).unwrap_or(u32::MAX),
        })),
        Err(f) => Ok(wire::failed(&f)),
    }
}

/// The hooks around one change: parsed, with the events that run before and after.
struct HookPlan {
    /// Where hooks without a namespace run: the revision's namespace.
    namespace: String,
    hooks: Vec<Hook>,
    pre: HookEvent,
    post: HookEvent,
}

/// A deploy runs its own hooks (install or upgrade events); a rollback runs the
/// rollback hooks of the revision it restores, as kept in the cluster's history.
async fn hook_plan<B: Backend>(
    shared: &Shared<B>,
    op: &OpRef,
    change: &Change<'_>,
) -> Result<HookPlan, Failure> {
    match change {
        Change::Apply(req) => {
            let hooks = hooks::parse(&req.hooks)?;
            // Asking the history costs a call: only when there is a hook to place.
            let installed = if hooks.is_empty() {
                true
            } else {
                shared.backend.installed(&op.release, op.revision).await?
            };
            Ok(HookPlan {
                namespace: req.namespace.clone(),
                hooks,
                pre: HookEvent::for_deploy(installed, true),
                post: HookEvent::for_deploy(installed, false),
            })
        }
        Change::Rollback(target) => {
            let stored = shared.backend.stored_hooks(&op.release, *target).await?;
            Ok(HookPlan {
                namespace: stored.namespace,
                hooks: hooks::parse(&stored.hooks)?,
                pre: HookEvent::PreRollback,
                post: HookEvent::PostRollback,
            })
        }
        // A canary step runs no hooks (the events are never reached: no hook).
        Change::Canary(req) => Ok(HookPlan {
            namespace: req.apply.namespace.clone(),
            hooks: Vec::new(),
            pre: HookEvent::for_deploy(true, true),
            post: HookEvent::for_deploy(true, false),
        }),
        // Nor does a switch; it has no namespace of its own to place one in.
        Change::Switch(_) => Ok(HookPlan {
            namespace: String::new(),
            hooks: Vec::new(),
            pre: HookEvent::for_deploy(true, true),
            post: HookEvent::for_deploy(true, false),
        }),
    }
}

/// Runs the plan's hooks for `event` in order, each bounded by `deadline`, with a
/// progress event as each starts and ends (`running hook pre-upgrade job/migrate`).
/// `totals`: the release's ready/desired sums to report alongside. Stops at the first
/// failure and returns it.
async fn run_hooks<B: Backend>(
    shared: &Shared<B>,
    op: &OpRef,
    plan: &HookPlan,
    event: HookEvent,
    totals: (u32, u32),
    deadline: Duration,
    cancel: &CancellationToken,
) -> Result<Option<Failure>, Stop> {
    for hook in hooks::for_event(&plan.hooks, event) {
        let label = hook.label();
        let mut object = hook.object.clone();
        object.namespace.get_or_insert_with(|| plan.namespace.clone());
        let report = |ready: u32, reason: String| {
            let mut pending = Pending {
                ready: totals.0,
                desired: totals.1,
                ..Pending::default()
            };
            let p = ObjectProgress {
                object: object.clone(),
                ready,
                desired: 1,
                reason,
            };
            pending.changed.insert(object.clone(), p);
            send_progress(shared, op, Some(pending));
        };
        tracing::info!(release = %op.release, revision = op.revision, operation = %op.operation_id, hook = %label, %event, "running hook");
        report(0, format!("running hook {event} {label}"));
        match shared
            .backend
            .run_hook(op, &plan.namespace, hook, event, deadline, cancel.clone())
            .await
        {
            HookOutcome::Succeeded => report(1, format!("hook {event} {label} succeeded")),
            HookOutcome::Failed(f) => {
                report(0, format!("hook {event} {label} failed"));
                return Ok(Some(f));
            }
            HookOutcome::Cancelled => return Err(Stop),
        }
    }
    Ok(None)
}

/// Forwards progress, coalesced: at most one event per `progress_interval`, carrying
/// the latest state of every workload that changed since the previous one. Flushes
/// what is pending when the watch ends, so progress always precedes the final event.
/// Returns the last ready/desired sums, which the post hooks' progress repeats.
async fn forward_progress<B: Backend>(
    shared: &Shared<B>,
    op: &OpRef,
    mut rx: mpsc::Receiver<ProgressUpdate>,
) -> (u32, u32) {
    let interval = shared.config.progress_interval;
    let mut pending: Option<Pending> = None;
    let mut last_sent: Option<Instant> = None;
    let mut totals = (0, 0);
    loop {
        let due = last_sent.map_or_else(Instant::now, |t| t + interval);
        tokio::select! {
            update = rx.recv() => match update {
                Some(u) => {
                    totals = (u.ready, u.desired);
                    pending.get_or_insert_with(Pending::default).merge(u);
                    if Instant::now() >= due {
                        send_progress(shared, op, pending.take());
                        last_sent = Some(Instant::now());
                    }
                }
                None => {
                    send_progress(shared, op, pending.take());
                    return totals;
                }
            },
            _ = tokio::time::sleep_until(due), if pending.is_some() => {
                send_progress(shared, op, pending.take());
                last_sent = Some(Instant::now());
            }
        }
    }
}

#[derive(Default)]
struct Pending {
    changed: BTreeMap<ObjectRef, ObjectProgress>,
    ready: u32,
    desired: u32,
}

impl Pending {
    fn merge(&mut self, u: ProgressUpdate) {
        for p in u.changed {
            self.changed.insert(p.object.clone(), p);
        }
        self.ready = u.ready;
        self.desired = u.desired;
    }
}

fn send_progress<B: Backend>(shared: &Shared<B>, op: &OpRef, pending: Option<Pending>) {
    let Some(p) = pending else { return };
    let update = ProgressUpdate {
        changed: p.changed.into_values().collect(),
        ready: p.ready,
        desired: p.desired,
    };
    let mut progress = wire::progress(&update);
    mask(shared, op, &mut progress);
    let event = wire::event(op, progress);
    locked(&shared.ledger).record(op, &event, false);
    locked(&shared.outbox).emit(event);
}

/// Blue/green retirement: at once, then every `retire_interval` until `stopping`,
/// deletes the old slot of every release whose current revision's retire deadline
/// has passed (see [`Backend::retire`]), under the release's gate and lock like a
/// command. A release locked by someone else is tried again next time.
pub(crate) async fn retire_loop<B: Backend>(shared: Arc<Shared<B>>, stopping: CancellationToken) {
    loop {
        match shared.backend.retirements_due().await {
            Ok(due) => {
                for (release, revision) in due {
                    retire_one(&shared, &release, revision).await;
                }
            }
            Err(f) => {
                tracing::warn!(error = %f, "could not look for old blue/green slots to retire");
            }
        }
        tokio::select! {
            _ = stopping.cancelled() => return,
            _ = tokio::time::sleep(shared.config.retire_interval) => {}
        }
    }
}

async fn retire_one<B: Backend>(shared: &Arc<Shared<B>>, release: &str, revision: u64) {
    let gate = {
        let mut gates = locked(&shared.gates);
        gates.entry(release.to_string()).or_default().clone()
    };
    // A release with a command running is tried again next time, not waited for: a
    // long rollout must not hold up the other releases' retirements.
    if let Ok(_turn) = gate.clone().try_lock_owned() {
        let op = OpRef {
            release: release.to_string(),
            revision,
            operation_id: format!("retire-slot.v{revision}"),
        };
        match shared.backend.lock(&op).await {
            Ok(token) => {
                match shared.backend.retire(release, revision).await {
                    Ok(retired) if !retired.is_empty() => {
                        let names: Vec<String> = retired.iter().map(|r| r.object.to_string()).collect();
                        tracing::info!(%release, revision, retired = %names.join(", "), "old blue/green slot retired");
                    }
                    Ok(_) => {}
                    Err(f) => {
                        tracing::warn!(%release, revision, error = %f, "retiring the old blue/green slot failed; tried again later");
                    }
                }
                if let Err(f) = shared.backend.unlock(token).await {
                    tracing::warn!(%release, error = %f, "could not release the release lock (it expires on its own)");
                }
            }
            Err(f) => {
                tracing::info!(%release, revision, reason = %f.reason.as_str(), "release busy: its old blue/green slot is retired later");
            }
        }
    }
    let mut gates = locked(&shared.gates);
    if Arc::strong_count(&gate) <= 2 {
        gates.remove(release);
    }
}

/// After shutdown fired: waits (bounded) for running operations to release their locks.
pub(crate) async fn drain<B: Backend>(shared: &Shared<B>) {
    let give_up = Instant::now() + shared.config.shutdown_grace;
    loop {
        let running = locked(&shared.ledger).in_flight().len();
        if running == 0 {
            return;
        }
        if Instant::now() >= give_up {
            tracing::warn!(
                running,
                "shutdown: operations still running after the grace period"
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

//! Domain views to `convoy.v1` messages.

use convoy_proto::v1 as pb;

use crate::core::{ClusterView, ReleaseView, WatchEvent, WatchKind};
use crate::model::{
    ContextPhase, ContextState, Millis, Operation, OperationKind, OperationPhase, RevisionRecord,
};

pub fn ts(ms: Millis) -> Option<prost_types::Timestamp> {
    (ms > 0).then(|| prost_types::Timestamp {
        seconds: (ms / 1000) as i64,
        nanos: ((ms % 1000) * 1_000_000) as i32,
    })
}

pub fn kind(k: OperationKind) -> pb::OperationKind {
    match k {
        OperationKind::Deploy => pb::OperationKind::Deploy,
        OperationKind::Rollback => pb::OperationKind::Rollback,
    }
}

pub fn phase(p: OperationPhase) -> pb::OperationPhase {
    match p {
        OperationPhase::Queued => pb::OperationPhase::Queued,
        // Preflight is part of running on the wire: contexts show the dry run.
        OperationPhase::Preflight | OperationPhase::Running => pb::OperationPhase::Running,
        OperationPhase::Paused => pb::OperationPhase::Paused,
        OperationPhase::RollingBack => pb::OperationPhase::RollingBack,
        OperationPhase::Succeeded => pb::OperationPhase::Succeeded,
        OperationPhase::Failed => pb::OperationPhase::Failed,
        OperationPhase::Aborted => pb::OperationPhase::Aborted,
        OperationPhase::Cancelled => pb::OperationPhase::Cancelled,
    }
}

pub fn context_phase(p: ContextPhase) -> pb::ContextPhase {
    match p {
        ContextPhase::Pending => pb::ContextPhase::Pending,
        ContextPhase::WaitingForAgent => pb::ContextPhase::WaitingForAgent,
        ContextPhase::Dispatched => pb::ContextPhase::Dispatched,
        ContextPhase::Applying => pb::ContextPhase::Applying,
        ContextPhase::Progressing => pb::ContextPhase::Progressing,
        ContextPhase::Healthy => pb::ContextPhase::Healthy,
        ContextPhase::Failed => pb::ContextPhase::Failed,
        ContextPhase::RollingBack => pb::ContextPhase::RollingBack,
        ContextPhase::RolledBack => pb::ContextPhase::RolledBack,
        ContextPhase::Skipped => pb::ContextPhase::Skipped,
    }
}

pub fn operation(op: &Operation) -> pb::Operation {
    pb::Operation {
        id: op.id.clone(),
        kind: kind(op.kind) as i32,
        phase: phase(op.phase) as i32,
        revision: op.revision,
        from_revision: op.rollback_to.unwrap_or_default(),
        requested_by: op.requested_by.clone(),
        reason: op.reason.clone(),
        created_at: ts(op.created_at),
        started_at: op.started_at.and_then(ts),
        finished_at: op.finished_at.and_then(ts),
        message: op.message.clone(),
        current_wave: op.current_wave as u32,
        waves: op.plan.waves.len() as u32,
        awaiting_approval_wave: op.awaiting_approval.map_or(0, |a| a.wave as u32 + 1),
        approval_deadline: op.awaiting_deadline().and_then(ts),
        gated_waves: op.plan.approval.before.iter().map(|w| *w as u32 + 1).collect(),
        approved_waves: op.approved.iter().map(|w| *w as u32 + 1).collect(),
        gates: gates(op),
        canary: op.canary_status().unwrap_or_default(),
    }
}

/// Each automatic gate per gated wave, with the measurements of the one being checked.
fn gates(op: &Operation) -> Vec<pb::GateStatus> {
    op.gate_states()
        .into_iter()
        .map(|(at, state)| {
            let (wave, g) = (at.wave, at.gate);
            let spec = &op.plan.gates[g];
            let (kind, check) = match &spec.check {
                crate::model::GateCheckSpec::Analysis {
                    provider,
                    query,
                    success,
                    ..
                } => ("analysis", format!("{query} on {provider}: {success}")),
                crate::model::GateCheckSpec::Webhook { name, .. } => ("webhook", name.clone()),
            };
            let measurements = op
                .verifying
                .as_ref()
                .filter(|v| v.wave == wave && v.gate == g && v.step == at.step)
                .map(|v| {
                    v.measurements
                        .iter()
                        .map(|m| pb::GateMeasurement {
                            at: ts(m.at),
                            verdict: match m.verdict {
                                crate::model::Verdict::Passed => "PASSED",
                                crate::model::Verdict::Failed => "FAILED",
                                crate::model::Verdict::Inconclusive => "INCONCLUSIVE",
                            }
                            .into(),
                            detail: m.detail.clone(),
                        })
                        .collect()
                })
                .unwrap_or_default();
            pb::GateStatus {
                name: spec.name.clone(),
                kind: kind.into(),
                before_wave: wave as u32 + 1,
                state: state.name().into(),
                measurements_wanted: spec.limits().0,
                measurements,
                check,
                canary_step: at.step.map_or(0, |k| k as u32 + 1),
            }
        })
        .collect()
}

pub fn context(c: &ContextState, revision: u64, region: &str, connected: bool) -> pb::ContextState {
    pb::ContextState {
        context: c.context.clone(),
        region: region.to_string(),
        wave: c.wave as u32,
        phase: context_phase(c.phase) as i32,
        revision,
        ready: c.ready,
        desired: c.desired,
        message: c.message.clone(),
        updated_at: ts(c.updated_at),
        agent_connected: connected,
        canary_weight: c.canary.map_or(0, |k| k.weight),
    }
}

pub fn release(v: &ReleaseView) -> pb::Release {
    let revision = v.operation.as_ref().map_or(0, |o| o.revision);
    pb::Release {
        name: v.record.name.clone(),
        namespace: v.record.namespace.clone(),
        environment: v.record.environment.clone(),
        latest_revision: v.record.latest_revision,
        deployed_revision: v.deployed_revision,
        current_operation: v.operation.as_ref().map(operation),
        queued_operations: v.queued,
        contexts: v
            .contexts
            .iter()
            .map(|(c, region, online)| context(c, revision, region, *online))
            .collect(),
    }
}

/// A revision for the API; `previous` (the one before it) for what its values changed.
pub fn revision(r: &RevisionRecord, previous: Option<&RevisionRecord>) -> pb::Revision {
    let values = serde_json::to_value(&r.values).unwrap_or_default();
    let kept = r.values.omitted_bytes.is_some() || !r.values.release.is_null();
    let values_changed = crate::deployed::values_changed(r, previous);
    let json_of = |v: Option<serde_json::Value>| v.map(|v| v.to_string()).unwrap_or_default();
    pb::Revision {
        // Filled in by the history call (it needs the core and the caller's scope).
        chart_ran_healthy: Vec::new(),
        message: r.message.clone(),
        images: r
            .images
            .iter()
            .map(|i| pb::WorkloadImage {
                workload: i.workload.clone(),
                container: i.container.clone(),
                image: i.image.clone(),
                contexts: i.contexts.clone(),
            })
            .collect(),
        values_json: if kept { values.to_string() } else { String::new() },
        values_changed: values_changed
            .into_iter()
            .map(|(context, c)| pb::ValueChange {
                path: c.path,
                before: json_of(c.before),
                after: json_of(c.after),
                context,
            })
            .collect(),
        number: r.number,
        kind: kind(r.kind) as i32,
        rollback_to: r.rollback_to.unwrap_or_default(),
        submitted_by: r.submitted_by.clone(),
        reason: r.reason.clone(),
        submitted_at: ts(r.submitted_at),
        chart_name: r.chart_name.clone(),
        chart_version: r.chart_version.clone(),
        chart_digest: r.chart_digest.clone(),
        chart_source: r.chart_origin.clone(),
        values_digest: r.values_digest.clone(),
        secret_versions: r
            .secret_versions
            .iter()
            .map(|s| pb::SecretVersion {
                secret_id: s.secret_id.clone(),
                context: s.context.clone(),
                vault_path: s.vault_path.clone(),
                vault_key: s.vault_key.clone(),
                version: s.version,
            })
            .collect(),
        outcomes: r
            .outcomes
            .iter()
            .map(|o| pb::ContextOutcome {
                context: o.context.clone(),
                phase: context_phase(o.phase) as i32,
                message: o.message.clone(),
                duration_ms: o.duration_ms,
            })
            .collect(),
        phase: phase(r.phase) as i32,
    }
}

pub fn event(e: &WatchEvent) -> pb::RolloutEvent {
    let ev = match &e.kind {
        WatchKind::Context {
            state,
            region,
            agent_connected,
        } => pb::rollout_event::Event::Context(context(state, e.revision, region, *agent_connected)),
        WatchKind::Operation(op) => pb::rollout_event::Event::Operation(operation(op)),
    };
    pb::RolloutEvent {
        release: e.release.clone(),
        operation_id: e.operation_id.clone(),
        revision: e.revision,
        at: ts(e.at),
        event: Some(ev),
    }
}

pub fn cluster(c: &ClusterView) -> pb::Cluster {
    pb::Cluster {
        context: c.info.name.clone(),
        region: c.info.region.clone(),
        environment: c.info.env.clone(),
        cloud: c.info.cloud.clone(),
        cluster_name: c.info.cluster_name.clone(),
        labels: c.info.labels.clone().into_iter().collect(),
        agent: Some(pb::AgentInfo {
            connected: c.connected,
            version: c.version.clone(),
            instance: c.instance.clone(),
            connected_at: c.connected_at.and_then(ts),
            last_seen: c.last_seen.and_then(ts),
            in_flight: c.in_flight,
            backend: c.backend.clone(),
            kube_version: c.kube_version.clone(),
        }),
    }
}

/// One context's diff on the wire.
pub fn context_diff(d: &crate::diff::ContextDiff) -> pb::ContextDiff {
    use crate::diff::DiffOutcome;
    let (status, message, objects) = match &d.outcome {
        DiffOutcome::Done(objects) => (
            pb::DiffStatus::Done,
            String::new(),
            objects.iter().map(object_diff).collect(),
        ),
        DiffOutcome::AgentOffline(m) => (pb::DiffStatus::AgentOffline, m.clone(), Vec::new()),
        DiffOutcome::TimedOut(m) => (pb::DiffStatus::TimedOut, m.clone(), Vec::new()),
        DiffOutcome::Failed(m) => (pb::DiffStatus::Failed, m.clone(), Vec::new()),
    };
    pb::ContextDiff {
        context: d.context.clone(),
        region: d.region.clone(),
        status: status as i32,
        message,
        objects,
    }
}

fn object_diff(o: &crate::diff::ObjectDiff) -> pb::ObjectDiff {
    use crate::diff::DiffAction;
    let action = match o.action {
        DiffAction::Create => pb::DiffAction::Create,
        DiffAction::Update => pb::DiffAction::Update,
        DiffAction::Unchanged => pb::DiffAction::Unchanged,
        DiffAction::Delete => pb::DiffAction::Delete,
        DiffAction::Refused => pb::DiffAction::Refused,
    };
    pb::ObjectDiff {
        api_version: o.api_version.clone(),
        kind: o.kind.clone(),
        namespace: o.namespace.clone(),
        name: o.name.clone(),
        action: action as i32,
        changes: o
            .changes
            .iter()
            .map(|c| pb::FieldChange {
                path: c.path.clone(),
                before: c.before.clone(),
                after: c.after.clone(),
                masked: c.masked,
                truncated: c.truncated,
            })
            .collect(),
        message: o.message.clone(),
    }
}

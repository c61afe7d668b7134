//! `--output json`: the wire types as stable JSON for scripts.
//!
//! Field names are the proto's in camelCase; enums are their short names (`HEALTHY`),
//! times RFC 3339. Written by hand because the generated types carry no serde derives
//! (the proto crate stays wire-only).

use convoy_proto::v1 as pb;
use serde_json::{Value, json};

use super::{ctx_phase, diff, op_kind, op_phase, time_ms};

/// A time with milliseconds, or null.
pub fn ts(t: Option<&prost_types::Timestamp>) -> Value {
    let s = time_ms(t);
    if s.is_empty() {
        Value::Null
    } else {
        Value::String(s)
    }
}

/// One operation.
pub fn operation(o: &pb::Operation) -> Value {
    let mut v = operation_fields(o);
    if !o.canary.is_empty() {
        v["canary"] = json!(o.canary);
    }
    // Approval gates, for releases that have them.
    if !o.gated_waves.is_empty() {
        v["gatedWaves"] = json!(o.gated_waves);
        v["approvedWaves"] = json!(o.approved_waves);
        v["awaitingApprovalWave"] = json!(o.awaiting_approval_wave);
        v["approvalDeadline"] = json!(ts(o.approval_deadline.as_ref()));
    }
    // Waiting at an inconclusive gate or a canary's approval step, without approval gates.
    if o.awaiting_approval_wave != 0 {
        v["awaitingApprovalWave"] = json!(o.awaiting_approval_wave);
        v["approvalDeadline"] = json!(ts(o.approval_deadline.as_ref()));
    }
    if !o.gates.is_empty() {
        v["gates"] = o
            .gates
            .iter()
            .map(|g| {
                json!({
                    "name": g.name,
                    "kind": g.kind,
                    "beforeWave": g.before_wave,
                    "canaryStep": g.canary_step,
                    "state": g.state,
                    "check": g.check,
                    "measurementsWanted": g.measurements_wanted,
                    "measurements": g.measurements.iter().map(|m| json!({
                        "at": ts(m.at.as_ref()),
                        "verdict": m.verdict,
                        "detail": m.detail,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
    }
    v
}

fn operation_fields(o: &pb::Operation) -> Value {
    json!({
        "id": o.id,
        "kind": op_kind(o.kind),
        "phase": op_phase(o.phase),
        "revision": o.revision,
        "fromRevision": o.from_revision,
        "requestedBy": o.requested_by,
        "reason": o.reason,
        "createdAt": ts(o.created_at.as_ref()),
        "startedAt": ts(o.started_at.as_ref()),
        "finishedAt": ts(o.finished_at.as_ref()),
        "message": o.message,
        "currentWave": o.current_wave,
        "waves": o.waves,
    })
}

/// One context's state.
pub fn context(c: &pb::ContextState) -> Value {
    json!({
        "context": c.context,
        "region": c.region,
        "wave": c.wave,
        "phase": ctx_phase(c.phase),
        "revision": c.revision,
        "ready": c.ready,
        "desired": c.desired,
        "message": c.message,
        "updatedAt": ts(c.updated_at.as_ref()),
        "agentConnected": c.agent_connected,
        "canaryWeight": c.canary_weight,
    })
}

/// A release and its contexts.
pub fn release(r: &pb::Release) -> Value {
    json!({
        "name": r.name,
        "namespace": r.namespace,
        "environment": r.environment,
        "latestRevision": r.latest_revision,
        "deployedRevision": r.deployed_revision,
        "currentOperation": r.current_operation.as_ref().map(operation),
        "queuedOperations": r.queued_operations,
        "contexts": r.contexts.iter().map(context).collect::<Vec<_>>(),
    })
}

/// One revision in history.
pub fn revision(r: &pb::Revision) -> Value {
    json!({
        "number": r.number,
        "kind": op_kind(r.kind),
        "rollbackTo": r.rollback_to,
        "submittedBy": r.submitted_by,
        "reason": r.reason,
        "submittedAt": ts(r.submitted_at.as_ref()),
        "chartName": r.chart_name,
        "chartVersion": r.chart_version,
        "chartDigest": r.chart_digest,
        "chartSource": r.chart_source,
        "valuesDigest": r.values_digest,
        "secretVersions": r.secret_versions.iter().map(|s| json!({
            "secretId": s.secret_id,
            "context": s.context,
            "vaultPath": s.vault_path,
            "vaultKey": s.vault_key,
            "version": s.version,
        })).collect::<Vec<_>>(),
        "outcomes": r.outcomes.iter().map(|o| json!({
            "context": o.context,
            "phase": ctx_phase(o.phase),
            "message": o.message,
            "durationMs": o.duration_ms,
        })).collect::<Vec<_>>(),
        "phase": op_phase(r.phase),
        "images": r.images.iter().map(image).collect::<Vec<_>>(),
        "values": serde_json::from_str::<Value>(&r.values_json).unwrap_or(Value::Null),
        "valuesChanged": r.values_changed.iter().map(value_change).collect::<Vec<_>>(),
        "chartRanHealthy": r.chart_ran_healthy.iter().map(|d| json!({
            "environment": d.environment,
            "release": d.release,
            "revision": d.revision,
        })).collect::<Vec<_>>(),
    })
}

/// One workload's container image.
pub fn image(i: &pb::WorkloadImage) -> Value {
    json!({
        "workload": i.workload,
        "container": i.container,
        "image": i.image,
        "contexts": i.contexts,
    })
}

/// One changed value (`before`/`after` null when absent on that side).
pub fn value_change(c: &pb::ValueChange) -> Value {
    let side = |s: &str| serde_json::from_str::<Value>(s).unwrap_or(Value::Null);
    json!({
        "context": c.context,
        "path": c.path,
        "before": side(&c.before),
        "after": side(&c.after),
    })
}

/// The answer to a submit.
pub fn submitted(s: &pb::SubmitReleaseResponse) -> Value {
    json!({
        "release": s.release,
        "revision": s.revision,
        "operationId": s.operation_id,
        "phase": op_phase(s.phase),
        "queuePosition": s.queue_position,
        "rendered": s.rendered.iter().map(|r| json!({
            "context": r.context,
            "objects": r.objects,
            "manifestDigest": r.manifest_digest,
        })).collect::<Vec<_>>(),
    })
}

/// The answer to a rollback request.
pub fn rollback(r: &pb::RollbackReleaseResponse) -> Value {
    json!({
        "release": r.release,
        "revision": r.revision,
        "rollbackTo": r.rollback_to,
        "operationId": r.operation_id,
        "phase": op_phase(r.phase),
        "queuePosition": r.queue_position,
    })
}

/// One watch event (a JSON line).
pub fn event(e: &pb::RolloutEvent) -> Value {
    let (kind, body) = match &e.event {
        Some(pb::rollout_event::Event::Context(c)) => ("context", context(c)),
        Some(pb::rollout_event::Event::Operation(o)) => ("operation", operation(o)),
        None => ("unknown", Value::Null),
    };
    json!({
        "release": e.release,
        "operationId": e.operation_id,
        "revision": e.revision,
        "at": ts(e.at.as_ref()),
        kind: body,
    })
}

/// One cluster of the registry.
pub fn cluster(c: &pb::Cluster) -> Value {
    json!({
        "context": c.context,
        "region": c.region,
        "environment": c.environment,
        "cloud": c.cloud,
        "clusterName": c.cluster_name,
        "labels": c.labels.iter().collect::<std::collections::BTreeMap<_, _>>(),
        "agent": c.agent.as_ref().map(|a| json!({
            "connected": a.connected,
            "version": a.version,
            "instance": a.instance,
            "connectedAt": ts(a.connected_at.as_ref()),
            "lastSeen": ts(a.last_seen.as_ref()),
            "inFlight": a.in_flight,
            "backend": a.backend,
        })),
    })
}

/// The answer to a diff. Statuses and actions are lower case (`done`, `update`) and a
/// change's `before`/`after` are the JSON values themselves (a string stays a string),
/// left out when absent or masked, and kept as text when cut (`truncated`).
pub fn diff(r: &pb::DiffReleaseResponse) -> Value {
    let s = diff::Summary::of(r);
    json!({
        "release": r.release,
        "summary": {
            "contexts": s.contexts,
            "changed": s.changed,
            "unchanged": s.unchanged,
            "failed": s.failed.len(),
            "notCompared": s.not_compared.len(),
            "objects": object_counts(&s.objects),
        },
        "contexts": r.contexts.iter().map(diff_context).collect::<Vec<_>>(),
    })
}

fn object_counts(c: &diff::ObjectCounts) -> Value {
    json!({
        "create": c.create,
        "update": c.update,
        "delete": c.delete,
        "unchanged": c.unchanged,
        "refused": c.refused,
        "unknown": c.unknown,
    })
}

fn diff_context(c: &pb::ContextDiff) -> Value {
    let counts = diff::ObjectCounts::of(&c.objects);
    let done = c.status == pb::DiffStatus::Done as i32;
    json!({
        "context": c.context,
        "region": c.region,
        "status": diff::status_name(c.status),
        "message": c.message,
        "changed": done && counts.changed() > 0,
        "counts": object_counts(&counts),
        "objects": c.objects.iter().map(|o| json!({
            "apiVersion": o.api_version,
            "kind": o.kind,
            "namespace": o.namespace,
            "name": o.name,
            "action": diff::action_name(o.action),
            "message": o.message,
            "changes": o.changes.iter().map(field_change).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

fn field_change(c: &pb::FieldChange) -> Value {
    let mut v = json!({
        "path": c.path,
        "masked": c.masked,
        "truncated": c.truncated,
    });
    if !c.masked {
        for (key, raw) in [("before", &c.before), ("after", &c.after)] {
            if !raw.is_empty() {
                // A cut value is no longer JSON; keep it as the text it is.
                v[key] = match c.truncated {
                    true => Value::String(raw.clone()),
                    false => serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.clone())),
                };
            }
        }
    }
    v
}

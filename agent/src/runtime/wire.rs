//! Translation between `convoy.v1` wire types and the agent's domain types, in one
//! place at the edge: nothing else in the agent sees a generated type's shape.

use std::time::{Duration, SystemTime};

use convoy_proto::v1 as pb;
use pb::agent_event::Event;

use crate::backend::{
    ApplyRequest, ClusterCapabilities, DeployedRevision, Failure, FieldChange, HealthPolicy, Manifest,
    ObjectAction, ObjectRef, ObjectResult, OpRef, ProgressUpdate,
};

/// Kubernetes' own default for `progressDeadlineSeconds`, used when a command leaves
/// the deadline at 0 (proto3's "unset"): a rollout with no deadline could hang forever.
pub const DEFAULT_PROGRESS_DEADLINE: Duration = Duration::from_secs(600);

pub fn op_from_wire(op: pb::OperationRef) -> OpRef {
    OpRef {
        release: op.release,
        revision: op.revision,
        operation_id: op.operation_id,
    }
}

pub fn op_to_wire(op: &OpRef) -> pb::OperationRef {
    pb::OperationRef {
        release: op.release.clone(),
        revision: op.revision,
        operation_id: op.operation_id.clone(),
    }
}

pub fn object_to_wire(o: &ObjectRef) -> pb::ObjectRef {
    pb::ObjectRef {
        api_version: o.api_version.clone(),
        kind: o.kind.clone(),
        namespace: o.namespace.clone().unwrap_or_default(),
        name: o.name.clone(),
    }
}

fn action_to_wire(a: ObjectAction) -> pb::ObjectAction {
    match a {
        ObjectAction::Created => pb::ObjectAction::Created,
        ObjectAction::Configured => pb::ObjectAction::Configured,
        ObjectAction::Unchanged => pb::ObjectAction::Unchanged,
        ObjectAction::Pruned => pb::ObjectAction::Pruned,
        ObjectAction::Refused => pb::ObjectAction::Refused,
    }
}

pub fn results_to_wire(results: &[ObjectResult]) -> Vec<pb::ObjectResult> {
    results
        .iter()
        .map(|r| pb::ObjectResult {
            object: Some(object_to_wire(&r.object)),
            action: action_to_wire(r.action).into(),
            changed_fields: r.changes.iter().map(|c| c.path.clone()).collect(),
            message: r.message.clone(),
            changes: r.changes.iter().map(change_to_wire).collect(),
        })
        .collect()
}

/// The most bytes of one value's JSON sent in a [`pb::FieldChange`]: a dry run of a
/// big ConfigMap must not grow the event past what the link carries comfortably.
pub const MAX_VALUE_BYTES: usize = 8192;

fn change_to_wire(c: &FieldChange) -> pb::FieldChange {
    if c.masked {
        return pb::FieldChange {
            path: c.path.clone(),
            masked: true,
            ..pb::FieldChange::default()
        };
    }
    let (before, before_cut) = value_to_wire(c.before.as_ref());
    let (after, after_cut) = value_to_wire(c.after.as_ref());
    pb::FieldChange {
        path: c.path.clone(),
        before,
        after,
        masked: false,
        truncated: before_cut || after_cut,
    }
}

/// A value as compact JSON (empty for an absent field), cut at a char boundary to at
/// most [`MAX_VALUE_BYTES`]; true when it was cut.
fn value_to_wire(value: Option<&serde_json::Value>) -> (String, bool) {
    let Some(value) = value else {
        return (String::new(), false);
    };
    // `Value`'s Display is compact JSON (what `serde_json::to_string` writes) and
    // cannot fail.
    let mut text = value.to_string();
    if text.len() <= MAX_VALUE_BYTES {
        return (text, false);
    }
    let mut end = MAX_VALUE_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    (text, true)
}

/// A command's health policy; zero (or absent) deadline means the default, a zero
/// window means "healthy as soon as ready".
pub fn health_from_wire(h: Option<pb::HealthPolicy>) -> HealthPolicy {
    let h = h.unwrap_or_default();
    let deadline = match h.progress_deadline_seconds {
        0 => DEFAULT_PROGRESS_DEADLINE,
        s => Duration::from_secs(u64::from(s)),
    };
    HealthPolicy {
        progress_deadline: deadline,
        min_ready_window: Duration::from_secs(u64::from(h.min_ready_window_seconds)),
    }
}

fn manifest_from_wire(m: pb::Manifest) -> Manifest {
    Manifest {
        source: m.source,
        content: m.content,
    }
}

pub fn apply_from_wire(op: OpRef, a: pb::ApplyRevision) -> ApplyRequest {
    ApplyRequest {
        op,
        namespace: a.namespace,
        manifests: a.manifests.into_iter().map(manifest_from_wire).collect(),
        health: health_from_wire(a.health),
        force_conflicts: a.force_conflicts,
        adopt: a.adopt,
        force_roll: a.force_roll,
        chart: a.chart,
        hooks: a.hooks.into_iter().map(manifest_from_wire).collect(),
        allow_mass_deletion: a.allow_mass_deletion,
        secret_digests: digests_from_wire(a.secret_digests),
        blue_green: a.blue_green.map(|b| crate::backend::BlueGreen {
            preview_service: b.preview_service,
        }),
    }
}

/// The coordinator's digests; a malformed entry (not 32 bytes) is dropped.
pub fn digests_from_wire(d: Option<pb::SecretDigests>) -> crate::mask::SecretDigests {
    let d = d.unwrap_or_default();
    crate::mask::SecretDigests {
        salt: d.salt,
        forms: d
            .forms
            .into_iter()
            .filter_map(|f| Some((f.length as usize, <[u8; 32]>::try_from(f.sha256.as_slice()).ok()?)))
            .collect(),
    }
}

/// Masks the secrets `m` describes in every message of `event`: failures, progress
/// reasons, dry-run refusals; a dry-run field change whose value holds one is withheld
/// whole (`masked`).
pub fn mask_event(event: &mut Event, m: &crate::mask::DigestMasker) {
    if m.is_empty() {
        return;
    }
    match event {
        Event::Failed(f) => {
            f.message = m.mask(&f.message);
            f.reason = m.mask(&f.reason);
        }
        Event::Progress(p) => {
            for o in &mut p.objects {
                o.reason = m.mask(&o.reason);
            }
        }
        Event::DryRun(d) => {
            for o in &mut d.objects {
                o.message = m.mask(&o.message);
                for c in &mut o.changes {
                    if !c.masked && (m.mask(&c.before) != c.before || m.mask(&c.after) != c.after) {
                        c.masked = true;
                        c.before.clear();
                        c.after.clear();
                    }
                }
            }
        }
        Event::Aborted(a) => a.reason = m.mask(&a.reason),
        _ => {}
    }
}

pub fn deployed_to_wire(d: &DeployedRevision) -> pb::DeployedRevision {
    pb::DeployedRevision {
        release: d.release.clone(),
        revision: d.revision,
        healthy: d.healthy,
        kept: d.kept.clone(),
        slot: d.slot.clone().unwrap_or_default(),
        switched: d.switched,
    }
}

/// The hello's capabilities: what discovery found, or why it found nothing.
pub fn capabilities_to_wire(c: Result<&ClusterCapabilities, &str>) -> pb::ClusterCapabilities {
    match c {
        Ok(c) => pb::ClusterCapabilities {
            kube_version: c.kube_version.clone(),
            api_versions: c.api_versions.clone(),
            error: String::new(),
        },
        Err(why) => pb::ClusterCapabilities {
            error: why.to_string(),
            ..pb::ClusterCapabilities::default()
        },
    }
}

pub fn failed(f: &Failure) -> Event {
    Event::Failed(pb::Failed {
        reason: f.reason.as_str().to_string(),
        message: f.message.clone(),
        object: f.object.as_ref().map(object_to_wire),
    })
}

pub fn progress(u: &ProgressUpdate) -> Event {
    Event::Progress(pb::Progress {
        objects: u
            .changed
            .iter()
            .map(|p| pb::ObjectProgress {
                object: Some(object_to_wire(&p.object)),
                ready: p.ready,
                desired: p.desired,
                reason: p.reason.clone(),
            })
            .collect(),
        ready: u.ready,
        desired: u.desired,
    })
}

pub fn timestamp(t: SystemTime) -> prost_types::Timestamp {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    prost_types::Timestamp {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

/// An event about `op`, stamped now.
pub fn event(op: &OpRef, event: Event) -> pb::AgentEvent {
    pb::AgentEvent {
        op: Some(op_to_wire(op)),
        at: Some(timestamp(SystemTime::now())),
        event: Some(event),
    }
}

/// Healthy, Failed, DryRunResult and Aborted end an operation.
pub fn is_final(e: &pb::AgentEvent) -> bool {
    matches!(
        e.event,
        Some(Event::Healthy(_) | Event::Failed(_) | Event::DryRun(_) | Event::Aborted(_))
    )
}

/// The outcome label of a final event, for metrics.
pub fn outcome_label(e: &pb::AgentEvent) -> &'static str {
    match e.event {
        Some(Event::Healthy(_)) => "healthy",
        Some(Event::Failed(_)) => "failed",
        Some(Event::DryRun(_)) => "dry_run",
        Some(Event::Aborted(_)) => "aborted",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_deadline_means_the_default_and_zero_window_means_none() {
        let h = health_from_wire(Some(pb::HealthPolicy {
            progress_deadline_seconds: 0,
            min_ready_window_seconds: 0,
        }));
        assert_eq!(h.progress_deadline, DEFAULT_PROGRESS_DEADLINE);
        assert_eq!(h.min_ready_window, Duration::ZERO);
        let h = health_from_wire(Some(pb::HealthPolicy {
            progress_deadline_seconds: 30,
            min_ready_window_seconds: 10,
        }));
        assert_eq!(
            (h.progress_deadline, h.min_ready_window),
            (Duration::from_secs(30), Duration::from_secs(10))
        );
    }

    #[test]
    fn hooks_arrive_apart_from_the_manifests() {
        let m = |source: &str| pb::Manifest {
            source: source.into(),
            content: "x".into(),
        };
        let op = op_from_wire(pb::OperationRef::default());
        let req = apply_from_wire(
            op,
            pb::ApplyRevision {
                manifests: vec![m("app/templates/web.yaml")],
                hooks: vec![m("app/templates/migrate.yaml")],
                ..Default::default()
            },
        );
        assert_eq!(req.manifests[0].source, "app/templates/web.yaml");
        assert_eq!(req.hooks.len(), 1);
        assert_eq!(req.hooks[0].source, "app/templates/migrate.yaml");
    }

    #[test]
    fn cluster_scoped_objects_have_an_empty_namespace_on_the_wire() {
        let o = ObjectRef {
            api_version: "v1".into(),
            kind: "Namespace".into(),
            namespace: None,
            name: "ns1".into(),
        };
        assert_eq!(object_to_wire(&o).namespace, "");
    }

    fn change(
        before: Option<serde_json::Value>,
        after: Option<serde_json::Value>,
        masked: bool,
    ) -> FieldChange {
        FieldChange {
            path: "data[\"app.conf\"]".into(),
            before,
            after,
            masked,
        }
    }

    #[test]
    fn results_carry_paths_and_compact_json_values() {
        let results = [ObjectResult {
            object: ObjectRef {
                api_version: "v1".into(),
                kind: "ConfigMap".into(),
                namespace: Some("ns1".into()),
                name: "cfg".into(),
            },
            action: ObjectAction::Configured,
            changes: vec![
                change(Some(serde_json::json!("a b")), None, false),
                change(None, Some(serde_json::json!({"k": [1, 2]})), false),
            ],
            message: String::new(),
        }];
        let wire = results_to_wire(&results);
        assert_eq!(
            wire[0].changed_fields,
            ["data[\"app.conf\"]", "data[\"app.conf\"]"]
        );
        let c = &wire[0].changes;
        assert_eq!((c[0].before.as_str(), c[0].after.as_str()), ("\"a b\"", ""));
        assert_eq!(
            (c[1].before.as_str(), c[1].after.as_str()),
            ("", r#"{"k":[1,2]}"#)
        );
        assert!(!c[0].masked && !c[0].truncated && !c[1].truncated);
    }

    #[test]
    fn a_masked_change_sends_no_values() {
        let c = change_to_wire(&change(None, None, true));
        assert!(c.masked);
        assert_eq!(
            (c.before.as_str(), c.after.as_str(), c.truncated),
            ("", "", false)
        );
    }

    #[test]
    fn long_values_are_cut_at_a_char_boundary() {
        // The quote opens the JSON string, so "é" (2 bytes) starts at odd offsets and
        // the 8192nd byte falls inside one.
        let long = serde_json::Value::String("é".repeat(MAX_VALUE_BYTES));
        let c = change_to_wire(&change(Some(serde_json::json!(1)), Some(long), false));
        assert!(c.truncated);
        assert_eq!(c.before, "1");
        assert_eq!(c.after.len(), MAX_VALUE_BYTES - 1);
        assert!(c.after.starts_with("\"éé"));

        let exact = serde_json::Value::String("x".repeat(MAX_VALUE_BYTES - 2));
        let c = change_to_wire(&change(Some(exact), None, false));
        assert_eq!((c.before.len(), c.truncated), (MAX_VALUE_BYTES, false));
    }

    #[test]
    fn final_events_are_recognised() {
        let op = op_from_wire(pb::OperationRef {
            release: "a".into(),
            revision: 1,
            operation_id: "x".into(),
        });
        assert!(!is_final(&event(
            &op,
            Event::Accepted(pb::Accepted { replay: false })
        )));
        assert!(is_final(&event(
            &op,
            Event::Aborted(pb::Aborted { reason: "r".into() })
        )));
        assert_eq!(op_to_wire(&op).operation_id, "x");
    }
}

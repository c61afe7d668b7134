//! `convoy.v1` agent-link messages to and from the core's domain terms.

use convoy_proto::v1 as pb;

use crate::capabilities::ClusterCapabilities;
use crate::core::{AgentReport, OutBody, OutCommand, ReportedCapabilities};
use crate::diff::{DiffAction, DiffOutcome, FieldChange, ObjectDiff};
use crate::orchestrator::Report;

fn health(h: (std::time::Duration, std::time::Duration)) -> pb::HealthPolicy {
    pb::HealthPolicy {
        progress_deadline_seconds: h.0.as_secs() as u32,
        min_ready_window_seconds: h.1.as_secs() as u32,
    }
}

/// The masker's forms as digests under a fresh random salt (never the values).
fn secret_digests(m: &convoy_release::mask::Masker) -> pb::SecretDigests {
    let salt: [u8; 16] = rand::random();
    pb::SecretDigests {
        salt: salt.to_vec(),
        forms: m
            .digests(&salt)
            .into_iter()
            .map(|d| pb::SecretDigest {
                length: d.len as u32,
                sha256: d.sha256.to_vec(),
            })
            .collect(),
    }
}

/// A core command as a wire command.
pub fn command_to_wire(cmd: &OutCommand) -> pb::Command {
    let manifests = |ms: &[crate::prepare::RenderedManifest]| -> Vec<pb::Manifest> {
        ms.iter()
            .map(|m| pb::Manifest {
                source: m.source.clone(),
                content: m.content.clone(),
            })
            .collect()
    };
    let apply = |b: &crate::core::ApplyBody| pb::ApplyRevision {
        namespace: b.namespace.clone(),
        manifests: manifests(&b.manifests),
        hooks: manifests(&b.hooks),
        health: Some(health(b.health)),
        force_conflicts: b.options.force_conflicts,
        adopt: b.options.adopt,
        force_roll: b.options.force_roll,
        chart: b.chart.clone(),
        secret_digests: Some(secret_digests(&b.masker)),
        allow_mass_deletion: b.options.allow_mass_deletion,
        blue_green: b
            .blue_green
            .map(|preview_service| pb::BlueGreen { preview_service }),
    };
    let command = match &cmd.body {
        OutBody::Apply(b) => pb::command::Command::Apply(apply(b)),
        OutBody::DryRun(b) => pb::command::Command::DryRun(pb::DryRun {
            apply: Some(apply(b)),
        }),
        OutBody::Canary(b, weight) => pb::command::Command::Canary(pb::ApplyCanary {
            apply: Some(apply(b)),
            weight_percent: *weight,
        }),
        OutBody::Switch { retire_after_seconds } => pb::command::Command::SwitchSlot(pb::SwitchSlot {
            retire_after_seconds: *retire_after_seconds,
        }),
        OutBody::Rollback { target, health: h } => pb::command::Command::Rollback(pb::RollbackToRevision {
            target_revision: *target,
            health: Some(health(*h)),
        }),
        OutBody::Abort { reason } => pb::command::Command::Abort(pb::Abort {
            reason: reason.clone(),
        }),
    };
    pb::Command {
        op: Some(pb::OperationRef {
            release: cmd.release.clone(),
            revision: cmd.revision,
            operation_id: cmd.operation_id.clone(),
        }),
        command: Some(command),
    }
}

fn object_name(o: &Option<pb::ObjectRef>) -> String {
    o.as_ref().map_or_else(String::new, |o| {
        if o.namespace.is_empty() {
            format!("{}/{}", o.kind.to_lowercase(), o.name)
        } else {
            format!("{}/{}/{}", o.kind.to_lowercase(), o.namespace, o.name)
        }
    })
}

/// A failure's message, prefixed with the object it names unless it names it already.
fn failure_message(f: &pb::Failed) -> String {
    let obj = object_name(&f.object);
    if obj.is_empty() || f.message.contains(&obj) {
        f.message.clone()
    } else {
        format!("{obj}: {}", f.message)
    }
}

/// A hello's capabilities: none from an agent older than the field; an agent's
/// discovery error, or a version the charts could not be rendered with, as a failure.
pub fn capabilities_from_wire(c: Option<&pb::ClusterCapabilities>) -> ReportedCapabilities {
    let Some(c) = c else {
        return ReportedCapabilities::NotSent;
    };
    if !c.error.is_empty() {
        return ReportedCapabilities::Failed(c.error.clone());
    }
    match ClusterCapabilities::new(&c.kube_version, c.api_versions.iter().cloned()) {
        Ok(caps) if !caps.api_versions().is_empty() => ReportedCapabilities::Reported(caps),
        Ok(_) => ReportedCapabilities::Failed("the agent reported no API versions".into()),
        Err(why) => ReportedCapabilities::Failed(format!("the agent reported a bad version: {why}")),
    }
}

/// An agent event as a domain report (None for an event without an operation).
pub fn report_from_wire(ev: &pb::AgentEvent) -> Option<AgentReport> {
    use pb::agent_event::Event;
    let op = ev.op.as_ref()?;
    let report = match ev.event.as_ref()? {
        Event::Accepted(_) => Report::Accepted,
        Event::Applied(_) => Report::Applied,
        Event::Progress(p) => {
            let mut parts: Vec<String> = p
                .objects
                .iter()
                .filter(|o| o.ready < o.desired || !o.reason.is_empty())
                .take(3)
                .map(|o| {
                    let r = if o.reason.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", o.reason)
                    };
                    format!("{} {}/{}{r}", object_name(&o.object), o.ready, o.desired)
                })
                .collect();
            if parts.is_empty() {
                parts.push(format!("{}/{} ready", p.ready, p.desired));
            }
            Report::Progress {
                ready: p.ready,
                desired: p.desired,
                message: parts.join("; "),
            }
        }
        Event::Healthy(_) => Report::Healthy,
        Event::Failed(f) => Report::Failed {
            reason: f.reason.clone(),
            message: failure_message(f),
        },
        Event::DryRun(d) => {
            let refused: Vec<String> = d
                .objects
                .iter()
                .filter(|o| o.action == pb::ObjectAction::Refused as i32)
                .map(|o| format!("{}: {}", object_name(&o.object), o.message))
                .collect();
            if refused.is_empty() {
                Report::DryRunPassed
            } else {
                Report::Failed {
                    reason: "ApplyRefused".into(),
                    message: refused.join("; "),
                }
            }
        }
        Event::Aborted(_) => Report::Aborted,
    };
    Some(AgentReport {
        release: op.release.clone(),
        revision: op.revision,
        operation_id: op.operation_id.clone(),
        report,
    })
}

/// The final answer to a diff's dry run (None for the events before it: accepted...).
pub fn diff_from_wire(ev: &pb::AgentEvent) -> Option<DiffOutcome> {
    use pb::agent_event::Event;
    match ev.event.as_ref()? {
        Event::DryRun(d) => Some(DiffOutcome::Done(d.objects.iter().map(object_diff).collect())),
        Event::Failed(f) => Some(DiffOutcome::Failed(format!(
            "{}: {}",
            f.reason,
            failure_message(f)
        ))),
        Event::Aborted(a) => Some(DiffOutcome::Failed(format!(
            "the dry run was aborted: {}",
            a.reason
        ))),
        Event::Accepted(_) | Event::Applied(_) | Event::Progress(_) | Event::Healthy(_) => None,
    }
}

fn object_diff(o: &pb::ObjectResult) -> ObjectDiff {
    let r = o.object.clone().unwrap_or_default();
    let action = match pb::ObjectAction::try_from(o.action).unwrap_or_default() {
        pb::ObjectAction::Created => DiffAction::Create,
        pb::ObjectAction::Configured => DiffAction::Update,
        pb::ObjectAction::Unchanged => DiffAction::Unchanged,
        pb::ObjectAction::Pruned => DiffAction::Delete,
        // An action this coordinator does not know is not claimed to be harmless.
        pb::ObjectAction::Refused | pb::ObjectAction::Unspecified => DiffAction::Refused,
    };
    // An older agent sends only the paths: the fields are named, their values unknown.
    let changes = if o.changes.is_empty() {
        o.changed_fields
            .iter()
            .map(|path| FieldChange {
                path: path.clone(),
                before: String::new(),
                after: String::new(),
                masked: true,
                truncated: false,
            })
            .collect()
    } else {
        o.changes
            .iter()
            .map(|c| FieldChange {
                path: c.path.clone(),
                before: c.before.clone(),
                after: c.after.clone(),
                masked: c.masked,
                truncated: c.truncated,
            })
            .collect()
    };
    ObjectDiff {
        api_version: r.api_version,
        kind: r.kind,
        namespace: r.namespace,
        name: r.name,
        action,
        changes,
        message: o.message.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hello_without_capabilities_is_an_older_agent_and_a_bad_report_a_failure() {
        assert!(matches!(
            capabilities_from_wire(None),
            ReportedCapabilities::NotSent
        ));
        let report = |kube: &str, apis: &[&str], error: &str| pb::ClusterCapabilities {
            kube_version: kube.into(),
            api_versions: apis.iter().map(|a| a.to_string()).collect(),
            error: error.into(),
        };
        match capabilities_from_wire(Some(&report("v1.20.2", &["v1", "v1/Pod"], ""))) {
            ReportedCapabilities::Reported(c) => {
                assert_eq!((c.kube_version(), c.api_versions().len()), ("v1.20.2", 2));
            }
            other => panic!("{other:?}"),
        }
        for (r, want) in [
            (report("", &[], "discovery: reading /apis: 403"), "403"),
            (report("v1.20.2", &[], ""), "no API versions"),
            (report("twenty", &["v1"], ""), "bad version"),
        ] {
            match capabilities_from_wire(Some(&r)) {
                ReportedCapabilities::Failed(why) => assert!(why.contains(want), "{why}"),
                other => panic!("{other:?}"),
            }
        }
    }
}

//! `convoy.v1` agent-link messages to and from the core's domain terms.

use convoy_proto::v1 as pb;

use crate::core::{AgentReport, OutBody, OutCommand};
use crate::orchestrator::Report;

fn health(h: (std::time::Duration, std::time::Duration)) -> pb::HealthPolicy {
    pb::HealthPolicy {
        progress_deadline_seconds: h.0.as_secs() as u32,
        min_ready_window_seconds: h.1.as_secs() as u32,
    }
}

/// A core command as a wire command.
pub fn command_to_wire(cmd: &OutCommand) -> pb::Command {
    let apply = |b: &crate::core::ApplyBody| pb::ApplyRevision {
        namespace: b.namespace.clone(),
        manifests: b
            .manifests
            .iter()
            .map(|m| pb::Manifest {
                source: m.source.clone(),
                content: m.content.clone(),
            })
            .collect(),
        health: Some(health(b.health)),
        force_conflicts: b.options.force_conflicts,
        adopt: b.options.adopt,
        force_roll: b.options.force_roll,
        chart: b.chart.clone(),
    };
    let command = match &cmd.body {
        OutBody::Apply(b) => pb::command::Command::Apply(apply(b)),
        OutBody::DryRun(b) => pb::command::Command::DryRun(pb::DryRun {
            apply: Some(apply(b)),
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
        Event::Failed(f) => {
            let obj = object_name(&f.object);
            Report::Failed {
                reason: f.reason.clone(),
                message: if obj.is_empty() || f.message.contains(&obj) {
                    f.message.clone()
                } else {
                    format!("{obj}: {}", f.message)
                },
            }
        }
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

//! Agent sessions: connects, capabilities, disconnects and reports.

use super::*;

impl Core {
    pub(super) fn agent_connected(&mut self, hello: AgentHello, tx: CommandSender) {
        let now = now_millis();
        let ctx = hello.context.clone();
        tracing::info!(context = %ctx, instance = %hello.instance, version = %hello.version, "agent connected");
        self.agent_capabilities(&ctx, &hello.instance, hello.capabilities);
        // What the cluster's history holds is history the coordinator may not have
        // recorded (a release deployed there before): the next deploy is an upgrade.
        for (release, revision) in &hello.deployed {
            if let Some(rel) = self.releases.get_mut(release)
                && !rel.record.has_history_in(&ctx)
            {
                rel.record.applied.insert(ctx.clone(), *revision);
                self.batch.put(Table::Releases, release.clone(), &rel.record);
            }
        }
        self.agents.insert(
            ctx.clone(),
            AgentState {
                session_id: Some(hello.session_id.clone()),
                tx: Some(tx),
                version: hello.version.clone(),
                instance: hello.instance.clone(),
                backend: hello.backend.clone(),
                connected_at: now,
                last_seen: now,
                in_flight: hello.in_flight,
                releases: hello.deployed.iter().map(|(r, _)| r.clone()).collect(),
            },
        );
        for report in hello.unacknowledged {
            self.agent_report(&ctx, report);
        }
        let ops = self.started_ops(|o| o.contexts.contains_key(&ctx));
        for id in ops {
            let step = self.step(&id, |op, env, now| op.on_agent_online(env, &ctx, now));
            self.apply_step(&id, step);
            self.push_context_event(&id, &ctx);
        }
    }

    /// Keeps what a connecting agent reported of its cluster as the context's latest
    /// capabilities (stored, by digest, when they changed).
    pub(super) fn agent_capabilities(&mut self, ctx: &str, instance: &str, reported: ReportedCapabilities) {
        match reported {
            ReportedCapabilities::Reported(caps) => {
                if self.capabilities.get(ctx).is_some_and(|c| **c == caps) {
                    return;
                }
                tracing::info!(
                    context = %ctx,
                    kube_version = %caps.kube_version(),
                    api_versions = caps.api_versions().len(),
                    digest = %caps.digest(),
                    "cluster capabilities reported: this context renders with them"
                );
                self.batch
                    .put(Table::Capabilities, capabilities_key(caps.digest()), &caps);
                self.batch.put(
                    Table::Capabilities,
                    context_capabilities_key(ctx),
                    &caps.digest().to_string(),
                );
                let caps = self.shared_capabilities(caps);
                self.capabilities.insert(ctx.to_string(), caps);
            }
            ReportedCapabilities::Failed(why) => {
                let kept = self.capabilities.get(ctx).map(|c| c.kube_version().to_string());
                tracing::warn!(
                    context = %ctx,
                    instance,
                    reason = %why,
                    kept = kept.as_deref().unwrap_or("none: Helm's defaults"),
                    "the agent could not report its cluster's capabilities; this context renders with those it reported before"
                );
            }
            ReportedCapabilities::NotSent => {
                if self.silent_agents.insert((ctx.to_string(), instance.to_string())) {
                    tracing::warn!(
                        context = %ctx,
                        instance,
                        "the agent reports no cluster capabilities (it is older than capability reporting): this context renders with Helm's defaults, Kubernetes {} and Helm's default API versions",
                        convoy_chart::DEFAULT_KUBE_VERSION
                    );
                }
                if self.capabilities.remove(ctx).is_some() {
                    self.batch
                        .delete(Table::Capabilities, context_capabilities_key(ctx));
                }
            }
        }
    }

    pub(super) fn agent_disconnected(&mut self, context: &str, session_id: &str) {
        if let Some(a) = self.agents.get_mut(context)
            && a.session_id.as_deref() == Some(session_id)
        {
            tracing::warn!(context, "agent disconnected");
            a.tx = None;
            a.session_id = None;
            a.last_seen = now_millis();
            self.diffs.agent_lost(context);
        }
    }

    pub(super) fn agent_report(&mut self, context: &str, report: AgentReport) {
        if let Some(a) = self.agents.get_mut(context) {
            a.last_seen = now_millis();
        }
        let (op_id, preflight, canary) = match report.operation_id.strip_suffix(PREFLIGHT_SUFFIX) {
            Some(base) => (base.to_string(), true, None),
            None => match split_canary_id(&report.operation_id) {
                Some((base, k)) => (base.to_string(), false, Some(k)),
                None => (report.operation_id.clone(), false, None),
            },
        };
        let Some(op) = self.ops.get(&op_id) else {
            tracing::debug!(context, operation = %report.operation_id, "report for an unknown or finished operation");
            return;
        };
        if op.release != report.release {
            tracing::warn!(context, operation = %op_id, "report names the wrong release; ignored");
            return;
        }
        let stage = if preflight {
            Stage::Preflight
        } else if let Some(k) = canary {
            if report.revision != op.revision {
                return;
            }
            Stage::Canary(k)
        } else if op.kind == OperationKind::Deploy && op.rollback_revision == Some(report.revision) {
            Stage::Rollback
        } else if report.revision == op.revision {
            Stage::Main
        } else {
            return;
        };
        let ctx = context.to_string();
        // The agent masks what it knows; mask again with every secret the coordinator
        // resolved (a Kubernetes error quoting a value, a hook's message).
        let masker = self
            .prepared
            .get(&op_id)
            .map(|p| &p.masker)
            .or_else(|| self.maskers.get(&report.release));
        let r = match masker {
            Some(m) => mask_report(report.report, m),
            None => report.report,
        };
        let step = self.step(&op_id, |op, env, now| op.on_report(env, &ctx, stage, r, now));
        self.apply_step(&op_id, step);
    }
}

/// `r` with secrets masked in its messages.
fn mask_report(r: Report, m: &convoy_release::mask::Masker) -> Report {
    match r {
        Report::Progress {
            ready,
            desired,
            message,
        } => Report::Progress {
            ready,
            desired,
            message: m.mask(&message),
        },
        Report::Failed { reason, message } => Report::Failed {
            reason: m.mask(&reason),
            message: m.mask(&message),
        },
        other => other,
    }
}

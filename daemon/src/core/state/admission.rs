//! Admission: submits, rollbacks, operator controls and cancels, each checked against
//! the caller's role and scope and audited, then recorded and queued.

use super::*;

impl Core {
    /// Refuses (and audits the refusal) unless `release` and `contexts` lie in `who`'s
    /// scope; `verb` is what it was doing (`roll back`).
    pub(super) fn check_scope(
        &mut self,
        who: &Principal,
        verb: &str,
        action: &str,
        release: &str,
        contexts: &[String],
        reason: &str,
    ) -> Result<(), CoreError> {
        let namespace = self
            .releases
            .get(release)
            .map(|r| r.record.namespace.clone())
            .unwrap_or_default();
        let checked = who.check_scope(
            verb,
            release,
            &namespace,
            contexts.iter().map(String::as_str),
            &self.registry,
        );
        if let Err(e) = checked {
            let what = Audit {
                action,
                release,
                revision: None,
                op: None,
            };
            self.audit(who, what, reason, &format!("refused: {e}"));
            return Err(CoreError::Denied(e));
        }
        Ok(())
    }

    /// Every context a release runs or ran in.
    pub(super) fn release_contexts(&self, release: &str) -> Vec<String> {
        let Some(rel) = self.releases.get(release) else {
            return Vec::new();
        };
        let mut contexts = rel.record.contexts.clone();
        for c in rel.record.deployed.keys() {
            if !contexts.contains(c) {
                contexts.push(c.clone());
            }
        }
        contexts
    }

    /// `who` must hold `role` for `what`; a refusal is audited (as `about`) and
    /// returned as [`CoreError::Denied`].
    fn require_role(
        &mut self,
        who: &Principal,
        role: Role,
        what: &str,
        about: Audit<'_>,
        reason: &str,
    ) -> Result<(), CoreError> {
        who.require(role, what).map_err(|e| {
            self.audit(who, about, reason, &format!("refused: {e}"));
            CoreError::Denied(e)
        })
    }

    pub(super) fn submit(
        &mut self,
        who: &Principal,
        prepared: Prepared,
        inputs: SubmitInputs,
        reason: &str,
    ) -> Result<Accepted, CoreError> {
        let name = prepared.meta.name.clone();
        self.require_role(
            who,
            Role::Deployer,
            "submit",
            Audit {
                action: "submit",
                release: &name,
                revision: None,
                op: None,
            },
            reason,
        )?;
        let unknown: Vec<&String> = prepared
            .plan
            .contexts()
            .filter(|c| !self.registry.contains_key(*c))
            .collect();
        if !unknown.is_empty() {
            return Err(CoreError::Invalid(format!(
                "{}: unknown context(s) {:?}; the coordinator's registry has {:?}",
                inputs.source_name,
                unknown,
                self.registry.keys().collect::<Vec<_>>()
            )));
        }
        let now = now_millis();
        let rel = self.releases.entry(name.clone()).or_insert_with(|| ReleaseState {
            record: ReleaseRecord {
                name: name.clone(),
                namespace: prepared.meta.namespace.clone(),
                environment: prepared.meta.environment.clone(),
                latest_revision: 0,
                deployed: BTreeMap::new(),
                contexts: Vec::new(),
                applied: BTreeMap::new(),
            },
            queue: VecDeque::new(),
            last_op: None,
            op_keys: HashMap::new(),
        });
        rel.record.latest_revision += 1;
        let revision = rel.record.latest_revision;
        rel.record.contexts = prepared.plan.contexts().cloned().collect();
        rel.record.namespace = prepared.meta.namespace.clone();
        rel.record.environment = prepared.meta.environment.clone();
        let deployed = rel.record.deployed.clone();
        let record = rel.record.clone();
        let seq = self.next_seq();
        let id = format!("op-{seq:06}");
        let req = Requested {
            by: &who.name,
            reason,
            at: now,
        };
        let op = Operation::queued(
            id.clone(),
            name.clone(),
            OperationKind::Deploy,
            revision,
            prepared.plan.clone(),
            &deployed,
            req,
        );
        let rev = RevisionRecord {
            release: name.clone(),
            number: revision,
            kind: OperationKind::Deploy,
            rollback_to: None,
            operation_id: id.clone(),
            submitted_by: who.name.clone(),
            reason: reason.to_string(),
            submitted_at: now,
            chart_name: prepared.chart_name.clone(),
            chart_version: prepared.chart_version.clone(),
            chart_digest: inputs.chart_digest.clone(),
            chart_origin: inputs.chart_origin.clone(),
            values_digest: prepared.values_digest.clone(),
            secret_versions: prepared.secret_versions.clone(),
            outcomes: Vec::new(),
            phase: OperationPhase::Queued,
            contexts: record.contexts.clone(),
            rendered_with: RenderRecord::of(&prepared.facts),
            images: prepared.images.clone(),
            values: prepared.values.clone(),
            message: String::new(),
        };
        self.batch.put(Table::Releases, name.clone(), &record);
        self.batch
            .put(Table::Revisions, revision_key(&name, revision), &rev);
        // The archive once per digest: a revision that re-ships a kept chart (a new
        // image, new values) stores only its inputs.
        let kept = inputs.chart_digest.is_empty()
            || self.store.has_chart(&inputs.chart_digest).unwrap_or(false)
            || self.batch.writes(Table::Charts, &inputs.chart_digest);
        StateStore::put_inputs(&mut self.batch, &revision_key(&name, revision), &inputs, kept);
        self.revisions.entry(name.clone()).or_default().push(rev);
        self.remember_masker(&prepared);
        self.prepared.insert(id.clone(), Arc::new(prepared));
        self.audit(
            who,
            Audit {
                action: "submit",
                release: &name,
                revision: Some(revision),
                op: Some(&id),
            },
            reason,
            "accepted",
        );
        let position = self.enqueue(op, seq, false);
        self.start_next(&name);
        let phase = self.ops[&id].phase;
        Ok(Accepted {
            release: name,
            revision,
            rollback_to: None,
            operation_id: id,
            phase,
            queue_position: position,
        })
    }

    /// Adds an operation to its release's queue (at the front, behind the running one,
    /// when `next`); returns how many wait ahead of it.
    pub(super) fn enqueue(&mut self, mut op: Operation, seq: u64, next: bool) -> u32 {
        let rel = self.releases.get_mut(&op.release).expect("release exists");
        let key = operation_key(&op.release, seq, &op.id);
        rel.op_keys.insert(op.id.clone(), key.clone());
        let pos = if next && !rel.queue.is_empty() {
            rel.queue.insert(1, op.id.clone());
            1
        } else {
            rel.queue.push_back(op.id.clone());
            rel.queue.len() - 1
        };
        StateStore::put_operation(&mut self.batch, &key, &mut op);
        self.ops.insert(op.id.clone(), op);
        pos as u32
    }

    /// Which revision "the previous one" is: the newest succeeded revision before the
    /// current one whose objects differ from what runs now.
    /// A rollback of some contexts only is not a state of the whole fleet: it is skipped.
    pub(super) fn previous_revision(&self, release: &str) -> Option<u64> {
        let revs = self.revisions.get(release)?;
        let fleet = &self.releases.get(release)?.record.contexts;
        let mut ok = revs
            .iter()
            .rev()
            .filter(|r| r.phase == OperationPhase::Succeeded)
            .filter(|r| r.kind != OperationKind::Rollback || fleet.iter().all(|c| r.contexts.contains(c)));
        let current = ok.next()?;
        let content = current.content_revision();
        ok.find(|r| r.content_revision() != content).map(|r| r.number)
    }

    pub(super) fn rollback(
        &mut self,
        who: &Principal,
        release: &str,
        to_revision: u64,
        reason: &str,
        preempt: bool,
        only: &[String],
    ) -> Result<Accepted, CoreError> {
        self.require_role(
            who,
            Role::Operator,
            "rollback",
            Audit {
                action: "rollback",
                release,
                revision: None,
                op: None,
            },
            reason,
        )?;
        if reason.trim().is_empty() {
            return Err(CoreError::Invalid(
                "rollback needs a reason (recorded in history and the audit log)".into(),
            ));
        }
        if !self.releases.contains_key(release) {
            return Err(CoreError::NotFound {
                release: release.to_string(),
            });
        }
        // Only what it touches must lie in the scope: an operator may roll back the
        // contexts of its scope (`--context`) of a release that spans more.
        let mut touched = self.release_contexts(release);
        if !only.is_empty() {
            touched.retain(|c| only.contains(c));
        }
        self.check_scope(who, "roll back", "rollback", release, &touched, reason)?;
        let target = if to_revision == 0 {
            self.previous_revision(release).ok_or_else(|| {
                CoreError::FailedPrecondition(format!(
                    "{release} has no earlier successful revision to roll back to; name one with --to-revision"
                ))
            })?
        } else {
            let exists = self
                .revisions
                .get(release)
                .is_some_and(|rs| rs.iter().any(|r| r.number == to_revision));
            if !exists {
                return Err(CoreError::Invalid(format!(
                    "{release} has no revision {to_revision}"
                )));
            }
            to_revision
        };
        let now = now_millis();
        // The health policy of the revision being restored.
        let plan_template = self
            .ops
            .values()
            .filter(|o| o.release == release)
            .max_by_key(|o| o.created_at)
            .map(|o| o.plan.clone());
        let rel = self.releases.get_mut(release).expect("checked");
        let mut contexts: Vec<String> = rel.record.contexts.clone();
        for c in rel.record.deployed.keys() {
            if !contexts.contains(c) {
                contexts.push(c.clone());
            }
        }
        if !only.is_empty() {
            // On-call's narrower lever: only the named contexts go back; the others
            // stay where they are.
            if let Some(unknown) = only.iter().find(|c| !contexts.contains(c)) {
                return Err(CoreError::Invalid(format!(
                    "{release} is not deployed to context {unknown:?}; its contexts are {}",
                    contexts.join(", ")
                )));
            }
            contexts.retain(|c| only.contains(c));
        }
        rel.record.latest_revision += 1;
        let revision = rel.record.latest_revision;
        let record = rel.record.clone();
        let plan = Plan {
            waves: vec![contexts.clone()],
            max_concurrency: 0,
            max_failures: FailureBudget::Count(0),
            on_failure: OnFailure::Continue,
            soak: Duration::ZERO,
            offline_deadline: plan_template
                .as_ref()
                .map_or(Duration::from_secs(300), |p| p.offline_deadline),
            progress_deadline: plan_template
                .as_ref()
                .map_or(Duration::from_secs(600), |p| p.progress_deadline),
            min_ready_window: plan_template
                .as_ref()
                .map_or(Duration::from_secs(30), |p| p.min_ready_window),
            preflight: false,
            approval: Default::default(),
            gates: Vec::new(),
            canary: Vec::new(),
            blue_green: None,
        };
        let seq = self.next_seq();
        let id = format!("op-{seq:06}");
        let deployed = record.deployed.clone();
        let req = Requested {
            by: &who.name,
            reason,
            at: now,
        };
        let op = Operation {
            rollback_to: Some(target),
            ..Operation::queued(
                id.clone(),
                release.to_string(),
                OperationKind::Rollback,
                revision,
                plan,
                &deployed,
                req,
            )
        };
        let base = self
            .revisions
            .get(release)
            .and_then(|rs| rs.iter().find(|r| r.number == target))
            .cloned();
        let rev = RevisionRecord {
            release: release.to_string(),
            number: revision,
            rollback_to: Some(target),
            operation_id: id.clone(),
            submitted_by: who.name.clone(),
            reason: reason.to_string(),
            submitted_at: now,
            contexts,
            ..RevisionRecord::rollback_shipping(base.as_ref())
        };
        self.batch.put(Table::Releases, release.to_string(), &record);
        self.batch
            .put(Table::Revisions, revision_key(release, revision), &rev);
        self.revisions.entry(release.to_string()).or_default().push(rev);
        self.audit(
            who,
            Audit {
                action: "rollback",
                release,
                revision: Some(revision),
                op: Some(&id),
            },
            reason,
            &format!("accepted: to revision {target}"),
        );
        if preempt {
            let running = self.releases[release].queue.front().cloned();
            if let Some(run) = running {
                let step = self
                    .ops
                    .get_mut(&run)
                    .map(|o| o.abort(&format!("preempted by rollback {id}"), now_millis()));
                if let Some(step) = step {
                    self.apply_step(&run, step);
                }
            }
        }
        let position = self.enqueue(op, seq, preempt);
        self.start_next(release);
        let op = &self.ops[&id];
        Ok(Accepted {
            release: release.to_string(),
            revision,
            rollback_to: Some(target),
            operation_id: id,
            phase: op.phase,
            queue_position: if op.phase == OperationPhase::Queued {
                position
            } else {
                0
            },
        })
    }

    pub(super) fn control(
        &mut self,
        who: &Principal,
        release: &str,
        control: Control,
        reason: &str,
    ) -> Result<Operation, CoreError> {
        let action = match control {
            Control::Pause => "pause",
            Control::Resume => "resume",
            Control::Abort => "abort",
            Control::Approve(_) => "approve",
            Control::Refuse(_) => "refuse",
        };
        self.require_role(
            who,
            Role::Operator,
            action,
            Audit {
                action,
                release,
                revision: None,
                op: None,
            },
            reason,
        )?;
        if !self.releases.contains_key(release) {
            return Err(CoreError::NotFound {
                release: release.to_string(),
            });
        }
        let contexts = self.release_contexts(release);
        self.check_scope(who, action, action, release, &contexts, reason)?;
        let rel = &self.releases[release];
        let Some(id) = rel.queue.front().cloned() else {
            return Err(CoreError::FailedPrecondition(format!(
                "{release} has no running operation to {action}"
            )));
        };
        if control == Control::Resume && self.vault_wait.contains_key(&id) {
            return Err(CoreError::FailedPrecondition(format!(
                "{id} is waiting for Vault to render it again after a restart ({}); it goes on by itself when Vault answers (abort it to stop)",
                self.ops[&id].message
            )));
        }
        let now = now_millis();
        let mut outcome = "accepted".to_string();
        let step = {
            let op = self.ops.get_mut(&id).expect("queued ops are known");
            let rel = self.releases.get_mut(release).expect("checked");
            let mut env = StepEnv {
                agents: &self.agents,
                record: &mut rel.record,
                batch: &mut self.batch,
            };
            match control {
                Control::Pause if op.phase == OperationPhase::Queued => {
                    return Err(CoreError::FailedPrecondition(format!(
                        "{id} has not started; cancel it instead"
                    )));
                }
                Control::Pause => op.pause(now),
                Control::Resume => op.resume(&mut env, now),
                Control::Abort => op.abort(reason, now),
                Control::Approve(wave) | Control::Refuse(wave) => {
                    let gate = wave.or(op.awaiting_approval.map(|a| a.wave)).ok_or_else(|| {
                        CoreError::FailedPrecondition(format!(
                            "{id} is not waiting at an approval gate; name the wave to {action} ahead of time"
                        ))
                    })?;
                    outcome = format!("accepted: wave {}", gate + 1);
                    let step = if matches!(control, Control::Approve(_)) {
                        op.approve(&mut env, gate, now)
                    } else {
                        let why = if reason.is_empty() {
                            "no reason given"
                        } else {
                            reason
                        };
                        op.refuse(&mut env, gate, &format!("{why} ({})", who.name), now)
                    };
                    step.map_err(|e| CoreError::FailedPrecondition(format!("{id}: {e}")))?
                }
            }
        };
        if step.actions.is_empty() && !step.persist {
            let phase = self.ops[&id].phase;
            return Err(CoreError::FailedPrecondition(format!(
                "{id} is {phase:?}; cannot {action} it"
            )));
        }
        self.audit(
            who,
            Audit {
                action,
                release,
                revision: Some(self.ops[&id].revision),
                op: Some(&id),
            },
            reason,
            &outcome,
        );
        self.apply_step(&id, step);
        Ok(self.ops[&id].clone())
    }

    pub(super) fn cancel(
        &mut self,
        who: &Principal,
        release: &str,
        op_id: &str,
        reason: &str,
    ) -> Result<Operation, CoreError> {
        if !self.releases.contains_key(release) {
            return Err(CoreError::NotFound {
                release: release.to_string(),
            });
        }
        let contexts = self.release_contexts(release);
        self.check_scope(who, "cancel operations in", "cancel", release, &contexts, reason)?;
        let rel = &self.releases[release];
        let Some(pos) = rel.queue.iter().position(|id| id == op_id) else {
            return Err(CoreError::FailedPrecondition(format!(
                "{op_id} is not queued for {release}"
            )));
        };
        let op = &self.ops[op_id];
        let own = op.requested_by == who.name && who.role >= Role::Deployer;
        if !own {
            let revision = Some(op.revision);
            self.require_role(
                who,
                Role::Operator,
                "cancel another user's operation",
                Audit {
                    action: "cancel",
                    release,
                    revision,
                    op: Some(op_id),
                },
                reason,
            )?;
        }
        let op = &self.ops[op_id];
        if pos == 0 && op.phase != OperationPhase::Queued {
            return Err(CoreError::FailedPrecondition(format!(
                "{op_id} is already running; abort it instead"
            )));
        }
        let now = now_millis();
        let op = self.ops.get_mut(op_id).expect("known");
        op.phase = OperationPhase::Cancelled;
        op.finished_at = Some(now);
        op.message = format!("cancelled by {} before it started", who.name);
        let revision = op.revision;
        self.audit(
            who,
            Audit {
                action: "cancel",
                release,
                revision: Some(revision),
                op: Some(op_id),
            },
            reason,
            "accepted",
        );
        self.dirty_ops.push(op_id.to_string());
        self.push_op_event(op_id);
        self.finish_op(op_id);
        Ok(self.ops[op_id].clone())
    }
}

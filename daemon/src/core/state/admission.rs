//! Admission: submits, rollbacks, operator controls and cancels, each checked against
//! the caller's role and scope and audited, then recorded and queued.
//!
//! Each is split in two, the way the orchestrator's steps are. A pure decision
//! ([`Core::decide_submit`], [`Core::decide_rollback`], [`Core::decide_control`],
//! [`Core::decide_cancel`]) reads the core, with the clock and the next sequence number
//! passed in, and returns what to do: the records to write, the operation, the audit
//! entry and the effects ([`NewOperation`], [`Controlled`], [`Cancellation`]), or a
//! [`Refused`]: the error, and the audit entry of a role or scope refusal. Then one
//! applying step ([`Core::apply_new_operation`], [`Core::apply_control`],
//! [`Core::apply_cancel`], or [`Core::refuse`] for a refusal) is the only place that
//! changes memory and the pending store batch: records, audits, queue, starts. The
//! entry points (`submit`, `rollback`, `control`, `cancel`) decide, then apply. The
//! decisions are tested in memory in `admission_tests.rs`.

use super::*;
use crate::auth::AuthError;

/// A request refused: the error for the caller, and the audit entry that records the
/// refusal (role and scope refusals are audited; a malformed request or one the
/// release's state does not allow is not). Boxed: a refusal is the rare path.
#[derive(Debug)]
pub(super) struct Refused {
    pub error: CoreError,
    pub audit: Option<Box<AuditNote>>,
}

impl From<CoreError> for Refused {
    fn from(error: CoreError) -> Self {
        Refused { error, audit: None }
    }
}

/// A submit's inputs, kept for a restart to render its revision again.
pub(super) struct KeptInputs {
    pub inputs: SubmitInputs,
    /// The chart archive is stored already (or there is none): only the inputs are
    /// written.
    pub chart_kept: bool,
}

/// A preempting rollback's abort of the operation running before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Preemption {
    pub operation: String,
    pub message: String,
}

/// What an accepted submit or rollback does: a new revision of the release and the
/// operation that ships it.
pub(super) struct NewOperation {
    /// The release's record with its latest revision counted up: written, and kept.
    pub release: ReleaseRecord,
    /// The revision's history record: written, and added to the history.
    pub revision: RevisionRecord,
    /// The new operation, queued.
    pub operation: Operation,
    /// The sequence number the operation's storage key is ordered by.
    pub seq: u64,
    /// A submit's inputs (a rollback renders nothing).
    pub inputs: Option<KeptInputs>,
    /// A submit's rendered objects, kept in memory only.
    pub prepared: Option<Prepared>,
    pub audit: AuditNote,
    /// A preempting rollback first aborts the running operation.
    pub abort: Option<Preemption>,
    /// Queued next, behind the running operation (a preempting rollback), rather than
    /// at the back.
    pub next: bool,
    /// How many operations the queue holds ahead of where it goes, as the queue stands:
    /// 0, it starts at once (the release's next queued operation is started after it
    /// is queued); more, it waits.
    pub ahead: usize,
    /// When it was decided (a preempted operation's abort is stamped with it).
    pub now: Millis,
}

/// What an accepted operator control does: the running operation as the
/// orchestrator's step left it, and that step.
pub(super) struct Controlled {
    /// The operation after the step; it replaces the running one.
    pub operation: Operation,
    /// The orchestrator's step: the commands to agents, what to persist and announce.
    pub step: Step,
    /// The release's record after each revision the step took (an approval's or a
    /// refusal's automatic rollback), written in turn; the last one is kept.
    pub release_writes: Vec<ReleaseRecord>,
    pub audit: AuditNote,
}

/// What an accepted cancel does: the queued operation, cancelled, replaces it and
/// leaves the queue.
pub(super) struct Cancellation {
    pub operation: Operation,
    pub audit: AuditNote,
}

/// The orchestrator's view during a decided step: the agents, and the revisions the
/// step takes counted on a copy of the release's record.
struct DecideEnv<'a> {
    agents: &'a BTreeMap<String, AgentState>,
    record: ReleaseRecord,
    writes: Vec<ReleaseRecord>,
}

impl Env for DecideEnv<'_> {
    fn is_online(&self, context: &str) -> bool {
        is_online(self.agents, context)
    }

    fn allocate_revision(&mut self) -> u64 {
        self.record.latest_revision += 1;
        self.writes.push(self.record.clone());
        self.record.latest_revision
    }
}

/// The verb a control is audited and refused as.
fn control_action(control: Control) -> &'static str {
    match control {
        Control::Pause => "pause",
        Control::Resume => "resume",
        Control::Abort => "abort",
        Control::Approve(_) => "approve",
        Control::Refuse(_) => "refuse",
    }
}

/// A role or scope refusal, with its audit entry (`about`).
fn denied(who: &Principal, about: Audit<'_>, reason: &str, e: AuthError) -> Refused {
    let audit = AuditNote::new(who, about, reason, &format!("refused: {e}"));
    Refused {
        error: CoreError::Denied(e),
        audit: Some(Box::new(audit)),
    }
}

impl Core {
    /// Refuses unless `release` and `contexts` lie in `who`'s scope; `verb` is what it
    /// was doing (`roll back`), `action` what the refusal is audited as.
    fn scope_refusal(
        &self,
        who: &Principal,
        verb: &str,
        action: &str,
        release: &str,
        contexts: &[String],
        reason: &str,
    ) -> Result<(), Refused> {
        let namespace = self
            .releases
            .get(release)
            .map(|r| r.record.namespace.clone())
            .unwrap_or_default();
        who.check_scope(
            verb,
            release,
            &namespace,
            contexts.iter().map(String::as_str),
            &self.registry,
        )
        .map_err(|e| {
            let about = Audit {
                action,
                release,
                revision: None,
                op: None,
            };
            denied(who, about, reason, e)
        })
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

    /// Refuses unless `who` holds `role` for `what`; the refusal is audited as `about`.
    fn role_refusal(
        &self,
        who: &Principal,
        role: Role,
        what: &str,
        about: Audit<'_>,
        reason: &str,
    ) -> Result<(), Refused> {
        who.require(role, what).map_err(|e| denied(who, about, reason, e))
    }

    /// The sequence number the next operation or audit entry takes.
    pub(super) fn upcoming_seq(&self) -> u64 {
        self.seq + 1
    }

    /// Records a refusal's audit entry; returns its error.
    pub(super) fn refuse(&mut self, refused: Refused) -> CoreError {
        if let Some(note) = refused.audit {
            self.record_audit(*note);
        }
        refused.error
    }

    /// Applies a decision, or records its refusal.
    fn settle<T, A>(
        &mut self,
        decided: Result<T, Refused>,
        apply: impl FnOnce(&mut Self, T) -> A,
    ) -> Result<A, CoreError> {
        match decided {
            Ok(admitted) => Ok(apply(self, admitted)),
            Err(refused) => Err(self.refuse(refused)),
        }
    }

    pub(super) fn submit(
        &mut self,
        who: &Principal,
        prepared: Prepared,
        inputs: SubmitInputs,
        reason: &str,
    ) -> Result<Accepted, CoreError> {
        let seq = self.upcoming_seq();
        let decided = self.decide_submit(who, prepared, inputs, reason, now_millis(), seq);
        self.settle(decided, Self::apply_new_operation)
    }

    /// Decides a submit: `who` must be a deployer and every context of its plan known;
    /// the release's next revision deploys it, as operation `seq`.
    pub(super) fn decide_submit(
        &self,
        who: &Principal,
        prepared: Prepared,
        inputs: SubmitInputs,
        reason: &str,
        now: Millis,
        seq: u64,
    ) -> Result<NewOperation, Refused> {
        let name = prepared.meta.name.clone();
        self.role_refusal(
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
            ))
            .into());
        }
        let (mut record, ahead) = match self.releases.get(&name) {
            Some(rel) => (rel.record.clone(), rel.queue.len()),
            None => (
                ReleaseRecord {
                    name: name.clone(),
                    namespace: prepared.meta.namespace.clone(),
                    environment: prepared.meta.environment.clone(),
                    latest_revision: 0,
                    deployed: BTreeMap::new(),
                    contexts: Vec::new(),
                    applied: BTreeMap::new(),
                },
                0,
            ),
        };
        record.latest_revision += 1;
        let revision = record.latest_revision;
        record.contexts = prepared.plan.contexts().cloned().collect();
        record.namespace = prepared.meta.namespace.clone();
        record.environment = prepared.meta.environment.clone();
        let id = format!("op-{seq:06}");
        let req = Requested {
            by: &who.name,
            reason,
            at: now,
        };
        let operation = Operation::queued(
            id.clone(),
            name.clone(),
            OperationKind::Deploy,
            revision,
            prepared.plan.clone(),
            &record.deployed,
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
        // The archive once per digest: a revision that re-ships a kept chart (a new
        // image, new values) stores only its inputs.
        let chart_kept = inputs.chart_digest.is_empty()
            || self.store.has_chart(&inputs.chart_digest).unwrap_or(false)
            || self.batch.writes(Table::Charts, &inputs.chart_digest);
        let audit = AuditNote::new(
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
        Ok(NewOperation {
            release: record,
            revision: rev,
            operation,
            seq,
            inputs: Some(KeptInputs { inputs, chart_kept }),
            prepared: Some(prepared),
            audit,
            abort: None,
            next: false,
            ahead,
            now,
        })
    }

    /// Records a new revision and its operation, queues it and starts the release's
    /// next operation; answers where it stands.
    pub(super) fn apply_new_operation(&mut self, n: NewOperation) -> Accepted {
        let seq = self.next_seq();
        assert_eq!(seq, n.seq, "an admission is applied right after it is decided");
        let name = n.release.name.clone();
        let revision = n.revision.number;
        let rollback_to = n.revision.rollback_to;
        let id = n.operation.id.clone();
        self.batch.put(Table::Releases, name.clone(), &n.release);
        self.batch
            .put(Table::Revisions, revision_key(&name, revision), &n.revision);
        if let Some(kept) = &n.inputs {
            StateStore::put_inputs(
                &mut self.batch,
                &revision_key(&name, revision),
                &kept.inputs,
                kept.chart_kept,
            );
        }
        match self.releases.get_mut(&name) {
            Some(rel) => rel.record = n.release,
            None => {
                let rel = ReleaseState {
                    record: n.release,
                    queue: VecDeque::new(),
                    last_op: None,
                    op_keys: HashMap::new(),
                };
                self.releases.insert(name.clone(), rel);
            }
        }
        self.revisions.entry(name.clone()).or_default().push(n.revision);
        if let Some(prepared) = n.prepared {
            self.remember_masker(&prepared);
            self.prepared.insert(id.clone(), Arc::new(prepared));
        }
        self.record_audit(n.audit);
        if let Some(p) = &n.abort {
            let step = self.ops.get_mut(&p.operation).map(|o| o.abort(&p.message, n.now));
            if let Some(step) = step {
                self.apply_step(&p.operation, step);
            }
        }
        let position = self.enqueue(n.operation, seq, n.next);
        debug_assert!(
            n.abort.is_some() || position as usize == n.ahead,
            "queued where it was decided"
        );
        self.start_next(&name);
        let op = &self.ops[&id];
        // A rollback that started at once answers position 0; a submit, where it was
        // queued.
        let started_rollback = op.kind == OperationKind::Rollback && op.phase != OperationPhase::Queued;
        Accepted {
            release: name,
            revision,
            rollback_to,
            operation_id: id,
            phase: op.phase,
            queue_position: if started_rollback { 0 } else { position },
        }
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
        let seq = self.upcoming_seq();
        let request = RollbackRequest {
            release,
            to_revision,
            reason,
            preempt,
            only,
        };
        let decided = self.decide_rollback(who, &request, now_millis(), seq);
        self.settle(decided, Self::apply_new_operation)
    }

    /// Decides a rollback: `who` must be an operator whose scope holds the contexts it
    /// touches, and give a reason; the target is `to_revision` or, when 0, the
    /// [previous revision](Core::previous_revision). The release's next revision ships
    /// the target's objects, as operation `seq`.
    pub(super) fn decide_rollback(
        &self,
        who: &Principal,
        request: &RollbackRequest<'_>,
        now: Millis,
        seq: u64,
    ) -> Result<NewOperation, Refused> {
        let RollbackRequest {
            release,
            to_revision,
            reason,
            preempt,
            only,
        } = *request;
        self.role_refusal(
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
            )
            .into());
        }
        let Some(rel) = self.releases.get(release) else {
            return Err(CoreError::NotFound {
                release: release.to_string(),
            }
            .into());
        };
        // Only what it touches must lie in the scope: an operator may roll back the
        // contexts of its scope (`--context`) of a release that spans more.
        let mut contexts = self.release_contexts(release);
        let mut touched = contexts.clone();
        if !only.is_empty() {
            touched.retain(|c| only.contains(c));
        }
        self.scope_refusal(who, "roll back", "rollback", release, &touched, reason)?;
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
                return Err(CoreError::Invalid(format!("{release} has no revision {to_revision}")).into());
            }
            to_revision
        };
        // The health policy of the revision being restored.
        let plan_template = self
            .ops
            .values()
            .filter(|o| o.release == release)
            .max_by_key(|o| o.created_at)
            .map(|o| o.plan.clone());
        if !only.is_empty() {
            // On-call's narrower lever: only the named contexts go back; the others
            // stay where they are.
            if let Some(unknown) = only.iter().find(|c| !contexts.contains(c)) {
                return Err(CoreError::Invalid(format!(
                    "{release} is not deployed to context {unknown:?}; its contexts are {}",
                    contexts.join(", ")
                ))
                .into());
            }
            contexts.retain(|c| only.contains(c));
        }
        let mut record = rel.record.clone();
        record.latest_revision += 1;
        let revision = record.latest_revision;
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
        let id = format!("op-{seq:06}");
        let req = Requested {
            by: &who.name,
            reason,
            at: now,
        };
        let operation = Operation {
            rollback_to: Some(target),
            ..Operation::queued(
                id.clone(),
                release.to_string(),
                OperationKind::Rollback,
                revision,
                plan,
                &record.deployed,
                req,
            )
        };
        let base = self
            .revisions
            .get(release)
            .and_then(|rs| rs.iter().find(|r| r.number == target));
        let rev = RevisionRecord {
            release: release.to_string(),
            number: revision,
            rollback_to: Some(target),
            operation_id: id.clone(),
            submitted_by: who.name.clone(),
            reason: reason.to_string(),
            submitted_at: now,
            contexts,
            ..RevisionRecord::rollback_shipping(base)
        };
        let audit = AuditNote::new(
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
        let running = rel.queue.front().filter(|_| preempt);
        Ok(NewOperation {
            release: record,
            revision: rev,
            operation,
            seq,
            inputs: None,
            prepared: None,
            audit,
            abort: running.map(|run| Preemption {
                operation: run.clone(),
                message: format!("preempted by rollback {id}"),
            }),
            next: preempt,
            ahead: if preempt {
                rel.queue.len().min(1)
            } else {
                rel.queue.len()
            },
            now,
        })
    }

    pub(super) fn control(
        &mut self,
        who: &Principal,
        release: &str,
        control: Control,
        reason: &str,
    ) -> Result<Operation, CoreError> {
        let decided = self.decide_control(who, release, control, reason, now_millis());
        self.settle(decided, Self::apply_control)
    }

    /// Decides an operator's control of a release's running operation: `who` must be an
    /// operator whose scope holds the release's contexts. The orchestrator's step runs
    /// on a copy of the operation; a control that would change nothing is refused.
    pub(super) fn decide_control(
        &self,
        who: &Principal,
        release: &str,
        control: Control,
        reason: &str,
        now: Millis,
    ) -> Result<Controlled, Refused> {
        let action = control_action(control);
        self.role_refusal(
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
        let Some(rel) = self.releases.get(release) else {
            return Err(CoreError::NotFound {
                release: release.to_string(),
            }
            .into());
        };
        let contexts = self.release_contexts(release);
        self.scope_refusal(who, action, action, release, &contexts, reason)?;
        let Some(id) = rel.queue.front() else {
            return Err(CoreError::FailedPrecondition(format!(
                "{release} has no running operation to {action}"
            ))
            .into());
        };
        if control == Control::Resume && self.vault_wait.contains_key(id) {
            return Err(CoreError::FailedPrecondition(format!(
                "{id} is waiting for Vault to render it again after a restart ({}); it goes on by itself when Vault answers (abort it to stop)",
                self.ops[id].message
            ))
            .into());
        }
        let mut op = self.ops.get(id).expect("queued ops are known").clone();
        let mut env = DecideEnv {
            agents: &self.agents,
            record: rel.record.clone(),
            writes: Vec::new(),
        };
        let mut outcome = "accepted".to_string();
        let step = match control {
            Control::Pause if op.phase == OperationPhase::Queued => {
                return Err(CoreError::FailedPrecondition(format!(
                    "{id} has not started; cancel it instead"
                ))
                .into());
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
        };
        if step.actions.is_empty() && !step.persist {
            let phase = op.phase;
            return Err(
                CoreError::FailedPrecondition(format!("{id} is {phase:?}; cannot {action} it")).into(),
            );
        }
        let audit = AuditNote::new(
            who,
            Audit {
                action,
                release,
                revision: Some(op.revision),
                op: Some(id),
            },
            reason,
            &outcome,
        );
        Ok(Controlled {
            operation: op,
            step,
            release_writes: env.writes,
            audit,
        })
    }

    /// Puts a control's step into effect; answers the operation as it left it.
    pub(super) fn apply_control(&mut self, c: Controlled) -> Operation {
        let id = c.operation.id.clone();
        if let Some(last) = c.release_writes.last() {
            for record in &c.release_writes {
                self.batch.put(Table::Releases, record.name.clone(), record);
            }
            let rel = self.releases.get_mut(&c.operation.release).expect("checked");
            rel.record = last.clone();
        }
        self.ops.insert(id.clone(), c.operation);
        self.record_audit(c.audit);
        self.apply_step(&id, c.step);
        self.ops[&id].clone()
    }

    pub(super) fn cancel(
        &mut self,
        who: &Principal,
        release: &str,
        op_id: &str,
        reason: &str,
    ) -> Result<Operation, CoreError> {
        let decided = self.decide_cancel(who, release, op_id, reason, now_millis());
        self.settle(decided, Self::apply_cancel)
    }

    /// Decides a cancel of a queued operation that has not started: `who`'s scope must
    /// hold the release's contexts, and another user's operation needs an operator.
    pub(super) fn decide_cancel(
        &self,
        who: &Principal,
        release: &str,
        op_id: &str,
        reason: &str,
        now: Millis,
    ) -> Result<Cancellation, Refused> {
        let Some(rel) = self.releases.get(release) else {
            return Err(CoreError::NotFound {
                release: release.to_string(),
            }
            .into());
        };
        let contexts = self.release_contexts(release);
        self.scope_refusal(who, "cancel operations in", "cancel", release, &contexts, reason)?;
        let Some(pos) = rel.queue.iter().position(|id| id == op_id) else {
            return Err(CoreError::FailedPrecondition(format!("{op_id} is not queued for {release}")).into());
        };
        let op = &self.ops[op_id];
        let own = op.requested_by == who.name && who.role >= Role::Deployer;
        if !own {
            self.role_refusal(
                who,
                Role::Operator,
                "cancel another user's operation",
                Audit {
                    action: "cancel",
                    release,
                    revision: Some(op.revision),
                    op: Some(op_id),
                },
                reason,
            )?;
        }
        if pos == 0 && op.phase != OperationPhase::Queued {
            return Err(CoreError::FailedPrecondition(format!(
                "{op_id} is already running; abort it instead"
            ))
            .into());
        }
        let mut operation = op.clone();
        operation.phase = OperationPhase::Cancelled;
        operation.finished_at = Some(now);
        operation.message = format!("cancelled by {} before it started", who.name);
        let audit = AuditNote::new(
            who,
            Audit {
                action: "cancel",
                release,
                revision: Some(operation.revision),
                op: Some(op_id),
            },
            reason,
            "accepted",
        );
        Ok(Cancellation { operation, audit })
    }

    /// Records a cancelled operation and takes it off its release's queue; answers it.
    pub(super) fn apply_cancel(&mut self, c: Cancellation) -> Operation {
        let id = c.operation.id.clone();
        self.ops.insert(id.clone(), c.operation);
        self.record_audit(c.audit);
        self.dirty_ops.push(id.clone());
        self.push_op_event(&id);
        self.finish_op(&id);
        self.ops[&id].clone()
    }
}

/// A rollback as asked: of which release, to which revision (0: the previous one), why,
/// whether it goes ahead of the queue (aborting what runs), and in which contexts only
/// (none: all).
#[derive(Clone, Copy)]
pub(super) struct RollbackRequest<'a> {
    pub release: &'a str,
    pub to_revision: u64,
    pub reason: &'a str,
    pub preempt: bool,
    pub only: &'a [String],
}

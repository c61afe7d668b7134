//! The rollout state machine: one [`Operation`] driven by events, returning the
//! commands to send. Pure: no I/O, no clocks, no gRPC; the release actor feeds it agent
//! reports, operator commands and ticks, persists the operation after every step, and
//! only then sends what the step asked for.
//!
//! ```text
//!             preflight (dry run everywhere)        any refusal: Failed, nothing applied
//! Queued ──▶ Preflight ──▶ Running: wave 0 ─▶ soak ─▶ wave 1 ─▶ ... ─▶ Succeeded
//!                              │ failures > maxFailures
//!                              ├─ onFailure rollback ─▶ RollingBack (every context that
//!                              │     received the revision goes back, concurrently) ─▶ Failed
//!                              ├─ onFailure pause ─▶ Paused ─(resume)─▶ Running
//!                              └─ onFailure continue ─▶ ... ─▶ Failed
//! operator: pause / resume / abort (Aborted: in-flight contexts are told to stop)
//! approval gates: a gated wave starts once approved; refused or unanswered by its
//! deadline, the gate fails and onFailure applies
//! automatic gates (analysis, webhook) before a wave: measured outside, fed back with
//! on_measurement; failed: onFailure applies; inconclusive: waits for an operator
//! ```

pub mod tally;
#[cfg(test)]
mod tests;

use tally::{Tally, TallyCache};

use crate::model::{
    AwaitingApproval, CanaryAt, CanaryStepSpec, ContextCanary, ContextPhase, ContextState, Measurement,
    Millis, OnFailure, Operation, OperationKind, OperationPhase, Verdict, Verifying,
};

/// Where an automatic gate stands before one wave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GateState {
    Pending,
    Measuring,
    Passed,
    Failed,
    /// Waiting for an operator.
    Inconclusive,
}

impl GateState {
    pub fn name(self) -> &'static str {
        match self {
            GateState::Pending => "PENDING",
            GateState::Measuring => "MEASURING",
            GateState::Passed => "PASSED",
            GateState::Failed => "FAILED",
            GateState::Inconclusive => "INCONCLUSIVE",
        }
    }
}

/// Which gate a measurement is for: the gated wave (or the wave whose canary runs
/// it), the gate's index in the plan, and the canary step for a step's gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GateAt {
    pub wave: usize,
    pub gate: usize,
    pub step: Option<usize>,
}

/// Which command a report answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The preflight dry run.
    Preflight,
    /// The operation's own command: apply (deploy) or rollback (manual rollback).
    Main,
    /// The automatic rollback of a failed deploy.
    Rollback,
    /// Step `k` (0-based) of an in-cluster canary: its own command per step.
    Canary(usize),
}

/// A command for one context's agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Server-side dry run of the operation's revision.
    DryRun { revision: u64 },
    /// Apply the operation's revision.
    Apply { revision: u64 },
    /// Run step `step` of the in-cluster canary of the operation's revision: its
    /// workloads beside the live ones, at `weight` percent of the pods.
    Canary { revision: u64, step: usize, weight: u32 },
    /// Point a blue/green revision's Services at its slot (its promotion).
    Switch { revision: u64 },
    /// Re-apply `target` from the cluster's history, recorded as `revision`.
    Rollback { revision: u64, target: u64 },
    /// Stop the command running for `revision`.
    Abort { revision: u64, stage: Stage },
}

/// What an agent reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    Accepted,
    Applied,
    Progress {
        ready: u32,
        desired: u32,
        message: String,
    },
    Healthy,
    Failed {
        reason: String,
        message: String,
    },
    DryRunPassed,
    Aborted,
}

/// What a step asks the caller to do, after persisting the operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Send {
        context: String,
        command: Command,
    },
    /// A context's state changed (for watchers): its state at that moment, so that a
    /// brief state (failed, then rolling back in the same step) is seen too.
    ContextChanged(Box<ContextState>),
    /// The operation's phase, wave or message changed (for watchers).
    OperationChanged,
}

/// What the state machine needs from outside.
pub trait Env {
    /// Whether an agent serving `context` is connected.
    fn is_online(&self, context: &str) -> bool;
    /// A fresh revision number for this release (for an automatic rollback).
    fn allocate_revision(&mut self) -> u64;
}

/// The result of one step: the actions, and whether the operation changed in a way
/// that must be persisted (progress-only updates need not be).
#[derive(Debug, Default)]
pub struct Step {
    pub actions: Vec<Action>,
    pub persist: bool,
    /// `OperationChanged` is among the actions.
    op_changed: bool,
}

impl Step {
    fn send(&mut self, context: &str, command: Command) {
        self.actions.push(Action::Send {
            context: context.to_string(),
            command,
        });
    }

    /// Announces a context's new state. Only a repeat of the last action is dropped:
    /// searching every earlier action made a step that touches every context (a wave
    /// dispatched, a fleet-wide rollback) cost the square of the fleet.
    fn changed(&mut self, state: &ContextState) {
        self.persist = true;
        if let Some(Action::ContextChanged(last)) = self.actions.last()
            && **last == *state
        {
            return;
        }
        self.actions.push(Action::ContextChanged(Box::new(state.clone())));
    }

    fn op_changed(&mut self) {
        self.persist = true;
        if !self.op_changed {
            self.op_changed = true;
            self.actions.push(Action::OperationChanged);
        }
    }

    /// Takes `other`'s actions after this step's.
    fn merge(&mut self, other: Step) {
        for a in other.actions {
            match a {
                Action::OperationChanged => self.op_changed(),
                a => self.actions.push(a),
            }
        }
        self.persist |= other.persist;
    }
}

/// A context changed: counted in the operation's tally (when one is kept) and announced.
/// A free function over the two fields so that it can be called while the context is
/// borrowed from the operation.
fn note(tally: &mut TallyCache, step: &mut Step, c: &ContextState) {
    if let Some(t) = tally.0.as_mut() {
        t.update(c);
    }
    step.changed(c);
}

impl Operation {
    /// Starts a queued operation.
    pub fn start(&mut self, env: &mut dyn Env, now: Millis) -> Step {
        let mut step = Step::default();
        if self.phase != OperationPhase::Queued {
            return step;
        }
        self.started_at = Some(now);
        self.phase = if self.plan.preflight && self.kind == OperationKind::Deploy {
            OperationPhase::Preflight
        } else {
            OperationPhase::Running
        };
        step.op_changed();
        self.pump(env, now, &mut step);
        step
    }

    /// Feeds an agent's report for `context`.
    pub fn on_report(
        &mut self,
        env: &mut dyn Env,
        context: &str,
        stage: Stage,
        report: Report,
        now: Millis,
    ) -> Step {
        let mut step = Step::default();
        let kind = self.kind;
        let rolling_back = self.phase == OperationPhase::RollingBack;
        let Some(c) = self.contexts.get_mut(context) else {
            return step;
        };
        // A context still applying when the fleet-wide rollback began was told to stop;
        // whichever final report arrives (stopped, or finished before the abort landed,
        // healthy or not), it now holds some of the failed revision: roll it back.
        let main_final = matches!(report, Report::Healthy | Report::Failed { .. } | Report::Aborted);
        let applying = matches!(
            c.phase,
            ContextPhase::Dispatched | ContextPhase::Applying | ContextPhase::Progressing
        );
        let main_or_canary = matches!(stage, Stage::Main | Stage::Canary(_));
        if rolling_back && main_or_canary && main_final && c.received && applying {
            c.phase = ContextPhase::Failed;
            c.message = match &report {
                Report::Healthy => "finished just as the fleet-wide rollback began".into(),
                Report::Failed { reason, message } => format!("{reason}: {message}"),
                _ => "stopped for the fleet-wide rollback".into(),
            };
            c.finished_at = Some(now);
            note(&mut self.tally, &mut step, c);
            self.roll_back_context(env, context, now, &mut step);
            self.check_rollback_done(now, &mut step);
            return step;
        }
        // Late reports of a deploy's apply for a context already rolling back are stale.
        if main_or_canary && kind == OperationKind::Deploy && c.phase == ContextPhase::RollingBack {
            return step;
        }
        let blue_green = self.plan.blue_green.is_some();
        if let Stage::Canary(k) = stage {
            // Only the step the context was last sent counts; a promotion ends it.
            let Some(canary) = c.canary.as_mut().filter(|x| x.step == k) else {
                return step;
            };
            if c.phase.is_settled() {
                return step;
            }
            let label = in_cluster_label(blue_green, canary.weight);
            c.updated_at = now;
            match report {
                Report::Healthy => {
                    canary.ready = true;
                    c.ready = c.desired.max(c.ready);
                    c.message = format!("{label}: healthy");
                    note(&mut self.tally, &mut step, c);
                    self.pump(env, now, &mut step);
                    return step;
                }
                Report::Applied if matches!(c.phase, ContextPhase::Dispatched | ContextPhase::Applying) => {
                    c.phase = ContextPhase::Progressing;
                    c.message = format!("{label}: applied; waiting for healthy");
                    note(&mut self.tally, &mut step, c);
                    return step;
                }
                Report::Progress {
                    ready,
                    desired,
                    message,
                } => {
                    c.ready = ready;
                    c.desired = desired;
                    c.message = format!("{label}: {message}");
                    step.actions.push(Action::ContextChanged(Box::new(c.clone())));
                    return step;
                }
                Report::Failed { reason, message } => {
                    c.phase = ContextPhase::Failed;
                    c.message = format!("{label}: {reason}: {message}");
                    c.finished_at = Some(now);
                    note(&mut self.tally, &mut step, c);
                    self.pump(env, now, &mut step);
                    return step;
                }
                _ => {}
            }
        }
        c.updated_at = now;
        match (stage, report) {
            (Stage::Preflight, Report::DryRunPassed) => {
                if c.phase == ContextPhase::Dispatched {
                    c.phase = ContextPhase::Pending;
                    c.preflight_ok = true;
                    c.message = "preflight dry run passed".into();
                    note(&mut self.tally, &mut step, c);
                }
            }
            (Stage::Preflight, Report::Failed { reason, message }) => {
                c.phase = ContextPhase::Failed;
                c.message = format!("preflight: {reason}: {message}");
                c.finished_at = Some(now);
                note(&mut self.tally, &mut step, c);
                if self.phase == OperationPhase::Preflight {
                    let msg = format!(
                        "preflight dry run refused in {context}: {reason}: {message}; nothing was applied"
                    );
                    self.finish(OperationPhase::Failed, msg, now, &mut step);
                }
                return step;
            }
            (Stage::Preflight, _) => {}
            (_, Report::Accepted) => {
                if matches!(c.phase, ContextPhase::Dispatched) {
                    c.phase = if stage == Stage::Rollback || kind == OperationKind::Rollback {
                        ContextPhase::RollingBack
                    } else {
                        ContextPhase::Applying
                    };
                    note(&mut self.tally, &mut step, c);
                }
            }
            (_, Report::Applied) => {
                if matches!(c.phase, ContextPhase::Dispatched | ContextPhase::Applying) {
                    c.phase = ContextPhase::Progressing;
                    c.message = "applied; waiting for healthy".into();
                    note(&mut self.tally, &mut step, c);
                } else if c.phase == ContextPhase::RollingBack {
                    c.message = "rollback applied; waiting for healthy".into();
                    note(&mut self.tally, &mut step, c);
                }
            }
            (
                _,
                Report::Progress {
                    ready,
                    desired,
                    message,
                },
            ) => {
                if !c.phase.is_settled() {
                    c.ready = ready;
                    c.desired = desired;
                    c.message = message;
                    // Progress alone is not worth a durable write.
                    step.actions.push(Action::ContextChanged(Box::new(c.clone())));
                }
            }
            (stage, Report::Healthy) => {
                if c.phase.is_settled() {
                    return step;
                }
                c.phase = if stage == Stage::Rollback || kind == OperationKind::Rollback {
                    ContextPhase::RolledBack
                } else {
                    ContextPhase::Healthy
                };
                c.ready = c.desired.max(c.ready);
                c.message = match c.phase {
                    ContextPhase::RolledBack => "rolled back; healthy".into(),
                    _ => "healthy".into(),
                };
                c.finished_at = Some(now);
                note(&mut self.tally, &mut step, c);
            }
            (stage, Report::Failed { reason, message }) => {
                if c.phase.is_settled() && !(stage == Stage::Main && c.phase == ContextPhase::Skipped) {
                    return step;
                }
                c.phase = ContextPhase::Failed;
                c.message = if stage == Stage::Rollback {
                    format!("rollback failed: {reason}: {message}")
                } else {
                    format!("{reason}: {message}")
                };
                c.finished_at = Some(now);
                note(&mut self.tally, &mut step, c);
            }
            (_, Report::Aborted) => {
                if !c.phase.is_settled() {
                    c.phase = ContextPhase::Failed;
                    c.message = "aborted".into();
                    c.finished_at = Some(now);
                    note(&mut self.tally, &mut step, c);
                }
            }
            (_, Report::DryRunPassed) => {}
        }
        self.pump(env, now, &mut step);
        step
    }

    /// An agent for `context` connected (or reconnected): dispatch what waited for it
    /// and re-send what it may have missed (commands are idempotent on the agent).
    pub fn on_agent_online(&mut self, env: &mut dyn Env, context: &str, now: Millis) -> Step {
        let mut step = Step::default();
        if self.phase.is_final() {
            return step;
        }
        if let Some(c) = self.contexts.get(context)
            && c.phase.is_in_flight()
        {
            let cmd = self.command_for(context);
            step.send(context, cmd);
        }
        self.pump(env, now, &mut step);
        step
    }

    /// Time passed: offline deadlines and soak times.
    pub fn on_tick(&mut self, env: &mut dyn Env, now: Millis) -> Step {
        let mut step = Step::default();
        if self.phase.is_final() {
            return step;
        }
        let deadline = self.plan.offline_deadline.as_millis() as u64;
        let expired: Vec<String> = self
            .contexts
            .values()
            .filter(|c| c.phase == ContextPhase::WaitingForAgent)
            .filter(|c| c.waiting_since.is_some_and(|t| now.saturating_sub(t) >= deadline))
            .map(|c| c.context.clone())
            .collect();
        for ctx in expired {
            let rolling_back = self.phase == OperationPhase::RollingBack;
            let c = self.contexts.get_mut(&ctx).expect("listed above");
            c.phase = ContextPhase::Failed;
            c.message = format!(
                "no agent connected for {ctx} within {}s{}",
                deadline / 1000,
                if rolling_back {
                    "; rollback not delivered"
                } else {
                    ""
                }
            );
            c.finished_at = Some(now);
            note(&mut self.tally, &mut step, c);
            if self.phase == OperationPhase::Preflight {
                let msg =
                    format!("preflight could not run in {ctx}: no agent connected; nothing was applied");
                self.finish(OperationPhase::Failed, msg, now, &mut step);
                return step;
            }
        }
        self.pump(env, now, &mut step);
        step
    }

    /// Operator pause: no new context or wave starts until resumed.
    pub fn pause(&mut self, now: Millis) -> Step {
        let mut step = Step::default();
        if matches!(self.phase, OperationPhase::Running | OperationPhase::Preflight) {
            self.phase = OperationPhase::Paused;
            self.paused = true;
            self.message = "paused by an operator".into();
            let _ = now;
            step.op_changed();
        }
        step
    }

    /// The coordinator cannot render this operation's commands now (after a restart,
    /// its secrets' Vault does not answer): like a pause, no new context or wave starts
    /// and in-flight contexts finish; `why` shows in its status.
    pub fn hold(&mut self, why: &str) -> Step {
        let mut step = Step::default();
        if matches!(
            self.phase,
            OperationPhase::Running | OperationPhase::Preflight | OperationPhase::Paused
        ) {
            if self.phase != OperationPhase::Paused {
                self.phase = OperationPhase::Paused;
            }
            self.message = why.to_string();
            step.op_changed();
        }
        step
    }

    /// Ends a [`Operation::hold`]: the rollout goes on where it stood (failures are not
    /// accepted, unlike an operator's resume).
    pub fn release_hold(&mut self, env: &mut dyn Env, now: Millis, message: &str) -> Step {
        let mut step = Step::default();
        if self.phase == OperationPhase::Paused {
            self.paused = false;
            self.phase = if self.tally().all_preflight_ok() || !self.plan.preflight {
                OperationPhase::Running
            } else {
                OperationPhase::Preflight
            };
            self.message = message.to_string();
            step.op_changed();
            self.pump(env, now, &mut step);
        }
        step
    }

    /// The operation's commands can never be rendered again (after a restart): every
    /// context that has not received the revision fails with `why`, and the rollout
    /// goes on from there, so the release's `onFailure` policy (a rollback needs no
    /// render) decides, and no context is left on the new revision unnoticed.
    pub fn fail_unstarted(&mut self, env: &mut dyn Env, now: Millis, why: &str) -> Step {
        let mut step = Step::default();
        for c in self.contexts.values_mut() {
            if matches!(c.phase, ContextPhase::Pending | ContextPhase::WaitingForAgent) {
                c.phase = ContextPhase::Failed;
                c.message = why.to_string();
                c.finished_at = Some(now);
                note(&mut self.tally, &mut step, c);
            }
        }
        let held = self.phase == OperationPhase::Paused;
        let resumed = self.release_hold(env, now, why);
        step.merge(resumed);
        if !held {
            self.pump(env, now, &mut step);
        }
        step
    }

    /// Operator resume. Failures that caused an automatic pause are accepted.
    pub fn resume(&mut self, env: &mut dyn Env, now: Millis) -> Step {
        let mut step = Step::default();
        if self.phase == OperationPhase::Paused {
            self.paused = false;
            self.phase = if self.tally().all_preflight_ok() || !self.plan.preflight {
                OperationPhase::Running
            } else {
                OperationPhase::Preflight
            };
            self.accepted_failures = self.failed_count();
            self.message = "resumed".into();
            step.op_changed();
            self.pump(env, now, &mut step);
        }
        step
    }

    /// Operator abort: in-flight contexts are told to stop; nothing else starts; what
    /// was applied stays (roll back to undo it).
    pub fn abort(&mut self, reason: &str, now: Millis) -> Step {
        let mut step = Step::default();
        if self.phase.is_final() {
            return step;
        }
        let in_flight: Vec<(String, Stage)> = self
            .contexts
            .values()
            .filter(|c| c.phase.is_in_flight())
            .map(|c| {
                let stage = if c.phase == ContextPhase::RollingBack && self.kind == OperationKind::Deploy {
                    Stage::Rollback
                } else if self.phase == OperationPhase::Preflight {
                    Stage::Preflight
                } else if let Some(k) = c.canary {
                    Stage::Canary(k.step)
                } else {
                    Stage::Main
                };
                (c.context.clone(), stage)
            })
            .collect();
        for (ctx, stage) in in_flight {
            let revision = match stage {
                Stage::Rollback => self.rollback_revision.unwrap_or(self.revision),
                _ => self.revision,
            };
            step.send(&ctx, Command::Abort { revision, stage });
        }
        for c in self
            .contexts
            .values_mut()
            .filter(|c| !c.phase.is_settled() && !c.phase.is_in_flight())
        {
            c.phase = ContextPhase::Skipped;
            c.message = "not started: operation aborted".into();
            c.updated_at = now;
        }
        let names: Vec<String> = self.contexts.keys().cloned().collect();
        for n in names {
            step.changed(&self.contexts[&n]);
        }
        let msg = if reason.is_empty() {
            "aborted by an operator".to_string()
        } else {
            format!("aborted by an operator: {reason}")
        };
        self.finish(OperationPhase::Aborted, msg, now, &mut step);
        step
    }

    /// Contexts that failed.
    pub fn failed_count(&mut self) -> usize {
        self.tally().failed()
    }

    /// The running counts, rebuilt from the contexts when none is kept (after a load or
    /// a clone). Debug builds check them against a recount on every use.
    fn tally(&mut self) -> &Tally {
        let t = self
            .tally
            .0
            .get_or_insert_with(|| Box::new(Tally::of(&self.plan.waves, self.contexts.values())));
        debug_assert!(
            **t == Tally::of(&self.plan.waves, self.contexts.values()),
            "the tally of {} is out of step with its contexts",
            self.id
        );
        t
    }

    fn budget_exceeded(&mut self) -> bool {
        let allowed = self.plan.max_failures.allowed(self.contexts.len()) + self.accepted_failures;
        self.failed_count() > allowed
    }

    /// The command for a context in flight, for a re-send after a reconnect.
    fn command_for(&self, context: &str) -> Command {
        let c = &self.contexts[context];
        match self.phase {
            OperationPhase::Preflight => Command::DryRun {
                revision: self.revision,
            },
            OperationPhase::RollingBack if c.phase == ContextPhase::RollingBack => Command::Rollback {
                revision: self.rollback_revision.unwrap_or(self.revision),
                target: c.previous_revision.unwrap_or_default(),
            },
            _ => match self.kind {
                OperationKind::Deploy => match c.canary {
                    Some(k) => Command::Canary {
                        revision: self.revision,
                        step: k.step,
                        weight: k.weight,
                    },
                    None if self.plan.blue_green.is_some() => Command::Switch {
                        revision: self.revision,
                    },
                    None => Command::Apply {
                        revision: self.revision,
                    },
                },
                OperationKind::Rollback => Command::Rollback {
                    revision: self.revision,
                    target: self.rollback_to.unwrap_or_default(),
                },
            },
        }
    }

    /// Advances whatever can advance now.
    fn pump(&mut self, env: &mut dyn Env, now: Millis, step: &mut Step) {
        match self.phase {
            OperationPhase::Preflight => self.pump_preflight(env, now, step),
            OperationPhase::Running => self.pump_running(env, now, step),
            OperationPhase::RollingBack => {
                self.dispatch_waiting_rollbacks(env, now, step);
                self.check_rollback_done(now, step);
            }
            _ => {}
        }
    }

    fn pump_preflight(&mut self, env: &mut dyn Env, now: Millis, step: &mut Step) {
        let revision = self.revision;
        for (w, i) in self.tally().preflight_todo() {
            let c = self
                .contexts
                .get_mut(&self.plan.waves[w][i])
                .expect("plan contexts are operation contexts");
            if env.is_online(&c.context) {
                c.phase = ContextPhase::Dispatched;
                c.message = "preflight dry run".into();
                c.waiting_since = None;
                c.updated_at = now;
                step.send(&c.context, Command::DryRun { revision });
                note(&mut self.tally, step, c);
            } else if c.phase == ContextPhase::Pending {
                c.phase = ContextPhase::WaitingForAgent;
                c.waiting_since = Some(now);
                c.message = "waiting for the agent to connect".into();
                note(&mut self.tally, step, c);
            }
        }
        if self.tally().all_preflight_ok() {
            self.phase = OperationPhase::Running;
            self.message = "preflight passed in every context".into();
            step.op_changed();
            self.pump_running(env, now, step);
        }
    }

    fn pump_running(&mut self, env: &mut dyn Env, now: Millis, step: &mut Step) {
        loop {
            if self.stops_on_budget() && self.budget_exceeded() {
                self.on_budget_exceeded(env, now, step);
                return;
            }
            let wave = self.current_wave;
            if wave >= self.plan.waves.len() {
                self.finish_rollout(now, step);
                return;
            }
            self.start_canary(wave, now);
            self.dispatch_wave(env, wave, now, step);
            if !self.tally().wave_settled(wave) {
                self.pump_canary(env, wave, now, step);
                return;
            }
            if wave + 1 >= self.plan.waves.len() {
                self.finish_rollout(now, step);
                return;
            }
            let soak = self.plan.soak.as_millis() as u64;
            let settled_at = *self.wave_settled_at.get_or_insert(now);
            if soak > 0 && now < settled_at + soak {
                if settled_at == now {
                    self.message = format!(
                        "wave {} settled; soaking {}s before wave {}",
                        wave + 1,
                        soak / 1000,
                        wave + 2
                    );
                    step.op_changed();
                }
                return;
            }
            let next = wave + 1;
            if let Some(g) = self.pending_gate(next) {
                if self.inconclusive_gate(next) == Some(g) {
                    self.wait_for_approval(env, wave, now, step);
                } else {
                    self.verify(wave, g, now, step);
                }
                return;
            }
            if self.plan.approval.before.contains(&next) && !self.approved.contains(&next) {
                self.wait_for_approval(env, wave, now, step);
                return;
            }
            self.current_wave += 1;
            self.wave_settled_at = None;
            self.message = format!("wave {} of {}", self.current_wave + 1, self.plan.waves.len());
            step.op_changed();
        }
    }

    /// Wave `wave` settled and soaked; the next one is gated: wait for an operator,
    /// until the gate's deadline.
    fn wait_for_approval(&mut self, env: &mut dyn Env, wave: usize, now: Millis, step: &mut Step) {
        let next = wave + 1;
        let since = match self.awaiting_approval {
            Some(a) if a.wave == next => a.since,
            _ => {
                self.awaiting_approval = Some(AwaitingApproval {
                    wave: next,
                    since: now,
                    gate: None,
                    step: None,
                });
                self.message = format!(
                    "wave {} settled; waiting for an approval to start wave {} (`convoy approve {} --wave {}`)",
                    wave + 1,
                    next + 1,
                    self.release,
                    next + 1
                );
                step.op_changed();
                now
            }
        };
        let deadline = self.approval_deadline();
        if now >= since.saturating_add(deadline.as_millis() as u64) {
            let within = convoy_release::duration::format_duration(deadline);
            let why = match self.inconclusive_gate(next) {
                Some(g) => {
                    self.failed_gate = Some((next, g));
                    format!(
                        "{} before wave {} was inconclusive and nobody decided within {within}",
                        self.plan.gates[g].title(),
                        next + 1
                    )
                }
                None => format!("nobody approved wave {} within {within}", next + 1),
            };
            self.fail_gate(env, now, step, why);
        }
    }

    /// How long an operator has to answer a gate: the release's approval deadline, or
    /// an hour (an inconclusive analysis in a release without approval gates).
    pub fn approval_deadline(&self) -> std::time::Duration {
        if self.plan.approval.deadline.is_zero() {
            convoy_release::DEFAULT_APPROVAL_DEADLINE
        } else {
            self.plan.approval.deadline
        }
    }

    /// When the gate the rollout waits at fails unanswered: an approval step's own
    /// deadline, else the release's approval deadline.
    pub fn awaiting_deadline(&self) -> Option<Millis> {
        let a = self.awaiting_approval?;
        let own = a.step.and_then(|k| match self.plan.canary.get(k) {
            Some(CanaryStepSpec::Approval { deadline_ms }) => *deadline_ms,
            _ => None,
        });
        let ms = own.unwrap_or(self.approval_deadline().as_millis() as u64);
        Some(a.since.saturating_add(ms))
    }

    /// Where each automatic gate stands, per gated wave (0-based), in plan order; then
    /// the gate steps of the current wave's in-cluster canary, in step order.
    pub fn gate_states(&self) -> Vec<(GateAt, GateState)> {
        let mut out = Vec::new();
        for (g, spec) in self.plan.gates.iter().enumerate() {
            for &w in &spec.before {
                let state = if self.passed_gates.contains(&(w, g)) {
                    GateState::Passed
                } else if self.failed_gate == Some((w, g)) {
                    GateState::Failed
                } else if self
                    .verifying
                    .as_ref()
                    .is_some_and(|v| v.wave == w && v.gate == g)
                {
                    GateState::Measuring
                } else if self.inconclusive_gate(w) == Some(g) {
                    GateState::Inconclusive
                } else {
                    GateState::Pending
                };
                out.push((
                    GateAt {
                        wave: w,
                        gate: g,
                        step: None,
                    },
                    state,
                ));
            }
        }
        if let Some(at) = self.canary {
            for (k, s) in self.plan.canary.iter().enumerate() {
                let CanaryStepSpec::Gate { gate: g } = *s else {
                    continue;
                };
                let here = GateAt {
                    wave: at.wave,
                    gate: g,
                    step: Some(k),
                };
                let state = if k < at.step || (k == at.step && at.cleared) {
                    GateState::Passed
                } else if k > at.step {
                    GateState::Pending
                } else if self.failed_gate == Some((at.wave, g)) {
                    GateState::Failed
                } else if self
                    .verifying
                    .as_ref()
                    .is_some_and(|v| v.wave == at.wave && v.gate == g && v.step == Some(k))
                {
                    GateState::Measuring
                } else if self
                    .awaiting_approval
                    .is_some_and(|a| a.step == Some(k) && a.gate == Some(g))
                {
                    GateState::Inconclusive
                } else {
                    GateState::Pending
                };
                out.push((here, state));
            }
        }
        out
    }

    /// Where the current wave's in-cluster canary stands (`wave 1: step 2 of 5 (pause
    /// 2m)`), while one runs.
    pub fn canary_status(&self) -> Option<String> {
        let at = self.canary?;
        if self.phase.is_final() || self.phase == OperationPhase::RollingBack || at.wave != self.current_wave
        {
            return None;
        }
        let settled = self.plan.waves[at.wave]
            .iter()
            .all(|m| self.contexts.get(m).is_none_or(|c| c.phase.is_settled()));
        if settled {
            return None;
        }
        Some(format!(
            "wave {}: {}",
            at.wave + 1,
            self.canary_step_title(at.step)
        ))
    }

    /// The automatic gate before wave `wave` (0-based) that was inconclusive and waits for
    /// an operator's decision, if the rollout waits at one.
    fn inconclusive_gate(&self, wave: usize) -> Option<usize> {
        self.awaiting_approval
            .filter(|a| a.wave == wave && a.step.is_none())
            .and_then(|a| a.gate)
    }

    /// The first automatic gate before wave `wave` (0-based) not passed yet.
    fn pending_gate(&self, wave: usize) -> Option<usize> {
        self.plan
            .gates
            .iter()
            .enumerate()
            .find(|(i, g)| g.before.contains(&wave) && !self.passed_gates.contains(&(wave, *i)))
            .map(|(i, _)| i)
    }

    /// Wave `wave` settled and soaked; gate `gate` runs before the next one. The
    /// measurements are taken outside (the coordinator runs a task for the operation's
    /// `verifying` while it is running) and fed back through [`Operation::on_measurement`].
    fn verify(&mut self, wave: usize, gate: usize, now: Millis, step: &mut Step) {
        let next = wave + 1;
        if self
            .verifying
            .as_ref()
            .is_some_and(|v| v.wave == next && v.gate == gate)
        {
            return;
        }
        self.verifying = Some(Verifying {
            wave: next,
            gate,
            since: now,
            measurements: Vec::new(),
            step: None,
        });
        self.message = format!(
            "wave {} settled; {} before wave {}: measuring",
            wave + 1,
            self.plan.gates[gate].title(),
            next + 1
        );
        step.op_changed();
    }

    /// A measurement of the gate being checked: too many failures fail the gate
    /// (`onFailure` applies), too many without an answer make it wait for an operator,
    /// `count` of them within the limits pass it. A measurement for a gate no longer
    /// being checked (a task that outlived it) is ignored.
    pub fn on_measurement(
        &mut self,
        env: &mut dyn Env,
        at: GateAt,
        measurement: Measurement,
        now: Millis,
    ) -> Step {
        let mut step = Step::default();
        if self.phase != OperationPhase::Running {
            return step;
        }
        let GateAt {
            wave,
            gate,
            step: canary_step,
        } = at;
        let place = match canary_step {
            Some(k) => format!("at canary {} in wave {}", self.canary_step_title(k), wave + 1),
            None => format!("before wave {}", wave + 1),
        };
        let Some(v) = self
            .verifying
            .as_mut()
            .filter(|v| v.wave == wave && v.gate == gate && v.step == canary_step)
        else {
            return step;
        };
        let detail = measurement.detail.clone();
        v.measurements.push(measurement);
        let taken = v.measurements.len() as u32;
        let tally = |verdict| v.measurements.iter().filter(|m| m.verdict == verdict).count() as u32;
        let (failed, inconclusive) = (tally(Verdict::Failed), tally(Verdict::Inconclusive));
        let spec = &self.plan.gates[gate];
        let (count, failure_limit, inconclusive_limit) = spec.limits();
        let title = spec.title();
        let shown = wave + 1;
        if failed > failure_limit {
            self.failed_gate = Some((wave, gate));
            let why = format!(
                "{title} {place} failed: {detail} (measurement {taken} of {count}; {failed} failed, {failure_limit} tolerated)"
            );
            self.fail_gate(env, now, &mut step, why);
        } else if inconclusive > inconclusive_limit {
            self.verifying = None;
            self.awaiting_approval = Some(AwaitingApproval {
                wave,
                since: now,
                gate: Some(gate),
                step: canary_step,
            });
            self.message = format!(
                "{title} {place} was inconclusive: {detail}; waiting for an operator: `convoy approve {} --wave {shown}` passes the gate, `convoy refuse` fails it",
                self.release
            );
            step.op_changed();
        } else if taken >= count {
            self.verifying = None;
            match canary_step {
                Some(k) => self.clear_canary_step(wave, k),
                None => self.passed_gates.push((wave, gate)),
            }
            self.message = format!("{title} {place} passed: {detail}");
            step.op_changed();
            self.pump(env, now, &mut step);
        } else {
            self.message = format!("{title} {place}: measurement {taken} of {count}: {detail}");
            step.op_changed();
        }
        step
    }

    /// Step `k` of wave `wave`'s canary is done (its gate passed, or it was approved).
    fn clear_canary_step(&mut self, wave: usize, k: usize) {
        if let Some(at) = self.canary.as_mut().filter(|a| a.wave == wave && a.step == k) {
            at.cleared = true;
        }
    }

    /// The canary step of wave `wave` (0-based) waiting for an operator, if one does.
    fn step_awaiting(&self, wave: usize) -> Option<usize> {
        self.awaiting_approval
            .filter(|a| a.wave == wave)
            .and_then(|a| a.step)
    }

    /// Whether gated wave `wave` (0-based) may be approved or refused now.
    fn check_gate(&self, wave: usize) -> Result<(), String> {
        let shown = wave + 1;
        if self.phase.is_final() {
            return Err(format!("the operation has ended ({:?})", self.phase));
        }
        if self.step_awaiting(wave).is_some() {
            return Ok(());
        }
        let inconclusive = self.inconclusive_gate(wave).is_some();
        if !self.plan.approval.before.contains(&wave) && !inconclusive {
            let gated: Vec<String> = self
                .plan
                .approval
                .before
                .iter()
                .map(|w| (w + 1).to_string())
                .collect();
            return Err(if gated.is_empty() {
                "this operation has no approval gate".into()
            } else {
                format!(
                    "wave {shown} has no approval gate (gated: wave {})",
                    gated.join(", ")
                )
            });
        }
        if self.approved.contains(&wave) && !inconclusive {
            return Err(format!("wave {shown} is already approved"));
        }
        if self.phase == OperationPhase::RollingBack {
            return Err("the operation is rolling back".into());
        }
        Ok(())
    }

    /// An operator approves gated wave `wave` (0-based): it starts as soon as the waves
    /// before it settled (at once when the rollout waits at its gate). Approving ahead
    /// of time is allowed.
    pub fn approve(&mut self, env: &mut dyn Env, wave: usize, now: Millis) -> Result<Step, String> {
        self.check_gate(wave)?;
        let mut step = Step::default();
        if let Some(k) = self.step_awaiting(wave) {
            self.awaiting_approval = None;
            self.clear_canary_step(wave, k);
            self.message = format!(
                "wave {}: canary {} approved by an operator",
                wave + 1,
                self.canary_step_title(k)
            );
            step.op_changed();
            self.pump(env, now, &mut step);
            return Ok(step);
        }
        if let Some(g) = self.inconclusive_gate(wave) {
            self.awaiting_approval = None;
            self.passed_gates.push((wave, g));
            self.message = format!(
                "{} before wave {} passed by an operator",
                self.plan.gates[g].title(),
                wave + 1
            );
            step.op_changed();
            self.pump(env, now, &mut step);
            return Ok(step);
        }
        self.approved.push(wave);
        step.op_changed();
        if self.awaiting_approval.is_some_and(|a| a.wave == wave) {
            self.awaiting_approval = None;
            self.message = format!("wave {} approved", wave + 1);
            self.pump(env, now, &mut step);
        }
        Ok(step)
    }

    /// An operator refuses gated wave `wave`: the gate fails, and the release's
    /// `onFailure` decides (a fleet-wide rollback by default).
    pub fn refuse(&mut self, env: &mut dyn Env, wave: usize, why: &str, now: Millis) -> Result<Step, String> {
        self.check_gate(wave)?;
        let mut step = Step::default();
        if let Some(k) = self.step_awaiting(wave) {
            if let Some(g) = self.awaiting_approval.and_then(|a| a.gate) {
                self.failed_gate = Some((wave, g));
            }
            let what = format!(
                "wave {}: canary {} refused: {why}",
                wave + 1,
                self.canary_step_title(k)
            );
            self.fail_gate(env, now, &mut step, what);
            return Ok(step);
        }
        if let Some(g) = self.inconclusive_gate(wave) {
            self.failed_gate = Some((wave, g));
        }
        self.fail_gate(env, now, &mut step, format!("wave {} refused: {why}", wave + 1));
        Ok(step)
    }

    /// A gate failed (refused, or nobody answered in time): `onFailure` rollback rolls
    /// every updated context back; pause waits for an operator (a resume waits at the
    /// gate again); continue ends the rollout failed without starting the gated wave.
    fn fail_gate(&mut self, env: &mut dyn Env, now: Millis, step: &mut Step, why: String) {
        self.awaiting_approval = None;
        self.verifying = None;
        self.failed_because = Some(why.clone());
        match self.plan.on_failure {
            OnFailure::Rollback => {
                self.begin_rollback(env, now, step);
                if self.phase == OperationPhase::RollingBack {
                    self.message = format!("{why}; rolling every updated context back");
                }
            }
            OnFailure::Pause => {
                self.phase = OperationPhase::Paused;
                self.paused = true;
                self.message = format!("{why}; paused for an operator (a resume waits at the gate again)");
                step.op_changed();
            }
            OnFailure::Continue => self.finish(OperationPhase::Failed, why, now, step),
        }
    }

    /// Begins wave `wave`'s in-cluster canary at its first step, once (a deploy with
    /// canary steps only).
    fn start_canary(&mut self, wave: usize, now: Millis) {
        if self.kind != OperationKind::Deploy || self.plan.canary.is_empty() {
            return;
        }
        if self.canary.is_none_or(|a| a.wave != wave) {
            self.canary = Some(CanaryAt {
                wave,
                step: 0,
                since: now,
                cleared: false,
            });
        }
    }

    /// The step and weight a context of wave `wave` joining its canary runs at now:
    /// the last `setWeight` at or before the current step; None once promoting (or
    /// without a canary).
    fn canary_weight(&self, wave: usize) -> Option<(usize, u32)> {
        let at = self
            .canary
            .filter(|a| a.wave == wave && a.step < self.plan.canary.len())?;
        self.plan.canary[..=at.step]
            .iter()
            .enumerate()
            .rev()
            .find_map(|(k, s)| match s {
                CanaryStepSpec::SetWeight { weight } => Some((k, *weight)),
                CanaryStepSpec::Stage => Some((k, 100)),
                _ => None,
            })
    }

    /// `step 2 of 5 (pause 2m)`.
    fn canary_step_title(&self, k: usize) -> String {
        let steps = &self.plan.canary;
        match steps.get(k) {
            Some(s) => format!(
                "step {} of {} ({})",
                k + 1,
                steps.len(),
                s.describe(&self.plan.gates)
            ),
            None => "promoting".into(),
        }
    }

    /// Drives wave `wave`'s in-cluster canary: a step is done when every context of
    /// the wave running the canary reported healthy at its weight (a `setWeight`), its
    /// time passed (a `pause`), an operator approved (an `approval`) or its gate passed
    /// (a `gate`); then the next begins. After the last, each context is promoted: the
    /// revision is applied to the primaries, which removes the canary once healthy.
    fn pump_canary(&mut self, env: &mut dyn Env, wave: usize, now: Millis, step: &mut Step) {
        let Some(mut at) = self.canary.filter(|a| a.wave == wave) else {
            return;
        };
        loop {
            let Some(current) = self.plan.canary.get(at.step).cloned() else {
                return;
            };
            let done = match current {
                CanaryStepSpec::SetWeight { .. } | CanaryStepSpec::Stage => {
                    self.plan.waves[wave].iter().all(|m| {
                        let c = &self.contexts[m];
                        match c.canary {
                            // A failure is the budget's business; a context without a
                            // canary (new to the release) goes on its own.
                            _ if c.phase.is_settled() => true,
                            None => !matches!(c.phase, ContextPhase::Pending | ContextPhase::WaitingForAgent),
                            Some(k) => k.ready && k.step == at.step,
                        }
                    })
                }
                CanaryStepSpec::Pause { duration } => {
                    now >= at.since.saturating_add(duration.as_millis() as u64)
                }
                CanaryStepSpec::Approval { deadline_ms } => {
                    if !at.cleared {
                        let deadline = deadline_ms
                            .map_or_else(|| self.approval_deadline(), std::time::Duration::from_millis);
                        self.wait_for_step_approval(env, wave, at, deadline, now, step);
                    }
                    at.cleared
                }
                CanaryStepSpec::Gate { gate } => {
                    if !at.cleared
                        && self
                            .verifying
                            .as_ref()
                            .is_none_or(|v| v.wave != wave || v.step != Some(at.step))
                    {
                        self.verifying = Some(Verifying {
                            wave,
                            gate,
                            since: now,
                            measurements: Vec::new(),
                            step: Some(at.step),
                        });
                        self.message = format!(
                            "wave {}: canary {}: measuring",
                            wave + 1,
                            self.canary_step_title(at.step)
                        );
                        step.op_changed();
                    }
                    at.cleared
                }
            };
            if !done {
                return;
            }
            at = CanaryAt {
                wave,
                step: at.step + 1,
                since: now,
                cleared: false,
            };
            self.canary = Some(at);
            step.op_changed();
            let promote = at.step >= self.plan.canary.len();
            let weight = match self.plan.canary.get(at.step) {
                Some(CanaryStepSpec::SetWeight { weight }) => Some(*weight),
                _ => None,
            };
            let blue_green = self.plan.blue_green.is_some();
            self.message = if promote && blue_green {
                format!(
                    "wave {}: steps passed; switching the Services to the new slot",
                    wave + 1
                )
            } else if promote {
                format!("wave {}: canary steps passed; promoting", wave + 1)
            } else {
                format!("wave {}: canary {}", wave + 1, self.canary_step_title(at.step))
            };
            if !promote && weight.is_none() {
                continue;
            }
            for m in &self.plan.waves[wave] {
                let c = self
                    .contexts
                    .get_mut(m)
                    .expect("plan contexts are operation contexts");
                if c.canary.is_none() || c.phase.is_settled() {
                    continue;
                }
                c.updated_at = now;
                let command = match weight {
                    Some(weight) => {
                        c.canary = Some(ContextCanary {
                            step: at.step,
                            weight,
                            ready: false,
                        });
                        c.message = format!("canary to {weight}%");
                        Command::Canary {
                            revision: self.revision,
                            step: at.step,
                            weight,
                        }
                    }
                    None if blue_green => {
                        c.canary = None;
                        c.phase = ContextPhase::Dispatched;
                        c.message = "new slot passed; switching the Services to it".into();
                        Command::Switch {
                            revision: self.revision,
                        }
                    }
                    None => {
                        c.canary = None;
                        c.phase = ContextPhase::Dispatched;
                        c.message = "canary passed; promoting: applying the revision to the primaries".into();
                        Command::Apply {
                            revision: self.revision,
                        }
                    }
                };
                note(&mut self.tally, step, c);
                if env.is_online(m) {
                    step.send(m, command);
                }
            }
            if promote {
                return;
            }
        }
    }

    /// Wave `wave`'s canary waits at an `approval` step: for an operator, until the
    /// approval deadline (then the gate fails and `onFailure` applies).
    fn wait_for_step_approval(
        &mut self,
        env: &mut dyn Env,
        wave: usize,
        at: CanaryAt,
        deadline: std::time::Duration,
        now: Millis,
        step: &mut Step,
    ) {
        let waiting = self
            .awaiting_approval
            .is_some_and(|a| a.wave == wave && a.step == Some(at.step));
        if !waiting {
            self.awaiting_approval = Some(AwaitingApproval {
                wave,
                since: at.since,
                gate: None,
                step: Some(at.step),
            });
            self.message = format!(
                "wave {}: canary {}: waiting for an approval (`convoy approve {} --wave {}`)",
                wave + 1,
                self.canary_step_title(at.step),
                self.release,
                wave + 1
            );
            step.op_changed();
        }
        if now >= at.since.saturating_add(deadline.as_millis() as u64) {
            let why = format!(
                "nobody approved canary {} in wave {} within {}",
                self.canary_step_title(at.step),
                wave + 1,
                convoy_release::duration::format_duration(deadline)
            );
            self.fail_gate(env, now, step, why);
        }
    }

    /// Starts the wave's pending members, in plan order, up to `maxConcurrency` in
    /// flight. Only members that may start are visited (from the tally, a few at a time),
    /// so a report in a wave of 10,000 does not walk the other 9,999.
    fn dispatch_wave(&mut self, env: &mut dyn Env, wave: usize, now: Millis, step: &mut Step) {
        let limit = if self.plan.max_concurrency == 0 {
            usize::MAX
        } else {
            self.plan.max_concurrency
        };
        let cmd = match self.kind {
            OperationKind::Deploy => Command::Apply {
                revision: self.revision,
            },
            OperationKind::Rollback => Command::Rollback {
                revision: self.revision,
                target: self.rollback_to.unwrap_or_default(),
            },
        };
        // The weight a context joining the wave's canary now runs at.
        let canary_weight = self.canary_weight(wave);
        let blue_green = self.plan.blue_green.is_some();
        let mut in_flight = self.tally().in_flight();
        let mut from = 0;
        while in_flight < limit {
            let batch = self.tally().startable_from(wave, from, 256);
            let Some(&last) = batch.last() else { break };
            from = last + 1;
            for i in batch {
                if in_flight >= limit {
                    break;
                }
                let m = &self.plan.waves[wave][i];
                let c = self
                    .contexts
                    .get_mut(m)
                    .expect("plan contexts are operation contexts");
                if !matches!(c.phase, ContextPhase::Pending | ContextPhase::WaitingForAgent) {
                    continue;
                }
                if env.is_online(m) {
                    c.phase = ContextPhase::Dispatched;
                    c.received = true;
                    c.dispatched_at = Some(now);
                    c.waiting_since = None;
                    c.message = "dispatched".into();
                    c.updated_at = now;
                    in_flight += 1;
                    // An in-cluster canary needs a primary to run beside: a context new
                    // to the release takes the revision at once.
                    // A blue/green stages every context (a new one has no live slot, and
                    // its Services get one at the switch).
                    match canary_weight.filter(|_| c.previous_revision.is_some() || blue_green) {
                        Some((k, weight)) => {
                            c.canary = Some(ContextCanary {
                                step: k,
                                weight,
                                ready: false,
                            });
                            c.message = format!("{}: dispatched", in_cluster_label(blue_green, weight));
                            step.send(
                                m,
                                Command::Canary {
                                    revision: self.revision,
                                    step: k,
                                    weight,
                                },
                            );
                        }
                        None => step.send(m, cmd.clone()),
                    }
                    note(&mut self.tally, step, c);
                } else if c.phase == ContextPhase::Pending {
                    c.phase = ContextPhase::WaitingForAgent;
                    c.waiting_since = Some(now);
                    c.message = "waiting for the agent to connect".into();
                    c.updated_at = now;
                    note(&mut self.tally, step, c);
                }
            }
        }
    }

    fn finish_rollout(&mut self, now: Millis, step: &mut Step) {
        let failed = self.failed_count();
        let total = self.contexts.len();
        if failed == 0 {
            let verb = if self.kind == OperationKind::Rollback {
                "rolled back"
            } else {
                "healthy"
            };
            self.finish(
                OperationPhase::Succeeded,
                format!("{total} of {total} contexts {verb}"),
                now,
                step,
            );
        } else if self.budget_exceeded() {
            self.finish(
                OperationPhase::Failed,
                format!("{failed} of {total} contexts failed, beyond maxFailures"),
                now,
                step,
            );
        } else {
            self.finish(
                OperationPhase::Succeeded,
                format!(
                    "{} of {total} contexts healthy; {failed} failed within maxFailures",
                    total - failed
                ),
                now,
                step,
            );
        }
    }

    /// Whether exceeding the failure budget interrupts the rollout (a rollback, and a
    /// deploy with `onFailure: continue`, go on to the end and report Failed there).
    fn stops_on_budget(&self) -> bool {
        self.kind == OperationKind::Deploy && self.plan.on_failure != OnFailure::Continue
    }

    fn on_budget_exceeded(&mut self, env: &mut dyn Env, now: Millis, step: &mut Step) {
        let failed = self.failed_count();
        let total = self.contexts.len();
        if self.plan.on_failure == OnFailure::Pause {
            self.phase = OperationPhase::Paused;
            self.paused = true;
            self.message =
                format!("{failed} of {total} contexts failed, beyond maxFailures; paused for an operator");
            step.op_changed();
        } else {
            self.begin_rollback(env, now, step);
        }
    }

    /// Every context that received the revision goes back to its previous revision,
    /// concurrently; contexts still applying are stopped first.
    fn begin_rollback(&mut self, env: &mut dyn Env, now: Millis, step: &mut Step) {
        let failed = self.failed_count();
        let total = self.contexts.len();
        self.phase = OperationPhase::RollingBack;
        let rollback_revision = env.allocate_revision();
        self.rollback_revision = Some(rollback_revision);
        self.message = format!("{failed} of {total} contexts failed; rolling every updated context back");
        step.op_changed();
        let names: Vec<String> = self.contexts.keys().cloned().collect();
        for name in names {
            let c = self.contexts.get_mut(&name).expect("listed");
            if !c.received {
                if !c.phase.is_settled() {
                    c.phase = ContextPhase::Skipped;
                    c.message = "not started: the rollout failed elsewhere".into();
                    c.updated_at = now;
                    note(&mut self.tally, step, c);
                }
                continue;
            }
            // A canary that reported healthy runs no command: nothing to stop.
            let idle_canary = c.canary.is_some_and(|k| k.ready);
            if c.phase.is_in_flight() && !idle_canary {
                // Stop the apply first; its Aborted report triggers the rollback.
                let stage = c.canary.map_or(Stage::Main, |k| Stage::Canary(k.step));
                step.send(
                    &name,
                    Command::Abort {
                        revision: self.revision,
                        stage,
                    },
                );
                continue;
            }
            if let Some(k) = c.canary.filter(|_| idle_canary) {
                c.message = format!(
                    "{}: removed by the fleet-wide rollback",
                    in_cluster_label(self.plan.blue_green.is_some(), k.weight)
                );
            }
            self.roll_back_context(env, &name, now, step);
        }
        self.check_rollback_done(now, step);
    }

    fn roll_back_context(&mut self, env: &mut dyn Env, name: &str, now: Millis, step: &mut Step) {
        let revision = self.rollback_revision.unwrap_or(self.revision);
        let c = self.contexts.get_mut(name).expect("known context");
        c.finished_at = None;
        c.updated_at = now;
        match c.previous_revision {
            None => {
                c.phase = ContextPhase::Failed;
                c.message = format!("{}; no previous revision here to roll back to", c.message);
                c.finished_at = Some(now);
            }
            Some(target) if env.is_online(name) => {
                c.phase = ContextPhase::RollingBack;
                c.message = format!("rolling back to revision {target}");
                c.dispatched_at = Some(now);
                step.send(name, Command::Rollback { revision, target });
            }
            Some(target) => {
                c.phase = ContextPhase::WaitingForAgent;
                c.waiting_since = Some(now);
                c.message = format!("waiting for the agent to roll back to revision {target}");
            }
        }
        note(&mut self.tally, step, c);
    }

    fn dispatch_waiting_rollbacks(&mut self, env: &mut dyn Env, now: Millis, step: &mut Step) {
        let waiting: Vec<String> = self
            .tally()
            .waiting_rollback()
            .into_iter()
            .map(|(w, i)| &self.plan.waves[w][i])
            .filter(|name| env.is_online(name))
            .cloned()
            .collect();
        for name in waiting {
            self.roll_back_context(env, &name, now, step);
        }
    }

    fn check_rollback_done(&mut self, now: Millis, step: &mut Step) {
        if self.phase != OperationPhase::RollingBack {
            return;
        }
        // Contexts still applying (abort sent) are not settled either.
        if !self.tally().all_settled() {
            return;
        }
        let rolled_back = self
            .contexts
            .values()
            .filter(|c| c.phase == ContextPhase::RolledBack)
            .count();
        let target = self
            .contexts
            .values()
            .filter_map(|c| c.previous_revision)
            .max()
            .map_or_else(
                || "their previous revisions".to_string(),
                |r| format!("revision {r}"),
            );
        let failed_rollbacks: Vec<&str> = self
            .contexts
            .values()
            .filter(|c| c.phase == ContextPhase::Failed && c.message.starts_with("rollback failed"))
            .map(|c| c.context.as_str())
            .collect();
        let failed = match &self.failed_because {
            Some(why) => format!("revision {} failed ({why})", self.revision),
            None => format!("revision {} failed", self.revision),
        };
        let msg = if failed_rollbacks.is_empty() {
            format!("{failed}; rolled {rolled_back} context(s) back to {target}")
        } else {
            format!(
                "{failed}; rolled {rolled_back} context(s) back to {target}; rollback FAILED in {}",
                failed_rollbacks.join(", ")
            )
        };
        self.finish(OperationPhase::Failed, msg, now, step);
    }

    fn finish(&mut self, phase: OperationPhase, message: String, now: Millis, step: &mut Step) {
        // Contexts change below without a note each: recount if ever asked again.
        self.tally = TallyCache::default();
        self.phase = phase;
        self.message = message;
        self.finished_at = Some(now);
        for c in self.contexts.values_mut() {
            if matches!(c.phase, ContextPhase::Pending | ContextPhase::WaitingForAgent) {
                c.phase = ContextPhase::Skipped;
                c.updated_at = now;
                if c.message.is_empty() || c.message.starts_with("waiting") {
                    c.message = "not started".into();
                }
            }
        }
        step.op_changed();
    }
}

/// How a context's in-cluster step is named in its messages: `canary at 10%`, or
/// `new slot` (blue/green).
fn in_cluster_label(blue_green: bool, weight: u32) -> String {
    if blue_green {
        "new slot".into()
    } else {
        format!("canary at {weight}%")
    }
}

/// Builds a fresh operation's per-context states from its plan.
pub fn initial_contexts(
    plan: &crate::model::Plan,
    previous: &dyn Fn(&str) -> Option<u64>,
    now: Millis,
) -> std::collections::BTreeMap<String, ContextState> {
    plan.waves
        .iter()
        .enumerate()
        .flat_map(|(w, ctxs)| ctxs.iter().map(move |c| (w, c)))
        .map(|(w, c)| (c.clone(), ContextState::new(c, w, previous(c), now)))
        .collect()
}

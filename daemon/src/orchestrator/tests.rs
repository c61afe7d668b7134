//! The state machine fed events in memory: no agents, no clocks.

use std::collections::BTreeSet;
use std::time::Duration;

use super::*;
use crate::model::{FailureBudget, Plan};

struct FakeEnv {
    online: BTreeSet<String>,
    next_revision: u64,
}

impl Env for FakeEnv {
    fn is_online(&self, context: &str) -> bool {
        self.online.contains(context)
    }
    fn allocate_revision(&mut self) -> u64 {
        self.next_revision += 1;
        self.next_revision
    }
}

fn env(online: &[&str]) -> FakeEnv {
    FakeEnv {
        online: online.iter().map(|s| s.to_string()).collect(),
        next_revision: 5,
    }
}

fn plan(waves: &[&[&str]]) -> Plan {
    Plan::for_tests(waves)
}

fn op(plan: Plan) -> Operation {
    let contexts = initial_contexts(&plan, &|_| Some(4), 0);
    Operation {
        id: "op-1".into(),
        release: "app1.ns1".into(),
        kind: OperationKind::Deploy,
        phase: OperationPhase::Queued,
        revision: 5,
        rollback_to: None,
        rollback_revision: None,
        plan,
        contexts,
        current_wave: 0,
        wave_settled_at: None,
        requested_by: "alice".into(),
        reason: "test".into(),
        created_at: 0,
        started_at: None,
        finished_at: None,
        message: String::new(),
        paused: false,
        accepted_failures: 0,
        approved: Vec::new(),
        awaiting_approval: None,
        failed_because: None,
        verifying: None,
        passed_gates: Vec::new(),
        failed_gate: None,
        canary: None,
        tally: Default::default(),
    }
}

fn sends(step: &Step) -> Vec<(String, Command)> {
    step.actions
        .iter()
        .filter_map(|a| match a {
            Action::Send { context, command } => Some((context.clone(), command.clone())),
            _ => None,
        })
        .collect()
}

fn healthy(o: &mut Operation, e: &mut FakeEnv, ctx: &str, now: u64) -> Step {
    o.on_report(e, ctx, Stage::Main, Report::Accepted, now);
    o.on_report(e, ctx, Stage::Main, Report::Applied, now);
    o.on_report(e, ctx, Stage::Main, Report::Healthy, now)
}

fn failed(o: &mut Operation, e: &mut FakeEnv, ctx: &str, now: u64) -> Step {
    o.on_report(e, ctx, Stage::Main, Report::Accepted, now);
    o.on_report(
        e,
        ctx,
        Stage::Main,
        Report::Failed {
            reason: "CrashLoopBackOff".into(),
            message: "pod web-1 back-off".into(),
        },
        now,
    )
}

#[test]
fn all_at_once_dispatches_every_context_and_succeeds() {
    let mut e = env(&["a", "b", "c"]);
    let mut o = op(plan(&[&["a", "b", "c"]]));
    let step = o.start(&mut e, 1);
    assert!(step.persist);
    assert_eq!(sends(&step).len(), 3);
    assert!(
        sends(&step)
            .iter()
            .all(|(_, c)| *c == Command::Apply { revision: 5 })
    );
    healthy(&mut o, &mut e, "a", 2);
    healthy(&mut o, &mut e, "b", 3);
    assert_eq!(o.phase, OperationPhase::Running);
    healthy(&mut o, &mut e, "c", 4);
    assert_eq!(o.phase, OperationPhase::Succeeded);
    assert_eq!(o.message, "3 of 3 contexts healthy");
    assert_eq!(o.finished_at, Some(4));
}

#[test]
fn waves_run_in_order_and_soak_between() {
    let mut e = env(&["a", "b", "c"]);
    let mut p = plan(&[&["a"], &["b", "c"]]);
    p.soak = Duration::from_secs(10);
    let mut o = op(p);
    let step = o.start(&mut e, 0);
    assert_eq!(sends(&step), vec![("a".into(), Command::Apply { revision: 5 })]);
    let step = healthy(&mut o, &mut e, "a", 1_000);
    assert!(sends(&step).is_empty(), "wave 2 must wait for the soak");
    assert!(o.message.contains("soaking 10s"), "{}", o.message);
    assert!(sends(&o.on_tick(&mut e, 10_999)).is_empty());
    let step = o.on_tick(&mut e, 11_000);
    let mut got: Vec<String> = sends(&step).into_iter().map(|(c, _)| c).collect();
    got.sort();
    assert_eq!(got, vec!["b", "c"]);
    assert_eq!(o.current_wave, 1);
}

#[test]
fn max_concurrency_bounds_contexts_in_flight() {
    let mut e = env(&["a", "b", "c", "d"]);
    let mut p = plan(&[&["a", "b", "c", "d"]]);
    p.max_concurrency = 2;
    let mut o = op(p);
    assert_eq!(sends(&o.start(&mut e, 0)).len(), 2);
    let step = healthy(&mut o, &mut e, "a", 1);
    assert_eq!(sends(&step), vec![("c".into(), Command::Apply { revision: 5 })]);
}

#[test]
fn one_failure_rolls_every_received_context_back() {
    let mut e = env(&["a", "b", "c"]);
    let mut o = op(plan(&[&["a", "b", "c"]]));
    o.start(&mut e, 0);
    healthy(&mut o, &mut e, "a", 1);
    o.on_report(&mut e, "b", Stage::Main, Report::Accepted, 1);
    let step = failed(&mut o, &mut e, "c", 2);
    assert_eq!(o.phase, OperationPhase::RollingBack);
    assert_eq!(o.rollback_revision, Some(6));
    let mut got = sends(&step);
    got.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(
        got,
        vec![
            (
                "a".into(),
                Command::Rollback {
                    revision: 6,
                    target: 4
                }
            ),
            // b is still applying: it is stopped first.
            (
                "b".into(),
                Command::Abort {
                    revision: 5,
                    stage: Stage::Main
                }
            ),
            (
                "c".into(),
                Command::Rollback {
                    revision: 6,
                    target: 4
                }
            ),
        ]
    );
    // b's apply stops; then it is rolled back too.
    let step = o.on_report(&mut e, "b", Stage::Main, Report::Aborted, 3);
    assert_eq!(
        sends(&step),
        vec![(
            "b".into(),
            Command::Rollback {
                revision: 6,
                target: 4
            }
        )]
    );
    for c in ["a", "b", "c"] {
        o.on_report(&mut e, c, Stage::Rollback, Report::Accepted, 4);
        assert_eq!(o.contexts[c].phase, ContextPhase::RollingBack);
        o.on_report(&mut e, c, Stage::Rollback, Report::Healthy, 5);
    }
    assert_eq!(o.phase, OperationPhase::Failed);
    assert_eq!(
        o.message,
        "revision 5 failed; rolled 3 context(s) back to revision 4"
    );
    assert!(o.contexts.values().all(|c| c.phase == ContextPhase::RolledBack));
}

#[test]
fn watchers_see_a_failure_even_when_the_rollback_starts_in_the_same_step() {
    let mut e = env(&["a"]);
    let mut o = op(plan(&[&["a"]]));
    o.start(&mut e, 0);
    let step = failed(&mut o, &mut e, "a", 1);
    let phases: Vec<ContextPhase> = step
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::ContextChanged(c) => Some(c.phase),
            _ => None,
        })
        .collect();
    assert_eq!(phases, vec![ContextPhase::Failed, ContextPhase::RollingBack]);
}

#[test]
fn a_context_that_finishes_before_its_abort_lands_is_rolled_back_too() {
    let mut e = env(&["a", "b"]);
    let mut o = op(plan(&[&["a", "b"]]));
    o.start(&mut e, 0);
    o.on_report(&mut e, "b", Stage::Main, Report::Accepted, 1);
    let step = failed(&mut o, &mut e, "a", 2);
    assert!(sends(&step).contains(&(
        "b".into(),
        Command::Abort {
            revision: 5,
            stage: Stage::Main
        }
    )));
    // b's apply completes before the abort reaches it.
    let step = o.on_report(&mut e, "b", Stage::Main, Report::Healthy, 3);
    assert_eq!(
        sends(&step),
        vec![(
            "b".into(),
            Command::Rollback {
                revision: 6,
                target: 4
            }
        )]
    );
    assert_eq!(o.contexts["b"].phase, ContextPhase::RollingBack);
    // The late Aborted for the finished apply changes nothing.
    let step = o.on_report(&mut e, "b", Stage::Main, Report::Aborted, 4);
    assert!(sends(&step).is_empty());
    o.on_report(&mut e, "a", Stage::Rollback, Report::Healthy, 5);
    o.on_report(&mut e, "b", Stage::Rollback, Report::Healthy, 5);
    assert_eq!(o.phase, OperationPhase::Failed);
    assert!(o.contexts.values().all(|c| c.phase == ContextPhase::RolledBack));
}

#[test]
fn later_waves_are_never_touched_after_a_failure() {
    let mut e = env(&["a", "b"]);
    let mut o = op(plan(&[&["a"], &["b"]]));
    o.start(&mut e, 0);
    let step = failed(&mut o, &mut e, "a", 1);
    assert!(sends(&step).iter().all(|(c, _)| c == "a"));
    assert_eq!(o.contexts["b"].phase, ContextPhase::Skipped);
    o.on_report(&mut e, "a", Stage::Rollback, Report::Healthy, 2);
    assert_eq!(o.phase, OperationPhase::Failed);
}

#[test]
fn failures_within_the_budget_do_not_stop_the_rollout() {
    let mut e = env(&["a", "b", "c", "d"]);
    let mut p = plan(&[&["a", "b", "c", "d"]]);
    p.max_failures = FailureBudget::Percent(25);
    let mut o = op(p);
    o.start(&mut e, 0);
    failed(&mut o, &mut e, "a", 1);
    assert_eq!(o.phase, OperationPhase::Running);
    for c in ["b", "c", "d"] {
        healthy(&mut o, &mut e, c, 2);
    }
    assert_eq!(o.phase, OperationPhase::Succeeded);
    assert!(o.message.contains("1 failed within maxFailures"), "{}", o.message);
}

#[test]
fn on_failure_pause_waits_for_an_operator_and_resume_accepts_the_failure() {
    let mut e = env(&["a", "b"]);
    let mut p = plan(&[&["a"], &["b"]]);
    p.on_failure = OnFailure::Pause;
    let mut o = op(p);
    o.start(&mut e, 0);
    let step = failed(&mut o, &mut e, "a", 1);
    assert_eq!(o.phase, OperationPhase::Paused);
    assert!(sends(&step).is_empty());
    let step = o.resume(&mut e, 2);
    assert_eq!(sends(&step), vec![("b".into(), Command::Apply { revision: 5 })]);
    healthy(&mut o, &mut e, "b", 3);
    assert_eq!(o.phase, OperationPhase::Succeeded);
}

#[test]
fn on_failure_continue_finishes_every_wave_then_fails() {
    let mut e = env(&["a", "b"]);
    let mut p = plan(&[&["a"], &["b"]]);
    p.on_failure = OnFailure::Continue;
    let mut o = op(p);
    o.start(&mut e, 0);
    let step = failed(&mut o, &mut e, "a", 1);
    assert_eq!(sends(&step), vec![("b".into(), Command::Apply { revision: 5 })]);
    healthy(&mut o, &mut e, "b", 2);
    assert_eq!(o.phase, OperationPhase::Failed);
    assert!(o.message.contains("1 of 2 contexts failed"), "{}", o.message);
}

#[test]
fn offline_agents_wait_then_count_as_failed() {
    let mut e = env(&["a"]);
    let mut p = plan(&[&["a", "b"]]);
    p.offline_deadline = Duration::from_secs(30);
    p.max_failures = FailureBudget::Count(1);
    let mut o = op(p);
    let step = o.start(&mut e, 0);
    assert_eq!(sends(&step).len(), 1);
    assert_eq!(o.contexts["b"].phase, ContextPhase::WaitingForAgent);
    healthy(&mut o, &mut e, "a", 1);
    o.on_tick(&mut e, 29_999);
    assert_eq!(o.contexts["b"].phase, ContextPhase::WaitingForAgent);
    o.on_tick(&mut e, 30_000);
    assert_eq!(o.contexts["b"].phase, ContextPhase::Failed);
    assert!(o.contexts["b"].message.contains("no agent connected"));
    assert_eq!(o.phase, OperationPhase::Succeeded);
}

#[test]
fn an_agent_connecting_in_time_gets_its_command() {
    let mut e = env(&[]);
    let mut o = op(plan(&[&["a"]]));
    assert!(sends(&o.start(&mut e, 0)).is_empty());
    e.online.insert("a".into());
    let step = o.on_agent_online(&mut e, "a", 5);
    assert_eq!(sends(&step), vec![("a".into(), Command::Apply { revision: 5 })]);
    // A reconnect while in flight re-sends the (idempotent) command.
    let step = o.on_agent_online(&mut e, "a", 6);
    assert_eq!(sends(&step), vec![("a".into(), Command::Apply { revision: 5 })]);
}

#[test]
fn preflight_refusal_fails_before_anything_is_applied() {
    let mut e = env(&["a", "b"]);
    let mut p = plan(&[&["a"], &["b"]]);
    p.preflight = true;
    let mut o = op(p);
    let step = o.start(&mut e, 0);
    assert_eq!(o.phase, OperationPhase::Preflight);
    assert!(
        sends(&step)
            .iter()
            .all(|(_, c)| *c == Command::DryRun { revision: 5 })
    );
    assert_eq!(sends(&step).len(), 2);
    let step = o.on_report(&mut e, "a", Stage::Preflight, Report::DryRunPassed, 1);
    assert!(sends(&step).is_empty(), "no apply before every context passed");
    let refusal = Report::Failed {
        reason: "ApplyRefused".into(),
        message: "Deployment.apps \"web\" is invalid: spec.selector: field is immutable".into(),
    };
    let step = o.on_report(&mut e, "b", Stage::Preflight, refusal, 2);
    assert!(sends(&step).is_empty());
    assert_eq!(o.phase, OperationPhase::Failed);
    assert!(
        o.message.contains("preflight dry run refused in b"),
        "{}",
        o.message
    );
    assert!(o.message.contains("field is immutable"));
    assert!(o.contexts.values().all(|c| !c.received));
}

#[test]
fn preflight_pass_starts_the_first_wave() {
    let mut e = env(&["a", "b"]);
    let mut p = plan(&[&["a"], &["b"]]);
    p.preflight = true;
    let mut o = op(p);
    o.start(&mut e, 0);
    o.on_report(&mut e, "a", Stage::Preflight, Report::DryRunPassed, 1);
    let step = o.on_report(&mut e, "b", Stage::Preflight, Report::DryRunPassed, 1);
    assert_eq!(o.phase, OperationPhase::Running);
    assert_eq!(sends(&step), vec![("a".into(), Command::Apply { revision: 5 })]);
}

#[test]
fn abort_stops_in_flight_contexts_and_skips_the_rest() {
    let mut e = env(&["a", "b"]);
    let mut o = op(plan(&[&["a"], &["b"]]));
    o.start(&mut e, 0);
    let step = o.abort("bad config", 1);
    assert_eq!(
        sends(&step),
        vec![(
            "a".into(),
            Command::Abort {
                revision: 5,
                stage: Stage::Main
            }
        )]
    );
    assert_eq!(o.phase, OperationPhase::Aborted);
    assert_eq!(o.contexts["b"].phase, ContextPhase::Skipped);
    assert!(o.message.contains("bad config"));
    // Late reports do not revive it.
    let step = healthy(&mut o, &mut e, "a", 2);
    assert!(sends(&step).is_empty());
    assert_eq!(o.phase, OperationPhase::Aborted);
}

#[test]
fn pause_holds_the_next_wave_until_resume() {
    let mut e = env(&["a", "b"]);
    let mut o = op(plan(&[&["a"], &["b"]]));
    o.start(&mut e, 0);
    o.pause(1);
    let step = healthy(&mut o, &mut e, "a", 2);
    assert!(sends(&step).is_empty());
    let step = o.resume(&mut e, 3);
    assert_eq!(sends(&step), vec![("b".into(), Command::Apply { revision: 5 })]);
}

#[test]
fn manual_rollback_goes_everywhere_at_once() {
    let mut e = env(&["a", "b"]);
    let mut o = op(plan(&[&["a", "b"]]));
    o.kind = OperationKind::Rollback;
    o.rollback_to = Some(3);
    let step = o.start(&mut e, 0);
    assert_eq!(sends(&step).len(), 2);
    assert!(sends(&step).iter().all(|(_, c)| *c
        == Command::Rollback {
            revision: 5,
            target: 3
        }));
    o.on_report(&mut e, "a", Stage::Main, Report::Accepted, 1);
    assert_eq!(o.contexts["a"].phase, ContextPhase::RollingBack);
    o.on_report(&mut e, "a", Stage::Main, Report::Healthy, 2);
    o.on_report(&mut e, "b", Stage::Main, Report::Healthy, 2);
    assert_eq!(o.phase, OperationPhase::Succeeded);
    assert_eq!(o.contexts["a"].phase, ContextPhase::RolledBack);
}

#[test]
fn a_context_without_a_previous_revision_is_reported_not_rolled_back() {
    let mut e = env(&["a"]);
    let mut o = op(plan(&[&["a"]]));
    o.contexts.get_mut("a").unwrap().previous_revision = None;
    o.start(&mut e, 0);
    let step = failed(&mut o, &mut e, "a", 1);
    assert!(sends(&step).is_empty());
    assert_eq!(o.phase, OperationPhase::Failed);
    assert!(o.contexts["a"].message.contains("no previous revision"));
}

#[test]
fn progress_updates_are_not_persisted_but_phase_changes_are() {
    let mut e = env(&["a"]);
    let mut o = op(plan(&[&["a"]]));
    o.start(&mut e, 0);
    let step = o.on_report(
        &mut e,
        "a",
        Stage::Main,
        Report::Progress {
            ready: 1,
            desired: 3,
            message: "1/3 ready".into(),
        },
        1,
    );
    assert!(!step.persist);
    assert!(matches!(&step.actions[..], [Action::ContextChanged(c)] if c.context == "a" && c.ready == 1));
    assert_eq!((o.contexts["a"].ready, o.contexts["a"].desired), (1, 3));
    assert!(o.on_report(&mut e, "a", Stage::Main, Report::Accepted, 2).persist);
}

#[test]
fn a_thousand_contexts_settle_in_linear_time() {
    let names: Vec<String> = (0..1000).map(|i| format!("ctx-{i:04}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut e = env(&refs);
    let mut o = op(plan(&[&refs]));
    assert_eq!(sends(&o.start(&mut e, 0)).len(), 1000);
    for n in &refs {
        healthy(&mut o, &mut e, n, 1);
    }
    assert_eq!(o.phase, OperationPhase::Succeeded);
}

fn gated(waves: &[&[&str]], before: &[usize], on_failure: OnFailure) -> Operation {
    let mut p = plan(waves);
    p.on_failure = on_failure;
    p.approval = crate::model::ApprovalGates {
        before: before.to_vec(),
        deadline: Duration::from_secs(60),
    };
    op(p)
}

#[test]
fn a_gated_wave_waits_for_its_approval() {
    let mut e = env(&["a", "b", "c"]);
    let mut o = gated(&[&["a"], &["b"], &["c"]], &[1], OnFailure::Rollback);
    o.start(&mut e, 0);
    let step = healthy(&mut o, &mut e, "a", 1_000);
    assert!(sends(&step).is_empty(), "wave 2 waits for its approval");
    assert_eq!(o.awaiting_approval.map(|a| (a.wave, a.since)), Some((1, 1_000)));
    assert!(
        o.message.contains("convoy approve app1.ns1 --wave 2"),
        "{}",
        o.message
    );
    assert!(
        sends(&o.on_tick(&mut e, 30_000)).is_empty(),
        "still within the deadline"
    );
    // Wave 3 is not gated: approving it is refused, naming the gated ones.
    assert_eq!(
        o.approve(&mut e, 2, 31_000).unwrap_err(),
        "wave 3 has no approval gate (gated: wave 2)"
    );
    let step = o.approve(&mut e, 1, 31_000).unwrap();
    assert_eq!(sends(&step), vec![("b".into(), Command::Apply { revision: 5 })]);
    assert_eq!(o.awaiting_approval, None);
    assert_eq!(
        o.approve(&mut e, 1, 31_500).unwrap_err(),
        "wave 2 is already approved"
    );
    healthy(&mut o, &mut e, "b", 32_000);
    let step = healthy(&mut o, &mut e, "c", 33_000);
    assert!(sends(&step).is_empty());
    assert_eq!(o.phase, OperationPhase::Succeeded);
}

#[test]
fn a_wave_approved_ahead_of_time_starts_without_waiting() {
    let mut e = env(&["a", "b"]);
    let mut o = gated(&[&["a"], &["b"]], &[1], OnFailure::Rollback);
    o.start(&mut e, 0);
    o.approve(&mut e, 1, 10).unwrap();
    let step = healthy(&mut o, &mut e, "a", 20);
    assert_eq!(sends(&step), vec![("b".into(), Command::Apply { revision: 5 })]);
    assert_eq!(o.awaiting_approval, None);
}

#[test]
fn a_refused_gate_rolls_the_fleet_back() {
    let mut e = env(&["a", "b"]);
    let mut o = gated(&[&["a"], &["b"]], &[1], OnFailure::Rollback);
    o.start(&mut e, 0);
    healthy(&mut o, &mut e, "a", 1_000);
    let step = o.refuse(&mut e, 1, "error rate too high in a", 2_000).unwrap();
    assert_eq!(o.phase, OperationPhase::RollingBack);
    assert_eq!(
        sends(&step),
        vec![(
            "a".into(),
            Command::Rollback {
                revision: 6,
                target: 4
            }
        )]
    );
    assert!(
        o.message
            .starts_with("wave 2 refused: error rate too high in a; rolling"),
        "{}",
        o.message
    );
    assert_eq!(
        o.contexts["b"].phase,
        ContextPhase::Skipped,
        "the gated wave never started"
    );
}

#[test]
fn an_unanswered_gate_fails_at_its_deadline_and_on_failure_decides() {
    // pause: the rollout stops; a resume waits at the gate again.
    let mut e = env(&["a", "b"]);
    let mut o = gated(&[&["a"], &["b"]], &[1], OnFailure::Pause);
    o.start(&mut e, 0);
    healthy(&mut o, &mut e, "a", 1_000);
    assert!(sends(&o.on_tick(&mut e, 60_999)).is_empty());
    assert_eq!(o.phase, OperationPhase::Running);
    let step = o.on_tick(&mut e, 61_000);
    assert!(sends(&step).is_empty());
    assert_eq!(o.phase, OperationPhase::Paused);
    assert!(
        o.message.starts_with("nobody approved wave 2 within 1m"),
        "{}",
        o.message
    );
    let step = o.resume(&mut e, 62_000);
    assert!(sends(&step).is_empty(), "a resume does not approve");
    assert_eq!(o.awaiting_approval.map(|a| a.wave), Some(1));
    let step = o.approve(&mut e, 1, 63_000).unwrap();
    assert_eq!(sends(&step), vec![("b".into(), Command::Apply { revision: 5 })]);

    // continue: the rollout ends failed without starting the gated wave.
    let mut e = env(&["a", "b"]);
    let mut o = gated(&[&["a"], &["b"]], &[1], OnFailure::Continue);
    o.start(&mut e, 0);
    healthy(&mut o, &mut e, "a", 1_000);
    let step = o.on_tick(&mut e, 61_000);
    assert!(sends(&step).is_empty());
    assert_eq!(o.phase, OperationPhase::Failed);
    assert_eq!(o.contexts["b"].phase, ContextPhase::Skipped);
    assert!(
        o.approve(&mut e, 1, 62_000).is_err(),
        "an ended operation takes no approval"
    );
}

/// Waves `waves` with one analysis gate before wave 2 (0-based 1): `count`
/// measurements, `failure_limit` and `inconclusive_limit` tolerated.
fn analysed(waves: &[&[&str]], count: u32, failure_limit: u32, inconclusive_limit: u32) -> Operation {
    let mut p = plan(waves);
    p.gates = vec![crate::model::GateSpec {
        name: "error-rate".into(),
        before: vec![1],
        check: crate::model::GateCheckSpec::Analysis {
            provider: "main".into(),
            query: "errors".into(),
            interval: Duration::from_secs(10),
            count,
            success: "result < 0.05".into(),
            failure: None,
            failure_limit,
            inconclusive_limit,
        },
    }];
    op(p)
}

fn measured(o: &mut Operation, e: &mut FakeEnv, verdict: Verdict, detail: &str, at: Millis) -> Step {
    let m = Measurement {
        at,
        verdict,
        detail: detail.into(),
    };
    o.on_measurement(
        e,
        GateAt {
            wave: 1,
            gate: 0,
            step: None,
        },
        m,
        at,
    )
}

#[test]
fn an_analysis_gate_measures_then_starts_the_wave() {
    let mut e = env(&["a", "b"]);
    let mut o = analysed(&[&["a"], &["b"]], 3, 1, 0);
    o.start(&mut e, 0);
    let step = healthy(&mut o, &mut e, "a", 1_000);
    assert!(sends(&step).is_empty(), "wave 2 waits for the analysis");
    let v = o.verifying.clone().expect("measuring");
    assert_eq!((v.wave, v.gate, v.since, v.measurements.len()), (1, 0, 1_000, 0));
    assert!(
        o.message.contains("analysis error-rate before wave 2: measuring"),
        "{}",
        o.message
    );
    // Ticks do not restart it, nor does a measurement for another gate.
    o.on_tick(&mut e, 5_000);
    assert_eq!(o.verifying.as_ref().map(|v| v.since), Some(1_000));
    assert!(
        sends(&o.on_measurement(
            &mut e,
            GateAt {
                wave: 1,
                gate: 3,
                step: None,
            },
            Measurement {
                at: 1,
                verdict: Verdict::Failed,
                detail: String::new()
            },
            1
        ))
        .is_empty()
    );
    assert_eq!(o.phase, OperationPhase::Running);

    measured(&mut o, &mut e, Verdict::Passed, "0.01 (result < 0.05)", 2_000);
    // One failure is tolerated (failureLimit 1).
    measured(
        &mut o,
        &mut e,
        Verdict::Failed,
        "`errors` = 0.2, expected result < 0.05",
        12_000,
    );
    assert_eq!(o.phase, OperationPhase::Running);
    assert!(o.message.contains("measurement 2 of 3"), "{}", o.message);
    let step = measured(&mut o, &mut e, Verdict::Passed, "0.02 (result < 0.05)", 22_000);
    assert_eq!(sends(&step), vec![("b".into(), Command::Apply { revision: 5 })]);
    assert_eq!(o.verifying, None);
    assert_eq!(o.passed_gates, vec![(1, 0)]);
    healthy(&mut o, &mut e, "b", 23_000);
    assert_eq!(o.phase, OperationPhase::Succeeded);
}

#[test]
fn a_failed_analysis_rolls_the_fleet_back_naming_the_query_and_value() {
    let mut e = env(&["a", "b", "c"]);
    let mut o = analysed(&[&["a", "b"], &["c"]], 3, 0, 0);
    o.start(&mut e, 0);
    healthy(&mut o, &mut e, "a", 1_000);
    healthy(&mut o, &mut e, "b", 1_000);
    let step = measured(
        &mut o,
        &mut e,
        Verdict::Failed,
        "in b: `errors{region=\"west\"}` = 0.31, expected result < 0.05",
        2_000,
    );
    assert_eq!(o.phase, OperationPhase::RollingBack);
    let mut rolled: Vec<String> = sends(&step).into_iter().map(|(c, _)| c).collect();
    rolled.sort();
    assert_eq!(
        rolled,
        vec!["a".to_string(), "b".to_string()],
        "every updated context"
    );
    assert_eq!(o.contexts["c"].phase, ContextPhase::Skipped);
    assert_eq!(o.verifying, None);
    let why = o.failed_because.clone().unwrap_or_default();
    assert!(
        why.starts_with("analysis error-rate before wave 2 failed: in b: `errors{region=\"west\"}` = 0.31, expected result < 0.05 (measurement 1 of 3; 1 failed, 0 tolerated)"),
        "{why}"
    );
}

#[test]
fn an_inconclusive_analysis_waits_for_an_operator() {
    let mut e = env(&["a", "b"]);
    let mut o = analysed(&[&["a"], &["b"]], 2, 0, 0);
    o.start(&mut e, 0);
    healthy(&mut o, &mut e, "a", 1_000);
    let step = measured(
        &mut o,
        &mut e,
        Verdict::Inconclusive,
        "`errors`: no series",
        2_000,
    );
    assert!(sends(&step).is_empty());
    assert_eq!(o.verifying, None);
    assert_eq!(o.awaiting_approval.map(|a| (a.wave, a.gate)), Some((1, Some(0))));
    assert!(
        o.message.contains("was inconclusive: `errors`: no series"),
        "{}",
        o.message
    );
    // Ticks keep it waiting (no new measurement), until an operator passes it.
    o.on_tick(&mut e, 30_000);
    assert_eq!(o.verifying, None);
    let step = o.approve(&mut e, 1, 31_000).unwrap();
    assert_eq!(sends(&step), vec![("b".into(), Command::Apply { revision: 5 })]);
    assert!(
        o.message.contains("passed by an operator") || o.message.starts_with("wave 2"),
        "{}",
        o.message
    );
    assert_eq!(o.passed_gates, vec![(1, 0)]);

    // Nobody answers: the gate fails at the default deadline (1h) and onFailure applies.
    let mut e = env(&["a", "b"]);
    let mut o = analysed(&[&["a"], &["b"]], 2, 0, 0);
    o.start(&mut e, 0);
    healthy(&mut o, &mut e, "a", 1_000);
    measured(
        &mut o,
        &mut e,
        Verdict::Inconclusive,
        "Prometheus did not answer",
        2_000,
    );
    o.on_tick(&mut e, 3_601_999);
    assert_eq!(o.phase, OperationPhase::Running);
    o.on_tick(&mut e, 3_602_000);
    assert_eq!(o.phase, OperationPhase::RollingBack);
    assert!(
        o.message
            .starts_with("analysis error-rate before wave 2 was inconclusive and nobody decided within 1h"),
        "{}",
        o.message
    );
}

#[test]
fn a_restored_operation_keeps_its_measurements() {
    let mut e = env(&["a", "b"]);
    let mut o = analysed(&[&["a"], &["b"]], 3, 0, 0);
    o.start(&mut e, 0);
    healthy(&mut o, &mut e, "a", 1_000);
    measured(&mut o, &mut e, Verdict::Passed, "0.01", 2_000);
    // As stored and read back by a restarted coordinator.
    let mut o: Operation = serde_json::from_str(&serde_json::to_string(&o).unwrap()).unwrap();
    o.on_tick(&mut e, 9_000);
    let v = o.verifying.clone().expect("still measuring");
    assert_eq!((v.since, v.measurements.len()), (1_000, 1));
    measured(&mut o, &mut e, Verdict::Passed, "0.01", 12_000);
    let step = measured(&mut o, &mut e, Verdict::Passed, "0.01", 22_000);
    assert_eq!(sends(&step), vec![("b".into(), Command::Apply { revision: 5 })]);
}

/// Waves `waves` with an in-cluster canary of `steps`, and the analysis gate
/// `error-rate` (index 0, run only by steps) of one measurement.
fn canaried(waves: &[&[&str]], steps: Vec<crate::model::CanaryStepSpec>) -> Operation {
    let mut o = analysed(waves, 1, 0, 0);
    o.plan.gates[0].before.clear();
    o.plan.canary = steps;
    o
}

fn canary_report(o: &mut Operation, e: &mut FakeEnv, ctx: &str, k: usize, report: Report, now: u64) -> Step {
    o.on_report(e, ctx, Stage::Canary(k), report, now)
}

fn canary_healthy(o: &mut Operation, e: &mut FakeEnv, ctx: &str, k: usize, now: u64) -> Step {
    canary_report(o, e, ctx, k, Report::Accepted, now);
    canary_report(o, e, ctx, k, Report::Applied, now);
    canary_report(o, e, ctx, k, Report::Healthy, now)
}

fn step_measured(
    o: &mut Operation,
    e: &mut FakeEnv,
    wave: usize,
    k: usize,
    verdict: Verdict,
    at: Millis,
) -> Step {
    let m = Measurement {
        at,
        verdict,
        detail: "in b: `errors` = 0.3, expected result < 0.05".into(),
    };
    o.on_measurement(
        e,
        GateAt {
            wave,
            gate: 0,
            step: Some(k),
        },
        m,
        at,
    )
}

fn sorted_sends(step: &Step) -> Vec<(String, Command)> {
    let mut s = sends(step);
    s.sort_by(|x, y| x.0.cmp(&y.0));
    s
}

#[test]
fn an_in_cluster_canary_steps_in_step_across_a_wave_then_promotes() {
    use crate::model::CanaryStepSpec::{Approval, Gate, Pause, SetWeight};
    let mut e = env(&["a", "b", "c"]);
    let mut o = canaried(
        &[&["a", "b"], &["c"]],
        vec![
            SetWeight { weight: 20 },
            Pause {
                duration: Duration::from_secs(10),
            },
            Gate { gate: 0 },
            SetWeight { weight: 50 },
            Approval { deadline_ms: None },
        ],
    );
    let canary = |step, weight| Command::Canary {
        revision: 5,
        step,
        weight,
    };
    let step = o.start(&mut e, 0);
    assert_eq!(
        sorted_sends(&step),
        vec![("a".into(), canary(0, 20)), ("b".into(), canary(0, 20))]
    );
    assert!(sends(&canary_healthy(&mut o, &mut e, "a", 0, 100)).is_empty());
    assert_eq!(o.contexts["a"].message, "canary at 20%: healthy");
    assert_eq!(
        o.contexts["a"].phase,
        ContextPhase::Progressing,
        "not settled: the canary runs on"
    );
    // A late report of another step is ignored.
    canary_report(&mut o, &mut e, "b", 3, Report::Healthy, 150);
    assert_eq!(o.canary.map(|a| a.step), Some(0));
    canary_healthy(&mut o, &mut e, "b", 0, 200);
    assert_eq!(o.canary.map(|a| (a.step, a.since)), Some((1, 200)));
    assert!(
        o.message.contains("canary step 2 of 5 (pause 10s)"),
        "{}",
        o.message
    );
    assert!(o.verifying.is_none());
    o.on_tick(&mut e, 10_199);
    assert_eq!(o.canary.map(|a| a.step), Some(1), "the pause runs 10s");
    o.on_tick(&mut e, 10_200);
    let v = o.verifying.clone().expect("the step's gate measures");
    assert_eq!((v.wave, v.gate, v.step), (0, 0, Some(2)));
    // A measurement for the same gate between waves is not this one.
    measured(&mut o, &mut e, Verdict::Failed, "x", 10_300);
    assert_eq!(o.phase, OperationPhase::Running);
    let step = step_measured(&mut o, &mut e, 0, 2, Verdict::Passed, 10_400);
    assert_eq!(
        sorted_sends(&step),
        vec![("a".into(), canary(3, 50)), ("b".into(), canary(3, 50))]
    );
    assert_eq!(
        o.contexts["a"].canary.map(|k| (k.step, k.weight, k.ready)),
        Some((3, 50, false))
    );
    // After a reconnect the context is sent its current step again.
    assert_eq!(
        sends(&o.on_agent_online(&mut e, "a", 10_500)),
        vec![("a".into(), canary(3, 50))]
    );
    canary_healthy(&mut o, &mut e, "a", 3, 11_000);
    canary_healthy(&mut o, &mut e, "b", 3, 11_000);
    let waiting = o.awaiting_approval.expect("the approval step waits");
    assert_eq!((waiting.wave, waiting.step), (0, Some(4)));
    assert!(
        o.message.contains("convoy approve app1.ns1 --wave 1"),
        "{}",
        o.message
    );
    let step = o.approve(&mut e, 0, 12_000).expect("approvable");
    assert_eq!(
        sorted_sends(&step),
        vec![
            ("a".into(), Command::Apply { revision: 5 }),
            ("b".into(), Command::Apply { revision: 5 })
        ]
    );
    assert!(o.contexts["a"].canary.is_none());
    healthy(&mut o, &mut e, "a", 13_000);
    let step = healthy(&mut o, &mut e, "b", 13_000);
    assert_eq!(
        sends(&step),
        vec![("c".into(), canary(0, 20))],
        "wave 2 starts its own canary"
    );
    assert_eq!(o.canary.map(|a| (a.wave, a.step)), Some((1, 0)));
}

#[test]
fn a_failed_canary_gate_rolls_the_fleet_back_and_leaves_primaries_as_they_were() {
    use crate::model::CanaryStepSpec::{Gate, SetWeight};
    let mut e = env(&["a", "b", "c"]);
    let mut o = canaried(
        &[&["a"], &["b", "c"]],
        vec![SetWeight { weight: 10 }, Gate { gate: 0 }],
    );
    o.start(&mut e, 0);
    canary_healthy(&mut o, &mut e, "a", 0, 100);
    step_measured(&mut o, &mut e, 0, 1, Verdict::Passed, 200);
    healthy(&mut o, &mut e, "a", 300);
    assert_eq!(o.current_wave, 1);
    canary_healthy(&mut o, &mut e, "b", 0, 400);
    canary_healthy(&mut o, &mut e, "c", 0, 450);
    let step = step_measured(&mut o, &mut e, 1, 1, Verdict::Failed, 500);
    assert_eq!(o.phase, OperationPhase::RollingBack);
    assert!(
        o.message.contains("analysis error-rate at canary step 2 of 2 (gate error-rate) in wave 2 failed: in b: `errors` = 0.3"),
        "{}",
        o.message
    );
    // The promoted context and both idle canaries go back to revision 4: a rollback to
    // the revision the primaries run, which removes the canaries.
    assert_eq!(
        sorted_sends(&step),
        vec![
            (
                "a".into(),
                Command::Rollback {
                    revision: 6,
                    target: 4
                }
            ),
            (
                "b".into(),
                Command::Rollback {
                    revision: 6,
                    target: 4
                }
            ),
            (
                "c".into(),
                Command::Rollback {
                    revision: 6,
                    target: 4
                }
            ),
        ]
    );
    assert!(o.contexts["b"].message.contains("rolling back to revision 4"));
}

#[test]
fn a_failing_canary_stops_the_others_and_a_new_context_skips_the_canary() {
    use crate::model::CanaryStepSpec::SetWeight;
    let mut e = env(&["a", "b", "n"]);
    let mut p = plan(&[&["a", "b", "n"]]);
    p.canary = vec![SetWeight { weight: 25 }];
    let mut contexts = initial_contexts(&p, &|c| (c != "n").then_some(4), 0);
    let mut o = op(p);
    std::mem::swap(&mut o.contexts, &mut contexts);
    let step = o.start(&mut e, 0);
    let canary = Command::Canary {
        revision: 5,
        step: 0,
        weight: 25,
    };
    assert_eq!(
        sorted_sends(&step),
        vec![
            ("a".into(), canary.clone()),
            ("b".into(), canary.clone()),
            // New to the release: no primary to run a canary beside.
            ("n".into(), Command::Apply { revision: 5 }),
        ]
    );
    canary_report(&mut o, &mut e, "a", 0, Report::Accepted, 10);
    let step = canary_report(
        &mut o,
        &mut e,
        "b",
        0,
        Report::Failed {
            reason: "CrashLoopBackOff".into(),
            message: "deployment/ns1/web-canary: pod web-canary-1 back-off".into(),
        },
        20,
    );
    assert_eq!(o.phase, OperationPhase::RollingBack);
    assert_eq!(
        o.contexts["b"].message, "rolling back to revision 4",
        "b's canary is removed by the rollback"
    );
    let got = sorted_sends(&step);
    assert!(got.contains(&(
        "a".into(),
        Command::Abort {
            revision: 5,
            stage: Stage::Canary(0)
        }
    )));
    assert!(got.contains(&(
        "b".into(),
        Command::Rollback {
            revision: 6,
            target: 4
        }
    )));
    // a's aborted canary is then rolled back too.
    let step = canary_report(&mut o, &mut e, "a", 0, Report::Aborted, 30);
    assert_eq!(
        sends(&step),
        vec![(
            "a".into(),
            Command::Rollback {
                revision: 6,
                target: 4
            }
        )]
    );
}

#[test]
fn a_canary_approval_refused_or_unanswered_fails_the_gate() {
    use crate::model::CanaryStepSpec::{Approval, SetWeight};
    let mut e = env(&["a"]);
    let mut o = canaried(
        &[&["a"]],
        vec![
            SetWeight { weight: 10 },
            Approval {
                deadline_ms: Some(60_000),
            },
        ],
    );
    o.start(&mut e, 0);
    canary_healthy(&mut o, &mut e, "a", 0, 1_000);
    assert!(o.awaiting_approval.is_some());
    let mut refused = o.clone();
    refused
        .refuse(&mut e, 0, "error budget spent", 2_000)
        .expect("refusable");
    assert_eq!(refused.phase, OperationPhase::RollingBack);
    assert!(
        refused
            .message
            .contains("canary step 2 of 2 (approval within 1m) refused: error budget spent"),
        "{}",
        refused.message
    );
    o.on_tick(&mut e, 60_999);
    assert_eq!(o.phase, OperationPhase::Running);
    o.on_tick(&mut e, 61_000);
    assert_eq!(o.phase, OperationPhase::RollingBack);
    assert!(
        o.message
            .contains("nobody approved canary step 2 of 2 (approval within 1m) in wave 1 within 1m"),
        "{}",
        o.message
    );
}

#[test]
fn a_blue_green_stages_every_context_then_switches_and_a_failed_gate_rolls_back() {
    use crate::model::CanaryStepSpec;
    let mut e = env(&["a", "b", "n"]);
    let mut o = canaried(
        &[&["a"], &["b", "n"]],
        vec![CanaryStepSpec::Stage, CanaryStepSpec::Gate { gate: 0 }],
    );
    o.plan.blue_green = Some(crate::model::BlueGreenPlan {
        preview_service: true,
        keep_previous_for: Duration::from_secs(600),
    });
    o.contexts.get_mut("n").unwrap().previous_revision = None;
    let stage = Command::Canary {
        revision: 5,
        step: 0,
        weight: 100,
    };
    assert_eq!(sends(&o.start(&mut e, 0)), vec![("a".into(), stage.clone())]);
    canary_healthy(&mut o, &mut e, "a", 0, 100);
    assert_eq!(o.contexts["a"].message, "new slot: healthy");
    assert!(o.verifying.is_some(), "the gate runs before the switch");
    let step = step_measured(&mut o, &mut e, 0, 1, Verdict::Passed, 200);
    assert_eq!(sends(&step), vec![("a".into(), Command::Switch { revision: 5 })]);
    assert!(
        o.message.contains("switching the Services to the new slot"),
        "{}",
        o.message
    );
    // A reconnect re-sends the switch.
    assert_eq!(
        sends(&o.on_agent_online(&mut e, "a", 250)),
        vec![("a".into(), Command::Switch { revision: 5 })]
    );
    let step = healthy(&mut o, &mut e, "a", 300);
    // A context new to the release is staged too: its Services get a slot at the switch.
    assert_eq!(
        sorted_sends(&step),
        vec![("b".into(), stage.clone()), ("n".into(), stage)]
    );
    canary_healthy(&mut o, &mut e, "b", 0, 400);
    canary_healthy(&mut o, &mut e, "n", 0, 400);
    let step = step_measured(&mut o, &mut e, 1, 1, Verdict::Failed, 500);
    assert_eq!(o.phase, OperationPhase::RollingBack);
    assert_eq!(
        sorted_sends(&step),
        vec![
            (
                "a".into(),
                Command::Rollback {
                    revision: 6,
                    target: 4
                }
            ),
            (
                "b".into(),
                Command::Rollback {
                    revision: 6,
                    target: 4
                }
            ),
        ]
    );
    assert!(
        o.contexts["n"]
            .message
            .contains("no previous revision here to roll back to"),
        "{}",
        o.contexts["n"].message
    );
}

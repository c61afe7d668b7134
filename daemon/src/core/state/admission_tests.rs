//! The admission decisions in memory: each is asserted on what it returns, before (and
//! without) applying it, and one applied submit, control and cancel check that applying
//! changes the state as the decision said.

use super::admission::{NewOperation, Refused, RollbackRequest};
use super::*;
use crate::prepare::{ApplyOptions, ReleaseMeta};
use crate::store::MemoryStore;

const REGISTRY: &str = "contexts:\n  - {name: dev-a, region: r1, env: dev, cloud: gcp, clusterName: a}\n  - {name: dev-b, region: r1, env: dev, cloud: gcp, clusterName: b}\n";
const RELEASE: &str = "web.ns1";
const NOW: Millis = 1_000_000;

/// A core on a memory store, with contexts dev-a and dev-b and no agent connected.
fn core() -> Core {
    let registry = convoy_release::Registry::parse(REGISTRY, "contexts.yaml").expect("registry");
    let store = StateStore::new(Box::new(MemoryStore::default()));
    Core::restore(store, &CoreSettings::for_tests(&registry))
        .expect("an empty store restores")
        .0
}

fn principal(name: &str, role: Role) -> Principal {
    Principal {
        name: name.into(),
        role,
        scope: None,
    }
}

/// A release rendered for `contexts` (in one wave) as its revision `revision`, the
/// first there: what the core finds current, so it starts without rendering again.
fn prepared(contexts: &[&str], revision: u64) -> Prepared {
    Prepared {
        meta: ReleaseMeta {
            name: RELEASE.into(),
            namespace: "ns1".into(),
            environment: "dev".into(),
        },
        plan: Plan {
            progress_deadline: Duration::from_secs(60),
            min_ready_window: Duration::ZERO,
            ..Plan::for_tests(&[contexts])
        },
        manifests: BTreeMap::new(),
        hooks: BTreeMap::new(),
        chart_name: "web".into(),
        chart_version: "1.0.0".into(),
        values_digest: format!("values-{revision}"),
        images: Vec::new(),
        values: Default::default(),
        secret_versions: Vec::new(),
        options: ApplyOptions::default(),
        masker: Default::default(),
        facts: contexts
            .iter()
            .map(|c| (c.to_string(), RenderFacts::of_revision(revision, false, None)))
            .collect(),
    }
}

fn inputs() -> SubmitInputs {
    SubmitInputs {
        release_yaml: "kind: Release\n".into(),
        source_name: "web.yaml".into(),
        values_files: Vec::new(),
        chart_archive: b"chart".to_vec(),
        chart_digest: String::new(),
        chart_origin: String::new(),
        values_from: Vec::new(),
        allow_mass_deletion: false,
    }
}

fn decide_submit(
    core: &Core,
    who: &Principal,
    contexts: &[&str],
    revision: u64,
) -> Result<NewOperation, Refused> {
    let seq = core.upcoming_seq();
    core.decide_submit(who, prepared(contexts, revision), inputs(), "ship it", NOW, seq)
}

/// Submits (decided and applied) revision `revision` to both contexts; its id.
fn submitted(core: &mut Core, who: &Principal, revision: u64) -> String {
    let accepted = core
        .submit(who, prepared(&["dev-a", "dev-b"], revision), inputs(), "ship it")
        .expect("submit accepted");
    assert_eq!(accepted.revision, revision);
    accepted.operation_id
}

/// Dana's revision 1 runs (its agents are away) and her revision 2 waits behind it.
fn running_and_queued() -> (Core, Principal, String, String) {
    let mut core = core();
    let dana = principal("dana", Role::Deployer);
    let running = submitted(&mut core, &dana, 1);
    let queued = submitted(&mut core, &dana, 2);
    (core, dana, running, queued)
}

fn queue(core: &Core) -> Vec<String> {
    core.releases[RELEASE].queue.iter().cloned().collect()
}

fn rollback_to(to_revision: u64, preempt: bool) -> RollbackRequest<'static> {
    RollbackRequest {
        release: RELEASE,
        to_revision,
        reason: "the new one breaks checkout",
        preempt,
        only: &[],
    }
}

/// A release on both contexts with this history, each revision `(kind, rollback_to,
/// phase)` numbered from 1, nothing queued.
fn with_history(core: &mut Core, history: &[(OperationKind, Option<u64>, OperationPhase)]) {
    let fleet = vec!["dev-a".to_string(), "dev-b".to_string()];
    let revisions: Vec<RevisionRecord> = history
        .iter()
        .zip(1..)
        .map(|(&(kind, rollback_to, phase), number)| RevisionRecord {
            release: RELEASE.into(),
            number,
            kind,
            rollback_to,
            operation_id: format!("op-old-{number}"),
            phase,
            contexts: fleet.clone(),
            values_digest: format!("values-{}", rollback_to.unwrap_or(number)),
            ..RevisionRecord::rollback_shipping(None)
        })
        .collect();
    let record = ReleaseRecord {
        name: RELEASE.into(),
        namespace: "ns1".into(),
        environment: "dev".into(),
        latest_revision: revisions.len() as u64,
        deployed: BTreeMap::new(),
        contexts: fleet,
        applied: BTreeMap::new(),
    };
    core.releases.insert(
        RELEASE.into(),
        ReleaseState {
            record,
            queue: VecDeque::new(),
            last_op: None,
            op_keys: HashMap::new(),
        },
    );
    core.revisions.insert(RELEASE.into(), revisions);
}

#[test]
fn a_viewers_submit_is_refused_as_denied_and_audited_as_refused() {
    let core = core();
    let refused = decide_submit(&core, &principal("vic", Role::Viewer), &["dev-a"], 1)
        .err()
        .expect("a viewer may not submit");
    assert!(
        matches!(refused.error, CoreError::Denied(_)),
        "{:?}",
        refused.error
    );
    let audit = refused.audit.expect("a role refusal is audited");
    assert_eq!((audit.who.as_str(), audit.action.as_str()), ("vic", "submit"));
    assert_eq!(audit.release, RELEASE);
    assert_eq!(audit.outcome, format!("refused: {}", refused.error));
    assert!(audit.outcome.contains("viewer"), "{}", audit.outcome);
    assert!(!core.releases.contains_key(RELEASE), "deciding records nothing");
}

#[test]
fn a_submit_naming_an_unknown_context_is_refused_naming_it() {
    let core = core();
    let refused = decide_submit(&core, &principal("dana", Role::Deployer), &["dev-a", "prod-x"], 1)
        .err()
        .expect("prod-x is not in the registry");
    let CoreError::Invalid(message) = &refused.error else {
        panic!("{:?}", refused.error);
    };
    assert!(
        message.starts_with("web.yaml: unknown context(s) [\"prod-x\"]"),
        "{message}"
    );
    assert!(message.contains("\"dev-a\", \"dev-b\""), "{message}");
    assert!(refused.audit.is_none(), "an invalid request is not audited");
}

#[test]
fn a_first_submit_takes_revision_one_and_starts_at_once() {
    let core = core();
    let seq = core.upcoming_seq();
    let n = decide_submit(&core, &principal("dana", Role::Deployer), &["dev-a"], 1).expect("accepted");
    assert_eq!(n.release.latest_revision, 1);
    assert_eq!(n.release.contexts, ["dev-a"]);
    assert_eq!(n.revision.number, 1);
    assert_eq!(n.operation.id, format!("op-{seq:06}"));
    assert_eq!((n.ahead, n.next), (0, false), "nothing runs: it starts at once");
    let kept = n.inputs.as_ref().expect("a submit keeps its inputs");
    assert!(kept.chart_kept, "a chart without a digest is not stored apart");
    assert!(n.prepared.is_some());
}

#[test]
fn an_accepted_submit_takes_the_next_revision_and_queues_behind_the_running_operation() {
    let mut core = core();
    let dana = principal("dana", Role::Deployer);
    let running = submitted(&mut core, &dana, 1);
    assert_eq!(core.ops[&running].phase, OperationPhase::Running);
    let seq = core.upcoming_seq();
    let n = decide_submit(&core, &dana, &["dev-a", "dev-b"], 2).expect("accepted");
    assert_eq!(n.release.latest_revision, 2);
    assert_eq!(n.revision.number, 2);
    assert_eq!(n.revision.kind, OperationKind::Deploy);
    assert_eq!(n.revision.submitted_by, "dana");
    assert_eq!(n.revision.operation_id, n.operation.id);
    assert_eq!(n.operation.id, format!("op-{seq:06}"));
    assert_eq!(n.operation.revision, 2);
    assert_eq!(n.operation.phase, OperationPhase::Queued);
    assert_eq!(
        (n.ahead, n.next),
        (1, false),
        "at the back, behind the running one"
    );
    assert!(n.abort.is_none());
    assert_eq!(n.audit.outcome, "accepted");
    assert_eq!(
        (n.audit.revision, n.audit.op.as_deref()),
        (Some(2), Some(n.operation.id.as_str()))
    );
    // Deciding changed nothing.
    assert_eq!(core.releases[RELEASE].record.latest_revision, 1);
    assert_eq!(queue(&core), [running]);
    assert_eq!(core.revisions[RELEASE].len(), 1);
}

#[test]
fn applying_a_submit_records_the_revision_and_queues_the_operation() {
    let mut core = core();
    let dana = principal("dana", Role::Deployer);
    let running = submitted(&mut core, &dana, 1);
    let n = decide_submit(&core, &dana, &["dev-a", "dev-b"], 2).expect("accepted");
    let (seq, id) = (n.seq, n.operation.id.clone());
    let accepted = core.apply_new_operation(n);
    assert_eq!(
        (accepted.revision, accepted.operation_id.as_str()),
        (2, id.as_str())
    );
    assert_eq!(
        (accepted.phase, accepted.queue_position),
        (OperationPhase::Queued, 1)
    );
    assert_eq!(queue(&core), [running, id.clone()]);
    assert_eq!(core.ops[&id].phase, OperationPhase::Queued);
    assert_eq!(core.releases[RELEASE].record.latest_revision, 2);
    let numbers: Vec<u64> = core.revisions[RELEASE].iter().map(|r| r.number).collect();
    assert_eq!(numbers, [1, 2]);
    // Written in the pending commit: the revision, its inputs and the audit entry,
    // numbered right after the operation.
    assert!(core.batch.writes(Table::Revisions, &revision_key(RELEASE, 2)));
    assert!(core.batch.writes(Table::Audit, &format!("{:020}", seq + 1)));
}

#[test]
fn a_refused_submit_is_audited_when_applied_and_records_nothing_else() {
    let mut core = core();
    let seq = core.upcoming_seq();
    let err = core
        .submit(
            &principal("vic", Role::Viewer),
            prepared(&["dev-a"], 1),
            inputs(),
            "try",
        )
        .expect_err("a viewer may not submit");
    assert!(matches!(err, CoreError::Denied(_)));
    assert!(core.batch.writes(Table::Audit, &format!("{seq:020}")));
    assert!(!core.releases.contains_key(RELEASE));
    assert!(!core.batch.writes(Table::Releases, RELEASE));
}

#[test]
fn a_rollback_goes_back_to_the_newest_succeeded_revision_that_differs_from_what_runs() {
    use OperationKind::{Deploy, Rollback};
    use OperationPhase::{Failed, Succeeded};
    let mut core = core();
    // 4 rolled back to 2 after 3 failed: 2's objects run, so "the previous one" is 1.
    with_history(
        &mut core,
        &[
            (Deploy, None, Succeeded),
            (Deploy, None, Succeeded),
            (Deploy, None, Failed),
            (Rollback, Some(2), Succeeded),
        ],
    );
    let seq = core.upcoming_seq();
    let n = core
        .decide_rollback(
            &principal("olga", Role::Operator),
            &rollback_to(0, false),
            NOW,
            seq,
        )
        .expect("accepted");
    assert_eq!(n.revision.rollback_to, Some(1));
    assert_eq!(
        n.revision.values_digest, "values-1",
        "it ships revision 1's objects"
    );
    assert_eq!((n.revision.number, n.revision.kind), (5, Rollback));
    assert_eq!(n.operation.rollback_to, Some(1));
    assert_eq!(n.operation.plan.waves, [["dev-a", "dev-b"]]);
    assert_eq!(n.release.latest_revision, 5);
    assert_eq!(n.audit.outcome, "accepted: to revision 1");
    assert!(
        n.inputs.is_none() && n.prepared.is_none(),
        "a rollback renders nothing"
    );
    assert_eq!((n.ahead, n.next, n.abort), (0, false, None));
}

#[test]
fn a_rollback_without_an_earlier_successful_revision_is_refused() {
    let mut core = core();
    with_history(
        &mut core,
        &[
            (OperationKind::Deploy, None, OperationPhase::Failed),
            (OperationKind::Deploy, None, OperationPhase::Succeeded),
        ],
    );
    let refused = core
        .decide_rollback(&principal("olga", Role::Operator), &rollback_to(0, false), NOW, 1)
        .err()
        .expect("nothing to go back to");
    assert_eq!(
        refused.error.to_string(),
        "web.ns1 has no earlier successful revision to roll back to; name one with --to-revision"
    );
    assert!(refused.audit.is_none());
    let refused = core
        .decide_rollback(&principal("olga", Role::Operator), &rollback_to(7, false), NOW, 1)
        .err()
        .expect("no revision 7");
    assert_eq!(refused.error.to_string(), "web.ns1 has no revision 7");
}

#[test]
fn a_deployers_rollback_is_refused_and_audited() {
    let mut core = core();
    with_history(
        &mut core,
        &[(OperationKind::Deploy, None, OperationPhase::Succeeded)],
    );
    let refused = core
        .decide_rollback(&principal("dana", Role::Deployer), &rollback_to(1, false), NOW, 1)
        .err()
        .expect("a deployer may not roll back");
    assert!(matches!(refused.error, CoreError::Denied(_)));
    let audit = refused.audit.expect("audited");
    assert_eq!((audit.action.as_str(), audit.revision), ("rollback", None));
    assert!(audit.outcome.starts_with("refused: "), "{}", audit.outcome);
}

#[test]
fn a_preempting_rollback_aborts_the_running_operation_and_goes_next() {
    let (core, _, running, _) = running_and_queued();
    let n = core
        .decide_rollback(&principal("olga", Role::Operator), &rollback_to(1, true), NOW, 99)
        .expect("accepted");
    assert_eq!(n.operation.id, "op-000099");
    let abort = n.abort.as_ref().expect("the running operation is aborted");
    assert_eq!(abort.operation, running);
    assert_eq!(abort.message, "preempted by rollback op-000099");
    assert_eq!((n.next, n.ahead), (true, 1), "next, ahead of the queued submit");
    assert_eq!(
        core.ops[&running].phase,
        OperationPhase::Running,
        "deciding aborts nothing"
    );
}

#[test]
fn control_of_a_finished_operation_is_refused() {
    let mut core = core();
    let olga = principal("olga", Role::Operator);
    let id = submitted(&mut core, &principal("dana", Role::Deployer), 1);
    // Running, not paused: a resume would change nothing.
    let refused = core
        .decide_control(&olga, RELEASE, Control::Resume, "", NOW)
        .err()
        .expect("nothing to resume");
    assert_eq!(
        refused.error.to_string(),
        format!("{id} is Running; cannot resume it")
    );
    assert!(refused.audit.is_none());
    core.control(&olga, RELEASE, Control::Abort, "stop")
        .expect("abort accepted");
    assert_eq!(core.ops[&id].phase, OperationPhase::Aborted);
    let refused = core
        .decide_control(&olga, RELEASE, Control::Pause, "", NOW)
        .err()
        .expect("it finished");
    assert_eq!(
        refused.error.to_string(),
        "web.ns1 has no running operation to pause"
    );
}

#[test]
fn a_pause_is_decided_on_a_copy_and_applied_to_the_running_operation() {
    let mut core = core();
    let id = submitted(&mut core, &principal("dana", Role::Deployer), 1);
    let refused = core
        .decide_control(
            &principal("dana", Role::Deployer),
            RELEASE,
            Control::Pause,
            "why",
            NOW,
        )
        .err()
        .expect("a deployer may not pause");
    let audit = refused.audit.expect("audited");
    assert_eq!((audit.action.as_str(), audit.reason.as_str()), ("pause", "why"));
    let c = core
        .decide_control(
            &principal("olga", Role::Operator),
            RELEASE,
            Control::Pause,
            "look",
            NOW,
        )
        .expect("accepted");
    assert_eq!(c.operation.phase, OperationPhase::Paused);
    assert!(c.step.persist);
    assert!(c.release_writes.is_empty(), "a pause takes no revision");
    assert_eq!(
        (c.audit.outcome.as_str(), c.audit.op.as_deref()),
        ("accepted", Some(id.as_str()))
    );
    assert_eq!(
        core.ops[&id].phase,
        OperationPhase::Running,
        "deciding pauses nothing"
    );
    let answer = core.apply_control(c);
    assert_eq!(answer.phase, OperationPhase::Paused);
    assert_eq!(core.ops[&id].phase, OperationPhase::Paused);
}

#[test]
fn cancel_of_a_queued_operation_yields_it_cancelled_and_applying_takes_it_off_the_queue() {
    let (mut core, dana, running, queued) = running_and_queued();
    let c = core
        .decide_cancel(&dana, RELEASE, &queued, "wrong values", NOW)
        .expect("her own queued submit");
    assert_eq!(c.operation.id, queued);
    assert_eq!(c.operation.phase, OperationPhase::Cancelled);
    assert_eq!(c.operation.finished_at, Some(NOW));
    assert_eq!(c.operation.message, "cancelled by dana before it started");
    assert_eq!(
        (c.audit.action.as_str(), c.audit.outcome.as_str()),
        ("cancel", "accepted")
    );
    assert_eq!(
        queue(&core),
        [running.clone(), queued.clone()],
        "deciding removes nothing"
    );
    let answer = core.apply_cancel(c);
    assert_eq!(answer.phase, OperationPhase::Cancelled);
    assert_eq!(queue(&core), [running]);
}

#[test]
fn cancel_of_another_users_or_a_running_operation_is_refused() {
    let (core, dana, running, queued) = running_and_queued();
    let refused = core
        .decide_cancel(&principal("erin", Role::Deployer), RELEASE, &queued, "", NOW)
        .err()
        .expect("not erin's");
    assert!(matches!(refused.error, CoreError::Denied(_)));
    let audit = refused.audit.expect("audited");
    assert_eq!(
        (audit.revision, audit.op.as_deref()),
        (Some(2), Some(queued.as_str()))
    );
    assert!(audit.outcome.starts_with("refused: "), "{}", audit.outcome);
    let refused = core
        .decide_cancel(&dana, RELEASE, &running, "", NOW)
        .err()
        .expect("it runs");
    assert_eq!(
        refused.error.to_string(),
        format!("{running} is already running; abort it instead")
    );
    assert!(refused.audit.is_none());
}

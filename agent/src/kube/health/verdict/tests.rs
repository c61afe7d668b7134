use super::*;

fn web() -> ObjectRef {
    ObjectRef {
        api_version: "apps/v1".into(),
        kind: "Deployment".into(),
        namespace: Some("ns1".into()),
        name: "web".into(),
    }
}

fn policy(deadline: u64, window: u64) -> HealthPolicy {
    HealthPolicy {
        progress_deadline: Duration::from_secs(deadline),
        min_ready_window: Duration::from_secs(window),
    }
}

/// A Deployment of `desired` replicas: `current` exist, `updated` new, `available`.
fn deploy(desired: u32, current: u32, updated: u32, available: u32) -> WorkloadSnapshot {
    WorkloadSnapshot {
        object: web(),
        kind: WorkloadKind::Deployment,
        exists: true,
        generation: 2,
        observed_generation: 2,
        desired,
        current,
        updated,
        ready: available,
        available,
        revision_settled: true,
        stalled: None,
        job: None,
    }
}

fn pod(ready: bool, restarts: u32, waiting: Option<(&str, &str)>) -> PodSnapshot {
    PodSnapshot {
        uid: "u1".into(),
        name: "ns1/web-abc".into(),
        workload: web(),
        ready,
        restarts,
        waiting: waiting.map(|(r, m)| (r.to_string(), m.to_string())),
    }
}

fn snap(w: WorkloadSnapshot, pods: Vec<PodSnapshot>) -> Snapshot {
    Snapshot {
        workloads: vec![w],
        new_pods: pods,
    }
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn failed_with(v: Verdict) -> FailureReason {
    match v {
        Verdict::Failed(f) => f.reason,
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[test]
fn one_replica_max_unavailable_one_is_not_healthy_until_the_new_pod_is_available() {
    let mut j = Judge::new(policy(600, 0));
    // The old pod is gone, the new one is not available yet: "0 of 1" is not enough,
    // though `helm --wait` (minimum available = 1 - maxUnavailable = 0) would pass it.
    let (p, v) = j.observe(secs(1), &snap(deploy(1, 1, 1, 0), vec![pod(false, 0, None)]));
    assert_eq!(v, Verdict::Pending);
    let p = p.expect("first observation reports progress");
    assert_eq!((p.ready, p.desired), (0, 1));
    assert_eq!(p.changed[0].reason, "0 of 1 updated replicas available");
    let (_, v) = j.observe(secs(2), &snap(deploy(1, 1, 1, 1), vec![pod(true, 0, None)]));
    assert_eq!(v, Verdict::Healthy);
}

#[test]
fn old_replicas_and_unobserved_generations_hold_the_rollout() {
    let mut j = Judge::new(policy(600, 0));
    let mut w = deploy(2, 2, 2, 2);
    w.observed_generation = 1;
    assert_eq!(j.observe(secs(0), &snap(w, vec![])).1, Verdict::Pending);
    let (p, v) = j.observe(secs(1), &snap(deploy(2, 3, 2, 2), vec![]));
    assert_eq!(v, Verdict::Pending);
    assert_eq!(
        p.unwrap().changed[0].reason,
        "waiting for 1 old replicas to terminate"
    );
    assert_eq!(
        j.observe(secs(2), &snap(deploy(2, 2, 2, 2), vec![])).1,
        Verdict::Healthy
    );
}

#[test]
fn crash_loop_of_a_new_pod_fails_fast_with_its_message() {
    let mut j = Judge::new(policy(600, 30));
    let (_, v) = j.observe(
        secs(3),
        &snap(
            deploy(1, 1, 1, 0),
            vec![pod(
                false,
                2,
                Some(("CrashLoopBackOff", "back-off 10s restarting")),
            )],
        ),
    );
    match v {
        Verdict::Failed(f) => {
            assert_eq!(f.reason, FailureReason::CrashLoopBackOff);
            assert!(f.message.contains("ns1/web-abc"), "{}", f.message);
            assert!(f.message.contains("back-off 10s restarting"), "{}", f.message);
            assert_eq!(f.object, Some(web()));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn image_and_config_errors_fail_fast_with_their_own_reason() {
    for (reason, want) in [
        ("ImagePullBackOff", FailureReason::ImagePullBackOff),
        ("ErrImagePull", FailureReason::ErrImagePull),
        (
            "CreateContainerConfigError",
            FailureReason::CreateContainerConfigError,
        ),
    ] {
        let mut j = Judge::new(policy(600, 30));
        let s = snap(deploy(1, 1, 1, 0), vec![pod(false, 0, Some((reason, "m")))]);
        assert_eq!(failed_with(j.observe(secs(1), &s).1), want);
    }
    // A pod merely starting is not a failure.
    let mut j = Judge::new(policy(600, 30));
    let s = snap(
        deploy(1, 1, 1, 0),
        vec![pod(false, 0, Some(("ContainerCreating", "")))],
    );
    assert_eq!(j.observe(secs(1), &s).1, Verdict::Pending);
}

#[test]
fn flapping_pod_fails_the_ready_window() {
    let mut j = Judge::new(policy(600, 20));
    assert_eq!(
        j.observe(secs(2), &snap(deploy(1, 1, 1, 1), vec![pod(true, 0, None)]))
            .1,
        Verdict::Pending
    );
    let (p, v) = j.observe(secs(5), &snap(deploy(1, 1, 1, 1), vec![pod(true, 0, None)]));
    assert_eq!(v, Verdict::Pending);
    assert_eq!(p.unwrap().changed[0].reason, "holding ready window (3s of 20s)");
    // It crashes: restarted, waiting in CrashLoopBackOff. The window verdict wins.
    let s = snap(
        deploy(1, 1, 1, 0),
        vec![pod(false, 1, Some(("CrashLoopBackOff", "back-off")))],
    );
    match j.observe(secs(7), &s).1 {
        Verdict::Failed(f) => {
            assert_eq!(f.reason, FailureReason::RestartedInReadyWindow);
            assert!(f.message.contains("restarted 1 time(s)"), "{}", f.message);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn readiness_loss_without_restart_fails_the_window() {
    let mut j = Judge::new(policy(600, 20));
    j.observe(secs(1), &snap(deploy(2, 2, 2, 2), vec![]));
    let v = j.observe(secs(4), &snap(deploy(2, 2, 2, 1), vec![])).1;
    assert_eq!(failed_with(v), FailureReason::RestartedInReadyWindow);
}

#[test]
fn healthy_after_the_window_holds() {
    let mut j = Judge::new(policy(600, 10));
    let s = snap(deploy(1, 1, 1, 1), vec![pod(true, 3, None)]);
    assert_eq!(j.observe(secs(1), &s).1, Verdict::Pending);
    assert_eq!(j.next_deadline(), secs(11));
    // Restarts from before healthy began do not count against the window.
    assert_eq!(j.observe(secs(6), &s).1, Verdict::Pending);
    assert_eq!(j.observe(secs(11), &s).1, Verdict::Healthy);
}

#[test]
fn no_progress_for_the_deadline_fails_but_progress_resets_it() {
    let mut j = Judge::new(policy(10, 0));
    let s = |avail| snap(deploy(3, 3, 3, avail), vec![]);
    assert_eq!(j.observe(secs(0), &s(0)).1, Verdict::Pending);
    assert_eq!(j.observe(secs(8), &s(1)).1, Verdict::Pending);
    assert_eq!(j.observe(secs(17), &s(1)).1, Verdict::Pending);
    match j.observe(secs(18), &s(1)).1 {
        Verdict::Failed(f) => {
            assert_eq!(f.reason, FailureReason::ProgressDeadlineExceeded);
            assert!(
                f.message.contains("1 of 3 updated replicas available"),
                "{}",
                f.message
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn controller_progress_deadline_fails() {
    let mut j = Judge::new(policy(600, 0));
    let mut w = deploy(1, 1, 1, 0);
    w.stalled = Some("ReplicaSet \"web-1\" has timed out progressing.".into());
    assert_eq!(
        failed_with(j.observe(secs(1), &snap(w, vec![])).1),
        FailureReason::ProgressDeadlineExceeded
    );
}

#[test]
fn statefulset_waits_for_the_update_revision() {
    let mut j = Judge::new(policy(600, 0));
    let mut w = deploy(2, 2, 2, 2);
    w.kind = WorkloadKind::StatefulSet;
    w.revision_settled = false;
    assert_eq!(j.observe(secs(0), &snap(w.clone(), vec![])).1, Verdict::Pending);
    w.revision_settled = true;
    assert_eq!(j.observe(secs(1), &snap(w, vec![])).1, Verdict::Healthy);
}

#[test]
fn jobs_complete_or_fail() {
    let job = |state| WorkloadSnapshot {
        kind: WorkloadKind::Job,
        desired: 1,
        job: Some(state),
        ..deploy(1, 0, 0, 0)
    };
    let mut j = Judge::new(policy(600, 0));
    assert_eq!(
        j.observe(secs(0), &snap(job(JobState::Running), vec![])).1,
        Verdict::Pending
    );
    assert_eq!(
        j.observe(secs(1), &snap(job(JobState::Complete), vec![])).1,
        Verdict::Healthy
    );
    let mut j = Judge::new(policy(600, 0));
    let v = j
        .observe(
            secs(1),
            &snap(job(JobState::Failed("BackoffLimitExceeded".into())), vec![]),
        )
        .1;
    assert_eq!(failed_with(v), FailureReason::JobFailed);
}

#[test]
fn progress_is_reported_only_when_it_changes() {
    let mut j = Judge::new(policy(600, 0));
    let s = snap(deploy(2, 2, 2, 1), vec![]);
    assert!(j.observe(secs(0), &s).0.is_some());
    assert!(j.observe(secs(1), &s).0.is_none());
    let (p, _) = j.observe(secs(2), &snap(deploy(2, 2, 2, 2), vec![]));
    assert_eq!(p.unwrap().ready, 2);
}

/// Right after a rollback is applied, before the deployment controller has observed it,
/// the pods read are the crash-looping revision's: no verdict on them. Once the new
/// generation is observed, a crash loop among the new pods still fails fast.
#[test]
fn pods_of_an_unobserved_spec_are_not_judged() {
    let mut j = Judge::new(policy(60, 0));
    let mut w = deploy(1, 2, 0, 0);
    w.generation = 3;
    w.observed_generation = 2;
    let crashing = pod(false, 4, Some(("CrashLoopBackOff", "back-off 40s restarting")));
    let (_, v) = j.observe(secs(0), &snap(w.clone(), vec![crashing.clone()]));
    assert!(matches!(v, Verdict::Pending), "{v:?}");
    w.observed_generation = 3;
    let (_, v) = j.observe(secs(1), &snap(w, vec![crashing]));
    assert_eq!(failed_with(v), FailureReason::CrashLoopBackOff);
}

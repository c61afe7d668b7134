//! The simulated cluster's timelines under paused tokio time: every expectation is an
//! exact instant, and a test that simulates minutes runs in milliseconds.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::backend::{
    ApplyRequest, Backend, FailureReason, HealthOutcome, HealthPolicy, Manifest, ObjectAction, ObjectRef,
    OpRef, ProgressUpdate,
};
use crate::sim::{SimBackend, SimConfig};

const RELEASE: &str = "app1.ns1";

fn op(revision: u64) -> OpRef {
    OpRef {
        release: RELEASE.into(),
        revision,
        operation_id: format!("op-{revision}"),
    }
}

fn policy(deadline_s: u64, window_s: u64) -> HealthPolicy {
    HealthPolicy {
        progress_deadline: Duration::from_secs(deadline_s),
        min_ready_window: Duration::from_secs(window_s),
    }
}

fn deployment(name: &str, replicas: u32, behavior: &str, image: &str) -> Manifest {
    Manifest {
        source: format!("app1/templates/{name}.yaml"),
        content: format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\nspec:\n  replicas: {replicas}\n  template:\n    metadata:\n      annotations:\n        sim.convoy.dev/behavior: \"{behavior}\"\n    spec:\n      containers:\n        - name: app\n          image: {image}\n"
        ),
    }
}

fn config_map(name: &str, value: &str) -> Manifest {
    Manifest {
        source: format!("app1/templates/{name}.yaml"),
        content: format!(
            "{{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{{\"name\":\"{name}\"}},\"data\":{{\"k\":\"{value}\"}}}}"
        ),
    }
}

fn request(revision: u64, manifests: Vec<Manifest>) -> ApplyRequest {
    ApplyRequest {
        op: op(revision),
        namespace: "ns1".into(),
        manifests,
        health: policy(600, 5),
        force_conflicts: false,
        adopt: false,
        force_roll: false,
        chart: "app1-1.0.0".into(),
        hooks: Vec::new(),
        allow_mass_deletion: false,
        secret_digests: Default::default(),
        blue_green: None,
    }
}

fn obj(kind: &str, name: &str) -> ObjectRef {
    ObjectRef {
        api_version: if kind == "Deployment" { "apps/v1" } else { "v1" }.into(),
        kind: kind.into(),
        namespace: Some("ns1".into()),
        name: name.into(),
    }
}

/// Watches `revision` to the end; returns the outcome, when it settled (from the
/// call), and every progress update.
async fn watch(
    sim: &SimBackend,
    revision: u64,
    health: HealthPolicy,
) -> (HealthOutcome, Duration, Vec<ProgressUpdate>) {
    let (tx, mut rx) = mpsc::channel(1024);
    let start = Instant::now();
    let outcome = sim
        .watch_health(&op(revision), health, tx, CancellationToken::new())
        .await;
    let took = start.elapsed();
    let mut updates = Vec::new();
    while let Ok(u) = rx.try_recv() {
        updates.push(u);
    }
    (outcome, took, updates)
}

fn failure(outcome: HealthOutcome) -> crate::backend::Failure {
    match outcome {
        HealthOutcome::Failed(f) => f,
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn healthy_rollout_reports_progress_and_holds_the_window() {
    let sim = SimBackend::default();
    let applied = sim
        .apply(&request(
            1,
            vec![
                deployment("web", 3, "healthy,after=2s", "web:1"),
                config_map("cfg", "a"),
            ],
        ))
        .await
        .unwrap();
    let actions: Vec<_> = applied
        .iter()
        .map(|r| (r.object.kind.as_str(), r.action))
        .collect();
    // Configuration before workloads.
    assert_eq!(
        actions,
        [
            ("ConfigMap", ObjectAction::Created),
            ("Deployment", ObjectAction::Created)
        ]
    );

    let (outcome, took, updates) = watch(&sim, 1, policy(600, 5)).await;
    assert_eq!(
        outcome,
        HealthOutcome::Healthy {
            elapsed: Duration::from_secs(7)
        }
    );
    assert_eq!(took, Duration::from_secs(7), "ready at 2s, then a 5s window");
    let totals: Vec<(u32, u32)> = updates.iter().map(|u| (u.ready, u.desired)).collect();
    assert_eq!(totals, [(0, 3), (3, 3), (3, 3)]);
    let reasons: Vec<&str> = updates.iter().map(|u| u.changed[0].reason.as_str()).collect();
    assert_eq!(
        reasons,
        [
            "progressing",
            "holding ready window (0s of 5s)",
            "holding ready window (5s of 5s)"
        ]
    );
    assert_eq!(
        sim.deployed().await.unwrap()[0],
        crate::backend::DeployedRevision {
            release: RELEASE.into(),
            revision: 1,
            healthy: true,
            kept: vec![1],
            slot: None,
            switched: false,
        }
    );
}

#[tokio::test(start_paused = true)]
async fn rolling_update_progresses_batch_by_batch() {
    let sim = SimBackend::default();
    sim.apply(&request(
        1,
        vec![deployment("web", 4, "healthy,after=1s", "web:1")],
    ))
    .await
    .unwrap();
    let applied = sim
        .apply(&request(
            2,
            vec![deployment("web", 4, "healthy,after=1s", "web:2")],
        ))
        .await
        .unwrap();
    assert_eq!(applied[0].action, ObjectAction::Configured);
    let (outcome, took, updates) = watch(&sim, 2, policy(600, 0)).await;
    assert!(matches!(outcome, HealthOutcome::Healthy { .. }), "{outcome:?}");
    // maxSurge 25% of 4: one pod at a time, each ready 1s after it starts.
    assert_eq!(took, Duration::from_secs(4));
    let ready: Vec<u32> = updates.iter().map(|u| u.ready).collect();
    assert_eq!(ready, [0, 1, 2, 3, 4]);
}

#[tokio::test(start_paused = true)]
async fn crash_loop_fails_fast_with_the_pod_named() {
    let sim = SimBackend::default();
    sim.apply(&request(
        1,
        vec![deployment("web", 2, "crashloop,after=2s", "web:1")],
    ))
    .await
    .unwrap();
    let (outcome, took, _) = watch(&sim, 1, policy(600, 30)).await;
    assert_eq!(took, Duration::from_secs(2));
    let f = failure(outcome);
    assert_eq!(f.reason, FailureReason::CrashLoopBackOff);
    assert_eq!(f.object, Some(obj("Deployment", "web")));
    assert!(
        f.message.contains("deployment/ns1/web: pod web-") && f.message.contains("container app"),
        "{}",
        f.message
    );
    assert!(!sim.deployed().await.unwrap()[0].healthy);
}

#[tokio::test(start_paused = true)]
async fn flapping_fails_the_ready_window_but_passes_a_short_one() {
    let sim = SimBackend::default();
    sim.apply(&request(
        1,
        vec![deployment("web", 1, "flapping,ready=1s,after=3s", "web:1")],
    ))
    .await
    .unwrap();
    let (outcome, took, _) = watch(&sim, 1, policy(600, 10)).await;
    // Ready at 1s, crashes at 4s: 3s into the 10s window.
    assert_eq!(took, Duration::from_secs(4));
    let f = failure(outcome);
    assert_eq!(f.reason, FailureReason::RestartedInReadyWindow);
    assert!(
        f.message.contains("3s into the 10s ready window"),
        "{}",
        f.message
    );

    let sim = SimBackend::default();
    sim.apply(&request(
        1,
        vec![deployment("web", 1, "flapping,ready=1s,after=3s", "web:1")],
    ))
    .await
    .unwrap();
    let (outcome, took, _) = watch(&sim, 1, policy(600, 2)).await;
    assert!(matches!(outcome, HealthOutcome::Healthy { .. }), "{outcome:?}");
    assert_eq!(took, Duration::from_secs(3));
}

#[tokio::test(start_paused = true)]
async fn never_ready_hits_the_progress_deadline() {
    let sim = SimBackend::default();
    sim.apply(&request(1, vec![deployment("web", 2, "never-ready", "web:1")]))
        .await
        .unwrap();
    let (outcome, took, _) = watch(&sim, 1, policy(45, 5)).await;
    assert_eq!(took, Duration::from_secs(45));
    let f = failure(outcome);
    assert_eq!(f.reason, FailureReason::ProgressDeadlineExceeded);
    assert!(f.message.contains("0 of 2 pods ready"), "{}", f.message);

    // Slower than the deadline is a failure too.
    let sim = SimBackend::default();
    sim.apply(&request(1, vec![deployment("web", 1, "slow,after=2m", "web:1")]))
        .await
        .unwrap();
    let (outcome, took, _) = watch(&sim, 1, policy(60, 5)).await;
    assert_eq!(failure(outcome).reason, FailureReason::ProgressDeadlineExceeded);
    assert_eq!(took, Duration::from_secs(60));
}

#[tokio::test(start_paused = true)]
async fn pull_and_config_errors_fail_fast() {
    for (behavior, reason, at) in [
        ("image-pull-error", FailureReason::ImagePullBackOff, 1),
        ("config-error", FailureReason::CreateContainerConfigError, 0),
    ] {
        let sim = SimBackend::default();
        sim.apply(&request(
            1,
            vec![deployment("web", 1, behavior, "registry.example/web:nope")],
        ))
        .await
        .unwrap();
        let (outcome, took, _) = watch(&sim, 1, policy(600, 5)).await;
        let f = failure(outcome);
        assert_eq!((f.reason, took), (reason, Duration::from_secs(at)), "{behavior}");
        if reason == FailureReason::ImagePullBackOff {
            assert!(f.message.contains("registry.example/web:nope"), "{}", f.message);
        }
    }
}

#[tokio::test(start_paused = true)]
async fn jobs_complete_or_fail() {
    let job = |behavior: &str| Manifest {
        source: "job.yaml".into(),
        content: format!(
            "apiVersion: batch/v1\nkind: Job\nmetadata: {{name: migrate}}\nspec:\n  completions: 2\n  template:\n    metadata:\n      annotations: {{sim.convoy.dev/behavior: \"{behavior}\"}}\n    spec:\n      restartPolicy: Never\n      containers: [{{name: m, image: m:1}}]\n"
        ),
    };
    let sim = SimBackend::default();
    sim.apply(&request(1, vec![job("healthy,after=1s")]))
        .await
        .unwrap();
    let (outcome, took, _) = watch(&sim, 1, policy(600, 0)).await;
    assert!(matches!(outcome, HealthOutcome::Healthy { .. }), "{outcome:?}");
    assert_eq!(
        took,
        Duration::from_secs(2),
        "parallelism 1: one completion after the other"
    );

    let sim = SimBackend::default();
    sim.apply(&request(1, vec![job("crashloop,after=1s")]))
        .await
        .unwrap();
    let (outcome, _, _) = watch(&sim, 1, policy(600, 0)).await;
    assert_eq!(failure(outcome).reason, FailureReason::JobFailed);
}

#[tokio::test(start_paused = true)]
async fn apply_reports_unchanged_configured_and_pruned() {
    let sim = SimBackend::default();
    sim.apply(&request(
        1,
        vec![
            deployment("web", 1, "healthy", "web:1"),
            config_map("a", "1"),
            config_map("b", "1"),
        ],
    ))
    .await
    .unwrap();
    let r = sim
        .apply(&request(
            2,
            vec![deployment("web", 1, "healthy", "web:1"), config_map("a", "2")],
        ))
        .await
        .unwrap();
    let got: Vec<_> = r.iter().map(|r| (r.object.name.as_str(), r.action)).collect();
    assert_eq!(
        got,
        [
            ("a", ObjectAction::Configured),
            ("web", ObjectAction::Unchanged),
            ("b", ObjectAction::Pruned)
        ]
    );
    assert!(sim.object(&obj("ConfigMap", "b")).is_none());
    let labels = &sim.object(&obj("ConfigMap", "a")).unwrap()["metadata"]["labels"];
    assert_eq!(labels["convoy.dev/release"], RELEASE);
}

#[tokio::test(start_paused = true)]
async fn rollback_restores_objects_from_history_and_refuses_unknown_revisions() {
    let sim = SimBackend::new(SimConfig {
        history_limit: 2,
        ..SimConfig::default()
    });
    sim.apply(&request(
        1,
        vec![deployment("web", 2, "healthy", "web:1"), config_map("cfg", "one")],
    ))
    .await
    .unwrap();
    sim.apply(&request(
        2,
        vec![deployment("web", 3, "healthy", "web:2"), config_map("extra", "x")],
    ))
    .await
    .unwrap();

    let r = sim.rollback(&op(3), 1).await.unwrap();
    let got: Vec<_> = r.iter().map(|r| (r.object.name.as_str(), r.action)).collect();
    assert_eq!(
        got,
        [
            ("cfg", ObjectAction::Created),
            ("web", ObjectAction::Configured),
            ("extra", ObjectAction::Pruned)
        ]
    );
    let web = sim.object(&obj("Deployment", "web")).unwrap();
    assert_eq!(web["spec"]["replicas"], 2);
    assert_eq!(web["spec"]["template"]["spec"]["containers"][0]["image"], "web:1");
    assert_eq!(sim.object(&obj("ConfigMap", "cfg")).unwrap()["data"]["k"], "one");
    let (outcome, _, _) = watch(&sim, 3, policy(600, 1)).await;
    assert!(matches!(outcome, HealthOutcome::Healthy { .. }), "{outcome:?}");

    // History keeps 2: revision 1 is gone now (2 and 3 remain).
    assert_eq!(sim.deployed().await.unwrap()[0].kept, [2, 3]);
    let f = sim.rollback(&op(4), 1).await.unwrap_err();
    assert_eq!(f.reason, FailureReason::RevisionNotInHistory);
    assert!(f.message.contains("kept: [2, 3]"), "{}", f.message);
}

#[tokio::test(start_paused = true)]
async fn dry_run_changes_nothing_and_reports_changed_values() {
    let sim = SimBackend::default();
    sim.apply(&request(
        1,
        vec![deployment("web", 1, "healthy", "web:1"), config_map("cfg", "one")],
    ))
    .await
    .unwrap();
    let r = sim
        .dry_run(&request(
            2,
            vec![
                deployment("web", 1, "healthy", "web:2"),
                config_map("new", "x"),
                config_map("cfg", "one"),
            ],
        ))
        .await
        .unwrap();
    let summary = |i: usize| -> Vec<_> {
        r[i].changes
            .iter()
            .map(|c| (c.path.as_str(), c.before.clone(), c.after.clone(), c.masked))
            .collect()
    };
    // ConfigMaps come before Deployments in apply order.
    assert_eq!(
        (r[0].action, r[1].action),
        (ObjectAction::Created, ObjectAction::Unchanged)
    );
    assert!(summary(0).is_empty() && summary(1).is_empty());
    assert_eq!(r[2].action, ObjectAction::Configured);
    assert_eq!(
        summary(2),
        [(
            "spec.template.spec.containers[0].image",
            Some(serde_json::json!("web:1")),
            Some(serde_json::json!("web:2")),
            false
        )]
    );
    assert!(sim.object(&obj("ConfigMap", "new")).is_none());
    assert_eq!(sim.deployed().await.unwrap()[0].revision, 1);
}

#[tokio::test(start_paused = true)]
async fn dry_run_masks_a_secrets_values() {
    let secret = |tier: &str, password: &str| Manifest {
        source: "app1/templates/secret.yaml".into(),
        content: format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  labels: {{tier: \"{tier}\"}}\nstringData:\n  password: \"{password}\"\n"
        ),
    };
    let sim = SimBackend::default();
    sim.apply(&request(1, vec![secret("1", "old-pass")]))
        .await
        .unwrap();
    let r = sim
        .dry_run(&request(2, vec![secret("2", "new-pass")]))
        .await
        .unwrap();
    assert_eq!(r[0].action, ObjectAction::Configured);
    let changes = &r[0].changes;
    assert_eq!(changes.len(), 2, "{changes:?}");
    assert_eq!(changes[0].path, "metadata.labels.tier");
    assert_eq!(
        (&changes[0].before, &changes[0].after, changes[0].masked),
        (
            &Some(serde_json::json!("1")),
            &Some(serde_json::json!("2")),
            false
        )
    );
    assert_eq!(changes[1].path, "stringData.password");
    assert!(changes[1].masked);
    assert_eq!((&changes[1].before, &changes[1].after), (&None, &None));
}

#[tokio::test(start_paused = true)]
async fn another_releases_object_is_refused_unless_adopted() {
    let sim = SimBackend::default();
    sim.apply(&request(1, vec![config_map("shared", "1")]))
        .await
        .unwrap();
    let mut other = request(1, vec![config_map("shared", "2")]);
    other.op.release = "app2.ns1".into();
    let f = sim.apply(&other).await.unwrap_err();
    assert_eq!(f.reason, FailureReason::OwnedByAnotherRelease);
    assert!(f.message.contains("belongs to release app1.ns1"), "{}", f.message);
    let dry = sim.dry_run(&other).await.unwrap();
    assert_eq!(dry[0].action, ObjectAction::Refused);
    other.adopt = true;
    assert_eq!(
        sim.apply(&other).await.unwrap()[0].action,
        ObjectAction::Configured
    );
    assert_eq!(sim.objects_of("app2.ns1"), [obj("ConfigMap", "shared")]);
}

#[tokio::test(start_paused = true)]
async fn bad_manifests_are_refused_without_echoing_content() {
    let sim = SimBackend::default();
    for (content, want) in [
        (
            "kind: Secret\nmetadata: {name: s}\nstringData: {password: hunter2}\n",
            "missing or empty `apiVersion`",
        ),
        (
            "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {password: hunter2\n",
            "not a valid YAML",
        ),
        ("- hunter2\n", "expected one object"),
    ] {
        let req = request(
            1,
            vec![Manifest {
                source: "app1/templates/secret.yaml".into(),
                content: content.into(),
            }],
        );
        let f = sim.apply(&req).await.unwrap_err();
        assert_eq!(f.reason, FailureReason::ApplyRefused);
        assert!(
            f.message.starts_with("app1/templates/secret.yaml: ") && f.message.contains(want),
            "{}",
            f.message
        );
        assert!(!f.message.contains("hunter2"), "{}", f.message);
    }
    let f = sim
        .apply(&request(1, vec![deployment("web", 1, "sleepy", "web:1")]))
        .await
        .unwrap_err();
    assert!(
        f.message.contains("unknown mode") && f.object.is_some(),
        "{}",
        f.message
    );
    let twice = request(1, vec![config_map("a", "1"), config_map("a", "2")]);
    assert!(
        sim.apply(&twice)
            .await
            .unwrap_err()
            .message
            .contains("also defined in")
    );
    assert!(
        sim.deployed().await.unwrap().is_empty(),
        "a refused apply leaves nothing"
    );
}

#[tokio::test(start_paused = true)]
async fn lock_is_exclusive_per_release_and_abort_cancels_a_watch() {
    let sim = SimBackend::default();
    let token = sim.lock(&op(1)).await.unwrap();
    assert_eq!(
        sim.lock(&op(2)).await.unwrap_err().reason,
        FailureReason::LockHeld
    );
    let mut other = op(2);
    other.release = "other".into();
    sim.lock(&other).await.unwrap();
    sim.unlock(token).await.unwrap();
    sim.lock(&op(2)).await.unwrap();

    sim.apply(&request(1, vec![deployment("web", 1, "never-ready", "web:1")]))
        .await
        .unwrap();
    let cancel = CancellationToken::new();
    let (tx, _rx) = mpsc::channel(16);
    let canceller = {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(3)).await;
            cancel.cancel();
        })
    };
    let start = Instant::now();
    assert_eq!(
        sim.watch_health(&op(1), policy(600, 5), tx, cancel).await,
        HealthOutcome::Cancelled
    );
    assert_eq!(start.elapsed(), Duration::from_secs(3));
    canceller.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn force_roll_restarts_an_unchanged_workload_and_latency_applies() {
    let sim = SimBackend::new(SimConfig {
        apply_latency: Duration::from_millis(250),
        ..SimConfig::default()
    });
    let start = Instant::now();
    sim.apply(&request(1, vec![deployment("web", 1, "healthy", "web:1")]))
        .await
        .unwrap();
    assert_eq!(start.elapsed(), Duration::from_millis(250));
    let mut again = request(2, vec![deployment("web", 1, "healthy", "web:1")]);
    assert_eq!(
        sim.apply(&again).await.unwrap()[0].action,
        ObjectAction::Unchanged
    );
    again.op = op(3);
    again.force_roll = true;
    assert_eq!(
        sim.apply(&again).await.unwrap()[0].action,
        ObjectAction::Configured
    );
}

/// A thousand clusters in one process: each rollout is a few timers, no thread and
/// no polling loop, so they all settle together at the simulated instant.
#[tokio::test(start_paused = true)]
async fn a_thousand_clusters_roll_out_concurrently() {
    let mut tasks = tokio::task::JoinSet::new();
    let start = Instant::now();
    for _ in 0..1000 {
        tasks.spawn(async move {
            let sim = SimBackend::default();
            sim.apply(&request(
                1,
                vec![deployment("web", 3, "healthy,after=2s", "web:1")],
            ))
            .await
            .unwrap();
            watch(&sim, 1, policy(600, 5)).await.0
        });
    }
    let mut healthy = 0;
    while let Some(outcome) = tasks.join_next().await {
        healthy += usize::from(matches!(outcome.unwrap(), HealthOutcome::Healthy { .. }));
    }
    assert_eq!(healthy, 1000);
    assert_eq!(start.elapsed(), Duration::from_secs(7));
}

fn hook_manifest(kind: &str, name: &str, annotations: &str, behavior: &str) -> Manifest {
    let (api, template) = if kind == "Job" {
        (
            "batch/v1",
            format!(
                "spec: {{template: {{metadata: {{annotations: {{sim.convoy.dev/behavior: \"{behavior}\"}}}}}}}}"
            ),
        )
    } else {
        ("v1", String::new())
    };
    let own = if kind == "Pod" {
        format!(", sim.convoy.dev/behavior: \"{behavior}\"")
    } else {
        String::new()
    };
    Manifest {
        source: format!("app1/templates/{name}.yaml"),
        content: format!(
            "apiVersion: {api}\nkind: {kind}\nmetadata: {{name: {name}, annotations: {{{annotations}{own}}}}}\n{template}\n"
        ),
    }
}

async fn run_hook(sim: &SimBackend, m: Manifest, deadline_s: u64) -> (crate::backend::HookOutcome, Duration) {
    let hooks = crate::hooks::parse(&[m]).unwrap();
    let start = Instant::now();
    let outcome = sim
        .run_hook(
            &op(1),
            "ns1",
            &hooks[0],
            crate::hooks::HookEvent::PreInstall,
            Duration::from_secs(deadline_s),
            CancellationToken::new(),
        )
        .await;
    (outcome, start.elapsed())
}

#[tokio::test(start_paused = true)]
async fn hooks_follow_their_behaviour_and_delete_policy() {
    use crate::backend::HookOutcome;
    let sim = SimBackend::default();
    let ann = "helm.sh/hook: pre-install";
    let (outcome, took) = run_hook(&sim, hook_manifest("Job", "migrate", ann, "succeed,after=3s"), 60).await;
    assert_eq!((outcome, took), (HookOutcome::Succeeded, Duration::from_secs(3)));

    let (outcome, took) = run_hook(&sim, hook_manifest("Pod", "probe", ann, "fail,after=2s"), 60).await;
    assert_eq!(took, Duration::from_secs(2));
    let HookOutcome::Failed(f) = outcome else {
        panic!("expected a failure, got {outcome:?}")
    };
    assert_eq!(f.reason, FailureReason::HookFailed);
    assert!(
        f.message
            .starts_with("hook pre-install pod/probe: pod/ns1/probe failed"),
        "{}",
        f.message
    );

    // Other kinds are done once created; a slow Job runs into the deadline.
    let (outcome, took) = run_hook(&sim, hook_manifest("ConfigMap", "cfg", ann, ""), 60).await;
    assert_eq!((outcome, took), (HookOutcome::Succeeded, Duration::ZERO));
    let (outcome, took) = run_hook(&sim, hook_manifest("Job", "slow", ann, "slow,after=2m"), 30).await;
    assert_eq!(took, Duration::from_secs(30));
    assert!(matches!(outcome, HookOutcome::Failed(f) if f.message.contains("progress deadline (30s)")));

    // Without before-hook-creation, a leftover object of the same name is an error.
    let keep = "helm.sh/hook: pre-install, helm.sh/hook-delete-policy: hook-failed";
    let (outcome, _) = run_hook(&sim, hook_manifest("Job", "migrate", keep, "succeed"), 60).await;
    assert!(
        matches!(&outcome, HookOutcome::Failed(f) if f.message.contains("already exists")),
        "{outcome:?}"
    );
    let names: Vec<String> = sim.hook_objects(RELEASE).into_iter().map(|o| o.name).collect();
    // By identity: batch/v1 Jobs before v1 kinds.
    assert_eq!(names, ["migrate", "slow", "cfg", "probe"]);
    assert_eq!(sim.hooks_run(RELEASE).len(), 4, "a refused hook did not run");
}

#[tokio::test(start_paused = true)]
async fn the_history_says_healthy_only_once_the_outcome_is_recorded() {
    async fn healthy(sim: &SimBackend) -> bool {
        sim.deployed().await.unwrap()[0].healthy
    }
    let sim = SimBackend::default();
    sim.apply(&request(
        1,
        vec![deployment("web", 1, "healthy,after=1s", "web:1")],
    ))
    .await
    .unwrap();
    // Watching alone judges the rollout and records nothing: the runtime runs the post
    // hooks before it records.
    let (tx, _rx) = mpsc::channel(64);
    let outcome = sim
        .watch_rollout(&op(1), policy(60, 1), tx, CancellationToken::new())
        .await;
    assert!(matches!(outcome, HealthOutcome::Healthy { .. }), "{outcome:?}");
    assert!(!healthy(&sim).await, "healthy before the outcome was recorded");
    sim.record_outcome(&op(1), true).await.unwrap();
    assert!(healthy(&sim).await);
    // A post hook that fails afterwards takes it back.
    sim.record_outcome(&op(1), false).await.unwrap();
    assert!(!healthy(&sim).await);

    // `watch_health` is both, for callers without post hooks; re-applying the same
    // revision (a retried command) starts it unhealthy again.
    sim.apply(&request(
        1,
        vec![deployment("web", 1, "healthy,after=1s", "web:1")],
    ))
    .await
    .unwrap();
    assert!(!healthy(&sim).await);
    let (outcome, _, _) = watch(&sim, 1, policy(60, 1)).await;
    assert!(matches!(outcome, HealthOutcome::Healthy { .. }), "{outcome:?}");
    assert!(healthy(&sim).await);
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_apply_or_rollback_stops_during_its_latency_and_changes_nothing() {
    use crate::backend::ChangeError;
    let sim = SimBackend::new(SimConfig {
        apply_latency: Duration::from_secs(30),
        ..SimConfig::default()
    });
    sim.apply(&request(1, vec![config_map("cfg", "a")]))
        .await
        .unwrap();
    let cancel = CancellationToken::new();
    let stopper = {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            cancel.cancel();
        })
    };
    let start = Instant::now();
    let r = sim
        .apply_until(&request(2, vec![config_map("cfg", "b")]), cancel.clone())
        .await;
    assert_eq!(r, Err(ChangeError::Cancelled));
    assert_eq!(start.elapsed(), Duration::from_secs(1));
    stopper.await.unwrap();
    let r = sim.rollback_until(&op(3), 1, cancel).await;
    assert_eq!(r, Err(ChangeError::Cancelled));
    // Revision 1 still applied, alone in the history.
    assert_eq!(sim.object(&obj("ConfigMap", "cfg")).unwrap()["data"]["k"], "a");
    let deployed = sim.deployed().await.unwrap();
    assert_eq!((deployed[0].revision, deployed[0].kept.clone()), (1, vec![1]));
}

// ---------------------------------------------------------------- canary

/// `web` with `replicas`, mounting the ConfigMap `web-conf` and reading `ext-conf`
/// (not in the render) from the environment.
fn web_with_conf(replicas: u32, behavior: &str, image: &str) -> Manifest {
    Manifest {
        source: "app1/templates/web.yaml".into(),
        content: format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web, labels: {{app: web}}}}\nspec:\n  replicas: {replicas}\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata:\n      labels: {{app: web}}\n      annotations: {{sim.convoy.dev/behavior: \"{behavior}\"}}\n    spec:\n      volumes: [{{name: conf, configMap: {{name: web-conf}}}}]\n      containers:\n        - name: app\n          image: {image}\n          envFrom: [{{configMapRef: {{name: ext-conf}}}}]\n"
        ),
    }
}

fn canary_request(
    revision: u64,
    step: u32,
    weight: u32,
    manifests: Vec<Manifest>,
) -> crate::backend::CanaryRequest {
    let mut apply = request(revision, manifests);
    apply.op.operation_id = format!("op-{revision}~canary-{step}");
    crate::backend::CanaryRequest {
        apply,
        weight_percent: weight,
    }
}

async fn watch_canary(
    sim: &SimBackend,
    req: &crate::backend::CanaryRequest,
    applied: &[crate::backend::ObjectResult],
) -> (HealthOutcome, Duration) {
    let (tx, _rx) = mpsc::channel(1024);
    let workloads: Vec<ObjectRef> = applied
        .iter()
        .filter(|r| r.object.kind == "Deployment" && r.action != ObjectAction::Pruned)
        .map(|r| r.object.clone())
        .collect();
    let start = Instant::now();
    let outcome = sim
        .watch_canary(
            &req.apply.op,
            &workloads,
            req.apply.health,
            tx,
            CancellationToken::new(),
        )
        .await;
    (outcome, start.elapsed())
}

fn actions_of(results: &[crate::backend::ObjectResult]) -> Vec<(String, ObjectAction)> {
    results
        .iter()
        .map(|r| (r.object.name.clone(), r.action))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_canary_step_runs_beside_the_primary_rescales_and_is_removed() {
    let sim = SimBackend::default();
    sim.apply(&request(
        1,
        vec![
            web_with_conf(4, "healthy,after=1s", "web:1"),
            config_map("web-conf", "old"),
        ],
    ))
    .await
    .unwrap();
    assert!(matches!(
        watch(&sim, 1, policy(600, 5)).await.0,
        HealthOutcome::Healthy { .. }
    ));
    let primary = sim.object(&obj("Deployment", "web")).unwrap();
    let live_conf = sim.object(&obj("ConfigMap", "web-conf")).unwrap();

    let revision2 = || {
        vec![
            web_with_conf(4, "healthy,after=2s", "web:2"),
            config_map("web-conf", "new"),
        ]
    };
    let step1 = canary_request(2, 1, 25, revision2());
    let applied = sim
        .apply_canary_until(&step1, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(
        actions_of(&applied),
        [
            ("web-conf-canary".to_string(), ObjectAction::Created),
            ("web-canary".to_string(), ObjectAction::Created)
        ]
    );
    let canary = sim.object(&obj("Deployment", "web-canary")).unwrap();
    assert_eq!(canary["spec"]["replicas"], 2, "ceil(4 * 25 / 75)");
    assert_eq!(canary["metadata"]["labels"]["convoy.dev/track"], "canary");
    assert_eq!(canary["metadata"]["labels"]["convoy.dev/release"], RELEASE);
    assert_eq!(
        canary["spec"]["selector"]["matchLabels"]["convoy.dev/track"],
        "canary"
    );
    assert_eq!(
        canary["spec"]["template"]["metadata"]["labels"]["convoy.dev/track"],
        "canary"
    );
    let pod = &canary["spec"]["template"]["spec"];
    assert_eq!(pod["volumes"][0]["configMap"]["name"], "web-conf-canary");
    assert_eq!(
        pod["containers"][0]["envFrom"][0]["configMapRef"]["name"],
        "ext-conf"
    );
    assert_eq!(pod["containers"][0]["image"], "web:2");
    let conf = sim.object(&obj("ConfigMap", "web-conf-canary")).unwrap();
    assert_eq!(conf["data"]["k"], "new");
    // The primary and its configuration are untouched; the history still says 1.
    assert_eq!(sim.object(&obj("Deployment", "web")).unwrap(), primary);
    assert_eq!(sim.object(&obj("ConfigMap", "web-conf")).unwrap(), live_conf);
    let deployed = sim.deployed().await.unwrap();
    assert_eq!(
        (
            deployed[0].revision,
            deployed[0].healthy,
            deployed[0].kept.clone()
        ),
        (1, true, vec![1])
    );
    let (outcome, took) = watch_canary(&sim, &step1, &applied).await;
    assert!(matches!(outcome, HealthOutcome::Healthy { .. }), "{outcome:?}");
    assert_eq!(took, Duration::from_secs(7), "ready at 2s, then the 5s window");

    // A heavier step rescales the canary (its configuration unchanged).
    let step2 = canary_request(2, 2, 50, revision2());
    let applied = sim
        .apply_canary_until(&step2, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(
        actions_of(&applied),
        [
            ("web-conf-canary".to_string(), ObjectAction::Unchanged),
            ("web-canary".to_string(), ObjectAction::Configured)
        ]
    );
    assert_eq!(
        sim.object(&obj("Deployment", "web-canary")).unwrap()["spec"]["replicas"],
        4
    );
    assert!(matches!(
        watch_canary(&sim, &step2, &applied).await.0,
        HealthOutcome::Healthy { .. }
    ));
    assert_eq!(sim.object(&obj("Deployment", "web")).unwrap(), primary);

    // Removal: every canary object, workloads first; the primary stays.
    let removed = sim.remove_canary(RELEASE, "ns1").await.unwrap();
    assert_eq!(
        actions_of(&removed),
        [
            ("web-canary".to_string(), ObjectAction::Pruned),
            ("web-conf-canary".to_string(), ObjectAction::Pruned)
        ]
    );
    assert_eq!(
        sim.objects_of(RELEASE),
        [obj("Deployment", "web"), obj("ConfigMap", "web-conf")]
    );
    assert!(sim.remove_canary(RELEASE, "ns1").await.unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_crashing_canary_fails_naming_the_canary_and_the_primary_is_untouched() {
    let sim = SimBackend::default();
    sim.apply(&request(
        1,
        vec![deployment("web", 3, "healthy,after=1s", "web:1")],
    ))
    .await
    .unwrap();
    assert!(matches!(
        watch(&sim, 1, policy(600, 0)).await.0,
        HealthOutcome::Healthy { .. }
    ));
    let step = canary_request(
        2,
        1,
        10,
        vec![deployment("web", 3, "crashloop,after=2s", "web:2")],
    );
    let applied = sim
        .apply_canary_until(&step, CancellationToken::new())
        .await
        .unwrap();
    let (outcome, took) = watch_canary(&sim, &step, &applied).await;
    assert_eq!(took, Duration::from_secs(2));
    let f = failure(outcome);
    assert_eq!(f.reason, FailureReason::CrashLoopBackOff);
    assert_eq!(f.object, Some(obj("Deployment", "web-canary")));
    assert!(f.message.contains("web-canary"), "{}", f.message);
    let deployed = sim.deployed().await.unwrap();
    assert_eq!((deployed[0].revision, deployed[0].healthy), (1, true));
}

#[tokio::test(start_paused = true)]
async fn a_canary_step_deletes_the_canary_objects_it_no_longer_has_and_deploys_keep_them() {
    let sim = SimBackend::default();
    let both = vec![
        deployment("web", 2, "healthy", "web:1"),
        deployment("api", 2, "healthy", "api:1"),
    ];
    sim.apply(&request(1, both.clone())).await.unwrap();
    sim.apply_canary_until(&canary_request(2, 1, 50, both.clone()), CancellationToken::new())
        .await
        .unwrap();
    let applied = sim
        .apply_canary_until(
            &canary_request(2, 2, 50, vec![deployment("web", 2, "healthy", "web:2")]),
            CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(
        actions_of(&applied),
        [
            ("web-canary".to_string(), ObjectAction::Configured),
            ("api-canary".to_string(), ObjectAction::Pruned)
        ]
    );
    // A deploy neither prunes nor lists the canary objects (the runtime removes them
    // once the deploy is healthy).
    let applied = sim.apply(&request(2, both)).await.unwrap();
    assert!(
        applied.iter().all(|r| !r.object.name.ends_with("-canary")),
        "{applied:?}"
    );
    assert!(sim.object(&obj("Deployment", "web-canary")).is_some());
    // Another release cannot take a canary object.
    let mut other = request(1, vec![deployment("web-canary", 1, "healthy", "x:1")]);
    other.op.release = "other.ns1".into();
    let f = sim.apply(&other).await.unwrap_err();
    assert_eq!(f.reason, FailureReason::OwnedByAnotherRelease);
}

#[tokio::test(start_paused = true)]
async fn a_canary_needs_a_deployment_and_a_weight_from_1_to_99() {
    let sim = SimBackend::default();
    let f = sim
        .apply_canary_until(
            &canary_request(1, 1, 10, vec![config_map("cfg", "a")]),
            CancellationToken::new(),
        )
        .await
        .unwrap_err()
        .into_failure();
    assert_eq!(f.reason, FailureReason::NoCanaryWorkload);
    let f = sim
        .apply_canary_until(
            &canary_request(1, 1, 100, vec![deployment("web", 1, "healthy", "web:1")]),
            CancellationToken::new(),
        )
        .await
        .unwrap_err()
        .into_failure();
    assert_eq!(f.reason, FailureReason::Internal);
    assert!(sim.objects_of(RELEASE).is_empty());
    assert!(sim.deployed().await.unwrap().is_empty());
}

// ---------------------------------------------------------------- blue/green

fn web_service() -> Manifest {
    Manifest {
        source: "app1/templates/svc.yaml".into(),
        content: "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {selector: {app: web}, ports: [{port: 80}]}\n"
            .into(),
    }
}

fn bg_request(revision: u64, image: &str, conf: &str) -> ApplyRequest {
    let mut req = request(
        revision,
        vec![
            web_with_conf(2, "healthy,after=1s", image),
            config_map("web-conf", conf),
            web_service(),
        ],
    );
    req.blue_green = Some(crate::backend::BlueGreen {
        preview_service: true,
    });
    req
}

fn selector_slot(sim: &SimBackend, name: &str) -> serde_json::Value {
    sim.object(&obj("Service", name)).expect("the Service")["spec"]["selector"][crate::bluegreen::SLOT_LABEL]
        .clone()
}

fn names_of(sim: &SimBackend) -> Vec<String> {
    let mut v: Vec<String> = sim
        .objects_of(RELEASE)
        .into_iter()
        .map(|o| format!("{}/{}", o.kind, o.name))
        .collect();
    v.sort();
    v
}

async fn deployed_slot(sim: &SimBackend) -> (u64, Option<String>, bool) {
    let d = sim.deployed().await.unwrap().remove(0);
    (d.revision, d.slot, d.switched)
}

#[tokio::test(start_paused = true)]
async fn blue_green_stages_switches_alternates_rolls_back_and_retires() {
    let sim = SimBackend::default();
    // Revision 1 without slots.
    let mut plain = request(
        1,
        vec![
            web_with_conf(2, "healthy,after=1s", "web:1"),
            config_map("web-conf", "one"),
            web_service(),
        ],
    );
    plain.health = policy(60, 0);
    sim.apply(&plain).await.unwrap();
    assert!(matches!(
        watch(&sim, 1, policy(60, 0)).await.0,
        HealthOutcome::Healthy { .. }
    ));
    assert_eq!(deployed_slot(&sim).await, (1, None, false));

    // Revision 2 into blue: the old objects are kept, the Service as rendered.
    let r2 = sim.apply(&bg_request(2, "web:2", "two")).await.unwrap();
    assert!(
        !r2.iter().any(|r| r.action == ObjectAction::Pruned),
        "{:?}",
        actions_of(&r2)
    );
    assert_eq!(
        names_of(&sim),
        [
            "ConfigMap/web-conf",
            "ConfigMap/web-conf-blue",
            "Deployment/web",
            "Deployment/web-blue",
            "Service/web",
            "Service/web-preview",
        ]
    );
    assert!(selector_slot(&sim, "web").is_null());
    assert_eq!(selector_slot(&sim, "web-preview"), "blue");
    let (outcome, took, _) = watch(&sim, 2, policy(60, 0)).await;
    assert!(matches!(outcome, HealthOutcome::Healthy { .. }));
    assert_eq!(took, Duration::from_secs(1), "the new slot's workloads only");
    assert_eq!(deployed_slot(&sim).await, (2, Some("blue".into()), false));

    // A switch for a revision that is not the current one fails; so does one for a
    // revision without slots.
    let err = sim
        .switch_slot(&op(1), Duration::from_secs(10))
        .await
        .unwrap_err();
    assert_eq!(err.reason, FailureReason::RevisionNotInHistory);

    // Switch 2: the Service selects blue; the old objects go after the window.
    let switched = sim.switch_slot(&op(2), Duration::from_secs(10)).await.unwrap();
    assert_eq!(
        actions_of(&switched),
        [("web".to_string(), ObjectAction::Configured)]
    );
    assert_eq!(selector_slot(&sim, "web"), "blue");
    assert_eq!(deployed_slot(&sim).await, (2, Some("blue".into()), true));
    assert!(sim.retirements_due().await.unwrap().is_empty());
    tokio::time::advance(Duration::from_secs(10)).await;
    assert_eq!(sim.retirements_due().await.unwrap(), [(RELEASE.to_string(), 2)]);
    let retired = sim.retire(RELEASE, 2).await.unwrap();
    let mut gone: Vec<String> = retired
        .iter()
        .map(|r| format!("{}/{}", r.object.kind, r.object.name))
        .collect();
    gone.sort();
    assert_eq!(gone, ["ConfigMap/web-conf", "Deployment/web"]);
    assert!(sim.retirements_due().await.unwrap().is_empty());
    assert!(sim.retire(RELEASE, 2).await.unwrap().is_empty(), "done once");

    // Revision 3 into green beside blue; the Service stays on blue.
    let r3 = sim.apply(&bg_request(3, "web:3", "three")).await.unwrap();
    assert!(
        !r3.iter().any(|r| r.action == ObjectAction::Pruned),
        "{:?}",
        actions_of(&r3)
    );
    assert!(sim.object(&obj("Deployment", "web-blue")).is_some());
    assert!(sim.object(&obj("Deployment", "web-green")).is_some());
    assert_eq!(
        sim.object(&obj("ConfigMap", "web-conf-green")).unwrap()["data"]["k"],
        "three"
    );
    assert_eq!(
        sim.object(&obj("ConfigMap", "web-conf-blue")).unwrap()["data"]["k"],
        "two"
    );
    assert_eq!(selector_slot(&sim, "web"), "blue");
    assert_eq!(selector_slot(&sim, "web-preview"), "green");
    assert!(matches!(
        watch(&sim, 3, policy(60, 0)).await.0,
        HealthOutcome::Healthy { .. }
    ));
    sim.switch_slot(&op(3), Duration::from_secs(600)).await.unwrap();
    assert_eq!(selector_slot(&sim, "web"), "green");
    assert_eq!(deployed_slot(&sim).await, (3, Some("green".into()), true));

    // Roll back to 2 as 4: the Service selects blue again, blue is unchanged, green goes.
    let blue_before = sim.object(&obj("Deployment", "web-blue")).unwrap();
    let r4 = sim.rollback(&op(4), 2).await.unwrap();
    let action = |name: &str| r4.iter().find(|r| r.object.name == name).map(|r| r.action);
    assert_eq!(action("web-blue"), Some(ObjectAction::Unchanged));
    assert_eq!(action("web"), Some(ObjectAction::Configured));
    assert_eq!(action("web-green"), Some(ObjectAction::Pruned));
    assert_eq!(action("web-conf-green"), Some(ObjectAction::Pruned));
    assert_eq!(selector_slot(&sim, "web"), "blue");
    assert_eq!(sim.object(&obj("Deployment", "web-blue")).unwrap(), blue_before);
    let (_, took, _) = watch(&sim, 4, policy(60, 0)).await;
    assert_eq!(took, Duration::ZERO, "blue was rolled out already");
    assert_eq!(deployed_slot(&sim).await, (4, Some("blue".into()), true));
    // Revision 3's retirement (of blue) is cancelled by the rollback.
    tokio::time::advance(Duration::from_secs(700)).await;
    assert!(sim.retirements_due().await.unwrap().is_empty());
    assert!(sim.retire(RELEASE, 3).await.unwrap().is_empty());
    assert!(sim.object(&obj("Deployment", "web-blue")).is_some());

    // The next blue/green revision goes into green again.
    sim.apply(&bg_request(5, "web:5", "five")).await.unwrap();
    assert!(sim.object(&obj("Deployment", "web-green")).is_some());
    assert_eq!(selector_slot(&sim, "web"), "blue");
    assert_eq!(deployed_slot(&sim).await, (5, Some("green".into()), false));
}

#[tokio::test(start_paused = true)]
async fn a_switch_needs_the_current_blue_green_revision() {
    let sim = SimBackend::default();
    let err = sim.switch_slot(&op(1), Duration::ZERO).await.unwrap_err();
    assert_eq!(err.reason, FailureReason::RevisionNotInHistory);
    sim.apply(&request(
        1,
        vec![web_with_conf(1, "healthy", "web:1"), web_service()],
    ))
    .await
    .unwrap();
    let err = sim.switch_slot(&op(1), Duration::ZERO).await.unwrap_err();
    assert_eq!(err.reason, FailureReason::NotBlueGreen);
    sim.apply(&bg_request(2, "web:2", "two")).await.unwrap();
    sim.apply(&bg_request(3, "web:3", "three")).await.unwrap();
    // 2 was never switched: blue is still the idle slot, and 3 replaces 2 there.
    assert_eq!(deployed_slot(&sim).await, (3, Some("blue".into()), false));
    let err = sim.switch_slot(&op(2), Duration::ZERO).await.unwrap_err();
    assert_eq!(err.reason, FailureReason::RevisionNotInHistory);
    // The plain revision 1's objects are still kept, serving.
    assert!(sim.object(&obj("Deployment", "web")).is_some());
    sim.switch_slot(&op(3), Duration::ZERO).await.unwrap();
    let retired = sim.retire(RELEASE, 3).await.unwrap();
    assert_eq!(actions_of(&retired), [("web".to_string(), ObjectAction::Pruned)]);
}

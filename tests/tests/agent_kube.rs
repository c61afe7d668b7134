//! The agent's Kubernetes backend on a real control plane with the pod simulator:
//! rollout verdicts (happy path, crash loop, flapping pod, progress deadlines, the
//! one-replica trap), the release lifecycle (dry run, pruning, rollback from history,
//! field conflicts, ownership, locks, history limit), and an agent restarted mid-rollout
//! running under the least-privilege role from `agent/RBAC.md`; Helm hooks on the real
//! job controller.
//!
//! Each test starts one cluster and runs several scenarios on it, in their own
//! namespaces, concurrently where they are independent.

use std::sync::Arc;
use std::time::{Duration, Instant};

use convoy_agent::backend::{
    ApplyRequest, Backend, CanaryRequest, FailureReason, HealthOutcome, HealthPolicy, HookOutcome, Manifest,
    ObjectAction, ObjectResult, OpRef, ProgressUpdate,
};
use convoy_agent::hooks::HookEvent;
use convoy_agent::kube::{KubeBackend, KubeBackendConfig};
use convoy_proto::v1 as pb;
use convoy_tests::kube::{ControlPlane, TestCluster, client_from_yaml};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Endpoints, Namespace, Pod, Secret, ServiceAccount};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

fn op(release: &str, revision: u64) -> OpRef {
    OpRef {
        release: release.into(),
        revision,
        operation_id: format!("op-{release}-{revision}"),
    }
}

fn policy(deadline_s: u64, window_s: u64) -> HealthPolicy {
    HealthPolicy {
        progress_deadline: Duration::from_secs(deadline_s),
        min_ready_window: Duration::from_secs(window_s),
    }
}

fn request(release: &str, revision: u64, namespace: &str, objects: &[Value]) -> ApplyRequest {
    ApplyRequest {
        op: op(release, revision),
        namespace: namespace.into(),
        manifests: objects
            .iter()
            .enumerate()
            .map(|(i, o)| Manifest {
                source: format!("test/templates/{i}.yaml"),
                content: o.to_string(),
            })
            .collect(),
        health: policy(120, 2),
        force_conflicts: false,
        adopt: false,
        force_roll: false,
        chart: "test-0.1.0".into(),
        hooks: Vec::new(),
        allow_mass_deletion: false,
        secret_digests: Default::default(),
        blue_green: None,
    }
}

fn deployment(name: &str, replicas: i32, behavior: &str, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "progressDeadlineSeconds": 600,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}, "annotations": {"sim.convoy.dev/behavior": behavior}},
                "spec": {"containers": [{"name": "app", "image": image}]}
            }
        }
    })
}

fn configmap(name: &str, color: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"color": color}})
}

fn service(name: &str, ty: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
        "spec": {"type": ty, "selector": {"app": name}, "ports": [{"port": 80}]}
    })
}

fn backend(client: Client, holder: &str, history_limit: u32, lock_ttl: Duration) -> KubeBackend {
    KubeBackend::new(
        client,
        KubeBackendConfig {
            history_namespace: "convoy-system".into(),
            history_limit,
            field_manager: "convoy".into(),
            holder_id: holder.into(),
            lock_ttl,
            max_prune_percent: convoy_agent::kube::DEFAULT_MAX_PRUNE_PERCENT,
        },
    )
}

async fn create_namespace(client: &Client, name: &str) {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    api.create(&PostParams::default(), &ns).await.unwrap();
}

/// Runs `watch_health`, collecting the progress updates with when they arrived.
async fn watch(
    b: &KubeBackend,
    op: &OpRef,
    p: HealthPolicy,
) -> (HealthOutcome, Vec<(Duration, ProgressUpdate)>) {
    let (tx, mut rx) = mpsc::channel(256);
    let start = Instant::now();
    let collector = tokio::spawn(async move {
        let mut all = Vec::new();
        while let Some(u) = rx.recv().await {
            all.push((start.elapsed(), u));
        }
        all
    });
    let outcome = b.watch_health(op, p, tx, CancellationToken::new()).await;
    (outcome, collector.await.unwrap())
}

fn actions(results: &[ObjectResult]) -> Vec<(String, ObjectAction)> {
    let mut v: Vec<(String, ObjectAction)> =
        results.iter().map(|r| (r.object.to_string(), r.action)).collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn result_for<'a>(results: &'a [ObjectResult], object: &str) -> &'a ObjectResult {
    results
        .iter()
        .find(|r| r.object.to_string() == object)
        .unwrap_or_else(|| panic!("no result for {object} in {results:#?}"))
}

fn expect_failure(outcome: &HealthOutcome, reason: FailureReason) -> String {
    match outcome {
        HealthOutcome::Failed(f) if f.reason == reason => f.message.clone(),
        other => panic!("expected {reason:?}, got {other:?}"),
    }
}

// ---------------------------------------------------------------- rollout verdicts

async fn happy_path(b: &KubeBackend) {
    let objs = [
        configmap("cfg", "blue"),
        deployment("web", 2, "healthy,after=500ms", "registry.example/web:1"),
        service("web", "ClusterIP"),
    ];
    let req = request("web.happy", 1, "happy", &objs);
    let results = b.apply(&req).await.unwrap();
    assert_eq!(
        actions(&results),
        vec![
            ("configmap/happy/cfg".into(), ObjectAction::Created),
            ("deployment/happy/web".into(), ObjectAction::Created),
            ("service/happy/web".into(), ObjectAction::Created),
        ]
    );
    let (outcome, progress) = watch(b, &req.op, policy(60, 3)).await;
    match outcome {
        HealthOutcome::Healthy { elapsed } => assert!(elapsed >= Duration::from_secs(3), "{elapsed:?}"),
        other => panic!("happy path: {other:?}"),
    }
    let last = &progress.last().expect("progress reported").1;
    assert_eq!((last.ready, last.desired), (2, 2));
    let deployed = b.deployed().await.unwrap();
    let d = deployed.iter().find(|d| d.release == "web.happy").unwrap();
    assert_eq!((d.revision, d.healthy, d.kept.clone()), (1, true, vec![1]));

    // Applying the same revision again changes nothing.
    let again = b.apply(&req).await.unwrap();
    assert!(
        again.iter().all(|r| r.action == ObjectAction::Unchanged),
        "{again:#?}"
    );
}

async fn crash_loop_fails_fast(b: &KubeBackend) {
    let req = request(
        "crasher.crash",
        1,
        "crash",
        &[deployment(
            "crasher",
            1,
            "crashloop,after=500ms",
            "registry.example/crash:1",
        )],
    );
    b.apply(&req).await.unwrap();
    let start = Instant::now();
    let (outcome, _) = watch(b, &req.op, policy(300, 10)).await;
    let msg = expect_failure(&outcome, FailureReason::CrashLoopBackOff);
    assert!(
        start.elapsed() < Duration::from_secs(40),
        "not fast: {:?}",
        start.elapsed()
    );
    assert!(msg.contains("pod crash/crasher-"), "{msg}");
    assert!(msg.contains("back-off"), "the pod's message is missing: {msg}");
    let deployed = b.deployed().await.unwrap();
    let d = deployed.iter().find(|d| d.release == "crasher.crash").unwrap();
    assert!(!d.healthy);
}

async fn flapping_pod_fails_the_ready_window(b: &KubeBackend) {
    let req = request(
        "flappy.flap",
        1,
        "flap",
        &[deployment(
            "flappy",
            1,
            "flapping,ready=1s,after=4s",
            "registry.example/flap:1",
        )],
    );
    b.apply(&req).await.unwrap();
    let (outcome, progress) = watch(b, &req.op, policy(300, 20)).await;
    let msg = expect_failure(&outcome, FailureReason::RestartedInReadyWindow);
    assert!(msg.contains("restarted"), "{msg}");
    // It was judged healthy first: exactly what `helm --wait` would have accepted.
    assert!(
        progress
            .iter()
            .flat_map(|(_, u)| &u.changed)
            .any(|c| c.reason.starts_with("holding ready window")),
        "{progress:#?}"
    );
}

async fn progress_deadlines(b: &KubeBackend) {
    // Our own deadline: nothing moves for 5s.
    let own = request(
        "stuck.deadline",
        1,
        "deadline",
        &[deployment("stuck", 1, "never-ready", "registry.example/stuck:1")],
    );
    b.apply(&own).await.unwrap();
    let start = Instant::now();
    let (outcome, _) = watch(b, &own.op, policy(5, 2)).await;
    let msg = expect_failure(&outcome, FailureReason::ProgressDeadlineExceeded);
    assert!(msg.contains("no progress for"), "{msg}");
    assert!(msg.contains("0 of 1 updated replicas available"), "{msg}");
    assert!(start.elapsed() >= Duration::from_secs(5));
    assert!(start.elapsed() < Duration::from_secs(30), "{:?}", start.elapsed());

    // The deployment controller's: progressDeadlineSeconds 3, ours far away.
    let mut d = deployment("stalled", 1, "never-ready", "registry.example/stalled:1");
    d["spec"]["progressDeadlineSeconds"] = json!(3);
    let kube = request("stalled.deadline", 1, "deadline", &[d]);
    b.apply(&kube).await.unwrap();
    let (outcome, _) = watch(b, &kube.op, policy(300, 2)).await;
    let msg = expect_failure(&outcome, FailureReason::ProgressDeadlineExceeded);
    assert!(msg.contains("deployment/deadline/stalled"), "{msg}");
    assert!(
        !msg.contains("no progress for"),
        "expected the controller's verdict: {msg}"
    );
}

async fn one_replica_trap(b: &KubeBackend, client: &Client) {
    let with_strategy = |behavior: &str, image: &str| {
        let mut d = deployment("single", 1, behavior, image);
        d["spec"]["strategy"] =
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}});
        d
    };
    let v1 = request(
        "single.trap",
        1,
        "trap",
        &[with_strategy("healthy,after=500ms", "registry.example/single:1")],
    );
    b.apply(&v1).await.unwrap();
    let (outcome, _) = watch(b, &v1.op, policy(60, 1)).await;
    assert!(matches!(outcome, HealthOutcome::Healthy { .. }), "{outcome:?}");

    // v2: the old pod goes first (maxUnavailable 1), the new one takes 8s to be ready.
    // `helm --wait` counts 0 of 1 as enough (1 - maxUnavailable); we must not.
    let v2 = request(
        "single.trap",
        2,
        "trap",
        &[with_strategy("healthy,after=8s", "registry.example/single:2")],
    );
    b.apply(&v2).await.unwrap();
    let start = Instant::now();
    let (outcome, progress) = watch(b, &v2.op, policy(60, 1)).await;
    let elapsed = start.elapsed();
    assert!(matches!(outcome, HealthOutcome::Healthy { .. }), "{outcome:?}");
    assert!(
        elapsed >= Duration::from_secs(7),
        "healthy too early: {elapsed:?}"
    );
    assert!(
        progress
            .iter()
            .flat_map(|(_, u)| &u.changed)
            .any(|c| c.ready == 0 && c.desired == 1),
        "the 0-of-1 state was never reported: {progress:#?}"
    );
    // When healthy was reported, the new pod was there and ready.
    let pods: Api<Pod> = Api::namespaced(client.clone(), "trap");
    let list = pods
        .list(&ListParams::default().labels("app=single"))
        .await
        .unwrap();
    let new: Vec<&Pod> = list
        .items
        .iter()
        .filter(|p| {
            p.spec.as_ref().unwrap().containers[0].image.as_deref() == Some("registry.example/single:2")
        })
        .collect();
    assert_eq!(new.len(), 1);
    let ready = new[0]
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    assert!(ready, "healthy reported before the new pod was ready");
}

async fn statefulset_daemonset_and_job(b: &KubeBackend) {
    let behavior = json!({"sim.convoy.dev/behavior": "healthy,after=500ms"});
    let pod_spec = |image: &str| json!({"containers": [{"name": "app", "image": image, "ports": [{"containerPort": 8080}]}]});
    let sts = json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
        "spec": {"replicas": 2, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
            "template": {"metadata": {"labels": {"app": "db"}, "annotations": behavior}, "spec": pod_spec("registry.example/db:1")}}
    });
    let ds = json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
        "spec": {"selector": {"matchLabels": {"app": "agent"}},
            "template": {"metadata": {"labels": {"app": "agent"}, "annotations": behavior}, "spec": pod_spec("registry.example/agent:1")}}
    });
    let job = json!({
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "migrate"},
        "spec": {"backoffLimit": 0, "template": {"metadata": {"annotations": behavior},
            "spec": {"restartPolicy": "Never", "containers": [{"name": "migrate", "image": "registry.example/migrate:1"}]}}}
    });
    let req = request("data.kinds", 1, "kinds", &[sts, ds, job]);
    b.apply(&req).await.unwrap();
    let (outcome, progress) = watch(b, &req.op, policy(60, 1)).await;
    assert!(matches!(outcome, HealthOutcome::Healthy { .. }), "{outcome:?}");
    let last = &progress.last().expect("progress").1;
    assert_eq!((last.ready, last.desired), (4, 4), "{progress:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollout_verdicts() {
    let cluster = TestCluster::start("agent-health").await.unwrap();
    let client = cluster.client().await;
    for ns in ["happy", "crash", "flap", "deadline", "trap", "kinds"] {
        create_namespace(&client, ns).await;
    }
    let b = backend(client.clone(), "agent-health", 10, Duration::from_secs(30));
    tokio::join!(
        happy_path(&b),
        crash_loop_fails_fast(&b),
        flapping_pod_fails_the_ready_window(&b),
        progress_deadlines(&b),
        one_replica_trap(&b, &client),
        statefulset_daemonset_and_job(&b),
    );
    assert!(cluster.pods.errors().is_empty(), "{:?}", cluster.pods.errors());
}

// ---------------------------------------------------------------- release lifecycle

async fn color_of(client: &Client, ns: &str, name: &str) -> Option<String> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    api.get_opt(name).await.unwrap()?.data?.get("color").cloned()
}

async fn web_image_and_replicas(client: &Client, ns: &str) -> (String, i32) {
    let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let d = api.get("web").await.unwrap();
    let spec = d.spec.unwrap();
    (
        spec.template.spec.unwrap().containers[0].image.clone().unwrap(),
        spec.replicas.unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_lifecycle() {
    let cluster = TestCluster::start("agent-life").await.unwrap();
    let client = cluster.client().await;
    create_namespace(&client, "life").await;
    let b = backend(client.clone(), "agent-life", 5, Duration::from_secs(30));
    let rel = "web.life";
    let immut = |app: &str| {
        let mut d = deployment("immut", 1, "healthy,after=200ms", "registry.example/immut:1");
        d["spec"]["selector"]["matchLabels"]["app"] = json!(app);
        d["spec"]["template"]["metadata"]["labels"]["app"] = json!(app);
        d
    };
    let v1 = [
        configmap("cfg", "blue"),
        configmap("extra", "grey"),
        deployment("web", 2, "healthy,after=300ms", "registry.example/web:1"),
        service("web", "ClusterIP"),
        immut("immut"),
    ];
    b.apply(&request(rel, 1, "life", &v1)).await.unwrap();
    let (outcome, _) = watch(&b, &op(rel, 1), policy(60, 1)).await;
    assert!(matches!(outcome, HealthOutcome::Healthy { .. }), "{outcome:?}");

    // Dry run of a revision with changes, an addition, a removal and three refusals.
    let v2 = vec![
        configmap("cfg", "green"),
        configmap("added", "red"),
        deployment("web", 3, "healthy,after=300ms", "registry.example/web:2"),
        service("web", "ClusterIP"),
        immut("immut"),
    ];
    let mut dry = v2.clone();
    dry[4] = immut("changed-selector");
    dry.push(service("bad", "Bogus"));
    dry.push(json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}));
    let results = b.dry_run(&request(rel, 2, "life", &dry)).await.unwrap();
    // Each change carries the live value and the one the server's dry run returned.
    let values = |r: &ObjectResult| -> Vec<(String, Option<Value>, Option<Value>)> {
        r.changes
            .iter()
            .map(|c| (c.path.clone(), c.before.clone(), c.after.clone()))
            .collect()
    };
    let cfg = result_for(&results, "configmap/life/cfg");
    assert_eq!(cfg.action, ObjectAction::Configured);
    assert_eq!(
        values(cfg),
        [(
            "data.color".to_string(),
            Some(json!("blue")),
            Some(json!("green"))
        )]
    );
    let web = result_for(&results, "deployment/life/web");
    assert_eq!(web.action, ObjectAction::Configured);
    assert_eq!(
        values(web),
        [
            ("spec.replicas".to_string(), Some(json!(2)), Some(json!(3))),
            (
                "spec.template.spec.containers[0].image".to_string(),
                Some(json!("registry.example/web:1")),
                Some(json!("registry.example/web:2"))
            ),
        ]
    );
    assert_eq!(
        result_for(&results, "configmap/life/added").action,
        ObjectAction::Created
    );
    assert_eq!(
        result_for(&results, "service/life/web").action,
        ObjectAction::Unchanged
    );
    assert_eq!(
        result_for(&results, "configmap/life/extra").action,
        ObjectAction::Pruned
    );
    let bad = result_for(&results, "service/life/bad");
    assert_eq!(bad.action, ObjectAction::Refused);
    assert!(bad.message.contains("Unsupported value"), "{}", bad.message);
    let immutable = result_for(&results, "deployment/life/immut");
    assert_eq!(immutable.action, ObjectAction::Refused);
    assert!(
        immutable.message.contains("field is immutable"),
        "{}",
        immutable.message
    );
    let widget = result_for(&results, "widget/w");
    assert_eq!(widget.action, ObjectAction::Refused);
    assert!(
        widget.message.contains("CustomResourceDefinition"),
        "{}",
        widget.message
    );
    // Nothing persisted.
    assert_eq!(color_of(&client, "life", "cfg").await.as_deref(), Some("blue"));
    assert_eq!(color_of(&client, "life", "added").await, None);
    assert_eq!(color_of(&client, "life", "extra").await.as_deref(), Some("grey"));
    assert_eq!(
        web_image_and_replicas(&client, "life").await,
        ("registry.example/web:1".into(), 2)
    );
    assert_eq!(b.deployed().await.unwrap()[0].kept, vec![1]);

    // Apply v2: extra is pruned.
    let results = b.apply(&request(rel, 2, "life", &v2)).await.unwrap();
    assert_eq!(
        result_for(&results, "configmap/life/extra").action,
        ObjectAction::Pruned
    );
    assert_eq!(
        result_for(&results, "configmap/life/cfg").action,
        ObjectAction::Configured
    );
    assert_eq!(
        result_for(&results, "configmap/life/added").action,
        ObjectAction::Created
    );
    assert_eq!(color_of(&client, "life", "extra").await, None);
    let (outcome, _) = watch(&b, &op(rel, 2), policy(60, 1)).await;
    assert!(matches!(outcome, HealthOutcome::Healthy { .. }), "{outcome:?}");
    assert_eq!(
        web_image_and_replicas(&client, "life").await,
        ("registry.example/web:2".into(), 3)
    );

    // Roll back to 1 from the cluster's history alone (no manifests given).
    let results = b.rollback(&op(rel, 3), 1).await.unwrap();
    assert_eq!(
        result_for(&results, "configmap/life/added").action,
        ObjectAction::Pruned
    );
    assert_eq!(
        result_for(&results, "configmap/life/extra").action,
        ObjectAction::Created
    );
    let (outcome, _) = watch(&b, &op(rel, 3), policy(60, 1)).await;
    assert!(matches!(outcome, HealthOutcome::Healthy { .. }), "{outcome:?}");
    assert_eq!(
        web_image_and_replicas(&client, "life").await,
        ("registry.example/web:1".into(), 2)
    );
    assert_eq!(color_of(&client, "life", "cfg").await.as_deref(), Some("blue"));
    assert_eq!(color_of(&client, "life", "added").await, None);
    let err = b.rollback(&op(rel, 4), 42).await.unwrap_err();
    assert_eq!(err.reason, FailureReason::RevisionNotInHistory);

    // Another field manager takes data.color; applying reports the field and the manager.
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "life");
    cms.patch(
        "cfg",
        &PatchParams::apply("kubectl-edit").force(),
        &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"color": "red"}})),
    )
    .await
    .unwrap();
    let err = b.apply(&request(rel, 4, "life", &v1)).await.unwrap_err();
    assert_eq!(err.reason, FailureReason::Conflict, "{err}");
    assert!(err.message.contains(".data.color"), "{}", err.message);
    assert!(err.message.contains("kubectl-edit"), "{}", err.message);
    assert_eq!(color_of(&client, "life", "cfg").await.as_deref(), Some("red"));
    let mut forced = request(rel, 5, "life", &v1);
    forced.force_conflicts = true;
    let results = b.apply(&forced).await.unwrap();
    assert_eq!(
        result_for(&results, "configmap/life/cfg").action,
        ObjectAction::Configured
    );
    assert_eq!(color_of(&client, "life", "cfg").await.as_deref(), Some("blue"));

    // An object labelled as another release's is refused, unless adopted.
    let mut foreign = configmap("foreign", "black");
    foreign["metadata"]["labels"] = json!({"convoy.dev/release": "other.life"});
    cms.create(&PostParams::default(), &serde_json::from_value(foreign).unwrap())
        .await
        .unwrap();
    let mut with_foreign = v1.to_vec();
    with_foreign.push(configmap("foreign", "white"));
    let err = b
        .apply(&request(rel, 6, "life", &with_foreign))
        .await
        .unwrap_err();
    assert_eq!(err.reason, FailureReason::OwnedByAnotherRelease, "{err}");
    assert!(err.message.contains("other.life"), "{}", err.message);
    assert_eq!(
        color_of(&client, "life", "foreign").await.as_deref(),
        Some("black")
    );
    let mut adopt = request(rel, 7, "life", &with_foreign);
    adopt.adopt = true;
    b.apply(&adopt).await.unwrap();
    let cm = cms.get("foreign").await.unwrap();
    assert_eq!(cm.metadata.labels.unwrap()["convoy.dev/release"], rel);

    // History keeps the last 5 revisions; the failed ones are marked so.
    let deployed = b.deployed().await.unwrap();
    assert_eq!(
        (deployed[0].revision, deployed[0].kept.clone()),
        (7, vec![3, 4, 5, 6, 7])
    );
    let listed = b.history().list(rel).await.unwrap();
    let failed: Vec<u64> = listed
        .iter()
        .filter(|i| i.status == convoy_agent::kube::history::RevisionStatus::Failed)
        .map(|i| i.revision)
        .collect();
    assert_eq!(failed, vec![4, 6]);

    // A CRD and a custom resource of it in one revision: the CRD goes first, the
    // kind is discovered once it is Established.
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}
    });
    let widget = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 3}});
    let results = b
        .apply(&request("widgets.life", 1, "life", &[widget, crd]))
        .await
        .unwrap();
    assert_eq!(
        actions(&results),
        vec![
            (
                "customresourcedefinition/widgets.example.com".into(),
                ObjectAction::Created
            ),
            ("widget/life/w".into(), ObjectAction::Created),
        ]
    );
    assert_eq!(
        results[0].object.kind, "CustomResourceDefinition",
        "CRDs are applied first"
    );

    // One operation per release: a second holder is refused until the first unlocks.
    let other = backend(client.clone(), "agent-other", 5, Duration::from_secs(30));
    let token = b.lock(&op(rel, 8)).await.unwrap();
    let err = other.lock(&op(rel, 8)).await.unwrap_err();
    assert_eq!(err.reason, FailureReason::LockHeld);
    assert!(err.message.contains("agent-life"), "{}", err.message);
    b.unlock(token).await.unwrap();
    let token = other.lock(&op(rel, 8)).await.unwrap();
    other.unlock(token).await.unwrap();
}

// ------------------------------------------------- restart, under least privilege

/// The YAML block of `agent/RBAC.md`, for `namespace`.
fn rbac_manifests(namespace: &str) -> Vec<Manifest> {
    let doc = include_str!("../../agent/RBAC.md");
    let block = doc
        .split("```yaml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("RBAC.md has a yaml block");
    vec![Manifest {
        source: "agent/RBAC.md".into(),
        content: block.replace("APP_NAMESPACE", namespace),
    }]
}

async fn service_account_token(client: &Client) -> String {
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), "convoy-system");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "convoy-system");
    let start = Instant::now();
    loop {
        let sa = sas.get("convoy-agent").await.unwrap();
        if let Some(name) = sa.secrets.iter().flatten().find_map(|s| s.name.clone()) {
            let secret = secrets.get(&name).await.unwrap();
            if let Some(token) = secret.data.and_then(|d| d.get("token").cloned()) {
                return String::from_utf8(token.0).unwrap();
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no token for the service account"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_mid_rollout_and_least_privilege() {
    let cluster = TestCluster::start("agent-rbac").await.unwrap();
    let admin = cluster.client().await;
    for ns in ["convoy-system", "app", "elsewhere"] {
        create_namespace(&admin, ns).await;
    }
    // The role from RBAC.md, installed by an admin.
    let installer = backend(admin.clone(), "installer", 10, Duration::from_secs(30));
    let rbac = ApplyRequest {
        manifests: rbac_manifests("app"),
        ..request("convoy-rbac.convoy-system", 1, "convoy-system", &[])
    };
    installer.apply(&rbac).await.unwrap();
    let token = service_account_token(&admin).await;
    let sa_client = || async {
        client_from_yaml(&cluster.control_plane.kubeconfig_for_token(&token))
            .await
            .unwrap()
    };

    // Agent A applies and starts watching a slow rollout, then dies mid-watch.
    let a = Arc::new(backend(sa_client().await, "agent-a", 10, Duration::from_secs(3)));
    let rel = "web.app";
    let lock_a = a.lock(&op(rel, 1)).await.unwrap();
    assert_eq!(lock_a.release, rel);
    let objs = [
        configmap("cfg", "blue"),
        deployment("web", 2, "healthy,after=5s", "registry.example/web:1"),
    ];
    let results = a.apply(&request(rel, 1, "app", &objs)).await.unwrap();
    assert!(
        results.iter().all(|r| r.action == ObjectAction::Created),
        "{results:#?}"
    );
    let (tx, mut rx) = mpsc::channel(16);
    let watcher = {
        let a = a.clone();
        tokio::spawn(async move {
            a.watch_health(&op(rel, 1), policy(120, 2), tx, CancellationToken::new())
                .await
        })
    };
    let first = tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .expect("progress within 30s")
        .expect("a progress update");
    assert_eq!(first.desired, 2);
    assert!(first.ready < 2, "{first:?}");
    watcher.abort();
    assert!(watcher.await.unwrap_err().is_cancelled());
    drop(a);

    // Agent B starts: A's lock is live until its TTL passes, then B takes it over,
    // re-reads the revision from history and finishes the report.
    let b = backend(sa_client().await, "agent-b", 10, Duration::from_secs(3));
    let err = b.lock(&op(rel, 1)).await.unwrap_err();
    assert_eq!(err.reason, FailureReason::LockHeld);
    assert!(err.message.contains("agent-a"), "{}", err.message);
    let start = Instant::now();
    let lock_b = loop {
        match b.lock(&op(rel, 1)).await {
            Ok(t) => break t,
            Err(e) => assert_eq!(e.reason, FailureReason::LockHeld),
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "the dead holder's lock was never taken over"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let (outcome, _) = watch(&b, &op(rel, 1), policy(120, 2)).await;
    assert!(matches!(outcome, HealthOutcome::Healthy { .. }), "{outcome:?}");
    let deployed = b.deployed().await.unwrap();
    let d = deployed.iter().find(|d| d.release == rel).unwrap();
    assert_eq!((d.revision, d.healthy), (1, true));
    b.unlock(lock_b).await.unwrap();

    // Job hooks need nothing beyond the deploy role: created, read until Complete,
    // deleted by hook-succeeded.
    let hook = vec![job_hook(
        "migrate",
        "pre-upgrade",
        "succeed,after=500ms",
        Some("before-hook-creation,hook-succeeded"),
    )];
    let outcome = run_hooks(
        &b,
        &op(rel, 2),
        "app",
        &hook,
        HookEvent::PreUpgrade,
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(outcome, HookOutcome::Succeeded);
    assert_eq!(job_complete(&admin, "app", "migrate").await, None);

    // The role really is limited: a namespace without the binding is refused.
    let err = b
        .apply(&request(
            "web.elsewhere",
            1,
            "elsewhere",
            &[configmap("cfg", "blue")],
        ))
        .await
        .unwrap_err();
    assert_eq!(err.reason, FailureReason::ApplyRefused, "{err}");
    assert!(err.message.contains("forbidden"), "{}", err.message);
}

// ---------------------------------------------------------------- helm hooks

/// A Job hook whose pod follows `behavior`, with the given hook annotations.
fn job_hook(name: &str, events: &str, behavior: &str, delete_policy: Option<&str>) -> Manifest {
    let mut annotations = json!({"helm.sh/hook": events});
    if let Some(p) = delete_policy {
        annotations["helm.sh/hook-delete-policy"] = json!(p);
    }
    let job = json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "annotations": annotations},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"annotations": {"sim.convoy.dev/behavior": behavior}},
                "spec": {"restartPolicy": "Never", "containers": [{"name": "migrate", "image": "registry.example/migrate:1"}]}
            }
        }
    });
    Manifest {
        source: format!("test/templates/hooks/{name}.yaml"),
        content: job.to_string(),
    }
}

/// Runs `op`'s hooks for `event` the way the agent runtime does: in order, each
/// bounded by `deadline`, stopping at the first that does not succeed.
async fn run_hooks(
    b: &KubeBackend,
    op: &OpRef,
    ns: &str,
    hooks: &[Manifest],
    event: HookEvent,
    deadline: Duration,
) -> HookOutcome {
    let parsed = convoy_agent::hooks::parse(hooks).unwrap();
    for hook in convoy_agent::hooks::for_event(&parsed, event) {
        let outcome = b
            .run_hook(op, ns, hook, event, deadline, CancellationToken::new())
            .await;
        if outcome != HookOutcome::Succeeded {
            return outcome;
        }
    }
    HookOutcome::Succeeded
}

async fn job_complete(client: &Client, ns: &str, name: &str) -> Option<bool> {
    let jobs: Api<Job> = Api::namespaced(client.clone(), ns);
    let job = jobs.get_opt(name).await.unwrap()?;
    let conditions = job.status.and_then(|s| s.conditions).unwrap_or_default();
    Some(
        conditions
            .iter()
            .any(|c| c.type_ == "Complete" && c.status == "True"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_hooks_run_on_the_real_job_controller() {
    let cluster = TestCluster::start("agent-hooks").await.unwrap();
    let client = cluster.client().await;
    let ns = "hooks";
    create_namespace(&client, ns).await;
    let b = backend(client.clone(), "agent-hooks", 5, Duration::from_secs(30));
    let rel = "web.hooks";
    let deadline = Duration::from_secs(60);

    // Revision 1: an install (no history yet); its pre-install hook runs on the real
    // job controller and stays (the default delete policy only deletes before the
    // next creation).
    assert!(!b.installed(rel, 1).await.unwrap());
    let v1_hooks = vec![job_hook(
        "migrate",
        "pre-install,pre-upgrade",
        "succeed,after=1s",
        None,
    )];
    let outcome = run_hooks(&b, &op(rel, 1), ns, &v1_hooks, HookEvent::PreInstall, deadline).await;
    assert_eq!(outcome, HookOutcome::Succeeded);
    assert_eq!(job_complete(&client, ns, "migrate").await, Some(true));
    let v1 = request(
        rel,
        1,
        ns,
        &[deployment(
            "web",
            1,
            "healthy,after=300ms",
            "registry.example/web:1",
        )],
    );
    b.apply(&ApplyRequest {
        hooks: v1_hooks,
        ..v1
    })
    .await
    .unwrap();
    let (outcome, _) = watch(&b, &op(rel, 1), policy(60, 1)).await;
    assert!(matches!(outcome, HealthOutcome::Healthy { .. }), "{outcome:?}");

    // Revision 2: an upgrade. before-hook-creation replaces the completed Job from
    // revision 1 (deleted and waited for), and the new one completes while the
    // Deployment is still on revision 1; hook-succeeded deletes the second hook.
    assert!(b.installed(rel, 2).await.unwrap());
    let v2_hooks = vec![
        job_hook("migrate", "pre-upgrade", "succeed,after=2s", None),
        job_hook(
            "warm-cache",
            "pre-upgrade",
            "succeed,after=500ms",
            Some("hook-succeeded"),
        ),
    ];
    let old_uid = Api::<Job>::namespaced(client.clone(), ns)
        .get("migrate")
        .await
        .unwrap()
        .metadata
        .uid;
    let outcome = run_hooks(&b, &op(rel, 2), ns, &v2_hooks, HookEvent::PreUpgrade, deadline).await;
    assert_eq!(outcome, HookOutcome::Succeeded);
    let migrate = Api::<Job>::namespaced(client.clone(), ns)
        .get("migrate")
        .await
        .unwrap();
    assert_ne!(migrate.metadata.uid, old_uid, "a new Job, not the old one");
    assert_eq!(
        migrate.labels().get("convoy.dev/release").map(String::as_str),
        Some(rel)
    );
    assert_eq!(job_complete(&client, ns, "migrate").await, Some(true));
    assert_eq!(
        job_complete(&client, ns, "warm-cache").await,
        None,
        "hook-succeeded deleted it"
    );
    assert_eq!(
        web_image_and_replicas(&client, ns).await.0,
        "registry.example/web:1",
        "the Deployment is untouched until the hooks are done"
    );
    let v2 = request(
        rel,
        2,
        ns,
        &[deployment(
            "web",
            1,
            "healthy,after=300ms",
            "registry.example/web:2",
        )],
    );
    let results = b
        .apply(&ApplyRequest {
            hooks: v2_hooks.clone(),
            ..v2
        })
        .await
        .unwrap();
    // Hooks are not the release's objects: neither applied nor pruned with it.
    assert!(results.iter().all(|r| r.object.kind != "Job"), "{results:#?}");
    let (outcome, _) = watch(&b, &op(rel, 2), policy(60, 1)).await;
    assert!(matches!(outcome, HealthOutcome::Healthy { .. }), "{outcome:?}");
    assert_eq!(
        job_complete(&client, ns, "migrate").await,
        Some(true),
        "not pruned"
    );
    // The history keeps the revision's hooks for a rollback to it.
    let stored = b.stored_hooks(rel, 2).await.unwrap();
    assert_eq!((stored.namespace.as_str(), stored.hooks), (ns, v2_hooks));

    // Revision 3: a failing migration fails with the Job's condition message, and
    // (the runtime stopping there) the Deployment stays on revision 2.
    let v3_hooks = vec![job_hook(
        "migrate",
        "pre-upgrade",
        "fail,after=500ms",
        Some("before-hook-creation"),
    )];
    let outcome = run_hooks(&b, &op(rel, 3), ns, &v3_hooks, HookEvent::PreUpgrade, deadline).await;
    let HookOutcome::Failed(f) = outcome else {
        panic!("expected the hook to fail, got {outcome:?}")
    };
    assert_eq!(f.reason, FailureReason::HookFailed);
    assert!(
        f.message
            .starts_with("hook pre-upgrade job/migrate: job/hooks/migrate failed: BackoffLimitExceeded"),
        "{}",
        f.message
    );
    assert_eq!(
        job_complete(&client, ns, "migrate").await,
        Some(false),
        "kept for inspection"
    );
    assert_eq!(
        web_image_and_replicas(&client, ns).await.0,
        "registry.example/web:2"
    );

    // A Job that never completes is cut off at the deadline.
    let stuck = vec![job_hook(
        "stuck",
        "pre-upgrade",
        "never-ready",
        Some("hook-failed"),
    )];
    let started = Instant::now();
    let outcome = run_hooks(
        &b,
        &op(rel, 3),
        ns,
        &stuck,
        HookEvent::PreUpgrade,
        Duration::from_secs(3),
    )
    .await;
    assert!(
        matches!(&outcome, HookOutcome::Failed(f) if f.message.contains("did not complete within the progress deadline (3s)")),
        "{outcome:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        job_complete(&client, ns, "stuck").await,
        None,
        "hook-failed deleted it"
    );
}

/// The agent runtime's fake coordinator, shared with the agent crate's own tests.
#[path = "../../agent/tests/common/mod.rs"]
mod agent_link;

fn to_wire(m: Manifest) -> pb::Manifest {
    pb::Manifest {
        source: m.source,
        content: m.content,
    }
}

fn apply_command(image: &str, hooks: Vec<Manifest>) -> pb::command::Command {
    let web = deployment("web", 1, "healthy,after=300ms", image);
    pb::command::Command::Apply(pb::ApplyRevision {
        namespace: "hooks-rt".into(),
        manifests: vec![pb::Manifest {
            source: "test/templates/web.yaml".into(),
            content: web.to_string(),
        }],
        hooks: hooks.into_iter().map(to_wire).collect(),
        health: Some(pb::HealthPolicy {
            progress_deadline_seconds: 60,
            min_ready_window_seconds: 1,
        }),
        chart: "test-0.1.0".into(),
        ..Default::default()
    })
}

/// The whole command path (agent link, runtime, Kubernetes backend, job controller):
/// the runtime's order of hooks around the apply, and a failing hook failing the
/// command.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_hooks_through_the_agent_runtime() {
    use agent_link::{CONTEXT, Fake, TOKEN, config, failed, start_runtime, timeline};
    use convoy_agent::runtime::{Credentials, Token};
    use pb::agent_event::Event;

    let cluster = TestCluster::start("agent-hooks-rt").await.unwrap();
    let client = cluster.client().await;
    let ns = "hooks-rt";
    create_namespace(&client, ns).await;
    let mut fake = Fake::start(0).await;
    let b = backend(client.clone(), "agent-hooks-rt", 5, Duration::from_secs(30));
    let (stop, task, _) = start_runtime(config(&fake.url(), Credentials::Token(Token::new(TOKEN))), b).await;
    let mut s = fake.session().await;
    assert_eq!(s.hello.context, CONTEXT);
    let rel = "web.hooks-rt";
    let op = |rev: u64| pb::OperationRef {
        release: rel.into(),
        revision: rev,
        operation_id: format!("deploy-{rev}"),
    };

    s.send(&op(1), apply_command("registry.example/web:1", Vec::new()));
    let events = s.until_final(&op(1)).await;
    assert!(matches!(events.last(), Some(Event::Healthy(_))), "{events:?}");

    // The pre-upgrade Job completes before the Deployment changes; hook-succeeded
    // deletes it.
    let migrate = job_hook(
        "migrate",
        "pre-upgrade",
        "succeed,after=1s",
        Some("hook-succeeded"),
    );
    s.send(&op(2), apply_command("registry.example/web:2", vec![migrate]));
    let events = s.until_final(&op(2)).await;
    assert_eq!(
        timeline(&events),
        [
            "running hook pre-upgrade job/migrate",
            "hook pre-upgrade job/migrate succeeded",
            "applied",
            "healthy"
        ],
        "{events:?}"
    );
    assert_eq!(job_complete(&client, ns, "migrate").await, None);
    assert_eq!(
        web_image_and_replicas(&client, ns).await.0,
        "registry.example/web:2"
    );

    // A failing one fails the command with HookFailed before anything is applied.
    let broken = job_hook("migrate", "pre-upgrade", "fail,after=500ms", None);
    s.send(&op(3), apply_command("registry.example/web:3", vec![broken]));
    let events = s.until_final(&op(3)).await;
    assert!(
        !events.iter().any(|e| matches!(e, Event::Applied(_))),
        "{events:?}"
    );
    let f = failed(&events);
    assert_eq!(f.reason, "HookFailed");
    assert!(
        f.message
            .starts_with("hook pre-upgrade job/migrate: job/hooks-rt/migrate failed: BackoffLimitExceeded"),
        "{}",
        f.message
    );
    assert_eq!(
        web_image_and_replicas(&client, ns).await.0,
        "registry.example/web:2"
    );

    stop.cancel();
    tokio::time::timeout(Duration::from_secs(15), task)
        .await
        .expect("the agent did not stop")
        .unwrap();
}

// ------------------------------------------------------------ pruning that is safe

async fn names_in(client: &Client, ns: &str) -> Vec<String> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let mut names: Vec<String> = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|c| c.name_any())
        .filter(|n| n != "kube-root-ca.crt")
        .collect();
    names.sort();
    names
}

/// An existing object convoy did not create is refused unless adopted; Helm's
/// `resource-policy: keep` survives pruning and rollback; CRDs and Namespaces are never
/// pruned; a revision deleting more than half of the release, or all of it, is refused
/// with the cluster unchanged unless the command allows mass deletion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruning_cannot_destroy_what_it_does_not_own() {
    let cluster = ControlPlane::start("agent-prune").await.unwrap();
    let client = cluster.client().await;
    create_namespace(&client, "prune").await;
    let b = backend(client.clone(), "agent-prune", 10, Duration::from_secs(30));
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "prune");

    // An unowned object (kubectl created it, no convoy label) is refused, and left as
    // it was; adopt takes it.
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(configmap("handmade", "black")).unwrap(),
    )
    .await
    .unwrap();
    let rel = "own.prune";
    let err = b
        .apply(&request(rel, 1, "prune", &[configmap("handmade", "white")]))
        .await
        .unwrap_err();
    assert_eq!(err.reason, FailureReason::NotOwned, "{err}");
    assert!(
        err.message.contains("configmap/prune/handmade"),
        "{}",
        err.message
    );
    assert!(err.message.contains("adopt"), "{}", err.message);
    assert_eq!(
        color_of(&client, "prune", "handmade").await.as_deref(),
        Some("black")
    );
    // A dry run reports the refusal too.
    let dry = b
        .dry_run(&request(rel, 1, "prune", &[configmap("handmade", "white")]))
        .await
        .unwrap();
    let r = result_for(&dry, "configmap/prune/handmade");
    assert_eq!(r.action, ObjectAction::Refused);
    assert!(r.message.starts_with("NotOwned"), "{}", r.message);
    let mut adopt = request(rel, 2, "prune", &[configmap("handmade", "white")]);
    adopt.adopt = true;
    b.apply(&adopt).await.unwrap();
    let cm = cms.get("handmade").await.unwrap();
    assert_eq!(cm.metadata.labels.unwrap()["convoy.dev/release"], rel);
    assert_eq!(
        color_of(&client, "prune", "handmade").await.as_deref(),
        Some("white")
    );

    // keep, a CRD and a Namespace survive a revision that drops them.
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}
    });
    let extra_ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "prune-extra"}});
    let mut kept = configmap("kept", "gold");
    kept["metadata"]["annotations"] = json!({"helm.sh/resource-policy": "keep"});
    let rel = "keep.prune";
    let base: Vec<Value> = (0..6).map(|i| configmap(&format!("base-{i}"), "blue")).collect();
    let mut v1 = base.clone();
    v1.extend([kept.clone(), crd.clone(), extra_ns.clone()]);
    b.apply(&request(rel, 1, "prune", &v1)).await.unwrap();
    let results = b.apply(&request(rel, 2, "prune", &base)).await.unwrap();
    assert!(
        results.iter().all(|r| r.action != ObjectAction::Pruned),
        "{results:#?}"
    );
    assert_eq!(color_of(&client, "prune", "kept").await.as_deref(), Some("gold"));
    let crds: Api<
        k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    > = Api::all(client.clone());
    assert!(
        crds.get_opt("gadgets.example.com").await.unwrap().is_some(),
        "CRD pruned"
    );
    let nss: Api<Namespace> = Api::all(client.clone());
    let ns = nss.get("prune-extra").await.unwrap();
    assert!(ns.metadata.deletion_timestamp.is_none(), "Namespace pruned");
    // Nor does a rollback to a revision without them delete them.
    b.apply(&request(rel, 3, "prune", &v1)).await.unwrap();
    b.rollback(&op(rel, 4), 2).await.unwrap();
    assert_eq!(color_of(&client, "prune", "kept").await.as_deref(), Some("gold"));
    assert!(
        crds.get_opt("gadgets.example.com").await.unwrap().is_some(),
        "CRD pruned"
    );

    // More than half of the release's objects, or all of them: refused, nothing changes.
    let rel = "mass.prune";
    let six: Vec<Value> = (0..6).map(|i| configmap(&format!("mass-{i}"), "blue")).collect();
    b.apply(&request(rel, 1, "prune", &six)).await.unwrap();
    let before = names_in(&client, "prune").await;
    let mut changed_two = six[..2].to_vec();
    changed_two[0] = configmap("mass-0", "red");
    let err = b
        .apply(&request(rel, 2, "prune", &changed_two))
        .await
        .unwrap_err();
    assert_eq!(err.reason, FailureReason::MassDeletion, "{err}");
    assert!(
        err.message.contains("4 of the release's 6 objects"),
        "{}",
        err.message
    );
    assert!(err.message.contains("allowMassDeletion"), "{}", err.message);
    assert_eq!(names_in(&client, "prune").await, before, "the cluster changed");
    assert_eq!(
        color_of(&client, "prune", "mass-0").await.as_deref(),
        Some("blue")
    );
    let err = b.apply(&request(rel, 3, "prune", &[])).await.unwrap_err();
    assert_eq!(err.reason, FailureReason::MassDeletion, "{err}");
    assert!(err.message.contains("render is empty"), "{}", err.message);
    assert_eq!(names_in(&client, "prune").await, before, "the cluster changed");
    // A dry run says so as well.
    let err = b.dry_run(&request(rel, 3, "prune", &[])).await.unwrap_err();
    assert_eq!(err.reason, FailureReason::MassDeletion, "{err}");
    // Half is allowed (the limit is "more than 50 %").
    let results = b.apply(&request(rel, 4, "prune", &six[..3])).await.unwrap();
    assert_eq!(
        results
            .iter()
            .filter(|r| r.action == ObjectAction::Pruned)
            .count(),
        3
    );
    // The explicit flag allows the rest, down to an empty render.
    let mut all = request(rel, 5, "prune", &[]);
    all.allow_mass_deletion = true;
    let results = b.apply(&all).await.unwrap();
    assert_eq!(
        results
            .iter()
            .filter(|r| r.action == ObjectAction::Pruned)
            .count(),
        3
    );
    assert!(
        names_in(&client, "prune")
            .await
            .iter()
            .all(|n| !n.starts_with("mass-")),
        "{:?}",
        names_in(&client, "prune").await
    );
}

// ---------------------------------------------------------------- history over 1 MiB

/// A ConfigMap holding `bytes` of random base64 (which gzip shrinks by a quarter at most).
fn random_configmap(name: &str, bytes: usize) -> Value {
    use base64::Engine;
    use rand::RngCore;
    let mut raw = vec![0u8; bytes * 3 / 4];
    rand::rng().fill_bytes(&mut raw);
    let blob = base64::engine::general_purpose::STANDARD.encode(raw);
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"blob": blob}})
}

/// A revision whose history, compressed, is larger than the 1 MiB Kubernetes allows one
/// Secret is kept over several Secrets, each within the limit; a rollback restores it
/// whole; trimming the history deletes every part.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_history_larger_than_one_secret_is_split_and_rolls_back() {
    let cluster = ControlPlane::start("agent-bighist").await.unwrap();
    let client = cluster.client().await;
    create_namespace(&client, "big").await;
    let b = backend(client.clone(), "agent-bighist", 2, Duration::from_secs(30));
    let rel = "big.hist";
    // 2.1 MB of objects, about 1.6 MB compressed: three history Secrets.
    let v1: Vec<Value> = (0..3)
        .map(|i| random_configmap(&format!("blob{i}"), 700_000))
        .collect();
    b.apply(&request(rel, 1, "big", &v1)).await.unwrap();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "convoy-system");
    let main = secrets.get("convoy.big.hist.v1").await.unwrap();
    let parts: usize = main.annotations()["convoy.dev/parts"].parse().unwrap();
    assert!(parts >= 2, "{parts} parts");
    let mut names = vec!["convoy.big.hist.v1".to_string()];
    names.extend((2..=parts).map(|p| format!("convoy.big.hist.v1.part{p}")));
    for name in &names {
        let s = secrets.get(name).await.unwrap();
        let size: usize = s.data.unwrap().values().map(|v| v.0.len()).sum();
        assert!(size < 1 << 20, "{name} holds {size} bytes");
    }

    let mut v2 = request(rel, 2, "big", &[configmap("cfg", "blue")]);
    v2.allow_mass_deletion = true;
    b.apply(&v2).await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "big");
    assert!(
        cms.get_opt("blob0").await.unwrap().is_none(),
        "2 pruned the blobs"
    );
    let results = b.rollback(&op(rel, 3), 1).await.unwrap();
    assert_eq!(
        result_for(&results, "configmap/big/blob2").action,
        ObjectAction::Created
    );
    for (i, want) in v1.iter().enumerate() {
        let got = cms.get(&format!("blob{i}")).await.unwrap();
        assert_eq!(
            got.data.unwrap()["blob"],
            want["data"]["blob"].as_str().unwrap(),
            "blob{i} restored as revision 1 had it"
        );
    }
    // History limit 2: revision 1 is trimmed, every part of it.
    for name in &names {
        assert!(
            secrets.get_opt(name).await.unwrap().is_none(),
            "{name} outlived its revision"
        );
    }
    let kept = secrets.get("convoy.big.hist.v3").await.unwrap();
    assert!(kept.annotations().contains_key("convoy.dev/parts"));
}

// ---------------------------------------------------------------- intent before apply

/// An agent killed in the middle of an apply (its future dropped, as a SIGKILL would)
/// leaves a pending revision that owns what it may have created; the next agent marks
/// it failed at start, and a rollback from it prunes every object the killed apply
/// created: none is left that no revision owns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apply_killed_midway_leaves_nothing_unowned() {
    let cluster = ControlPlane::start("agent-intent").await.unwrap();
    let client = cluster.client().await;
    create_namespace(&client, "intent").await;
    let b = Arc::new(backend(
        client.clone(),
        "agent-intent",
        5,
        Duration::from_secs(30),
    ));
    let rel = "kill.intent";
    b.apply(&request(rel, 1, "intent", &[configmap("base", "blue")]))
        .await
        .unwrap();
    let mut v2 = vec![configmap("base", "green")];
    v2.extend((0..150).map(|i| configmap(&format!("n{i}"), "red")));
    let req = request(rel, 2, "intent", &v2);
    let applying = {
        let b = b.clone();
        tokio::spawn(async move { b.apply(&req).await })
    };
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "intent");
    let deadline = Instant::now() + Duration::from_secs(30);
    let created = loop {
        let names: Vec<String> = cms
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .iter()
            .map(|c| c.name_any())
            .filter(|n| n.starts_with('n'))
            .collect();
        if !names.is_empty() {
            applying.abort();
            break names.len();
        }
        assert!(Instant::now() < deadline, "revision 2 never started applying");
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    assert!(applying.await.is_err(), "the apply was killed, not finished");
    println!("killed with {created}+ of 150 new objects applied");

    // The next agent settles the interrupted revision, then rolls back from it.
    let restarted = backend(client.clone(), "agent-intent-2", 5, Duration::from_secs(30));
    let settled = restarted.recover().await.unwrap();
    assert_eq!(settled, vec![(rel.to_string(), 2)]);
    let deployed = restarted.deployed().await.unwrap();
    let d = deployed.iter().find(|d| d.release == rel).unwrap();
    assert_eq!((d.revision, d.kept.clone()), (1, vec![1, 2]), "{deployed:?}");
    restarted.rollback(&op(rel, 3), 1).await.unwrap();
    let left: Vec<String> = cms
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|c| c.name_any())
        .collect();
    assert_eq!(
        left,
        ["base"],
        "objects of the killed apply outlived the rollback"
    );
    assert_eq!(color_of(&client, "intent", "base").await.as_deref(), Some("blue"));
}

// ---------------------------------------------------------------- in-cluster canary

/// `web` with 4 replicas mounting the ConfigMap `web-conf`.
fn canary_web(behavior: &str, image: &str) -> Value {
    let mut d = deployment("web", 4, behavior, image);
    d["spec"]["template"]["spec"]["volumes"] = json!([{"name": "conf", "configMap": {"name": "web-conf"}}]);
    d["spec"]["template"]["spec"]["containers"][0]["volumeMounts"] =
        json!([{"name": "conf", "mountPath": "/etc/web"}]);
    d
}

fn canary_render(behavior: &str, image: &str, color: &str) -> Vec<Value> {
    vec![
        configmap("web-conf", color),
        canary_web(behavior, image),
        service("web", "ClusterIP"),
    ]
}

fn canary_step(
    release: &str,
    revision: u64,
    step: u32,
    namespace: &str,
    objects: &[Value],
    weight: u32,
) -> CanaryRequest {
    let mut apply = request(release, revision, namespace, objects);
    apply.op.operation_id = format!("op-{release}-{revision}~canary-{step}");
    CanaryRequest {
        apply,
        weight_percent: weight,
    }
}

/// Applies a canary step and watches it, as the runtime does.
async fn run_canary(b: &KubeBackend, req: &CanaryRequest) -> (Vec<ObjectResult>, HealthOutcome) {
    let results = b.apply_canary_until(req, CancellationToken::new()).await.unwrap();
    let workloads: Vec<_> = results
        .iter()
        .filter(|r| r.object.kind == "Deployment" && r.action != ObjectAction::Pruned)
        .map(|r| r.object.clone())
        .collect();
    let (tx, mut rx) = mpsc::channel(256);
    let drain = tokio::spawn(async move { while rx.recv().await.is_some() {} });
    let outcome = b
        .watch_canary(
            &req.apply.op,
            &workloads,
            policy(60, 1),
            tx,
            CancellationToken::new(),
        )
        .await;
    drain.await.unwrap();
    (results, outcome)
}

/// The generation, image and pod template of `name`.
async fn deployment_state(client: &Client, ns: &str, name: &str) -> Option<(i64, String, Value)> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let d = api.get_opt(name).await.unwrap()?;
    let spec = d.spec.unwrap();
    let image = spec.template.spec.as_ref().unwrap().containers[0]
        .image
        .clone()
        .unwrap();
    Some((
        d.metadata.generation.unwrap(),
        image,
        serde_json::to_value(&spec.template).unwrap(),
    ))
}

async fn ready_replicas(client: &Client, ns: &str, name: &str) -> (i32, i32) {
    let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let d = api.get(name).await.unwrap();
    let status = d.status.unwrap_or_default();
    (
        d.spec.unwrap().replicas.unwrap_or(1),
        status.ready_replicas.unwrap_or(0),
    )
}

/// The IPs of the running pods matching `selector` (not being deleted).
async fn pod_ips(client: &Client, ns: &str, selector: &str) -> std::collections::BTreeSet<String> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    api.list(&ListParams::default().labels(selector))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| p.status?.pod_ip)
        .collect()
}

async fn endpoint_ips(client: &Client, ns: &str, name: &str) -> std::collections::BTreeSet<String> {
    let api: Api<Endpoints> = Api::namespaced(client.clone(), ns);
    let Some(e) = api.get_opt(name).await.unwrap() else {
        return Default::default();
    };
    e.subsets
        .unwrap_or_default()
        .into_iter()
        .flat_map(|s| s.addresses.unwrap_or_default())
        .map(|a| a.ip)
        .collect()
}

/// The canary Deployments and ConfigMaps in `ns`, as `kind/name`.
async fn canary_objects(client: &Client, ns: &str) -> Vec<String> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let mut names: Vec<String> = deployments
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|d| format!("deployment/{}", d.name_any()))
        .collect();
    names.extend(
        names_in(client, ns)
            .await
            .into_iter()
            .map(|n| format!("configmap/{n}")),
    );
    names.retain(|n| n.ends_with("-canary"));
    names
}

async fn canary_lifecycle(b: &KubeBackend, client: &Client) {
    let (rel, ns) = ("web.canary", "canary");
    b.apply(&request(
        rel,
        1,
        ns,
        &canary_render("healthy,after=300ms", "registry.example/web:1", "blue"),
    ))
    .await
    .unwrap();
    let (outcome, _) = watch(b, &op(rel, 1), policy(60, 1)).await;
    assert!(matches!(outcome, HealthOutcome::Healthy { .. }), "{outcome:?}");
    let primary = deployment_state(client, ns, "web").await.unwrap();
    assert_eq!(primary.1, "registry.example/web:1");

    // Revision 2 as a canary at 25 %: ceil(4 * 25 / 75) = 2 pods beside the 4.
    let v2 = canary_render("healthy,after=300ms", "registry.example/web:2", "green");
    let (results, outcome) = run_canary(b, &canary_step(rel, 2, 1, ns, &v2, 25)).await;
    assert!(matches!(outcome, HealthOutcome::Healthy { .. }), "{outcome:?}");
    assert_eq!(
        actions(&results),
        vec![
            ("configmap/canary/web-conf-canary".into(), ObjectAction::Created),
            ("deployment/canary/web-canary".into(), ObjectAction::Created),
        ]
    );
    assert_eq!(ready_replicas(client, ns, "web-canary").await, (2, 2));
    let canary = deployment_state(client, ns, "web-canary").await.unwrap();
    assert_eq!(canary.1, "registry.example/web:2");
    assert_eq!(
        canary.2["spec"]["volumes"][0]["configMap"]["name"],
        "web-conf-canary"
    );
    assert_eq!(canary.2["metadata"]["labels"]["convoy.dev/track"], "canary");
    assert_eq!(
        color_of(client, ns, "web-conf-canary").await.as_deref(),
        Some("green")
    );
    assert_eq!(color_of(client, ns, "web-conf").await.as_deref(), Some("blue"));
    // The primary is untouched: same generation, image and pod template.
    assert_eq!(deployment_state(client, ns, "web").await.unwrap(), primary);
    // The Service (its selector as rendered) sends traffic to both.
    let services: Api<k8s_openapi::api::core::v1::Service> = Api::namespaced(client.clone(), ns);
    let selector = services.get("web").await.unwrap().spec.unwrap().selector.unwrap();
    assert_eq!(
        selector.into_iter().collect::<Vec<_>>(),
        [("app".to_string(), "web".to_string())]
    );
    let primary_ips = pod_ips(client, ns, "app=web,convoy.dev/track!=canary").await;
    let canary_ips = pod_ips(client, ns, "app=web,convoy.dev/track=canary").await;
    assert_eq!((primary_ips.len(), canary_ips.len()), (4, 2));
    let want: std::collections::BTreeSet<String> = primary_ips.union(&canary_ips).cloned().collect();
    let give_up = Instant::now() + Duration::from_secs(30);
    loop {
        let got = endpoint_ips(client, ns, "web").await;
        if got == want {
            break;
        }
        assert!(Instant::now() < give_up, "endpoints {got:?}, want {want:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // The history still says revision 1.
    let d = b
        .deployed()
        .await
        .unwrap()
        .into_iter()
        .find(|d| d.release == rel)
        .unwrap();
    assert_eq!((d.revision, d.healthy, d.kept.clone()), (1, true, vec![1]));

    // At 50 %: rescaled to 4.
    let (results, outcome) = run_canary(b, &canary_step(rel, 2, 2, ns, &v2, 50)).await;
    assert!(matches!(outcome, HealthOutcome::Healthy { .. }), "{outcome:?}");
    assert_eq!(
        result_for(&results, "deployment/canary/web-canary").action,
        ObjectAction::Configured
    );
    assert_eq!(ready_replicas(client, ns, "web-canary").await, (4, 4));
    assert_eq!(deployment_state(client, ns, "web").await.unwrap(), primary);

    // Rollback to 1, recorded as 3: the runtime removes the canary right after it.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let spec_before = serde_json::to_value(deployments.get("web").await.unwrap().spec).unwrap();
    let results = b.rollback(&op(rel, 3), 1).await.unwrap();
    assert!(
        results.iter().all(|r| r.action != ObjectAction::Pruned),
        "{results:#?}"
    );
    let removed = b.remove_canary(rel, ns).await.unwrap();
    assert_eq!(
        actions(&removed),
        vec![
            ("configmap/canary/web-conf-canary".into(), ObjectAction::Pruned),
            ("deployment/canary/web-canary".into(), ObjectAction::Pruned),
        ]
    );
    assert_eq!(canary_objects(client, ns).await, Vec::<String>::new());
    let (outcome, _) = watch(b, &op(rel, 3), policy(60, 1)).await;
    assert!(matches!(outcome, HealthOutcome::Healthy { .. }), "{outcome:?}");
    // `web` is unchanged: the same spec, image and pod template (no pod rolled). Its
    // generation moved on: the rollback stamps `convoy.dev/revision: 3` on its
    // metadata, and the API server bumps a Deployment's generation on any change to
    // its annotations (as for every rollback, canary or not).
    let after = deployment_state(client, ns, "web").await.unwrap();
    assert_eq!((&after.1, &after.2), (&primary.1, &primary.2));
    let spec_after = serde_json::to_value(deployments.get("web").await.unwrap().spec).unwrap();
    assert_eq!(spec_after, spec_before);
    let d = b
        .deployed()
        .await
        .unwrap()
        .into_iter()
        .find(|d| d.release == rel)
        .unwrap();
    assert_eq!((d.revision, d.kept.clone()), (3, vec![1, 3]));

    // A canary of revision 4, then its promotion: revision 4 deployed, healthy, and
    // the canary removed (as the runtime does before reporting healthy).
    let v4 = canary_render("healthy,after=300ms", "registry.example/web:4", "purple");
    let (_, outcome) = run_canary(b, &canary_step(rel, 4, 1, ns, &v4, 25)).await;
    assert!(matches!(outcome, HealthOutcome::Healthy { .. }), "{outcome:?}");
    assert_eq!(canary_objects(client, ns).await.len(), 2);
    let results = b.apply(&request(rel, 4, ns, &v4)).await.unwrap();
    assert!(
        results.iter().all(|r| !r.object.name.contains("-canary")),
        "a deploy neither applies nor prunes canary objects: {results:#?}"
    );
    let (outcome, _) = watch(b, &op(rel, 4), policy(60, 1)).await;
    assert!(matches!(outcome, HealthOutcome::Healthy { .. }), "{outcome:?}");
    assert_eq!(b.remove_canary(rel, ns).await.unwrap().len(), 2);
    assert_eq!(canary_objects(client, ns).await, Vec::<String>::new());
    let promoted = deployment_state(client, ns, "web").await.unwrap();
    assert_eq!(promoted.1, "registry.example/web:4");
    assert_eq!(color_of(client, ns, "web-conf").await.as_deref(), Some("purple"));
    assert!(b.remove_canary(rel, ns).await.unwrap().is_empty());
}

async fn crashing_canary(b: &KubeBackend, client: &Client) {
    let (rel, ns) = ("web.canary-crash", "canary-crash");
    b.apply(&request(
        rel,
        1,
        ns,
        &canary_render("healthy,after=300ms", "registry.example/web:1", "blue"),
    ))
    .await
    .unwrap();
    let (outcome, _) = watch(b, &op(rel, 1), policy(60, 1)).await;
    assert!(matches!(outcome, HealthOutcome::Healthy { .. }), "{outcome:?}");
    let primary = deployment_state(client, ns, "web").await.unwrap();
    let v2 = canary_render("crashloop,after=500ms", "registry.example/web:2", "green");
    let (_, outcome) = run_canary(b, &canary_step(rel, 2, 1, ns, &v2, 10)).await;
    let message = expect_failure(&outcome, FailureReason::CrashLoopBackOff);
    assert!(message.contains("web-canary"), "{message}");
    match &outcome {
        HealthOutcome::Failed(f) => assert_eq!(f.object.as_ref().unwrap().name, "web-canary"),
        _ => unreachable!(),
    }
    assert_eq!(deployment_state(client, ns, "web").await.unwrap(), primary);
    // No Deployment in the render: refused before anything changes.
    let err = b
        .apply_canary_until(
            &canary_step(rel, 3, 1, ns, &[configmap("web-conf", "red")], 10),
            CancellationToken::new(),
        )
        .await
        .unwrap_err()
        .into_failure();
    assert_eq!(err.reason, FailureReason::NoCanaryWorkload);
    assert_eq!(b.remove_canary(rel, ns).await.unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_cluster_canary_on_the_real_controllers() {
    let cluster = TestCluster::start("agent-canary").await.unwrap();
    let client = cluster.client().await;
    for ns in ["canary", "canary-crash"] {
        create_namespace(&client, ns).await;
    }
    let b = backend(client.clone(), "agent-canary", 10, Duration::from_secs(30));
    tokio::join!(canary_lifecycle(&b, &client), crashing_canary(&b, &client));
    assert!(cluster.pods.errors().is_empty(), "{:?}", cluster.pods.errors());
}

// ---------------------------------------------------------------- in-cluster blue/green

/// `web` with 2 replicas mounting `web-conf`, and the Service `web` selecting it.
fn bg_render(image: &str, color: &str) -> Vec<Value> {
    let mut web = canary_web("healthy,after=300ms", image);
    web["spec"]["replicas"] = json!(2);
    vec![configmap("web-conf", color), web, service("web", "ClusterIP")]
}

fn bg_request(release: &str, revision: u64, namespace: &str, objects: &[Value]) -> ApplyRequest {
    let mut r = request(release, revision, namespace, objects);
    r.blue_green = Some(convoy_agent::backend::BlueGreen {
        preview_service: true,
    });
    r
}

/// Waits until the Endpoints of `name` are exactly `want`; returns how long it took.
async fn wait_endpoints(
    client: &Client,
    ns: &str,
    name: &str,
    want: &std::collections::BTreeSet<String>,
) -> Duration {
    let start = Instant::now();
    let give_up = start + Duration::from_secs(30);
    loop {
        let got = endpoint_ips(client, ns, name).await;
        if &got == want {
            return start.elapsed();
        }
        assert!(
            Instant::now() < give_up,
            "endpoints of {name}: {got:?}, want {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The pods matching `selector`, name to uid (not being deleted).
async fn pod_uids(client: &Client, ns: &str, selector: &str) -> std::collections::BTreeMap<String, String> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    api.list(&ListParams::default().labels(selector))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .map(|p| (p.name_any(), p.uid().unwrap_or_default()))
        .collect()
}

/// What the agent's retirement task does, once.
async fn retire_due(b: &KubeBackend, release: &str) -> Vec<ObjectResult> {
    let mut out = Vec::new();
    for (r, revision) in b.retirements_due().await.unwrap() {
        if r == release {
            out.extend(b.retire(&r, revision).await.unwrap());
        }
    }
    out
}

async fn slot_state(b: &KubeBackend, release: &str) -> (u64, Option<String>, bool) {
    let d = b
        .deployed()
        .await
        .unwrap()
        .into_iter()
        .find(|d| d.release == release)
        .unwrap();
    (d.revision, d.slot, d.switched)
}

async fn selector_of(client: &Client, ns: &str, name: &str) -> std::collections::BTreeMap<String, String> {
    let services: Api<k8s_openapi::api::core::v1::Service> = Api::namespaced(client.clone(), ns);
    services.get(name).await.unwrap().spec.unwrap().selector.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blue_green_on_the_real_controllers() {
    let cluster = TestCluster::start("agent-bluegreen").await.unwrap();
    let client = cluster.client().await;
    let (rel, ns) = ("web.bg", "bg");
    create_namespace(&client, ns).await;
    let b = backend(client.clone(), "agent-bluegreen", 10, Duration::from_secs(30));

    // Revision 1 without slots.
    b.apply(&request(rel, 1, ns, &bg_render("registry.example/web:1", "one")))
        .await
        .unwrap();
    let (outcome, _) = watch(&b, &op(rel, 1), policy(60, 1)).await;
    assert!(matches!(outcome, HealthOutcome::Healthy { .. }), "{outcome:?}");
    let old_ips = pod_ips(&client, ns, "app=web").await;
    assert_eq!(old_ips.len(), 2);
    wait_endpoints(&client, ns, "web", &old_ips).await;
    let old_web = deployment_state(&client, ns, "web").await.unwrap();

    // Revision 2 staged into blue, beside the old objects (kept, not pruned).
    let results = b
        .apply(&bg_request(
            rel,
            2,
            ns,
            &bg_render("registry.example/web:2", "two"),
        ))
        .await
        .unwrap();
    assert_eq!(
        actions(&results),
        vec![
            ("configmap/bg/web-conf-blue".into(), ObjectAction::Created),
            ("deployment/bg/web-blue".into(), ObjectAction::Created),
            // The revision stamp on its metadata only: the selector is as it was.
            ("service/bg/web".into(), ObjectAction::Configured),
            ("service/bg/web-preview".into(), ObjectAction::Created),
        ]
    );
    let (outcome, _) = watch(&b, &op(rel, 2), policy(60, 1)).await;
    assert!(matches!(outcome, HealthOutcome::Healthy { .. }), "{outcome:?}");
    assert_eq!(ready_replicas(&client, ns, "web-blue").await, (2, 2));
    let blue = deployment_state(&client, ns, "web-blue").await.unwrap();
    assert_eq!(blue.2["spec"]["volumes"][0]["configMap"]["name"], "web-conf-blue");
    assert_eq!(blue.2["metadata"]["labels"]["convoy.dev/slot"], "blue");
    assert_eq!(
        color_of(&client, ns, "web-conf-blue").await.as_deref(),
        Some("two")
    );
    assert_eq!(color_of(&client, ns, "web-conf").await.as_deref(), Some("one"));
    assert_eq!(deployment_state(&client, ns, "web").await.unwrap(), old_web);
    let blue_ips = pod_ips(&client, ns, "app=web,convoy.dev/slot=blue").await;
    assert_eq!(blue_ips.len(), 2);
    assert_eq!(pod_ips(&client, ns, "app=web,!convoy.dev/slot").await, old_ips);
    // With no live slot (the release ran without slots), the Service's selector stays
    // as rendered (`agent.proto`): it selects the old pods AND the blue ones until the
    // switch. The preview selects blue only.
    assert_eq!(
        selector_of(&client, ns, "web")
            .await
            .into_iter()
            .collect::<Vec<_>>(),
        [("app".to_string(), "web".to_string())]
    );
    let both: std::collections::BTreeSet<String> = old_ips.union(&blue_ips).cloned().collect();
    wait_endpoints(&client, ns, "web", &both).await;
    wait_endpoints(&client, ns, "web-preview", &blue_ips).await;
    assert_eq!(slot_state(&b, rel).await, (2, Some("blue".into()), false));
    let err = b.switch_slot(&op(rel, 1), Duration::ZERO).await.unwrap_err();
    assert_eq!(err.reason, FailureReason::RevisionNotInHistory);

    // Switch to blue, retiring the old objects after 3 s.
    let results = b.switch_slot(&op(rel, 2), Duration::from_secs(3)).await.unwrap();
    let switched_at = Instant::now();
    assert_eq!(
        actions(&results),
        vec![("service/bg/web".into(), ObjectAction::Configured)]
    );
    let took = wait_endpoints(&client, ns, "web", &blue_ips).await;
    eprintln!("blue/green: Endpoints on blue {took:?} after the switch");
    assert_eq!(slot_state(&b, rel).await, (2, Some("blue".into()), true));
    assert!(retire_due(&b, rel).await.is_empty(), "not yet");
    assert!(deployment_state(&client, ns, "web").await.is_some());
    let retired = loop {
        let retired = retire_due(&b, rel).await;
        if !retired.is_empty() {
            break retired;
        }
        assert!(
            switched_at.elapsed() < Duration::from_secs(15),
            "web was not retired"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let after = switched_at.elapsed();
    assert!(after >= Duration::from_secs(3), "retired after {after:?}");
    eprintln!("blue/green: the old objects retired {after:?} after the switch (window 3 s)");
    assert_eq!(
        actions(&retired),
        vec![
            ("configmap/bg/web-conf".into(), ObjectAction::Pruned),
            ("deployment/bg/web".into(), ObjectAction::Pruned),
        ]
    );
    assert!(deployment_state(&client, ns, "web").await.is_none());
    assert!(color_of(&client, ns, "web-conf").await.is_none());
    assert!(retire_due(&b, rel).await.is_empty(), "done once");

    // Revision 3 into green beside blue; the Service stays on blue.
    let results = b
        .apply(&bg_request(
            rel,
            3,
            ns,
            &bg_render("registry.example/web:3", "three"),
        ))
        .await
        .unwrap();
    assert!(
        results.iter().all(|r| r.action != ObjectAction::Pruned),
        "{results:#?}"
    );
    let (outcome, _) = watch(&b, &op(rel, 3), policy(60, 1)).await;
    assert!(matches!(outcome, HealthOutcome::Healthy { .. }), "{outcome:?}");
    let green_ips = pod_ips(&client, ns, "app=web,convoy.dev/slot=green").await;
    assert_eq!(green_ips.len(), 2);
    wait_endpoints(&client, ns, "web-preview", &green_ips).await;
    assert_eq!(endpoint_ips(&client, ns, "web").await, blue_ips);
    assert_eq!(selector_of(&client, ns, "web").await["convoy.dev/slot"], "blue");
    assert_eq!(
        color_of(&client, ns, "web-conf-green").await.as_deref(),
        Some("three")
    );
    assert_eq!(
        color_of(&client, ns, "web-conf-blue").await.as_deref(),
        Some("two")
    );
    assert_eq!(
        deployment_state(&client, ns, "web-blue").await.unwrap(),
        blue,
        "blue untouched"
    );
    b.switch_slot(&op(rel, 3), Duration::from_secs(600))
        .await
        .unwrap();
    wait_endpoints(&client, ns, "web", &green_ips).await;
    assert_eq!(slot_state(&b, rel).await, (3, Some("green".into()), true));

    // Roll back to 2, recorded as 4: a selector switch back to blue.
    let blue_pods = pod_uids(&client, ns, "app=web,convoy.dev/slot=blue").await;
    let start = Instant::now();
    let results = b.rollback(&op(rel, 4), 2).await.unwrap();
    // As the runtime does after a rollback: nothing of blue/green is a canary object.
    assert!(b.remove_canary(rel, ns).await.unwrap().is_empty());
    wait_endpoints(&client, ns, "web", &blue_ips).await;
    let switch_back = start.elapsed();
    eprintln!(
        "blue/green: switch-back by rollback took {switch_back:?} (rollback command to Endpoints on the blue pods)"
    );
    assert_eq!(
        result_for(&results, "service/bg/web").action,
        ObjectAction::Configured
    );
    assert_eq!(
        result_for(&results, "deployment/bg/web-green").action,
        ObjectAction::Pruned
    );
    assert_eq!(
        result_for(&results, "configmap/bg/web-conf-green").action,
        ObjectAction::Pruned
    );
    assert_eq!(selector_of(&client, ns, "web").await["convoy.dev/slot"], "blue");
    wait_endpoints(&client, ns, "web-preview", &blue_ips).await;
    let (outcome, _) = watch(&b, &op(rel, 4), policy(60, 1)).await;
    assert!(matches!(outcome, HealthOutcome::Healthy { .. }), "{outcome:?}");
    // Blue's pods were never restarted: the same pods, the same template.
    assert_eq!(
        pod_uids(&client, ns, "app=web,convoy.dev/slot=blue").await,
        blue_pods
    );
    let after = deployment_state(&client, ns, "web-blue").await.unwrap();
    assert_eq!((&after.1, &after.2), (&blue.1, &blue.2));
    assert!(deployment_state(&client, ns, "web-green").await.is_none());
    assert_eq!(slot_state(&b, rel).await, (4, Some("blue".into()), true));
    // Revision 3's retirement (of blue) was cancelled by the rollback.
    assert!(b.retirements_due().await.unwrap().is_empty());
    assert!(b.retire(rel, 3).await.unwrap().is_empty());

    // The next blue/green revision goes into green again, beside blue.
    b.apply(&bg_request(
        rel,
        5,
        ns,
        &bg_render("registry.example/web:5", "five"),
    ))
    .await
    .unwrap();
    let (outcome, _) = watch(&b, &op(rel, 5), policy(60, 1)).await;
    assert!(matches!(outcome, HealthOutcome::Healthy { .. }), "{outcome:?}");
    assert_eq!(slot_state(&b, rel).await, (5, Some("green".into()), false));
    assert_eq!(selector_of(&client, ns, "web").await["convoy.dev/slot"], "blue");
    assert_eq!(
        pod_uids(&client, ns, "app=web,convoy.dev/slot=blue").await,
        blue_pods
    );
    assert_eq!(
        pod_ips(&client, ns, "app=web,convoy.dev/slot=green").await.len(),
        2
    );
    assert!(cluster.pods.errors().is_empty(), "{:?}", cluster.pods.errors());
}

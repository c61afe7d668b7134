//! The real services the other tests stand on: two independent Kubernetes control
//! planes whose controllers roll Deployments out with the pod simulator's pods,
//! OpenBao serving KV v2, and clear failures when a service does not start.

use std::time::{Duration, Instant};

use convoy_tests::kube::TestCluster;
use convoy_tests::openbao::OpenBao;
use convoy_tests::process::Service;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

fn deployment(name: &str, replicas: i32, behavior: &str, progress_deadline: i32) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "progressDeadlineSeconds": progress_deadline,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}, "annotations": {"sim.convoy.dev/behavior": behavior}},
                "spec": {"containers": [{"name": "app", "image": "registry.example/app:1.0"}]}
            }
        }
    }))
    .expect("valid deployment")
}

/// Polls `check` every 200ms until it returns Some, or fails the test after `timeout`.
async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn condition(d: &Deployment, ty: &str) -> Option<(String, String)> {
    d.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == ty)
        .map(|c| (c.status.clone(), c.reason.clone().unwrap_or_default()))
}

async fn wait_available(client: Client, name: &str, replicas: i32) -> Deployment {
    let api: Api<Deployment> = Api::namespaced(client, "default");
    eventually(
        &format!("deployment {name} Available with {replicas} replicas"),
        Duration::from_secs(90),
        || {
            let api = api.clone();
            async move {
                let d = api.get(name).await.ok()?;
                let s = d.status.clone()?;
                let available = condition(&d, "Available").is_some_and(|(st, _)| st == "True");
                (available && s.available_replicas == Some(replicas) && s.updated_replicas == Some(replicas))
                    .then_some(d)
            }
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_control_planes_each_roll_out_a_deployment() {
    let (a, b) = tokio::join!(TestCluster::start("east"), TestCluster::start("west"));
    let (a, b) = (a.unwrap(), b.unwrap());
    for c in [&a, &b] {
        let t = c.control_plane.startup;
        eprintln!(
            "{}: etcd {:?}, kube-apiserver {:?}, kube-controller-manager {:?}",
            c.control_plane.name(),
            t.etcd,
            t.apiserver,
            t.controller_manager
        );
    }
    assert_ne!(a.control_plane.server(), b.control_plane.server());

    for (cluster, replicas) in [(&a, 2), (&b, 3)] {
        let api: Api<Deployment> = Api::namespaced(cluster.client().await, "default");
        api.create(
            &PostParams::default(),
            &deployment("web", replicas, "healthy,after=500ms", 60),
        )
        .await
        .unwrap();
    }
    let (da, db) = tokio::join!(
        wait_available(a.client().await, "web", 2),
        wait_available(b.client().await, "web", 3)
    );
    assert_eq!(da.status.unwrap().ready_replicas, Some(2));
    assert_eq!(db.status.unwrap().ready_replicas, Some(3));

    // The clusters are independent: each holds only its own pods, bound to its own node.
    for (cluster, want) in [(&a, 2), (&b, 3)] {
        let pods: Api<Pod> = Api::namespaced(cluster.client().await, "default");
        let list = pods.list(&ListParams::default().labels("app=web")).await.unwrap();
        assert_eq!(list.items.len(), want, "{}", cluster.control_plane.name());
        for p in list.items {
            assert_eq!(p.spec.unwrap().node_name.as_deref(), Some(cluster.pods.node()));
        }
    }

    // A rolling update replaces the pods, and the simulator finishes the old pods'
    // deletion (they would otherwise stay Terminating and block the rollout).
    let api: Api<Deployment> = Api::namespaced(a.client().await, "default");
    let mut d = api.get("web").await.unwrap();
    d.spec
        .as_mut()
        .unwrap()
        .template
        .spec
        .as_mut()
        .unwrap()
        .containers[0]
        .image = Some("registry.example/app:2.0".into());
    api.replace("web", &PostParams::default(), &d).await.unwrap();
    let pods: Api<Pod> = Api::namespaced(a.client().await, "default");
    eventually(
        "only 2.0 pods left after the rolling update",
        Duration::from_secs(90),
        || {
            let pods = pods.clone();
            async move {
                let list = pods.list(&ListParams::default().labels("app=web")).await.ok()?;
                let images: Vec<String> = list
                    .items
                    .iter()
                    .filter_map(|p| p.spec.as_ref()?.containers[0].image.clone())
                    .collect();
                (images.len() == 2 && images.iter().all(|i| i.ends_with(":2.0"))).then_some(())
            }
        },
    )
    .await;
    wait_available(a.client().await, "web", 2).await;
    assert!(
        a.pods.errors().is_empty(),
        "pod simulator errors: {:?}",
        a.pods.errors()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_ready_pods_reach_progress_deadline_and_crashes_show() {
    let cluster = TestCluster::start("deadline").await.unwrap();
    let client = cluster.client().await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    deployments
        .create(&PostParams::default(), &deployment("stuck", 1, "never-ready", 5))
        .await
        .unwrap();
    deployments
        .create(
            &PostParams::default(),
            &deployment("crasher", 1, "crashloop,after=500ms", 600),
        )
        .await
        .unwrap();
    let job: Job = serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "migrate"},
        "spec": {"backoffLimit": 0, "template": {
            "metadata": {"annotations": {"sim.convoy.dev/behavior": "healthy,after=500ms"}},
            "spec": {"restartPolicy": "Never", "containers": [{"name": "migrate", "image": "registry.example/migrate:1"}]}
        }}
    }))
    .unwrap();
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    jobs.create(&PostParams::default(), &job).await.unwrap();

    // The real deployment controller declares the never-ready rollout stuck.
    let reason = eventually(
        "ProgressDeadlineExceeded on deployment stuck",
        Duration::from_secs(90),
        || {
            let api = deployments.clone();
            async move {
                let d = api.get("stuck").await.ok()?;
                condition(&d, "Progressing")
                    .filter(|(st, _)| st == "False")
                    .map(|(_, r)| r)
            }
        },
    )
    .await;
    assert_eq!(reason, "ProgressDeadlineExceeded");
    let stuck = deployments.get("stuck").await.unwrap();
    assert_eq!(stuck.status.unwrap().available_replicas.unwrap_or(0), 0);

    // A crash-looping pod shows CrashLoopBackOff with climbing restarts, never ready.
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let restarts = eventually(
        "a crash-looping pod with 2 restarts",
        Duration::from_secs(60),
        || {
            let pods = pods.clone();
            async move {
                let list = pods
                    .list(&ListParams::default().labels("app=crasher"))
                    .await
                    .ok()?;
                let cs = list.items.first()?.status.as_ref()?.container_statuses.clone()?;
                let c = cs.first()?;
                let waiting = c.state.as_ref()?.waiting.as_ref()?.reason.clone()?;
                assert!(!c.ready);
                (waiting == "CrashLoopBackOff" && c.restart_count >= 2).then_some(c.restart_count)
            }
        },
    )
    .await;
    assert!(restarts >= 2);

    // A Job's pod runs to completion and the job controller marks it complete.
    eventually("job migrate complete", Duration::from_secs(60), || {
        let jobs = jobs.clone();
        async move { (jobs.get("migrate").await.ok()?.status?.succeeded == Some(1)).then_some(()) }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openbao_serves_kv2_secrets() {
    let bao = OpenBao::start().await.unwrap();
    eprintln!("openbao started in {:?}", bao.startup);
    let v1 = bao
        .kv2_put("secret", "dev/ns1/app1/test", json!({"password": "hunter2"}))
        .await
        .unwrap();
    let v2 = bao
        .kv2_put("secret", "dev/ns1/app1/test", json!({"password": "hunter3"}))
        .await
        .unwrap();
    assert_eq!((v1, v2), (1, 2));
    let latest = bao
        .api("GET", "secret/data/dev/ns1/app1/test", None)
        .await
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(latest["data"]["data"]["password"], "hunter3");
    assert_eq!(latest["data"]["metadata"]["version"], 2);
    let old = bao
        .api("GET", "secret/data/dev/ns1/app1/test?version=1", None)
        .await
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(old["data"]["data"]["password"], "hunter2");
    // A wrong token is refused: the server really checks.
    let url = format!("{}/v1/secret/data/dev/ns1/app1/test", bao.addr());
    let denied = convoy_tests::http::request("GET", &url, &[("X-Vault-Token", "wrong")], None)
        .await
        .unwrap();
    assert_eq!(denied.status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_that_fails_to_start_is_named_with_its_log_tail() {
    let dir = tempfile::tempdir().unwrap();
    let etcd = convoy_tests::tools::etcd().unwrap();
    let mut cmd = std::process::Command::new(etcd);
    cmd.arg("--no-such-flag");
    let mut svc = Service::spawn("broken-etcd", cmd, dir.path().join("etcd.log")).unwrap();
    let err = svc
        .wait_ready(Duration::from_secs(30), || async { false })
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("broken-etcd failed to start"), "{err}");
    assert!(err.contains("exited"), "{err}");
    assert!(err.contains("no-such-flag"), "log tail missing: {err}");

    // A service that never becomes ready times out with its name, rather than hanging.
    let mut cmd = std::process::Command::new("sh");
    cmd.args(["-c", "echo starting up; sleep 60"]);
    let mut svc = Service::spawn("sleepy", cmd, dir.path().join("sleepy.log")).unwrap();
    let start = Instant::now();
    let err = svc
        .wait_ready(Duration::from_secs(1), || async { false })
        .await
        .unwrap_err()
        .to_string();
    assert!(start.elapsed() < Duration::from_secs(10));
    assert!(
        err.contains("sleepy failed to start: not ready after 1s"),
        "{err}"
    );
    assert!(err.contains("starting up"), "{err}");
}

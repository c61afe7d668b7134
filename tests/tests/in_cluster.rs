//! In-cluster canary and blue/green end to end: `convoyd` and three `convoy-agent`s
//! against three real control planes (with the pod simulator, the real Deployment,
//! ReplicaSet and Endpoints controllers), a real Prometheus scraping an exporter whose
//! error ratio per region the test sets, and a webhook receiver; driven through the
//! `convoy` CLI as a user would. One test walks the scenarios in order so the clusters
//! start once:
//! a canary that passes its analysis and webhook gates, held at an approval step while
//! the clusters are inspected (the canary beside the untouched primary, both behind the
//! Service), survives a coordinator SIGKILL at the same step, and is promoted in every
//! cluster; a canary whose error ratio rises in one region is aborted there and the
//! fleet is rolled back with the primaries untouched; a canary approval refused, and one
//! nobody answers; then blue/green: staged beside the live pods with a preview Service,
//! switched, staged again, switched, and switched back by `convoy rollback`.

use std::path::Path;
use std::time::{Duration, Instant};

use convoy_tests::convoy::{AgentProcess, Convoyd};
use convoy_tests::kube::TestCluster;
use convoy_tests::prometheus::{Exporter, Prometheus};
use convoy_tests::webhook::Receiver;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Endpoints, Pod, Service};
use kube::Api;
use kube::api::ListParams;
use serde_json::Value;

const CONTEXTS: [&str; 3] = ["east", "west", "south"];

struct Fleet {
    clusters: [TestCluster; 3],
    convoyd: Convoyd,
    _agents: Vec<AgentProcess>,
    dir: tempfile::TempDir,
}

impl Fleet {
    /// Runs `convoy ARGS` as an admin in the release files' directory.
    fn convoy(&self, args: &[&str]) -> (bool, String) {
        let out = std::process::Command::new(convoy_tests::convoy::binary("convoy").unwrap())
            .args(args)
            .args(["--server", &self.convoyd.addr])
            .current_dir(self.dir.path())
            .env("CONVOY_TOKEN", "t-admin")
            .env("COLUMNS", "200")
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    /// Writes release file `name`: image `image` (also the ConfigMap's message), 4
    /// replicas behind a Service, waves `waves`, and `strategy` keys added.
    fn release(&self, name: &str, image: &str, waves: &str, strategy: &str) {
        let chart = Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/web");
        let text = format!(
            "apiVersion: convoy.dev/v1\nkind: Release\nmetadata: {{name: web.shop, namespace: shop, environment: dev}}\n\
             spec:\n  chart: {{path: {}}}\n  values: {{image: \"{image}\", behavior: \"healthy,after=200ms\", message: \"{image}\", replicas: 4, service: true}}\n\
             \x20 contexts: [east, west, south]\n\
             \x20 secrets:\n    - secret_id: db\n      contexts:\n        - {{name: default, vaultPath: /kv/dev/shop/db, vaultKey: password}}\n\
             \x20 strategy: {{waves: {waves}, maxFailures: 0, onFailure: rollback{strategy}}}\n\
             \x20 health: {{progressDeadline: 1m, minReadyWindow: 1s}}\n",
            chart.display()
        );
        std::fs::write(self.dir.path().join(name), text).unwrap();
    }

    fn submit(&self, file: &str, reason: &str) {
        let (ok, out) = self.convoy(&["submit", "-f", file, "--reason", reason]);
        assert!(ok, "submit {file}: {out}");
    }

    /// `convoy status web.shop -o json`.
    fn status(&self) -> Value {
        let (_, out) = self.convoy(&["status", "web.shop", "-o", "json"]);
        serde_json::from_str(&out).unwrap_or_default()
    }

    /// Polls the status until `done` holds for the current (or last) operation.
    fn operation_until(&self, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let start = Instant::now();
        loop {
            let op = self.status()["currentOperation"].clone();
            if done(&op) {
                return op;
            }
            assert!(
                start.elapsed() < Duration::from_secs(180),
                "{what}: still {op:#}\n--- convoyd\n{}",
                self.convoyd.logs()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn cluster(&self, context: &str) -> &TestCluster {
        &self.clusters[CONTEXTS.iter().position(|c| *c == context).unwrap()]
    }
}

async fn start_fleet(gates: &str) -> Fleet {
    let started = Instant::now();
    let (east, west, south) = tokio::join!(
        TestCluster::start("east"),
        TestCluster::start("west"),
        TestCluster::start("south")
    );
    let clusters = [east.unwrap(), west.unwrap(), south.unwrap()];
    eprintln!("clusters up in {:?}", started.elapsed());
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("dev-secrets.yaml");
    std::fs::write(&secrets, "\"/kv/dev/shop/db#password\": dev-only-password\n").unwrap();
    let mut cfg = String::from("contexts:\n");
    for c in CONTEXTS {
        cfg.push_str(&format!(
            "  - {{name: {c}, region: {c}-1, env: dev, cloud: sim, clusterName: {c}-cluster}}\n"
        ));
    }
    cfg.push_str("auth:\n  tokens:\n    - {name: alice, role: admin, token: t-admin}\n  agents:\n");
    for c in CONTEXTS {
        cfg.push_str(&format!("    - {{context: {c}, token: agent-{c}}}\n"));
    }
    cfg.push_str(&format!(
        "dev_secrets_file: {}\nheartbeat_seconds: 2\n{gates}",
        secrets.display()
    ));
    let convoyd = Convoyd::start(&cfg).await.unwrap();
    let mut agents = Vec::new();
    for (c, cluster) in CONTEXTS.iter().zip(&clusters) {
        let kc = cluster.control_plane.kubeconfig_yaml();
        agents.push(
            AgentProcess::start(&convoyd.addr, c, &format!("agent-{c}"), Some(&kc), "")
                .await
                .unwrap(),
        );
    }
    Fleet {
        clusters,
        convoyd,
        _agents: agents,
        dir,
    }
}

async fn deployment(cluster: &TestCluster, name: &str) -> Option<Deployment> {
    Api::<Deployment>::namespaced(cluster.client().await, "shop")
        .get_opt(name)
        .await
        .unwrap()
}

fn image_of(d: &Deployment) -> String {
    d.spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0]
        .image
        .clone()
        .unwrap_or_default()
}

/// The names of the running pods selected by `selector`, sorted.
async fn pods(cluster: &TestCluster, selector: &str) -> Vec<(String, String)> {
    let list = Api::<Pod>::namespaced(cluster.client().await, "shop")
        .list(&ListParams::default().labels(selector))
        .await
        .unwrap();
    let mut out: Vec<(String, String)> = list
        .items
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .map(|p| {
            (
                p.metadata.name.clone().unwrap_or_default(),
                p.status
                    .as_ref()
                    .and_then(|s| s.pod_ip.clone())
                    .unwrap_or_default(),
            )
        })
        .collect();
    out.sort();
    out
}

/// The ready addresses' pod names of Service `name`'s Endpoints, sorted.
async fn endpoints(cluster: &TestCluster, name: &str) -> Vec<String> {
    let Some(e) = Api::<Endpoints>::namespaced(cluster.client().await, "shop")
        .get_opt(name)
        .await
        .unwrap()
    else {
        return Vec::new();
    };
    let mut out: Vec<String> = e
        .subsets
        .unwrap_or_default()
        .iter()
        .flat_map(|s| s.addresses.clone().unwrap_or_default())
        .filter_map(|a| a.target_ref.and_then(|t| t.name))
        .collect();
    out.sort();
    out
}

/// Waits until Service `name`'s endpoints are exactly the pods `selector` selects.
async fn endpoints_become(cluster: &TestCluster, name: &str, selector: &str) -> Vec<String> {
    let start = Instant::now();
    loop {
        let want: Vec<String> = pods(cluster, selector)
            .await
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        let got = endpoints(cluster, name).await;
        if !want.is_empty() && got == want {
            return got;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "service {name}: endpoints {got:?}, expected the pods of {selector}: {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Names of the objects of `kind` in `shop` whose name ends with `suffix`.
async fn named_like(cluster: &TestCluster, suffix: &str) -> Vec<String> {
    let client = cluster.client().await;
    let mut out = Vec::new();
    for d in Api::<Deployment>::namespaced(client.clone(), "shop")
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
    {
        out.push(format!("deployment/{}", d.metadata.name.unwrap_or_default()));
    }
    for c in Api::<ConfigMap>::namespaced(client.clone(), "shop")
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
    {
        out.push(format!("configmap/{}", c.metadata.name.unwrap_or_default()));
    }
    for s in Api::<Service>::namespaced(client, "shop")
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
    {
        out.push(format!("service/{}", s.metadata.name.unwrap_or_default()));
    }
    out.retain(|n| n.ends_with(suffix));
    out.sort();
    out
}

/// Sets `region`'s error ratio and waits until Prometheus scraped it.
async fn set_ratio(exporter: &Exporter, prometheus: &Prometheus, region: &str, ratio: f64) {
    exporter.set(region, ratio);
    prometheus
        .wait_for(
            &format!("app_error_ratio{{region=\"{region}\"}}"),
            ratio,
            Duration::from_secs(30),
        )
        .await
        .unwrap();
}

fn gate_states(op: &Value) -> Vec<(String, u64, u64, String)> {
    op["gates"]
        .as_array()
        .map(|gs| {
            gs.iter()
                .map(|g| {
                    (
                        g["name"].as_str().unwrap_or_default().to_string(),
                        g["beforeWave"].as_u64().unwrap_or_default(),
                        g["canaryStep"].as_u64().unwrap_or_default(),
                        g["state"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn context<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["contexts"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["context"] == name))
        .unwrap_or(&Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn in_cluster_canary_and_blue_green_on_three_clusters() {
    let exporter = Exporter::start().await.unwrap();
    for c in CONTEXTS {
        exporter.set(&format!("{c}-1"), 0.01);
    }
    let prometheus = Prometheus::start(&[&exporter.host]).await.unwrap();
    set_ratio(&exporter, &prometheus, "west-1", 0.01).await;
    let smoke = Receiver::start(0).await.unwrap();
    let mut fleet = start_fleet(&format!(
        "gates:\n  prometheus:\n    - {{name: main, url: \"{}\"}}\n  webhooks:\n    - {{name: smoke, url: \"{}\"}}\n",
        prometheus.url, smoke.url
    ))
    .await;
    let analysis = "{name: error-rate, analysis: {provider: main, query: 'max(app_error_ratio{region=\"{{region}}\"})', successCondition: result < 0.05, count: 2, interval: 1s}}";
    let gates = format!(", gates: [{analysis}, {{name: smoke, webhook: {{name: smoke}}}}]");
    let two_waves = "[[east], [west, south]]";

    // Revision 1: a plain rollout, the primaries a canary runs beside.
    fleet.release("v1.yaml", "registry.example/web:1.0", two_waves, "");
    fleet.submit("v1.yaml", "first");
    fleet.operation_until("v1 healthy", |op| op["phase"] == "SUCCEEDED");
    let mut primary_pods = Vec::new();
    for c in &fleet.clusters {
        primary_pods.push(pods(c, "app=web").await);
    }

    // Revision 2: a canary at 25%, an analysis and a webhook, 50%, then an approval.
    fleet.release(
        "v2.yaml",
        "registry.example/web:2.0",
        two_waves,
        &format!(
            "{gates}, inCluster: {{canary: {{steps: [{{setWeight: 25}}, {{gate: error-rate}}, {{gate: smoke}}, {{setWeight: 50}}, {{approval: {{}}}}]}}}}"
        ),
    );
    fleet.submit("v2.yaml", "canary");
    let op = fleet.operation_until("v2 waits at the canary's approval in wave 1", |op| {
        op["awaitingApprovalWave"] == 1
    });
    assert_eq!(op["canary"], "wave 1: step 5 of 5 (approval)", "{op:#}");
    assert_eq!(
        gate_states(&op),
        vec![
            ("error-rate".into(), 1, 2, "PASSED".into()),
            ("smoke".into(), 1, 3, "PASSED".into())
        ],
        "{op:#}"
    );
    let status = fleet.status();
    assert_eq!(context(&status, "east")["canaryWeight"], 50, "{status:#}");
    assert_eq!(
        context(&status, "east")["message"],
        "canary at 50%: healthy",
        "{status:#}"
    );
    assert_eq!(context(&status, "west")["phase"], "PENDING", "{status:#}");
    let told: Value = serde_json::from_str(&smoke.bodies()[0]).unwrap();
    assert_eq!(
        (&told["gate"], &told["canaryStep"], &told["contexts"]),
        (
            &Value::from("smoke"),
            &Value::from(3),
            &serde_json::json!(["east"])
        ),
        "{told:#}"
    );
    // In east: the canary (4 pods at 50% of 4) beside the untouched primary, both behind
    // the Service; the canary runs revision 2's configuration, the primary revision 1's.
    let east = &fleet.clusters[0];
    let canary = deployment(east, "web-canary").await.expect("east runs a canary");
    assert_eq!(image_of(&canary), "registry.example/web:2.0");
    assert_eq!(canary.status.as_ref().and_then(|s| s.ready_replicas), Some(4));
    let primary = deployment(east, "web").await.unwrap();
    assert_eq!(image_of(&primary), "registry.example/web:1.0");
    assert_eq!(
        pods(east, "app=web,!convoy.dev/track").await,
        primary_pods[0],
        "the primary's pods never restarted"
    );
    let canary_pods: Vec<String> = pods(east, "convoy.dev/track=canary")
        .await
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(canary_pods.len(), 4);
    let serving = endpoints_become(east, "web", "app=web").await;
    assert!(canary_pods.iter().all(|p| serving.contains(p)), "{serving:?}");
    let config = Api::<ConfigMap>::namespaced(east.client().await, "shop");
    let data = |c: ConfigMap| {
        c.data
            .unwrap_or_default()
            .get("message")
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(
        data(config.get("web-config-canary").await.unwrap()),
        "registry.example/web:2.0"
    );
    assert_eq!(
        data(config.get("web-config").await.unwrap()),
        "registry.example/web:1.0"
    );
    assert!(deployment(fleet.cluster("west"), "web-canary").await.is_none());

    // The coordinator is SIGKILLed at the approval step: it resumes at the same step,
    // with the same canary pods.
    fleet.convoyd.kill();
    fleet.convoyd.restart().await.expect("convoyd restarts");
    let east = &fleet.clusters[0];
    let op = fleet.operation_until("v2 resumed at the approval", |op| op["awaitingApprovalWave"] == 1);
    assert_eq!(op["canary"], "wave 1: step 5 of 5 (approval)", "{op:#}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after: Vec<String> = pods(east, "convoy.dev/track=canary")
        .await
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(after, canary_pods, "the canary was not started again");

    let (ok, out) = fleet.convoy(&["approve", "web.shop", "--reason", "canary dashboards clean"]);
    assert!(ok, "{out}");
    fleet.operation_until("v2 waits at the canary's approval in wave 2", |op| {
        op["awaitingApprovalWave"] == 2
    });
    assert_eq!(
        image_of(&deployment(east, "web").await.unwrap()),
        "registry.example/web:2.0",
        "east promoted"
    );
    assert!(
        deployment(east, "web-canary").await.is_none(),
        "east's canary removed"
    );
    assert!(named_like(east, "-canary").await.is_empty());
    let (ok, out) = fleet.convoy(&["approve", "web.shop", "--reason", "regions look fine"]);
    assert!(ok, "{out}");
    let op = fleet.operation_until("v2 succeeded", |op| op["phase"] == "SUCCEEDED");
    assert!(op["canary"].is_null(), "{op:#}");
    for c in &fleet.clusters {
        assert_eq!(
            image_of(&deployment(c, "web").await.unwrap()),
            "registry.example/web:2.0"
        );
        assert!(named_like(c, "-canary").await.is_empty(), "canary left behind");
    }
    let mut promoted_pods = Vec::new();
    for c in &fleet.clusters {
        promoted_pods.push(pods(c, "app=web,!convoy.dev/track").await);
    }

    // Revision 3: the error ratio rises in west. East's canary passes and is promoted;
    // wave 2's analysis fails in west: the fleet rolls back, west's and south's
    // canaries are removed and their primaries never change.
    set_ratio(&exporter, &prometheus, "west-1", 0.3).await;
    fleet.release(
        "v3.yaml",
        "registry.example/web:3.0",
        two_waves,
        &format!(", gates: [{analysis}], inCluster: {{canary: {{steps: [{{setWeight: 25}}, {{gate: error-rate}}]}}}}"),
    );
    fleet.submit("v3.yaml", "bad in west");
    let op = fleet.operation_until("v3 rolled back", |op| op["phase"] == "FAILED");
    let msg = op["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains(
            "analysis error-rate at canary step 2 of 2 (gate error-rate) in wave 2 failed: in west: `max(app_error_ratio{region=\"west-1\"})` = 0.3, expected result < 0.05"
        ) && msg.contains("rolled 3 context(s) back to revision 2"),
        "{op:#}"
    );
    for (i, c) in fleet.clusters.iter().enumerate() {
        assert_eq!(
            image_of(&deployment(c, "web").await.unwrap()),
            "registry.example/web:2.0"
        );
        assert!(
            named_like(c, "-canary").await.is_empty(),
            "{}: canary left behind",
            CONTEXTS[i]
        );
        if i > 0 {
            assert_eq!(
                pods(c, "app=web,!convoy.dev/track").await,
                promoted_pods[i],
                "{}: the primary's pods never restarted",
                CONTEXTS[i]
            );
        }
    }
    let (_, out) = fleet.convoy(&["history", "web.shop", "--show", "3"]);
    assert!(
        out.contains("ended: revision 3 failed (analysis error-rate at canary step 2 of 2"),
        "{out}"
    );
    set_ratio(&exporter, &prometheus, "west-1", 0.01).await;

    // An approval refused, then one nobody answers: each fails the step and the fleet
    // (east, the only wave reached) goes back.
    fleet.release(
        "v5.yaml",
        "registry.example/web:5.0",
        two_waves,
        ", inCluster: {canary: {steps: [{setWeight: 25}, {approval: {}}]}}",
    );
    fleet.submit("v5.yaml", "refused");
    fleet.operation_until("v5 waits", |op| op["awaitingApprovalWave"] == 1);
    let (ok, out) = fleet.convoy(&["refuse", "web.shop", "--reason", "p99 up in east"]);
    assert!(ok, "{out}");
    let op = fleet.operation_until("v5 refused", |op| op["phase"] == "FAILED");
    assert!(
        op["message"]
            .as_str()
            .unwrap_or_default()
            .contains("wave 1: canary step 2 of 2 (approval) refused: p99 up in east (alice)"),
        "{op:#}"
    );
    fleet.release(
        "v6.yaml",
        "registry.example/web:6.0",
        two_waves,
        ", inCluster: {canary: {steps: [{setWeight: 25}, {approval: {deadline: 2s}}]}}",
    );
    fleet.submit("v6.yaml", "unanswered");
    let op = fleet.operation_until("v6 timed out", |op| op["phase"] == "FAILED");
    assert!(
        op["message"]
            .as_str()
            .unwrap_or_default()
            .contains("nobody approved canary step 2 of 2 (approval within 2s) in wave 1 within 2s"),
        "{op:#}"
    );
    let east = fleet.cluster("east");
    assert_eq!(
        image_of(&deployment(east, "web").await.unwrap()),
        "registry.example/web:2.0"
    );
    assert!(named_like(east, "-canary").await.is_empty());

    blue_green(&fleet).await;
    let logs = fleet.convoyd.logs();
    assert!(!logs.contains("panicked"), "{logs}");
}

/// Blue/green on the same fleet (its primaries at revision 2, without slots).
async fn blue_green(fleet: &Fleet) {
    let one_wave = "[[east, west, south]]";
    let bg = |keep: &str| {
        format!(
            ", inCluster: {{blueGreen: {{previewService: true, keepPreviousFor: {keep}, steps: [{{approval: {{}}}}]}}}}"
        )
    };
    // Staged into the blue slot beside the slot-less pods, which keep serving; the
    // preview Service reaches the new pods.
    fleet.release("g1.yaml", "registry.example/web:7.0", one_wave, &bg("3s"));
    fleet.submit("g1.yaml", "blue/green");
    let op = fleet.operation_until("g1 staged", |op| op["awaitingApprovalWave"] == 1);
    assert_eq!(op["canary"], "wave 1: step 2 of 2 (approval)", "{op:#}");
    let east = fleet.cluster("east");
    let old: Vec<String> = pods(east, "app=web,!convoy.dev/slot")
        .await
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(old.len(), 4, "the slot-less pods still run");
    assert_eq!(
        image_of(&deployment(east, "web-blue").await.expect("blue slot")),
        "registry.example/web:7.0"
    );
    // The release ran without slots: its Service keeps the rendered selector until the
    // switch, so the old pods and the new slot's serve together meanwhile (a Service's
    // equality selector cannot exclude the new pods without relabelling, which would
    // restart, the old ones). From the next revision on, only the live slot serves.
    let serving = endpoints_become(east, "web", "app=web").await;
    assert!(old.iter().all(|p| serving.contains(p)), "{serving:?}");
    endpoints_become(east, "web-preview", "convoy.dev/slot=blue").await;
    let (ok, out) = fleet.convoy(&["approve", "web.shop", "--reason", "preview tests passed"]);
    assert!(ok, "{out}");
    fleet.operation_until("g1 switched", |op| op["phase"] == "SUCCEEDED");
    for c in &fleet.clusters {
        endpoints_become(c, "web", "convoy.dev/slot=blue").await;
    }
    // The slot-less Deployment stays for keepPreviousFor, then goes.
    let start = Instant::now();
    while deployment(east, "web").await.is_some() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the previous pods were never retired"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    eprintln!(
        "previous Deployment retired {:?} after the switch",
        start.elapsed()
    );

    // Revision g2 goes to green beside blue; switched, with a long window.
    fleet.release("g2.yaml", "registry.example/web:8.0", one_wave, &bg("10m"));
    fleet.submit("g2.yaml", "green");
    fleet.operation_until("g2 staged", |op| op["awaitingApprovalWave"] == 1);
    let blue: Vec<String> = pods(east, "convoy.dev/slot=blue")
        .await
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(endpoints_become(east, "web", "convoy.dev/slot=blue").await, blue);
    endpoints_become(east, "web-preview", "convoy.dev/slot=green").await;
    let (ok, out) = fleet.convoy(&["approve", "web.shop", "--reason", "ok"]);
    assert!(ok, "{out}");
    fleet.operation_until("g2 switched", |op| op["phase"] == "SUCCEEDED");
    for c in &fleet.clusters {
        endpoints_become(c, "web", "convoy.dev/slot=green").await;
    }
    assert_eq!(
        pods(east, "convoy.dev/slot=blue")
            .await
            .into_iter()
            .map(|(n, _)| n)
            .collect::<Vec<_>>(),
        blue,
        "blue stays up for the window"
    );

    // `convoy rollback`: a selector switch back to blue, whose pods never restarted.
    let start = Instant::now();
    let (ok, out) = fleet.convoy(&["rollback", "web.shop", "--reason", "green is bad", "--yes"]);
    assert!(ok, "{out}");
    for c in &fleet.clusters {
        endpoints_become(c, "web", "convoy.dev/slot=blue").await;
    }
    let switched_back = start.elapsed();
    fleet.operation_until("rolled back", |op| op["phase"] == "SUCCEEDED");
    eprintln!(
        "rollback: Services on the blue pods in all 3 clusters {switched_back:?} after `convoy rollback`; operation done {:?}",
        start.elapsed()
    );
    assert_eq!(
        pods(east, "convoy.dev/slot=blue")
            .await
            .into_iter()
            .map(|(n, _)| n)
            .collect::<Vec<_>>(),
        blue,
        "the blue pods were never restarted"
    );
    for c in &fleet.clusters {
        assert!(
            deployment(c, "web-green").await.is_none(),
            "the green slot is pruned"
        );
    }
}

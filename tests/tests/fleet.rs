//! convoy end to end: `convoyd` and three `convoy-agent` processes against three real
//! control planes (with the pod simulator) and OpenBao. One test walks the scenarios in
//! order so the clusters start once:
//! an agent claiming another context is refused; a viewer cannot roll back; a release
//! reaches all three in waves with the soak honoured; a crash-looping image in one region
//! rolls all three back; two racing submits run one after the other; convoyd killed with
//! SIGKILL mid-rollout and restarted finishes the rollout; a canary secret reaches the
//! clusters and nothing else; a diff shows what a submit would change, from the agents'
//! dry runs against the real API servers, without a secret value.
//!
//! A second test renders a chart against its real cluster: the agent reports what the
//! 1.20 API server serves, and convoyd picks the PodDisruptionBudget API the server has
//! where Helm's default capability list would have picked one it refuses.

use std::time::{Duration, Instant};

use convoy_proto::v1 as pb;
use convoy_tests::convoy::{AgentProcess, Convoyd};
use convoy_tests::kube::{ControlPlane, TestCluster};
use convoy_tests::openbao::OpenBao;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Api;
use pb::release_service_client::ReleaseServiceClient;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

const CONTEXTS: [&str; 3] = ["east", "west", "south"];
const CANARY: &str = "CANARY-e2e-5b1f0c-do-not-log";
/// The secret's value while the diff runs (a rotation the diff must not reveal either).
const ROTATED: &str = "ROTATED-e2e-93ac1d-do-not-log";

#[derive(Clone)]
struct Bearer(String);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let v = format!("Bearer {}", self.0)
            .parse()
            .map_err(|_| tonic::Status::internal("token"))?;
        req.metadata_mut().insert("authorization", v);
        Ok(req)
    }
}

type Client = ReleaseServiceClient<InterceptedService<Channel, Bearer>>;

async fn client(addr: &str, token: &str) -> Client {
    let ch = Channel::from_shared(addr.to_string())
        .unwrap()
        .connect()
        .await
        .unwrap();
    ReleaseServiceClient::with_interceptor(ch, Bearer(token.into())).max_decoding_message_size(64 << 20)
}

/// A release of the test chart: `image` everywhere, `crash_in` crash-looping.
fn release(image: &str, behavior: &str, crash_in: Option<&str>, soak: &str) -> String {
    let crash = crash_in
        .map(|c| format!("  contextValues:\n    {c}: {{behavior: \"crashloop,after=300ms\"}}\n"))
        .unwrap_or_default();
    release_with(
        image,
        behavior,
        &crash,
        &format!("{{waves: [[east], [west, south]], maxFailures: 0, onFailure: rollback, soak: {soak}}}"),
    )
}

/// [`release`] with its `contextValues` block (as lines under `spec:`, or empty) and
/// its `strategy` (a flow mapping) given.
fn release_with(image: &str, behavior: &str, context_values: &str, strategy: &str) -> String {
    let crash = context_values;
    format!(
        r#"apiVersion: convoy.dev/v1
kind: Release
metadata: {{name: web.shop, namespace: shop, environment: dev}}
spec:
  chart: {{path: ./web}}
  values: {{image: "{image}", behavior: "{behavior}", message: "{image}"}}
{crash}  contexts: [east, west, south]
  secrets:
    - secret_id: db
      contexts:
        - {{name: default, vaultPath: /kv/dev/shop/db, vaultKey: password}}
  strategy: {strategy}
  health: {{progressDeadline: 2m, minReadyWindow: 2s}}
"#
    )
}

fn chart_archive() -> Vec<u8> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/web");
    convoy_chart::package_dir(&dir).expect("packaging the test chart")
}

async fn submit(c: &mut Client, yaml: String, reason: &str) -> pb::SubmitReleaseResponse {
    c.submit_release(pb::SubmitReleaseRequest {
        release_yaml: yaml,
        source_name: "web.yaml".into(),
        chart_archive: chart_archive(),
        values_files: vec![],
        reason: reason.into(),
        dry_run: false,
        allow_mass_deletion: false,
    })
    .await
    .unwrap_or_else(|s| panic!("submit refused: {s}"))
    .into_inner()
}

/// Watches one operation to its end; returns every event.
async fn watch(c: &mut Client, operation_id: &str, limit: Duration) -> Vec<pb::RolloutEvent> {
    let mut stream = c
        .watch_release(pb::WatchReleaseRequest {
            release: "web.shop".into(),
            operation_id: operation_id.into(),
            follow: false,
        })
        .await
        .unwrap()
        .into_inner();
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let next = tokio::time::timeout_at(deadline, stream.message()).await;
        match next {
            Ok(Ok(Some(e))) => events.push(e),
            Ok(Ok(None)) => return events,
            Ok(Err(s)) => panic!("watch failed: {s}"),
            Err(_) => panic!("operation {operation_id} did not finish within {limit:?}; events: {events:#?}"),
        }
    }
}

fn final_operation(events: &[pb::RolloutEvent]) -> pb::Operation {
    events
        .iter()
        .rev()
        .find_map(|e| match &e.event {
            Some(pb::rollout_event::Event::Operation(op)) => Some(op.clone()),
            _ => None,
        })
        .expect("an operation event")
}

async fn images(clusters: &[TestCluster]) -> Vec<String> {
    let mut out = Vec::new();
    for c in clusters {
        let api: Api<Deployment> = Api::namespaced(c.client().await, "shop");
        let d = api.get("web").await.unwrap();
        out.push(
            d.spec.unwrap().template.spec.unwrap().containers[0]
                .image
                .clone()
                .unwrap(),
        );
    }
    out
}

fn phase(p: i32) -> pb::OperationPhase {
    pb::OperationPhase::try_from(p).unwrap()
}

/// OpenBao with the canary secret, three clusters (control plane + pod simulator), a
/// convoyd with admin, deployer and viewer tokens, and an agent per cluster.
struct Fleet {
    bao: OpenBao,
    clusters: [TestCluster; 3],
    convoyd: Convoyd,
    agents: Vec<AgentProcess>,
}

async fn start_fleet() -> Fleet {
    let started = Instant::now();
    let (bao, east, west, south) = tokio::join!(
        OpenBao::start(),
        TestCluster::start("east"),
        TestCluster::start("west"),
        TestCluster::start("south")
    );
    let bao = bao.unwrap();
    let clusters = [east.unwrap(), west.unwrap(), south.unwrap()];
    eprintln!("services up in {:?}", started.elapsed());
    bao.mount_kv("kv", 2).await.unwrap();
    bao.kv2_put("kv", "dev/shop/db", serde_json::json!({"password": CANARY}))
        .await
        .unwrap();

    let mut cfg = String::from("contexts:\n");
    for c in CONTEXTS {
        cfg.push_str(&format!(
            "  - {{name: {c}, region: {c}-1, env: dev, cloud: sim, clusterName: {c}-cluster}}\n"
        ));
    }
    cfg.push_str(
        "auth:\n  tokens:\n    - {name: alice, role: admin, token: t-admin}\n    - {name: jenkins, role: deployer, token: t-deploy}\n    - {name: bob, role: viewer, token: t-view}\n  agents:\n",
    );
    for c in CONTEXTS {
        cfg.push_str(&format!("    - {{context: {c}, token: agent-{c}}}\n"));
    }
    cfg.push_str(&format!(
        "vault:\n  address: {}\n  auth: {{method: token, token: {}}}\nheartbeat_seconds: 2\n",
        bao.addr(),
        bao.root_token()
    ));
    let convoyd = Convoyd::start(&cfg).await.unwrap();
    eprintln!("convoyd ready in {:?}", convoyd.startup);
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
        bao,
        clusters,
        convoyd,
        agents,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn convoy_end_to_end_on_three_clusters() {
    let Fleet {
        bao,
        clusters,
        mut convoyd,
        mut agents,
    } = start_fleet().await;

    // An agent may only speak for its own context.
    {
        let ch = Channel::from_shared(convoyd.addr.clone())
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut link = pb::agent_link_client::AgentLinkClient::new(ch);
        let hello = pb::AgentMessage {
            message: Some(pb::agent_message::Message::Hello(pb::Hello {
                context: "west".into(),
                token: "agent-east".into(),
                agent_version: "test".into(),
                ..Default::default()
            })),
        };
        let err = link.session(tokio_stream::iter(vec![hello])).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err}");
        assert!(
            err.message().contains("only speak for its own context"),
            "{}",
            err.message()
        );
    }

    let mut admin = client(&convoyd.addr, "t-admin").await;
    let mut jenkins = client(&convoyd.addr, "t-deploy").await;

    // Revision 1 in waves: east first, then (after the soak) west and south.
    let r1 = submit(
        &mut jenkins,
        release("registry.example/web:1.0", "healthy,after=500ms", None, "4s"),
        "first",
    )
    .await;
    assert_eq!(r1.revision, 1);
    let events = watch(&mut admin, &r1.operation_id, Duration::from_secs(180)).await;
    let op = final_operation(&events);
    assert_eq!(phase(op.phase), pb::OperationPhase::Succeeded, "{}", op.message);
    assert_eq!(images(&clusters).await, vec!["registry.example/web:1.0"; 3]);
    // The last time a context entered a phase (a preflight dry run shows as dispatched
    // too, before the real dispatch).
    let when = |ctx: &str, p: pb::ContextPhase| -> Option<prost_types::Timestamp> {
        events.iter().rev().find_map(|e| match &e.event {
            Some(pb::rollout_event::Event::Context(c)) if c.context == ctx && c.phase == p as i32 => {
                c.updated_at
            }
            _ => None,
        })
    };
    let ms = |t: prost_types::Timestamp| t.seconds * 1000 + i64::from(t.nanos / 1_000_000);
    let east_healthy = ms(when("east", pb::ContextPhase::Healthy).expect("east healthy"));
    for later in ["west", "south"] {
        let dispatched = ms(when(later, pb::ContextPhase::Dispatched).expect("dispatched"));
        assert!(
            dispatched - east_healthy >= 4000,
            "{later} dispatched {}ms after east was healthy; the soak is 4s",
            dispatched - east_healthy
        );
    }
    // The chart's `defaultMode: 0644` arrived as Helm sends it (YAML 1.1 octal: 420).
    let deployments: Api<Deployment> = Api::namespaced(clusters[0].client().await, "shop");
    let web = deployments.get("web").await.unwrap();
    let mode = web
        .spec
        .and_then(|s| s.template.spec)
        .and_then(|s| s.volumes)
        .and_then(|v| v.into_iter().next())
        .and_then(|v| v.config_map)
        .and_then(|c| c.default_mode);
    assert_eq!(mode, Some(0o644));
    // The chart's pre-install hook ran in every cluster, shipped apart from its objects.
    for c in &clusters {
        let cms: Api<ConfigMap> = Api::namespaced(c.client().await, "shop");
        let hook = cms.get("web-hook").await.expect("the pre-install hook ran");
        assert_eq!(
            hook.data.unwrap_or_default().get("image").map(String::as_str),
            Some("registry.example/web:1.0")
        );
    }
    // The secret reached the clusters.
    let s: Api<Secret> = Api::namespaced(clusters[1].client().await, "shop");
    let data = s.get("web-db").await.unwrap().data.unwrap();
    assert_eq!(data["password"].0, CANARY.as_bytes());

    // A viewer cannot roll back.
    let mut viewer = client(&convoyd.addr, "t-view").await;
    let err = viewer
        .rollback_release(pb::RollbackReleaseRequest {
            release: "web.shop".into(),
            reason: "bob tries".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
    assert!(err.message().contains("needs role operator"), "{}", err.message());

    diff_shows_changes_without_secrets(&bao, &mut jenkins, &mut viewer, &clusters).await;

    // Revision 2 crash-loops in west: every region goes back to 1.0.
    let r2 = submit(
        &mut jenkins,
        release(
            "registry.example/web:2.0",
            "healthy,after=500ms",
            Some("west"),
            "0s",
        ),
        "bad",
    )
    .await;
    let events = watch(&mut admin, &r2.operation_id, Duration::from_secs(240)).await;
    let op = final_operation(&events);
    assert_eq!(phase(op.phase), pb::OperationPhase::Failed, "{}", op.message);
    assert!(
        op.message.contains("rolled 3 context(s) back to revision 1"),
        "{}",
        op.message
    );
    let west_failure = events.iter().find_map(|e| match &e.event {
        Some(pb::rollout_event::Event::Context(c))
            if c.context == "west" && c.phase == pb::ContextPhase::Failed as i32 =>
        {
            Some(c.message.clone())
        }
        _ => None,
    });
    let west_failure = west_failure.unwrap_or_default();
    assert!(
        west_failure.contains("CrashLoopBackOff"),
        "west failed with: {west_failure}"
    );
    assert_eq!(images(&clusters).await, vec!["registry.example/web:1.0"; 3]);
    for c in &clusters {
        let cm: Api<ConfigMap> = Api::namespaced(c.client().await, "shop");
        assert_eq!(
            cm.get("web-config").await.unwrap().data.unwrap()["message"],
            "registry.example/web:1.0"
        );
    }

    // Two racing submits: the second queues and runs after the first.
    let fast = "healthy,after=300ms";
    let (a, b) = tokio::join!(
        async {
            let mut c = client(&convoyd.addr, "t-deploy").await;
            submit(
                &mut c,
                release("registry.example/web:3.0", fast, None, "0s"),
                "race a",
            )
            .await
        },
        async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let mut c = client(&convoyd.addr, "t-deploy").await;
            submit(
                &mut c,
                release("registry.example/web:3.1", fast, None, "0s"),
                "race b",
            )
            .await
        }
    );
    // Whichever reached the coordinator second (prepare times vary under load) waits
    // behind the other, and they run one after the other in that order.
    let (first, second, last_image) = if b.queue_position == 1 {
        (a, b, "registry.example/web:3.1")
    } else {
        (b, a, "registry.example/web:3.0")
    };
    assert_eq!(
        (first.queue_position, second.queue_position),
        (0, 1),
        "one submit runs, the other queues behind it"
    );
    assert_eq!(phase(second.phase), pb::OperationPhase::Queued);
    assert_eq!(second.revision, first.revision + 1);
    let e1 = watch(&mut admin, &first.operation_id, Duration::from_secs(180)).await;
    let e2 = watch(&mut admin, &second.operation_id, Duration::from_secs(180)).await;
    let (o1, o2) = (final_operation(&e1), final_operation(&e2));
    assert_eq!(phase(o1.phase), pb::OperationPhase::Succeeded, "{}", o1.message);
    assert_eq!(phase(o2.phase), pb::OperationPhase::Succeeded, "{}", o2.message);
    assert!(
        ms(o1.finished_at.unwrap()) <= ms(o2.started_at.unwrap()),
        "the two rollouts interleaved"
    );
    assert_eq!(images(&clusters).await, vec![last_image; 3]);

    // convoyd killed mid-rollout and restarted: the rollout finishes.
    let slow = "healthy,after=6s";
    let r = submit(
        &mut jenkins,
        release("registry.example/web:4.0", slow, None, "0s"),
        "survive a crash",
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let rel = admin
            .get_release(pb::GetReleaseRequest {
                release: "web.shop".into(),
            })
            .await
            .unwrap()
            .into_inner();
        if rel
            .contexts
            .iter()
            .any(|c| c.phase == pb::ContextPhase::Progressing as i32)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never saw a context progressing: {rel:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    convoyd.kill();
    convoyd.restart().await.unwrap();
    for a in &mut agents {
        a.wait_connected().await.unwrap();
    }
    let mut admin = client(&convoyd.addr, "t-admin").await;
    let events = watch(&mut admin, &r.operation_id, Duration::from_secs(180)).await;
    let op = final_operation(&events);
    assert_eq!(phase(op.phase), pb::OperationPhase::Succeeded, "{}", op.message);
    assert_eq!(images(&clusters).await, vec!["registry.example/web:4.0"; 3]);

    // History records who, what and the secret version, never the value.
    let history = admin
        .get_history(pb::GetHistoryRequest {
            release: "web.shop".into(),
            limit: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let numbers: Vec<u64> = history.revisions.iter().map(|r| r.number).collect();
    assert_eq!(
        numbers,
        vec![6, 5, 4, 3, 2, 1],
        "2 failed, 3 is its automatic rollback"
    );
    assert_eq!(history.revisions[3].kind, pb::OperationKind::Rollback as i32);
    assert_eq!(history.revisions[5].submitted_by, "jenkins");
    assert_eq!(history.revisions[5].secret_versions[0].version, 1);

    // The canary secret (and the value it was rotated to for the diff) is in the
    // clusters and nowhere else.
    let store = std::fs::read(convoyd.dir().join("state.redb")).unwrap();
    for secret in [CANARY, ROTATED] {
        assert!(
            !contains(&store, secret.as_bytes()),
            "a secret value reached the coordinator's store"
        );
        assert!(
            !convoyd.logs().contains(secret),
            "a secret value reached convoyd's log"
        );
        for a in &agents {
            assert!(
                !a.logs().contains(secret),
                "a secret value reached {}'s log",
                a.context
            );
        }
    }
    assert!(!format!("{history:?}").contains(CANARY));
}

/// With revision 1 running everywhere and the secret rotated in Vault, a diff of image
/// 2.0 names, per context, the Deployment's image and the ConfigMap's message with their
/// old and new values, and the Secret's password as changed but hidden; nothing is
/// applied. A viewer may not diff (it reads secrets).
async fn diff_shows_changes_without_secrets(
    bao: &OpenBao,
    jenkins: &mut Client,
    viewer: &mut Client,
    clusters: &[TestCluster],
) {
    bao.kv2_put("kv", "dev/shop/db", serde_json::json!({"password": ROTATED}))
        .await
        .unwrap();
    let request = pb::DiffReleaseRequest {
        submit: Some(pb::SubmitReleaseRequest {
            release_yaml: release("registry.example/web:2.0", "healthy,after=500ms", None, "0s"),
            source_name: "web.yaml".into(),
            chart_archive: chart_archive(),
            ..Default::default()
        }),
        timeout_seconds: 60,
    };
    let err = viewer.diff_release(request.clone()).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err}");
    let diff = jenkins
        .diff_release(request)
        .await
        .unwrap_or_else(|s| panic!("diff refused: {s}"))
        .into_inner();
    assert_eq!(diff.release, "web.shop");
    let order: Vec<&str> = diff.contexts.iter().map(|c| c.context.as_str()).collect();
    assert_eq!(order, ["east", "west", "south"], "plan order");
    for c in &diff.contexts {
        assert_eq!(
            c.status,
            pb::DiffStatus::Done as i32,
            "{}: {}",
            c.context,
            c.message
        );
        let object = |kind: &str| {
            c.objects
                .iter()
                .find(|o| o.kind == kind)
                .unwrap_or_else(|| panic!("{}: no {kind} in {:?}", c.context, c.objects))
        };
        let change = |kind: &str, path: &str| {
            let o = object(kind);
            assert_eq!(o.action, pb::DiffAction::Update as i32, "{}: {o:?}", c.context);
            o.changes
                .iter()
                .find(|ch| ch.path == path)
                .unwrap_or_else(|| panic!("{}: {kind} has no change at {path}: {:?}", c.context, o.changes))
                .clone()
        };
        let image = change("Deployment", "spec.template.spec.containers[0].image");
        assert_eq!(
            (image.before.as_str(), image.after.as_str()),
            (r#""registry.example/web:1.0""#, r#""registry.example/web:2.0""#)
        );
        let message = change("ConfigMap", "data.message");
        assert_eq!(message.after, r#""registry.example/web:2.0""#);
        let password = change("Secret", "data.password");
        assert!(password.masked && password.before.is_empty() && password.after.is_empty());
        let shown = format!("{diff:?}");
        for secret in [CANARY, ROTATED] {
            for form in [secret.to_string(), base64(secret)] {
                assert!(!shown.contains(&form), "a secret value is in the diff");
            }
        }
    }
    // A dry run changed nothing.
    assert_eq!(images(clusters).await, vec!["registry.example/web:1.0"; 3]);
    bao.kv2_put("kv", "dev/shop/db", serde_json::json!({"password": CANARY}))
        .await
        .unwrap();
}

fn base64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// What the capabilities test chart rendered, as read back from the cluster.
async fn seen(client: &kube::Client) -> std::collections::BTreeMap<String, String> {
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "budget");
    cms.get("guard-seen")
        .await
        .expect("the chart's ConfigMap")
        .data
        .unwrap_or_default()
}

/// A release of `tests/charts/capabilities` (a PodDisruptionBudget at `policy/v1` where
/// `.Capabilities.APIVersions.Has "policy/v1"`, else `policy/v1beta1`) to a real 1.20
/// control plane through convoyd and a real agent: the agent reports the cluster's
/// discovery, which has no `policy/v1`, so the PDB lands as `policy/v1beta1`. Rendered
/// with Helm's default capability list (as `convoy template` does, and convoyd did for
/// every cluster before) the chart picks `policy/v1`, which that API server refuses.
/// Two submits: the first is an install at revision 1, the second an upgrade at 2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn charts_render_against_their_own_cluster() {
    use kube::api::{ApiResource, DynamicObject, Patch, PatchParams};
    let cluster = ControlPlane::start("caps").await.unwrap();
    let kube = cluster.client().await;
    let cfg = "contexts:\n  - {name: k120, region: r1, env: dev, cloud: sim, clusterName: k120}\n\
               auth:\n  tokens:\n    - {name: jenkins, role: deployer, token: t-deploy}\n  agents:\n    - {context: k120, token: agent-k120}\n\
               heartbeat_seconds: 2\n";
    let convoyd = Convoyd::start(cfg).await.unwrap();
    let _agent = AgentProcess::start(
        &convoyd.addr,
        "k120",
        "agent-k120",
        Some(&cluster.kubeconfig_yaml()),
        "",
    )
    .await
    .unwrap();

    // What the server serves: policy at v1beta1 only. Helm's default list claims
    // policy/v1 (and lists no kinds at all).
    let server_version = kube.apiserver_version().await.unwrap().git_version;
    assert!(server_version.starts_with("v1.20."), "{server_version}");
    let groups = kube.list_api_groups().await.unwrap();
    let policy: Vec<&str> = groups
        .groups
        .iter()
        .filter(|g| g.name == "policy")
        .flat_map(|g| g.versions.iter().map(|v| v.group_version.as_str()))
        .collect();
    assert_eq!(policy, ["policy/v1beta1"]);
    assert!(convoy_chart::DEFAULT_API_VERSIONS.contains(&"policy/v1"));
    assert!(
        !convoy_chart::DEFAULT_API_VERSIONS
            .iter()
            .any(|a| a.ends_with("/PodDisruptionBudget")),
        "Helm's defaults list group versions only"
    );

    // The coordinator has the agent's report before anything is submitted.
    let ch = Channel::from_shared(convoyd.addr.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut clusters =
        pb::cluster_service_client::ClusterServiceClient::with_interceptor(ch, Bearer("t-deploy".into()));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let list = clusters
            .list_clusters(pb::ListClustersRequest::default())
            .await
            .unwrap()
            .into_inner();
        let reported = list.clusters[0]
            .agent
            .as_ref()
            .map(|a| a.kube_version.clone())
            .unwrap_or_default();
        if !reported.is_empty() {
            assert_eq!(reported, server_version);
            break;
        }
        assert!(Instant::now() < deadline, "the agent never reported its cluster");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let chart_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/capabilities");
    let archive = convoy_chart::package_dir(&chart_dir).unwrap();
    let release = "apiVersion: convoy.dev/v1\nkind: Release\nmetadata: {name: guard.budget, namespace: budget, environment: dev}\n\
                   spec:\n  chart: {path: ./capabilities}\n  contexts: [k120]\n  health: {progressDeadline: 1m, minReadyWindow: 0s}\n";
    let mut jenkins = client(&convoyd.addr, "t-deploy").await;
    let pdbs = |version: &str| {
        let ar = ApiResource {
            group: "policy".into(),
            version: version.into(),
            api_version: format!("policy/{version}"),
            kind: "PodDisruptionBudget".into(),
            plural: "poddisruptionbudgets".into(),
        };
        Api::<DynamicObject>::namespaced_with(kube.clone(), "budget", &ar)
    };
    for (n, reason) in [(1u64, "install"), (2, "upgrade")] {
        let r = jenkins
            .submit_release(pb::SubmitReleaseRequest {
                release_yaml: release.into(),
                source_name: "guard.yaml".into(),
                chart_archive: archive.clone(),
                values_files: vec![],
                reason: reason.into(),
                dry_run: false,
                allow_mass_deletion: false,
            })
            .await
            .unwrap_or_else(|s| panic!("submit refused: {s}"))
            .into_inner();
        assert_eq!(r.revision, n);
        let summary = &r.rendered[0];
        assert_eq!(
            (
                summary.kube_version.as_str(),
                summary.default_capabilities,
                summary.release_revision,
                summary.is_upgrade
            ),
            (server_version.as_str(), false, n, n > 1)
        );
        let mut watcher = client(&convoyd.addr, "t-deploy").await;
        let mut stream = watcher
            .watch_release(pb::WatchReleaseRequest {
                release: "guard.budget".into(),
                operation_id: r.operation_id.clone(),
                follow: false,
            })
            .await
            .unwrap()
            .into_inner();
        let mut last = None;
        while let Some(e) = tokio::time::timeout(Duration::from_secs(120), stream.message())
            .await
            .expect("the rollout finishes")
            .unwrap()
        {
            if let Some(pb::rollout_event::Event::Operation(op)) = e.event {
                last = Some(op);
            }
        }
        let op = last.expect("an operation event");
        assert_eq!(phase(op.phase), pb::OperationPhase::Succeeded, "{}", op.message);

        // What the render saw, from the cluster.
        let seen = seen(&kube).await;
        let get = |k: &str| seen.get(k).map(String::as_str).unwrap_or_default();
        assert_eq!(get("kubeVersion"), server_version);
        assert_eq!(
            (
                get("hasPolicyV1"),
                get("hasPolicyV1PDB"),
                get("hasPolicyV1beta1PDB")
            ),
            ("false", "false", "true"),
            "the cluster's discovery, group versions and kinds"
        );
        assert_eq!(
            (get("isInstall"), get("isUpgrade"), get("revision")),
            if n == 1 {
                ("true", "false", "1")
            } else {
                ("false", "true", "2")
            }
        );
        let pdb = pdbs("v1beta1").get("guard").await.unwrap();
        assert_eq!(
            pdb.types.map(|t| t.api_version).as_deref(),
            Some("policy/v1beta1")
        );
    }

    // Helm's defaults (what `convoy template` assumes without --api-versions) pick
    // policy/v1 for the same chart, and this API server has no such API.
    let chart = convoy_chart::Chart::load(&chart_dir).unwrap();
    let defaults = convoy_chart::render(
        &chart,
        &serde_json::json!({}),
        &convoy_chart::RenderOptions {
            release_name: "guard".into(),
            namespace: "budget".into(),
            ..Default::default()
        },
    )
    .unwrap();
    let pdb = defaults
        .manifests
        .iter()
        .find(|m| m.kind == "PodDisruptionBudget")
        .expect("the PDB");
    let object: serde_json::Value =
        serde_json::from_str(&convoy_chart::manifest_to_json(&pdb.content).unwrap()).unwrap();
    assert_eq!(object["apiVersion"], "policy/v1");
    let refused = pdbs("v1")
        .patch(
            "guard",
            &PatchParams::apply("helm-defaults").force(),
            &Patch::Apply(&object),
        )
        .await
        .expect_err("a 1.20 API server has no policy/v1");
    match refused {
        kube::Error::Api(status) => assert_eq!(status.code, 404, "{status:?}"),
        other => panic!("expected the API server to refuse policy/v1: {other}"),
    }
}

/// Runs the real `convoy` CLI against the fleet as on-call would; (success, output).
fn cli(convoyd: &Convoyd, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(convoy_tests::convoy::binary("convoy").unwrap())
        .args(args)
        .args(["--server", &convoyd.addr])
        .env("CONVOY_TOKEN", "t-admin")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Waits until `context` is in `phase` for `revision`.
async fn wait_context(c: &mut Client, context: &str, p: pb::ContextPhase, revision: u64) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let rel = c
            .get_release(pb::GetReleaseRequest {
                release: "web.shop".into(),
            })
            .await
            .unwrap()
            .into_inner();
        if rel
            .contexts
            .iter()
            .any(|s| s.context == context && s.phase == p as i32 && s.revision == revision)
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{context} never reached {p:?} at revision {revision}: {rel:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The operator's controls and the failure budget on three real clusters, driven through
/// the `convoy` CLI: pause holds the next wave (past its soak) until resume; abort stops a
/// rollout and leaves what was applied; `maxFailures` as a count and as a percentage lets
/// a rollout succeed with one crash-looping region; a release one cluster's API server
/// refuses in preflight is applied nowhere; with OpenBao stopped a submit and a diff
/// fail naming Vault and touch nothing, and `convoy rollback` takes every region back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn operator_controls_and_failure_budgets_on_three_clusters() {
    let Fleet {
        mut bao,
        clusters,
        convoyd,
        agents: _agents,
    } = start_fleet().await;
    let mut admin = client(&convoyd.addr, "t-admin").await;
    let waves = |extra: &str| format!("{{waves: [[east], [west, south]], onFailure: rollback{extra}}}");
    let fast = "healthy,after=300ms";
    let run = |image: &str, cv: &str, strategy: String| release_with(image, fast, cv, &strategy);

    let r1 = submit(&mut admin, run("registry.example/web:1.0", "", waves("")), "one").await;
    let op = final_operation(&watch(&mut admin, &r1.operation_id, Duration::from_secs(120)).await);
    assert_eq!(phase(op.phase), pb::OperationPhase::Succeeded, "{}", op.message);

    // Pause during the first wave's soak: the second wave does not start, even once the
    // soak is long over; resume starts it.
    let r2 = submit(
        &mut admin,
        run("registry.example/web:2.0", "", waves(", soak: 3s")),
        "pause me",
    )
    .await;
    wait_context(&mut admin, "east", pb::ContextPhase::Healthy, r2.revision).await;
    let (ok, text) = cli(&convoyd, &["pause", "web.shop", "--reason", "INC-7 hold"]);
    assert!(ok, "convoy pause: {text}");
    tokio::time::sleep(Duration::from_secs(6)).await;
    let rel = admin
        .get_release(pb::GetReleaseRequest {
            release: "web.shop".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let current = rel.current_operation.expect("the paused operation");
    assert_eq!(phase(current.phase), pb::OperationPhase::Paused, "{current:?}");
    assert_eq!(
        images(&clusters).await,
        [
            "registry.example/web:2.0",
            "registry.example/web:1.0",
            "registry.example/web:1.0"
        ]
    );
    let (ok, text) = cli(&convoyd, &["resume", "web.shop", "--reason", "INC-7 clear"]);
    assert!(ok, "convoy resume: {text}");
    let op = final_operation(&watch(&mut admin, &r2.operation_id, Duration::from_secs(120)).await);
    assert_eq!(phase(op.phase), pb::OperationPhase::Succeeded, "{}", op.message);
    assert_eq!(images(&clusters).await, vec!["registry.example/web:2.0"; 3]);

    // Abort while the first wave is still progressing: the rollout stops there; what was
    // applied stays, the second wave never starts.
    let slow = release_with("registry.example/web:3.0", "healthy,after=30s", "", &waves(""));
    let r3 = submit(&mut admin, slow, "abort me").await;
    wait_context(&mut admin, "east", pb::ContextPhase::Progressing, r3.revision).await;
    let (ok, text) = cli(&convoyd, &["abort", "web.shop", "--reason", "INC-8 stop"]);
    assert!(ok, "convoy abort: {text}");
    let op = final_operation(&watch(&mut admin, &r3.operation_id, Duration::from_secs(60)).await);
    assert_eq!(phase(op.phase), pb::OperationPhase::Aborted, "{}", op.message);
    assert_eq!(
        images(&clusters).await,
        [
            "registry.example/web:3.0",
            "registry.example/web:2.0",
            "registry.example/web:2.0"
        ]
    );

    // A failure budget of one context, as a count and as a percentage (34 % of 3 is 1):
    // one region crash-loops, the rollout still succeeds and says so.
    let crash = |c: &str| format!("  contextValues:\n    {c}: {{behavior: \"crashloop,after=300ms\"}}\n");
    for (image, crashing, budget) in [
        ("registry.example/web:4.0", "south", "1"),
        ("registry.example/web:5.0", "west", "\"34%\""),
    ] {
        let r = submit(
            &mut admin,
            run(
                image,
                &crash(crashing),
                waves(&format!(", maxFailures: {budget}")),
            ),
            "within budget",
        )
        .await;
        let events = watch(&mut admin, &r.operation_id, Duration::from_secs(180)).await;
        let op = final_operation(&events);
        assert_eq!(
            phase(op.phase),
            pb::OperationPhase::Succeeded,
            "maxFailures {budget}: {}",
            op.message
        );
        assert!(
            op.message.contains("1 failed within maxFailures"),
            "{}",
            op.message
        );
        assert_eq!(images(&clusters).await, vec![image; 3], "maxFailures {budget}");
    }

    // One cluster's API server refuses the release in preflight (west: replicas -1):
    // nothing is applied anywhere.
    let refused = submit(
        &mut admin,
        run(
            "registry.example/web:6.0",
            "  contextValues:\n    west: {replicas: -1}\n",
            waves(""),
        ),
        "refused in west",
    )
    .await;
    let op = final_operation(&watch(&mut admin, &refused.operation_id, Duration::from_secs(120)).await);
    assert_eq!(phase(op.phase), pb::OperationPhase::Failed, "{}", op.message);
    assert!(op.message.contains("west"), "{}", op.message);
    assert_eq!(images(&clusters).await, vec!["registry.example/web:5.0"; 3]);

    // OpenBao goes down. A submit and a diff fail at once, saying Vault cannot be
    // reached, with no cluster touched and nothing recorded; `convoy rollback` takes
    // every region back to revision 2 anyway (the agents restore it from their
    // clusters' history: no Vault, no chart).
    bao.kill();
    let revisions_before = admin
        .get_history(pb::GetHistoryRequest {
            release: "web.shop".into(),
            limit: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .revisions
        .len();
    let work = tempfile::tempdir().unwrap();
    let chart = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/web");
    std::fs::write(
        work.path().join("web.yaml"),
        run("registry.example/web:7.0", "", waves("")).replace("./web", &chart.display().to_string()),
    )
    .unwrap();
    let file = work.path().join("web.yaml").display().to_string();
    for verb in ["submit", "diff"] {
        let (ok, text) = cli(&convoyd, &[verb, "-f", &file]);
        assert!(!ok, "convoy {verb} with OpenBao down: {text}");
        assert!(
            text.contains("Vault") || text.contains("vault"),
            "convoy {verb} with OpenBao down should name Vault: {text}"
        );
    }
    let revisions_after = admin
        .get_history(pb::GetHistoryRequest {
            release: "web.shop".into(),
            limit: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .revisions
        .len();
    assert_eq!(
        revisions_after, revisions_before,
        "a submit with Vault down recorded a revision"
    );
    assert_eq!(images(&clusters).await, vec!["registry.example/web:5.0"; 3]);
    let (ok, text) = cli(
        &convoyd,
        &[
            "rollback",
            "web.shop",
            "--to-revision",
            &r2.revision.to_string(),
            "--reason",
            "INC-9 back to 2.0",
            "--yes",
            "--wait",
        ],
    );
    assert!(ok, "convoy rollback with OpenBao down: {text}");
    assert_eq!(images(&clusters).await, vec!["registry.example/web:2.0"; 3]);
}

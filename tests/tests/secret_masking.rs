//! A canary secret that a chart tries to leak every way it can: through `fail`, through
//! `getHostByName` (DNS), through transformed values (b64enc, upper) in a ConfigMap that
//! a diff shows, through a Kubernetes validation error (an invalid label value built from
//! it). It must reach the cluster's objects and nothing else: no gRPC response, no log
//! line of convoyd or the agent, no store file, no Kubernetes event, no CLI output, no
//! notification (webhooks: JSON, Slack, dead letters).
//!
//! convoyd + one agent on a real control plane, OpenBao for the secret.

use std::time::Duration;

use base64::Engine;
use convoy_proto::v1 as pb;
use convoy_tests::convoy::{AgentProcess, Convoyd};
use convoy_tests::kube::ControlPlane;
use convoy_tests::openbao::OpenBao;
use convoy_tests::webhook::Receiver;
use k8s_openapi::api::core::v1::{ConfigMap, Event};
use kube::Api;
use kube::api::ListParams;
use pb::release_service_client::ReleaseServiceClient;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

const CANARY: &str = "Canary-Leak-7d2e91-do-not-log";

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

/// Every form of the canary a chart in this test produces, and the ones the masker
/// promises to catch.
fn forms() -> Vec<String> {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    vec![
        CANARY.to_string(),
        CANARY.to_uppercase(),
        CANARY.to_lowercase(),
        b64(CANARY),
        b64(&CANARY.to_uppercase()),
    ]
}

fn assert_clean(what: &str, text: &str) {
    for f in forms() {
        assert!(
            !text.contains(&f),
            "a form of the secret ({f}) reached {what}:\n{text}"
        );
    }
}

fn release(mode: &str, greeting: &str) -> String {
    format!(
        r#"apiVersion: convoy.dev/v1
kind: Release
metadata: {{name: web.leak, namespace: leak, environment: dev}}
spec:
  chart: {{path: ./leaky}}
  values: {{mode: {mode}, greeting: {greeting}}}
  contexts: [solo]
  secrets:
    - secret_id: db
      contexts:
        - {{name: default, vaultPath: /kv/dev/leak/db, vaultKey: password}}
  health: {{progressDeadline: 1m, minReadyWindow: 1s}}
"#
    )
}

fn chart_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/leaky")
}

fn submit_request(mode: &str, greeting: &str) -> pb::SubmitReleaseRequest {
    pb::SubmitReleaseRequest {
        release_yaml: release(mode, greeting),
        source_name: "leak.yaml".into(),
        chart_archive: convoy_chart::package_dir(&chart_dir()).expect("packaging the chart"),
        reason: format!("mode {mode}"),
        ..Default::default()
    }
}

/// Watches one operation to its end; returns every event.
async fn watch(c: &mut Client, operation_id: &str) -> Vec<pb::RolloutEvent> {
    let mut stream = c
        .watch_release(pb::WatchReleaseRequest {
            release: "web.leak".into(),
            operation_id: operation_id.into(),
            follow: false,
        })
        .await
        .unwrap()
        .into_inner();
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        match tokio::time::timeout_at(deadline, stream.message()).await {
            Ok(Ok(Some(e))) => events.push(e),
            Ok(Ok(None)) => return events,
            Ok(Err(s)) => panic!("watch failed: {s}"),
            Err(_) => panic!("operation {operation_id} did not finish; events: {events:#?}"),
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

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Runs the `convoy` CLI against convoyd; returns stdout and stderr together.
fn cli(addr: &str, args: &[&str], dir: &std::path::Path) -> String {
    let out = std::process::Command::new(convoy_tests::convoy::binary("convoy").unwrap())
        .args(args)
        .env("CONVOY_SERVER", addr)
        .env("CONVOY_TOKEN", "t-admin")
        .current_dir(dir)
        .output()
        .expect("running convoy");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Every file under `dir`, read whole.
fn files_under(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else if let Ok(bytes) = std::fs::read(&path) {
            out.push((path, bytes));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_canary_secret_reaches_the_cluster_and_nothing_else() {
    leak_everywhere(None).await;
}

/// The same with the coordinator's state in etcd: its WAL and database hold no form
/// of the secret either.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_canary_secret_reaches_no_etcd_file() {
    let etcd = convoy_tests::etcd::Etcd::start().await.unwrap();
    leak_everywhere(Some(&etcd)).await;
}

async fn leak_everywhere(etcd: Option<&convoy_tests::etcd::Etcd>) {
    let name = if etcd.is_some() { "leak-etcd" } else { "leak" };
    let (bao, cp) = tokio::join!(OpenBao::start(), ControlPlane::start(name));
    let (bao, cp) = (bao.unwrap(), cp.unwrap());
    bao.mount_kv("kv", 2).await.unwrap();
    bao.kv2_put("kv", "dev/leak/db", serde_json::json!({"password": CANARY}))
        .await
        .unwrap();
    // Notifications: a JSON webhook that refuses its first POST (retried), a Slack one
    // whose URL is in a file (a credential: never logged), one nobody listens on (dead
    // letters). Every message must be as clean as the API's answers.
    let (json_hook, slack_hook) = tokio::join!(Receiver::start(1), Receiver::start(0));
    let (json_hook, slack_hook) = (json_hook.unwrap(), slack_hook.unwrap());
    let notify_dir = tempfile::tempdir().unwrap();
    let slack_url_file = notify_dir.path().join("slack-url");
    std::fs::write(&slack_url_file, &slack_hook.url).unwrap();
    let dead_letters = notify_dir.path().join("dead.jsonl");
    let nobody = format!("http://127.0.0.1:{}/hook", convoy_tests::free_port());
    let notifications = format!(
        "notifications:\n  attempts: 3\n  backoff_ms: 100\n  dead_letter_file: {}\n  webhooks:\n\
         \x20   - {{name: ops, url: '{}'}}\n\
         \x20   - {{name: chat, url_file: {}, format: slack, events: [failed, succeeded]}}\n\
         \x20   - {{name: dead, url: '{nobody}', events: [failed]}}\n\
         \x20   - {{name: prod-only, url: '{}', scope: {{environments: [prod]}}}}\n",
        dead_letters.display(),
        json_hook.url,
        slack_url_file.display(),
        json_hook.url,
    );
    let cfg = format!(
        "contexts:\n  - {{name: solo, region: solo-1, env: dev, cloud: sim, clusterName: solo}}\n\
         auth:\n  tokens:\n    - {{name: alice, role: admin, token: t-admin}}\n  agents:\n    - {{context: solo, token: agent-solo}}\n\
         vault:\n  address: {}\n  auth: {{method: token, token: {}}}\nheartbeat_seconds: 2\n{notifications}{}",
        bao.addr(),
        bao.root_token(),
        etcd.map(|e| format!(
            "store: {{backend: etcd, etcd_endpoints: [\"{}\"]}}\n",
            e.client_url()
        ))
        .unwrap_or_default()
    );
    let convoyd = Convoyd::start(&cfg).await.unwrap();
    let agent = AgentProcess::start(
        &convoyd.addr,
        "solo",
        "agent-solo",
        Some(&cp.kubeconfig_yaml()),
        "",
    )
    .await
    .unwrap();
    let ch = Channel::from_shared(convoyd.addr.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut c: Client = ReleaseServiceClient::with_interceptor(ch, Bearer("t-admin".into()));
    // Everything the API answered, to check at the end as well.
    let mut answered = String::new();

    // `fail` quoting the secret: the submit is refused, the message masked.
    let err = c.submit_release(submit_request("fail", "hi")).await.unwrap_err();
    let msg = err.message().to_string();
    assert!(msg.contains("database password <masked> is wrong"), "{msg}");
    assert_clean("a refused submit", &msg);
    answered.push_str(&msg);

    // getHostByName (a DNS query carrying the secret) is disabled in deploy renders.
    let err = c.submit_release(submit_request("host", "hi")).await.unwrap_err();
    assert!(
        err.message().contains("getHostByName is disabled"),
        "{}",
        err.message()
    );
    assert_clean("a refused submit", err.message());
    answered.push_str(err.message());

    // Revision 1: the secret reaches the cluster (in a Secret).
    let r1 = c
        .submit_release(submit_request("ok", "hi"))
        .await
        .unwrap()
        .into_inner();
    answered.push_str(&format!("{r1:?}"));
    let events = watch(&mut c, &r1.operation_id).await;
    answered.push_str(&format!("{events:?}"));
    let op = final_operation(&events);
    assert_eq!(op.phase, pb::OperationPhase::Succeeded as i32, "{}", op.message);

    // A diff of the transformed values (base64, upper case) in a ConfigMap: the fields
    // are reported changed, their values withheld.
    let diff = c
        .diff_release(pb::DiffReleaseRequest {
            submit: Some(submit_request("transformed", "hi")),
            timeout_seconds: 60,
        })
        .await
        .unwrap()
        .into_inner();
    let shown = format!("{diff:?}");
    assert!(shown.contains("b64") && shown.contains("upper"), "{shown}");
    assert_clean("a diff", &shown);
    answered.push_str(&shown);

    // Revision 2 ships them: they are in the cluster's ConfigMap, as the chart says.
    let r2 = c
        .submit_release(submit_request("transformed", "hi"))
        .await
        .unwrap()
        .into_inner();
    let events = watch(&mut c, &r2.operation_id).await;
    answered.push_str(&format!("{events:?}"));
    assert_eq!(
        final_operation(&events).phase,
        pb::OperationPhase::Succeeded as i32
    );
    let cms: Api<ConfigMap> = Api::namespaced(cp.client().await, "leak");
    let data = cms.get("leaky").await.unwrap().data.unwrap();
    assert_eq!(data["upper"], CANARY.to_uppercase());

    // Revision 3: an invalid label value built from the secret. The API server refuses
    // it, quoting the value; the failure says so, masked.
    let r3 = c
        .submit_release(submit_request("label", "hi"))
        .await
        .unwrap()
        .into_inner();
    let events = watch(&mut c, &r3.operation_id).await;
    let shown = format!("{events:?}");
    let op = final_operation(&events);
    assert_ne!(op.phase, pb::OperationPhase::Succeeded as i32);
    assert!(shown.contains("<masked>"), "the refusal is not shown: {shown}");
    assert_clean("a rollout's events", &shown);
    answered.push_str(&shown);

    // What a viewer reads back.
    for r in [
        format!(
            "{:?}",
            c.get_release(pb::GetReleaseRequest {
                release: "web.leak".into()
            })
            .await
            .unwrap()
            .into_inner()
        ),
        format!(
            "{:?}",
            c.get_history(pb::GetHistoryRequest {
                release: "web.leak".into(),
                limit: 0,
            })
            .await
            .unwrap()
            .into_inner()
        ),
    ] {
        answered.push_str(&r);
    }
    assert_clean("the API's answers", &answered);

    // The CLI: a failing submit, a diff, status and history.
    let work = tempfile::tempdir().unwrap();
    let copy = work.path().join("leaky");
    std::fs::create_dir_all(copy.join("templates")).unwrap();
    for f in [
        "Chart.yaml",
        "values.yaml",
        "templates/configmap.yaml",
        "templates/secret.yaml",
    ] {
        std::fs::copy(chart_dir().join(f), copy.join(f)).unwrap();
    }
    std::fs::write(work.path().join("fail.yaml"), release("fail", "hi")).unwrap();
    std::fs::write(work.path().join("label.yaml"), release("label", "cli")).unwrap();
    let mut printed = String::new();
    for args in [
        &["submit", "-f", "fail.yaml"][..],
        &["diff", "-f", "label.yaml"],
        &["diff", "-f", "label.yaml", "-o", "json"],
        &["submit", "-f", "label.yaml", "--wait"],
        &["status", "web.leak"],
        &["history", "web.leak"],
        &["history", "web.leak", "-o", "json"],
    ] {
        printed.push_str(&cli(&convoyd.addr, args, work.path()));
    }
    assert!(printed.contains("<masked>"), "{printed}");
    assert_clean("the CLI's output", &printed);

    // No Kubernetes event quotes it.
    let events: Api<Event> = Api::all(cp.client().await);
    let listed = events.list(&ListParams::default()).await.unwrap();
    let messages: Vec<String> = listed
        .items
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e.reason.clone().unwrap_or_default(),
                e.message.clone().unwrap_or_default()
            )
        })
        .collect();
    assert_clean("a Kubernetes event", &messages.join("\n"));

    // The notifications: each rollout's start and end reached the JSON webhook (after a
    // refused first POST), the failure with its masked reason; the Slack webhook got
    // its one-line messages; the prod-scoped webhook (same receiver) nothing extra; the
    // dead one's notifications are in the dead-letter file. None carries the secret.
    let ops = json_hook
        .wait_until(Duration::from_secs(30), |b| {
            b.iter().filter(|x| x.contains("\"event\":\"failed\"")).count() >= 2
                && b.iter().filter(|x| x.contains("\"event\":\"succeeded\"")).count() >= 2
        })
        .await
        .unwrap_or_else(|b| panic!("the JSON webhook missed events: {b:#?}"));
    assert_eq!(json_hook.refused(), 1, "the first POST was refused, then retried");
    let parsed: Vec<serde_json::Value> = ops.iter().map(|b| serde_json::from_str(b).unwrap()).collect();
    let r1_events: Vec<&str> = parsed
        .iter()
        .filter(|v| v["operationId"] == r1.operation_id.as_str())
        .map(|v| v["event"].as_str().unwrap())
        .collect();
    assert_eq!(r1_events, ["started", "wave_settled", "succeeded"], "{parsed:#?}");
    let failed = parsed
        .iter()
        .find(|v| v["event"] == "failed" && v["operationId"] == r3.operation_id.as_str())
        .unwrap_or_else(|| panic!("no failed notice for {}: {parsed:#?}", r3.operation_id));
    assert_eq!(failed["release"], "web.leak");
    assert_eq!(failed["environments"], serde_json::json!(["dev"]));
    assert!(
        failed["failures"]["solo"].as_str().unwrap().contains("<masked>"),
        "{failed}"
    );
    let chat = slack_hook
        .wait_until(Duration::from_secs(30), |b| {
            b.iter().any(|x| x.contains(":x: *web.leak*"))
        })
        .await
        .unwrap_or_else(|b| panic!("the Slack webhook missed the failure: {b:#?}"));
    assert!(chat.iter().all(|b| !b.contains("started")), "{chat:#?}");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let dead = loop {
        let text = std::fs::read_to_string(&dead_letters).unwrap_or_default();
        if text.lines().count() >= 2 || std::time::Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(dead.lines().count() >= 2, "dead letters: {dead}");
    for line in dead.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(
            (v["webhook"].as_str(), v["attempts"].as_u64()),
            (Some("dead"), Some(3)),
            "{v}"
        );
        assert_eq!(v["payload"]["event"], "failed", "{v}");
    }
    assert_clean("a notification", &ops.join("\n"));
    assert_clean("a Slack notification", &chat.join("\n"));
    assert_clean("a dead letter", &dead);
    assert!(
        !convoyd.logs().contains(&slack_hook.url),
        "a webhook URL reached the log"
    );
    assert!(convoyd.logs().contains("notification dead-lettered"));

    // Nor a log line, nor the store.
    assert_clean("convoyd's log", &convoyd.logs());
    assert_clean("the agent's log", &agent.logs());
    let store_files = match etcd {
        Some(e) => files_under(&e.data_dir()),
        None => vec![(
            convoyd.dir().join("state.redb"),
            std::fs::read(convoyd.dir().join("state.redb")).unwrap(),
        )],
    };
    assert!(!store_files.is_empty());
    for (path, bytes) in &store_files {
        for f in forms() {
            assert!(!contains(bytes, f.as_bytes()), "{f} reached {}", path.display());
        }
    }
}

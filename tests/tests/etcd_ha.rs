//! The coordinator highly available on etcd, with real processes: two `convoyd` on one
//! real etcd. One leads, the other stands by (not ready, refusing every call with the
//! leader's name); killing the leader hands the role and the recorded state to the
//! standby within about the lease TTL, and an agent given both addresses follows it;
//! a leader whose lease is revoked stops.
//! (The store contract on etcd and the fencing of a deposed leader's writes are tested
//! in the daemon: `cargo test -p convoy-daemon --lib store::etcd`.)

use std::time::{Duration, Instant};

use base64::Engine;
use convoy_proto::v1 as pb;
use convoy_tests::convoy::{AgentProcess, Convoyd};
use convoy_tests::etcd::Etcd;
use convoy_tests::http;
use pb::release_service_client::ReleaseServiceClient;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// Short, so that a takeover is quick; the default is 10 s.
const TTL: Duration = Duration::from_secs(3);

#[derive(Clone)]
struct Bearer;

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        req.metadata_mut().insert(
            "authorization",
            tonic::metadata::MetadataValue::from_static("Bearer t-admin"),
        );
        Ok(req)
    }
}

type Client = ReleaseServiceClient<InterceptedService<Channel, Bearer>>;

async fn client(addr: &str) -> Client {
    let ch = Channel::from_shared(addr.to_string())
        .unwrap()
        .connect()
        .await
        .unwrap();
    ReleaseServiceClient::with_interceptor(ch, Bearer)
}

/// The `store:` keys for `etcd`: with TLS, a client certificate and a password when it
/// is secured (as in production).
fn store(etcd: &Etcd, name: &str) -> String {
    let secure = etcd.access().map_or_else(String::new, |a| {
        format!(
            ", etcd_tls: {{ca_file: \"{}\", cert_file: \"{}\", key_file: \"{}\"}}, etcd_username: {}, etcd_password_file: \"{}\"",
            a.ca_file.display(),
            a.cert_file.display(),
            a.key_file.display(),
            a.username,
            a.password_file.display()
        )
    });
    format!(
        "store: {{backend: etcd, etcd_endpoints: [\"{}\"], etcd_lease_ttl_seconds: {}, etcd_instance_name: {name}{secure}}}\n",
        etcd.client_url(),
        TTL.as_secs()
    )
}

fn config(etcd: &Etcd, name: &str) -> String {
    format!(
        "{}contexts:\n  - {{name: east, region: east-1, env: dev, cloud: sim, clusterName: east-cluster}}\n\
         auth:\n  tokens:\n    - {{name: alice, role: admin, token: t-admin}}\n  agents:\n    - {{context: east, token: agent-east}}\n",
        store(etcd, name)
    )
}

const RELEASE: &str = r#"apiVersion: convoy.dev/v1
kind: Release
metadata: {name: web.shop, namespace: shop, environment: dev}
spec:
  chart: {path: ./web}
  values: {image: "registry.example/web:1.0", behavior: "healthy", message: "ha"}
  contexts: [east]
  strategy: {waves: [[east]], maxFailures: 0, onFailure: rollback, soak: 0s}
  health: {progressDeadline: 2m, minReadyWindow: 1s}
"#;

fn chart_archive() -> Vec<u8> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/web");
    convoy_chart::package_dir(&dir).expect("packaging the test chart")
}

async fn readyz(d: &Convoyd) -> (u16, String) {
    match http::request("GET", &format!("{}/readyz", d.metrics), &[], None).await {
        Ok(r) => (r.status, r.body),
        Err(e) => (0, e),
    }
}

/// Polls `check` until it holds or `limit` passes.
async fn eventually<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let start = Instant::now();
    loop {
        match check().await {
            Ok(()) => return,
            Err(last) if start.elapsed() > limit => panic!("{what}: not after {limit:?}; last: {last}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// B refuses as a standby naming `leader`: `/readyz` 503, the API and the agent link
/// UNAVAILABLE.
async fn assert_standby(b: &Convoyd, leader: &str) {
    eventually("b reports standby", Duration::from_secs(20), || async {
        let (status, body) = readyz(b).await;
        if status == 503 && body.contains(&format!("standby: leader is {leader}")) {
            Ok(())
        } else {
            Err(format!("{status} {body}"))
        }
    })
    .await;
    let err = client(&b.addr)
        .await
        .get_release(pb::GetReleaseRequest {
            release: "web.shop".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err}");
    assert!(err.message().contains(leader), "{err}");
    let ch = Channel::from_shared(b.addr.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let err = pb::agent_link_client::AgentLinkClient::new(ch)
        .session(tokio_stream::iter(Vec::<pb::AgentMessage>::new()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err}");
    assert!(err.message().contains(leader), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_takes_over_with_the_leaders_state() {
    // etcd as production runs it: TLS, client certificates, authentication.
    let etcd = Etcd::start_secure("/convoy").await.unwrap();
    let a = Convoyd::start(&config(&etcd, "coordinator-a")).await.unwrap();
    let mut b = Convoyd::launch(&config(&etcd, "coordinator-b")).unwrap();
    assert_eq!(readyz(&a).await.0, 200);
    assert_standby(&b, "coordinator-a").await;

    // A records a revision (no agent: the rollout waits for one).
    let submitted = client(&a.addr)
        .await
        .submit_release(pb::SubmitReleaseRequest {
            release_yaml: RELEASE.into(),
            source_name: "web.yaml".into(),
            chart_archive: chart_archive(),
            values_files: vec![],
            reason: "ha test".into(),
            dry_run: false,
            allow_mass_deletion: false,
        })
        .await
        .unwrap_or_else(|s| panic!("submit refused: {s}"))
        .into_inner();
    assert_eq!(submitted.revision, 1);
    // An agent given both coordinators (no load balancer): the standby refuses it, the
    // leader welcomes it.
    let _agent = AgentProcess::start(&format!("{},{}", b.addr, a.addr), "east", "agent-east", None, "")
        .await
        .unwrap();

    let mut a = a;
    a.kill();
    let killed = Instant::now();
    let took = b.wait_ready_within(Duration::from_secs(30)).await.unwrap();
    eprintln!(
        "standby ready {:?} after the leader was killed (TTL {TTL:?})",
        killed.elapsed()
    );
    assert!(took < TTL + Duration::from_secs(5), "takeover took {took:?}");
    assert!(b.logs().contains("elected leader on etcd"), "{}", b.logs());
    let password = &etcd.access().unwrap().password;
    assert!(!b.logs().contains(password.as_str()) && !a.logs().contains(password.as_str()));

    let mut cb = client(&b.addr).await;
    let release = cb
        .get_release(pb::GetReleaseRequest {
            release: "web.shop".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(release.latest_revision, 1);
    let history = cb
        .get_history(pb::GetHistoryRequest {
            release: "web.shop".into(),
            limit: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(history.revisions.len(), 1, "{history:?}");
    assert_eq!(history.revisions[0].number, 1);
    assert_eq!(history.revisions[0].reason, "ha test");

    // The agent follows the new leader.
    let ch = Channel::from_shared(b.addr.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let clusters = pb::cluster_service_client::ClusterServiceClient::with_interceptor(ch, Bearer);
    eventually(
        "the agent reconnects to the new leader",
        Duration::from_secs(30),
        || {
            let mut clusters = clusters.clone();
            async move {
                let list = clusters
                    .list_clusters(pb::ListClustersRequest::default())
                    .await
                    .map_err(|e| e.to_string())?
                    .into_inner();
                let connected = list
                    .clusters
                    .iter()
                    .any(|c| c.context == "east" && c.agent.as_ref().is_some_and(|a| a.connected));
                if connected {
                    Ok(())
                } else {
                    Err(format!("{list:?}"))
                }
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_lease_is_revoked_stops() {
    let etcd = Etcd::start().await.unwrap();
    let mut a = Convoyd::start(&config(&etcd, "coordinator-a")).await.unwrap();
    // The leader key's lease, then revoke it: as if etcd had expired it.
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let range = http::request(
        "POST",
        &format!("{}/v3/kv/range", etcd.client_url()),
        &[],
        Some(&format!("{{\"key\":\"{}\"}}", b64("/convoy/leader"))),
    )
    .await
    .unwrap()
    .json()
    .unwrap();
    let lease = range["kvs"][0]["lease"]
        .as_str()
        .expect("the leader key has a lease")
        .to_string();
    http::request(
        "POST",
        &format!("{}/v3/lease/revoke", etcd.client_url()),
        &[],
        Some(&format!("{{\"ID\":\"{lease}\"}}")),
    )
    .await
    .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(s) = a.exited() {
            break s;
        }
        assert!(
            start.elapsed() < TTL * 3,
            "the deposed leader still runs:\n{}",
            a.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(!status.success(), "{status}");
    assert!(a.logs().contains("leadership lost"), "{}", a.logs());
}

/// A coordinator config for `contexts` simulated contexts (`ctx-00`...).
fn fleet_config(etcd: &Etcd, name: &str, contexts: &[String]) -> String {
    let mut cfg = format!("{}heartbeat_seconds: 1\ncontexts:\n", store(etcd, name));
    for c in contexts {
        cfg.push_str(&format!(
            "  - {{name: {c}, region: r-{c}, env: dev, cloud: sim, clusterName: {c}}}\n"
        ));
    }
    cfg.push_str("auth:\n  tokens:\n    - {name: alice, role: admin, token: t-admin}\n  agents:\n");
    for c in contexts {
        cfg.push_str(&format!("    - {{context: {c}, token: agent-{c}}}\n"));
    }
    cfg
}

/// Revision `image` of a release over `contexts` in waves of five.
fn fleet_release(contexts: &[String], image: &str) -> pb::SubmitReleaseRequest {
    let waves: Vec<String> = contexts
        .chunks(5)
        .map(|w| format!("[{}]", w.join(", ")))
        .collect();
    pb::SubmitReleaseRequest {
        release_yaml: format!(
            "apiVersion: convoy.dev/v1\nkind: Release\nmetadata: {{name: web.shop, namespace: shop}}\nspec:\n  chart: {{path: ./web}}\n  \
             values: {{image: \"{image}\", behavior: \"healthy,after=1s\"}}\n  contexts: [{}]\n  \
             strategy: {{waves: [{}], maxFailures: 0, onFailure: rollback, soak: 1s, offlineAgent: {{deadline: 2m}}}}\n  \
             health: {{progressDeadline: 2m, minReadyWindow: 1s}}\n",
            contexts.join(", "),
            waves.join(", ")
        ),
        source_name: "web.yaml".into(),
        chart_archive: chart_archive(),
        values_files: vec![],
        reason: format!("ha rollout {image}"),
        dry_run: false,
        allow_mass_deletion: false,
    }
}

/// How many contexts are healthy at `revision`, as the coordinator at `addr` sees it;
/// None while it does not answer.
async fn healthy_at(addr: &str, revision: u64) -> Option<usize> {
    let mut c = client(addr).await;
    let r = c
        .get_release(pb::GetReleaseRequest {
            release: "web.shop".into(),
        })
        .await
        .ok()?
        .into_inner();
    Some(
        r.contexts
            .iter()
            .filter(|s| s.revision == revision && s.phase == pb::ContextPhase::Healthy as i32)
            .count(),
    )
}

async fn wait_healthy(addr: &str, revision: u64, at_least: usize, limit: Duration) {
    let start = Instant::now();
    loop {
        let n = tokio::time::timeout(Duration::from_secs(5), healthy_at(addr, revision))
            .await
            .ok()
            .flatten();
        if n.is_some_and(|n| n >= at_least) {
            return;
        }
        assert!(
            start.elapsed() < limit,
            "{at_least} contexts never healthy at revision {revision} via {addr} (last: {n:?})"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A rollout over many contexts (20; `CONVOY_HA_CONTEXTS` for more) loses its leading
/// coordinator twice, in the middle of its waves: SIGKILL (the standby takes over and
/// finishes it), then SIGSTOP (the first coordinator, back as a standby, takes over once
/// the frozen one's lease expires; thawed, the frozen one finds itself deposed and stops
/// without writing). Every context ends healthy at each revision, and the history holds
/// each revision once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_survives_losing_its_leader_by_sigkill_and_by_sigstop() {
    let n: usize = std::env::var("CONVOY_HA_CONTEXTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let contexts: Vec<String> = (0..n).map(|i| format!("ctx-{i:02}")).collect();
    let etcd = Etcd::start().await.unwrap();
    let mut a = Convoyd::start(&fleet_config(&etcd, "coordinator-a", &contexts))
        .await
        .unwrap();
    let mut b = Convoyd::launch(&fleet_config(&etcd, "coordinator-b", &contexts)).unwrap();
    assert_standby(&b, "coordinator-a").await;
    let both = format!("{},{}", a.addr, b.addr);
    let mut agents = Vec::new();
    for c in &contexts {
        agents.push(AgentProcess::launch(&both, c, &format!("agent-{c}"), None, "").unwrap());
    }
    for agent in &mut agents {
        agent.wait_connected().await.unwrap();
    }

    // SIGKILL of the leader after the first wave.
    let r1 = client(&a.addr)
        .await
        .submit_release(fleet_release(&contexts, "registry.example/web:1.0"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r1.revision, 1);
    wait_healthy(&a.addr, 1, 5, Duration::from_secs(60)).await;
    a.kill();
    let killed = Instant::now();
    b.wait_ready_within(Duration::from_secs(30)).await.unwrap();
    eprintln!("B leads {:?} after A was killed", killed.elapsed());
    wait_healthy(&b.addr, 1, n, Duration::from_secs(180)).await;
    eprintln!(
        "revision 1 healthy in all {n} contexts {:?} after the kill",
        killed.elapsed()
    );

    // SIGSTOP of the new leader after the first wave of revision 2.
    a.relaunch().unwrap();
    assert_standby(&a, "coordinator-b").await;
    let r2 = client(&b.addr)
        .await
        .submit_release(fleet_release(&contexts, "registry.example/web:2.0"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r2.revision, 2);
    wait_healthy(&b.addr, 2, 5, Duration::from_secs(60)).await;
    b.freeze();
    let frozen = Instant::now();
    a.wait_ready_within(Duration::from_secs(30)).await.unwrap();
    eprintln!("A leads {:?} after B froze", frozen.elapsed());
    tokio::time::sleep(Duration::from_secs(2)).await;
    b.thaw();
    let status = loop {
        if let Some(s) = b.exited() {
            break s;
        }
        assert!(
            frozen.elapsed() < Duration::from_secs(60),
            "the thawed, deposed coordinator still runs:\n{}",
            b.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(!status.success(), "{status}");
    assert!(b.logs().contains("leadership lost"), "{}", b.logs());
    wait_healthy(&a.addr, 2, n, Duration::from_secs(180)).await;
    eprintln!(
        "revision 2 healthy in all {n} contexts {:?} after the freeze",
        frozen.elapsed()
    );

    let history = client(&a.addr)
        .await
        .get_history(pb::GetHistoryRequest {
            release: "web.shop".into(),
            limit: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let numbers: Vec<u64> = history.revisions.iter().map(|r| r.number).collect();
    assert_eq!(numbers, [2, 1], "each revision once: {history:?}");
    let release = client(&a.addr)
        .await
        .get_release(pb::GetReleaseRequest {
            release: "web.shop".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(release.deployed_revision, 2, "{release:?}");
}

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

fn config(etcd: &Etcd, name: &str) -> String {
    format!(
        "store: {{backend: etcd, etcd_endpoints: [\"{}\"], etcd_lease_ttl_seconds: {}, etcd_instance_name: {name}}}\n\
         contexts:\n  - {{name: east, region: east-1, env: dev, cloud: sim, clusterName: east-cluster}}\n\
         auth:\n  tokens:\n    - {{name: alice, role: admin, token: t-admin}}\n  agents:\n    - {{context: east, token: agent-east}}\n",
        etcd.client_url(),
        TTL.as_secs()
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
    let etcd = Etcd::start().await.unwrap();
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

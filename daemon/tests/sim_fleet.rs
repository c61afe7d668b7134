//! A large fleet on the simulated backend: the real coordinator (in process, real gRPC
//! on loopback) and 150 agents, each with its own connection and simulated cluster.
//! A release reaches every context in waves; a build that crash-loops in one context
//! rolls all of them back; a manual rollback returns the fleet to revision 1.

use std::sync::Arc;
use std::time::Duration;

use convoy_agent::runtime::{AgentRuntime, Credentials, RuntimeConfig, Token};
use convoy_agent::sim::backend::{SimBackend, SimConfig};
use convoy_daemon::config::DaemonConfig;
use convoy_proto::v1 as pb;
use tokio_util::sync::CancellationToken;

const N: usize = 150;

fn ctx(i: usize) -> String {
    format!("sim-{i:03}")
}

fn release(image: &str, crash_in: Option<&str>) -> String {
    let contexts: Vec<String> = (0..N).map(ctx).collect();
    let crash = crash_in
        .map(|c| format!("  contextValues:\n    {c}: {{behavior: \"crashloop,after=200ms\"}}\n"))
        .unwrap_or_default();
    // A canary wave of 10, then the rest, at most 50 at a time.
    format!(
        "apiVersion: convoy.dev/v1\nkind: Release\nmetadata: {{name: web.fleet, namespace: fleet}}\nspec:\n  chart: {{path: ./web}}\n  values: {{image: \"{image}\", behavior: \"healthy,after=100ms\"}}\n{crash}  contexts: [{}]\n  strategy: {{canary: [{}], maxConcurrency: 50, maxFailures: 0, onFailure: rollback}}\n  health: {{progressDeadline: 1m, minReadyWindow: 0s}}\n",
        contexts.join(", "),
        contexts[..10].join(", ")
    )
}

async fn wait_op(
    c: &mut pb::release_service_client::ReleaseServiceClient<tonic::transport::Channel>,
    op: &str,
) -> pb::Operation {
    let mut s = c
        .watch_release(pb::WatchReleaseRequest {
            release: "web.fleet".into(),
            operation_id: op.into(),
            follow: false,
        })
        .await
        .unwrap()
        .into_inner();
    let mut last = None;
    while let Some(e) = tokio::time::timeout(Duration::from_secs(120), s.message())
        .await
        .expect("watch stalled")
        .unwrap()
    {
        if let Some(pb::rollout_event::Event::Operation(o)) = e.event {
            last = Some(o);
        }
    }
    last.expect("an operation event")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_150_context_fleet_rolls_out_and_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = format!(
        "listen: 127.0.0.1:0\nstore: {{backend: embedded, path: {}}}\nauth: {{allow_anonymous: true}}\nheartbeat_seconds: 5\ncontexts:\n",
        dir.path().join("state.redb").display()
    );
    for i in 0..N {
        cfg.push_str(&format!(
            "  - {{name: {}, region: r{}, env: dev, cloud: sim, clusterName: c{i}}}\n",
            ctx(i),
            i % 5
        ));
    }
    let path = dir.path().join("convoyd.yaml");
    std::fs::write(&path, cfg).unwrap();
    let cfg = DaemonConfig::load_with_env(Some(&path), Vec::new()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let pipeline = convoy_daemon::server::pipeline(&cfg).unwrap();
    let running = convoy_daemon::server::start(&cfg, listener, Arc::new(pipeline))
        .await
        .unwrap();
    let server = format!("http://{}", running.addr);

    let stop = CancellationToken::new();
    let mut backends = Vec::new();
    for i in 0..N {
        let backend = Arc::new(SimBackend::new(SimConfig {
            history_limit: 10,
            apply_latency: Duration::ZERO,
        }));
        backends.push(backend.clone());
        let mut rc = RuntimeConfig::new(server.clone(), ctx(i));
        rc.credentials = Credentials::Token(Token::new("unused"));
        tokio::spawn(AgentRuntime::new(rc, backend).run(stop.clone()));
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while running
        .core
        .clusters()
        .await
        .unwrap()
        .iter()
        .filter(|c| c.connected)
        .count()
        < N
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "agents did not all connect"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mut c = pb::release_service_client::ReleaseServiceClient::connect(server.clone())
        .await
        .unwrap();
    let chart = convoy_chart::package_dir(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/charts/web"),
    )
    .unwrap();
    let submit = |yaml: String| pb::SubmitReleaseRequest {
        release_yaml: yaml,
        source_name: "fleet.yaml".into(),
        chart_archive: chart.clone(),
        reason: "fleet test".into(),
        ..Default::default()
    };
    let image_everywhere = |want: &str| {
        backends.iter().all(|b| {
            b.objects_of("web.fleet")
                .iter()
                .filter(|o| o.kind == "Deployment")
                .all(|o| {
                    b.object(o)
                        .is_some_and(|v| v["spec"]["template"]["spec"]["containers"][0]["image"] == want)
                })
        })
    };

    // Revision 1 everywhere: the canary wave first, then the rest.
    let r1 = c
        .submit_release(submit(release("web:1", None)))
        .await
        .unwrap()
        .into_inner();
    let op = wait_op(&mut c, &r1.operation_id).await;
    assert_eq!(op.phase, pb::OperationPhase::Succeeded as i32, "{}", op.message);
    assert_eq!(op.message, format!("{N} of {N} contexts healthy"));
    assert!(image_everywhere("web:1"));

    // Revision 2 crash-loops in one context of the second wave: everything that got it goes back.
    let bad = ctx(77);
    let r2 = c
        .submit_release(submit(release("web:2", Some(&bad))))
        .await
        .unwrap()
        .into_inner();
    let op = wait_op(&mut c, &r2.operation_id).await;
    assert_eq!(op.phase, pb::OperationPhase::Failed as i32, "{}", op.message);
    assert!(op.message.contains("back to revision 1"), "{}", op.message);
    let rel = c
        .get_release(pb::GetReleaseRequest {
            release: "web.fleet".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let kept: Vec<String> = (0..N)
        .filter(|i| {
            let b = &backends[*i];
            b.objects_of("web.fleet")
                .iter()
                .filter(|o| o.kind == "Deployment")
                .any(|o| {
                    b.object(o)
                        .is_some_and(|v| v["spec"]["template"]["spec"]["containers"][0]["image"] != "web:1")
                })
        })
        .map(|i| {
            let st = rel.contexts.iter().find(|x| x.context == ctx(i)).unwrap();
            format!("{} phase={} msg={}", ctx(i), st.phase, st.message)
        })
        .collect();
    assert!(kept.is_empty(), "contexts that kept revision 2: {kept:#?}");
    let failed = rel.contexts.iter().find(|x| x.context == bad).unwrap();
    assert_eq!(failed.phase, pb::ContextPhase::RolledBack as i32);

    // Revision 4 (2 was rolled back as 3), then a manual fleet-wide rollback to 1.
    let r4 = c
        .submit_release(submit(release("web:4", None)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r4.revision, 4);
    assert_eq!(
        wait_op(&mut c, &r4.operation_id).await.phase,
        pb::OperationPhase::Succeeded as i32
    );
    assert!(image_everywhere("web:4"));
    let rb = c
        .rollback_release(pb::RollbackReleaseRequest {
            release: "web.fleet".into(),
            to_revision: 1,
            reason: "fleet test".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let op = wait_op(&mut c, &rb.operation_id).await;
    assert_eq!(op.phase, pb::OperationPhase::Succeeded as i32, "{}", op.message);
    assert!(image_everywhere("web:1"));

    stop.cancel();
    running.stop().await.unwrap();
}

//! A large fleet on the simulated backend: the real coordinator (in process, real gRPC
//! on loopback) and 150 agents, each with its own connection and simulated cluster.
//! A release reaches every context in waves; a build that crash-loops in one context
//! rolls all of them back; a manual rollback returns the fleet to revision 1.
//! A second, small fleet shows `DiffRelease`: what a submit would change per context,
//! with a secret masked, an offline agent and a slow one reported, nothing recorded.

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
    wait_op_of(c, "web.fleet", op).await
}

async fn wait_op_of(
    c: &mut pb::release_service_client::ReleaseServiceClient<tonic::transport::Channel>,
    release: &str,
    op: &str,
) -> pb::Operation {
    let mut s = c
        .watch_release(pb::WatchReleaseRequest {
            release: release.into(),
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

/// Whether every Deployment of web.fleet in `b`'s cluster runs `image`.
fn runs_image(b: &SimBackend, image: &str) -> bool {
    b.objects_of("web.fleet")
        .iter()
        .filter(|o| o.kind == "Deployment")
        .all(|o| {
            b.object(o)
                .is_some_and(|v| v["spec"]["template"]["spec"]["containers"][0]["image"] == image)
        })
}

/// The coordinator in process with `contexts` (name, region, apply latency in ms) in
/// its registry, and a simulated agent for each of the first `agents` of them; returns
/// once those agents are connected.
async fn start_fleet(
    dir: &std::path::Path,
    extra_config: &str,
    contexts: &[(String, String, u64)],
    agents: usize,
) -> (
    convoy_daemon::server::Running,
    CancellationToken,
    Vec<Arc<SimBackend>>,
) {
    let mut cfg = format!(
        "listen: 127.0.0.1:0\nstore: {{backend: embedded, path: {}}}\nauth: {{allow_anonymous: true}}\nheartbeat_seconds: 5\n{extra_config}contexts:\n",
        dir.join("state.redb").display()
    );
    for (name, region, _) in contexts {
        // The environment follows the name: `prod-*`, `stage-*`, else dev.
        let env = match name.split('-').next() {
            Some("prod") => "prod",
            Some("stage") => "staging",
            _ => "dev",
        };
        cfg.push_str(&format!(
            "  - {{name: {name}, region: {region}, env: {env}, cloud: sim, clusterName: {name}-cluster}}\n"
        ));
    }
    let path = dir.join("convoyd.yaml");
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
    for (name, _, latency) in &contexts[..agents] {
        let backend = Arc::new(SimBackend::new(SimConfig {
            history_limit: 10,
            apply_latency: Duration::from_millis(*latency),
            ..SimConfig::default()
        }));
        backends.push(backend.clone());
        let mut rc = RuntimeConfig::new(server.clone(), name.clone());
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
        < agents
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "agents did not all connect"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (running, stop, backends)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_150_context_fleet_rolls_out_and_back() {
    let dir = tempfile::tempdir().unwrap();
    let contexts: Vec<(String, String, u64)> = (0..N).map(|i| (ctx(i), format!("r{}", i % 5), 0)).collect();
    let (running, stop, backends) = start_fleet(dir.path(), "", &contexts, N).await;
    let server = format!("http://{}", running.addr);

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
    let image_everywhere = |want: &str| backends.iter().all(|b| runs_image(b, want));

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

    // On-call rolls back two contexts only; the rest of the fleet stays on 4.
    let only = vec![ctx(3), ctx(140)];
    let err = c
        .rollback_release(pb::RollbackReleaseRequest {
            release: "web.fleet".into(),
            to_revision: 1,
            reason: "fleet test".into(),
            contexts: vec![ctx(3), "sim-nowhere".into()],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("\"sim-nowhere\""), "{}", err.message());
    let part = c
        .rollback_release(pb::RollbackReleaseRequest {
            release: "web.fleet".into(),
            to_revision: 1,
            reason: "fleet test: two regions".into(),
            contexts: only.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let op = wait_op(&mut c, &part.operation_id).await;
    assert_eq!(op.phase, pb::OperationPhase::Succeeded as i32, "{}", op.message);
    assert_eq!(op.message, "2 of 2 contexts rolled back");
    let images: Vec<(String, bool)> = (0..N)
        .map(|i| (ctx(i), runs_image(&backends[i], "web:1")))
        .collect();
    for (name, on_one) in &images {
        assert_eq!(*on_one, only.contains(name), "{name} on revision 1: {on_one}");
    }
    let rel = c
        .get_release(pb::GetReleaseRequest {
            release: "web.fleet".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        rel.deployed_revision, 0,
        "a mixed fleet has no single deployed revision"
    );

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

/// A chart whose ConfigMap carries a secret inside a URL, and an optional extra object.
fn diff_chart(dir: &std::path::Path) -> Vec<u8> {
    let chart = dir.join("shop");
    std::fs::create_dir_all(chart.join("templates")).unwrap();
    std::fs::write(
        chart.join("Chart.yaml"),
        "apiVersion: v2\nname: shop\nversion: 1.0.0\n",
    )
    .unwrap();
    std::fs::write(
        chart.join("templates/all.yaml"),
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: shop}
spec:
  replicas: {{ .Values.replicas }}
  selector: {matchLabels: {app: shop}}
  template:
    metadata:
      labels: {app: shop}
      annotations: {sim.convoy.dev/behavior: "healthy,after=50ms"}
    spec:
      containers: [{name: shop, image: {{ .Values.image | quote }}}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: shop-config}
data:
  url: "postgres://{{ .Values.user }}:{{ .Values.secrets.db }}@db:5432/shop"
  motd: {{ .Values.motd | quote }}
{{- if .Values.extra }}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: shop-extra}
data: {a: b}
{{- end }}
"#,
    )
    .unwrap();
    convoy_chart::package_dir(&chart).unwrap()
}

fn diff_release(contexts: &str, image: &str, user: &str, motd: &str, extra: bool) -> String {
    format!(
        "apiVersion: convoy.dev/v1\nkind: Release\nmetadata: {{name: shop.diff, namespace: diff}}\nspec:\n  chart: {{path: ./shop}}\n  values: {{image: \"{image}\", replicas: 2, user: {user}, motd: {motd:?}, extra: {extra}}}\n  contexts: [{contexts}]\n  secrets:\n    - secret_id: db\n      contexts:\n        - {{name: default, vaultPath: /kv/shop/db, vaultKey: password}}\n  strategy: {{maxFailures: 0, onFailure: rollback}}\n  health: {{progressDeadline: 1m, minReadyWindow: 0s}}\n"
    )
}

const DIFF_CANARY: &str = "diff-canary-4e1b77";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diff_reports_each_context_without_secrets_or_side_effects() {
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("dev-secrets.yaml");
    std::fs::write(&secrets, format!("\"/kv/shop/db#password\": {DIFF_CANARY}\n")).unwrap();
    // `slow` answers after 3s: longer than the diff's timeout, shorter than a rollout's;
    // `gone` never gets an agent.
    let contexts: Vec<(String, String, u64)> = [
        ("a", "r1", 0),
        ("b", "r2", 0),
        ("slow", "r3", 3000),
        ("gone", "r4", 0),
    ]
    .into_iter()
    .map(|(c, r, l)| (c.to_string(), r.to_string(), l))
    .collect();
    let extra = format!("dev_secrets_file: {}\n", secrets.display());
    let (running, stop, _backends) = start_fleet(dir.path(), &extra, &contexts, 3).await;
    let server = format!("http://{}", running.addr);
    let chart = diff_chart(dir.path());
    let submit = |yaml: String| pb::SubmitReleaseRequest {
        release_yaml: yaml,
        source_name: "shop.yaml".into(),
        chart_archive: chart.clone(),
        reason: "diff test".into(),
        ..Default::default()
    };
    let mut c = pb::release_service_client::ReleaseServiceClient::connect(server.clone())
        .await
        .unwrap();
    let r1 = c
        .submit_release(submit(diff_release(
            "a, b, slow",
            "shop:1",
            "app",
            "hello\nworld",
            true,
        )))
        .await
        .unwrap()
        .into_inner();
    let op = wait_op_of(&mut c, "shop.diff", &r1.operation_id).await;
    assert_eq!(op.phase, pb::OperationPhase::Succeeded as i32, "{}", op.message);

    let started = std::time::Instant::now();
    let diff = c
        .diff_release(pb::DiffReleaseRequest {
            submit: Some(submit(diff_release(
                "a, b, slow, gone",
                "shop:2",
                "admin",
                "hello\nthere",
                false,
            ))),
            timeout_seconds: 1,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the diff waited past its timeout"
    );
    let shown = format!("{diff:?}");
    assert!(!shown.contains(DIFF_CANARY), "the secret is in the diff: {shown}");
    let by = |name: &str| diff.contexts.iter().find(|c| c.context == name).unwrap();
    assert_eq!(by("gone").status, pb::DiffStatus::AgentOffline as i32);
    assert!(
        by("gone").message.contains("no agent has connected"),
        "{}",
        by("gone").message
    );
    assert_eq!(
        by("slow").status,
        pb::DiffStatus::TimedOut as i32,
        "{:?}",
        by("slow")
    );
    assert!(by("slow").message.contains("within 1s"), "{}", by("slow").message);
    for ctx in ["a", "b"] {
        let d = by(ctx);
        assert_eq!(d.status, pb::DiffStatus::Done as i32, "{ctx}: {}", d.message);
        let summary: Vec<(String, i32)> = d
            .objects
            .iter()
            .map(|o| (format!("{}/{}", o.kind, o.name), o.action))
            .collect();
        assert!(
            summary.contains(&("ConfigMap/shop-extra".into(), pb::DiffAction::Delete as i32)),
            "{summary:?}"
        );
        let deploy = d.objects.iter().find(|o| o.kind == "Deployment").unwrap();
        assert_eq!(deploy.action, pb::DiffAction::Update as i32);
        let fields: Vec<(&str, &str, &str, bool)> = deploy
            .changes
            .iter()
            .map(|c| (c.path.as_str(), c.before.as_str(), c.after.as_str(), c.masked))
            .collect();
        assert_eq!(
            fields,
            [(
                "spec.template.spec.containers[0].image",
                "\"shop:1\"",
                "\"shop:2\"",
                false
            )]
        );
        let config = d.objects.iter().find(|o| o.name == "shop-config").unwrap();
        let url = config
            .changes
            .iter()
            .find(|c| c.path == "data.url")
            .expect("url changed");
        assert!(
            url.masked && url.before.is_empty() && url.after.is_empty(),
            "{url:?}"
        );
        let motd = config
            .changes
            .iter()
            .find(|c| c.path == "data.motd")
            .expect("motd changed");
        assert_eq!(
            (motd.before.as_str(), motd.after.as_str()),
            ("\"hello\\nworld\"", "\"hello\\nthere\"")
        );
    }
    // Nothing was recorded and nothing changed.
    let rel = c
        .get_release(pb::GetReleaseRequest {
            release: "shop.diff".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rel.latest_revision, 1);
    assert!(rel.current_operation.is_none_or(|o| o.id == r1.operation_id));
    // A diff of what runs is empty.
    let same = c
        .diff_release(pb::DiffReleaseRequest {
            submit: Some(submit(diff_release(
                "a, b",
                "shop:1",
                "app",
                "hello\nworld",
                true,
            ))),
            timeout_seconds: 10,
        })
        .await
        .unwrap()
        .into_inner();
    for d in &same.contexts {
        assert_eq!(d.status, pb::DiffStatus::Done as i32, "{}", d.message);
        let changed: Vec<&pb::ObjectDiff> = d
            .objects
            .iter()
            .filter(|o| o.action != pb::DiffAction::Unchanged as i32)
            .collect();
        assert!(changed.is_empty(), "{}: {changed:?}", d.context);
        assert_eq!(d.objects.len(), 3);
    }
    // An invalid file is refused as a submit would be.
    let err = c
        .diff_release(pb::DiffReleaseRequest {
            submit: Some(submit(diff_release("a, nowhere", "shop:1", "app", "x", true))),
            timeout_seconds: 10,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err}");
    assert!(err.message().contains("nowhere"), "{}", err.message());

    stop.cancel();
    running.stop().await.unwrap();
}

/// A release of the web chart named `name` to `context`, with `image`.
fn promoted_release(name: &str, context: &str, image: &str) -> String {
    format!(
        "apiVersion: convoy.dev/v1\nkind: Release\nmetadata: {{name: {name}}}\nspec:\n  chart: {{path: ./web}}\n  values: {{image: \"{image}\", behavior: \"healthy,after=100ms\"}}\n  contexts: [{context}]\n  health: {{progressDeadline: 1m, minReadyWindow: 0s}}\n"
    )
}

/// Promotion between environments (`promotion: {prod: {after: staging}}`): a chart
/// archive reaches prod only once the same archive (by digest) ran healthy in staging.
/// A dry run says so too; a changed chart is a new digest and must go through staging
/// again; the refusal names the rule and the digest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prod_takes_only_charts_that_ran_healthy_in_staging() {
    let dir = tempfile::tempdir().unwrap();
    let contexts = vec![
        ("stage-1".to_string(), "r1".to_string(), 0),
        ("prod-1".to_string(), "r1".to_string(), 0),
    ];
    let (running, stop, _backends) =
        start_fleet(dir.path(), "promotion: {prod: {after: staging}}\n", &contexts, 2).await;
    let mut c = pb::release_service_client::ReleaseServiceClient::connect(format!("http://{}", running.addr))
        .await
        .unwrap();
    let chart_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/charts/web");
    let archive = convoy_chart::package_dir(&chart_dir).unwrap();
    let request = |name: &str, context: &str, archive: &[u8], dry_run: bool| pb::SubmitReleaseRequest {
        release_yaml: promoted_release(name, context, "registry.example/web:1.0"),
        source_name: format!("{name}.yaml"),
        chart_archive: archive.to_vec(),
        reason: "promotion test".into(),
        dry_run,
        ..Default::default()
    };
    // Not yet run in staging: refused for prod, dry run included.
    for dry_run in [true, false] {
        let refused = c
            .submit_release(request("web.prod", "prod-1", &archive, dry_run))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::FailedPrecondition, "{refused:?}");
        assert!(
            refused
                .message()
                .contains("environment prod takes only charts that already ran healthy in staging")
                && refused.message().contains("sha256:"),
            "{}",
            refused.message()
        );
    }
    // It runs healthy in staging...
    let staged = c
        .submit_release(request("web.stage", "stage-1", &archive, false))
        .await
        .unwrap()
        .into_inner();
    let op = wait_op_of(&mut c, "web.stage", &staged.operation_id).await;
    assert_eq!(op.phase, pb::OperationPhase::Succeeded as i32, "{}", op.message);
    // ... so the same archive may go to prod.
    let prod = c
        .submit_release(request("web.prod", "prod-1", &archive, false))
        .await
        .expect("the staged chart is promoted")
        .into_inner();
    let op = wait_op_of(&mut c, "web.prod", &prod.operation_id).await;
    assert_eq!(op.phase, pb::OperationPhase::Succeeded as i32, "{}", op.message);
    // A changed chart is another digest: back through staging first.
    let mut files = convoy_chart::unpack_archive(&archive).unwrap();
    for f in &mut files {
        if f.name == "values.yaml" {
            f.data.extend_from_slice(b"# changed\n");
        }
    }
    let changed = convoy_chart::package_files(&files, "web").unwrap();
    let refused = c
        .submit_release(request("web.prod", "prod-1", &changed, false))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition, "{refused:?}");
    let history = c
        .get_history(pb::GetHistoryRequest {
            release: "web.prod".into(),
            limit: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(history.revisions.len(), 1, "refusals record nothing: {history:?}");
    // History says where the archive ran healthy: staging first, then prod.
    let ran: Vec<(String, String, u64)> = history.revisions[0]
        .chart_ran_healthy
        .iter()
        .map(|d| (d.environment.clone(), d.release.clone(), d.revision))
        .collect();
    let mut expected = vec![
        ("prod".to_string(), "web.prod".to_string(), 1),
        ("staging".to_string(), "web.stage".to_string(), 1),
    ];
    expected.sort();
    let mut sorted = ran.clone();
    sorted.sort();
    assert_eq!(sorted, expected, "{ran:?}");
    stop.cancel();
}

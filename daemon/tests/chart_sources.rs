//! Charts the coordinator fetches itself, from real sources on loopback: an HTTP chart
//! repository (index.yaml + .tgz, basic authentication or none) and a real OCI registry
//! (Debian's `docker-registry`, htpasswd authentication or none). The coordinator runs
//! in process with simulated agents, over real gRPC.
//!
//! What a user notices: a release names a chart by repository and version range or by
//! registry and tag/digest and deploys without the submitter having any access; the
//! revision records the archive's digest and source; a moved tag or a dead source does
//! not change what a rollback or a restarted coordinator ships; a wrong credential or a
//! dead source fails the submit with the source named, nothing recorded, no secret shown.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use convoy_agent::runtime::{AgentRuntime, Credentials, RuntimeConfig, Token};
use convoy_agent::sim::backend::{SimBackend, SimConfig};
use convoy_daemon::config::DaemonConfig;
use convoy_proto::v1 as pb;
use convoy_tests::certs::TestCa;
use convoy_tests::charts::{
    ChartServer, GitServer, Registry, RegistryOptions, RegistryTls, ServerTls, git, index_yaml,
};
use convoy_tests::openbao::OpenBao;
use tokio_util::sync::CancellationToken;

type Client = pb::release_service_client::ReleaseServiceClient<tonic::transport::Channel>;

/// A chart `app` at `version` whose ConfigMap carries `marker` (to tell two archives of
/// one version apart).
fn chart(dir: &Path, version: &str, marker: &str) -> Vec<u8> {
    let c = dir.join(format!("app-{version}-{marker}"));
    std::fs::create_dir_all(c.join("templates")).unwrap();
    std::fs::write(
        c.join("Chart.yaml"),
        format!("apiVersion: v2\nname: app\nversion: {version}\n"),
    )
    .unwrap();
    std::fs::write(
        c.join("templates/cm.yaml"),
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {{{{ .Release.Name }}}}-cm}}\ndata:\n  chart: {{{{ .Chart.Version | quote }}}}\n  marker: {marker:?}\n  flavor: {{{{ .Values.flavor | default \"plain\" | quote }}}}\n"
        ),
    )
    .unwrap();
    convoy_chart::package_dir(&c).unwrap()
}

/// A chart `stack` 1.0.0 with no templates of its own and a dependency on `app` `~1.0`
/// from repository `repo`, not vendored; `lock`: the version its Chart.lock pins.
fn parent_chart(dir: &Path, repo: &str, lock: Option<&str>) -> Vec<u8> {
    let c = dir.join(format!("stack-{}", lock.unwrap_or("unlocked")));
    std::fs::create_dir_all(&c).unwrap();
    std::fs::write(
        c.join("Chart.yaml"),
        format!("apiVersion: v2\nname: stack\nversion: 1.0.0\ndependencies:\n  - {{name: app, version: \"~1.0\", repository: \"{repo}\"}}\n"),
    )
    .unwrap();
    if let Some(v) = lock {
        std::fs::write(
            c.join("Chart.lock"),
            format!("dependencies:\n- name: app\n  repository: {repo}\n  version: {v}\ndigest: sha256:0\ngenerated: \"2026-01-01T00:00:00Z\"\n"),
        )
        .unwrap();
    }
    convoy_chart::package_dir(&c).unwrap()
}

/// A release of `name` in context `ctx` with `chart` as the `spec.chart` flow mapping.
fn release(name: &str, ctx: &str, chart: &str, flavor: &str) -> pb::SubmitReleaseRequest {
    let ns = name.split('.').nth(1).unwrap();
    pb::SubmitReleaseRequest {
        release_yaml: format!(
            "apiVersion: convoy.dev/v1\nkind: Release\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  chart: {chart}\n  values: {{flavor: {flavor}}}\n  contexts: [{ctx}]\n  strategy: {{maxFailures: 0, onFailure: pause}}\n  health: {{progressDeadline: 1m, minReadyWindow: 0s}}\n"
        ),
        source_name: format!("{name}.yaml"),
        reason: "chart sources test".into(),
        ..Default::default()
    }
}

/// The ConfigMap `app` of `release` in `b`'s cluster: (chart, marker, flavor).
fn config_map(b: &SimBackend, release: &str) -> Option<(String, String, String)> {
    let o = b
        .objects_of(release)
        .into_iter()
        .find(|o| o.kind == "ConfigMap")?;
    let v = b.object(&o)?;
    let s = |k: &str| v["data"][k].as_str().unwrap_or_default().to_string();
    Some((s("chart"), s("marker"), s("flavor")))
}

/// Rolls `release` back to revision 1 and waits for the rollback to end.
async fn roll_back_to_first(c: &mut Client, release: &str) -> pb::Operation {
    let rb = c
        .rollback_release(pb::RollbackReleaseRequest {
            release: release.into(),
            to_revision: 1,
            reason: "back".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    wait_op(c, release, &rb.operation_id).await
}

async fn wait_op(c: &mut Client, release: &str, op: &str) -> pb::Operation {
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
    while let Some(e) = tokio::time::timeout(Duration::from_secs(60), s.message())
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

async fn history(c: &mut Client, release: &str) -> Vec<pb::Revision> {
    let mut h = c
        .get_history(pb::GetHistoryRequest {
            release: release.into(),
            limit: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .revisions;
    h.sort_by_key(|r| r.number);
    h
}

/// A coordinator in process: `sources` is the `chart_sources` YAML list (indented
/// flow entries), contexts `sim-a` and `sim-b`, state in `dir`; on `addr` when given
/// (a restart keeps its address for the agents).
async fn coordinator(dir: &Path, sources: &str, addr: Option<SocketAddr>) -> convoy_daemon::server::Running {
    coordinator_with(dir, sources, "", addr).await
}

/// The coordinator's config: as [`coordinator`]'s, plus the top-level YAML `extra`.
fn config(dir: &Path, sources: &str, extra: &str) -> DaemonConfig {
    let cfg = format!(
        "listen: 127.0.0.1:0\nstore: {{backend: embedded, path: {}}}\nauth: {{allow_anonymous: true}}\nheartbeat_seconds: 5\nchart_sources:\n{sources}contexts:\n  - {{name: sim-a, region: r1, env: dev, cloud: sim, clusterName: a}}\n  - {{name: sim-b, region: r1, env: dev, cloud: sim, clusterName: b}}\n{extra}",
        dir.join("state.redb").display()
    );
    let path = dir.join("convoyd.yaml");
    std::fs::write(&path, cfg).unwrap();
    DaemonConfig::load_with_env(Some(&path), Vec::new()).unwrap()
}

/// [`coordinator`] with the top-level YAML `extra` in its config (a `vault:` section).
async fn coordinator_with(
    dir: &Path,
    sources: &str,
    extra: &str,
    addr: Option<SocketAddr>,
) -> convoy_daemon::server::Running {
    let cfg = config(dir, sources, extra);
    // A coordinator just stopped may hold its store file for a moment.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let listener = tokio::net::TcpListener::bind(addr.unwrap_or_else(|| "127.0.0.1:0".parse().unwrap()))
            .await
            .unwrap();
        let pipeline = convoy_daemon::server::pipeline(&cfg).unwrap();
        match convoy_daemon::server::start(&cfg, listener, Arc::new(pipeline)).await {
            Ok(r) => return r,
            Err(e) if e.to_string().contains("already open") && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("starting the coordinator: {e}"),
        }
    }
}

/// A simulated agent for `context`, connected to `running` when this returns.
async fn agent(
    running: &convoy_daemon::server::Running,
    context: &str,
    stop: &CancellationToken,
) -> Arc<SimBackend> {
    let backend = Arc::new(SimBackend::new(SimConfig {
        history_limit: 10,
        apply_latency: Duration::from_millis(0),
        ..SimConfig::default()
    }));
    let mut rc = RuntimeConfig::new(format!("http://{}", running.addr), context.to_string());
    rc.credentials = Credentials::Token(Token::new("unused"));
    tokio::spawn(AgentRuntime::new(rc, backend.clone()).run(stop.clone()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !running
        .core
        .clusters()
        .await
        .unwrap()
        .iter()
        .any(|c| c.info.name == context && c.connected)
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "agent {context} did not connect"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    backend
}

fn secret_file(dir: &Path, name: &str, content: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, format!("{content}\n")).unwrap();
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repository_charts_by_version_range_with_and_without_authentication() {
    let dir = tempfile::tempdir().unwrap();
    let (v100, v101, v110) = (
        chart(dir.path(), "1.0.0", "one"),
        chart(dir.path(), "1.0.1", "one-fix"),
        chart(dir.path(), "1.1.0", "eleven"),
    );
    let private = ChartServer::start(Some(("ci", "repo-pw-1"))).await.unwrap();
    private.put("/index.yaml", index_yaml(&[("app", "1.0.0", &v100)]).into_bytes());
    private.put("/app-1.0.0.tgz", v100.clone());
    let mut public = ChartServer::start(None).await.unwrap();
    public.put("/index.yaml", index_yaml(&[("app", "1.1.0", &v110)]).into_bytes());
    public.put("/app-1.1.0.tgz", v110.clone());
    let pw = secret_file(dir.path(), "repo-password", "repo-pw-1");
    let sources = format!(
        "  - {{url: \"{}\", username: ci, password_file: {}}}\n  - {{url: \"{}\"}}\n  - {{url: \"http://127.0.0.1:9/prod\", environments: [prod]}}\n",
        private.url(),
        pw.display(),
        public.url()
    );
    let running = coordinator(dir.path(), &sources, None).await;
    let stop = CancellationToken::new();
    let a = agent(&running, "sim-a", &stop).await;
    let mut c = Client::connect(format!("http://{}", running.addr)).await.unwrap();

    // Only sources the coordinator lists, open to the release's environment (dev).
    let unlisted = "{repo: \"http://127.0.0.1:9/elsewhere\", name: app, version: 1.0.0}";
    let e = c
        .submit_release(release("app.team", "sim-a", unlisted, "x"))
        .await
        .unwrap_err();
    assert!(
        e.message()
            .contains("http://127.0.0.1:9/elsewhere is not among the coordinator's chart_sources"),
        "{}",
        e.message()
    );
    let prod_only = "{repo: \"http://127.0.0.1:9/prod/charts\", name: app, version: 1.0.0}";
    let e = c
        .submit_release(release("app.team", "sim-a", prod_only, "x"))
        .await
        .unwrap_err();
    assert!(
        e.message()
            .contains("is not open to environment \"dev\" (only prod)"),
        "{}",
        e.message()
    );

    // Helm's `~1.0` (>=1.0.0 <1.1.0) from the private repository, with the coordinator's
    // credentials; the submit carries no archive.
    let spec = format!("{{repo: \"{}\", name: app, version: \"~1.0\"}}", private.url());
    let r1 = c
        .submit_release(release("app.team", "sim-a", &spec, "red"))
        .await
        .unwrap()
        .into_inner();
    let op = wait_op(&mut c, "app.team", &r1.operation_id).await;
    assert_eq!(op.phase, pb::OperationPhase::Succeeded as i32, "{}", op.message);
    assert_eq!(
        config_map(&a, "app.team"),
        Some(("1.0.0".into(), "one".into(), "red".into()))
    );
    let h = history(&mut c, "app.team").await;
    assert_eq!(h[0].chart_version, "1.0.0");
    assert_eq!(
        h[0].chart_digest,
        format!("sha256:{}", convoy_tests::charts::sha256_hex(&v100))
    );
    assert_eq!(h[0].chart_source, format!("{} app 1.0.0", private.url()));

    // A patch release appears: the same range now resolves to it.
    let stack = parent_chart(dir.path(), private.url(), Some("1.0.0"));
    private.put(
        "/index.yaml",
        index_yaml(&[
            ("app", "1.0.0", &v100),
            ("app", "1.0.1", &v101),
            ("app", "1.1.0", &v110),
            ("stack", "1.0.0", &stack),
        ])
        .into_bytes(),
    );
    private.put("/stack-1.0.0.tgz", stack.clone());
    private.put("/app-1.0.1.tgz", v101.clone());
    private.put("/app-1.1.0.tgz", v110.clone());
    let r2 = c
        .submit_release(release("app.team", "sim-a", &spec, "red"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        wait_op(&mut c, "app.team", &r2.operation_id).await.phase,
        pb::OperationPhase::Succeeded as i32
    );
    assert_eq!(config_map(&a, "app.team").unwrap().1, "one-fix");

    // A chart whose dependency is not vendored: fetched from its repository at the
    // version Chart.lock pins (1.0.0, though 1.0.1 matches `~1.0`)...
    let stack_spec = format!("{{repo: \"{}\", name: stack, version: 1.0.0}}", private.url());
    let r = c
        .submit_release(release("stack.team", "sim-a", &stack_spec, "layered"))
        .await
        .unwrap()
        .into_inner();
    let op = wait_op(&mut c, "stack.team", &r.operation_id).await;
    assert_eq!(op.phase, pb::OperationPhase::Succeeded as i32, "{}", op.message);
    assert_eq!(
        config_map(&a, "stack.team").unwrap(),
        ("1.0.0".into(), "one".into(), "plain".into())
    );
    let h = history(&mut c, "stack.team").await;
    assert!(
        h[0].chart_source.ends_with(&format!(
            "dependencies: app 1.0.0 from {} app 1.0.0",
            private.url()
        )),
        "{}",
        h[0].chart_source
    );
    // ...and for a chart sent with the submit without a lock, the highest match.
    let mut local = release("local.team", "sim-a", "{path: ./stack}", "x");
    local.chart_archive = parent_chart(dir.path(), private.url(), None);
    let r = c.submit_release(local).await.unwrap().into_inner();
    assert_eq!(
        wait_op(&mut c, "local.team", &r.operation_id).await.phase,
        pb::OperationPhase::Succeeded as i32
    );
    assert_eq!(config_map(&a, "local.team").unwrap().1, "one-fix");

    // The password file now holds a wrong password (read at each fetch): the submit
    // fails naming the repository, never showing the password; nothing is recorded.
    std::fs::write(&pw, "wrong-pw\n").unwrap();
    let e = c
        .submit_release(release("app.team", "sim-a", &spec, "blue"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{}", e.message());
    assert!(
        e.message()
            .contains(&format!("chart repository {}", private.url()))
            && e.message().contains("authentication failed"),
        "{}",
        e.message()
    );
    assert!(!e.message().contains("wrong-pw") && !e.message().contains("repo-pw-1"));
    assert_eq!(history(&mut c, "app.team").await.len(), 2);
    std::fs::write(&pw, "repo-pw-1\n").unwrap();

    // A range with `||` and AND against the public repository, no credentials.
    let public_spec = format!(
        "{{repo: \"{}\", name: app, version: \">=1.1 <2 || ^3\"}}",
        public.url()
    );
    let r = c
        .submit_release(release("pub.team", "sim-a", &public_spec, "green"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        wait_op(&mut c, "pub.team", &r.operation_id).await.phase,
        pb::OperationPhase::Succeeded as i32
    );
    assert_eq!(
        config_map(&a, "pub.team").unwrap(),
        ("1.1.0".into(), "eleven".into(), "green".into())
    );

    // An archive that is not what the index's digest says is refused.
    public.put("/app-1.1.0.tgz", v100.clone());
    let e = c
        .submit_release(release("pub.team", "sim-a", &public_spec, "tampered"))
        .await
        .unwrap_err();
    assert!(
        e.message().contains(public.url()) && e.message().contains("digest mismatch"),
        "{}",
        e.message()
    );
    public.put("/app-1.1.0.tgz", v110.clone());

    // No version matches: the error says so and names the repository.
    let none = format!("{{repo: \"{}\", name: app, version: \"~5\"}}", public.url());
    let e = c
        .submit_release(release("pub.team", "sim-a", &none, "x"))
        .await
        .unwrap_err();
    assert!(
        e.message().contains(public.url()) && e.message().contains("no version of chart \"app\" matches"),
        "{}",
        e.message()
    );

    // A submit that sends an archive for a repository chart is refused.
    let mut with_archive = release("pub.team", "sim-a", &public_spec, "x");
    with_archive.chart_archive = v110.clone();
    let e = c.submit_release(with_archive).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(
        e.message()
            .contains("fetches `repo`, `oci` and `git` charts itself"),
        "{}",
        e.message()
    );

    // The public repository goes down: a rollback needs nothing from it.
    public.stop();
    let e = c
        .submit_release(release("pub.team", "sim-a", &public_spec, "x"))
        .await
        .unwrap_err();
    assert!(
        e.message()
            .contains(&format!("chart repository {}", public.url())),
        "{}",
        e.message()
    );
    let op = roll_back_to_first(&mut c, "app.team").await;
    assert_eq!(op.phase, pb::OperationPhase::Succeeded as i32, "{}", op.message);
    assert_eq!(config_map(&a, "app.team").unwrap().1, "one");
    let h = history(&mut c, "app.team").await;
    assert_eq!(h.last().unwrap().chart_digest, h[0].chart_digest);
    stop.cancel();
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oci_charts_keep_their_digest_through_a_moved_tag_a_dead_registry_and_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut registry = Registry::start(Some(("pusher", "reg-pw-1"))).await.unwrap();
    let anon = Registry::start(None).await.unwrap();
    let repo = format!("oci://{}/charts", registry.host());
    let pushing = convoy_daemon::sources::ChartSources::direct(
        convoy_daemon::sources::Credentials::Basic("pusher".into(), "reg-pw-1".into()),
        true,
    );
    let first = chart(dir.path(), "1.0.0", "first");
    let pushed = convoy_daemon::sources::push_chart(&first, &repo, &pushing)
        .await
        .unwrap();
    assert_eq!(pushed.reference, format!("{repo}/app:1.0.0"));

    // Pushing without credentials is refused by the registry, clearly.
    let anonymous =
        convoy_daemon::sources::ChartSources::direct(convoy_daemon::sources::Credentials::Anonymous, true);
    let e = convoy_daemon::sources::push_chart(&first, &repo, &anonymous)
        .await
        .unwrap_err();
    assert!(e.contains("authentication failed"), "{e}");

    // The anonymous registry holds another chart, named by digest in its release.
    let other = chart(dir.path(), "2.0.0", "anon");
    let anon_pushed =
        convoy_daemon::sources::push_chart(&other, &format!("oci://{}/pub", anon.host()), &anonymous)
            .await
            .unwrap();

    let pw = secret_file(dir.path(), "registry-password", "reg-pw-1");
    let sources = format!(
        "  - {{url: \"{repo}\", username: pusher, password_file: {}, plain_http: true}}\n  - {{url: \"oci://{}\", plain_http: true}}\n",
        pw.display(),
        anon.host()
    );
    let running = coordinator(dir.path(), &sources, None).await;
    let addr = running.addr;
    let stop = CancellationToken::new();
    let a = agent(&running, "sim-a", &stop).await;
    let mut c = Client::connect(format!("http://{addr}")).await.unwrap();

    let spec = format!("{{oci: \"{repo}/app\", version: 1.0.0}}");
    let r1 = c
        .submit_release(release("web.team", "sim-a", &spec, "red"))
        .await
        .unwrap()
        .into_inner();
    let op = wait_op(&mut c, "web.team", &r1.operation_id).await;
    assert_eq!(op.phase, pb::OperationPhase::Succeeded as i32, "{}", op.message);
    assert_eq!(config_map(&a, "web.team").unwrap().1, "first");
    let h = history(&mut c, "web.team").await;
    assert_eq!(
        h[0].chart_digest,
        format!("sha256:{}", convoy_tests::charts::sha256_hex(&first))
    );
    assert_eq!(h[0].chart_source, format!("{repo}/app:1.0.0@{}", pushed.digest));

    // By digest, from the registry without authentication.
    let by_digest = format!(
        "{{oci: \"oci://{}/pub/app\", digest: \"{}\"}}",
        anon.host(),
        anon_pushed.digest
    );
    let r = c
        .submit_release(release("pub.team", "sim-a", &by_digest, "blue"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        wait_op(&mut c, "pub.team", &r.operation_id).await.phase,
        pb::OperationPhase::Succeeded as i32
    );
    assert_eq!(
        config_map(&a, "pub.team").unwrap(),
        ("2.0.0".into(), "anon".into(), "blue".into())
    );

    // The tag moves: 1.0.0 is pushed again with other content. A new submit gets it...
    let second = chart(dir.path(), "1.0.0", "second");
    convoy_daemon::sources::push_chart(&second, &repo, &pushing)
        .await
        .unwrap();
    let r2 = c
        .submit_release(release("web.team", "sim-a", &spec, "red"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        wait_op(&mut c, "web.team", &r2.operation_id).await.phase,
        pb::OperationPhase::Succeeded as i32
    );
    assert_eq!(config_map(&a, "web.team").unwrap().1, "second");
    let h = history(&mut c, "web.team").await;
    assert_ne!(h[1].chart_digest, h[0].chart_digest);

    // ...a wrong password fails clearly, recording nothing...
    std::fs::write(&pw, "nope\n").unwrap();
    let e = c
        .submit_release(release("web.team", "sim-a", &spec, "x"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition);
    assert!(
        e.message().contains(&format!("OCI registry {repo}/app"))
            && e.message().contains("authentication failed"),
        "{}",
        e.message()
    );
    assert!(!e.message().contains("nope") && !e.message().contains("reg-pw-1"));
    std::fs::write(&pw, "reg-pw-1\n").unwrap();

    // ...and with the registry down, rolling back to revision 1 ships revision 1's
    // archive, not what the tag names now.
    registry.kill();
    assert_eq!(
        roll_back_to_first(&mut c, "web.team").await.phase,
        pb::OperationPhase::Succeeded as i32
    );
    assert_eq!(config_map(&a, "web.team").unwrap().1, "first");
    let e = c
        .submit_release(release("web.team", "sim-a", &spec, "x"))
        .await
        .unwrap_err();
    assert!(
        e.message().contains(&format!("OCI registry {repo}/app")),
        "{}",
        e.message()
    );
    assert_eq!(
        history(&mut c, "web.team").await.len(),
        3,
        "a failed fetch records nothing"
    );

    // A submit to sim-b (no agent yet) is recorded and queued; the coordinator restarts
    // with the anonymous registry gone too, re-renders the queued revision from the
    // archive it kept, and sim-b's agent gets it.
    let queued = c
        .submit_release(release("pub.other", "sim-b", &by_digest, "late"))
        .await
        .unwrap()
        .into_inner();
    drop(anon);
    stop.cancel();
    running.stop().await.unwrap();
    let running = coordinator(dir.path(), &sources, Some(addr)).await;
    let stop = CancellationToken::new();
    let b = agent(&running, "sim-b", &stop).await;
    let mut c = Client::connect(format!("http://{addr}")).await.unwrap();
    let op = wait_op(&mut c, "pub.other", &queued.operation_id).await;
    assert_eq!(op.phase, pb::OperationPhase::Succeeded as i32, "{}", op.message);
    assert_eq!(
        config_map(&b, "pub.other").unwrap(),
        ("2.0.0".into(), "anon".into(), "late".into())
    );
    stop.cancel();
    running.stop().await.unwrap();
}

/// A bare repository `NAME.git` under `server`'s root, from a work tree at `work` holding
/// `charts/app` (chart `app` at 1.0.0 with `marker`), committed on `main` and tagged
/// `v1`; returns the commit id.
fn git_repo(server: &GitServer, work: &Path, name: &str, marker: &str) -> String {
    let chart = work.join("charts/app");
    std::fs::create_dir_all(chart.join("templates")).unwrap();
    let archive_dir = work.join("..").join(format!("{name}-src-{marker}"));
    let packaged = chart_files(&archive_dir, marker);
    for (rel, content) in packaged {
        let p = chart.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }
    std::fs::create_dir_all(work.join("values")).unwrap();
    std::fs::write(
        work.join("values/dev.yaml"),
        format!("flavor: from-git-{marker}\n"),
    )
    .unwrap();
    if !work.join(".git").exists() {
        git(work, &["init", "-q", "-b", "main"]);
    }
    git(work, &["add", "-A"]);
    git(work, &["commit", "-q", "-m", marker]);
    git(work, &["tag", "-f", "v1"]);
    let bare = server.root().join(format!("{name}.git"));
    if !bare.exists() {
        git(server.root(), &["init", "-q", "--bare", &format!("{name}.git")]);
    }
    git(
        work,
        &[
            "push",
            "-q",
            "--force",
            bare.to_str().unwrap(),
            "main",
            "refs/tags/v1",
        ],
    );
    git(work, &["rev-parse", "HEAD"])
}

/// The files of chart `app` 1.0.0 carrying `marker` (as [`chart`] writes them).
fn chart_files(dir: &Path, marker: &str) -> Vec<(String, Vec<u8>)> {
    let archive = chart(dir, "1.0.0", marker);
    let c = dir.join(format!("app-1.0.0-{marker}"));
    assert!(!archive.is_empty());
    ["Chart.yaml", "templates/cm.yaml"]
        .iter()
        .map(|f| (f.to_string(), std::fs::read(c.join(f)).unwrap()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_charts_by_tag_branch_and_commit_with_and_without_authentication() {
    let dir = tempfile::tempdir().unwrap();
    let mut private = GitServer::start(Some(("ci", "git-pw-1"))).await.unwrap();
    let public = GitServer::start(None).await.unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let first = git_repo(&private, &work, "charts", "v1");
    let pw = secret_file(dir.path(), "git-password", "git-pw-1");
    let sources = format!(
        "  - {{url: \"{}\", username: ci, password_file: {}}}\n  - {{url: \"{}\", environments: [dev]}}\n",
        private.url(),
        pw.display(),
        public.url()
    );
    let running = coordinator(dir.path(), &sources, None).await;
    let stop = CancellationToken::new();
    let a = agent(&running, "sim-a", &stop).await;
    let mut c = Client::connect(format!("http://{}", running.addr)).await.unwrap();
    let repo = format!("{}/charts.git", private.url());

    // By tag, with the coordinator's credentials: the revision names the commit.
    let by_tag = format!("{{git: \"{repo}\", ref: v1, path: charts/app}}");
    let r1 = c
        .submit_release(release("app.team", "sim-a", &by_tag, "red"))
        .await
        .unwrap()
        .into_inner();
    let op = wait_op(&mut c, "app.team", &r1.operation_id).await;
    assert_eq!(op.phase, pb::OperationPhase::Succeeded as i32, "{}", op.message);
    assert_eq!(config_map(&a, "app.team").unwrap().1, "v1");
    let h = history(&mut c, "app.team").await;
    assert_eq!(h[0].chart_source, format!("{repo} v1@{first} charts/app"));
    assert!(h[0].chart_digest.starts_with("sha256:"));

    // The tag moves to a new commit: the next submit gets it and names the new commit.
    let moved = git_repo(&private, &work, "charts", "v1-moved");
    assert_ne!(moved, first);
    let r2 = c
        .submit_release(release("app.team", "sim-a", &by_tag, "red"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        wait_op(&mut c, "app.team", &r2.operation_id).await.phase,
        pb::OperationPhase::Succeeded as i32
    );
    assert_eq!(config_map(&a, "app.team").unwrap().1, "v1-moved");
    let h = history(&mut c, "app.team").await;
    assert_eq!(h[1].chart_source, format!("{repo} v1@{moved} charts/app"));
    assert_ne!(h[1].chart_digest, h[0].chart_digest);

    // By the first commit's id, and by branch.
    let by_commit = format!("{{git: \"{repo}\", ref: \"{first}\", path: charts/app}}");
    let r = c
        .submit_release(release("app.team", "sim-a", &by_commit, "red"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        wait_op(&mut c, "app.team", &r.operation_id).await.phase,
        pb::OperationPhase::Succeeded as i32
    );
    assert_eq!(config_map(&a, "app.team").unwrap().1, "v1");
    let by_branch = format!("{{git: \"{repo}\", ref: main, path: charts/app}}");
    let r = c
        .submit_release(release("app.team", "sim-a", &by_branch, "blue"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        wait_op(&mut c, "app.team", &r.operation_id).await.phase,
        pb::OperationPhase::Succeeded as i32
    );
    assert_eq!(
        config_map(&a, "app.team").unwrap(),
        ("1.0.0".into(), "v1-moved".into(), "blue".into())
    );

    // Values from a file in the repository, merged over `spec.values`.
    let with_values = {
        let mut r = release("app.team", "sim-a", &by_tag, "red");
        r.release_yaml = r.release_yaml.replace(
            "  contexts:",
            &format!(
                "  valuesFrom: [{{git: \"{repo}\", ref: \"{first}\", path: values/dev.yaml}}]\n  contexts:"
            ),
        );
        r
    };
    let r = c.submit_release(with_values.clone()).await.unwrap().into_inner();
    assert_eq!(
        wait_op(&mut c, "app.team", &r.operation_id).await.phase,
        pb::OperationPhase::Succeeded as i32
    );
    assert_eq!(
        config_map(&a, "app.team").unwrap(),
        ("1.0.0".into(), "v1-moved".into(), "from-git-v1".into())
    );
    let mut missing = with_values.clone();
    missing.release_yaml = missing
        .release_yaml
        .replace("values/dev.yaml", "values/prod.yaml");
    let e = c.submit_release(missing).await.unwrap_err();
    assert!(
        e.message().contains("spec.valuesFrom[0]") && e.message().contains("no file \"values/prod.yaml\""),
        "{}",
        e.message()
    );

    // A wrong password, a missing ref and a missing directory: clear errors, nothing recorded.
    std::fs::write(&pw, "wrong\n").unwrap();
    let e = c
        .submit_release(release("app.team", "sim-a", &by_tag, "x"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition);
    assert!(
        e.message().contains(&format!("git repository {repo}"))
            && e.message().contains("authentication failed"),
        "{}",
        e.message()
    );
    assert!(
        !e.message().contains("wrong") && !e.message().contains("git-pw-1"),
        "{}",
        e.message()
    );
    std::fs::write(&pw, "git-pw-1\n").unwrap();
    let e = c
        .submit_release(release(
            "app.team",
            "sim-a",
            &format!("{{git: \"{repo}\", ref: v9, path: charts/app}}"),
            "x",
        ))
        .await
        .unwrap_err();
    assert!(e.message().contains("cannot fetch \"v9\""), "{}", e.message());
    let e = c
        .submit_release(release(
            "app.team",
            "sim-a",
            &format!("{{git: \"{repo}\", ref: v1, path: charts/nope}}"),
            "x",
        ))
        .await
        .unwrap_err();
    assert!(
        e.message().contains("no directory \"charts/nope\""),
        "{}",
        e.message()
    );
    assert_eq!(history(&mut c, "app.team").await.len(), 5);

    // A repository without authentication.
    let pub_work = dir.path().join("pub-work");
    std::fs::create_dir_all(&pub_work).unwrap();
    git_repo(&public, &pub_work, "open", "open");
    let open = format!(
        "{{git: \"{}/open.git\", ref: v1, path: charts/app}}",
        public.url()
    );
    let r = c
        .submit_release(release("pub.team", "sim-a", &open, "green"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        wait_op(&mut c, "pub.team", &r.operation_id).await.phase,
        pb::OperationPhase::Succeeded as i32
    );
    assert_eq!(config_map(&a, "pub.team").unwrap().1, "open");

    // A release for sim-b (no agent yet) is recorded and queued with its chart and
    // values fetched...
    let mut queued_req = with_values.clone();
    queued_req.release_yaml = queued_req
        .release_yaml
        .replace("name: app.team", "name: vals.team")
        .replace("contexts: [sim-a]", "contexts: [sim-b]");
    queued_req.source_name = "vals.team.yaml".into();
    let queued = c.submit_release(queued_req).await.unwrap().into_inner();

    // The private server goes down: rolling back to revision 1 still works.
    private.stop();
    assert_eq!(
        roll_back_to_first(&mut c, "app.team").await.phase,
        pb::OperationPhase::Succeeded as i32
    );
    assert_eq!(config_map(&a, "app.team").unwrap().1, "v1");

    // ...and a restarted coordinator renders it from what it kept, the server still down.
    let addr = running.addr;
    stop.cancel();
    running.stop().await.unwrap();
    let running = coordinator(dir.path(), &sources, Some(addr)).await;
    let stop = CancellationToken::new();
    let b = agent(&running, "sim-b", &stop).await;
    let mut c = Client::connect(format!("http://{addr}")).await.unwrap();
    let op = wait_op(&mut c, "vals.team", &queued.operation_id).await;
    assert_eq!(op.phase, pb::OperationPhase::Succeeded as i32, "{}", op.message);
    assert_eq!(
        config_map(&b, "vals.team").unwrap(),
        ("1.0.0".into(), "v1-moved".into(), "from-git-v1".into())
    );
    stop.cancel();
    running.stop().await.unwrap();
}

/// Submits a release of `name` to sim-a with `chart` and waits for it to succeed.
async fn deploy(c: &mut Client, name: &str, chart: &str, flavor: &str) {
    let r = c
        .submit_release(release(name, "sim-a", chart, flavor))
        .await
        .unwrap()
        .into_inner();
    let op = wait_op(c, name, &r.operation_id).await;
    assert_eq!(
        op.phase,
        pb::OperationPhase::Succeeded as i32,
        "{name}: {}",
        op.message
    );
}

/// Submits a release of `name` with `chart` and expects the source to refuse the TLS
/// handshake (no client certificate): FAILED_PRECONDITION naming `shown`, nothing recorded.
async fn refused_at_handshake(c: &mut Client, name: &str, chart: &str, shown: &str) {
    let e = c
        .submit_release(release(name, "sim-a", chart, "red"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{}", e.message());
    // The source's alert says so, or (when the connection is reset before the alert
    // is read) the hint for a dropped connection does.
    assert!(
        e.message().contains(shown)
            && e.message().contains("TLS handshake")
            && e.message().contains("client_cert_file"),
        "{}",
        e.message()
    );
    let history = c
        .get_history(pb::GetHistoryRequest {
            release: name.into(),
            limit: 0,
        })
        .await;
    assert_eq!(
        history.unwrap_err().code(),
        tonic::Code::NotFound,
        "nothing is recorded"
    );
}

/// A server certificate from one private CA and a client certificate (convoyd's) from
/// another, whose certificate the servers require.
struct MutualTls {
    server_ca: TestCa,
    client_ca_pem: String,
    server: convoy_tests::certs::CertPair,
    client: convoy_tests::certs::CertPair,
}

impl MutualTls {
    fn new(name: &str) -> Self {
        let server_ca = TestCa::new(name).unwrap();
        let client_ca = TestCa::new(&format!("{name} clients")).unwrap();
        MutualTls {
            server: server_ca.server_cert(name, &[]).unwrap(),
            client: client_ca.client_cert("convoyd", None).unwrap(),
            client_ca_pem: client_ca.cert_pem(),
            server_ca,
        }
    }

    /// The files of a `chart_sources` entry: (ca_file, client_cert_file, client_key_file).
    fn files(&self, d: &Path) -> (PathBuf, PathBuf, PathBuf) {
        (
            secret_file(d, "source-ca.pem", &self.server_ca.cert_pem()),
            secret_file(d, "convoyd.pem", &self.client.cert_pem),
            secret_file(d, "convoyd-key.pem", &self.client.key_pem),
        )
    }
}

/// An OCI registry that requires a client certificate (docker-registry with
/// `http.tls.clientcas`, its certificate from a private CA): convoyd pulls by version
/// range and by digest with the entry's `client_cert_file`/`client_key_file` and
/// `ca_file`; an entry without a client certificate is refused at the handshake, the
/// error naming the source; a malformed certificate file stops convoyd naming its key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oci_charts_from_a_registry_requiring_a_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mtls = MutualTls::new("registry");
    // Charts are pushed through a plain registry on the same storage: the mutual-TLS
    // one answers nothing without a client certificate, and the push client has none.
    let data = d.join("registry-data");
    std::fs::create_dir_all(&data).unwrap();
    let plain = Registry::start_with(RegistryOptions {
        data_dir: Some(&data),
        ..RegistryOptions::default()
    })
    .await
    .unwrap();
    let mutual = Registry::start_with(RegistryOptions {
        data_dir: Some(&data),
        tls: Some(RegistryTls {
            server: &mtls.server,
            client_ca_pem: &mtls.client_ca_pem,
        }),
        ..RegistryOptions::default()
    })
    .await
    .unwrap();
    let pushing =
        convoy_daemon::sources::ChartSources::direct(convoy_daemon::sources::Credentials::Anonymous, true);
    let archive = chart(d, "1.0.0", "mutual");
    let pushed =
        convoy_daemon::sources::push_chart(&archive, &format!("oci://{}/team", plain.host()), &pushing)
            .await
            .unwrap();
    convoy_daemon::sources::push_chart(&archive, &format!("oci://{}/nocert", plain.host()), &pushing)
        .await
        .unwrap();

    let (ca, cert, key) = mtls.files(d);
    let host = mutual.host();
    let sources = format!(
        "  - {{url: \"oci://{host}/team\", ca_file: {}, client_cert_file: {}, client_key_file: {}}}\n  - {{url: \"oci://{host}/nocert\", ca_file: {}}}\n",
        ca.display(),
        cert.display(),
        key.display(),
        ca.display()
    );
    let running = coordinator(d, &sources, None).await;
    let stop = CancellationToken::new();
    let a = agent(&running, "sim-a", &stop).await;
    let mut c = Client::connect(format!("http://{}", running.addr)).await.unwrap();

    // By version range: the tags are listed over mutual TLS too.
    let by_range = format!("{{oci: \"oci://{host}/team/app\", version: \"~1.0\"}}");
    deploy(&mut c, "web.team", &by_range, "red").await;
    assert_eq!(
        config_map(&a, "web.team").unwrap(),
        ("1.0.0".into(), "mutual".into(), "red".into())
    );
    let h = history(&mut c, "web.team").await;
    assert_eq!(
        h[0].chart_digest,
        format!("sha256:{}", convoy_tests::charts::sha256_hex(&archive))
    );
    assert_eq!(
        h[0].chart_source,
        format!("oci://{host}/team/app:1.0.0@{}", pushed.digest)
    );

    // By digest.
    let by_digest = format!(
        "{{oci: \"oci://{host}/team/app\", digest: \"{}\"}}",
        pushed.digest
    );
    deploy(&mut c, "pin.team", &by_digest, "blue").await;

    // The entry without a client certificate: the registry refuses the handshake.
    let no_cert = format!("{{oci: \"oci://{host}/nocert/app\", version: 1.0.0}}");
    refused_at_handshake(
        &mut c,
        "bare.team",
        &no_cert,
        &format!("OCI registry oci://{host}/nocert/app"),
    )
    .await;
    stop.cancel();
    drop(running);

    // A certificate file that is not one: convoyd (and --check-config) refuse to start.
    let garbage = secret_file(d, "not-a-cert.pem", "not a certificate");
    let bad = format!(
        "  - {{url: \"oci://{host}/team\", client_cert_file: {}, client_key_file: {}}}\n",
        garbage.display(),
        key.display()
    );
    let e = convoy_daemon::server::pipeline(&config(d, &bad, ""))
        .err()
        .expect("refused");
    let e = e.to_string();
    assert!(
        e.contains("chart_sources[0].client_cert_file") && e.contains(&garbage.display().to_string()),
        "{e}"
    );
}

/// Everything this test process logs (at debug, the libraries' HTTP internals at
/// info), from the first call on: a canary is looked for in it.
fn captured_logs() -> Arc<std::sync::Mutex<Vec<u8>>> {
    static LOGS: std::sync::OnceLock<Arc<std::sync::Mutex<Vec<u8>>>> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = logs.clone();
        tracing_subscriber::fmt()
            .with_env_filter("debug,h2=info,hyper=info,hyper_util=info,tower=info,tonic=info")
            .with_ansi(false)
            .with_writer(move || LogSink(sink.clone()))
            .try_init()
            .expect("the first global subscriber");
        logs
    })
    .clone()
}

struct LogSink(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The `convoy` CLI against `addr`: (success, stdout + stderr).
fn convoy_cli(dir: &Path, addr: SocketAddr, args: &[&str]) -> (bool, String) {
    let out = tokio::task::block_in_place(|| {
        std::process::Command::new(convoy_tests::convoy::binary("convoy").unwrap())
            .current_dir(dir)
            .args(args)
            .env("CONVOY_SERVER", format!("http://{addr}"))
            .env_remove("CONVOY_TOKEN")
            .env("COLUMNS", "200")
            .output()
            .expect("convoy runs")
    });
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// A chart repository whose password convoyd reads from OpenBao (`password_from_vault`,
/// through its `vault:` session): a submit works; the password is then rotated in the
/// repository and in OpenBao, and a later submit works without a restart; an entry
/// naming a key the secret lacks fails naming the entry, the path and the key. Neither
/// password appears in a log line, an error, an API answer or the CLI's output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repository_password_held_in_openbao_is_rotated_without_a_restart() {
    const OLD: &str = "CANARY-charts-pw-1-5f1e";
    const NEW: &str = "CANARY-charts-pw-2-a7c3";
    let logs = captured_logs();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (bao, server) = tokio::join!(OpenBao::start(), ChartServer::start(Some(("ci", OLD))));
    let (bao, server) = (bao.unwrap(), server.unwrap());
    bao.wait_kv2_ready("secret").await.unwrap();
    bao.kv2_put(
        "secret",
        "ci/charts",
        serde_json::json!({"password": OLD, "user": "ci"}),
    )
    .await
    .unwrap();
    let (v100, v110) = (chart(d, "1.0.0", "vault-one"), chart(d, "1.1.0", "vault-two"));
    for prefix in ["/stable", "/broken"] {
        server.put(
            &format!("{prefix}/index.yaml"),
            index_yaml(&[("app", "1.0.0", &v100)]).into_bytes(),
        );
        server.put(&format!("{prefix}/app-1.0.0.tgz"), v100.clone());
    }
    let (repo, broken) = (
        format!("{}/stable", server.url()),
        format!("{}/broken", server.url()),
    );
    let sources = format!(
        "  - {{url: \"{repo}\", username: ci, password_from_vault: {{vault_path: /secret/ci/charts, vault_key: password, cache_seconds: 1}}}}\n  - {{url: \"{broken}\", username: ci, password_from_vault: {{vault_path: /secret/ci/charts, vault_key: pasword}}}}\n"
    );
    let vault = format!(
        "vault: {{address: \"{}\", auth: {{method: token, token: \"{}\"}}}}\n",
        bao.addr(),
        bao.root_token()
    );
    let running = coordinator_with(d, &sources, &vault, None).await;
    let stop = CancellationToken::new();
    let a = agent(&running, "sim-a", &stop).await;
    let mut c = Client::connect(format!("http://{}", running.addr)).await.unwrap();
    let spec = format!("{{repo: \"{repo}\", name: app, version: \"^1\"}}");
    std::fs::write(
        d.join("web.yaml"),
        release("web.team", "sim-a", &spec, "red").release_yaml,
    )
    .unwrap();

    let mut outputs = Vec::new();
    let (ok, out) = convoy_cli(
        d,
        running.addr,
        &["submit", "-f", "web.yaml", "--wait", "--reason", "vault"],
    );
    assert!(ok, "{out}");
    outputs.push(out);
    assert_eq!(config_map(&a, "web.team").unwrap().1, "vault-one");

    // Rotation: the repository takes only the new password, OpenBao holds it, and a
    // new version is published. The next submit (once the 1 s cache has passed) works.
    server.set_basic("ci", NEW);
    bao.kv2_put(
        "secret",
        "ci/charts",
        serde_json::json!({"password": NEW, "user": "ci"}),
    )
    .await
    .unwrap();
    server.put(
        "/stable/index.yaml",
        index_yaml(&[("app", "1.0.0", &v100), ("app", "1.1.0", &v110)]).into_bytes(),
    );
    server.put("/stable/app-1.1.0.tgz", v110.clone());
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (ok, out) = convoy_cli(
        d,
        running.addr,
        &["submit", "-f", "web.yaml", "--wait", "--reason", "rotated"],
    );
    assert!(ok, "{out}");
    outputs.push(out);
    assert_eq!(
        config_map(&a, "web.team").unwrap(),
        ("1.1.0".into(), "vault-two".into(), "red".into())
    );

    // The entry naming a key the secret does not have.
    let broken_spec = format!("{{repo: \"{broken}\", name: app, version: \"^1\"}}");
    let e = c
        .submit_release(release("bad.team", "sim-a", &broken_spec, "red"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{}", e.message());
    assert!(
        e.message().contains("chart_sources[1].password_from_vault")
            && e.message().contains("/secret/ci/charts")
            && e.message().contains("\"pasword\"")
            && e.message().contains("no such key"),
        "{}",
        e.message()
    );
    outputs.push(e.message().to_string());
    std::fs::write(
        d.join("bad.yaml"),
        release("bad.team", "sim-a", &broken_spec, "red").release_yaml,
    )
    .unwrap();
    let (ok, out) = convoy_cli(
        d,
        running.addr,
        &["submit", "-f", "bad.yaml", "--reason", "broken"],
    );
    assert!(
        !ok && out.contains("chart_sources[1].password_from_vault"),
        "{out}"
    );
    outputs.push(out);
    for args in [
        &["history", "web.team"][..],
        &["history", "web.team", "-o", "json"],
        &["history", "web.team", "--show", "2"],
        &["status", "web.team"],
    ] {
        let (ok, out) = convoy_cli(d, running.addr, args);
        assert!(ok, "{args:?}: {out}");
        outputs.push(out);
    }
    outputs.push(format!("{:?}", history(&mut c, "web.team").await));
    outputs.push(format!(
        "{:?}",
        c.get_history(pb::GetHistoryRequest {
            release: "bad.team".into(),
            limit: 0,
        })
        .await
    ));
    stop.cancel();
    drop(running);

    let logs = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    // The capture works: the Vault reads of the chart source are logged (paths only).
    assert!(logs.contains("chart_sources"), "{logs}");
    outputs.push(logs);
    for out in &outputs {
        assert!(
            !out.contains(OLD) && !out.contains(NEW),
            "a password leaked: {out}"
        );
    }
}

/// A chart repository and a git server over HTTPS that require client certificates
/// (their certificates from a private CA): convoyd fetches from both with an entry's
/// `ca_file` and client certificate; an entry with only `ca_file` is refused at the
/// handshake, the error naming the source.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repository_and_git_charts_over_mutual_tls() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mtls = MutualTls::new("sources");
    let tls = ServerTls {
        server: &mtls.server,
        client_ca_pem: Some(&mtls.client_ca_pem),
    };
    let charts = ChartServer::start_with(None, Some(tls)).await.unwrap();
    let gits = GitServer::start_with(None, Some(tls)).await.unwrap();
    let archive = chart(d, "1.0.0", "repo-mtls");
    for prefix in ["/stable", "/nocert"] {
        charts.put(
            &format!("{prefix}/index.yaml"),
            index_yaml(&[("app", "1.0.0", &archive)]).into_bytes(),
        );
        charts.put(&format!("{prefix}/app-1.0.0.tgz"), archive.clone());
    }
    let (work, other) = (d.join("work"), d.join("other"));
    std::fs::create_dir_all(&work).unwrap();
    std::fs::create_dir_all(&other).unwrap();
    let commit = git_repo(&gits, &work, "charts", "git-mtls");
    git_repo(&gits, &other, "other", "git-mtls");

    let (ca, cert, key) = mtls.files(d);
    let mutual = format!(
        "ca_file: {}, client_cert_file: {}, client_key_file: {}",
        ca.display(),
        cert.display(),
        key.display()
    );
    let (repo, bare_repo) = (
        format!("{}/stable", charts.url()),
        format!("{}/nocert", charts.url()),
    );
    let (git_url, bare_git) = (
        format!("{}/charts.git", gits.url()),
        format!("{}/other.git", gits.url()),
    );
    let sources = format!(
        "  - {{url: \"{repo}\", {mutual}}}\n  - {{url: \"{bare_repo}\", ca_file: {ca}}}\n  - {{url: \"{git_url}\", {mutual}}}\n  - {{url: \"{bare_git}\", ca_file: {ca}}}\n",
        ca = ca.display()
    );
    let running = coordinator(d, &sources, None).await;
    let stop = CancellationToken::new();
    let a = agent(&running, "sim-a", &stop).await;
    let mut c = Client::connect(format!("http://{}", running.addr)).await.unwrap();

    let from_repo = format!("{{repo: \"{repo}\", name: app, version: \"^1\"}}");
    deploy(&mut c, "repo.team", &from_repo, "red").await;
    assert_eq!(config_map(&a, "repo.team").unwrap().1, "repo-mtls");

    let from_git = format!("{{git: \"{git_url}\", ref: v1, path: charts/app}}");
    deploy(&mut c, "git.team", &from_git, "red").await;
    assert_eq!(config_map(&a, "git.team").unwrap().1, "git-mtls");
    assert_eq!(
        history(&mut c, "git.team").await[0].chart_source,
        format!("{git_url} v1@{commit} charts/app")
    );

    refused_at_handshake(
        &mut c,
        "barerepo.team",
        &format!("{{repo: \"{bare_repo}\", name: app, version: \"^1\"}}"),
        &format!("chart repository {bare_repo}"),
    )
    .await;
    refused_at_handshake(
        &mut c,
        "baregit.team",
        &format!("{{git: \"{bare_git}\", ref: v1, path: charts/app}}"),
        &format!("git repository {bare_git}"),
    )
    .await;
    stop.cancel();
}

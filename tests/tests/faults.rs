//! Rollouts that survive faults, on the real binaries: `convoyd` stopped with SIGTERM in
//! the middle of a rollout exits 0 within seconds and the rollout finishes after a
//! restart; a release too large for the agent link is refused at submit, naming the
//! limit, before any cluster is touched; with OpenBao down across a restart a rollout
//! waits, saying why, and finishes once it is back; seeded SIGKILLs at random moments
//! of rollouts never keep one from converging or lose a record; an agent's link cut
//! mid-wave and restored finishes the rollout without applying twice. Simulated agents
//! (`convoy-agent` with the simulated backend) stand in for clusters.

use std::time::{Duration, Instant};

use convoy_proto::v1 as pb;
use convoy_tests::convoy::{AgentProcess, Convoyd};
use pb::release_service_client::ReleaseServiceClient;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

const CONTEXTS: [&str; 2] = ["east", "west"];

#[derive(Clone)]
struct Bearer;

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        req.metadata_mut()
            .insert("authorization", "Bearer t-admin".parse().expect("header"));
        Ok(req)
    }
}

type Client = ReleaseServiceClient<InterceptedService<Channel, Bearer>>;

async fn client(convoyd: &Convoyd) -> Client {
    let ch = Channel::from_shared(convoyd.addr.clone())
        .expect("address")
        .connect()
        .await
        .expect("convoyd answers");
    ReleaseServiceClient::with_interceptor(ch, Bearer)
}

/// convoyd's config: the two contexts, an admin token, agent tokens, `extra`.
fn config(extra: &str) -> String {
    let mut cfg = String::from("contexts:\n");
    for c in CONTEXTS {
        cfg.push_str(&format!(
            "  - {{name: {c}, region: {c}1, env: dev, cloud: sim, clusterName: {c}}}\n"
        ));
    }
    cfg.push_str("auth:\n  tokens:\n    - {name: admin, role: admin, token: t-admin}\n  agents:\n");
    for c in CONTEXTS {
        cfg.push_str(&format!("    - {{context: {c}, token: agent-{c}}}\n"));
    }
    cfg.push_str("heartbeat_seconds: 1\n");
    cfg.push_str(extra);
    cfg
}

async fn agents(convoyd: &Convoyd) -> Vec<AgentProcess> {
    let mut out = Vec::new();
    for c in CONTEXTS {
        out.push(
            AgentProcess::start(&convoyd.addr, c, &format!("agent-{c}"), None, "")
                .await
                .expect("agent starts"),
        );
    }
    out
}

fn chart_archive() -> Vec<u8> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/web");
    convoy_chart::package_dir(&dir).expect("packaging the test chart")
}

fn submit_request(values: &str) -> pb::SubmitReleaseRequest {
    let yaml = format!(
        "apiVersion: convoy.dev/v1\nkind: Release\nmetadata: {{name: web.shop, namespace: shop, environment: dev}}\n\
         spec:\n  chart: {{path: ./web}}\n  values: {values}\n  contexts: [east, west]\n\
         \x20 strategy: {{waves: [[east], [west]], maxFailures: 0, onFailure: rollback}}\n\
         \x20 health: {{progressDeadline: 1m, minReadyWindow: 1s}}\n"
    );
    pb::SubmitReleaseRequest {
        release_yaml: yaml,
        source_name: "web.yaml".into(),
        chart_archive: chart_archive(),
        values_files: vec![],
        reason: "faults test".into(),
        dry_run: false,
        allow_mass_deletion: false,
    }
}

async fn release(c: &mut Client) -> pb::Release {
    c.get_release(pb::GetReleaseRequest {
        release: "web.shop".into(),
    })
    .await
    .expect("get release")
    .into_inner()
}

/// Polls the release until `done` holds (up to `limit`).
async fn wait_until(c: &mut Client, limit: Duration, what: &str, done: impl Fn(&pb::Release) -> bool) {
    let until = Instant::now() + limit;
    loop {
        let r = release(c).await;
        if done(&r) {
            return;
        }
        assert!(Instant::now() < until, "{what}: not within {limit:?}: {r:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn progressing(r: &pb::Release) -> bool {
    r.contexts
        .iter()
        .any(|c| c.phase == pb::ContextPhase::Progressing as i32)
}

/// SIGTERM in the middle of a rollout: convoyd refuses new work, finishes its commits,
/// closes the agent sessions and exits 0 within seconds; started again, it finishes the
/// rollout it was in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_cleanly_and_the_rollout_resumes() {
    let mut convoyd = Convoyd::start(&config("")).await.expect("convoyd starts");
    let mut agents = agents(&convoyd).await;
    let mut c = client(&convoyd).await;
    let accepted = c
        .submit_release(submit_request(
            "{image: \"registry.example/web:2.0\", behavior: \"healthy,after=3s\"}",
        ))
        .await
        .expect("submit")
        .into_inner();
    wait_until(
        &mut c,
        Duration::from_secs(30),
        "a context progressing",
        progressing,
    )
    .await;

    let (status, took) = convoyd
        .terminate(Duration::from_secs(10))
        .await
        .expect("convoyd exits within 10s of SIGTERM");
    assert!(status.success(), "exit status {status}: {}", convoyd.logs());
    assert!(took < Duration::from_secs(5), "took {took:?} to stop");
    let logs = convoyd.logs();
    assert!(
        logs.contains("signal=\"SIGTERM\"") || logs.contains("signal=SIGTERM"),
        "{logs}"
    );
    assert!(logs.contains("stopped cleanly"), "{logs}");
    println!("convoyd stopped {took:?} after SIGTERM");

    convoyd.restart().await.expect("convoyd starts again");
    for a in &mut agents {
        a.wait_connected().await.expect("agent reconnects");
    }
    let mut c = client(&convoyd).await;
    wait_until(
        &mut c,
        Duration::from_secs(60),
        "the rollout finished after the restart",
        |r| r.deployed_revision == accepted.revision,
    )
    .await;
    let history = c
        .get_history(pb::GetHistoryRequest {
            release: "web.shop".into(),
            limit: 0,
        })
        .await
        .expect("history")
        .into_inner();
    assert_eq!(history.revisions.len(), 1, "{history:#?}");
    assert_eq!(
        history.revisions[0].phase,
        pb::OperationPhase::Succeeded as i32,
        "{history:#?}"
    );
}

/// A release whose rendered manifests make a command larger than the agent link carries
/// is refused at submit, naming the limit, before any cluster is touched; one within
/// the limit deploys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_too_large_for_the_agent_link_is_refused_at_submit() {
    let convoyd = Convoyd::start(&config("agent_link_max_message_bytes: 65536\n"))
        .await
        .expect("convoyd starts");
    let agents = agents(&convoyd).await;
    let mut c = client(&convoyd).await;
    let big = "x".repeat(100 << 10);
    let refused = c
        .submit_release(submit_request(&format!(
            "{{behavior: \"healthy,after=200ms\", message: \"{big}\"}}"
        )))
        .await
        .expect_err("a release over the limit is refused");
    assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");
    let msg = refused.message();
    assert!(
        msg.contains("too large for context east")
            && msg.contains("(65536 bytes)")
            && msg.contains("agent_link_max_message_bytes")
            && msg.contains("nothing was recorded or applied"),
        "{msg}"
    );
    let missing = c
        .get_release(pb::GetReleaseRequest {
            release: "web.shop".into(),
        })
        .await
        .expect_err("nothing was recorded");
    assert_eq!(missing.code(), tonic::Code::NotFound, "{missing:?}");

    let accepted = c
        .submit_release(submit_request("{behavior: \"healthy,after=200ms\"}"))
        .await
        .expect("a release within the limit is accepted")
        .into_inner();
    wait_until(
        &mut c,
        Duration::from_secs(60),
        "the small release deployed",
        |r| r.deployed_revision == accepted.revision,
    )
    .await;
    for a in &agents {
        let logs = a.logs();
        assert_eq!(
            logs.matches("command accepted").count(),
            2,
            "{}: only the small release's dry run and apply reached the agent: {logs}",
            a.context
        );
    }
}

/// OpenBao stopped across a coordinator restart in the middle of a rollout: the
/// operation cannot be rendered again, so it waits, saying why ("waiting for Vault:
/// ..."), starts no further context (no mixed revisions beyond the wave in flight),
/// and goes on to the end once OpenBao answers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_waits_for_vault_across_a_restart() {
    // Persistent storage: OpenBao comes back with its data, as a real Vault does.
    let mut bao = convoy_tests::openbao::OpenBao::start_persistent()
        .await
        .expect("OpenBao starts");
    put_secret(&bao).await;
    let vault = format!(
        "vault:\n  address: {}\n  auth: {{method: token, token: {}}}\n",
        bao.addr(),
        bao.root_token()
    );
    let mut convoyd = Convoyd::start(&config(&vault)).await.expect("convoyd starts");
    let mut agents = agents(&convoyd).await;
    let mut c = client(&convoyd).await;
    let mut request = submit_request("{image: \"registry.example/web:3.0\", behavior: \"healthy,after=4s\"}");
    request.release_yaml.push_str(
        "  secrets:\n    - secret_id: db\n      contexts:\n        - {name: default, vaultPath: /secret/shop/db, vaultKey: password}\n",
    );
    let accepted = c.submit_release(request).await.expect("submit").into_inner();
    wait_until(&mut c, Duration::from_secs(30), "east progressing", progressing).await;

    // OpenBao goes away, then the coordinator restarts (SIGKILL) mid-wave.
    bao.kill();
    convoyd.kill();
    convoyd.restart().await.expect("convoyd starts again");
    for a in &mut agents {
        a.wait_connected().await.expect("agent reconnects");
    }
    let mut c = client(&convoyd).await;
    wait_until(
        &mut c,
        Duration::from_secs(30),
        "the operation says it waits for Vault",
        |r| {
            r.current_operation.as_ref().is_some_and(|o| {
                o.phase == pb::OperationPhase::Paused as i32 && o.message.starts_with("waiting for Vault: ")
            })
        },
    )
    .await;
    // East finishes the revision it had; west is not started while Vault is away.
    wait_until(&mut c, Duration::from_secs(30), "east healthy", |r| {
        r.contexts
            .iter()
            .any(|x| x.context == "east" && x.phase == pb::ContextPhase::Healthy as i32)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let r = release(&mut c).await;
    let west = r.contexts.iter().find(|x| x.context == "west").expect("west");
    assert_eq!(west.phase, pb::ContextPhase::Pending as i32, "{r:#?}");
    let op = r.current_operation.expect("operation");
    assert!(op.message.contains("Vault unreachable"), "{}", op.message);
    assert!(!op.message.contains("s3cr3t"), "{}", op.message);
    // An operator cannot resume it meanwhile: it has nothing to send yet.
    let refused = c
        .resume_release(pb::ControlRequest {
            release: "web.shop".into(),
            reason: "impatient".into(),
            wave: 0,
        })
        .await
        .expect_err("resume refused while waiting for Vault");
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition, "{refused:?}");
    assert!(refused.message().contains("waiting for Vault"), "{refused:?}");

    // OpenBao is back: the rollout goes on to the end.
    bao.restart().await.expect("OpenBao starts again");
    wait_until(&mut c, Duration::from_secs(60), "the rollout finished", |r| {
        r.deployed_revision == accepted.revision
    })
    .await;
    let logs = convoyd.logs();
    assert!(
        logs.contains("waiting for Vault to render this operation again"),
        "{logs}"
    );
    assert!(!logs.contains("s3cr3t-faults-7f1e"), "a secret reached the log");
}

async fn put_secret(bao: &convoy_tests::openbao::OpenBao) {
    bao.api(
        "POST",
        "secret/data/shop/db",
        Some(serde_json::json!({"data": {"password": "s3cr3t-faults-7f1e"}})),
    )
    .await
    .expect("secret written");
}

/// Seeded fault injection: rounds of rollouts (some with a crash-looping context, so
/// the release's `onFailure: rollback` applies), convoyd killed with SIGKILL at a random
/// moment of each and restarted. Every rollout converges to what its policy promises
/// (all contexts on the new revision, or all back on the previous one) and no revision
/// record is lost. The seed is printed; `CONVOY_FAULT_SEED` replays it and
/// `CONVOY_FAULT_ROUNDS` (default 3) sets the rounds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollouts_converge_through_random_coordinator_kills() {
    use rand::{Rng, SeedableRng};
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
    let seed = env("CONVOY_FAULT_SEED").unwrap_or_else(rand::random);
    let rounds = env("CONVOY_FAULT_ROUNDS").unwrap_or(3);
    eprintln!("fault injection: CONVOY_FAULT_SEED={seed} CONVOY_FAULT_ROUNDS={rounds}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);

    let mut convoyd = Convoyd::start(&config("")).await.expect("convoyd starts");
    let mut agents = agents(&convoyd).await;
    let mut deployed = 0u64;
    for round in 0..rounds {
        let started = Instant::now();
        // The first round installs; later ones may crash-loop in west (wave 2).
        let crash = round > 0 && rng.random_bool(0.4);
        let kill_after = Duration::from_millis(rng.random_range(0..2500));
        let mut request = submit_request(&format!(
            "{{image: \"registry.example/web:r{round}\", behavior: \"healthy,after=300ms\"}}"
        ));
        if crash {
            request
                .release_yaml
                .push_str("  contextValues:\n    west: {behavior: \"crashloop,after=300ms\"}\n");
        }
        request.reason = format!("round {round}");
        let mut c = client(&convoyd).await;
        let accepted = c.submit_release(request).await.expect("submit").into_inner();
        tokio::time::sleep(kill_after).await;
        convoyd.kill();
        convoyd.restart().await.expect("convoyd starts again");
        for a in &mut agents {
            a.wait_connected().await.expect("agent reconnects");
        }
        let mut c = client(&convoyd).await;
        let what = format!(
            "round {round} (seed {seed}, crash {crash}, killed after {kill_after:?}): revision {} settles",
            accepted.revision
        );
        let history = tokio::time::timeout(Duration::from_secs(90), async {
            loop {
                let h = c
                    .get_history(pb::GetHistoryRequest {
                        release: "web.shop".into(),
                        limit: 0,
                    })
                    .await
                    .expect("history")
                    .into_inner();
                let settled = h.revisions.iter().any(|r| {
                    r.number == accepted.revision
                        && matches!(
                            pb::OperationPhase::try_from(r.phase),
                            Ok(pb::OperationPhase::Succeeded | pb::OperationPhase::Failed)
                        )
                });
                if settled {
                    return h;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{what}: not within 90s"));
        let rev = history
            .revisions
            .iter()
            .find(|r| r.number == accepted.revision)
            .expect("its revision");
        assert_eq!(rev.reason, format!("round {round}"), "{what}");
        let want = if crash {
            pb::OperationPhase::Failed
        } else {
            pb::OperationPhase::Succeeded
        };
        assert_eq!(rev.phase, want as i32, "{what}: {history:#?}");
        let previous = deployed;
        // Every context ends where the policy says: all on the new revision, or all
        // rolled back to the previous one by the rollback revision the failure recorded
        // next (it settles after the deploy's record, so wait for it).
        deployed = if crash {
            accepted.revision + 1
        } else {
            accepted.revision
        };
        wait_until(&mut c, Duration::from_secs(60), &what, |r| {
            r.deployed_revision == deployed
                && r.current_operation.as_ref().is_some_and(|o| {
                    matches!(
                        pb::OperationPhase::try_from(o.phase),
                        Ok(pb::OperationPhase::Succeeded | pb::OperationPhase::Failed)
                    )
                })
        })
        .await;
        // No record lost: revisions 1..=latest, each once; a rollback restores the
        // revision deployed before.
        let history = c
            .get_history(pb::GetHistoryRequest {
                release: "web.shop".into(),
                limit: 0,
            })
            .await
            .expect("history")
            .into_inner();
        let numbers: Vec<u64> = history.revisions.iter().rev().map(|r| r.number).collect();
        let latest = release(&mut c).await.latest_revision;
        assert_eq!(numbers, (1..=latest).collect::<Vec<_>>(), "{what}");
        if crash {
            let rb = history
                .revisions
                .iter()
                .find(|r| r.number == deployed)
                .expect("the rollback revision");
            assert_eq!(
                (rb.kind, rb.rollback_to),
                (pb::OperationKind::Rollback as i32, previous),
                "{what}: {rb:#?}"
            );
        }
        eprintln!("{what}: converged in {:?}", started.elapsed());
    }
}

/// An agent's link cut in the middle of its wave and restored: the rollout does not fail
/// or apply twice; the agent reconnects, its held report is delivered, and the rollout
/// finishes. A loopback TCP proxy between the agent and convoyd stands in for the
/// network.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_link_cut_mid_wave_and_restored_finishes_the_rollout() {
    use convoy_tests::proxy::TcpProxy;
    let convoyd = Convoyd::start(&config("")).await.expect("convoyd starts");
    let east = AgentProcess::start(&convoyd.addr, "east", "agent-east", None, "")
        .await
        .expect("east starts");
    let target = convoyd.addr.trim_start_matches("http://");
    let proxy = TcpProxy::start(target).await.expect("proxy");
    let mut west = AgentProcess::start(&format!("http://{}", proxy.addr), "west", "agent-west", None, "")
        .await
        .expect("west starts through the proxy");
    let mut c = client(&convoyd).await;
    let accepted = c
        .submit_release(submit_request(
            "{image: \"registry.example/web:2.0\", behavior: \"healthy,after=3s\"}",
        ))
        .await
        .expect("submit")
        .into_inner();
    // West (the second wave) is progressing: cut its link.
    wait_until(&mut c, Duration::from_secs(60), "west progressing", |r| {
        r.contexts
            .iter()
            .any(|s| s.context == "west" && s.phase == pb::ContextPhase::Progressing as i32)
    })
    .await;
    proxy.cut();
    let cut_at = Instant::now();
    wait_until(&mut c, Duration::from_secs(30), "west seen disconnected", |r| {
        r.contexts
            .iter()
            .any(|s| s.context == "west" && !s.agent_connected)
    })
    .await;
    eprintln!("west seen disconnected {:?} after the cut", cut_at.elapsed());
    // Long enough for west's pods to become healthy while nobody hears of it.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let during = release(&mut c).await;
    assert_ne!(during.deployed_revision, accepted.revision, "{during:#?}");
    proxy.restore();
    west.wait_connected().await.expect("west reconnects");
    wait_until(&mut c, Duration::from_secs(60), "the rollout finished", |r| {
        r.deployed_revision == accepted.revision
    })
    .await;
    eprintln!("rollout finished {:?} after the cut", cut_at.elapsed());
    let history = c
        .get_history(pb::GetHistoryRequest {
            release: "web.shop".into(),
            limit: 0,
        })
        .await
        .expect("history")
        .into_inner();
    assert_eq!(history.revisions.len(), 1, "{history:#?}");
    assert_eq!(history.revisions[0].phase, pb::OperationPhase::Succeeded as i32);
    // West applied the revision once: a replayed command is answered from its ledger.
    let applies = west.logs().matches("kind=\"apply\"").count();
    assert_eq!(
        applies,
        1,
        "west accepted the apply {applies} times:\n{}",
        west.logs()
    );
    assert!(west.logs().contains("connected to the coordinator"));
    drop(east);
}

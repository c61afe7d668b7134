//! The agent runtime on the agent link, against a fake coordinator ([`common`]):
//! hello, commands, idempotence, reconnects, TLS, progress coalescing, the binary.

mod common;

use std::time::Duration;

use common::*;
use convoy_agent::backend::{Backend, ObjectRef};
use convoy_agent::runtime::{AgentRuntime, Credentials, Token};
use convoy_agent::sim::{SimBackend, SimConfig};
use convoy_proto::v1 as pb;
use pb::agent_event::Event;
use pb::agent_message::Message as Out;
use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn hello_then_apply_reports_accepted_applied_progress_and_healthy() {
    let mut fake = Fake::start(0).await;
    let agent = start_agent(config(&fake.url(), Credentials::Token(Token::new(TOKEN)))).await;
    let mut s = fake.session().await;
    assert_eq!(s.hello.context, CONTEXT);
    assert_eq!(s.hello.token, TOKEN);
    assert_eq!(s.hello.agent_version, env!("CARGO_PKG_VERSION"));
    assert_eq!(s.hello.instance, "test-agent-0");
    assert_eq!(s.hello.backend, "simulated");
    assert!(s.hello.in_flight.is_empty() && s.hello.deployed.is_empty() && s.hello.unacknowledged.is_empty());

    let o = op("app1.ns1", 1, "op-1");
    s.send(
        &o,
        apply(
            vec![
                deployment("web", 3, "healthy,after=300ms", "web:1"),
                config_map("cfg", "a"),
            ],
            60,
            1,
        ),
    );
    let events = s.until_final(&o).await;
    assert_eq!(events[0], Event::Accepted(pb::Accepted { replay: false }));
    assert_eq!(
        actions(&events[1]),
        [
            ("cfg".to_string(), pb::ObjectAction::Created),
            ("web".to_string(), pb::ObjectAction::Created)
        ]
    );
    let progress: Vec<(u32, u32)> = events
        .iter()
        .filter_map(|e| {
            if let Event::Progress(p) = e {
                Some((p.ready, p.desired))
            } else {
                None
            }
        })
        .collect();
    assert_eq!(progress.first(), Some(&(0, 3)), "{events:?}");
    assert_eq!(progress.last(), Some(&(3, 3)), "{events:?}");
    assert!(matches!(events.last(), Some(Event::Healthy(_))), "{events:?}");

    // Heartbeats at the welcome's interval (1s).
    let beat = tokio::time::timeout(WAIT, async {
        loop {
            if let Some(Out::Heartbeat(h)) = s.from_agent.recv().await.unwrap().message {
                return h;
            }
        }
    })
    .await
    .unwrap();
    assert!(beat.at.is_some() && beat.in_flight.is_empty());

    let (status, _) = agent.get("/readyz").await;
    assert_eq!(status, 200);
    let (_, metrics) = agent.get("/metrics").await;
    assert!(
        metrics.contains("convoy_agent_operations_total{outcome=\"healthy\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("convoy_agent_connected 1"), "{metrics}");
    assert!(
        !metrics.contains("convoy_agent_last_heartbeat_timestamp_seconds 0\n"),
        "{metrics}"
    );
    agent.stop().await;
}

#[tokio::test]
async fn crash_loop_flapping_and_never_ready_fail_with_their_reasons_in_parallel() {
    let mut fake = Fake::start(0).await;
    let agent = start_agent(config(&fake.url(), Credentials::Token(Token::new(TOKEN)))).await;
    let mut s = fake.session().await;
    let crash = op("crash.ns1", 1, "c");
    let flap = op("flap.ns1", 1, "f");
    let never = op("never.ns1", 1, "n");
    // Each takes about 2s: one after the other would take 5.5s.
    let started = tokio::time::Instant::now();
    let crash_loop = deployment("crash", 2, "crashloop,after=1500ms", "web:1");
    s.send(&crash, apply(vec![crash_loop], 60, 5));
    let flapping = deployment("flap", 1, "flapping,ready=500ms,after=1500ms", "web:1");
    s.send(&flap, apply(vec![flapping], 60, 5));
    s.send(
        &never,
        apply(vec![deployment("never", 1, "never-ready", "web:1")], 2, 5),
    );

    let f = failed(&s.until_final(&crash).await).clone();
    assert_eq!(f.reason, "CrashLoopBackOff");
    assert!(
        f.message.contains("pod crash-") && f.message.contains("container app"),
        "{}",
        f.message
    );
    assert_eq!(f.object.unwrap().name, "crash");
    // Fast: at the first crash, not at the 60s deadline.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );

    let f = failed(&s.until_final(&flap).await).clone();
    assert_eq!(f.reason, "RestartedInReadyWindow", "{}", f.message);

    let f = failed(&s.until_final(&never).await).clone();
    assert_eq!(f.reason, "ProgressDeadlineExceeded", "{}", f.message);
    // All three ran side by side.
    assert!(
        started.elapsed() < Duration::from_millis(4500),
        "{:?}",
        started.elapsed()
    );
    agent.stop().await;
}

#[tokio::test]
async fn rollback_restores_the_previous_revision_from_history() {
    let mut fake = Fake::start(0).await;
    let agent = start_agent(config(&fake.url(), Credentials::Token(Token::new(TOKEN)))).await;
    let mut s = fake.session().await;
    let r1 = vec![
        deployment("web", 2, "healthy,after=100ms", "web:1"),
        config_map("cfg", "one"),
    ];
    let r2 = vec![
        deployment("web", 3, "healthy,after=100ms", "web:2"),
        config_map("extra", "x"),
    ];
    for (rev, manifests) in [(1, r1.clone()), (2, r2)] {
        let o = op("app1.ns1", rev, &format!("deploy-{rev}"));
        s.send(&o, apply(manifests, 60, 1));
        assert!(matches!(s.until_final(&o).await.last(), Some(Event::Healthy(_))));
    }

    let back = op("app1.ns1", 3, "rollback-3");
    let health = Some(pb::HealthPolicy {
        progress_deadline_seconds: 60,
        min_ready_window_seconds: 1,
    });
    s.send(
        &back,
        pb::command::Command::Rollback(pb::RollbackToRevision {
            target_revision: 1,
            health,
        }),
    );
    let events = s.until_final(&back).await;
    let applied = events.iter().find(|e| matches!(e, Event::Applied(_))).unwrap();
    assert_eq!(
        actions(applied),
        [
            ("cfg".to_string(), pb::ObjectAction::Created),
            ("web".to_string(), pb::ObjectAction::Configured),
            ("extra".to_string(), pb::ObjectAction::Pruned),
        ]
    );
    assert!(matches!(events.last(), Some(Event::Healthy(_))), "{events:?}");

    // Revision 1's image, replica count and ConfigMap are back.
    let object = |kind: &str, api: &str, name: &str| ObjectRef {
        api_version: api.into(),
        kind: kind.into(),
        namespace: Some("ns1".into()),
        name: name.into(),
    };
    let web = agent.sim.object(&object("Deployment", "apps/v1", "web")).unwrap();
    assert_eq!(web["spec"]["template"]["spec"]["containers"][0]["image"], "web:1");
    assert_eq!(web["spec"]["replicas"], 2);
    let cfg = agent.sim.object(&object("ConfigMap", "v1", "cfg")).unwrap();
    assert_eq!(cfg["data"]["k"], "one");
    assert!(agent.sim.object(&object("ConfigMap", "v1", "extra")).is_none());

    // The cluster now holds exactly revision 1: a dry run of it changes nothing.
    let check = op("app1.ns1", 4, "dry-4");
    let dry = pb::command::Command::DryRun(pb::DryRun {
        apply: Some(pb::ApplyRevision {
            namespace: "ns1".into(),
            manifests: r1,
            ..Default::default()
        }),
    });
    s.send(&check, dry);
    let result = s.until_final(&check).await;
    assert!(
        actions(result.last().unwrap())
            .iter()
            .all(|(_, a)| *a == pb::ObjectAction::Unchanged),
        "{result:?}"
    );

    let missing = op("app1.ns1", 5, "rollback-5");
    s.send(
        &missing,
        pb::command::Command::Rollback(pb::RollbackToRevision {
            target_revision: 42,
            health: None,
        }),
    );
    assert_eq!(
        failed(&s.until_final(&missing).await).reason,
        "RevisionNotInHistory"
    );
    agent.stop().await;
}

#[tokio::test]
async fn the_same_command_twice_runs_once_and_a_finished_one_replays_its_result() {
    let mut fake = Fake::start(0).await;
    let agent = start_agent(config(&fake.url(), Credentials::Token(Token::new(TOKEN)))).await;
    let mut s = fake.session().await;
    let o = op("app1.ns1", 1, "op-1");
    let command = apply(vec![deployment("web", 1, "healthy,after=500ms", "web:1")], 60, 1);
    s.send(&o, command.clone());
    s.send(&o, command.clone());
    let events = s.until_final(&o).await;
    let accepted: Vec<&Event> = events
        .iter()
        .filter(|e| matches!(e, Event::Accepted(_)))
        .collect();
    assert_eq!(
        accepted,
        [
            &Event::Accepted(pb::Accepted { replay: false }),
            &Event::Accepted(pb::Accepted { replay: true })
        ]
    );
    // The replay repeats the latest events, `Applied` among them when the apply had
    // happened by then (the two commands may reach the agent apart): one `Applied`
    // after the replay's `Accepted` either way, never a second run's.
    let replay = events
        .iter()
        .position(|e| *e == Event::Accepted(pb::Accepted { replay: true }))
        .unwrap();
    let applied = |events: &[Event]| events.iter().filter(|e| matches!(e, Event::Applied(_))).count();
    assert!(applied(&events[..replay]) <= 1, "{events:?}");
    assert_eq!(applied(&events[replay..]), 1, "{events:?}");
    let healthy = events.last().unwrap().clone();
    assert!(matches!(healthy, Event::Healthy(_)));

    // Finished: the same command again gets the same final event, and nothing runs.
    s.send(&o, command);
    assert_eq!(s.event(&o).await, healthy);
    let (_, metrics) = agent.get("/metrics").await;
    assert!(
        metrics.contains("convoy_agent_operations_total{outcome=\"healthy\"} 1"),
        "{metrics}"
    );
    agent.stop().await;
}

#[tokio::test]
async fn abort_stops_a_running_rollout() {
    let mut fake = Fake::start(0).await;
    let agent = start_agent(config(&fake.url(), Credentials::Token(Token::new(TOKEN)))).await;
    let mut s = fake.session().await;
    let o = op("app1.ns1", 1, "op-1");
    let command = apply(vec![deployment("web", 1, "never-ready", "web:1")], 600, 1);
    s.send(&o, command.clone());
    loop {
        if matches!(s.event(&o).await, Event::Applied(_)) {
            break;
        }
    }
    s.send(
        &o,
        pb::command::Command::Abort(pb::Abort {
            reason: "operator abort".into(),
        }),
    );
    let events = s.until_final(&o).await;
    assert_eq!(
        events.last(),
        Some(&Event::Aborted(pb::Aborted {
            reason: "operator abort".into()
        }))
    );
    // The lock was released: the next revision runs.
    let next = op("app1.ns1", 2, "op-2");
    s.send(
        &next,
        apply(vec![deployment("web", 1, "healthy,after=100ms", "web:2")], 60, 1),
    );
    assert!(matches!(
        s.until_final(&next).await.last(),
        Some(Event::Healthy(_))
    ));
    agent.stop().await;
}

#[tokio::test]
async fn abort_stops_a_slow_apply_or_rollback_without_waiting_for_it() {
    // Every apply and rollback of this cluster takes 3s; an abort must not.
    const LATENCY: Duration = Duration::from_secs(3);
    let mut fake = Fake::start(0).await;
    let sim = std::sync::Arc::new(SimBackend::new(SimConfig {
        apply_latency: LATENCY,
        ..SimConfig::default()
    }));
    let cfg = config(&fake.url(), Credentials::Token(Token::new(TOKEN)));
    let (stop, task, _) = start_runtime(cfg, sim.clone()).await;
    let mut s = fake.session().await;
    let abort = |s: &Session, o: &pb::OperationRef| {
        s.send(
            o,
            pb::command::Command::Abort(pb::Abort {
                reason: "INC-7".into(),
            }),
        )
    };
    let aborted = Some(Event::Aborted(pb::Aborted {
        reason: "INC-7".into(),
    }));

    let first = op("app1.ns1", 1, "op-1");
    s.send(
        &first,
        apply(vec![deployment("web", 1, "healthy,after=100ms", "web:1")], 60, 0),
    );
    assert_eq!(
        s.event(&first).await,
        Event::Accepted(pb::Accepted { replay: false })
    );
    let asked = tokio::time::Instant::now();
    abort(&s, &first);
    let events = s.until_final(&first).await;
    assert!(
        asked.elapsed() < LATENCY,
        "the abort waited for the apply: {:?}",
        asked.elapsed()
    );
    assert_eq!(events.last().cloned(), aborted, "{events:?}");
    assert!(
        !events.iter().any(|e| matches!(e, Event::Applied(_))),
        "{events:?}"
    );
    // Stopped before it changed anything: nothing applied, nothing in the history.
    assert!(sim.objects_of("app1.ns1").is_empty());
    assert!(sim.deployed().await.unwrap().is_empty());

    // The same for a rollback (after a revision that did go through).
    let second = op("app1.ns1", 2, "op-2");
    s.send(
        &second,
        apply(vec![deployment("web", 1, "healthy,after=100ms", "web:2")], 60, 0),
    );
    assert!(matches!(
        s.until_final(&second).await.last(),
        Some(Event::Healthy(_))
    ));
    let back = op("app1.ns1", 3, "rollback-3");
    s.send(
        &back,
        pb::command::Command::Rollback(pb::RollbackToRevision {
            target_revision: 2,
            health: None,
        }),
    );
    assert_eq!(
        s.event(&back).await,
        Event::Accepted(pb::Accepted { replay: false })
    );
    let asked = tokio::time::Instant::now();
    abort(&s, &back);
    let events = s.until_final(&back).await;
    assert!(
        asked.elapsed() < LATENCY,
        "the abort waited for the rollback: {:?}",
        asked.elapsed()
    );
    assert_eq!(events.last().cloned(), aborted, "{events:?}");
    let deployed = sim.deployed().await.unwrap();
    assert_eq!((deployed[0].revision, deployed[0].kept.clone()), (2, vec![2]));
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn a_restarted_coordinator_gets_the_in_flight_operation_and_its_result() {
    let mut fake = Fake::start(0).await;
    let port = fake.port;
    let agent = start_agent(config(&fake.url(), Credentials::Token(Token::new(TOKEN)))).await;
    let mut s = fake.session().await;

    // 1. Restarted mid-rollout: the op keeps running, the new session's hello lists it,
    //    and the final event arrives on the new stream.
    let o = op("app1.ns1", 1, "op-1");
    s.send(
        &o,
        apply(vec![deployment("web", 2, "healthy,after=1500ms", "web:1")], 60, 1),
    );
    while !matches!(s.event(&o).await, Event::Applied(_)) {}
    drop(s);
    drop(fake);
    let mut fake = Fake::start(port).await;
    let mut s = fake.session().await;
    assert_eq!(s.hello.in_flight, std::slice::from_ref(&o));
    assert!(matches!(s.until_final(&o).await.last(), Some(Event::Healthy(_))));

    // 2. Down while an op finishes: its final event is in the next hello's
    //    unacknowledged list, with the deployed revision; acknowledged, it is dropped.
    let o2 = op("app1.ns1", 2, "op-2");
    s.send(
        &o2,
        apply(vec![deployment("web", 2, "healthy,after=200ms", "web:2")], 60, 1),
    );
    while !matches!(s.event(&o2).await, Event::Applied(_)) {}
    drop(s);
    drop(fake);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let mut fake = Fake::start(port).await;
    let s = fake.session().await;
    assert!(s.hello.in_flight.is_empty());
    let finals: Vec<(&str, bool)> = s
        .hello
        .unacknowledged
        .iter()
        .map(|e| {
            (
                e.op.as_ref().unwrap().operation_id.as_str(),
                matches!(e.event, Some(Event::Healthy(_))),
            )
        })
        .collect();
    assert!(finals.contains(&("op-2", true)), "{finals:?}");
    assert_eq!(s.hello.deployed.len(), 1);
    assert_eq!(
        (s.hello.deployed[0].revision, s.hello.deployed[0].healthy),
        (2, true)
    );
    assert_eq!(s.hello.deployed[0].kept, [1, 2]);

    // The welcome acknowledged them: a third session's hello carries none.
    drop(s);
    drop(fake);
    let mut fake = Fake::start(port).await;
    let s = fake.session().await;
    assert!(s.hello.unacknowledged.is_empty(), "{:?}", s.hello.unacknowledged);
    let (_, metrics) = agent.get("/metrics").await;
    assert!(!metrics.contains("convoy_agent_reconnects_total 0"), "{metrics}");
    agent.stop().await;
}

#[tokio::test]
async fn a_refused_token_is_retried_slowly_and_a_fixed_one_connects() {
    let mut fake = Fake::start(0).await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "wrong-token\n").unwrap();
    let agent = start_agent(config(&fake.url(), Credentials::TokenFile(token_file.clone()))).await;

    // Refused for 1.2s at a 500ms retry: about three attempts, not a hot loop.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let mut refusals = 0;
    while fake.refusals.try_recv().is_ok() {
        refusals += 1;
    }
    assert!((1..=4).contains(&refusals), "{refusals} attempts");
    assert!(!agent.task.is_finished(), "the agent must keep running");
    assert_eq!(agent.get("/readyz").await.0, 503);
    assert_eq!(agent.get("/healthz").await.0, 200);

    // The token is re-read at every attempt: fixing the file is enough.
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let s = fake.session().await;
    assert_eq!(s.hello.token, TOKEN);
    agent.stop().await;
}

/// A CA and a loopback server certificate it signed (PEM), and another, unrelated CA.
fn certificates() -> (String, (String, String), String) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair, SanType};
    let ca = |name: &str| {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
    };
    let issuer = ca("convoy test CA");
    let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params
        .subject_alt_names
        .push(SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()));
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    (
        issuer.pem(),
        (cert.pem(), key.serialize_pem()),
        ca("someone else's CA").pem(),
    )
}

#[tokio::test]
async fn tls_with_the_given_ca_connects_and_another_ca_is_refused() {
    let (ca, identity, other_ca) = certificates();
    let mut fake = Fake::start_with(0, Some(identity)).await;
    let mut cfg = config(&fake.url(), Credentials::Token(Token::new(TOKEN)));
    cfg.ca_pem = Some(ca.into_bytes());
    let agent = start_agent(cfg).await;
    let mut s = fake.session().await;
    assert_eq!(s.hello.context, CONTEXT);
    let o = op("app1.ns1", 1, "op-1");
    s.send(&o, apply(vec![config_map("cfg", "a")], 60, 0));
    assert!(matches!(s.until_final(&o).await.last(), Some(Event::Healthy(_))));
    agent.stop().await;

    let mut cfg = config(&fake.url(), Credentials::Token(Token::new(TOKEN)));
    cfg.ca_pem = Some(other_ca.into_bytes());
    let agent = start_agent(cfg).await;
    let refused = tokio::time::timeout(Duration::from_millis(1500), fake.sessions.recv()).await;
    assert!(
        refused.is_err(),
        "an untrusted coordinator certificate must not be accepted"
    );
    assert!(!agent.task.is_finished());
    assert_eq!(agent.get("/readyz").await.0, 503);
    agent.stop().await;
}

#[tokio::test]
async fn progress_is_coalesced_to_a_few_events_per_second() {
    let mut fake = Fake::start(0).await;
    let agent = start_agent(config(&fake.url(), Credentials::Token(Token::new(TOKEN)))).await;
    let mut s = fake.session().await;
    let o = op("app1.ns1", 1, "op-1");
    // A StatefulSet starts pods one at a time: 30 changes within 600ms.
    let sts = pb::Manifest {
        source: "sts.yaml".into(),
        content: "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: db}\nspec:\n  replicas: 30\n  template:\n    metadata:\n      annotations: {sim.convoy.dev/behavior: \"healthy,after=20ms\"}\n    spec:\n      containers: [{name: db, image: db:1}]\n".into(),
    };
    let started = tokio::time::Instant::now();
    s.send(&o, apply(vec![sts], 60, 0));
    let events = s.until_final(&o).await;
    let progress: Vec<u32> = events
        .iter()
        .filter_map(|e| {
            if let Event::Progress(p) = e {
                Some(p.ready)
            } else {
                None
            }
        })
        .collect();
    // At most one event per 100ms (this test's interval), plus the final flush: not
    // one per pod (31).
    let bound = started.elapsed().as_millis() as usize / 100 + 2;
    assert!(
        (2..=bound).contains(&progress.len()) && progress.len() < 31,
        "{progress:?}"
    );
    assert_eq!(progress.last(), Some(&30), "the last progress is the final state");
    assert!(matches!(events.last(), Some(Event::Healthy(_))));
    agent.stop().await;
}

#[tokio::test]
async fn the_binary_serves_a_simulated_cluster_and_stops_on_sigterm() {
    let mut fake = Fake::start(0).await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_convoy-agent"))
        .env("CONVOY_AGENT__COORDINATOR", fake.url())
        .env("CONVOY_AGENT__CONTEXT", CONTEXT)
        .env("CONVOY_AGENT__BACKEND", "simulated")
        .env("CONVOY_AGENT__TOKEN_FILE", &token_file)
        .env("CONVOY_AGENT__LOG_FORMAT", "json")
        .env("POD_NAME", "agent-pod-0")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut s = fake.session().await;
    assert_eq!(
        (s.hello.backend.as_str(), s.hello.instance.as_str()),
        ("simulated", "agent-pod-0")
    );
    let o = op("app1.ns1", 1, "op-1");
    let secret = pb::Manifest {
        source: "app1/templates/secret.yaml".into(),
        content: "apiVersion: v1\nkind: Secret\nmetadata: {name: db}\nstringData: {password: hunter2}\n"
            .into(),
    };
    s.send(
        &o,
        apply(
            vec![secret, deployment("web", 1, "healthy,after=100ms", "web:1")],
            60,
            0,
        ),
    );
    assert!(matches!(s.until_final(&o).await.last(), Some(Event::Healthy(_))));

    let pid = child.id().unwrap().to_string();
    let killed = tokio::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .expect("no exit after SIGTERM")
        .unwrap();
    assert!(status.success(), "{status}");
    let mut logs = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .await
        .unwrap();
    assert!(logs.contains("\"message\":\"SIGTERM received\""), "{logs}");
    // Neither the token nor a manifest's secret value is ever logged.
    assert!(!logs.contains(TOKEN) && !logs.contains("hunter2"), "{logs}");
}

/// Many agents (each its own runtime, connection and simulated cluster) on one
/// coordinator, all rolling out at once. `CONVOY_FLEET_SIZE` raises the count (the
/// report's figure used 1000); the default keeps the suite quick on two cores.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_of_agents_rolls_out_together() {
    let size: usize = std::env::var("CONVOY_FLEET_SIZE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let mut fake = Fake::start(0).await;
    let started = tokio::time::Instant::now();
    let mut agents = Vec::with_capacity(size);
    for i in 0..size {
        let mut cfg = config(&fake.url(), Credentials::Token(Token::new(TOKEN)));
        cfg.health_listen = None;
        cfg.instance = format!("agent-{i}");
        let runtime = AgentRuntime::new(cfg, SimBackend::default());
        let stop = CancellationToken::new();
        let s = stop.clone();
        agents.push((stop, tokio::spawn(async move { runtime.run(s).await.unwrap() })));
    }
    let mut sessions = Vec::with_capacity(size);
    for _ in 0..size {
        sessions.push(fake.session().await);
    }
    let connected = started.elapsed();
    let o = op("app1.ns1", 1, "op-1");
    let manifests = vec![
        deployment("web", 3, "healthy,after=1s", "web:1"),
        config_map("cfg", "a"),
    ];
    for s in &sessions {
        s.send(&o, apply(manifests.clone(), 60, 1));
    }
    let mut waits = tokio::task::JoinSet::new();
    for mut s in sessions {
        let o = o.clone();
        waits.spawn(async move { matches!(s.until_final(&o).await.last(), Some(Event::Healthy(_))) });
    }
    let mut healthy = 0;
    while let Some(ok) = waits.join_next().await {
        healthy += usize::from(ok.unwrap());
    }
    let total = started.elapsed();
    println!("{size} agents: connected in {connected:?}, all healthy after {total:?} (rollout itself: 2s)");
    assert_eq!(healthy, size);
    for (stop, task) in agents {
        stop.cancel();
        task.await.unwrap();
    }
}

/// With the coordinator's salted digests of a secret, the agent masks it in its own
/// messages (here a crash-loop failure naming the pod built from it); with another salt
/// the same digests match nothing.
#[tokio::test]
async fn messages_are_masked_with_the_coordinators_secret_digests() {
    use sha2::{Digest, Sha256};
    let mut fake = Fake::start(0).await;
    let agent = start_agent(config(&fake.url(), Credentials::Token(Token::new(TOKEN)))).await;
    let mut s = fake.session().await;
    let secret = "canary-leak-7d2e91";
    let salt = b"fresh-salt-per-command".to_vec();
    let digests = |salt: &[u8]| pb::SecretDigests {
        salt: salt.to_vec(),
        forms: vec![pb::SecretDigest {
            length: secret.len() as u32,
            sha256: Sha256::new()
                .chain_update(salt)
                .chain_update(secret.as_bytes())
                .finalize()
                .to_vec(),
        }],
    };
    let with = |digests: pb::SecretDigests| {
        let mut cmd = apply(
            vec![deployment(secret, 1, "crashloop,after=200ms", "web:1")],
            60,
            1,
        );
        if let pb::command::Command::Apply(a) = &mut cmd {
            a.secret_digests = Some(digests);
        }
        cmd
    };
    let o = op("leak.ns1", 1, "leak-1");
    s.send(&o, with(digests(&salt)));
    let f = failed(&s.until_final(&o).await).clone();
    assert_eq!(f.reason, "CrashLoopBackOff");
    assert!(f.message.contains("pod <masked>-"), "{}", f.message);
    assert!(!f.message.contains(secret), "{}", f.message);

    // Digests under one salt presented with another match nothing.
    let mut wrong = digests(&salt);
    wrong.salt = b"another-salt".to_vec();
    let o = op("leak.ns1", 2, "leak-2");
    s.send(&o, with(wrong));
    let f = failed(&s.until_final(&o).await).clone();
    assert!(f.message.contains(secret), "{}", f.message);
    agent.stop().await;
}

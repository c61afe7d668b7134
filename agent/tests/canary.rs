//! In-cluster canary steps (`ApplyCanary`) through the agent runtime on the simulated
//! cluster, against the fake coordinator ([`common`]): the events of a step, a weight
//! change, promotion by the next deploy, abort by a rollback, a crashing canary, an
//! abort of a running step, and a replayed step.

mod common;

use common::*;
use convoy_agent::backend::{Backend, ObjectRef};
use convoy_agent::runtime::{Credentials, Token};
use convoy_proto::v1 as pb;
use pb::agent_event::Event;

const RELEASE: &str = "app1.ns1";

fn canary(manifests: Vec<pb::Manifest>, weight: u32, deadline_s: u32, window_s: u32) -> pb::command::Command {
    let apply = match apply(manifests, deadline_s, window_s) {
        pb::command::Command::Apply(a) => a,
        _ => unreachable!("apply() builds an Apply"),
    };
    pb::command::Command::Canary(pb::ApplyCanary {
        apply: Some(apply),
        weight_percent: weight,
    })
}

fn rollback(target: u64) -> pb::command::Command {
    pb::command::Command::Rollback(pb::RollbackToRevision {
        target_revision: target,
        health: Some(pb::HealthPolicy {
            progress_deadline_seconds: 60,
            min_ready_window_seconds: 0,
        }),
    })
}

fn deploy(name: &str) -> ObjectRef {
    ObjectRef {
        api_version: "apps/v1".into(),
        kind: "Deployment".into(),
        namespace: Some("ns1".into()),
        name: name.into(),
    }
}

fn cm(name: &str) -> ObjectRef {
    ObjectRef {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        namespace: Some("ns1".into()),
        name: name.into(),
    }
}

/// `web` mounting `web-conf`.
fn web(behavior: &str, image: &str) -> pb::Manifest {
    pb::Manifest {
        source: "app1/templates/web.yaml".into(),
        content: format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web}}\nspec:\n  replicas: 4\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata:\n      labels: {{app: web}}\n      annotations: {{sim.convoy.dev/behavior: \"{behavior}\"}}\n    spec:\n      volumes: [{{name: conf, configMap: {{name: web-conf}}}}]\n      containers: [{{name: app, image: \"{image}\"}}]\n"
        ),
    }
}

fn last_is_healthy(events: &[Event]) -> bool {
    matches!(events.last(), Some(Event::Healthy(_)))
}

#[tokio::test]
async fn canary_steps_then_promotion_then_a_rollback_removes_another_canary() {
    let mut fake = Fake::start(0).await;
    let agent = start_agent(config(&fake.url(), Credentials::Token(Token::new(TOKEN)))).await;
    let mut s = fake.session().await;
    let rev1 = || vec![web("healthy,after=100ms", "web:1"), config_map("web-conf", "one")];
    let rev2 = || vec![web("healthy,after=100ms", "web:2"), config_map("web-conf", "two")];

    let first = op(RELEASE, 1, "deploy-1");
    s.send(&first, apply(rev1(), 60, 0));
    assert!(last_is_healthy(&s.until_final(&first).await));
    let primary = agent.sim.object(&deploy("web")).unwrap();

    // Step 1 at 25 %: Accepted, Applied (the canary objects), progress, Healthy.
    let step1 = op(RELEASE, 2, "deploy-2~canary-1");
    s.send(&step1, canary(rev2(), 25, 60, 0));
    let events = s.until_final(&step1).await;
    assert_eq!(events[0], Event::Accepted(pb::Accepted { replay: false }));
    assert_eq!(
        actions(&events[1]),
        [
            ("web-conf-canary".to_string(), pb::ObjectAction::Created),
            ("web-canary".to_string(), pb::ObjectAction::Created)
        ]
    );
    assert!(
        events.iter().any(|e| matches!(e, Event::Progress(_))),
        "{events:?}"
    );
    assert!(last_is_healthy(&events), "{events:?}");
    assert_eq!(
        agent.sim.object(&deploy("web-canary")).unwrap()["spec"]["replicas"],
        2
    );
    assert_eq!(agent.sim.object(&deploy("web")).unwrap(), primary);
    // Nothing in the history: revision 1 is still what the cluster runs.
    let deployed = agent.sim.deployed().await.unwrap();
    assert_eq!((deployed[0].revision, deployed[0].kept.clone()), (1, vec![1]));

    // The same step again (a replay after a reconnect): not run twice.
    s.send(&step1, canary(rev2(), 25, 60, 0));
    assert!(last_is_healthy(&s.until_final(&step1).await));

    // Step 2 at 50 %: rescaled.
    let step2 = op(RELEASE, 2, "deploy-2~canary-2");
    s.send(&step2, canary(rev2(), 50, 60, 0));
    assert!(last_is_healthy(&s.until_final(&step2).await));
    assert_eq!(
        agent.sim.object(&deploy("web-canary")).unwrap()["spec"]["replicas"],
        4
    );

    // Promotion: revision 2 deployed; once healthy, the canary is gone.
    let promote = op(RELEASE, 2, "deploy-2");
    s.send(&promote, apply(rev2(), 60, 0));
    assert!(last_is_healthy(&s.until_final(&promote).await));
    assert_eq!(agent.sim.objects_of(RELEASE), [deploy("web"), cm("web-conf")]);
    assert_eq!(
        agent.sim.object(&deploy("web")).unwrap()["spec"]["template"]["spec"]["containers"][0]["image"],
        "web:2"
    );

    // Another canary (revision 3), aborted by a rollback to 2 (recorded as 4): the
    // canary objects go at once and are reported pruned; the primary stays on web:2.
    let rev3 = || {
        vec![
            web("healthy,after=100ms", "web:3"),
            config_map("web-conf", "three"),
        ]
    };
    let step = op(RELEASE, 3, "deploy-3~canary-1");
    s.send(&step, canary(rev3(), 10, 60, 0));
    assert!(last_is_healthy(&s.until_final(&step).await));
    let primary = agent.sim.object(&deploy("web")).unwrap();
    assert!(agent.sim.object(&deploy("web-canary")).is_some());
    let back = op(RELEASE, 4, "rollback-4");
    s.send(&back, rollback(2));
    let events = s.until_final(&back).await;
    assert!(last_is_healthy(&events), "{events:?}");
    let applied = events.iter().find(|e| matches!(e, Event::Applied(_))).unwrap();
    let pruned: Vec<String> = actions(applied)
        .into_iter()
        .filter(|(_, a)| *a == pb::ObjectAction::Pruned)
        .map(|(n, _)| n)
        .collect();
    assert_eq!(pruned, ["web-canary", "web-conf-canary"]);
    assert_eq!(agent.sim.objects_of(RELEASE), [deploy("web"), cm("web-conf")]);
    assert_eq!(agent.sim.object(&deploy("web")).unwrap()["spec"], primary["spec"]);
    agent.stop().await;
}

#[tokio::test]
async fn a_crashing_canary_fails_naming_it_and_a_failed_deploy_keeps_the_canary() {
    let mut fake = Fake::start(0).await;
    let agent = start_agent(config(&fake.url(), Credentials::Token(Token::new(TOKEN)))).await;
    let mut s = fake.session().await;
    let first = op(RELEASE, 1, "deploy-1");
    s.send(
        &first,
        apply(vec![deployment("web", 2, "healthy,after=100ms", "web:1")], 60, 0),
    );
    assert!(last_is_healthy(&s.until_final(&first).await));

    let step = op(RELEASE, 2, "deploy-2~canary-1");
    s.send(
        &step,
        canary(
            vec![deployment("web", 2, "crashloop,after=200ms", "web:2")],
            50,
            60,
            5,
        ),
    );
    let events = s.until_final(&step).await;
    let f = failed(&events);
    assert_eq!(f.reason, "CrashLoopBackOff");
    assert_eq!(f.object.as_ref().unwrap().name, "web-canary");
    assert!(f.message.contains("web-canary"), "{}", f.message);

    // A render without a Deployment cannot run a canary.
    let none = op(RELEASE, 3, "deploy-3~canary-1");
    s.send(&none, canary(vec![config_map("cfg", "a")], 50, 60, 0));
    assert_eq!(failed(&s.until_final(&none).await).reason, "NoCanaryWorkload");

    // A deploy that fails leaves the canary for the rollback to remove.
    let bad = op(RELEASE, 2, "deploy-2");
    s.send(
        &bad,
        apply(
            vec![deployment("web", 2, "crashloop,after=200ms", "web:2")],
            60,
            0,
        ),
    );
    assert_eq!(failed(&s.until_final(&bad).await).reason, "CrashLoopBackOff");
    assert!(agent.sim.object(&deploy("web-canary")).is_some());
    let back = op(RELEASE, 4, "rollback-4");
    s.send(&back, rollback(1));
    assert!(last_is_healthy(&s.until_final(&back).await));
    assert!(agent.sim.object(&deploy("web-canary")).is_none());
    agent.stop().await;
}

#[tokio::test]
async fn abort_stops_a_running_canary_step() {
    let mut fake = Fake::start(0).await;
    let agent = start_agent(config(&fake.url(), Credentials::Token(Token::new(TOKEN)))).await;
    let mut s = fake.session().await;
    let step = op(RELEASE, 1, "deploy-1~canary-1");
    s.send(
        &step,
        canary(vec![deployment("web", 1, "never-ready", "web:1")], 50, 600, 0),
    );
    loop {
        if matches!(s.event(&step).await, Event::Applied(_)) {
            break;
        }
    }
    s.send(
        &step,
        pb::command::Command::Abort(pb::Abort {
            reason: "operator abort".into(),
        }),
    );
    let events = s.until_final(&step).await;
    assert_eq!(
        events.last(),
        Some(&Event::Aborted(pb::Aborted {
            reason: "operator abort".into()
        }))
    );
    // The lock was released: the next command runs.
    let next = op(RELEASE, 1, "deploy-1");
    s.send(
        &next,
        apply(vec![deployment("web", 1, "healthy,after=100ms", "web:1")], 60, 0),
    );
    assert!(last_is_healthy(&s.until_final(&next).await));
    assert!(agent.sim.object(&deploy("web-canary")).is_none(), "promoted");
    agent.stop().await;
}

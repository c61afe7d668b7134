//! In-cluster blue/green (`ApplyRevision.blue_green`, `SwitchSlot`) through the agent
//! runtime on the simulated cluster, against the fake coordinator ([`common`]):
//! staging into blue beside a release that ran without slots, a switch, retirement of
//! the old objects after the window, green beside blue, a rollback that switches back,
//! and the switches that are refused.

mod common;

use std::time::Duration;

use common::*;
use convoy_agent::backend::{Backend, ObjectRef};
use convoy_agent::runtime::{Credentials, Token, wire};
use convoy_proto::v1 as pb;
use pb::agent_event::Event;

const RELEASE: &str = "app1.ns1";

fn obj(kind: &str, name: &str) -> ObjectRef {
    ObjectRef {
        api_version: if kind == "Deployment" { "apps/v1" } else { "v1" }.into(),
        kind: kind.into(),
        namespace: Some("ns1".into()),
        name: name.into(),
    }
}

/// `web` mounting `web-conf`, and the Service `web` selecting its pods.
fn render(image: &str, conf: &str) -> Vec<pb::Manifest> {
    vec![
        pb::Manifest {
            source: "app1/templates/web.yaml".into(),
            content: format!(
                "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web}}\nspec:\n  replicas: 2\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata:\n      labels: {{app: web}}\n      annotations: {{sim.convoy.dev/behavior: \"healthy,after=100ms\"}}\n    spec:\n      volumes: [{{name: conf, configMap: {{name: web-conf}}}}]\n      containers: [{{name: app, image: \"{image}\"}}]\n"
            ),
        },
        config_map("web-conf", conf),
        pb::Manifest {
            source: "app1/templates/svc.yaml".into(),
            content: "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {selector: {app: web}, ports: [{port: 80}]}\n".into(),
        },
    ]
}

fn blue_green(manifests: Vec<pb::Manifest>) -> pb::command::Command {
    match apply(manifests, 60, 0) {
        pb::command::Command::Apply(mut a) => {
            a.blue_green = Some(pb::BlueGreen {
                preview_service: true,
            });
            pb::command::Command::Apply(a)
        }
        _ => unreachable!("apply() builds an Apply"),
    }
}

fn switch(retire_after_seconds: u32) -> pb::command::Command {
    pb::command::Command::SwitchSlot(pb::SwitchSlot { retire_after_seconds })
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

fn last_is_healthy(events: &[Event]) -> bool {
    matches!(events.last(), Some(Event::Healthy(_)))
}

fn selector_slot(agent: &Agent, name: &str) -> serde_json::Value {
    agent.sim.object(&obj("Service", name)).expect("the Service")["spec"]["selector"]["convoy.dev/slot"]
        .clone()
}

async fn hello_slot(agent: &Agent) -> (u64, String, bool) {
    let d = wire::deployed_to_wire(&agent.sim.deployed().await.unwrap()[0]);
    (d.revision, d.slot, d.switched)
}

#[tokio::test]
async fn blue_green_stage_switch_retire_then_roll_back_by_switching_back() {
    let mut fake = Fake::start(0).await;
    let mut cfg = config(&fake.url(), Credentials::Token(Token::new(TOKEN)));
    cfg.retire_interval = Duration::from_millis(100);
    let agent = start_agent(cfg).await;
    let mut s = fake.session().await;

    let first = op(RELEASE, 1, "deploy-1");
    s.send(&first, apply(render("web:1", "one"), 60, 0));
    assert!(last_is_healthy(&s.until_final(&first).await));
    assert_eq!(hello_slot(&agent).await, (1, String::new(), false));

    // Revision 2 staged into blue: nothing pruned, the Service as rendered.
    let second = op(RELEASE, 2, "deploy-2");
    s.send(&second, blue_green(render("web:2", "two")));
    let events = s.until_final(&second).await;
    assert!(last_is_healthy(&events), "{events:?}");
    let applied = events.iter().find(|e| matches!(e, Event::Applied(_))).unwrap();
    let mut created: Vec<String> = actions(applied)
        .into_iter()
        .filter(|(_, a)| *a == pb::ObjectAction::Created)
        .map(|(n, _)| n)
        .collect();
    created.sort();
    assert_eq!(created, ["web-blue", "web-conf-blue", "web-preview"]);
    assert!(
        !actions(applied)
            .iter()
            .any(|(_, a)| *a == pb::ObjectAction::Pruned)
    );
    assert!(agent.sim.object(&obj("Deployment", "web")).is_some());
    assert!(selector_slot(&agent, "web").is_null());
    assert_eq!(selector_slot(&agent, "web-preview"), "blue");
    assert_eq!(hello_slot(&agent).await, (2, "blue".into(), false));

    // A switch for another revision than the current one is refused.
    let stale = op(RELEASE, 1, "switch-1");
    s.send(&stale, switch(1));
    assert_eq!(
        failed(&s.until_final(&stale).await).reason,
        "RevisionNotInHistory"
    );

    // The switch: Applied (the Service configured), then Healthy at once.
    let sw2 = op(RELEASE, 2, "switch-2");
    s.send(&sw2, switch(1));
    let events = s.until_final(&sw2).await;
    assert_eq!(events[0], Event::Accepted(pb::Accepted { replay: false }));
    assert_eq!(timeline(&events), ["applied", "healthy"], "{events:?}");
    assert_eq!(
        actions(&events[1]),
        [("web".to_string(), pb::ObjectAction::Configured)]
    );
    assert_eq!(selector_slot(&agent, "web"), "blue");
    assert_eq!(hello_slot(&agent).await, (2, "blue".into(), true));
    // The old objects serve until the window ends, then go.
    assert!(agent.sim.object(&obj("Deployment", "web")).is_some());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while agent.sim.object(&obj("Deployment", "web")).is_some() {
        assert!(tokio::time::Instant::now() < deadline, "web was not retired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(agent.sim.object(&obj("ConfigMap", "web-conf")).is_none());
    assert!(agent.sim.object(&obj("Deployment", "web-blue")).is_some());

    // Revision 3 into green beside blue; switched with a long window.
    let third = op(RELEASE, 3, "deploy-3");
    s.send(&third, blue_green(render("web:3", "three")));
    assert!(last_is_healthy(&s.until_final(&third).await));
    assert!(agent.sim.object(&obj("Deployment", "web-green")).is_some());
    assert_eq!(selector_slot(&agent, "web"), "blue");
    let sw3 = op(RELEASE, 3, "switch-3");
    s.send(&sw3, switch(600));
    assert!(last_is_healthy(&s.until_final(&sw3).await));
    assert_eq!(selector_slot(&agent, "web"), "green");

    // Roll back to 2 (recorded as 4): the Service selects blue again, green goes.
    let blue = agent.sim.object(&obj("Deployment", "web-blue")).unwrap();
    let back = op(RELEASE, 4, "rollback-4");
    s.send(&back, rollback(2));
    let events = s.until_final(&back).await;
    assert!(last_is_healthy(&events), "{events:?}");
    let applied = events.iter().find(|e| matches!(e, Event::Applied(_))).unwrap();
    let mut pruned: Vec<String> = actions(applied)
        .into_iter()
        .filter(|(_, a)| *a == pb::ObjectAction::Pruned)
        .map(|(n, _)| n)
        .collect();
    pruned.sort();
    assert_eq!(pruned, ["web-conf-green", "web-green"]);
    assert_eq!(selector_slot(&agent, "web"), "blue");
    assert_eq!(agent.sim.object(&obj("Deployment", "web-blue")).unwrap(), blue);
    assert_eq!(hello_slot(&agent).await, (4, "blue".into(), true));

    // A switch of a revision applied without slots.
    let plain = op(RELEASE, 5, "deploy-5");
    s.send(&plain, apply(render("web:5", "five"), 60, 0));
    assert!(last_is_healthy(&s.until_final(&plain).await));
    let sw5 = op(RELEASE, 5, "switch-5");
    s.send(&sw5, switch(0));
    assert_eq!(failed(&s.until_final(&sw5).await).reason, "NotBlueGreen");
    // Going back to no slots pruned both slots' objects.
    assert!(agent.sim.object(&obj("Deployment", "web-blue")).is_none());
    assert!(agent.sim.object(&obj("Service", "web-preview")).is_none());
    assert!(selector_slot(&agent, "web").is_null());
    agent.stop().await;
}

//! Helm hooks through the agent runtime on the simulated cluster, against the fake
//! coordinator ([`common`]): when each event runs relative to the apply and to
//! healthy, what a failing hook does to the command, and rollback hooks.

mod common;

use common::*;
use convoy_agent::backend::{Backend, ObjectRef};
use convoy_agent::hooks::HookEvent;
use convoy_agent::runtime::{Credentials, Token};
use convoy_agent::sim::HookRun;
use convoy_proto::v1 as pb;
use pb::agent_event::Event;

const RELEASE: &str = "app1.ns1";

/// A Job hook; `extra` adds annotations (`"helm.sh/hook-weight": "1"`).
fn job_hook(name: &str, events: &str, behavior: &str, extra: &str) -> pb::Manifest {
    pb::Manifest {
        source: format!("app1/templates/{name}.yaml"),
        content: format!(
            "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: {name}\n  annotations: {{helm.sh/hook: \"{events}\"{extra}}}\nspec:\n  backoffLimit: 0\n  template:\n    metadata:\n      annotations: {{sim.convoy.dev/behavior: \"{behavior}\"}}\n    spec:\n      restartPolicy: Never\n      containers: [{{name: migrate, image: \"migrate:1\"}}]\n"
        ),
    }
}

fn apply_with_hooks(
    manifests: Vec<pb::Manifest>,
    hooks: Vec<pb::Manifest>,
    deadline_s: u32,
) -> pb::command::Command {
    match apply(manifests, deadline_s, 0) {
        pb::command::Command::Apply(mut a) => {
            a.hooks = hooks;
            pb::command::Command::Apply(a)
        }
        other => other,
    }
}

fn job(name: &str) -> ObjectRef {
    ObjectRef {
        api_version: "batch/v1".into(),
        kind: "Job".into(),
        namespace: Some("ns1".into()),
        name: name.into(),
    }
}

fn web() -> ObjectRef {
    ObjectRef {
        api_version: "apps/v1".into(),
        kind: "Deployment".into(),
        namespace: Some("ns1".into()),
        name: "web".into(),
    }
}

fn run(revision: u64, event: HookEvent, name: &str, applied: Option<u64>, succeeded: bool) -> HookRun {
    HookRun {
        revision,
        event,
        object: job(name),
        applied,
        succeeded,
    }
}

#[tokio::test]
async fn install_then_upgrade_hooks_run_before_the_apply_and_after_healthy_in_weight_order() {
    let mut fake = Fake::start(0).await;
    let agent = start_agent(config(&fake.url(), Credentials::Token(Token::new(TOKEN)))).await;
    let mut s = fake.session().await;
    let hooks = || {
        vec![
            job_hook("migrate", "pre-install,pre-upgrade", "succeed,after=100ms", ""),
            job_hook(
                "backup",
                "pre-upgrade",
                "succeed,after=100ms",
                ", helm.sh/hook-weight: \"-1\"",
            ),
            job_hook("notify", "post-install,post-upgrade", "succeed,after=100ms", ""),
            job_hook("cleanup", "pre-delete", "succeed", ""),
        ]
    };

    let first = op(RELEASE, 1, "deploy-1");
    let web1 = deployment("web", 2, "healthy,after=200ms", "web:1");
    s.send(&first, apply_with_hooks(vec![web1], hooks(), 60));
    let events = s.until_final(&first).await;
    assert_eq!(
        timeline(&events),
        [
            "running hook pre-install job/migrate",
            "hook pre-install job/migrate succeeded",
            "applied",
            "running hook post-install job/notify",
            "hook post-install job/notify succeeded",
            "healthy"
        ],
        "{events:?}"
    );

    let second = op(RELEASE, 2, "deploy-2");
    let web2 = deployment("web", 2, "healthy,after=200ms", "web:2");
    s.send(&second, apply_with_hooks(vec![web2], hooks(), 60));
    let events = s.until_final(&second).await;
    assert_eq!(
        timeline(&events),
        [
            "running hook pre-upgrade job/backup",
            "hook pre-upgrade job/backup succeeded",
            "running hook pre-upgrade job/migrate",
            "hook pre-upgrade job/migrate succeeded",
            "applied",
            "running hook post-upgrade job/notify",
            "hook post-upgrade job/notify succeeded",
            "healthy"
        ],
        "{events:?}"
    );

    // The cluster saw the pre hooks before the revision was applied, the post hooks
    // after; the pre-delete hook never ran.
    assert_eq!(
        agent.sim.hooks_run(RELEASE),
        [
            run(1, HookEvent::PreInstall, "migrate", None, true),
            run(1, HookEvent::PostInstall, "notify", Some(1), true),
            run(2, HookEvent::PreUpgrade, "backup", Some(1), true),
            run(2, HookEvent::PreUpgrade, "migrate", Some(1), true),
            run(2, HookEvent::PostUpgrade, "notify", Some(2), true),
        ]
    );
    // Hooks are not the release's objects: neither applied, nor pruned, nor watched.
    assert_eq!(agent.sim.objects_of(RELEASE), [web()]);
    // before-hook-creation (the default) replaced each one: one object per hook.
    assert_eq!(
        agent.sim.hook_objects(RELEASE),
        [job("backup"), job("migrate"), job("notify")]
    );
    agent.stop().await;
}

#[tokio::test]
async fn a_failing_pre_upgrade_hook_fails_the_command_and_nothing_is_applied() {
    let mut fake = Fake::start(0).await;
    let agent = start_agent(config(&fake.url(), Credentials::Token(Token::new(TOKEN)))).await;
    let mut s = fake.session().await;
    let first = op(RELEASE, 1, "deploy-1");
    s.send(
        &first,
        apply(vec![deployment("web", 1, "healthy,after=100ms", "web:1")], 60, 0),
    );
    assert!(matches!(
        s.until_final(&first).await.last(),
        Some(Event::Healthy(_))
    ));

    let second = op(RELEASE, 2, "deploy-2");
    let hooks = vec![
        job_hook(
            "migrate",
            "pre-upgrade",
            "fail,after=100ms",
            ", helm.sh/hook-delete-policy: hook-failed",
        ),
        job_hook("after", "pre-upgrade", "succeed", ", helm.sh/hook-weight: \"5\""),
    ];
    let web2 = deployment("web", 1, "healthy,after=100ms", "web:2");
    s.send(&second, apply_with_hooks(vec![web2], hooks, 60));
    let events = s.until_final(&second).await;
    assert!(
        !events.iter().any(|e| matches!(e, Event::Applied(_))),
        "{events:?}"
    );
    let f = failed(&events);
    assert_eq!(f.reason, "HookFailed");
    assert!(
        f.message
            .starts_with("hook pre-upgrade job/migrate: job/ns1/migrate failed"),
        "{}",
        f.message
    );
    assert_eq!(f.object.as_ref().unwrap().name, "migrate");

    // Revision 1 still runs; the later hook never started; hook-failed removed the Job.
    let live = agent.sim.object(&web()).unwrap();
    assert_eq!(
        live["spec"]["template"]["spec"]["containers"][0]["image"],
        "web:1"
    );
    assert_eq!(
        agent.sim.hooks_run(RELEASE),
        [run(2, HookEvent::PreUpgrade, "migrate", Some(1), false)]
    );
    assert!(agent.sim.hook_objects(RELEASE).is_empty());
    agent.stop().await;
}

#[tokio::test]
async fn a_failing_post_install_hook_fails_the_command_after_the_rollout() {
    let mut fake = Fake::start(0).await;
    let agent = start_agent(config(&fake.url(), Credentials::Token(Token::new(TOKEN)))).await;
    let mut s = fake.session().await;
    let first = op(RELEASE, 1, "deploy-1");
    let hooks = vec![job_hook("smoke", "post-install", "fail,after=100ms", "")];
    let web1 = deployment("web", 1, "healthy,after=100ms", "web:1");
    s.send(&first, apply_with_hooks(vec![web1], hooks, 60));
    let events = s.until_final(&first).await;
    assert_eq!(
        timeline(&events),
        [
            "applied",
            "running hook post-install job/smoke",
            "hook post-install job/smoke failed",
            "failed HookFailed"
        ]
    );
    // The default delete policy keeps a failed hook for inspection.
    assert_eq!(agent.sim.hook_objects(RELEASE), [job("smoke")]);
    agent.stop().await;
}

/// Reads `op`'s events until a post hook starts running.
async fn until_post_hook_runs(s: &mut Session, op: &pb::OperationRef) {
    loop {
        match s.event(op).await {
            Event::Progress(p)
                if p.objects
                    .iter()
                    .any(|o| o.reason.starts_with("running hook post-")) =>
            {
                return;
            }
            e @ (Event::Healthy(_) | Event::Failed(_)) => panic!("ended before a post hook ran: {e:?}"),
            _ => {}
        }
    }
}

/// The release's current revision and whether the cluster's history calls it healthy.
async fn history(agent: &Agent) -> (u64, bool) {
    let deployed = agent.sim.deployed().await.unwrap();
    assert_eq!(deployed.len(), 1, "{deployed:?}");
    (deployed[0].revision, deployed[0].healthy)
}

#[tokio::test]
async fn the_history_calls_a_revision_healthy_only_once_its_post_hooks_succeeded() {
    let mut fake = Fake::start(0).await;
    let agent = start_agent(config(&fake.url(), Credentials::Token(Token::new(TOKEN)))).await;
    let mut s = fake.session().await;

    // The rollout is healthy, then the post-install hook fails: not healthy, before
    // (while the hook runs) or after.
    let first = op(RELEASE, 1, "deploy-1");
    let hooks = vec![job_hook(
        "smoke",
        "post-install,post-upgrade",
        "fail,after=500ms",
        "",
    )];
    let web1 = deployment("web", 1, "healthy,after=100ms", "web:1");
    s.send(&first, apply_with_hooks(vec![web1], hooks, 60));
    until_post_hook_runs(&mut s, &first).await;
    assert_eq!(
        history(&agent).await,
        (1, false),
        "healthy while its post hook runs"
    );
    assert_eq!(failed(&s.until_final(&first).await).reason, "HookFailed");
    assert_eq!(history(&agent).await, (1, false));
    // ...and the next hello says so, as the failed command did.
    let port = fake.port;
    drop(s);
    drop(fake);
    let mut fake = Fake::start(port).await;
    let mut s = fake.session().await;
    let deployed: Vec<(u64, bool)> = s.hello.deployed.iter().map(|d| (d.revision, d.healthy)).collect();
    assert_eq!(deployed, [(1, false)]);

    // A post-upgrade hook that succeeds: healthy once it has, not before.
    let second = op(RELEASE, 2, "deploy-2");
    let hooks = vec![job_hook(
        "smoke",
        "post-install,post-upgrade",
        "succeed,after=500ms",
        "",
    )];
    let web2 = deployment("web", 1, "healthy,after=100ms", "web:2");
    s.send(&second, apply_with_hooks(vec![web2], hooks, 60));
    until_post_hook_runs(&mut s, &second).await;
    assert_eq!(
        history(&agent).await,
        (2, false),
        "healthy while its post hook runs"
    );
    assert!(matches!(
        s.until_final(&second).await.last(),
        Some(Event::Healthy(_))
    ));
    assert_eq!(history(&agent).await, (2, true));
    agent.stop().await;
}

#[tokio::test]
async fn a_hook_that_never_completes_fails_at_the_progress_deadline_and_abort_stops_one() {
    let mut fake = Fake::start(0).await;
    let agent = start_agent(config(&fake.url(), Credentials::Token(Token::new(TOKEN)))).await;
    let mut s = fake.session().await;
    let first = op(RELEASE, 1, "deploy-1");
    let hooks = vec![job_hook("stuck", "pre-install", "never-ready", "")];
    let web1 = deployment("web", 1, "healthy,after=100ms", "web:1");
    s.send(&first, apply_with_hooks(vec![web1.clone()], hooks, 1));
    let f = failed(&s.until_final(&first).await).clone();
    assert_eq!(f.reason, "HookFailed");
    assert!(
        f.message
            .contains("did not complete within the progress deadline (1s)"),
        "{}",
        f.message
    );

    let second = op(RELEASE, 2, "deploy-2");
    let hooks = vec![job_hook("stuck", "pre-install", "never-ready", "")];
    s.send(&second, apply_with_hooks(vec![web1], hooks, 600));
    // Wait until the hook runs, then abort.
    loop {
        if let Event::Progress(p) = s.event(&second).await
            && p.objects.iter().any(|o| o.reason.starts_with("running hook"))
        {
            break;
        }
    }
    s.send(
        &second,
        pb::command::Command::Abort(pb::Abort {
            reason: "INC-1".into(),
        }),
    );
    let events = s.until_final(&second).await;
    assert!(matches!(events.last(), Some(Event::Aborted(_))), "{events:?}");
    assert!(agent.sim.objects_of(RELEASE).is_empty());
    agent.stop().await;
}

#[tokio::test]
async fn rollback_runs_the_rollback_hooks_of_the_revision_it_restores() {
    let mut fake = Fake::start(0).await;
    let agent = start_agent(config(&fake.url(), Credentials::Token(Token::new(TOKEN)))).await;
    let mut s = fake.session().await;
    let rev1_hooks = vec![
        job_hook("restore-db", "pre-rollback", "succeed,after=100ms", ""),
        job_hook(
            "announce",
            "post-rollback",
            "succeed,after=100ms",
            ", helm.sh/hook-delete-policy: hook-succeeded",
        ),
    ];
    let rev2_hooks = vec![job_hook("other", "pre-rollback,post-rollback", "succeed", "")];
    for (rev, image, hooks) in [(1, "web:1", rev1_hooks), (2, "web:2", rev2_hooks)] {
        let o = op(RELEASE, rev, &format!("deploy-{rev}"));
        let w = deployment("web", 1, "healthy,after=100ms", image);
        s.send(&o, apply_with_hooks(vec![w], hooks, 60));
        assert!(matches!(s.until_final(&o).await.last(), Some(Event::Healthy(_))));
    }
    assert!(
        agent.sim.hooks_run(RELEASE).is_empty(),
        "deploys run no rollback hooks"
    );

    let back = op(RELEASE, 3, "rollback-3");
    s.send(
        &back,
        pb::command::Command::Rollback(pb::RollbackToRevision {
            target_revision: 1,
            health: None,
        }),
    );
    let events = s.until_final(&back).await;
    assert_eq!(
        timeline(&events),
        [
            "running hook pre-rollback job/restore-db",
            "hook pre-rollback job/restore-db succeeded",
            "applied",
            "running hook post-rollback job/announce",
            "hook post-rollback job/announce succeeded",
            "healthy"
        ]
    );
    assert_eq!(
        agent.sim.hooks_run(RELEASE),
        [
            run(3, HookEvent::PreRollback, "restore-db", Some(2), true),
            run(3, HookEvent::PostRollback, "announce", Some(3), true),
        ]
    );
    // hook-succeeded deleted `announce`; the default kept `restore-db`.
    assert_eq!(agent.sim.hook_objects(RELEASE), [job("restore-db")]);

    // Revision 3 keeps revision 1's hooks: rolling back to it runs them again.
    let again = op(RELEASE, 4, "rollback-4");
    s.send(
        &again,
        pb::command::Command::Rollback(pb::RollbackToRevision {
            target_revision: 3,
            health: None,
        }),
    );
    assert!(matches!(
        s.until_final(&again).await.last(),
        Some(Event::Healthy(_))
    ));
    assert_eq!(agent.sim.hooks_run(RELEASE).len(), 4);
    agent.stop().await;
}

#[tokio::test]
async fn malformed_hooks_are_refused_before_anything_runs_and_dry_runs_run_none() {
    let mut fake = Fake::start(0).await;
    let agent = start_agent(config(&fake.url(), Credentials::Token(Token::new(TOKEN)))).await;
    let mut s = fake.session().await;
    let bad = vec![job_hook(
        "migrate",
        "pre-install",
        "succeed",
        ", helm.sh/hook-weight: \"first\"",
    )];
    let web1 = deployment("web", 1, "healthy,after=100ms", "web:1");
    let o = op(RELEASE, 1, "deploy-1");
    s.send(&o, apply_with_hooks(vec![web1.clone()], bad.clone(), 60));
    let f = failed(&s.until_final(&o).await).clone();
    assert_eq!(f.reason, "ApplyRefused");
    assert!(
        f.message
            .contains("hook job/migrate (app1/templates/migrate.yaml): annotation helm.sh/hook-weight"),
        "{}",
        f.message
    );
    assert!(agent.sim.objects_of(RELEASE).is_empty());

    let dry = |hooks| {
        pb::command::Command::DryRun(pb::DryRun {
            apply: Some(pb::ApplyRevision {
                namespace: "ns1".into(),
                manifests: vec![web1.clone()],
                hooks,
                ..Default::default()
            }),
        })
    };
    let d = op(RELEASE, 1, "dry-1");
    s.send(&d, dry(bad));
    assert_eq!(failed(&s.until_final(&d).await).reason, "ApplyRefused");
    let d = op(RELEASE, 1, "dry-2");
    s.send(&d, dry(vec![job_hook("migrate", "pre-install", "succeed", "")]));
    let events = s.until_final(&d).await;
    assert!(matches!(events.last(), Some(Event::DryRun(_))), "{events:?}");
    assert!(agent.sim.hooks_run(RELEASE).is_empty());
    agent.stop().await;
}

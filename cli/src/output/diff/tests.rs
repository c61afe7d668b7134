//! The diff's text and JSON forms from hand-built responses.

use convoy_proto::v1 as pb;
use pb::DiffAction as A;
use pb::DiffStatus as S;

use super::text::{self, Options};
use super::{ObjectCounts, Summary};

fn change(path: &str, before: &str, after: &str) -> pb::FieldChange {
    pb::FieldChange {
        path: path.into(),
        before: before.into(),
        after: after.into(),
        masked: false,
        truncated: false,
    }
}

fn masked(path: &str) -> pb::FieldChange {
    pb::FieldChange {
        path: path.into(),
        masked: true,
        ..Default::default()
    }
}

fn obj(api: &str, kind: &str, name: &str, action: A, changes: Vec<pb::FieldChange>) -> pb::ObjectDiff {
    pb::ObjectDiff {
        api_version: api.into(),
        kind: kind.into(),
        namespace: "shop".into(),
        name: name.into(),
        action: action as i32,
        changes,
        message: String::new(),
    }
}

fn ctx(name: &str, region: &str, status: S, message: &str, objects: Vec<pb::ObjectDiff>) -> pb::ContextDiff {
    pb::ContextDiff {
        context: name.into(),
        region: region.into(),
        status: status as i32,
        message: message.into(),
        objects,
    }
}

/// Every action and status, as the brief's example shows them.
fn fleet() -> pb::DiffReleaseResponse {
    let conf_before = serde_json::to_string("a = 1\nb = 2\nc = 3\nd = 4\ne = 5\nf = 6\n").unwrap();
    let conf_after = serde_json::to_string("a = 1\nb = 2\nc = 30\nd = 4\ne = 5\nf = 6\n").unwrap();
    let refused = pb::ObjectDiff {
        message: "owned by release other.shop".into(),
        ..obj("v1", "ConfigMap", "taken", A::Refused, vec![])
    };
    let east = vec![
        obj(
            "apps/v1",
            "Deployment",
            "web",
            A::Update,
            vec![
                change("spec.replicas", "2", "3"),
                change(
                    "spec.template.spec.containers[0].image",
                    "\"nginx:1.25\"",
                    "\"nginx:1.26\"",
                ),
            ],
        ),
        obj(
            "v1",
            "ConfigMap",
            "app-conf",
            A::Update,
            vec![change("data[\"app.conf\"]", &conf_before, &conf_after)],
        ),
        obj("v1", "Secret", "db", A::Update, vec![masked("data.password")]),
        obj("v1", "ConfigMap", "extra", A::Create, vec![]),
        obj("v1", "Service", "old", A::Delete, vec![]),
        refused,
        obj("v1", "ServiceAccount", "web", A::Unchanged, vec![]),
    ];
    let west = vec![
        obj("v1", "ConfigMap", "app-conf", A::Unchanged, vec![]),
        obj("apps/v1", "Deployment", "web", A::Unchanged, vec![]),
    ];
    pb::DiffReleaseResponse {
        release: "web.shop".into(),
        contexts: vec![
            ctx("east", "us-east1", S::Done, "", east),
            ctx("west", "us-west1", S::Done, "", west),
            ctx("south", "sa-east1", S::AgentOffline, "", vec![]),
            ctx("north", "", S::TimedOut, "no answer within 60s", vec![]),
            ctx(
                "central",
                "eu-central1",
                S::Failed,
                "apps/v1 Deployment shop/web: spec.replicas: Invalid value: -1",
                vec![],
            ),
        ],
    }
}

fn render(r: &pb::DiffReleaseResponse, opts: Options) -> String {
    let mut out = Vec::new();
    text::write(&mut out, r, opts).unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn every_action_and_status_in_text() {
    let want = "\
release web.shop: 1 of 5 contexts would change, 2 would fail a submit's preflight, 2 not compared
== east (us-east1): 3 to update, 1 to create, 1 to delete, 1 refused, 1 unchanged
~ apps/v1 Deployment shop/web
    spec.replicas: 2 -> 3
    spec.template.spec.containers[0].image: \"nginx:1.25\" -> \"nginx:1.26\"
~ v1 ConfigMap shop/app-conf
    data[\"app.conf\"]:
        a = 1
        b = 2
      - c = 3
      + c = 30
        d = 4
        e = 5
        ...
~ v1 Secret shop/db: data.password (value hidden)
+ v1 ConfigMap shop/extra (create)
- v1 Service shop/old (delete)
! v1 ConfigMap shop/taken: refused: owned by release other.shop
== west (us-west1): no changes (2 objects)
== south (sa-east1): agent offline: nothing compared
== north: timed out: no answer within 60s
== central (eu-central1): dry run failed, a submit would fail here: apps/v1 Deployment shop/web: spec.replicas: Invalid value: -1
";
    assert_eq!(render(&fleet(), Options::default()), want);
}

#[test]
fn unchanged_objects_are_listed_on_request() {
    let text = render(&fleet(), Options { show_unchanged: true });
    assert!(text.contains("\n= v1 ServiceAccount shop/web\n"), "{text}");
    assert!(
        text.contains("== west (us-west1): no changes (2 objects)\n= v1 ConfigMap shop/app-conf\n= apps/v1 Deployment shop/web\n"),
        "{text}"
    );
}

#[test]
fn summary_counts_and_names() {
    let s = Summary::of(&fleet());
    assert_eq!((s.contexts, s.changed, s.unchanged), (5, 1, 1));
    assert_eq!(
        s.objects,
        ObjectCounts {
            create: 1,
            update: 3,
            delete: 1,
            unchanged: 3,
            refused: 1,
            unknown: 0
        }
    );
    let failed: Vec<&str> = s.failed.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(failed, ["east", "central"]);
    let missing: Vec<&str> = s.not_compared.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(missing, ["south", "north"]);
}

fn one_change(c: pb::FieldChange) -> String {
    let r = pb::DiffReleaseResponse {
        release: "web.shop".into(),
        contexts: vec![ctx(
            "east",
            "us-east1",
            S::Done,
            "",
            vec![obj("v1", "ConfigMap", "conf", A::Update, vec![c])],
        )],
    };
    let text = render(&r, Options::default());
    // Past the headline, the context line and the object line.
    text.lines().skip(3).map(|l| format!("{l}\n")).collect()
}

#[test]
fn truncated_values_say_so_and_are_not_line_diffed() {
    let long = format!("\"{}", "x\\n".repeat(300));
    let text = one_change(pb::FieldChange {
        truncated: true,
        ..change("data.big", &long, "\"short\"")
    });
    assert!(
        text.ends_with("... -> \"short\" (truncated: longer than the agent reports)\n"),
        "{text}"
    );
    assert!(
        text.starts_with("    data.big: \"x\\nx\\n") && text.lines().count() == 1,
        "{text}"
    );
}

#[test]
fn a_masked_change_never_shows_values_even_if_sent() {
    let mut secretish = change("data.token", "\"canary-before\"", "\"canary-after\"");
    secretish.masked = true;
    let other = change("metadata.labels.tier", "\"a\"", "\"b\"");
    let r = pb::DiffReleaseResponse {
        release: "web.shop".into(),
        contexts: vec![ctx(
            "east",
            "",
            S::Done,
            "",
            vec![obj("v1", "Secret", "db", A::Update, vec![secretish, other])],
        )],
    };
    let text = render(&r, Options::default());
    assert!(text.contains("    data.token: (value hidden)\n"), "{text}");
    assert!(
        text.contains("    metadata.labels.tier: \"a\" -> \"b\"\n"),
        "{text}"
    );
    let json = super::super::json::diff(&r).to_string();
    assert!(
        !text.contains("canary") && !json.contains("canary"),
        "{text}\n{json}"
    );
}

#[test]
fn added_and_removed_fields_and_multi_line_values() {
    assert_eq!(
        one_change(change("spec.paused", "", "true")),
        "    spec.paused: (absent) -> true\n"
    );
    assert_eq!(
        one_change(change("data.x", "\"1\"", "")),
        "    data.x: \"1\" -> (absent)\n"
    );
    assert_eq!(
        one_change(change("data[\"new.conf\"]", "", "\"a\\nb\\n\"")),
        "    data[\"new.conf\"]:\n      + a\n      + b\n"
    );
    assert_eq!(
        one_change(change("data.x", "\"a\\nb\"", "\"a\\nb\\n\"")),
        "    data.x:\n      (newline at end added)\n"
    );
}

#[test]
fn control_characters_are_escaped() {
    let text = one_change(change("data.x", "\"a\\u001b[2Jb\\nc\"", "\"a\\nc\""));
    assert!(!text.contains('\x1b'), "{text:?}");
    assert!(text.contains("- a\\u{1b}[2Jb"), "{text}");
}

#[test]
fn a_change_too_large_to_diff_is_shown_whole() {
    let old: String = (0..1100).map(|i| format!("old {i}\n")).collect();
    let new: String = (0..1100).map(|i| format!("new {i}\n")).collect();
    let text = one_change(change(
        "data.big",
        &serde_json::to_string(&old).unwrap(),
        &serde_json::to_string(&new).unwrap(),
    ));
    assert!(text.contains("too many changed lines"), "{}", &text[..200]);
    assert_eq!(
        text.lines().filter(|l| l.starts_with("      - old")).count(),
        1100
    );
    assert_eq!(
        text.lines().filter(|l| l.starts_with("      + new")).count(),
        1100
    );
}

#[test]
fn json_shape() {
    let v = super::super::json::diff(&fleet());
    assert_eq!(v["release"], "web.shop");
    assert_eq!(
        v["summary"],
        serde_json::json!({
            "contexts": 5, "changed": 1, "unchanged": 1, "failed": 2, "notCompared": 2,
            "objects": {"create": 1, "update": 3, "delete": 1, "unchanged": 3, "refused": 1, "unknown": 0},
        })
    );
    let east = &v["contexts"][0];
    assert_eq!(
        (east["status"].as_str(), east["changed"].as_bool()),
        (Some("done"), Some(true))
    );
    assert_eq!(east["counts"]["update"], 3);
    let deploy = &east["objects"][0];
    assert_eq!(deploy["action"], "update");
    assert_eq!(
        deploy["changes"][0],
        serde_json::json!({"path": "spec.replicas", "before": 2, "after": 3, "masked": false, "truncated": false})
    );
    assert_eq!(deploy["changes"][1]["after"], "nginx:1.26");
    let secret = &east["objects"][2]["changes"][0];
    assert_eq!(
        secret,
        &serde_json::json!({"path": "data.password", "masked": true, "truncated": false})
    );
    let statuses: Vec<&str> = v["contexts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["done", "done", "agent_offline", "timed_out", "failed"]);
    assert_eq!(v["contexts"][1]["changed"], false);
    assert_eq!(east["objects"][5]["action"], "refused");
    assert_eq!(east["objects"][5]["message"], "owned by release other.shop");
}

#[test]
fn json_keeps_cut_values_as_text_and_leaves_absent_ones_out() {
    let r = pb::DiffReleaseResponse {
        release: "web.shop".into(),
        contexts: vec![ctx(
            "east",
            "",
            S::Done,
            "",
            vec![obj(
                "v1",
                "ConfigMap",
                "c",
                A::Update,
                vec![
                    pb::FieldChange {
                        truncated: true,
                        ..change("data.big", "\"abc", "")
                    },
                    change("data.n", "", "{\"k\":[1]}"),
                ],
            )],
        )],
    };
    let v = super::super::json::diff(&r);
    let changes = &v["contexts"][0]["objects"][0]["changes"];
    assert_eq!(changes[0]["before"], "\"abc");
    assert!(changes[0].get("after").is_none(), "{changes}");
    assert!(changes[1].get("before").is_none(), "{changes}");
    assert_eq!(changes[1]["after"], serde_json::json!({"k": [1]}));
}

#[test]
fn unknown_actions_and_statuses_are_shown_not_dropped() {
    let mut o = obj("v1", "Thing", "t", A::Update, vec![]);
    o.action = 42;
    let mut c = ctx("odd", "", S::Done, "", vec![]);
    c.status = 9;
    let r = pb::DiffReleaseResponse {
        release: "web.shop".into(),
        contexts: vec![ctx("east", "", S::Done, "", vec![o]), c],
    };
    let text = render(&r, Options::default());
    assert!(
        text.contains("== east: 1 unknown action\n? v1 Thing shop/t: action 42 unknown to this convoy\n"),
        "{text}"
    );
    assert!(
        text.contains("== odd: status 9 unknown to this convoy: nothing shown\n"),
        "{text}"
    );
    assert_eq!(super::super::json::diff(&r)["contexts"][1]["status"], "unknown");
}

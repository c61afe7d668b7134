use serde_json::{Value, json};

use super::*;

const REV: &str = "convoy.dev/revision";

/// `(path, before, after, masked)` of each change, for readable assertions.
fn summary(live: &Value, planned: &Value) -> Vec<(String, Option<Value>, Option<Value>, bool)> {
    changes(live, planned, REV)
        .into_iter()
        .map(|c| (c.path, c.before, c.after, c.masked))
        .collect()
}

fn shown(
    path: &str,
    before: Option<Value>,
    after: Option<Value>,
) -> (String, Option<Value>, Option<Value>, bool) {
    (path.to_string(), before, after, false)
}

fn masked(path: &str) -> (String, Option<Value>, Option<Value>, bool) {
    (path.to_string(), None, None, true)
}

#[test]
fn nested_changes_carry_values_and_server_fields_are_skipped() {
    let live = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "resourceVersion": "1", "generation": 1, "uid": "u1",
                     "creationTimestamp": "2026-01-01T00:00:00Z",
                     "annotations": {REV: "1"}, "managedFields": [{"manager": "a"}]},
        "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "app", "image": "a:1"}]}}},
        "status": {"replicas": 1}
    });
    let planned = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "resourceVersion": "2", "generation": 2, "uid": "u1",
                     "creationTimestamp": "2026-01-01T00:00:00Z",
                     "annotations": {REV: "2"}, "managedFields": [{"manager": "b"}]},
        "spec": {"replicas": 3, "template": {"spec": {"containers": [{"name": "app", "image": "a:2"}]}}},
        "status": {"replicas": 0}
    });
    assert_eq!(
        summary(&live, &planned),
        [
            shown("spec.replicas", Some(json!(1)), Some(json!(3))),
            shown(
                "spec.template.spec.containers[0].image",
                Some(json!("a:1")),
                Some(json!("a:2"))
            ),
        ]
    );
}

#[test]
fn an_added_field_has_no_before_and_odd_keys_are_quoted() {
    let live = json!({"kind": "ConfigMap", "data": {"a": "1"}});
    let planned = json!({"kind": "ConfigMap", "data": {"a": "1", "app.conf": "x=1"}});
    assert_eq!(
        summary(&live, &planned),
        [shown(r#"data["app.conf"]"#, None, Some(json!("x=1")))]
    );
}

#[test]
fn a_removed_field_has_no_after_even_when_it_was_null() {
    let live = json!({"kind": "ConfigMap", "data": {"a": "1", "b": null}, "immutable": false});
    let planned = json!({"kind": "ConfigMap", "data": {}});
    assert_eq!(
        summary(&live, &planned),
        [
            shown("data.a", Some(json!("1")), None),
            shown("data.b", Some(Value::Null), None),
            shown("immutable", Some(json!(false)), None),
        ]
    );
}

#[test]
fn an_array_that_changes_length_is_one_change_of_the_whole_array() {
    let live = json!({"spec": {"ports": [{"port": 80}]}});
    let planned = json!({"spec": {"ports": [{"port": 80}, {"port": 443}]}});
    assert_eq!(
        summary(&live, &planned),
        [shown(
            "spec.ports",
            Some(json!([{"port": 80}])),
            Some(json!([{"port": 80}, {"port": 443}]))
        )]
    );
}

#[test]
fn the_revision_annotation_alone_is_no_change_but_other_annotations_are() {
    let live = json!({"metadata": {"name": "x", "annotations": {REV: "1"}}});
    let planned = json!({"metadata": {"name": "x", "annotations": {REV: "2", "team": "a"}}});
    assert_eq!(
        summary(&live, &planned),
        [shown("metadata.annotations", None, Some(json!({"team": "a"})))]
    );
    let planned = json!({"metadata": {"name": "x", "annotations": {REV: "2"}}});
    assert!(summary(&live, &planned).is_empty());
}

#[test]
fn identical_objects_have_no_changes() {
    let v = json!({"kind": "Secret", "metadata": {"name": "x"}, "data": {"k": "dg=="}, "list": [1, 2]});
    assert!(changes(&v, &v, REV).is_empty());
}

#[test]
fn a_secrets_data_is_masked_old_and_new_but_its_other_fields_are_not() {
    let live = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "db", "labels": {"tier": "1"}},
        "type": "Opaque",
        "data": {"password": "b2xk", "gone": "eA=="}
    });
    let planned = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "db", "labels": {"tier": "2"}},
        "type": "Opaque",
        "data": {"password": "bmV3", "added": "eQ=="},
        "stringData": {"token": "plain"}
    });
    assert_eq!(
        summary(&live, &planned),
        [
            masked("data.added"),
            masked("data.gone"),
            masked("data.password"),
            shown("metadata.labels.tier", Some(json!("1")), Some(json!("2"))),
            masked("stringData"),
        ]
    );
}

#[test]
fn a_secrets_data_appearing_or_vanishing_whole_is_masked() {
    let live = json!({"kind": "Secret", "metadata": {"name": "db"}});
    let planned = json!({"kind": "Secret", "metadata": {"name": "db"}, "data": {"k": "dg=="}});
    assert_eq!(summary(&live, &planned), [masked("data")]);
    assert_eq!(summary(&planned, &live), [masked("data")]);
}

#[test]
fn a_secrets_data_bearing_annotations_are_masked_where_they_change() {
    let copy = r#"{"apiVersion":"v1","data":{"password":"b2xk"},"kind":"Secret"}"#;
    let live = json!({"kind": "Secret", "metadata": {"name": "db", "annotations": {
        "kubectl.kubernetes.io/last-applied-configuration": copy, "other-tool/original": copy, "team": "a"}}});
    let planned = json!({"kind": "Secret", "metadata": {"name": "db", "annotations": {
        "kubectl.kubernetes.io/last-applied-configuration": "x", "other-tool/original": "y", "team": "b"}}});
    assert_eq!(
        summary(&live, &planned),
        [
            masked(r#"metadata.annotations["kubectl.kubernetes.io/last-applied-configuration"]"#),
            masked(r#"metadata.annotations["other-tool/original"]"#),
            shown("metadata.annotations.team", Some(json!("a")), Some(json!("b"))),
        ]
    );
    // Annotations added as a whole: the map holds the copy, so the change is masked.
    let bare = json!({"kind": "Secret", "metadata": {"name": "db"}});
    assert_eq!(summary(&bare, &live), [masked("metadata.annotations")]);
    // Annotations without a copy of the data are shown even on a Secret.
    let plain = json!({"kind": "Secret", "metadata": {"name": "db", "annotations": {"team": "a"}}});
    assert_eq!(
        summary(&bare, &plain),
        [shown("metadata.annotations", None, Some(json!({"team": "a"})))]
    );
}

#[test]
fn the_same_fields_of_other_kinds_are_shown() {
    let copy = r#"{"data":{"k":"v"}}"#;
    let live = json!({"kind": "ConfigMap", "metadata": {"annotations": {
        "kubectl.kubernetes.io/last-applied-configuration": copy}}, "data": {"k": "v"}});
    let planned = json!({"kind": "ConfigMap", "data": {"k": "w"}});
    assert_eq!(
        summary(&live, &planned),
        [
            shown("data.k", Some(json!("v")), Some(json!("w"))),
            shown(
                "metadata",
                Some(json!({"annotations": {"kubectl.kubernetes.io/last-applied-configuration": copy}})),
                None
            ),
        ]
    );
}

#[test]
fn a_secret_that_is_not_an_object_on_one_side_is_masked_whole() {
    let live = json!({"kind": "Secret", "data": {"k": "dg=="}});
    assert_eq!(summary(&live, &json!("text")), [masked(".")]);
}

#[test]
fn debug_output_shows_sizes_not_values() {
    let c = FieldChange {
        path: "spec.x".into(),
        before: Some(json!("hunter2")),
        after: None,
        masked: false,
    };
    let debug = format!("{c:?}");
    assert!(!debug.contains("hunter2"), "{debug}");
    assert!(debug.contains("<9 bytes of JSON>"), "{debug}");
}

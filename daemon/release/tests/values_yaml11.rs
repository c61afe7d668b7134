//! Chart values in a release file (`spec.values`, `spec.valuesFiles`, `spec.contextValues`)
//! mean what they mean to Helm: YAML 1.1 scalars through JSON, so a release file and a
//! `helm -f` values file with the same text render the same chart identically.

mod common;

use std::collections::BTreeMap;

use common::*;
use convoy_release::*;
use serde_json::json;

/// A release whose values use YAML 1.1 spellings in all three places.
fn release(dir: &std::path::Path) -> Release {
    std::fs::write(
        dir.join("over.yaml"),
        "fromFile: on\nmode: 0644\nsize: 1_000\nkeys: {y: a, 'n': b}\n",
    )
    .expect("values file");
    let text = format!(
        "{MINIMAL}  values: {{enabled: yes, debug: Off, label: 'yes', tagged: !!str no, big: 1000000, when: 2024-01-02, none: ~}}\n  valuesFiles: [over.yaml]\n  contextValues:\n    dev-europe-west1-0: {{enabled: n}}\n"
    );
    Release::parse_in(&text, "release.yaml", dir).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn values_are_typed_as_helm_types_them() {
    let dir = tempfile::tempdir().expect("temp dir");
    let rel = release(dir.path());
    let reg = registry();
    let us = context_values(
        &rel,
        reg.get("dev-us-central1-0").expect("context"),
        &BTreeMap::new(),
    );
    assert_eq!(us["enabled"], json!(true), "`yes` is a boolean");
    assert_eq!(us["debug"], json!(false));
    assert_eq!(us["label"], json!("yes"), "quoted text stays text");
    assert_eq!(us["tagged"], json!("no"), "`!!str` keeps the text");
    assert_eq!(
        us["big"],
        json!(1_000_000.0),
        "numbers are float64, as after Helm's JSON step"
    );
    assert!(us["big"].is_f64());
    assert_eq!(us["when"], json!("2024-01-02"), "timestamps stay text");
    assert_eq!(us["none"], json!(null));
    assert_eq!(us["fromFile"], json!(true), "values files are read the same way");
    assert_eq!(us["mode"], json!(420.0), "0644 is a YAML 1.1 octal");
    assert_eq!(us["size"], json!(1000.0));
    assert_eq!(
        us["keys"],
        json!({"true": "a", "n": "b"}),
        "the plain key `y` is \"true\""
    );
    let eu = context_values(
        &rel,
        reg.get("dev-europe-west1-0").expect("context"),
        &BTreeMap::new(),
    );
    assert_eq!(eu["enabled"], json!(false), "contextValues too");
}

#[test]
fn values_helm_cannot_read_are_positioned_errors() {
    let values = |yaml: &str| errors(&format!("{MINIMAL}  values:\n{yaml}"));
    assert_eq!(
        values("    image: {tag: .inf}\n"),
        [
            "release.yaml:9:18: spec.values.image.tag: json: unsupported value: +Inf (chart values are read as Helm reads them, YAML 1.1 then JSON; quote the value to pass it as text)"
        ]
    );
    assert_eq!(
        values("    ~: 1\n"),
        [
            "release.yaml:9:5: spec.values: the key `~` is null in YAML, and values keys must be strings; quote it"
        ]
    );
    let e = values("    port: !!int http\n");
    assert!(
        e[0].starts_with("release.yaml:9:17: spec.values.port: cannot decode !!str `http` as a !!int"),
        "{e:#?}"
    );
    let e = errors(&format!(
        "{MINIMAL}  contextValues:\n    dev-europe-west1-0: {{merge: {{<<: 3}}}}\n"
    ));
    assert_eq!(
        e,
        [
            "release.yaml:9:38: spec.contextValues.dev-europe-west1-0.merge: `<<` (merge) needs a mapping or a list of mappings"
        ]
    );

    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("bad.yaml"), "a:\n  b: .nan\n").expect("values file");
    let text = format!("{MINIMAL}  valuesFiles: [bad.yaml]\n");
    let e = lines(&Release::parse_in(&text, "release.yaml", dir.path()).unwrap_err());
    let bad = dir.path().join("bad.yaml").display().to_string();
    assert!(
        e.iter()
            .any(|l| l.starts_with(&format!("{bad}:2:6: a.b: json: unsupported value: NaN"))),
        "{e:#?}"
    );
}

/// The chart sees Helm's types: `{{ .Values.enabled }}` prints `true`, not `yes`, and
/// `eq .Values.enabled true` holds.
#[test]
fn templates_see_helm_types() {
    let dir = tempfile::tempdir().expect("temp dir");
    let chart_dir = dir.path().join("chart");
    std::fs::create_dir_all(chart_dir.join("templates")).expect("mkdir");
    std::fs::write(
        chart_dir.join("Chart.yaml"),
        "apiVersion: v2\nname: app\nversion: 1.0.0\n",
    )
    .expect("write");
    std::fs::write(
        chart_dir.join("templates/cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\ndata:\n  enabled: \"{{ .Values.enabled }}\"\n  isTrue: \"{{ eq .Values.enabled true }}\"\n  mode: \"{{ .Values.mode }}\"\n  big: \"{{ .Values.big }}\"\n",
    )
    .expect("write");
    let rel = release(dir.path());
    let chart = convoy_chart::Chart::load(&chart_dir).expect("chart");
    let reg = registry();
    let out = render_context(
        &rel,
        &chart,
        reg.get("dev-us-central1-0").expect("context"),
        &BTreeMap::new(),
        1,
    )
    .expect("renders");
    let cm = &out.manifests[0].content;
    for want in [
        "enabled: \"true\"",
        "isTrue: \"true\"",
        "mode: \"420\"",
        "big: \"1e+06\"",
    ] {
        assert!(cm.contains(want), "missing {want:?} in\n{cm}");
    }
}

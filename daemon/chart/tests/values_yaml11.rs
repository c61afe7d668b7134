//! Values files are read as Helm reads them: YAML 1.1 scalars through a JSON round trip.
//!
//! Each `values_yaml11/cases/NAME.yaml` was run through Helm's own reader
//! (sigs.k8s.io/yaml v1.4.0, see `values_yaml11/oracle.go`); its result is in
//! `NAME.helm.json`, or its error in `NAME.helm-error.txt`. `parse_values` must give the
//! same map (every number a float64, as after Helm's JSON step) or fail on the same inputs.

use std::path::{Path, PathBuf};

use convoy_chart::values::parse_values;
use serde_json::Value as Json;

fn cases() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/values_yaml11/cases");
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("cases directory")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    out.sort();
    out
}

/// Helm's values hold float64 for every number; JSON text cannot say so, so numbers are
/// compared by value and the reader's output must be floats throughout.
fn same(ours: &Json, helm: &Json, path: &str, diffs: &mut Vec<String>) {
    match (ours, helm) {
        (Json::Number(a), Json::Number(b)) => {
            if !a.is_f64() {
                diffs.push(format!("{path}: {a} is not a float64"));
            }
            if a.as_f64() != b.as_f64() {
                diffs.push(format!("{path}: ours {a}, helm {b}"));
            }
        }
        (Json::Array(a), Json::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                same(x, y, &format!("{path}[{i}]"), diffs);
            }
        }
        (Json::Object(a), Json::Object(b)) => {
            for (k, y) in b {
                match a.get(k) {
                    Some(x) => same(x, y, &format!("{path}.{k}"), diffs),
                    None => diffs.push(format!("{path}.{k}: missing, helm has {y}")),
                }
            }
            for k in a.keys().filter(|k| !b.contains_key(*k)) {
                diffs.push(format!("{path}.{k}: helm has no such key, ours {}", a[k]));
            }
        }
        (a, b) if a == b => {}
        (a, b) => diffs.push(format!("{path}: ours {a}, helm {b}")),
    }
}

/// For the cases Helm refuses, words of Helm's message ours must contain too (the wording
/// around them differs: ours adds the file and the line, Helm's Go type names).
const ERROR_WORDS: &[(&str, &str)] = &[
    (
        "error-bad-base64.yaml",
        "!!binary value contains invalid base64 data",
    ),
    ("error-inf.yaml", "unsupported value: +Inf"),
    ("error-list-document.yaml", "cannot unmarshal array"),
    (
        "error-merge-scalar.yaml",
        "map merge requires map or sequence of maps as the value",
    ),
    ("error-nan.yaml", "unsupported value: NaN"),
    ("error-null-key.yaml", "unsupported map key"),
    ("error-scalar-document.yaml", "cannot unmarshal string"),
    ("error-sequence-key.yaml", "invalid map key"),
    ("error-syntax.yaml", "expected ',' or ']'"),
    (
        "error-tagged-bool-mismatch.yaml",
        "cannot decode !!str `maybe` as a !!bool",
    ),
    (
        "error-tagged-int-float.yaml",
        "cannot decode !!float `1.5` as a !!int",
    ),
    (
        "error-tagged-int-mismatch.yaml",
        "cannot decode !!str `abc` as a !!int",
    ),
    ("error-uint-key.yaml", "unsupported map key of type: uint64"),
    ("error-unknown-anchor.yaml", "unknown anchor"),
];

#[test]
fn values_files_read_like_helm() {
    let cases = cases();
    assert!(cases.len() >= 15, "only {} cases found", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let name = case.file_name().unwrap_or_default().to_string_lossy().to_string();
        let src = std::fs::read_to_string(case).expect("case text");
        let ours = parse_values(&src, &name);
        let golden = case.with_extension("helm.json");
        if golden.exists() {
            let text = std::fs::read_to_string(&golden).expect("golden text");
            let helm: Json = serde_json::from_str(&text).expect("golden is JSON");
            // Helm's nil map and an empty one render the same.
            let helm = if helm.is_null() {
                Json::Object(Default::default())
            } else {
                helm
            };
            match ours {
                Ok(map) => {
                    let mut diffs = Vec::new();
                    same(&Json::Object(map), &helm, &name, &mut diffs);
                    failures.extend(diffs);
                }
                Err(e) => failures.push(format!("{name}: helm reads it, ours fails: {e}")),
            }
        } else {
            let helm = std::fs::read_to_string(case.with_extension("helm-error.txt")).expect("golden error");
            match ours {
                Ok(map) => failures.push(format!(
                    "{name}: helm fails ({}), ours reads {map:?}",
                    helm.trim()
                )),
                Err(e) => {
                    let e = e.to_string();
                    if !e.contains(&name) {
                        failures.push(format!("{name}: the error does not name the file: {e}"));
                    }
                    match ERROR_WORDS.iter().find(|(case, _)| *case == name) {
                        Some((_, words)) if e.contains(words) => {}
                        Some((_, words)) => failures.push(format!(
                            "{name}: expected {words:?} as in Helm's {:?}, got {e}",
                            helm.trim()
                        )),
                        None => failures.push(format!("{name}: no ERROR_WORDS entry")),
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} differences:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// What a chart author sees: `yes` in values.yaml is the boolean Helm prints as `true`,
/// `0644` is 420, and a condition written `enabled: no` turns its subchart off (read as the
/// string "no", Helm would ignore the condition and render the subchart).
#[test]
fn yaml_1_1_values_reach_templates_and_conditions_as_helm_reads_them() {
    let dir = tempfile::tempdir().expect("temp dir");
    let files = [
        (
            "Chart.yaml",
            "apiVersion: v2\nname: app\nversion: 1.0.0\ndependencies:\n- name: sub\n  version: 0.1.0\n  condition: sub.enabled\n",
        ),
        (
            "values.yaml",
            "enabled: yes\nmode: 0644\nlabel: 'yes'\nsub:\n  enabled: no\n",
        ),
        (
            "templates/cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\ndata:\n  enabled: \"{{ .Values.enabled }}\"\n  isTrue: \"{{ eq .Values.enabled true }}\"\n  mode: \"{{ .Values.mode }}\"\n  label: \"{{ .Values.label }}\"\n  debug: \"{{ .Values.debug }}\"\n",
        ),
        (
            "charts/sub/Chart.yaml",
            "apiVersion: v2\nname: sub\nversion: 0.1.0\n",
        ),
        (
            "charts/sub/templates/cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: sub\n",
        ),
    ];
    for (name, content) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, content).expect("write");
    }
    let chart = convoy_chart::Chart::load(dir.path()).expect("chart loads");
    // A `-f` file, read the same way.
    let user = parse_values("debug: On\n", "override.yaml").expect("user values");
    let rendered = convoy_chart::render(
        &chart,
        &Json::Object(user),
        &convoy_chart::RenderOptions {
            release_name: "rel".into(),
            ..Default::default()
        },
    )
    .expect("renders");
    let names: Vec<&str> = rendered.manifests.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["cm"], "the subchart is disabled by `enabled: no`");
    let cm = &rendered.manifests[0].content;
    for want in [
        "enabled: \"true\"",
        "isTrue: \"true\"",
        "mode: \"420\"",
        "label: \"yes\"",
        "debug: \"true\"",
    ] {
        assert!(cm.contains(want), "missing {want:?} in\n{cm}");
    }
}

//! Rendered manifests become the JSON Helm sends to Kubernetes, byte for byte.
//!
//! The same `values_yaml11/cases/NAME.yaml` texts, this time read as a rendered manifest:
//! `values_yaml11/oracle.go -manifest` ran each through `sigs.k8s.io/yaml.YAMLToJSON` v1.4.0
//! (what Helm's kube client does to every document before it reaches the API server) and
//! kept the JSON in `NAME.manifest.json`, or the error in `NAME.manifest-error.txt`.
//! [`manifest_to_json`] must print the same text (integers as integers, Go's float text,
//! Go's escaping, sorted keys) or refuse the same inputs.

use std::path::{Path, PathBuf};

use convoy_chart::{manifest_documents_to_json, manifest_to_json};

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

/// For the cases Helm refuses, words of Helm's message ours must contain too (Helm's
/// wording around them has Go type names and `%!s` noise; ours adds the line).
const ERROR_WORDS: &[(&str, &str)] = &[
    (
        "error-bad-base64.yaml",
        "!!binary value contains invalid base64 data",
    ),
    ("error-inf.yaml", "unsupported value: +Inf"),
    (
        "error-merge-scalar.yaml",
        "map merge requires map or sequence of maps as the value",
    ),
    ("error-nan.yaml", "unsupported value: NaN"),
    ("error-null-key.yaml", "unsupported map key"),
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
fn manifests_convert_to_the_json_helm_sends() {
    let cases = cases();
    assert!(cases.len() >= 20, "only {} cases found", cases.len());
    let mut failures = Vec::new();
    let mut compared = 0;
    for case in &cases {
        let name = case.file_name().unwrap_or_default().to_string_lossy().to_string();
        let src = std::fs::read_to_string(case).expect("case text");
        let ours = manifest_to_json(&src);
        let golden = case.with_extension("manifest.json");
        if golden.exists() {
            // YAMLToJSON keeps the first of several documents; `manifest_to_json` refuses
            // to drop the rest silently, and the stream form converts each one.
            let ours = match ours {
                Err(e) if e.to_string().contains("expected one YAML document") => {
                    manifest_documents_to_json(&src).map(|docs| docs.into_iter().next().unwrap_or_default())
                }
                other => other,
            };
            let helm = std::fs::read_to_string(&golden).expect("golden text");
            let helm = helm.trim_end_matches('\n');
            match ours {
                Ok(json) if json == helm => compared += 1,
                Ok(json) => failures.push(format!("{name}:\n  ours {json}\n  helm {helm}")),
                Err(e) => failures.push(format!("{name}: helm converts it, ours fails: {e}")),
            }
            continue;
        }
        let helm = std::fs::read_to_string(case.with_extension("manifest-error.txt")).expect("golden error");
        match (ours, ERROR_WORDS.iter().find(|(c, _)| *c == name)) {
            (Ok(json), _) => {
                failures.push(format!("{name}: helm fails ({}), ours gives {json}", helm.trim()))
            }
            (Err(_), None) => failures.push(format!("{name}: no ERROR_WORDS entry")),
            (Err(e), Some((_, words))) if !e.to_string().contains(words) => failures.push(format!(
                "{name}: expected {words:?} as in Helm's {:?}, got {e}",
                helm.trim()
            )),
            (Err(_), Some(_)) => {}
        }
    }
    assert!(
        failures.is_empty(),
        "{} differences:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(compared >= 12, "only {compared} cases compared");
}

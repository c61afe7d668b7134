//! Helm's own `helm template` test cases (helm/helm v3.21.4, cmd/helm/template_test.go),
//! run through `TemplateRequest`, the code path `convoy template` uses.
//!
//! Every succeeding case must match Helm's golden output byte for byte, unless listed in
//! [`EXCEPTIONS`] with the reason. Every error case must fail with an error naming the
//! same problem as Helm's (the first two `: `-separated parts of Helm's message).

use std::path::{Path, PathBuf};

use convoy_chart::{ChartError, TemplateRequest};
use serde_json::Value as Json;

/// Cases we do not run, and why.
const EXCEPTIONS: &[(&str, &str)] = &[
    (
        "install-dry-run-with-secret",
        "`helm install --dry-run` prints a release status header (NAME, LAST DEPLOYED, STATUS...); convoy has no \
         install command, `convoy template` covers the manifests part",
    ),
    (
        "install-dry-run-with-secret-hidden",
        "`helm install --dry-run --hide-secret`: same as above, install-only output",
    ),
];

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance/helm/helm-cmd/v3.21.4")
}

/// Maps Helm's argv onto the request the CLI builds from the same flags.
fn request(argv: &[String], base: &Path) -> (TemplateRequest, bool) {
    let mut r = TemplateRequest {
        base_dir: base.to_path_buf(),
        ..Default::default()
    };
    let mut debug = false;
    let mut it = argv.iter().skip(1);
    while let Some(a) = it.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (a.clone(), None),
        };
        let mut value = || inline.clone().or_else(|| it.next().cloned()).unwrap_or_default();
        match flag.as_str() {
            "--set" => r.set.push(value()),
            "--set-string" => r.set_string.push(value()),
            "--set-file" => r.set_file.push(value()),
            "-f" | "--values" => r.values_files.push(value()),
            "--name-template" => r.name_template = Some(value()),
            "--kube-version" => r.kube_version = Some(value()),
            "-a" | "--api-versions" => r.api_versions.push(value()),
            "-s" | "--show-only" => r.show_only.push(value()),
            "-n" | "--namespace" => r.namespace = Some(value()),
            "--include-crds" => r.include_crds = true,
            "--skip-tests" => r.skip_tests = true,
            "--debug" => debug = true,
            other if other.starts_with('-') => panic!("flag {other} not mapped in the conformance harness"),
            _ => r.args.push(a.clone()),
        }
    }
    (r, debug)
}

fn helm_error_needle(golden: &str) -> String {
    let line = golden
        .lines()
        .find_map(|l| l.strip_prefix("Error: "))
        .expect("error golden has an Error: line");
    line.splitn(3, ": ")
        .take(2)
        .collect::<Vec<_>>()
        .join(": ")
        .replace("\"helm ", "\"convoy ")
}

#[test]
fn helm_template_cases() {
    let base = data_dir();
    let cases: Json =
        serde_json::from_str(&std::fs::read_to_string(base.join("cases.json")).unwrap()).unwrap();
    let mut passed = Vec::new();
    let mut failures = Vec::new();
    for case in cases["cases"].as_array().unwrap() {
        let id = case["id"].as_str().unwrap();
        if EXCEPTIONS.iter().any(|(e, _)| *e == id) {
            continue;
        }
        let argv: Vec<String> = case["argv"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_string())
            .collect();
        let golden = std::fs::read_to_string(base.join(case["golden"].as_str().unwrap()))
            .unwrap()
            .replace("\r\n", "\n");
        let (req, debug) = request(&argv, &base);
        let runs = 1 + case["repeat"].as_u64().unwrap_or(0);
        let mut outcome = Ok(());
        for _ in 0..runs {
            let result = req.run();
            outcome = if case["want_error"].as_bool().unwrap() {
                match result {
                    Ok(out) => Err(format!("expected an error, got output:\n{out}")),
                    Err(e) => {
                        let needle = helm_error_needle(&golden);
                        let msg = e.to_string();
                        if !msg.contains(&needle) {
                            Err(format!("error {msg:?} does not name {needle:?}"))
                        } else if let (true, ChartError::RenderedYaml { rendered, .. }) = (debug, &e) {
                            if golden.contains(rendered.trim()) {
                                Ok(())
                            } else {
                                Err(format!("--debug dump differs:\n{rendered}"))
                            }
                        } else {
                            Ok(())
                        }
                    }
                }
            } else {
                match result {
                    Ok(out) if out == golden => Ok(()),
                    Ok(out) => Err(diff(&golden, &out)),
                    Err(e) => Err(format!("unexpected error: {e}")),
                }
            };
            if outcome.is_err() {
                break;
            }
        }
        match outcome {
            Ok(()) => passed.push(id.to_string()),
            Err(e) => failures.push(format!("== {id} ({})\n{e}", argv.join(" "))),
        }
    }
    let total = cases["cases"].as_array().unwrap().len();
    println!(
        "helm-cmd v3.21.4: {} of {total} cases pass, {} listed exceptions",
        passed.len(),
        EXCEPTIONS.len()
    );
    assert!(
        failures.is_empty(),
        "{} case(s) differ from Helm:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

fn diff(want: &str, got: &str) -> String {
    let (w, g): (Vec<&str>, Vec<&str>) = (want.lines().collect(), got.lines().collect());
    for i in 0..w.len().max(g.len()) {
        if w.get(i) != g.get(i) {
            return format!(
                "first difference at line {}:\n  helm:   {:?}\n  convoy: {:?}\n--- convoy output ---\n{got}",
                i + 1,
                w.get(i),
                g.get(i)
            );
        }
    }
    format!(
        "outputs differ only in trailing newlines (helm {} bytes, convoy {} bytes)",
        want.len(),
        got.len()
    )
}

//! A corpus of malformed inputs: every one must give positioned errors, never a panic.
//! The fuzz target in `fuzz/` explores further; what it finds is added here.

mod common;

use common::registry;
use convoy_release::{Registry, Release};

const FULL: &str = include_str!("../../../configs/releases/app1.yaml");

/// Parses and, when that succeeds, validates; returns the error lines (empty when valid).
fn check(text: &str) -> Vec<String> {
    let result = Release::parse_str(text, "release.yaml").and_then(|r| r.validate(&registry()).map(|()| r));
    match result {
        Ok(_) => Vec::new(),
        Err(e) => {
            let lines: Vec<String> = e.to_string().lines().map(str::to_string).collect();
            for l in &lines {
                assert!(
                    positioned(l),
                    "error without file:line:col: {l:?}\ninput:\n{text}"
                );
            }
            assert!(!lines.is_empty(), "an error with no message for:\n{text}");
            lines
        }
    }
}

/// `release.yaml:LINE:COL: ...` with LINE, COL >= 1.
fn positioned(line: &str) -> bool {
    let Some(rest) = line.strip_prefix("release.yaml:") else {
        return false;
    };
    let mut parts = rest.splitn(3, ':');
    let ok = |p: Option<&str>| p.and_then(|p| p.parse::<usize>().ok()).is_some_and(|n| n >= 1);
    ok(parts.next()) && ok(parts.next()) && parts.next().is_some_and(|m| m.starts_with(' '))
}

/// The example release; it has no values files, so it parses without a directory.
fn full() -> String {
    FULL.to_string()
}

#[test]
fn the_base_input_is_valid() {
    assert_eq!(check(&full()), Vec::<String>::new());
}

#[test]
fn every_truncation() {
    let text = full();
    let mut cuts = 0;
    for (i, _) in text.char_indices() {
        check(&text[..i]);
        cuts += 1;
    }
    assert!(cuts > 500);
}

#[test]
fn wrong_types_everywhere() {
    let text = full();
    let replacements = [
        "[1, 2]",
        "{a: 1}",
        "~",
        "-1",
        "99999999999999999999999999999",
        "1e400",
        "true",
        "'a string'",
        "\"\\u0000\"",
        "!!binary aGVsbG8=",
        "\u{202e}\u{200b}ctx",
        "*nope",
    ];
    let mut rejected = 0;
    let lines: Vec<&str> = text.lines().collect();
    for (n, line) in lines.iter().enumerate() {
        let Some(colon) = line.find(": ") else { continue };
        if line.trim_start().starts_with('#') {
            continue;
        }
        for rep in replacements {
            let mut changed = lines.clone();
            let new_line = format!("{}: {rep}", &line[..colon]);
            changed[n] = &new_line;
            if !check(&changed.join("\n")).is_empty() {
                rejected += 1;
            }
        }
    }
    // Free-form values accept any type; nearly everything else must be refused.
    assert!(rejected > 150, "only {rejected} mutations were refused");
}

#[test]
fn hostile_shapes() {
    let deep_values = format!(
        "apiVersion: convoy.dev/v1\nkind: Release\nmetadata: {{name: a.b}}\nspec:\n  chart: {{path: x}}\n  contexts: [dev-us-central1-0]\n  values: {}{}\n",
        "{a: ".repeat(5000),
        "}".repeat(5000)
    );
    let block_deep: String = (0..300).map(|i| format!("{}k:\n", " ".repeat(i))).collect();
    let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..10 {
        let p = i - 1;
        bomb.push_str(&format!(
            "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    let bomb_in_values = format!(
        "apiVersion: convoy.dev/v1\nkind: Release\nmetadata: {{name: a.b}}\nspec:\n  chart: {{path: x}}\n  contexts: [dev-us-central1-0]\n  values:\n{}",
        bomb.lines().map(|l| format!("    {l}\n")).collect::<String>()
    );
    let inputs = [
        String::new(),
        "\u{feff}".into(),
        "\0\0\0".into(),
        "---\n---\n---\n".into(),
        "...\n".into(),
        "- a\n- b\n".into(),
        "just a string".into(),
        "42".into(),
        "{".into(),
        "[[[[[[[[".into(),
        "\"unterminated".into(),
        "a: 'x\n".into(),
        "key: \"\\xZZ\"\n".into(),
        "\tapiVersion: x\n".into(),
        "apiVersion: convoy.dev/v1\r\nkind: Release\r\nmetadata: {name: app1.ns1}\r\nspec: {}\r\n".into(),
        "? [complex, key]\n: value\n".into(),
        "apiVersion: &a convoy.dev/v1\nkind: *a\n".into(),
        "apiVersion: *undefined\n".into(),
        "%YAML 1.2\n%YAML 1.2\n---\na: 1\n".into(),
        "!!map {a: 1}".into(),
        "metadata: {name: ü.ñ, namespace: 名前}\n".into(),
        "metadata: {name: \"\u{1F600}.ns\"}\n".into(),
        format!("metadata: {{name: {}.ns}}\n", "a".repeat(100_000)),
        "a".repeat(1_000_000),
        deep_values,
        block_deep,
        bomb.clone(),
        bomb_in_values,
        full().replace("count: 2", "count: 18446744073709551616"),
        full().replace("soak: 1m", "soak: 99999999999999999999h"),
        full().replace("maxFailures: 0", "maxFailures: \"9999999999999999999%\""),
        full().replace("dev-us-central1-0]", "dev-us-central1-0, 0x10, .nan]"),
    ];
    for input in &inputs {
        let errors = check(input);
        assert!(
            !errors.is_empty(),
            "accepted:\n{}",
            &input[..input.len().min(300)]
        );
    }
}

#[test]
fn registry_survives_the_same() {
    let inputs = [
        "",
        "contexts: 5",
        "contexts: [1, [2], {name: ~}]",
        "- {name: a, region: r, env: dev, cloud: gcp, clusterName: c, labels: [x]}",
        "- &a {name: a, region: r, env: dev, cloud: gcp, clusterName: c}\n- *a\n",
        "{",
    ];
    for input in inputs {
        let err = Registry::parse(input, "contexts.yaml").unwrap_err().to_string();
        assert!(err.starts_with("contexts.yaml:"), "{err}");
    }
}

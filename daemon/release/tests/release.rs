//! Parsing, validation and per-context values of release files.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use common::*;
use convoy_release::*;
use serde_json::json;

fn example() -> (Release, Registry) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    let release = Release::load(&root.join("releases/app1.yaml")).unwrap_or_else(|e| panic!("{e}"));
    let registry = Registry::load(&root.join("contexts.yaml")).unwrap_or_else(|e| panic!("{e}"));
    (release, registry)
}

#[test]
fn the_example_release_parses_and_validates() {
    let (rel, reg) = example();
    rel.validate(&reg).unwrap();
    assert_eq!(rel.metadata.app, "app1");
    assert_eq!(rel.metadata.namespace, "ns1");
    assert_eq!(rel.targets().count(), 3);
    assert_eq!(
        rel.waves(),
        vec![
            vec!["dev-us-central1-0".to_string()],
            vec!["dev-europe-west1-0".to_string(), "dev-asia-east1-0".to_string()]
        ]
    );
    assert_eq!(rel.spec.strategy.max_concurrency, Some(2));
    assert_eq!(rel.spec.strategy.soak, Duration::from_secs(60));
    assert_eq!(rel.spec.health.min_ready_window, Duration::from_secs(30));
    assert!(rel.chart_path().unwrap().ends_with("releases/../charts/app1"));
}

#[test]
fn defaults_apply_when_sections_are_absent() {
    let rel = Release::parse_str(MINIMAL, "release.yaml").unwrap();
    assert_eq!(rel.metadata.namespace, "ns1");
    assert_eq!(rel.spec.strategy.order, Order::AllAtOnce);
    assert_eq!(rel.spec.strategy.max_failures, MaxFailures::Count(0));
    assert_eq!(rel.spec.strategy.on_failure, OnFailure::Rollback);
    assert_eq!(rel.spec.health.progress_deadline, DEFAULT_PROGRESS_DEADLINE);
    assert_eq!(
        rel.spec.strategy.offline_agent_deadline,
        DEFAULT_OFFLINE_AGENT_DEADLINE
    );
    assert_eq!(rel.spec.values, json!({}));
    assert_eq!(rel.waves().len(), 1);
}

#[test]
fn unknown_fields_name_position_path_and_suggestion() {
    let text = MINIMAL.replace("  contexts:", "  contxts: []\n  contexts:");
    let e = errors(&text);
    assert_eq!(
        e,
        vec!["release.yaml:7:3: spec.contxts: unknown field `contxts`; did you mean `contexts`?"]
    );

    let text = format!(
        "{MINIMAL}  secrets:\n    - secret_id: a\n      contexts:\n        - {{name: default, vault_path: /kv/a, vaultKey: k}}\n"
    );
    let e = errors(&text);
    assert_has(
        &e,
        "release.yaml:11:27: spec.secrets[0].contexts[0].vault_path: unknown field `vault_path`; did you mean `vaultPath`?",
    );
    assert_has(
        &e,
        "release.yaml:11:11: spec.secrets[0].contexts[0]: missing field `vaultPath`: expected a Vault secret path such as `/kv/dev/ns1/app1`",
    );

    let e = errors(&MINIMAL.replace("kind: Release\n", "kind: Release\nzzzz: 1\n"));
    assert_eq!(
        e,
        vec![
            "release.yaml:3:1: zzzz: unknown field `zzzz`; expected one of `apiVersion`, `kind`, `metadata`, `spec`"
        ]
    );
}

#[test]
fn wrong_types_say_what_was_expected() {
    let e = errors(&MINIMAL.replace("contexts: [dev-us-central1-0, dev-europe-west1-0]", "contexts: 5"));
    assert_eq!(
        e,
        vec!["release.yaml:7:13: spec.contexts: expected a list of context names, found the number 5"]
    );

    let e = errors(&MINIMAL.replace("dev-europe-west1-0]", "{a: b}]"));
    assert_eq!(
        e,
        vec!["release.yaml:7:33: spec.contexts[1]: expected a name, found a mapping"]
    );

    let text = format!(
        "{MINIMAL}  strategy: {{maxConcurrency: many, onFailure: rolback, soak: 10x}}\n  health: {{minReadyWindow: true}}\n  options: {{adopt: yes}}\n"
    );
    let e = errors(&text);
    assert_has(
        &e,
        "release.yaml:8:30: spec.strategy.maxConcurrency: expected a whole number from 1 to 10000, found `many`",
    );
    assert_has(
        &e,
        "release.yaml:8:47: spec.strategy.onFailure: expected one of `rollback`, `pause`, `continue`, found `rolback` (did you mean `rollback`?)",
    );
    assert_has(
        &e,
        "release.yaml:8:62: spec.strategy.soak: `10x`: unknown unit `x`; expected a duration such as `30s`, `10m`, `1h30m` or `500ms`",
    );
    assert_has(
        &e,
        "release.yaml:9:28: spec.health.minReadyWindow: expected a duration such as `30s`, `10m` or `1h30m`, found the boolean true",
    );
    assert_has(
        &e,
        "release.yaml:10:20: spec.options.adopt: expected true or false, found a string",
    );
    assert_eq!(e.len(), 5, "{e:#?}");
}

#[test]
fn header_and_metadata_problems() {
    let e = errors(
        &MINIMAL
            .replace("convoy.dev/v1", "convoy.dev/v2")
            .replace("app1.ns1", "App1"),
    );
    assert_has(
        &e,
        "release.yaml:1:13: apiVersion: expected `convoy.dev/v1`, found `convoy.dev/v2`",
    );
    assert_has(
        &e,
        "release.yaml:4:9: metadata.name: expected `app.namespace`, such as `app1.ns1`, found `App1` (no dot)",
    );

    let e = errors(&MINIMAL.replace("name: app1.ns1", "name: app1.ns1\n  namespace: ns2"));
    assert_has(
        &e,
        "release.yaml:5:14: metadata.namespace: `ns2` differs from the namespace in metadata.name `app1.ns1` (`ns1`); make them equal or drop this field",
    );

    let e = errors("");
    assert_eq!(
        e,
        vec![
            "release.yaml:1:1: the file is empty; expected a release (`apiVersion: convoy.dev/v1`, `kind: Release`)"
        ]
    );
    let e = errors("spec: [unclosed\n");
    assert!(e[0].starts_with("release.yaml:2:1: invalid YAML:"), "{e:?}");
}

#[test]
fn chart_reference_forms() {
    let repo = MINIMAL.replace(
        "{path: ./chart}",
        "{repo: https://charts.example.com, name: app1, version: 1.4}",
    );
    let rel = Release::parse_str(&repo, "release.yaml").unwrap();
    assert!(matches!(&rel.spec.chart, ChartRef::Repo { version, .. } if version == "1.4"));
    let e = errors(&MINIMAL.replace("{path: ./chart}", "{path: ./chart, repo: https://x}"));
    assert_eq!(
        e,
        vec![
            "release.yaml:6:32: spec.chart.repo: give only one of `path`, `repo` or `oci`, not path and repo"
        ]
    );
    let e = errors(&MINIMAL.replace("{path: ./chart}", "{repo: https://x}"));
    assert_has(
        &e,
        "release.yaml:6:10: spec.chart: missing field `name`: expected the chart's name in the repository",
    );
}

/// Whether some line of `lines` contains `part`.
fn contains(lines: &[String], part: &str) {
    assert!(
        lines.iter().any(|l| l.contains(part)),
        "no line containing\n  {part}\nin\n  {}",
        lines.join("\n  ")
    );
}

#[test]
fn oci_chart_references() {
    let by_tag = MINIMAL.replace(
        "{path: ./chart}",
        "{oci: \"oci://registry.example.com/charts/app1\", version: 1.4.2}",
    );
    let rel = Release::parse_str(&by_tag, "release.yaml").unwrap();
    assert!(matches!(&rel.spec.chart,
        ChartRef::Oci { oci, version: Some(v), digest: None, .. }
            if oci == "oci://registry.example.com/charts/app1" && v == "1.4.2"));
    let digest = format!("sha256:{}", "ab".repeat(32));
    let by_digest = MINIMAL.replace(
        "{path: ./chart}",
        &format!("{{oci: \"oci://r.example.com/app1\", digest: \"{digest}\"}}"),
    );
    let rel = Release::parse_str(&by_digest, "release.yaml").unwrap();
    assert!(matches!(&rel.spec.chart, ChartRef::Oci { digest: Some(d), version: None, .. } if *d == digest));
    let e = errors(&MINIMAL.replace("{path: ./chart}", "{oci: \"oci://r.example.com/app1\"}"));
    contains(&e, "spec.chart: an `oci` chart needs `version`");
    let e = errors(&MINIMAL.replace(
        "{path: ./chart}",
        "{oci: \"oci://r.example.com/app1:1.0.0\", version: 1.0.0}",
    ));
    contains(
        &e,
        "spec.chart.oci: expected `oci://REGISTRY/PATH/NAME` without a tag",
    );
    let e = errors(&MINIMAL.replace(
        "{path: ./chart}",
        "{oci: \"https://r.example.com/app1\", version: 1.0.0}",
    ));
    contains(&e, "spec.chart.oci: expected `oci://");
    let e = errors(&MINIMAL.replace(
        "{path: ./chart}",
        "{oci: \"oci://r.example.com/app1\", digest: \"sha256:xyz\"}",
    ));
    contains(&e, "spec.chart.digest: expected a manifest digest");
    let e = errors(&MINIMAL.replace(
        "{path: ./chart}",
        "{oci: \"oci://r.example.com/app1\", version: 1.0.0, name: app1}",
    ));
    contains(&e, "spec.chart.name: only used with `repo`");
    let e = errors(&MINIMAL.replace(
        "{path: ./chart}",
        "{repo: https://x, oci: \"oci://r/app\", name: a, version: 1}",
    ));
    contains(&e, "give only one of `path`, `repo` or `oci`");
}

#[test]
fn git_chart_references() {
    let git = MINIMAL.replace(
        "{path: ./chart}",
        "{git: \"https://git.example.com/charts.git\", ref: v1.2.0, path: charts/app1}",
    );
    let rel = Release::parse_str(&git, "release.yaml").unwrap();
    assert!(matches!(&rel.spec.chart,
        ChartRef::Git { git, reference, path, .. }
            if git == "https://git.example.com/charts.git" && reference == "v1.2.0" && path == "charts/app1"));
    assert_eq!(rel.chart_path(), None);
    let e = errors(&MINIMAL.replace("{path: ./chart}", "{git: \"https://g/c.git\", path: charts/app1}"));
    contains(&e, "spec.chart: missing field `ref`");
    let e = errors(&MINIMAL.replace(
        "{path: ./chart}",
        "{git: \"https://g/c.git\", ref: main, path: ../x}",
    ));
    contains(
        &e,
        "spec.chart.path: expected a relative directory inside the repository",
    );
    let e = errors(&MINIMAL.replace("{path: ./chart}", "{git: \"ssh://g/c.git\", ref: main, path: c}"));
    contains(&e, "spec.chart.git: expected a git repository URL");
    let e = errors(&MINIMAL.replace(
        "{path: ./chart}",
        "{git: \"https://g/c.git\", ref: main, path: c, version: 1}",
    ));
    contains(&e, "spec.chart.version: not with `git`");
    let e = errors(&MINIMAL.replace("{path: ./chart}", "{path: ./chart, ref: main}"));
    contains(&e, "spec.chart.ref: only used with `git`");
}

#[test]
fn self_consistency_checks_are_reported_together() {
    let text = "apiVersion: convoy.dev/v1
kind: Release
metadata: {name: app1.ns1}
spec:
  chart: {path: ./chart}
  contexts: [a, b, a, c]
  scaling:
    - {context: d, replicas: [{name: hermes, count: 2}, {name: hermes, count: 3}]}
  secrets:
    - secret_id: s1
      contexts: [{name: a, vaultPath: /p, vaultKey: k}]
    - secret_id: s1
      contexts: [{name: default, vaultPath: /p, vaultKey: k}]
  strategy:
    waves: [[a, b], [b, x]]
    maxFailures: 1
";
    let e = errors(text);
    assert_has(
        &e,
        "release.yaml:6:20: spec.contexts[2]: context `a` is listed twice (first at 6:14)",
    );
    assert_has(
        &e,
        "release.yaml:8:7: spec.scaling[0].context: `d` is not one of spec.contexts",
    );
    assert_has(
        &e,
        "release.yaml:8:57: spec.scaling[0].replicas[1]: `hermes` is scaled twice (first at 8:31)",
    );
    assert_has(
        &e,
        "release.yaml:10:7: spec.secrets[0]: secret `s1` has no source for b, c; add an entry for each, or a `default` entry",
    );
    assert_has(
        &e,
        "release.yaml:12:7: spec.secrets[1].secret_id: duplicate secret_id `s1` (first at 10:7)",
    );
    assert_has(
        &e,
        "release.yaml:15:22: spec.strategy.waves[1][0]: `b` is already in a wave (at 15:17); each target goes in exactly one wave",
    );
    assert_has(
        &e,
        "release.yaml:15:25: spec.strategy.waves[1][1]: `x` is not one of spec.contexts",
    );
    assert_has(
        &e,
        "release.yaml:15:14: spec.strategy.waves: targets in no wave: c; each target goes in exactly one wave",
    );
    assert_eq!(e.len(), 8, "{e:#?}");
}

#[test]
fn max_failures_forms() {
    let e = errors(&format!("{MINIMAL}  strategy: {{maxFailures: 150%}}\n"));
    assert_eq!(
        e,
        vec![
            "release.yaml:8:27: spec.strategy.maxFailures: expected a count (`1`) or a percentage from 0% to 100% (`25%`), found `150%`"
        ]
    );
    let e = errors(&format!("{MINIMAL}  strategy: {{maxFailures: -1}}\n"));
    assert_eq!(
        e,
        vec![
            "release.yaml:8:27: spec.strategy.maxFailures: expected a whole number from 0 to 10000, found `-1`"
        ]
    );
}

#[test]
fn max_failures_must_leave_room_to_fail() {
    let text = format!("{MINIMAL}  strategy: {{maxFailures: 2}}\n");
    assert_eq!(
        errors(&text),
        vec![
            "release.yaml:8:27: spec.strategy.maxFailures: tolerates 2 failed contexts out of 2 targets, so the rollout could never fail; expected fewer than 2"
        ]
    );
    let ok = format!("{MINIMAL}  strategy: {{maxFailures: 50%, canary: dev-us-central1-0}}\n");
    let rel = Release::parse_str(&ok, "release.yaml").unwrap();
    assert_eq!(rel.spec.strategy.max_failures.allowed(2), 1);
    assert_eq!(
        rel.waves(),
        vec![
            vec!["dev-us-central1-0".to_string()],
            vec!["dev-europe-west1-0".to_string()]
        ]
    );
}

#[test]
fn registry_checks_name_unknown_contexts_and_env_mismatch() {
    let text = "apiVersion: convoy.dev/v1
kind: Release
metadata: {name: app1.ns1, environment: dev}
spec:
  chart: {path: ./chart}
  contexts: [dev-us-central1-0, dev-europe-west-0, prod-us-central1-0]
  contextValues:
    dev-mars-0: {a: 1}
  secrets:
    - secret_id: s1
      contexts: [{name: default, vaultPath: /p, vaultKey: k}, {name: dev-asia-east1-9, vaultPath: /p, vaultKey: k}]
";
    let e = validation_errors(text);
    assert_has(
        &e,
        "release.yaml:6:33: spec.contexts[1]: unknown context `dev-europe-west-0`; did you mean `dev-europe-west1-0`?",
    );
    assert_has(
        &e,
        "release.yaml:6:52: spec.contexts[2]: context `prod-us-central1-0` is in env `prod`, but metadata.environment is `dev`",
    );
    assert_has(
        &e,
        "release.yaml:8:5: spec.contextValues.dev-mars-0: unknown context `dev-mars-0`; known contexts: dev-asia-east1-0, dev-europe-west1-0, dev-us-central1-0, prod-us-central1-0",
    );
    assert_has(
        &e,
        "release.yaml:11:63: spec.secrets[0].contexts[1].name: unknown context `dev-asia-east1-9` (expected a known context or `default`); did you mean `dev-asia-east1-0`?",
    );
    assert_eq!(e.len(), 4);
}

#[test]
fn secrets_resolve_per_context_with_default() {
    let (rel, _) = example();
    let plan = plan_secrets(&rel);
    let get = |ctx: &str| plan.iter().find(|r| r.context == ctx).unwrap().vault_path.clone();
    assert_eq!(plan.len(), 3);
    assert_eq!(get("dev-us-central1-0"), "/kv/dev/ns1/app1/test");
    assert_eq!(get("dev-europe-west1-0"), "/kv/dev/ns1/app1/eu");
    assert_eq!(get("dev-asia-east1-0"), "/kv/dev/ns1/app1/test");
}

#[test]
fn values_from_git_merge_after_values_files_and_before_context_values() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.yaml"), "layer: file-a\nfileOnly: 1\n").unwrap();
    let text = format!(
        "{MINIMAL}  values: {{layer: values}}\n  valuesFiles: [a.yaml]\n  valuesFrom:\n    - {{git: \"https://git.example.com/cfg.git\", ref: v2, path: envs/dev.yaml}}\n    - {{git: \"https://git.example.com/cfg.git\", ref: main, path: envs/extra.yaml}}\n  contextValues:\n    dev-europe-west1-0: {{layer: context}}\n"
    );
    let mut rel = Release::parse_in(&text, "release.yaml", dir.path()).unwrap();
    assert_eq!(rel.spec.values_from.len(), 2);
    assert_eq!(rel.spec.values_from[0].reference, "v2");
    assert_eq!(rel.spec.values_from[1].path, "envs/extra.yaml");
    let reg = registry();
    let us = reg.get("dev-us-central1-0").unwrap();
    let eu = reg.get("dev-europe-west1-0").unwrap();

    let e = rel
        .attach_values_from(&[("x".into(), "a: 1".into())])
        .unwrap_err();
    assert!(
        e.contains("spec.valuesFrom: 1 file(s) fetched for 2 entries"),
        "{e}"
    );
    let e = rel
        .attach_values_from(&[("o1".into(), "[1]".into()), ("o2".into(), "".into())])
        .unwrap_err();
    assert!(
        e.contains("spec.valuesFrom[0]: o1:1:1: expected a mapping"),
        "{e}"
    );

    rel.attach_values_from(&[
        ("o1".into(), "layer: git-1\ngitOnly: yes\n".into()),
        ("o2".into(), "layer: git-2\n".into()),
    ])
    .unwrap();
    let v = context_values(&rel, us, &BTreeMap::new());
    assert_eq!(v["layer"], json!("git-2"));
    assert_eq!(v["gitOnly"], json!(true));
    assert_eq!(v["fileOnly"], json!(1.0));
    assert_eq!(
        context_values(&rel, eu, &BTreeMap::new())["layer"],
        json!("context")
    );

    let e = errors(&format!(
        "{MINIMAL}  valuesFrom: [{{git: \"https://g/c.git\", path: ../x.yaml}}]\n"
    ));
    contains(&e, "spec.valuesFrom[0]: missing field `ref`");
    contains(&e, "spec.valuesFrom[0].path: expected a relative file path");
}

#[test]
fn values_merge_in_documented_order() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.yaml"),
        "layer: file-a\nfromA: 1\nglobal: {region: user-set, team: t1}\nsecrets: {s1: from-file}\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("b.yaml"), "layer: file-b\nlist: [1]\n").unwrap();
    let text = format!(
        "{MINIMAL}  values: {{layer: values, onlyValues: true, list: [0, 0]}}\n  valuesFiles: [a.yaml, b.yaml]\n  contextValues:\n    dev-europe-west1-0: {{layer: context}}\n"
    );
    let rel = Release::parse_in(&text, "release.yaml", dir.path()).unwrap();
    let reg = registry();
    let eu = reg.get("dev-europe-west1-0").unwrap();
    let us = reg.get("dev-us-central1-0").unwrap();
    let secrets = BTreeMap::from([("s1".to_string(), json!("resolved"))]);
    let v = context_values(&rel, eu, &secrets);
    assert_eq!(v["layer"], json!("context"));
    assert_eq!(v["onlyValues"], json!(true));
    // Numbers are float64, as Helm reads values files.
    assert_eq!(v["fromA"], json!(1.0));
    assert_eq!(v["list"], json!([1.0]));
    assert_eq!(
        v["global"],
        json!({"region": "europe-west1", "team": "t1", "cloud": "gcp", "env": "dev", "clusterName": "dev-euw1-0"})
    );
    assert_eq!(v["secrets"], json!({"s1": "resolved"}));
    assert_eq!(context_values(&rel, us, &secrets)["layer"], json!("file-b"));

    // The digest ignores secrets, differs per context, and is stable.
    let d = values_digest(&rel, eu);
    assert!(d.starts_with("sha256:") && d.len() == 71, "{d}");
    assert_eq!(d, values_digest(&rel, eu));
    assert_ne!(d, values_digest(&rel, us));
}

#[test]
fn values_file_errors_point_into_the_values_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.yaml"), "a: 1\nb: [\n").unwrap();
    std::fs::write(dir.path().join("list.yaml"), "- 1\n").unwrap();
    let text = format!("{MINIMAL}  valuesFiles: [bad.yaml, list.yaml, missing.yaml]\n");
    let e = lines(&Release::parse_in(&text, "release.yaml", dir.path()).unwrap_err());
    let bad = dir.path().join("bad.yaml").display().to_string();
    let list = dir.path().join("list.yaml").display().to_string();
    assert!(
        e.iter()
            .any(|l| l.starts_with(&format!("{bad}:3:1: invalid YAML"))),
        "{e:#?}"
    );
    assert_has(
        &e,
        &format!("{list}:1:1: expected a mapping of chart values, found a list"),
    );
    assert!(
        e.iter()
            .any(|l| l.starts_with("release.yaml:8:38: spec.valuesFiles[2]: cannot read values file")),
        "{e:#?}"
    );
    // Without a directory, values files are refused rather than silently dropped.
    let e = errors(&format!("{MINIMAL}  valuesFiles: [a.yaml]\n"));
    assert!(
        e[0].starts_with(
            "release.yaml:8:17: spec.valuesFiles[0]: values files need the release file's directory"
        ),
        "{e:?}"
    );
}

#[test]
fn registry_errors_are_positioned() {
    let text = "contexts:\n  - {name: a, region: r, env: dev, cloud: gcp, clusterName: c}\n  - {name: a, region: r, env: dev, cloud: gcp, clustername: c, labels: {x: [1]}}\n";
    let e = lines(&Registry::parse(text, "contexts.yaml").unwrap_err());
    assert_has(
        &e,
        "contexts.yaml:3:48: contexts[1].clustername: unknown field `clustername`; did you mean `clusterName`?",
    );
    assert_has(
        &e,
        "contexts.yaml:3:5: contexts[1]: missing field `clusterName`: expected the cluster's name",
    );
    assert_has(
        &e,
        "contexts.yaml:3:76: contexts[1].labels.x: expected a label value (a string), found a list",
    );
    let reserved = "- {name: default, region: r, env: dev, cloud: gcp, clusterName: c}\n";
    assert_eq!(
        lines(&Registry::parse(reserved, "contexts.yaml").unwrap_err()),
        vec![
            "contexts.yaml:1:3: [0].name: `default` is reserved: in a release's secrets it means \"every other context\""
        ]
    );
    let list_form = "- {name: a, region: r, env: dev, cloud: gcp, clusterName: c, labels: {tier: 1}}\n";
    let reg = Registry::parse(list_form, "contexts.yaml").unwrap();
    assert_eq!(reg.get("a").unwrap().labels["tier"], "1");
    let dup = "- {name: a, region: r, env: dev, cloud: gcp, clusterName: c}\n- {name: a, region: r, env: dev, cloud: gcp, clusterName: c}\n";
    assert_eq!(
        lines(&Registry::parse(dup, "contexts.yaml").unwrap_err()),
        vec!["contexts.yaml:2:3: [1]: context `a` is defined twice (first at 1:3)"]
    );
}

#[test]
fn registry_from_contexts_refuses_duplicates_and_the_reserved_name() {
    let ctx = |name: &str| Context {
        name: name.into(),
        region: "r".into(),
        env: "dev".into(),
        cloud: "gcp".into(),
        cluster_name: "c".into(),
        labels: BTreeMap::new(),
    };
    let reg = Registry::from_contexts([ctx("a"), ctx("b")]).unwrap();
    assert_eq!(reg.names().collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(
        Registry::from_contexts([ctx("a"), ctx("a")]).unwrap_err(),
        "context `a` is defined twice"
    );
    assert!(
        Registry::from_contexts([ctx("default")])
            .unwrap_err()
            .contains("reserved")
    );
}

#[test]
fn approval_gates_name_existing_later_waves() {
    let ok = format!(
        "{MINIMAL}  strategy: {{canary: dev-us-central1-0, approval: {{beforeWaves: [2], deadline: 30m}}}}\n"
    );
    let rel = Release::parse_str(&ok, "release.yaml").unwrap();
    let a = rel.spec.strategy.approval.clone().expect("approval");
    assert_eq!(
        (a.before_waves, a.deadline),
        (vec![2], std::time::Duration::from_secs(1800))
    );
    let default =
        format!("{MINIMAL}  strategy: {{canary: dev-us-central1-0, approval: {{beforeWaves: [2]}}}}\n");
    let rel = Release::parse_str(&default, "release.yaml").unwrap();
    assert_eq!(
        rel.spec.strategy.approval.expect("approval").deadline,
        std::time::Duration::from_secs(3600)
    );
    for (strategy, expected) in [
        (
            "{approval: {beforeWaves: [1]}}",
            "spec.strategy.approval.beforeWaves[0]: expected a whole number from 2 to 10000, found `1`",
        ),
        (
            "{approval: {beforeWaves: [2]}}",
            "spec.strategy.approval.beforeWaves: wave 2 does not exist: the release has 1 wave(s)",
        ),
        (
            "{canary: dev-us-central1-0, approval: {beforeWaves: [2, 2]}}",
            "spec.strategy.approval.beforeWaves[1]: wave 2 is listed twice",
        ),
        (
            "{canary: dev-us-central1-0, approval: {beforeWaves: [2], deadline: 0s}}",
            "spec.strategy.approval.deadline: expected a duration above zero, such as `30m`",
        ),
        (
            "{approval: {deadline: 5m}}",
            "spec.strategy.approval: missing field `beforeWaves`",
        ),
    ] {
        let e = errors(&format!("{MINIMAL}  strategy: {strategy}\n"));
        assert!(e.len() == 1 && e[0].contains(expected), "{strategy}: {e:?}");
    }
}

#[test]
fn gates_read_analysis_and_webhook_checks_with_defaults() {
    let text = format!(
        "{MINIMAL}  strategy:\n    canary: dev-us-central1-0\n    gates:\n\
         \x20     - name: error-rate\n        beforeWaves: [2]\n        analysis:\n\
         \x20         provider: main\n          query: 'sum(rate(errors{{region=\"{{{{region}}}}\"}}[1m]))'\n\
         \x20         successCondition: result <= 0.05\n          failureCondition: result > 0.2\n          count: 3\n          interval: 10s\n          inconclusiveLimit: 1\n\
         \x20     - {{name: smoke, beforeWaves: [2], webhook: {{name: smoke-tests}}}}\n"
    );
    let rel = Release::parse_str(&text, "release.yaml").unwrap();
    let gates = &rel.spec.strategy.gates;
    assert_eq!(gates.len(), 2);
    let GateCheck::Analysis(a) = &gates[0].check else {
        panic!("{gates:?}")
    };
    assert_eq!(
        (
            a.provider.as_str(),
            a.count,
            a.interval,
            a.failure_limit,
            a.inconclusive_limit
        ),
        ("main", 3, std::time::Duration::from_secs(10), 0, 1)
    );
    assert_eq!(a.query, "sum(rate(errors{region=\"{{region}}\"}[1m]))");
    assert!(a.success.holds(0.05) && !a.success.holds(0.051) && !a.success.holds(f64::NAN));
    assert_eq!(a.success.to_string(), "result <= 0.05");
    assert_eq!(a.failure.map(|c| c.to_string()).as_deref(), Some("result > 0.2"));
    let GateCheck::Webhook(w) = &gates[1].check else {
        panic!("{gates:?}")
    };
    assert_eq!(
        (w.name.as_str(), w.timeout, w.retries),
        ("smoke-tests", std::time::Duration::from_secs(10), 2)
    );

    let gate = |body: &str| {
        format!(
            "{MINIMAL}  strategy: {{canary: dev-us-central1-0, gates: [{{name: g, beforeWaves: [2], {body}}}]}}\n"
        )
    };
    for (text, expected) in [
        (
            gate("analysis: {provider: p, query: 'up{x=\"{{zone}}\"}', successCondition: result > 0}"),
            "spec.strategy.gates[0].analysis.query: unknown placeholder {{zone}}; expected one of {{context}}",
        ),
        (
            gate("analysis: {provider: p, query: up, successCondition: 'result ~ 3'}"),
            "spec.strategy.gates[0].analysis.successCondition: \"result ~ 3\": expected `result OP NUMBER`",
        ),
        (
            gate("analysis: {provider: p, query: up, successCondition: result > x}"),
            "\"x\" is not a number",
        ),
        (
            gate("analysis: {provider: p, query: up}"),
            "spec.strategy.gates[0].analysis: missing field `successCondition`",
        ),
        (
            gate("analysis: {provider: p, query: up, successCondition: result > 0, interval: 0s}"),
            "spec.strategy.gates[0].analysis.interval: expected a duration above zero",
        ),
        (
            gate("webhook: {name: w}, analysis: {provider: p, query: up, successCondition: result > 0}"),
            "spec.strategy.gates[0]: a gate has either `analysis` or `webhook`, not both",
        ),
        (
            gate("beforeWave: 2"),
            "spec.strategy.gates[0].beforeWave: unknown field `beforeWave`; did you mean `beforeWaves`?",
        ),
        (
            format!(
                "{MINIMAL}  strategy: {{gates: [{{name: g, beforeWaves: [2], webhook: {{name: w}}}}]}}\n"
            ),
            "spec.strategy.gates[0].beforeWaves: wave 2 does not exist: the release has 1 wave(s)",
        ),
        (
            format!(
                "{MINIMAL}  strategy: {{canary: dev-us-central1-0, gates: [{{name: g, beforeWaves: [2], webhook: {{name: w}}}}, {{name: g, beforeWaves: [2], webhook: {{name: v}}}}]}}\n"
            ),
            "spec.strategy.gates[1].name: gate \"g\" is named twice",
        ),
    ] {
        let e = errors(&text);
        assert!(e.iter().any(|e| e.contains(expected)), "{text}: {e:?}");
    }
}

#[test]
fn an_in_cluster_canary_reads_its_steps_and_checks_them() {
    let text = format!(
        "{MINIMAL}  strategy:\n    canary: dev-us-central1-0\n    gates:\n\
         \x20     - {{name: error-rate, analysis: {{provider: main, query: up, successCondition: result > 0}}}}\n\
         \x20   inCluster:\n      canary:\n        steps:\n\
         \x20         - setWeight: 10\n          - pause: 2m\n          - gate: error-rate\n          - approval: {{}}\n          - approval: {{deadline: 30m}}\n          - setWeight: 50\n"
    );
    let rel = Release::parse_str(&text, "release.yaml").unwrap();
    let Some(InCluster::Canary(c)) = &rel.spec.strategy.in_cluster else {
        panic!("{:?}", rel.spec.strategy.in_cluster)
    };
    let shown: Vec<String> = c.steps.iter().map(CanaryStep::describe).collect();
    assert_eq!(
        shown,
        [
            "setWeight 10",
            "pause 2m",
            "gate error-rate",
            "approval",
            "approval within 30m",
            "setWeight 50"
        ]
    );
    assert!(
        rel.spec.strategy.gates[0].before_waves.is_empty(),
        "run by a step only"
    );

    let with = |steps: &str, extra: &str| {
        format!(
            "{MINIMAL}  strategy: {{canary: dev-us-central1-0{extra}, inCluster: {{canary: {{steps: {steps}}}}}}}\n"
        )
    };
    for (text, expected) in [
        (
            with("[{setWeight: 100}]", ""),
            "spec.strategy.inCluster.canary.steps[0].setWeight: expected a whole number from 1 to 99, found `100`",
        ),
        (
            with("[{pause: 1m}, {setWeight: 10}]", ""),
            "spec.strategy.inCluster.canary.steps: expected a `setWeight` first step",
        ),
        (
            with("[{setWeight: 10, pause: 1m}]", ""),
            "spec.strategy.inCluster.canary.steps[0]: a step does one thing, found setWeight and pause",
        ),
        (
            with("[{setWeight: 10}, {wait: 1m}]", ""),
            "spec.strategy.inCluster.canary.steps[1].wait: unknown field `wait`",
        ),
        (
            with("[{setWeight: 10}, {gate: error-rat}]", ""),
            "spec.strategy.inCluster.canary.steps[1].gate: \"error-rat\" is not a gate of `spec.strategy.gates` (the release has no `spec.strategy.gates`)",
        ),
        (
            with("[{setWeight: 10}, {pause: 0s}]", ""),
            "spec.strategy.inCluster.canary.steps[1].pause: expected a duration above zero",
        ),
        (
            with("[{setWeight: 10}]", ", gates: [{name: g, webhook: {name: w}}]"),
            "spec.strategy.gates[0].beforeWaves: gate \"g\" runs nowhere",
        ),
        (
            format!("{MINIMAL}  strategy: {{inCluster: {{canary: {{}}}}}}\n"),
            "spec.strategy.inCluster.canary: missing field `steps`",
        ),
    ] {
        let e = errors(&text);
        assert!(e.len() == 1 && e[0].contains(expected), "{text}: {e:?}");
    }
}

#[test]
fn a_blue_green_reads_its_slot_options_and_steps() {
    let text = format!(
        "{MINIMAL}  strategy: {{canary: dev-us-central1-0, gates: [{{name: smoke, webhook: {{name: smoke}}}}], inCluster: {{blueGreen: {{previewService: true, keepPreviousFor: 15m, steps: [{{gate: smoke}}, {{approval: {{}}}}]}}}}}}\n"
    );
    let rel = Release::parse_str(&text, "release.yaml").unwrap();
    let Some(InCluster::BlueGreen(b)) = &rel.spec.strategy.in_cluster else {
        panic!("{:?}", rel.spec.strategy.in_cluster)
    };
    assert!(b.preview_service);
    assert_eq!(b.keep_previous_for, Duration::from_secs(900));
    let shown: Vec<String> = b.steps.iter().map(CanaryStep::describe).collect();
    assert_eq!(shown, ["gate smoke", "approval"]);
    let rel = Release::parse_str(
        &format!("{MINIMAL}  strategy: {{inCluster: {{blueGreen: {{}}}}}}\n"),
        "release.yaml",
    )
    .unwrap();
    let Some(InCluster::BlueGreen(b)) = &rel.spec.strategy.in_cluster else {
        panic!("{:?}", rel.spec.strategy.in_cluster)
    };
    assert_eq!(
        (b.preview_service, b.keep_previous_for, b.steps.len()),
        (false, Duration::from_secs(600), 0)
    );
    for (strategy, expected) in [
        (
            "{inCluster: {blueGreen: {steps: [{setWeight: 10}]}}}",
            "spec.strategy.inCluster.blueGreen.steps[0]: a blue/green has no weights",
        ),
        (
            "{inCluster: {blueGreen: {steps: [{gate: smoke}]}}}",
            "spec.strategy.inCluster.blueGreen.steps[0].gate: \"smoke\" is not a gate",
        ),
        (
            "{inCluster: {blueGreen: {}, canary: {steps: [{setWeight: 5}]}}}",
            "spec.strategy.inCluster: give either `canary` or `blueGreen`, not both",
        ),
        (
            "{inCluster: {blueGreen: {previewService: yes-please}}}",
            "spec.strategy.inCluster.blueGreen.previewService: expected true or false",
        ),
    ] {
        let e = errors(&format!("{MINIMAL}  strategy: {strategy}\n"));
        assert!(e.len() == 1 && e[0].contains(expected), "{strategy}: {e:?}");
    }
}

//! Rendering the example chart per context: values, scaling, secrets, and errors.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use convoy_chart::Chart;
use convoy_release::*;
use serde_json::json;

fn configs() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs")
}

fn setup(edit: impl Fn(String) -> String) -> (Release, Registry, Chart) {
    let text = std::fs::read_to_string(configs().join("releases/app1.yaml")).unwrap();
    let dir = configs().join("releases");
    let release = Release::parse_in(&edit(text), "app1.yaml", &dir).unwrap_or_else(|e| panic!("{e}"));
    let registry = Registry::load(&configs().join("contexts.yaml")).unwrap();
    let chart = Chart::load(&release.chart_path().unwrap()).unwrap();
    (release, registry, chart)
}

fn object<'a>(r: &'a RenderedContext, kind: &str) -> serde_json::Value {
    let m: &'a Manifest = r
        .manifests
        .iter()
        .find(|m| m.kind == kind)
        .unwrap_or_else(|| panic!("no {kind}"));
    yaml::parse_single(&m.content).unwrap().unwrap().to_json()
}

#[test]
fn each_context_gets_its_globals_scaling_and_secret() {
    let (rel, reg, chart) = setup(|t| t);
    let canary = "canary-value-1234";
    let secrets = BTreeMap::from([("app1".to_string(), json!(canary))]);
    for (ctx, replicas, region) in [
        ("dev-us-central1-0", 2, "us-central1"),
        ("dev-europe-west1-0", 3, "europe-west1"),
        ("dev-asia-east1-0", 1, "asia-east1"),
    ] {
        let r = render_context(&rel, &chart, reg.get(ctx).unwrap(), &secrets, 7).unwrap();
        assert_eq!(r.context, ctx);
        assert_eq!(r.revision, 7);
        let kinds: Vec<&str> = r.objects().map(|m| m.kind.as_str()).collect();
        assert_eq!(
            kinds,
            ["Secret", "ConfigMap", "Service", "Deployment"],
            "Helm's install order"
        );
        let deploy = object(&r, "Deployment");
        assert_eq!(deploy["spec"]["replicas"], json!(replicas), "{ctx}");
        assert_eq!(deploy["metadata"]["namespace"], json!("ns1"));
        assert_eq!(
            deploy["spec"]["template"]["spec"]["containers"][0]["image"],
            json!("registry.example.com/app1/hermes:2.3.1")
        );
        let cm = object(&r, "ConfigMap");
        assert_eq!(cm["data"]["REGION"], json!(region));
        assert_eq!(cm["metadata"]["name"], json!("app1-config"));
        let secret = object(&r, "Secret");
        assert_eq!(
            secret["data"]["APP1"],
            json!("Y2FuYXJ5LXZhbHVlLTEyMzQ="),
            "the chart got the secret"
        );
        // Sources survive, Debug hides contents.
        assert_eq!(
            r.manifests
                .iter()
                .find(|m| m.kind == "Deployment")
                .unwrap()
                .source,
            "app1/templates/deployment.yaml"
        );
        let debug = format!("{r:?}");
        assert!(!debug.contains("Y2FuYXJ5") && !debug.contains(canary), "{debug}");
        assert_eq!(r.values_digest, values_digest(&rel, reg.get(ctx).unwrap()));
    }
}

#[test]
fn a_scaled_name_missing_from_the_render_is_a_positioned_error() {
    let (rel, reg, chart) = setup(|t| {
        t.replace(
            "[{name: hermes, count: 2}]",
            "[{name: hermes, count: 2}, {name: apollo, count: 1}]",
        )
    });
    let e = render_context(
        &rel,
        &chart,
        reg.get("dev-us-central1-0").unwrap(),
        &BTreeMap::new(),
        1,
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "app1.yaml:21:44: spec.scaling[0].replicas[1]: no Deployment or StatefulSet named `apollo` in the render for context dev-us-central1-0; it has Deployment/hermes"
    );
    // Other contexts are unaffected.
    render_context(
        &rel,
        &chart,
        reg.get("dev-asia-east1-0").unwrap(),
        &BTreeMap::new(),
        1,
    )
    .unwrap();
}

#[test]
fn values_from_not_fetched_is_refused_not_dropped() {
    let (mut rel, reg, chart) = setup(|t| {
        t.replace(
            "spec:\n",
            "spec:\n  valuesFrom: [{git: \"https://git.example.com/cfg.git\", ref: v1, path: dev.yaml}]\n",
        )
    });
    let ctx = reg.get("dev-us-central1-0").unwrap();
    let e = render_context(&rel, &chart, ctx, &BTreeMap::new(), 1).unwrap_err();
    assert!(
        e.to_string()
            .contains("spec.valuesFrom[0]: https://git.example.com/cfg.git v1 dev.yaml was not fetched"),
        "{e}"
    );
    rel.attach_values_from(&[("cfg".into(), "greeting: from-git\n".into())])
        .unwrap();
    render_context(&rel, &chart, ctx, &BTreeMap::new(), 1).unwrap();
}

#[test]
fn chart_errors_name_the_context() {
    let (rel, reg, chart) = setup(|t| t.replace("image: {tag: \"2.3.1\"}", "image: 5"));
    let e = render_context(
        &rel,
        &chart,
        reg.get("dev-us-central1-0").unwrap(),
        &BTreeMap::new(),
        1,
    )
    .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.starts_with("context dev-us-central1-0: rendering the chart failed: "),
        "{msg}"
    );
}

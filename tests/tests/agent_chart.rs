//! The Helm chart that installs convoy-agent (configs/charts/convoy-agent), rendered with
//! convoy's own chart engine: the least-privilege RBAC of agent/RBAC.md, bound only into
//! the namespaces releases deploy to, and a refusal without a context.

use std::path::Path;

use convoy_chart::{Chart, RenderOptions};
use serde_json::{Value, json};

fn chart() -> Chart {
    Chart::load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/charts/convoy-agent")).unwrap()
}

fn opts() -> RenderOptions {
    RenderOptions {
        release_name: "agent".into(),
        namespace: "convoy-system".into(),
        ..RenderOptions::default()
    }
}

#[test]
fn renders_the_least_privilege_install() {
    let values = json!({"context": "dev-us-central1-0", "token": "t", "deployNamespaces": ["ns1", "ns2"]});
    let out = convoy_chart::render(&chart(), &values, &opts()).unwrap();
    let docs: Vec<Value> = out
        .manifests
        .iter()
        .map(|m| serde_yaml::from_str(&m.content).unwrap())
        .collect();
    let of = |kind: &'static str| docs.iter().filter(move |d| d["kind"] == kind);
    // The deploy role is bound only where releases go, never cluster-wide.
    let bindings: Vec<&str> = of("RoleBinding")
        .filter(|b| b["roleRef"]["name"] == "convoy-agent-deploy")
        .map(|b| b["metadata"]["namespace"].as_str().unwrap())
        .collect();
    assert_eq!(bindings, ["ns1", "ns2"]);
    assert_eq!(of("ClusterRoleBinding").count(), 0, "no cluster-wide grants");
    // Pods and ReplicaSets are read-only: the agent only watches them.
    let role = of("ClusterRole").next().unwrap();
    for rule in role["rules"].as_array().unwrap() {
        let res: Vec<&str> = rule["resources"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        if res.contains(&"pods") || res.contains(&"replicasets") {
            assert_eq!(rule["verbs"], json!(["get", "list", "watch"]), "{rule}");
        }
        assert!(
            !res.contains(&"namespaces") && !res.contains(&"clusterroles"),
            "{rule}"
        );
    }
    // History and locks in the agent's own namespace only.
    let state = of("Role").next().unwrap();
    assert_eq!(state["metadata"]["namespace"], "convoy-system");
    let config = of("ConfigMap").next().unwrap();
    let agent_yaml = config["data"]["agent.yaml"].as_str().unwrap();
    assert!(agent_yaml.contains("context: dev-us-central1-0") && agent_yaml.contains("backend: kubernetes"));
    let deploy = of("Deployment").next().unwrap();
    assert_eq!(
        deploy["spec"]["template"]["spec"]["serviceAccountName"],
        "convoy-agent"
    );
}

#[test]
fn an_existing_token_secret_keeps_the_token_out_of_values() {
    let values = json!({"context": "c", "existingTokenSecret": "from-vault"});
    let out = convoy_chart::render(&chart(), &values, &opts()).unwrap();
    assert!(out.manifests.iter().all(|m| m.kind != "Secret"));
    assert!(
        out.manifests
            .iter()
            .any(|m| m.content.contains("secretName: from-vault"))
    );
}

#[test]
fn refuses_to_render_without_a_context() {
    let err = convoy_chart::render(&chart(), &json!({}), &opts())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("context: the registry context this cluster is"),
        "{err}"
    );
}

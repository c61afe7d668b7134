//! gRPC health and server reflection as a client that has no .proto files sees them
//! (a Jenkins job with grpcurl or a generated client): Python's grpcio with
//! grpcio-reflection, installed by `.ci/install-deps` into the cache. It also asks for
//! a diff the way a Jenkins job without the CLI would (JSON, the chart as a base64 tar).

use std::process::Command;

use convoy_tests::convoy::Convoyd;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_without_protos_discovers_and_calls_the_api() {
    let python = convoy_tests::tools::cache_dir().join("pygrpc/bin/python");
    assert!(
        python.is_file(),
        "{} missing: run .ci/install-deps",
        python.display()
    );
    let convoyd = Convoyd::start(
        "contexts:\n  - {name: east, region: us-east1, env: dev, cloud: sim, clusterName: east-1}\n\
         auth:\n  tokens:\n    - {name: jenkins, role: viewer, token: t-jenkins}\n\
         \x20   - {name: deployer, role: deployer, token: t-deploy}\n",
    )
    .await
    .unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/reflection_client.py");
    let target = convoyd.addr.trim_start_matches("http://").to_string();
    let dir = tempfile::tempdir().unwrap();
    let release = dir.path().join("web.yaml");
    std::fs::write(
        &release,
        "apiVersion: convoy.dev/v1\nkind: Release\nmetadata: {name: web.shop, namespace: shop}\n\
         spec:\n  chart: {path: ./web}\n  contexts: [east]\n",
    )
    .unwrap();
    let chart = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/web");
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .arg(target)
            .arg("t-jenkins")
            .arg("t-deploy")
            .arg(&release)
            .arg(chart)
            .output()
    })
    .await
    .unwrap()
    .unwrap();
    assert!(
        out.status.success(),
        "client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["health"], "SERVING");
    let services: Vec<&str> = v["services"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s.as_str())
        .collect();
    for s in [
        "convoy.v1.ReleaseService",
        "convoy.v1.ClusterService",
        "convoy.v1.AgentLink",
        "grpc.health.v1.Health",
    ] {
        assert!(services.contains(&s), "{s} not discoverable: {services:?}");
    }
    let clusters = &v["clusters"]["ok"]["clusters"];
    assert_eq!(clusters[0]["context"], "east", "{v}");
    assert_eq!(clusters[0]["region"], "us-east1");
    assert_eq!(v["missing_release"]["code"], "NOT_FOUND", "{v}");
    assert_eq!(v["bad_token"]["code"], "UNAUTHENTICATED", "{v}");
    // The file was prepared (chart unpacked and rendered); east has no agent, so the
    // diff says it compared nothing there rather than failing.
    let diff = &v["diff"]["ok"];
    assert_eq!(diff["release"], "web.shop", "{v}");
    assert_eq!(diff["contexts"][0]["context"], "east", "{v}");
    assert_eq!(diff["contexts"][0]["status"], "DIFF_STATUS_AGENT_OFFLINE", "{v}");
    assert_eq!(v["diff_as_viewer"]["code"], "PERMISSION_DENIED", "{v}");
}

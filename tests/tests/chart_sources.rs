//! A chart from an OCI registry end to end, as a team would ship it: `convoy package`,
//! `convoy push` to a real registry with authentication (Debian's `docker-registry`),
//! then `convoy submit` of a release naming it by tag, with no registry credentials on
//! the submitter's side: `convoyd` pulls it with its own (`chart_sources`), three agents
//! apply it to three real control planes in two waves, and the revision records the
//! archive's digest.
//! The registry password appears in no CLI output, no API answer and no coordinator log.

use std::process::Command;
use std::time::Duration;

use convoy_proto::v1 as pb;
use convoy_tests::charts::{Registry, sha256_hex};
use convoy_tests::convoy::{AgentProcess, Convoyd};
use convoy_tests::kube::ControlPlane;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;

const PASSWORD: &str = "REGISTRY-PW-7d1e-do-not-log";

#[derive(Clone)]
struct Bearer(&'static str);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let v = format!("Bearer {}", self.0)
            .parse()
            .map_err(|_| tonic::Status::internal("token"))?;
        req.metadata_mut().insert("authorization", v);
        Ok(req)
    }
}

fn convoy(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(convoy_tests::convoy::binary("convoy").unwrap());
    cmd.current_dir(dir)
        .args(args)
        .env_remove("CONVOY_REPO_USERNAME")
        .env_remove("CONVOY_REPO_PASSWORD")
        .env_remove("CONVOY_REPO_TOKEN")
        .env("COLUMNS", "200");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("convoy runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oci_chart_pushed_with_convoy_push_deploys_to_three_real_clusters() {
    let (k1, k2, k3, registry) = tokio::join!(
        ControlPlane::start("oci-1"),
        ControlPlane::start("oci-2"),
        ControlPlane::start("oci-3"),
        Registry::start(Some(("ci", PASSWORD)))
    );
    let clusters = [("k1", k1.unwrap()), ("k2", k2.unwrap()), ("k3", k3.unwrap())];
    let registry = registry.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    // The team packages and pushes its chart.
    let chart = d.join("greeter");
    std::fs::create_dir_all(chart.join("templates")).unwrap();
    std::fs::write(
        chart.join("Chart.yaml"),
        "apiVersion: v2\nname: greeter\nversion: 0.3.1\n",
    )
    .unwrap();
    std::fs::write(
        chart.join("templates/cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: greeter}\ndata:\n  greeting: {{ .Values.greeting | quote }}\n  chart: {{ .Chart.Version | quote }}\n",
    )
    .unwrap();
    let out = convoy(d, &["package", "greeter"], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let archive = std::fs::read(d.join("greeter-0.3.1.tgz")).unwrap();
    let remote = format!("oci://{}/team", registry.host());
    let push_env = [("CONVOY_REPO_USERNAME", "ci"), ("CONVOY_REPO_PASSWORD", PASSWORD)];
    let out = convoy(
        d,
        &["push", "greeter-0.3.1.tgz", &remote, "--plain-http"],
        &push_env,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!text(&out.stdout).contains(PASSWORD));

    // The coordinator holds the registry credentials; the submitter does not.
    let pw_file = d.join("registry-password");
    std::fs::write(&pw_file, format!("{PASSWORD}\n")).unwrap();
    let cfg = format!(
        "contexts:\n  - {{name: k1, region: r1, env: dev, cloud: sim, clusterName: k1}}\n\
         \x20 - {{name: k2, region: r2, env: dev, cloud: sim, clusterName: k2}}\n\
         \x20 - {{name: k3, region: r3, env: dev, cloud: sim, clusterName: k3}}\n\
         auth:\n  tokens:\n    - {{name: jenkins, role: deployer, token: t-deploy}}\n  agents:\n\
         \x20   - {{context: k1, token: agent-k1}}\n    - {{context: k2, token: agent-k2}}\n    - {{context: k3, token: agent-k3}}\n\
         heartbeat_seconds: 2\n\
         chart_sources:\n  - {{url: \"{remote}\", username: ci, password_file: {}, plain_http: true}}\n",
        pw_file.display()
    );
    let convoyd = Convoyd::start(&cfg).await.unwrap();
    let mut agents = Vec::new();
    for (name, cluster) in &clusters {
        agents.push(
            AgentProcess::start(
                &convoyd.addr,
                name,
                &format!("agent-{name}"),
                Some(&cluster.kubeconfig_yaml()),
                "",
            )
            .await
            .unwrap(),
        );
    }

    std::fs::write(
        d.join("greeter.yaml"),
        format!(
            "apiVersion: convoy.dev/v1\nkind: Release\nmetadata: {{name: greeter.hello, namespace: hello, environment: dev}}\n\
             spec:\n  chart: {{oci: \"{remote}/greeter\", version: 0.3.1}}\n  values: {{greeting: hi}}\n  contexts: [k1, k2, k3]\n  \
             strategy: {{waves: [[k1], [k2, k3]]}}\n  health: {{progressDeadline: 1m, minReadyWindow: 0s}}\n"
        ),
    )
    .unwrap();
    let online = [
        ("CONVOY_SERVER", convoyd.addr.as_str()),
        ("CONVOY_TOKEN", "t-deploy"),
    ];
    let out = tokio::task::block_in_place(|| {
        convoy(
            d,
            &["submit", "-f", "greeter.yaml", "--wait", "--reason", "e2e"],
            &online,
        )
    });
    assert!(
        out.status.success(),
        "{}{}\n{}",
        text(&out.stdout),
        text(&out.stderr),
        convoyd.logs()
    );

    // In every cluster.
    for (name, cluster) in &clusters {
        let cms: Api<ConfigMap> = Api::namespaced(cluster.client().await, "hello");
        let cm = cms.get("greeter").await.unwrap_or_else(|e| panic!("{name}: {e}"));
        let data = cm.data.unwrap_or_default();
        assert_eq!(data.get("greeting").map(String::as_str), Some("hi"), "{name}");
        assert_eq!(data.get("chart").map(String::as_str), Some("0.3.1"), "{name}");
    }

    // The revision records what was rendered and where it came from.
    let ch = tonic::transport::Channel::from_shared(convoyd.addr.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut releases =
        pb::release_service_client::ReleaseServiceClient::with_interceptor(ch, Bearer("t-deploy"));
    let h = releases
        .get_history(pb::GetHistoryRequest {
            release: "greeter.hello".into(),
            limit: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let rev = &h.revisions[0];
    assert_eq!(rev.chart_digest, format!("sha256:{}", sha256_hex(&archive)));
    assert!(
        rev.chart_source
            .starts_with(&format!("{remote}/greeter:0.3.1@sha256:")),
        "{}",
        rev.chart_source
    );
    let history = convoy(d, &["history", "greeter.hello", "-o", "json"], &online);
    assert!(history.status.success(), "{}", text(&history.stderr));
    assert!(
        text(&history.stdout).contains(&rev.chart_digest),
        "{}",
        text(&history.stdout)
    );

    // Nowhere the password could leak to.
    tokio::time::sleep(Duration::from_millis(200)).await;
    for (what, s) in [
        ("submit output", text(&out.stdout) + &text(&out.stderr)),
        ("history output", text(&history.stdout)),
        ("convoyd log", convoyd.logs()),
        ("history answer", format!("{h:?}")),
    ] {
        assert!(!s.contains(PASSWORD), "the registry password is in the {what}");
    }
}

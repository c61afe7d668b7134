//! Applies 300 objects (100 ConfigMaps, 100 Secrets, 100 Services) on one control
//! plane, once with the agent's `KubeBackend` and once with Debian's
//! `kubectl apply --server-side` (1.20), each into its own namespace, then applies
//! the same objects again (nothing changes). Prints both times and the ratio.
//!
//! `cargo bench -p convoy-tests --bench apply`. kubectl comes from
//! `$CONVOY_CACHE/kubectl-1.20/usr/bin/kubectl` (`apt-get download kubernetes-client`
//! + `dpkg -x` there), or `$KUBECTL`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use convoy_agent::backend::{ApplyRequest, Backend, HealthPolicy, Manifest, ObjectAction, OpRef};
use convoy_agent::kube::{KubeBackend, KubeBackendConfig};
use convoy_tests::kube::ControlPlane;
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::PostParams;
use serde_json::{Value, json};

const EACH: usize = 100;

fn objects() -> Vec<Value> {
    let mut out = Vec::with_capacity(3 * EACH);
    for i in 0..EACH {
        out.push(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("cfg-{i}")},
            "data": {"index": i.to_string(), "app.conf": "listen = 8080\nworkers = 4\n"}}),
        );
        out.push(
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": format!("secret-{i}")},
            "stringData": {"password": format!("not-a-real-password-{i}")}}),
        );
        out.push(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": format!("svc-{i}")},
            "spec": {"selector": {"app": format!("app-{i}")}, "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}]}}));
    }
    out
}

fn kubectl() -> Result<PathBuf, String> {
    if let Some(k) = std::env::var_os("KUBECTL") {
        return Ok(PathBuf::from(k));
    }
    let p = convoy_tests::tools::cache_dir().join("kubectl-1.20/usr/bin/kubectl");
    if p.is_file() {
        Ok(p)
    } else {
        Err(format!(
            "kubectl 1.20 not found at {}: run `apt-get download kubernetes-client && dpkg -x kubernetes-client_*.deb {}` (or set KUBECTL)",
            p.display(),
            convoy_tests::tools::cache_dir().join("kubectl-1.20").display()
        ))
    }
}

async fn create_namespace(cp: &ControlPlane, name: &str) -> Result<(), String> {
    let api: Api<Namespace> = Api::all(cp.client().await);
    let ns: Namespace =
        serde_json::from_value(json!({"metadata": {"name": name}})).map_err(|e| e.to_string())?;
    api.create(&PostParams::default(), &ns)
        .await
        .map(|_| ())
        .map_err(|e| format!("creating namespace {name}: {e}"))
}

fn run_kubectl(kubectl: &Path, cp: &ControlPlane, file: &Path, cache: &Path) -> Result<Duration, String> {
    let start = Instant::now();
    let out = Command::new(kubectl)
        .arg(format!("--kubeconfig={}", cp.kubeconfig_path().display()))
        .arg(format!("--cache-dir={}", cache.display()))
        .args([
            "apply",
            "--server-side",
            "--field-manager=kubectl-bench",
            "-n",
            "bench-kubectl",
            "-f",
        ])
        .arg(file)
        .output()
        .map_err(|e| format!("running {}: {e}", kubectl.display()))?;
    let elapsed = start.elapsed();
    if !out.status.success() {
        return Err(format!(
            "kubectl apply failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let lines = String::from_utf8_lossy(&out.stdout).lines().count();
    if lines != 3 * EACH {
        return Err(format!("kubectl reported {lines} objects, expected {}", 3 * EACH));
    }
    Ok(elapsed)
}

async fn run_convoy(
    b: &KubeBackend,
    revision: u64,
    manifests: &[Manifest],
) -> Result<(Duration, usize), String> {
    let req = ApplyRequest {
        op: OpRef {
            release: "bench.bench-convoy".into(),
            revision,
            operation_id: format!("bench-{revision}"),
        },
        namespace: "bench-convoy".into(),
        manifests: manifests.to_vec(),
        health: HealthPolicy {
            progress_deadline: Duration::from_secs(60),
            min_ready_window: Duration::ZERO,
        },
        force_conflicts: false,
        adopt: false,
        force_roll: false,
        chart: "bench-0.1.0".into(),
        hooks: Vec::new(),
        allow_mass_deletion: false,
        secret_digests: Default::default(),
        blue_green: None,
    };
    let start = Instant::now();
    let results = b.apply(&req).await.map_err(|e| e.to_string())?;
    let elapsed = start.elapsed();
    if results.len() != 3 * EACH {
        return Err(format!(
            "convoy reported {} objects, expected {}",
            results.len(),
            3 * EACH
        ));
    }
    let unchanged = results
        .iter()
        .filter(|r| r.action == ObjectAction::Unchanged)
        .count();
    Ok((elapsed, unchanged))
}

async fn bench() -> Result<(), String> {
    let kubectl = kubectl()?;
    let cp = ControlPlane::start("bench-apply")
        .await
        .map_err(|e| e.to_string())?;
    create_namespace(&cp, "bench-kubectl").await?;
    create_namespace(&cp, "bench-convoy").await?;
    let objs = objects();
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let file = dir.path().join("objects.yaml");
    // JSON documents in a YAML stream (a leading `{` would make kubectl read one JSON).
    let yaml: Vec<String> = objs.iter().map(Value::to_string).collect();
    std::fs::write(&file, format!("---\n{}\n", yaml.join("\n---\n"))).map_err(|e| e.to_string())?;
    let cache = dir.path().join("kubectl-cache");
    let manifests: Vec<Manifest> = objs
        .iter()
        .enumerate()
        .map(|(i, o)| Manifest {
            source: format!("bench/templates/{i}.yaml"),
            content: o.to_string(),
        })
        .collect();

    // kubectl first: a cold apiserver, if anything, slows the first one.
    let k_create = run_kubectl(&kubectl, &cp, &file, &cache)?;
    let k_again = run_kubectl(&kubectl, &cp, &file, &cache)?;

    let backend = KubeBackend::new(
        cp.client().await,
        KubeBackendConfig {
            holder_id: "bench".into(),
            ..KubeBackendConfig::default()
        },
    );
    let (c_create, _) = run_convoy(&backend, 1, &manifests).await?;
    let (c_again, unchanged) = run_convoy(&backend, 1, &manifests).await?;
    if unchanged != 3 * EACH {
        return Err(format!("re-apply changed {} objects", 3 * EACH - unchanged));
    }

    println!(
        "apply of {} objects (100 ConfigMaps, 100 Secrets, 100 Services), one control plane:",
        3 * EACH
    );
    println!("{:<34} {:>10} {:>10}", "", "create", "re-apply");
    println!(
        "{:<34} {:>9.2}s {:>9.2}s",
        "kubectl 1.20 apply --server-side",
        k_create.as_secs_f64(),
        k_again.as_secs_f64()
    );
    println!(
        "{:<34} {:>9.2}s {:>9.2}s",
        "convoy KubeBackend::apply",
        c_create.as_secs_f64(),
        c_again.as_secs_f64()
    );
    println!(
        "{:<34} {:>9.2}x {:>9.2}x",
        "ratio kubectl / convoy",
        k_create.as_secs_f64() / c_create.as_secs_f64(),
        k_again.as_secs_f64() / c_again.as_secs_f64()
    );
    println!("(convoy's time includes discovery, ownership checks and writing the history Secret)");
    Ok(())
}

fn main() {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("apply bench: tokio runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = rt.block_on(bench()) {
        eprintln!("apply bench failed: {e}");
        std::process::exit(1);
    }
}

//! `convoy-agent --check-config` checks what start-up checks, without connecting: a
//! kubeconfig that does not exist or does not parse is refused naming the file, a
//! usable one passes.

use std::path::Path;
use std::process::Command;

/// Runs `--check-config` on `config`; (success, stdout + stderr).
fn check(dir: &Path, config: &str) -> (bool, String) {
    let path = dir.join("agent.yaml");
    std::fs::write(&path, config).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_convoy-agent"))
        .args(["--check-config", "--config"])
        .arg(&path)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn check_config_refuses_a_kubeconfig_start_up_would_refuse() {
    let dir = tempfile::tempdir().unwrap();
    let base = "coordinator: http://127.0.0.1:7443\ncontext: east\nbackend: kubernetes\n";
    let missing = dir.path().join("nope.kubeconfig");
    let (ok, text) = check(dir.path(), &format!("{base}kubeconfig: {}\n", missing.display()));
    assert!(!ok, "{text}");
    assert!(
        text.contains("kubeconfig") && text.contains("nope.kubeconfig"),
        "{text}"
    );

    let garbage = dir.path().join("garbage.kubeconfig");
    std::fs::write(&garbage, "clusters: 5\n").unwrap();
    let (ok, text) = check(dir.path(), &format!("{base}kubeconfig: {}\n", garbage.display()));
    assert!(!ok, "{text}");
    assert!(text.contains("garbage.kubeconfig"), "{text}");

    let (ok, text) = check(dir.path(), base);
    assert!(!ok, "{text}");
    assert!(text.contains("not running in a pod"), "{text}");

    let good = dir.path().join("good.kubeconfig");
    std::fs::write(
        &good,
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n\
         clusters: [{name: k, cluster: {server: 'https://127.0.0.1:6443', insecure-skip-tls-verify: true}}]\n\
         users: [{name: u, user: {token: t}}]\n\
         contexts: [{name: c, context: {cluster: k, user: u}}]\n",
    )
    .unwrap();
    let (ok, text) = check(dir.path(), &format!("{base}kubeconfig: {}\n", good.display()));
    assert!(ok, "{text}");
    assert!(
        text.contains("configuration ok (context east, backend kubernetes)"),
        "{text}"
    );
}

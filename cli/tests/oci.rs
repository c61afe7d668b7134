//! `convoy package`, `convoy push`, and `convoy template` / `lint` with an `oci://`
//! chart, run as a user runs them (the built binary) against a real OCI registry on
//! loopback (Debian's `docker-registry`, htpasswd authentication).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use convoy_tests::charts::Registry;

fn configs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs")
}

fn convoy(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_convoy"));
    cmd.current_dir(dir)
        .args(args)
        .env_remove("CONVOY_REGISTRY")
        .env_remove("CONVOY_REPO_USERNAME")
        .env_remove("CONVOY_REPO_PASSWORD")
        .env_remove("CONVOY_REPO_TOKEN")
        .env_remove("VAULT_ADDR");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("convoy runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn package_push_and_render_from_a_registry() {
    let registry = Registry::start(Some(("ci", "push-pw"))).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let creds = [
        ("CONVOY_REPO_USERNAME", "ci"),
        ("CONVOY_REPO_PASSWORD", "push-pw"),
    ];

    // `convoy package` names the archive after the chart, as `helm package` does.
    let chart = configs().join("charts/app1").display().to_string();
    let out = convoy(d, &["package", &chart, "-d", "dist"], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let archive = d.join("dist/app1-1.4.2.tgz");
    assert!(
        text(&out.stdout).contains("saved it to: dist/app1-1.4.2.tgz"),
        "{}",
        text(&out.stdout)
    );
    assert!(archive.is_file());

    // A wrong password: the registry refuses, convoy says so (without the password).
    let remote = format!("oci://{}/charts", registry.host());
    let a = archive.display().to_string();
    let out = convoy(
        d,
        &["push", &a, &remote, "--plain-http"],
        &[("CONVOY_REPO_USERNAME", "ci"), ("CONVOY_REPO_PASSWORD", "bad-pw")],
    );
    let err = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("authentication failed") && err.contains(&remote),
        "{err}"
    );
    assert!(!err.contains("bad-pw"), "{err}");

    // The right one: pushed to REMOTE/NAME:VERSION.
    let out = convoy(d, &["push", &a, &remote, "--plain-http"], &creds);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        stdout.contains(&format!("Pushed: {remote}/app1:1.4.2")),
        "{stdout}"
    );
    assert!(stdout.contains("Digest: sha256:"), "{stdout}");

    // `convoy template` pulls it by a version range and renders it as from the archive.
    let oci = format!("{remote}/app1");
    let pulled = convoy(
        d,
        &["template", "web", &oci, "--version", "~1.4", "--plain-http"],
        &creds,
    );
    let local = convoy(d, &["template", "web", &a], &[]);
    assert!(pulled.status.success(), "{}", text(&pulled.stderr));
    assert!(
        text(&pulled.stdout).contains("kind: Deployment"),
        "{}",
        text(&pulled.stdout)
    );
    assert_eq!(text(&pulled.stdout), text(&local.stdout));

    // `convoy lint` with a release naming the chart in the registry.
    let original = std::fs::read_to_string(configs().join("releases/app1.yaml")).unwrap();
    let release = original.replace(
        "{path: ../charts/app1}",
        &format!("{{oci: \"{oci}\", version: 1.4.2}}"),
    );
    assert_ne!(release, original);
    std::fs::write(d.join("release.yaml"), release).unwrap();
    let registry_file = configs().join("contexts.yaml").display().to_string();
    let mut env = creds.to_vec();
    env.push(("CONVOY_OCI_PLAIN_HTTP", "1"));
    let out = convoy(
        d,
        &["lint", "-f", "release.yaml", "--registry", &registry_file],
        &env,
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("lint: OK, 3 contexts"), "{stdout}");
    let out = convoy(
        d,
        &["lint", "-f", "release.yaml", "--registry", &registry_file],
        &[("CONVOY_OCI_PLAIN_HTTP", "1")],
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("authentication failed"),
        "{}",
        text(&out.stderr)
    );

    // A local chart whose dependency is not vendored: render fetches it from the
    // registry, as the coordinator would at submit.
    let parent = d.join("parent");
    std::fs::create_dir_all(&parent).unwrap();
    std::fs::write(
        parent.join("Chart.yaml"),
        format!("apiVersion: v2\nname: parent\nversion: 0.1.0\ndependencies:\n  - {{name: app1, version: \"~1.4\", repository: \"{remote}\"}}\n"),
    )
    .unwrap();
    std::fs::write(
        d.join("parent.yaml"),
        "apiVersion: convoy.dev/v1\nkind: Release\nmetadata: {name: stack.ns1, namespace: ns1}\nspec:\n  chart: {path: ./parent}\n  contexts: [dev-us-central1-0]\n",
    )
    .unwrap();
    let render = [
        "render",
        "-f",
        "parent.yaml",
        "--registry",
        &registry_file,
        "--context",
        "dev-us-central1-0",
    ];
    let out = convoy(d, &render, &env);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("parent/charts/app1/templates/"), "{stdout}");
    let out = convoy(d, &render, &[("CONVOY_OCI_PLAIN_HTTP", "1")]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("parent dependency app1")
            && text(&out.stderr).contains("authentication failed"),
        "{}",
        text(&out.stderr)
    );
}

//! `convoy lint` and `convoy render` run as a user runs them: the built binary against the
//! example release, chart and registry in `configs/`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn configs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs")
}

fn convoy(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_convoy"))
        .args(args)
        .env_remove("CONVOY_REGISTRY")
        .env_remove("VAULT_ADDR")
        .output()
        .expect("convoy runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn example() -> String {
    configs().join("releases/app1.yaml").display().to_string()
}

fn registry() -> String {
    configs().join("contexts.yaml").display().to_string()
}

/// The example release with its chart path made absolute, edited by `edit`, written to a
/// temporary directory.
fn edited_release(dir: &Path, edit: impl Fn(String) -> String) -> String {
    let chart = configs().join("charts/app1").display().to_string();
    let original = std::fs::read_to_string(configs().join("releases/app1.yaml")).unwrap();
    let text = edit(original.replace("../charts/app1", &chart));
    let path = dir.join("release.yaml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn lint_passes_the_example_for_every_context() {
    let out = convoy(&["lint", "-f", &example(), "--registry", &registry()]);
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "stdout:\n{stdout}\nstderr:\n{}",
        text(&out.stderr)
    );
    for ctx in ["dev-us-central1-0", "dev-europe-west1-0", "dev-asia-east1-0"] {
        assert!(
            stdout.contains(&format!("{ctx}: OK, 4 objects (sha256:")),
            "{ctx} in:\n{stdout}"
        );
    }
    assert!(stdout.contains("  chart:    app1 1.4.2"), "{stdout}");
    assert!(
        stdout.contains("  secrets:  app1 not resolved offline: placeholders stand in for them"),
        "{stdout}"
    );
    assert!(stdout.trim_end().ends_with("lint: OK, 3 contexts"), "{stdout}");
}

#[test]
fn lint_finds_the_registry_above_the_release() {
    let out = convoy(&["lint", "-f", &example()]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("contexts.yaml (3 contexts)"), "{stdout}");
}

#[test]
fn lint_reports_release_errors_with_positions_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let chart = configs().join("charts/app1").display().to_string();
    let file = dir.path().join("small.yaml").display().to_string();
    let small = format!(
        "apiVersion: convoy.dev/v1\nkind: Release\nmetadata: {{name: app1.ns1}}\nspec:\n  chart: {{path: {chart}}}\n  contexts: [dev-us-central1-0, dev-europe-west-0]\n"
    );
    std::fs::write(&file, small).unwrap();
    let out = convoy(&["lint", "-f", &file, "--registry", &registry()]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{file}:6:33: spec.contexts[1]: unknown context `dev-europe-west-0`; did you mean `dev-europe-west1-0`?"
        )),
        "{stderr}"
    );
    assert!(stdout.contains("dev-us-central1-0: OK"), "{stdout}");
    assert!(
        stdout.contains("dev-europe-west-0: SKIPPED (not in the registry)"),
        "{stdout}"
    );
    assert!(
        stderr.contains("lint failed: 1 of 2 contexts failed; the release has validation errors"),
        "{stderr}"
    );

    let file = edited_release(dir.path(), |t| t.replace("maxConcurrency: 2", "maxConcurency: 2"));
    let out = convoy(&["lint", "-f", &file, "--registry", &registry()]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr.contains(&format!(
            "{file}:31:5: spec.strategy.maxConcurency: unknown field `maxConcurency`; did you mean `maxConcurrency`?"
        )),
        "{stderr}"
    );
}

#[test]
fn lint_fails_when_a_scaled_name_is_not_in_the_render() {
    let dir = tempfile::tempdir().unwrap();
    let file = edited_release(dir.path(), |t| {
        t.replace("[{name: hermes, count: 3}]", "[{name: hermez, count: 3}]")
    });
    let out = convoy(&["lint", "-f", &file, "--registry", &registry()]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(stdout.contains("dev-us-central1-0: OK"), "{stdout}");
    assert!(stdout.contains("dev-europe-west1-0: FAILED"), "{stdout}");
    assert!(
        stderr.contains(&format!(
            "{file}:23:18: spec.scaling[1].replicas[0]: no Deployment or StatefulSet named `hermez` in the render for context dev-europe-west1-0; it has Deployment/hermes"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("lint failed: 1 of 3 contexts failed"), "{stderr}");
}

#[test]
fn render_shows_one_context_with_scaling_globals_and_masked_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let canary = "canary-Sup3rS3cret-7f1c";
    let secrets = dir.path().join("secrets.yaml");
    std::fs::write(&secrets, format!("app1: {canary}\n")).unwrap();
    let out = convoy(&[
        "render",
        "-f",
        &example(),
        "--registry",
        &registry(),
        "--context",
        "dev-europe-west1-0",
        "--secrets-file",
        &secrets.display().to_string(),
    ]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(!stdout.contains(canary), "the secret leaked:\n{stdout}");
    // base64 of the canary, as the chart's b64enc writes it.
    assert!(
        !stdout.contains("Y2FuYXJ5LVN1cDNyUzNjcmV0LTdmMWM="),
        "the encoded secret leaked:\n{stdout}"
    );
    assert!(stdout.contains("  APP1: <masked>"), "{stdout}");
    assert!(
        stdout.contains("# secret app1: /kv/dev/ns1/app1/eu#password (from --secrets-file; values masked)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("# Source: app1/templates/deployment.yaml"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  replicas: 3\n"),
        "scaling not applied:\n{stdout}"
    );
    assert!(stdout.contains("REGION: \"europe-west1\""), "{stdout}");
    assert!(stdout.contains("CLUSTER_NAME: \"dev-euw1-0\""), "{stdout}");
    assert!(stdout.contains("GREETING: \"hello\""), "{stdout}");
    assert!(stdout.contains("namespace: ns1"), "{stdout}");
}

#[test]
fn render_without_secrets_uses_marked_placeholders() {
    let out = convoy(&[
        "render",
        "-f",
        &example(),
        "--registry",
        &registry(),
        "--context",
        "dev-asia-east1-0",
    ]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains(
            "# secret app1: /kv/dev/ns1/app1/test#password (not resolved offline: placeholder; values masked)"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("GREETING: \"konnichiwa\""),
        "contextValues not applied:\n{stdout}"
    );
    assert!(stdout.contains("  replicas: 1\n"), "{stdout}");
}

#[test]
fn render_refuses_a_context_that_is_not_a_target() {
    let out = convoy(&[
        "render",
        "-f",
        &example(),
        "--registry",
        &registry(),
        "--context",
        "dev-asia-east1-1",
    ]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr.contains("`dev-asia-east1-1` is not a target of app1.ns1 (did you mean `dev-asia-east1-0`?)"),
        "{stderr}"
    );
}

#[test]
fn help_has_examples() {
    for cmd in ["lint", "render"] {
        let out = convoy(&[cmd, "--help"]);
        let stdout = text(&out.stdout);
        assert!(out.status.success());
        assert!(
            stdout.contains("Examples:") && stdout.contains(&format!("convoy {cmd} -f")),
            "{stdout}"
        );
        assert!(
            stdout.contains("--registry") && stdout.contains("--chart-dir"),
            "{stdout}"
        );
    }
}

/// Serves `files` over HTTP on a loopback port for at most `max_requests` requests;
/// returns the base URL and the Authorization headers it saw.
fn serve(
    files: Vec<(&'static str, Vec<u8>)>,
    max_requests: usize,
) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(max_requests) {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            let _ = reader.read_line(&mut request_line);
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
                    break;
                }
                if header.to_ascii_lowercase().starts_with("authorization:") {
                    seen2.lock().unwrap().push(header.trim_end().to_string());
                }
            }
            let path = request_line.split_whitespace().nth(1).unwrap_or("").to_string();
            let body = files.iter().find(|(p, _)| *p == path).map(|(_, b)| b.clone());
            let (status, body) = match body {
                Some(b) => ("200 OK", b),
                None => ("404 Not Found", b"not found".to_vec()),
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        }
    });
    (url, seen)
}

#[test]
fn lint_fetches_a_chart_from_a_repository() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("app1-1.4.2.tgz");
    let status = Command::new("tar")
        .arg("czf")
        .arg(&archive)
        .arg("-C")
        .arg(configs().join("charts"))
        .arg("app1")
        .status()
        .expect("tar runs");
    assert!(status.success());
    let index = "apiVersion: v1\nentries:\n  app1:\n    - {name: app1, version: 1.4.2, urls: [charts/app1-1.4.2.tgz]}\n    - {name: app1, version: 1.3.0, urls: [charts/missing.tgz]}\n";
    let (url, seen) = serve(
        vec![
            ("/index.yaml", index.as_bytes().to_vec()),
            ("/charts/app1-1.4.2.tgz", std::fs::read(&archive).unwrap()),
        ],
        4,
    );
    let original = std::fs::read_to_string(configs().join("releases/app1.yaml")).unwrap();
    let release = original.replace(
        "{path: ../charts/app1}",
        &format!("{{repo: {url}, name: app1, version: \"~1.4\"}}"),
    );
    let file = dir.path().join("release.yaml").display().to_string();
    std::fs::write(&file, release).unwrap();

    let out = Command::new(env!("CARGO_BIN_EXE_convoy"))
        .args(["lint", "-f", &file, "--registry", &registry()])
        .env_remove("CONVOY_REGISTRY")
        .env_remove("HTTP_PROXY")
        .env_remove("http_proxy")
        .env_remove("ALL_PROXY")
        .env("CONVOY_CACHE", dir.path().join("cache"))
        .env("CONVOY_REPO_TOKEN", "test-token")
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains(&format!("  chart:    app1 1.4.2 ({url} app1 ~1.4)")),
        "{stdout}"
    );
    assert!(stdout.contains("lint: OK, 3 contexts"), "{stdout}");
    assert!(!stdout.contains("test-token"));
    let seen = seen.lock().unwrap();
    assert!(
        seen.iter()
            .any(|h| h.eq_ignore_ascii_case("authorization: bearer test-token")),
        "the token was not sent: {seen:?}"
    );
}

#[test]
fn an_unreachable_repository_is_not_invalid_input() {
    let dir = tempfile::tempdir().unwrap();
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let original = std::fs::read_to_string(configs().join("releases/app1.yaml")).unwrap();
    let release = original.replace(
        "{path: ../charts/app1}",
        &format!("{{repo: http://127.0.0.1:{port}, name: app1, version: 1.4.2}}"),
    );
    let file = dir.path().join("release.yaml").display().to_string();
    std::fs::write(&file, release).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_convoy"))
        .args(["lint", "-f", &file, "--registry", &registry()])
        .env("CONVOY_CACHE", dir.path().join("cache"))
        .env_remove("HTTP_PROXY")
        .env_remove("http_proxy")
        .env_remove("ALL_PROXY")
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{file}: fetching chart app1 1.4.2 from http://127.0.0.1:{port}"
        )),
        "{stderr}"
    );
}

/// A document Helm (and a submit) cannot turn into JSON fails lint too, naming the
/// template, instead of passing lint and failing the submit.
#[test]
fn lint_refuses_what_a_submit_could_not_ship() {
    let dir = tempfile::tempdir().unwrap();
    let chart = dir.path().join("inf");
    std::fs::create_dir_all(chart.join("templates")).unwrap();
    std::fs::write(
        chart.join("Chart.yaml"),
        "apiVersion: v2\nname: inf\nversion: 0.1.0\n",
    )
    .unwrap();
    std::fs::write(
        chart.join("templates/cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ratio}\ndata:\n  ok: \"1\"\nspec: {ratio: .inf}\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("contexts.yaml"),
        "contexts:\n  - {name: dev-a, region: r1, env: dev, cloud: sim, clusterName: a}\n",
    )
    .unwrap();
    let release = dir.path().join("inf.yaml");
    std::fs::write(
        &release,
        "apiVersion: convoy.dev/v1\nkind: Release\nmetadata: {name: inf.ns1, namespace: ns1}\nspec:\n  chart: {path: ./inf}\n  contexts: [dev-a]\n",
    )
    .unwrap();
    let registry = dir.path().join("contexts.yaml").display().to_string();
    let out = convoy(&[
        "lint",
        "-f",
        &release.display().to_string(),
        "--registry",
        &registry,
    ]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(stdout.contains("dev-a: FAILED"), "{stdout}");
    assert!(
        stderr.contains("inf/templates/cm.yaml") && stderr.contains("+Inf"),
        "{stderr}"
    );
}

/// A template error quoting a supplied secret (`fail`, also upper-cased) is masked in
/// what `render` and `lint` print; `getHostByName` is refused as in a deploy.
#[test]
fn render_and_lint_mask_a_secret_quoted_by_a_template_error() {
    let dir = tempfile::tempdir().unwrap();
    let chart = dir.path().join("leaky");
    std::fs::create_dir_all(chart.join("templates")).unwrap();
    std::fs::write(
        chart.join("Chart.yaml"),
        "apiVersion: v2\nname: leaky\nversion: 1.0.0\n",
    )
    .unwrap();
    std::fs::write(
        chart.join("templates/cm.yaml"),
        "{{ if .Values.dns }}{{ getHostByName \"localhost\" }}{{ end }}{{ fail (printf \"bad %s %s\" .Values.secrets.db (upper .Values.secrets.db)) }}\n",
    )
    .unwrap();
    let release = |dns: bool| {
        format!(
            "apiVersion: convoy.dev/v1\nkind: Release\nmetadata: {{name: leaky.ns1}}\nspec:\n  chart: {{path: ./leaky}}\n  values: {{dns: {dns}}}\n  contexts: [dev-us-central1-0]\n  secrets:\n    - secret_id: db\n      contexts: [{{name: default, vaultPath: /kv/db, vaultKey: pw}}]\n"
        )
    };
    let file = dir.path().join("leaky.yaml");
    std::fs::write(&file, release(false)).unwrap();
    let secrets = dir.path().join("secrets.yaml");
    std::fs::write(&secrets, "db: hunter22-canary\n").unwrap();
    let (file, secrets) = (file.display().to_string(), secrets.display().to_string());
    let reg = registry();
    for args in [
        vec!["render", "-f", &file, "--context", "dev-us-central1-0"],
        vec!["lint", "-f", &file],
    ] {
        let mut args = args.clone();
        args.extend(["--registry", reg.as_str(), "--secrets-file", secrets.as_str()]);
        let out = convoy(&args);
        let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert!(!out.status.success(), "{all}");
        assert!(all.contains("bad <masked> <masked>"), "{all}");
        assert!(!all.contains("hunter22") && !all.contains("HUNTER22"), "{all}");
    }
    let dns = dir.path().join("dns.yaml");
    std::fs::write(&dns, release(true)).unwrap();
    let dns = dns.display().to_string();
    let out = convoy(&[
        "render",
        "-f",
        &dns,
        "--context",
        "dev-us-central1-0",
        "--registry",
        &registry(),
        "--secrets-file",
        &secrets,
    ]);
    assert!(
        text(&out.stderr).contains("getHostByName is disabled"),
        "{}",
        text(&out.stderr)
    );
}

//! The online commands run as Jenkins runs them: the built `convoy` binary with stdout a
//! pipe, against a real `convoyd` and three `convoy-agent`s on the simulated backend.
//! Outputs are compared with golden files in `tests/golden/` after redacting what changes
//! between runs (times, ports, durations, operation ids). `CONVOY_UPDATE_GOLDEN=1`
//! rewrites the golden files from the current output (review the diff before committing).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use convoy_tests::convoy::{AgentProcess, Convoyd};

const CONTEXTS: [(&str, &str); 3] = [("east", "us-east1"), ("west", "us-west1"), ("south", "sa-east1")];

/// A coordinator with one simulated agent per context, and a directory for release files.
struct Fleet {
    convoyd: Convoyd,
    agents: Vec<AgentProcess>,
    dir: tempfile::TempDir,
}

async fn fleet() -> Fleet {
    fleet_with_secrets("\"/kv/dev/shop/db#password\": dev-only-password\n").await
}

/// A fleet whose coordinator resolves secrets from `dev_secrets` (a dev secrets file).
async fn fleet_with_secrets(dev_secrets: &str) -> Fleet {
    fleet_with(dev_secrets, "").await
}

/// As [`fleet_with_secrets`], with `extra` appended to the coordinator's config.
async fn fleet_with(dev_secrets: &str, extra: &str) -> Fleet {
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("dev-secrets.yaml");
    std::fs::write(&secrets, dev_secrets).unwrap();
    let mut cfg = String::from("contexts:\n");
    for (c, region) in CONTEXTS {
        cfg.push_str(&format!(
            "  - {{name: {c}, region: {region}, env: dev, cloud: sim, clusterName: {c}-1}}\n"
        ));
    }
    cfg.push_str(
        "auth:\n  tokens:\n    - {name: alice, role: admin, token: t-admin}\n    - {name: bob, role: viewer, token: t-view}\n  agents:\n",
    );
    for (c, _) in CONTEXTS {
        cfg.push_str(&format!("    - {{context: {c}, token: a-{c}}}\n"));
    }
    cfg.push_str(&format!(
        "dev_secrets_file: {}\nheartbeat_seconds: 2\n{extra}",
        secrets.display()
    ));
    let convoyd = Convoyd::start(&cfg).await.expect("convoyd starts");
    let mut agents = Vec::new();
    for (c, _) in CONTEXTS {
        agents.push(
            AgentProcess::start(&convoyd.addr, c, &format!("a-{c}"), None, "")
                .await
                .expect("agent starts"),
        );
    }
    Fleet { convoyd, agents, dir }
}

impl Fleet {
    /// Writes `web.yaml`-style release `name` into the fleet's directory: `image`
    /// everywhere, crash-looping in `crash_in`.
    fn release(&self, name: &str, image: &str, behavior: &str, crash_in: Option<&str>) {
        self.release_with(name, image, behavior, crash_in, "");
    }

    /// As [`Fleet::release`], with `strategy` keys added (`approval: {...}`).
    fn release_with(&self, name: &str, image: &str, behavior: &str, crash_in: Option<&str>, strategy: &str) {
        let chart = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/charts/web");
        let crash = crash_in
            .map(|c| format!("  contextValues:\n    {c}: {{behavior: \"crashloop,after=300ms\"}}\n"))
            .unwrap_or_default();
        let text = format!(
            "apiVersion: convoy.dev/v1\nkind: Release\nmetadata: {{name: web.shop, namespace: shop, environment: dev}}\n\
             spec:\n  chart: {{path: {}}}\n  values: {{image: \"{image}\", behavior: \"{behavior}\", message: hi}}\n{crash}\
             \x20 contexts: [east, west, south]\n\
             \x20 secrets:\n    - secret_id: db\n      contexts:\n        - {{name: default, vaultPath: /kv/dev/shop/db, vaultKey: password}}\n\
             \x20 strategy: {{waves: [[east], [west], [south]], maxFailures: 0, onFailure: rollback, soak: 0s{strategy}}}\n\
             \x20 health: {{progressDeadline: 1m, minReadyWindow: 500ms}}\n",
            chart.display()
        );
        std::fs::write(self.dir.path().join(name), text).unwrap();
    }

    /// Runs `convoy ARGS` in the fleet's directory with `token`, stdout a pipe.
    fn convoy(&self, token: &str, args: &[&str]) -> Output {
        convoy_at(&self.convoyd.addr, token, self.dir.path(), args)
    }

    fn logs(&self) -> String {
        let agents: String = self
            .agents
            .iter()
            .map(|a| format!("--- agent {}\n{}", a.context, a.logs()))
            .collect();
        format!("--- convoyd\n{}\n{agents}", self.convoyd.logs())
    }
}

fn convoy_at(server: &str, token: &str, dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_convoy"))
        .args(args)
        .current_dir(dir)
        .env("CONVOY_SERVER", server)
        .env("CONVOY_TOKEN", token)
        .env("COLUMNS", "200")
        .output()
        .expect("convoy runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Replaces what differs between runs with stable placeholders.
fn redact(text: &str) -> String {
    let rules = [
        (r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z", "<TIME>"),
        (r"op-\d+", "op-<ID>"),
        (r"127\.0\.0\.1:\d+", "127.0.0.1:<PORT>"),
        (r"\(\d+(\.\d+)?(ms|s)\)|\(\d+m\d\ds\)", "(<DURATION>)"),
        (r#""durationMs": \d+"#, r#""durationMs": "<DURATION>""#),
        (r"last seen \d+s ago", "last seen <N>s ago"),
        (r"digest sha256:[0-9a-f]{64}", "digest sha256:<DIGEST>"),
        (
            r#""chartDigest": "sha256:[0-9a-f]{64}""#,
            r#""chartDigest": "sha256:<DIGEST>""#,
        ),
    ];
    rules.iter().fold(text.to_string(), |t, (re, with)| {
        regex::Regex::new(re).unwrap().replace_all(&t, *with).into_owned()
    })
}

fn golden_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

/// Compares redacted `actual` with `tests/golden/NAME`.
#[track_caller]
fn assert_golden(name: &str, actual: &str) {
    let actual = redact(actual);
    let path = golden_path(name);
    if std::env::var_os("CONVOY_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &actual).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with CONVOY_UPDATE_GOLDEN=1 to create it)",
            path.display()
        )
    });
    assert_eq!(actual, want, "output differs from {}", path.display());
}

#[track_caller]
fn assert_exit(o: &Output, code: i32, fleet: Option<&Fleet>) {
    if o.status.code() != Some(code) {
        let logs = fleet.map(Fleet::logs).unwrap_or_default();
        panic!(
            "expected exit {code}, got {:?}\nstdout:\n{}\nstderr:\n{}\n{logs}",
            o.status.code(),
            stdout(o),
            stderr(o)
        );
    }
}

/// A plain rollout log's context lines as (context, phase), checking that every line
/// has the documented shape (`TIME CONTEXT wave=N PHASE READY/DESIRED MESSAGE`, or an
/// operation line `TIME RELEASE KIND revision=N PHASE ...`).
fn context_lines(plain: &str) -> Vec<(String, String)> {
    let context =
        regex::Regex::new(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ (\S+) wave=\d+ ([A-Z_]+) \d+/\d+( .*)?$")
            .unwrap();
    let operation = regex::Regex::new(
        r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ web\.shop (deploy|rollback) revision=\d+ [A-Z_]+( .*)?$",
    )
    .unwrap();
    let mut out = Vec::new();
    // The first line says what was submitted; the last is the summary.
    let lines: Vec<&str> = plain.lines().collect();
    for line in lines.iter().skip(1).take(lines.len().saturating_sub(2)) {
        if let Some(c) = context.captures(line) {
            out.push((c[1].to_string(), c[2].to_string()));
        } else {
            assert!(
                operation.is_match(line),
                "not a plain progress line: {line:?}\n{plain}"
            );
        }
    }
    out
}

/// Per context, the settled phases it went through, in order. Transitional phases
/// (PENDING, DISPATCHED, APPLYING, PROGRESSING) are left out: whether the watch sees
/// them depends on when it started and how fast the agent reports.
fn settled_phases(plain: &str) -> String {
    let mut per: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for (ctx, phase) in context_lines(plain) {
        if ["PENDING", "DISPATCHED", "APPLYING", "PROGRESSING"].contains(&phase.as_str()) {
            continue;
        }
        let seen = per.entry(ctx).or_default();
        if seen.last() != Some(&phase) {
            seen.push(phase);
        }
    }
    per.iter()
        .map(|(c, p)| format!("{c}: {}\n", p.join(" ")))
        .collect()
}

/// Each wave starts only after the previous one is healthy.
#[track_caller]
fn assert_waves_in_order(plain: &str, order: &[&str]) {
    // The preflight dry run reaches every context before the first wave starts (its
    // lines say "preflight"); wave order is about the real dispatch.
    let rollout: String = plain
        .lines()
        .filter(|l| !l.contains("preflight"))
        .map(|l| format!("{l}\n"))
        .collect();
    let lines = context_lines(&rollout);
    let pos = |pred: &dyn Fn(&(String, String)) -> bool| lines.iter().position(pred);
    for pair in order.windows(2) {
        let healthy = pos(&|(c, p)| c == pair[0] && p == "HEALTHY")
            .unwrap_or_else(|| panic!("{} never healthy:\n{plain}", pair[0]));
        let started = pos(&|(c, p)| c == pair[1] && p != "PENDING").unwrap_or(usize::MAX);
        assert!(
            healthy < started,
            "{} started before {} was healthy:\n{plain}",
            pair[1],
            pair[0]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_watch_status_history_and_rollback_against_a_real_coordinator() {
    let mut fleet = fleet().await;

    // A success: submit --wait as Jenkins sees it (plain timestamped lines), then status
    // and history, as tables and as JSON.
    fleet.release(
        "web.yaml",
        "registry.example/web:1.0",
        "healthy,after=200ms",
        None,
    );
    let out = fleet.convoy(
        "t-admin",
        &["submit", "-f", "web.yaml", "--wait", "--reason", "first deploy"],
    );
    assert_exit(&out, 0, Some(&fleet));
    let log = stdout(&out);
    eprintln!("successful rollout, as Jenkins logs it:\n{log}");
    let first = log.lines().next().unwrap_or_default();
    assert_golden("submit_wait_first_line.txt", &format!("{first}\n"));
    assert_golden("submit_wait_phases.txt", &settled_phases(&log));
    assert_waves_in_order(&log, &["east", "west", "south"]);
    let last = log.lines().last().unwrap_or_default();
    assert_golden("submit_wait_summary.txt", &format!("{last}\n"));

    let out = fleet.convoy("t-view", &["status", "web.shop"]);
    assert_exit(&out, 0, Some(&fleet));
    assert_golden("status.txt", &stdout(&out));
    let out = fleet.convoy("t-view", &["status", "web.shop", "-o", "json"]);
    assert_exit(&out, 0, Some(&fleet));
    assert_golden("status.json", &stdout(&out));
    let out = fleet.convoy("t-view", &["history", "web.shop"]);
    assert_exit(&out, 0, Some(&fleet));
    assert_golden("history.txt", &stdout(&out));

    // A failure with automatic rollback: west crash-loops, east (already updated) and
    // west go back to revision 1, south is never touched. Exit 3, naming the rollback.
    fleet.release(
        "bad.yaml",
        "registry.example/web:2.0",
        "healthy,after=200ms",
        Some("west"),
    );
    let out = fleet.convoy(
        "t-admin",
        &[
            "submit",
            "-f",
            "bad.yaml",
            "--wait",
            "--reason",
            "crashes in west",
        ],
    );
    assert_exit(&out, 3, Some(&fleet));
    assert_golden("submit_rollback.stderr", &stderr(&out));
    assert_golden("submit_rollback_phases.txt", &settled_phases(&stdout(&out)));
    eprintln!("failed rollout, as Jenkins logs it:\n{}", stdout(&out));
    let out = fleet.convoy("t-view", &["history", "web.shop", "-o", "json"]);
    assert_exit(&out, 0, Some(&fleet));
    assert_golden("history.json", &stdout(&out));

    // What each revision deployed, as on-call reads it before choosing a rollback
    // target: revision 2's images and changed values, the automatic rollback (3)
    // shipping revision 1's images, and what changed from 1 to 2.
    let out = fleet.convoy("t-view", &["history", "web.shop", "--show", "2"]);
    assert_exit(&out, 0, Some(&fleet));
    assert_golden("history_show.txt", &stdout(&out));
    let out = fleet.convoy("t-view", &["history", "web.shop", "--show", "3"]);
    assert_exit(&out, 0, Some(&fleet));
    assert!(
        stdout(&out).contains("Deployment/web web: registry.example/web:1.0"),
        "{}",
        stdout(&out)
    );
    let out = fleet.convoy("t-view", &["history", "web.shop", "--diff", "1", "2"]);
    assert_exit(&out, 0, Some(&fleet));
    assert_golden("history_diff.txt", &stdout(&out));
    let out = fleet.convoy(
        "t-view",
        &["history", "web.shop", "--diff", "1", "2", "-o", "json"],
    );
    assert_exit(&out, 0, Some(&fleet));
    let diff: serde_json::Value = serde_json::from_slice(&out.stdout).expect("--diff -o json is JSON");
    assert_eq!(
        diff["images"][0]["before"], "registry.example/web:1.0",
        "{diff:#}"
    );
    assert_eq!(diff["images"][0]["after"], "registry.example/web:2.0", "{diff:#}");
    let changed: Vec<(String, String)> = diff["values"]
        .as_array()
        .expect("values")
        .iter()
        .map(|c| {
            (
                c["context"].as_str().unwrap_or_default().to_string(),
                c["path"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(
        changed,
        [
            ("".to_string(), "image".to_string()),
            ("west".to_string(), "behavior".to_string())
        ]
    );
    for args in [["--show", "2"].as_slice(), ["--diff", "1", "2"].as_slice()] {
        let mut all = vec!["history", "web.shop"];
        all.extend_from_slice(args);
        let out = fleet.convoy("t-view", &all);
        assert!(!stdout(&out).contains("dev-only-password"), "{}", stdout(&out));
    }
    let out = fleet.convoy("t-view", &["history", "web.shop", "--show", "9"]);
    assert_exit(&out, 2, Some(&fleet));
    assert!(
        stderr(&out).contains("no revision 9 (revisions 1 to 3"),
        "{}",
        stderr(&out)
    );

    // JSON for scripts: submit without waiting, then watch the operation as JSON lines.
    fleet.release("v3.yaml", "registry.example/web:3.0", "healthy,after=200ms", None);
    let out = fleet.convoy(
        "t-admin",
        &["submit", "-f", "v3.yaml", "-o", "json", "--reason", "json"],
    );
    assert_exit(&out, 0, Some(&fleet));
    assert_golden("submit.json", &stdout(&out));
    let submitted: serde_json::Value = serde_json::from_slice(&out.stdout).expect("submit -o json is JSON");
    let op = submitted["operationId"].as_str().expect("operationId");
    let out = fleet.convoy("t-view", &["watch", "web.shop", "--operation", op, "-o", "json"]);
    assert_exit(&out, 0, Some(&fleet));
    let events: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("each watch line is JSON"))
        .collect();
    let last_op = events
        .iter()
        .rev()
        .find_map(|e| e.get("operation"))
        .expect("an operation event");
    assert_eq!(last_op["phase"], "SUCCEEDED", "{events:#?}");
    assert!(events.iter().all(|e| e["operationId"] == op), "{events:#?}");

    // A viewer may not roll back: exit 4, whatever --yes says.
    let out = fleet.convoy("t-view", &["rollback", "web.shop", "--reason", "INC-1", "--yes"]);
    assert_exit(&out, 4, Some(&fleet));
    assert_golden("rollback_viewer.stderr", &stderr(&out));

    // An operator's rollback to revision 1, waited on.
    let out = fleet.convoy(
        "t-admin",
        &[
            "rollback",
            "web.shop",
            "--to-revision",
            "1",
            "--reason",
            "INC-1",
            "--yes",
            "--wait",
        ],
    );
    assert_exit(&out, 0, Some(&fleet));
    assert!(stdout(&out).contains("SUCCEEDED"), "{}", stdout(&out));

    // On-call's narrower lever: one context only; history shows it touched west alone.
    let out = fleet.convoy(
        "t-admin",
        &[
            "rollback",
            "web.shop",
            "--context",
            "west",
            "--to-revision",
            "1",
            "--reason",
            "INC-2 west only",
            "--yes",
            "--wait",
        ],
    );
    assert_exit(&out, 0, Some(&fleet));
    let out = fleet.convoy("t-view", &["history", "web.shop", "-o", "json"]);
    assert_exit(&out, 0, Some(&fleet));
    let history: serde_json::Value = serde_json::from_slice(&out.stdout).expect("history -o json is JSON");
    let newest = &history["revisions"][0];
    assert_eq!(newest["reason"], "INC-2 west only", "{newest:#}");
    let touched: Vec<&str> = newest["outcomes"]
        .as_array()
        .expect("outcomes")
        .iter()
        .filter_map(|o| o["context"].as_str())
        .collect();
    assert_eq!(touched, ["west"], "{newest:#}");
    let out = fleet.convoy(
        "t-admin",
        &[
            "rollback",
            "web.shop",
            "--context",
            "mars",
            "--reason",
            "typo",
            "--yes",
        ],
    );
    assert_exit(&out, 2, Some(&fleet));
    assert!(stderr(&out).contains("\"mars\""), "{}", stderr(&out));

    // A release file the coordinator refuses: exit 2, the position in the file shown.
    let bad = std::fs::read_to_string(fleet.dir.path().join("web.yaml"))
        .unwrap()
        .replace("[east, west, south]", "[east, nowhere]");
    std::fs::write(fleet.dir.path().join("typo.yaml"), bad).unwrap();
    let out = fleet.convoy("t-admin", &["submit", "-f", "typo.yaml"]);
    assert_exit(&out, 2, Some(&fleet));
    assert_golden("submit_invalid.stderr", &stderr(&out));

    // The registry with every agent connected, and an empty queue once all is done.
    let out = fleet.convoy("t-view", &["clusters", "-o", "json"]);
    assert_exit(&out, 0, Some(&fleet));
    let clusters: serde_json::Value = serde_json::from_slice(&out.stdout).expect("clusters -o json is JSON");
    let connected: Vec<&str> = clusters["clusters"]
        .as_array()
        .expect("a list")
        .iter()
        .filter(|c| c["agent"]["connected"] == true)
        .filter_map(|c| c["context"].as_str())
        .collect();
    assert_eq!(connected, ["east", "south", "west"], "{clusters:#}");
    let out = fleet.convoy("t-view", &["queue", "web.shop"]);
    assert_exit(&out, 0, Some(&fleet));
    assert_eq!(stdout(&out), "web.shop: nothing running or queued\n");

    // No such release: exit 6.
    let out = fleet.convoy("t-view", &["status", "nope.shop"]);
    assert_exit(&out, 6, Some(&fleet));

    // The coordinator restarting under a waiting Jenkins job: the watch is reopened and
    // the job still gets the rollout's outcome instead of failing while it carries on.
    fleet.release("slow.yaml", "registry.example/web:5.0", "healthy,after=3s", None);
    let waiting = Command::new(env!("CARGO_BIN_EXE_convoy"))
        .args(["submit", "-f", "slow.yaml", "--wait", "--reason", "restart"])
        .current_dir(fleet.dir.path())
        .env("CONVOY_SERVER", &fleet.convoyd.addr)
        .env("CONVOY_TOKEN", "t-admin")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("convoy runs");
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    fleet.convoyd.restart().await.expect("convoyd restarts");
    let out = tokio::task::spawn_blocking(move || waiting.wait_with_output().expect("convoy ends"))
        .await
        .unwrap();
    assert_exit(&out, 0, Some(&fleet));
    assert!(stderr(&out).contains("watching again"), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("SUCCEEDED: 3 of 3 contexts healthy"),
        "{}",
        stdout(&out)
    );
}

/// Secret values the diff test resolves; neither may appear in any output.
const CANARIES: [&str; 2] = ["canary-one-5f1d2c", "canary-two-9b7e4a"];

/// A release of the `web` chart for the diff test: `image`, `replicas`, a multi-line
/// config file as the ConfigMap's `message`, and the `db` secret from `vault_path`.
fn diff_release(fleet: &Fleet, name: &str, image: &str, replicas: u32, workers: u32, vault_path: &str) {
    let chart = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/charts/web");
    let conf = format!(
        "# web.conf\nlisten = 8080\nworkers = {workers}\nlog = info\ntimeout = 30s\nkeepalive = on\n"
    );
    let conf = serde_json::to_string(&conf).unwrap();
    let text = format!(
        "apiVersion: convoy.dev/v1\nkind: Release\nmetadata: {{name: web.shop, namespace: shop, environment: dev}}\n\
         spec:\n  chart: {{path: {}}}\n\
         \x20 values: {{image: \"{image}\", replicas: {replicas}, behavior: \"healthy,after=200ms\", message: {conf}}}\n\
         \x20 contexts: [east, west, south]\n\
         \x20 secrets:\n    - secret_id: db\n      contexts:\n        - {{name: default, vaultPath: {vault_path}, vaultKey: password}}\n\
         \x20 strategy: {{waves: [[east], [west], [south]], maxFailures: 0, onFailure: rollback, soak: 0s}}\n\
         \x20 health: {{progressDeadline: 1m, minReadyWindow: 500ms}}\n",
        chart.display()
    );
    std::fs::write(fleet.dir.path().join(name), text).unwrap();
}

#[track_caller]
fn assert_no_canary(o: &Output) {
    for canary in CANARIES {
        for (stream, text) in [("stdout", stdout(o)), ("stderr", stderr(o))] {
            assert!(!text.contains(canary), "a secret value reached {stream}:\n{text}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diff_shows_what_a_submit_would_change_with_secrets_masked() {
    let secrets = format!(
        "\"/kv/dev/shop/db#password\": {}\n\"/kv/dev/shop/db2#password\": {}\n",
        CANARIES[0], CANARIES[1]
    );
    let mut fleet = fleet_with_secrets(&secrets).await;
    diff_release(
        &fleet,
        "v1.yaml",
        "registry.example/web:1.0",
        1,
        2,
        "/kv/dev/shop/db",
    );
    diff_release(
        &fleet,
        "v2.yaml",
        "registry.example/web:1.1",
        2,
        4,
        "/kv/dev/shop/db2",
    );

    // Nothing deployed yet: every object would be created.
    let out = fleet.convoy("t-admin", &["diff", "-f", "v1.yaml"]);
    assert_exit(&out, 0, Some(&fleet));
    assert_no_canary(&out);
    assert_golden("diff_create.txt", &stdout(&out));

    let out = fleet.convoy(
        "t-admin",
        &["submit", "-f", "v1.yaml", "--wait", "--reason", "v1"],
    );
    assert_exit(&out, 0, Some(&fleet));
    assert_no_canary(&out);

    // The same file again: nothing would change, and --exit-code agrees.
    let out = fleet.convoy("t-admin", &["diff", "-f", "v1.yaml", "--exit-code"]);
    assert_exit(&out, 0, Some(&fleet));
    assert!(
        stdout(&out).starts_with("release web.shop: 0 of 3 contexts would change\n"),
        "{}",
        stdout(&out)
    );

    // A new image, replicas, one line of the config file and the secret's value.
    let out = fleet.convoy("t-admin", &["diff", "-f", "v2.yaml"]);
    assert_exit(&out, 0, Some(&fleet));
    assert_no_canary(&out);
    eprintln!("diff of v2, as Jenkins logs it:\n{}", stdout(&out));
    assert_golden("diff_update.txt", &stdout(&out));
    let out = fleet.convoy("t-admin", &["diff", "-f", "v2.yaml", "-o", "json"]);
    assert_exit(&out, 0, Some(&fleet));
    assert_no_canary(&out);
    assert_golden("diff_update.json", &stdout(&out));
    let out = fleet.convoy("t-admin", &["diff", "-f", "v2.yaml", "--exit-code"]);
    assert_exit(&out, 7, Some(&fleet));
    assert_eq!(
        stderr(&out),
        "web.shop: changes in 3 of 3 contexts (--exit-code)\n"
    );

    // A diff changes nothing: the running revision is still v1 everywhere.
    let out = fleet.convoy("t-admin", &["diff", "-f", "v1.yaml", "--exit-code"]);
    assert_exit(&out, 0, Some(&fleet));

    // A viewer may not diff (it resolves secrets): exit 4.
    let out = fleet.convoy("t-view", &["diff", "-f", "v2.yaml"]);
    assert_exit(&out, 4, Some(&fleet));

    // An agent offline: the diff is printed, then exit 1 naming the context, which
    // wins over --exit-code's 7.
    fleet
        .agents
        .iter_mut()
        .find(|a| a.context == "south")
        .unwrap()
        .kill();
    let out = fleet.convoy("t-admin", &["diff", "-f", "v2.yaml", "--exit-code"]);
    assert_exit(&out, 1, Some(&fleet));
    assert_no_canary(&out);
    assert_golden("diff_offline.txt", &stdout(&out));
    assert_golden("diff_offline.stderr", &stderr(&out));
}

#[test]
fn an_unreachable_coordinator_exits_5() {
    let port = convoy_tests::free_port();
    let dir = tempfile::tempdir().unwrap();
    let out = convoy_at(
        &format!("http://127.0.0.1:{port}"),
        "t",
        dir.path(),
        &["status", "web.shop"],
    );
    assert_exit(&out, 5, None);
    assert_golden("unreachable.stderr", &stderr(&out));
}

#[test]
fn a_release_file_that_is_not_yaml_exits_2_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("web.yaml"),
        "kind: Release\nspec:\n  chart: [unclosed\n",
    )
    .unwrap();
    // The file is read before connecting, so no coordinator is needed.
    let out = convoy_at(
        "http://127.0.0.1:1",
        "t",
        dir.path(),
        &["submit", "-f", "web.yaml"],
    );
    assert_exit(&out, 2, None);
    assert!(stderr(&out).starts_with("error: web.yaml:"), "{}", stderr(&out));
}

#[test]
fn rollback_without_a_reason_is_refused_before_connecting() {
    let dir = tempfile::tempdir().unwrap();
    let out = convoy_at(
        "http://127.0.0.1:1",
        "t",
        dir.path(),
        &["rollback", "web.shop", "--reason", " ", "--yes"],
    );
    assert_exit(&out, 2, None);
    assert!(stderr(&out).contains("needs a --reason"), "{}", stderr(&out));
    let out = convoy_at(
        "http://127.0.0.1:1",
        "t",
        dir.path(),
        &["rollback", "web.shop", "--yes"],
    );
    assert_exit(&out, 2, None);
}

#[test]
fn completions_cover_the_online_commands() {
    for shell in ["bash", "zsh", "fish"] {
        let out = convoy_at("http://127.0.0.1:1", "t", Path::new("."), &["completions", shell]);
        assert_exit(&out, 0, None);
        let script = stdout(&out);
        assert!(
            script.contains("rollback") && script.contains("to-revision"),
            "{shell}: {script}"
        );
        assert!(
            script.contains("diff") && script.contains("exit-code") && script.contains("show-unchanged"),
            "{shell}: {script}"
        );
    }
}

#[test]
fn help_documents_the_exit_codes() {
    let out = convoy_at("http://127.0.0.1:1", "t", Path::new("."), &["--help"]);
    assert_exit(&out, 0, None);
    assert!(
        stdout(&out).contains("5  coordinator unreachable"),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains("7  diff --exit-code: a submit would change something"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn diff_of_a_missing_file_exits_2_before_connecting() {
    let dir = tempfile::tempdir().unwrap();
    let out = convoy_at(
        "http://127.0.0.1:1",
        "t",
        dir.path(),
        &["diff", "-f", "nope.yaml", "--exit-code"],
    );
    assert_exit(&out, 2, None);
    assert!(
        stderr(&out).starts_with("error: cannot read release file nope.yaml:"),
        "{}",
        stderr(&out)
    );
    assert_eq!(stdout(&out), "");
}

/// The README's main job: `convoy demo` with nothing but this binary (a development
/// secrets file) and with OpenBao when installed. Exit 0, the rollout, the diff of the
/// bad build (its image change shown, secret values never), the fleet-wide rollback
/// and the history; the demo's secret values appear nowhere in its output.
#[test]
fn the_demo_rolls_out_diffs_and_rolls_the_fleet_back() {
    let bao_installed = convoy_tests::tools::cache_dir().join("openbao/bin/bao").is_file();
    let mut runs = vec![("--no-openbao", "secrets      development-only file")];
    if bao_installed {
        runs.push(("", "secrets      OpenBao dev server at http://127.0.0.1:"));
    }
    for (flag, secrets_line) in runs {
        let cwd = tempfile::tempdir().unwrap();
        let args: Vec<&str> = ["demo", flag].into_iter().filter(|a| !a.is_empty()).collect();
        let out = Command::new(env!("CARGO_BIN_EXE_convoy"))
            .args(&args)
            .current_dir(cwd.path())
            .output()
            .expect("convoy runs");
        let (so, se) = (stdout(&out), stderr(&out));
        assert_eq!(out.status.code(), Some(0), "convoy {args:?}\n{so}\n{se}");
        let mut at = 0;
        for line in [
            secrets_line,
            "agent        dev-europe-west1-0 (europe-west1",
            "== 1. convoy submit -f configs/releases/app1.yaml --wait",
            "SUCCEEDED",
            "== 2. convoy diff -f app1-crashloop.yaml",
            "~ apps/v1 Deployment ns1/hermes",
            "spec.template.spec.containers[0].image: \"registry.example.com/app1/hermes:2.3.1\" -> \"registry.example.com/app1/hermes:2.4.0\"",
            "== 3. convoy submit -f app1-crashloop.yaml --wait",
            "exit status 3: rollout failed, and every updated region was rolled back.",
            "== 4. convoy history app1.ns1",
            "convoy demo finished in",
        ] {
            match so[at..].find(line) {
                Some(i) => at += i + line.len(),
                None => panic!("convoy {args:?}: {line:?} missing (or out of order) in\n{so}\n{se}"),
            }
        }
        for secret in ["s3cr3t-demo-default", "s3cr3t-demo-eu"] {
            assert!(
                !so.contains(secret) && !se.contains(secret),
                "a demo secret was printed"
            );
        }
    }
}

/// Polls `convoy status -o json` until `done` holds for the release's current (or last)
/// operation; returns it.
fn operation_until(
    fleet: &Fleet,
    what: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let start = std::time::Instant::now();
    loop {
        let out = fleet.convoy("t-view", &["status", "web.shop", "-o", "json"]);
        let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let op = status["currentOperation"].clone();
        if done(&op) {
            return op;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "{what}: still {op:#}\n{}",
            fleet.logs()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// Manual approval gates between waves, as on-call uses them: the rollout waits after
/// wave 1 and says how to go on; a viewer may not approve; an operator's approval
/// starts wave 2 (and is in the audit log); a refusal rolls the fleet back; a gate
/// nobody answers fails at its deadline; a webhook hears `gate_waiting`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approval_gates_wait_for_an_operator() {
    let receiver = convoy_tests::webhook::Receiver::start(0).await.unwrap();
    let fleet = fleet_with(
        "\"/kv/dev/shop/db#password\": dev-only-password\n",
        &format!(
            "notifications:\n  webhooks:\n    - {{name: gates, url: \"{}\", events: [gate_waiting]}}\n",
            receiver.url
        ),
    )
    .await;
    let waiting_at = |wave: u64| move |op: &serde_json::Value| op["awaitingApprovalWave"] == wave;

    // Approved: wave 2 starts at once; wave 3 was approved ahead of time.
    let gate = ", approval: {beforeWaves: [2, 3], deadline: 5m}";
    fleet.release_with(
        "v1.yaml",
        "registry.example/web:1.0",
        "healthy,after=200ms",
        None,
        gate,
    );
    let out = fleet.convoy("t-admin", &["submit", "-f", "v1.yaml", "--reason", "gated"]);
    assert_exit(&out, 0, Some(&fleet));
    let op = operation_until(&fleet, "waiting at wave 2", waiting_at(2));
    assert!(
        op["message"]
            .as_str()
            .unwrap_or_default()
            .contains("convoy approve web.shop --wave 2"),
        "{op:#}"
    );
    assert_eq!(op["gatedWaves"], serde_json::json!([2, 3]));
    let out = fleet.convoy("t-view", &["approve", "web.shop", "--reason", "looks fine"]);
    assert_exit(&out, 4, Some(&fleet));
    let out = fleet.convoy(
        "t-admin",
        &["approve", "web.shop", "--wave", "3", "--reason", "ahead of time"],
    );
    assert_exit(&out, 0, Some(&fleet));
    let out = fleet.convoy(
        "t-admin",
        &["approve", "web.shop", "--reason", "canary dashboards clean"],
    );
    assert_exit(&out, 0, Some(&fleet));
    let op = operation_until(&fleet, "v1 succeeded", |op| op["phase"] == "SUCCEEDED");
    assert_eq!(op["approvedWaves"], serde_json::json!([3, 2]), "{op:#}");
    let out = fleet.convoy("t-view", &["audit", "--release", "web.shop", "-o", "json"]);
    let audit = stdout(&out);
    assert!(
        audit.contains("canary dashboards clean")
            && audit.contains("accepted: wave 2")
            && audit.contains("\"approve\""),
        "{audit}"
    );
    let told = receiver
        .wait_until(std::time::Duration::from_secs(10), |b| !b.is_empty())
        .await
        .expect("the webhook hears the gate");
    let first: serde_json::Value = serde_json::from_str(&told[0]).unwrap();
    assert_eq!(
        (first["event"].as_str(), first["wave"].as_u64()),
        (Some("gate_waiting"), Some(2)),
        "{first:#}"
    );

    // Refused: the gate fails, the fleet rolls back (east had revision 2 applied).
    let gate = ", approval: {beforeWaves: [2], deadline: 5m}";
    fleet.release_with(
        "v2.yaml",
        "registry.example/web:2.0",
        "healthy,after=200ms",
        None,
        gate,
    );
    let out = fleet.convoy("t-admin", &["submit", "-f", "v2.yaml", "--reason", "to refuse"]);
    assert_exit(&out, 0, Some(&fleet));
    operation_until(&fleet, "v2 waiting at wave 2", waiting_at(2));
    let out = fleet.convoy("t-admin", &["refuse", "web.shop"]);
    assert_exit(&out, 2, None);
    let out = fleet.convoy("t-admin", &["refuse", "web.shop", "--reason", "p99 up in east"]);
    assert_exit(&out, 0, Some(&fleet));
    let op = operation_until(&fleet, "v2 rolled back", |op| op["phase"] == "FAILED");
    let msg = op["message"].as_str().unwrap_or_default();
    assert!(msg.contains("wave 2 refused: p99 up in east (alice)"), "{op:#}");
    let out = fleet.convoy("t-view", &["history", "web.shop", "--show", "3"]);
    assert!(
        stdout(&out).contains("rollback to revision 1"),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains("registry.example/web:1.0"),
        "{}",
        stdout(&out)
    );

    // Nobody answers: the gate fails at its deadline, then onFailure (rollback).
    let gate = ", approval: {beforeWaves: [2], deadline: 2s}";
    fleet.release_with(
        "v4.yaml",
        "registry.example/web:4.0",
        "healthy,after=200ms",
        None,
        gate,
    );
    let out = fleet.convoy("t-admin", &["submit", "-f", "v4.yaml", "--reason", "unanswered"]);
    assert_exit(&out, 0, Some(&fleet));
    let op = operation_until(&fleet, "v4 timed out and rolled back", |op| {
        op["phase"] == "FAILED"
    });
    assert!(
        op["message"]
            .as_str()
            .unwrap_or_default()
            .contains("nobody approved wave 2 within 2s"),
        "{op:#}"
    );
}

/// Sets `region`'s error ratio and waits until Prometheus scraped it.
async fn set_ratio(
    exporter: &convoy_tests::prometheus::Exporter,
    prometheus: &convoy_tests::prometheus::Prometheus,
    region: &str,
    ratio: f64,
) {
    exporter.set(region, ratio);
    let query = format!("app_error_ratio{{region=\"{region}\"}}");
    prometheus
        .wait_for(&query, ratio, Duration::from_secs(30))
        .await
        .unwrap();
}

/// Automatic gates between waves, with a real Prometheus scraping an exporter whose
/// error ratio per region the test sets, and webhook gates: an analysis and a webhook
/// that pass let every wave through; an error ratio that rises in one region fails the
/// analysis there and the fleet is rolled back (the later wave never starts), naming the
/// query, the value and the condition; a webhook that keeps failing does the same; an
/// analysis without data waits for an operator; a coordinator SIGKILLed in the middle
/// of an analysis resumes it at the same measurement.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analysis_and_webhook_gates_decide_between_waves() {
    let exporter = convoy_tests::prometheus::Exporter::start().await.unwrap();
    for (_, region) in CONTEXTS {
        exporter.set(region, 0.01);
    }
    let prometheus = convoy_tests::prometheus::Prometheus::start(&[&exporter.host])
        .await
        .expect("prometheus starts");
    set_ratio(&exporter, &prometheus, "us-west1", 0.01).await;
    let smoke = convoy_tests::webhook::Receiver::start(1).await.unwrap();
    let down = convoy_tests::webhook::Receiver::start(usize::MAX).await.unwrap();
    let mut fleet = fleet_with(
        "\"/kv/dev/shop/db#password\": dev-only-password\n",
        &format!(
            "gates:\n  prometheus:\n    - {{name: main, url: \"{}\"}}\n  webhooks:\n    - {{name: smoke, url: \"{}\"}}\n    - {{name: down, url: \"{}\"}}\n",
            prometheus.url, smoke.url, down.url
        ),
    )
    .await;
    let analysis = |name: &str, waves: &str, count: u32, query: &str| {
        format!(
            "{{name: {name}, beforeWaves: {waves}, analysis: {{provider: main, query: '{query}', successCondition: result < 0.05, count: {count}, interval: 1s}}}}"
        )
    };
    let per_region = "max(app_error_ratio{region=\"{{region}}\"})";
    let gate_states = |op: &serde_json::Value| -> Vec<(String, u64, String)> {
        op["gates"]
            .as_array()
            .map(|gs| {
                gs.iter()
                    .map(|g| {
                        (
                            g["name"].as_str().unwrap_or_default().to_string(),
                            g["beforeWave"].as_u64().unwrap_or_default(),
                            g["state"].as_str().unwrap_or_default().to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };

    // A release naming a Prometheus the coordinator does not know is refused.
    fleet.release_with(
        "unknown.yaml",
        "registry.example/web:0.9",
        "healthy,after=200ms",
        None,
        &format!(
            ", gates: [{}]",
            analysis("e", "[2]", 1, "up").replace("provider: main", "provider: nope")
        ),
    );
    let out = fleet.convoy("t-admin", &["submit", "-f", "unknown.yaml", "--reason", "typo"]);
    assert_exit(&out, 2, Some(&fleet));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("spec.strategy.gates[0].analysis.provider: \"nope\" is not in the coordinator's `gates.prometheus` (known: main)"),
        "{err}"
    );

    // Both gates pass: the analysis before waves 2 and 3, the webhook (after one 500,
    // retried) before wave 2.
    fleet.release_with(
        "v1.yaml",
        "registry.example/web:1.0",
        "healthy,after=200ms",
        None,
        &format!(
            ", gates: [{}, {{name: smoke-tests, beforeWaves: [2], webhook: {{name: smoke, timeout: 5s, retries: 2}}}}]",
            analysis("error-rate", "[2, 3]", 3, per_region)
        ),
    );
    let out = fleet.convoy("t-admin", &["submit", "-f", "v1.yaml", "--reason", "gated"]);
    assert_exit(&out, 0, Some(&fleet));
    let op = operation_until(&fleet, "v1 measuring before wave 2", |op| {
        gate_states(op).contains(&("error-rate".into(), 2, "MEASURING".into()))
    });
    assert_eq!(op["currentWave"], 0, "wave 2 waits for the gate: {op:#}");
    let op = operation_until(&fleet, "v1 succeeded", |op| op["phase"] == "SUCCEEDED");
    assert_eq!(
        gate_states(&op),
        vec![
            ("error-rate".to_string(), 2, "PASSED".to_string()),
            ("error-rate".to_string(), 3, "PASSED".to_string()),
            ("smoke-tests".to_string(), 2, "PASSED".to_string()),
        ],
        "{op:#}"
    );
    let told: serde_json::Value = serde_json::from_str(&smoke.bodies()[0]).unwrap();
    assert_eq!(
        (
            told["gate"].as_str(),
            told["wave"].as_u64(),
            told["revision"].as_u64()
        ),
        (Some("smoke-tests"), Some(2), Some(1)),
        "{told:#}"
    );
    assert_eq!(told["contexts"], serde_json::json!(["east"]));
    assert_eq!(smoke.refused(), 1, "the first call got a 500 and was retried");

    // The error ratio rises in us-west1 (wave 2): the gate before wave 3 measures east
    // and west, fails in west, and the fleet rolls back; south never gets revision 2.
    set_ratio(&exporter, &prometheus, "us-west1", 0.3).await;
    fleet.release_with(
        "v2.yaml",
        "registry.example/web:2.0",
        "healthy,after=200ms",
        None,
        &format!(", gates: [{}]", analysis("error-rate", "[3]", 3, per_region)),
    );
    let out = fleet.convoy("t-admin", &["submit", "-f", "v2.yaml", "--reason", "bad in west"]);
    assert_exit(&out, 0, Some(&fleet));
    let op = operation_until(&fleet, "v2 rolled back", |op| op["phase"] == "FAILED");
    let msg = op["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains(
            "analysis error-rate before wave 3 failed: in west: `max(app_error_ratio{region=\"us-west1\"})` = 0.3, expected result < 0.05 (measurement 1 of 3"
        ) && msg.contains("rolled 2 context(s) back to revision 1"),
        "{op:#}"
    );
    assert_eq!(
        gate_states(&op),
        vec![("error-rate".to_string(), 3, "FAILED".to_string())]
    );
    let out = fleet.convoy("t-view", &["status", "web.shop", "-o", "json"]);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for c in status["contexts"].as_array().unwrap() {
        let expected = if c["context"] == "south" {
            "SKIPPED"
        } else {
            "ROLLED_BACK"
        };
        assert_eq!(c["phase"], expected, "{status:#}");
    }
    let out = fleet.convoy("t-view", &["history", "web.shop", "--show", "2"]);
    assert!(
        stdout(&out).contains("ended: revision 2 failed (analysis error-rate before wave 3 failed: in west: `max(app_error_ratio{region=\"us-west1\"})` = 0.3"),
        "{}",
        stdout(&out)
    );
    let out = fleet.convoy("t-view", &["status", "web.shop"]);
    assert!(
        stdout(&out).contains("gate:      analysis error-rate before wave 3: FAILED (max(app_error_ratio{region=\"{{region}}\"}) on main: result < 0.05)"),
        "{}",
        stdout(&out)
    );
    set_ratio(&exporter, &prometheus, "us-west1", 0.01).await;

    // A webhook that keeps answering 500: the gate fails after its retries.
    fleet.release_with(
        "v4.yaml",
        "registry.example/web:4.0",
        "healthy,after=200ms",
        None,
        ", gates: [{name: smoke-tests, beforeWaves: [2], webhook: {name: down, timeout: 2s, retries: 1}}]",
    );
    let out = fleet.convoy("t-admin", &["submit", "-f", "v4.yaml", "--reason", "hook down"]);
    assert_exit(&out, 0, Some(&fleet));
    let op = operation_until(&fleet, "v4 rolled back", |op| op["phase"] == "FAILED");
    assert!(
        op["message"].as_str().unwrap_or_default().contains(
            "webhook gate smoke-tests before wave 2 failed: down answered 500 Internal Server Error: (empty body) (after 2 attempt(s))"
        ),
        "{op:#}"
    );
    assert_eq!(down.refused(), 2);

    // No data: the analysis is inconclusive and waits; an operator passes it.
    fleet.release_with(
        "v6.yaml",
        "registry.example/web:6.0",
        "healthy,after=200ms",
        None,
        &format!(
            ", gates: [{}]",
            analysis("error-rate", "[2]", 1, "max(app_error_ratio{region=\"nowhere\"})")
        ),
    );
    let out = fleet.convoy("t-admin", &["submit", "-f", "v6.yaml", "--reason", "no data"]);
    assert_exit(&out, 0, Some(&fleet));
    let op = operation_until(&fleet, "v6 inconclusive", |op| {
        gate_states(op).contains(&("error-rate".into(), 2, "INCONCLUSIVE".into()))
    });
    assert_eq!(op["awaitingApprovalWave"], 2, "{op:#}");
    assert!(
        op["message"].as_str().unwrap_or_default().contains("no series"),
        "{op:#}"
    );
    let out = fleet.convoy(
        "t-admin",
        &[
            "approve",
            "web.shop",
            "--reason",
            "exporter not deployed there yet",
        ],
    );
    assert_exit(&out, 0, Some(&fleet));
    let op = operation_until(&fleet, "v6 succeeded", |op| op["phase"] == "SUCCEEDED");
    assert_eq!(
        gate_states(&op),
        vec![("error-rate".to_string(), 2, "PASSED".to_string())]
    );

    // SIGKILL in the middle of an analysis: the restarted coordinator resumes it with
    // the measurements already taken, then starts wave 2.
    fleet.release_with(
        "v7.yaml",
        "registry.example/web:7.0",
        "healthy,after=200ms",
        None,
        &format!(
            ", gates: [{}]",
            analysis("error-rate", "[2]", 4, per_region).replace("interval: 1s", "interval: 3s")
        ),
    );
    let out = fleet.convoy(
        "t-admin",
        &["submit", "-f", "v7.yaml", "--reason", "killed mid-gate"],
    );
    assert_exit(&out, 0, Some(&fleet));
    let measured = |op: &serde_json::Value| op["gates"][0]["measurements"].as_array().map_or(0, Vec::len);
    let before = operation_until(&fleet, "v7 measured twice", |op| measured(op) >= 2);
    let taken = measured(&before);
    fleet.convoyd.kill();
    fleet.convoyd.restart().await.expect("convoyd restarts");
    let after = operation_until(&fleet, "v7 measuring again", |op| {
        op["phase"] == "RUNNING" && !op["gates"][0]["measurements"].is_null()
    });
    assert!(
        measured(&after) >= taken,
        "the measurements taken before the kill are kept: {before:#} then {after:#}"
    );
    assert_eq!(
        after["gates"][0]["measurements"][0], before["gates"][0]["measurements"][0],
        "the same first measurement"
    );
    let op = operation_until(&fleet, "v7 succeeded", |op| op["phase"] == "SUCCEEDED");
    assert_eq!(
        gate_states(&op),
        vec![("error-rate".to_string(), 2, "PASSED".to_string())]
    );
    let logs = fleet.convoyd.logs();
    assert!(!logs.contains("panicked"), "{logs}");
}

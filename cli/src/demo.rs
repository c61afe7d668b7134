//! `convoy demo`: the whole system on one machine, with nothing installed. It starts
//! a real coordinator (embedded store, real gRPC on loopback) and three agents on the
//! simulated backend, one per region, submits the example release from `configs/`
//! through the same code path as `convoy submit --wait`, shows with `convoy diff` what
//! a build that crash-loops in one region would change, submits it and shows the
//! fleet-wide automatic rollback.
//!
//! Secrets come from OpenBao when its `bao` binary is installed (it is started in dev
//! mode), else from a development-only secrets file.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use convoy_agent::runtime::{AgentRuntime, Credentials, RuntimeConfig, Token};
use convoy_agent::sim::backend::{SimBackend, SimConfig};
use serde_yaml::Value;
use tokio_util::sync::CancellationToken;

use crate::commands;

/// The example release, registry and chart, embedded so the demo runs from anywhere.
const RELEASE: &str = include_str!("../../configs/releases/app1.yaml");
const REGISTRY: &str = include_str!("../../configs/contexts.yaml");
const CHART: &[(&str, &str)] = &[
    ("Chart.yaml", include_str!("../../configs/charts/app1/Chart.yaml")),
    (
        "values.yaml",
        include_str!("../../configs/charts/app1/values.yaml"),
    ),
    (
        "templates/_helpers.tpl",
        include_str!("../../configs/charts/app1/templates/_helpers.tpl"),
    ),
    (
        "templates/configmap.yaml",
        include_str!("../../configs/charts/app1/templates/configmap.yaml"),
    ),
    (
        "templates/deployment.yaml",
        include_str!("../../configs/charts/app1/templates/deployment.yaml"),
    ),
    (
        "templates/secret.yaml",
        include_str!("../../configs/charts/app1/templates/secret.yaml"),
    ),
    (
        "templates/service.yaml",
        include_str!("../../configs/charts/app1/templates/service.yaml"),
    ),
];

const ADMIN_TOKEN_NAME: &str = "demo-admin";
/// The region whose build crash-loops in the second release.
const BAD_CONTEXT: &str = "dev-europe-west1-0";

pub use crate::demo_args::DemoArgs;

pub const EXAMPLES: &str = "\
Examples:
  convoy demo
  convoy demo --keep          # keep the coordinator's store and configs to look at
  convoy demo | cat           # plain timestamped lines instead of the live table

It needs no Kubernetes and no Vault: the clusters are simulated (pods follow the
sim.convoy.dev/behavior annotation), and secrets come from OpenBao when `bao` is
installed, else from a development-only secrets file.";

/// A `bao server -dev` the demo started. Killed on drop.
struct Bao(Child);

impl Drop for Bao {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    let dir = tempfile::Builder::new().prefix("convoy-demo-").tempdir()?;
    let root = dir.path().to_path_buf();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let result = rt.block_on(demo(&root, &args));
    if args.keep {
        let kept = dir.keep();
        println!("\nThe demo's files are in {}", kept.display());
    }
    result
}

async fn demo(root: &Path, args: &DemoArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    println!("convoy demo: a coordinator and three simulated clusters, on this machine.\n");
    let release_dir = root.join("releases");
    std::fs::create_dir_all(&release_dir)?;
    for (name, text) in CHART {
        let p = root.join("charts/app1").join(name);
        std::fs::create_dir_all(p.parent().expect("chart files live in a directory"))?;
        std::fs::write(p, text)?;
    }
    let registry = convoy_release::Registry::parse(REGISTRY, "configs/contexts.yaml")?;
    let contexts: Vec<convoy_release::Context> = registry.contexts().cloned().collect();

    // Secrets: OpenBao when installed, else a development file.
    let admin_token = format!("demo-{:016x}", rand::random::<u64>());
    let (secrets_cfg, _bao) = secrets(root, args).await?;

    // The coordinator, in this process, on a real loopback port.
    let mut cfg = format!(
        "listen: 127.0.0.1:0\nstore: {{backend: embedded, path: {}}}\nheartbeat_seconds: 2\nlog: {{level: warn}}\n{secrets_cfg}auth:\n  tokens:\n    - {{name: {ADMIN_TOKEN_NAME}, role: admin, token: {admin_token}}}\n  agents:\n",
        root.join("state.redb").display()
    );
    let agent_tokens: Vec<(String, String)> = contexts
        .iter()
        .map(|c| (c.name.clone(), format!("agent-{:016x}", rand::random::<u64>())))
        .collect();
    for (ctx, tok) in &agent_tokens {
        cfg.push_str(&format!("    - {{context: {ctx}, token: {tok}}}\n"));
    }
    cfg.push_str("contexts:\n");
    for c in &contexts {
        cfg.push_str(&format!(
            "  - {{name: {}, region: {}, env: {}, cloud: {}, clusterName: {}}}\n",
            c.name, c.region, c.env, c.cloud, c.cluster_name
        ));
    }
    let cfg_path = root.join("convoyd.yaml");
    std::fs::write(&cfg_path, &cfg)?;
    let cfg = convoy_daemon::config::DaemonConfig::load_with_env(Some(&cfg_path), Vec::new())?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let pipeline = convoy_daemon::server::pipeline(&cfg)?;
    let running = convoy_daemon::server::start(&cfg, listener, Arc::new(pipeline)).await?;
    let server = format!("http://{}", running.addr);
    println!(
        "coordinator  {server} (embedded store {})",
        root.join("state.redb").display()
    );

    // One agent per region, each dialing the coordinator like a real one.
    let stop = CancellationToken::new();
    for (ctx, tok) in &agent_tokens {
        let mut rc = RuntimeConfig::new(server.clone(), ctx.clone());
        rc.credentials = Credentials::Token(Token::new(tok.clone()));
        rc.instance = format!("demo-agent-{ctx}");
        let backend = SimBackend::new(SimConfig {
            history_limit: 10,
            apply_latency: Duration::from_millis(150),
            ..SimConfig::default()
        });
        let runtime = AgentRuntime::new(rc, backend);
        tokio::spawn(runtime.run(stop.clone()));
    }
    wait_for_agents(&running.core, contexts.len()).await?;
    for c in &contexts {
        println!(
            "agent        {} ({}, simulated cluster {})",
            c.name, c.region, c.cluster_name
        );
    }

    // 1: the example release, in its waves.
    let good = demo_release(RELEASE, None)?;
    let good_path = release_dir.join("app1.yaml");
    std::fs::write(&good_path, &good)?;
    println!(
        "\n== 1. convoy submit -f configs/releases/app1.yaml --wait\n   \
         (demo timings: soak 5s instead of the file's 1m, minReadyWindow 3s instead of 30s)\n"
    );
    let first = cli(
        &server,
        &admin_token,
        &[
            "submit",
            "-f",
            path(&good_path),
            "--wait",
            "--reason",
            "demo: first rollout",
        ],
    )
    .await;
    if let Err(code) = first {
        bail!("the example release did not roll out (exit {code}); see the messages above");
    }

    // 2 and 3: the same app with a build that crash-loops in one region: first what it
    // would change, then the rollout and the fleet-wide rollback.
    let bad = demo_release(RELEASE, Some(BAD_CONTEXT))?;
    let bad_path = release_dir.join("app1-crashloop.yaml");
    std::fs::write(&bad_path, &bad)?;
    println!(
        "\n== 2. convoy diff -f app1-crashloop.yaml\n   \
         (what it would change in each region, from the agents' dry runs; secrets masked)\n"
    );
    if let Err(code) = cli(&server, &admin_token, &["diff", "-f", path(&bad_path)]).await {
        bail!("convoy diff failed (exit {code}); see the messages above");
    }
    println!(
        "\n== 3. convoy submit -f app1-crashloop.yaml --wait\n   \
         (image 2.4.0, whose pods crash-loop in {BAD_CONTEXT}: the whole fleet goes back)\n"
    );
    match cli(
        &server,
        &admin_token,
        &[
            "submit",
            "-f",
            path(&bad_path),
            "--wait",
            "--reason",
            "demo: a bad build",
        ],
    )
    .await
    {
        Err(3) => println!("\n   exit status 3: rollout failed, and every updated region was rolled back."),
        Err(code) => bail!("the failing release ended with exit {code}, expected 3 (rollout failed)"),
        Ok(()) => bail!("the crash-looping release was reported healthy"),
    }

    // 4: what history says.
    println!("\n== 4. convoy history app1.ns1\n");
    if let Err(code) = cli(&server, &admin_token, &["history", "app1.ns1"]).await {
        bail!("convoy history failed (exit {code})");
    }
    println!(
        "\nconvoy demo finished in {:.1}s.",
        started.elapsed().as_secs_f64()
    );
    stop.cancel();
    running.stop().await?;
    Ok(())
}

/// The example release with demo timings; with `crash_in`, a new image that
/// crash-loops in that context.
fn demo_release(text: &str, crash_in: Option<&str>) -> anyhow::Result<String> {
    let mut doc: Value = serde_yaml::from_str(text).context("the embedded example release")?;
    let spec = doc
        .get_mut("spec")
        .and_then(Value::as_mapping_mut)
        .context("example release: spec")?;
    // The chart sits next to the release in the demo's directory.
    spec.insert("chart".into(), serde_yaml::from_str("{path: ../charts/app1}")?);
    if let Some(s) = spec.get_mut("strategy").and_then(Value::as_mapping_mut) {
        s.insert("soak".into(), "5s".into());
    }
    spec.insert(
        "health".into(),
        serde_yaml::from_str("{progressDeadline: 2m, minReadyWindow: 3s}")?,
    );
    if let Some(ctx) = crash_in {
        let values = spec
            .get_mut("values")
            .and_then(Value::as_mapping_mut)
            .context("example release: spec.values")?;
        values.insert("image".into(), serde_yaml::from_str("{tag: \"2.4.0\"}")?);
        let cv = spec
            .entry("contextValues".into())
            .or_insert_with(|| Value::Mapping(Default::default()))
            .as_mapping_mut()
            .context("example release: spec.contextValues")?;
        let entry = cv
            .entry(ctx.into())
            .or_insert_with(|| Value::Mapping(Default::default()));
        let m = entry.as_mapping_mut().context("contextValues entry")?;
        m.insert(
            "podAnnotations".into(),
            serde_yaml::from_str("{sim.convoy.dev/behavior: \"crashloop,after=1s\"}")?,
        );
    }
    Ok(serde_yaml::to_string(&doc)?)
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap_or_default()
}

/// Runs one `convoy` command exactly as a user would (on its own thread: the CLI
/// runs its own runtime). Returns the exit code on failure.
async fn cli(server: &str, token: &str, args: &[&str]) -> Result<(), u8> {
    let mut argv: Vec<String> = vec!["convoy".into()];
    argv.extend(args.iter().map(|s| s.to_string()));
    argv.extend([
        "--server".into(),
        server.to_string(),
        "--token".into(),
        token.to_string(),
    ]);
    tokio::task::spawn_blocking(move || {
        let cmd = match commands::parse_online(&argv) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("{e}");
                return Err(2);
            }
        };
        commands::execute(cmd).map_err(|e| {
            eprintln!("error: {e}");
            e.code()
        })
    })
    .await
    .unwrap_or(Err(1))
}

async fn wait_for_agents(core: &convoy_daemon::core::Coordinator, n: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let connected = core.clusters().await?.iter().filter(|c| c.connected).count();
        if connected == n {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("only {connected} of {n} agents connected within 30s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The `vault:` (or `dev_secrets_file:`) config lines, and the OpenBao it started.
async fn secrets(root: &Path, args: &DemoArgs) -> anyhow::Result<(String, Option<Bao>)> {
    let values = [
        ("/kv/dev/ns1/app1/test", "s3cr3t-demo-default"),
        ("/kv/dev/ns1/app1/eu", "s3cr3t-demo-eu"),
    ];
    if !args.no_openbao
        && let Some(bao) = find_bao()
    {
        match start_bao(&bao, root, &values).await {
            Ok((addr, token, child)) => {
                println!("secrets      OpenBao dev server at {addr} ({})", bao.display());
                return Ok((
                    format!("vault:\n  address: {addr}\n  auth: {{method: token, token: {token}}}\n"),
                    Some(child),
                ));
            }
            Err(e) => {
                println!("secrets      OpenBao found but did not start ({e}); using the development file")
            }
        }
    }
    let file = root.join("dev-secrets.yaml");
    let mut text = String::from(
        "# DEVELOPMENT ONLY: secrets in a plain file for `convoy demo`. A real coordinator\n\
         # reads them from Vault (or OpenBao); never configure dev_secrets_file in production.\n",
    );
    for (p, v) in values {
        text.push_str(&format!("\"{p}#password\": {v}\n"));
    }
    std::fs::write(&file, text)?;
    println!(
        "secrets      development-only file {} (no OpenBao installed)",
        file.display()
    );
    Ok((format!("dev_secrets_file: {}\n", file.display()), None))
}

fn find_bao() -> Option<PathBuf> {
    let cache = std::env::var_os("CONVOY_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/convoy")));
    let cached = cache.map(|c| c.join("openbao/bin/bao"));
    let on_path = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("bao"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    cached.into_iter().chain(on_path).find(|p| p.is_file())
}

async fn start_bao(
    bao: &Path,
    root: &Path,
    values: &[(&str, &str)],
) -> anyhow::Result<(String, String, Bao)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let addr = format!("http://127.0.0.1:{port}");
    let token = format!("root-{:016x}", rand::random::<u64>());
    let log = std::fs::File::create(root.join("openbao.log"))?;
    let child = Command::new(bao)
        .args(["server", "-dev"])
        .arg(format!("-dev-listen-address=127.0.0.1:{port}"))
        .arg(format!("-dev-root-token-id={token}"))
        .env("HOME", root)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()?;
    let child = Bao(child);
    let cli = |args: &[&str]| {
        Command::new(bao)
            .args(args)
            .env("BAO_ADDR", &addr)
            .env("BAO_TOKEN", &token)
            .env("HOME", root)
            .output()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cli(&["status"]).is_ok_and(|o| o.status.success()) {
        if Instant::now() > deadline {
            bail!("not ready within 20s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let out = cli(&["secrets", "enable", "-path=kv", "-version=2", "kv"])?;
    if !out.status.success() {
        bail!("enabling kv: {}", String::from_utf8_lossy(&out.stderr));
    }
    for (p, v) in values {
        // A freshly mounted KV v2 engine refuses writes for a moment while it upgrades.
        let mut tries = 0;
        loop {
            let out = cli(&[
                "kv",
                "put",
                &format!("kv{}", p.trim_start_matches("/kv")),
                &format!("password={v}"),
            ])?;
            if out.status.success() {
                break;
            }
            tries += 1;
            if tries > 50 {
                bail!("writing {p}: {}", String::from_utf8_lossy(&out.stderr));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok((addr, token, child))
}

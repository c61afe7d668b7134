//! Fan-out benchmark (prints figures, asserts nothing about time).
//!
//! `cargo bench --bench fanout` runs N = 10, 100 and 1000; `-- --clusters N` runs one
//! size. For each N it starts the real `convoyd` (release build) as a child process
//! with N inline contexts, then N agents in this process, each an `AgentRuntime` with
//! its own simulated cluster and its own gRPC connection over loopback. Through the
//! public API it submits a release to every context in one wave (pods ready at once),
//! submits a second revision, then rolls the whole fleet back to revision 1, and
//! prints one JSON line per N:
//!
//! * `submit_to_dispatched_ms`: submit call to the last context sent its real apply
//!   (after the preflight dry run), from the watch stream's event times;
//! * `submit_to_healthy_ms`: submit call to the operation's SUCCEEDED event;
//! * `rollback_ms`: `RollbackRelease` call to the rollback operation's SUCCEEDED event;
//! * `diff_ms`: a `DiffRelease` call (prepare, N agents' dry runs, masked answers) of a
//!   third revision against the running second, every context answering;
//! * `coordinator_peak_rss_mb`: the coordinator's VmHWM at the end;
//! * `coordinator_cpu_s`: the coordinator's user+system CPU over the whole run
//!   (start, agents connecting, three operations).
//!
//! Revision 1 creates the release; the measured rollout is revision 2 (a new image on
//! every context of a running fleet), watched from before its submit. Also printed:
//! `submit_accepted_ms` (the submit call: parse, render N contexts, record),
//! `first_submit_to_healthy_ms` (revision 1) and `agents_connected_ms`.

use std::collections::HashMap;
use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use convoy_agent::runtime::{AgentRuntime, RuntimeConfig};
use convoy_agent::sim::backend::SimBackend;
use convoy_proto::v1 as pb;
use pb::cluster_service_client::ClusterServiceClient;
use pb::release_service_client::ReleaseServiceClient;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

const RELEASE: &str = "web.bench";
const OPERATION_LIMIT: Duration = Duration::from_secs(300);

type BenchResult<T> = Result<T, String>;

fn main() {
    let sizes = match parse_sizes(std::env::args().skip(1)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("fanout: {e}");
            std::process::exit(2);
        }
    };
    let convoyd = match convoyd_binary() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("fanout: {e}");
            std::process::exit(1);
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    for n in sizes {
        match rt.block_on(run(&convoyd, n)) {
            Ok(figures) => println!("{figures}"),
            Err(e) => {
                eprintln!("fanout with {n} clusters failed: {e}");
                std::process::exit(1);
            }
        }
    }
}

/// `--clusters N` (repeatable); cargo's own `--bench` flag is ignored.
fn parse_sizes(args: impl Iterator<Item = String>) -> BenchResult<Vec<usize>> {
    let mut sizes = Vec::new();
    let mut args = args.peekable();
    while let Some(a) = args.next() {
        let value = match a.strip_prefix("--clusters=") {
            Some(v) => Some(v.to_string()),
            None if a == "--clusters" => Some(args.next().ok_or("--clusters needs a number")?),
            None => None,
        };
        if let Some(v) = value {
            let n: usize = v
                .parse()
                .map_err(|_| format!("--clusters {v:?}: expected a positive number"))?;
            if n == 0 {
                return Err("--clusters must be at least 1".into());
            }
            sizes.push(n);
        }
    }
    if sizes.is_empty() {
        sizes = vec![10, 100, 1000];
    }
    Ok(sizes)
}

/// `target/release/convoyd`, built now if needed (cargo builds only this bench).
fn convoyd_binary() -> BenchResult<PathBuf> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    // target/<profile>/deps/fanout-<hash>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or("unexpected bench binary location")?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--quiet", "-p", "convoy-daemon", "--bin", "convoyd"]);
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    let status = cmd
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .map_err(|e| format!("running cargo build for convoyd: {e}"))?;
    if !status.success() {
        return Err("cargo build of convoyd failed".into());
    }
    let path = profile_dir.join("convoyd");
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!("{} was not built", path.display()))
    }
}

fn free_port() -> BenchResult<u16> {
    let l = StdListener::bind("127.0.0.1:0").map_err(|e| format!("binding a free port: {e}"))?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

fn context_name(i: usize) -> String {
    format!("sim-{i:04}")
}

/// The coordinator child; killed on drop so a failed run leaves nothing behind.
struct Coordinator {
    child: Child,
    addr: String,
    metrics_port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Coordinator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Coordinator {
    fn start(binary: &Path, n: usize) -> BenchResult<Self> {
        let dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
        let (port, metrics_port) = (free_port()?, free_port()?);
        let mut cfg = format!(
            "listen: 127.0.0.1:{port}\nmetrics_listen: 127.0.0.1:{metrics_port}\nstore: {{backend: embedded, path: {}}}\nauth: {{allow_anonymous: true}}\nlog: {{level: warn}}\ncontexts:\n",
            dir.path().join("state.redb").display()
        );
        for i in 0..n {
            let c = context_name(i);
            cfg.push_str(&format!(
                "  - {{name: {c}, region: r{}, env: bench, cloud: sim, clusterName: {c}}}\n",
                i % 8
            ));
        }
        let config = dir.path().join("convoyd.yaml");
        std::fs::write(&config, cfg).map_err(|e| format!("writing {}: {e}", config.display()))?;
        let log = std::fs::File::create(dir.path().join("convoyd.log")).map_err(|e| e.to_string())?;
        let err = log.try_clone().map_err(|e| e.to_string())?;
        let child = Command::new(binary)
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "warn")
            .env("NO_COLOR", "1")
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err))
            .spawn()
            .map_err(|e| format!("starting {}: {e}", binary.display()))?;
        Ok(Coordinator {
            child,
            addr: format!("http://127.0.0.1:{port}"),
            metrics_port,
            _dir: dir,
        })
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("convoyd.log")).unwrap_or_default()
    }

    async fn wait_ready(&mut self) -> BenchResult<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("convoyd exited with {status}:\n{}", self.log()));
            }
            if readyz(self.metrics_port).await {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(format!("convoyd not ready within 60s:\n{}", self.log()))
    }

    /// (peak RSS in MB, user+system CPU seconds) from /proc.
    fn usage(&self) -> BenchResult<(f64, f64)> {
        let pid = self.child.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .map_err(|e| format!("/proc/{pid}/status: {e}"))?;
        let hwm_kb: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or("no VmHWM in /proc/PID/status")?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map_err(|e| format!("/proc/{pid}/stat: {e}"))?;
        // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
        let rest = stat
            .rsplit_once(')')
            .map(|(_, r)| r)
            .ok_or("unexpected /proc/PID/stat")?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|v| v.parse::<f64>().ok())
                .ok_or("unexpected /proc/PID/stat")
        };
        let cpu = (ticks(11)? + ticks(12)?) / clock_ticks();
        Ok((hwm_kb / 1024.0, cpu))
    }
}

/// Clock ticks per second for /proc CPU times (`getconf CLK_TCK`; 100 on Linux).
fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

async fn readyz(port: u16) -> bool {
    let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    let req = b"GET /readyz HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n";
    if s.write_all(req).await.is_err() {
        return false;
    }
    let mut out = String::new();
    let _ = s.read_to_string(&mut out).await;
    out.starts_with("HTTP/1.1 200")
}

/// The agents running in this process.
struct Fleet {
    stop: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Fleet {
    fn start(addr: &str, n: usize) -> Self {
        let stop = CancellationToken::new();
        let tasks = (0..n)
            .map(|i| {
                let mut cfg = RuntimeConfig::new(addr, context_name(i));
                cfg.instance = format!("bench-agent-{i}");
                cfg.health_listen = None;
                let runtime = AgentRuntime::new(cfg, SimBackend::default());
                let s = stop.clone();
                tokio::spawn(async move {
                    if let Err(e) = runtime.run(s).await {
                        eprintln!("agent {i} stopped: {e}");
                    }
                })
            })
            .collect();
        Fleet { stop, tasks }
    }

    async fn stop(self) {
        self.stop.cancel();
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Waits until the coordinator lists `n` connected agents.
async fn wait_connected(ch: Channel, n: usize) -> BenchResult<()> {
    let mut clusters = ClusterServiceClient::new(ch).max_decoding_message_size(64 << 20);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let list = clusters
            .list_clusters(pb::ListClustersRequest::default())
            .await
            .map_err(|s| format!("ListClusters: {s}"))?
            .into_inner();
        let connected = list
            .clusters
            .iter()
            .filter(|c| c.agent.as_ref().is_some_and(|a| a.connected))
            .count();
        if connected == n {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("only {connected} of {n} agents connected within 120s"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn release_yaml(n: usize, image: &str) -> String {
    let contexts: Vec<String> = (0..n).map(context_name).collect();
    let list = contexts.join(", ");
    format!(
        "apiVersion: convoy.dev/v1\nkind: Release\nmetadata: {{name: {RELEASE}, namespace: bench, environment: bench}}\nspec:\n  chart: {{path: ./web}}\n  values: {{image: \"{image}\", behavior: \"healthy,after=0ms\", message: \"{image}\"}}\n  contexts: [{list}]\n  strategy: {{waves: [[{list}]], maxFailures: 0, onFailure: rollback}}\n  health: {{progressDeadline: 2m, minReadyWindow: 0s}}\n"
    )
}

fn millis(t: &prost_types::Timestamp) -> u128 {
    (t.seconds.max(0) as u128) * 1000 + (t.nanos.max(0) as u128) / 1_000_000
}

fn wall_millis() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

/// What the watch stream of one operation showed.
struct Watched {
    /// Coordinator time of the last context's real dispatch (not the preflight's).
    last_dispatched_at: u128,
    /// Coordinator time of the SUCCEEDED event.
    succeeded_at: u128,
}

/// Opens a watch and forwards its events into a channel, so that nothing is missed
/// between a submit and the moment its operation id is known.
async fn open_watch(
    client: &mut ReleaseServiceClient<Channel>,
    operation_id: &str,
    follow: bool,
) -> BenchResult<mpsc::UnboundedReceiver<Result<pb::RolloutEvent, String>>> {
    let mut stream = client
        .watch_release(pb::WatchReleaseRequest {
            release: RELEASE.into(),
            operation_id: operation_id.into(),
            follow,
        })
        .await
        .map_err(|s| format!("WatchRelease: {s}"))?
        .into_inner();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let item = match stream.message().await {
                Ok(Some(e)) => Ok(e),
                Ok(None) => return,
                Err(s) => Err(format!("watch: {s}")),
            };
            let failed = item.is_err();
            if tx.send(item).is_err() || failed {
                return;
            }
        }
    });
    Ok(rx)
}

/// Follows `operation_id` to its end. A context counts as dispatched at its first
/// in-flight or settled phase once the operation runs (preflight dispatches happen
/// while the operation is still in its PREFLIGHT phase). `n` is how many contexts
/// must be seen dispatched (0 when the watch started late and only the end matters).
async fn until_succeeded(
    events: &mut mpsc::UnboundedReceiver<Result<pb::RolloutEvent, String>>,
    operation_id: &str,
    n: usize,
) -> BenchResult<Watched> {
    let mut running = false;
    let mut dispatched: HashMap<String, u128> = HashMap::with_capacity(n);
    let deadline = tokio::time::Instant::now() + OPERATION_LIMIT;
    loop {
        let event = tokio::time::timeout_at(deadline, events.recv())
            .await
            .map_err(|_| format!("{operation_id} did not finish within {OPERATION_LIMIT:?}"))?
            .ok_or_else(|| format!("the watch ended before {operation_id} finished"))??;
        if event.operation_id != operation_id {
            continue;
        }
        let at = event.at.as_ref().map_or_else(wall_millis, millis);
        match event.event {
            Some(pb::rollout_event::Event::Operation(op)) => {
                let phase = pb::OperationPhase::try_from(op.phase).unwrap_or(pb::OperationPhase::Unspecified);
                match phase {
                    pb::OperationPhase::Running | pb::OperationPhase::RollingBack => running = true,
                    pb::OperationPhase::Succeeded => {
                        if dispatched.len() < n {
                            return Err(format!(
                                "{operation_id} succeeded with {} of {n} contexts seen dispatched",
                                dispatched.len()
                            ));
                        }
                        let last_dispatched_at = dispatched.values().copied().max().unwrap_or(at);
                        return Ok(Watched {
                            last_dispatched_at,
                            succeeded_at: at,
                        });
                    }
                    p if matches!(
                        p,
                        pb::OperationPhase::Failed
                            | pb::OperationPhase::Aborted
                            | pb::OperationPhase::Cancelled
                    ) =>
                    {
                        return Err(format!("{operation_id} ended {p:?}: {}", op.message));
                    }
                    _ => {}
                }
            }
            Some(pb::rollout_event::Event::Context(c)) if running => {
                let phase = pb::ContextPhase::try_from(c.phase).unwrap_or(pb::ContextPhase::Unspecified);
                let moved = !matches!(
                    phase,
                    pb::ContextPhase::Unspecified
                        | pb::ContextPhase::Pending
                        | pb::ContextPhase::WaitingForAgent
                );
                if moved {
                    dispatched.entry(c.context).or_insert(at);
                }
            }
            _ => {}
        }
    }
}

fn chart_archive() -> BenchResult<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/charts/web");
    convoy_chart::package_dir(&dir).map_err(|e| format!("packaging {}: {e}", dir.display()))
}

async fn submit(
    client: &mut ReleaseServiceClient<Channel>,
    n: usize,
    image: &str,
    chart: &[u8],
) -> BenchResult<pb::SubmitReleaseResponse> {
    let r = client
        .submit_release(pb::SubmitReleaseRequest {
            release_yaml: release_yaml(n, image),
            source_name: "web.yaml".into(),
            chart_archive: chart.to_vec(),
            values_files: vec![],
            reason: "fan-out benchmark".into(),
            dry_run: false,
            allow_mass_deletion: false,
        })
        .await
        .map_err(|s| format!("SubmitRelease: {s}"))?;
    Ok(r.into_inner())
}

async fn run(binary: &Path, n: usize) -> BenchResult<String> {
    let mut coordinator = Coordinator::start(binary, n)?;
    coordinator.wait_ready().await?;
    let ch = Channel::from_shared(coordinator.addr.clone())
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| format!("connecting to convoyd: {e}"))?;
    let fleet = Fleet::start(&coordinator.addr, n);
    let connect_start = Instant::now();
    wait_connected(ch.clone(), n).await?;
    let connected_ms = connect_start.elapsed().as_millis();
    let mut client = ReleaseServiceClient::new(ch).max_decoding_message_size(64 << 20);
    let chart = chart_archive()?;

    // Revision 1 creates the release (a watch needs it to exist).
    let t0 = wall_millis();
    let first = submit(&mut client, n, "registry.example/web:1.0", &chart).await?;
    let mut w = open_watch(&mut client, &first.operation_id, false).await?;
    let w1 = until_succeeded(&mut w, &first.operation_id, 0).await?;
    let first_healthy_ms = w1.succeeded_at.saturating_sub(t0);

    // Revision 2, watched from before the submit: the measured rollout.
    let mut events = open_watch(&mut client, "", true).await?;
    let t1 = wall_millis();
    let second = submit(&mut client, n, "registry.example/web:2.0", &chart).await?;
    let accepted_ms = wall_millis().saturating_sub(t1);
    let w2 = until_succeeded(&mut events, &second.operation_id, n).await?;

    // What a third revision would change, from every agent's dry run.
    let t3 = Instant::now();
    let diff = client
        .diff_release(pb::DiffReleaseRequest {
            submit: Some(pb::SubmitReleaseRequest {
                release_yaml: release_yaml(n, "registry.example/web:3.0"),
                source_name: "web.yaml".into(),
                chart_archive: chart.to_vec(),
                ..Default::default()
            }),
            timeout_seconds: 120,
        })
        .await
        .map_err(|s| format!("DiffRelease: {s}"))?
        .into_inner();
    let diff_ms = t3.elapsed().as_millis();
    let answered = diff
        .contexts
        .iter()
        .filter(|c| c.status == pb::DiffStatus::Done as i32)
        .count();
    if answered != n {
        return Err(format!("DiffRelease: {answered} of {n} contexts answered"));
    }

    let t2 = wall_millis();
    let rb = client
        .rollback_release(pb::RollbackReleaseRequest {
            release: RELEASE.into(),
            to_revision: first.revision,
            reason: "fan-out benchmark rollback".into(),
            preempt: false,
            contexts: vec![],
        })
        .await
        .map_err(|s| format!("RollbackRelease: {s}"))?
        .into_inner();
    let wr = until_succeeded(&mut events, &rb.operation_id, n).await?;

    let (rss_mb, cpu_s) = coordinator.usage()?;
    fleet.stop().await;
    drop(coordinator);
    Ok(serde_json::json!({
        "clusters": n,
        "submit_to_dispatched_ms": w2.last_dispatched_at.saturating_sub(t1),
        "submit_to_healthy_ms": w2.succeeded_at.saturating_sub(t1),
        "rollback_ms": wr.succeeded_at.saturating_sub(t2),
        "diff_ms": diff_ms,
        "coordinator_peak_rss_mb": (rss_mb * 10.0).round() / 10.0,
        "coordinator_cpu_s": (cpu_s * 100.0).round() / 100.0,
        "submit_accepted_ms": accepted_ms,
        "first_submit_to_healthy_ms": first_healthy_ms,
        "agents_connected_ms": connected_ms,
    })
    .to_string())
}

//! Fan-out benchmark (prints figures, asserts nothing about time).
//!
//! `cargo bench --bench fanout` runs N = 1000, 3000 and 10000; `-- --clusters N`
//! (repeatable) runs the sizes named instead. For each N it starts the real `convoyd`
//! (release build) as a child process with N inline contexts and an embedded store,
//! then N agents in this process, each an `AgentRuntime` with its own simulated cluster
//! (`SimBackend`) and its own gRPC connection over loopback. Through the public API it
//! submits a release to every context in one wave (pods ready at once), submits a
//! second revision, diffs a third, then rolls the whole fleet back to revision 1, and
//! prints one JSON line per N:
//!
//! * `submit_to_dispatched_ms`: submit call to the last context sent its real apply
//!   (after the preflight dry run), from the watch stream's event times;
//! * `submit_to_healthy_ms`: submit call to the operation's SUCCEEDED event;
//! * `rollback_ms`: `RollbackRelease` call to the rollback operation's SUCCEEDED event;
//! * `diff_ms`: a `DiffRelease` call (prepare, N agents' dry runs, masked answers) of a
//!   third revision against the running second, every context answering;
//! * `coordinator_peak_rss_mb`: the coordinator's VmHWM after the rollback;
//! * `coordinator_cpu_s`: the coordinator's user+system CPU from its start to the end
//!   of the rollback (start, agents connecting, three operations, one diff);
//! * `watch_final_phases_seen` / `rollback_watch_final_phases_seen` (`"N/N"`): how many
//!   of the N contexts the measured watch (opened with `follow` before the revision 2
//!   submit, as `convoy submit --wait` would) saw reach a settled phase (HEALTHY,
//!   FAILED, ROLLED_BACK, SKIPPED) in the revision 2 operation and in the rollback. A
//!   size succeeds only if both are N/N. If the server cuts the watch off (for example
//!   `RESOURCE_EXHAUSTED: watcher fell N events behind`), the size is reported failed
//!   with the server's message (`watch_error`), and the bench reopens a watch of that
//!   operation to still time its end (from the operation's `finished_at`; then
//!   `submit_to_dispatched_ms` is null).
//!
//! Revision 1 creates the release; the measured rollout is revision 2 (a new image on
//! every context of a running fleet). Also printed: `submit_accepted_ms` (the submit
//! call: parse, render N contexts, record), `first_submit_to_healthy_ms` (revision 1)
//! and `agents_connected_ms`.
//!
//! Restart figure (`--restart`: at the largest size run; `--restart-at N`: at N, which
//! is added to the sizes if missing; not run by default): after the rollback, revision 3
//! is submitted with pods that become ready 3 s after they start
//! (`healthy,after=3000ms`); once every context is applied and PROGRESSING (or 1 s
//! after the first one was), the bench SIGKILLs `convoyd` (`Child::kill`) and starts it
//! again on the same configuration and store. `restart_serving_ms`: kill to the first
//! `GetRelease` answered by the new process; `restart_resumed_ms`: kill to the
//! interrupted operation's `finished_at` (SUCCEEDED, as the new process records it; a
//! watch of that operation, reopened while the server restarts or cuts it off, must
//! see it). The agents reconnect by themselves (their backoff: 200 ms doubling to 10 s,
//! with jitter). The restart figure's CPU and memory are not in the other figures
//! (those are read before it).
//!
//! After the JSON lines a Markdown table sums the sizes up, with the per-cluster cost
//! (coordinator CPU ms and peak RSS KB divided by N) and, when 1000 and a larger size
//! both ran, the ratio of CPU per cluster at the largest size to that at 1000.
//!
//! At start the soft open-file limit is raised to the hard limit (`prlimit` on this
//! process; `convoyd`, spawned later, inherits it). Each agent holds one connection
//! here and one on the coordinator's side, so 10,000 clusters need a little over
//! 10,000 descriptors in each process.

use std::collections::{HashMap, HashSet};
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
const DEFAULT_SIZES: [usize; 3] = [1000, 3000, 10000];
/// Pods of the restart scenario's revision become ready this long after they start.
const SLOW_PODS: &str = "healthy,after=3000ms";
/// Pods of the other revisions are ready at once.
const FAST_PODS: &str = "healthy,after=0ms";

type BenchResult<T> = Result<T, String>;

fn main() {
    let opts = match parse_args(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("fanout: {e}");
            std::process::exit(2);
        }
    };
    match raise_fd_limit() {
        Ok(limit) => {
            let need = opts.sizes.iter().max().copied().unwrap_or(0) + 1000;
            if limit < need as u64 {
                eprintln!(
                    "fanout: open-file limit {limit} is below the ~{need} descriptors the largest size needs \
                     in this process (and again in convoyd); raise the hard limit (ulimit -Hn)"
                );
            }
        }
        Err(e) => eprintln!("fanout: could not raise the open-file limit: {e}"),
    }
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
    let mut all = Vec::new();
    for &n in &opts.sizes {
        let restart = opts.restart_at == Some(n);
        let figures = rt.block_on(run(&convoyd, n, restart));
        for e in &figures.errors {
            eprintln!("fanout with {n} clusters failed: {e}");
        }
        println!("{}", figures.json());
        all.push(figures);
    }
    println!();
    print!("{}", table(&all));
    if all.iter().any(|f| !f.errors.is_empty()) {
        std::process::exit(1);
    }
}

struct Options {
    sizes: Vec<usize>,
    /// The size at which the restart figure is taken, if any.
    restart_at: Option<usize>,
}

/// `--clusters N` (repeatable), `--restart`, `--restart-at N`; cargo's own `--bench`
/// flag is ignored.
fn parse_args(args: impl Iterator<Item = String>) -> BenchResult<Options> {
    fn number(flag: &str, v: &str) -> BenchResult<usize> {
        match v.parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!("{flag} {v:?}: expected a positive number")),
        }
    }
    let mut sizes = Vec::new();
    let mut restart = false;
    let mut restart_at = None;
    let mut args = args.peekable();
    while let Some(a) = args.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) => (f.to_string(), Some(v.to_string())),
            None => (a.clone(), None),
        };
        let mut value = |flag: &str| -> BenchResult<String> {
            match &inline {
                Some(v) => Ok(v.clone()),
                None => args.next().ok_or_else(|| format!("{flag} needs a number")),
            }
        };
        match flag.as_str() {
            "--clusters" => sizes.push(number("--clusters", &value("--clusters")?)?),
            "--restart-at" => restart_at = Some(number("--restart-at", &value("--restart-at")?)?),
            "--restart" => restart = true,
            _ => {}
        }
    }
    if sizes.is_empty() {
        sizes = DEFAULT_SIZES.to_vec();
    }
    if restart && restart_at.is_none() {
        restart_at = sizes.iter().max().copied();
    }
    if let Some(n) = restart_at
        && !sizes.contains(&n)
    {
        sizes.push(n);
    }
    Ok(Options { sizes, restart_at })
}

/// Raises the soft open-file limit of this process to its hard limit with `prlimit`
/// (util-linux), without unsafe code; returns the soft limit now in force.
fn raise_fd_limit() -> BenchResult<u64> {
    fn read() -> BenchResult<(String, String)> {
        let limits =
            std::fs::read_to_string("/proc/self/limits").map_err(|e| format!("/proc/self/limits: {e}"))?;
        let line = limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .ok_or("no open-file limit in /proc/self/limits")?;
        let mut f = line.trim_start_matches("Max open files").split_whitespace();
        match (f.next(), f.next()) {
            (Some(s), Some(h)) => Ok((s.to_string(), h.to_string())),
            _ => Err(format!("unexpected line {line:?}")),
        }
    }
    let (soft, hard) = read()?;
    if soft != hard {
        let status = Command::new("prlimit")
            .arg("--pid")
            .arg(std::process::id().to_string())
            .arg(format!("--nofile={hard}:{hard}"))
            .status()
            .map_err(|e| format!("running prlimit: {e}"))?;
        if !status.success() {
            return Err(format!("prlimit --nofile={hard}:{hard} failed ({status})"));
        }
    }
    let (soft, _) = read()?;
    Ok(soft.parse().unwrap_or(u64::MAX))
}

/// The `convoyd` that cargo built with this bench (same profile and features), so that
/// the bench does not run a `cargo build --release --bin convoyd` of its own: with the
/// dev-dependencies' features resolved differently, that build and `cargo bench`
/// rebuilt `convoy-daemon` and its dependencies for each other every time.
///
/// `FANOUT_CONVOYD`, when set, names another executable to start instead (a script that
/// runs the built `convoyd` under `heaptrack` or `perf`, for profiling; the peak RSS
/// printed is then that executable's).
fn convoyd_binary() -> BenchResult<PathBuf> {
    let path = std::env::var_os("FANOUT_CONVOYD")
        .map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_convoyd")), PathBuf::from);
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
    binary: PathBuf,
    addr: String,
    metrics_port: u16,
    dir: tempfile::TempDir,
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
        let child = Self::spawn(binary, dir.path())?;
        Ok(Coordinator {
            child,
            binary: binary.to_path_buf(),
            addr: format!("http://127.0.0.1:{port}"),
            metrics_port,
            dir,
        })
    }

    /// Starts `convoyd` on the configuration in `dir`, its log appended to `dir`.
    fn spawn(binary: &Path, dir: &Path) -> BenchResult<Child> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("convoyd.log"))
            .map_err(|e| e.to_string())?;
        let err = log.try_clone().map_err(|e| e.to_string())?;
        Command::new(binary)
            .arg("--config")
            .arg(dir.join("convoyd.yaml"))
            .env("RUST_LOG", "warn")
            .env("NO_COLOR", "1")
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err))
            .spawn()
            .map_err(|e| format!("starting {}: {e}", binary.display()))
    }

    /// SIGKILL (what `Child::kill` sends), then the same binary on the same
    /// configuration and store.
    fn kill_and_restart(&mut self) -> BenchResult<()> {
        self.child.kill().map_err(|e| format!("killing convoyd: {e}"))?;
        let _ = self.child.wait();
        self.child = Self::spawn(&self.binary, self.dir.path())?;
        Ok(())
    }

    fn log(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("convoyd.log")).unwrap_or_default();
        // The end is what matters; a 10,000-cluster log can be long.
        let cut = log.len().saturating_sub(4000);
        let start = (cut..log.len())
            .find(|i| log.is_char_boundary(*i))
            .unwrap_or(log.len());
        log[start..].to_string()
    }

    fn exited(&mut self) -> BenchResult<()> {
        match self.child.try_wait() {
            Ok(Some(status)) => Err(format!("convoyd exited with {status}:\n{}", self.log())),
            _ => Ok(()),
        }
    }

    async fn wait_ready(&mut self) -> BenchResult<()> {
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            self.exited()?;
            if readyz(self.metrics_port).await {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(format!("convoyd not ready within 120s:\n{}", self.log()))
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
    let deadline = Instant::now() + Duration::from_secs(300);
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
            return Err(format!("only {connected} of {n} agents connected within 300s"));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn release_yaml(n: usize, image: &str, behavior: &str) -> String {
    let contexts: Vec<String> = (0..n).map(context_name).collect();
    let list = contexts.join(", ");
    format!(
        "apiVersion: convoy.dev/v1\nkind: Release\nmetadata: {{name: {RELEASE}, namespace: bench, environment: bench}}\nspec:\n  chart: {{path: ./web}}\n  values: {{image: \"{image}\", behavior: \"{behavior}\", message: \"{image}\"}}\n  contexts: [{list}]\n  strategy: {{waves: [[{list}]], maxFailures: 0, onFailure: rollback}}\n  health: {{progressDeadline: 2m, minReadyWindow: 0s}}\n"
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

type Events = mpsc::UnboundedReceiver<Result<pb::RolloutEvent, String>>;

/// What the watch stream of one operation showed, up to its SUCCEEDED event.
struct Watched {
    /// Coordinator time of the last context's real dispatch (not the preflight's).
    last_dispatched_at: u128,
    /// Coordinator time of the SUCCEEDED event.
    succeeded_at: u128,
    /// Contexts seen in a settled phase in this operation.
    final_seen: usize,
}

/// Why following an operation stopped before its end.
enum Stopped {
    /// The stream broke or ended early (the server's message); `final_seen` contexts
    /// had been seen settled by then.
    Cut { message: String, final_seen: usize },
    /// The operation itself went wrong (failed, timed out, succeeded unseen).
    Failed(String),
}

/// Opens a watch and forwards its events into a channel, so that nothing is missed
/// between a submit and the moment its operation id is known.
async fn open_watch(
    client: &mut ReleaseServiceClient<Channel>,
    operation_id: &str,
    follow: bool,
) -> BenchResult<Events> {
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

fn settled(phase: i32) -> bool {
    use pb::ContextPhase as C;
    [C::Healthy, C::Failed, C::RolledBack, C::Skipped]
        .iter()
        .any(|p| *p as i32 == phase)
}

/// Follows `operation_id` to its end. A context counts as dispatched at its first
/// in-flight or settled phase once the operation runs (preflight dispatches happen
/// while the operation is still in its PREFLIGHT phase). `n` is how many contexts
/// must be seen dispatched and settled (0 when the watch started late and only the
/// end matters).
async fn until_succeeded(events: &mut Events, operation_id: &str, n: usize) -> Result<Watched, Stopped> {
    let mut running = false;
    let mut dispatched: HashMap<String, u128> = HashMap::with_capacity(n);
    let mut finals: HashSet<String> = HashSet::with_capacity(n);
    let deadline = tokio::time::Instant::now() + OPERATION_LIMIT;
    loop {
        let next = tokio::time::timeout_at(deadline, events.recv())
            .await
            .map_err(|_| {
                Stopped::Failed(format!(
                    "{operation_id} did not finish within {OPERATION_LIMIT:?}"
                ))
            })?;
        let event = match next {
            Some(Ok(e)) => e,
            Some(Err(message)) => {
                return Err(Stopped::Cut {
                    message,
                    final_seen: finals.len(),
                });
            }
            None => {
                return Err(Stopped::Cut {
                    message: format!("the watch ended before {operation_id} finished"),
                    final_seen: finals.len(),
                });
            }
        };
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
                        if dispatched.len() < n || finals.len() < n {
                            return Err(Stopped::Failed(format!(
                                "{operation_id} succeeded with {} of {n} contexts seen dispatched and {} of {n} seen settled",
                                dispatched.len(),
                                finals.len()
                            )));
                        }
                        let last_dispatched_at = dispatched.values().copied().max().unwrap_or(at);
                        return Ok(Watched {
                            last_dispatched_at,
                            succeeded_at: at,
                            final_seen: finals.len(),
                        });
                    }
                    p if matches!(
                        p,
                        pb::OperationPhase::Failed
                            | pb::OperationPhase::Aborted
                            | pb::OperationPhase::Cancelled
                    ) =>
                    {
                        return Err(Stopped::Failed(format!(
                            "{operation_id} ended {p:?}: {}",
                            op.message
                        )));
                    }
                    _ => {}
                }
            }
            Some(pb::rollout_event::Event::Context(c)) => {
                if settled(c.phase) {
                    finals.insert(c.context.clone());
                }
                let phase = pb::ContextPhase::try_from(c.phase).unwrap_or(pb::ContextPhase::Unspecified);
                let moved = !matches!(
                    phase,
                    pb::ContextPhase::Unspecified
                        | pb::ContextPhase::Pending
                        | pb::ContextPhase::WaitingForAgent
                );
                if running && moved {
                    dispatched.entry(c.context).or_insert(at);
                }
            }
            None => {}
        }
    }
}

/// After a watch was cut: the end of `operation_id`, from watches of that operation
/// alone (each starts with a snapshot), reopened while they break. Returns the
/// coordinator time the operation finished.
async fn finish_after_cut(
    client: &mut ReleaseServiceClient<Channel>,
    operation_id: &str,
) -> BenchResult<u128> {
    let deadline = Instant::now() + OPERATION_LIMIT;
    let mut last = String::new();
    while Instant::now() < deadline {
        let mut events = match open_watch(client, operation_id, false).await {
            Ok(e) => e,
            Err(e) => {
                last = e;
                tokio::time::sleep(Duration::from_millis(250)).await;
                continue;
            }
        };
        loop {
            match events.recv().await {
                Some(Ok(e)) if e.operation_id == operation_id => {
                    if let Some(pb::rollout_event::Event::Operation(op)) = e.event {
                        let phase =
                            pb::OperationPhase::try_from(op.phase).unwrap_or(pb::OperationPhase::Unspecified);
                        match phase {
                            pb::OperationPhase::Succeeded => {
                                let at = e.at.as_ref().map_or_else(wall_millis, millis);
                                return Ok(op.finished_at.as_ref().map_or(at, millis));
                            }
                            pb::OperationPhase::Failed
                            | pb::OperationPhase::Aborted
                            | pb::OperationPhase::Cancelled => {
                                return Err(format!("{operation_id} ended {phase:?}: {}", op.message));
                            }
                            _ => {}
                        }
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    last = e;
                    break;
                }
                None => break,
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Err(format!(
        "{operation_id} not seen finished within {OPERATION_LIMIT:?} ({last})"
    ))
}

fn chart_archive() -> BenchResult<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/charts/web");
    convoy_chart::package_dir(&dir).map_err(|e| format!("packaging {}: {e}", dir.display()))
}

async fn submit(
    client: &mut ReleaseServiceClient<Channel>,
    n: usize,
    image: &str,
    behavior: &str,
    chart: &[u8],
) -> BenchResult<pb::SubmitReleaseResponse> {
    let r = client
        .submit_release(pb::SubmitReleaseRequest {
            release_yaml: release_yaml(n, image, behavior),
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

/// The figures of one size; `None` where the run did not get that far.
#[derive(Default)]
struct Figures {
    n: usize,
    errors: Vec<String>,
    watch_error: Option<String>,
    connected_ms: Option<u128>,
    first_healthy_ms: Option<u128>,
    accepted_ms: Option<u128>,
    dispatched_ms: Option<u128>,
    healthy_ms: Option<u128>,
    diff_ms: Option<u128>,
    rollback_ms: Option<u128>,
    rss_mb: Option<f64>,
    cpu_s: Option<f64>,
    final_seen: Option<usize>,
    rollback_final_seen: Option<usize>,
    restart_serving_ms: Option<u128>,
    restart_resumed_ms: Option<u128>,
}

impl Figures {
    fn json(&self) -> String {
        let seen = |s: Option<usize>| s.map(|s| format!("{s}/{}", self.n));
        let mut j = serde_json::json!({
            "clusters": self.n,
            "ok": self.errors.is_empty(),
            "submit_to_dispatched_ms": self.dispatched_ms,
            "submit_to_healthy_ms": self.healthy_ms,
            "rollback_ms": self.rollback_ms,
            "diff_ms": self.diff_ms,
            "coordinator_peak_rss_mb": self.rss_mb.map(|m| (m * 10.0).round() / 10.0),
            "coordinator_cpu_s": self.cpu_s.map(|c| (c * 100.0).round() / 100.0),
            "watch_final_phases_seen": seen(self.final_seen),
            "rollback_watch_final_phases_seen": seen(self.rollback_final_seen),
            "submit_accepted_ms": self.accepted_ms,
            "first_submit_to_healthy_ms": self.first_healthy_ms,
            "agents_connected_ms": self.connected_ms,
        });
        if let Some(obj) = j.as_object_mut() {
            if let Some(e) = &self.watch_error {
                obj.insert("watch_error".into(), e.clone().into());
            }
            if !self.errors.is_empty() {
                obj.insert("errors".into(), self.errors.clone().into());
            }
            if self.restart_serving_ms.is_some() || self.restart_resumed_ms.is_some() {
                obj.insert(
                    "restart_serving_ms".into(),
                    serde_json::json!(self.restart_serving_ms),
                );
                obj.insert(
                    "restart_resumed_ms".into(),
                    serde_json::json!(self.restart_resumed_ms),
                );
            }
        }
        j.to_string()
    }

    fn cpu_ms_per_cluster(&self) -> Option<f64> {
        self.cpu_s.map(|c| c * 1000.0 / self.n as f64)
    }
}

/// `444 ms` below 10 s, `12.3 s` above.
fn duration(ms: Option<u128>) -> String {
    match ms {
        None => "-".into(),
        Some(ms) if ms < 10_000 => format!("{ms} ms"),
        Some(ms) => format!("{:.1} s", ms as f64 / 1000.0),
    }
}

/// The Markdown summary of every size run, and the per-cluster CPU ratio.
fn table(all: &[Figures]) -> String {
    let mut out = String::from(
        "| clusters | submit -> all healthy | fleet rollback | diff | coordinator CPU | CPU per cluster | peak RSS | RSS per cluster | watch final phases | restart: serving / resumed |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---|---|\n",
    );
    for f in all {
        let seen = |s: Option<usize>| s.map_or("-".to_string(), |s| format!("{s}/{}", f.n));
        let mut watch = format!("{}, rollback {}", seen(f.final_seen), seen(f.rollback_final_seen));
        if f.watch_error.is_some() {
            watch.push_str(" (watch cut off)");
        }
        if !f.errors.is_empty() {
            watch.push_str(" **FAILED**");
        }
        let restart = if f.restart_serving_ms.is_some() || f.restart_resumed_ms.is_some() {
            format!(
                "{} / {}",
                duration(f.restart_serving_ms),
                duration(f.restart_resumed_ms)
            )
        } else {
            "-".into()
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            f.n,
            duration(f.healthy_ms),
            duration(f.rollback_ms),
            duration(f.diff_ms),
            f.cpu_s.map_or("-".into(), |c| format!("{c:.2} s")),
            f.cpu_ms_per_cluster()
                .map_or("-".into(), |c| format!("{c:.2} ms")),
            f.rss_mb.map_or("-".into(), |m| format!("{m:.1} MB")),
            f.rss_mb
                .map_or("-".into(), |m| format!("{:.1} KB", m * 1024.0 / f.n as f64)),
            watch,
            restart,
        ));
    }
    let base = all
        .iter()
        .find(|f| f.n == 1000)
        .and_then(Figures::cpu_ms_per_cluster);
    let top = all
        .iter()
        .filter(|f| f.n > 1000 && f.cpu_s.is_some())
        .max_by_key(|f| f.n);
    if let (Some(base), Some(top)) = (base, top)
        && let Some(per) = top.cpu_ms_per_cluster()
        && base > 0.0
    {
        out.push_str(&format!(
            "\nCPU per cluster at {} / at 1000: {:.2} ms / {base:.2} ms = {:.2}x\n",
            top.n,
            per,
            per / base
        ));
    }
    out
}

async fn run(binary: &Path, n: usize, restart: bool) -> Figures {
    let mut f = Figures {
        n,
        ..Figures::default()
    };
    if let Err(e) = measure(binary, n, restart, &mut f).await {
        f.errors.push(e);
    }
    f
}

async fn measure(binary: &Path, n: usize, restart: bool, f: &mut Figures) -> BenchResult<()> {
    let mut coordinator = Coordinator::start(binary, n)?;
    coordinator.wait_ready().await?;
    let ch = Channel::from_shared(coordinator.addr.clone())
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| format!("connecting to convoyd: {e}"))?;
    let fleet = Fleet::start(&coordinator.addr, n);
    let result = measure_with(&mut coordinator, ch, n, restart, f).await;
    fleet.stop().await;
    if result.is_err() {
        coordinator.exited()?;
    }
    result
}

async fn measure_with(
    coordinator: &mut Coordinator,
    ch: Channel,
    n: usize,
    restart: bool,
    f: &mut Figures,
) -> BenchResult<()> {
    let connect_start = Instant::now();
    wait_connected(ch.clone(), n).await?;
    f.connected_ms = Some(connect_start.elapsed().as_millis());
    let mut client = ReleaseServiceClient::new(ch).max_decoding_message_size(64 << 20);
    let chart = chart_archive()?;

    // Revision 1 creates the release (a watch needs it to exist).
    let t0 = wall_millis();
    let first = submit(&mut client, n, "registry.example/web:1.0", FAST_PODS, &chart).await?;
    let finished = match open_watch(&mut client, &first.operation_id, false).await {
        Ok(mut w) => match until_succeeded(&mut w, &first.operation_id, 0).await {
            Ok(w1) => w1.succeeded_at,
            Err(Stopped::Cut { .. }) => finish_after_cut(&mut client, &first.operation_id).await?,
            Err(Stopped::Failed(e)) => return Err(e),
        },
        Err(_) => finish_after_cut(&mut client, &first.operation_id).await?,
    };
    f.first_healthy_ms = Some(finished.saturating_sub(t0));

    // Revision 2, watched from before the submit: the measured rollout.
    let mut events = open_watch(&mut client, "", true).await?;
    let t1 = wall_millis();
    let second = submit(&mut client, n, "registry.example/web:2.0", FAST_PODS, &chart).await?;
    f.accepted_ms = Some(wall_millis().saturating_sub(t1));
    let mut watch_alive = true;
    match until_succeeded(&mut events, &second.operation_id, n).await {
        Ok(w2) => {
            f.dispatched_ms = Some(w2.last_dispatched_at.saturating_sub(t1));
            f.healthy_ms = Some(w2.succeeded_at.saturating_sub(t1));
            f.final_seen = Some(w2.final_seen);
        }
        Err(Stopped::Cut { message, final_seen }) => {
            f.final_seen = Some(final_seen);
            f.errors.push(format!(
                "revision 2: the watch saw {final_seen} of {n} contexts settle, then: {message}"
            ));
            f.watch_error = Some(message);
            watch_alive = false;
            let done = finish_after_cut(&mut client, &second.operation_id).await?;
            f.healthy_ms = Some(done.saturating_sub(t1));
        }
        Err(Stopped::Failed(e)) => return Err(e),
    }

    // What a third revision would change, from every agent's dry run.
    let t3 = Instant::now();
    let diff = client
        .diff_release(pb::DiffReleaseRequest {
            submit: Some(pb::SubmitReleaseRequest {
                release_yaml: release_yaml(n, "registry.example/web:3.0", FAST_PODS),
                source_name: "web.yaml".into(),
                chart_archive: chart.to_vec(),
                ..Default::default()
            }),
            timeout_seconds: 120,
        })
        .await
        .map_err(|s| format!("DiffRelease: {s}"))?
        .into_inner();
    f.diff_ms = Some(t3.elapsed().as_millis());
    let answered = diff
        .contexts
        .iter()
        .filter(|c| c.status == pb::DiffStatus::Done as i32)
        .count();
    if answered != n {
        f.errors
            .push(format!("DiffRelease: {answered} of {n} contexts answered"));
    }

    // The fleet back to revision 1, on the same watch (a new one if it was cut off).
    if !watch_alive {
        events = open_watch(&mut client, "", true).await?;
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
    match until_succeeded(&mut events, &rb.operation_id, n).await {
        Ok(wr) => {
            f.rollback_ms = Some(wr.succeeded_at.saturating_sub(t2));
            f.rollback_final_seen = Some(wr.final_seen);
        }
        Err(Stopped::Cut { message, final_seen }) => {
            f.rollback_final_seen = Some(final_seen);
            f.errors.push(format!(
                "rollback: the watch saw {final_seen} of {n} contexts settle, then: {message}"
            ));
            f.watch_error.get_or_insert(message);
            let done = finish_after_cut(&mut client, &rb.operation_id).await?;
            f.rollback_ms = Some(done.saturating_sub(t2));
        }
        Err(Stopped::Failed(e)) => return Err(e),
    }
    drop(events);

    let (rss_mb, cpu_s) = coordinator.usage()?;
    f.rss_mb = Some(rss_mb);
    f.cpu_s = Some(cpu_s);

    if restart && let Err(e) = restart_figure(coordinator, &mut client, n, &chart, f).await {
        f.errors.push(format!("restart: {e}"));
    }
    Ok(())
}

/// Revision 3 with slow pods; SIGKILL `convoyd` mid-rollout, start it again, and time
/// the API serving again and the interrupted operation's end.
async fn restart_figure(
    coordinator: &mut Coordinator,
    client: &mut ReleaseServiceClient<Channel>,
    n: usize,
    chart: &[u8],
    f: &mut Figures,
) -> BenchResult<()> {
    let mut events = open_watch(client, "", true).await?;
    let third = submit(client, n, "registry.example/web:3.0", SLOW_PODS, chart).await?;
    let op = third.operation_id.clone();
    // Kill once every context was applied (pods starting), or 1 s after the first one was.
    let mut moved = HashSet::new();
    let mut running = false;
    let mut first_moved: Option<Instant> = None;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if moved.len() >= n || first_moved.is_some_and(|t| t.elapsed() >= Duration::from_secs(1)) {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("{op}: no context dispatched within 120s"));
        }
        let Ok(next) = tokio::time::timeout(Duration::from_millis(100), events.recv()).await else {
            continue;
        };
        let Some(Ok(e)) = next else {
            // The watch was cut off: kill now if anything moved, else keep waiting.
            if first_moved.is_some() {
                break;
            }
            events = open_watch(client, &op, false).await?;
            continue;
        };
        if e.operation_id != op {
            continue;
        }
        match e.event {
            Some(pb::rollout_event::Event::Operation(o)) => {
                running |= o.phase == pb::OperationPhase::Running as i32;
                if o.phase != pb::OperationPhase::Running as i32
                    && o.phase != pb::OperationPhase::Queued as i32
                {
                    return Err(format!("{op} ended before the kill: phase {}", o.phase));
                }
            }
            Some(pb::rollout_event::Event::Context(c)) if running => {
                // Progressing: the real apply is done, the pods are starting.
                let applied = [
                    pb::ContextPhase::Progressing as i32,
                    pb::ContextPhase::Healthy as i32,
                ]
                .contains(&c.phase);
                if applied {
                    moved.insert(c.context);
                    first_moved.get_or_insert_with(Instant::now);
                }
            }
            _ => {}
        }
    }
    drop(events);

    let killed = Instant::now();
    let killed_at = wall_millis();
    coordinator.kill_and_restart()?;
    // Serving again: the first GetRelease the new process answers.
    let deadline = killed + Duration::from_secs(300);
    loop {
        coordinator.exited()?;
        let answered = match Channel::from_shared(coordinator.addr.clone())
            .map_err(|e| e.to_string())?
            .connect_timeout(Duration::from_secs(2))
            .connect()
            .await
        {
            Ok(ch) => {
                let mut c = ReleaseServiceClient::new(ch).max_decoding_message_size(64 << 20);
                let ok = c
                    .get_release(pb::GetReleaseRequest {
                        release: RELEASE.into(),
                    })
                    .await
                    .is_ok();
                if ok {
                    *client = c;
                }
                ok
            }
            Err(_) => false,
        };
        if answered {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "convoyd not serving 300s after the restart:\n{}",
                coordinator.log()
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    f.restart_serving_ms = Some(killed.elapsed().as_millis());
    // The operation's own finish time (the new process's clock, the same machine).
    let done = finish_after_cut(client, &op).await?;
    f.restart_resumed_ms = Some(done.saturating_sub(killed_at));
    Ok(())
}

//! convoy's own binaries as real processes: `convoyd` and `convoy-agent`, started
//! with generated configs on ephemeral ports, for end-to-end tests.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use crate::process::{Service, WorkDir};
use crate::{ServiceError, free_port, http};

/// The path of one of the workspace's binaries (`convoyd`, `convoy-agent`, `convoy`),
/// building them once per test process if needed (cargo does not build other
/// packages' binaries for a package's tests).
pub fn binary(name: &str) -> Result<PathBuf, ServiceError> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let dir = BUILT
        .get_or_init(|| {
            let exe = std::env::current_exe().map_err(|e| e.to_string())?;
            // target/<profile>/deps/<test binary>
            let profile_dir = exe
                .parent()
                .and_then(Path::parent)
                .ok_or("unexpected test binary location")?;
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let release = profile_dir.file_name().is_some_and(|n| n == "release");
            let mut cmd = Command::new(cargo);
            cmd.args([
                "build",
                "--quiet",
                "-p",
                "convoy-daemon",
                "-p",
                "convoy-agent",
                "-p",
                "convoy-cli",
                "--bins",
            ]);
            if release {
                cmd.arg("--release");
            }
            let out = cmd
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .output()
                .map_err(|e| format!("running cargo build: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "cargo build of convoy's binaries failed:\n{}",
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
            Ok(profile_dir.to_path_buf())
        })
        .clone()
        .map_err(|e| ServiceError::setup(name, e))?;
    let path = dir.join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(ServiceError::setup(
            name,
            format!("{} was not built", path.display()),
        ))
    }
}

/// A running `convoyd`. Killed on drop.
#[derive(Debug)]
pub struct Convoyd {
    service: Service,
    /// `http://127.0.0.1:PORT` (gRPC: API and agent link).
    pub addr: String,
    /// `http://127.0.0.1:PORT` (`/metrics`, `/readyz`).
    pub metrics: String,
    config: PathBuf,
    dir: WorkDir,
    pub startup: Duration,
}

impl Convoyd {
    /// Starts `convoyd` with `config` (YAML) plus `listen`, `metrics_listen` and an
    /// embedded store in the test's directory (unless the config names its own store).
    pub async fn start(config: &str) -> Result<Self, ServiceError> {
        let mut d = Self::launch(config)?;
        d.startup = d.wait_ready().await?;
        Ok(d)
    }

    /// As [`Convoyd::start`] without waiting for `/readyz`: for a coordinator that is
    /// expected not to become ready (a standby of a highly available pair).
    pub fn launch(config: &str) -> Result<Self, ServiceError> {
        let dir = WorkDir::new("convoyd")?;
        let (port, mport) = (free_port(), free_port());
        let mut cfg = format!("listen: 127.0.0.1:{port}\nmetrics_listen: 127.0.0.1:{mport}\n");
        if !config.contains("store:") {
            cfg.push_str(&format!(
                "store: {{backend: embedded, path: {}}}\n",
                dir.path().join("state.redb").display()
            ));
        }
        cfg.push_str(config);
        let path = dir.path().join("convoyd.yaml");
        std::fs::write(&path, cfg).map_err(|e| ServiceError::setup("convoyd", e))?;
        Ok(Convoyd {
            service: Self::spawn(&path, dir.path(), 0)?,
            addr: format!("http://127.0.0.1:{port}"),
            metrics: format!("http://127.0.0.1:{mport}"),
            config: path,
            dir,
            startup: Duration::ZERO,
        })
    }

    /// Waits (up to `limit`) until `/readyz` answers 200; returns how long it took.
    pub async fn wait_ready_within(&mut self, limit: Duration) -> Result<Duration, ServiceError> {
        let url = format!("{}/readyz", self.metrics);
        self.service
            .wait_ready(limit, || async {
                http::request("GET", &url, &[], None)
                    .await
                    .is_ok_and(|r| r.status == 200)
            })
            .await
    }

    /// Whether the process has exited, and how.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.service.exited()
    }

    fn spawn(config: &Path, dir: &Path, generation: u32) -> Result<Service, ServiceError> {
        let mut cmd = Command::new(binary("convoyd")?);
        cmd.arg("--config")
            .arg(config)
            .env("RUST_LOG", "info,convoy_daemon=debug")
            .env("NO_COLOR", "1");
        Service::spawn("convoyd", cmd, dir.join(format!("convoyd.{generation}.log")))
    }

    async fn wait_ready(&mut self) -> Result<Duration, ServiceError> {
        self.wait_ready_within(Duration::from_secs(60)).await
    }

    /// SIGKILL: the coordinator dies wherever it is.
    pub fn kill(&mut self) {
        self.service.kill();
    }

    /// SIGSTOP: the coordinator freezes where it is (a long GC pause, a hung VM), its
    /// sockets open; [`Convoyd::thaw`] lets it go on.
    pub fn freeze(&self) {
        assert!(self.service.signal("STOP"), "SIGSTOP to convoyd");
    }

    /// SIGCONT after [`Convoyd::freeze`].
    pub fn thaw(&self) {
        assert!(self.service.signal("CONT"), "SIGCONT to convoyd");
    }

    /// SIGTERM, waiting up to `limit` for the exit: the status and how long it took.
    pub async fn terminate(&mut self, limit: Duration) -> Option<(std::process::ExitStatus, Duration)> {
        self.service.terminate(limit).await
    }

    /// Starts it again on the same ports, config and store, without waiting for
    /// `/readyz` (a coordinator coming back as a standby never becomes ready).
    pub fn relaunch(&mut self) -> Result<(), ServiceError> {
        self.service.kill();
        let generation = next_generation(self.dir.path());
        self.service = Self::spawn(&self.config, self.dir.path(), generation)?;
        Ok(())
    }

    /// Starts it again on the same ports, config and store.
    pub async fn restart(&mut self) -> Result<Duration, ServiceError> {
        self.service.kill();
        let generation = next_generation(self.dir.path());
        self.service = Self::spawn(&self.config, self.dir.path(), generation)?;
        self.wait_ready().await
    }

    /// Every log line written so far (all generations).
    pub fn logs(&self) -> String {
        logs_in(self.dir.path())
    }

    /// The directory holding its config, store and logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub async fn metrics_text(&self) -> Result<String, String> {
        Ok(
            http::request("GET", &format!("{}/metrics", self.metrics), &[], None)
                .await?
                .body,
        )
    }
}

/// A running `convoy-agent`. Killed on drop.
#[derive(Debug)]
pub struct AgentProcess {
    service: Service,
    pub context: String,
    pub health: String,
    config: PathBuf,
    dir: WorkDir,
}

impl AgentProcess {
    /// Starts an agent for `context` against `coordinator`; `kubeconfig` None runs the
    /// simulated backend. `extra` is appended to its config. Returns once the agent is
    /// connected.
    pub async fn start(
        coordinator: &str,
        context: &str,
        token: &str,
        kubeconfig: Option<&str>,
        extra: &str,
    ) -> Result<Self, ServiceError> {
        let mut a = Self::launch(coordinator, context, token, kubeconfig, extra)?;
        a.wait_connected().await?;
        Ok(a)
    }

    /// As [`AgentProcess::start`] without waiting for the connection: for an agent the
    /// coordinator is expected to refuse (its logs say why).
    pub fn launch(
        coordinator: &str,
        context: &str,
        token: &str,
        kubeconfig: Option<&str>,
        extra: &str,
    ) -> Result<Self, ServiceError> {
        let dir = WorkDir::new(&format!("agent-{context}"))?;
        let hport = free_port();
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, token).map_err(|e| ServiceError::setup("convoy-agent", e))?;
        let mut cfg = format!(
            "coordinator: {coordinator}\ncontext: {context}\ntoken_file: {}\nhealth_listen: 127.0.0.1:{hport}\n",
            token_file.display()
        );
        match kubeconfig {
            Some(kc) => {
                let p = dir.path().join("kubeconfig");
                std::fs::write(&p, kc).map_err(|e| ServiceError::setup("convoy-agent", e))?;
                cfg.push_str(&format!("backend: kubernetes\nkubeconfig: {}\n", p.display()));
            }
            None => cfg.push_str("backend: simulated\n"),
        }
        cfg.push_str(extra);
        let config = dir.path().join("agent.yaml");
        std::fs::write(&config, cfg).map_err(|e| ServiceError::setup("convoy-agent", e))?;
        Ok(AgentProcess {
            service: Self::spawn(&config, dir.path(), context, 0)?,
            context: context.to_string(),
            health: format!("http://127.0.0.1:{hport}"),
            config,
            dir,
        })
    }

    fn spawn(config: &Path, dir: &Path, context: &str, generation: u32) -> Result<Service, ServiceError> {
        let mut cmd = Command::new(binary("convoy-agent")?);
        cmd.arg("--config")
            .arg(config)
            .env("RUST_LOG", "info,convoy_agent=debug")
            .env("NO_COLOR", "1");
        Service::spawn(
            &format!("convoy-agent[{context}]"),
            cmd,
            dir.join(format!("agent.{generation}.log")),
        )
    }

    /// Waits until the agent reports a live session with the coordinator.
    pub async fn wait_connected(&mut self) -> Result<Duration, ServiceError> {
        let url = format!("{}/readyz", self.health);
        self.service
            .wait_ready(Duration::from_secs(60), || async {
                http::request("GET", &url, &[], None)
                    .await
                    .is_ok_and(|r| r.status == 200)
            })
            .await
    }

    pub fn kill(&mut self) {
        self.service.kill();
    }

    pub async fn restart(&mut self) -> Result<Duration, ServiceError> {
        self.service.kill();
        let generation = next_generation(self.dir.path());
        self.service = Self::spawn(&self.config, self.dir.path(), &self.context, generation)?;
        self.wait_connected().await
    }

    /// Every log line written so far (all generations).
    pub fn logs(&self) -> String {
        logs_in(self.dir.path())
    }
}

/// The concatenated `*.log` files of a service directory.
fn logs_in(dir: &Path) -> String {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "log"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap_or_default())
        .collect()
}

/// A fresh log-file number for a restarted process.
fn next_generation(dir: &Path) -> u32 {
    std::fs::read_dir(dir).map_or(1, |d| d.count() as u32)
}

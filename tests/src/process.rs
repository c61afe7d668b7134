//! A service process: spawned with its output in a log file, waited on until ready
//! (or reported with its log tail when it dies or times out), killed on drop.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Why a service could not be started. `Debug` prints the message, so a test's
/// `unwrap()` shows the service, the reason and the log tail readably.
#[derive(thiserror::Error)]
pub enum ServiceError {
    #[error(
        "{service}: `{binary}` not found. Run `.ci/install-deps` (it builds and caches the test services), \
         or set KUBEBUILDER_ASSETS to a directory holding kube-apiserver, kube-controller-manager and etcd"
    )]
    NotInstalled { service: String, binary: String },
    #[error("{service} failed to start: {reason}\n--- last lines of {} ---\n{tail}", log.display())]
    Start {
        service: String,
        reason: String,
        log: PathBuf,
        tail: String,
    },
    #[error("{service}: {reason}")]
    Setup { service: String, reason: String },
}

impl std::fmt::Debug for ServiceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl ServiceError {
    pub(crate) fn setup(service: &str, reason: impl std::fmt::Display) -> Self {
        ServiceError::Setup {
            service: service.to_string(),
            reason: reason.to_string(),
        }
    }
}

/// The last `lines` lines of a file (lossy UTF-8).
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A running service process.
#[derive(Debug)]
pub struct Service {
    name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Service {
    /// Spawns `cmd` with stdout and stderr appended to `log`.
    pub fn spawn(name: &str, mut cmd: Command, log: PathBuf) -> Result<Self, ServiceError> {
        let out = File::create(&log)
            .map_err(|e| ServiceError::setup(name, format!("creating {}: {e}", log.display())))?;
        let err = out.try_clone().map_err(|e| ServiceError::setup(name, e))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| ServiceError::setup(name, format!("spawning {:?}: {e}", cmd.get_program())))?;
        Ok(Service {
            name: name.to_string(),
            child: Some(child),
            log,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// A start failure for this service, with its log tail.
    pub fn failure(&self, reason: impl Into<String>) -> ServiceError {
        ServiceError::Start {
            service: self.name.clone(),
            reason: reason.into(),
            log: self.log.clone(),
            tail: tail(&self.log, 40),
        }
    }

    /// Whether the process has exited; the exit status when it has.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }

    /// Polls `ready` every `interval` until it returns true, the process exits, or
    /// `timeout` passes.
    pub async fn wait_ready<F, Fut>(
        &mut self,
        timeout: Duration,
        mut ready: F,
    ) -> Result<Duration, ServiceError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let start = Instant::now();
        loop {
            if let Some(status) = self.exited() {
                return Err(self.failure(format!("the process exited ({status}) before it was ready")));
            }
            if ready().await {
                return Ok(start.elapsed());
            }
            if start.elapsed() > timeout {
                return Err(self.failure(format!("not ready after {timeout:?}")));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Sends SIGTERM and waits up to `limit` for the process to exit: its exit status
    /// and how long it took, or None if it was still running (it is then left running).
    pub async fn terminate(&mut self, limit: Duration) -> Option<(std::process::ExitStatus, Duration)> {
        let pid = self.pid()?;
        let start = Instant::now();
        let sent = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .is_ok_and(|s| s.success());
        if !sent {
            return None;
        }
        while start.elapsed() < limit {
            if let Some(status) = self.exited() {
                return Some((status, start.elapsed()));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }

    /// Sends `signal` (`STOP`, `CONT`, ...) to the process; whether it was delivered.
    pub fn signal(&self, signal: &str) -> bool {
        self.pid().is_some_and(|pid| {
            Command::new("kill")
                .args([format!("-{signal}"), pid.to_string()])
                .status()
                .is_ok_and(|s| s.success())
        })
    }

    /// Kills the process (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!(
                "--- {} log ({}), last lines ---\n{}\n---",
                self.name,
                self.log.display(),
                tail(&self.log, 30)
            );
        }
    }
}

/// A service's working directory: removed when the test passes, kept (and named on
/// stderr) when it fails. Under /dev/shm where available, so etcd's fsyncs are cheap.
#[derive(Debug)]
pub struct WorkDir {
    dir: Option<tempfile::TempDir>,
}

impl WorkDir {
    pub fn new(prefix: &str) -> Result<Self, ServiceError> {
        let shm = Path::new("/dev/shm");
        let full_prefix = format!("convoy-{prefix}-");
        let mut b = tempfile::Builder::new();
        b.prefix(&full_prefix);
        let dir = if shm.is_dir() {
            b.tempdir_in(shm)
        } else {
            b.tempdir()
        };
        Ok(WorkDir {
            dir: Some(dir.map_err(|e| ServiceError::setup(prefix, format!("temporary directory: {e}")))?),
        })
    }

    pub fn path(&self) -> &Path {
        self.dir
            .as_ref()
            .map(|d| d.path())
            .expect("work dir present until drop")
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if let Some(d) = self.dir.take()
            && std::thread::panicking()
        {
            let kept = d.keep();
            eprintln!("test failed: service files kept in {}", kept.display());
        }
    }
}

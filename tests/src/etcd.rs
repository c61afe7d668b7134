//! A real etcd (Debian's `etcd-server`) on ephemeral loopback ports.

use std::process::Command;
use std::time::Duration;

use crate::process::{Service, WorkDir};
use crate::{ServiceError, free_port, http};

/// A running etcd. Stopped on drop.
#[derive(Debug)]
pub struct Etcd {
    service: Service,
    client_url: String,
    /// How long it took to become healthy.
    pub startup: Duration,
    _dir: WorkDir,
}

impl Etcd {
    /// Starts etcd with its data in a fresh temporary directory.
    pub async fn start() -> Result<Self, ServiceError> {
        Self::start_with(&[]).await
    }

    /// Starts etcd with extra flags (`--max-txn-ops=16`).
    pub async fn start_with(flags: &[&str]) -> Result<Self, ServiceError> {
        let dir = WorkDir::new("etcd")?;
        Self::start_in(dir, "etcd", flags).await
    }

    /// Starts etcd in `dir` (shared with a control plane that keeps its files together).
    pub(crate) async fn start_in(dir: WorkDir, name: &str, flags: &[&str]) -> Result<Self, ServiceError> {
        let bin = crate::tools::etcd()?;
        let (client, peer) = (free_port(), free_port());
        let client_url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let mut cmd = Command::new(bin);
        cmd.arg("--name=test")
            .arg(format!("--data-dir={}", dir.path().join("etcd-data").display()))
            .arg(format!("--listen-client-urls={client_url}"))
            .arg(format!("--advertise-client-urls={client_url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=test={peer_url}"))
            .arg("--logger=zap")
            .arg("--log-outputs=stderr")
            // Small, fast, throwaway: no snapshots of consequence, short heartbeats.
            .arg("--snapshot-count=100000")
            .arg("--quota-backend-bytes=1073741824")
            .args(flags);
        let mut service = Service::spawn(name, cmd, dir.path().join(format!("{name}.log")))?;
        let health = format!("{client_url}/health");
        let startup = service
            .wait_ready(Duration::from_secs(30), || async {
                http::request("GET", &health, &[], None)
                    .await
                    .is_ok_and(|r| r.status == 200 && r.body.contains("true"))
            })
            .await?;
        Ok(Etcd {
            service,
            client_url,
            startup,
            _dir: dir,
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn client_url(&self) -> &str {
        &self.client_url
    }

    /// Its data directory (`--data-dir`): the WAL and the bolt database, for tests that
    /// check what was (never) written.
    pub fn data_dir(&self) -> std::path::PathBuf {
        self._dir.path().join("etcd-data")
    }

    /// Kills etcd (SIGKILL), for failure tests.
    pub fn kill(&mut self) {
        self.service.kill();
    }
}

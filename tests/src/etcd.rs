//! A real etcd (Debian's `etcd-server`) on ephemeral loopback ports; optionally
//! secured as in production: TLS, client certificates required, and etcd's own users
//! with a role scoped to one key prefix (set up with Debian's `etcdctl`).

use std::path::PathBuf;
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
    access: Option<EtcdAccess>,
    _dir: WorkDir,
}

/// How a client reaches a secured etcd ([`Etcd::start_secure`]): files in the etcd's
/// work directory.
#[derive(Debug, Clone)]
pub struct EtcdAccess {
    /// The CA of etcd's serving certificate and of the client certificates it accepts.
    pub ca_file: PathBuf,
    /// A client certificate (CN `convoy-client`, not an etcd user: the password is
    /// what grants access) and its key.
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// The etcd user with readwrite on `prefix` only.
    pub username: String,
    pub password: String,
    pub password_file: PathBuf,
    pub prefix: String,
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

    /// Starts etcd secured: TLS only, `--client-cert-auth`, and authentication on,
    /// with a user `convoy` whose role may read and write keys under `prefix` only.
    pub async fn start_secure(prefix: &str) -> Result<Self, ServiceError> {
        let dir = WorkDir::new("etcd")?;
        let ca = crate::certs::TestCa::new("etcd").map_err(|e| ServiceError::setup("etcd", e))?;
        let server = ca
            .server_cert("etcd", &[])
            .map_err(|e| ServiceError::setup("etcd", e))?;
        let client = ca
            .client_cert("convoy-client", None)
            .map_err(|e| ServiceError::setup("etcd", e))?;
        let root = ca
            .client_cert("root", None)
            .map_err(|e| ServiceError::setup("etcd", e))?;
        let write = |name: &str, text: &str| -> Result<PathBuf, ServiceError> {
            let path = dir.path().join(name);
            std::fs::write(&path, text)
                .map_err(|e| ServiceError::setup("etcd", format!("{}: {e}", path.display())))?;
            Ok(path)
        };
        let ca_file = write("ca.pem", &ca.cert_pem())?;
        let server_cert = write("server.pem", &server.cert_pem)?;
        let server_key = write("server-key.pem", &server.key_pem)?;
        let password = format!("pw-{:016x}", rand::random::<u64>());
        let access = EtcdAccess {
            ca_file: ca_file.clone(),
            cert_file: write("client.pem", &client.cert_pem)?,
            key_file: write("client-key.pem", &client.key_pem)?,
            username: "convoy".into(),
            password: password.clone(),
            password_file: write("password", &format!("{password}\n"))?,
            prefix: prefix.to_string(),
        };
        let root_cert = write("root.pem", &root.cert_pem)?;
        let root_key = write("root-key.pem", &root.key_pem)?;
        let flags = [
            format!("--cert-file={}", server_cert.display()),
            format!("--key-file={}", server_key.display()),
            format!("--trusted-ca-file={}", ca_file.display()),
            "--client-cert-auth".to_string(),
        ];
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        let mut etcd = Self::launch(dir, "etcd", &flags, "https").await?;
        // etcd's users: root (needed to turn authentication on; the root certificate's
        // CN authenticates etcdctl), and convoy with a role on `prefix`.
        let etcdctl = crate::tools::etcdctl()?;
        let root_password = format!("root-{:016x}", rand::random::<u64>());
        let steps: [Vec<String>; 6] = [
            vec!["user".into(), "add".into(), format!("root:{root_password}")],
            vec!["user".into(), "add".into(), format!("convoy:{password}")],
            vec!["role".into(), "add".into(), "convoy".into()],
            vec![
                "role".into(),
                "grant-permission".into(),
                "convoy".into(),
                "--prefix=true".into(),
                "readwrite".into(),
                prefix.to_string(),
            ],
            vec![
                "user".into(),
                "grant-role".into(),
                "convoy".into(),
                "convoy".into(),
            ],
            vec!["auth".into(), "enable".into()],
        ];
        for step in steps {
            let out = Command::new(&etcdctl)
                .arg(format!("--endpoints={}", etcd.client_url))
                .arg(format!("--cacert={}", ca_file.display()))
                .arg(format!("--cert={}", root_cert.display()))
                .arg(format!("--key={}", root_key.display()))
                .args(&step)
                .output()
                .map_err(|e| ServiceError::setup("etcdctl", e))?;
            if !out.status.success() {
                return Err(ServiceError::setup(
                    "etcdctl",
                    format!("{}: {}", step.join(" "), String::from_utf8_lossy(&out.stderr)),
                ));
            }
        }
        etcd.access = Some(access);
        Ok(etcd)
    }

    /// Starts etcd in `dir` (shared with a control plane that keeps its files together).
    pub(crate) async fn start_in(dir: WorkDir, name: &str, flags: &[&str]) -> Result<Self, ServiceError> {
        Self::launch(dir, name, flags, "http").await
    }

    async fn launch(dir: WorkDir, name: &str, flags: &[&str], scheme: &str) -> Result<Self, ServiceError> {
        let bin = crate::tools::etcd()?;
        let (client, peer, metrics) = (free_port(), free_port(), free_port());
        let client_url = format!("{scheme}://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let mut cmd = Command::new(bin);
        cmd.arg("--name=test")
            .arg(format!("--data-dir={}", dir.path().join("etcd-data").display()))
            .arg(format!("--listen-client-urls={client_url}"))
            .arg(format!("--advertise-client-urls={client_url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=test={peer_url}"))
            // Health over plain HTTP, whatever the client listener speaks.
            .arg(format!("--listen-metrics-urls=http://127.0.0.1:{metrics}"))
            .arg("--logger=zap")
            .arg("--log-outputs=stderr")
            // Small, fast, throwaway: no snapshots of consequence, short heartbeats.
            .arg("--snapshot-count=100000")
            .arg("--quota-backend-bytes=1073741824")
            .args(flags);
        let mut service = Service::spawn(name, cmd, dir.path().join(format!("{name}.log")))?;
        let health = format!("http://127.0.0.1:{metrics}/health");
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
            access: None,
            _dir: dir,
        })
    }

    /// How to reach it, when started with [`Etcd::start_secure`].
    pub fn access(&self) -> Option<&EtcdAccess> {
        self.access.as_ref()
    }

    /// `http://127.0.0.1:PORT` (`https://` when secured).
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

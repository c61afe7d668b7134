//! A real OpenBao server (Vault's API) in dev mode: in memory, unsealed, KV v2 mounted
//! at `secret/`, root token known.

use std::process::Command;
use std::time::Duration;

use crate::process::{Service, WorkDir};
use crate::{ServiceError, free_port, http};

/// A running `bao server -dev`. Stopped on drop.
#[derive(Debug)]
pub struct OpenBao {
    service: Service,
    addr: String,
    root_token: String,
    /// How long it took to become ready.
    pub startup: Duration,
    _dir: WorkDir,
}

impl OpenBao {
    pub async fn start() -> Result<Self, ServiceError> {
        let bin = crate::tools::bao()?;
        let dir = WorkDir::new("openbao")?;
        let port = free_port();
        let addr = format!("http://127.0.0.1:{port}");
        let root_token = format!("root-{}", rand::random::<u64>());
        let mut cmd = Command::new(bin);
        cmd.args(["server", "-dev"])
            .arg(format!("-dev-listen-address=127.0.0.1:{port}"))
            .arg(format!("-dev-root-token-id={root_token}"))
            // Dev mode writes the token to ~/.vault-token: keep it in the test's directory.
            .env("HOME", dir.path())
            .env_remove("VAULT_ADDR")
            .env_remove("BAO_ADDR");
        let mut service = Service::spawn("openbao", cmd, dir.path().join("openbao.log"))?;
        let health = format!("{addr}/v1/sys/health");
        let startup = service
            .wait_ready(Duration::from_secs(30), || async {
                http::request("GET", &health, &[], None)
                    .await
                    .is_ok_and(|r| r.status == 200)
            })
            .await?;
        Ok(OpenBao {
            service,
            addr,
            root_token,
            startup,
            _dir: dir,
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    pub fn root_token(&self) -> &str {
        &self.root_token
    }

    /// Calls the HTTP API as root: `path` without the `/v1/` prefix.
    pub async fn api(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<http::Response, String> {
        let url = format!("{}/v1/{}", self.addr, path.trim_start_matches('/'));
        let body = body.map(|b| b.to_string());
        let r = http::request(
            method,
            &url,
            &[("X-Vault-Token", &self.root_token)],
            body.as_deref(),
        )
        .await?;
        if r.status >= 400 {
            return Err(format!("{method} {path}: HTTP {}: {}", r.status, r.body));
        }
        Ok(r)
    }

    /// Writes `data` to a KV v2 secret (`mount`/data/`path`); returns the new version.
    pub async fn kv2_put(&self, mount: &str, path: &str, data: serde_json::Value) -> Result<u64, String> {
        let r = self
            .api(
                "POST",
                &format!("{mount}/data/{path}"),
                Some(serde_json::json!({ "data": data })),
            )
            .await?;
        r.json()?["data"]["version"]
            .as_u64()
            .ok_or_else(|| format!("no version in {}", r.body))
    }

    /// Mounts a KV engine of `version` (1 or 2) at `mount`.
    pub async fn mount_kv(&self, mount: &str, version: u8) -> Result<(), String> {
        let body = serde_json::json!({ "type": "kv", "options": { "version": version.to_string() } });
        self.api("POST", &format!("sys/mounts/{mount}"), Some(body))
            .await
            .map(|_| ())
    }

    /// Kills the server (SIGKILL), for "Vault went down" tests.
    pub fn kill(&mut self) {
        self.service.kill();
    }
}

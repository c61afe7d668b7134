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
    /// A persistent server ([`OpenBao::start_persistent`]): its unseal key.
    unseal_key: Option<String>,
    _dir: WorkDir,
}

/// The HCL of a persistent server: integrated (raft) storage in `dir`, plain HTTP on
/// `port`, raft's cluster traffic on `cluster`.
fn persistent_config(dir: &std::path::Path, port: u16, cluster: u16) -> String {
    format!(
        "storage \"raft\" {{\n  path = \"{}\"\n  node_id = \"test\"\n}}\nlistener \"tcp\" {{\n  address = \"127.0.0.1:{port}\"\n  cluster_address = \"127.0.0.1:{cluster}\"\n  tls_disable = true\n}}\napi_addr = \"http://127.0.0.1:{port}\"\ncluster_addr = \"http://127.0.0.1:{cluster}\"\n",
        dir.join("data").display()
    )
}

impl OpenBao {
    pub async fn start() -> Result<Self, ServiceError> {
        let dir = WorkDir::new("openbao")?;
        let port = free_port();
        let root_token = format!("root-{}", rand::random::<u64>());
        let args = vec![
            "server".to_string(),
            "-dev".into(),
            format!("-dev-listen-address=127.0.0.1:{port}"),
            format!("-dev-root-token-id={root_token}"),
        ];
        let (service, startup) = Self::spawn(&dir, port, &args, 0, true).await?;
        Ok(OpenBao {
            service,
            addr: format!("http://127.0.0.1:{port}"),
            root_token,
            startup,
            unseal_key: None,
            _dir: dir,
        })
    }

    /// A server that keeps its data across [`OpenBao::restart`] (raft storage, not dev
    /// mode): initialised with one unseal key, unsealed, KV v2 mounted at `secret/`.
    pub async fn start_persistent() -> Result<Self, ServiceError> {
        let dir = WorkDir::new("openbao")?;
        let port = free_port();
        let addr = format!("http://127.0.0.1:{port}");
        let config = dir.path().join("bao.hcl");
        std::fs::create_dir_all(dir.path().join("data")).map_err(|e| ServiceError::setup("openbao", e))?;
        std::fs::write(&config, persistent_config(dir.path(), port, free_port()))
            .map_err(|e| ServiceError::setup("openbao", e))?;
        let args = vec!["server".to_string(), format!("-config={}", config.display())];
        let (service, startup) = Self::spawn(&dir, port, &args, 0, false).await?;
        let fail = |why: String| ServiceError::setup("openbao", why);
        let init = http::request(
            "PUT",
            &format!("{addr}/v1/sys/init"),
            &[],
            Some(r#"{"secret_shares": 1, "secret_threshold": 1}"#),
        )
        .await
        .map_err(fail)?;
        let keys = init.json().map_err(fail)?;
        let (Some(key), Some(root)) = (keys["keys"][0].as_str(), keys["root_token"].as_str()) else {
            return Err(fail(format!("sys/init answered {}", init.status)));
        };
        let mut bao = OpenBao {
            service,
            addr,
            root_token: root.to_string(),
            startup,
            unseal_key: Some(key.to_string()),
            _dir: dir,
        };
        bao.unseal().await?;
        bao.mount_kv("secret", 2).await.map_err(fail)?;
        bao.wait_kv2_ready("secret").await.map_err(fail)?;
        Ok(bao)
    }

    /// Unseals a persistent server and waits until it is active.
    async fn unseal(&mut self) -> Result<(), ServiceError> {
        let Some(key) = self.unseal_key.clone() else {
            return Ok(());
        };
        let body = serde_json::json!({ "key": key }).to_string();
        http::request("PUT", &format!("{}/v1/sys/unseal", self.addr), &[], Some(&body))
            .await
            .map_err(|e| ServiceError::setup("openbao", e))?;
        let health = format!("{}/v1/sys/health", self.addr);
        self.service
            .wait_ready(Duration::from_secs(30), || async {
                http::request("GET", &health, &[], None)
                    .await
                    .is_ok_and(|r| r.status == 200)
            })
            .await
            .map(|_| ())
    }

    /// Spawns the server; waits until it is active (`healthy`) or merely answers.
    async fn spawn(
        dir: &WorkDir,
        port: u16,
        args: &[String],
        generation: u32,
        healthy: bool,
    ) -> Result<(Service, Duration), ServiceError> {
        let bin = crate::tools::bao()?;
        let mut cmd = Command::new(bin);
        cmd.args(args)
            // Dev mode writes the token to ~/.vault-token: keep it in the test's directory.
            .env("HOME", dir.path())
            .env_remove("VAULT_ADDR")
            .env_remove("BAO_ADDR");
        let log = dir.path().join(format!("openbao.{generation}.log"));
        let mut service = Service::spawn("openbao", cmd, log)?;
        let health = format!("http://127.0.0.1:{port}/v1/sys/health");
        let startup = service
            .wait_ready(Duration::from_secs(30), || async {
                http::request("GET", &health, &[], None)
                    .await
                    .is_ok_and(|r| r.status == 200 || (!healthy && r.status >= 400))
            })
            .await?;
        Ok((service, startup))
    }

    /// Starts it again (after [`OpenBao::kill`]) on the same address. A dev server comes
    /// back empty with the same root token (write the secrets again); a persistent one
    /// with its data, unsealed.
    pub async fn restart(&mut self) -> Result<Duration, ServiceError> {
        self.service.kill();
        let port: u16 = self
            .addr
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| ServiceError::setup("openbao", "no port in its address"))?;
        let generation = std::fs::read_dir(self._dir.path()).map_or(1, |d| d.count() as u32);
        let args = match &self.unseal_key {
            Some(_) => vec![
                "server".to_string(),
                format!("-config={}", self._dir.path().join("bao.hcl").display()),
            ],
            None => vec![
                "server".to_string(),
                "-dev".into(),
                format!("-dev-listen-address=127.0.0.1:{port}"),
                format!("-dev-root-token-id={}", self.root_token),
            ],
        };
        let persistent = self.unseal_key.is_some();
        let (service, startup) = Self::spawn(&self._dir, port, &args, generation, !persistent).await?;
        self.service = service;
        self.unseal().await?;
        Ok(startup)
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

/// Policies, auth methods and tokens, set up as root: what a Vault admin does before
/// convoy can read secrets.
impl OpenBao {
    /// Waits until the KV v2 engine at `mount` serves requests: right after it is
    /// mounted it upgrades its storage in the background and refuses reads and writes
    /// ("Upgrading from non-versioned to versioned data") for a moment.
    pub async fn wait_kv2_ready(&self, mount: &str) -> Result<(), String> {
        let url = format!("{}/v1/{mount}/data/convoy-readiness-probe", self.addr);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let r = http::request("GET", &url, &[("X-Vault-Token", &self.root_token)], None).await?;
            if r.status == 404 || r.status == 200 {
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                return Err(format!(
                    "KV v2 at {mount}/ not ready after 30s: HTTP {}: {}",
                    r.status, r.body
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Writes a KV v1 secret (`mount`/`path`).
    pub async fn kv1_put(&self, mount: &str, path: &str, data: serde_json::Value) -> Result<(), String> {
        self.api("POST", &format!("{mount}/{path}"), Some(data))
            .await
            .map(|_| ())
    }

    /// Creates or replaces the ACL policy `name` (HCL text).
    pub async fn put_policy(&self, name: &str, hcl: &str) -> Result<(), String> {
        let body = serde_json::json!({ "policy": hcl });
        self.api("POST", &format!("sys/policies/acl/{name}"), Some(body))
            .await
            .map(|_| ())
    }

    /// Enables the auth method `kind` (`approle`, `kubernetes`, ...) at `auth/<path>`.
    pub async fn enable_auth(&self, path: &str, kind: &str) -> Result<(), String> {
        let body = serde_json::json!({ "type": kind });
        self.api("POST", &format!("sys/auth/{path}"), Some(body))
            .await
            .map(|_| ())
    }

    /// Mounts a secrets engine of `kind` (`transit`, ...) at `path`.
    pub async fn mount_engine(&self, path: &str, kind: &str) -> Result<(), String> {
        let body = serde_json::json!({ "type": kind });
        self.api("POST", &format!("sys/mounts/{path}"), Some(body))
            .await
            .map(|_| ())
    }

    /// Creates AppRole `role` (approle enabled at `auth/approle`) with `policies` and
    /// extra role settings (`{"token_ttl": "3s"}`); returns (role_id, secret_id).
    pub async fn approle(
        &self,
        role: &str,
        policies: &[&str],
        settings: serde_json::Value,
    ) -> Result<(String, String), String> {
        let mut body = serde_json::json!({ "token_policies": policies });
        if let (Some(b), Some(extra)) = (body.as_object_mut(), settings.as_object()) {
            b.extend(extra.clone());
        }
        self.api("POST", &format!("auth/approle/role/{role}"), Some(body))
            .await?;
        let r = self
            .api("GET", &format!("auth/approle/role/{role}/role-id"), None)
            .await?;
        let role_id = r.json()?["data"]["role_id"]
            .as_str()
            .ok_or_else(|| format!("no role_id in {}", r.body))?
            .to_string();
        let r = self
            .api(
                "POST",
                &format!("auth/approle/role/{role}/secret-id"),
                Some(serde_json::json!({})),
            )
            .await?;
        let secret_id = r.json()?["data"]["secret_id"]
            .as_str()
            .ok_or_else(|| "no secret_id in the answer".to_string())?
            .to_string();
        Ok((role_id, secret_id))
    }

    /// Creates a token with `policies` (plus `default`, which allows lookup-self and
    /// renew-self) and the given TTL (`"1h"`).
    pub async fn create_token(&self, policies: &[&str], ttl: &str) -> Result<String, String> {
        let body = serde_json::json!({ "policies": policies, "ttl": ttl });
        let r = self.api("POST", "auth/token/create", Some(body)).await?;
        r.json()?["auth"]["client_token"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| "no client_token in the answer".to_string())
    }

    /// Revokes every token issued under `prefix` (e.g. `auth/approle/login`).
    pub async fn revoke_prefix(&self, prefix: &str) -> Result<(), String> {
        self.api(
            "POST",
            &format!("sys/leases/revoke-prefix/{prefix}"),
            Some(serde_json::json!({})),
        )
        .await
        .map(|_| ())
    }

    /// Seals the server: every later request answers 503 "Vault is sealed".
    pub async fn seal(&self) -> Result<(), String> {
        self.api("POST", "sys/seal", Some(serde_json::json!({})))
            .await
            .map(|_| ())
    }
}

/// A `bao server -dev -dev-tls`: HTTPS with a CA OpenBao generates, for tests of the
/// TLS path (CA file, certificate verification). Its HTTP API is reached through the
/// `bao` CLI ([`TlsOpenBao::cli`]), which verifies with the same CA. Stopped on drop.
#[derive(Debug)]
pub struct TlsOpenBao {
    _service: Service,
    addr: String,
    root_token: String,
    ca_file: std::path::PathBuf,
    bin: std::path::PathBuf,
    /// How long it took to become ready.
    pub startup: Duration,
    _dir: WorkDir,
}

impl TlsOpenBao {
    pub async fn start() -> Result<Self, ServiceError> {
        let bin = crate::tools::bao()?;
        let dir = WorkDir::new("openbao-tls")?;
        let port = free_port();
        let addr = format!("https://127.0.0.1:{port}");
        let root_token = format!("root-{}", rand::random::<u64>());
        let certs = dir.path().join("tls");
        std::fs::create_dir_all(&certs).map_err(|e| ServiceError::setup("openbao-tls", e))?;
        let mut cmd = Command::new(&bin);
        cmd.args(["server", "-dev", "-dev-tls"])
            .arg(format!("-dev-tls-cert-dir={}", certs.display()))
            .arg(format!("-dev-listen-address=127.0.0.1:{port}"))
            .arg(format!("-dev-root-token-id={root_token}"))
            .env("HOME", dir.path())
            .env_remove("VAULT_ADDR")
            .env_remove("BAO_ADDR");
        let mut service = Service::spawn("openbao-tls", cmd, dir.path().join("openbao.log"))?;
        let ca_file = certs.join("vault-ca.pem");
        let startup = service
            .wait_ready(Duration::from_secs(30), || async {
                ca_file.exists()
                    && bao_cli(&bin, &addr, &root_token, &ca_file, &["status"])
                        .await
                        .is_ok()
            })
            .await?;
        Ok(TlsOpenBao {
            _service: service,
            addr,
            root_token,
            ca_file,
            bin,
            startup,
            _dir: dir,
        })
    }

    /// `https://127.0.0.1:PORT`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    pub fn root_token(&self) -> &str {
        &self.root_token
    }

    /// The PEM file of the CA that signed the server's certificate.
    pub fn ca_file(&self) -> &std::path::Path {
        &self.ca_file
    }

    /// Runs the `bao` CLI as root against this server (`["kv", "put", ...]`);
    /// returns its stdout.
    pub async fn cli(&self, args: &[&str]) -> Result<String, String> {
        bao_cli(&self.bin, &self.addr, &self.root_token, &self.ca_file, args).await
    }
}

async fn bao_cli(
    bin: &std::path::Path,
    addr: &str,
    token: &str,
    ca_file: &std::path::Path,
    args: &[&str],
) -> Result<String, String> {
    let out = tokio::process::Command::new(bin)
        .args(args)
        .env("BAO_ADDR", addr)
        .env("BAO_TOKEN", token)
        .env("BAO_CACERT", ca_file)
        .env_remove("VAULT_ADDR")
        .output()
        .await
        .map_err(|e| format!("running bao {args:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "bao {args:?}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

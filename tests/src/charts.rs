//! Chart sources on loopback: a small HTTP file server for chart repositories
//! (`index.yaml` + `.tgz`, optional basic authentication) and a real OCI registry
//! (Debian's `docker-registry`, CNCF distribution, with htpasswd authentication).

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::process::{Service, WorkDir};
use crate::{ServiceError, free_port, http};

type Files = Arc<Mutex<BTreeMap<String, Vec<u8>>>>;

/// An HTTP/1.1 server serving files by path on 127.0.0.1, requiring basic
/// authentication when built with credentials. Stopped (connections refused) by
/// [`ChartServer::stop`] or on drop.
#[derive(Debug)]
pub struct ChartServer {
    url: String,
    files: Files,
    /// Requests answered, per path.
    hits: Arc<Mutex<BTreeMap<String, usize>>>,
    /// The `Authorization` header required, if any.
    expected: Arc<Mutex<Option<String>>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

fn basic_header(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// HTTPS for a [`ChartServer`] or [`GitServer`]: its certificate, and the CA whose
/// client certificates it requires (mutual TLS), if any.
#[derive(Debug, Clone, Copy)]
pub struct ServerTls<'a> {
    pub server: &'a crate::certs::CertPair,
    pub client_ca_pem: Option<&'a str>,
}

impl ServerTls<'_> {
    fn acceptor(&self) -> std::io::Result<tokio_rustls::TlsAcceptor> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let bad = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, e);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let certs = CertificateDer::pem_slice_iter(self.server.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(e.to_string()))?;
        let key =
            PrivateKeyDer::from_pem_slice(self.server.key_pem.as_bytes()).map_err(|e| bad(e.to_string()))?;
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| bad(e.to_string()))?;
        let builder = match self.client_ca_pem {
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                for c in CertificateDer::pem_slice_iter(ca.as_bytes()) {
                    roots
                        .add(c.map_err(|e| bad(e.to_string()))?)
                        .map_err(|e| bad(e.to_string()))?;
                }
                let verifier =
                    rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .map_err(|e| bad(e.to_string()))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let config = builder
            .with_single_cert(certs, key)
            .map_err(|e| bad(e.to_string()))?;
        Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
    }
}

impl ChartServer {
    /// Starts serving (no files yet); `basic`: the user and password required.
    pub async fn start(basic: Option<(&str, &str)>) -> std::io::Result<Self> {
        Self::start_with(basic, None).await
    }

    /// [`ChartServer::start`], over HTTPS when `tls` is given.
    pub async fn start_with(
        basic: Option<(&str, &str)>,
        tls: Option<ServerTls<'_>>,
    ) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let acceptor = tls.map(|t| t.acceptor()).transpose()?;
        let scheme = if acceptor.is_some() { "https" } else { "http" };
        let url = format!("{scheme}://{}", listener.local_addr()?);
        let files: Files = Arc::default();
        let hits: Arc<Mutex<BTreeMap<String, usize>>> = Arc::default();
        let expected = Arc::new(Mutex::new(basic.map(|(u, p)| basic_header(u, p))));
        let (f, h, e) = (files.clone(), hits.clone(), expected.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (f, h) = (f.clone(), h.clone());
                let expected = e.lock().expect("credentials").clone();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let _ = match acceptor {
                        Some(a) => match a.accept(stream).await {
                            Ok(tls) => serve_one(tls, &f, &h, expected.as_deref()).await,
                            Err(e) => Err(e),
                        },
                        None => serve_one(stream, &f, &h, expected.as_deref()).await,
                    };
                });
            }
        });
        Ok(ChartServer {
            url,
            files,
            hits,
            expected,
            task: Some(task),
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Serves `content` at `path` (`/index.yaml`), replacing what was there.
    pub fn put(&self, path: &str, content: Vec<u8>) {
        self.files
            .lock()
            .expect("files")
            .insert(path.to_string(), content);
    }

    /// From now on, requires `user` and `password` (a rotated password).
    pub fn set_basic(&self, user: &str, password: &str) {
        *self.expected.lock().expect("credentials") = Some(basic_header(user, password));
    }

    /// How many requests for `path` were answered.
    pub fn hits(&self, path: &str) -> usize {
        self.hits.lock().expect("hits").get(path).copied().unwrap_or(0)
    }

    /// Stops listening: later connections are refused.
    pub fn stop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

impl Drop for ChartServer {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn serve_one<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    stream: S,
    files: &Files,
    hits: &Mutex<BTreeMap<String, usize>>,
    expected: Option<&str>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).await?;
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut authorization = None;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).await? == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = header.split_once(':')
            && k.eq_ignore_ascii_case("authorization")
        {
            authorization = Some(v.trim().to_string());
        }
    }
    let (status, body) = if expected.is_some() && authorization.as_deref() != expected {
        ("401 Unauthorized", b"unauthorized\n".to_vec())
    } else {
        match files.lock().expect("files").get(&path) {
            Some(b) => ("200 OK", b.clone()),
            None => ("404 Not Found", b"not found\n".to_vec()),
        }
    };
    *hits.lock().expect("hits").entry(path).or_default() += 1;
    let mut stream = reader.into_inner();
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\nWWW-Authenticate: Basic realm=\"charts\"\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(&body).await?;
    stream.shutdown().await
}

/// `sha256` hex of `data`, as `index.yaml` gives digests.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    format!("{:x}", Sha256::digest(data))
}

/// An `index.yaml` listing `(name, version, archive)` entries, each archive served at
/// `/NAME-VERSION.tgz` (a relative URL, as `helm repo index` writes).
pub fn index_yaml(entries: &[(&str, &str, &[u8])]) -> String {
    let mut by_name: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (name, version, archive) in entries {
        by_name.entry(name).or_default().push(format!(
            "  - apiVersion: v2\n    name: {name}\n    version: {version}\n    digest: {}\n    urls: [{name}-{version}.tgz]\n",
            sha256_hex(archive)
        ));
    }
    let mut out = String::from("apiVersion: v1\nentries:\n");
    for (name, versions) in by_name {
        out.push_str(&format!("  {name}:\n"));
        for v in versions {
            out.push_str(&v);
        }
    }
    out
}

/// A real OCI registry (`docker-registry serve`, CNCF distribution) on 127.0.0.1, plain
/// HTTP, filesystem storage, optionally with htpasswd (bcrypt) authentication. Stopped
/// on drop or by [`Registry::kill`].
#[derive(Debug)]
pub struct Registry {
    service: Service,
    host: String,
    /// How long it took to answer.
    pub startup: Duration,
    _dir: WorkDir,
}

/// How to start a [`Registry`] beyond the defaults (plain HTTP, no authentication,
/// storage of its own).
#[derive(Debug, Default, Clone, Copy)]
pub struct RegistryOptions<'a> {
    /// The only user and password it accepts (htpasswd).
    pub basic: Option<(&'a str, &'a str)>,
    /// Storage shared with another registry (e.g. a plain one to push to, with
    /// [`RegistryOptions::tls`] on this one); default: its own.
    pub data_dir: Option<&'a std::path::Path>,
    /// Serve HTTPS with this certificate, requiring client certificates signed by
    /// `client_ca_pem` (mutual TLS, `http.tls.clientcas`).
    pub tls: Option<RegistryTls<'a>>,
}

/// The TLS of a [`Registry`].
#[derive(Debug, Clone, Copy)]
pub struct RegistryTls<'a> {
    pub server: &'a crate::certs::CertPair,
    pub client_ca_pem: &'a str,
}

impl Registry {
    /// Starts a registry; `basic`: the only user and password it accepts.
    pub async fn start(basic: Option<(&str, &str)>) -> Result<Self, ServiceError> {
        Self::start_with(RegistryOptions {
            basic,
            ..RegistryOptions::default()
        })
        .await
    }

    /// Starts a registry as `opts` says.
    pub async fn start_with(opts: RegistryOptions<'_>) -> Result<Self, ServiceError> {
        let bin = crate::tools::docker_registry()?;
        let dir = WorkDir::new("registry")?;
        let port = free_port();
        let host = format!("127.0.0.1:{port}");
        let setup = |e: std::io::Error| ServiceError::setup("docker-registry", e);
        let auth = match opts.basic {
            Some((user, password)) => {
                let hash = bcrypt::hash_with_result(password, 4)
                    .map_err(|e| ServiceError::setup("docker-registry", e))?
                    .format_for_version(bcrypt::Version::TwoA);
                let path = dir.path().join("htpasswd");
                std::fs::write(&path, format!("{user}:{hash}\n")).map_err(setup)?;
                format!(
                    "auth:\n  htpasswd:\n    realm: convoy-test\n    path: {}\n",
                    path.display()
                )
            }
            None => String::new(),
        };
        let tls = match opts.tls {
            Some(t) => {
                let (cert, key, ca) = (
                    dir.path().join("server.pem"),
                    dir.path().join("server-key.pem"),
                    dir.path().join("client-ca.pem"),
                );
                std::fs::write(&cert, &t.server.cert_pem).map_err(setup)?;
                std::fs::write(&key, &t.server.key_pem).map_err(setup)?;
                std::fs::write(&ca, t.client_ca_pem).map_err(setup)?;
                format!(
                    "  tls:\n    certificate: {}\n    key: {}\n    clientcas:\n      - {}\n",
                    cert.display(),
                    key.display(),
                    ca.display()
                )
            }
            None => String::new(),
        };
        let data = opts
            .data_dir
            .map_or_else(|| dir.path().join("data"), std::path::Path::to_path_buf);
        let config = format!(
            "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {host}\n  secret: convoy-test-secret\n{tls}{auth}",
            data.display()
        );
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).map_err(setup)?;
        let mut cmd = Command::new(bin);
        cmd.arg("serve").arg(&config_path);
        let mut service = Service::spawn("docker-registry", cmd, dir.path().join("docker-registry.log"))?;
        let probe = format!("http://{host}/v2/");
        let mutual = opts.tls.is_some();
        let startup = service
            .wait_ready(Duration::from_secs(30), || async {
                if mutual {
                    // Without a client certificate no request gets an answer: listening is ready.
                    tokio::net::TcpStream::connect(&host).await.is_ok()
                } else {
                    http::request("GET", &probe, &[], None)
                        .await
                        .is_ok_and(|r| r.status == 200 || r.status == 401)
                }
            })
            .await?;
        Ok(Registry {
            service,
            host,
            startup,
            _dir: dir,
        })
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Stops the registry (SIGKILL).
    pub fn kill(&mut self) {
        self.service.kill();
    }
}

/// Git repositories served over smart HTTP on 127.0.0.1 by `git http-backend` (run as a
/// CGI program per request), requiring basic authentication when built with
/// credentials. Repositories live under [`GitServer::root`]; stopped by
/// [`GitServer::stop`] or on drop.
#[derive(Debug)]
pub struct GitServer {
    url: String,
    root: tempfile::TempDir,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl GitServer {
    /// Starts serving; `basic`: the user and password required.
    pub async fn start(basic: Option<(&str, &str)>) -> std::io::Result<Self> {
        Self::start_with(basic, None).await
    }

    /// [`GitServer::start`], over HTTPS when `tls` is given.
    pub async fn start_with(
        basic: Option<(&str, &str)>,
        tls: Option<ServerTls<'_>>,
    ) -> std::io::Result<Self> {
        let root = tempfile::tempdir()?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let acceptor = tls.map(|t| t.acceptor()).transpose()?;
        let scheme = if acceptor.is_some() { "https" } else { "http" };
        let url = format!("{scheme}://{}", listener.local_addr()?);
        let expected = basic.map(|(u, p)| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            )
        });
        let dir = root.path().to_path_buf();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (dir, expected, acceptor) = (dir.clone(), expected.clone(), acceptor.clone());
                tokio::spawn(async move {
                    let _ = match acceptor {
                        Some(a) => match a.accept(stream).await {
                            Ok(tls) => serve_git(tls, &dir, expected.as_deref()).await,
                            Err(e) => Err(e),
                        },
                        None => serve_git(stream, &dir, expected.as_deref()).await,
                    };
                });
            }
        });
        Ok(GitServer {
            url,
            root,
            task: Some(task),
        })
    }

    /// `http://127.0.0.1:PORT`; a repository `NAME` under the root is `URL/NAME`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Where the served repositories live.
    pub fn root(&self) -> &std::path::Path {
        self.root.path()
    }

    /// Stops listening: later connections are refused.
    pub fn stop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

impl Drop for GitServer {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn serve_git<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    stream: S,
    root: &std::path::Path,
    expected: Option<&str>,
) -> std::io::Result<()> {
    use tokio::io::AsyncReadExt;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).await?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("GET").to_string();
    let target = parts.next().unwrap_or("/").to_string();
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).await? == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = header.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let mut body = Vec::new();
    if let Some(n) = headers
        .get("content-length")
        .and_then(|n| n.parse::<usize>().ok())
    {
        body.resize(n, 0);
        reader.read_exact(&mut body).await?;
    } else if headers
        .get("transfer-encoding")
        .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
    {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).await?;
            let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16).unwrap_or(0);
            let mut chunk = vec![0; n + 2];
            reader.read_exact(&mut chunk).await?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    }
    let mut stream = reader.into_inner();
    if expected.is_some() && headers.get("authorization").map(String::as_str) != expected {
        let msg = b"unauthorized\n";
        let head = format!(
            "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"git\"\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            msg.len()
        );
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(msg).await?;
        return stream.shutdown().await;
    }
    let mut cmd = tokio::process::Command::new("git");
    cmd.arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("REQUEST_METHOD", &method)
        .env("PATH_INFO", path)
        .env("QUERY_STRING", query)
        .env("REMOTE_ADDR", "127.0.0.1")
        .env("REMOTE_USER", "test")
        .env("CONTENT_LENGTH", body.len().to_string())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    for (h, var) in [
        ("content-type", "CONTENT_TYPE"),
        ("content-encoding", "HTTP_CONTENT_ENCODING"),
        ("git-protocol", "GIT_PROTOCOL"),
    ] {
        if let Some(v) = headers.get(h) {
            cmd.env(var, v);
        }
    }
    let mut child = cmd.spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(&body).await?;
    }
    let out = child.wait_with_output().await?;
    let split = out
        .stdout
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| out.stdout.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2)));
    let (cgi_head, cgi_body) = match split {
        Some((i, n)) => (
            String::from_utf8_lossy(&out.stdout[..i]).into_owned(),
            &out.stdout[i + n..],
        ),
        None => (String::new(), &out.stdout[..]),
    };
    let mut status = "200 OK".to_string();
    let mut head = String::new();
    for l in cgi_head.lines() {
        match l.split_once(':') {
            Some((k, v)) if k.eq_ignore_ascii_case("status") => status = v.trim().to_string(),
            Some(_) => head.push_str(&format!("{}\r\n", l.trim())),
            None => {}
        }
    }
    let head = format!(
        "HTTP/1.1 {status}\r\n{head}Content-Length: {}\r\nConnection: close\r\n\r\n",
        cgi_body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(cgi_body).await?;
    stream.shutdown().await
}

/// Runs `git` with `args` in `dir` (a test's repository setup); panics with its output
/// when it fails.
pub fn git(dir: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "convoy test")
        .env("GIT_AUTHOR_EMAIL", "test@convoy.invalid")
        .env("GIT_COMMITTER_NAME", "convoy test")
        .env("GIT_COMMITTER_EMAIL", "test@convoy.invalid")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

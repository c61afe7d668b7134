//! HTTP chart repositories (Helm's `index.yaml` protocol, ChartMuseum-compatible).
//!
//! ```text
//! fetch_chart(url, name, range) -> GET url/index.yaml -> highest version matching range
//!   -> cache hit on <cache>/<sha256>.tgz ? read : GET chart url, verify digest, store
//! ```
//!
//! Credentials (basic or bearer) go only to the repository's own scheme, host and port,
//! as Helm does without `--pass-credentials`; they never appear in errors or `Debug`.

use std::fmt;
use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::constraint::Constraint;
use crate::error::{ChartError, Result};
use crate::metadata::parse_lenient_version;

/// Largest index or chart we download.
const MAX_DOWNLOAD: u64 = 64 * 1024 * 1024;

/// Repository credentials.
#[derive(Clone)]
pub enum Auth {
    /// HTTP basic authentication.
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: String,
    },
    /// `Authorization: Bearer <token>`.
    Bearer(String),
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::Basic { username, .. } => write!(f, "Basic({username}, <redacted>)"),
            Auth::Bearer(_) => write!(f, "Bearer(<redacted>)"),
        }
    }
}

/// How to talk to repositories.
#[derive(Debug, Clone, Default)]
pub struct RepoOptions {
    /// Credentials for the repository host.
    pub auth: Option<Auth>,
    /// Where downloaded charts are kept, keyed by SHA-256 digest (none: no cache).
    pub cache_dir: Option<PathBuf>,
    /// Per-request timeout (default 30 s).
    pub timeout: Option<Duration>,
    /// The repository's own CA and a client certificate (mutual TLS), if any.
    pub tls: Option<RepoTls>,
}

/// TLS settings of one repository, as PEM.
#[derive(Clone, Default)]
pub struct RepoTls {
    /// CA certificates: the only roots trusted for the repository (none: the built-in roots).
    pub ca_pem: Option<Vec<u8>>,
    /// A client certificate chain and its private key.
    pub client_pem: Option<(Vec<u8>, Vec<u8>)>,
}

impl fmt::Debug for RepoTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RepoTls")
            .field("ca_pem", &self.ca_pem.is_some())
            .field("client_pem", &self.client_pem.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl RepoTls {
    /// ureq's TLS config; errors say which part is not PEM.
    fn config(&self) -> std::result::Result<ureq::tls::TlsConfig, String> {
        use ureq::tls::{Certificate, ClientCert, PemItem, PrivateKey, RootCerts, TlsConfig};
        let certs = |pem: &[u8], what: &str| {
            let certs: Vec<Certificate<'static>> = ureq::tls::parse_pem(pem)
                .filter_map(|item| match item {
                    Ok(PemItem::Certificate(c)) => Some(Ok(c)),
                    Ok(_) => None,
                    Err(e) => Some(Err(format!("{what}: {e}"))),
                })
                .collect::<std::result::Result<_, _>>()?;
            if certs.is_empty() {
                return Err(format!("{what}: no PEM certificate"));
            }
            Ok(certs)
        };
        let mut b = TlsConfig::builder();
        if let Some(ca) = &self.ca_pem {
            b = b.root_certs(RootCerts::new_with_certs(&certs(ca, "CA certificates")?));
        }
        if let Some((cert, key)) = &self.client_pem {
            let chain = certs(cert, "client certificate")?;
            let key = PrivateKey::from_pem(key).map_err(|e| format!("client key: {e}"))?;
            b = b.client_cert(Some(ClientCert::new_with_certs(&chain, key)));
        }
        Ok(b.build())
    }
}

/// One chart version listed in `index.yaml`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ChartVersion {
    /// Chart name.
    pub name: String,
    /// Chart version.
    #[serde(deserialize_with = "string_or_number")]
    pub version: String,
    /// Download URLs (absolute, or relative to the repository URL).
    #[serde(default)]
    pub urls: Vec<String>,
    /// `sha256` hex of the archive, when the index gives one.
    #[serde(default)]
    pub digest: String,
}

fn string_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<String, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    match v {
        serde_json::Value::String(s) => Ok(s),
        serde_json::Value::Number(n) => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!(
            "expected a version string, found {other}"
        ))),
    }
}

/// A parsed `index.yaml`.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct Index {
    /// Chart name to its versions.
    #[serde(default)]
    pub entries: std::collections::BTreeMap<String, Vec<ChartVersion>>,
}

impl Index {
    /// Parses index.yaml content (`url` names it in errors).
    pub fn parse(src: &str, url: &str) -> Result<Index> {
        let json = crate::values::yaml_to_json(src, url)?;
        serde_json::from_value(json)
            .map_err(|e| repo_err(url, format!("index.yaml is not a chart index: {e}")))
    }

    /// The highest version of `name` within `range` (pre-releases only when the range
    /// names one, as Helm).
    pub fn find(&self, name: &str, range: &str, url: &str) -> Result<&ChartVersion> {
        let versions = self
            .entries
            .get(name)
            .ok_or_else(|| repo_err(url, format!("chart {name:?} not found in the repository index")))?;
        let constraint = Constraint::parse(range).map_err(|e| repo_err(url, e))?;
        let allow_pre = range.contains('-');
        versions
            .iter()
            .filter_map(|v| parse_lenient_version(&v.version).map(|p| (p, v)))
            .filter(|(p, _)| (allow_pre || p.pre.is_empty()) && constraint.matches(p))
            .max_by(|a, b| a.0.cmp(&b.0))
            .map(|(_, v)| v)
            .ok_or_else(|| repo_err(url, format!("no version of chart {name:?} matches {range:?}")))
    }
}

/// A URL safe to print: user info removed.
fn redact(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            if path.is_empty() {
                format!("{scheme}://{host}")
            } else {
                format!("{scheme}://{host}/{path}")
            }
        }
        None => url.to_string(),
    }
}

fn repo_err(url: &str, message: impl Into<String>) -> ChartError {
    ChartError::Repo {
        url: redact(url),
        message: message.into(),
    }
}

fn origin(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split('/').next()?;
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    Some(format!(
        "{}://{}",
        scheme.to_ascii_lowercase(),
        host.to_ascii_lowercase()
    ))
}

/// Resolves a chart URL from the index against the repository URL.
pub fn resolve_url(repo: &str, chart_url: &str) -> String {
    if chart_url.contains("://") {
        return chart_url.to_string();
    }
    let base = repo.trim_end_matches('/');
    match chart_url.strip_prefix('/') {
        Some(abs) => match origin(repo) {
            Some(o) => format!("{o}/{abs}"),
            None => format!("{base}/{abs}"),
        },
        None => format!("{base}/{chart_url}"),
    }
}

fn get(url: &str, repo: &str, opts: &RepoOptions) -> Result<Vec<u8>> {
    let mut config = ureq::Agent::config_builder()
        .timeout_global(Some(opts.timeout.unwrap_or(Duration::from_secs(30))))
        .http_status_as_error(false);
    if let Some(tls) = &opts.tls {
        config = config.tls_config(tls.config().map_err(|e| repo_err(repo, e))?);
    }
    let agent: ureq::Agent = config.build().into();
    let mut req = agent.get(url);
    if origin(url).is_some() && origin(url) == origin(repo) {
        req = match &opts.auth {
            Some(Auth::Basic { username, password }) => {
                use base64::Engine as _;
                let token =
                    base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
                req.header("Authorization", &format!("Basic {token}"))
            }
            Some(Auth::Bearer(t)) => req.header("Authorization", &format!("Bearer {t}")),
            None => req,
        };
    }
    let resp = req
        .call()
        .map_err(|e| repo_err(url, format!("request failed: {e}")))?;
    let status = resp.status().as_u16();
    if status == 401 || status == 403 {
        return Err(repo_err(
            url,
            format!("HTTP {status}: authentication failed (check the username/password or token)"),
        ));
    }
    if !(200..300).contains(&status) {
        return Err(repo_err(url, format!("HTTP {status}")));
    }
    let mut body = Vec::new();
    resp.into_body()
        .into_reader()
        .take(MAX_DOWNLOAD + 1)
        .read_to_end(&mut body)
        .map_err(|e| repo_err(url, format!("reading response: {e}")))?;
    if body.len() as u64 > MAX_DOWNLOAD {
        return Err(repo_err(
            url,
            format!("response larger than {MAX_DOWNLOAD} bytes"),
        ));
    }
    Ok(body)
}

/// Downloads and parses `<repo>/index.yaml`.
pub fn fetch_index(repo: &str, opts: &RepoOptions) -> Result<Index> {
    let url = format!("{}/index.yaml", repo.trim_end_matches('/'));
    let body = get(&url, repo, opts)?;
    Index::parse(&String::from_utf8_lossy(&body), &url)
}

fn sha256_hex(data: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, data)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The packaged chart `name` in the highest version matching `range` from repository
/// `repo`, from the cache when its digest is there.
pub fn fetch_chart(repo: &str, name: &str, range: &str, opts: &RepoOptions) -> Result<Vec<u8>> {
    let index = fetch_index(repo, opts)?;
    let entry = index.find(name, range, repo)?;
    download(repo, entry, opts)
}

/// The archive `entry` of repository `repo`'s index names, its digest verified (from the
/// cache when its digest is there).
pub fn download(repo: &str, entry: &ChartVersion, opts: &RepoOptions) -> Result<Vec<u8>> {
    let name = &entry.name;
    let digest = entry.digest.trim().to_ascii_lowercase();
    if let (Some(dir), false) = (&opts.cache_dir, digest.is_empty()) {
        let cached = dir.join(format!("{digest}.tgz"));
        if let Ok(bytes) = std::fs::read(&cached)
            && sha256_hex(&bytes) == digest
        {
            return Ok(bytes);
        }
    }
    let url = entry.urls.first().ok_or_else(|| {
        repo_err(
            repo,
            format!("chart {name} {} has no download URL", entry.version),
        )
    })?;
    let url = resolve_url(repo, url);
    let bytes = get(&url, repo, opts)?;
    let actual = sha256_hex(&bytes);
    if !digest.is_empty() && actual != digest {
        return Err(repo_err(
            &url,
            format!("digest mismatch: index says sha256 {digest}, downloaded {actual}"),
        ));
    }
    if let Some(dir) = &opts.cache_dir {
        std::fs::create_dir_all(dir).map_err(|e| ChartError::io(dir, e))?;
        let path = dir.join(format!("{actual}.tgz"));
        let tmp = dir.join(format!(".{actual}.tgz.partial"));
        std::fs::write(&tmp, &bytes).map_err(|e| ChartError::io(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| ChartError::io(&path, e))?;
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests;

//! Charts the coordinator fetches itself: `spec.chart.repo` (an HTTP chart repository's
//! `index.yaml`) and `spec.chart.oci` (Helm's OCI layout), with credentials configured
//! here per source (`chart_sources` in the daemon config), so a submitter needs no
//! access to the source and never sees its credentials.
//!
//! A fetch happens once, at submit (or diff): the archive is then kept with the
//! revision's inputs in the store, with its SHA-256, so a re-render after a restart or a
//! rollback never asks the source again and renders the same bytes even if a tag moved
//! or the source is down.
//!
//! The crate is shared: convoyd fetches with its configured credentials, the CLI
//! (`convoy push`, `template`, `lint`, `render`) with its user's ([`ChartSources::direct`]).
//!
//! Credentials are read from their files at each fetch (so a rotated file is picked up)
//! and never appear in logs, errors, the store or API responses: errors name the source
//! by its URL (user info removed) and the config entry, never a secret.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject as _;
use serde::Deserialize;

/// Helm's OCI media types.
pub const HELM_CONFIG_MEDIA_TYPE: &str = "application/vnd.cncf.helm.config.v1+json";
pub const HELM_CHART_LAYER_MEDIA_TYPE: &str = "application/vnd.cncf.helm.chart.content.v1.tar+gzip";
/// Helm's provenance layer: accepted (Helm may push it) but not used.
const HELM_PROV_MEDIA_TYPE: &str = "application/vnd.cncf.helm.chart.provenance.v1.prov";

/// How long one fetch may take (index, archive, or an OCI pull).
const FETCH_TIMEOUT: Duration = Duration::from_secs(60);

/// One `chart_sources` entry: how the coordinator reaches the sources whose URL starts
/// with `url`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChartSourceConfig {
    /// A URL prefix: `https://charts.example.com/` (chart repositories) or
    /// `oci://registry.example.com/team` (OCI registries). The longest matching prefix
    /// (at a `/` boundary) applies.
    pub url: String,
    /// Basic authentication: the user name, with `password_file`.
    #[serde(default)]
    pub username: Option<String>,
    /// Basic authentication: a file holding the password (one trailing newline ignored).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Basic authentication: the password held in Vault instead of `password_file`,
    /// read through the coordinator's `vault:` session at fetch time (cached briefly).
    #[serde(default)]
    pub password_from_vault: Option<VaultSecretRef>,
    /// Bearer authentication: a file holding the token. Not with `username`.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Bearer authentication: the token held in Vault instead of `token_file`.
    #[serde(default)]
    pub token_from_vault: Option<VaultSecretRef>,
    /// A client certificate (PEM, chain allowed) presented to the source over TLS,
    /// with `client_key_file`: for sources that require mutual TLS.
    #[serde(default)]
    pub client_cert_file: Option<PathBuf>,
    /// The private key (PEM) of `client_cert_file`.
    #[serde(default)]
    pub client_key_file: Option<PathBuf>,
    /// The CA certificates (PEM) that verify the source's certificate, instead of the
    /// built-in roots: for a source with a private CA.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// `oci://` only: talk plain HTTP to the registry (a registry on loopback or
    /// behind a TLS-terminating proxy), as Helm's `--plain-http`.
    #[serde(default)]
    pub plain_http: bool,
    /// The environments (registry `env` of a release's contexts) whose releases may
    /// use this source; absent: every environment.
    #[serde(default)]
    pub environments: Option<Vec<String>>,
}

impl std::fmt::Debug for ChartSourceConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChartSourceConfig")
            .field("url", &redact(&self.url))
            .field("username", &self.username)
            .field("password_file", &self.password_file)
            .field("password_from_vault", &self.password_from_vault)
            .field("token_file", &self.token_file)
            .field("token_from_vault", &self.token_from_vault)
            .field("client_cert_file", &self.client_cert_file)
            .field("client_key_file", &self.client_key_file)
            .field("ca_file", &self.ca_file)
            .field("plain_http", &self.plain_http)
            .field("environments", &self.environments)
            .finish()
    }
}

/// Checks the `chart_sources` entries: `(key, reason)` for the first bad one.
pub fn validate(sources: &[ChartSourceConfig]) -> Result<(), (String, String)> {
    for (i, s) in sources.iter().enumerate() {
        let key = |k: &str| format!("chart_sources[{i}].{k}");
        let oci = s.url.starts_with("oci://");
        if s.url
            .split_once("://")
            .is_some_and(|(_, rest)| rest.split('/').next().is_some_and(|host| host.contains('@')))
        {
            return Err((
                key("url"),
                "must not carry credentials; use `username` + `password_file` or `token_file`".into(),
            ));
        }
        let password = s.password_file.is_some() || s.password_from_vault.is_some();
        let token = s.token_file.is_some() || s.token_from_vault.is_some();
        if s.password_file.is_some() && s.password_from_vault.is_some() {
            return Err((
                key("password_from_vault"),
                "give the password either in `password_file` or in `password_from_vault`, not both".into(),
            ));
        }
        if s.token_file.is_some() && s.token_from_vault.is_some() {
            return Err((
                key("token_from_vault"),
                "give the token either in `token_file` or in `token_from_vault`, not both".into(),
            ));
        }
        if s.username.is_some() != password {
            return Err((
                key(if s.username.is_some() {
                    "password_file"
                } else {
                    "username"
                }),
                "basic authentication needs both `username` and `password_file` (or `password_from_vault`)"
                    .into(),
            ));
        }
        if token && s.username.is_some() {
            return Err((
                key(if s.token_file.is_some() {
                    "token_file"
                } else {
                    "token_from_vault"
                }),
                "give either a token (bearer) or `username` + a password (basic), not both".into(),
            ));
        }
        for (k, r) in [
            ("password_from_vault", &s.password_from_vault),
            ("token_from_vault", &s.token_from_vault),
        ] {
            if let Some(r) = r {
                r.validate().map_err(|reason| (key(k), reason))?;
            }
        }
        if s.client_cert_file.is_some() != s.client_key_file.is_some() {
            return Err((
                key(if s.client_cert_file.is_some() {
                    "client_key_file"
                } else {
                    "client_cert_file"
                }),
                "a client certificate needs both `client_cert_file` and `client_key_file`".into(),
            ));
        }
        let tls = s.url.starts_with("https://") || (oci && !s.plain_http);
        if !tls {
            for (k, set) in [
                ("ca_file", s.ca_file.is_some()),
                ("client_cert_file", s.client_cert_file.is_some()),
            ] {
                if set {
                    return Err((
                        key(k),
                        "only for sources reached over TLS (https:// or oci:// without `plain_http`)".into(),
                    ));
                }
            }
        }
        let git = s.url.starts_with("git://");
        if !(oci || git || s.url.starts_with("https://") || s.url.starts_with("http://")) {
            return Err((
                key("url"),
                format!(
                    "expected a URL prefix starting with https://, http://, git:// or oci://, got {:?}",
                    redact(&s.url)
                ),
            ));
        }
        if s.environments
            .as_ref()
            .is_some_and(|e| e.is_empty() || e.iter().any(|x| x.trim().is_empty()))
        {
            return Err((
                key("environments"),
                "expected a non-empty list of environment names (leave it out for every environment)".into(),
            ));
        }
        if s.plain_http && !oci {
            return Err((
                key("plain_http"),
                "only for `oci://` sources; write the repository URL as http:// instead".into(),
            ));
        }
    }
    Ok(())
}

/// A chart the coordinator fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedChart {
    /// The packaged chart, as the source served it.
    pub archive: Vec<u8>,
    /// What was fetched, for the revision record: the source URL (no user info), the
    /// chart and the resolved version or manifest digest. Never a credential.
    pub origin: String,
}

/// What a submit's release needs from elsewhere, fetched by the coordinator.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fetched {
    /// The chart, for a `repo`, `oci` or `git` chart.
    pub chart: Option<FetchedChart>,
    /// `spec.valuesFrom`, in order: `(origin, text)`.
    pub values_from: Vec<(String, String)>,
}

/// The credentials of one source, read from their files (or given directly to
/// [`ChartSources::direct`]).
#[derive(Clone)]
pub enum Credentials {
    Anonymous,
    Basic(String, String),
    Bearer(String),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Anonymous => write!(f, "Anonymous"),
            Credentials::Basic(u, _) => write!(f, "Basic({u}, <redacted>)"),
            Credentials::Bearer(_) => write!(f, "Bearer(<redacted>)"),
        }
    }
}

/// The configured chart sources.
#[derive(Debug, Clone, Default)]
pub struct ChartSources {
    sources: Vec<ChartSourceConfig>,
    /// For the CLI's own fetches: credentials and plain HTTP for any source.
    direct: Option<(Credentials, bool)>,
    /// The coordinator's Vault, for `password_from_vault` / `token_from_vault`.
    vault: Option<Arc<vault::VaultCredentials>>,
}

/// The `chart_sources[i].KEY` of the first entry naming a Vault secret, if any: such
/// an entry needs the coordinator's `vault:` section.
pub fn first_vault_reference(sources: &[ChartSourceConfig]) -> Option<String> {
    sources.iter().enumerate().find_map(|(i, s)| {
        if s.password_from_vault.is_some() {
            Some(format!("chart_sources[{i}].password_from_vault"))
        } else if s.token_from_vault.is_some() {
            Some(format!("chart_sources[{i}].token_from_vault"))
        } else {
            None
        }
    })
}

impl ChartSources {
    pub fn new(sources: Vec<ChartSourceConfig>) -> Self {
        ChartSources {
            sources,
            direct: None,
            vault: None,
        }
    }

    /// Reads `password_from_vault` / `token_from_vault` through `reader` (convoyd's
    /// Vault session).
    pub fn with_vault(mut self, reader: Arc<dyn VaultReader>) -> Self {
        self.vault = Some(Arc::new(vault::VaultCredentials::new(reader)));
        self
    }

    /// One set of credentials for whatever is fetched (the CLI's `lint`, `render`,
    /// `push`, which take them from the environment); `plain_http` for OCI.
    pub fn direct(credentials: Credentials, plain_http: bool) -> Self {
        ChartSources {
            sources: Vec::new(),
            direct: Some((credentials, plain_http)),
            vault: None,
        }
    }

    /// The entry for `url`: the longest `url` prefix ending at a `/` boundary.
    fn entry(&self, url: &str) -> Option<(usize, &ChartSourceConfig)> {
        self.sources
            .iter()
            .enumerate()
            .filter(|(_, s)| {
                let prefix = s.url.trim_end_matches('/');
                url.strip_prefix(prefix)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
            })
            .max_by_key(|(_, s)| s.url.trim_end_matches('/').len())
    }

    /// The credentials for `url`: from the files of its entry (read at each fetch, so
    /// a rotated file is picked up) or from Vault (cached for `cache_seconds`).
    async fn credentials(&self, url: &str) -> Result<Credentials, String> {
        if let Some((c, _)) = &self.direct {
            return Ok(c.clone());
        }
        let Some((i, s)) = self.entry(url) else {
            return Ok(Credentials::Anonymous);
        };
        if let Some(c) = file_credentials(i, s)? {
            return Ok(c);
        }
        Ok(match (&s.username, &s.password_from_vault, &s.token_from_vault) {
            (Some(u), Some(r), _) => {
                Credentials::Basic(u.clone(), self.vault_secret(i, "password_from_vault", r).await?)
            }
            (_, _, Some(r)) => Credentials::Bearer(self.vault_secret(i, "token_from_vault", r).await?),
            _ => Credentials::Anonymous,
        })
    }

    /// The value `r` (entry `i`'s `key`) names; errors name the entry, the Vault path
    /// and key, never a value.
    async fn vault_secret(&self, i: usize, key: &str, r: &VaultSecretRef) -> Result<String, String> {
        let at = format!(
            "the coordinator's chart_sources[{i}].{key} (Vault path {}, key {:?})",
            r.vault_path, r.vault_key
        );
        match &self.vault {
            None => Err(format!("{at}: the coordinator has no `vault:` section")),
            Some(v) => v.get(r).await.map_err(|e| format!("{at}: {e}")),
        }
    }

    /// The TLS material of `url`'s entry (`ca_file`, `client_cert_file`), read now.
    fn tls(&self, url: &str) -> Result<SourceTls, String> {
        match self.entry(url) {
            Some((i, s)) if self.direct.is_none() => SourceTls::load(i, s),
            _ => Ok(SourceTls::default()),
        }
    }

    /// Reads every configured credential and certificate file once: an unreadable or
    /// malformed one is named (`chart_sources[i].password_file PATH: ...`,
    /// `chart_sources[i].client_cert_file PATH: ...`) so convoyd refuses to start
    /// rather than failing submits later. The contents are dropped. Vault is not asked
    /// (it may be down while the coordinator starts).
    pub fn check_credential_files(&self) -> Result<(), String> {
        for (i, s) in self.sources.iter().enumerate() {
            file_credentials(i, s)?;
            SourceTls::load(i, s)?;
        }
        Ok(())
    }

    /// Whether a release of `environment` may fetch from `url`: only sources listed in
    /// `chart_sources` (so a release file cannot make the coordinator reach anything
    /// else), and only from entries open to its environment. [`ChartSources::direct`]
    /// (the CLI's own fetches) allows any.
    pub fn check_allowed(&self, url: &str, environment: &str) -> Result<(), String> {
        if self.direct.is_some() {
            return Ok(());
        }
        match self.entry(url) {
            None => Err(format!(
                "{} is not among the coordinator's chart_sources (ask its operators to add it)",
                redact(url)
            )),
            Some((i, s)) => match &s.environments {
                Some(envs) if !envs.iter().any(|e| e == environment) => Err(format!(
                    "{} (chart_sources[{i}]) is not open to environment {environment:?} (only {})",
                    redact(url),
                    envs.join(", ")
                )),
                _ => Ok(()),
            },
        }
    }

    /// Fetches `chart` when it lives in a repository or registry; `None` for a `path`
    /// chart (the submitter sends it). Errors name the source and what went wrong.
    /// `environment`: the release's, checked with [`ChartSources::check_allowed`].
    pub async fn fetch(
        &self,
        chart: &convoy_release::ChartRef,
        environment: &str,
    ) -> Result<Option<FetchedChart>, String> {
        use convoy_release::ChartRef;
        let url = match chart {
            ChartRef::Path { .. } => return Ok(None),
            ChartRef::Repo { repo, .. } => repo,
            ChartRef::Oci { oci, .. } => oci,
            ChartRef::Git { git, .. } => git,
        };
        self.check_allowed(url, environment)?;
        match chart {
            ChartRef::Path { .. } => Ok(None),
            ChartRef::Repo {
                repo, name, version, ..
            } => self.fetch_repo(repo, name, version).await.map(Some),
            ChartRef::Oci {
                oci, version, digest, ..
            } => self
                .fetch_oci(oci, version.as_deref(), digest.as_deref())
                .await
                .map(Some),
            ChartRef::Git {
                git, reference, path, ..
            } => self.fetch_git(git, reference, path).await.map(Some),
        }
    }

    /// `archive` with the Chart.yaml dependencies it does not vendor in `charts/`
    /// fetched from their `repository` (a chart repository or `oci://` registry, allowed
    /// as charts are), at the version `Chart.lock` pins, else the highest matching their
    /// range; `None` when nothing was missing. Also returns what was fetched
    /// (`NAME VERSION from ORIGIN`, for the revision record).
    pub async fn complete_dependencies(
        &self,
        archive: &[u8],
        environment: &str,
    ) -> Result<Option<(Vec<u8>, Vec<String>)>, String> {
        // An archive that does not load is reported by the render, as any other.
        let Ok(mut files) = convoy_chart::unpack_archive(archive) else {
            return Ok(None);
        };
        let Ok(chart) = convoy_chart::Chart::from_files(files.clone(), "archive") else {
            return Ok(None);
        };
        let missing: Vec<convoy_chart::metadata::Dependency> = chart
            .metadata()
            .dependencies
            .iter()
            .filter(|d| !chart.dependencies().iter().any(|c| c.name() == d.name))
            .cloned()
            .collect();
        if missing.is_empty() {
            return Ok(None);
        }
        let lock: Vec<(String, String, String)> = files
            .iter()
            .find(|f| f.name == "Chart.lock" || f.name == "requirements.lock")
            .map(|f| {
                let text = String::from_utf8_lossy(&f.data);
                convoy_chart::values::yaml_to_json(&text, &format!("{}/{}", chart.name(), f.name))
                    .map_err(|e| e.to_string())
            })
            .transpose()?
            .and_then(|doc| doc.get("dependencies").and_then(|d| d.as_array()).cloned())
            .unwrap_or_default()
            .iter()
            .map(|d| {
                let s = |k: &str| d.get(k).and_then(|v| v.as_str()).unwrap_or_default().to_string();
                (s("name"), s("repository"), s("version"))
            })
            .collect();
        let mut fetched = Vec::new();
        for dep in missing {
            let at = format!("{} dependency {}", chart.name(), dep.name);
            let version = lock
                .iter()
                .find(|(n, r, _)| *n == dep.name && *r == dep.repository)
                .map(|(_, _, v)| v.clone())
                .unwrap_or_else(|| dep.version.clone());
            let repo = dep.repository.trim_end_matches('/');
            let got = if repo.starts_with("oci://") {
                let oci = format!("{repo}/{}", dep.name);
                self.check_allowed(&oci, environment).map_err(|e| format!("{at}: {e}"))?;
                self.fetch_oci(&oci, Some(&version), None).await
            } else if repo.starts_with("https://") || repo.starts_with("http://") {
                self.check_allowed(repo, environment).map_err(|e| format!("{at}: {e}"))?;
                self.fetch_repo(repo, &dep.name, &version).await
            } else {
                return Err(format!(
                    "{at}: not in charts/ and its repository {:?} cannot be fetched: vendor it (`helm dependency build`) or name an https:// or oci:// repository",
                    redact(&dep.repository)
                ));
            }
            .map_err(|e| format!("{at}: {e}"))?;
            let sub = convoy_chart::Chart::load_archive(&got.archive).map_err(|e| format!("{at}: {e}"))?;
            files.push(convoy_chart::ChartFile {
                name: format!("charts/{}-{}.tgz", sub.name(), sub.version()),
                data: got.archive,
            });
            fetched.push(format!("{} {} from {}", sub.name(), sub.version(), got.origin));
        }
        let archive = convoy_chart::package_files(&files, chart.name()).map_err(|e| e.to_string())?;
        Ok(Some((archive, fetched)))
    }

    /// gix's form of the credentials for `url`.
    async fn git_credentials(&self, url: &str) -> Result<Option<gix::sec::identity::Credentials>, String> {
        Ok(match self.credentials(url).await? {
            Credentials::Anonymous => None,
            Credentials::Basic(username, password) => {
                Some(gix::sec::identity::Credentials::UsernamePassword {
                    username,
                    password,
                    oauth_refresh_token: None,
                })
            }
            Credentials::Bearer(credential) => Some(gix::sec::identity::Credentials::Encoded {
                authtype: "Bearer".into(),
                credential,
                oauth_refresh_token: None,
            }),
        })
    }

    /// Fetches one `spec.valuesFrom` file: `(origin, text)`, `origin` being
    /// `URL REF@COMMIT PATH`. Allowed as charts are ([`ChartSources::check_allowed`]).
    pub async fn fetch_values(
        &self,
        from: &convoy_release::ValuesFrom,
        environment: &str,
    ) -> Result<(String, String), String> {
        self.check_allowed(&from.git, environment)?;
        let shown = format!("git repository {}", redact(&from.git));
        let credentials = self
            .git_credentials(&from.git)
            .await
            .map_err(|e| format!("{shown}: {e}"))?;
        let tls = self.tls(&from.git).map_err(|e| format!("{shown}: {e}"))?;
        ensure_tls_provider();
        let (u, r, p) = (from.git.clone(), from.reference.clone(), from.path.clone());
        let (data, commit) = tokio::time::timeout(
            FETCH_TIMEOUT,
            tokio::task::spawn_blocking(move || crate::git::fetch_file(&u, &r, &p, credentials, &tls)),
        )
        .await
        .map_err(|_| format!("{shown}: fetching {} timed out", from.reference))?
        .map_err(|e| format!("{shown}: the fetch failed: {e}"))?
        .map_err(|e| git_error(&shown, &from.git, e))?;
        let origin = format!("{} {}@{commit} {}", redact(&from.git), from.reference, from.path);
        let text = String::from_utf8(data).map_err(|_| format!("{origin}: not UTF-8 text"))?;
        Ok((origin, text))
    }

    async fn fetch_git(&self, url: &str, reference: &str, dir: &str) -> Result<FetchedChart, String> {
        let shown = format!("git repository {}", redact(url));
        let credentials = self
            .git_credentials(url)
            .await
            .map_err(|e| format!("{shown}: {e}"))?;
        let tls = self.tls(url).map_err(|e| format!("{shown}: {e}"))?;
        ensure_tls_provider();
        let (u, r, d) = (url.to_string(), reference.to_string(), dir.to_string());
        let (archive, commit) = tokio::time::timeout(
            FETCH_TIMEOUT,
            tokio::task::spawn_blocking(move || crate::git::fetch(&u, &r, &d, credentials, &tls)),
        )
        .await
        .map_err(|_| format!("{shown}: fetching {reference} timed out"))?
        .map_err(|e| format!("{shown}: the fetch failed: {e}"))?
        .map_err(|e| git_error(&shown, url, e))?;
        Ok(FetchedChart {
            archive,
            origin: format!("{} {reference}@{commit} {dir}", redact(url)),
        })
    }

    async fn fetch_repo(&self, repo: &str, name: &str, range: &str) -> Result<FetchedChart, String> {
        use convoy_chart::repo::{Auth, RepoOptions};
        let shown = format!("chart repository {}", redact(repo));
        let auth = match self
            .credentials(repo)
            .await
            .map_err(|e| format!("{shown}: {e}"))?
        {
            Credentials::Anonymous => None,
            Credentials::Basic(username, password) => Some(Auth::Basic { username, password }),
            Credentials::Bearer(t) => Some(Auth::Bearer(t)),
        };
        let tls = self.tls(repo).map_err(|e| format!("{shown}: {e}"))?;
        let opts = RepoOptions {
            auth,
            cache_dir: None,
            timeout: Some(FETCH_TIMEOUT),
            tls: tls.repo_tls(),
        };
        let (r, n, v) = (repo.to_string(), name.to_string(), range.to_string());
        let found = tokio::task::spawn_blocking(move || {
            let index = convoy_chart::repo::fetch_index(&r, &opts)?;
            let entry = index.find(&n, &v, &r)?;
            let bytes = convoy_chart::repo::download(&r, entry, &opts)?;
            Ok::<_, convoy_chart::ChartError>((entry.version.clone(), bytes))
        })
        .await
        .map_err(|e| format!("{shown}: the fetch failed: {e}"))?;
        let (version, archive) = found.map_err(|e| {
            let e = e.to_string();
            let e = tls::describe_tls_failure(&e).unwrap_or(e);
            let e = format!("{shown}: chart {name} {range}: {e}");
            if repo.starts_with("https://") {
                tls::hint_dropped_connection(e)
            } else {
                e
            }
        })?;
        Ok(FetchedChart {
            archive,
            origin: format!("{} {name} {version}", redact(repo)),
        })
    }

    async fn fetch_oci(
        &self,
        oci: &str,
        version: Option<&str>,
        digest: Option<&str>,
    ) -> Result<FetchedChart, String> {
        let plain = match &self.direct {
            Some((_, plain)) => *plain,
            None => self.entry(oci).is_some_and(|(_, s)| s.plain_http),
        };
        let pulled = self.pull_oci(oci, version, digest).await;
        if plain {
            pulled
        } else {
            pulled.map_err(tls::hint_dropped_connection)
        }
    }

    async fn pull_oci(
        &self,
        oci: &str,
        version: Option<&str>,
        digest: Option<&str>,
    ) -> Result<FetchedChart, String> {
        let shown = format!("OCI registry {}", redact(oci));
        let repo = oci.trim_start_matches("oci://").trim_end_matches('/');
        let auth = self.oci_auth(oci).await.map_err(|e| format!("{shown}: {e}"))?;
        let tls = self.tls(oci).map_err(|e| format!("{shown}: {e}"))?;
        if tls.identity.is_some() {
            // oci-client cannot present a client certificate: convoy's own pull.
            let pulled = oci_tls::pull(oci, version, digest, &auth, &tls, &shown).await?;
            return helm_chart(oci, &shown, pulled);
        }
        let client = self.oci_client(oci).map_err(|e| format!("{shown}: {e}"))?;
        let (reference, tag) = match (digest, version) {
            (Some(d), _) => (format!("{repo}@{d}"), None),
            (None, Some(v)) => {
                let t = resolve_tag(&client, repo, v, &auth, &shown).await?;
                (format!("{repo}:{t}"), Some(t))
            }
            (None, None) => return Err(format!("{shown}: neither a version nor a digest")),
        };
        let parsed: oci_client::Reference = reference
            .parse()
            .map_err(|e| format!("{shown}: {reference:?} is not an OCI reference: {e}"))?;
        let pulled = tokio::time::timeout(
            FETCH_TIMEOUT,
            client.pull(
                &parsed,
                &auth,
                vec![HELM_CHART_LAYER_MEDIA_TYPE, HELM_PROV_MEDIA_TYPE],
            ),
        )
        .await
        .map_err(|_| format!("{shown}: pulling {reference} timed out"))?
        .map_err(|e| format!("{shown}: pulling {reference}: {}", oci_error(&e)))?;
        helm_chart(
            oci,
            &shown,
            oci_tls::Pulled {
                reference,
                tag,
                config_media_type: pulled.config.media_type,
                layers: pulled
                    .layers
                    .into_iter()
                    .map(|l| (l.media_type, l.data.to_vec()))
                    .collect(),
                digest: pulled.digest.unwrap_or_default(),
            },
        )
    }

    pub async fn oci_auth(&self, url: &str) -> Result<oci_client::secrets::RegistryAuth, String> {
        use oci_client::secrets::RegistryAuth;
        Ok(match self.credentials(url).await? {
            Credentials::Anonymous => RegistryAuth::Anonymous,
            Credentials::Basic(u, p) => RegistryAuth::Basic(u, p),
            Credentials::Bearer(t) => RegistryAuth::Bearer(t),
        })
    }

    /// An OCI client for `url`: plain HTTP, and its entry's `ca_file`, as configured.
    pub fn oci_client(&self, url: &str) -> Result<oci_client::Client, String> {
        let plain = match &self.direct {
            Some((_, plain)) => *plain,
            None => self.entry(url).is_some_and(|(_, s)| s.plain_http),
        };
        let ca = self.tls(url)?.ca;
        oci_client_with(plain, ca.as_deref())
    }
}

/// The Helm chart in what a registry answered: the config must be Helm's, with exactly
/// one chart layer.
fn helm_chart(oci: &str, shown: &str, pulled: oci_tls::Pulled) -> Result<FetchedChart, String> {
    let reference = &pulled.reference;
    if pulled.config_media_type != HELM_CONFIG_MEDIA_TYPE {
        return Err(format!(
            "{shown}: {reference} is not a Helm chart: its config is {:?}, expected {HELM_CONFIG_MEDIA_TYPE}",
            pulled.config_media_type
        ));
    }
    let mut charts = pulled
        .layers
        .into_iter()
        .filter(|(media_type, _)| media_type == HELM_CHART_LAYER_MEDIA_TYPE);
    let (Some((_, archive)), None) = (charts.next(), charts.next()) else {
        return Err(format!(
            "{shown}: {reference}: expected exactly one {HELM_CHART_LAYER_MEDIA_TYPE} layer"
        ));
    };
    let manifest = &pulled.digest;
    Ok(FetchedChart {
        archive,
        origin: match pulled.tag {
            Some(t) => format!("{}:{t}@{manifest}", redact(oci)),
            None => format!("{}@{manifest}", redact(oci)),
        },
    })
}

/// A git fetch's error, with the hint for an HTTPS source that dropped the connection.
fn git_error(shown: &str, url: &str, e: String) -> String {
    let e = format!("{shown}: {e}");
    if url.starts_with("https://") {
        tls::hint_dropped_connection(e)
    } else {
        e
    }
}

/// Entry `i`'s credentials when they come from files (`None`: from Vault, or none).
fn file_credentials(i: usize, s: &ChartSourceConfig) -> Result<Option<Credentials>, String> {
    let read = |key: &str, path: &Path| {
        std::fs::read_to_string(path)
            .map(|t| t.trim_end_matches(['\n', '\r']).to_string())
            .map_err(|e| {
                format!(
                    "the coordinator's chart_sources[{i}].{key} {}: cannot read it: {e}",
                    path.display()
                )
            })
    };
    Ok(match (&s.username, &s.password_file, &s.token_file) {
        (Some(u), Some(p), _) => Some(Credentials::Basic(u.clone(), read("password_file", p)?)),
        (_, _, Some(t)) => Some(Credentials::Bearer(read("token_file", t)?)),
        _ => None,
    })
}

mod git;
mod oci_tls;
mod tls;
mod vault;

use tls::SourceTls;
pub use vault::{ReadFuture, VaultReader, VaultSecretRef};

/// reqwest (under oci-client and gix) is built without a TLS provider of its own:
/// ring, as everywhere in convoy, installed process-wide (an error only means one is
/// installed already).
fn ensure_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// An OCI client for Helm charts, plain HTTP when `plain_http`.
pub fn oci_client_for(plain_http: bool) -> Result<oci_client::Client, String> {
    oci_client_with(plain_http, None)
}

/// An OCI client for Helm charts: plain HTTP when `plain_http`, trusting only the
/// certificates of `ca_pem` when given.
fn oci_client_with(plain_http: bool, ca_pem: Option<&[u8]>) -> Result<oci_client::Client, String> {
    use oci_client::client::{Certificate, CertificateEncoding};
    ensure_tls_provider();
    let tls_certs_only = match ca_pem {
        Some(pem) => rustls::pki_types::CertificateDer::pem_slice_iter(pem)
            .map(|c| {
                c.map(|der| Certificate {
                    encoding: CertificateEncoding::Der,
                    data: der.to_vec(),
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("ca_file: {e}"))?,
        None => Vec::new(),
    };
    let config = oci_client::client::ClientConfig {
        tls_certs_only,
        protocol: if plain_http {
            oci_client::client::ClientProtocol::Http
        } else {
            oci_client::client::ClientProtocol::Https
        },
        connect_timeout: Some(Duration::from_secs(10)),
        read_timeout: Some(Duration::from_secs(30)),
        ..Default::default()
    };
    oci_client::Client::try_from(config).map_err(|e| format!("cannot build an HTTP client: {e}"))
}

/// A chart pushed to a registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// `oci://REGISTRY/PATH/NAME:TAG`.
    pub reference: String,
    /// The manifest's `sha256:<hex>`.
    pub digest: String,
}

/// Pushes a packaged chart as `helm push` does: to `dest/NAME:VERSION` (`dest` is
/// `oci://REGISTRY/PATH`, the chart's name and version from its Chart.yaml; `+` in the
/// version written `_`), with Helm's config and layer media types.
pub async fn push_chart(archive: &[u8], dest: &str, sources: &ChartSources) -> Result<Pushed, String> {
    use oci_client::client::{Config, ImageLayer};
    let chart =
        convoy_chart::Chart::load_archive(archive).map_err(|e| format!("not a chart archive: {e}"))?;
    let Some(base) = dest.strip_prefix("oci://") else {
        return Err(format!(
            "{:?}: expected a destination `oci://REGISTRY/PATH`",
            redact(dest)
        ));
    };
    let base = base.trim_end_matches('/');
    let tag = chart.version().replace('+', "_");
    let url = format!("oci://{base}/{}", chart.name());
    let shown = format!("OCI registry {}", redact(&url));
    let reference: oci_client::Reference = format!("{base}/{}:{tag}", chart.name())
        .parse()
        .map_err(|e| format!("{shown}: not an OCI reference: {e}"))?;
    let auth = sources
        .oci_auth(&url)
        .await
        .map_err(|e| format!("{shown}: {e}"))?;
    let client = sources.oci_client(&url).map_err(|e| format!("{shown}: {e}"))?;
    let m = chart.metadata();
    let mut config = serde_json::Map::new();
    let mut put = |k: &str, v: serde_json::Value| {
        let empty = v.is_null()
            || v.as_str().is_some_and(str::is_empty)
            || v.as_array().is_some_and(Vec::is_empty)
            || v.as_object().is_some_and(serde_json::Map::is_empty)
            || v == serde_json::Value::Bool(false);
        if !empty {
            config.insert(k.to_string(), v);
        }
    };
    put("name", m.name.clone().into());
    put("home", m.home.clone().into());
    put("sources", m.sources.clone().into());
    put("version", m.version.clone().into());
    put("description", m.description.clone().into());
    put("keywords", m.keywords.clone().into());
    put("icon", m.icon.clone().into());
    put("apiVersion", m.api_version.clone().into());
    put("appVersion", m.app_version.clone().into());
    put("deprecated", m.deprecated.into());
    put(
        "annotations",
        serde_json::to_value(&m.annotations).unwrap_or(serde_json::Value::Null),
    );
    let config = Config::new(
        serde_json::to_vec(&config).map_err(|e| format!("{shown}: {e}"))?,
        HELM_CONFIG_MEDIA_TYPE.to_string(),
        None,
    );
    let layer = ImageLayer::new(archive.to_vec(), HELM_CHART_LAYER_MEDIA_TYPE.to_string(), None);
    tokio::time::timeout(
        FETCH_TIMEOUT,
        client.push(&reference, &[layer], config, &auth, None),
    )
    .await
    .map_err(|_| format!("{shown}: pushing {tag} timed out"))?
    .map_err(|e| format!("{shown}: pushing {tag}: {}", oci_error(&e)))?;
    let digest = tokio::time::timeout(FETCH_TIMEOUT, client.fetch_manifest_digest(&reference, &auth))
        .await
        .map_err(|_| format!("{shown}: reading back {tag} timed out"))?
        .map_err(|e| format!("{shown}: reading back {tag}: {}", oci_error(&e)))?;
    Ok(Pushed {
        reference: format!("{}:{tag}", redact(&url)),
        digest,
    })
}

/// The tag for `version`: Helm writes `+` as `_` in tags. A range (`~1.4`, `>=1 <2`)
/// is resolved against the registry's tags, the highest matching version winning.
async fn resolve_tag(
    client: &oci_client::Client,
    repo: &str,
    version: &str,
    auth: &oci_client::secrets::RegistryAuth,
    shown: &str,
) -> Result<String, String> {
    if let Some(tag) = exact_tag(version) {
        return Ok(tag);
    }
    let reference: oci_client::Reference = format!("{repo}:latest")
        .parse()
        .map_err(|e| format!("{shown}: not an OCI reference: {e}"))?;
    let tags = tokio::time::timeout(FETCH_TIMEOUT, client.list_tags(&reference, auth, None, None))
        .await
        .map_err(|_| format!("{shown}: listing tags timed out"))?
        .map_err(|e| format!("{shown}: listing tags: {}", oci_error(&e)))?;
    pick_tag(version, &tags.tags, shown)
}

/// The tag of an exact version (`+` written `_`); `None` for a range.
fn exact_tag(version: &str) -> Option<String> {
    semver::Version::parse(version.trim_start_matches('v'))
        .is_ok()
        .then(|| version.replace('+', "_"))
}

/// The tag of the highest version among `tags` matching the range `version`
/// (pre-releases only when the range names one).
fn pick_tag(version: &str, tags: &[String], shown: &str) -> Result<String, String> {
    let constraint = convoy_chart::constraint::Constraint::parse(version)
        .map_err(|e| format!("{shown}: version {version:?}: {e}"))?;
    let allow_pre = version.contains('-');
    tags.iter()
        .filter_map(|t| {
            let v = semver::Version::parse(&t.replace('_', "+")).ok()?;
            ((allow_pre || v.pre.is_empty()) && constraint.matches(&v)).then_some((v, t))
        })
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, t)| t.clone())
        .ok_or_else(|| format!("{shown}: no tag matches version {version:?}"))
}

/// An OCI error for users: authentication failures said plainly.
fn oci_error(e: &oci_client::errors::OciDistributionError) -> String {
    use oci_client::errors::OciDistributionError as E;
    match e {
        E::AuthenticationFailure(_) | E::UnauthorizedError { .. } => {
            "authentication failed (check the coordinator's chart_sources credentials for this registry)"
                .to_string()
        }
        other => {
            let text = error_chain(other);
            if let Some(tls) = tls::describe_tls_failure(&text) {
                tls
            } else if text.contains("401") || text.to_ascii_lowercase().contains("unauthorized") {
                format!(
                    "authentication failed (check the coordinator's chart_sources credentials for this registry): {text}"
                )
            } else {
                text
            }
        }
    }
}

/// An error with its causes: `a: b: c`.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// A URL safe to show: user info removed.
pub fn redact(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_once('/').map_or((rest, None), |(a, p)| (a, Some(p)));
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            match path {
                Some(p) => format!("{scheme}://{host}/{p}"),
                None => format!("{scheme}://{host}"),
            }
        }
        None => url.to_string(),
    }
}

/// `sha256:<hex>` of `data`.
pub fn sha256(data: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    format!("sha256:{:x}", Sha256::digest(data))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(url: &str) -> ChartSourceConfig {
        ChartSourceConfig {
            url: url.into(),
            username: None,
            password_file: None,
            password_from_vault: None,
            token_file: None,
            token_from_vault: None,
            client_cert_file: None,
            client_key_file: None,
            ca_file: None,
            plain_http: false,
            environments: None,
        }
    }

    #[test]
    fn only_listed_sources_open_to_the_environment_are_allowed() {
        let mut prod = src("oci://r.example.com/prod");
        prod.environments = Some(vec!["prod".into()]);
        let s = ChartSources::new(vec![src("https://charts.example.com"), prod]);
        assert!(
            s.check_allowed("https://charts.example.com/stable", "dev")
                .is_ok()
        );
        let e = s
            .check_allowed("http://169.254.169.254/latest", "dev")
            .unwrap_err();
        assert!(e.contains("not among the coordinator's chart_sources"), "{e}");
        assert!(s.check_allowed("oci://r.example.com/prod/app", "prod").is_ok());
        let e = s
            .check_allowed("oci://r.example.com/prod/app", "dev")
            .unwrap_err();
        assert!(e.contains("chart_sources[1]") && e.contains("\"dev\""), "{e}");
        let direct = ChartSources::direct(Credentials::Anonymous, false);
        assert!(direct.check_allowed("https://anything.example.com", "").is_ok());
    }

    #[test]
    fn the_longest_prefix_at_a_slash_boundary_applies() {
        let s = ChartSources::new(vec![
            src("https://charts.example.com"),
            src("https://charts.example.com/team/"),
        ]);
        assert_eq!(s.entry("https://charts.example.com/team/stable").unwrap().0, 1);
        assert_eq!(s.entry("https://charts.example.com/other").unwrap().0, 0);
        assert_eq!(s.entry("https://charts.example.com").unwrap().0, 0);
        assert!(s.entry("https://charts.example.com.evil.org/x").is_none());
        assert!(
            s.entry("https://charts.example.com/teamx")
                .is_some_and(|(i, _)| i == 0)
        );
    }

    #[test]
    fn bad_entries_are_refused_with_their_key() {
        let mut basic = src("https://c.example.com");
        basic.username = Some("u".into());
        assert_eq!(
            validate(&[basic]).unwrap_err().0,
            "chart_sources[0].password_file"
        );
        let mut both = src("oci://r.example.com");
        both.username = Some("u".into());
        both.password_file = Some("p".into());
        both.token_file = Some("t".into());
        assert_eq!(validate(&[both]).unwrap_err().0, "chart_sources[0].token_file");
        assert_eq!(validate(&[src("ftp://x")]).unwrap_err().0, "chart_sources[0].url");
        let creds = validate(&[src("https://u:p@c.example.com/")]).unwrap_err();
        assert!(!creds.1.contains("u:p"), "{}", creds.1);
        let mut plain = src("https://c.example.com");
        plain.plain_http = true;
        assert_eq!(validate(&[plain]).unwrap_err().0, "chart_sources[0].plain_http");
    }

    #[tokio::test]
    async fn credentials_come_from_files_and_a_missing_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pw"), "s3cret\n").unwrap();
        let mut basic = src("oci://r.example.com/team");
        basic.username = Some("ci".into());
        basic.password_file = Some(dir.path().join("pw"));
        let mut missing = src("oci://r.example.com/other");
        missing.token_file = Some(dir.path().join("absent"));
        let s = ChartSources::new(vec![basic, missing]);
        assert!(
            matches!(s.credentials("oci://r.example.com/team/app").await.unwrap(), Credentials::Basic(u, p) if u == "ci" && p == "s3cret")
        );
        let e = s
            .credentials("oci://r.example.com/other/app")
            .await
            .err()
            .unwrap();
        assert!(
            e.contains("chart_sources[1].token_file") && e.contains("absent"),
            "{e}"
        );
        assert!(matches!(
            s.credentials("oci://elsewhere.example.com/app").await.unwrap(),
            Credentials::Anonymous
        ));
    }

    #[test]
    fn unreadable_credential_files_are_named_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let mut ok = src("https://a.example.com");
        ok.token_file = Some(dir.path().join("token"));
        std::fs::write(dir.path().join("token"), "t\n").unwrap();
        assert!(
            ChartSources::new(vec![ok.clone()])
                .check_credential_files()
                .is_ok()
        );
        let mut bad = src("https://b.example.com");
        bad.username = Some("u".into());
        bad.password_file = Some(dir.path().join("missing"));
        let e = ChartSources::new(vec![ok, bad])
            .check_credential_files()
            .unwrap_err();
        assert!(
            e.contains("chart_sources[1].password_file") && e.contains("missing"),
            "{e}"
        );
    }

    #[test]
    fn vault_and_tls_entries_are_checked_with_their_key() {
        let secret = || VaultSecretRef {
            vault_path: "/kv/ci/registry".into(),
            vault_key: "password".into(),
            cache_seconds: 60,
        };
        let key = |s: ChartSourceConfig| validate(&[s]).unwrap_err().0;
        let mut ok = src("oci://r.example.com");
        ok.username = Some("ci".into());
        ok.password_from_vault = Some(secret());
        ok.ca_file = Some("ca.pem".into());
        ok.client_cert_file = Some("c.pem".into());
        ok.client_key_file = Some("k.pem".into());
        assert!(validate(std::slice::from_ref(&ok)).is_ok());
        assert_eq!(
            first_vault_reference(&[src("https://a.example.com"), ok.clone()]).as_deref(),
            Some("chart_sources[1].password_from_vault")
        );
        assert_eq!(first_vault_reference(&[src("https://a.example.com")]), None);

        let mut both = ok.clone();
        both.password_file = Some("pw".into());
        assert_eq!(key(both), "chart_sources[0].password_from_vault");
        let mut no_user = src("https://c.example.com");
        no_user.password_from_vault = Some(secret());
        assert_eq!(key(no_user), "chart_sources[0].username");
        let mut token_and_basic = ok.clone();
        token_and_basic.token_from_vault = Some(secret());
        assert_eq!(key(token_and_basic), "chart_sources[0].token_from_vault");
        let mut two_tokens = src("https://c.example.com");
        two_tokens.token_file = Some("t".into());
        two_tokens.token_from_vault = Some(secret());
        assert_eq!(key(two_tokens), "chart_sources[0].token_from_vault");
        let mut bad_path = src("https://c.example.com");
        bad_path.token_from_vault = Some(VaultSecretRef {
            vault_path: "registry".into(),
            ..secret()
        });
        let (k, reason) = validate(&[bad_path]).unwrap_err();
        assert_eq!(k, "chart_sources[0].token_from_vault");
        assert!(reason.contains("vault_path"), "{reason}");

        let mut cert_only = ok.clone();
        cert_only.client_key_file = None;
        assert_eq!(key(cert_only), "chart_sources[0].client_key_file");
        let mut key_only = ok.clone();
        key_only.client_cert_file = None;
        assert_eq!(key(key_only), "chart_sources[0].client_cert_file");
        let mut plain = ok.clone();
        plain.plain_http = true;
        plain.client_cert_file = None;
        plain.client_key_file = None;
        assert_eq!(key(plain), "chart_sources[0].ca_file");
        let mut http = src("http://c.example.com");
        http.client_cert_file = Some("c.pem".into());
        http.client_key_file = Some("k.pem".into());
        assert_eq!(key(http), "chart_sources[0].client_cert_file");
    }

    /// A Vault that fails every read, or answers one value.
    struct FakeVault(Result<String, String>);

    impl VaultReader for FakeVault {
        fn read<'a>(&'a self, _path: &'a str, _key: &'a str) -> ReadFuture<'a> {
            let answer = self.0.clone();
            Box::pin(async move { answer })
        }
    }

    #[tokio::test]
    async fn vault_credentials_are_read_through_the_reader_and_failures_name_entry_path_and_key() {
        let mut basic = src("oci://r.example.com/team");
        basic.username = Some("ci".into());
        basic.password_from_vault = Some(VaultSecretRef {
            vault_path: "/kv/ci/registry".into(),
            vault_key: "password".into(),
            cache_seconds: 0,
        });
        let url = "oci://r.example.com/team/app";
        let s =
            ChartSources::new(vec![basic.clone()]).with_vault(Arc::new(FakeVault(Ok("from-vault".into()))));
        assert!(
            matches!(s.credentials(url).await.unwrap(), Credentials::Basic(u, p) if u == "ci" && p == "from-vault")
        );
        // Vault is not asked at start.
        assert!(
            ChartSources::new(vec![basic.clone()])
                .with_vault(Arc::new(FakeVault(Err("unreachable".into()))))
                .check_credential_files()
                .is_ok()
        );
        let failing = ChartSources::new(vec![basic.clone()]).with_vault(Arc::new(FakeVault(Err(
            "the secret has no such key (it has: user)".into(),
        ))));
        let e = failing.credentials(url).await.unwrap_err();
        assert!(
            e.contains("chart_sources[0].password_from_vault")
                && e.contains("/kv/ci/registry")
                && e.contains("\"password\"")
                && e.contains("no such key"),
            "{e}"
        );
        let e = ChartSources::new(vec![basic]).credentials(url).await.unwrap_err();
        assert!(e.contains("no `vault:` section"), "{e}");
        assert!(!format!("{s:?}").contains("from-vault"));
    }

    fn pem_pair(ca: &rcgen::Issuer<'_, rcgen::KeyPair>, name: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![name.to_string()])
            .unwrap()
            .signed_by(&key, ca)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn unreadable_or_malformed_tls_files_are_named_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = rcgen::Issuer::new(ca_params, ca_key);
        let (cert, key) = pem_pair(&ca, "convoyd");
        let (_, other_key) = pem_pair(&ca, "someone-else");
        let write = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        let mut s = src("oci://r.example.com");
        s.client_cert_file = Some(write("cert.pem", &cert));
        s.client_key_file = Some(write("key.pem", &key));
        s.ca_file = Some(write("ca.pem", &cert));
        let check = |s: &ChartSourceConfig| ChartSources::new(vec![s.clone()]).check_credential_files();
        assert!(check(&s).is_ok(), "{:?}", check(&s));

        let mut missing = s.clone();
        missing.client_cert_file = Some(dir.path().join("absent.pem"));
        let e = check(&missing).unwrap_err();
        assert!(
            e.contains("chart_sources[0].client_cert_file") && e.contains("absent.pem"),
            "{e}"
        );
        let mut not_pem = s.clone();
        not_pem.client_cert_file = Some(write("garbage.pem", "not a certificate\n"));
        let e = check(&not_pem).unwrap_err();
        assert!(
            e.contains("chart_sources[0].client_cert_file")
                && e.contains("garbage.pem")
                && e.contains("no certificate"),
            "{e}"
        );
        let mut bad_key = s.clone();
        bad_key.client_key_file = Some(write("cert-as-key.pem", &cert));
        let e = check(&bad_key).unwrap_err();
        assert!(e.contains("chart_sources[0].client_key_file"), "{e}");
        let mut mismatch = s.clone();
        mismatch.client_key_file = Some(write("other-key.pem", &other_key));
        let e = check(&mismatch).unwrap_err();
        assert!(
            e.contains("chart_sources[0].client_key_file") && e.contains("does not match"),
            "{e}"
        );
        let mut bad_ca = s.clone();
        bad_ca.ca_file = Some(write("empty-ca.pem", ""));
        let e = check(&bad_ca).unwrap_err();
        assert!(e.contains("chart_sources[0].ca_file"), "{e}");
        let tls = SourceTls::load(0, &s).unwrap();
        assert!(!format!("{tls:?}").contains("PRIVATE KEY"));
    }

    #[test]
    fn redaction_drops_user_info() {
        assert_eq!(redact("https://u:p@h.example.com/x"), "https://h.example.com/x");
        assert_eq!(redact("oci://h:5000/a/b"), "oci://h:5000/a/b");
    }
}

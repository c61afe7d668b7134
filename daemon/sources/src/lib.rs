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
use std::time::Duration;

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
    /// Bearer authentication: a file holding the token. Not with `username`.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
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
            .field("token_file", &self.token_file)
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
        if s.username.is_some() != s.password_file.is_some() {
            return Err((
                key(if s.username.is_some() {
                    "password_file"
                } else {
                    "username"
                }),
                "basic authentication needs both `username` and `password_file`".into(),
            ));
        }
        if s.token_file.is_some() && s.username.is_some() {
            return Err((
                key("token_file"),
                "give either `token_file` (bearer) or `username` + `password_file` (basic), not both".into(),
            ));
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
}

impl ChartSources {
    pub fn new(sources: Vec<ChartSourceConfig>) -> Self {
        ChartSources {
            sources,
            direct: None,
        }
    }

    /// One set of credentials for whatever is fetched (the CLI's `lint`, `render`,
    /// `push`, which take them from the environment); `plain_http` for OCI.
    pub fn direct(credentials: Credentials, plain_http: bool) -> Self {
        ChartSources {
            sources: Vec::new(),
            direct: Some((credentials, plain_http)),
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

    fn credentials(&self, url: &str) -> Result<Credentials, String> {
        if let Some((c, _)) = &self.direct {
            return Ok(c.clone());
        }
        let Some((i, s)) = self.entry(url) else {
            return Ok(Credentials::Anonymous);
        };
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
            (Some(u), Some(p), _) => Credentials::Basic(u.clone(), read("password_file", p)?),
            (_, _, Some(t)) => Credentials::Bearer(read("token_file", t)?),
            _ => Credentials::Anonymous,
        })
    }

    /// Reads every configured credential file once: an unreadable one is named
    /// (`chart_sources[i].password_file PATH: ...`) so convoyd refuses to start rather
    /// than failing submits later. The contents are dropped.
    pub fn check_credential_files(&self) -> Result<(), String> {
        for s in &self.sources {
            self.credentials(&s.url)?;
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
    fn git_credentials(&self, url: &str) -> Result<Option<gix::sec::identity::Credentials>, String> {
        Ok(match self.credentials(url)? {
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
            .map_err(|e| format!("{shown}: {e}"))?;
        ensure_tls_provider();
        let (u, r, p) = (from.git.clone(), from.reference.clone(), from.path.clone());
        let (data, commit) = tokio::time::timeout(
            FETCH_TIMEOUT,
            tokio::task::spawn_blocking(move || crate::git::fetch_file(&u, &r, &p, credentials)),
        )
        .await
        .map_err(|_| format!("{shown}: fetching {} timed out", from.reference))?
        .map_err(|e| format!("{shown}: the fetch failed: {e}"))?
        .map_err(|e| format!("{shown}: {e}"))?;
        let origin = format!("{} {}@{commit} {}", redact(&from.git), from.reference, from.path);
        let text = String::from_utf8(data).map_err(|_| format!("{origin}: not UTF-8 text"))?;
        Ok((origin, text))
    }

    async fn fetch_git(&self, url: &str, reference: &str, dir: &str) -> Result<FetchedChart, String> {
        let shown = format!("git repository {}", redact(url));
        let credentials = self.git_credentials(url).map_err(|e| format!("{shown}: {e}"))?;
        ensure_tls_provider();
        let (u, r, d) = (url.to_string(), reference.to_string(), dir.to_string());
        let (archive, commit) = tokio::time::timeout(
            FETCH_TIMEOUT,
            tokio::task::spawn_blocking(move || crate::git::fetch(&u, &r, &d, credentials)),
        )
        .await
        .map_err(|_| format!("{shown}: fetching {reference} timed out"))?
        .map_err(|e| format!("{shown}: the fetch failed: {e}"))?
        .map_err(|e| format!("{shown}: {e}"))?;
        Ok(FetchedChart {
            archive,
            origin: format!("{} {reference}@{commit} {dir}", redact(url)),
        })
    }

    async fn fetch_repo(&self, repo: &str, name: &str, range: &str) -> Result<FetchedChart, String> {
        use convoy_chart::repo::{Auth, RepoOptions};
        let shown = format!("chart repository {}", redact(repo));
        let auth = match self.credentials(repo).map_err(|e| format!("{shown}: {e}"))? {
            Credentials::Anonymous => None,
            Credentials::Basic(username, password) => Some(Auth::Basic { username, password }),
            Credentials::Bearer(t) => Some(Auth::Bearer(t)),
        };
        let opts = RepoOptions {
            auth,
            cache_dir: None,
            timeout: Some(FETCH_TIMEOUT),
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
        let (version, archive) = found.map_err(|e| format!("{shown}: chart {name} {range}: {e}"))?;
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
        let shown = format!("OCI registry {}", redact(oci));
        let repo = oci.trim_start_matches("oci://").trim_end_matches('/');
        let auth = self.oci_auth(oci).map_err(|e| format!("{shown}: {e}"))?;
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
        if pulled.config.media_type != HELM_CONFIG_MEDIA_TYPE {
            return Err(format!(
                "{shown}: {reference} is not a Helm chart: its config is {:?}, expected {HELM_CONFIG_MEDIA_TYPE}",
                pulled.config.media_type
            ));
        }
        let mut charts = pulled
            .layers
            .into_iter()
            .filter(|l| l.media_type == HELM_CHART_LAYER_MEDIA_TYPE);
        let (Some(layer), None) = (charts.next(), charts.next()) else {
            return Err(format!(
                "{shown}: {reference}: expected exactly one {HELM_CHART_LAYER_MEDIA_TYPE} layer"
            ));
        };
        let manifest = pulled.digest.unwrap_or_default();
        Ok(FetchedChart {
            archive: layer.data.to_vec(),
            origin: match tag {
                Some(t) => format!("{}:{t}@{manifest}", redact(oci)),
                None => format!("{}@{manifest}", redact(oci)),
            },
        })
    }

    pub fn oci_auth(&self, url: &str) -> Result<oci_client::secrets::RegistryAuth, String> {
        use oci_client::secrets::RegistryAuth;
        Ok(match self.credentials(url)? {
            Credentials::Anonymous => RegistryAuth::Anonymous,
            Credentials::Basic(u, p) => RegistryAuth::Basic(u, p),
            Credentials::Bearer(t) => RegistryAuth::Bearer(t),
        })
    }

    pub fn oci_client(&self, url: &str) -> Result<oci_client::Client, String> {
        let plain = match &self.direct {
            Some((_, plain)) => *plain,
            None => self.entry(url).is_some_and(|(_, s)| s.plain_http),
        };
        oci_client_for(plain)
    }
}

mod git;

/// reqwest (under oci-client and gix) is built without a TLS provider of its own:
/// ring, as everywhere in convoy, installed process-wide (an error only means one is
/// installed already).
fn ensure_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// An OCI client for Helm charts, plain HTTP when `plain_http`.
pub fn oci_client_for(plain_http: bool) -> Result<oci_client::Client, String> {
    ensure_tls_provider();
    let config = oci_client::client::ClientConfig {
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
    let auth = sources.oci_auth(&url).map_err(|e| format!("{shown}: {e}"))?;
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
    if semver::Version::parse(version.trim_start_matches('v')).is_ok() {
        return Ok(version.replace('+', "_"));
    }
    let constraint = convoy_chart::constraint::Constraint::parse(version)
        .map_err(|e| format!("{shown}: version {version:?}: {e}"))?;
    let reference: oci_client::Reference = format!("{repo}:latest")
        .parse()
        .map_err(|e| format!("{shown}: not an OCI reference: {e}"))?;
    let tags = tokio::time::timeout(FETCH_TIMEOUT, client.list_tags(&reference, auth, None, None))
        .await
        .map_err(|_| format!("{shown}: listing tags timed out"))?
        .map_err(|e| format!("{shown}: listing tags: {}", oci_error(&e)))?;
    let allow_pre = version.contains('-');
    tags.tags
        .iter()
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
            let text = other.to_string();
            if text.contains("401") || text.to_ascii_lowercase().contains("unauthorized") {
                format!(
                    "authentication failed (check the coordinator's chart_sources credentials for this registry): {text}"
                )
            } else {
                text
            }
        }
    }
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
            token_file: None,
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

    #[test]
    fn credentials_come_from_files_and_a_missing_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pw"), "s3cret\n").unwrap();
        let mut basic = src("oci://r.example.com/team");
        basic.username = Some("ci".into());
        basic.password_file = Some(dir.path().join("pw"));
        let mut missing = src("oci://r.example.com/other");
        missing.token_file = Some(dir.path().join("absent"));
        let s = ChartSources::new(vec![basic, missing]);
        assert!(
            matches!(s.credentials("oci://r.example.com/team/app").unwrap(), Credentials::Basic(u, p) if u == "ci" && p == "s3cret")
        );
        let e = s.credentials("oci://r.example.com/other/app").err().unwrap();
        assert!(
            e.contains("chart_sources[1].token_file") && e.contains("absent"),
            "{e}"
        );
        assert!(matches!(
            s.credentials("oci://elsewhere.example.com/app").unwrap(),
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
    fn redaction_drops_user_info() {
        assert_eq!(redact("https://u:p@h.example.com/x"), "https://h.example.com/x");
        assert_eq!(redact("oci://h:5000/a/b"), "oci://h:5000/a/b");
    }
}

//! A Helm chart pulled from an OCI registry that requires a client certificate
//! (`client_cert_file` on an `oci://` entry). oci-client 0.18 builds its own HTTP
//! client and cannot present one, so for these registries convoyd speaks the few calls
//! of the distribution API a pull needs itself, over reqwest with the source's TLS
//! material: the tag list (for a version range), the manifest (verified against a
//! pinned digest) and the chart layer (verified against its digest). Credentials go as
//! basic or bearer authentication, exchanged for a token when the registry answers
//! 401 with a `Bearer` challenge (its token service).

use std::time::Duration;

use oci_client::secrets::RegistryAuth;
use serde::Deserialize;

use crate::tls::SourceTls;
use crate::{FETCH_TIMEOUT, HELM_CHART_LAYER_MEDIA_TYPE, sha256};

/// The largest manifest, tag list or layer read.
const MAX_BODY: usize = 64 * 1024 * 1024;

const MANIFEST_ACCEPT: &str =
    "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// What a pull found, whichever client made it.
pub(crate) struct Pulled {
    /// `REGISTRY/REPO:TAG` or `REGISTRY/REPO@DIGEST`, as asked.
    pub reference: String,
    /// The tag, when pulled by version.
    pub tag: Option<String>,
    pub config_media_type: String,
    /// `(media type, data)` per layer; only chart layers carry their data.
    pub layers: Vec<(String, Vec<u8>)>,
    /// The manifest's `sha256:<hex>`.
    pub digest: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    media_type: String,
    digest: String,
}

#[derive(Deserialize)]
struct Manifest {
    config: Descriptor,
    layers: Vec<Descriptor>,
}

#[derive(Deserialize)]
struct TagList {
    #[serde(default)]
    tags: Vec<String>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
}

/// Pulls the chart at `oci` (`oci://REGISTRY/REPO`) by `digest` or `version` (a tag or
/// a range) with `auth`, presenting `tls`'s client certificate.
pub(crate) async fn pull(
    oci: &str,
    version: Option<&str>,
    digest: Option<&str>,
    auth: &RegistryAuth,
    tls: &SourceTls,
    shown: &str,
) -> Result<Pulled, String> {
    let repo = oci.trim_start_matches("oci://").trim_end_matches('/');
    let Some((host, name)) = repo.split_once('/') else {
        return Err(format!("{shown}: expected oci://REGISTRY/REPOSITORY"));
    };
    crate::ensure_tls_provider();
    let http = tls
        .apply_async(
            reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(10))
                .read_timeout(Duration::from_secs(30))
                .timeout(FETCH_TIMEOUT),
        )
        .map_err(|e| format!("{shown}: {e}"))?
        .build()
        .map_err(|e| format!("{shown}: cannot build an HTTP client: {e}"))?;
    let mut registry = Registry {
        http,
        base: format!("https://{host}/v2/{name}"),
        name: name.to_string(),
        auth: auth.clone(),
        token: None,
        shown,
    };
    let (reference, tag) = match (digest, version) {
        (Some(d), _) => (d.to_string(), None),
        (None, Some(v)) => {
            let t = match crate::exact_tag(v) {
                Some(t) => t,
                None => {
                    let body = registry.get("tags/list", "application/json").await?;
                    let list: TagList = serde_json::from_slice(&body)
                        .map_err(|e| format!("{shown}: listing tags: unexpected answer: {e}"))?;
                    crate::pick_tag(v, &list.tags, shown)?
                }
            };
            (t.clone(), Some(t))
        }
        (None, None) => return Err(format!("{shown}: neither a version nor a digest")),
    };
    let shown_ref = match &tag {
        Some(t) => format!("{repo}:{t}"),
        None => format!("{repo}@{reference}"),
    };
    let body = registry
        .get(&format!("manifests/{reference}"), MANIFEST_ACCEPT)
        .await?;
    let manifest_digest = sha256(&body);
    if let Some(d) = digest
        && d != manifest_digest
    {
        return Err(format!(
            "{shown}: {shown_ref}: the registry answered a manifest with digest {manifest_digest}"
        ));
    }
    let manifest: Manifest = serde_json::from_slice(&body)
        .map_err(|e| format!("{shown}: {shown_ref}: not an OCI image manifest: {e}"))?;
    let mut layers = Vec::new();
    for layer in manifest.layers {
        let data = if layer.media_type == HELM_CHART_LAYER_MEDIA_TYPE {
            let data = registry.get(&format!("blobs/{}", layer.digest), "*/*").await?;
            if sha256(&data) != layer.digest {
                return Err(format!(
                    "{shown}: {shown_ref}: layer {} does not match its digest",
                    layer.digest
                ));
            }
            data
        } else {
            Vec::new()
        };
        layers.push((layer.media_type, data));
    }
    Ok(Pulled {
        reference: shown_ref,
        tag,
        config_media_type: manifest.config.media_type,
        layers,
        digest: manifest_digest,
    })
}

struct Registry<'a> {
    http: reqwest::Client,
    /// `https://REGISTRY/v2/REPO`.
    base: String,
    name: String,
    auth: RegistryAuth,
    /// From the registry's token service, once asked.
    token: Option<String>,
    shown: &'a str,
}

impl Registry<'_> {
    /// The body at `base/path`; a `Bearer` challenge is answered once.
    async fn get(&mut self, path: &str, accept: &str) -> Result<Vec<u8>, String> {
        let url = format!("{}/{path}", self.base);
        let mut resp = self.send(&url, accept).await?;
        if resp.status() == reqwest::StatusCode::UNAUTHORIZED
            && self.token.is_none()
            && let Some(challenge) = resp
                .headers()
                .get(reqwest::header::WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .and_then(bearer_challenge)
        {
            self.token = Some(self.fetch_token(&challenge).await?);
            resp = self.send(&url, accept).await?;
        }
        let status = resp.status();
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            return Err(format!(
                "{}: {path}: HTTP {}: authentication failed (check the coordinator's chart_sources credentials for this registry)",
                self.shown,
                status.as_u16()
            ));
        }
        if !status.is_success() {
            return Err(format!("{}: {path}: HTTP {}", self.shown, status.as_u16()));
        }
        let body = resp
            .bytes()
            .await
            .map_err(|e| format!("{}: {path}: {}", self.shown, transport_error(&e)))?;
        if body.len() > MAX_BODY {
            return Err(format!("{}: {path}: larger than {MAX_BODY} bytes", self.shown));
        }
        Ok(body.to_vec())
    }

    async fn send(&self, url: &str, accept: &str) -> Result<reqwest::Response, String> {
        let req = self.http.get(url).header(reqwest::header::ACCEPT, accept);
        let req = match (&self.token, &self.auth) {
            (Some(t), _) | (None, RegistryAuth::Bearer(t)) => req.bearer_auth(t),
            (None, RegistryAuth::Basic(u, p)) => req.basic_auth(u, Some(p)),
            (None, RegistryAuth::Anonymous) => req,
        };
        req.send()
            .await
            .map_err(|e| format!("{}: {}", self.shown, transport_error(&e)))
    }

    /// A pull token from the registry's token service, with the configured
    /// credentials (anonymous without).
    async fn fetch_token(&self, c: &Challenge) -> Result<String, String> {
        let scope = c
            .scope
            .clone()
            .unwrap_or_else(|| format!("repository:{}:pull", self.name));
        let mut query = vec![("scope", scope)];
        if let Some(s) = &c.service {
            query.push(("service", s.clone()));
        }
        let req = self.http.get(&c.realm).query(&query);
        let req = match &self.auth {
            RegistryAuth::Basic(u, p) => req.basic_auth(u, Some(p)),
            RegistryAuth::Bearer(t) => req.bearer_auth(t),
            RegistryAuth::Anonymous => req,
        };
        let resp = req
            .send()
            .await
            .map_err(|e| format!("{}: token service: {}", self.shown, transport_error(&e)))?;
        if !resp.status().is_success() {
            return Err(format!(
                "{}: token service: HTTP {}: authentication failed (check the coordinator's chart_sources credentials for this registry)",
                self.shown,
                resp.status().as_u16()
            ));
        }
        let answer: TokenAnswer = resp
            .json()
            .await
            .map_err(|e| format!("{}: token service: unexpected answer: {e}", self.shown))?;
        answer
            .token
            .or(answer.access_token)
            .ok_or_else(|| format!("{}: token service: no token in its answer", self.shown))
    }
}

/// `Bearer realm="...",service="...",scope="..."`.
#[derive(Debug, PartialEq, Eq)]
struct Challenge {
    realm: String,
    service: Option<String>,
    scope: Option<String>,
}

fn bearer_challenge(header: &str) -> Option<Challenge> {
    let (scheme, params) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut fields = std::collections::BTreeMap::new();
    let mut rest = params.trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let (value, next) = match after.strip_prefix('"') {
            Some(quoted) => {
                let end = quoted.find('"')?;
                (&quoted[..end], &quoted[end + 1..])
            }
            None => after.split_once(',').map_or((after, ""), |(v, n)| (v, n)),
        };
        fields.insert(key.trim().to_ascii_lowercase(), value.to_string());
        rest = next.trim_start_matches([',', ' ']);
    }
    Some(Challenge {
        realm: fields.remove("realm")?,
        service: fields.remove("service"),
        scope: fields.remove("scope"),
    })
}

/// A transport error with its causes; a refused TLS handshake said plainly.
fn transport_error(e: &reqwest::Error) -> String {
    let text = crate::error_chain(e);
    crate::tls::describe_tls_failure(&text).unwrap_or(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenges_are_parsed() {
        let c = bearer_challenge(
            r#"Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:team/app:pull,push""#,
        )
        .unwrap();
        assert_eq!(c.realm, "https://auth.example.com/token");
        assert_eq!(c.service.as_deref(), Some("registry.example.com"));
        assert_eq!(c.scope.as_deref(), Some("repository:team/app:pull,push"));
        assert!(bearer_challenge(r#"Basic realm="convoy""#).is_none());
        assert!(bearer_challenge(r#"Bearer service="x""#).is_none());
    }
}

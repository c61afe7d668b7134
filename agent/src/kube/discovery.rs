//! GVK -> resource through the API server's discovery, cached per kind. A kind that
//! does not resolve is asked again next time (it may be a CRD applied a moment ago),
//! and [`wait_established`] waits for a freshly applied CRD to serve its kind.
//! [`capabilities`] lists what the server serves, for the coordinator's renders.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::StreamExt;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::Api;
use kube::core::gvk::GroupVersionKind;
use kube::discovery::{ApiResource, Scope};

use crate::backend::{ClusterCapabilities, Failure, FailureReason};

/// How a kind is served.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub resource: ApiResource,
    pub namespaced: bool,
}

/// Discovery results cached for the backend's lifetime.
pub struct Discovery {
    client: Client,
    cache: Mutex<HashMap<(String, String), Resolved>>,
}

/// Splits `apps/v1` into (`apps`, `v1`) and `v1` into (``, `v1`).
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    api_version.split_once('/').unwrap_or(("", api_version))
}

impl Discovery {
    pub fn new(client: Client) -> Self {
        Discovery {
            client,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The resource serving `kind` in `api_version`; `None` when the server does not
    /// serve it (unknown group/version, or a kind the group lacks: a missing CRD).
    pub async fn resolve(&self, api_version: &str, kind: &str) -> Result<Option<Resolved>, Failure> {
        let key = (api_version.to_string(), kind.to_string());
        if let Some(r) = self.cache.lock().ok().and_then(|c| c.get(&key).cloned()) {
            return Ok(Some(r));
        }
        let (group, version) = split_api_version(api_version);
        let gvk = GroupVersionKind::gvk(group, version, kind);
        match kube::discovery::pinned_kind(&self.client, &gvk).await {
            Ok((resource, caps)) => {
                let r = Resolved {
                    resource,
                    namespaced: caps.scope == Scope::Namespaced,
                };
                if let Ok(mut c) = self.cache.lock() {
                    c.insert(key, r.clone());
                }
                Ok(Some(r))
            }
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(None),
            Err(kube::Error::Discovery(_)) => Ok(None),
            Err(e) => Err(Failure::new(
                FailureReason::Internal,
                format!("discovering {kind} in {api_version}: {e}"),
            )),
        }
    }
}

/// Waits until the CRD `name` reports `Established` (its kind is then served).
pub async fn wait_established(client: &Client, name: &str, timeout: Duration) -> Result<(), Failure> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let start = Instant::now();
    loop {
        let crd = api.get_opt(name).await.map_err(|e| {
            Failure::new(
                FailureReason::Internal,
                format!("reading customresourcedefinition/{name}: {e}"),
            )
        })?;
        let established = crd
            .and_then(|c| c.status)
            .and_then(|s| s.conditions)
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Established" && c.status == "True"));
        if established {
            return Ok(());
        }
        if start.elapsed() > timeout {
            return Err(Failure::new(
                FailureReason::ApplyRefused,
                format!(
                    "customresourcedefinition/{name} not Established after {}s",
                    timeout.as_secs()
                ),
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Group versions whose resources are listed at once.
const DISCOVERY_CONCURRENCY: usize = 8;

/// The server's version and everything it serves, as Helm's `GetVersionSet` lists them
/// against a live cluster: every `group/version` (the core group's `v1` included) and,
/// per group version, `group/version/Kind` of each of its resources (subresources
/// included, as Helm does). A group version whose resources cannot be listed (an
/// aggregated API that is down) keeps its `group/version` and is logged, as Helm
/// tolerates a partial discovery; no version or no group at all is an error.
pub async fn capabilities(client: &Client) -> Result<ClusterCapabilities, Failure> {
    let failed = |what: &str, e: kube::Error| {
        Failure::new(FailureReason::Internal, format!("discovery: reading {what}: {e}"))
    };
    let version = client
        .apiserver_version()
        .await
        .map_err(|e| failed("/version", e))?;
    let core = client
        .list_core_api_versions()
        .await
        .map_err(|e| failed("/api", e))?;
    let groups = client.list_api_groups().await.map_err(|e| failed("/apis", e))?;
    let group_versions: Vec<String> = core
        .versions
        .into_iter()
        .chain(
            groups
                .groups
                .into_iter()
                .flat_map(|g| g.versions.into_iter().map(|v| v.group_version)),
        )
        .collect();
    let mut out: BTreeSet<String> = group_versions.iter().cloned().collect();

    // Owned per request: a stream of futures borrowing the list is not `Send` enough
    // for the trait's future.
    let lists = futures::stream::iter(group_versions.into_iter().map(|gv| {
        let client = client.clone();
        async move {
            let list = if gv.contains('/') {
                client.list_api_group_resources(&gv).await
            } else {
                client.list_core_api_resources(&gv).await
            };
            (gv, list)
        }
    }))
    .buffer_unordered(DISCOVERY_CONCURRENCY)
    .collect::<Vec<_>>()
    .await;
    for (gv, list) in lists {
        match list {
            Ok(list) => out.extend(list.resources.into_iter().map(|r| join_kind(&gv, &r.kind))),
            Err(e) => {
                tracing::warn!(group_version = %gv, error = %e, "discovery: its resources could not be listed; reporting the group version without its kinds");
            }
        }
    }
    Ok(ClusterCapabilities {
        kube_version: version.git_version,
        api_versions: out.into_iter().collect(),
    })
}

/// Go's `path.Join(groupVersion, kind)`, as Helm builds the entry.
fn join_kind(group_version: &str, kind: &str) -> String {
    if kind.is_empty() {
        group_version.to_string()
    } else {
        format!("{group_version}/{kind}")
    }
}

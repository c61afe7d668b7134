//! GVK -> resource through the API server's discovery, cached per kind. A kind that
//! does not resolve is asked again next time (it may be a CRD applied a moment ago),
//! and [`wait_established`] waits for a freshly applied CRD to serve its kind.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::Api;
use kube::core::gvk::GroupVersionKind;
use kube::discovery::{ApiResource, Scope};

use crate::backend::{Failure, FailureReason};

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

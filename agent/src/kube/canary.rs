//! The canary objects of a release in the cluster: found by the labels every canary
//! object carries (`convoy.dev/release=<release>`, `convoy.dev/track=canary`) in the
//! release's namespace, and deleted. Only their metadata is read: a Secret's data
//! never leaves the API server here.

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, DeleteParams, ListParams, PropagationPolicy};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;

use super::apply::classify;
use super::manifest::RELEASE_LABEL;
use crate::backend::{Failure, ObjectAction, ObjectRef, ObjectResult};
use crate::canary::{CANARY_TRACK, TRACK_LABEL};

/// Every canary object of `release` in `namespace`: Deployments first (what is
/// deleted first), then ConfigMaps and Secrets.
pub(super) async fn list(client: &Client, release: &str, namespace: &str) -> Result<Vec<ObjectRef>, Failure> {
    // No namespace, no namespaced canary object to find (and no all-namespaces list).
    if namespace.is_empty() {
        return Ok(Vec::new());
    }
    let selector = format!("{RELEASE_LABEL}={release},{TRACK_LABEL}={CANARY_TRACK}");
    let mut out = list_kind::<Deployment>(client, namespace, &selector, "apps/v1", "Deployment").await?;
    out.extend(list_kind::<ConfigMap>(client, namespace, &selector, "v1", "ConfigMap").await?);
    out.extend(list_kind::<Secret>(client, namespace, &selector, "v1", "Secret").await?);
    Ok(out)
}

async fn list_kind<K>(
    client: &Client,
    namespace: &str,
    selector: &str,
    api_version: &str,
    kind: &str,
) -> Result<Vec<ObjectRef>, Failure>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let what = ObjectRef {
        api_version: api_version.into(),
        kind: kind.into(),
        namespace: Some(namespace.into()),
        name: "*".into(),
    };
    let list = api
        .list_metadata(&ListParams::default().labels(selector))
        .await
        .map_err(|e| classify(e, &what, "listing canary objects"))?;
    Ok(list
        .items
        .into_iter()
        .filter_map(|m| m.metadata.name)
        .map(|name| ObjectRef { name, ..what.clone() })
        .collect())
}

/// Deletes `objects` (as [`list`] found them) in order; one already gone is not
/// reported. Returns the deleted ones as `Pruned`.
pub(super) async fn delete(client: &Client, objects: Vec<ObjectRef>) -> Result<Vec<ObjectResult>, Failure> {
    let mut out = Vec::with_capacity(objects.len());
    for o in objects {
        let ns = o.namespace.clone().unwrap_or_default();
        let deleted = match o.kind.as_str() {
            "Deployment" => delete_one::<Deployment>(client, &ns, &o).await?,
            "ConfigMap" => delete_one::<ConfigMap>(client, &ns, &o).await?,
            "Secret" => delete_one::<Secret>(client, &ns, &o).await?,
            _ => false,
        };
        if deleted {
            out.push(ObjectResult {
                object: o,
                action: ObjectAction::Pruned,
                changes: Vec::new(),
                message: String::new(),
            });
        }
    }
    Ok(out)
}

async fn delete_one<K>(client: &Client, namespace: &str, o: &ObjectRef) -> Result<bool, Failure>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let dp = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        ..DeleteParams::default()
    };
    match api.delete(&o.name, &dp).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
        Err(e) => Err(classify(e, o, "deleting")),
    }
}

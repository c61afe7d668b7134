//! The kube side of health: watches the release's workloads and pods (any event wakes
//! the loop, a 2s tick resyncs), reads a status snapshot of the workloads and the pods
//! of their NEW revision, and feeds it to the pure [`Judge`].
//!
//! New pods: a Deployment's are those of the ReplicaSet matching its current
//! `deployment.kubernetes.io/revision` (by `pod-template-hash`); a StatefulSet's carry
//! `controller-revision-hash == status.updateRevision`; a DaemonSet's carry
//! `pod-template-generation == metadata.generation`; a Job's carry its `controller-uid`.

use std::collections::BTreeSet;
use std::time::Duration;

use futures::stream::{self, BoxStream};
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{Api, ListParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::verdict::{JobState, Judge, PodSnapshot, Snapshot, Verdict, WorkloadKind, WorkloadSnapshot};
use crate::backend::{Failure, FailureReason, HealthOutcome, HealthPolicy, ObjectRef, ProgressUpdate};

/// The periodic resync, so time-based rules fire and a missed event is not fatal.
const RESYNC: Duration = Duration::from_secs(2);
/// Events arriving this close together are judged once.
const DEBOUNCE: Duration = Duration::from_millis(150);
const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";

/// Watches `workloads` until the judge settles or `cancel` fires.
pub async fn watch(
    client: &Client,
    workloads: Vec<(ObjectRef, WorkloadKind)>,
    policy: HealthPolicy,
    progress: mpsc::Sender<ProgressUpdate>,
    cancel: CancellationToken,
) -> HealthOutcome {
    let start = Instant::now();
    let mut events = wake_ups(client, &workloads);
    let mut judge = Judge::new(policy);
    let mut last_error: Option<(Instant, String)> = None;
    loop {
        if cancel.is_cancelled() {
            return HealthOutcome::Cancelled;
        }
        match snapshot(client, &workloads).await {
            Ok(snap) => {
                last_error = None;
                let (update, verdict) = judge.observe(start.elapsed(), &snap);
                if let Some(u) = update {
                    // A receiver that went away only loses progress, not the verdict.
                    let _ = progress.send(u).await;
                }
                match verdict {
                    Verdict::Pending => {}
                    Verdict::Healthy => {
                        return HealthOutcome::Healthy {
                            elapsed: start.elapsed(),
                        };
                    }
                    Verdict::Failed(f) => return HealthOutcome::Failed(f),
                }
            }
            Err(e) => {
                // The API being briefly unreachable is not a verdict; being so beyond
                // the progress deadline is.
                let since = last_error.get_or_insert((Instant::now(), String::new())).0;
                last_error = Some((since, e.message.clone()));
                if since.elapsed() >= policy.progress_deadline {
                    return HealthOutcome::Failed(e);
                }
                tracing::warn!(error = %e, "reading rollout status failed; retrying");
            }
        }
        let due = start + judge.next_deadline();
        tokio::select! {
            _ = cancel.cancelled() => return HealthOutcome::Cancelled,
            _ = tokio::time::sleep(RESYNC) => {}
            _ = tokio::time::sleep_until(due) => {}
            Some(()) = events.next() => {
                tokio::time::sleep(DEBOUNCE).await;
                while let Some(Some(())) = events.next().now_or_never() {}
            }
        }
    }
}

fn watch_kind<K>(client: &Client, ns: &str) -> BoxStream<'static, ()>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + 'static,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    watcher(api, watcher::Config::default())
        .default_backoff()
        .filter_map(|e| async move { e.ok().map(|_| ()) })
        .boxed()
}

/// One stream of "something changed" from watchers on the namespaces involved.
fn wake_ups(client: &Client, workloads: &[(ObjectRef, WorkloadKind)]) -> BoxStream<'static, ()> {
    let mut streams = Vec::new();
    let namespaces: BTreeSet<(String, &str)> = workloads
        .iter()
        .map(|(o, k)| {
            let kind = match k {
                WorkloadKind::Deployment => "Deployment",
                WorkloadKind::StatefulSet => "StatefulSet",
                WorkloadKind::DaemonSet => "DaemonSet",
                WorkloadKind::Job => "Job",
            };
            (o.namespace.clone().unwrap_or_default(), kind)
        })
        .collect();
    let mut pod_namespaces = BTreeSet::new();
    for (ns, kind) in namespaces {
        streams.push(match kind {
            "Deployment" => watch_kind::<Deployment>(client, &ns),
            "StatefulSet" => watch_kind::<StatefulSet>(client, &ns),
            "DaemonSet" => watch_kind::<DaemonSet>(client, &ns),
            _ => watch_kind::<Job>(client, &ns),
        });
        if pod_namespaces.insert(ns.clone()) {
            streams.push(watch_kind::<Pod>(client, &ns));
        }
    }
    stream::select_all(streams).boxed()
}

fn read_failure(what: &str, e: kube::Error) -> Failure {
    Failure::new(FailureReason::Internal, format!("reading {what}: {e}"))
}

fn selector_string(sel: Option<&LabelSelector>) -> Option<String> {
    let labels = sel?.match_labels.as_ref()?;
    if labels.is_empty() {
        return None;
    }
    Some(
        labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(","),
    )
}

fn u(v: Option<i32>) -> u32 {
    v.and_then(|v| u32::try_from(v).ok()).unwrap_or(0)
}

fn blank(object: &ObjectRef, kind: WorkloadKind) -> WorkloadSnapshot {
    WorkloadSnapshot {
        object: object.clone(),
        kind,
        exists: false,
        generation: 0,
        observed_generation: 0,
        desired: 0,
        current: 0,
        updated: 0,
        ready: 0,
        available: 0,
        revision_settled: true,
        stalled: None,
        job: None,
    }
}

/// Which of a workload's pods are new: label `key` equals `value`.
struct NewPods {
    selector: Option<String>,
    key: &'static str,
    value: String,
}

/// Reads one workload's status, and how to recognise its new pods.
async fn read_workload(
    client: &Client,
    object: &ObjectRef,
    kind: WorkloadKind,
) -> Result<(WorkloadSnapshot, Option<NewPods>), Failure> {
    let ns = object.namespace.as_deref().unwrap_or_default();
    let name = object.name.as_str();
    let mut w = blank(object, kind);
    let what = object.to_string();
    match kind {
        WorkloadKind::Deployment => {
            let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
            let Some(d) = api.get_opt(name).await.map_err(|e| read_failure(&what, e))? else {
                return Ok((w, None));
            };
            let spec = d.spec.clone().unwrap_or_default();
            let st = d.status.clone().unwrap_or_default();
            w.exists = true;
            w.generation = d.metadata.generation.unwrap_or(0);
            w.observed_generation = st.observed_generation.unwrap_or(0);
            w.desired = u(Some(spec.replicas.unwrap_or(1)));
            w.current = u(st.replicas);
            w.updated = u(st.updated_replicas);
            w.ready = u(st.ready_replicas);
            w.available = u(st.available_replicas);
            if w.observed_generation >= w.generation {
                w.stalled = st.conditions.iter().flatten().find_map(|c| {
                    (c.type_ == "Progressing"
                        && c.status == "False"
                        && c.reason.as_deref() == Some("ProgressDeadlineExceeded"))
                    .then(|| {
                        c.message
                            .clone()
                            .unwrap_or_else(|| "ProgressDeadlineExceeded".into())
                    })
                });
            }
            let selector = selector_string(Some(&spec.selector));
            // Until the controller has observed this generation, the revision annotation
            // still names the previous ReplicaSet: its pods are not the new ones (a
            // rollback away from a crash-looping revision would fail on them at once).
            let hash = if w.observed_generation >= w.generation {
                new_replicaset_hash(client, &d, ns, selector.as_deref()).await?
            } else {
                None
            };
            Ok((
                w,
                hash.map(|value| NewPods {
                    selector,
                    key: "pod-template-hash",
                    value,
                }),
            ))
        }
        WorkloadKind::StatefulSet => {
            let api: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
            let Some(s) = api.get_opt(name).await.map_err(|e| read_failure(&what, e))? else {
                return Ok((w, None));
            };
            let spec = s.spec.clone().unwrap_or_default();
            let st = s.status.clone().unwrap_or_default();
            w.exists = true;
            w.generation = s.metadata.generation.unwrap_or(0);
            w.observed_generation = st.observed_generation.unwrap_or(0);
            w.desired = u(Some(spec.replicas.unwrap_or(1)));
            w.current = u(Some(st.replicas));
            w.updated = u(st.updated_replicas);
            w.ready = u(st.ready_replicas);
            w.available = u(st.available_replicas);
            w.revision_settled = st.update_revision.is_some() && st.update_revision == st.current_revision;
            // As for a Deployment: the update revision is this spec's only once observed.
            let observed = w.observed_generation >= w.generation;
            let new = st.update_revision.filter(|_| observed).map(|value| NewPods {
                selector: selector_string(Some(&spec.selector)),
                key: "controller-revision-hash",
                value,
            });
            Ok((w, new))
        }
        WorkloadKind::DaemonSet => {
            let api: Api<DaemonSet> = Api::namespaced(client.clone(), ns);
            let Some(d) = api.get_opt(name).await.map_err(|e| read_failure(&what, e))? else {
                return Ok((w, None));
            };
            let spec = d.spec.clone().unwrap_or_default();
            let st = d.status.clone().unwrap_or_default();
            w.exists = true;
            w.generation = d.metadata.generation.unwrap_or(0);
            w.observed_generation = st.observed_generation.unwrap_or(0);
            w.desired = u(Some(st.desired_number_scheduled));
            w.current = u(Some(st.current_number_scheduled));
            w.updated = u(st.updated_number_scheduled);
            w.ready = u(Some(st.number_ready));
            w.available = u(st.number_available);
            let new = NewPods {
                selector: selector_string(Some(&spec.selector)),
                key: "pod-template-generation",
                value: w.generation.to_string(),
            };
            Ok((w, Some(new)))
        }
        WorkloadKind::Job => {
            let api: Api<Job> = Api::namespaced(client.clone(), ns);
            let Some(j) = api.get_opt(name).await.map_err(|e| read_failure(&what, e))? else {
                return Ok((w, None));
            };
            let spec = j.spec.clone().unwrap_or_default();
            let st = j.status.clone().unwrap_or_default();
            w.exists = true;
            w.desired = u(Some(spec.completions.unwrap_or(1)));
            w.ready = u(st.succeeded);
            let cond = |ty: &str| {
                st.conditions
                    .iter()
                    .flatten()
                    .find(|c| c.type_ == ty && c.status == "True")
                    .cloned()
            };
            w.job = Some(if cond("Complete").is_some() {
                JobState::Complete
            } else if let Some(c) = cond("Failed") {
                JobState::Failed(format!(
                    "{}: {}",
                    c.reason.unwrap_or_default(),
                    c.message.unwrap_or_default()
                ))
            } else {
                JobState::Running
            });
            let new = j.metadata.uid.clone().map(|value| NewPods {
                selector: Some(format!("controller-uid={value}")),
                key: "controller-uid",
                value,
            });
            Ok((w, new))
        }
    }
}

/// The `pod-template-hash` of the Deployment's current ReplicaSet, once it exists.
async fn new_replicaset_hash(
    client: &Client,
    d: &Deployment,
    ns: &str,
    selector: Option<&str>,
) -> Result<Option<String>, Failure> {
    let Some(revision) = d
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(REVISION_ANNOTATION))
    else {
        return Ok(None);
    };
    let uid = d.metadata.uid.clone().unwrap_or_default();
    let api: Api<ReplicaSet> = Api::namespaced(client.clone(), ns);
    let mut lp = ListParams::default();
    if let Some(s) = selector {
        lp = lp.labels(s);
    }
    let list = api
        .list(&lp)
        .await
        .map_err(|e| read_failure(&format!("replicasets in {ns}"), e))?;
    Ok(list.items.into_iter().find_map(|rs| {
        let owned = rs
            .metadata
            .owner_references
            .iter()
            .flatten()
            .any(|o| o.uid == uid);
        let current = rs.metadata.annotations.as_ref()?.get(REVISION_ANNOTATION)? == revision;
        if owned && current {
            rs.metadata.labels.as_ref()?.get("pod-template-hash").cloned()
        } else {
            None
        }
    }))
}

fn pod_snapshot(pod: &Pod, workload: &ObjectRef) -> PodSnapshot {
    let status = pod.status.clone().unwrap_or_default();
    let containers: Vec<_> = status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten())
        .collect();
    let restarts = containers
        .iter()
        .map(|c| u32::try_from(c.restart_count).unwrap_or(0))
        .sum();
    let waiting = containers.iter().find_map(|c| {
        let w = c.state.as_ref()?.waiting.as_ref()?;
        Some((w.reason.clone()?, w.message.clone().unwrap_or_default()))
    });
    let ready = status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    PodSnapshot {
        uid: pod.metadata.uid.clone().unwrap_or_default(),
        name: format!(
            "{}/{}",
            pod.metadata.namespace.as_deref().unwrap_or_default(),
            pod.metadata.name.as_deref().unwrap_or_default()
        ),
        workload: workload.clone(),
        ready,
        restarts,
        waiting,
    }
}

/// Reads every workload and the pods of its new revision.
pub async fn snapshot(client: &Client, workloads: &[(ObjectRef, WorkloadKind)]) -> Result<Snapshot, Failure> {
    let mut snap = Snapshot::default();
    for (object, kind) in workloads {
        let (w, new) = read_workload(client, object, *kind).await?;
        snap.workloads.push(w);
        let Some(new) = new else { continue };
        let ns = object.namespace.clone().unwrap_or_default();
        let selector = new
            .selector
            .iter()
            .cloned()
            .chain([format!("{}={}", new.key, new.value)])
            .collect::<Vec<_>>()
            .join(",");
        let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
        let pods = api
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| read_failure(&format!("pods of {object}"), e))?;
        snap.new_pods.extend(
            pods.items
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .map(|p| pod_snapshot(p, object)),
        );
    }
    Ok(snap)
}

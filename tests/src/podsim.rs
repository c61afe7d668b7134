//! The pod simulator: a stand-in for kubelets. It registers a Ready node, binds every
//! pending pod to it, drives each pod's status from the `sim.convoy.dev/behavior`
//! annotation on its template (see [`convoy_agent::sim::behavior`]), and finishes pod
//! deletions as a kubelet would (otherwise old pods stay Terminating forever). With the
//! real controllers this yields real Deployment, ReplicaSet, StatefulSet, DaemonSet and
//! Job status, `ProgressDeadlineExceeded` included. A Job's pod (owned by a Job) without
//! the annotation `succeed`s; `fail` makes it exit 1, so the job controller marks the
//! Job Complete or Failed as it would on a real cluster (Helm hook Jobs rely on it).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use convoy_agent::sim::behavior::{ANNOTATION, Behavior};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Binding, Node, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use tokio::task::{AbortHandle, JoinSet};

/// How long a crashed container waits before it restarts.
const CRASH_BACKOFF: Duration = Duration::from_secs(2);

/// A running simulator. Stops (and stops driving pods) on drop.
#[derive(Debug)]
pub struct PodSimulator {
    node: String,
    task: tokio::task::JoinHandle<()>,
    errors: Arc<Mutex<Vec<String>>>,
}

impl PodSimulator {
    /// Registers node `node` and starts binding and driving pods.
    pub async fn start(client: Client, node: &str) -> Result<Self, String> {
        register_node(&client, node).await?;
        let errors = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn(run(client, node.to_string(), errors.clone()));
        Ok(PodSimulator {
            node: node.to_string(),
            task,
            errors,
        })
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    /// Errors met while driving pods (API calls that failed), for diagnosis.
    pub fn errors(&self) -> Vec<String> {
        self.errors.lock().map(|e| e.clone()).unwrap_or_default()
    }
}

impl Drop for PodSimulator {
    fn drop(&mut self) {
        self.task.abort();
        if std::thread::panicking() {
            let errs = self.errors();
            if !errs.is_empty() {
                eprintln!(
                    "--- pod simulator ({}) errors ---\n{}",
                    self.node,
                    errs.join("\n")
                );
            }
        }
    }
}

async fn register_node(client: &Client, node: &str) -> Result<(), String> {
    let nodes: Api<Node> = Api::all(client.clone());
    let obj: Node = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": node,
            "labels": {"kubernetes.io/hostname": node, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}
        }
    }))
    .map_err(|e| e.to_string())?;
    nodes
        .create(&PostParams::default(), &obj)
        .await
        .map_err(|e| format!("registering node {node}: {e}"))?;
    // The TaintNodesByCondition admission plugin taints new nodes not-ready; no node
    // lifecycle controller runs here to lift it, so lift it as a kubelet's status would.
    nodes
        .patch(
            node,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"taints": []}})),
        )
        .await
        .map_err(|e| format!("untainting node {node}: {e}"))?;
    let now = now();
    let capacity = json!({"cpu": "64", "memory": "256Gi", "pods": "1000", "ephemeral-storage": "1Ti"});
    let status = json!({"status": {
        "capacity": capacity,
        "allocatable": capacity,
        "conditions": [{
            "type": "Ready", "status": "True", "reason": "KubeletReady", "message": "convoy pod simulator",
            "lastHeartbeatTime": now, "lastTransitionTime": now
        }],
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": node}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        "nodeInfo": {
            "machineID": "sim", "systemUUID": "sim", "bootID": "sim", "kernelVersion": "sim",
            "osImage": "convoy pod simulator", "containerRuntimeVersion": "sim://1", "kubeletVersion": "v1.20.2",
            "kubeProxyVersion": "v1.20.2", "operatingSystem": "linux", "architecture": "amd64"
        }
    }});
    nodes
        .patch_status(node, &PatchParams::default(), &Patch::Merge(status))
        .await
        .map_err(|e| format!("setting node {node} Ready: {e}"))?;
    Ok(())
}

fn now() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

async fn run(client: Client, node: String, errors: Arc<Mutex<Vec<String>>>) {
    let record = |e: String| {
        if let Ok(mut v) = errors.lock() {
            v.push(e);
        }
    };
    let pods: Api<Pod> = Api::all(client.clone());
    let mut drivers: HashMap<String, AbortHandle> = HashMap::new();
    let mut tasks = JoinSet::new();
    let ips = Arc::new(AtomicU32::new(2));
    let mut stream = watcher::watcher(pods, watcher::Config::default())
        .default_backoff()
        .boxed();
    while let Some(event) = stream.next().await {
        let pod = match event {
            Ok(Event::Apply(p) | Event::InitApply(p)) => p,
            Ok(Event::Delete(p)) => {
                if let Some(h) = drivers.remove(&p.uid().unwrap_or_default()) {
                    h.abort();
                }
                continue;
            }
            Ok(_) => continue,
            Err(e) => {
                record(format!("pod watch: {e}"));
                continue;
            }
        };
        let uid = pod.uid().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace().unwrap_or_default());
        let name = pod.name_any();
        let errs = errors.clone();
        if pod.metadata.deletion_timestamp.is_some() {
            if let Some(h) = drivers.remove(&uid) {
                h.abort();
            }
            // The containers are "stopped": finish the deletion as a kubelet does.
            tasks.spawn(async move {
                let dp = DeleteParams {
                    grace_period_seconds: Some(0),
                    ..DeleteParams::default()
                };
                if let Err(e) = api.delete(&name, &dp).await
                    && !is_not_found(&e)
                {
                    push(&errs, format!("deleting pod {name}: {e}"));
                }
            });
            continue;
        }
        let bound_to = pod.spec.as_ref().and_then(|s| s.node_name.clone());
        match bound_to {
            None => {
                let node = node.clone();
                tasks.spawn(async move {
                    if let Err(e) = bind(&api, &name, &node).await {
                        push(&errs, e);
                    }
                });
            }
            Some(n) if n == node && !drivers.contains_key(&uid) && is_new(&pod) => {
                let ip = ips.fetch_add(1, Ordering::Relaxed);
                let handle = tasks.spawn(async move {
                    if let Err(e) = drive(api, pod, ip).await {
                        push(&errs, e);
                    }
                });
                drivers.insert(uid, handle);
            }
            Some(_) => {}
        }
        // Reap finished tasks so the set does not grow without bound.
        while tasks.try_join_next().is_some() {}
    }
}

fn push(errors: &Mutex<Vec<String>>, e: String) {
    if let Ok(mut v) = errors.lock() {
        v.push(e);
    }
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// A pod nobody has started yet (no container statuses).
fn is_new(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .is_none_or(|c| c.is_empty())
}

async fn bind(api: &Api<Pod>, name: &str, node: &str) -> Result<(), String> {
    let binding = Binding {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            ..ObjectMeta::default()
        },
        target: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Node".into()),
            name: Some(node.to_string()),
            ..ObjectReference::default()
        },
    };
    match api
        .create_subresource::<Binding, Value>("binding", name, &PostParams::default(), &binding)
        .await
    {
        Ok(_) => Ok(()),
        // Already bound (a replayed event), or deleted meanwhile.
        Err(kube::Error::Api(s)) if matches!(s.code, 404 | 409) => Ok(()),
        Err(e) => Err(format!("binding pod {name}: {e}")),
    }
}

/// One container's status as a kubelet would report it.
#[derive(Clone, Copy)]
enum C<'a> {
    Running { ready: bool },
    Waiting { reason: &'a str, message: &'a str },
    Terminated { exit_code: i32, reason: &'a str },
}

struct PodDriver {
    api: Api<Pod>,
    name: String,
    containers: Vec<(String, String)>,
    ip: String,
    started: String,
    restarts: i32,
}

impl PodDriver {
    /// Writes the pod's status: `phase`, every container in state `c`.
    async fn set(&self, phase: &str, c: C<'_>) -> Result<(), kube::Error> {
        let t = now();
        let ready = matches!(c, C::Running { ready: true });
        let last_state = if self.restarts > 0 {
            json!({"terminated": {"exitCode": 1, "reason": "Error", "startedAt": self.started, "finishedAt": t}})
        } else {
            json!({})
        };
        let statuses: Vec<Value> = self
            .containers
            .iter()
            .map(|(name, image)| {
                let state = match c {
                    C::Running { .. } => json!({"running": {"startedAt": t}}),
                    C::Waiting { reason, message } => json!({"waiting": {"reason": reason, "message": message}}),
                    C::Terminated { exit_code, reason } => {
                        json!({"terminated": {"exitCode": exit_code, "reason": reason, "startedAt": self.started, "finishedAt": t}})
                    }
                };
                json!({
                    "name": name, "image": image, "imageID": format!("sim://{image}"),
                    "containerID": format!("sim://{}-{name}-{}", self.name, self.restarts),
                    "ready": ready, "started": matches!(c, C::Running { .. }),
                    "restartCount": self.restarts, "state": state, "lastState": last_state
                })
            })
            .collect();
        let cond = |ty: &str, ok: bool| json!({"type": ty, "status": if ok { "True" } else { "False" }, "lastTransitionTime": t});
        let status = json!({"status": {
            "phase": phase,
            "hostIP": "127.0.0.1",
            "podIP": self.ip,
            "podIPs": [{"ip": self.ip}],
            "startTime": self.started,
            "conditions": [cond("PodScheduled", true), cond("Initialized", true), cond("ContainersReady", ready), cond("Ready", ready)],
            "containerStatuses": statuses
        }});
        self.api
            .patch_status(&self.name, &PatchParams::default(), &Patch::Merge(status))
            .await
            .map(|_| ())
    }
}

/// Whether a Job controller created the pod (an owner reference of kind Job).
fn owned_by_job(pod: &Pod) -> bool {
    pod.owner_references().iter().any(|o| o.kind == "Job")
}

/// Plays a pod's behaviour until it settles (or forever, for looping behaviours).
async fn drive(api: Api<Pod>, pod: Pod, ip: u32) -> Result<(), String> {
    let name = pod.name_any();
    let spec = pod.spec.clone().unwrap_or_default();
    let containers: Vec<(String, String)> = spec
        .containers
        .iter()
        .map(|c| (c.name.clone(), c.image.clone().unwrap_or_default()))
        .collect();
    let image = containers.first().map(|c| c.1.clone()).unwrap_or_default();
    let restart_always = spec.restart_policy.as_deref().is_none_or(|p| p == "Always");
    let mut d = PodDriver {
        api,
        name: name.clone(),
        containers,
        ip: format!("10.244.{}.{}", (ip >> 8) & 0xff, ip & 0xff),
        started: now(),
        restarts: 0,
    };
    let sleep = tokio::time::sleep;
    let behavior = if owned_by_job(&pod) && !pod.annotations().contains_key(ANNOTATION) {
        Ok(Behavior::Succeed {
            after: Duration::from_secs(1),
        })
    } else {
        Behavior::from_annotations(pod.annotations().iter())
    };
    let result: Result<(), kube::Error> = async {
        match behavior {
            Err(e) => {
                let msg = e.to_string();
                d.set(
                    "Pending",
                    C::Waiting {
                        reason: "CreateContainerConfigError",
                        message: &msg,
                    },
                )
                .await?;
            }
            Ok(Behavior::Healthy { after }) => {
                d.set("Running", C::Running { ready: false }).await?;
                sleep(after).await;
                if restart_always {
                    d.set("Running", C::Running { ready: true }).await?;
                } else {
                    d.set(
                        "Succeeded",
                        C::Terminated {
                            exit_code: 0,
                            reason: "Completed",
                        },
                    )
                    .await?;
                }
            }
            Ok(Behavior::CrashLoop { after }) => loop {
                d.set("Running", C::Running { ready: false }).await?;
                sleep(after).await;
                d.restarts += 1;
                if spec.restart_policy.as_deref() == Some("Never") {
                    d.restarts -= 1;
                    d.set(
                        "Failed",
                        C::Terminated {
                            exit_code: 1,
                            reason: "Error",
                        },
                    )
                    .await?;
                    break;
                }
                let msg = format!(
                    "back-off 10s restarting failed container={} pod={name}",
                    d.containers[0].0
                );
                d.set(
                    "Running",
                    C::Waiting {
                        reason: "CrashLoopBackOff",
                        message: &msg,
                    },
                )
                .await?;
                sleep(CRASH_BACKOFF).await;
            },
            Ok(Behavior::Flapping { ready, after }) => loop {
                d.set("Running", C::Running { ready: false }).await?;
                sleep(ready).await;
                d.set("Running", C::Running { ready: true }).await?;
                sleep(after).await;
                d.restarts += 1;
                let msg = format!(
                    "back-off 10s restarting failed container={} pod={name}",
                    d.containers[0].0
                );
                d.set(
                    "Running",
                    C::Waiting {
                        reason: "CrashLoopBackOff",
                        message: &msg,
                    },
                )
                .await?;
                sleep(CRASH_BACKOFF).await;
            },
            Ok(Behavior::Succeed { after }) => {
                d.set("Running", C::Running { ready: false }).await?;
                sleep(after).await;
                d.set(
                    "Succeeded",
                    C::Terminated {
                        exit_code: 0,
                        reason: "Completed",
                    },
                )
                .await?;
            }
            Ok(Behavior::Fail { after }) => {
                d.set("Running", C::Running { ready: false }).await?;
                sleep(after).await;
                d.set(
                    "Failed",
                    C::Terminated {
                        exit_code: 1,
                        reason: "Error",
                    },
                )
                .await?;
            }
            Ok(Behavior::NeverReady) => d.set("Running", C::Running { ready: false }).await?,
            Ok(Behavior::ImagePullError) => {
                let msg = format!(
                    "rpc error: code = NotFound desc = failed to pull and unpack image \"{image}\": not found"
                );
                d.set(
                    "Pending",
                    C::Waiting {
                        reason: "ErrImagePull",
                        message: &msg,
                    },
                )
                .await?;
                sleep(Duration::from_secs(1)).await;
                let msg = format!("Back-off pulling image \"{image}\"");
                d.set(
                    "Pending",
                    C::Waiting {
                        reason: "ImagePullBackOff",
                        message: &msg,
                    },
                )
                .await?;
            }
            Ok(Behavior::ConfigError) => {
                let msg = "couldn't find key password in Secret (simulated)";
                d.set(
                    "Pending",
                    C::Waiting {
                        reason: "CreateContainerConfigError",
                        message: msg,
                    },
                )
                .await?;
            }
        }
        Ok(())
    }
    .await;
    match result {
        Ok(()) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(format!("driving pod {name}: {e}")),
    }
}

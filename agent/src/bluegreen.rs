//! In-cluster blue/green (`ApplyRevision.blue_green` and `SwitchSlot` in
//! `agent.proto`), the pure part: from a revision's render, the new slot and the live
//! slot, the objects to apply.
//!
//! - Each `apps/v1` Deployment `<name>` becomes `<name>-<slot>`, with
//!   `convoy.dev/slot: <slot>` added to its labels, selector and pod labels (replicas
//!   unchanged); the ConfigMaps and Secrets of the render its pod template names become
//!   `<name>-<slot>` copies and the copy refers to those (the canary's transform,
//!   [`crate::canary::copy_workloads`]).
//! - The un-suffixed originals of those ConfigMaps and Secrets are dropped from the
//!   render, unless another pod template of the render (a StatefulSet, DaemonSet, Job,
//!   CronJob, ReplicaSet or Pod, which are not copied) names them: then they are kept
//!   as rendered as well. Other references (a custom resource naming a ConfigMap) are
//!   not looked for.
//! - Each Service whose `spec.selector` is a non-empty subset of a Deployment's pod
//!   labels (same namespace) is a *slot Service*: `convoy.dev/slot: <live>` is added to
//!   its selector (no live slot: left as rendered); a `SwitchSlot` later points it at
//!   the new slot ([`select_slot`]).
//! - With `preview`, each slot Service also gets a copy `<name>-preview` selecting the
//!   new slot: type ClusterIP, without `clusterIP(s)`, node ports, `loadBalancerIP`,
//!   `externalTrafficPolicy`, `healthCheckNodePort` (nor other fields only valid for
//!   other types), so it never competes with the original for a fixed address or port.
//! - A HorizontalPodAutoscaler whose `scaleTargetRef` names one of the render's
//!   Deployments scales that Deployment's copy in the new slot.
//! - Everything else is applied as rendered.
//!
//! Manifests may hold secret values: no error here quotes an object's content.

// `Failure` is the Backend trait's error (the runtime sends it as is).
#![allow(clippy::result_large_err)]

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use crate::backend::{Failure, Manifest};
use crate::canary::{self, CopySpec};
use crate::kube::manifest::Object;

/// The label that marks a slot's objects (and pods), and that slot Services select.
pub const SLOT_LABEL: &str = "convoy.dev/slot";
pub const BLUE: &str = "blue";
pub const GREEN: &str = "green";
/// Appended to a slot Service's name for its preview copy.
pub const PREVIEW_SUFFIX: &str = "-preview";

/// The slot a new revision goes into: the other one than `live`, `blue` when none.
pub fn new_slot(live: Option<&str>) -> &'static str {
    match live {
        Some(BLUE) => GREEN,
        _ => BLUE,
    }
}

/// The objects of one blue/green revision.
#[derive(Debug, Clone)]
pub struct BlueGreenPlan {
    /// The slot the revision runs in.
    pub slot: String,
    /// Everything to apply, unplaced (namespace as rendered) and unlabelled as the
    /// release's.
    pub objects: Vec<Object>,
    /// The slot Services (names): those a `SwitchSlot` points at the new slot.
    pub services: Vec<String>,
}

/// Transforms `manifests` (placed in `namespace` where an object names none) into slot
/// `new_slot(live)`, the Services selecting `live`.
pub fn plan(
    manifests: &[Manifest],
    namespace: &str,
    live: Option<&str>,
    preview: bool,
) -> Result<BlueGreenPlan, Failure> {
    let rendered = canary::parse(manifests)?;
    let slot = new_slot(live);
    let copies = canary::copy_workloads(
        &rendered,
        namespace,
        &CopySpec {
            suffix: &format!("-{slot}"),
            label: (SLOT_LABEL, slot),
            annotation: None,
            replicas: None,
            what: "slot copy",
        },
    )?;
    let ns_of = |o: &Object| canary::placed_ns(o, namespace);
    // The pod labels of the render's Deployments, by namespace.
    let pod_labels: Vec<(String, Map<String, Value>)> = rendered
        .iter()
        .filter(|o| is_deployment(o))
        .map(|o| {
            let labels = o.body["spec"]["template"]["metadata"]["labels"]
                .as_object()
                .cloned()
                .unwrap_or_default();
            (ns_of(o), labels)
        })
        .collect();
    // The Deployments that become slot copies: (namespace, name).
    let deployments: BTreeSet<(String, String)> = rendered
        .iter()
        .filter(|o| is_deployment(o))
        .map(|o| (ns_of(o), o.name().to_string()))
        .collect();
    // What the objects that are not copied still name (namespace, kind, name).
    let mut still_named = BTreeSet::new();
    for o in rendered.iter().filter(|o| !is_deployment(o)) {
        if let Some(pod) = other_pod_spec(o) {
            for (kind, name) in canary::pod_refs(pod) {
                still_named.insert((ns_of(o), kind, name));
            }
        }
    }
    let mut objects = Vec::new();
    let mut services = Vec::new();
    let mut previews = Vec::new();
    for o in &rendered {
        if is_deployment(o) {
            continue;
        }
        let ns = ns_of(o);
        let copied_kind = match (o.api_version(), o.kind()) {
            ("v1", "ConfigMap") => Some("ConfigMap"),
            ("v1", "Secret") => Some("Secret"),
            _ => None,
        };
        if let Some(kind) = copied_kind
            && copies.copied.contains(&(kind, ns.clone(), o.name().to_string()))
            && !still_named.contains(&(ns.clone(), kind, o.name().to_string()))
        {
            continue;
        }
        if o.api_version() == "v1" && o.kind() == "Service" && selects_a_deployment(o, &ns, &pod_labels) {
            services.push(o.name().to_string());
            let mut body = o.body.clone();
            if let Some(live) = live {
                select_slot(&mut body, live);
            }
            objects.push(Object {
                source: o.source.clone(),
                body,
            });
            if preview {
                previews.push(preview_of(o, slot));
            }
            continue;
        }
        if let Some(body) = retargeted_autoscaler(o, &ns, slot, &deployments) {
            objects.push(Object {
                source: o.source.clone(),
                body,
            });
            continue;
        }
        objects.push(o.clone());
    }
    objects.extend(copies.objects);
    objects.extend(previews);
    Ok(BlueGreenPlan {
        slot: slot.to_string(),
        objects,
        services,
    })
}

/// A HorizontalPodAutoscaler of the render whose `scaleTargetRef` names one of its
/// Deployments, pointed at that Deployment's copy in the new slot (it would otherwise
/// scale an object that no longer exists); None for any other object. The previous
/// slot keeps the replicas it had until it is retired.
fn retargeted_autoscaler(
    o: &Object,
    ns: &str,
    slot: &str,
    deployments: &BTreeSet<(String, String)>,
) -> Option<Value> {
    if o.kind() != "HorizontalPodAutoscaler" || !o.api_version().starts_with("autoscaling/") {
        return None;
    }
    let target = &o.body["spec"]["scaleTargetRef"];
    let name = target["name"].as_str()?;
    let is_deployment =
        target["kind"] == "Deployment" && target["apiVersion"].as_str().is_none_or(|v| v == "apps/v1");
    if !is_deployment || !deployments.contains(&(ns.to_string(), name.to_string())) {
        return None;
    }
    let mut body = o.body.clone();
    body["spec"]["scaleTargetRef"]["name"] = Value::String(format!("{name}-{slot}"));
    Some(body)
}

/// Points a Service's selector at `slot`.
pub fn select_slot(service: &mut Value, slot: &str) {
    if let Some(selector) = canary::object_at(service, &["spec", "selector"]) {
        selector.insert(SLOT_LABEL.into(), slot.into());
    }
}

/// What a blue/green revision keeps (does not prune) of the revision it replaces,
/// whose objects are `objects` and whose kept objects still in the cluster are
/// `kept` (bodies as applied, namespaces placed): with a live slot, every one of them
/// labelled with it; without one, what the previous revision kept when it had slots
/// (the release's original objects, still serving), else its Deployments and the
/// ConfigMaps and Secrets they name (the release ran without slots).
pub fn to_keep<'a>(
    objects: &[&'a Value],
    kept: &[&'a Value],
    had_slots: bool,
    live: Option<&str>,
) -> Vec<&'a Value> {
    let mut out: Vec<&Value> = Vec::new();
    let mut seen = BTreeSet::new();
    let mut push = |b: &'a Value, out: &mut Vec<&'a Value>| {
        if seen.insert(identity(b)) {
            out.push(b);
        }
    };
    match live {
        Some(live) => {
            for b in objects.iter().chain(kept) {
                if b["metadata"]["labels"][SLOT_LABEL] == live {
                    push(b, &mut out);
                }
            }
        }
        None if had_slots => {
            for b in kept {
                push(b, &mut out);
            }
        }
        None => {
            let ns = |b: &Value| {
                b["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            };
            let mut named = BTreeSet::new();
            for b in objects {
                if b["apiVersion"] == "apps/v1" && b["kind"] == "Deployment" {
                    push(b, &mut out);
                    for (kind, name) in canary::pod_refs(&b["spec"]["template"]["spec"]) {
                        named.insert((ns(b), kind, name));
                    }
                }
            }
            for b in objects {
                let kind = match (b["apiVersion"].as_str(), b["kind"].as_str()) {
                    (Some("v1"), Some("ConfigMap")) => "ConfigMap",
                    (Some("v1"), Some("Secret")) => "Secret",
                    _ => continue,
                };
                let name = b["metadata"]["name"].as_str().unwrap_or_default().to_string();
                if named.contains(&(ns(b), kind, name)) {
                    push(b, &mut out);
                }
            }
        }
    }
    out
}

/// (apiVersion's group, kind, namespace, name) of a body.
fn identity(b: &Value) -> (String, String, String, String) {
    let api = b["apiVersion"].as_str().unwrap_or_default();
    let group = api.rsplit_once('/').map_or("", |(g, _)| g);
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    (
        group.to_string(),
        s(&b["kind"]),
        s(&b["metadata"]["namespace"]),
        s(&b["metadata"]["name"]),
    )
}

fn is_deployment(o: &Object) -> bool {
    o.api_version() == "apps/v1" && o.kind() == "Deployment"
}

/// The pod spec of a workload that is not copied (for the references it keeps).
fn other_pod_spec(o: &Object) -> Option<&Value> {
    let b = &o.body;
    let pod = match o.kind() {
        "Pod" => &b["spec"],
        "CronJob" => &b["spec"]["jobTemplate"]["spec"]["template"]["spec"],
        "StatefulSet" | "DaemonSet" | "Job" | "ReplicaSet" | "Deployment" => &b["spec"]["template"]["spec"],
        _ => return None,
    };
    pod.is_object().then_some(pod)
}

/// Whether `svc`'s selector is non-empty and a subset of some Deployment's pod labels
/// in its namespace.
fn selects_a_deployment(svc: &Object, ns: &str, pod_labels: &[(String, Map<String, Value>)]) -> bool {
    let Some(selector) = svc.body["spec"]["selector"].as_object() else {
        return false;
    };
    !selector.is_empty()
        && pod_labels
            .iter()
            .any(|(dns, labels)| dns == ns && selector.iter().all(|(k, v)| labels.get(k) == Some(v)))
}

/// The preview copy of a slot Service, selecting `slot`.
fn preview_of(svc: &Object, slot: &str) -> Object {
    let mut body = svc.body.clone();
    if let Some(meta) = canary::object_at(&mut body, &["metadata"]) {
        meta.insert("name".into(), format!("{}{PREVIEW_SUFFIX}", svc.name()).into());
        for server_set in [
            "uid",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "managedFields",
            "selfLink",
        ] {
            meta.remove(server_set);
        }
    }
    if let Some(labels) = canary::object_at(&mut body, &["metadata", "labels"]) {
        labels.insert(SLOT_LABEL.into(), slot.into());
    }
    if let Some(spec) = canary::object_at(&mut body, &["spec"]) {
        spec.insert("type".into(), "ClusterIP".into());
        for field in [
            "clusterIP",
            "clusterIPs",
            "loadBalancerIP",
            "loadBalancerSourceRanges",
            "loadBalancerClass",
            "allocateLoadBalancerNodePorts",
            "externalTrafficPolicy",
            "healthCheckNodePort",
            "externalIPs",
            "externalName",
        ] {
            spec.remove(field);
        }
        if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
            for port in ports.iter_mut().filter_map(Value::as_object_mut) {
                port.remove("nodePort");
            }
        }
    }
    select_slot(&mut body, slot);
    if let Some(m) = body.as_object_mut() {
        m.remove("status");
    }
    Object {
        source: format!("{} (preview copy)", svc.source),
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(content: &str) -> Manifest {
        Manifest {
            source: "app/templates/x.yaml".into(),
            content: content.into(),
        }
    }

    const RENDER: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: web}}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web, tier: front}}
    spec:
      volumes:
        - {name: conf, configMap: {name: web-conf}}
        - {name: tls, secret: {secretName: web-tls}}
        - {name: shared, configMap: {name: shared-conf}}
      containers:
        - name: app
          image: web:2
          envFrom: [{secretRef: {name: outside}}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: web-conf}
data: {a: new}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: shared-conf}
data: {s: x}
---
apiVersion: v1
kind: Secret
metadata: {name: web-tls}
stringData: {key: hunter2}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: unrelated}
data: {x: y}
---
apiVersion: v1
kind: Service
metadata: {name: web, labels: {app: web}}
spec:
  type: LoadBalancer
  clusterIP: 10.0.0.10
  clusterIPs: [10.0.0.10]
  loadBalancerIP: 1.2.3.4
  externalTrafficPolicy: Local
  healthCheckNodePort: 31000
  selector: {app: web}
  ports: [{port: 80, nodePort: 30080}]
---
apiVersion: v1
kind: Service
metadata: {name: db}
spec: {selector: {app: db}, ports: [{port: 5432}]}
---
apiVersion: v1
kind: Service
metadata: {name: headless-all}
spec: {clusterIP: None, ports: [{port: 1}]}
---
apiVersion: v1
kind: Service
metadata: {name: too-narrow}
spec: {selector: {app: web, tier: back}, ports: [{port: 1}]}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      volumes: [{name: c, configMap: {name: shared-conf}}]
      containers: [{name: db, image: db}]
"#;

    fn find<'a>(p: &'a BlueGreenPlan, kind: &str, name: &str) -> Option<&'a Object> {
        p.objects.iter().find(|o| o.kind() == kind && o.name() == name)
    }

    fn names(p: &BlueGreenPlan) -> Vec<(String, String)> {
        let mut v: Vec<_> = p
            .objects
            .iter()
            .map(|o| (o.kind().to_string(), o.name().to_string()))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn slots_alternate_starting_with_blue() {
        assert_eq!(new_slot(None), BLUE);
        assert_eq!(new_slot(Some(BLUE)), GREEN);
        assert_eq!(new_slot(Some(GREEN)), BLUE);
    }

    #[test]
    fn deployments_and_the_configuration_they_name_become_slot_copies() {
        let p = plan(&[m(RENDER)], "ns1", Some(BLUE), false).unwrap();
        assert_eq!(p.slot, GREEN);
        let want: Vec<(String, String)> = [
            ("ConfigMap", "shared-conf"),
            ("ConfigMap", "shared-conf-green"),
            ("ConfigMap", "unrelated"),
            ("ConfigMap", "web-conf-green"),
            ("Deployment", "web-green"),
            ("Secret", "web-tls-green"),
            ("Service", "db"),
            ("Service", "headless-all"),
            ("Service", "too-narrow"),
            ("Service", "web"),
            ("StatefulSet", "db"),
        ]
        .iter()
        .map(|(k, n)| (k.to_string(), n.to_string()))
        .collect();
        assert_eq!(names(&p), want);
        let d = &find(&p, "Deployment", "web-green").unwrap().body;
        assert_eq!(d["metadata"]["labels"][SLOT_LABEL], GREEN);
        assert_eq!(d["spec"]["selector"]["matchLabels"][SLOT_LABEL], GREEN);
        assert_eq!(d["spec"]["selector"]["matchLabels"]["app"], "web");
        assert_eq!(d["spec"]["template"]["metadata"]["labels"][SLOT_LABEL], GREEN);
        assert_eq!(d["spec"]["template"]["metadata"]["labels"]["tier"], "front");
        assert_eq!(d["spec"]["replicas"], 3, "replicas unchanged");
        assert!(d["metadata"]["annotations"].is_null(), "no annotation added");
        let pod = &d["spec"]["template"]["spec"];
        assert_eq!(pod["volumes"][0]["configMap"]["name"], "web-conf-green");
        assert_eq!(pod["volumes"][1]["secret"]["secretName"], "web-tls-green");
        assert_eq!(pod["volumes"][2]["configMap"]["name"], "shared-conf-green");
        assert_eq!(
            pod["containers"][0]["envFrom"][0]["secretRef"]["name"], "outside",
            "not in the render: left alone"
        );
        let cm = &find(&p, "ConfigMap", "web-conf-green").unwrap().body;
        assert_eq!(cm["metadata"]["labels"][SLOT_LABEL], GREEN);
        assert_eq!(cm["data"]["a"], "new");
    }

    #[test]
    fn slot_services_select_the_live_slot_and_others_are_untouched() {
        let p = plan(&[m(RENDER)], "ns1", Some(GREEN), false).unwrap();
        assert_eq!(p.slot, BLUE);
        assert_eq!(p.services, vec!["web".to_string()]);
        let web = &find(&p, "Service", "web").unwrap().body;
        assert_eq!(web["spec"]["selector"][SLOT_LABEL], GREEN);
        assert_eq!(web["spec"]["selector"]["app"], "web");
        assert_eq!(web["spec"]["type"], "LoadBalancer", "the original keeps its type");
        for unrelated in ["db", "headless-all", "too-narrow"] {
            let s = &find(&p, "Service", unrelated).unwrap().body;
            assert!(s["spec"]["selector"][SLOT_LABEL].is_null(), "{unrelated}");
        }
        let raw = canary::parse(&[m(RENDER)]).unwrap();
        for (kind, name) in [
            ("Service", "db"),
            ("StatefulSet", "db"),
            ("ConfigMap", "unrelated"),
        ] {
            let orig = raw.iter().find(|o| o.kind() == kind && o.name() == name).unwrap();
            assert_eq!(find(&p, kind, name).unwrap().body, orig.body, "{kind} {name}");
        }
    }

    #[test]
    fn without_a_live_slot_services_are_left_as_rendered_and_the_slot_is_blue() {
        let p = plan(&[m(RENDER)], "ns1", None, false).unwrap();
        assert_eq!(p.slot, BLUE);
        assert!(find(&p, "Deployment", "web-blue").is_some());
        let web = &find(&p, "Service", "web").unwrap().body;
        assert!(web["spec"]["selector"][SLOT_LABEL].is_null());
        assert_eq!(p.services, vec!["web".to_string()]);
    }

    #[test]
    fn the_preview_service_selects_the_new_slot_without_fixed_addresses_or_ports() {
        let p = plan(&[m(RENDER)], "ns1", Some(BLUE), true).unwrap();
        let pv = &find(&p, "Service", "web-preview").expect("a preview").body;
        let spec = &pv["spec"];
        assert_eq!(spec["type"], "ClusterIP");
        assert_eq!(spec["selector"][SLOT_LABEL], GREEN);
        assert_eq!(spec["selector"]["app"], "web");
        for gone in [
            "clusterIP",
            "clusterIPs",
            "loadBalancerIP",
            "externalTrafficPolicy",
            "healthCheckNodePort",
        ] {
            assert!(spec[gone].is_null(), "{gone}");
        }
        assert!(spec["ports"][0]["nodePort"].is_null());
        assert_eq!(spec["ports"][0]["port"], 80);
        // Only slot Services get a preview, and the original still selects blue.
        assert!(find(&p, "Service", "db-preview").is_none());
        assert_eq!(
            find(&p, "Service", "web").unwrap().body["spec"]["selector"][SLOT_LABEL],
            BLUE
        );
        assert_eq!(p.services, vec!["web".to_string()]);
    }

    #[test]
    fn switching_a_service_sets_its_slot() {
        let p = plan(&[m(RENDER)], "ns1", Some(BLUE), false).unwrap();
        let mut web = find(&p, "Service", "web").unwrap().body.clone();
        select_slot(&mut web, GREEN);
        assert_eq!(web["spec"]["selector"][SLOT_LABEL], GREEN);
        assert_eq!(web["spec"]["selector"]["app"], "web");
    }

    #[test]
    fn an_autoscaler_of_a_deployment_follows_the_new_slot() {
        let hpa = |target: &str| {
            m(&format!(
                "apiVersion: autoscaling/v2beta2\nkind: HorizontalPodAutoscaler\nmetadata: {{name: {target}}}\nspec:\n  scaleTargetRef: {{apiVersion: apps/v1, kind: Deployment, name: {target}}}\n  minReplicas: 1\n  maxReplicas: 5\n"
            ))
        };
        let render = vec![
            m(
                "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec: {containers: [{name: web, image: web:2}]}\n",
            ),
            hpa("web"),
            hpa("elsewhere"),
        ];
        let p = plan(&render, "shop", Some(BLUE), false).unwrap();
        let target = |name: &str| {
            find(&p, "HorizontalPodAutoscaler", name).unwrap().body["spec"]["scaleTargetRef"]["name"].clone()
        };
        assert_eq!(target("web"), "web-green");
        assert_eq!(target("elsewhere"), "elsewhere", "not a Deployment of the render");
    }

    #[test]
    fn a_render_without_deployments_is_applied_as_rendered() {
        let render = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: b}\n";
        let p = plan(&[m(render)], "ns1", Some(GREEN), true).unwrap();
        assert_eq!(names(&p), vec![("ConfigMap".to_string(), "c".to_string())]);
        assert!(p.services.is_empty());
    }

    #[test]
    fn secret_values_never_show_in_errors_or_debug() {
        let p = plan(&[m(RENDER)], "ns1", None, true).unwrap();
        assert!(!format!("{p:?}").contains("hunter2"));
        let bad = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {password: [hunter2\n";
        let err = plan(&[m(bad)], "ns1", None, false).unwrap_err();
        assert!(!err.message.contains("hunter2"), "{}", err.message);
        assert!(!format!("{err:?}").contains("hunter2"));
    }

    #[test]
    fn what_a_revision_keeps_of_the_one_it_replaces() {
        let v = |kind: &str, name: &str, slot: Option<&str>| {
            let api = if kind == "Deployment" { "apps/v1" } else { "v1" };
            let mut b = serde_json::json!({"apiVersion": api, "kind": kind, "metadata": {"name": name, "namespace": "ns1", "labels": {}}});
            if let Some(s) = slot {
                b["metadata"]["labels"][SLOT_LABEL] = s.into();
            }
            if kind == "Deployment" {
                b["spec"] = serde_json::json!({"template": {"spec": {"volumes": [{"name": "c", "configMap": {"name": "web-conf"}}]}}});
            }
            b
        };
        // The release ran without slots: its Deployments and what they name.
        let plain = [
            v("Deployment", "web", None),
            v("ConfigMap", "web-conf", None),
            v("ConfigMap", "other", None),
            v("Service", "web", None),
        ];
        let refs: Vec<&Value> = plain.iter().collect();
        let kept = to_keep(&refs, &[], false, None);
        let names: Vec<&str> = kept
            .iter()
            .map(|b| b["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, vec!["web", "web-conf"]);
        // A live slot: its objects, wherever the previous record has them.
        let blue_d = v("Deployment", "web-blue", Some(BLUE));
        let blue_c = v("ConfigMap", "web-conf-blue", Some(BLUE));
        let green_d = v("Deployment", "web-green", Some(GREEN));
        let svc = v("Service", "web", None);
        let kept = to_keep(&[&green_d, &svc], &[&blue_d, &blue_c], true, Some(BLUE));
        assert_eq!(kept.len(), 2);
        let kept = to_keep(&[&green_d, &svc], &[&blue_d], true, Some(GREEN));
        assert_eq!(kept, vec![&green_d]);
        // No live slot, but slots ran: what the previous revision kept.
        let kept = to_keep(&[&blue_d, &svc], &[&plain[0]], true, None);
        assert_eq!(kept, vec![&plain[0]]);
    }
}

//! One step of an in-cluster canary (`ApplyCanary` in `agent.proto`), as a pure
//! transform: from a revision's render and a weight, the canary objects to apply.
//!
//! For each `apps/v1` Deployment `<name>` of the render: a copy `<name>-canary` with
//! the label `convoy.dev/track: canary` added to its labels, its selector and its pod
//! labels (so the Services selecting the primary's pods select the canary's too, while
//! the primary's ReplicaSets do not claim the canary's pods: those are owned by the
//! canary's), annotated `convoy.dev/canary-of: <name>`, with `ceil(P * w / (100 - w))`
//! replicas, at least 1, for a primary of P replicas at w percent. A primary scaled to
//! 0 gets a canary of 0: a canary of 1 would then take all of the traffic, not w
//! percent of it.
//!
//! The ConfigMaps and Secrets of the render that a copied pod template names
//! (volumes, projected volume sources, `envFrom`, `env[].valueFrom`, in containers and
//! init containers) are copied as `<name>-canary` (labelled and annotated the same
//! way), and the copied template refers to the copies, so the canary runs the
//! revision's configuration while the primary keeps the live one. References to
//! ConfigMaps or Secrets that are not in the render are left as they are.
//!
//! StatefulSets, DaemonSets and every other kind are not copied: a StatefulSet copy
//! would claim its own volumes (volume claim templates) and a stable network identity
//! that the primary owns, and a DaemonSet copy would run a second pod on every node
//! (doubling it rather than taking a share). They keep running as the live revision has
//! them.
//!
//! Manifests may hold secret values: no error here quotes an object's content, only
//! sources and names.

// `Failure` is the Backend trait's error (the runtime sends it as is).
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use crate::backend::{Failure, FailureReason, Manifest};
use crate::kube::manifest::Object;

/// The label that marks a canary object (and its pods).
pub const TRACK_LABEL: &str = "convoy.dev/track";
/// [`TRACK_LABEL`]'s value on canary objects.
pub const CANARY_TRACK: &str = "canary";
/// Names, on a canary object, the render's object it copies.
pub const CANARY_OF_ANNOTATION: &str = "convoy.dev/canary-of";
/// Appended to the name of every copy.
pub const SUFFIX: &str = "-canary";

/// The objects of one canary step.
#[derive(Debug, Clone)]
pub struct CanaryPlan {
    /// The copies to apply: Deployments, then the ConfigMaps and Secrets they name.
    /// Unplaced (namespace as rendered) and unlabelled as the release's: the backend
    /// places and labels them as it does a revision's objects.
    pub objects: Vec<Object>,
}

/// The name of the canary copy of `name`.
pub fn canary_name(name: &str) -> String {
    format!("{name}{SUFFIX}")
}

/// `max(1, ceil(primary * weight / (100 - weight)))`, or 0 for a primary of 0.
/// `weight` must be 1 to 99 (see [`check_weight`]).
pub fn canary_replicas(primary: u64, weight: u32) -> u64 {
    if primary == 0 {
        return 0;
    }
    let w = u64::from(weight.clamp(1, 99));
    (primary.saturating_mul(w)).div_ceil(100 - w).max(1)
}

/// Refuses a weight outside 1..=99 (a coordinator bug: it validates the strategy).
pub fn check_weight(weight: u32) -> Result<(), Failure> {
    if (1..=99).contains(&weight) {
        Ok(())
    } else {
        Err(Failure::new(
            FailureReason::Internal,
            format!("a canary step's weight must be 1 to 99 percent, got {weight}"),
        ))
    }
}

/// Builds the canary objects of `manifests` (a revision's render, placed in
/// `namespace` where an object names none) at `weight` percent.
pub fn plan(manifests: &[Manifest], namespace: &str, weight: u32) -> Result<CanaryPlan, Failure> {
    check_weight(weight)?;
    let rendered = parse(manifests)?;
    let copies = copy_workloads(
        &rendered,
        namespace,
        &CopySpec {
            suffix: SUFFIX,
            label: (TRACK_LABEL, CANARY_TRACK),
            annotation: Some(CANARY_OF_ANNOTATION),
            replicas: Some(&|primary| canary_replicas(primary, weight)),
            what: "canary copy",
        },
    )?;
    if copies.objects.is_empty() {
        return Err(Failure::new(
            FailureReason::NoCanaryWorkload,
            "the render has no Deployment to run a canary of; in-cluster canary needs one",
        ));
    }
    Ok(CanaryPlan {
        objects: copies.objects,
    })
}

/// How [`copy_workloads`] copies: shared by the canary and blue/green
/// ([`crate::bluegreen`]).
pub(crate) struct CopySpec<'a> {
    /// Appended to every copy's name (`-canary`, `-blue`).
    pub suffix: &'a str,
    /// Added to the copies' labels, to the Deployments' selectors and pod labels.
    pub label: (&'a str, &'a str),
    /// Set on every copy to the name of what it copies.
    pub annotation: Option<&'a str>,
    /// A copied Deployment's replicas from the original's (None: unchanged).
    pub replicas: Option<&'a dyn Fn(u64) -> u64>,
    /// In the copies' sources (`canary copy`), for error messages.
    pub what: &'a str,
}

/// What [`copy_workloads`] made.
pub(crate) struct Copies {
    /// The Deployments' copies, then the copies of the ConfigMaps and Secrets their
    /// pod templates name.
    pub objects: Vec<Object>,
    /// The render's ConfigMaps and Secrets that were copied: (kind, namespace, name),
    /// the namespace as placed.
    pub copied: BTreeSet<(&'static str, String, String)>,
}

/// The namespace `o` lands in: its own, or `namespace`.
pub(crate) fn placed_ns(o: &Object, namespace: &str) -> String {
    o.namespace()
        .filter(|n| !n.is_empty())
        .unwrap_or(namespace)
        .to_string()
}

/// Copies every `apps/v1` Deployment of `rendered` (and the ConfigMaps and Secrets of
/// `rendered` its pod template names, rewriting the references) as `spec` says.
pub(crate) fn copy_workloads(
    rendered: &[Object],
    namespace: &str,
    spec: &CopySpec<'_>,
) -> Result<Copies, Failure> {
    let ns_of = |o: &Object| placed_ns(o, namespace);
    // The render's ConfigMaps and Secrets, by (namespace, name).
    let mut configs: BTreeMap<(String, String), &Object> = BTreeMap::new();
    let mut secrets: BTreeMap<(String, String), &Object> = BTreeMap::new();
    for o in rendered {
        if o.api_version() != "v1" {
            continue;
        }
        let key = (ns_of(o), o.name().to_string());
        match o.kind() {
            "ConfigMap" => {
                configs.insert(key, o);
            }
            "Secret" => {
                secrets.insert(key, o);
            }
            _ => {}
        }
    }
    let (label_key, label_value) = spec.label;
    let mut deployments = Vec::new();
    let mut used_configs = BTreeSet::new();
    let mut used_secrets = BTreeSet::new();
    for o in rendered
        .iter()
        .filter(|o| o.api_version() == "apps/v1" && o.kind() == "Deployment")
    {
        let ns = ns_of(o);
        let mut body = o.body.clone();
        if let Some(replicas) = spec.replicas {
            let primary = match body.pointer("/spec/replicas") {
                None | Some(Value::Null) => 1,
                Some(v) => v.as_u64().ok_or_else(|| {
                    Failure::new(
                        FailureReason::ApplyRefused,
                        format!(
                            "{} ({}): spec.replicas must be a whole number to run a {} of it",
                            o.object_ref(),
                            o.source,
                            spec.what
                        ),
                    )
                    .with_object(o.object_ref())
                })?,
            };
            if let Some(s) = object_at(&mut body, &["spec"]) {
                s.insert("replicas".into(), replicas(primary).into());
            }
        }
        copy_metadata(&mut body, o.name(), spec);
        for path in [
            &["spec", "selector", "matchLabels"][..],
            &["spec", "template", "metadata", "labels"][..],
        ] {
            if let Some(labels) = object_at(&mut body, path) {
                labels.insert(label_key.into(), label_value.into());
            }
        }
        if let Some(pod) = body.pointer_mut("/spec/template/spec") {
            let mut rewrite = |kind: RefKind, name: &mut Value| {
                let Some(n) = name.as_str() else { return };
                let key = (ns.clone(), n.to_string());
                let (known, used) = match kind {
                    RefKind::ConfigMap => (configs.contains_key(&key), &mut used_configs),
                    RefKind::Secret => (secrets.contains_key(&key), &mut used_secrets),
                };
                if known {
                    *name = Value::String(format!("{n}{}", spec.suffix));
                    used.insert(key);
                }
            };
            rewrite_refs(pod, &mut rewrite);
        }
        deployments.push(Object {
            source: format!("{} ({})", o.source, spec.what),
            body,
        });
    }
    let mut objects = deployments;
    let mut copied = BTreeSet::new();
    for (kind, used, all) in [
        ("ConfigMap", &used_configs, &configs),
        ("Secret", &used_secrets, &secrets),
    ] {
        for key in used {
            let o = all[key];
            let mut body = o.body.clone();
            copy_metadata(&mut body, o.name(), spec);
            objects.push(Object {
                source: format!("{} ({})", o.source, spec.what),
                body,
            });
            copied.insert((kind, key.0.clone(), key.1.clone()));
        }
    }
    Ok(Copies { objects, copied })
}

/// The ConfigMaps and Secrets (kind, name) a pod spec names.
pub(crate) fn pod_refs(pod: &Value) -> BTreeSet<(&'static str, String)> {
    let mut pod = pod.clone();
    let mut out = BTreeSet::new();
    rewrite_refs(&mut pod, &mut |kind, name| {
        if let Some(n) = name.as_str() {
            let kind = match kind {
                RefKind::ConfigMap => "ConfigMap",
                RefKind::Secret => "Secret",
            };
            out.insert((kind, n.to_string()));
        }
    });
    out
}

/// The render's objects. Unlike [`manifest::parse`], a document that does not parse
/// is named by its source, position and place only: the parser's message could quote
/// a value from it.
pub(crate) fn parse(manifests: &[Manifest]) -> Result<Vec<Object>, Failure> {
    let mut out = Vec::new();
    for m in manifests {
        for (i, doc) in serde_yaml::Deserializer::from_str(&m.content).enumerate() {
            let refuse = |what: String| {
                Failure::new(
                    FailureReason::ApplyRefused,
                    format!("{} (document {}): {what}", m.source, i + 1),
                )
            };
            let body = <Value as serde::Deserialize>::deserialize(doc).map_err(|e| {
                let at = e.location().map_or_else(String::new, |l| {
                    format!(" at line {} column {}", l.line(), l.column())
                });
                refuse(format!("not a valid YAML or JSON document{at}"))
            })?;
            if body.is_null() {
                continue;
            }
            if !body.is_object() {
                return Err(refuse("expected a Kubernetes object (a mapping)".into()));
            }
            let obj = Object {
                source: m.source.clone(),
                body,
            };
            for (field, v) in [
                ("apiVersion", obj.api_version()),
                ("kind", obj.kind()),
                ("metadata.name", obj.name()),
            ] {
                if v.is_empty() {
                    return Err(refuse(format!("missing {field}")));
                }
            }
            out.push(obj);
        }
    }
    Ok(out)
}

#[derive(Clone, Copy)]
enum RefKind {
    ConfigMap,
    Secret,
}

/// Renames a copy of `name`, labels it (and names what it copies) as `spec` says.
/// Drops what only the server sets.
fn copy_metadata(body: &mut Value, name: &str, spec: &CopySpec<'_>) {
    if let Some(meta) = object_at(body, &["metadata"]) {
        meta.insert("name".into(), format!("{name}{}", spec.suffix).into());
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
    if let Some(labels) = object_at(body, &["metadata", "labels"]) {
        labels.insert(spec.label.0.into(), spec.label.1.into());
    }
    if let Some(key) = spec.annotation
        && let Some(ann) = object_at(body, &["metadata", "annotations"])
    {
        ann.insert(key.into(), name.into());
    }
    if let Some(m) = body.as_object_mut() {
        m.remove("status");
    }
}

/// Calls `f` on every ConfigMap or Secret name a pod spec refers to.
fn rewrite_refs(pod: &mut Value, f: &mut impl FnMut(RefKind, &mut Value)) {
    for volume in array_mut(pod.get_mut("volumes")) {
        if let Some(n) = volume.pointer_mut("/configMap/name") {
            f(RefKind::ConfigMap, n);
        }
        if let Some(n) = volume.pointer_mut("/secret/secretName") {
            f(RefKind::Secret, n);
        }
        for source in array_mut(volume.pointer_mut("/projected/sources")) {
            if let Some(n) = source.pointer_mut("/configMap/name") {
                f(RefKind::ConfigMap, n);
            }
            if let Some(n) = source.pointer_mut("/secret/name") {
                f(RefKind::Secret, n);
            }
        }
    }
    for list in ["containers", "initContainers"] {
        for container in array_mut(pod.get_mut(list)) {
            for from in array_mut(container.get_mut("envFrom")) {
                if let Some(n) = from.pointer_mut("/configMapRef/name") {
                    f(RefKind::ConfigMap, n);
                }
                if let Some(n) = from.pointer_mut("/secretRef/name") {
                    f(RefKind::Secret, n);
                }
            }
            for env in array_mut(container.get_mut("env")) {
                if let Some(n) = env.pointer_mut("/valueFrom/configMapKeyRef/name") {
                    f(RefKind::ConfigMap, n);
                }
                if let Some(n) = env.pointer_mut("/valueFrom/secretKeyRef/name") {
                    f(RefKind::Secret, n);
                }
            }
        }
    }
}

fn array_mut(v: Option<&mut Value>) -> impl Iterator<Item = &mut Value> {
    v.and_then(Value::as_array_mut).into_iter().flatten()
}

/// The mapping at `path`, created where missing or null.
pub(crate) fn object_at<'a>(v: &'a mut Value, path: &[&str]) -> Option<&'a mut Map<String, Value>> {
    let mut cur = v;
    for key in path {
        let map = cur.as_object_mut()?;
        cur = map.entry(key.to_string()).or_insert(Value::Null);
        if cur.is_null() {
            *cur = Value::Object(Map::new());
        }
    }
    cur.as_object_mut()
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
  replicas: 4
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      volumes:
        - {name: conf, configMap: {name: web-conf}}
        - {name: tls, secret: {secretName: web-tls}}
        - {name: outside, configMap: {name: shared-conf}}
        - name: all
          projected:
            sources:
              - {configMap: {name: web-conf}}
              - {secret: {name: web-tls}}
              - {secret: {name: other-secret}}
      initContainers:
        - name: init
          image: busybox
          envFrom: [{secretRef: {name: web-env}}]
      containers:
        - name: app
          image: web:2
          envFrom: [{configMapRef: {name: web-conf}}, {configMapRef: {name: platform}}]
          env:
            - {name: A, valueFrom: {configMapKeyRef: {name: web-conf, key: a}}}
            - {name: B, valueFrom: {secretKeyRef: {name: web-tls, key: b}}}
            - {name: C, valueFrom: {secretKeyRef: {name: vault-made, key: c}}}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: web-conf}
data: {a: new}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: unrelated}
data: {x: y}
---
apiVersion: v1
kind: Secret
metadata: {name: web-tls}
stringData: {b: hunter2}
---
apiVersion: v1
kind: Secret
metadata: {name: web-env}
stringData: {e: f}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {selector: {app: web}, ports: [{port: 80}]}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec: {replicas: 1, selector: {matchLabels: {app: db}}, template: {metadata: {labels: {app: db}}, spec: {containers: [{name: db, image: db}]}}}
"#;

    fn find<'a>(p: &'a CanaryPlan, kind: &str, name: &str) -> Option<&'a Object> {
        p.objects.iter().find(|o| o.kind() == kind && o.name() == name)
    }

    #[test]
    fn replicas_hold_about_the_weight_of_the_pods() {
        assert_eq!(canary_replicas(4, 25), 2); // ceil(4*25/75) = ceil(1.33)
        assert_eq!(canary_replicas(4, 50), 4);
        assert_eq!(canary_replicas(4, 1), 1); // at least one
        assert_eq!(canary_replicas(3, 10), 1);
        assert_eq!(canary_replicas(10, 10), 2); // ceil(100/90)
        assert_eq!(canary_replicas(9, 10), 1); // 90/90 exactly
        assert_eq!(canary_replicas(1, 99), 99);
        assert_eq!(canary_replicas(0, 50), 0); // a primary scaled to 0 gets no canary pods
    }

    #[test]
    fn weights_outside_1_to_99_are_refused() {
        for bad in [0, 100, 250] {
            let err = plan(&[m(RENDER)], "ns1", bad).unwrap_err();
            assert_eq!(err.reason, FailureReason::Internal, "{bad}");
            assert!(err.message.contains("1 to 99"), "{}", err.message);
        }
        assert!(plan(&[m(RENDER)], "ns1", 1).is_ok());
        assert!(plan(&[m(RENDER)], "ns1", 99).is_ok());
    }

    #[test]
    fn deployments_are_copied_with_the_track_label_in_labels_selector_and_pods() {
        let p = plan(&[m(RENDER)], "ns1", 25).unwrap();
        let d = find(&p, "Deployment", "web-canary").expect("the canary Deployment");
        let b = &d.body;
        assert_eq!(b["metadata"]["labels"][TRACK_LABEL], "canary");
        assert_eq!(b["metadata"]["labels"]["app"], "web");
        assert_eq!(b["spec"]["selector"]["matchLabels"][TRACK_LABEL], "canary");
        assert_eq!(b["spec"]["selector"]["matchLabels"]["app"], "web");
        assert_eq!(b["spec"]["template"]["metadata"]["labels"][TRACK_LABEL], "canary");
        assert_eq!(b["spec"]["template"]["metadata"]["labels"]["app"], "web");
        assert_eq!(b["metadata"]["annotations"][CANARY_OF_ANNOTATION], "web");
        assert_eq!(b["spec"]["replicas"], 2);
        assert_eq!(b["spec"]["template"]["spec"]["containers"][0]["image"], "web:2");
    }

    #[test]
    fn only_deployments_and_the_configuration_they_name_are_copied() {
        let p = plan(&[m(RENDER)], "ns1", 25).unwrap();
        let mut names: Vec<(String, String)> = p
            .objects
            .iter()
            .map(|o| (o.kind().to_string(), o.name().to_string()))
            .collect();
        names.sort();
        let want: Vec<(String, String)> = [
            ("ConfigMap", "web-conf-canary"),
            ("Deployment", "web-canary"),
            ("Secret", "web-env-canary"),
            ("Secret", "web-tls-canary"),
        ]
        .iter()
        .map(|(k, n)| (k.to_string(), n.to_string()))
        .collect();
        assert_eq!(names, want);
        let cm = find(&p, "ConfigMap", "web-conf-canary").unwrap();
        assert_eq!(cm.body["data"]["a"], "new");
        assert_eq!(cm.body["metadata"]["labels"][TRACK_LABEL], "canary");
        assert_eq!(
            cm.body["metadata"]["annotations"][CANARY_OF_ANNOTATION],
            "web-conf"
        );
        let s = find(&p, "Secret", "web-tls-canary").unwrap();
        assert_eq!(s.body["stringData"]["b"], "hunter2");
    }

    #[test]
    fn references_to_copied_objects_are_rewritten_and_others_left_alone() {
        let p = plan(&[m(RENDER)], "ns1", 25).unwrap();
        let pod = &find(&p, "Deployment", "web-canary").unwrap().body["spec"]["template"]["spec"];
        assert_eq!(pod["volumes"][0]["configMap"]["name"], "web-conf-canary");
        assert_eq!(pod["volumes"][1]["secret"]["secretName"], "web-tls-canary");
        assert_eq!(pod["volumes"][2]["configMap"]["name"], "shared-conf");
        let sources = &pod["volumes"][3]["projected"]["sources"];
        assert_eq!(sources[0]["configMap"]["name"], "web-conf-canary");
        assert_eq!(sources[1]["secret"]["name"], "web-tls-canary");
        assert_eq!(sources[2]["secret"]["name"], "other-secret");
        assert_eq!(
            pod["initContainers"][0]["envFrom"][0]["secretRef"]["name"],
            "web-env-canary"
        );
        let c = &pod["containers"][0];
        assert_eq!(c["envFrom"][0]["configMapRef"]["name"], "web-conf-canary");
        assert_eq!(c["envFrom"][1]["configMapRef"]["name"], "platform");
        assert_eq!(
            c["env"][0]["valueFrom"]["configMapKeyRef"]["name"],
            "web-conf-canary"
        );
        assert_eq!(c["env"][1]["valueFrom"]["secretKeyRef"]["name"], "web-tls-canary");
        assert_eq!(c["env"][2]["valueFrom"]["secretKeyRef"]["name"], "vault-made");
    }

    #[test]
    fn a_configmap_in_another_namespace_is_not_the_one_referred_to() {
        let render = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n\
                      spec: {selector: {matchLabels: {app: web}}, template: {metadata: {labels: {app: web}}, spec: {\
                      volumes: [{name: c, configMap: {name: conf}}], containers: [{name: a, image: a}]}}}\n---\n\
                      apiVersion: v1\nkind: ConfigMap\nmetadata: {name: conf, namespace: elsewhere}\n";
        let p = plan(&[m(render)], "ns1", 50).unwrap();
        assert_eq!(p.objects.len(), 1);
        let pod = &p.objects[0].body["spec"]["template"]["spec"];
        assert_eq!(pod["volumes"][0]["configMap"]["name"], "conf");
        // No replicas: the primary has 1, so does the canary at 50 %.
        assert_eq!(p.objects[0].body["spec"]["replicas"], 1);
    }

    #[test]
    fn a_primary_scaled_to_zero_gets_a_canary_of_zero() {
        let render = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n\
                      spec: {replicas: 0, selector: {matchLabels: {app: web}}, template: {metadata: {labels: {app: web}}, spec: {containers: [{name: a, image: a}]}}}\n";
        let p = plan(&[m(render)], "ns1", 50).unwrap();
        assert_eq!(p.objects[0].body["spec"]["replicas"], 0);
    }

    #[test]
    fn a_render_without_a_deployment_is_refused_without_quoting_it() {
        let render = "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: db}\nspec: {replicas: 1}\n---\n\
                      apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {password: hunter2}\n---\n\
                      apiVersion: apps/v1beta1\nkind: Deployment\nmetadata: {name: old}\n";
        let err = plan(&[m(render)], "ns1", 10).unwrap_err();
        assert_eq!(err.reason, FailureReason::NoCanaryWorkload);
        assert!(err.message.contains("no Deployment"), "{}", err.message);
        assert!(!err.message.contains("hunter2"));
    }

    #[test]
    fn a_non_numeric_replica_count_is_refused_naming_the_object_only() {
        let render =
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {replicas: \"hunter2\"}\n";
        let err = plan(&[m(render)], "ns1", 10).unwrap_err();
        assert_eq!(err.reason, FailureReason::ApplyRefused);
        assert!(err.message.contains("web"), "{}", err.message);
        assert!(!err.message.contains("hunter2"), "{}", err.message);
        assert!(!format!("{:?}", plan(&[m(RENDER)], "ns1", 10).unwrap()).contains("hunter2"));
    }

    #[test]
    fn a_document_that_does_not_parse_is_named_not_quoted() {
        let bad = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {password: [hunter2\n";
        let err = plan(&[m(RENDER), m(bad)], "ns1", 10).unwrap_err();
        assert_eq!(err.reason, FailureReason::ApplyRefused);
        assert!(
            err.message
                .starts_with("app/templates/x.yaml (document 1): not a valid YAML"),
            "{}",
            err.message
        );
        assert!(!err.message.contains("hunter2"), "{}", err.message);
        let err = plan(&[m("kind: ConfigMap\nmetadata: {name: c}\n")], "ns1", 10).unwrap_err();
        assert!(err.message.contains("missing apiVersion"), "{}", err.message);
    }

    #[test]
    fn the_render_is_not_changed_and_statefulsets_are_not_copied() {
        let p = plan(&[m(RENDER)], "ns1", 25).unwrap();
        assert!(find(&p, "StatefulSet", "db-canary").is_none());
        assert!(find(&p, "Service", "web-canary").is_none());
        assert!(p.objects.iter().all(|o| o.name().ends_with(SUFFIX)));
    }
}

//! Rendered manifests to objects: YAML/JSON documents parsed, identified, placed in a
//! namespace, labelled as the release's, and (on request) stamped to force a roll.

use serde_json::{Map, Value};

use crate::backend::{Failure, FailureReason, Manifest, ObjectRef};

/// Labels and annotations convoy puts on everything it applies.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY: &str = "convoy";
pub const RELEASE_LABEL: &str = "convoy.dev/release";
pub const REVISION_ANNOTATION: &str = "convoy.dev/revision";

/// One object to apply, with where it came from.
#[derive(Clone)]
pub struct Object {
    /// The manifest's source (`app1/templates/deployment.yaml`), for errors.
    pub source: String,
    pub body: Value,
}

/// Names the object only: its body may hold secret values.
impl std::fmt::Debug for Object {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Object")
            .field("source", &self.source)
            .field("object", &self.object_ref().to_string())
            .finish()
    }
}

impl Object {
    pub fn api_version(&self) -> &str {
        self.body["apiVersion"].as_str().unwrap_or_default()
    }
    pub fn kind(&self) -> &str {
        self.body["kind"].as_str().unwrap_or_default()
    }
    pub fn name(&self) -> &str {
        self.body["metadata"]["name"].as_str().unwrap_or_default()
    }
    pub fn namespace(&self) -> Option<&str> {
        self.body["metadata"]["namespace"].as_str()
    }
    pub fn object_ref(&self) -> ObjectRef {
        ObjectRef {
            api_version: self.api_version().to_string(),
            kind: self.kind().to_string(),
            namespace: self.namespace().map(str::to_string),
            name: self.name().to_string(),
        }
    }
}

/// Parses every document of every manifest. Empty documents (a template that rendered
/// nothing) are skipped; a document without apiVersion, kind or metadata.name is refused
/// naming its source and position.
pub fn parse(manifests: &[Manifest]) -> Result<Vec<Object>, Failure> {
    let mut out = Vec::new();
    for m in manifests {
        for (i, doc) in serde_yaml::Deserializer::from_str(&m.content).enumerate() {
            let refuse = |what: String| {
                Failure::new(
                    FailureReason::ApplyRefused,
                    format!("{} (document {}): {what}", m.source, i + 1),
                )
            };
            let value = <Value as serde::Deserialize>::deserialize(doc)
                .map_err(|e| refuse(format!("not valid YAML/JSON: {e}")))?;
            if value.is_null() {
                continue;
            }
            if !value.is_object() {
                return Err(refuse("expected a Kubernetes object (a mapping)".into()));
            }
            let obj = Object {
                source: m.source.clone(),
                body: value,
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
            if obj.kind().ends_with("List") {
                return Err(refuse(format!(
                    "{} {}: lists are not applied, render their items as separate documents",
                    obj.kind(),
                    obj.name()
                )));
            }
            out.push(obj);
        }
    }
    Ok(out)
}

fn object_at<'a>(v: &'a mut Value, path: &[&str]) -> Option<&'a mut Map<String, Value>> {
    let mut cur = v;
    for key in path {
        let map = cur.as_object_mut()?;
        cur = map
            .entry(key.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    if cur.is_null() {
        *cur = Value::Object(Map::new());
    }
    cur.as_object_mut()
}

/// Places the object: namespaced kinds without a namespace go to `default_ns`;
/// cluster-scoped kinds lose any namespace.
pub fn place(obj: &mut Object, namespaced: bool, default_ns: &str) {
    let Some(meta) = object_at(&mut obj.body, &["metadata"]) else {
        return;
    };
    if namespaced {
        if meta
            .get("namespace")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            meta.insert("namespace".into(), Value::String(default_ns.to_string()));
        }
    } else {
        meta.remove("namespace");
    }
}

/// Fills `protocol: TCP` into Service ports and container ports that omit it, as the
/// API server would default it anyway. Server-side apply on 1.20 (before the fix of
/// kubernetes#101309) refuses such lists: `associative list with keys has an element
/// that omits key field "protocol"`, and charts routinely omit it. Built-in kinds only.
pub fn default_port_protocols(obj: &mut Object) {
    let (group, _) = obj.api_version().split_once('/').unwrap_or(("", ""));
    if !matches!(group, "" | "apps" | "batch") {
        return;
    }
    if obj.kind() == "Service" {
        fill_protocols(obj.body.pointer_mut("/spec/ports"));
    }
    fill_container_ports(&mut obj.body);
}

fn fill_protocols(ports: Option<&mut Value>) {
    for port in ports.and_then(Value::as_array_mut).into_iter().flatten() {
        if let Some(p) = port.as_object_mut() {
            p.entry("protocol").or_insert_with(|| Value::String("TCP".into()));
        }
    }
}

fn fill_container_ports(v: &mut Value) {
    let Some(map) = v.as_object_mut() else { return };
    for (key, child) in map.iter_mut() {
        if matches!(
            key.as_str(),
            "containers" | "initContainers" | "ephemeralContainers"
        ) {
            for c in child.as_array_mut().into_iter().flatten() {
                fill_protocols(c.get_mut("ports"));
            }
        } else if matches!(key.as_str(), "spec" | "template" | "jobTemplate") {
            fill_container_ports(child);
        }
    }
}

/// Labels the object as the release's and stamps the revision; with `force_roll`,
/// stamps the pod template too so the workload rolls even when nothing else changed.
pub fn stamp(obj: &mut Object, release: &str, revision: u64, force_roll: bool) {
    let kind = obj.kind().to_string();
    if let Some(labels) = object_at(&mut obj.body, &["metadata", "labels"]) {
        labels.insert(MANAGED_BY_LABEL.into(), MANAGED_BY.into());
        labels.insert(RELEASE_LABEL.into(), release.into());
    }
    if let Some(ann) = object_at(&mut obj.body, &["metadata", "annotations"]) {
        ann.insert(REVISION_ANNOTATION.into(), revision.to_string().into());
    }
    if force_roll
        && matches!(kind.as_str(), "Deployment" | "StatefulSet" | "DaemonSet")
        && let Some(ann) = object_at(&mut obj.body, &["spec", "template", "metadata", "annotations"])
    {
        ann.insert(REVISION_ANNOTATION.into(), revision.to_string().into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(content: &str) -> Manifest {
        Manifest {
            source: "app/templates/x.yaml".into(),
            content: content.into(),
        }
    }

    #[test]
    fn parses_multi_document_yaml_and_json_skipping_empty_documents() {
        let objs = parse(&[
            manifest("---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n# empty\n---\napiVersion: v1\nkind: Service\nmetadata: {name: b}\n"),
            manifest(r#"{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "c"}}"#),
        ])
        .unwrap();
        let kinds: Vec<&str> = objs.iter().map(Object::kind).collect();
        assert_eq!(kinds, ["ConfigMap", "Service", "Deployment"]);
    }

    #[test]
    fn refuses_objects_without_identity_naming_the_source() {
        let err = parse(&[manifest("apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n")]).unwrap_err();
        assert_eq!(err.reason, FailureReason::ApplyRefused);
        assert!(
            err.message
                .contains("app/templates/x.yaml (document 1): missing metadata.name"),
            "{}",
            err.message
        );
        let err = parse(&[manifest("a: [")]).unwrap_err();
        assert!(err.message.contains("not valid YAML/JSON"), "{}", err.message);
    }

    #[test]
    fn port_protocols_default_to_tcp_on_builtin_kinds_only() {
        let mut objs = parse(&[manifest(
            "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{port: 80}, {port: 53, protocol: UDP}]}\n---\n\
             apiVersion: batch/v1beta1\nkind: CronJob\nmetadata: {name: c}\nspec: {jobTemplate: {spec: {template: {spec: {containers: [{name: a, ports: [{containerPort: 8080}]}]}}}}}\n---\n\
             apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\nspec: {ports: [{port: 1}]}\n",
        )])
        .unwrap();
        for o in &mut objs {
            default_port_protocols(o);
        }
        assert_eq!(objs[0].body["spec"]["ports"][0]["protocol"], "TCP");
        assert_eq!(objs[0].body["spec"]["ports"][1]["protocol"], "UDP");
        let c = &objs[1].body["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["ports"][0]["protocol"], "TCP");
        assert!(objs[2].body["spec"]["ports"][0].get("protocol").is_none());
    }

    #[test]
    fn places_labels_and_force_rolls() {
        let mut objs = parse(&[manifest(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {template: {metadata: {labels: {app: web}}}}\n",
        )])
        .unwrap();
        let o = &mut objs[0];
        place(o, true, "ns1");
        stamp(o, "web.ns1", 7, true);
        assert_eq!(o.namespace(), Some("ns1"));
        assert_eq!(o.body["metadata"]["labels"][RELEASE_LABEL], "web.ns1");
        assert_eq!(o.body["metadata"]["labels"][MANAGED_BY_LABEL], "convoy");
        assert_eq!(o.body["metadata"]["annotations"][REVISION_ANNOTATION], "7");
        assert_eq!(
            o.body["spec"]["template"]["metadata"]["annotations"][REVISION_ANNOTATION],
            "7"
        );
        assert_eq!(o.body["spec"]["template"]["metadata"]["labels"]["app"], "web");

        let mut ns = parse(&[manifest(
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: x, namespace: y}\n",
        )])
        .unwrap();
        place(&mut ns[0], false, "ns1");
        stamp(&mut ns[0], "web.ns1", 7, true);
        assert_eq!(ns[0].namespace(), None);
        assert!(ns[0].body.get("spec").is_none());
    }
}

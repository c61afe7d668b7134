//! Manifests to objects for the simulated cluster: parsing (without ever echoing a
//! manifest's content, which may hold secrets), identity, ownership labels, apply
//! order and workload pod specs.

// `Failure` is the Backend trait's error (the runtime sends it as is); it is built
// once per failed command, never on a hot path, so its size does not matter.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use serde_json::{Map, Value};

use crate::backend::{ApplyRequest, Failure, FailureReason, ObjectRef};
use crate::sim::behavior::{ANNOTATION, Behavior};
use crate::sim::rollout::{PodSpec, WorkloadKind};

/// The label naming the release that owns an object.
pub const RELEASE_LABEL: &str = "convoy.dev/release";
/// The standard "managed by" label.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// The pod-template annotation `force_roll` stamps with the revision.
pub const REVISION_ANNOTATION: &str = "convoy.dev/revision";

/// The most replicas a simulated workload may ask for: a typo like `replicas: 30000`
/// should be refused, not simulated pod by pod.
const MAX_REPLICAS: u64 = 10_000;

/// The longest behaviour duration simulated: far beyond any progress deadline, and
/// small enough that timeline arithmetic cannot overflow.
const MAX_SIM_DURATION: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Kinds without a namespace (the common built-ins).
const CLUSTER_SCOPED: &[&str] = &[
    "Namespace",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleBinding",
    "PersistentVolume",
    "StorageClass",
    "PriorityClass",
    "IngressClass",
    "APIService",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
    "RuntimeClass",
    "PodSecurityPolicy",
    "CSIDriver",
];

/// One parsed object, ready to store.
#[derive(Debug, Clone)]
pub(crate) struct Parsed {
    pub object: ObjectRef,
    pub body: Value,
}

/// Apply order: the Kubernetes backend's (namespaces, CRDs, then Helm's kind order),
/// so both backends report objects in the same order.
pub(crate) fn tier(kind: &str) -> usize {
    crate::kube::order::tier(kind)
}

fn refused(source: &str, message: impl std::fmt::Display) -> Failure {
    Failure::new(FailureReason::ApplyRefused, format!("{source}: {message}"))
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_str()
}

/// Parses every manifest of `req` into an object with its identity, labels it as the
/// release's, and (with `force_roll`) stamps pod templates with the revision.
pub(crate) fn parse_request(req: &ApplyRequest) -> Result<Vec<Parsed>, Failure> {
    let mut docs = Vec::with_capacity(req.manifests.len());
    for m in &req.manifests {
        let body: Value = serde_yaml::from_str(&m.content).map_err(|e| {
            // serde's message could quote a value from the document: name the place only.
            let at = e.location().map_or_else(String::new, |l| {
                format!(" at line {} column {}", l.line(), l.column())
            });
            refused(&m.source, format_args!("not a valid YAML or JSON document{at}"))
        })?;
        docs.push((m.source.clone(), body));
    }
    parse_bodies(req, docs)
}

/// [`parse_request`] for bodies already parsed (a blue/green transform's), with their
/// sources.
pub(crate) fn parse_bodies(req: &ApplyRequest, docs: Vec<(String, Value)>) -> Result<Vec<Parsed>, Failure> {
    let mut seen: BTreeMap<ObjectRef, String> = BTreeMap::new();
    let mut out = Vec::with_capacity(docs.len());
    for (source, body) in docs {
        let parsed = place_and_label(body, &source, &req.namespace, &req.op.release)?;
        if let Some(first) = seen.insert(parsed.object.clone(), source.clone()) {
            let object = parsed.object;
            return Err(
                refused(&source, format_args!("{object} is also defined in {first}")).with_object(object),
            );
        }
        let Parsed { object, mut body } = parsed;
        if req.force_roll && WorkloadKind::from_kind(&object.kind).is_some() {
            let revision = Value::String(req.op.revision.to_string());
            let annotations = ["spec", "template", "metadata", "annotations"];
            set_in(&mut body, &annotations, REVISION_ANNOTATION, revision);
        }
        // Refuse a broken workload now, as an API server refuses an invalid object.
        pod_spec(&object, &body, true).map_err(|e| refused(&source, e).with_object(object.clone()))?;
        out.push(Parsed { object, body });
    }
    Ok(out)
}

/// Identifies one parsed document, places it in `namespace` (unless its kind is
/// cluster-scoped or it names its own) and labels it as `release`'s: what apply and
/// hooks share.
pub(crate) fn place_and_label(
    mut body: Value,
    source: &str,
    namespace: &str,
    release: &str,
) -> Result<Parsed, Failure> {
    if !body.is_object() {
        return Err(refused(
            source,
            "expected one object (a mapping with apiVersion, kind and metadata)",
        ));
    }
    let field = |path: &[&str]| -> Result<String, Failure> {
        str_at(&body, path)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .ok_or_else(|| refused(source, format_args!("missing or empty `{}`", path.join("."))))
    };
    let api_version = field(&["apiVersion"])?;
    let kind = field(&["kind"])?;
    let name = field(&["metadata", "name"])?;
    let namespace = if CLUSTER_SCOPED.contains(&kind.as_str()) {
        None
    } else {
        Some(
            str_at(&body, &["metadata", "namespace"])
                .unwrap_or(namespace)
                .to_string(),
        )
    };
    let object = ObjectRef {
        api_version,
        kind,
        namespace,
        name,
    };
    if let Some(ns) = &object.namespace {
        set_in(&mut body, &["metadata"], "namespace", Value::String(ns.clone()));
    }
    let labels = ["metadata", "labels"];
    set_in(
        &mut body,
        &labels,
        RELEASE_LABEL,
        Value::String(release.to_string()),
    );
    set_in(
        &mut body,
        &labels,
        MANAGED_BY_LABEL,
        Value::String("convoy".into()),
    );
    Ok(Parsed { object, body })
}

/// Sets `key` in the mapping at `path`, creating (or replacing non-mapping) levels.
fn set_in(v: &mut Value, path: &[&str], key: &str, value: Value) {
    if !v.is_object() {
        *v = Value::Object(Map::new());
    }
    if let Value::Object(m) = v {
        match path.split_first() {
            None => {
                m.insert(key.to_string(), value);
            }
            Some((first, rest)) => {
                set_in(m.entry(*first).or_insert(Value::Null), rest, key, value);
            }
        }
    }
}

/// The pod spec of a workload (None for other kinds), refusing what a cluster would
/// (a bad behaviour annotation, negative or huge replica counts). `created`: the
/// workload is new, so a Deployment starts every pod at once.
pub(crate) fn pod_spec(object: &ObjectRef, body: &Value, created: bool) -> Result<Option<PodSpec>, String> {
    let Some(kind) = WorkloadKind::from_kind(&object.kind) else {
        return Ok(None);
    };
    let spec = body.get("spec");
    let template = spec.and_then(|s| s.get("template"));
    let annotations = template
        .and_then(|t| t.get("metadata"))
        .and_then(|m| m.get("annotations"))
        .and_then(Value::as_object);
    let behavior = match annotations.and_then(|a| a.get(ANNOTATION)) {
        None => Behavior::default(),
        Some(Value::String(v)) => Behavior::parse(v).map_err(|e| format!("{object}: {e}"))?,
        Some(_) => return Err(format!("{object}: annotation {ANNOTATION} must be a string")),
    };
    let durations = match behavior {
        Behavior::Healthy { after }
        | Behavior::CrashLoop { after }
        | Behavior::Succeed { after }
        | Behavior::Fail { after } => vec![after],
        Behavior::Flapping { ready, after } => vec![ready, after],
        _ => Vec::new(),
    };
    if durations.iter().any(|d| *d > MAX_SIM_DURATION) {
        return Err(format!(
            "{object}: annotation {ANNOTATION}: durations above {}h are not simulated",
            MAX_SIM_DURATION.as_secs() / 3600
        ));
    }
    let count = |key: &str, default: u64| -> Result<u32, String> {
        match spec.and_then(|s| s.get(key)) {
            None | Some(Value::Null) => Ok(default as u32),
            Some(v) => match v.as_u64() {
                Some(n) if n <= MAX_REPLICAS => Ok(n as u32),
                _ => Err(format!(
                    "{object}: `spec.{key}` must be a whole number from 0 to {MAX_REPLICAS}"
                )),
            },
        }
    };
    let (desired, batch) = match kind {
        WorkloadKind::Deployment => {
            let n = count("replicas", 1)?;
            (n, if created { n } else { n.div_ceil(4) })
        }
        WorkloadKind::StatefulSet => (count("replicas", 1)?, 1),
        WorkloadKind::DaemonSet => (1, 1),
        WorkloadKind::Job => {
            let completions = count("completions", 1)?;
            (completions, count("parallelism", 1)?.min(completions))
        }
    };
    let pod = template.and_then(|t| t.get("spec"));
    let container = pod.and_then(|p| p.get("containers")).and_then(|c| c.get(0));
    let text = |key: &str| {
        container
            .and_then(|c| c.get(key))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let restart = pod
        .and_then(|p| p.get("restartPolicy"))
        .and_then(Value::as_str)
        .unwrap_or("Never");
    Ok(Some(PodSpec {
        kind,
        behavior,
        desired,
        batch: batch.max(1),
        container: text("name"),
        image: text("image"),
        job_never_restarts: restart == "Never",
    }))
}

/// A short, stable-within-a-process hash of a pod template, as the Deployment
/// controller puts in pod names.
pub(crate) fn template_hash(body: &Value) -> String {
    let mut h = DefaultHasher::new();
    body.get("spec")
        .and_then(|s| s.get("template"))
        .map(Value::to_string)
        .unwrap_or_default()
        .hash(&mut h);
    format!("{:08x}", h.finish() as u32)
}

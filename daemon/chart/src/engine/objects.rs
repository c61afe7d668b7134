//! The objects templates see besides `.Values`: `.Files`, `.Capabilities`, `.Release`,
//! and the field/method walking that Go's reflection does for them.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine as _;
use gotmpl::Value;

use super::convert::{map_of, s};
use crate::chart::ChartFile;
use crate::glob::{Dialect, matches};

/// `.Files`: a map from path to content, like Helm's `map[string][]byte`. Templates are
/// not part of it, as in Helm.
pub fn files_object(files: &[ChartFile]) -> Value {
    let m: BTreeMap<Arc<str>, Value> = files
        .iter()
        .map(|f| {
            (
                Arc::from(f.name.as_str()),
                Value::String(Arc::from(String::from_utf8_lossy(&f.data).as_ref())),
            )
        })
        .collect();
    Value::Map(Arc::new(m))
}

/// Kubernetes version facts for `.Capabilities.KubeVersion`.
#[derive(Debug, Clone)]
pub struct KubeVersion {
    /// `v1.20.0`
    pub version: String,
    /// `1`
    pub major: String,
    /// `20`
    pub minor: String,
}

impl KubeVersion {
    /// Parses `1.20`, `v1.20.3`, `1.20.0-gke.1` the way Helm's `--kube-version` does.
    pub fn parse(v: &str) -> Option<KubeVersion> {
        let parsed = crate::metadata::parse_lenient_version(v.trim())?;
        Some(KubeVersion {
            version: format!("v{parsed}"),
            major: parsed.major.to_string(),
            minor: parsed.minor.to_string(),
        })
    }
}

/// The API group/versions `helm template` reports without a cluster (client-go's scheme
/// plus apiextensions), so `.Capabilities.APIVersions.Has "apps/v1"` is true offline.
pub const DEFAULT_API_VERSIONS: &[&str] = &[
    "v1",
    "admissionregistration.k8s.io/v1",
    "admissionregistration.k8s.io/v1beta1",
    "apiextensions.k8s.io/v1",
    "apiextensions.k8s.io/v1beta1",
    "apps/v1",
    "apps/v1beta1",
    "apps/v1beta2",
    "authentication.k8s.io/v1",
    "authentication.k8s.io/v1beta1",
    "authorization.k8s.io/v1",
    "authorization.k8s.io/v1beta1",
    "autoscaling/v1",
    "autoscaling/v2",
    "autoscaling/v2beta1",
    "autoscaling/v2beta2",
    "batch/v1",
    "batch/v1beta1",
    "certificates.k8s.io/v1",
    "certificates.k8s.io/v1beta1",
    "coordination.k8s.io/v1",
    "coordination.k8s.io/v1beta1",
    "discovery.k8s.io/v1",
    "discovery.k8s.io/v1beta1",
    "events.k8s.io/v1",
    "events.k8s.io/v1beta1",
    "extensions/v1beta1",
    "flowcontrol.apiserver.k8s.io/v1",
    "flowcontrol.apiserver.k8s.io/v1beta1",
    "networking.k8s.io/v1",
    "networking.k8s.io/v1beta1",
    "node.k8s.io/v1",
    "node.k8s.io/v1beta1",
    "policy/v1",
    "policy/v1beta1",
    "rbac.authorization.k8s.io/v1",
    "rbac.authorization.k8s.io/v1beta1",
    "scheduling.k8s.io/v1",
    "scheduling.k8s.io/v1beta1",
    "storage.k8s.io/v1",
    "storage.k8s.io/v1beta1",
];

/// `.Capabilities`: `api_versions` after Helm's default list when `with_defaults`, else
/// `api_versions` alone (a live cluster's list).
pub fn capabilities_object(kube: &KubeVersion, api_versions: &[String], with_defaults: bool) -> Value {
    let defaults = if with_defaults { DEFAULT_API_VERSIONS } else { &[] };
    let apis: Vec<Value> = defaults
        .iter()
        .map(|a| s(a))
        .chain(api_versions.iter().map(|a| s(a)))
        .collect();
    map_of([
        (
            "KubeVersion",
            map_of([
                ("Version", s(&kube.version)),
                ("Major", s(&kube.major)),
                ("Minor", s(&kube.minor)),
                ("GitVersion", s(&kube.version)),
            ]),
        ),
        ("APIVersions", Value::List(apis.into())),
        (
            "HelmVersion",
            map_of([
                ("Version", s("v3.21.4")),
                ("GitCommit", s("")),
                ("GitTreeState", s("")),
                ("GoVersion", s("")),
            ]),
        ),
    ])
}

/// Go's reflection over our objects: field access, plus the methods Helm's objects have.
/// Returns `Err(message)` with Go's wording.
pub fn walk(receiver: Value, fields: &[String], args: &[Value]) -> Result<Value, String> {
    let mut cur = receiver;
    for (i, field) in fields.iter().enumerate() {
        let last = i + 1 == fields.len();
        if last && !args.is_empty() {
            return call_method(&cur, field, args);
        }
        cur = match &cur {
            Value::Map(m) => match m.get(field.as_str()) {
                Some(v) => v.clone(),
                None => zero_arg_method(&cur, field).unwrap_or(Value::Nil),
            },
            Value::Nil => return Err(format!("nil pointer evaluating interface {{}}.{field}")),
            other => return Err(format!("can't evaluate field {field} in type {}", go_type(other))),
        };
    }
    if fields.is_empty() && !args.is_empty() {
        return Err("can't give argument to non-function".to_string());
    }
    Ok(cur)
}

fn go_type(v: &Value) -> &'static str {
    match v {
        Value::Bool(_) => "bool",
        Value::Int(_) => "int",
        Value::Uint(_) => "uint",
        Value::Float(_) => "float64",
        Value::String(_) => "string",
        Value::List(_) => "[]interface {}",
        _ => "interface {}",
    }
}

fn zero_arg_method(recv: &Value, name: &str) -> Option<Value> {
    let Value::Map(m) = recv else { return None };
    match name {
        "AsConfig" => Some(s(&files_yaml(m.iter().map(|(k, v)| (base(k), str_of(v)))))),
        "AsSecrets" => Some(s(&files_yaml(m.iter().map(|(k, v)| {
            (
                base(k),
                base64::engine::general_purpose::STANDARD.encode(str_of(v)),
            )
        })))),
        _ => None,
    }
}

fn call_method(recv: &Value, name: &str, args: &[Value]) -> Result<Value, String> {
    let arg = |i: usize| -> Result<String, String> {
        match args.get(i) {
            Some(Value::String(x)) => Ok(x.to_string()),
            Some(other) => Err(format!(
                "wrong type for value; expected string; got {}",
                go_type(other)
            )),
            None => Err(format!(
                "wrong number of args for {name}: want 1 got {}",
                args.len()
            )),
        }
    };
    match (recv, name) {
        (Value::Map(m), "Get" | "GetBytes") => {
            let p = arg(0)?;
            Ok(m.get(p.as_str()).map(|v| s(&str_of(v))).unwrap_or_else(|| s("")))
        }
        (Value::Map(m), "Glob") => {
            let pattern = arg(0)?;
            let hits: BTreeMap<Arc<str>, Value> = m
                .iter()
                .filter(|(k, _)| matches(&pattern, k, Dialect::Gobwas))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            Ok(Value::Map(Arc::new(hits)))
        }
        (Value::Map(m), "Lines") => {
            let p = arg(0)?;
            let Some(v) = m.get(p.as_str()) else {
                return Ok(Value::List(Vec::new().into()));
            };
            let mut text = str_of(v);
            if text.ends_with('\n') {
                text.pop();
            }
            Ok(Value::List(text.split('\n').map(s).collect::<Vec<_>>().into()))
        }
        (Value::List(items), "Has") => {
            let want = arg(0)?;
            Ok(Value::Bool(
                items
                    .iter()
                    .any(|i| matches!(i, Value::String(x) if **x == *want)),
            ))
        }
        (Value::Nil, _) => Err(format!("nil pointer evaluating interface {{}}.{name}")),
        _ => Err(format!("{name} is not a method but has arguments")),
    }
}

fn base(k: &str) -> String {
    k.rsplit('/').next().unwrap_or(k).to_string()
}

fn str_of(v: &Value) -> String {
    match v {
        Value::String(x) => x.to_string(),
        other => crate::funcs::go_string(other),
    }
}

/// Helm's `toYAML` of a `map[string]string` (keys sorted, trailing newline trimmed).
fn files_yaml(entries: impl Iterator<Item = (String, String)>) -> String {
    let m: BTreeMap<Arc<str>, Value> = entries.map(|(k, v)| (Arc::from(k.as_str()), s(&v))).collect();
    if m.is_empty() {
        return "{}".to_string();
    }
    match crate::funcs::to_yaml_string(&Value::Map(Arc::new(m))) {
        Ok(y) => y.trim_end_matches('\n').to_string(),
        Err(_) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files() -> Value {
        files_object(&[
            ChartFile {
                name: "config/a.conf".into(),
                data: b"x=1\ny=2\n".to_vec(),
            },
            ChartFile {
                name: "config/b.txt".into(),
                data: b"hello".to_vec(),
            },
        ])
    }

    #[test]
    fn files_methods() {
        let f = files();
        let got = walk(f.clone(), &["Get".into()], &[s("config/b.txt")]).unwrap();
        assert_eq!(got, s("hello"));
        assert_eq!(walk(f.clone(), &["Get".into()], &[s("nope")]).unwrap(), s(""));
        let lines = walk(f.clone(), &["Lines".into()], &[s("config/a.conf")]).unwrap();
        assert_eq!(lines, Value::List(vec![s("x=1"), s("y=2")].into()));
        let glob = walk(f.clone(), &["Glob".into()], &[s("config/*.conf")]).unwrap();
        let cfg = walk(glob, &["AsConfig".into()], &[]).unwrap();
        assert_eq!(cfg, s("a.conf: |\n  x=1\n  y=2"));
        let sec = walk(f, &["AsSecrets".into()], &[]).unwrap();
        assert!(
            matches!(&sec, Value::String(x) if x.contains("b.txt: aGVsbG8=")),
            "{sec:?}"
        );
    }

    #[test]
    fn go_errors_for_bad_fields() {
        let v = map_of([("a", Value::Nil), ("s", s("x"))]);
        assert_eq!(
            walk(v.clone(), &["a".into(), "b".into()], &[]).unwrap_err(),
            "nil pointer evaluating interface {}.b"
        );
        assert_eq!(walk(v.clone(), &["missing".into()], &[]).unwrap(), Value::Nil);
        assert_eq!(
            walk(v, &["s".into(), "b".into()], &[]).unwrap_err(),
            "can't evaluate field b in type string"
        );
    }

    #[test]
    fn capabilities() {
        let kv = KubeVersion::parse("1.16.0").unwrap();
        assert_eq!(
            (kv.version.as_str(), kv.major.as_str(), kv.minor.as_str()),
            ("v1.16.0", "1", "16")
        );
        let caps = capabilities_object(&kv, &["helm.k8s.io/test".into()], true);
        assert_eq!(
            walk(
                caps.clone(),
                &["APIVersions".into(), "Has".into()],
                &[s("apps/v1")]
            )
            .unwrap(),
            Value::Bool(true)
        );
        assert_eq!(
            walk(
                caps,
                &["APIVersions".into(), "Has".into()],
                &[s("helm.k8s.io/test")]
            )
            .unwrap(),
            Value::Bool(true)
        );
    }

    /// A cluster's own list replaces the defaults; `Has` takes its `group/version/Kind`
    /// entries as well as its `group/version` ones.
    #[test]
    fn capabilities_of_a_cluster() {
        let kv = KubeVersion::parse("v1.20.2").unwrap();
        let cluster = [
            "v1",
            "v1/Pod",
            "policy/v1beta1",
            "policy/v1beta1/PodDisruptionBudget",
        ];
        let cluster: Vec<String> = cluster.iter().map(|a| a.to_string()).collect();
        let caps = capabilities_object(&kv, &cluster, false);
        let has = |what: &str| walk(caps.clone(), &["APIVersions".into(), "Has".into()], &[s(what)]).unwrap();
        assert_eq!(has("policy/v1beta1/PodDisruptionBudget"), Value::Bool(true));
        assert_eq!(has("v1/Pod"), Value::Bool(true));
        assert_eq!(
            has("policy/v1"),
            Value::Bool(false),
            "a default the cluster lacks"
        );
        assert_eq!(has("apps/v1"), Value::Bool(false));
    }
}

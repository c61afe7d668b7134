//! The objects templates see besides `.Values`: `.Files`, `.Capabilities`, `.Release`,
//! and the field/method walking that Go's reflection does for them.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

use base64::Engine as _;

use crate::tmpl::{Error, Object, Result as TResult, Value};

use super::convert::{map_of, s};
use crate::chart::ChartFile;
use crate::glob::{Dialect, matches};

/// `.Files`: Helm's `files` type, a `map[string][]byte` with methods. Templates are not
/// part of it, as in Helm.
pub fn files_object(files: &[ChartFile]) -> Value {
    let m: BTreeMap<Arc<str>, Arc<str>> = files
        .iter()
        .map(|f| {
            (
                Arc::from(f.name.as_str()),
                Arc::from(String::from_utf8_lossy(&f.data).as_ref()),
            )
        })
        .collect();
    Value::Object(Rc::new(Files(m)))
}

/// Helm's `files`: path -> content.
struct Files(BTreeMap<Arc<str>, Arc<str>>);

impl Object for Files {
    fn type_name(&self) -> &'static str {
        "engine.files"
    }

    fn field(&self, name: &str) -> Option<TResult<Value>> {
        match name {
            "AsConfig" => Some(Ok(s(&files_yaml(
                self.0.iter().map(|(k, v)| (base(k), v.to_string())),
            )))),
            "AsSecrets" => Some(Ok(s(&files_yaml(self.0.iter().map(|(k, v)| {
                (
                    base(k),
                    base64::engine::general_purpose::STANDARD.encode(v.as_bytes()),
                )
            }))))),
            _ => None,
        }
    }

    fn method(&self, name: &str, args: &[Value]) -> Option<TResult<Value>> {
        let arg = |i: usize| -> TResult<String> {
            match args.get(i) {
                Some(Value::String(x)) => Ok(x.to_string()),
                Some(other) => Err(Error::Exec(format!(
                    "wrong type for value; expected string; got {}",
                    other.type_name()
                ))),
                None => Err(Error::Exec(format!(
                    "wrong number of args for {name}: want 1 got {}",
                    args.len()
                ))),
            }
        };
        Some(match name {
            "Get" | "GetBytes" => arg(0).map(|p| s(self.0.get(p.as_str()).map(|v| &**v).unwrap_or(""))),
            "Glob" => arg(0).map(|pattern| {
                let hits = self
                    .0
                    .iter()
                    .filter(|(k, _)| matches(&pattern, k, Dialect::Gobwas))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                Value::Object(Rc::new(Files(hits)))
            }),
            "Lines" => arg(0).map(|p| match self.0.get(p.as_str()) {
                None => Value::list(Vec::new()),
                Some(text) => {
                    let text = text.strip_suffix('\n').unwrap_or(text);
                    Value::list(text.split('\n').map(s).collect())
                }
            }),
            "AsConfig" | "AsSecrets" if !args.is_empty() => Err(Error::Exec(format!(
                "wrong number of args for {name}: want 0 got {}",
                args.len()
            ))),
            _ => return None,
        })
    }

    fn to_value(&self) -> Value {
        Value::map(
            self.0
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect(),
        )
    }
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

pub use convoy_common::DEFAULT_API_VERSIONS;

/// `.Capabilities`: Helm's `*chartutil.Capabilities`, with `api_versions` after Helm's
/// default list when `with_defaults`, else `api_versions` alone (a live cluster's list).
pub fn capabilities_object(kube: &KubeVersion, api_versions: &[String], with_defaults: bool) -> Value {
    let defaults = if with_defaults { DEFAULT_API_VERSIONS } else { &[] };
    let apis: Vec<Arc<str>> = defaults
        .iter()
        .map(|a| Arc::from(*a))
        .chain(api_versions.iter().map(|a| Arc::from(a.as_str())))
        .collect();
    Value::Object(Rc::new(Capabilities {
        kube: Value::Object(Rc::new(kube.clone())),
        apis: Value::Object(Rc::new(VersionSet(apis))),
        helm: Value::Object(Rc::new(HelmVersion)),
    }))
}

struct Capabilities {
    kube: Value,
    apis: Value,
    helm: Value,
}

impl Object for Capabilities {
    fn type_name(&self) -> &'static str {
        "*chartutil.Capabilities"
    }

    fn field(&self, name: &str) -> Option<TResult<Value>> {
        match name {
            "KubeVersion" => Some(Ok(self.kube.clone())),
            "APIVersions" => Some(Ok(self.apis.clone())),
            "HelmVersion" => Some(Ok(self.helm.clone())),
            _ => None,
        }
    }

    fn method(&self, _name: &str, _args: &[Value]) -> Option<TResult<Value>> {
        None
    }

    fn to_value(&self) -> Value {
        map_of([
            ("KubeVersion", self.kube.clone().plain()),
            ("APIVersions", self.apis.clone().plain()),
            ("HelmVersion", self.helm.clone().plain()),
        ])
    }

    fn rangeable(&self) -> bool {
        false
    }

    fn display(&self) -> Option<String> {
        Some(format!(
            "&{{{} {} {}}}",
            crate::funcs::go_string(&self.kube),
            crate::funcs::go_string(&self.apis),
            crate::funcs::go_string(&self.helm)
        ))
    }
}

/// `.Capabilities.HelmVersion`: Helm's `version.BuildInfo` (JSON/YAML keys from its
/// struct tags; the empty ones are omitted).
struct HelmVersion;

impl Object for HelmVersion {
    fn type_name(&self) -> &'static str {
        "version.BuildInfo"
    }

    fn field(&self, name: &str) -> Option<TResult<Value>> {
        match name {
            "Version" => Some(Ok(s("v3.21.4"))),
            "GitCommit" | "GitTreeState" | "GoVersion" => Some(Ok(s(""))),
            _ => None,
        }
    }

    fn method(&self, _name: &str, _args: &[Value]) -> Option<TResult<Value>> {
        None
    }

    fn to_value(&self) -> Value {
        map_of([("version", s("v3.21.4"))])
    }

    fn display(&self) -> Option<String> {
        Some("{v3.21.4   }".into())
    }

    fn rangeable(&self) -> bool {
        false
    }
}

impl Object for KubeVersion {
    fn type_name(&self) -> &'static str {
        "chartutil.KubeVersion"
    }

    fn field(&self, name: &str) -> Option<TResult<Value>> {
        match name {
            "Version" | "GitVersion" => Some(Ok(s(&self.version))),
            "Major" => Some(Ok(s(&self.major))),
            "Minor" => Some(Ok(s(&self.minor))),
            "String" => Some(Ok(s(&self.version))),
            _ => None,
        }
    }

    fn method(&self, _name: &str, _args: &[Value]) -> Option<TResult<Value>> {
        None
    }

    fn to_value(&self) -> Value {
        map_of([
            ("Version", s(&self.version)),
            ("Major", s(&self.major)),
            ("Minor", s(&self.minor)),
        ])
    }

    fn display(&self) -> Option<String> {
        Some(self.version.clone())
    }

    fn rangeable(&self) -> bool {
        false
    }
}

/// `.Capabilities.APIVersions`: Helm's `VersionSet` (`[]string` with `Has`).
struct VersionSet(Vec<Arc<str>>);

impl Object for VersionSet {
    fn type_name(&self) -> &'static str {
        "chartutil.VersionSet"
    }

    fn field(&self, _name: &str) -> Option<TResult<Value>> {
        None
    }

    fn method(&self, name: &str, args: &[Value]) -> Option<TResult<Value>> {
        if name != "Has" {
            return None;
        }
        Some(match args {
            [Value::String(want)] => Ok(Value::Bool(self.0.iter().any(|x| **x == **want))),
            [other] => Err(Error::Exec(format!(
                "wrong type for value; expected string; got {}",
                other.type_name()
            ))),
            _ => Err(Error::Exec(format!(
                "wrong number of args for Has: want 1 got {}",
                args.len()
            ))),
        })
    }

    fn to_value(&self) -> Value {
        Value::list(self.0.iter().map(|a| Value::String(a.clone())).collect())
    }
}

fn base(k: &str) -> String {
    k.rsplit('/').next().unwrap_or(k).to_string()
}

/// Helm's `toYAML` of a `map[string]string` (keys sorted, trailing newline trimmed).
fn files_yaml(entries: impl Iterator<Item = (String, String)>) -> String {
    let m: crate::tmpl::Dict = entries.map(|(k, v)| (Arc::from(k.as_str()), s(&v))).collect();
    if m.is_empty() {
        return "{}".to_string();
    }
    match crate::funcs::to_yaml_string(&Value::map(m)) {
        Ok(y) => y.trim_end_matches('\n').to_string(),
        Err(_) => String::new(),
    }
}

/// Field access as templates do it, for tests: fields, then a method call with `args`.
#[cfg(test)]
pub fn walk(receiver: Value, fields: &[String], args: &[Value]) -> Result<Value, String> {
    let mut cur = receiver;
    for (i, field) in fields.iter().enumerate() {
        let last = i + 1 == fields.len();
        cur = match &cur {
            Value::Object(o) if last && !args.is_empty() => {
                return o
                    .method(field, args)
                    .unwrap_or_else(|| Err(Error::Exec("no method".into())))
                    .map_err(|e| e.to_string());
            }
            Value::Object(o) => match o.field(field).or_else(|| o.method(field, &[])) {
                Some(r) => r.map_err(|e| e.to_string())?,
                None => return Err(format!("can't evaluate field {field} in type {}", o.type_name())),
            },
            Value::Map(m) => m.get(field).unwrap_or(Value::Nil),
            Value::Nil => return Err(format!("nil pointer evaluating interface {{}}.{field}")),
            other => {
                return Err(format!(
                    "can't evaluate field {field} in type {}",
                    other.type_name()
                ));
            }
        };
    }
    Ok(cur)
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

//! What a dry run would change in one object, for both backends: a structural diff of
//! the live object against what the apply would leave (the API server's dry-run
//! answer, or the simulated cluster's planned body), with each changed field's value
//! before and after.
//!
//! Skipped: what the server maintains itself (`status`, managed fields,
//! resourceVersion, generation, uid, timestamps) and our own revision annotation on
//! the object (it changes with every revision and says nothing about the object).
//!
//! Masked: a Secret's values never leave the agent, so for an object of kind `Secret`
//! every change that would show any of `data`, `stringData` or an annotation that can
//! hold a copy of them (kubectl's last-applied configuration, or any annotation whose
//! value is a JSON object) carries no values, old or new. Masking happens here, where
//! the change is found, so no [`FieldChange`] anywhere in the agent holds them.

use serde_json::{Map, Value};

use crate::backend::FieldChange;

/// Top-level metadata keys the server owns.
const IGNORED_METADATA: &[&str] = &[
    "managedFields",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "uid",
    "selfLink",
    "deletionTimestamp",
];

/// Where `kubectl apply` keeps a full copy of the object it applied, a Secret's
/// `data` included.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// A Secret's fields that hold its values.
const SECRET_DATA: &[&str] = &["data", "stringData"];

/// One step of a field path.
#[derive(Clone, Copy)]
enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

/// Every field whose value differs between `live` and `planned`, in path order
/// (keys sorted, array items by index). A field present on one side only is a change
/// with `before` (or `after`) None; an array whose length changes is one change of the
/// whole array, since pairing items by index would misname them after an insertion.
pub fn changes(live: &Value, planned: &Value, revision_annotation: &str) -> Vec<FieldChange> {
    let mut diff = Diff {
        secret: is_secret(live) || is_secret(planned),
        out: Vec::new(),
    };
    let (Value::Object(l), Value::Object(p)) = (live, planned) else {
        if live != planned {
            diff.push(&[], Some(live), Some(planned));
        }
        return diff.out;
    };
    let mut keys: Vec<&String> = l.keys().chain(p.keys()).collect();
    keys.sort();
    keys.dedup();
    for key in keys {
        let path = [Seg::Key(key)];
        match key.as_str() {
            "status" => {}
            "metadata" => {
                let strip = |v: Option<&Value>| v.map(|v| strip_metadata(v, revision_annotation));
                let (lv, pv) = (strip(l.get(key)), strip(p.get(key)));
                diff.walk(lv.as_ref(), pv.as_ref(), &mut path.to_vec());
            }
            _ => diff.walk(l.get(key), p.get(key), &mut path.to_vec()),
        }
    }
    diff.out
}

fn is_secret(v: &Value) -> bool {
    v.get("kind").and_then(Value::as_str) == Some("Secret")
}

/// `metadata` without what the server owns and without our revision annotation (and
/// without `annotations` when that was the only one).
fn strip_metadata(metadata: &Value, revision_annotation: &str) -> Value {
    let mut m = metadata.clone();
    if let Value::Object(map) = &mut m {
        for k in IGNORED_METADATA {
            map.remove(*k);
        }
        if let Some(Value::Object(a)) = map.get_mut("annotations") {
            a.remove(revision_annotation);
            if a.is_empty() {
                map.remove("annotations");
            }
        }
    }
    m
}

struct Diff {
    /// The object is a Secret: mask what could show its values.
    secret: bool,
    out: Vec<FieldChange>,
}

impl Diff {
    fn walk<'a>(&mut self, live: Option<&'a Value>, planned: Option<&'a Value>, path: &mut Vec<Seg<'a>>) {
        match (live, planned) {
            (Some(Value::Object(l)), Some(Value::Object(p))) => {
                let mut keys: Vec<&String> = l.keys().chain(p.keys()).collect();
                keys.sort();
                keys.dedup();
                for key in keys {
                    path.push(Seg::Key(key));
                    self.walk(l.get(key), p.get(key), path);
                    path.pop();
                }
            }
            (Some(Value::Array(l)), Some(Value::Array(p))) if l.len() == p.len() => {
                for (i, (lv, pv)) in l.iter().zip(p).enumerate() {
                    path.push(Seg::Index(i));
                    self.walk(Some(lv), Some(pv), path);
                    path.pop();
                }
            }
            (l, p) if l != p => self.push(path, l, p),
            _ => {}
        }
    }

    fn push(&mut self, path: &[Seg<'_>], before: Option<&Value>, after: Option<&Value>) {
        let masked = self.secret && (exposes_secret(path, before) || exposes_secret(path, after));
        self.out.push(FieldChange {
            path: format_path(path),
            before: if masked { None } else { before.cloned() },
            after: if masked { None } else { after.cloned() },
            masked,
        });
    }
}

/// Whether showing `value` at `path` of a Secret could show its data: the path is at
/// or under `data`/`stringData` or a data-bearing annotation, or the value (a whole
/// object, `metadata`, `annotations`...) contains one of those.
fn exposes_secret(path: &[Seg<'_>], value: Option<&Value>) -> bool {
    match path {
        [Seg::Key(k), ..] if SECRET_DATA.contains(k) => return true,
        [Seg::Key("metadata"), Seg::Key("annotations"), Seg::Key(k), ..]
            if *k == LAST_APPLIED || value.is_some_and(looks_like_object_copy) =>
        {
            return true;
        }
        _ => {}
    }
    let Some(Value::Object(map)) = value else {
        return false;
    };
    // Only an ancestor of those places can contain them.
    let ancestor = matches!(
        path,
        [] | [Seg::Key("metadata")] | [Seg::Key("metadata"), Seg::Key("annotations")]
    );
    ancestor && children_expose(path, map)
}

fn children_expose(path: &[Seg<'_>], map: &Map<String, Value>) -> bool {
    let mut child: Vec<Seg<'_>> = path.to_vec();
    map.iter().any(|(k, v)| {
        child.push(Seg::Key(k));
        let exposed = exposes_secret(&child, Some(v));
        child.pop();
        exposed
    })
}

/// An annotation holding a serialized object (as tools stash the object they
/// applied) may hold a Secret's data.
fn looks_like_object_copy(v: &Value) -> bool {
    v.as_str().is_some_and(|s| s.trim_start().starts_with('{'))
}

/// `spec.template.spec.containers[0].image`, `data["app.conf"]`; the whole object is `.`.
fn format_path(path: &[Seg<'_>]) -> String {
    if path.is_empty() {
        return ".".to_string();
    }
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
            Seg::Key(k) if is_plain(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Seg::Key(k) => out.push_str(&format!("[{k:?}]")),
        }
    }
    out
}

fn is_plain(key: &str) -> bool {
    !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

#[cfg(test)]
mod tests;

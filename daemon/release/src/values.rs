//! Per-context values and the secret plan.
//!
//! Merge order, later wins (README.md states the same):
//! 1. chart defaults (`values.yaml`; coalesced by the chart engine at render time)
//! 2. `spec.values`
//! 3. `spec.valuesFiles`, in order, then `spec.valuesFrom`, in order
//! 4. `spec.contextValues.<context>`
//! 5. `.Values.global.{cloud,env,region,clusterName}` from the context registry
//! 6. `.Values.secrets.<secret_id>`, resolved per context
//!
//! Mappings merge key by key; anything else (lists, scalars, null) replaces what is under
//! it, as Helm does with several `-f` files. A null reaches the chart engine, which then
//! drops the chart's default for that key, as `helm --set key=null` does.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::model::{DEFAULT_CONTEXT, Release};
use crate::registry::Context;

/// One secret a context needs, and where Vault holds it. Plain data: the Vault client
/// (crate `convoy-secrets`) takes these.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct SecretRequest {
    pub context: String,
    pub secret_id: String,
    pub vault_path: String,
    pub vault_key: String,
}

/// The secrets every target context needs, resolved through its own entry or `default`,
/// in target order, then secret order. Validation guarantees every pair resolves.
pub fn plan_secrets(release: &Release) -> Vec<SecretRequest> {
    let mut out = Vec::new();
    for context in release.targets() {
        for secret in &release.spec.secrets {
            let source = secret
                .sources
                .iter()
                .find(|s| s.context == context)
                .or_else(|| secret.sources.iter().find(|s| s.context == DEFAULT_CONTEXT));
            if let Some(src) = source {
                out.push(SecretRequest {
                    context: context.to_string(),
                    secret_id: secret.secret_id.clone(),
                    vault_path: src.vault_path.clone(),
                    vault_key: src.vault_key.clone(),
                });
            }
        }
    }
    out
}

/// The values one context's chart render receives (over the chart's defaults).
/// `secrets` maps secret_id to its resolved value.
pub fn context_values(release: &Release, context: &Context, secrets: &BTreeMap<String, Value>) -> Value {
    let mut values = release_values(release);
    merge(&mut values, &own_context_values(release, &context.name));
    let globals = serde_json::json!({
        "global": {
            "cloud": context.cloud,
            "env": context.env,
            "region": context.region,
            "clusterName": context.cluster_name,
        }
    });
    merge(&mut values, &globals);
    if !secrets.is_empty() {
        let secrets: Map<String, Value> = secrets.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        merge(&mut values, &serde_json::json!({ "secrets": secrets }));
    }
    values
}

/// Steps 2 and 3 of the merge order: the values every target context shares.
pub fn release_values(release: &Release) -> Value {
    let mut values = Value::Object(Map::new());
    merge(&mut values, &release.spec.values);
    for file in &release.spec.values_files {
        merge(&mut values, &file.values);
    }
    // An entry not fetched is refused by `render_context_in` before this is reached.
    for from in &release.spec.values_from {
        if let Some(v) = &from.values {
            merge(&mut values, v);
        }
    }
    values
}

/// Step 4: `spec.contextValues` for one context (its entries merged, in order).
pub fn own_context_values(release: &Release, context: &str) -> Value {
    let mut values = Value::Object(Map::new());
    for cv in release
        .spec
        .context_values
        .iter()
        .filter(|cv| cv.context == context)
    {
        merge(&mut values, &cv.values);
    }
    values
}

/// One value that differs between two values documents: its dotted path (`image.tag`,
/// `a.b\.c` for a key holding a dot), and the value before and after (`None`: absent).
/// Mappings are compared key by key; anything else (lists included) as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueChange {
    pub path: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

/// What changed from `before` to `after`, in path order.
pub fn value_changes(before: &Value, after: &Value) -> Vec<ValueChange> {
    let mut out = Vec::new();
    diff_at("", Some(before), Some(after), &mut out);
    out
}

fn diff_at(path: &str, before: Option<&Value>, after: Option<&Value>, out: &mut Vec<ValueChange>) {
    match (before, after) {
        (Some(Value::Object(b)), Some(Value::Object(a))) => {
            let keys: std::collections::BTreeSet<&String> = b.keys().chain(a.keys()).collect();
            for k in keys {
                let escaped = k.replace('.', "\\.");
                let child = if path.is_empty() {
                    escaped
                } else {
                    format!("{path}.{escaped}")
                };
                diff_at(&child, b.get(k), a.get(k), out);
            }
        }
        (b, a) if b == a => {}
        (b, a) => out.push(ValueChange {
            path: if path.is_empty() {
                "(all values)".into()
            } else {
                path.to_string()
            },
            before: b.cloned(),
            after: a.cloned(),
        }),
    }
}

/// What changed between two revisions' kept values, each a JSON document
/// `{"release": {...}, "contexts": {CONTEXT: {...}}}` (as the coordinator keeps them):
/// the shared values first (context ""), then each context's own. Nothing when either
/// side holds no values (a revision recorded before they were kept, or too large).
pub fn record_changes(before: &Value, after: &Value) -> Vec<(String, ValueChange)> {
    let kept = |v: &Value| v.get("release").is_some_and(|r| !r.is_null());
    if !kept(before) || !kept(after) {
        return Vec::new();
    }
    let mut out: Vec<(String, ValueChange)> = value_changes(&before["release"], &after["release"])
        .into_iter()
        .map(|c| (String::new(), c))
        .collect();
    let empty = Value::Object(Map::new());
    let contexts = |v: &Value| -> Vec<String> {
        v.get("contexts")
            .and_then(Value::as_object)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    };
    let names: std::collections::BTreeSet<String> =
        contexts(before).into_iter().chain(contexts(after)).collect();
    for name in names {
        let side = |v: &Value| {
            v.get("contexts")
                .and_then(|c| c.get(&name))
                .cloned()
                .unwrap_or(empty.clone())
        };
        for c in value_changes(&side(before), &side(after)) {
            out.push((name.clone(), c));
        }
    }
    out
}

/// `sha256:<hex>` of one context's merged values without secrets, in a canonical form
/// (keys sorted), for the revision history: two revisions with the same digest got the same
/// configuration, and the digest reveals nothing about secrets.
pub fn values_digest(release: &Release, context: &Context) -> String {
    let values = context_values(release, context, &BTreeMap::new());
    let mut canonical = String::new();
    write_canonical(&values, &mut canonical);
    use sha2::Digest;
    let digest = sha2::Sha256::digest(canonical.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// Deep-merges `over` into `base`: mappings key by key, anything else replaces.
pub fn merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(k) {
                    Some(existing) if existing.is_object() && v.is_object() => merge(existing, v),
                    _ => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, o) => *b = o.clone(),
    }
}

/// JSON with object keys sorted, whatever order `serde_json::Map` keeps.
fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(&m[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_is_deep_for_maps_and_replaces_the_rest() {
        let mut base = json!({"a": {"b": 1, "c": [1, 2]}, "d": 1});
        merge(&mut base, &json!({"a": {"c": [3], "e": null}, "d": {"x": 1}}));
        assert_eq!(base, json!({"a": {"b": 1, "c": [3], "e": null}, "d": {"x": 1}}));
    }

    #[test]
    fn canonical_form_sorts_keys() {
        let mut a = String::new();
        write_canonical(&json!({"b": 1, "a": {"d": 2, "c": "x"}}), &mut a);
        assert_eq!(a, r#"{"a":{"c":"x","d":2},"b":1}"#);
    }
}

#[cfg(test)]
mod change_tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn changes_are_listed_by_path_with_both_sides() {
        let before = json!({"image": {"repo": "web", "tag": "1.0"}, "replicas": 2, "a.b": 1, "ports": [80]});
        let after =
            json!({"image": {"repo": "web", "tag": "2.0"}, "a.b": 1, "ports": [80, 443], "debug": true});
        let changes = value_changes(&before, &after);
        let shown: Vec<(String, Option<Value>, Option<Value>)> =
            changes.into_iter().map(|c| (c.path, c.before, c.after)).collect();
        assert_eq!(
            shown,
            vec![
                ("debug".into(), None, Some(json!(true))),
                ("image.tag".into(), Some(json!("1.0")), Some(json!("2.0"))),
                ("ports".into(), Some(json!([80])), Some(json!([80, 443]))),
                ("replicas".into(), Some(json!(2)), None),
            ]
        );
        assert!(value_changes(&after, &after).is_empty());
        let dotted = value_changes(&json!({"a.b": 1}), &json!({"a.b": 2}));
        assert_eq!(dotted[0].path, "a\\.b");
    }

    #[test]
    fn record_changes_cover_shared_and_per_context_values() {
        let before = json!({"release": {"tag": "1"}, "contexts": {"west": {"replicas": 2}}});
        let after = json!({"release": {"tag": "2"}, "contexts": {"east": {"debug": true}}});
        let shown: Vec<String> = record_changes(&before, &after)
            .into_iter()
            .map(|(ctx, c)| format!("[{ctx}] {} {:?} -> {:?}", c.path, c.before, c.after))
            .collect();
        assert_eq!(
            shown,
            [
                "[] tag Some(String(\"1\")) -> Some(String(\"2\"))",
                "[east] debug None -> Some(Bool(true))",
                "[west] replicas Some(Number(2)) -> None",
            ]
        );
        // A revision recorded without values compares with nothing.
        assert!(record_changes(&json!({}), &after).is_empty());
        assert!(record_changes(&json!({"release": null, "omitted_bytes": 999999}), &after).is_empty());
    }
}

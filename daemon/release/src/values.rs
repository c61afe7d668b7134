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
    for cv in release
        .spec
        .context_values
        .iter()
        .filter(|cv| cv.context == context.name)
    {
        merge(&mut values, &cv.values);
    }
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

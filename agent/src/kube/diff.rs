//! Which fields a dry run would change: a structural diff of the live object against
//! the server's dry-run result, skipping what the server maintains itself (managed
//! fields, resourceVersion, generation, timestamps, status) and our own revision stamp
//! (it changes on every revision and says nothing about the object).

use serde_json::Value;

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

/// The field paths (`spec.replicas`, `spec.template.spec.containers[0].image`,
/// `data["app.conf"]`) whose values differ between `live` and `planned`.
pub fn changed_fields(live: &Value, planned: &Value, revision_annotation: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (Value::Object(l), Value::Object(p)) = (live, planned) else {
        if live != planned {
            out.push(".".to_string());
        }
        return out;
    };
    let mut keys: Vec<&String> = l.keys().chain(p.keys()).collect();
    keys.sort();
    keys.dedup();
    for key in keys {
        if key == "status" {
            continue;
        }
        let (lv, pv) = (
            l.get(key).unwrap_or(&Value::Null),
            p.get(key).unwrap_or(&Value::Null),
        );
        if key == "metadata" {
            let strip = |v: &Value| {
                let mut v = v.clone();
                if let Value::Object(m) = &mut v {
                    for k in IGNORED_METADATA {
                        m.remove(*k);
                    }
                    if let Some(Value::Object(a)) = m.get_mut("annotations") {
                        a.remove(revision_annotation);
                        if a.is_empty() {
                            m.remove("annotations");
                        }
                    }
                }
                v
            };
            walk(&strip(lv), &strip(pv), "metadata".to_string(), &mut out);
        } else {
            walk(lv, pv, segment("", key), &mut out);
        }
    }
    out
}

fn segment(prefix: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    match (prefix.is_empty(), plain) {
        (true, true) => key.to_string(),
        (false, true) => format!("{prefix}.{key}"),
        (_, false) => format!("{prefix}[{key:?}]"),
    }
}

fn walk(live: &Value, planned: &Value, path: String, out: &mut Vec<String>) {
    match (live, planned) {
        (Value::Object(l), Value::Object(p)) => {
            let mut keys: Vec<&String> = l.keys().chain(p.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                let lv = l.get(key).unwrap_or(&Value::Null);
                let pv = p.get(key).unwrap_or(&Value::Null);
                walk(lv, pv, segment(&path, key), out);
            }
        }
        (Value::Array(l), Value::Array(p)) if l.len() == p.len() => {
            for (i, (lv, pv)) in l.iter().zip(p).enumerate() {
                walk(lv, pv, format!("{path}[{i}]"), out);
            }
        }
        (l, p) if l != p => out.push(path),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reports_nested_changes_and_skips_server_fields() {
        let live = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "resourceVersion": "1", "generation": 1,
                          "annotations": {"convoy.dev/revision": "1"}, "managedFields": [{"manager": "a"}]},
            "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "app", "image": "a:1"}]}}},
            "status": {"replicas": 1}
        });
        let planned = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "resourceVersion": "2", "generation": 2,
                          "annotations": {"convoy.dev/revision": "2"}, "managedFields": [{"manager": "b"}]},
            "spec": {"replicas": 3, "template": {"spec": {"containers": [{"name": "app", "image": "a:2"}]}}},
            "status": {"replicas": 0}
        });
        assert_eq!(
            changed_fields(&live, &planned, "convoy.dev/revision"),
            vec!["spec.replicas", "spec.template.spec.containers[0].image"]
        );
    }

    #[test]
    fn keys_with_dots_are_quoted_and_additions_count() {
        let live = json!({"data": {"a": "1"}});
        let planned = json!({"data": {"a": "1", "app.conf": "x"}});
        assert_eq!(changed_fields(&live, &planned, "r"), vec![r#"data["app.conf"]"#]);
    }

    #[test]
    fn identical_objects_have_no_changes() {
        let v = json!({"metadata": {"name": "x"}, "data": {"k": "v"}});
        assert!(changed_fields(&v, &v, "r").is_empty());
    }
}

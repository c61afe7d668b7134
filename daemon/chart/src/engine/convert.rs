//! Conversions between JSON values (how values travel through the crate) and
//! `gotmpl::Value` (what templates see).

use std::collections::BTreeMap;
use std::sync::Arc;

use gotmpl::Value;
use serde_json::Value as Json;

/// JSON to template value. Floats stay floats so they print as Go prints float64.
pub fn to_value(j: &Json) -> Value {
    match j {
        Json::Null => Value::Nil,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => {
            if n.is_f64() {
                Value::Float(n.as_f64().unwrap_or_default())
            } else if let Some(i) = n.as_i64() {
                Value::Int(i)
            } else {
                Value::Uint(n.as_u64().unwrap_or_default())
            }
        }
        Json::String(s) => Value::String(Arc::from(s.as_str())),
        Json::Array(a) => Value::List(a.iter().map(to_value).collect()),
        Json::Object(m) => map_value(m),
    }
}

/// A JSON object as a template map.
pub fn map_value(m: &serde_json::Map<String, Json>) -> Value {
    Value::Map(Arc::new(
        m.iter()
            .map(|(k, v)| (Arc::from(k.as_str()), to_value(v)))
            .collect(),
    ))
}

/// Builds a template map from (key, value) pairs.
pub fn map_of(entries: impl IntoIterator<Item = (&'static str, Value)>) -> Value {
    let m: BTreeMap<Arc<str>, Value> = entries.into_iter().map(|(k, v)| (Arc::from(k), v)).collect();
    Value::Map(Arc::new(m))
}

/// A string value.
pub fn s(v: &str) -> Value {
    Value::String(Arc::from(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_keep_their_kind() {
        let v = to_value(&serde_json::json!({"f": 1.0, "i": 3, "l": [true, null]}));
        let Value::Map(m) = v else { panic!("not a map") };
        assert!(matches!(m["f"], Value::Float(_)));
        assert!(matches!(m["i"], Value::Int(3)));
        assert!(matches!(&m["l"], Value::List(l) if l.len() == 2));
    }
}

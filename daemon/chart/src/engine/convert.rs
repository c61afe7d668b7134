//! Conversions between JSON values (how values travel through the crate) and template
//! values (what templates see).

use serde_json::Value as Json;

use crate::tmpl::{Dict, Value};

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
        Json::String(s) => Value::from(s.as_str()),
        Json::Array(a) => Value::list(a.iter().map(to_value).collect()),
        Json::Object(m) => map_value(m),
    }
}

/// A JSON object as a (new) template map.
pub fn map_value(m: &serde_json::Map<String, Json>) -> Value {
    Value::map(m.iter().map(|(k, v)| (k.as_str().into(), to_value(v))).collect())
}

/// Builds a template map from (key, value) pairs.
pub fn map_of(entries: impl IntoIterator<Item = (&'static str, Value)>) -> Value {
    let m: Dict = entries.into_iter().map(|(k, v)| (k.into(), v)).collect();
    Value::map(m)
}

/// A string value.
pub fn s(v: &str) -> Value {
    Value::from(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_keep_their_kind() {
        let v = to_value(&serde_json::json!({"f": 1.0, "i": 3, "l": [true, null]}));
        let Value::Map(m) = v else { panic!("not a map") };
        assert!(matches!(m.get("f"), Some(Value::Float(_))));
        assert!(matches!(m.get("i"), Some(Value::Int(3))));
        assert!(matches!(m.get("l"), Some(Value::List(l)) if l.len() == 2));
    }
}

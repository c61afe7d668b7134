//! Values documents: YAML in, JSON-shaped maps out, the way Helm reads them.
//!
//! Helm reads every values file through `sigs.k8s.io/yaml`, which converts YAML to JSON
//! and decodes the JSON into `map[string]interface{}`: every number becomes a float64
//! (`1000000` later prints as `1e+06`), map keys become strings, and a document that is not
//! a map is an error. [`parse_values`] does the same so templates see what Helm's see.
//! Values from `--set` keep Go's int64 (see [`crate::strvals`]): Helm does not send them
//! through JSON.

use serde_json::{Map, Number, Value as Json};

use crate::error::{ChartError, Result};

/// Parses a values document (values.yaml, a `-f` file) into a map, as Helm's
/// `chartutil.ReadValues` does: empty documents are `{}`, numbers are floats.
pub fn parse_values(src: &str, file: &str) -> Result<Map<String, Json>> {
    let doc = yaml_to_json(src, file, true)?;
    match doc {
        Json::Null => Ok(Map::new()),
        Json::Object(m) => Ok(m),
        other => Err(ChartError::Values {
            file: file.to_string(),
            message: format!(
                "error unmarshaling JSON: cannot unmarshal {} into a values map (the top level must be a YAML map)",
                json_kind(&other)
            ),
        }),
    }
}

/// Converts one YAML document to JSON. With `floats` every number becomes a float64
/// (Helm's values semantics); without it integers stay integers (Chart.yaml, manifests).
pub fn yaml_to_json(src: &str, file: &str, floats: bool) -> Result<Json> {
    let mut yaml: serde_yaml::Value = serde_yaml::from_str(src).map_err(|e| ChartError::Values {
        file: file.to_string(),
        message: format!("error converting YAML to JSON: {e}"),
    })?;
    yaml.apply_merge().map_err(|e| ChartError::Values {
        file: file.to_string(),
        message: format!("error converting YAML to JSON: {e}"),
    })?;
    convert(yaml, floats).map_err(|message| ChartError::Values {
        file: file.to_string(),
        message,
    })
}

fn convert(v: serde_yaml::Value, floats: bool) -> std::result::Result<Json, String> {
    Ok(match v {
        serde_yaml::Value::Null => Json::Null,
        serde_yaml::Value::Bool(b) => Json::Bool(b),
        serde_yaml::Value::Number(n) => number(&n, floats)?,
        serde_yaml::Value::String(s) => Json::String(s),
        serde_yaml::Value::Sequence(items) => Json::Array(
            items
                .into_iter()
                .map(|i| convert(i, floats))
                .collect::<std::result::Result<_, _>>()?,
        ),
        serde_yaml::Value::Mapping(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                out.insert(key_string(&k)?, convert(v, floats)?);
            }
            Json::Object(out)
        }
        serde_yaml::Value::Tagged(t) => convert(t.value, floats)?,
    })
}

fn number(n: &serde_yaml::Number, floats: bool) -> std::result::Result<Json, String> {
    if !floats {
        if let Some(i) = n.as_i64() {
            return Ok(Json::Number(i.into()));
        }
        if let Some(u) = n.as_u64() {
            return Ok(Json::Number(u.into()));
        }
    }
    let f = n.as_f64().unwrap_or(f64::NAN);
    Number::from_f64(f)
        .map(Json::Number)
        .ok_or_else(|| format!("error converting YAML to JSON: json: unsupported value: {n}"))
}

/// YAML allows non-string keys; Go's YAML-to-JSON conversion prints them as strings.
fn key_string(k: &serde_yaml::Value) -> std::result::Result<String, String> {
    match k {
        serde_yaml::Value::String(s) => Ok(s.clone()),
        serde_yaml::Value::Bool(b) => Ok(b.to_string()),
        serde_yaml::Value::Number(n) => Ok(n.to_string()),
        serde_yaml::Value::Null => Ok("null".to_string()),
        serde_yaml::Value::Tagged(t) => key_string(&t.value),
        _ => Err("error converting YAML to JSON: map keys must be scalars".to_string()),
    }
}

fn json_kind(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "bool",
        Json::Number(_) => "number",
        Json::String(_) => "string",
        Json::Array(_) => "array",
        Json::Object(_) => "object",
    }
}

/// Helm's `MergeValues`-style deep merge used for combining several user values sources
/// (`-f a.yaml -f b.yaml --set ...`): maps merge recursively, everything else is replaced
/// by the later source. Nulls are kept so they can delete chart defaults later.
pub fn merge_user_values(base: &mut Map<String, Json>, overlay: Map<String, Json>) {
    for (k, v) in overlay {
        match (base.get_mut(&k), v) {
            (Some(Json::Object(dst)), Json::Object(src)) => merge_user_values(dst, src),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_become_floats_like_helm() {
        let m = parse_values("a: 1000000\nb: 3\nc: 1.5\n", "values.yaml").unwrap();
        assert!(m["a"].is_f64());
        assert_eq!(m["a"].as_f64(), Some(1_000_000.0));
        assert!(m["b"].is_f64());
    }

    #[test]
    fn empty_document_is_an_empty_map() {
        assert!(
            parse_values("# only a comment\n", "values.yaml")
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn non_map_document_names_the_file() {
        let err = parse_values("- a\n- b\n", "my-values.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("my-values.yaml"), "{err}");
        assert!(err.contains("array"), "{err}");
    }

    #[test]
    fn non_string_keys_are_stringified_and_merges_applied() {
        let m = parse_values(
            "base: &b {x: 1}\nderived:\n  <<: *b\n  y: 2\n1: one\ntrue: yes\n",
            "v",
        )
        .unwrap();
        assert_eq!(m["1"], "one");
        assert_eq!(m["true"], "yes");
        assert_eq!(m["derived"]["x"].as_f64(), Some(1.0));
    }

    #[test]
    fn merge_user_values_merges_maps_and_replaces_lists() {
        let mut a = parse_values("x: {a: 1, b: [1, 2]}\n", "a").unwrap();
        let b = parse_values("x: {b: [3], c: null}\n", "b").unwrap();
        merge_user_values(&mut a, b);
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            r#"{"x":{"a":1.0,"b":[3.0],"c":null}}"#
        );
    }
}

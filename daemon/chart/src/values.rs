//! Values documents: YAML in, JSON-shaped maps out, the way Helm reads them.
//!
//! Helm reads every values file through `sigs.k8s.io/yaml`: go-yaml v2 (YAML 1.1 scalars:
//! `yes`/`no`/`on`/`off`/`y`/`n` are booleans, `0777` is octal, `1_000` is 1000), then a
//! JSON round trip into `map[string]interface{}`: every number becomes a float64
//! (`1000000` later prints as `1e+06`), map keys become strings (`yes:` is the key
//! `"true"`), timestamps stay text, and a document that is not a map is an error.
//! [`parse_values`] does the same so templates see what Helm's see, and
//! [`scalar_to_json`] / [`key_to_string`] let callers that parse YAML themselves (the
//! release file, which needs positions) type their scalars identically.
//! Values from `--set` keep Go's int64 (see [`crate::strvals`]): Helm does not send them
//! through YAML or JSON.

use serde_json::{Map, Number, Value as Json};

use crate::error::{ChartError, Result};
use crate::funcs::yaml_read;

/// Parses a values document (values.yaml, a `-f` file) into a map, as Helm's
/// `chartutil.ReadValues` does: empty documents are `{}`, scalars typed by YAML 1.1,
/// numbers are floats, only the first document counts.
pub fn parse_values(src: &str, file: &str) -> Result<Map<String, Json>> {
    let doc = crate::funcs::parse_yaml(src).map_err(|message| ChartError::Values {
        file: file.to_string(),
        message,
    })?;
    match template_to_json(doc) {
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

/// The JSON value Helm gives one scalar of a values document.
///
/// `plain` is false for quoted and block scalars (always strings unless tagged); `tag` is
/// the node's tag, long (`tag:yaml.org,2002:str`) or short (`!!str`), or `None`.
/// Numbers are floats, YAML 1.1 booleans are booleans; an error for values JSON cannot
/// hold (`.inf`, `.nan`), worded as Helm words it.
pub fn scalar_to_json(text: &str, plain: bool, tag: Option<&str>) -> std::result::Result<Json, String> {
    yaml_read::scalar_value(text, plain, yaml_read::ScalarTag::from_name(tag)).map(template_to_json)
}

/// The string a mapping key becomes in Helm's values (`yes` is `"true"`, `0x10` is
/// `"16"`). Arguments as for [`scalar_to_json`]; a null key, which Helm refuses, and a tag
/// the text does not fit are errors.
pub fn key_to_string(text: &str, plain: bool, tag: Option<&str>) -> std::result::Result<String, String> {
    yaml_read::key_string(text, plain, yaml_read::ScalarTag::from_name(tag))?
        .ok_or_else(|| format!("the key `{text}` is null in YAML, and values keys must be strings; quote it"))
}

/// The YAML reader yields template values; values travel through the crate as JSON.
/// Everything it yields has a JSON form (numbers are finite floats).
fn template_to_json(v: crate::tmpl::Value) -> Json {
    use crate::tmpl::Value;
    match v {
        Value::Bool(b) => Json::Bool(b),
        Value::Int(i) => Json::from(i),
        Value::Uint(u) => Json::from(u),
        Value::Float(f) => Number::from_f64(f).map_or(Json::Null, Json::Number),
        Value::String(s) => Json::String(s.to_string()),
        Value::List(items) => Json::Array(items.iter().cloned().map(template_to_json).collect()),
        Value::Map(m) => Json::Object(
            m.borrow()
                .iter()
                .map(|(k, v)| (k.to_string(), template_to_json(v.clone())))
                .collect(),
        ),
        Value::Object(o) => template_to_json(o.to_value()),
        Value::Nil | Value::Function(_) => Json::Null,
    }
}

/// Converts one YAML document to JSON with integers kept, for documents Helm decodes into
/// typed structs (Chart.yaml, requirements.yaml, repository indexes). Values documents go
/// through [`parse_values`] instead.
pub fn yaml_to_json(src: &str, file: &str) -> Result<Json> {
    let mut yaml: serde_yaml::Value = serde_yaml::from_str(src).map_err(|e| ChartError::Values {
        file: file.to_string(),
        message: format!("error converting YAML to JSON: {e}"),
    })?;
    yaml.apply_merge().map_err(|e| ChartError::Values {
        file: file.to_string(),
        message: format!("error converting YAML to JSON: {e}"),
    })?;
    convert(yaml).map_err(|message| ChartError::Values {
        file: file.to_string(),
        message,
    })
}

fn convert(v: serde_yaml::Value) -> std::result::Result<Json, String> {
    Ok(match v {
        serde_yaml::Value::Null => Json::Null,
        serde_yaml::Value::Bool(b) => Json::Bool(b),
        serde_yaml::Value::Number(n) => number(&n)?,
        serde_yaml::Value::String(s) => Json::String(s),
        serde_yaml::Value::Sequence(items) => Json::Array(
            items
                .into_iter()
                .map(convert)
                .collect::<std::result::Result<_, _>>()?,
        ),
        serde_yaml::Value::Mapping(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                out.insert(key_string(&k)?, convert(v)?);
            }
            Json::Object(out)
        }
        serde_yaml::Value::Tagged(t) => convert(t.value)?,
    })
}

fn number(n: &serde_yaml::Number) -> std::result::Result<Json, String> {
    if let Some(i) = n.as_i64() {
        return Ok(Json::Number(i.into()));
    }
    if let Some(u) = n.as_u64() {
        return Ok(Json::Number(u.into()));
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

/// Every number as a float64, as Go's `encoding/json` decodes into `interface{}` (how
/// Helm's values and `--set-json` values arrive at templates).
pub fn numbers_as_float64(v: &Json) -> Json {
    match v {
        Json::Number(n) => n
            .as_f64()
            .and_then(serde_json::Number::from_f64)
            .map(Json::Number)
            .unwrap_or(Json::Null),
        Json::Array(a) => Json::Array(a.iter().map(numbers_as_float64).collect()),
        Json::Object(m) => Json::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), numbers_as_float64(v)))
                .collect(),
        ),
        other => other.clone(),
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
        assert_eq!(m["true"], true, "YAML 1.1: the value `yes` is a boolean");
        assert_eq!(m["derived"]["x"].as_f64(), Some(1.0));
    }

    #[test]
    fn scalars_are_typed_by_yaml_1_1_like_helm() {
        let m = parse_values(
            "a: yes\nb: Off\nc: y\nd: N\ne: 'yes'\nf: \"on\"\ng: !!str on\nh: 0777\ni: 1_000\n\
             j: 0b101\nk: 2024-01-02\nl: 0x1F\nm: |\n  no\nyes: key\np: ON\nq: yES\nn: 1\n",
            "values.yaml",
        )
        .unwrap();
        assert_eq!(m["a"], true);
        assert_eq!(m["b"], false);
        assert_eq!(m["c"], true);
        assert_eq!(m["d"], false);
        assert_eq!(m["e"], "yes", "quoted scalars stay strings");
        assert_eq!(m["f"], "on");
        assert_eq!(m["g"], "on", "!!str keeps the text");
        assert_eq!(m["h"].as_f64(), Some(511.0), "0777 is YAML 1.1 octal");
        assert_eq!(m["i"].as_f64(), Some(1000.0));
        assert_eq!(m["j"].as_f64(), Some(5.0));
        assert_eq!(m["k"], "2024-01-02", "timestamps stay text");
        assert_eq!(m["l"].as_f64(), Some(31.0));
        assert_eq!(m["m"], "no\n", "block scalars are strings");
        assert_eq!(m["true"], "key", "the key `yes` is the string \"true\"");
        assert_eq!(m["p"], true);
        assert_eq!(
            m["false"].as_f64(),
            Some(1.0),
            "the key `n` is the string \"false\""
        );
        assert_eq!(m["q"], "yES", "only the three spellings Go lists are booleans");
    }

    #[test]
    fn values_json_cannot_hold_are_errors_naming_the_file() {
        let err = parse_values("a: .inf\n", "over.yaml").unwrap_err().to_string();
        assert!(
            err.contains("over.yaml") && err.contains("unsupported value"),
            "{err}"
        );
        let err = parse_values("~: 1\n", "keys.yaml").unwrap_err().to_string();
        assert!(err.contains("keys.yaml") && err.contains("map key"), "{err}");
        let err = parse_values("a: [1\n", "broken.yaml").unwrap_err().to_string();
        assert!(err.contains("broken.yaml") && err.contains("line"), "{err}");
    }

    #[test]
    fn single_scalars_and_keys_for_callers_with_their_own_parser() {
        assert_eq!(scalar_to_json("off", true, None), Ok(Json::Bool(false)));
        assert_eq!(scalar_to_json("off", false, None), Ok(Json::from("off")));
        assert_eq!(scalar_to_json("12", true, None), Ok(Json::from(12.0)));
        assert_eq!(
            scalar_to_json("12", true, Some("tag:yaml.org,2002:str")),
            Ok(Json::from("12"))
        );
        assert_eq!(scalar_to_json("12", false, Some("!!int")), Ok(Json::from(12.0)));
        assert_eq!(scalar_to_json("12", true, Some("!custom")), Ok(Json::from("12")));
        assert!(scalar_to_json("abc", true, Some("!!int")).is_err());
        assert!(scalar_to_json(".nan", true, None).is_err());
        assert_eq!(key_to_string("on", true, None).as_deref(), Ok("true"));
        assert_eq!(key_to_string("on", false, None).as_deref(), Ok("on"));
        assert_eq!(key_to_string("0x10", true, None).as_deref(), Ok("16"));
        assert!(
            key_to_string("null", true, None)
                .unwrap_err()
                .contains("quote it")
        );
        assert!(key_to_string("x", true, Some("!!int")).is_err());
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

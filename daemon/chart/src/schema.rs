//! `values.schema.json` validation: the JSON Schema (draft-07) subset charts use.
//!
//! Supported: `type` (one or a list; `integer` accepts whole floats, as values files
//! give floats), `required`, `properties`, `patternProperties`, `additionalProperties`,
//! `items`, `enum`, `const`, `minimum`/`maximum`/`exclusiveMinimum`/`exclusiveMaximum`,
//! `multipleOf`, `minLength`/`maxLength`, `pattern`, `minItems`/`maxItems`,
//! `uniqueItems`, `minProperties`/`maxProperties`, `allOf`/`anyOf`/`oneOf`/`not`,
//! `if`/`then`/`else`, and local `$ref` (`#/definitions/...`, `#/$defs/...`); a `$ref` to
//! another document is not fetched (renders never use the network) and goes unchecked.
//! Unknown keywords are ignored, as validators do.

use serde_json::{Map, Value as Json};

use crate::chart::Chart;
use crate::error::{ChartError, Result};

/// Validates the coalesced values of `chart` and of each subchart against their schemas.
pub fn validate_chart(chart: &Chart, values: &Map<String, Json>) -> Result<()> {
    let mut report = String::new();
    collect(chart, values, &mut report);
    if report.is_empty() {
        Ok(())
    } else {
        Err(ChartError::Schema(report))
    }
}

fn collect(chart: &Chart, values: &Map<String, Json>, report: &mut String) {
    if let Some(schema) = &chart.schema {
        let mut errors = Vec::new();
        validate(schema, schema, &Json::Object(values.clone()), "", &mut errors);
        if !errors.is_empty() {
            report.push_str(&format!("{}:\n", chart.name()));
            for e in errors {
                report.push_str(&format!("- {e}\n"));
            }
        }
    }
    for d in &chart.dependencies {
        let sub = match values.get(d.name()) {
            Some(Json::Object(m)) => m.clone(),
            _ => Map::new(),
        };
        collect(d, &sub, report);
    }
}

/// Validates `v` against `schema`, appending `path: problem` lines to `errors`.
pub fn validate(root: &Json, schema: &Json, v: &Json, path: &str, errors: &mut Vec<String>) {
    validate_depth(root, schema, v, path, errors, 0);
}

fn at(path: &str) -> String {
    if path.is_empty() {
        "(root)".to_string()
    } else {
        path.to_string()
    }
}

fn type_name(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "boolean",
        Json::Number(n) if n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0) => {
            "integer"
        }
        Json::Number(_) => "number",
        Json::String(_) => "string",
        Json::Array(_) => "array",
        Json::Object(_) => "object",
    }
}

fn type_ok(want: &str, v: &Json) -> bool {
    let got = type_name(v);
    want == got || (want == "number" && got == "integer")
}

fn resolve<'a>(root: &'a Json, r: &str) -> Option<&'a Json> {
    let pointer = r.strip_prefix('#')?;
    root.pointer(pointer)
}

fn validate_depth(root: &Json, schema: &Json, v: &Json, path: &str, errors: &mut Vec<String>, depth: usize) {
    if depth > 64 {
        errors.push(format!("{}: schema nesting too deep (a $ref cycle?)", at(path)));
        return;
    }
    let s = match schema {
        Json::Bool(true) => return,
        Json::Bool(false) => {
            errors.push(format!("{}: not allowed by the schema", at(path)));
            return;
        }
        Json::Object(s) => s,
        _ => return,
    };
    let recurse = |sch: &Json, val: &Json, p: &str, errs: &mut Vec<String>| {
        validate_depth(root, sch, val, p, errs, depth + 1)
    };
    // A reference to another document (`https://.../_definitions.json#/...`) is not
    // fetched: renders never reach the network, and give the same result everywhere. What
    // it describes goes unchecked; the rest of the schema still applies.
    if let Some(Json::String(r)) = s
        .get("$ref")
        .filter(|r| r.as_str().is_some_and(|r| r.starts_with('#')))
    {
        match resolve(root, r) {
            Some(target) => recurse(target, v, path, errors),
            None => errors.push(format!("{}: cannot resolve $ref {r:?}", at(path))),
        }
    }
    match s.get("type") {
        Some(Json::String(t)) if !type_ok(t, v) => {
            errors.push(format!(
                "{}: Invalid type. Expected: {t}, given: {}",
                at(path),
                type_name(v)
            ));
            return;
        }
        Some(Json::Array(ts)) if !ts.iter().any(|t| t.as_str().is_some_and(|t| type_ok(t, v))) => {
            let want: Vec<&str> = ts.iter().filter_map(Json::as_str).collect();
            errors.push(format!(
                "{}: Invalid type. Expected: {}, given: {}",
                at(path),
                want.join("/"),
                type_name(v)
            ));
            return;
        }
        _ => {}
    }
    if let Some(Json::Array(options)) = s.get("enum")
        && !options.iter().any(|o| json_eq(o, v))
    {
        let list: Vec<String> = options.iter().map(|o| o.to_string()).collect();
        errors.push(format!(
            "{}: must be one of the following: {}",
            at(path),
            list.join(", ")
        ));
    }
    if let Some(c) = s.get("const")
        && !json_eq(c, v)
    {
        errors.push(format!("{}: does not match: {c}", at(path)));
    }
    let num = |k: &str| s.get(k).and_then(Json::as_f64);
    if let Some(x) = v.as_f64() {
        if let Some(m) = num("minimum").filter(|m| x < *m) {
            errors.push(format!("{}: Must be greater than or equal to {m}", at(path)));
        }
        if let Some(m) = num("maximum").filter(|m| x > *m) {
            errors.push(format!("{}: Must be less than or equal to {m}", at(path)));
        }
        if let Some(m) = num("exclusiveMinimum").filter(|m| x <= *m) {
            errors.push(format!("{}: Must be greater than {m}", at(path)));
        }
        if let Some(m) = num("exclusiveMaximum").filter(|m| x >= *m) {
            errors.push(format!("{}: Must be less than {m}", at(path)));
        }
        if let Some(m) = num("multipleOf").filter(|m| *m > 0.0 && ((x / m).round() - x / m).abs() > 1e-9) {
            errors.push(format!("{}: Must be a multiple of {m}", at(path)));
        }
    }
    if let Json::String(text) = v {
        let len = text.chars().count() as f64;
        if let Some(m) = num("minLength").filter(|m| len < *m) {
            errors.push(format!(
                "{}: String length must be greater than or equal to {m}",
                at(path)
            ));
        }
        if let Some(m) = num("maxLength").filter(|m| len > *m) {
            errors.push(format!(
                "{}: String length must be less than or equal to {m}",
                at(path)
            ));
        }
        if let Some(Json::String(p)) = s.get("pattern") {
            match regex::Regex::new(p) {
                Ok(re) if !re.is_match(text) => {
                    errors.push(format!("{}: Does not match pattern '{p}'", at(path)))
                }
                Err(e) => errors.push(format!("{}: invalid pattern {p:?} in schema: {e}", at(path))),
                _ => {}
            }
        }
    }
    if let Json::Array(items) = v {
        let n = items.len() as f64;
        if let Some(m) = num("minItems").filter(|m| n < *m) {
            errors.push(format!("{}: Array must have at least {m} items", at(path)));
        }
        if let Some(m) = num("maxItems").filter(|m| n > *m) {
            errors.push(format!("{}: Array must have at most {m} items", at(path)));
        }
        if s.get("uniqueItems") == Some(&Json::Bool(true)) {
            for (i, a) in items.iter().enumerate() {
                if items[..i].iter().any(|b| json_eq(a, b)) {
                    errors.push(format!("{}: array items must be unique", at(path)));
                    break;
                }
            }
        }
        match s.get("items") {
            Some(Json::Array(tuple)) => {
                for (i, (sch, item)) in tuple.iter().zip(items).enumerate() {
                    recurse(sch, item, &format!("{path}.{i}"), errors);
                }
            }
            Some(sch) => {
                for (i, item) in items.iter().enumerate() {
                    recurse(sch, item, &format!("{path}.{i}"), errors);
                }
            }
            None => {}
        }
    }
    if let Json::Object(obj) = v {
        let child = |k: &str| {
            if path.is_empty() {
                k.to_string()
            } else {
                format!("{path}.{k}")
            }
        };
        if let Some(Json::Array(req)) = s.get("required") {
            for r in req.iter().filter_map(Json::as_str) {
                if !obj.contains_key(r) {
                    errors.push(format!("{}: {r} is required", at(path)));
                }
            }
        }
        let n = obj.len() as f64;
        if let Some(m) = num("minProperties").filter(|m| n < *m) {
            errors.push(format!("{}: must have at least {m} properties", at(path)));
        }
        if let Some(m) = num("maxProperties").filter(|m| n > *m) {
            errors.push(format!("{}: must have at most {m} properties", at(path)));
        }
        let props = s.get("properties").and_then(Json::as_object);
        let patterns: Vec<(regex::Regex, &Json)> = s
            .get("patternProperties")
            .and_then(Json::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(p, sch)| regex::Regex::new(p).ok().map(|re| (re, sch)))
                    .collect()
            })
            .unwrap_or_default();
        for (k, val) in obj {
            let mut known = false;
            if let Some(sch) = props.and_then(|p| p.get(k)) {
                known = true;
                recurse(sch, val, &child(k), errors);
            }
            for (re, sch) in &patterns {
                if re.is_match(k) {
                    known = true;
                    recurse(sch, val, &child(k), errors);
                }
            }
            if !known {
                match s.get("additionalProperties") {
                    Some(Json::Bool(false)) => {
                        errors.push(format!("{}: Additional property {k} is not allowed", at(path)));
                    }
                    Some(sch @ Json::Object(_)) => recurse(sch, val, &child(k), errors),
                    _ => {}
                }
            }
        }
    }
    if let Some(Json::Array(all)) = s.get("allOf") {
        for sch in all {
            recurse(sch, v, path, errors);
        }
    }
    let passes = |sch: &Json| {
        let mut e = Vec::new();
        validate_depth(root, sch, v, path, &mut e, depth + 1);
        e.is_empty()
    };
    if let Some(Json::Array(any)) = s.get("anyOf")
        && !any.iter().any(passes)
    {
        errors.push(format!("{}: Must validate at least one schema (anyOf)", at(path)));
    }
    if let Some(Json::Array(one)) = s.get("oneOf") {
        let count = one.iter().filter(|sch| passes(sch)).count();
        if count != 1 {
            errors.push(format!(
                "{}: Must validate one and only one schema (oneOf), matched {count}",
                at(path)
            ));
        }
    }
    if let Some(not) = s.get("not")
        && passes(not)
    {
        errors.push(format!("{}: Must not validate the schema (not)", at(path)));
    }
    if let Some(cond) = s.get("if") {
        let branch = if passes(cond) {
            s.get("then")
        } else {
            s.get("else")
        };
        if let Some(b) = branch {
            recurse(b, v, path, errors);
        }
    }
}

/// JSON equality with 1 == 1.0 (values files give floats, schemas integers).
fn json_eq(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::Number(x), Json::Number(y)) => x.as_f64() == y.as_f64(),
        (Json::Array(x), Json::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_eq(p, q)),
        (Json::Object(x), Json::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn errs(schema: Json, v: Json) -> Vec<String> {
        let mut e = Vec::new();
        validate(&schema, &schema, &v, "", &mut e);
        e
    }

    #[test]
    fn common_keywords() {
        let schema = json!({
            "type": "object",
            "required": ["image"],
            "additionalProperties": false,
            "properties": {
                "image": {"type": "object", "properties": {"tag": {"type": "string", "pattern": "^v"}}},
                "replicas": {"type": "integer", "minimum": 1, "maximum": 5},
                "mode": {"enum": ["a", "b"]},
                "ports": {"type": "array", "items": {"type": "integer"}},
                "ref": {"$ref": "#/definitions/name"}
            },
            "definitions": {"name": {"type": "string", "minLength": 3}}
        });
        assert!(
            errs(
                schema.clone(),
                json!({"image": {"tag": "v1"}, "replicas": 3.0, "mode": "a", "ports": [80.0]})
            )
            .is_empty()
        );
        assert_eq!(
            errs(schema.clone(), json!({"image": {"tag": "1"}})),
            ["image.tag: Does not match pattern '^v'"]
        );
        let e = errs(
            schema,
            json!({"replicas": 9.0, "mode": "c", "ports": ["x"], "extra": 1, "ref": "ab"}),
        );
        let all = e.join("\n");
        for want in [
            "(root): image is required",
            "replicas: Must be less than or equal to 5",
            "mode: must be one of the following",
            "ports.0: Invalid type. Expected: integer, given: string",
            "Additional property extra is not allowed",
            "ref: String length must be greater than or equal to 3",
        ] {
            assert!(all.contains(want), "missing {want:?} in:\n{all}");
        }
    }

    #[test]
    fn combinators_and_ref_cycles_do_not_hang() {
        let remote = json!({"properties": {"a": {"$ref": "https://example.invalid/defs.json#/x"}, "b": {"type": "string"}}});
        let found = errs(remote, json!({"a": {"anything": 1}, "b": 2}));
        assert_eq!(found.len(), 1, "only the local rule applies: {found:?}");
        let schema = json!({"$ref": "#"});
        assert!(!errs(schema, json!(1)).is_empty());
        let schema = json!({"oneOf": [{"type": "string"}, {"type": "integer"}]});
        assert!(errs(schema.clone(), json!("x")).is_empty());
        assert!(!errs(schema, json!(true)).is_empty());
    }
}

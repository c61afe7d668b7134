//! Serialization functions: Helm's `toYaml`/`fromYaml`/`toJson`/`fromJson`/`toToml`/`fromToml`
//! families (pkg/engine/funcs.go) and sprig's JSON variants (`toPrettyJson`, `toRawJson`,
//! `mustFromJson`, ...).
//!
//! Helm's non-`must` readers never fail: a parse error is returned inside the result
//! (`{"Error": "..."}` for dicts, `["..."]` for lists), and its writers return "" (TOML: the
//! error text). JSON output follows Go's `encoding/json`: sorted keys, `<>&` escaped as
//! `\u003c`... (except `toRawJson`), floats positional below 1e21.

use std::sync::Arc;

use crate::tmpl::{Dict, FuncMap, Value};

use super::add;
use super::conv::{arity, call_error, format_float_json, list, map, str_arg, string};
use super::yaml::{Style, emit};
use super::yaml_read::parse_yaml;

pub(crate) fn register(m: &mut FuncMap) {
    add(m, "toYaml", |a| {
        arity("toYaml", a, 1, 1)?;
        Ok(string(yaml_trimmed(&a[0], Style::Helm).unwrap_or_default()))
    });
    add(m, "mustToYaml", |a| {
        arity("mustToYaml", a, 1, 1)?;
        yaml_trimmed(&a[0], Style::Helm)
            .map(string)
            .map_err(|e| call_error("mustToYaml", e))
    });
    add(m, "toYamlPretty", |a| {
        arity("toYamlPretty", a, 1, 1)?;
        Ok(string(yaml_trimmed(&a[0], Style::Pretty).unwrap_or_default()))
    });
    add(m, "fromYaml", |a| {
        arity("fromYaml", a, 1, 1)?;
        let parsed = parse_yaml(str_arg("fromYaml", &a[0])?);
        Ok(into_dict(
            parsed,
            "error unmarshaling JSON: while decoding JSON: ",
        ))
    });
    add(m, "fromYamlArray", |a| {
        arity("fromYamlArray", a, 1, 1)?;
        let parsed = parse_yaml(str_arg("fromYamlArray", &a[0])?);
        Ok(into_list(
            parsed,
            "error unmarshaling JSON: while decoding JSON: ",
        ))
    });
    add(m, "toJson", |a| {
        arity("toJson", a, 1, 1)?;
        Ok(string(to_json(&a[0], true, false).unwrap_or_default()))
    });
    add(m, "mustToJson", |a| {
        arity("mustToJson", a, 1, 1)?;
        to_json(&a[0], true, false)
            .map(string)
            .map_err(|e| call_error("mustToJson", e))
    });
    add(m, "toPrettyJson", |a| {
        arity("toPrettyJson", a, 1, 1)?;
        Ok(string(to_json(&a[0], true, true).unwrap_or_default()))
    });
    add(m, "mustToPrettyJson", |a| {
        arity("mustToPrettyJson", a, 1, 1)?;
        to_json(&a[0], true, true)
            .map(string)
            .map_err(|e| call_error("mustToPrettyJson", e))
    });
    add(m, "toRawJson", |a| {
        arity("toRawJson", a, 1, 1)?;
        Ok(string(to_json(&a[0], false, false).unwrap_or_default()))
    });
    add(m, "mustToRawJson", |a| {
        arity("mustToRawJson", a, 1, 1)?;
        to_json(&a[0], false, false)
            .map(string)
            .map_err(|e| call_error("mustToRawJson", e))
    });
    add(m, "fromJson", |a| {
        arity("fromJson", a, 1, 1)?;
        Ok(into_dict(parse_json(str_arg("fromJson", &a[0])?), ""))
    });
    add(m, "fromJsonArray", |a| {
        arity("fromJsonArray", a, 1, 1)?;
        Ok(into_list(parse_json(str_arg("fromJsonArray", &a[0])?), ""))
    });
    add(m, "mustFromJson", |a| {
        arity("mustFromJson", a, 1, 1)?;
        parse_json(str_arg("mustFromJson", &a[0])?).map_err(|e| call_error("mustFromJson", e))
    });
    add(m, "toToml", |a| {
        arity("toToml", a, 1, 1)?;
        Ok(string(to_toml(&a[0]).unwrap_or_else(|e| e)))
    });
    add(m, "mustToToml", |a| {
        arity("mustToToml", a, 1, 1)?;
        to_toml(&a[0])
            .map(string)
            .map_err(|e| call_error("mustToToml", e))
    });
    add(m, "fromToml", |a| {
        arity("fromToml", a, 1, 1)?;
        Ok(match from_toml(str_arg("fromToml", &a[0])?) {
            Ok(v) => v,
            Err(e) => error_dict(e),
        })
    });
}

fn yaml_trimmed(v: &Value, style: Style) -> Result<String, String> {
    let mut s = emit(v, style)?;
    if s.ends_with('\n') {
        s.pop();
    }
    Ok(s)
}

fn error_dict(msg: String) -> Value {
    let mut m = Dict::new();
    m.insert(Arc::from("Error"), string(msg));
    map(m)
}

/// The JSON type name Go's decoder reports for a value it cannot store.
fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::List(_) => "array",
        Value::Map(_) => "object",
        Value::String(_) => "string",
        Value::Bool(_) => "bool",
        _ => "number",
    }
}

fn into_dict(parsed: Result<Value, String>, prefix: &str) -> Value {
    match parsed {
        Ok(v @ Value::Map(_)) => v,
        Ok(Value::Nil) => map(Dict::new()),
        Ok(other) => error_dict(format!(
            "{prefix}json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
            json_kind(&other)
        )),
        Err(e) => error_dict(e),
    }
}

fn into_list(parsed: Result<Value, String>, prefix: &str) -> Value {
    match parsed {
        Ok(v @ Value::List(_)) => v,
        Ok(Value::Nil) => list(Vec::new()),
        Ok(other) => list(vec![string(format!(
            "{prefix}json: cannot unmarshal {} into Go value of type []interface {{}}",
            json_kind(&other)
        ))]),
        Err(e) => list(vec![string(e)]),
    }
}

/// Parses JSON as Go's `json.Unmarshal` into `interface{}`: every number is a float64.
pub(crate) fn parse_json(s: &str) -> Result<Value, String> {
    let v: serde_json::Value = serde_json::from_str(s).map_err(|e| {
        if e.is_eof() {
            return "unexpected end of JSON input".to_string();
        }
        let bad = s
            .lines()
            .nth(e.line().saturating_sub(1))
            .and_then(|l| l.chars().nth(e.column().saturating_sub(1)))
            .unwrap_or(' ');
        format!("invalid character {bad:?} looking for beginning of value")
    })?;
    Ok(from_json_value(v))
}

fn from_json_value(v: serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Bool(b),
        serde_json::Value::Number(n) => Value::Float(n.as_f64().unwrap_or(0.0)),
        serde_json::Value::String(s) => string(s),
        serde_json::Value::Array(items) => list(items.into_iter().map(from_json_value).collect()),
        serde_json::Value::Object(o) => map(o
            .into_iter()
            .map(|(k, v)| (Arc::from(k), from_json_value(v)))
            .collect()),
    }
}

/// Go's `json.Marshal` (`html`: escape `<`, `>`, `&`; `pretty`: `MarshalIndent(v, "", "  ")`).
pub(crate) fn to_json(v: &Value, html: bool, pretty: bool) -> Result<String, String> {
    if super::conv::too_deep(v) {
        return Err(super::conv::too_deep_message());
    }
    let mut out = String::new();
    write_json(&mut out, v, html, pretty.then_some(0))?;
    Ok(out)
}

fn newline_indent(out: &mut String, level: usize) {
    out.push('\n');
    out.extend(std::iter::repeat_n("  ", level));
}

fn write_json(out: &mut String, v: &Value, html: bool, indent: Option<usize>) -> Result<(), String> {
    match v {
        Value::Nil => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => out.push_str(&i.to_string()),
        Value::Uint(u) => out.push_str(&u.to_string()),
        Value::Float(f) => {
            if !f.is_finite() {
                return Err(format!(
                    "json: unsupported value: {}",
                    super::conv::format_float_g(*f)
                ));
            }
            out.push_str(&format_float_json(*f));
        }
        Value::String(s) => json_string(out, s, html),
        Value::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                if let Some(level) = indent {
                    newline_indent(out, level + 1);
                }
                write_json(out, item, html, indent.map(|l| l + 1))?;
            }
            if let (Some(level), false) = (indent, items.is_empty()) {
                newline_indent(out, level);
            }
            out.push(']');
        }
        Value::Map(m) => {
            let m = m.borrow();
            out.push('{');
            for (i, (k, item)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                if let Some(level) = indent {
                    newline_indent(out, level + 1);
                }
                json_string(out, k, html);
                out.push(':');
                if indent.is_some() {
                    out.push(' ');
                }
                write_json(out, item, html, indent.map(|l| l + 1))?;
            }
            if let (Some(level), false) = (indent, m.is_empty()) {
                newline_indent(out, level);
            }
            out.push('}');
        }
        Value::Function(_) => return Err("json: unsupported type: func()".into()),
        // What `MarshalJSON` gives for the types we have (`*semver.Version`: its string).
        Value::Object(o) => write_json(out, &o.to_value(), html, indent)?,
    }
    Ok(())
}

fn json_string(out: &mut String, s: &str, html: bool) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' if html => out.push_str(&format!("\\u{:04x}", c as u32)),
            '\u{2028}' | '\u{2029}' => out.push_str(&format!("\\u{:04x}", c as u32)),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// BurntSushi/toml's encoder as Helm's `toToml` uses it: plain keys first, then tables
/// (`[a]`, `[[a]]`), sub-tables indented two spaces per level.
pub(crate) fn to_toml(v: &Value) -> Result<String, String> {
    let v = v.clone().plain();
    let Value::Map(m) = &v else {
        return Err("toml: top-level values must be Go maps or structs".into());
    };
    if super::conv::too_deep(&v) {
        return Err(super::conv::too_deep_message());
    }
    let mut out = String::new();
    toml_table(&mut out, &[], &m.borrow())?;
    Ok(out)
}

fn is_table(v: &Value) -> bool {
    match v {
        Value::Map(_) => true,
        Value::Object(o) => is_table(&o.to_value()),
        _ => false,
    }
}

fn is_table_array(v: &Value) -> bool {
    matches!(v, Value::List(items) if !items.is_empty() && items.iter().all(is_table))
}

fn toml_key(k: &str) -> String {
    if !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        k.to_string()
    } else {
        toml_quote(k)
    }
}

fn toml_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\u{:04X}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn toml_value(v: &Value) -> Result<String, String> {
    Ok(match v {
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Uint(u) => u.to_string(),
        Value::Float(f) if f.is_nan() => "nan".into(),
        Value::Float(f) if f.is_infinite() => if *f > 0.0 { "inf" } else { "-inf" }.into(),
        Value::Float(f) => {
            let s = format_float_json(*f);
            if s.contains(['.', 'e']) {
                s
            } else {
                format!("{s}.0")
            }
        }
        Value::String(s) => toml_quote(s),
        Value::List(items) => {
            let parts: Result<Vec<String>, String> = items.iter().map(toml_value).collect();
            format!("[{}]", parts?.join(", "))
        }
        Value::Map(m) => {
            let mut parts = Vec::new();
            for (k, item) in m.borrow().iter() {
                if !matches!(item, Value::Nil) {
                    parts.push(format!("{} = {}", toml_key(k), toml_value(item)?));
                }
            }
            format!("{{{}}}", parts.join(", "))
        }
        Value::Nil => return Err("toml: cannot encode a nil value".into()),
        Value::Function(_) => return Err("toml: unsupported type: func".into()),
        Value::Object(o) => return toml_value(&o.to_value()),
    })
}

fn toml_table(out: &mut String, path: &[String], m: &Dict) -> Result<(), String> {
    let sub_indent = "  ".repeat(path.len());
    for (k, v) in m.iter() {
        if matches!(v, Value::Nil) || is_table(v) || is_table_array(v) {
            continue;
        }
        out.push_str(&format!("{sub_indent}{} = {}\n", toml_key(k), toml_value(v)?));
    }
    for (k, v) in m.iter() {
        let mut child: Vec<String> = path.to_vec();
        child.push(toml_key(k));
        let header = child.join(".");
        let child_indent = "  ".repeat(child.len() - 1);
        match v.clone().plain() {
            Value::Map(inner) => {
                if child.len() == 1 && !out.is_empty() {
                    out.push('\n');
                }
                out.push_str(&format!("{child_indent}[{header}]\n"));
                toml_table(out, &child, &inner.borrow())?;
            }
            Value::List(items) if is_table_array(v) => {
                for item in items.iter() {
                    if let Value::Map(inner) = item.clone().plain() {
                        if !out.is_empty() {
                            out.push('\n');
                        }
                        out.push_str(&format!("{child_indent}[[{header}]]\n"));
                        toml_table(out, &child, &inner.borrow())?;
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Parses TOML as `toml.Unmarshal` into a map does (integers stay int64).
pub(crate) fn from_toml(s: &str) -> Result<Value, String> {
    let table: toml::Table = toml::from_str(s).map_err(|e| {
        let start = e.span().map(|r| r.start.min(s.len())).unwrap_or(0);
        let line = s[..start].matches('\n').count() + 1;
        format!("toml: line {line}: {}", burntsushi_wording(e.message(), s, start))
    })?;
    Ok(from_toml_value(toml::Value::Table(table)))
}

/// BurntSushi/toml's wording for the errors people hit most (a key without `= value`);
/// other messages keep the `toml` crate's text.
fn burntsushi_wording(msg: &str, src: &str, at: usize) -> String {
    if msg.contains("expected `=`") {
        // BurntSushi reports the first character after the key, or EOF.
        let after_key = src[at..]
            .char_indices()
            .find(|(_, c)| !(c.is_alphanumeric() || *c == '_' || *c == '-' || *c == ' ' || *c == '\t'))
            .map(|(i, c)| (at + i, c));
        return match after_key {
            None => "unexpected EOF; expected key separator '='".to_string(),
            Some((_, c)) if c == '\n' || c == '\r' => {
                format!("expected key separator '=', but got {c:?} instead")
            }
            Some((_, c)) => format!("expected key separator '=', but got {c:?} instead"),
        };
    }
    msg.trim_end().to_string()
}

fn from_toml_value(v: toml::Value) -> Value {
    match v {
        toml::Value::String(s) => string(s),
        toml::Value::Integer(i) => Value::Int(i),
        toml::Value::Float(f) => Value::Float(f),
        toml::Value::Boolean(b) => Value::Bool(b),
        toml::Value::Datetime(d) => string(d.to_string()),
        toml::Value::Array(items) => list(items.into_iter().map(from_toml_value).collect()),
        toml::Value::Table(t) => map(t
            .into_iter()
            .map(|(k, v)| (Arc::from(k), from_toml_value(v)))
            .collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pairs: &[(&str, Value)]) -> Value {
        map(pairs.iter().map(|(k, v)| (Arc::from(*k), v.clone())).collect())
    }

    #[test]
    fn json_matches_go_encoding() {
        let v = m(&[
            ("html", string("<a&b>")),
            ("n", Value::Float(42.0)),
            ("big", Value::Float(1e21)),
            ("l", list(vec![])),
        ]);
        assert_eq!(
            to_json(&v, true, false).unwrap(),
            r#"{"big":1e+21,"html":"\u003ca\u0026b\u003e","l":[],"n":42}"#
        );
        assert_eq!(
            to_json(&v, false, false).unwrap(),
            r#"{"big":1e+21,"html":"<a&b>","l":[],"n":42}"#
        );
        assert_eq!(
            to_json(&m(&[("a", list(vec![Value::Int(1)]))]), true, true).unwrap(),
            "{\n  \"a\": [\n    1\n  ]\n}"
        );
        assert!(to_json(&Value::Float(f64::NAN), true, false).is_err());
    }

    #[test]
    fn toml_matches_burntsushi_layout() {
        let v = m(&[
            ("top", string("x")),
            (
                "mast",
                m(&[("sail", string("white")), ("deep", m(&[("n", Value::Int(1))]))]),
            ),
            ("f", Value::Float(2.0)),
        ]);
        assert_eq!(
            to_toml(&v).unwrap(),
            "f = 2.0\ntop = \"x\"\n\n[mast]\n  sail = \"white\"\n  [mast.deep]\n    n = 1\n"
        );
        assert!(to_toml(&string("x")).is_err());
    }

    fn field(v: &Value, k: &str) -> Option<Value> {
        match v {
            Value::Map(m) => m.get(k),
            _ => None,
        }
    }

    #[test]
    fn readers_report_errors_in_band() {
        let d = into_dict(parse_json("[1]"), "");
        assert_eq!(
            field(&d, "Error").unwrap(),
            string("json: cannot unmarshal array into Go value of type map[string]interface {}")
        );
        assert!(parse_json("{").is_err());
        assert_eq!(
            field(&parse_json("{\"a\": 5}").unwrap(), "a"),
            Some(Value::Float(5.0))
        );
    }

    #[test]
    fn readers_build_fresh_dicts() {
        let a = parse_json("{\"a\": {}}").unwrap();
        let b = parse_json("{\"a\": {}}").unwrap();
        let (Value::Map(a), Value::Map(b)) = (a, b) else {
            panic!("dicts")
        };
        assert!(!a.ptr_eq(&b));
        let fresh = into_dict(Ok(Value::Nil), "");
        assert_eq!(fresh, Value::empty_map());
    }

    #[test]
    fn writers_see_objects_as_their_plain_value() {
        let v = super::super::semver::Version::parse("v1.2.3")
            .map(super::super::semver::SemverObject::value)
            .unwrap();
        assert_eq!(to_json(&v, true, false).unwrap(), "\"1.2.3\"");
        let d = m(&[("v", v)]);
        assert_eq!(to_json(&d, true, false).unwrap(), r#"{"v":"1.2.3"}"#);
        assert_eq!(to_toml(&d).unwrap(), "v = \"1.2.3\"\n");
    }
}

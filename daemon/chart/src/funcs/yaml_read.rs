//! YAML reading with Helm's semantics: `sigs.k8s.io/yaml.Unmarshal`, i.e. go-yaml v2
//! (YAML 1.1 scalars) followed by a JSON round trip.
//!
//! Consequences reproduced here: `yes`/`on`/`off` are booleans; every number becomes a
//! float64 ([`Value::Float`]); timestamps stay their text; map keys become strings (a null
//! key is an error); only the first document counts.
//!
//! Rendered manifests take the other road through the same library, `YAMLToJSON` then a
//! typed decoder: integers stay integers (`0644` is 420, not 420.0). [`Numbers`] selects
//! which, so values and manifests share one YAML 1.1 resolver.
//! Quoted scalars are always strings, which is why this reads parser events (with their
//! scalar style) rather than an already-resolved tree.
//! Every alias (`*x`) is a copy of its anchor's node, as after Helm's JSON round trip: dicts
//! are references ([`crate::tmpl::Map`]), and `set` on one must not change the other.

use std::collections::HashMap;
use std::sync::Arc;

use yaml_rust2::parser::{Event, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use crate::tmpl::{Dict, Value};

use super::conv::{deep_copy, format_float_g, format_float_g32, parse_go_int_strict};

/// Deepest nesting accepted; go-yaml has a similar guard against stack exhaustion.
const MAX_DEPTH: usize = 512;
/// Node budget including alias expansions ("billion laughs" protection).
const MAX_NODES: usize = 2_000_000;

/// How numbers come out of the reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Numbers {
    /// Every number a float64: `sigs.k8s.io/yaml.Unmarshal` into `interface{}`, as Helm
    /// reads values (the JSON step turns every number into a float64).
    Float64,
    /// Integers kept as [`Value::Int`] / [`Value::Uint`], floats as [`Value::Float`]:
    /// `sigs.k8s.io/yaml.YAMLToJSON`, as Helm hands rendered manifests to Kubernetes.
    Typed,
}

/// Parses the first YAML document of `src` as Helm does; an empty document is nil.
pub fn parse_yaml(src: &str) -> Result<Value, String> {
    let mut r = Reader::new(src, Numbers::Float64);
    loop {
        match r.next()? {
            (Event::StreamStart, _) | (Event::DocumentStart, _) => continue,
            (Event::StreamEnd, _) | (Event::DocumentEnd, _) => return Ok(Value::Nil),
            (ev, mark) => return r.node(ev, mark, 0).map(|(v, _)| v),
        }
    }
}

/// Every document of `src`, each read as [`parse_yaml`] reads the first, with numbers as
/// `numbers` says. Documents with no node at all (`---` followed by nothing) are left out;
/// an explicit null (`~`) is kept as [`Value::Nil`]. Anchors do not cross documents.
pub(crate) fn parse_documents(src: &str, numbers: Numbers) -> Result<Vec<Value>, String> {
    let mut r = Reader::new(src, numbers);
    let mut docs = Vec::new();
    loop {
        match r.next()? {
            (Event::StreamStart | Event::DocumentStart | Event::DocumentEnd, _) => continue,
            (Event::StreamEnd, _) => return Ok(docs),
            (ev, mark) => {
                r.anchors.clear();
                docs.push(r.node(ev, mark, 0)?.0);
            }
        }
    }
}

struct Reader<'a> {
    parser: Parser<std::str::Chars<'a>>,
    anchors: HashMap<usize, (Value, usize)>,
    nodes: usize,
    numbers: Numbers,
}

/// A scalar resolved the way go-yaml v2 resolves an untagged plain scalar.
#[derive(Debug, PartialEq)]
pub(crate) enum Scalar {
    Null,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
    Timestamp,
    Str,
}

fn yaml_err(mark: Marker, msg: &str) -> String {
    format!("error converting YAML to JSON: yaml: line {}: {msg}", mark.line())
}

impl<'a> Reader<'a> {
    fn new(src: &'a str, numbers: Numbers) -> Self {
        Reader {
            parser: Parser::new_from_str(src),
            anchors: HashMap::new(),
            nodes: 0,
            numbers,
        }
    }

    fn next(&mut self) -> Result<(Event, Marker), String> {
        self.parser.next_token().map_err(|e| {
            format!(
                "error converting YAML to JSON: yaml: line {}: {}",
                e.marker().line(),
                e.info()
            )
        })
    }

    fn count(&mut self, n: usize, mark: Marker) -> Result<(), String> {
        self.nodes = self.nodes.saturating_add(n);
        if self.nodes > MAX_NODES {
            return Err(yaml_err(mark, "document contains excessive aliasing"));
        }
        Ok(())
    }

    /// Reads one node starting with `ev`; returns it and its size in nodes.
    fn node(&mut self, ev: Event, mark: Marker, depth: usize) -> Result<(Value, usize), String> {
        if depth > MAX_DEPTH {
            return Err(yaml_err(mark, "exceeded max depth"));
        }
        match ev {
            Event::Alias(id) => {
                let (v, size) = self
                    .anchors
                    .get(&id)
                    .cloned()
                    .ok_or_else(|| yaml_err(mark, "unknown anchor referenced"))?;
                self.count(size, mark)?;
                // The node budget bounds the copying; the copy cannot fail within it.
                let v = deep_copy(&v).map_err(|e| yaml_err(mark, &e))?;
                Ok((v, size))
            }
            Event::Scalar(text, style, anchor, tag) => {
                self.count(1, mark)?;
                let v = scalar_value_as(
                    &text,
                    style == TScalarStyle::Plain,
                    ScalarTag::of(tag.as_ref()),
                    self.numbers,
                )
                .map_err(|e| yaml_err(mark, &e))?;
                if anchor > 0 {
                    self.anchors.insert(anchor, (v.clone(), 1));
                }
                Ok((v, 1))
            }
            Event::SequenceStart(anchor, _) => {
                let mut items = Vec::new();
                let mut size = 1;
                loop {
                    let (ev, mark) = self.next()?;
                    if matches!(ev, Event::SequenceEnd) {
                        break;
                    }
                    let (v, s) = self.node(ev, mark, depth + 1)?;
                    size += s;
                    items.push(v);
                }
                self.count(1, mark)?;
                let v = Value::List(items.into());
                if anchor > 0 {
                    self.anchors.insert(anchor, (v.clone(), size));
                }
                Ok((v, size))
            }
            Event::MappingStart(anchor, _) => {
                let mut map = Dict::new();
                let mut size = 1;
                loop {
                    let (kev, kmark) = self.next()?;
                    if matches!(kev, Event::MappingEnd) {
                        break;
                    }
                    let is_merge =
                        matches!(&kev, Event::Scalar(t, TScalarStyle::Plain, _, None) if t == "<<");
                    let key = match &kev {
                        Event::Scalar(t, style, _, tag) => {
                            match key_string(t, *style == TScalarStyle::Plain, ScalarTag::of(tag.as_ref())) {
                                Ok(Some(k)) => k,
                                Ok(None) => {
                                    return Err(
                                        "error converting YAML to JSON: unsupported map key of type: <nil>"
                                            .to_string(),
                                    );
                                }
                                Err(e) => return Err(yaml_err(kmark, &e)),
                            }
                        }
                        // JSON object keys are strings; go-yaml refuses collections as keys.
                        _ => {
                            return Err(yaml_err(
                                kmark,
                                "invalid map key: a sequence or mapping cannot be a key",
                            ));
                        }
                    };
                    let (vev, vmark) = self.next()?;
                    let (v, s) = self.node(vev, vmark, depth + 1)?;
                    size += s;
                    if is_merge {
                        // go-yaml v2 merges where `<<` stands: it overrides the keys before
                        // it, later keys override it, and of a list of maps the first wins.
                        let sources: Vec<&crate::tmpl::Map> = match &v {
                            Value::Map(m) => vec![m],
                            Value::List(items) => items
                                .iter()
                                .rev()
                                .map(|item| match item {
                                    Value::Map(m) => Ok(m),
                                    _ => Err(yaml_err(
                                        vmark,
                                        "map merge requires map or sequence of maps as the value",
                                    )),
                                })
                                .collect::<Result<_, _>>()?,
                            _ => {
                                return Err(yaml_err(
                                    vmark,
                                    "map merge requires map or sequence of maps as the value",
                                ));
                            }
                        };
                        for source in sources {
                            map.extend(source.borrow().iter().map(|(k, v)| (k.clone(), v.clone())));
                        }
                        continue;
                    }
                    map.insert(Arc::from(key), v);
                }
                self.count(1, mark)?;
                let v = Value::map(map);
                if anchor > 0 {
                    self.anchors.insert(anchor, (v.clone(), size));
                }
                Ok((v, size))
            }
            other => Err(yaml_err(mark, &format!("unexpected event {other:?}"))),
        }
    }
}

/// The tag of a scalar, as go-yaml v2 tells them apart.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum ScalarTag<'a> {
    Untagged,
    /// A core-schema tag (`!!int` or `tag:yaml.org,2002:int`): its suffix, `int`.
    Core(&'a str),
    /// Any other tag: go-yaml keeps the text as a string.
    Custom,
}

impl<'a> ScalarTag<'a> {
    fn of(tag: Option<&'a Tag>) -> Self {
        const CORE: &str = "tag:yaml.org,2002:";
        match tag {
            None => ScalarTag::Untagged,
            Some(t) if t.handle == "!!" || t.handle == CORE => ScalarTag::Core(&t.suffix),
            // Verbatim `!<tag:yaml.org,2002:int>`.
            Some(t) if t.handle.is_empty() || t.handle == "!" => t
                .suffix
                .strip_prefix(CORE)
                .map_or(ScalarTag::Custom, ScalarTag::Core),
            Some(_) => ScalarTag::Custom,
        }
    }

    /// From a tag written out in full (`tag:yaml.org,2002:str`) or short (`!!str`).
    pub(crate) fn from_name(tag: Option<&'a str>) -> Self {
        match tag {
            None => ScalarTag::Untagged,
            Some(t) => t
                .strip_prefix("tag:yaml.org,2002:")
                .or_else(|| t.strip_prefix("!!"))
                .map_or(ScalarTag::Custom, ScalarTag::Core),
        }
    }
}

/// What a scalar decodes to in go-yaml v2 (`resolve` plus the decoder's `!!binary`
/// step): quoted and custom-tagged scalars are strings, a core tag must agree with the
/// text (`!!int abc` is an error, `!!float 3` is fine), `!!binary` is base64.
fn typed_scalar(text: &str, plain: bool, tag: ScalarTag) -> Result<(Scalar, Option<String>), String> {
    let want = match tag {
        ScalarTag::Untagged if plain => return Ok((resolve_plain(text), None)),
        ScalarTag::Untagged | ScalarTag::Custom => return Ok((Scalar::Str, None)),
        ScalarTag::Core("binary") => return decode_binary(text).map(|s| (Scalar::Str, Some(s))),
        ScalarTag::Core(t @ ("int" | "float" | "bool" | "null" | "timestamp")) => t,
        // `!!str`, and tags go-yaml does not resolve (`!!map`, `!!merge`, ...), keep the text.
        ScalarTag::Core(_) => return Ok((Scalar::Str, None)),
    };
    let resolved = resolve_plain(text);
    let got = match resolved {
        Scalar::Null => "null",
        Scalar::Bool(_) => "bool",
        Scalar::Int(_) | Scalar::Uint(_) => "int",
        Scalar::Float(_) => "float",
        Scalar::Timestamp => "timestamp",
        Scalar::Str => "str",
    };
    match resolved {
        r if got == want => Ok((r, None)),
        // go-yaml converts the integer: `!!float 3` is the float64 3.
        Scalar::Int(i) if want == "float" => Ok((Scalar::Float(i as f64), None)),
        Scalar::Uint(u) if want == "float" => Ok((Scalar::Float(u as f64), None)),
        _ => Err(format!("cannot decode !!{got} `{text}` as a !!{want}")),
    }
}

/// `!!binary` text: standard base64, line breaks ignored (Go's `StdEncoding`). The bytes
/// become a string; JSON cannot hold invalid UTF-8, so such bytes become U+FFFD as Go's
/// encoder makes them.
fn decode_binary(text: &str) -> Result<String, String> {
    use base64::Engine;
    let clean: String = text.chars().filter(|c| *c != '\n' && *c != '\r').collect();
    base64::engine::general_purpose::STANDARD
        .decode(clean)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .map_err(|_| "!!binary value contains invalid base64 data".to_string())
}

/// The JSON-side value of a scalar: numbers are float64, timestamps stay text.
///
/// `plain` is false for quoted and block scalars.
pub(crate) fn scalar_value(text: &str, plain: bool, tag: ScalarTag) -> Result<Value, String> {
    scalar_value_as(text, plain, tag, Numbers::Float64)
}

/// [`scalar_value`] with the choice of what numbers become.
fn scalar_value_as(text: &str, plain: bool, tag: ScalarTag, numbers: Numbers) -> Result<Value, String> {
    let (resolved, decoded) = typed_scalar(text, plain, tag)?;
    Ok(match resolved {
        Scalar::Null => Value::Nil,
        Scalar::Bool(b) => Value::Bool(b),
        Scalar::Int(i) if numbers == Numbers::Typed => Value::Int(i),
        Scalar::Uint(u) if numbers == Numbers::Typed => Value::Uint(u),
        Scalar::Int(i) => Value::Float(i as f64),
        Scalar::Uint(u) => Value::Float(u as f64),
        Scalar::Float(f) if !f.is_finite() => {
            return Err(format!("json: unsupported value: {}", format_float_g(f)));
        }
        Scalar::Float(f) => Value::Float(f),
        // go-yaml v2 keeps timestamps as their text when decoding into interface{}.
        Scalar::Timestamp | Scalar::Str => Value::String(decoded.as_deref().unwrap_or(text).into()),
    })
}

/// Map keys are strings after the JSON step; non-string keys are formatted as
/// sigs.k8s.io/yaml formats them (floats through float32: `3.1415927`, `1e+07`, `.inf`), and
/// a null key has no JSON form (`Ok(None)`). An integer above `i64::MAX` is an error there
/// too. Arguments as for [`scalar_value`].
pub(crate) fn key_string(text: &str, plain: bool, tag: ScalarTag) -> Result<Option<String>, String> {
    let (resolved, decoded) = typed_scalar(text, plain, tag)?;
    Ok(Some(match resolved {
        Scalar::Null => return Ok(None),
        Scalar::Bool(b) => b.to_string(),
        Scalar::Int(i) => i.to_string(),
        Scalar::Uint(_) => {
            return Err(format!(
                "unsupported map key of type: uint64: the key `{text}` is larger than a Go int; quote it"
            ));
        }
        Scalar::Float(f) => match format_float_g32(f).as_str() {
            "+Inf" => ".inf".to_string(),
            "-Inf" => "-.inf".to_string(),
            "NaN" => ".nan".to_string(),
            s => s.to_string(),
        },
        Scalar::Timestamp | Scalar::Str => decoded.unwrap_or_else(|| text.to_string()),
    }))
}

/// go-yaml v2's `resolve` for an untagged plain scalar.
pub(crate) fn resolve_plain(s: &str) -> Scalar {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Scalar::Null,
        "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            return Scalar::Bool(true);
        }
        "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            return Scalar::Bool(false);
        }
        ".nan" | ".NaN" | ".NAN" => return Scalar::Float(f64::NAN),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Scalar::Float(f64::INFINITY);
        }
        "-.inf" | "-.Inf" | "-.INF" => return Scalar::Float(f64::NEG_INFINITY),
        _ => {}
    }
    let first = s.as_bytes()[0];
    match first {
        b'.' => match s.parse::<f64>() {
            Ok(f) if f.is_finite() && !s.contains(['i', 'I', 'n', 'N']) => Scalar::Float(f),
            _ => Scalar::Str,
        },
        b'+' | b'-' | b'0'..=b'9' => {
            if super::dates::is_yaml_timestamp(s) {
                return Scalar::Timestamp;
            }
            let plain = s.replace('_', "");
            if let Some(i) = parse_go_int_strict(&plain) {
                return Scalar::Int(i);
            }
            if let Ok(u) = plain.strip_prefix('+').unwrap_or(&plain).parse::<u64>() {
                return Scalar::Uint(u);
            }
            if super::yaml::is_yaml_float_syntax(&plain)
                && let Ok(f) = plain.parse::<f64>()
                && f.is_finite()
            {
                return Scalar::Float(f);
            }
            Scalar::Str
        }
        _ => Scalar::Str,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(v: &Value, k: &str) -> Value {
        match v {
            Value::Map(m) => m.get(k).unwrap_or(Value::Nil),
            _ => Value::Nil,
        }
    }

    #[test]
    fn scalars_resolve_like_yaml_1_1_through_json() {
        let v = parse_yaml(
            "a: yes\nb: 'yes'\nc: 8080\nd: 0x1F\ne: 1.5\nf: ~\ng: 2020-01-01\nh: \"12\"\ni: 1_000\nj: 0777\n",
        )
        .unwrap();
        assert_eq!(get(&v, "a"), Value::Bool(true));
        assert_eq!(get(&v, "b"), Value::String("yes".into()));
        assert_eq!(get(&v, "c"), Value::Float(8080.0));
        assert_eq!(get(&v, "d"), Value::Float(31.0));
        assert_eq!(get(&v, "e"), Value::Float(1.5));
        assert_eq!(get(&v, "f"), Value::Nil);
        assert_eq!(
            get(&v, "g"),
            Value::String("2020-01-01".into()),
            "timestamps stay text"
        );
        assert_eq!(get(&v, "h"), Value::String("12".into()));
        assert_eq!(get(&v, "i"), Value::Float(1000.0));
        assert_eq!(get(&v, "j"), Value::Float(511.0));
    }

    #[test]
    fn anchors_merges_and_keys() {
        let v =
            parse_yaml("base: &b {x: 1, z: 2}\nd:\n  <<: *b\n  z: 3\n1: one\ntrue: t\ny: yes-key\n").unwrap();
        let d = get(&v, "d");
        assert_eq!(get(&d, "x"), Value::Float(1.0));
        assert_eq!(get(&d, "z"), Value::Float(3.0));
        assert_eq!(
            get(&v, "true"),
            Value::String("yes-key".into()),
            "YAML 1.1: key `y` is true"
        );
        assert_eq!(get(&v, "1"), Value::String("one".into()));
    }

    #[test]
    fn aliases_are_copies_not_shared_dicts() {
        let v = parse_yaml("a: &x {k: {num: 1}}\nb: *x\nc: [*x]\nd:\n  <<: *x\n").unwrap();
        let handle = |v: Value| match v {
            Value::Map(m) => m,
            other => panic!("not a dict: {other:?}"),
        };
        let a = handle(get(&v, "a"));
        let b = handle(get(&v, "b"));
        assert_eq!(a, b);
        assert!(!a.ptr_eq(&b));
        let Value::List(c) = get(&v, "c") else {
            panic!("c is a list")
        };
        assert!(!handle(c[0].clone()).ptr_eq(&a));
        let d = handle(get(&v, "d"));
        assert!(!handle(get(&Value::Map(d), "k")).ptr_eq(&handle(get(&Value::Map(a.clone()), "k"))));
        handle(get(&Value::Map(b), "k")).insert("num".into(), Value::Float(2.0));
        assert_eq!(get(&get(&Value::Map(a), "k"), "num"), Value::Float(1.0));
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        assert!(parse_yaml("a: [1, 2").is_err());
        assert!(parse_yaml("a: *nope").is_err());
        assert!(parse_yaml(&"[".repeat(2000)).is_err());
        assert_eq!(parse_yaml("").unwrap(), Value::Nil);
        assert_eq!(
            parse_yaml("- a\n---\n- b\n").unwrap(),
            Value::List(vec![Value::String("a".into())].into())
        );
    }
}

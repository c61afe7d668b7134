//! Helm's `--set` syntax (`strvals`), so `helm template` command lines work unchanged.
//!
//! `a.b=c,d[0].e=f,list={x,y},esc=a\,b`: dots nest maps, `[i]` indexes lists (gaps
//! become null), `{...}` is a list, `\` escapes the next character. `--set` infers types
//! like Helm (`true`/`false`, `null`, integers without a leading zero; everything else,
//! floats included, stays a string); `--set-string` keeps strings; `--set-file` reads the
//! value from a file.

use serde_json::{Map, Value as Json};

use crate::error::{ChartError, Result};

/// Helm's limits: list indexes and nesting depth a `--set` may use.
const MAX_INDEX: usize = 65536;
const MAX_NESTED_NAME_LEVEL: usize = 30;

/// How the right-hand side of `key=value` becomes a value.
pub enum ValueKind<'a> {
    /// `--set`: typed (bool, null, int64, string).
    Typed,
    /// `--set-string`: always a string.
    String,
    /// `--set-file`: the value is a path; the file's content becomes the string.
    File(&'a dyn Fn(&str) -> std::result::Result<String, String>),
    /// `--set-json`: the value is one JSON document (numbers become float64, as Helm's
    /// `encoding/json` reads them); an empty value is null.
    Json,
}

/// Parses `expr` and sets its keys in `dest`.
pub fn parse_into(expr: &str, dest: &mut Map<String, Json>, kind: ValueKind<'_>) -> Result<()> {
    let mut p = Parser {
        chars: expr.chars().collect(),
        pos: 0,
        kind,
    };
    p.parse(dest).map_err(|message| ChartError::SetValue {
        expr: expr.to_string(),
        message,
    })
}

/// Parses one `--set` expression into a fresh map.
pub fn parse(expr: &str) -> Result<Map<String, Json>> {
    let mut m = Map::new();
    parse_into(expr, &mut m, ValueKind::Typed)?;
    Ok(m)
}

/// Helm's `typedVal`.
fn typed(v: &str) -> Json {
    if v.eq_ignore_ascii_case("true") {
        return Json::Bool(true);
    }
    if v.eq_ignore_ascii_case("false") {
        return Json::Bool(false);
    }
    if v.eq_ignore_ascii_case("null") {
        return Json::Null;
    }
    if v == "0" {
        return Json::from(0i64);
    }
    if !v.is_empty()
        && !v.starts_with('0')
        && let Ok(i) = v.parse::<i64>()
    {
        return Json::from(i);
    }
    Json::String(v.to_string())
}

enum Stop {
    Eof,
    At(char),
}

/// `Eof` carries "the input ended": not an error by itself.
enum Flow {
    Eof,
    Err(String),
}

impl From<String> for Flow {
    fn from(s: String) -> Self {
        Flow::Err(s)
    }
}

struct Parser<'a> {
    chars: Vec<char>,
    pos: usize,
    kind: ValueKind<'a>,
}

impl Parser<'_> {
    fn parse(&mut self, data: &mut Map<String, Json>) -> std::result::Result<(), String> {
        loop {
            match self.key(data, 0) {
                Ok(()) => continue,
                Err(Flow::Eof) => return Ok(()),
                Err(Flow::Err(e)) => return Err(e),
            }
        }
    }

    /// Reads until one of `stop` (consumed) or the end; `\` escapes.
    fn until(&mut self, stop: &[char]) -> (String, Stop) {
        let mut v = String::new();
        while let Some(&c) = self.chars.get(self.pos) {
            self.pos += 1;
            if stop.contains(&c) {
                return (v, Stop::At(c));
            }
            if c == '\\' {
                match self.chars.get(self.pos) {
                    Some(&n) => {
                        self.pos += 1;
                        v.push(n);
                    }
                    None => return (v, Stop::Eof),
                }
            } else {
                v.push(c);
            }
        }
        (v, Stop::Eof)
    }

    fn read(&self, raw: &str) -> std::result::Result<Json, String> {
        match &self.kind {
            ValueKind::Typed => Ok(typed(raw)),
            ValueKind::String => Ok(Json::String(raw.to_string())),
            ValueKind::File(f) => f(raw).map(Json::String),
            ValueKind::Json => Err("internal: JSON values are read by json_value".into()),
        }
    }

    /// `--set-json`'s value: one JSON document at the cursor, then an optional comma.
    /// `Ok(true)` when the input ended.
    fn json_value(&mut self) -> std::result::Result<(Json, bool), Flow> {
        let skip_blank = |p: &mut Self| {
            while p.chars.get(p.pos).is_some_and(|c| c.is_whitespace()) {
                p.pos += 1;
            }
        };
        skip_blank(self);
        match self.chars.get(self.pos) {
            None => return Ok((Json::Null, true)),
            Some(',') => {
                self.pos += 1;
                return Ok((Json::Null, false));
            }
            _ => {}
        }
        let rest: String = self.chars[self.pos..].iter().collect();
        let mut stream = serde_json::Deserializer::from_str(&rest).into_iter::<Json>();
        let value = match stream.next() {
            Some(Ok(v)) => v,
            Some(Err(e)) => return Err(format!("invalid JSON value: {e}").into()),
            None => Json::Null,
        };
        let used = rest[..stream.byte_offset()].chars().count();
        self.pos += used;
        skip_blank(self);
        match self.chars.get(self.pos) {
            None => Ok((crate::values::numbers_as_float64(&value), true)),
            Some(',') => {
                self.pos += 1;
                Ok((crate::values::numbers_as_float64(&value), false))
            }
            _ => Ok((crate::values::numbers_as_float64(&value), false)),
        }
    }

    fn key(&mut self, data: &mut Map<String, Json>, level: usize) -> std::result::Result<(), Flow> {
        let (k, last) = self.until(&['=', '[', ',', '.']);
        match last {
            Stop::Eof => {
                if k.is_empty() {
                    Err(Flow::Eof)
                } else {
                    Err(format!("key {k:?} has no value").into())
                }
            }
            Stop::At('[') => {
                let i = self.index()?;
                let list = match data.get(&k) {
                    Some(Json::Array(l)) => l.clone(),
                    _ => Vec::new(),
                };
                let (list, res) = self.list_item(list, i, level);
                set(data, &k, Json::Array(list));
                res
            }
            Stop::At('=') if matches!(self.kind, ValueKind::Json) => {
                let (v, eof) = self.json_value()?;
                set(data, &k, v);
                if eof { Err(Flow::Eof) } else { Ok(()) }
            }
            Stop::At('=') => match self.val_list() {
                Ok(Some(list)) => {
                    set(data, &k, Json::Array(list));
                    Ok(())
                }
                Err(Flow::Eof) => {
                    set(data, &k, Json::String(String::new()));
                    Err(Flow::Eof)
                }
                Err(e) => Err(e),
                Ok(None) => {
                    let (raw, stop) = self.until(&[',']);
                    let v = self.read(&raw)?;
                    set(data, &k, v);
                    if matches!(stop, Stop::Eof) {
                        Err(Flow::Eof)
                    } else {
                        Ok(())
                    }
                }
            },
            Stop::At(',') => {
                set(data, &k, Json::String(String::new()));
                Err(format!("key {k:?} has no value (cannot end with ,)").into())
            }
            Stop::At(_) => {
                let level = level + 1;
                if level > MAX_NESTED_NAME_LEVEL {
                    return Err(format!(
                        "value name nested level is greater than maximum supported nested level of {MAX_NESTED_NAME_LEVEL}"
                    )
                    .into());
                }
                let mut inner = match data.get(&k) {
                    Some(Json::Object(m)) => m.clone(),
                    _ => Map::new(),
                };
                let res = self.key(&mut inner, level);
                if res.is_ok() && inner.is_empty() {
                    return Err(format!("key map {k:?} has no value").into());
                }
                if !inner.is_empty() {
                    set(data, &k, Json::Object(inner));
                }
                res
            }
        }
    }

    fn index(&mut self) -> std::result::Result<usize, Flow> {
        let (v, stop) = self.until(&[']']);
        if matches!(stop, Stop::Eof) {
            return Err(format!("error parsing index: unterminated [{v}").into());
        }
        let i: i64 = v
            .trim()
            .parse()
            .map_err(|_| format!("error parsing index: strconv.Atoi: parsing {v:?}: invalid syntax"))?;
        if i < 0 {
            return Err(format!("negative {i} index not allowed").into());
        }
        let i = usize::try_from(i).map_err(|_| format!("index {i} out of range"))?;
        if i > MAX_INDEX {
            return Err(
                format!("index of {i} is greater than maximum supported index of {MAX_INDEX}").into(),
            );
        }
        Ok(i)
    }

    fn list_item(
        &mut self,
        mut list: Vec<Json>,
        i: usize,
        level: usize,
    ) -> (Vec<Json>, std::result::Result<(), Flow>) {
        let (k, last) = self.until(&['[', '.', '=']);
        if !k.is_empty() {
            return (
                list,
                Err(format!("unexpected data at end of array index: {k:?}").into()),
            );
        }
        match last {
            Stop::Eof => (list, Err(Flow::Eof)),
            Stop::At('=') if matches!(self.kind, ValueKind::Json) => match self.json_value() {
                Ok((v, eof)) => {
                    set_index(&mut list, i, v);
                    (list, if eof { Err(Flow::Eof) } else { Ok(()) })
                }
                Err(e) => (list, Err(e)),
            },
            Stop::At('=') => match self.val_list() {
                Ok(Some(vl)) => {
                    set_index(&mut list, i, Json::Array(vl));
                    (list, Ok(()))
                }
                Err(Flow::Eof) => {
                    set_index(&mut list, i, Json::String(String::new()));
                    (list, Err(Flow::Eof))
                }
                Err(e) => (list, Err(e)),
                Ok(None) => {
                    let (raw, stop) = self.until(&[',']);
                    match self.read(&raw) {
                        Ok(v) => {
                            set_index(&mut list, i, v);
                            (
                                list,
                                if matches!(stop, Stop::Eof) {
                                    Err(Flow::Eof)
                                } else {
                                    Ok(())
                                },
                            )
                        }
                        Err(e) => (list, Err(e.into())),
                    }
                }
            },
            Stop::At('[') => {
                // Helm has no bound here; one keeps `a[0][0]...` from exhausting the stack.
                if level + 1 > MAX_NESTED_NAME_LEVEL {
                    return (
                        list,
                        Err(format!(
                            "list nesting is greater than maximum supported level of {MAX_NESTED_NAME_LEVEL}"
                        )
                        .into()),
                    );
                }
                let level = level + 1;
                let next = match self.index() {
                    Ok(n) => n,
                    Err(e) => return (list, Err(e)),
                };
                let inner = match list.get(i) {
                    Some(Json::Array(l)) => l.clone(),
                    _ => Vec::new(),
                };
                let (inner, res) = self.list_item(inner, next, level);
                if let Err(Flow::Err(e)) = res {
                    return (list, Err(Flow::Err(e)));
                }
                set_index(&mut list, i, Json::Array(inner));
                (list, res)
            }
            Stop::At(_) => {
                if level + 1 > MAX_NESTED_NAME_LEVEL {
                    return (
                        list,
                        Err(format!("value name nested level is greater than maximum supported nested level of {MAX_NESTED_NAME_LEVEL}").into()),
                    );
                }
                let level = level + 1;
                let mut inner = match list.get(i) {
                    Some(Json::Object(m)) => m.clone(),
                    _ => Map::new(),
                };
                let res = self.key(&mut inner, level);
                if let Err(Flow::Err(e)) = res {
                    return (list, Err(Flow::Err(e)));
                }
                set_index(&mut list, i, Json::Object(inner));
                (list, res)
            }
        }
    }

    /// `{a,b}` after `=`: `Ok(None)` when the value is not a list.
    fn val_list(&mut self) -> std::result::Result<Option<Vec<Json>>, Flow> {
        match self.chars.get(self.pos) {
            None => return Err(Flow::Eof),
            Some('{') => self.pos += 1,
            Some(_) => return Ok(None),
        }
        let mut list = Vec::new();
        loop {
            let (raw, last) = self.until(&[',', '}']);
            match last {
                Stop::Eof => return Err("list must terminate with '}'".to_string().into()),
                Stop::At('}') => {
                    if self.chars.get(self.pos) == Some(&',') {
                        self.pos += 1;
                    }
                    list.push(self.read(&raw)?);
                    return Ok(Some(list));
                }
                Stop::At(_) => list.push(self.read(&raw)?),
            }
        }
    }
}

fn set(data: &mut Map<String, Json>, key: &str, v: Json) {
    if !key.is_empty() {
        data.insert(key.to_string(), v);
    }
}

fn set_index(list: &mut Vec<Json>, i: usize, v: Json) {
    if list.len() <= i {
        list.resize(i + 1, Json::Null);
    }
    list[i] = v;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(s: &str) -> Json {
        Json::Object(parse(s).unwrap())
    }

    #[test]
    fn helm_set_syntax() {
        assert_eq!(p("name=value"), json!({"name": "value"}));
        assert_eq!(p("a.b=c,d=1"), json!({"a": {"b": "c"}, "d": 1}));
        assert_eq!(
            p("a=true,b=False,c=null,d=0,e=012,f=1.5,g=-3"),
            json!({"a": true, "b": false, "c": null, "d": 0, "e": "012", "f": "1.5", "g": -3})
        );
        assert_eq!(p("list={a,b,3}"), json!({"list": ["a", "b", 3]}));
        assert_eq!(p("a[0].b=c,a[2]=x"), json!({"a": [{"b": "c"}, null, "x"]}));
        assert_eq!(p("a[0][1]=x"), json!({"a": [[null, "x"]]}));
        assert_eq!(p(r"name=a\,b,x\.y=1"), json!({"name": "a,b", "x.y": 1}));
        assert_eq!(p("empty="), json!({"empty": ""}));
        assert_eq!(p("service.name=apache"), json!({"service": {"name": "apache"}}));
    }

    #[test]
    fn set_string_and_set_file() {
        let mut m = Map::new();
        let mut j = Map::new();
        parse_into(r#"a.b={"x":[1,"y"]},c=,d[1]=2.5 ,e="s""#, &mut j, ValueKind::Json).unwrap();
        assert_eq!(
            Json::Object(j),
            serde_json::json!({"a": {"b": {"x": [1.0, "y"]}}, "c": null, "d": [null, 2.5], "e": "s"})
        );
        assert!(parse_into("a={bad", &mut Map::new(), ValueKind::Json).is_err());
        parse_into("a=1,b=true", &mut m, ValueKind::String).unwrap();
        assert_eq!(Json::Object(m), json!({"a": "1", "b": "true"}));
        let reader = |path: &str| -> std::result::Result<String, String> {
            if path == "f.txt" {
                Ok("content".into())
            } else {
                Err(format!("open {path}: no such file"))
            }
        };
        let mut m = Map::new();
        parse_into("cfg=f.txt", &mut m, ValueKind::File(&reader)).unwrap();
        assert_eq!(m["cfg"], "content");
        let e = parse_into("cfg=missing", &mut Map::new(), ValueKind::File(&reader))
            .unwrap_err()
            .to_string();
        assert!(e.contains("open missing"), "{e}");
    }

    #[test]
    fn errors_name_the_problem() {
        for (expr, want) in [
            ("a", "key \"a\" has no value"),
            ("a,b=1", "cannot end with ,"),
            ("a[x]=1", "error parsing index"),
            ("a[-1]=1", "negative"),
            ("a[99999999]=1", "maximum supported index"),
            ("a={x,y", "list must terminate"),
            ("a[0]x=1", "unexpected data"),
        ] {
            let e = parse(expr).unwrap_err().to_string();
            assert!(e.contains(want), "{expr}: {e}");
        }
        let deep = format!("{}=1", vec!["a"; 40].join("."));
        assert!(parse(&deep).unwrap_err().to_string().contains("nested level"));
        let deep_list = format!("a{}=1", "[0]".repeat(100_000));
        assert!(
            parse(&deep_list)
                .unwrap_err()
                .to_string()
                .contains("list nesting")
        );
    }
}

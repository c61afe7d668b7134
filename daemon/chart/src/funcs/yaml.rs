//! YAML emission byte-identical to Helm's `toYaml`: `sigs.k8s.io/yaml`, which turns the value
//! into JSON and re-reads it with go-yaml v2 before emitting.
//!
//! What that pipeline implies, and this module reproduces:
//! - integral floats below 2^63 come out as integers (`64`, not `64.0`); other floats use
//!   Go's shortest `%g` (`1e+21`, `1.5`);
//! - map keys are sorted with go-yaml's "natural" order (`a9` before `a10`, non-letters
//!   before letters);
//! - strings are plain unless plain would read back as something else (`"yes"`, `"1.0"`,
//!   `""`, `"2020-01-01"`, `"1:20"`), or the emitter's analysis forbids plain (`'- x'`,
//!   `'a: b'`, leading/trailing spaces) in which case single quotes, or double quotes for
//!   non-printable characters; multi-line strings become `|`, `|-` or `|+` blocks;
//! - sequences under a key are not indented; long plain and quoted lines fold at 80 columns.
//!
//! `toYamlPretty` uses go-yaml v3 directly (no JSON step, indented sequences): [`Style`].

use std::cmp::Ordering;
use std::sync::Arc;

use crate::tmpl::{Dict, Value};

use super::conv::format_float_g;

/// Which Go encoder to imitate.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Style {
    /// `sigs.k8s.io/yaml.Marshal` (go-yaml v2 after a JSON round trip): Helm's `toYaml`.
    Helm,
    /// go-yaml v3 with `SetIndent(2)`: Helm's `toYamlPretty`.
    Pretty,
}

/// Emits `v` as `sigs.k8s.io/yaml.Marshal` does, with the trailing newline (Helm's `toYaml`
/// trims it). Fails, as the JSON step does, on NaN, infinities and functions.
pub fn to_yaml_string(v: &Value) -> Result<String, String> {
    emit(v, Style::Helm)
}

/// Emits `v` in the given style.
pub(crate) fn emit(v: &Value, style: Style) -> Result<String, String> {
    if super::conv::too_deep(v) {
        return Err(super::conv::too_deep_message());
    }
    check_json(v)?;
    let mut e = Emitter {
        out: String::new(),
        column: 0,
        whitespace: true,
        indention: true,
        style,
    };
    e.node(v, -1, false, false);
    e.write_indent(0);
    Ok(e.out)
}

fn check_json(v: &Value) -> Result<(), String> {
    match v {
        Value::Float(f) if !f.is_finite() => Err(format!("json: unsupported value: {}", format_float_g(*f))),
        Value::Function(_) => Err("json: unsupported type: func".into()),
        Value::String(s) => check_rereadable(s),
        Value::List(items) => items.iter().try_for_each(check_json),
        Value::Map(m) => m.borrow().iter().try_for_each(|(k, v)| {
            check_rereadable(k)?;
            if k.contains('\u{85}') {
                // A raw NEL is a line break to go-yaml; a flow-mapping key cannot span lines.
                return Err("yaml: did not find expected ',' or '}'".into());
            }
            check_json(v)
        }),
        Value::Object(o) => check_json(&o.to_value()),
        _ => Ok(()),
    }
}

/// `encoding/json` writes U+007F..U+009F raw, and go-yaml refuses to read them back.
fn check_rereadable(s: &str) -> Result<(), String> {
    if s.chars()
        .any(|c| ('\u{7f}'..='\u{9f}').contains(&c) && c != '\u{85}')
    {
        return Err("yaml: control characters are not allowed".into());
    }
    Ok(())
}

/// go-yaml reads a raw NEL (U+0085, left unescaped by `encoding/json`) inside the JSON's
/// double-quoted string as a line break and folds it: one break becomes a space, `n`
/// breaks `n - 1` newlines, and blanks around the breaks disappear.
fn fold_nel(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '\u{85}' {
            while out.ends_with([' ', '\t']) {
                out.pop();
            }
            let mut breaks = 0;
            while i < chars.len() && matches!(chars[i], '\u{85}' | ' ' | '\t') {
                if chars[i] == '\u{85}' {
                    breaks += 1;
                }
                i += 1;
            }
            if breaks == 1 {
                out.push(' ');
            } else {
                out.extend(std::iter::repeat_n('\n', breaks - 1));
            }
            continue;
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

/// go-yaml's `keyList.Less` for string keys: runs of digits compare as numbers, and a
/// non-letter sorts before a letter.
pub(crate) fn natural_cmp(a: &str, b: &str) -> Ordering {
    let ar: Vec<char> = a.chars().collect();
    let br: Vec<char> = b.chars().collect();
    for i in 0..ar.len().min(br.len()) {
        if ar[i] == br[i] {
            continue;
        }
        let al = ar[i].is_alphabetic();
        let bl = br[i].is_alphabetic();
        if al && bl {
            return ar[i].cmp(&br[i]);
        }
        if al || bl {
            return if bl { Ordering::Less } else { Ordering::Greater };
        }
        let (mut an, mut bn) = (0i64, 0i64);
        if ar[i] == '0' || br[i] == '0' {
            let mut j = i;
            while j > 0 && ar[j - 1].is_ascii_digit() {
                j -= 1;
                if ar[j] != '0' {
                    an = 1;
                    bn = 1;
                    break;
                }
            }
        }
        let mut ai = i;
        while ai < ar.len() && ar[ai].is_ascii_digit() {
            an = an.wrapping_mul(10).wrapping_add(i64::from(ar[ai] as u8 - b'0'));
            ai += 1;
        }
        let mut bi = i;
        while bi < br.len() && br[bi].is_ascii_digit() {
            bn = bn.wrapping_mul(10).wrapping_add(i64::from(br[bi] as u8 - b'0'));
            bi += 1;
        }
        if an != bn {
            return an.cmp(&bn);
        }
        if ai != bi {
            return ai.cmp(&bi);
        }
        return ar[i].cmp(&br[i]);
    }
    ar.len().cmp(&br.len())
}

/// Whether go-yaml would read `s`, unquoted, as something other than a string.
pub(crate) fn resolves_to_non_string(s: &str, style: Style) -> bool {
    let _ = style;
    !matches!(super::yaml_read::resolve_plain(s), super::yaml_read::Scalar::Str) || is_base60_float(s)
}

/// `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`
pub(crate) fn is_yaml_float_syntax(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        i += 1;
    }
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    if i < b.len() && b[i] == b'.' {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    } else {
        if digits(&mut i) == 0 {
            return false;
        }
        if i < b.len() && b[i] == b'.' {
            i += 1;
            digits(&mut i);
        }
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// `^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$` (YAML 1.1 sexagesimal).
fn is_base60_float(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (main, frac) = s.split_once('.').unwrap_or((s, ""));
    if !frac.chars().all(|c| c.is_ascii_digit() || c == '_') {
        return false;
    }
    let mut parts = main.split(':');
    let Some(head) = parts.next() else {
        return false;
    };
    if !head.starts_with(|c: char| c.is_ascii_digit())
        || !head.chars().all(|c| c.is_ascii_digit() || c == '_')
    {
        return false;
    }
    let mut any = false;
    for p in parts {
        any = true;
        let ok = match p.as_bytes() {
            [d] => d.is_ascii_digit(),
            [a, b] => (b'0'..=b'5').contains(a) && b.is_ascii_digit(),
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    any
}

/// The characters go-yaml's emitter considers printable.
fn is_printable(c: char) -> bool {
    matches!(c, '\n' | ' '..='~' | '\u{A0}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}') && c != '\u{FEFF}'
}

fn is_break(c: char) -> bool {
    matches!(c, '\r' | '\n' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

fn is_blank_or_end(c: Option<char>) -> bool {
    match c {
        None => true,
        Some(c) => c == ' ' || c == '\t' || is_break(c),
    }
}

/// The result of go-yaml's `yaml_emitter_analyze_scalar`.
struct Analysis {
    multiline: bool,
    block_plain_allowed: bool,
    single_quoted_allowed: bool,
    block_allowed: bool,
}

fn analyze(value: &str) -> Analysis {
    if value.is_empty() {
        return Analysis {
            multiline: false,
            block_plain_allowed: true,
            single_quoted_allowed: true,
            block_allowed: false,
        };
    }
    let chars: Vec<char> = value.chars().collect();
    let mut block_indicators = value.starts_with("---") || value.starts_with("...");
    let (mut leading_space, mut leading_break) = (false, false);
    let (mut trailing_space, mut trailing_break) = (false, false);
    let (mut break_space, mut space_break) = (false, false);
    let (mut previous_space, mut previous_break) = (false, false);
    let (mut line_breaks, mut special) = (false, false);
    let mut preceded_by_ws = true;
    for (i, &c) in chars.iter().enumerate() {
        let followed_by_ws = is_blank_or_end(chars.get(i + 1).copied());
        if i == 0 {
            match c {
                '#' | ',' | '[' | ']' | '{' | '}' | '&' | '*' | '!' | '|' | '>' | '\'' | '"' | '%' | '@'
                | '`' => block_indicators = true,
                '?' | ':' if followed_by_ws => block_indicators = true,
                '-' if followed_by_ws => block_indicators = true,
                _ => {}
            }
        } else {
            match c {
                ':' if followed_by_ws => block_indicators = true,
                '#' if preceded_by_ws => block_indicators = true,
                _ => {}
            }
        }
        if !is_printable(c) {
            special = true;
        }
        if is_break(c) {
            line_breaks = true;
        }
        if c == ' ' {
            if i == 0 {
                leading_space = true;
            }
            if i == chars.len() - 1 {
                trailing_space = true;
            }
            if previous_break {
                break_space = true;
            }
            previous_space = true;
            previous_break = false;
        } else if is_break(c) {
            if i == 0 {
                leading_break = true;
            }
            if i == chars.len() - 1 {
                trailing_break = true;
            }
            if previous_space {
                space_break = true;
            }
            previous_break = true;
            previous_space = false;
        } else {
            previous_space = false;
            previous_break = false;
        }
        preceded_by_ws = is_blank_or_end(Some(c));
    }
    let mut a = Analysis {
        multiline: line_breaks,
        block_plain_allowed: true,
        single_quoted_allowed: true,
        block_allowed: true,
    };
    if leading_space || leading_break || trailing_space || trailing_break {
        a.block_plain_allowed = false;
    }
    if trailing_space {
        a.block_allowed = false;
    }
    if break_space {
        a.block_plain_allowed = false;
        a.single_quoted_allowed = false;
    }
    if space_break || special {
        a.block_plain_allowed = false;
        a.single_quoted_allowed = false;
        a.block_allowed = false;
    }
    if line_breaks || block_indicators {
        a.block_plain_allowed = false;
    }
    a
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ScalarStyle {
    Plain,
    Single,
    Double,
    Literal,
}

const BEST_WIDTH: usize = 80;
const BEST_INDENT: i32 = 2;

struct Emitter {
    out: String,
    column: usize,
    whitespace: bool,
    indention: bool,
    style: Style,
}

impl Emitter {
    fn put(&mut self, c: char) {
        self.out.push(c);
        self.column += 1;
    }

    fn put_break(&mut self) {
        self.out.push('\n');
        self.column = 0;
    }

    fn write_indent(&mut self, indent: i32) {
        let indent = indent.max(0) as usize;
        if !self.indention || self.column > indent || (self.column == indent && !self.whitespace) {
            self.put_break();
        }
        while self.column < indent {
            self.put(' ');
        }
        self.whitespace = true;
        self.indention = true;
    }

    fn write_indicator(&mut self, ind: &str, need_ws: bool, is_ws: bool, is_indention: bool) {
        if need_ws && !self.whitespace {
            self.put(' ');
        }
        for c in ind.chars() {
            self.put(c);
        }
        self.whitespace = is_ws;
        self.indention = self.indention && is_indention;
    }

    /// Emits one node; `indent` is the enclosing collection's indentation (-1 at the root).
    fn node(&mut self, v: &Value, indent: i32, mapping_value: bool, simple_key: bool) {
        match v {
            Value::Map(m) if !m.is_empty() => self.mapping(&m.borrow(), indent),
            Value::List(items) if !items.is_empty() => self.sequence(items, indent, mapping_value),
            Value::Map(_) => {
                self.write_indicator("{", true, true, false);
                self.write_indicator("}", false, false, false);
            }
            Value::List(_) => {
                self.write_indicator("[", true, true, false);
                self.write_indicator("]", false, false, false);
            }
            Value::String(s) if self.style == Style::Helm && s.contains('\u{85}') => {
                self.string_scalar(&fold_nel(s), indent, simple_key)
            }
            Value::String(s) => self.string_scalar(s, indent, simple_key),
            // Go marshals the value `MarshalJSON` gives (`*semver.Version`: its string).
            Value::Object(o) => self.node(&o.to_value(), indent, mapping_value, simple_key),
            other => {
                let text = self.plain_text(other);
                self.plain(&text, indent, simple_key);
            }
        }
    }

    fn plain_text(&self, v: &Value) -> String {
        match v {
            Value::Nil => "null".into(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Uint(u) => u.to_string(),
            Value::Float(f) => self.float_text(*f),
            _ => String::new(),
        }
    }

    fn float_text(&self, f: f64) -> String {
        if f.is_nan() {
            return ".nan".into();
        }
        if f.is_infinite() {
            return if f > 0.0 { ".inf" } else { "-.inf" }.into();
        }
        // After the JSON round trip, a float whose JSON text is an integer that fits int64 or
        // uint64 is read back as that integer (JSON writes shortest digits, then zeros).
        if self.style == Style::Helm {
            let json = super::conv::format_float_json(f);
            if json.parse::<i64>().is_ok() || json.parse::<u64>().is_ok() {
                return json;
            }
        }
        format_float_g(f)
    }

    fn mapping(&mut self, m: &Dict, indent: i32) {
        let inner = if indent < 0 { 0 } else { indent + BEST_INDENT };
        let mut entries: Vec<(&Arc<str>, &Value)> = m.iter().collect();
        entries.sort_by(|a, b| natural_cmp(a.0, b.0));
        for (k, v) in entries {
            self.write_indent(inner);
            // go-yaml's check_simple_key: at most 128 bytes and on one line, else `? key`.
            if k.len() > 128 || analyze(k).multiline {
                self.write_indicator("?", true, false, true);
                self.string_scalar(k, inner, false);
                self.write_indent(inner);
                self.write_indicator(":", true, false, true);
            } else {
                self.string_scalar(k, inner, true);
                self.write_indicator(":", false, false, false);
            }
            self.node(v, inner, true, false);
        }
    }

    fn sequence(&mut self, items: &[Value], indent: i32, mapping_value: bool) {
        let indentless = mapping_value && !self.indention && self.style == Style::Helm;
        let inner = if indent < 0 {
            0
        } else if indentless {
            indent
        } else {
            indent + BEST_INDENT
        };
        for item in items {
            self.write_indent(inner);
            self.write_indicator("-", true, false, true);
            self.node(item, inner, false, false);
        }
    }

    fn string_scalar(&mut self, s: &str, indent: i32, simple_key: bool) {
        let requested = if s.contains('\n') {
            ScalarStyle::Literal
        } else if !resolves_to_non_string(s, self.style) && !is_base60_float(s) {
            ScalarStyle::Plain
        } else {
            ScalarStyle::Double
        };
        let a = analyze(s);
        let mut style = requested;
        if simple_key && a.multiline {
            style = ScalarStyle::Double;
        }
        if style == ScalarStyle::Plain && (!a.block_plain_allowed || (s.is_empty() && simple_key)) {
            style = ScalarStyle::Single;
        }
        if style == ScalarStyle::Single && !a.single_quoted_allowed {
            style = ScalarStyle::Double;
        }
        if style == ScalarStyle::Literal && (!a.block_allowed || simple_key) {
            style = ScalarStyle::Double;
        }
        match style {
            ScalarStyle::Plain => self.plain(s, indent, simple_key),
            ScalarStyle::Single => self.single_quoted(s, indent, simple_key),
            ScalarStyle::Double => self.double_quoted(s, indent, simple_key),
            ScalarStyle::Literal => self.literal(s, indent),
        }
    }

    fn scalar_indent(indent: i32) -> i32 {
        if indent < 0 {
            BEST_INDENT
        } else {
            indent + BEST_INDENT
        }
    }

    fn plain(&mut self, s: &str, indent: i32, simple_key: bool) {
        let scalar_indent = Self::scalar_indent(indent);
        if !self.whitespace {
            self.put(' ');
        }
        let chars: Vec<char> = s.chars().collect();
        let mut spaces = false;
        for (i, &c) in chars.iter().enumerate() {
            if c == ' ' {
                if !simple_key && !spaces && self.column > BEST_WIDTH && chars.get(i + 1) != Some(&' ') {
                    self.write_indent(scalar_indent);
                } else {
                    self.put(c);
                }
                spaces = true;
            } else {
                self.put(c);
                spaces = false;
            }
        }
        self.whitespace = false;
        self.indention = false;
    }

    fn single_quoted(&mut self, s: &str, indent: i32, simple_key: bool) {
        let scalar_indent = Self::scalar_indent(indent);
        self.write_indicator("'", true, false, false);
        let chars: Vec<char> = s.chars().collect();
        let (mut spaces, mut breaks) = (false, false);
        for (i, &c) in chars.iter().enumerate() {
            if c == ' ' {
                if !simple_key
                    && !spaces
                    && self.column > BEST_WIDTH
                    && i > 0
                    && i < chars.len() - 1
                    && chars.get(i + 1) != Some(&' ')
                {
                    self.write_indent(scalar_indent);
                } else {
                    self.put(c);
                }
                spaces = true;
            } else if is_break(c) {
                if !breaks && c == '\n' {
                    self.put_break();
                }
                if c == '\n' {
                    self.put_break();
                } else {
                    self.out.push(c);
                    self.column = 0;
                }
                self.indention = true;
                breaks = true;
            } else {
                if breaks {
                    self.write_indent(scalar_indent);
                }
                if c == '\'' {
                    self.put('\'');
                }
                self.put(c);
                self.indention = false;
                spaces = false;
                breaks = false;
            }
        }
        self.write_indicator("'", false, false, false);
    }

    fn double_quoted(&mut self, s: &str, indent: i32, simple_key: bool) {
        let scalar_indent = Self::scalar_indent(indent);
        self.write_indicator("\"", true, false, false);
        let chars: Vec<char> = s.chars().collect();
        let mut spaces = false;
        for (i, &c) in chars.iter().enumerate() {
            if !is_printable(c) || c == '\u{FEFF}' || is_break(c) || c == '"' || c == '\\' {
                self.put('\\');
                let esc = match c {
                    '\0' => Some('0'),
                    '\u{7}' => Some('a'),
                    '\u{8}' => Some('b'),
                    '\t' => Some('t'),
                    '\n' => Some('n'),
                    '\u{b}' => Some('v'),
                    '\u{c}' => Some('f'),
                    '\r' => Some('r'),
                    '\u{1b}' => Some('e'),
                    '"' => Some('"'),
                    '\\' => Some('\\'),
                    '\u{85}' => Some('N'),
                    '\u{a0}' => Some('_'),
                    '\u{2028}' => Some('L'),
                    '\u{2029}' => Some('P'),
                    _ => None,
                };
                match esc {
                    Some(e) => self.put(e),
                    None => {
                        let v = c as u32;
                        let text = if v <= 0xFF {
                            format!("x{v:02X}")
                        } else if v <= 0xFFFF {
                            format!("u{v:04X}")
                        } else {
                            format!("U{v:08X}")
                        };
                        for t in text.chars() {
                            self.put(t);
                        }
                    }
                }
                spaces = false;
            } else if c == ' ' {
                if !simple_key && !spaces && self.column > BEST_WIDTH && i > 0 && i < chars.len() - 1 {
                    self.write_indent(scalar_indent);
                    if chars.get(i + 1) == Some(&' ') {
                        self.put('\\');
                    }
                } else {
                    self.put(c);
                }
                spaces = true;
            } else {
                self.put(c);
                spaces = false;
            }
        }
        self.write_indicator("\"", false, false, false);
    }

    fn literal(&mut self, s: &str, indent: i32) {
        let scalar_indent = Self::scalar_indent(indent);
        self.write_indicator("|", true, false, false);
        let chars: Vec<char> = s.chars().collect();
        if chars.first().is_some_and(|&c| c == ' ' || is_break(c)) {
            self.put(char::from(b'0' + BEST_INDENT as u8));
        }
        match chars.as_slice() {
            [] => self.put('-'),
            [.., last] if !is_break(*last) => self.put('-'),
            [_] => self.put('+'),
            [.., before, _] if is_break(*before) => self.put('+'),
            _ => {}
        }
        self.put_break();
        self.indention = true;
        self.whitespace = true;
        let mut breaks = true;
        for &c in &chars {
            if is_break(c) {
                self.put_break();
                self.indention = true;
                breaks = true;
            } else {
                if breaks {
                    self.write_indent(scalar_indent);
                    breaks = false;
                }
                self.put(c);
                self.indention = false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pairs: &[(&str, Value)]) -> Value {
        let map: Dict = pairs.iter().map(|(k, v)| (Arc::from(*k), v.clone())).collect();
        Value::map(map)
    }
    fn s(x: &str) -> Value {
        Value::String(x.into())
    }
    fn y(v: &Value) -> String {
        to_yaml_string(v).unwrap()
    }

    #[test]
    fn scalars_quote_like_go_yaml() {
        let cases = [
            ("bar", "bar"),
            ("yes", "\"yes\""),
            ("on", "\"on\""),
            ("1.0", "\"1.0\""),
            ("123", "\"123\""),
            ("0x1F", "\"0x1F\""),
            ("", "\"\""),
            ("null", "\"null\""),
            ("2020-01-01", "\"2020-01-01\""),
            ("1:20", "\"1:20\""),
            ("a: b", "'a: b'"),
            ("- x", "'- x'"),
            ("*star", "'*star'"),
            (" lead", "' lead'"),
            ("trail ", "'trail '"),
            ("it's", "it's"),
            ("'q'", "'''q'''"),
            ("a #b", "'a #b'"),
            ("a#b", "a#b"),
            ("tab\there", "\"tab\\there\""),
            ("1.2.3", "1.2.3"),
            ("1e3", "\"1e3\""),
            ("~", "\"~\""),
            ("http://x:80/y", "http://x:80/y"),
        ];
        for (input, want) in cases {
            assert_eq!(
                y(&m(&[("k", s(input))])),
                format!("k: {want}\n"),
                "input {input:?}"
            );
        }
    }

    #[test]
    fn numbers_follow_the_json_round_trip() {
        assert_eq!(y(&m(&[("a", Value::Float(64.0))])), "a: 64\n");
        assert_eq!(y(&m(&[("a", Value::Float(1e6))])), "a: 1000000\n");
        assert_eq!(y(&m(&[("a", Value::Float(1.5))])), "a: 1.5\n");
        assert_eq!(y(&m(&[("a", Value::Float(1e21))])), "a: 1e+21\n");
        assert_eq!(y(&m(&[("a", Value::Float(1e-7))])), "a: 1e-07\n");
        assert!(to_yaml_string(&Value::Float(f64::NAN)).is_err());
    }

    #[test]
    fn collections_are_laid_out_like_go_yaml() {
        let v = m(&[
            (
                "list",
                Value::List(vec![s("a"), m(&[("x", Value::Int(1)), ("y", Value::Nil)])].into()),
            ),
            ("empty", m(&[])),
            ("none", Value::List(Vec::new().into())),
            ("nested", m(&[("deep", m(&[("k", Value::Bool(true))]))])),
            (
                "seqseq",
                Value::List(vec![Value::List(vec![s("a"), s("b")].into())].into()),
            ),
        ]);
        assert_eq!(
            y(&v),
            "empty: {}\nlist:\n- a\n- x: 1\n  \"y\": null\nnested:\n  deep:\n    k: true\nnone: []\nseqseq:\n- - a\n  - b\n"
        );
        assert_eq!(
            emit(
                &m(&[("baz", Value::List(vec![Value::Int(1), Value::Int(2)].into()))]),
                Style::Pretty
            )
            .unwrap(),
            "baz:\n  - 1\n  - 2\n"
        );
    }

    #[test]
    fn multiline_strings_become_literal_blocks() {
        assert_eq!(y(&m(&[("a", s("x\ny"))])), "a: |-\n  x\n  y\n");
        assert_eq!(y(&m(&[("a", s("x\ny\n"))])), "a: |\n  x\n  y\n");
        assert_eq!(y(&m(&[("a", s("x\n\n"))])), "a: |+\n  x\n\n");
        assert_eq!(y(&m(&[("a", s(" x\ny"))])), "a: |2-\n   x\n  y\n");
        assert_eq!(y(&m(&[("a", s("x \ny"))])), "a: \"x \\ny\"\n");
        assert_eq!(y(&Value::List(vec![s("a\nb")].into())), "- |-\n  a\n  b\n");
        assert_eq!(y(&s("top")), "top\n");
    }

    #[test]
    fn keys_sort_naturally() {
        let v = m(&[
            ("a10", Value::Int(1)),
            ("a9", Value::Int(2)),
            ("B", Value::Int(3)),
            ("_x", Value::Int(4)),
        ]);
        assert_eq!(y(&v), "_x: 4\nB: 3\na9: 2\na10: 1\n");
    }

    #[test]
    fn long_plain_strings_fold_at_80_columns() {
        let words = "word ".repeat(30);
        let text = words.trim_end();
        let out = y(&m(&[("k", s(text))]));
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines.len() > 1, "{out}");
        assert!(lines[1].starts_with("  word"), "{out}");
        assert_eq!(out.replace("\n  ", " "), format!("k: {text}\n"));
    }
}

//! String functions: sprig's `strings.go` plus the case conversions of `huandu/xstrings` and
//! `Masterminds/goutils` that sprig delegates to. Go slices strings by byte; here every cut
//! is moved to the nearest character boundary below it so non-ASCII input never panics.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::tmpl::{FuncMap, Value};

use super::add;
use super::conv::{arity, call_error, int_arg, list, map, str_arg, string, strval};
use crate::tmpl::go_quote;

pub(crate) fn register(m: &mut FuncMap) {
    add(m, "hello", |_| Ok(string("Hello!")));
    unary(m, "upper", |s| s.to_uppercase());
    unary(m, "lower", |s| s.to_lowercase());
    unary(m, "title", title);
    unary(m, "untitle", untitle);
    unary(m, "trim", |s| s.trim().to_string());
    unary(m, "nospace", |s| {
        s.chars().filter(|c| !c.is_whitespace()).collect()
    });
    unary(m, "initials", initials);
    unary(m, "swapcase", swapcase);
    unary(m, "snakecase", |s| delimited_case(s, '_'));
    unary(m, "kebabcase", |s| delimited_case(s, '-'));
    unary(m, "camelcase", camelcase);
    for name in ["trimAll", "trimall"] {
        binary(m, name, |cut, s| s.trim_matches(|c| cut.contains(c)).to_string());
    }
    binary(m, "trimPrefix", |p, s| s.strip_prefix(p).unwrap_or(s).to_string());
    binary(m, "trimSuffix", |p, s| s.strip_suffix(p).unwrap_or(s).to_string());
    predicate(m, "contains", |sub, s| s.contains(sub));
    predicate(m, "hasPrefix", |p, s| s.starts_with(p));
    predicate(m, "hasSuffix", |p, s| s.ends_with(p));
    add(m, "abbrev", |a| {
        arity("abbrev", a, 2, 2)?;
        let width = int_arg("abbrev", &a[0])?;
        Ok(string(abbrev(str_arg("abbrev", &a[1])?, width)))
    });
    add(m, "abbrevboth", |a| {
        arity("abbrevboth", a, 3, 3)?;
        let left = int_arg("abbrevboth", &a[0])?;
        let right = int_arg("abbrevboth", &a[1])?;
        Ok(string(abbrevboth(str_arg("abbrevboth", &a[2])?, left, right)))
    });
    add(m, "trunc", |a| {
        arity("trunc", a, 2, 2)?;
        Ok(string(trunc(int_arg("trunc", &a[0])?, str_arg("trunc", &a[1])?)))
    });
    add(m, "substr", |a| {
        arity("substr", a, 3, 3)?;
        let (start, end) = (int_arg("substr", &a[0])?, int_arg("substr", &a[1])?);
        substr(start, end, str_arg("substr", &a[2])?).map(string)
    });
    add(m, "repeat", |a| {
        arity("repeat", a, 2, 2)?;
        let n = int_arg("repeat", &a[0])?;
        let s = str_arg("repeat", &a[1])?;
        let n = usize::try_from(n).map_err(|_| call_error("repeat", "negative Repeat count"))?;
        if s.len().saturating_mul(n) > super::conv::MAX_OUTPUT {
            return Err(call_error("repeat", "result too large"));
        }
        Ok(string(s.repeat(n)))
    });
    add(m, "wrap", |a| {
        arity("wrap", a, 2, 2)?;
        let w = int_arg("wrap", &a[0])?;
        Ok(string(wrap(str_arg("wrap", &a[1])?, w, "\n", false)))
    });
    add(m, "wrapWith", |a| {
        arity("wrapWith", a, 3, 3)?;
        let w = int_arg("wrapWith", &a[0])?;
        let sep = str_arg("wrapWith", &a[1])?;
        let s = str_arg("wrapWith", &a[2])?;
        // At most one separator per input byte.
        if s.len().saturating_mul(sep.len()).saturating_add(s.len()) > super::conv::MAX_OUTPUT {
            return Err(call_error("wrapWith", "result too large"));
        }
        Ok(string(wrap(s, w, sep, true)))
    });
    add(m, "quote", |a| {
        let parts: Vec<String> = a
            .iter()
            .filter(|v| !matches!(v, Value::Nil))
            .map(|v| go_quote(&strval(v)))
            .collect();
        Ok(string(parts.join(" ")))
    });
    add(m, "squote", |a| {
        let parts: Vec<String> = a
            .iter()
            .filter(|v| !matches!(v, Value::Nil))
            .map(|v| format!("'{}'", strval(v)))
            .collect();
        Ok(string(parts.join(" ")))
    });
    add(m, "cat", |a| {
        let parts: Vec<String> = a
            .iter()
            .filter(|v| !matches!(v, Value::Nil))
            .map(strval)
            .collect();
        Ok(string(parts.join(" ")))
    });
    add(m, "indent", |a| {
        arity("indent", a, 2, 2)?;
        let n = int_arg("indent", &a[0])?;
        indent("indent", n, str_arg("indent", &a[1])?).map(string)
    });
    add(m, "nindent", |a| {
        arity("nindent", a, 2, 2)?;
        let n = int_arg("nindent", &a[0])?;
        indent("nindent", n, str_arg("nindent", &a[1])?).map(|s| string(format!("\n{s}")))
    });
    add(m, "replace", |a| {
        arity("replace", a, 3, 3)?;
        let old = str_arg("replace", &a[0])?;
        let new = str_arg("replace", &a[1])?;
        let src = str_arg("replace", &a[2])?;
        let hits = if old.is_empty() {
            src.chars().count() + 1
        } else {
            src.matches(old).count()
        };
        if hits.saturating_mul(new.len()).saturating_add(src.len()) > super::conv::MAX_OUTPUT {
            return Err(call_error("replace", "result too large"));
        }
        Ok(string(go_replace_all(src, old, new)))
    });
    add(m, "plural", |a| {
        arity("plural", a, 3, 3)?;
        let count = int_arg("plural", &a[2])?;
        Ok(a[if count == 1 { 0 } else { 1 }].clone()).and_then(|v| {
            str_arg("plural", &v)?;
            Ok(v)
        })
    });
    add(m, "toString", |a| {
        arity("toString", a, 1, 1)?;
        Ok(string(strval(&a[0])))
    });
    add(m, "toStrings", |a| {
        arity("toStrings", a, 1, 1)?;
        Ok(list(strslice(&a[0]).into_iter().map(string).collect()))
    });
    add(m, "join", |a| {
        arity("join", a, 2, 2)?;
        let sep = str_arg("join", &a[0])?;
        Ok(string(strslice(&a[1]).join(sep)))
    });
    add(m, "sortAlpha", |a| {
        arity("sortAlpha", a, 1, 1)?;
        let mut items = match &a[0] {
            Value::List(_) => strslice(&a[0]),
            other => vec![strval(other)],
        };
        items.sort();
        Ok(list(items.into_iter().map(string).collect()))
    });
    add(m, "split", |a| {
        arity("split", a, 2, 2)?;
        let sep = str_arg("split", &a[0])?;
        Ok(indexed_map(go_split(str_arg("split", &a[1])?, sep, -1)))
    });
    add(m, "splitn", |a| {
        arity("splitn", a, 3, 3)?;
        let sep = str_arg("splitn", &a[0])?;
        let n = int_arg("splitn", &a[1])?;
        Ok(indexed_map(go_split(str_arg("splitn", &a[2])?, sep, n)))
    });
    add(m, "splitList", |a| {
        arity("splitList", a, 2, 2)?;
        let sep = str_arg("splitList", &a[0])?;
        let parts = go_split(str_arg("splitList", &a[1])?, sep, -1);
        Ok(list(parts.into_iter().map(string).collect()))
    });
}

fn unary(m: &mut FuncMap, name: &'static str, f: fn(&str) -> String) {
    add(m, name, move |a| {
        arity(name, a, 1, 1)?;
        Ok(string(f(str_arg(name, &a[0])?)))
    });
}

fn binary(m: &mut FuncMap, name: &'static str, f: fn(&str, &str) -> String) {
    add(m, name, move |a| {
        arity(name, a, 2, 2)?;
        Ok(string(f(str_arg(name, &a[0])?, str_arg(name, &a[1])?)))
    });
}

fn predicate(m: &mut FuncMap, name: &'static str, f: fn(&str, &str) -> bool) {
    add(m, name, move |a| {
        arity(name, a, 2, 2)?;
        Ok(Value::Bool(f(str_arg(name, &a[0])?, str_arg(name, &a[1])?)))
    });
}

/// Largest character boundary of `s` not above `i` (Go would cut bytes; Rust cannot).
pub(crate) fn floor_boundary(s: &str, i: usize) -> usize {
    let mut i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Sprig's `strslice`: list elements as strings with nils dropped, a scalar as one string.
pub(crate) fn strslice(v: &Value) -> Vec<String> {
    match v {
        Value::List(items) => items
            .iter()
            .filter(|i| !matches!(i, Value::Nil))
            .map(strval)
            .collect(),
        Value::Nil => Vec::new(),
        other => vec![strval(other)],
    }
}

fn indexed_map(parts: Vec<String>) -> Value {
    let m: BTreeMap<Arc<str>, Value> = parts
        .into_iter()
        .enumerate()
        .map(|(i, p)| (Arc::from(format!("_{i}")), string(p)))
        .collect();
    map(m)
}

/// Go's `strings.SplitN` (`n < 0`: all; `n == 0`: none; empty separator: per character).
pub(crate) fn go_split(s: &str, sep: &str, n: i64) -> Vec<String> {
    if n == 0 {
        return Vec::new();
    }
    if sep.is_empty() {
        let chars: Vec<String> = s.chars().map(String::from).collect();
        if n > 0 && chars.len() > n as usize {
            let mut head: Vec<String> = chars[..n as usize - 1].to_vec();
            let cut: usize = head.iter().map(String::len).sum();
            head.push(s[cut..].to_string());
            return head;
        }
        return chars;
    }
    if n < 0 {
        s.split(sep).map(String::from).collect()
    } else {
        s.splitn(n as usize, sep).map(String::from).collect()
    }
}

/// Go's `strings.Replace(s, old, new, -1)`: an empty `old` inserts `new` around every rune.
fn go_replace_all(s: &str, old: &str, new: &str) -> String {
    if old.is_empty() {
        let mut out = String::from(new);
        for c in s.chars() {
            out.push(c);
            out.push_str(new);
        }
        return out;
    }
    s.replace(old, new)
}

fn title(s: &str) -> String {
    // strings.Title: a letter following a separator (anything but a letter, digit, `_`
    // or `'`) is upper-cased.
    let mut prev_sep = true;
    s.chars()
        .map(|c| {
            let out = if prev_sep {
                c.to_uppercase().collect::<String>()
            } else {
                c.to_string()
            };
            prev_sep = !(c.is_alphanumeric() || c == '_' || c == '\'');
            out
        })
        .collect()
}

fn untitle(s: &str) -> String {
    let mut prev_space = true;
    s.chars()
        .map(|c| {
            let out = if prev_space {
                c.to_lowercase().collect::<String>()
            } else {
                c.to_string()
            };
            prev_space = c.is_whitespace();
            out
        })
        .collect()
}

fn initials(s: &str) -> String {
    s.split_whitespace().filter_map(|w| w.chars().next()).collect()
}

fn swapcase(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_uppercase() {
                c.to_lowercase().collect::<String>()
            } else if c.is_lowercase() {
                c.to_uppercase().collect()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Go's `unicode.ToUpper`/`ToLower` map one rune to one rune; Rust's may expand ("ß" to
/// "SS"), in which case the rune stays as it is, as in Go.
fn upper1(c: char) -> char {
    let mut it = c.to_uppercase();
    match (it.next(), it.next()) {
        (Some(u), None) => u,
        _ => c,
    }
}

fn lower1(c: char) -> char {
    let mut it = c.to_lowercase();
    match (it.next(), it.next()) {
        (Some(l), None) => l,
        _ => c,
    }
}

/// xstrings' connector: `-`, `_` or white space.
fn is_connector(c: char) -> bool {
    c == '-' || c == '_' || c.is_whitespace()
}

/// Go's `unicode.IsPunct` (category P): ASCII punctuation except the symbols `$+<=>^`|~`,
/// and the common non-ASCII punctuation blocks.
fn is_punct(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_punctuation() && !"$+<=>^`|~".contains(c);
    }
    matches!(c,
        '\u{a1}' | '\u{a7}' | '\u{ab}' | '\u{b6}' | '\u{b7}' | '\u{bb}' | '\u{bf}' | '\u{37e}' | '\u{387}'
        | '\u{2010}'..='\u{2027}' | '\u{2030}'..='\u{2043}' | '\u{2045}'..='\u{2051}' | '\u{2053}'..='\u{205e}'
        | '\u{3001}'..='\u{3003}' | '\u{3008}'..='\u{3011}' | '\u{ff01}'..='\u{ff03}' | '\u{ff05}'..='\u{ff0a}')
}

/// xstrings' "alphabet": a letter that is not a CJK ideograph.
fn is_alphabet(c: char) -> bool {
    c.is_alphabetic()
        && !matches!(c, '\u{3400}'..='\u{4d85}' | '\u{4e00}'..='\u{9fcc}' | '\u{20000}'..='\u{2b81d}')
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Word {
    Number,
    Upper,
    Alphabet,
    Connector,
    Punct,
    Other,
}

/// xstrings v1.5 `nextWord`: the class and length (in chars) of the word starting `s`.
/// An upper-case run keeps its last capital for the next word when a lower-case letter
/// follows (`HTTPServer` is `HTTP` + `Server`).
fn next_word(s: &[char]) -> (Word, usize) {
    let run = |from: usize, pred: &dyn Fn(char) -> bool| -> usize {
        s[from..].iter().take_while(|&&c| pred(c)).count() + from
    };
    let c = s[0];
    if is_connector(c) {
        (Word::Connector, run(1, &is_connector))
    } else if is_punct(c) {
        (Word::Punct, run(1, &is_punct))
    } else if c.is_uppercase() {
        match s.get(1) {
            Some(&n) if n.is_uppercase() => {
                let end = run(1, &|c: char| c.is_uppercase());
                if end < s.len() && is_alphabet(s[end]) {
                    (Word::Upper, end - 1)
                } else {
                    (Word::Upper, end)
                }
            }
            Some(&n) if is_alphabet(n) => (
                Word::Upper,
                run(1, &|c: char| is_alphabet(c) && !c.is_uppercase()),
            ),
            _ => (Word::Upper, 1),
        }
    } else if is_alphabet(c) {
        (
            Word::Alphabet,
            run(1, &|c: char| is_alphabet(c) && !c.is_uppercase()),
        )
    } else if c.is_numeric() {
        (Word::Number, run(1, &char::is_numeric))
    } else {
        let end = run(1, &|c: char| {
            !(is_connector(c) || is_alphabet(c) || c.is_numeric() || is_punct(c))
        });
        (Word::Other, end)
    }
}

/// Writes a word: upper-case and connector words are lowered, connectors become `delim`.
fn push_lowered(out: &mut String, kind: Word, word: &[char], delim: char) {
    for &c in word {
        match kind {
            Word::Upper | Word::Connector if is_connector(c) => out.push(delim),
            Word::Upper | Word::Connector => out.push(lower1(c)),
            _ => out.push(c),
        }
    }
}

/// `xstrings.ToSnakeCase`/`ToKebabCase` (v1.5, the version sprig v3.3.0 uses): words are
/// split at connectors, case changes and acronyms, and numbers join the word they belong
/// to (`http2xx` -> `http_2xx`, `Bld4Floor3rd` -> `bld4_floor_3rd`).
fn delimited_case(s: &str, delim: char) -> String {
    let chars: Vec<char> = s.chars().collect();
    if chars.is_empty() {
        return String::new();
    }
    let mut out = String::new();
    let mut pos = 0;
    let take = |pos: &mut usize| -> (Word, &[char]) {
        let (kind, len) = next_word(&chars[*pos..]);
        let word = &chars[*pos..*pos + len];
        *pos += len;
        (kind, word)
    };
    let (mut kind, mut word) = take(&mut pos);
    while pos < chars.len() {
        if kind != Word::Connector {
            push_lowered(&mut out, kind, word, delim);
        }
        let (prev, last) = (kind, word);
        (kind, word) = take(&mut pos);
        match prev {
            Word::Number => {
                while matches!(kind, Word::Alphabet | Word::Number) {
                    push_lowered(&mut out, kind, word, delim);
                    if pos >= chars.len() {
                        // Go reads an empty final word here, which adds nothing.
                        kind = Word::Other;
                        word = &[];
                        break;
                    }
                    (kind, word) = take(&mut pos);
                }
                if !matches!(kind, Word::Punct | Word::Connector) && !word.is_empty() {
                    out.push(delim);
                }
            }
            Word::Connector => push_lowered(&mut out, prev, last, delim),
            Word::Punct => {}
            _ => {
                if kind != Word::Number {
                    if !matches!(kind, Word::Connector | Word::Punct) {
                        out.push(delim);
                    }
                    continue;
                }
                if pos >= chars.len() {
                    continue;
                }
                let number = word;
                (kind, word) = take(&mut pos);
                if kind != Word::Alphabet {
                    // "Bld4Floor": the number belongs to the previous word.
                    push_lowered(&mut out, Word::Number, number, delim);
                    if !matches!(kind, Word::Connector | Word::Punct) {
                        out.push(delim);
                    }
                    continue;
                }
                // "HTTP2xx": lower-case letters after a number start a word with it.
                out.push(delim);
                push_lowered(&mut out, Word::Number, number, delim);
                loop {
                    if !matches!(kind, Word::Alphabet | Word::Number) {
                        break;
                    }
                    push_lowered(&mut out, kind, word, delim);
                    if pos >= chars.len() {
                        kind = Word::Other;
                        word = &[];
                        break;
                    }
                    (kind, word) = take(&mut pos);
                }
                if !matches!(kind, Word::Connector | Word::Punct) && !word.is_empty() {
                    out.push(delim);
                }
            }
        }
    }
    push_lowered(&mut out, kind, word, delim);
    out
}

/// `xstrings.ToPascalCase` (sprig's `camelcase`): connectors vanish and upper-case the next
/// letter; an upper-case word is lowered after its first letter (`GOLANG_IS` -> `GolangIs`);
/// leading and repeated connectors are kept.
fn camelcase(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    let mut first_upper = false;
    let mut r0 = None;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        if !is_connector(c) {
            first_upper = c.is_uppercase();
            r0 = Some(upper1(c));
            break;
        }
        out.push(c);
        r0 = Some(c);
    }
    let Some(mut r0) = r0 else {
        return out;
    };
    if i >= chars.len() {
        // Go writes the last rune read once more here, even a connector.
        out.push(r0);
        return out;
    }
    for &c in &chars[i..] {
        let r1 = r0;
        r0 = c;
        if is_connector(r0) && is_connector(r1) {
            out.push(r1);
            continue;
        }
        if is_connector(r1) {
            first_upper = r0.is_uppercase();
            r0 = upper1(r0);
        } else {
            if first_upper {
                if r0.is_uppercase() {
                    r0 = lower1(r0);
                } else {
                    first_upper = false;
                }
            }
            out.push(r1);
        }
    }
    out.push(r0);
    out
}

fn abbrev(s: &str, width: i64) -> String {
    if width < 4 || s.len() as i64 <= width {
        return s.to_string();
    }
    format!("{}...", &s[..floor_boundary(s, (width - 3) as usize)])
}

/// goutils `AbbreviateFull`, the engine of `abbrevboth`.
fn abbrevboth(s: &str, left: i64, right: i64) -> String {
    if right < 4 || (left > 0 && right < 7) || s.is_empty() || s.len() as i64 <= right {
        return s.to_string();
    }
    let len = s.len() as i64;
    let mut offset = left.clamp(0, len);
    if len - offset < right - 3 {
        offset = len - (right - 3);
    }
    if offset <= 4 {
        return format!("{}...", &s[..floor_boundary(s, (right - 3) as usize)]);
    }
    let offset = floor_boundary(s, offset as usize);
    if (offset as i64 + right - 3) < len {
        return format!("...{}", abbrev(&s[offset..], right - 3));
    }
    format!("...{}", &s[floor_boundary(s, (len - (right - 3)) as usize)..])
}

fn trunc(c: i64, s: &str) -> String {
    let len = s.len() as i64;
    if c < 0 && len + c > 0 {
        return s[floor_boundary(s, (len + c) as usize)..].to_string();
    }
    if c >= 0 && len > c {
        return s[..floor_boundary(s, c as usize)].to_string();
    }
    s.to_string()
}

fn substr(start: i64, end: i64, s: &str) -> crate::tmpl::Result<String> {
    let len = s.len() as i64;
    let bad = || call_error("substr", format!("slice bounds out of range [{start}:{end}]"));
    if start < 0 {
        if end < 0 || end > len {
            return Err(bad());
        }
        return Ok(s[..floor_boundary(s, end as usize)].to_string());
    }
    if end < 0 || end > len {
        if start > len {
            return Err(bad());
        }
        return Ok(s[floor_boundary(s, start as usize)..].to_string());
    }
    if start > end {
        return Err(bad());
    }
    Ok(s[floor_boundary(s, start as usize)..floor_boundary(s, end as usize)].to_string())
}

fn indent(func: &str, n: i64, s: &str) -> crate::tmpl::Result<String> {
    let n = usize::try_from(n)
        .map_err(|_| call_error(func, "strings: negative Repeat count"))?
        .min(super::conv::MAX_OUTPUT);
    let lines = s.matches('\n').count() + 1;
    if n.saturating_mul(lines).saturating_add(s.len()) > super::conv::MAX_OUTPUT {
        return Err(call_error(func, "result too large"));
    }
    let pad = " ".repeat(n);
    Ok(format!("{pad}{}", s.replace('\n', &format!("\n{pad}"))))
}

/// goutils `WrapCustom` (Apache commons `WordUtils.wrap`), byte-oriented like the original.
fn wrap(s: &str, width: i64, newline: &str, wrap_long: bool) -> String {
    if s.is_empty() {
        return String::new();
    }
    let width = usize::try_from(width.max(1)).unwrap_or(1);
    let b = s.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(b.len());
    let mut offset = 0usize;
    while b.len() - offset > width {
        if b[offset] == b' ' {
            offset += 1;
            continue;
        }
        let end = (width + offset + 1).min(b.len());
        match b[offset..end].iter().rposition(|&c| c == b' ') {
            Some(pos) => {
                out.extend_from_slice(&b[offset..offset + pos]);
                out.extend_from_slice(newline.as_bytes());
                offset += pos + 1;
            }
            None if wrap_long => {
                out.extend_from_slice(&b[offset..offset + width]);
                out.extend_from_slice(newline.as_bytes());
                offset += width;
            }
            None => {
                let end = width + offset;
                match b[end..].iter().position(|&c| c == b' ') {
                    None => {
                        out.extend_from_slice(&b[offset..]);
                        offset = b.len();
                    }
                    Some(idx) => {
                        out.extend_from_slice(&b[offset..end + idx]);
                        out.extend_from_slice(newline.as_bytes());
                        offset = end + idx + 1;
                    }
                }
            }
        }
    }
    out.extend_from_slice(&b[offset..]);
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trunc_handles_negative_and_oversized_counts() {
        assert_eq!(trunc(3, "foooooo"), "foo");
        assert_eq!(trunc(-3, "baaaaaar"), "aar");
        assert_eq!(trunc(-999, "baaaaaar"), "baaaaaar");
        assert_eq!(trunc(0, "baaaaaz"), "");
        assert_eq!(trunc(2, "héllo"), "h", "never cuts inside a character");
    }

    #[test]
    fn case_conversions_follow_xstrings() {
        assert_eq!(delimited_case("HTTPServer", '_'), "http_server");
        assert_eq!(delimited_case("NoHTTPS", '-'), "no-https");
        assert_eq!(delimited_case("GO PATH", '_'), "go_path");
        assert_eq!(delimited_case("http2xx", '_'), "http_2xx");
        assert_eq!(delimited_case("HTTP20xOK", '_'), "http_20x_ok");
        assert_eq!(delimited_case("Duration2m3s", '_'), "duration_2m3s");
        assert_eq!(delimited_case("Bld4Floor3rd", '-'), "bld4-floor-3rd");
        assert_eq!(camelcase("_complex__case_"), "_Complex_Case_");
        assert_eq!(camelcase("http_server"), "HttpServer");
        assert_eq!(camelcase("GOLANG_IS_GREAT"), "GolangIsGreat");
        assert_eq!(camelcase("_"), "__", "xstrings writes a lone connector twice");
        assert_eq!(title("hello wORLD-foo"), "Hello WORLD-Foo");
    }

    #[test]
    fn go_quote_escapes_like_strconv() {
        assert_eq!(go_quote("a\"b\\c\n\u{1}"), "\"a\\\"b\\\\c\\n\\x01\"");
        assert_eq!(go_quote("é"), "\"é\"");
    }

    #[test]
    fn split_follows_go_splitn() {
        assert_eq!(go_split("a$b$c", "$", 2), vec!["a", "b$c"]);
        assert_eq!(go_split("abc", "", -1), vec!["a", "b", "c"]);
        assert!(go_split("abc", "b", 0).is_empty());
    }

    #[test]
    fn wrap_breaks_at_spaces() {
        assert_eq!(wrap("Hello World", 5, "\n", false), "Hello\nWorld");
        assert_eq!(wrap("abcdefgh", 3, "|", true), "abc|def|gh");
    }
}

//! Regular expressions (sprig `regex.go`). Go's RE2 syntax is what Rust's `regex` accepts,
//! with one difference that changes results: Go's `\d`, `\w`, `\s` and `\b` are ASCII-only
//! while Rust's are Unicode-aware. [`compile`] rewrites those classes to ASCII so `\d` does
//! not match "٣" here when it would not under Helm.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use regex::Regex;

use crate::tmpl::{FuncMap, Value};

use super::add;
use super::conv::{arity, call_error, int_arg, list, str_arg, string};

pub(crate) fn register(m: &mut FuncMap) {
    add(m, "regexMatch", |a| {
        arity("regexMatch", a, 2, 2)?;
        // sprig ignores the compile error here (and only here): a bad pattern matches nothing.
        let s = str_arg("regexMatch", &a[1])?;
        Ok(Value::Bool(
            compile("regexMatch", str_arg("regexMatch", &a[0])?).is_ok_and(|re| re.is_match(s)),
        ))
    });
    add(m, "mustRegexMatch", |a| {
        arity("mustRegexMatch", a, 2, 2)?;
        let re = compile("mustRegexMatch", str_arg("mustRegexMatch", &a[0])?)?;
        Ok(Value::Bool(re.is_match(str_arg("mustRegexMatch", &a[1])?)))
    });
    for name in ["regexFind", "mustRegexFind"] {
        add(m, name, move |a| {
            arity(name, a, 2, 2)?;
            let re = compile(name, str_arg(name, &a[0])?)?;
            let s = str_arg(name, &a[1])?;
            Ok(string(re.find(s).map(|m| m.as_str()).unwrap_or("")))
        });
    }
    for name in ["regexFindAll", "mustRegexFindAll"] {
        add(m, name, move |a| {
            arity(name, a, 3, 3)?;
            let re = compile(name, str_arg(name, &a[0])?)?;
            let s = str_arg(name, &a[1])?;
            let n = int_arg(name, &a[2])?;
            let limit = usize::try_from(n).unwrap_or(usize::MAX);
            Ok(list(
                re.find_iter(s).take(limit).map(|m| string(m.as_str())).collect(),
            ))
        });
    }
    for name in ["regexReplaceAll", "mustRegexReplaceAll"] {
        add(m, name, move |a| {
            arity(name, a, 3, 3)?;
            let re = compile(name, str_arg(name, &a[0])?)?;
            let s = str_arg(name, &a[1])?;
            let repl = str_arg(name, &a[2])?;
            Ok(string(re.replace_all(s, repl).into_owned()))
        });
    }
    for name in ["regexReplaceAllLiteral", "mustRegexReplaceAllLiteral"] {
        add(m, name, move |a| {
            arity(name, a, 3, 3)?;
            let re = compile(name, str_arg(name, &a[0])?)?;
            let s = str_arg(name, &a[1])?;
            let repl = str_arg(name, &a[2])?;
            Ok(string(re.replace_all(s, regex::NoExpand(repl)).into_owned()))
        });
    }
    for name in ["regexSplit", "mustRegexSplit"] {
        add(m, name, move |a| {
            arity(name, a, 3, 3)?;
            let pattern = str_arg(name, &a[0])?;
            let re = compile(name, pattern)?;
            let s = str_arg(name, &a[1])?;
            let n = int_arg(name, &a[2])?;
            Ok(list(
                go_split(&re, pattern, s, n).into_iter().map(string).collect(),
            ))
        });
    }
    add(m, "regexQuoteMeta", |a| {
        arity("regexQuoteMeta", a, 1, 1)?;
        Ok(string(quote_meta(str_arg("regexQuoteMeta", &a[0])?)))
    });
}

/// Compiled patterns by source text: templates call these functions inside loops and for
/// every context of a release, and compiling dominates their cost. Bounded; cleared when full.
static CACHE: OnceLock<Mutex<HashMap<String, Regex>>> = OnceLock::new();
const CACHE_LIMIT: usize = 512;

/// Compiles a Go (RE2) pattern with Go's ASCII meaning of `\d`, `\w`, `\s`, `\b`.
pub(crate) fn compile(func: &str, pattern: &str) -> crate::tmpl::Result<Regex> {
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(re) = cache.lock().ok().and_then(|c| c.get(pattern).cloned()) {
        return Ok(re);
    }
    let re = Regex::new(&asciify(pattern))
        .map_err(|e| call_error(func, format!("error parsing regexp {pattern:?}: {e}")))?;
    if let Ok(mut c) = cache.lock() {
        if c.len() >= CACHE_LIMIT {
            c.clear();
        }
        c.insert(pattern.to_string(), re.clone());
    }
    Ok(re)
}

fn asciify(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut chars = pattern.chars();
    let mut in_class = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let Some(next) = chars.next() else {
                    out.push('\\');
                    break;
                };
                match (next, in_class) {
                    ('d', true) => out.push_str("0-9"),
                    ('w', true) => out.push_str("0-9A-Za-z_"),
                    ('s', true) => out.push_str("\\t\\n\\x0C\\r "),
                    ('d' | 'D' | 'w' | 'W' | 's' | 'S' | 'b' | 'B', false) => {
                        out.push_str("(?-u:\\");
                        out.push(next);
                        out.push(')');
                    }
                    _ => {
                        out.push('\\');
                        out.push(next);
                    }
                }
            }
            '[' if !in_class => {
                in_class = true;
                out.push('[');
                // A `]` right after `[` or `[^` is a literal member of the class.
                let rest = chars.as_str();
                let skip = if rest.starts_with("^]") {
                    2
                } else if rest.starts_with(']') || rest.starts_with('^') {
                    1
                } else {
                    0
                };
                out.push_str(&rest[..skip]);
                chars = rest[skip..].chars();
            }
            '[' if in_class && chars.as_str().starts_with(':') => {
                // A POSIX class such as [:alpha:] inside a bracket expression.
                let rest = chars.as_str();
                if let Some(end) = rest.find(":]") {
                    out.push('[');
                    out.push_str(&rest[..end + 2]);
                    chars = rest[end + 2..].chars();
                } else {
                    out.push('[');
                }
            }
            ']' if in_class => {
                in_class = false;
                out.push(']');
            }
            c => out.push(c),
        }
    }
    out
}

/// Go's `Regexp.Split`.
fn go_split(re: &Regex, pattern: &str, s: &str, n: i64) -> Vec<String> {
    if n == 0 {
        return Vec::new();
    }
    if !pattern.is_empty() && s.is_empty() {
        return vec![String::new()];
    }
    let mut out = Vec::new();
    let (mut beg, mut end) = (0usize, 0usize);
    for m in re.find_iter(s) {
        if n > 0 && out.len() as i64 == n - 1 {
            break;
        }
        end = m.start();
        if m.end() != 0 {
            out.push(s[beg..end].to_string());
        }
        beg = m.end();
    }
    if end != s.len() {
        out.push(s[beg..].to_string());
    }
    out
}

/// Go's `regexp.QuoteMeta` (escapes fewer characters than `regex::escape`).
fn quote_meta(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perl_classes_are_ascii_like_go() {
        let re = compile("t", r"^\d+$").unwrap();
        assert!(re.is_match("123"));
        assert!(!re.is_match("١٢٣"), "Arabic-Indic digits are not \\d in Go");
        let re = compile("t", r"^[\w-]+$").unwrap();
        assert!(re.is_match("a_b-9"));
        assert!(!re.is_match("é"));
        let re = compile("t", r"[]a]").unwrap();
        assert!(re.is_match("]"));
        let re = compile("t", r"^[[:alpha:]]+$").unwrap();
        assert!(re.is_match("abc"));
    }

    #[test]
    fn split_and_quote_follow_go() {
        let re = compile("t", "/").unwrap();
        assert_eq!(go_split(&re, "/", "foo/bar/baz", -1), vec!["foo", "bar", "baz"]);
        assert_eq!(go_split(&re, "/", "foo/bar/baz", 2), vec!["foo", "bar/baz"]);
        assert_eq!(quote_meta("1.2-3#"), "1\\.2-3#");
    }
}

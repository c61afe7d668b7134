//! Value conversions shared by every function module.
//!
//! Sprig functions are Go functions with typed parameters; Go's template engine rejects an
//! argument of the wrong type with "wrong type for value; expected string; got int". The
//! `*_arg` helpers reproduce that strictness so charts that fail under Helm fail here too.
//! The `to_*` helpers mirror `spf13/cast` (`cast.ToInt64`, `cast.ToFloat64`), which sprig uses
//! where it accepts `interface{}` and converts leniently.

use std::sync::Arc;

use crate::tmpl::{Dict, Error, Map, Result, Value};

/// Upper bound for strings and lists a function builds (`repeat`, `until`, `seq`, ...):
/// a template must not be able to exhaust memory with one call.
pub(crate) const MAX_OUTPUT: usize = 64 * 1024 * 1024;

/// An execution error for function `func`, worded like Go's `error calling NAME: ...`.
pub(crate) fn call_error(func: &str, msg: impl std::fmt::Display) -> Error {
    Error::Exec(format!("error calling {func}: {msg}"))
}

/// Checks the argument count, as Go does before calling a function.
pub(crate) fn arity(func: &str, args: &[Value], min: usize, max: usize) -> Result<()> {
    if args.len() < min || args.len() > max {
        let expected = if min == max {
            format!("{min}")
        } else if max == usize::MAX {
            format!("at least {min}")
        } else {
            format!("{min} to {max}")
        };
        return Err(Error::Exec(format!(
            "wrong number of args for {func}: want {expected} got {}",
            args.len()
        )));
    }
    Ok(())
}

/// Go's type name of a value, as `%T` prints it for data Helm passes to templates.
pub(crate) fn go_type_name(v: &Value) -> &'static str {
    match v {
        Value::Nil => "<nil>",
        Value::Bool(_) => "bool",
        Value::Int(_) => "int",
        Value::Uint(_) => "uint",
        Value::Float(_) => "float64",
        Value::String(_) => "string",
        Value::List(_) => "[]interface {}",
        Value::Map(_) => "map[string]interface {}",
        Value::Function(_) => "func",
        Value::Object(o) => o.type_name(),
    }
}

fn wrong_type(func: &str, expected: &str, v: &Value) -> Error {
    let got = match v {
        Value::Nil => "interface {}",
        other => go_type_name(other),
    };
    call_error(
        func,
        format!("wrong type for value; expected {expected}; got {got}"),
    )
}

/// A `string` parameter.
pub(crate) fn str_arg<'a>(func: &str, v: &'a Value) -> Result<&'a str> {
    v.as_str().ok_or_else(|| wrong_type(func, "string", v))
}

/// An `int` parameter: integers only (a float64 from YAML is refused, as in Helm).
pub(crate) fn int_arg(func: &str, v: &Value) -> Result<i64> {
    match v {
        Value::Int(i) => Ok(*i),
        Value::Uint(u) => i64::try_from(*u).map_err(|_| wrong_type(func, "int", v)),
        _ => Err(wrong_type(func, "int", v)),
    }
}

/// A `bool` parameter.
pub(crate) fn bool_arg(func: &str, v: &Value) -> Result<bool> {
    match v {
        Value::Bool(b) => Ok(*b),
        _ => Err(wrong_type(func, "bool", v)),
    }
}

/// A `map[string]interface{}` parameter: a handle on the caller's map (Go maps are
/// references, so `set` and `merge` change what the caller holds). An object whose plain
/// value is a map is accepted too (the executor normally converts objects already).
pub(crate) fn map_arg(func: &str, v: &Value) -> Result<Map> {
    match v {
        Value::Map(m) => Ok(m.clone()),
        Value::Object(o) => match o.to_value() {
            Value::Map(m) => Ok(m),
            _ => Err(wrong_type(func, "map[string]interface {}", v)),
        },
        _ => Err(wrong_type(func, "map[string]interface {}", v)),
    }
}

/// Builds a string value.
pub(crate) fn string(s: impl Into<Arc<str>>) -> Value {
    Value::String(s.into())
}

/// Builds a list value.
pub(crate) fn list(items: Vec<Value>) -> Value {
    Value::List(items.into())
}

/// Builds a new map value.
pub(crate) fn map(m: Dict) -> Value {
    Value::map(m)
}

/// Deepest nesting the recursive writers (`toYaml`, `toJson`, `toToml`, `merge`) accept: a
/// template can build arbitrarily deep dicts in a loop, and recursing into them would
/// overflow the stack instead of failing with an error.
pub(crate) const MAX_DEPTH: usize = 512;

/// Whether `v` nests lists/dicts deeper than [`MAX_DEPTH`] (checked without recursion).
/// Maps are shared references, so a template can build a cycle (`set $d "self" $d`); a
/// cycle nests without end and is reported here too.
pub(crate) fn too_deep(v: &Value) -> bool {
    fn nested(v: &Value) -> bool {
        matches!(v, Value::List(_) | Value::Map(_) | Value::Object(_))
    }
    let mut stack: Vec<(Value, usize)> = vec![(v.clone(), 0)];
    while let Some((v, depth)) = stack.pop() {
        if depth > MAX_DEPTH {
            return true;
        }
        match v {
            Value::List(items) => {
                stack.extend(items.iter().filter(|i| nested(i)).map(|i| (i.clone(), depth + 1)))
            }
            Value::Map(m) => stack.extend(
                m.borrow()
                    .values()
                    .filter(|i| nested(i))
                    .map(|i| (i.clone(), depth + 1)),
            ),
            Value::Object(o) => stack.push((o.to_value(), depth + 1)),
            _ => {}
        }
    }
    false
}

/// Go's `reflect.DeepEqual` on template values, as sprig's `deepEqual`, `has`, `uniq` and
/// `without` compare: same kinds and equal contents (`1` and `1.0` differ), the same map
/// being equal to itself. An error instead of endless recursion for values nested deeper
/// than [`MAX_DEPTH`] (two distinct cyclic dicts).
pub(crate) fn deep_equal(a: &Value, b: &Value) -> std::result::Result<bool, String> {
    fn eq(a: &Value, b: &Value, depth: usize) -> std::result::Result<bool, String> {
        if depth > MAX_DEPTH {
            return Err(too_deep_message());
        }
        match (a, b) {
            (Value::List(x), Value::List(y)) => {
                if x.len() != y.len() {
                    return Ok(false);
                }
                for (i, j) in x.iter().zip(y.iter()) {
                    if !eq(i, j, depth + 1)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            (Value::Map(x), Value::Map(y)) => {
                if x.ptr_eq(y) {
                    return Ok(true);
                }
                let (x, y) = (x.borrow(), y.borrow());
                if x.len() != y.len() {
                    return Ok(false);
                }
                for ((kx, vx), (ky, vy)) in x.iter().zip(y.iter()) {
                    if kx != ky || !eq(vx, vy, depth + 1)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            _ => Ok(a == b),
        }
    }
    eq(a, b, 0)
}

/// Most maps and lists [`deep_copy`] creates: a template can build a value whose maps are
/// shared many times over (`dict "a" $d "b" $d` in a loop), which copies exponentially.
const MAX_COPY_NODES: usize = 4_000_000;

/// A deep copy, as `copystructure.Copy` makes for sprig's `deepCopy`: new maps and lists all
/// the way down, so changing the copy leaves the original alone. Scalars, functions and
/// objects are shared (they are immutable). Fails on values nested deeper than
/// [`MAX_DEPTH`] (which includes cyclic maps) and on copies of more than a few million
/// maps and lists.
pub(crate) fn deep_copy(v: &Value) -> std::result::Result<Value, String> {
    fn copy(v: &Value, depth: usize, budget: &mut usize) -> std::result::Result<Value, String> {
        if !matches!(v, Value::List(_) | Value::Map(_)) {
            return Ok(v.clone());
        }
        if depth > MAX_DEPTH {
            return Err(too_deep_message());
        }
        *budget = budget
            .checked_sub(1)
            .ok_or_else(|| format!("value holds more than {MAX_COPY_NODES} maps and lists"))?;
        match v {
            Value::List(items) => Ok(Value::list(
                items
                    .iter()
                    .map(|i| copy(i, depth + 1, budget))
                    .collect::<std::result::Result<_, _>>()?,
            )),
            Value::Map(m) => {
                // Copy the entries first: nothing is borrowed while the copy recurses.
                let entries = m.snapshot();
                let mut out = Dict::new();
                for (k, item) in entries {
                    out.insert(k, copy(&item, depth + 1, budget)?);
                }
                Ok(Value::map(out))
            }
            other => Ok(other.clone()),
        }
    }
    let mut budget = MAX_COPY_NODES;
    copy(v, 0, &mut budget)
}

/// The error for values deeper than [`MAX_DEPTH`].
pub(crate) fn too_deep_message() -> String {
    format!("value nests deeper than {MAX_DEPTH} levels")
}

/// Formats a value as Go's `fmt.Sprint` / `%v` does (floats as `%g`: `1e+06`, maps sorted).
pub fn go_string(v: &Value) -> String {
    if too_deep(v) {
        return format!("<{}>", too_deep_message());
    }
    let mut out = String::new();
    write_go(&mut out, v);
    out
}

fn write_go(out: &mut String, v: &Value) {
    match v {
        Value::Nil => out.push_str("<nil>"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => out.push_str(&i.to_string()),
        Value::Uint(u) => out.push_str(&u.to_string()),
        Value::Float(f) => out.push_str(&format_float_g(*f)),
        Value::String(s) => out.push_str(s),
        Value::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                write_go(out, item);
            }
            out.push(']');
        }
        Value::Map(m) => {
            out.push_str("map[");
            for (i, (k, item)) in m.borrow().iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(k);
                out.push(':');
                write_go(out, item);
            }
            out.push(']');
        }
        Value::Function(_) => out.push_str("<func>"),
        // `fmt` prints a value with a `String()` method through it.
        Value::Object(o) => match o.display() {
            Some(text) => out.push_str(&text),
            None => write_go(out, &o.to_value()),
        },
    }
}

/// Sprig's `strval`: strings as they are, everything else through `%v`.
pub(crate) fn strval(v: &Value) -> String {
    go_string(v)
}

/// Shortest decimal digits of `f` (no sign) and the decimal exponent of the first digit.
fn shortest_digits(f: f64) -> (String, i32) {
    // Rust's `{:e}` prints the shortest round-tripping digits, like Go's strconv with -1.
    digits_of(&format!("{:e}", f.abs()))
}

/// Digits and decimal exponent of a `{:e}` rendering (`1.5e3` is `("15", 3)`).
fn digits_of(s: &str) -> (String, i32) {
    let (mantissa, exp) = s.split_once('e').unwrap_or((s, "0"));
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    (digits, exp.parse().unwrap_or(0))
}

fn special_float(f: f64) -> Option<String> {
    if f.is_nan() {
        Some("NaN".into())
    } else if f.is_infinite() {
        Some(if f > 0.0 { "+Inf" } else { "-Inf" }.into())
    } else {
        None
    }
}

/// Go's `strconv.FormatFloat(f, 'e', -1, 64)`: `1.5e+06`.
fn format_e(neg: bool, digits: &str, exp: i32) -> String {
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    out.push_str(&digits[..1]);
    if digits.len() > 1 {
        out.push('.');
        out.push_str(&digits[1..]);
    }
    out.push('e');
    out.push(if exp < 0 { '-' } else { '+' });
    let e = exp.unsigned_abs();
    if e < 10 {
        out.push('0');
    }
    out.push_str(&e.to_string());
    out
}

/// Go's `strconv.FormatFloat(f, 'f', -1, 64)`: shortest digits, positional.
fn format_f(neg: bool, digits: &str, exp: i32) -> String {
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    let point = exp + 1; // digits before the decimal point
    if point <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', point.unsigned_abs() as usize));
        out.push_str(digits);
    } else if point as usize >= digits.len() {
        out.push_str(digits);
        out.extend(std::iter::repeat_n('0', point as usize - digits.len()));
    } else {
        out.push_str(&digits[..point as usize]);
        out.push('.');
        out.push_str(&digits[point as usize..]);
    }
    out
}

/// Go's `%v` / `strconv.FormatFloat(f, 'g', -1, 64)`: exponent form below 1e-4 and from 1e+06 on.
pub fn format_float_g(f: f64) -> String {
    if let Some(s) = special_float(f) {
        return s;
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.into();
    }
    let (digits, exp) = shortest_digits(f);
    if !(-4..6).contains(&exp) {
        format_e(f < 0.0, &digits, exp)
    } else {
        format_f(f < 0.0, &digits, exp)
    }
}

/// Go's `strconv.FormatFloat(f, 'g', -1, 32)`: `%g` of the value rounded to a float32,
/// with the float32's shortest digits (`3.14159265358979` is `3.1415927`). sigs.k8s.io/yaml
/// names float map keys this way.
pub(crate) fn format_float_g32(f: f64) -> String {
    let v = f as f32;
    if let Some(s) = special_float(f64::from(v)) {
        return s;
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0" } else { "0" }.into();
    }
    let (digits, exp) = digits_of(&format!("{:e}", v.abs()));
    if !(-4..6).contains(&exp) {
        format_e(v < 0.0, &digits, exp)
    } else {
        format_f(v < 0.0, &digits, exp)
    }
}

/// Go's `encoding/json` float format: positional unless below 1e-6 or from 1e21 on;
/// negative zero keeps its sign (`-0`), as Go prints it.
pub fn format_float_json(f: f64) -> String {
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.into();
    }
    let (digits, exp) = shortest_digits(f);
    let abs = f.abs();
    if !(1e-6..1e21).contains(&abs) {
        let s = format_e(f < 0.0, &digits, exp);
        // encoding/json shortens "e-07" to "e-7".
        s.replace("e-0", "e-").replace("e+0", "e+")
    } else {
        format_f(f < 0.0, &digits, exp)
    }
}

/// `cast.ToInt64`: numbers truncate, strings parse (base prefixes allowed), anything else is 0.
pub(crate) fn to_i64(v: &Value) -> i64 {
    match v {
        Value::Int(i) => *i,
        Value::Uint(u) => *u as i64,
        Value::Float(f) => go_float_to_i64(*f),
        Value::Bool(b) => i64::from(*b),
        Value::String(s) => parse_go_int(s).unwrap_or(0),
        Value::Object(o) => to_i64(&o.to_value()),
        _ => 0,
    }
}

/// Go's `int64(f)` on amd64: out-of-range values and NaN become `math.MinInt64`.
pub(crate) fn go_float_to_i64(f: f64) -> i64 {
    if (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&f) {
        f as i64
    } else {
        i64::MIN
    }
}

/// `cast.ToFloat64`: numbers widen, strings parse, anything else is 0.
pub(crate) fn to_f64(v: &Value) -> f64 {
    match v {
        Value::Int(i) => *i as f64,
        Value::Uint(u) => *u as f64,
        Value::Float(f) => *f,
        Value::Bool(b) => f64::from(u8::from(*b)),
        Value::String(s) => s.trim().parse().unwrap_or(0.0),
        Value::Object(o) => to_f64(&o.to_value()),
        _ => 0.0,
    }
}

/// `strconv.ParseInt(s, 0, 64)` after cast's trimming of a zero decimal part ("3.0" -> 3).
pub(crate) fn parse_go_int(s: &str) -> Option<i64> {
    parse_go_int_strict(s.strip_suffix(".0").unwrap_or(s))
}

/// Go's `strconv.ParseInt(s, 0, 64)`: optional sign, then decimal, `0x`, `0o`, `0b` or a
/// leading-zero octal; underscores are ignored (Go only allows them between digits).
pub(crate) fn parse_go_int_strict(s: &str) -> Option<i64> {
    let (neg, body) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if body.is_empty() || body.starts_with(['+', '-']) {
        return None;
    }
    let lower = body.to_ascii_lowercase();
    let (digits, radix) = if let Some(hex) = lower.strip_prefix("0x") {
        (hex, 16)
    } else if let Some(bin) = lower.strip_prefix("0b") {
        (bin, 2)
    } else if let Some(oct) = lower.strip_prefix("0o") {
        (oct, 8)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (&lower[1..], 8)
    } else {
        (lower.as_str(), 10)
    };
    let digits = digits.replace('_', "");
    if digits.is_empty() || digits.starts_with(['+', '-']) {
        return None;
    }
    let magnitude = u64::from_str_radix(&digits, radix).ok()?;
    if neg {
        0i64.checked_sub_unsigned(magnitude)
    } else {
        i64::try_from(magnitude).ok()
    }
}

/// Sprig's `empty`: the zero value of its type (nil, false, 0, "", empty list or map).
pub(crate) fn is_empty(v: &Value) -> bool {
    !v.is_truthy()
}

/// Converts list-like input (a list, or nil) to a slice; sprig's list functions accept both.
pub(crate) fn list_items<'a>(func: &str, v: &'a Value) -> Result<&'a [Value]> {
    match v {
        Value::List(items) => Ok(items),
        Value::Nil => Ok(&[]),
        other => Err(call_error(
            func,
            format!("Cannot find {func} on type {}", go_type_name(other)),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_format_like_go_percent_v() {
        assert_eq!(format_float_g(64.0), "64");
        assert_eq!(format_float_g(1_000_000.0), "1e+06");
        assert_eq!(format_float_g(123_456.0), "123456");
        assert_eq!(format_float_g(1_234_567.0), "1.234567e+06");
        assert_eq!(format_float_g(0.0001), "0.0001");
        assert_eq!(format_float_g(0.00001), "1e-05");
        assert_eq!(format_float_g(-2.5), "-2.5");
        assert_eq!(format_float_g(f64::INFINITY), "+Inf");
        assert_eq!(go_string(&Value::Float(3.0)), "3");
    }

    #[test]
    fn floats_format_like_go_json() {
        assert_eq!(format_float_json(1_000_000.0), "1000000");
        assert_eq!(format_float_json(1e21), "1e+21");
        assert_eq!(format_float_json(0.0000001), "1e-7");
        assert_eq!(format_float_json(0.5), "0.5");
    }

    #[test]
    fn go_int_parsing_accepts_prefixes() {
        assert_eq!(parse_go_int("0x1F"), Some(31));
        assert_eq!(parse_go_int("017"), Some(15));
        assert_eq!(parse_go_int("-42"), Some(-42));
        assert_eq!(parse_go_int("3.0"), Some(3));
        assert_eq!(parse_go_int("abc"), None);
    }

    #[test]
    fn cycles_are_too_deep_and_copies_are_new_maps() {
        let cyclic = Map::default();
        cyclic.insert("self".into(), Value::Map(cyclic.clone()));
        let other = Map::default();
        other.insert("self".into(), Value::Map(other.clone()));
        let (c, o) = (Value::Map(cyclic.clone()), Value::Map(other.clone()));
        assert!(too_deep(&c));
        assert!(go_string(&c).contains("deeper than"));
        assert!(deep_copy(&c).is_err());
        assert_eq!(deep_equal(&c, &c), Ok(true), "a map equals itself");
        assert!(deep_equal(&c, &o).is_err());
        cyclic.remove("self");
        other.remove("self");

        let inner = Map::default();
        inner.insert("k".into(), Value::Int(1));
        let v = list(vec![Value::Map(inner.clone()), Value::Int(2)]);
        let copy = deep_copy(&v).unwrap();
        assert_eq!(deep_equal(&v, &copy), Ok(true));
        let Value::List(items) = &copy else {
            panic!("a list")
        };
        let Value::Map(copied) = &items[0] else {
            panic!("a map")
        };
        assert!(!copied.ptr_eq(&inner));
        assert_eq!(deep_equal(&Value::Int(1), &Value::Float(1.0)), Ok(false));
    }

    #[test]
    fn maps_and_lists_print_like_go() {
        let mut m = Dict::new();
        m.insert(Arc::from("b"), Value::Float(1e6));
        m.insert(Arc::from("a"), list(vec![Value::Int(1), Value::Nil]));
        assert_eq!(go_string(&map(m)), "map[a:[1 <nil>] b:1e+06]");
    }
}

//! Go's predefined template functions that are not Helm's or sprig's: comparison,
//! `index`, `len`, `not`, printing and the escapers. Sprig's functions of the same name
//! (`slice`) replace Go's, as in Helm, because the function map is searched first.

use std::sync::Arc;

use super::exec::Val;
use super::fmt::{sprint, sprintf, sprintln};
use super::value::Value;

const BUILTINS: &[&str] = &[
    "and", "or", "not", "len", "index", "slice", "print", "printf", "println", "html", "js", "urlquery",
    "call", "eq", "ne", "lt", "le", "gt", "ge",
];

/// Whether `name` is one of Go's builtins.
pub(crate) fn is_builtin(name: &str) -> bool {
    BUILTINS.contains(&name)
}

/// How a builtin failed, which decides where Go reports it.
pub(crate) enum BuiltinError {
    /// The argument count (reported at the function name).
    Arity(String),
    /// The function returned an error ("error calling NAME: ...").
    Call(String),
    /// The executor refused an argument ("invalid value; expected ...").
    Plain(String),
}

use BuiltinError::{Arity, Call, Plain};

fn arity(name: &str, n: usize, min: usize, variadic: bool) -> Result<(), BuiltinError> {
    if variadic && n < min {
        return Err(Arity(format!(
            "wrong number of args for {name}: want at least {min} got {n}"
        )));
    }
    if !variadic && n != min {
        return Err(Arity(format!(
            "wrong number of args for {name}: want {min} got {n}"
        )));
    }
    Ok(())
}

/// Arguments of type `interface{}`: invalid becomes nil.
fn iface_args(args: Vec<Val>) -> Vec<Value> {
    args.into_iter().map(|a| a.into_value().plain()).collect()
}

/// Calls builtin `name`.
pub(crate) fn call(name: &str, args: Vec<Val>) -> Result<Val, BuiltinError> {
    let n = args.len();
    match name {
        "not" => {
            arity(name, n, 1, false)?;
            Ok(Val::Conc(Value::Bool(!args[0].truth())))
        }
        "len" => {
            arity(name, n, 1, false)?;
            if !args[0].is_valid() {
                return Err(Call("reflect: call of reflect.Value.Type on zero Value".into()));
            }
            let l = match args[0].value().plain() {
                Value::String(s) => s.len(),
                Value::List(l) => l.len(),
                Value::Map(m) => m.len(),
                Value::Nil => return Err(Call("len of nil pointer".into())),
                other => return Err(Call(format!("len of type {}", other.type_name()))),
            };
            Ok(Val::Conc(Value::Int(l as i64)))
        }
        "index" => {
            arity(name, n, 1, true)?;
            index(&args).map_err(Call)
        }
        "slice" => {
            arity(name, n, 1, true)?;
            slice(&args).map_err(Call)
        }
        "print" => Ok(Val::Conc(Value::from(sprint(&iface_args(args))))),
        "println" => Ok(Val::Conc(Value::from(sprintln(&iface_args(args))))),
        "printf" => {
            arity(name, n, 1, true)?;
            let mut it = args.into_iter();
            let format = match it.next() {
                Some(Val::Iface(Value::String(s)) | Val::Conc(Value::String(s))) => s,
                Some(Val::Invalid) => return Err(Plain("invalid value; expected string".into())),
                Some(Val::Iface(Value::Nil)) => {
                    return Err(Plain(
                        "wrong type for value; expected string; got interface {}".into(),
                    ));
                }
                Some(other) => {
                    return Err(Plain(format!(
                        "wrong type for value; expected string; got {}",
                        other.value().type_name()
                    )));
                }
                None => Arc::from(""),
            };
            Ok(Val::Conc(Value::from(sprintf(
                &format,
                &iface_args(it.collect()),
            ))))
        }
        "html" => Ok(Val::Conc(Value::from(html_escape(&eval_args(args))))),
        "js" => Ok(Val::Conc(Value::from(js_escape(&eval_args(args))))),
        "urlquery" => Ok(Val::Conc(Value::from(query_escape(&eval_args(args))))),
        "call" => {
            arity(name, n, 1, true)?;
            let mut it = args.into_iter();
            let f = it.next().map(Val::into_value).unwrap_or(Value::Nil);
            match f {
                Value::Function(func) => {
                    let argv: Vec<Value> = it.map(Val::into_value).collect();
                    func(&argv).map(Val::Iface).map_err(|e| Call(e.to_string()))
                }
                Value::Nil => Err(Call("call of nil".into())),
                other => Err(Call(format!("non-function of type {}", other.type_name()))),
            }
        }
        "eq" => {
            arity(name, n, 1, true)?;
            eq(&args[0], &args[1..])
                .map(|b| Val::Conc(Value::Bool(b)))
                .map_err(Call)
        }
        "ne" => {
            arity(name, n, 2, false)?;
            eq(&args[0], &args[1..])
                .map(|b| Val::Conc(Value::Bool(!b)))
                .map_err(Call)
        }
        "lt" | "le" | "gt" | "ge" => {
            arity(name, n, 2, false)?;
            let (a, b) = (&args[0], &args[1]);
            let r = match name {
                "lt" => lt(a, b),
                "le" => le(a, b),
                "gt" => le(a, b).map(|x| !x),
                _ => lt(a, b).map(|x| !x),
            };
            r.map(|b| Val::Conc(Value::Bool(b))).map_err(Call)
        }
        _ => Err(Call(format!("{name} is not a builtin"))),
    }
}

/// Go's `evalArgs` for the escapers: one string as is, anything else through `Sprint`,
/// nil printed as a template prints it (`<no value>`).
fn eval_args(args: Vec<Val>) -> String {
    let vals = iface_args(args);
    if let [Value::String(s)] = vals.as_slice() {
        return s.to_string();
    }
    let printable: Vec<Value> = vals
        .into_iter()
        .map(|v| match v {
            Value::Nil => Value::from("<no value>"),
            v => v,
        })
        .collect();
    sprint(&printable)
}

#[derive(PartialEq, Clone, Copy, Debug)]
enum Kind {
    Bool,
    Int,
    Uint,
    Float,
    Str,
    Other,
}

fn basic_kind(v: &Value) -> Kind {
    match v {
        Value::Bool(_) => Kind::Bool,
        Value::Int(_) => Kind::Int,
        Value::Uint(_) => Kind::Uint,
        Value::Float(_) => Kind::Float,
        Value::String(_) => Kind::Str,
        _ => Kind::Other,
    }
}

const BAD_COMPARISON: &str = "incompatible types for comparison";
const BAD_COMPARISON_TYPE: &str = "invalid type for comparison";

fn eq(a: &Val, rest: &[Val]) -> Result<bool, String> {
    if rest.is_empty() {
        return Err("missing argument for comparison".into());
    }
    let a = a.value().plain();
    let k1 = basic_kind(&a);
    for b in rest {
        let b = b.value().plain();
        let k2 = basic_kind(&b);
        let truth = if k1 != k2 {
            match (&a, &b) {
                (Value::Int(x), Value::Uint(y)) => *x >= 0 && *x as u64 == *y,
                (Value::Uint(x), Value::Int(y)) => *y >= 0 && *x == *y as u64,
                _ => {
                    if !matches!(a, Value::Nil) && !matches!(b, Value::Nil) {
                        return Err(BAD_COMPARISON.into());
                    }
                    false
                }
            }
        } else {
            match (&a, &b) {
                (Value::Bool(x), Value::Bool(y)) => x == y,
                (Value::Int(x), Value::Int(y)) => x == y,
                (Value::Uint(x), Value::Uint(y)) => x == y,
                (Value::Float(x), Value::Float(y)) => x == y,
                (Value::String(x), Value::String(y)) => x == y,
                (Value::Nil, _) | (_, Value::Nil) => matches!(a, Value::Nil) && matches!(b, Value::Nil),
                (Value::List(_) | Value::Map(_) | Value::Function(_), _)
                | (_, Value::List(_) | Value::Map(_) | Value::Function(_)) => {
                    return Err(format!(
                        "non-comparable type {}: {}",
                        sprintf("%s", std::slice::from_ref(&b)),
                        b.type_name()
                    ));
                }
                _ => a == b,
            }
        };
        if truth {
            return Ok(true);
        }
    }
    Ok(false)
}

fn lt(a: &Val, b: &Val) -> Result<bool, String> {
    let a = a.value().plain();
    let b = b.value().plain();
    let (k1, k2) = (basic_kind(&a), basic_kind(&b));
    if k1 == Kind::Other || k2 == Kind::Other {
        return Err(BAD_COMPARISON_TYPE.into());
    }
    if k1 != k2 {
        return match (&a, &b) {
            (Value::Int(x), Value::Uint(y)) => Ok(*x < 0 || (*x as u64) < *y),
            (Value::Uint(x), Value::Int(y)) => Ok(*y >= 0 && *x < *y as u64),
            _ => Err(BAD_COMPARISON.into()),
        };
    }
    match (&a, &b) {
        (Value::Bool(_), _) => Err(BAD_COMPARISON_TYPE.into()),
        (Value::Int(x), Value::Int(y)) => Ok(x < y),
        (Value::Uint(x), Value::Uint(y)) => Ok(x < y),
        (Value::Float(x), Value::Float(y)) => Ok(x < y),
        (Value::String(x), Value::String(y)) => Ok(x < y),
        _ => Err(BAD_COMPARISON_TYPE.into()),
    }
}

fn le(a: &Val, b: &Val) -> Result<bool, String> {
    if lt(a, b)? {
        return Ok(true);
    }
    eq(a, std::slice::from_ref(b))
}

fn index_arg(index: &Value, cap: usize) -> Result<usize, String> {
    let x: i128 = match index {
        Value::Int(i) => i128::from(*i),
        Value::Uint(u) => i128::from(*u),
        Value::Nil => return Err("cannot index slice/array with nil".into()),
        other => {
            return Err(format!(
                "cannot index slice/array with type {}",
                other.type_name()
            ));
        }
    };
    if x < 0 || x > cap as i128 {
        return Err(format!("index out of range: {x}"));
    }
    Ok(x as usize)
}

fn index(args: &[Val]) -> Result<Val, String> {
    let mut item = match &args[0] {
        Val::Invalid => return Err("index of untyped nil".into()),
        v => v.clone(),
    };
    for idx in &args[1..] {
        let idx = idx.value().plain();
        item = match item.value().plain() {
            Value::Nil => return Err("index of nil pointer".into()),
            Value::List(l) => {
                let x = index_arg(&idx, l.len())?;
                match l.get(x) {
                    Some(v) => Val::Iface(v.clone()),
                    None => return Err("reflect: slice index out of range".into()),
                }
            }
            Value::String(s) => {
                let x = index_arg(&idx, s.len())?;
                match s.as_bytes().get(x) {
                    Some(b) => Val::Conc(Value::Uint(u64::from(*b))),
                    None => return Err("reflect: string index out of range".into()),
                }
            }
            Value::Map(m) => match &idx {
                Value::String(k) => Val::Iface(m.get(k).unwrap_or(Value::Nil)),
                Value::Nil => return Err("value is nil; should be of type string".into()),
                other => return Err(format!("value has type {}; should be string", other.type_name())),
            },
            other => return Err(format!("can't index item of type {}", other.type_name())),
        };
    }
    Ok(item)
}

fn slice(args: &[Val]) -> Result<Val, String> {
    let item = match &args[0] {
        Val::Invalid => return Err("slice of untyped nil".into()),
        v => v.value().plain(),
    };
    let idx = &args[1..];
    if idx.len() > 3 {
        return Err(format!("too many slice indexes: {}", idx.len()));
    }
    let (len, is_str) = match &item {
        Value::String(s) => {
            if idx.len() == 3 {
                return Err("cannot 3-index slice a string".into());
            }
            (s.len(), true)
        }
        Value::List(l) => (l.len(), false),
        other => return Err(format!("can't slice item of type {}", other.type_name())),
    };
    let mut bounds = [0, len, len];
    for (i, x) in idx.iter().enumerate() {
        bounds[i] = index_arg(&x.value(), len)?;
    }
    if bounds[0] > bounds[1] {
        return Err(format!("invalid slice index: {} > {}", bounds[0], bounds[1]));
    }
    if idx.len() == 3 && bounds[1] > bounds[2] {
        return Err(format!("invalid slice index: {} > {}", bounds[1], bounds[2]));
    }
    Ok(Val::Conc(match item {
        Value::String(s) if is_str => match s.get(bounds[0]..bounds[1]) {
            Some(sub) => Value::from(sub),
            None => Value::from(String::from_utf8_lossy(&s.as_bytes()[bounds[0]..bounds[1]]).as_ref()),
        },
        Value::List(l) => Value::list(l[bounds[0]..bounds[1]].to_vec()),
        other => other,
    }))
}

/// Go's `template.HTMLEscapeString`.
pub(crate) fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\0' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Go's `template.JSEscapeString`.
pub(crate) fn js_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '&' => out.push_str("\\u0026"),
            '=' => out.push_str("\\u003D"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04X}", c as u32)),
            c if c.is_ascii() => out.push(c),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Go's `url.QueryEscape`.
pub(crate) fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

//! List functions (sprig `list.go`). Every function returns a new list; the `must*` variants
//! behave the same here because nothing panics (Go's plain variants panic on bad input,
//! which the template engine reports as an error anyway).

use crate::tmpl::{FuncMap, Value};

use super::add;
use super::conv::{arity, call_error, deep_equal, int_arg, is_empty, list, list_items};

/// The list a sprig list function works on. Sprig asks `reflect.TypeOf(list).Kind()`
/// first, which dereferences nil: a missing list is Go's nil pointer panic, reported as an
/// error, not an empty list.
fn seq<'a>(func: &str, v: &'a Value) -> crate::tmpl::Result<&'a [Value]> {
    if matches!(v, Value::Nil) {
        return Err(call_error(
            func,
            "runtime error: invalid memory address or nil pointer dereference",
        ));
    }
    list_items(func, v)
}

/// Whether `haystack` holds `needle` (sprig's `inList`: `reflect.DeepEqual`).
fn in_list(func: &str, haystack: &[Value], needle: &Value) -> crate::tmpl::Result<bool> {
    for item in haystack {
        if deep_equal(needle, item).map_err(|e| call_error(func, e))? {
            return Ok(true);
        }
    }
    Ok(false)
}

pub(crate) fn register(m: &mut FuncMap) {
    add(m, "list", |a| Ok(list(a.to_vec())));
    add(m, "tuple", |a| Ok(list(a.to_vec())));
    for name in ["push", "append", "mustPush", "mustAppend"] {
        add(m, name, move |a| {
            arity(name, a, 2, 2)?;
            let mut items = seq(name, &a[0])?.to_vec();
            items.push(a[1].clone());
            Ok(list(items))
        });
    }
    for name in ["prepend", "mustPrepend"] {
        add(m, name, move |a| {
            arity(name, a, 2, 2)?;
            let mut items = vec![a[1].clone()];
            items.extend_from_slice(seq(name, &a[0])?);
            Ok(list(items))
        });
    }
    for name in ["chunk", "mustChunk"] {
        add(m, name, move |a| {
            arity(name, a, 2, 2)?;
            let size = int_arg(name, &a[0])?;
            let items = seq(name, &a[1])?;
            let size = usize::try_from(size)
                .ok()
                .filter(|s| *s > 0)
                .ok_or_else(|| call_error(name, "chunk size must be positive"))?;
            Ok(list(items.chunks(size).map(|c| list(c.to_vec())).collect()))
        });
    }
    for name in ["first", "mustFirst"] {
        add(m, name, move |a| {
            arity(name, a, 1, 1)?;
            Ok(seq(name, &a[0])?.first().cloned().unwrap_or(Value::Nil))
        });
    }
    for name in ["last", "mustLast"] {
        add(m, name, move |a| {
            arity(name, a, 1, 1)?;
            Ok(seq(name, &a[0])?.last().cloned().unwrap_or(Value::Nil))
        });
    }
    for name in ["rest", "mustRest"] {
        add(m, name, move |a| {
            arity(name, a, 1, 1)?;
            let items = seq(name, &a[0])?;
            Ok(list(items.get(1..).unwrap_or_default().to_vec()))
        });
    }
    for name in ["initial", "mustInitial"] {
        add(m, name, move |a| {
            arity(name, a, 1, 1)?;
            let items = seq(name, &a[0])?;
            Ok(list(items[..items.len().saturating_sub(1)].to_vec()))
        });
    }
    for name in ["reverse", "mustReverse"] {
        add(m, name, move |a| {
            arity(name, a, 1, 1)?;
            Ok(list(seq(name, &a[0])?.iter().rev().cloned().collect()))
        });
    }
    for name in ["uniq", "mustUniq"] {
        add(m, name, move |a| {
            arity(name, a, 1, 1)?;
            let mut out: Vec<Value> = Vec::new();
            for item in seq(name, &a[0])? {
                if !in_list(name, &out, item)? {
                    out.push(item.clone());
                }
            }
            Ok(list(out))
        });
    }
    for name in ["compact", "mustCompact"] {
        add(m, name, move |a| {
            arity(name, a, 1, 1)?;
            let items = seq(name, &a[0])?;
            Ok(list(items.iter().filter(|v| !is_empty(v)).cloned().collect()))
        });
    }
    for name in ["without", "mustWithout"] {
        add(m, name, move |a| {
            arity(name, a, 1, usize::MAX)?;
            let omit = &a[1..];
            let mut out = Vec::new();
            for item in seq(name, &a[0])? {
                if !in_list(name, omit, item)? {
                    out.push(item.clone());
                }
            }
            Ok(list(out))
        });
    }
    for name in ["has", "mustHas"] {
        add(m, name, move |a| {
            arity(name, a, 2, 2)?;
            if matches!(a[1], Value::Nil) {
                return Ok(Value::Bool(false));
            }
            Ok(Value::Bool(in_list(name, list_items(name, &a[1])?, &a[0])?))
        });
    }
    for name in ["slice", "mustSlice"] {
        add(m, name, move |a| {
            // Indexes after the second are ignored, as in sprig.
            arity(name, a, 1, usize::MAX)?;
            let items = seq(name, &a[0])?;
            if items.is_empty() {
                // sprig returns nil for an empty list whatever the bounds.
                return Ok(Value::Nil);
            }
            let bound = |i: usize| -> crate::tmpl::Result<usize> {
                let n = int_arg(name, &a[i])?;
                usize::try_from(n)
                    .ok()
                    .filter(|n| *n <= items.len())
                    .ok_or_else(|| call_error(name, format!("index {n} out of range")))
            };
            let start = if a.len() > 1 { bound(1)? } else { 0 };
            let end = if a.len() > 2 { bound(2)? } else { items.len() };
            if start > end {
                return Err(call_error(name, format!("invalid slice [{start}:{end}]")));
            }
            Ok(list(items[start..end].to_vec()))
        });
    }
    add(m, "concat", |a| {
        let mut out = Vec::new();
        for l in a {
            out.extend_from_slice(seq("concat", l)?);
        }
        Ok(list(out))
    });
}

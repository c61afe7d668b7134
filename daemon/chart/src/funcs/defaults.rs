//! Defaults and flow helpers (sprig `defaults.go`): emptiness is Go's zero value, so `0`,
//! `false`, `""`, nil and empty lists or dicts are all "empty".

use crate::tmpl::{FuncMap, Value};

use super::add;
use super::conv::{arity, bool_arg, call_error, is_empty, str_arg};

pub(crate) fn register(m: &mut FuncMap) {
    add(m, "default", |a| {
        arity("default", a, 1, 2)?;
        match a.get(1) {
            Some(given) if !is_empty(given) => Ok(given.clone()),
            _ => Ok(a[0].clone()),
        }
    });
    add(m, "empty", |a| {
        arity("empty", a, 1, 1)?;
        Ok(Value::Bool(is_empty(&a[0])))
    });
    add(m, "coalesce", |a| {
        Ok(a.iter().find(|v| !is_empty(v)).cloned().unwrap_or(Value::Nil))
    });
    add(m, "all", |a| Ok(Value::Bool(a.iter().all(|v| !is_empty(v)))));
    add(m, "any", |a| Ok(Value::Bool(a.iter().any(|v| !is_empty(v)))));
    add(m, "ternary", |a| {
        arity("ternary", a, 3, 3)?;
        let cond = bool_arg("ternary", &a[2])?;
        Ok(a[if cond { 0 } else { 1 }].clone())
    });
    add(m, "fail", |a| {
        arity("fail", a, 1, 1)?;
        Err(call_error("fail", str_arg("fail", &a[0])?))
    });
}

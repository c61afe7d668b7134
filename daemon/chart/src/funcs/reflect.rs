//! Type inspection (sprig `reflect.go`). Names are the Go types Helm's data has: YAML and
//! JSON numbers are `float64`, template literals `int`, lists `[]interface {}`, dicts
//! `map[string]interface {}`.

use gotmpl::{FuncMap, Value};

use super::add;
use super::conv::{arity, go_type_name, str_arg, string};

/// Go's `reflect.Kind` name for a value.
pub(crate) fn kind_name(v: &Value) -> &'static str {
    match v {
        Value::Nil => "invalid",
        Value::Bool(_) => "bool",
        Value::Int(_) => "int",
        Value::Uint(_) => "uint",
        Value::Float(_) => "float64",
        Value::String(_) => "string",
        Value::List(_) => "slice",
        Value::Map(_) => "map",
        Value::Function(_) => "func",
    }
}

pub(crate) fn register(m: &mut FuncMap) {
    add(m, "typeOf", |a| {
        arity("typeOf", a, 1, 1)?;
        Ok(string(go_type_name(&a[0])))
    });
    add(m, "kindOf", |a| {
        arity("kindOf", a, 1, 1)?;
        Ok(string(kind_name(&a[0])))
    });
    add(m, "typeIs", |a| {
        arity("typeIs", a, 2, 2)?;
        Ok(Value::Bool(str_arg("typeIs", &a[0])? == go_type_name(&a[1])))
    });
    add(m, "typeIsLike", |a| {
        arity("typeIsLike", a, 2, 2)?;
        let target = str_arg("typeIsLike", &a[0])?;
        let t = go_type_name(&a[1]);
        Ok(Value::Bool(target == t || target == format!("*{t}")))
    });
    add(m, "kindIs", |a| {
        arity("kindIs", a, 2, 2)?;
        Ok(Value::Bool(str_arg("kindIs", &a[0])? == kind_name(&a[1])))
    });
    add(m, "deepEqual", |a| {
        arity("deepEqual", a, 2, 2)?;
        Ok(Value::Bool(a[0] == a[1]))
    });
}

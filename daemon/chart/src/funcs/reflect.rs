//! Type inspection (sprig `reflect.go`). Names are the Go types Helm's data has: YAML and
//! JSON numbers are `float64`, template literals `int`, lists `[]interface {}`, dicts
//! `map[string]interface {}`. Objects (Go values with methods, such as a `*semver.Version`)
//! report their own Go type.

use crate::tmpl::{FuncMap, Value};

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
        // A pointer type (`*semver.Version`) is a `ptr`; otherwise the kind of what the
        // object stands for (`chart.Files` is a map).
        Value::Object(o) if o.type_name().starts_with('*') => "ptr",
        Value::Object(o) => kind_name(&o.to_value()),
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
        // sprig: `target == t || "*"+target == t` (`semver.Version` is like `*semver.Version`).
        Ok(Value::Bool(target == t || t.strip_prefix('*') == Some(target)))
    });
    add(m, "kindIs", |a| {
        arity("kindIs", a, 2, 2)?;
        Ok(Value::Bool(str_arg("kindIs", &a[0])? == kind_name(&a[1])))
    });
    add(m, "deepEqual", |a| {
        arity("deepEqual", a, 2, 2)?;
        // Two distinct cyclic dicts are an error rather than endless recursion (Go's
        // DeepEqual tracks the maps it visited).
        super::conv::deep_equal(&a[0], &a[1])
            .map(Value::Bool)
            .map_err(|e| super::conv::call_error("deepEqual", e))
    });
}

#[cfg(test)]
mod tests {
    use std::rc::Rc;

    use super::*;
    use crate::tmpl::{Object, Result};

    struct Files;

    impl Object for Files {
        fn type_name(&self) -> &'static str {
            "chart.Files"
        }
        fn field(&self, _: &str) -> Option<Result<Value>> {
            None
        }
        fn method(&self, _: &str, _: &[Value]) -> Option<Result<Value>> {
            None
        }
        fn to_value(&self) -> Value {
            Value::empty_map()
        }
    }

    #[test]
    fn objects_report_their_go_type() {
        let m = crate::funcs::function_map();
        let files = Value::Object(Rc::new(Files));
        let version = m["semver"](&[string("1.2.3")]).unwrap();
        assert_eq!(
            m["typeOf"](std::slice::from_ref(&files)).unwrap(),
            string("chart.Files")
        );
        assert_eq!(m["kindOf"](&[files]).unwrap(), string("map"));
        assert_eq!(
            m["typeOf"](std::slice::from_ref(&version)).unwrap(),
            string("*semver.Version")
        );
        assert_eq!(
            m["kindOf"](std::slice::from_ref(&version)).unwrap(),
            string("ptr")
        );
        for target in ["*semver.Version", "semver.Version"] {
            assert_eq!(
                m["typeIsLike"](&[string(target), version.clone()]).unwrap(),
                Value::Bool(true)
            );
        }
        assert_eq!(
            m["typeIsLike"](&[string("*int"), Value::Int(1)]).unwrap(),
            Value::Bool(false)
        );
        assert_eq!(m["kindOf"](&[Value::Float(1.0)]).unwrap(), string("float64"));
    }
}

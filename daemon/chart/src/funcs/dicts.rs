//! Dict functions (sprig `dict.go`) and the `mergo` merge rules behind `merge` and
//! `mergeOverwrite`.
//!
//! Dicts are Go maps, shared by reference ([`Map`]): `set`, `unset` and the `merge` family
//! change the dict they are given and return it, so `{{ $_ := set $d "k" "v" }}` updates
//! `$d` and every other holder of that dict, as in Helm. `dict`, `pick`, `omit` and
//! `deepCopy` build new dicts; `get`, `hasKey`, `pluck`, `keys`, `values` and `dig` only read.

use std::sync::Arc;

use crate::tmpl::{Dict, FuncMap, Map, Value};

use super::add;
use super::conv::{
    arity, call_error, deep_copy, is_empty, list, map, map_arg, str_arg, string, strval, too_deep,
    too_deep_message,
};

pub(crate) fn register(m: &mut FuncMap) {
    add(m, "dict", |a| {
        let mut d = Dict::new();
        for pair in a.chunks(2) {
            let key: Arc<str> = Arc::from(strval(&pair[0]));
            d.insert(key, pair.get(1).cloned().unwrap_or_else(|| string("")));
        }
        Ok(map(d))
    });
    add(m, "get", |a| {
        arity("get", a, 2, 2)?;
        let d = map_arg("get", &a[0])?;
        Ok(d.get(str_arg("get", &a[1])?).unwrap_or_else(|| string("")))
    });
    add(m, "set", |a| {
        arity("set", a, 3, 3)?;
        let d = map_arg("set", &a[0])?;
        d.insert(Arc::from(str_arg("set", &a[1])?), a[2].clone());
        Ok(Value::Map(d))
    });
    add(m, "unset", |a| {
        arity("unset", a, 2, 2)?;
        let d = map_arg("unset", &a[0])?;
        d.remove(str_arg("unset", &a[1])?);
        Ok(Value::Map(d))
    });
    add(m, "hasKey", |a| {
        arity("hasKey", a, 2, 2)?;
        let d = map_arg("hasKey", &a[0])?;
        Ok(Value::Bool(d.contains_key(str_arg("hasKey", &a[1])?)))
    });
    add(m, "pluck", |a| {
        arity("pluck", a, 1, usize::MAX)?;
        let key = str_arg("pluck", &a[0])?;
        let mut out = Vec::new();
        for d in &a[1..] {
            if let Some(v) = map_arg("pluck", d)?.get(key) {
                out.push(v);
            }
        }
        Ok(list(out))
    });
    add(m, "keys", |a| {
        let mut out = Vec::new();
        for d in a {
            out.extend(map_arg("keys", d)?.keys().into_iter().map(Value::String));
        }
        Ok(list(out))
    });
    add(m, "values", |a| {
        arity("values", a, 1, 1)?;
        let d = map_arg("values", &a[0])?;
        let values: Vec<Value> = d.borrow().values().cloned().collect();
        Ok(list(values))
    });
    add(m, "pick", |a| {
        arity("pick", a, 1, usize::MAX)?;
        let d = map_arg("pick", &a[0])?;
        let mut out = Dict::new();
        for k in &a[1..] {
            let k = str_arg("pick", k)?;
            if let Some(v) = d.get(k) {
                out.insert(Arc::from(k), v);
            }
        }
        Ok(map(out))
    });
    add(m, "omit", |a| {
        arity("omit", a, 1, usize::MAX)?;
        let mut d = map_arg("omit", &a[0])?.snapshot();
        for k in &a[1..] {
            d.remove(str_arg("omit", k)?);
        }
        Ok(map(d))
    });
    for (name, overwrite) in [
        ("merge", false),
        ("mustMerge", false),
        ("mergeOverwrite", true),
        ("mustMergeOverwrite", true),
    ] {
        add(m, name, move |a| {
            arity(name, a, 1, usize::MAX)?;
            // A cyclic dict (`set $d "self" $d`) nests without end: refuse it here rather
            // than recurse forever while merging.
            if a.iter().any(too_deep) {
                return Err(call_error(name, too_deep_message()));
            }
            let dst = map_arg(name, &a[0])?;
            let srcs = a[1..]
                .iter()
                .map(|src| map_arg(name, src))
                .collect::<crate::tmpl::Result<Vec<Map>>>()?;
            for src in &srcs {
                merge_into(&dst, src, overwrite);
            }
            Ok(Value::Map(dst))
        });
    }
    for name in ["deepCopy", "mustDeepCopy"] {
        add(m, name, move |a| {
            arity(name, a, 1, 1)?;
            // copystructure cannot copy a nil interface: Go's reflection panics.
            if matches!(a[0], Value::Nil) {
                return Err(call_error(
                    name,
                    "reflect: call of reflect.Value.Type on zero Value",
                ));
            }
            deep_copy(&a[0]).map_err(|e| call_error(name, e))
        });
    }
    add(m, "dig", |a| {
        arity("dig", a, 3, usize::MAX)?;
        let n = a.len();
        // sprig asserts the last argument to a dict: anything else is Go's failed assertion.
        let dict = match &a[n - 1] {
            Value::Map(m) => m.clone(),
            other => {
                let got = match other {
                    Value::Nil => "nil".to_string(),
                    o => super::conv::go_type_name(o).to_string(),
                };
                return Err(call_error(
                    "dig",
                    format!("interface conversion: interface {{}} is {got}, not map[string]interface {{}}"),
                ));
            }
        };
        let default = &a[n - 2];
        let mut keys = Vec::with_capacity(n - 2);
        for k in &a[..n - 2] {
            keys.push(str_arg("dig", k)?);
        }
        Ok(dig(&dict, &keys)?.unwrap_or_else(|| default.clone()))
    });
}

/// Walks `keys`; `Ok(None)` when a key is missing. Like sprig, a present value that is not a
/// dict where more keys follow is an error (Go's failed type assertion).
fn dig(dict: &Map, keys: &[&str]) -> crate::tmpl::Result<Option<Value>> {
    let mut current = dict.clone();
    let mut rest = keys;
    while let Some((first, more)) = rest.split_first() {
        let Some(v) = current.get(first) else {
            return Ok(None);
        };
        if more.is_empty() {
            return Ok(Some(v));
        }
        current = match v.plain() {
            Value::Map(inner) => inner,
            other => {
                return Err(call_error(
                    "dig",
                    format!(
                        "interface conversion: key {first:?} holds {}, not map[string]interface {{}}",
                        super::conv::go_type_name(&other)
                    ),
                ));
            }
        };
        rest = more;
    }
    Ok(None)
}

/// Merges `src` into `dst` in place with `mergo`'s rules (dario.cat/mergo v1.0.1
/// `deepMerge` on `map[string]interface{}`), as sprig's `merge` and `mergeOverwrite` do:
/// two dicts merge recursively, into the dict `dst` already holds; otherwise, without
/// `overwrite`, a key of `dst` is replaced only when missing or empty (Go's zero value:
/// `false`, `0`, `""`, empty list or dict, nil); with it, every non-nil value of `src` wins
/// (a dict replaces a scalar too), and a nil in `src` clears the key. Values taken from `src`
/// are shared, not copied, as mergo stores them.
///
/// `dst` and `src` may be the same dict (`merge $d $d`): the entries of `src` are read
/// before `dst` changes. The caller makes sure neither is cyclic (see
/// [`super::conv::too_deep`]).
pub(crate) fn merge_into(dst: &Map, src: &Map, overwrite: bool) {
    for (key, sv) in src.snapshot() {
        let dv = dst.get(&key);
        match (dv, &sv) {
            (_, Value::Nil) => {
                if overwrite {
                    dst.insert(key, Value::Nil);
                }
            }
            (Some(Value::Map(dm)), Value::Map(sm)) => {
                merge_into(&dm, sm, overwrite);
                // mergo stores src's dict only where dst's stayed empty (both were empty).
                if dm.is_empty() {
                    dst.insert(key, sv.clone());
                }
            }
            (d, _) => {
                if overwrite || d.as_ref().is_none_or(is_empty) {
                    dst.insert(key, sv.clone());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(pairs: &[(&str, Value)]) -> Map {
        Map::new(pairs.iter().map(|(k, v)| (Arc::from(*k), v.clone())).collect())
    }

    fn call(name: &str, args: &[Value]) -> crate::tmpl::Result<Value> {
        let m = crate::funcs::function_map();
        m[name](args)
    }

    #[test]
    fn merge_keeps_destination_and_fills_gaps_deeply() {
        let inner = d(&[("b", string("c"))]);
        let dst = d(&[
            ("a", Value::Map(inner.clone())),
            ("flag", Value::Bool(false)),
            ("keep", string("x")),
        ]);
        let src = d(&[
            (
                "a",
                map(d(&[("b", string("d")), ("e", Value::Int(1))]).snapshot()),
            ),
            ("flag", Value::Bool(true)),
            ("keep", string("y")),
            ("new", Value::Int(2)),
        ]);
        merge_into(&dst, &src, false);
        let a = map_arg("t", &dst.get("a").unwrap()).unwrap();
        assert!(a.ptr_eq(&inner), "nested dicts merge in place");
        assert_eq!(a.get("b"), Some(string("c")));
        assert_eq!(a.get("e"), Some(Value::Int(1)));
        assert_eq!(
            dst.get("flag"),
            Some(Value::Bool(true)),
            "mergo replaces zero values"
        );
        assert_eq!(dst.get("keep"), Some(string("x")));
        assert_eq!(dst.get("new"), Some(Value::Int(2)));
    }

    #[test]
    fn merge_overwrite_replaces_scalars_lists_and_clears_with_nil() {
        let dst = d(&[
            ("a", Value::Map(d(&[("b", string("c")), ("z", Value::Int(1))]))),
            ("l", list(vec![Value::Int(1)])),
            ("gone", string("x")),
        ]);
        let src = d(&[
            ("a", Value::Map(d(&[("b", string("d"))]))),
            ("l", list(vec![Value::Int(2)])),
            ("gone", Value::Nil),
        ]);
        merge_into(&dst, &src, true);
        let a = map_arg("t", &dst.get("a").unwrap()).unwrap();
        assert_eq!(a.get("b"), Some(string("d")));
        assert_eq!(a.get("z"), Some(Value::Int(1)));
        assert_eq!(dst.get("l"), Some(list(vec![Value::Int(2)])));
        assert_eq!(dst.get("gone"), Some(Value::Nil));
    }

    #[test]
    fn mutating_functions_change_the_dict_they_are_given() {
        let dm = d(&[("a", Value::Int(1))]);
        let dv = Value::Map(dm.clone());
        let out = call("set", &[dv.clone(), string("b"), Value::Int(2)]).unwrap();
        assert_eq!(out, dv);
        assert!(
            matches!(&out, Value::Map(m) if m.ptr_eq(&dm)),
            "set returns the same dict"
        );
        assert_eq!(dm.get("b"), Some(Value::Int(2)));
        call("unset", &[dv.clone(), string("a")]).unwrap();
        assert!(!dm.contains_key("a"));
        let out = call("merge", &[dv.clone(), map(d(&[("c", Value::Int(3))]).snapshot())]).unwrap();
        assert!(
            matches!(&out, Value::Map(m) if m.ptr_eq(&dm)),
            "merge returns dst"
        );
        assert_eq!(dm.get("c"), Some(Value::Int(3)));
        call(
            "mergeOverwrite",
            &[dv.clone(), map(d(&[("c", Value::Int(4))]).snapshot())],
        )
        .unwrap();
        assert_eq!(dm.get("c"), Some(Value::Int(4)));
        // `merge $d $d` reads its sources before changing dst: no borrow conflict.
        call("merge", &[dv.clone(), dv.clone()]).unwrap();
        call("mustMergeOverwrite", &[dv.clone(), dv.clone(), dv.clone()]).unwrap();
        assert_eq!(dm.len(), 2);
    }

    #[test]
    fn builders_and_copies_leave_the_original_alone() {
        let inner = d(&[("y", Value::Int(1))]);
        let dm = d(&[
            ("x", Value::Map(inner.clone())),
            ("l", list(vec![Value::Map(inner.clone())])),
        ]);
        let dv = Value::Map(dm.clone());
        let copy = call("deepCopy", std::slice::from_ref(&dv)).unwrap();
        assert_eq!(copy, dv, "a deep copy is deeply equal");
        let Value::Map(cm) = &copy else {
            panic!("deepCopy of a dict is a dict")
        };
        let Some(Value::Map(cx)) = cm.get("x") else {
            panic!("x is a dict")
        };
        assert!(!cm.ptr_eq(&dm) && !cx.ptr_eq(&inner), "new maps all the way down");
        cx.insert("y".into(), Value::Int(2));
        let Some(Value::List(cl)) = cm.get("l") else {
            panic!("l is a list")
        };
        let Value::Map(in_list) = &cl[0] else {
            panic!("a dict in a list")
        };
        assert!(!in_list.ptr_eq(&inner), "dicts inside lists are copied too");
        assert_eq!(inner.get("y"), Some(Value::Int(1)));
        for (name, args) in [
            ("pick", vec![dv.clone(), string("x")]),
            ("omit", vec![dv.clone(), string("l")]),
        ] {
            let Value::Map(out) = call(name, &args).unwrap() else {
                panic!("{name} gives a dict")
            };
            assert!(!out.ptr_eq(&dm), "{name} builds a new dict");
            out.insert("new".into(), Value::Nil);
            assert!(!dm.contains_key("new"));
        }
        let cyclic = d(&[]);
        cyclic.insert("self".into(), Value::Map(cyclic.clone()));
        assert!(call("deepCopy", &[Value::Map(cyclic.clone())]).is_err());
        assert!(call("merge", &[Value::Map(cyclic.clone()), Value::Map(cyclic.clone())]).is_err());
        // Break the cycle so the test does not leak it.
        cyclic.remove("self");
    }

    #[test]
    fn dig_walks_nested_dicts() {
        let dv = Value::Map(d(&[("a", Value::Map(d(&[("b", string("c"))])))]));
        let dig = |keys: &[&str]| {
            let mut args: Vec<Value> = keys.iter().map(|k| string(*k)).collect();
            args.push(string("default"));
            args.push(dv.clone());
            call("dig", &args)
        };
        assert_eq!(dig(&["a", "b"]).unwrap(), string("c"));
        assert_eq!(dig(&["a", "x"]).unwrap(), string("default"));
        assert!(dig(&["a", "b", "c"]).is_err());
    }
}

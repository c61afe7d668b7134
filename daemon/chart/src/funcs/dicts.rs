//! Dict functions (sprig `dict.go`) and the `mergo` merge rules behind `merge` and
//! `mergeOverwrite`.
//!
//! `gotmpl` values are immutable and shared, so the mutating functions (`set`, `unset`,
//! `merge*`) return the updated dict; Go changes the dict in place and returns it, so
//! `{{ $d = set $d "k" "v" }}` and `{{ merge $a $b | toYaml }}` behave the same, but
//! `{{ $_ := set $d "k" "v" }}` does not update `$d`.

use std::collections::BTreeMap;
use std::sync::Arc;

use gotmpl::{FuncMap, Value};

use super::add;
use super::conv::{arity, call_error, is_empty, list, map, map_arg, str_arg, string, strval};

type Dict = BTreeMap<Arc<str>, Value>;

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
        Ok(d.get(str_arg("get", &a[1])?)
            .cloned()
            .unwrap_or_else(|| string("")))
    });
    add(m, "set", |a| {
        arity("set", a, 3, 3)?;
        let mut d = (**map_arg("set", &a[0])?).clone();
        d.insert(Arc::from(str_arg("set", &a[1])?), a[2].clone());
        Ok(map(d))
    });
    add(m, "unset", |a| {
        arity("unset", a, 2, 2)?;
        let mut d = (**map_arg("unset", &a[0])?).clone();
        d.remove(str_arg("unset", &a[1])?);
        Ok(map(d))
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
                out.push(v.clone());
            }
        }
        Ok(list(out))
    });
    add(m, "keys", |a| {
        let mut out = Vec::new();
        for d in a {
            out.extend(map_arg("keys", d)?.keys().map(|k| Value::String(k.clone())));
        }
        Ok(list(out))
    });
    add(m, "values", |a| {
        arity("values", a, 1, 1)?;
        Ok(list(map_arg("values", &a[0])?.values().cloned().collect()))
    });
    add(m, "pick", |a| {
        arity("pick", a, 1, usize::MAX)?;
        let d = map_arg("pick", &a[0])?;
        let mut out = Dict::new();
        for k in &a[1..] {
            let k = str_arg("pick", k)?;
            if let Some((key, v)) = d.get_key_value(k) {
                out.insert(key.clone(), v.clone());
            }
        }
        Ok(map(out))
    });
    add(m, "omit", |a| {
        arity("omit", a, 1, usize::MAX)?;
        let mut d = (**map_arg("omit", &a[0])?).clone();
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
            if a.iter().any(super::conv::too_deep) {
                return Err(call_error(name, super::conv::too_deep_message()));
            }
            let mut dst = (**map_arg(name, &a[0])?).clone();
            for src in &a[1..] {
                merge_into(&mut dst, map_arg(name, src)?, overwrite);
            }
            Ok(map(dst))
        });
    }
    for name in ["deepCopy", "mustDeepCopy"] {
        add(m, name, move |a| {
            arity(name, a, 1, 1)?;
            Ok(a[0].clone())
        });
    }
    add(m, "dig", |a| {
        arity("dig", a, 3, usize::MAX)?;
        let n = a.len();
        let dict = map_arg("dig", &a[n - 1])?;
        let default = &a[n - 2];
        let mut keys = Vec::with_capacity(n - 2);
        for k in &a[..n - 2] {
            keys.push(str_arg("dig", k)?);
        }
        Ok(dig(dict, &keys)?.unwrap_or_else(|| default.clone()))
    });
}

/// Walks `keys`; `Ok(None)` when a key is missing. Like sprig, a present value that is not a
/// dict where more keys follow is an error (Go's failed type assertion).
fn dig(dict: &Dict, keys: &[&str]) -> gotmpl::Result<Option<Value>> {
    let Some((first, rest)) = keys.split_first() else {
        return Ok(None);
    };
    let Some(v) = dict.get(*first) else {
        return Ok(None);
    };
    if rest.is_empty() {
        return Ok(Some(v.clone()));
    }
    match v {
        Value::Map(inner) => dig(inner, rest),
        other => Err(call_error(
            "dig",
            format!(
                "interface conversion: key {first:?} holds {}, not map[string]interface {{}}",
                super::conv::go_type_name(other)
            ),
        )),
    }
}

/// Merges `src` into `dst` with `mergo`'s rules (dario.cat/mergo v1.0.1 `deepMerge` on
/// `map[string]interface{}`): two dicts merge recursively; otherwise, without `overwrite`, a
/// key of `dst` is replaced only when missing or empty (Go's zero value: `false`, `0`, `""`,
/// empty list or dict, nil); with it, every non-nil value of `src` wins (a dict replaces a
/// scalar too), and a nil in `src` clears the key.
pub(crate) fn merge_into(dst: &mut Dict, src: &Dict, overwrite: bool) {
    for (key, sv) in src {
        let dv = dst.get(key);
        match (dv, sv) {
            (_, Value::Nil) => {
                if overwrite {
                    dst.insert(key.clone(), Value::Nil);
                }
            }
            (Some(Value::Map(dm)), Value::Map(sm)) => {
                let mut merged = (**dm).clone();
                merge_into(&mut merged, sm, overwrite);
                dst.insert(key.clone(), map(merged));
            }
            (d, _) => {
                if overwrite || d.is_none_or(is_empty) {
                    dst.insert(key.clone(), sv.clone());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(pairs: &[(&str, Value)]) -> Dict {
        pairs.iter().map(|(k, v)| (Arc::from(*k), v.clone())).collect()
    }

    #[test]
    fn merge_keeps_destination_and_fills_gaps_deeply() {
        let mut dst = d(&[
            ("a", map(d(&[("b", string("c"))]))),
            ("flag", Value::Bool(false)),
            ("keep", string("x")),
        ]);
        let src = d(&[
            ("a", map(d(&[("b", string("d")), ("e", Value::Int(1))]))),
            ("flag", Value::Bool(true)),
            ("keep", string("y")),
            ("new", Value::Int(2)),
        ]);
        merge_into(&mut dst, &src, false);
        let a = map_arg("t", &dst["a"]).unwrap();
        assert_eq!(a["b"], string("c"));
        assert_eq!(a["e"], Value::Int(1));
        assert_eq!(dst["flag"], Value::Bool(true), "mergo replaces zero values");
        assert_eq!(dst["keep"], string("x"));
        assert_eq!(dst["new"], Value::Int(2));
    }

    #[test]
    fn merge_overwrite_replaces_scalars_lists_and_clears_with_nil() {
        let mut dst = d(&[
            ("a", map(d(&[("b", string("c")), ("z", Value::Int(1))]))),
            ("l", list(vec![Value::Int(1)])),
            ("gone", string("x")),
        ]);
        let src = d(&[
            ("a", map(d(&[("b", string("d"))]))),
            ("l", list(vec![Value::Int(2)])),
            ("gone", Value::Nil),
        ]);
        merge_into(&mut dst, &src, true);
        let a = map_arg("t", &dst["a"]).unwrap();
        assert_eq!(a["b"], string("d"));
        assert_eq!(a["z"], Value::Int(1));
        assert_eq!(dst["l"], list(vec![Value::Int(2)]));
        assert_eq!(dst["gone"], Value::Nil);
    }
}

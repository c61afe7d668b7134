//! Helm 3's values coalescing (`chartutil.CoalesceValues` / `MergeValues`).
//!
//! Rules users rely on: user values win over chart defaults, maps merge and everything
//! else is replaced, a `null` deletes the key (coalescing) or is kept (merging), each
//! subchart sees `parent[<subchart name>]` as its values, and `global` is copied from
//! parent to child with the parent winning. Go maps are shared by reference where Helm
//! copies shallowly; here everything is copied, which only differs in corner cases Helm
//! itself considers accidental.

use serde_json::{Map, Value as Json};

use crate::chart::Chart;

/// The values of `chart` with `vals` (the user's values) on top, nulls deleting keys.
pub fn coalesce_values(chart: &Chart, vals: &Map<String, Json>) -> Map<String, Json> {
    let mut dest = vals.clone();
    coalesce(chart, &mut dest, false);
    dest
}

/// Like [`coalesce_values`] but keeps nulls (Helm's `MergeValues`).
pub fn merge_values(chart: &Chart, vals: &Map<String, Json>) -> Map<String, Json> {
    let mut dest = vals.clone();
    coalesce(chart, &mut dest, true);
    dest
}

fn coalesce(chart: &Chart, dest: &mut Map<String, Json>, merge: bool) {
    coalesce_chart_values(chart, dest, merge);
    coalesce_deps(chart, dest, merge);
}

fn coalesce_deps(chart: &Chart, dest: &mut Map<String, Json>, merge: bool) {
    for sub in &chart.dependencies {
        let name = sub.name().to_string();
        match dest.get(&name) {
            None => {
                dest.insert(name.clone(), Json::Object(Map::new()));
            }
            Some(Json::Object(_)) => {}
            // Helm errors with "type mismatch"; the scalar stays and the subchart gets
            // nothing from it, which the schema or templates then report.
            Some(_) => continue,
        }
        let globals = dest.get("global").cloned();
        if let Some(Json::Object(sub_vals)) = dest.get_mut(&name) {
            coalesce_globals(sub_vals, globals.as_ref());
            coalesce(sub, sub_vals, merge);
        }
    }
}

/// Copies the parent's globals into the child's, the parent winning.
fn coalesce_globals(dest: &mut Map<String, Json>, src_global: Option<&Json>) {
    let mut dg = match dest.get("global") {
        None => Map::new(),
        Some(Json::Object(m)) => m.clone(),
        Some(_) => return,
    };
    let sg = match src_global {
        None => Map::new(),
        Some(Json::Object(m)) => m.clone(),
        Some(_) => return,
    };
    for (key, val) in sg {
        if let Json::Object(vmap) = &val {
            let mut vv = vmap.clone();
            match dg.get(&key) {
                None => {
                    dg.insert(key, Json::Object(vv));
                }
                Some(Json::Object(destv)) => {
                    coalesce_tables(&mut vv, destv.clone(), true);
                    dg.insert(key, Json::Object(vv));
                }
                Some(_) => {}
            }
        } else if matches!(dg.get(&key), Some(Json::Object(_))) {
            continue;
        } else {
            dg.insert(key, val);
        }
    }
    dest.insert("global".to_string(), Json::Object(dg));
}

fn coalesce_chart_values(chart: &Chart, v: &mut Map<String, Json>, merge: bool) {
    for (key, val) in &chart.values {
        match v.get_mut(key) {
            Some(Json::Null) if !merge => {
                v.remove(key);
            }
            Some(Json::Object(dest)) => {
                if let Json::Object(src) = val {
                    let child_merge = merge || chart.dependencies.iter().any(|d| d.name() == key);
                    coalesce_tables(dest, src.clone(), child_merge);
                }
            }
            Some(_) => {}
            None => {
                v.insert(key.clone(), val.clone());
            }
        }
    }
}

/// Helm's `coalesceTablesFullKey`: `dst` is authoritative, `src` fills the gaps.
pub fn coalesce_tables(dst: &mut Map<String, Json>, mut src: Map<String, Json>, merge: bool) {
    for (key, val) in dst.iter() {
        if val.is_null() {
            src.insert(key.clone(), Json::Null);
        }
    }
    for (key, val) in src {
        match dst.get_mut(&key) {
            Some(Json::Null) if !merge => {
                dst.remove(&key);
            }
            None => {
                dst.insert(key, val);
            }
            Some(dv) => {
                if let (Json::Object(sv), Json::Object(dm)) = (val, dv) {
                    coalesce_tables(dm, sv, merge);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chart::tests::chart_from;
    use serde_json::json;

    fn obj(v: Json) -> Map<String, Json> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn user_values_win_and_null_deletes() {
        let c = chart_from(&[
            ("Chart.yaml", "apiVersion: v2\nname: a\nversion: 1.0.0\n"),
            ("values.yaml", "image: {repo: nginx, tag: '1'}\nreplicas: 2\n"),
        ]);
        let out = coalesce_values(
            &c,
            &obj(json!({"image": {"tag": "2", "repo": null}, "replicas": null})),
        );
        assert_eq!(Json::Object(out), json!({"image": {"tag": "2"}}));
    }

    #[test]
    fn subchart_values_and_globals_flow_down() {
        let c = chart_from(&[
            ("Chart.yaml", "apiVersion: v2\nname: a\nversion: 1.0.0\n"),
            ("values.yaml", "global: {env: prod}\nsub: {port: 80}\n"),
            (
                "charts/sub/Chart.yaml",
                "apiVersion: v2\nname: sub\nversion: 1.0.0\n",
            ),
            (
                "charts/sub/values.yaml",
                "port: 1\nname: s\nglobal: {env: dev, zone: a}\n",
            ),
        ]);
        let out = coalesce_values(&c, &Map::new());
        assert_eq!(
            out["sub"],
            json!({"port": 80.0, "name": "s", "global": {"env": "prod", "zone": "a"}})
        );
    }
}

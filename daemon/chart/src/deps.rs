//! Dependency processing before rendering (Helm's `ProcessDependenciesWithMerge`):
//! aliases, `condition` and `tags` enabling or removing subcharts, and `import-values`
//! copying child values into the parent's defaults.

use serde_json::{Map, Value as Json};

use crate::chart::Chart;
use crate::coalesce::{coalesce_tables, coalesce_values, merge_values};
use crate::constraint::is_compatible_range;
use crate::error::{ChartError, Result};

/// Helm's `CheckDependencies`: every dependency in Chart.yaml must be in charts/.
pub fn check_dependencies(chart: &Chart) -> Result<()> {
    let missing: Vec<&str> = chart
        .metadata
        .dependencies
        .iter()
        .filter(|r| !chart.dependencies.iter().any(|d| d.name() == r.name))
        .map(|r| r.name.as_str())
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(ChartError::MissingDependency(missing.join(", ")))
    }
}

/// Applies aliases, conditions, tags and import-values to `chart` for user values `vals`.
pub fn process_dependencies(chart: &mut Chart, vals: &Map<String, Json>) {
    process_enabled(chart, vals, "");
    process_import_values_rec(chart);
}

fn process_enabled(c: &mut Chart, v: &Map<String, Json>, path: &str) {
    if c.metadata.dependencies.is_empty() {
        return;
    }
    let existing = std::mem::take(&mut c.dependencies);
    // Subcharts that no Chart.yaml entry claims are kept as they are.
    let mut deps: Vec<Chart> = existing
        .iter()
        .filter(|e| {
            !c.metadata
                .dependencies
                .iter()
                .any(|r| e.name() == r.name && is_compatible_range(&r.version, e.version()))
        })
        .cloned()
        .collect();
    for req in &mut c.metadata.dependencies {
        if let Some(found) = existing
            .iter()
            .find(|e| e.name() == req.name && is_compatible_range(&req.version, e.version()))
        {
            let mut dep = found.clone();
            if !req.alias.is_empty() {
                dep.metadata.name = req.alias.clone();
            }
            deps.push(dep);
        }
        if !req.alias.is_empty() {
            req.name = req.alias.clone();
        }
    }
    c.dependencies = deps;
    for r in &mut c.metadata.dependencies {
        r.enabled = true;
    }
    let cvals = coalesce_values(c, v);
    process_tags(c, &cvals);
    process_conditions(c, &cvals, path);
    let removed: Vec<String> = c
        .metadata
        .dependencies
        .iter()
        .filter(|r| !r.enabled)
        .map(|r| r.name.clone())
        .collect();
    c.dependencies.retain(|d| !removed.iter().any(|n| n == d.name()));
    c.metadata.dependencies.retain(|r| !removed.contains(&r.name));
    for d in &mut c.dependencies {
        let sub_path = format!("{path}{}.", d.name());
        process_enabled(d, &cvals, &sub_path);
    }
}

fn process_tags(c: &mut Chart, cvals: &Map<String, Json>) {
    let Some(Json::Object(tags)) = cvals.get("tags") else {
        return;
    };
    for r in &mut c.metadata.dependencies {
        let (mut has_true, mut has_false) = (false, false);
        for t in &r.tags {
            match tags.get(t) {
                Some(Json::Bool(true)) => has_true = true,
                Some(Json::Bool(false)) => has_false = true,
                _ => {}
            }
        }
        r.enabled = has_true || !has_false;
    }
}

fn process_conditions(c: &mut Chart, cvals: &Map<String, Json>, path: &str) {
    for r in &mut c.metadata.dependencies {
        for cond in r.condition.trim().split(',') {
            let cond = cond.trim();
            if cond.is_empty() {
                continue;
            }
            if let Some(Json::Bool(b)) = path_value(cvals, &format!("{path}{cond}")) {
                r.enabled = *b;
                break;
            }
        }
    }
}

/// Looks up a dotted path (`a.b.c`) in a values map.
pub fn path_value<'a>(vals: &'a Map<String, Json>, path: &str) -> Option<&'a Json> {
    let mut parts = path.split('.');
    let mut cur = vals.get(parts.next()?)?;
    for p in parts {
        cur = cur.as_object()?.get(p)?;
    }
    Some(cur)
}

/// Puts `value` at the dotted `path` in a fresh map (Helm's `pathToMap`).
fn path_to_map(path: &str, value: Map<String, Json>) -> Map<String, Json> {
    if path == "." {
        return value;
    }
    let mut out = Json::Object(value);
    for p in path.split('.').rev().filter(|p| !p.is_empty()) {
        let mut m = Map::new();
        m.insert(p.to_string(), out);
        out = Json::Object(m);
    }
    match out {
        Json::Object(m) => m,
        _ => Map::new(),
    }
}

fn process_import_values_rec(c: &mut Chart) {
    for d in &mut c.dependencies {
        process_import_values_rec(d);
    }
    process_import_values(c);
}

fn process_import_values(c: &mut Chart) {
    if c.metadata.dependencies.is_empty() {
        return;
    }
    let cvals = merge_values(c, &Map::new());
    let mut b = Map::new();
    for r in &mut c.metadata.dependencies {
        let mut normalized = Vec::new();
        for iv in &r.import_values {
            let (child, parent) = match iv {
                Json::Object(m) => {
                    let child = m
                        .get("child")
                        .and_then(Json::as_str)
                        .unwrap_or_default()
                        .to_string();
                    let parent = m
                        .get("parent")
                        .and_then(Json::as_str)
                        .unwrap_or_default()
                        .to_string();
                    (child, parent)
                }
                Json::String(s) => (format!("exports.{s}"), ".".to_string()),
                _ => continue,
            };
            normalized.push(serde_json::json!({"child": child, "parent": parent}));
            if let Some(Json::Object(table)) = path_value(&cvals, &format!("{}.{child}", r.name)) {
                coalesce_tables(&mut b, path_to_map(&parent, table.clone()), true);
            }
        }
        r.import_values = normalized;
    }
    let mut merged = cvals;
    coalesce_tables(&mut merged, b, true);
    c.values = merged;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chart::tests::chart_from;
    use serde_json::json;

    fn parent(extra_values: &str) -> Chart {
        chart_from(&[
            (
                "Chart.yaml",
                "apiVersion: v2\nname: p\nversion: 1.0.0\ndependencies:\n- name: sub\n  version: ^0.1\n  condition: db.enabled\n  tags: [backend]\n  alias: db\n  import-values:\n  - child: data\n    parent: imported\n  - shared\n",
            ),
            ("values.yaml", extra_values),
            (
                "charts/sub/Chart.yaml",
                "apiVersion: v2\nname: sub\nversion: 0.1.3\n",
            ),
            (
                "charts/sub/values.yaml",
                "data: {x: 1}\nexports: {shared: {z: 2}}\n",
            ),
        ])
    }

    #[test]
    fn alias_renames_and_imports_copy_values() {
        let mut c = parent("");
        process_dependencies(&mut c, &Map::new());
        assert_eq!(c.dependencies[0].name(), "db");
        assert_eq!(c.values["imported"], json!({"x": 1.0}));
        assert_eq!(c.values["z"], json!(2.0));
    }

    #[test]
    fn condition_and_tags_disable() {
        let mut c = parent("db: {enabled: false}\n");
        process_dependencies(&mut c, &Map::new());
        assert!(c.dependencies.is_empty());
        let mut c = parent("tags: {backend: false}\n");
        process_dependencies(&mut c, &Map::new());
        assert!(c.dependencies.is_empty());
        // A user value re-enables it: the condition wins over tags.
        let mut c = parent("tags: {backend: false}\n");
        process_dependencies(&mut c, json!({"db": {"enabled": true}}).as_object().unwrap());
        assert_eq!(c.dependencies.len(), 1);
    }

    #[test]
    fn missing_dependency_is_reported() {
        let c = chart_from(&[(
            "Chart.yaml",
            "apiVersion: v2\nname: p\nversion: 1.0.0\ndependencies:\n- name: mysql\n",
        )]);
        assert!(
            check_dependencies(&c)
                .unwrap_err()
                .to_string()
                .contains("missing in charts/ directory: mysql")
        );
    }
}

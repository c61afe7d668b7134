//! Renders of one chart for many value sets, each template run skipped where it cannot
//! change the output.
//!
//! A fleet's contexts differ in a few values (a cluster name, a region), which most
//! templates never read. [`RenderMemo`] renders the first context with a trace of what its
//! templates observed of the values ([`crate::tmpl::trace`]). A later render whose
//! prepared values (dependencies processed, values coalesced, schemas checked: that part
//! always runs) agree with an earlier one on every observation, under the same release,
//! capabilities and processed chart, has that render's output: templates are a function
//! of what they observe. A render that called a function of the clock or of chance
//! (`now`, `randAlphaNum`, `genCA`, …) is never shared; errors are never kept.
//!
//! Why our own: the exactness argument needs the template engine's own view of every
//! read, which only the engine has.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value as Json};

use crate::chart::Chart;
use crate::error::Result;
use crate::manifest::Rendered;
use crate::render::{RenderOptions, execute, on_render_thread, prepare};
use crate::tmpl::trace::{self, Observed};

/// At most this many different renders are kept per release and capabilities: a chart
/// that prints something unique to each context (its cluster name) makes every render
/// different, and each render then checks this many before running.
const KEPT_PER_KEY: usize = 16;

/// Renders of one chart, sharing the outputs of renders that cannot differ. Safe to use
/// from several threads at once.
pub struct RenderMemo<'a> {
    chart: &'a Chart,
    kept: Mutex<HashMap<String, Vec<Arc<Kept>>>>,
    counts: Mutex<MemoCounts>,
}

/// How many renders ran and how many were shared.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoCounts {
    /// Renders whose templates ran.
    pub executed: usize,
    /// Renders answered with an earlier render's output.
    pub shared: usize,
}

struct Kept {
    checks: Vec<Check>,
    rendered: Rendered,
}

/// One observation and what the kept render saw.
enum Check {
    /// Under the map at the path, the key held this (not a map), or nothing.
    Key(Vec<Arc<str>>, Arc<str>, Option<Json>),
    /// Under the map at the path, the key held a map (its entries are checked apart).
    KeyIsMap(Vec<Arc<str>>, Arc<str>),
    /// The map at the path, whole (nothing: the path held no map, and never matches).
    Whole(Vec<Arc<str>>, Option<Map<String, Json>>),
}

impl std::fmt::Debug for RenderMemo<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RenderMemo")
            .field("chart", &self.chart.name())
            .field("counts", &self.counts())
            .finish_non_exhaustive()
    }
}

impl<'a> RenderMemo<'a> {
    /// A memo for renders of `chart`.
    pub fn new(chart: &'a Chart) -> RenderMemo<'a> {
        RenderMemo {
            chart,
            kept: Mutex::default(),
            counts: Mutex::default(),
        }
    }

    /// How many renders ran and how many were shared so far.
    pub fn counts(&self) -> MemoCounts {
        self.counts.lock().map(|c| *c).unwrap_or_default()
    }

    /// Renders the chart with `values` and `opts` exactly as [`crate::render`] does, with
    /// an earlier render's output where it cannot differ.
    pub fn render(&self, values: &Json, opts: &RenderOptions) -> Result<Rendered> {
        on_render_thread(|| self.render_here(values, opts))
    }

    fn render_here(&self, values: &Json, opts: &RenderOptions) -> Result<Rendered> {
        let started = std::time::Instant::now();
        let prepared = prepare(self.chart, values, opts)?;
        let key = key_of(&prepared.chart, opts);
        let candidates = self
            .kept
            .lock()
            .map(|k| k.get(&key).cloned().unwrap_or_default())
            .unwrap_or_default();
        if let Some(kept) = candidates
            .iter()
            .find(|k| k.checks.iter().all(|c| c.holds(&prepared.values)))
        {
            self.count(|c| c.shared += 1);
            return Ok(kept.rendered.clone());
        }
        self.count(|c| c.executed += 1);
        if candidates.len() >= KEPT_PER_KEY {
            // Nothing more is kept for this key: no trace to pay for.
            return execute(&prepared, opts, started, false);
        }
        trace::start();
        let rendered = execute(&prepared, opts, started, true);
        let observations = trace::finish();
        let rendered = rendered?;
        if let Some(o) = observations.filter(|o| !o.nondeterministic) {
            let checks = o
                .observed
                .into_iter()
                .map(|o| Check::of(o, &prepared.values))
                .collect();
            let kept = Arc::new(Kept {
                checks,
                rendered: rendered.clone(),
            });
            if let Ok(mut k) = self.kept.lock() {
                let list = k.entry(key).or_default();
                if list.len() < KEPT_PER_KEY {
                    list.push(kept);
                }
            }
        }
        Ok(rendered)
    }

    fn count(&self, f: impl FnOnce(&mut MemoCounts)) {
        if let Ok(mut c) = self.counts.lock() {
            f(&mut c);
        }
    }
}

/// What a render depends on besides its values: the release and capabilities it sees and
/// the chart as its dependencies were processed for the values (conditions, tags and
/// aliases decide which subcharts render, under which names).
fn key_of(chart: &Chart, opts: &RenderOptions) -> String {
    let mut key = format!(
        "{:?}|{:?}|{}|{}|{:?}|{:?}|{}|{}|{}|{:?}|{}|{:?}|{}",
        opts.release_name,
        opts.namespace,
        opts.revision,
        opts.is_upgrade,
        opts.kube_version,
        opts.api_versions,
        opts.replace_default_api_versions,
        opts.include_crds,
        opts.skip_tests,
        opts.show_only,
        opts.no_hooks,
        opts.max_output_bytes,
        opts.no_network_functions,
    );
    chart_shape(chart, true, &mut key);
    key
}

fn chart_shape(chart: &Chart, is_root: bool, out: &mut String) {
    out.push('|');
    out.push_str(&chart.metadata.to_template_object(is_root).to_string());
    for t in &chart.templates {
        out.push('|');
        out.push_str(&t.name);
    }
    for d in &chart.dependencies {
        chart_shape(d, false, out);
    }
    out.push('^');
}

/// The map at `path` under the values' root, if every step is a map.
fn map_at<'v>(values: &'v Map<String, Json>, path: &[Arc<str>]) -> Option<&'v Map<String, Json>> {
    let mut here = values;
    for key in path {
        here = here.get(&**key)?.as_object()?;
    }
    Some(here)
}

impl Check {
    fn of(observed: Observed, values: &Map<String, Json>) -> Check {
        match observed {
            Observed::Key(path, key) => {
                let found = map_at(values, &path).and_then(|m| m.get(&*key));
                match found {
                    Some(Json::Object(_)) => Check::KeyIsMap(path, key),
                    other => Check::Key(path, key, other.cloned()),
                }
            }
            Observed::Whole(path) => Check::Whole(path.clone(), map_at(values, &path).cloned()),
        }
    }

    fn holds(&self, values: &Map<String, Json>) -> bool {
        match self {
            Check::Key(path, key, seen) => match map_at(values, path) {
                Some(m) => m.get(&**key) == seen.as_ref(),
                None => false,
            },
            Check::KeyIsMap(path, key) => {
                map_at(values, path).is_some_and(|m| matches!(m.get(&**key), Some(Json::Object(_))))
            }
            Check::Whole(path, seen) => seen.is_some() && map_at(values, path) == seen.as_ref(),
        }
    }
}

#[cfg(test)]
mod tests;

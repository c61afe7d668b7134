//! Release render benchmark (prints figures, asserts nothing about time).
//!
//! `cargo bench -p convoy-daemon --bench render_release` renders one release of the
//! fan-out chart for 1,000 contexts through `convoy_release::render_context` (values
//! merged per context, chart rendered, scaling applied: the coordinator's per-context
//! work on a submit), on one thread, and prints contexts rendered per second and the
//! median time per context. The chart engine's own bench (`cargo bench -p convoy-chart
//! --bench render`) covers the conformance charts and a large chart.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use convoy_release::{Context, Registry, Release};

const CONTEXTS: usize = 1000;

fn main() {
    if let Err(e) = run() {
        eprintln!("render_release: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/charts/web");
    let chart = convoy_chart::Chart::load_dir(&dir).map_err(|e| format!("loading {}: {e}", dir.display()))?;
    let names: Vec<String> = (0..CONTEXTS).map(|i| format!("sim-{i:04}")).collect();
    let contexts: Vec<Context> = names
        .iter()
        .enumerate()
        .map(|(i, n)| Context {
            name: n.clone(),
            region: format!("r{}", i % 8),
            env: "bench".into(),
            cloud: "sim".into(),
            cluster_name: n.clone(),
            labels: BTreeMap::new(),
        })
        .collect();
    let registry = Registry::from_contexts(contexts).map_err(|e| format!("registry: {e}"))?;
    let list = names.join(", ");
    // Per-context values for a tenth of the fleet, as a real release would have.
    let overrides: String = names
        .iter()
        .step_by(10)
        .map(|n| format!("    {n}: {{replicas: 3}}\n"))
        .collect();
    let yaml = format!(
        "apiVersion: convoy.dev/v1\nkind: Release\nmetadata: {{name: web.bench, namespace: bench, environment: bench}}\nspec:\n  chart: {{path: ./web}}\n  values: {{image: \"registry.example/web:1.0\", message: hello}}\n  contextValues:\n{overrides}  contexts: [{list}]\n"
    );
    let release = Release::parse_str(&yaml, "bench.yaml").map_err(|e| format!("release: {e}"))?;
    let secrets = BTreeMap::new();
    let mut samples = Vec::with_capacity(CONTEXTS);
    let mut objects = 0;
    let start = Instant::now();
    for name in &names {
        let context = registry
            .get(name)
            .ok_or_else(|| format!("context {name} missing from the registry"))?;
        let t = Instant::now();
        let r = convoy_release::render_context(&release, &chart, context, &secrets, 2)
            .map_err(|e| format!("rendering {name}: {e}"))?;
        samples.push(t.elapsed());
        objects += r.objects().count();
        std::hint::black_box(r);
    }
    let total = start.elapsed();
    samples.sort();
    let median: Duration = samples[samples.len() / 2];
    println!(
        "one release over {CONTEXTS} contexts ({} objects each): {total:.2?} total, {:.0} contexts/s, median {median:.2?} per context (one thread)",
        objects / CONTEXTS,
        CONTEXTS as f64 / total.as_secs_f64()
    );
    Ok(())
}

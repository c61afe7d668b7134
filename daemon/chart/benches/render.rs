//! Render benchmark (not a timed test: it prints figures and asserts nothing about time).
//!
//! `cargo bench -p convoy-chart --bench render` prints:
//! * the median render time of each conformance chart (Helm's own test charts),
//! * the median render time of a generated chart with 150 templates,
//! * renders per second for one chart over 100 contexts (different values per context),
//! * a fleet's renders with and without the render memo: the 150-template chart over
//!   1,000 contexts whose values differ in an unread cluster name (7 regions), and the same
//!   with the cluster name printed (every render different: the memo's overhead),
//! * peak resident memory (VmHWM).

use std::path::Path;
use std::time::{Duration, Instant};

use convoy_chart::{Chart, ChartFile, RenderMemo, RenderOptions, render};
use serde_json::json;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn time_renders(chart: &Chart, values: &serde_json::Value, runs: usize) -> Duration {
    let opts = RenderOptions {
        release_name: "bench".into(),
        ..Default::default()
    };
    let samples = (0..runs)
        .map(|_| {
            let start = Instant::now();
            let r = render(chart, values, &opts).expect("benchmark chart renders");
            std::hint::black_box(r);
            start.elapsed()
        })
        .collect();
    median(samples)
}

fn file(name: &str, data: String) -> ChartFile {
    ChartFile {
        name: name.to_string(),
        data: data.into_bytes(),
    }
}

/// A chart shaped like a real service chart, `n` templates sharing helpers.
fn generated_chart(n: usize) -> Chart {
    Chart::from_files(generated_files(n), "generated").expect("generated chart loads")
}

fn generated_files(n: usize) -> Vec<ChartFile> {
    let mut files = vec![
        file("Chart.yaml", "apiVersion: v2\nname: big\nversion: 1.0.0\nappVersion: \"3.2\"\n".into()),
        file(
            "values.yaml",
            "image: {repository: registry.example.com/app, tag: \"1.0\"}\nreplicas: 2\nresources: {limits: {cpu: 500m, memory: 256Mi}}\nenv: {LOG_LEVEL: info, MODE: prod}\nglobal: {region: eu, env: dev, cloud: gcp, clusterName: c1}\n".into(),
        ),
        file(
            "templates/_helpers.tpl",
            r#"{{- define "big.fullname" -}}{{ printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}{{- end -}}
{{- define "big.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
region: {{ .Values.global.region }}
{{- end -}}
"#
            .into(),
        ),
    ];
    for i in 0..n {
        files.push(file(
            &format!("templates/deploy-{i:03}.yaml"),
            format!(
                r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{{{ include "big.fullname" . }}}}-{i}
  labels:
{{{{ include "big.labels" . | indent 4 }}}}
spec:
  replicas: {{{{ .Values.replicas }}}}
  template:
    spec:
      containers:
      - name: app
        image: "{{{{ .Values.image.repository }}}}:{{{{ .Values.image.tag | default .Chart.AppVersion }}}}"
        env:
        {{{{- range $k, $v := .Values.env }}}}
        - name: {{{{ $k }}}}
          value: {{{{ $v | quote }}}}
        {{{{- end }}}}
        resources:
{{{{ toYaml .Values.resources | indent 10 }}}}
"#
            ),
        ));
    }
    files
}

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn main() {
    let base =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance/helm/helm-cmd/v3.21.4/testcharts");
    println!("median render time per conformance chart (30 runs each):");
    let mut names: Vec<_> = std::fs::read_dir(&base)
        .expect("conformance charts present")
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    for path in names {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let Ok(chart) = Chart::load(&path) else {
            println!("  {name:<42} (does not load: an error case)");
            continue;
        };
        let opts = RenderOptions {
            release_name: "bench".into(),
            ..Default::default()
        };
        if render(&chart, &json!({}), &opts).is_err() {
            println!("  {name:<42} (does not render: an error case)");
            continue;
        }
        println!("  {name:<42} {:>10.3?}", time_renders(&chart, &json!({}), 30));
    }

    let big = generated_chart(150);
    println!(
        "generated chart, 150 templates:               {:>10.3?} median of 10",
        time_renders(&big, &json!({}), 10)
    );

    let chart = generated_chart(10);
    let contexts: Vec<_> = (0..100)
        .map(|i| {
            json!({
                "global": {"region": format!("region-{}", i % 7), "clusterName": format!("cluster-{i}")},
                "replicas": 1 + i % 5,
                "image": {"tag": format!("2.{i}.0")},
                "secrets": {"app1": format!("s3cret-{i}")}
            })
        })
        .collect();
    let opts = RenderOptions {
        release_name: "app1".into(),
        namespace: "ns1".into(),
        ..Default::default()
    };
    let start = Instant::now();
    for v in &contexts {
        std::hint::black_box(render(&chart, v, &opts).expect("context renders"));
    }
    let elapsed = start.elapsed();
    println!(
        "one release (10 templates) over 100 contexts:  {:>10.3?} total, {:.1} renders/s",
        elapsed,
        100.0 / elapsed.as_secs_f64()
    );
    fleet_with_and_without_the_memo();
    match peak_rss_kib() {
        Some(kib) => println!("peak RSS (VmHWM): {:.1} MiB", kib as f64 / 1024.0),
        None => println!("peak RSS: /proc/self/status not available"),
    }
    side_by_side_with_go();
}

/// One release's renders for a fleet of 1,000 contexts, every render run vs through one
/// [`RenderMemo`], the outputs checked equal.
fn fleet_with_and_without_the_memo() {
    const FLEET: usize = 1000;
    let contexts: Vec<_> = (0..FLEET)
        .map(|i| {
            json!({"global": {"region": format!("region-{}", i % 7), "clusterName": format!("cluster-{i}")}})
        })
        .collect();
    let opts = RenderOptions {
        release_name: "app1".into(),
        namespace: "ns1".into(),
        ..Default::default()
    };
    let big = generated_chart(150);
    let mut files = generated_files(150);
    files.push(file(
        "templates/cluster.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cluster}\ndata: {name: {{ .Values.global.clusterName | quote }}}\n".into(),
    ));
    let printing = Chart::from_files(files, "generated").expect("generated chart loads");
    for (what, chart) in [("cluster name unread", &big), ("cluster name printed", &printing)] {
        let start = Instant::now();
        let plain: Vec<String> = contexts
            .iter()
            .map(|v| render(chart, v, &opts).expect("context renders").to_helm_output())
            .collect();
        let plain_time = start.elapsed();
        let memo = RenderMemo::new(chart);
        let start = Instant::now();
        let memoized: Vec<String> = contexts
            .iter()
            .map(|v| memo.render(v, &opts).expect("context renders").to_helm_output())
            .collect();
        let memo_time = start.elapsed();
        assert!(plain == memoized, "the memo changed a render");
        let c = memo.counts();
        println!(
            "150 templates over {FLEET} contexts, {what}: every render {plain_time:.2?}, memo {memo_time:.2?} ({:.1}x; templates ran {} times, {} shared)",
            plain_time.as_secs_f64() / memo_time.as_secs_f64(),
            c.executed,
            c.shared
        );
    }
}

/// The chart idioms of the differential corpus, rendered by convoy and by Go's own
/// text/template + sprig (the oracle, `oracle/`), same template and values, same run.
fn side_by_side_with_go() {
    let oracle = std::env::var_os("CONVOY_CACHE")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/convoy")))
        .map(|c| c.join("go-oracle/oracle"))
        .filter(|p| p.is_file());
    let Some(oracle) = oracle else {
        println!("side by side with Go: no oracle (run .ci/install-deps)");
        return;
    };
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/difftest/corpus");
    let mut files: Vec<_> = std::fs::read_dir(&corpus)
        .expect("difftest corpus present")
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().contains("-idiom-"))
        })
        .collect();
    files.sort();
    let mut go = std::process::Command::new(&oracle)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("oracle starts");
    let mut to_go = go.stdin.take().expect("oracle stdin");
    let mut from_go = std::io::BufReader::new(go.stdout.take().expect("oracle stdout"));
    const RUNS: usize = 500;
    println!(
        "side by side with Go's text/template + sprig, same templates and values (median of {RUNS}; p+e = parse + execute: convoy's render_str includes starting its render thread, Go's copies its function map):"
    );
    println!(
        "  {:<30} {:>14} {:>14} {:>7} | {:>12} {:>12} {:>7}",
        "template", "convoy p+e", "Go p+e", "ratio", "convoy exec", "Go exec", "ratio"
    );
    let (mut ours_total, mut go_total, mut ours_exec_total, mut go_exec_total) = (0.0, 0.0, 0.0, 0.0);
    for file in files {
        let case: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let (name, src) = (
            case["name"].as_str().unwrap_or("t"),
            case["src"].as_str().unwrap_or(""),
        );
        let values = case["values"].clone();
        let samples = (0..RUNS)
            .map(|_| {
                let start = Instant::now();
                std::hint::black_box(convoy_chart::render_str(name, src, &values).is_ok());
                start.elapsed()
            })
            .collect();
        let ours = median(samples);
        // Execution alone: parsed once, executed RUNS times, on a large stack as render_str.
        let ours_exec = std::thread::Builder::new()
            .stack_size(256 * 1024 * 1024)
            .spawn({
                let (name, src, values) = (name.to_string(), src.to_string(), values.clone());
                move || {
                    let Ok(t) = convoy_chart::StrTemplate::new(&name, &src, &values) else {
                        return Duration::ZERO;
                    };
                    median(
                        (0..RUNS)
                            .map(|_| {
                                let start = Instant::now();
                                std::hint::black_box(t.execute().is_ok());
                                start.elapsed()
                            })
                            .collect(),
                    )
                }
            })
            .expect("bench thread starts")
            .join()
            .expect("bench thread finishes");
        let mut ask = |parse: bool| -> f64 {
            use std::io::{BufRead, Write};
            let req =
                json!({"name": name, "src": src, "values": values, "bench": RUNS, "bench_parse": parse});
            writeln!(to_go, "{req}").expect("oracle accepts a request");
            let mut line = String::new();
            from_go.read_line(&mut line).expect("oracle answers");
            let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            v["median_ns"].as_f64().unwrap_or(f64::NAN) / 1000.0
        };
        let (go_all, go_exec) = (ask(true), ask(false));
        let ours_us = ours.as_secs_f64() * 1e6;
        let ours_exec_us = ours_exec.as_secs_f64() * 1e6;
        ours_total += ours_us;
        go_total += go_all;
        ours_exec_total += ours_exec_us;
        go_exec_total += go_exec;
        let label = file.file_stem().unwrap().to_string_lossy().into_owned();
        println!(
            "  {label:<30} {ours_us:>12.1}µs {go_all:>12.1}µs {:>6.2}x | {ours_exec_us:>10.1}µs {go_exec:>10.1}µs {:>6.2}x",
            ours_us / go_all,
            ours_exec_us / go_exec
        );
    }
    println!(
        "  total: parse + execute convoy {ours_total:.1} µs, Go {go_total:.1} µs (convoy / Go = {:.2}); execute only convoy {ours_exec_total:.1} µs, Go {go_exec_total:.1} µs (convoy / Go = {:.2})",
        ours_total / go_total,
        ours_exec_total / go_exec_total
    );
    drop(to_go);
    let _ = go.wait();
}

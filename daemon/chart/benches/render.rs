//! Render benchmark (not a timed test: it prints figures and asserts nothing about time).
//!
//! `cargo bench -p convoy-chart --bench render` prints:
//! * the median render time of each conformance chart (Helm's own test charts),
//! * the median render time of a generated chart with 150 templates,
//! * renders per second for one chart over 100 contexts (different values per context),
//! * peak resident memory (VmHWM).

use std::path::Path;
use std::time::{Duration, Instant};

use convoy_chart::{Chart, ChartFile, RenderOptions, render};
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
    Chart::from_files(files, "generated").expect("generated chart loads")
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
    match peak_rss_kib() {
        Some(kib) => println!("peak RSS (VmHWM): {:.1} MiB", kib as f64 / 1024.0),
        None => println!("peak RSS: /proc/self/status not available"),
    }
}

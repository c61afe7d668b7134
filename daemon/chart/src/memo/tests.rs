//! The memo gives exactly what a render gives, and runs templates only when it must.

use serde_json::json;

use super::*;
use crate::chart::ChartFile;

fn chart(files: &[(&str, &str)]) -> Chart {
    let mut all = vec![ChartFile {
        name: "Chart.yaml".into(),
        data: b"apiVersion: v2\nname: web\nversion: 1.0.0\n".to_vec(),
    }];
    all.extend(files.iter().map(|(n, d)| ChartFile {
        name: n.to_string(),
        data: d.as_bytes().to_vec(),
    }));
    Chart::from_files(all, "web").expect("test chart loads")
}

fn opts() -> RenderOptions {
    RenderOptions {
        release_name: "web".into(),
        namespace: "apps".into(),
        ..RenderOptions::default()
    }
}

fn text(r: &Rendered) -> String {
    r.to_helm_output()
}

/// Renders every value set through one memo, in order, and checks each against a plain
/// render; returns the memo's counts.
fn through_memo(c: &Chart, sets: &[Json]) -> MemoCounts {
    let memo = RenderMemo::new(c);
    for v in sets {
        let plain = crate::render(c, v, &opts()).map(|r| text(&r));
        let memoized = memo.render(v, &opts()).map(|r| text(&r));
        match (&plain, &memoized) {
            (Ok(p), Ok(m)) => assert_eq!(p, m, "values {v}"),
            (Err(p), Err(m)) => assert_eq!(p.to_string(), m.to_string(), "values {v}"),
            _ => panic!("values {v}: render {plain:?}, memo {memoized:?}"),
        }
    }
    memo.counts()
}

const DEPLOYMENT: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}\n  labels: {region: {{ .Values.global.region | quote }}}\nspec:\n  template:\n    spec:\n      containers: [{name: web, image: {{ .Values.image | quote }}}]\n";

#[test]
fn contexts_that_differ_only_in_values_no_template_reads_share_one_render() {
    let c = chart(&[("templates/deployment.yaml", DEPLOYMENT)]);
    let sets: Vec<Json> = (0..6)
        .map(|i| json!({"image": "web:2", "global": {"region": format!("r{}", i % 2), "clusterName": format!("c{i}")}}))
        .collect();
    let counts = through_memo(&c, &sets);
    assert_eq!(
        counts,
        MemoCounts {
            executed: 2,
            shared: 4
        },
        "two regions, six clusters"
    );
}

#[test]
fn a_value_a_template_reads_renders_again() {
    let c = chart(&[("templates/deployment.yaml", DEPLOYMENT)]);
    let sets = [
        json!({"image": "web:1", "global": {"region": "eu"}}),
        json!({"image": "web:2", "global": {"region": "eu"}}),
        json!({"image": "web:2", "global": {"region": "us"}}),
        json!({"image": "web:2", "global": {}}),
        json!({"image": "web:2"}),
        json!({"image": null}),
    ];
    let counts = through_memo(&c, &sets);
    assert_eq!(counts.shared, 0, "{counts:?}");
}

#[test]
fn printing_or_ranging_over_a_map_reads_all_of_it() {
    for tpl in [
        "data: {{ toYaml .Values.global | nindent 2 }}",
        "{{ range $k, $v := .Values.global }}{{ $k }}: {{ $v }}\n{{ end }}",
        "n: {{ len .Values.global }}",
        "k: {{ keys .Values.global | sortAlpha | join \",\" }}",
        "{{ $c := deepCopy .Values.global }}x: {{ $c.clusterName }}",
        "{{ if eq .Values.global (dict \"region\" \"eu\") }}same{{ end }}",
    ] {
        let c = chart(&[("templates/cm.yaml", tpl)]);
        let sets = [
            json!({"global": {"region": "eu", "clusterName": "a"}}),
            json!({"global": {"region": "eu", "clusterName": "b"}}),
            json!({"global": {"region": "eu"}}),
        ];
        let counts = through_memo(&c, &sets);
        assert_eq!(counts.shared, 0, "{tpl}: {counts:?}");
    }
}

#[test]
fn functions_of_the_clock_or_of_chance_are_never_shared() {
    for tpl in [
        "token: {{ randAlphaNum 16 }}",
        "id: {{ uuidv4 }}",
        "at: {{ now | date \"2006\" }}",
    ] {
        let c = chart(&[("templates/s.yaml", tpl)]);
        let memo = RenderMemo::new(&c);
        let v = json!({"a": 1});
        memo.render(&v, &opts()).expect("renders");
        memo.render(&v, &opts()).expect("renders");
        assert_eq!(
            memo.counts(),
            MemoCounts {
                executed: 2,
                shared: 0
            },
            "{tpl}"
        );
    }
}

#[test]
fn the_release_and_the_capabilities_are_part_of_what_is_shared() {
    let c = chart(&[(
        "templates/cm.yaml",
        "r: {{ .Release.Revision }}\nk: {{ .Capabilities.KubeVersion.Version }}\n",
    )]);
    let memo = RenderMemo::new(&c);
    let v = json!({});
    let mut o = opts();
    let first = text(&memo.render(&v, &o).expect("renders"));
    o.revision = 2;
    let second = text(&memo.render(&v, &o).expect("renders"));
    o.kube_version = Some("v1.29.1".into());
    let third = text(&memo.render(&v, &o).expect("renders"));
    assert!(first.contains("r: 1") && second.contains("r: 2") && third.contains("v1.29.1"));
    assert_eq!(memo.counts().shared, 0);
    assert_eq!(text(&memo.render(&v, &o).expect("renders")), third);
    assert_eq!(memo.counts().shared, 1);
}

#[test]
fn subcharts_their_conditions_and_globals() {
    let c = chart(&[
        (
            "Chart.yaml",
            "apiVersion: v2\nname: web\nversion: 1.0.0\ndependencies:\n  - {name: cache, version: 1.0.0, condition: cache.enabled}\n",
        ),
        ("templates/a.yaml", "a: {{ .Values.image }}\n"),
        (
            "charts/cache/Chart.yaml",
            "apiVersion: v2\nname: cache\nversion: 1.0.0\n",
        ),
        ("charts/cache/values.yaml", "size: 1\n"),
        (
            "charts/cache/templates/c.yaml",
            "size: {{ .Values.size }}\nregion: {{ .Values.global.region }}\n",
        ),
    ]);
    let sets = [
        json!({"image": "x", "cache": {"enabled": true}, "global": {"region": "eu", "clusterName": "a"}}),
        json!({"image": "x", "cache": {"enabled": true}, "global": {"region": "eu", "clusterName": "b"}}),
        json!({"image": "x", "cache": {"enabled": false}, "global": {"region": "eu", "clusterName": "c"}}),
        json!({"image": "x", "cache": {"enabled": true, "size": 3}, "global": {"region": "eu"}}),
        json!({"image": "x", "cache": {"enabled": true}, "global": {"region": "us"}}),
        json!({"image": "x", "cache": {"enabled": false}, "global": {"region": "us"}}),
    ];
    let counts = through_memo(&c, &sets);
    // b shares a's render; the last shares the third's (the cache is off, the region unread).
    assert_eq!(
        counts,
        MemoCounts {
            executed: 4,
            shared: 2
        }
    );
}

/// Many templates and functions over every combination of a small value space: each
/// render through the memo is the plain render, in whatever order the memo met them.
#[test]
fn every_template_idiom_over_every_value_combination_renders_as_without_the_memo() {
    let helpers = "{{- define \"t.name\" -}}{{ .name | default \"anon\" }}{{- end -}}";
    let templates = [
        "a: {{ .Values.a }}",
        "{{ if .Values.b.d }}d: {{ .Values.b.d | toJson }}{{ end }}",
        "b: {{ .Values.b | toYaml | nindent 2 }}",
        "has: {{ hasKey .Values \"e\" }}",
        "c: {{ index .Values.b \"c\" }}",
        "n: {{ include \"t.name\" .Values.b }}",
        "t: {{ tpl \"{{ .Values.a }}-x\" . }}",
        "e: {{ .Values.e | default \"none\" }}",
        "dig: {{ dig \"b\" \"c\" \"zz\" .Values }}",
        "pl: {{ pluck \"c\" .Values.b | toJson }}",
        "len: {{ len .Values.b }}",
        "{{ $x := deepCopy .Values.b }}{{ $_ := set $x \"n\" 1 }}x: {{ $x.c }}",
        "{{ $_ := set .Values \"f\" .Values.a }}f: {{ .Values.f }}",
        "{{ $_ := unset .Values.b \"c\" }}u: {{ .Values.b.c }}",
        "{{ with .Values.b }}w: {{ .c }}{{ end }}",
        "m: {{ merge (dict \"q\" 1) .Values.b | toJson }}",
        "r:\n{{ range .Values.b.d }}  - {{ . }}\n{{ end }}",
        "k: {{ kindOf .Values.e }} {{ typeOf .Values.b.c }}",
        "{{ if and .Values.e (eq (toString .Values.a) \"1\") }}both{{ end }}",
        "{{ $v := .Values }}v: {{ $v.b.c }}/{{ $.Values.a }}",
    ];
    let mut sets = Vec::new();
    for a in [json!(1), json!(2)] {
        for c in [json!("x"), json!("y"), json!(null)] {
            for d in [json!([1, 2]), json!([])] {
                for e in [None, Some(json!(null)), Some(json!("s"))] {
                    let mut v = json!({"a": a, "b": {"c": c, "d": d}, "z": "unread"});
                    if let Some(e) = e {
                        v["e"] = e;
                    }
                    sets.push(v.clone());
                    v["z"] = json!("other");
                    sets.push(v);
                }
            }
        }
    }
    for t in templates {
        let c = chart(&[("templates/_h.tpl", helpers), ("templates/t.yaml", t)]);
        let counts = through_memo(&c, &sets);
        assert_eq!(counts.executed + counts.shared, sets.len(), "{t}");
        assert!(
            counts.shared >= sets.len() / 2,
            "{t}: the unread `z` never forces a render: {counts:?}"
        );
        let reversed: Vec<Json> = sets.iter().rev().cloned().collect();
        through_memo(&c, &reversed);
    }
}

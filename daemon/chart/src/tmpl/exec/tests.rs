use super::*;
use crate::tmpl::value::{Dict, FuncMap, Value};

fn funcs() -> FuncMap {
    let mut m = FuncMap::new();
    m.insert(
        "set".into(),
        Arc::new(|a: &[Value]| match a {
            [Value::Map(m), Value::String(k), v] => {
                m.insert(k.clone(), v.clone());
                Ok(Value::Map(m.clone()))
            }
            _ => Err(crate::tmpl::Error::Exec("bad set".into())),
        }),
    );
    m.insert(
        "dict".into(),
        Arc::new(|a: &[Value]| {
            let mut d = Dict::new();
            for p in a.chunks(2) {
                if let [Value::String(k), v] = p {
                    d.insert(k.clone(), v.clone());
                }
            }
            Ok(Value::map(d))
        }),
    );
    m.insert(
        "upper".into(),
        Arc::new(|a: &[Value]| match a {
            [v] => Ok(Value::from(crate::funcs::go_string(v).to_uppercase())),
            _ => Err(crate::tmpl::Error::Exec(format!(
                "wrong number of args for upper: want 1 got {}",
                a.len()
            ))),
        }),
    );
    m
}

fn run_with(src: &str, data: Value) -> Result<String, String> {
    let mut set = Set::new(funcs());
    set.add("t", src)?;
    set.execute("t", &data)
}

fn values(j: serde_json::Value) -> Value {
    let mut d = Dict::new();
    d.insert("Values".into(), crate::engine::convert::to_value(&j));
    Value::map(d)
}

fn run(src: &str) -> Result<String, String> {
    run_with(
        src,
        values(serde_json::json!({"a": {"b": 1}, "list": [1, "x", null], "n": 3.0})),
    )
}

#[test]
fn trailing_pipe_and_nil_safe_parens() {
    assert_eq!(run("{{- .Values.a.b | upper | }}").unwrap(), "1");
    assert_eq!(run("[{{ ((.Values.x).y).z }}]").unwrap(), "[<no value>]");
    assert_eq!(
        run("[{{ (.Values.global).imageRegistry }}]").unwrap(),
        "[<no value>]"
    );
    let err = run("{{ .Values.x.y }}").unwrap_err();
    assert_eq!(
        err,
        "template: t:1:10: executing \"t\" at <.Values.x.y>: nil pointer evaluating interface {}.y"
    );
}

#[test]
fn maps_are_shared() {
    assert_eq!(
        run(r#"{{ $d := dict "k" 1 }}{{ $_ := set $d "k" 2 }}{{ $d.k }}"#).unwrap(),
        "2"
    );
    assert_eq!(
        run(r#"{{ $_ := set .Values "z" "seen" }}{{ .Values.z }}"#).unwrap(),
        "seen"
    );
}

#[test]
fn control_flow() {
    assert_eq!(
        run("{{ range $i, $e := .Values.list }}{{ $i }}={{ $e }};{{ end }}").unwrap(),
        "0=1;1=x;2=<no value>;"
    );
    assert_eq!(
        run("{{ range .Values.list }}{{ if eq (print .) \"x\" }}{{ break }}{{ end }}{{ . }}{{ end }}")
            .unwrap(),
        "1"
    );
    assert_eq!(
        run("{{ range $k, $v := .Values.a }}{{ $k }}:{{ $v }}{{ else }}none{{ end }}").unwrap(),
        "b:1"
    );
    assert_eq!(
        run("{{ range .Values.missing }}x{{ else }}none{{ end }}").unwrap(),
        "none"
    );
    assert_eq!(run("{{ range 3 }}{{ . }}{{ end }}").unwrap(), "012");
    assert!(
        run("{{ range .Values.n }}{{ . }}{{ end }}")
            .unwrap_err()
            .contains("range can't iterate over 3")
    );
    assert_eq!(
        run("{{ with .Values.none }}a{{ else with .Values.a }}{{ .b }}{{ end }}").unwrap(),
        "1"
    );
    assert_eq!(
        run("{{ if .Values.none }}a{{ else if .Values.a }}b{{ else }}c{{ end }}").unwrap(),
        "b"
    );
    assert_eq!(
        run("{{ define \"x\" }}[{{ . }}]{{ end }}{{ template \"x\" .Values.a.b }}{{ block \"y\" 2 }}<{{ . }}>{{ end }}")
            .unwrap(),
        "[1]<2>"
    );
    assert_eq!(
        run("{{ $x := 1 }}{{ if true }}{{ $x = 2 }}{{ end }}{{ $x }}").unwrap(),
        "2"
    );
}

#[test]
fn builtins_follow_go() {
    assert_eq!(
        run("{{ and 1 0 2 }} {{ or 0 \"\" }} {{ or 0 3 }} {{ not .Values.none }}").unwrap(),
        "0  3 true"
    );
    assert_eq!(
        run("{{ eq 1 2 1 }} {{ eq .Values.none \"x\" }} {{ lt 1 2 }}").unwrap(),
        "true false true"
    );
    assert!(
        run("{{ eq .Values.n 3 }}")
            .unwrap_err()
            .contains("incompatible types for comparison")
    );
    assert!(
        run("{{ lt 1 1.5 }}")
            .unwrap_err()
            .contains("incompatible types for comparison")
    );
    assert_eq!(
        run("{{ index .Values.list 1 }} {{ index .Values.a \"b\" }} {{ len .Values.list }}").unwrap(),
        "x 1 3"
    );
    assert_eq!(
        run("{{ print 1 2 \"a\" }} {{ printf \"%05.1f\" 1.23456 }}").unwrap(),
        "1 2a 001.2"
    );
    assert_eq!(
        run("{{ html \"<a>\" }} {{ js \"'\" }} {{ urlquery \"a b\" }}").unwrap(),
        "&lt;a&gt; \\' a+b"
    );
    assert_eq!(
        run("{{ .Values.list }} {{ .Values.a }} {{ 1e6 }} {{ .Values.n }}").unwrap(),
        "[1 x <nil>] map[b:1] 1e+06 3"
    );
}

#[test]
fn errors_have_go_positions() {
    let e = run("a\n  {{ upper }}").unwrap_err();
    assert_eq!(
        e,
        "template: t:2:5: executing \"t\" at <upper>: wrong number of args for upper: want 1 got 0"
    );
    let e = run("{{ template \"nope\" }}").unwrap_err();
    assert_eq!(
        e,
        "template: t:1:12: executing \"t\" at <{{template \"nope\"}}>: template \"nope\" not defined"
    );
    assert!(
        run("{{ nope }}")
            .unwrap_err()
            .contains("function \"nope\" not defined")
    );
}

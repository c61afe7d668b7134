//! Engine behaviour through small templates.

use super::*;
use crate::engine::convert::{map_of, s};

fn render_one(files: &[(&str, &str)], main: &str, data: Value) -> Result<String, String> {
    let sources: Vec<Source> = files
        .iter()
        .map(|(n, src)| Source {
            name: n.to_string(),
            src: src.to_string(),
        })
        .collect();
    let engine = Engine::new(&sources)?;
    engine.execute(main, &data)
}

fn data() -> Value {
    map_of([
        (
            "Values",
            map_of([
                ("n", Value::Float(1_000_000.0)),
                ("name", s("web")),
                ("list", Value::List(vec![s("a")].into())),
            ]),
        ),
        (
            "Template",
            map_of([("Name", s("c/templates/a.yaml")), ("BasePath", s("c/templates"))]),
        ),
    ])
}

#[test]
fn floats_print_like_go_and_missing_values_print_nothing() {
    let out = render_one(
        &[(
            "c/templates/a.yaml",
            "n={{ .Values.n }} missing={{ .Values.nope }} l={{ .Values.list }}",
        )],
        "c/templates/a.yaml",
        data(),
    );
    assert_eq!(out.unwrap(), "n=1e+06 missing= l=[a]");
}

#[test]
fn include_and_define_from_helpers() {
    let out = render_one(
        &[
            (
                "c/templates/_helpers.tpl",
                r#"{{- define "c.name" -}}{{ .Values.name }}-x{{- end -}}"#,
            ),
            ("c/templates/a.yaml", r#"name: {{ include "c.name" . | upper }}"#),
        ],
        "c/templates/a.yaml",
        data(),
    );
    assert_eq!(out.unwrap(), "name: WEB-X");
}

#[test]
fn tpl_renders_strings_with_the_callers_context() {
    let out = render_one(
        &[("c/templates/a.yaml", r#"{{ tpl "{{ .Values.name }}!" . }}"#)],
        "c/templates/a.yaml",
        data(),
    );
    assert_eq!(out.unwrap(), "web!");
}

#[test]
fn required_and_fail_use_helms_execution_error_format() {
    let e = render_one(
        &[(
            "c/templates/a.yaml",
            "a\n  {{ required \"name is required\" .Values.missing }}",
        )],
        "c/templates/a.yaml",
        data(),
    )
    .unwrap_err();
    assert_eq!(e, "execution error at (c/templates/a.yaml:2:5): name is required");
    let e = render_one(
        &[("c/templates/a.yaml", r#"{{ fail "boom" }}"#)],
        "c/templates/a.yaml",
        data(),
    )
    .unwrap_err();
    assert_eq!(e, "execution error at (c/templates/a.yaml:1:3): boom");
}

#[test]
fn nil_pointer_errors_carry_go_positions() {
    let e = render_one(
        &[("c/templates/a.yaml", "x: {{ .Values.nope.deeper }}")],
        "c/templates/a.yaml",
        data(),
    )
    .unwrap_err();
    assert_eq!(
        e,
        "template: c/templates/a.yaml:1:13: executing \"c/templates/a.yaml\" at <.Values.nope.deeper>: nil pointer evaluating interface {}.deeper"
    );
}

#[test]
fn errors_inside_includes_name_the_define() {
    let e = render_one(
        &[
            (
                "c/templates/_h.tpl",
                "{{ define \"boom\" }}{{ .Values.nope.x }}{{ end }}",
            ),
            ("c/templates/a.yaml", "{{ include \"boom\" . }}"),
        ],
        "c/templates/a.yaml",
        data(),
    )
    .unwrap_err();
    assert!(e.starts_with("template: c/templates/a.yaml:1:3: executing \"c/templates/a.yaml\" at <include \"boom\" .>: error calling include: template: c/templates/_h.tpl:1:29: executing \"boom\" at <.Values.nope.x>"), "{e}");
}

#[test]
fn undefined_function_is_a_parse_error() {
    let e = render_one(
        &[("c/templates/a.yaml", "\n{{ nosuchfunc 1 }}")],
        "c/templates/a.yaml",
        data(),
    )
    .unwrap_err();
    assert_eq!(
        e,
        "parse error at (c/templates/a.yaml:2): function \"nosuchfunc\" not defined"
    );
}

#[test]
fn lookup_is_empty_and_methods_work_in_pipelines() {
    let kube = objects::KubeVersion::parse("1.20.0").unwrap();
    let d = map_of([
        (
            "Files",
            objects::files_object(&[crate::chart::ChartFile {
                name: "a.txt".into(),
                data: b"hi\n".to_vec(),
            }]),
        ),
        ("Capabilities", objects::capabilities_object(&kube, &[], true)),
    ]);
    let out = render_one(
        &[(
            "t",
            r#"{{ len (lookup "v1" "Pod" "ns" "x") }} {{ .Files.Get "a.txt" | trim }} {{ .Capabilities.APIVersions.Has "apps/v1" }} {{ if .Capabilities.APIVersions.Has "x/v9" }}yes{{ else }}no{{ end }}"#,
        )],
        "t",
        d,
    );
    assert_eq!(out.unwrap(), "0 hi true no");
}

#[test]
fn runaway_recursion_is_an_error_not_a_crash() {
    let sources = [Source {
        name: "t".into(),
        src: r#"{{ define "loop" }}{{ include "loop" . }}{{ end }}{{ include "loop" . }}"#.into(),
    }];
    let result = std::thread::Builder::new()
        .stack_size(256 * 1024 * 1024)
        .spawn(move || Engine::new(&sources).and_then(|e| e.execute("t", &Value::Nil)))
        .unwrap()
        .join()
        .unwrap();
    let e = result.unwrap_err();
    assert!(
        e.contains("nested reference name: loop"),
        "{}",
        &e[e.len().saturating_sub(300)..]
    );
}

#[test]
fn pipeline_function_errors_point_at_the_function() {
    let e = render_one(
        &[("c/templates/a.yaml", "a:\n  - name: {{ .Values.nope | b64enc }}")],
        "c/templates/a.yaml",
        data(),
    )
    .unwrap_err();
    // Go refuses the pipeline's missing value for b64enc's string parameter.
    let want = "template: c/templates/a.yaml:2:28: executing \"c/templates/a.yaml\" at <b64enc>: invalid value; expected string";
    assert_eq!(e, want);
    let e = render_one(&[("t", "{{ mustRegexMatch \"(\" \"x\" }}")], "t", data()).unwrap_err();
    assert_eq!(e.matches("error calling mustRegexMatch").count(), 1, "{e}");
}

/// Outputs and errors recorded from Go's text/template + sprig (the differential oracle).
#[test]
fn go_fmt_flags_nil_data_and_nil_lists_match_go() {
    let one = |src: &str| render_one(&[("t", src)], "t", data());
    assert_eq!(
        one(r#"{{ printf "%+v|%#v|%#v|%#v|%5.2f|%05d|%#v" 63 "v1" (list 1 "a" nil) (dict "a" 1) "null" "-" 1.5 }}"#)
            .unwrap(),
        r#"63|"v1"|[]interface {}{1, "a", interface {}(nil)}|map[string]interface {}{"a":1}|%!f(string=   nu)|%!d(string=0000-)|1.5"#
    );
    // include with a missing value: dot is no value, so its fields are no value too.
    assert_eq!(
        one(r#"{{ define "x" }}[{{ .Values.n }}]{{ end }}{{ include "x" .Values.missing }}"#).unwrap(),
        "[]"
    );
    let e = one(r#"{{ dig "a" "d" .Values.missing }}"#).unwrap_err();
    assert!(
        e.ends_with(
            "error calling dig: interface conversion: interface {} is nil, not map[string]interface {}"
        ),
        "{e}"
    );
    let e = one("{{ .Values.y | last }}").unwrap_err();
    assert!(
        e.ends_with(
            "at <last>: error calling last: runtime error: invalid memory address or nil pointer dereference"
        ),
        "{e}"
    );
}

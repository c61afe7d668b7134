//! Rendering behaviour a chart author would notice, through the public API.

use std::path::Path;

use convoy_chart::{Chart, ChartError, RenderOptions, render};
use serde_json::json;

fn write(dir: &Path, files: &[(&str, &str)]) {
    for (name, content) in files {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }
}

fn chart(files: &[(&str, &str)]) -> (tempfile::TempDir, Chart) {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), files);
    let c = Chart::load(dir.path()).unwrap();
    (dir, c)
}

fn opts() -> RenderOptions {
    RenderOptions {
        release_name: "rel".into(),
        ..Default::default()
    }
}

const APP: (&str, &str) = (
    "Chart.yaml",
    "apiVersion: v2\nname: app\nversion: 1.0.0\nappVersion: \"2.1\"\n",
);

#[test]
fn release_chart_capabilities_and_template_objects() {
    let (_d, c) = chart(&[
        APP,
        ("values.yaml", "replicas: 1000000\n"),
        (
            "templates/cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-{{ .Chart.Name }}\n  namespace: {{ .Release.Namespace }}\ndata:\n  rev: \"{{ .Release.Revision }}\"\n  install: \"{{ .Release.IsInstall }}\"\n  service: {{ .Release.Service }}\n  app: \"{{ .Chart.AppVersion }}\"\n  kube: {{ .Capabilities.KubeVersion.Version }}\n  tpl: {{ .Template.Name }}\n  base: {{ .Template.BasePath }}\n  replicas: \"{{ .Values.replicas }}\"\n",
        ),
    ]);
    let r = render(
        &c,
        &json!({}),
        &RenderOptions {
            namespace: "ns1".into(),
            kube_version: Some("1.29.3".into()),
            ..opts()
        },
    )
    .unwrap();
    let cm = &r.manifests[0].content;
    for want in [
        "name: rel-app",
        "namespace: ns1",
        "rev: \"1\"",
        "install: \"true\"",
        "service: Helm",
        "app: \"2.1\"",
        "kube: v1.29.3",
        "tpl: app/templates/cm.yaml",
        "base: app/templates",
        "replicas: \"1e+06\"",
    ] {
        assert!(cm.contains(want), "missing {want:?} in\n{cm}");
    }
    assert_eq!(
        (r.manifests[0].kind.as_str(), r.manifests[0].name.as_str()),
        ("ConfigMap", "rel-app")
    );
}

#[test]
fn files_objects_and_helpers() {
    let (_d, c) = chart(&[
        APP,
        ("config/app.properties", "a=1\nb=2\n"),
        ("config/other.txt", "x"),
        (
            "templates/_helpers.tpl",
            "{{- define \"app.labels\" -}}\napp: {{ .Chart.Name }}\n{{- end -}}\n",
        ),
        (
            "templates/cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\n  labels:\n{{ include \"app.labels\" . | indent 4 }}\ndata:\n{{ (.Files.Glob \"config/*.properties\").AsConfig | indent 2 }}\n  first: {{ index (.Files.Lines \"config/app.properties\") 0 }}\n  other: {{ .Files.Get \"config/other.txt\" }}\n",
        ),
    ]);
    let r = render(&c, &json!({}), &opts()).unwrap();
    assert_eq!(
        r.manifests[0].content,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\n  labels:\n    app: app\ndata:\n  app.properties: |\n    a=1\n    b=2\n  first: a=1\n  other: x"
    );
}

#[test]
fn kind_order_hooks_notes_and_empty_documents() {
    let (_d, c) = chart(&[
        APP,
        ("templates/NOTES.txt", "Thanks for installing {{ .Release.Name }}"),
        (
            "templates/a-deploy.yaml",
            "kind: Deployment\nmetadata:\n  name: d\n---\nkind: Namespace\nmetadata:\n  name: n\n---\n",
        ),
        ("templates/b-svc.yaml", "{{ if false }}kind: Service{{ end }}\n"),
        (
            "templates/c-hook.yaml",
            "kind: Job\nmetadata:\n  name: migrate\n  annotations:\n    helm.sh/hook: pre-install\n",
        ),
        (
            "templates/d-test.yaml",
            "kind: Pod\nmetadata:\n  name: t\n  annotations:\n    helm.sh/hook: test\n",
        ),
    ]);
    let r = render(&c, &json!({}), &opts()).unwrap();
    let kinds: Vec<_> = r.manifests.iter().map(|m| m.kind.as_str()).collect();
    assert_eq!(kinds, ["Namespace", "Deployment"]);
    assert_eq!(
        r.hooks.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(),
        ["t", "migrate"]
    );
    assert_eq!(r.notes.as_deref(), Some("Thanks for installing rel"));
    let out = r.to_helm_output();
    assert!(
        out.starts_with("---\n# Source: app/templates/a-deploy.yaml\nkind: Namespace"),
        "{out}"
    );
    assert!(!out.contains("NOTES"));
    let r = render(
        &c,
        &json!({}),
        &RenderOptions {
            skip_tests: true,
            ..opts()
        },
    )
    .unwrap();
    assert_eq!(r.hooks.len(), 1);
}

#[test]
fn subcharts_globals_aliases_conditions_and_library_charts() {
    let (_d, c) = chart(&[
        (
            "Chart.yaml",
            "apiVersion: v2\nname: app\nversion: 1.0.0\ndependencies:\n- name: db\n  version: 1.x\n  alias: primary\n- name: db\n  version: 1.x\n  alias: replica\n  condition: replica.enabled\n- name: lib\n  version: 0.1.0\n",
        ),
        (
            "values.yaml",
            "global:\n  region: eu\nprimary:\n  size: 10\nreplica:\n  enabled: false\n",
        ),
        (
            "templates/main.yaml",
            "kind: ConfigMap\nmetadata:\n  name: main\ndata:\n  x: {{ include \"lib.hello\" . }}\n",
        ),
        (
            "charts/db/Chart.yaml",
            "apiVersion: v2\nname: db\nversion: 1.2.0\n",
        ),
        ("charts/db/values.yaml", "size: 1\n"),
        (
            "charts/db/templates/db.yaml",
            "kind: Service\nmetadata:\n  name: {{ .Chart.Name }}-{{ .Values.size }}-{{ .Values.global.region }}\n",
        ),
        (
            "charts/lib/Chart.yaml",
            "apiVersion: v2\nname: lib\nversion: 0.1.0\ntype: library\n",
        ),
        (
            "charts/lib/templates/_lib.tpl",
            "{{ define \"lib.hello\" }}hello{{ end }}",
        ),
        (
            "charts/lib/templates/ignored.yaml",
            "kind: Secret\nmetadata:\n  name: never-rendered\n",
        ),
    ]);
    let r = render(&c, &json!({}), &opts()).unwrap();
    let names: Vec<_> = r
        .manifests
        .iter()
        .map(|m| (m.source.as_str(), m.name.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("app/templates/main.yaml", "main"),
            ("app/charts/primary/templates/db.yaml", "primary-10-eu")
        ]
    );
    assert!(r.manifests[0].content.contains("x: hello"));
    let r = render(
        &c,
        &json!({"replica": {"enabled": true}, "global": {"region": "us"}}),
        &opts(),
    )
    .unwrap();
    assert!(
        r.manifests.iter().any(|m| m.name == "replica-1-us"),
        "{:?}",
        r.manifests
    );
}

#[test]
fn null_user_value_deletes_a_default() {
    let (_d, c) = chart(&[
        APP,
        ("values.yaml", "resources:\n  limits: {cpu: 1}\n"),
        (
            "templates/x.yaml",
            "kind: ConfigMap\nmetadata:\n  name: x\ndata:\n  has: \"{{ hasKey .Values \"resources\" }}\"\n",
        ),
    ]);
    let r = render(&c, &json!({"resources": null}), &opts()).unwrap();
    assert!(
        r.manifests[0].content.contains("has: \"false\""),
        "{}",
        r.manifests[0].content
    );
}

#[test]
fn schema_violations_name_chart_and_field() {
    let (_d, c) = chart(&[
        APP,
        ("values.yaml", "replicas: 1\n"),
        (
            "values.schema.json",
            r#"{"type":"object","properties":{"replicas":{"type":"integer","minimum":1}},"required":["replicas"]}"#,
        ),
        ("templates/x.yaml", "kind: ConfigMap\n"),
    ]);
    let r = render(&c, &json!({}), &opts());
    assert!(
        r.is_ok(),
        "{}",
        r.err()
            .map(|e| e.to_string())
            .unwrap_or_default()
            .chars()
            .take(300)
            .collect::<String>()
    );
    let e = render(&c, &json!({"replicas": "three"}), &opts())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("app:") && e.contains("replicas: Invalid type. Expected: integer, given: string"),
        "{e}"
    );
}

#[test]
fn template_errors_look_like_helms() {
    let (_d, c) = chart(&[
        APP,
        (
            "templates/x.yaml",
            "kind: ConfigMap\nmetadata:\n  name: {{ required \"name is required\" .Values.name }}\n",
        ),
    ]);
    let e = render(&c, &json!({}), &opts()).unwrap_err();
    assert!(matches!(e, ChartError::TemplateExec(_)));
    assert_eq!(
        e.to_string(),
        "execution error at (app/templates/x.yaml:3:11): name is required"
    );
}

#[test]
fn crds_and_show_only() {
    let (_d, c) = chart(&[
        APP,
        (
            "crds/thing.yaml",
            "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: things.example.com\n",
        ),
        ("templates/a.yaml", "kind: ConfigMap\nmetadata:\n  name: a\n"),
        ("templates/b.yaml", "kind: Secret\nmetadata:\n  name: b\n"),
    ]);
    let r = render(
        &c,
        &json!({}),
        &RenderOptions {
            include_crds: true,
            ..opts()
        },
    )
    .unwrap();
    assert_eq!(r.crds.len(), 1);
    assert!(
        r.to_helm_output()
            .starts_with("---\n# Source: app/crds/thing.yaml\n")
    );
    let r = render(
        &c,
        &json!({}),
        &RenderOptions {
            show_only: vec!["templates/a.yaml".into()],
            ..opts()
        },
    )
    .unwrap();
    assert_eq!(
        r.to_helm_output(),
        "---\n# Source: app/templates/a.yaml\nkind: ConfigMap\nmetadata:\n  name: a\n"
    );
    let e = render(
        &c,
        &json!({}),
        &RenderOptions {
            show_only: vec!["templates/zzz.yaml".into()],
            ..opts()
        },
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "could not find template templates/zzz.yaml in chart"
    );
}

#[test]
fn kube_version_constraint_is_checked() {
    let (_d, c) = chart(&[(
        "Chart.yaml",
        "apiVersion: v2\nname: app\nversion: 1.0.0\nkubeVersion: \">=1.22.0-0\"\n",
    )]);
    let e = render(&c, &json!({}), &opts()).unwrap_err().to_string();
    assert_eq!(
        e,
        "chart requires kubeVersion: >=1.22.0-0 which is incompatible with Kubernetes v1.20.0"
    );
    assert!(
        render(
            &c,
            &json!({}),
            &RenderOptions {
                kube_version: Some("v1.30.1".into()),
                ..opts()
            }
        )
        .is_ok()
    );
}

#[test]
fn missing_dependency_and_library_root_are_refused() {
    let (_d, c) = chart(&[(
        "Chart.yaml",
        "apiVersion: v2\nname: app\nversion: 1.0.0\ndependencies:\n- name: redis\n  version: 1.0.0\n",
    )]);
    assert!(
        render(&c, &json!({}), &opts())
            .unwrap_err()
            .to_string()
            .contains("missing in charts/ directory: redis")
    );
    let (_d, c) = chart(&[(
        "Chart.yaml",
        "apiVersion: v2\nname: lib\nversion: 1.0.0\ntype: library\n",
    )]);
    assert!(
        render(&c, &json!({}), &opts())
            .unwrap_err()
            .to_string()
            .contains("library charts are not installable")
    );
}

#[test]
fn runaway_templates_fail_within_their_deadline_and_budget() {
    // Two nested 3000-step loops: 9 million iterations, far beyond any real chart.
    let (_d, c) = chart(&[
        APP,
        (
            "templates/loop.yaml",
            "{{ range until 3000 }}{{ range until 3000 }}{{ end }}{{ end }}",
        ),
    ]);
    let limit = std::time::Duration::from_millis(200);
    let started = std::time::Instant::now();
    let err = render(
        &c,
        &json!({}),
        &RenderOptions {
            time_limit: Some(limit),
            ..opts()
        },
    )
    .unwrap_err();
    let took = started.elapsed();
    assert!(err.to_string().contains("render deadline exceeded"), "{err}");
    assert!(err.to_string().contains("app/templates/loop.yaml"), "{err}");
    // The check runs every few thousand steps: well within a second of the deadline.
    assert!(took < limit + std::time::Duration::from_secs(1), "{took:?}");

    let (_d, c) = chart(&[
        APP,
        (
            "templates/big.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: big\ndata:\n  x: \"{{ range until 100000 }}0123456789{{ end }}\"\n",
        ),
    ]);
    let err = render(
        &c,
        &json!({}),
        &RenderOptions {
            max_output_bytes: Some(100_000),
            ..opts()
        },
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("exceeds its budget of 100000 bytes"),
        "{err}"
    );
    // The same chart renders without a budget (as `helm template` would).
    let r = render(&c, &json!({}), &opts());
    assert!(
        r.is_ok(),
        "{}",
        r.err()
            .map(|e| e.to_string())
            .unwrap_or_default()
            .chars()
            .take(300)
            .collect::<String>()
    );
}

/// A deploy render (`no_network_functions`) refuses `getHostByName`, also through
/// `tpl`; a plain render (`convoy template`, as Helm) still resolves.
#[test]
fn get_host_by_name_is_disabled_without_network_functions() {
    let (_d, c) = chart(&[
        APP,
        (
            "templates/cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  ip: {{ getHostByName \"localhost\" | quote }}\n  via: {{ tpl \"{{ getHostByName \\\"localhost\\\" }}\" . | quote }}\n",
        ),
    ]);
    let offline = RenderOptions {
        no_network_functions: true,
        ..opts()
    };
    let err = render(&c, &json!({}), &offline).unwrap_err().to_string();
    assert!(err.contains("getHostByName is disabled"), "{err}");
    let r = render(&c, &json!({}), &opts()).unwrap();
    assert!(
        r.manifests[0].content.contains("ip: \"127.0.0.1\"")
            || r.manifests[0].content.contains("ip: \"::1\""),
        "{}",
        r.manifests[0].content
    );
}

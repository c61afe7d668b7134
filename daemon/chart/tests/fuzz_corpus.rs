//! Replays the fuzz corpus (`fuzz/corpus/template`, the inputs found interesting or that
//! once broke the engine) through the fuzz target's entry point, `render_str`. Each input
//! must finish with output or an error: no panic, no stack overflow, no hang.

use std::path::Path;

fn replay(data: &[u8]) -> Result<String, String> {
    let text = String::from_utf8_lossy(data);
    let default = serde_json::json!({"a": {"b": [1, "x"]}});
    let (tpl, values) = match text.split_once('\0') {
        Some((t, v)) => (t, serde_json::from_str(v).unwrap_or(default)),
        None => (text.as_ref(), default),
    };
    convoy_chart::render_str("fuzz/templates/t.yaml", tpl, &values).map_err(|e| e.to_string())
}

#[test]
fn fuzz_corpus_replays_without_panics() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/template");
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    assert!(entries.len() >= 10, "corpus missing at {}", dir.display());
    for path in entries {
        let data = std::fs::read(&path).unwrap();
        let outcome = replay(&data);
        println!(
            "{}: {}",
            path.file_name().unwrap().to_string_lossy(),
            match &outcome {
                Ok(o) => format!("ok ({} bytes)", o.len()),
                Err(e) => format!("error: {}", e.chars().take(120).collect::<String>()),
            }
        );
    }
}

#[test]
fn known_inputs_give_the_expected_outcome() {
    assert_eq!(replay(b"{{ .Values.a.b }}").unwrap(), "[1 x]");
    assert!(
        replay(b"{{ define \"x\" }}{{ include \"x\" . }}{{ end }}{{ include \"x\" . }}")
            .unwrap_err()
            .contains("nested reference name: x")
    );
    assert!(
        replay(b"{{ __convoy_call 1 }}")
            .unwrap_err()
            .contains("function \"__convoy_call\" not defined")
    );
    assert!(replay(b"{{ template \"nope\" }}").unwrap_err().contains("nope"));
    assert!(
        replay(b"{{ if }}")
            .unwrap_err()
            .starts_with("parse error at (fuzz/templates/t.yaml:1)")
    );
}

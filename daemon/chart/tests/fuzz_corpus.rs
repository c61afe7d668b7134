//! Replays the fuzz corpora (`fuzz/corpus/<target>`: the seeds, and the inputs found
//! interesting or that once broke something) through each fuzz target's entry point:
//! `template` (`render_str`), `archive` (`Chart::load_archive_within` and a bounded
//! render) and `yaml` (`yaml_to_json`, `parse_values`). Each input must finish with
//! output or an error within its time: a panic, a stack overflow (the process dies) or
//! a hang fails the test, naming the input.

#[path = "support/replay.rs"]
mod replay;

use std::path::Path;
use std::time::Duration;

use replay::{Outcome, PER_INPUT, replay_within};

/// Replays `fuzz/corpus/<target>` of this crate.
fn replay(target: &str, min: usize, f: fn(&[u8]) -> Result<String, String>) -> Vec<(String, Outcome)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    replay_within(&dir, target, min, f, PER_INPUT)
}

fn template(data: &[u8]) -> Result<String, String> {
    let text = String::from_utf8_lossy(data);
    let default = serde_json::json!({"a": {"b": [1, "x"]}});
    let (tpl, values) = match text.split_once('\0') {
        Some((t, v)) => (t, serde_json::from_str(v).unwrap_or(default)),
        None => (text.as_ref(), default),
    };
    convoy_chart::render_str("fuzz/templates/t.yaml", tpl, &values).map_err(|e| e.to_string())
}

fn archive(data: &[u8]) -> Result<String, String> {
    let chart = convoy_chart::Chart::load_archive_within(data, &convoy_chart::LoadLimits::default())
        .map_err(|e| e.to_string())?;
    let opts = convoy_chart::RenderOptions {
        release_name: "fuzz".into(),
        namespace: "default".into(),
        time_limit: Some(Duration::from_secs(2)),
        max_output_bytes: Some(16 << 20),
        no_network_functions: true,
        ..Default::default()
    };
    let r = convoy_chart::render(&chart, &serde_json::json!({}), &opts).map_err(|e| e.to_string())?;
    Ok(format!("{} objects", r.manifests.len()))
}

fn yaml(data: &[u8]) -> Result<String, String> {
    let text = String::from_utf8_lossy(data);
    let json = convoy_chart::values::yaml_to_json(&text, "fuzz.yaml").map_err(|e| e.to_string())?;
    convoy_chart::values::parse_values(&text, "fuzz.yaml").map_err(|e| e.to_string())?;
    Ok(json.to_string())
}

#[test]
fn template_corpus_replays_without_panics_or_hangs() {
    replay("template", 10, template);
}

#[test]
fn archive_corpus_replays_without_panics_or_hangs() {
    let outcomes = replay("archive", 5, archive);
    let of = |n: &str| &outcomes.iter().find(|(name, _)| name.ends_with(n)).unwrap().1;
    // The seeds load and render; the broken ones are refused with a reason.
    assert!(of("/app1.tgz").is_ok(), "{:?}", of("/app1.tgz"));
    assert_eq!(of("/archived-subchart.tgz"), &Ok("1 objects".to_string()));
    assert!(
        of("/escape.tgz")
            .as_ref()
            .unwrap_err()
            .contains("escapes the chart directory")
    );
    assert!(
        of("/not-gzip")
            .as_ref()
            .unwrap_err()
            .contains("invalid gzip header")
    );
    assert!(
        of("/truncated.tgz")
            .as_ref()
            .unwrap_err()
            .contains("incomplete deflate stream")
    );
}

#[test]
fn yaml_corpus_replays_without_panics_or_hangs() {
    let outcomes = replay("yaml", 3, yaml);
    assert!(
        outcomes.iter().filter(|(_, o)| o.is_ok()).count() >= 3,
        "{outcomes:?}"
    );
}

#[test]
fn the_replay_fails_on_a_panic_and_on_a_hang() {
    fn panics(_: &[u8]) -> Result<String, String> {
        panic!("boom")
    }
    fn hangs(_: &[u8]) -> Result<String, String> {
        std::thread::sleep(Duration::from_secs(5));
        Ok(String::new())
    }
    let message = |f, limit| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/yaml");
        let caught = std::panic::catch_unwind(|| replay_within(&dir, "yaml", 1, f, limit)).unwrap_err();
        caught.downcast_ref::<String>().cloned().unwrap_or_default()
    };
    let panicked = message(panics, PER_INPUT);
    assert!(
        panicked.contains("yaml/") && panicked.contains("panicked"),
        "{panicked}"
    );
    let hung = message(hangs, Duration::from_millis(200));
    assert!(hung.contains("yaml/") && hung.contains("(a hang)"), "{hung}");
}

#[test]
fn known_inputs_give_the_expected_outcome() {
    assert_eq!(template(b"{{ .Values.a.b }}").unwrap(), "[1 x]");
    assert!(
        template(b"{{ define \"x\" }}{{ include \"x\" . }}{{ end }}{{ include \"x\" . }}")
            .unwrap_err()
            .contains("nested reference name: x")
    );
    assert!(
        template(b"{{ __convoy_call 1 }}")
            .unwrap_err()
            .contains("function \"__convoy_call\" not defined")
    );
    assert!(template(b"{{ template \"nope\" }}").unwrap_err().contains("nope"));
    assert!(
        template(b"{{ if }}")
            .unwrap_err()
            .starts_with("parse error at (fuzz/templates/t.yaml:1)")
    );
}

//! Fuzzes the template engine: arbitrary template text (and, after a NUL byte, a JSON
//! values document) through `convoy_chart::render_str`, the entry point the corpus
//! replay test (`tests/fuzz_corpus.rs`) also uses. Any panic, abort or hang is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let default = serde_json::json!({"a": {"b": [1, "x"]}});
    let (tpl, values) = match text.split_once('\0') {
        Some((t, v)) => (t, serde_json::from_str(v).unwrap_or(default)),
        None => (text.as_ref(), default),
    };
    let _ = convoy_chart::render_str("fuzz/templates/t.yaml", tpl, &values);
});

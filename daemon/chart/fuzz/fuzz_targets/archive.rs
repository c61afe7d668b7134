//! Fuzzes chart archives: arbitrary bytes through `Chart::load_archive_within` with the
//! coordinator's default bounds (the entry point a submitted `.tgz` meets), then, when
//! a chart loads, a render bounded as the coordinator bounds it. Any panic, abort, hang
//! or allocation beyond the bounds is a bug. `tests/fuzz_corpus.rs` replays the corpus.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(chart) = convoy_chart::Chart::load_archive_within(data, &convoy_chart::LoadLimits::default()) {
        let opts = convoy_chart::RenderOptions {
            release_name: "fuzz".into(),
            namespace: "default".into(),
            time_limit: Some(std::time::Duration::from_secs(2)),
            max_output_bytes: Some(16 << 20),
            no_network_functions: true,
            ..Default::default()
        };
        let _ = convoy_chart::render(&chart, &serde_json::json!({}), &opts);
    }
});

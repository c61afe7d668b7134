//! Fuzzes the agent's manifest parsers: arbitrary text (several manifests, split at NUL
//! bytes) through `kube::manifest::parse` (the objects it applies) and `hooks::parse`
//! (Helm hooks). Any panic, abort or hang is a bug; a bad document must come back as a
//! refusal naming it. `agent/tests/manifest_corpus.rs` replays the corpus the same way.
#![no_main]

use convoy_agent::backend::Manifest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let manifests: Vec<Manifest> = text
        .split('\0')
        .map(|content| Manifest {
            source: "fuzz/templates/t.yaml".into(),
            content: content.into(),
        })
        .collect();
    let _ = convoy_agent::kube::manifest::parse(&manifests);
    let _ = convoy_agent::hooks::parse(&manifests);
});

//! Replays the manifest fuzz corpus (`fuzz/corpus/manifest`: seeds and what the fuzzer
//! found) through the agent's manifest parsers, as the fuzz target does: a panic or a
//! hang fails the test naming the input; a bad document is refused naming its source
//! and position.

#[path = "../../daemon/chart/tests/support/replay.rs"]
mod replay;

use std::path::Path;

use convoy_agent::backend::Manifest;

fn parse(data: &[u8]) -> replay::Outcome {
    let text = String::from_utf8_lossy(data);
    let manifests: Vec<Manifest> = text
        .split('\0')
        .map(|content| Manifest {
            source: "fuzz/templates/t.yaml".into(),
            content: content.into(),
        })
        .collect();
    let hooks = convoy_agent::hooks::parse(&manifests).map_err(|f| f.message.clone())?;
    let objects = convoy_agent::kube::manifest::parse(&manifests).map_err(|f| f.message)?;
    Ok(format!("{} objects, {} hooks", objects.len(), hooks.len()))
}

#[test]
fn manifest_corpus_replays_without_panics_or_hangs() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/manifest");
    let outcomes = replay::replay_within(&dir, "manifest", 4, parse, replay::PER_INPUT);
    let of = |n: &str| &outcomes.iter().find(|(name, _)| name.ends_with(n)).unwrap().1;
    assert!(of("/deployment.yaml").is_ok(), "{:?}", of("/deployment.yaml"));
    let missing = of("/missing-fields").as_ref().unwrap_err();
    assert!(
        missing.contains("fuzz/templates/t.yaml (document 1)"),
        "{missing}"
    );
}

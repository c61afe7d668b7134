//! Differential corpus: `tests/difftest/corpus/*.json` are templates with values and what Go
//! itself (the oracle, `oracle/main.go`: Go's text/template, sprig, Helm's functions) rendered
//! for them. `corpus_matches_go` replays each through `render_str`: same output, or both
//! errors (messages are not compared). `recorded_results_are_still_what_go_says` re-runs the
//! oracle over the corpus so that the goldens cannot drift; it needs Go (skipped without it,
//! except in CI, where Go is installed and a missing oracle is a failure).
//!
//! Add cases with the fuzzer (`--import` / `--record` / `--fill`, see `oracle/README.md`).

#[path = "difftest/harness.rs"]
mod harness;

use std::sync::mpsc;
use std::time::Duration;

use harness::{Case, LineChild, Outcome, Reply};

/// convoy's result for one case, on its own thread so that a hang is reported, not waited for.
fn convoy_outcome(case: &Case) -> Outcome {
    let (tx, rx) = mpsc::channel();
    let (name, src, values) = (case.name.clone(), case.src.clone(), case.values.clone());
    std::thread::spawn(move || {
        let _ = tx.send(harness::render_convoy(&name, &src, &values));
    });
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(o) => o,
        Err(mpsc::RecvTimeoutError::Timeout) => Outcome::Err("TIMEOUT: no result in 20 s".into()),
        Err(mpsc::RecvTimeoutError::Disconnected) => Outcome::Err("PANIC: the render thread died".into()),
    }
}

fn label(case: &Case) -> String {
    case.file
        .file_name()
        .map(|f| f.to_string_lossy().to_string())
        .unwrap_or_default()
}

/// Cases where convoy knowingly differs from Go, by class. The test fails on any other
/// divergence, and on a listed case that no longer diverges (the list stays honest).
const KNOWN: &[(&str, &str)] = &[
    ("146-", ERROR_TEXT),
    ("231-", ERROR_TEXT),
    ("232-", ERROR_TEXT),
    ("233-", ERROR_TEXT),
    ("168-", GO_TYPES),
    ("174-", GO_TYPES),
    ("229-", GO_TYPES),
    ("230-", GO_TYPES),
    ("237-", GO_TYPES),
    ("238-", GO_TYPES),
    ("244-", GO_TYPES),
    ("245-", GO_TYPES),
    ("246-", GO_TYPES),
    ("254-", GO_TYPES),
    ("243-", NIL_SLICE),
    ("247-", LENIENT_ARGS),
    ("248-", LENIENT_ARGS),
    (
        "249-",
        "printf %x/%X of a float (hexadecimal mantissa and exponent) is not implemented",
    ),
    (
        "251-",
        "toYamlPretty: go-yaml v3's emitter neither folds long strings nor adds a blank line before an indented block",
    ),
];

const ERROR_TEXT: &str = "the text of a parser's error carried inside the result (fromJson, fromYaml, b64dec): \
    Go's encoding/json, go-yaml and encoding/base64 word it and count offsets differently; that it fails matches";
const GO_TYPES: &str = "Go's typed results: sprig returns int64 (add, sub, mod, max), []int (until), []string \
    (splitList, sortAlpha), map[string]string (split), uint8 (index of a string); convoy's values have one integer \
    kind and untyped lists and maps, so typeOf/kindOf differ, and where Go refuses an int64 for an int (or a \
    map[string]string for a dict) convoy accepts: no chart that renders in Helm fails here";
const NIL_SLICE: &str =
    "Go's nil slices (rest/initial of a short list) print [] but serialize as null; convoy has no nil list";
const LENIENT_ARGS: &str = "Go converts an integral float constant (1e3, 2.0) for an int parameter, and sprig's slice \
    casts string/bool/nil indexes; convoy refuses them";

#[test]
fn corpus_matches_go() {
    let cases = harness::load_corpus(&harness::corpus_dir()).expect("corpus loads");
    assert!(cases.len() >= 100, "corpus has only {} cases", cases.len());
    let mut divergences = Vec::new();
    for case in &cases {
        let Some(go) = &case.go else {
            panic!("{}: no recorded Go result (run difffuzz --fill)", label(case));
        };
        let ours = convoy_outcome(case);
        if !go.agrees_with(&ours) {
            let kind = match (go, &ours) {
                (Outcome::Out(_), Outcome::Out(_)) => "output differs",
                (Outcome::Err(_), Outcome::Out(_)) => "Go fails, convoy renders",
                _ => "convoy fails, Go renders",
            };
            println!("DIVERGENCE {}: {kind}", label(case));
            println!("    src:    {:?}", harness::shorten(&case.src, 300));
            if let Some(note) = &case.note {
                println!("    note:   {note}");
            }
            println!("    go:     {}", go.short());
            println!("    convoy: {}", ours.short());
            divergences.push(label(case));
        }
    }
    println!(
        "difftest: {} of {} corpus cases match Go, {} diverge",
        cases.len() - divergences.len(),
        cases.len(),
        divergences.len()
    );
    let known = |d: &String| KNOWN.iter().find(|(prefix, _)| d.starts_with(prefix));
    let mut by_reason: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for d in &divergences {
        if let Some((_, reason)) = known(d) {
            *by_reason.entry(reason).or_default() += 1;
        }
    }
    for (reason, n) in &by_reason {
        println!("  {n} known: {reason}");
    }
    let unknown: Vec<&String> = divergences.iter().filter(|d| known(d).is_none()).collect();
    let stale: Vec<&str> = KNOWN
        .iter()
        .map(|(prefix, _)| *prefix)
        .filter(|prefix| !divergences.iter().any(|d| d.starts_with(prefix)))
        .collect();
    assert!(
        unknown.is_empty(),
        "{} of {} cases diverge from Go outside the known list: {unknown:?}",
        unknown.len(),
        cases.len()
    );
    assert!(
        stale.is_empty(),
        "listed as known divergences but now match Go (remove them from KNOWN): {stale:?}"
    );
}

#[test]
fn recorded_results_are_still_what_go_says() {
    let in_ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty());
    let oracle = match harness::oracle_binary() {
        Ok(p) => p,
        Err(e) if in_ci => panic!("CI is set but the Go oracle cannot be built: {e}"),
        Err(e) => {
            println!("skipped: no Go oracle ({e}); run .ci/install-deps to get Go");
            return;
        }
    };
    let cases = harness::load_corpus(&harness::corpus_dir()).expect("corpus loads");
    let mut go = LineChild::new(&oracle, &[], Duration::from_secs(60));
    let mut drifted = Vec::new();
    for case in &cases {
        let now = match go.request(&case.request()) {
            Reply::Line(v) => Outcome::from_json(&v),
            other => panic!("{}: oracle failed: {other:?}", label(case)),
        };
        if now.as_ref() != case.go.as_ref() {
            println!("DRIFT {}:", label(case));
            println!(
                "    recorded: {}",
                case.go.as_ref().map(Outcome::short).unwrap_or_default()
            );
            println!(
                "    Go now:   {}",
                now.as_ref().map(Outcome::short).unwrap_or_default()
            );
            drifted.push(label(case));
        }
    }
    println!(
        "difftest goldens: {} of {} recorded Go results confirmed",
        cases.len() - drifted.len(),
        cases.len()
    );
    assert!(
        drifted.is_empty(),
        "recorded Go results differ from the oracle for {}: refresh with `difffuzz --fill {} --force` if the oracle changed on purpose",
        drifted.join(", "),
        harness::corpus_dir().display()
    );
}

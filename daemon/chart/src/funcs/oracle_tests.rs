//! Differential tests against Go itself: `testdata/go_oracle.jsonl` holds what Go 1.19's
//! `fmt`, `encoding/json` and `time`, and `Masterminds/semver` v3.4.0 (the version Helm 3
//! pins) return for a corpus of edge cases; one `[input, result]` row per line, produced by a
//! small Go program calling exactly the functions named by `mode`.

use std::cmp::Ordering;

use super::conv::{format_float_g, format_float_json};
use super::gotime::{GoTime, duration_string, parse_duration};
use super::semver::{Constraints, Version};

fn ours(input: &serde_json::Value) -> String {
    let s = |k: &str| input[k].as_str().unwrap_or_default();
    match input["mode"].as_str().unwrap_or_default() {
        "semverCompare" => match (Constraints::parse(s("a")), Version::parse(s("b"))) {
            (Ok(c), Ok(v)) => c.matches(&v).to_string(),
            _ => "ERROR".into(),
        },
        "versionCompare" => match (Version::parse(s("a")), Version::parse(s("b"))) {
            (Ok(a), Ok(b)) => match a.compare(&b) {
                Ordering::Less => "-1",
                Ordering::Equal => "0",
                Ordering::Greater => "1",
            }
            .into(),
            _ => "ERROR".into(),
        },
        // The float travels as text: serde_json's own float parsing is not correctly rounded.
        "floatV" => format_float_g(s("f").parse().unwrap_or_default()),
        "floatJSON" => format_float_json(s("f").parse().unwrap_or_default()),
        "timeFormat" => GoTime::utc(input["n"].as_i64().unwrap_or_default(), 123_456_789).format(s("a")),
        "timeParse" => match GoTime::parse(s("a"), s("b")) {
            Ok(t) => format!("{} {}", t.secs, t.nanos),
            Err(_) => "ERROR".into(),
        },
        "duration" => match parse_duration(s("a")) {
            Ok(d) => format!("{d} {}", duration_string(d)),
            Err(_) => "ERROR".into(),
        },
        "durationString" => duration_string(i128::from(input["n"].as_i64().unwrap_or_default())),
        other => format!("unknown mode {other}"),
    }
}

#[test]
fn matches_go_and_masterminds_semver() {
    let text = include_str!("testdata/go_oracle.jsonl");
    let mut failures = Vec::new();
    let mut total = 0;
    for line in text.lines() {
        let row: serde_json::Value = serde_json::from_str(line).expect("row is JSON");
        let want = row[1].as_str().unwrap_or_default();
        let got = ours(&row[0]);
        total += 1;
        if got != want {
            failures.push(format!("{}\n    want {want:?}\n    got  {got:?}", row[0]));
        }
    }
    for f in &failures {
        println!("MISMATCH {f}");
    }
    println!("go oracle: {} of {total} rows match", total - failures.len());
    assert!(failures.is_empty(), "{} rows differ from Go", failures.len());
}

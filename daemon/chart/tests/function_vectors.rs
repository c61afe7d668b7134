//! Runs every sprig v3.3.0 and Helm v3.21.4 function vector (tests/conformance/helm/
//! engine-vectors) through convoy's Go template engine with `convoy_chart::funcs::function_map()`.
//!
//! A row passes when the output equals Helm's byte for byte (or, for `expect_error` rows,
//! when execution fails). Rows that cannot apply to this engine are listed in [`SKIPS`] with
//! the reason; the test fails if a row outside that list fails, if a listed row passes
//! (the list must stay honest), or if a file's pass rate drops below 95%.

use std::collections::BTreeMap;
use std::sync::Arc;

use convoy_chart::funcs::function_map;
use convoy_chart::tmpl::{MissingKey, Set, Value};

/// (vector file, line in the Go test, reason the row is not run here).
const SKIPS: &[(&str, u32, &str)] = &[
    // Rows that do not apply to Helm on Linux at all (left out of the pass-rate denominator).
    ("functions_test.go", 18, NOT_IN_HELM),
    ("functions_test.go", 26, NOT_IN_HELM),
    ("functions_windows_test.go", 10, WINDOWS_ONLY),
    ("functions_windows_test.go", 14, WINDOWS_ONLY),
    ("functions_windows_test.go", 18, WINDOWS_ONLY),
    ("functions_windows_test.go", 23, WINDOWS_ONLY),
    // Rows this engine cannot reproduce.
    (
        "functions_test.go",
        83,
        "random: the expected text is Go's math/rand sequence for a fixed seed",
    ),
    ("reflect_test.go", 14, GO_STRUCT),
    ("reflect_test.go", 23, GO_STRUCT),
    ("reflect_test.go", 33, GO_STRUCT),
    ("reflect_test.go", 41, GO_STRUCT),
    ("reflect_test.go", 59, GO_STRUCT),
    ("reflect_test.go", 66, GO_STRUCT),
    // Helm functions that need the render context belong to the chart engine, not here.
    (
        "helm",
        125,
        "render context: `lookup` is provided by the chart engine (empty map, as in `helm template`)",
    ),
];

const NOT_IN_HELM: &str = "not-in-helm: Helm deletes env and expandenv from sprig's map";
const WINDOWS_ONLY: &str = "windows-only: filepath with backslashes; Helm on Linux gives the Unix result";
const GO_STRUCT: &str =
    "go-typed-vars: the data is a Go struct or pointer, which template data from YAML/JSON can never be";

/// Skip reasons for rows that cannot apply to Helm on Linux; they are left out of the rate.
fn not_applicable(reason: &str) -> bool {
    reason == NOT_IN_HELM || reason == WINDOWS_ONLY
}

/// Rows whose Go test data is a typed Go value; here the same value in this engine's
/// representation (a `time.Time` travels as Go's `Time.String()` text, produced by the
/// engine's own `date`/`dateModify`). Each entry: (file, line, template producing `.Time`).
const GO_TYPED_DATA: &[(&str, u32, &str)] = &[
    // tm = time.Unix(1560458379, 0); `&tm` is the same value through a pointer.
    ("date_test.go", 45, TM),
    ("date_test.go", 58, TM),
    ("date_test.go", 63, TM),
    ("date_test.go", 90, TM),
    // time.Now().Add(d)
    ("date_test.go", 18, r#"{{ now | dateModify "-125s" }}"#),
    ("date_test.go", 22, r#"{{ now | dateModify "-2h34m17s" }}"#),
    ("date_test.go", 26, r#"{{ now | dateModify "5s" }}"#),
];

const TM: &str = r#"{{ date "2006-01-02 15:04:05.999999999 -0700 MST" 1560458379 }}"#;

fn vectors_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance/helm/engine-vectors")
}

/// JSON test data as Go's literals give it: integers are `int`, other numbers `float64`.
fn json_to_value(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or(0.0)),
        },
        serde_json::Value::String(s) => Value::String(s.as_str().into()),
        serde_json::Value::Array(a) => Value::list(a.iter().map(json_to_value).collect()),
        serde_json::Value::Object(o) => {
            let m: BTreeMap<Arc<str>, Value> = o
                .iter()
                .map(|(k, v)| (Arc::from(k.as_str()), json_to_value(v)))
                .collect();
            Value::map(m)
        }
    }
}

/// Sprig's own tests run with Go's default `missingkey` (a missing key is no value).
fn render(tpl: &str, data: &Value) -> Result<String, String> {
    let mut set = Set::new(function_map()).missing_key(MissingKey::Invalid);
    set.add("test", tpl)?;
    set.execute("test", data)
}

fn empty_map() -> Value {
    Value::empty_map()
}

#[derive(Default)]
struct Tally {
    total: usize,
    passed: usize,
    skipped: usize,
    not_applicable: usize,
    unexpected: Vec<String>,
    stale_skips: Vec<String>,
}

fn run_file(rel: &str, file_of: impl Fn(&serde_json::Value) -> String) -> Tally {
    let path = vectors_dir().join(rel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let doc: serde_json::Value = serde_json::from_str(&text).expect("vector file is JSON");
    let rows = doc["vectors"].as_array().expect("`vectors` is an array");
    let mut t = Tally::default();
    for row in rows {
        t.total += 1;
        let file = file_of(row);
        let line = row["line"].as_u64().unwrap_or(0) as u32;
        let tpl = row["tpl"].as_str().unwrap_or_default();
        let expect = row["expect"].as_str().unwrap_or_default();
        let expect_error = row["expect_error"].as_bool().unwrap_or(false);
        let data = match GO_TYPED_DATA.iter().find(|(f, l, _)| *f == file && *l == line) {
            Some((_, _, producer)) => {
                let time = render(producer, &empty_map()).expect("data producer renders");
                let mut m = BTreeMap::new();
                m.insert(Arc::from("Time"), Value::String(time.into()));
                Value::map(m)
            }
            None => match row.get("vars") {
                Some(v) => json_to_value(v),
                None => empty_map(),
            },
        };
        let result = render(tpl, &data);
        let ok = match (&result, expect_error) {
            (Ok(out), false) => out == expect,
            (Err(_), true) => true,
            _ => false,
        };
        let skip = SKIPS.iter().find(|(f, l, _)| *f == file && *l == line);
        match (ok, skip) {
            (true, None) => t.passed += 1,
            (true, Some((_, _, reason))) => t.stale_skips.push(format!(
                "{file}:{line} is listed as skipped ({reason}) but passes: {tpl:?}"
            )),
            (false, Some((_, _, reason))) => {
                t.skipped += 1;
                if not_applicable(reason) {
                    t.not_applicable += 1;
                }
            }
            (false, None) => t.unexpected.push(format!(
                "{file}:{line}: {tpl:?}\n    want {}{expect:?}\n    got  {result:?}",
                if expect_error { "an error, " } else { "" }
            )),
        }
    }
    t
}

/// Prints the counts; returns the pass rate over the rows that apply to Helm on Linux.
fn report(name: &str, t: &Tally) -> f64 {
    let applicable = t.total - t.not_applicable;
    let rate = t.passed as f64 / applicable as f64 * 100.0;
    println!(
        "{name}: {} of {} applicable rows pass ({rate:.1}%); {} rows in the file, {} skipped \
         with a listed reason ({} of them not applicable to Helm on Linux)",
        t.passed, applicable, t.total, t.skipped, t.not_applicable
    );
    for u in &t.unexpected {
        println!("UNEXPECTED FAILURE {u}");
    }
    for s in &t.stale_skips {
        println!("STALE SKIP {s}");
    }
    rate
}

#[test]
fn sprig_and_helm_function_vectors() {
    let sprig = run_file("sprig-v3.3.0/runt_vectors.json", |row| {
        row["file"].as_str().unwrap_or_default().to_string()
    });
    let helm = run_file("helm-v3.21.4/funcs_vectors.json", |_| "helm".to_string());
    let sprig_rate = report("sprig v3.3.0", &sprig);
    let helm_rate = report("helm v3.21.4", &helm);
    let problems =
        sprig.unexpected.len() + sprig.stale_skips.len() + helm.unexpected.len() + helm.stale_skips.len();
    assert_eq!(
        problems, 0,
        "rows failed outside the skip list, or listed rows pass (see output)"
    );
    assert!(sprig_rate >= 95.0, "sprig pass rate {sprig_rate:.1}% < 95%");
    assert!(helm_rate >= 95.0, "helm pass rate {helm_rate:.1}% < 95%");
}

/// JSON data as Helm holds it after a YAML/JSON read: every number is a float64.
fn json_to_helm_value(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Number(n) => Value::Float(n.as_f64().unwrap_or(0.0)),
        serde_json::Value::Array(a) => Value::list(a.iter().map(json_to_helm_value).collect()),
        serde_json::Value::Object(o) => {
            let m: BTreeMap<Arc<str>, Value> = o
                .iter()
                .map(|(k, v)| (Arc::from(k.as_str()), json_to_helm_value(v)))
                .collect();
            Value::map(m)
        }
        other => json_to_value(other),
    }
}

/// Differential rows from the real `sigs.k8s.io/yaml` v1.4.0 (go-yaml v2), which Helm uses
/// for `toYaml` and for reading YAML: `tests/function_vectors/goyaml_v2.jsonl`, one
/// `[{"mode": "marshal"|"unmarshal", "v": ...}, result]` per line, where `result` is
/// `yaml.Marshal(v)`, or `json.Marshal` of `yaml.Unmarshal(v)`, or `"ERROR: ..."`.
/// (Generated by a 60-line Go program feeding a corpus of quoting, folding, number, key-order
/// and YAML 1.1 edge cases through those two calls.) Error rows only need an error here.
/// Inputs where this engine knowingly differs from go-yaml, with the reason.
const GOYAML_DEVIATIONS: &[(&str, &str)] = &[(
    "\ta: 1",
    "yaml-rust2 accepts a tab before a block key; libyaml rejects it (\"found character that cannot start any token\")",
)];

#[test]
fn yaml_matches_go_yaml_v2() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/function_vectors/goyaml_v2.jsonl");
    let text = std::fs::read_to_string(&path).expect("golden file");
    let (mut total, mut passed) = (0, 0);
    let mut failures = Vec::new();
    for line in text.lines() {
        let row: serde_json::Value = serde_json::from_str(line).expect("row is JSON");
        let (input, want) = (&row[0], row[1].as_str().unwrap_or_default());
        let got: Result<String, String> = match input["mode"].as_str() {
            Some("marshal") => convoy_chart::funcs::to_yaml_string(&json_to_helm_value(&input["v"])),
            _ => {
                let src = input["v"].as_str().unwrap_or_default();
                convoy_chart::funcs::parse_yaml(src).and_then(|v| {
                    render("{{ mustToJson . }}", &v)
                        .map(|s| if matches!(v, Value::Nil) { "null".into() } else { s })
                })
            }
        };
        total += 1;
        if let Some((_, reason)) = GOYAML_DEVIATIONS
            .iter()
            .find(|(src, _)| input["v"].as_str() == Some(src))
        {
            assert!(
                got.as_deref().ok() != Some(want),
                "deviation {input} ({reason}) now matches go-yaml: remove it from the list"
            );
            println!("KNOWN DEVIATION {input}: {reason}");
            continue;
        }
        let ok = match &got {
            Ok(out) => out == want,
            Err(_) => want.starts_with("ERROR: "),
        };
        if ok {
            passed += 1;
        } else {
            failures.push(format!("{input}\n    want {want:?}\n    got  {got:?}"));
        }
    }
    println!(
        "go-yaml differential: {passed} of {total} rows match ({} known deviations)",
        GOYAML_DEVIATIONS.len()
    );
    for f in &failures {
        println!("MISMATCH {f}");
    }
    assert!(
        failures.is_empty(),
        "{} rows differ from go-yaml (see output)",
        failures.len()
    );
}

/// Differential rows from the real sprig v3.3.0 (with Masterminds/semver v3.4.0, as Helm
/// builds it) under Go's text/template: `tests/function_vectors/sprig_oracle.jsonl`, one
/// `[{"tpl": ..., "data": <json>}, output]` per line (`"ERROR: ..."` when Go fails; here any
/// error matches). Data numbers are float64, as Helm's values are. Rows whose output depends
/// on the machine's local time zone are only compared when it is UTC, as where they were made.
#[test]
fn functions_match_sprig_under_go() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/function_vectors/sprig_oracle.jsonl");
    let text = std::fs::read_to_string(&path).expect("oracle file");
    let local_is_utc = render(r#"{{ date "-0700" 0 }}"#, &Value::Nil).as_deref() == Ok("+0000");
    let (mut total, mut passed, mut tz_skipped) = (0, 0, 0);
    let mut failures = Vec::new();
    let mut deviations: BTreeMap<&str, usize> = BTreeMap::new();
    for line in text.lines() {
        let row: serde_json::Value = serde_json::from_str(line).expect("row is JSON");
        let (input, want) = (&row[0], row[1].as_str().unwrap_or_default());
        let tpl = input["tpl"].as_str().unwrap_or_default();
        if !local_is_utc && (tpl.contains("date ") || tpl.contains("htmlDate ") || tpl.contains("Local")) {
            tz_skipped += 1;
            continue;
        }
        total += 1;
        let got = render(tpl, &json_to_helm_value(&input["data"]));
        let ok = match &got {
            Ok(out) => out == want,
            Err(_) => want.starts_with("ERROR: "),
        };
        if ok {
            passed += 1;
            continue;
        }
        match deviation(tpl, want, got.as_deref().unwrap_or_default()) {
            Some(reason) => *deviations.entry(reason).or_insert(0) += 1,
            None => failures.push(format!(
                "{tpl}  data={}\n    want {want:?}\n    got  {got:?}",
                input["data"]
            )),
        }
    }
    println!(
        "sprig oracle: {passed} of {total} rows match exactly ({tz_skipped} skipped: local zone is not UTC)"
    );
    for (reason, n) in &deviations {
        println!("  {n} rows differ by a known engine difference: {reason}");
    }
    for f in &failures {
        println!("MISMATCH {f}");
    }
    assert!(
        failures.is_empty(),
        "{} rows differ from sprig (see output)",
        failures.len()
    );
}

/// The known engine differences a mismatching oracle row may show, each recognised by what
/// it does to the output; anything else fails the test.
fn deviation(tpl: &str, want: &str, got: &str) -> Option<&'static str> {
    if !tpl.is_ascii()
        && (want.contains('\u{fffd}')
            || ["nospace", "initials"].iter().any(|f| tpl.contains(f))
            || ["trunc", "substr", "abbrev"].iter().any(|f| tpl.contains(f)))
    {
        return Some(
            "Go cuts and reads these strings byte by byte (invalid UTF-8 in its output); strings here stay valid UTF-8",
        );
    }
    if want.replace("null", "[]") == got {
        return Some(
            "Go returns a nil slice (toJson: null); template values have no nil list, so it is an empty list ([])",
        );
    }
    if tpl.contains("b64dec") && want.contains("illegal base64 data") && got.contains("illegal base64 data") {
        return Some("the byte offset in b64dec's error text is counted differently");
    }
    None
}

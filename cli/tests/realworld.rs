//! Real-world Helm conformance: `convoy template` against manifests that real Helm rendered
//! in the charts' own CI.
//!
//! Runs the shared checker (`<clone>/../shared/conformance/realworld/check.py`, Python 3 +
//! PyYAML) with the built `convoy` over every suite beside it (DataDog's `datadog` chart
//! today; any suite added there is picked up), and over the suites in the folder named by
//! `CONVOY_REALWORLD_SUITES` when it is set (suites assembled locally from other public
//! charts: fetched chart data lives only in the steering repository's `shared/`, never in
//! this one). A suite passes when the checker exits 0 and its last line is
//! `N passed, 0 failed` with N the number of cases in the suite's `cases.json`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn shared_realworld() -> PathBuf {
    workspace().join("../shared/conformance/realworld")
}

/// The checker, or a panic that says what is missing and where it was looked for.
fn checker() -> PathBuf {
    let path = shared_realworld().join("check.py");
    assert!(
        path.is_file(),
        "the real-world conformance checker is missing: expected {} (shared/ is laid beside the \
         clone, at <clone>/../shared)",
        path.display()
    );
    let yaml = Command::new("python3").args(["-c", "import yaml"]).output();
    match yaml {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "{} needs PyYAML, and `python3 -c 'import yaml'` fails (run .ci/install-deps):\n{}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!("{} needs python3, which cannot be run: {e}", path.display()),
    }
    path
}

/// Folders directly under `dir` that hold a `cases.json`, sorted by name.
fn suite_folders(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.path().join("cases.json").is_file())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn case_count(suite: &Path) -> usize {
    let path = suite.join("cases.json");
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let spec: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
    spec["cases"]
        .as_array()
        .unwrap_or_else(|| panic!("{} has no \"cases\" array", path.display()))
        .len()
}

/// Runs the checker over one suite folder, prints what it says, and asserts that every case
/// passed.
fn check_suite(suite: &Path) {
    let checker = checker();
    assert!(
        suite.join("cases.json").is_file(),
        "no suite at {} (cases.json missing)",
        suite.display()
    );
    let cases = case_count(suite);
    let out = Command::new("python3")
        .arg(&checker)
        .arg(env!("CARGO_BIN_EXE_convoy"))
        .arg(suite)
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3 {}: {e}", checker.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("$ python3 {} convoy {}", checker.display(), suite.display());
    print!("{stdout}");
    if !stderr.trim().is_empty() {
        println!("stderr:\n{stderr}");
    }
    let last = stdout.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
    let want = format!("{cases} passed, 0 failed");
    assert!(
        out.status.success() && last.trim() == want,
        "{}: the checker exited with {} and ended with {last:?}, not {want:?}; failing cases above",
        suite.display(),
        out.status
    );
}

/// Checks every suite folder in `dir`; fails naming the suites with failing cases.
fn check_all(dir: &Path) -> usize {
    checker();
    let suites = suite_folders(dir);
    let mut failed = Vec::new();
    for name in &suites {
        let result = std::panic::catch_unwind(|| check_suite(&dir.join(name)));
        if result.is_err() {
            failed.push(name.clone());
        }
    }
    assert!(
        failed.is_empty(),
        "suites in {} with failing cases: {failed:?}",
        dir.display()
    );
    suites.len()
}

#[test]
fn shared_suites() {
    let dir = shared_realworld();
    checker();
    let suites = suite_folders(&dir);
    assert!(
        suites.iter().any(|s| s == "datadog"),
        "no datadog suite in {} (found {suites:?})",
        dir.display()
    );
    check_all(&dir);
}

#[test]
fn local_suites() {
    let Some(dir) = std::env::var_os("CONVOY_REALWORLD_SUITES") else {
        println!("CONVOY_REALWORLD_SUITES is not set: no local suites to run");
        return;
    };
    let n = check_all(Path::new(&dir));
    assert!(
        n > 0,
        "no suite (folder with cases.json) in {}",
        Path::new(&dir).display()
    );
}

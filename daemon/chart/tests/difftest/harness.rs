//! What the corpus replay (`tests/difftest.rs`) and the differential fuzzer
//! (`examples/difffuzz.rs`) share: the case format, the two outcomes, finding or building the
//! Go oracle (`oracle/main.go`), and a child process spoken to in JSON lines with a timeout.
//!
//! Included by both with `#[path]`; each uses part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Value as Json, json};

/// The template name every case renders under (as the fuzz target does).
pub const NAME: &str = "fuzz/templates/t.yaml";

/// Recorded error texts are cut to this many characters (Go's include-recursion error is
/// 170 KB); comparisons cut both sides the same way.
pub const ERR_CLIP: usize = 2000;

/// The chart crate's directory.
pub fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The replayed corpus.
pub fn corpus_dir() -> PathBuf {
    crate_dir().join("tests/difftest/corpus")
}

/// How a render ended: its output, or an error message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Out(String),
    Err(String),
}

impl Outcome {
    /// Reads `{"out": ...}` or `{"err": ...}`.
    pub fn from_json(v: &Json) -> Option<Outcome> {
        if let Some(o) = v.get("out").and_then(Json::as_str) {
            return Some(Outcome::Out(o.to_string()));
        }
        v.get("err").and_then(Json::as_str).map(|e| Outcome::Err(clip(e)))
    }

    pub fn to_json(&self) -> Json {
        match self {
            Outcome::Out(o) => json!({ "out": o }),
            Outcome::Err(e) => json!({ "err": clip(e) }),
        }
    }

    pub fn is_err(&self) -> bool {
        matches!(self, Outcome::Err(_))
    }

    /// Same output, or both errors (messages are not compared).
    pub fn agrees_with(&self, other: &Outcome) -> bool {
        match (self, other) {
            (Outcome::Out(a), Outcome::Out(b)) => a == b,
            (Outcome::Err(_), Outcome::Err(_)) => true,
            _ => false,
        }
    }

    /// One line for reports.
    pub fn short(&self) -> String {
        match self {
            Outcome::Out(o) => format!("out {}", shorten(&format!("{o:?}"), 200)),
            Outcome::Err(e) => format!("err {}", shorten(e, 200)),
        }
    }
}

/// `s` cut to [`ERR_CLIP`] characters, marked when cut.
pub fn clip(s: &str) -> String {
    if s.chars().count() <= ERR_CLIP {
        s.to_string()
    } else {
        let mut c: String = s.chars().take(ERR_CLIP).collect();
        c.push_str(" [...]");
        c
    }
}

/// `s` cut to `n` characters for a one-line report.
pub fn shorten(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let c: String = s.chars().take(n).collect();
        format!("{c}...")
    }
}

/// Every number as a float64, as Helm's values are (they come through JSON into
/// `interface{}`); the oracle decodes them the same way.
pub fn normalize_numbers(v: &Json) -> Json {
    convoy_chart::values::numbers_as_float64(v)
}

/// convoy's side: `render_str` with the values normalised as Helm reads them.
pub fn render_convoy(name: &str, src: &str, values: &Json) -> Outcome {
    match convoy_chart::render_str(name, src, &normalize_numbers(values)) {
        Ok(out) => Outcome::Out(out),
        Err(e) => Outcome::Err(clip(&e.to_string())),
    }
}

/// One corpus case: `{"name", "src", "values", "go": {"out"|"err"}, "note"?}`.
#[derive(Debug, Clone)]
pub struct Case {
    pub file: PathBuf,
    pub name: String,
    pub src: String,
    pub values: Json,
    pub go: Option<Outcome>,
    pub note: Option<String>,
}

impl Case {
    pub fn from_json(file: &Path, v: &Json) -> Result<Case, String> {
        let src = v
            .get("src")
            .and_then(Json::as_str)
            .ok_or_else(|| format!("{}: no \"src\"", file.display()))?;
        Ok(Case {
            file: file.to_path_buf(),
            name: v.get("name").and_then(Json::as_str).unwrap_or(NAME).to_string(),
            src: src.to_string(),
            values: v
                .get("values")
                .cloned()
                .unwrap_or_else(|| Json::Object(Map::new())),
            go: v.get("go").and_then(Outcome::from_json),
            note: v.get("note").and_then(Json::as_str).map(str::to_string),
        })
    }

    pub fn load(file: &Path) -> Result<Case, String> {
        let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
        let v: Json = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))?;
        Case::from_json(file, &v)
    }

    /// The file's JSON, fields in a readable order.
    pub fn to_pretty(&self) -> String {
        let mut m = Map::new();
        m.insert("name".into(), Json::String(self.name.clone()));
        if let Some(n) = &self.note {
            m.insert("note".into(), Json::String(n.clone()));
        }
        m.insert("src".into(), Json::String(self.src.clone()));
        m.insert("values".into(), self.values.clone());
        if let Some(g) = &self.go {
            m.insert("go".into(), g.to_json());
        }
        // serde_json's map is ordered by key; write the fields in the order above by hand.
        let mut out = String::from("{\n");
        let n = m.len();
        for (i, key) in ["name", "note", "src", "values", "go"]
            .iter()
            .filter(|k| m.contains_key(**k))
            .enumerate()
        {
            // Values on one line: they are data; the template and the result are what is read.
            let val = if *key == "values" {
                serde_json::to_string(&m[*key]).unwrap_or_default()
            } else {
                serde_json::to_string_pretty(&m[*key])
                    .unwrap_or_default()
                    .replace('\n', "\n  ")
            };
            out.push_str(&format!("  {key:?}: {val}{}\n", if i + 1 < n { "," } else { "" }));
        }
        out.push_str("}\n");
        out
    }

    /// The oracle request for this case.
    pub fn request(&self) -> String {
        request_line(&self.name, &self.src, &self.values)
    }
}

/// Every `*.json` case of `dir`, sorted by file name.
pub fn load_corpus(dir: &Path) -> Result<Vec<Case>, String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files.iter().map(|f| Case::load(f)).collect()
}

/// A JSON-lines request, values normalised to float64 numbers.
pub fn request_line(name: &str, src: &str, values: &Json) -> String {
    json!({ "name": name, "src": src, "values": normalize_numbers(values) }).to_string()
}

// ---------------------------------------------------------------------------------------
// The Go oracle binary.

/// The oracle binary: `$CONVOY_GO_ORACLE` if set, else built (or found up to date) by
/// `oracle/build.sh` into `$CONVOY_CACHE/go-oracle/oracle`. `Err` says why there is none
/// (typically: no `go`).
pub fn oracle_binary() -> Result<PathBuf, String> {
    if let Ok(p) = std::env::var("CONVOY_GO_ORACLE") {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!("CONVOY_GO_ORACLE={} does not exist", p.display()))
        };
    }
    let script = crate_dir().join("oracle/build.sh");
    let out = Command::new("bash")
        .arg(&script)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    if !out.status.success() {
        return Err(format!("{} failed ({})", script.display(), out.status));
    }
    let path = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .trim()
        .to_string();
    let p = PathBuf::from(path);
    if p.is_file() {
        Ok(p)
    } else {
        Err(format!("{} printed no binary path", script.display()))
    }
}

// ---------------------------------------------------------------------------------------
// A child process answering JSON lines.

/// What a request to a [`LineChild`] got.
#[derive(Debug)]
pub enum Reply {
    Line(Json),
    /// No answer in time; the child was killed (and is restarted on the next request).
    Timeout,
    /// The child died (or answered garbage); the tail of its stderr.
    Died(String),
}

/// A long-running child process: one JSON request line in, one JSON answer line out.
pub struct LineChild {
    program: PathBuf,
    args: Vec<String>,
    timeout: Duration,
    proc: Option<Running>,
    /// How many times the child had to be restarted.
    pub restarts: usize,
}

struct Running {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
    stderr: Arc<Mutex<String>>,
}

impl LineChild {
    pub fn new(program: &Path, args: &[&str], timeout: Duration) -> LineChild {
        LineChild {
            program: program.to_path_buf(),
            args: args.iter().map(|s| s.to_string()).collect(),
            timeout,
            proc: None,
            restarts: 0,
        }
    }

    pub fn set_timeout(&mut self, t: Duration) {
        self.timeout = t;
    }

    fn start(&mut self) -> std::io::Result<&mut Running> {
        if self.proc.is_none() {
            let mut child = Command::new(&self.program)
                .args(&self.args)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()?;
            let stdin = child
                .stdin
                .take()
                .ok_or_else(|| std::io::Error::other("no stdin"))?;
            let stdout = child
                .stdout
                .take()
                .ok_or_else(|| std::io::Error::other("no stdout"))?;
            let mut stderr_pipe = child
                .stderr
                .take()
                .ok_or_else(|| std::io::Error::other("no stderr"))?;
            let (tx, lines) = channel();
            std::thread::spawn(move || {
                let mut r = BufReader::new(stdout);
                loop {
                    let mut line = String::new();
                    match r.read_line(&mut line) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {
                            if tx.send(line).is_err() {
                                break;
                            }
                        }
                    }
                }
            });
            let stderr = Arc::new(Mutex::new(String::new()));
            let tail = stderr.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = stderr_pipe.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    if let Ok(mut t) = tail.lock() {
                        t.push_str(&String::from_utf8_lossy(&buf[..n]));
                        if t.len() > 8192 {
                            let cut = t.len() - 4096;
                            let cut = (cut..t.len()).find(|i| t.is_char_boundary(*i)).unwrap_or(0);
                            t.drain(..cut);
                        }
                    }
                }
            });
            self.proc = Some(Running {
                child,
                stdin,
                lines,
                stderr,
            });
        }
        self.proc
            .as_mut()
            .ok_or_else(|| std::io::Error::other("not started"))
    }

    fn kill(&mut self) -> String {
        let mut tail = String::new();
        if let Some(mut p) = self.proc.take() {
            let _ = p.child.kill();
            let _ = p.child.wait();
            // Give the stderr reader a moment to collect the last words.
            std::thread::sleep(Duration::from_millis(20));
            tail = p.stderr.lock().map(|t| t.clone()).unwrap_or_default();
            self.restarts += 1;
        }
        tail
    }

    /// Sends one request line, waits for the answer.
    pub fn request(&mut self, line: &str) -> Reply {
        let timeout = self.timeout;
        let sent = match self.start() {
            Ok(p) => p
                .stdin
                .write_all(line.as_bytes())
                .and_then(|_| p.stdin.write_all(b"\n"))
                .and_then(|_| p.stdin.flush()),
            Err(e) => return Reply::Died(format!("cannot start {}: {e}", self.program.display())),
        };
        if let Err(e) = sent {
            let tail = self.kill();
            return Reply::Died(format!("write failed: {e}; stderr: {tail}"));
        }
        let got = match self.proc.as_mut() {
            Some(p) => p.lines.recv_timeout(timeout),
            None => Err(RecvTimeoutError::Disconnected),
        };
        match got {
            Ok(l) => match serde_json::from_str(&l) {
                Ok(v) => Reply::Line(v),
                Err(e) => {
                    let tail = self.kill();
                    Reply::Died(format!("bad answer ({e}): {l:?}; stderr: {tail}"))
                }
            },
            Err(RecvTimeoutError::Timeout) => {
                self.kill();
                Reply::Timeout
            }
            Err(RecvTimeoutError::Disconnected) => {
                let tail = self.kill();
                Reply::Died(tail)
            }
        }
    }
}

impl Drop for LineChild {
    fn drop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
    }
}

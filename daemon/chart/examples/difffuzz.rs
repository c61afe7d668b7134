//! Differential fuzzer: random Helm templates rendered by Go (the oracle, `oracle/main.go`)
//! and by convoy (`convoy_chart::render_str`); every disagreement is a bug in one of them,
//! almost always ours. See `oracle/README.md`.
//!
//! ```text
//! cargo run --release -p convoy-chart --example difffuzz -- --seconds 600
//! cargo run --release -p convoy-chart --example difffuzz -- --cases 20000 --seed 7 --out /tmp/d
//! cargo run --release -p convoy-chart --example difffuzz -- --replay target/difffuzz/div-*.json
//! cargo run --release -p convoy-chart --example difffuzz -- --import seeds.jsonl --record tests/difftest/corpus
//! cargo run --release -p convoy-chart --example difffuzz -- --fill tests/difftest/corpus [--force]
//! cargo run --release -p convoy-chart --example difffuzz -- --bench tests/difftest/corpus/001-x.json --runs 2000
//! ```
//!
//! Each case is a template generated from a grammar of Go template constructs and chart
//! idioms, with random values (numbers as float64, as Helm reads them). Go's answer comes from
//! one long-running oracle process; convoy's from a long-running worker process (this program
//! with `--worker`), so that a hang (timeout) or a crash such as a stack overflow in the engine
//! under test is reported as a divergence instead of ending the run. Two results agree when
//! both rendered the same text or both failed (messages are not compared). Divergences are
//! minimised (actions, pipeline stages and values are dropped while the same kind of
//! disagreement remains), classified by kind and by the functions/keywords left in the
//! minimised template, written to `--out` (default `target/difffuzz`), and summarised.

#[path = "../tests/difftest/harness.rs"]
mod harness;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use harness::{Case, LineChild, NAME, Outcome, Reply, normalize_numbers, request_line, shorten};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value as Json, json};

// ---------------------------------------------------------------------------------------
// Command line.

struct Args {
    cases: Option<u64>,
    seconds: Option<u64>,
    seed: u64,
    out: PathBuf,
    record: Option<PathBuf>,
    timeout: Duration,
    worker: bool,
    replay: Vec<PathBuf>,
    import: Option<PathBuf>,
    fill: Option<PathBuf>,
    force: bool,
    bench: Option<PathBuf>,
    runs: usize,
    show: bool,
    minimize_budget: usize,
    files_per_class: usize,
    dump: Option<PathBuf>,
}

const USAGE: &str = "difffuzz [--cases N] [--seconds S] [--seed N] [--out DIR] [--record DIR]
         [--timeout-ms MS] [--minimize-budget N] [--files-per-class N] [--show]
difffuzz --replay FILE...            render case files with Go and convoy, print both
difffuzz --import FILE.jsonl --record DIR   write each {src, values, name?, note?} line as a corpus case with Go's result
difffuzz --fill DIR [--force]        add Go's result to corpus cases lacking one (--force: redo all)
difffuzz --bench FILE [--runs N]     median render time of one case, convoy (in process) vs Go
difffuzz --dump FILE [--cases N] [--seed N]   write the generated requests (JSON lines) only
The Go oracle is $CONVOY_GO_ORACLE, or built by daemon/chart/oracle/build.sh.";

fn parse_args() -> Args {
    let mut a = Args {
        cases: None,
        seconds: None,
        seed: 0,
        out: PathBuf::from("target/difffuzz"),
        record: None,
        timeout: Duration::from_secs(10),
        worker: false,
        replay: Vec::new(),
        import: None,
        fill: None,
        force: false,
        bench: None,
        runs: 1000,
        show: false,
        minimize_budget: 400,
        files_per_class: 10,
        dump: None,
    };
    let mut seed_given = false;
    let mut it = std::env::args().skip(1);
    let num = |v: Option<String>, flag: &str| -> u64 {
        v.and_then(|s| s.parse().ok())
            .unwrap_or_else(|| die(&format!("{flag} needs a number\n{USAGE}")))
    };
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--cases" => a.cases = Some(num(it.next(), "--cases")),
            "--seconds" => a.seconds = Some(num(it.next(), "--seconds")),
            "--seed" => {
                a.seed = num(it.next(), "--seed");
                seed_given = true;
            }
            "--out" => a.out = PathBuf::from(it.next().unwrap_or_else(|| die(USAGE))),
            "--record" => a.record = Some(PathBuf::from(it.next().unwrap_or_else(|| die(USAGE)))),
            "--timeout-ms" => a.timeout = Duration::from_millis(num(it.next(), "--timeout-ms")),
            "--minimize-budget" => a.minimize_budget = num(it.next(), "--minimize-budget") as usize,
            "--files-per-class" => a.files_per_class = num(it.next(), "--files-per-class") as usize,
            "--worker" => a.worker = true,
            "--replay" => {
                a.replay.extend(it.by_ref().map(PathBuf::from));
            }
            "--import" => a.import = Some(PathBuf::from(it.next().unwrap_or_else(|| die(USAGE)))),
            "--fill" => a.fill = Some(PathBuf::from(it.next().unwrap_or_else(|| die(USAGE)))),
            "--force" => a.force = true,
            "--bench" => a.bench = Some(PathBuf::from(it.next().unwrap_or_else(|| die(USAGE)))),
            "--runs" => a.runs = num(it.next(), "--runs") as usize,
            "--show" => a.show = true,
            "--dump" => a.dump = Some(PathBuf::from(it.next().unwrap_or_else(|| die(USAGE)))),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => die(&format!("unknown argument {other}\n{USAGE}")),
        }
    }
    if !seed_given {
        a.seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(1);
    }
    if a.cases.is_none() && a.seconds.is_none() {
        a.cases = Some(2000);
    }
    a
}

fn die(msg: &str) -> ! {
    eprintln!("{msg}");
    std::process::exit(2)
}

fn main() {
    let args = parse_args();
    if args.worker {
        worker();
        return;
    }
    if let Some(file) = &args.dump {
        // The generated requests only (to time or debug either side by hand).
        let n = args.cases.unwrap_or(1000);
        let lines: String = (0..n)
            .map(|i| {
                let (src, values) = gen_case(args.seed, i);
                request_line(NAME, &src, &values) + "\n"
            })
            .collect();
        std::fs::write(file, lines).unwrap_or_else(|e| die(&format!("{}: {e}", file.display())));
        return;
    }
    if !args.replay.is_empty() {
        replay(&args);
    } else if let Some(file) = &args.import {
        import(&args, file);
    } else if let Some(dir) = &args.fill {
        fill(&args, dir);
    } else if let Some(file) = &args.bench {
        bench(&args, file);
    } else {
        fuzz(&args);
    }
}

/// convoy's side as a child process: JSON lines in, `{"out"}`/`{"err"}` lines out.
fn worker() {
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        let Ok(req) = serde_json::from_str::<Json>(&line) else {
            let _ = writeln!(stdout, "{}", json!({"err": "bad request"}));
            continue;
        };
        let name = req["name"].as_str().unwrap_or(NAME);
        let src = req["src"].as_str().unwrap_or_default();
        let outcome = harness::render_convoy(name, src, &req["values"]);
        if writeln!(stdout, "{}", outcome.to_json())
            .and_then(|_| stdout.flush())
            .is_err()
        {
            break;
        }
    }
}

// ---------------------------------------------------------------------------------------
// The two renderers.

/// What one side said about one case.
#[derive(Debug, Clone, PartialEq)]
enum Said {
    Done(Outcome),
    /// Go's output is not valid UTF-8 (convoy's strings cannot be).
    InvalidUtf8(String),
    /// Go's output shows a pointer address (`0xc000123456`), which changes from run to run.
    Unstable(String),
    Timeout,
    Died(String),
}

struct Sides {
    go: LineChild,
    convoy: LineChild,
    go_failures: Vec<String>,
    /// Wall time spent waiting for each side.
    go_time: Duration,
    convoy_time: Duration,
}

impl Sides {
    fn start(timeout: Duration) -> Sides {
        let oracle = harness::oracle_binary().unwrap_or_else(|e| die(&format!("no Go oracle: {e}")));
        let me = std::env::current_exe().unwrap_or_else(|e| die(&format!("current_exe: {e}")));
        Sides {
            go: LineChild::new(&oracle, &[], timeout),
            convoy: LineChild::new(&me, &["--worker"], timeout),
            go_failures: Vec::new(),
            go_time: Duration::ZERO,
            convoy_time: Duration::ZERO,
        }
    }

    fn ask(child: &mut LineChild, req: &str) -> Said {
        match child.request(req) {
            Reply::Line(v) => match Outcome::from_json(&v) {
                Some(Outcome::Out(o)) if v["invalid_utf8"].as_bool() == Some(true) => Said::InvalidUtf8(o),
                Some(o) => Said::Done(o),
                None => Said::Died(format!("answer without out/err: {v}")),
            },
            Reply::Timeout => Said::Timeout,
            Reply::Died(tail) => Said::Died(tail),
        }
    }

    fn go(&mut self, req: &str) -> Said {
        let t = Instant::now();
        let mut said = Self::ask(&mut self.go, req);
        self.go_time += t.elapsed();
        // Go prints pointers (the *Capabilities inside dot) as addresses: not comparable.
        if let Said::Done(Outcome::Out(o)) = &said
            && has_pointer(o)
        {
            said = Said::Unstable(o.clone());
        }
        said
    }

    fn convoy(&mut self, req: &str) -> Said {
        let t = Instant::now();
        let said = Self::ask(&mut self.convoy, req);
        self.convoy_time += t.elapsed();
        said
    }

    fn both(&mut self, src: &str, values: &Json) -> (Said, Said) {
        let req = request_line(NAME, src, values);
        (self.go(&req), self.convoy(&req))
    }
}

/// How Go and convoy disagree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    /// Both rendered, different text.
    Output,
    /// Go refused to parse, convoy rendered.
    GoParseError,
    /// Go failed executing, convoy rendered.
    GoExecError,
    /// convoy failed, Go rendered.
    ConvoyError,
    /// The convoy worker died (panic outside the render thread, stack overflow, abort).
    ConvoyCrash,
    /// convoy did not answer in time.
    ConvoyTimeout,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Output => "output",
            Kind::GoParseError => "go-parse-error",
            Kind::GoExecError => "go-exec-error",
            Kind::ConvoyError => "convoy-error",
            Kind::ConvoyCrash => "convoy-crash",
            Kind::ConvoyTimeout => "convoy-timeout",
        }
    }
}

/// A Go error without "executing" is a parse error (`template: NAME:LINE: ...`).
fn is_parse_error(e: &str) -> bool {
    !e.contains(": executing \"") && !e.contains("error calling")
}

/// Go 1.19 cannot range over an integer; Helm's Go (1.22+) can. A Go error saying so,
/// where convoy rendered, is not held against convoy. (Values are float64, so integers
/// only come from constants and functions such as `len`, `int`, `add`.)
fn go119_range_over_int(go: &Said, convoy: &Said) -> bool {
    let (Said::Done(Outcome::Err(e)), Said::Done(Outcome::Out(_))) = (go, convoy) else {
        return false;
    };
    e.rsplit("range can't iterate over ")
        .next()
        .filter(|_| e.contains("range can't iterate over "))
        .is_some_and(|v| {
            let v = v.trim().trim_start_matches('-');
            !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit())
        })
}

/// `None`: they agree (or Go gave no usable answer).
fn disagreement(go: &Said, convoy: &Said) -> Option<Kind> {
    let Said::Done(g) = go else { return None };
    if go119_range_over_int(go, convoy) {
        return None;
    }
    match convoy {
        Said::Done(c) if g.agrees_with(c) => None,
        Said::Done(Outcome::Out(_)) => match g {
            Outcome::Err(e) if is_parse_error(e) => Some(Kind::GoParseError),
            Outcome::Err(_) => Some(Kind::GoExecError),
            Outcome::Out(_) => Some(Kind::Output),
        },
        Said::Done(Outcome::Err(_)) => Some(Kind::ConvoyError),
        Said::Timeout => Some(Kind::ConvoyTimeout),
        Said::Died(_) | Said::InvalidUtf8(_) | Said::Unstable(_) => Some(Kind::ConvoyCrash),
    }
}

/// A Go heap address: `0xc` and at least 9 more hex digits, or the same printed in decimal
/// (`%d` of a pointer: 0xc000000000 to 0xc0ffffffff).
fn has_pointer(s: &str) -> bool {
    let hex = s
        .match_indices("0xc")
        .any(|(i, _)| s[i + 3..].bytes().take_while(u8::is_ascii_hexdigit).count() >= 9);
    let dec = s
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse::<u64>().ok())
        .any(|n| (0xc0_0000_0000..0xc1_0000_0000).contains(&n));
    hex || dec
}

/// The gist of a Go error: its last clause, numbers and quoted text blanked.
fn error_reason(e: &str) -> String {
    let tail = e.rsplit("error calling ").next().unwrap_or(e);
    let tail = tail.rsplit(">: ").next().unwrap_or(tail);
    let mut out = String::new();
    let mut in_quote = false;
    for c in tail.chars() {
        match c {
            '"' => {
                in_quote = !in_quote;
                if in_quote {
                    out.push_str("\"…\"");
                }
            }
            _ if in_quote => {}
            c if c.is_ascii_digit() => {
                if !out.ends_with('N') {
                    out.push('N');
                }
            }
            c => out.push(c),
        }
    }
    shorten(&out, 90)
}

fn said_json(s: &Said) -> Json {
    match s {
        Said::Done(o) => o.to_json(),
        Said::InvalidUtf8(o) => json!({ "out": o, "invalid_utf8": true }),
        Said::Unstable(o) => json!({ "out": o, "unstable": true }),
        Said::Timeout => json!({ "timeout": true }),
        Said::Died(tail) => json!({ "crash": harness::clip(tail) }),
    }
}

fn said_short(s: &Said) -> String {
    match s {
        Said::Done(o) => o.short(),
        Said::InvalidUtf8(_) => "output is not UTF-8".into(),
        Said::Unstable(_) => "output shows a pointer".into(),
        Said::Timeout => "timeout".into(),
        Said::Died(t) => format!("crash: {}", shorten(t.trim(), 200)),
    }
}

// ---------------------------------------------------------------------------------------
// Values.

const STRS: &[&str] = &[
    "",
    "x",
    "hello",
    "Hello World",
    "a,b,c",
    "a b  c",
    " padded ",
    "1.2.3",
    "v1.20.0",
    "true",
    "123",
    "0.5",
    "<b>&'\"",
    "multi\nline\ntext",
    "ünïcödé",
    "key: value",
    "- item",
    "%d",
    "foo-bar_baz",
    "UPPER",
    "a.b.c",
    "tab\there",
    "null",
    "1e6",
    "nginx",
    "latest",
    "{{ .Values.s }}",
];

/// Floats that serde_json and Go both read exactly (serde_json's parser is not correctly
/// rounded for every decimal).
const NUMS: &[f64] = &[
    0.0,
    1.0,
    -1.0,
    2.0,
    3.0,
    10.0,
    42.0,
    80.0,
    443.0,
    8080.0,
    65536.0,
    1e6,
    123456789.0,
    4294967296.0,
    9007199254740992.0,
    1e21,
    0.5,
    1.5,
    3.25,
    -0.25,
    0.1,
    1e-7,
    100.0,
    2.5e15,
];

const KEYS: &[&str] = &[
    "a", "b", "c", "name", "enabled", "image", "tag", "list", "port", "m", "s", "n", "f", "x", "y", "labels",
    "items", "key",
];

fn num(v: f64) -> Json {
    serde_json::Number::from_f64(v)
        .map(Json::Number)
        .unwrap_or(Json::Null)
}

struct VGen<'r> {
    rng: &'r mut StdRng,
}

impl VGen<'_> {
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.rng.random_range(0..xs.len())]
    }

    fn scalar(&mut self) -> Json {
        match self.rng.random_range(0..10) {
            0..=3 => Json::String(self.pick(STRS).to_string()),
            4..=6 => num(self.pick(NUMS)),
            7 | 8 => Json::Bool(self.rng.random_bool(0.5)),
            _ => Json::Null,
        }
    }

    fn any(&mut self, depth: usize) -> Json {
        if depth >= 3 {
            return self.scalar();
        }
        match self.rng.random_range(0..10) {
            0..=5 => self.scalar(),
            6 | 7 => self.list(depth + 1),
            _ => self.map(depth + 1),
        }
    }

    fn list(&mut self, depth: usize) -> Json {
        let n = self.pick(&[0, 1, 2, 3, 3, 4]);
        Json::Array((0..n).map(|_| self.any(depth)).collect())
    }

    fn map(&mut self, depth: usize) -> Json {
        let n = self.pick(&[0, 1, 2, 2, 3, 4]);
        let mut m = Map::new();
        for _ in 0..n {
            let k = self.pick(KEYS).to_string();
            let v = self.any(depth);
            m.insert(k, v);
        }
        Json::Object(m)
    }

    /// Chart-shaped values: known keys with random contents, plus random extra keys.
    fn values(&mut self) -> Json {
        let mut m = Map::new();
        let mut put = |g: &mut Self, k: &str, p: f64, v: &dyn Fn(&mut Self) -> Json| {
            if g.rng.random_bool(p) {
                let val = v(g);
                m.insert(k.to_string(), val);
            }
        };
        put(self, "a", 0.9, &|g| g.any(1));
        put(self, "b", 0.6, &|g| g.any(1));
        put(self, "m", 0.85, &|g| g.map(1));
        put(self, "list", 0.85, &|g| g.list(1));
        put(self, "s", 0.85, &|g| Json::String(g.pick(STRS).to_string()));
        put(self, "n", 0.85, &|g| num(g.pick(NUMS)));
        put(self, "f", 0.5, &|g| {
            num(g.pick(&[0.5, 1e6, 1.5, 3.25, 1e21, 2.5e15, 0.1]))
        });
        put(self, "flag", 0.8, &|g| Json::Bool(g.rng.random_bool(0.5)));
        put(self, "nil", 0.6, &|_| Json::Null);
        put(self, "empty", 0.6, &|g| {
            let opts = [json!(""), json!([]), json!({}), num(0.0), json!(false)];
            opts[g.rng.random_range(0..opts.len())].clone()
        });
        put(self, "image", 0.7, &|g| {
            let tag = if g.rng.random_bool(0.6) {
                Json::String(g.pick(&["1.0", "latest", "v1.2.3", ""]).to_string())
            } else {
                num(g.pick(&[1.0, 1.5, 2.0, 1e6]))
            };
            json!({"repository": g.pick(&["nginx", "registry.example.com/app"]), "tag": tag})
        });
        put(self, "global", 0.4, &|g| {
            if g.rng.random_bool(0.6) {
                json!({"imageRegistry": g.pick(&["my.registry", ""])})
            } else {
                g.map(1)
            }
        });
        put(self, "labels", 0.6, &|g| {
            let mut l = Map::new();
            for k in ["app", "tier", "team"].iter().take(g.rng.random_range(0..4)) {
                l.insert(k.to_string(), Json::String(g.pick(STRS).to_string()));
            }
            Json::Object(l)
        });
        put(self, "tpl", 0.5, &|g| {
            Json::String(
                g.pick(&[
                    "{{ .Values.s }}-x",
                    "{{ .Release.Name }}",
                    "plain",
                    "{{ .Values.n | int }}",
                    "{{ .Values.missing }}",
                    "{{ template \"t.a\" . }}",
                    "{{ .Values.a.b.c }}",
                ])
                .to_string(),
            )
        });
        put(self, "ver", 0.5, &|g| {
            Json::String(
                g.pick(&["1.2.3", "v1.20.0", "1.19.0-gke.1", "2.0.0-rc.1", "bad"])
                    .to_string(),
            )
        });
        put(self, "with-dash", 0.2, &|g| g.scalar());
        let extra = self.rng.random_range(0..3);
        for _ in 0..extra {
            let k = self.pick(KEYS).to_string();
            let v = self.any(1);
            m.entry(k).or_insert(v);
        }
        Json::Object(m)
    }
}

// ---------------------------------------------------------------------------------------
// Templates.

/// Argument kinds of the function table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum K {
    Any,
    Str,
    Num,
    Int,
    Bool,
    List,
    Map,
    /// A list, map or string (len, empty).
    Coll,
    Key,
    Tmpl,
    Fmt,
    Regex,
    Constraint,
    Ver,
    KindName,
    TypeName,
    TplText,
    /// A literal or a field below `.Values` (never a map holding the receiver: no cycles).
    Plain,
    /// A dict literal or a values map.
    DictLit,
}

struct F {
    name: &'static str,
    args: &'static [K],
    /// Extra arguments of this kind (0 to 2 are generated).
    variadic: Option<K>,
    ret: K,
    weight: u32,
}

macro_rules! f {
    ($name:literal, [$($a:ident),*], $var:expr, $ret:ident, $w:literal) => {
        F { name: $name, args: &[$(K::$a),*], variadic: $var, ret: K::$ret, weight: $w }
    };
}

/// The functions the fuzzer calls (deterministic ones only: no now/rand*/uuidv4/genCA/...,
/// no keys/values/shuffle whose order follows Go's random map iteration).
const FUNCS: &[F] = &[
    // Go's builtins.
    f!("and", [Any, Any], Some(K::Any), Any, 3),
    f!("or", [Any, Any], Some(K::Any), Any, 3),
    f!("not", [Any], None, Bool, 3),
    f!("len", [Coll], None, Int, 3),
    f!("index", [Map, Key], None, Any, 3),
    f!("index", [List, Int], None, Any, 2),
    f!("slice", [List, Int], Some(K::Int), List, 1),
    f!("slice", [Str, Int, Int], None, Str, 1),
    f!("print", [Any], Some(K::Any), Str, 2),
    f!("printf", [Fmt, Any], Some(K::Any), Str, 5),
    f!("println", [Any], Some(K::Any), Str, 1),
    f!("html", [Str], None, Str, 1),
    f!("js", [Str], None, Str, 1),
    f!("urlquery", [Str], None, Str, 1),
    f!("eq", [Any, Any], Some(K::Any), Bool, 4),
    f!("ne", [Any, Any], None, Bool, 2),
    f!("lt", [Num, Num], None, Bool, 1),
    f!("le", [Num, Num], None, Bool, 1),
    f!("gt", [Num, Num], None, Bool, 1),
    f!("ge", [Str, Str], None, Bool, 1),
    // sprig: defaults and flow.
    f!("default", [Any, Any], None, Any, 6),
    f!("empty", [Any], None, Bool, 2),
    f!("coalesce", [Any, Any], Some(K::Any), Any, 2),
    f!("ternary", [Any, Any, Bool], None, Any, 2),
    f!("required", [Str, Any], None, Any, 2),
    f!("fail", [Str], None, Str, 1),
    f!("all", [Any], Some(K::Any), Bool, 1),
    f!("any", [Any], Some(K::Any), Bool, 1),
    // strings.
    f!("quote", [Any], Some(K::Any), Str, 4),
    f!("squote", [Any], None, Str, 2),
    f!("upper", [Str], None, Str, 2),
    f!("lower", [Str], None, Str, 1),
    f!("title", [Str], None, Str, 1),
    f!("trim", [Str], None, Str, 1),
    f!("trimSuffix", [Str, Str], None, Str, 2),
    f!("trimPrefix", [Str, Str], None, Str, 1),
    f!("trimAll", [Str, Str], None, Str, 1),
    f!("indent", [Int, Str], None, Str, 3),
    f!("nindent", [Int, Str], None, Str, 4),
    f!("replace", [Str, Str, Str], None, Str, 2),
    f!("contains", [Str, Str], None, Bool, 2),
    f!("hasPrefix", [Str, Str], None, Bool, 2),
    f!("hasSuffix", [Str, Str], None, Bool, 1),
    f!("trunc", [Int, Str], None, Str, 2),
    f!("substr", [Int, Int, Str], None, Str, 1),
    f!("repeat", [Int, Str], None, Str, 1),
    f!("nospace", [Str], None, Str, 1),
    f!("abbrev", [Int, Str], None, Str, 1),
    f!("cat", [Any], Some(K::Any), Str, 1),
    f!("join", [Str, List], None, Str, 3),
    f!("split", [Str, Str], None, Map, 1),
    f!("splitList", [Str, Str], None, List, 2),
    f!("toString", [Any], None, Str, 2),
    f!("toStrings", [List], None, List, 1),
    f!("b64enc", [Str], None, Str, 1),
    f!("b64dec", [Str], None, Str, 1),
    f!("sha256sum", [Str], None, Str, 1),
    f!("sha1sum", [Str], None, Str, 1),
    f!("adler32sum", [Str], None, Str, 1),
    f!("regexMatch", [Regex, Str], None, Bool, 1),
    f!("regexReplaceAll", [Regex, Str, Str], None, Str, 1),
    f!("regexFind", [Regex, Str], None, Str, 1),
    f!("regexSplit", [Regex, Str, Int], None, List, 1),
    // conversions and math.
    f!("int", [Any], None, Int, 2),
    f!("int64", [Any], None, Int, 1),
    f!("float64", [Any], None, Num, 1),
    f!("atoi", [Str], None, Int, 1),
    f!("add", [Num, Num], Some(K::Num), Int, 2),
    f!("add1", [Num], None, Int, 1),
    f!("sub", [Num, Num], None, Int, 1),
    f!("mul", [Num, Num], Some(K::Num), Int, 1),
    f!("div", [Num, Num], None, Int, 1),
    f!("mod", [Num, Num], None, Int, 1),
    f!("max", [Num, Num], Some(K::Num), Int, 1),
    f!("min", [Num, Num], Some(K::Num), Int, 1),
    f!("addf", [Num, Num], None, Num, 1),
    f!("floor", [Num], None, Num, 1),
    f!("ceil", [Num], None, Num, 1),
    f!("until", [Int], None, List, 1),
    f!("semverCompare", [Constraint, Ver], None, Bool, 2),
    // reflection.
    f!("kindIs", [KindName, Any], None, Bool, 2),
    f!("kindOf", [Any], None, Str, 2),
    f!("typeOf", [Any], None, Str, 2),
    f!("typeIs", [TypeName, Any], None, Bool, 1),
    // lists.
    f!("list", [Any], Some(K::Any), List, 3),
    f!("tuple", [Any], Some(K::Any), List, 1),
    f!("append", [List, Any], None, List, 2),
    f!("prepend", [List, Any], None, List, 1),
    f!("concat", [List, List], None, List, 1),
    f!("sortAlpha", [List], None, List, 2),
    f!("uniq", [List], None, List, 1),
    f!("compact", [List], None, List, 1),
    f!("first", [List], None, Any, 1),
    f!("last", [List], None, Any, 1),
    f!("rest", [List], None, List, 1),
    f!("initial", [List], None, List, 1),
    f!("reverse", [List], None, List, 1),
    f!("has", [Any, List], None, Bool, 1),
    f!("without", [List, Any], Some(K::Any), List, 1),
    // dicts.
    f!("dict", [Key, Any], None, Map, 4),
    f!("set", [Map, Key, Plain], None, Map, 3),
    f!("unset", [Map, Key], None, Map, 1),
    f!("hasKey", [Map, Key], None, Bool, 3),
    f!("get", [Map, Key], None, Any, 1),
    f!("merge", [Map, DictLit], Some(K::DictLit), Map, 2),
    f!("mergeOverwrite", [Map, DictLit], Some(K::DictLit), Map, 2),
    f!("deepCopy", [Any], None, Any, 1),
    f!("pluck", [Key, Map], Some(K::Map), List, 1),
    f!("omit", [Map, Key], Some(K::Key), Map, 1),
    f!("pick", [Map, Key], Some(K::Key), Map, 1),
    f!("dig", [Key, Any, Map], None, Any, 1),
    // Helm.
    f!("toYaml", [Any], None, Str, 5),
    f!("mustToYaml", [Any], None, Str, 1),
    f!("toYamlPretty", [Any], None, Str, 1),
    f!("toJson", [Any], None, Str, 3),
    f!("mustToJson", [Any], None, Str, 1),
    f!("toPrettyJson", [Any], None, Str, 1),
    f!("toRawJson", [Any], None, Str, 1),
    f!("fromYaml", [Str], None, Map, 1),
    f!("fromYamlArray", [Str], None, List, 1),
    f!("fromJson", [Str], None, Map, 1),
    f!("fromJsonArray", [Str], None, List, 1),
    f!("toToml", [Map], None, Str, 1),
    f!("include", [Tmpl, Any], None, Str, 4),
    f!("tpl", [TplText, Map], None, Str, 2),
    f!("lookup", [Str, Str, Str, Str], None, Map, 1),
];

const KEYWORDS: &[&str] = &[
    "if", "else", "end", "range", "with", "define", "template", "block", "break", "continue", "nil",
];

const STR_LITS: &[&str] = &[
    "",
    "x",
    "a",
    "hello world",
    "a,b,c",
    ",",
    "-",
    " ",
    "name",
    "1",
    "1.5",
    "abc",
    "foo-bar",
    "v1",
    "<>&",
    "ü",
    "line1\nline2",
    "true",
    "  padded  ",
    "a: 1\nb: [1, 2]",
    "{\"a\": 1}",
    "[1, 2]",
    "- a\n- b",
    "Error",
];
const FMTS: &[&str] = &[
    "%v", "%s", "%d", "%q", "%T", "%5.2f", "%x", "%v-%v", "%s:%d", "%05d", "%t", "%g", "%e", "%+v", "%#v",
    "%%", "%s %s", "%-5s|", "%.1f", "%v%%",
];
const REGEXES: &[&str] = &[
    "^a",
    "[0-9]+",
    "(\\w+)-(\\w+)",
    ".*",
    "^v?[0-9]+\\.[0-9]+",
    "a|b",
    "x*",
    "[",
    "(?i)hello",
    "\\s+",
    "$",
];
const CONSTRAINTS: &[&str] = &[
    ">=1.19-0",
    "^1.2",
    "~1.2.3",
    ">= 1.16.0, < 1.20.0",
    "1.x",
    "*",
    "<2.0.0",
    "!=1.2.3",
    "=1.2.3",
    ">1.2.3-alpha",
    "bad constraint",
    ">=1.21.0-0",
];
const VERSIONS: &[&str] = &[
    "1.2.3",
    "v1.20.0",
    "1.19.0-gke.1",
    "v1.21.3-eks-1",
    "2.0.0-rc.1",
    "1.2",
    "abc",
    "",
];
const KIND_NAMES: &[&str] = &[
    "map", "slice", "string", "float64", "int", "int64", "bool", "invalid", "ptr",
];
const TYPE_NAMES: &[&str] = &[
    "string",
    "float64",
    "int",
    "int64",
    "bool",
    "map[string]interface {}",
    "[]interface {}",
    "[]string",
    "[]int",
    "<nil>",
];
const DICT_KEYS: &[&str] = &[
    "a",
    "b",
    "k",
    "name",
    "m",
    "list",
    "s",
    "n",
    "x",
    "z",
    "with-dash",
    "",
];
const DEFINE_NAMES: &[&str] = &["t.a", "t.b", "t.labels", "t.fullname"];

/// Go's strconv.Quote, enough for template string constants.
fn go_quote(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\t' => o.push_str("\\t"),
            '\r' => o.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => o.push_str(&format!("\\x{:02x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn is_ident(k: &str) -> bool {
    let mut cs = k.chars();
    matches!(cs.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && cs.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// What dot holds where an action is generated.
#[derive(Clone)]
enum Dot {
    /// The render context (.Values, .Release, ...).
    Root,
    /// A value from the values (when known).
    Val(Json),
    Unknown,
}

/// The template generator: one per case.
struct G<'r> {
    rng: &'r mut StdRng,
    values: Json,
    /// Variables in scope, innermost last, with the kind of what they hold.
    scopes: Vec<Vec<(String, K)>>,
    defines: Vec<String>,
    in_range: usize,
    depth: usize,
    expr_depth: usize,
    budget: i32,
    dot: Dot,
    next_var: usize,
    /// Every field path into the values (identifier keys, maps only) and its value.
    all_paths: Vec<(String, Json)>,
}

impl G<'_> {
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.rng.random_range(0..xs.len())]
    }

    fn chance(&mut self, p: f64) -> bool {
        self.rng.random_bool(p)
    }

    fn weighted(&mut self, ws: &[u32]) -> usize {
        let total: u32 = ws.iter().sum();
        let mut r = self.rng.random_range(0..total.max(1));
        for (i, w) in ws.iter().enumerate() {
            if r < *w {
                return i;
            }
            r -= w;
        }
        0
    }

    fn open(&mut self) -> &'static str {
        match self.rng.random_range(0..10) {
            0..=2 => "{{- ",
            3 => "{{",
            _ => "{{ ",
        }
    }

    fn close(&mut self) -> &'static str {
        match self.rng.random_range(0..10) {
            0..=1 => " -}}",
            2 => "}}",
            _ => " }}",
        }
    }

    fn act(&mut self, inner: &str) -> String {
        let o = self.open();
        let mut c = self.close();
        if o == "{{" && c == "}}" && inner.starts_with('-') {
            c = " }}";
        }
        let o = if o == "{{" && (inner.starts_with('-') || inner.starts_with("/*")) {
            "{{ "
        } else {
            o
        };
        format!("{o}{inner}{c}")
    }

    fn fresh_var(&mut self) -> String {
        self.next_var += 1;
        let base = self.pick(&["x", "d", "l", "v", "name", "acc", "n", "s"]);
        format!("${base}{}", self.next_var)
    }

    fn declare(&mut self, name: &str, k: K) {
        if let Some(s) = self.scopes.last_mut() {
            s.push((name.to_string(), k));
        }
    }

    fn vars(&self) -> Vec<(String, K)> {
        self.scopes.iter().flatten().cloned().collect()
    }

    fn var_of(&mut self, k: K) -> Option<String> {
        let vs: Vec<String> = self
            .vars()
            .into_iter()
            .filter(|(n, vk)| n != "$" && (k == K::Any || *vk == k))
            .map(|(n, _)| n)
            .collect();
        if vs.is_empty() {
            None
        } else {
            let i = self.rng.random_range(0..vs.len());
            Some(vs[i].clone())
        }
    }

    // -- field paths ---------------------------------------------------------------------

    /// A walk into `base`: mostly existing keys, sometimes missing ones.
    fn path_into(&mut self, base: Option<&Json>, max: usize) -> (String, Option<Json>) {
        let mut path = String::new();
        let mut cur = base.cloned();
        let n = self.rng.random_range(1..=max);
        for i in 0..n {
            if i > 0 && self.chance(0.35) {
                break;
            }
            // Mostly stop at a scalar, a list or a missing key (a field of those fails).
            if i > 0 && !matches!(&cur, Some(Json::Object(_))) && self.chance(0.85) {
                break;
            }
            let key = match &cur {
                Some(Json::Object(m)) if !m.is_empty() && self.chance(0.85) => {
                    let keys: Vec<&String> = m.keys().filter(|k| is_ident(k)).collect();
                    if keys.is_empty() {
                        self.pick(KEYS).to_string()
                    } else {
                        keys[self.rng.random_range(0..keys.len())].clone()
                    }
                }
                _ => self.pick(KEYS).to_string(),
            };
            cur = cur.as_ref().and_then(|c| c.get(&key)).cloned();
            path.push('.');
            path.push_str(&key);
        }
        (path, cur)
    }

    /// A field chain on dot or `$`.
    fn field(&mut self) -> (String, Option<Json>) {
        let values = self.values.clone();
        match self.dot.clone() {
            Dot::Root if self.chance(0.92) => self.root_field(&values, "."),
            Dot::Val(v) if self.chance(0.7) => {
                if self.chance(0.2) || !v.is_object() {
                    (".".into(), Some(v))
                } else {
                    self.path_into(Some(&v), 2)
                }
            }
            _ => {
                if self.chance(0.15) {
                    (".".into(), None)
                } else {
                    self.root_field(&values, "$.")
                }
            }
        }
    }

    /// A values field holding (mostly) a value of kind `k`.
    fn typed_field(&mut self, k: K) -> String {
        let pred = |v: &Json| match k {
            K::Str => v.is_string(),
            K::Num | K::Int => v.is_number(),
            K::List => v.is_array(),
            K::Map => v.is_object(),
            K::Bool => v.is_boolean(),
            _ => true,
        };
        let cands: Vec<String> = self
            .all_paths
            .iter()
            .filter(|(_, v)| pred(v))
            .map(|(p, _)| p.clone())
            .collect();
        if cands.is_empty() || self.chance(0.15) {
            return self.field().0;
        }
        let prefix = if matches!(self.dot, Dot::Root) {
            ".Values"
        } else {
            "$.Values"
        };
        let i = self.rng.random_range(0..cands.len());
        format!("{prefix}{}", cands[i])
    }

    fn root_field(&mut self, values: &Json, prefix: &str) -> (String, Option<Json>) {
        let p = prefix.trim_end_matches('.');
        match self.rng.random_range(0..40) {
            0 => (format!("{p}.Release.Name"), Some(json!("release-name"))),
            1 => (format!("{p}.Release.Namespace"), Some(json!("default"))),
            2 => (format!("{p}.Template.Name"), Some(json!(NAME))),
            3 => (
                format!("{p}.Capabilities.KubeVersion.Version"),
                Some(json!("v1.20.0")),
            ),
            4 => (format!("{p}.Values"), Some(values.clone())),
            5 if self.chance(0.2) => (format!("{p}.Chart.Name"), None),
            6 => (format!("{p}.Release.Revision"), None),
            _ => {
                let (path, v) = self.path_into(Some(values), 3);
                (format!("{p}.Values{path}"), v)
            }
        }
    }

    // -- expressions ---------------------------------------------------------------------

    fn str_lit(&mut self) -> String {
        if self.chance(0.05) {
            let s = self.pick(&["x", "a b", "1"]);
            return format!("`{s}`");
        }
        let s = self.pick(STR_LITS);
        go_quote(s)
    }

    fn num_lit(&mut self, int_only: bool) -> String {
        if int_only || self.chance(0.7) {
            self.pick(&["0", "1", "2", "3", "4", "-1", "10", "63", "100", "0x10"])
                .to_string()
        } else {
            self.pick(&[
                "0.5", "1.5", "1e6", "2.0", "1e3", "-2.5", "0x1F", "'a'", "1_000", "3.0",
            ])
            .to_string()
        }
    }

    /// A value of (mostly) kind `k`, usable as a function argument.
    fn arg(&mut self, k: K) -> String {
        let k = if self.chance(0.03) {
            self.pick(&[K::Any, K::Str, K::Num, K::Bool, K::List, K::Map])
        } else {
            k
        };
        self.expr_depth += 1;
        let s = self.arg_inner(k);
        self.expr_depth -= 1;
        s
    }

    fn deep(&self) -> bool {
        self.expr_depth > 3 || self.budget <= 0
    }

    fn arg_inner(&mut self, k: K) -> String {
        if matches!(k, K::Any | K::Str | K::Num | K::Int | K::Bool | K::List | K::Map)
            && self.chance(0.2)
            && let Some(v) = self.var_of(k)
        {
            if k == K::Map && self.chance(0.3) {
                let key = self.pick(KEYS);
                return format!("{v}.{key}");
            }
            return v;
        }
        match k {
            K::Any => match self.rng.random_range(0..12) {
                0..=4 => self.field().0,
                5 => self.str_lit(),
                6 => self.num_lit(false),
                7 => self.pick(&["true", "false"]).to_string(),
                8 if self.chance(0.3) => "nil".to_string(),
                _ => {
                    let kk = self.pick(&[K::List, K::Map, K::Str, K::Num]);
                    self.arg_inner(kk)
                }
            },
            K::Str => match self.rng.random_range(0..10) {
                0..=4 => self.str_lit(),
                5..=7 => self.typed_field(K::Str),
                _ => self.paren_call(K::Str),
            },
            K::Int => match self.rng.random_range(0..20) {
                0..=16 => self.num_lit(true),
                17 => self.typed_field(K::Num),
                _ => self.paren_call(K::Int),
            },
            K::Num => match self.rng.random_range(0..10) {
                0..=5 => self.num_lit(false),
                6..=7 => self.typed_field(K::Num),
                _ => self.paren_call(K::Int),
            },
            K::Bool => match self.rng.random_range(0..10) {
                0..=3 => self.pick(&["true", "false"]).to_string(),
                4..=6 => self.field().0,
                _ => self.paren_call(K::Bool),
            },
            K::List => match self.rng.random_range(0..10) {
                0..=3 => self.typed_field(K::List),
                4..=5 if !self.deep() => {
                    let n = self.rng.random_range(0..4);
                    let items: Vec<String> = (0..n).map(|_| self.arg(K::Any)).collect();
                    format!(
                        "(list{})",
                        items.iter().map(|i| format!(" {i}")).collect::<String>()
                    )
                }
                6 => format!("(until {})", self.pick(&["0", "1", "3"])),
                7 => format!("(splitList \",\" {})", self.pick(&["\"a,b,c\"", "\"\"", "\"x\""])),
                8 if !self.deep() => {
                    let m = self.arg(K::Map);
                    format!("(keys {m} | sortAlpha)")
                }
                _ => self.paren_call(K::List),
            },
            K::Map => match self.rng.random_range(0..10) {
                0..=2 => self.typed_field(K::Map),
                // The whole context rarely: printing it shows .Capabilities, one known
                // difference that would otherwise crowd out the rest.
                3 => {
                    let whole = self.chance(0.1);
                    match (&self.dot, whole) {
                        (Dot::Root, true) => self.pick(&[".", "$"]).to_string(),
                        (Dot::Root, false) => self.pick(&[".Values", "$.Values"]).to_string(),
                        (_, true) => "$".to_string(),
                        (_, false) => self.pick(&["$.Values", "."]).to_string(),
                    }
                }
                4..=6 if !self.deep() => self.dict_call(true),
                7 if !self.deep() => {
                    let (p, _) = self.field();
                    let key = self.pick(KEYS);
                    format!("({p}).{key}")
                }
                _ => self.paren_call(K::Map),
            },
            K::Coll => {
                let kk = self.pick(&[K::List, K::Map, K::Str]);
                self.arg_inner(kk)
            }
            K::Key => {
                if self.chance(0.9) {
                    go_quote(self.pick(DICT_KEYS))
                } else {
                    self.field().0
                }
            }
            K::Tmpl => {
                if !self.defines.is_empty() && self.chance(0.97) {
                    let i = self.rng.random_range(0..self.defines.len());
                    go_quote(&self.defines[i].clone())
                } else {
                    // (Never the template itself: recursing 100000 deep takes Go seconds.)
                    go_quote(self.pick(&["t.a", "nosuch"]))
                }
            }
            K::Plain => self.plain_arg(),
            K::DictLit => {
                if self.deep() || self.chance(0.4) {
                    self.typed_field(K::Map)
                } else {
                    self.dict_call(true)
                }
            }
            K::Fmt => go_quote(self.pick(FMTS)),
            K::Regex => go_quote(self.pick(REGEXES)),
            K::Constraint => go_quote(self.pick(CONSTRAINTS)),
            K::Ver => match self.rng.random_range(0..6) {
                0 => ".Capabilities.KubeVersion.GitVersion".to_string(),
                1 => "$.Capabilities.KubeVersion.Version".to_string(),
                2 => "$.Values.ver".to_string(),
                _ => go_quote(self.pick(VERSIONS)),
            },
            K::KindName => go_quote(self.pick(KIND_NAMES)),
            K::TypeName => go_quote(self.pick(TYPE_NAMES)),
            K::TplText => {
                if self.chance(0.3) {
                    "$.Values.tpl".to_string()
                } else {
                    let t = self.sub_template();
                    if !t.contains('`') && self.chance(0.3) {
                        format!("`{t}`")
                    } else {
                        go_quote(&t)
                    }
                }
            }
        }
    }

    /// An operand for eq/lt/...: strings, float64 numbers (values' fields or float
    /// constants) or booleans.
    fn comparable(&mut self, k: K) -> String {
        match k {
            K::Str if self.chance(0.5) => self.str_lit(),
            K::Str => self.typed_field(K::Str),
            K::Num if self.chance(0.5) => self
                .pick(&["1.0", "0.5", "1e6", "3.0", "80.0", "0.0"])
                .to_string(),
            K::Num => self.typed_field(K::Num),
            K::Bool if self.chance(0.5) => self.pick(&["true", "false"]).to_string(),
            K::Bool => {
                let b = self.typed_field(K::Bool);
                if self.chance(0.5) { b } else { format!("(not {b})") }
            }
            _ => self.arg(K::Any),
        }
    }

    /// A literal or a values field below the top (never `.Values` itself).
    fn plain_arg(&mut self) -> String {
        match self.rng.random_range(0..10) {
            0..=2 => self.str_lit(),
            3..=4 => self.num_lit(false),
            5 => self.pick(&["true", "false"]).to_string(),
            _ => {
                let values = self.values.clone();
                let (p, _) = self.path_into(Some(&values), 2);
                format!("$.Values{p}")
            }
        }
    }

    fn dict_call(&mut self, paren: bool) -> String {
        let n = self.pick(&[0, 1, 1, 2, 3]);
        let mut s = String::from("dict");
        for _ in 0..n {
            let k = self.arg(K::Key);
            let v = self.arg(K::Any);
            s.push_str(&format!(" {k} {v}"));
        }
        if paren { format!("({s})") } else { s }
    }

    /// A parenthesised call returning (mostly) kind `k`, sometimes with a field chain on it.
    fn paren_call(&mut self, k: K) -> String {
        if self.deep() {
            return match k {
                K::Str => self.str_lit(),
                K::Int | K::Num => self.num_lit(true),
                K::Bool => "true".into(),
                K::List => "(list 1 2)".into(),
                _ => "$.Values".into(),
            };
        }
        let p = self.pipeline(Some(k));
        if k == K::Map && self.chance(0.25) {
            let key = self.pick(KEYS);
            return format!("({p}).{key}");
        }
        format!("({p})")
    }

    fn accepts(param: K, value: K) -> bool {
        match param {
            K::Any => true,
            K::Str | K::Key | K::Fmt | K::Regex | K::Constraint | K::Ver | K::KindName | K::TypeName => {
                matches!(value, K::Str | K::Any)
            }
            K::Num | K::Int => matches!(value, K::Num | K::Int | K::Any),
            K::Bool => true,
            K::List => matches!(value, K::List | K::Any),
            K::Map => matches!(value, K::Map | K::Any),
            K::Coll => matches!(value, K::List | K::Map | K::Str | K::Any),
            K::Tmpl | K::TplText => value == K::Str,
            K::Plain => !matches!(value, K::Map | K::Any),
            K::DictLit => value == K::Map,
        }
    }

    fn pick_func(&mut self, filter: impl Fn(&F) -> bool) -> &'static F {
        let cands: Vec<&'static F> = FUNCS
            .iter()
            .filter(|f| filter(f))
            .filter(|f| f.name != "include" || !self.defines.is_empty() || self.budget % 23 == 0)
            .collect();
        if cands.is_empty() {
            return &FUNCS[0];
        }
        let ws: Vec<u32> = cands.iter().map(|f| f.weight).collect();
        let i = self.weighted(&ws);
        cands[i]
    }

    /// `f a b c` (all arguments), or with `piped` the arguments but the last.
    fn call(&mut self, f: &'static F, piped: bool) -> String {
        self.call_piped(f, piped, K::Any)
    }

    /// `call`, knowing the kind of the piped value.
    fn call_piped(&mut self, f: &'static F, piped: bool, piped_kind: K) -> String {
        self.budget -= 1;
        let mut params: Vec<K> = f.args.to_vec();
        if let Some(v) = f.variadic {
            for _ in 0..self.pick(&[0, 0, 1, 2]) {
                params.push(v);
            }
        }
        if f.name == "dig" {
            // dig KEY... DEFAULT DICT
            let extra = self.pick(&[0, 0, 1, 2]);
            for _ in 0..extra {
                params.insert(0, K::Key);
            }
        }
        if matches!(f.name, "eq" | "ne" | "lt" | "le" | "gt" | "ge") {
            // Mostly operands of one kind (Go refuses to compare int with float64).
            let k = if piped {
                match piped_kind {
                    K::Int | K::Num => K::Num,
                    other => other,
                }
            } else if self.chance(0.05) {
                K::Any
            } else if f.name == "eq" || f.name == "ne" {
                self.pick(&[K::Str, K::Num, K::Bool])
            } else {
                self.pick(&[K::Str, K::Num])
            };
            let n = params.len() - usize::from(piped);
            let mut s = f.name.to_string();
            for _ in 0..n {
                let a = self.comparable(k);
                s.push(' ');
                s.push_str(&a);
            }
            return s;
        }
        if f.name == "dict" {
            let mut s = String::from("dict");
            let n = self.pick(&[0, 1, 2, 3]);
            for i in 0..n {
                s.push_str(&format!(" {}", self.arg(K::Key)));
                if !(piped && i + 1 == n) {
                    s.push_str(&format!(" {}", self.arg(K::Any)));
                }
            }
            return s;
        }
        if piped {
            params.pop();
        }
        let mut s = f.name.to_string();
        for p in params {
            s.push(' ');
            s.push_str(&self.arg(p));
        }
        s
    }

    /// A pipeline: a first command and up to three `| f args` stages.
    fn pipeline(&mut self, want: Option<K>) -> String {
        self.budget -= 1;
        let (mut s, mut kind) = if self.chance(0.55) || self.deep() {
            // An operand.
            let k = want.unwrap_or(K::Any);
            let a = match k {
                K::Any => {
                    if self.chance(0.7) {
                        self.field().0
                    } else {
                        self.arg(K::Any)
                    }
                }
                other => self.arg(other),
            };
            // `nil` is not a command.
            let a = if a == "nil" { "$.Values.nil".to_string() } else { a };
            (a, k)
        } else {
            let f = match want {
                Some(w) if self.chance(0.8) => self.pick_func(|f| Self::accepts(w, f.ret) || f.ret == K::Any),
                _ => self.pick_func(|_| true),
            };
            (self.call(f, false), f.ret)
        };
        let stages = if self.deep() {
            0
        } else {
            self.pick(&[0, 0, 0, 0, 1, 1, 2])
        };
        for _ in 0..stages {
            // A value of unknown kind mostly goes to a function that takes anything.
            let strict = kind == K::Any && self.chance(0.8);
            let f = if self.chance(0.93) {
                self.pick_func(|f| {
                    let last = f.variadic.or_else(|| f.args.last().copied());
                    let cmp = matches!(f.name, "eq" | "ne" | "lt" | "le" | "gt" | "ge");
                    f.name != "dict"
                        && (!cmp || matches!(kind, K::Str | K::Bool))
                        && last.is_some_and(|l| {
                            if strict {
                                l == K::Any
                            } else {
                                Self::accepts(l, kind)
                            }
                        })
                })
            } else {
                self.pick_func(|_| true)
            };
            let c = self.call_piped(f, true, kind);
            s = format!("{s} | {c}");
            kind = f.ret;
        }
        s
    }

    // -- statements ----------------------------------------------------------------------

    fn text(&mut self) -> String {
        self.pick(&[
            "", "x", " ", "\n", "\n  ", "key: ", "- ", "a b", "\nname: ", "  ", "\t", "---\n", "ü",
        ])
        .to_string()
    }

    fn block(&mut self, max: usize) -> String {
        let n = self.rng.random_range(1..=max);
        let mut s = String::new();
        for _ in 0..n {
            if self.budget <= 0 {
                break;
            }
            s.push_str(&self.item());
        }
        s
    }

    fn scoped<T>(&mut self, body: impl FnOnce(&mut Self) -> T) -> T {
        self.scopes.push(Vec::new());
        self.depth += 1;
        let r = body(self);
        self.depth -= 1;
        self.scopes.pop();
        r
    }

    fn with_dot<T>(&mut self, dot: Dot, body: impl FnOnce(&mut Self) -> T) -> T {
        let old = std::mem::replace(&mut self.dot, dot);
        let r = body(self);
        self.dot = old;
        r
    }

    fn item(&mut self) -> String {
        self.budget -= 1;
        let nested = self.depth < 3 && self.budget > 0;
        let has_vars = self.vars().len() > 1;
        let ws = [
            14,                                          // text
            30,                                          // output
            2,                                           // comment
            8,                                           // declaration
            if has_vars { 4 } else { 0 },                // assignment
            if nested { 8 } else { 0 },                  // if
            if nested { 5 } else { 0 },                  // with
            if nested { 6 } else { 0 },                  // range
            if self.defines.is_empty() { 1 } else { 4 }, // template / include
            5,                                           // mutation idioms
            10,                                          // chart idioms
            if self.in_range > 0 { 3 } else { 0 },       // break / continue
        ];
        match self.weighted(&ws) {
            0 => self.text(),
            1 => {
                let p = self.pipeline(None);
                self.act(&p)
            }
            2 => self.comment(),
            3 => {
                let p = self.pipeline(None);
                let v = self.fresh_var();
                let s = self.act(&format!("{v} := {p}"));
                self.declare(&v, K::Any);
                s
            }
            4 => {
                let v = self.var_of(K::Any).unwrap_or_else(|| "$".into());
                let p = self.pipeline(None);
                self.act(&format!("{v} = {p}"))
            }
            5 => self.if_stmt(),
            6 => self.with_stmt(),
            7 => self.range_stmt(),
            8 => self.call_template(),
            9 => self.mutation_idiom(),
            10 => self.chart_idiom(),
            11 => {
                let kw = self.pick(&["break", "continue"]);
                if self.chance(0.5) {
                    let c = self.arg(K::Bool);
                    let a = self.act(&format!("if {c}"));
                    let b = self.act(kw);
                    let e = self.act("end");
                    format!("{a}{b}{e}")
                } else {
                    self.act(kw)
                }
            }
            _ => self.text(),
        }
    }

    fn comment(&mut self) -> String {
        match self.rng.random_range(0..4) {
            0 => "{{/* a comment */}}".into(),
            1 => "{{- /* trimmed */ -}}".into(),
            2 => "{{/*\nmulti\nline\n*/}}".into(),
            _ => "{{- /* left */}}".into(),
        }
    }

    fn cond_head(&mut self, kw: &str) -> String {
        if self.chance(0.12) {
            let v = self.fresh_var();
            let p = self.pipeline(None);
            self.declare(&v, K::Any);
            format!("{kw} {v} := {p}")
        } else {
            let p = self.pipeline(Some(K::Bool));
            format!("{kw} {p}")
        }
    }

    fn if_stmt(&mut self) -> String {
        let mut s = self.scoped(|g| {
            let head = g.cond_head("if");
            let h = g.act(&head);
            let b = g.block(3);
            format!("{h}{b}")
        });
        let elifs = self.pick(&[0, 0, 0, 1, 2]);
        for _ in 0..elifs {
            s.push_str(&self.scoped(|g| {
                let c = g.pipeline(Some(K::Bool));
                let h = g.act(&format!("else if {c}"));
                let b = g.block(2);
                format!("{h}{b}")
            }));
        }
        if self.chance(0.4) {
            s.push_str(&self.scoped(|g| {
                let h = g.act("else");
                let b = g.block(2);
                format!("{h}{b}")
            }));
        }
        let e = self.act("end");
        s + &e
    }

    fn with_stmt(&mut self) -> String {
        let (p, v) = if self.chance(0.7) {
            self.field()
        } else {
            (self.pipeline(None), None)
        };
        let dot = match v {
            Some(v) => Dot::Val(v),
            None => Dot::Unknown,
        };
        let mut s = self.scoped(|g| {
            let head = if g.chance(0.1) {
                let var = g.fresh_var();
                g.declare(&var, K::Any);
                format!("with {var} := {p}")
            } else {
                format!("with {p}")
            };
            let h = g.act(&head);
            let b = g.with_dot(dot, |g| g.block(3));
            format!("{h}{b}")
        });
        if self.chance(0.3) {
            s.push_str(&self.scoped(|g| {
                let h = g.act("else");
                let b = g.block(2);
                format!("{h}{b}")
            }));
        }
        let e = self.act("end");
        s + &e
    }

    fn range_stmt(&mut self) -> String {
        let (target, elem) = match self.rng.random_range(0..10) {
            0..=1 => {
                let (p, v) = self.field();
                let elem = match &v {
                    Some(Json::Array(a)) if !a.is_empty() => Some(a[0].clone()),
                    Some(Json::Object(m)) => m.values().next().cloned(),
                    _ => None,
                };
                (p, elem)
            }
            2..=6 => (self.typed_field(K::List), None),
            7 => (self.typed_field(K::Map), None),
            _ => (self.pipeline(Some(K::List)), None),
        };
        let dot = match elem {
            Some(v) => Dot::Val(v),
            None => Dot::Unknown,
        };
        let mut s = self.scoped(|g| {
            let head = match g.rng.random_range(0..10) {
                0..=3 => format!("range {target}"),
                4..=5 => {
                    let e = g.fresh_var();
                    g.declare(&e, K::Any);
                    format!("range {e} := {target}")
                }
                _ => {
                    let i = g.fresh_var();
                    let e = g.fresh_var();
                    g.declare(&i, K::Any);
                    g.declare(&e, K::Any);
                    format!("range {i}, {e} := {target}")
                }
            };
            let h = g.act(&head);
            g.in_range += 1;
            let b = g.with_dot(dot, |g| g.block(3));
            g.in_range -= 1;
            format!("{h}{b}")
        });
        if self.chance(0.2) {
            s.push_str(&self.scoped(|g| {
                let h = g.act("else");
                let b = g.block(1);
                format!("{h}{b}")
            }));
        }
        let e = self.act("end");
        s + &e
    }

    fn call_arg(&mut self) -> String {
        match self.rng.random_range(0..14) {
            0..=9 => match self.dot {
                Dot::Root => ".".into(),
                _ => "$".into(),
            },
            10 => "$".into(),
            11 => ".Values".into(),
            12 => {
                let v = self.arg(K::Any);
                format!("(dict \"root\" $ \"v\" {v})")
            }
            _ => self.arg(K::Any),
        }
    }

    fn call_template(&mut self) -> String {
        if self.defines.is_empty() && self.depth < 3 && self.chance(0.8) {
            let a = self.call_arg();
            let bname = go_quote(self.pick(&["t.blk", "t.a"]));
            let h = self.act(&format!("block {bname} {a}"));
            let body = self.define_body();
            let e = self.act("end");
            return format!("{h}{body}{e}");
        }
        let name = self.arg_inner(K::Tmpl);
        let a = self.call_arg();
        match self.rng.random_range(0..10) {
            0..=2 => self.act(&format!("template {name} {a}")),
            3 => self.act(&format!("template {name}")),
            4 if self.depth < 3 => {
                // block defines and runs a template; its body sees the argument as dot.
                let bname = go_quote(self.pick(&["t.blk", "t.a"]));
                let h = self.act(&format!("block {bname} {a}"));
                let body = self.define_body();
                let e = self.act("end");
                format!("{h}{body}{e}")
            }
            _ => {
                let n = self.pick(&["2", "4"]);
                let tail = self.pick(&[
                    "",
                    " | indent 2",
                    " | quote",
                    " | trim",
                    " | sha256sum",
                    " | upper",
                ]);
                let tail = if tail.is_empty() && self.chance(0.3) {
                    format!(" | nindent {n}")
                } else {
                    tail.to_string()
                };
                self.act(&format!("include {name} {a}{tail}"))
            }
        }
    }

    /// A template body with a fresh variable scope, dot the render context.
    fn define_body(&mut self) -> String {
        let scopes = std::mem::replace(&mut self.scopes, vec![vec![("$".to_string(), K::Any)]]);
        let in_range = std::mem::replace(&mut self.in_range, 0);
        let depth = std::mem::replace(&mut self.depth, 1);
        let b = self.with_dot(Dot::Root, |g| g.block(2));
        self.scopes = scopes;
        self.in_range = in_range;
        self.depth = depth;
        b
    }

    fn define(&mut self, name: &str) -> String {
        let h = self.act(&format!("define {}", go_quote(name)));
        let body = match self.rng.random_range(0..5) {
            0 => "{{- printf \"%s-%s\" .Release.Name \"app\" | trunc 63 | trimSuffix \"-\" -}}".to_string(),
            1 => "app: {{ .Release.Name }}\ntier: {{ .Values.s | default \"web\" | quote }}".to_string(),
            _ => self.define_body(),
        };
        let e = self.act("end");
        format!("{h}{body}{e}")
    }

    /// A short template for `tpl`: its own scope, dot the render context.
    fn sub_template(&mut self) -> String {
        let budget = std::mem::replace(&mut self.budget, 4);
        let depth = std::mem::replace(&mut self.expr_depth, 2);
        let b = self.define_body();
        self.budget = budget - 4;
        self.expr_depth = depth;
        b
    }

    fn mutation_idiom(&mut self) -> String {
        let d = self.fresh_var();
        let k = go_quote(self.pick(DICT_KEYS));
        // Plain values: a map set into itself makes a cycle, which Go cannot print.
        let v = self.plain_arg();
        let v2 = self.plain_arg();
        let which = self.rng.random_range(0..9);
        let s = match which {
            0 => format!(
                "{{{{ {d} := dict {k} {v} }}}}{{{{ $_ := set {d} {k} {v2} }}}}{{{{ get {d} {k} }}}}|{{{{ {d} }}}}"
            ),
            1 => {
                let key = self.pick(&["k", "a", "n"]);
                format!(
                    "{{{{- {d} := dict \"{key}\" {v} }}}}{{{{- $_ := set {d} \"{key}\" {v2} }}}}{{{{ {d}.{key} }}}}"
                )
            }
            2 => format!(
                "{{{{- $_ := set $.Values \"added\" {v} }}}}{{{{ .Values.added }}}}|{{{{ include \"t.reader\" $ }}}}"
            ),
            3 => {
                let m = self.arg(K::Map);
                format!(
                    "{{{{- {d} := dict \"x\" 1 \"m\" (dict \"a\" 1) }}}}{{{{- $r := merge {d} {m} (dict {k} {v}) }}}}{{{{ toJson {d} }}}}|{{{{ toJson $r }}}}"
                )
            }
            4 => format!(
                "{{{{- {d} := deepCopy $.Values }}}}{{{{- $_ := set {d} \"s\" {v} }}}}{{{{ $.Values.s }}}}/{{{{ {d}.s }}}}"
            ),
            5 => {
                let l = self.arg(K::List);
                format!(
                    "{{{{- {d} := dict }}}}{{{{- range $i, $e := {l} }}}}{{{{- $_ := set {d} (toString $i) $e }}}}{{{{- end }}}}{{{{ toJson {d} }}}}"
                )
            }
            6 => {
                let l = self.arg(K::List);
                format!(
                    "{{{{- {d} := 0 }}}}{{{{- range {l} }}}}{{{{- {d} = add {d} 1 }}}}{{{{- end }}}}{{{{ {d} }}}}"
                )
            }
            7 => format!(
                "{{{{- {d} := list 1 }}}}{{{{- $_ := append {d} 2 }}}}{{{{ {d} }}}}{{{{ $_ := unset $.Values \"s\" }}}}{{{{ $.Values.s }}}}"
            ),
            _ => format!(
                "{{{{- $_ := mergeOverwrite $.Values (dict \"s\" {v}) }}}}{{{{ $.Values.s }}}}|{{{{ include \"t.reader\" . }}}}"
            ),
        };
        match which {
            2 | 8 => {}
            6 => self.declare(&d, K::Num),
            7 => self.declare(&d, K::List),
            _ => self.declare(&d, K::Map),
        }
        s
    }

    fn chart_idiom(&mut self) -> String {
        let (p, _) = self.field();
        let n = self.pick(&["2", "4", "8"]);
        match self.rng.random_range(0..26) {
            0 => format!("{{{{- with {p} }}}}\nlabels:\n  {{{{- toYaml . | nindent {n} }}}}\n{{{{- end }}}}"),
            1 => "image: \"{{ .Values.image.repository }}:{{ .Values.image.tag | default \"latest\" }}\"".into(),
            2 => "{{- $registry := (.Values.global).imageRegistry | default \"docker.io\" }}{{ $registry }}".into(),
            3 => "{{ ((.Values.a).b).c }}|{{ (.Values.global).imageRegistry }}".into(),
            4 => format!("{{{{- if {p} }}}}\nenabled: true\n{{{{- end }}}}"),
            5 => format!(
                "{{{{- range $k, $v := {p} }}}}\n  {{{{ $k }}}}: {{{{ $v | quote }}}}\n{{{{- end }}}}"
            ),
            6 => "{{ tpl .Values.tpl . }}".into(),
            7 => format!("{{{{ tpl (toYaml {p}) . }}}}"),
            8 => format!("{{{{ required \"value is required\" {p} }}}}"),
            9 => "{{- if semverCompare \">=1.19-0\" .Capabilities.KubeVersion.GitVersion }}networking.k8s.io/v1{{ else }}extensions/v1beta1{{ end }}".into(),
            10 => "{{ .Capabilities.APIVersions.Has \"networking.k8s.io/v1\" }}".into(),
            11 => format!("replicas: {{{{ {p} | default 1 }}}}"),
            12 => format!("{{{{- toYaml {p} | nindent {n} }}}}"),
            13 => format!("port: {{{{ {p} | int }}}}"),
            14 => format!("{{{{ printf \"%v\" {p} }}}}|{{{{ {p} }}}}"),
            15 => format!("{{{{ {p} | toJson }}}}"),
            16 => format!("{{{{ if kindIs \"map\" {p} }}}}map{{{{ else if kindIs \"slice\" {p} }}}}slice{{{{ else }}}}{{{{ kindOf {p} }}}}{{{{ end }}}}"),
            17 => format!("{{{{ dig \"a\" \"b\" \"def\" {} }}}}", self.arg(K::Map)),
            18 => format!("{{{{ coalesce {p} .Values.missing \"fallback\" }}}}"),
            19 => format!("{{{{ ternary \"yes\" \"no\" ({p} | empty) }}}}"),
            20 => format!("{{{{ {p} | toString | b64enc | quote }}}}"),
            21 => format!("{{{{ eq {p} {} }}}}", self.arg(K::Any)),
            22 => format!("{{{{ index {} {} }}}}", self.arg(K::Map), self.arg(K::Key)),
            23 => format!("{{{{ typeOf {p} }}}}:{{{{ {p} }}}}"),
            24 => format!("{{{{ include \"t.rec\" {} }}}}", self.arg(K::List)),
            _ => format!("{{{{ and {p} ({}) }}}}|{{{{ or {p} ({}) }}}}", self.pipeline(None), self.pipeline(None)),
        }
    }

    fn wrong(&mut self) -> String {
        let p = self.field().0;
        match self.rng.random_range(0..24) {
            0 => format!("{{{{ nosuchfunc {p} }}}}"),
            1 => format!("{{{{ {p} | }}}}"),
            2 => "{{ if }}".into(),
            3 => "{{ end }}".into(),
            4 => "{{ else }}".into(),
            5 => format!("{{{{ {p} "),
            6 => "{{ \"unterminated }}".into(),
            7 => "{{ $undefined }}".into(),
            8 => "{{ break }}".into(),
            9 => "{{ range }}{{ end }}".into(),
            10 => format!("{{{{ if {p} }}}}{{{{ define \"inner\" }}}}x{{{{ end }}}}{{{{ end }}}}"),
            11 => "{{ .Values..a }}".into(),
            12 => "{{ | upper }}".into(),
            13 => "{{ (1 }}".into(),
            14 => "{{ template }}".into(),
            15 => "{{ nil }}".into(),
            16 => format!("{{{{ $x := }}}}{{{{ {p} }}}}"),
            17 => "{{/* unclosed comment ".into(),
            18 => format!("{{{{ {p}.a.b.c }}}}"),
            19 => "{{ 3x }}".into(),
            20 => "{{ upper 1 }}".into(),
            21 => "{{ len 3 }}".into(),
            22 => "{{ index .Values.list 99 }}".into(),
            _ => format!("{{{{ {p} | fail }}}}"),
        }
    }

    /// A whole template: some defines (before or after the body) and a body.
    fn template(&mut self) -> String {
        let mut pre = String::new();
        let mut post = String::new();
        let n = self.pick(&[0, 0, 0, 0, 0, 0, 1, 1, 1, 2]);
        let mut names: Vec<&str> = DEFINE_NAMES.to_vec();
        for i in 0..n {
            let name = names.remove(self.rng.random_range(0..names.len()));
            // Bodies only call templates defined before them: no recursion but t.rec's.
            let d = self.define(name);
            self.defines.push(name.to_string());
            if i % 2 == 0 && self.chance(0.7) {
                pre.push_str(&d);
            } else {
                post.push_str(&d);
            }
        }
        let mut body = self.block(6);
        // One case in twelve has one deliberately wrong action somewhere.
        if self.chance(1.0 / 12.0) {
            let w = self.wrong();
            let p = pieces(&body);
            let at = self.rng.random_range(0..=p.len());
            body = format!("{}{w}{}", p[..at].concat(), p[at..].concat());
        }
        if !self.defines.is_empty() && !self.defines.iter().any(|d| body.contains(&go_quote(d))) {
            let i = self.rng.random_range(0..self.defines.len());
            let name = go_quote(&self.defines[i].clone());
            let call = if self.chance(0.5) {
                format!("{{{{ include {name} . }}}}")
            } else {
                format!("{{{{ template {name} . }}}}")
            };
            body.push_str(&call);
        }
        // Helpers some idioms include.
        if body.contains("t.reader") || pre.contains("t.reader") || post.contains("t.reader") {
            post.push_str("{{- define \"t.reader\" }}[{{ .Values.s }}|{{ .Values.added }}]{{ end }}");
        }
        let all = format!("{pre}{body}{post}");
        if all.contains("\"t.rec\"") && !all.contains("define \"t.rec\"") {
            post.push_str(
                "{{- define \"t.rec\" }}{{- if gt (len .) 0 }}{{ first . }},{{ include \"t.rec\" (rest .) }}{{ end -}}{{ end }}",
            );
        }
        format!("{pre}{body}{post}")
    }
}

fn field_paths(values: &Json) -> Vec<(String, Json)> {
    fn walk(v: &Json, prefix: &str, depth: usize, out: &mut Vec<(String, Json)>) {
        let Json::Object(m) = v else { return };
        for (k, c) in m {
            if !is_ident(k) {
                continue;
            }
            let p = format!("{prefix}.{k}");
            out.push((p.clone(), c.clone()));
            if depth < 3 {
                walk(c, &p, depth + 1, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(values, "", 1, &mut out);
    out
}

/// Case `index` of the run seeded with `seed`: template source and values.
fn gen_case(seed: u64, index: u64) -> (String, Json) {
    let mut rng = StdRng::seed_from_u64(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ index);
    let values = VGen { rng: &mut rng }.values();
    let budget = rng.random_range(6..40);
    let mut g = G {
        rng: &mut rng,
        values: values.clone(),
        scopes: vec![vec![("$".to_string(), K::Any)]],
        defines: Vec::new(),
        in_range: 0,
        depth: 0,
        expr_depth: 0,
        budget,
        dot: Dot::Root,
        next_var: 0,
        all_paths: field_paths(&values),
    };
    let src = g.template();
    (src, values)
}

// ---------------------------------------------------------------------------------------
// Template pieces: for minimising and classifying.

/// `src` split into text and `{{ ... }}` actions (quotes and comments respected); text is
/// split further at newlines. Concatenated, the pieces are `src`.
fn pieces(src: &str) -> Vec<String> {
    let mut out = Vec::new();
    let b = src.as_bytes();
    let mut i = 0;
    let mut text_start = 0;
    let push_text = |out: &mut Vec<String>, t: &str| {
        for line in t.split_inclusive('\n') {
            out.push(line.to_string());
        }
    };
    while i + 1 < b.len() {
        if b[i] == b'{' && b[i + 1] == b'{' {
            push_text(&mut out, &src[text_start..i]);
            let end = action_end(src, i);
            out.push(src[i..end].to_string());
            i = end;
            text_start = end;
        } else {
            i += 1;
        }
    }
    push_text(&mut out, &src[text_start..]);
    out.retain(|p| !p.is_empty());
    out
}

/// The index just past the action opening at `start` (or the end of `src`).
fn action_end(src: &str, start: usize) -> usize {
    let b = src.as_bytes();
    let mut i = start + 2;
    let mut quote: Option<u8> = None;
    while i < b.len() {
        let c = b[i];
        match quote {
            Some(q) => {
                if c == b'\\' && q != b'`' {
                    i += 1;
                } else if c == q {
                    quote = None;
                }
            }
            None => {
                if c == b'"' || c == b'`' || c == b'\'' {
                    quote = Some(c);
                } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
                    if let Some(e) = src[i + 2..].find("*/") {
                        i += 2 + e + 1;
                    } else {
                        return b.len();
                    }
                } else if c == b'}' && b.get(i + 1) == Some(&b'}') {
                    return i + 2;
                }
            }
        }
        i += 1;
    }
    b.len()
}

/// The inside of an action, without delimiters and trim markers.
fn action_inner(a: &str) -> Option<&str> {
    let inner = a.strip_prefix("{{")?;
    let inner = inner.strip_suffix("}}").unwrap_or(inner);
    let inner = inner.strip_prefix('-').unwrap_or(inner);
    let inner = inner.strip_suffix('-').unwrap_or(inner);
    Some(inner.trim())
}

/// Splits at `sep` bytes outside quotes and parentheses.
fn split_top(s: &str, sep: u8) -> Vec<String> {
    let b = s.as_bytes();
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut quote: Option<u8> = None;
    let mut start = 0;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match quote {
            Some(q) => {
                if c == b'\\' && q != b'`' {
                    i += 1;
                } else if c == q {
                    quote = None;
                }
            }
            None => match c {
                b'"' | b'`' | b'\'' => quote = Some(c),
                b'(' => depth += 1,
                b')' => depth -= 1,
                _ if c == sep && depth == 0 => {
                    parts.push(s[start..i].to_string());
                    start = i + 1;
                }
                _ => {}
            },
        }
        i += 1;
    }
    parts.push(s[start..].to_string());
    parts
}

/// The functions and keywords a template uses (plus `paren-field` for `(...).x`).
fn features(src: &str) -> BTreeSet<String> {
    let mut set = BTreeSet::new();
    for p in pieces(src) {
        let Some(inner) = action_inner(&p) else { continue };
        if inner.starts_with("/*") {
            continue;
        }
        let b = inner.as_bytes();
        let mut i = 0;
        let mut quote: Option<u8> = None;
        while i < b.len() {
            let c = b[i];
            if let Some(q) = quote {
                if c == b'\\' && q != b'`' {
                    i += 1;
                } else if c == q {
                    quote = None;
                }
                i += 1;
                continue;
            }
            if c == b'"' || c == b'`' || c == b'\'' {
                quote = Some(c);
                i += 1;
                continue;
            }
            if c == b')' && b.get(i + 1) == Some(&b'.') {
                set.insert("paren-field".to_string());
            }
            if c.is_ascii_alphabetic() {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                let prev = if start > 0 { b[start - 1] } else { b' ' };
                let word = &inner[start..i];
                if prev != b'.' && prev != b'$' && !prev.is_ascii_digit() {
                    if FUNCS.iter().any(|f| f.name == word) || KEYWORDS.contains(&word) {
                        if word != "end" {
                            set.insert(word.to_string());
                        }
                    } else if !matches!(word, "true" | "false") {
                        set.insert(format!("?{word}"));
                    }
                }
                continue;
            }
            i += 1;
        }
    }
    set
}

// ---------------------------------------------------------------------------------------
// Minimising.

struct Minimizer<'s> {
    sides: &'s mut Sides,
    kind: Kind,
    budget: usize,
    last: Option<(Said, Said)>,
}

impl Minimizer<'_> {
    fn still(&mut self, src: &str, values: &Json) -> bool {
        if self.budget == 0 {
            return false;
        }
        self.budget -= 1;
        let (g, c) = self.sides.both(src, values);
        if disagreement(&g, &c) == Some(self.kind) {
            self.last = Some((g, c));
            true
        } else {
            false
        }
    }

    fn run(&mut self, src: &str, values: &Json) -> (String, Json) {
        let mut p = pieces(src);
        let mut values = values.clone();
        let mut before = usize::MAX;
        // Until nothing more goes: whole blocks, unwrapped blocks, runs of pieces.
        while p.len() < before && self.budget > 0 {
            before = p.len();
            self.blocks(&mut p, &values);
            self.runs(&mut p, &values);
        }
        // Inside actions: drop pipeline stages, trim markers, shorten text.
        for i in 0..p.len() {
            let piece = p[i].clone();
            let Some(inner) = action_inner(&piece) else {
                if piece.len() > 1 {
                    let mut cand = p.clone();
                    cand[i] = piece.chars().take(1).collect();
                    if self.still(&cand.concat(), &values) {
                        p = cand;
                    }
                }
                continue;
            };
            let mut variants = Vec::new();
            let plain = format!("{{{{ {inner} }}}}");
            if plain != piece {
                variants.push(plain.clone());
            }
            let stages = split_top(inner, b'|');
            for s in 1..stages.len() {
                let mut st = stages.clone();
                st.remove(s);
                variants.push(format!("{{{{ {} }}}}", st.join("|").trim()));
            }
            for v in variants {
                let mut cand = p.clone();
                cand[i] = v;
                if self.still(&cand.concat(), &values) {
                    p = cand;
                }
            }
        }
        let src = p.concat();
        // Values: drop keys and list items, deepest last.
        let mut changed = true;
        while changed && self.budget > 0 {
            changed = false;
            for path in value_paths(&values) {
                let cand = remove_path(&values, &path);
                if self.still(&src, &cand) {
                    values = cand;
                    changed = true;
                    break;
                }
            }
        }
        (src, values)
    }
}

impl Minimizer<'_> {
    /// Drops runs of pieces, halving the run length (ddmin without complements); runs of
    /// one and two pieces are tried at every offset.
    fn runs(&mut self, p: &mut Vec<String>, values: &Json) {
        let mut chunk = (p.len() / 2).max(1);
        loop {
            let mut i = 0;
            while i < p.len() && self.budget > 0 {
                let end = (i + chunk).min(p.len());
                let cand: Vec<String> = p[..i].iter().chain(p[end..].iter()).cloned().collect();
                if !cand.is_empty() && self.still(&cand.concat(), values) {
                    *p = cand;
                } else {
                    i += if chunk <= 2 { 1 } else { chunk };
                }
            }
            if chunk == 1 || self.budget == 0 {
                break;
            }
            chunk = (chunk / 2).max(1);
        }
    }

    /// For each `{{ if/with/range/define/block }}...{{ end }}`: drop it whole, or keep only
    /// its first branch without the delimiting actions.
    fn blocks(&mut self, p: &mut Vec<String>, values: &Json) {
        let mut i = 0;
        while i < p.len() && self.budget > 0 {
            let Some((elses, end)) = block_at(p, i) else {
                i += 1;
                continue;
            };
            let whole: Vec<String> = p[..i].iter().chain(p[end + 1..].iter()).cloned().collect();
            if !whole.is_empty() && self.still(&whole.concat(), values) {
                *p = whole;
                continue;
            }
            let first_end = elses.first().copied().unwrap_or(end);
            let unwrapped: Vec<String> = p[..i]
                .iter()
                .chain(p[i + 1..first_end].iter())
                .chain(p[end + 1..].iter())
                .cloned()
                .collect();
            if !unwrapped.is_empty() && self.still(&unwrapped.concat(), values) {
                *p = unwrapped;
                continue;
            }
            i += 1;
        }
    }
}

/// The first word of an action (`if`, `end`, ...), if `piece` is one.
fn action_keyword(piece: &str) -> Option<&str> {
    let inner = action_inner(piece)?;
    inner
        .split(|c: char| c.is_whitespace() || c == '(' || c == '"')
        .next()
}

/// If `p[i]` opens a block: the indexes of its own `else` actions and of its `end`.
fn block_at(p: &[String], i: usize) -> Option<(Vec<usize>, usize)> {
    let opens = |k: Option<&str>| matches!(k, Some("if" | "with" | "range" | "define" | "block"));
    if !opens(action_keyword(&p[i])) {
        return None;
    }
    let mut depth = 0;
    let mut elses = Vec::new();
    for (j, piece) in p.iter().enumerate().skip(i + 1) {
        let k = action_keyword(piece);
        if opens(k) {
            depth += 1;
        } else if k == Some("end") {
            if depth == 0 {
                return Some((elses, j));
            }
            depth -= 1;
        } else if k == Some("else") && depth == 0 {
            elses.push(j);
        }
    }
    None
}

fn value_paths(v: &Json) -> Vec<Vec<Json>> {
    let mut out = Vec::new();
    fn walk(v: &Json, prefix: &mut Vec<Json>, out: &mut Vec<Vec<Json>>) {
        match v {
            Json::Object(m) => {
                for (k, c) in m {
                    prefix.push(Json::String(k.clone()));
                    out.push(prefix.clone());
                    walk(c, prefix, out);
                    prefix.pop();
                }
            }
            Json::Array(a) => {
                for (i, c) in a.iter().enumerate() {
                    prefix.push(json!(i));
                    out.push(prefix.clone());
                    walk(c, prefix, out);
                    prefix.pop();
                }
            }
            _ => {}
        }
    }
    walk(v, &mut Vec::new(), &mut out);
    out
}

fn remove_path(v: &Json, path: &[Json]) -> Json {
    let mut v = v.clone();
    let mut cur = &mut v;
    for (i, step) in path.iter().enumerate() {
        let last = i + 1 == path.len();
        match (cur, step) {
            (Json::Object(m), Json::String(k)) => {
                if last {
                    m.remove(k);
                    break;
                }
                match m.get_mut(k) {
                    Some(c) => cur = c,
                    None => break,
                }
            }
            (Json::Array(a), Json::Number(n)) => {
                let idx = n.as_u64().unwrap_or(0) as usize;
                if last {
                    if idx < a.len() {
                        a.remove(idx);
                    }
                    break;
                }
                match a.get_mut(idx) {
                    Some(c) => cur = c,
                    None => break,
                }
            }
            _ => break,
        }
    }
    v
}

// ---------------------------------------------------------------------------------------
// The fuzzing loop.

struct Class {
    count: usize,
    /// The smallest example: (src, values, go, convoy).
    example: (String, Json, Said, Said),
    files: usize,
}

fn signature(kind: Kind, src: &str) -> String {
    let f = features(src);
    let names: Vec<&str> = f
        .iter()
        .map(String::as_str)
        .filter(|w| !w.starts_with('?'))
        .collect();
    let shown = if names.len() > 5 {
        format!("{},+{}", names[..5].join(","), names.len() - 5)
    } else if names.is_empty() {
        "(no function)".into()
    } else {
        names.join(",")
    };
    // Where Debian's libraries differ from the ones Helm pins (Masterminds/semver 3.2.0 vs
    // 3.4.0 on prereleases, mergo 0.3.12 vs 1.0.1 on empty values, BurntSushi/toml 1.2.0 vs
    // newer on nil), Go's answer is suspect: check tests/function_vectors first.
    let suspect = if names
        .iter()
        .any(|n| matches!(*n, "semverCompare" | "toToml" | "merge" | "mergeOverwrite"))
    {
        " [oracle library version?]"
    } else {
        ""
    };
    format!("{} | {shown}{suspect}", kind.label())
}

fn slug(s: &str) -> String {
    let mut o: String = s
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    while o.contains("--") {
        o = o.replace("--", "-");
    }
    o.trim_matches('-').chars().take(60).collect()
}

fn fuzz(args: &Args) {
    let mut sides = Sides::start(args.timeout);
    std::fs::create_dir_all(&args.out).unwrap_or_else(|e| die(&format!("{}: {e}", args.out.display())));
    if let Ok(rd) = std::fs::read_dir(&args.out) {
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().to_string();
            if n.starts_with("div-") || n.starts_with("summary.") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    if let Some(r) = &args.record {
        std::fs::create_dir_all(r).unwrap_or_else(|e| die(&format!("{}: {e}", r.display())));
    }
    let start = Instant::now();
    let deadline = args.seconds.map(|s| start + Duration::from_secs(s));
    let mut stats: BTreeMap<&str, usize> = BTreeMap::new();
    let mut classes: BTreeMap<String, Class> = BTreeMap::new();
    let mut by_feature: BTreeMap<String, usize> = BTreeMap::new();
    let mut recorded: BTreeSet<String> = BTreeSet::new();
    let mut go_reasons: BTreeMap<String, usize> = BTreeMap::new();
    let mut record_n = 0usize;
    let mut div_n = 0usize;
    let mut last_report = Instant::now();
    let mut i: u64 = 0;
    eprintln!("difffuzz: seed {} out {}", args.seed, args.out.display());
    loop {
        if args.cases.is_some_and(|n| i >= n) || deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        if last_report.elapsed() > Duration::from_secs(30) {
            last_report = Instant::now();
            eprintln!(
                "difffuzz: {i} cases, {div_n} divergences, {} classes, {:.0}s",
                classes.len(),
                start.elapsed().as_secs_f64()
            );
        }
        let (src, values) = gen_case(args.seed, i);
        i += 1;
        if args.show {
            eprintln!("--- case {}\n{src}", i - 1);
        }
        let (go, convoy) = sides.both(&src, &values);
        *stats.entry("cases").or_default() += 1;
        match &go {
            Said::Done(Outcome::Out(_)) => *stats.entry("go ok").or_default() += 1,
            Said::Done(Outcome::Err(e)) => {
                *stats.entry("go error").or_default() += 1;
                *go_reasons.entry(error_reason(e)).or_default() += 1;
            }
            Said::InvalidUtf8(_) => {
                *stats.entry("skipped: Go output not UTF-8").or_default() += 1;
                continue;
            }
            Said::Unstable(_) => {
                *stats.entry("skipped: Go output shows a pointer").or_default() += 1;
                continue;
            }
            Said::Timeout | Said::Died(_) => {
                *stats.entry("skipped: oracle failed").or_default() += 1;
                if sides.go_failures.len() < 20 {
                    sides.go_failures.push(format!("{}: {src:?}", said_short(&go)));
                }
                continue;
            }
        }
        if go119_range_over_int(&go, &convoy) {
            *stats
                .entry("skipped: Go 1.19 cannot range over an int")
                .or_default() += 1;
            continue;
        }
        let Some(kind) = disagreement(&go, &convoy) else {
            *stats.entry("agree").or_default() += 1;
            if let (Some(dir), Said::Done(g)) = (&args.record, &go) {
                let feats = features(&src);
                let sig = format!("{} {feats:?}", g.is_err());
                if src.len() <= 300 && feats.len() <= 3 && recorded.insert(sig) {
                    record_n += 1;
                    write_case(dir, record_n, "fuzz", &src, &values, g, None);
                }
            }
            continue;
        };
        div_n += 1;
        *stats.entry("divergences").or_default() += 1;
        let (msrc, mvalues, mgo, mconvoy) = if kind == Kind::ConvoyTimeout {
            (src.clone(), values.clone(), go.clone(), convoy.clone())
        } else {
            let mut m = Minimizer {
                sides: &mut sides,
                kind,
                budget: args.minimize_budget,
                last: None,
            };
            let (s, v) = m.run(&src, &values);
            match m.last.take() {
                Some((g, c)) => (s, v, g, c),
                None => (src.clone(), values.clone(), go.clone(), convoy.clone()),
            }
        };
        let sig = signature(kind, &msrc);
        for f in features(&msrc) {
            if !f.starts_with('?') {
                *by_feature.entry(f).or_default() += 1;
            }
        }
        let class = classes.entry(sig.clone()).or_insert_with(|| Class {
            count: 0,
            example: (msrc.clone(), mvalues.clone(), mgo.clone(), mconvoy.clone()),
            files: 0,
        });
        class.count += 1;
        if msrc.len() < class.example.0.len() {
            class.example = (msrc.clone(), mvalues.clone(), mgo.clone(), mconvoy.clone());
        }
        if class.files < args.files_per_class {
            class.files += 1;
            let file = args
                .out
                .join(format!("div-{}-{}-{div_n}.json", kind.label(), slug(&sig)));
            let doc = json!({
                "name": NAME,
                "note": sig,
                "src": msrc,
                "values": mvalues,
                "go": said_json(&mgo),
                "convoy": said_json(&mconvoy),
                "original_src": src,
                "original_values": values,
                "seed": args.seed,
                "case": i - 1,
            });
            let _ = std::fs::write(
                &file,
                serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n",
            );
            if let (Some(dir), Said::Done(g)) = (&args.record, &mgo) {
                record_n += 1;
                write_case(
                    dir,
                    record_n,
                    "div",
                    &msrc,
                    &mvalues,
                    g,
                    Some(format!("divergence: {sig}")),
                );
            }
        }
    }
    let mut summary = summarize(args, &stats, &classes, &by_feature, &sides, start.elapsed());
    let mut reasons: Vec<(&String, &usize)> = go_reasons.iter().collect();
    reasons.sort_by(|a, b| b.1.cmp(a.1));
    summary.push_str("\nwhy Go failed (top 25; tune the generator to keep these low):\n");
    for (r, c) in reasons.iter().take(25) {
        summary.push_str(&format!("{c:6}  {r}\n"));
    }
    print!("{summary}");
    let _ = std::fs::write(args.out.join("summary.txt"), &summary);
    if div_n > 0 {
        std::process::exit(1);
    }
}

fn summarize(
    args: &Args,
    stats: &BTreeMap<&str, usize>,
    classes: &BTreeMap<String, Class>,
    by_feature: &BTreeMap<String, usize>,
    sides: &Sides,
    took: Duration,
) -> String {
    let mut s = String::new();
    let n = |k: &str| stats.get(k).copied().unwrap_or(0);
    s.push_str(&format!(
        "difffuzz: {} cases in {:.0}s (seed {}): {} agree, {} divergences in {} classes; Go rendered {}, Go failed {}\n",
        n("cases"),
        took.as_secs_f64(),
        args.seed,
        n("agree"),
        n("divergences"),
        classes.len(),
        n("go ok"),
        n("go error"),
    ));
    for (k, v) in stats {
        if k.starts_with("skipped") {
            s.push_str(&format!("  {k}: {v}\n"));
        }
    }
    s.push_str(&format!(
        "  convoy worker restarts: {}, oracle restarts: {}; time waiting: Go {:.1}s, convoy {:.1}s\n",
        sides.convoy.restarts,
        sides.go.restarts,
        sides.go_time.as_secs_f64(),
        sides.convoy_time.as_secs_f64()
    ));
    for f in &sides.go_failures {
        s.push_str(&format!("  oracle failure: {}\n", shorten(f, 300)));
    }
    let mut sorted: Vec<(&String, &Class)> = classes.iter().collect();
    sorted.sort_by(|a, b| b.1.count.cmp(&a.1.count).then(a.0.cmp(b.0)));
    s.push_str("\ndivergences by class (kind | functions and keywords of the minimised template):\n");
    for (sig, c) in &sorted {
        let (src, values, g, cv) = &c.example;
        s.push_str(&format!("{:6}  {sig}\n", c.count));
        s.push_str(&format!("        src:    {src:?}\n"));
        let vals = serde_json::to_string(&normalize_numbers(values)).unwrap_or_default();
        if vals != "{}" {
            s.push_str(&format!("        values: {}\n", shorten(&vals, 300)));
        }
        s.push_str(&format!("        go:     {}\n", said_short(g)));
        s.push_str(&format!("        convoy: {}\n", said_short(cv)));
    }
    let mut feats: Vec<(&String, &usize)> = by_feature.iter().collect();
    feats.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    s.push_str("\ndivergences by construct (minimised templates using it):\n");
    for (f, c) in feats {
        s.push_str(&format!("{c:6}  {f}\n"));
    }
    s.push_str(&format!("\nfiles: {}\n", args.out.display()));
    s
}

fn write_case(
    dir: &Path,
    n: usize,
    prefix: &str,
    src: &str,
    values: &Json,
    go: &Outcome,
    note: Option<String>,
) {
    let case = Case {
        file: PathBuf::new(),
        name: NAME.to_string(),
        src: src.to_string(),
        values: values.clone(),
        go: Some(go.clone()),
        note,
    };
    let file = dir.join(format!("{prefix}-{n:04}.json"));
    let _ = std::fs::write(file, case.to_pretty());
}

// ---------------------------------------------------------------------------------------
// Other modes.

fn replay(args: &Args) {
    let mut sides = Sides::start(args.timeout);
    let mut bad = 0;
    for f in &args.replay {
        let case = Case::load(f).unwrap_or_else(|e| die(&e));
        let req = case.request();
        let go = sides.go(&req);
        let convoy = sides.convoy(&req);
        let verdict = match disagreement(&go, &convoy) {
            None if !matches!(go, Said::Done(_)) => "no usable answer from Go".to_string(),
            None => "agree".to_string(),
            Some(k) => {
                bad += 1;
                format!("DIFFER ({})", k.label())
            }
        };
        println!("{}: {verdict}", f.display());
        println!("  src:    {:?}", case.src);
        println!("  go:     {}", said_short(&go));
        println!("  convoy: {}", said_short(&convoy));
        if let Some(rec) = &case.go
            && Said::Done(rec.clone()) != go
        {
            println!("  (recorded Go result differs: {})", rec.short());
        }
    }
    println!("{} of {} agree", args.replay.len() - bad, args.replay.len());
}

fn next_number(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    let n = e.file_name().to_string_lossy().to_string();
                    n.split('-').next().and_then(|d| d.parse::<usize>().ok())
                })
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0)
        + 1
}

fn import(args: &Args, file: &Path) {
    let dir = args
        .record
        .clone()
        .unwrap_or_else(|| die("--import needs --record DIR"));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| die(&format!("{}: {e}", dir.display())));
    let mut sides = Sides::start(args.timeout);
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| die(&format!("{}: {e}", file.display())));
    let mut n = next_number(&dir);
    for (lineno, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.trim_start().starts_with("//") {
            continue;
        }
        let v: Json = serde_json::from_str(line)
            .unwrap_or_else(|e| die(&format!("{}:{}: {e}", file.display(), lineno + 1)));
        let mut case = Case::from_json(file, &v).unwrap_or_else(|e| die(&e));
        match sides.go(&case.request()) {
            Said::Done(o) => case.go = Some(o),
            other => {
                eprintln!(
                    "{}:{}: oracle: {}; skipped",
                    file.display(),
                    lineno + 1,
                    said_short(&other)
                );
                continue;
            }
        }
        let label = v["slug"]
            .as_str()
            .map(str::to_string)
            .or_else(|| case.note.as_deref().map(slug))
            .unwrap_or_else(|| slug(&case.src));
        let path = dir.join(format!(
            "{n:03}-{}.json",
            slug(&label).chars().take(40).collect::<String>()
        ));
        std::fs::write(&path, case.to_pretty()).unwrap_or_else(|e| die(&format!("{}: {e}", path.display())));
        println!(
            "{}: {}",
            path.display(),
            case.go.as_ref().map(Outcome::short).unwrap_or_default()
        );
        n += 1;
    }
}

fn fill(args: &Args, dir: &Path) {
    let mut sides = Sides::start(args.timeout);
    let cases = harness::load_corpus(dir).unwrap_or_else(|e| die(&e));
    let mut changed = 0;
    for mut case in cases {
        if case.go.is_some() && !args.force {
            continue;
        }
        match sides.go(&case.request()) {
            Said::Done(o) => {
                if case.go.as_ref() != Some(&o) {
                    println!("{}: {}", case.file.display(), o.short());
                    changed += 1;
                }
                case.go = Some(o);
                let _ = std::fs::write(&case.file, case.to_pretty());
            }
            other => eprintln!("{}: oracle: {}", case.file.display(), said_short(&other)),
        }
    }
    println!("{changed} Go results added or changed");
}

fn bench(args: &Args, file: &Path) {
    let case = Case::load(file).unwrap_or_else(|e| die(&e));
    let runs = args.runs.max(1);
    let values = normalize_numbers(&case.values);
    let mut times: Vec<u128> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            let r = convoy_chart::render_str(&case.name, &case.src, &values);
            std::hint::black_box(r.is_ok());
            t.elapsed().as_nanos()
        })
        .collect();
    times.sort_unstable();
    let convoy_ns = times[times.len() / 2];
    let oracle = harness::oracle_binary().unwrap_or_else(|e| die(&format!("no Go oracle: {e}")));
    let mut go = LineChild::new(&oracle, &[], Duration::from_secs(600));
    let mut go_median = |parse: bool| -> u64 {
        let mut req: Json = serde_json::from_str(&case.request()).unwrap_or_default();
        req["bench"] = json!(runs);
        req["bench_parse"] = json!(parse);
        match go.request(&req.to_string()) {
            Reply::Line(v) => v["median_ns"].as_u64().unwrap_or(0),
            other => die(&format!("oracle: {other:?}")),
        }
    };
    let (go_exec, go_all) = (go_median(false), go_median(true));
    println!(
        "{}: median of {runs} renders: convoy {convoy_ns} ns (render_str: parse + execute); Go {go_all} ns (parse + execute), {go_exec} ns (execute only)",
        file.display()
    );
}

//! What a render read of its values, so that a render of other values can be proved to
//! come out the same without running it ([`crate::memo`]).
//!
//! A render's output is a function of what its templates observe. While a trace is on
//! (on the render's own thread), every map built from the values ([`traced_value`]) carries
//! its path, and each observation of such a map is recorded: a lookup of one key
//! ([`Observed::Key`]), or anything that sees the whole map (ranging over it, printing it,
//! its length, `toYaml`, equality, a copy: [`Observed::Whole`]). Writes are not
//! observations: what a template wrote and then reads back is the same for any values that
//! agree on everything observed before, by induction over the run.
//!
//! Functions whose result is not a function of their arguments (the clock, randomness,
//! generated keys and certificates, DNS, `lookup`) mark the trace: such a render is never
//! shared.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde_json::Value as Json;

use super::value::{Dict, Map, Value};

/// One observation of a values map, by the map's path from the values' root.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Observed {
    /// The value under one key (or its absence) of the map at the path.
    Key(Vec<Arc<str>>, Arc<str>),
    /// Everything in the map at the path.
    Whole(Vec<Arc<str>>),
}

/// What one traced render observed.
#[derive(Debug, Clone, Default)]
pub struct Observations {
    /// Each observation once, in the order first made.
    pub observed: Vec<Observed>,
    /// A function whose result is not a function of its arguments ran.
    pub nondeterministic: bool,
}

#[derive(Default)]
struct Trace {
    /// Each traced map's parent and key; the root has no parent.
    paths: Vec<(Option<u32>, Arc<str>)>,
    keys: HashMap<u32, HashSet<Arc<str>>>,
    whole: HashSet<u32>,
    order: Vec<(u32, Option<Arc<str>>)>,
    nondeterministic: bool,
}

thread_local! {
    static TRACE: RefCell<Option<Trace>> = const { RefCell::new(None) };
}

/// Functions whose result is not a function of their arguments: a render that calls one
/// is never shared. The date functions are all here because they read the clock when
/// their argument is not a time.
pub const NONDETERMINISTIC: &[&str] = &[
    "now",
    "date",
    "dateInZone",
    "date_in_zone",
    "htmlDate",
    "htmlDateInZone",
    "ago",
    "duration",
    "durationRound",
    "unixEpoch",
    "dateModify",
    "date_modify",
    "mustDateModify",
    "must_date_modify",
    "toDate",
    "mustToDate",
    "randAlphaNum",
    "randAlpha",
    "randAscii",
    "randNumeric",
    "randBytes",
    "randInt",
    "shuffle",
    "uuidv4",
    "encryptAES",
    "bcrypt",
    "htpasswd",
    "genPrivateKey",
    "genCA",
    "genCAWithKey",
    "genSelfSignedCert",
    "genSelfSignedCertWithKey",
    "genSignedCert",
    "genSignedCertWithKey",
    "getHostByName",
    "lookup",
];

/// Starts tracing this thread's render.
pub fn start() {
    TRACE.with(|t| *t.borrow_mut() = Some(Trace::default()));
}

/// Stops tracing and returns what was observed (nothing when no trace was on).
pub fn finish() -> Option<Observations> {
    let trace = TRACE.with(|t| t.borrow_mut().take())?;
    let path = |mut id: u32| {
        let mut keys = Vec::new();
        while let Some((parent, key)) = trace.paths.get(id as usize) {
            match parent {
                Some(p) => {
                    keys.push(key.clone());
                    id = *p;
                }
                None => break,
            }
        }
        keys.reverse();
        keys
    };
    let observed = trace
        .order
        .iter()
        .map(|(id, key)| match key {
            Some(k) => Observed::Key(path(*id), k.clone()),
            None => Observed::Whole(path(*id)),
        })
        .collect();
    Some(Observations {
        observed,
        nondeterministic: trace.nondeterministic,
    })
}

/// Records that the render called `function`, if its result is not a function of its
/// arguments.
pub(crate) fn called(function: &str) {
    if NONDETERMINISTIC.contains(&function) {
        TRACE.with(|t| {
            if let Some(t) = t.borrow_mut().as_mut() {
                t.nondeterministic = true;
            }
        });
    }
}

pub(super) fn observe(id: u32, key: Option<&str>) {
    TRACE.with(|t| {
        let mut t = t.borrow_mut();
        let Some(t) = t.as_mut() else { return };
        match key {
            Some(key) => {
                let keys = t.keys.entry(id).or_default();
                if !keys.contains(key) {
                    let key: Arc<str> = Arc::from(key);
                    keys.insert(key.clone());
                    t.order.push((id, Some(key)));
                }
            }
            None => {
                if t.whole.insert(id) {
                    t.order.push((id, None));
                }
            }
        }
    });
}

fn new_path(parent: Option<u32>, key: Arc<str>) -> Option<u32> {
    TRACE.with(|t| {
        let mut t = t.borrow_mut();
        let t = t.as_mut()?;
        let id = u32::try_from(t.paths.len()).ok()?;
        t.paths.push((parent, key));
        Some(id)
    })
}

/// The values as a template map whose maps (reached through maps from the root) record
/// what is observed of them; a plain map when no trace is on.
pub fn traced_value(values: &serde_json::Map<String, Json>) -> Value {
    traced_map(values, None, Arc::from(""))
}

fn traced_map(m: &serde_json::Map<String, Json>, parent: Option<u32>, key: Arc<str>) -> Value {
    let id = new_path(parent, key);
    let entries: Dict = m
        .iter()
        .map(|(k, v)| {
            let k: Arc<str> = Arc::from(k.as_str());
            let v = match (v, id) {
                (Json::Object(child), Some(id)) => traced_map(child, Some(id), k.clone()),
                _ => crate::engine::convert::to_value(v),
            };
            (k, v)
        })
        .collect();
    Value::Map(match id {
        Some(id) => Map::traced(entries, id),
        None => Map::new(entries),
    })
}

//! Semantic versions and constraints with the rules of `Masterminds/semver` v3, which both
//! sprig (`semver`, `semverCompare`) and Helm (dependency and repository version ranges) use.
//!
//! Those rules differ from Cargo's: `1.2` is a valid version (1.2.0); `^0.2.3` means
//! `>=0.2.3 <0.3.0`; `1.2.x`, `*`, hyphen ranges (`1.2 - 1.4.5`) and `||` are allowed; and a
//! pre-release version only satisfies a constraint that itself names a pre-release.

use std::cmp::Ordering;
use std::rc::Rc;

use crate::tmpl::{Error, FuncMap, Object, Result as ExecResult, Value};

use super::add;
use super::conv::{arity, call_error, go_type_name, str_arg, string};

/// A parsed version (`v1.2.3-beta.1+build`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version {
    /// Major number.
    pub major: u64,
    /// Minor number (0 when omitted).
    pub minor: u64,
    /// Patch number (0 when omitted).
    pub patch: u64,
    /// Pre-release identifiers, dot-separated, without the leading `-`.
    pub pre: String,
    /// Build metadata without the leading `+`; ignored when comparing.
    pub metadata: String,
    /// The text as given.
    pub original: String,
}

fn valid_idents(s: &str) -> bool {
    !s.is_empty()
        && s.split('.')
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
}

impl Version {
    /// Parses a version as `semver.NewVersion` does (non-strict: `v` prefix, missing minor
    /// or patch allowed).
    pub fn parse(s: &str) -> Result<Version, String> {
        let invalid = || format!("Invalid Semantic Version: {s:?}");
        let body = s.strip_prefix('v').unwrap_or(s);
        let (body, metadata) = match body.split_once('+') {
            Some((b, m)) if valid_idents(m) => (b, m),
            Some(_) => return Err(invalid()),
            None => (body, ""),
        };
        let (core, pre) = match body.split_once('-') {
            Some((c, p)) if valid_idents(p) => (c, p),
            Some(_) => return Err(invalid()),
            None => (body, ""),
        };
        let nums: Vec<&str> = core.split('.').collect();
        if nums.is_empty() || nums.len() > 3 {
            return Err(invalid());
        }
        let mut parsed = [0u64; 3];
        for (i, n) in nums.iter().enumerate() {
            if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid());
            }
            parsed[i] = n.parse().map_err(|_| invalid())?;
        }
        for ident in pre.split('.').filter(|p| !p.is_empty()) {
            if ident.len() > 1 && ident.starts_with('0') && ident.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("Version segment starts with 0: {s:?}"));
            }
        }
        Ok(Version {
            major: parsed[0],
            minor: parsed[1],
            patch: parsed[2],
            pre: pre.to_string(),
            metadata: metadata.to_string(),
            original: s.to_string(),
        })
    }

    /// Precedence order (metadata ignored).
    pub fn compare(&self, other: &Version) -> Ordering {
        (self.major, self.minor, self.patch)
            .cmp(&(other.major, other.minor, other.patch))
            .then_with(|| compare_pre(&self.pre, &other.pre))
    }

    /// `Version.String()`: the version without the `v` prefix, with pre-release and
    /// metadata (`1.2.0-rc.1+b7`).
    pub fn canonical(&self) -> String {
        let mut out = format!("{}.{}.{}", self.major, self.minor, self.patch);
        if !self.pre.is_empty() {
            out.push('-');
            out.push_str(&self.pre);
        }
        if !self.metadata.is_empty() {
            out.push('+');
            out.push_str(&self.metadata);
        }
        out
    }

    /// The `v` of the original text, which `Inc*` and `Set*` keep (`originalVPrefix`).
    fn v_prefix(&self) -> &'static str {
        if self.original.starts_with('v') { "v" } else { "" }
    }

    /// A derived version (`IncPatch`, `SetPrerelease`, ...): its original text is rebuilt.
    fn derived(&self, f: impl FnOnce(&mut Version)) -> Version {
        let mut next = self.clone();
        f(&mut next);
        next.original = format!("{}{}", self.v_prefix(), next.canonical());
        next
    }
}

/// What `semver` returns: Masterminds' `*semver.Version`, or a `semver.Version` value (what
/// `IncPatch`, `SetPrerelease`, ... return). Templates reach its methods (`.Major`,
/// `.Prerelease`, `.LessThan $other`, ...); functions and `toJson` see its `String()`, as
/// Go's `fmt` (a `Stringer`) and `encoding/json` (`MarshalJSON`) do.
#[derive(Debug)]
pub(crate) struct SemverObject {
    version: Version,
    /// `*semver.Version` rather than `semver.Version`: only the pointer has the methods with
    /// pointer receivers (`Original`, `LessThan`, `Compare`, ...), as in Go where a method's
    /// result is not addressable.
    pointer: bool,
}

impl SemverObject {
    /// A `*semver.Version`.
    pub(crate) fn value(version: Version) -> Value {
        Value::Object(Rc::new(SemverObject {
            version,
            pointer: true,
        }))
    }

    fn by_value(version: Version) -> Value {
        Value::Object(Rc::new(SemverObject {
            version,
            pointer: false,
        }))
    }
}

/// The `*semver.Version` argument of `LessThan`, `Compare`, ...
fn version_arg(method: &str, v: &Value) -> ExecResult<Version> {
    let wrong = || {
        call_error(
            method,
            format!(
                "wrong type for value; expected *semver.Version; got {}",
                go_type_name(v)
            ),
        )
    };
    let text = match v {
        Value::Object(o) if o.type_name() == "*semver.Version" => o.display().ok_or_else(wrong)?,
        // The executor may hand objects to methods as their plain value (the version text).
        Value::String(s) => s.to_string(),
        _ => return Err(wrong()),
    };
    Version::parse(&text).map_err(|_| wrong())
}

/// Masterminds' pre-release / metadata validation for `SetPrerelease` / `SetMetadata`.
fn valid_set(text: &str, pre: bool) -> Result<(), &'static str> {
    if text.is_empty() {
        return Ok(());
    }
    for part in text.split('.') {
        let numeric = part.bytes().all(|b| b.is_ascii_digit());
        if pre && numeric && part.len() > 1 && part.starts_with('0') {
            return Err("Version segment starts with 0");
        }
        if !part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(if pre {
                "Invalid Prerelease string"
            } else {
                "Invalid Metadata string"
            });
        }
    }
    Ok(())
}

/// `SetPrerelease` / `SetMetadata`: a `semver.Version` with that part replaced.
fn set_part(v: &Version, method: &str, arg: &Value) -> ExecResult<Value> {
    let text = str_arg(method, arg)?;
    let pre = method == "SetPrerelease";
    valid_set(text, pre).map_err(|e| call_error(method, e))?;
    Ok(SemverObject::by_value(v.derived(|n| {
        if pre {
            n.pre = text.to_string();
        } else {
            n.metadata = text.to_string();
        }
    })))
}

impl Object for SemverObject {
    fn type_name(&self) -> &'static str {
        if self.pointer {
            "*semver.Version"
        } else {
            "semver.Version"
        }
    }

    fn field(&self, name: &str) -> Option<ExecResult<Value>> {
        self.method(name, &[])
    }

    fn method(&self, name: &str, args: &[Value]) -> Option<ExecResult<Value>> {
        let v = &self.version;
        let want = |n: usize| -> ExecResult<()> {
            if args.len() == n {
                Ok(())
            } else {
                Err(Error::Exec(format!(
                    "wrong number of args for {name}: want {n} got {}",
                    args.len()
                )))
            }
        };
        let uint = Value::Uint;
        let compare = |args: &[Value]| -> ExecResult<Ordering> {
            want(1)?;
            Ok(v.compare(&version_arg(name, &args[0])?))
        };
        let result = match name {
            "Major" => want(0).map(|()| uint(v.major)),
            "Minor" => want(0).map(|()| uint(v.minor)),
            "Patch" => want(0).map(|()| uint(v.patch)),
            "Prerelease" => want(0).map(|()| string(v.pre.as_str())),
            "Metadata" => want(0).map(|()| string(v.metadata.as_str())),
            "String" => want(0).map(|()| string(v.canonical())),
            "IncPatch" => want(0).map(|()| {
                SemverObject::by_value(v.derived(|n| {
                    if n.pre.is_empty() {
                        n.patch = n.patch.wrapping_add(1);
                    }
                    n.pre.clear();
                    n.metadata.clear();
                }))
            }),
            "IncMinor" => want(0).map(|()| {
                SemverObject::by_value(v.derived(|n| {
                    n.minor = n.minor.wrapping_add(1);
                    n.patch = 0;
                    n.pre.clear();
                    n.metadata.clear();
                }))
            }),
            "IncMajor" => want(0).map(|()| {
                SemverObject::by_value(v.derived(|n| {
                    n.major = n.major.wrapping_add(1);
                    n.minor = 0;
                    n.patch = 0;
                    n.pre.clear();
                    n.metadata.clear();
                }))
            }),
            "SetPrerelease" | "SetMetadata" => want(1).and_then(|()| set_part(v, name, &args[0])),
            // The methods with pointer receivers.
            _ if !self.pointer => return None,
            "Original" => want(0).map(|()| string(v.original.as_str())),
            "LessThan" => compare(args).map(|o| Value::Bool(o == Ordering::Less)),
            "LessThanEqual" => compare(args).map(|o| Value::Bool(o != Ordering::Greater)),
            "GreaterThan" => compare(args).map(|o| Value::Bool(o == Ordering::Greater)),
            "GreaterThanEqual" => compare(args).map(|o| Value::Bool(o != Ordering::Less)),
            "Equal" => compare(args).map(|o| Value::Bool(o == Ordering::Equal)),
            "Compare" => compare(args).map(|o| Value::Int(o as i64)),
            _ => return None,
        };
        Some(result)
    }

    fn to_value(&self) -> Value {
        string(self.version.canonical())
    }

    fn display(&self) -> Option<String> {
        Some(self.version.canonical())
    }
}

fn compare_pre(a: &str, b: &str) -> Ordering {
    match (a.is_empty(), b.is_empty()) {
        (true, true) => return Ordering::Equal,
        (true, false) => return Ordering::Greater,
        (false, true) => return Ordering::Less,
        _ => {}
    }
    let (pa, pb): (Vec<&str>, Vec<&str>) = (a.split('.').collect(), b.split('.').collect());
    for (x, y) in pa.iter().zip(pb.iter()) {
        let ord = match (x.parse::<u64>(), y.parse::<u64>()) {
            (Ok(i), Ok(j)) => i.cmp(&j),
            (Ok(_), Err(_)) => Ordering::Less,
            (Err(_), Ok(_)) => Ordering::Greater,
            _ => x.cmp(y),
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    pa.len().cmp(&pb.len())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    Tilde,
    Caret,
}

#[derive(Clone, Debug)]
struct Constraint {
    op: Op,
    con: Version,
    /// The major number was a wildcard (`*`, `x`).
    major_dirty: bool,
    minor_dirty: bool,
    patch_dirty: bool,
}

/// A parsed constraint: OR of AND groups (`>=1.2, <2 || ^3`).
#[derive(Clone, Debug)]
pub struct Constraints {
    groups: Vec<Vec<Constraint>>,
}

fn is_x(s: &str) -> bool {
    matches!(s, "x" | "X" | "*")
}

fn parse_one(text: &str) -> Result<Constraint, String> {
    let ops = [
        (">=", Op::Ge),
        ("=>", Op::Ge),
        ("<=", Op::Le),
        ("=<", Op::Le),
        ("!=", Op::Ne),
        ("~>", Op::Tilde),
        (">", Op::Gt),
        ("<", Op::Lt),
        ("=", Op::Eq),
        ("~", Op::Tilde),
        ("^", Op::Caret),
    ];
    let (op, ver) = ops
        .iter()
        .find_map(|(p, op)| text.strip_prefix(p).map(|rest| (*op, rest.trim())))
        .unwrap_or((Op::Eq, text.trim()));
    let improper = || format!("improper constraint: {text}");
    let ver_body = ver.strip_prefix('v').unwrap_or(ver);
    let (core, suffix) = match ver_body.find(['-', '+']) {
        Some(i) => (&ver_body[..i], &ver_body[i..]),
        None => (ver_body, ""),
    };
    let parts: Vec<&str> = core.split('.').collect();
    if parts.is_empty() || parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
        return Err(improper());
    }
    let (mut major_dirty, mut minor_dirty, mut patch_dirty) = (false, false, false);
    let version_text = if is_x(parts[0]) {
        major_dirty = true;
        minor_dirty = true;
        patch_dirty = true;
        "0.0.0".to_string()
    } else if parts.len() < 2 || is_x(parts[1]) {
        minor_dirty = true;
        patch_dirty = true;
        format!("{}.0.0{suffix}", parts[0])
    } else if parts.len() < 3 || is_x(parts[2]) {
        patch_dirty = true;
        format!("{}.{}.0{suffix}", parts[0], parts[1])
    } else {
        ver_body.to_string()
    };
    let con = Version::parse(&version_text).map_err(|_| improper())?;
    Ok(Constraint {
        op,
        con,
        major_dirty,
        minor_dirty,
        patch_dirty,
    })
}

impl Constraint {
    fn dirty(&self) -> bool {
        self.major_dirty || self.minor_dirty || self.patch_dirty
    }

    fn check(&self, v: &Version) -> bool {
        if !v.pre.is_empty() && self.con.pre.is_empty() {
            return false;
        }
        let c = &self.con;
        let cmp = v.compare(c);
        match self.op {
            Op::Eq | Op::Ne => {
                let eq = if self.dirty() {
                    self.major_dirty
                        || (v.major == c.major
                            && (self.minor_dirty || v.minor == c.minor)
                            && (self.patch_dirty || v.patch == c.patch))
                } else {
                    cmp == Ordering::Equal
                };
                eq == (self.op == Op::Eq)
            }
            Op::Gt => {
                if !self.dirty() {
                    return cmp == Ordering::Greater;
                }
                if self.major_dirty {
                    return false;
                }
                if v.major != c.major {
                    return v.major > c.major;
                }
                if self.minor_dirty {
                    return false;
                }
                v.minor > c.minor
            }
            Op::Lt => cmp == Ordering::Less,
            Op::Ge => cmp != Ordering::Less,
            Op::Le => {
                if !self.dirty() {
                    return cmp != Ordering::Greater;
                }
                if self.major_dirty {
                    return true;
                }
                if v.major > c.major {
                    return false;
                }
                !(v.major == c.major && v.minor > c.minor && !self.minor_dirty)
            }
            Op::Tilde => {
                if cmp == Ordering::Less {
                    return false;
                }
                if c.major == 0 && c.minor == 0 && c.patch == 0 && !self.minor_dirty && !self.patch_dirty {
                    return true;
                }
                if self.major_dirty {
                    return true;
                }
                v.major == c.major && (self.minor_dirty || v.minor == c.minor)
            }
            Op::Caret => {
                if cmp == Ordering::Less {
                    return false;
                }
                if self.major_dirty {
                    return true;
                }
                if c.major > 0 || self.minor_dirty {
                    return v.major == c.major;
                }
                if v.major > 0 {
                    return false;
                }
                if c.minor > 0 || self.patch_dirty {
                    return v.minor == c.minor;
                }
                if v.minor > 0 {
                    return false;
                }
                v.patch == c.patch
            }
        }
    }
}

impl Constraints {
    /// Parses a constraint string as `semver.NewConstraint` does.
    pub fn parse(s: &str) -> Result<Constraints, String> {
        let mut groups = Vec::new();
        for group in s.split("||") {
            let tokens = tokenize(group);
            if tokens.is_empty() {
                return Err(format!("improper constraint: {s}"));
            }
            let mut cs = Vec::new();
            let mut i = 0;
            while i < tokens.len() {
                // Hyphen range: `A - B` means `>= A, <= B`.
                if tokens.get(i + 1).map(String::as_str) == Some("-") && i + 2 < tokens.len() {
                    cs.push(parse_one(&format!(">={}", tokens[i]))?);
                    cs.push(parse_one(&format!("<={}", tokens[i + 2]))?);
                    i += 3;
                    continue;
                }
                cs.push(parse_one(&tokens[i])?);
                i += 1;
            }
            groups.push(cs);
        }
        Ok(Constraints { groups })
    }

    /// Whether `v` satisfies any AND group.
    pub fn matches(&self, v: &Version) -> bool {
        self.groups.iter().any(|g| g.iter().all(|c| c.check(v)))
    }
}

/// Splits an AND group on commas and spaces, joining a bare operator to its version.
fn tokenize(group: &str) -> Vec<String> {
    let raw: Vec<&str> = group.split([',', ' ', '\t']).filter(|t| !t.is_empty()).collect();
    let mut out: Vec<String> = Vec::new();
    let mut pending_op: Option<&str> = None;
    for t in raw {
        if t.chars().all(|c| "<>=!~^".contains(c)) {
            pending_op = Some(t);
            continue;
        }
        match pending_op.take() {
            Some(op) => out.push(format!("{op}{t}")),
            None => out.push(t.to_string()),
        }
    }
    if let Some(op) = pending_op {
        out.push(op.to_string());
    }
    out
}

pub(crate) fn register(m: &mut FuncMap) {
    add(m, "semver", |a| {
        arity("semver", a, 1, 1)?;
        Version::parse(str_arg("semver", &a[0])?)
            .map(SemverObject::value)
            .map_err(|e| call_error("semver", e))
    });
    add(m, "semverCompare", |a| {
        arity("semverCompare", a, 2, 2)?;
        let c = Constraints::parse(str_arg("semverCompare", &a[0])?)
            .map_err(|e| call_error("semverCompare", e))?;
        let v =
            Version::parse(str_arg("semverCompare", &a[1])?).map_err(|e| call_error("semverCompare", e))?;
        Ok(Value::Bool(c.matches(&v)))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(c: &str, v: &str) -> bool {
        Constraints::parse(c)
            .unwrap()
            .matches(&Version::parse(v).unwrap())
    }

    #[test]
    fn versions_parse_leniently() {
        let v = Version::parse("v1.2").unwrap();
        assert_eq!((v.major, v.minor, v.patch), (1, 2, 0));
        let v = Version::parse("1.2.3-beta.1+c0ff33").unwrap();
        assert_eq!(v.pre, "beta.1");
        assert_eq!(v.metadata, "c0ff33");
        assert!(Version::parse("1.2.3.4").is_err());
        assert!(Version::parse("1.2.3-01").is_err());
        assert!(Version::parse("abc").is_err());
    }

    #[test]
    fn precedence_follows_semver() {
        let order = [
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-alpha.beta",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0",
        ];
        for w in order.windows(2) {
            let (a, b) = (Version::parse(w[0]).unwrap(), Version::parse(w[1]).unwrap());
            assert_eq!(a.compare(&b), Ordering::Less, "{} < {}", w[0], w[1]);
        }
    }

    fn obj(text: &str) -> Rc<dyn Object> {
        match Version::parse(text).map(SemverObject::value) {
            Ok(Value::Object(o)) => o,
            other => panic!("{text}: {other:?}"),
        }
    }

    fn call(o: &Rc<dyn Object>, name: &str, args: &[Value]) -> Value {
        o.method(name, args)
            .unwrap_or_else(|| panic!("{name} exists"))
            .unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    #[test]
    fn versions_are_objects_with_masterminds_methods() {
        let v = obj("v1.2.3-rc.1+b7");
        assert_eq!(v.type_name(), "*semver.Version");
        assert_eq!(v.field("Major").unwrap(), Ok(Value::Uint(1)));
        assert_eq!(v.field("Minor").unwrap(), Ok(Value::Uint(2)));
        assert_eq!(v.field("Patch").unwrap(), Ok(Value::Uint(3)));
        assert_eq!(v.field("Prerelease").unwrap(), Ok(string("rc.1")));
        assert_eq!(v.field("Metadata").unwrap(), Ok(string("b7")));
        assert_eq!(v.field("Original").unwrap(), Ok(string("v1.2.3-rc.1+b7")));
        assert_eq!(v.field("String").unwrap(), Ok(string("1.2.3-rc.1+b7")));
        assert!(v.field("major").is_none(), "Go's fields are unexported");
        assert_eq!(v.display().as_deref(), Some("1.2.3-rc.1+b7"));
        assert_eq!(v.to_value(), string("1.2.3-rc.1+b7"));
        assert_eq!(
            super::super::go_string(&Value::Object(v.clone())),
            "1.2.3-rc.1+b7"
        );

        let next = call(&v, "IncPatch", &[]);
        let Value::Object(next) = next else {
            panic!("IncPatch gives a version")
        };
        assert_eq!(next.type_name(), "semver.Version");
        assert_eq!(
            next.display().as_deref(),
            Some("1.2.3"),
            "a pre-release keeps its patch"
        );
        assert!(
            next.field("Original").is_none(),
            "Original has a pointer receiver"
        );
        assert_eq!(call(&next, "IncPatch", &[]).plain(), string("1.2.4"));
        assert_eq!(call(&v, "IncMinor", &[]).plain(), string("1.3.0"));
        assert_eq!(call(&v, "IncMajor", &[]).plain(), string("2.0.0"));
        assert_eq!(
            call(&v, "SetPrerelease", &[string("beta")]).plain(),
            string("1.2.3-beta+b7")
        );
        assert_eq!(
            call(&v, "SetMetadata", &[string("")]).plain(),
            string("1.2.3-rc.1")
        );
        assert!(v.method("SetPrerelease", &[string("01")]).unwrap().is_err());
        assert!(v.method("SetMetadata", &[string("a_b")]).unwrap().is_err());

        let other = Value::Object(obj("1.10.0"));
        assert_eq!(
            call(&v, "LessThan", std::slice::from_ref(&other)),
            Value::Bool(true)
        );
        assert_eq!(
            call(&v, "GreaterThan", std::slice::from_ref(&other)),
            Value::Bool(false)
        );
        assert_eq!(call(&v, "Compare", std::slice::from_ref(&other)), Value::Int(-1));
        assert_eq!(
            call(&v, "Equal", &[Value::Object(obj("1.2.3-rc.1+other"))]),
            Value::Bool(true),
            "metadata is ignored"
        );
        assert!(v.method("LessThan", &[]).unwrap().is_err());
        assert!(v.method("LessThan", &[Value::Int(1)]).unwrap().is_err());
        assert!(
            v.field("LessThan").unwrap().is_err(),
            "LessThan needs an argument"
        );
    }

    #[test]
    fn constraints_follow_masterminds() {
        assert!(ok("^1.2.0", "1.2.3"));
        assert!(!ok("^1.2.0", "2.2.3"));
        assert!(ok("^0.2.3", "0.2.9"));
        assert!(!ok("^0.2.3", "0.3.0"));
        assert!(ok("~1.2", "1.2.9"));
        assert!(!ok("~1.2", "1.3.0"));
        assert!(ok(">= 1.2, < 3.0.0", "2.5.0"));
        assert!(ok(">=1.2 <3", "2.5.0"));
        assert!(ok("1.2 - 1.4.5", "1.4.5"));
        assert!(!ok("1.2 - 1.4.5", "1.4.6"));
        assert!(ok("1.2.x", "1.2.7"));
        assert!(ok("*", "4.0.0"));
        assert!(
            !ok("*", "4.0.0-beta"),
            "pre-releases need a pre-release constraint"
        );
        assert!(ok(">=1.0.0-0", "1.2.0-beta"));
        assert!(ok("<1.0 || >=2.1", "2.3.0"));
        assert!(ok(">1.1", "1.2.0"));
        assert!(!ok(">1.1", "1.1.5"));
        assert!(ok("<=1.2", "1.2.9"));
        assert!(ok("!=1.2.3", "1.2.4"));
        assert!(ok(">=1.20.0-0", "1.20.0"));
        assert!(Constraints::parse(">=abc").is_err());
    }
}

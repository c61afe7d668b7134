//! Semantic versions and constraints with the rules of `Masterminds/semver` v3, which both
//! sprig (`semver`, `semverCompare`) and Helm (dependency and repository version ranges) use.
//!
//! Those rules differ from Cargo's: `1.2` is a valid version (1.2.0); `^0.2.3` means
//! `>=0.2.3 <0.3.0`; `1.2.x`, `*`, hyphen ranges (`1.2 - 1.4.5`) and `||` are allowed; and a
//! pre-release version only satisfies a constraint that itself names a pre-release.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Arc;

use gotmpl::{FuncMap, Value};

use super::add;
use super::conv::{arity, call_error, map, str_arg, string};

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

    fn to_value(&self) -> Value {
        let mut m: BTreeMap<Arc<str>, Value> = BTreeMap::new();
        let int = |n: u64| Value::Int(i64::try_from(n).unwrap_or(i64::MAX));
        m.insert("Major".into(), int(self.major));
        m.insert("Minor".into(), int(self.minor));
        m.insert("Patch".into(), int(self.patch));
        m.insert("Prerelease".into(), string(self.pre.as_str()));
        m.insert("Metadata".into(), string(self.metadata.as_str()));
        m.insert("Original".into(), string(self.original.as_str()));
        map(m)
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
            .map(|v| v.to_value())
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

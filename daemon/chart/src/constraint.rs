//! SemVer ranges in the Masterminds/semver syntax that Helm uses for dependency versions
//! and repository lookups: `^1.2`, `~1.4.0`, `>=1.0 <2.0`, `1.2.x`, `1.2 - 1.4`,
//! `!=1.3.0`, alternatives joined by `||`. A bare version means exactly that version
//! (unlike Cargo, where it means `^`).

use semver::{Version, VersionReq};

use crate::metadata::parse_lenient_version;

/// A parsed range: any of the alternatives, each a list of comparators that must all hold.
#[derive(Debug, Clone)]
pub struct Constraint {
    alternatives: Vec<Vec<Comparator>>,
}

#[derive(Debug, Clone)]
enum Comparator {
    Req(VersionReq),
    NotEqual(Version),
}

impl Constraint {
    /// Parses a range; the error says which part is not understood.
    pub fn parse(src: &str) -> Result<Constraint, String> {
        let src = src.trim();
        if src.is_empty() {
            return Err("empty version constraint".into());
        }
        let mut alternatives = Vec::new();
        for alt in src.split("||") {
            let tokens = tokenize(alt);
            if tokens.is_empty() {
                return Err(format!("empty alternative in {src:?}"));
            }
            let mut comps = Vec::new();
            let mut i = 0;
            while i < tokens.len() {
                if tokens.get(i + 1).map(String::as_str) == Some("-") {
                    let hi = tokens
                        .get(i + 2)
                        .ok_or_else(|| format!("incomplete hyphen range in {src:?}"))?;
                    comps.push(req(&format!(">={}", strip_v(&tokens[i])), src)?);
                    comps.push(req(&format!("<={}", strip_v(hi)), src)?);
                    i += 3;
                    continue;
                }
                comps.push(comparator(&tokens[i], src)?);
                i += 1;
            }
            alternatives.push(comps);
        }
        Ok(Constraint { alternatives })
    }

    /// Whether `version` (lenient: `v1.2`) satisfies the range.
    pub fn matches_str(&self, version: &str) -> bool {
        parse_lenient_version(version).is_some_and(|v| self.matches(&v))
    }

    /// Whether `version` satisfies the range.
    pub fn matches(&self, version: &Version) -> bool {
        self.alternatives.iter().any(|alt| {
            alt.iter().all(|c| match c {
                Comparator::Req(r) => r.matches(version),
                Comparator::NotEqual(v) => v != version,
            })
        })
    }
}

/// Splits on spaces and commas, gluing an operator to the version after it (`>= 1.0`).
fn tokenize(s: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for raw in s.split([' ', ',', '\t']).filter(|t| !t.is_empty()) {
        if let Some(last) = out.last_mut()
            && matches!(
                last.as_str(),
                "=" | "!=" | ">" | "<" | ">=" | "<=" | "~" | "^" | "~>" | "=>" | "=<"
            )
        {
            last.push_str(raw);
            continue;
        }
        out.push(raw.to_string());
    }
    out
}

fn strip_v(s: &str) -> String {
    s.strip_prefix('v').unwrap_or(s).to_string()
}

fn comparator(tok: &str, src: &str) -> Result<Comparator, String> {
    let ops = ["!=", ">=", "<=", "=>", "=<", "~>", ">", "<", "=", "~", "^"];
    let (op, ver) = ops
        .iter()
        .find_map(|op| tok.strip_prefix(op).map(|rest| (*op, rest)))
        .unwrap_or(("", tok));
    let ver = strip_v(ver.trim());
    match op {
        "!=" => {
            let v =
                parse_lenient_version(&ver).ok_or_else(|| format!("invalid version {ver:?} in {src:?}"))?;
            Ok(Comparator::NotEqual(v))
        }
        "" | "=" => {
            if ver == "*" || ver.contains(['x', 'X', '*']) {
                req(&ver, src)
            } else {
                req(&format!("={ver}"), src)
            }
        }
        "=>" => req(&format!(">={ver}"), src),
        "=<" => req(&format!("<={ver}"), src),
        "~>" => req(&format!("~{ver}"), src),
        // Masterminds reads `>1` as `>1.0.0` (Cargo: `>=2.0.0`).
        ">" => req(&format!(">{}", pad(&ver)), src),
        _ => req(&format!("{op}{ver}"), src),
    }
}

/// `1` -> `1.0.0`, `1.2` -> `1.2.0`; full versions unchanged.
fn pad(v: &str) -> String {
    let core_len = v.find(['-', '+']).unwrap_or(v.len());
    let dots = v[..core_len].matches('.').count();
    let zeros = ".0".repeat(2usize.saturating_sub(dots));
    format!("{}{zeros}{}", &v[..core_len], &v[core_len..])
}

fn req(s: &str, src: &str) -> Result<Comparator, String> {
    VersionReq::parse(s)
        .map(Comparator::Req)
        .map_err(|e| format!("invalid version constraint {src:?}: {e}"))
}

/// Helm's `IsCompatibleRange`: false when either side does not parse.
pub fn is_compatible_range(constraint: &str, version: &str) -> bool {
    Constraint::parse(constraint).is_ok_and(|c| c.matches_str(version))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(c: &str, v: &str) -> bool {
        Constraint::parse(c).unwrap().matches_str(v)
    }

    #[test]
    fn masterminds_ranges() {
        assert!(ok("^1.2", "1.9.0") && !ok("^1.2", "2.0.0"));
        assert!(ok("~1.4.0", "1.4.7") && !ok("~1.4.0", "1.5.0"));
        assert!(ok(">=1.0 <2.0", "1.5.0") && !ok(">=1.0 <2.0", "2.0.0"));
        assert!(ok(">= 1.0, < 2.0", "1.0.0"));
        assert!(ok("1.2.3", "1.2.3") && !ok("1.2.3", "1.2.4"));
        assert!(ok("1.2.x", "1.2.9") && !ok("1.2.x", "1.3.0"));
        assert!(ok("1.2 - 1.4", "1.4.9") && !ok("1.2 - 1.4", "1.5.0") && !ok("1.2 - 1.4", "1.1.0"));
        assert!(ok("<1 || >=3", "3.1.0") && !ok("<1 || >=3", "2.0.0"));
        assert!(ok(">1, !=1.5.0", "1.6.0") && !ok(">1, !=1.5.0", "1.5.0"));
        assert!(ok("*", "0.0.1"));
        assert!(ok("v1.2.3", "v1.2.3"));
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(Constraint::parse("").is_err());
        assert!(Constraint::parse(">=banana").is_err());
        assert!(!is_compatible_range("", "1.0.0"));
    }
}

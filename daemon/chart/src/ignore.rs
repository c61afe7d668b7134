//! `.helmignore`: which files of a chart directory are left out, with Helm's rules.
//!
//! Patterns are Go `filepath.Match` globs: a pattern without `/` matches the base name,
//! one with `/` matches the path from the chart root (a leading `/` anchors it), a
//! trailing `/` matches directories only, `!` negates. `**` is rejected, as Helm does.

use crate::error::{ChartError, Result};
use crate::glob::{Dialect, matches};

#[derive(Debug, Clone)]
struct Rule {
    pattern: String,
    negate: bool,
    dir_only: bool,
    kind: Kind,
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Anchored,
    Path,
    Base,
}

/// A parsed `.helmignore`.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    rules: Vec<Rule>,
}

impl Rules {
    /// Helm's defaults: dot files directly under templates/ are never templates.
    pub fn with_defaults() -> Rules {
        let mut r = Rules::default();
        r.push("templates/.?*").unwrap_or_default();
        r
    }

    /// Parses `.helmignore` content and appends its rules.
    pub fn parse(&mut self, src: &str) -> Result<()> {
        for line in src.lines() {
            self.push(line)?;
        }
        Ok(())
    }

    fn push(&mut self, line: &str) -> Result<()> {
        let mut p = line.trim();
        if p.is_empty() || p.starts_with('#') {
            return Ok(());
        }
        if p.contains("**") {
            return Err(ChartError::Invalid(format!(
                ".helmignore: double-star (**) syntax is not supported: {p:?}"
            )));
        }
        let negate = p.starts_with('!');
        if negate {
            p = &p[1..];
        }
        let dir_only = p.ends_with('/');
        let p = p.trim_end_matches('/');
        let (kind, pattern) = if let Some(rest) = p.strip_prefix('/') {
            (Kind::Anchored, rest)
        } else if p.contains('/') {
            (Kind::Path, p)
        } else {
            (Kind::Base, p)
        };
        self.rules.push(Rule {
            pattern: pattern.to_string(),
            negate,
            dir_only,
            kind,
        });
        Ok(())
    }

    /// Helm's `Rules.Ignore`, including its handling of negated rules (a path that does
    /// not match a negated rule is ignored).
    pub fn ignored(&self, path: &str, is_dir: bool) -> bool {
        if path.is_empty() || path == "." || path == "./" {
            return false;
        }
        for r in &self.rules {
            let hit = || match r.kind {
                Kind::Anchored | Kind::Path => matches(&r.pattern, path, Dialect::GoPath),
                Kind::Base => matches(
                    &r.pattern,
                    path.rsplit('/').next().unwrap_or(path),
                    Dialect::GoPath,
                ),
            };
            if r.negate {
                if r.dir_only && !is_dir {
                    return true;
                }
                if !hit() {
                    return true;
                }
                continue;
            }
            if r.dir_only && !is_dir {
                continue;
            }
            if hit() {
                return true;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_path_and_dir_rules() {
        let mut r = Rules::with_defaults();
        r.parse("# comment\n*.bak\nsecret/\n/top.txt\ndocs/*.md\n")
            .unwrap();
        assert!(r.ignored("a/b/file.bak", false));
        assert!(r.ignored("secret", true));
        assert!(!r.ignored("secret", false));
        assert!(r.ignored("top.txt", false));
        assert!(r.ignored("docs/a.md", false));
        assert!(!r.ignored("docs/x/a.md", false));
        assert!(r.ignored("templates/.hidden", false));
        assert!(!r.ignored("templates/deployment.yaml", false));
    }

    #[test]
    fn double_star_is_rejected() {
        assert!(Rules::default().parse("a/**/b\n").is_err());
    }
}

//! Shell-style pattern matching in the two dialects Helm uses.
//!
//! `.helmignore` rules and `--show-only` use Go's `filepath.Match` (`*` and `?` never
//! cross `/`, `[...]` classes, `\` escapes). `.Files.Glob` uses gobwas/glob, which adds
//! `**` (crosses `/`) and `{a,b}` alternatives. Both are implemented here by one
//! backtracking matcher; patterns are short, so the simple algorithm is fast enough.

/// Which dialect a pattern is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// Go's `path/filepath.Match`.
    GoPath,
    /// gobwas/glob with `/` as the separator (`.Files.Glob`).
    Gobwas,
}

/// Reports whether `name` matches `pattern`. A malformed pattern (an unclosed `[`)
/// matches nothing, as `filepath.Match` returns `ErrBadPattern` and callers treat that
/// as "no match".
pub fn matches(pattern: &str, name: &str, dialect: Dialect) -> bool {
    if dialect == Dialect::Gobwas
        && let Some(alts) = expand_braces(pattern)
    {
        return alts.iter().any(|p| matches(p, name, dialect));
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    match_here(&p, &n, dialect)
}

/// Expands the first `{a,b}` group; `None` when there is no group.
fn expand_braces(pattern: &str) -> Option<Vec<String>> {
    let open = pattern.find('{')?;
    let mut depth = 0;
    let mut close = None;
    for (i, c) in pattern[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    close = Some(open + i);
                    break;
                }
            }
            _ => {}
        }
    }
    let close = close?;
    let inner = &pattern[open + 1..close];
    let mut parts = Vec::new();
    let mut depth = 0;
    let mut start = 0;
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    Some(
        parts
            .into_iter()
            .map(|alt| format!("{}{}{}", &pattern[..open], alt, &pattern[close + 1..]))
            .collect(),
    )
}

/// Go's `filepath.Match` algorithm: the pattern is a series of chunks, each after a
/// (possibly empty) run of stars; a star extends only until its chunk first matches, with
/// no backtracking into earlier stars. Linear in practice, so hostile patterns are cheap.
fn match_here(pattern: &[char], name: &[char], dialect: Dialect) -> bool {
    let (mut p, mut n) = (pattern, name);
    'chunks: while !p.is_empty() {
        let (mut star, mut double) = (false, false);
        while p.first() == Some(&'*') {
            star = true;
            if dialect == Dialect::Gobwas && p.get(1) == Some(&'*') {
                double = true;
                p = &p[2..];
            } else {
                p = &p[1..];
            }
        }
        let end = chunk_end(p, dialect);
        let (chunk, rest) = p.split_at(end);
        p = rest;
        if star && chunk.is_empty() {
            return double || !n.contains(&'/');
        }
        if let Some(t) = match_chunk(chunk, n, dialect)
            && (t.is_empty() || !p.is_empty())
        {
            n = t;
            continue;
        }
        if star {
            for i in 0..n.len() {
                if n[i] == '/' && !double {
                    break;
                }
                if let Some(t) = match_chunk(chunk, &n[i + 1..], dialect) {
                    if p.is_empty() && !t.is_empty() {
                        continue;
                    }
                    n = t;
                    continue 'chunks;
                }
            }
        }
        return false;
    }
    n.is_empty()
}

/// Where the chunk starting at `p` ends: at the next unescaped `*` outside a class.
fn chunk_end(p: &[char], dialect: Dialect) -> usize {
    let mut in_class = false;
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            '\\' if dialect == Dialect::GoPath => i += 1,
            '[' => in_class = true,
            ']' => in_class = false,
            '*' if !in_class => return i,
            _ => {}
        }
        i += 1;
    }
    p.len()
}

/// Matches a star-free chunk at the start of `s`; returns what is left of `s`.
fn match_chunk<'a>(chunk: &[char], s: &'a [char], dialect: Dialect) -> Option<&'a [char]> {
    let (mut ci, mut si) = (0, 0);
    while let Some(&c) = chunk.get(ci) {
        let ch = *s.get(si)?;
        match c {
            '?' if ch != '/' => ci += 1,
            '?' => return None,
            '[' => match class(&chunk[ci + 1..], ch) {
                Some((true, used)) if ch != '/' => ci += 1 + used,
                _ => return None,
            },
            '\\' if dialect == Dialect::GoPath => {
                if chunk.get(ci + 1) != Some(&ch) {
                    return None;
                }
                ci += 2;
            }
            lit => {
                if lit != ch {
                    return None;
                }
                ci += 1;
            }
        }
        si += 1;
    }
    Some(&s[si..])
}

/// Matches `ch` against a class body starting after `[`; returns (matched, chars used
/// including the closing `]`), or `None` for an unclosed class.
fn class(p: &[char], ch: char) -> Option<(bool, usize)> {
    let mut i = 0;
    let negate = matches!(p.first(), Some('^') | Some('!'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let c = *p.get(i)?;
        if c == ']' && !first {
            return Some((matched != negate, i + 1));
        }
        first = false;
        let lo = if c == '\\' {
            i += 1;
            *p.get(i)?
        } else {
            c
        };
        i += 1;
        if p.get(i) == Some(&'-') && p.get(i + 1).is_some_and(|&c| c != ']') {
            let hi = *p.get(i + 1)?;
            i += 2;
            if lo <= ch && ch <= hi {
                matched = true;
            }
        } else if lo == ch {
            matched = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_path_star_stops_at_slash() {
        assert!(matches(
            "templates/subdir/role*",
            "templates/subdir/rolebinding.yaml",
            Dialect::GoPath
        ));
        assert!(!matches(
            "templates/*",
            "templates/subdir/role.yaml",
            Dialect::GoPath
        ));
        assert!(matches("*.yaml", "values.yaml", Dialect::GoPath));
        assert!(matches("file?.txt", "file1.txt", Dialect::GoPath));
        assert!(matches("[a-c]x", "bx", Dialect::GoPath));
        assert!(!matches("[^a-c]x", "bx", Dialect::GoPath));
        assert!(!matches("[abc", "a", Dialect::GoPath));
        let long = format!("templates/{}.yaml", "x".repeat(300));
        assert!(matches(&long, &long, Dialect::GoPath));
        assert!(matches("templates/*.yaml", &long, Dialect::GoPath));
        // Hostile patterns finish at once: no backtracking into earlier stars.
        let stars = "*a".repeat(40);
        assert!(matches(&stars, &"a".repeat(60), Dialect::Gobwas));
        assert!(!matches(&format!("{stars}b"), &"a".repeat(60), Dialect::Gobwas));
        assert!(matches("a*b*c", "axxbyyc", Dialect::GoPath));
        assert!(!matches("a*b*c", "axxbyy", Dialect::GoPath));
        assert!(matches("*", "", Dialect::GoPath));
        assert!(!matches("*", "a/b", Dialect::GoPath));
    }

    #[test]
    fn gobwas_double_star_and_braces() {
        assert!(matches("files/**", "files/a/b/c.txt", Dialect::Gobwas));
        assert!(matches("files/*.{txt,conf}", "files/x.conf", Dialect::Gobwas));
        assert!(!matches("files/*.{txt,conf}", "files/x.yaml", Dialect::Gobwas));
        assert!(!matches("files/*", "files/a/b.txt", Dialect::Gobwas));
    }
}

//! Hand-written reading of [`Node`] trees into typed structs, so that every error
//! carries the file, line, column and field path (serde gives at most a line).
//!
//! Readers collect problems into a [`Reader`] and carry on where they can: a release
//! with three mistakes reports all three.

use std::time::Duration;

use crate::error::Diagnostic;
use crate::yaml::{Node, Pos, Scalar};

/// Collects diagnostics for one file.
/// Parses `text` as a single YAML document. An empty file (reported with `empty`, what
/// was expected instead) or a syntax error is recorded on `r`, and `None` returned.
pub(crate) fn single_root(r: &mut Reader, text: &str, empty: &str) -> Option<Node> {
    match crate::yaml::parse_single(text) {
        Ok(Some(root)) => Some(root),
        Ok(None) => {
            r.error(Pos { line: 1, col: 1 }, "", empty);
            None
        }
        Err(e) => {
            r.error(e.pos, "", e.message);
            None
        }
    }
}

pub(crate) struct Reader {
    pub file: String,
    pub diags: Vec<Diagnostic>,
}

impl Reader {
    pub fn new(file: impl Into<String>) -> Self {
        Reader {
            file: file.into(),
            diags: Vec::new(),
        }
    }

    pub fn error(&mut self, pos: Pos, path: &str, message: impl Into<String>) {
        self.diags.push(Diagnostic {
            file: self.file.clone(),
            pos,
            path: path.to_string(),
            message: message.into(),
        });
    }

    /// Reads a mapping whose keys must be among `known`; unknown keys are reported with a
    /// suggestion. `None` (and an error) when `node` is not a mapping.
    pub fn fields<'n>(&mut self, node: &'n Node, path: &str, known: &[&str]) -> Option<Fields<'n>> {
        let Some(entries) = node.as_map() else {
            self.error(
                node.pos,
                path,
                format!(
                    "expected a mapping with fields {}, found {}",
                    list(known),
                    node.describe()
                ),
            );
            return None;
        };
        for (key, _) in entries {
            let name = key.key_text().unwrap_or_default();
            if !known.contains(&name) {
                let hint = match did_you_mean(name, known.iter().copied()) {
                    Some(s) => format!("; did you mean `{s}`?"),
                    None => format!("; expected one of {}", list(known)),
                };
                self.error(
                    key.pos,
                    &join(path, name),
                    format!("unknown field `{name}`{hint}"),
                );
            }
        }
        Some(Fields {
            node,
            entries,
            path: path.to_string(),
        })
    }

    pub fn string(&mut self, node: &Node, path: &str, what: &str) -> Option<String> {
        match node.scalar() {
            Some(Scalar::Str(s)) if !s.is_empty() => Some(s.to_string()),
            Some(Scalar::Str(_)) => {
                self.error(node.pos, path, format!("expected {what}, found an empty string"));
                None
            }
            _ => {
                self.error(
                    node.pos,
                    path,
                    format!("expected {what}, found {}", node.describe()),
                );
                None
            }
        }
    }

    /// As [`Reader::string`], also taking a number as its text (`version: 1.4`).
    pub fn string_or_number(&mut self, node: &Node, path: &str, what: &str) -> Option<String> {
        match node.scalar() {
            Some(Scalar::Int(_) | Scalar::UInt(_) | Scalar::Float(_)) => node.key_text().map(str::to_string),
            _ => self.string(node, path, what),
        }
    }

    pub fn bool(&mut self, node: &Node, path: &str) -> Option<bool> {
        match node.scalar() {
            Some(Scalar::Bool(b)) => Some(b),
            _ => {
                self.error(
                    node.pos,
                    path,
                    format!("expected true or false, found {}", node.describe()),
                );
                None
            }
        }
    }

    /// A whole number in `min..=max`.
    pub fn count(&mut self, node: &Node, path: &str, min: u32, max: u32) -> Option<u32> {
        let found = match node.scalar() {
            Some(Scalar::Int(i)) => u32::try_from(i).ok().filter(|v| (min..=max).contains(v)),
            _ => None,
        };
        if found.is_none() {
            self.error(
                node.pos,
                path,
                format!(
                    "expected a whole number from {min} to {max}, found {}",
                    shown(node)
                ),
            );
        }
        found
    }

    pub fn duration(&mut self, node: &Node, path: &str) -> Option<Duration> {
        let text = match node.scalar() {
            Some(Scalar::Str(s)) => s.to_string(),
            Some(Scalar::Int(0)) => "0".to_string(),
            _ => {
                self.error(
                    node.pos,
                    path,
                    format!(
                        "expected a duration such as `30s`, `10m` or `1h30m`, found {}",
                        node.describe()
                    ),
                );
                return None;
            }
        };
        match crate::duration::parse_duration(&text) {
            Ok(d) => Some(d),
            Err(e) => {
                self.error(node.pos, path, e);
                None
            }
        }
    }

    pub fn seq<'n>(&mut self, node: &'n Node, path: &str, what: &str) -> Option<&'n [Node]> {
        match node.as_seq() {
            Some(items) => Some(items),
            None => {
                self.error(
                    node.pos,
                    path,
                    format!("expected a list of {what}, found {}", node.describe()),
                );
                None
            }
        }
    }

    /// One of a fixed set of words.
    pub fn choice(&mut self, node: &Node, path: &str, choices: &[&str]) -> Option<String> {
        let text = match node.scalar() {
            Some(Scalar::Str(s)) => s,
            _ => {
                self.error(
                    node.pos,
                    path,
                    format!("expected one of {}, found {}", list(choices), node.describe()),
                );
                return None;
            }
        };
        if choices.contains(&text) {
            return Some(text.to_string());
        }
        let hint = did_you_mean(text, choices.iter().copied())
            .map(|s| format!(" (did you mean `{s}`?)"))
            .unwrap_or_default();
        self.error(
            node.pos,
            path,
            format!("expected one of {}, found `{text}`{hint}", list(choices)),
        );
        None
    }
}

/// The fields of one mapping being read.
pub(crate) struct Fields<'n> {
    pub node: &'n Node,
    entries: &'n [(Node, Node)],
    pub path: String,
}

impl<'n> Fields<'n> {
    pub fn get(&self, name: &str) -> Option<&'n Node> {
        self.entries
            .iter()
            .find(|(k, _)| k.key_text() == Some(name))
            .map(|(_, v)| v)
    }

    /// A field that must be present and not null.
    pub fn required(&self, r: &mut Reader, name: &str, what: &str) -> Option<&'n Node> {
        match self.get(name) {
            Some(v) if v.scalar() != Some(Scalar::Null) => Some(v),
            Some(v) => {
                r.error(
                    v.pos,
                    &self.at(name),
                    format!("expected {what}, found nothing (null)"),
                );
                None
            }
            None => {
                r.error(
                    self.node.pos,
                    &self.path,
                    format!("missing field `{name}`: expected {what}"),
                );
                None
            }
        }
    }

    /// A field that may be absent or null.
    pub fn optional(&self, name: &str) -> Option<&'n Node> {
        self.get(name).filter(|v| v.scalar() != Some(Scalar::Null))
    }

    pub fn at(&self, name: &str) -> String {
        join(&self.path, name)
    }
}

pub(crate) fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_string()
    } else {
        format!("{path}.{field}")
    }
}

pub(crate) fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

fn list(items: &[&str]) -> String {
    items
        .iter()
        .map(|s| format!("`{s}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A short rendering of a scalar for messages (`"abc"`, `-3`), or its kind.
fn shown(node: &Node) -> String {
    match node.scalar() {
        Some(Scalar::Str(s)) => format!("`{}`", truncate(s, 40)),
        Some(Scalar::Int(_) | Scalar::UInt(_) | Scalar::Float(_)) => {
            format!("`{}`", truncate(node.key_text().unwrap_or_default(), 40))
        }
        _ => node.describe(),
    }
}

/// Cuts user text for an error message without splitting a character.
pub(crate) fn truncate(s: &str, max_chars: usize) -> String {
    if s.chars().count() <= max_chars {
        s.to_string()
    } else {
        format!("{}...", s.chars().take(max_chars).collect::<String>())
    }
}

/// The closest candidate, if close enough to be a likely typo: same letters ignoring
/// case, `_` and `-` (`vault_path` for `vaultPath`), or a small edit distance.
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let norm = |s: &str| -> String {
        s.chars()
            .filter(|c| *c != '_' && *c != '-')
            .flat_map(char::to_lowercase)
            .collect()
    };
    let word_norm = norm(word);
    // Short words are too easily "close" to anything: they only match by normalisation.
    let limit = word.chars().count() / 3;
    candidates
        .into_iter()
        .filter_map(|c| {
            let d = if norm(c) == word_norm {
                0
            } else {
                strsim::osa_distance(&word_norm, &norm(c))
            };
            (d <= limit).then_some((d, c))
        })
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        let known = ["vaultPath", "vaultKey", "name"];
        assert_eq!(did_you_mean("vault_path", known), Some("vaultPath"));
        assert_eq!(did_you_mean("vaultky", known), Some("vaultKey"));
        assert_eq!(did_you_mean("nmae", known), Some("name"));
        assert_eq!(did_you_mean("replicas", known), None);
    }
}

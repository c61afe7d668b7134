//! Hiding secret values in rendered manifests before a person sees them
//! (`convoy render`, API previews).
//!
//! Two layers, because a chart may transform a secret in ways no literal search finds:
//! 1. every `data` / `stringData` value of a `Secret` object is replaced, whatever it holds;
//! 2. anywhere else, each secret's text and its base64 form are replaced where they appear
//!    (a chart putting a password into a ConfigMap or an env var).

use std::collections::BTreeMap;

use base64::Engine;
use serde_json::Value;

/// What stands in for a hidden value.
pub const MASK: &str = "<masked>";

/// Secrets shorter than this are only masked inside `Secret` objects: replacing every
/// occurrence of a one- or two-letter string would shred the manifest and reveal the
/// secret by its gaps.
const MIN_LITERAL_LEN: usize = 4;

/// Returns `content` (one rendered object of `kind`) with secret values masked.
pub fn mask_manifest(kind: &str, content: &str, secrets: &BTreeMap<String, Value>) -> String {
    let out = Masker::new(secrets.values()).mask(content);
    if kind == "Secret" {
        mask_secret_data(&out)
    } else {
        out
    }
}

/// The literal texts of a set of resolved secrets (and their base64 forms), for hiding
/// them wherever they turn up: in rendered manifests, in a dry run's field values.
/// Debug shows only how many there are.
#[derive(Clone, Default)]
pub struct Masker {
    /// Longest first, so a secret containing another is replaced whole.
    literals: Vec<String>,
}

impl std::fmt::Debug for Masker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Masker({} literals)", self.literals.len())
    }
}

impl Masker {
    /// From secret values (strings, numbers, and whatever lists and maps hold).
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a Value>) -> Self {
        let mut plain = Vec::new();
        for value in secrets {
            collect_strings(value, &mut plain);
        }
        let mut literals: Vec<String> = plain
            .into_iter()
            .filter(|s| s.len() >= MIN_LITERAL_LEN)
            .flat_map(|s| {
                let b64 = base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
                [s, b64]
            })
            .collect();
        literals.sort_by_key(|s| std::cmp::Reverse(s.len()));
        literals.dedup();
        Masker { literals }
    }

    /// Whether `text` holds any of the secrets.
    pub fn reveals(&self, text: &str) -> bool {
        self.literals.iter().any(|s| text.contains(s.as_str()))
    }

    /// `text` with every secret (and its base64 form) replaced by [`MASK`].
    pub fn mask(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in &self.literals {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), MASK);
            }
        }
        out
    }
}

fn collect_strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|i| collect_strings(i, out)),
        Value::Object(m) => m.values().for_each(|i| collect_strings(i, out)),
        Value::Number(n) => out.push(n.to_string()),
        Value::Bool(_) | Value::Null => {}
    }
}

/// Replaces the value of every key under the top-level `data:` and `stringData:` of a
/// Secret manifest; continuation lines of multi-line values are dropped.
fn mask_secret_data(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_data = false;
    let mut key_indent: Option<usize> = None;
    for line in text.lines() {
        let indent = line.len() - line.trim_start().len();
        let trimmed = line.trim_start();
        if indent == 0 && !trimmed.is_empty() && !trimmed.starts_with('#') {
            in_data = false;
            key_indent = None;
            for section in ["data:", "stringData:"] {
                if let Some(rest) = trimmed.strip_prefix(section) {
                    in_data = true;
                    let rest = rest.trim();
                    if !rest.is_empty() && rest != "{}" && !rest.starts_with('#') {
                        // Flow style: `data: {a: b}`; hide it whole.
                        out.push_str(&format!("{section} {MASK}\n"));
                        in_data = false;
                        key_indent = Some(usize::MAX);
                    }
                }
            }
            if key_indent == Some(usize::MAX) {
                key_indent = None;
                continue;
            }
            out.push_str(line);
            out.push('\n');
            continue;
        }
        if !in_data || trimmed.is_empty() || trimmed.starts_with('#') {
            out.push_str(line);
            out.push('\n');
            continue;
        }
        let ki = *key_indent.get_or_insert(indent);
        if indent > ki {
            // Continuation of a block scalar or nested value: already masked with its key.
            continue;
        }
        match split_key(trimmed) {
            Some(key) => out.push_str(&format!("{}{key}: {MASK}\n", " ".repeat(indent))),
            None => out.push_str(&format!("{}{MASK}\n", " ".repeat(indent))),
        }
    }
    out
}

/// The key of a `key: value` line (quoted keys included), or `None`.
fn split_key(line: &str) -> Option<&str> {
    if let Some(q) = line.chars().next().filter(|c| *c == '"' || *c == '\'') {
        let end = line[1..].find(q)? + 2;
        return line[end..].starts_with(':').then(|| &line[..end]);
    }
    let i = line
        .find(": ")
        .or_else(|| line.ends_with(':').then(|| line.len() - 1))?;
    Some(&line[..i])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn secrets() -> BTreeMap<String, Value> {
        BTreeMap::from([("db".to_string(), json!("hunter22-canary"))])
    }

    #[test]
    fn secret_data_is_masked_whatever_it_holds() {
        let doc = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\ndata:\n  DB: \"aHVudGVyMjItY2FuYXJ5\"\n  OTHER: eHl6\n  \"quoted.key\": abc\nstringData:\n  cert: |\n    line1\n    line2\n  plain: x\ntype: Opaque\n";
        let masked = mask_manifest("Secret", doc, &secrets());
        assert_eq!(
            masked,
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\ndata:\n  DB: <masked>\n  OTHER: <masked>\n  \"quoted.key\": <masked>\nstringData:\n  cert: <masked>\n  plain: <masked>\ntype: Opaque\n"
        );
        let flow = mask_manifest("Secret", "kind: Secret\ndata: {a: b}\n", &secrets());
        assert_eq!(flow, "kind: Secret\ndata: <masked>\n");
    }

    #[test]
    fn secret_text_is_masked_in_other_objects() {
        let doc =
            "kind: ConfigMap\ndata:\n  url: postgres://u:hunter22-canary@db\n  b64: aHVudGVyMjItY2FuYXJ5\n";
        let masked = mask_manifest("ConfigMap", doc, &secrets());
        assert!(!masked.contains("hunter22-canary") && !masked.contains("aHVudGVyMjItY2FuYXJ5"));
        assert!(masked.contains("postgres://u:<masked>@db"));
    }

    #[test]
    fn masker_finds_and_hides_secrets_and_their_base64() {
        let secrets = secrets();
        let m = Masker::new(secrets.values());
        assert!(m.reveals("\"x hunter22-canary\"") && m.reveals("aHVudGVyMjItY2FuYXJ5"));
        assert!(!m.reveals("nothing secret"));
        assert_eq!(
            m.mask("a=hunter22-canary;b=aHVudGVyMjItY2FuYXJ5"),
            "a=<masked>;b=<masked>"
        );
        assert_eq!(format!("{m:?}"), "Masker(2 literals)");
        // Too short to mask outside Secret objects.
        let short = json!("ab");
        assert!(!Masker::new([&short]).reveals("abc"));
    }
}

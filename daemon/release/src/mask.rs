//! Hiding secret values in rendered manifests before a person sees them
//! (`convoy render`, API previews).
//!
//! Two layers, because a chart may transform a secret in ways no literal search finds:
//! 1. every `data` / `stringData` value of a `Secret` object is replaced, whatever it holds;
//! 2. anywhere else, each secret's text and its common transformations (case, JSON
//!    escaping, base64) are replaced where they appear (a chart putting a password into
//!    a ConfigMap or an env var, a template error quoting it): see [`Masker`] for the
//!    forms and the rule for secrets shorter than [`MIN_LITERAL_LEN`] bytes.

use std::collections::BTreeMap;

use base64::Engine;
use serde_json::Value;

/// What stands in for a hidden value.
pub const MASK: &str = "<masked>";

/// Returns `content` (one rendered object of `kind`) with secret values masked.
pub fn mask_manifest(kind: &str, content: &str, secrets: &BTreeMap<String, Value>) -> String {
    let out = Masker::new(secrets.values()).mask(content);
    if kind == "Secret" {
        mask_secret_data(&out)
    } else {
        out
    }
}

/// Secrets (and forms of them) shorter than this are never searched for as a substring:
/// replacing every occurrence of a short string would shred the text and reveal the
/// secret by its gaps. Such a form is masked only where it stands whole between quotes
/// (`"abc"`, `'abc'`: how Kubernetes, Go's `%q` and JSON quote a value), and inside
/// `Secret` objects' data.
pub const MIN_LITERAL_LEN: usize = 8;

/// The literal texts of a set of resolved secrets, in every form a chart commonly
/// turns them into, for hiding them wherever they turn up: rendered manifests, template
/// errors, an agent's failure messages, a dry run's field values. Debug shows only how
/// many there are.
///
/// The forms of each secret string `s`: `s` itself, upper- and lower-cased, JSON-escaped
/// (also what Go's `%q` prints for printable text), and base64 (standard and URL-safe,
/// with and without padding; of `s` and of its upper- and lower-cased forms). Every form
/// of at least [`MIN_LITERAL_LEN`] bytes is replaced wherever it occurs; a shorter form
/// only as a whole quoted value. A transformation outside this list (`sha256sum`, a
/// secret cut in two, base64 of a longer string that contains it) is not recognised.
#[derive(Clone, Default)]
pub struct Masker {
    /// (text to find, what replaces it), longest first so a secret containing another
    /// is replaced whole.
    literals: Vec<(String, String)>,
}

impl std::fmt::Debug for Masker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Masker({} literals)", self.literals.len())
    }
}

/// One form of a secret, as the coordinator describes it to an agent without sending
/// it: its length and `sha256(salt || form)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FormDigest {
    pub len: usize,
    pub sha256: [u8; 32],
}

/// Every form of `s` the masker looks for (see [`Masker`]), without duplicates.
pub fn forms(s: &str) -> Vec<String> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let mut cased = vec![s.to_string(), s.to_uppercase(), s.to_lowercase()];
    cased.dedup();
    let mut out = Vec::new();
    for c in &cased {
        out.push(c.clone());
        let json = serde_json::to_string(c).unwrap_or_default();
        out.push(json[1..json.len() - 1].to_string());
        for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
            out.push(engine.encode(c.as_bytes()));
        }
    }
    out.retain(|f| !f.is_empty());
    out.sort();
    out.dedup();
    out
}

impl Masker {
    /// From secret values (strings, numbers, and whatever lists and maps hold).
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a Value>) -> Self {
        let mut plain = Vec::new();
        for value in secrets {
            collect_strings(value, &mut plain);
        }
        let mut literals: Vec<(String, String)> = Vec::new();
        for s in plain {
            for form in forms(&s) {
                if form.len() >= MIN_LITERAL_LEN {
                    literals.push((form, MASK.to_string()));
                } else {
                    for q in ['"', '\''] {
                        literals.push((format!("{q}{form}{q}"), format!("{q}{MASK}{q}")));
                    }
                }
            }
        }
        literals.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        literals.dedup();
        Masker { literals }
    }

    /// Whether no secret is known (nothing to mask).
    pub fn is_empty(&self) -> bool {
        self.literals.is_empty()
    }

    /// Whether `text` holds any of the secrets.
    pub fn reveals(&self, text: &str) -> bool {
        self.literals.iter().any(|(s, _)| text.contains(s.as_str()))
    }

    /// `text` with every secret form replaced by [`MASK`].
    pub fn mask(&self, text: &str) -> String {
        let mut out = text.to_string();
        for (s, with) in &self.literals {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), with);
            }
        }
        out
    }

    /// The forms this masker looks for, as salted digests: what an agent needs to mask
    /// them in its own messages without being sent a secret. `salt` should be fresh
    /// random bytes per command.
    pub fn digests(&self, salt: &[u8]) -> Vec<FormDigest> {
        use sha2::{Digest, Sha256};
        self.literals
            .iter()
            .map(|(s, _)| {
                let mut h = Sha256::new();
                h.update(salt);
                h.update(s.as_bytes());
                FormDigest {
                    len: s.len(),
                    sha256: h.finalize().into(),
                }
            })
            .collect()
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
        assert!(format!("{m:?}").starts_with("Masker("));
        assert!(!format!("{m:?}").contains("hunter"));
        // Too short to mask as a substring: only whole, between quotes.
        let short = json!("ab");
        let m = Masker::new([&short]);
        assert!(!m.reveals("abc") && !m.reveals("ab"));
        assert_eq!(
            m.mask(r#"Invalid value: "ab": x"#),
            r#"Invalid value: "<masked>": x"#
        );
        assert_eq!(m.mask("label 'AB' and abc"), "label '<masked>' and abc");
    }

    #[test]
    fn transformed_secrets_are_masked() {
        let secret = json!("Hunter22-Canary\"q");
        let m = Masker::new([&secret]);
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        for form in [
            "Hunter22-Canary\"q".to_string(),
            "HUNTER22-CANARY\"Q".to_string(),
            "hunter22-canary\"q".to_string(),
            r#"Hunter22-Canary\"q"#.to_string(),
            b64("Hunter22-Canary\"q"),
            b64("HUNTER22-CANARY\"Q"),
            b64("Hunter22-Canary\"q").trim_end_matches('=').to_string(),
        ] {
            let text = format!("before {form} after");
            assert!(m.reveals(&text), "{form}");
            assert_eq!(m.mask(&text), "before <masked> after", "{form}");
        }
    }

    #[test]
    fn digests_match_the_forms_and_depend_on_the_salt() {
        let secret = json!("hunter22-canary");
        let m = Masker::new([&secret]);
        let a = m.digests(b"salt-a");
        let b = m.digests(b"salt-b");
        assert_eq!(a.len(), b.len());
        assert!(
            a.iter()
                .zip(&b)
                .all(|(x, y)| x.len == y.len && x.sha256 != y.sha256)
        );
        use sha2::{Digest, Sha256};
        let want: [u8; 32] = Sha256::digest(b"salt-ahunter22-canary").into();
        assert!(a.iter().any(|d| d.len == 15 && d.sha256 == want));
    }
}

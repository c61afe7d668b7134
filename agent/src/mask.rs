//! Masking secret values in the agent's own messages (failures, progress, dry-run
//! refusals, its log) without being sent them.
//!
//! The coordinator resolved the secrets and knows every form it masks (the value,
//! upper/lower case, JSON-escaped, base64; short ones only between quotes: see
//! `convoy_release::mask::Masker`). With each apply or dry run it sends those forms
//! as salted digests, `sha256(salt || form)` with the form's length and a fresh random
//! salt per command, never the values. The agent slides a window of each length over
//! a message and replaces every window whose digest matches.
//!
//! Why digests, not the values of the Secret objects the agent applies: a chart may
//! put a secret anywhere (a ConfigMap, a label, an env value), and the Kubernetes
//! errors that quote it (`Invalid value: "..."`) are about those objects; the
//! coordinator knows every secret the render read, the agent would know only those a
//! chart happens to put in a Secret. Digests add no new place where a secret travels
//! in clear (the manifests carry it anyway).

use std::collections::{BTreeMap, HashSet};

use sha2::{Digest, Sha256};

/// What stands in for a hidden value (the coordinator's mask).
pub const MASK: &str = "<masked>";

/// Salted digests of secret forms, from the coordinator. Debug shows only counts.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretDigests {
    pub salt: Vec<u8>,
    /// (length in bytes, sha256(salt || form)).
    pub forms: Vec<(usize, [u8; 32])>,
}

impl std::fmt::Debug for SecretDigests {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretDigests({} forms)", self.forms.len())
    }
}

/// Finds and masks the forms [`SecretDigests`] describe.
#[derive(Clone, Default)]
pub struct DigestMasker {
    salt: Vec<u8>,
    /// Per length, longest first, the digests of that length.
    by_len: BTreeMap<std::cmp::Reverse<usize>, HashSet<[u8; 32]>>,
}

impl std::fmt::Debug for DigestMasker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DigestMasker({} lengths)", self.by_len.len())
    }
}

impl DigestMasker {
    pub fn new(d: &SecretDigests) -> Self {
        let mut by_len: BTreeMap<std::cmp::Reverse<usize>, HashSet<[u8; 32]>> = BTreeMap::new();
        for (len, digest) in &d.forms {
            if *len > 0 {
                by_len.entry(std::cmp::Reverse(*len)).or_default().insert(*digest);
            }
        }
        DigestMasker {
            salt: d.salt.clone(),
            by_len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.by_len.is_empty()
    }

    fn matches(&self, window: &[u8], digests: &HashSet<[u8; 32]>) -> bool {
        let mut h = Sha256::new();
        h.update(&self.salt);
        h.update(window);
        let d: [u8; 32] = h.finalize().into();
        digests.contains(&d)
    }

    /// `text` with every described form replaced by [`MASK`] (longest first, left to
    /// right).
    pub fn mask(&self, text: &str) -> String {
        if self.is_empty() {
            return text.to_string();
        }
        let bytes = text.as_bytes();
        let mut out = String::with_capacity(text.len());
        let mut i = 0;
        'outer: while i < bytes.len() {
            for (std::cmp::Reverse(len), digests) in &self.by_len {
                let end = i + len;
                if end <= bytes.len() && text.is_char_boundary(end) && self.matches(&bytes[i..end], digests) {
                    out.push_str(MASK);
                    i = end;
                    continue 'outer;
                }
            }
            let c = text[i..].chars().next().unwrap_or('\u{fffd}');
            out.push(c);
            i += c.len_utf8().max(1);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digests(salt: &[u8], forms: &[&str]) -> SecretDigests {
        SecretDigests {
            salt: salt.to_vec(),
            forms: forms
                .iter()
                .map(|f| {
                    let mut h = Sha256::new();
                    h.update(salt);
                    h.update(f.as_bytes());
                    (f.len(), h.finalize().into())
                })
                .collect(),
        }
    }

    #[test]
    fn masks_every_described_form_and_nothing_else() {
        let m = DigestMasker::new(&digests(
            b"s4lt",
            &["hunter22-canary", "HUNTER22-CANARY", "\"ab\""],
        ));
        assert_eq!(
            m.mask(r#"metadata.labels: Invalid value: "HUNTER22-CANARY": x; é hunter22-canaryhunter22-canary "ab" abc"#),
            r#"metadata.labels: Invalid value: "<masked>": x; é <masked><masked> <masked> abc"#
        );
        assert_eq!(m.mask("nothing here"), "nothing here");
        assert_eq!(DigestMasker::default().mask("hunter22-canary"), "hunter22-canary");
        // Another salt: the digests do not match.
        let other = DigestMasker::new(&SecretDigests {
            salt: b"other".to_vec(),
            ..digests(b"s4lt", &["hunter22-canary"])
        });
        assert_eq!(other.mask("hunter22-canary"), "hunter22-canary");
        assert!(!format!("{:?}", digests(b"s", &["hunter22-canary"])).contains("hunter"));
    }
}

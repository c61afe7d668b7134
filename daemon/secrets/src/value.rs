//! The data that crosses this crate's boundary: what to read ([`SecretRequest`]), what
//! came back ([`Resolved`]), and the wrapper that keeps secret values out of logs,
//! errors, Debug output and serialized state ([`SecretValue`]).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};
use zeroize::Zeroizing;

/// One secret to resolve for one target context: the release's `secrets` entry for
/// that context (its own entry, or else `default`), already chosen by the caller.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SecretRequest {
    /// The target context (cluster) the value is for.
    pub context: String,
    /// The release's name for the secret; the chart sees `.Values.secrets.<secret_id>`.
    pub secret_id: String,
    /// `/mount/path/to/secret`, as written in release files: the first segment is the
    /// KV mount, the rest the secret's path inside it.
    pub vault_path: String,
    /// The key inside the secret.
    pub vault_key: String,
}

/// A secret value. Debug and Display print `<redacted>`; it implements no `Serialize`,
/// so it cannot end up in a store, an API response or a log by accident: the only way
/// to the text is [`SecretValue::expose`], which is easy to grep for in review.
/// The memory is zeroed when the value is dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(Zeroizing<String>);

impl SecretValue {
    pub fn new(value: impl Into<String>) -> Self {
        SecretValue(Zeroizing::new(value.into()))
    }

    /// The secret itself. Call it only where the value must leave the process
    /// (the rendered chart, an HTTP header to Vault).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

const REDACTED: &str = "<redacted>";

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// Deserializable so that credentials (an inline Vault token) can sit in the config
/// struct behind the same redaction; deliberately not `Serialize`.
impl<'de> Deserialize<'de> for SecretValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(SecretValue::new)
    }
}

/// Which version of a secret a resolution read: recorded in the release revision so
/// history shows what each revision shipped. Holds no value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SecretVersion {
    pub context: String,
    pub secret_id: String,
    pub vault_path: String,
    pub vault_key: String,
    /// The KV v2 version read; 0 for KV v1, which has no versions.
    pub version: u64,
}

impl SecretVersion {
    /// The request this version answered (without the version).
    pub fn request(&self) -> SecretRequest {
        SecretRequest {
            context: self.context.clone(),
            secret_id: self.secret_id.clone(),
            vault_path: self.vault_path.clone(),
            vault_key: self.vault_key.clone(),
        }
    }
}

/// Every requested secret of one release, all resolved (resolution is all-or-nothing).
#[derive(Debug, Default)]
pub struct Resolved {
    /// Keyed by `(context, secret_id)`.
    pub values: BTreeMap<(String, String), SecretValue>,
    /// One entry per request, sorted by context then secret_id.
    pub versions: Vec<SecretVersion>,
}

impl Resolved {
    /// The value of `secret_id` for `context`, if it was requested.
    pub fn get(&self, context: &str, secret_id: &str) -> Option<&SecretValue> {
        self.values.get(&(context.to_string(), secret_id.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_redact_and_expose_returns_the_value() {
        let v = SecretValue::new("s3cr3t-value");
        assert_eq!(format!("{v:?}"), "<redacted>");
        assert_eq!(format!("{v}"), "<redacted>");
        assert_eq!(format!("{v:#?}"), "<redacted>");
        assert_eq!(v.expose(), "s3cr3t-value");

        let mut r = Resolved::default();
        r.values.insert(("ctx".into(), "app1".into()), v);
        let dbg = format!("{r:?} {r:#?}");
        assert!(!dbg.contains("s3cr3t"), "{dbg}");
        assert_eq!(
            r.get("ctx", "app1").map(SecretValue::expose),
            Some("s3cr3t-value")
        );
        assert!(r.get("ctx", "other").is_none());
    }

    #[test]
    fn deserializes_from_a_plain_string() {
        let v: SecretValue = serde_json::from_str("\"tok\"").unwrap();
        assert_eq!(v.expose(), "tok");
    }
}

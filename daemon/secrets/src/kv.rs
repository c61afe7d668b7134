//! Reading KV secrets: path parsing, KV version discovery, and the v1/v2 reads.
//!
//! A release names `/kv/dev/ns1/app1/test`: `kv` is the mount, `dev/ns1/app1/test` the
//! secret. KV v2 reads `kv/data/dev/ns1/app1/test` and reports the version read; KV v1
//! reads `kv/dev/ns1/app1/test` (version 0). The version of a mount comes from
//! `sys/internal/ui/mounts/<mount>`, which Vault answers for any token with access to
//! something in that mount; when it does not answer, the read probes v2, then v1.

use std::collections::HashMap;

use rustify::endpoint::Endpoint;
use rustify::enums::{RequestMethod, RequestType, ResponseType};
use serde::Deserialize;
use serde_json::{Map, Value};
use vaultrs::api::kv2::requests::ReadSecretRequest;
use vaultrs::client::VaultClient;

use crate::SecretValue;
use crate::client::classify;
use crate::error::Cause;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KvVersion {
    V1,
    V2,
}

impl KvVersion {
    pub(crate) fn number(self) -> u8 {
        match self {
            KvVersion::V1 => 1,
            KvVersion::V2 => 2,
        }
    }

    pub(crate) fn from_number(n: u8) -> Option<Self> {
        match n {
            1 => Some(KvVersion::V1),
            2 => Some(KvVersion::V2),
            _ => None,
        }
    }
}

/// What Vault says a mount is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MountKind {
    Kv(KvVersion),
    /// Another engine type (transit, pki, ...): no KV secret can be read there.
    NotKv(String),
    /// Vault would not tell (no permission on the internal endpoint, old server).
    Unknown,
}

/// A release's Vault path split into mount and secret path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct SecretPath {
    pub mount: String,
    pub path: String,
}

impl SecretPath {
    pub(crate) fn parse(raw: &str) -> Result<Self, Cause> {
        let trimmed = raw.trim_start_matches('/').trim_end_matches('/');
        let (mount, path) = trimmed.split_once('/').ok_or_else(|| {
            Cause::InvalidPath(format!("{raw:?} needs a mount and a secret: /<mount>/<path>"))
        })?;
        if raw
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '?' | '#' | '%'))
        {
            return Err(Cause::InvalidPath(format!(
                "{raw:?} contains whitespace or one of ? # %"
            )));
        }
        if mount.is_empty() || path.split('/').any(|s| s.is_empty() || s == "." || s == "..") {
            return Err(Cause::InvalidPath(format!(
                "{raw:?} has an empty, '.' or '..' segment"
            )));
        }
        Ok(SecretPath {
            mount: mount.to_string(),
            path: path.to_string(),
        })
    }
}

/// The key/value pairs of one secret and the version they came from (0 for KV v1).
pub(crate) struct SecretData {
    entries: Map<String, Value>,
    pub version: u64,
}

impl SecretData {
    /// The value at `key` as text: strings as they are, numbers and booleans in their
    /// JSON spelling. Errors name keys (never values).
    pub(crate) fn get(&self, key: &str) -> Result<SecretValue, Cause> {
        match self.entries.get(key) {
            Some(Value::String(s)) => Ok(SecretValue::new(s.as_str())),
            Some(Value::Number(n)) => Ok(SecretValue::new(n.to_string())),
            Some(Value::Bool(b)) => Ok(SecretValue::new(b.to_string())),
            Some(Value::Null) => Err(Cause::UnsupportedValue("null")),
            Some(Value::Array(_)) => Err(Cause::UnsupportedValue("array")),
            Some(Value::Object(_)) => Err(Cause::UnsupportedValue("object")),
            None => {
                let mut keys: Vec<&str> = self.entries.keys().map(String::as_str).collect();
                keys.sort_unstable();
                let available = if keys.is_empty() {
                    "no keys".to_string()
                } else {
                    keys.join(", ")
                };
                Err(Cause::MissingKey { available })
            }
        }
    }
}

/// Asks Vault what `mount` is. Only a Vault that cannot be reached or is sealed is an
/// error; any refusal leaves the kind [`MountKind::Unknown`].
pub(crate) async fn discover(client: &VaultClient, mount: &str) -> Result<MountKind, Cause> {
    let endpoint = UiMountRequest {
        mount: mount.to_string(),
    };
    match vaultrs::api::exec_with_result(client, endpoint).await {
        Ok(info) => Ok(info.kind()),
        Err(e) => match classify(&e) {
            cause @ (Cause::Unreachable(_) | Cause::Sealed) => Err(cause),
            cause => {
                tracing::debug!(mount, %cause, "KV version of the mount not discoverable; will probe");
                Ok(MountKind::Unknown)
            }
        },
    }
}

/// Reads one secret; `version` None probes v2 then v1.
pub(crate) async fn read(
    client: &VaultClient,
    secret: &SecretPath,
    version: Option<KvVersion>,
) -> Result<SecretData, Cause> {
    match version {
        Some(KvVersion::V2) => read_v2(client, secret).await,
        Some(KvVersion::V1) => read_v1(client, secret).await,
        None => match read_v2(client, secret).await {
            Ok(data) => Ok(data),
            Err(Cause::Unreachable(e)) => Err(Cause::Unreachable(e)),
            Err(Cause::Sealed) => Err(Cause::Sealed),
            Err(v2_cause) => match read_v1(client, secret).await {
                Ok(data) => Ok(data),
                // A v2 refusal says more than the v1 guess's "not found".
                Err(Cause::MissingPath) if v2_cause == Cause::PermissionDenied => Err(v2_cause),
                Err(cause) => Err(cause),
            },
        },
    }
}

async fn read_v2(client: &VaultClient, secret: &SecretPath) -> Result<SecretData, Cause> {
    tracing::debug!(mount = %secret.mount, path = %secret.path, kv = 2, "reading secret");
    let endpoint = ReadSecretRequest {
        mount: secret.mount.clone(),
        path: secret.path.clone(),
        version: None,
    };
    let response = vaultrs::api::exec_with_result(client, endpoint)
        .await
        .map_err(|e| classify(&e))?;
    if response.metadata.destroyed {
        return Err(Cause::MissingPath);
    }
    match response.data {
        Value::Object(entries) => Ok(SecretData {
            entries,
            version: response.metadata.version,
        }),
        // A deleted (not destroyed) latest version answers with null data.
        Value::Null => Err(Cause::MissingPath),
        _ => Err(Cause::Unexpected("KV v2 `data` is not an object".into())),
    }
}

async fn read_v1(client: &VaultClient, secret: &SecretPath) -> Result<SecretData, Cause> {
    tracing::debug!(mount = %secret.mount, path = %secret.path, kv = 1, "reading secret");
    let response = vaultrs::kv1::get_raw(client, &secret.mount, &secret.path)
        .await
        .map_err(|e| classify(&e))?;
    match response.data {
        Value::Object(entries) => Ok(SecretData { entries, version: 0 }),
        _ => Err(Cause::Unexpected("KV v1 `data` is not an object".into())),
    }
}

/// `GET sys/internal/ui/mounts/<mount>`: the mount's type and options.
struct UiMountRequest {
    mount: String,
}

impl Endpoint for UiMountRequest {
    type Response = UiMount;
    const REQUEST_BODY_TYPE: RequestType = RequestType::JSON;
    const RESPONSE_BODY_TYPE: ResponseType = ResponseType::JSON;

    fn path(&self) -> String {
        format!("sys/internal/ui/mounts/{}", self.mount)
    }

    fn method(&self) -> RequestMethod {
        RequestMethod::GET
    }
}

#[derive(Debug, Deserialize)]
struct UiMount {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    options: Option<HashMap<String, Value>>,
}

impl UiMount {
    fn kind(&self) -> MountKind {
        match self.kind.as_str() {
            // `generic` is KV v1's old name.
            "generic" => MountKind::Kv(KvVersion::V1),
            "kv" => {
                let version = self.options.as_ref().and_then(|o| o.get("version"));
                match version.and_then(Value::as_str).map(str::trim) {
                    Some("2") => MountKind::Kv(KvVersion::V2),
                    _ => MountKind::Kv(KvVersion::V1),
                }
            }
            "" => MountKind::Unknown,
            other => MountKind::NotKv(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_split_into_mount_and_secret() {
        assert_eq!(
            SecretPath::parse("/kv/dev/ns1/app1/test").unwrap(),
            SecretPath {
                mount: "kv".into(),
                path: "dev/ns1/app1/test".into()
            }
        );
        assert_eq!(SecretPath::parse("secret/a").unwrap().mount, "secret");
        for bad in [
            "/kv",
            "kv/",
            "/",
            "",
            "/kv//a",
            "/kv/../a",
            "/kv/a b",
            "/kv/a?version=1",
        ] {
            assert!(
                matches!(SecretPath::parse(bad), Err(Cause::InvalidPath(_))),
                "{bad:?} was accepted"
            );
        }
    }

    #[test]
    fn values_are_text_and_missing_keys_list_the_others() {
        let Value::Object(entries) = json!({"s": "x", "n": 42, "b": true, "o": {"a": 1}, "z": null}) else {
            unreachable!()
        };
        let data = SecretData { entries, version: 3 };
        assert_eq!(data.get("s").unwrap().expose(), "x");
        assert_eq!(data.get("n").unwrap().expose(), "42");
        assert_eq!(data.get("b").unwrap().expose(), "true");
        assert_eq!(data.get("o").unwrap_err(), Cause::UnsupportedValue("object"));
        assert_eq!(data.get("z").unwrap_err(), Cause::UnsupportedValue("null"));
        assert_eq!(
            data.get("password").unwrap_err(),
            Cause::MissingKey {
                available: "b, n, o, s, z".into()
            }
        );
    }

    #[test]
    fn mount_kinds() {
        let m = |v: Value| serde_json::from_value::<UiMount>(v).unwrap().kind();
        assert_eq!(
            m(json!({"type": "kv", "options": {"version": "2"}})),
            MountKind::Kv(KvVersion::V2)
        );
        assert_eq!(
            m(json!({"type": "kv", "options": {"version": "1"}})),
            MountKind::Kv(KvVersion::V1)
        );
        assert_eq!(
            m(json!({"type": "kv", "options": null})),
            MountKind::Kv(KvVersion::V1)
        );
        assert_eq!(m(json!({"type": "generic"})), MountKind::Kv(KvVersion::V1));
        assert_eq!(m(json!({"type": "transit"})), MountKind::NotKv("transit".into()));
    }
}

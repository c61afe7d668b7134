//! Reading KV secrets: path parsing, KV version discovery, and the v1/v2 reads.
//!
//! A release names `/kv/dev/ns1/app1/test`: `kv` is the mount, `dev/ns1/app1/test` the
//! secret. KV v2 reads `kv/data/dev/ns1/app1/test` and reports the version read; KV v1
//! reads `kv/dev/ns1/app1/test` (version 0). The version of a mount comes from
//! `sys/internal/ui/mounts/<mount>`, which Vault answers for any token with access to
//! something in that mount; when it does not answer, the read probes v2, then v1.
//! A read may be pinned to a recorded version ([`crate::pin`]).

use std::collections::HashMap;

use rustify::endpoint::Endpoint;
use rustify::enums::{RequestMethod, RequestType, ResponseType};
use serde::Deserialize;
use serde_json::{Map, Value};
use vaultrs::api::kv2::requests::ReadSecretRequest;
use vaultrs::client::VaultClient;

use crate::SecretValue;
use crate::client::classify;
use crate::error::{Cause, Removal};
use crate::pin;

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

    /// The KV v2 API path (`secret/data/app1/db`), as operators see it in Vault's
    /// audit log and policies.
    pub(crate) fn v2_api_path(&self) -> String {
        format!("{}/data/{}", self.mount, self.path)
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

/// Reads one secret; `kind` None probes v2 then v1. `pin` None reads the latest
/// version; `Some(n)` reads exactly the recorded version n (0: a KV v1 read) or fails.
pub(crate) async fn read(
    client: &VaultClient,
    secret: &SecretPath,
    kind: Option<KvVersion>,
    pin: Option<u64>,
) -> Result<SecretData, Cause> {
    if let (Some(kind), Some(pin)) = (kind, pin) {
        pin::check_mount(&secret.mount, kind, pin)?;
    }
    // Version 0 is KV v1's "no version": a v2 read for it (only when probing) reads
    // the latest, which `check_read` then refuses.
    let v2_version = pin.filter(|&n| n > 0);
    let data = match kind {
        Some(KvVersion::V2) => read_v2(client, secret, v2_version).await?,
        Some(KvVersion::V1) => read_v1(client, secret).await?,
        None => match read_v2(client, secret, v2_version).await {
            Ok(data) => data,
            Err(
                cause @ (Cause::Unreachable(_)
                | Cause::Sealed
                // The version's own metadata came back: this is a KV v2 mount.
                | Cause::VersionGone {
                    removal: Removal::Deleted | Removal::Destroyed,
                    ..
                }),
            ) => return Err(cause),
            Err(v2_cause) => match read_v1(client, secret).await {
                Ok(data) => data,
                // A v2 refusal (or a gone pinned version) says more than the v1
                // guess's "not found".
                Err(Cause::MissingPath)
                    if matches!(v2_cause, Cause::PermissionDenied | Cause::VersionGone { .. }) =>
                {
                    return Err(v2_cause);
                }
                Err(cause) => return Err(cause),
            },
        },
    };
    if let Some(pin) = pin {
        pin::check_read(&secret.mount, pin, data.version)?;
    }
    Ok(data)
}

/// A KV v2 read of `version` (None: the latest).
async fn read_v2(
    client: &VaultClient,
    secret: &SecretPath,
    version: Option<u64>,
) -> Result<SecretData, Cause> {
    tracing::debug!(mount = %secret.mount, path = %secret.path, kv = 2, ?version, "reading secret");
    let endpoint = ReadSecretRequest {
        mount: secret.mount.clone(),
        path: secret.path.clone(),
        version,
    };
    let gone = |removal| match version {
        Some(version) => Cause::VersionGone {
            path: secret.v2_api_path(),
            version,
            removal,
        },
        // The latest version deleted or destroyed: no current secret there.
        None => Cause::MissingPath,
    };
    let response = vaultrs::api::exec_with_result(client, endpoint)
        .await
        .map_err(|e| {
            version
                .and_then(|n| pin::gone(&e, &secret.v2_api_path(), n))
                .unwrap_or_else(|| classify(&e))
        })?;
    // Vault answers a gone version with 404; these guard servers that answer 200.
    let metadata = &response.metadata;
    if metadata.destroyed {
        return Err(gone(Removal::Destroyed));
    }
    match response.data {
        Value::Object(entries) => Ok(SecretData {
            entries,
            version: response.metadata.version,
        }),
        Value::Null => Err(gone(pin::removal(false, &metadata.deletion_time))),
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

    /// Pinned reads where Vault will not say the mount's KV version: the read probes
    /// v2 then v1, and the pin still decides (never a silent read of the latest).
    mod probing {
        use super::*;
        use crate::client::Connection;
        use crate::error::Removal;
        use crate::fake::FakeVault;

        fn wrapped(data: Value) -> Value {
            json!({"request_id": "r", "lease_id": "", "lease_duration": 0, "renewable": false,
                   "auth": null, "warnings": null, "wrap_info": null, "data": data})
        }

        fn v2(version: u64, data: Value) -> Value {
            let metadata = json!({"created_time": "t", "deletion_time": "", "custom_metadata": null,
                                  "destroyed": false, "version": version});
            wrapped(json!({"data": data, "metadata": metadata}))
        }

        async fn read_at(fake: &FakeVault, path: &str, pin: Option<u64>) -> Result<SecretData, Cause> {
            let yaml = format!("address: {}\nauth: {{method: token, token: t}}\n", fake.address);
            let conn = Connection::new(&serde_yaml::from_str(&yaml).unwrap()).unwrap();
            read(&conn.client("t"), &SecretPath::parse(path).unwrap(), None, pin).await
        }

        #[tokio::test]
        async fn a_v2_pin_on_what_turns_out_to_be_kv_v1_is_a_mismatch() {
            let fake = FakeVault::start(&[("kv1/a", 200, wrapped(json!({"k": "x"})))]).await;
            let err = read_at(&fake, "/kv1/a", Some(3)).await.err().unwrap();
            assert!(
                matches!(&err, Cause::VersionMismatch(m) if m.contains("answered as KV v1")),
                "{err}"
            );
            assert_eq!(fake.requests(), ["/v1/kv1/data/a?version=3", "/v1/kv1/a"]);
            // Pinned to 0, the same secret reads as usual.
            assert_eq!(read_at(&fake, "/kv1/a", Some(0)).await.unwrap().version, 0);
        }

        #[tokio::test]
        async fn a_kv1_pin_on_what_turns_out_to_be_kv_v2_is_a_mismatch() {
            let fake = FakeVault::start(&[("kv/data/a", 200, v2(5, json!({"k": "x"})))]).await;
            let err = read_at(&fake, "/kv/a", Some(0)).await.err().unwrap();
            assert!(
                matches!(&err, Cause::VersionMismatch(m) if m.contains("answered as KV v2 (version 5)")),
                "{err}"
            );
            // Unpinned, the latest is fine.
            assert_eq!(read_at(&fake, "/kv/a", None).await.unwrap().version, 5);
        }

        #[tokio::test]
        async fn a_pinned_version_reads_that_version_or_names_it_gone() {
            let deleted = json!({"data": {"data": null, "metadata": {"created_time": "t",
                "deletion_time": "2026-01-02T00:00:00Z", "destroyed": false, "version": 4}}});
            let fake = FakeVault::start(&[
                ("kv/data/a?version=2", 200, v2(2, json!({"k": "two"}))),
                ("kv/data/a?version=3", 200, v2(4, json!({"k": "four"}))),
                ("kv/data/a?version=4", 404, deleted),
            ])
            .await;
            let data = read_at(&fake, "/kv/a", Some(2)).await.unwrap();
            assert_eq!((data.version, data.get("k").unwrap().expose()), (2, "two"));

            // Vault answering another version than asked is refused.
            let err = read_at(&fake, "/kv/a", Some(3)).await.err().unwrap();
            assert!(
                matches!(&err, Cause::VersionMismatch(m) if m.contains("version 3") && m.contains("version 4")),
                "{err}"
            );

            // The deleted version's metadata proves KV v2: no v1 probe follows.
            let before = fake.requests().len();
            let err = read_at(&fake, "/kv/a", Some(4)).await.err().unwrap();
            assert_eq!(
                err,
                Cause::VersionGone {
                    path: "kv/data/a".into(),
                    version: 4,
                    removal: Removal::Deleted
                }
            );
            assert_eq!(fake.requests()[before..], ["/v1/kv/data/a?version=4"]);

            // Neither v2 nor v1 has it: the version is gone, not "no secret here".
            let err = read_at(&fake, "/kv/a", Some(7)).await.err().unwrap();
            assert!(
                matches!(
                    err,
                    Cause::VersionGone {
                        version: 7,
                        removal: Removal::Unknown,
                        ..
                    }
                ),
                "{err}"
            );
        }
    }
}

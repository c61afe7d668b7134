//! Reading a secret at the version a revision recorded (a "pin"), so that re-rendering
//! a revision after a coordinator restart ships what the revision shipped, not a value
//! rotated since.
//!
//! A pin is the `SecretVersion.version` of an earlier resolution: N > 0 for a KV v2
//! read, 0 for KV v1 (which has no versions). A pin that the mount cannot serve is a
//! [`Cause::VersionMismatch`], never a silent read of the latest value; a KV v2
//! version that was deleted or destroyed since is a [`Cause::VersionGone`].

use serde::Deserialize;
use vaultrs::error::ClientError;

use crate::error::{Cause, Removal};
use crate::kv::KvVersion;

/// Before any read: whether a mount of KV version `kind` can hold version `pin`.
pub(crate) fn check_mount(mount: &str, kind: KvVersion, pin: u64) -> Result<(), Cause> {
    match (kind, pin) {
        (KvVersion::V1, 0) => Ok(()),
        (KvVersion::V2, n) if n > 0 => Ok(()),
        (KvVersion::V1, n) => Err(Cause::VersionMismatch(format!(
            "the revision recorded KV v2 version {n}, but mount {mount:?} is KV v1, which has no versions"
        ))),
        (KvVersion::V2, _) => Err(Cause::VersionMismatch(format!(
            "the revision recorded version 0 (a KV v1 read), but mount {mount:?} is KV v2, \
             so there is no recorded version to read"
        ))),
    }
}

/// After a read: whether Vault answered with the version pinned (0 = a KV v1 read).
pub(crate) fn check_read(mount: &str, pin: u64, read: u64) -> Result<(), Cause> {
    if pin == read {
        return Ok(());
    }
    Err(Cause::VersionMismatch(match (pin, read) {
        (0, n) => format!(
            "the revision recorded version 0 (a KV v1 read), but mount {mount:?} answered as KV v2 (version {n})"
        ),
        (n, 0) => format!(
            "the revision recorded KV v2 version {n}, but mount {mount:?} answered as KV v1, which has no versions"
        ),
        (n, m) => format!("asked Vault for version {n}, it answered with version {m}"),
    }))
}

/// The cause of a failed KV v2 read of version `version` at API path `api_path`: a
/// 404 means the version is gone. The 404 of a deleted or destroyed version carries
/// that version's metadata (and null data), which tells which of the two; only the
/// metadata fields are deserialized.
pub(crate) fn gone(err: &ClientError, api_path: &str, version: u64) -> Option<Cause> {
    use rustify::errors::ClientError as Rest;
    if crate::client::classify(err) != Cause::MissingPath {
        return None;
    }
    let removal = match err {
        ClientError::RestClientError {
            source: Rest::ServerResponseError {
                content: Some(body), ..
            },
        } => removal_from_body(body, version),
        _ => Removal::Unknown,
    };
    Some(Cause::VersionGone {
        path: api_path.to_string(),
        version,
        removal,
    })
}

/// Why a version's data is absent, from its metadata. Only meaningful when the data
/// is absent: with `delete_version_after` set on a mount, a readable version carries
/// a (future) `deletion_time` too.
pub(crate) fn removal(destroyed: bool, deletion_time: &str) -> Removal {
    if destroyed {
        Removal::Destroyed
    } else if !deletion_time.is_empty() {
        Removal::Deleted
    } else {
        Removal::Unknown
    }
}

fn removal_from_body(body: &str, version: u64) -> Removal {
    #[derive(Deserialize)]
    struct Body {
        data: Data,
    }
    #[derive(Deserialize)]
    struct Data {
        metadata: Metadata,
    }
    #[derive(Deserialize)]
    struct Metadata {
        version: u64,
        #[serde(default)]
        destroyed: bool,
        #[serde(default)]
        deletion_time: String,
    }
    match serde_json::from_str::<Body>(body) {
        Ok(Body {
            data: Data { metadata: m },
        }) if m.version == version => removal(m.destroyed, &m.deletion_time),
        _ => Removal::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustify::errors::ClientError as Rest;

    fn not_found(body: Option<&str>) -> ClientError {
        match body {
            // What vaultrs makes of a 404 whose body has no `errors` list.
            Some(body) => ClientError::RestClientError {
                source: Rest::ServerResponseError {
                    code: 404,
                    content: Some(body.to_string()),
                },
            },
            None => ClientError::APIError {
                code: 404,
                errors: Vec::new(),
            },
        }
    }

    fn body(version: u64, destroyed: bool, deletion_time: &str) -> String {
        serde_json::json!({
            "data": {
                "data": null,
                "metadata": {"created_time": "2026-01-01T00:00:00Z", "custom_metadata": null,
                             "deletion_time": deletion_time, "destroyed": destroyed, "version": version}
            }
        })
        .to_string()
    }

    #[test]
    fn a_pin_must_fit_the_mounts_kv_version() {
        assert_eq!(check_mount("kv", KvVersion::V2, 3), Ok(()));
        assert_eq!(check_mount("kv1", KvVersion::V1, 0), Ok(()));
        let err = check_mount("kv1", KvVersion::V1, 3).unwrap_err();
        assert!(
            matches!(&err, Cause::VersionMismatch(m) if m.contains("version 3") && m.contains("\"kv1\" is KV v1")),
            "{err}"
        );
        let err = check_mount("kv", KvVersion::V2, 0).unwrap_err();
        assert!(
            matches!(&err, Cause::VersionMismatch(m) if m.contains("version 0") && m.contains("\"kv\" is KV v2")),
            "{err}"
        );
    }

    #[test]
    fn the_version_read_must_be_the_version_pinned() {
        assert_eq!(check_read("kv", 4, 4), Ok(()));
        assert_eq!(check_read("kv1", 0, 0), Ok(()));
        for (pin, read, expect) in [
            (0, 2, "answered as KV v2 (version 2)"),
            (2, 0, "answered as KV v1"),
            (2, 3, "asked Vault for version 2, it answered with version 3"),
        ] {
            let err = check_read("kv", pin, read).unwrap_err();
            assert!(
                matches!(&err, Cause::VersionMismatch(m) if m.contains(expect)),
                "{pin} {read}: {err}"
            );
        }
    }

    #[test]
    fn a_404_tells_deleted_from_destroyed_from_unknown() {
        let cases = [
            (Some(body(3, false, "2026-01-02T00:00:00Z")), Removal::Deleted),
            (Some(body(3, true, "")), Removal::Destroyed),
            // Metadata of another version, or none at all: cannot tell.
            (Some(body(4, true, "")), Removal::Unknown),
            (Some("not json".to_string()), Removal::Unknown),
            (None, Removal::Unknown),
        ];
        for (body, removal) in cases {
            let cause = gone(&not_found(body.as_deref()), "secret/data/app1/db", 3);
            assert_eq!(
                cause,
                Some(Cause::VersionGone {
                    path: "secret/data/app1/db".into(),
                    version: 3,
                    removal
                }),
                "{body:?}"
            );
        }
        // Not a 404: the usual classification applies.
        let denied = ClientError::APIError {
            code: 403,
            errors: vec!["permission denied".into()],
        };
        assert_eq!(gone(&denied, "secret/data/app1/db", 3), None);
    }

    #[test]
    fn gone_messages_name_path_version_and_what_to_do() {
        let text = |removal| {
            Cause::VersionGone {
                path: "secret/data/app1/db".into(),
                version: 3,
                removal,
            }
            .to_string()
        };
        let unknown = text(Removal::Unknown);
        assert!(
            unknown
                .starts_with("secret/data/app1/db version 3 was deleted or destroyed; it cannot be re-read"),
            "{unknown}"
        );
        assert!(unknown.contains("submit the release again"), "{unknown}");
        let deleted = text(Removal::Deleted);
        assert!(
            deleted.starts_with("secret/data/app1/db version 3 was deleted; it cannot be re-read")
                && deleted.contains("kv undelete -versions=3"),
            "{deleted}"
        );
        let destroyed = text(Removal::Destroyed);
        assert!(
            destroyed.starts_with("secret/data/app1/db version 3 was destroyed; it cannot be re-read"),
            "{destroyed}"
        );
    }
}

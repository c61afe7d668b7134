//! The crate's one error type. Every message names where the problem is (config key,
//! or release + secret_id + context + path + key) and what class of failure it is,
//! so an operator knows whether to fix a policy, unseal Vault or fix the release file.
//! No variant can hold a secret value: causes are built from status codes, Vault's
//! own error strings and transport errors, never from a response body (except the
//! deleted/destroyed flags of a gone pinned version's metadata, see `pin.rs`).

/// `Result` with [`SecretsError`].
pub type Result<T, E = SecretsError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    /// The `vault:` section of the config is invalid; `key` is the dotted path.
    #[error("config `vault.{key}`: {reason}")]
    Config { key: String, reason: String },

    /// One secret of a release could not be resolved, so none is returned.
    #[error("{0}")]
    Secret(Box<SecretFailure>),

    /// Logging in to Vault failed before any secret was read.
    #[error("release {release}: Vault login with {auth} failed: {cause}")]
    Login {
        release: String,
        /// Which configured auth: `vault.auth (approle at auth/approle/)`, ...
        auth: String,
        cause: Cause,
    },

    /// `require_environment_auth` is set and the release's environment has no auth
    /// of its own, so it would otherwise read with the shared default role.
    #[error(
        "release {release}: environment {environment:?} has no entry in \
         `vault.environments` and `vault.require_environment_auth` is set"
    )]
    NoEnvironmentAuth { release: String, environment: String },
}

/// Which secret failed and why (boxed in [`SecretsError::Secret`] to keep `Result`s small).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "release {release}: secret {secret_id:?} for context {context:?} \
     (Vault path {path}, key {key:?}): {cause}"
)]
pub struct SecretFailure {
    pub release: String,
    pub secret_id: String,
    pub context: String,
    pub path: String,
    pub key: String,
    pub cause: Cause,
}

impl SecretsError {
    /// The failure class, when the error concerns one secret.
    pub fn cause(&self) -> Option<&Cause> {
        match self {
            SecretsError::Secret(f) => Some(&f.cause),
            SecretsError::Login { cause, .. } => Some(cause),
            _ => None,
        }
    }
}

/// Why one Vault operation failed: the classes an operator acts on differently.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Cause {
    /// No answer: connection refused, reset, DNS, TLS, timeout.
    #[error("Vault unreachable: {0}")]
    Unreachable(String),
    /// Vault answered 503 "Vault is sealed".
    #[error("Vault is sealed (unseal it, then submit again)")]
    Sealed,
    /// HTTP 403 after a fresh login: the role's policy does not allow this path.
    #[error("permission denied: the Vault policy of this auth role does not allow reading it")]
    PermissionDenied,
    /// HTTP 404: no secret there (or its latest version was deleted).
    #[error("no secret at this path")]
    MissingPath,
    /// The secret exists but lacks the key; lists the keys it has (names only).
    #[error("the secret has no such key (it has: {available})")]
    MissingKey { available: String },
    /// The mount is not a KV engine, or not the KV version it was pinned to.
    #[error("wrong KV version: {0}")]
    WrongKvVersion(String),
    /// The release's path cannot be a KV secret path.
    #[error("invalid Vault path: {0}")]
    InvalidPath(String),
    /// The same context and secret_id were requested from two different places.
    #[error("requested twice with different sources (also from {other})")]
    Conflict { other: String },
    /// The key holds an object, array or null: the chart needs text.
    #[error("the value is a JSON {0}; expected a string, number or boolean")]
    UnsupportedValue(&'static str),
    /// A credential file (token, AppRole secret_id, service-account JWT) is unusable.
    #[error("{0}")]
    Credential(String),
    /// Any other error status; `message` is Vault's own `errors` list.
    #[error("Vault answered HTTP {status}: {message}")]
    Vault { status: u16, message: String },
    /// Vault answered, but not in the shape the KV API documents.
    #[error("unexpected answer from Vault: {0}")]
    Unexpected(String),
    /// A pinned read ([`crate::Vault::resolve_pinned`]) that the mount cannot serve as
    /// recorded: a KV v2 version asked of a KV v1 mount, a KV v1 read (version 0)
    /// asked of a KV v2 mount, or Vault answering with another version.
    #[error("pinned version mismatch: {0}")]
    VersionMismatch(String),
    /// The pinned KV v2 version was deleted or destroyed after the revision recorded
    /// it; `path` is the API path (`secret/data/app1/db`).
    #[error("{path} version {version} {removal}; it cannot be re-read{}", removal.hint(*version))]
    VersionGone {
        path: String,
        version: u64,
        removal: Removal,
    },
}

/// How a pinned KV v2 version went away: it decides whether an operator can bring it
/// back (`kv undelete`) or must submit the release again with the current value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// Soft-deleted: `kv undelete` restores it.
    Deleted,
    /// Destroyed: the data is gone for good.
    Destroyed,
    /// Vault answered 404 without the version's metadata: the secret's metadata was
    /// deleted (which destroys every version), or it never had this version.
    Unknown,
}

impl Removal {
    /// What the operator can do about it.
    fn hint(self, version: u64) -> String {
        const AGAIN: &str = "submit the release again to ship the current value";
        match self {
            Removal::Deleted => {
                format!(" until it is undeleted (`kv undelete -versions={version}`), or {AGAIN}")
            }
            Removal::Destroyed | Removal::Unknown => format!(" ({AGAIN})"),
        }
    }
}

impl std::fmt::Display for Removal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Removal::Deleted => "was deleted",
            Removal::Destroyed => "was destroyed",
            Removal::Unknown => "was deleted or destroyed",
        })
    }
}

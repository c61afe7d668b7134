//! convoy-secrets: resolves a release's secrets from Vault (or OpenBao) for every
//! target context, before any cluster is touched.
//!
//! The caller (the coordinator) has already picked, per context and secret_id, the
//! release's own entry or `default`, and hands over plain [`SecretRequest`]s; this
//! crate logs in with the auth of the release's environment ([`config`]), reads
//! every distinct path once with bounded concurrency, and returns the values behind a
//! redacting [`SecretValue`] plus the KV versions read ([`SecretVersion`], safe to
//! store in the revision). Resolution is all-or-nothing.
//!
//! Re-rendering a recorded revision uses [`Vault::resolve_pinned`] with the revision's
//! [`SecretVersion`]s: each secret is read at exactly the version it shipped with, so
//! a secret rotated in between is not silently shipped under the old revision.
//!
//! Secret values never reach logs (tracing names paths only), errors (causes are
//! built from status codes and Vault's error strings, never response bodies),
//! Debug output, or anything serializable.
#![forbid(unsafe_code)]

mod client;
pub mod config;
mod error;
#[cfg(test)]
mod fake;
mod kv;
mod pin;
mod resolve;
mod session;
mod value;

pub use config::{AuthConfig, VaultConfig};
pub use error::{Cause, Removal, Result, SecretFailure, SecretsError};
pub use resolve::Vault;
pub use session::AuthStats;
pub use value::{Resolved, SecretRequest, SecretValue, SecretVersion};

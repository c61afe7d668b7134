//! One auth identity (the default `auth`, or one environment's) and its token.
//!
//! The token is obtained lazily, renewed when less than a third of its TTL is left
//! (renew-on-use here, plus [`crate::Vault::spawn_renewal`] for idle periods), and
//! re-acquired by a fresh login when renewal is refused or the token was revoked.
//! A 403 does not always mean "revoked": [`Session::recover_from_denied`] asks Vault
//! (`lookup-self`) whether the token is still valid, so a policy that denies a path
//! is reported as such instead of triggering a login storm.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};
use vaultrs::api::AuthInfo;

use crate::SecretValue;
use crate::client::{Connection, classify};
use crate::config::AuthConfig;
use crate::error::Cause;

/// How often this session logged in and renewed; for tests and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AuthStats {
    pub logins: u64,
    pub renewals: u64,
}

/// A token and the login it came from; `generation` changes at every login.
#[derive(Clone)]
pub(crate) struct Token {
    pub value: SecretValue,
    pub generation: u64,
}

#[derive(Clone, Copy, Debug)]
struct Lease {
    obtained: Instant,
    /// Zero: never expires (root tokens).
    ttl: Duration,
    /// The TTL the token started with; refresh when less than a third of it is left.
    initial_ttl: Duration,
    renewable: bool,
}

impl Lease {
    fn refresh_at(&self) -> Option<Instant> {
        if self.ttl.is_zero() {
            return None;
        }
        let margin = self.initial_ttl.max(self.ttl) / 3;
        Some(self.obtained + self.ttl.saturating_sub(margin))
    }

    fn needs_refresh(&self, now: Instant) -> bool {
        self.refresh_at().is_some_and(|at| now >= at)
    }
}

#[derive(Default)]
struct TokenState {
    token: Option<SecretValue>,
    lease: Option<Lease>,
    generation: u64,
}

pub(crate) struct Session {
    /// `vault.auth (approle at auth/approle)`: names the auth in errors and logs.
    pub label: String,
    auth: AuthConfig,
    conn: Arc<Connection>,
    state: RwLock<TokenState>,
    /// Serialises logins and renewals: concurrent reads share one refresh.
    refresh: tokio::sync::Mutex<()>,
    logins: AtomicU64,
    renewals: AtomicU64,
    /// Wakes the background renewal so it re-plans around the new expiry.
    changed: Arc<tokio::sync::Notify>,
}

impl Session {
    pub(crate) fn new(
        key: &str,
        auth: AuthConfig,
        conn: Arc<Connection>,
        changed: Arc<tokio::sync::Notify>,
    ) -> Self {
        Session {
            label: format!("vault.{key} ({})", auth.describe()),
            auth,
            conn,
            state: RwLock::new(TokenState::default()),
            refresh: tokio::sync::Mutex::new(()),
            logins: AtomicU64::new(0),
            renewals: AtomicU64::new(0),
            changed,
        }
    }

    pub(crate) fn stats(&self) -> AuthStats {
        AuthStats {
            logins: self.logins.load(Ordering::Relaxed),
            renewals: self.renewals.load(Ordering::Relaxed),
        }
    }

    /// A usable token: the current one, renewed or replaced first if it is close to
    /// expiring.
    pub(crate) async fn token(&self) -> Result<Token, Cause> {
        if let Some(token) = self.fresh_token() {
            return Ok(token);
        }
        let _refreshing = self.refresh.lock().await;
        // Another task may have refreshed while this one waited.
        if let Some(token) = self.fresh_token() {
            return Ok(token);
        }
        self.refresh_locked().await
    }

    /// When the background renewal should next look at this session.
    pub(crate) fn refresh_at(&self) -> Option<Instant> {
        let state = self.read_state();
        state.token.as_ref()?;
        state.lease.and_then(|l| l.refresh_at())
    }

    /// Renews (or replaces) the token if it is due; a session never logged in stays so.
    pub(crate) async fn refresh_if_due(&self) -> Result<(), Cause> {
        if self.refresh_at().is_some_and(|at| Instant::now() >= at) {
            self.token().await?;
        }
        Ok(())
    }

    /// Called after a 403 on a request made with the token of `generation`. Returns
    /// true when the request should be retried (the token had been replaced, or was
    /// revoked and a new login succeeded), false when the token is valid and the
    /// policy really denies the path.
    pub(crate) async fn recover_from_denied(&self, generation: u64) -> Result<bool, Cause> {
        let _refreshing = self.refresh.lock().await;
        let token = {
            let state = self.read_state();
            if state.generation != generation {
                return Ok(true);
            }
            state.token.clone()
        };
        let Some(token) = token else {
            self.login_locked().await?;
            return Ok(true);
        };
        match self.lookup(&token).await {
            Ok(_) => Ok(false),
            Err(Cause::PermissionDenied) => {
                info!(auth = %self.label, "Vault token revoked or expired; logging in again");
                self.login_locked().await?;
                Ok(true)
            }
            Err(other) => Err(other),
        }
    }

    fn read_state(&self) -> std::sync::RwLockReadGuard<'_, TokenState> {
        // A poisoned lock only means a panic elsewhere mid-update of plain data.
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn fresh_token(&self) -> Option<Token> {
        let state = self.read_state();
        let value = state.token.clone()?;
        if state.lease.is_some_and(|l| l.needs_refresh(Instant::now())) {
            return None;
        }
        Some(Token {
            value,
            generation: state.generation,
        })
    }

    async fn refresh_locked(&self) -> Result<Token, Cause> {
        let (token, lease, generation) = {
            let state = self.read_state();
            (state.token.clone(), state.lease, state.generation)
        };
        if let (Some(token), Some(lease)) = (token, lease)
            && lease.renewable
        {
            match self.renew(&token, lease).await {
                Ok(renewed) if !renewed.needs_refresh(Instant::now()) => {
                    let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
                    state.lease = Some(renewed);
                    self.renewals.fetch_add(1, Ordering::Relaxed);
                    self.changed.notify_one();
                    debug!(auth = %self.label, ttl_secs = renewed.ttl.as_secs(), "renewed Vault token");
                    return Ok(Token {
                        value: token,
                        generation,
                    });
                }
                Ok(_) => debug!(auth = %self.label, "Vault token near its max TTL; logging in again"),
                Err(cause @ (Cause::Unreachable(_) | Cause::Sealed)) => return Err(cause),
                Err(cause) => {
                    info!(auth = %self.label, %cause, "cannot renew the Vault token; logging in again")
                }
            }
        }
        self.login_locked().await
    }

    async fn login_locked(&self) -> Result<Token, Cause> {
        let (value, lease) = self.login().await?;
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        state.generation += 1;
        state.token = Some(value.clone());
        state.lease = Some(lease);
        self.logins.fetch_add(1, Ordering::Relaxed);
        self.changed.notify_one();
        info!(
            auth = %self.label,
            ttl_secs = lease.ttl.as_secs(),
            renewable = lease.renewable,
            "logged in to Vault"
        );
        Ok(Token {
            value,
            generation: state.generation,
        })
    }

    async fn login(&self) -> Result<(SecretValue, Lease), Cause> {
        let anonymous = self.conn.client("");
        let info = match &self.auth {
            AuthConfig::Token { token, token_file } => {
                let value = match (token, token_file) {
                    (_, Some(file)) => read_credential(file, "Vault token").await?,
                    (Some(token), None) => token.clone(),
                    (None, None) => return Err(Cause::Credential("no token configured".into())),
                };
                let lease = self.lookup(&value).await.map_err(|cause| match cause {
                    Cause::PermissionDenied => Cause::Credential(format!(
                        "Vault rejects the token of {}: it is invalid, expired or revoked",
                        self.label
                    )),
                    other => other,
                })?;
                return Ok((value, lease));
            }
            AuthConfig::Approle {
                role_id,
                secret_id_file,
                mount,
            } => {
                let secret_id = read_credential(secret_id_file, "AppRole secret_id").await?;
                vaultrs::auth::approle::login(
                    &anonymous,
                    mount.trim_matches('/'),
                    role_id,
                    secret_id.expose(),
                )
                .await
            }
            AuthConfig::Kubernetes {
                role,
                jwt_file,
                mount,
            } => {
                let jwt = read_credential(jwt_file, "service-account JWT").await?;
                vaultrs::auth::kubernetes::login(&anonymous, mount.trim_matches('/'), role, jwt.expose())
                    .await
            }
        };
        let info = info.map_err(|e| match classify(&e) {
            // At login, a 403 is about the credential, not a policy.
            Cause::PermissionDenied => Cause::Credential(format!(
                "Vault refuses the login with {}: the credential does not match the role or its bindings",
                self.label
            )),
            other => other,
        })?;
        Ok(from_auth_info(info))
    }

    async fn lookup(&self, token: &SecretValue) -> Result<Lease, Cause> {
        let client = self.conn.client(token.expose());
        let info = vaultrs::token::lookup_self(&client)
            .await
            .map_err(|e| classify(&e))?;
        let ttl = Duration::from_secs(info.ttl);
        Ok(Lease {
            obtained: Instant::now(),
            ttl,
            initial_ttl: Duration::from_secs(info.creation_ttl).max(ttl),
            renewable: info.renewable.unwrap_or(false),
        })
    }

    async fn renew(&self, token: &SecretValue, lease: Lease) -> Result<Lease, Cause> {
        let client = self.conn.client(token.expose());
        let info = vaultrs::token::renew_self(&client, None)
            .await
            .map_err(|e| classify(&e))?;
        let ttl = Duration::from_secs(info.lease_duration);
        Ok(Lease {
            obtained: Instant::now(),
            ttl,
            initial_ttl: lease.initial_ttl,
            renewable: info.renewable,
        })
    }
}

fn from_auth_info(info: AuthInfo) -> (SecretValue, Lease) {
    let ttl = Duration::from_secs(info.lease_duration);
    let lease = Lease {
        obtained: Instant::now(),
        ttl,
        initial_ttl: ttl,
        renewable: info.renewable,
    };
    (SecretValue::new(info.client_token), lease)
}

/// Reads a credential file, re-read at every login so rotation needs no restart.
async fn read_credential(path: &Path, what: &str) -> Result<SecretValue, Cause> {
    let text = tokio::fs::read_to_string(path)
        .await
        .map_err(|e| Cause::Credential(format!("cannot read the {what} file {}: {e}", path.display())))?;
    let trimmed = text.trim();
    if trimmed.is_empty() {
        warn!(file = %path.display(), "{what} file is empty");
        return Err(Cause::Credential(format!(
            "the {what} file {} is empty",
            path.display()
        )));
    }
    Ok(SecretValue::new(trimmed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(ttl: u64, initial: u64) -> Lease {
        Lease {
            obtained: Instant::now(),
            ttl: Duration::from_secs(ttl),
            initial_ttl: Duration::from_secs(initial),
            renewable: true,
        }
    }

    #[test]
    fn refresh_is_due_in_the_last_third_of_the_ttl() {
        let l = lease(90, 90);
        let now = l.obtained;
        assert!(!l.needs_refresh(now));
        assert!(!l.needs_refresh(now + Duration::from_secs(59)));
        assert!(l.needs_refresh(now + Duration::from_secs(60)));
    }

    #[test]
    fn a_token_without_ttl_never_needs_refresh() {
        let l = lease(0, 0);
        assert_eq!(l.refresh_at(), None);
        assert!(!l.needs_refresh(l.obtained + Duration::from_secs(1_000_000)));
    }

    #[test]
    fn a_renewal_capped_by_max_ttl_is_due_at_once() {
        // Renewed to 10s of a 90s token: below a third, so the next use logs in again.
        let l = lease(10, 90);
        assert!(l.needs_refresh(l.obtained));
    }

    #[tokio::test]
    async fn credential_files_are_trimmed_and_empty_ones_refused() {
        let dir = tempfile::tempdir().unwrap();
        let ok = dir.path().join("sid");
        std::fs::write(&ok, "abc-123\n").unwrap();
        assert_eq!(read_credential(&ok, "x").await.unwrap().expose(), "abc-123");
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").unwrap();
        let err = read_credential(&empty, "AppRole secret_id").await.unwrap_err();
        assert!(err.to_string().contains("is empty"), "{err}");
        let err = read_credential(&dir.path().join("none"), "AppRole secret_id")
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("cannot read the AppRole secret_id file"),
            "{err}"
        );
    }
}

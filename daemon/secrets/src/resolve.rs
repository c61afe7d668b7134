//! [`Vault`]: resolves all secrets of one release, all-or-nothing.
//!
//! ```text
//! requests ──parse paths──▶ login (the environment's auth) ──▶ discover each mount's
//! KV version (cached) ──▶ read each distinct path once, N in flight ──▶ pick keys
//! ──▶ Resolved { values, versions }      (any failure: one error, nothing returned)
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt, stream};
use tracing::{debug, info, warn};

use crate::client::Connection;
use crate::config::VaultConfig;
use crate::error::{Cause, Result, SecretFailure, SecretsError};
use crate::kv::{self, KvVersion, MountKind, SecretData, SecretPath};
use crate::session::{AuthStats, Session};
use crate::{Resolved, SecretRequest, SecretVersion};

/// A connection to Vault with one auth session per configured identity. Cheap to
/// share behind an `Arc`; holds no secret values, only tokens.
pub struct Vault {
    conn: Arc<Connection>,
    default: Arc<Session>,
    environments: BTreeMap<String, Arc<Session>>,
    require_environment_auth: bool,
    pins: BTreeMap<String, KvVersion>,
    /// Discovered mount kinds; `Unknown` is not cached so it is asked again.
    mounts: Mutex<HashMap<String, MountKind>>,
    max_concurrency: usize,
    /// Signalled at every login and renewal, and on drop: wakes [`Vault::spawn_renewal`].
    token_changed: Arc<tokio::sync::Notify>,
}

impl Drop for Vault {
    fn drop(&mut self) {
        self.token_changed.notify_one();
    }
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("default", &self.default.label)
            .field("environments", &self.environments.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Vault {
    /// Validates the config and prepares the HTTP client (reading `ca_file`). Does
    /// not contact Vault: logins happen at first use, so the coordinator can start
    /// while Vault is down (rollbacks do not need it).
    pub fn new(config: &VaultConfig) -> Result<Self> {
        config.validate()?;
        let conn = Arc::new(Connection::new(config)?);
        let token_changed = Arc::new(tokio::sync::Notify::new());
        let new_session = |key: &str, auth: &crate::AuthConfig| {
            Arc::new(Session::new(
                key,
                auth.clone(),
                conn.clone(),
                token_changed.clone(),
            ))
        };
        let default = new_session("auth", &config.auth);
        let environments = config
            .environments
            .iter()
            .map(|(env, auth)| (env.clone(), new_session(&format!("environments.{env}"), auth)))
            .collect();
        let pins = config
            .kv_versions
            .iter()
            .filter_map(|(mount, v)| Some((mount.clone(), KvVersion::from_number(*v)?)))
            .collect();
        Ok(Vault {
            conn,
            default,
            environments,
            require_environment_auth: config.require_environment_auth,
            pins,
            mounts: Mutex::new(HashMap::new()),
            max_concurrency: config.max_concurrency,
            token_changed,
        })
    }

    /// Logins and renewals of the session `environment` uses (`None`: the default).
    pub fn auth_stats(&self, environment: Option<&str>) -> AuthStats {
        environment
            .and_then(|e| self.environments.get(e))
            .unwrap_or(&self.default)
            .stats()
    }

    /// Resolves every request of `release` with the auth of `environment` (its entry
    /// in `vault.environments`, else the default `vault.auth`). Identical paths are
    /// read once; reads run `max_concurrency` at a time. Any failure fails the whole
    /// resolution with an error naming release, secret_id, context, path and key.
    pub async fn resolve(
        &self,
        release: &str,
        environment: Option<&str>,
        requests: &[SecretRequest],
    ) -> Result<Resolved> {
        let started = Instant::now();
        let session = self.session_for(release, environment)?;
        let mut requests: Vec<&SecretRequest> = requests.iter().collect();
        requests.sort();
        requests.dedup();

        // Paths first: a typo in the release fails before any network call.
        let parsed = parse_requests(release, &requests)?;
        if parsed.is_empty() {
            return Ok(Resolved::default());
        }

        session.token().await.map_err(|cause| SecretsError::Login {
            release: release.to_string(),
            auth: session.label.clone(),
            cause,
        })?;

        let first_user = |pred: &dyn Fn(&SecretPath) -> bool| {
            parsed
                .iter()
                .find(|(_, p)| pred(p))
                .map_or(parsed[0].0, |(r, _)| *r)
        };

        let mounts: BTreeSet<&str> = parsed.iter().map(|(_, p)| p.mount.as_str()).collect();
        let session = &*session;
        // The futures are built up front (not in a `.map` closure over the stream) so
        // that the whole resolution future is `Send` for any caller's lifetimes.
        let lookups: Vec<_> = mounts
            .into_iter()
            .map(|mount| async move {
                self.kv_version(session, mount)
                    .await
                    .map(|v| (mount.to_string(), v))
                    .map_err(|cause| (mount, cause))
            })
            .collect();
        let versions: HashMap<String, Option<KvVersion>> = stream::iter(lookups)
            .buffer_unordered(self.max_concurrency)
            .try_collect()
            .await
            .map_err(|(mount, cause)| fail(release, first_user(&|p| p.mount == mount), cause))?;

        let paths: BTreeSet<&SecretPath> = parsed.iter().map(|(_, p)| p).collect();
        let reads: Vec<_> = paths
            .into_iter()
            .map(|path| {
                let version = versions.get(&path.mount).copied().flatten();
                async move {
                    self.read(session, path, version)
                        .await
                        .map(|d| (path, d))
                        .map_err(|cause| (path, cause))
                }
            })
            .collect();
        let data: HashMap<&SecretPath, SecretData> = stream::iter(reads)
            .buffer_unordered(self.max_concurrency)
            .try_collect()
            .await
            .map_err(|(path, cause)| fail(release, first_user(&|p| p == path), cause))?;

        let mut resolved = Resolved::default();
        for (request, path) in &parsed {
            let secret = &data[path];
            let value = secret
                .get(&request.vault_key)
                .map_err(|c| fail(release, request, c))?;
            resolved
                .values
                .insert((request.context.clone(), request.secret_id.clone()), value);
            resolved.versions.push(SecretVersion {
                context: request.context.clone(),
                secret_id: request.secret_id.clone(),
                vault_path: request.vault_path.clone(),
                vault_key: request.vault_key.clone(),
                version: secret.version,
            });
        }
        info!(
            release,
            auth = %session.label,
            secrets = resolved.values.len(),
            paths = data.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "resolved release secrets"
        );
        Ok(resolved)
    }

    /// Keeps idle sessions' tokens alive: renew-on-use covers busy periods, this
    /// covers a coordinator that resolves nothing for longer than a token's TTL. The
    /// task ends when the `Vault` is dropped.
    pub fn spawn_renewal(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let weak: Weak<Vault> = Arc::downgrade(self);
        let changed = self.token_changed.clone();
        tokio::spawn(async move {
            const IDLE_CHECK: Duration = Duration::from_secs(60);
            // After a failed renewal (Vault down), wait before trying again.
            const RETRY: Duration = Duration::from_secs(5);
            let mut not_before = Instant::now();
            loop {
                let next = match weak.upgrade() {
                    Some(vault) => vault.sessions().filter_map(|s| s.refresh_at()).min(),
                    None => return,
                };
                let latest = Instant::now() + IDLE_CHECK;
                let deadline = next.map_or(latest, |at| at.min(latest)).max(not_before);
                tokio::select! {
                    () = tokio::time::sleep_until(deadline.into()) => {}
                    // A login, a renewal or the Vault's drop: plan again.
                    () = changed.notified() => continue,
                }
                let Some(vault) = weak.upgrade() else { return };
                for session in vault.sessions() {
                    if let Err(cause) = session.refresh_if_due().await {
                        not_before = Instant::now() + RETRY;
                        warn!(auth = %session.label, %cause, "background Vault token renewal failed");
                    }
                }
            }
        })
    }

    fn sessions(&self) -> impl Iterator<Item = &Arc<Session>> {
        std::iter::once(&self.default).chain(self.environments.values())
    }

    fn session_for(&self, release: &str, environment: Option<&str>) -> Result<Arc<Session>> {
        match environment.and_then(|e| self.environments.get(e).map(|s| (e, s))) {
            Some((env, session)) => {
                debug!(release, environment = env, "using the environment's Vault auth");
                Ok(session.clone())
            }
            None if self.require_environment_auth => Err(SecretsError::NoEnvironmentAuth {
                release: release.to_string(),
                environment: environment.unwrap_or("(none given)").to_string(),
            }),
            None => Ok(self.default.clone()),
        }
    }

    /// The KV version to read `mount` with: discovered (cached), checked against a
    /// pin in `kv_versions`; `None` means "probe".
    async fn kv_version(&self, session: &Session, mount: &str) -> Result<Option<KvVersion>, Cause> {
        let cached = self.lock_mounts().get(mount).cloned();
        let kind = match cached {
            Some(kind) => kind,
            None => {
                let token = session.token().await?;
                let kind = kv::discover(&self.conn.client(token.value.expose()), mount).await?;
                debug!(mount, ?kind, "discovered mount");
                if kind != MountKind::Unknown {
                    self.lock_mounts().insert(mount.to_string(), kind.clone());
                }
                kind
            }
        };
        let pin = self.pins.get(mount).copied();
        match (kind, pin) {
            (MountKind::NotKv(engine), _) => Err(Cause::WrongKvVersion(format!(
                "mount {mount:?} is a {engine:?} secrets engine, not KV"
            ))),
            (MountKind::Kv(found), Some(pinned)) if found != pinned => Err(Cause::WrongKvVersion(format!(
                "`vault.kv_versions.{mount}` says KV v{}, but Vault reports the mount as KV v{}",
                pinned.number(),
                found.number()
            ))),
            (MountKind::Kv(found), _) => Ok(Some(found)),
            (MountKind::Unknown, pin) => Ok(pin),
        }
    }

    /// Reads one path; a 403 gets one retry when the token turns out to have been
    /// revoked (and a new login succeeded).
    async fn read(
        &self,
        session: &Session,
        path: &SecretPath,
        version: Option<KvVersion>,
    ) -> Result<SecretData, Cause> {
        let token = session.token().await?;
        match kv::read(&self.conn.client(token.value.expose()), path, version).await {
            Err(Cause::PermissionDenied) if session.recover_from_denied(token.generation).await? => {
                let token = session.token().await?;
                kv::read(&self.conn.client(token.value.expose()), path, version).await
            }
            other => other,
        }
    }

    fn lock_mounts(&self) -> std::sync::MutexGuard<'_, HashMap<String, MountKind>> {
        self.mounts.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Refuses conflicting requests and unusable paths or keys; `requests` is sorted.
fn parse_requests<'a>(
    release: &str,
    requests: &[&'a SecretRequest],
) -> Result<Vec<(&'a SecretRequest, SecretPath)>> {
    for pair in requests.windows(2) {
        // Sorted: requests for the same (context, secret_id) are neighbours.
        if (&pair[0].context, &pair[0].secret_id) == (&pair[1].context, &pair[1].secret_id) {
            let other = format!("{} key {:?}", pair[0].vault_path, pair[0].vault_key);
            return Err(fail(release, pair[1], Cause::Conflict { other }));
        }
    }
    requests
        .iter()
        .map(|request| {
            let path = SecretPath::parse(&request.vault_path).map_err(|c| fail(release, request, c))?;
            if request.vault_key.is_empty() {
                let cause = Cause::InvalidPath("vaultKey is empty".into());
                return Err(fail(release, request, cause));
            }
            Ok((*request, path))
        })
        .collect()
}

fn fail(release: &str, request: &SecretRequest, cause: Cause) -> SecretsError {
    SecretsError::Secret(Box::new(SecretFailure {
        release: release.to_string(),
        secret_id: request.secret_id.clone(),
        context: request.context.clone(),
        path: request.vault_path.clone(),
        key: request.vault_key.clone(),
        cause,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Vault nobody listens on: anything that reaches the network fails as unreachable.
    fn closed_vault(extra: &str) -> Vault {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let yaml = format!("address: http://127.0.0.1:{port}\nauth: {{method: token, token: t}}\n{extra}");
        Vault::new(&serde_yaml::from_str(&yaml).unwrap()).unwrap()
    }

    fn req(context: &str, id: &str, path: &str, key: &str) -> SecretRequest {
        SecretRequest {
            context: context.into(),
            secret_id: id.into(),
            vault_path: path.into(),
            vault_key: key.into(),
        }
    }

    fn failure(err: SecretsError) -> SecretFailure {
        match err {
            SecretsError::Secret(f) => *f,
            other => panic!("expected a per-secret error, got {other}"),
        }
    }

    #[tokio::test]
    async fn release_file_mistakes_fail_before_any_network_call() {
        let vault = closed_vault("");
        let conflicting = [
            req("c", "app1", "/kv/a/b", "password"),
            req("c", "app1", "/kv/a/eu", "password"),
        ];
        let f = failure(vault.resolve("rel", None, &conflicting).await.unwrap_err());
        assert_eq!((f.release.as_str(), f.path.as_str()), ("rel", "/kv/a/eu"));
        assert_eq!(
            f.cause,
            Cause::Conflict {
                other: "/kv/a/b key \"password\"".into()
            }
        );

        let f = failure(
            vault
                .resolve("rel", None, &[req("c", "x", "/kv", "k")])
                .await
                .unwrap_err(),
        );
        assert!(matches!(f.cause, Cause::InvalidPath(_)), "{f}");
        let f = failure(
            vault
                .resolve("rel", None, &[req("c", "x", "/kv/a", "")])
                .await
                .unwrap_err(),
        );
        assert!(matches!(f.cause, Cause::InvalidPath(_)), "{f}");

        // Identical requests are one request.
        let same = [req("c", "x", "/kv/a", "k"), req("c", "x", "/kv/a", "k")];
        let err = vault.resolve("rel", None, &same).await.unwrap_err();
        assert!(matches!(err, SecretsError::Login { .. }), "{err}");
        assert_eq!(vault.auth_stats(None).logins, 0);
    }

    #[tokio::test]
    async fn nothing_to_resolve_needs_no_vault() {
        let vault = closed_vault("");
        let resolved = vault.resolve("rel", Some("dev"), &[]).await.unwrap();
        assert!(resolved.values.is_empty() && resolved.versions.is_empty());
    }

    #[tokio::test]
    async fn an_unreachable_vault_fails_the_login_naming_release_and_auth() {
        let vault = closed_vault("");
        let err = vault
            .resolve("app1.ns1", None, &[req("c", "x", "/kv/a", "k")])
            .await
            .unwrap_err();
        assert!(matches!(err.cause(), Some(Cause::Unreachable(_))), "{err}");
        let text = err.to_string();
        assert!(
            text.starts_with("release app1.ns1: Vault login with vault.auth (inline token)"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn environments_pick_their_auth_or_are_refused() {
        let envs = "environments:\n  prod: {method: approle, role_id: r, secret_id_file: /nonexistent/sid}\n";
        let vault = closed_vault(envs);
        let request = [req("c", "x", "/kv/a", "k")];
        // prod uses its own AppRole: its missing secret_id file is the error.
        let err = vault.resolve("rel", Some("prod"), &request).await.unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("vault.environments.prod (approle at auth/approle)"),
            "{text}"
        );
        assert!(text.contains("/nonexistent/sid"), "{text}");
        // dev has no entry: the default auth.
        let err = vault.resolve("rel", Some("dev"), &request).await.unwrap_err();
        assert!(err.to_string().contains("vault.auth (inline token)"), "{err}");

        let strict = closed_vault(&format!("{envs}require_environment_auth: true\n"));
        let err = strict.resolve("rel", Some("dev"), &request).await.unwrap_err();
        assert!(matches!(err, SecretsError::NoEnvironmentAuth { .. }), "{err}");
        let err = strict.resolve("rel", None, &request).await.unwrap_err();
        assert!(matches!(err, SecretsError::NoEnvironmentAuth { .. }), "{err}");
    }
}

//! [`Vault`]: resolves all secrets of one release, all-or-nothing.
//!
//! ```text
//! requests ──parse paths──▶ login (the environment's auth) ──▶ discover each mount's
//! KV version (cached) ──▶ read each distinct path once, N in flight ──▶ pick keys
//! ──▶ Resolved { values, versions }      (any failure: one error, nothing returned)
//! ```
//!
//! [`Vault::resolve_pinned`] runs the same steps with each read pinned to the version
//! a revision recorded.

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
use crate::{Resolved, SecretRequest, SecretValue, SecretVersion};

/// A connection to Vault with one auth session per configured identity. Cheap to
/// share behind an `Arc`; holds no secret values, only tokens.
pub struct Vault {
    conn: Arc<Connection>,
    default: Arc<Session>,
    environments: BTreeMap<String, Arc<Session>>,
    require_environment_auth: bool,
    /// `vault.kv_versions`: the KV version configured per mount.
    mount_versions: BTreeMap<String, KvVersion>,
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
        let mount_versions = config
            .kv_versions
            .iter()
            .filter_map(|(mount, v)| Some((mount.clone(), KvVersion::from_number(*v)?)))
            .collect();
        Ok(Vault {
            conn,
            default,
            environments,
            require_environment_auth: config.require_environment_auth,
            mount_versions,
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
    /// in `vault.environments`, else the default `vault.auth`), at the latest version
    /// of each secret. Identical paths are read once; reads run `max_concurrency` at a
    /// time. Any failure fails the whole resolution with an error naming release,
    /// secret_id, context, path and key.
    pub async fn resolve(
        &self,
        release: &str,
        environment: Option<&str>,
        requests: &[SecretRequest],
    ) -> Result<Resolved> {
        let wanted = requests.iter().map(|r| (r, None)).collect();
        self.resolve_wanted(release, environment, wanted).await
    }

    /// Resolves secrets at the versions a revision recorded (the `versions` of an
    /// earlier [`Resolved`]), so re-rendering that revision ships exactly what it
    /// shipped even if a secret was rotated since. Each entry is read at its
    /// `version`: a KV v2 secret at that version (`?version=N`), a KV v1 secret (0) as
    /// usual. A pin the mount cannot serve (N > 0 on KV v1, 0 on KV v2) is
    /// [`Cause::VersionMismatch`]; a version deleted or destroyed since is
    /// [`Cause::VersionGone`]. Never falls back to the latest value. Otherwise as
    /// [`Vault::resolve`]: same auth, deduplication, concurrency and errors; the
    /// returned `versions` equal `pinned` (sorted, without duplicates).
    pub async fn resolve_pinned(
        &self,
        release: &str,
        environment: Option<&str>,
        pinned: &[SecretVersion],
    ) -> Result<Resolved> {
        let requests: Vec<SecretRequest> = pinned.iter().map(SecretVersion::request).collect();
        let wanted = requests
            .iter()
            .zip(pinned)
            .map(|(r, p)| (r, Some(p.version)))
            .collect();
        self.resolve_wanted(release, environment, wanted).await
    }

    /// Reads one secret at its latest version with the coordinator's own auth
    /// (`vault.auth`), whatever `require_environment_auth` says: for the coordinator's
    /// own credentials (a chart source's password), which belong to no release's
    /// environment. `owner` names what asks (`chart_sources[0].password_from_vault`) in
    /// logs and errors; errors are as [`Vault::resolve`]'s.
    pub async fn read_own(&self, owner: &str, vault_path: &str, vault_key: &str) -> Result<SecretValue> {
        let request = SecretRequest {
            context: "coordinator".into(),
            secret_id: owner.to_string(),
            vault_path: vault_path.to_string(),
            vault_key: vault_key.to_string(),
        };
        let mut resolved = self
            .resolve_with(owner, self.default.clone(), vec![(&request, None)])
            .await?;
        resolved
            .values
            .remove(&(request.context.clone(), request.secret_id.clone()))
            .ok_or_else(|| fail(owner, &request, Cause::Unexpected("no value resolved".into())))
    }

    /// Both entry points: each request with its pin (None: the latest version).
    async fn resolve_wanted(
        &self,
        release: &str,
        environment: Option<&str>,
        wanted: Vec<Wanted<'_>>,
    ) -> Result<Resolved> {
        let session = self.session_for(release, environment)?;
        self.resolve_with(release, session, wanted).await
    }

    /// Resolves `wanted` with `session`'s auth.
    async fn resolve_with(
        &self,
        release: &str,
        session: Arc<Session>,
        mut wanted: Vec<Wanted<'_>>,
    ) -> Result<Resolved> {
        let started = Instant::now();
        wanted.sort();
        wanted.dedup();

        // Paths first: a typo in the release fails before any network call.
        let parsed = parse_requests(release, &wanted)?;
        if parsed.is_empty() {
            return Ok(Resolved::default());
        }

        session.token().await.map_err(|cause| SecretsError::Login {
            release: release.to_string(),
            auth: session.label.clone(),
            cause,
        })?;

        let first_user = |pred: &dyn Fn(&ParsedRequest) -> bool| {
            parsed
                .iter()
                .find(|p| pred(p))
                .map_or(parsed[0].request, |p| p.request)
        };

        let mounts: BTreeSet<&str> = parsed.iter().map(|p| p.path.mount.as_str()).collect();
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
            .map_err(|(mount, cause)| fail(release, first_user(&|p| p.path.mount == mount), cause))?;

        // One read per distinct (path, pin).
        let reads: BTreeSet<(&SecretPath, Option<u64>)> = parsed.iter().map(|p| (&p.path, p.pin)).collect();
        let reads: Vec<_> = reads
            .into_iter()
            .map(|(path, pin)| {
                let kind = versions.get(&path.mount).copied().flatten();
                async move {
                    self.read(session, path, kind, pin)
                        .await
                        .map(|d| ((path, pin), d))
                        .map_err(|cause| (path, pin, cause))
                }
            })
            .collect();
        let data: HashMap<(&SecretPath, Option<u64>), SecretData> = stream::iter(reads)
            .buffer_unordered(self.max_concurrency)
            .try_collect()
            .await
            .map_err(|(path, pin, cause)| {
                fail(release, first_user(&|p| &p.path == path && p.pin == pin), cause)
            })?;

        let mut resolved = Resolved::default();
        for ParsedRequest { request, path, pin } in &parsed {
            let secret = &data[&(path, *pin)];
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
        let configured = self.mount_versions.get(mount).copied();
        match (kind, configured) {
            (MountKind::NotKv(engine), _) => Err(Cause::WrongKvVersion(format!(
                "mount {mount:?} is a {engine:?} secrets engine, not KV"
            ))),
            (MountKind::Kv(found), Some(configured)) if found != configured => {
                Err(Cause::WrongKvVersion(format!(
                    "`vault.kv_versions.{mount}` says KV v{}, but Vault reports the mount as KV v{}",
                    configured.number(),
                    found.number()
                )))
            }
            (MountKind::Kv(found), _) => Ok(Some(found)),
            (MountKind::Unknown, configured) => Ok(configured),
        }
    }

    /// Reads one path (at `pin`, if given); a 403 gets one retry when the token
    /// turns out to have been revoked (and a new login succeeded).
    async fn read(
        &self,
        session: &Session,
        path: &SecretPath,
        kind: Option<KvVersion>,
        pin: Option<u64>,
    ) -> Result<SecretData, Cause> {
        let token = session.token().await?;
        match kv::read(&self.conn.client(token.value.expose()), path, kind, pin).await {
            Err(Cause::PermissionDenied) if session.recover_from_denied(token.generation).await? => {
                let token = session.token().await?;
                kv::read(&self.conn.client(token.value.expose()), path, kind, pin).await
            }
            other => other,
        }
    }

    fn lock_mounts(&self) -> std::sync::MutexGuard<'_, HashMap<String, MountKind>> {
        self.mounts.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A request and the version it is pinned to (None: the latest).
type Wanted<'a> = (&'a SecretRequest, Option<u64>);

/// A request whose path parsed.
struct ParsedRequest<'a> {
    request: &'a SecretRequest,
    path: SecretPath,
    pin: Option<u64>,
}

/// Refuses conflicting requests and unusable paths or keys; `wanted` is sorted and
/// without duplicates.
fn parse_requests<'a>(release: &str, wanted: &[Wanted<'a>]) -> Result<Vec<ParsedRequest<'a>>> {
    for pair in wanted.windows(2) {
        let ((first, first_pin), (second, _)) = (pair[0], pair[1]);
        // Sorted: requests for the same (context, secret_id) are neighbours.
        if (&first.context, &first.secret_id) == (&second.context, &second.secret_id) {
            let mut other = format!("{} key {:?}", first.vault_path, first.vault_key);
            if let Some(version) = first_pin {
                other.push_str(&format!(" version {version}"));
            }
            return Err(fail(release, second, Cause::Conflict { other }));
        }
    }
    wanted
        .iter()
        .map(|&(request, pin)| {
            let path = SecretPath::parse(&request.vault_path).map_err(|c| fail(release, request, c))?;
            if request.vault_key.is_empty() {
                let cause = Cause::InvalidPath("vaultKey is empty".into());
                return Err(fail(release, request, cause));
            }
            Ok(ParsedRequest { request, path, pin })
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

    fn pin(context: &str, id: &str, path: &str, key: &str, version: u64) -> SecretVersion {
        SecretVersion {
            context: context.into(),
            secret_id: id.into(),
            vault_path: path.into(),
            vault_key: key.into(),
            version,
        }
    }

    #[tokio::test]
    async fn pins_that_contradict_each_other_fail_before_any_network_call() {
        let vault = closed_vault("");
        let two_versions = [
            pin("c", "app1", "/kv/a/b", "password", 3),
            pin("c", "app1", "/kv/a/b", "password", 4),
        ];
        let f = failure(
            vault
                .resolve_pinned("rel", None, &two_versions)
                .await
                .unwrap_err(),
        );
        assert_eq!(
            f.cause,
            Cause::Conflict {
                other: "/kv/a/b key \"password\" version 3".into()
            }
        );
        let f = failure(
            vault
                .resolve_pinned("rel", None, &[pin("c", "x", "/kv", "k", 1)])
                .await
                .unwrap_err(),
        );
        assert!(matches!(f.cause, Cause::InvalidPath(_)), "{f}");

        // Identical pins are one pin: past the checks, on to the (closed) Vault.
        let same = [pin("c", "x", "/kv/a", "k", 2), pin("c", "x", "/kv/a", "k", 2)];
        let err = vault.resolve_pinned("rel", None, &same).await.unwrap_err();
        assert!(matches!(err, SecretsError::Login { .. }), "{err}");
        let resolved = vault.resolve_pinned("rel", None, &[]).await.unwrap();
        assert!(resolved.values.is_empty() && resolved.versions.is_empty());
    }

    /// The coordinator awaits resolutions inside `Send` futures (spawned tasks).
    #[test]
    fn resolution_futures_are_send() {
        fn send<T: Send>(_: T) {}
        let vault = closed_vault("");
        send(vault.resolve("rel", None, &[]));
        send(vault.resolve_pinned("rel", None, &[]));
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

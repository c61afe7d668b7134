//! convoy-secrets against a real OpenBao dev server (Vault's API): KV v1 and v2, token
//! and AppRole login, per-environment auth, denied paths, rotation, token renewal and
//! revocation, Vault sealed or killed mid-resolution, reads pinned to recorded KV
//! versions (rotated, deleted, destroyed), and a canary value that must never reach
//! logs, errors or Debug output.
//!
//! Every test starts its own server. Tests run on tokio's current-thread runtime, so a
//! thread-local tracing subscriber sees every event of the resolution.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use convoy_secrets::{
    Cause, Removal, SecretFailure, SecretRequest, SecretVersion, SecretsError, Vault, VaultConfig,
};
use convoy_tests::openbao::OpenBao;
use serde_json::{Value, json};
use tracing_subscriber::layer::{Context, SubscriberExt};

/// Read access to the `dev` environment's secrets on all three mounts.
const DEV_POLICY: &str = r#"
path "kv/data/dev/*" { capabilities = ["read"] }
path "kv1/dev/*" { capabilities = ["read"] }
path "secret/data/dev/*" { capabilities = ["read"] }
path "kv/data/dev/ns1/app1/private" { capabilities = ["deny"] }
"#;

/// Read access to the `prod` environment's secrets only.
const PROD_POLICY: &str = r#"
path "kv/data/prod/*" { capabilities = ["read"] }
"#;

/// A server with `kv/` (KV v2, as in the seeds' paths), `kv1/` (KV v1), dev mode's
/// `secret/` (KV v2), the policies above and a few secrets.
/// Installs, once per process and before any test logs, a global subscriber that is
/// interested in every event and discards it. Tests that capture logs install their own
/// scoped subscriber; without a global one that is always interested, a callsite first hit
/// on another test's thread while a capture is being installed can cache "never" and its
/// events escape the capture (seen once in CI: the canary test's "reading secret" lines).
fn every_callsite_live() {
    static INSTALLED: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    INSTALLED.get_or_init(|| {
        let all = tracing_subscriber::registry().with(tracing_subscriber::filter::LevelFilter::TRACE);
        tracing::subscriber::set_global_default(all).expect("the first global subscriber");
    });
}

async fn start_bao() -> OpenBao {
    every_callsite_live();
    let bao = OpenBao::start().await.expect("start OpenBao");
    bao.mount_kv("kv", 2).await.unwrap();
    bao.wait_kv2_ready("kv").await.unwrap();
    bao.wait_kv2_ready("secret").await.unwrap();
    bao.mount_kv("kv1", 1).await.unwrap();
    bao.put_policy("dev-read", DEV_POLICY).await.unwrap();
    bao.put_policy("prod-read", PROD_POLICY).await.unwrap();
    bao.kv2_put(
        "kv",
        "dev/ns1/app1/test",
        json!({"password": "pw-default", "user": "app1"}),
    )
    .await
    .unwrap();
    bao.kv2_put("kv", "dev/ns1/app1/eu", json!({"password": "pw-eu"}))
        .await
        .unwrap();
    bao.kv2_put("kv", "dev/ns1/app1/private", json!({"password": "pw-private"}))
        .await
        .unwrap();
    bao.kv2_put("kv", "prod/ns1/app1/test", json!({"password": "pw-prod"}))
        .await
        .unwrap();
    bao.kv2_put("secret", "dev/ns1/app1/db", json!({"url": "postgres://db"}))
        .await
        .unwrap();
    bao.kv1_put(
        "kv1",
        "dev/ns1/app1/legacy",
        json!({"apikey": "legacy-key", "port": 5432}),
    )
    .await
    .unwrap();
    bao
}

fn request(context: &str, secret_id: &str, path: &str, key: &str) -> SecretRequest {
    SecretRequest {
        context: context.into(),
        secret_id: secret_id.into(),
        vault_path: path.into(),
        vault_key: key.into(),
    }
}

fn write_file(dir: &Path, name: &str, content: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path
}

/// A config for `bao` with `auth` and extra top-level keys.
fn config(bao: &OpenBao, auth: Value, extra: Value) -> VaultConfig {
    let mut c = json!({ "address": bao.addr(), "auth": auth });
    if let (Some(c), Some(extra)) = (c.as_object_mut(), extra.as_object()) {
        c.extend(extra.clone());
    }
    serde_json::from_value(c).expect("valid vault config")
}

/// Token auth with a `dev-read` token (not root: discovery must work for it too).
async fn dev_token_vault(bao: &OpenBao, dir: &Path) -> Vault {
    let token = bao.create_token(&["dev-read"], "1h").await.unwrap();
    let file = write_file(dir, "token", &format!("{token}\n"));
    Vault::new(&config(
        bao,
        json!({"method": "token", "token_file": file}),
        json!({}),
    ))
    .unwrap()
}

/// Enables AppRole and writes the role's secret_id to a file; returns the auth config.
async fn approle_auth(bao: &OpenBao, dir: &Path, role: &str, policies: &[&str], settings: Value) -> Value {
    let (role_id, secret_id) = bao.approle(role, policies, settings).await.unwrap();
    let file = write_file(dir, &format!("{role}.secret-id"), &secret_id);
    json!({"method": "approle", "role_id": role_id, "secret_id_file": file})
}

fn secret_failure(err: &SecretsError) -> &SecretFailure {
    match err {
        SecretsError::Secret(f) => f,
        other => panic!("expected a per-secret error, got: {other}"),
    }
}

#[tokio::test]
async fn kv1_and_kv2_with_token_auth_and_context_overrides() {
    let bao = start_bao().await;
    let dir = tempfile::tempdir().unwrap();
    let vault = dev_token_vault(&bao, dir.path()).await;
    // The release crate has already applied "own entry or default": us-central gets
    // the default path, europe-west its override.
    let requests = [
        request("dev-us-central1-0", "app1", "/kv/dev/ns1/app1/test", "password"),
        request("dev-europe-west1-0", "app1", "/kv/dev/ns1/app1/eu", "password"),
        request("dev-us-central1-0", "user", "/kv/dev/ns1/app1/test", "user"),
        request("dev-us-central1-0", "db", "/secret/dev/ns1/app1/db", "url"),
        request(
            "dev-us-central1-0",
            "legacy",
            "/kv1/dev/ns1/app1/legacy",
            "apikey",
        ),
        request("dev-europe-west1-0", "port", "kv1/dev/ns1/app1/legacy", "port"),
    ];
    let resolved = vault.resolve("app1.ns1", Some("dev"), &requests).await.unwrap();
    let value = |ctx: &str, id: &str| resolved.get(ctx, id).unwrap().expose().to_string();
    assert_eq!(value("dev-us-central1-0", "app1"), "pw-default");
    assert_eq!(value("dev-europe-west1-0", "app1"), "pw-eu");
    assert_eq!(value("dev-us-central1-0", "user"), "app1");
    assert_eq!(value("dev-us-central1-0", "db"), "postgres://db");
    assert_eq!(value("dev-us-central1-0", "legacy"), "legacy-key");
    assert_eq!(value("dev-europe-west1-0", "port"), "5432");
    assert_eq!(resolved.values.len(), 6);

    let versions: Vec<(&str, &str, u64)> = resolved
        .versions
        .iter()
        .map(|v| (v.context.as_str(), v.secret_id.as_str(), v.version))
        .collect();
    assert_eq!(
        versions,
        [
            ("dev-europe-west1-0", "app1", 1),
            ("dev-europe-west1-0", "port", 0),
            ("dev-us-central1-0", "app1", 1),
            ("dev-us-central1-0", "db", 1),
            ("dev-us-central1-0", "legacy", 0),
            ("dev-us-central1-0", "user", 1),
        ]
    );
    assert_eq!(vault.auth_stats(None).logins, 1);
}

#[tokio::test]
async fn approle_login_and_a_policy_that_denies_one_path() {
    let bao = start_bao().await;
    bao.enable_auth("approle", "approle").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let auth = approle_auth(&bao, dir.path(), "convoy-dev", &["dev-read"], json!({})).await;
    let vault = Vault::new(&config(&bao, auth, json!({}))).unwrap();

    let allowed = [request("ctx", "app1", "/kv/dev/ns1/app1/test", "password")];
    let resolved = vault.resolve("app1.ns1", None, &allowed).await.unwrap();
    assert_eq!(resolved.get("ctx", "app1").unwrap().expose(), "pw-default");

    let mut with_denied = allowed.to_vec();
    with_denied.push(request("ctx", "private", "/kv/dev/ns1/app1/private", "password"));
    let err = vault.resolve("app1.ns1", None, &with_denied).await.unwrap_err();
    let f = secret_failure(&err);
    assert_eq!(
        (f.release.as_str(), f.secret_id.as_str(), f.context.as_str()),
        ("app1.ns1", "private", "ctx")
    );
    assert_eq!(
        (f.path.as_str(), f.key.as_str()),
        ("/kv/dev/ns1/app1/private", "password")
    );
    assert_eq!(f.cause, Cause::PermissionDenied);
    let text = err.to_string();
    assert!(
        text.contains("permission denied") && text.contains("/kv/dev/ns1/app1/private"),
        "{text}"
    );
    assert!(!text.contains("pw-"), "{text}");
    // A denied path is a policy decision, not a revoked token: no new login.
    assert_eq!(vault.auth_stats(None).logins, 1);

    // A wrong secret_id fails the login, naming the auth, not the credential.
    let secret_id_file = dir.path().join("convoy-dev.secret-id");
    std::fs::write(&secret_id_file, "00000000-0000-0000-0000-000000000000").unwrap();
    let (role_id, _) = bao.approle("convoy-dev", &["dev-read"], json!({})).await.unwrap();
    let auth = json!({"method": "approle", "role_id": role_id, "secret_id_file": secret_id_file});
    let fresh = Vault::new(&config(&bao, auth, json!({}))).unwrap();
    let err = fresh.resolve("app1.ns1", None, &allowed).await.unwrap_err();
    assert!(matches!(err, SecretsError::Login { .. }), "{err}");
    assert!(err.to_string().contains("approle at auth/approle"), "{err}");
    assert!(!err.to_string().contains("00000000-0000"), "{err}");
}

#[tokio::test]
async fn each_environment_reads_with_its_own_role() {
    let bao = start_bao().await;
    bao.enable_auth("approle", "approle").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let prod = approle_auth(&bao, dir.path(), "convoy-prod", &["prod-read"], json!({})).await;
    let dev = approle_auth(&bao, dir.path(), "convoy-dev", &["dev-read"], json!({})).await;
    let vault = Vault::new(&config(
        &bao,
        dev.clone(),
        json!({"environments": {"prod": prod.clone()}}),
    ))
    .unwrap();

    let prod_secret = [request(
        "prod-us-east1-0",
        "app1",
        "/kv/prod/ns1/app1/test",
        "password",
    )];
    let resolved = vault
        .resolve("app1.ns1", Some("prod"), &prod_secret)
        .await
        .unwrap();
    assert_eq!(
        resolved.get("prod-us-east1-0", "app1").unwrap().expose(),
        "pw-prod"
    );
    assert_eq!(vault.auth_stats(Some("prod")).logins, 1);

    // The dev pipeline's role cannot read prod's secrets.
    let err = vault
        .resolve("app1.ns1", Some("dev"), &prod_secret)
        .await
        .unwrap_err();
    assert_eq!(secret_failure(&err).cause, Cause::PermissionDenied);
    // Nor can prod's role read dev's.
    let dev_secret = [request(
        "dev-us-central1-0",
        "app1",
        "/kv/dev/ns1/app1/test",
        "password",
    )];
    let err = vault
        .resolve("app1.ns1", Some("prod"), &dev_secret)
        .await
        .unwrap_err();
    assert_eq!(secret_failure(&err).cause, Cause::PermissionDenied);

    // With require_environment_auth, an environment without its own role is refused.
    let strict = config(
        &bao,
        dev,
        json!({"environments": {"prod": prod}, "require_environment_auth": true}),
    );
    let strict = Vault::new(&strict).unwrap();
    let err = strict
        .resolve("app1.ns1", Some("staging"), &dev_secret)
        .await
        .unwrap_err();
    assert!(
        matches!(err, SecretsError::NoEnvironmentAuth { ref environment, .. } if environment == "staging")
    );
}

#[tokio::test]
async fn a_rotated_secret_records_each_version_read() {
    let bao = start_bao().await;
    let dir = tempfile::tempdir().unwrap();
    let vault = dev_token_vault(&bao, dir.path()).await;
    let requests = [request("ctx", "app1", "/kv/dev/ns1/rotating", "password")];
    bao.kv2_put("kv", "dev/ns1/rotating", json!({"password": "first"}))
        .await
        .unwrap();
    let first = vault.resolve("app1.ns1", None, &requests).await.unwrap();
    bao.kv2_put("kv", "dev/ns1/rotating", json!({"password": "second"}))
        .await
        .unwrap();
    let second = vault.resolve("app1.ns1", None, &requests).await.unwrap();

    assert_eq!(first.get("ctx", "app1").unwrap().expose(), "first");
    assert_eq!(second.get("ctx", "app1").unwrap().expose(), "second");
    assert_eq!((first.versions[0].version, second.versions[0].version), (1, 2));
    // What a revision stores: paths and versions, no value.
    let stored = serde_json::to_string(&[&first.versions, &second.versions]).unwrap();
    assert!(
        !stored.contains("first") && !stored.contains("second"),
        "{stored}"
    );
}

fn pinned(context: &str, secret_id: &str, path: &str, key: &str, version: u64) -> SecretVersion {
    SecretVersion {
        context: context.into(),
        secret_id: secret_id.into(),
        vault_path: path.into(),
        vault_key: key.into(),
        version,
    }
}

#[tokio::test]
async fn pinned_reads_return_the_recorded_version_not_the_latest() {
    let bao = start_bao().await;
    let dir = tempfile::tempdir().unwrap();
    let vault = dev_token_vault(&bao, dir.path()).await;
    let path = "/secret/dev/ns1/app1/rotated";
    for value in ["first", "second"] {
        bao.kv2_put("secret", "dev/ns1/app1/rotated", json!({"password": value}))
            .await
            .unwrap();
    }

    // The latest, as a submit reads it: version 2.
    let latest = vault
        .resolve("app1.ns1", None, &[request("ctx", "db", path, "password")])
        .await
        .unwrap();
    assert_eq!(latest.get("ctx", "db").unwrap().expose(), "second");
    assert_eq!(latest.versions, [pinned("ctx", "db", path, "password", 2)]);

    // A revision that recorded version 1 re-reads version 1; a KV v1 secret (pin 0)
    // in the same resolution is read as usual.
    let pins = [
        pinned("ctx", "db", path, "password", 1),
        pinned("ctx", "legacy", "/kv1/dev/ns1/app1/legacy", "apikey", 0),
    ];
    let resolved = vault
        .resolve_pinned("app1.ns1", Some("dev"), &pins)
        .await
        .unwrap();
    assert_eq!(resolved.get("ctx", "db").unwrap().expose(), "first");
    assert_eq!(resolved.get("ctx", "legacy").unwrap().expose(), "legacy-key");
    assert_eq!(resolved.versions, pins);

    // What a resolution recorded is what a pinned resolution reads back, also when
    // another context pins another version of the same path in the same call.
    let mut both = latest.versions.clone();
    both.push(pinned("other", "db", path, "password", 1));
    let again = vault.resolve_pinned("app1.ns1", None, &both).await.unwrap();
    assert_eq!(again.get("ctx", "db").unwrap().expose(), "second");
    assert_eq!(again.get("other", "db").unwrap().expose(), "first");
    assert_eq!(again.versions, both);
}

#[tokio::test]
async fn pinned_reads_refuse_versions_the_mount_cannot_serve() {
    let bao = start_bao().await;
    let dir = tempfile::tempdir().unwrap();
    let vault = dev_token_vault(&bao, dir.path()).await;

    // KV v1 has no versions: a pin N > 0 is a contradiction, not "read the latest".
    let legacy = pinned("ctx", "legacy", "/kv1/dev/ns1/app1/legacy", "apikey", 3);
    let err = vault
        .resolve_pinned("app1.ns1", None, &[legacy])
        .await
        .unwrap_err();
    let f = secret_failure(&err);
    assert_eq!(
        (f.path.as_str(), f.key.as_str(), f.secret_id.as_str()),
        ("/kv1/dev/ns1/app1/legacy", "apikey", "legacy")
    );
    assert!(
        matches!(&f.cause, Cause::VersionMismatch(m) if m.contains("version 3") && m.contains("KV v1")),
        "{err}"
    );

    // KV v2 pinned to 0 (a KV v1 read) names the mount as KV v2.
    let db = pinned("ctx", "db", "/secret/dev/ns1/app1/db", "url", 0);
    let err = vault.resolve_pinned("app1.ns1", None, &[db]).await.unwrap_err();
    let f = secret_failure(&err);
    assert_eq!(
        (f.path.as_str(), f.key.as_str()),
        ("/secret/dev/ns1/app1/db", "url")
    );
    assert!(
        matches!(&f.cause, Cause::VersionMismatch(m) if m.contains("version 0") && m.contains("KV v2")),
        "{err}"
    );
}

#[tokio::test]
async fn a_deleted_or_destroyed_pinned_version_cannot_be_re_read() {
    let bao = start_bao().await;
    let dir = tempfile::tempdir().unwrap();
    let vault = dev_token_vault(&bao, dir.path()).await;
    for value in ["v1", "v2", "v3", "v4"] {
        bao.kv2_put("secret", "dev/ns1/app1/gone", json!({"password": value}))
            .await
            .unwrap();
    }
    bao.api(
        "POST",
        "secret/delete/dev/ns1/app1/gone",
        Some(json!({"versions": [2]})),
    )
    .await
    .unwrap();
    bao.api(
        "POST",
        "secret/destroy/dev/ns1/app1/gone",
        Some(json!({"versions": [3]})),
    )
    .await
    .unwrap();
    let read = |version: u64| {
        let pin = pinned("ctx", "db", "/secret/dev/ns1/app1/gone", "password", version);
        let vault = &vault;
        async move { vault.resolve_pinned("app1.ns1", None, &[pin]).await }
    };
    let gone = |err: &SecretsError| match &secret_failure(err).cause {
        Cause::VersionGone {
            path,
            version,
            removal,
        } => {
            assert_eq!(path, "secret/data/dev/ns1/app1/gone");
            (*version, *removal)
        }
        other => panic!("expected VersionGone, got {other}"),
    };

    // Untouched versions stay readable.
    assert_eq!(read(1).await.unwrap().get("ctx", "db").unwrap().expose(), "v1");
    let err = read(2).await.unwrap_err();
    assert_eq!(gone(&err), (2, Removal::Deleted));
    let text = err.to_string();
    assert!(
        text.contains("secret/data/dev/ns1/app1/gone version 2 was deleted; it cannot be re-read"),
        "{text}"
    );
    assert!(text.contains("kv undelete -versions=2"), "{text}");
    let err = read(3).await.unwrap_err();
    assert_eq!(gone(&err), (3, Removal::Destroyed));
    assert!(
        err.to_string()
            .contains("secret/data/dev/ns1/app1/gone version 3 was destroyed; it cannot be re-read"),
        "{err}"
    );
    // A version the secret never had answers 404 without metadata.
    assert_eq!(gone(&read(9).await.unwrap_err()), (9, Removal::Unknown));

    // Deleting the secret's metadata destroys every version.
    bao.api("DELETE", "secret/metadata/dev/ns1/app1/gone", None)
        .await
        .unwrap();
    let err = read(1).await.unwrap_err();
    assert_eq!(gone(&err), (1, Removal::Unknown));
    assert!(
        err.to_string().contains(
            "secret/data/dev/ns1/app1/gone version 1 was deleted or destroyed; it cannot be re-read"
        ),
        "{err}"
    );
}

#[tokio::test]
async fn missing_key_missing_path_and_wrong_kv_version() {
    let bao = start_bao().await;
    bao.mount_engine("transit", "transit").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let vault = dev_token_vault(&bao, dir.path()).await;

    let err = vault
        .resolve(
            "app1.ns1",
            None,
            &[request("ctx", "app1", "/kv/dev/ns1/app1/test", "passwd")],
        )
        .await
        .unwrap_err();
    let f = secret_failure(&err);
    assert_eq!(
        f.cause,
        Cause::MissingKey {
            available: "password, user".into()
        }
    );
    assert_eq!((f.key.as_str(), f.secret_id.as_str()), ("passwd", "app1"));

    let err = vault
        .resolve(
            "app1.ns1",
            None,
            &[request("ctx", "app1", "/kv/dev/ns1/nothing", "password")],
        )
        .await
        .unwrap_err();
    assert_eq!(secret_failure(&err).cause, Cause::MissingPath);
    let err = vault
        .resolve(
            "app1.ns1",
            None,
            &[request("ctx", "app1", "/kv1/dev/nothing", "password")],
        )
        .await
        .unwrap_err();
    assert_eq!(secret_failure(&err).cause, Cause::MissingPath);

    // A mount pinned to the wrong version, and a mount that is not KV at all (root
    // token: the dev token has no access to transit/ at all).
    let pinned = config(
        &bao,
        json!({"method": "token", "token": bao.root_token()}),
        json!({"kv_versions": {"kv1": 2}}),
    );
    let pinned = Vault::new(&pinned).unwrap();
    let err = pinned
        .resolve(
            "app1.ns1",
            None,
            &[request("ctx", "legacy", "/kv1/dev/ns1/app1/legacy", "apikey")],
        )
        .await
        .unwrap_err();
    let cause = &secret_failure(&err).cause;
    assert!(
        matches!(cause, Cause::WrongKvVersion(m) if m.contains("kv_versions.kv1") && m.contains("KV v1")),
        "{err}"
    );
    let err = pinned
        .resolve("app1.ns1", None, &[request("ctx", "t", "/transit/keys/k", "k")])
        .await
        .unwrap_err();
    assert!(
        matches!(&secret_failure(&err).cause, Cause::WrongKvVersion(m) if m.contains("transit")),
        "{err}"
    );

    // Bad paths fail before Vault is asked.
    let err = vault
        .resolve("app1.ns1", None, &[request("ctx", "app1", "/kv", "password")])
        .await
        .unwrap_err();
    assert!(
        matches!(secret_failure(&err).cause, Cause::InvalidPath(_)),
        "{err}"
    );
}

#[tokio::test]
async fn a_sealed_vault_is_reported_as_sealed() {
    let bao = start_bao().await;
    let dir = tempfile::tempdir().unwrap();
    let vault = dev_token_vault(&bao, dir.path()).await;
    let fresh = dev_token_vault(&bao, dir.path()).await;
    let requests = [request("ctx", "app1", "/kv/dev/ns1/app1/test", "password")];
    vault.resolve("app1.ns1", None, &requests).await.unwrap();

    bao.seal().await.unwrap();
    // Logged in before: the read fails, naming the secret.
    let err = vault.resolve("app1.ns1", None, &requests).await.unwrap_err();
    assert_eq!(secret_failure(&err).cause, Cause::Sealed);
    assert!(err.to_string().contains("sealed"), "{err}");
    // Not logged in yet: the login fails, for the same reason.
    let err = fresh.resolve("app1.ns1", None, &requests).await.unwrap_err();
    assert!(matches!(err, SecretsError::Login { .. }), "{err}");
    assert_eq!(err.cause(), Some(&Cause::Sealed));
}

/// Kills OpenBao from inside the resolution: at the `n`th "reading secret" event,
/// which the resolver emits just before it sends that read.
struct KillAtRead {
    n: usize,
    seen: AtomicUsize,
    bao: Arc<Mutex<OpenBao>>,
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for KillAtRead {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let mut message = MessageText(String::new());
        event.record(&mut message);
        if message.0 == "reading secret" && self.seen.fetch_add(1, Ordering::SeqCst) + 1 == self.n {
            self.bao.lock().unwrap().kill();
        }
    }
}

struct MessageText(String);

impl tracing::field::Visit for MessageText {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

#[tokio::test]
async fn vault_killed_mid_resolution_fails_the_whole_resolution() {
    let bao = start_bao().await;
    let paths: Vec<String> = (0..12).map(|i| format!("dev/ns1/many/s{i:02}")).collect();
    for p in &paths {
        bao.kv2_put("kv", p, json!({"password": format!("value-of-{p}")}))
            .await
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let token = bao.create_token(&["dev-read"], "1h").await.unwrap();
    let file = write_file(dir.path(), "token", &token);
    let auth = json!({"method": "token", "token_file": file});
    // One read at a time, so "the 5th read" is a well-defined point.
    let vault = Vault::new(&config(&bao, auth, json!({"max_concurrency": 1}))).unwrap();
    let requests: Vec<SecretRequest> = paths
        .iter()
        .map(|p| {
            request(
                "ctx",
                &format!("id-{}", &p[p.len() - 3..]),
                &format!("/kv/{p}"),
                "password",
            )
        })
        .collect();

    let bao = Arc::new(Mutex::new(bao));
    let kill = KillAtRead {
        n: 5,
        seen: AtomicUsize::new(0),
        bao: bao.clone(),
    };
    let _serial = tracing_serial().await;
    let _guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(kill));
    tracing::callsite::rebuild_interest_cache();
    let started = std::time::Instant::now();
    let result = vault.resolve("app1.ns1", None, &requests).await;
    let elapsed = started.elapsed();

    let err = result.expect_err("a resolution whose Vault died returned values");
    let f = secret_failure(&err);
    assert!(matches!(f.cause, Cause::Unreachable(_)), "{err}");
    // Reads go in path order: the 5th path is the one that found Vault gone.
    assert_eq!(f.path, "/kv/dev/ns1/many/s04", "{err}");
    assert_eq!((f.secret_id.as_str(), f.context.as_str()), ("id-s04", "ctx"));
    assert!(err.to_string().contains("Vault unreachable"), "{err}");
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
    eprintln!("failed after {elapsed:?}: {err}");
}

#[tokio::test]
async fn tokens_are_renewed_before_expiry_and_reacquired_after_revocation() {
    let bao = start_bao().await;
    bao.enable_auth("approle", "approle").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let settings = json!({"token_ttl": "6s", "token_max_ttl": "1h"});
    let auth = approle_auth(&bao, dir.path(), "short", &["dev-read"], settings).await;
    let vault = Arc::new(Vault::new(&config(&bao, auth.clone(), json!({}))).unwrap());
    let requests = [request("ctx", "app1", "/kv/dev/ns1/app1/test", "password")];

    vault.resolve("app1.ns1", None, &requests).await.unwrap();
    assert_eq!(
        vault.auth_stats(None),
        convoy_secrets::AuthStats {
            logins: 1,
            renewals: 0
        }
    );

    // Inside the last third of the 6s TTL the next use renews instead of logging in.
    tokio::time::sleep(Duration::from_millis(4300)).await;
    vault.resolve("app1.ns1", None, &requests).await.unwrap();
    assert_eq!(
        vault.auth_stats(None),
        convoy_secrets::AuthStats {
            logins: 1,
            renewals: 1
        }
    );

    // Revoked behind our back: the 403 leads to one new login and the read succeeds.
    bao.revoke_prefix("auth/approle/login").await.unwrap();
    let resolved = vault.resolve("app1.ns1", None, &requests).await.unwrap();
    assert_eq!(resolved.get("ctx", "app1").unwrap().expose(), "pw-default");
    assert_eq!(vault.auth_stats(None).logins, 2);

    // An idle coordinator keeps its token alive in the background.
    let idle = Arc::new(Vault::new(&config(&bao, auth, json!({}))).unwrap());
    let renewal = idle.spawn_renewal();
    idle.resolve("app1.ns1", None, &requests).await.unwrap();
    tokio::time::sleep(Duration::from_millis(6500)).await;
    let stats = idle.auth_stats(None);
    assert_eq!(stats.logins, 1, "{stats:?}");
    assert!(stats.renewals >= 1, "{stats:?}");
    // Still valid after more than one original TTL without any use.
    idle.resolve("app1.ns1", None, &requests).await.unwrap();
    assert_eq!(idle.auth_stats(None).logins, 1);
    drop(idle);
    tokio::time::timeout(Duration::from_secs(5), renewal)
        .await
        .expect("the renewal task ends once the Vault is dropped")
        .unwrap();
}

/// A `Write` into a shared buffer, for capturing formatted logs.
#[derive(Clone)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn canary_value_never_reaches_logs_errors_or_debug_output() {
    every_callsite_live();
    const CANARY: &str = "CANARY-7f3a9c-do-not-log";
    const SECRET_ID_CANARY: &str = "CANARY-secret-id-51d0e2";
    let bao = start_bao().await;
    bao.kv2_put(
        "kv",
        "dev/ns1/canary",
        json!({"password": CANARY, "other": CANARY}),
    )
    .await
    .unwrap();
    bao.enable_auth("approle", "approle").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (role_id, _) = bao.approle("canary", &["dev-read"], json!({})).await.unwrap();
    bao.api(
        "POST",
        "auth/approle/role/canary/custom-secret-id",
        Some(json!({"secret_id": SECRET_ID_CANARY})),
    )
    .await
    .unwrap();
    let secret_id_file = write_file(dir.path(), "sid", SECRET_ID_CANARY);
    let auth = json!({"method": "approle", "role_id": role_id, "secret_id_file": secret_id_file});

    let logs = Arc::new(Mutex::new(Vec::new()));
    let writer = Capture(logs.clone());
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _serial = tracing_serial().await;
    let _guard = tracing::subscriber::set_default(subscriber);
    tracing::callsite::rebuild_interest_cache();

    let vault = Vault::new(&config(&bao, auth, json!({}))).unwrap();
    let requests = [request("ctx", "app1", "/kv/dev/ns1/canary", "password")];
    let resolved = vault.resolve("app1.ns1", None, &requests).await.unwrap();
    assert_eq!(resolved.get("ctx", "app1").unwrap().expose(), CANARY);

    // Failures on the same secret: a missing key, and a denied neighbour.
    let missing = vault
        .resolve(
            "app1.ns1",
            None,
            &[request("ctx", "app1", "/kv/dev/ns1/canary", "nope")],
        )
        .await
        .unwrap_err();
    let denied = vault
        .resolve(
            "app1.ns1",
            None,
            &[
                request("ctx", "app1", "/kv/dev/ns1/canary", "password"),
                request("ctx", "private", "/kv/dev/ns1/app1/private", "password"),
            ],
        )
        .await
        .unwrap_err();
    // Pinned to the version just read, then to that version once it is deleted: the
    // 404 of a deleted version carries its metadata, which the error is built from.
    let pinned = vault
        .resolve_pinned("app1.ns1", None, &resolved.versions)
        .await
        .unwrap();
    assert_eq!(pinned.get("ctx", "app1").unwrap().expose(), CANARY);
    bao.api("POST", "kv/delete/dev/ns1/canary", Some(json!({"versions": [1]})))
        .await
        .unwrap();
    let gone = vault
        .resolve_pinned("app1.ns1", None, &resolved.versions)
        .await
        .unwrap_err();
    assert!(
        matches!(
            secret_failure(&gone).cause,
            Cause::VersionGone {
                removal: Removal::Deleted,
                ..
            }
        ),
        "{gone}"
    );

    let logs = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    // The capture works: the resolver's own path-only events are there, and so are
    // the libraries' TRACE events.
    assert!(
        logs.contains("reading secret") && logs.contains("dev/ns1/canary"),
        "{logs}"
    );
    assert!(logs.contains("TRACE"), "{logs}");
    let outputs = [
        ("logs", logs),
        ("Resolved Debug", format!("{resolved:?} {resolved:#?}")),
        (
            "Resolved versions JSON",
            serde_json::to_string(&resolved.versions).unwrap(),
        ),
        ("missing-key error", format!("{missing} {missing:?}")),
        ("denied error", format!("{denied} {denied:?}")),
        ("Vault Debug", format!("{vault:?}")),
        ("pinned Resolved Debug", format!("{pinned:?} {pinned:#?}")),
        ("gone-version error", format!("{gone} {gone:?}")),
    ];
    for (what, text) in &outputs {
        assert!(
            !text.contains(CANARY),
            "the canary value leaked into {what}:\n{text}"
        );
        assert!(
            !text.contains(SECRET_ID_CANARY),
            "the AppRole secret_id leaked into {what}:\n{text}"
        );
    }
    assert!(outputs[3].1.contains("other, password"), "{}", outputs[3].1);
}

/// The legacy token Secret the token controller creates for `sa` (Kubernetes 1.20).
async fn service_account_jwt(client: kube::Client, namespace: &str, sa: &str) -> String {
    use k8s_openapi::api::core::v1::Secret;
    let secrets: kube::Api<Secret> = kube::Api::namespaced(client, namespace);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let list = secrets.list(&Default::default()).await.unwrap();
        let token = list.items.iter().find_map(|s| {
            let for_sa = s
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("kubernetes.io/service-account.name"))
                .is_some_and(|name| name == sa);
            let token = s.data.as_ref()?.get("token")?;
            (for_sa && s.type_.as_deref() == Some("kubernetes.io/service-account-token"))
                .then(|| String::from_utf8(token.0.clone()).unwrap())
        });
        if let Some(token) = token {
            return token;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no token Secret for {namespace}/{sa}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn kubernetes_auth_with_the_service_account_token() {
    every_callsite_live();
    use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
    use kube::api::{Api, PostParams};

    let (bao, cluster) = tokio::join!(start_bao(), convoy_tests::kube::ControlPlane::start("vault-k8s"));
    let cluster = cluster.expect("start a control plane");
    let client = cluster.client().await;
    let pp = PostParams::default();
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "convoy"}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&pp, &ns)
        .await
        .unwrap();
    let sa: ServiceAccount = serde_json::from_value(json!({"metadata": {"name": "convoyd"}})).unwrap();
    Api::<ServiceAccount>::namespaced(client.clone(), "convoy")
        .create(&pp, &sa)
        .await
        .unwrap();
    let jwt = service_account_jwt(client, "convoy", "convoyd").await;

    // Vault verifies the JWT with the apiserver's TokenReview API.
    bao.enable_auth("kubernetes", "kubernetes").await.unwrap();
    let k8s_config = json!({
        "kubernetes_host": cluster.server(),
        "kubernetes_ca_cert": cluster.ca_pem(),
        "token_reviewer_jwt": cluster.admin_token(),
    });
    bao.api("POST", "auth/kubernetes/config", Some(k8s_config))
        .await
        .unwrap();
    for (role, sa) in [("convoy-dev", "convoyd"), ("someone-else", "other")] {
        let role_config = json!({
            "bound_service_account_names": [sa],
            "bound_service_account_namespaces": ["convoy"],
            "token_policies": ["dev-read"],
            "token_ttl": "15m",
        });
        bao.api("POST", &format!("auth/kubernetes/role/{role}"), Some(role_config))
            .await
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let jwt_file = write_file(dir.path(), "token", &jwt);

    let auth = json!({"method": "kubernetes", "role": "convoy-dev", "jwt_file": jwt_file});
    let vault = Vault::new(&config(&bao, auth, json!({}))).unwrap();
    let requests = [request("ctx", "app1", "/kv/dev/ns1/app1/test", "password")];
    let resolved = vault.resolve("app1.ns1", None, &requests).await.unwrap();
    assert_eq!(resolved.get("ctx", "app1").unwrap().expose(), "pw-default");
    assert_eq!(vault.auth_stats(None).logins, 1);

    // A role bound to another service account refuses this pod's token.
    let auth = json!({"method": "kubernetes", "role": "someone-else", "jwt_file": jwt_file});
    let err = Vault::new(&config(&bao, auth, json!({})))
        .unwrap()
        .resolve("app1.ns1", None, &requests)
        .await
        .unwrap_err();
    assert!(matches!(err, SecretsError::Login { .. }), "{err}");
    assert!(matches!(err.cause(), Some(Cause::Credential(_))), "{err}");
    assert!(
        err.to_string().contains("kubernetes role \"someone-else\""),
        "{err}"
    );
    assert!(!err.to_string().contains(&jwt), "{err}");
}

#[tokio::test]
async fn https_with_a_ca_file_and_refusal_without_it() {
    every_callsite_live();
    let bao = convoy_tests::openbao::TlsOpenBao::start()
        .await
        .expect("start OpenBao with TLS");
    // Dev mode's `secret/` upgrades its storage for a moment after start: retry.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while let Err(e) = bao
        .cli(&["kv", "put", "-mount=secret", "dev/tls", "password=over-tls"])
        .await
    {
        assert!(std::time::Instant::now() < deadline, "{e}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let auth = json!({"method": "token", "token": bao.root_token()});
    let config = |extra: Value| {
        let mut c = json!({"address": bao.addr(), "auth": auth});
        c.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        serde_json::from_value::<VaultConfig>(c).unwrap()
    };
    let requests = [request("ctx", "app1", "/secret/dev/tls", "password")];

    let trusted = Vault::new(&config(json!({"ca_file": bao.ca_file()}))).unwrap();
    let resolved = trusted.resolve("app1.ns1", None, &requests).await.unwrap();
    assert_eq!(resolved.get("ctx", "app1").unwrap().expose(), "over-tls");
    assert_eq!(resolved.versions[0].version, 1);

    // The system's roots do not include OpenBao's dev CA: the TLS handshake fails.
    let untrusted = Vault::new(&config(json!({}))).unwrap();
    let err = untrusted.resolve("app1.ns1", None, &requests).await.unwrap_err();
    assert!(matches!(err.cause(), Some(Cause::Unreachable(_))), "{err}");
    assert!(err.to_string().to_lowercase().contains("certificate"), "{err}");
}

/// Counts vaultrs' `request` spans for KV v2 reads under one prefix: one span per HTTP
/// request, open while it is in flight.
#[derive(Default)]
struct InFlight {
    open: Mutex<std::collections::HashSet<tracing::span::Id>>,
    max: AtomicUsize,
    total: AtomicUsize,
}

struct PathField(Option<String>);

impl tracing::field::Visit for PathField {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "path" {
            self.0 = Some(format!("{value:?}"));
        }
    }
}

/// The layer that feeds an [`InFlight`] the test keeps a handle on.
struct InFlightLayer(Arc<InFlight>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for InFlightLayer {
    fn on_new_span(&self, attrs: &tracing::span::Attributes<'_>, id: &tracing::span::Id, _: Context<'_, S>) {
        if attrs.metadata().name() != "request" {
            return;
        }
        let mut path = PathField(None);
        attrs.record(&mut path);
        if path.0.is_some_and(|p| p.starts_with("kv/data/dev/ns1/many/")) {
            let mut open = self.0.open.lock().unwrap();
            open.insert(id.clone());
            self.0.max.fetch_max(open.len(), Ordering::SeqCst);
            self.0.total.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn on_close(&self, id: tracing::span::Id, _: Context<'_, S>) {
        self.0.open.lock().unwrap().remove(&id);
    }
}

#[tokio::test]
async fn reads_are_deduplicated_and_concurrent_up_to_the_bound() {
    let bao = start_bao().await;
    let paths: Vec<String> = (0..30).map(|i| format!("dev/ns1/many/s{i:02}")).collect();
    for p in &paths {
        bao.kv2_put("kv", p, json!({"password": "pw", "user": "u"}))
            .await
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let token = bao.create_token(&["dev-read"], "1h").await.unwrap();
    let file = write_file(dir.path(), "token", &token);
    let auth = json!({"method": "token", "token_file": file});
    let vault = Vault::new(&config(&bao, auth, json!({"max_concurrency": 8}))).unwrap();
    // 3 contexts x 2 keys of each path: 180 requests, 30 distinct paths.
    let mut requests = Vec::new();
    for ctx in ["a", "b", "c"] {
        for p in &paths {
            for key in ["password", "user"] {
                let id = format!("{}-{key}", &p[p.len() - 3..]);
                requests.push(request(ctx, &id, &format!("/kv/{p}"), key));
            }
        }
    }

    let counter = Arc::new(InFlight::default());
    let _serial = tracing_serial().await;
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(InFlightLayer(counter.clone())));
    tracing::callsite::rebuild_interest_cache();
    let resolved = vault.resolve("app1.ns1", None, &requests).await.unwrap();
    assert_eq!(resolved.values.len(), 180);
    assert_eq!(resolved.versions.len(), 180);
    assert_eq!(
        counter.total.load(Ordering::SeqCst),
        30,
        "each distinct path is read once"
    );
    let max = counter.max.load(Ordering::SeqCst);
    assert!(
        max > 1 && max <= 8,
        "{max} reads in flight at most; the bound is 8"
    );
    eprintln!("at most {max} reads in flight");
}

/// Tests that install their own thread-local tracing subscriber run one at a time:
/// tracing caches each callsite's interest process-wide, and two such tests racing can
/// leave an event disabled for the other (a flaky capture, not a leak).
async fn tracing_serial() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

//! Source credentials held in Vault (`password_from_vault`, `token_from_vault`): named
//! as release files name their secrets (a secret path and a key), read through the
//! coordinator's own Vault session ([`VaultReader`], implemented by convoyd) when a
//! fetch needs them, and kept for `cache_seconds` so a burst of submits reads Vault
//! once while a rotated password is still picked up without a restart.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;

/// How long a value read from Vault is reused, unless the entry says otherwise.
const DEFAULT_CACHE_SECONDS: u64 = 60;

/// A secret in Vault: `{vault_path: /kv/ci/registry, vault_key: password}`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultSecretRef {
    /// `/mount/path/to/secret`, as in release files: the first segment is the KV mount.
    pub vault_path: String,
    /// The key inside the secret.
    pub vault_key: String,
    /// How long the value is reused before Vault is asked again (0: at every fetch).
    #[serde(default = "default_cache_seconds")]
    pub cache_seconds: u64,
}

fn default_cache_seconds() -> u64 {
    DEFAULT_CACHE_SECONDS
}

impl VaultSecretRef {
    /// Checks the shape, so a typo fails at start rather than at the first submit.
    pub(crate) fn validate(&self) -> Result<(), String> {
        let path = self.vault_path.trim_matches('/');
        if !self.vault_path.starts_with('/') || !path.contains('/') {
            return Err(format!(
                "vault_path: expected a Vault secret path such as `/kv/ci/registry` (the mount, then the secret), got {:?}",
                self.vault_path
            ));
        }
        if self.vault_key.trim().is_empty() {
            return Err("vault_key: expected the key inside the Vault secret, such as `password`".into());
        }
        if self.cache_seconds > 3600 {
            return Err(format!(
                "cache_seconds: expected 0 to 3600, got {}",
                self.cache_seconds
            ));
        }
        Ok(())
    }
}

/// What [`VaultReader::read`] returns.
pub type ReadFuture<'a> = Pin<Box<dyn Future<Output = Result<String, String>> + Send + 'a>>;

/// Reads one secret from Vault for the chart sources: convoyd's Vault session (the
/// `vault:` section of its config).
pub trait VaultReader: Send + Sync {
    /// The value of `key` in the secret at `path`. The error says why (unreachable,
    /// denied, no such key, ...), never with a value.
    fn read<'a>(&'a self, path: &'a str, key: &'a str) -> ReadFuture<'a>;
}

/// The reader and what it read recently.
pub(crate) struct VaultCredentials {
    reader: Arc<dyn VaultReader>,
    cache: Mutex<HashMap<(String, String), (Instant, String)>>,
}

impl std::fmt::Debug for VaultCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cached = self.cache.lock().map(|c| c.len()).unwrap_or(0);
        f.debug_struct("VaultCredentials")
            .field("cached", &cached)
            .finish_non_exhaustive()
    }
}

impl VaultCredentials {
    pub(crate) fn new(reader: Arc<dyn VaultReader>) -> Self {
        VaultCredentials {
            reader,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The value `r` names: from the cache while younger than `cache_seconds`, else
    /// from Vault (a failed read keeps nothing, so the next fetch asks again).
    pub(crate) async fn get(&self, r: &VaultSecretRef) -> Result<String, String> {
        let id = (r.vault_path.clone(), r.vault_key.clone());
        let max_age = Duration::from_secs(r.cache_seconds);
        if let Ok(cache) = self.cache.lock()
            && let Some((at, value)) = cache.get(&id)
            && at.elapsed() < max_age
        {
            return Ok(value.clone());
        }
        let value = self.reader.read(&r.vault_path, &r.vault_key).await?;
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(id, (Instant::now(), value.clone()));
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Answers `value-N` for the N-th read; fails for key `missing`.
    #[derive(Default)]
    struct Counting(AtomicUsize);

    impl VaultReader for Counting {
        fn read<'a>(&'a self, _path: &'a str, key: &'a str) -> ReadFuture<'a> {
            Box::pin(async move {
                if key == "missing" {
                    return Err("the secret has no such key".into());
                }
                Ok(format!("value-{}", self.0.fetch_add(1, Ordering::SeqCst) + 1))
            })
        }
    }

    fn secret(key: &str, cache_seconds: u64) -> VaultSecretRef {
        VaultSecretRef {
            vault_path: "/kv/ci/registry".into(),
            vault_key: key.into(),
            cache_seconds,
        }
    }

    #[tokio::test]
    async fn values_are_reused_for_cache_seconds_then_read_again() {
        let reader = Arc::new(Counting::default());
        let v = VaultCredentials::new(reader.clone());
        assert_eq!(v.get(&secret("password", 60)).await.unwrap(), "value-1");
        assert_eq!(v.get(&secret("password", 60)).await.unwrap(), "value-1");
        // No caching: every fetch asks Vault, so a rotation is seen at once.
        assert_eq!(v.get(&secret("password", 0)).await.unwrap(), "value-2");
        assert_eq!(v.get(&secret("password", 0)).await.unwrap(), "value-3");
        assert!(v.get(&secret("missing", 60)).await.is_err());
        assert!(!format!("{v:?}").contains("value-"), "{v:?}");
    }

    #[test]
    fn references_are_checked() {
        assert!(secret("password", 60).validate().is_ok());
        let mut no_mount = secret("password", 60);
        no_mount.vault_path = "registry".into();
        assert!(no_mount.validate().unwrap_err().starts_with("vault_path"));
        assert!(secret(" ", 60).validate().unwrap_err().starts_with("vault_key"));
        assert!(
            secret("password", 7200)
                .validate()
                .unwrap_err()
                .starts_with("cache_seconds")
        );
    }
}

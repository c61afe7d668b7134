//! The `vault:` section of the coordinator's config.
//!
//! ```yaml
//! vault:
//!   address: https://vault.example.com:8200
//!   namespace: platform            # Vault Enterprise / OpenBao namespace, optional
//!   ca_file: /etc/convoy/vault-ca.pem
//!   auth: {method: kubernetes, role: convoy}           # the default
//!   environments:                                      # least privilege per environment
//!     prod: {method: approle, role_id: 9f0c..., secret_id_file: /run/secrets/prod-secret-id}
//!   require_environment_auth: true
//! ```
//!
//! Credentials live in files (a token file, an AppRole secret_id file, the pod's
//! service-account JWT) that are re-read at every login, so rotating them needs no
//! restart; an inline `token` is accepted for development only.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use crate::SecretValue;
use crate::error::{Result, SecretsError};

/// Where the pod's service-account token is mounted by Kubernetes.
pub const DEFAULT_JWT_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultConfig {
    /// `http(s)://host:port` of Vault or OpenBao.
    pub address: String,
    /// Namespace sent as `X-Vault-Namespace`.
    #[serde(default)]
    pub namespace: Option<String>,
    /// PEM bundle of the CA(s) that sign Vault's certificate; when set, only these are
    /// trusted (like `VAULT_CACERT`), otherwise the system's roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// How the coordinator logs in when the release's environment has no entry below.
    pub auth: AuthConfig,
    /// Per-environment (or per-release-namespace, whichever key the coordinator passes)
    /// auth, so each environment reads with its own role and policy.
    #[serde(default)]
    pub environments: BTreeMap<String, AuthConfig>,
    /// Refuse to resolve for an environment that has no entry in `environments`,
    /// rather than falling back to `auth`.
    #[serde(default)]
    pub require_environment_auth: bool,
    /// KV version per mount (`{kv: 2}`), for tokens that may not discover it from
    /// `sys/internal/ui/mounts`; normally discovered and cached.
    #[serde(default)]
    pub kv_versions: BTreeMap<String, u8>,
    /// Reads in flight at once per resolution.
    #[serde(default = "default_max_concurrency")]
    pub max_concurrency: usize,
    /// Timeout of one HTTP request to Vault, in seconds.
    #[serde(default = "default_request_timeout_secs")]
    pub request_timeout_secs: u64,
}

fn default_max_concurrency() -> usize {
    16
}

fn default_request_timeout_secs() -> u64 {
    10
}

/// One way of logging in to Vault.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "method", rename_all = "lowercase", deny_unknown_fields)]
pub enum AuthConfig {
    /// A token given directly (development) or in a file (re-read at every login, so
    /// an external agent can rotate it).
    Token {
        #[serde(default)]
        token: Option<SecretValue>,
        #[serde(default)]
        token_file: Option<PathBuf>,
    },
    /// AppRole: the role_id in the config, the secret_id in a file.
    Approle {
        role_id: String,
        secret_id_file: PathBuf,
        #[serde(default = "default_approle_mount")]
        mount: String,
    },
    /// Kubernetes auth with the pod's service-account JWT.
    Kubernetes {
        role: String,
        #[serde(default = "default_jwt_file")]
        jwt_file: PathBuf,
        #[serde(default = "default_kubernetes_mount")]
        mount: String,
    },
}

fn default_approle_mount() -> String {
    "approle".into()
}

fn default_kubernetes_mount() -> String {
    "kubernetes".into()
}

fn default_jwt_file() -> PathBuf {
    DEFAULT_JWT_FILE.into()
}

fn invalid(key: impl Into<String>, reason: impl Into<String>) -> SecretsError {
    SecretsError::Config {
        key: key.into(),
        reason: reason.into(),
    }
}

impl VaultConfig {
    /// Checks everything that can be checked without touching the network or the
    /// credential files (those may appear later, e.g. a secret_id delivered at boot).
    pub fn validate(&self) -> Result<()> {
        let address = url::Url::parse(&self.address)
            .map_err(|e| invalid("address", format!("{:?} is not a URL: {e}", self.address)))?;
        if !matches!(address.scheme(), "http" | "https") {
            return Err(invalid(
                "address",
                format!("scheme must be http or https, not {:?}", address.scheme()),
            ));
        }
        if address.host_str().is_none_or(str::is_empty) {
            return Err(invalid("address", "has no host"));
        }
        if self.namespace.as_deref().is_some_and(|n| n.trim().is_empty()) {
            return Err(invalid("namespace", "is empty; remove it or name a namespace"));
        }
        if self.ca_file.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
            return Err(invalid("ca_file", "is empty"));
        }
        self.auth.validate("auth")?;
        for (env, auth) in &self.environments {
            if env.trim().is_empty() {
                return Err(invalid("environments", "has an empty environment name"));
            }
            auth.validate(&format!("environments.{env}"))?;
        }
        for (mount, version) in &self.kv_versions {
            if mount.is_empty() || mount.contains('/') {
                return Err(invalid(
                    format!("kv_versions.{mount}"),
                    "a mount name is one path segment, without '/'",
                ));
            }
            if !matches!(version, 1 | 2) {
                return Err(invalid(
                    format!("kv_versions.{mount}"),
                    format!("KV version must be 1 or 2, not {version}"),
                ));
            }
        }
        if !(1..=256).contains(&self.max_concurrency) {
            return Err(invalid(
                "max_concurrency",
                format!("must be between 1 and 256, not {}", self.max_concurrency),
            ));
        }
        if !(1..=600).contains(&self.request_timeout_secs) {
            return Err(invalid(
                "request_timeout_secs",
                format!("must be between 1 and 600, not {}", self.request_timeout_secs),
            ));
        }
        Ok(())
    }
}

impl AuthConfig {
    fn validate(&self, key: &str) -> Result<()> {
        let nonempty = |field: &str, value: &str| {
            if value.trim().is_empty() {
                Err(invalid(format!("{key}.{field}"), "must not be empty"))
            } else {
                Ok(())
            }
        };
        let mount_ok = |value: &str| {
            nonempty("mount", value)?;
            if value.trim_matches('/').is_empty() || value.contains("//") {
                return Err(invalid(
                    format!("{key}.mount"),
                    format!("{value:?} is not a mount path"),
                ));
            }
            Ok(())
        };
        match self {
            AuthConfig::Token { token, token_file } => match (token, token_file) {
                (Some(_), Some(_)) => Err(invalid(key, "set either `token` or `token_file`, not both")),
                (None, None) => Err(invalid(key, "method `token` needs `token` or `token_file`")),
                (Some(t), None) => nonempty("token", t.expose()),
                (None, Some(f)) => nonempty("token_file", &f.to_string_lossy()),
            },
            AuthConfig::Approle {
                role_id,
                secret_id_file,
                mount,
            } => {
                nonempty("role_id", role_id)?;
                nonempty("secret_id_file", &secret_id_file.to_string_lossy())?;
                mount_ok(mount)
            }
            AuthConfig::Kubernetes {
                role,
                jwt_file,
                mount,
            } => {
                nonempty("role", role)?;
                nonempty("jwt_file", &jwt_file.to_string_lossy())?;
                mount_ok(mount)
            }
        }
    }

    /// How this auth is named in errors and logs: method and mount, no credential.
    pub(crate) fn describe(&self) -> String {
        match self {
            AuthConfig::Token {
                token_file: Some(f), ..
            } => format!("token from {}", f.display()),
            AuthConfig::Token { .. } => "inline token".into(),
            AuthConfig::Approle { mount, .. } => {
                format!("approle at auth/{}", mount.trim_matches('/'))
            }
            AuthConfig::Kubernetes { role, mount, .. } => {
                format!("kubernetes role {role:?} at auth/{}", mount.trim_matches('/'))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> std::result::Result<VaultConfig, String> {
        serde_yaml::from_str::<VaultConfig>(yaml).map_err(|e| e.to_string())
    }

    fn invalid_key(yaml: &str) -> (String, String) {
        match parse(yaml).unwrap().validate() {
            Err(SecretsError::Config { key, reason }) => (key, reason),
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn full_config_parses_with_defaults() {
        let c = parse(
            "address: https://vault:8200\n\
             namespace: team\n\
             ca_file: /etc/ca.pem\n\
             auth: {method: kubernetes, role: convoy}\n\
             environments:\n  \
               prod: {method: approle, role_id: r1, secret_id_file: /run/sid}\n  \
               dev: {method: token, token_file: /run/tok}\n\
             require_environment_auth: true\n\
             kv_versions: {kv: 2}\n",
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.max_concurrency, 16);
        assert_eq!(c.request_timeout_secs, 10);
        match &c.auth {
            AuthConfig::Kubernetes {
                role,
                jwt_file,
                mount,
            } => {
                assert_eq!(role, "convoy");
                assert_eq!(jwt_file, &PathBuf::from(DEFAULT_JWT_FILE));
                assert_eq!(mount, "kubernetes");
            }
            other => panic!("{other:?}"),
        }
        match &c.environments["prod"] {
            AuthConfig::Approle { mount, .. } => assert_eq!(mount, "approle"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unknown_keys_are_refused() {
        let e = parse("address: http://v:8200\nauth: {method: token, token: t}\nadress: x\n").unwrap_err();
        assert!(e.contains("adress"), "{e}");
        let e = parse(
            "address: http://v:8200\nauth: {method: approle, role_id: r, secret_id_file: f, secret_id: s}\n",
        )
        .unwrap_err();
        assert!(e.contains("secret_id"), "{e}");
        let e = parse("address: http://v:8200\nauth: {method: ldap}\n").unwrap_err();
        assert!(e.contains("ldap"), "{e}");
    }

    #[test]
    fn validation_names_the_key() {
        let base = "auth: {method: token, token: t}\n";
        assert_eq!(invalid_key(&format!("address: vault:8200\n{base}")).0, "address");
        assert_eq!(invalid_key(&format!("address: ftp://v\n{base}")).0, "address");
        assert_eq!(
            invalid_key("address: http://v\nauth: {method: token}\n"),
            (
                "auth".into(),
                "method `token` needs `token` or `token_file`".into()
            )
        );
        assert_eq!(
            invalid_key("address: http://v\nauth: {method: token, token: a, token_file: /f}\n").0,
            "auth"
        );
        assert_eq!(
            invalid_key(
                "address: http://v\nauth: {method: token, token: t}\nenvironments:\n  prod: {method: approle, role_id: '', secret_id_file: /f}\n"
            )
            .0,
            "environments.prod.role_id"
        );
        assert_eq!(
            invalid_key("address: http://v\nauth: {method: kubernetes, role: r, mount: '/'}\n").0,
            "auth.mount"
        );
        assert_eq!(
            invalid_key(&format!("address: http://v\n{base}kv_versions: {{kv: 3}}\n")).0,
            "kv_versions.kv"
        );
        assert_eq!(
            invalid_key(&format!("address: http://v\n{base}max_concurrency: 0\n")).0,
            "max_concurrency"
        );
        assert_eq!(
            invalid_key(&format!("address: http://v\n{base}namespace: ' '\n")).0,
            "namespace"
        );
    }

    #[test]
    fn debug_of_config_hides_an_inline_token() {
        let c = parse("address: http://v:8200\nauth: {method: token, token: hvs.SUPERSECRET}\n").unwrap();
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("SUPERSECRET"), "{dbg}");
        assert_eq!(c.auth.describe(), "inline token");
    }
}

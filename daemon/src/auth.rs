//! Authentication and authorization: bearer tokens mapped to principals with roles,
//! and per-context agent credentials. Checked at the gRPC edge; the core receives a
//! [`Principal`] and never sees a token.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

/// What a caller may do. Ordered: each role includes the ones below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read releases, history, clusters; watch.
    Viewer,
    /// Submit releases, cancel own queued submits.
    Deployer,
    /// Roll back, pause, resume, abort.
    Operator,
    /// Everything.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Deployer => "deployer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub role: Role,
}

/// One API token in the config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Who holds it (`jenkins-app1`, `alice`): recorded in history and the audit log.
    pub name: String,
    pub role: Role,
    /// The token itself, or a file holding it (preferred: keeps it out of the config).
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub token_file: Option<PathBuf>,
}

/// One agent credential: the token an agent for `context` presents.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentTokenConfig {
    pub context: String,
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub token_file: Option<PathBuf>,
}

/// The `auth:` section of the daemon config.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    #[serde(default)]
    pub tokens: Vec<TokenConfig>,
    #[serde(default)]
    pub agents: Vec<AgentTokenConfig>,
    /// Development only: callers without a token act as `anonymous` admin, and agents
    /// need no token. Refused unless set explicitly; logged loudly when on.
    #[serde(default)]
    pub allow_anonymous: bool,
}

/// Why a caller was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token: send `authorization: Bearer <token>`")]
    Missing,
    #[error("unknown or revoked token")]
    Unknown,
    #[error("{who} has role {has}; {action} needs role {needs}")]
    Forbidden {
        who: String,
        has: &'static str,
        needs: &'static str,
        action: String,
    },
    #[error("agent credentials for context {claimed:?} refused: {why}")]
    Agent { claimed: String, why: String },
}

/// Token lookups. Built once at start from the config (files read then).
#[derive(Clone)]
pub struct Authenticator {
    users: BTreeMap<String, Principal>,
    agents: BTreeMap<String, String>,
    allow_anonymous: bool,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("users", &self.users.len())
            .field("agents", &self.agents.len())
            .field("allow_anonymous", &self.allow_anonymous)
            .finish()
    }
}

fn read_secret(inline: &Option<String>, file: &Option<PathBuf>, what: &str) -> Result<String, String> {
    match (inline, file) {
        (Some(t), None) if !t.trim().is_empty() => Ok(t.trim().to_string()),
        (None, Some(f)) => std::fs::read_to_string(f)
            .map(|s| s.trim().to_string())
            .map_err(|e| format!("{what}: reading token_file {}: {e}", f.display()))
            .and_then(|s| {
                if s.is_empty() {
                    Err(format!("{what}: token_file {} is empty", f.display()))
                } else {
                    Ok(s)
                }
            }),
        _ => Err(format!("{what}: set exactly one of `token` or `token_file`")),
    }
}

impl Authenticator {
    /// Reads token files and checks the section. Errors name the entry.
    pub fn from_config(cfg: &AuthConfig) -> Result<Self, String> {
        let mut users = BTreeMap::new();
        for (i, t) in cfg.tokens.iter().enumerate() {
            let tok = read_secret(&t.token, &t.token_file, &format!("auth.tokens[{i}] ({})", t.name))?;
            if users
                .insert(
                    tok,
                    Principal {
                        name: t.name.clone(),
                        role: t.role,
                    },
                )
                .is_some()
            {
                return Err(format!(
                    "auth.tokens[{i}] ({}): the same token is configured twice",
                    t.name
                ));
            }
        }
        let mut agents = BTreeMap::new();
        for (i, a) in cfg.agents.iter().enumerate() {
            let tok = read_secret(
                &a.token,
                &a.token_file,
                &format!("auth.agents[{i}] ({})", a.context),
            )?;
            if agents.insert(a.context.clone(), tok).is_some() {
                return Err(format!(
                    "auth.agents[{i}]: context {} has two credentials",
                    a.context
                ));
            }
        }
        if users.is_empty() && !cfg.allow_anonymous {
            return Err("auth.tokens: no API tokens configured (set auth.allow_anonymous: true for a development coordinator)".into());
        }
        Ok(Authenticator {
            users,
            agents,
            allow_anonymous: cfg.allow_anonymous,
        })
    }

    /// A development authenticator: everyone is an anonymous admin.
    pub fn anonymous() -> Self {
        Authenticator {
            users: BTreeMap::new(),
            agents: BTreeMap::new(),
            allow_anonymous: true,
        }
    }

    pub fn allows_anonymous(&self) -> bool {
        self.allow_anonymous
    }

    /// The principal for an `authorization` header value.
    pub fn authenticate(&self, header: Option<&str>) -> Result<Principal, AuthError> {
        let token = header.and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")));
        match token {
            Some(t) => self.users.get(t.trim()).cloned().ok_or(AuthError::Unknown),
            None if self.allow_anonymous => Ok(Principal {
                name: "anonymous".into(),
                role: Role::Admin,
            }),
            None => Err(AuthError::Missing),
        }
    }

    /// Checks that an agent may speak for `context`.
    pub fn authenticate_agent(&self, context: &str, token: &str) -> Result<(), AuthError> {
        let refuse = |why: &str| AuthError::Agent {
            claimed: context.to_string(),
            why: why.to_string(),
        };
        match self.agents.get(context) {
            Some(expected) if constant_time_eq(expected.as_bytes(), token.as_bytes()) => Ok(()),
            Some(_) => Err(refuse(
                "the token is not this context's (an agent may only speak for its own context)",
            )),
            None if self.allow_anonymous => Ok(()),
            None => Err(refuse("no agent credential is configured for this context")),
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Principal {
    /// Refuses unless the principal has at least `needs`.
    pub fn require(&self, needs: Role, action: &str) -> Result<(), AuthError> {
        if self.role >= needs {
            Ok(())
        } else {
            Err(AuthError::Forbidden {
                who: self.name.clone(),
                has: self.role.as_str(),
                needs: needs.as_str(),
                action: action.to_string(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> AuthConfig {
        serde_yaml::from_str(
            "tokens:\n- {name: viewer-bob, role: viewer, token: t-view}\n- {name: oncall, role: operator, token: t-op}\n\
             agents:\n- {context: east, token: a-east}\n- {context: west, token: a-west}\n",
        )
        .unwrap()
    }

    #[test]
    fn tokens_map_to_roles() {
        let a = Authenticator::from_config(&cfg()).unwrap();
        let bob = a.authenticate(Some("Bearer t-view")).unwrap();
        assert_eq!(bob.role, Role::Viewer);
        let err = bob.require(Role::Operator, "rollback").unwrap_err().to_string();
        assert_eq!(err, "viewer-bob has role viewer; rollback needs role operator");
        assert!(
            a.authenticate(Some("Bearer t-op"))
                .unwrap()
                .require(Role::Operator, "rollback")
                .is_ok()
        );
        assert_eq!(a.authenticate(Some("Bearer nope")), Err(AuthError::Unknown));
        assert_eq!(a.authenticate(None), Err(AuthError::Missing));
    }

    #[test]
    fn agents_may_only_speak_for_their_context() {
        let a = Authenticator::from_config(&cfg()).unwrap();
        assert!(a.authenticate_agent("east", "a-east").is_ok());
        let err = a.authenticate_agent("west", "a-east").unwrap_err().to_string();
        assert!(
            err.contains("\"west\"") && err.contains("only speak for its own context"),
            "{err}"
        );
        assert!(a.authenticate_agent("north", "a-east").is_err());
    }

    #[test]
    fn no_tokens_is_refused_unless_anonymous_is_explicit() {
        let err = Authenticator::from_config(&AuthConfig::default()).unwrap_err();
        assert!(err.contains("allow_anonymous"), "{err}");
        let a = Authenticator::from_config(&AuthConfig {
            allow_anonymous: true,
            ..AuthConfig::default()
        })
        .unwrap();
        assert_eq!(a.authenticate(None).unwrap().role, Role::Admin);
    }

    #[test]
    fn config_errors_name_the_entry_and_never_the_token() {
        let c: AuthConfig = serde_yaml::from_str("tokens:\n- {name: ci, role: deployer}\n").unwrap();
        let err = Authenticator::from_config(&c).unwrap_err();
        assert!(err.contains("auth.tokens[0] (ci)"), "{err}");
        let c: AuthConfig = serde_yaml::from_str(
            "tokens:\n- {name: a, role: admin, token: s3cret}\n- {name: b, role: viewer, token: s3cret}\n",
        )
        .unwrap();
        let err = Authenticator::from_config(&c).unwrap_err();
        assert!(err.contains("twice") && !err.contains("s3cret"), "{err}");
    }
}

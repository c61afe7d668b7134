//! Authentication and authorization: bearer tokens and verified client certificates
//! mapped to principals with roles, and per-context agent credentials. Checked at the
//! gRPC edge; the core receives a [`Principal`] and never sees a token or a certificate.
//!
//! A call is authenticated by, in order: its bearer token when it sends one; else the
//! client certificate the TLS layer verified against `tls.client_ca_file`, when
//! `auth.certificates` maps any; else `anonymous` (development only) or refused.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;

use crate::core::ContextInfo;

mod cert;
mod scope;

pub use cert::{CertIdentity, CertificateMapping, CertificateRule, compile as compile_certificates};
pub use scope::{Scope, glob};

/// What a caller may do. Ordered: each role includes the ones below it.
///
/// Not `Deserialize`: the config holds roles as text and checks them with
/// [`Role::from_config`], because serde's own error for an unknown variant reaches the
/// operator garbled by the `config` crate ("enum Role does not have variant constructor
/// root for key auth.tokens[0]role").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
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
    /// Every role, lowest first.
    pub const ALL: [Role; 4] = [Role::Viewer, Role::Deployer, Role::Operator, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Deployer => "deployer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    /// Reads a role as written in the config (`auth.tokens[i].role`,
    /// `auth.certificates[i].role`). The reason names the roles that exist; the caller
    /// adds the key.
    pub fn from_config(text: &str) -> Result<Role, String> {
        Role::ALL.into_iter().find(|r| r.as_str() == text).ok_or_else(|| {
            let known: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
            format!("unknown role {text:?}; expected one of {}", known.join(", "))
        })
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub role: Role,
    /// Where it may act; `None`: everywhere (an entry configured without a scope).
    pub scope: Option<Arc<Scope>>,
}

/// One API token in the config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Who holds it (`jenkins-app1`, `alice`): recorded in history and the audit log.
    pub name: String,
    /// `viewer`, `deployer`, `operator` or `admin`. Read as text and checked by
    /// [`check_tokens`], so an unknown role is reported with its key
    /// (`auth.tokens[0].role`) and the roles that exist.
    pub role: String,
    /// The token itself, or a file holding it (preferred: keeps it out of the config).
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Where the token may act (environments, contexts, namespaces, releases). Without
    /// one the token is global, as before scopes existed (logged as a warning at start).
    #[serde(default)]
    pub scope: Option<Scope>,
}

/// Checks the roles and scopes of `auth.tokens`; the error is `(key, reason)` with the
/// entry's index (`auth.tokens[0].role`), as the daemon's config validation reports.
/// Token files are not read here: that happens once, in [`Authenticator::from_config`].
pub fn check_tokens(tokens: &[TokenConfig]) -> Result<Vec<Role>, (String, String)> {
    tokens
        .iter()
        .enumerate()
        .map(|(i, t)| {
            if let Some(s) = &t.scope {
                s.validate()
                    .map_err(|reason| (format!("auth.tokens[{i}].scope"), reason))?;
            }
            Role::from_config(&t.role).map_err(|reason| (format!("auth.tokens[{i}].role"), reason))
        })
        .collect()
}

/// One warning per token or certificate entry configured without a scope: it acts on
/// the whole fleet with its role.
pub fn unscoped_warnings(cfg: &AuthConfig) -> Vec<String> {
    let tokens = cfg.tokens.iter().enumerate().filter(|(_, t)| t.scope.is_none()).map(|(i, t)| {
        format!(
            "auth.tokens[{i}] ({}) has no scope: it acts as {} on every environment, context, namespace and release",
            t.name, t.role
        )
    });
    let certs = cfg.certificates.iter().enumerate().filter(|(_, c)| c.scope.is_none()).map(|(i, c)| {
        format!(
            "auth.certificates[{i}] (CN={}) has no scope: it acts as {} on every environment, context, namespace and release",
            c.common_name, c.role
        )
    });
    tokens.chain(certs).collect()
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
    /// When set, this context's agent must also present a client certificate (verified
    /// against `tls.client_ca_file`) with exactly this subject Common Name; one Common
    /// Name belongs to one context.
    #[serde(default)]
    pub common_name: Option<String>,
}

/// One context's agent credential, checked.
#[derive(Clone)]
struct AgentCredential {
    token: String,
    common_name: Option<String>,
}

/// The `auth:` section of the daemon config.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    #[serde(default)]
    pub tokens: Vec<TokenConfig>,
    #[serde(default)]
    pub agents: Vec<AgentTokenConfig>,
    /// Client certificates (mTLS) mapped to roles, for callers such as CI agents that
    /// hold a certificate rather than a token. Needs `tls.client_ca_file`.
    #[serde(default)]
    pub certificates: Vec<CertificateMapping>,
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
    /// Outside the principal's scope: what it may do, and what was missing.
    #[error("permission denied: {0}")]
    OutOfScope(String),
    #[error("{who} has role {has}; {action} needs role {needs}")]
    Forbidden {
        who: String,
        has: &'static str,
        needs: &'static str,
        action: String,
    },
    #[error("agent credentials for context {claimed:?} refused: {why}")]
    Agent { claimed: String, why: String },
    #[error(
        "client certificate {subject:?} has no role mapping in auth.certificates, and no bearer token was sent"
    )]
    UnmappedCertificate { subject: String },
    #[error("client certificate refused: {why}")]
    BadCertificate { why: String },
}

/// Token lookups. Built once at start from the config (files read then).
#[derive(Clone)]
pub struct Authenticator {
    /// Token and principal; looked up in constant time over every entry.
    users: Vec<(String, Principal)>,
    agents: BTreeMap<String, AgentCredential>,
    certificates: Vec<CertificateRule>,
    allow_anonymous: bool,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("users", &self.users.len())
            .field("agents", &self.agents.len())
            .field("certificates", &self.certificates.len())
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
        let certificates =
            cert::compile(&cfg.certificates).map_err(|(key, reason)| format!("{key}: {reason}"))?;
        let roles = check_tokens(&cfg.tokens).map_err(|(key, reason)| format!("{key}: {reason}"))?;
        let mut users: Vec<(String, Principal)> = Vec::new();
        for (i, (t, role)) in cfg.tokens.iter().zip(roles).enumerate() {
            let tok = read_secret(&t.token, &t.token_file, &format!("auth.tokens[{i}] ({})", t.name))?;
            if users.iter().any(|(u, _)| *u == tok) {
                return Err(format!(
                    "auth.tokens[{i}] ({}): the same token is configured twice",
                    t.name
                ));
            }
            users.push((
                tok,
                Principal {
                    name: t.name.clone(),
                    role,
                    scope: t.scope.clone().map(Arc::new),
                },
            ));
        }
        let mut agents: BTreeMap<String, AgentCredential> = BTreeMap::new();
        for (i, a) in cfg.agents.iter().enumerate() {
            let tok = read_secret(
                &a.token,
                &a.token_file,
                &format!("auth.agents[{i}] ({})", a.context),
            )?;
            // An agent token speaks for exactly one context: shared with another
            // context, or with an API token, it would be more than that.
            if let Some((other, _)) = agents.iter().find(|(_, c)| c.token == tok) {
                return Err(format!(
                    "auth.agents[{i}] ({}): the same token is also context {other}'s; each agent credential is bound to exactly one context",
                    a.context
                ));
            }
            if users.iter().any(|(u, _)| *u == tok) {
                return Err(format!(
                    "auth.agents[{i}] ({}): the token is also an API token in auth.tokens; agent credentials must be their own",
                    a.context
                ));
            }
            if let Some(cn) = &a.common_name {
                if cn.trim().is_empty() {
                    return Err(format!(
                        "auth.agents[{i}] ({}): common_name must not be empty when set",
                        a.context
                    ));
                }
                if let Some((other, _)) = agents
                    .iter()
                    .find(|(_, c)| c.common_name.as_deref() == Some(cn.as_str()))
                {
                    return Err(format!(
                        "auth.agents[{i}] ({}): common_name {cn:?} is also context {other}'s; an agent certificate is bound to exactly one context",
                        a.context
                    ));
                }
            }
            let credential = AgentCredential {
                token: tok,
                common_name: a.common_name.clone(),
            };
            if agents.insert(a.context.clone(), credential).is_some() {
                return Err(format!(
                    "auth.agents[{i}]: context {} has two credentials",
                    a.context
                ));
            }
        }
        if users.is_empty() && cfg.certificates.is_empty() && !cfg.allow_anonymous {
            return Err("auth.tokens: no API tokens or client certificates configured (set auth.allow_anonymous: true for a development coordinator)".into());
        }
        Ok(Authenticator {
            users,
            agents,
            certificates,
            allow_anonymous: cfg.allow_anonymous,
        })
    }

    /// A development authenticator: everyone is an anonymous admin.
    pub fn anonymous() -> Self {
        Authenticator {
            users: Vec::new(),
            agents: BTreeMap::new(),
            certificates: Vec::new(),
            allow_anonymous: true,
        }
    }

    pub fn allows_anonymous(&self) -> bool {
        self.allow_anonymous
    }

    /// The principal of an API call: its `authorization` header value and the DER of
    /// the client certificate the TLS layer verified, if any. A bearer token decides
    /// when there is one (a token is the more specific credential: a shared CI host's
    /// certificate must not outrank the token a job brings). Otherwise a certificate
    /// decides when `auth.certificates` maps any; an unmapped one is refused, even
    /// with `allow_anonymous`, because its holder clearly meant to be someone.
    pub fn authenticate_call(
        &self,
        header: Option<&str>,
        client_cert: Option<&[u8]>,
    ) -> Result<Principal, AuthError> {
        match client_cert {
            Some(der) if bearer(header).is_none() && !self.certificates.is_empty() => {
                cert::principal(&self.certificates, &CertIdentity::from_der(der)?)
            }
            _ => self.authenticate(header),
        }
    }

    /// The principal for an `authorization` header value.
    pub fn authenticate(&self, header: Option<&str>) -> Result<Principal, AuthError> {
        match bearer(header) {
            Some(t) => {
                // Every entry is compared, each in constant time, so neither the
                // position of a match nor a common prefix shows in the timing.
                let t = t.trim().as_bytes();
                let mut found = None;
                for (tok, p) in &self.users {
                    if constant_time_eq(tok.as_bytes(), t) {
                        found = Some(p);
                    }
                }
                found.cloned().ok_or(AuthError::Unknown)
            }
            None if self.allow_anonymous => Ok(Principal {
                name: "anonymous".into(),
                role: Role::Admin,
                scope: None,
            }),
            None => Err(AuthError::Missing),
        }
    }

    /// The context whose agent token `token` is (each is bound to exactly one), compared
    /// in constant time against every agent token: lets the agent link refuse a stranger
    /// before it reads the session's first message.
    pub fn agent_context(&self, token: &str) -> Option<&str> {
        let mut found = None;
        for (context, c) in &self.agents {
            if constant_time_eq(c.token.as_bytes(), token.as_bytes()) {
                found = Some(context.as_str());
            }
        }
        found
    }

    /// Checks that an agent may speak for `context`: its token and, when the context's
    /// credential names a `common_name`, the client certificate it presented (DER).
    pub fn authenticate_agent(
        &self,
        context: &str,
        token: &str,
        client_cert: Option<&[u8]>,
    ) -> Result<(), AuthError> {
        let refuse = |why: String| AuthError::Agent {
            claimed: context.to_string(),
            why,
        };
        match self.agents.get(context) {
            Some(c) if constant_time_eq(c.token.as_bytes(), token.as_bytes()) => {
                let Some(want) = &c.common_name else {
                    return Ok(());
                };
                let Some(der) = client_cert else {
                    return Err(refuse(format!(
                        "this context's agent must present a client certificate with CN={want}; it presented none"
                    )));
                };
                let id = CertIdentity::from_der(der)?;
                if id.common_name.as_deref() == Some(want.as_str()) {
                    Ok(())
                } else {
                    Err(refuse(format!(
                        "this context's agent must present a client certificate with CN={want}; it presented {:?}",
                        id.subject
                    )))
                }
            }
            Some(_) => Err(refuse(
                "the token is not this context's (an agent may only speak for its own context)".into(),
            )),
            None if self.allow_anonymous => Ok(()),
            None => Err(refuse(
                "no agent credential is configured for this context".into(),
            )),
        }
    }
}

/// The token of a `Bearer` authorization header.
fn bearer(header: Option<&str>) -> Option<&str> {
    header.and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Principal {
    /// How refusals name the principal: `token "ci-dev"`, `certificate "cert:CN=..."`.
    pub fn describe(&self) -> String {
        if self.name.starts_with("cert:") {
            format!("certificate {:?}", self.name)
        } else {
            format!("token {:?}", self.name)
        }
    }

    /// Refuses unless `release` (in `namespace`) and every one of `contexts` lie in the
    /// principal's scope; a global principal passes. `verb` says what it was doing
    /// (`deploy to`, `view`, `roll back`): `permission denied: token "ci-dev" may deploy
    /// to environments [dev]; context prod-us-1 is env prod`.
    pub fn check_scope<'a>(
        &self,
        verb: &str,
        release: &str,
        namespace: &str,
        contexts: impl IntoIterator<Item = &'a str>,
        registry: &BTreeMap<String, ContextInfo>,
    ) -> Result<(), AuthError> {
        let Some(scope) = &self.scope else {
            return Ok(());
        };
        match scope.refusal(release, namespace, contexts, registry) {
            None => Ok(()),
            Some(why) => Err(AuthError::OutOfScope(format!(
                "{} may {verb} {why}",
                self.describe()
            ))),
        }
    }

    /// Refuses unless the principal may view release `v`: its name, namespace and every
    /// context it targets or runs in lie in the scope. What the API's release reads,
    /// and the web status page, show a scoped principal.
    pub fn may_view(
        &self,
        v: &crate::core::ReleaseView,
        registry: &BTreeMap<String, ContextInfo>,
    ) -> Result<(), AuthError> {
        let r = &v.record;
        let contexts = r
            .contexts
            .iter()
            .chain(r.deployed.keys().filter(|c| !r.contexts.contains(c)))
            .map(String::as_str);
        self.check_scope("view", &r.name, &r.namespace, contexts, registry)
    }

    /// Whether the principal may read audit entry `e`: a global principal reads every
    /// entry; a scoped one its own and those of releases it may view (`views`: every
    /// release, as [`crate::core::Coordinator::releases`] returns them).
    pub fn may_read_audit(
        &self,
        e: &crate::store::AuditEntry,
        views: &[crate::core::ReleaseView],
        registry: &BTreeMap<String, ContextInfo>,
    ) -> bool {
        self.scope.is_none()
            || e.who == self.name
            || views
                .iter()
                .any(|v| v.record.name == e.release && self.may_view(v, registry).is_ok())
    }

    /// Whether the principal may see `context` (its registry entry, its agent).
    pub fn sees_context(&self, context: &ContextInfo) -> bool {
        self.scope
            .as_ref()
            .is_none_or(|s| s.context_refusal(context).is_none())
    }

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
        assert!(a.authenticate_agent("east", "a-east", None).is_ok());
        assert_eq!(a.agent_context("a-west"), Some("west"));
        assert_eq!(a.agent_context("a-wes"), None);
        let err = a
            .authenticate_agent("west", "a-east", None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("\"west\"") && err.contains("only speak for its own context"),
            "{err}"
        );
        assert!(a.authenticate_agent("north", "a-east", None).is_err());
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

    fn client_cert(cn: &str) -> Vec<u8> {
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        p.self_signed(&rcgen::KeyPair::generate().unwrap())
            .unwrap()
            .der()
            .to_vec()
    }

    #[test]
    fn a_token_decides_else_a_mapped_certificate() {
        let mut c = cfg();
        c.certificates = serde_yaml::from_str("- {common_name: jenkins-prod, role: deployer}\n").unwrap();
        let a = Authenticator::from_config(&c).unwrap();
        let jenkins = client_cert("jenkins-prod");
        let p = a.authenticate_call(None, Some(&jenkins)).unwrap();
        assert_eq!(
            (p.name.as_str(), p.role),
            ("cert:CN=jenkins-prod", Role::Deployer)
        );
        let err = p.require(Role::Operator, "rollback").unwrap_err().to_string();
        assert!(err.contains("cert:CN=jenkins-prod has role deployer"), "{err}");
        // The token is the more specific credential and wins, also when it is wrong.
        assert_eq!(
            a.authenticate_call(Some("Bearer t-view"), Some(&jenkins))
                .unwrap()
                .role,
            Role::Viewer
        );
        assert_eq!(
            a.authenticate_call(Some("Bearer nope"), Some(&jenkins)),
            Err(AuthError::Unknown)
        );
        let err = a
            .authenticate_call(None, Some(&client_cert("laptop")))
            .unwrap_err();
        assert!(matches!(err, AuthError::UnmappedCertificate { .. }), "{err}");
        assert!(err.to_string().contains("CN=laptop") && err.to_string().contains("no role mapping"));
        assert_eq!(a.authenticate_call(None, None), Err(AuthError::Missing));
    }

    #[test]
    fn certificates_grant_nothing_without_mappings_and_anonymous_does_not_cover_unmapped_ones() {
        // No mappings: a certificate is only a transport credential, as before.
        let a = Authenticator::from_config(&cfg()).unwrap();
        assert_eq!(
            a.authenticate_call(None, Some(&client_cert("jenkins-prod"))),
            Err(AuthError::Missing)
        );
        let dev = Authenticator::from_config(&AuthConfig {
            allow_anonymous: true,
            certificates: serde_yaml::from_str("- {common_name: ci, role: viewer}\n").unwrap(),
            ..AuthConfig::default()
        })
        .unwrap();
        assert_eq!(dev.authenticate_call(None, None).unwrap().role, Role::Admin);
        assert!(matches!(
            dev.authenticate_call(None, Some(&client_cert("laptop"))),
            Err(AuthError::UnmappedCertificate { .. })
        ));
    }

    #[test]
    fn certificate_mappings_alone_are_enough_and_are_validated() {
        let only_certs = AuthConfig {
            certificates: serde_yaml::from_str("- {common_name: ci, role: viewer}\n").unwrap(),
            ..AuthConfig::default()
        };
        assert!(Authenticator::from_config(&only_certs).is_ok());
        let bad = AuthConfig {
            certificates: serde_yaml::from_str("- {common_name: '', role: viewer}\n").unwrap(),
            allow_anonymous: true,
            ..AuthConfig::default()
        };
        let err = Authenticator::from_config(&bad).unwrap_err();
        assert!(err.starts_with("auth.certificates[0].common_name: "), "{err}");
    }

    #[test]
    fn unknown_token_role_names_the_entry_and_the_roles_that_exist() {
        let c: AuthConfig = serde_yaml::from_str(
            "tokens:\n- {name: ci, role: deployer, token: t1}\n- {name: ops, role: root, token: t2}\n",
        )
        .unwrap();
        let expected = "unknown role \"root\"; expected one of viewer, deployer, operator, admin";
        assert_eq!(
            check_tokens(&c.tokens),
            Err(("auth.tokens[1].role".to_string(), expected.to_string()))
        );
        let err = Authenticator::from_config(&c).unwrap_err();
        assert_eq!(err, format!("auth.tokens[1].role: {expected}"));
        // Roles are matched exactly, as the certificates' are.
        assert!(Role::from_config("Admin").is_err());
        assert_eq!(Role::from_config("operator"), Ok(Role::Operator));
    }

    #[test]
    fn a_scoped_token_is_checked_against_releases_and_contexts() {
        let c: AuthConfig = serde_yaml::from_str(
            "tokens:\n- {name: ci-dev, role: deployer, token: t1, scope: {environments: [dev]}}\n\
             - {name: admin, role: admin, token: t2}\n",
        )
        .unwrap();
        let a = Authenticator::from_config(&c).unwrap();
        let ci = a.authenticate(Some("Bearer t1")).unwrap();
        let ctx = |name: &str, env: &str| ContextInfo {
            name: name.into(),
            region: "r".into(),
            env: env.into(),
            cloud: "c".into(),
            cluster_name: name.into(),
            labels: BTreeMap::new(),
        };
        let registry: BTreeMap<String, ContextInfo> = [ctx("dev-1", "dev"), ctx("prod-us-1", "prod")]
            .into_iter()
            .map(|c| (c.name.clone(), c))
            .collect();
        assert!(
            ci.check_scope("deploy to", "web.shop", "shop", ["dev-1"], &registry)
                .is_ok()
        );
        let err = ci
            .check_scope("deploy to", "web.shop", "shop", ["dev-1", "prod-us-1"], &registry)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "permission denied: token \"ci-dev\" may deploy to environments [dev]; context prod-us-1 is env prod"
        );
        assert!(ci.sees_context(&registry["dev-1"]) && !ci.sees_context(&registry["prod-us-1"]));
        let admin = a.authenticate(Some("Bearer t2")).unwrap();
        assert!(admin.scope.is_none());
        assert!(
            admin
                .check_scope("deploy to", "x.y", "y", ["prod-us-1", "gone"], &registry)
                .is_ok()
        );
        assert_eq!(unscoped_warnings(&c).len(), 1);
    }

    #[test]
    fn tokens_match_exactly_and_agent_tokens_are_unique() {
        let a = Authenticator::from_config(&cfg()).unwrap();
        for near in ["Bearer t-vie", "Bearer t-vieww", "Bearer ", "Bearer T-VIEW"] {
            assert_eq!(a.authenticate(Some(near)), Err(AuthError::Unknown), "{near}");
        }
        let shared: AuthConfig = serde_yaml::from_str(
            "tokens:\n- {name: a, role: admin, token: t}\nagents:\n- {context: east, token: s}\n- {context: west, token: s}\n",
        )
        .unwrap();
        let err = Authenticator::from_config(&shared).unwrap_err();
        assert!(
            err.contains("auth.agents[1] (west)")
                && err.contains("also context east's")
                && !err.contains(" s "),
            "{err}"
        );
        let api: AuthConfig = serde_yaml::from_str(
            "tokens:\n- {name: a, role: admin, token: t}\nagents:\n- {context: east, token: t}\n",
        )
        .unwrap();
        let err = Authenticator::from_config(&api).unwrap_err();
        assert!(err.contains("also an API token"), "{err}");
    }

    #[test]
    fn an_agent_certificate_is_bound_to_one_context() {
        let c: AuthConfig = serde_yaml::from_str(
            "tokens:\n- {name: a, role: admin, token: t}\nagents:\n- {context: east, token: a-east, common_name: agent-east}\n- {context: west, token: a-west}\n",
        )
        .unwrap();
        let a = Authenticator::from_config(&c).unwrap();
        let east = client_cert("agent-east");
        assert!(a.authenticate_agent("east", "a-east", Some(&east)).is_ok());
        let err = a
            .authenticate_agent("east", "a-east", None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("must present a client certificate with CN=agent-east; it presented none"),
            "{err}"
        );
        let err = a
            .authenticate_agent("east", "a-east", Some(&client_cert("agent-west")))
            .unwrap_err()
            .to_string();
        assert!(err.contains("it presented \"CN=agent-west\""), "{err}");
        assert!(
            a.authenticate_agent("west", "a-west", None).is_ok(),
            "no common_name: token only"
        );
        let twice: AuthConfig = serde_yaml::from_str(
            "tokens:\n- {name: a, role: admin, token: t}\nagents:\n- {context: east, token: e, common_name: agent}\n- {context: west, token: w, common_name: agent}\n",
        )
        .unwrap();
        let err = Authenticator::from_config(&twice).unwrap_err();
        assert!(
            err.contains("auth.agents[1] (west)") && err.contains("also context east's"),
            "{err}"
        );
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

//! Client certificates (mTLS) as credentials: which verified certificate acts with
//! which role. The TLS layer has already checked the chain against
//! `tls.client_ca_file` before anything here runs; this module only reads the
//! identity out of the leaf certificate and looks it up in `auth.certificates`.
//!
//! Matching is deliberately narrow and exact: the subject's Common Name, and
//! optionally a DNS or URI subject alternative name the certificate must also carry.
//! No wildcards and no patterns, so what a mapping grants is visible in the config.

use serde::Deserialize;
use x509_parser::extensions::GeneralName;

use std::sync::Arc;

use super::{AuthError, Principal, Role, Scope};

/// One `auth.certificates` entry: a verified client certificate matching it acts with
/// `role`. As written in the config; [`compile`] checks it into a [`CertificateRule`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateMapping {
    /// The certificate subject's Common Name, matched exactly (`jenkins-prod`).
    pub common_name: String,
    /// When set, the certificate must also carry this DNS subject alternative name
    /// (compared without regard to ASCII case, as DNS names are).
    #[serde(default)]
    pub dns_name: Option<String>,
    /// When set, the certificate must also carry this URI subject alternative name,
    /// exactly (a SPIFFE ID such as `spiffe://ci.example.com/jenkins/prod`).
    #[serde(default)]
    pub uri: Option<String>,
    /// `viewer`, `deployer`, `operator` or `admin`. Read as text and checked by
    /// [`compile`], so an unknown role is reported with its key
    /// (`auth.certificates[1].role`) and the roles that exist.
    pub role: String,
    /// Where the certificate may act; without one it is global (see `Scope`).
    #[serde(default)]
    pub scope: Option<Scope>,
}

/// A checked `auth.certificates` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateRule {
    pub common_name: String,
    pub dns_name: Option<String>,
    pub uri: Option<String>,
    pub role: Role,
    pub scope: Option<Arc<Scope>>,
}

impl CertificateRule {
    /// The principal name recorded in history and the audit log: `cert:` and the
    /// selector, so two entries for the same Common Name stay distinguishable.
    pub fn principal_name(&self) -> String {
        let mut name = format!("cert:CN={}", self.common_name);
        if let Some(d) = &self.dns_name {
            name.push_str(&format!(",DNS={d}"));
        }
        if let Some(u) = &self.uri {
            name.push_str(&format!(",URI={u}"));
        }
        name
    }

    fn matches(&self, id: &CertIdentity) -> bool {
        id.common_name.as_deref() == Some(self.common_name.as_str())
            && self
                .dns_name
                .as_ref()
                .is_none_or(|want| id.dns_names.iter().any(|d| d.eq_ignore_ascii_case(want)))
            && self
                .uri
                .as_ref()
                .is_none_or(|want| id.uris.iter().any(|u| u == want))
    }
}

/// Checks `auth.certificates` into rules; the error is `(key, reason)` with the entry's
/// index (`auth.certificates[1].common_name`), as the daemon's config validation reports.
pub fn compile(mappings: &[CertificateMapping]) -> Result<Vec<CertificateRule>, (String, String)> {
    let key = |i: usize, field: &str| format!("auth.certificates[{i}].{field}");
    let mut rules: Vec<CertificateRule> = Vec::with_capacity(mappings.len());
    for (i, m) in mappings.iter().enumerate() {
        if m.common_name.trim().is_empty() {
            return Err((
                key(i, "common_name"),
                "must not be empty: the subject Common Name the client certificate carries".into(),
            ));
        }
        if m.common_name.trim() != m.common_name {
            return Err((
                key(i, "common_name"),
                format!(
                    "{:?} has leading or trailing spaces; it is matched exactly",
                    m.common_name
                ),
            ));
        }
        for (field, value) in [("dns_name", &m.dns_name), ("uri", &m.uri)] {
            if value.as_ref().is_some_and(|v| v.trim().is_empty()) {
                return Err((
                    key(i, field),
                    "must not be empty when set (omit it instead)".into(),
                ));
            }
        }
        let role = Role::from_config(&m.role).map_err(|reason| (key(i, "role"), reason))?;
        if let Some(s) = &m.scope {
            s.validate().map_err(|reason| (key(i, "scope"), reason))?;
        }
        let rule = CertificateRule {
            common_name: m.common_name.clone(),
            dns_name: m.dns_name.clone(),
            uri: m.uri.clone(),
            role,
            scope: m.scope.clone().map(Arc::new),
        };
        if let Some(j) = rules.iter().position(|o| {
            (&o.common_name, &o.dns_name, &o.uri) == (&rule.common_name, &rule.dns_name, &rule.uri)
        }) {
            return Err((
                key(i, "common_name"),
                format!(
                    "{} is already mapped by auth.certificates[{j}]; one certificate identity has one role",
                    rule.principal_name()
                ),
            ));
        }
        rules.push(rule);
    }
    Ok(rules)
}

/// What the mapping reads from a verified client certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertIdentity {
    /// The whole subject as text (`CN=jenkins-prod, O=ci`), for messages.
    pub subject: String,
    /// The subject's Common Name; `None` when it has none.
    pub common_name: Option<String>,
    pub dns_names: Vec<String>,
    pub uris: Vec<String>,
}

impl CertIdentity {
    /// Reads the identity out of a DER certificate. A subject with several Common
    /// Names is refused rather than guessed at: which one a mapping should match is
    /// ambiguous, and picking one could grant a role nobody meant to grant.
    pub fn from_der(der: &[u8]) -> Result<Self, AuthError> {
        let bad = |why: String| AuthError::BadCertificate { why };
        let (_, cert) = x509_parser::parse_x509_certificate(der)
            .map_err(|e| bad(format!("not a valid X.509 certificate: {e}")))?;
        let subject = cert.subject().to_string();
        let mut names = cert.subject().iter_common_name();
        let common_name = match (names.next(), names.next()) {
            (None, _) => None,
            (Some(cn), None) => Some(
                cn.as_str()
                    .map_err(|e| bad(format!("subject {subject:?}: the Common Name is not text: {e}")))?
                    .to_string(),
            ),
            (Some(_), Some(_)) => {
                return Err(bad(format!(
                    "subject {subject:?} has more than one Common Name; certificates are matched on exactly one"
                )));
            }
        };
        let mut id = CertIdentity {
            subject,
            common_name,
            dns_names: Vec::new(),
            uris: Vec::new(),
        };
        let san = cert.subject_alternative_name().map_err(|e| {
            bad(format!(
                "subject {:?}: unreadable subjectAltName: {e}",
                id.subject
            ))
        })?;
        for name in san.iter().flat_map(|s| &s.value.general_names) {
            match name {
                GeneralName::DNSName(d) => id.dns_names.push((*d).to_string()),
                GeneralName::URI(u) => id.uris.push((*u).to_string()),
                _ => {}
            }
        }
        Ok(id)
    }
}

/// The principal of the first mapping `id` matches, in config order.
pub fn principal(rules: &[CertificateRule], id: &CertIdentity) -> Result<Principal, AuthError> {
    rules
        .iter()
        .find(|m| m.matches(id))
        .map(|m| Principal {
            name: m.principal_name(),
            role: m.role,
            scope: m.scope.clone(),
        })
        .ok_or_else(|| AuthError::UnmappedCertificate {
            subject: id.subject.clone(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DnType, KeyPair, SanType};

    fn mappings(yaml: &str) -> Vec<CertificateMapping> {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn rules(yaml: &str) -> Vec<CertificateRule> {
        compile(&mappings(yaml)).unwrap()
    }

    fn der(cn: &str, dns: &[&str], uris: &[&str]) -> Vec<u8> {
        let mut p = CertificateParams::new(dns.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.distinguished_name.push(DnType::OrganizationName, "ci");
        for u in uris {
            p.subject_alt_names.push(SanType::URI((*u).try_into().unwrap()));
        }
        p.self_signed(&KeyPair::generate().unwrap())
            .unwrap()
            .der()
            .to_vec()
    }

    #[test]
    fn identity_is_read_from_the_certificate() {
        let id = CertIdentity::from_der(&der(
            "jenkins-prod",
            &["ci.example.com"],
            &["spiffe://example.com/jenkins"],
        ))
        .unwrap();
        assert_eq!(id.common_name.as_deref(), Some("jenkins-prod"));
        assert_eq!(id.dns_names, ["ci.example.com"]);
        assert_eq!(id.uris, ["spiffe://example.com/jenkins"]);
        assert!(
            id.subject.contains("CN=jenkins-prod") && id.subject.contains("O=ci"),
            "{}",
            id.subject
        );
    }

    #[test]
    fn several_common_names_or_garbage_are_refused() {
        // rcgen keeps one value per attribute type, so turn the organization (`O`,
        // OID 2.5.4.10) into a second Common Name (2.5.4.3) in the encoding. That breaks
        // the signature, which is the TLS layer's business, not this parser's.
        let mut two_cns = der("a", &[], &[]);
        let o = [0x06, 0x03, 0x55, 0x04, 0x0a];
        // Self-signed: the issuer (encoded first) names it too; patch both.
        let at: Vec<usize> = two_cns
            .windows(5)
            .enumerate()
            .filter(|(_, w)| *w == o)
            .map(|(i, _)| i)
            .collect();
        assert_eq!(at.len(), 2, "issuer and subject each name the organization");
        for i in at {
            two_cns[i + 4] = 0x03;
        }
        let err = CertIdentity::from_der(&two_cns).unwrap_err().to_string();
        assert!(err.contains("more than one Common Name"), "{err}");
        let err = CertIdentity::from_der(b"not a certificate").unwrap_err();
        assert!(matches!(err, AuthError::BadCertificate { .. }), "{err}");
    }

    #[test]
    fn common_name_matches_exactly_and_sans_narrow_it() {
        let m = rules(
            "- {common_name: jenkins, dns_name: CI.example.com, role: operator}\n\
             - {common_name: jenkins, role: deployer}\n\
             - {common_name: spiffe, uri: 'spiffe://example.com/a', role: viewer}\n",
        );
        let with_dns = CertIdentity::from_der(&der("jenkins", &["ci.example.com"], &[])).unwrap();
        let p = principal(&m, &with_dns).unwrap();
        assert_eq!(
            (p.name.as_str(), p.role),
            ("cert:CN=jenkins,DNS=CI.example.com", Role::Operator)
        );
        let plain = CertIdentity::from_der(&der("jenkins", &[], &[])).unwrap();
        let p = principal(&m, &plain).unwrap();
        assert_eq!((p.name.as_str(), p.role), ("cert:CN=jenkins", Role::Deployer));
        // Exact: no prefix, no case folding of the Common Name.
        for cn in ["jenkins-prod", "Jenkins", "jenkin"] {
            let id = CertIdentity::from_der(&der(cn, &[], &[])).unwrap();
            let err = principal(&m, &id).unwrap_err().to_string();
            assert!(
                err.contains(&format!("CN={cn}")) && err.contains("no role mapping"),
                "{err}"
            );
        }
        let wrong_uri = CertIdentity::from_der(&der("spiffe", &[], &["spiffe://example.com/b"])).unwrap();
        assert!(principal(&m, &wrong_uri).is_err());
        let right_uri = CertIdentity::from_der(&der("spiffe", &[], &["spiffe://example.com/a"])).unwrap();
        assert_eq!(principal(&m, &right_uri).unwrap().role, Role::Viewer);
    }

    #[test]
    fn validation_names_the_entry_and_field() {
        let ok = "- {common_name: a, role: viewer}\n";
        let cases = [
            (
                "- {common_name: '', role: viewer}\n",
                "auth.certificates[1].common_name",
                "empty",
            ),
            (
                "- {common_name: ' a', role: viewer}\n",
                "auth.certificates[1].common_name",
                "spaces",
            ),
            (
                "- {common_name: b, dns_name: '', role: viewer}\n",
                "auth.certificates[1].dns_name",
                "empty",
            ),
            (
                "- {common_name: b, uri: ' ', role: viewer}\n",
                "auth.certificates[1].uri",
                "empty",
            ),
            (
                "- {common_name: a, role: admin}\n",
                "auth.certificates[1].common_name",
                "auth.certificates[0]",
            ),
            (
                "- {common_name: b, role: root}\n",
                "auth.certificates[1].role",
                "unknown role \"root\"; expected one of viewer, deployer, operator, admin",
            ),
        ];
        for (second, key, why) in cases {
            let (k, reason) = compile(&mappings(&format!("{ok}{second}"))).unwrap_err();
            assert_eq!(k, key, "{second}");
            assert!(reason.contains(why), "{second}: {reason}");
        }
        let both = rules(&format!("{ok}- {{common_name: a, dns_name: x, role: admin}}\n"));
        assert_eq!(both[1].role, Role::Admin);
    }
}

//! Scopes: what part of the fleet a token or certificate may act on, in the spirit of
//! Argo CD projects. A principal has a role (what it may do) and, optionally, a scope
//! (where): environments, contexts (by name pattern, region and labels), namespaces and
//! release-name patterns. Every dimension that is set must match; one left out does not
//! restrict. A principal without a scope is global (today's meaning).
//!
//! A release is in a principal's scope when its name and namespace match and *every*
//! context it targets (or, for a rollback of some contexts, every context it touches)
//! matches. A refusal names the dimension that was missing:
//! `token "ci-dev" may deploy to environments [dev]; context prod-us-1 is env prod`.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::core::ContextInfo;

/// `scope:` of an `auth.tokens` or `auth.certificates` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scope {
    /// The registry `env` of every context (`[dev, staging]`).
    #[serde(default)]
    pub environments: Vec<String>,
    /// Context names; `*` matches any run of characters (`[dev-*, canary-eu-1]`).
    #[serde(default)]
    pub contexts: Vec<String>,
    /// The registry `region` of every context.
    #[serde(default)]
    pub regions: Vec<String>,
    /// Labels every context must carry, with these values (`{team: payments}`).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Release namespaces; `*` patterns as for contexts.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Release names (`app.namespace`); `*` patterns (`[web.*, api.shop]`).
    #[serde(default)]
    pub releases: Vec<String>,
}

/// `*` matches any run of characters (also none); everything else matches itself.
pub fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

fn list(items: &[String]) -> String {
    format!("[{}]", items.join(", "))
}

impl Scope {
    /// Checks the section as written; the reason names the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.environments.is_empty()
            && self.contexts.is_empty()
            && self.regions.is_empty()
            && self.labels.is_empty()
            && self.namespaces.is_empty()
            && self.releases.is_empty()
        {
            return Err(
                "an empty scope restricts nothing; leave `scope` out for a global principal, or set environments, contexts, regions, labels, namespaces or releases".into(),
            );
        }
        for (field, items) in [
            ("environments", &self.environments),
            ("contexts", &self.contexts),
            ("regions", &self.regions),
            ("namespaces", &self.namespaces),
            ("releases", &self.releases),
        ] {
            if items.iter().any(|i| i.trim().is_empty()) {
                return Err(format!("{field}: entries must not be empty"));
            }
        }
        if self.labels.iter().any(|(k, _)| k.trim().is_empty()) {
            return Err("labels: keys must not be empty".into());
        }
        Ok(())
    }

    /// Why `release` (in `namespace`) is outside the scope, after "may <verb> ".
    pub fn release_refusal(&self, release: &str, namespace: &str) -> Option<String> {
        if !self.namespaces.is_empty() && !self.namespaces.iter().any(|p| glob(p, namespace)) {
            return Some(format!(
                "namespaces {}; release {release} is in namespace {namespace}",
                list(&self.namespaces)
            ));
        }
        if !self.releases.is_empty() && !self.releases.iter().any(|p| glob(p, release)) {
            return Some(format!(
                "releases {}; release {release} is not one of them",
                list(&self.releases)
            ));
        }
        None
    }

    /// Why `context` is outside the scope, after "may <verb> ".
    pub fn context_refusal(&self, context: &ContextInfo) -> Option<String> {
        let name = &context.name;
        if !self.environments.is_empty() && !self.environments.contains(&context.env) {
            return Some(format!(
                "environments {}; context {name} is env {}",
                list(&self.environments),
                context.env
            ));
        }
        if !self.contexts.is_empty() && !self.contexts.iter().any(|p| glob(p, name)) {
            return Some(format!(
                "contexts {}; context {name} is not one of them",
                list(&self.contexts)
            ));
        }
        if !self.regions.is_empty() && !self.regions.contains(&context.region) {
            return Some(format!(
                "regions {}; context {name} is in region {}",
                list(&self.regions),
                context.region
            ));
        }
        for (k, v) in &self.labels {
            match context.labels.get(k) {
                Some(have) if have == v => {}
                Some(have) => {
                    return Some(format!(
                        "contexts labelled {k}={v}; context {name} has {k}={have}"
                    ));
                }
                None => {
                    return Some(format!(
                        "contexts labelled {k}={v}; context {name} has no label {k}"
                    ));
                }
            }
        }
        None
    }

    /// Why the scope refuses a release and the contexts it touches (looked up in
    /// `registry`; one missing there is refused, as nothing says where it is).
    pub fn refusal<'a>(
        &self,
        release: &str,
        namespace: &str,
        contexts: impl IntoIterator<Item = &'a str>,
        registry: &BTreeMap<String, ContextInfo>,
    ) -> Option<String> {
        if let Some(r) = self.release_refusal(release, namespace) {
            return Some(r);
        }
        for c in contexts {
            match registry.get(c) {
                Some(info) => {
                    if let Some(r) = self.context_refusal(info) {
                        return Some(r);
                    }
                }
                None => {
                    return Some(format!("known contexts only; context {c} is not in the registry"));
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(name: &str, env: &str, region: &str, labels: &[(&str, &str)]) -> ContextInfo {
        ContextInfo {
            name: name.into(),
            region: region.into(),
            env: env.into(),
            cloud: "gcp".into(),
            cluster_name: name.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn registry() -> BTreeMap<String, ContextInfo> {
        [
            ctx("dev-eu-1", "dev", "europe-west1", &[("team", "payments")]),
            ctx("dev-us-1", "dev", "us-east1", &[("team", "search")]),
            ctx("prod-us-1", "prod", "us-east1", &[("team", "payments")]),
        ]
        .into_iter()
        .map(|c| (c.name.clone(), c))
        .collect()
    }

    fn scope(yaml: &str) -> Scope {
        let s: Scope = serde_yaml::from_str(yaml).unwrap();
        s.validate().unwrap();
        s
    }

    #[test]
    fn glob_matches_stars_only() {
        assert!(glob("dev-*", "dev-eu-1"));
        assert!(glob("*", ""));
        assert!(glob("web.*", "web.shop"));
        assert!(glob("*-eu-*", "dev-eu-1"));
        assert!(glob("a*b*c", "abc"));
        assert!(!glob("a*b*c", "acb"));
        assert!(!glob("dev-*", "prod-dev-1"));
        assert!(!glob("dev", "dev-eu-1"));
        assert!(!glob("ab*ba", "aba"), "the prefix and suffix may not overlap");
        assert!(glob("web.shop", "web.shop"));
    }

    #[test]
    fn environments_name_the_context_and_its_env() {
        let s = scope("environments: [dev]\n");
        let reg = registry();
        assert_eq!(
            s.refusal("web.shop", "shop", ["dev-eu-1", "dev-us-1"], &reg),
            None
        );
        assert_eq!(
            s.refusal("web.shop", "shop", ["dev-eu-1", "prod-us-1"], &reg)
                .as_deref(),
            Some("environments [dev]; context prod-us-1 is env prod")
        );
    }

    #[test]
    fn context_patterns_regions_and_labels() {
        let reg = registry();
        let by_name = scope("contexts: ['dev-*']\n");
        assert_eq!(by_name.refusal("a.b", "b", ["dev-us-1"], &reg), None);
        assert_eq!(
            by_name.refusal("a.b", "b", ["prod-us-1"], &reg).as_deref(),
            Some("contexts [dev-*]; context prod-us-1 is not one of them")
        );
        let by_region = scope("regions: [us-east1]\n");
        assert_eq!(
            by_region.refusal("a.b", "b", ["dev-eu-1"], &reg).as_deref(),
            Some("regions [us-east1]; context dev-eu-1 is in region europe-west1")
        );
        let by_label = scope("labels: {team: payments}\n");
        assert_eq!(
            by_label.refusal("a.b", "b", ["dev-eu-1", "prod-us-1"], &reg),
            None
        );
        assert_eq!(
            by_label.refusal("a.b", "b", ["dev-us-1"], &reg).as_deref(),
            Some("contexts labelled team=payments; context dev-us-1 has team=search")
        );
        let missing = scope("labels: {tier: gold}\n");
        assert_eq!(
            missing.refusal("a.b", "b", ["dev-us-1"], &reg).as_deref(),
            Some("contexts labelled tier=gold; context dev-us-1 has no label tier")
        );
    }

    #[test]
    fn namespaces_and_release_patterns() {
        let reg = registry();
        let s = scope("namespaces: [shop, 'pay-*']\nreleases: ['web.*', 'api.pay-eu']\n");
        assert_eq!(s.refusal("web.shop", "shop", ["dev-eu-1"], &reg), None);
        assert_eq!(s.refusal("api.pay-eu", "pay-eu", [], &reg), None);
        assert_eq!(
            s.refusal("web.other", "other", ["dev-eu-1"], &reg).as_deref(),
            Some("namespaces [shop, pay-*]; release web.other is in namespace other")
        );
        assert_eq!(
            s.refusal("api.shop", "shop", ["dev-eu-1"], &reg).as_deref(),
            Some("releases [web.*, api.pay-eu]; release api.shop is not one of them")
        );
    }

    #[test]
    fn every_dimension_must_hold_and_unknown_contexts_are_refused() {
        let reg = registry();
        let s = scope("environments: [dev]\nregions: [europe-west1]\nnamespaces: [shop]\n");
        assert_eq!(s.refusal("web.shop", "shop", ["dev-eu-1"], &reg), None);
        assert!(s.refusal("web.shop", "shop", ["dev-us-1"], &reg).is_some());
        assert!(s.refusal("web.x", "x", ["dev-eu-1"], &reg).is_some());
        assert_eq!(
            s.refusal("web.shop", "shop", ["gone-1"], &reg).as_deref(),
            Some("known contexts only; context gone-1 is not in the registry")
        );
    }

    #[test]
    fn an_empty_scope_or_empty_entries_are_refused() {
        let empty: Scope = serde_yaml::from_str("{}").unwrap();
        assert!(empty.validate().unwrap_err().contains("leave `scope` out"));
        let blank: Scope = serde_yaml::from_str("namespaces: ['']").unwrap();
        assert!(blank.validate().unwrap_err().starts_with("namespaces:"));
        assert!(
            serde_yaml::from_str::<Scope>("envs: [dev]").is_err(),
            "unknown keys"
        );
    }
}

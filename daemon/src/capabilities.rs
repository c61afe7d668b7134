//! Rendering each context against its own cluster.
//!
//! A context's render depends on more than the release: on the cluster (Helm's
//! `.Capabilities`: its Kubernetes version and the API versions it serves, which agents
//! report in their hello) and on the release's history there (`.Release.IsInstall`,
//! `.IsUpgrade`, `.Revision`). [`RenderFacts`] is that dependency for one context; the
//! core computes it from what it knows ([`FactsSource`]), the preparer renders with it,
//! and the revision records it ([`crate::model::RenderRecord`]) so that a re-render after
//! a restart gives what the first render gave.
//!
//! ```text
//! agent hello ──capabilities──▶ core (latest per context, stored by digest)
//! submit ──▶ preparer ──facts(release, contexts)──▶ core ──▶ RenderFacts per context
//!                     ──render──▶ Prepared (+ the facts used) ──▶ revision N records them
//! queued op starts ──▶ facts changed since? (history, cluster) ──▶ rendered again first
//! ```

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// What one cluster's API server serves, as its agent's discovery found it. Compared
/// (and stored) by its digest.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "CapabilitiesData", into = "CapabilitiesData")]
pub struct ClusterCapabilities {
    data: CapabilitiesData,
    digest: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct CapabilitiesData {
    kube_version: String,
    api_versions: Vec<String>,
}

impl ClusterCapabilities {
    /// `kube_version` as Kubernetes reports it (`v1.20.2`, `v1.21.3-gke.100`); the API
    /// versions are kept sorted and without duplicates. A version Helm could not parse
    /// is refused (it would fail every render of the context).
    pub fn new(kube_version: &str, api_versions: impl IntoIterator<Item = String>) -> Result<Self, String> {
        if convoy_chart::metadata::parse_lenient_version(kube_version.trim()).is_none() {
            return Err(format!("{kube_version:?} is not a Kubernetes version"));
        }
        let mut api_versions: Vec<String> = api_versions.into_iter().filter(|a| !a.is_empty()).collect();
        api_versions.sort_unstable();
        api_versions.dedup();
        let data = CapabilitiesData {
            kube_version: kube_version.trim().to_string(),
            api_versions,
        };
        let digest = digest(&data);
        Ok(ClusterCapabilities { data, digest })
    }

    /// `v1.20.2`.
    pub fn kube_version(&self) -> &str {
        &self.data.kube_version
    }

    /// Every `group/version` and `group/version/Kind`, sorted.
    pub fn api_versions(&self) -> &[String] {
        &self.data.api_versions
    }

    /// `sha256:...` over the version and the list.
    pub fn digest(&self) -> &str {
        &self.digest
    }
}

impl PartialEq for ClusterCapabilities {
    fn eq(&self, other: &Self) -> bool {
        self.digest == other.digest
    }
}

impl Eq for ClusterCapabilities {}

impl TryFrom<CapabilitiesData> for ClusterCapabilities {
    type Error = String;

    fn try_from(d: CapabilitiesData) -> Result<Self, String> {
        ClusterCapabilities::new(&d.kube_version, d.api_versions)
    }
}

impl From<ClusterCapabilities> for CapabilitiesData {
    fn from(c: ClusterCapabilities) -> Self {
        c.data
    }
}

fn digest(d: &CapabilitiesData) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(d.kube_version.as_bytes());
    for a in &d.api_versions {
        h.update([0]);
        h.update(a.as_bytes());
    }
    format!("sha256:{:x}", h.finalize())
}

/// What one context's render is made with besides the release and its values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RenderFacts {
    /// The cluster's `.Capabilities`; None: Helm's defaults (Kubernetes v1.20.0 and
    /// Helm's default API versions), for a context whose agent never reported any.
    pub capabilities: Option<Arc<ClusterCapabilities>>,
    /// `.Release.Revision`: 1 for a first install, else the revision's number.
    pub revision: u64,
    /// `.Release.IsUpgrade` (else `.Release.IsInstall`): the release has history there.
    pub is_upgrade: bool,
}

impl RenderFacts {
    /// The facts of revision `number` in a context where the release has history
    /// (`upgrade`) or not: Helm's numbering, an install is revision 1.
    pub fn of_revision(number: u64, upgrade: bool, capabilities: Option<Arc<ClusterCapabilities>>) -> Self {
        RenderFacts {
            capabilities,
            revision: if upgrade { number } else { 1 },
            is_upgrade: upgrade,
        }
    }

    /// What the release crate renders with.
    pub fn env(&self) -> convoy_release::RenderEnv<'_> {
        convoy_release::RenderEnv {
            revision: self.revision,
            is_upgrade: self.is_upgrade,
            kube_version: self.capabilities.as_ref().map(|c| c.kube_version()),
            api_versions: self.capabilities.as_ref().map(|c| c.api_versions()),
            limits: convoy_release::RenderLimits::default(),
        }
    }

    /// `.Capabilities.KubeVersion.Version` as the chart sees it.
    pub fn kube_version(&self) -> &str {
        self.capabilities
            .as_ref()
            .map_or(convoy_chart::DEFAULT_KUBE_VERSION, |c| c.kube_version())
    }
}

pub type FactsFuture<'a> = Pin<Box<dyn Future<Output = BTreeMap<String, RenderFacts>> + Send + 'a>>;

/// Where a preparer learns each target context's [`RenderFacts`]. A context it leaves
/// out renders as a first install with Helm's defaults (what `helm template` assumes).
pub trait FactsSource: Send + Sync {
    fn facts<'a>(&'a self, release: &'a str, contexts: &'a [String]) -> FactsFuture<'a>;
}

/// Fixed facts: a recorded revision's, for rendering it again.
impl FactsSource for BTreeMap<String, RenderFacts> {
    fn facts<'a>(&'a self, _release: &'a str, contexts: &'a [String]) -> FactsFuture<'a> {
        let out = contexts
            .iter()
            .filter_map(|c| self.get(c).map(|f| (c.clone(), f.clone())))
            .collect();
        Box::pin(std::future::ready(out))
    }
}

/// No cluster and no history: every context a first install with Helm's defaults.
#[derive(Debug, Clone, Copy, Default)]
pub struct HelmDefaults;

impl FactsSource for HelmDefaults {
    fn facts<'a>(&'a self, _release: &'a str, _contexts: &'a [String]) -> FactsFuture<'a> {
        Box::pin(std::future::ready(BTreeMap::new()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_are_normalised_and_compared_by_digest() {
        let a = ClusterCapabilities::new(
            "v1.20.2",
            ["v1/Pod", "v1", "policy/v1beta1", "v1"].map(String::from),
        )
        .unwrap();
        let b = ClusterCapabilities::new("v1.20.2", ["policy/v1beta1", "v1", "v1/Pod"].map(String::from))
            .unwrap();
        assert_eq!(a.api_versions(), ["policy/v1beta1", "v1", "v1/Pod"]);
        assert_eq!(a, b);
        assert!(a.digest().starts_with("sha256:"));
        let newer = ClusterCapabilities::new("v1.21.0", ["v1", "v1/Pod"].map(String::from)).unwrap();
        assert_ne!(a, newer);
        assert!(ClusterCapabilities::new("not-a-version", Vec::new()).is_err());
        // Stored as the data only, and read back to the same digest.
        let json = serde_json::to_string(&a).unwrap();
        assert!(!json.contains("sha256"), "{json}");
        let back: ClusterCapabilities = serde_json::from_str(&json).unwrap();
        assert_eq!(back.digest(), a.digest());
    }

    #[test]
    fn a_first_install_is_revision_one_and_an_upgrade_the_revision_number() {
        let install = RenderFacts::of_revision(7, false, None);
        assert_eq!((install.revision, install.is_upgrade), (1, false));
        assert_eq!(install.kube_version(), "v1.20.0");
        let upgrade = RenderFacts::of_revision(7, true, None);
        assert_eq!((upgrade.revision, upgrade.is_upgrade), (7, true));
        let env = upgrade.env();
        assert_eq!(
            (env.kube_version, env.api_versions),
            (None, None),
            "Helm's defaults"
        );
    }

    /// The simulated agents report Helm's default version, so a simulated cluster renders
    /// as `helm template` does (the API list is one constant in convoy-common).
    #[test]
    fn the_simulated_clusters_report_helms_default_version() {
        assert_eq!(
            convoy_agent::sim::DEFAULT_SIM_KUBE_VERSION,
            convoy_chart::DEFAULT_KUBE_VERSION
        );
    }
}

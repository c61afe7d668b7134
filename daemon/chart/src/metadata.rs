//! `Chart.yaml`: parsing and Helm's metadata validation.

use serde::Deserialize;
use serde_json::{Map, Value as Json};

use crate::error::{ChartError, Result};

/// One entry of `dependencies:` in Chart.yaml (or requirements.yaml for v1 charts).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct Dependency {
    /// The subchart's chart name.
    pub name: String,
    /// A semver range the subchart's version must satisfy.
    #[serde(deserialize_with = "scalar_string")]
    pub version: String,
    /// Where `helm dependency build` would fetch it from.
    pub repository: String,
    /// Comma-separated value paths; the first boolean one decides if the subchart is enabled.
    pub condition: String,
    /// Tags; `tags.<tag>` values enable or disable the subchart.
    pub tags: Vec<String>,
    /// Computed: whether the subchart is rendered.
    pub enabled: bool,
    /// Values to copy from the subchart into the parent.
    #[serde(rename = "import-values")]
    pub import_values: Vec<Json>,
    /// The name the subchart is rendered under.
    pub alias: String,
}

/// A maintainer entry.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct Maintainer {
    /// Name.
    pub name: String,
    /// Email.
    pub email: String,
    /// URL.
    pub url: String,
}

/// Chart.yaml's fields, as Helm's `chart.Metadata`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct Metadata {
    /// The chart's name.
    pub name: String,
    /// Project home page.
    pub home: String,
    /// Source URLs.
    pub sources: Vec<String>,
    /// The chart's SemVer version.
    #[serde(deserialize_with = "scalar_string")]
    pub version: String,
    /// One-line description.
    pub description: String,
    /// Search keywords.
    pub keywords: Vec<String>,
    /// Maintainers.
    pub maintainers: Vec<Maintainer>,
    /// Icon URL.
    pub icon: String,
    /// `v1` or `v2`.
    pub api_version: String,
    /// Unused by Helm 3 (kept for `.Chart.Condition`).
    pub condition: String,
    /// Unused by Helm 3 (kept for `.Chart.Tags`).
    pub tags: String,
    /// The version of the packaged application.
    #[serde(deserialize_with = "scalar_string")]
    pub app_version: String,
    /// Whether the chart is deprecated.
    pub deprecated: bool,
    /// Free-form annotations.
    pub annotations: std::collections::BTreeMap<String, String>,
    /// A SemVer range of supported Kubernetes versions.
    pub kube_version: String,
    /// Declared dependencies.
    pub dependencies: Vec<Dependency>,
    /// `application` (default) or `library`.
    #[serde(rename = "type")]
    pub chart_type: String,
}

fn scalar_string<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<String, D::Error> {
    let v = Json::deserialize(d)?;
    Ok(match v {
        Json::Null => String::new(),
        Json::String(s) => s,
        Json::Number(n) => n.to_string(),
        Json::Bool(b) => b.to_string(),
        other => {
            return Err(serde::de::Error::custom(format!(
                "expected a string, found {other}"
            )));
        }
    })
}

impl Metadata {
    /// Parses Chart.yaml (`file` names it in errors).
    pub fn parse(src: &str, file: &str) -> Result<Metadata> {
        let json = crate::values::yaml_to_json(src, file)?;
        if json.is_null() {
            return Err(ChartError::Metadata(format!(
                "{file}: chart.metadata is required"
            )));
        }
        serde_json::from_value(json).map_err(|e| ChartError::Metadata(format!("{file}: {e}")))
    }

    /// Helm's `Metadata.Validate`: the checks `helm template` runs before rendering.
    pub fn validate(&self) -> Result<()> {
        let fail = |m: String| Err(ChartError::Metadata(m));
        if self.api_version.is_empty() {
            return fail("chart.metadata.apiVersion is required".into());
        }
        if self.name.is_empty() {
            return fail("chart.metadata.name is required".into());
        }
        if self.name.contains('/') || self.name.contains('\\') || self.name == "." || self.name == ".." {
            return fail(format!("chart.metadata.name {:?} is invalid", self.name));
        }
        if self.version.is_empty() {
            return fail("chart.metadata.version is required".into());
        }
        if !is_valid_semver(&self.version) {
            return fail(format!("chart.metadata.version {:?} is invalid", self.version));
        }
        if !matches!(self.chart_type.as_str(), "" | "application" | "library") {
            return fail("chart.metadata.type must be application or library".into());
        }
        let mut seen = std::collections::BTreeSet::new();
        for d in &self.dependencies {
            if d.name.is_empty() {
                return fail("dependencies must have a name".into());
            }
            if !d.alias.is_empty()
                && !d
                    .alias
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return fail(format!(
                    "dependency {:?} has disallowed characters in the alias",
                    d.name
                ));
            }
            let key = if d.alias.is_empty() { &d.name } else { &d.alias };
            if !seen.insert(key.clone()) {
                return fail(format!("more than one dependency with name or alias {key:?}"));
            }
        }
        Ok(())
    }

    /// Whether this is a library chart (renders nothing itself).
    pub fn is_library(&self) -> bool {
        self.chart_type == "library"
    }

    /// The `.Chart` object templates see: Go's exported field names, zero values for
    /// unset fields (so `{{ .Chart.AppVersion }}` prints nothing rather than failing).
    pub fn to_template_object(&self, is_root: bool) -> Json {
        let strings = |v: &[String]| Json::Array(v.iter().cloned().map(Json::String).collect());
        let mut m = Map::new();
        m.insert("Name".into(), self.name.clone().into());
        m.insert("Home".into(), self.home.clone().into());
        m.insert("Sources".into(), strings(&self.sources));
        m.insert("Version".into(), self.version.clone().into());
        m.insert("Description".into(), self.description.clone().into());
        m.insert("Keywords".into(), strings(&self.keywords));
        m.insert(
            "Maintainers".into(),
            Json::Array(
                self.maintainers
                    .iter()
                    .map(|x| serde_json::json!({"Name": x.name, "Email": x.email, "URL": x.url}))
                    .collect(),
            ),
        );
        m.insert("Icon".into(), self.icon.clone().into());
        m.insert("APIVersion".into(), self.api_version.clone().into());
        m.insert("Condition".into(), self.condition.clone().into());
        m.insert("Tags".into(), self.tags.clone().into());
        m.insert("AppVersion".into(), self.app_version.clone().into());
        m.insert("Deprecated".into(), self.deprecated.into());
        m.insert(
            "Annotations".into(),
            Json::Object(
                self.annotations
                    .iter()
                    .map(|(k, v)| (k.clone(), Json::String(v.clone())))
                    .collect(),
            ),
        );
        m.insert("KubeVersion".into(), self.kube_version.clone().into());
        m.insert(
            "Dependencies".into(),
            Json::Array(
                self.dependencies
                    .iter()
                    .map(|d| {
                        serde_json::json!({
                            "Name": d.name, "Version": d.version, "Repository": d.repository,
                            "Condition": d.condition, "Tags": d.tags, "Enabled": d.enabled,
                            "ImportValues": d.import_values, "Alias": d.alias,
                        })
                    })
                    .collect(),
            ),
        );
        m.insert("Type".into(), self.chart_type.clone().into());
        m.insert("IsRoot".into(), is_root.into());
        Json::Object(m)
    }
}

/// Masterminds/semver's lenient `NewVersion`: `v` prefix, one to three numeric parts,
/// optional pre-release and build metadata.
pub fn is_valid_semver(v: &str) -> bool {
    parse_lenient_version(v).is_some()
}

/// Parses a lenient SemVer string into a strict `semver::Version` (`1.2` -> `1.2.0`).
pub fn parse_lenient_version(v: &str) -> Option<semver::Version> {
    let v = v.strip_prefix('v').unwrap_or(v);
    let (core, rest) = match v.find(['-', '+']) {
        Some(i) => (&v[..i], &v[i..]),
        None => (v, ""),
    };
    let parts: Vec<&str> = core.split('.').collect();
    if parts.is_empty()
        || parts.len() > 3
        || parts
            .iter()
            .any(|p| p.is_empty() || !p.chars().all(|c| c.is_ascii_digit()))
    {
        return None;
    }
    let mut nums = parts.iter().map(|p| p.parse::<u64>().ok());
    let major = nums.next()??;
    let minor = nums.next().unwrap_or(Some(0))?;
    let patch = nums.next().unwrap_or(Some(0))?;
    semver::Version::parse(&format!("{major}.{minor}.{patch}{rest}")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_type_is_rejected_with_helms_message() {
        let md = Metadata::parse(
            "apiVersion: v1\nname: x\nversion: 0.1.0\ntype: Library\n",
            "Chart.yaml",
        )
        .unwrap();
        assert_eq!(
            md.validate().unwrap_err().to_string(),
            "validation: chart.metadata.type must be application or library"
        );
    }

    #[test]
    fn missing_fields_are_named() {
        let md = Metadata::parse("apiVersion: v2\nversion: 1.0.0\n", "Chart.yaml").unwrap();
        assert!(
            md.validate()
                .unwrap_err()
                .to_string()
                .contains("chart.metadata.name is required")
        );
        let md = Metadata::parse("apiVersion: v2\nname: a\nversion: one\n", "Chart.yaml").unwrap();
        assert!(
            md.validate()
                .unwrap_err()
                .to_string()
                .contains("\"one\" is invalid")
        );
    }

    #[test]
    fn lenient_versions() {
        assert_eq!(parse_lenient_version("v1.2").unwrap().to_string(), "1.2.0");
        assert_eq!(
            parse_lenient_version("1.2.3-rc.1+b").unwrap().to_string(),
            "1.2.3-rc.1+b"
        );
        assert!(parse_lenient_version("1.2.3.4").is_none());
    }

    #[test]
    fn numeric_versions_and_chart_object() {
        let md = Metadata::parse(
            "apiVersion: v2\nname: a\nversion: 1.0\nappVersion: 2\n",
            "Chart.yaml",
        )
        .unwrap();
        let o = md.to_template_object(true);
        assert_eq!(o["AppVersion"], "2");
        assert_eq!(o["IsRoot"], true);
        assert_eq!(o["Type"], "");
    }
}

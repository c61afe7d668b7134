//! The one error type of the chart engine.
//!
//! Every variant names what the user has to look at (a file, a template, a value path, a
//! URL) and what was expected, so a failing `convoy template` can be fixed without a
//! debugger. Template failures keep Helm's own wording (`template: NAME:LINE:COL:
//! executing ...`, `execution error at (...)`, `parse error at (...)`) because users search
//! for those messages.

use std::path::PathBuf;

/// Everything that can go wrong while loading, rendering or fetching a chart.
#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    /// A file or directory could not be read.
    #[error("reading {path}: {source}")]
    Io {
        /// What we tried to read.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// `Chart.yaml` is missing, malformed or fails Helm's metadata validation.
    #[error("validation: {0}")]
    Metadata(String),
    /// A chart archive (`.tgz`) could not be unpacked or has an unexpected layout.
    #[error("chart archive {name}: {message}")]
    Archive {
        /// The archive's name or path.
        name: String,
        /// What is wrong with it.
        message: String,
    },
    /// A values document (values.yaml, a `-f` file, `--set-file`) is not a YAML map.
    #[error("{file}: {message}")]
    Values {
        /// Where the values came from.
        file: String,
        /// What is wrong with them.
        message: String,
    },
    /// A `--set` style expression could not be parsed.
    #[error("failed parsing --set data {expr:?}: {message}")]
    SetValue {
        /// The offending expression.
        expr: String,
        /// What was expected.
        message: String,
    },
    /// A dependency declared in Chart.yaml is not present in charts/.
    #[error(
        "an error occurred while checking for chart dependencies: found in Chart.yaml, but missing in charts/ directory: {0}"
    )]
    MissingDependency(String),
    /// The coalesced values do not satisfy a chart's values.schema.json.
    #[error("values don't meet the specifications of the schema(s) in the following chart(s):\n{0}")]
    Schema(String),
    /// A template failed to parse; the message follows Helm's `parse error at (FILE:LINE): ...`.
    #[error("{0}")]
    TemplateParse(String),
    /// A template failed while executing; the message follows Helm's format.
    #[error("{0}")]
    TemplateExec(String),
    /// A rendered document is not valid YAML (Helm: "YAML parse error on ...").
    #[error("YAML parse error on {source_name}: {message}")]
    RenderedYaml {
        /// The template that produced the document.
        source_name: String,
        /// The parser's complaint.
        message: String,
        /// Everything that was rendered, so `--debug` can show it.
        rendered: String,
    },
    /// A rendered manifest cannot become the JSON Helm would send to Kubernetes
    /// (`.inf`, a null map key, a YAML syntax error, ...). The message says what and on which
    /// line; the caller adds the template it came from.
    #[error("{0}")]
    ManifestJson(String),
    /// `--show-only` named a template that the chart does not render.
    #[error("could not find template {0} in chart")]
    ShowOnlyMissing(String),
    /// The chart cannot be rendered on its own (a library chart).
    #[error("validation: chart {0} is a library chart: library charts are not installable")]
    NotInstallable(String),
    /// A chart repository request failed or returned something unusable.
    #[error("chart repository {url}: {message}")]
    Repo {
        /// The URL involved (credentials are never part of it).
        url: String,
        /// What went wrong.
        message: String,
    },
    /// Bad caller input that fits no other variant (an invalid release name, kube version, ...).
    #[error("{0}")]
    Invalid(String),
}

/// The crate's result alias.
pub type Result<T, E = ChartError> = std::result::Result<T, E>;

impl ChartError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ChartError::Io {
            path: path.into(),
            source,
        }
    }
}

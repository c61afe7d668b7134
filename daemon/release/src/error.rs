//! The crate's one error type, and the positioned diagnostics it carries.

use std::fmt;
use std::path::PathBuf;

use crate::yaml::Pos;

/// One problem in a file: where it is, which field, and what was expected.
///
/// Displays as `FILE:LINE:COL: FIELD: MESSAGE`, the form editors and CI logs link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: String,
    pub pos: Pos,
    /// The field path, `spec.contexts[1]`; empty for the document itself.
    pub path: String,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.pos)?;
        if !self.path.is_empty() {
            write!(f, ": {}", self.path)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem found in one pass, so a user fixes them all at once instead of one per run.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

/// Why a release or registry could not be loaded, validated or rendered.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    /// A file could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file parsed badly or failed validation; one line per problem.
    #[error("{0}")]
    Invalid(Diagnostics),
    /// The chart failed to render for one context.
    #[error("context {context}: rendering the chart failed: {source}")]
    Render {
        context: String,
        #[source]
        source: convoy_chart::ChartError,
    },
    /// A rendered manifest could not be re-read (to apply scaling to it).
    #[error("context {context}: rendered {source_path}: {message}")]
    Manifest {
        context: String,
        source_path: String,
        message: String,
    },
}

impl ReleaseError {
    /// The diagnostics, if this is a validation error.
    pub fn diagnostics(&self) -> Option<&[Diagnostic]> {
        match self {
            ReleaseError::Invalid(d) => Some(&d.0),
            _ => None,
        }
    }
}

/// The crate's result type.
pub type Result<T, E = ReleaseError> = std::result::Result<T, E>;

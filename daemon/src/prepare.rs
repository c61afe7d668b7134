//! Turning a submit into something the orchestrator can roll out: parse and validate
//! the release, resolve every context's secrets, render every context. All of it
//! happens before any cluster is touched; any failure fails the submit whole.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::capabilities::{FactsSource, RenderFacts};
use crate::model::{Plan, SecretVersion};
use crate::store::SubmitInputs;

/// A rendered object for one context. May hold secret values: Debug prints only the
/// source and size, and nothing here is ever stored.
#[derive(Clone, PartialEq, Eq)]
pub struct RenderedManifest {
    pub source: String,
    pub content: String,
}

impl std::fmt::Debug for RenderedManifest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "RenderedManifest({}, {} bytes)",
            self.source,
            self.content.len()
        )
    }
}

/// The release's identity from its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseMeta {
    /// `app.namespace`.
    pub name: String,
    pub namespace: String,
    pub environment: String,
}

/// Apply options from the release file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyOptions {
    pub force_roll: bool,
    pub adopt: bool,
    pub force_conflicts: bool,
    /// Let the agent prune more than its share of the release's objects, or all of them.
    pub allow_mass_deletion: bool,
}

/// A submit, validated, resolved and rendered for every target context.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub meta: ReleaseMeta,
    pub plan: Plan,
    /// Per target context, its objects. Contexts whose renders wrote the same objects
    /// share one list (and an apply command takes another reference, not a copy).
    pub manifests: BTreeMap<String, Arc<Vec<RenderedManifest>>>,
    /// Per target context with any, its Helm hooks (run by the agent around the apply),
    /// shared like `manifests`.
    pub hooks: BTreeMap<String, Arc<Vec<RenderedManifest>>>,
    pub chart_name: String,
    pub chart_version: String,
    /// sha256 of the merged values without secrets.
    pub values_digest: String,
    /// The workloads' images, for the revision's history.
    pub images: Vec<crate::model::WorkloadImage>,
    /// The submitted values (secrets masked), for the revision's history.
    pub values: crate::model::ValuesRecord,
    pub secret_versions: Vec<SecretVersion>,
    pub options: ApplyOptions,
    /// The resolved secret values, only to hide them where they would otherwise show
    /// (a diff's field values). Never stored.
    pub masker: convoy_release::mask::Masker,
    /// Per target context, what its render was made with besides the release: the
    /// cluster's capabilities (or Helm's defaults) and install or upgrade.
    pub facts: BTreeMap<String, RenderFacts>,
}

/// Why a submit could not be prepared. Messages name the file, field, context, secret
/// path and key as relevant; never a secret value.
///
/// The variants carry finished messages rather than source errors on purpose: every
/// message goes through the secret masker ([`crate::pipeline::mask_error`]) before it
/// leaves the pipeline, and a source error (a render error quoting a template's
/// output, a Vault response) would carry its text past the masker.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrepareError {
    /// The release file (or a values file) is invalid: one line per problem.
    #[error("{0}")]
    Invalid(String),
    /// A secret could not be resolved.
    #[error("{0}")]
    Secrets(String),
    /// Vault did not answer (unreachable, sealed, a server error): the same request may
    /// succeed later.
    #[error("{0}")]
    SecretsUnavailable(String),
    /// The chart could not be loaded or rendered for a context.
    #[error("{0}")]
    Render(String),
    /// The chart's repository or registry could not be read (down, refused the
    /// coordinator's credentials, no such chart or version). Names the source.
    #[error("{0}")]
    Source(String),
    /// The release asks for something the coordinator's policy forbids (a Vault path
    /// outside its environment's and namespace's prefixes). Refused before any read.
    #[error("permission denied: {0}")]
    Denied(String),
}

/// What a submit targets, read from its release file before any secret is resolved or
/// anything rendered: what authorization is decided on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preview {
    pub meta: ReleaseMeta,
    /// The target contexts.
    pub contexts: Vec<String>,
    pub options: ApplyOptions,
}

pub type FetchFuture<'a> =
    Pin<Box<dyn Future<Output = Result<crate::sources::Fetched, PrepareError>> + Send + 'a>>;

pub type PrepareFuture<'a> = Pin<Box<dyn Future<Output = Result<Prepared, PrepareError>> + Send + 'a>>;

/// Prepares submits. The production implementation parses with `convoy-release`,
/// resolves with `convoy-secrets` and renders with `convoy-chart`; tests and the
/// simulated demo may supply their own.
pub trait Preparer: Send + Sync + 'static {
    /// `pinned`: secret versions to read (when re-rendering a recorded revision after
    /// a restart), so the re-render ships exactly what the revision recorded. `facts`:
    /// what each target context renders with besides the release (its cluster, the
    /// release's history there), asked once the release's name and targets are known.
    fn prepare<'a>(
        &'a self,
        inputs: &'a SubmitInputs,
        pinned: Option<&'a [SecretVersion]>,
        facts: &'a dyn FactsSource,
    ) -> PrepareFuture<'a>;

    /// Parses and validates the release file only: its name, namespace, environment
    /// (from its contexts' registry entries), targets and options. Cheap, reads no
    /// secret: the coordinator authorizes on it before [`Preparer::prepare`].
    fn preview(&self, inputs: &SubmitInputs) -> Result<Preview, PrepareError>;

    /// Fetches what the release names elsewhere: its chart when it lives in a chart
    /// repository, OCI registry or git repository (none for a chart the submit
    /// carries), and its `spec.valuesFrom` files. Called once per submit or diff, after
    /// authorization; what it returns is kept with the revision, so a re-render never
    /// calls it again.
    fn fetch_sources<'a>(&'a self, inputs: &'a SubmitInputs) -> FetchFuture<'a> {
        let _ = inputs;
        Box::pin(async { Ok(crate::sources::Fetched::default()) })
    }
}

//! convoy-release: the release file, the context registry, and what each target context
//! receives.
//!
//! ```text
//! release.yaml --parse--> Release --validate(Registry)--> ok
//!                            |
//!                            +--plan_secrets--> [SecretRequest] --(convoy-secrets: Vault)--> values
//!                            |
//!   per context: context_values(Release, Context, secrets) --chart render--> scaling --> RenderedContext
//! ```
//!
//! Every parse and validation error carries `file:line:col`, the field path and what was
//! expected ([`Diagnostic`]); nothing panics on any input (see `fuzz/` and the malformed
//! corpus test). `README.md` is the release-file reference.
#![forbid(unsafe_code)]

mod consistency;
mod de;
pub mod duration;
mod error;
pub mod mask;
mod model;
mod parse;
mod registry;
mod render;
mod sections;
mod validate;
mod values;
pub mod yaml;

pub use de::did_you_mean;
pub use error::{Diagnostic, Diagnostics, ReleaseError, Result};
pub use model::*;
pub use parse::parse_values_text;
pub use registry::{Context, Registry};
pub use render::{
    Manifest, RenderEnv, RenderLimits, RenderedContext, Renderer, render_context, render_context_in,
    render_context_with,
};
pub use sections::{
    DEFAULT_ANALYSIS_INTERVAL, DEFAULT_APPROVAL_DEADLINE, DEFAULT_MIN_READY_WINDOW,
    DEFAULT_OFFLINE_AGENT_DEADLINE, DEFAULT_PROGRESS_DEADLINE, DEFAULT_WEBHOOK_RETRIES,
    DEFAULT_WEBHOOK_TIMEOUT, MAX_REPLICAS,
};
pub use values::{
    SecretRequest, ValueChange, context_values, merge, own_context_values, plan_secrets, record_changes,
    release_values, value_changes, values_digest,
};
pub use yaml::Pos;

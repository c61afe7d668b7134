//! convoy-chart: renders Helm charts natively (no `helm` binary).
//!
//! ```text
//! Chart::load(dir | .tgz) ──┐
//! repo::fetch(url, range) ──┴─> Chart ──render(values, RenderOptions)──> Rendered
//!                                                                        └─ to_helm_output()
//! ```
//!
//! What `helm template` does, in the same order and with the same observable results:
//! dependency processing (conditions, tags, aliases, import-values), values coalescing
//! (`null` deletes, globals flow down), `values.schema.json`, Go templates with sprig and
//! Helm's functions (see [`funcs`] and the engine module), document splitting, hooks, kind
//! ordering, CRDs, `--show-only`. `strvals` parses `--set`; `repo` fetches charts from
//! HTTP chart repositories. [`RenderMemo`] renders one chart for many value sets (a
//! fleet's contexts), sharing the output of renders that cannot differ.
#![forbid(unsafe_code)]

mod chart;
mod coalesce;
pub mod constraint;
mod deps;
mod engine;
mod error;
pub mod funcs;
mod glob;
mod ignore;
mod manifest;
mod manifest_json;
mod memo;
pub mod metadata;
mod render;
pub mod repo;
mod schema;
pub mod strvals;
pub mod template_cmd;
pub mod tmpl;
pub mod values;

pub use chart::{Chart, ChartFile, LoadLimits, package_dir, package_files, unpack_archive};
pub use convoy_common::INSTALL_ORDER;
pub use engine::objects::DEFAULT_API_VERSIONS;
pub use error::{ChartError, Result};
pub use manifest::{Rendered, RenderedManifest, split_manifests};
pub use manifest_json::{manifest_documents_to_json, manifest_to_json};
pub use memo::{MemoCounts, RenderMemo};
pub use render::{DEFAULT_KUBE_VERSION, RenderOptions, StrTemplate, render, render_str};
pub use template_cmd::TemplateRequest;

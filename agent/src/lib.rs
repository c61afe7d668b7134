//! convoy-agent: one per cluster. Dials the coordinator, applies rendered revisions
//! with server-side apply, judges rollout health against the new revision only, keeps
//! revision history in the cluster, and rolls back. Also a simulated cluster backend.
#![forbid(unsafe_code)]

pub mod backend;
pub mod bluegreen;
pub mod canary;
pub mod config;
pub mod diff;
pub mod hooks;
pub mod kube;
pub mod mask;
pub mod runtime;
pub mod sim;
pub mod telemetry;

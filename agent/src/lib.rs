//! convoy-agent: one per cluster. Dials the coordinator, applies rendered revisions
//! with server-side apply, judges rollout health against the new revision only, keeps
//! revision history in the cluster, and rolls back. Also a simulated cluster backend.
#![forbid(unsafe_code)]

pub mod backend;
pub mod config;
mod layered_config;
pub mod sim;

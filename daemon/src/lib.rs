//! convoyd, the coordinator: reads release declarations, resolves secrets, renders
//! charts per context, records revisions and orchestrates rollouts across the agents
//! of every target cluster.
#![forbid(unsafe_code)]

pub mod api;
pub mod auth;
pub mod capabilities;
pub mod config;
pub mod core;
pub mod deployed;
pub mod diff;
pub mod gates;
pub mod http;
pub mod link;
pub mod model;
pub mod notify;
pub mod orchestrator;
pub mod pipeline;
pub mod prepare;
pub mod server;
/// Chart sources: the `convoy-sources` crate (shared with the CLI).
pub use convoy_sources as sources;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod ui;

//! convoyd, the coordinator: reads release declarations, resolves secrets, renders
//! charts per context, records revisions and orchestrates rollouts across the agents
//! of every target cluster.
#![forbid(unsafe_code)]

pub mod config;
mod layered_config;
pub mod server;
pub mod telemetry;

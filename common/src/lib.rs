//! What the coordinator, the agent and the chart engine must agree on, written once.

pub mod install_order;
pub mod layered_config;

pub use install_order::INSTALL_ORDER;

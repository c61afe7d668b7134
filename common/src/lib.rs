//! What the coordinator, the agent and the chart engine must agree on, written once.

pub mod install_order;
pub mod layered_config;

pub use install_order::INSTALL_ORDER;

/// The content type of `/metrics` (the coordinator's and the agent's): the OpenMetrics
/// text format `prometheus-client` writes, which Prometheus negotiates and parses.
pub const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

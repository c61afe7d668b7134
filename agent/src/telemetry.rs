//! Logging: `tracing` with an `EnvFilter` (`RUST_LOG`, default `info`), as pretty
//! lines for people or JSON for log collectors. Manifest contents and tokens are never
//! logged anywhere in the agent; this module only decides the format.

use tracing_subscriber::EnvFilter;

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("log_format: expected `pretty` or `json`, got {0:?}")]
    Format(String),
    #[error("RUST_LOG: {0}")]
    Filter(String),
    #[error("a global tracing subscriber is already installed")]
    AlreadySet,
}

/// Installs the global subscriber. `format` is `pretty` or `json`.
pub fn init(format: &str) -> Result<(), TelemetryError> {
    let filter = match std::env::var(EnvFilter::DEFAULT_ENV) {
        Ok(v) if !v.trim().is_empty() => {
            EnvFilter::try_new(&v).map_err(|e| TelemetryError::Filter(e.to_string()))?
        }
        _ => EnvFilter::new("info"),
    };
    // Logs on stderr: stdout stays for what a command prints (`--check-config`).
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr);
    match format {
        "pretty" => builder.try_init(),
        "json" => builder.json().flatten_event(true).try_init(),
        other => return Err(TelemetryError::Format(other.to_string())),
    }
    .map_err(|_| TelemetryError::AlreadySet)
}

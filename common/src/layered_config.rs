//! A file plus `PREFIX__KEY` environment overrides, deserialized by the `config` crate.

use std::path::Path;

use serde::de::DeserializeOwned;

/// Loads `path` (YAML or TOML by extension) under environment overrides named
/// `{prefix}__{key}` (`__` also separates nested keys) and deserializes into `T`.
/// The error is the `config` crate's message, which names the offending key.
pub fn load<T: DeserializeOwned>(
    path: Option<&Path>,
    prefix: &str,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<T, String> {
    let vars: config::Map<String, String> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with(&format!("{prefix}__")))
        .collect();
    let mut builder = config::Config::builder();
    if let Some(p) = path {
        builder = builder.add_source(config::File::from(p).required(true));
    }
    let environment = config::Environment::with_prefix(prefix)
        .prefix_separator("__")
        .separator("__")
        .try_parsing(true)
        .source(Some(vars));
    builder
        .add_source(environment)
        .build()
        .and_then(|c| c.try_deserialize())
        .map_err(|e| e.to_string())
}

//! convoy-release: the release file model and the context registry.
#![forbid(unsafe_code)]

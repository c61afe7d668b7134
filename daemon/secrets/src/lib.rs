//! convoy-secrets: resolves release secrets from Vault for every target context.
#![forbid(unsafe_code)]

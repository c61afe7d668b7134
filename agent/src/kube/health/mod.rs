//! Rollout health: a pure verdict ([`verdict`]) fed by a thin kube adapter ([`watch`]).

pub mod verdict;
pub mod watch;

//! The simulated cluster: behaviour chosen per pod template by an annotation, shared by
//! the in-memory backend and by the test pod simulator that stands in for kubelets.

pub mod backend;
pub mod behavior;
mod objects;
mod rollout;

pub use backend::{DEFAULT_SIM_KUBE_VERSION, HELM_DEFAULT_API_VERSIONS, HookRun, SimBackend, SimConfig};

#[cfg(test)]
mod tests;

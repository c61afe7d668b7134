//! Read models for the API: a release with its contexts, and the cluster list.

use super::state::Core;
use super::{ContextInfo, CoreError};
use crate::model::{ContextState, Millis, Operation};
use crate::store::ReleaseRecord;

/// A release and where each of its contexts stands.
#[derive(Debug, Clone)]
pub struct ReleaseView {
    pub record: ReleaseRecord,
    /// The running (or next) operation, else the last one that ran.
    pub operation: Option<Operation>,
    pub running: bool,
    pub queued: u32,
    /// Per context: its state in that operation, its region, and whether its agent is connected.
    pub contexts: Vec<(ContextState, String, bool)>,
    /// The revision every context last reached healthy, 0 if none.
    pub deployed_revision: u64,
}

/// A registry context and its agent.
#[derive(Debug, Clone)]
pub struct ClusterView {
    pub info: ContextInfo,
    pub connected: bool,
    pub version: String,
    pub instance: String,
    pub backend: String,
    pub connected_at: Option<Millis>,
    pub last_seen: Option<Millis>,
    pub in_flight: u32,
    /// The Kubernetes version the cluster reported last; empty if none.
    pub kube_version: String,
}

impl Core {
    pub(super) fn release_view(&self, name: &str) -> Result<ReleaseView, CoreError> {
        let rel = self.releases.get(name).ok_or_else(|| CoreError::NotFound {
            release: name.to_string(),
        })?;
        let head = rel.queue.front().and_then(|id| self.ops.get(id));
        let running = head.is_some_and(|o| o.phase != crate::model::OperationPhase::Queued);
        let operation = if running {
            head
        } else {
            rel.last_op.as_ref().and_then(|id| self.ops.get(id)).or(head)
        }
        .cloned();
        let contexts = operation
            .as_ref()
            .map(|op| {
                op.contexts
                    .values()
                    .map(|c| {
                        let region = self
                            .registry
                            .get(&c.context)
                            .map(|i| i.region.clone())
                            .unwrap_or_default();
                        let online = self.agents.get(&c.context).is_some_and(|a| a.tx.is_some());
                        (c.clone(), region, online)
                    })
                    .collect()
            })
            .unwrap_or_default();
        let deployed: Vec<u64> = rel
            .record
            .contexts
            .iter()
            .map(|c| rel.record.deployed.get(c).copied().unwrap_or(0))
            .collect();
        let deployed_revision = if !deployed.is_empty() && deployed.iter().all(|d| *d == deployed[0]) {
            deployed[0]
        } else {
            0
        };
        Ok(ReleaseView {
            record: rel.record.clone(),
            operation,
            running,
            queued: rel.queue.len().saturating_sub(usize::from(running)) as u32,
            contexts,
            deployed_revision,
        })
    }

    pub(super) fn cluster_views(&self) -> Vec<ClusterView> {
        self.registry
            .values()
            .map(|info| {
                let a = self.agents.get(&info.name);
                ClusterView {
                    info: info.clone(),
                    connected: a.is_some_and(|a| a.tx.is_some()),
                    version: a.map(|a| a.version.clone()).unwrap_or_default(),
                    instance: a.map(|a| a.instance.clone()).unwrap_or_default(),
                    backend: a.map(|a| a.backend.clone()).unwrap_or_default(),
                    connected_at: a.map(|a| a.connected_at),
                    last_seen: a.map(|a| a.last_seen),
                    in_flight: a.map_or(0, |a| a.in_flight),
                    kube_version: self
                        .capabilities_of(&info.name)
                        .map(|c| c.kube_version().to_string())
                        .unwrap_or_default(),
                }
            })
            .collect()
    }
}

//! Diffs in flight: dry runs sent to agents outside any operation, for `DiffRelease`.
//!
//! A diff touches no release state: nothing is recorded, nothing queued, and it does not
//! wait for a running rollout (the agent runs dry runs without the release's lock). The
//! core sends one dry-run command per connected context and keeps, per (operation id,
//! context), where to deliver the answer; the API side waits with its own timeout.

use std::collections::HashMap;

use tokio::sync::oneshot;

use crate::diff::{ContextDiff, DiffOutcome};
use crate::model::Millis;

/// Operation ids of diffs start with this, so agent reports for them are told apart
/// from rollouts' before they reach the orchestrator.
pub const DIFF_PREFIX: &str = "diff-";

/// One context of a diff: answered already (no agent), or waiting for its agent.
#[derive(Debug)]
pub enum DiffWait {
    Ready(ContextDiff),
    Pending {
        context: String,
        region: String,
        answer: oneshot::Receiver<DiffOutcome>,
    },
}

/// Where agents' dry-run answers go.
pub(super) struct PendingDiffs {
    /// Unique across restarts: agents remember operation ids and replay the final event
    /// of one they have seen, so a reused id would answer with an old diff.
    id_base: String,
    next: u64,
    waiting: HashMap<(String, String), oneshot::Sender<DiffOutcome>>,
}

impl PendingDiffs {
    pub fn new(started: Millis) -> Self {
        PendingDiffs {
            id_base: format!("{DIFF_PREFIX}{started:x}"),
            next: 0,
            waiting: HashMap::new(),
        }
    }

    /// A fresh operation id for one diff (shared by its contexts).
    pub fn next_id(&mut self) -> String {
        self.next += 1;
        format!("{}-{}", self.id_base, self.next)
    }

    pub fn wait_for(&mut self, operation_id: &str, context: &str, tx: oneshot::Sender<DiffOutcome>) {
        self.waiting
            .insert((operation_id.to_string(), context.to_string()), tx);
    }

    /// An agent answered. An answer nobody waits for any more (timed out) is dropped.
    pub fn answer(&mut self, operation_id: &str, context: &str, outcome: DiffOutcome) {
        if let Some(tx) = self
            .waiting
            .remove(&(operation_id.to_string(), context.to_string()))
        {
            let _ = tx.send(outcome);
        }
    }

    /// The context's agent went away: its pending dry runs will not be answered.
    pub fn agent_lost(&mut self, context: &str) {
        let lost: Vec<(String, String)> = self
            .waiting
            .keys()
            .filter(|(_, c)| c == context)
            .cloned()
            .collect();
        for key in lost {
            if let Some(tx) = self.waiting.remove(&key) {
                let _ = tx.send(DiffOutcome::AgentOffline(
                    "the agent disconnected before answering the dry run".into(),
                ));
            }
        }
    }

    /// Forgets the diffs whose caller stopped waiting.
    pub fn sweep(&mut self) {
        self.waiting.retain(|_, tx| !tx.is_closed());
    }

    pub fn len(&self) -> usize {
        self.waiting.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_reach_their_waiter_and_lost_agents_end_theirs() {
        let mut p = PendingDiffs::new(0x1234);
        let id = p.next_id();
        assert_eq!(id, "diff-1234-1");
        assert_ne!(p.next_id(), id, "ids are not reused");
        let (tx_a, mut rx_a) = oneshot::channel();
        let (tx_b, mut rx_b) = oneshot::channel();
        p.wait_for(&id, "a", tx_a);
        p.wait_for(&id, "b", tx_b);
        p.answer(&id, "a", DiffOutcome::Done(Vec::new()));
        assert_eq!(rx_a.try_recv().ok(), Some(DiffOutcome::Done(Vec::new())));
        // An answer for another context or operation goes nowhere.
        p.answer("diff-other", "b", DiffOutcome::Done(Vec::new()));
        assert!(rx_b.try_recv().is_err());
        p.agent_lost("b");
        assert!(matches!(rx_b.try_recv(), Ok(DiffOutcome::AgentOffline(_))));
        assert_eq!(p.len(), 0);
    }

    #[test]
    fn abandoned_waits_are_swept() {
        let mut p = PendingDiffs::new(1);
        let (tx, rx) = oneshot::channel();
        p.wait_for("diff-1-1", "a", tx);
        drop(rx);
        p.sweep();
        assert_eq!(p.len(), 0);
    }
}

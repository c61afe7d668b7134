//! Events for watchers: what each change looks like on a watch stream, and
//! subscribing (see `core::watch` for the queues).

use super::*;

impl Core {
    pub(super) fn context_event(&self, op: &Operation, ctx: &str) -> Option<WatchEvent> {
        op.contexts
            .get(ctx)
            .map(|state| self.state_event(op, state.clone()))
    }

    pub(super) fn state_event(&self, op: &Operation, state: crate::model::ContextState) -> WatchEvent {
        let ctx = state.context.clone();
        WatchEvent {
            release: op.release.clone(),
            operation_id: op.id.clone(),
            revision: op.revision,
            at: state.updated_at,
            kind: WatchKind::Context {
                region: self
                    .registry
                    .get(&ctx)
                    .map(|c| c.region.clone())
                    .unwrap_or_default(),
                agent_connected: self.agents.get(&ctx).is_some_and(|a| a.tx.is_some()),
                state,
            },
        }
    }

    pub(super) fn op_event(op: &Operation) -> WatchEvent {
        WatchEvent {
            release: op.release.clone(),
            operation_id: op.id.clone(),
            revision: op.revision,
            // When the change happened: now (an operation event is pushed as it changes).
            at: now_millis(),
            kind: WatchKind::Operation(Box::new(op.clone())),
        }
    }

    pub(super) fn push_context_event(&mut self, id: &str, ctx: &str) {
        if let Some(ev) = self.ops.get(id).and_then(|op| self.context_event(op, ctx)) {
            self.events.push(ev);
        }
    }

    pub(super) fn push_context_state(&mut self, id: &str, state: crate::model::ContextState) {
        if let Some(op) = self.ops.get(id) {
            let ev = self.state_event(op, state);
            self.events.push(ev);
        }
    }

    pub(super) fn push_op_event(&mut self, id: &str) {
        if let Some(op) = self.ops.get(id) {
            self.events.push(Self::op_event(op));
        }
    }

    pub(super) fn watch(
        &mut self,
        release: &str,
    ) -> Result<(Vec<WatchEvent>, std::sync::Arc<crate::core::watch::WatchQueue>), CoreError> {
        let rel = self.releases.get(release).ok_or_else(|| CoreError::NotFound {
            release: release.to_string(),
        })?;
        let mut snapshot = Vec::new();
        let ids: Vec<String> = rel.last_op.iter().chain(rel.queue.iter()).cloned().collect();
        for id in ids {
            if let Some(op) = self.ops.get(&id) {
                snapshot.push(Self::op_event(op));
                for ctx in op.contexts.keys() {
                    snapshot.extend(self.context_event(op, ctx));
                }
            }
        }
        let rx = self.watchers.subscribe(release);
        Ok((snapshot, rx))
    }
}

//! The idempotence ledger: every command the agent has seen, by (release, revision,
//! operation id), so a command sent twice (a coordinator retrying, or resuming after a
//! restart) runs once.
//!
//! Running operations are always kept (they hold the cancel handle that `Abort` needs);
//! finished ones keep their final event for replay, the oldest evicted beyond the
//! capacity. An evicted command that arrives again would run again: the capacity is
//! sized far above what a coordinator could still be retrying.

use std::collections::{HashMap, VecDeque};

use convoy_proto::v1::AgentEvent;
use tokio_util::sync::CancellationToken;

use crate::backend::OpRef;

#[derive(Debug)]
enum Entry {
    Running(Box<Running>),
    Finished(Box<AgentEvent>),
}

#[derive(Debug)]
struct Running {
    cancel: CancellationToken,
    /// Set by `Abort`: the operation ends with `Aborted { reason }`.
    abort_reason: Option<String>,
    /// The latest non-final events, replayed with `Accepted { replay: true }`.
    applied: Option<AgentEvent>,
    progress: Option<AgentEvent>,
}

/// What to do with a command.
#[derive(Debug)]
pub enum Admission {
    /// Never seen: run it; `Abort` fires this token.
    New(CancellationToken),
    /// Already running: answer `Accepted { replay: true }` and these latest events.
    Running(Vec<AgentEvent>),
    /// Already finished: answer its final event again.
    Finished(AgentEvent),
}

/// What an `Abort` found.
#[derive(Debug)]
pub enum AbortFound {
    /// Running: cancelled now; it will end with `Aborted`.
    Cancelling,
    /// Already over: its final event.
    Finished(Box<AgentEvent>),
    /// Never seen.
    Unknown,
}

#[derive(Debug)]
pub struct Ledger {
    entries: HashMap<OpRef, Entry>,
    /// Finished operations, oldest first, for eviction.
    finished: VecDeque<OpRef>,
    capacity: usize,
}

impl Ledger {
    pub fn new(capacity: usize) -> Self {
        Ledger {
            entries: HashMap::new(),
            finished: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// Admits a command: see [`Admission`].
    pub fn admit(&mut self, op: &OpRef, parent: &CancellationToken) -> Admission {
        match self.entries.get(op) {
            Some(Entry::Finished(e)) => Admission::Finished((**e).clone()),
            Some(Entry::Running(r)) => {
                Admission::Running(r.applied.iter().chain(&r.progress).cloned().collect())
            }
            None => {
                let cancel = parent.child_token();
                self.entries.insert(
                    op.clone(),
                    Entry::Running(Box::new(Running {
                        cancel: cancel.clone(),
                        abort_reason: None,
                        applied: None,
                        progress: None,
                    })),
                );
                Admission::New(cancel)
            }
        }
    }

    /// Keeps the latest `Applied` or `Progress` event of a running operation.
    pub fn record(&mut self, op: &OpRef, event: &AgentEvent, applied: bool) {
        if let Some(Entry::Running(r)) = self.entries.get_mut(op) {
            let slot = if applied { &mut r.applied } else { &mut r.progress };
            *slot = Some(event.clone());
        }
    }

    /// Cancels a running operation (remembering why), or says how it ended.
    pub fn abort(&mut self, op: &OpRef, reason: &str) -> AbortFound {
        match self.entries.get_mut(op) {
            Some(Entry::Running(r)) => {
                r.abort_reason.get_or_insert_with(|| reason.to_string());
                r.cancel.cancel();
                AbortFound::Cancelling
            }
            Some(Entry::Finished(e)) => AbortFound::Finished(e.clone()),
            None => AbortFound::Unknown,
        }
    }

    /// Why a running operation was aborted, if it was.
    pub fn abort_reason(&self, op: &OpRef) -> Option<String> {
        match self.entries.get(op) {
            Some(Entry::Running(r)) => r.abort_reason.clone(),
            _ => None,
        }
    }

    /// Records an operation's final event (replayed if the command comes again).
    pub fn finish(&mut self, op: &OpRef, event: AgentEvent) {
        if matches!(
            self.entries.insert(op.clone(), Entry::Finished(Box::new(event))),
            Some(Entry::Finished(_))
        ) {
            self.finished.retain(|o| o != op);
        }
        self.finished.push_back(op.clone());
        while self.finished.len() > self.capacity {
            if let Some(old) = self.finished.pop_front() {
                self.entries.remove(&old);
            }
        }
    }

    /// Forgets a running operation that stopped without a final event (agent shutdown):
    /// a later identical command runs it again.
    pub fn forget(&mut self, op: &OpRef) {
        if matches!(self.entries.get(op), Some(Entry::Running(_))) {
            self.entries.remove(op);
        }
    }

    /// Operations running now, for the hello and heartbeats.
    pub fn in_flight(&self) -> Vec<OpRef> {
        let mut ops: Vec<OpRef> = self
            .entries
            .iter()
            .filter(|(_, e)| matches!(e, Entry::Running(_)))
            .map(|(o, _)| o.clone())
            .collect();
        ops.sort();
        ops
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::wire;
    use convoy_proto::v1 as pb;

    fn op(id: &str) -> OpRef {
        OpRef {
            release: "app1.ns1".into(),
            revision: 3,
            operation_id: id.into(),
        }
    }

    fn aborted(op: &OpRef) -> AgentEvent {
        wire::event(
            op,
            pb::agent_event::Event::Aborted(pb::Aborted { reason: "r".into() }),
        )
    }

    #[test]
    fn a_command_runs_once_then_replays() {
        let root = CancellationToken::new();
        let mut l = Ledger::new(10);
        let a = op("a");
        assert!(matches!(l.admit(&a, &root), Admission::New(_)));
        assert!(matches!(l.admit(&a, &root), Admission::Running(ref e) if e.is_empty()));
        let progress = wire::event(&a, pb::agent_event::Event::Progress(pb::Progress::default()));
        l.record(&a, &progress, false);
        assert!(matches!(l.admit(&a, &root), Admission::Running(ref e) if e.len() == 1));
        assert_eq!(l.in_flight(), std::slice::from_ref(&a));
        l.finish(&a, aborted(&a));
        assert!(matches!(l.admit(&a, &root), Admission::Finished(_)));
        assert!(l.in_flight().is_empty());
        // Another revision of the same release is another command.
        let mut b = a.clone();
        b.revision = 4;
        assert!(matches!(l.admit(&b, &root), Admission::New(_)));
    }

    #[test]
    fn abort_cancels_and_remembers_the_reason() {
        let root = CancellationToken::new();
        let mut l = Ledger::new(10);
        let a = op("a");
        let Admission::New(cancel) = l.admit(&a, &root) else {
            panic!("new command expected");
        };
        assert!(matches!(l.abort(&a, "operator said so"), AbortFound::Cancelling));
        assert!(cancel.is_cancelled());
        assert_eq!(l.abort_reason(&a).as_deref(), Some("operator said so"));
        assert!(matches!(l.abort(&op("nope"), "x"), AbortFound::Unknown));
    }

    #[test]
    fn finished_entries_are_bounded_and_running_ones_kept() {
        let root = CancellationToken::new();
        let mut l = Ledger::new(2);
        let running = op("running");
        let _ = l.admit(&running, &root);
        for id in ["a", "b", "c"] {
            let o = op(id);
            let _ = l.admit(&o, &root);
            l.finish(&o, aborted(&o));
        }
        assert!(
            matches!(l.admit(&op("a"), &root), Admission::New(_)),
            "oldest evicted"
        );
        assert!(matches!(l.admit(&op("c"), &root), Admission::Finished(_)));
        assert!(matches!(l.admit(&running, &root), Admission::Running(_)));
    }
}

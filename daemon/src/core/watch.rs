//! Watch streams that keep up with any fleet: each watcher has a queue in which a
//! context's newer state replaces its older one, so a slow reader (a Jenkins job on a
//! busy agent, a CLI over a slow link) gets the latest state of every context rather
//! than a backlog, and is never cut off mid-rollout.
//!
//! The core pushes every committed event into the queue of each watcher of the release
//! (one lock, O(log n)); the stream task takes everything queued whenever it is woken
//! and sends it on. Coalescing rules — the latest state wins within a phase, and a
//! phase change is never dropped:
//! - a context event replaces the queued event of the same operation, context *and
//!   phase* (progress: ready counts, messages), and moves to the end (the reader sees
//!   states in the order they last changed); a context that fails and starts rolling
//!   back in one step shows both, however late the reader;
//! - an operation event replaces a queued event of the same operation and phase (a new
//!   wave or message): a reader sees Running, RollingBack and Failed even when it reads
//!   once at the end.
//!
//! A queue therefore holds at most one event per context and phase (a rollout visits
//! a handful) and a few per operation, whatever the rate of events and however far
//! behind the reader is.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::Notify;

use super::{WatchEvent, WatchKind};

/// What an event replaces in a queue.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Slot {
    Context {
        operation: String,
        context: String,
        phase: crate::model::ContextPhase,
    },
    Operation {
        operation: String,
        phase: crate::model::OperationPhase,
    },
}

fn slot(e: &WatchEvent) -> Slot {
    match &e.kind {
        WatchKind::Context { state, .. } => Slot::Context {
            operation: e.operation_id.clone(),
            context: state.context.clone(),
            phase: state.phase,
        },
        WatchKind::Operation(op) => Slot::Operation {
            operation: e.operation_id.clone(),
            phase: op.phase,
        },
    }
}

#[derive(Default)]
struct Pending {
    next: u64,
    /// Queued events by arrival order.
    events: BTreeMap<u64, WatchEvent>,
    /// Where each slot's event sits in `events`.
    at: HashMap<Slot, u64>,
    /// Events replaced by a newer one since the queue was created.
    coalesced: u64,
}

/// One watcher's queue.
#[derive(Default)]
pub struct WatchQueue {
    pending: Mutex<Pending>,
    wake: Notify,
}

impl WatchQueue {
    fn push(&self, e: WatchEvent) {
        {
            let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            let key = slot(&e);
            let seq = p.next;
            p.next += 1;
            if let Some(old) = p.at.insert(key, seq) {
                p.events.remove(&old);
                p.coalesced += 1;
            }
            p.events.insert(seq, e);
        }
        self.wake.notify_one();
    }

    /// Everything queued, oldest first; waits when nothing is.
    pub async fn next_batch(&self) -> Vec<WatchEvent> {
        loop {
            {
                let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
                if !p.events.is_empty() {
                    p.at.clear();
                    return std::mem::take(&mut p.events).into_values().collect();
                }
            }
            self.wake.notified().await;
        }
    }

    /// How many events were replaced by newer ones before this watcher read them.
    #[cfg(test)]
    pub fn coalesced(&self) -> u64 {
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).coalesced
    }
}

/// The queues of every watcher, by release. Held by the core thread; a queue whose
/// stream has ended (its last `Arc` dropped) is forgotten at the next event.
#[derive(Default)]
pub struct Watchers {
    by_release: HashMap<String, Vec<Weak<WatchQueue>>>,
}

impl Watchers {
    /// A new queue for `release`'s events from now on.
    pub fn subscribe(&mut self, release: &str) -> Arc<WatchQueue> {
        let q = Arc::new(WatchQueue::default());
        self.by_release
            .entry(release.to_string())
            .or_default()
            .push(Arc::downgrade(&q));
        q
    }

    /// Hands `e` to every live watcher of its release.
    pub fn publish(&mut self, e: &WatchEvent) {
        let Some(queues) = self.by_release.get_mut(&e.release) else {
            return;
        };
        queues.retain(|w| match w.upgrade() {
            Some(q) => {
                q.push(e.clone());
                true
            }
            None => false,
        });
        if queues.is_empty() {
            self.by_release.remove(&e.release);
        }
    }

    /// Live watchers (for tests).
    #[cfg(test)]
    pub fn count(&self) -> usize {
        self.by_release
            .values()
            .flatten()
            .filter(|w| w.strong_count() > 0)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ContextPhase, ContextState, OperationPhase};

    fn ctx_event(op: &str, ctx: &str, phase: ContextPhase) -> WatchEvent {
        progress_event(op, ctx, phase, 0)
    }

    fn progress_event(op: &str, ctx: &str, phase: ContextPhase, ready: u32) -> WatchEvent {
        let mut state = ContextState::new(ctx, 0, None, 0);
        state.phase = phase;
        state.ready = ready;
        state.desired = 1;
        WatchEvent {
            release: "web.shop".into(),
            operation_id: op.into(),
            revision: 2,
            at: 0,
            kind: WatchKind::Context {
                state,
                region: "eu".into(),
                agent_connected: true,
            },
        }
    }

    fn op_event(op: &str, phase: OperationPhase, message: &str) -> WatchEvent {
        let plan = crate::model::Plan {
            offline_deadline: std::time::Duration::ZERO,
            progress_deadline: std::time::Duration::ZERO,
            min_ready_window: std::time::Duration::ZERO,
            ..crate::model::Plan::for_tests(&[&["a"]])
        };
        let mut o = crate::model::Operation::queued(
            op.into(),
            "web.shop".into(),
            crate::model::OperationKind::Deploy,
            2,
            plan,
            &Default::default(),
            crate::model::Requested {
                by: "t",
                reason: "",
                at: 0,
            },
        );
        o.phase = phase;
        o.message = message.into();
        WatchEvent {
            release: "web.shop".into(),
            operation_id: op.into(),
            revision: 2,
            at: 0,
            kind: WatchKind::Operation(Box::new(o)),
        }
    }

    fn describe(events: &[WatchEvent]) -> Vec<String> {
        events
            .iter()
            .map(|e| match &e.kind {
                WatchKind::Context { state, .. } if state.phase == ContextPhase::Progressing => {
                    format!("{}={:?}:{}", state.context, state.phase, state.ready)
                }
                WatchKind::Context { state, .. } => format!("{}={:?}", state.context, state.phase),
                WatchKind::Operation(op) => format!("op={:?}:{}", op.phase, op.message),
            })
            .collect()
    }

    #[tokio::test]
    async fn a_slow_reader_gets_each_contexts_latest_state_and_every_phase_change() {
        let mut w = Watchers::default();
        let q = w.subscribe("web.shop");
        w.publish(&op_event("op-1", OperationPhase::Running, "wave 1 of 1"));
        for i in 0..10_000 {
            w.publish(&ctx_event("op-1", &format!("c{i:05}"), ContextPhase::Dispatched));
        }
        for ready in [0, 1] {
            for i in 0..10_000 {
                let c = format!("c{i:05}");
                w.publish(&progress_event("op-1", &c, ContextPhase::Progressing, ready));
            }
        }
        w.publish(&ctx_event("op-1", "c00007", ContextPhase::Failed));
        w.publish(&op_event("op-1", OperationPhase::RollingBack, "rolling back"));
        w.publish(&op_event(
            "op-1",
            OperationPhase::RollingBack,
            "still rolling back",
        ));
        w.publish(&ctx_event("op-1", "c00007", ContextPhase::RolledBack));
        w.publish(&op_event("op-1", OperationPhase::Failed, "rolled back"));
        // Another release's events do not reach this watcher.
        let mut other = ctx_event("op-9", "x", ContextPhase::Healthy);
        other.release = "api.shop".into();
        w.publish(&other);

        let got = describe(&q.next_batch().await);
        // Every phase of every context once, in its latest state: Dispatched, then
        // Progressing 1/1 (0/1 was replaced); c00007 also Failed and RolledBack.
        assert_eq!(got.len(), 1 + 10_000 + 10_000 + 4, "{:?}", &got[..5]);
        assert_eq!(got[0], "op=Running:wave 1 of 1");
        assert_eq!(got[1], "c00000=Dispatched");
        assert_eq!(got[10_001], "c00000=Progressing:1");
        assert!(!got.iter().any(|e| e.ends_with("Progressing:0")));
        let tail: Vec<&str> = got[got.len() - 4..].iter().map(String::as_str).collect();
        assert_eq!(
            tail,
            [
                "c00007=Failed",
                "op=RollingBack:still rolling back",
                "c00007=RolledBack",
                "op=Failed:rolled back"
            ]
        );
        // The 10,000 progress states at 0/1 and the first RollingBack message.
        assert_eq!(q.coalesced(), 10_000 + 1);
    }

    #[tokio::test]
    async fn a_reader_is_woken_by_an_event_and_a_dropped_one_is_forgotten() {
        let mut w = Watchers::default();
        let q = w.subscribe("web.shop");
        let reader = {
            let q = q.clone();
            tokio::spawn(async move { q.next_batch().await })
        };
        tokio::task::yield_now().await;
        w.publish(&ctx_event("op-1", "a", ContextPhase::Healthy));
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), reader)
            .await
            .expect("woken")
            .unwrap();
        assert_eq!(describe(&got), ["a=Healthy"]);
        assert_eq!(w.count(), 1);
        drop(q);
        w.publish(&ctx_event("op-1", "a", ContextPhase::Failed));
        assert_eq!(w.count(), 0);
        assert!(w.by_release.is_empty());
    }
}

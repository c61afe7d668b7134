//! Where events go: onto the live session's stream when there is one, and every final
//! event also into the unacknowledged buffer until a `Welcome` says the coordinator
//! recorded it.
//!
//! A final event written to a stream is not known to be recorded (the stream may
//! break before the coordinator stores it), so it stays buffered and is offered again
//! in the next `Hello`; the coordinator's `Welcome.acknowledged` clears it. Non-final
//! events produced while disconnected are dropped: after a reconnect the hello's
//! `in_flight` says what is still running and progress resumes.

use std::collections::VecDeque;

use convoy_proto::v1::{AgentEvent, AgentMessage, agent_message::Message};
use tokio::sync::mpsc;

use crate::runtime::wire;

#[derive(Debug)]
pub struct Outbox {
    stream: Option<mpsc::Sender<AgentMessage>>,
    /// Final events not yet acknowledged, with a sequence number, oldest first.
    unacked: VecDeque<(u64, AgentEvent)>,
    next_seq: u64,
    capacity: usize,
}

/// What a new session starts from.
#[derive(Debug)]
pub struct Snapshot {
    pub unacknowledged: Vec<AgentEvent>,
    /// Events buffered from here on were not in the hello.
    pub seq: u64,
}

impl Outbox {
    pub fn new(capacity: usize) -> Self {
        Outbox {
            stream: None,
            unacked: VecDeque::new(),
            next_seq: 0,
            capacity: capacity.max(1),
        }
    }

    /// Sends an event now if connected; buffers it if final.
    pub fn emit(&mut self, event: AgentEvent) {
        if wire::is_final(&event) {
            self.unacked.push_back((self.next_seq, event.clone()));
            self.next_seq += 1;
            while self.unacked.len() > self.capacity {
                if let Some((_, dropped)) = self.unacked.pop_front() {
                    let op = dropped.op.map(|o| o.operation_id).unwrap_or_default();
                    tracing::warn!(operation = %op, "unacknowledged final event dropped: buffer full");
                }
            }
        }
        self.send(event);
    }

    /// Sends an event on the live stream only (replays of what the ledger holds).
    pub fn send(&mut self, event: AgentEvent) {
        if let Some(tx) = &self.stream {
            let msg = AgentMessage {
                message: Some(Message::Event(event)),
            };
            if tx.try_send(msg).is_err() {
                // Full or closed: the session is stuck or gone, and will reconnect;
                // final events are still buffered.
                tracing::debug!("event not sent: the session stream is full or closed");
            }
        }
    }

    /// The unacknowledged events for a new session's hello.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            unacknowledged: self.unacked.iter().map(|(_, e)| e.clone()).collect(),
            seq: self.next_seq,
        }
    }

    /// A session was welcomed: drop what the coordinator acknowledged, send the final
    /// events produced since the hello was built, and route events to `stream`.
    pub fn connect(&mut self, stream: mpsc::Sender<AgentMessage>, acknowledged: &[String], since: u64) {
        self.unacked.retain(|(_, e)| {
            let id = e.op.as_ref().map(|o| o.operation_id.as_str()).unwrap_or_default();
            !acknowledged.iter().any(|a| a == id)
        });
        self.stream = Some(stream);
        let late: Vec<AgentEvent> = self
            .unacked
            .iter()
            .filter(|(seq, _)| *seq >= since)
            .map(|(_, e)| e.clone())
            .collect();
        for e in late {
            self.send(e);
        }
    }

    pub fn disconnect(&mut self) {
        self.stream = None;
    }

    #[cfg(test)]
    pub fn unacked_len(&self) -> usize {
        self.unacked.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::OpRef;
    use convoy_proto::v1 as pb;
    use pb::agent_event::Event;

    fn ev(id: &str, final_: bool) -> AgentEvent {
        let op = OpRef {
            release: "r".into(),
            revision: 1,
            operation_id: id.into(),
        };
        let e = if final_ {
            Event::Aborted(pb::Aborted::default())
        } else {
            Event::Accepted(pb::Accepted::default())
        };
        wire::event(&op, e)
    }

    #[test]
    fn finals_are_buffered_until_acknowledged_and_late_ones_sent_on_welcome() {
        let mut o = Outbox::new(10);
        o.emit(ev("a", false));
        o.emit(ev("a", true));
        let snap = o.snapshot();
        assert_eq!(snap.unacknowledged.len(), 1);
        // Produced after the hello was built, before the welcome.
        o.emit(ev("b", true));
        let (tx, mut rx) = mpsc::channel(8);
        o.connect(tx, &["a".to_string()], snap.seq);
        assert_eq!(o.unacked_len(), 1);
        let Some(Message::Event(sent)) = rx.try_recv().unwrap().message else {
            panic!("an event expected");
        };
        assert_eq!(sent.op.unwrap().operation_id, "b");
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn the_buffer_is_bounded() {
        let mut o = Outbox::new(2);
        for id in ["a", "b", "c"] {
            o.emit(ev(id, true));
        }
        let ids: Vec<String> = o
            .snapshot()
            .unacknowledged
            .into_iter()
            .map(|e| e.op.unwrap().operation_id)
            .collect();
        assert_eq!(ids, ["b", "c"]);
    }
}

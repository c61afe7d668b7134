//! Running counts of an operation's contexts by phase, kept up to date one context at a
//! time, so that an agent's report costs the same at 10 contexts as at 10,000.
//!
//! The state machine used to answer "how many failed?", "is this wave settled?" and
//! "which contexts can start?" by walking every context on every report, which made a
//! rollout's total work grow with the square of the fleet. The tally answers them from
//! counters and small index sets instead. It is derived data: never stored, rebuilt from
//! the contexts on first use (after a restart or a clone), and fed every context change
//! the state machine announces ([`crate::orchestrator::Action::ContextChanged`]); debug
//! builds check it against a full recount after every update.

use std::collections::{BTreeSet, HashMap};

use crate::model::{ContextPhase, ContextState};

/// What the tally remembers of one context: where it sits in the plan and the phase it
/// was last counted with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    /// (wave, index in the wave); contexts outside the plan get `usize::MAX` as wave.
    at: (usize, usize),
    phase: ContextPhase,
    preflight_ok: bool,
    received: bool,
}

impl Seen {
    fn startable(self) -> bool {
        matches!(self.phase, ContextPhase::Pending | ContextPhase::WaitingForAgent)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    seen: HashMap<String, Seen>,
    failed: usize,
    in_flight: usize,
    unsettled: usize,
    preflight_ok: usize,
    /// Per wave: contexts not yet settled.
    unsettled_in_wave: Vec<usize>,
    /// Per wave: member indices that are pending or waiting for their agent.
    startable: Vec<BTreeSet<usize>>,
    /// (wave, index) of contexts that are pending or waiting and whose dry run has not
    /// passed: what the preflight still has to send.
    preflight_todo: BTreeSet<(usize, usize)>,
    /// (wave, index) of contexts waiting for their agent after receiving the revision:
    /// rollbacks to deliver when the agent comes back.
    waiting_rollback: BTreeSet<(usize, usize)>,
}

impl Tally {
    /// Counts `contexts` placed in `waves` (the operation's plan).
    pub fn of<'a>(waves: &[Vec<String>], contexts: impl IntoIterator<Item = &'a ContextState>) -> Self {
        let mut index: HashMap<&str, (usize, usize)> = HashMap::new();
        for (w, members) in waves.iter().enumerate() {
            for (i, m) in members.iter().enumerate() {
                index.entry(m.as_str()).or_insert((w, i));
            }
        }
        let mut t = Tally {
            unsettled_in_wave: vec![0; waves.len()],
            startable: vec![BTreeSet::new(); waves.len()],
            ..Tally::default()
        };
        for c in contexts {
            let at = index
                .get(c.context.as_str())
                .copied()
                .unwrap_or((usize::MAX, t.seen.len()));
            let seen = Seen {
                at,
                phase: c.phase,
                preflight_ok: c.preflight_ok,
                received: c.received,
            };
            t.count(seen, true);
            t.seen.insert(c.context.clone(), seen);
        }
        t
    }

    /// Takes `c`'s current state into account (a no-op when nothing counted changed).
    pub fn update(&mut self, c: &ContextState) {
        let Some(old) = self.seen.get(&c.context).copied() else {
            return;
        };
        let new = Seen {
            phase: c.phase,
            preflight_ok: c.preflight_ok,
            received: c.received,
            ..old
        };
        if new == old {
            return;
        }
        self.count(old, false);
        self.count(new, true);
        self.seen.insert(c.context.clone(), new);
    }

    /// Adds (`add`) or removes one context's contribution.
    fn count(&mut self, s: Seen, add: bool) {
        fn bump(n: &mut usize, add: bool) {
            if add {
                *n += 1;
            } else {
                *n -= 1;
            }
        }
        fn mark<T: Ord>(set: &mut BTreeSet<T>, v: T, add: bool) {
            if add {
                set.insert(v);
            } else {
                set.remove(&v);
            }
        }
        let (wave, idx) = s.at;
        let in_plan = wave < self.startable.len();
        if s.phase == ContextPhase::Failed {
            bump(&mut self.failed, add);
        }
        if s.phase.is_in_flight() {
            bump(&mut self.in_flight, add);
        }
        if s.preflight_ok {
            bump(&mut self.preflight_ok, add);
        }
        if !s.phase.is_settled() {
            bump(&mut self.unsettled, add);
            if in_plan {
                bump(&mut self.unsettled_in_wave[wave], add);
            }
        }
        // Only contexts of the plan can be started (the index sets name plan positions).
        if !in_plan {
            return;
        }
        if s.startable() {
            mark(&mut self.startable[wave], idx, add);
            if !s.preflight_ok {
                mark(&mut self.preflight_todo, s.at, add);
            }
        }
        if s.phase == ContextPhase::WaitingForAgent && s.received {
            mark(&mut self.waiting_rollback, s.at, add);
        }
    }

    pub fn failed(&self) -> usize {
        self.failed
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    pub fn all_settled(&self) -> bool {
        self.unsettled == 0
    }

    pub fn all_preflight_ok(&self) -> bool {
        self.preflight_ok == self.seen.len()
    }

    pub fn wave_settled(&self, wave: usize) -> bool {
        self.unsettled_in_wave.get(wave).is_none_or(|n| *n == 0)
    }

    /// Indices (in the wave's member list) of the wave's pending or waiting members, in
    /// plan order.
    #[cfg(test)]
    pub fn startable_in(&self, wave: usize) -> Vec<usize> {
        self.startable
            .get(wave)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Up to `n` members of the wave that may start, from index `from` on, in plan order.
    pub fn startable_from(&self, wave: usize, from: usize, n: usize) -> Vec<usize> {
        self.startable
            .get(wave)
            .map(|s| s.range(from..).copied().take(n).collect())
            .unwrap_or_default()
    }

    /// (wave, index) of the contexts whose preflight dry run is still to be sent.
    pub fn preflight_todo(&self) -> Vec<(usize, usize)> {
        self.preflight_todo.iter().copied().collect()
    }

    /// (wave, index) of the contexts waiting for their agent to deliver a rollback.
    pub fn waiting_rollback(&self) -> Vec<(usize, usize)> {
        self.waiting_rollback.iter().copied().collect()
    }
}

/// The tally as a field of a stored, cloned and compared [`crate::model::Operation`]:
/// never serialised, equal to any other, and empty in a clone (rebuilt on first use).
#[derive(Default)]
pub struct TallyCache(pub Option<Box<Tally>>);

impl Clone for TallyCache {
    fn clone(&self) -> Self {
        TallyCache(None)
    }
}

impl PartialEq for TallyCache {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for TallyCache {}

impl std::fmt::Debug for TallyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "TallyCache(kept)"
        } else {
            "TallyCache(empty)"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(waves: &[&[&str]]) -> Vec<Vec<String>> {
        waves
            .iter()
            .map(|w| w.iter().map(|s| s.to_string()).collect())
            .collect()
    }

    #[test]
    fn counts_follow_each_change_and_match_a_recount() {
        let p = plan(&[&["a", "b"], &["c"]]);
        let mut ctxs: Vec<ContextState> = [("a", 0), ("b", 0), ("c", 1)]
            .iter()
            .map(|(n, w)| ContextState::new(n, *w, Some(1), 0))
            .collect();
        let mut t = Tally::of(&p, &ctxs);
        assert_eq!(t.startable_in(0), vec![0, 1]);
        assert_eq!(t.preflight_todo().len(), 3);
        assert!(!t.wave_settled(0));

        ctxs[0].phase = ContextPhase::Dispatched;
        ctxs[0].received = true;
        t.update(&ctxs[0]);
        assert_eq!(t.in_flight(), 1);
        assert_eq!(t.startable_in(0), vec![1]);

        ctxs[0].phase = ContextPhase::Failed;
        t.update(&ctxs[0]);
        ctxs[1].phase = ContextPhase::WaitingForAgent;
        ctxs[1].received = true;
        t.update(&ctxs[1]);
        assert_eq!(t.failed(), 1);
        assert_eq!(t.in_flight(), 0);
        assert_eq!(t.waiting_rollback(), vec![(0, 1)]);
        assert!(!t.wave_settled(0));

        ctxs[1].phase = ContextPhase::Healthy;
        t.update(&ctxs[1]);
        assert!(t.wave_settled(0));
        assert!(!t.wave_settled(1));
        assert!(!t.all_settled());
        assert_eq!(t, Tally::of(&p, &ctxs));
    }
}

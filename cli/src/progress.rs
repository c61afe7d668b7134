//! Showing a rollout while it happens (`submit --wait`, `rollback --wait`, `watch`).
//!
//! Three renderers over the same event stream:
//! - live: on a terminal, a per-context table redrawn in place with plain ANSI escapes;
//! - plain: when stdout is a log (Jenkins), one timestamped line per change and a final
//!   summary line, so the log reads top to bottom without control characters;
//! - json: one JSON line per event, for scripts.
//!
//! Large rollouts: above [`SUMMARY_THRESHOLD`] contexts (known from the start through
//! [`Progress::expect_contexts`], or counted as they arrive), live and plain modes
//! summarise instead of showing every context. Live mode draws one line per wave (or
//! one for the whole operation) with counts by phase
//! (`wave 1/2: 9,812 healthy, 150 progressing, 38 failed`) and names the failed
//! contexts (the first [`FAILED_LISTED`], then `and N more failed`), redrawn at most
//! every [`LIVE_REDRAW_EVERY`]. Plain mode prints a summary line on every operation
//! change (phase, wave, message) and otherwise at most every [`PLAIN_SUMMARY_EVERY`]
//! while contexts move, plus one line per context that fails. JSON mode is unchanged:
//! one line per event, whatever the size.
//!
//! A watch reopened after the coordinator cut it off starts with a fresh snapshot:
//! [`Progress::resync`] makes that snapshot replace what was known (nothing shown twice,
//! contexts that left the operation dropped).

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use convoy_proto::v1 as pb;
use pb::rollout_event::Event;

use crate::output::{self, Format, ctx_phase, op_kind, op_phase};

/// Above this many contexts, live and plain modes show counts instead of one row (or
/// line) per context.
pub const SUMMARY_THRESHOLD: usize = 50;
/// Failed contexts named in a live summary before `and N more failed`.
pub const FAILED_LISTED: usize = 10;
/// Plain summary mode: the longest a changing rollout goes without a summary line,
/// and the shortest time between two (operation changes always print one).
pub const PLAIN_SUMMARY_EVERY: Duration = Duration::from_secs(5);
/// Live summary mode: the shortest time between two redraws (operation changes and
/// the end always redraw).
pub const LIVE_REDRAW_EVERY: Duration = Duration::from_millis(200);
/// Above this many waves a live summary shows the whole operation and the current
/// wave instead of a line per wave.
const WAVE_LINES: usize = 12;

/// The order phases are counted in, most advanced first.
const PHASE_ORDER: [pb::ContextPhase; 11] = [
    pb::ContextPhase::Healthy,
    pb::ContextPhase::RolledBack,
    pb::ContextPhase::Progressing,
    pb::ContextPhase::Applying,
    pb::ContextPhase::Dispatched,
    pb::ContextPhase::Pending,
    pb::ContextPhase::WaitingForAgent,
    pb::ContextPhase::RollingBack,
    pb::ContextPhase::Failed,
    pb::ContextPhase::Skipped,
    pb::ContextPhase::Unspecified,
];

/// How waiting output is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Live,
    Plain,
    Json,
}

impl Mode {
    /// `--output` if given, else a live table on a terminal and plain lines elsewhere.
    pub fn pick(requested: Option<Format>, stdout_is_terminal: bool) -> Self {
        match requested {
            Some(Format::Json) => Mode::Json,
            Some(Format::Plain) => Mode::Plain,
            Some(Format::Table) => Mode::Live,
            None if stdout_is_terminal => Mode::Live,
            None => Mode::Plain,
        }
    }
}

/// The rollout as seen so far, and the renderer drawing it.
pub struct Progress<W: Write> {
    mode: Mode,
    out: W,
    release: String,
    /// Keyed by (wave, context) so the table lists contexts in rollout order.
    contexts: BTreeMap<(u32, String), pb::ContextState>,
    /// What was known before a reopened watch's snapshot: compared against, never shown.
    stale: BTreeMap<(u32, String), pb::ContextState>,
    /// Set by [`Progress::resync`]: the next event starts a fresh snapshot.
    resync: bool,
    operation: Option<pb::Operation>,
    /// How many contexts the watched release has, when the caller knows.
    expected: usize,
    /// Lines drawn by the last live redraw, to move the cursor back over them.
    drawn: usize,
    /// Maximum line width in live mode, so no line wraps and breaks the redraw.
    width: usize,
    /// Summary modes: something changed since the last drawing or summary line.
    dirty: bool,
    /// Summary modes: when the last drawing or summary line was written.
    last_summary: Option<Instant>,
}

impl<W: Write> Progress<W> {
    pub fn new(mode: Mode, release: &str, out: W) -> Self {
        let width = std::env::var("COLUMNS")
            .ok()
            .and_then(|c| c.parse().ok())
            .filter(|w| *w > 20)
            .unwrap_or(120);
        Progress {
            mode,
            out,
            release: release.to_string(),
            contexts: BTreeMap::new(),
            stale: BTreeMap::new(),
            resync: false,
            operation: None,
            expected: 0,
            drawn: 0,
            width,
            dirty: false,
            last_summary: None,
        }
    }

    /// How many contexts the release has (from `GetRelease`), so that a large rollout
    /// is summarised from its first event rather than once enough contexts arrived.
    pub fn expect_contexts(&mut self, n: usize) {
        self.expected = n;
    }

    /// The watch is being reopened: its snapshot replaces what is known now.
    pub fn resync(&mut self) {
        self.resync = true;
    }

    /// The last operation state seen (its final phase once the stream has ended).
    pub fn operation(&self) -> Option<&pb::Operation> {
        self.operation.as_ref()
    }

    /// Every context's latest state, in rollout order.
    pub fn contexts(&self) -> impl Iterator<Item = &pb::ContextState> {
        self.contexts.values()
    }

    /// Whether contexts are summarised rather than listed one by one.
    fn summarising(&self) -> bool {
        self.expected.max(self.contexts.len()) > SUMMARY_THRESHOLD
    }

    /// Takes one event; draws it if it changed anything.
    pub fn event(&mut self, e: &pb::RolloutEvent) -> std::io::Result<()> {
        self.event_at(e, Instant::now())
    }

    /// [`Progress::event`] at a given time (the summary pacing's clock).
    pub fn event_at(&mut self, e: &pb::RolloutEvent, now: Instant) -> std::io::Result<()> {
        if self.mode == Mode::Json {
            serde_json::to_writer(&mut self.out, &output::json::event(e)).map_err(std::io::Error::other)?;
            writeln!(self.out)?;
            self.track(e);
            return self.out.flush();
        }
        let before = match &e.event {
            Some(Event::Context(c)) => self.known_phase(c),
            _ => None,
        };
        let changed = self.track(e);
        if !changed {
            return Ok(());
        }
        if !self.summarising() {
            return match self.mode {
                Mode::Plain => {
                    let line = self.plain_line(e);
                    writeln!(self.out, "{line}")?;
                    self.out.flush()
                }
                _ => self.redraw(),
            };
        }
        self.dirty = true;
        let operation_changed = matches!(e.event, Some(Event::Operation(_)));
        match self.mode {
            Mode::Plain => {
                if let Some(Event::Context(c)) = &e.event
                    && c.phase == pb::ContextPhase::Failed as i32
                    && before != Some(c.phase)
                {
                    let line = self.plain_line(e);
                    writeln!(self.out, "{line}")?;
                }
                if operation_changed && self.contexts.is_empty() {
                    // A snapshot starts with its operation: no counts to show yet.
                    let line = self.plain_line(e);
                    writeln!(self.out, "{line}")?;
                    self.dirty = false;
                    self.last_summary = Some(now);
                } else if operation_changed || self.due(now, PLAIN_SUMMARY_EVERY) {
                    self.summary_line(e.at.as_ref(), now)?;
                }
                self.out.flush()
            }
            _ => {
                if operation_changed || self.due(now, LIVE_REDRAW_EVERY) {
                    self.redraw_at(now)?;
                }
                Ok(())
            }
        }
    }

    /// Called now and then while no event arrives: catches a summary up with changes
    /// that were held back by its pacing.
    pub fn tick(&mut self) -> std::io::Result<()> {
        self.tick_at(Instant::now())
    }

    /// [`Progress::tick`] at a given time.
    pub fn tick_at(&mut self, now: Instant) -> std::io::Result<()> {
        if !self.dirty || !self.summarising() {
            return Ok(());
        }
        match self.mode {
            Mode::Plain if self.due(now, PLAIN_SUMMARY_EVERY) => self.summary_line(None, now),
            Mode::Live if self.due(now, LIVE_REDRAW_EVERY) => self.redraw_at(now),
            _ => Ok(()),
        }
    }

    fn due(&self, now: Instant, every: Duration) -> bool {
        self.last_summary
            .is_none_or(|last| now.saturating_duration_since(last) >= every)
    }

    /// The phase last known for this context (before a reopened snapshot too).
    fn known_phase(&self, c: &pb::ContextState) -> Option<i32> {
        let key = (c.wave, c.context.clone());
        match self.contexts.get(&key) {
            Some(s) => Some(s.phase),
            // With a resync pending, `contexts` is about to become `stale`.
            None if self.resync => None,
            None => self.stale.get(&key).map(|s| s.phase),
        }
    }

    /// Records the event; false when it repeats what is already known (snapshots resent
    /// after a reconnect, heartbeat-like updates with nothing new).
    fn track(&mut self, e: &pb::RolloutEvent) -> bool {
        if self.resync {
            // A reopened watch: its snapshot is the whole truth; what was known before
            // only tells what is new.
            self.resync = false;
            self.stale = std::mem::take(&mut self.contexts);
        }
        match &e.event {
            Some(Event::Context(c)) => {
                // A context moves between waves only across operations: drop its old row.
                self.contexts
                    .retain(|(w, name), _| !(name == &c.context && *w != c.wave));
                let key = (c.wave, c.context.clone());
                let previous = match self.contexts.get(&key) {
                    Some(old) => Some(old),
                    None => self.stale.get(&key),
                };
                let same = previous.is_some_and(|old| {
                    (old.phase, old.ready, old.desired, &old.message, old.revision)
                        == (c.phase, c.ready, c.desired, &c.message, c.revision)
                });
                self.stale.remove(&key);
                self.contexts.insert(key, c.clone());
                !same
            }
            Some(Event::Operation(o)) => {
                let same = self.operation.as_ref().is_some_and(|old| {
                    (&old.id, old.phase, old.current_wave, &old.message)
                        == (&o.id, o.phase, o.current_wave, &o.message)
                });
                self.operation = Some(o.clone());
                !same
            }
            None => false,
        }
    }

    fn plain_line(&self, e: &pb::RolloutEvent) -> String {
        let at = output::time(e.at.as_ref());
        match &e.event {
            Some(Event::Context(c)) => {
                let at = if c.updated_at.is_some() {
                    output::time(c.updated_at.as_ref())
                } else {
                    at
                };
                format!(
                    "{at} {} wave={} {} {}/{} {}",
                    c.context,
                    c.wave + 1,
                    ctx_phase(c.phase),
                    c.ready,
                    c.desired,
                    c.message
                )
                .trim_end()
                .to_string()
            }
            Some(Event::Operation(o)) => format!(
                "{at} {} {} revision={} {} {}",
                self.release,
                op_kind(o.kind).to_lowercase(),
                o.revision,
                op_phase(o.phase),
                o.message
            )
            .trim_end()
            .to_string(),
            None => String::new(),
        }
    }

    /// Plain summary mode: `<time> web.shop deploy revision=2 RUNNING wave 1/2: 9,812
    /// healthy, 150 progressing, 38 failed (message)`.
    fn summary_line(&mut self, at: Option<&prost_types::Timestamp>, now: Instant) -> std::io::Result<()> {
        let at = output::time(at.or(Some(&output::now())));
        let counts = phase_counts(self.contexts.values());
        let line = match &self.operation {
            Some(o) => {
                let wave = if o.waves > 1 {
                    format!(" wave {}/{}", o.current_wave + 1, o.waves)
                } else {
                    String::new()
                };
                let message = if o.message.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", o.message)
                };
                format!(
                    "{at} {} {} revision={} {}{wave}: {counts}{message}",
                    self.release,
                    op_kind(o.kind).to_lowercase(),
                    o.revision,
                    op_phase(o.phase),
                )
            }
            None => format!("{at} {}: {counts}", self.release),
        };
        writeln!(self.out, "{line}")?;
        self.dirty = false;
        self.last_summary = Some(now);
        Ok(())
    }

    fn redraw(&mut self) -> std::io::Result<()> {
        self.redraw_at(Instant::now())
    }

    fn redraw_at(&mut self, now: Instant) -> std::io::Result<()> {
        let mut lines = Vec::new();
        if let Some(o) = &self.operation {
            let waves = if o.waves > 1 {
                format!(" wave {}/{}", o.current_wave + 1, o.waves)
            } else {
                String::new()
            };
            lines.push(format!(
                "{} {} revision {}: {}{waves}  {}",
                self.release,
                op_kind(o.kind).to_lowercase(),
                o.revision,
                op_phase(o.phase),
                o.message
            ));
        }
        if self.summarising() {
            lines.extend(self.summary_lines());
        } else {
            let rows: Vec<Vec<String>> = self.contexts.values().map(row).collect();
            let mut table = Vec::new();
            output::table(
                &mut table,
                &["CONTEXT", "REGION", "WAVE", "PHASE", "READY", "MESSAGE"],
                &rows,
            )?;
            lines.extend(String::from_utf8_lossy(&table).lines().map(str::to_string));
        }
        if self.drawn > 0 {
            // Cursor up over the previous drawing, then clear to the end of the screen.
            write!(self.out, "\x1b[{}A\r\x1b[J", self.drawn)?;
        }
        for l in &lines {
            let cut: String = l.chars().take(self.width).collect();
            writeln!(self.out, "{cut}")?;
        }
        self.drawn = lines.len();
        self.dirty = false;
        self.last_summary = Some(now);
        self.out.flush()
    }

    /// Live summary mode: counts per wave (or for the whole operation), then the failed
    /// contexts.
    fn summary_lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        let mut by_wave: BTreeMap<u32, Vec<&pb::ContextState>> = BTreeMap::new();
        for ((w, _), c) in &self.contexts {
            by_wave.entry(*w).or_default().push(c);
        }
        let waves = self
            .operation
            .as_ref()
            .map_or(0, |o| o.waves as usize)
            .max(by_wave.last_key_value().map_or(0, |(w, _)| *w as usize + 1));
        if waves <= 1 {
            lines.push(format!(
                "{} contexts: {}",
                thousands(self.contexts.len()),
                phase_counts(self.contexts.values())
            ));
        } else if by_wave.len() <= WAVE_LINES {
            for (w, cs) in &by_wave {
                lines.push(format!(
                    "wave {}/{waves}: {}",
                    w + 1,
                    phase_counts(cs.iter().copied())
                ));
            }
        } else {
            lines.push(format!(
                "{} contexts in {waves} waves: {}",
                thousands(self.contexts.len()),
                phase_counts(self.contexts.values())
            ));
            let current = self.operation.as_ref().map_or(0, |o| o.current_wave);
            if let Some(cs) = by_wave.get(&current) {
                lines.push(format!(
                    "wave {}/{waves}: {}",
                    current + 1,
                    phase_counts(cs.iter().copied())
                ));
            }
        }
        let failed: Vec<&pb::ContextState> = self
            .contexts
            .values()
            .filter(|c| c.phase == pb::ContextPhase::Failed as i32)
            .collect();
        for c in failed.iter().take(FAILED_LISTED) {
            lines.push(
                format!("  failed: {} (wave {}) {}", c.context, c.wave + 1, c.message)
                    .trim_end()
                    .to_string(),
            );
        }
        if failed.len() > FAILED_LISTED {
            lines.push(format!(
                "  and {} more failed",
                thousands(failed.len() - FAILED_LISTED)
            ));
        }
        lines
    }

    /// Ends the drawing: in plain mode a summary line that a log reader can grep for;
    /// in live summary mode the last counts, if a redraw was held back.
    pub fn finish(&mut self) -> std::io::Result<()> {
        if self.mode == Mode::Live && self.dirty && self.summarising() {
            return self.redraw();
        }
        if self.mode != Mode::Plain {
            return Ok(());
        }
        let Some(o) = &self.operation else { return Ok(()) };
        let at = output::time(o.finished_at.as_ref().or(Some(&output::now())));
        let counts = self.counts();
        writeln!(
            self.out,
            "{at} {} revision {} {}: {} ({counts})",
            self.release,
            o.revision,
            op_phase(o.phase),
            if o.message.is_empty() { "-" } else { &o.message }
        )?;
        self.out.flush()
    }

    /// `3 HEALTHY` or `1 FAILED, 2 ROLLED_BACK`.
    fn counts(&self) -> String {
        let mut by: BTreeMap<&str, usize> = BTreeMap::new();
        for c in self.contexts.values() {
            *by.entry(ctx_phase(c.phase)).or_default() += 1;
        }
        by.iter()
            .map(|(p, n)| format!("{n} {p}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// `9,812 healthy, 150 progressing, 38 failed`, most advanced phase first.
fn phase_counts<'a>(contexts: impl Iterator<Item = &'a pb::ContextState>) -> String {
    let mut by: BTreeMap<i32, usize> = BTreeMap::new();
    for c in contexts {
        *by.entry(c.phase).or_default() += 1;
    }
    if by.is_empty() {
        return "no contexts yet".into();
    }
    let mut parts = Vec::new();
    for p in PHASE_ORDER {
        if let Some(n) = by.remove(&(p as i32)) {
            parts.push(format!("{} {}", thousands(n), phase_words(p as i32)));
        }
    }
    for (p, n) in by {
        parts.push(format!("{} {}", thousands(n), phase_words(p)));
    }
    parts.join(", ")
}

/// `ROLLED_BACK` as `rolled back`.
fn phase_words(p: i32) -> String {
    ctx_phase(p).to_lowercase().replace('_', " ")
}

/// `9812` as `9,812`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

fn row(c: &pb::ContextState) -> Vec<String> {
    let mut phase = ctx_phase(c.phase).to_string();
    if !c.agent_connected && c.phase != pb::ContextPhase::Healthy as i32 {
        phase.push_str(" (no agent)");
    }
    vec![
        c.context.clone(),
        c.region.clone(),
        (c.wave + 1).to_string(),
        phase,
        format!("{}/{}", c.ready, c.desired),
        c.message.clone(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(name: &str, phase: pb::ContextPhase, ready: u32, msg: &str) -> pb::RolloutEvent {
        pb::RolloutEvent {
            release: "web.shop".into(),
            operation_id: "op1".into(),
            revision: 2,
            at: Some(prost_types::Timestamp {
                seconds: 1_795_255_201,
                nanos: 0,
            }),
            event: Some(Event::Context(pb::ContextState {
                context: name.into(),
                region: "us-east1".into(),
                wave: 0,
                phase: phase as i32,
                revision: 2,
                ready,
                desired: 2,
                message: msg.into(),
                updated_at: None,
                agent_connected: true,
                canary_weight: 0,
            })),
        }
    }

    #[test]
    fn plain_mode_prints_one_line_per_change() {
        let mut out = Vec::new();
        let mut p = Progress::new(Mode::Plain, "web.shop", &mut out);
        p.event(&ctx("east", pb::ContextPhase::Progressing, 1, "1 of 2 ready"))
            .unwrap();
        p.event(&ctx("east", pb::ContextPhase::Progressing, 1, "1 of 2 ready"))
            .unwrap();
        p.event(&ctx("east", pb::ContextPhase::Healthy, 2, "healthy"))
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "2026-11-21T10:00:01Z east wave=1 PROGRESSING 1/2 1 of 2 ready\n\
             2026-11-21T10:00:01Z east wave=1 HEALTHY 2/2 healthy\n"
        );
    }

    #[test]
    fn live_mode_redraws_over_the_previous_table() {
        let mut out = Vec::new();
        let mut p = Progress::new(Mode::Live, "web.shop", &mut out);
        p.event(&ctx("east", pb::ContextPhase::Applying, 0, "applying"))
            .unwrap();
        p.event(&ctx("east", pb::ContextPhase::Healthy, 2, "healthy"))
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        // Header + one row drawn, then the cursor goes up two lines for the redraw.
        assert!(text.contains("\x1b[2A\r\x1b[J"), "{text:?}");
        assert!(
            text.ends_with("east     us-east1  1     HEALTHY  2/2    healthy\n"),
            "{text:?}"
        );
    }

    #[test]
    fn json_mode_writes_every_event_as_a_line() {
        let mut out = Vec::new();
        let mut p = Progress::new(Mode::Json, "web.shop", &mut out);
        p.event(&ctx("east", pb::ContextPhase::Healthy, 2, "healthy"))
            .unwrap();
        p.event(&ctx("east", pb::ContextPhase::Healthy, 2, "healthy"))
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["context"]["phase"], "HEALTHY");
    }

    fn in_wave(name: &str, wave: u32, phase: pb::ContextPhase, msg: &str) -> pb::RolloutEvent {
        let mut e = ctx(name, phase, 0, msg);
        if let Some(Event::Context(c)) = &mut e.event {
            c.wave = wave;
        }
        e
    }

    fn op(phase: pb::OperationPhase, current_wave: u32, waves: u32) -> pb::RolloutEvent {
        pb::RolloutEvent {
            release: "web.shop".into(),
            operation_id: "op1".into(),
            revision: 2,
            at: Some(prost_types::Timestamp {
                seconds: 1_795_255_201,
                nanos: 0,
            }),
            event: Some(Event::Operation(pb::Operation {
                id: "op1".into(),
                kind: pb::OperationKind::Deploy as i32,
                phase: phase as i32,
                revision: 2,
                current_wave,
                waves,
                ..Default::default()
            })),
        }
    }

    /// 10,000 contexts in two waves of 5,000: `sim-00000`.. in wave 1, the rest in wave 2.
    fn fleet() -> Vec<(String, u32)> {
        (0..10_000)
            .map(|i| (format!("sim-{i:05}"), u32::from(i >= 5_000)))
            .collect()
    }

    #[test]
    fn plain_mode_summarises_a_large_rollout() {
        let mut out = Vec::new();
        let mut p = Progress::new(Mode::Plain, "web.shop", &mut out);
        p.expect_contexts(10_000);
        let t0 = Instant::now();
        p.event_at(&op(pb::OperationPhase::Running, 0, 2), t0).unwrap();
        for (name, wave) in fleet() {
            p.event_at(&in_wave(&name, wave, pb::ContextPhase::Pending, ""), t0)
                .unwrap();
        }
        // Wave 1 settles over 5 s (1 ms apart): every 131st context fails (38 of them).
        for (i, (name, _)) in fleet().into_iter().take(5_000).enumerate() {
            let at = t0 + Duration::from_millis(i as u64);
            let e = if i % 131 == 7 && i < 4_900 {
                in_wave(&name, 0, pb::ContextPhase::Failed, "CrashLoopBackOff")
            } else {
                in_wave(&name, 0, pb::ContextPhase::Healthy, "healthy")
            };
            p.event_at(&e, at).unwrap();
        }
        p.tick_at(t0 + Duration::from_secs(6)).unwrap();
        p.tick_at(t0 + Duration::from_secs(7)).unwrap(); // nothing new: no line
        p.event_at(
            &op(pb::OperationPhase::Running, 1, 2),
            t0 + Duration::from_millis(7_100),
        )
        .unwrap();
        drop(p);
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        // Two operation changes, one paced summary, one line per failed context.
        assert_eq!(lines.len(), 2 + 1 + 38, "{text}");
        assert_eq!(
            lines[0],
            "2026-11-21T10:00:01Z web.shop deploy revision=2 RUNNING"
        );
        assert_eq!(
            lines[1],
            "2026-11-21T10:00:01Z sim-00007 wave=1 FAILED 0/2 CrashLoopBackOff"
        );
        let failed: Vec<&&str> = lines.iter().filter(|l| l.contains(" FAILED ")).collect();
        assert_eq!(failed.len(), 38);
        assert!(failed.last().unwrap().contains("sim-04854 "), "{text}");
        assert!(
            lines[39].ends_with("RUNNING wave 1/2: 4,962 healthy, 5,000 pending, 38 failed"),
            "{text}"
        );
        assert!(
            lines[40].ends_with("RUNNING wave 2/2: 4,962 healthy, 5,000 pending, 38 failed"),
            "{text}"
        );
    }

    #[test]
    fn live_mode_summarises_a_large_rollout() {
        let mut out = Vec::new();
        let mut p = Progress::new(Mode::Live, "web.shop", &mut out);
        let t0 = Instant::now();
        p.event_at(&op(pb::OperationPhase::Running, 0, 2), t0).unwrap();
        // No hint: the first 50 contexts are drawn as rows, then counts take over.
        for (i, (name, wave)) in fleet().into_iter().enumerate() {
            let e = match (wave, i % 100) {
                (1, _) => in_wave(&name, wave, pb::ContextPhase::Pending, ""),
                (_, 0..3) => in_wave(&name, 0, pb::ContextPhase::Progressing, "1 of 2 ready"),
                (_, 50) if i < 3_800 => in_wave(&name, 0, pb::ContextPhase::Failed, "ImagePullBackOff"),
                _ => in_wave(&name, 0, pb::ContextPhase::Healthy, "healthy"),
            };
            p.event_at(&e, t0).unwrap();
        }
        p.finish().unwrap();
        drop(p);
        let text = String::from_utf8(out).unwrap();
        // Only the drawing after the last clear is on screen.
        let screen = text.rsplit("\x1b[J").next().unwrap();
        let lines: Vec<&str> = screen.lines().collect();
        assert_eq!(
            lines[..3],
            [
                "web.shop deploy revision 2: RUNNING wave 1/2  ",
                "wave 1/2: 4,812 healthy, 150 progressing, 38 failed",
                "wave 2/2: 5,000 pending",
            ],
            "{screen}"
        );
        assert_eq!(lines[3], "  failed: sim-00050 (wave 1) ImagePullBackOff");
        assert_eq!(lines[12], "  failed: sim-00950 (wave 1) ImagePullBackOff");
        assert_eq!(lines[13], "  and 28 more failed");
        assert_eq!(lines.len(), 14, "{screen}");
        // Rows for the first 50 contexts (one redraw each), then no redraw until the
        // end: 10,000 events, 52 drawings.
        assert_eq!(text.matches("\x1b[J").count(), 51, "{}", text.len());
    }

    #[test]
    fn a_reopened_watch_replaces_the_state_without_repeating_it() {
        let mut out = Vec::new();
        let mut p = Progress::new(Mode::Plain, "web.shop", &mut out);
        let snapshot = [
            ctx("east", pb::ContextPhase::Healthy, 2, "healthy"),
            ctx("west", pb::ContextPhase::Progressing, 1, "1 of 2 ready"),
            ctx("south", pb::ContextPhase::Failed, 0, "CrashLoopBackOff"),
        ];
        for e in &snapshot {
            p.event(e).unwrap();
        }
        // Cut off; the new snapshot no longer has `south`, and `west` moved on.
        p.resync();
        p.event(&snapshot[0]).unwrap();
        p.event(&ctx("west", pb::ContextPhase::Healthy, 2, "healthy"))
            .unwrap();
        let names: Vec<&str> = p.contexts().map(|c| c.context.as_str()).collect();
        assert_eq!(names, ["east", "west"]);
        drop(p);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.lines().count(), 4, "{text}");
        assert!(text.ends_with("west wave=1 HEALTHY 2/2 healthy\n"), "{text}");

        // The same at scale: a second 10,000-context snapshot adds no line.
        let mut out = Vec::new();
        let mut p = Progress::new(Mode::Plain, "web.shop", &mut out);
        p.expect_contexts(10_000);
        let t0 = Instant::now();
        let mut snapshot = vec![op(pb::OperationPhase::Running, 0, 2)];
        snapshot.extend(
            fleet()
                .iter()
                .map(|(n, w)| in_wave(n, *w, pb::ContextPhase::Pending, "")),
        );
        for e in &snapshot {
            p.event_at(e, t0).unwrap();
        }
        p.resync();
        for e in &snapshot {
            p.event_at(e, t0 + Duration::from_secs(10)).unwrap();
        }
        p.tick_at(t0 + Duration::from_secs(20)).unwrap();
        assert_eq!(p.contexts().count(), 10_000);
        drop(p);
        let text = String::from_utf8(out).unwrap();
        // The operation line, then the one summary owed (paced out at first): nothing
        // from the second snapshot.
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[1].ends_with("RUNNING wave 1/2: 10,000 pending"), "{text}");
    }

    #[test]
    fn mode_follows_the_terminal_unless_asked() {
        assert_eq!(Mode::pick(None, true), Mode::Live);
        assert_eq!(Mode::pick(None, false), Mode::Plain);
        assert_eq!(Mode::pick(Some(Format::Json), true), Mode::Json);
    }
}

//! Showing a rollout while it happens (`submit --wait`, `rollback --wait`, `watch`).
//!
//! Three renderers over the same event stream:
//! - live: on a terminal, a per-context table redrawn in place with plain ANSI escapes;
//! - plain: when stdout is a log (Jenkins), one timestamped line per change and a final
//!   summary line, so the log reads top to bottom without control characters;
//! - json: one JSON line per event, for scripts.

use std::collections::BTreeMap;
use std::io::Write;

use convoy_proto::v1 as pb;
use pb::rollout_event::Event;

use crate::output::{self, Format, ctx_phase, op_kind, op_phase};

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
    operation: Option<pb::Operation>,
    /// Lines drawn by the last live redraw, to move the cursor back over them.
    drawn: usize,
    /// Maximum line width in live mode, so no line wraps and breaks the redraw.
    width: usize,
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
            operation: None,
            drawn: 0,
            width,
        }
    }

    /// The last operation state seen (its final phase once the stream has ended).
    pub fn operation(&self) -> Option<&pb::Operation> {
        self.operation.as_ref()
    }

    /// Every context's latest state, in rollout order.
    pub fn contexts(&self) -> impl Iterator<Item = &pb::ContextState> {
        self.contexts.values()
    }

    /// Takes one event; draws it if it changed anything.
    pub fn event(&mut self, e: &pb::RolloutEvent) -> std::io::Result<()> {
        if self.mode == Mode::Json {
            serde_json::to_writer(&mut self.out, &output::json::event(e)).map_err(std::io::Error::other)?;
            writeln!(self.out)?;
            self.track(e);
            return self.out.flush();
        }
        let changed = self.track(e);
        match (self.mode, changed) {
            (_, false) => Ok(()),
            (Mode::Plain, true) => {
                let line = self.plain_line(e);
                writeln!(self.out, "{line}")?;
                self.out.flush()
            }
            (_, true) => self.redraw(),
        }
    }

    /// Records the event; false when it repeats what is already known (snapshots resent
    /// after a reconnect, heartbeat-like updates with nothing new).
    fn track(&mut self, e: &pb::RolloutEvent) -> bool {
        match &e.event {
            Some(Event::Context(c)) => {
                // A context moves between waves only across operations: drop its old row.
                self.contexts
                    .retain(|(w, name), _| !(name == &c.context && *w != c.wave));
                let key = (c.wave, c.context.clone());
                let same = self.contexts.get(&key).is_some_and(|old| {
                    (old.phase, old.ready, old.desired, &old.message, old.revision)
                        == (c.phase, c.ready, c.desired, &c.message, c.revision)
                });
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

    fn redraw(&mut self) -> std::io::Result<()> {
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
        let rows: Vec<Vec<String>> = self.contexts.values().map(row).collect();
        let mut table = Vec::new();
        output::table(
            &mut table,
            &["CONTEXT", "REGION", "WAVE", "PHASE", "READY", "MESSAGE"],
            &rows,
        )?;
        lines.extend(String::from_utf8_lossy(&table).lines().map(str::to_string));
        if self.drawn > 0 {
            // Cursor up over the previous drawing, then clear to the end of the screen.
            write!(self.out, "\x1b[{}A\r\x1b[J", self.drawn)?;
        }
        for l in &lines {
            let cut: String = l.chars().take(self.width).collect();
            writeln!(self.out, "{cut}")?;
        }
        self.drawn = lines.len();
        self.out.flush()
    }

    /// Ends the drawing: in plain mode a summary line that a log reader can grep for.
    pub fn finish(&mut self) -> std::io::Result<()> {
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

    #[test]
    fn mode_follows_the_terminal_unless_asked() {
        assert_eq!(Mode::pick(None, true), Mode::Live);
        assert_eq!(Mode::pick(None, false), Mode::Plain);
        assert_eq!(Mode::pick(Some(Format::Json), true), Mode::Json);
    }
}

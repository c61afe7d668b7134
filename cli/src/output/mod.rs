//! How online commands print: aligned tables for people, plain lines for logs, JSON for
//! scripts. Wire types are turned into text here and nowhere else, so every command
//! names phases and formats times the same way.

pub mod diff;
pub mod json;

use std::io::Write;

use convoy_proto::v1 as pb;

/// `--output`: how results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns (a live table while waiting on a terminal). `text` is another
    /// name for it (`convoy diff -o text`).
    #[value(alias = "text")]
    Table,
    /// Tab-separated rows without a header (for `cut`/`awk`); while waiting, one
    /// timestamped line per change (the default when stdout is not a terminal, e.g. Jenkins).
    Plain,
    /// One JSON document (JSON lines while waiting or watching).
    Json,
}

/// `--output` and friends, shared by every online command.
#[derive(Debug, Clone, clap::Args)]
pub struct OutputArgs {
    /// Output format; waiting output defaults to a live table on a terminal and plain
    /// timestamped lines otherwise.
    #[arg(short, long, value_enum, value_name = "FORMAT")]
    pub output: Option<Format>,
}

impl OutputArgs {
    /// The format for one-shot results: a table unless asked otherwise.
    pub fn format(&self) -> Format {
        self.output.unwrap_or(Format::Table)
    }
}

/// The short name of an operation phase (`SUCCEEDED`, `ROLLING_BACK`).
pub fn op_phase(p: i32) -> &'static str {
    pb::OperationPhase::try_from(p).map_or("UNKNOWN", |p| {
        p.as_str_name()
            .strip_prefix("OPERATION_PHASE_")
            .unwrap_or("UNKNOWN")
    })
}

/// The short name of a context phase (`HEALTHY`, `ROLLED_BACK`).
pub fn ctx_phase(p: i32) -> &'static str {
    pb::ContextPhase::try_from(p).map_or("UNKNOWN", |p| {
        p.as_str_name()
            .strip_prefix("CONTEXT_PHASE_")
            .unwrap_or("UNKNOWN")
    })
}

/// The short name of an operation kind (`DEPLOY`, `ROLLBACK`).
pub fn op_kind(k: i32) -> &'static str {
    pb::OperationKind::try_from(k).map_or("UNKNOWN", |k| {
        k.as_str_name()
            .strip_prefix("OPERATION_KIND_")
            .unwrap_or("UNKNOWN")
    })
}

/// RFC 3339 in UTC with second precision (`2026-11-21T10:00:01Z`), for people; empty
/// when unset.
pub fn time(t: Option<&prost_types::Timestamp>) -> String {
    format_time(t, "%Y-%m-%dT%H:%M:%SZ")
}

/// RFC 3339 in UTC with milliseconds (`2026-11-21T10:00:01.250Z`), for scripts (`-o
/// json`): events of one rollout are often less than a second apart.
pub fn time_ms(t: Option<&prost_types::Timestamp>) -> String {
    format_time(t, "%Y-%m-%dT%H:%M:%S%.3fZ")
}

fn format_time(t: Option<&prost_types::Timestamp>, format: &str) -> String {
    t.and_then(|t| jiff::Timestamp::new(t.seconds, t.nanos).ok())
        .map(|t| t.strftime(format).to_string())
        .unwrap_or_default()
}

/// The current time as a protobuf timestamp (for lines about events the coordinator
/// did not timestamp, such as the final summary).
pub fn now() -> prost_types::Timestamp {
    let now = jiff::Timestamp::now();
    prost_types::Timestamp {
        seconds: now.as_second(),
        nanos: now.subsec_nanosecond(),
    }
}

/// A duration in milliseconds as people read it (`850ms`, `12.4s`, `3m05s`).
pub fn duration_ms(ms: u64) -> String {
    match ms {
        0..1_000 => format!("{ms}ms"),
        1_000..60_000 => format!("{:.1}s", ms as f64 / 1000.0),
        _ => format!("{}m{:02}s", ms / 60_000, ms % 60_000 / 1000),
    }
}

/// Left-aligned columns separated by two spaces; the last column is not padded.
pub fn table(out: &mut impl Write, header: &[&str], rows: &[Vec<String>]) -> std::io::Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.zip(&widths).enumerate() {
            if i + 1 == widths.len() {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:<w$}  "));
            }
        }
        s.trim_end().to_string()
    };
    writeln!(out, "{}", line(&mut header.iter().copied()))?;
    for row in rows {
        writeln!(out, "{}", line(&mut row.iter().map(String::as_str)))?;
    }
    Ok(())
}

/// Rows as an aligned table, or tab-separated without the header for `--output plain`.
pub fn rows(out: &mut impl Write, fmt: Format, header: &[&str], rows: &[Vec<String>]) -> std::io::Result<()> {
    if fmt == Format::Plain {
        for row in rows {
            writeln!(out, "{}", row.join("\t"))?;
        }
        return Ok(());
    }
    table(out, header, rows)
}

/// Pretty-prints one JSON document followed by a newline.
pub fn print_json(out: &mut impl Write, v: &serde_json::Value) -> std::io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, v).map_err(std::io::Error::other)?;
    writeln!(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_utc() {
        let t = |s| time(Some(&prost_types::Timestamp { seconds: s, nanos: 0 }));
        assert_eq!(t(0), "1970-01-01T00:00:00Z");
        assert_eq!(t(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(t(1_795_255_201), "2026-11-21T10:00:01Z");
        assert_eq!(time(None), "");
        let ms = |s, nanos| time_ms(Some(&prost_types::Timestamp { seconds: s, nanos }));
        assert_eq!(ms(1_795_255_201, 250_000_000), "2026-11-21T10:00:01.250Z");
        assert_eq!(ms(1_795_255_201, 0), "2026-11-21T10:00:01.000Z");
        assert_eq!(time_ms(None), "");
    }

    #[test]
    fn phases_have_short_names() {
        assert_eq!(op_phase(pb::OperationPhase::RollingBack as i32), "ROLLING_BACK");
        assert_eq!(ctx_phase(pb::ContextPhase::Healthy as i32), "HEALTHY");
        assert_eq!(ctx_phase(99), "UNKNOWN");
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration_ms(850), "850ms");
        assert_eq!(duration_ms(12_400), "12.4s");
        assert_eq!(duration_ms(185_000), "3m05s");
    }

    #[test]
    fn tables_align_columns() {
        let mut out = Vec::new();
        table(
            &mut out,
            &["A", "BB", "C"],
            &[vec!["xxx".into(), "y".into(), "z z".into()]],
        )
        .unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "A    BB  C\nxxx  y   z z\n");
    }
}

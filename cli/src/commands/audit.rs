//! `convoy audit`: the coordinator's audit log (role viewer; a scoped caller sees the
//! releases of its scope and its own entries).

use convoy_proto::v1 as pb;
use serde_json::json;

use super::Common;
use crate::exit::Result;
use crate::output::{self, Format, time};

pub const EXAMPLES: &str = "\
Examples:
  convoy audit                              # every entry, oldest first
  convoy audit --release web.shop --since 24h
  convoy audit --since 2026-12-01T00:00:00Z -o json | jq '.[] | select(.outcome | startswith(\"refused\"))'";

#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// Only this release's entries (`app.namespace`).
    #[arg(long, value_name = "RELEASE")]
    pub release: Option<String>,
    /// Only entries since this time: RFC 3339 UTC (`2026-12-01T10:00:00Z`) or an age
    /// (`90s`, `30m`, `24h`, `7d`).
    #[arg(long, value_name = "TIME", value_parser = parse_since)]
    pub since: Option<prost_types::Timestamp>,
    /// At most this many entries, the newest (0 for all).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub limit: u32,
    #[command(flatten)]
    pub common: Common,
}

pub async fn run(a: AuditArgs) -> Result<()> {
    let client = a.common.client().await?;
    let mut releases = client.releases.clone();
    let req = pb::ListAuditRequest {
        release: a.release.clone().unwrap_or_default(),
        since: a.since,
        limit: a.limit,
    };
    let r = client.call("audit", releases.list_audit(req)).await?;
    let mut out = std::io::stdout().lock();
    let fmt = a.common.output.format();
    if fmt == Format::Json {
        let entries: Vec<serde_json::Value> = r.entries.iter().map(entry_json).collect();
        return Ok(output::print_json(&mut out, &serde_json::Value::Array(entries))?);
    }
    let rows: Vec<Vec<String>> = r
        .entries
        .iter()
        .map(|e| {
            vec![
                time(e.at.as_ref()),
                e.who.clone(),
                e.action.clone(),
                e.release.clone(),
                if e.revision == 0 {
                    String::new()
                } else {
                    e.revision.to_string()
                },
                e.outcome.clone(),
                e.reason.clone(),
            ]
        })
        .collect();
    let header = [
        "TIME", "WHO", "ACTION", "RELEASE", "REVISION", "OUTCOME", "REASON",
    ];
    Ok(output::rows(&mut out, fmt, &header, &rows)?)
}

fn entry_json(e: &pb::AuditEntry) -> serde_json::Value {
    json!({
        "seq": e.seq,
        "at": output::json::ts(e.at.as_ref()),
        "who": e.who,
        "action": e.action,
        "release": e.release,
        "revision": e.revision,
        "operationId": e.operation_id,
        "reason": e.reason,
        "outcome": e.outcome,
    })
}

/// `--since`: an RFC 3339 UTC time or an age before now.
fn parse_since(text: &str) -> std::result::Result<prost_types::Timestamp, String> {
    let now = output::now().seconds;
    since_at(text, now).map(|seconds| prost_types::Timestamp { seconds, nanos: 0 })
}

fn since_at(text: &str, now: i64) -> std::result::Result<i64, String> {
    let bad = || {
        format!(
            "expected an RFC 3339 UTC time (2026-12-01T10:00:00Z) or an age (90s, 30m, 24h, 7d), got {text:?}"
        )
    };
    let t = text.trim();
    if let Some((n, unit)) = t
        .char_indices()
        .last()
        .map(|(i, c)| (&t[..i], c))
        .filter(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    {
        let n: i64 = n.parse().map_err(|_| bad())?;
        let unit = match unit {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(bad()),
        };
        return Ok(now - n.saturating_mul(unit));
    }
    // An RFC 3339 time with its offset (`Z` or `+02:00`); fractions of a second are
    // dropped (the API filters by whole seconds).
    t.parse::<jiff::Timestamp>()
        .map(|t| t.as_second())
        .map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_rfc3339_or_an_age() {
        assert_eq!(since_at("2026-12-05T02:00:00Z", 0), Ok(1_796_436_000));
        assert_eq!(
            time(Some(&prost_types::Timestamp {
                seconds: 1_796_436_000,
                nanos: 0
            })),
            "2026-12-05T02:00:00Z"
        );
        assert_eq!(since_at("1970-01-01T00:00:00Z", 5), Ok(0));
        assert_eq!(since_at("2000-03-01T00:00:01.5Z", 0), Ok(951_868_801));
        assert_eq!(since_at("2026-12-05T04:00:00+02:00", 0), Ok(1_796_436_000));
        assert_eq!(since_at("30m", 10_000), Ok(8_200));
        assert_eq!(since_at("2d", 200_000), Ok(27_200));
        for bad in [
            "yesterday",
            "5w",
            "m",
            "2026-12-05",
            "2026-13-01T00:00:00Z",
            "2026-12-05T02:00:00",
        ] {
            assert!(since_at(bad, 0).is_err(), "{bad}");
        }
    }
}

//! The text form of `convoy diff`, for a terminal and a Jenkins log alike (no colour,
//! no control characters: the CLI colours nothing elsewhere either).
//!
//! ```text
//! release web.shop: 1 of 2 contexts would change, 1 not compared
//! == east (us-east1): 1 to update, 1 to create, 2 unchanged
//! ~ apps/v1 Deployment shop/web
//!     spec.replicas: 1 -> 2
//! ~ v1 ConfigMap shop/web-config
//!     data["app.conf"]:
//!       - port = 80
//!       + port = 8080
//!         workers = 4
//! + v1 Service shop/web (create)
//! == south (sa-east1): agent offline: nothing compared
//! ```
//!
//! One marker per object (`~` update, `+` create, `-` delete, `!` refused, `=`
//! unchanged, `?` unknown) so `grep '^[~+-]'` finds what would change.

use std::io::{self, Write};

use convoy_proto::v1 as pb;

use super::lines::{self, Line};
use super::{ObjectCounts, Summary, object_ref, printable};

/// A displayed value longer than this many characters is cut (`-o json` has it whole).
const SHOWN_CHARS: usize = 200;

/// What the text form includes beyond the changes.
#[derive(Debug, Default, Clone, Copy)]
pub struct Options {
    /// List unchanged objects too (`= ...`), not only count them.
    pub show_unchanged: bool,
}

/// Writes the whole diff.
pub fn write(out: &mut impl Write, r: &pb::DiffReleaseResponse, opts: Options) -> io::Result<()> {
    writeln!(out, "{}", headline(&printable(&r.release), &Summary::of(r)))?;
    for c in &r.contexts {
        context(out, c, opts)?;
    }
    Ok(())
}

fn headline(release: &str, s: &Summary) -> String {
    if s.contexts == 0 {
        return format!("release {release}: no target contexts");
    }
    let noun = if s.contexts == 1 { "context" } else { "contexts" };
    let mut line = format!(
        "release {release}: {} of {} {noun} would change",
        s.changed, s.contexts
    );
    if !s.failed.is_empty() {
        line.push_str(&format!(", {} would fail a submit's preflight", s.failed.len()));
    }
    if !s.not_compared.is_empty() {
        line.push_str(&format!(", {} not compared", s.not_compared.len()));
    }
    line
}

fn context(out: &mut impl Write, c: &pb::ContextDiff, opts: Options) -> io::Result<()> {
    let name = if c.region.is_empty() {
        printable(&c.context)
    } else {
        printable(&format!("{} ({})", c.context, c.region))
    };
    // The coordinator's message says it best when it says anything.
    let why = |label: &str, otherwise: &str| {
        let detail = if c.message.is_empty() {
            otherwise.to_string()
        } else {
            printable(&c.message)
        };
        format!("{label}: {detail}")
    };
    let state = match pb::DiffStatus::try_from(c.status) {
        Ok(pb::DiffStatus::Done) => counts_phrase(&ObjectCounts::of(&c.objects)),
        Ok(pb::DiffStatus::AgentOffline) => why("agent offline", "nothing compared"),
        Ok(pb::DiffStatus::TimedOut) => why("timed out", "the agent did not answer in time"),
        Ok(pb::DiffStatus::Failed) => why("dry run failed, a submit would fail here", "no reason given"),
        Ok(pb::DiffStatus::Unspecified) | Err(_) => why(
            &format!("status {} unknown to this convoy", c.status),
            "nothing shown",
        ),
    };
    writeln!(out, "== {name}: {state}")?;
    if c.status != pb::DiffStatus::Done as i32 {
        return Ok(());
    }
    for o in &c.objects {
        object(out, o, opts)?;
    }
    Ok(())
}

/// `1 to update, 1 to create, 3 unchanged`, or `no changes (4 objects)`.
fn counts_phrase(n: &ObjectCounts) -> String {
    let total = n.changed() + n.unchanged;
    if n.changed() == 0 {
        let s = if total == 1 { "" } else { "s" };
        return format!("no changes ({total} object{s})");
    }
    let parts = [
        (n.update, "to update"),
        (n.create, "to create"),
        (n.delete, "to delete"),
        (n.refused, "refused"),
        (n.unknown, "unknown action"),
        (n.unchanged, "unchanged"),
    ];
    parts
        .iter()
        .filter(|(k, _)| *k > 0)
        .map(|(k, what)| format!("{k} {what}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn object(out: &mut impl Write, o: &pb::ObjectDiff, opts: Options) -> io::Result<()> {
    let what = object_ref(o);
    match pb::DiffAction::try_from(o.action) {
        Ok(pb::DiffAction::Update) => update(out, &what, &o.changes),
        Ok(pb::DiffAction::Create) => writeln!(out, "+ {what} (create)"),
        Ok(pb::DiffAction::Delete) => writeln!(out, "- {what} (delete)"),
        Ok(pb::DiffAction::Refused) => {
            writeln!(out, "! {what}: refused: {}", printable(&o.message))
        }
        Ok(pb::DiffAction::Unchanged) if opts.show_unchanged => writeln!(out, "= {what}"),
        Ok(pb::DiffAction::Unchanged) => Ok(()),
        Ok(pb::DiffAction::Unspecified) | Err(_) => {
            writeln!(out, "? {what}: action {} unknown to this convoy", o.action)
        }
    }
}

fn update(out: &mut impl Write, what: &str, changes: &[pb::FieldChange]) -> io::Result<()> {
    if !changes.is_empty() && changes.iter().all(|c| c.masked) {
        // A Secret's data: one line, since there is nothing to show but the keys.
        let paths: Vec<String> = changes.iter().map(|c| printable(&c.path)).collect();
        let s = if paths.len() == 1 { "value" } else { "values" };
        return writeln!(out, "~ {what}: {} ({s} hidden)", paths.join(", "));
    }
    writeln!(out, "~ {what}")?;
    for c in changes {
        field(out, c)?;
    }
    Ok(())
}

/// One side of a change, as far as the text form cares.
enum Value {
    Absent,
    /// A JSON string, decoded.
    Text(String),
    /// Any other JSON, or text that is not JSON (truncated).
    Other,
}

fn value(raw: &str, truncated: bool) -> Value {
    if raw.is_empty() {
        return Value::Absent;
    }
    if truncated {
        return Value::Other;
    }
    match serde_json::from_str::<serde_json::Value>(raw) {
        Ok(serde_json::Value::String(s)) => Value::Text(s),
        _ => Value::Other,
    }
}

fn field(out: &mut impl Write, c: &pb::FieldChange) -> io::Result<()> {
    let path = printable(&c.path);
    if c.masked {
        // Never print values of a masked change, whatever the server put in them.
        return writeln!(out, "    {path}: (value hidden)");
    }
    let (before, after) = (value(&c.before, c.truncated), value(&c.after, c.truncated));
    let text = |v: &Value| match v {
        Value::Absent => Some(String::new()),
        Value::Text(s) => Some(s.clone()),
        Value::Other => None,
    };
    let multiline = [&before, &after]
        .iter()
        .any(|v| matches!(v, Value::Text(s) if s.contains('\n')));
    if let (true, Some(old), Some(new)) = (multiline, text(&before), text(&after)) {
        writeln!(out, "    {path}:")?;
        return text_diff(out, &old, &new);
    }
    let cut = if c.truncated {
        " (truncated: longer than the agent reports)"
    } else {
        ""
    };
    writeln!(
        out,
        "    {path}: {} -> {}{cut}",
        shown(&c.before),
        shown(&c.after)
    )
}

/// A JSON value on one line, cut at [`SHOWN_CHARS`].
fn shown(raw: &str) -> String {
    if raw.is_empty() {
        return "(absent)".to_string();
    }
    let mut s: String = raw.chars().take(SHOWN_CHARS).collect();
    if s.len() < raw.len() {
        s.push_str("...");
    }
    printable(&s)
}

fn mark(out: &mut impl Write, sign: &str, line: &str) -> io::Result<()> {
    writeln!(out, "      {sign} {}", printable(line))
}

/// A line diff of two multi-line texts, indented under the field's path.
fn text_diff(out: &mut impl Write, old: &str, new: &str) -> io::Result<()> {
    let (a, b): (Vec<&str>, Vec<&str>) = (old.lines().collect(), new.lines().collect());
    match lines::diff(&a, &b) {
        Some(d) => {
            for l in lines::hunks(&d) {
                match l {
                    None => writeln!(out, "        ...")?,
                    Some(Line::Same(l)) => mark(out, " ", l)?,
                    Some(Line::Removed(l)) => mark(out, "-", l)?,
                    Some(Line::Added(l)) => mark(out, "+", l)?,
                }
            }
        }
        None => {
            writeln!(
                out,
                "      (too many changed lines to compare: both values in full)"
            )?;
            for l in &a {
                mark(out, "-", l)?;
            }
            for l in &b {
                mark(out, "+", l)?;
            }
        }
    }
    // `lines()` hides a final newline; say so when only it differs.
    let ends = |s: &str| !s.is_empty() && s.ends_with('\n');
    match (ends(old), ends(new)) {
        (true, false) if !new.is_empty() => writeln!(out, "      (newline at end removed)"),
        (false, true) if !old.is_empty() => writeln!(out, "      (newline at end added)"),
        _ => Ok(()),
    }
}

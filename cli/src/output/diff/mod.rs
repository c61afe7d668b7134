//! `convoy diff`'s output: the coordinator's `DiffReleaseResponse` as text for people
//! and logs ([`text`]), as JSON for scripts (`output::json::diff`), and the counts both
//! print and the exit code is decided from.
//!
//! The response carries no secret values (the agents and the coordinator withhold
//! them and set `masked`); this module never prints a masked change's values even if
//! a faulty server sent some.

mod lines;
pub mod text;

#[cfg(test)]
mod tests;

use convoy_proto::v1 as pb;

/// Objects of one context by what a submit would do to them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ObjectCounts {
    pub create: usize,
    pub update: usize,
    pub delete: usize,
    pub unchanged: usize,
    pub refused: usize,
    /// Actions this CLI does not know (a newer coordinator): counted as changes, since
    /// something other than "unchanged" would happen.
    pub unknown: usize,
}

impl ObjectCounts {
    pub fn of(objects: &[pb::ObjectDiff]) -> Self {
        let mut c = ObjectCounts::default();
        for o in objects {
            match pb::DiffAction::try_from(o.action) {
                Ok(pb::DiffAction::Create) => c.create += 1,
                Ok(pb::DiffAction::Update) => c.update += 1,
                Ok(pb::DiffAction::Delete) => c.delete += 1,
                Ok(pb::DiffAction::Unchanged) => c.unchanged += 1,
                Ok(pb::DiffAction::Refused) => c.refused += 1,
                Ok(pb::DiffAction::Unspecified) | Err(_) => c.unknown += 1,
            }
        }
        c
    }

    /// Objects a submit would touch (or be refused on).
    pub fn changed(&self) -> usize {
        self.create + self.update + self.delete + self.refused + self.unknown
    }

    fn add(&mut self, o: &ObjectCounts) {
        self.create += o.create;
        self.update += o.update;
        self.delete += o.delete;
        self.unchanged += o.unchanged;
        self.refused += o.refused;
        self.unknown += o.unknown;
    }
}

/// Counts over a whole response: what the header line, the JSON `summary` and the exit
/// code are decided from.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub contexts: usize,
    /// Compared, with at least one object that would change.
    pub changed: usize,
    /// Compared, nothing would change.
    pub unchanged: usize,
    /// The dry run failed, or an object would be refused: a submit would fail its
    /// preflight there. Names, with why.
    pub failed: Vec<(String, String)>,
    /// Not compared (agent offline, timed out, or a status this CLI does not know).
    /// Names, with why.
    pub not_compared: Vec<(String, String)>,
    /// Summed over the compared contexts.
    pub objects: ObjectCounts,
}

impl Summary {
    pub fn of(r: &pb::DiffReleaseResponse) -> Self {
        let mut s = Summary {
            contexts: r.contexts.len(),
            ..Summary::default()
        };
        for c in &r.contexts {
            match pb::DiffStatus::try_from(c.status) {
                Ok(pb::DiffStatus::Done) => {
                    let counts = ObjectCounts::of(&c.objects);
                    s.objects.add(&counts);
                    if counts.changed() > 0 {
                        s.changed += 1;
                    } else {
                        s.unchanged += 1;
                    }
                    if counts.refused > 0 {
                        let why: Vec<String> = c
                            .objects
                            .iter()
                            .filter(|o| o.action == pb::DiffAction::Refused as i32)
                            .map(|o| format!("{} refused: {}", object_ref(o), o.message))
                            .collect();
                        s.failed.push((c.context.clone(), why.join("; ")));
                    }
                }
                Ok(pb::DiffStatus::Failed) => s.failed.push((c.context.clone(), c.message.clone())),
                _ => s
                    .not_compared
                    .push((c.context.clone(), status_phrase(c.status).to_string())),
            }
        }
        s
    }
}

/// A context status in the JSON document's words: `done`, `agent_offline`,
/// `timed_out`, `failed`, or `unknown`.
pub fn status_name(status: i32) -> String {
    pb::DiffStatus::try_from(status)
        .ok()
        .filter(|s| *s != pb::DiffStatus::Unspecified)
        .and_then(|s| s.as_str_name().strip_prefix("DIFF_STATUS_"))
        .map_or_else(|| "unknown".to_string(), str::to_lowercase)
}

/// An object action in the JSON document's words: `create`, `update`, `unchanged`,
/// `delete`, `refused`, or `unknown`.
pub fn action_name(action: i32) -> String {
    pb::DiffAction::try_from(action)
        .ok()
        .filter(|a| *a != pb::DiffAction::Unspecified)
        .and_then(|a| a.as_str_name().strip_prefix("DIFF_ACTION_"))
        .map_or_else(|| "unknown".to_string(), str::to_lowercase)
}

/// Why a context that was not compared was not, in a few words.
fn status_phrase(status: i32) -> &'static str {
    match pb::DiffStatus::try_from(status) {
        Ok(pb::DiffStatus::AgentOffline) => "agent offline",
        Ok(pb::DiffStatus::TimedOut) => "timed out",
        Ok(pb::DiffStatus::Failed) => "dry run failed",
        Ok(pb::DiffStatus::Done) => "compared",
        Ok(pb::DiffStatus::Unspecified) | Err(_) => "unknown status",
    }
}

/// `apps/v1 Deployment ns1/web`, or `v1 Namespace ns1` for a cluster-scoped object.
pub fn object_ref(o: &pb::ObjectDiff) -> String {
    let name = if o.namespace.is_empty() {
        o.name.clone()
    } else {
        format!("{}/{}", o.namespace, o.name)
    };
    printable(&format!("{} {} {name}", o.api_version, o.kind))
}

/// `s` with control characters (other than tab) escaped: values come from the
/// clusters, and a raw escape sequence in a ConfigMap must not drive the terminal or
/// split a log line.
pub fn printable(s: &str) -> String {
    if !s.chars().any(|c| c.is_control() && c != '\t') {
        return s.to_string();
    }
    s.chars()
        .map(|c| {
            if c.is_control() && c != '\t' {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

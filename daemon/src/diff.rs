//! What a submit would change, in domain terms: the agents' dry-run results per
//! context, and the last line of defence that keeps secret values out of them.

use convoy_release::mask::Masker;

/// What a dry run says would happen to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiffAction {
    Create,
    Update,
    Unchanged,
    Delete,
    Refused,
}

/// One field whose value would change. Values are JSON text; empty means absent.
#[derive(Clone, PartialEq, Eq)]
pub struct FieldChange {
    pub path: String,
    pub before: String,
    pub after: String,
    /// The values are withheld: they are, or may be, secret.
    pub masked: bool,
    /// A value was cut at the agent's limit.
    pub truncated: bool,
}

impl std::fmt::Debug for FieldChange {
    // Values may be large (and were only masked by the time anyone prints them).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "FieldChange({}, masked: {}, {}/{} bytes)",
            self.path,
            self.masked,
            self.before.len(),
            self.after.len()
        )
    }
}

/// One object of a context's diff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectDiff {
    pub api_version: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub action: DiffAction,
    pub changes: Vec<FieldChange>,
    /// For `Refused`: why.
    pub message: String,
}

/// How one context's diff ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiffOutcome {
    /// The agent's dry run answered.
    Done(Vec<ObjectDiff>),
    /// No agent is connected for the context (or it went away before answering).
    AgentOffline(String),
    /// The agent did not answer in time.
    TimedOut(String),
    /// The dry run failed; why.
    Failed(String),
}

/// One context's diff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextDiff {
    pub context: String,
    pub region: String,
    pub outcome: DiffOutcome,
}

/// Top-level keys of a Secret whose values are secret, whatever they hold.
const SECRET_FIELDS: &[&str] = &["data", "stringData"];

/// Hides secret values in a diff. Agents already withhold a Secret's data (old and
/// new); this catches the rest: a resolved secret's text (or base64 form) in any
/// other field, before or after. When either side of a change holds a secret, both
/// sides are withheld: the field held a secret, so its old value most likely did too
/// (a rotation), and the coordinator does not know old secret values to look for.
pub fn mask(outcome: &mut DiffOutcome, masker: &Masker) {
    match outcome {
        DiffOutcome::Done(objects) => {
            for o in objects {
                o.message = masker.mask(&o.message);
                let secret_kind = o.kind == "Secret" && o.api_version == "v1";
                for c in &mut o.changes {
                    let secret_field = secret_kind && SECRET_FIELDS.iter().any(|f| is_under(&c.path, f));
                    if c.masked || secret_field || masker.reveals(&c.before) || masker.reveals(&c.after) {
                        c.masked = true;
                        c.before.clear();
                        c.after.clear();
                        c.truncated = false;
                    }
                }
            }
        }
        DiffOutcome::AgentOffline(m) | DiffOutcome::TimedOut(m) | DiffOutcome::Failed(m) => {
            *m = masker.mask(m);
        }
    }
}

/// Whether `path` is `field` or below it (`data`, `data.x`, `data["a.b"]`).
fn is_under(path: &str, field: &str) -> bool {
    path.strip_prefix(field)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('.') || rest.starts_with('['))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn change(path: &str, before: &str, after: &str) -> FieldChange {
        FieldChange {
            path: path.into(),
            before: before.into(),
            after: after.into(),
            masked: false,
            truncated: false,
        }
    }

    fn object(kind: &str, changes: Vec<FieldChange>) -> ObjectDiff {
        ObjectDiff {
            api_version: "v1".into(),
            kind: kind.into(),
            namespace: "ns1".into(),
            name: "x".into(),
            action: DiffAction::Update,
            changes,
            message: String::new(),
        }
    }

    #[test]
    fn secrets_are_withheld_on_both_sides_and_the_rest_is_kept() {
        let canary = json!("canary-7f3a9");
        let masker = Masker::new([&canary]);
        let mut outcome = DiffOutcome::Done(vec![
            object(
                "ConfigMap",
                vec![
                    change(
                        "data.url",
                        r#""postgres://u:old-secret@db""#,
                        r#""postgres://u:canary-7f3a9@db""#,
                    ),
                    change("data.level", r#""info""#, r#""debug""#),
                ],
            ),
            // An agent that did not mask a Secret's data: the coordinator does.
            object(
                "Secret",
                vec![change(r#"data["db.pw"]"#, r#""b2xk""#, r#""bmV3""#)],
            ),
            object("Secret", vec![change("metadata.labels.tier", r#""a""#, r#""b""#)]),
        ]);
        mask(&mut outcome, &masker);
        let DiffOutcome::Done(objects) = &outcome else {
            panic!("expected a finished diff, got {outcome:?}")
        };
        let url = &objects[0].changes[0];
        assert!(url.masked && url.before.is_empty() && url.after.is_empty());
        assert_eq!(
            objects[0].changes[1],
            change("data.level", r#""info""#, r#""debug""#)
        );
        assert!(objects[1].changes[0].masked);
        assert!(!objects[2].changes[0].masked, "a Secret's labels are not secret");
        assert!(!format!("{outcome:?}").contains("canary-7f3a9"));
    }

    #[test]
    fn failure_messages_are_masked() {
        let canary = json!("canary-7f3a9");
        let mut outcome = DiffOutcome::Failed("ConfigMap ns1/x: invalid value canary-7f3a9".into());
        mask(&mut outcome, &Masker::new([&canary]));
        assert_eq!(
            outcome,
            DiffOutcome::Failed("ConfigMap ns1/x: invalid value <masked>".into())
        );
    }

    #[test]
    fn field_prefixes_match_whole_segments() {
        assert!(is_under("data", "data") && is_under("data.a", "data") && is_under(r#"data["a.b"]"#, "data"));
        assert!(!is_under("dataset", "data") && !is_under("stringDataX", "stringData"));
    }
}

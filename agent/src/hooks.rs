//! Helm hooks: which of a revision's hook objects run at which point of a command, in
//! which order, and what becomes of them afterwards.
//!
//! The coordinator renders hooks (objects annotated `helm.sh/hook`) apart from the
//! release's objects; this module reads their three annotations the way Helm does and
//! leaves running them to the backend ([`crate::backend::Backend::run_hook`]) and the
//! sequencing to the runtime:
//!
//! ```text
//! install   lock -> pre-install  -> apply -> healthy -> post-install  -> Healthy
//! upgrade   lock -> pre-upgrade  -> apply -> healthy -> post-upgrade  -> Healthy
//! rollback  lock -> pre-rollback -> re-apply N -> healthy -> post-rollback -> Healthy
//! ```
//!
//! convoy has neither a delete nor a test command, so `pre-delete`, `post-delete` and
//! the `test` events are never run (logged once per hook that carries them).

// `Failure` is the Backend trait's error (the runtime sends it as is); it is built once
// per refused command, never on a hot path, so its size does not matter.
#![allow(clippy::result_large_err)]

use std::cmp::Ordering;
use std::fmt;

use serde_json::Value;

use crate::backend::{Failure, FailureReason, Manifest, ObjectRef};
use crate::kube::{manifest, order};

/// The annotation that makes an object a hook, listing its events.
pub const HOOK_ANNOTATION: &str = "helm.sh/hook";
/// An integer ordering hooks of one event (lower first; default 0).
pub const WEIGHT_ANNOTATION: &str = "helm.sh/hook-weight";
/// When a hook object is deleted.
pub const DELETE_POLICY_ANNOTATION: &str = "helm.sh/hook-delete-policy";

/// The events of a hook that convoy runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HookEvent {
    PreInstall,
    PostInstall,
    PreUpgrade,
    PostUpgrade,
    PreRollback,
    PostRollback,
}

impl HookEvent {
    /// Helm's spelling, as in the annotation.
    pub fn as_str(self) -> &'static str {
        match self {
            HookEvent::PreInstall => "pre-install",
            HookEvent::PostInstall => "post-install",
            HookEvent::PreUpgrade => "pre-upgrade",
            HookEvent::PostUpgrade => "post-upgrade",
            HookEvent::PreRollback => "pre-rollback",
            HookEvent::PostRollback => "post-rollback",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pre-install" => HookEvent::PreInstall,
            "post-install" => HookEvent::PostInstall,
            "pre-upgrade" => HookEvent::PreUpgrade,
            "post-upgrade" => HookEvent::PostUpgrade,
            "pre-rollback" => HookEvent::PreRollback,
            "post-rollback" => HookEvent::PostRollback,
            _ => return None,
        })
    }

    /// The events before (`pre`) or after the change of a deploy: install when the
    /// cluster's history holds no revision of the release yet, upgrade otherwise.
    pub fn for_deploy(installed: bool, pre: bool) -> Self {
        match (installed, pre) {
            (false, true) => HookEvent::PreInstall,
            (false, false) => HookEvent::PostInstall,
            (true, true) => HookEvent::PreUpgrade,
            (true, false) => HookEvent::PostUpgrade,
        }
    }
}

impl fmt::Display for HookEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Events Helm knows that convoy never runs: it has no delete and no test command.
const UNSUPPORTED_EVENTS: &[&str] = &[
    "pre-delete",
    "post-delete",
    "test",
    "test-success",
    "test-failure",
    "crd-install",
];

/// `helm.sh/hook-delete-policy`, as a set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeletePolicy {
    /// `before-hook-creation`: delete a leftover object of the same name (and wait
    /// until it is gone) before creating the hook. Helm's default when no policy is set.
    pub before_hook_creation: bool,
    /// `hook-succeeded`: delete the object once the hook succeeded.
    pub hook_succeeded: bool,
    /// `hook-failed`: delete the object once the hook failed.
    pub hook_failed: bool,
}

impl Default for DeletePolicy {
    fn default() -> Self {
        DeletePolicy {
            before_hook_creation: true,
            hook_succeeded: false,
            hook_failed: false,
        }
    }
}

/// One hook object with what its annotations say.
#[derive(Clone)]
pub struct Hook {
    /// The manifest it came from (`app1/templates/migrate.yaml`), for errors.
    pub source: String,
    /// Its identity as rendered (namespace None when the chart left it out).
    pub object: ObjectRef,
    /// The events it runs at that convoy supports, in annotation order.
    pub events: Vec<HookEvent>,
    pub weight: i32,
    pub delete: DeletePolicy,
    /// The object as rendered. May hold secret values: never logged.
    pub body: Value,
}

/// Names the hook only: its body may hold secret values.
impl fmt::Debug for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hook")
            .field("source", &self.source)
            .field("object", &self.object.to_string())
            .field("events", &self.events)
            .field("weight", &self.weight)
            .field("delete", &self.delete)
            .finish()
    }
}

impl Hook {
    /// `job/migrate`: how progress and failures name a hook.
    pub fn label(&self) -> String {
        format!("{}/{}", self.object.kind.to_lowercase(), self.object.name)
    }

    /// Whether the hook runs at `event`.
    pub fn runs_at(&self, event: HookEvent) -> bool {
        self.events.contains(&event)
    }
}

fn refuse(object: &ObjectRef, source: &str, annotation: &str, what: String) -> Failure {
    Failure::new(
        FailureReason::ApplyRefused,
        format!("hook {object} ({source}): annotation {annotation}: {what}"),
    )
    .with_object(object.clone())
}

/// Parses every hook manifest. A hook whose events are all unsupported (`pre-delete`,
/// `test`, ...) is left out with a log line; an unknown event, a weight that is not an
/// integer or an unknown delete policy refuses the whole set, naming the object and
/// the annotation, before anything runs.
pub fn parse(manifests: &[Manifest]) -> Result<Vec<Hook>, Failure> {
    let mut hooks = Vec::new();
    for obj in manifest::parse(manifests)? {
        let object = obj.object_ref();
        let annotations = obj.body["metadata"]["annotations"].as_object();
        let text = |key: &str| -> Result<Option<&str>, Failure> {
            match annotations.and_then(|a| a.get(key)) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.as_str())),
                Some(other) => Err(refuse(
                    &object,
                    &obj.source,
                    key,
                    format!("expected a string, got {other}"),
                )),
            }
        };
        let Some(events_text) = text(HOOK_ANNOTATION)? else {
            return Err(refuse(
                &object,
                &obj.source,
                HOOK_ANNOTATION,
                "missing: the coordinator sent an object that is not a hook as a hook".into(),
            ));
        };
        let mut events = Vec::new();
        let mut skipped = Vec::new();
        for e in events_text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            match HookEvent::parse(e) {
                Some(ev) if !events.contains(&ev) => events.push(ev),
                Some(_) => {}
                None if UNSUPPORTED_EVENTS.contains(&e) => skipped.push(e),
                None => {
                    return Err(refuse(
                        &object,
                        &obj.source,
                        HOOK_ANNOTATION,
                        format!(
                            "unknown event {e:?} (expected pre-install, post-install, pre-upgrade, post-upgrade, pre-rollback or post-rollback)"
                        ),
                    ));
                }
            }
        }
        if !skipped.is_empty() {
            tracing::info!(hook = %object, source = %obj.source, events = %skipped.join(","),
                "hook events never run: convoy has no delete or test command");
        }
        if events.is_empty() {
            if skipped.is_empty() {
                return Err(refuse(
                    &object,
                    &obj.source,
                    HOOK_ANNOTATION,
                    "lists no event".into(),
                ));
            }
            continue;
        }
        let weight = match text(WEIGHT_ANNOTATION)?.map(str::trim) {
            None | Some("") => 0,
            Some(w) => w.parse::<i32>().map_err(|_| {
                refuse(
                    &object,
                    &obj.source,
                    WEIGHT_ANNOTATION,
                    format!("expected an integer like \"-5\" or \"10\", got {w:?}"),
                )
            })?,
        };
        let delete = match text(DELETE_POLICY_ANNOTATION)? {
            None => DeletePolicy::default(),
            Some(p) => parse_delete_policy(p)
                .map_err(|what| refuse(&object, &obj.source, DELETE_POLICY_ANNOTATION, what))?,
        };
        hooks.push(Hook {
            source: obj.source,
            object,
            events,
            weight,
            delete,
            body: obj.body,
        });
    }
    Ok(hooks)
}

fn parse_delete_policy(text: &str) -> Result<DeletePolicy, String> {
    let mut policy = DeletePolicy {
        before_hook_creation: false,
        hook_succeeded: false,
        hook_failed: false,
    };
    let mut any = false;
    for p in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        any = true;
        match p {
            "before-hook-creation" => policy.before_hook_creation = true,
            "hook-succeeded" => policy.hook_succeeded = true,
            "hook-failed" => policy.hook_failed = true,
            other => {
                return Err(format!(
                    "unknown policy {other:?} (expected before-hook-creation, hook-succeeded or hook-failed)"
                ));
            }
        }
    }
    // An empty annotation is no policy at all: Helm's default applies.
    Ok(if any { policy } else { DeletePolicy::default() })
}

/// Helm's order of hooks within one event: weight, then kind (install order), then name.
fn compare(a: &Hook, b: &Hook) -> Ordering {
    a.weight
        .cmp(&b.weight)
        .then_with(|| order::tier(&a.object.kind).cmp(&order::tier(&b.object.kind)))
        .then_with(|| a.object.name.cmp(&b.object.name))
}

/// A failed hook: `HookFailed`, naming the event and the hook, then what went wrong.
pub fn failure(event: HookEvent, hook: &Hook, detail: impl fmt::Display) -> Failure {
    Failure::new(
        FailureReason::HookFailed,
        format!("hook {event} {}: {detail}", hook.label()),
    )
    .with_object(hook.object.clone())
}

/// The hooks that run at `event`, in the order they run.
pub fn for_event(hooks: &[Hook], event: HookEvent) -> Vec<&Hook> {
    let mut out: Vec<&Hook> = hooks.iter().filter(|h| h.runs_at(event)).collect();
    out.sort_by(|a, b| compare(a, b));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(kind: &str, name: &str, annotations: &str) -> Manifest {
        let api = if kind == "Job" { "batch/v1" } else { "v1" };
        Manifest {
            source: format!("app1/templates/{name}.yaml"),
            content: format!(
                "apiVersion: {api}\nkind: {kind}\nmetadata:\n  name: {name}\n  annotations: {{{annotations}}}\n"
            ),
        }
    }

    #[test]
    fn reads_events_weight_and_delete_policy_with_helm_defaults() {
        let hooks = parse(&[
            hook("Job", "migrate", r#""helm.sh/hook": "pre-install, pre-upgrade", "helm.sh/hook-weight": "-5", "helm.sh/hook-delete-policy": "hook-succeeded,hook-failed""#),
            hook("ConfigMap", "cfg", r#""helm.sh/hook": "post-upgrade""#),
        ])
        .unwrap();
        assert_eq!(hooks[0].events, [HookEvent::PreInstall, HookEvent::PreUpgrade]);
        assert_eq!(hooks[0].weight, -5);
        assert_eq!(
            hooks[0].delete,
            DeletePolicy {
                before_hook_creation: false,
                hook_succeeded: true,
                hook_failed: true
            }
        );
        assert_eq!(hooks[0].label(), "job/migrate");
        assert_eq!(hooks[1].weight, 0);
        assert_eq!(hooks[1].delete, DeletePolicy::default());
        assert!(hooks[1].delete.before_hook_creation);
    }

    #[test]
    fn delete_and_test_hooks_are_left_out_and_mixed_ones_keep_their_supported_events() {
        let hooks = parse(&[
            hook("Job", "cleanup", r#""helm.sh/hook": "pre-delete,post-delete""#),
            hook("Pod", "smoke", r#""helm.sh/hook": "test""#),
            hook("Job", "both", r#""helm.sh/hook": "post-delete, post-install""#),
        ])
        .unwrap();
        assert_eq!(hooks.len(), 1);
        assert_eq!(hooks[0].object.name, "both");
        assert_eq!(hooks[0].events, [HookEvent::PostInstall]);
    }

    #[test]
    fn bad_annotations_fail_naming_the_object_and_the_annotation() {
        for (ann, want) in [
            (
                r#""helm.sh/hook": "pre-upgarde""#,
                "annotation helm.sh/hook: unknown event \"pre-upgarde\"",
            ),
            (
                r#""helm.sh/hook": " , ""#,
                "annotation helm.sh/hook: lists no event",
            ),
            (
                r#""helm.sh/hook": "pre-upgrade", "helm.sh/hook-weight": "high""#,
                "annotation helm.sh/hook-weight: expected an integer like \"-5\" or \"10\", got \"high\"",
            ),
            (
                r#""helm.sh/hook": "pre-upgrade", "helm.sh/hook-weight": 5"#,
                "annotation helm.sh/hook-weight: expected a string, got 5",
            ),
            (
                r#""helm.sh/hook": "pre-upgrade", "helm.sh/hook-delete-policy": "never""#,
                "annotation helm.sh/hook-delete-policy: unknown policy \"never\"",
            ),
        ] {
            let err = parse(&[hook("Job", "migrate", ann)]).unwrap_err();
            assert_eq!(err.reason, FailureReason::ApplyRefused, "{ann}");
            assert!(
                err.message
                    .starts_with("hook job/migrate (app1/templates/migrate.yaml): ")
                    && err.message.contains(want),
                "{ann}: {}",
                err.message
            );
            assert_eq!(err.object.as_ref().map(|o| o.name.as_str()), Some("migrate"));
        }
        let err = parse(&[hook("Job", "plain", "a: b")]).unwrap_err();
        assert!(err.message.contains("helm.sh/hook: missing"), "{}", err.message);
    }

    #[test]
    fn an_empty_weight_or_policy_means_the_default() {
        let hooks = parse(&[hook(
            "Job",
            "m",
            r#""helm.sh/hook": "pre-upgrade", "helm.sh/hook-weight": "", "helm.sh/hook-delete-policy": """#,
        )])
        .unwrap();
        assert_eq!((hooks[0].weight, hooks[0].delete), (0, DeletePolicy::default()));
    }

    #[test]
    fn order_is_weight_then_kind_then_name_and_filters_by_event() {
        let hooks = parse(&[
            hook("Job", "b-job", r#""helm.sh/hook": "pre-upgrade""#),
            hook("Job", "a-job", r#""helm.sh/hook": "pre-upgrade""#),
            hook("ConfigMap", "z-cfg", r#""helm.sh/hook": "pre-upgrade""#),
            hook(
                "Job",
                "late",
                r#""helm.sh/hook": "pre-upgrade", "helm.sh/hook-weight": "10""#,
            ),
            hook(
                "Job",
                "early",
                r#""helm.sh/hook": "pre-upgrade,pre-install", "helm.sh/hook-weight": "-1""#,
            ),
            hook("Job", "after", r#""helm.sh/hook": "post-upgrade""#),
        ])
        .unwrap();
        let names = |e| {
            for_event(&hooks, e)
                .iter()
                .map(|h| h.object.name.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(HookEvent::PreUpgrade),
            ["early", "z-cfg", "a-job", "b-job", "late"]
        );
        assert_eq!(names(HookEvent::PreInstall), ["early"]);
        assert_eq!(names(HookEvent::PostUpgrade), ["after"]);
        assert!(names(HookEvent::PreRollback).is_empty());
    }

    #[test]
    fn deploys_pick_install_or_upgrade_events() {
        assert_eq!(HookEvent::for_deploy(false, true), HookEvent::PreInstall);
        assert_eq!(HookEvent::for_deploy(false, false), HookEvent::PostInstall);
        assert_eq!(HookEvent::for_deploy(true, true), HookEvent::PreUpgrade);
        assert_eq!(HookEvent::for_deploy(true, false), HookEvent::PostUpgrade);
    }

    #[test]
    fn debug_never_shows_the_body() {
        let hooks = parse(&[Manifest {
            source: "s".into(),
            content: "apiVersion: v1\nkind: Secret\nmetadata: {name: s, annotations: {helm.sh/hook: pre-install}}\nstringData: {password: hunter2}\n".into(),
        }])
        .unwrap();
        assert!(!format!("{:?}", hooks[0]).contains("hunter2"));
    }
}

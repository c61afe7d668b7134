//! Helm hooks in the simulated cluster: a hook "runs" on a timeline chosen by the
//! `sim.convoy.dev/behavior` annotation of its pod template (a Job) or of itself (a
//! Pod), exactly as the test pod simulator drives a real Job's pod: `healthy` or
//! `succeed` completes after `after`, `fail` (and crashing behaviours) fails after
//! `after`, and a pod that never gets going runs into the deadline. Other kinds are
//! done once created. Every run is recorded for inspection ([`SimBackend::hooks_run`]).

use serde_json::Value;

use super::{
    Arc, CancellationToken, Duration, HookEvent, HookOutcome, Instant, ObjectRef, OpRef, SimBackend,
};
use crate::hooks::{self, Hook};
use crate::sim::behavior::{ANNOTATION, Behavior};
use crate::sim::objects;

/// One hook run the simulated cluster saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookRun {
    /// The revision whose command ran it.
    pub revision: u64,
    pub event: HookEvent,
    /// Where it ran (namespace placed).
    pub object: ObjectRef,
    /// The revision the cluster had applied when the hook started: a pre-upgrade
    /// hook of revision 2 sees 1, its post-upgrade hook sees 2.
    pub applied: Option<u64>,
    pub succeeded: bool,
}

/// When a hook settles, relative to its creation: `Some((after, succeeded))`, or
/// `None` for one that never completes.
fn timeline(object: &ObjectRef, body: &Value) -> Result<Option<(Duration, bool)>, String> {
    let annotations = match object.kind.as_str() {
        "Job" => body.pointer("/spec/template/metadata/annotations"),
        "Pod" => body.pointer("/metadata/annotations"),
        _ => return Ok(Some((Duration::ZERO, true))),
    };
    let behavior = match annotations.and_then(|a| a.get(ANNOTATION)) {
        None => Behavior::default(),
        Some(Value::String(v)) => Behavior::parse(v).map_err(|e| e.to_string())?,
        Some(_) => return Err(format!("annotation {ANNOTATION} must be a string")),
    };
    Ok(match behavior {
        Behavior::Healthy { after } | Behavior::Succeed { after } => Some((after, true)),
        Behavior::Fail { after } | Behavior::CrashLoop { after } => Some((after, false)),
        Behavior::Flapping { ready, after } => Some((ready + after, false)),
        Behavior::NeverReady | Behavior::ImagePullError | Behavior::ConfigError => None,
    })
}

impl SimBackend {
    /// Every hook run of `release`, oldest first.
    pub fn hooks_run(&self, release: &str) -> Vec<HookRun> {
        self.cluster()
            .releases
            .get(release)
            .map(|r| r.hook_runs.clone())
            .unwrap_or_default()
    }

    /// The hook objects of `release` still in the cluster (kept by their delete policy).
    pub fn hook_objects(&self, release: &str) -> Vec<ObjectRef> {
        self.cluster()
            .releases
            .get(release)
            .map(|r| r.hook_objects.keys().cloned().collect())
            .unwrap_or_default()
    }

    pub(super) async fn run_hook_in_sim(
        &self,
        op: &OpRef,
        namespace: &str,
        hook: &Hook,
        event: HookEvent,
        deadline: Duration,
        cancel: CancellationToken,
    ) -> HookOutcome {
        self.latency().await;
        let placed = match objects::place_and_label(hook.body.clone(), &hook.source, namespace, &op.release) {
            Ok(p) => p,
            Err(f) => return HookOutcome::Failed(hooks::failure(event, hook, f.message)),
        };
        let object = placed.object;
        let settles = match timeline(&object, &placed.body) {
            Ok(t) => t,
            Err(e) => return HookOutcome::Failed(hooks::failure(event, hook, format!("{object}: {e}"))),
        };
        let applied = {
            let mut cluster = self.cluster();
            let release = cluster.releases.entry(op.release.clone()).or_default();
            if release.hook_objects.contains_key(&object) {
                if !hook.delete.before_hook_creation {
                    let f = hooks::failure(
                        event,
                        hook,
                        format!(
                            "{object} already exists (left by an earlier run); add before-hook-creation to its {}",
                            hooks::DELETE_POLICY_ANNOTATION
                        ),
                    );
                    return HookOutcome::Failed(f);
                }
                release.hook_objects.remove(&object);
            }
            release.hook_objects.insert(object.clone(), Arc::new(placed.body));
            release.current
        };
        let started = Instant::now();
        let result = match settles {
            Some((after, ok)) if after <= deadline => {
                tokio::select! {
                    biased;
                    _ = cancel.cancelled() => return HookOutcome::Cancelled,
                    _ = tokio::time::sleep_until(started + after) => {}
                }
                if ok {
                    Ok(())
                } else {
                    Err(format!(
                        "{object} failed: its pod exited with code 1 (BackoffLimitExceeded)"
                    ))
                }
            }
            _ => {
                tokio::select! {
                    biased;
                    _ = cancel.cancelled() => return HookOutcome::Cancelled,
                    _ = tokio::time::sleep_until(started + deadline) => {}
                }
                Err(format!(
                    "{object} did not complete within the progress deadline ({}s)",
                    deadline.as_secs()
                ))
            }
        };
        let succeeded = result.is_ok();
        let mut cluster = self.cluster();
        let release = cluster.releases.entry(op.release.clone()).or_default();
        let delete = if succeeded {
            hook.delete.hook_succeeded
        } else {
            hook.delete.hook_failed
        };
        if delete {
            release.hook_objects.remove(&object);
        }
        release.hook_runs.push(HookRun {
            revision: op.revision,
            event,
            object,
            applied,
            succeeded,
        });
        match result {
            Ok(()) => HookOutcome::Succeeded,
            Err(detail) => HookOutcome::Failed(hooks::failure(event, hook, detail)),
        }
    }
}

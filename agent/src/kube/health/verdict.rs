//! The rollout verdict, as a pure state machine over status snapshots: no kube types,
//! no clock, no I/O. The watcher ([`super::watch`]) turns cluster objects into
//! [`Snapshot`]s and feeds them in with the time elapsed since the watch began; the
//! tests here feed hand-made snapshots.
//!
//! Rules (judged against the new revision only):
//! - a workload is healthy when its controller has observed the latest generation and
//!   every desired replica is updated AND available, with no old replica left; "0 of 1
//!   available" is never enough (the one-replica, `maxUnavailable: 1` trap);
//! - the controller's own `ProgressDeadlineExceeded`, a failed Job, or a new pod waiting
//!   in CrashLoopBackOff / ImagePullBackOff / ErrImagePull / CreateContainerConfigError
//!   fail at once (fail fast, with the pod's message);
//! - no change in progress for `progress_deadline` fails;
//! - healthy must hold for `min_ready_window`: a restart of a new pod or a loss of
//!   readiness inside it fails with `RestartedInReadyWindow` (the flapping pod that
//!   passes `helm --wait`).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use crate::backend::{Failure, FailureReason, HealthPolicy, ObjectProgress, ObjectRef, ProgressUpdate};

/// The workload kinds whose rollout is judged; other kinds are healthy once applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkloadKind {
    Deployment,
    StatefulSet,
    DaemonSet,
    Job,
}

impl WorkloadKind {
    pub fn from_kind(kind: &str) -> Option<Self> {
        match kind {
            "Deployment" => Some(WorkloadKind::Deployment),
            "StatefulSet" => Some(WorkloadKind::StatefulSet),
            "DaemonSet" => Some(WorkloadKind::DaemonSet),
            "Job" => Some(WorkloadKind::Job),
            _ => None,
        }
    }
}

/// Where a Job stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState {
    Running,
    Complete,
    Failed(String),
}

/// One workload's status, read from the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadSnapshot {
    pub object: ObjectRef,
    pub kind: WorkloadKind,
    /// False while the object cannot be read (not created yet, or deleted).
    pub exists: bool,
    pub generation: i64,
    pub observed_generation: i64,
    /// Replicas wanted (`spec.replicas`, `desiredNumberScheduled`, Job completions).
    pub desired: u32,
    /// Replicas that exist, old and new (`status.replicas`, `currentNumberScheduled`).
    pub current: u32,
    /// Replicas of the new revision.
    pub updated: u32,
    pub ready: u32,
    pub available: u32,
    /// StatefulSet: `currentRevision == updateRevision`; true for the other kinds.
    pub revision_settled: bool,
    /// Deployment: the controller's `ProgressDeadlineExceeded` message, when reported
    /// for the observed generation.
    pub stalled: Option<String>,
    /// Jobs only.
    pub job: Option<JobState>,
}

/// One pod of a workload's NEW revision (the adapter filters out old pods).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodSnapshot {
    pub uid: String,
    /// `namespace/name`.
    pub name: String,
    pub workload: ObjectRef,
    pub ready: bool,
    /// Sum over the pod's containers.
    pub restarts: u32,
    /// The first waiting container's reason and message.
    pub waiting: Option<(String, String)>,
}

/// Everything judged at one instant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub workloads: Vec<WorkloadSnapshot>,
    pub new_pods: Vec<PodSnapshot>,
}

/// Where the rollout stands after an observation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Not settled yet.
    Pending,
    /// Healthy, and held so for the ready window.
    Healthy,
    Failed(Failure),
}

/// One workload's assessment.
struct Assessment {
    healthy: bool,
    ready: u32,
    desired: u32,
    reason: String,
    failure: Option<Failure>,
}

fn assess(w: &WorkloadSnapshot) -> Assessment {
    let mut a = Assessment {
        healthy: false,
        ready: 0,
        desired: w.desired,
        reason: String::new(),
        failure: None,
    };
    if !w.exists {
        a.reason = "waiting for the object to exist".into();
        return a;
    }
    if w.observed_generation < w.generation {
        a.reason = format!(
            "waiting for the controller to observe generation {}",
            w.generation
        );
        return a;
    }
    match w.kind {
        WorkloadKind::Job => {
            a.desired = w.desired.max(1);
            a.ready = w.ready.min(a.desired);
            match &w.job {
                Some(JobState::Complete) => {
                    a.healthy = true;
                    a.ready = a.desired;
                    a.reason = "complete".into();
                }
                Some(JobState::Failed(msg)) => {
                    a.reason = "failed".into();
                    a.failure = Some(
                        Failure::new(FailureReason::JobFailed, format!("{}: {msg}", w.object))
                            .with_object(w.object.clone()),
                    );
                }
                _ => a.reason = format!("running ({} of {} completed)", a.ready, a.desired),
            }
            return a;
        }
        WorkloadKind::Deployment | WorkloadKind::StatefulSet | WorkloadKind::DaemonSet => {}
    }
    let ready_of_new = match w.kind {
        WorkloadKind::StatefulSet => w.updated.min(w.ready),
        _ => w.updated.min(w.available),
    };
    a.ready = ready_of_new.min(w.desired);
    if let Some(msg) = &w.stalled {
        a.reason = "progress deadline exceeded".into();
        a.failure = Some(
            Failure::new(
                FailureReason::ProgressDeadlineExceeded,
                format!("{}: {msg}", w.object),
            )
            .with_object(w.object.clone()),
        );
        return a;
    }
    let available = match w.kind {
        WorkloadKind::StatefulSet => w.ready,
        _ => w.available,
    };
    a.reason = if w.updated < w.desired {
        format!("{} of {} replicas updated", w.updated, w.desired)
    } else if w.current > w.updated {
        format!("waiting for {} old replicas to terminate", w.current - w.updated)
    } else if available < w.desired {
        format!(
            "{} of {} updated replicas available",
            available.min(w.desired),
            w.desired
        )
    } else if !w.revision_settled {
        "waiting for the update revision to become current".into()
    } else {
        a.healthy = true;
        "available".into()
    };
    a
}

/// The state carried between observations of one rollout.
#[derive(Debug)]
pub struct Judge {
    policy: HealthPolicy,
    last_progress_at: Duration,
    fingerprint: Option<Vec<(u32, u32, bool)>>,
    /// Set while every workload is healthy: since when, and what held then.
    healthy_since: Option<Duration>,
    baseline_restarts: HashMap<String, u32>,
    baseline_ready: BTreeMap<ObjectRef, u32>,
    reported: BTreeMap<ObjectRef, ObjectProgress>,
}

impl Judge {
    pub fn new(policy: HealthPolicy) -> Self {
        Judge {
            policy,
            last_progress_at: Duration::ZERO,
            fingerprint: None,
            healthy_since: None,
            baseline_restarts: HashMap::new(),
            baseline_ready: BTreeMap::new(),
            reported: BTreeMap::new(),
        }
    }

    /// When the next observation is due even if nothing changes in the cluster (the
    /// ready window ending, or the progress deadline passing), relative to the start.
    pub fn next_deadline(&self) -> Duration {
        match self.healthy_since {
            Some(since) => since + self.policy.min_ready_window,
            None => self.last_progress_at + self.policy.progress_deadline,
        }
    }

    /// Judges `snap`, observed `now` after the watch began. Returns the progress that
    /// changed since the last report (if any) and the verdict.
    pub fn observe(&mut self, now: Duration, snap: &Snapshot) -> (Option<ProgressUpdate>, Verdict) {
        let assessed: Vec<(&WorkloadSnapshot, Assessment)> =
            snap.workloads.iter().map(|w| (w, assess(w))).collect();
        let all_healthy = assessed.iter().all(|(_, a)| a.healthy);

        let verdict = self.decide(now, snap, &assessed, all_healthy);

        let window_note = match (&verdict, self.healthy_since) {
            (Verdict::Pending, Some(since)) => Some(format!(
                "holding ready window ({}s of {}s)",
                now.saturating_sub(since).as_secs(),
                self.policy.min_ready_window.as_secs()
            )),
            _ => None,
        };
        let mut changed = Vec::new();
        let (mut ready, mut desired) = (0, 0);
        for (w, a) in &assessed {
            ready += a.ready;
            desired += a.desired;
            let reason = match (&window_note, a.healthy) {
                (Some(note), true) => note.clone(),
                _ => a.reason.clone(),
            };
            let p = ObjectProgress {
                object: w.object.clone(),
                ready: a.ready,
                desired: a.desired,
                reason,
            };
            if self.reported.get(&w.object) != Some(&p) {
                self.reported.insert(w.object.clone(), p.clone());
                changed.push(p);
            }
        }
        let update = (!changed.is_empty()).then_some(ProgressUpdate {
            changed,
            ready,
            desired,
        });
        (update, verdict)
    }

    fn decide(
        &mut self,
        now: Duration,
        snap: &Snapshot,
        assessed: &[(&WorkloadSnapshot, Assessment)],
        all_healthy: bool,
    ) -> Verdict {
        // Inside the ready window, any restart or readiness loss is the verdict.
        if let Some(since) = self.healthy_since {
            if let Some(f) = self.window_violation(snap, assessed) {
                return Verdict::Failed(f);
            }
            if !all_healthy {
                // Not a loss of what held (say, a scale-up): wait for healthy again.
                self.healthy_since = None;
                self.last_progress_at = now;
            } else if now.saturating_sub(since) >= self.policy.min_ready_window {
                return Verdict::Healthy;
            } else {
                return Verdict::Pending;
            }
        }
        if let Some(f) = fail_fast_pod(snap) {
            return Verdict::Failed(f);
        }
        if let Some(f) = assessed.iter().find_map(|(_, a)| a.failure.clone()) {
            return Verdict::Failed(f);
        }
        let fingerprint: Vec<(u32, u32, bool)> = assessed
            .iter()
            .map(|(w, a)| (a.ready, w.updated, w.observed_generation >= w.generation))
            .collect();
        if self.fingerprint.as_ref() != Some(&fingerprint) {
            self.fingerprint = Some(fingerprint);
            self.last_progress_at = now;
        }
        if all_healthy {
            self.healthy_since = Some(now);
            self.baseline_restarts = snap
                .new_pods
                .iter()
                .map(|p| (p.uid.clone(), p.restarts))
                .collect();
            self.baseline_ready = assessed
                .iter()
                .map(|(w, a)| (w.object.clone(), a.ready))
                .collect();
            if self.policy.min_ready_window.is_zero() {
                return Verdict::Healthy;
            }
            return Verdict::Pending;
        }
        let stuck_for = now.saturating_sub(self.last_progress_at);
        if stuck_for >= self.policy.progress_deadline {
            let waiting: Vec<String> = assessed
                .iter()
                .filter(|(_, a)| !a.healthy)
                .map(|(w, a)| format!("{}: {}", w.object, a.reason))
                .collect();
            let object = assessed
                .iter()
                .find(|(_, a)| !a.healthy)
                .map(|(w, _)| w.object.clone());
            let mut f = Failure::new(
                FailureReason::ProgressDeadlineExceeded,
                format!(
                    "no progress for {}s (progress deadline): {}",
                    stuck_for.as_secs(),
                    waiting.join("; ")
                ),
            );
            f.object = object;
            return Verdict::Failed(f);
        }
        Verdict::Pending
    }

    /// A restart of a new pod, or a ready count below what held when healthy began.
    fn window_violation(
        &self,
        snap: &Snapshot,
        assessed: &[(&WorkloadSnapshot, Assessment)],
    ) -> Option<Failure> {
        for p in &snap.new_pods {
            let before = self.baseline_restarts.get(&p.uid).copied().unwrap_or(0);
            if p.restarts > before {
                let detail = p
                    .waiting
                    .as_ref()
                    .map(|(r, m)| format!(" ({r}: {m})"))
                    .unwrap_or_default();
                return Some(
                    Failure::new(
                        FailureReason::RestartedInReadyWindow,
                        format!(
                            "pod {} of {} restarted {} time(s) inside the {}s ready window{detail}",
                            p.name,
                            p.workload,
                            p.restarts - before,
                            self.policy.min_ready_window.as_secs()
                        ),
                    )
                    .with_object(p.workload.clone()),
                );
            }
        }
        for (w, a) in assessed {
            let held = self.baseline_ready.get(&w.object).copied().unwrap_or(0);
            if a.ready < held {
                return Some(
                    Failure::new(
                        FailureReason::RestartedInReadyWindow,
                        format!(
                            "{} lost readiness inside the {}s ready window: {} of {} ready ({})",
                            w.object,
                            self.policy.min_ready_window.as_secs(),
                            a.ready,
                            a.desired,
                            a.reason
                        ),
                    )
                    .with_object(w.object.clone()),
                );
            }
        }
        None
    }
}

/// A new pod stuck in a state that will not resolve by waiting.
fn fail_fast_pod(snap: &Snapshot) -> Option<Failure> {
    // A workload whose controller has not yet observed the applied spec cannot say
    // which pods are new: whatever pods were read belong to the previous revision.
    let unobserved: Vec<&ObjectRef> = snap
        .workloads
        .iter()
        .filter(|w| w.observed_generation < w.generation)
        .map(|w| &w.object)
        .collect();
    snap.new_pods.iter().find_map(|p| {
        if unobserved.contains(&&p.workload) {
            return None;
        }
        let (reason, message) = p.waiting.as_ref()?;
        let fr = match reason.as_str() {
            "CrashLoopBackOff" => FailureReason::CrashLoopBackOff,
            "ImagePullBackOff" => FailureReason::ImagePullBackOff,
            "ErrImagePull" => FailureReason::ErrImagePull,
            "CreateContainerConfigError" => FailureReason::CreateContainerConfigError,
            _ => return None,
        };
        Some(
            Failure::new(
                fr,
                format!("pod {} of {}: {reason}: {message}", p.name, p.workload),
            )
            .with_object(p.workload.clone()),
        )
    })
}

#[cfg(test)]
mod tests;

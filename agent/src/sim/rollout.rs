//! Rollout timelines of the simulated cluster, computed instead of polled.
//!
//! Every pod of a workload follows its template's [`Behavior`] from the moment it
//! starts, so the state of a rollout at any instant is a pure function of time. The
//! health judge ([`Watch`]) evaluates that state at the instants where something
//! changes and sleeps in between: a thousand simulated clusters cost a few timers, not
//! a thousand polling loops.
//!
//! When pods start (a rough model of the controllers):
//! - a Deployment created from nothing starts every pod at once; an updated one rolls
//!   in batches of `ceil(replicas / 4)` (maxSurge 25%), each batch once the previous
//!   one is ready;
//! - a StatefulSet starts one pod at a time (`OrderedReady`);
//! - a DaemonSet runs one pod (the simulated cluster has one node);
//! - a Job runs `completions` pods, `parallelism` at a time; a completed pod counts
//!   as ready. For a Job, `flapping` crashes like `crashloop` after `ready + after`.
//!
//! Pods that never become ready (crash loop, never ready, pull or config errors) hold
//! back the later batches, as a stuck rolling update does.

use std::time::Duration;

use tokio::time::Instant;

use crate::backend::{
    Failure, FailureReason, HealthOutcome, HealthPolicy, ObjectProgress, ObjectRef, ProgressUpdate,
};
use crate::sim::behavior::Behavior;

/// How long an image pull fails before the pod shows `ImagePullBackOff`.
const IMAGE_PULL_BACKOFF_AFTER: Duration = Duration::from_secs(1);

/// The workload kinds the simulated cluster rolls out: those whose rollout is judged.
pub(crate) use crate::kube::health::verdict::WorkloadKind;

/// What a workload's pod template says, as the simulated controllers need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PodSpec {
    pub kind: WorkloadKind,
    pub behavior: Behavior,
    /// Pods the workload wants (replicas, completions, or 1 for a DaemonSet).
    pub desired: u32,
    /// Pods started together: see the module docs.
    pub batch: u32,
    /// The first container's name and image, for pod-like failure messages.
    pub container: String,
    pub image: String,
    /// A Job whose pods are not restarted (`restartPolicy: Never`): a crash fails it.
    pub job_never_restarts: bool,
}

/// One workload's rollout, started at `started`.
#[derive(Debug, Clone)]
pub(crate) struct Rollout {
    pub object: ObjectRef,
    pub spec: PodSpec,
    pub started: Instant,
    /// Pod names are `{pod_prefix}-{index}`.
    pub pod_prefix: String,
}

/// One pod's state at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PodState {
    NotStarted,
    Waiting,
    Ready,
    /// A fail-fast state reached `since` after the pod started.
    Broken(FailureReason),
}

/// A workload's state at an instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WorkloadState {
    pub ready: u32,
    /// Container restarts over all pods.
    pub restarts: u64,
    pub failure: Option<Failure>,
}

impl Rollout {
    /// The time from one batch's start to the next's, or None when pods never get
    /// ready (so later batches never start).
    fn batch_step(&self) -> Option<Duration> {
        match self.spec.behavior {
            Behavior::Healthy { after } | Behavior::Succeed { after } => Some(after),
            Behavior::Flapping { ready, .. } => Some(ready),
            _ => None,
        }
    }

    /// When pod `i` starts, relative to the rollout's start.
    fn pod_start(&self, i: u32) -> Option<Duration> {
        let batch = self.spec.batch.max(1);
        let k = i / batch;
        if k == 0 {
            return Some(Duration::ZERO);
        }
        self.batch_step().and_then(|step| step.checked_mul(k))
    }

    fn pod_state(&self, i: u32, now: Instant) -> (PodState, u64) {
        let Some(start) = self.pod_start(i) else {
            return (PodState::NotStarted, 0);
        };
        let t = now.saturating_duration_since(self.started);
        let Some(u) = t.checked_sub(start) else {
            return (PodState::NotStarted, 0);
        };
        let is_job = self.spec.kind == WorkloadKind::Job;
        let crash = |at: Duration| {
            if u < at {
                PodState::Waiting
            } else if is_job && self.spec.job_never_restarts {
                PodState::Broken(FailureReason::JobFailed)
            } else {
                PodState::Broken(FailureReason::CrashLoopBackOff)
            }
        };
        match self.spec.behavior {
            Behavior::Healthy { after } | Behavior::Succeed { after } => (
                if u >= after {
                    PodState::Ready
                } else {
                    PodState::Waiting
                },
                0,
            ),
            Behavior::CrashLoop { after } | Behavior::Fail { after } => (crash(after), 0),
            Behavior::Flapping { ready, after } if is_job => (crash(ready + after), 0),
            Behavior::Flapping { ready, after } => {
                let period = (ready + after).as_nanos().max(1);
                let cycles = (u.as_nanos() / period) as u64;
                let phase = u.as_nanos() % period;
                let state = if phase >= ready.as_nanos() {
                    PodState::Ready
                } else {
                    PodState::Waiting
                };
                (state, cycles)
            }
            Behavior::NeverReady => (PodState::Waiting, 0),
            Behavior::ImagePullError => {
                if u >= IMAGE_PULL_BACKOFF_AFTER {
                    (PodState::Broken(FailureReason::ImagePullBackOff), 0)
                } else {
                    (PodState::Waiting, 0)
                }
            }
            Behavior::ConfigError => (PodState::Broken(FailureReason::CreateContainerConfigError), 0),
        }
    }

    fn pod_name(&self, i: u32) -> String {
        format!("{}-{}", self.pod_prefix, i)
    }

    /// The workload's state at `now`.
    pub(crate) fn state_at(&self, now: Instant) -> WorkloadState {
        let mut ready = 0;
        let mut restarts = 0;
        let mut failure = None;
        for i in 0..self.spec.desired {
            let (state, r) = self.pod_state(i, now);
            restarts += r;
            match state {
                PodState::Ready => ready += 1,
                PodState::Broken(reason) if failure.is_none() => {
                    failure = Some(self.pod_failure(i, reason));
                }
                _ => {}
            }
        }
        WorkloadState {
            ready,
            restarts,
            failure,
        }
    }

    fn pod_failure(&self, i: u32, reason: FailureReason) -> Failure {
        let pod = self.pod_name(i);
        let c = &self.spec.container;
        let detail = match reason {
            FailureReason::CrashLoopBackOff => format!(
                "container {c} is waiting: CrashLoopBackOff: back-off restarting failed container {c} in pod {pod}"
            ),
            FailureReason::ImagePullBackOff => format!(
                "container {c} is waiting: ImagePullBackOff: Back-off pulling image {:?}",
                self.spec.image
            ),
            FailureReason::CreateContainerConfigError => format!(
                "container {c} is waiting: CreateContainerConfigError: a ConfigMap or Secret it references is missing"
            ),
            FailureReason::JobFailed => {
                format!("container {c} terminated with exit code 1 and restartPolicy Never: the Job failed")
            }
            _ => reason.as_str().to_string(),
        };
        Failure::new(reason, format!("{}: pod {pod}: {detail}", self.object)).with_object(self.object.clone())
    }

    /// The next instant after `now` at which any pod changes state.
    pub(crate) fn next_change_after(&self, now: Instant) -> Option<Instant> {
        let t = now.saturating_duration_since(self.started);
        let mut best: Option<Duration> = None;
        let mut consider = |d: Duration| {
            if d > t && best.is_none_or(|b| d < b) {
                best = Some(d);
            }
        };
        let step = self.batch_step();
        let batches = self.spec.desired.div_ceil(self.spec.batch.max(1));
        for k in 0..batches {
            let start = if k == 0 {
                Duration::ZERO
            } else {
                match step.and_then(|s| s.checked_mul(k)) {
                    Some(s) => s,
                    None => break,
                }
            };
            consider(start);
            match self.spec.behavior {
                Behavior::Healthy { after } | Behavior::Succeed { after } => consider(start + after),
                Behavior::CrashLoop { after } | Behavior::Fail { after } => consider(start + after),
                Behavior::Flapping { ready, after } if self.spec.kind == WorkloadKind::Job => {
                    consider(start + ready + after)
                }
                Behavior::Flapping { ready, after } => {
                    if let Some(u) = t.checked_sub(start) {
                        let period = ready + after;
                        let n = (u.as_nanos() / period.as_nanos().max(1)) as u32;
                        let base = start + period * n;
                        consider(base + ready);
                        consider(base + period);
                    } else {
                        consider(start + ready);
                    }
                }
                Behavior::ImagePullError => consider(start + IMAGE_PULL_BACKOFF_AFTER),
                Behavior::ConfigError | Behavior::NeverReady => {}
            }
        }
        best.map(|d| self.started + d)
    }

    /// The last instant at or before `now` at which the rollout made progress (a pod
    /// started or became ready): the progress deadline counts from here.
    pub(crate) fn last_progress(&self, now: Instant) -> Instant {
        let t = now.saturating_duration_since(self.started);
        let mut last = Duration::ZERO;
        let step = self.batch_step();
        let batches = self.spec.desired.div_ceil(self.spec.batch.max(1));
        for k in 0..batches {
            let Some(start) = (if k == 0 {
                Some(Duration::ZERO)
            } else {
                step.and_then(|s| s.checked_mul(k))
            }) else {
                break;
            };
            if start > t {
                break;
            }
            last = last.max(start);
            let u = t - start;
            let ready_at = match self.spec.behavior {
                Behavior::Healthy { after } | Behavior::Succeed { after } => {
                    (u >= after).then_some(start + after)
                }
                Behavior::Flapping { ready, after } if self.spec.kind != WorkloadKind::Job => {
                    let period = ready + after;
                    let n = (u.as_nanos() / period.as_nanos().max(1)) as u32;
                    let up = period * n + ready;
                    if u >= up {
                        Some(start + up)
                    } else {
                        n.checked_sub(1).map(|p| start + period * p + ready)
                    }
                }
                _ => None,
            };
            if let Some(r) = ready_at {
                last = last.max(r);
            }
        }
        self.started + last
    }
}

/// The health judge for one watch: feed it the current instant, it says what changed
/// and when to look again.
#[derive(Debug)]
pub(crate) struct Watch {
    rollouts: Vec<Rollout>,
    policy: HealthPolicy,
    began: Instant,
    /// When every workload became ready, and the restart count then.
    window: Option<(Instant, u64)>,
    reported: Vec<Option<(u32, String)>>,
}

/// What one evaluation found.
#[derive(Debug)]
pub(crate) struct Step {
    /// Workloads whose progress changed since the last evaluation.
    pub progress: Option<ProgressUpdate>,
    /// Settled (healthy or failed), or still going.
    pub outcome: Option<HealthOutcome>,
    /// When to evaluate again (None: nothing will change).
    pub next: Option<Instant>,
}

impl Watch {
    pub(crate) fn new(rollouts: Vec<Rollout>, policy: HealthPolicy, began: Instant) -> Self {
        let reported = vec![None; rollouts.len()];
        Watch {
            rollouts,
            policy,
            began,
            window: None,
            reported,
        }
    }

    pub(crate) fn step(&mut self, now: Instant) -> Step {
        let states: Vec<WorkloadState> = self.rollouts.iter().map(|r| r.state_at(now)).collect();
        let all_ready = self
            .rollouts
            .iter()
            .zip(&states)
            .all(|(r, s)| s.ready >= r.spec.desired);
        let restarts: u64 = states.iter().map(|s| s.restarts).sum();
        let window_was = self.window;
        if all_ready && self.window.is_none() {
            self.window = Some((now, restarts));
        }
        let progress = self.progress(&states, now, all_ready);
        let done = |outcome: HealthOutcome, progress| Step {
            progress,
            outcome: Some(outcome),
            next: None,
        };

        if let Some(failure) = states.iter().find_map(|s| s.failure.clone()) {
            return done(HealthOutcome::Failed(failure), progress);
        }
        for (r, s) in self.rollouts.iter().zip(&states) {
            if s.ready >= r.spec.desired {
                continue;
            }
            let since = r.last_progress(now);
            if now >= since + self.policy.progress_deadline {
                let f = Failure::new(
                    FailureReason::ProgressDeadlineExceeded,
                    format!(
                        "{}: {} of {} pods ready, no progress for {}s (progress deadline)",
                        r.object,
                        s.ready,
                        r.spec.desired,
                        self.policy.progress_deadline.as_secs()
                    ),
                )
                .with_object(r.object.clone());
                return done(HealthOutcome::Failed(f), progress);
            }
        }
        if let Some((start, restarts_then)) = window_was {
            let culprit = self
                .rollouts
                .iter()
                .zip(&states)
                .find(|(r, s)| s.ready < r.spec.desired || s.restarts > 0);
            if !all_ready || restarts > restarts_then {
                let (object, what) = culprit.map_or_else(
                    || (None, "a workload".to_string()),
                    |(r, s)| {
                        (
                            Some(r.object.clone()),
                            format!(
                                "{}: a pod restarted ({} restarts, {} of {} ready)",
                                r.object, s.restarts, s.ready, r.spec.desired
                            ),
                        )
                    },
                );
                let mut f = Failure::new(
                    FailureReason::RestartedInReadyWindow,
                    format!(
                        "{what} {}s into the {}s ready window",
                        now.saturating_duration_since(start).as_secs(),
                        self.policy.min_ready_window.as_secs()
                    ),
                );
                f.object = object;
                return done(HealthOutcome::Failed(f), progress);
            }
        }
        if let Some((start, _)) = self.window
            && now >= start + self.policy.min_ready_window
        {
            let elapsed = now.saturating_duration_since(self.began);
            return done(HealthOutcome::Healthy { elapsed }, progress);
        }

        let mut next: Option<Instant> = None;
        let mut consider = |i: Instant| {
            if i > now && next.is_none_or(|n| i < n) {
                next = Some(i);
            }
        };
        for (r, s) in self.rollouts.iter().zip(&states) {
            if let Some(i) = r.next_change_after(now) {
                consider(i);
            }
            if s.ready < r.spec.desired {
                consider(r.last_progress(now) + self.policy.progress_deadline);
            }
        }
        if let Some((start, _)) = self.window {
            consider(start + self.policy.min_ready_window);
        }
        Step {
            progress,
            outcome: None,
            next,
        }
    }

    fn progress(
        &mut self,
        states: &[WorkloadState],
        now: Instant,
        all_ready: bool,
    ) -> Option<ProgressUpdate> {
        let mut changed = Vec::new();
        for ((r, s), last) in self.rollouts.iter().zip(states).zip(self.reported.iter_mut()) {
            let reason = if let Some(f) = &s.failure {
                f.reason.as_str().to_string()
            } else if s.ready < r.spec.desired {
                "progressing".to_string()
            } else if all_ready && !self.policy.min_ready_window.is_zero() {
                let held = self
                    .window
                    .map_or(Duration::ZERO, |(start, _)| now.saturating_duration_since(start));
                format!(
                    "holding ready window ({}s of {}s)",
                    held.as_secs(),
                    self.policy.min_ready_window.as_secs()
                )
            } else {
                "ready".to_string()
            };
            let current = (s.ready, reason);
            if last.as_ref() != Some(&current) {
                changed.push(ObjectProgress {
                    object: r.object.clone(),
                    ready: current.0,
                    desired: r.spec.desired,
                    reason: current.1.clone(),
                });
                *last = Some(current);
            }
        }
        if changed.is_empty() {
            return None;
        }
        Some(ProgressUpdate {
            changed,
            ready: states.iter().map(|s| s.ready).sum(),
            desired: self.rollouts.iter().map(|r| r.spec.desired).sum(),
        })
    }
}

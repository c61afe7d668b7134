//! The cluster backend: what the agent runtime asks of a cluster, with two
//! implementations behind it: the real Kubernetes backend (kube-rs, server-side apply)
//! and the simulated in-memory backend (demo, benchmarks, fast tests).
//!
//! Domain types only: no kube or tonic types cross this boundary. The runtime
//! (agent link, idempotence, reconnects) translates to and from `convoy.v1` wire types.
//!
//! One operation on a release runs like this (the runtime drives it):
//!
//! ```text
//! lock(release) -> apply_until(req)      -> watch_rollout(..) -> record_outcome -> unlock  (deploy)
//! lock(release) -> rollback_until(op, N) -> watch_rollout(..) -> record_outcome -> unlock  (rollback)
//! lock(release) -> apply_canary_until(req) -> watch_canary(..)            -> unlock  (canary step)
//! lock(release) -> switch_slot(op, retire_after)                          -> unlock  (blue/green switch)
//! lock(release) -> retire(release, revision)                              -> unlock  (retirement task)
//! ```
//!
//! A blue/green revision is a deploy whose [`ApplyRequest::blue_green`] is set: the
//! backend transforms the render ([`crate::bluegreen`]) and keeps the live slot.
//!
//! A deploy calls [`Backend::remove_canary`] once healthy (before `record_outcome`), a
//! rollback right after `rollback_until`.
//!
//! Helm hooks ([`crate::hooks`]) run around the change through [`Backend::run_hook`]:
//! the pre-event hooks after `lock`, the post-event hooks once the rollout is healthy
//! and before its outcome is recorded, so the history never calls a revision healthy
//! whose post hook failed (or has not finished).

use std::future::Future;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::hooks::{Hook, HookEvent};

/// Identifies one command for idempotence: never run twice.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OpRef {
    /// `app.namespace`.
    pub release: String,
    pub revision: u64,
    pub operation_id: String,
}

/// One Kubernetes object, by identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectRef {
    pub api_version: String,
    pub kind: String,
    /// None for cluster-scoped objects.
    pub namespace: Option<String>,
    pub name: String,
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{}/{}/{}", self.kind.to_lowercase(), ns, self.name),
            None => write!(f, "{}/{}", self.kind.to_lowercase(), self.name),
        }
    }
}

/// How a rollout is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthPolicy {
    /// No progress for this long fails the rollout.
    pub progress_deadline: Duration,
    /// Healthy must hold this long with no restarts of new pods.
    pub min_ready_window: Duration,
}

/// One rendered object as the coordinator sent it. `content` may hold secret values:
/// never log it.
#[derive(Clone, PartialEq, Eq)]
pub struct Manifest {
    /// `app1/templates/deployment.yaml`, for error messages.
    pub source: String,
    /// One YAML or JSON document.
    pub content: String,
}

impl std::fmt::Debug for Manifest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manifest")
            .field("source", &self.source)
            .field("content", &format_args!("<{} bytes>", self.content.len()))
            .finish()
    }
}

/// Apply (or dry-run) a revision.
#[derive(Debug, Clone)]
pub struct ApplyRequest {
    pub op: OpRef,
    /// Objects without a namespace (and namespaced kinds) land here.
    pub namespace: String,
    pub manifests: Vec<Manifest>,
    pub health: HealthPolicy,
    /// Take fields another field manager owns.
    pub force_conflicts: bool,
    /// Take over objects labelled as another release's.
    pub adopt: bool,
    /// Stamp pod templates with the revision so pods always roll.
    pub force_roll: bool,
    /// Chart name and version, kept in history.
    pub chart: String,
    /// The chart's Helm hooks (objects annotated `helm.sh/hook`): never applied with
    /// `manifests`; run by the runtime around the apply, and kept in history with the
    /// revision so a rollback runs the restored revision's rollback hooks.
    pub hooks: Vec<Manifest>,
    /// Prune more than the backend's share of the release's objects, or all of them.
    pub allow_mass_deletion: bool,
    /// The render's secrets as salted digests: what the runtime masks in this
    /// command's messages.
    pub secret_digests: crate::mask::SecretDigests,
    /// Deploy into the idle slot beside the live one (see [`crate::bluegreen`]).
    pub blue_green: Option<BlueGreen>,
}

/// How a blue/green revision is applied (`BlueGreen` in `agent.proto`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlueGreen {
    /// Also apply `<service>-preview` copies selecting the new slot.
    pub preview_service: bool,
}

/// One step of an in-cluster canary (see [`crate::canary`]): the revision's render,
/// and the share of the pods its canary copies should hold.
#[derive(Debug, Clone)]
pub struct CanaryRequest {
    /// The revision as for a deploy (`op`, namespace, manifests, health, digests).
    pub apply: ApplyRequest,
    /// 1 to 99.
    pub weight_percent: u32,
}

/// What happened to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectAction {
    Created,
    Configured,
    Unchanged,
    Pruned,
    Refused,
}

/// One object's apply (or dry-run) result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectResult {
    pub object: ObjectRef,
    pub action: ObjectAction,
    /// Dry run, `Configured`: each field that would change, with its values.
    pub changes: Vec<FieldChange>,
    /// `Refused`: why (a conflict names the field and the other manager).
    pub message: String,
}

/// One field of one object that a dry run found would change.
///
/// Values are the JSON the cluster holds (`before`) and would hold (`after`); `None`
/// where the field does not exist (yet, or any more). Values can hold what a chart
/// rendered from secrets, so `Debug` shows their sizes only.
#[derive(Clone, PartialEq, Eq)]
pub struct FieldChange {
    /// `spec.replicas`, `spec.template.spec.containers[0].image`, `data["app.conf"]`;
    /// `.` for the whole object.
    pub path: String,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
    /// The values are withheld (`before` and `after` are None): the field is, or
    /// contains, a Secret's data.
    pub masked: bool,
}

impl std::fmt::Debug for FieldChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        struct Size<'a>(&'a Option<serde_json::Value>);
        impl std::fmt::Debug for Size<'_> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                match self.0 {
                    None => f.write_str("None"),
                    Some(v) => write!(f, "<{} bytes of JSON>", v.to_string().len()),
                }
            }
        }
        f.debug_struct("FieldChange")
            .field("path", &self.path)
            .field("before", &Size(&self.before))
            .field("after", &Size(&self.after))
            .field("masked", &self.masked)
            .finish()
    }
}

/// One workload's progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectProgress {
    pub object: ObjectRef,
    pub ready: u32,
    pub desired: u32,
    /// `progressing`, `waiting for old replicas`, `holding ready window (12s of 30s)`.
    pub reason: String,
}

/// A progress report: the workloads that changed, and sums over all of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgressUpdate {
    pub changed: Vec<ObjectProgress>,
    pub ready: u32,
    pub desired: u32,
}

/// Why a rollout (or a command) failed: a stable, machine-readable cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureReason {
    ProgressDeadlineExceeded,
    CrashLoopBackOff,
    ImagePullBackOff,
    ErrImagePull,
    CreateContainerConfigError,
    /// Became healthy, then a new pod restarted or went unready inside the window.
    RestartedInReadyWindow,
    /// A Job failed.
    JobFailed,
    /// The API server refused an object (invalid, forbidden, immutable field).
    ApplyRefused,
    /// Another field manager owns a field (and `force_conflicts` was not set).
    Conflict,
    /// An object belongs to another release (and `adopt` was not set).
    OwnedByAnotherRelease,
    /// An object exists without convoy's release label (created by hand, by Helm, by
    /// another tool), and `adopt` was not set: convoy does not take it silently.
    NotOwned,
    /// The revision would prune more than the allowed share of the release's objects,
    /// or all of them, and the command did not allow mass deletion.
    MassDeletion,
    /// Rollback to a revision the cluster's history does not hold.
    RevisionNotInHistory,
    /// Another operation holds the release's lock in this cluster.
    LockHeld,
    /// A canary step for a render without a Deployment: an in-cluster canary needs one.
    NoCanaryWorkload,
    /// A Helm hook failed (its Job or Pod failed, or it did not complete in time).
    HookFailed,
    /// A `SwitchSlot` for a revision that was not applied with blue/green.
    NotBlueGreen,
    /// Anything else (API unreachable, ...).
    Internal,
}

impl FailureReason {
    /// The wire spelling (`Failed.reason` in `agent.proto`).
    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::ProgressDeadlineExceeded => "ProgressDeadlineExceeded",
            FailureReason::CrashLoopBackOff => "CrashLoopBackOff",
            FailureReason::ImagePullBackOff => "ImagePullBackOff",
            FailureReason::ErrImagePull => "ErrImagePull",
            FailureReason::CreateContainerConfigError => "CreateContainerConfigError",
            FailureReason::RestartedInReadyWindow => "RestartedInReadyWindow",
            FailureReason::JobFailed => "JobFailed",
            FailureReason::ApplyRefused => "ApplyRefused",
            FailureReason::Conflict => "Conflict",
            FailureReason::OwnedByAnotherRelease => "OwnedByAnotherRelease",
            FailureReason::NotOwned => "NotOwned",
            FailureReason::MassDeletion => "MassDeletion",
            FailureReason::RevisionNotInHistory => "RevisionNotInHistory",
            FailureReason::LockHeld => "LockHeld",
            FailureReason::NoCanaryWorkload => "NoCanaryWorkload",
            FailureReason::HookFailed => "HookFailed",
            FailureReason::NotBlueGreen => "NotBlueGreen",
            FailureReason::Internal => "Internal",
        }
    }
}

/// A failed command: the cause, a sentence naming the object (and pod) and what it
/// said, and the object when one is to blame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", reason.as_str())]
pub struct Failure {
    pub reason: FailureReason,
    pub message: String,
    pub object: Option<ObjectRef>,
}

impl Failure {
    pub fn new(reason: FailureReason, message: impl Into<String>) -> Self {
        Failure {
            reason,
            message: message.into(),
            object: None,
        }
    }

    pub fn with_object(mut self, object: ObjectRef) -> Self {
        self.object = Some(object);
        self
    }
}

/// Why an apply or rollback did not complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeError {
    /// Refused or failed, as [`Failure`] says.
    Failed(Failure),
    /// Stopped by its cancel token (an abort or the agent's shutdown) before it
    /// finished; what it had applied by then, if anything, is recorded in history as
    /// a failed revision.
    Cancelled,
}

impl ChangeError {
    /// As a [`Failure`], for callers whose token never fires.
    pub fn into_failure(self) -> Failure {
        match self {
            ChangeError::Failed(f) => f,
            ChangeError::Cancelled => Failure::new(
                FailureReason::Internal,
                "the change was cancelled before it finished",
            ),
        }
    }
}

impl From<Failure> for ChangeError {
    fn from(f: Failure) -> Self {
        ChangeError::Failed(f)
    }
}

/// How a health watch ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthOutcome {
    /// Healthy, and held so for the ready window.
    Healthy {
        elapsed: Duration,
    },
    Failed(Failure),
    /// Cancelled (abort) before it settled.
    Cancelled,
}

/// How running one hook ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookOutcome {
    /// Created, and (a Job or a Pod) completed; the delete policy applied.
    Succeeded,
    /// Refused, failed, or not complete by the deadline; the delete policy applied.
    Failed(Failure),
    /// Cancelled (abort) while waiting; the object is left as it is.
    Cancelled,
}

/// The hooks kept in history with one revision, and the namespace it deployed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredHooks {
    pub namespace: String,
    pub hooks: Vec<Manifest>,
}

/// What the cluster's history says about one release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployedRevision {
    pub release: String,
    /// The revision applied now.
    pub revision: u64,
    /// Whether it last reached healthy.
    pub healthy: bool,
    /// Revisions kept for rollback, oldest first.
    pub kept: Vec<u64>,
    /// Blue/green: the slot the current revision runs in (None otherwise).
    pub slot: Option<String>,
    /// Blue/green: whether the release's Services select that slot.
    pub switched: bool,
}

/// What the cluster's API server serves, as Helm's `GetVersionSet` reads it from a live
/// cluster: the coordinator renders this cluster's charts against it (`.Capabilities`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterCapabilities {
    /// The API server's `gitVersion` (`v1.20.2`).
    pub kube_version: String,
    /// Every `group/version` served and every `group/version/Kind` of their resources
    /// (the core group as `v1`, `v1/Pod`), sorted and without duplicates.
    pub api_versions: Vec<String>,
}

/// A held per-release lock; released by [`Backend::unlock`] (or, when the holder dies,
/// recovered after it expires).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockToken {
    pub release: String,
    pub holder: String,
}

/// A cluster, as the agent runtime sees it. Implemented by the Kubernetes backend and
/// by the simulated one.
pub trait Backend: Send + Sync + 'static {
    /// `kubernetes` or `simulated`.
    fn kind(&self) -> &'static str;

    /// Takes the release's lock in this cluster for `op` (one operation per release at
    /// a time). Fails with `LockHeld` when a live holder has it; takes over a lock whose
    /// holder stopped renewing it.
    fn lock(&self, op: &OpRef) -> impl Future<Output = Result<LockToken, Failure>> + Send;

    /// Releases a lock taken by [`Backend::lock`].
    fn unlock(&self, token: LockToken) -> impl Future<Output = Result<(), Failure>> + Send;

    /// Applies a revision: namespaces and CRDs first, then Helm's kind order; labels
    /// what it applies as the release's; prunes (in reverse order) what the previous
    /// revision had and this one does not; records the revision in the cluster's
    /// history. An object refused by the cluster fails the apply with the object named.
    ///
    /// `cancel` (an abort) stops it between tiers (or before it starts): what was
    /// applied so far is recorded as a failed revision, so the history never falls
    /// behind the cluster and the next revision prunes it, and the result is
    /// [`ChangeError::Cancelled`].
    fn apply_until(
        &self,
        req: &ApplyRequest,
        cancel: CancellationToken,
    ) -> impl Future<Output = Result<Vec<ObjectResult>, ChangeError>> + Send;

    /// [`Backend::apply_until`] carried to its end (nothing cancels it).
    fn apply(&self, req: &ApplyRequest) -> impl Future<Output = Result<Vec<ObjectResult>, Failure>> + Send {
        async move {
            self.apply_until(req, CancellationToken::new())
                .await
                .map_err(ChangeError::into_failure)
        }
    }

    /// The same as [`Backend::apply`] as a server-side dry run: nothing persists; per
    /// object, whether it would be created, changed (which fields) or refused, and why.
    fn dry_run(&self, req: &ApplyRequest) -> impl Future<Output = Result<Vec<ObjectResult>, Failure>> + Send;

    /// Re-applies `target_revision` from the cluster's history (no chart, no Vault),
    /// prunes what it did not have, and records the result as revision `op.revision`.
    /// `cancel` stops it as it stops [`Backend::apply_until`].
    fn rollback_until(
        &self,
        op: &OpRef,
        target_revision: u64,
        cancel: CancellationToken,
    ) -> impl Future<Output = Result<Vec<ObjectResult>, ChangeError>> + Send;

    /// [`Backend::rollback_until`] carried to its end (nothing cancels it).
    fn rollback(
        &self,
        op: &OpRef,
        target_revision: u64,
    ) -> impl Future<Output = Result<Vec<ObjectResult>, Failure>> + Send {
        async move {
            self.rollback_until(op, target_revision, CancellationToken::new())
                .await
                .map_err(ChangeError::into_failure)
        }
    }

    /// Watches the release's workloads at `revision` until they are healthy and held so
    /// for the ready window, or fail, or `cancel` fires. Reports progress as it changes.
    /// Records nothing: the verdict goes to the history through
    /// [`Backend::record_outcome`] once the whole command is judged (the runtime runs
    /// the post hooks in between).
    fn watch_rollout(
        &self,
        op: &OpRef,
        health: HealthPolicy,
        progress: mpsc::Sender<ProgressUpdate>,
        cancel: CancellationToken,
    ) -> impl Future<Output = HealthOutcome> + Send;

    /// Records in the history whether `op.revision` of `op.release` ended healthy; not
    /// healthy also marks it failed. A revision is recorded not healthy when applied.
    fn record_outcome(&self, op: &OpRef, healthy: bool) -> impl Future<Output = Result<(), Failure>> + Send;

    /// [`Backend::watch_rollout`], then its verdict recorded with
    /// [`Backend::record_outcome`] (a cancelled watch records nothing): for callers
    /// that run no post hooks. A failure to record is logged, not returned: the
    /// verdict stands either way.
    fn watch_health(
        &self,
        op: &OpRef,
        health: HealthPolicy,
        progress: mpsc::Sender<ProgressUpdate>,
        cancel: CancellationToken,
    ) -> impl Future<Output = HealthOutcome> + Send {
        async move {
            let outcome = self.watch_rollout(op, health, progress, cancel).await;
            let healthy = match &outcome {
                HealthOutcome::Healthy { .. } => true,
                HealthOutcome::Failed(_) => false,
                HealthOutcome::Cancelled => return outcome,
            };
            if let Err(f) = self.record_outcome(op, healthy).await {
                tracing::warn!(release = %op.release, revision = op.revision, error = %f, "recording the rollout outcome in history failed");
            }
            outcome
        }
    }

    /// Applies one canary step (see [`crate::canary`]): the canary copies of the
    /// render's Deployments (and of the ConfigMaps and Secrets they name), labelled as
    /// the release's (the ownership labels of [`Backend::apply_until`], so another
    /// release cannot take them) and `convoy.dev/track: canary`; then deletes the
    /// release's canary objects in its namespace that this step no longer has
    /// (reported `Pruned`). Records nothing in the history: the live revision stays
    /// what it was, and no normal apply prunes (or lists) a canary object. Fails with
    /// `NoCanaryWorkload` for a render without a Deployment. `cancel` stops it before
    /// it starts or between tiers ([`ChangeError::Cancelled`]).
    fn apply_canary_until(
        &self,
        req: &CanaryRequest,
        cancel: CancellationToken,
    ) -> impl Future<Output = Result<Vec<ObjectResult>, ChangeError>> + Send;

    /// Watches the canary Deployments `workloads` (as [`Backend::apply_canary_until`]
    /// reported them) until healthy and held so for the ready window, or failed, or
    /// cancelled: the verdict of [`Backend::watch_rollout`] with the same policy, on
    /// the canary's pods only. Records nothing.
    fn watch_canary(
        &self,
        op: &OpRef,
        workloads: &[ObjectRef],
        health: HealthPolicy,
        progress: mpsc::Sender<ProgressUpdate>,
        cancel: CancellationToken,
    ) -> impl Future<Output = HealthOutcome> + Send;

    /// Deletes every canary object of `release` in `namespace` (labelled as the
    /// release's and `convoy.dev/track: canary`), workloads first, and returns them as
    /// `Pruned`; none is success. A promotion (a deploy, once healthy) and a rollback
    /// (at once) call it.
    fn remove_canary(
        &self,
        release: &str,
        namespace: &str,
    ) -> impl Future<Output = Result<Vec<ObjectResult>, Failure>> + Send;

    /// Switches a blue/green revision (`SwitchSlot` in `agent.proto`): `op.revision`
    /// must be the release's current revision (else `RevisionNotInHistory`) and applied
    /// with blue/green (else `NotBlueGreen`). Points its slot Services at its slot (a
    /// server-side apply of the recorded Service with the slot selector, so the record
    /// and the cluster agree), records that (`switched`) with the deadline after
    /// `retire_after` at which the objects it kept (the old slot) are deleted, and
    /// returns the Services (`Configured`, or `Unchanged` when already switched).
    fn switch_slot(
        &self,
        op: &OpRef,
        retire_after: Duration,
    ) -> impl Future<Output = Result<Vec<ObjectResult>, Failure>> + Send;

    /// The (release, revision) pairs whose current revision has a retire deadline
    /// that has passed and whose kept objects are not yet deleted.
    fn retirements_due(&self) -> impl Future<Output = Result<Vec<(String, u64)>, Failure>> + Send;

    /// Deletes the objects `revision` of `release` kept (its old slot), if it is still
    /// the current revision and its deadline has passed, and records that it is done;
    /// returns them as `Pruned` (none: nothing was due). The caller holds the release's
    /// lock.
    fn retire(
        &self,
        release: &str,
        revision: u64,
    ) -> impl Future<Output = Result<Vec<ObjectResult>, Failure>> + Send;

    /// Whether the history holds a revision of `release` other than `revision`: a
    /// deploy of `revision` is then an upgrade (its pre-upgrade and post-upgrade hooks
    /// run), else an install. A retried first deploy stays an install.
    fn installed(&self, release: &str, revision: u64) -> impl Future<Output = Result<bool, Failure>> + Send;

    /// The hooks stored with `revision` of `release` (for a rollback to it); fails
    /// with `RevisionNotInHistory` when the history does not hold it.
    fn stored_hooks(
        &self,
        release: &str,
        revision: u64,
    ) -> impl Future<Output = Result<StoredHooks, Failure>> + Send;

    /// Runs one hook of `op` at `event`: labels it as the release's (it is neither
    /// pruned nor judged for health); with `before-hook-creation`, deletes a leftover
    /// object of its name and waits until it is gone; creates it; waits for a Job's
    /// `Complete` condition or a Pod's `Succeeded` phase (other kinds are done once
    /// created) until `deadline` or `cancel`; then applies the delete policy.
    /// Objects without a namespace go to `namespace`.
    fn run_hook(
        &self,
        op: &OpRef,
        namespace: &str,
        hook: &Hook,
        event: HookEvent,
        deadline: Duration,
        cancel: CancellationToken,
    ) -> impl Future<Output = HookOutcome> + Send;

    /// At the agent's start: settles what a previous instance left half done (an apply
    /// interrupted between its intent and its outcome: see `kube::history`); returns
    /// the (release, revision) pairs it settled.
    fn recover(&self) -> impl Future<Output = Result<Vec<(String, u64)>, Failure>> + Send {
        async { Ok(Vec::new()) }
    }

    /// Every release this cluster's history knows, for the agent's hello.
    fn deployed(&self) -> impl Future<Output = Result<Vec<DeployedRevision>, Failure>> + Send;

    /// The cluster's Kubernetes version and API versions (discovery), for the agent's
    /// hello: read at every connect, so a cluster upgraded since shows at the next one.
    fn capabilities(&self) -> impl Future<Output = Result<ClusterCapabilities, Failure>> + Send;
}

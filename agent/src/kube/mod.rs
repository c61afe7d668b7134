//! The Kubernetes backend: [`KubeBackend`] implements [`Backend`] on a real cluster
//! through kube-rs.
//!
//! ```text
//! apply(req)    parse manifests -> discovery (GVK -> resource) -> per tier (namespaces,
//!               CRDs, Helm kind order): server-side apply, field manager `convoy`,
//!               concurrently inside a tier -> prune what the previous revision had
//!               (reverse order) -> history Secret convoy.<release>.v<N>
//! rollback(N)   history v<N> -> the same apply path -> recorded as op.revision
//!               (both stop between tiers when cancelled; the partial apply is
//!               recorded as a failed revision)
//! watch_rollout history v<op.revision> -> its workloads -> watch + 2s resync ->
//!               health::verdict::Judge (pure) -> progress, outcome
//! record_outcome  history labels: healthy, or failed
//! canary        crate::canary's copies -> the same apply path, no previous objects (no
//!               prune, no history) -> delete the release's canary objects (by label)
//!               the step no longer has; watch_canary: the copies' Deployments only
//! blue/green    crate::bluegreen's transform (live slot from the replaced revision's
//!               record) -> the same apply path; the live slot's objects are kept
//!               (recorded with the revision, not pruned); switch_slot: the slot
//!               Services re-applied selecting the slot, the record updated (switched,
//!               retire deadline); retire: the kept objects deleted once due
//! lock          Lease convoy-lock.<release>, renewed; taken over once expired
//! capabilities  /version, /api, /apis and every group version's resources (the hello)
//! ```
//!
//! | module | owns |
//! |---|---|
//! | [`manifest`] | parsing, namespace placement, ownership labels, force-roll stamps |
//! | [`order`] | apply tiers |
//! | [`discovery`] | GVK -> resource, CRD establishment, the cluster's capabilities |
//! | [`apply`] | server-side apply, dry run (diffed by [`crate::diff`]), conflicts, pruning |
//! | [`history`] | revision Secrets (with the revision's hooks) |
//! | `canary` | listing (by label, metadata only) and deleting a release's canary objects |
//! | `hooks` | running one Helm hook: create, wait for the Job or Pod, delete policy |
//! | [`lock`] | per-release Lease |
//! | [`health`] | verdict (pure) and watcher (adapter) |

// `Failure` is the Backend trait's error type (and the lead's): the functions here
// return it as is rather than boxing it only to unbox it at the trait boundary.
#![allow(clippy::result_large_err)]

pub mod apply;
mod canary;
pub mod discovery;
pub mod health;
pub mod history;
mod hooks;
pub mod lock;
pub mod manifest;
pub mod order;

use std::collections::HashSet;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Client;
use kube::api::{Api, PostParams};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use self::apply::{Applier, ApplyCtx};
use self::discovery::Discovery;
use self::health::verdict::WorkloadKind;
use self::history::{History, HookManifest, RevisionRecord, RevisionStatus};
use self::lock::Locks;
use self::manifest::Object;
use crate::backend::{
    ApplyRequest, Backend, CanaryRequest, ChangeError, ClusterCapabilities, DeployedRevision, Failure,
    FailureReason, HealthOutcome, HealthPolicy, HookOutcome, LockToken, Manifest, ObjectResult, OpRef,
    ProgressUpdate, StoredHooks,
};
use crate::bluegreen;
use crate::hooks::{Hook, HookEvent};

/// How the Kubernetes backend is set up.
#[derive(Debug, Clone)]
pub struct KubeBackendConfig {
    /// Where revision history Secrets and release Leases live (created if missing).
    pub history_namespace: String,
    /// Revisions kept per release.
    pub history_limit: u32,
    /// The server-side apply field manager.
    pub field_manager: String,
    /// This agent instance, as written in the release Leases it holds.
    pub holder_id: String,
    /// A lease not renewed for this long is taken over.
    pub lock_ttl: Duration,
    /// An apply that would prune more than this percentage of the release's objects
    /// (or all of them) is refused unless the command allows mass deletion.
    pub max_prune_percent: u32,
}

/// The default of [`KubeBackendConfig::max_prune_percent`].
pub const DEFAULT_MAX_PRUNE_PERCENT: u32 = 50;

impl Default for KubeBackendConfig {
    fn default() -> Self {
        KubeBackendConfig {
            history_namespace: "convoy-system".into(),
            history_limit: 10,
            field_manager: "convoy".into(),
            holder_id: format!("convoy-agent-{}", std::process::id()),
            lock_ttl: Duration::from_secs(30),
            max_prune_percent: DEFAULT_MAX_PRUNE_PERCENT,
        }
    }
}

/// The cluster backend on a real Kubernetes API server.
pub struct KubeBackend {
    client: Client,
    config: KubeBackendConfig,
    discovery: Discovery,
    history: History,
    locks: Locks,
}

impl std::fmt::Debug for KubeBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeBackend")
            .field("config", &self.config)
            .finish()
    }
}

impl KubeBackend {
    pub fn new(client: Client, config: KubeBackendConfig) -> Self {
        KubeBackend {
            discovery: Discovery::new(client.clone()),
            history: History::new(
                client.clone(),
                &config.history_namespace,
                config.history_limit,
                &config.field_manager,
            ),
            locks: Locks::new(
                client.clone(),
                &config.history_namespace,
                &config.holder_id,
                config.lock_ttl,
            ),
            client,
            config,
        }
    }

    /// The revision history (for the agent's status and for tests).
    pub fn history(&self) -> &History {
        &self.history
    }

    fn applier(&self) -> Applier<'_> {
        Applier {
            client: &self.client,
            discovery: &self.discovery,
        }
    }

    /// Applies `objects` as `op`'s revision and records it in history (failed when
    /// the apply fails or is cancelled part way, so the next revision still prunes
    /// what it left behind). Cancelled before it started, it records nothing.
    ///
    /// `previous` is the revision this one replaces; `slots` the blue/green state to
    /// record (default: none), whose `kept` objects are neither applied nor pruned.
    #[allow(clippy::too_many_arguments)]
    async fn apply_and_record(
        &self,
        op: &OpRef,
        namespace: &str,
        chart: &str,
        objects: Vec<Object>,
        flags: (bool, bool, bool, bool),
        hooks: Vec<HookManifest>,
        previous: Option<RevisionRecord>,
        slots: RevisionRecord,
        cancel: &CancellationToken,
    ) -> Result<Vec<ObjectResult>, ChangeError> {
        if cancel.is_cancelled() {
            return Err(ChangeError::Cancelled);
        }
        let (force_conflicts, adopt, force_roll, allow_mass_deletion) = flags;
        let ctx = ApplyCtx {
            release: &op.release,
            revision: op.revision,
            namespace,
            force_conflicts,
            adopt,
            force_roll,
            dry_run: false,
            field_manager: &self.config.field_manager,
            allow_mass_deletion,
            max_prune_percent: self.config.max_prune_percent,
        };
        // What the previous revision left in the cluster: its objects and what it kept
        // (an old slot not yet retired), less what this revision keeps in turn.
        let planned = self.applier().placed(&objects, namespace).await?;
        let planned_keys: HashSet<String> = planned.iter().map(body_key).collect();
        let mut kept = slots.kept.clone();
        kept.retain(|b| !planned_keys.contains(&body_key(b)));
        let kept_keys: HashSet<String> = kept.iter().map(body_key).collect();
        let mut prev_objects: Vec<serde_json::Value> = Vec::new();
        let mut prev_keys = HashSet::new();
        if let Some(p) = &previous {
            for b in p.objects.iter().chain(p.kept_live()) {
                let key = body_key(b);
                if !kept_keys.contains(&key) && prev_keys.insert(key) {
                    prev_objects.push(b.clone());
                }
            }
        }
        let with_slots = |r: RevisionRecord| RevisionRecord {
            slot: slots.slot.clone(),
            live_slot: slots.live_slot.clone(),
            switched: slots.switched,
            slot_services: slots.slot_services.clone(),
            kept: kept.clone(),
            retire_at: None,
            retired: false,
            ..r
        };
        // The intent, before anything changes: a pending revision owning everything
        // this apply may create and everything the previous revision owns. An agent
        // killed before the outcome below is written leaves no object that no revision
        // owns; at its next start it marks the revision failed (see `recover`), so the
        // coordinator's re-sent command or rollback, or the next revision, prunes from it.
        let seen = planned_keys;
        let mut owned = planned;
        owned.extend(
            prev_objects
                .iter()
                .filter(|b| !seen.contains(&body_key(b)))
                .cloned(),
        );
        let intent = with_slots(RevisionRecord {
            release: op.release.clone(),
            revision: op.revision,
            namespace: namespace.to_string(),
            chart: chart.to_string(),
            operation_id: op.operation_id.clone(),
            objects: owned,
            hooks: hooks.clone(),
            ..RevisionRecord::default()
        });
        self.history.record(&intent, RevisionStatus::Pending).await?;
        let (outcome, applied) = match self.applier().run(&ctx, objects, &prev_objects, cancel).await {
            Ok(a) => (Ok(()), a),
            Err((f, a)) => (Err(f), a),
        };
        let status = if outcome.is_ok() {
            RevisionStatus::Deployed
        } else {
            RevisionStatus::Failed
        };
        let mut bodies = applied.bodies;
        if outcome.is_err() {
            // Keep what the failed revision left behind AND what the previous one
            // still owns, so the next apply prunes both correctly.
            let seen: HashSet<String> = bodies.iter().map(body_key).collect();
            bodies.extend(prev_objects.into_iter().filter(|b| !seen.contains(&body_key(b))));
        }
        let record = with_slots(RevisionRecord {
            release: op.release.clone(),
            revision: op.revision,
            namespace: namespace.to_string(),
            chart: chart.to_string(),
            operation_id: op.operation_id.clone(),
            objects: bodies,
            hooks,
            ..RevisionRecord::default()
        });
        self.history.record(&record, status).await?;
        outcome.map(|()| applied.results)
    }
}

impl KubeBackend {
    /// A request's objects: the render, or its blue/green transform (see
    /// [`crate::bluegreen`]) with the slot state to record and the objects of
    /// `previous` to keep.
    fn revision_objects(
        &self,
        req: &ApplyRequest,
        previous: Option<&RevisionRecord>,
    ) -> Result<(Vec<Object>, RevisionRecord), Failure> {
        let Some(bg) = req.blue_green else {
            return Ok((manifest::parse(&req.manifests)?, RevisionRecord::default()));
        };
        let live = previous.and_then(RevisionRecord::serving_slot);
        let plan = bluegreen::plan(&req.manifests, &req.namespace, live, bg.preview_service)?;
        let kept = match previous {
            None => Vec::new(),
            Some(p) => {
                let objects: Vec<&serde_json::Value> = p.objects.iter().collect();
                let kept: Vec<&serde_json::Value> = p.kept_live().iter().collect();
                bluegreen::to_keep(&objects, &kept, p.slot.is_some(), live)
                    .into_iter()
                    .cloned()
                    .collect()
            }
        };
        let slots = RevisionRecord {
            slot: Some(plan.slot),
            live_slot: live.map(str::to_string),
            switched: false,
            slot_services: plan.services,
            kept,
            ..RevisionRecord::default()
        };
        Ok((plan.objects, slots))
    }

    /// The release's current revision's record, if it is `revision`.
    async fn current_record(&self, release: &str, revision: u64) -> Result<Option<RevisionRecord>, Failure> {
        match self.history.current(release).await? {
            Some(c) if c.revision == revision => self.history.load(release, revision).await,
            _ => Ok(None),
        }
    }
}

/// Now, in unix seconds.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `after` from now, in unix seconds rounded up: a deadline never earlier than asked.
fn unix_deadline(after: Duration) -> u64 {
    let at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        + after;
    at.as_secs() + u64::from(at.subsec_nanos() > 0)
}

/// An unexpected API error while doing `what`, as the Backend's failure.
pub(crate) fn internal(what: String, e: impl std::fmt::Display) -> Failure {
    Failure::new(FailureReason::Internal, format!("{what}: {e}"))
}

/// Creates the namespace `name` that the agent's own objects (revision history
/// Secrets, release Leases) live in; one that already exists (409, created meanwhile
/// by the other user of it or by another agent) is success. `purpose` says what the
/// namespace is for in the error message.
pub(crate) async fn create_namespace(
    namespaces: &Api<Namespace>,
    name: &str,
    purpose: &str,
) -> Result<(), Failure> {
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    match namespaces.create(&PostParams::default(), &ns).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(internal(format!("creating namespace {name} for {purpose}"), e)),
    }
}

fn body_key(b: &serde_json::Value) -> String {
    let (group, _) = discovery::split_api_version(b["apiVersion"].as_str().unwrap_or_default());
    format!(
        "{group}/{}/{}/{}",
        b["kind"].as_str().unwrap_or_default(),
        b["metadata"]["namespace"].as_str().unwrap_or_default(),
        b["metadata"]["name"].as_str().unwrap_or_default()
    )
}

/// Refuses a revision that names one object twice (the second would silently win).
fn check_duplicates(objects: &[Object], namespace: &str) -> Result<(), Failure> {
    let mut seen = HashSet::new();
    for o in objects {
        let r = o.object_ref();
        let key = (
            discovery::split_api_version(&r.api_version).0.to_string(),
            r.kind.clone(),
            r.namespace.clone().unwrap_or_else(|| namespace.to_string()),
            r.name.clone(),
        );
        if !seen.insert(key) {
            return Err(Failure::new(
                FailureReason::ApplyRefused,
                format!("{} ({}): defined more than once in this revision", r, o.source),
            )
            .with_object(r));
        }
    }
    Ok(())
}

fn is_valid_release(release: &str) -> Result<(), Failure> {
    let ok = !release.is_empty()
        && release.len() <= 53
        && release
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && release.starts_with(|c: char| c.is_ascii_alphanumeric())
        && release.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(Failure::new(
            FailureReason::ApplyRefused,
            format!(
                "release name {release:?} must be 1-53 lowercase letters, digits, '-' or '.', starting and ending alphanumeric (it names Secrets, Leases and labels)"
            ),
        ))
    }
}

impl Backend for KubeBackend {
    fn kind(&self) -> &'static str {
        "kubernetes"
    }

    async fn lock(&self, op: &OpRef) -> Result<LockToken, Failure> {
        is_valid_release(&op.release)?;
        self.locks.lock(op).await
    }

    async fn unlock(&self, token: LockToken) -> Result<(), Failure> {
        self.locks.unlock(token).await
    }

    async fn apply_until(
        &self,
        req: &ApplyRequest,
        cancel: CancellationToken,
    ) -> Result<Vec<ObjectResult>, ChangeError> {
        is_valid_release(&req.op.release)?;
        let previous = self.history.previous(&req.op.release, req.op.revision).await?;
        let (objects, slots) = self.revision_objects(req, previous.as_ref())?;
        check_duplicates(&objects, &req.namespace)?;
        self.apply_and_record(
            &req.op,
            &req.namespace,
            &req.chart,
            objects,
            (
                req.force_conflicts,
                req.adopt,
                req.force_roll,
                req.allow_mass_deletion,
            ),
            req.hooks
                .iter()
                .map(|m| HookManifest {
                    source: m.source.clone(),
                    content: m.content.clone(),
                })
                .collect(),
            previous,
            slots,
            &cancel,
        )
        .await
    }

    async fn dry_run(&self, req: &ApplyRequest) -> Result<Vec<ObjectResult>, Failure> {
        is_valid_release(&req.op.release)?;
        let prev = self.history.previous(&req.op.release, req.op.revision).await?;
        let (objects, slots) = self.revision_objects(req, prev.as_ref())?;
        check_duplicates(&objects, &req.namespace)?;
        let kept: HashSet<String> = slots.kept.iter().map(body_key).collect();
        let previous: Vec<serde_json::Value> = prev
            .map(|p| {
                let mut all = p.objects.clone();
                all.extend(p.kept_live().iter().cloned());
                all
            })
            .unwrap_or_default()
            .into_iter()
            .filter(|b| !kept.contains(&body_key(b)))
            .collect();
        let ctx = ApplyCtx {
            release: &req.op.release,
            revision: req.op.revision,
            namespace: &req.namespace,
            force_conflicts: req.force_conflicts,
            adopt: req.adopt,
            force_roll: req.force_roll,
            dry_run: true,
            field_manager: &self.config.field_manager,
            allow_mass_deletion: req.allow_mass_deletion,
            max_prune_percent: self.config.max_prune_percent,
        };
        // Not cancellable here: the runtime drops a cancelled dry run's future.
        self.applier()
            .run(&ctx, objects, &previous, &CancellationToken::new())
            .await
            .map(|a| a.results)
            .map_err(|(e, _)| e.into_failure())
    }

    async fn rollback_until(
        &self,
        op: &OpRef,
        target_revision: u64,
        cancel: CancellationToken,
    ) -> Result<Vec<ObjectResult>, ChangeError> {
        is_valid_release(&op.release)?;
        let target = self
            .history
            .load(&op.release, target_revision)
            .await?
            .ok_or_else(|| {
                Failure::new(
                    FailureReason::RevisionNotInHistory,
                    format!(
                        "release {} has no revision {target_revision} in this cluster's history (namespace {})",
                        op.release, self.config.history_namespace
                    ),
                )
            })?;
        let mut target = target;
        let objects: Vec<Object> = std::mem::take(&mut target.objects)
            .into_iter()
            .map(|body| Object {
                source: format!("history of {} revision {target_revision}", op.release),
                body,
            })
            .collect();
        // Blue/green: the restored revision's slot and switch state, so the next
        // blue/green revision goes into the right idle slot. A switched one keeps
        // nothing (its slot Services select its own slot; whatever else ran goes); an
        // unswitched one keeps what it kept, if still there (its Services select it).
        let slots = RevisionRecord {
            slot: target.slot.clone(),
            live_slot: target.live_slot.clone(),
            switched: target.switched,
            slot_services: target.slot_services.clone(),
            kept: if target.slot.is_some() && !target.switched {
                target.kept_live().to_vec()
            } else {
                Vec::new()
            },
            ..RevisionRecord::default()
        };
        let previous = self.history.previous(&op.release, op.revision).await?;
        // The stored objects keep their pod-template stamps, so pods roll back to the
        // very template they had. Conflicts are forced: these fields were ours. A
        // rollback restores a revision that was deployed, whatever it prunes: it is not
        // held to the mass-deletion limit (an emergency must not be refused).
        self.apply_and_record(
            op,
            &target.namespace,
            &target.chart,
            objects,
            (true, false, false, true),
            target.hooks,
            previous,
            slots,
            &cancel,
        )
        .await
    }

    async fn watch_rollout(
        &self,
        op: &OpRef,
        health: HealthPolicy,
        progress: mpsc::Sender<ProgressUpdate>,
        cancel: CancellationToken,
    ) -> HealthOutcome {
        let record = match self.history.load(&op.release, op.revision).await {
            Ok(Some(r)) => r,
            Ok(None) => {
                return HealthOutcome::Failed(Failure::new(
                    FailureReason::RevisionNotInHistory,
                    format!(
                        "release {} revision {} is not in this cluster's history: apply it first",
                        op.release, op.revision
                    ),
                ));
            }
            Err(f) => return HealthOutcome::Failed(f),
        };
        let workloads: Vec<_> = record
            .objects
            .iter()
            .filter_map(|b| {
                let obj = Object {
                    source: String::new(),
                    body: b.clone(),
                };
                WorkloadKind::from_kind(obj.kind()).map(|k| (obj.object_ref(), k))
            })
            .collect();
        health::watch::watch(&self.client, workloads, health, progress, cancel).await
    }

    async fn apply_canary_until(
        &self,
        req: &CanaryRequest,
        cancel: CancellationToken,
    ) -> Result<Vec<ObjectResult>, ChangeError> {
        let a = &req.apply;
        is_valid_release(&a.op.release)?;
        let plan = crate::canary::plan(&a.manifests, &a.namespace, req.weight_percent)?;
        check_duplicates(&plan.objects, &a.namespace)?;
        if cancel.is_cancelled() {
            return Err(ChangeError::Cancelled);
        }
        // No previous objects: nothing of the release is pruned by the apply itself
        // (and no mass-deletion check applies); only stale canary objects go, below.
        let ctx = ApplyCtx {
            release: &a.op.release,
            revision: a.op.revision,
            namespace: &a.namespace,
            force_conflicts: a.force_conflicts,
            adopt: a.adopt,
            force_roll: a.force_roll,
            dry_run: false,
            field_manager: &self.config.field_manager,
            allow_mass_deletion: true,
            max_prune_percent: self.config.max_prune_percent,
        };
        let applied = self
            .applier()
            .run(&ctx, plan.objects, &[], &cancel)
            .await
            .map_err(|(e, _)| e)?;
        let mut results = applied.results;
        let keep: HashSet<(String, String)> = results
            .iter()
            .map(|r| (r.object.kind.clone(), r.object.name.clone()))
            .collect();
        let stale: Vec<_> = canary::list(&self.client, &a.op.release, &a.namespace)
            .await?
            .into_iter()
            .filter(|o| !keep.contains(&(o.kind.clone(), o.name.clone())))
            .collect();
        results.extend(canary::delete(&self.client, stale).await?);
        Ok(results)
    }

    async fn watch_canary(
        &self,
        _op: &OpRef,
        workloads: &[crate::backend::ObjectRef],
        health: HealthPolicy,
        progress: mpsc::Sender<ProgressUpdate>,
        cancel: CancellationToken,
    ) -> HealthOutcome {
        let workloads: Vec<_> = workloads
            .iter()
            .filter(|o| o.kind == "Deployment")
            .map(|o| (o.clone(), WorkloadKind::Deployment))
            .collect();
        health::watch::watch(&self.client, workloads, health, progress, cancel).await
    }

    async fn remove_canary(&self, release: &str, namespace: &str) -> Result<Vec<ObjectResult>, Failure> {
        is_valid_release(release)?;
        let found = canary::list(&self.client, release, namespace).await?;
        canary::delete(&self.client, found).await
    }

    async fn switch_slot(&self, op: &OpRef, retire_after: Duration) -> Result<Vec<ObjectResult>, Failure> {
        is_valid_release(&op.release)?;
        let Some(mut record) = self.current_record(&op.release, op.revision).await? else {
            return Err(Failure::new(
                FailureReason::RevisionNotInHistory,
                format!(
                    "release {} revision {} is not the current revision in this cluster's history: only the current one can be switched to",
                    op.release, op.revision
                ),
            ));
        };
        let Some(slot) = record.slot.clone() else {
            return Err(Failure::new(
                FailureReason::NotBlueGreen,
                format!(
                    "release {} revision {} was not applied with blue/green: it has no slot to switch to",
                    op.release, op.revision
                ),
            ));
        };
        let mut services = Vec::new();
        for body in record.objects.iter_mut() {
            let name = body["metadata"]["name"].as_str().unwrap_or_default();
            if body["apiVersion"] == "v1"
                && body["kind"] == "Service"
                && record.slot_services.iter().any(|s| s == name)
            {
                bluegreen::select_slot(body, &slot);
                services.push(Object {
                    source: format!("history of {} revision {}", op.release, op.revision),
                    body: body.clone(),
                });
            }
        }
        // The same field manager and stamps as the revision's apply; our own fields, so
        // conflicts are forced; nothing is pruned.
        let ctx = ApplyCtx {
            release: &op.release,
            revision: op.revision,
            namespace: &record.namespace,
            force_conflicts: true,
            adopt: false,
            force_roll: false,
            dry_run: false,
            field_manager: &self.config.field_manager,
            allow_mass_deletion: true,
            max_prune_percent: self.config.max_prune_percent,
        };
        let applied = self
            .applier()
            .run(&ctx, services, &[], &CancellationToken::new())
            .await
            .map_err(|(e, _)| e.into_failure())?;
        // The recorded Services as applied (stamped), so a rollback to this revision
        // restores the switch.
        let by_key: std::collections::HashMap<String, serde_json::Value> =
            applied.bodies.into_iter().map(|b| (body_key(&b), b)).collect();
        for body in record.objects.iter_mut() {
            if let Some(b) = by_key.get(&body_key(body)) {
                *body = b.clone();
            }
        }
        if !record.switched || record.retire_at.is_none() {
            record.retire_at = Some(unix_deadline(retire_after));
        }
        record.switched = true;
        self.history.update(&record).await?;
        Ok(applied.results)
    }

    async fn retirements_due(&self) -> Result<Vec<(String, u64)>, Failure> {
        let now = unix_now();
        Ok(self
            .history
            .retire_deadlines()
            .await?
            .into_iter()
            .filter(|(_, _, at)| *at <= now)
            .map(|(release, revision, _)| (release, revision))
            .collect())
    }

    async fn retire(&self, release: &str, revision: u64) -> Result<Vec<ObjectResult>, Failure> {
        is_valid_release(release)?;
        let Some(mut record) = self.current_record(release, revision).await? else {
            return Ok(Vec::new());
        };
        if record.retired || record.retire_at.is_none_or(|at| at > unix_now()) {
            return Ok(Vec::new());
        }
        let mut refs: Vec<crate::backend::ObjectRef> = record
            .kept
            .iter()
            .map(|b| {
                Object {
                    source: String::new(),
                    body: b.clone(),
                }
                .object_ref()
            })
            .collect();
        // Workloads first, then what they mount.
        refs.sort_by_key(|o| o.kind != "Deployment");
        let retired = canary::delete(&self.client, refs).await?;
        record.retired = true;
        self.history.update(&record).await?;
        Ok(retired)
    }

    async fn recover(&self) -> Result<Vec<(String, u64)>, Failure> {
        self.history.settle_pending().await
    }

    async fn record_outcome(&self, op: &OpRef, healthy: bool) -> Result<(), Failure> {
        is_valid_release(&op.release)?;
        self.history.set_outcome(&op.release, op.revision, healthy).await
    }

    async fn installed(&self, release: &str, revision: u64) -> Result<bool, Failure> {
        is_valid_release(release)?;
        let revisions = self.history.list(release).await?;
        Ok(revisions.iter().any(|i| i.revision != revision))
    }

    async fn stored_hooks(&self, release: &str, revision: u64) -> Result<StoredHooks, Failure> {
        is_valid_release(release)?;
        let record = self.history.load(release, revision).await?.ok_or_else(|| {
            Failure::new(
                FailureReason::RevisionNotInHistory,
                format!(
                    "release {release} has no revision {revision} in this cluster's history (namespace {})",
                    self.config.history_namespace
                ),
            )
        })?;
        Ok(StoredHooks {
            namespace: record.namespace,
            hooks: record
                .hooks
                .into_iter()
                .map(|h| Manifest {
                    source: h.source,
                    content: h.content,
                })
                .collect(),
        })
    }

    async fn run_hook(
        &self,
        op: &OpRef,
        namespace: &str,
        hook: &Hook,
        event: HookEvent,
        deadline: Duration,
        cancel: CancellationToken,
    ) -> HookOutcome {
        self.run_hook_in_cluster(op, namespace, hook, event, deadline, cancel)
            .await
    }

    async fn deployed(&self) -> Result<Vec<DeployedRevision>, Failure> {
        self.history.deployed().await
    }

    async fn capabilities(&self) -> Result<ClusterCapabilities, Failure> {
        discovery::capabilities(&self.client).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Manifest;

    #[test]
    fn release_names_must_fit_secret_lease_and_label_names() {
        for ok in ["web.ns1", "app-1.team-a", "a"] {
            assert!(is_valid_release(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Web.ns1", "web_ns1", "-web", "web.", &"a".repeat(54)] {
            let err = is_valid_release(bad).unwrap_err();
            assert_eq!(err.reason, FailureReason::ApplyRefused, "{bad}");
        }
    }

    #[test]
    fn an_object_defined_twice_is_refused_across_api_versions_and_default_namespaces() {
        let objs = manifest::parse(&[Manifest {
            source: "app/templates/a.yaml".into(),
            content: "apiVersion: batch/v1beta1\nkind: CronJob\nmetadata: {name: c}\n---\n\
                      apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: c, namespace: ns1}\n"
                .into(),
        }])
        .unwrap();
        let err = check_duplicates(&objs, "ns1").unwrap_err();
        assert!(err.message.contains("defined more than once"), "{}", err.message);
        assert!(check_duplicates(&objs, "ns2").is_ok());
    }
}

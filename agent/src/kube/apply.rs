//! Server-side apply of one revision's objects, tier by tier (see [`super::order`]),
//! concurrently inside a tier; ownership checks; conflict reporting; pruning; and the
//! same path as a server-side dry run.

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use futures::{StreamExt, stream};
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PropagationPolicy};
use kube::{Client, core::Status};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::discovery::{Discovery, Resolved, split_api_version, wait_established};
use super::manifest::{self, Object, RELEASE_LABEL, REVISION_ANNOTATION};
use super::order;
use crate::backend::{ChangeError, Failure, FailureReason, ObjectAction, ObjectRef, ObjectResult};
use crate::diff;

/// Requests in flight at once inside a tier.
const CONCURRENCY: usize = 16;
/// How long a CRD applied in this revision may take to be served.
const CRD_ESTABLISH_TIMEOUT: Duration = Duration::from_secs(60);

/// What one apply (or dry run) is asked to do.
pub struct ApplyCtx<'a> {
    pub release: &'a str,
    pub revision: u64,
    pub namespace: &'a str,
    pub force_conflicts: bool,
    pub adopt: bool,
    pub force_roll: bool,
    pub dry_run: bool,
    pub field_manager: &'a str,
    /// Prune more than `max_prune_percent` of the release's objects, or all of them.
    pub allow_mass_deletion: bool,
    pub max_prune_percent: u32,
}

/// Helm's annotation that keeps an object when its release no longer has it.
pub const RESOURCE_POLICY_ANNOTATION: &str = "helm.sh/resource-policy";

/// Kinds never pruned: deleting a CRD deletes every custom resource of it in the
/// cluster, deleting a Namespace everything in it (Helm never deletes `crds/` either).
const NEVER_PRUNED: &[&str] = &["CustomResourceDefinition", "Namespace"];

/// Whether a previous revision's object may be pruned at all: not a [`NEVER_PRUNED`]
/// kind and not annotated `helm.sh/resource-policy: keep`.
fn prunable(body: &Value) -> bool {
    let kind = body["kind"].as_str().unwrap_or_default();
    !NEVER_PRUNED.contains(&kind) && !keeps(body)
}

fn keeps(body: &Value) -> bool {
    body["metadata"]["annotations"][RESOURCE_POLICY_ANNOTATION]
        .as_str()
        .is_some_and(|p| p.trim() == "keep")
}

/// Refuses a revision that would prune more than `max_percent` of the release's
/// prunable objects, or all of them (an empty render).
fn check_mass_deletion(
    previous: &[Value],
    planned: &HashSet<(String, String, Option<String>, String)>,
    max_percent: u32,
) -> Result<(), Failure> {
    let prunable: BTreeSet<_> = previous
        .iter()
        .filter(|b| prunable(b))
        .map(|b| {
            let o = Object {
                source: String::new(),
                body: b.clone(),
            };
            (identity(&o.object_ref()), o.object_ref().to_string())
        })
        .collect();
    let total = prunable.len();
    let gone: Vec<&String> = prunable
        .iter()
        .filter(|(id, _)| !planned.contains(id))
        .map(|(_, shown)| shown)
        .collect();
    let all = !gone.is_empty() && gone.len() == total;
    let too_many = gone.len() as u64 * 100 > u64::from(max_percent) * total as u64;
    if !all && !too_many {
        return Ok(());
    }
    let what = if planned.is_empty() {
        "the render is empty: this revision would delete every object of the release".to_string()
    } else if all {
        format!("this revision would delete every object of the release ({total})")
    } else {
        format!(
            "this revision would delete {} of the release's {total} objects, more than {max_percent} %",
            gone.len()
        )
    };
    let mut names: Vec<String> = gone.iter().take(5).map(|s| s.to_string()).collect();
    if gone.len() > 5 {
        names.push(format!("and {} more", gone.len() - 5));
    }
    Err(Failure::new(
        FailureReason::MassDeletion,
        format!(
            "{what} ({}); nothing was changed. If that is intended, submit with `spec.options.allowMassDeletion: true` or `convoy submit --allow-mass-deletion`",
            names.join(", ")
        ),
    ))
}

/// An apply's outcome: per-object results, and the bodies now in the cluster as the
/// release's (what history records and the next revision prunes against).
pub struct Applied {
    pub results: Vec<ObjectResult>,
    pub bodies: Vec<Value>,
}

/// Identity across API versions (so `v1beta1` -> `v1` of a kind is not a prune).
fn identity(r: &ObjectRef) -> (String, String, Option<String>, String) {
    let (group, _) = split_api_version(&r.api_version);
    (
        group.to_string(),
        r.kind.clone(),
        r.namespace.clone(),
        r.name.clone(),
    )
}

pub(crate) fn api_for(client: &Client, res: &Resolved, namespace: Option<&str>) -> Api<DynamicObject> {
    match (res.namespaced, namespace) {
        (true, Some(ns)) => Api::namespaced_with(client.clone(), ns, &res.resource),
        _ => Api::all_with(client.clone(), &res.resource),
    }
}

/// Turns an API error on `obj` into a Failure naming it: conflicts with the field and
/// the other manager, refusals with the server's reason.
pub fn classify(e: kube::Error, obj: &ObjectRef, doing: &str) -> Failure {
    match e {
        kube::Error::Api(s) => classify_status(&s, obj, doing),
        other => {
            Failure::new(FailureReason::Internal, format!("{doing} {obj}: {other}")).with_object(obj.clone())
        }
    }
}

fn classify_status(s: &Status, obj: &ObjectRef, doing: &str) -> Failure {
    let causes = s
        .details
        .as_ref()
        .map(|d| d.causes.as_slice())
        .unwrap_or_default();
    let failure = match s.code {
        409 if causes.iter().any(|c| c.reason == "FieldManagerConflict")
            || s.message.contains("conflict with") =>
        {
            let conflicts: Vec<String> = causes
                .iter()
                .filter(|c| !c.field.is_empty())
                .map(|c| {
                    let manager = c.message.split('"').nth(1).unwrap_or("another field manager");
                    format!("field {} is owned by field manager {manager:?}", c.field)
                })
                .collect();
            let detail = if conflicts.is_empty() {
                s.message.clone()
            } else {
                conflicts.join("; ")
            };
            Failure::new(
                FailureReason::Conflict,
                format!("{obj}: {detail} (apply with force_conflicts to take them)"),
            )
        }
        400 | 403 | 404 | 409 | 415 | 422 => Failure::new(
            FailureReason::ApplyRefused,
            format!("{doing} {obj} refused ({}): {}", s.reason, s.message),
        ),
        _ => Failure::new(
            FailureReason::Internal,
            format!("{doing} {obj}: HTTP {} {}: {}", s.code, s.reason, s.message),
        ),
    };
    failure.with_object(obj.clone())
}

/// The release's namespace as the agent creates it (see `ensure_namespace`).
fn created_by_agent(obj: &DynamicObject) -> bool {
    obj.types.as_ref().is_some_and(|t| t.kind == "Namespace")
        && obj
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("app.kubernetes.io/managed-by"))
            .is_some_and(|v| v == "convoy")
}

fn release_of(obj: &DynamicObject) -> Option<&str> {
    obj.metadata
        .labels
        .as_ref()?
        .get(RELEASE_LABEL)
        .map(String::as_str)
}

pub struct Applier<'a> {
    pub client: &'a Client,
    pub discovery: &'a Discovery,
}

impl Applier<'_> {
    /// The bodies of `objects` placed as the apply will place them (in `namespace`
    /// unless cluster-scoped), unstamped: what an apply of them may create, for the
    /// intent recorded before it starts. A kind the server does not serve is placed as
    /// namespaced (the apply refuses it).
    pub async fn placed(&self, objects: &[Object], namespace: &str) -> Result<Vec<Value>, Failure> {
        let mut out = Vec::with_capacity(objects.len());
        for obj in objects {
            let namespaced = self
                .discovery
                .resolve(obj.api_version(), obj.kind())
                .await?
                .is_none_or(|r| r.namespaced);
            let mut placed = obj.clone();
            manifest::place(&mut placed, namespaced, namespace);
            out.push(placed.body);
        }
        Ok(out)
    }

    /// Applies `objects` in tier order and prunes what `previous` had that they lack.
    /// Apply: the first refusal fails it (after its tier finishes), carrying what was
    /// applied so far. Dry run: refusals are results. `cancel` stops it before the
    /// next tier (or the pruning, or while a CRD of this revision is being
    /// established), also carrying what was applied so far: an abort waits for the
    /// requests of one tier at most.
    pub async fn run(
        &self,
        ctx: &ApplyCtx<'_>,
        objects: Vec<Object>,
        previous: &[Value],
        cancel: &CancellationToken,
    ) -> Result<Applied, (ChangeError, Applied)> {
        let mut applied = Applied {
            results: Vec::new(),
            bodies: Vec::new(),
        };
        // Before anything changes: a revision that would prune most of the release.
        if !ctx.allow_mass_deletion && !previous.is_empty() {
            let mut planned = HashSet::new();
            for obj in &objects {
                let namespaced = match self.discovery.resolve(obj.api_version(), obj.kind()).await {
                    Ok(Some(r)) => r.namespaced,
                    // Unknown kind (refused below): placed as namespaced.
                    Ok(None) => true,
                    Err(f) => return Err((f.into(), applied)),
                };
                let mut placed = obj.clone();
                manifest::place(&mut placed, namespaced, ctx.namespace);
                planned.insert(identity(&placed.object_ref()));
            }
            if let Err(f) = check_mass_deletion(previous, &planned, ctx.max_prune_percent) {
                return Err((f.into(), applied));
            }
        }
        let mut new_namespaces: HashSet<String> = objects
            .iter()
            .filter(|o| o.kind() == "Namespace")
            .map(|o| o.name().to_string())
            .collect();
        // The release's namespace is created when missing (`helm --create-namespace`);
        // a dry run treats it as one this revision creates.
        match self.ensure_namespace(ctx).await {
            Ok(true) => {}
            Ok(false) => {
                new_namespaces.insert(ctx.namespace.to_string());
            }
            Err(f) => return Err((f.into(), applied)),
        }
        let mut keep = HashSet::new();
        for tier in order::tiers(objects, |o| o.kind()) {
            if cancel.is_cancelled() {
                return Err((ChangeError::Cancelled, applied));
            }
            let mut ready = Vec::new();
            for mut obj in tier {
                let resolved = match self.discovery.resolve(obj.api_version(), obj.kind()).await {
                    Ok(Some(r)) => r,
                    Ok(None) => {
                        let f = Failure::new(
                            FailureReason::ApplyRefused,
                            format!(
                                "{} ({}): the server has no kind {} in {} (is its CustomResourceDefinition installed?)",
                                obj.object_ref(),
                                obj.source,
                                obj.kind(),
                                obj.api_version()
                            ),
                        )
                        .with_object(obj.object_ref());
                        if ctx.dry_run {
                            applied.results.push(refused(obj.object_ref(), &f));
                            continue;
                        }
                        return Err((f.into(), applied));
                    }
                    Err(f) => return Err((f.into(), applied)),
                };
                manifest::place(&mut obj, resolved.namespaced, ctx.namespace);
                manifest::stamp(&mut obj, ctx.release, ctx.revision, ctx.force_roll);
                manifest::default_port_protocols(&mut obj);
                keep.insert(identity(&obj.object_ref()));
                ready.push((obj, resolved));
            }
            let new_namespaces = &new_namespaces;
            let outcomes: Vec<(Object, Result<ObjectResult, Failure>)> = stream::iter(ready)
                .map(|(obj, res)| async move {
                    let r = self.apply_one(ctx, &obj, &res, new_namespaces).await;
                    (obj, r)
                })
                .buffered(CONCURRENCY)
                .collect()
                .await;
            let mut first_failure = None;
            for (obj, outcome) in outcomes {
                match outcome {
                    Ok(r) => {
                        applied.results.push(r);
                        applied.bodies.push(obj.body);
                    }
                    Err(f) if ctx.dry_run && f.reason != FailureReason::Internal => {
                        applied.results.push(refused(obj.object_ref(), &f));
                    }
                    Err(f) => {
                        first_failure.get_or_insert(f);
                    }
                }
            }
            if let Some(f) = first_failure {
                return Err((f.into(), applied));
            }
            if !ctx.dry_run {
                for body in &applied.bodies {
                    if body["kind"] == "CustomResourceDefinition" {
                        let name = body["metadata"]["name"].as_str().unwrap_or_default();
                        let established = tokio::select! {
                            biased;
                            _ = cancel.cancelled() => return Err((ChangeError::Cancelled, applied)),
                            r = wait_established(self.client, name, CRD_ESTABLISH_TIMEOUT) => r,
                        };
                        if let Err(f) = established {
                            return Err((f.into(), applied));
                        }
                    }
                }
            }
        }
        if cancel.is_cancelled() {
            return Err((ChangeError::Cancelled, applied));
        }
        match self.prune(ctx, previous, &keep).await {
            Ok(pruned) => {
                applied.results.extend(pruned);
                Ok(applied)
            }
            Err(f) => Err((f.into(), applied)),
        }
    }

    /// Makes sure the release's namespace exists. Returns whether it does now (a dry
    /// run creates nothing and answers false for a missing one). The namespace is marked
    /// as convoy-managed but belongs to no release: several releases may share it, and
    /// pruning a release never deletes it. An agent not allowed to read namespaces (the
    /// least-privilege role) assumes it exists and lets the apply say otherwise.
    pub(crate) async fn ensure_namespace(&self, ctx: &ApplyCtx<'_>) -> Result<bool, Failure> {
        use k8s_openapi::api::core::v1::Namespace;
        if ctx.namespace.is_empty() {
            return Ok(true);
        }
        let api: Api<Namespace> = Api::all(self.client.clone());
        let obj = ObjectRef {
            api_version: "v1".into(),
            kind: "Namespace".into(),
            namespace: None,
            name: ctx.namespace.to_string(),
        };
        match api.get_opt(ctx.namespace).await {
            Ok(Some(_)) => return Ok(true),
            Ok(None) => {}
            Err(kube::Error::Api(s)) if s.code == 403 => return Ok(true),
            Err(e) => return Err(classify(e, &obj, "reading")),
        }
        if ctx.dry_run {
            return Ok(false);
        }
        let ns: Namespace = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": ctx.namespace, "labels": {"app.kubernetes.io/managed-by": "convoy"}}
        }))
        .map_err(|e| Failure::new(FailureReason::Internal, e.to_string()))?;
        match api.create(&kube::api::PostParams::default(), &ns).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(true),
            Err(e) => Err(classify(e, &obj, "creating")),
        }
    }

    async fn apply_one(
        &self,
        ctx: &ApplyCtx<'_>,
        obj: &Object,
        res: &Resolved,
        new_namespaces: &HashSet<String>,
    ) -> Result<ObjectResult, Failure> {
        let oref = obj.object_ref();
        let api = api_for(self.client, res, obj.namespace());
        let live = api
            .get_opt(obj.name())
            .await
            .map_err(|e| classify(e, &oref, "reading"))?;
        // An existing object convoy did not create (no release label) is not taken
        // silently: only with adopt. The release's namespace, which the agent itself
        // creates (`managed-by: convoy`, no release), is the exception.
        if let Some(live) = &live
            && release_of(live).is_none()
            && !ctx.adopt
            && !created_by_agent(live)
        {
            return Err(Failure::new(
                FailureReason::NotOwned,
                format!(
                    "{oref} exists and is not managed by convoy (no label {RELEASE_LABEL}); apply with adopt (`spec.options.adopt: true`) to take it over"
                ),
            )
            .with_object(oref));
        }
        let foreign_owner = live
            .as_ref()
            .and_then(release_of)
            .filter(|owner| *owner != ctx.release);
        if let Some(owner) = foreign_owner
            && !ctx.adopt
        {
            return Err(Failure::new(
                FailureReason::OwnedByAnotherRelease,
                format!(
                    "{oref} belongs to release {owner} (label {RELEASE_LABEL}); apply with adopt to take it over"
                ),
            )
            .with_object(oref));
        }
        let mut pp = PatchParams::apply(ctx.field_manager);
        // Adopting an object takes it whole, the fields its old owner set included.
        let adopting = live.as_ref().is_some_and(|l| release_of(l) != Some(ctx.release));
        if ctx.force_conflicts || (adopting && ctx.adopt) || foreign_owner.is_some() {
            pp = pp.force();
        }
        if ctx.dry_run {
            pp = pp.dry_run();
        }
        let patched = match api.patch(obj.name(), &pp, &Patch::Apply(&obj.body)).await {
            Ok(p) => p,
            // Dry run into a namespace this revision creates: it cannot be validated
            // before the namespace exists, but it would be created.
            Err(kube::Error::Api(s))
                if ctx.dry_run
                    && s.code == 404
                    && obj.namespace().is_some_and(|ns| new_namespaces.contains(ns)) =>
            {
                return Ok(ObjectResult {
                    object: oref,
                    action: ObjectAction::Created,
                    changes: Vec::new(),
                    message: "its namespace is created by this revision; not validated by the server".into(),
                });
            }
            Err(e) => return Err(classify(e, &oref, "applying")),
        };
        let mut result = ObjectResult {
            object: oref,
            action: ObjectAction::Created,
            changes: Vec::new(),
            message: String::new(),
        };
        let Some(live) = live else { return Ok(result) };
        if ctx.dry_run {
            let before = serde_json::to_value(&live).unwrap_or_default();
            let after = serde_json::to_value(&patched).unwrap_or_default();
            result.changes = diff::changes(&before, &after, REVISION_ANNOTATION);
            result.action = if result.changes.is_empty() {
                ObjectAction::Unchanged
            } else {
                ObjectAction::Configured
            };
        } else {
            result.action = if live.metadata.resource_version == patched.metadata.resource_version {
                ObjectAction::Unchanged
            } else {
                ObjectAction::Configured
            };
        }
        Ok(result)
    }

    /// Deletes (reverse tier order) what `previous` applied and this revision does not
    /// have, if it is still labelled as this release's.
    async fn prune(
        &self,
        ctx: &ApplyCtx<'_>,
        previous: &[Value],
        keep: &HashSet<(String, String, Option<String>, String)>,
    ) -> Result<Vec<ObjectResult>, Failure> {
        let gone: Vec<Object> = previous
            .iter()
            .map(|b| Object {
                source: format!("history of {}", ctx.release),
                body: b.clone(),
            })
            .filter(|o| !keep.contains(&identity(&o.object_ref())))
            // Namespaces and CRDs are never pruned (see NEVER_PRUNED).
            .filter(|o| !NEVER_PRUNED.contains(&o.kind()))
            .collect();
        let mut seen = BTreeSet::new();
        let mut results = Vec::new();
        for tier in order::tiers(gone, |o| o.kind()).into_iter().rev() {
            let tier: Vec<Object> = tier
                .into_iter()
                .filter(|o| seen.insert(identity(&o.object_ref())))
                .collect();
            let outcomes: Vec<Result<Option<ObjectResult>, Failure>> = stream::iter(tier)
                .map(|obj| async move { self.prune_one(ctx, &obj).await })
                .buffered(CONCURRENCY)
                .collect()
                .await;
            for o in outcomes {
                if let Some(r) = o? {
                    results.push(r);
                }
            }
        }
        Ok(results)
    }

    async fn prune_one(&self, ctx: &ApplyCtx<'_>, obj: &Object) -> Result<Option<ObjectResult>, Failure> {
        let oref = obj.object_ref();
        // A kind no longer served (its CRD is gone) has nothing left to prune.
        let Some(res) = self.discovery.resolve(obj.api_version(), obj.kind()).await? else {
            return Ok(None);
        };
        let api = api_for(self.client, &res, obj.namespace());
        let live = api
            .get_opt(obj.name())
            .await
            .map_err(|e| classify(e, &oref, "reading"))?;
        let Some(live) = live else { return Ok(None) };
        if release_of(&live) != Some(ctx.release) {
            return Ok(None);
        }
        // Helm's `helm.sh/resource-policy: keep`, on the object as it is now.
        let annotated_keep = live
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(RESOURCE_POLICY_ANNOTATION))
            .is_some_and(|p| p.trim() == "keep");
        if annotated_keep || keeps(&obj.body) {
            return Ok(None);
        }
        let mut dp = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..DeleteParams::default()
        };
        if ctx.dry_run {
            dp = dp.dry_run();
        }
        match api.delete(obj.name(), &dp).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(None),
            Err(e) => return Err(classify(e, &oref, "pruning")),
        }
        Ok(Some(ObjectResult {
            object: oref,
            action: ObjectAction::Pruned,
            changes: Vec::new(),
            message: String::new(),
        }))
    }
}

fn refused(object: ObjectRef, f: &Failure) -> ObjectResult {
    ObjectResult {
        object,
        action: ObjectAction::Refused,
        changes: Vec::new(),
        message: format!("{}: {}", f.reason.as_str(), f.message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::response::{StatusCause, StatusDetails};

    fn cm() -> ObjectRef {
        ObjectRef {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            namespace: Some("ns1".into()),
            name: "cfg".into(),
        }
    }

    #[test]
    fn conflicts_name_the_field_and_the_other_manager() {
        let status = Status {
            code: 409,
            reason: "Conflict".into(),
            message: "Apply failed with 1 conflict: conflict with \"kubectl-edit\": .data.color".into(),
            details: Some(StatusDetails {
                causes: vec![StatusCause {
                    reason: "FieldManagerConflict".into(),
                    message: "conflict with \"kubectl-edit\"".into(),
                    field: ".data.color".into(),
                }],
                name: "cfg".into(),
                group: String::new(),
                kind: "configmaps".into(),
                uid: String::new(),
                retry_after_seconds: 0,
            }),
            ..Status::failure("", "")
        };
        let f = classify_status(&status, &cm(), "applying");
        assert_eq!(f.reason, FailureReason::Conflict);
        assert!(
            f.message
                .contains("field .data.color is owned by field manager \"kubectl-edit\""),
            "{}",
            f.message
        );
        assert_eq!(f.object, Some(cm()));
    }

    #[test]
    fn invalid_objects_are_refused_and_server_errors_are_internal() {
        let invalid = Status {
            code: 422,
            reason: "Invalid".into(),
            message: "spec.selector: field is immutable".into(),
            ..Status::failure("", "")
        };
        let f = classify_status(&invalid, &cm(), "applying");
        assert_eq!(f.reason, FailureReason::ApplyRefused);
        assert!(f.message.contains("field is immutable"), "{}", f.message);
        let down = Status {
            code: 503,
            ..Status::failure("unavailable", "ServiceUnavailable")
        };
        assert_eq!(
            classify_status(&down, &cm(), "applying").reason,
            FailureReason::Internal
        );
    }
}

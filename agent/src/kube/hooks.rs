//! Running one Helm hook on a real cluster.
//!
//! ```text
//! resolve kind -> place + label as the release's -> [before-hook-creation: delete the
//! leftover, wait until gone] -> create -> wait (Job: Complete/Failed condition, Pod:
//! Succeeded/Failed phase, other kinds: created) -> delete policy
//! ```
//!
//! Waiting polls the object (every [`POLL`]): a hook is one object for a few seconds
//! to minutes, where a watch would buy nothing but reconnect handling.

use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, DynamicObject, PostParams};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::KubeBackend;
use super::apply::{ApplyCtx, api_for, classify};
use super::manifest::{self, Object};
use crate::backend::{HookOutcome, ObjectRef, OpRef};
use crate::hooks::{self, DELETE_POLICY_ANNOTATION, Hook, HookEvent};

/// How often a hook's object is read while waiting for it.
const POLL: Duration = Duration::from_millis(500);

/// Why waiting stopped early.
enum Stop {
    Cancelled,
    Failed(String),
}

/// What settles a hook.
enum Wait {
    Job,
    Pod,
    /// Any other kind: done once created.
    Created,
}

impl KubeBackend {
    pub(super) async fn run_hook_in_cluster(
        &self,
        op: &OpRef,
        namespace: &str,
        hook: &Hook,
        event: HookEvent,
        deadline: Duration,
        cancel: CancellationToken,
    ) -> HookOutcome {
        let give_up = Instant::now() + deadline;
        let fail = |detail: String| HookOutcome::Failed(hooks::failure(event, hook, detail));
        let mut obj = Object {
            source: hook.source.clone(),
            body: hook.body.clone(),
        };
        let resolved = match self.discovery.resolve(obj.api_version(), obj.kind()).await {
            Ok(Some(r)) => r,
            Ok(None) => {
                return fail(format!(
                    "the cluster does not serve kind {} in {}",
                    obj.kind(),
                    obj.api_version()
                ));
            }
            Err(f) => return fail(f.message),
        };
        manifest::place(&mut obj, resolved.namespaced, namespace);
        manifest::default_port_protocols(&mut obj);
        manifest::stamp(&mut obj, &op.release, op.revision, false);
        let oref = obj.object_ref();
        if resolved.namespaced
            && let Some(ns) = obj.namespace()
        {
            let ctx = ApplyCtx {
                release: &op.release,
                revision: op.revision,
                namespace: ns,
                force_conflicts: false,
                adopt: false,
                force_roll: false,
                dry_run: false,
                field_manager: &self.config.field_manager,
                allow_mass_deletion: false,
                max_prune_percent: self.config.max_prune_percent,
            };
            if let Err(f) = self.applier().ensure_namespace(&ctx).await {
                return fail(f.message);
            }
        }
        let api = api_for(&self.client, &resolved, obj.namespace());
        if hook.delete.before_hook_creation {
            match delete_and_wait(&api, &oref, give_up, &cancel).await {
                Ok(()) => {}
                Err(Stop::Cancelled) => return HookOutcome::Cancelled,
                Err(Stop::Failed(m)) => return fail(m),
            }
        }
        let dynamic: DynamicObject = match serde_json::from_value(obj.body.clone()) {
            Ok(d) => d,
            Err(e) => return fail(format!("{oref} is not a Kubernetes object: {e}")),
        };
        let pp = PostParams {
            field_manager: Some(self.config.field_manager.clone()),
            ..PostParams::default()
        };
        match api.create(&pp, &dynamic).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {
                return fail(format!(
                    "{oref} already exists (left by an earlier run); add before-hook-creation to its {DELETE_POLICY_ANNOTATION}"
                ));
            }
            Err(e) => return fail(classify(e, &oref, "creating").message),
        }
        let wait = match (obj.api_version(), obj.kind()) {
            ("batch/v1", "Job") => Wait::Job,
            ("v1", "Pod") => Wait::Pod,
            _ => Wait::Created,
        };
        let ns = obj.namespace().unwrap_or(namespace);
        let result = match wait {
            Wait::Created => Ok(()),
            Wait::Job => {
                let jobs: Api<Job> = Api::namespaced(self.client.clone(), ns);
                poll(&oref, give_up, deadline, &cancel, || job_state(&jobs, &oref)).await
            }
            Wait::Pod => {
                let pods: Api<Pod> = Api::namespaced(self.client.clone(), ns);
                poll(&oref, give_up, deadline, &cancel, || pod_state(&pods, &oref)).await
            }
        };
        let succeeded = match &result {
            Ok(()) => true,
            Err(Stop::Failed(_)) => false,
            // Aborted: the object is left as it is, for whoever looks next.
            Err(Stop::Cancelled) => return HookOutcome::Cancelled,
        };
        let delete = if succeeded {
            hook.delete.hook_succeeded
        } else {
            hook.delete.hook_failed
        };
        if delete && let Err(e) = api.delete(&oref.name, &DeleteParams::background()).await {
            // The hook's outcome stands; a leftover object is removed by the next run's
            // before-hook-creation, or by hand.
            tracing::warn!(hook = %oref, error = %e, "deleting the hook object after it ran failed");
        }
        match result {
            Ok(()) => HookOutcome::Succeeded,
            Err(Stop::Failed(m)) => fail(m),
            Err(Stop::Cancelled) => HookOutcome::Cancelled,
        }
    }
}

/// Deletes a leftover object of the hook's name (its pods with it) and waits until
/// the API server no longer has it, so the create that follows cannot collide.
async fn delete_and_wait(
    api: &Api<DynamicObject>,
    oref: &ObjectRef,
    give_up: Instant,
    cancel: &CancellationToken,
) -> Result<(), Stop> {
    match api.delete(&oref.name, &DeleteParams::background()).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
        Err(e) => return Err(Stop::Failed(classify(e, oref, "deleting the previous").message)),
    }
    loop {
        match api.get_opt(&oref.name).await {
            Ok(None) => return Ok(()),
            Ok(Some(_)) => {}
            Err(e) => return Err(Stop::Failed(classify(e, oref, "reading").message)),
        }
        if Instant::now() >= give_up {
            return Err(Stop::Failed(format!(
                "the previous {oref} was still being deleted at the progress deadline"
            )));
        }
        tokio::select! {
            biased;
            _ = cancel.cancelled() => return Err(Stop::Cancelled),
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}

/// Where a Job or Pod hook stands.
enum State {
    Running,
    Done,
    Failed(String),
}

/// Reads `state` every [`POLL`] until it settles, `give_up` passes or `cancel` fires.
async fn poll<F, Fut>(
    oref: &ObjectRef,
    give_up: Instant,
    deadline: Duration,
    cancel: &CancellationToken,
    mut state: F,
) -> Result<(), Stop>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<State, String>>,
{
    loop {
        match state().await.map_err(Stop::Failed)? {
            State::Done => return Ok(()),
            State::Failed(m) => return Err(Stop::Failed(m)),
            State::Running => {}
        }
        if Instant::now() >= give_up {
            return Err(Stop::Failed(format!(
                "{oref} did not complete within the progress deadline ({}s)",
                deadline.as_secs()
            )));
        }
        tokio::select! {
            biased;
            _ = cancel.cancelled() => return Err(Stop::Cancelled),
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}

async fn job_state(api: &Api<Job>, oref: &ObjectRef) -> Result<State, String> {
    let job = api
        .get_opt(&oref.name)
        .await
        .map_err(|e| classify(e, oref, "reading").message)?
        .ok_or_else(|| format!("{oref} was deleted while the hook ran"))?;
    let conditions = job.status.and_then(|s| s.conditions).unwrap_or_default();
    let is = |ty: &str| conditions.iter().find(|c| c.type_ == ty && c.status == "True");
    if is("Complete").is_some() {
        return Ok(State::Done);
    }
    Ok(match is("Failed") {
        Some(c) => State::Failed(format!(
            "{oref} failed: {}: {}",
            c.reason.as_deref().unwrap_or("Failed"),
            c.message.as_deref().unwrap_or("no message")
        )),
        None => State::Running,
    })
}

async fn pod_state(api: &Api<Pod>, oref: &ObjectRef) -> Result<State, String> {
    let pod = api
        .get_opt(&oref.name)
        .await
        .map_err(|e| classify(e, oref, "reading").message)?
        .ok_or_else(|| format!("{oref} was deleted while the hook ran"))?;
    let status = pod.status.unwrap_or_default();
    Ok(match status.phase.as_deref() {
        Some("Succeeded") => State::Done,
        Some("Failed") => {
            let terminated = status
                .container_statuses
                .unwrap_or_default()
                .into_iter()
                .find_map(|c| c.state.and_then(|s| s.terminated).map(|t| (c.name, t)));
            let detail = match terminated {
                Some((name, t)) => format!(
                    "container {name} exited with code {} ({})",
                    t.exit_code,
                    t.reason.unwrap_or_default()
                ),
                None => status.message.unwrap_or_else(|| "phase Failed".into()),
            };
            State::Failed(format!("{oref} failed: {detail}"))
        }
        _ => State::Running,
    })
}

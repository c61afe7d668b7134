//! `convoy.v1.ReleaseService`.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::time::Duration;

use convoy_proto::v1 as pb;
use futures::Stream;
use tonic::{Request, Response, Status};

use super::{auth_status, convert, principal, status};
use crate::auth::{Authenticator, Principal, Role};
use crate::core::{Control, Coordinator, WatchKind};
use crate::model::OperationPhase;
use crate::store::SubmitInputs;

pub struct ReleaseApi {
    pub core: Coordinator,
    pub auth: Authenticator,
}

/// How long a diff waits for the agents' dry runs unless the request says.
const DEFAULT_DIFF_TIMEOUT: Duration = Duration::from_secs(60);

/// A submit request's release file, values files and chart, as the core takes them.
fn submit_inputs(r: pb::SubmitReleaseRequest) -> Result<SubmitInputs, Status> {
    if r.release_yaml.trim().is_empty() {
        return Err(Status::invalid_argument(
            "release_yaml is empty: send the release file's contents",
        ));
    }
    Ok(SubmitInputs {
        release_yaml: r.release_yaml,
        source_name: if r.source_name.is_empty() {
            "<release>".into()
        } else {
            r.source_name
        },
        values_files: r.values_files.into_iter().map(|v| (v.name, v.content)).collect(),
        chart_archive: r.chart_archive,
        chart_digest: String::new(),
        chart_origin: String::new(),
        values_from: Vec::new(),
        allow_mass_deletion: r.allow_mass_deletion,
    })
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::RolloutEvent, Status>> + Send>>;

impl ReleaseApi {
    /// Refuses unless `who` may view `release` (its scope covers it). A release that
    /// does not exist is NOT_FOUND as for anyone.
    async fn check_view(&self, who: &Principal, release: &str) -> Result<(), Status> {
        if who.scope.is_none() {
            return Ok(());
        }
        let v = self.core.release(release.to_string()).await.map_err(status)?;
        who.may_view(&v, self.core.registry()).map_err(auth_status)
    }

    async fn control(
        &self,
        req: Request<pb::ControlRequest>,
        control: Control,
    ) -> Result<Response<pb::ControlResponse>, Status> {
        let who = principal(&self.auth, &req)?;
        let r = req.into_inner();
        let op = self
            .core
            .control(who, r.release, control, r.reason)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::ControlResponse {
            operation: Some(convert::operation(&op)),
        }))
    }
}

/// A request's 1-based gated wave, 0-based (`None`: the gate the rollout waits at).
fn gate_wave(wave: u32) -> Option<usize> {
    (wave > 0).then(|| wave as usize - 1)
}

#[tonic::async_trait]
impl pb::release_service_server::ReleaseService for ReleaseApi {
    async fn submit_release(
        &self,
        req: Request<pb::SubmitReleaseRequest>,
    ) -> Result<Response<pb::SubmitReleaseResponse>, Status> {
        let who = principal(&self.auth, &req)?;
        who.require(Role::Deployer, "submit").map_err(auth_status)?;
        let r = req.into_inner();
        let (reason, dry_run) = (r.reason.clone(), r.dry_run);
        let inputs = submit_inputs(r)?;
        let (accepted, rendered) = self
            .core
            .submit(who, inputs, reason, dry_run)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::SubmitReleaseResponse {
            release: accepted.release,
            revision: accepted.revision,
            operation_id: accepted.operation_id,
            phase: convert::phase(accepted.phase) as i32,
            queue_position: accepted.queue_position,
            rendered: rendered
                .into_iter()
                .map(|r| pb::RenderSummary {
                    kube_version: r.facts.kube_version().to_string(),
                    default_capabilities: r.facts.capabilities.is_none(),
                    release_revision: r.facts.revision,
                    is_upgrade: r.facts.is_upgrade,
                    context: r.context,
                    objects: r.objects as u32,
                    manifest_digest: r.digest,
                })
                .collect(),
        }))
    }

    async fn diff_release(
        &self,
        req: Request<pb::DiffReleaseRequest>,
    ) -> Result<Response<pb::DiffReleaseResponse>, Status> {
        let who = principal(&self.auth, &req)?;
        who.require(Role::Deployer, "diff").map_err(auth_status)?;
        let r = req.into_inner();
        let submit = r.submit.ok_or_else(|| {
            Status::invalid_argument("submit is missing: send the release file as for a submit")
        })?;
        let timeout = match r.timeout_seconds {
            0 => DEFAULT_DIFF_TIMEOUT,
            s => Duration::from_secs(u64::from(s)),
        };
        let (release, contexts) = self
            .core
            .diff(who, submit_inputs(submit)?, timeout)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::DiffReleaseResponse {
            release,
            contexts: contexts.iter().map(convert::context_diff).collect(),
        }))
    }

    async fn get_release(
        &self,
        req: Request<pb::GetReleaseRequest>,
    ) -> Result<Response<pb::Release>, Status> {
        let who = principal(&self.auth, &req)?;
        who.require(Role::Viewer, "get a release").map_err(auth_status)?;
        let v = self
            .core
            .release(req.into_inner().release)
            .await
            .map_err(status)?;
        who.may_view(&v, self.core.registry()).map_err(auth_status)?;
        Ok(Response::new(convert::release(&v)))
    }

    async fn list_releases(
        &self,
        req: Request<pb::ListReleasesRequest>,
    ) -> Result<Response<pb::ListReleasesResponse>, Status> {
        let who = principal(&self.auth, &req)?;
        who.require(Role::Viewer, "list releases").map_err(auth_status)?;
        let f = req.into_inner();
        let releases = self
            .core
            .releases()
            .await
            .map_err(status)?
            .iter()
            .filter(|v| f.environment.is_empty() || v.record.environment == f.environment)
            .filter(|v| f.context.is_empty() || v.record.contexts.contains(&f.context))
            .filter(|v| who.may_view(v, self.core.registry()).is_ok())
            .map(convert::release)
            .collect();
        Ok(Response::new(pb::ListReleasesResponse { releases }))
    }

    async fn get_history(
        &self,
        req: Request<pb::GetHistoryRequest>,
    ) -> Result<Response<pb::GetHistoryResponse>, Status> {
        let who = principal(&self.auth, &req)?;
        who.require(Role::Viewer, "read history").map_err(auth_status)?;
        let r = req.into_inner();
        self.check_view(&who, &r.release).await?;
        let revs = self.core.history(r.release).await.map_err(status)?;
        let shown = if r.limit > 0 {
            revs.len().min(r.limit as usize)
        } else {
            revs.len()
        };
        // Newest first: each revision's values are compared with the next one down.
        let mut revisions: Vec<pb::Revision> = (0..shown)
            .map(|i| convert::revision(&revs[i], revs.get(i + 1)))
            .collect();
        // Where each chart archive ran healthy, in the releases this caller may view.
        let digests: Vec<String> = revisions
            .iter()
            .map(|r| r.chart_digest.clone())
            .filter(|d| !d.is_empty())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let runs = self.core.digest_runs(digests).await.map_err(status)?;
        let names: std::collections::BTreeSet<String> =
            runs.values().flatten().map(|d| d.release.clone()).collect();
        let mut visible: BTreeMap<String, bool> = BTreeMap::new();
        for name in names {
            let ok = self.check_view(&who, &name).await.is_ok();
            visible.insert(name, ok);
        }
        for r in &mut revisions {
            r.chart_ran_healthy = runs
                .get(&r.chart_digest)
                .into_iter()
                .flatten()
                .filter(|d| visible.get(&d.release).copied().unwrap_or(false))
                .map(|d| pb::DigestRun {
                    environment: d.environment.clone(),
                    release: d.release.clone(),
                    revision: d.revision,
                })
                .collect();
        }
        Ok(Response::new(pb::GetHistoryResponse { revisions }))
    }

    type WatchReleaseStream = WatchStream;

    async fn watch_release(
        &self,
        req: Request<pb::WatchReleaseRequest>,
    ) -> Result<Response<WatchStream>, Status> {
        let who = principal(&self.auth, &req)?;
        who.require(Role::Viewer, "watch").map_err(auth_status)?;
        let r = req.into_inner();
        self.check_view(&who, &r.release).await?;
        let (snapshot, queue) = self.core.watch(r.release).await.map_err(status)?;
        // Which operation to follow: the named one, else the running or next one,
        // else the last one that ran.
        let target = if r.operation_id.is_empty() {
            let ops: Vec<(String, OperationPhase)> = snapshot
                .iter()
                .filter_map(|e| match &e.kind {
                    WatchKind::Operation(op) => Some((op.id.clone(), op.phase)),
                    _ => None,
                })
                .collect();
            ops.iter()
                .find(|(_, p)| !p.is_final())
                .or(ops.first())
                .map(|(id, _)| id.clone())
                .unwrap_or_default()
        } else {
            r.operation_id.clone()
        };
        let follow = r.follow;
        let relevant =
            move |e: &crate::core::WatchEvent| follow || target.is_empty() || e.operation_id == target;
        let (tx, out) = tokio::sync::mpsc::channel(1024);
        tokio::spawn(async move {
            for e in snapshot.iter().filter(|e| relevant(e)) {
                if tx.send(Ok(convert::event(e))).await.is_err() {
                    return;
                }
            }
            // A watch of a finished operation ends after its snapshot.
            if !follow && snapshot.iter().any(|e| relevant(e) && is_final_op(e)) {
                return;
            }
            // A reader slower than the rollout is never cut off: while it reads, newer
            // states of the same contexts replace older ones in its queue (see
            // `core::watch`), so it catches up with the latest state of each.
            loop {
                for e in queue.next_batch().await {
                    if !relevant(&e) {
                        continue;
                    }
                    let last = !follow && is_final_op(&e);
                    if tx.send(Ok(convert::event(&e))).await.is_err() || last {
                        return;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(out),
        )))
    }

    async fn rollback_release(
        &self,
        req: Request<pb::RollbackReleaseRequest>,
    ) -> Result<Response<pb::RollbackReleaseResponse>, Status> {
        let who = principal(&self.auth, &req)?;
        let r = req.into_inner();
        let a = self
            .core
            .rollback(who, r.release, r.to_revision, r.reason, r.preempt, r.contexts)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::RollbackReleaseResponse {
            release: a.release,
            revision: a.revision,
            rollback_to: a.rollback_to.unwrap_or_default(),
            operation_id: a.operation_id,
            phase: convert::phase(a.phase) as i32,
            queue_position: a.queue_position,
        }))
    }

    async fn pause_release(
        &self,
        req: Request<pb::ControlRequest>,
    ) -> Result<Response<pb::ControlResponse>, Status> {
        self.control(req, Control::Pause).await
    }

    async fn resume_release(
        &self,
        req: Request<pb::ControlRequest>,
    ) -> Result<Response<pb::ControlResponse>, Status> {
        self.control(req, Control::Resume).await
    }

    async fn abort_release(
        &self,
        req: Request<pb::ControlRequest>,
    ) -> Result<Response<pb::ControlResponse>, Status> {
        self.control(req, Control::Abort).await
    }

    async fn approve_release(
        &self,
        req: Request<pb::ControlRequest>,
    ) -> Result<Response<pb::ControlResponse>, Status> {
        let wave = gate_wave(req.get_ref().wave);
        self.control(req, Control::Approve(wave)).await
    }

    async fn refuse_release(
        &self,
        req: Request<pb::ControlRequest>,
    ) -> Result<Response<pb::ControlResponse>, Status> {
        let wave = gate_wave(req.get_ref().wave);
        self.control(req, Control::Refuse(wave)).await
    }

    async fn list_queue(
        &self,
        req: Request<pb::ListQueueRequest>,
    ) -> Result<Response<pb::ListQueueResponse>, Status> {
        let who = principal(&self.auth, &req)?;
        who.require(Role::Viewer, "list the queue").map_err(auth_status)?;
        let release = req.into_inner().release;
        self.check_view(&who, &release).await?;
        let ops = self.core.queue(release).await.map_err(status)?;
        Ok(Response::new(pb::ListQueueResponse {
            operations: ops.iter().map(convert::operation).collect(),
        }))
    }

    async fn cancel_queued(
        &self,
        req: Request<pb::CancelQueuedRequest>,
    ) -> Result<Response<pb::CancelQueuedResponse>, Status> {
        let who = principal(&self.auth, &req)?;
        let r = req.into_inner();
        let op = self
            .core
            .cancel(who, r.release, r.operation_id, r.reason)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::CancelQueuedResponse {
            operation: Some(convert::operation(&op)),
        }))
    }

    async fn list_audit(
        &self,
        req: Request<pb::ListAuditRequest>,
    ) -> Result<Response<pb::ListAuditResponse>, Status> {
        let who = principal(&self.auth, &req)?;
        who.require(Role::Viewer, "read the audit log")
            .map_err(auth_status)?;
        let r = req.into_inner();
        let since = r.since.map_or(0, |t| {
            u64::try_from(t.seconds.saturating_mul(1000) + i64::from(t.nanos / 1_000_000)).unwrap_or(0)
        });
        // A scoped caller sees its own entries and those of releases in its scope.
        let views = if who.scope.is_some() {
            self.core.releases().await.map_err(status)?
        } else {
            Vec::new()
        };
        let mut entries: Vec<pb::AuditEntry> = self
            .core
            .audit()
            .await
            .map_err(status)?
            .into_iter()
            .filter(|e| r.release.is_empty() || e.release == r.release)
            .filter(|e| e.at >= since)
            .filter(|e| who.may_read_audit(e, &views, self.core.registry()))
            .map(|e| pb::AuditEntry {
                seq: e.seq,
                at: convert::ts(e.at),
                who: e.who,
                action: e.action,
                release: e.release,
                revision: e.revision.unwrap_or_default(),
                operation_id: e.operation_id.unwrap_or_default(),
                reason: e.reason,
                outcome: e.outcome,
            })
            .collect();
        if r.limit > 0 && entries.len() > r.limit as usize {
            entries.drain(..entries.len() - r.limit as usize);
        }
        Ok(Response::new(pb::ListAuditResponse { entries }))
    }
}

/// An operation event whose operation has finished.
fn is_final_op(e: &crate::core::WatchEvent) -> bool {
    matches!(&e.kind, WatchKind::Operation(op) if op.phase.is_final())
}

//! One operation per release per cluster: a `coordination.k8s.io/v1` Lease
//! (`convoy-lock.<release>`) in the history namespace. The holder renews it every third
//! of its TTL; a lease whose holder stopped renewing for longer than the TTL (the agent
//! died) is taken over, with optimistic concurrency on the resourceVersion so that two
//! contenders never both win.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, DeleteParams, PostParams, Preconditions};
use tokio_util::sync::CancellationToken;

use super::{create_namespace, internal};
use crate::backend::{Failure, FailureReason, LockToken, OpRef};

pub fn lease_name(release: &str) -> String {
    format!("convoy-lock.{release}")
}

pub struct Locks {
    leases: Api<Lease>,
    namespaces: Api<Namespace>,
    namespace: String,
    holder_id: String,
    ttl: Duration,
    /// Renewal tasks of the leases held, by release.
    renewers: Arc<Mutex<HashMap<String, CancellationToken>>>,
}

fn ttl_secs(ttl: Duration) -> i32 {
    i32::try_from(ttl.as_secs().max(1)).unwrap_or(i32::MAX)
}

/// How long ago the lease was last renewed, and whether that is beyond its duration.
fn expired(lease: &Lease, now: Timestamp) -> bool {
    let Some(spec) = &lease.spec else { return true };
    if spec.holder_identity.as_deref().is_none_or(str::is_empty) {
        return true;
    }
    let Some(renewed) = spec.renew_time.as_ref().or(spec.acquire_time.as_ref()) else {
        return true;
    };
    let age_ms = now.duration_since(renewed.0).as_millis();
    let ttl_ms = i128::from(spec.lease_duration_seconds.unwrap_or(0)) * 1000;
    age_ms > ttl_ms
}

impl Locks {
    pub fn new(client: Client, namespace: &str, holder_id: &str, ttl: Duration) -> Self {
        Locks {
            leases: Api::namespaced(client.clone(), namespace),
            namespaces: Api::all(client),
            namespace: namespace.to_string(),
            holder_id: holder_id.to_string(),
            ttl,
            renewers: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    fn spec(&self, holder: &str, transitions: i32, acquired: Option<MicroTime>) -> LeaseSpec {
        let now = MicroTime(Timestamp::now());
        LeaseSpec {
            holder_identity: Some(holder.to_string()),
            lease_duration_seconds: Some(ttl_secs(self.ttl)),
            acquire_time: Some(acquired.unwrap_or_else(|| now.clone())),
            renew_time: Some(now),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    /// Takes `op.release`'s lock for this agent and operation (re-entrant for the same
    /// holder: a retried command), or fails with `LockHeld` naming the live holder.
    pub async fn lock(&self, op: &OpRef) -> Result<LockToken, Failure> {
        let name = lease_name(&op.release);
        let holder = format!("{}/{}", self.holder_id, op.operation_id);
        // A lost race (409) is retried: the winner is then seen as the holder.
        for _ in 0..3 {
            let current = self
                .leases
                .get_opt(&name)
                .await
                .map_err(|e| internal(format!("reading lease {name}"), e))?;
            let result = match current {
                None => {
                    let lease = Lease {
                        metadata: ObjectMeta {
                            name: Some(name.clone()),
                            ..ObjectMeta::default()
                        },
                        spec: Some(self.spec(&holder, 0, None)),
                    };
                    self.leases.create(&PostParams::default(), &lease).await
                }
                Some(mut lease) => {
                    let spec = lease.spec.clone().unwrap_or_default();
                    let ours = spec.holder_identity.as_deref() == Some(holder.as_str());
                    if !ours && !expired(&lease, Timestamp::now()) {
                        let who = spec.holder_identity.unwrap_or_default();
                        return Err(Failure::new(
                            FailureReason::LockHeld,
                            format!(
                                "release {} is locked in this cluster by {who} (lease {name}, renewed within its {}s TTL)",
                                op.release,
                                spec.lease_duration_seconds.unwrap_or(0)
                            ),
                        ));
                    }
                    let transitions = spec.lease_transitions.unwrap_or(0) + i32::from(!ours);
                    let acquired = if ours { spec.acquire_time } else { None };
                    lease.spec = Some(self.spec(&holder, transitions, acquired));
                    self.leases.replace(&name, &PostParams::default(), &lease).await
                }
            };
            match result {
                Ok(_) => {
                    self.start_renewing(&op.release, &name, &holder);
                    return Ok(LockToken {
                        release: op.release.clone(),
                        holder,
                    });
                }
                Err(kube::Error::Api(s)) if s.code == 409 => continue,
                // The history namespace does not exist yet: create it and retry.
                Err(kube::Error::Api(s)) if s.code == 404 => {
                    create_namespace(&self.namespaces, &self.namespace, "release locks").await?
                }
                Err(e) => return Err(internal(format!("taking lease {name}"), e)),
            }
        }
        Err(Failure::new(
            FailureReason::LockHeld,
            format!(
                "release {} is being locked concurrently by another holder (lease {name})",
                op.release
            ),
        ))
    }

    fn start_renewing(&self, release: &str, name: &str, holder: &str) {
        let token = CancellationToken::new();
        if let Ok(mut r) = self.renewers.lock()
            && let Some(old) = r.insert(release.to_string(), token.clone())
        {
            old.cancel();
        }
        let leases = self.leases.clone();
        let (name, holder) = (name.to_string(), holder.to_string());
        let every = (self.ttl / 3).max(Duration::from_millis(200));
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = token.cancelled() => return,
                    _ = tokio::time::sleep(every) => {}
                }
                let mut lease = match leases.get_opt(&name).await {
                    Ok(Some(l)) => l,
                    Ok(None) => {
                        tracing::warn!(lease = %name, "release lock deleted by someone else; renewal stops");
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(lease = %name, error = %e, "reading the release lock failed; retrying");
                        continue;
                    }
                };
                let Some(spec) = lease.spec.as_mut() else { return };
                if spec.holder_identity.as_deref() != Some(holder.as_str()) {
                    tracing::warn!(lease = %name, "lock lost to another holder; renewal stops");
                    return;
                }
                spec.renew_time = Some(MicroTime(Timestamp::now()));
                if let Err(e) = leases.replace(&name, &PostParams::default(), &lease).await {
                    tracing::warn!(lease = %name, error = %e, "renewing the release lock failed; retrying");
                }
            }
        });
    }

    /// Stops renewing and deletes the lease if this holder still has it.
    pub async fn unlock(&self, token: LockToken) -> Result<(), Failure> {
        if let Ok(mut r) = self.renewers.lock()
            && let Some(t) = r.remove(&token.release)
        {
            t.cancel();
        }
        let name = lease_name(&token.release);
        let lease = self
            .leases
            .get_opt(&name)
            .await
            .map_err(|e| internal(format!("reading lease {name}"), e))?;
        let Some(lease) = lease else { return Ok(()) };
        let holder = lease.spec.as_ref().and_then(|s| s.holder_identity.as_deref());
        if holder != Some(token.holder.as_str()) {
            // Taken over after we stopped renewing: not ours to release.
            return Ok(());
        }
        let dp = DeleteParams {
            preconditions: Some(Preconditions {
                resource_version: lease.metadata.resource_version.clone(),
                uid: None,
            }),
            ..DeleteParams::default()
        };
        match self.leases.delete(&name, &dp).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if matches!(s.code, 404 | 409) => Ok(()),
            Err(e) => Err(internal(format!("releasing lease {name}"), e)),
        }
    }
}

impl Drop for Locks {
    /// A dropped backend stops renewing: its leases expire after their TTL and the
    /// next agent takes them over (the same as a crash, minus the wait for TCP).
    fn drop(&mut self) {
        if let Ok(r) = self.renewers.lock() {
            for t in r.values() {
                t.cancel();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: Option<&str>, renewed_ago_s: i64, ttl_s: i32) -> (Lease, Timestamp) {
        let now = Timestamp::now();
        let renewed = now - k8s_openapi::jiff::SignedDuration::from_secs(renewed_ago_s);
        let lease = Lease {
            metadata: ObjectMeta::default(),
            spec: Some(LeaseSpec {
                holder_identity: holder.map(str::to_string),
                lease_duration_seconds: Some(ttl_s),
                renew_time: Some(MicroTime(renewed)),
                ..LeaseSpec::default()
            }),
        };
        (lease, now)
    }

    #[test]
    fn a_lease_expires_only_when_its_holder_stopped_renewing_beyond_the_ttl() {
        let (l, now) = lease(Some("agent-a/op1"), 5, 30);
        assert!(!expired(&l, now));
        let (l, now) = lease(Some("agent-a/op1"), 31, 30);
        assert!(expired(&l, now));
        let (l, now) = lease(None, 0, 30);
        assert!(expired(&l, now), "a lease without holder is free");
        assert!(expired(&Lease::default(), Timestamp::now()));
    }
}

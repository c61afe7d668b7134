//! One active coordinator: leader election on etcd.
//!
//! A candidate grants itself a lease (TTL, kept alive) and creates `<prefix>/leader`
//! under that lease only if the key is absent (a transaction comparing its
//! create_revision with 0). The key's create revision then identifies this term: the
//! leader's store conditions every commit on it (fencing), so once the lease expires
//! (the key is deleted with it) or someone else holds the key, the old leader's writes
//! fail. Standbys poll the key and campaign when it is gone.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::gateway::{self, Gateway};
use super::{EtcdSettings, StoreError};

/// A coordinator that wants to lead.
#[derive(Debug)]
pub struct Candidate {
    gateway: Gateway,
    key: Vec<u8>,
    name: String,
    ttl: Duration,
    shown: String,
}

/// What one campaign found.
#[derive(Debug)]
pub enum Campaign {
    /// This candidate leads.
    Won(Leadership),
    /// Another does; its name.
    Standby(String),
}

impl Candidate {
    /// `name` is what standbys and clients are told (an address operators recognise);
    /// `ttl` is how long a dead leader keeps the role.
    pub fn new(settings: &EtcdSettings, name: String, ttl: Duration) -> Result<Self, StoreError> {
        let shown = settings.shown();
        // A renewal stuck longer than half the TTL is as good as failed: answer in
        // time to notice the lease is lost before etcd expires it.
        let timeout = settings.timeout.min(ttl / 2).max(Duration::from_millis(500));
        let gateway = Gateway::new(&settings.endpoints, timeout).map_err(|e| StoreError::Backend {
            path: shown.clone(),
            message: e.0,
        })?;
        Ok(Candidate {
            gateway,
            key: format!("{}/leader", settings.prefix).into_bytes(),
            name,
            ttl,
            shown,
        })
    }

    fn err(&self, e: gateway::GatewayError) -> StoreError {
        StoreError::Backend {
            path: self.shown.clone(),
            message: e.0,
        }
    }

    /// The current leader's name, if any.
    pub async fn leader(&self) -> Result<Option<String>, StoreError> {
        let page = self
            .gateway
            .range(&self.key, &[], 0)
            .await
            .map_err(|e| self.err(e))?;
        Ok(page
            .kvs
            .into_iter()
            .next()
            .map(|kv| String::from_utf8_lossy(&kv.value).into_owned()))
    }

    /// One attempt to lead.
    pub async fn campaign(&self) -> Result<Campaign, StoreError> {
        if let Some(leader) = self.leader().await? {
            return Ok(Campaign::Standby(leader));
        }
        let ttl = i64::try_from(self.ttl.as_secs().max(1)).unwrap_or(i64::MAX);
        let lease = self.gateway.grant(ttl).await.map_err(|e| self.err(e))?;
        let outcome = self
            .gateway
            .txn(
                vec![gateway::compare_created(&self.key, 0)],
                vec![gateway::put_op(&self.key, self.name.as_bytes(), lease)],
            )
            .await
            .map_err(|e| self.err(e))?;
        if !outcome.succeeded {
            // Another candidate won the race; our lease would expire anyway.
            let _ = self.gateway.revoke(lease).await;
            let leader = self.leader().await?.unwrap_or_default();
            return Ok(Campaign::Standby(leader));
        }
        let (tx, _) = watch::channel(None);
        let lost = Arc::new(tx);
        let keepalive = tokio::spawn(keep_alive(self.gateway.clone(), lease, self.ttl, lost.clone()));
        Ok(Campaign::Won(Leadership {
            gateway: self.gateway.clone(),
            key: self.key.clone(),
            create_revision: outcome.revision,
            lease,
            lost,
            keepalive,
        }))
    }

    /// Campaigns until this candidate leads, publishing who leads meanwhile on
    /// `leader` (a standby's `/readyz` and its refusals name it). etcd being
    /// unreachable is logged and retried: a standby has nothing better to do.
    pub async fn lead(&self, leader: &watch::Sender<String>, poll: Duration) -> Leadership {
        let mut announced = String::new();
        loop {
            match self.campaign().await {
                Ok(Campaign::Won(l)) => return l,
                Ok(Campaign::Standby(name)) => {
                    if name != announced {
                        tracing::info!(leader = %name, "standby: another coordinator leads");
                        announced.clone_from(&name);
                    }
                    leader.send_replace(name);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "standby: cannot reach etcd to campaign; retrying");
                    leader.send_replace(format!("unknown ({e})"));
                }
            }
            tokio::time::sleep(poll).await;
        }
    }
}

/// Renews the lease every third of its TTL; reports the leadership lost when the
/// lease is gone, or when no renewal succeeded for a whole TTL (etcd will have
/// expired it by then, and another coordinator may lead).
async fn keep_alive(gateway: Gateway, lease: i64, ttl: Duration, lost: Arc<watch::Sender<Option<String>>>) {
    let every = (ttl / 3).max(Duration::from_millis(300));
    let mut last_ok = Instant::now();
    loop {
        tokio::time::sleep(every).await;
        match gateway.keep_alive(lease).await {
            Ok(remaining) if remaining > 0 => last_ok = Instant::now(),
            Ok(_) => {
                lost.send_replace(Some("leadership lost: the leader lease expired in etcd".into()));
                return;
            }
            Err(e) if last_ok.elapsed() >= ttl => {
                lost.send_replace(Some(format!(
                    "leadership lost: the leader lease could not be renewed for {}s ({e})",
                    ttl.as_secs()
                )));
                return;
            }
            Err(e) => tracing::warn!(error = %e, "renewing the leader lease failed; retrying"),
        }
    }
}

/// This coordinator's term as leader. Dropping it stops renewing the lease.
#[derive(Debug)]
pub struct Leadership {
    gateway: Gateway,
    key: Vec<u8>,
    create_revision: i64,
    lease: i64,
    lost: Arc<watch::Sender<Option<String>>>,
    keepalive: tokio::task::JoinHandle<()>,
}

impl Leadership {
    pub(crate) fn key(&self) -> &[u8] {
        &self.key
    }

    pub(crate) fn create_revision(&self) -> i64 {
        self.create_revision
    }

    pub(crate) fn lost_sender(&self) -> Arc<watch::Sender<Option<String>>> {
        self.lost.clone()
    }

    /// Holds `Some(why)` once the leadership is lost.
    pub fn lost(&self) -> watch::Receiver<Option<String>> {
        self.lost.subscribe()
    }

    /// Gives the role up now (a clean shutdown), so a standby takes over without
    /// waiting for the TTL.
    pub async fn resign(self) {
        self.keepalive.abort();
        if let Err(e) = self.gateway.revoke(self.lease).await {
            tracing::warn!(error = %e, "could not revoke the leader lease; a standby takes over when it expires");
        }
    }
}

impl Drop for Leadership {
    fn drop(&mut self) {
        self.keepalive.abort();
    }
}

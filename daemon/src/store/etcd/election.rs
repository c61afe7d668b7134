//! One active coordinator: leader election on etcd.
//!
//! A candidate grants itself a lease (TTL, kept alive) and creates `<prefix>/leader`
//! under that lease only if the key is absent (a transaction comparing its
//! create_revision with 0). The key's create revision then identifies this term: the
//! leader's store conditions every commit on it (fencing), so once the lease expires
//! (the key is deleted with it) or someone else holds the key, the old leader's writes
//! fail. Standbys watch the key and campaign the moment it is deleted (a resignation,
//! or the lease expiring), with a periodic check in case a watch goes quiet.

use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{EventType, LeaseKeepAliveStream, LeaseKeeper};
use tokio::sync::watch;

use super::client::{self, Connection, EtcdError};
use super::{EtcdSettings, StoreError};

/// A coordinator that wants to lead.
#[derive(Debug)]
pub struct Candidate {
    conn: Arc<Connection>,
    key: Vec<u8>,
    name: String,
    ttl: Duration,
}

/// What one campaign found.
#[derive(Debug)]
pub enum Campaign {
    /// This candidate leads.
    Won(Leadership),
    /// Another does; its name.
    Standby(String),
}

/// Who leads, and the store revision that was read at.
struct Seen {
    leader: Option<String>,
    revision: i64,
}

impl Candidate {
    /// `name` is what standbys and clients are told (an address operators recognise);
    /// `ttl` is how long a dead leader keeps the role.
    pub fn new(settings: &EtcdSettings, name: String, ttl: Duration) -> Result<Self, StoreError> {
        // A renewal stuck longer than half the TTL is as good as failed: answer in
        // time to notice the lease is lost before etcd expires it.
        let timeout = settings.timeout.min(ttl / 2).max(Duration::from_millis(500));
        Ok(Candidate {
            conn: Arc::new(super::connection(settings, timeout)?),
            key: format!("{}/leader", settings.prefix).into_bytes(),
            name,
            ttl,
        })
    }

    fn err(&self, e: EtcdError) -> StoreError {
        StoreError::Backend {
            path: self.conn.shown(),
            message: e.0,
        }
    }

    async fn seen(&self) -> Result<Seen, StoreError> {
        let page = self
            .conn
            .range(&self.key, &[], 0)
            .await
            .map_err(|e| self.err(e))?;
        Ok(Seen {
            leader: page
                .kvs
                .into_iter()
                .next()
                .map(|kv| String::from_utf8_lossy(&kv.value).into_owned()),
            revision: page.revision,
        })
    }

    /// The current leader's name, if any.
    pub async fn leader(&self) -> Result<Option<String>, StoreError> {
        Ok(self.seen().await?.leader)
    }

    /// One attempt to lead.
    pub async fn campaign(&self) -> Result<Campaign, StoreError> {
        Ok(match self.attempt().await? {
            Ok(l) => Campaign::Won(l),
            Err(seen) => Campaign::Standby(seen.leader.unwrap_or_default()),
        })
    }

    /// One attempt: the leadership, or who leads and at which revision.
    async fn attempt(&self) -> Result<Result<Leadership, Seen>, StoreError> {
        let seen = self.seen().await?;
        if seen.leader.is_some() {
            return Ok(Err(seen));
        }
        let ttl = i64::try_from(self.ttl.as_secs().max(1)).unwrap_or(i64::MAX);
        let lease = self.conn.grant(ttl).await.map_err(|e| self.err(e))?;
        let outcome = self
            .conn
            .txn(
                vec![client::compare_created(&self.key, 0)],
                vec![client::put_op(&self.key, self.name.as_bytes(), lease)],
                vec![client::get_op(&self.key)],
            )
            .await
            .map_err(|e| self.err(e))?;
        if !outcome.succeeded {
            // Another candidate won the race; our lease would expire anyway.
            let _ = self.conn.revoke(lease).await;
            return Ok(Err(Seen {
                leader: outcome
                    .read
                    .into_iter()
                    .next()
                    .map(|kv| String::from_utf8_lossy(&kv.value).into_owned()),
                revision: outcome.revision,
            }));
        }
        let (tx, _) = watch::channel(None);
        let lost = Arc::new(tx);
        let keepalive = tokio::spawn(keep_alive(self.conn.clone(), lease, self.ttl, lost.clone()));
        Ok(Ok(Leadership {
            conn: self.conn.clone(),
            key: self.key.clone(),
            create_revision: outcome.revision,
            lease,
            lost,
            keepalive,
        }))
    }

    /// Waits until the leader key seen at `revision` is deleted (the watch), or
    /// `fallback` passes, or the watch fails (then after `retry`): the caller
    /// campaigns again in every case.
    async fn wait_for_vacancy(&self, revision: i64, fallback: Duration, retry: Duration) {
        let watched = async {
            let mut stream = match self.conn.watch(&self.key, revision + 1).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "standby: cannot watch the leader key; checking again shortly");
                    tokio::time::sleep(retry).await;
                    return;
                }
            };
            loop {
                match stream.message().await {
                    Ok(Some(resp)) => {
                        if resp.canceled() {
                            tracing::debug!(reason = resp.cancel_reason(), "standby: leader watch cancelled");
                            return;
                        }
                        if resp.events().iter().any(|e| e.event_type() == EventType::Delete) {
                            return;
                        }
                    }
                    Ok(None) => return,
                    Err(e) => {
                        tracing::warn!(error = %client::describe(&e), "standby: the leader watch failed; checking again shortly");
                        tokio::time::sleep(retry).await;
                        return;
                    }
                }
            }
        };
        let _ = tokio::time::timeout(fallback, watched).await;
    }

    /// Campaigns until this candidate leads, publishing who leads meanwhile on
    /// `leader` (a standby's `/readyz` and its refusals name it). Between attempts a
    /// standby watches the leader key, so it campaigns as soon as the key is gone;
    /// `retry` paces attempts while etcd is unreachable (logged: a standby has nothing
    /// better to do).
    pub async fn lead(&self, leader: &watch::Sender<String>, retry: Duration) -> Leadership {
        let mut announced = String::new();
        loop {
            match self.attempt().await {
                Ok(Ok(l)) => return l,
                Ok(Err(seen)) => {
                    let name = seen.leader.unwrap_or_default();
                    if name != announced {
                        tracing::info!(leader = %name, "standby: another coordinator leads");
                        announced.clone_from(&name);
                    }
                    leader.send_replace(name);
                    self.wait_for_vacancy(seen.revision, self.ttl.max(retry), retry)
                        .await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "standby: cannot reach etcd to campaign; retrying");
                    leader.send_replace(format!("unknown ({e})"));
                    tokio::time::sleep(retry).await;
                }
            }
        }
    }
}

/// One renewal on the lease's keep-alive stream (opened again when it broke): the
/// remaining TTL, 0 when the lease is gone.
async fn renew(
    conn: &Connection,
    lease: i64,
    stream: &mut Option<(LeaseKeeper, LeaseKeepAliveStream)>,
) -> Result<i64, EtcdError> {
    if stream.is_none() {
        *stream = Some(conn.keep_alive(lease).await?);
    }
    let Some((keeper, answers)) = stream.as_mut() else {
        return Err(EtcdError("no keep-alive stream".into()));
    };
    keeper
        .keep_alive()
        .await
        .map_err(|e| EtcdError(format!("lease keepalive: {}", client::describe(&e))))?;
    match answers.message().await {
        Ok(Some(resp)) => Ok(resp.ttl()),
        Ok(None) => Err(EtcdError("lease keepalive: etcd closed the stream".into())),
        Err(e) => Err(EtcdError(format!("lease keepalive: {}", client::describe(&e)))),
    }
}

/// Renews the lease every third of its TTL; reports the leadership lost when the
/// lease is gone, or when no renewal succeeded for a whole TTL (etcd will have
/// expired it by then, and another coordinator may lead).
async fn keep_alive(
    conn: Arc<Connection>,
    lease: i64,
    ttl: Duration,
    lost: Arc<watch::Sender<Option<String>>>,
) {
    let every = (ttl / 3).max(Duration::from_millis(300));
    let mut last_ok = Instant::now();
    let mut stream = None;
    loop {
        tokio::time::sleep(every).await;
        let round = tokio::time::timeout(every, renew(&conn, lease, &mut stream))
            .await
            .unwrap_or_else(|_| Err(EtcdError(format!("lease keepalive: no answer within {every:?}"))));
        match round {
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
            Err(e) => {
                stream = None;
                tracing::warn!(error = %e, "renewing the leader lease failed; retrying");
            }
        }
    }
}

/// This coordinator's term as leader. Dropping it stops renewing the lease.
#[derive(Debug)]
pub struct Leadership {
    conn: Arc<Connection>,
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
        if let Err(e) = self.conn.revoke(self.lease).await {
            tracing::warn!(error = %e, "could not revoke the leader lease; a standby takes over when it expires");
        }
    }
}

impl Drop for Leadership {
    fn drop(&mut self) {
        self.keepalive.abort();
    }
}

//! The state on etcd, for a highly available coordinator: every table lives under
//! `<prefix>/<table>/<key>`, a batch is one etcd transaction (atomic), and a leader's
//! transactions are fenced on its leadership key (see [`election`]), so a deposed
//! coordinator cannot write.
//!
//! The [`Kv`] trait is synchronous (the core is a std thread), the gateway client is
//! async: the store owns a one-worker tokio runtime and each call waits on a std
//! channel for its answer, which works from any thread and never enters the caller's
//! runtime.

mod election;
mod gateway;

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::time::Duration;

pub use election::{Campaign, Candidate, Leadership};
use gateway::{Gateway, GatewayError};

use super::{Batch, Kv, Result, StoreError, Table};

/// etcd's default `--max-txn-ops`.
pub const DEFAULT_MAX_TXN_OPS: usize = 128;

/// Keys read per range request: keeps each answer well below etcd's message limits.
const PAGE: i64 = 500;

/// Where and how to reach etcd.
#[derive(Debug, Clone)]
pub struct EtcdSettings {
    pub endpoints: Vec<String>,
    /// Every key lives under it (`/convoy`), so several installations can share etcd.
    pub prefix: String,
    /// The cluster's `--max-txn-ops`: no transaction holds more writes (see
    /// [`EtcdStore::commit`](Kv::commit)).
    pub max_txn_ops: usize,
    /// Per request.
    pub timeout: Duration,
}

impl EtcdSettings {
    pub fn new(endpoints: Vec<String>) -> Self {
        EtcdSettings {
            endpoints,
            prefix: "/convoy".into(),
            max_txn_ops: DEFAULT_MAX_TXN_OPS,
            timeout: Duration::from_secs(5),
        }
    }

    fn shown(&self) -> String {
        format!("etcd {}", self.endpoints.join(","))
    }
}

/// The condition every write of a leader carries.
#[derive(Debug, Clone)]
struct Fence {
    key: Vec<u8>,
    create_revision: i64,
    lost: std::sync::Arc<tokio::sync::watch::Sender<Option<String>>>,
}

/// A [`Kv`] on etcd.
pub struct EtcdStore {
    gateway: Gateway,
    settings: EtcdSettings,
    fence: Option<Fence>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EtcdStore({})", self.settings.shown())
    }
}

impl Drop for EtcdStore {
    fn drop(&mut self) {
        // A runtime dropped inside another runtime's context panics; this one has
        // nothing worth waiting for once its owner is gone.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// One write of a transaction, after merging a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Write {
    Put(Vec<u8>),
    Delete,
}

impl EtcdStore {
    /// An unfenced store: for tools and tests; a coordinator uses [`EtcdStore::fenced`].
    pub fn open(settings: EtcdSettings) -> Result<Self> {
        let gateway =
            Gateway::new(&settings.endpoints, settings.timeout).map_err(|e| StoreError::Backend {
                path: settings.shown(),
                message: e.0,
            })?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("convoy-etcd")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Backend {
                path: settings.shown(),
                message: format!("cannot start the etcd client's runtime: {e}"),
            })?;
        Ok(EtcdStore {
            gateway,
            settings,
            fence: None,
            runtime: Some(runtime),
        })
    }

    /// A store whose every commit holds only while `leadership` does. A commit that
    /// finds the leadership gone fails and reports it on [`Leadership::lost`].
    pub fn fenced(settings: EtcdSettings, leadership: &Leadership) -> Result<Self> {
        let mut store = Self::open(settings)?;
        store.fence = Some(Fence {
            key: leadership.key().to_vec(),
            create_revision: leadership.create_revision(),
            lost: leadership.lost_sender(),
        });
        Ok(store)
    }

    fn backend(&self, e: GatewayError) -> StoreError {
        StoreError::Backend {
            path: self.settings.shown(),
            message: e.0,
        }
    }

    /// Runs `fut` on the store's runtime and waits for it on this thread.
    fn block<T: Send + 'static>(
        &self,
        fut: impl std::future::Future<Output = Result<T, GatewayError>> + Send + 'static,
    ) -> Result<T> {
        let rt = self.runtime.as_ref().ok_or_else(|| StoreError::Backend {
            path: self.settings.shown(),
            message: "the store is closed".into(),
        })?;
        let (tx, rx) = mpsc::sync_channel(1);
        rt.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv()
            .map_err(|_| StoreError::Backend {
                path: self.settings.shown(),
                message: "the etcd client's runtime stopped".into(),
            })?
            .map_err(|e| self.backend(e))
    }

    fn key(&self, table: Table, key: &str) -> Vec<u8> {
        full_key(&self.settings.prefix, table, key)
    }

    /// One fenced transaction of at most `max_txn_ops` writes.
    fn commit_txn(&self, writes: &[((Table, String), Write)]) -> Result<()> {
        let ops: Vec<_> = writes
            .iter()
            .map(|((table, key), w)| {
                let k = self.key(*table, key);
                match w {
                    Write::Put(v) => gateway::put_op(&k, v, 0),
                    Write::Delete => gateway::delete_op(&k),
                }
            })
            .collect();
        let compare = self
            .fence
            .iter()
            .map(|f| gateway::compare_created(&f.key, f.create_revision))
            .collect();
        let gw = self.gateway.clone();
        let outcome = self.block(async move { gw.txn(compare, ops).await })?;
        if outcome.succeeded {
            return Ok(());
        }
        let fence = self
            .fence
            .as_ref()
            .map_or_else(String::new, |f| String::from_utf8_lossy(&f.key).into_owned());
        let message = format!(
            "leadership lost: {fence} no longer holds this coordinator's lease, so another \
             coordinator leads; this one must stop"
        );
        if let Some(f) = &self.fence {
            f.lost.send_replace(Some(message.clone()));
        }
        Err(StoreError::Fenced { message })
    }
}

pub(crate) fn full_key(prefix: &str, table: Table, key: &str) -> Vec<u8> {
    format!("{prefix}/{}/{key}", table.name()).into_bytes()
}

/// A batch as etcd accepts it: one write per key (etcd refuses a transaction naming a
/// key twice). Deletes apply before puts, as in the other backends.
fn merge(batch: Batch) -> BTreeMap<(Table, String), Write> {
    let mut out = BTreeMap::new();
    for (table, key) in batch.deletes {
        out.insert((table, key), Write::Delete);
    }
    for (table, key, value) in batch.puts {
        out.insert((table, key), Write::Put(value));
    }
    out
}

/// A batch's writes in the order they are written: release records last.
fn in_txn_order(batch: Batch) -> Vec<((Table, String), Write)> {
    let (roots, rest): (Vec<_>, Vec<_>) = merge(batch)
        .into_iter()
        .partition(|((table, _), _)| *table == Table::Releases);
    rest.into_iter().chain(roots).collect()
}

impl Kv for EtcdStore {
    /// One etcd transaction, fenced on the leadership. etcd caps the writes of a
    /// transaction (`--max-txn-ops`, 128 by default, `store.etcd_max_txn_ops` here):
    /// the core commits before its pending writes reach that cap (see
    /// [`Kv::max_batch_writes`]), so a batch only exceeds it when one single change
    /// does. Such a batch is written as several transactions, each within the cap, the
    /// release records (what a restart reads first and every other record hangs off)
    /// last: a coordinator stopped between them restarts from records that the release
    /// records do not yet point at, never from a release record pointing at missing
    /// ones. A failed transaction stops the coordinator (the core is fail-stop), so the
    /// next leader restores from exactly what landed.
    fn commit(&self, batch: Batch) -> Result<()> {
        let ordered = in_txn_order(batch);
        let cap = self.settings.max_txn_ops.max(1);
        if ordered.len() > cap {
            tracing::warn!(
                writes = ordered.len(),
                max_txn_ops = cap,
                transactions = ordered.len().div_ceil(cap),
                "one state change exceeds etcd's --max-txn-ops: writing it as several transactions, release records last"
            );
        }
        for chunk in ordered.chunks(cap) {
            self.commit_txn(chunk)?;
        }
        Ok(())
    }

    fn max_batch_writes(&self) -> Option<usize> {
        Some(self.settings.max_txn_ops.max(1))
    }

    fn scan(&self, table: Table, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let base = self.key(table, "");
        let mut from = self.key(table, prefix);
        let end = gateway::prefix_end(&from);
        let mut out = Vec::new();
        loop {
            let gw = self.gateway.clone();
            let (start, stop) = (from.clone(), end.clone());
            let page = self.block(async move { gw.range(&start, &stop, PAGE).await })?;
            let last = page.kvs.last().map(|kv| kv.key.clone());
            for kv in page.kvs {
                let key = kv
                    .key
                    .strip_prefix(base.as_slice())
                    .map(|k| String::from_utf8_lossy(k).into_owned())
                    .ok_or_else(|| {
                        self.backend(GatewayError(
                            "range answered a key outside the asked range".into(),
                        ))
                    })?;
                out.push((key, kv.value));
            }
            match last {
                Some(mut k) if page.more => {
                    // The next key after `k`.
                    k.push(0);
                    from = k;
                }
                _ => return Ok(out),
            }
        }
    }

    fn get(&self, table: Table, key: &str) -> Result<Option<Vec<u8>>> {
        let gw = self.gateway.clone();
        let k = self.key(table, key);
        let page = self.block(async move { gw.range(&k, &[], 0).await })?;
        Ok(page.kvs.into_iter().next().map(|kv| kv.value))
    }
}

#[cfg(test)]
mod tests;

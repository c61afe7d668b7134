//! The state on etcd, for a highly available coordinator: every table lives under
//! `<prefix>/<table>/<key>`, a batch is one etcd transaction (atomic), and a leader's
//! transactions are fenced on its leadership key (see [`election`]), so a deposed
//! coordinator cannot write. etcd is reached over its gRPC API with the `etcd-client`
//! crate ([`client`]): TLS, client certificates and username/password.
//!
//! The [`Kv`] trait is synchronous (the core is a std thread), the etcd client is
//! async: the store owns a one-worker tokio runtime and each call waits on a std
//! channel for its answer, which works from any thread and never enters the caller's
//! runtime.

mod client;
mod election;

use std::collections::BTreeMap;
use std::sync::{Arc, mpsc};
use std::time::Duration;

use client::{Connection, EtcdError};
pub use election::{Campaign, Candidate, Leadership};

pub use super::etcd_settings::{DEFAULT_MAX_TXN_OPS, EtcdCredentials, EtcdSettings, EtcdTls};

use super::{Batch, Kv, Result, StoreError, Table};

/// Keys read per range request: keeps each answer well below etcd's message limits.
const PAGE: i64 = 500;

/// The connection for a store or a candidate.
fn connection(settings: &EtcdSettings, timeout: Duration) -> Result<Connection> {
    Connection::new(
        &settings.endpoints,
        settings.tls.clone(),
        settings.credentials.clone(),
        timeout,
    )
    .map_err(|e| StoreError::Backend {
        path: settings.shown(),
        message: e.0,
    })
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
    conn: Arc<Connection>,
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
        let conn = Arc::new(connection(&settings, settings.timeout)?);
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
            conn,
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

    fn backend(&self, e: EtcdError) -> StoreError {
        StoreError::Backend {
            path: self.settings.shown(),
            message: e.0,
        }
    }

    /// Runs `fut` on the store's runtime and waits for it on this thread.
    fn block<T: Send + 'static>(
        &self,
        fut: impl std::future::Future<Output = Result<T, EtcdError>> + Send + 'static,
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
                    Write::Put(v) => client::put_op(&k, v, 0),
                    Write::Delete => client::delete_op(&k),
                }
            })
            .collect();
        let compare = self
            .fence
            .iter()
            .map(|f| client::compare_created(&f.key, f.create_revision))
            .collect();
        let conn = self.conn.clone();
        let outcome = self.block(async move { conn.txn(compare, ops, Vec::new()).await })?;
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
        let end = client::prefix_end(&from);
        let mut out = Vec::new();
        loop {
            let conn = self.conn.clone();
            let (start, stop) = (from.clone(), end.clone());
            let page = self.block(async move { conn.range(&start, &stop, PAGE).await })?;
            let last = page.kvs.last().map(|kv| kv.key.clone());
            for kv in page.kvs {
                let key = kv
                    .key
                    .strip_prefix(base.as_slice())
                    .map(|k| String::from_utf8_lossy(k).into_owned())
                    .ok_or_else(|| {
                        self.backend(EtcdError("range answered a key outside the asked range".into()))
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
        let conn = self.conn.clone();
        let k = self.key(table, key);
        let page = self.block(async move { conn.range(&k, &[], 0).await })?;
        Ok(page.kvs.into_iter().next().map(|kv| kv.value))
    }
}

#[cfg(test)]
mod tests;

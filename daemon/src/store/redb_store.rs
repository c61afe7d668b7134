//! The embedded store: one redb file, crash-safe, every batch one durable transaction.

use std::path::Path;

use redb::{Database, ReadableDatabase, TableDefinition};

use super::{Batch, Kv, Result, StoreError, Table};

pub struct RedbStore {
    db: Database,
    path: String,
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RedbStore({})", self.path)
    }
}

fn def(t: Table) -> TableDefinition<'static, &'static str, &'static [u8]> {
    TableDefinition::new(t.name())
}

/// The page cache [`RedbStore::open`] gives redb: 64 MiB (redb's default is 1 GiB).
pub const DEFAULT_CACHE_BYTES: usize = 64 << 20;

impl RedbStore {
    /// Opens (or creates) the store file with a [`DEFAULT_CACHE_BYTES`] page cache.
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_with_cache(path, DEFAULT_CACHE_BYTES)
    }

    /// Opens (or creates) the store file, creating its directory and tables. redb keeps
    /// every page it reads or writes in memory up to `cache_bytes` (pages written by a
    /// commit go to the cache too), so its share of the coordinator's memory grows with
    /// the file up to this bound; a read that misses costs a file read.
    pub fn open_with_cache(path: &Path, cache_bytes: usize) -> Result<Self> {
        let name = path.display().to_string();
        let err = |e: &dyn std::fmt::Display| StoreError::Backend {
            path: name.clone(),
            message: e.to_string(),
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| err(&e))?;
        }
        let db = redb::Builder::new()
            .set_cache_size(cache_bytes)
            .create(path)
            .map_err(|e| err(&e))?;
        let txn = db.begin_write().map_err(|e| err(&e))?;
        for t in Table::ALL {
            txn.open_table(def(t)).map_err(|e| err(&e))?;
        }
        txn.commit().map_err(|e| err(&e))?;
        Ok(RedbStore { db, path: name })
    }

    fn err(&self, e: impl std::fmt::Display) -> StoreError {
        StoreError::Backend {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }
}

impl Kv for RedbStore {
    fn commit(&self, batch: Batch) -> Result<()> {
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            for (table, key) in &batch.deletes {
                let mut t = txn.open_table(def(*table)).map_err(|e| self.err(e))?;
                t.remove(key.as_str()).map_err(|e| self.err(e))?;
            }
            for (table, key, value) in &batch.puts {
                let mut t = txn.open_table(def(*table)).map_err(|e| self.err(e))?;
                t.insert(key.as_str(), value.as_slice())
                    .map_err(|e| self.err(e))?;
            }
        }
        txn.commit().map_err(|e| self.err(e))
    }

    fn scan(&self, table: Table, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = txn.open_table(def(table)).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for entry in t.range(prefix..).map_err(|e| self.err(e))? {
            let (k, v) = entry.map_err(|e| self.err(e))?;
            if !k.value().starts_with(prefix) {
                break;
            }
            out.push((k.value().to_string(), v.value().to_vec()));
        }
        Ok(out)
    }

    fn get(&self, table: Table, key: &str) -> Result<Option<Vec<u8>>> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = txn.open_table(def(table)).map_err(|e| self.err(e))?;
        Ok(t.get(key).map_err(|e| self.err(e))?.map(|v| v.value().to_vec()))
    }
}

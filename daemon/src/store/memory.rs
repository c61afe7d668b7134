//! An in-memory store, for tests and the simulated demo's throwaway state.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::{Batch, Kv, Result, Table};

#[derive(Debug, Default)]
pub struct MemoryStore {
    tables: Mutex<BTreeMap<(Table, String), Vec<u8>>>,
}

impl Kv for MemoryStore {
    fn commit(&self, batch: Batch) -> Result<()> {
        let mut t = self.tables.lock().unwrap_or_else(|e| e.into_inner());
        for (table, key) in batch.deletes {
            t.remove(&(table, key));
        }
        for (table, key, value) in batch.puts {
            t.insert((table, key), value);
        }
        Ok(())
    }

    fn scan(&self, table: Table, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let t = self.tables.lock().unwrap_or_else(|e| e.into_inner());
        Ok(t.range((table, prefix.to_string())..)
            .take_while(|((tb, k), _)| *tb == table && k.starts_with(prefix))
            .map(|((_, k), v)| (k.clone(), v.clone()))
            .collect())
    }

    fn get(&self, table: Table, key: &str) -> Result<Option<Vec<u8>>> {
        let t = self.tables.lock().unwrap_or_else(|e| e.into_inner());
        Ok(t.get(&(table, key.to_string())).cloned())
    }
}

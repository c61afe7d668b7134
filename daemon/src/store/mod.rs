//! Durable state. Every transition is written here before it is acted on, so a
//! coordinator killed at any point resumes from what it last wrote.
//!
//! The store is a small key-value interface (tables of string keys and JSON values)
//! with atomic batches; the typed layer ([`StateStore`]) sits on top. Backends: the
//! embedded file store (redb, the default), etcd (a highly available coordinator: see
//! [`etcd`]) and an in-memory one for tests. Nothing here
//! ever holds a secret value or a rendered manifest: revisions keep metadata, and the
//! submit inputs kept for resuming (release file, values files, chart archive) hold
//! Vault paths, not values.

#[cfg(feature = "etcd")]
pub mod etcd;
#[cfg(not(feature = "etcd"))]
#[path = "etcd_disabled.rs"]
pub mod etcd;
mod etcd_settings;
mod memory;
mod redb_store;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use etcd::{EtcdSettings, EtcdStore};
pub use memory::MemoryStore;
pub use redb_store::RedbStore;

use crate::capabilities::ClusterCapabilities;
use crate::model::{ContextState, Operation, RevisionRecord};

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state store {path}: {message}")]
    Backend { path: String, message: String },
    #[error("state store: record {table}/{key} is unreadable: {message}")]
    Corrupt {
        table: &'static str,
        key: String,
        message: String,
    },
    /// This coordinator no longer leads (etcd backend): it must stop acting.
    #[error("state store: {message}")]
    Fenced { message: String },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Table {
    /// `release` -> [`ReleaseRecord`].
    Releases,
    /// `release/000000000N` -> [`RevisionRecord`].
    Revisions,
    /// `sha256:<hex>` -> [`ChartArchive`]: each chart archive once, however many
    /// revisions rendered it. Declared before `Inputs`: a split commit writes an archive
    /// before the inputs that name it.
    Charts,
    /// `release/000000000N` -> [`SubmitInputs`] (the archive by digest, in `Charts`).
    Inputs,
    /// `release/<seq>/<op id>/<context>` -> [`ContextState`]: one record per context,
    /// so that a commit writes the contexts that changed, not the whole fleet's.
    /// Declared before `Operations`: a backend that splits a large commit writes in
    /// table order, so an operation's record never lands ahead of its contexts'.
    OperationContexts,
    /// `release/<seq>/<op id>` -> [`Operation`]: the queue is the key order. Written
    /// without its contexts, which have records of their own (above).
    Operations,
    /// `<seq>` -> [`AuditEntry`].
    Audit,
    /// Counters (`seq`).
    Meta,
    /// Clusters' capabilities: `data/<digest>` -> [`ClusterCapabilities`] (what revisions
    /// were rendered with, by digest) and `context/<name>` -> the digest its agent
    /// reported last.
    Capabilities,
}

impl Table {
    pub const ALL: [Table; 9] = [
        Table::Releases,
        Table::Revisions,
        Table::Charts,
        Table::Inputs,
        Table::Operations,
        Table::OperationContexts,
        Table::Audit,
        Table::Meta,
        Table::Capabilities,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Table::Releases => "releases",
            Table::Revisions => "revisions",
            Table::Charts => "charts",
            Table::Inputs => "inputs",
            Table::Operations => "operations",
            Table::OperationContexts => "operation_contexts",
            Table::Audit => "audit",
            Table::Meta => "meta",
            Table::Capabilities => "capabilities",
        }
    }
}

/// Writes applied atomically together.
#[derive(Debug, Default)]
pub struct Batch {
    pub(crate) puts: Vec<(Table, String, Vec<u8>)>,
    pub(crate) deletes: Vec<(Table, String)>,
}

impl Batch {
    pub fn put<T: Serialize>(&mut self, table: Table, key: impl Into<String>, value: &T) {
        let bytes = serde_json::to_vec(value).expect("state records serialize");
        self.puts.push((table, key.into(), bytes));
    }

    /// Whether this batch already writes `table`/`key`.
    pub fn writes(&self, table: Table, key: &str) -> bool {
        self.puts.iter().any(|(t, k, _)| *t == table && k == key)
    }

    pub fn delete(&mut self, table: Table, key: impl Into<String>) {
        self.deletes.push((table, key.into()));
    }

    pub fn is_empty(&self) -> bool {
        self.puts.is_empty() && self.deletes.is_empty()
    }

    /// How many writes the batch holds (a key written twice counts twice: an upper
    /// bound of what a backend that merges them writes).
    pub fn len(&self) -> usize {
        self.puts.len() + self.deletes.len()
    }
}

/// A key-value backend.
pub trait Kv: Send + Sync + 'static {
    /// Applies a batch atomically and durably.
    fn commit(&self, batch: Batch) -> Result<()>;
    /// Every (key, value) of a table whose key starts with `prefix`, in key order.
    fn scan(&self, table: Table, prefix: &str) -> Result<Vec<(String, Vec<u8>)>>;
    fn get(&self, table: Table, key: &str) -> Result<Option<Vec<u8>>>;
    /// The most writes one atomic commit may hold (etcd's `--max-txn-ops`), if the
    /// backend has such a limit. The core commits before its pending writes reach it.
    fn max_batch_writes(&self) -> Option<usize> {
        None
    }
}

/// The release-level record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReleaseRecord {
    pub name: String,
    pub namespace: String,
    pub environment: String,
    pub latest_revision: u64,
    /// Per context: the revision it is at and last reached healthy (what a rollback
    /// restores).
    pub deployed: std::collections::BTreeMap<String, u64>,
    /// The target contexts of the latest revision.
    pub contexts: Vec<String>,
    /// Per context: the newest revision that reached it (dispatched, even if it then
    /// failed). The release has history there, so the next deploy is an upgrade.
    #[serde(default)]
    pub applied: std::collections::BTreeMap<String, u64>,
}

impl ReleaseRecord {
    /// Whether the release has history in `context` (a deploy there is an upgrade).
    pub fn has_history_in(&self, context: &str) -> bool {
        self.applied.contains_key(context) || self.deployed.contains_key(context)
    }
}

/// The key of a capabilities record.
pub fn capabilities_key(digest: &str) -> String {
    format!("data/{digest}")
}

/// The key of the digest a context's agent reported last.
pub fn context_capabilities_key(context: &str) -> String {
    format!("context/{context}")
}

/// What a submit brought, kept so that a restarted coordinator can render the
/// contexts it had not dispatched yet. No secret values: the release file names Vault
/// paths; the versions read are pinned in the revision record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SubmitInputs {
    pub release_yaml: String,
    pub source_name: String,
    pub values_files: Vec<(String, String)>,
    /// The chart archive (base64 in JSON).
    #[serde(with = "b64")]
    pub chart_archive: Vec<u8>,
    /// `sha256:<hex>` of `chart_archive`, set by the coordinator when it accepts the
    /// submit and checked whenever the revision is rendered again.
    #[serde(default)]
    pub chart_digest: String,
    /// Where the coordinator fetched the chart (`spec.chart.repo` / `oci`): the source
    /// URL without user info, the chart and the resolved version or manifest digest.
    /// Empty for a chart sent with the submit. Never a credential.
    #[serde(default)]
    pub chart_origin: String,
    /// `spec.valuesFrom` as the coordinator fetched it at submit, in order:
    /// `(origin, text)`, origin `URL REF@COMMIT PATH`. Re-renders use these, never the
    /// repository.
    #[serde(default)]
    pub values_from: Vec<(String, String)>,
    /// The submit's `allow_mass_deletion` (ORed with the release file's option).
    #[serde(default)]
    pub allow_mass_deletion: bool,
}

/// A chart archive as kept in [`Table::Charts`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChartArchive {
    #[serde(with = "b64")]
    pub archive: Vec<u8>,
}

mod b64 {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(s)
            .map_err(serde::de::Error::custom)
    }
}

/// One audited action: who, what, when, why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuditEntry {
    pub seq: u64,
    pub at: crate::model::Millis,
    pub who: String,
    /// `submit`, `rollback`, `pause`, `resume`, `abort`, `cancel`.
    pub action: String,
    pub release: String,
    pub revision: Option<u64>,
    pub operation_id: Option<String>,
    pub reason: String,
    /// `accepted`, or why it was refused.
    pub outcome: String,
}

/// The typed layer over a [`Kv`].
pub struct StateStore {
    kv: Box<dyn Kv>,
}

impl std::fmt::Debug for StateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StateStore")
    }
}

/// `release/000000000N`: revisions sort numerically.
pub fn revision_key(release: &str, n: u64) -> String {
    format!("{release}/{n:020}")
}

/// `release/<seq>/<op id>`: operations sort in submission order within a release.
pub fn operation_key(release: &str, seq: u64, id: &str) -> String {
    format!("{release}/{seq:020}/{id}")
}

impl StateStore {
    pub fn new(kv: Box<dyn Kv>) -> Self {
        StateStore { kv }
    }

    pub fn commit(&self, batch: Batch) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        self.kv.commit(batch)
    }

    /// See [`Kv::max_batch_writes`].
    pub fn max_batch_writes(&self) -> Option<usize> {
        self.kv.max_batch_writes()
    }

    fn decode<T: DeserializeOwned>(table: Table, key: &str, bytes: &[u8]) -> Result<T> {
        serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
            table: table.name(),
            key: key.to_string(),
            message: e.to_string(),
        })
    }

    fn all<T: DeserializeOwned>(&self, table: Table, prefix: &str) -> Result<Vec<(String, T)>> {
        self.kv
            .scan(table, prefix)?
            .into_iter()
            .map(|(k, v)| Self::decode(table, &k, &v).map(|t| (k, t)))
            .collect()
    }

    pub fn releases(&self) -> Result<Vec<ReleaseRecord>> {
        Ok(self
            .all(Table::Releases, "")?
            .into_iter()
            .map(|(_, v)| v)
            .collect())
    }

    pub fn release(&self, name: &str) -> Result<Option<ReleaseRecord>> {
        self.kv
            .get(Table::Releases, name)?
            .map(|b| Self::decode(Table::Releases, name, &b))
            .transpose()
    }

    /// A release's revisions, oldest first.
    pub fn revisions(&self, release: &str) -> Result<Vec<RevisionRecord>> {
        Ok(self
            .all(Table::Revisions, &format!("{release}/"))?
            .into_iter()
            .map(|(_, v)| v)
            .collect())
    }

    /// A revision's submit inputs, with its chart archive (kept once per digest in
    /// [`Table::Charts`]; records from before that hold it inline).
    pub fn inputs(&self, release: &str, revision: u64) -> Result<Option<SubmitInputs>> {
        let key = revision_key(release, revision);
        let Some(mut inputs) = self
            .kv
            .get(Table::Inputs, &key)?
            .map(|b| Self::decode::<SubmitInputs>(Table::Inputs, &key, &b))
            .transpose()?
        else {
            return Ok(None);
        };
        if inputs.chart_archive.is_empty() && !inputs.chart_digest.is_empty() {
            let digest = inputs.chart_digest.clone();
            let kept: ChartArchive = self
                .kv
                .get(Table::Charts, &digest)?
                .map(|b| Self::decode(Table::Charts, &digest, &b))
                .transpose()?
                .ok_or_else(|| StoreError::Corrupt {
                    table: Table::Inputs.name(),
                    key: key.clone(),
                    message: format!("its chart archive {digest} is not in the charts table"),
                })?;
            inputs.chart_archive = kept.archive;
        }
        Ok(Some(inputs))
    }

    /// Whether the chart archive `digest` is kept already.
    pub fn has_chart(&self, digest: &str) -> Result<bool> {
        Ok(self.kv.get(Table::Charts, digest)?.is_some())
    }

    /// Puts a revision's inputs into `batch`: the archive once per digest (not again when
    /// `kept`), the inputs naming it.
    pub fn put_inputs(batch: &mut Batch, key: &str, inputs: &SubmitInputs, kept: bool) {
        if inputs.chart_digest.is_empty() {
            batch.put(Table::Inputs, key, inputs);
            return;
        }
        if !kept {
            batch.put(
                Table::Charts,
                inputs.chart_digest.as_str(),
                &ChartArchive {
                    archive: inputs.chart_archive.clone(),
                },
            );
        }
        let by_digest = SubmitInputs {
            chart_archive: Vec::new(),
            ..inputs.clone()
        };
        batch.put(Table::Inputs, key, &by_digest);
    }

    /// Every stored operation with its key, in key order, with its contexts. (Records
    /// written before contexts had records of their own hold them inline; a context
    /// record, always the newer, wins.)
    pub fn operations(&self) -> Result<Vec<(String, Operation)>> {
        let mut ops: Vec<(String, Operation)> = self.all(Table::Operations, "")?;
        for (key, op) in &mut ops {
            let prefix = format!("{key}/");
            for (k, c) in self.all::<ContextState>(Table::OperationContexts, &prefix)? {
                let name = k[prefix.len()..].to_string();
                op.contexts.insert(name, c);
            }
        }
        Ok(ops)
    }

    /// Writes the whole operation: its record and every context's.
    pub fn put_operation(batch: &mut Batch, key: &str, op: &mut Operation) {
        for c in op.contexts.values() {
            Self::put_operation_context(batch, key, c);
        }
        Self::put_operation_head(batch, key, op);
    }

    /// Writes the operation's own record (phase, wave, message, plan), not its contexts.
    pub fn put_operation_head(batch: &mut Batch, key: &str, op: &mut Operation) {
        // Taken out for the write rather than copied: the record is written often and
        // the contexts can be 10,000.
        let contexts = std::mem::take(&mut op.contexts);
        batch.put(Table::Operations, key, op);
        op.contexts = contexts;
    }

    /// Writes one context's state within the operation stored under `key`.
    pub fn put_operation_context(batch: &mut Batch, key: &str, c: &ContextState) {
        batch.put(Table::OperationContexts, format!("{key}/{}", c.context), c);
    }

    /// Capabilities stored under `digest`.
    pub fn capabilities(&self, digest: &str) -> Result<Option<ClusterCapabilities>> {
        let key = capabilities_key(digest);
        self.kv
            .get(Table::Capabilities, &key)?
            .map(|b| Self::decode(Table::Capabilities, &key, &b))
            .transpose()
    }

    /// Per context, the capabilities its agent reported last.
    pub fn context_capabilities(&self) -> Result<Vec<(String, ClusterCapabilities)>> {
        let mut out = Vec::new();
        for (key, digest) in self.all::<String>(Table::Capabilities, "context/")? {
            let context = key.trim_start_matches("context/").to_string();
            let caps = self.capabilities(&digest)?.ok_or_else(|| StoreError::Corrupt {
                table: Table::Capabilities.name(),
                key: key.clone(),
                message: format!("names {digest}, which is not stored"),
            })?;
            out.push((context, caps));
        }
        Ok(out)
    }

    pub fn audit(&self) -> Result<Vec<AuditEntry>> {
        Ok(self.all(Table::Audit, "")?.into_iter().map(|(_, v)| v).collect())
    }

    /// The next value of the global sequence (operations and audit entries), durably.
    pub fn next_seq(&self, batch: &mut Batch, current: &mut u64) -> u64 {
        *current += 1;
        batch.put(Table::Meta, "seq", current);
        *current
    }

    pub fn load_seq(&self) -> Result<u64> {
        Ok(self
            .kv
            .get(Table::Meta, "seq")?
            .map(|b| Self::decode(Table::Meta, "seq", &b))
            .transpose()?
            .unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exercise(kv: Box<dyn Kv>) {
        let s = StateStore::new(kv);
        let mut b = Batch::default();
        let rec = ReleaseRecord {
            name: "app1.ns1".into(),
            namespace: "ns1".into(),
            environment: "dev".into(),
            latest_revision: 2,
            deployed: [("a".to_string(), 1)].into(),
            contexts: vec!["a".into()],
            applied: [("a".to_string(), 2)].into(),
        };
        b.put(Table::Releases, "app1.ns1", &rec);
        for n in [10u64, 2, 1] {
            b.put(Table::Meta, revision_key("app1.ns1", n), &n);
        }
        s.commit(b).unwrap();
        assert_eq!(s.release("app1.ns1").unwrap(), Some(rec));
        assert_eq!(s.release("nope").unwrap(), None);
        let keys: Vec<String> =
            s.kv.scan(Table::Meta, "app1.ns1/")
                .unwrap()
                .into_iter()
                .map(|(k, _)| k)
                .collect();
        assert_eq!(
            keys,
            vec![
                revision_key("app1.ns1", 1),
                revision_key("app1.ns1", 2),
                revision_key("app1.ns1", 10)
            ]
        );
        let mut b = Batch::default();
        b.delete(Table::Meta, revision_key("app1.ns1", 2));
        s.commit(b).unwrap();
        assert_eq!(s.kv.scan(Table::Meta, "app1.ns1/").unwrap().len(), 2);
    }

    #[test]
    fn memory_store_basics() {
        exercise(Box::new(MemoryStore::default()));
    }

    #[test]
    fn redb_store_basics_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        exercise(Box::new(RedbStore::open(&path).unwrap()));
        let s = StateStore::new(Box::new(RedbStore::open(&path).unwrap()));
        assert_eq!(s.release("app1.ns1").unwrap().unwrap().latest_revision, 2);
    }

    #[test]
    fn an_operation_is_written_as_a_record_and_one_per_context_and_read_back_whole() {
        let plan = crate::model::Plan {
            offline_deadline: std::time::Duration::ZERO,
            progress_deadline: std::time::Duration::ZERO,
            min_ready_window: std::time::Duration::ZERO,
            ..crate::model::Plan::for_tests(&[&["east", "west"]])
        };
        let req = crate::model::Requested {
            by: "t",
            reason: "",
            at: 0,
        };
        let mut op = Operation::queued(
            "op-1".into(),
            "web.ns1".into(),
            crate::model::OperationKind::Deploy,
            2,
            plan,
            &[("east".to_string(), 1)].into(),
            req,
        );
        let kv = MemoryStore::default();
        let s = StateStore::new(Box::new(kv));
        let key = operation_key("web.ns1", 3, "op-1");
        let mut b = Batch::default();
        StateStore::put_operation(&mut b, &key, &mut op);
        assert_eq!(b.len(), 3, "the record and one per context");
        s.commit(b).unwrap();
        assert_eq!(s.operations().unwrap(), vec![(key.clone(), op.clone())]);

        // A report changes one context: one write, and the whole reads back.
        let east = op.contexts.get_mut("east").unwrap();
        east.phase = crate::model::ContextPhase::Healthy;
        let mut b = Batch::default();
        StateStore::put_operation_context(&mut b, &key, &op.contexts["east"]);
        assert_eq!(b.len(), 1);
        s.commit(b).unwrap();
        op.message = "wave 1 of 1".into();
        let mut b = Batch::default();
        StateStore::put_operation_head(&mut b, &key, &mut op);
        assert_eq!(b.len(), 1);
        assert_eq!(op.contexts.len(), 2, "the contexts are back in place");
        s.commit(b).unwrap();
        assert_eq!(s.operations().unwrap(), vec![(key.clone(), op.clone())]);

        // A record written before contexts had their own (inline) still reads, and a
        // context record written since wins over its inline copy.
        let older = "web.ns1/00000000000000000001/op-0".to_string();
        let mut inline = op.clone();
        inline.id = "op-0".into();
        let mut b = Batch::default();
        b.put(Table::Operations, older.clone(), &inline);
        let mut newer = inline.contexts["west"].clone();
        newer.phase = crate::model::ContextPhase::Failed;
        StateStore::put_operation_context(&mut b, &older, &newer);
        s.commit(b).unwrap();
        let all = s.operations().unwrap();
        assert_eq!(all[0].0, older);
        assert_eq!(
            all[0].1.contexts["east"].phase,
            crate::model::ContextPhase::Healthy
        );
        assert_eq!(
            all[0].1.contexts["west"].phase,
            crate::model::ContextPhase::Failed
        );
        assert_eq!(all[1], (key, op));
    }

    #[test]
    fn a_chart_archive_is_kept_once_per_digest_and_old_inline_inputs_still_load() {
        let inputs = |digest: &str, archive: &[u8]| SubmitInputs {
            release_yaml: "r".into(),
            source_name: "web.yaml".into(),
            values_files: Vec::new(),
            chart_archive: archive.to_vec(),
            chart_digest: digest.into(),
            chart_origin: String::new(),
            values_from: Vec::new(),
            allow_mass_deletion: false,
        };
        let s = StateStore::new(Box::new(MemoryStore::default()));
        let mut b = Batch::default();
        StateStore::put_inputs(
            &mut b,
            &revision_key("web", 1),
            &inputs("sha256:aa", b"archive-a"),
            false,
        );
        s.commit(b).unwrap();
        assert!(s.has_chart("sha256:aa").unwrap());
        let mut b = Batch::default();
        StateStore::put_inputs(
            &mut b,
            &revision_key("web", 2),
            &inputs("sha256:aa", b"archive-a"),
            true,
        );
        assert!(
            !b.writes(Table::Charts, "sha256:aa"),
            "a kept archive is not written again"
        );
        // A record from before archives were kept by digest: inline.
        b.put(
            Table::Inputs,
            revision_key("web", 3),
            &inputs("sha256:bb", b"archive-b"),
        );
        s.commit(b).unwrap();
        for (rev, archive) in [(1, &b"archive-a"[..]), (2, b"archive-a"), (3, b"archive-b")] {
            assert_eq!(
                s.inputs("web", rev).unwrap().unwrap().chart_archive,
                archive,
                "revision {rev}"
            );
        }
        assert_eq!(s.kv.scan(Table::Charts, "").unwrap().len(), 1);
        // Inputs naming an archive the store lacks: named, not an empty chart.
        let mut b = Batch::default();
        StateStore::put_inputs(&mut b, &revision_key("web", 4), &inputs("sha256:cc", b"x"), true);
        s.commit(b).unwrap();
        let err = s.inputs("web", 4).unwrap_err().to_string();
        assert!(
            err.contains(&revision_key("web", 4)) && err.contains("sha256:cc"),
            "{err}"
        );
    }

    #[test]
    fn a_corrupt_record_is_named() {
        let kv = MemoryStore::default();
        let mut b = Batch::default();
        b.puts.push((Table::Releases, "x".into(), b"{not json".to_vec()));
        kv.commit(b).unwrap();
        let err = StateStore::new(Box::new(kv)).releases().unwrap_err().to_string();
        assert!(err.contains("releases/x"), "{err}");
    }
}

//! Revision history kept in the cluster, like Helm's release Secrets: one Secret per
//! revision (`convoy.<release>.v<N>`, type `convoy.dev/release.v1`) in the history
//! namespace, holding the gzip-compressed JSON of every object applied, so a rollback
//! needs neither the chart nor Vault. Status and health live in labels, so listing the
//! history never decompresses anything; only the last `limit` revisions are kept.
//!
//! Kubernetes refuses a Secret over 1 MiB. A revision whose compressed body is larger
//! than [`PART_BYTES`] is split: the revision's Secret holds the first part and says how
//! many there are (annotation `convoy.dev/parts`); the others are Secrets
//! `convoy.<release>.v<N>.part<I>` without the `owner: convoy` label (so listing the
//! history never sees them), written before the revision's Secret and deleted with it.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{create_namespace, internal};
use crate::backend::{DeployedRevision, Failure};

pub const SECRET_TYPE: &str = "convoy.dev/release.v1";
const OWNER_LABEL: &str = "owner";
const OWNER: &str = "convoy";
const RELEASE_LABEL: &str = "convoy.dev/release";
const REVISION_LABEL: &str = "convoy.dev/revision";
const STATUS_LABEL: &str = "convoy.dev/status";
const HEALTHY_LABEL: &str = "convoy.dev/healthy";
const DATA_KEY: &str = "release";
const PARTS_ANNOTATION: &str = "convoy.dev/parts";
const PART_LABEL: &str = "convoy.dev/part";
/// Blue/green: the revision's slot, and whether its Services select it (labels, so a
/// hello reads them without decompressing anything).
const SLOT_LABEL: &str = "convoy.dev/slot";
const SWITCHED_LABEL: &str = "convoy.dev/switched";
/// Blue/green: when the objects the revision kept (the old slot) are deleted (unix
/// seconds); removed once they are.
const RETIRE_AT_ANNOTATION: &str = "convoy.dev/retire-at";

/// The most compressed bytes one history Secret holds: well below Kubernetes' 1 MiB
/// limit of a Secret's data, leaving room for its metadata.
pub const PART_BYTES: usize = 768 << 10;

/// Where a revision stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevisionStatus {
    /// Applied now (the latest applied revision).
    Deployed,
    /// Replaced by a later revision.
    Superseded,
    /// Its apply or its rollout failed.
    Failed,
    /// Being applied: recorded before the apply starts (the intent), replaced by
    /// Deployed or Failed when it ends. Found at an agent's start, the apply was
    /// interrupted: [`History::settle_pending`] marks it failed.
    Pending,
}

impl RevisionStatus {
    fn as_str(self) -> &'static str {
        match self {
            RevisionStatus::Deployed => "deployed",
            RevisionStatus::Superseded => "superseded",
            RevisionStatus::Failed => "failed",
            RevisionStatus::Pending => "pending",
        }
    }
    fn parse(s: &str) -> Self {
        match s {
            "deployed" => RevisionStatus::Deployed,
            "failed" => RevisionStatus::Failed,
            "pending" => RevisionStatus::Pending,
            _ => RevisionStatus::Superseded,
        }
    }
}

/// The stored body of one revision. Holds rendered objects, secrets included: it only
/// ever lives inside a Kubernetes Secret, and is never logged.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct RevisionRecord {
    pub release: String,
    pub revision: u64,
    pub namespace: String,
    pub chart: String,
    pub operation_id: String,
    /// Every object as applied (labels and stamps included), in apply order.
    pub objects: Vec<Value>,
    /// The revision's Helm hooks as the coordinator sent them, so a rollback to it
    /// runs its rollback hooks. Absent in records written before hooks were kept.
    #[serde(default)]
    pub hooks: Vec<HookManifest>,
    /// Blue/green (absent otherwise): the slot the revision runs in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<String>,
    /// Blue/green: the slot the Services selected when it was applied (None: as
    /// rendered, the release ran without slots or was new).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live_slot: Option<String>,
    /// Blue/green: whether the slot Services select `slot` (a `SwitchSlot` ran).
    #[serde(default)]
    pub switched: bool,
    /// Blue/green: the slot Services' names (what a switch points at `slot`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub slot_services: Vec<String>,
    /// Blue/green: the objects of the release this revision kept, serving, rather than
    /// pruning (the live slot, or the previous revision's Deployments and what they
    /// name), as they were applied; deleted at `retire_at` or by the next revision.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kept: Vec<Value>,
    /// Blue/green: when `kept` is deleted (unix seconds), once switched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retire_at: Option<u64>,
    /// Blue/green: `kept` was deleted.
    #[serde(default)]
    pub retired: bool,
}

impl RevisionRecord {
    /// The slot the release's slot Services select while this revision is current.
    pub fn serving_slot(&self) -> Option<&str> {
        self.slot.as_ref()?;
        if self.switched {
            self.slot.as_deref()
        } else {
            self.live_slot.as_deref()
        }
    }

    /// The kept objects that are still in the cluster.
    pub fn kept_live(&self) -> &[Value] {
        if self.retired { &[] } else { &self.kept }
    }
}

/// One hook manifest as kept with its revision.
#[derive(Clone, Serialize, Deserialize)]
pub struct HookManifest {
    pub source: String,
    pub content: String,
}

/// One revision as listed (labels only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevisionInfo {
    pub release: String,
    pub revision: u64,
    pub status: RevisionStatus,
    pub healthy: bool,
    /// Blue/green: the revision's slot and whether it is switched.
    pub slot: Option<String>,
    pub switched: bool,
    /// Blue/green: when its kept objects are due for deletion (unix seconds).
    pub retire_at: Option<u64>,
}

pub struct History {
    secrets: Api<Secret>,
    namespaces: Api<Namespace>,
    namespace: String,
    limit: u32,
    field_manager: String,
}

/// The Secret holding `release`'s revision `revision`.
pub fn secret_name(release: &str, revision: u64) -> String {
    format!("convoy.{release}.v{revision}")
}

/// The Secret holding part `part` (2 and up) of a revision split over several.
pub fn part_name(release: &str, revision: u64, part: usize) -> String {
    format!("convoy.{release}.v{revision}.part{part}")
}

/// The current revision of one release's revisions (oldest first): the latest
/// deployed one, else the latest.
fn current_of(revs: &[RevisionInfo]) -> Option<&RevisionInfo> {
    revs.iter()
        .rev()
        .find(|i| i.status == RevisionStatus::Deployed)
        .or(revs.last())
}

fn info(meta: &ObjectMeta) -> Option<RevisionInfo> {
    let labels = meta.labels.as_ref()?;
    Some(RevisionInfo {
        release: labels.get(RELEASE_LABEL)?.clone(),
        revision: labels.get(REVISION_LABEL)?.parse().ok()?,
        status: RevisionStatus::parse(labels.get(STATUS_LABEL).map_or("", String::as_str)),
        healthy: labels.get(HEALTHY_LABEL).is_some_and(|h| h == "true"),
        slot: labels.get(SLOT_LABEL).cloned(),
        switched: labels.get(SWITCHED_LABEL).is_some_and(|h| h == "true"),
        retire_at: meta
            .annotations
            .as_ref()
            .and_then(|a| a.get(RETIRE_AT_ANNOTATION))
            .and_then(|v| v.parse().ok()),
    })
}

impl History {
    pub fn new(client: Client, namespace: &str, limit: u32, field_manager: &str) -> Self {
        History {
            secrets: Api::namespaced(client.clone(), namespace),
            namespaces: Api::all(client),
            namespace: namespace.to_string(),
            limit: limit.max(1),
            field_manager: field_manager.to_string(),
        }
    }

    /// Metadata only: listing the history (every hello, every retirement scan) never
    /// transfers a revision's body.
    async fn list_selected(&self, selector: &str) -> Result<Vec<RevisionInfo>, Failure> {
        let list = self
            .secrets
            .list_metadata(&ListParams::default().labels(selector))
            .await
            .map_err(|e| internal(format!("listing history in namespace {}", self.namespace), e))?;
        let mut out: Vec<RevisionInfo> = list.items.iter().filter_map(|s| info(&s.metadata)).collect();
        out.sort_by_key(|i| (i.release.clone(), i.revision));
        Ok(out)
    }

    /// `release`'s revisions, oldest first.
    pub async fn list(&self, release: &str) -> Result<Vec<RevisionInfo>, Failure> {
        self.list_selected(&format!("{OWNER_LABEL}={OWNER},{RELEASE_LABEL}={release}"))
            .await
    }

    /// Every release's revisions.
    pub async fn list_all(&self) -> Result<Vec<RevisionInfo>, Failure> {
        self.list_selected(&format!("{OWNER_LABEL}={OWNER}")).await
    }

    /// One revision's body; `None` when the history does not hold it.
    pub async fn load(&self, release: &str, revision: u64) -> Result<Option<RevisionRecord>, Failure> {
        let name = secret_name(release, revision);
        let Some(secret) = self
            .secrets
            .get_opt(&name)
            .await
            .map_err(|e| internal(format!("reading secret {}/{name}", self.namespace), e))?
        else {
            return Ok(None);
        };
        let corrupt = |why: String| {
            internal(
                format!("history secret {}/{name} is unreadable", self.namespace),
                why,
            )
        };
        let data_of = |s: &Secret| {
            s.data
                .as_ref()
                .and_then(|d| d.get(DATA_KEY))
                .map(|b| b.0.clone())
                .ok_or_else(|| corrupt(format!("no `{DATA_KEY}` key")))
        };
        let mut data = data_of(&secret)?;
        let parts: usize = match secret.annotations().get(PARTS_ANNOTATION) {
            None => 1,
            Some(n) => n
                .parse()
                .map_err(|_| corrupt(format!("{PARTS_ANNOTATION} is not a number: {n:?}")))?,
        };
        for part in 2..=parts {
            let pname = part_name(release, revision, part);
            let piece = self
                .secrets
                .get_opt(&pname)
                .await
                .map_err(|e| internal(format!("reading secret {}/{pname}", self.namespace), e))?
                .ok_or_else(|| corrupt(format!("part {part} of {parts} ({pname}) is missing")))?;
            data.extend(data_of(&piece)?);
        }
        let mut json = Vec::new();
        GzDecoder::new(data.as_slice())
            .read_to_end(&mut json)
            .map_err(|e| corrupt(format!("gunzip: {e}")))?;
        let record: RevisionRecord =
            serde_json::from_slice(&json).map_err(|e| corrupt(format!("decoding: {e}")))?;
        Ok(Some(record))
    }

    /// The latest revision of `release` below `revision` (the one a new revision replaces).
    pub async fn previous(&self, release: &str, revision: u64) -> Result<Option<RevisionRecord>, Failure> {
        let list = self.list(release).await?;
        match list.iter().rev().find(|i| i.revision < revision) {
            Some(i) => self.load(release, i.revision).await,
            None => Ok(None),
        }
    }

    /// Stores `record` as the release's deployed revision (replacing a same-numbered
    /// one: a retried command), supersedes the others, and trims to the limit.
    pub async fn record(&self, record: &RevisionRecord, status: RevisionStatus) -> Result<(), Failure> {
        self.write(record, status, false).await?;
        if status == RevisionStatus::Pending {
            // Only the intent: the history changes when the outcome is recorded.
            return Ok(());
        }
        let list = self.list(&record.release).await?;
        for i in &list {
            if i.revision != record.revision && i.status == RevisionStatus::Deployed {
                self.set_labels(&record.release, i.revision, &[(STATUS_LABEL, "superseded")])
                    .await?;
            }
        }
        let excess = list.len().saturating_sub(self.limit as usize);
        for i in list.iter().filter(|i| i.revision != record.revision).take(excess) {
            self.delete(&secret_name(&i.release, i.revision)).await?;
            self.delete_parts(&i.release, i.revision, 1).await?;
        }
        Ok(())
    }

    /// Rewrites a recorded revision's body (a blue/green switch or retirement),
    /// keeping its status and health.
    pub async fn update(&self, record: &RevisionRecord) -> Result<(), Failure> {
        let info = self
            .list(&record.release)
            .await?
            .into_iter()
            .find(|i| i.revision == record.revision);
        let (status, healthy) = info.map_or((RevisionStatus::Deployed, false), |i| (i.status, i.healthy));
        self.write(record, status, healthy).await
    }

    /// Writes a revision's Secret (and its parts) with the labels of `status`.
    async fn write(
        &self,
        record: &RevisionRecord,
        status: RevisionStatus,
        healthy: bool,
    ) -> Result<(), Failure> {
        let json = serde_json::to_vec(record)
            .map_err(|e| internal(format!("encoding revision {}", record.revision), e))?;
        let mut gz = GzEncoder::new(Vec::new(), Compression::default());
        gz.write_all(&json)
            .map_err(|e| internal("compressing the revision".into(), e))?;
        let compressed = gz
            .finish()
            .map_err(|e| internal("compressing the revision".into(), e))?;
        let name = secret_name(&record.release, record.revision);
        let chunks: Vec<&[u8]> = compressed.chunks(PART_BYTES).collect();
        // The parts first: the revision's Secret, which names them, only once they exist.
        for (i, chunk) in chunks.iter().enumerate().skip(1) {
            let part = i + 1;
            let labels = [
                (RELEASE_LABEL, record.release.clone()),
                (REVISION_LABEL, record.revision.to_string()),
                (PART_LABEL, part.to_string()),
            ];
            let secret = self.secret(
                part_name(&record.release, record.revision, part),
                &labels,
                BTreeMap::new(),
                chunk,
            );
            self.put(&secret).await?;
        }
        let mut labels = vec![
            (OWNER_LABEL, OWNER.to_string()),
            (RELEASE_LABEL, record.release.clone()),
            (REVISION_LABEL, record.revision.to_string()),
            (STATUS_LABEL, status.as_str().to_string()),
            (HEALTHY_LABEL, healthy.to_string()),
        ];
        if let Some(slot) = &record.slot {
            labels.push((SLOT_LABEL, slot.clone()));
            labels.push((SWITCHED_LABEL, record.switched.to_string()));
        }
        let mut annotations = BTreeMap::new();
        if chunks.len() > 1 {
            annotations.insert(PARTS_ANNOTATION.to_string(), chunks.len().to_string());
        }
        if let Some(at) = record
            .retire_at
            .filter(|_| !record.retired && !record.kept.is_empty())
        {
            annotations.insert(RETIRE_AT_ANNOTATION.to_string(), at.to_string());
        }
        let first = chunks.first().copied().unwrap_or_default();
        let secret = self.secret(name, &labels, annotations, first);
        self.put(&secret).await?;
        // A retried command may have written more parts before.
        self.delete_parts(&record.release, record.revision, chunks.len())
            .await
    }

    /// A history Secret holding `data` (gzip, or a part of it).
    fn secret(
        &self,
        name: String,
        labels: &[(&str, String)],
        annotations: BTreeMap<String, String>,
        data: &[u8],
    ) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some(name),
                namespace: Some(self.namespace.clone()),
                labels: Some(labels.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()),
                annotations: (!annotations.is_empty()).then_some(annotations),
                ..ObjectMeta::default()
            },
            type_: Some(SECRET_TYPE.to_string()),
            data: Some(BTreeMap::from([(
                DATA_KEY.to_string(),
                ByteString(data.to_vec()),
            )])),
            ..Secret::default()
        }
    }

    /// Writes a history Secret (server-side apply), creating the namespace if needed.
    async fn put(&self, secret: &Secret) -> Result<(), Failure> {
        let name = secret.name_any();
        let pp = PatchParams::apply(&self.field_manager).force();
        let mut result = self.secrets.patch(&name, &pp, &Patch::Apply(secret)).await;
        if matches!(&result, Err(kube::Error::Api(s)) if s.code == 404) {
            create_namespace(&self.namespaces, &self.namespace, "revision history").await?;
            result = self.secrets.patch(&name, &pp, &Patch::Apply(secret)).await;
        }
        result
            .map(|_| ())
            .map_err(|e| internal(format!("writing history secret {}/{name}", self.namespace), e))
    }

    async fn delete(&self, name: &str) -> Result<(), Failure> {
        match self.secrets.delete(name, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(internal(
                format!("trimming history secret {}/{name}", self.namespace),
                e,
            )),
        }
    }

    /// Deletes the part Secrets of a revision beyond its first `keep` parts.
    async fn delete_parts(&self, release: &str, revision: u64, keep: usize) -> Result<(), Failure> {
        let selector = format!("{RELEASE_LABEL}={release},{REVISION_LABEL}={revision},{PART_LABEL}");
        let list = self
            .secrets
            .list_metadata(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| internal(format!("listing history in namespace {}", self.namespace), e))?;
        for part in list.items {
            let index = part
                .labels()
                .get(PART_LABEL)
                .and_then(|p| p.parse::<usize>().ok())
                .unwrap_or(usize::MAX);
            if index > keep {
                self.delete(&part.name_any()).await?;
            }
        }
        Ok(())
    }

    /// Marks every pending revision (an apply interrupted by the agent's death) failed;
    /// returns them. Its record owns everything the apply may have created, so what
    /// follows (the coordinator's re-sent command, a rollback, the next revision)
    /// prunes from it.
    pub async fn settle_pending(&self) -> Result<Vec<(String, u64)>, Failure> {
        let mut settled = Vec::new();
        for i in self.list_all().await? {
            if i.status == RevisionStatus::Pending {
                self.set_labels(
                    &i.release,
                    i.revision,
                    &[(HEALTHY_LABEL, "false"), (STATUS_LABEL, "failed")],
                )
                .await?;
                settled.push((i.release, i.revision));
            }
        }
        Ok(settled)
    }

    /// Records how the revision's rollout ended.
    pub async fn set_outcome(&self, release: &str, revision: u64, healthy: bool) -> Result<(), Failure> {
        if healthy {
            self.set_labels(release, revision, &[(HEALTHY_LABEL, "true")])
                .await
        } else {
            self.set_labels(
                release,
                revision,
                &[(HEALTHY_LABEL, "false"), (STATUS_LABEL, "failed")],
            )
            .await
        }
    }

    async fn set_labels(&self, release: &str, revision: u64, labels: &[(&str, &str)]) -> Result<(), Failure> {
        let name = secret_name(release, revision);
        let labels: serde_json::Map<String, Value> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
            .collect();
        self.secrets
            .patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"labels": labels}})),
            )
            .await
            .map(|_| ())
            .map_err(|e| internal(format!("updating history secret {}/{name}", self.namespace), e))
    }

    /// `release`'s current revision: the latest deployed one, else the latest.
    pub async fn current(&self, release: &str) -> Result<Option<RevisionInfo>, Failure> {
        let revs = self.list(release).await?;
        Ok(current_of(&revs).cloned())
    }

    /// Every release whose current revision has a retire deadline (see
    /// [`RevisionRecord::retire_at`]): (release, revision, deadline).
    pub async fn retire_deadlines(&self) -> Result<Vec<(String, u64, u64)>, Failure> {
        let all = self.list_all().await?;
        let mut by_release: BTreeMap<String, Vec<RevisionInfo>> = BTreeMap::new();
        for i in all {
            by_release.entry(i.release.clone()).or_default().push(i);
        }
        Ok(by_release
            .into_values()
            .filter_map(|revs| {
                let c = current_of(&revs)?;
                Some((c.release.clone(), c.revision, c.retire_at?))
            })
            .collect())
    }

    /// Every release the history knows, with its current revision.
    pub async fn deployed(&self) -> Result<Vec<DeployedRevision>, Failure> {
        let all = self.list_all().await?;
        let mut by_release: BTreeMap<String, Vec<RevisionInfo>> = BTreeMap::new();
        for i in all {
            by_release.entry(i.release.clone()).or_default().push(i);
        }
        Ok(by_release
            .into_iter()
            .filter_map(|(release, revs)| {
                let current = current_of(&revs)?;
                Some(DeployedRevision {
                    release,
                    revision: current.revision,
                    healthy: current.healthy,
                    kept: revs.iter().map(|i| i.revision).collect(),
                    slot: current.slot.clone(),
                    switched: current.switched,
                })
            })
            .collect())
    }
}

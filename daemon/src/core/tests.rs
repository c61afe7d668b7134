//! The core with the real pipeline and a fake agent (channels, no network): each
//! context renders with the capabilities its agent reported and the release's history
//! there; a queued deploy is rendered again when either changed while it waited; a
//! restarted coordinator renders a revision with what the revision was first rendered
//! with.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc;

use super::*;
use crate::auth::Role;
use crate::capabilities::ClusterCapabilities;
use crate::model::OperationPhase;
use crate::pipeline::{Pipeline, SecretSource};
use crate::store::RedbStore;

const REGISTRY: &str = "contexts:\n  - {name: dev-a, region: r1, env: dev, cloud: gcp, clusterName: a}\n";
const RELEASE: &str = "web.ns1";

/// A PodDisruptionBudget at policy/v1 where the cluster serves that group version, and
/// a ConfigMap of what the render saw.
const PDB: &str = "{{- if .Capabilities.APIVersions.Has \"policy/v1\" }}\napiVersion: policy/v1\n{{- else }}\napiVersion: policy/v1beta1\n{{- end }}\nkind: PodDisruptionBudget\nmetadata: {name: web}\nspec: {minAvailable: 1, selector: {matchLabels: {app: web}}}\n";
const SEEN: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: seen}\ndata:\n  kube: {{ .Capabilities.KubeVersion.Version | quote }}\n  install: {{ .Release.IsInstall | quote }}\n  revision: {{ .Release.Revision | quote }}\n";

fn inputs(dir: &Path) -> SubmitInputs {
    let chart = dir.join("web");
    for (name, content) in [
        ("Chart.yaml", "apiVersion: v2\nname: web\nversion: 1.0.0\n"),
        ("templates/pdb.yaml", PDB),
        ("templates/seen.yaml", SEEN),
    ] {
        let path = chart.join(name);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, content).expect("write");
    }
    SubmitInputs {
        release_yaml: "apiVersion: convoy.dev/v1\nkind: Release\nmetadata: {name: web.ns1, namespace: ns1}\nspec: {chart: {path: ./web}, contexts: [dev-a]}\n".into(),
        source_name: "web.yaml".into(),
        values_files: Vec::new(),
        chart_archive: convoy_chart::package_dir(&chart).expect("chart packs"),
        chart_digest: String::new(),
        chart_origin: String::new(),
        values_from: Vec::new(),
        allow_mass_deletion: false,
    }
}

/// The store file; a coordinator just shut down may still hold it for a moment.
async fn open(path: &Path) -> StateStore {
    for _ in 0..100 {
        if let Ok(s) = RedbStore::open(path) {
            return StateStore::new(Box::new(s));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the store stayed locked");
}

async fn start(store: StateStore) -> Coordinator {
    start_with_limit(store, convoy_proto::AGENT_LINK_MESSAGE_LIMIT).await
}

async fn start_with_limit(store: StateStore, link_message_limit: usize) -> Coordinator {
    let registry = convoy_release::Registry::parse(REGISTRY, "contexts.yaml").expect("registry");
    let settings = CoreSettings {
        link_message_limit,
        ..CoreSettings::for_tests(&registry)
    };
    Coordinator::start(
        store,
        Arc::new(Pipeline::new(registry, SecretSource::None)),
        settings,
    )
    .await
    .expect("core starts")
}

fn caps(version: &str, policy_v1: bool) -> ReportedCapabilities {
    let mut apis = vec![
        "v1",
        "v1/ConfigMap",
        "policy/v1beta1",
        "policy/v1beta1/PodDisruptionBudget",
    ];
    if policy_v1 {
        apis.extend(["policy/v1", "policy/v1/PodDisruptionBudget"]);
    }
    ReportedCapabilities::Reported(
        ClusterCapabilities::new(version, apis.into_iter().map(String::from)).expect("capabilities"),
    )
}

/// A (fake) agent for dev-a connects; its commands arrive on the receiver.
fn connect(
    core: &Coordinator,
    session: u32,
    capabilities: ReportedCapabilities,
    deployed: Vec<(String, u64)>,
) -> CommandReceiver {
    connect_with(core, session, capabilities, deployed, Vec::new()).0
}

/// An agent connects bringing final reports it has not had acknowledged; the second
/// receiver answers once the core stored them (when the link may send its welcome).
fn connect_with(
    core: &Coordinator,
    session: u32,
    capabilities: ReportedCapabilities,
    deployed: Vec<(String, u64)>,
    unacknowledged: Vec<AgentReport>,
) -> (
    CommandReceiver,
    tokio::sync::oneshot::Receiver<Result<(), CoreError>>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let (stored, committed) = tokio::sync::oneshot::channel();
    core.tell(Msg::AgentConnected {
        hello: AgentHello {
            context: "dev-a".into(),
            session_id: format!("s{session}"),
            version: "test".into(),
            instance: "agent-0".into(),
            backend: "simulated".into(),
            in_flight: 0,
            unacknowledged,
            deployed,
            capabilities,
        },
        tx,
        stored,
    });
    (rx, committed)
}

async fn next(rx: &mut CommandReceiver) -> OutCommand {
    *tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .expect("a command within 20s")
        .expect("the session is open")
}

fn report(core: &Coordinator, cmd: &OutCommand, report: crate::orchestrator::Report) {
    core.tell(Msg::AgentReport {
        context: "dev-a".into(),
        report: AgentReport {
            release: cmd.release.clone(),
            revision: cmd.revision,
            operation_id: cmd.operation_id.clone(),
            report,
        },
    });
}

/// The next command is the preflight's dry run (passed), then the apply: returns the
/// apply, not yet reported on.
async fn dry_run_then_apply(core: &Coordinator, rx: &mut CommandReceiver) -> OutCommand {
    let dry = next(rx).await;
    assert!(matches!(dry.body, OutBody::DryRun(_)), "{dry:?}");
    report(core, &dry, crate::orchestrator::Report::DryRunPassed);
    let apply = next(rx).await;
    assert!(matches!(apply.body, OutBody::Apply(_)), "{apply:?}");
    apply
}

/// What an apply shipped: the PDB's apiVersion, and (kube, install, revision) as seen.
fn shipped(cmd: &OutCommand) -> (String, (String, String, String)) {
    let OutBody::Apply(body) = &cmd.body else {
        panic!("not an apply: {cmd:?}");
    };
    let objects: Vec<Value> = body
        .manifests
        .iter()
        .map(|m| serde_json::from_str(&m.content).expect("JSON"))
        .collect();
    let pdb = objects
        .iter()
        .find(|o| o["kind"] == "PodDisruptionBudget")
        .expect("a PDB");
    let seen = &objects.iter().find(|o| o["kind"] == "ConfigMap").expect("seen")["data"];
    let s = |k: &str| seen[k].as_str().unwrap_or_default().to_string();
    (
        pdb["apiVersion"].as_str().unwrap_or_default().to_string(),
        (s("kube"), s("install"), s("revision")),
    )
}

async fn wait_finished(core: &Coordinator, revision: u64) -> RevisionRecord {
    for _ in 0..400 {
        let history = core.history(RELEASE.into()).await.expect("history");
        if let Some(r) = history.iter().find(|r| r.number == revision)
            && r.phase.is_final()
        {
            return r.clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("revision {revision} did not finish");
}

fn deployer() -> Principal {
    Principal {
        name: "jenkins".into(),
        role: Role::Deployer,
        scope: None,
    }
}

fn strs(a: &str, b: &str, c: &str) -> (String, String, String) {
    (a.into(), b.into(), c.into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_context_renders_with_its_cluster_its_history_and_what_the_revision_recorded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("state.redb");
    let inputs = inputs(dir.path());
    let core = start(open(&db).await).await;

    // A context whose agent never connected: Helm's defaults, and the summary says so.
    let (_, summary) = core
        .submit(deployer(), inputs.clone(), "dry".into(), true)
        .await
        .expect("dry run");
    let f = &summary[0].facts;
    assert!(f.capabilities.is_none());
    assert_eq!(
        (f.kube_version(), f.revision, f.is_upgrade),
        ("v1.20.0", 1, false)
    );

    // Revision 1, a first install, on a 1.20 cluster: policy/v1beta1.
    let mut rx = connect(&core, 1, caps("v1.20.2", false), Vec::new());
    let (accepted, summary) = core
        .submit(deployer(), inputs.clone(), "first".into(), false)
        .await
        .expect("submit");
    assert_eq!(accepted.revision, 1);
    assert_eq!(summary[0].facts.kube_version(), "v1.20.2");
    let apply = dry_run_then_apply(&core, &mut rx).await;
    assert_eq!(
        shipped(&apply),
        ("policy/v1beta1".into(), strs("v1.20.2", "true", "1"))
    );
    report(&core, &apply, crate::orchestrator::Report::Healthy);
    let r1 = wait_finished(&core, 1).await;
    assert_eq!(r1.phase, OperationPhase::Succeeded);
    assert!(r1.rendered_with.upgrades.is_empty());
    assert_eq!(r1.rendered_with.capabilities.len(), 1);

    // Revision 2 is an upgrade. Revision 3 is submitted while 2 runs, for the 1.20
    // cluster; the cluster is upgraded to 1.21 (the agent reconnects) before 3 starts:
    // 3 is rendered again for 1.21 when it starts.
    let (a2, s2) = core
        .submit(deployer(), inputs.clone(), "second".into(), false)
        .await
        .expect("submit");
    assert_eq!((s2[0].facts.revision, s2[0].facts.is_upgrade), (2, true));
    let apply2 = dry_run_then_apply(&core, &mut rx).await;
    assert_eq!(
        shipped(&apply2),
        ("policy/v1beta1".into(), strs("v1.20.2", "false", "2"))
    );
    let (a3, s3) = core
        .submit(deployer(), inputs.clone(), "third".into(), false)
        .await
        .expect("submit");
    assert_eq!((a2.revision, a3.revision, a3.queue_position), (2, 3, 1));
    assert_eq!(
        s3[0].facts.kube_version(),
        "v1.20.2",
        "as things stood at the submit"
    );
    let mut rx = connect(&core, 2, caps("v1.21.0", true), vec![(RELEASE.into(), 2)]);
    // The reconnected agent gets revision 2's apply again, as rendered at its start.
    let again = next(&mut rx).await;
    assert_eq!(again.revision, 2);
    assert_eq!(shipped(&again).1, strs("v1.20.2", "false", "2"));
    report(&core, &again, crate::orchestrator::Report::Healthy);
    assert_eq!(wait_finished(&core, 2).await.phase, OperationPhase::Succeeded);
    let apply3 = dry_run_then_apply(&core, &mut rx).await;
    assert_eq!(apply3.revision, 3);
    assert_eq!(
        shipped(&apply3),
        ("policy/v1".into(), strs("v1.21.0", "false", "3"))
    );

    // While 3 runs the cluster reports 1.22; the coordinator restarts. Revision 3 is
    // rendered again as it was first rendered for its start (1.21), not for 1.22.
    let mut rx = connect(&core, 3, caps("v1.22.1", true), vec![(RELEASE.into(), 3)]);
    assert_eq!(shipped(&next(&mut rx).await).1, strs("v1.21.0", "false", "3"));
    let clusters = core.clusters().await.expect("clusters");
    assert_eq!(clusters[0].kube_version, "v1.22.1");
    core.shutdown();
    drop(core);
    let core = start(open(&db).await).await;
    let mut rx = connect(&core, 4, caps("v1.22.1", true), vec![(RELEASE.into(), 3)]);
    let resumed = next(&mut rx).await;
    assert_eq!(resumed.revision, 3);
    assert_eq!(
        shipped(&resumed),
        ("policy/v1".into(), strs("v1.21.0", "false", "3"))
    );
    report(&core, &resumed, crate::orchestrator::Report::Healthy);
    assert_eq!(wait_finished(&core, 3).await.phase, OperationPhase::Succeeded);

    // The cluster's capabilities outlived the restart; an agent that reports none (older
    // than capability reporting) puts the context back on Helm's defaults.
    let (_, summary) = core
        .submit(deployer(), inputs.clone(), "dry".into(), true)
        .await
        .expect("dry run");
    assert_eq!(summary[0].facts.kube_version(), "v1.22.1");
    assert_eq!(
        (summary[0].facts.revision, summary[0].facts.is_upgrade),
        (4, true)
    );
    let _rx = connect(&core, 5, ReportedCapabilities::NotSent, vec![(RELEASE.into(), 3)]);
    let (_, summary) = core
        .submit(deployer(), inputs, "dry".into(), true)
        .await
        .expect("dry run");
    assert!(summary[0].facts.capabilities.is_none());
    core.shutdown();
}

/// The history a cluster reports in its hello counts: a release the coordinator never
/// deployed there (another coordinator did) is an upgrade there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_the_cluster_already_holds_is_an_upgrade() {
    let dir = tempfile::tempdir().expect("tempdir");
    let core = start(StateStore::new(Box::new(crate::store::MemoryStore::default()))).await;
    let _rx = connect(&core, 1, caps("v1.20.2", false), vec![(RELEASE.into(), 7)]);
    let (_, summary) = core
        .submit(deployer(), inputs(dir.path()), "dry".into(), true)
        .await
        .expect("dry run");
    let f = &summary[0].facts;
    assert_eq!(
        (f.revision, f.is_upgrade),
        (1, true),
        "revision 1 of this coordinator, an upgrade"
    );
    core.shutdown();
}

#[test]
fn a_revision_records_and_restores_its_facts() {
    let c = Arc::new(ClusterCapabilities::new("v1.20.2", ["v1".to_string()]).expect("capabilities"));
    let facts = BTreeMap::from([
        (
            "a".to_string(),
            RenderFacts::of_revision(4, true, Some(c.clone())),
        ),
        ("b".to_string(), RenderFacts::of_revision(4, false, None)),
    ]);
    let record = crate::model::RenderRecord::of(&facts);
    assert_eq!(record.upgrades.iter().collect::<Vec<_>>(), ["a"]);
    let contexts = ["a".to_string(), "b".to_string()];
    let back = record
        .facts(4, &contexts, |d| (d == c.digest()).then(|| c.clone()))
        .expect("facts");
    assert_eq!(back, facts);
    let missing = record.facts(4, &contexts, |_| None).unwrap_err();
    assert!(missing.contains(c.digest()), "{missing}");
    // A revision recorded before facts were: Helm's defaults, installs.
    let old = crate::model::RenderRecord::default()
        .facts(4, &contexts, |_| None)
        .expect("facts");
    assert!(
        old.values()
            .all(|f| *f == RenderFacts::of_revision(1, false, None))
    );
}

/// A store whose commits fail on demand (`failing`), or when a batch holds more writes
/// than `limit` (as etcd refuses a transaction over its `--max-txn-ops`), over a
/// memory store the test keeps across coordinators.
#[derive(Clone, Default)]
struct Faulty {
    data: Arc<crate::store::MemoryStore>,
    failing: Arc<std::sync::atomic::AtomicBool>,
    limit: Option<usize>,
    largest: Arc<std::sync::atomic::AtomicUsize>,
}

impl crate::store::Kv for Faulty {
    fn commit(&self, batch: crate::store::Batch) -> crate::store::Result<()> {
        use std::sync::atomic::Ordering;
        let backend = |message: String| crate::store::StoreError::Backend {
            path: "faulty".into(),
            message,
        };
        if self.failing.load(Ordering::SeqCst) {
            return Err(backend("injected: no space left on device".into()));
        }
        if let Some(limit) = self.limit
            && batch.len() > limit
        {
            return Err(backend(format!("{} writes exceed {limit}", batch.len())));
        }
        self.largest.fetch_max(batch.len(), Ordering::SeqCst);
        self.data.commit(batch)
    }

    fn scan(&self, table: crate::store::Table, prefix: &str) -> crate::store::Result<Vec<(String, Vec<u8>)>> {
        self.data.scan(table, prefix)
    }

    fn get(&self, table: crate::store::Table, key: &str) -> crate::store::Result<Option<Vec<u8>>> {
        self.data.get(table, key)
    }

    fn max_batch_writes(&self) -> Option<usize> {
        self.limit
    }
}

impl Faulty {
    fn store(&self) -> StateStore {
        StateStore::new(Box::new(self.clone()))
    }

    fn fail(&self, on: bool) {
        self.failing.store(on, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A commit that fails stops the core: it sends nothing of the lost change, refuses
/// what follows, says why; a coordinator restarted on the store resumes from what the
/// store holds (the preflight whose report was lost runs again) and finishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_commit_stops_the_core_and_a_restart_resumes_from_the_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Faulty::default();
    let core = start(store.store()).await;
    let mut rx = connect(&core, 1, caps("v1.20.2", false), Vec::new());
    let (accepted, _) = core
        .submit(deployer(), inputs(dir.path()), "first".into(), false)
        .await
        .expect("submit");
    let dry = next(&mut rx).await;
    assert!(matches!(dry.body, OutBody::DryRun(_)), "{dry:?}");

    store.fail(true);
    report(&core, &dry, crate::orchestrator::Report::DryRunPassed);
    let why = tokio::time::timeout(Duration::from_secs(10), core.failed())
        .await
        .expect("the core reports its failure");
    assert!(
        why.contains("state store commit failed") && why.contains("no space left on device"),
        "{why}"
    );
    // Nothing of the change the store did not get went out: the session closed with
    // no apply sent.
    let after = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("the session closes");
    assert!(
        after.is_none(),
        "a command left after the failed commit: {after:?}"
    );
    let refused = core.releases().await.unwrap_err();
    assert!(matches!(refused, CoreError::Unavailable), "{refused:?}");
    let refused = core
        .submit(deployer(), inputs(dir.path()), "second".into(), false)
        .await
        .unwrap_err();
    assert!(matches!(refused, CoreError::Unavailable), "{refused:?}");
    tokio::time::timeout(Duration::from_secs(5), core.stopped())
        .await
        .expect("the core thread ends");

    // The store is back: a new coordinator resumes the operation from the store.
    store.fail(false);
    let core = start(store.store()).await;
    let mut rx = connect(&core, 2, caps("v1.20.2", false), Vec::new());
    let apply = dry_run_then_apply(&core, &mut rx).await;
    assert_eq!(apply.revision, accepted.revision);
    report(&core, &apply, crate::orchestrator::Report::Healthy);
    assert_eq!(
        wait_finished(&core, accepted.revision).await.phase,
        OperationPhase::Succeeded
    );
    let history = core.history(RELEASE.into()).await.expect("history");
    assert_eq!(history.len(), 1, "one revision, no record lost or doubled");
    core.shutdown();
}

/// The final reports an agent brings in its hello are acknowledged (the agent then drops
/// them) only once they are in the store: not when the commit fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hello_is_acknowledged_only_once_its_reports_are_stored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Faulty::default();
    let core = start(store.store()).await;
    let mut rx = connect(&core, 1, caps("v1.20.2", false), Vec::new());
    let (accepted, _) = core
        .submit(deployer(), inputs(dir.path()), "first".into(), false)
        .await
        .expect("submit");
    let apply = dry_run_then_apply(&core, &mut rx).await;
    let healthy = AgentReport {
        release: apply.release.clone(),
        revision: apply.revision,
        operation_id: apply.operation_id.clone(),
        report: crate::orchestrator::Report::Healthy,
    };
    // The agent lost its session, finished, and reconnects with its final report while
    // the store fails: no acknowledgement.
    store.fail(true);
    let (_rx, stored) = connect_with(
        &core,
        2,
        caps("v1.20.2", false),
        Vec::new(),
        vec![healthy.clone()],
    );
    let answer = tokio::time::timeout(Duration::from_secs(10), stored)
        .await
        .expect("an answer");
    assert!(
        matches!(answer, Ok(Err(CoreError::Store { ref source, .. })) if source.to_string().contains("no space left")),
        "{answer:?}"
    );

    // Restarted, the same hello is acknowledged once the revision is recorded healthy.
    store.fail(false);
    let core = start(store.store()).await;
    let (_rx, stored) = connect_with(&core, 3, caps("v1.20.2", false), Vec::new(), vec![healthy]);
    tokio::time::timeout(Duration::from_secs(10), stored)
        .await
        .expect("an answer")
        .expect("answered")
        .expect("stored");
    let stored = StateStore::new(Box::new(store.clone()));
    let rev = stored
        .revisions(RELEASE)
        .expect("revisions")
        .into_iter()
        .find(|r| r.number == accepted.revision)
        .expect("revision stored");
    assert_eq!(rev.phase, OperationPhase::Succeeded);
    core.shutdown();
}

/// A burst of changes is committed in batches within the backend's atomic limit (etcd's
/// `--max-txn-ops`), none refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_is_committed_within_the_backends_batch_limit() {
    let store = Faulty {
        limit: Some(8),
        ..Faulty::default()
    };
    let core = start(store.store()).await;
    for i in 0..300 {
        core.record(
            &deployer(),
            "submit",
            RELEASE,
            &format!("burst {i}"),
            "refused: test",
        );
    }
    let entries = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match core.audit().await {
                Ok(a) if a.len() == 300 => return a,
                Ok(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                Err(e) => panic!("the core failed: {e}"),
            }
        }
    })
    .await
    .expect("every entry stored");
    assert_eq!(entries.last().map(|e| e.reason.as_str()), Some("burst 299"));
    let largest = store.largest.load(std::sync::atomic::Ordering::SeqCst);
    assert!((1..=8).contains(&largest), "largest commit: {largest} writes");
    core.shutdown();
}

/// A release whose command for a context would exceed the agent link's message limit is
/// refused at submit, naming the context and the limit; nothing is recorded or sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_larger_than_the_link_limit_is_refused_at_submit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let core = start_with_limit(
        StateStore::new(Box::new(crate::store::MemoryStore::default())),
        4096,
    )
    .await;
    let mut rx = connect(&core, 1, caps("v1.20.2", false), Vec::new());
    let small = inputs(dir.path());
    // The same chart with a 5 KB ConfigMap.
    let big = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: big}}\ndata: {{blob: {:?}}}\n",
        "x".repeat(5000)
    );
    std::fs::write(dir.path().join("web/templates/big.yaml"), big).expect("write");
    let large = SubmitInputs {
        chart_archive: convoy_chart::package_dir(&dir.path().join("web")).expect("chart packs"),
        ..small.clone()
    };
    let err = core
        .submit(deployer(), large, "big".into(), false)
        .await
        .unwrap_err();
    let CoreError::Invalid(msg) = &err else {
        panic!("{err:?}");
    };
    assert!(
        msg.contains("too large for context dev-a") && msg.contains("(4096 bytes)"),
        "{msg}"
    );
    assert!(matches!(
        core.history(RELEASE.into()).await,
        Err(CoreError::NotFound { .. })
    ));
    assert!(rx.try_recv().is_err(), "nothing was sent");
    // Without the big ConfigMap it fits, and deploys.
    core.submit(deployer(), small, "small".into(), false)
        .await
        .expect("a release within the limit is accepted");
    let apply = dry_run_then_apply(&core, &mut rx).await;
    assert_eq!(apply.revision, 1);
    core.shutdown();
}

/// A final report that arrives again for an operation already finished (an agent
/// re-sends its unacknowledged final events after a coordinator restart) changes
/// nothing: the automatic rollback's revision is recorded once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_report_for_a_finished_operation_records_nothing_twice() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Faulty::default();
    let core = start(store.store()).await;
    let mut rx = connect(&core, 1, caps("v1.20.2", false), Vec::new());
    let (first, _) = core
        .submit(deployer(), inputs(dir.path()), "first".into(), false)
        .await
        .expect("submit");
    let apply = dry_run_then_apply(&core, &mut rx).await;
    report(&core, &apply, crate::orchestrator::Report::Healthy);
    wait_finished(&core, first.revision).await;
    let (second, _) = core
        .submit(deployer(), inputs(dir.path()), "second".into(), false)
        .await
        .expect("submit");
    let apply = dry_run_then_apply(&core, &mut rx).await;
    report(
        &core,
        &apply,
        crate::orchestrator::Report::Failed {
            reason: "CrashLoopBackOff".into(),
            message: "web crashed".into(),
        },
    );
    let rollback = next(&mut rx).await;
    assert!(matches!(rollback.body, OutBody::Rollback { .. }), "{rollback:?}");
    report(&core, &rollback, crate::orchestrator::Report::Healthy);
    assert_eq!(
        wait_finished(&core, second.revision).await.phase,
        OperationPhase::Failed
    );
    let numbers = |h: Vec<RevisionRecord>| h.iter().map(|r| r.number).collect::<Vec<_>>();
    let before = numbers(core.history(RELEASE.into()).await.expect("history"));
    assert_eq!(before, [3, 2, 1]);
    // The agent reconnects with both final reports unacknowledged.
    let late = |cmd: &OutCommand, report| AgentReport {
        release: cmd.release.clone(),
        revision: cmd.revision,
        operation_id: cmd.operation_id.clone(),
        report,
    };
    let (_rx, stored) = connect_with(
        &core,
        2,
        caps("v1.20.2", false),
        Vec::new(),
        vec![
            late(&rollback, crate::orchestrator::Report::Healthy),
            late(&rollback, crate::orchestrator::Report::Healthy),
        ],
    );
    stored.await.expect("answered").expect("stored");
    let after = numbers(core.history(RELEASE.into()).await.expect("history"));
    assert_eq!(after, before, "a revision recorded twice");
    core.shutdown();
}

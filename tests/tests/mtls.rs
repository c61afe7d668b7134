//! Client certificates as credentials: a real `convoyd` serving TLS with a client CA and
//! `auth.certificates` mappings, called by tonic clients that present (or do not
//! present) certificates. A mapped certificate acts with its role and is recorded as
//! `cert:CN=...`; an unmapped one is refused naming its subject; one signed by another
//! CA, or none at all, does not get through the TLS handshake (unless
//! `tls.client_cert_optional` lets certificate-less token holders in). Real
//! `convoy-agent` processes get through such a listener with a client certificate
//! (`tls.client_cert_file`), and are refused without one, saying why in their log.
//! Also what any caller meets at the API: scoped tokens, the audit log, request limits,
//! and render bounds that keep the coordinator answering while a chart misbehaves.

use std::path::Path;
use std::time::{Duration, Instant};

use convoy_proto::v1 as pb;
use convoy_tests::certs::{CertPair, TestCa};
use convoy_tests::convoy::{AgentProcess, Convoyd};
use pb::cluster_service_client::ClusterServiceClient;
use pb::release_service_client::ReleaseServiceClient;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Code, Status};

const CONTEXT: &str = "  - {name: east, region: us-east1, env: dev, cloud: sim, clusterName: east-1}\n";

/// The coordinator's TLS files, written into `dir`; returns the `tls:` section.
fn tls_section(dir: &Path, ca: &TestCa, client_cert_optional: bool) -> String {
    let server = ca.server_cert("convoyd", &[]).unwrap();
    let write = |name: &str, pem: &str| {
        let p = dir.join(name);
        std::fs::write(&p, pem).unwrap();
        p.display().to_string()
    };
    format!(
        "tls:\n  cert_file: {}\n  key_file: {}\n  client_ca_file: {}\n  client_cert_optional: {client_cert_optional}\n",
        write("server.pem", &server.cert_pem),
        write("server-key.pem", &server.key_pem),
        write("client-ca.pem", &ca.cert_pem()),
    )
}

async fn start(ca: &TestCa, client_cert_optional: bool) -> (Convoyd, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!(
        "contexts:\n{CONTEXT}{}auth:\n  tokens:\n    - {{name: release-bot, role: deployer, token: t-deploy}}\n  \
         certificates:\n    - {{common_name: jenkins-prod, role: deployer}}\n    - {{common_name: dashboard, role: viewer}}\n",
        tls_section(dir.path(), ca, client_cert_optional)
    );
    let convoyd = Convoyd::start(&cfg).await.unwrap();
    (convoyd, dir)
}

/// Why a call did not succeed: a gRPC status from the coordinator, or the connection
/// (TLS handshake) failing before any status could be sent.
#[derive(Debug)]
enum Refusal {
    Status(Status),
    Connect(String),
}

type Client = ReleaseServiceClient<tonic::service::interceptor::InterceptedService<Channel, Bearer>>;

#[derive(Clone)]
struct Bearer(Option<String>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        if let Some(t) = &self.0 {
            let v = format!("Bearer {t}")
                .parse()
                .map_err(|_| Status::internal("token"))?;
            req.metadata_mut().insert("authorization", v);
        }
        Ok(req)
    }
}

/// A client trusting `server_ca`, presenting `identity` and `token` when given.
async fn client(
    convoyd: &Convoyd,
    server_ca: &TestCa,
    identity: Option<&CertPair>,
    token: Option<&str>,
) -> Result<Client, Refusal> {
    let channel = channel(convoyd, server_ca, identity).await?;
    Ok(ReleaseServiceClient::with_interceptor(
        channel,
        Bearer(token.map(str::to_string)),
    ))
}

/// A TLS channel to `convoyd` trusting `server_ca`, presenting `identity` when given.
async fn channel(
    convoyd: &Convoyd,
    server_ca: &TestCa,
    identity: Option<&CertPair>,
) -> Result<Channel, Refusal> {
    let url = convoyd.addr.replacen("http://", "https://", 1);
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(server_ca.cert_pem()))
        .domain_name("localhost");
    if let Some(id) = identity {
        tls = tls.identity(Identity::from_pem(&id.cert_pem, &id.key_pem));
    }
    Endpoint::from_shared(url)
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .map_err(|e| Refusal::Connect(error_chain(&e)))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        out.push_str(": ");
        out.push_str(&s.to_string());
        src = s.source();
    }
    out
}

async fn list(c: Result<Client, Refusal>) -> Result<pb::ListReleasesResponse, Refusal> {
    c?.list_releases(pb::ListReleasesRequest::default())
        .await
        .map(|r| r.into_inner())
        .map_err(Refusal::Status)
}

fn release_yaml() -> String {
    "apiVersion: convoy.dev/v1\nkind: Release\nmetadata: {name: web.shop, namespace: shop, environment: dev}\n\
     spec:\n  chart: {path: ./web}\n  values: {image: \"registry.example/web:2.0\"}\n  contexts: [east]\n"
        .to_string()
}

fn submit_request(dry_run: bool) -> pb::SubmitReleaseRequest {
    let chart = Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/web");
    pb::SubmitReleaseRequest {
        release_yaml: release_yaml(),
        source_name: "web.yaml".into(),
        chart_archive: convoy_chart::package_dir(&chart).expect("packaging the test chart"),
        values_files: vec![],
        reason: "mtls test".into(),
        dry_run,
        allow_mass_deletion: false,
    }
}

/// A refusal by the TLS layer: the client could not connect, or the connection broke
/// under the first call (TLS 1.3 completes the client's side of the handshake before
/// the server has checked its certificate). Either way a transport error, not an answer
/// from convoy's API. When the server's alert reached the client before the connection
/// closed, it is `alert`; the client's write can also race the close and only see a
/// broken pipe.
fn assert_tls_refused(r: Result<pb::ListReleasesResponse, Refusal>, what: &str, alert: &str) {
    let text = match r {
        Ok(_) => panic!("{what}: the call succeeded"),
        Err(Refusal::Connect(e)) => e,
        Err(Refusal::Status(s)) => {
            // The client's own transport error (the code varies with where the
            // connection broke: Unknown, Unavailable, Cancelled), never a status the
            // server sent.
            assert!(
                std::error::Error::source(&s).is_some_and(|e| e.is::<tonic::transport::Error>()),
                "{what}: expected a transport failure, got {s:?}"
            );
            error_chain(&s)
        }
    };
    assert!(
        !text.contains("alert") || text.contains(alert),
        "{what}: expected TLS alert {alert}, got: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_carry_their_mapped_role() {
    let ca = TestCa::new("convoy").unwrap();
    let (convoyd, _dir) = start(&ca, false).await;
    let jenkins = ca.client_cert("jenkins-prod", Some("ci")).unwrap();
    let dashboard = ca.client_cert("dashboard", None).unwrap();

    // (a) deployer: reads, dry-runs and submits; recorded as its certificate.
    let mut deployer = client(&convoyd, &ca, Some(&jenkins), None).await.unwrap();
    deployer
        .list_releases(pb::ListReleasesRequest::default())
        .await
        .expect("a deployer certificate may list releases");
    let dry = deployer
        .submit_release(submit_request(true))
        .await
        .expect("a deployer certificate may dry-run a submit")
        .into_inner();
    assert_eq!((dry.release.as_str(), dry.revision), ("web.shop", 0));
    assert_eq!(dry.rendered.len(), 1, "{dry:?}");
    assert!(dry.rendered[0].objects > 0, "{dry:?}");
    let accepted = deployer
        .submit_release(submit_request(false))
        .await
        .expect("a deployer certificate may submit")
        .into_inner();
    let history = deployer
        .get_history(pb::GetHistoryRequest {
            release: "web.shop".into(),
            limit: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let rev = history
        .revisions
        .iter()
        .find(|r| r.number == accepted.revision)
        .unwrap_or_else(|| panic!("revision {} not in {history:?}", accepted.revision));
    assert_eq!(rev.submitted_by, "cert:CN=jenkins-prod");
    assert!(
        convoyd.logs().contains("who=cert:CN=jenkins-prod"),
        "the audit log names the certificate"
    );

    // (b) viewer: reads, but a submit (even a dry run) is refused naming the role.
    let mut viewer = client(&convoyd, &ca, Some(&dashboard), None).await.unwrap();
    let releases = viewer
        .list_releases(pb::ListReleasesRequest::default())
        .await
        .expect("a viewer certificate may list releases")
        .into_inner();
    assert!(
        releases.releases.iter().any(|r| r.name == "web.shop"),
        "{releases:?}"
    );
    let refused = viewer.submit_release(submit_request(true)).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    assert_eq!(
        refused.message(),
        "cert:CN=dashboard has role viewer; submit needs role deployer"
    );
    // A bearer token sent along decides over the certificate.
    let mut with_token = client(&convoyd, &ca, Some(&dashboard), Some("t-deploy"))
        .await
        .unwrap();
    with_token
        .submit_release(submit_request(true))
        .await
        .expect("the deployer token decides over the viewer certificate");

    // (c) a certificate the CA signed but no mapping names: refused, naming it.
    let stranger = ca.client_cert("laptop-of-bob", Some("staff")).unwrap();
    match list(client(&convoyd, &ca, Some(&stranger), None).await).await {
        Err(Refusal::Status(s)) => {
            assert_eq!(s.code(), Code::Unauthenticated, "{s:?}");
            assert!(
                s.message().contains("CN=laptop-of-bob") && s.message().contains("no role mapping"),
                "{}",
                s.message()
            );
        }
        other => panic!("an unmapped certificate: expected UNAUTHENTICATED, got {other:?}"),
    }

    // (d) no certificate: the client CA is required, the handshake is refused.
    assert_tls_refused(
        list(client(&convoyd, &ca, None, Some("t-deploy")).await).await,
        "no client certificate",
        "CertificateRequired",
    );

    // (e) a certificate with a mapped name, signed by another CA: refused the same way.
    let rogue_ca = TestCa::new("rogue").unwrap();
    let forged = rogue_ca.client_cert("jenkins-prod", Some("ci")).unwrap();
    assert_tls_refused(
        list(client(&convoyd, &ca, Some(&forged), None).await).await,
        "a certificate from another CA",
        "UnknownCA",
    );

    // The refusals were per connection: the coordinator still serves its callers.
    list(client(&convoyd, &ca, Some(&jenkins), None).await)
        .await
        .expect("still serving after the refusals");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optional_client_certificates_let_token_holders_in() {
    let ca = TestCa::new("convoy").unwrap();
    let (convoyd, _dir) = start(&ca, true).await;

    // No certificate and no token: through TLS, then refused by the API.
    match list(client(&convoyd, &ca, None, None).await).await {
        Err(Refusal::Status(s)) => assert_eq!(s.code(), Code::Unauthenticated, "{s:?}"),
        other => panic!("expected UNAUTHENTICATED, got {other:?}"),
    }
    // No certificate, a token: as without mTLS.
    list(client(&convoyd, &ca, None, Some("t-deploy")).await)
        .await
        .expect("a token holder without a certificate");
    // A mapped certificate still carries its role.
    let dashboard = ca.client_cert("dashboard", None).unwrap();
    let mut viewer = client(&convoyd, &ca, Some(&dashboard), None).await.unwrap();
    let refused = viewer.submit_release(submit_request(true)).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    // A certificate that is presented is still verified.
    let forged = TestCa::new("rogue")
        .unwrap()
        .client_cert("jenkins-prod", None)
        .unwrap();
    assert_tls_refused(
        list(client(&convoyd, &ca, Some(&forged), Some("t-deploy")).await).await,
        "a certificate from another CA",
        "UnknownCA",
    );
}

/// Writes `pem` to `dir/name` and returns the path as YAML can hold it.
fn write(dir: &Path, name: &str, pem: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, pem).unwrap();
    p.display().to_string()
}

/// An agent's TLS settings: the coordinator's CA, and its own certificate if any.
/// `name` keeps each agent's files apart (an agent reads them while the next is set up).
fn agent_tls(dir: &Path, name: &str, ca: &TestCa, identity: Option<&CertPair>) -> String {
    let mut yaml = format!(
        "ca_file: {}\n",
        write(dir, &format!("{name}-coordinator-ca.pem"), &ca.cert_pem())
    );
    if let Some(id) = identity {
        yaml.push_str(&format!(
            "tls:\n  client_cert_file: {}\n  client_key_file: {}\n",
            write(dir, &format!("{name}.pem"), &id.cert_pem),
            write(dir, &format!("{name}-key.pem"), &id.key_pem),
        ));
    }
    yaml
}

/// Waits until `agent`'s log contains `what`; the log when it does not in time.
async fn wait_for_log(agent: &AgentProcess, what: &str) -> Result<String, String> {
    let give_up = Instant::now() + Duration::from_secs(30);
    loop {
        let logs = agent.logs();
        if logs.contains(what) {
            return Ok(logs);
        }
        if Instant::now() > give_up {
            return Err(logs);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_get_through_a_required_client_ca_with_a_certificate_only() {
    let ca = TestCa::new("convoy").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!(
        "contexts:\n{CONTEXT}  - {{name: west, region: us-west1, env: dev, cloud: sim, clusterName: west-1}}\n  \
         - {{name: south, region: us-south1, env: dev, cloud: sim, clusterName: south-1}}\n  \
         - {{name: north, region: us-north1, env: dev, cloud: sim, clusterName: north-1}}\n{}auth:\n  \
         certificates:\n    - {{common_name: dashboard, role: viewer}}\n  agents:\n    \
         - {{context: east, token: agent-east, common_name: convoy-agent-east}}\n    - {{context: west, token: agent-west}}\n    \
         - {{context: south, token: agent-south}}\n    \
         - {{context: north, token: agent-north, common_name: convoy-agent-north}}\n",
        tls_section(dir.path(), &ca, false)
    );
    let convoyd = Convoyd::start(&cfg).await.unwrap();
    let url = convoyd.addr.replacen("http://", "https://", 1);

    // Signed by the client CA (and mapped to no role: the agent link goes by the
    // context's token): connected. `start` waits for the agent's /readyz.
    let east_cert = ca
        .client_cert("convoy-agent-east", Some("convoy-agents"))
        .unwrap();
    let east_tls = agent_tls(dir.path(), "east", &ca, Some(&east_cert));
    let east = AgentProcess::start(&url, "east", "agent-east", None, &east_tls)
        .await
        .unwrap();
    // No certificate: refused at the TLS handshake, and the agent says what to set.
    let west = AgentProcess::launch(
        &url,
        "west",
        "agent-west",
        None,
        &agent_tls(dir.path(), "west", &ca, None),
    )
    .unwrap();
    // A certificate from another CA: refused, naming the certificate as the problem.
    let rogue = TestCa::new("rogue").unwrap();
    let forged = rogue.client_cert("convoy-agent-south", None).unwrap();
    let south = AgentProcess::launch(
        &url,
        "south",
        "agent-south",
        None,
        &agent_tls(dir.path(), "south", &ca, Some(&forged)),
    )
    .unwrap();

    // A certificate the CA signed, with the right token, but not the one the context's
    // credential is bound to (east's): refused, naming the certificate it wants.
    let north = AgentProcess::launch(
        &url,
        "north",
        "agent-north",
        None,
        &agent_tls(dir.path(), "north", &ca, Some(&east_cert)),
    )
    .unwrap();
    let north_logs = wait_for_log(
        &north,
        "must present a client certificate with CN=convoy-agent-north",
    )
    .await
    .unwrap_or_else(|logs| panic!("an agent with another context's certificate is not refused:\n{logs}"));
    assert!(north_logs.contains("CN=convoy-agent-east"), "{north_logs}");

    let west_logs = wait_for_log(&west, "requires a client certificate")
        .await
        .unwrap_or_else(|logs| panic!("the refused agent does not say why:\n{logs}"));
    assert!(west_logs.contains("CertificateRequired"), "{west_logs}");
    assert!(
        west_logs.contains("set tls.client_cert_file and tls.client_key_file"),
        "{west_logs}"
    );
    let south_logs = wait_for_log(&south, "refused this agent's client certificate")
        .await
        .unwrap_or_else(|logs| panic!("the forged certificate's agent does not say why:\n{logs}"));
    assert!(south_logs.contains("UnknownCA"), "{south_logs}");
    for (agent, logs) in [(&west, &west_logs), (&south, &south_logs)] {
        assert!(!logs.contains("connected to the coordinator"), "{logs}");
        let ready = convoy_tests::http::request("GET", &format!("{}/readyz", agent.health), &[], None)
            .await
            .unwrap();
        assert_ne!(ready.status, 200, "{} is ready without a session", agent.context);
    }
    // The key never reaches the log.
    let key_line = east_cert.key_pem.lines().nth(1).unwrap();
    assert!(!east.logs().contains(key_line));

    // The coordinator agrees: east connected, west and south never were.
    let dashboard = ca.client_cert("dashboard", None).unwrap();
    let mut clusters = ClusterServiceClient::new(channel(&convoyd, &ca, Some(&dashboard)).await.unwrap());
    let list = clusters
        .list_clusters(pb::ListClustersRequest::default())
        .await
        .expect("a viewer certificate may list clusters")
        .into_inner();
    let connected = |name: &str| {
        list.clusters
            .iter()
            .find(|c| c.context == name)
            .unwrap_or_else(|| panic!("{name} not listed: {list:?}"))
            .agent
            .as_ref()
            .is_some_and(|a| a.connected)
    };
    assert!(connected("east"), "{list:?}");
    assert!(!connected("west"), "{list:?}");
    assert!(!connected("south"), "{list:?}");
    assert!(!connected("north"), "{list:?}");
}

// ---- scoped principals ---------------------------------------------------------------

/// A plaintext client (loopback) sending `token`.
/// The audit entries about `release` that the caller may see.
async fn audit_of(c: &mut Client, release: &str) -> Vec<pb::AuditEntry> {
    c.list_audit(pb::ListAuditRequest {
        release: release.into(),
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner()
    .entries
}

async fn token_client(convoyd: &Convoyd, token: &str) -> Client {
    let channel = Endpoint::from_shared(convoyd.addr.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    ReleaseServiceClient::with_interceptor(channel, Bearer(Some(token.to_string())))
}

/// A release of the test chart: `name` in `namespace`, to `contexts`, its `db` secret
/// at `vault_path` (none when empty), `extra` appended under `spec:`.
fn scoped_release(name: &str, namespace: &str, contexts: &str, vault_path: &str, extra: &str) -> String {
    let secrets = if vault_path.is_empty() {
        String::new()
    } else {
        format!(
            "  secrets:\n    - secret_id: db\n      contexts:\n        - {{name: default, vaultPath: {vault_path}, vaultKey: password}}\n"
        )
    };
    // No metadata.environment: the environment (and so the Vault role) comes from the
    // contexts' registry entries.
    format!(
        "apiVersion: convoy.dev/v1\nkind: Release\nmetadata: {{name: {name}.{namespace}, namespace: {namespace}}}\n\
         spec:\n  chart: {{path: ./web}}\n  values: {{behavior: \"healthy,after=200ms\"}}\n  contexts: [{contexts}]\n\
         {secrets}  health: {{progressDeadline: 1m, minReadyWindow: 1s}}\n{extra}"
    )
}

fn scoped_submit(yaml: String, dry_run: bool) -> pb::SubmitReleaseRequest {
    pb::SubmitReleaseRequest {
        release_yaml: yaml,
        dry_run,
        reason: "scope test".into(),
        ..submit_request(false)
    }
}

fn denied(r: Result<impl std::fmt::Debug, Status>, what: &str, wants: &[&str]) {
    let s = match r {
        Ok(v) => panic!("{what}: expected PERMISSION_DENIED, got {v:?}"),
        Err(s) => s,
    };
    assert_eq!(s.code(), Code::PermissionDenied, "{what}: {s:?}");
    for want in wants {
        assert!(
            s.message().contains(want),
            "{what}: {:?} lacks {want:?}",
            s.message()
        );
    }
}

async fn wait_deployed(c: &mut Client, release: &str, revision: u64) {
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let r = c
            .get_release(pb::GetReleaseRequest {
                release: release.into(),
            })
            .await
            .unwrap()
            .into_inner();
        if r.deployed_revision == revision {
            return;
        }
        assert!(
            Instant::now() < until,
            "{release} never reached revision {revision}: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Tokens bound to a role and a scope, against a real convoyd, simulated agents in dev
/// and prod, and OpenBao: a dev deployer cannot reach prod, a prod Vault path, `adopt`,
/// or another team's release; a dev viewer sees dev only; a dev operator rolls back in
/// dev only; a release spanning environments is refused; the Vault role follows the
/// contexts' registry env; dry runs and diffs are audited and `convoy audit` shows them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scoped_principals_act_only_inside_their_scope() {
    use convoy_tests::openbao::OpenBao;
    let bao = OpenBao::start().await.unwrap();
    bao.mount_kv("kv", 2).await.unwrap();
    bao.kv2_put("kv", "dev/shop/db", serde_json::json!({"password": "dev-pw"}))
        .await
        .unwrap();
    bao.kv2_put("kv", "prod/shop/db", serde_json::json!({"password": "prod-pw"}))
        .await
        .unwrap();
    // The dev environment's Vault token reads dev paths only; the release file cannot
    // pick prod's (it has no metadata.environment at all).
    bao.put_policy(
        "convoy-dev",
        "path \"kv/data/dev/*\" { capabilities = [\"read\"] }",
    )
    .await
    .unwrap();
    let dev_token = bao.create_token(&["convoy-dev"], "1h").await.unwrap();
    let contexts = ["dev-east", "dev-west", "prod-east"];
    let cfg = format!(
        "contexts:\n\
         \x20 - {{name: dev-east, region: us-east1, env: dev, cloud: sim, clusterName: de}}\n\
         \x20 - {{name: dev-west, region: us-west1, env: dev, cloud: sim, clusterName: dw}}\n\
         \x20 - {{name: prod-east, region: us-east1, env: prod, cloud: sim, clusterName: pe}}\n\
         auth:\n  tokens:\n\
         \x20   - {{name: admin, role: admin, token: t-admin}}\n\
         \x20   - {{name: ci-dev, role: deployer, token: t-ci-dev, scope: {{environments: [dev], namespaces: [shop]}}}}\n\
         \x20   - {{name: view-dev, role: viewer, token: t-view-dev, scope: {{environments: [dev]}}}}\n\
         \x20   - {{name: oncall-dev, role: operator, token: t-oncall-dev, scope: {{environments: [dev]}}}}\n\
         \x20 agents:\n{}\
         vault:\n  address: {}\n  auth: {{method: token, token: {}}}\n  require_environment_auth: true\n  environments:\n\
         \x20   dev: {{method: token, token: {dev_token}}}\n    prod: {{method: token, token: {}}}\n\
         secret_paths:\n  default: ['kv/{{env}}/{{namespace}}/']\n\
         heartbeat_seconds: 2\n",
        contexts
            .iter()
            .map(|c| format!("    - {{context: {c}, token: agent-{c}}}\n"))
            .collect::<String>(),
        bao.addr(),
        bao.root_token(),
        bao.root_token(),
    );
    let convoyd = Convoyd::start(&cfg).await.unwrap();
    let logs = convoyd.logs();
    assert!(
        logs.contains("auth.tokens[0] (admin) has no scope"),
        "an unscoped token is warned about at start"
    );
    assert!(!logs.contains("(ci-dev) has no scope"));
    let mut agents = Vec::new();
    for c in contexts {
        agents.push(
            AgentProcess::start(&convoyd.addr, c, &format!("agent-{c}"), None, "")
                .await
                .unwrap(),
        );
    }
    let mut admin = token_client(&convoyd, "t-admin").await;
    let mut ci = token_client(&convoyd, "t-ci-dev").await;
    let mut viewer = token_client(&convoyd, "t-view-dev").await;
    let mut oncall = token_client(&convoyd, "t-oncall-dev").await;

    // Fixtures by the admin: prod's release, and another team's release in dev.
    let api = admin
        .submit_release(scoped_submit(
            scoped_release("api", "shop", "prod-east", "/kv/prod/shop/db", ""),
            false,
        ))
        .await
        .expect("the admin deploys to prod")
        .into_inner();
    let pay = admin
        .submit_release(scoped_submit(
            scoped_release("pay", "payments", "dev-east", "", ""),
            false,
        ))
        .await
        .expect("the admin deploys another team's release")
        .into_inner();

    // (a) The dev deployer: dev, namespace shop, with a dev secret (read with the dev
    // environment's Vault token: the environment came from the registry).
    let web = |extra: &str| scoped_release("web", "shop", "dev-east, dev-west", "/kv/dev/shop/db", extra);
    let dry = ci
        .submit_release(scoped_submit(web(""), true))
        .await
        .expect("a dev deployer dry-runs a dev release")
        .into_inner();
    assert_eq!(dry.rendered.len(), 2, "{dry:?}");
    let diff = ci
        .diff_release(pb::DiffReleaseRequest {
            submit: Some(scoped_submit(web(""), false)),
            timeout_seconds: 30,
        })
        .await
        .expect("a dev deployer diffs a dev release")
        .into_inner();
    assert_eq!(diff.contexts.len(), 2, "{diff:?}");
    let r1 = ci
        .submit_release(scoped_submit(web(""), false))
        .await
        .expect("a dev deployer submits a dev release")
        .into_inner();
    wait_deployed(&mut admin, "web.shop", r1.revision).await;
    let r2 = ci
        .submit_release(scoped_submit(web(""), false))
        .await
        .expect("and again")
        .into_inner();
    wait_deployed(&mut admin, "web.shop", r2.revision).await;
    wait_deployed(&mut admin, "api.shop", api.revision).await;
    wait_deployed(&mut admin, "pay.payments", pay.revision).await;

    // ... but not to prod, naming what was missing (before any secret is read) ...
    denied(
        ci.submit_release(scoped_submit(
            scoped_release("web", "shop", "prod-east", "/kv/prod/shop/db", ""),
            true,
        ))
        .await,
        "a dev deployer to prod",
        &[
            r#"permission denied: token "ci-dev" may deploy to environments [dev]; context prod-east is env prod"#,
        ],
    );
    // ... nor name a prod Vault path from dev (refused before the read: the path does
    // not even exist, and the dev Vault token could not read it) ...
    denied(
        ci.submit_release(scoped_submit(
            scoped_release("web", "shop", "dev-east", "/kv/prod/shop/nothing", ""),
            false,
        ))
        .await,
        "a prod Vault path from dev",
        &[
            "Vault path /kv/prod/shop/nothing",
            "outside what environment dev and namespace shop may read: [kv/dev/shop/]",
        ],
    );
    // ... nor adopt objects (operator) ...
    denied(
        ci.submit_release(scoped_submit(web("  options: {adopt: true}\n"), true))
            .await,
        "adopt by a deployer",
        &[
            "ci-dev has role deployer",
            "spec.options.adopt needs role operator",
        ],
    );
    // ... nor allow a mass deletion, from the file or from the request (operator).
    denied(
        ci.submit_release(scoped_submit(web("  options: {allowMassDeletion: true}\n"), true))
            .await,
        "allowMassDeletion by a deployer",
        &["spec.options.allowMassDeletion needs role operator"],
    );
    denied(
        ci.submit_release(pb::SubmitReleaseRequest {
            allow_mass_deletion: true,
            ..scoped_submit(web(""), true)
        })
        .await,
        "--allow-mass-deletion by a deployer",
        &["submit with allow_mass_deletion (--allow-mass-deletion) needs role operator"],
    );
    // ... nor touch or read another team's release.
    denied(
        ci.submit_release(scoped_submit(
            scoped_release("pay", "payments", "dev-east", "", ""),
            true,
        ))
        .await,
        "another team's release",
        &[r#"token "ci-dev" may deploy to namespaces [shop]; release pay.payments is in namespace payments"#],
    );
    denied(
        ci.get_release(pb::GetReleaseRequest {
            release: "pay.payments".into(),
        })
        .await,
        "reading another team's release",
        &[r#"token "ci-dev" may view namespaces [shop]"#],
    );
    // A release whose contexts span environments is refused for everyone.
    let spanning = admin
        .submit_release(scoped_submit(
            scoped_release("mix", "shop", "dev-east, prod-east", "", ""),
            true,
        ))
        .await
        .unwrap_err();
    assert_eq!(spanning.code(), Code::InvalidArgument, "{spanning:?}");
    assert!(
        spanning
            .message()
            .contains("more than one environment: dev (dev-east) and prod (prod-east)"),
        "{}",
        spanning.message()
    );

    // (b) The dev viewer sees dev only: list filters, get/history/watch/queue refuse.
    let names: Vec<String> = viewer
        .list_releases(pb::ListReleasesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .releases
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(names, ["pay.payments", "web.shop"], "api.shop (prod) is hidden");
    let all = admin
        .list_releases(pb::ListReleasesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.releases.len(), 3);
    let refusal = [r#"token "view-dev" may view environments [dev]; context prod-east is env prod"#];
    let api_req = || pb::GetReleaseRequest {
        release: "api.shop".into(),
    };
    denied(viewer.get_release(api_req()).await, "get", &refusal);
    denied(
        viewer
            .get_history(pb::GetHistoryRequest {
                release: "api.shop".into(),
                limit: 0,
            })
            .await,
        "history",
        &refusal,
    );
    denied(
        viewer
            .watch_release(pb::WatchReleaseRequest {
                release: "api.shop".into(),
                ..Default::default()
            })
            .await
            .map(|_| ()),
        "watch",
        &refusal,
    );
    denied(
        viewer
            .list_queue(pb::ListQueueRequest {
                release: "api.shop".into(),
            })
            .await,
        "queue",
        &refusal,
    );
    viewer
        .get_release(pb::GetReleaseRequest {
            release: "web.shop".into(),
        })
        .await
        .expect("a dev viewer reads a dev release");
    let channel = Endpoint::from_shared(convoyd.addr.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut clusters = ClusterServiceClient::with_interceptor(channel, Bearer(Some("t-view-dev".into())));
    let seen: Vec<String> = clusters
        .list_clusters(pb::ListClustersRequest::default())
        .await
        .unwrap()
        .into_inner()
        .clusters
        .into_iter()
        .map(|c| c.context)
        .collect();
    assert_eq!(seen, ["dev-east", "dev-west"]);

    // (c) The dev operator rolls back in dev, not in prod.
    denied(
        oncall
            .rollback_release(pb::RollbackReleaseRequest {
                release: "api.shop".into(),
                reason: "INC-1".into(),
                ..Default::default()
            })
            .await,
        "a dev operator rolling back prod",
        &[r#"token "oncall-dev" may roll back environments [dev]; context prod-east is env prod"#],
    );
    let back = oncall
        .rollback_release(pb::RollbackReleaseRequest {
            release: "web.shop".into(),
            reason: "INC-2".into(),
            to_revision: r1.revision,
            ..Default::default()
        })
        .await
        .expect("a dev operator rolls back a dev release")
        .into_inner();
    assert_eq!(back.rollback_to, r1.revision);
    wait_deployed(&mut admin, "web.shop", back.revision).await;

    // (d) The audit log: the dry run and the diff, the refusals, the rollback; through
    // the RPC and `convoy audit`.
    let entries = audit_of(&mut ci, "web.shop").await;
    let seen: Vec<(String, String, String)> = entries
        .iter()
        .map(|e| {
            let outcome = e.outcome.split(':').next().unwrap_or_default().to_string();
            (e.who.clone(), e.action.clone(), outcome)
        })
        .collect();
    for want in [
        ("ci-dev", "submit-dry-run", "accepted"),
        ("ci-dev", "diff", "accepted"),
        ("ci-dev", "submit", "accepted"),
        ("ci-dev", "submit-dry-run", "refused"),
        ("ci-dev", "submit", "refused"),
        ("oncall-dev", "rollback", "accepted"),
    ] {
        assert!(
            seen.iter()
                .any(|s| (s.0.as_str(), s.1.as_str(), s.2.as_str()) == want),
            "{want:?} not in {seen:?}"
        );
    }
    // A file that does not parse is audited too, under no release, naming the file.
    let broken = ci
        .submit_release(scoped_submit("kind: Release\nspec: [\n".into(), false))
        .await
        .unwrap_err();
    assert_eq!(broken.code(), Code::InvalidArgument, "{broken:?}");
    let mine = audit_of(&mut ci, "").await;
    assert!(
        mine.iter().any(|e| e.who == "ci-dev"
            && e.release.is_empty()
            && e.outcome.starts_with("refused: web.yaml:")),
        "{mine:?}"
    );
    // A scoped caller sees its own entries and its scope's releases only.
    let prod_entries = audit_of(&mut viewer, "api.shop").await;
    assert!(prod_entries.is_empty(), "{prod_entries:?}");
    let cli = convoy_tests::convoy::binary("convoy").unwrap();
    let out = std::process::Command::new(cli)
        .args([
            "audit",
            "--release",
            "web.shop",
            "--since",
            "1h",
            "-o",
            "json",
            "--server",
            &convoyd.addr,
        ])
        .env("CONVOY_TOKEN", "t-admin")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = json.as_array().expect("a JSON array");
    for action in ["submit-dry-run", "diff", "rollback"] {
        assert!(
            rows.iter()
                .any(|r| r["action"] == action && r["release"] == "web.shop"),
            "{action} not in {json}"
        );
    }
    assert!(
        rows.iter()
            // RFC 3339 UTC with milliseconds: 2026-12-05T04:00:00.123Z
            .all(|r| r["at"]
                .as_str()
                .is_some_and(|t| t.len() == 24 && t.ends_with('Z') && &t[19..20] == ".")),
        "{json}"
    );

    // (e) Limits: a call is authenticated before its body is read, and each RPC takes
    // requests no larger than it needs.
    let mut stranger = token_client(&convoyd, "t-nobody").await;
    let mut huge = scoped_submit(web(""), true);
    huge.chart_archive = vec![0; 8 << 20];
    let refused = stranger.submit_release(huge).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    let big_name = admin
        .get_release(pb::GetReleaseRequest {
            release: "x".repeat(200 << 10),
        })
        .await
        .unwrap_err();
    assert_eq!(big_name.code(), Code::ResourceExhausted, "{big_name:?}");
    assert!(
        big_name.message().contains("GetRelease") && big_name.message().contains("65536 bytes"),
        "{}",
        big_name.message()
    );
    drop(agents);
}

/// Copies `tests/charts/web` into `dir/web` and adds `files` (path, content) to it.
fn web_chart_with(dir: &Path, files: &[(&str, Vec<u8>)]) -> std::path::PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/web");
    let dst = dir.join("web");
    for entry in ["Chart.yaml", "values.yaml"].into_iter().map(String::from).chain(
        std::fs::read_dir(src.join("templates"))
            .unwrap()
            .map(|e| format!("templates/{}", e.unwrap().file_name().to_string_lossy())),
    ) {
        let to = dst.join(&entry);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(src.join(&entry), &to).unwrap();
    }
    for (name, data) in files {
        let to = dst.join(name);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::write(&to, data).unwrap();
    }
    dst
}

/// Rendering cannot stall the coordinator: with `render.time_limit_seconds: 3`, a chart
/// whose nested 8-million-step loops run a loop each fails the submit at its deadline, with a message
/// naming the limit, while `convoy status` keeps answering (each call timed: under a
/// second) and the deployed revision is untouched; a chart that unpacks beyond
/// `render.max_chart_file_mib` (a gzip bomb) and one whose subcharts nest deeper than
/// `render.max_subchart_depth` are refused naming the bound; the failures are audited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runaway_chart_fails_at_its_deadline_while_the_api_answers() {
    let cfg = format!(
        "contexts:\n{CONTEXT}auth:\n  tokens:\n    - {{name: admin, role: admin, token: t-admin}}\n  \
         agents:\n    - {{context: east, token: agent-east}}\n\
         render: {{time_limit_seconds: 3, max_chart_mib: 4, max_chart_file_mib: 1, max_subchart_depth: 3}}\n\
         heartbeat_seconds: 2\n"
    );
    let convoyd = Convoyd::start(&cfg).await.unwrap();
    let _agent = AgentProcess::start(&convoyd.addr, "east", "agent-east", None, "")
        .await
        .unwrap();
    let mut admin = token_client(&convoyd, "t-admin").await;
    let fast = || scoped_submit(scoped_release("web", "shop", "east", "", ""), false);
    let good = admin
        .submit_release(fast())
        .await
        .expect("the web chart deploys")
        .into_inner();
    wait_deployed(&mut admin, "web.shop", good.revision).await;

    let dir = tempfile::tempdir().unwrap();
    let with_chart = |chart: &Path| pb::SubmitReleaseRequest {
        chart_archive: convoy_chart::package_dir(chart).expect("packaging"),
        ..fast()
    };
    // Nested loops of 2,000 x 4,000 steps, each step a 100-step loop: 800 million
    // iterations, a minute or more in any template engine.
    let spin = web_chart_with(
        &dir.path().join("spin"),
        &[(
            "templates/spin.yaml",
            b"{{- range $i := until 2000 }}{{- range $j := until 4000 }}{{- range until 100 }}{{- end }}{{- end }}{{- end }}\n"
                .to_vec(),
        )],
    );
    let mut submitter = admin.clone();
    let runaway = with_chart(&spin);
    let started = Instant::now();
    let submit = tokio::spawn(async move { (submitter.submit_release(runaway).await, started.elapsed()) });
    let cli = convoy_tests::convoy::binary("convoy").unwrap();
    let mut answers = Vec::new();
    while !submit.is_finished() {
        let asked = Instant::now();
        let out = tokio::process::Command::new(&cli)
            .args(["status", "web.shop", "--server", &convoyd.addr])
            .env("CONVOY_TOKEN", "t-admin")
            .output()
            .await
            .unwrap();
        let took = asked.elapsed();
        assert!(
            out.status.success(),
            "convoy status while a chart renders: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("web.shop"));
        answers.push(took);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (result, elapsed) = submit.await.unwrap();
    let refused = result.expect_err("a chart looping 800 million times must not render in 3 s");
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(
        refused.message().contains("render deadline exceeded")
            && refused.message().contains("the render's time limit is 3s")
            && refused.message().contains("spin.yaml"),
        "{}",
        refused.message()
    );
    // It failed at its deadline (not before, not long after).
    assert!(
        elapsed >= Duration::from_secs(3) && elapsed < Duration::from_secs(12),
        "the submit took {elapsed:?}"
    );
    let slowest = answers.iter().max().copied().unwrap_or_default();
    eprintln!(
        "runaway chart refused after {elapsed:?}; {} `convoy status` calls meanwhile, slowest {slowest:?}",
        answers.len()
    );
    assert!(answers.len() >= 3, "status was asked {} times", answers.len());
    assert!(
        slowest < Duration::from_secs(1),
        "convoy status took {slowest:?} while a chart rendered"
    );

    // A gzip bomb: a file of 2 MiB of zeros (a few KiB packed) over a 1 MiB bound.
    let bomb = web_chart_with(&dir.path().join("bomb"), &[("files/zeros", vec![0; 2 << 20])]);
    let refused = admin.submit_release(with_chart(&bomb)).await.unwrap_err();
    assert!(
        refused
            .message()
            .contains("files/zeros unpacks to more than 1 MiB")
            && refused.message().contains("render.max_chart_file_mib"),
        "{}",
        refused.message()
    );
    // Subcharts four levels deep, three allowed.
    let meta = |n: &str| format!("apiVersion: v2\nname: {n}\nversion: 0.1.0\n").into_bytes();
    let deep = web_chart_with(
        &dir.path().join("deep"),
        &[
            ("charts/a/Chart.yaml", meta("a")),
            ("charts/a/charts/b/Chart.yaml", meta("b")),
            ("charts/a/charts/b/charts/c/Chart.yaml", meta("c")),
        ],
    );
    let refused = admin.submit_release(with_chart(&deep)).await.unwrap_err();
    assert!(
        refused.message().contains("subcharts nest deeper than 3 levels"),
        "{}",
        refused.message()
    );

    // Nothing of it reached the cluster or the history; the refusals are audited.
    let r = admin
        .get_release(pb::GetReleaseRequest {
            release: "web.shop".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.deployed_revision, good.revision, "{r:?}");
    let history = admin
        .get_history(pb::GetHistoryRequest {
            release: "web.shop".into(),
            limit: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(history.revisions.len(), 1, "{history:?}");
    let audit = audit_of(&mut admin, "web.shop").await;
    let failed = audit
        .iter()
        .filter(|e| e.action == "submit" && e.outcome.starts_with("failed"))
        .count();
    assert_eq!(failed, 3, "{audit:?}");
}

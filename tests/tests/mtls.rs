//! Client certificates as credentials: a real `convoyd` serving TLS with a client CA and
//! `auth.certificates` mappings, called by tonic clients that present (or do not
//! present) certificates. A mapped certificate acts with its role and is recorded as
//! `cert:CN=...`; an unmapped one is refused naming its subject; one signed by another
//! CA, or none at all, does not get through the TLS handshake (unless
//! `tls.client_cert_optional` lets certificate-less token holders in).

use std::path::Path;

use convoy_proto::v1 as pb;
use convoy_tests::certs::{CertPair, TestCa};
use convoy_tests::convoy::Convoyd;
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
    let url = convoyd.addr.replacen("http://", "https://", 1);
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(server_ca.cert_pem()))
        .domain_name("localhost");
    if let Some(id) = identity {
        tls = tls.identity(Identity::from_pem(&id.cert_pem, &id.key_pem));
    }
    let channel = Endpoint::from_shared(url)
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .map_err(|e| Refusal::Connect(error_chain(&e)))?;
    Ok(ReleaseServiceClient::with_interceptor(
        channel,
        Bearer(token.map(str::to_string)),
    ))
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

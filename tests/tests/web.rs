//! The web status page (`ui.enabled`) in a real browser: headless Chromium driven
//! through chromedriver (WebDriver, `fantoccini`) against a real `convoyd` with three
//! simulated agents in two waves.
//!
//! A viewer logs in and sees the fleet matrix but no action buttons, and the server
//! refuses an action the viewer forges from the page. An operator logs in, watches a
//! rollout go from progressing to healthy live (no reload), sees a crash-looping
//! revision pause the rollout with `CrashLoopBackOff` as the reason, rolls back from the
//! page (reason, confirmation) and finds the rollback, by name, in the audit view.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/install-deps`). With
//! `CONVOY_UI_SCREENSHOTS=1` it saves the main views to `daemon/ui/screenshots/`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use convoy_proto::v1 as pb;
use convoy_tests::convoy::{AgentProcess, Convoyd};
use fantoccini::{Client, ClientBuilder, Locator};
use pb::release_service_client::ReleaseServiceClient;
use serde_json::{Value, json};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

const CONTEXTS: [(&str, &str); 3] = [("east", "us-east1"), ("west", "us-west1"), ("south", "eu-south1")];
const VIEWER: &str = "t-view-3c9e1";
const OPERATOR: &str = "t-oncall-77b2a";
const DEPLOYER: &str = "t-deploy-51d0f";
const PROD_VIEWER: &str = "t-prod-view-0a4c2";

#[derive(Clone)]
struct Bearer(String);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let v = format!("Bearer {}", self.0)
            .parse()
            .map_err(|_| tonic::Status::internal("token"))?;
        req.metadata_mut().insert("authorization", v);
        Ok(req)
    }
}

type Api = ReleaseServiceClient<InterceptedService<Channel, Bearer>>;

fn release(image: &str, behavior: &str, on_failure: &str) -> String {
    format!(
        "apiVersion: convoy.dev/v1\nkind: Release\nmetadata: {{name: web.shop, namespace: shop, environment: dev}}\n\
         spec:\n  chart: {{path: ./web}}\n  values: {{image: \"{image}\", behavior: \"{behavior}\"}}\n\
         \x20 contexts: [east, west, south]\n\
         \x20 strategy: {{waves: [[east], [west, south]], maxFailures: 0, onFailure: {on_failure}, soak: 0s}}\n\
         \x20 health: {{progressDeadline: 1m, minReadyWindow: 500ms}}\n"
    )
}

async fn submit(api: &mut Api, yaml: String, reason: &str) -> pb::SubmitReleaseResponse {
    let chart = Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/web");
    api.submit_release(pb::SubmitReleaseRequest {
        release_yaml: yaml,
        source_name: "web.yaml".into(),
        chart_archive: convoy_chart::package_dir(&chart).expect("packaging the test chart"),
        values_files: vec![],
        reason: reason.into(),
        dry_run: false,
        allow_mass_deletion: false,
    })
    .await
    .unwrap_or_else(|s| panic!("submit refused: {s}"))
    .into_inner()
}

/// Waits (over gRPC) until the release's current operation is final; returns its phase.
async fn settle(api: &mut Api, limit: Duration) -> i32 {
    let deadline = Instant::now() + limit;
    loop {
        let r = api
            .get_release(pb::GetReleaseRequest {
                release: "web.shop".into(),
            })
            .await
            .unwrap()
            .into_inner();
        if let Some(op) = &r.current_operation
            && [pb::OperationPhase::Succeeded, pb::OperationPhase::Failed]
                .iter()
                .any(|p| *p as i32 == op.phase)
        {
            return op.phase;
        }
        assert!(Instant::now() < deadline, "web.shop did not settle: {r:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A program on PATH (or at an absolute path).
fn which(name: &str) -> Option<PathBuf> {
    let p = Path::new(name);
    if p.is_absolute() {
        return p.is_file().then(|| p.to_path_buf());
    }
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

/// chromedriver on a free port, killed on drop.
struct Chromedriver {
    child: Child,
    url: String,
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The browser binaries, or a failure saying how to install them.
fn browser() -> (PathBuf, PathBuf) {
    let driver = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
    let chrome = std::env::var("CHROMIUM").unwrap_or_else(|_| "chromium".into());
    match (which(&driver), which(&chrome)) {
        (Some(d), Some(c)) => (d, c),
        (d, c) => panic!(
            "the web status page test needs headless Chromium and chromedriver: found chromedriver={d:?} chromium={c:?}; \
             install Debian's `chromium` and `chromium-driver` (bash .ci/install-deps), or set CHROMEDRIVER / CHROMIUM"
        ),
    }
}

async fn start_chromedriver(driver: &Path) -> Chromedriver {
    let port = free_port();
    let child = Command::new(driver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", driver.display()));
    let cd = Chromedriver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not listen on {port}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cd
}

async fn session(driver: &Chromedriver, chrome: &Path) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chrome,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1400,1100", "--force-device-scale-factor=1"],
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a WebDriver session with headless Chromium")
}

/// Runs `script` in the page (an expression's value via `return`).
async fn js(b: &Client, script: &str) -> Value {
    b.execute(script, vec![])
        .await
        .unwrap_or_else(|e| panic!("script {script:?}: {e}"))
}

/// What the page shows as text (for failure messages).
async fn visible_text(b: &Client) -> String {
    js(b, "return document.body.innerText")
        .await
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Polls `script` until it returns something other than null/false/""; returns it.
async fn wait_for(b: &Client, what: &str, limit: Duration, script: &str) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let v = js(b, script).await;
        let truthy = !matches!(&v, Value::Null | Value::Bool(false)) && v != json!("");
        if truthy {
            return v;
        }
        if Instant::now() > deadline {
            panic!(
                "the page did not show {what} within {limit:?}; it shows:\n{}",
                visible_text(b).await
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The phase the matrix cell of `context` shows (its `data-phase`, also its class and text).
fn cell(context: &str) -> String {
    format!(
        "document.querySelector('#matrix td.cell[data-release=\"web.shop\"][data-context=\"{context}\"]')"
    )
}

async fn login(b: &Client, base: &str, token: &str) {
    submit_login(b, base, token).await;
    wait_for(
        b,
        "the fleet matrix after login",
        Duration::from_secs(10),
        &format!("return {}", cell("east")),
    )
    .await;
}

/// Fills in and submits the login form.
async fn submit_login(b: &Client, base: &str, token: &str) {
    b.goto(&format!("{base}/ui")).await.unwrap();
    let input = b
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("#login:not(.hidden) #token"))
        .await
        .expect("the login form");
    input.send_keys(token).await.unwrap();
    b.find(Locator::Css("#login-submit"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// Clicks "Log out" and waits for the login form.
async fn logout(b: &Client) {
    b.find(Locator::Css("#logout"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(
        b,
        "the login form after logout",
        Duration::from_secs(10),
        "return !document.getElementById('login').classList.contains('hidden')",
    )
    .await;
}

/// A POST forged from the page's own origin with the page's cookie: (status, body).
async fn forge(b: &Client, path: &str, header: bool) -> (u64, String) {
    let headers = if header {
        "{'Content-Type': 'application/json', 'X-Convoy-Action': '1'}"
    } else {
        "{'Content-Type': 'application/json'}"
    };
    let script = format!(
        "const done = arguments[arguments.length - 1];\
         fetch('{path}', {{method: 'POST', headers: {headers}, body: JSON.stringify({{reason: 'forged'}})}})\
           .then(r => r.text().then(t => done([r.status, t]))).catch(e => done([0, String(e)]));"
    );
    let v = b.execute_async(&script, vec![]).await.unwrap();
    (
        v[0].as_u64().unwrap_or(0),
        v[1].as_str().unwrap_or_default().to_string(),
    )
}

async fn screenshot(b: &Client, name: &str) {
    if std::env::var("CONVOY_UI_SCREENSHOTS").is_ok_and(|v| v == "1") {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../daemon/ui/screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let png = b.screenshot().await.unwrap();
        std::fs::write(dir.join(name), png).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_shows_the_fleet_live_and_operators_roll_back_from_it() {
    let (driver_bin, chrome) = browser();
    let mut cfg = String::from("ui: {enabled: true, session_hours: 1}\nheartbeat_seconds: 2\ncontexts:\n");
    for (c, region) in CONTEXTS {
        cfg.push_str(&format!(
            "  - {{name: {c}, region: {region}, env: dev, cloud: sim, clusterName: {c}-1}}\n"
        ));
    }
    cfg.push_str(&format!(
        "auth:\n  tokens:\n    - {{name: night-viewer, role: viewer, token: {VIEWER}}}\n    \
         - {{name: oncall, role: operator, token: {OPERATOR}}}\n    \
         - {{name: prod-viewer, role: viewer, token: {PROD_VIEWER}, scope: {{environments: [prod]}}}}\n    - {{name: release-bot, role: deployer, token: {DEPLOYER}}}\n  agents:\n"
    ));
    for (c, _) in CONTEXTS {
        cfg.push_str(&format!("    - {{context: {c}, token: a-{c}}}\n"));
    }
    // A smoke-test webhook the gated release below checks before its wave 2.
    let smoke = convoy_tests::webhook::Receiver::start(0).await.unwrap();
    cfg.push_str(&format!(
        "gates:\n  webhooks:\n    - {{name: smoke, url: \"{}\"}}\n",
        smoke.url
    ));
    let convoyd = Convoyd::start(&cfg).await.expect("convoyd starts");
    let mut agents = Vec::new();
    for (c, _) in CONTEXTS {
        agents.push(
            AgentProcess::start(&convoyd.addr, c, &format!("a-{c}"), None, "")
                .await
                .expect("agent starts"),
        );
    }
    let ch = Channel::from_shared(convoyd.addr.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut api = ReleaseServiceClient::with_interceptor(ch, Bearer(DEPLOYER.into()));
    submit(
        &mut api,
        release("web:1.0", "healthy,after=200ms", "pause"),
        "first install",
    )
    .await;
    let phase = settle(&mut api, Duration::from_secs(30)).await;
    assert_eq!(
        phase,
        pb::OperationPhase::Succeeded as i32,
        "the first install succeeded"
    );

    let driver = start_chromedriver(&driver_bin).await;
    let b = session(&driver, &chrome).await;
    let base = convoyd.metrics.clone();

    // No anonymous access: the API answers 401 and the page shows the login form.
    b.goto(&format!("{base}/ui")).await.unwrap();
    wait_for(
        &b,
        "the login form",
        Duration::from_secs(10),
        "return !document.getElementById('login').classList.contains('hidden')",
    )
    .await;
    let (status, body) = {
        let v = b
            .execute_async(
                "const done = arguments[0]; fetch('/ui/api/fleet').then(r => r.text().then(t => done([r.status, t])));",
                vec![],
            )
            .await
            .unwrap();
        (v[0].as_u64().unwrap(), v[1].as_str().unwrap().to_string())
    };
    assert_eq!(status, 401, "fleet without a session: {body}");
    // A wrong token is refused on the form.
    b.find(Locator::Css("#token"))
        .await
        .unwrap()
        .send_keys("not-a-token")
        .await
        .unwrap();
    b.find(Locator::Css("#login-submit"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let err = wait_for(
        &b,
        "the login error",
        Duration::from_secs(10),
        "const t = document.getElementById('login-error').textContent; return /token/.test(t) && t",
    )
    .await;
    assert!(
        err.as_str().unwrap().contains("unknown or revoked token"),
        "{err}"
    );

    // The viewer: the matrix, every context healthy at r1, and no action buttons.
    login(&b, &base, VIEWER).await;
    for (c, region) in CONTEXTS {
        let v = wait_for(&b, &format!("{c} healthy"), Duration::from_secs(10), &format!(
            "const e = {}; return e && e.dataset.phase === 'Healthy' && e.classList.contains('ph-healthy') && e.innerText", cell(c)
        )).await;
        assert!(v.as_str().unwrap().contains("r1"), "{c}: {v}");
        let header = js(
            &b,
            &format!("return document.querySelector('#matrix th[data-context=\"{c}\"]').innerText"),
        )
        .await;
        assert!(header.as_str().unwrap().contains(region), "{header}");
    }
    assert_eq!(
        js(&b, "return document.getElementById('who').textContent").await,
        json!("night-viewer (viewer)")
    );
    let actions = b.find(Locator::Css("#actions")).await.unwrap();
    assert!(
        !actions.is_displayed().await.unwrap(),
        "a viewer sees no action buttons"
    );
    assert!(
        !b.find(Locator::Css("#act-rollback"))
            .await
            .unwrap()
            .is_displayed()
            .await
            .unwrap()
    );
    // The session cookie is HttpOnly (scripts cannot read it), and no token is in the page.
    assert_eq!(js(&b, "return document.cookie").await, json!(""));
    assert!(!b.source().await.unwrap().contains(VIEWER));
    // Forged actions: the server refuses the viewer naming the role, and anyone without the header.
    let (status, body) = forge(&b, "/ui/api/releases/web.shop/rollback", true).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("night-viewer has role viewer") && body.contains("needs role operator"),
        "{body}"
    );
    let (status, body) = forge(&b, "/ui/api/releases/web.shop/pause", false).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("X-Convoy-Action"), "{body}");
    screenshot(&b, "fleet-matrix.png").await;

    // The session cookie alone is the credential (as another client would replay it)...
    let session = b.get_named_cookie("convoy_session").await.unwrap();
    let cookie = format!("convoy_session={}", session.value());
    let fleet_url = format!("{base}/ui/api/fleet");
    let r = convoy_tests::http::request("GET", &fleet_url, &[("cookie", &cookie)], None)
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body.contains("web.shop") && !r.body.contains(VIEWER),
        "{}",
        r.body
    );
    // ...until logout, which ends it server-side too.
    logout(&b).await;
    let r = convoy_tests::http::request("GET", &fleet_url, &[("cookie", &cookie)], None)
        .await
        .unwrap();
    assert_eq!(r.status, 401, "a logged-out session still works: {}", r.body);

    // A viewer scoped to prod sees neither the dev release, nor the dev contexts, nor their audit.
    submit_login(&b, &base, PROD_VIEWER).await;
    wait_for(
        &b,
        "an empty fleet for the prod viewer",
        Duration::from_secs(10),
        "return !document.getElementById('fleet-empty').classList.contains('hidden')",
    )
    .await;
    let shown = js(
        &b,
        "return [document.querySelectorAll('#matrix td.cell, #matrix th[data-context], #audit-table tbody tr').length, document.body.innerText]",
    )
    .await;
    assert_eq!(shown[0], json!(0), "{}", shown[1]);
    assert!(!shown[1].as_str().unwrap().contains("web.shop"), "{}", shown[1]);
    let v = b
        .execute_async(
            "const done = arguments[0]; fetch('/ui/api/releases/web.shop/history').then(r => r.text().then(t => done([r.status, t])));",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(v[0], json!(403), "{v}");
    assert!(v[1].as_str().unwrap().contains("prod-viewer"), "{v}");
    logout(&b).await;

    // The operator: buttons, and a rollout that the page follows live.
    login(&b, &base, OPERATOR).await;
    assert!(
        b.find(Locator::Css("#act-rollback"))
            .await
            .unwrap()
            .is_displayed()
            .await
            .unwrap()
    );
    js(&b, "window.__noReload = 'still here'; return true").await;
    let r2 = submit(
        &mut api,
        release("web:2.0", "healthy,after=3s", "pause"),
        "ship 2.0",
    )
    .await;
    assert_eq!(r2.revision, 2);
    let seen = wait_for(&b, "east progressing", Duration::from_secs(15), &format!(
        "const e = {}; return e && ['Dispatched','Applying','Progressing'].includes(e.dataset.phase) && e.className", cell("east")
    )).await;
    assert!(!seen.as_str().unwrap().contains("ph-healthy"), "{seen}");
    wait_for(&b, "the rollout succeeded", Duration::from_secs(30), "const p = document.getElementById('op-phase'); return p && p.dataset.phase === 'Succeeded' && /deploy r2/.test(document.getElementById('op-summary').innerText)").await;
    for (c, _) in CONTEXTS {
        let v = wait_for(&b, &format!("{c} healthy at r2"), Duration::from_secs(10), &format!(
            "const e = {}; return e && e.classList.contains('ph-healthy') && /r2/.test(e.innerText) && e.innerText", cell(c)
        )).await;
        assert!(v.as_str().unwrap().contains("Healthy"), "{v}");
    }
    assert_eq!(
        js(&b, "return window.__noReload").await,
        json!("still here"),
        "the page updated without a reload"
    );

    // A crash-looping revision: the first wave fails, the rollout pauses, the page says why.
    let r3 = submit(
        &mut api,
        release("web:3.0", "crashloop,after=300ms", "pause"),
        "ship 3.0",
    )
    .await;
    assert_eq!(r3.revision, 3);
    wait_for(
        &b,
        "the rollout paused",
        Duration::from_secs(40),
        "const p = document.getElementById('op-phase'); return p && p.dataset.phase === 'Paused'",
    )
    .await;
    let reason = wait_for(&b, "east's failure reason", Duration::from_secs(10),
        "const r = document.querySelector('#op-contexts tr[data-context=\"east\"] .ctx-message'); return r && /CrashLoopBackOff/.test(r.innerText) && r.innerText").await;
    assert!(reason.as_str().unwrap().contains("CrashLoopBackOff"), "{reason}");
    let seg = js(
        &b,
        "return document.querySelector('#waves .seg[data-context=\"east\"]').className",
    )
    .await;
    assert!(
        seg.as_str().unwrap().contains("ph-failed"),
        "the wave timeline shows east failed: {seg}"
    );
    let later = js(
        &b,
        "return document.querySelector('#waves .seg[data-context=\"west\"]').dataset.phase",
    )
    .await;
    assert_eq!(later, json!("Pending"), "the second wave did not start");
    screenshot(&b, "operation-failure.png").await;

    // Roll back from the page: a reason is required, then confirmed.
    b.find(Locator::Css("#act-rollback"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(
        &b,
        "the rollback dialog",
        Duration::from_secs(5),
        "return document.getElementById('confirm').open",
    )
    .await;
    assert_eq!(
        js(&b, "return document.getElementById('confirm-preempt').checked").await,
        json!(true)
    );
    // Proposed: the last revision every context reached healthy (not r1, the core's "previous").
    assert_eq!(
        js(&b, "return document.getElementById('confirm-target').value").await,
        json!("2")
    );
    b.find(Locator::Css("#confirm-ok"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let err = wait_for(
        &b,
        "the reason prompt",
        Duration::from_secs(5),
        "return document.getElementById('confirm-error').textContent",
    )
    .await;
    assert!(err.as_str().unwrap().contains("needs a reason"), "{err}");
    b.find(Locator::Css("#confirm-reason"))
        .await
        .unwrap()
        .send_keys("INC-7: 3.0 crashloops in east")
        .await
        .unwrap();
    b.find(Locator::Css("#confirm-ok"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let notice = wait_for(
        &b,
        "the rollback accepted",
        Duration::from_secs(10),
        "const n = document.getElementById('notice'); return n.className === 'ok' && n.innerText",
    )
    .await;
    assert!(
        notice
            .as_str()
            .unwrap()
            .contains("Rollback of web.shop to r2 accepted: revision 4"),
        "{notice}"
    );
    wait_for(&b, "the rollback succeeded", Duration::from_secs(40), "const p = document.getElementById('op-phase'); return p && p.dataset.phase === 'Succeeded' && /rollback to r2/.test(document.getElementById('op-summary').innerText)").await;
    for (c, _) in CONTEXTS {
        wait_for(
            &b,
            &format!("{c} rolled back, at r4 (the rollback's revision, r2's objects)"),
            Duration::from_secs(10),
            &format!(
                "const e = {}; return e && e.dataset.phase === 'RolledBack' && e.classList.contains('ph-rolledback') && /\\br4\\b/.test(e.innerText)",
                cell(c)
            ),
        )
        .await;
    }
    // History lists the rollback; the audit view names the operator and the reason.
    wait_for(&b, "revision 4 in the history", Duration::from_secs(10),
        "const r = document.querySelector('#history-table tr[data-revision=\"4\"]'); return r && /Rollback to r2/.test(r.innerText)").await;
    // What each revision deployed: r3's image and what changed against r2; the
    // rollback (r4) ships r2's image again.
    let r3 = js(&b, "const r = document.querySelector('#history-table tr[data-revision=\"3\"]'); return [r.querySelector('.images').innerText, r.querySelector('.values').innerText]").await;
    assert_eq!(r3[0], json!("Deployment/web web: web:3.0"), "{r3}");
    let changed = r3[1].as_str().unwrap_or_default();
    assert!(
        changed.contains("image: \"web:2.0\" -> \"web:3.0\"") && changed.contains("behavior:"),
        "{r3}"
    );
    let r4 = js(
        &b,
        "return document.querySelector('#history-table tr[data-revision=\"4\"] .images').innerText",
    )
    .await;
    assert_eq!(r4, json!("Deployment/web web: web:2.0"));
    let audit = wait_for(&b, "the rollback in the audit log", Duration::from_secs(10),
        "const r = document.querySelector('#audit-table tr[data-action=\"rollback\"][data-who=\"oncall\"]'); return r && r.innerText").await;
    let audit = audit.as_str().unwrap();
    assert!(
        audit.contains("INC-7: 3.0 crashloops in east") && audit.contains("accepted"),
        "{audit}"
    );
    // The viewer's refused attempt is in the audit log too.
    let refused = js(&b, "return [...document.querySelectorAll('#audit-table tr[data-who=\"night-viewer\"]')].map(r => r.innerText).join('\\n')").await;
    assert!(refused.as_str().unwrap().contains("refused"), "{refused}");
    assert_eq!(js(&b, "return window.__noReload").await, json!("still here"));

    // An approval gate, answered from the page: the smoke-test webhook passes, then the
    // rollout waits after wave 1, the operator sees "Approve wave 2", confirms with a
    // reason, and wave 2 runs.
    let gated = release("web:5.0", "healthy,after=200ms", "rollback").replace(
        "soak: 0s}",
        "soak: 0s, approval: {beforeWaves: [2], deadline: 5m}, gates: [{name: smoke, beforeWaves: [2], webhook: {name: smoke}}]}",
    );
    submit(&mut api, gated, "gated from the page").await;
    wait_for(&b, "the approve button", Duration::from_secs(40),
        "const a = document.getElementById('act-approve'); return a && !a.classList.contains('hidden') && a.textContent === 'Approve wave 2' && /waiting for an approval to start wave 2/.test(document.getElementById('op-message').innerText)").await;
    let gate = js(&b, "const g = document.querySelector('#op-summary .gate[data-gate=\"webhook gate smoke\"]'); return g && g.dataset.state + ': ' + g.innerText").await;
    assert_eq!(gate, json!("PASSED: webhook gate smoke before wave 2: PASSED"));
    assert_eq!(smoke.bodies().len(), 1, "the webhook was called once");
    screenshot(&b, "approval-gate.png").await;
    b.find(Locator::Css("#act-approve"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(
        &b,
        "the approval dialog",
        Duration::from_secs(5),
        "return document.getElementById('confirm').open",
    )
    .await;
    b.find(Locator::Css("#confirm-reason"))
        .await
        .unwrap()
        .send_keys("canary east looks good")
        .await
        .unwrap();
    b.find(Locator::Css("#confirm-ok"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&b, "the gated rollout succeeded", Duration::from_secs(40),
        "const p = document.getElementById('op-phase'); return p && p.dataset.phase === 'Succeeded' && /deploy r5/.test(document.getElementById('op-summary').innerText) && document.getElementById('act-approve').classList.contains('hidden')").await;
    let approved = wait_for(&b, "the approval in the audit log", Duration::from_secs(10),
        "const r = document.querySelector('#audit-table tr[data-action=\"approve\"]'); return r && r.innerText").await;
    let approved = approved.as_str().unwrap();
    assert!(
        approved.contains("oncall")
            && approved.contains("canary east looks good")
            && approved.contains("accepted: wave 2"),
        "{approved}"
    );

    b.close().await.unwrap();
    drop(agents);
}

//! The live web status page (`ui.enabled`), served under `/ui` on the metrics/health
//! listener: the fleet matrix (releases x contexts), the current rollout's waves, each
//! release's history and the audit log, refreshed live through Server-Sent Events; and
//! pause, resume, abort, approve or refuse a gated wave, and rollback for operators.
//!
//! Authentication is the API's: the login form posts an API token, checked by the same
//! [`Authenticator`]; on success the browser gets a random session id in an `HttpOnly`,
//! `SameSite=Strict` cookie (never the token), mapped here to the [`Principal`] until it
//! expires. Reads show what the API shows the principal (its scope, masked values);
//! actions go through the core's own checked entry points, which enforce role and scope
//! and write the audit log. Every POST also needs the `X-Convoy-Action: 1` header, which
//! a cross-site form cannot send.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use rand::RngCore as _;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::auth::{Authenticator, Principal, Role};
use crate::core::{Control, Coordinator, CoreError, ReleaseView};
use crate::model::{Operation, RevisionRecord};

/// The page: one HTML file, inline CSS and script, nothing fetched from elsewhere.
const PAGE: &str = include_str!("page.html");
/// The session cookie's name.
const COOKIE: &str = "convoy_session";
/// The header every POST must carry (the CSRF guard besides `SameSite=Strict`).
const ACTION_HEADER: &str = "x-convoy-action";
/// Live change notices are coalesced to at most one per this interval per page.
const COALESCE: Duration = Duration::from_millis(300);
/// At most this many live sessions; a login beyond it drops the oldest.
const MAX_SESSIONS: usize = 10_000;
/// How many audit entries the page gets (the newest).
const AUDIT_LIMIT: usize = 500;

/// A refusal, ready to send (boxed: a response is large).
type Refusal = Box<Response>;

struct Session {
    who: Principal,
    expires: Instant,
}

/// The page's state: the core, the API's authenticator, the sessions.
#[derive(Clone)]
pub struct Ui {
    core: Coordinator,
    auth: Authenticator,
    sessions: Arc<Mutex<HashMap<String, Session>>>,
    ttl: Duration,
    /// Bumped on every committed operation change.
    changes: tokio::sync::watch::Receiver<u64>,
    csp: Arc<str>,
}

impl Ui {
    /// The page for `core`, logging in with `auth`; sessions last `session_hours`.
    /// Spawns the task that turns operation changes into change notices.
    pub fn new(core: Coordinator, auth: Authenticator, session_hours: u32) -> Self {
        let (tx, changes) = tokio::sync::watch::channel(0u64);
        let mut ops = core.subscribe_operations();
        tokio::spawn(async move {
            while ops.recv().await.is_some() {
                tx.send_modify(|n| *n += 1);
            }
        });
        Ui {
            core,
            auth,
            sessions: Arc::default(),
            ttl: Duration::from_secs(u64::from(session_hours) * 3600),
            changes,
            csp: content_security_policy(PAGE).into(),
        }
    }

    /// The `/ui` routes.
    pub fn router(self) -> Router {
        Router::new()
            .route("/ui", get(page))
            .route("/ui/", get(page))
            .route("/ui/login", post(login))
            .route("/ui/logout", post(logout))
            .route("/ui/api/me", get(me))
            .route("/ui/api/fleet", get(fleet))
            .route("/ui/api/releases/{release}/history", get(history))
            .route("/ui/api/audit", get(audit))
            .route("/ui/api/events", get(events))
            .route("/ui/api/releases/{release}/{action}", post(act))
            .with_state(self)
    }

    /// The principal of a request: its live session, else `anonymous` when
    /// `auth.allow_anonymous` (development only), else none.
    fn principal(&self, headers: &HeaderMap) -> Result<Principal, Refusal> {
        if let Some(id) = session_id(headers) {
            let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
            match sessions.get(&id) {
                Some(s) if s.expires > Instant::now() => return Ok(s.who.clone()),
                Some(_) => {
                    sessions.remove(&id);
                }
                None => {}
            }
        }
        if self.auth.allows_anonymous() {
            return self
                .auth
                .authenticate(None)
                .map_err(|e| Box::new(error(StatusCode::UNAUTHORIZED, &e.to_string())));
        }
        Err(Box::new(error(
            StatusCode::UNAUTHORIZED,
            "not logged in (or the session expired): log in with an API token",
        )))
    }

    fn registry(&self) -> &std::collections::BTreeMap<String, crate::core::ContextInfo> {
        self.core.registry()
    }
}

/// `script-src` allows exactly the page's own inline script, by its SHA-256.
fn content_security_policy(page: &str) -> String {
    let script = page
        .split_once("<script>")
        .and_then(|(_, rest)| rest.split_once("</script>"))
        .map_or("", |(s, _)| s);
    let digest = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(script.as_bytes()));
    format!(
        "default-src 'none'; script-src 'sha256-{digest}'; style-src 'unsafe-inline'; connect-src 'self'; \
         img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
}

/// The session id in the request's `Cookie` header.
fn session_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body.to_string(),
    )
        .into_response()
}

fn error(status: StatusCode, message: &str) -> Response {
    json_response(status, &json!({ "error": message }))
}

fn core_error(e: CoreError) -> Response {
    use crate::prepare::PrepareError;
    let status = match e {
        CoreError::NotFound { .. } => StatusCode::NOT_FOUND,
        CoreError::Invalid(_) | CoreError::Prepare(PrepareError::Invalid(_)) => StatusCode::BAD_REQUEST,
        CoreError::Denied(_) | CoreError::Prepare(PrepareError::Denied(_)) => StatusCode::FORBIDDEN,
        CoreError::FailedPrecondition(_) | CoreError::Prepare(_) => StatusCode::CONFLICT,
        CoreError::Store { .. } | CoreError::Thread(_) => StatusCode::INTERNAL_SERVER_ERROR,
        CoreError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
    };
    error(status, &e.to_string())
}

/// Refuses a POST without the action header.
fn check_action_header(headers: &HeaderMap) -> Result<(), Refusal> {
    match headers.get(ACTION_HEADER) {
        Some(v) if v == "1" => Ok(()),
        _ => Err(Box::new(error(
            StatusCode::FORBIDDEN,
            "missing the X-Convoy-Action: 1 header (actions are only taken from the page)",
        ))),
    }
}

async fn page(State(ui): State<Ui>) -> Response {
    let mut r = (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        PAGE,
    )
        .into_response();
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&ui.csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    r
}

#[derive(Deserialize)]
struct LoginBody {
    token: String,
}

async fn login(State(ui): State<Ui>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(r) = check_action_header(&headers) {
        return *r;
    }
    let Ok(LoginBody { token }) = serde_json::from_slice(&body) else {
        return error(StatusCode::BAD_REQUEST, "expected {\"token\": \"...\"}");
    };
    if token.trim().is_empty() {
        return error(StatusCode::UNAUTHORIZED, "enter an API token");
    }
    let who = match ui
        .auth
        .authenticate_call(Some(&format!("Bearer {}", token.trim())), None)
    {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "web status page: login refused");
            return error(StatusCode::UNAUTHORIZED, &e.to_string());
        }
    };
    let mut raw = [0u8; 32];
    rand::rng().fill_bytes(&mut raw);
    let id: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    {
        let now = Instant::now();
        let mut sessions = ui.sessions.lock().unwrap_or_else(|e| e.into_inner());
        sessions.retain(|_, s| s.expires > now);
        if sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(k, _)| k.clone())
        {
            sessions.remove(&oldest);
        }
        sessions.insert(
            id.clone(),
            Session {
                who: who.clone(),
                expires: now + ui.ttl,
            },
        );
    }
    tracing::info!(who = %who.name, role = who.role.as_str(), "web status page: logged in");
    let cookie = format!(
        "{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/ui; Max-Age={}",
        ui.ttl.as_secs()
    );
    let mut r = json_response(StatusCode::OK, &principal_json(&who, false));
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

async fn logout(State(ui): State<Ui>, headers: HeaderMap) -> Response {
    if let Err(r) = check_action_header(&headers) {
        return *r;
    }
    if let Some(id) = session_id(&headers) {
        ui.sessions.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
    }
    let mut r = json_response(StatusCode::OK, &json!({ "logged_out": true }));
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("convoy_session=; HttpOnly; SameSite=Strict; Path=/ui; Max-Age=0"),
    );
    r
}

fn principal_json(who: &Principal, anonymous: bool) -> Value {
    json!({
        "name": who.name,
        "role": who.role.as_str(),
        "scoped": who.scope.is_some(),
        "may_operate": who.role >= Role::Operator,
        "anonymous": anonymous,
    })
}

async fn me(State(ui): State<Ui>, headers: HeaderMap) -> Response {
    match ui.principal(&headers) {
        Ok(who) => {
            let anonymous = session_id(&headers).is_none_or(|id| {
                !ui.sessions
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .contains_key(&id)
            });
            json_response(StatusCode::OK, &principal_json(&who, anonymous))
        }
        Err(r) => *r,
    }
}

fn phase_name<T: std::fmt::Debug>(p: T) -> String {
    format!("{p:?}")
}

fn operation_json(op: &Operation, regions: &HashMap<String, String>) -> Value {
    let waves: Vec<Value> = op
        .plan
        .waves
        .iter()
        .enumerate()
        .map(|(i, wave)| {
            let contexts: Vec<Value> = wave
                .iter()
                .map(|c| match op.contexts.get(c) {
                    Some(s) => json!({
                        "context": c,
                        "region": regions.get(c).cloned().unwrap_or_default(),
                        "phase": phase_name(s.phase),
                        "ready": s.ready,
                        "desired": s.desired,
                        "message": s.message,
                    }),
                    None => {
                        json!({ "context": c, "phase": "Pending", "ready": 0, "desired": 0, "message": "" })
                    }
                })
                .collect();
            json!({ "index": i, "contexts": contexts })
        })
        .collect();
    json!({
        "id": op.id,
        "kind": phase_name(op.kind),
        "phase": phase_name(op.phase),
        "revision": op.revision,
        "rollback_to": op.rollback_to,
        "requested_by": op.requested_by,
        "reason": op.reason,
        "message": op.message,
        "current_wave": op.current_wave,
        "paused": op.paused,
        "awaiting_approval_wave": op.awaiting_approval.map(|a| a.wave + 1),
        "canary": op.canary_status(),
        "gates": op.gate_states().into_iter().map(|(at, state)| {
            let (wave, g) = (at.wave, at.gate);
            let measured = op.verifying.as_ref().filter(|v| v.wave == wave && v.gate == g && v.step == at.step);
            json!({
                "name": op.plan.gates[g].title(),
                "before_wave": wave + 1,
                "canary_step": at.step.map(|k| k + 1),
                "state": state.name(),
                "taken": measured.map_or(0, |v| v.measurements.len()),
                "wanted": op.plan.gates[g].limits().0,
                "last": measured.and_then(|v| v.measurements.last()).map(|m| m.detail.clone()),
            })
        }).collect::<Vec<_>>(),
        "created_at": op.created_at,
        "started_at": op.started_at,
        "finished_at": op.finished_at,
        "on_failure": phase_name(op.plan.on_failure),
        "waves": waves,
    })
}

fn release_json(v: &ReleaseView, regions: &HashMap<String, String>) -> Value {
    let r = &v.record;
    let contexts: Vec<Value> = v
        .contexts
        .iter()
        .map(|(s, region, connected)| {
            json!({
                "context": s.context,
                "region": region,
                "connected": connected,
                "phase": phase_name(s.phase),
                "revision": r.deployed.get(&s.context).copied(),
                "ready": s.ready,
                "desired": s.desired,
                "message": s.message,
                "wave": s.wave,
            })
        })
        .collect();
    json!({
        "name": r.name,
        "namespace": r.namespace,
        "environment": r.environment,
        "latest_revision": r.latest_revision,
        "deployed_revision": v.deployed_revision,
        "running": v.running,
        "queued": v.queued,
        "contexts": contexts,
        "operation": v.operation.as_ref().map(|op| operation_json(op, regions)),
    })
}

async fn fleet(State(ui): State<Ui>, headers: HeaderMap) -> Response {
    let who = match ui.principal(&headers) {
        Ok(w) => w,
        Err(r) => return *r,
    };
    let views = match ui.core.releases().await {
        Ok(v) => v,
        Err(e) => return core_error(e),
    };
    let clusters = match ui.core.clusters().await {
        Ok(c) => c,
        Err(e) => return core_error(e),
    };
    let regions: HashMap<String, String> = ui
        .registry()
        .values()
        .map(|c| (c.name.clone(), c.region.clone()))
        .collect();
    let contexts: Vec<Value> = clusters
        .iter()
        .filter(|c| who.sees_context(&c.info))
        .map(|c| {
            json!({
                "name": c.info.name,
                "region": c.info.region,
                "env": c.info.env,
                "connected": c.connected,
            })
        })
        .collect();
    let releases: Vec<Value> = views
        .iter()
        .filter(|v| who.may_view(v, ui.registry()).is_ok())
        .map(|v| release_json(v, &regions))
        .collect();
    json_response(
        StatusCode::OK,
        &json!({ "contexts": contexts, "releases": releases }),
    )
}

/// A revision for the page; `previous` (the one before it) for what its values changed.
fn revision_json(r: &RevisionRecord, previous: Option<&RevisionRecord>) -> Value {
    let changes = crate::deployed::values_changed(r, previous);
    let outcomes: Vec<Value> = r
        .outcomes
        .iter()
        .map(|o| {
            json!({
                "context": o.context,
                "phase": phase_name(o.phase),
                "message": o.message,
                "duration_ms": o.duration_ms,
            })
        })
        .collect();
    json!({
        "number": r.number,
        "kind": phase_name(r.kind),
        "rollback_to": r.rollback_to,
        "operation_id": r.operation_id,
        "submitted_by": r.submitted_by,
        "reason": r.reason,
        "submitted_at": r.submitted_at,
        "chart": format!("{} {}", r.chart_name, r.chart_version),
        "phase": phase_name(r.phase),
        "contexts": r.contexts,
        "outcomes": outcomes,
        "images": r.images.iter().map(|i| {
            let at = if i.contexts.is_empty() { String::new() } else { format!(" [{}]", i.contexts.join(", ")) };
            format!("{} {}: {}{at}", i.workload, i.container, i.image)
        }).collect::<Vec<_>>(),
        "values_changed": changes.into_iter().map(|(ctx, c)| {
            let side = |v: Option<Value>| v.map_or_else(|| "(absent)".to_string(), |v| v.to_string());
            let at = if ctx.is_empty() { String::new() } else { format!("[{ctx}] ") };
            format!("{at}{}: {} -> {}", c.path, side(c.before), side(c.after))
        }).collect::<Vec<_>>(),
    })
}

/// Refuses unless `who` may view `release` (NOT_FOUND as for anyone when it does not exist).
async fn check_view(ui: &Ui, who: &Principal, release: &str) -> Result<(), Refusal> {
    let v = ui
        .core
        .release(release.to_string())
        .await
        .map_err(|e| Box::new(core_error(e)))?;
    who.may_view(&v, ui.registry())
        .map_err(|e| Box::new(error(StatusCode::FORBIDDEN, &e.to_string())))
}

async fn history(State(ui): State<Ui>, headers: HeaderMap, Path(release): Path<String>) -> Response {
    let who = match ui.principal(&headers) {
        Ok(w) => w,
        Err(r) => return *r,
    };
    if let Err(r) = check_view(&ui, &who, &release).await {
        return *r;
    }
    match ui.core.history(release).await {
        Ok(revs) => json_response(
            StatusCode::OK,
            &json!({ "revisions": revs.iter().enumerate().map(|(i, r)| revision_json(r, revs.get(i + 1))).collect::<Vec<_>>() }),
        ),
        Err(e) => core_error(e),
    }
}

#[derive(Deserialize)]
struct AuditQuery {
    #[serde(default)]
    release: Option<String>,
}

async fn audit(State(ui): State<Ui>, headers: HeaderMap, Query(q): Query<AuditQuery>) -> Response {
    let who = match ui.principal(&headers) {
        Ok(w) => w,
        Err(r) => return *r,
    };
    let views = if who.scope.is_some() {
        match ui.core.releases().await {
            Ok(v) => v,
            Err(e) => return core_error(e),
        }
    } else {
        Vec::new()
    };
    let entries = match ui.core.audit().await {
        Ok(e) => e,
        Err(e) => return core_error(e),
    };
    let mut out: Vec<Value> = entries
        .iter()
        .filter(|e| {
            q.release
                .as_deref()
                .is_none_or(|r| r.is_empty() || e.release == r)
        })
        .filter(|e| who.may_read_audit(e, &views, ui.registry()))
        .map(|e| {
            json!({
                "seq": e.seq,
                "at": e.at,
                "who": e.who,
                "action": e.action,
                "release": e.release,
                "revision": e.revision,
                "operation_id": e.operation_id,
                "reason": e.reason,
                "outcome": e.outcome,
            })
        })
        .collect();
    if out.len() > AUDIT_LIMIT {
        out.drain(..out.len() - AUDIT_LIMIT);
    }
    out.reverse();
    json_response(StatusCode::OK, &json!({ "entries": out }))
}

/// A change notice whenever an operation changes (coalesced): the page refetches what
/// it shows. The notice carries no data, so it tells a scoped viewer nothing about
/// releases outside its scope beyond that something changed. Ends when the session does.
async fn events(State(ui): State<Ui>, headers: HeaderMap) -> Response {
    if let Err(r) = ui.principal(&headers) {
        return *r;
    }
    let mut changes = ui.changes.clone();
    changes.mark_unchanged();
    let stream = futures::stream::unfold((ui, headers, changes), |(ui, headers, mut changes)| async move {
        changes.changed().await.ok()?;
        tokio::time::sleep(COALESCE).await;
        let seq = *changes.borrow_and_update();
        ui.principal(&headers).ok()?;
        let event = Event::default().event("change").data(seq.to_string());
        Some((Ok::<Event, Infallible>(event), (ui, headers, changes)))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

#[derive(Deserialize)]
struct ActionBody {
    #[serde(default)]
    reason: String,
    /// Rollback only: the revision to restore; 0 or absent: the previous one.
    #[serde(default)]
    to_revision: u64,
    /// Rollback only: abort the running (or paused) operation first instead of
    /// queueing behind it (`convoy rollback --preempt`).
    #[serde(default)]
    preempt: bool,
}

async fn act(
    State(ui): State<Ui>,
    headers: HeaderMap,
    Path((release, action)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let who = match ui.principal(&headers) {
        Ok(w) => w,
        Err(r) => return *r,
    };
    if let Err(r) = check_action_header(&headers) {
        return *r;
    }
    let Ok(body) = serde_json::from_slice::<ActionBody>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "expected {\"reason\": \"...\"} (and for a rollback optionally \"to_revision\")",
        );
    };
    let control = match action.as_str() {
        "pause" => Control::Pause,
        "resume" => Control::Resume,
        "abort" => Control::Abort,
        "approve" => Control::Approve(None),
        "refuse" if body.reason.trim().is_empty() => {
            return error(StatusCode::BAD_REQUEST, "a refusal needs a reason");
        }
        "refuse" => Control::Refuse(None),
        "rollback" => {
            return match ui
                .core
                .rollback(
                    who,
                    release,
                    body.to_revision,
                    body.reason,
                    body.preempt,
                    Vec::new(),
                )
                .await
            {
                Ok(a) => json_response(
                    StatusCode::OK,
                    &json!({
                        "release": a.release,
                        "revision": a.revision,
                        "rollback_to": a.rollback_to,
                        "operation_id": a.operation_id,
                        "phase": phase_name(a.phase),
                        "queue_position": a.queue_position,
                    }),
                ),
                Err(e) => core_error(e),
            };
        }
        other => {
            return error(
                StatusCode::NOT_FOUND,
                &format!(
                    "unknown action {other:?}: expected pause, resume, abort, approve, refuse or rollback"
                ),
            );
        }
    };
    match ui.core.control(who, release, control, body.reason).await {
        Ok(op) => {
            let regions = HashMap::new();
            json_response(
                StatusCode::OK,
                &json!({ "operation": operation_json(&op, &regions) }),
            )
        }
        Err(e) => core_error(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_allows_exactly_the_page_script() {
        let csp = content_security_policy("<p>x</p><script>let a = 1;</script>");
        let want = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(b"let a = 1;"));
        assert!(csp.contains(&format!("script-src 'sha256-{want}'")), "{csp}");
        assert!(PAGE.contains("<script>") && PAGE.matches("<script").count() == 1);
    }

    #[test]
    fn session_ids_come_from_the_cookie_header_only() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=b; convoy_session=abc123; c=d"),
        );
        assert_eq!(session_id(&h).as_deref(), Some("abc123"));
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("convoy_sessionx=1"));
        assert_eq!(session_id(&h), None);
    }
}

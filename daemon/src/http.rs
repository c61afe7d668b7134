//! `/healthz`, `/readyz` and `/metrics` over plain HTTP, for probes and Prometheus; and
//! the web status page under `/ui` when `ui.enabled` ([`crate::ui`]).

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use tokio::net::TcpListener;

use crate::core::Coordinator;

async fn metrics(State(core): State<Coordinator>) -> axum::response::Response {
    use axum::response::IntoResponse;
    match core.metrics().await {
        Ok(text) => (
            StatusCode::OK,
            [(
                axum::http::header::CONTENT_TYPE,
                convoy_common::OPENMETRICS_CONTENT_TYPE,
            )],
            text,
        )
            .into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response(),
    }
}

async fn ready(State(core): State<Coordinator>) -> (StatusCode, &'static str) {
    // Ready when the core answers: state restored and the loop running.
    match core.metrics().await {
        Ok(_) => (StatusCode::OK, "ok\n"),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "core not running\n"),
    }
}

/// A standby coordinator's endpoints (etcd backend): alive, not ready, and naming
/// the leader so that an operator reading the probe knows where to look.
pub async fn serve_standby(
    listener: TcpListener,
    leader: tokio::sync::watch::Receiver<String>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    async fn standby(State(leader): State<tokio::sync::watch::Receiver<String>>) -> (StatusCode, String) {
        let name = leader.borrow().clone();
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("standby: leader is {name}\n"),
        )
    }
    async fn metrics() -> &'static str {
        "# HELP convoy_coordinator_leader 1 when this coordinator leads (etcd backend).\n\
         # TYPE convoy_coordinator_leader gauge\n\
         convoy_coordinator_leader 0\n"
    }
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(standby))
        .route("/metrics", get(metrics))
        .with_state(leader);
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}

/// Serves until `shutdown` resolves; with `ui`, the web status page too.
pub async fn serve(
    listener: TcpListener,
    core: Coordinator,
    ui: Option<crate::ui::Ui>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mut app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .with_state(core);
    if let Some(ui) = ui {
        app = app.merge(ui.router());
    }
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}

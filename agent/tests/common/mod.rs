//! Test support for the agent runtime on the agent link: a fake coordinator, a tonic
//! `AgentLink` server on 127.0.0.1 that hands each session to the test, which plays
//! the coordinator (reads the hello and events, sends commands). The cluster is the
//! simulated backend, so rollouts take a second or two of real time. Shared by the
//! test files of this folder and by `tests/tests/agent_kube.rs` (which runs the runtime
//! on a real cluster); not every file uses every helper.
//!
//! The fake runs on its own tokio runtime so "the coordinator died" is real: shutting
//! that runtime down drops the listener and every connection at once.

#![allow(dead_code)]

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use convoy_agent::backend::Backend;
use convoy_agent::runtime::{AgentRuntime, Credentials, RuntimeConfig};
use convoy_agent::sim::SimBackend;
use convoy_proto::v1 as pb;
use pb::agent_event::Event;
use pb::agent_link_server::{AgentLink, AgentLinkServer};
use pb::agent_message::Message as Out;
use pb::coordinator_message::Message as In;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::Stream;
use tokio_stream::wrappers::{TcpListenerStream, UnboundedReceiverStream};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};

pub const CONTEXT: &str = "dev-us-central1-0";
pub const TOKEN: &str = "s3cret-agent-token";
pub const WAIT: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------- fake coordinator

/// One agent session as the fake coordinator sees it.
pub struct Session {
    pub hello: pb::Hello,
    pub from_agent: mpsc::UnboundedReceiver<pb::AgentMessage>,
    pub to_agent: mpsc::UnboundedSender<Result<pb::CoordinatorMessage, Status>>,
    /// Events read while looking for another operation's.
    pub backlog: Vec<pb::AgentEvent>,
}

#[derive(Clone)]
pub struct Service {
    token: String,
    sessions: mpsc::UnboundedSender<Session>,
    refusals: mpsc::UnboundedSender<()>,
}

pub type CoordinatorStream = Pin<Box<dyn Stream<Item = Result<pb::CoordinatorMessage, Status>> + Send>>;

#[tonic::async_trait]
impl AgentLink for Service {
    type SessionStream = CoordinatorStream;

    async fn session(
        &self,
        request: Request<Streaming<pb::AgentMessage>>,
    ) -> Result<Response<CoordinatorStream>, Status> {
        let expected = format!("Bearer {}", self.token);
        let header = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        if header.as_deref() != Some(expected.as_str()) {
            let _ = self.refusals.send(());
            return Err(Status::unauthenticated("unknown agent token"));
        }
        let mut inbound = request.into_inner();
        let hello = match inbound.message().await? {
            Some(pb::AgentMessage {
                message: Some(Out::Hello(h)),
            }) => h,
            _ => return Err(Status::invalid_argument("the first message must be a hello")),
        };
        if format!("Bearer {}", hello.token) != expected {
            return Err(Status::unauthenticated("hello token differs from the metadata"));
        }
        let (to_agent, rx) = mpsc::unbounded_channel();
        // Like a coordinator: record the buffered final events, acknowledge them.
        let acknowledged = hello
            .unacknowledged
            .iter()
            .filter_map(|e| e.op.as_ref())
            .map(|o| o.operation_id.clone())
            .collect();
        let welcome = pb::Welcome {
            session_id: "s1".into(),
            heartbeat_interval_seconds: 1,
            acknowledged,
        };
        to_agent
            .send(Ok(pb::CoordinatorMessage {
                message: Some(In::Welcome(welcome)),
            }))
            .unwrap();
        let (tx, from_agent) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok(Some(m)) = inbound.message().await {
                if tx.send(m).is_err() {
                    break;
                }
            }
        });
        let _ = self.sessions.send(Session {
            hello,
            from_agent,
            to_agent,
            backlog: Vec::new(),
        });
        Ok(Response::new(Box::pin(UnboundedReceiverStream::new(rx))))
    }
}

/// A coordinator on its own runtime; dropping it kills it (listener and connections).
pub struct Fake {
    pub port: u16,
    pub tls: bool,
    pub runtime: Option<tokio::runtime::Runtime>,
    pub sessions: mpsc::UnboundedReceiver<Session>,
    pub refusals: mpsc::UnboundedReceiver<()>,
}

impl Fake {
    /// Starts on `port` (0: any). A just-killed fake may hold its port a moment longer.
    pub async fn start(port: u16) -> Fake {
        Fake::start_with(port, None).await
    }

    /// As [`Fake::start`], serving TLS with this PEM certificate and key.
    pub async fn start_with(port: u16, tls: Option<(String, String)>) -> Fake {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match Fake::try_start(port, tls.clone()) {
                Ok(f) => return f,
                Err(e) if tokio::time::Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("cannot listen on port {port}: {e}"),
            }
        }
    }

    pub fn try_start(port: u16, tls: Option<(String, String)>) -> std::io::Result<Fake> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let (sessions_tx, sessions) = mpsc::unbounded_channel();
        let (refusals_tx, refusals) = mpsc::unbounded_channel();
        let service = Service {
            token: TOKEN.into(),
            sessions: sessions_tx,
            refusals: refusals_tx,
        };
        let bound = {
            let _in_runtime = runtime.enter();
            tokio::net::TcpSocket::new_v4().and_then(|socket| {
                // The same port again right after a kill: old connections are in TIME_WAIT.
                socket.set_reuseaddr(true)?;
                socket.bind(([127, 0, 0, 1], port).into())?;
                socket.listen(64)
            })
        };
        let (listener, port) = match bound.and_then(|l| Ok((l.local_addr()?.port(), l))) {
            Ok((port, l)) => (l, port),
            Err(e) => {
                // Dropping a runtime inside the test's async context is not allowed.
                runtime.shutdown_background();
                return Err(e);
            }
        };
        let mut server = tonic::transport::Server::builder();
        if let Some((cert, key)) = &tls {
            let identity = tonic::transport::Identity::from_pem(cert, key);
            server = server
                .tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))
                .expect("a valid TLS identity");
        }
        runtime.spawn(
            server
                .add_service(AgentLinkServer::new(service))
                .serve_with_incoming(TcpListenerStream::new(listener)),
        );
        Ok(Fake {
            port,
            tls: tls.is_some(),
            runtime: Some(runtime),
            sessions,
            refusals,
        })
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    pub async fn session(&mut self) -> Session {
        tokio::time::timeout(WAIT, self.sessions.recv())
            .await
            .expect("no agent session in time")
            .unwrap()
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl Session {
    pub fn send(&self, op: &pb::OperationRef, command: pb::command::Command) {
        let c = pb::Command {
            op: Some(op.clone()),
            command: Some(command),
        };
        self.to_agent
            .send(Ok(pb::CoordinatorMessage {
                message: Some(In::Command(c)),
            }))
            .unwrap();
    }

    /// The next event about `op` (heartbeats and other operations' events skipped).
    pub async fn event(&mut self, op: &pb::OperationRef) -> Event {
        if let Some(i) = self.backlog.iter().position(|e| e.op.as_ref() == Some(op)) {
            return self.backlog.remove(i).event.expect("an event without a body");
        }
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let m = tokio::time::timeout_at(deadline, self.from_agent.recv())
                .await
                .unwrap_or_else(|_| panic!("no event for {} in time", op.operation_id))
                .expect("session ended");
            if let Some(Out::Event(e)) = m.message {
                if e.op.as_ref() == Some(op) {
                    return e.event.expect("an event without a body");
                }
                self.backlog.push(e);
            }
        }
    }

    /// Events about `op` up to and including its final one.
    pub async fn until_final(&mut self, op: &pb::OperationRef) -> Vec<Event> {
        let mut events = Vec::new();
        loop {
            let e = self.event(op).await;
            let last = matches!(
                e,
                Event::Healthy(_) | Event::Failed(_) | Event::Aborted(_) | Event::DryRun(_)
            );
            events.push(e);
            if last {
                return events;
            }
        }
    }
}

// ---------------------------------------------------------------- the agent

pub struct Agent {
    pub stop: CancellationToken,
    pub task: JoinHandle<()>,
    pub health: std::net::SocketAddr,
    /// The simulated cluster the agent drives, to look inside.
    pub sim: Arc<SimBackend>,
}

pub fn config(url: &str, credentials: Credentials) -> RuntimeConfig {
    let mut c = RuntimeConfig::new(url, CONTEXT);
    c.credentials = credentials;
    c.instance = "test-agent-0".into();
    c.health_listen = Some(([127, 0, 0, 1], 0).into());
    c.backoff_initial = Duration::from_millis(50);
    c.backoff_max = Duration::from_millis(400);
    c.auth_retry = Duration::from_millis(500);
    c.progress_interval = Duration::from_millis(100);
    c
}

pub async fn start_agent(config: RuntimeConfig) -> Agent {
    let sim = Arc::new(SimBackend::default());
    let (stop, task, health) = start_runtime(config, sim.clone()).await;
    Agent {
        stop,
        task,
        health,
        sim,
    }
}

/// Runs the agent runtime on any backend (the Kubernetes one in
/// `tests/tests/agent_kube.rs`, which includes this file); cancel the token to stop it.
pub async fn start_runtime<B: Backend>(
    config: RuntimeConfig,
    backend: B,
) -> (CancellationToken, JoinHandle<()>, std::net::SocketAddr) {
    let mut runtime = AgentRuntime::new(config, backend);
    let health = runtime.bind_health().await.unwrap().unwrap();
    let stop = CancellationToken::new();
    let s = stop.clone();
    let task = tokio::spawn(async move { runtime.run(s).await.unwrap() });
    (stop, task, health)
}

/// Each event as a short tag: `applied`, `healthy`, `failed <reason>`, or the reason
/// of each hook's progress entry (`running hook pre-upgrade job/migrate`).
pub fn timeline(events: &[Event]) -> Vec<String> {
    let mut out = Vec::new();
    for e in events {
        match e {
            Event::Applied(_) => out.push("applied".to_string()),
            Event::Healthy(_) => out.push("healthy".to_string()),
            Event::Failed(f) => out.push(format!("failed {}", f.reason)),
            Event::Progress(p) => out.extend(
                p.objects
                    .iter()
                    .filter(|o| o.reason.contains("hook"))
                    .map(|o| o.reason.clone()),
            ),
            _ => {}
        }
    }
    out
}

impl Agent {
    pub async fn get(&self, path: &str) -> (u16, String) {
        let mut s = tokio::net::TcpStream::connect(self.health).await.unwrap();
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        let status = out.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        (status, out)
    }

    pub async fn stop(self) {
        self.stop.cancel();
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("agent did not stop")
            .unwrap();
    }
}

// ---------------------------------------------------------------- commands

pub fn op(release: &str, revision: u64, id: &str) -> pb::OperationRef {
    pb::OperationRef {
        release: release.into(),
        revision,
        operation_id: id.into(),
    }
}

pub fn deployment(name: &str, replicas: u32, behavior: &str, image: &str) -> pb::Manifest {
    pb::Manifest {
        source: format!("app1/templates/{name}.yaml"),
        content: format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}}}\nspec:\n  replicas: {replicas}\n  template:\n    metadata:\n      annotations: {{sim.convoy.dev/behavior: \"{behavior}\"}}\n    spec:\n      containers: [{{name: app, image: \"{image}\"}}]\n"
        ),
    }
}

pub fn config_map(name: &str, value: &str) -> pb::Manifest {
    pb::Manifest {
        source: format!("app1/templates/{name}.yaml"),
        content: format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata: {{k: \"{value}\"}}\n"
        ),
    }
}

pub fn apply(manifests: Vec<pb::Manifest>, deadline_s: u32, window_s: u32) -> pb::command::Command {
    pb::command::Command::Apply(pb::ApplyRevision {
        namespace: "ns1".into(),
        manifests,
        health: Some(pb::HealthPolicy {
            progress_deadline_seconds: deadline_s,
            min_ready_window_seconds: window_s,
        }),
        chart: "app1-1.0.0".into(),
        ..Default::default()
    })
}

pub fn failed(events: &[Event]) -> &pb::Failed {
    match events.last() {
        Some(Event::Failed(f)) => f,
        other => panic!("expected a failure, got {other:?}"),
    }
}

pub fn actions(e: &Event) -> Vec<(String, pb::ObjectAction)> {
    let objects = match e {
        Event::Applied(a) => &a.objects,
        Event::DryRun(d) => &d.objects,
        other => panic!("expected objects, got {other:?}"),
    };
    objects
        .iter()
        .map(|o| (o.object.as_ref().unwrap().name.clone(), o.action()))
        .collect()
}

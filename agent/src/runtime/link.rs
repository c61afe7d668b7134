//! The session with the coordinator: dial, hello, welcome, then commands in and
//! events and heartbeats out until the stream ends; then reconnect with backoff.
//!
//! A refused credential (`UNAUTHENTICATED`, `PERMISSION_DENIED`, or a TLS alert
//! refusing the client certificate) is a configuration problem: it is logged as an
//! error naming the settings to check and retried slowly, never in a hot loop. Each
//! attempt dials a fresh connection, so a coordinator restarted on the same address
//! (or failed over behind it) is reached anew.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use convoy_proto::v1 as pb;
use pb::agent_link_client::AgentLinkClient;
use pb::agent_message::Message as Out;
use pb::coordinator_message::Message as In;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Code, Status};

use crate::backend::Backend;
use crate::runtime::backoff::Backoff;
use crate::runtime::{Credentials, Shared, Token, locked, ops, read_token, tls, wire};

/// What to check when the coordinator refuses the agent's token or context.
const TOKEN_HINT: &str = "check the token (token_file) and that it was issued for this context";

/// The heartbeat interval when the welcome leaves it at 0.
const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(10);

/// How a session ended.
enum End {
    Stopping,
    /// The link failed; `welcomed` says whether the session had been established.
    Lost {
        welcomed: bool,
        why: String,
    },
    /// The coordinator refused our credentials or context; `hint` says what to check.
    Refused {
        why: String,
        hint: &'static str,
    },
    /// Our own settings are unusable right now (token file unreadable, ...).
    Misconfigured(String),
}

/// Keeps a session up until `stopping` fires.
pub(crate) async fn run<B: Backend>(shared: Arc<Shared<B>>, stopping: CancellationToken) {
    let cfg = &shared.config;
    let urls: Vec<String> = cfg.coordinators().into_iter().map(str::to_string).collect();
    let mut at = 0;
    let mut backoff = Backoff::new(cfg.backoff_initial, cfg.backoff_max);
    let mut first = true;
    loop {
        if !first {
            shared.metrics.reconnect();
        }
        first = false;
        let url = urls.get(at).map_or(cfg.coordinator.as_str(), String::as_str);
        let end = session(&shared, &stopping, url).await;
        // With several coordinators (HA), the next attempt tries the next one: a
        // standby refuses the agent, a dead leader does not answer.
        if urls.len() > 1 && !matches!(end, End::Stopping) {
            at = (at + 1) % urls.len();
        }
        locked(&shared.outbox).disconnect();
        shared.metrics.set_connected(false);
        let delay = match end {
            End::Stopping => return,
            End::Lost { welcomed, why } => {
                if welcomed {
                    backoff.reset();
                }
                let delay = backoff.next_delay();
                tracing::warn!(coordinator = %url, reason = %why, retry_in_ms = delay.as_millis() as u64, "agent link down; reconnecting");
                delay
            }
            End::Refused { why, hint } => {
                tracing::error!(
                    coordinator = %url,
                    context = %cfg.context,
                    reason = %why,
                    retry_in_s = cfg.auth_retry.as_secs(),
                    "the coordinator refused this agent's credentials: {hint}"
                );
                cfg.auth_retry
            }
            End::Misconfigured(why) => {
                tracing::error!(reason = %why, retry_in_s = cfg.auth_retry.as_secs(), "cannot dial the coordinator: fix the agent's configuration");
                cfg.auth_retry
            }
        };
        tokio::select! {
            _ = stopping.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

fn classify(status: &Status, welcomed: bool) -> End {
    match status.code() {
        Code::Unauthenticated | Code::PermissionDenied => End::Refused {
            why: format!("{:?}: {}", status.code(), status.message()),
            hint: TOKEN_HINT,
        },
        // A transport failure carries its cause (a TLS alert, say) in its sources.
        code => {
            let mut why = format!("{code:?}: {}", status.message());
            if let Some(source) = std::error::Error::source(status) {
                why.push_str(": ");
                why.push_str(&error_chain(source));
            }
            lost_or_refused(why, welcomed)
        }
    }
}

/// A failed connection or call: the coordinator refusing our client certificate (a
/// TLS alert) is a configuration problem, anything else a lost link.
fn lost_or_refused(why: String, welcomed: bool) -> End {
    match tls::refusal_hint(&why) {
        Some(hint) => End::Refused { why, hint },
        None => End::Lost { welcomed, why },
    }
}

fn token<B>(shared: &Shared<B>) -> Result<Option<Token>, String> {
    match &shared.config.credentials {
        Credentials::None => Ok(None),
        Credentials::Token(t) => Ok(Some(t.clone())),
        Credentials::TokenFile(path) => read_token(path).map(Some).map_err(|e| e.to_string()),
    }
}

async fn hello<B: Backend>(shared: &Shared<B>, token: Option<&Token>) -> (pb::Hello, u64) {
    let deployed = match shared.backend.deployed().await {
        Ok(d) => d.iter().map(wire::deployed_to_wire).collect(),
        Err(f) => {
            tracing::warn!(error = %f, "could not read the cluster's release history; the hello lists none");
            Vec::new()
        }
    };
    let in_flight = locked(&shared.ledger)
        .in_flight()
        .iter()
        .map(wire::op_to_wire)
        .collect();
    let capabilities = capabilities(shared).await;
    let snapshot = locked(&shared.outbox).snapshot();
    let hello = pb::Hello {
        context: shared.config.context.clone(),
        token: token.map(|t| t.expose().to_string()).unwrap_or_default(),
        agent_version: env!("CARGO_PKG_VERSION").to_string(),
        instance: shared.config.instance.clone(),
        backend: shared.backend.kind().to_string(),
        in_flight,
        deployed,
        unacknowledged: snapshot.unacknowledged,
        capabilities: Some(capabilities),
    };
    (hello, snapshot.seq)
}

/// The cluster's capabilities for the hello, read afresh at every connect (bounded by
/// the connect timeout); a failure is sent as such, and the coordinator keeps what this
/// context reported before.
async fn capabilities<B: Backend>(shared: &Shared<B>) -> pb::ClusterCapabilities {
    let limit = shared.config.connect_timeout;
    match tokio::time::timeout(limit, shared.backend.capabilities()).await {
        Ok(Ok(c)) => {
            tracing::debug!(kube_version = %c.kube_version, api_versions = c.api_versions.len(), "cluster capabilities read");
            wire::capabilities_to_wire(Ok(&c))
        }
        Ok(Err(f)) => {
            tracing::warn!(error = %f, "could not read the cluster's capabilities; the hello reports none");
            wire::capabilities_to_wire(Err(&f.to_string()))
        }
        Err(_) => {
            let why = format!("discovery did not finish within {}s", limit.as_secs());
            tracing::warn!(reason = %why, "could not read the cluster's capabilities; the hello reports none");
            wire::capabilities_to_wire(Err(&why))
        }
    }
}

async fn session<B: Backend>(shared: &Arc<Shared<B>>, stopping: &CancellationToken, url: &str) -> End {
    let token = match token(shared) {
        Ok(t) => t,
        Err(why) => return End::Misconfigured(why),
    };
    let ep = match tls::endpoint(&shared.config, url) {
        Ok(ep) => ep,
        Err(why) => return End::Misconfigured(why.to_string()),
    };
    let channel = tokio::select! {
        _ = stopping.cancelled() => return End::Stopping,
        c = ep.connect() => match c {
            Ok(c) => c,
            Err(e) => return lost_or_refused(format!("cannot connect: {}", error_chain(&e)), false),
        },
    };
    let mut client = AgentLinkClient::new(channel)
        .max_decoding_message_size(convoy_proto::AGENT_LINK_MESSAGE_LIMIT)
        .max_encoding_message_size(convoy_proto::AGENT_LINK_MESSAGE_LIMIT);
    let (tx, rx) = mpsc::channel::<pb::AgentMessage>(1024);
    let (hello, since) = hello(shared, token.as_ref()).await;
    let in_flight = hello.in_flight.len();
    if tx
        .send(pb::AgentMessage {
            message: Some(Out::Hello(hello)),
        })
        .await
        .is_err()
    {
        return End::Lost {
            welcomed: false,
            why: "session stream closed before the hello".into(),
        };
    }
    let mut request = tonic::Request::new(ReceiverStream::new(rx));
    if let Some(t) = &token {
        match format!("Bearer {}", t.expose()).parse::<tonic::metadata::AsciiMetadataValue>() {
            Ok(mut v) => {
                // Kept out of HTTP/2 header compression tables.
                v.set_sensitive(true);
                request.metadata_mut().insert("authorization", v);
            }
            Err(_) => return End::Misconfigured("the token is not valid in an HTTP header".into()),
        }
    }
    let timeout = shared.config.connect_timeout;
    let welcome = async {
        let mut inbound = client.session(request).await?.into_inner();
        match inbound.message().await? {
            Some(pb::CoordinatorMessage {
                message: Some(In::Welcome(w)),
            }) => Ok((inbound, w)),
            Some(_) => Err(Status::internal(
                "the coordinator spoke before welcoming the agent",
            )),
            None => Err(Status::unavailable(
                "the coordinator closed the stream without a welcome",
            )),
        }
    };
    let (mut inbound, welcome) = tokio::select! {
        _ = stopping.cancelled() => return End::Stopping,
        r = tokio::time::timeout(timeout, welcome) => match r {
            Err(_) => return End::Lost { welcomed: false, why: format!("no welcome within {}s", timeout.as_secs()) },
            Ok(Err(status)) => return classify(&status, false),
            Ok(Ok(ok)) => ok,
        },
    };
    locked(&shared.outbox).connect(tx.clone(), &welcome.acknowledged, since);
    shared.metrics.set_connected(true);
    tracing::info!(session = %welcome.session_id, in_flight, acknowledged = welcome.acknowledged.len(), "connected to the coordinator");

    let every = match welcome.heartbeat_interval_seconds {
        0 => DEFAULT_HEARTBEAT,
        s => Duration::from_secs(u64::from(s)),
    };
    let mut beat = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stopping.cancelled() => return End::Stopping,
            _ = beat.tick() => {
                let at = SystemTime::now();
                let in_flight = locked(&shared.ledger).in_flight().iter().map(wire::op_to_wire).collect();
                let msg = pb::AgentMessage {
                    message: Some(Out::Heartbeat(pb::Heartbeat { at: Some(wire::timestamp(at)), in_flight })),
                };
                // Never wait here: a coordinator that stopped reading must not also
                // stop us from reading its commands (or noticing the stream died).
                match tx.try_send(msg) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        return End::Lost { welcomed: true, why: "the coordinator stopped reading the session".into() };
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => {
                        return End::Lost { welcomed: true, why: "the session stream closed".into() };
                    }
                }
                shared.metrics.heartbeat(at);
            }
            msg = inbound.message() => match msg {
                Ok(Some(pb::CoordinatorMessage { message: Some(In::Command(c)) })) => ops::dispatch(shared, c),
                Ok(Some(pb::CoordinatorMessage { message: Some(In::Welcome(_)) })) => {
                    tracing::debug!("second welcome on one session ignored");
                }
                Ok(Some(pb::CoordinatorMessage { message: None })) => {
                    tracing::debug!("empty coordinator message ignored");
                }
                Ok(None) => return End::Lost { welcomed: true, why: "the coordinator ended the session".into() },
                Err(status) => return classify(&status, true),
            },
        }
    }
}

/// An error with its sources (`transport error: tcp connect error: Connection refused`).
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let next = c.to_string();
        // Some errors repeat their source in their own message.
        if !s.contains(&next) {
            s.push_str(": ");
            s.push_str(&next);
        }
        cur = c.source();
    }
    s
}

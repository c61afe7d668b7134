//! The agent link: the `AgentLink.Session` stream each agent opens. Authenticates the
//! hello (an agent may only speak for its own context), registers the session with the
//! core, forwards the agent's events as domain reports, and writes the core's commands
//! to the stream. Wire types stop here.

mod convert;

use std::pin::Pin;
use std::time::Duration;

use convoy_proto::v1 as pb;
use futures::Stream;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use crate::auth::Authenticator;
use crate::core::{AgentHello, Coordinator, DIFF_PREFIX, Msg};

pub use convert::command_to_wire;

/// The `AgentLink` service.
pub struct AgentLinkService {
    core: Coordinator,
    auth: Authenticator,
    /// Contexts in the registry: an agent for another context is refused.
    known: std::collections::BTreeSet<String>,
}

impl AgentLinkService {
    pub fn new(core: Coordinator, auth: Authenticator, known: impl IntoIterator<Item = String>) -> Self {
        AgentLinkService {
            core,
            auth,
            known: known.into_iter().collect(),
        }
    }
}

type Out = Pin<Box<dyn Stream<Item = Result<pb::CoordinatorMessage, Status>> + Send>>;

#[tonic::async_trait]
impl pb::agent_link_server::AgentLink for AgentLinkService {
    type SessionStream = Out;

    async fn session(&self, request: Request<Streaming<pb::AgentMessage>>) -> Result<Response<Out>, Status> {
        let header_token = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_string);
        // Each agent token belongs to exactly one context: a token that is none of
        // them is refused before the session's first message is read.
        if let Some(t) = &header_token
            && self.auth.agent_context(t).is_none()
            && !self.auth.allows_anonymous()
        {
            return Err(Status::unauthenticated(
                "unknown agent token: it is no context's credential in auth.agents",
            ));
        }
        let client_cert = request
            .peer_certs()
            .and_then(|c| c.first().map(|c| c.as_ref().to_vec()));
        let mut inbound = request.into_inner();
        let first = tokio::time::timeout(Duration::from_secs(30), inbound.next())
            .await
            .map_err(|_| Status::deadline_exceeded("no hello within 30s"))?
            .ok_or_else(|| Status::invalid_argument("the stream ended before the hello"))??;
        let Some(pb::agent_message::Message::Hello(hello)) = first.message else {
            return Err(Status::invalid_argument(
                "the first message on an agent session must be a hello",
            ));
        };
        if !self.known.contains(&hello.context) {
            return Err(Status::permission_denied(format!(
                "context {:?} is not in the coordinator's registry",
                hello.context
            )));
        }
        let token = if hello.token.is_empty() {
            header_token.unwrap_or_default()
        } else {
            hello.token.clone()
        };
        self.auth
            .authenticate_agent(&hello.context, &token, client_cert.as_deref())
            .map_err(|e| Status::permission_denied(e.to_string()))?;

        let session_id = format!("{}-{:016x}", hello.context, rand::random::<u64>());
        let context = hello.context.clone();
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let acknowledged: Vec<String> = hello
            .unacknowledged
            .iter()
            .filter_map(|e| e.op.as_ref().map(|o| o.operation_id.clone()))
            .collect();
        let unacknowledged = hello
            .unacknowledged
            .iter()
            .filter_map(convert::report_from_wire)
            .collect();
        // The welcome acknowledges the hello's final events, and the agent then drops
        // them: it is sent only once the core has them in the store.
        let (stored, committed) = oneshot::channel();
        self.core.tell(Msg::AgentConnected {
            hello: AgentHello {
                context: context.clone(),
                session_id: session_id.clone(),
                version: hello.agent_version.clone(),
                instance: hello.instance.clone(),
                backend: hello.backend.clone(),
                in_flight: hello.in_flight.len() as u32,
                unacknowledged,
                deployed: hello
                    .deployed
                    .iter()
                    .map(|d| (d.release.clone(), d.revision))
                    .collect(),
                capabilities: convert::capabilities_from_wire(hello.capabilities.as_ref()),
            },
            tx: cmd_tx,
            stored,
        });
        match committed.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                return Err(Status::unavailable(format!(
                    "the coordinator could not store this agent's reports ({e}); they stay with the agent: reconnect"
                )));
            }
            Err(_) => return Err(Status::unavailable("the coordinator is shutting down")),
        }
        let welcome = pb::CoordinatorMessage {
            message: Some(pb::coordinator_message::Message::Welcome(pb::Welcome {
                session_id: session_id.clone(),
                heartbeat_interval_seconds: self.core.heartbeat_interval().as_secs().max(1) as u32,
                acknowledged,
            })),
        };
        // Events from the stream to the core.
        let core = self.core.clone();
        tokio::spawn(async move {
            while let Some(msg) = inbound.next().await {
                match msg.map(|m| m.message) {
                    Ok(Some(pb::agent_message::Message::Event(ev)))
                        if ev
                            .op
                            .as_ref()
                            .is_some_and(|o| o.operation_id.starts_with(DIFF_PREFIX)) =>
                    {
                        if let (Some(op), Some(outcome)) = (ev.op.as_ref(), convert::diff_from_wire(&ev)) {
                            core.tell(Msg::DiffAnswer {
                                context: context.clone(),
                                operation_id: op.operation_id.clone(),
                                outcome,
                            });
                        }
                    }
                    Ok(Some(pb::agent_message::Message::Event(ev))) => {
                        if let Some(report) = convert::report_from_wire(&ev) {
                            core.tell(Msg::AgentReport {
                                context: context.clone(),
                                report,
                            });
                        }
                    }
                    Ok(Some(pb::agent_message::Message::Heartbeat(hb))) => core.tell(Msg::AgentHeartbeat {
                        context: context.clone(),
                        in_flight: hb.in_flight.len() as u32,
                    }),
                    Ok(Some(pb::agent_message::Message::Hello(_))) => {
                        tracing::warn!(%context, "second hello on one session ignored");
                    }
                    Ok(None) => {}
                    Err(status) => {
                        tracing::info!(%context, %status, "agent stream ended");
                        break;
                    }
                }
            }
            core.tell(Msg::AgentDisconnected { context, session_id });
        });
        // The welcome, then the core's commands, converted as the stream is read: no
        // task and no second queue per session (a forwarding task and a bounded queue,
        // whose first block of 32 messages alone was 7 KB, cost ~9 KB per connected
        // agent: BENCHMARKS.md, issue 16). The stream ends when the core drops the
        // session's sender; when the agent goes away, the stream and its receiver are
        // dropped and the core's next send fails.
        let commands = tokio_stream::wrappers::UnboundedReceiverStream::new(cmd_rx).map(|cmd| {
            Ok::<_, Status>(pb::CoordinatorMessage {
                message: Some(pb::coordinator_message::Message::Command(command_to_wire(&cmd))),
            })
        });
        let stream = tokio_stream::once(Ok(welcome)).chain(commands);
        Ok(Response::new(Box::pin(stream)))
    }
}

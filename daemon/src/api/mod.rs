//! The public gRPC API (`convoy.v1.ReleaseService`, `ClusterService`): authenticates
//! each call, hands it to the core in domain terms, and maps results and errors to the
//! wire in one place.

mod clusters;
mod convert;
pub mod limits;
mod releases;

pub use clusters::ClusterApi;
pub use releases::ReleaseApi;

use tonic::{Request, Status};

use crate::auth::{AuthError, Authenticator, Principal};
use crate::core::CoreError;

/// The caller of a request: its bearer token, else the client certificate the TLS
/// layer verified (present only under mTLS; the first one is the client's own, the
/// rest its chain).
fn principal<T>(auth: &Authenticator, req: &Request<T>) -> Result<Principal, Status> {
    if let Some(p) = req.extensions().get::<Principal>() {
        return Ok(p.clone());
    }
    authenticate(auth, req)
}

fn authenticate<T>(auth: &Authenticator, req: &Request<T>) -> Result<Principal, Status> {
    let header = req.metadata().get("authorization").and_then(|v| v.to_str().ok());
    let certs = req.peer_certs();
    let leaf = certs.as_deref().and_then(|c| c.first()).map(|c| c.as_ref());
    auth.authenticate_call(header, leaf).map_err(|e| {
        // Who tried and why, never what they presented: a token is a secret even when wrong.
        let peer = req
            .remote_addr()
            .map_or_else(|| "unknown".to_string(), |a| a.to_string());
        tracing::warn!(peer = %peer, reason = %e, "call refused before its body was read");
        auth_status(e)
    })
}

/// Authenticates every call from its headers and TLS identity *before* its body is
/// read or decoded (tonic runs interceptors on the request head): an unauthenticated
/// caller cannot make the coordinator buffer or parse a large message. The principal
/// travels to the handler in the request's extensions.
#[derive(Clone)]
pub struct Authenticate(pub std::sync::Arc<Authenticator>);

impl tonic::service::Interceptor for Authenticate {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        let p = authenticate(&self.0, &req)?;
        req.extensions_mut().insert(p);
        Ok(req)
    }
}

fn auth_status(e: AuthError) -> Status {
    match e {
        AuthError::Missing
        | AuthError::Unknown
        | AuthError::UnmappedCertificate { .. }
        | AuthError::BadCertificate { .. } => Status::unauthenticated(e.to_string()),
        AuthError::Forbidden { .. } | AuthError::OutOfScope(_) | AuthError::Agent { .. } => {
            Status::permission_denied(e.to_string())
        }
    }
}

/// The one mapping from core errors to gRPC statuses.
fn status(e: CoreError) -> Status {
    use crate::prepare::PrepareError;
    match e {
        CoreError::NotFound { .. } => Status::not_found(e.to_string()),
        CoreError::Invalid(_) | CoreError::Prepare(PrepareError::Invalid(_)) => {
            Status::invalid_argument(e.to_string())
        }
        CoreError::Denied(_) | CoreError::Prepare(PrepareError::Denied(_)) => {
            Status::permission_denied(e.to_string())
        }
        CoreError::FailedPrecondition(_) | CoreError::Prepare(_) => {
            Status::failed_precondition(e.to_string())
        }
        CoreError::Store { .. } | CoreError::Thread(_) => Status::internal(e.to_string()),
        CoreError::Unavailable => Status::unavailable(e.to_string()),
    }
}

//! The public gRPC API (`convoy.v1.ReleaseService`, `ClusterService`): authenticates
//! each call, hands it to the core in domain terms, and maps results and errors to the
//! wire in one place.

mod clusters;
mod convert;
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
    let header = req.metadata().get("authorization").and_then(|v| v.to_str().ok());
    let certs = req.peer_certs();
    let leaf = certs.as_deref().and_then(|c| c.first()).map(|c| c.as_ref());
    auth.authenticate_call(header, leaf).map_err(auth_status)
}

fn auth_status(e: AuthError) -> Status {
    match e {
        AuthError::Missing
        | AuthError::Unknown
        | AuthError::UnmappedCertificate { .. }
        | AuthError::BadCertificate { .. } => Status::unauthenticated(e.to_string()),
        AuthError::Forbidden { .. } | AuthError::Agent { .. } => Status::permission_denied(e.to_string()),
    }
}

/// The one mapping from core errors to gRPC statuses.
fn status(e: CoreError) -> Status {
    match e {
        CoreError::NotFound(_) => Status::not_found(e.to_string()),
        CoreError::Invalid(_) => Status::invalid_argument(e.to_string()),
        CoreError::FailedPrecondition(_) => Status::failed_precondition(e.to_string()),
        CoreError::PermissionDenied(_) => Status::permission_denied(e.to_string()),
        CoreError::Store(_) => Status::internal(e.to_string()),
        CoreError::Unavailable => Status::unavailable(e.to_string()),
    }
}

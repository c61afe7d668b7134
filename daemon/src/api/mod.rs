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

/// The caller of a request, from its bearer token.
fn principal<T>(auth: &Authenticator, req: &Request<T>) -> Result<Principal, Status> {
    let header = req.metadata().get("authorization").and_then(|v| v.to_str().ok());
    auth.authenticate(header).map_err(auth_status)
}

fn auth_status(e: AuthError) -> Status {
    match e {
        AuthError::Missing | AuthError::Unknown => Status::unauthenticated(e.to_string()),
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

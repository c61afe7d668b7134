//! Per-RPC request size limits, on top of each service's `max_decoding_message_size`:
//! a submit or diff carries a chart archive (up to [`SUBMIT_LIMIT`]), every other call
//! of the public API a name or a filter (up to [`SMALL_LIMIT`]). The body is counted as
//! it arrives, so a larger one is refused (RESOURCE_EXHAUSTED, naming the RPC and its
//! limit) without being buffered. The agent link, health and reflection keep their own
//! limits.

use std::pin::Pin;
use std::task::{Context, Poll};

use http_body::{Body, Frame};
use tonic::codegen::{Bytes, Service, http};
use tonic::server::NamedService;

/// SubmitRelease and DiffRelease: the release file, values files and chart archive.
pub const SUBMIT_LIMIT: usize = 64 << 20;
/// Every other call of `ReleaseService` and `ClusterService`.
pub const SMALL_LIMIT: usize = 64 << 10;

/// The limit of a request to `path` (`/convoy.v1.ReleaseService/SubmitRelease`), if
/// this layer sets one.
pub fn limit_for(path: &str) -> Option<usize> {
    match path {
        "/convoy.v1.ReleaseService/SubmitRelease" | "/convoy.v1.ReleaseService/DiffRelease" => {
            Some(SUBMIT_LIMIT)
        }
        p if p.starts_with("/convoy.v1.ReleaseService/") || p.starts_with("/convoy.v1.ClusterService/") => {
            Some(SMALL_LIMIT)
        }
        _ => None,
    }
}

/// A service whose requests' bodies are limited by [`limit_for`].
#[derive(Debug, Clone)]
pub struct BodyLimit<S> {
    inner: S,
}

impl<S> BodyLimit<S> {
    pub fn new(inner: S) -> Self {
        BodyLimit { inner }
    }
}

impl<S: NamedService> NamedService for BodyLimit<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> Service<http::Request<tonic::body::Body>> for BodyLimit<S>
where
    S: Service<http::Request<tonic::body::Body>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        let path = req.uri().path().to_string();
        match limit_for(&path) {
            Some(limit) => {
                let req = req.map(|body| {
                    tonic::body::Body::new(Limited {
                        inner: body,
                        left: limit,
                        limit,
                        path,
                    })
                });
                self.inner.call(req)
            }
            None => self.inner.call(req),
        }
    }
}

/// A body that fails once more than `limit` bytes arrived.
struct Limited {
    inner: tonic::body::Body,
    left: usize,
    limit: usize,
    path: String,
}

impl Body for Limited {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let len = frame.data_ref().map_or(0, Bytes::len);
                if len > this.left {
                    return Poll::Ready(Some(Err(tonic::Status::resource_exhausted(format!(
                        "{}: the request is larger than this call's limit of {} bytes",
                        this.path, this.limit
                    )))));
                }
                this.left -= len;
                Poll::Ready(Some(Ok(frame)))
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn submits_take_charts_and_everything_else_is_small() {
        assert_eq!(
            limit_for("/convoy.v1.ReleaseService/SubmitRelease"),
            Some(SUBMIT_LIMIT)
        );
        assert_eq!(
            limit_for("/convoy.v1.ReleaseService/DiffRelease"),
            Some(SUBMIT_LIMIT)
        );
        assert_eq!(
            limit_for("/convoy.v1.ReleaseService/GetRelease"),
            Some(SMALL_LIMIT)
        );
        assert_eq!(
            limit_for("/convoy.v1.ClusterService/ListClusters"),
            Some(SMALL_LIMIT)
        );
        assert_eq!(limit_for("/convoy.v1.AgentLink/Session"), None);
        assert_eq!(limit_for("/grpc.health.v1.Health/Check"), None);
    }
}

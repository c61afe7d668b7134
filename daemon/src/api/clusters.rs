//! `convoy.v1.ClusterService`.

use convoy_proto::v1 as pb;
use tonic::{Request, Response, Status};

use super::{convert, principal, status};
use crate::auth::{Authenticator, Role};
use crate::core::Coordinator;

pub struct ClusterApi {
    pub core: Coordinator,
    pub auth: Authenticator,
}

#[tonic::async_trait]
impl pb::cluster_service_server::ClusterService for ClusterApi {
    async fn list_clusters(
        &self,
        req: Request<pb::ListClustersRequest>,
    ) -> Result<Response<pb::ListClustersResponse>, Status> {
        let who = principal(&self.auth, &req)?;
        who.require(Role::Viewer, "list clusters")
            .map_err(super::auth_status)?;
        let filter = req.into_inner();
        let clusters = self
            .core
            .clusters()
            .await
            .map_err(status)?
            .iter()
            .filter(|c| filter.environment.is_empty() || c.info.env == filter.environment)
            .filter(|c| filter.labels.iter().all(|(k, v)| c.info.labels.get(k) == Some(v)))
            .filter(|c| who.sees_context(&c.info))
            .map(convert::cluster)
            .collect();
        Ok(Response::new(pb::ListClustersResponse { clusters }))
    }
}

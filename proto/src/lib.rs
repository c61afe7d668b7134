//! The `convoy.v1` gRPC contract, generated from `proto/convoy/v1/*.proto`.
//!
//! This crate owns wire types and their generated clients/servers only; domain types
//! live in the daemon and agent crates, which translate at their edges.

/// Generated code for package `convoy.v1`.
pub mod v1 {
    #![allow(clippy::all, clippy::pedantic, missing_docs)]
    tonic::include_proto!("convoy.v1");
}

/// The encoded `FileDescriptorSet` of every convoy.v1 file, for gRPC server reflection
/// (so `grpcurl` and Jenkins jobs can call the API without the .proto files).
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("convoy_v1_descriptor");

/// The largest message either side of the agent link (`convoy.v1.AgentLink`) sends or
/// accepts, in bytes: one release's rendered manifests for one cluster travel in one
/// command, so this is also the largest release (per cluster) convoy deploys. The
/// coordinator refuses a larger release at submit, naming this limit; it may be
/// configured lower (`agent_link_max_message_bytes`), never higher than what agents
/// accept.
pub const AGENT_LINK_MESSAGE_LIMIT: usize = 16 << 20;

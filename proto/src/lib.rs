//! The `convoy.v1` gRPC contract, generated from `proto/convoy/v1/*.proto`.
//!
//! This crate owns wire types and their generated clients/servers only; domain types
//! live in the daemon and agent crates, which translate at their edges.

/// Generated code for package `convoy.v1`.
pub mod v1 {
    #![allow(clippy::all, clippy::pedantic, missing_docs)]
    tonic::include_proto!("convoy.v1");
}

/// The codec of every convoy.v1 service, client and server side: prost, with smaller
/// per-call buffers than tonic's default.
pub mod codec {
    use std::marker::PhantomData;

    use tonic::codec::{BufferSettings, Codec};
    use tonic_prost::{ProstDecoder, ProstEncoder};

    /// Each call (each agent's `AgentLink.Session` stream, for as long as the agent is
    /// connected) allocates an encode and a decode buffer of this size up front, and
    /// grows it as a message needs. tonic's default is 8 KiB, 16 KiB per agent on the
    /// coordinator; the agent link's messages are mostly reports and heartbeats of a
    /// few hundred bytes, and a command with manifests grows the buffer like any other.
    pub const CALL_BUFFER_BYTES: usize = 1024;
    /// How much a streaming call encodes before handing it to HTTP/2 (tonic's default).
    pub const YIELD_THRESHOLD_BYTES: usize = 32 * 1024;

    fn settings() -> BufferSettings {
        BufferSettings::new(CALL_BUFFER_BYTES, YIELD_THRESHOLD_BYTES)
    }

    /// `application/grpc+proto` through prost, with [`CALL_BUFFER_BYTES`] buffers.
    #[derive(Debug, Clone)]
    pub struct ConvoyCodec<T, U>(PhantomData<(T, U)>);

    impl<T, U> Default for ConvoyCodec<T, U> {
        fn default() -> Self {
            ConvoyCodec(PhantomData)
        }
    }

    impl<T, U> Codec for ConvoyCodec<T, U>
    where
        T: prost::Message + Send + 'static,
        U: prost::Message + Default + Send + 'static,
    {
        type Encode = T;
        type Decode = U;
        type Encoder = ProstEncoder<T>;
        type Decoder = ProstDecoder<U>;

        fn encoder(&mut self) -> Self::Encoder {
            ProstEncoder::new(settings())
        }

        fn decoder(&mut self) -> Self::Decoder {
            ProstDecoder::new(settings())
        }
    }
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

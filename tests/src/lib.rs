//! Test support: starts real services on ephemeral loopback ports for convoy's tests,
//! and stops them when the test ends.
//!
//! | service | type | binary |
//! |---|---|---|
//! | Kubernetes control plane | [`kube::ControlPlane`] | etcd + kube-apiserver + kube-controller-manager 1.20 |
//! | kubelet stand-in | [`podsim::PodSimulator`] | (in process, kube-rs) |
//! | both together | [`kube::TestCluster`] | |
//! | Vault API | [`openbao::OpenBao`] | `bao server -dev` |
//! | etcd | [`etcd::Etcd`] (plain, or secured: TLS, client certificates, users) | Debian's `etcd`, `etcdctl` |
//! | webhook receiver | [`webhook::Receiver`] | (in process, axum) |
//! | a link to cut | [`proxy::TcpProxy`] | (in process, tokio) |
//! | chart repository | [`charts::ChartServer`] | (in process, tokio) |
//! | OCI registry | [`charts::Registry`] | Debian's `docker-registry` |
//!
//! Binaries come from `KUBEBUILDER_ASSETS` (envtest's convention) when set, else from
//! the cache `.ci/install-deps` fills (`$CONVOY_CACHE`, default `~/.cache/convoy`), else
//! from `PATH`. Every service logs to a file in its own temporary directory; when a test
//! fails (panics) the directory is kept and the tail of each log is printed, and a
//! service that fails to start is reported by name with its log tail instead of hanging.
//!
//! Used by tests only, never by production code.
#![forbid(unsafe_code)]

pub mod certs;
pub mod charts;
pub mod convoy;
pub mod etcd;
pub mod http;
pub mod kube;
pub mod openbao;
pub mod podsim;
pub mod process;
pub mod prometheus;
pub mod proxy;
pub mod tools;
pub mod webhook;

pub use process::ServiceError;

/// A free TCP port on 127.0.0.1 (bound, then released for the service to take).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("binding an ephemeral loopback port");
    l.local_addr().expect("local addr").port()
}

//! Where and how to reach etcd: shared by the etcd backend and by a build without it
//! (which refuses `store.backend: etcd` at configuration time).

use std::time::Duration;

/// etcd's default `--max-txn-ops`.
pub const DEFAULT_MAX_TXN_OPS: usize = 128;

/// Where and how to reach etcd.
#[derive(Debug, Clone)]
pub struct EtcdSettings {
    pub endpoints: Vec<String>,
    /// Every key lives under it (`/convoy`), so several installations can share etcd.
    pub prefix: String,
    /// The cluster's `--max-txn-ops`: no transaction holds more writes (see
    /// `EtcdStore::commit`).
    pub max_txn_ops: usize,
    /// Per request.
    pub timeout: Duration,
    /// TLS (`https://` endpoints).
    pub tls: Option<EtcdTls>,
    /// etcd authentication.
    pub credentials: Option<EtcdCredentials>,
}

impl EtcdSettings {
    pub fn new(endpoints: Vec<String>) -> Self {
        EtcdSettings {
            endpoints,
            prefix: "/convoy".into(),
            max_txn_ops: DEFAULT_MAX_TXN_OPS,
            timeout: Duration::from_secs(5),
            tls: None,
            credentials: None,
        }
    }

    #[cfg_attr(not(feature = "etcd"), allow(dead_code))]
    pub(crate) fn shown(&self) -> String {
        format!("etcd {}", self.endpoints.join(","))
    }
}

/// TLS to etcd: the CA that signed etcd's serving certificate, and the client
/// certificate etcd asks for when it runs with `--client-cert-auth`.
#[derive(Clone)]
pub struct EtcdTls {
    pub ca_pem: Vec<u8>,
    /// (certificate PEM, private key PEM).
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
    /// The name etcd's certificate is checked against, when the endpoints' host is not
    /// in it (an IP address behind a load balancer, say).
    pub server_name: Option<String>,
}

impl std::fmt::Debug for EtcdTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdTls")
            .field("client_certificate", &self.identity.is_some())
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

/// etcd's own users (`etcdctl user add`, `auth enable`).
#[derive(Clone)]
pub struct EtcdCredentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for EtcdCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EtcdCredentials({}, password hidden)", self.username)
    }
}

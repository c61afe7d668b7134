//! etcd v3 over its gRPC API, through the `etcd-client` crate: several endpoints
//! (balanced), TLS with the cluster's CA and optionally a client certificate, and
//! username/password authentication (the token is refreshed when etcd expires it).
//!
//! The client connects on first use, not when built: a coordinator whose etcd is not
//! up yet starts, logs, and retries, as it did with the JSON gateway before.

use std::time::Duration;

use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, GetOptions, Identity, LeaseKeepAliveStream,
    LeaseKeeper, PutOptions, SortOrder, SortTarget, TlsOptions, Txn, TxnOp, TxnOpResponse, WatchOptions,
    WatchStream,
};
use tokio::sync::OnceCell;

use super::{EtcdCredentials, EtcdTls};

/// An etcd failure, already worded for an operator.
#[derive(Debug, Clone)]
pub(crate) struct EtcdError(pub String);

impl std::fmt::Display for EtcdError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One key as etcd holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeyValue {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
}

/// A page of a range read, and the store revision it was read at.
#[derive(Debug)]
pub(crate) struct Range {
    pub kvs: Vec<KeyValue>,
    pub more: bool,
    pub revision: i64,
}

/// The outcome of a transaction: whether its compares held, the revision it ran at
/// (the create revision of any key it created), and what its `get`s read.
#[derive(Debug)]
pub(crate) struct TxnOutcome {
    pub succeeded: bool,
    pub revision: i64,
    pub read: Vec<KeyValue>,
}

/// A lazily connected client of one etcd cluster.
pub(crate) struct Connection {
    endpoints: Vec<String>,
    tls: Option<EtcdTls>,
    credentials: Option<EtcdCredentials>,
    timeout: Duration,
    client: OnceCell<Client>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Connection({})", self.endpoints.join(","))
    }
}

/// What an `etcd_client::Error` says, with the causes tonic keeps in its source chain
/// (a refused connection, a certificate that does not verify) and a hint where one
/// helps.
pub(crate) fn describe(e: &etcd_client::Error) -> String {
    use std::error::Error as _;
    let (mut text, mut source): (String, Option<&dyn std::error::Error>) = match e {
        etcd_client::Error::GRpcStatus(s) => {
            let message = if s.message().is_empty() {
                format!("{:?}", s.code())
            } else {
                s.message().to_string()
            };
            (message, s.source())
        }
        etcd_client::Error::TransportError(t) => (t.to_string(), t.source()),
        other => (other.to_string(), None),
    };
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    let hint = if text.contains("authentication failed") || text.contains("invalid auth token") {
        " (check store.etcd_username and store.etcd_password_file)"
    } else if text.contains("permission denied") {
        " (the etcd user needs a role with readwrite on the store's prefix; without \
         store.etcd_username, etcd takes the client certificate's CN as the user)"
    } else if text.contains("BadCertificate") || text.contains("CertificateRequired") {
        " (etcd refused this client: set store.etcd_tls.cert_file and key_file to a \
         certificate signed by etcd's --trusted-ca-file)"
    } else if text.contains("certificate") || text.contains("UnknownIssuer") {
        " (check store.etcd_tls: ca_file must be the CA that signed etcd's certificate)"
    } else {
        ""
    };
    text.push_str(hint);
    text
}

impl Connection {
    pub(crate) fn new(
        endpoints: &[String],
        tls: Option<EtcdTls>,
        credentials: Option<EtcdCredentials>,
        timeout: Duration,
    ) -> Result<Self, EtcdError> {
        for e in endpoints {
            let https = e.starts_with("https://");
            if !(https || e.starts_with("http://")) {
                return Err(EtcdError(format!(
                    "store.etcd_endpoints: {e:?} is not a URL (expected http://HOST:2379 or https://HOST:2379)"
                )));
            }
            if https != tls.is_some() {
                return Err(EtcdError(if https {
                    format!(
                        "store.etcd_endpoints: {e} is https but store.etcd_tls is not set (its ca_file is needed to verify etcd)"
                    )
                } else {
                    format!(
                        "store.etcd_endpoints: {e} is plain http while store.etcd_tls is set: use https:// endpoints"
                    )
                }));
            }
        }
        if endpoints.is_empty() {
            return Err(EtcdError(
                "store.etcd_endpoints: the etcd backend needs at least one endpoint".into(),
            ));
        }
        Ok(Connection {
            endpoints: endpoints
                .iter()
                .map(|e| e.trim_end_matches('/').to_string())
                .collect(),
            tls,
            credentials,
            timeout,
            client: OnceCell::new(),
        })
    }

    pub(crate) fn shown(&self) -> String {
        format!("etcd {}", self.endpoints.join(","))
    }

    fn options(&self) -> ConnectOptions {
        let mut options = ConnectOptions::new()
            .with_timeout(self.timeout)
            .with_connect_timeout(self.timeout)
            // A member cut off from its cluster's leader answers "no leader" instead of
            // serving stale reads or holding a watch that never fires.
            .with_require_leader(true)
            .with_keep_alive(Duration::from_secs(10), self.timeout);
        if let Some(tls) = &self.tls {
            let mut t = TlsOptions::new().ca_certificate(Certificate::from_pem(&tls.ca_pem));
            if let Some((cert, key)) = &tls.identity {
                t = t.identity(Identity::from_pem(cert, key));
            }
            if let Some(name) = &tls.server_name {
                t = t.domain_name(name.clone());
            }
            options = options.with_tls(t);
        }
        if let Some(c) = &self.credentials {
            options = options
                .with_user(c.username.clone(), c.password.clone())
                .with_auto_token_refresh(true);
        }
        options
    }

    /// The client, connecting (and authenticating) on first use; a failed attempt is
    /// retried by the next call.
    async fn client(&self) -> Result<Client, EtcdError> {
        self.client
            .get_or_try_init(|| async {
                let connect = Client::connect(&self.endpoints, Some(self.options()));
                match tokio::time::timeout(self.timeout, connect).await {
                    Ok(Ok(c)) => Ok(c),
                    Ok(Err(e)) => {
                        let mut text = describe(&e);
                        // Under TLS 1.3 etcd's refusal of a missing client certificate
                        // often arrives as a closed connection, not as an alert.
                        let no_identity = self.tls.as_ref().is_some_and(|t| t.identity.is_none());
                        if no_identity && !text.contains("store.etcd_tls") {
                            text.push_str(
                                " (no client certificate was presented: if etcd runs with \
                                 --client-cert-auth, set store.etcd_tls.cert_file and key_file)",
                            );
                        }
                        Err(EtcdError(format!("cannot connect: {text}")))
                    }
                    Err(_) => Err(EtcdError(format!(
                        "no answer within {}s while connecting",
                        self.timeout.as_secs_f32()
                    ))),
                }
            })
            .await
            .cloned()
    }

    /// Errors name the call; the store and the election add which etcd.
    fn fail(&self, what: &str, e: &etcd_client::Error) -> EtcdError {
        EtcdError(format!("{what}: {}", describe(e)))
    }

    /// Keys in `[key, range_end)` (or just `key` when `range_end` is empty), in key
    /// order, at most `limit` of them (0: no limit).
    pub(crate) async fn range(&self, key: &[u8], range_end: &[u8], limit: i64) -> Result<Range, EtcdError> {
        let mut options = GetOptions::new().with_sort(SortTarget::Key, SortOrder::Ascend);
        if !range_end.is_empty() {
            options = options.with_range(range_end);
        }
        if limit > 0 {
            options = options.with_limit(limit);
        }
        let mut resp = self
            .client()
            .await?
            .get(key, Some(options))
            .await
            .map_err(|e| self.fail("range", &e))?;
        let revision = resp.header().map_or(0, |h| h.revision());
        let more = resp.more();
        let kvs = resp
            .take_kvs()
            .into_iter()
            .map(|kv| {
                let (key, value) = kv.into_key_value();
                KeyValue { key, value }
            })
            .collect();
        Ok(Range { kvs, more, revision })
    }

    /// A transaction: `success` when every compare holds, else `failure`.
    pub(crate) async fn txn(
        &self,
        compare: Vec<Compare>,
        success: Vec<TxnOp>,
        failure: Vec<TxnOp>,
    ) -> Result<TxnOutcome, EtcdError> {
        let txn = Txn::new().when(compare).and_then(success).or_else(failure);
        let resp = self
            .client()
            .await?
            .txn(txn)
            .await
            .map_err(|e| self.fail("txn", &e))?;
        let read = resp
            .op_responses()
            .into_iter()
            .filter_map(|r| match r {
                TxnOpResponse::Get(mut g) => Some(g.take_kvs()),
                _ => None,
            })
            .flatten()
            .map(|kv| {
                let (key, value) = kv.into_key_value();
                KeyValue { key, value }
            })
            .collect();
        Ok(TxnOutcome {
            succeeded: resp.succeeded(),
            revision: resp.header().map_or(0, |h| h.revision()),
            read,
        })
    }

    /// Grants a lease of `ttl` seconds; returns its id.
    pub(crate) async fn grant(&self, ttl: i64) -> Result<i64, EtcdError> {
        let resp = self
            .client()
            .await?
            .lease_grant(ttl, None)
            .await
            .map_err(|e| self.fail("lease grant", &e))?;
        Ok(resp.id())
    }

    /// Opens a keep-alive stream for a lease.
    pub(crate) async fn keep_alive(&self, id: i64) -> Result<(LeaseKeeper, LeaseKeepAliveStream), EtcdError> {
        self.client()
            .await?
            .lease_keep_alive(id)
            .await
            .map_err(|e| self.fail("lease keepalive", &e))
    }

    pub(crate) async fn revoke(&self, id: i64) -> Result<(), EtcdError> {
        self.client()
            .await?
            .lease_revoke(id)
            .await
            .map_err(|e| self.fail("lease revoke", &e))?;
        Ok(())
    }

    /// Watches one key from `revision` on.
    pub(crate) async fn watch(&self, key: &[u8], revision: i64) -> Result<WatchStream, EtcdError> {
        self.client()
            .await?
            .watch(key, Some(WatchOptions::new().with_start_revision(revision)))
            .await
            .map_err(|e| self.fail("watch", &e))
    }
}

/// The compare that holds while `key` is the very key created at `create_revision`
/// (0: while `key` does not exist).
pub(crate) fn compare_created(key: &[u8], create_revision: i64) -> Compare {
    Compare::create_revision(key, CompareOp::Equal, create_revision)
}

pub(crate) fn put_op(key: &[u8], value: &[u8], lease: i64) -> TxnOp {
    let options = (lease != 0).then(|| PutOptions::new().with_lease(lease));
    TxnOp::put(key, value, options)
}

pub(crate) fn delete_op(key: &[u8]) -> TxnOp {
    TxnOp::delete(key, None)
}

pub(crate) fn get_op(key: &[u8]) -> TxnOp {
    TxnOp::get(key, None)
}

/// The end of the range of every key starting with `prefix`: the prefix with its last
/// byte below 0xff incremented (etcd's own `GetPrefixRangeEnd`); `\0` means "to the end".
pub(crate) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_increments_the_last_byte() {
        assert_eq!(prefix_end(b"/convoy/a/"), b"/convoy/a0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff\xff"), vec![0]);
    }

    #[test]
    fn endpoints_must_be_urls_and_agree_with_tls() {
        let t = Duration::from_secs(1);
        let err = Connection::new(&["127.0.0.1:2379".into()], None, None, t).unwrap_err();
        assert!(err.0.contains("store.etcd_endpoints"), "{err}");
        let err = Connection::new(&["https://127.0.0.1:2379".into()], None, None, t).unwrap_err();
        assert!(err.0.contains("store.etcd_tls"), "{err}");
        let tls = EtcdTls {
            ca_pem: b"x".to_vec(),
            identity: None,
            server_name: None,
        };
        let err = Connection::new(&["http://127.0.0.1:2379".into()], Some(tls), None, t).unwrap_err();
        assert!(err.0.contains("use https://"), "{err}");
        assert!(Connection::new(&[], None, None, t).is_err());
    }

    #[test]
    fn credentials_never_print_the_password() {
        let c = EtcdCredentials {
            username: "convoy".into(),
            password: "canary-s3cret".into(),
        };
        let shown = format!("{c:?}");
        assert!(
            shown.contains("convoy") && !shown.contains("canary-s3cret"),
            "{shown}"
        );
    }
}

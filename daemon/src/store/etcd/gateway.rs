//! etcd v3 through its JSON gRPC gateway (`POST /v3/...`). The gateway ships with every
//! etcd since 3.3 and speaks plain HTTP/1.1 + JSON, so the daemon needs no second gRPC
//! stack (etcd's own client crate pins another tonic/prost): reqwest is already in the
//! tree for Vault. Keys and values travel base64-encoded; 64-bit integers come back as
//! JSON strings (proto3 JSON mapping) and fields holding defaults are omitted.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};

/// A gateway failure, already worded for an operator.
#[derive(Debug, Clone)]
pub(crate) struct GatewayError(pub String);

impl std::fmt::Display for GatewayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

pub(crate) fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn unb64(s: &str) -> Result<Vec<u8>, GatewayError> {
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .map_err(|e| GatewayError(format!("etcd answered a key or value that is not base64: {e}")))
}

/// Reads an int64 that the gateway sends as a string (or, tolerated, a number).
fn int<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    match Value::deserialize(d)? {
        Value::String(s) => s.parse().map_err(serde::de::Error::custom),
        Value::Number(n) => n.as_i64().ok_or_else(|| serde::de::Error::custom("not an int64")),
        other => Err(serde::de::Error::custom(format!(
            "expected an int64, got {other}"
        ))),
    }
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct Header {
    #[serde(default, deserialize_with = "int")]
    pub revision: i64,
}

#[derive(Debug, Deserialize)]
struct RawKv {
    key: String,
    #[serde(default)]
    value: String,
    #[serde(default, deserialize_with = "int")]
    create_revision: i64,
}

/// One key as etcd holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeyValue {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub create_revision: i64,
}

#[derive(Debug, Deserialize)]
struct RawRange {
    #[serde(default)]
    kvs: Vec<RawKv>,
    #[serde(default)]
    more: bool,
}

#[derive(Debug, Deserialize)]
struct RawTxn {
    #[serde(default)]
    header: Header,
    #[serde(default)]
    succeeded: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
struct RawLease {
    #[serde(default, deserialize_with = "int")]
    id: i64,
    #[serde(default, deserialize_with = "int")]
    ttl: i64,
}

#[derive(Debug, Deserialize)]
struct RawKeepAlive {
    result: Option<RawLease>,
}

/// A page of a range read.
#[derive(Debug)]
pub(crate) struct Range {
    pub kvs: Vec<KeyValue>,
    pub more: bool,
}

/// The outcome of a transaction: whether its compares held, and the revision it ran at
/// (the create revision of any key it created).
#[derive(Debug, Clone, Copy)]
pub(crate) struct TxnOutcome {
    pub succeeded: bool,
    pub revision: i64,
}

/// A client of one etcd cluster: tries each endpoint in turn.
#[derive(Clone)]
pub(crate) struct Gateway {
    http: reqwest::Client,
    endpoints: Arc<[String]>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Gateway({})", self.endpoints.join(","))
    }
}

impl Gateway {
    pub(crate) fn new(endpoints: &[String], timeout: Duration) -> Result<Self, GatewayError> {
        for e in endpoints {
            if !(e.starts_with("http://") || e.starts_with("https://")) {
                return Err(GatewayError(format!(
                    "store.etcd_endpoints: {e:?} is not a URL (expected http://HOST:2379 or https://HOST:2379)"
                )));
            }
        }
        let http =
            crate::tls::https_client(timeout).map_err(|e| GatewayError(format!("etcd client: {e}")))?;
        Ok(Gateway {
            http,
            endpoints: endpoints
                .iter()
                .map(|e| e.trim_end_matches('/').to_string())
                .collect(),
        })
    }

    /// Posts `body` to `path` on the first endpoint that answers. An error etcd itself
    /// returns is final (another member would say the same); a transport error moves on.
    async fn call(&self, path: &str, body: &Value) -> Result<Value, GatewayError> {
        let mut failures = Vec::new();
        for endpoint in self.endpoints.iter() {
            let url = format!("{endpoint}{path}");
            let request = self
                .http
                .post(&url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_string());
            let resp = match request.send().await {
                Ok(r) => r,
                Err(e) => {
                    failures.push(format!("{endpoint}: {e}"));
                    continue;
                }
            };
            let status = resp.status();
            let bytes = match resp.bytes().await {
                Ok(t) => t,
                Err(e) => {
                    failures.push(format!("{endpoint}: reading the answer: {e}"));
                    continue;
                }
            };
            let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
                GatewayError(format!("etcd {url} answered HTTP {status} that is not JSON: {e}"))
            })?;
            if let Some(msg) = value.get("error").and_then(Value::as_str) {
                return Err(GatewayError(format!("etcd {url}: {msg}")));
            }
            if !status.is_success() {
                return Err(GatewayError(format!("etcd {url} answered HTTP {status}")));
            }
            return Ok(value);
        }
        Err(GatewayError(format!(
            "no etcd endpoint answered: {}",
            failures.join("; ")
        )))
    }

    fn parse<T: serde::de::DeserializeOwned>(path: &str, v: Value) -> Result<T, GatewayError> {
        serde_json::from_value(v).map_err(|e| GatewayError(format!("etcd {path}: unexpected answer: {e}")))
    }

    /// Keys in `[key, range_end)` (or just `key` when `range_end` is empty), in key
    /// order, at most `limit` of them.
    pub(crate) async fn range(
        &self,
        key: &[u8],
        range_end: &[u8],
        limit: i64,
    ) -> Result<Range, GatewayError> {
        let mut body = json!({"key": b64(key), "sort_order": "ASCEND", "sort_target": "KEY"});
        if !range_end.is_empty() {
            body["range_end"] = json!(b64(range_end));
        }
        if limit > 0 {
            body["limit"] = json!(limit);
        }
        let raw: RawRange = Self::parse("range", self.call("/v3/kv/range", &body).await?)?;
        let kvs = raw
            .kvs
            .into_iter()
            .map(|k| {
                Ok(KeyValue {
                    key: unb64(&k.key)?,
                    value: unb64(&k.value)?,
                    create_revision: k.create_revision,
                })
            })
            .collect::<Result<_, GatewayError>>()?;
        Ok(Range { kvs, more: raw.more })
    }

    /// A transaction: `compare` and `success` are gateway JSON (`Compare`, `RequestOp`).
    pub(crate) async fn txn(
        &self,
        compare: Vec<Value>,
        success: Vec<Value>,
    ) -> Result<TxnOutcome, GatewayError> {
        let body = json!({"compare": compare, "success": success});
        let raw: RawTxn = Self::parse("txn", self.call("/v3/kv/txn", &body).await?)?;
        Ok(TxnOutcome {
            succeeded: raw.succeeded,
            revision: raw.header.revision,
        })
    }

    /// Grants a lease of `ttl` seconds; returns its id.
    pub(crate) async fn grant(&self, ttl: i64) -> Result<i64, GatewayError> {
        let raw: RawLease = Self::parse(
            "lease grant",
            self.call("/v3/lease/grant", &json!({"TTL": ttl})).await?,
        )?;
        Ok(raw.id)
    }

    /// Renews a lease; returns its remaining TTL (0: the lease is gone).
    pub(crate) async fn keep_alive(&self, id: i64) -> Result<i64, GatewayError> {
        let raw: RawKeepAlive = Self::parse(
            "lease keepalive",
            self.call("/v3/lease/keepalive", &json!({"ID": id})).await?,
        )?;
        Ok(raw.result.map_or(0, |r| r.ttl))
    }

    pub(crate) async fn revoke(&self, id: i64) -> Result<(), GatewayError> {
        self.call("/v3/lease/revoke", &json!({"ID": id})).await?;
        Ok(())
    }
}

/// The `Compare` that holds while `key` is the very key created at `create_revision`
/// (0: while `key` does not exist).
pub(crate) fn compare_created(key: &[u8], create_revision: i64) -> Value {
    json!({"key": b64(key), "target": "CREATE", "result": "EQUAL", "create_revision": create_revision})
}

pub(crate) fn put_op(key: &[u8], value: &[u8], lease: i64) -> Value {
    let mut put = json!({"key": b64(key), "value": b64(value)});
    if lease != 0 {
        put["lease"] = json!(lease);
    }
    json!({"request_put": put})
}

pub(crate) fn delete_op(key: &[u8]) -> Value {
    json!({"request_delete_range": {"key": b64(key)}})
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
    fn gateway_answers_parse_with_omitted_defaults() {
        let t: RawTxn = serde_json::from_value(json!({"header": {"revision": "7"}})).unwrap();
        assert!(!t.succeeded);
        assert_eq!(t.header.revision, 7);
        let l: RawKeepAlive = serde_json::from_value(json!({"result": {"header": {}, "ID": "42"}})).unwrap();
        assert_eq!(l.result.unwrap().ttl, 0);
        let r: RawRange = serde_json::from_value(json!({"header": {}})).unwrap();
        assert!(r.kvs.is_empty() && !r.more);
    }

    #[test]
    fn endpoints_must_be_urls() {
        let err = Gateway::new(&["127.0.0.1:2379".into()], Duration::from_secs(1)).unwrap_err();
        assert!(err.0.contains("store.etcd_endpoints"), "{err}");
    }
}

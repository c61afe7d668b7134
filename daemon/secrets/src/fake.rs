//! A canned-answer HTTP server for unit tests of paths a real OpenBao will not take
//! (a mount whose KV version Vault will not disclose). The integration tests in
//! `tests/tests/vault.rs` run against a real OpenBao.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Answers `GET /v1/<path>` from a table of `(status, JSON body)`; anything else is
/// a 404 with Vault's empty `errors` list. Records every request target (an empty
/// query's `?` dropped).
pub(crate) struct FakeVault {
    pub address: String,
    pub requests: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeVault {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeVault {
    /// `routes`: request target without `/v1/` (`kv/data/a?version=3`) → answer.
    pub(crate) async fn start(routes: &[(&str, u16, serde_json::Value)]) -> FakeVault {
        let routes: HashMap<String, (u16, String)> = routes
            .iter()
            .map(|(path, status, body)| (format!("/v1/{path}"), (*status, body.to_string())))
            .collect();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a port");
        let address = format!("http://{}", listener.local_addr().expect("local address"));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let Some(target) = read_target(&mut stream).await else {
                    continue;
                };
                seen.lock().expect("request log").push(target.clone());
                let (status, body) = routes
                    .get(&target)
                    .cloned()
                    .unwrap_or((404, r#"{"errors":[]}"#.to_string()));
                let answer = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
                     connection: close\r\n\r\n{body}",
                    body.len()
                );
                // The client may have given up; nothing to do about it here.
                let _ = stream.write_all(answer.as_bytes()).await;
                let _ = stream.shutdown().await;
            }
        });
        FakeVault {
            address,
            requests,
            task,
        }
    }

    pub(crate) fn requests(&self) -> Vec<String> {
        self.requests.lock().expect("request log").clone()
    }
}

/// The request target of one GET (the head only: these requests have no body).
async fn read_target(stream: &mut tokio::net::TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    // vaultrs sends `path?` when a request has no query parameters.
    let target = line.split_whitespace().nth(1)?;
    Some(target.trim_end_matches('?').to_string())
}

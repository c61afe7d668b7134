//! A webhook receiver (an HTTP server on loopback, axum): records every POST body, and
//! answers 500 to the first few to exercise the sender's retries.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;

#[derive(Default)]
struct Seen {
    /// POSTs answered with 500 so far.
    refused: usize,
    /// Bodies answered with 200, in arrival order.
    bodies: Vec<String>,
}

/// A running receiver; stops when dropped.
pub struct Receiver {
    /// `http://127.0.0.1:PORT/hook`
    pub url: String,
    seen: Arc<Mutex<Seen>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    /// Listens on an ephemeral port; the first `refuse_first` POSTs get a 500.
    pub async fn start(refuse_first: usize) -> std::io::Result<Receiver> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/hook", listener.local_addr()?);
        let seen = Arc::new(Mutex::new(Seen::default()));
        let app = axum::Router::new()
            .route(
                "/hook",
                axum::routing::post(
                    |State((seen, refuse)): State<(Arc<Mutex<Seen>>, usize)>, body: String| async move {
                        let mut s = seen.lock().unwrap_or_else(|p| p.into_inner());
                        if s.refused < refuse {
                            s.refused += 1;
                            return StatusCode::INTERNAL_SERVER_ERROR;
                        }
                        s.bodies.push(body);
                        StatusCode::OK
                    },
                ),
            )
            .with_state((seen.clone(), refuse_first));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Receiver { url, seen, task })
    }

    /// The bodies accepted so far.
    pub fn bodies(&self) -> Vec<String> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).bodies.clone()
    }

    /// How many POSTs were refused (with 500).
    pub fn refused(&self) -> usize {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).refused
    }

    /// Waits up to `limit` until `done` holds for the bodies accepted; returns them.
    pub async fn wait_until(
        &self,
        limit: Duration,
        done: impl Fn(&[String]) -> bool,
    ) -> Result<Vec<String>, Vec<String>> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let bodies = self.bodies();
            if done(&bodies) {
                return Ok(bodies);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(bodies);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

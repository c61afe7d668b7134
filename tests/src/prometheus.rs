//! Metric analysis on loopback: a small exporter whose per-region error ratio the test
//! sets (axum, `/metrics` in Prometheus' text format) and a real Prometheus (Debian's
//! `prometheus`) scraping it every second.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;

use crate::process::{Service, WorkDir};
use crate::{ServiceError, free_port, http};

type Ratios = Arc<Mutex<BTreeMap<String, f64>>>;

/// Serves `app_error_ratio{region="R"} V` for each region set; stops when dropped.
pub struct Exporter {
    /// `127.0.0.1:PORT`
    pub host: String,
    ratios: Ratios,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Exporter {
    pub async fn start() -> std::io::Result<Exporter> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let host = listener.local_addr()?.to_string();
        let ratios: Ratios = Arc::default();
        let app = axum::Router::new()
            .route(
                "/metrics",
                axum::routing::get(|State(ratios): State<Ratios>| async move {
                    let ratios = ratios.lock().unwrap_or_else(|p| p.into_inner());
                    let mut out = String::from(
                        "# HELP app_error_ratio Share of requests answered with an error.\n# TYPE app_error_ratio gauge\n",
                    );
                    for (region, v) in ratios.iter() {
                        out.push_str(&format!("app_error_ratio{{region=\"{region}\"}} {v}\n"));
                    }
                    out
                }),
            )
            .with_state(ratios.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Exporter { host, ratios, task })
    }

    /// Sets region `region`'s error ratio.
    pub fn set(&self, region: &str, ratio: f64) {
        self.ratios
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(region.to_string(), ratio);
    }
}

/// A Prometheus scraping `targets` every second, on an ephemeral loopback port.
pub struct Prometheus {
    service: Service,
    /// `http://127.0.0.1:PORT`
    pub url: String,
    _dir: WorkDir,
}

impl Prometheus {
    pub async fn start(targets: &[&str]) -> Result<Prometheus, ServiceError> {
        let bin = crate::tools::prometheus()?;
        let dir = WorkDir::new("prometheus")?;
        let port = free_port();
        let list: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: app\n    static_configs:\n      - targets: [{}]\n",
            list.join(", ")
        );
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).map_err(|e| ServiceError::setup("prometheus", e))?;
        let mut cmd = Command::new(bin);
        cmd.arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            // A sample older than 2s no longer answers an instant query, so a changed
            // ratio shows within a scrape or two.
            .arg("--query.lookback-delta=3s");
        let mut service = Service::spawn("prometheus", cmd, dir.path().join("prometheus.log"))?;
        let url = format!("http://127.0.0.1:{port}");
        let ready = format!("{url}/-/ready");
        service
            .wait_ready(Duration::from_secs(60), || async {
                http::request("GET", &ready, &[], None)
                    .await
                    .is_ok_and(|r| r.status == 200)
            })
            .await?;
        Ok(Prometheus {
            service,
            url,
            _dir: dir,
        })
    }

    /// The value of instant query `query` when it answers one series.
    pub async fn value(&self, query: &str) -> Option<f64> {
        let encoded: String = query
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        let r = http::request(
            "GET",
            &format!("{}/api/v1/query?query={encoded}", self.url),
            &[],
            None,
        )
        .await
        .ok()?;
        let v = r.json().ok()?;
        v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
    }

    /// Waits until `query` answers `expected` (a scrape picked a change up).
    pub async fn wait_for(&self, query: &str, expected: f64, limit: Duration) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let got = self.value(query).await;
            if got == Some(expected) {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                return Err(format!(
                    "{query} answered {got:?}, not {expected}, within {limit:?}; log:\n{}",
                    crate::process::tail(self.service.log_path(), 30)
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

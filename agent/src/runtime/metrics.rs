//! The runtime's counters and gauges, read by `/readyz` and `/metrics` (Prometheus
//! text format). Plain atomics: a scrape never blocks the link or an operation.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::SystemTime;

#[derive(Debug, Default)]
pub struct Metrics {
    connected: AtomicBool,
    reconnects: AtomicU64,
    in_flight: AtomicI64,
    /// Unix seconds of the last heartbeat sent; 0 before the first.
    last_heartbeat: AtomicU64,
    /// Finished operations by outcome (`healthy`, `failed`, `aborted`, `dry_run`).
    outcomes: Mutex<BTreeMap<&'static str, u64>>,
}

impl Metrics {
    pub fn set_connected(&self, connected: bool) {
        self.connected.store(connected, Ordering::Relaxed);
    }

    /// Whether a session with the coordinator is up (`/readyz`).
    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    pub fn reconnect(&self) {
        self.reconnects.fetch_add(1, Ordering::Relaxed);
    }

    pub fn reconnects(&self) -> u64 {
        self.reconnects.load(Ordering::Relaxed)
    }

    pub fn started(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    pub fn finished(&self, outcome: Option<&'static str>) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        if let Some(outcome) = outcome {
            self.count(outcome);
        }
    }

    /// Counts an outcome of a command that never ran as an operation (a dry run, an
    /// abort of an unknown operation).
    pub fn count(&self, outcome: &'static str) {
        let mut o = self
            .outcomes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *o.entry(outcome).or_default() += 1;
    }

    pub fn heartbeat(&self, at: SystemTime) {
        let secs = at
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        self.last_heartbeat.store(secs, Ordering::Relaxed);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let outcomes = self
            .outcomes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        s.push_str("# HELP convoy_agent_operations_total Operations finished, by outcome.\n");
        s.push_str("# TYPE convoy_agent_operations_total counter\n");
        for outcome in ["healthy", "failed", "aborted", "dry_run"] {
            let n = outcomes.get(outcome).copied().unwrap_or(0);
            let _ = writeln!(s, "convoy_agent_operations_total{{outcome=\"{outcome}\"}} {n}");
        }
        let gauges: [(&str, &str, &str, i128); 4] = [
            (
                "convoy_agent_operations_in_flight",
                "gauge",
                "Operations running now.",
                i128::from(self.in_flight.load(Ordering::Relaxed)),
            ),
            (
                "convoy_agent_connected",
                "gauge",
                "1 while a session with the coordinator is up.",
                i128::from(u8::from(self.connected())),
            ),
            (
                "convoy_agent_reconnects_total",
                "counter",
                "Sessions re-established (or attempted) after the first.",
                i128::from(self.reconnects()),
            ),
            (
                "convoy_agent_last_heartbeat_timestamp_seconds",
                "gauge",
                "Unix time of the last heartbeat sent to the coordinator.",
                i128::from(self.last_heartbeat.load(Ordering::Relaxed)),
            ),
        ];
        for (name, kind, help, value) in gauges {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_series() {
        let m = Metrics::default();
        m.started();
        m.finished(Some("failed"));
        m.set_connected(true);
        m.reconnect();
        let text = m.render();
        for line in [
            "convoy_agent_operations_total{outcome=\"failed\"} 1",
            "convoy_agent_operations_total{outcome=\"healthy\"} 0",
            "convoy_agent_operations_in_flight 0",
            "convoy_agent_connected 1",
            "convoy_agent_reconnects_total 1",
            "# TYPE convoy_agent_last_heartbeat_timestamp_seconds gauge",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
    }
}

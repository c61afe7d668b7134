//! The runtime's counters and gauges, read by `/readyz` and `/metrics` (OpenMetrics
//! text, `prometheus-client`). Atomics underneath (the metric types are): a scrape never blocks
//! the link or an operation.

use std::time::SystemTime;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    outcome: &'static str,
}

/// The outcomes every scrape shows (zero until they happen).
const OUTCOMES: [&str; 4] = ["healthy", "failed", "aborted", "dry_run"];

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Finished operations by outcome (`healthy`, `failed`, `aborted`, `dry_run`).
    outcomes: Family<Outcome, Counter>,
    in_flight: Gauge,
    connected_gauge: Gauge,
    reconnects_total: Counter,
    /// Unix seconds of the last heartbeat sent; 0 before the first.
    last_heartbeat: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let outcomes = Family::<Outcome, Counter>::default();
        for outcome in OUTCOMES {
            let _ = outcomes.get_or_create(&Outcome { outcome });
        }
        registry.register(
            "convoy_agent_operations",
            "Operations finished, by outcome",
            outcomes.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "convoy_agent_operations_in_flight",
            "Operations running now",
            in_flight.clone(),
        );
        let connected_gauge = Gauge::default();
        registry.register(
            "convoy_agent_connected",
            "1 while a session with the coordinator is up",
            connected_gauge.clone(),
        );
        let reconnects_total = Counter::default();
        registry.register(
            "convoy_agent_reconnects",
            "Sessions re-established (or attempted) after the first",
            reconnects_total.clone(),
        );
        let last_heartbeat = Gauge::default();
        registry.register(
            "convoy_agent_last_heartbeat_timestamp_seconds",
            "Unix time of the last heartbeat sent to the coordinator",
            last_heartbeat.clone(),
        );
        Metrics {
            registry,
            outcomes,
            in_flight,
            connected_gauge,
            reconnects_total,
            last_heartbeat,
        }
    }
}

impl Metrics {
    pub fn set_connected(&self, connected: bool) {
        self.connected_gauge.set(i64::from(connected));
    }

    /// Whether a session with the coordinator is up (`/readyz`).
    pub fn connected(&self) -> bool {
        self.connected_gauge.get() == 1
    }

    pub fn reconnect(&self) {
        self.reconnects_total.inc();
    }

    pub fn reconnects(&self) -> u64 {
        self.reconnects_total.get()
    }

    pub fn started(&self) {
        self.in_flight.inc();
    }

    pub fn finished(&self, outcome: Option<&'static str>) {
        self.in_flight.dec();
        if let Some(outcome) = outcome {
            self.count(outcome);
        }
    }

    /// Counts an outcome of a command that never ran as an operation (a dry run, an
    /// abort of an unknown operation).
    pub fn count(&self, outcome: &'static str) {
        self.outcomes.get_or_create(&Outcome { outcome }).inc();
    }

    pub fn heartbeat(&self, at: SystemTime) {
        let secs = at
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        self.last_heartbeat.set(i64::try_from(secs).unwrap_or(i64::MAX));
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut s = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut s, &self.registry);
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

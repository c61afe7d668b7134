//! The coordinator's `/metrics`.

use super::*;

/// What `/metrics` shows, kept by the core thread in a Prometheus registry
/// (`prometheus-client`, OpenMetrics text).
pub(super) struct Metrics {
    registry: prometheus_client::registry::Registry,
    /// Operations finished, by kind and outcome.
    finished: Family<OperationLabels, Counter>,
    /// Time from dispatch to settled, per context.
    rollout: Family<ContextLabel, Histogram, fn() -> Histogram>,
    connected: Gauge,
    contexts: Gauge,
    running: Gauge,
    queued: Gauge,
    diffs_pending: Gauge,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    kind: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ContextLabel {
    context: String,
}

/// Buckets of a context's rollout time: 1 s to about 2 h, doubling.
fn rollout_histogram() -> Histogram {
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        1.0, 2.0, 14,
    ))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = prometheus_client::registry::Registry::default();
        let finished = Family::<OperationLabels, Counter>::default();
        let rollout = Family::<ContextLabel, Histogram, fn() -> Histogram>::new_with_constructor(
            rollout_histogram as fn() -> Histogram,
        );
        registry.register(
            "convoy_operations",
            "Operations finished, by kind and outcome",
            finished.clone(),
        );
        registry.register_with_unit(
            "convoy_context_rollout",
            "Time from dispatch to settled, per context",
            prometheus_client::registry::Unit::Seconds,
            rollout.clone(),
        );
        let gauge = |registry: &mut prometheus_client::registry::Registry, name: &str, help: &str| {
            let g = Gauge::default();
            registry.register(name, help, g.clone());
            g
        };
        Metrics {
            connected: gauge(&mut registry, "convoy_agents_connected", "Agents connected now"),
            contexts: gauge(&mut registry, "convoy_contexts", "Contexts in the registry"),
            running: gauge(
                &mut registry,
                "convoy_operations_running",
                "Operations running now",
            ),
            queued: gauge(
                &mut registry,
                "convoy_operations_queued",
                "Operations waiting behind a running one",
            ),
            diffs_pending: gauge(
                &mut registry,
                "convoy_diff_dry_runs_pending",
                "Diff dry runs waiting for an agent's answer",
            ),
            registry,
            finished,
            rollout,
        }
    }
}

impl Metrics {
    pub(super) fn record(&mut self, op: &Operation) {
        let kind = match op.kind {
            OperationKind::Deploy => "deploy",
            OperationKind::Rollback => "rollback",
        };
        let outcome = match op.phase {
            OperationPhase::Succeeded => "succeeded",
            OperationPhase::Failed => "failed",
            OperationPhase::Aborted => "aborted",
            OperationPhase::Cancelled => "cancelled",
            _ => "other",
        };
        self.finished
            .get_or_create(&OperationLabels { kind, outcome })
            .inc();
        for c in op.contexts.values() {
            if let (Some(a), Some(b)) = (c.dispatched_at, c.finished_at) {
                self.rollout
                    .get_or_create(&ContextLabel {
                        context: c.context.clone(),
                    })
                    .observe(b.saturating_sub(a) as f64 / 1000.0);
            }
        }
    }

    /// The OpenMetrics text exposition, with the gauges as they are now.
    pub(super) fn render(&self, g: &Gauges) -> String {
        let as_gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.connected.set(as_gauge(g.connected));
        self.contexts.set(as_gauge(g.contexts));
        self.running.set(as_gauge(g.running));
        self.queued.set(as_gauge(g.queued));
        self.diffs_pending.set(as_gauge(g.diffs_pending));
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod metrics_tests {
    use super::*;
    use crate::model::{Plan, Requested};

    #[test]
    fn metrics_keep_their_names_and_labels_in_openmetrics_text() {
        let plan = Plan {
            progress_deadline: std::time::Duration::from_secs(60),
            min_ready_window: std::time::Duration::ZERO,
            ..Plan::for_tests(&[&["east"]])
        };
        let req = Requested {
            by: "jenkins",
            reason: "",
            at: 1,
        };
        let mut op = Operation::queued(
            "op-1".into(),
            "web.shop".into(),
            OperationKind::Deploy,
            2,
            plan,
            &BTreeMap::new(),
            req,
        );
        op.phase = OperationPhase::Succeeded;
        let east = op.contexts.get_mut("east").unwrap();
        east.dispatched_at = Some(1_000);
        east.finished_at = Some(4_500);
        let mut m = Metrics::default();
        m.record(&op);
        let text = m.render(&Gauges {
            connected: 3,
            contexts: 4,
            running: 1,
            queued: 2,
            diffs_pending: 0,
        });
        for line in [
            "# TYPE convoy_operations counter",
            "convoy_operations_total{kind=\"deploy\",outcome=\"succeeded\"} 1",
            "# TYPE convoy_context_rollout_seconds histogram",
            "convoy_context_rollout_seconds_sum{context=\"east\"} 3.5",
            "convoy_context_rollout_seconds_count{context=\"east\"} 1",
            "convoy_context_rollout_seconds_bucket{le=\"4.0\",context=\"east\"} 1",
            "convoy_context_rollout_seconds_bucket{le=\"2.0\",context=\"east\"} 0",
            "convoy_agents_connected 3",
            "convoy_contexts 4",
            "convoy_operations_running 1",
            "convoy_operations_queued 2",
            "convoy_diff_dry_runs_pending 0",
            "# EOF",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
    }
}

//! Prometheus metrics (text exposition at `GET /metrics`). Never a secret in a label.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProjectionLabel {
    pub projection: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabel {
    pub phase: &'static str,
}

#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    /// Appends by result: ok, duplicate, conflict, error.
    pub appends: Family<ResultLabel, Counter>,
    pub conflicts: Counter,
    pub append_seconds: Histogram,
    /// Events in the log not yet applied by a projection.
    pub projection_lag: Family<ProjectionLabel, Gauge>,
    /// Batches a projection could not apply (each retried).
    pub projection_errors: Family<ProjectionLabel, Counter>,
    /// The log position a projection is stuck on (0 while it is not).
    pub projection_stuck_position: Family<ProjectionLabel, Gauge>,
    /// Where a gateway tool call spends its time: `prepare` (checks and loads up to the
    /// `tool.requested` append), `requested` (that append), `upstream`, `completed` (the
    /// `tool.completed` append).
    pub tool_call_phase_seconds: Family<PhaseLabel, Histogram>,
}

fn phase_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("authledger");
        let appends = Family::<ResultLabel, Counter>::default();
        let conflicts = Counter::default();
        let append_seconds = Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        let projection_lag = Family::<ProjectionLabel, Gauge>::default();
        let projection_errors = Family::<ProjectionLabel, Counter>::default();
        let projection_stuck_position = Family::<ProjectionLabel, Gauge>::default();
        let tool_call_phase_seconds =
            Family::<PhaseLabel, Histogram>::new_with_constructor(phase_histogram as fn() -> _);
        registry.register("ledger_appends", "Event appends by result", appends.clone());
        registry.register(
            "ledger_conflicts",
            "Version conflicts (re-decided)",
            conflicts.clone(),
        );
        registry.register(
            "ledger_append_seconds",
            "Latency of one ledger append",
            append_seconds.clone(),
        );
        registry.register(
            "projection_lag_events",
            "Events not yet applied",
            projection_lag.clone(),
        );
        registry.register(
            "projection_errors",
            "Batches a projection could not apply (retried)",
            projection_errors.clone(),
        );
        registry.register(
            "projection_stuck_position",
            "The log position a projection cannot apply (0: none)",
            projection_stuck_position.clone(),
        );
        registry.register(
            "tool_call_phase_seconds",
            "Time of one gateway tool call by phase",
            tool_call_phase_seconds.clone(),
        );
        Metrics {
            registry: Arc::new(registry),
            appends,
            conflicts,
            append_seconds,
            projection_lag,
            projection_errors,
            projection_stuck_position,
            tool_call_phase_seconds,
        }
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

impl Metrics {
    /// Records `seconds` for one phase of a gateway tool call.
    pub fn tool_call_phase(&self, phase: &'static str, seconds: f64) {
        self.tool_call_phase_seconds
            .get_or_create(&PhaseLabel { phase })
            .observe(seconds);
    }
}

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

/// An HTTP request: its method, the route template (`unmatched` when no route matched)
/// and the answer's status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub method: &'static str,
    pub route: String,
    pub status: u16,
}

/// A request budget of the edge (`api::ratelimit::Limits`): requests, workspaces, denials,
/// callbacks.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BudgetLabel {
    pub budget: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabel {
    version: &'static str,
}

/// A webhook endpoint, by its id (never its URL: it may carry a credential).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WebhookLabel {
    pub webhook: String,
}

/// Where a SIEM feed send failed: destination, connect, tls, send.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StageLabel {
    pub stage: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

/// The instruments, shared: a clone (the request log's layer takes one per request) is one
/// reference count, not one per instrument.
#[derive(Clone)]
pub struct Metrics(Arc<Instruments>);

impl std::ops::Deref for Metrics {
    type Target = Instruments;

    fn deref(&self) -> &Instruments {
        &self.0
    }
}

pub struct Instruments {
    registry: Registry,
    /// Appends by result: ok, duplicate, conflict, error.
    pub appends: Family<ResultLabel, Counter>,
    pub conflicts: Counter,
    pub append_seconds: Histogram,
    /// Events in the log not yet applied by a projection.
    pub projection_lag: Family<ProjectionLabel, Gauge>,
    /// Times a projection's log subscription ended or went quiet and was opened again.
    pub projection_resubscribes: Family<ProjectionLabel, Counter>,
    /// Batches a projection could not apply (each retried).
    pub projection_errors: Family<ProjectionLabel, Counter>,
    /// The log position a projection is stuck on (0 while it is not).
    pub projection_stuck_position: Family<ProjectionLabel, Gauge>,
    /// Where a gateway tool call spends its time: `prepare` (checks and loads up to the
    /// `tool.requested` append), `requested` (that append), `upstream`, `completed` (the
    /// `tool.completed` append, after the answer: not part of the agent's latency).
    pub tool_call_phase_seconds: Family<PhaseLabel, Histogram>,
    /// HTTP requests answered, by method, route template and status.
    pub http_requests: Family<HttpLabels, Counter>,
    /// Their latency (from the request head to the answer's head).
    pub http_request_seconds: Family<HttpLabels, Histogram>,
    /// Requests refused (429) because a budget was spent, by budget.
    pub rate_limit_refusals: Family<BudgetLabel, Counter>,
    /// Refused requests (`access.denied`) by reason.
    pub access_denied: Family<ReasonLabel, Counter>,
    /// Webhook delivery attempts by result: delivered (a 2xx), failed (retried later).
    pub webhook_deliveries: Family<ResultLabel, Counter>,
    /// Their latency, from sending to the receiver's answer.
    pub webhook_delivery_seconds: Histogram,
    /// Per endpoint that is on: events appended to the log since the oldest event of its
    /// workspace it has not been sent yet (0 when none is due).
    pub webhook_lag: Family<WebhookLabel, Gauge>,
    /// Refresh rounds of connections by outcome: refreshed, failed (transient, retried),
    /// expired (`invalid_grant`).
    pub refresh_outcomes: Family<ResultLabel, Counter>,
    /// Audit events the SIEM feed wrote to the syslog daemon.
    pub syslog_messages: Counter,
    /// Its failed attempts by stage (the events wait and are sent again).
    pub syslog_failures: Family<StageLabel, Counter>,
    /// Events appended to the log since the oldest one the SIEM feed has not sent (0: none).
    pub syslog_lag: Gauge,
}

fn phase_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

/// 1 ms to about 16 s.
fn http_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
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
        let projection_resubscribes = Family::<ProjectionLabel, Counter>::default();
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
            "Latency of one ledger append a caller waits on",
            append_seconds.clone(),
        );
        registry.register(
            "projection_lag_events",
            "Events not yet applied",
            projection_lag.clone(),
        );
        registry.register(
            "projection_resubscribes",
            "Log subscriptions of a projection that ended or went quiet and were opened again",
            projection_resubscribes.clone(),
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
        let http_requests = Family::<HttpLabels, Counter>::default();
        let http_request_seconds =
            Family::<HttpLabels, Histogram>::new_with_constructor(http_histogram as fn() -> _);
        let rate_limit_refusals = Family::<BudgetLabel, Counter>::default();
        let access_denied = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, route template and status",
            http_requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Latency of HTTP requests, by method, route template and status",
            http_request_seconds.clone(),
        );
        registry.register(
            "rate_limit_refusals",
            "Requests refused because a request budget was spent, by budget",
            rate_limit_refusals.clone(),
        );
        registry.register(
            "access_denied",
            "Refused requests (access.denied), by reason",
            access_denied.clone(),
        );
        let webhook_deliveries = Family::<ResultLabel, Counter>::default();
        let webhook_delivery_seconds = http_histogram();
        let refresh_outcomes = Family::<ResultLabel, Counter>::default();
        let webhook_lag = Family::<WebhookLabel, Gauge>::default();
        registry.register(
            "webhook_lag_events",
            "Events appended since the oldest one a webhook endpoint has not received (0: none due), by endpoint",
            webhook_lag.clone(),
        );
        registry.register(
            "webhook_deliveries",
            "Webhook delivery attempts, by result (delivered: a 2xx; failed: retried later)",
            webhook_deliveries.clone(),
        );
        registry.register(
            "webhook_delivery_duration_seconds",
            "Latency of webhook delivery attempts",
            webhook_delivery_seconds.clone(),
        );
        registry.register(
            "connection_refreshes",
            "Refresh rounds of connections, by outcome (refreshed, failed, expired)",
            refresh_outcomes.clone(),
        );
        let syslog_messages = Counter::default();
        let syslog_failures = Family::<StageLabel, Counter>::default();
        let syslog_lag = Gauge::default();
        registry.register(
            "syslog_messages",
            "Audit events the SIEM feed wrote to the syslog daemon",
            syslog_messages.clone(),
        );
        registry.register(
            "syslog_failures",
            "Failed SIEM feed attempts, by stage (destination, connect, tls, send; retried)",
            syslog_failures.clone(),
        );
        registry.register(
            "syslog_lag_events",
            "Events appended since the oldest one the SIEM feed has not sent (0: none due)",
            syslog_lag.clone(),
        );
        // A gauge at 1 (the `_info` convention), so Prometheus-text tools read it too.
        let build_info = Family::<VersionLabel, Gauge>::default();
        build_info
            .get_or_create(&VersionLabel {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        registry.register("build_info", "The running build", build_info);
        Metrics(Arc::new(Instruments {
            registry,
            appends,
            conflicts,
            append_seconds,
            projection_lag,
            projection_errors,
            projection_resubscribes,
            projection_stuck_position,
            tool_call_phase_seconds,
            http_requests,
            http_request_seconds,
            rate_limit_refusals,
            access_denied,
            webhook_deliveries,
            webhook_delivery_seconds,
            webhook_lag,
            refresh_outcomes,
            syslog_messages,
            syslog_failures,
            syslog_lag,
        }))
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

impl Metrics {
    /// Counts one answered HTTP request and its latency.
    pub fn http_request(&self, method: &'static str, route: &str, status: u16, seconds: f64) {
        let labels = HttpLabels {
            method,
            route: route.to_string(),
            status,
        };
        self.http_request_seconds
            .get_or_create(&labels)
            .observe(seconds);
        self.http_requests.get_or_create(&labels).inc();
    }

    /// The refusal counter of one request budget (a handle on the family's member, for the
    /// limiter to keep).
    pub fn rate_limit_refusals_of(&self, budget: &'static str) -> Counter {
        self.rate_limit_refusals
            .get_or_create(&BudgetLabel { budget })
            .clone()
    }

    /// Sets an endpoint's delivery lag (`webhook_lag_events`).
    pub fn webhook_lag(&self, webhook: &str, events: u64) {
        self.webhook_lag
            .get_or_create(&WebhookLabel {
                webhook: webhook.to_string(),
            })
            .set(i64::try_from(events).unwrap_or(i64::MAX));
    }

    /// Drops the lag of an endpoint that is no longer on (disabled or deleted).
    pub fn forget_webhook(&self, webhook: &str) {
        self.webhook_lag.remove(&WebhookLabel {
            webhook: webhook.to_string(),
        });
    }

    /// Counts one failed SIEM feed attempt by its stage.
    pub fn syslog_failure(&self, stage: &'static str) {
        self.syslog_failures
            .get_or_create(&StageLabel { stage })
            .inc();
    }

    /// Counts one refused request by its reason (`access.denied`'s `reason`).
    pub fn access_denied(&self, reason: &str) {
        self.access_denied
            .get_or_create(&ReasonLabel {
                reason: reason.to_string(),
            })
            .inc();
    }
}

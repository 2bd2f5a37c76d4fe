//! OpenTelemetry traces over OTLP/HTTP (protobuf), opt-in by the standard variables:
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (used as given) or `OTEL_EXPORTER_OTLP_ENDPOINT`
//! (`/v1/traces` appended), `OTEL_SERVICE_NAME` (default `authledger`), and the exporter's
//! and batch processor's own `OTEL_*` settings (headers, timeout, `OTEL_BSP_*`).
//!
//! Unset, nothing is built: no span is made per request, no header is read or sent, and no
//! event carries a trace id ([`enabled`] is one atomic load).
//!
//! Set, each HTTP request is a server span (a child of the caller's W3C `traceparent`, or a
//! new trace), upstream tool calls and OAuth calls are client spans whose context goes out
//! as `traceparent`, and every event the request appends records its trace id
//! (`trace_id` in the signed body, `schemas/README.md`). Only the crate's own spans
//! (target `authledger`, info and above) are exported, whatever `RUST_LOG` says for logs.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::filter::{Filtered, Targets};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer as _;

static ENABLED: AtomicBool = AtomicBool::new(false);

/// The W3C trace context header.
pub const TRACEPARENT: &str = "traceparent";
/// Vendor state that rides with `traceparent`.
pub const TRACESTATE: &str = "tracestate";

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("cannot build the OTLP trace exporter: {0}")]
    Exporter(String),
}

/// The trace pipeline of a process that asked for one; [`Telemetry::shutdown`] flushes it.
pub struct Telemetry {
    provider: SdkTracerProvider,
}

/// Whether traces are exported (set once by [`Telemetry::from_env`]).
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Whether the environment asks for traces: an OTLP endpoint for traces is set and
/// `OTEL_TRACES_EXPORTER` is not `none`.
pub fn requested(var: impl Fn(&str) -> Option<String>) -> bool {
    let set = |name: &str| var(name).is_some_and(|v| !v.trim().is_empty());
    let exporter_off = var("OTEL_TRACES_EXPORTER").is_some_and(|v| v.trim() == "none");
    !exporter_off
        && (set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") || set("OTEL_EXPORTER_OTLP_ENDPOINT"))
}

impl Telemetry {
    /// The pipeline the environment asks for, or `None` (tracing off).
    pub fn from_env() -> Result<Option<Telemetry>, TelemetryError> {
        if !requested(|name| std::env::var(name).ok()) {
            return Ok(None);
        }
        // The exporter reads the endpoint, headers and timeout variables itself.
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .build()
            .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
        let mut resource = Resource::builder();
        if std::env::var("OTEL_SERVICE_NAME").is_err() {
            resource = resource.with_service_name("authledger");
        }
        let resource = resource
            .with_attribute(opentelemetry::KeyValue::new(
                "service.version",
                env!("CARGO_PKG_VERSION"),
            ))
            .build();
        let provider = SdkTracerProvider::builder()
            .with_resource(resource)
            .with_batch_exporter(exporter)
            .build();
        ENABLED.store(true, Ordering::Relaxed);
        Ok(Some(Telemetry { provider }))
    }

    /// The `tracing` layer that turns the crate's spans into OpenTelemetry spans.
    pub fn layer<S>(
        &self,
    ) -> Filtered<
        tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::SdkTracer>,
        Targets,
        S,
    >
    where
        S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    {
        tracing_opentelemetry::layer()
            .with_tracer(self.provider.tracer("authledger"))
            .with_filter(Targets::new().with_target("authledger", tracing::Level::INFO))
    }

    /// Exports what is still queued and stops the exporter (blocks; call outside the
    /// runtime, at exit).
    pub fn shutdown(self) {
        ENABLED.store(false, Ordering::Relaxed);
        if let Err(e) = self.provider.shutdown() {
            eprintln!("authledger: traces not all exported at exit: {e}");
        }
    }
}

/// Paths polled by orchestrators and scrapers: not traced (a span every few seconds each).
const UNTRACED: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// The server span of one HTTP request, a child of the caller's `traceparent` when it
/// carries a valid one. `None` when tracing is off, and for the health and metrics probes.
/// [`end_request`] names it once the route is known.
pub fn request_span(
    method: &'static str,
    path: &str,
    traceparent: Option<&str>,
    tracestate: Option<&str>,
) -> Option<tracing::Span> {
    if !enabled() || UNTRACED.contains(&path) {
        return None;
    }
    let span = tracing::info_span!(
        target: "authledger::request",
        "request",
        otel.name = method,
        otel.kind = "server",
        http.request.method = method,
        http.route = tracing::field::Empty,
        http.response.status_code = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    );
    if let Some(parent) = traceparent {
        let mut carrier = HashMap::with_capacity(2);
        carrier.insert(TRACEPARENT.to_string(), parent.to_string());
        if let Some(state) = tracestate {
            carrier.insert(TRACESTATE.to_string(), state.to_string());
        }
        let cx = TraceContextPropagator::new().extract(&carrier);
        if cx.span().span_context().is_valid() {
            // Fails only when the span is disabled (then there is nothing to export).
            let _ = span.set_parent(cx);
        }
    }
    Some(span)
}

/// Names a request span by its route template (`GET /v1/tools/{name}/call`) and records
/// its status (5xx: an error).
pub fn end_request(span: &tracing::Span, method: &str, route: &str, status: u16) {
    // The span may have started already (an event read its trace id): rename it there.
    span.context()
        .span()
        .update_name(format!("{method} {route}"));
    span.record("http.route", route);
    span.record("http.response.status_code", i64::from(status));
    if status >= 500 {
        span.record("otel.status_code", "ERROR");
    }
}

/// A client span for an outbound call (`upstream`, `oauth`), a child of the current span;
/// `Span::none()` when tracing is off.
pub fn client_span(name: &'static str, method: &str) -> tracing::Span {
    if !enabled() {
        return tracing::Span::none();
    }
    tracing::info_span!(
        target: "authledger::outbound",
        "outbound",
        otel.name = name,
        otel.kind = "client",
        http.request.method = method,
    )
}

/// The `traceparent` (and `tracestate`) of the current span, to send on an outbound call;
/// empty when tracing is off or there is no current trace.
pub fn outbound_headers() -> Vec<(&'static str, String)> {
    if !enabled() {
        return Vec::new();
    }
    let cx = tracing::Span::current().context();
    if !cx.span().span_context().is_valid() {
        return Vec::new();
    }
    let mut carrier: HashMap<String, String> = HashMap::with_capacity(2);
    TraceContextPropagator::new().inject_context(&cx, &mut carrier);
    [TRACEPARENT, TRACESTATE]
        .into_iter()
        .filter_map(|name| {
            carrier
                .remove(name)
                .filter(|v| !v.is_empty())
                .map(|v| (name, v))
        })
        .collect()
}

/// The trace id of the current span (32 lower-case hex), recorded in the events it
/// appends; `None` when tracing is off or there is no current trace.
pub fn current_trace_id() -> Option<String> {
    if !enabled() {
        return None;
    }
    let cx = tracing::Span::current().context();
    let span = cx.span();
    let context = span.span_context();
    context.is_valid().then(|| context.trace_id().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traces_are_requested_by_an_otlp_endpoint_only() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert!(!requested(env(&[])));
        assert!(!requested(env(&[("OTEL_SERVICE_NAME", "x")])));
        assert!(!requested(env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", " ")])));
        assert!(requested(env(&[(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "http://127.0.0.1:4318"
        )])));
        assert!(requested(env(&[(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://127.0.0.1:4318/v1/traces"
        )])));
        assert!(!requested(env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
            ("OTEL_TRACES_EXPORTER", "none"),
        ])));
    }

    #[test]
    fn off_means_no_span_header_or_trace_id() {
        assert!(request_span(
            "GET",
            "/v1/connections",
            Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            None
        )
        .is_none());
        assert!(outbound_headers().is_empty());
        assert_eq!(current_trace_id(), None);
    }
}

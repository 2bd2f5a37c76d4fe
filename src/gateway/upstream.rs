//! Step 7: the upstream call, with the credential injected. Retries idempotent methods on
//! timeouts, connection errors and 5xx; never follows redirects; bounds the response body.

use std::sync::Arc;
use std::time::Duration;

use super::tools::UpstreamRequest;
use crate::app::AppState;
use crate::net::{HttpClient, Policy};

/// Largest upstream response body relayed to the agent.
pub const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

pub(super) struct UpstreamResponse {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

pub(super) enum UpstreamFailure {
    Timeout,
    Unreachable(String),
}

/// The upstream client: only destinations the policy allows (each request's URL judged,
/// each name resolved by the policy and connected to at a checked address), no redirects.
pub(super) fn client(destinations: &Arc<Policy>) -> Result<HttpClient, reqwest::Error> {
    HttpClient::new(destinations, |b| {
        b.user_agent(concat!("authledger/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
    })
}

/// Calls the upstream; retries idempotent methods on timeouts, connection errors and 5xx.
/// Never follows redirects (a redirect could carry the credential to another host).
pub(super) async fn call(
    state: &AppState,
    request: &UpstreamRequest,
) -> (Result<UpstreamResponse, UpstreamFailure>, u32) {
    let settings = &state.gateway.settings;
    let tries = if request.method.is_idempotent() {
        1 + settings.idempotent_retries
    } else {
        1
    };
    let mut last = Err(UpstreamFailure::Unreachable("not attempted".into()));
    for attempt in 1..=tries {
        last = attempt_once(state, request).await;
        let retry = match &last {
            Ok(r) => r.status >= 500,
            Err(_) => true,
        };
        if !retry || attempt == tries {
            return (last, attempt);
        }
        tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
    }
    (last, tries)
}

/// One attempt, a client span of the current trace when traces are exported: its
/// `traceparent` goes to the upstream unless the tool sets that header itself.
async fn attempt_once(
    state: &AppState,
    request: &UpstreamRequest,
) -> Result<UpstreamResponse, UpstreamFailure> {
    use tracing::Instrument as _;
    let span = crate::telemetry::client_span("upstream", request.method.as_str());
    send(state, request).instrument(span).await
}

async fn send(
    state: &AppState,
    request: &UpstreamRequest,
) -> Result<UpstreamResponse, UpstreamFailure> {
    let method = reqwest::Method::from_bytes(request.method.as_str().as_bytes())
        .map_err(|e| UpstreamFailure::Unreachable(e.to_string()))?;
    let mut builder = state
        .gateway
        .http
        .request(method, &request.url)
        .map_err(|refused| UpstreamFailure::Unreachable(refused.to_string()))?
        .timeout(state.gateway.settings.upstream_timeout);
    for (name, value) in &request.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    for (name, value) in crate::telemetry::outbound_headers() {
        if !request
            .headers
            .iter()
            .any(|(set, _)| set.eq_ignore_ascii_case(name))
        {
            builder = builder.header(name, value);
        }
    }
    if let Some(body) = &request.body {
        builder = builder.body(body.clone());
    }
    let mut resp = builder.send().await.map_err(classify)?;
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(classify)? {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(UpstreamFailure::Unreachable(format!(
                "the response is larger than {MAX_RESPONSE_BYTES} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(UpstreamResponse {
        status,
        content_type,
        body,
    })
}

/// A failed call. Failing to connect (refused, no route, connect timeout, unknown name) is
/// one answer, so a tool's base URL cannot tell an open port from a closed one; a refusal
/// by the destination policy says so. Never the URL: it may carry a query-string credential.
fn classify(e: reqwest::Error) -> UpstreamFailure {
    if e.is_connect() || crate::net::client::refusal(&e).is_some() {
        UpstreamFailure::Unreachable(crate::net::client::failure(&e))
    } else if e.is_timeout() {
        UpstreamFailure::Timeout
    } else {
        UpstreamFailure::Unreachable(e.without_url().to_string())
    }
}

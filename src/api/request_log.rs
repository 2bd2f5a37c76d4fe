//! The request log and the HTTP metrics: one log line per request (method, route template,
//! status, latency, request id, workspace, actor) and `authledger_http_*` by route template,
//! method and status; `x-request-id` taken from the client when it is sane, made (UUIDv7)
//! otherwise, and returned on every answer.
//!
//! Never a raw path or query string (a hosted connect link's secret rides in its path, an
//! OAuth code in its query), never a header value but the request id: the route is the
//! template of the route table (`/v1/connections/{id}`) or `unmatched`.
//!
//! Two layers and authorization share one [`Noted`] slot put on the request: [`layer`]
//! (outermost: the request id, the clock, the line and the metrics), [`note_route`] (the
//! matched template, before authorization so refused requests have it) and
//! [`note_caller`] (called by authorization once it knows who called: a layer of its own
//! cost every request a boxed service and a future more).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;

use crate::commands::{Caller, EndUser};
use crate::metrics::Metrics;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest client request id kept (longer ones are replaced).
const MAX_REQUEST_ID: usize = 128;

/// What the inner layers learn about a request, for its log line.
#[derive(Debug, Default)]
struct Note {
    route: Option<String>,
    workspace: Option<String>,
    actor_type: Option<&'static str>,
    actor_id: Option<String>,
}

/// The slot the inner layers fill (cloned with the request's extensions).
#[derive(Clone, Default)]
pub struct Noted(Arc<Mutex<Note>>);

impl Noted {
    fn with(&self, f: impl FnOnce(&mut Note)) {
        let mut note = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut note);
    }
}

/// The request id of the client's `x-request-id` when it is 1-128 visible ASCII characters,
/// otherwise a new UUIDv7.
pub fn request_id(given: Option<&HeaderValue>) -> HeaderValue {
    given
        .filter(|v| {
            let b = v.as_bytes();
            !b.is_empty() && b.len() <= MAX_REQUEST_ID && b.iter().all(|c| c.is_ascii_graphic())
        })
        .cloned()
        .unwrap_or_else(|| {
            HeaderValue::from_str(&uuid::Uuid::now_v7().to_string())
                .unwrap_or_else(|_| HeaderValue::from_static("unknown"))
        })
}

/// The outermost layer of the server's router (API, console, portal).
pub async fn layer(State(metrics): State<Metrics>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = request_id(req.headers().get(&REQUEST_ID));
    req.headers_mut().insert(REQUEST_ID, id.clone());
    let noted = Noted::default();
    req.extensions_mut().insert(noted.clone());
    let method = method_label(req.method());
    let span = {
        let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
        crate::telemetry::request_span(
            method,
            req.uri().path(),
            header(crate::telemetry::TRACEPARENT),
            header(crate::telemetry::TRACESTATE),
        )
    };
    let mut response = match &span {
        Some(span) => {
            use tracing::Instrument as _;
            next.run(req).instrument(span.clone()).await
        }
        None => next.run(req).await,
    };
    response.headers_mut().insert(REQUEST_ID, id.clone());
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    let note = std::mem::take(&mut *noted.0.lock().unwrap_or_else(|p| p.into_inner()));
    let route = note.route.as_deref().unwrap_or("unmatched");
    metrics.http_request(method, route, status, elapsed.as_secs_f64());
    if let Some(span) = &span {
        crate::telemetry::end_request(span, method, route, status);
    }
    tracing::info!(
        target: "authledger::request",
        method,
        route,
        status,
        latency_ms = (elapsed.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0,
        request_id = id.to_str().unwrap_or(""),
        workspace = note.workspace.as_deref(),
        actor_type = note.actor_type,
        actor_id = note.actor_id.as_deref(),
        "request"
    );
    response
}

/// Notes the matched route's template (a route layer over every router, so it runs before
/// authorization: refused requests have their route too).
pub async fn note_route(req: Request, next: Next) -> Response {
    if let (Some(noted), Some(path)) = (
        req.extensions().get::<Noted>(),
        req.extensions().get::<MatchedPath>(),
    ) {
        let template = path.as_str().to_string();
        noted.with(|n| n.route = Some(template));
    }
    next.run(req).await
}

/// Notes who called: authorization calls it once it has put the caller on the request.
pub fn note_caller(req: &Request) {
    if let Some(noted) = req.extensions().get::<Noted>() {
        if let Some(caller) = req.extensions().get::<Caller>() {
            let actor = caller.actor();
            noted.with(|n| {
                n.workspace = Some(caller.workspace_id.clone());
                n.actor_type = Some(actor_type(actor.actor_type));
                n.actor_id = Some(actor.id);
            });
        } else if let Some(user) = req.extensions().get::<EndUser>() {
            noted.with(|n| {
                n.workspace = Some(user.workspace_id.clone());
                n.actor_type = Some(actor_type(crate::ledger::ActorType::User));
                n.actor_id = Some(user.user_id.clone());
            });
        }
    }
}

fn actor_type(t: crate::ledger::ActorType) -> &'static str {
    use crate::ledger::ActorType as T;
    match t {
        T::System => "system",
        T::ApiKey => "api_key",
        T::User => "user",
        T::Member => "member",
        T::Agent => "agent",
        T::Anonymous => "anonymous",
    }
}

/// The method as a label: the standard ones by name, anything else `other` (a client
/// chooses the method; labels must stay few).
fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sane_request_id_is_kept_and_anything_else_replaced() {
        let keep = HeaderValue::from_static("abc-123_XYZ.~!");
        assert_eq!(request_id(Some(&keep)), keep);
        let long = HeaderValue::from_str(&"a".repeat(MAX_REQUEST_ID)).unwrap();
        assert_eq!(request_id(Some(&long)), long);
        for bad in [
            HeaderValue::from_str(&"a".repeat(MAX_REQUEST_ID + 1)).unwrap(),
            HeaderValue::from_static(""),
            HeaderValue::from_static("has space"),
            HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap(),
            HeaderValue::from_bytes(b"tab\there").unwrap(),
        ] {
            let made = request_id(Some(&bad));
            assert_ne!(made, bad);
            let uuid = uuid::Uuid::parse_str(made.to_str().unwrap()).unwrap();
            assert_eq!(uuid.get_version_num(), 7);
        }
        let made = request_id(None);
        assert_eq!(
            uuid::Uuid::parse_str(made.to_str().unwrap())
                .unwrap()
                .get_version_num(),
            7
        );
    }
}

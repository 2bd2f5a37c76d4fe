//! `Idempotency-Key` at the edge (`commands::idempotency` decides): on the routes
//! `routes::idempotent` names, a request with a key is claimed in the log before it runs,
//! and its answer is recorded for a retry. Same key and request: the recorded answer
//! (`Idempotent-Replayed: true`); another request: 422; the first still running: 409 with
//! `Retry-After`. A claimed request runs in its own task, so a client that gives up (the
//! reason it retries) does not cut it short: its outcome is recorded either way.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::problem::Problem;
use super::routes::{self, Route};
use crate::app::AppState;
use crate::commands::idempotency::{self as idem, Answer, Begin, IdempotencyKey, Scope};
use crate::commands::{refusals, written, Caller, EndUser};
use crate::gateway::Authority;
use crate::ledger::{Actor, ActorType};

pub const HEADER: &str = "idempotency-key";
/// On an answer replayed from the record rather than run again.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

pub async fn idempotency(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(route) = req.extensions().get::<Route>().copied() else {
        return next.run(req).await;
    };
    let Some(raw) = req.headers().get(HEADER) else {
        return next.run(req).await;
    };
    if !routes::idempotent(route.0) {
        return next.run(req).await;
    }
    let key = match IdempotencyKey::parse(raw.as_bytes()) {
        Ok(key) => key,
        Err(detail) => {
            return Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid-idempotency-key",
                "Invalid Idempotency-Key",
                Some(detail),
            )
            .into_response()
        }
    };
    // The authorization layer put the caller on the request; a route without one has none.
    let Some(scope) = scope_of(&req) else {
        return next.run(req).await;
    };
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, super::MAX_BODY_BYTES).await else {
        return Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            "Request body too large",
            Some(format!("at most {} bytes", super::MAX_BODY_BYTES)),
        )
        .into_response();
    };
    let path = parts
        .uri
        .path_and_query()
        .map_or(parts.uri.path(), |p| p.as_str());
    let shape = idem::RequestShape {
        method: parts.method.as_str(),
        route: route.0.path,
        path_and_query: path,
        body: &bytes,
    };
    match idem::begin(&state, &scope, &key, shape).await {
        Err(e) => ApiError::from(e).into_response(),
        Ok(Begin::Replay(answer)) => replayed(answer),
        Ok(Begin::Mismatch) => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency-key-reused",
            "Idempotency-Key reused for another request",
            Some("this key was used for a request with another method, path or body".into()),
        )
        .into_response(),
        Ok(Begin::Running { retry_after_secs }) => {
            let mut resp = Problem::new(
                StatusCode::CONFLICT,
                "idempotency-key-in-use",
                "A request with this Idempotency-Key is still running",
                Some("retry after Retry-After seconds for its answer".into()),
            )
            .into_response();
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            resp
        }
        Ok(Begin::Proceed(claim)) => {
            let req = Request::from_parts(parts, Body::from(bytes));
            run_claimed(state, claim, req, next).await
        }
    }
}

/// Runs the claimed request in its own task, bounded by the lease, and records its outcome:
/// the answer when the request wrote to the log or succeeded, else the key is released.
async fn run_claimed(state: AppState, claim: idem::Claim, req: Request, next: Next) -> Response {
    let budget = refusals::current();
    let time_left = claim.time_left(state.clock.now());
    // In the request's trace span, so the events it appends record its trace id.
    let task = tokio::spawn(tracing::Instrument::in_current_span(async move {
        let run = written::track(async move {
            match budget {
                Some(b) => refusals::within(b, next.run(req)).await,
                None => next.run(req).await,
            }
        });
        let (answer, headers, recorded) = match tokio::time::timeout(time_left, run).await {
            Ok((resp, position)) => {
                let (parts, body) = resp.into_parts();
                // The handler built the body in memory already; this only gathers it.
                let body = axum::body::to_bytes(body, usize::MAX)
                    .await
                    .unwrap_or_default()
                    .to_vec();
                let status = parts.status.as_u16();
                let answer = Answer {
                    status,
                    content_type: content_type(&parts.headers),
                    body,
                    position,
                };
                let recorded = position > 0 || parts.status.is_success();
                (answer, parts.headers, recorded)
            }
            Err(_) => (overran(), Default::default(), true),
        };
        if let Err(e) = idem::finish(&state, &claim, &answer, recorded).await {
            // The claim then ends with its lease; the caller still gets its answer.
            tracing::warn!(error = %e, "cannot record an idempotent request's outcome");
        }
        (answer, headers)
    }));
    let (answer, headers) = match task.await {
        Ok(done) => done,
        Err(e) => return Problem::internal(&e).into_response(),
    };
    written::reached(answer.position);
    let mut resp = (
        StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        answer.body,
    )
        .into_response();
    *resp.headers_mut() = headers;
    resp
}

/// The answer of a request cut off at its lease: whether it acted is unknown, and a retry
/// with the key must not run it again.
fn overran() -> Answer {
    let problem = Problem::new(
        StatusCode::GATEWAY_TIMEOUT,
        "idempotent-outcome-unknown",
        "The request did not finish within its idempotency lease",
        Some("its outcome is unknown; check the audit log before retrying with a new key".into()),
    );
    Answer {
        status: problem.status,
        content_type: Some("application/problem+json".into()),
        body: serde_json::to_vec(&problem).unwrap_or_default(),
        position: 0,
    }
}

fn replayed(answer: Answer) -> Response {
    written::reached(answer.position);
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = (status, answer.body).into_response();
    let headers = resp.headers_mut();
    if let Some(v) = answer
        .content_type
        .and_then(|c| HeaderValue::from_str(&c).ok())
    {
        headers.insert(header::CONTENT_TYPE, v);
    }
    // A recorded answer may hold a secret (a token, a new key): never cached.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    resp
}

fn content_type(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Whose keys: a scoped token's own (`token:<jti>`), else the API key's, else the end
/// user's.
fn scope_of(req: &Request) -> Option<Scope> {
    let ext = req.extensions();
    if let Some(caller) = ext.get::<Caller>() {
        let principal = match ext.get::<Authority>().and_then(Authority::token) {
            Some(claims) => format!("token:{}", claims.jti),
            None => format!("api_key:{}", caller.api_key_id),
        };
        return Some(Scope {
            workspace_id: caller.workspace_id.clone(),
            principal,
            actor: caller.actor(),
        });
    }
    ext.get::<EndUser>().map(|user| Scope {
        workspace_id: user.workspace_id.clone(),
        principal: format!("end_user:{}", user.user_id),
        actor: Actor {
            actor_type: ActorType::User,
            id: user.user_id.clone(),
        },
    })
}

//! HTTP layer: thin axum handlers over `AppState`. No SQL or NATS here.

pub mod problem;

use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::app::AppState;
use problem::Problem;

/// Largest request body accepted (413 beyond).
pub const MAX_BODY_BYTES: usize = 256 * 1024;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .layer(tower_http::limit::RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .with_state(state)
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// Ready when the log and the projections answer; 503 with the reason otherwise.
async fn readyz(State(state): State<AppState>) -> Response {
    let probe = Duration::from_secs(3);
    let head = tokio::time::timeout(probe, state.log.head()).await;
    let offset = tokio::time::timeout(probe, state.projections.offset()).await;
    match (head, offset) {
        (Ok(Ok(head)), Ok(Ok(offset))) => {
            Json(json!({ "status": "ready", "log_head": head, "projection_offset": offset })).into_response()
        }
        (head, offset) => {
            let mut reasons = Vec::new();
            match head {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => reasons.push(format!("event log: {e}")),
                Err(_) => reasons.push("event log: no answer within 3s".to_string()),
            }
            match offset {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => reasons.push(format!("projections: {e}")),
                Err(_) => reasons.push("projections: no answer within 3s".to_string()),
            }
            Problem::new(StatusCode::SERVICE_UNAVAILABLE, "not-ready", "Service not ready", Some(reasons.join("; ")))
                .into_response()
        }
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
        state.metrics.encode(),
    )
        .into_response()
}

async fn not_found() -> Problem {
    Problem::new(StatusCode::NOT_FOUND, "not-found", "No such route", None)
}

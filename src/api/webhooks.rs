//! `/v1/webhooks`: webhook endpoints (Standard Webhooks). Extract, call one command, map the
//! error. The signing secret appears only in the answers of create and rotate-secret.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use secrecy::ExposeSecret as _;
use serde_json::json;

use super::error::ApiError;
use super::extract::ApiJson;
use super::routes::Route;
use crate::app::AppState;
use crate::commands::webhooks::{self, WebhookInput, WebhookPatch, WithSecret};
use crate::commands::{Caller, CommandError};
use crate::domain::DomainError;
use crate::projector::store::reads::WebhookRow;

fn view(row: &WebhookRow) -> serde_json::Value {
    let events: serde_json::Value = serde_json::from_str(&row.events).unwrap_or(json!([]));
    json!({
        "id": row.id,
        "url": row.url,
        "events": events,
        "enabled": row.enabled,
        "disabled_reason": row.disabled_reason,
        "secret_fingerprint": row.secret_fingerprint,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    })
}

fn with_secret(made: &WithSecret) -> serde_json::Value {
    let mut v = view(&made.row);
    v["secret"] = json!(made.secret.expose_secret());
    v
}

/// A command's not-found as the edge answers it: another workspace's id is recorded as a
/// probe, and both read as unknown.
async fn or_probe<T>(
    state: &AppState,
    caller: &Caller,
    route: Route,
    id: &str,
    result: Result<T, CommandError>,
) -> Result<T, ApiError> {
    match result {
        Err(CommandError::Domain(DomainError::NotFound(_))) => {
            let elsewhere = state
                .projections
                .webhook_elsewhere(&caller.workspace_id, id)
                .await?;
            crate::commands::probe_of_other_workspace(state, caller, route.pair(), id, elsewhere);
            Err(ApiError::NotFound("webhook"))
        }
        other => Ok(other?),
    }
}

/// Registers an endpoint; the answer carries its signing secret, shown only here.
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<WebhookInput>,
) -> Result<Response, ApiError> {
    let made = webhooks::create(&state, &caller, body).await?;
    Ok((StatusCode::CREATED, Json(with_secret(&made))).into_response())
}

pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, ApiError> {
    let rows = webhooks::list(&state, &caller).await?;
    Ok(Json(json!({ "items": rows.iter().map(view).collect::<Vec<_>>() })).into_response())
}

pub async fn get(
    State(state): State<AppState>,
    Extension(route): Extension<Route>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let found = webhooks::get(&state, &caller, &id).await;
    let row = or_probe(&state, &caller, route, &id, found).await?;
    Ok(Json(view(&row)).into_response())
}

pub async fn update(
    State(state): State<AppState>,
    Extension(route): Extension<Route>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<WebhookPatch>,
) -> Result<Response, ApiError> {
    let changed = webhooks::update(&state, &caller, &id, body).await;
    let row = or_probe(&state, &caller, route, &id, changed).await?;
    Ok(Json(view(&row)).into_response())
}

pub async fn delete(
    State(state): State<AppState>,
    Extension(route): Extension<Route>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let deleted = webhooks::delete(&state, &caller, &id).await;
    or_probe(&state, &caller, route, &id, deleted).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A new signing secret, shown only here; the previous one signs too for 24 hours.
pub async fn rotate_secret(
    State(state): State<AppState>,
    Extension(route): Extension<Route>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let rotated = webhooks::rotate_secret(&state, &caller, &id).await;
    let made = or_probe(&state, &caller, route, &id, rotated).await?;
    let mut v = with_secret(&made);
    v["previous_secret_valid_for_secs"] = json!(webhooks::ROTATION_GRACE.whole_seconds());
    Ok(Json(v).into_response())
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayBody {
    pub from_position: u64,
}

/// Sends again every wanted event from `from_position` on.
pub async fn replay(
    State(state): State<AppState>,
    Extension(route): Extension<Route>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ReplayBody>,
) -> Result<Response, ApiError> {
    let replayed = webhooks::replay(&state, &caller, &id, body.from_position).await;
    let row = or_probe(&state, &caller, route, &id, replayed).await?;
    let mut v = view(&row);
    v["from_position"] = json!(body.from_position);
    Ok((StatusCode::ACCEPTED, Json(v)).into_response())
}

/// The endpoint's delivery attempts, newest first.
pub async fn deliveries(
    State(state): State<AppState>,
    Extension(route): Extension<Route>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let found = webhooks::deliveries(&state, &caller, &id).await;
    let rows = or_probe(&state, &caller, route, &id, found).await?;
    Ok(Json(json!({ "items": rows })).into_response())
}

//! `/v1/api-keys` and `/v1/workspace`: extract, call one command or query, map the error.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::json;

use super::error::ApiError;
use super::extract::ApiJson;
use super::routes::Route;
use crate::app::AppState;
use crate::commands::{self, Caller};
use crate::domain::Role;
use crate::projector::store::ApiKeyRow;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKey {
    pub name: String,
    pub role: Role,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub expires_at: Option<time::OffsetDateTime>,
}

fn view(row: &ApiKeyRow) -> serde_json::Value {
    json!({
        "id": row.id,
        "name": row.name,
        "role": row.role,
        "key_prefix": row.key_prefix,
        "created_at": row.created_at,
        "expires_at": row.expires_at,
        "revoked_at": row.revoked_at,
    })
}

pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<CreateApiKey>,
) -> Result<Response, ApiError> {
    let created =
        commands::create_api_key(&state, &caller, body.name, body.role, body.expires_at).await?;
    let mut v = view(&created.row);
    v["key"] = json!(created.key.expose_secret());
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, ApiError> {
    let rows = state.projections.api_keys(&caller.workspace_id).await?;
    Ok(Json(json!({ "items": rows.iter().map(view).collect::<Vec<_>>() })).into_response())
}

pub async fn get(
    State(state): State<AppState>,
    Extension(route): Extension<Route>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    match state.projections.api_key(&caller.workspace_id, &id).await? {
        Some(row) => Ok(Json(view(&row)).into_response()),
        None => not_found(&state, &caller, route, &id).await,
    }
}

pub async fn revoke(
    State(state): State<AppState>,
    Extension(route): Extension<Route>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    if state
        .projections
        .api_key(&caller.workspace_id, &id)
        .await?
        .is_none()
    {
        return not_found(&state, &caller, route, &id).await;
    }
    commands::revoke_api_key(&state, &caller, &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn not_found(
    state: &AppState,
    caller: &Caller,
    route: Route,
    id: &str,
) -> Result<Response, ApiError> {
    let elsewhere = state
        .projections
        .api_key_elsewhere(&caller.workspace_id, id)
        .await?;
    super::not_found_audited(state, caller, route.pair(), id, elsewhere, "api key").await
}

pub async fn workspace(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, ApiError> {
    match state.projections.workspace(&caller.workspace_id).await? {
        Some(ws) => Ok(
            Json(json!({ "id": ws.id, "name": ws.name, "created_at": ws.created_at }))
                .into_response(),
        ),
        None => Err(ApiError::NotFound("workspace")),
    }
}

//! `/v1/auth-configs`: extract, call one command or query, map the error. Secrets never
//! leave: settings are returned as projected (a client secret only as its fingerprint).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::ApiError;
use super::extract::ApiJson;
use super::extract::ApiQuery;
use super::problem::Problem;
use super::routes::Route;
use crate::app::AppState;
use crate::commands::auth_configs::{self, CreateAuthConfigInput, UpdateAuthConfigInput};
use crate::commands::Caller;
use crate::domain::auth_config::AuthConfigCommand;
use crate::projector::store::AuthConfigRow;

fn view(row: &AuthConfigRow) -> Value {
    json!({
        "id": row.id,
        "name": row.name,
        "provider": row.provider,
        "auth_type": row.auth_type,
        "status": row.status,
        "version": row.version,
        "settings": serde_json::from_str::<Value>(&row.settings).unwrap_or(Value::Null),
        "connections": row.connections,
        "last_used_at": row.last_used_at,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    })
}

async fn current(
    state: &AppState,
    caller: &Caller,
    route: Route,
    id: &str,
) -> Result<Response, ApiError> {
    match state
        .projections
        .auth_config(&caller.workspace_id, id)
        .await?
    {
        Some(row) => Ok(Json(view(&row)).into_response()),
        None => not_found(state, caller, route, id).await,
    }
}

async fn not_found(
    state: &AppState,
    caller: &Caller,
    route: Route,
    id: &str,
) -> Result<Response, ApiError> {
    let elsewhere = state
        .projections
        .auth_config_elsewhere(&caller.workspace_id, id)
        .await?;
    super::not_found_audited(state, caller, route.pair(), id, elsewhere, "auth config").await
}

async fn exists(
    state: &AppState,
    caller: &Caller,
    route: Route,
    id: &str,
) -> Result<Option<Response>, ApiError> {
    match state
        .projections
        .auth_config(&caller.workspace_id, id)
        .await?
    {
        Some(row) if row.status != "deleted" => Ok(None),
        _ => not_found(state, caller, route, id).await.map(Some),
    }
}

pub async fn create(
    State(state): State<AppState>,
    Extension(route): Extension<Route>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<CreateAuthConfigInput>,
) -> Result<Response, ApiError> {
    let (id, _) = auth_configs::create(&state, &caller, body).await?;
    let resp = current(&state, &caller, route, &id).await?;
    Ok((StatusCode::CREATED, resp).into_response())
}

pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, ApiError> {
    let rows = state.projections.auth_configs(&caller.workspace_id).await?;
    Ok(Json(json!({ "items": rows.iter().map(view).collect::<Vec<_>>() })).into_response())
}

pub async fn get(
    State(state): State<AppState>,
    Extension(route): Extension<Route>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<super::extract::AsOfQuery>,
) -> Result<Response, ApiError> {
    let Some(at) = q.instant()? else {
        return current(&state, &caller, route, &id).await;
    };
    // Point in time: rebuilt from the log, whatever became of it since.
    if state
        .projections
        .auth_config(&caller.workspace_id, &id)
        .await?
        .is_none()
    {
        return not_found(&state, &caller, route, &id).await;
    }
    match crate::commands::audit::auth_config_as_of(&state, &caller.workspace_id, &id, at).await? {
        Some(v) => Ok(Json(v).into_response()),
        None => Err(ApiError::NotFound("auth config at that time")),
    }
}

pub async fn update(
    State(state): State<AppState>,
    Extension(route): Extension<Route>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateAuthConfigInput>,
) -> Result<Response, ApiError> {
    if let Some(resp) = exists(&state, &caller, route, &id).await? {
        return Ok(resp);
    }
    auth_configs::update(&state, &caller, &id, body).await?;
    current(&state, &caller, route, &id).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteQuery {
    pub cascade: Option<String>,
}

pub async fn delete(
    State(state): State<AppState>,
    Extension(route): Extension<Route>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<DeleteQuery>,
) -> Result<Response, ApiError> {
    let cascade = match q.cascade.as_deref() {
        None => false,
        Some("revoke") => true,
        Some(_) => return Err(ApiError::BadRequest("cascade must be \"revoke\"".into())),
    };
    if let Some(resp) = exists(&state, &caller, route, &id).await? {
        return Ok(resp);
    }
    match auth_configs::delete(&state, &caller, &id, cascade).await? {
        auth_configs::Deleted::Done { .. } => Ok(StatusCode::NO_CONTENT.into_response()),
        auth_configs::Deleted::HasDependants(ids) => Ok(Problem::new(
            StatusCode::CONFLICT,
            "has-dependants",
            "Connections depend on this auth config",
            Some(format!(
                "{} live connection(s) depend on it; revoke them or delete with ?cascade=revoke",
                ids.len()
            )),
        )
        .with("dependants", json!(ids))
        .into_response()),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisableBody {
    pub reason: Option<String>,
}

pub async fn disable(
    State(state): State<AppState>,
    Extension(route): Extension<Route>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    // The body is optional: `{}` or `{"reason": "…"}`.
    let reason = if body.is_empty() {
        None
    } else {
        serde_json::from_slice::<DisableBody>(&body)
            .map_err(|e| ApiError::BadRequest(format!("invalid body: {e}")))?
            .reason
    };
    if let Some(resp) = exists(&state, &caller, route, &id).await? {
        return Ok(resp);
    }
    auth_configs::lifecycle(&state, &caller, &id, AuthConfigCommand::Disable { reason }).await?;
    current(&state, &caller, route, &id).await
}

pub async fn enable(
    State(state): State<AppState>,
    Extension(route): Extension<Route>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    if let Some(resp) = exists(&state, &caller, route, &id).await? {
        return Ok(resp);
    }
    auth_configs::lifecycle(&state, &caller, &id, AuthConfigCommand::Enable).await?;
    current(&state, &caller, route, &id).await
}

pub async fn versions(
    State(state): State<AppState>,
    Extension(route): Extension<Route>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    if state
        .projections
        .auth_config(&caller.workspace_id, &id)
        .await?
        .is_none()
    {
        return not_found(&state, &caller, route, &id).await;
    }
    let rows = state
        .projections
        .auth_config_versions(&caller.workspace_id, &id)
        .await?;
    let items: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "version": r.version,
                "kind": r.kind,
                "name": r.name,
                "changed": serde_json::from_str::<Value>(&r.changed).unwrap_or(Value::Null),
                "settings": serde_json::from_str::<Value>(&r.settings).unwrap_or(Value::Null),
                "at": r.at,
                "actor_id": r.actor_id,
            })
        })
        .collect();
    Ok(Json(json!({ "items": items })).into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestBody {
    /// Checked by the command (a rejection here would echo a mistyped password).
    pub credentials: Option<serde_json::Value>,
}

/// Tests an auth config with a native connector (postgres: connect and `SELECT 1`).
pub async fn test(
    State(state): State<AppState>,
    Extension(route): Extension<Route>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<TestBody>,
) -> Result<Response, ApiError> {
    if let Some(resp) = exists(&state, &caller, route, &id).await? {
        return Ok(resp);
    }
    let report = auth_configs::test(&state, &caller, &id, body.credentials).await?;
    Ok(Json(report).into_response())
}

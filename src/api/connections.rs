//! `/v1/connections`, the OAuth callback and end users' own connections: extract, call one
//! command or query, map the outcome. No token or credential ever leaves through here.

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::ApiError;
use super::extract::{ApiJson, ApiQuery};
use super::problem::Problem;
use super::routes::Route;
use crate::app::AppState;
use crate::commands::connections::{
    self, CallbackError, CallbackQuery, CreateConnectionInput, RefreshOutcome,
};
use crate::commands::{Caller, EndUser};
use crate::domain::connection::{ConnectionStatus, RefreshTrigger};
use crate::projector::store::{ConnectionFilter, ConnectionRow};

/// Largest page of a list.
const MAX_LIMIT: i64 = 200;
const DEFAULT_LIMIT: i64 = 50;

fn json_list(text: &str) -> Value {
    serde_json::from_str::<Value>(text).unwrap_or(Value::Array(Vec::new()))
}

pub fn view(row: &ConnectionRow) -> Value {
    json!({
        "id": row.id,
        "auth_config_id": row.auth_config_id,
        "user_id": row.user_id,
        "status": row.status,
        "status_reason": row.status_reason,
        "scopes": json_list(&row.scopes),
        "requested_scopes": json_list(&row.requested_scopes),
        "redirect_url": row.redirect_url,
        "expires_at": row.expires_at,
        "has_refresh_token": row.has_refresh_token,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
        "last_refreshed_at": row.last_refreshed_at,
        "last_used_at": row.last_used_at,
        "version": row.version,
    })
}

/// The connection if it is the caller's workspace's and not deleted; otherwise the audited
/// 404 (identical for unknown ids and other workspaces' ids).
async fn visible(
    state: &AppState,
    caller: &Caller,
    route: Route,
    id: &str,
) -> Result<Result<ConnectionRow, Response>, ApiError> {
    match state
        .projections
        .connection(&caller.workspace_id, id)
        .await?
    {
        Some(row) if row.status != ConnectionStatus::Deleted.as_str() => Ok(Ok(row)),
        _ => {
            let elsewhere = state
                .projections
                .connection_elsewhere(&caller.workspace_id, id)
                .await?;
            super::not_found_audited(state, caller, route.pair(), id, elsewhere, "connection")
                .await
                .map(Err)
        }
    }
}

async fn current(state: &AppState, workspace_id: &str, id: &str) -> Result<Response, ApiError> {
    match state.projections.connection(workspace_id, id).await? {
        Some(row) => Ok(Json(view(&row)).into_response()),
        None => Err(ApiError::NotFound("connection")),
    }
}

pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<CreateConnectionInput>,
) -> Result<Response, ApiError> {
    let created = connections::create(&state, &caller.workspace_id, &caller.actor(), body).await?;
    let mut out = created
        .row
        .as_ref()
        .map(view)
        .unwrap_or_else(|| json!({ "id": created.id, "status": created.status.as_str() }));
    if let Value::Object(map) = &mut out {
        if let Some(url) = created.connect_url {
            map.insert("connect_url".into(), json!(url));
        }
        if let Some(at) = created.expires_at {
            map.insert(
                "connect_expires_at".into(),
                json!(crate::projector::plan::rfc3339(at)),
            );
        }
        map.insert("position".into(), json!(created.position));
    }
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub user_id: Option<String>,
    pub auth_config_id: Option<String>,
    pub status: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<i64>,
    /// Handled by the consistency layer (wait for the projections to reach it).
    pub min_position: Option<u64>,
}

fn page_filter(q: ListQuery) -> Result<ConnectionFilter, ApiError> {
    if let Some(s) = &q.status {
        if ConnectionStatus::parse(s).is_none_or(|s| s == ConnectionStatus::Deleted) {
            return Err(ApiError::BadRequest(
                "status must be initiated|active|needs_reconsent|expired|revoked|error".into(),
            ));
        }
    }
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::BadRequest(format!("limit must be 1-{MAX_LIMIT}")));
    }
    let after_id = match q.cursor {
        None => None,
        Some(c) => Some(
            B64URL
                .decode(c.as_bytes())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                // Cursors are connection ids (UUIDs): anything else was not issued here.
                .filter(|id| uuid::Uuid::parse_str(id).is_ok())
                .ok_or_else(|| ApiError::BadRequest("cursor is not one this API issued".into()))?,
        ),
    };
    Ok(ConnectionFilter {
        user_id: q.user_id,
        auth_config_id: q.auth_config_id,
        status: q.status,
        after_id,
        // One more than asked, to know whether there is a next page.
        limit: limit + 1,
    })
}

async fn page(
    state: &AppState,
    workspace_id: &str,
    filter: ConnectionFilter,
) -> Result<Response, ApiError> {
    let want = usize::try_from(filter.limit - 1).unwrap_or(0);
    let mut rows = state.projections.connections(workspace_id, &filter).await?;
    let next_cursor = if rows.len() > want {
        rows.truncate(want);
        rows.last().map(|r| B64URL.encode(r.id.as_bytes()))
    } else {
        None
    };
    Ok(Json(json!({
        "items": rows.iter().map(view).collect::<Vec<_>>(),
        "next_cursor": next_cursor,
    }))
    .into_response())
}

pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Response, ApiError> {
    page(&state, &caller.workspace_id, page_filter(q)?).await
}

pub async fn get(
    State(state): State<AppState>,
    Extension(route): Extension<Route>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<super::extract::AsOfQuery>,
) -> Result<Response, ApiError> {
    if let Some(at) = q.instant()? {
        // Point in time: rebuilt from the log, even if deleted since.
        if state
            .projections
            .connection(&caller.workspace_id, &id)
            .await?
            .is_none()
        {
            let elsewhere = state
                .projections
                .connection_elsewhere(&caller.workspace_id, &id)
                .await?;
            return super::not_found_audited(
                &state,
                &caller,
                route.pair(),
                &id,
                elsewhere,
                "connection",
            )
            .await;
        }
        return match crate::commands::audit::connection_as_of(&state, &caller.workspace_id, &id, at)
            .await?
        {
            Some(v) => Ok(Json(v).into_response()),
            None => Err(ApiError::NotFound("connection at that time")),
        };
    }
    match visible(&state, &caller, route, &id).await? {
        Ok(row) => Ok(Json(view(&row)).into_response()),
        Err(resp) => Ok(resp),
    }
}

pub async fn refresh(
    State(state): State<AppState>,
    Extension(route): Extension<Route>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    if let Err(resp) = visible(&state, &caller, route, &id).await? {
        return Ok(resp);
    }
    let outcome = connections::refresh(
        &state,
        &caller.workspace_id,
        &id,
        &caller.actor(),
        RefreshTrigger::OnDemand,
    )
    .await?;
    match outcome {
        RefreshOutcome::Refreshed { .. } => current(&state, &caller.workspace_id, &id).await,
        RefreshOutcome::Failed { error } => Ok(Problem::new(
            StatusCode::BAD_GATEWAY,
            "refresh-failed",
            "The provider did not refresh the connection; it stays active until its token expires",
            Some(error),
        )
        .into_response()),
        RefreshOutcome::Expired { reason } => Ok(Problem::new(
            StatusCode::CONFLICT,
            "connection-expired",
            "The provider refused the refresh: the connection is expired and must be reconnected",
            Some(reason),
        )
        .into_response()),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeBody {
    pub reason: Option<String>,
}

fn optional_body(body: &[u8]) -> Result<RevokeBody, ApiError> {
    if body.is_empty() {
        return Ok(RevokeBody::default());
    }
    let b: RevokeBody = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("invalid body: {e}")))?;
    if let Some(r) = &b.reason {
        crate::domain::check_name("reason", r, 500).map_err(crate::commands::CommandError::from)?;
    }
    Ok(b)
}

pub async fn revoke(
    State(state): State<AppState>,
    Extension(route): Extension<Route>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let body = optional_body(&body)?;
    if let Err(resp) = visible(&state, &caller, route, &id).await? {
        return Ok(resp);
    }
    connections::revoke(
        &state,
        &caller.workspace_id,
        &id,
        &caller.actor(),
        body.reason,
    )
    .await?;
    current(&state, &caller.workspace_id, &id).await
}

pub async fn delete(
    State(state): State<AppState>,
    Extension(route): Extension<Route>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    if let Err(resp) = visible(&state, &caller, route, &id).await? {
        return Ok(resp);
    }
    connections::delete(&state, &caller.workspace_id, &id, &caller.actor()).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The provider sends the end user's browser here. Success or a provider error both end in
/// a 303 to the connection's `redirect_url`; a bad `state` is a 400 and an audit event.
pub async fn callback(
    State(state): State<AppState>,
    Extension(route): Extension<Route>,
    headers: axum::http::HeaderMap,
    Query(mut q): Query<CallbackQuery>,
) -> Result<Response, ApiError> {
    // The flow's binding, when the connect page left one (a bound workspace needs it).
    let secure = state.connections.public_url.starts_with("https://");
    let name = connections::binding::cookie_name_of_state(q.state.as_deref().unwrap_or(""), secure);
    q.binding = crate::web::cookie_value(&headers, &name).map(str::to_string);
    match connections::callback(&state, route.pair(), q).await {
        Ok(outcome) => {
            let url = outcome
                .return_url()
                .map_err(|e| ApiError::BadRequest(format!("redirect_url: {e}")))?;
            Ok((
                StatusCode::SEE_OTHER,
                [
                    (header::LOCATION, url),
                    (header::CACHE_CONTROL, "no-store".to_string()),
                ],
            )
                .into_response())
        }
        Err(CallbackError::InvalidState(_)) => Ok(Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid-oauth-state",
            "This sign-in link is unknown, expired or already used",
            Some("start the connection again to get a new link".into()),
        )
        .into_response()),
        Err(CallbackError::Command(e)) => Err(e.into()),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MyListQuery {
    pub auth_config_id: Option<String>,
    pub status: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<i64>,
    pub min_position: Option<u64>,
}

/// An end user's own connections (never another user's).
pub async fn my_list(
    State(state): State<AppState>,
    Extension(user): Extension<EndUser>,
    ApiQuery(q): ApiQuery<MyListQuery>,
) -> Result<Response, ApiError> {
    let filter = page_filter(ListQuery {
        user_id: Some(user.user_id.clone()),
        auth_config_id: q.auth_config_id,
        status: q.status,
        cursor: q.cursor,
        limit: q.limit,
        min_position: q.min_position,
    })?;
    page(&state, &user.workspace_id, filter).await
}

/// An end user revokes one of their own connections. Another user's (or workspace's)
/// connection answers 404 like an unknown id, and the attempt is audited.
pub async fn my_revoke(
    State(state): State<AppState>,
    Extension(route): Extension<Route>,
    Extension(user): Extension<EndUser>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let body = optional_body(&body)?;
    connections::revoke_own(&state, &user, &id, body.reason, route.at(Some(&id))).await?;
    current(&state, &user.workspace_id, &id).await
}

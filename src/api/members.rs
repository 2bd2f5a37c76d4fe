//! `/v1/members`: the team that signs in to the console (invite, list, change a role,
//! remove, reset a second factor) and the workspace's two-step rule. Extract, call one
//! command, map the error; the console's team screen calls the same commands.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;

use super::error::ApiError;
use super::extract::ApiJson;
use super::routes::Route;
use crate::app::AppState;
use crate::commands::{members, second_factor, Caller};
use crate::domain::Role;
use crate::projector::store::MemberRow;

fn view(row: &MemberRow) -> serde_json::Value {
    json!({
        "id": row.id,
        "email": row.email,
        "role": row.role,
        "status": row.status,
        "second_factor": row.second_factor,
        "invited_at": row.invited_at,
        "invite_expires_at": row.invite_expires_at,
        "joined_at": row.joined_at,
        "last_signed_in_at": row.last_signed_in_at,
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InviteBody {
    pub email: String,
    pub role: Role,
}

/// Invites a member: the answer carries the single-use sign-up link, shown only here.
pub async fn invite(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<InviteBody>,
) -> Result<Response, ApiError> {
    let token = members::invite_member(&state, &caller, &body.email, body.role).await?;
    let row = members::get(&state, &caller, &token.member_id)
        .await?
        .ok_or(ApiError::NotFound("member"))?;
    let mut v = view(&row);
    v["sign_up_url"] = json!(members::sign_up_url(&state, &token));
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, ApiError> {
    let rows = members::list(&state, &caller).await?;
    Ok(Json(json!({ "items": rows.iter().map(view).collect::<Vec<_>>() })).into_response())
}

pub async fn get(
    State(state): State<AppState>,
    Extension(route): Extension<Route>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let row = current(&state, &caller, route, &id).await?;
    Ok(Json(view(&row)).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleBody {
    pub role: Role,
}

/// A new role; the member's console sessions end at once.
pub async fn change_role(
    State(state): State<AppState>,
    Extension(route): Extension<Route>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<RoleBody>,
) -> Result<Response, ApiError> {
    current(&state, &caller, route, &id).await?;
    members::change_role(&state, &caller, &id, body.role).await?;
    let row = current(&state, &caller, route, &id).await?;
    Ok(Json(view(&row)).into_response())
}

/// No more sign-in; open sessions end; the sealed password's data key is destroyed.
pub async fn remove(
    State(state): State<AppState>,
    Extension(route): Extension<Route>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    current(&state, &caller, route, &id).await?;
    members::remove(&state, &caller, &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Removes the member's second factor (a lost authenticator); their sessions end.
pub async fn reset_second_factor(
    State(state): State<AppState>,
    Extension(route): Extension<Route>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    current(&state, &caller, route, &id).await?;
    second_factor::reset(&state, &caller, &id).await?;
    let row = current(&state, &caller, route, &id).await?;
    Ok(Json(view(&row)).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequirementBody {
    pub required: bool,
}

/// `PUT /v1/workspace/second-factor-requirement`: every member signs in with a second
/// factor (those without one set it up at their next sign-in), or each member chooses.
pub async fn set_second_factor_requirement(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<RequirementBody>,
) -> Result<Response, ApiError> {
    second_factor::set_requirement(&state, &caller, body.required).await?;
    Ok(Json(json!({ "required": body.required })).into_response())
}

/// The member as projected, if they are a member of the caller's workspace (removed ones
/// answer 404 like unknown ids; another workspace's id is recorded as a probe).
async fn current(
    state: &AppState,
    caller: &Caller,
    route: Route,
    id: &str,
) -> Result<MemberRow, ApiError> {
    match members::get(state, caller, id).await? {
        Some(row) if row.status != "removed" => Ok(row),
        _ => {
            let elsewhere = state
                .projections
                .member_elsewhere(&caller.workspace_id, id)
                .await?;
            crate::commands::probe_of_other_workspace(state, caller, route.pair(), id, elsewhere);
            Err(ApiError::NotFound("member"))
        }
    }
}

//! Agent routes: scoped tokens, the JWKS that verifies them, the tool catalog, the gateway
//! and step-up approvals. Thin: extract, call one command, map the outcome.

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use secrecy::ExposeSecret as _;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::ApiError;
use super::extract::ApiJson;
use super::problem::Problem;
use super::routes::Route;
use crate::app::AppState;
use crate::commands::agents::approvals::{self, Approver};
use crate::commands::agents::gateway_configs as gateways;
use crate::commands::agents::tokens::{self, IssueTokenInput};
use crate::commands::agents::{refused, AgentError, At};
use crate::commands::{Caller, EndUser};
use crate::domain::approval::Approval;
use crate::domain::token::ScopedToken;
use crate::gateway::{self, Authority, ExecuteInput};
use crate::projector::plan::rfc3339;

/// Answers an agent refusal (recorded as `access.denied` when it reaches beyond the grant).
pub(crate) async fn refuse(
    state: &AppState,
    actor: crate::ledger::Actor,
    ws: &str,
    at: At<'_>,
    e: AgentError,
) -> Response {
    refused(state, actor, ws, at, &e).await.into_response()
}

pub async fn jwks(State(state): State<AppState>) -> Response {
    let mut resp = Json(crate::scoped_token::jwks(&state.trusted_keys)).into_response();
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    resp
}

fn token_view(id: &str, t: &ScopedToken, now: time::OffsetDateTime) -> Value {
    let Some(i) = &t.issued else {
        return json!({ "id": id });
    };
    let status = if t.revoked {
        "revoked"
    } else if now >= i.expires_at {
        "expired"
    } else if i.max_uses.is_some_and(|m| t.uses >= m) {
        "used_up"
    } else {
        "active"
    };
    json!({
        "id": id,
        "status": status,
        "connection_id": i.connection_id,
        "auth_config_id": i.auth_config_id,
        "user_id": i.user_id,
        "scopes": i.scopes,
        "tool": i.tool,
        "expires_at": rfc3339(i.expires_at),
        "max_uses": i.max_uses,
        "uses": t.uses,
        "fingerprint": i.fingerprint,
    })
}

pub async fn issue_token(
    State(state): State<AppState>,
    Extension(route): Extension<Route>,
    Extension(caller): Extension<Caller>,
    ApiJson(input): ApiJson<IssueTokenInput>,
) -> Response {
    let target = input.connection_id.clone();
    let at = route.at(target.as_deref());
    match tokens::issue(&state, &caller, input).await {
        Ok(t) => {
            let mut body = token_view(
                &t.id,
                &ScopedToken {
                    issued: Some(t.issued.clone()),
                    uses: 0,
                    revoked: false,
                },
                state.clock.now(),
            );
            if let Value::Object(map) = &mut body {
                map.insert("token".into(), json!(t.token.expose_secret()));
                map.insert("token_type".into(), json!("Bearer"));
                map.insert("issued_event_id".into(), json!(t.issued_event_id));
            }
            let mut resp = (StatusCode::CREATED, Json(body)).into_response();
            resp.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            resp
        }
        Err(e) => refuse(&state, caller.actor(), &caller.workspace_id, at, e).await,
    }
}

pub async fn get_token(
    State(state): State<AppState>,
    Extension(route): Extension<Route>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Response {
    let at = route.at(Some(&id));
    match tokens::get(&state, &caller, &id).await {
        Ok(t) => Json(token_view(&id, &t, state.clock.now())).into_response(),
        Err(e) => refuse(&state, caller.actor(), &caller.workspace_id, at, e).await,
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReasonBody {
    pub reason: Option<String>,
}

/// An optional JSON body: empty is `{}`.
fn optional_body<T: serde::de::DeserializeOwned + Default>(
    body: &axum::body::Bytes,
) -> Result<T, Problem> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    super::extract::decode(body)
}

pub async fn revoke_token(
    State(state): State<AppState>,
    Extension(route): Extension<Route>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let input: ReasonBody = match optional_body(&body) {
        Ok(b) => b,
        Err(p) => return p.into_response(),
    };
    let at = route.at(Some(&id));
    match tokens::revoke(&state, &caller, &id, input.reason).await {
        Ok(t) => Json(token_view(&id, &t, state.clock.now())).into_response(),
        Err(e) => refuse(&state, caller.actor(), &caller.workspace_id, at, e).await,
    }
}

fn authority_of(token: Option<Extension<Authority>>) -> Authority {
    token.map_or(Authority::ApiKey, |Extension(a)| a)
}

pub async fn list_tools(
    State(state): State<AppState>,
    Extension(route): Extension<Route>,
    Extension(caller): Extension<Caller>,
    authority: Option<Extension<Authority>>,
) -> Result<Response, ApiError> {
    let authority = authority_of(authority);
    match gateway::list_tools(&state, &caller, &authority).await {
        Ok(list) => {
            let items: Vec<Value> = list
                .into_iter()
                .map(|(d, source)| {
                    let mut v = serde_json::to_value(&d).unwrap_or(Value::Null);
                    if let Value::Object(m) = &mut v {
                        m.insert("source".into(), json!(source));
                    }
                    v
                })
                .collect();
            Ok(Json(json!({ "items": items })).into_response())
        }
        Err(AgentError::Command(c)) => Err(ApiError::Command(c)),
        Err(other) => Ok(refuse(
            &state,
            caller.actor(),
            &caller.workspace_id,
            route.at(None),
            other,
        )
        .await),
    }
}

pub async fn define_tool(
    State(state): State<AppState>,
    Extension(route): Extension<Route>,
    Extension(caller): Extension<Caller>,
    ApiJson(definition): ApiJson<crate::gateway::tools::ToolDefinition>,
) -> Response {
    let at = route.at(None);
    match gateway::define_tool(&state, &caller, definition).await {
        Ok((def, version)) => {
            let mut v = serde_json::to_value(&def).unwrap_or(Value::Null);
            if let Value::Object(m) = &mut v {
                m.insert("source".into(), json!("workspace"));
                m.insert("version".into(), json!(version));
            }
            (StatusCode::CREATED, Json(v)).into_response()
        }
        Err(e) => refuse(&state, caller.actor(), &caller.workspace_id, at, e).await,
    }
}

pub async fn remove_tool(
    State(state): State<AppState>,
    Extension(route): Extension<Route>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Response {
    let at = route.at(None);
    match gateway::remove_tool(&state, &caller, &name).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => refuse(&state, caller.actor(), &caller.workspace_id, at, e).await,
    }
}

pub async fn execute(
    State(state): State<AppState>,
    Extension(route): Extension<Route>,
    Extension(caller): Extension<Caller>,
    authority: Option<Extension<Authority>>,
    ApiJson(input): ApiJson<ExecuteInput>,
) -> Response {
    let authority = authority_of(authority);
    let target = input.connection_id.clone();
    let at = route.at(target.as_deref());
    match gateway::execute(&state, &caller, &authority, input).await {
        Ok(done) => {
            let text = String::from_utf8_lossy(&done.body);
            let is_json = done
                .content_type
                .as_deref()
                .is_some_and(|c| c.contains("json"));
            let body = if is_json {
                serde_json::from_slice::<Value>(&done.body).unwrap_or(json!(text))
            } else {
                json!(text)
            };
            Json(json!({
                "tool_call_id": done.tool_call_id,
                "status": done.status,
                "content_type": done.content_type,
                "body": body,
                "latency_ms": done.latency_ms,
            }))
            .into_response()
        }
        Err(e) => refuse(&state, caller.actor(), &caller.workspace_id, at, e).await,
    }
}

fn approval_view(id: &str, a: &Approval, now: time::OffsetDateTime) -> Value {
    let Some(r) = &a.requested else {
        return json!({ "id": id });
    };
    json!({
        "id": id,
        "status": a.status(now).map(|s| s.as_str()),
        "tool": r.tool,
        "connection_id": r.connection_id,
        "user_id": r.user_id,
        "argument_fingerprint": r.argument_fingerprint,
        "expires_at": rfc3339(r.expires_at),
        "tool_call_id": a.consumed_by,
    })
}

pub async fn get_approval(
    State(state): State<AppState>,
    Extension(route): Extension<Route>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Response {
    let approver = Approver::Admin {
        workspace_id: caller.workspace_id.clone(),
        actor: caller.actor(),
    };
    let at = route.at(Some(&id));
    match approvals::visible(&state, &approver, &id).await {
        Ok(a) => Json(approval_view(&id, &a, state.clock.now())).into_response(),
        Err(e) => refuse(&state, caller.actor(), &caller.workspace_id, at, e).await,
    }
}

async fn decide(
    state: AppState,
    route: Route,
    caller: Option<Extension<Caller>>,
    user: Option<Extension<EndUser>>,
    id: String,
    body: axum::body::Bytes,
    approve: bool,
) -> Response {
    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct NoteBody {
        note: Option<String>,
    }
    let input: NoteBody = match optional_body(&body) {
        Ok(b) => b,
        Err(p) => return p.into_response(),
    };
    let approver = match (caller, user) {
        (Some(Extension(c)), _) => Approver::Admin {
            workspace_id: c.workspace_id.clone(),
            actor: c.actor(),
        },
        (None, Some(Extension(u))) => Approver::User(u),
        (None, None) => {
            return Problem::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Valid credentials are required",
                None,
            )
            .into_response()
        }
    };
    let (ws, actor) = match &approver {
        Approver::Admin {
            workspace_id,
            actor,
        } => (workspace_id.clone(), actor.clone()),
        Approver::User(u) => (
            u.workspace_id.clone(),
            crate::ledger::Actor {
                actor_type: crate::ledger::ActorType::User,
                id: u.user_id.clone(),
            },
        ),
    };
    let at = route.at(Some(&id));
    match approvals::decide(&state, &approver, &id, approve, input.note).await {
        Ok(a) => Json(approval_view(&id, &a, state.clock.now())).into_response(),
        // Another user's approval answers exactly like an unknown one (and is audited).
        Err(AgentError::OtherUser) => {
            refuse(&state, actor, &ws, at, AgentError::OtherUser).await;
            Problem::new(StatusCode::NOT_FOUND, "not-found", "No such approval", None)
                .into_response()
        }
        Err(e) => refuse(&state, actor, &ws, at, e).await,
    }
}

pub async fn approve(
    State(state): State<AppState>,
    Extension(route): Extension<Route>,
    caller: Option<Extension<Caller>>,
    user: Option<Extension<EndUser>>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    decide(state, route, caller, user, id, body, true).await
}

pub async fn deny(
    State(state): State<AppState>,
    Extension(route): Extension<Route>,
    caller: Option<Extension<Caller>>,
    user: Option<Extension<EndUser>>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    decide(state, route, caller, user, id, body, false).await
}

fn gateway_view(row: &crate::projector::store::GatewayRow) -> Value {
    json!({
        "id": row.id,
        "name": row.name,
        "servers": serde_json::from_str::<Value>(&row.servers).unwrap_or(Value::Null),
        "agent_key_ids": serde_json::from_str::<Value>(&row.agent_key_ids).unwrap_or(Value::Null),
        "status": row.status,
        "mcp_path": super::routes::path_to(super::routes::RouteId::McpGateway, &row.id),
        "version": row.version,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    })
}

async fn gateway_answer(
    state: &AppState,
    ws: &str,
    id: &str,
    status: StatusCode,
) -> Result<Response, ApiError> {
    match state.projections.gateway(ws, id).await? {
        Some(row) => Ok((status, Json(gateway_view(&row))).into_response()),
        None => Err(ApiError::NotFound("gateway")),
    }
}

pub async fn create_gateway(
    State(state): State<AppState>,
    Extension(route): Extension<Route>,
    Extension(caller): Extension<Caller>,
    ApiJson(input): ApiJson<gateways::GatewayInput>,
) -> Response {
    let at = route.at(None);
    match gateways::define(&state, &caller, None, input).await {
        Ok(id) => gateway_answer(&state, &caller.workspace_id, &id, StatusCode::CREATED)
            .await
            .unwrap_or_else(IntoResponse::into_response),
        Err(e) => refuse(&state, caller.actor(), &caller.workspace_id, at, e).await,
    }
}

pub async fn list_gateways(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, ApiError> {
    let rows = state.projections.gateways(&caller.workspace_id).await?;
    Ok(Json(json!({ "items": rows.iter().map(gateway_view).collect::<Vec<_>>() })).into_response())
}

/// A live gateway of the caller's workspace, or the audited 404.
async fn visible_gateway(
    state: &AppState,
    caller: &Caller,
    (method, route): (&str, &str),
    id: &str,
) -> Result<Result<(), Response>, ApiError> {
    match state.projections.gateway(&caller.workspace_id, id).await? {
        Some(row) if row.status != "deleted" => Ok(Ok(())),
        _ => {
            let elsewhere = state
                .projections
                .aggregate_elsewhere(&caller.workspace_id, "gateway", id)
                .await?;
            super::not_found_audited(state, caller, (method, route), id, elsewhere, "gateway")
                .await
                .map(Err)
        }
    }
}

pub async fn get_gateway(
    State(state): State<AppState>,
    Extension(route): Extension<Route>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    if let Err(r) = visible_gateway(&state, &caller, route.pair(), &id).await? {
        return Ok(r);
    }
    gateway_answer(&state, &caller.workspace_id, &id, StatusCode::OK).await
}

pub async fn replace_gateway(
    State(state): State<AppState>,
    Extension(route): Extension<Route>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<gateways::GatewayInput>,
) -> Result<Response, ApiError> {
    if let Err(r) = visible_gateway(&state, &caller, route.pair(), &id).await? {
        return Ok(r);
    }
    let at = route.at(Some(&id));
    match gateways::define(&state, &caller, Some(&id), input).await {
        Ok(id) => gateway_answer(&state, &caller.workspace_id, &id, StatusCode::OK).await,
        Err(e) => Ok(refuse(&state, caller.actor(), &caller.workspace_id, at, e).await),
    }
}

pub async fn delete_gateway(
    State(state): State<AppState>,
    Extension(route): Extension<Route>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    if let Err(r) = visible_gateway(&state, &caller, route.pair(), &id).await? {
        return Ok(r);
    }
    let at = route.at(Some(&id));
    match gateways::delete(&state, &caller, &id).await {
        Ok(()) => Ok(StatusCode::NO_CONTENT.into_response()),
        Err(e) => Ok(refuse(&state, caller.actor(), &caller.workspace_id, at, e).await),
    }
}

/// Token release: the connection's upstream access token, for APIs the gateway does not
/// cover (opt-in per auth config; `credential.released` is recorded first).
pub async fn release_access_token(
    State(state): State<AppState>,
    Extension(route): Extension<Route>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Response {
    let at = route.at(Some(&id));
    match crate::commands::agents::release::release(&state, &caller, &id).await {
        Ok(r) => {
            let mut resp = Json(json!({
                "connection_id": id,
                "access_token": r.access_token.expose_secret(),
                "token_type": r.token_type,
                "expires_at": r.expires_at.map(rfc3339),
            }))
            .into_response();
            resp.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            resp
        }
        Err(e) => refuse(&state, caller.actor(), &caller.workspace_id, at, e).await,
    }
}

/// `GET /v1/me/approvals`: the end user's step-up requests, newest first, pending ones
/// marked `expired` once past their expiry.
pub async fn my_approvals(
    State(state): State<AppState>,
    Extension(user): Extension<EndUser>,
) -> Result<Response, ApiError> {
    let rows = state
        .projections
        .approvals_of_user(&user.workspace_id, &user.user_id, 200)
        .await?;
    let now = state.clock.now();
    let items: Vec<Value> = rows
        .iter()
        .map(|r| {
            let past = time::OffsetDateTime::parse(
                &r.expires_at,
                &time::format_description::well_known::Rfc3339,
            )
            .map_or(true, |at| at <= now);
            let status = if r.status == "pending" && past {
                "expired"
            } else {
                r.status.as_str()
            };
            json!({
                "id": r.id,
                "status": status,
                "tool": r.tool,
                "connection_id": r.connection_id,
                "argument_fingerprint": r.argument_fingerprint,
                "expires_at": r.expires_at,
                "tool_call_id": r.tool_call_id,
                "created_at": r.created_at,
            })
        })
        .collect();
    Ok(Json(json!({ "items": items })).into_response())
}

/// `POST /v1/tool-calls/{id}/undo`: sends the call's compensating request
/// (`gateway::undo`). An admin or developer key, or the connection's end user with a JWT;
/// another person's call answers like an unknown one (and is recorded). A failed undo is
/// answered `502 undo-failed` with the upstream's status, and may be tried again.
pub async fn undo_tool_call(
    State(state): State<AppState>,
    Extension(route): Extension<Route>,
    caller: Option<Extension<Caller>>,
    user: Option<Extension<EndUser>>,
    Path(id): Path<String>,
) -> Response {
    use gateway::undo::{self, Undoer};
    let undoer = match (caller, user) {
        (Some(Extension(c)), _) => Undoer::Key(c),
        (None, Some(Extension(u))) => Undoer::User(u),
        (None, None) => {
            return Problem::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Valid credentials are required",
                None,
            )
            .into_response()
        }
    };
    let (ws, actor) = (undoer.workspace_id().to_string(), undoer.actor());
    let at = route.at(Some(&id));
    match undo::undo(&state, &undoer, &id).await {
        Ok(done) if done.succeeded() => Json(json!({
            "tool_call_id": done.tool_call_id,
            "tool": done.tool,
            "undone": true,
            "status": done.status,
        }))
        .into_response(),
        Ok(failed) => Problem::new(
            StatusCode::BAD_GATEWAY,
            "undo-failed",
            "The upstream did not undo the call",
            Some(match (failed.status, &failed.error) {
                (Some(s), _) => format!("the upstream answered {s}; the undo may be tried again"),
                (None, Some(e)) => format!("{e}; the undo may be tried again"),
                (None, None) => "the undo may be tried again".into(),
            }),
        )
        .with("tool_call_id", json!(failed.tool_call_id))
        .with("upstream_status", json!(failed.status))
        .into_response(),
        // Another person's call answers exactly like an unknown one (and is audited).
        Err(AgentError::OtherUser) => {
            refuse(&state, actor, &ws, at, AgentError::OtherUser).await;
            Problem::new(
                StatusCode::NOT_FOUND,
                "not-found",
                "No such tool call",
                None,
            )
            .into_response()
        }
        Err(e) => refuse(&state, actor, &ws, at, e).await,
    }
}

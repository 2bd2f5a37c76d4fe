//! HTTP layer: thin axum handlers over `AppState`. No SQL or NATS here.

pub mod agents;
pub mod api_keys;
pub mod audit;
pub mod auth;
pub mod auth_configs;
pub mod connections;
pub mod consistency;
pub mod dynamic_credentials;
pub mod end_users;
pub mod error;
pub mod extract;
pub mod idempotency;
pub mod members;
pub mod problem;
pub mod protected_resource;
pub mod ratelimit;
pub mod request_log;
pub mod routes;
pub mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::{Extension, Json, Router};
use serde_json::json;

use crate::app::AppState;
use problem::Problem;
use ratelimit::Limits;
use routes::{Route, RouteId, ROUTES};

pub use crate::config::MAX_BODY_BYTES;

fn handler(id: RouteId, filter: MethodFilter) -> MethodRouter<AppState> {
    match id {
        RouteId::Healthz => on(filter, healthz),
        RouteId::Readyz => on(filter, readyz),
        RouteId::Metrics => on(filter, metrics),
        RouteId::GetWorkspace => on(filter, api_keys::workspace),
        RouteId::CreateApiKey => on(filter, api_keys::create),
        RouteId::ListApiKeys => on(filter, api_keys::list),
        RouteId::GetApiKey => on(filter, api_keys::get),
        RouteId::RevokeApiKey => on(filter, api_keys::revoke),
        RouteId::ConfigureIdentityProvider => on(filter, end_users::configure_identity_provider),
        RouteId::Me => on(filter, end_users::me),
        RouteId::CreateAuthConfig => on(filter, auth_configs::create),
        RouteId::ListAuthConfigs => on(filter, auth_configs::list),
        RouteId::GetAuthConfig => on(filter, auth_configs::get),
        RouteId::UpdateAuthConfig => on(filter, auth_configs::update),
        RouteId::DeleteAuthConfig => on(filter, auth_configs::delete),
        RouteId::DisableAuthConfig => on(filter, auth_configs::disable),
        RouteId::EnableAuthConfig => on(filter, auth_configs::enable),
        RouteId::AuthConfigVersions => on(filter, auth_configs::versions),
        RouteId::TestAuthConfig => on(filter, auth_configs::test),
        RouteId::CreateConnection => on(filter, connections::create),
        RouteId::ListConnections => on(filter, connections::list),
        RouteId::GetConnection => on(filter, connections::get),
        RouteId::RefreshConnection => on(filter, connections::refresh),
        RouteId::RevokeConnection => on(filter, connections::revoke),
        RouteId::DeleteConnection => on(filter, connections::delete),
        RouteId::OAuthCallback => on(filter, connections::callback),
        RouteId::MyConnections => on(filter, connections::my_list),
        RouteId::RevokeMyConnection => on(filter, connections::my_revoke),
        RouteId::AuditEvents => on(filter, audit::list),
        RouteId::AuditEvent => on(filter, audit::get),
        RouteId::AuditCheckpoints => on(filter, audit::checkpoints),
        RouteId::AuditConsistency => on(filter, audit::consistency),
        RouteId::AuditCosign => on(filter, audit::cosign),
        RouteId::AuditExport => on(filter, audit::export),
        RouteId::AuditAccess => on(filter, audit::access),
        RouteId::Jwks => on(filter, agents::jwks),
        RouteId::IssueToken => on(filter, agents::issue_token),
        RouteId::GetToken => on(filter, agents::get_token),
        RouteId::RevokeToken => on(filter, agents::revoke_token),
        RouteId::ListTools => on(filter, agents::list_tools),
        RouteId::DefineTool => on(filter, agents::define_tool),
        RouteId::RemoveTool => on(filter, agents::remove_tool),
        RouteId::ExecuteTool => on(filter, agents::execute),
        RouteId::GetApproval => on(filter, agents::get_approval),
        RouteId::ApproveApproval => on(filter, agents::approve),
        RouteId::DenyApproval => on(filter, agents::deny),
        RouteId::UndoToolCall => on(filter, agents::undo_tool_call),
        RouteId::CreateGateway => on(filter, agents::create_gateway),
        RouteId::ListGateways => on(filter, agents::list_gateways),
        RouteId::GetGateway => on(filter, agents::get_gateway),
        RouteId::ReplaceGateway => on(filter, agents::replace_gateway),
        RouteId::DeleteGateway => on(filter, agents::delete_gateway),
        RouteId::ReleaseAccessToken => on(filter, agents::release_access_token),
        RouteId::IssueDynamicCredentials => on(filter, dynamic_credentials::issue),
        RouteId::McpGateway => on(filter, mcp_gateway),
        RouteId::SetToolResponseStorage => on(filter, end_users::set_tool_response_storage),
        RouteId::MyApprovals => on(filter, agents::my_approvals),
        RouteId::ListMembers => on(filter, members::list),
        RouteId::InviteMember => on(filter, members::invite),
        RouteId::GetMember => on(filter, members::get),
        RouteId::ChangeMemberRole => on(filter, members::change_role),
        RouteId::RemoveMember => on(filter, members::remove),
        RouteId::ResetMemberSecondFactor => on(filter, members::reset_second_factor),
        RouteId::SetSecondFactorRequirement => on(filter, members::set_second_factor_requirement),
        RouteId::SetAgentConnectFlows => on(filter, end_users::set_agent_connect_flows),
        RouteId::CreateWebhook => on(filter, webhooks::create),
        RouteId::ListWebhooks => on(filter, webhooks::list),
        RouteId::GetWebhook => on(filter, webhooks::get),
        RouteId::UpdateWebhook => on(filter, webhooks::update),
        RouteId::DeleteWebhook => on(filter, webhooks::delete),
        RouteId::RotateWebhookSecret => on(filter, webhooks::rotate_secret),
        RouteId::ReplayWebhook => on(filter, webhooks::replay),
        RouteId::WebhookDeliveries => on(filter, webhooks::deliveries),
        RouteId::Mcp => on(filter, mcp_all),
        RouteId::McpPerson => on(filter, mcp_all),
        RouteId::McpPersonGateway => on(filter, mcp_person_gateway),
        RouteId::ProtectedResource => on(filter, protected_resource::root),
        RouteId::McpPersonMetadata => on(filter, protected_resource::person),
        RouteId::McpPersonGatewayMetadata => on(filter, protected_resource::person_gateway),
    }
}

/// The MCP face's mounts: the matched route (from the table) is handed down with the
/// request, so the face below names no route of its own.
async fn mcp_all(
    State(state): State<AppState>,
    Extension(route): Extension<Route>,
    request: Request,
) -> Response {
    crate::mcp::handle(state, route.0.path, request).await
}

async fn mcp_gateway(
    State(state): State<AppState>,
    Extension(route): Extension<Route>,
    Path(gateway_id): Path<String>,
    request: Request,
) -> Response {
    crate::mcp::handle_gateway(state, route.0.path, gateway_id, request).await
}

async fn mcp_person_gateway(
    State(state): State<AppState>,
    Extension(route): Extension<Route>,
    Path((_workspace_id, gateway_id)): Path<(String, String)>,
    request: Request,
) -> Response {
    crate::mcp::handle_gateway(state, route.0.path, gateway_id, request).await
}

/// The router serves exactly the route table, behind one authorization layer that spends
/// the request budgets in `limits`.
pub fn router(state: AppState, limits: Arc<Limits>) -> Router {
    let mut router = Router::new();
    for spec in ROUTES {
        let Ok(method) = Method::from_bytes(spec.method.as_bytes()) else {
            continue;
        };
        let Ok(filter) = MethodFilter::try_from(method) else {
            continue;
        };
        router = router.route(spec.path, handler(spec.id, filter));
    }
    router
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            idempotency::idempotency,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            consistency::consistency,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            (state.clone(), limits),
            auth::authorize,
        ))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// The answer for an id the caller's workspace does not have: the same 404 whether the id
/// is unknown or belongs to another workspace (`commands::probe_of_other_workspace` charges
/// and records the probe).
pub(crate) async fn not_found_audited(
    state: &AppState,
    caller: &crate::commands::Caller,
    (method, route): (&str, &str),
    id: &str,
    elsewhere: bool,
    what: &'static str,
) -> Result<Response, error::ApiError> {
    crate::commands::probe_of_other_workspace(state, caller, (method, route), id, elsewhere);
    Err(error::ApiError::NotFound(what))
}

async fn method_not_allowed() -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "Method not allowed on this route",
        None,
    )
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// Ready when the log and the projections answer and the projections keep up with the log
/// (no event they cannot apply, lag and stall within their bounds); 503 with the reasons
/// otherwise.
async fn readyz(State(state): State<AppState>) -> Response {
    // Well under a probe's usual timeout: an unanswered log or database is itself the news.
    let probe = Duration::from_millis(800);
    let head = tokio::time::timeout(probe, state.log.head()).await;
    let offset = tokio::time::timeout(probe, state.projections.offset()).await;
    let mut reasons = Vec::new();
    match (&head, &offset) {
        (Ok(Ok(head)), Ok(Ok(offset))) => {
            let judged = state
                .projection_health
                .judge(*head, *offset, std::time::Instant::now());
            if let Err(why) = judged {
                reasons.push(why);
            }
        }
        _ => {
            match &head {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => reasons.push(format!("event log: {e}")),
                Err(_) => reasons.push("event log: no answer within 0.8s".to_string()),
            }
            match &offset {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => reasons.push(format!("projections: {e}")),
                Err(_) => reasons.push("projections: no answer within 0.8s".to_string()),
            }
        }
    }
    let (head, offset) = (
        head.ok().and_then(Result::ok),
        offset.ok().and_then(Result::ok),
    );
    if reasons.is_empty() {
        return Json(json!({ "status": "ready", "log_head": head, "projection_offset": offset }))
            .into_response();
    }
    let stuck = state.projection_health.stuck();
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "not-ready",
        "Service not ready",
        Some(reasons.join("; ")),
    )
    .with("log_head", json!(head))
    .with("projection_offset", json!(offset))
    .with("stuck_position", json!(stuck.as_ref().map(|s| s.position)))
    .with("stuck_kind", json!(stuck.and_then(|s| s.kind)))
    .into_response()
}

async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
        .into_response()
}

async fn not_found() -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "no-such-route",
        "No such route",
        None,
    )
}

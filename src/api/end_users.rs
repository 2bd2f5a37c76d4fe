//! The workspace's identity provider (admin) and what end users can do with its JWTs.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;

use super::error::ApiError;
use super::extract::ApiJson;
use crate::app::AppState;
use crate::commands::{self, Caller, EndUser};
use crate::domain::IdentityProviderConfigured;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityProviderBody {
    pub issuer: String,
    pub audience: String,
    pub jwks_url: String,
    /// With `client_secret`: end users sign in to `/me/` through this provider. Absent
    /// keeps the one configured; `null` or empty turns browser sign-in off.
    #[serde(default, deserialize_with = "present")]
    pub client_id: Option<Option<String>>,
    /// Write-only; omitted keeps the one configured.
    #[serde(default)]
    pub client_secret: Option<secrecy::SecretString>,
}

pub async fn configure_identity_provider(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<IdentityProviderBody>,
) -> Result<Response, ApiError> {
    let input = commands::IdentityProviderInput {
        issuer: body.issuer,
        audience: body.audience,
        jwks_url: body.jwks_url,
        client_id: match body.client_id {
            None => commands::BrowserClientId::Keep,
            Some(id) => commands::BrowserClientId::Set(id.unwrap_or_default()),
        },
        client_secret: body.client_secret,
    };
    let idp = commands::configure_identity_provider(&state, &caller, input).await?;
    Ok(Json(identity_provider_view(&idp)).into_response())
}

/// A member that is present (even as `null`) is `Some`; `#[serde(default)]` makes an
/// absent one `None`.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// The settings as the API shows them: the client secret only as its fingerprint.
fn identity_provider_view(idp: &IdentityProviderConfigured) -> serde_json::Value {
    let mut view =
        json!({ "issuer": idp.issuer, "audience": idp.audience, "jwks_url": idp.jwks_url });
    if let Some((client_id, secret)) = idp.browser_client() {
        view["client_id"] = json!(client_id);
        view["client_secret_fingerprint"] = json!(secret.fingerprint);
    }
    view
}

/// Who the end user is, as authledger sees them.
pub async fn me(Extension(user): Extension<EndUser>) -> Response {
    Json(json!({ "workspace_id": user.workspace_id, "user_id": user.user_id })).into_response()
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolResponseStorageBody {
    pub store_tool_responses: bool,
}

/// `PUT /v1/workspace/tool-response-storage`: keep (redacted) upstream response bodies in
/// `tool.completed` events, or stop. Off by default.
pub async fn set_tool_response_storage(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<ToolResponseStorageBody>,
) -> Result<Response, ApiError> {
    commands::set_tool_response_storage(&state, &caller, body.store_tool_responses).await?;
    Ok(Json(json!({ "store_tool_responses": body.store_tool_responses })).into_response())
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConnectFlowsBody {
    pub any_user: bool,
}

/// `PUT /v1/workspace/agent-connect-flows`: let agent keys start connect flows (connect on
/// demand) for any user of the workspace, or stop (`workspace.agent_connect_flows_set`).
/// Off by default: an agent then starts one only with a scoped token of that user.
pub async fn set_agent_connect_flows(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<AgentConnectFlowsBody>,
) -> Result<Response, ApiError> {
    let command = crate::domain::workspace::WorkspaceCommand::SetAgentConnectFlows(body.any_user);
    commands::change_workspace(&state, &caller, command).await?;
    Ok(Json(json!({ "any_user": body.any_user })).into_response())
}

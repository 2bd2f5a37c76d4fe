//! OAuth 2.0 Protected Resource Metadata (RFC 9728) for the MCP server, so an MCP client
//! following the MCP authorization specification finds where its person signs in:
//! `401` + `WWW-Authenticate: Bearer resource_metadata="…"` → this metadata → the
//! workspace's identity provider (its `authorization_servers`) → its own metadata.
//!
//! A person's MCP URL names its workspace: `/mcp/w/{workspace_id}` (every tool of the
//! person's connections) and `/mcp/w/{workspace_id}/{gateway_id}` (one gateway's), each
//! with its metadata at the RFC 9728 §3.1 path-inserted URL
//! (`/.well-known/oauth-protected-resource/mcp/w/…`). Without the workspace no identity
//! provider could be named before the client has a token, so `/mcp` and `/mcp/{gateway_id}`
//! (API keys and scoped tokens; a person's token with the `Authledger-Workspace` header)
//! point at the root metadata, which names no authorization server.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::problem::Problem;
use super::routes::{self, RouteId};
use crate::app::AppState;

/// The well-known prefix of RFC 9728 §3.
pub const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// The metadata URL an MCP route's `401` names (none for other routes): the path-inserted
/// URL of a person's MCP URL (`path` as requested), the root metadata for the others.
pub fn metadata_url(public_url: &str, route: RouteId, path: &str) -> Option<String> {
    let base = public_url.trim_end_matches('/');
    match route {
        RouteId::McpPerson | RouteId::McpPersonGateway => Some(format!("{base}{WELL_KNOWN}{path}")),
        RouteId::Mcp | RouteId::McpGateway => Some(format!("{base}{WELL_KNOWN}")),
        _ => None,
    }
}

/// `GET /.well-known/oauth-protected-resource`: the deployment's `/mcp`, which takes API
/// keys and scoped tokens (issued by authledger, not by an authorization server).
pub async fn root(State(state): State<AppState>) -> Response {
    let base = state.connections.public_url.trim_end_matches('/');
    Json(document(base, None)).into_response()
}

/// `GET /.well-known/oauth-protected-resource/mcp/w/{workspace_id}`.
pub async fn person(State(state): State<AppState>, Path(workspace_id): Path<String>) -> Response {
    let path = routes::path_to(RouteId::McpPerson, &workspace_id);
    for_workspace(&state, &workspace_id, None, path).await
}

/// `GET /.well-known/oauth-protected-resource/mcp/w/{workspace_id}/{gateway_id}`.
pub async fn person_gateway(
    State(state): State<AppState>,
    Path((workspace_id, gateway_id)): Path<(String, String)>,
) -> Response {
    let path = format!(
        "{}/{gateway_id}",
        routes::path_to(RouteId::McpPerson, &workspace_id)
    );
    for_workspace(&state, &workspace_id, Some(&gateway_id), path).await
}

/// The metadata of a person's MCP URL `path` in `workspace_id`: its identity provider is
/// the authorization server. An unknown workspace, one without an identity provider and an
/// unknown gateway all answer the same 404.
async fn for_workspace(
    state: &AppState,
    workspace_id: &str,
    gateway_id: Option<&str>,
    path: String,
) -> Response {
    let issuer = match state.projections.workspace(workspace_id).await {
        Ok(w) => w.and_then(|w| w.idp_issuer),
        Err(e) => return unavailable(&e),
    };
    let gateway_known = match gateway_id {
        None => true,
        Some(id) => match state.projections.gateway(workspace_id, id).await {
            Ok(g) => g.is_some_and(|g| g.status != "deleted"),
            Err(e) => return unavailable(&e),
        },
    };
    let Some(issuer) = issuer.filter(|_| gateway_known) else {
        return Problem::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "No MCP server for signed-in people here",
            None,
        )
        .into_response();
    };
    let base = state.connections.public_url.trim_end_matches('/');
    Json(document(&format!("{base}{path}"), Some(&issuer))).into_response()
}

/// The metadata document of `resource`, naming `issuer` as its authorization server.
fn document(resource: &str, issuer: Option<&str>) -> Value {
    let mut doc = json!({
        "resource": resource,
        "bearer_methods_supported": ["header"],
        "resource_name": "authledger MCP server",
    });
    if let Some(issuer) = issuer {
        doc["authorization_servers"] = json!([issuer]);
    }
    doc
}

fn unavailable(e: &impl std::fmt::Display) -> Response {
    tracing::warn!(error = %e, "cannot read protected resource metadata");
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "Cannot answer right now",
        None,
    )
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_mcp_route_names_its_metadata() {
        let base = "https://ledger.example.com/";
        assert_eq!(
            metadata_url(base, RouteId::McpPerson, "/mcp/w/ws_1").as_deref(),
            Some("https://ledger.example.com/.well-known/oauth-protected-resource/mcp/w/ws_1")
        );
        assert_eq!(
            metadata_url(base, RouteId::McpPersonGateway, "/mcp/w/ws_1/gw_2").as_deref(),
            Some("https://ledger.example.com/.well-known/oauth-protected-resource/mcp/w/ws_1/gw_2")
        );
        assert_eq!(
            metadata_url(base, RouteId::McpGateway, "/mcp/gw_2").as_deref(),
            Some("https://ledger.example.com/.well-known/oauth-protected-resource")
        );
        assert_eq!(metadata_url(base, RouteId::Me, "/v1/me"), None);
    }
}

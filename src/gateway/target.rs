//! Step 1: what the call targets. The tool (the workspace's own, then the built-in
//! catalog), within the caller's gateway scope; the connection: the scoped token's (the
//! request may not name another), or the one the request names (checked against the scope
//! before it is resolved, so a bound key cannot start connect flows beyond its gateways);
//! then the connection usable now, for the tool's provider, within the scope.

use super::workspace_tools::{check_tool_fits, find_tool, person_configs, FoundTool};
use super::{Authority, ExecuteInput};
use crate::app::AppState;
use crate::commands::agents::gateway_configs::{scope_of, ToolScope};
use crate::commands::agents::{
    check_scope_first, invalid, resolve_connection, usable_or_connect, AgentError, Asker,
};
use crate::commands::connections::UsableConnection;
use crate::commands::Caller;
use crate::domain::workspace::Workspace;
use crate::gateway::tools::ToolDefinition;
use crate::scoped_token::TokenClaims;

pub(super) struct Target {
    pub tool: FoundTool,
    pub def: ToolDefinition,
    pub connection_id: String,
    /// Whether the workspace keeps (redacted) upstream responses in `tool.completed`.
    pub store_responses: bool,
}

/// The target, and its connection as loaded and checked now.
pub(super) async fn resolve(
    state: &AppState,
    caller: &Caller,
    authority: &Authority,
    input: &ExecuteInput,
) -> Result<(Target, UsableConnection), AgentError> {
    let ws = &caller.workspace_id;
    let asker = Asker {
        caller,
        token_user: authority.user(),
    };
    let tool = find_tool(state, ws, &input.tool)
        .await?
        .ok_or(AgentError::NotFound {
            what: "tool",
            elsewhere: false,
        })?;
    let def = tool.definition().clone();
    let scope = scope_of(state, caller, input.gateway_id.as_deref()).await?;
    if !scope.allows_tool(&def.name) {
        return Err(AgentError::OutsideGateway);
    }
    let user = match (&input.user_id, &input.auth_config_id, authority) {
        (_, _, Authority::Person(_)) => None,
        (Some(u), Some(a), _) => Some((u.as_str(), a.as_str())),
        (None, None, _) => None,
        _ => return Err(invalid("user_id", "user_id and auth_config_id go together")),
    };
    let connection_id = match authority {
        Authority::Person(person) => {
            own_connection(state, asker, (&scope, &def), &person.user_id, input).await?
        }
        Authority::Token(claims) => {
            check_token_binding(claims, &def.name, input.connection_id.as_deref(), user)?;
            // A token issued before its key was bound (or narrowed) is held to the scope now.
            let bound = (claims.sub.as_str(), claims.auth_config_id.as_str());
            check_scope_first(state, ws, &scope, Some(&def.name), None, Some(bound)).await?;
            claims.connection_id.clone()
        }
        Authority::ApiKey => {
            let id = input.connection_id.as_deref();
            check_scope_first(state, ws, &scope, Some(&def.name), id, user).await?;
            resolve_connection(state, ws, asker, id, user).await?
        }
    };
    // The workspace's response-storage setting is read alongside (one wait, not two).
    let (usable, workspace) = tokio::join!(
        usable_or_connect(state, ws, asker, &connection_id),
        state.ledger.load::<Workspace>(ws, ws)
    );
    let usable = usable?;
    let store_responses = workspace?.store_tool_responses;
    check_tool_fits(&tool, &usable.config)?;
    if !scope.allows(&usable.connection.auth_config_id, &def.name) {
        return Err(AgentError::OutsideGateway);
    }
    let target = Target {
        tool,
        def,
        connection_id,
        store_responses,
    };
    Ok((target, usable))
}

/// The person's own connection a call names: by `connection_id`, by `auth_config_id`, or
/// (neither) their one active connection for the tool's provider. Another person's
/// connection (or `user_id`) is `OtherUser`, which the face answers exactly like an unknown
/// id and records.
async fn own_connection(
    state: &AppState,
    asker: Asker<'_>,
    (scope, def): (&ToolScope, &ToolDefinition),
    me: &str,
    input: &ExecuteInput,
) -> Result<String, AgentError> {
    let ws = &asker.caller.workspace_id;
    if input.user_id.as_deref().is_some_and(|u| u != me) {
        return Err(AgentError::OtherUser);
    }
    let id = input.connection_id.as_deref();
    if let Some(id) = id {
        let row = state.projections.connection(ws, id).await?;
        if row.is_some_and(|r| r.user_id != me) {
            return Err(AgentError::OtherUser);
        }
    }
    let auth_config_id = match (&input.auth_config_id, id) {
        (Some(a), _) => Some(a.clone()),
        (None, Some(_)) => None,
        (None, None) => Some(only_config_for(state, ws, me, &def.provider).await?),
    };
    let user = auth_config_id.as_deref().map(|a| (me, a));
    check_scope_first(state, ws, scope, Some(&def.name), id, user).await?;
    resolve_connection(state, ws, asker, id, user).await
}

/// The auth config of the person's one active connection for `provider`.
async fn only_config_for(
    state: &AppState,
    ws: &str,
    me: &str,
    provider: &str,
) -> Result<String, AgentError> {
    let configs: Vec<String> = person_configs(state, ws, me)
        .await?
        .into_iter()
        .filter(|(_, p)| p == provider)
        .map(|(id, _)| id)
        .collect();
    match configs.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(invalid(
            "auth_config_id",
            "none of your connections serves this tool: give the auth_config_id to connect",
        )),
        _ => Err(invalid(
            "connection_id",
            "several of your connections serve this tool: give connection_id or auth_config_id",
        )),
    }
}

/// A scoped token acts through its own connection and (if bound) its own tool only.
fn check_token_binding(
    claims: &TokenClaims,
    tool: &str,
    connection_id: Option<&str>,
    user: Option<(&str, &str)>,
) -> Result<(), AgentError> {
    if connection_id.is_some_and(|c| c != claims.connection_id)
        || user.is_some_and(|(u, a)| u != claims.sub || a != claims.auth_config_id)
    {
        return Err(AgentError::TokenMismatch("another connection"));
    }
    if claims.tool.as_deref().is_some_and(|t| t != tool) {
        return Err(AgentError::TokenMismatch("another tool"));
    }
    Ok(())
}

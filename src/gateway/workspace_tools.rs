//! The tools an agent can call: the built-in catalog and the workspace's own definitions
//! (define, remove, list; a list narrowed to the caller's gateways and scoped token).

use std::sync::Arc;

use super::tools::{self, Tool};
use super::Authority;
use crate::app::AppState;
use crate::commands::agents::gateway_configs::scope_of;
use crate::commands::agents::{invalid, missing_scopes, tokens, AgentError};
use crate::commands::Caller;
use crate::domain::auth_config::AuthConfig;

/// A tool found by name: built in, or defined by the workspace.
pub enum FoundTool {
    Builtin(&'static Tool),
    Workspace(Arc<Tool>),
}

impl std::ops::Deref for FoundTool {
    type Target = Tool;
    fn deref(&self) -> &Tool {
        match self {
            FoundTool::Builtin(t) => t,
            FoundTool::Workspace(t) => t,
        }
    }
}

/// A tool by name: the workspace's own definitions first, then the built-in catalog.
pub async fn find_tool(
    state: &AppState,
    workspace_id: &str,
    name: &str,
) -> Result<Option<FoundTool>, AgentError> {
    if let Some(def) = state.projections.workspace_tool(workspace_id, name).await? {
        let tool = state
            .gateway
            .compiled_tools
            .get(&def)
            .map_err(|e| invalid("tool", e))?;
        return Ok(Some(FoundTool::Workspace(tool)));
    }
    Ok(tools::builtin_tool(name).map(FoundTool::Builtin))
}

/// A tool runs only through a connection of its provider.
pub fn check_tool_fits(tool: &Tool, config: &AuthConfig) -> Result<(), AgentError> {
    let provider = &tool.definition().provider;
    if config.provider != *provider {
        return Err(invalid(
            "tool",
            format!("the tool is for provider {provider}, the connection's auth config is not"),
        ));
    }
    Ok(())
}

/// Defines (or redefines) one of the workspace's own tools. Built-in names are reserved.
pub async fn define_tool(
    state: &AppState,
    caller: &Caller,
    definition: tools::ToolDefinition,
) -> Result<(tools::ToolDefinition, u64), AgentError> {
    use crate::domain::workspace_tool::{aggregate_id, WorkspaceTool, WorkspaceToolCommand};
    if tools::builtin_tool(&definition.name).is_some() {
        return Err(invalid("name", "a built-in tool has this name"));
    }
    crate::commands::check_destinations(state, &[("base_url", definition.base_url.as_str())])
        .await
        .map_err(AgentError::from)?;
    let tool = Tool::new(definition).map_err(|e| invalid("definition", e.to_string()))?;
    let def = tool.definition().clone();
    let committed = state
        .ledger
        .execute::<WorkspaceTool>(
            &caller.workspace_id,
            &aggregate_id(&def.name),
            &caller.actor(),
            &WorkspaceToolCommand::Define(Box::new(def.clone())),
        )
        .await?;
    crate::commands::wait_for_write(state, committed.position).await?;
    Ok((def, committed.version))
}

pub async fn remove_tool(state: &AppState, caller: &Caller, name: &str) -> Result<(), AgentError> {
    use crate::domain::workspace_tool::{aggregate_id, WorkspaceTool, WorkspaceToolCommand};
    let committed = state
        .ledger
        .execute::<WorkspaceTool>(
            &caller.workspace_id,
            &aggregate_id(name),
            &caller.actor(),
            &WorkspaceToolCommand::Remove,
        )
        .await?;
    crate::commands::wait_for_write(state, committed.position).await?;
    Ok(())
}

/// The tools the caller may use: all of them for an API key; for a scoped token, those its
/// scopes (and tool binding) cover on its connection's provider.
pub async fn list_tools(
    state: &AppState,
    caller: &Caller,
    authority: &Authority,
) -> Result<Vec<(tools::ToolDefinition, &'static str)>, AgentError> {
    list_tools_in(state, caller, authority, None).await
}

/// `list_tools`, narrowed to one gateway (its MCP endpoint) and always to the gateways the
/// caller's key is bound to; refused for a scoped token that can no longer be used.
pub async fn list_tools_in(
    state: &AppState,
    caller: &Caller,
    authority: &Authority,
    gateway_id: Option<&str>,
) -> Result<Vec<(tools::ToolDefinition, &'static str)>, AgentError> {
    let scope = scope_of(state, caller, gateway_id).await?;
    let mut all: Vec<(tools::ToolDefinition, &'static str)> = tools::builtin()
        .iter()
        .map(|t| (t.definition().clone(), "builtin"))
        .collect();
    for (_, def, _) in state
        .projections
        .workspace_tools(&caller.workspace_id)
        .await?
    {
        if let Ok(d) = serde_json::from_str::<tools::ToolDefinition>(&def) {
            all.retain(|(b, _)| b.name != d.name);
            all.push((d, "workspace"));
        }
    }
    if let Authority::Token(claims) = authority {
        // A revoked, expired or used-up token reaches nothing, so it lists nothing.
        tokens::check_live(state, claims).await?;
        let provider = state
            .ledger
            .load::<AuthConfig>(&claims.workspace_id, &claims.auth_config_id)
            .await?
            .provider;
        let scopes = claims.scopes();
        all.retain(|(d, _)| {
            d.provider == provider
                && missing_scopes(&d.required_scopes, &scopes).is_empty()
                && claims.tool.as_deref().is_none_or(|t| t == d.name)
        });
    }
    if let Authority::Person(person) = authority {
        // The person's own active connections are all they reach: their providers' tools.
        let configs = person_configs(state, &caller.workspace_id, &person.user_id).await?;
        all.retain(|(d, _)| configs.iter().any(|(_, provider)| *provider == d.provider));
    }
    all.retain(|(d, _)| scope.allows_tool(&d.name));
    all.sort_by(|a, b| a.0.name.cmp(&b.0.name));
    Ok(all)
}

/// The auth configs of `user_id`'s active connections, each once, with their providers.
pub(super) async fn person_configs(
    state: &AppState,
    workspace_id: &str,
    user_id: &str,
) -> Result<Vec<(String, String)>, AgentError> {
    let filter = crate::projector::store::ConnectionFilter {
        user_id: Some(user_id.to_string()),
        auth_config_id: None,
        status: Some("active".into()),
        after_id: None,
        limit: 100,
    };
    let mut configs: Vec<(String, String)> = Vec::new();
    for row in state.projections.connections(workspace_id, &filter).await? {
        if configs.iter().any(|(id, _)| *id == row.auth_config_id) {
            continue;
        }
        if let Some(config) = state
            .projections
            .auth_config(workspace_id, &row.auth_config_id)
            .await?
        {
            configs.push((row.auth_config_id, config.provider));
        }
    }
    Ok(configs)
}

//! Gateway configs: named least-privilege bundles of (auth config, tools). An agent key
//! bound to gateways may reach only what they allow; `/mcp/{gateway_id}` narrows any
//! caller to one gateway.

use uuid::Uuid;

use super::{invalid, AgentError};
use crate::app::AppState;
use crate::commands::{wait_for_write, Caller};
use crate::domain::api_key::{ApiKey, Role};
use crate::domain::gateway::{Gateway, GatewayCommand, GatewayServer};
use crate::domain::Aggregate;
use crate::ledger::envelope::{open_envelope, AggregateKey};
use crate::projector::store::GatewayRow;

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayInput {
    pub name: String,
    pub servers: Vec<GatewayServer>,
    #[serde(default)]
    pub agent_key_ids: Vec<String>,
}

/// What a caller may reach through the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolScope {
    /// Every tool through every connection of the workspace.
    All,
    /// Only these (auth config, tools) pairs.
    Only(Vec<GatewayServer>),
}

impl ToolScope {
    pub fn allows(&self, auth_config_id: &str, tool: &str) -> bool {
        match self {
            ToolScope::All => true,
            ToolScope::Only(servers) => servers
                .iter()
                .any(|s| s.auth_config_id == auth_config_id && s.tools.iter().any(|t| t == tool)),
        }
    }

    pub fn allows_tool(&self, tool: &str) -> bool {
        match self {
            ToolScope::All => true,
            ToolScope::Only(servers) => servers.iter().any(|s| s.tools.iter().any(|t| t == tool)),
        }
    }

    pub fn allows_auth_config(&self, auth_config_id: &str) -> bool {
        match self {
            ToolScope::All => true,
            ToolScope::Only(servers) => servers.iter().any(|s| s.auth_config_id == auth_config_id),
        }
    }
}

fn servers_of(row: &GatewayRow) -> Vec<GatewayServer> {
    serde_json::from_str(&row.servers).unwrap_or_default()
}

/// The scope of `caller`: narrowed to `gateway_id` when given (an MCP gateway endpoint), and
/// to the gateways its key is bound to, if any.
pub async fn scope_of(
    state: &AppState,
    caller: &Caller,
    gateway_id: Option<&str>,
) -> Result<ToolScope, AgentError> {
    let ws = &caller.workspace_id;
    let bound = state
        .projections
        .gateways_of_key(ws, &caller.api_key_id)
        .await?;
    match gateway_id {
        Some(id) => {
            let row = state
                .projections
                .gateway(ws, id)
                .await?
                .filter(|g| g.status != "deleted");
            let Some(row) = row else {
                let elsewhere = state
                    .projections
                    .aggregate_elsewhere(ws, "gateway", id)
                    .await?;
                return Err(AgentError::NotFound {
                    what: "gateway",
                    elsewhere,
                });
            };
            if !bound.is_empty() && !bound.iter().any(|g| g.id == row.id && reaches_through(g)) {
                return Err(AgentError::OutsideGateway);
            }
            Ok(ToolScope::Only(servers_of(&row)))
        }
        None if bound.is_empty() => Ok(ToolScope::All),
        // Deleted gateways and released bindings still bind their keys, to nothing:
        // neither deleting nor editing a gateway ever widens a key.
        None => Ok(ToolScope::Only(
            bound
                .iter()
                .filter(|g| reaches_through(g))
                .flat_map(servers_of)
                .collect(),
        )),
    }
}

/// Whether a key reaches tools through this binding: only a live gateway that lists it
/// (anything else, including a status this code does not know, reaches nothing).
fn reaches_through(binding: &GatewayRow) -> bool {
    binding.status == "active"
}

/// Creates (`id: None`) or replaces a gateway after checking every reference: auth configs
/// of the workspace, tools that exist and belong to that auth config's provider, live agent
/// keys of the workspace that the caller may bind (`check_bindable`).
pub async fn define(
    state: &AppState,
    caller: &Caller,
    id: Option<&str>,
    input: GatewayInput,
) -> Result<String, AgentError> {
    let ws = &caller.workspace_id;
    for server in &input.servers {
        let config = state
            .projections
            .auth_config(ws, &server.auth_config_id)
            .await?
            .filter(|c| c.status != "deleted")
            .ok_or_else(|| {
                invalid(
                    "servers.auth_config_id",
                    format!("no auth config {} in this workspace", server.auth_config_id),
                )
            })?;
        for name in &server.tools {
            let tool = crate::gateway::find_tool(state, ws, name)
                .await?
                .ok_or_else(|| invalid("servers.tools", format!("no tool {name}")))?;
            if tool.definition().provider != config.provider {
                return Err(invalid(
                    "servers.tools",
                    format!(
                        "{name} is a {} tool; the auth config is {}",
                        tool.definition().provider,
                        config.provider
                    ),
                ));
            }
        }
    }
    let bound_now = match id {
        Some(id) => bound_keys(state, ws, id).await?,
        None => Vec::new(),
    };
    for key in &input.agent_key_ids {
        check_bindable(state, caller, key, &bound_now).await?;
    }
    let (id, create) = match id {
        Some(id) => (id.to_string(), false),
        None => (Uuid::now_v7().to_string(), true),
    };
    let command = GatewayCommand::Define {
        create,
        name: input.name,
        servers: input.servers,
        agent_key_ids: input.agent_key_ids,
    };
    let ledger = &state.ledger;
    let committed = if create {
        ledger
            .create::<Gateway>(ws, &id, &caller.actor(), &command)
            .await
    } else {
        ledger
            .execute::<Gateway>(ws, &id, &caller.actor(), &command)
            .await
    };
    let committed = match committed {
        Err(crate::ledger::LedgerError::Envelope(_)) => {
            return Err(AgentError::NotFound {
                what: "gateway",
                elsewhere: false,
            })
        }
        other => other?,
    };
    wait_for_write(state, committed.position).await?;
    Ok(id)
}

/// The keys a gateway binds now (none when it does not exist).
async fn bound_keys(state: &AppState, ws: &str, id: &str) -> Result<Vec<String>, AgentError> {
    match state.ledger.load::<Gateway>(ws, id).await {
        Ok(g) => Ok(g.definition.map(|d| d.agent_key_ids).unwrap_or_default()),
        // An id that cannot name an aggregate names no gateway (refused when defined).
        Err(crate::ledger::LedgerError::Envelope(_)) => Ok(Vec::new()),
        Err(e) => Err(e.into()),
    }
}

/// Whether `caller` may bind `key`: a live agent key of the workspace (binding another
/// role's key would take its tools away for good: a bound key stays restricted), and the
/// binding an admin's decision: a developer binds only keys it created, or keeps those the
/// gateway already binds.
async fn check_bindable(
    state: &AppState,
    caller: &Caller,
    key: &str,
    bound_now: &[String],
) -> Result<(), AgentError> {
    let ws = &caller.workspace_id;
    let row = state.projections.api_key(ws, key).await?;
    let now = state.clock.now();
    let Some(row) = row.filter(|r| {
        r.revoked_at.is_none()
            && r.expires_at.as_deref().is_none_or(|e| {
                time::OffsetDateTime::parse(e, &time::format_description::well_known::Rfc3339)
                    .is_ok_and(|at| at > now)
            })
    }) else {
        return Err(invalid(
            "agent_key_ids",
            format!("no live API key {key} in this workspace"),
        ));
    };
    if row.role != Role::Agent.as_str() {
        return Err(invalid(
            "agent_key_ids",
            format!(
                "{key} is a {} key; only agent keys are bound to gateways",
                row.role
            ),
        ));
    }
    if caller.role == Role::Admin || bound_now.iter().any(|k| k == key) {
        return Ok(());
    }
    if creator_of(state, ws, key).await?.as_deref() != Some(caller.api_key_id.as_str()) {
        return Err(invalid(
            "agent_key_ids",
            format!("{key}: binding a key is for an admin, or for the key's creator"),
        ));
    }
    Ok(())
}

/// Who created an API key: the actor of its first event, as the log says.
async fn creator_of(state: &AppState, ws: &str, key: &str) -> Result<Option<String>, AgentError> {
    let Ok(aggregate) = AggregateKey::new(ws, <ApiKey as Aggregate>::TYPE, key) else {
        return Ok(None);
    };
    let events = state
        .log
        .read_aggregate(&aggregate)
        .await
        .map_err(crate::ledger::LedgerError::from)?;
    let Some(first) = events.first() else {
        return Ok(None);
    };
    let opened = open_envelope(&first.envelope).map_err(crate::ledger::LedgerError::from)?;
    Ok(Some(opened.body.actor.id))
}

pub async fn delete(state: &AppState, caller: &Caller, id: &str) -> Result<(), AgentError> {
    let committed = match state
        .ledger
        .execute::<Gateway>(
            &caller.workspace_id,
            id,
            &caller.actor(),
            &GatewayCommand::Delete,
        )
        .await
    {
        Err(crate::ledger::LedgerError::Envelope(_)) => {
            return Err(AgentError::NotFound {
                what: "gateway",
                elsewhere: false,
            })
        }
        other => other?,
    };
    wait_for_write(state, committed.position).await?;
    Ok(())
}

//! The gateway: runs one tool call for an agent with the user's credential, which the agent
//! never sees. Order (each refusal stops it): tool, connection, arguments, scopes, token
//! use, step-up approval, fresh credential, `tool.requested` (no event, no call), the
//! upstream call (timeout; retries only idempotent methods), `tool.completed`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use uuid::Uuid;

use super::{invalid, missing_scopes, resolve_connection, AgentError};
use crate::app::AppState;
use crate::commands::connections;
use crate::commands::Caller;
use crate::domain::approval::{
    Approval, ApprovalCommand, ApprovalRequested, CallBinding, APPROVAL_TTL,
};
use crate::domain::auth_config::{AuthConfig, AuthSettings};
use crate::domain::connection::Connection;
use crate::domain::tool_call::{ToolCall, ToolCallCommand, ToolCompleted, ToolOutcome};
use crate::domain::ToolRequested;
use crate::scoped_token::TokenClaims;
use crate::tools::{self, Risk, Tool, UpstreamRequest};

/// Largest upstream response body relayed to the agent.
pub const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

/// Gateway deployment settings.
#[derive(Debug, Clone)]
pub struct GatewaySettings {
    /// Per-attempt upstream timeout.
    pub upstream_timeout: Duration,
    /// Extra attempts for idempotent methods on timeouts, connection errors and 5xx.
    pub idempotent_retries: u32,
}

impl Default for GatewaySettings {
    fn default() -> Self {
        GatewaySettings {
            upstream_timeout: Duration::from_secs(30),
            idempotent_retries: 2,
        }
    }
}

/// How the agent authenticated: its API key, or a scoped token (whose claims bound it).
#[derive(Debug, Clone)]
pub enum Authority {
    ApiKey,
    Token(Box<TokenClaims>),
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecuteInput {
    pub tool: String,
    #[serde(default = "empty_object")]
    pub arguments: Value,
    pub connection_id: Option<String>,
    pub user_id: Option<String>,
    pub auth_config_id: Option<String>,
    pub approval_id: Option<String>,
    /// Set by the MCP endpoint of one gateway (never from the request body).
    #[serde(skip)]
    pub gateway_id: Option<String>,
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

/// What the upstream answered.
#[derive(Debug)]
pub struct Executed {
    pub tool_call_id: String,
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
    pub latency_ms: u64,
}

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

pub async fn execute(
    state: &AppState,
    caller: &Caller,
    authority: &Authority,
    input: ExecuteInput,
) -> Result<Executed, AgentError> {
    let begun = Instant::now();
    let ws = &caller.workspace_id;
    let actor = caller.actor();
    let tool = find_tool(state, ws, &input.tool)
        .await?
        .ok_or(AgentError::NotFound {
            what: "tool",
            elsewhere: false,
        })?;
    let def = tool.definition().clone();
    let scope = super::gateways::scope_of(state, caller, input.gateway_id.as_deref()).await?;
    if !scope.allows_tool(&def.name) {
        return Err(AgentError::OutsideGateway);
    }
    // The connection: the token's, or the one the request names.
    let user = match (&input.user_id, &input.auth_config_id) {
        (Some(u), Some(a)) => Some((u.as_str(), a.as_str())),
        (None, None) => None,
        _ => return Err(invalid("user_id", "user_id and auth_config_id go together")),
    };
    let connection_id = match authority {
        Authority::Token(claims) => {
            if input
                .connection_id
                .as_deref()
                .is_some_and(|c| c != claims.connection_id)
                || user.is_some_and(|(u, a)| u != claims.sub || a != claims.auth_config_id)
            {
                return Err(AgentError::TokenMismatch("another connection"));
            }
            if claims.tool.as_deref().is_some_and(|t| t != def.name) {
                return Err(AgentError::TokenMismatch("another tool"));
            }
            claims.connection_id.clone()
        }
        Authority::ApiKey => {
            let id = input.connection_id.as_deref();
            super::check_scope_first(state, ws, &scope, Some(&def.name), id, user).await?;
            resolve_connection(state, ws, &actor, id, user).await?
        }
    };
    if let Authority::Token(claims) = authority {
        // A token issued before its key was bound (or narrowed) is held to the scope now.
        let bound = (claims.sub.as_str(), claims.auth_config_id.as_str());
        super::check_scope_first(state, ws, &scope, Some(&def.name), None, Some(bound)).await?;
    }
    // The workspace's response-storage setting is read alongside (one wait, not two).
    let (usable, workspace) = tokio::join!(
        super::usable_or_connect(state, ws, &actor, &connection_id),
        state
            .ledger
            .load::<crate::domain::workspace::Workspace>(ws, ws)
    );
    let usable = usable?;
    let store_responses = workspace?.store_tool_responses;
    check_tool_fits(&tool, &usable.config)?;
    if !scope.allows(&usable.connection.auth_config_id, &def.name) {
        return Err(AgentError::OutsideGateway);
    }
    tool.check_arguments(&input.arguments)
        .map_err(|e| match e {
            tools::ToolError::InvalidArguments(problems) => AgentError::InvalidArguments(problems),
            other => invalid("arguments", other.to_string()),
        })?;
    // Scopes: the tool's must be granted on the connection (OAuth) and held by the token.
    if matches!(usable.config.settings, Some(AuthSettings::Oauth2(_))) {
        let missing = missing_scopes(&def.required_scopes, &usable.connection.scopes);
        if !missing.is_empty() {
            return Err(AgentError::ScopeEscalation(missing));
        }
    }
    if let Authority::Token(claims) = authority {
        let missing = missing_scopes(&def.required_scopes, &claims.scopes());
        if !missing.is_empty() {
            return Err(AgentError::ScopeEscalation(missing));
        }
    }
    // A token that can no longer be used (revoked, expired, used up) is refused before
    // anything is recorded on its behalf, approval requests included. The use itself is
    // decided below, against the token's version.
    if let Authority::Token(claims) = authority {
        super::tokens::check_usable(state, claims, &def.name).await?;
    }
    let fingerprint = tools::argument_fingerprint(&input.arguments);
    let tool_call_id = Uuid::now_v7().to_string();
    // Step-up: a destructive call runs only with an approval bound to exactly this call.
    let approval_id = if def.risk == Risk::Destructive {
        let binding = CallBinding {
            tool: &def.name,
            connection_id: &connection_id,
            argument_fingerprint: &fingerprint,
        };
        match &input.approval_id {
            None => {
                return Err(request_approval(
                    state,
                    caller,
                    &usable.connection,
                    &def.name,
                    &connection_id,
                    &fingerprint,
                )
                .await?);
            }
            Some(id) => {
                let approval = super::approvals::load(state, ws, id).await?;
                if approval.requested.is_none() {
                    return Err(AgentError::NotFound {
                        what: "approval",
                        elsewhere: false,
                    });
                }
                approval.check_use(state.clock.now(), &binding)?;
                Some(id.clone())
            }
        }
    } else {
        if input.approval_id.is_some() {
            return Err(invalid(
                "approval_id",
                "only destructive tools take an approval",
            ));
        }
        None
    };
    if let Authority::Token(claims) = authority {
        super::tokens::use_token(state, claims, &actor, &def.name, &tool_call_id).await?;
    }
    if let Some(id) = &approval_id {
        // Consumed before the call: an approval runs its call at most once.
        state
            .ledger
            .execute::<Approval>(
                ws,
                id,
                &actor,
                &ApprovalCommand::Consume {
                    now: state.clock.now(),
                    tool_call_id: tool_call_id.clone(),
                },
            )
            .await?;
    }
    let (usable, credential) =
        connections::credential_for_call(state, ws, &connection_id, &actor, usable).await?;
    let mut request = tool
        .build_request(None, &input.arguments)
        .map_err(|e| invalid("arguments", e.to_string()))?;
    let requested = ToolRequested {
        tool: def.name.clone(),
        risk: def.risk,
        connection_id: connection_id.clone(),
        auth_config_id: usable.connection.auth_config_id.clone(),
        user_id: usable.connection.user_id.clone(),
        token_id: match authority {
            Authority::Token(c) => Some(c.jti.clone()),
            Authority::ApiKey => None,
        },
        approval_id,
        argument_fingerprint: fingerprint,
        method: request.method.as_str().to_string(),
        url: request
            .url
            .split('?')
            .next()
            .unwrap_or_default()
            .to_string(),
    };
    let phase = |name, since: Instant| {
        state
            .metrics
            .tool_call_phase(name, since.elapsed().as_secs_f64());
        Instant::now()
    };
    let recording = phase("prepare", begun);
    // Fail closed: without the `tool.requested` event there is no call.
    state
        .ledger
        .create::<ToolCall>(
            ws,
            &tool_call_id,
            &actor,
            &ToolCallCommand::Request(requested),
        )
        .await?;
    let started = phase("requested", recording);
    request.inject(&credential);
    drop(credential);
    let (result, attempts) = call_upstream(state, &request).await;
    let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let completing = phase("upstream", started);
    let completed = |outcome, status, error| ToolCompleted {
        tool: def.name.clone(),
        connection_id: connection_id.clone(),
        outcome,
        status,
        latency_ms,
        attempts,
        response: None,
        error,
    };
    let (event, answer) = match result {
        Ok(resp) => {
            let outcome = if (200..300).contains(&resp.status) {
                ToolOutcome::Success
            } else {
                ToolOutcome::UpstreamError
            };
            let mut done = completed(outcome, Some(resp.status), None);
            if store_responses {
                done.response = Some(stored_response(&resp.body));
            }
            (done, Ok(resp))
        }
        Err(UpstreamFailure::Timeout) => (
            completed(ToolOutcome::Timeout, None, Some("no answer in time".into())),
            Err(AgentError::UpstreamTimeout {
                tool_call_id: tool_call_id.clone(),
            }),
        ),
        Err(UpstreamFailure::Unreachable(detail)) => (
            completed(ToolOutcome::Unreachable, None, Some(detail.clone())),
            Err(AgentError::UpstreamUnreachable {
                tool_call_id: tool_call_id.clone(),
                detail,
            }),
        ),
    };
    let committed = state
        .ledger
        .execute::<ToolCall>(ws, &tool_call_id, &actor, &ToolCallCommand::Complete(event))
        .await?;
    phase("completed", completing);
    crate::commands::written::reached(committed.position);
    let resp = answer?;
    Ok(Executed {
        tool_call_id,
        status: resp.status,
        content_type: resp.content_type,
        body: resp.body,
        latency_ms,
    })
}

async fn request_approval(
    state: &AppState,
    caller: &Caller,
    connection: &Connection,
    tool: &str,
    connection_id: &str,
    fingerprint: &str,
) -> Result<AgentError, AgentError> {
    let id = Uuid::now_v7().to_string();
    let expires_at = state.clock.now() + APPROVAL_TTL;
    let committed = state
        .ledger
        .create::<Approval>(
            &caller.workspace_id,
            &id,
            &caller.actor(),
            &ApprovalCommand::Request(ApprovalRequested {
                tool: tool.to_string(),
                connection_id: connection_id.to_string(),
                user_id: connection.user_id.clone(),
                argument_fingerprint: fingerprint.to_string(),
                expires_at,
            }),
        )
        .await?;
    crate::commands::wait_for_write(state, committed.position).await?;
    Ok(AgentError::ApprovalRequired {
        approval_id: id,
        expires_at,
    })
}

/// Largest response body kept (redacted) in a `tool.completed` event.
const MAX_STORED_RESPONSE_BYTES: usize = 64 * 1024;

/// What an opted-in workspace keeps of a response: JSON with secret-looking fields redacted
/// and long strings cut, text cut; a body too large only as its size.
fn stored_response(body: &[u8]) -> Value {
    if body.len() > MAX_STORED_RESPONSE_BYTES {
        return serde_json::json!({ "omitted": "too large", "bytes": body.len() });
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => tools::redact(&v),
        Err(_) => tools::redact(&Value::String(String::from_utf8_lossy(body).into_owned())),
    }
}

struct UpstreamResponse {
    status: u16,
    content_type: Option<String>,
    body: Vec<u8>,
}

enum UpstreamFailure {
    Timeout,
    Unreachable(String),
}

/// Calls the upstream; retries idempotent methods on timeouts, connection errors and 5xx.
/// Never follows redirects (a redirect could carry the credential to another host).
async fn call_upstream(
    state: &AppState,
    request: &UpstreamRequest,
) -> (Result<UpstreamResponse, UpstreamFailure>, u32) {
    let settings = &state.gateway;
    let tries = if request.method.is_idempotent() {
        1 + settings.idempotent_retries
    } else {
        1
    };
    let mut last = Err(UpstreamFailure::Unreachable("not attempted".into()));
    for attempt in 1..=tries {
        last = attempt_once(state, request).await;
        let retry = match &last {
            Ok(r) => r.status >= 500,
            Err(_) => true,
        };
        if !retry || attempt == tries {
            return (last, attempt);
        }
        tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
    }
    (last, tries)
}

async fn attempt_once(
    state: &AppState,
    request: &UpstreamRequest,
) -> Result<UpstreamResponse, UpstreamFailure> {
    let method = reqwest::Method::from_bytes(request.method.as_str().as_bytes())
        .map_err(|e| UpstreamFailure::Unreachable(e.to_string()))?;
    let mut builder = state
        .gateway_http
        .request(method, &request.url)
        .timeout(state.gateway.upstream_timeout);
    for (name, value) in &request.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    if let Some(body) = &request.body {
        builder = builder.body(body.clone());
    }
    let mut resp = builder.send().await.map_err(classify)?;
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(classify)? {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(UpstreamFailure::Unreachable(format!(
                "the response is larger than {MAX_RESPONSE_BYTES} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(UpstreamResponse {
        status,
        content_type,
        body,
    })
}

fn classify(e: reqwest::Error) -> UpstreamFailure {
    if e.is_timeout() {
        UpstreamFailure::Timeout
    } else {
        // Without the URL: it may carry a query-string credential.
        UpstreamFailure::Unreachable(e.without_url().to_string())
    }
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
    crate::commands::check_loopback(state, "base_url", &[definition.base_url.as_str()])
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
/// caller's key is bound to.
pub async fn list_tools_in(
    state: &AppState,
    caller: &Caller,
    authority: &Authority,
    gateway_id: Option<&str>,
) -> Result<Vec<(tools::ToolDefinition, &'static str)>, AgentError> {
    let scope = super::gateways::scope_of(state, caller, gateway_id).await?;
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
    all.retain(|(d, _)| scope.allows_tool(&d.name));
    all.sort_by(|a, b| a.0.name.cmp(&b.0.name));
    Ok(all)
}

//! The MCP server: the gateway's tools over the Model Context Protocol (Streamable HTTP
//! transport, official Rust SDK `rmcp`), so any MCP client can list and call them.
//!
//! # Mount and authentication
//!
//! `POST /mcp` is an ordinary route of the table (`api::routes`, permission `CallTools`): the
//! request passes through `api::auth::authorize` like every other (an agent/developer/admin
//! API key, or a scoped token; refusals are `access.denied` events; rate limits apply), and
//! only then is handed to rmcp's `StreamableHttpService`, with the `Caller` (and, for a
//! scoped token, the `Authority`) in its extensions. rmcp passes the request's
//! `http::request::Parts` to the handler, which reads the caller from there: every MCP
//! message is authorized as the HTTP request that carried it.
//!
//! # As the signed-in person
//!
//! `POST /mcp/w/{workspace_id}` (and `/mcp/w/{workspace_id}/{gateway_id}`; or `/mcp` with the
//! `Authledger-Workspace` header) take an end user's JWT from the workspace's identity
//! provider instead: `api::auth` checks it like the end-user routes' and puts the `EndUser`
//! and `Authority::Person` on the request. The person calls as themselves (actor `user`,
//! their `sub`; the token's client as `mcp_client` on `tool.requested`), listing the tools of
//! their own connections' providers and acting only through their own connections; naming
//! another person's connection (or `user_id`) answers exactly like an unknown connection and
//! is recorded as `access.denied` (`other_user`). How a client finds where to sign in:
//! `api::protected_resource`.
//!
//! # Sessions and retried calls
//!
//! rmcp runs stateless (`legacy_session_mode: false`, no session manager): every POST stands
//! alone and no process keeps anything between requests. Sessions are this face's own and
//! live in the log, so they hold on every instance: an `initialize` answered with a result
//! opens one (`commands::mcp_session::start`, `mcp.session_started`) and the answer carries
//! its id as `Mcp-Session-Id`. A request presenting the header must present an open session
//! of its own caller (checked from the log on each request); an unknown or ended one answers
//! `404 mcp-session-not-found` (the client initializes again, as the transport says), and
//! another caller's answers the same and is recorded (`access.denied`, `other_user`).
//! Sessions last as long as idempotency records (24 h); `GET` and `DELETE` are not served.
//!
//! Within a session a `tools/call`'s JSON-RPC id is an idempotency key
//! (`commands::idempotency`, key `mcp_session::call_key`, scoped like an `Idempotency-Key`
//! to the workspace and the API key, token or person): the first call claims it in the log
//! and runs in a task of its own (a client that gives up does not cut it short), and its
//! result is recorded; the same call retried with the same id, on any instance, gets that
//! result without running again; another call with the id is refused (JSON-RPC
//! `-32600`, data the problem `mcp-request-id-reused`), and a retry while the first still
//! runs is refused likewise (`idempotency-key-in-use`, `retry_after` seconds in the data).
//! A request without a session (a client that kept none) runs as before, unprotected.
//!
//! The server never sends requests or notifications of its own. Answers are plain JSON
//! (`json_response`). rmcp's DNS-rebinding checks stay on: the `Host` must be the public
//! URL's host or a loopback name, and a request carrying an `Origin` must come from the
//! public URL's origin (browsers elsewhere get 403).
//!
//! # Tools
//!
//! `tools/list` answers what `gateway::list_tools` gives the caller (all tools for an API
//! key; those its scopes and tool binding cover for a scoped token), narrowed by the mount's
//! [`ToolFilter`]. Each tool's `inputSchema` is its own `parameters` schema plus the routing
//! fields below; `annotations` say `readOnlyHint` for risk `read` and `destructiveHint` for
//! risk `destructive`.
//!
//! # Arguments: the tool's own, plus routing fields
//!
//! A `tools/call`'s `arguments` object holds the tool's arguments and, next to them, these
//! reserved fields, which are taken out before the tool's schema is checked:
//!
//! - `connection_id`: the connection to act through; or
//! - `user_id` and `auth_config_id`: that user's active connection of that auth config
//!   (none active: the error carries a `connect_url` for the user);
//! - `approval_id`: for a destructive tool, the approved step-up request for exactly this
//!   call (same tool, connection and arguments).
//!
//! With a scoped token the connection is the token's: the connection fields are not
//! advertised (if given, they must name the token's connection). A workspace tool whose own
//! parameters use a reserved name is not listed over MCP (its calls could not be told apart).
//!
//! # Results and errors
//!
//! The call runs `gateway::execute` (same checks, same events as `POST /v1/tools/execute`).
//! The upstream's answer is one text content block, the JSON
//! `{tool_call_id, status, content_type, body, latency_ms}` (`body` parsed when JSON), with
//! `isError` when the upstream status is not 2xx. A refusal by the gateway is a tool error
//! (`isError: true`) whose text is the problem JSON the HTTP API would answer (`type`,
//! `title`, `status`, `detail`, plus e.g. `approval_id` for `approval-required` or
//! `connect_url` for `connection-required`), recorded as `access.denied` where the HTTP API
//! records it. JSON-RPC errors are left for what is not a call at all (malformed messages,
//! which rmcp answers) and for failing to list tools.

use std::borrow::Cow;
use std::sync::Arc;

use axum::extract::Request;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    JsonObject, ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig,
    Tool as McpTool, ToolAnnotations,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{json, Value};

use crate::app::AppState;
use crate::commands::agents::{refused, AgentError, At};
use crate::commands::problem::Problem;
use crate::commands::{record_denial, Caller, EndUser};
use crate::domain::access::{sanitize, AccessDenied, DenialReason};
use crate::domain::Role;
use crate::gateway::tools::{Risk, ToolDefinition};
use crate::gateway::{self, Authority, ExecuteInput, Executed};
use crate::ledger::ActorType;

mod session;

/// Decides which tools a mount offers, by name (`None` on [`Scope`]: all of them).
pub type ToolFilter = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// The arguments that route a call instead of going to the tool.
pub const ROUTING_FIELDS: [&str; 4] = ["connection_id", "user_id", "auth_config_id", "approval_id"];

/// What one MCP mount serves.
#[derive(Clone)]
pub struct Scope {
    /// The route as in the route table, for `access.denied` events (`/mcp`).
    pub route: &'static str,
    /// Only the tools this admits are listed and callable; `None`: every tool the caller
    /// may use.
    pub filter: Option<ToolFilter>,
    /// The gateway this mount serves (`/mcp/{gateway_id}`): its tools only.
    pub gateway_id: Option<String>,
}

impl Scope {
    /// Every tool the caller may use, served on `route` (as in the route table).
    pub fn all(route: &'static str) -> Scope {
        Scope {
            route,
            filter: None,
            gateway_id: None,
        }
    }

    fn admits(&self, tool: &str) -> bool {
        self.filter.as_ref().is_none_or(|f| f(tool))
    }
}

/// `POST /mcp` (already authorized by `api::auth`); `route` is the route table's path,
/// handed over by the API's mount (this face sits below it and names no route itself).
pub async fn handle(state: AppState, route: &'static str, request: Request) -> Response {
    serve(state, Scope::all(route), request).await
}

/// `POST /mcp/{gateway_id}`: one gateway's tools only. An unknown (or another workspace's)
/// gateway answers 404, a gateway the caller's key is not bound to 403, both audited.
pub async fn handle_gateway(
    state: AppState,
    route: &'static str,
    gateway_id: String,
    request: Request,
) -> Response {
    let Some((caller, _)) = caller_in(request.extensions()) else {
        return axum::http::StatusCode::UNAUTHORIZED.into_response();
    };
    if let Err(e) =
        crate::commands::agents::gateway_configs::scope_of(&state, &caller, Some(&gateway_id)).await
    {
        let at = At {
            method: "POST",
            route,
            target: Some(&gateway_id),
        };
        return refused(&state, caller.actor(), &caller.workspace_id, at, &e)
            .await
            .into_response();
    }
    let scope = Scope {
        route,
        filter: None,
        gateway_id: Some(gateway_id),
    };
    serve(state, scope, request).await
}

/// Answers one authorized MCP request for `scope`. The request must carry the `Caller` (and,
/// for a scoped token, the `Authority`) that `api::auth::authorize` inserts.
pub async fn serve(state: AppState, scope: Scope, request: Request) -> Response {
    let Some((caller, authority)) = caller_in(request.extensions()) else {
        return axum::http::StatusCode::UNAUTHORIZED.into_response();
    };
    // The session this request names (checked in the log), or the one its `initialize` opens.
    let (request, opening) =
        match session::admit(&state, &scope, &caller, &authority, request).await {
            Ok(admitted) => admitted,
            Err(refusal) => return refusal,
        };
    // Stateless: the transport holds no session between requests, so it is built per request
    // (a few `Arc`s) with the state and the mount's scope.
    let config = transport_config(&state.connections.public_url);
    let server = McpServer {
        state: state.clone(),
        scope,
    };
    let service = StreamableHttpService::new(
        move || Ok(server.clone()),
        Arc::new(NeverSessionManager::default()),
        config,
    );
    let response = service
        .handle(request)
        .await
        .map(axum::body::Body::new)
        .into_response();
    match opening {
        Some(client) => session::open(&state, &caller, &authority, client, response).await,
        None => response,
    }
}

/// The transport settings: stateless JSON answers, the API's body limit, and rmcp's
/// DNS-rebinding protection bound to the public URL.
fn transport_config(public_url: &str) -> StreamableHttpServerConfig {
    let (hosts, origins) = allowed_hosts_and_origins(public_url);
    StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_sse_keep_alive(None)
        .with_max_request_body_bytes(crate::config::MAX_BODY_BYTES)
        .with_allowed_hosts(hosts)
        .with_allowed_origins(origins)
        .enforce_origin_validation()
}

/// `Host` values accepted: the public URL's authority and the loopback names. `Origin`
/// values accepted (when present): the public URL's origin only.
fn allowed_hosts_and_origins(public_url: &str) -> (Vec<String>, Vec<String>) {
    let mut hosts: Vec<String> = ["localhost", "127.0.0.1", "::1"]
        .into_iter()
        .map(str::to_string)
        .collect();
    let mut origins = Vec::new();
    if let Ok(url) = url::Url::parse(public_url) {
        if let Some(host) = url.host_str() {
            // An explicit port must match; none (the scheme's default) accepts `host` alone.
            hosts.push(match url.port() {
                Some(port) => format!("{host}:{port}"),
                None => host.to_string(),
            });
            if let Some(port) = url.port_or_known_default() {
                origins.push(format!("{}://{host}:{port}", url.scheme()));
            }
        }
    }
    (hosts, origins)
}

#[derive(Clone)]
struct McpServer {
    state: AppState,
    scope: Scope,
}

/// The caller of the HTTP request that carried this MCP request.
fn caller_of(context: &RequestContext<RoleServer>) -> Result<(Caller, Authority), ErrorData> {
    let found = context
        .extensions
        .get::<Parts>()
        .and_then(|p| caller_in(&p.extensions));
    found.ok_or_else(|| {
        // Only reachable if the service were mounted without `api::auth`.
        tracing::error!("MCP request without an authorized caller");
        ErrorData::internal_error("not authorized", None)
    })
}

/// What `api::auth` put on an authorized request: an API key's (or scoped token's) caller,
/// or a signed-in person (`EndUser` and `Authority::Person`), who calls as themselves
/// (actor `user`, least privilege: the agent role, their own connections only).
fn caller_in(extensions: &axum::http::Extensions) -> Option<(Caller, Authority)> {
    let authority = extensions.get::<Authority>().cloned();
    if let Some(Authority::Person(_)) = authority {
        let user = extensions.get::<EndUser>()?;
        let caller = Caller {
            workspace_id: user.workspace_id.clone(),
            api_key_id: user.user_id.clone(),
            role: Role::Agent,
            actor_type: ActorType::User,
        };
        return Some((caller, authority.unwrap_or(Authority::ApiKey)));
    }
    let caller = extensions.get::<Caller>()?.clone();
    Some((caller, authority.unwrap_or(Authority::ApiKey)))
}

/// Which routing fields a caller's tools advertise.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Routing {
    /// An API key names any connection: `connection_id`, or `user_id` and `auth_config_id`.
    Key,
    /// A scoped token's connection is its own: none.
    Token,
    /// A person names one of their own: `connection_id` or `auth_config_id` (or neither).
    Person,
}

impl Routing {
    fn of(authority: &Authority) -> Routing {
        match authority {
            Authority::ApiKey => Routing::Key,
            Authority::Token(_) => Routing::Token,
            Authority::Person(_) => Routing::Person,
        }
    }
}

impl ServerHandler for McpServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(
                Implementation::new("authledger", env!("CARGO_PKG_VERSION"))
                    .with_title("authledger tool gateway"),
            )
            .with_instructions(INSTRUCTIONS)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let (caller, authority) = caller_of(&context)?;
        let routing = Routing::of(&authority);
        let gateway_id = self.scope.gateway_id.as_deref();
        let listed =
            match gateway::list_tools_in(&self.state, &caller, &authority, gateway_id).await {
                Ok(l) => l,
                Err(e) if e.denial_reason().is_some() => {
                    // A refusal (a token that can no longer be used): audited like the
                    // HTTP API's, answered with its problem document.
                    let at = At {
                        method: "POST",
                        route: self.scope.route,
                        target: None,
                    };
                    let problem =
                        refused(&self.state, caller.actor(), &caller.workspace_id, at, &e).await;
                    return Err(ErrorData::invalid_request(
                        problem.title.clone(),
                        serde_json::from_str(&problem_text(&problem)).ok(),
                    ));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot list tools for MCP");
                    return Err(ErrorData::internal_error(
                        "cannot list tools right now",
                        None,
                    ));
                }
            };
        let tools = listed
            .iter()
            .filter(|(d, _)| self.scope.admits(&d.name))
            .filter_map(|(d, _)| mcp_tool(d, routing))
            .collect();
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let (caller, authority) = caller_of(&context)?;
        let in_session = context
            .extensions
            .get::<Parts>()
            .and_then(|p| p.extensions.get::<session::InSession>())
            .cloned();
        let result = match in_session {
            // Within a session: once per request id.
            Some(in_session) => {
                let call = session::Call {
                    caller,
                    authority,
                    request,
                    request_id: &context.id,
                };
                return session::call_once(self, &in_session, call).await;
            }
            None => self.run_call(&caller, &authority, request).await,
        };
        Ok(result.into())
    }
}

impl McpServer {
    /// One `tools/call` through the gateway: its result, a refusal as a tool error.
    async fn run_call(
        &self,
        caller: &Caller,
        authority: &Authority,
        request: CallToolRequestParams,
    ) -> CallToolResult {
        let (caller, authority) = (caller.clone(), authority.clone());
        let tool = request.name.to_string();
        let routed = split_arguments(tool.clone(), request.arguments);
        let target = match &routed {
            Ok(input) => input.connection_id.clone().or(input.user_id.clone()),
            Err(_) => None,
        };
        let outcome = match routed {
            Err(e) => Err(e),
            Ok(_) if !self.scope.admits(&tool) => Err(AgentError::NotFound {
                what: "tool",
                elsewhere: false,
            }),
            Ok(mut input) => {
                input.gateway_id.clone_from(&self.scope.gateway_id);
                gateway::execute(&self.state, &caller, &authority, input).await
            }
        };
        match outcome {
            Ok(done) => executed(done),
            Err(e) => {
                let at = At {
                    method: "POST",
                    route: self.scope.route,
                    target: target.as_deref(),
                };
                let problem = match e {
                    // A person naming another person's connection: exactly an unknown id.
                    AgentError::OtherUser if Routing::of(&authority) == Routing::Person => {
                        let unknown = AgentError::NotFound {
                            what: "connection",
                            elsewhere: false,
                        };
                        let problem = Problem::from(&unknown);
                        let denial = AccessDenied {
                            method: at.method.to_string(),
                            route: at.route.to_string(),
                            status: problem.status,
                            reason: DenialReason::OtherUser,
                            target_id: at.target.map(|t| sanitize(t, 128)),
                        };
                        let ws = Some(caller.workspace_id.as_str());
                        record_denial(&self.state, ws, caller.actor(), denial).await;
                        problem
                    }
                    e => refused(&self.state, caller.actor(), &caller.workspace_id, at, &e).await,
                };
                CallToolResult::error(vec![ContentBlock::text(problem_text(&problem))])
            }
        }
    }
}

const INSTRUCTIONS: &str = "Each tool acts for a user through one of their connections, with \
credentials you never see. With an API key, name the connection in the call's arguments: \
connection_id, or user_id and auth_config_id (if the user has not connected yet, the error \
carries a connect_url to give them). With a scoped token the connection is the token's. Signed \
in as a person (their identity provider's token), the tools act through that person's own \
connections only: connection_id or auth_config_id, or neither when one of them serves the tool. A \
destructive tool first answers an error of type approval-required carrying approval_id: once \
the user has approved it, call again with the same arguments plus approval_id. Errors are \
problem JSON (type, title, detail).";

/// One gateway tool as MCP lists it; `None` when its own parameters use a routing name.
fn mcp_tool(def: &ToolDefinition, routing: Routing) -> Option<McpTool> {
    let mut schema: JsonObject = match &def.parameters {
        Value::Object(m) => m.clone(),
        _ => JsonObject::new(),
    };
    let mut properties = match schema.remove("properties") {
        Some(Value::Object(p)) => p,
        _ => JsonObject::new(),
    };
    if ROUTING_FIELDS.iter().any(|f| properties.contains_key(*f)) {
        tracing::warn!(tool = %def.name, "tool parameters use a reserved routing name; not listed over MCP");
        return None;
    }
    if routing == Routing::Person {
        properties.insert(
            "connection_id".into(),
            json!({ "type": "string", "description": "Routing (not sent to the tool): which of your connections to act through. Or give auth_config_id, or neither when one of your connections serves this tool." }),
        );
        properties.insert(
            "auth_config_id".into(),
            json!({ "type": "string", "description": "Routing (not sent to the tool): act through your active connection of this auth config." }),
        );
    }
    if routing == Routing::Key {
        properties.insert(
            "connection_id".into(),
            json!({ "type": "string", "description": "Routing (not sent to the tool): the connection to act through. Or give user_id and auth_config_id." }),
        );
        properties.insert(
            "user_id".into(),
            json!({ "type": "string", "description": "Routing (not sent to the tool): act through this user's active connection of auth_config_id." }),
        );
        properties.insert(
            "auth_config_id".into(),
            json!({ "type": "string", "description": "Routing (not sent to the tool): the auth config of user_id's connection." }),
        );
    }
    if def.risk == Risk::Destructive {
        properties.insert(
            "approval_id".into(),
            json!({ "type": "string", "description": "Step-up (not sent to the tool): the approved approval_id from this call's approval-required error; same arguments." }),
        );
    }
    schema.insert("type".into(), json!("object"));
    schema.insert("properties".into(), Value::Object(properties));
    let annotations = ToolAnnotations::new()
        .read_only(def.risk == Risk::Read)
        .destructive(def.risk == Risk::Destructive)
        .idempotent(def.method.is_idempotent())
        .open_world(true);
    Some(
        McpTool::new(
            Cow::Owned(def.name.clone()),
            Cow::Owned(def.description.clone()),
            Arc::new(schema),
        )
        .with_annotations(annotations),
    )
}

/// The gateway input of a call: the routing fields taken out of `arguments`, the rest the
/// tool's own arguments.
fn split_arguments(
    tool: String,
    arguments: Option<JsonObject>,
) -> Result<ExecuteInput, AgentError> {
    let mut arguments = arguments.unwrap_or_default();
    let mut take = |name: &str| -> Result<Option<String>, String> {
        match arguments.remove(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(format!("/{name}: must be a string")),
        }
    };
    let fields = ROUTING_FIELDS.map(&mut take);
    let problems: Vec<String> = fields.iter().filter_map(|f| f.clone().err()).collect();
    if !problems.is_empty() {
        return Err(AgentError::InvalidArguments(problems));
    }
    let [connection_id, user_id, auth_config_id, approval_id] = fields.map(|f| f.ok().flatten());
    Ok(ExecuteInput {
        tool,
        arguments: Value::Object(arguments),
        connection_id,
        user_id,
        auth_config_id,
        approval_id,
        gateway_id: None,
    })
}

/// The upstream's answer as a tool result (an error result when not 2xx).
fn executed(done: Executed) -> CallToolResult {
    let text = String::from_utf8_lossy(&done.body);
    let is_json = done
        .content_type
        .as_deref()
        .is_some_and(|c| c.contains("json"));
    let body = if is_json {
        serde_json::from_slice::<Value>(&done.body).unwrap_or_else(|_| json!(text))
    } else {
        json!(text)
    };
    let answer = json!({
        "tool_call_id": done.tool_call_id,
        "status": done.status,
        "content_type": done.content_type,
        "body": body,
        "latency_ms": done.latency_ms,
    });
    let content = vec![ContentBlock::text(answer.to_string())];
    if (200..300).contains(&done.status) {
        CallToolResult::success(content)
    } else {
        CallToolResult::error(content)
    }
}

/// The problem JSON of a refusal response, as text.
/// The problem document as the HTTP API would answer it (problem+json).
fn problem_text(problem: &Problem) -> String {
    serde_json::to_string(problem).unwrap_or_else(|_| {
        json!({
            "type": "https://authledger.dev/problems/internal",
            "title": "Internal error",
            "status": problem.status,
        })
        .to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_fields_leave_the_tool_arguments() {
        let args = json!({ "q": "x", "connection_id": "c1", "approval_id": null });
        let Value::Object(args) = args else { panic!() };
        let input = split_arguments("a.b".into(), Some(args)).expect("split");
        assert_eq!(input.arguments, json!({ "q": "x" }));
        assert_eq!(input.connection_id.as_deref(), Some("c1"));
        assert_eq!(input.approval_id, None);
        let Value::Object(bad) = json!({ "user_id": 5 }) else {
            panic!()
        };
        assert!(matches!(
            split_arguments("a.b".into(), Some(bad)),
            Err(AgentError::InvalidArguments(p)) if p == ["/user_id: must be a string"]
        ));
    }

    #[test]
    fn hosts_and_origins_follow_the_public_url() {
        let (hosts, origins) = allowed_hosts_and_origins("https://ledger.example.com");
        assert!(hosts.contains(&"ledger.example.com".to_string()));
        assert!(hosts.contains(&"127.0.0.1".to_string()));
        assert_eq!(origins, ["https://ledger.example.com:443"]);
        let (hosts, origins) = allowed_hosts_and_origins("http://10.0.0.5:8080");
        assert!(hosts.contains(&"10.0.0.5:8080".to_string()));
        assert_eq!(origins, ["http://10.0.0.5:8080"]);
    }
}

//! MCP sessions at the edge of this face, and `tools/call` once per request id within one
//! (see the module docs of `mcp`, "Sessions and retried calls"). What is decided lives in
//! the log (`commands::mcp_session`, `commands::idempotency`), so any instance answers a
//! session's retry the same.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, RequestId,
};
use rmcp::ErrorData;
use serde_json::{json, Value};

use super::{problem_text, McpServer, Scope};
use crate::app::AppState;
use crate::commands::idempotency::{self as idem, Answer, Begin};
use crate::commands::mcp_session::{self, ClientInfo, Standing};
use crate::commands::problem::{status, Problem};
use crate::commands::{record_denial, written, Caller};
use crate::domain::access::{AccessDenied, DenialReason};
use crate::gateway::Authority;

/// The transport's session header (Streamable HTTP).
pub const SESSION_HEADER: &str = "mcp-session-id";

/// On a request of an open session (put there by [`admit`], read by the call handler).
#[derive(Debug, Clone)]
pub(super) struct InSession {
    id: String,
    /// The request's path (the mount: `/mcp`, `/mcp/{gateway_id}`, ...), fingerprinted.
    path: String,
}

/// Whose sessions and calls: the workspace and the API key, scoped token or person, as
/// `Idempotency-Key` records are scoped.
fn owner(caller: &Caller, authority: &Authority) -> idem::Scope {
    let principal = match authority {
        Authority::Token(claims) => format!("token:{}", claims.jti),
        Authority::Person(_) => format!("end_user:{}", caller.api_key_id),
        Authority::ApiKey => format!("api_key:{}", caller.api_key_id),
    };
    idem::Scope {
        workspace_id: caller.workspace_id.clone(),
        principal,
        actor: caller.actor(),
    }
}

/// Admits a request: one naming a session must name an open session of its caller (it then
/// carries [`InSession`]); an `initialize` (which names none) returns what it said of the
/// client, for [`open`]. A refusal is the answer to send.
pub(super) async fn admit(
    state: &AppState,
    scope: &Scope,
    caller: &Caller,
    authority: &Authority,
    request: Request,
) -> Result<(Request, Option<ClientInfo>), Response> {
    let (mut parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, crate::config::MAX_BODY_BYTES).await else {
        return Err(Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE.as_u16(),
            "payload-too-large",
            "Request body too large",
            Some(format!("at most {} bytes", crate::config::MAX_BODY_BYTES)),
        )
        .into_response());
    };
    let opening = initialize_of(&bytes);
    let presented = parts
        .headers
        .get(SESSION_HEADER)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    if let (Some(id), None) = (presented, &opening) {
        let owner = owner(caller, authority);
        match mcp_session::standing(state, &owner, &id).await {
            Ok(Standing::Open) => {
                let path = parts.uri.path().to_string();
                parts.extensions.insert(InSession { id, path });
            }
            Ok(standing) => {
                if standing == Standing::OtherCaller {
                    let denial = AccessDenied {
                        method: "POST".into(),
                        route: scope.route.to_string(),
                        status: status::NOT_FOUND,
                        reason: DenialReason::OtherUser,
                        target_id: None,
                    };
                    let ws = Some(caller.workspace_id.as_str());
                    record_denial(state, ws, caller.actor(), denial).await;
                }
                return Err(Problem::new(
                    status::NOT_FOUND,
                    "mcp-session-not-found",
                    "No such MCP session",
                    Some("the session is unknown or has ended: initialize again".into()),
                )
                .into_response());
            }
            Err(e) => return Err(Problem::from(&e).into_response()),
        }
    }
    Ok((Request::from_parts(parts, Body::from(bytes)), opening))
}

/// What an `initialize` request says of its client; `None` for any other message.
fn initialize_of(body: &[u8]) -> Option<ClientInfo> {
    let message: Value = serde_json::from_slice(body).ok()?;
    if message.get("method")?.as_str()? != "initialize" || message.get("id").is_none() {
        return None;
    }
    let params = message.get("params")?;
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
    Some(ClientInfo {
        name: text(params.pointer("/clientInfo/name")),
        version: text(params.pointer("/clientInfo/version")),
        protocol_version: text(params.get("protocolVersion")).unwrap_or_default(),
    })
}

/// After an `initialize` answered with a result: opens the session in the log and names
/// it in the answer (`Mcp-Session-Id`). If it cannot be recorded, the initialize fails.
pub(super) async fn open(
    state: &AppState,
    caller: &Caller,
    authority: &Authority,
    client: ClientInfo,
    response: Response,
) -> Response {
    if response.status() != StatusCode::OK {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    // rmcp answered in memory (JSON answers): this only gathers it.
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let succeeded = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .is_some_and(|v| v.get("result").is_some());
    if succeeded {
        match mcp_session::start(state, &owner(caller, authority), client).await {
            Ok(id) => match HeaderValue::from_str(&id) {
                Ok(v) => {
                    parts.headers.insert(SESSION_HEADER, v);
                }
                Err(e) => return Problem::internal(&e).into_response(),
            },
            Err(e) => return Problem::from(&e).into_response(),
        }
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// A `tools/call` of a session, with who sent it.
pub(super) struct Call<'a> {
    pub caller: Caller,
    pub authority: Authority,
    pub request: CallToolRequestParams,
    pub request_id: &'a RequestId,
}

/// Runs a session's `tools/call` once per request id: the recorded result to a retry, a
/// refusal for another call with the id or while the first still runs.
pub(super) async fn call_once(
    server: &McpServer,
    in_session: &InSession,
    call: Call<'_>,
) -> Result<CallToolResponse, ErrorData> {
    let state = &server.state;
    let owner = owner(&call.caller, &call.authority);
    let request_id = serde_json::to_string(call.request_id).unwrap_or_default();
    let key = mcp_session::call_key(&in_session.id, &request_id);
    let fingerprinted = json!({
        "method": "tools/call",
        "name": call.request.name,
        "arguments": call.request.arguments,
    });
    let body = serde_json::to_vec(&fingerprinted).unwrap_or_default();
    let shape = idem::RequestShape {
        method: "POST",
        route: server.scope.route,
        path_and_query: &in_session.path,
        body: &body,
    };
    match idem::begin(state, &owner, &key, shape).await {
        Err(e) => {
            let problem = Problem::from(&e);
            Ok(CallToolResult::error(vec![ContentBlock::text(problem_text(&problem))]).into())
        }
        Ok(Begin::Replay(answer)) => serde_json::from_slice::<CallToolResult>(&answer.body)
            .map(Into::into)
            .map_err(|e| {
                tracing::error!(error = %e, "a recorded MCP tool result cannot be read");
                ErrorData::internal_error("the recorded result cannot be read", None)
            }),
        Ok(Begin::Mismatch) => {
            let problem = Problem::new(
                status::UNPROCESSABLE_ENTITY,
                "mcp-request-id-reused",
                "Request id reused for another call",
                Some("this session used the request id for another tools/call".into()),
            );
            Err(refusal(&problem))
        }
        Ok(Begin::Running { retry_after_secs }) => {
            let problem = Problem::new(
                status::CONFLICT,
                "idempotency-key-in-use",
                "A call with this request id is still running",
                Some("retry after retry_after seconds for its result".into()),
            )
            .with("retry_after", json!(retry_after_secs));
            Err(refusal(&problem))
        }
        Ok(Begin::Proceed(claim)) => run_claimed(server, claim, call).await.map(Into::into),
    }
}

/// A JSON-RPC error (invalid request) whose data is the problem document.
fn refusal(problem: &Problem) -> ErrorData {
    ErrorData::invalid_request(
        problem.title.clone(),
        serde_json::from_str(&problem_text(problem)).ok(),
    )
}

/// Runs the claimed call in a task of its own, bounded by the claim's lease, and records its
/// result: when it wrote to the log or succeeded; else the id is released for a retry.
async fn run_claimed(
    server: &McpServer,
    claim: idem::Claim,
    call: Call<'_>,
) -> Result<CallToolResult, ErrorData> {
    let server = server.clone();
    let time_left = claim.time_left(server.state.clock.now());
    let Call {
        caller,
        authority,
        request,
        ..
    } = call;
    let task = tokio::spawn(async move {
        let run = written::track(server.run_call(&caller, &authority, request));
        let (result, answer, recorded) = match tokio::time::timeout(time_left, run).await {
            Ok((result, position)) => {
                let succeeded = result.is_error != Some(true);
                // The HTTP answer is 200 either way; a tool error is in the result.
                let answer = Answer {
                    status: 200,
                    content_type: Some("application/json".into()),
                    body: serde_json::to_vec(&result).unwrap_or_default(),
                    position,
                };
                (result, answer, position > 0 || succeeded)
            }
            Err(_) => {
                let result = overran();
                let answer = Answer {
                    status: status::GATEWAY_TIMEOUT,
                    content_type: Some("application/json".into()),
                    body: serde_json::to_vec(&result).unwrap_or_default(),
                    position: 0,
                };
                (result, answer, true)
            }
        };
        if let Err(e) = idem::finish(&server.state, &claim, &answer, recorded).await {
            // The claim then ends with its lease; the client still gets its result.
            tracing::warn!(error = %e, "cannot record an MCP tool call's outcome");
        }
        result
    });
    task.await.map_err(|e| {
        tracing::error!(error = %e, "an MCP tool call's task failed");
        ErrorData::internal_error("the call failed", None)
    })
}

/// The result of a call cut off at its lease: whether it acted is unknown, and a retry with
/// the id must not run it again.
fn overran() -> CallToolResult {
    let problem = Problem::new(
        status::GATEWAY_TIMEOUT,
        "idempotent-outcome-unknown",
        "The call did not finish within its idempotency lease",
        Some("its outcome is unknown; check the audit log before calling again".into()),
    );
    CallToolResult::error(vec![ContentBlock::text(problem_text(&problem))])
}

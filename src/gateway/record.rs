//! The call on the record: `tool.requested` before the upstream is called (fail closed: no
//! event, no call; the answer's position is its), `tool.completed` after, with the outcome,
//! latency and attempts, appended once the answer is handed over (`completion`); and the
//! per-phase latency metric.

use std::time::{Duration, Instant};

use serde_json::Value;
use uuid::Uuid;

use super::target::Target;
use super::tools::{self, UpstreamRequest};
use super::upstream::{UpstreamFailure, UpstreamResponse};
use super::{Authority, Executed};
use crate::app::AppState;
use crate::commands::agents::AgentError;
use crate::commands::connections::UsableConnection;
use crate::commands::Caller;
use crate::domain::tool_call::{ToolCall, ToolCallCommand, ToolCompleted, ToolOutcome};
use crate::domain::ToolRequested;

/// Largest response body kept (redacted) in a `tool.completed` event.
const MAX_STORED_RESPONSE_BYTES: usize = 64 * 1024;

/// One call's identity: its id (chosen before anything is recorded, so a token use and an
/// approval name it) and the fingerprint of its arguments.
pub(super) struct Call {
    pub id: String,
    pub fingerprint: String,
}

impl Call {
    pub fn new(arguments: &Value) -> Call {
        Call {
            id: Uuid::now_v7().to_string(),
            fingerprint: tools::argument_fingerprint(arguments),
        }
    }
}

/// Times the pipeline's phases into the `tool_call_phase` metric.
pub(super) struct Phases<'a> {
    state: &'a AppState,
    since: Instant,
}

impl<'a> Phases<'a> {
    pub fn start(state: &'a AppState) -> Phases<'a> {
        Phases {
            state,
            since: Instant::now(),
        }
    }

    /// Ends the phase `name`; the next one starts now.
    pub fn next(self, name: &'static str) -> Phases<'a> {
        self.state
            .metrics
            .tool_call_phase(name, self.since.elapsed().as_secs_f64());
        Phases::start(self.state)
    }

    pub fn elapsed(&self) -> Duration {
        self.since.elapsed()
    }

    /// When the running phase started (for a phase that ends in another task).
    pub fn since(&self) -> Instant {
        self.since
    }
}

/// The `tool.requested` event of a call about to be made.
pub(super) fn requested(
    target: &Target,
    authority: &Authority,
    call: &Call,
    approval_id: Option<String>,
    usable: &UsableConnection,
    request: &UpstreamRequest,
) -> ToolRequested {
    ToolRequested {
        tool: target.def.name.clone(),
        risk: target.def.risk,
        connection_id: target.connection_id.clone(),
        auth_config_id: usable.connection.auth_config_id.clone(),
        user_id: usable.connection.user_id.clone(),
        token_id: authority.token().map(|c| c.jti.clone()),
        mcp_client: match authority {
            Authority::Person(person) => person.client.clone(),
            Authority::ApiKey | Authority::Token(_) => None,
        },
        approval_id,
        argument_fingerprint: call.fingerprint.clone(),
        method: request.method.as_str().to_string(),
        url: request
            .url
            .split('?')
            .next()
            .unwrap_or_default()
            .to_string(),
    }
}

/// Appends `tool.requested`; the call is made only once this returns. The answer's
/// position is this event's.
pub(super) async fn record_requested(
    state: &AppState,
    caller: &Caller,
    call: &Call,
    requested: ToolRequested,
) -> Result<(), AgentError> {
    let committed = state
        .ledger
        .create::<ToolCall>(
            &caller.workspace_id,
            &call.id,
            &caller.actor(),
            &ToolCallCommand::Request(requested),
        )
        .await?;
    crate::commands::written::reached(committed.position);
    Ok(())
}

/// The `tool.completed` event of what the upstream did, and the agent's answer.
pub(super) fn completed(
    target: &Target,
    call: &Call,
    result: Result<UpstreamResponse, UpstreamFailure>,
    attempts: u32,
    latency: Duration,
) -> (ToolCompleted, Result<Executed, AgentError>) {
    let latency_ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX);
    let completed = |outcome, status, error| ToolCompleted {
        tool: target.def.name.clone(),
        connection_id: target.connection_id.clone(),
        outcome,
        status,
        latency_ms,
        attempts,
        response: None,
        error,
        undo: None,
        recovered: false,
    };
    match result {
        Ok(resp) => {
            let outcome = if (200..300).contains(&resp.status) {
                ToolOutcome::Success
            } else {
                ToolOutcome::UpstreamError
            };
            let mut done = completed(outcome, Some(resp.status), None);
            if target.store_responses {
                done.response = Some(stored_response(&resp.body));
            }
            let answer = Executed {
                tool_call_id: call.id.clone(),
                status: resp.status,
                content_type: resp.content_type,
                body: resp.body,
                latency_ms,
            };
            (done, Ok(answer))
        }
        Err(UpstreamFailure::Timeout) => (
            completed(ToolOutcome::Timeout, None, Some("no answer in time".into())),
            Err(AgentError::UpstreamTimeout {
                tool_call_id: call.id.clone(),
            }),
        ),
        Err(UpstreamFailure::Unreachable(detail)) => (
            completed(ToolOutcome::Unreachable, None, Some(detail.clone())),
            Err(AgentError::UpstreamUnreachable {
                tool_call_id: call.id.clone(),
                detail,
            }),
        ),
    }
}

/// Appends `tool.completed` after the answer: in its own task, which outlives the request
/// (`completion`); the caller answers at once (an upstream failure too).
pub(super) fn record_completed(
    state: &AppState,
    caller: &Caller,
    call: &Call,
    event: ToolCompleted,
    phases: Phases<'_>,
) {
    super::completion::spawn(
        state,
        &caller.workspace_id,
        &call.id,
        caller.actor(),
        event,
        phases.since(),
    );
}

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

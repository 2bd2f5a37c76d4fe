//! Tool call: one gateway execution. `tool.requested` is appended before the upstream is
//! called (no event, no call: the gateway fails closed) and `tool.completed` after it.
//! Arguments are recorded as a fingerprint only; response bodies only when the workspace
//! opted in, and then redacted.

use serde::{Deserialize, Serialize};

use super::{Aggregate, DomainError, Event};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolRequested {
    pub tool: String,
    pub risk: crate::gateway::tools::Risk,
    pub connection_id: String,
    pub auth_config_id: String,
    pub user_id: String,
    /// The scoped token the agent presented (none when it used its API key).
    pub token_id: Option<String>,
    /// The approval this call consumes (destructive tools).
    pub approval_id: Option<String>,
    /// The MCP client a signed-in person called through (their token's `azp` or
    /// `client_id`); absent for agents' calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp_client: Option<String>,
    /// `sha256:<hex>` of the canonical JSON of the arguments.
    pub argument_fingerprint: String,
    /// Upstream method and URL without its query string (which may carry a key).
    pub method: String,
    pub url: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolOutcome {
    /// The upstream answered 2xx.
    Success,
    /// The upstream answered with an error status.
    UpstreamError,
    /// No answer in time.
    Timeout,
    /// The upstream could not be reached.
    Unreachable,
}

impl ToolOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            ToolOutcome::Success => "success",
            ToolOutcome::UpstreamError => "upstream_error",
            ToolOutcome::Timeout => "timeout",
            ToolOutcome::Unreachable => "unreachable",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCompleted {
    pub tool: String,
    pub connection_id: String,
    pub outcome: ToolOutcome,
    pub status: Option<u16>,
    pub latency_ms: u64,
    pub attempts: u32,
    /// The redacted response body, only when the workspace opted in.
    pub response: Option<serde_json::Value>,
    pub error: Option<String>,
}

#[derive(Debug, Default, Clone)]
pub struct ToolCall {
    pub requested: Option<ToolRequested>,
    pub completed: Option<ToolCompleted>,
}

pub enum ToolCallCommand {
    Request(ToolRequested),
    Complete(ToolCompleted),
}

impl Aggregate for ToolCall {
    const TYPE: &'static str = "tool_call";
    type Command = ToolCallCommand;

    fn apply(&mut self, event: &Event) {
        match event {
            Event::ToolRequested(e) => self.requested = Some(e.clone()),
            Event::ToolCompleted(e) => self.completed = Some(e.clone()),
            _ => {}
        }
    }

    fn decide(&self, command: &ToolCallCommand) -> Result<Event, DomainError> {
        match command {
            ToolCallCommand::Request(r) => {
                if self.requested.is_some() {
                    return Err(DomainError::AlreadyExists("tool call"));
                }
                Ok(Event::ToolRequested(r.clone()))
            }
            ToolCallCommand::Complete(c) => {
                if self.requested.is_none() {
                    return Err(DomainError::NotFound("tool call"));
                }
                if self.completed.is_some() {
                    return Err(DomainError::Rejected(
                        "the tool call is already completed".into(),
                    ));
                }
                Ok(Event::ToolCompleted(c.clone()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_completes_once_and_only_after_its_request() {
        let done = ToolCompleted {
            tool: "slack.post_message".into(),
            connection_id: "c".into(),
            outcome: ToolOutcome::Success,
            status: Some(200),
            latency_ms: 3,
            attempts: 1,
            response: None,
            error: None,
        };
        let mut call = ToolCall::default();
        assert!(call
            .decide(&ToolCallCommand::Complete(done.clone()))
            .is_err());
        let req = ToolRequested {
            tool: "slack.post_message".into(),
            risk: crate::gateway::tools::Risk::Write,
            connection_id: "c".into(),
            auth_config_id: "a".into(),
            user_id: "u".into(),
            token_id: None,
            approval_id: None,
            mcp_client: None,
            argument_fingerprint: "sha256:00".into(),
            method: "POST".into(),
            url: "https://slack.com/api/chat.postMessage".into(),
        };
        let ev = call.decide(&ToolCallCommand::Request(req.clone())).unwrap();
        call.apply(&ev);
        assert!(call.decide(&ToolCallCommand::Request(req)).is_err());
        let ev = call
            .decide(&ToolCallCommand::Complete(done.clone()))
            .unwrap();
        call.apply(&ev);
        assert!(call.decide(&ToolCallCommand::Complete(done)).is_err());
    }
}

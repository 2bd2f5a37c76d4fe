//! An MCP client's session (Streamable HTTP `Mcp-Session-Id`, issued at `initialize`): the
//! namespace in which a `tools/call`'s JSON-RPC request id is an idempotency key. One
//! aggregate per session, opened once by its caller; every instance decides a session from
//! the log alone. The aggregate id is a hash of the session id, so nothing in the log is a
//! session id a reader could present.

use serde::{Deserialize, Serialize};

use super::{check_name, Aggregate, DomainError, Event};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct McpSessionStarted {
    /// Whose session: `api_key:<id>`, `token:<jti>` or `end_user:<id>` (as idempotency keys
    /// are scoped); another caller presenting the id is refused.
    pub principal: String,
    /// The client as its `initialize` named itself (`clientInfo`), for the audit trail.
    pub client_name: Option<String>,
    pub client_version: Option<String>,
    /// The protocol version the client asked for.
    pub protocol_version: String,
    /// The session's end; after it the id answers 404 and the client initializes again.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: time::OffsetDateTime,
}

#[derive(Debug, Default, Clone)]
pub struct McpSession {
    pub started: Option<McpSessionStarted>,
}

impl McpSession {
    /// Whether this is an open session of `principal` at `now`.
    pub fn open_for(&self, principal: &str, now: time::OffsetDateTime) -> bool {
        self.started
            .as_ref()
            .is_some_and(|s| s.principal == principal && now < s.expires_at)
    }
}

pub enum McpSessionCommand {
    Start(McpSessionStarted),
}

impl Aggregate for McpSession {
    const TYPE: &'static str = "mcp_session";
    type Command = McpSessionCommand;

    fn apply(&mut self, event: &Event) {
        if let Event::McpSessionStarted(e) = event {
            self.started = Some(e.clone());
        }
    }

    fn decide(&self, command: &McpSessionCommand) -> Result<Event, DomainError> {
        let McpSessionCommand::Start(s) = command;
        if self.started.is_some() {
            return Err(DomainError::AlreadyExists("MCP session"));
        }
        check_name("principal", &s.principal, 300)?;
        check_name("protocol_version", &s.protocol_version, 64)?;
        Ok(Event::McpSessionStarted(s.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn a_session_is_its_callers_until_its_end_and_starts_once() {
        let start = McpSessionCommand::Start(McpSessionStarted {
            principal: "api_key:k1".into(),
            client_name: Some("agent".into()),
            client_version: None,
            protocol_version: "2025-11-25".into(),
            expires_at: datetime!(2026-01-02 12:00 UTC),
        });
        let mut s = McpSession::default();
        let before = datetime!(2026-01-02 11:59 UTC);
        assert!(!s.open_for("api_key:k1", before), "never started");
        let Ok(ev) = s.decide(&start) else {
            unreachable!("a new session starts")
        };
        s.apply(&ev);
        assert!(s.open_for("api_key:k1", before));
        assert!(!s.open_for("api_key:k2", before), "another caller's");
        assert!(!s.open_for("api_key:k1", datetime!(2026-01-02 12:00 UTC)));
        assert!(s.decide(&start).is_err(), "started once");
    }
}

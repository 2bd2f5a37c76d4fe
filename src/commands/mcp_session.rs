//! MCP sessions, HTTP-free: an `initialize` opens one (`mcp.session_started`, its id a
//! random secret whose hash names the aggregate), every later message of the session names
//! it, and any instance decides from the log whether it is open and whose it is. Within a
//! session, a `tools/call`'s JSON-RPC request id is an idempotency key
//! ([`call_key`]): the same call retried with the same id runs once.

use sha2::{Digest as _, Sha256};

use super::idempotency::{IdempotencyKey, Scope};
use super::CommandError;
use crate::app::AppState;
use crate::domain::mcp_session::{McpSession, McpSessionCommand, McpSessionStarted};

/// Longest session id accepted in a request (ours are 43 characters).
const MAX_ID_LEN: usize = 128;
/// How long a session lasts: as long as the idempotency records of its calls.
fn lifetime(state: &AppState) -> time::Duration {
    time::Duration::try_from(state.idempotency.retention).unwrap_or(time::Duration::DAY)
}

/// What the client's `initialize` said about itself.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub name: Option<String>,
    pub version: Option<String>,
    pub protocol_version: String,
}

/// Opens a session for `scope`'s caller: returns its id (the `Mcp-Session-Id`).
pub async fn start(
    state: &AppState,
    scope: &Scope,
    client: ClientInfo,
) -> Result<String, CommandError> {
    let id = crate::oauth::random_token();
    let clip = |s: Option<String>| s.map(|s| s.chars().take(200).collect::<String>());
    let started = McpSessionStarted {
        principal: scope.principal.clone(),
        client_name: clip(client.name),
        client_version: clip(client.version),
        protocol_version: client.protocol_version.chars().take(64).collect(),
        expires_at: state.clock.now() + lifetime(state),
    };
    state
        .ledger
        .execute::<McpSession>(
            &scope.workspace_id,
            &aggregate_id(&id),
            &scope.actor,
            &McpSessionCommand::Start(started),
        )
        .await?;
    Ok(id)
}

/// What a presented session id is to this caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// The caller's open session.
    Open,
    /// Unknown, ended, or of another workspace: the client must initialize again.
    Unknown,
    /// Another caller's session in this workspace (answered like an unknown one).
    OtherCaller,
}

/// Whether `session_id` is an open session of `scope`'s caller, from the log.
pub async fn standing(
    state: &AppState,
    scope: &Scope,
    session_id: &str,
) -> Result<Standing, CommandError> {
    let well_formed = !session_id.is_empty()
        && session_id.len() <= MAX_ID_LEN
        && session_id.bytes().all(|b| (0x21..=0x7e).contains(&b));
    if !well_formed {
        return Ok(Standing::Unknown);
    }
    let session: McpSession = state
        .ledger
        .load(&scope.workspace_id, &aggregate_id(session_id))
        .await?;
    let now = state.clock.now();
    Ok(match &session.started {
        None => Standing::Unknown,
        Some(_) if session.open_for(&scope.principal, now) => Standing::Open,
        Some(s) if s.principal != scope.principal => Standing::OtherCaller,
        Some(_) => Standing::Unknown,
    })
}

/// The idempotency key of a `tools/call` with JSON-RPC id `request_id` (as JSON: `7` and
/// `"7"` are two ids) in session `session_id`.
pub fn call_key(session_id: &str, request_id: &str) -> IdempotencyKey {
    let mut h = Sha256::new();
    for part in [session_id, request_id] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    IdempotencyKey::derived(format!("mcp:{}", hex::encode(h.finalize())))
}

/// The session's aggregate id: a hash of its id, so the log holds no id to present.
fn aggregate_id(session_id: &str) -> String {
    let digest = Sha256::digest(session_id.as_bytes());
    hex::encode(&digest[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_calls_key_is_its_sessions_and_its_ids() {
        let key = |s, r| call_key(s, r).as_str().to_string();
        assert_eq!(key("s1", "7"), key("s1", "7"));
        assert_ne!(key("s1", "7"), key("s2", "7"), "another session");
        assert_ne!(
            key("s1", "7"),
            key("s1", "\"7\""),
            "a string id is another id"
        );
        assert_ne!(key("s1", "78"), key("s17", "8"), "length-prefixed");
        assert!(IdempotencyKey::parse(key("s1", "7").as_bytes()).is_ok());
    }
}

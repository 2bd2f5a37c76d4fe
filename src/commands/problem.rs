//! How a refusal reads to a caller: an RFC 9457 problem document (`type`, `title`, `status`,
//! `detail`, extension members) as plain data, so every face (HTTP, MCP) answers the same
//! refusal the same way. The HTTP edge turns it into a response (`api::problem`); internals
//! are logged here and never returned.

use serde::Serialize;
use serde_json::json;

use super::agents::AgentError;
use super::CommandError;
use crate::crypto::CryptoError;
use crate::domain::approval::ApprovalRefusal;
use crate::domain::token::TokenRefusal;
use crate::domain::DomainError;
use crate::ledger::{LedgerError, LogError};
use crate::projector::plan::rfc3339;
use crate::projector::ProjectionError;

/// Status codes named for reading (the document carries the number).
pub mod status {
    pub const BAD_REQUEST: u16 = 400;
    pub const UNAUTHORIZED: u16 = 401;
    pub const FORBIDDEN: u16 = 403;
    pub const NOT_FOUND: u16 = 404;
    pub const CONFLICT: u16 = 409;
    pub const UNPROCESSABLE_ENTITY: u16 = 422;
    pub const INTERNAL_SERVER_ERROR: u16 = 500;
    pub const BAD_GATEWAY: u16 = 502;
    pub const SERVICE_UNAVAILABLE: u16 = 503;
    pub const GATEWAY_TIMEOUT: u16 = 504;
}

/// The kind of a 503 that a retry (after `Retry-After`) may cure: the projections lag.
pub const PROJECTION_LAGGING: &str = "projection-lagging";
/// The kind of a 503 for a write refused because the event log's disk is full (not the
/// general `unavailable`: an operator must free space; writes resume by themselves after).
pub const DISK_FULL: &str = "disk-full";

#[derive(Debug, Serialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub type_uri: String,
    pub title: String,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// RFC 9457 extension members (e.g. `dependants`).
    #[serde(flatten)]
    pub extensions: serde_json::Map<String, serde_json::Value>,
}

impl Problem {
    /// `kind` becomes `https://authledger.dev/problems/<kind>`.
    pub fn new(status: impl Into<u16>, kind: &str, title: &str, detail: Option<String>) -> Self {
        Problem {
            type_uri: format!("https://authledger.dev/problems/{kind}"),
            title: title.to_string(),
            status: status.into(),
            detail,
            extensions: serde_json::Map::new(),
        }
    }

    /// Whether this is the problem of `kind`.
    pub fn is(&self, kind: &str) -> bool {
        self.type_uri
            .strip_prefix("https://authledger.dev/problems/")
            .is_some_and(|k| k == kind)
    }

    pub fn with(mut self, key: &str, value: serde_json::Value) -> Self {
        self.extensions.insert(key.to_string(), value);
        self
    }

    /// `404 not-found` for an id this caller cannot see (unknown, or another workspace's).
    pub fn not_found(what: &str) -> Self {
        Problem::new(
            status::NOT_FOUND,
            "not-found",
            &format!("No such {what}"),
            None,
        )
    }

    /// `500 internal`: the cause is logged, never returned.
    pub fn internal(e: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %e, "internal error");
        Problem::new(
            status::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
            None,
        )
    }
}

impl From<&CommandError> for Problem {
    fn from(e: &CommandError) -> Problem {
        use status as S;
        match e {
            CommandError::Domain(d) => match d {
                DomainError::NotFound(what) => Problem::not_found(what),
                // Token and approval refusals are mapped from `AgentError`; reaching here
                // means a state conflict all the same.
                DomainError::AlreadyExists(_)
                | DomainError::Rejected(_)
                | DomainError::Token(_)
                | DomainError::Approval(_) => Problem::new(
                    S::CONFLICT,
                    "conflict",
                    "Conflicts with the current state",
                    Some(d.to_string()),
                ),
                DomainError::Invalid { .. } => Problem::new(
                    S::UNPROCESSABLE_ENTITY,
                    "validation-failed",
                    "The request is not valid",
                    Some(d.to_string()),
                ),
                DomainError::Undecodable(_) => Problem::internal(d),
                DomainError::Undo(r) => {
                    use crate::domain::tool_call::UndoRefusal as U;
                    let (kind, title) = match r {
                        U::NotUndoable => ("not-undoable", "This call cannot be undone"),
                        U::NotCompleted => (
                            "call-not-completed",
                            "This call's outcome is not recorded yet",
                        ),
                        U::WindowClosed => (
                            "undo-window-closed",
                            "The window to undo this call has closed",
                        ),
                        U::AlreadyUndone => ("already-undone", "This call is already undone"),
                        U::InProgress | U::StaleAttempt => {
                            ("undo-in-progress", "An undo of this call is in progress")
                        }
                    };
                    Problem::new(S::CONFLICT, kind, title, Some(r.to_string()))
                }
            },
            CommandError::Ledger(LedgerError::Log(LogError::Unavailable(e))) => {
                tracing::warn!(error = %e, "event log unavailable");
                Problem::new(
                    S::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "The ledger is unavailable; nothing was written",
                    None,
                )
            }
            CommandError::Ledger(LedgerError::Log(LogError::DiskFull(e))) => {
                tracing::error!(error = %e, "event log disk full");
                Problem::new(
                    S::SERVICE_UNAVAILABLE,
                    DISK_FULL,
                    "The ledger's disk is full; nothing was written",
                    Some(
                        "The event log's disk is full. Writes resume by themselves once \
                         space is freed on it; until then the service is not ready."
                            .into(),
                    ),
                )
            }
            // A write that succeeded but cannot be read back yet: 503 (retry the read with
            // `?min_position=`), never a 404 that says it did not happen.
            CommandError::NotYetVisible { position, reason } => {
                tracing::warn!(position, reason, "write recorded but not yet visible");
                Problem::new(
                    S::SERVICE_UNAVAILABLE,
                    PROJECTION_LAGGING,
                    "Recorded, but not yet visible",
                    Some(format!(
                        "the change is recorded at log position {position} but cannot be shown \
                         yet: {reason}; read it again with ?min_position={position}"
                    )),
                )
                .with("position", json!(position))
            }
            CommandError::Ledger(LedgerError::Contended(..)) => Problem::new(
                S::CONFLICT,
                "contended",
                "Too many concurrent changes; retry",
                None,
            ),
            // The read side's database: reads and the checks before a write fail closed.
            // The answer claims nothing about a write (one that already reached the log
            // reports `NotYetVisible` instead).
            CommandError::Projection(ProjectionError::Database(e)) => {
                tracing::warn!(error = %e, "projection database unavailable");
                Problem::new(
                    S::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "The read side is unavailable; retry",
                    None,
                )
            }
            CommandError::Crypto(CryptoError::Store(e)) => {
                tracing::warn!(error = %e, "data-key store unavailable");
                Problem::new(
                    S::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "Secret storage is unavailable; nothing was written",
                    None,
                )
            }
            e => Problem::internal(e),
        }
    }
}

impl From<&AgentError> for Problem {
    fn from(e: &AgentError) -> Problem {
        use status as S;
        let p = |status: u16, kind: &str, title: &str| {
            Problem::new(status, kind, title, Some(e.to_string()))
        };
        match e {
            AgentError::NotFound { what, .. } => Problem::not_found(what),
            AgentError::ConnectionRequired {
                auth_config_id,
                user_id,
                connect_url,
            } => p(
                S::CONFLICT,
                "connection-required",
                "The user must connect first",
            )
            .with("auth_config_id", json!(auth_config_id))
            .with("user_id", json!(user_id))
            .with("connect_url", json!(connect_url)),
            AgentError::ConnectNotAllowed { user_id } => p(
                S::FORBIDDEN,
                "connect-not-allowed",
                "This key may not start a connect flow for this user",
            )
            .with("user_id", json!(user_id)),
            AgentError::ConnectionInactive(_) => p(
                S::CONFLICT,
                "connection-inactive",
                "The connection is not active",
            ),
            AgentError::AuthConfigDisabled => p(
                S::CONFLICT,
                "auth-config-disabled",
                "The auth config is disabled",
            ),
            AgentError::ScopeEscalation(missing) => p(
                S::FORBIDDEN,
                "scope-escalation",
                "Scopes beyond what was granted",
            )
            .with("missing_scopes", json!(missing)),
            AgentError::OtherUser => p(S::FORBIDDEN, "other-user", "Another user's connection"),
            AgentError::TokenReleaseDisabled => p(
                S::FORBIDDEN,
                "token-release-disabled",
                "This auth config does not release access tokens",
            ),
            AgentError::OutsideGateway => p(
                S::FORBIDDEN,
                "outside-gateway",
                "Not among the tools this key's gateways allow",
            ),
            AgentError::TokenMismatch(_) | AgentError::Token(TokenRefusal::OtherTool) => p(
                S::FORBIDDEN,
                "token-mismatch",
                "The token was not issued for this",
            ),
            AgentError::Token(TokenRefusal::Expired) => {
                p(S::UNAUTHORIZED, "token-expired", "The token has expired")
            }
            AgentError::Token(TokenRefusal::Revoked) => p(
                S::UNAUTHORIZED,
                "token-revoked",
                "The token has been revoked",
            ),
            AgentError::Token(TokenRefusal::UsedUp) => {
                p(S::FORBIDDEN, "token-used-up", "The token has no uses left")
            }
            AgentError::Approval(r) => {
                let (status, kind) = match r {
                    ApprovalRefusal::Pending => (S::FORBIDDEN, "approval-pending"),
                    ApprovalRefusal::Denied => (S::FORBIDDEN, "approval-denied"),
                    ApprovalRefusal::Consumed => (S::CONFLICT, "approval-consumed"),
                    ApprovalRefusal::Expired => (S::FORBIDDEN, "approval-expired"),
                    ApprovalRefusal::AlreadyDecided => (S::CONFLICT, "approval-decided"),
                    ApprovalRefusal::OtherCall => (S::FORBIDDEN, "approval-mismatch"),
                };
                p(status, kind, "The approval does not allow this call")
            }
            AgentError::ApprovalRequired {
                approval_id,
                expires_at,
            } => p(
                S::FORBIDDEN,
                "approval-required",
                "The user (or an admin) must approve this call",
            )
            .with("approval_id", json!(approval_id))
            .with("approval_expires_at", json!(rfc3339(*expires_at))),
            AgentError::InvalidArguments(problems) => Problem::new(
                S::UNPROCESSABLE_ENTITY,
                "invalid-arguments",
                "The arguments do not match the tool's schema",
                None,
            )
            .with("errors", argument_errors(problems)),
            AgentError::CredentialUnavailable(_) => p(
                S::BAD_GATEWAY,
                "credential-unavailable",
                "The connection's credential could not be refreshed",
            ),
            AgentError::UpstreamTimeout { tool_call_id } => p(
                S::GATEWAY_TIMEOUT,
                "upstream-timeout",
                "The upstream did not answer in time",
            )
            .with("tool_call_id", json!(tool_call_id)),
            AgentError::UpstreamUnreachable { tool_call_id, .. } => p(
                S::BAD_GATEWAY,
                "upstream-unreachable",
                "The upstream cannot be reached",
            )
            .with("tool_call_id", json!(tool_call_id)),
            AgentError::Command(c) => Problem::from(c),
        }
    }
}

/// The tool's argument problems (`<JSON pointer into the arguments>: <detail>`, or
/// `(root): …`) as problem `errors`, each pointer into the request's `arguments`.
fn argument_errors(problems: &[String]) -> serde_json::Value {
    problems
        .iter()
        .map(|p| match p.split_once(": ") {
            Some(("(root)", detail)) => json!({ "pointer": "/arguments", "detail": detail }),
            Some((at, detail)) if at.starts_with('/') => {
                json!({ "pointer": format!("/arguments{at}"), "detail": detail })
            }
            _ => json!({ "pointer": "/arguments", "detail": p }),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argument_problems_point_into_the_arguments() {
        let p = Problem::from(&AgentError::InvalidArguments(vec![
            "/id: 7 is not of type \"string\"".into(),
            "(root): \"id\" is a required property".into(),
            "(more problems not shown)".into(),
        ]));
        assert_eq!(
            p.extensions["errors"],
            json!([
                { "pointer": "/arguments/id", "detail": "7 is not of type \"string\"" },
                { "pointer": "/arguments", "detail": "\"id\" is a required property" },
                { "pointer": "/arguments", "detail": "(more problems not shown)" },
            ])
        );
    }
}

//! Tool call: one gateway execution. `tool.requested` is appended before the upstream is
//! called (no event, no call: the gateway fails closed) and `tool.completed` after it: the
//! gateway answers the agent once `tool.requested` is durable and appends `tool.completed`
//! right after. Should the service die in between, recovery completes the call with outcome
//! `unknown` and `recovered: true` (appended at the call's version: of several recovering
//! instances one wins), so every requested call ends in the log.
//! Arguments are recorded as a fingerprint only; response bodies only when the workspace
//! opted in, and then redacted.
//!
//! Undo: a call whose tool declares a compensating request completes with it
//! ([`PlannedUndo`], built from the call's arguments and the upstream's answer, with the end
//! of its window). Undoing is `tool.undo_requested` (before the compensating call: no event,
//! no call) then `tool.undone` with the outcome, on the call's own aggregate: the version
//! decides, so of two instances only one undoes. An attempt's lease lets a later request
//! take over from an instance that died mid-undo; a failed undo may be tried again; a
//! successful one ends it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

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
    /// The service stopped before it recorded the outcome (a recovered completion): the
    /// upstream may or may not have acted.
    Unknown,
}

impl ToolOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            ToolOutcome::Success => "success",
            ToolOutcome::UpstreamError => "upstream_error",
            ToolOutcome::Timeout => "timeout",
            ToolOutcome::Unreachable => "unreachable",
            ToolOutcome::Unknown => "unknown",
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
    /// The compensating request, when the tool declares one and the call succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undo: Option<PlannedUndo>,
    /// Appended by recovery, not by the instance that made the call (which died before it
    /// recorded the outcome): the outcome is then `unknown`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub recovered: bool,
}

impl ToolCompleted {
    /// The completion recovery appends for a call whose outcome was never recorded.
    pub fn recovered(requested: &ToolRequested) -> ToolCompleted {
        ToolCompleted {
            tool: requested.tool.clone(),
            connection_id: requested.connection_id.clone(),
            outcome: ToolOutcome::Unknown,
            status: None,
            latency_ms: 0,
            attempts: 0,
            response: None,
            error: Some(
                "the service stopped before it recorded the outcome: the upstream may or may not have acted"
                    .into(),
            ),
            undo: None,
            recovered: true,
        }
    }
}

/// The compensating request of a call, fixed when the call completed (its credential is
/// injected only when it is sent), and until when it may be sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlannedUndo {
    pub method: crate::gateway::tools::HttpMethod,
    /// The full URL, query included (built from the call's arguments and answer, never a
    /// credential: that is injected when the request is sent).
    pub url: String,
    /// The tool's static headers (lower-case names), `accept` and `content-type` included.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The JSON body (POST, PUT, PATCH).
    #[serde(default)]
    pub body: Option<serde_json::Value>,
    #[serde(with = "time::serde::rfc3339")]
    pub until: OffsetDateTime,
}

/// An undo about to be sent: the compensating request's method and URL without its query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolUndoRequested {
    pub tool: String,
    pub connection_id: String,
    pub user_id: String,
    /// 1 for the first attempt; a retry after a failure or a lapsed lease counts up.
    pub attempt: u32,
    pub method: String,
    pub url: String,
    /// Until then no other attempt may start (an instance that dies mid-undo does not
    /// block it for good).
    #[serde(with = "time::serde::rfc3339")]
    pub lease_expires_at: OffsetDateTime,
}

/// How an undo attempt ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolUndone {
    pub tool: String,
    pub connection_id: String,
    pub attempt: u32,
    /// `success` (2xx): the call is undone; anything else may be tried again.
    pub outcome: ToolOutcome,
    pub status: Option<u16>,
    pub latency_ms: u64,
    pub error: Option<String>,
}

/// Why a call cannot be undone now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UndoRefusal {
    #[error("this call cannot be undone: its tool declares no undo, or the call did not succeed")]
    NotUndoable,
    #[error("this call's outcome is not recorded yet: try again in a moment")]
    NotCompleted,
    #[error("the window to undo this call has closed")]
    WindowClosed,
    #[error("this call is already undone")]
    AlreadyUndone,
    #[error("an undo of this call is in progress")]
    InProgress,
    #[error("this undo attempt is no longer the current one")]
    StaleAttempt,
}

/// Where a call's undo stands.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct UndoState {
    /// The latest attempt (0: never tried) and its lease.
    pub attempt: u32,
    pub lease_expires_at: Option<OffsetDateTime>,
    /// Whether the latest attempt has its outcome.
    pub ended: bool,
    pub done: bool,
    /// The upstream status of the latest ended attempt.
    pub last_status: Option<u16>,
}

#[derive(Debug, Default, Clone)]
pub struct ToolCall {
    pub requested: Option<ToolRequested>,
    pub completed: Option<ToolCompleted>,
    pub undo: UndoState,
}

impl ToolCall {
    /// Whether an undo may start at `now` (the same rules as [`ToolCallCommand::RequestUndo`]).
    pub fn undo_refusal(&self, now: OffsetDateTime) -> Option<UndoRefusal> {
        if self.requested.is_some() && self.completed.is_none() {
            return Some(UndoRefusal::NotCompleted);
        }
        let plan = self.completed.as_ref().and_then(|c| c.undo.as_ref());
        let Some(plan) = plan else {
            return Some(UndoRefusal::NotUndoable);
        };
        if self.undo.done {
            return Some(UndoRefusal::AlreadyUndone);
        }
        let running = self.undo.attempt > 0
            && !self.undo.ended
            && self.undo.lease_expires_at.is_some_and(|l| now < l);
        if running {
            return Some(UndoRefusal::InProgress);
        }
        if now >= plan.until {
            return Some(UndoRefusal::WindowClosed);
        }
        None
    }
}

pub enum ToolCallCommand {
    Request(ToolRequested),
    Complete(ToolCompleted),
    /// Start an undo attempt at `now`, its lease ending at `lease_expires_at`.
    RequestUndo {
        now: OffsetDateTime,
        lease_expires_at: OffsetDateTime,
    },
    /// The outcome of the attempt `ToolUndone::attempt`.
    CompleteUndo(ToolUndone),
}

impl Aggregate for ToolCall {
    const TYPE: &'static str = "tool_call";
    type Command = ToolCallCommand;

    fn apply(&mut self, event: &Event) {
        match event {
            Event::ToolRequested(e) => self.requested = Some(e.clone()),
            Event::ToolCompleted(e) => self.completed = Some(e.clone()),
            Event::ToolUndoRequested(e) => {
                self.undo.attempt = e.attempt;
                self.undo.lease_expires_at = Some(e.lease_expires_at);
                self.undo.ended = false;
            }
            Event::ToolUndone(e) => {
                if e.attempt == self.undo.attempt {
                    self.undo.ended = true;
                }
                self.undo.last_status = e.status;
                if e.outcome == ToolOutcome::Success {
                    self.undo.done = true;
                }
            }
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
            ToolCallCommand::RequestUndo {
                now,
                lease_expires_at,
            } => {
                let Some(requested) = &self.requested else {
                    return Err(DomainError::NotFound("tool call"));
                };
                if let Some(refusal) = self.undo_refusal(*now) {
                    return Err(DomainError::Undo(refusal));
                }
                let plan = self
                    .completed
                    .as_ref()
                    .and_then(|c| c.undo.as_ref())
                    .ok_or(DomainError::Undo(UndoRefusal::NotUndoable))?;
                Ok(Event::ToolUndoRequested(ToolUndoRequested {
                    tool: requested.tool.clone(),
                    connection_id: requested.connection_id.clone(),
                    user_id: requested.user_id.clone(),
                    attempt: self.undo.attempt + 1,
                    method: plan.method.as_str().to_string(),
                    url: plan.url.split('?').next().unwrap_or_default().to_string(),
                    lease_expires_at: *lease_expires_at,
                }))
            }
            ToolCallCommand::CompleteUndo(done) => {
                if self.requested.is_none() {
                    return Err(DomainError::NotFound("tool call"));
                }
                if done.attempt != self.undo.attempt || self.undo.ended || self.undo.done {
                    return Err(DomainError::Undo(UndoRefusal::StaleAttempt));
                }
                Ok(Event::ToolUndone(done.clone()))
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
            undo: None,
            recovered: false,
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

    #[test]
    fn a_call_not_completed_yet_is_refused_an_undo_and_a_recovered_one_is_not_undoable() {
        let t0 = time::macros::datetime!(2026-01-01 12:00 UTC);
        let mut call = undoable_call(t0 + time::Duration::hours(1));
        call.completed = None;
        let undo = ToolCallCommand::RequestUndo {
            now: t0,
            lease_expires_at: t0,
        };
        assert_eq!(
            call.decide(&undo),
            Err(DomainError::Undo(UndoRefusal::NotCompleted))
        );
        let requested = call.requested.clone().unwrap();
        let ev = call
            .decide(&ToolCallCommand::Complete(ToolCompleted::recovered(
                &requested,
            )))
            .unwrap();
        let Event::ToolCompleted(done) = &ev else {
            unreachable!()
        };
        assert_eq!((done.outcome, done.recovered), (ToolOutcome::Unknown, true));
        call.apply(&ev);
        assert_eq!(
            call.decide(&undo),
            Err(DomainError::Undo(UndoRefusal::NotUndoable))
        );
        // A second recovery (another instance) loses: the call is completed once.
        assert!(call
            .decide(&ToolCallCommand::Complete(ToolCompleted::recovered(
                &requested
            )))
            .is_err());
    }

    fn undoable_call(until: OffsetDateTime) -> ToolCall {
        let mut call = ToolCall::default();
        call.apply(&Event::ToolRequested(ToolRequested {
            tool: "calendar.create_event".into(),
            risk: crate::gateway::tools::Risk::Write,
            connection_id: "c".into(),
            auth_config_id: "a".into(),
            user_id: "u".into(),
            token_id: None,
            approval_id: None,
            argument_fingerprint: "sha256:00".into(),
            method: "POST".into(),
            url: "https://www.googleapis.com/calendar/v3/calendars/primary/events".into(),
            mcp_client: None,
        }));
        call.apply(&Event::ToolCompleted(ToolCompleted {
            tool: "calendar.create_event".into(),
            connection_id: "c".into(),
            outcome: ToolOutcome::Success,
            status: Some(200),
            latency_ms: 3,
            attempts: 1,
            response: None,
            error: None,
            undo: Some(PlannedUndo {
                method: crate::gateway::tools::HttpMethod::Delete,
                url: "https://www.googleapis.com/calendar/v3/calendars/primary/events/e1?x=1"
                    .into(),
                headers: BTreeMap::new(),
                body: None,
                until,
            }),
            recovered: false,
        }));
        call
    }

    fn undone(attempt: u32, outcome: ToolOutcome, status: u16) -> ToolCallCommand {
        ToolCallCommand::CompleteUndo(ToolUndone {
            tool: "calendar.create_event".into(),
            connection_id: "c".into(),
            attempt,
            outcome,
            status: Some(status),
            latency_ms: 1,
            error: None,
        })
    }

    #[test]
    fn a_call_is_undone_once_within_its_window_and_a_failed_undo_may_be_retried() {
        let t0 = time::macros::datetime!(2026-01-01 12:00 UTC);
        let lease = |now: OffsetDateTime| ToolCallCommand::RequestUndo {
            now,
            lease_expires_at: now + time::Duration::minutes(2),
        };
        let mut call = undoable_call(t0 + time::Duration::hours(24));
        let ev = call.decide(&lease(t0)).unwrap();
        let Event::ToolUndoRequested(r) = &ev else {
            unreachable!()
        };
        assert_eq!(
            (r.attempt, r.url.as_str()),
            (
                1,
                "https://www.googleapis.com/calendar/v3/calendars/primary/events/e1"
            )
        );
        call.apply(&ev);
        // While the attempt runs, no other starts; once its lease lapses, one may.
        assert_eq!(
            call.decide(&lease(t0 + time::Duration::minutes(1))),
            Err(DomainError::Undo(UndoRefusal::InProgress))
        );
        let ev = call
            .decide(&undone(1, ToolOutcome::UpstreamError, 500))
            .unwrap();
        call.apply(&ev);
        assert!(call.decide(&undone(1, ToolOutcome::Success, 200)).is_err());
        let ev = call
            .decide(&lease(t0 + time::Duration::minutes(1)))
            .unwrap();
        call.apply(&ev);
        let ev = call.decide(&undone(2, ToolOutcome::Success, 204)).unwrap();
        call.apply(&ev);
        assert_eq!(
            call.decide(&lease(t0 + time::Duration::minutes(2))),
            Err(DomainError::Undo(UndoRefusal::AlreadyUndone))
        );
        // Past the window.
        let call = undoable_call(t0 + time::Duration::hours(24));
        assert_eq!(
            call.decide(&lease(t0 + time::Duration::hours(24))),
            Err(DomainError::Undo(UndoRefusal::WindowClosed))
        );
        // A lapsed lease lets another attempt take over; the old attempt's outcome is stale.
        let mut call = undoable_call(t0 + time::Duration::hours(24));
        call.apply(&call.decide(&lease(t0)).unwrap());
        let ev = call
            .decide(&lease(t0 + time::Duration::minutes(3)))
            .unwrap();
        call.apply(&ev);
        assert_eq!(
            call.decide(&undone(1, ToolOutcome::Success, 200)),
            Err(DomainError::Undo(UndoRefusal::StaleAttempt))
        );
    }

    #[test]
    fn a_call_without_a_planned_undo_is_not_undoable() {
        let t0 = time::macros::datetime!(2026-01-01 12:00 UTC);
        let mut call = undoable_call(t0 + time::Duration::hours(1));
        if let Some(c) = &mut call.completed {
            c.undo = None;
        }
        assert_eq!(
            call.decide(&ToolCallCommand::RequestUndo {
                now: t0,
                lease_expires_at: t0
            }),
            Err(DomainError::Undo(UndoRefusal::NotUndoable))
        );
        assert_eq!(
            ToolCall::default().decide(&ToolCallCommand::RequestUndo {
                now: t0,
                lease_expires_at: t0
            }),
            Err(DomainError::NotFound("tool call"))
        );
    }
}

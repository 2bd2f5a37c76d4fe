//! Undo of a tool call: the compensating request its tool declares, fixed when the call
//! completed (`tool.completed`'s `undo`, planned here by [`plan`] from the call's arguments
//! and the upstream's scrubbed answer), sent on request by the connection's end user or an
//! admin or developer ([`undo`]).
//!
//! The steps mirror a call's: the call visible to this asker (another workspace's or another
//! person's answers like an unknown id, and the attempt is recorded by the face); its
//! outcome recorded (the gateway appends `tool.completed` just after answering: an undo
//! right after the answer waits for this instance's append, and is refused with
//! `NotCompleted`, to be tried again, while the outcome is not in the log); undoable
//! now (`ToolCall::undo_refusal`: a planned undo, within its window, not undone, no attempt
//! running); the connection usable, its credential refreshed before use
//! (`commands::connections::credential_for_call`); `tool.undo_requested` appended at the
//! call's aggregate version (no event, no call; of two instances one wins); the credential
//! injected; the request through the gateway's upstream client (the destination policy, no
//! redirects); the answer scrubbed of the credential; `tool.undone` with the outcome and the
//! upstream's status. A failed undo leaves the call undoable again.

use serde_json::Value;

use super::record::Call;
use super::scrub::Scrubber;
use super::target::Target;
use super::tools::UpstreamRequest;
use super::upstream::{UpstreamFailure, UpstreamResponse};
use crate::app::AppState;
use crate::commands::agents::AgentError;
use crate::commands::connections::{self, UsageError};
use crate::commands::{wait_for_write, Caller, EndUser};
use crate::domain::tool_call::{
    PlannedUndo, ToolCall, ToolCallCommand, ToolOutcome, ToolUndone, UndoRefusal,
};
use crate::domain::DomainError;
use crate::ledger::{Actor, ActorType};

/// How long an undo waits for the call's `tool.completed` this instance is appending
/// (its tries take under two seconds).
const COMPLETION_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// How long an undo attempt holds the call before another may take over (the upstream's
/// timeout times its attempts, with room to record the outcome).
fn lease(state: &AppState) -> time::Duration {
    let settings = &state.gateway.settings;
    let per_try =
        time::Duration::try_from(settings.upstream_timeout).unwrap_or(time::Duration::seconds(30));
    per_try * i32::try_from(settings.idempotent_retries + 1).unwrap_or(3)
        + time::Duration::seconds(30)
}

/// Who undoes: a member's or API key's caller (the route's permission: admin, developer),
/// or the connection's end user.
#[derive(Debug, Clone)]
pub enum Undoer {
    Key(Caller),
    User(EndUser),
}

impl Undoer {
    pub fn workspace_id(&self) -> &str {
        match self {
            Undoer::Key(c) => &c.workspace_id,
            Undoer::User(u) => &u.workspace_id,
        }
    }

    pub fn actor(&self) -> Actor {
        match self {
            Undoer::Key(c) => c.actor(),
            Undoer::User(u) => Actor {
                actor_type: ActorType::User,
                id: u.user_id.clone(),
            },
        }
    }
}

/// How an undo ended (a refusal is an `AgentError` instead).
#[derive(Debug)]
pub struct Undone {
    pub tool_call_id: String,
    pub tool: String,
    /// `Success`: undone. Anything else: it failed and may be tried again.
    pub outcome: ToolOutcome,
    /// The upstream's status, if it answered.
    pub status: Option<u16>,
    /// Why it failed when the upstream did not answer (scrubbed of the credential).
    pub error: Option<String>,
}

impl Undone {
    pub fn succeeded(&self) -> bool {
        self.outcome == ToolOutcome::Success
    }
}

/// Step 9 of a call: the compensating request of a call that succeeded, when its tool
/// declares one; none (logged) when the call lacks a value the undo needs.
pub(super) fn plan(
    state: &AppState,
    target: &Target,
    call: &Call,
    arguments: &Value,
    result: &Result<UpstreamResponse, UpstreamFailure>,
) -> Option<PlannedUndo> {
    let resp = result.as_ref().ok()?;
    if !(200..300).contains(&resp.status) {
        return None;
    }
    match target
        .tool
        .plan_undo(arguments, &resp.body, state.clock.now())
    {
        Ok(planned) => planned,
        Err(reason) => {
            tracing::warn!(tool = %target.def.name, tool_call_id = %call.id, %reason, "this call cannot be undone");
            None
        }
    }
}

/// The call, if this asker may see it: in the workspace, and an end user's own.
pub async fn visible(state: &AppState, undoer: &Undoer, id: &str) -> Result<ToolCall, AgentError> {
    let ws = undoer.workspace_id();
    let call = match state.ledger.load::<ToolCall>(ws, id).await {
        Ok(c) => c,
        // An id that cannot name an aggregate is simply unknown.
        Err(crate::ledger::LedgerError::Envelope(_)) => ToolCall::default(),
        Err(e) => return Err(e.into()),
    };
    let Some(requested) = &call.requested else {
        let elsewhere = state
            .projections
            .aggregate_elsewhere(ws, "tool_call", id)
            .await
            .unwrap_or(false);
        return Err(AgentError::NotFound {
            what: "tool call",
            elsewhere,
        });
    };
    if let Undoer::User(u) = undoer {
        if requested.user_id != u.user_id {
            return Err(AgentError::OtherUser);
        }
    }
    Ok(call)
}

/// Undoes the call `id` (the steps are in the module's documentation).
pub async fn undo(state: &AppState, undoer: &Undoer, id: &str) -> Result<Undone, AgentError> {
    let ws = undoer.workspace_id();
    let actor = undoer.actor();
    // Asked before the read: a completion that lands between the read and the question
    // would otherwise be neither seen nor waited for.
    let was_pending = state.gateway.completions.is_pending(id);
    let mut call = visible(state, undoer, id).await?;
    if call.completed.is_none() && (was_pending || state.gateway.completions.is_pending(id)) {
        state
            .gateway
            .completions
            .wait_for(id, COMPLETION_WAIT)
            .await;
        call = visible(state, undoer, id).await?;
    }
    let now = state.clock.now();
    if let Some(refusal) = call.undo_refusal(now) {
        return Err(DomainError::Undo(refusal).into());
    }
    let (Some(requested), Some(plan)) = (
        call.requested.as_ref(),
        call.completed.as_ref().and_then(|c| c.undo.clone()),
    ) else {
        return Err(DomainError::Undo(UndoRefusal::NotUndoable).into());
    };
    let connection_id = requested.connection_id.clone();
    let gone = |e: UsageError| match e {
        UsageError::NotFound => AgentError::ConnectionInactive("deleted".into()),
        other => other.into(),
    };
    let usable = connections::usable(state, ws, &connection_id)
        .await
        .map_err(gone)?;
    let (_, credential) =
        connections::credential_for_call(state, ws, &connection_id, &actor, usable)
            .await
            .map_err(gone)?;
    let mut request = compensating_request(&plan)?;
    let started = state
        .ledger
        .execute::<ToolCall>(
            ws,
            id,
            &actor,
            &ToolCallCommand::RequestUndo {
                now,
                lease_expires_at: now + lease(state),
            },
        )
        .await?;
    let attempt = match &started.event {
        crate::domain::Event::ToolUndoRequested(e) => e.attempt,
        _ => call.undo.attempt + 1,
    };
    let since = std::time::Instant::now();
    let scrubber = Scrubber::for_credential(&credential);
    request.inject(&credential);
    drop(credential);
    let (result, _attempts) = super::upstream::call(state, &request).await;
    drop(request);
    let result = super::scrubbed(scrubber, result).await;
    let latency_ms = u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX);
    let tool = requested.tool.clone();
    // The answer's body is neither kept nor relayed: the outcome is its status.
    let (outcome, status, error) = match result {
        Ok(resp) if (200..300).contains(&resp.status) => {
            (ToolOutcome::Success, Some(resp.status), None)
        }
        Ok(resp) => (ToolOutcome::UpstreamError, Some(resp.status), None),
        Err(UpstreamFailure::Timeout) => (
            ToolOutcome::Timeout,
            None,
            Some("no answer in time".to_string()),
        ),
        Err(UpstreamFailure::Unreachable(detail)) => (ToolOutcome::Unreachable, None, Some(detail)),
    };
    let committed = state
        .ledger
        .execute::<ToolCall>(
            ws,
            id,
            &actor,
            &ToolCallCommand::CompleteUndo(ToolUndone {
                tool: tool.clone(),
                connection_id,
                attempt,
                outcome,
                status,
                latency_ms,
                error: error.clone(),
            }),
        )
        .await?;
    wait_for_write(state, committed.position).await?;
    Ok(Undone {
        tool_call_id: id.to_string(),
        tool,
        outcome,
        status,
        error,
    })
}

/// The planned request as the gateway sends it (the credential injected after).
fn compensating_request(plan: &PlannedUndo) -> Result<UpstreamRequest, AgentError> {
    let body = plan
        .body
        .as_ref()
        .map(serde_json::to_vec)
        .transpose()
        .map_err(|e| crate::commands::agents::invalid("undo", e.to_string()))?;
    Ok(UpstreamRequest {
        method: plan.method,
        url: plan.url.clone(),
        headers: plan
            .headers
            .iter()
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect(),
        body,
        secret_params: Vec::new(),
    })
}

/// Where a call's undo stands, as a person's activity shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UndoStanding {
    /// The tool declares no undo, the call did not succeed, or its window closed (never
    /// undone).
    None,
    /// May be undone now.
    Possible,
    /// An attempt is running.
    Running,
    /// Undone.
    Undone,
    /// The latest attempt failed (with the upstream's status, if it answered); it may be
    /// tried again while `retry` holds.
    Failed { status: Option<u16>, retry: bool },
}

/// The undo standing of the call `id` of the workspace at `now` (an unknown call: `None`).
pub async fn standing(
    state: &AppState,
    ws: &str,
    id: &str,
    now: time::OffsetDateTime,
) -> Result<UndoStanding, AgentError> {
    let call = match state.ledger.load::<ToolCall>(ws, id).await {
        Ok(c) => c,
        Err(crate::ledger::LedgerError::Envelope(_)) => return Ok(UndoStanding::None),
        Err(e) => return Err(e.into()),
    };
    let refusal = call.undo_refusal(now);
    let tried_and_failed = call.undo.attempt > 0 && call.undo.ended && !call.undo.done;
    Ok(match refusal {
        Some(UndoRefusal::AlreadyUndone) => UndoStanding::Undone,
        Some(UndoRefusal::InProgress) => UndoStanding::Running,
        None if tried_and_failed => UndoStanding::Failed {
            status: call.undo.last_status,
            retry: true,
        },
        None => UndoStanding::Possible,
        Some(_) if tried_and_failed => UndoStanding::Failed {
            status: call.undo.last_status,
            retry: false,
        },
        Some(_) => UndoStanding::None,
    })
}

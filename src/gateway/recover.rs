//! Recovery of calls whose outcome was never recorded: the gateway answers once
//! `tool.requested` is durable and appends `tool.completed` right after (`completion`), so a
//! service that dies in between leaves a call requested and never completed. [`Recovery`]
//! finds such calls in the log and, once a call is older than any live attempt could be
//! (the upstream timeout times the attempts, plus the completion's own retries), appends
//! `tool.completed` with outcome `unknown` and `recovered: true`.
//!
//! Every instance may run it (at start, then on the scheduler's period): the completion is
//! appended at the call aggregate's version, so of several instances one wins, and the
//! others find the call completed and leave it.

use std::collections::HashMap;
use std::time::Duration;

use crate::app::AppState;
use crate::domain::tool_call::{ToolCall, ToolCallCommand, ToolCompleted};
use crate::domain::Aggregate as _;
use crate::ledger::envelope::open_envelope;
use crate::ledger::{Actor, EventLog, Ledger, LedgerError};

/// Events read from the log per read.
const BATCH: usize = 2_000;
/// Room for the completion's own tries (`completion`) after the last upstream attempt.
const COMPLETION_ROOM: Duration = Duration::from_secs(30);

/// A call requested and not completed, as far as the log was read.
#[derive(Debug, Clone)]
struct Open {
    workspace_id: String,
    requested_at: time::OffsetDateTime,
}

/// What one sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    /// Calls this sweep completed as `unknown`.
    pub recovered: usize,
    /// Calls found completed by someone else meanwhile (another instance).
    pub completed_elsewhere: usize,
    /// Calls still open but young enough to be running.
    pub still_open: usize,
}

/// The open calls of the log as far as it was read: each sweep reads only what was
/// appended since the last.
#[derive(Debug, Default)]
pub struct Recovery {
    read_to: u64,
    open: HashMap<String, Open>,
}

/// How old a requested call must be before no attempt of it can still be running.
pub fn recovery_age(state: &AppState) -> Duration {
    let settings = &state.gateway.settings;
    settings.upstream_timeout * (settings.idempotent_retries + 1) + COMPLETION_ROOM
}

impl Recovery {
    pub fn new() -> Recovery {
        Recovery::default()
    }

    /// Reads the log from where the last sweep stopped, then completes as `unknown` every
    /// open call requested more than `older_than` ago (by the service's clock) that this
    /// instance is not completing itself.
    pub async fn sweep(
        &mut self,
        state: &AppState,
        older_than: Duration,
    ) -> Result<Swept, LedgerError> {
        let completions = &state.gateway.completions;
        self.sweep_on(&state.ledger, state.clock.now(), older_than, |id| {
            completions.is_pending(id)
        })
        .await
    }

    /// `sweep` on `ledger` (and its log) at `now`, leaving the calls `pending` names.
    pub async fn sweep_on(
        &mut self,
        ledger: &Ledger,
        now: time::OffsetDateTime,
        older_than: Duration,
        pending: impl Fn(&str) -> bool,
    ) -> Result<Swept, LedgerError> {
        self.read_on(ledger.log().as_ref()).await?;
        let cutoff = now - time::Duration::try_from(older_than).unwrap_or(time::Duration::MAX);
        let due: Vec<(String, Open)> = self
            .open
            .iter()
            .filter(|(id, o)| o.requested_at <= cutoff && !pending(id))
            .map(|(id, o)| (id.clone(), o.clone()))
            .collect();
        let mut swept = Swept::default();
        for (id, open) in due {
            match complete(ledger, &open.workspace_id, &id).await? {
                true => swept.recovered += 1,
                false => swept.completed_elsewhere += 1,
            }
            self.open.remove(&id);
        }
        swept.still_open = self.open.len();
        Ok(swept)
    }

    async fn read_on(&mut self, log: &dyn EventLog) -> Result<(), LedgerError> {
        loop {
            let events = log.read_from(self.read_to + 1, BATCH).await?;
            let Some(last) = events.last().map(|e| e.position) else {
                return Ok(());
            };
            for rec in events
                .iter()
                .filter(|e| e.key.aggregate_type == ToolCall::TYPE)
            {
                let opened = open_envelope(&rec.envelope).map_err(|e| LedgerError::Corrupt {
                    position: rec.position,
                    reason: e.to_string(),
                })?;
                let body = opened.body;
                match body.kind.as_str() {
                    "tool.requested" => {
                        self.open.insert(
                            body.aggregate_id,
                            Open {
                                workspace_id: body.workspace_id,
                                requested_at: body.occurred_at,
                            },
                        );
                    }
                    "tool.completed" => {
                        self.open.remove(&body.aggregate_id);
                    }
                    _ => {}
                }
            }
            self.read_to = last;
        }
    }
}

/// Appends the recovered completion of call `id`, decided on the call as the log holds it
/// and appended at its version. False when the call was completed meanwhile (the append
/// lost to another completion, or the call was already complete).
async fn complete(ledger: &Ledger, ws: &str, id: &str) -> Result<bool, LedgerError> {
    let call = ledger.load::<ToolCall>(ws, id).await?;
    let Some(requested) = &call.requested else {
        return Ok(false);
    };
    if call.completed.is_some() {
        return Ok(false);
    }
    let command = ToolCallCommand::Complete(ToolCompleted::recovered(requested));
    let actor = Actor::system("tool-call-recovery");
    match ledger.execute::<ToolCall>(ws, id, &actor, &command).await {
        Ok(_) => {
            tracing::warn!(tool_call_id = %id, workspace_id = %ws, tool = %requested.tool,
                "tool call completed as unknown: the service stopped before it recorded the outcome");
            Ok(true)
        }
        // Decided again after losing the race: someone else completed it.
        Err(LedgerError::Domain(_)) => Ok(false),
        Err(e) => Err(e),
    }
}

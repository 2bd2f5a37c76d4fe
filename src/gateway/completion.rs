//! `tool.completed` after the answer: the agent is answered once `tool.requested` is
//! durable, and the outcome is appended right after in a task that outlives the request
//! (bounded retries), as an append no caller waits on (`Ledger::execute_unwaited`: the
//! embedded log flushes it with the next call's `tool.requested`). [`Completions`] is what
//! this instance still owes: an undo of a call whose completion is on its way waits for it
//! here, and a stopping server waits for all of them ([`Completions::settled`]). A
//! completion that never lands (the service died, or the log refused every try) is
//! appended by recovery (`super::recover`) with outcome `unknown`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::app::AppState;
use crate::domain::tool_call::{ToolCall, ToolCallCommand, ToolCompleted};
use crate::ledger::Actor;

/// Tries of one completion append, and the pause before the first retry (doubled after).
const TRIES: u32 = 6;
const FIRST_PAUSE: Duration = Duration::from_millis(50);

/// The completions this instance has still to append, by call id. Each entry's sender
/// lives in the task appending it: the task's end closes the channel.
#[derive(Default)]
pub struct Completions {
    pending: Mutex<HashMap<String, watch::Receiver<()>>>,
}

impl Completions {
    fn add(&self, call_id: &str) -> watch::Sender<()> {
        let (tx, rx) = watch::channel(());
        self.lock().insert(call_id.to_string(), rx);
        tx
    }

    fn remove(&self, call_id: &str) {
        self.lock().remove(call_id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, watch::Receiver<()>>> {
        match self.pending.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Whether this instance is still appending the completion of `call_id`.
    pub fn is_pending(&self, call_id: &str) -> bool {
        self.lock().contains_key(call_id)
    }

    /// Waits (at most `within`) until this instance is no longer appending the completion
    /// of `call_id`. Returns at once when it is not.
    pub async fn wait_for(&self, call_id: &str, within: Duration) {
        let rx = self.lock().get(call_id).cloned();
        if let Some(rx) = rx {
            let _ = tokio::time::timeout(within, closed(rx)).await;
        }
    }

    /// Waits (at most `within`) until every completion started so far is appended (or
    /// given up): a stopping server calls it once it accepts no more requests.
    pub async fn settled(&self, within: Duration) {
        let all: Vec<_> = self.lock().values().cloned().collect();
        let waiting = all.len();
        let done = tokio::time::timeout(
            within,
            futures::future::join_all(all.into_iter().map(closed)),
        )
        .await
        .is_ok();
        if !done {
            tracing::warn!(
                waiting,
                "tool call completions still pending at shutdown; recovery will complete them"
            );
        }
    }
}

/// Resolves once the channel's sender is gone.
async fn closed(mut rx: watch::Receiver<()>) {
    while rx.changed().await.is_ok() {}
}

/// Appends the call's `tool.completed` in its own task (the caller answers at once), with
/// `TRIES` tries; `since` starts the `completed` phase of the latency metric.
pub(super) fn spawn(
    state: &AppState,
    workspace_id: &str,
    call_id: &str,
    actor: Actor,
    event: ToolCompleted,
    since: Instant,
) {
    let done = state.gateway.completions.add(call_id);
    let (state, ws, id) = (state.clone(), workspace_id.to_string(), call_id.to_string());
    // In the request's trace span, so the event records the call's trace id.
    tokio::spawn(tracing::Instrument::in_current_span(async move {
        append(&state, &ws, &id, &actor, event).await;
        state
            .metrics
            .tool_call_phase("completed", since.elapsed().as_secs_f64());
        state.gateway.completions.remove(&id);
        drop(done);
    }));
}

async fn append(state: &AppState, ws: &str, id: &str, actor: &Actor, event: ToolCompleted) {
    let command = ToolCallCommand::Complete(event);
    let mut pause = FIRST_PAUSE;
    for attempt in 1..=TRIES {
        match state
            .ledger
            .execute_unwaited::<ToolCall>(ws, id, actor, &command)
            .await
        {
            Ok(_) => return,
            // Refused by the call's state: someone completed it already (recovery), a
            // retry cannot help.
            Err(crate::ledger::LedgerError::Domain(e)) => {
                tracing::warn!(tool_call_id = %id, error = %e, "tool.completed refused");
                return;
            }
            Err(e) if attempt == TRIES => {
                tracing::error!(tool_call_id = %id, error = %e, tries = TRIES,
                    "cannot append tool.completed; recovery will complete the call as unknown");
            }
            Err(e) => {
                tracing::warn!(tool_call_id = %id, error = %e, attempt, "tool.completed append failed; retrying");
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
        }
    }
}

//! Proactive refresh: on a cron schedule, refresh every connection whose access token expires
//! within the refresh buffer. Every instance may run it: refresh is single-flight through the
//! log, so two schedulers never refresh one connection twice.

use std::time::Duration;

use futures::StreamExt;
use tokio::sync::watch;

use crate::app::AppState;
use crate::commands::connections::{refresh, RefreshOutcome};
use crate::domain::connection::RefreshTrigger;
use crate::ledger::Actor;

pub use crate::commands::connections::DEFAULT_REFRESH_SCHEDULE;
pub use crate::config::{parse_schedule, ScheduleError};
/// Connections refreshed per tick, and at once.
const BATCH: i64 = 500;
const CONCURRENCY: usize = 8;

/// Runs until `stop` turns true.
pub async fn run_refresh_scheduler(
    state: AppState,
    schedule: cron::Schedule,
    stop: watch::Receiver<bool>,
) {
    on_schedule("refresh", schedule, stop, || async {
        refresh_due(&state).await;
    })
    .await;
}

/// Runs `tick` at every time of `schedule` until `stop` turns true. A tick runs to its end
/// before the next time is computed, so ticks never overlap.
pub async fn on_schedule<F, Fut>(
    job: &str,
    schedule: cron::Schedule,
    mut stop: watch::Receiver<bool>,
    mut tick: F,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    loop {
        let Some(next) = schedule.upcoming(chrono::Utc).next() else {
            tracing::warn!(job, "schedule has no upcoming time; the job stops");
            return;
        };
        let wait = (next - chrono::Utc::now())
            .to_std()
            .unwrap_or(Duration::ZERO);
        if stopped_while_waiting(wait, &mut stop).await {
            return;
        }
        tick().await;
    }
}

/// Waits `wait` unless `stop` turns true first; true when it did.
async fn stopped_while_waiting(wait: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(wait) => {}
        _ = stop.changed() => return true,
    }
    *stop.borrow()
}

/// One tick: refresh what expires within the buffer. Returns how many were refreshed.
pub async fn refresh_due(state: &AppState) -> usize {
    let horizon = state.clock.now()
        + time::Duration::try_from(state.connections.refresh_buffer)
            .unwrap_or(time::Duration::minutes(5));
    let due = match state
        .projections
        .connections_due_for_refresh(horizon.unix_timestamp(), BATCH)
        .await
    {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, "refresh scheduler cannot read connections");
            return 0;
        }
    };
    let actor = Actor::system("refresh-scheduler");
    let outcomes: Vec<bool> = futures::stream::iter(due)
        .map(|row| {
            let actor = actor.clone();
            async move {
                let r = refresh(
                    state,
                    &row.workspace_id,
                    &row.id,
                    &actor,
                    RefreshTrigger::Scheduled,
                )
                .await;
                match r {
                    Ok(RefreshOutcome::Refreshed { .. }) => true,
                    Ok(other) => {
                        tracing::info!(connection = %row.id, outcome = ?other, "scheduled refresh did not renew");
                        false
                    }
                    Err(e) => {
                        tracing::info!(connection = %row.id, error = %e, "scheduled refresh refused");
                        false
                    }
                }
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    outcomes.into_iter().filter(|ok| *ok).count()
}

/// How often recorded idempotent answers past their retention are shredded.
pub const IDEMPOTENCY_SWEEP: Duration = Duration::from_secs(600);

/// Shreds the sealed answers of idempotency keys past their retention (at start, then
/// every `every`) until `stop` turns true. Every instance may run it: shredding is
/// idempotent.
pub async fn run_idempotency_sweeper(
    state: AppState,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        match crate::commands::idempotency::shred_expired(&state).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(shredded = n, "idempotency answers past retention shredded"),
            Err(e) => tracing::warn!(error = %e, "cannot shred expired idempotency answers"),
        }
        if stopped_while_waiting(every, &mut stop).await {
            return;
        }
    }
}

/// How often dynamic database users past their expiry are dropped.
pub const DYNAMIC_CREDENTIAL_SWEEP: Duration = Duration::from_secs(2);

/// Drops dynamic database users past their expiry (`commands::dynamic_credentials`), at
/// start and then every `every`, until `stop` turns true. Every instance may run it: each
/// drop is claimed in the log first, so one instance drops and records it.
pub async fn run_dynamic_credential_expiry(
    state: AppState,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let dropped = crate::commands::dynamic_credentials::expire_due(&state).await;
        if dropped > 0 {
            tracing::info!(dropped, "dynamic database users past their expiry dropped");
        }
        if stopped_while_waiting(every, &mut stop).await {
            return;
        }
    }
}

/// How often the C allocator's free pages are handed back (`memory::give_back`).
pub const MEMORY_GIVE_BACK: Duration = Duration::from_secs(10);

/// Hands the C allocator's free pages back to the system at start and every `every`,
/// until `stop` turns true.
pub async fn run_memory_give_back(every: Duration, mut stop: watch::Receiver<bool>) {
    loop {
        let _ = tokio::task::spawn_blocking(crate::memory::give_back).await;
        if stopped_while_waiting(every, &mut stop).await {
            return;
        }
    }
}

/// How often calls requested and never completed are looked for.
pub const TOOL_CALL_RECOVERY_SWEEP: Duration = Duration::from_secs(60);

/// Completes as `unknown` the tool calls requested and never completed (the service died
/// between answering and appending `tool.completed`) once older than any attempt of them
/// could run (`gateway::recover`): at start, then every `every`, until `stop` turns true.
/// Every instance may run it: each completion is appended at the call's version, so one
/// instance completes a call and the others find it completed.
pub async fn run_tool_call_recovery(
    state: AppState,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut recovery = crate::gateway::recover::Recovery::new();
    let older_than = crate::gateway::recover::recovery_age(&state);
    let mut first = true;
    loop {
        match recovery.sweep(&state, older_than).await {
            Ok(swept) if first => tracing::info!(
                recovered = swept.recovered,
                completed_elsewhere = swept.completed_elsewhere,
                still_open = swept.still_open,
                "tool call recovery at start done"
            ),
            Ok(swept) if swept.recovered > 0 => {
                tracing::warn!(
                    recovered = swept.recovered,
                    "tool calls completed as unknown"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot recover tool calls now"),
        }
        first = false;
        if stopped_while_waiting(every, &mut stop).await {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_schedule_parses_and_bad_ones_are_refused() {
        assert!(parse_schedule(DEFAULT_REFRESH_SCHEDULE).is_ok());
        let e = parse_schedule("every minute").map(|_| ()).unwrap_err();
        assert!(e.to_string().contains("every minute"));
    }
}

//! Applies the event log to SQL projections, in order, resumable, once per event even with
//! several instances (see `store`). Projections are disposable: `reset` + replay rebuilds
//! them from the log alone.

pub mod cache;
pub mod health;
pub mod op;
pub mod plan;
pub mod store;
pub mod swap;

use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use tokio::sync::watch;

pub use health::{ProjectionHealth, ReadinessBounds, Stuck};
pub use store::{
    PgProjections, ProjectionError, ProjectionStore, ProjectionWriter, SqliteProjections,
};

use crate::ledger::{EventLog, RecordedEvent};
use crate::metrics::{Metrics, ProjectionLabel};

const BATCH: usize = 512;
/// Fallback poll when no wake-up arrives (events written by another instance are also
/// seen through the log subscription; this bounds the delay if that drops).
const IDLE_POLL: Duration = Duration::from_millis(500);
/// How often the lag metric is refreshed while events flow.
const LAG_EVERY: Duration = Duration::from_secs(1);
/// Read-your-writes also re-reads the offset this often, in case no wake-up comes (the
/// projector is down, or another instance applied the event).
const OFFSET_POLL: Duration = Duration::from_millis(20);

/// How long a failing batch waits before it is tried again.
const RETRY_AFTER: Duration = Duration::from_secs(1);

pub struct Projector {
    store: Arc<dyn ProjectionStore>,
    log: Arc<dyn EventLog>,
    metrics: Metrics,
    health: Arc<ProjectionHealth>,
}

impl Projector {
    pub fn new(store: Arc<dyn ProjectionStore>, log: Arc<dyn EventLog>, metrics: Metrics) -> Self {
        let health = ProjectionHealth::new(ReadinessBounds::default(), std::time::Instant::now());
        Projector {
            store,
            log,
            metrics,
            health: Arc::new(health),
        }
    }

    /// Reports to `health` (which readiness judges) instead of a private one.
    pub fn reporting_to(mut self, health: Arc<ProjectionHealth>) -> Self {
        self.health = health;
        self
    }

    /// Applies everything currently in the log; returns the number of events applied.
    pub async fn catch_up(&self) -> Result<u64, ProjectionError> {
        let mut total = 0;
        loop {
            let n = self.store.catch_up(self.log.as_ref(), BATCH).await?;
            total += n;
            // A short batch reached the head: no empty round (a write lock) to confirm it.
            if n < BATCH as u64 {
                return Ok(total);
            }
        }
    }

    /// Runs until `shutdown` turns true: catch up, then follow the log. Events arrive
    /// through a log subscription and are applied as delivered (the log is read again only
    /// when they do not continue the stored offset: another instance applied them, or a
    /// gap).
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut follow = None;
        // A subscription that ends is followed again at once, unless it lived less than
        // the idle poll (no busy loop if it keeps ending).
        let mut follow_again_at = tokio::time::Instant::now();
        let mut followed_since = tokio::time::Instant::now();
        // The last wake-up was the idle poll although a subscription was open.
        let mut polled_while_following = false;
        let mut known: Vec<RecordedEvent> = Vec::new();
        let mut lag_recorded = tokio::time::Instant::now() - LAG_EVERY;
        loop {
            if *shutdown.borrow() {
                self.finish().await;
                return;
            }
            let applied = if known.is_empty() {
                self.catch_up().await
            } else {
                self.apply_known(&known).await
            };
            known.clear();
            if let Err(e) = &applied {
                self.report_failure(e).await;
                tokio::select! {
                    _ = tokio::time::sleep(RETRY_AFTER) => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            }
            self.advanced();
            if polled_while_following && matches!(applied, Ok(n) if n > 0) && follow.is_some() {
                // The poll found events the subscription never delivered: it went quiet
                // without ending (seen after a NATS reconnect). Follow again at once.
                self.resubscribing("the subscription stopped delivering");
                follow = None;
            }
            polled_while_following = false;
            if follow.is_none() && tokio::time::Instant::now() >= follow_again_at {
                // Follow again from what is applied (the log came back, or the stream
                // ended); until then the idle poll below catches up.
                let from = *self.store.applied().borrow() + 1;
                follow = self.log.subscribe(from).await.ok();
                followed_since = tokio::time::Instant::now();
            }
            if lag_recorded.elapsed() >= LAG_EVERY {
                self.record_lag().await;
                lag_recorded = tokio::time::Instant::now();
            }
            let next = async {
                match follow.as_mut() {
                    Some(events) => {
                        let first = events.next().await;
                        // Everything delivered meanwhile goes into the same round.
                        let mut more = Vec::new();
                        let mut ended = false;
                        while more.len() < BATCH {
                            match events.next().now_or_never() {
                                Some(Some(Ok(e))) => more.push(e),
                                Some(Some(Err(_)) | None) => {
                                    ended = true;
                                    break;
                                }
                                None => break,
                            }
                        }
                        (first, more, ended)
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                (first, more, ended) = next => {
                    let delivered = matches!(first, Some(Ok(_)));
                    if let Some(Ok(e)) = first {
                        known.push(e);
                        known.extend(more);
                    }
                    // An error or the end: `catch_up` reads the log, and the log is followed
                    // again (at once, unless the subscription was short-lived).
                    if ended || !delivered {
                        self.resubscribing("the subscription ended");
                        follow = None;
                        let now = tokio::time::Instant::now();
                        follow_again_at = if now - followed_since >= IDLE_POLL {
                            now
                        } else {
                            now + IDLE_POLL
                        };
                    }
                }
                _ = tokio::time::sleep(IDLE_POLL) => {
                    polled_while_following = follow.is_some();
                }
                _ = shutdown.changed() => {}
            }
        }
    }

    /// A stopping server's last appends (the `tool.completed` of calls answered while it
    /// drained) are applied before it exits, so its projections end at the log's head;
    /// a failure is left to the next start's catch-up. The server bounds the wait.
    async fn finish(&self) {
        if let Err(e) = self.catch_up().await {
            tracing::warn!(error = %e, "the projector stopped before the log's head");
        }
    }

    /// Applies events delivered by the subscription, then anything still behind them.
    async fn apply_known(&self, known: &[RecordedEvent]) -> Result<u64, ProjectionError> {
        let mut total = 0;
        let mut rest = known;
        while !rest.is_empty() {
            let n = self
                .store
                .apply_next(self.log.as_ref(), BATCH, rest)
                .await?;
            if n == 0 {
                break;
            }
            total += n;
            let applied_to = self.store.applied().borrow().to_owned();
            let skip = rest.iter().take_while(|e| e.position <= applied_to).count();
            rest = &rest[skip..];
        }
        Ok(total)
    }

    fn resubscribing(&self, why: &'static str) {
        tracing::info!(why, "projector follows the log again");
        self.metrics
            .projection_resubscribes
            .get_or_create(&ProjectionLabel {
                projection: store::PROJECTION,
            })
            .inc();
    }

    /// The projections moved (or are confirmed where they are): no longer stuck.
    fn advanced(&self) {
        let offset = *self.store.applied().borrow();
        if let Some(was) = self.health.advanced(offset, std::time::Instant::now()) {
            tracing::info!(
                position = was.position,
                "projector applied the event it was stuck on"
            );
            self.stuck_gauge().set(0);
        }
    }

    fn stuck_gauge(&self) -> prometheus_client::metrics::gauge::Gauge {
        self.metrics
            .projection_stuck_position
            .get_or_create(&ProjectionLabel {
                projection: store::PROJECTION,
            })
            .clone()
    }

    /// A batch failed. Applies the events before the one that fails, one at a time (so the
    /// read side gets as far as it can), then reports that event: an error log line with
    /// its position and kind, the metrics, and readiness (503 with the reason).
    async fn report_failure(&self, batch_error: &ProjectionError) {
        self.metrics
            .projection_errors
            .get_or_create(&ProjectionLabel {
                projection: store::PROJECTION,
            })
            .inc();
        let error = loop {
            match self.store.apply_next(self.log.as_ref(), 1, &[]).await {
                Ok(0) => {
                    // Nothing left that fails (another instance applied it, or the
                    // failure was passing).
                    self.advanced();
                    return;
                }
                Ok(_) => continue,
                Err(e) => break e,
            }
        };
        let position = *self.store.applied().borrow() + 1;
        let kind = self.kind_at(position).await;
        let stuck = Stuck {
            position,
            kind,
            error: error.to_string(),
        };
        self.stuck_gauge()
            .set(i64::try_from(position).unwrap_or(i64::MAX));
        if self.health.report_stuck(stuck.clone()) {
            tracing::error!(
                position,
                kind = stuck.kind.as_deref().unwrap_or("unknown"),
                error = %stuck.error,
                batch_error = %batch_error,
                "projector cannot apply this event; the read side stops here until it can \
                 (readiness answers 503)"
            );
        }
    }

    /// The kind of the event at `position`, as its signed body says.
    async fn kind_at(&self, position: u64) -> Option<String> {
        let events = self.log.read_from(position, 1).await.ok()?;
        let event = events.into_iter().find(|e| e.position == position)?;
        crate::ledger::envelope::open_envelope(&event.envelope)
            .ok()
            .map(|opened| opened.body.kind)
    }

    async fn record_lag(&self) {
        if let (Ok(head), Ok(offset)) = (self.log.head().await, self.store.offset().await) {
            self.metrics
                .projection_lag
                .get_or_create(&ProjectionLabel {
                    projection: store::PROJECTION,
                })
                .set(i64::try_from(head.saturating_sub(offset)).unwrap_or(i64::MAX));
        }
    }
}

/// Waits (bounded) until the projections include `position` (read-your-writes): woken by
/// this instance's projector as soon as it commits, re-reading the offset now and then
/// (another instance may have applied it).
pub async fn wait_for(
    store: &dyn ProjectionStore,
    position: u64,
    timeout: Duration,
) -> Result<bool, ProjectionError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut applied = store.applied();
    loop {
        if *applied.borrow_and_update() >= position {
            return Ok(true);
        }
        let poll = (tokio::time::Instant::now() + OFFSET_POLL).min(deadline);
        let woken = tokio::select! {
            changed = applied.changed() => changed.is_ok(),
            _ = tokio::time::sleep_until(poll) => false,
        };
        if !woken {
            // The last look reads the database itself; before it, one waiter reads it for
            // all (tens of waiters each reading every 20 ms were most of the offset reads).
            let last = tokio::time::Instant::now() >= deadline;
            let offset = match last {
                true => store.offset().await?,
                false => store.poll_offset(OFFSET_POLL).await?,
            };
            if offset >= position {
                return Ok(true);
            }
            if last {
                return Ok(false);
            }
            if tokio::time::Instant::now() < poll {
                // The sender is gone (cannot happen while `store` lives): poll instead.
                tokio::time::sleep_until(poll).await;
            }
        }
    }
}

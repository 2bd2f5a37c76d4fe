//! Applies the event log to SQL projections, in order, resumable, once per event even with
//! several instances (see `store`). Projections are disposable: `reset` + replay rebuilds
//! them from the log alone.

pub mod plan;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::watch;

pub use store::{PgProjections, ProjectionError, ProjectionStore, SqliteProjections};

use crate::ledger::EventLog;
use crate::metrics::{Metrics, ProjectionLabel};

const BATCH: usize = 512;
/// Fallback poll when no wake-up arrives (events written by another instance are also
/// seen through the log subscription; this bounds the delay if that drops).
const IDLE_POLL: Duration = Duration::from_millis(500);

pub struct Projector {
    store: Arc<dyn ProjectionStore>,
    log: Arc<dyn EventLog>,
    metrics: Metrics,
}

impl Projector {
    pub fn new(store: Arc<dyn ProjectionStore>, log: Arc<dyn EventLog>, metrics: Metrics) -> Self {
        Projector {
            store,
            log,
            metrics,
        }
    }

    /// Applies everything currently in the log; returns the number of events applied.
    pub async fn catch_up(&self) -> Result<u64, ProjectionError> {
        let mut total = 0;
        loop {
            let n = self.store.catch_up(self.log.as_ref(), BATCH).await?;
            total += n;
            if n == 0 {
                return Ok(total);
            }
        }
    }

    /// Runs until `shutdown` turns true: catch up, then follow the log.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut wake = match self.log.head().await {
            Ok(head) => self.log.subscribe(head + 1).await.ok(),
            Err(_) => None,
        };
        loop {
            if *shutdown.borrow() {
                return;
            }
            match self.catch_up().await {
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "projector could not apply events; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = shutdown.changed() => {}
                    }
                    continue;
                }
            }
            self.record_lag().await;
            let next = async {
                match wake.as_mut() {
                    Some(w) => w.next().await.map(|_| ()),
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                r = next => {
                    if r.is_none() {
                        wake = None;
                    }
                }
                _ = tokio::time::sleep(IDLE_POLL) => {}
                _ = shutdown.changed() => {}
            }
        }
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

/// Waits (bounded) until the projections include `position` (read-your-writes).
pub async fn wait_for(
    store: &dyn ProjectionStore,
    position: u64,
    timeout: Duration,
) -> Result<bool, ProjectionError> {
    let deadline = tokio::time::Instant::now() + timeout;
    // The projector usually applies an event within a millisecond or two: poll fast first,
    // then back off (a fixed 20 ms sleep put a 20 ms floor under every write's answer).
    let mut pause = Duration::from_millis(1);
    loop {
        if store.offset().await? >= position {
            return Ok(true);
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

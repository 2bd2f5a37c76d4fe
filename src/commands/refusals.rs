//! The per-client cap on recorded refusals, for refusals decided below the edge (another
//! workspace's id, an agent asking outside its grants, a bad OAuth `state`). The edge runs
//! each request inside [`within`] with the client's budget; [`record_denial`] charges it
//! and, past the budget, records nothing and marks the request so the edge answers 429.
//!
//! [`record_denial`]: super::record_denial

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Takes one refusal from a client's budget; on refusal, how long until one is available.
pub type Charge = dyn Fn() -> Result<(), Duration> + Send + Sync;

/// One request's view of its client's refusal budget.
#[derive(Clone)]
pub struct Budget {
    charge: Arc<Charge>,
    exceeded: Arc<AtomicBool>,
    wait: Arc<Mutex<Duration>>,
}

impl Budget {
    pub fn new(charge: Arc<Charge>) -> Self {
        Budget {
            charge,
            exceeded: Arc::new(AtomicBool::new(false)),
            wait: Arc::new(Mutex::new(Duration::ZERO)),
        }
    }

    /// Whether a refusal of this request went past the budget, and how long to wait.
    pub fn exceeded(&self) -> Option<Duration> {
        if !self.exceeded.load(Ordering::Acquire) {
            return None;
        }
        Some(
            self.wait
                .lock()
                .map(|w| *w)
                .unwrap_or(Duration::from_secs(1)),
        )
    }

    fn take(&self) -> bool {
        match (self.charge)() {
            Ok(()) => true,
            Err(wait) => {
                if let Ok(mut w) = self.wait.lock() {
                    *w = wait;
                }
                self.exceeded.store(true, Ordering::Release);
                false
            }
        }
    }
}

tokio::task_local! {
    static BUDGET: Budget;
}

/// Runs `f` (a request) with `budget` as its client's refusal budget.
pub async fn within<F: std::future::Future>(budget: Budget, f: F) -> F::Output {
    BUDGET.scope(budget, f).await
}

/// Charges the current request's refusal budget: `false` when it is spent (record nothing).
/// Outside a request (CLI, jobs) there is no budget and every refusal is recorded.
pub fn charge() -> bool {
    BUDGET.try_with(Budget::take).unwrap_or(true)
}

/// The current request's refusal budget, to carry into a task the request spawns.
pub fn current() -> Option<Budget> {
    BUDGET.try_with(Budget::clone).ok()
}

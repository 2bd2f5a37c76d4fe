//! Read-your-writes across requests: the log position a caller's writes reached. Every write
//! waits for its projections in `wait_for_write`, which notes the position here; a face runs
//! each request inside [`track`] and hands the highest position back to the caller (HTTP:
//! the `Authledger-Position` header). Errors count too: a refusal that wrote (an approval
//! request, a recorded upstream timeout) answers its position like a success.

use std::cell::Cell;
use std::future::Future;

tokio::task_local! {
    static REACHED: Cell<u64>;
}

/// Runs `request` and returns its output with the highest position its writes reached
/// (0: it wrote nothing).
pub async fn track<F: Future>(request: F) -> (F::Output, u64) {
    REACHED
        .scope(Cell::new(0), async {
            let out = request.await;
            (out, REACHED.with(Cell::get))
        })
        .await
}

/// Notes that a write reached `position` (no-op outside [`track`]).
pub fn reached(position: u64) {
    let _ = REACHED.try_with(|p| p.set(p.get().max(position)));
}

//! The HTTP server: binds the API's router to a listener with the service's background
//! jobs (projector, proactive refresh, signed checkpoints) and the request budgets the
//! edge enforces (rate limiters). The mini-redis shape: `serve(state, settings, listener,
//! shutdown)`, so tests bind `127.0.0.1:0`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::api::ratelimit::Limits;
use crate::app::{AppError, AppState};
use crate::projector::Projector;

/// What the server adds to the services: request budgets and the checkpoint job's schedule.
pub struct ServerSettings {
    pub limits: Arc<Limits>,
    /// When signed checkpoints are appended (`None`: never).
    pub checkpoint_schedule: Option<cron::Schedule>,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            limits: Arc::default(),
            checkpoint_schedule: crate::scheduler::parse_schedule(
                crate::audit::checkpoints::DEFAULT_CHECKPOINT_SCHEDULE,
            )
            .ok(),
        }
    }
}

/// Serves the API on `listener` until `shutdown` resolves; the projector runs alongside.
/// In-flight requests (and so in-flight appends) finish before this returns.
pub async fn serve(
    state: AppState,
    settings: ServerSettings,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), AppError> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let projector = Projector::new(
        state.projections.clone(),
        state.log.clone(),
        state.metrics.clone(),
    )
    .reporting_to(state.projection_health.clone());
    // Catch up before the first request: authentication reads the projections, and a key
    // created before this start (the first-run admin key among them) must work at once.
    if let Err(e) = projector.catch_up().await {
        tracing::warn!(error = %e, "projections could not catch up at start; serving while they retry");
    }
    let scheduler_task = state.connections.refresh_schedule.clone().map(|schedule| {
        tokio::spawn(crate::scheduler::run_refresh_scheduler(
            state.clone(),
            schedule,
            stop_rx.clone(),
        ))
    });
    let checkpoint_task = settings.checkpoint_schedule.map(|schedule| {
        tokio::spawn(crate::audit::checkpoints::run_checkpointer(
            state.clone(),
            schedule,
            stop_rx.clone(),
        ))
    });
    let projector_task = tokio::spawn(projector.run(stop_rx));
    let addr: Option<SocketAddr> = listener.local_addr().ok();
    tracing::info!(?addr, log = %state.log.describe(), projections = %state.projections.describe(), "serving");
    let router = crate::api::router(state, settings.limits);
    let result = axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await;
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(10), projector_task).await;
    for task in [scheduler_task, checkpoint_task].into_iter().flatten() {
        let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
    }
    result.map_err(|e| AppError::Io(format!("server error: {e}")))
}

//! The HTTP server: binds the API's router to a listener with the service's background
//! jobs (projector, proactive refresh, signed checkpoints), the request budgets the edge
//! enforces (rate limiters) and the connection limits (header-read and idle timeouts, a
//! cap on open connections). The mini-redis shape: `serve(state, settings, listener,
//! shutdown)`, so tests bind `127.0.0.1:0`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::{watch, Semaphore};
use tower::Service as _;
use tower_http::timeout::TimeoutBody;

use crate::api::ratelimit::Limits;
use crate::app::{AppError, AppState};
use crate::projector::Projector;

/// What the server adds to the services: request budgets and the checkpoint job's schedule.
pub struct ServerSettings {
    pub limits: Arc<Limits>,
    /// When signed checkpoints are appended (`None`: never).
    pub checkpoint_schedule: Option<cron::Schedule>,
    pub connections: ConnectionLimits,
}

/// What one client connection may hold.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// A connection must send a complete request head within this time: from its opening,
    /// and again after each answer (so it is also how long a kept-alive connection may sit
    /// idle between requests). A silent socket is closed when it runs out.
    pub header_read_timeout: Duration,
    /// A request body that sends nothing for this long is cut off (the request fails and
    /// the connection closes).
    pub idle_timeout: Duration,
    /// Open connections at most; past it new connections wait in the listen backlog until
    /// one closes.
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1024,
        }
    }
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            connections: ConnectionLimits::default(),
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
    let sweeper_task = tokio::spawn(crate::scheduler::run_idempotency_sweeper(
        state.clone(),
        crate::scheduler::IDEMPOTENCY_SWEEP,
        stop_rx.clone(),
    ));
    let projector_task = tokio::spawn(projector.run(stop_rx));
    let addr: Option<SocketAddr> = listener.local_addr().ok();
    tracing::info!(?addr, log = %state.log.describe(), projections = %state.projections.describe(), "serving");
    let router =
        crate::api::router(state.clone(), settings.limits).merge(crate::console::router(state));
    accept_loop(listener, router, settings.connections, shutdown).await;
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(10), projector_task).await;
    for task in [scheduler_task, checkpoint_task, Some(sweeper_task)]
        .into_iter()
        .flatten()
    {
        let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
    }
    Ok(())
}

/// Serves each accepted connection (HTTP/1.1) in its own task, within `limits`; on
/// `shutdown`, stops accepting and waits for the open connections to finish their requests.
async fn accept_loop(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    limits: ConnectionLimits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    tokio::pin!(shutdown);
    loop {
        // Take a connection slot before accepting: past the cap, clients wait in the backlog.
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    use std::io::ErrorKind as K;
                    // A client gave up before we took it: nothing to do. Out of file
                    // descriptors and the like: wait a little, do not spin.
                    if !matches!(e.kind(), K::ConnectionAborted | K::ConnectionReset) {
                        tracing::warn!(error = %e, "cannot accept a connection");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let router = router.clone();
        let idle = limits.idle_timeout;
        let service =
            hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let mut req = req.map(|body| TimeoutBody::new(idle, body));
                req.extensions_mut().insert(ConnectInfo(peer));
                router.clone().call(req)
            });
        let conn = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

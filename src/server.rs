//! The HTTP server: binds the API's router to a listener with the service's background
//! jobs (projector, proactive refresh, signed checkpoints), the request budgets the edge
//! enforces (rate limiters) and the connection limits (header-read and idle timeouts, a
//! cap on open connections) and the graceful stop (drain in-flight requests within a grace
//! period). The mini-redis shape: `serve(state, settings, listener, shutdown)`, so tests
//! bind `127.0.0.1:0`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::{watch, Semaphore};
use tower::Service as _;
use tower_http::timeout::TimeoutBody;

use crate::api::problem::Problem;
use crate::api::ratelimit::Limits;
use crate::api::request_log;
use crate::app::{AppError, AppState};
use crate::projector::Projector;

/// What the server adds to the services: request budgets and the checkpoint job's schedule.
pub struct ServerSettings {
    pub limits: Arc<Limits>,
    /// When signed checkpoints are appended (`None`: never).
    pub checkpoint_schedule: Option<cron::Schedule>,
    pub connections: ConnectionLimits,
    /// The SIEM feed's syslog sink (`None`: no feed).
    pub syslog: Option<crate::siem::SyslogSink>,
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
    /// On a stop (SIGTERM), how long requests already running may take to finish; new ones
    /// are answered 503 meanwhile. Past it the rest are cut off.
    pub shutdown_grace: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1024,
            shutdown_grace: Duration::from_secs(30),
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
            syslog: None,
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
    let webhooks_task = tokio::spawn(crate::webhooks::run(state.clone(), stop_rx.clone()));
    let syslog_task = settings
        .syslog
        .map(|sink| tokio::spawn(crate::siem::run(state.clone(), sink, stop_rx.clone())));
    let expiry_task = tokio::spawn(crate::scheduler::run_dynamic_credential_expiry(
        state.clone(),
        crate::scheduler::DYNAMIC_CREDENTIAL_SWEEP,
        stop_rx.clone(),
    ));
    let recovery_task = tokio::spawn(crate::scheduler::run_tool_call_recovery(
        state.clone(),
        crate::scheduler::TOOL_CALL_RECOVERY_SWEEP,
        stop_rx.clone(),
    ));
    let give_back_task = tokio::spawn(crate::scheduler::run_memory_give_back(
        crate::scheduler::MEMORY_GIVE_BACK,
        stop_rx.clone(),
    ));
    let gateway_state = state.clone();
    let projector_task = tokio::spawn(projector.run(stop_rx));
    let addr: Option<SocketAddr> = listener.local_addr().ok();
    tracing::info!(?addr, log = %state.log.describe(), projections = %state.projections.describe(), "serving");
    settings.limits.count_refusals_in(&state.metrics);
    let metrics = state.metrics.clone();
    let router = crate::api::router(state.clone(), settings.limits.clone())
        .merge(crate::console::router(state.clone()))
        .merge(crate::portal::router(state, settings.limits))
        .route_layer(axum::middleware::from_fn(request_log::note_route))
        .layer(axum::middleware::from_fn_with_state(
            metrics,
            request_log::layer,
        ));
    accept_loop(listener, router, settings.connections, shutdown).await;
    // Answered tool calls whose `tool.completed` is still being appended.
    gateway_state
        .gateway
        .completions
        .settled(Duration::from_secs(10))
        .await;
    // The projector applies what the log holds (those appends too), then stops.
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(10), projector_task).await;
    for task in [
        scheduler_task,
        checkpoint_task,
        Some(sweeper_task),
        Some(webhooks_task),
        syslog_task,
        Some(expiry_task),
        Some(recovery_task),
        Some(give_back_task),
    ]
    .into_iter()
    .flatten()
    {
        let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
    }
    Ok(())
}

/// The requests running now, and whether the server is stopping (then new requests are
/// refused and not counted).
#[derive(Default)]
struct Drain {
    stopping: AtomicBool,
    in_flight: AtomicUsize,
}

/// One running request: counted until dropped (answered, or cut off with its connection).
struct Running(Arc<Drain>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Drain {
    /// A new request: counted, or `None` once the server is stopping. Counted before the
    /// check, so `settled` never misses a request that got in.
    fn enter(self: &Arc<Self>) -> Option<Running> {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let running = Running(self.clone());
        (!self.stopping.load(Ordering::SeqCst)).then_some(running)
    }

    /// Refuses new requests from now on, then waits until the running ones have finished or
    /// `grace` is over: the deadline of the stop.
    async fn stop(&self, grace: Duration) -> tokio::time::Instant {
        let deadline = tokio::time::Instant::now() + grace;
        self.stopping.store(true, Ordering::SeqCst);
        tracing::info!(
            in_flight = self.in_flight.load(Ordering::SeqCst),
            grace_secs = grace.as_secs_f64(),
            "stopping: new requests are answered 503, running ones may finish"
        );
        while self.in_flight.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        deadline
    }
}

/// What a stopping server answers a new request (its `/readyz` too): nothing was done, try
/// again (another instance, or this one after its restart).
fn stopping() -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let mut response = Problem::new(
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "Service unavailable",
        Some("this instance is shutting down; nothing was done, retry".to_string()),
    )
    .into_response();
    let headers = response.headers_mut();
    headers.insert(
        axum::http::header::RETRY_AFTER,
        axum::http::HeaderValue::from_static("1"),
    );
    // The client's next request should open a new connection (to a live instance).
    headers.insert(
        axum::http::header::CONNECTION,
        axum::http::HeaderValue::from_static("close"),
    );
    response
}

/// Serves each accepted connection (HTTP/1.1) in its own task, within `limits`. On
/// `shutdown`: new requests are answered 503 while the running ones finish (up to
/// `limits.shutdown_grace`); then the listener closes (new connections are refused), idle
/// connections are closed and what still runs at the end of the grace period is cut off.
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
    let drain = Arc::new(Drain::default());
    let stopped = {
        let drain = drain.clone();
        async move {
            shutdown.await;
            drain.stop(limits.shutdown_grace).await
        }
    };
    tokio::pin!(stopped);
    let deadline = loop {
        // Take a connection slot before accepting: past the cap, clients wait in the backlog.
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break tokio::time::Instant::now() + limits.shutdown_grace,
            },
            deadline = &mut stopped => break deadline,
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
            deadline = &mut stopped => break deadline,
        };
        let (router, drain) = (router.clone(), drain.clone());
        let idle = limits.idle_timeout;
        let service =
            hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let mut req = req.map(|body| TimeoutBody::new(idle, body));
                req.extensions_mut().insert(ConnectInfo(peer));
                let (mut router, running) = (router.clone(), drain.enter());
                async move {
                    match running {
                        Some(_running) => router.call(req).await,
                        None => {
                            let mut response = stopping();
                            let id = request_log::request_id(
                                req.headers().get(&request_log::REQUEST_ID),
                            );
                            response.headers_mut().insert(request_log::REQUEST_ID, id);
                            Ok(response)
                        }
                    }
                }
            });
        let conn = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
            drop(permit);
        });
    };
    drop(listener);
    // Idle connections close now; one still answering closes after its answer.
    if tokio::time::timeout_at(deadline, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            in_flight = drain.in_flight.load(Ordering::SeqCst),
            "the grace period is over: requests still running are cut off"
        );
    }
}

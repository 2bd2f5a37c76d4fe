//! Webhook delivery, driven from the log: each endpoint has a durable cursor (a log
//! position, in `webhook_cursors` beside the projections) and receives its workspace's
//! events after it, in log order, one at a time: the next event is sent only once the one
//! before it was answered 2xx (at-least-once; a receiver dedupes by `webhook-id`, the
//! event id). The body is the event's audit view (`AuditEventRow::view`: `event_id`,
//! `kind`, `position`, never a secret), read from the audit projection, which the
//! projector fills in log order.
//!
//! Several instances: an endpoint's cursor is claimed by a lease (a conditional `UPDATE`
//! that succeeds only when the lease is free, expired or already ours), and every move of
//! the cursor is conditional on still holding it at the same generation. We claim through
//! the projection rather than the log because the cursor moves once per delivery: an
//! event per attempt would grow the log with every retry of a broken receiver, and the
//! row is what readers of `/deliveries` need anyway. An instance that dies mid-delivery
//! leaves its lease to expire ([`LEASE`]); the next holder sends that event again (the
//! at-least-once case).
//!
//! Failures are retried on an exponential schedule with jitter (`signature::backoff`,
//! driven by the service's `Clock`); an endpoint failing for [`signature::GIVE_UP_AFTER`]
//! is disabled (`webhook.disabled`, recorded by the system). Outbound calls go through
//! `net::HttpClient` (the destination policy; no redirects, no proxy) with a timeout.

pub mod signature;

use std::time::{Duration, Instant};

use rand::Rng as _;
use secrecy::ExposeSecret as _;
use tokio::sync::watch;

use crate::app::AppState;
use crate::commands::webhooks::open_secret;
use crate::domain::webhook::{Webhook, WebhookCommand};
use crate::domain::WebhookDisabled;
use crate::ledger::Actor;
use crate::metrics::ResultLabel;
use crate::net::HttpClient;
use crate::projector::plan::rfc3339;
use crate::projector::store::reads::{CursorRow, DeliveryRow, Lease, Retry, WebhookRow};
use crate::projector::store::{AuditEventRow, AuditFilter};

/// How often each instance looks for work.
pub const TICK: Duration = Duration::from_millis(250);
/// The pause after a round that failed.
const AFTER_ERROR: Duration = Duration::from_secs(2);
/// How long a claim on an endpoint lasts without renewal (renewed before every attempt;
/// longer than an attempt's timeout).
pub const LEASE: Duration = Duration::from_secs(30);
/// One attempt's limit (connect, send, answer).
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// Events read per endpoint per round.
const BATCH: i64 = 50;
/// The error text kept per failed attempt, at most.
const MAX_ERROR: usize = 300;

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error(transparent)]
    Projection(#[from] crate::projector::ProjectionError),
    #[error(transparent)]
    Command(#[from] crate::commands::CommandError),
    #[error(transparent)]
    Ledger(#[from] crate::ledger::LedgerError),
    #[error("cannot build the webhook client: {0}")]
    Client(String),
}

/// The delivery client: the destination policy's, a timeout per attempt, never a redirect.
pub fn client(state: &AppState) -> Result<HttpClient, WebhookError> {
    HttpClient::new(&state.destinations, |b| {
        b.user_agent(concat!("authledger-webhooks/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(TIMEOUT)
            .timeout(TIMEOUT)
    })
    .map_err(|e| WebhookError::Client(e.to_string()))
}

/// Delivers until `stop` turns true. Every instance runs this.
pub async fn run(state: AppState, mut stop: watch::Receiver<bool>) {
    let client = match client(&state) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "webhook delivery is not running");
            return;
        }
    };
    let owner = uuid::Uuid::now_v7().to_string();
    // The endpoints whose lag this instance reports (dropped when they turn off).
    let mut reported = std::collections::HashSet::new();
    loop {
        // A failing round (the projections unreachable) waits longer before the next.
        let pause = match round(&state, &client, &owner, &mut reported).await {
            Ok(()) => TICK,
            Err(e) => {
                tracing::warn!(error = %e, "webhook delivery round failed; trying again");
                AFTER_ERROR
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
    }
}

/// One pass over every endpoint that is on, side by side (a slow receiver does not hold up
/// the others).
async fn round(
    state: &AppState,
    client: &HttpClient,
    owner: &str,
    reported: &mut std::collections::HashSet<String>,
) -> Result<(), WebhookError> {
    let endpoints = state.projections.deliverable_webhooks().await?;
    let on: std::collections::HashSet<String> = endpoints.iter().map(|r| r.id.clone()).collect();
    for gone in reported.difference(&on) {
        state.metrics.forget_webhook(gone);
    }
    *reported = on;
    let work = endpoints.iter().map(|row| async move {
        if let Err(e) = endpoint(state, client, owner, row).await {
            tracing::warn!(error = %e, webhook = %row.id, "webhook delivery failed");
        }
    });
    futures::future::join_all(work).await;
    Ok(())
}

fn millis(t: time::OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// Claims (or renews) the endpoint's lease: its cursor while we hold it.
async fn claim(
    state: &AppState,
    row: &WebhookRow,
    owner: &str,
) -> Result<Option<CursorRow>, WebhookError> {
    let now = millis(state.clock.now());
    let lease = Lease {
        owner,
        now_ms: now,
        until_ms: now.saturating_add(i64::try_from(LEASE.as_millis()).unwrap_or(i64::MAX)),
    };
    Ok(state
        .projections
        .claim_cursor(&row.workspace_id, &row.id, lease)
        .await?)
}

async fn endpoint(
    state: &AppState,
    client: &HttpClient,
    owner: &str,
    row: &WebhookRow,
) -> Result<(), WebhookError> {
    let (ws, id) = (row.workspace_id.as_str(), row.id.as_str());
    // Reads first: an endpoint with nothing due is not claimed (no write per round).
    let Some(seen) = state.projections.cursor(ws, id).await? else {
        state
            .projections
            .ensure_cursor(ws, id, row.created_position)
            .await?;
        return Ok(());
    };
    let next = AuditFilter {
        cursor_position: Some(seen.position),
        limit: 1,
        ..AuditFilter::default()
    };
    let due = state.projections.audit_events(ws, &next).await?;
    record_lag(state, id, due.first()).await;
    if due.is_empty() || seen.next_attempt_at > state.clock.now().unix_timestamp() {
        return Ok(());
    }
    let Some(cursor) = claim(state, row, owner).await? else {
        return Ok(());
    };
    let outcome = deliver_due(state, client, owner, row, cursor).await;
    state.projections.release_cursor(ws, id, owner).await?;
    outcome
}

/// `webhook_lag_events`: events appended since `oldest_due` (the first event after the
/// endpoint's cursor), counting it; 0 when none is due.
async fn record_lag(state: &AppState, id: &str, oldest_due: Option<&AuditEventRow>) {
    let lag = match oldest_due {
        None => 0,
        Some(event) => match state.log.head().await {
            Ok(head) => head.saturating_sub(u64::try_from(event.position).unwrap_or(0)) + 1,
            Err(_) => return,
        },
    };
    state.metrics.webhook_lag(id, lag);
}

/// Sends the endpoint's due events, in order, while we hold its cursor.
async fn deliver_due(
    state: &AppState,
    client: &HttpClient,
    owner: &str,
    row: &WebhookRow,
    cursor: CursorRow,
) -> Result<(), WebhookError> {
    let (ws, id) = (row.workspace_id.as_str(), row.id.as_str());
    if cursor.next_attempt_at > state.clock.now().unix_timestamp() {
        return Ok(());
    }
    let webhook: Webhook = state.ledger.load(ws, id).await?;
    if !webhook.enabled || webhook.deleted {
        return Ok(());
    }
    let filter = AuditFilter {
        cursor_position: Some(cursor.position),
        limit: BATCH,
        ..AuditFilter::default()
    };
    let events = state.projections.audit_events(ws, &filter).await?;
    let generation = cursor.generation;
    // Events the endpoint does not want are passed over in one move of the cursor.
    let mut passed_over: Option<i64> = None;
    for event in events {
        if !Webhook::wants(&webhook.events, &event.kind) {
            passed_over = Some(event.position);
            continue;
        }
        if let Some(position) = passed_over.take() {
            if !state
                .projections
                .advance_cursor(ws, id, owner, generation, position)
                .await?
            {
                return Ok(());
            }
        }
        // Renewed before every attempt; a rewind (replay) or another holder stops us.
        let cursor = match claim(state, row, owner).await? {
            Some(c) if c.generation == generation && c.position < event.position => c,
            _ => return Ok(()),
        };
        let attempt = cursor.attempt + 1;
        let now = state.clock.now();
        let (code, error, latency_ms) = send(state, client, &webhook, (ws, id), &event).await?;
        state
            .projections
            .record_delivery(
                ws,
                id,
                &DeliveryRow {
                    event_id: event.event_id.clone(),
                    position: event.position,
                    kind: event.kind.clone(),
                    attempt,
                    status: if error.is_none() {
                        "delivered"
                    } else {
                        "failed"
                    }
                    .into(),
                    response_code: code.map(i64::from),
                    latency_ms,
                    error: error.clone(),
                    attempted_at: rfc3339(now),
                },
            )
            .await?;
        let Some(error) = error else {
            if !state
                .projections
                .advance_cursor(ws, id, owner, generation, event.position)
                .await?
            {
                return Ok(());
            }
            continue;
        };
        failed(state, owner, row, &cursor, event.position, attempt, error).await?;
        return Ok(());
    }
    if let Some(position) = passed_over {
        state
            .projections
            .advance_cursor(ws, id, owner, generation, position)
            .await?;
    }
    Ok(())
}

/// One signed delivery attempt of `event` to the endpoint: the answer's status, the error
/// (a non-2xx answer or a failure to send), the latency in milliseconds.
async fn send(
    state: &AppState,
    client: &HttpClient,
    webhook: &Webhook,
    (ws, id): (&str, &str),
    event: &AuditEventRow,
) -> Result<(Option<u16>, Option<String>, i64), WebhookError> {
    let body = serde_json::to_vec(&event.view()).unwrap_or_default();
    let now = state.clock.now();
    let mut keys = Vec::new();
    for sealed in webhook.signing_secrets(now) {
        let secret = open_secret(state, ws, id, sealed).await?;
        keys.extend(signature::secret_key(secret.expose_secret()));
    }
    let timestamp = now.unix_timestamp();
    let started = Instant::now();
    let sent = client
        .request(reqwest::Method::POST, &webhook.url)
        .map_err(|refused| refused.to_string());
    let answer = match sent {
        Ok(request) => request
            .header("content-type", "application/json")
            .header("webhook-id", &event.event_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header(
                "webhook-signature",
                signature::signature_header(&keys, &event.event_id, timestamp, &body),
            )
            .body(body)
            .send()
            .await
            .map_err(|e| crate::net::client::failure(&e)),
        Err(refused) => Err(refused),
    };
    let elapsed = started.elapsed();
    let latency_ms = i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX);
    let (code, error) = match &answer {
        Ok(r) if r.status().is_success() => (Some(r.status().as_u16()), None),
        Ok(r) => (
            Some(r.status().as_u16()),
            Some(format!("HTTP {}", r.status())),
        ),
        Err(e) => (None, Some(e.chars().take(MAX_ERROR).collect::<String>())),
    };
    let result = if error.is_none() {
        "delivered"
    } else {
        "failed"
    };
    state
        .metrics
        .webhook_deliveries
        .get_or_create(&ResultLabel { result })
        .inc();
    state
        .metrics
        .webhook_delivery_seconds
        .observe(elapsed.as_secs_f64());
    Ok((code, error, latency_ms))
}

/// A failed attempt: the next one on the schedule, or, past it, the endpoint disabled.
async fn failed(
    state: &AppState,
    owner: &str,
    row: &WebhookRow,
    cursor: &CursorRow,
    position: i64,
    attempt: i64,
    error: String,
) -> Result<(), WebhookError> {
    let (ws, id) = (row.workspace_id.as_str(), row.id.as_str());
    let now = state.clock.now();
    let failing_since = cursor.failing_since.unwrap_or(now.unix_timestamp());
    let failed_for = now.unix_timestamp().saturating_sub(failing_since);
    let give_up = i64::try_from(signature::GIVE_UP_AFTER.as_secs()).unwrap_or(i64::MAX);
    let delay = signature::backoff(
        u32::try_from(attempt).unwrap_or(u32::MAX),
        rand::thread_rng().gen::<f64>(),
    );
    let retry = Retry {
        attempt,
        failing_since,
        next_attempt_at: now
            .unix_timestamp()
            .saturating_add(i64::try_from(delay.as_secs()).unwrap_or(i64::MAX)),
    };
    if !state
        .projections
        .retry_later(ws, id, owner, cursor.generation, retry)
        .await?
    {
        return Ok(());
    }
    if failed_for < give_up {
        return Ok(());
    }
    let disable = WebhookCommand::Disable(WebhookDisabled {
        position: u64::try_from(position).unwrap_or_default(),
        attempts: u32::try_from(attempt).unwrap_or(u32::MAX),
        failing_since: time::OffsetDateTime::from_unix_timestamp(failing_since).unwrap_or(now),
        reason: error,
    });
    match state
        .ledger
        .execute::<Webhook>(ws, id, &Actor::system("webhooks"), &disable)
        .await
    {
        // Already off (turned off meanwhile, or by another instance): nothing to record.
        Err(crate::ledger::LedgerError::Domain(_)) => Ok(()),
        Err(e) => Err(e.into()),
        Ok(_) => {
            tracing::warn!(webhook = %id, workspace = %ws, "webhook disabled: delivery failed for the whole retry schedule");
            Ok(())
        }
    }
}

//! Single-flight refresh: the refresh lease is the aggregate version; losers adopt the
//! winner's outcome instead of calling the provider again.

use super::provider::{open_client, seal_tokens};
use super::*;

/// How a refresh request ended (for this caller, whether it refreshed or adopted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// New tokens; `by_this_call` is false when another refresh's result was adopted.
    Refreshed { by_this_call: bool },
    /// The round failed on transient errors; the connection stays active until expiry.
    Failed { error: String },
    /// The grant is dead (e.g. `invalid_grant`): the connection is expired.
    Expired { reason: String },
}

/// Refreshes a connection's tokens, at most once at a time: concurrent callers (on this
/// instance or another) adopt the outcome of the round in flight instead of calling the
/// provider again.
pub async fn refresh(
    state: &AppState,
    workspace_id: &str,
    id: &str,
    actor: &Actor,
    trigger: RefreshTrigger,
) -> Result<RefreshOutcome, CommandError> {
    let seen = load::<Connection>(state, workspace_id, id)
        .await?
        .filter(Connection::exists)
        .ok_or(CommandError::Domain(DomainError::NotFound("connection")))?
        .refresh_rounds;
    refresh_after(state, workspace_id, id, actor, trigger, seen).await
}

/// `refresh`, for a caller that decided to refresh on the state it read with `seen` rounds:
/// a round that ended since then (on any instance) is adopted, not repeated.
pub async fn refresh_after(
    state: &AppState,
    workspace_id: &str,
    id: &str,
    actor: &Actor,
    trigger: RefreshTrigger,
    seen: u64,
) -> Result<RefreshOutcome, CommandError> {
    let not_found = || CommandError::Domain(DomainError::NotFound("connection"));
    // Nothing to attempt (and so nothing to record) while the auth config is unusable.
    let conn_config = load::<Connection>(state, workspace_id, id)
        .await?
        .map(|c| c.auth_config_id)
        .unwrap_or_default();
    usable_auth_config(state, workspace_id, &conn_config).await?;
    let lock = state.refresh_locks.get(&format!("{workspace_id}/{id}"));
    let _guard = lock.lock().await;
    let lease = state.connections.lease();
    let give_up = state.clock.now() + lease + time::Duration::seconds(5);
    loop {
        let conn = load::<Connection>(state, workspace_id, id)
            .await?
            .filter(Connection::exists)
            .ok_or_else(not_found)?;
        if conn.refresh_rounds != seen {
            // Another caller's round (maybe on another instance): answer once the
            // projections show its outcome, like the caller that ran it.
            adopted_visible(state, workspace_id, id).await?;
            return Ok(adopted(&conn));
        }
        let now = state.clock.now();
        if conn.refresh_in_flight(now) {
            if now > give_up {
                return Err(DomainError::Rejected(
                    "a refresh is in flight elsewhere; retry later".into(),
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        let command = ConnectionCommand::StartRefresh {
            now,
            seen_rounds: seen,
            started: RefreshStarted {
                trigger,
                lease_expires_at: now + lease,
            },
        };
        match state
            .ledger
            .execute::<Connection>(workspace_id, id, actor, &command)
            .await
        {
            Ok(_) => {
                let outcome = run_refresh(state, workspace_id, id, actor).await;
                if let Ok(o) = &outcome {
                    count(state, o);
                }
                return outcome;
            }
            Err(LedgerError::Domain(DomainError::Rejected(reason))) => {
                // Another round started or ended meanwhile: look again; anything else
                // (not active, no refresh token) is the answer.
                let again = load::<Connection>(state, workspace_id, id)
                    .await?
                    .ok_or_else(not_found)?;
                if again.refresh_rounds == seen && !again.refresh_in_flight(state.clock.now()) {
                    return Err(DomainError::Rejected(reason).into());
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// The round this call ran, in `authledger_connection_refreshes_total` (adopted rounds are
/// counted where they ran).
fn count(state: &AppState, outcome: &RefreshOutcome) {
    let result = match outcome {
        RefreshOutcome::Refreshed { .. } => "refreshed",
        RefreshOutcome::Failed { .. } => "failed",
        RefreshOutcome::Expired { .. } => "expired",
    };
    state
        .metrics
        .refresh_outcomes
        .get_or_create(&crate::metrics::ResultLabel { result })
        .inc();
}

/// Read-your-writes for an adopted round: waits until the projections hold the
/// connection's latest event (which is at least the one that ended the round).
async fn adopted_visible(
    state: &AppState,
    workspace_id: &str,
    id: &str,
) -> Result<(), CommandError> {
    let key = crate::ledger::AggregateKey::new(
        workspace_id,
        <Connection as crate::domain::Aggregate>::TYPE,
        id,
    )
    .map_err(LedgerError::from)?;
    let last = state
        .log
        .last_of_aggregate(&key)
        .await
        .map_err(LedgerError::from)?;
    if let Some(last) = last {
        wait_for_write(state, last.position).await?;
    }
    Ok(())
}

fn adopted(conn: &Connection) -> RefreshOutcome {
    match conn.status {
        Some(ConnectionStatus::Expired) => RefreshOutcome::Expired {
            reason: conn.last_error.clone().unwrap_or_default(),
        },
        Some(ConnectionStatus::Revoked | ConnectionStatus::Deleted) => RefreshOutcome::Failed {
            error: "the connection was revoked meanwhile".into(),
        },
        _ => match &conn.last_error {
            Some(e) => RefreshOutcome::Failed { error: e.clone() },
            None => RefreshOutcome::Refreshed {
                by_this_call: false,
            },
        },
    }
}

/// Holding the lease: call the provider, retrying transient failures with backoff; every
/// attempt and the outcome are events.
/// The connection a refresh round is for, and who runs it.
#[derive(Clone, Copy)]
struct Round<'a> {
    ws: &'a str,
    id: &'a str,
    actor: &'a Actor,
}

/// The provider answered new tokens: sealed, recorded (`refresh_completed`), visible.
async fn complete_refresh(
    state: &AppState,
    Round { ws, id, actor }: Round<'_>,
    conn: &Connection,
    set: &TokenSet,
    sealed_rt: &crate::domain::auth_config::SealedSecret,
    now: OffsetDateTime,
    attempt: u32,
) -> Result<RefreshOutcome, CommandError> {
    let sealed = seal_tokens(state, ws, id, &conn.data_key_id, set, Some(sealed_rt), now).await?;
    let scopes = set.scope.clone().unwrap_or_else(|| conn.scopes.clone());
    let done = ConnectionCommand::CompleteRefresh(ConnectionRefreshed {
        scopes,
        tokens: sealed,
        refresh_token_rotated: set.refresh_token.is_some(),
        attempts: attempt,
    });
    let c = state
        .ledger
        .execute::<Connection>(ws, id, actor, &done)
        .await?;
    wait_for_write(state, c.position).await?;
    Ok(RefreshOutcome::Refreshed { by_this_call: true })
}

/// The round's last attempt failed: a dead grant (or an access token already expired)
/// expires the connection; otherwise it stays active until expiry.
async fn give_up(
    state: &AppState,
    Round { ws, id, actor }: Round<'_>,
    e: &OAuthError,
    message: String,
    expires_at: Option<OffsetDateTime>,
) -> Result<RefreshOutcome, CommandError> {
    let token_dead = expires_at.is_some_and(|exp| exp <= state.clock.now());
    let invalid_grant = matches!(e, OAuthError::InvalidGrant { .. });
    if !invalid_grant && !token_dead {
        return Ok(RefreshOutcome::Failed { error: message });
    }
    let reason = if invalid_grant {
        message
    } else {
        format!("access token expired and refresh failed: {message}")
    };
    let c = state
        .ledger
        .execute::<Connection>(
            ws,
            id,
            actor,
            &ConnectionCommand::Expire(ConnectionExpired {
                reason: reason.clone(),
            }),
        )
        .await?;
    wait_for_write(state, c.position).await?;
    Ok(RefreshOutcome::Expired { reason })
}

async fn run_refresh(
    state: &AppState,
    ws: &str,
    id: &str,
    actor: &Actor,
) -> Result<RefreshOutcome, CommandError> {
    let conn = load::<Connection>(state, ws, id)
        .await?
        .ok_or(CommandError::Domain(DomainError::NotFound("connection")))?;
    let settings = state.connections.clone();
    let attempts = settings.refresh_attempts.max(1);
    let fail = |attempt: u32, error: String, retryable: bool, is_final: bool| {
        ConnectionCommand::FailRefresh(RefreshFailed {
            attempt,
            error,
            retryable,
            is_final,
        })
    };
    let prepared = async {
        let config = usable_auth_config(state, ws, &conn.auth_config_id).await?;
        let client = open_client(state, ws, &conn.auth_config_id, &config).await?;
        let tokens = conn
            .tokens
            .clone()
            .ok_or(DomainError::Rejected("no tokens".into()))?;
        let sealed_rt = tokens
            .refresh_token
            .clone()
            .ok_or(DomainError::Rejected("no refresh token".into()))?;
        let rt = sealing::open_text(state, slot(ws, id, "refresh_token"), &sealed_rt).await?;
        Ok::<_, CommandError>((client, tokens, sealed_rt, rt))
    }
    .await;
    let (client, tokens, sealed_rt, rt) = match prepared {
        Ok(p) => p,
        Err(e) => {
            // End the round so nobody waits on a lease that cannot succeed.
            state
                .ledger
                .execute::<Connection>(ws, id, actor, &fail(1, e.to_string(), false, true))
                .await?;
            return Ok(RefreshOutcome::Failed {
                error: e.to_string(),
            });
        }
    };
    for attempt in 1..=attempts {
        let now = state.clock.now();
        let answer = state
            .oauth
            .refresh(
                &client.settings.token_url,
                &client.credentials(),
                rt.expose_secret(),
                None,
            )
            .await;
        match answer {
            Ok(set) => {
                let round = Round { ws, id, actor };
                return complete_refresh(state, round, &conn, &set, &sealed_rt, now, attempt).await;
            }
            Err(e) => {
                let retryable = e.retryable();
                let is_final = !retryable || attempt == attempts;
                let message = clip_text(&e.to_string(), 512);
                state
                    .ledger
                    .execute::<Connection>(
                        ws,
                        id,
                        actor,
                        &fail(attempt, message.clone(), retryable, is_final),
                    )
                    .await?;
                if !is_final {
                    let delay = settings.retry_base_delay * 2u32.saturating_pow(attempt - 1);
                    tokio::time::sleep(delay).await;
                    continue;
                }
                let round = Round { ws, id, actor };
                return give_up(state, round, &e, message, tokens.expires_at).await;
            }
        }
    }
    Ok(RefreshOutcome::Failed {
        error: "no attempt made".into(),
    })
}

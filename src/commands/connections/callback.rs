//! The provider's redirect back: state check (single use, bound, unexpired), code exchange,
//! sealed tokens, and where to send the end user.
//!
//! The state is claimed before the code is exchanged: of concurrent callbacks with one
//! state, one claims it and sends the code to the provider; the others are answered as
//! replays without calling the provider. The claim is held by this process until the
//! outcome is appended, and the state is checked against the log only once it is held, so
//! a callback that arrives after the winner's append sees the state used up. The claim is
//! per process: with several instances, each may send the code once (the append's version
//! check still lets exactly one callback complete the flow); a claim in the log would need
//! an event of its own before the exchange.

use std::collections::HashSet;
use std::sync::LazyLock;

use super::provider::exchange;
use super::*;

/// The states (hashes) whose callback this process is completing.
static CLAIMED: LazyLock<Mutex<HashSet<String>>> = LazyLock::new(Mutex::default);

/// One callback's hold on its state; released on drop.
struct Claim(String);

impl Claim {
    /// The hold on `state_hash`, or `None` when another callback holds it.
    fn take(state_hash: &str) -> Option<Claim> {
        let mut claimed = CLAIMED.lock().ok()?;
        claimed
            .insert(state_hash.to_string())
            .then(|| Claim(state_hash.to_string()))
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if let Ok(mut claimed) = CLAIMED.lock() {
            claimed.remove(&self.0);
        }
    }
}

/// The query of the provider's redirect back to the ledger.
#[derive(Debug, Default, Deserialize)]
pub struct CallbackQuery {
    pub state: Option<String>,
    pub code: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

/// A callback whose state names no usable connect flow (unknown, expired, used).
#[derive(Debug)]
pub struct InvalidState {
    pub workspace_id: Option<String>,
    pub connection_id: Option<String>,
}

/// Where to send the end user after the callback.
#[derive(Debug)]
pub struct CallbackOutcome {
    pub connection_id: String,
    pub status: ConnectionStatus,
    pub redirect_url: String,
    pub error: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    #[error("the state is unknown, expired or already used")]
    InvalidState(InvalidState),
    #[error(transparent)]
    Command(#[from] CommandError),
}

/// Completes a connect flow: checks the state (single use, bound to one connection, not
/// expired), exchanges the code (client auth per config, PKCE verifier), seals the tokens.
pub async fn callback(
    state: &AppState,
    query: CallbackQuery,
) -> Result<CallbackOutcome, CallbackError> {
    let unknown = || {
        CallbackError::InvalidState(InvalidState {
            workspace_id: None,
            connection_id: None,
        })
    };
    let presented = query
        .state
        .as_deref()
        .filter(|s| !s.is_empty() && s.len() <= 512);
    let Some(presented) = presented else {
        return Err(unknown());
    };
    let state_hash = oauth::state_hash(presented);
    let Some(row) = state
        .projections
        .connection_by_state_hash(&state_hash)
        .await
        .map_err(CommandError::from)?
    else {
        return Err(unknown());
    };
    let (ws, id) = (row.workspace_id.clone(), row.id.clone());
    let invalid_here = || {
        CallbackError::InvalidState(InvalidState {
            workspace_id: Some(ws.clone()),
            connection_id: Some(id.clone()),
        })
    };
    // Claimed first (held until the outcome is appended), then checked against the log:
    // the code is sent to the provider at most once per state.
    let Some(_claim) = Claim::take(&state_hash) else {
        return Err(invalid_here());
    };
    // The log, not the projection, is the authority on whether the state is still good.
    let conn = load::<Connection>(state, &ws, &id)
        .await?
        .ok_or_else(invalid_here)?;
    let now = state.clock.now();
    let state_ok = conn.status == Some(ConnectionStatus::Initiated)
        && conn.state_hash.as_deref() == Some(state_hash.as_str())
        && conn.state_expires_at.is_some_and(|exp| now < exp);
    if !state_ok {
        return Err(invalid_here());
    }
    let actor = Actor {
        actor_type: crate::ledger::ActorType::User,
        id: conn.user_id.clone(),
    };
    let redirect_url = conn.redirect_url.clone().unwrap_or_default();
    let exchanged = match (&query.error, &query.code) {
        (Some(error), _) => Err(ConnectionAuthorizationFailed {
            error: clip_text(error, 128),
            error_description: query
                .error_description
                .as_deref()
                .map(|d| clip_text(d, 512)),
        }),
        (None, None) => Err(ConnectionAuthorizationFailed {
            error: "invalid_request".into(),
            error_description: Some("the provider sent neither code nor error".into()),
        }),
        (None, Some(code)) => exchange(state, &ws, &id, &conn, code, now).await?,
    };
    let (command, status, error) = match exchanged {
        Ok(authorized) => (
            ConnectionCommand::Authorize {
                state_hash,
                now,
                authorized,
            },
            ConnectionStatus::Active,
            None,
        ),
        Err(failed) => {
            let error = failed.error.clone();
            (
                ConnectionCommand::FailAuthorization {
                    state_hash,
                    now,
                    failed,
                },
                ConnectionStatus::Error,
                Some(error),
            )
        }
    };
    match state
        .ledger
        .execute::<Connection>(&ws, &id, &actor, &command)
        .await
    {
        Ok(c) => wait_for_write(state, c.position).await?,
        // A concurrent callback with the same state won: this one is a replay.
        Err(LedgerError::Domain(DomainError::Rejected(_))) => return Err(invalid_here()),
        Err(e) => return Err(CommandError::from(e).into()),
    }
    Ok(CallbackOutcome {
        connection_id: id,
        status,
        redirect_url,
        error,
    })
}

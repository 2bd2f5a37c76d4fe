//! The provider's redirect back: state check (single use, bound, unexpired), code exchange,
//! sealed tokens, and where to send the end user.
//!
//! The state is claimed in the log before the code is exchanged
//! (`connection.authorization_started`): of concurrent callbacks with one state, on any
//! number of instances, one claims it and sends the code to the provider; the others are
//! answered as replays without calling the provider. A claim whose outcome never follows
//! (the instance died mid-exchange) leaves the flow unfinished: the user connects again.

use super::provider::exchange;
use super::*;
use crate::commands::record_denial;
use crate::domain::{AccessDenied, DenialReason};
use crate::ledger::ActorType;

/// The query of the provider's redirect back to the ledger.
#[derive(Debug, Default, Deserialize)]
pub struct CallbackQuery {
    pub state: Option<String>,
    pub code: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
    /// The flow's binding cookie from the browser (`binding`), put here by the face.
    #[serde(skip)]
    pub binding: Option<String>,
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

impl CallbackOutcome {
    /// The return URL with how the flow went: `connection_id`, `status`, and `error` when
    /// it failed.
    pub fn return_url(&self) -> Result<String, url::ParseError> {
        let mut url = url::Url::parse(&self.redirect_url)?;
        {
            let mut pairs = url.query_pairs_mut();
            pairs.append_pair("connection_id", &self.connection_id);
            pairs.append_pair("status", self.status.as_str());
            if let Some(e) = &self.error {
                pairs.append_pair("error", e);
            }
        }
        Ok(url.to_string())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    #[error("the state is unknown, expired or already used")]
    InvalidState(InvalidState),
    #[error(transparent)]
    Command(#[from] CommandError),
}

/// Claims the state in the log (`authorization_started`): only the callback whose claim is
/// appended sends the code; a concurrent one is refused (`Rejected`: a replay).
async fn claim(
    state: &AppState,
    (ws, id): (&str, &str),
    actor: &Actor,
    state_hash: &str,
    now: OffsetDateTime,
) -> Result<(), CommandError> {
    let command = ConnectionCommand::StartAuthorization {
        state_hash: state_hash.to_string(),
        now,
    };
    state
        .ledger
        .execute::<Connection>(ws, id, actor, &command)
        .await?;
    Ok(())
}

/// Completes a connect flow: checks the state (single use, bound to one connection, not
/// expired), exchanges the code (client auth per config, PKCE verifier), seals the tokens.
/// A state that names no usable flow is refused and recorded as `access.denied` on `route`
/// (method, path), by the anonymous browser that presented it.
pub async fn callback(
    state: &AppState,
    (method, route): (&str, &str),
    query: CallbackQuery,
) -> Result<CallbackOutcome, CallbackError> {
    let outcome = complete(state, query).await;
    if let Err(CallbackError::InvalidState(s)) = &outcome {
        let denial = AccessDenied {
            method: method.into(),
            route: route.into(),
            status: 400,
            reason: DenialReason::InvalidOauthState,
            target_id: s.connection_id.clone(),
        };
        let actor = Actor {
            actor_type: ActorType::Anonymous,
            id: "oauth-callback".into(),
        };
        record_denial(state, s.workspace_id.as_deref(), actor, denial).await;
    }
    outcome
}

async fn complete(
    state: &AppState,
    query: CallbackQuery,
) -> Result<CallbackOutcome, CallbackError> {
    let presented = query.state.as_deref().unwrap_or_default();
    let InitiatedFlow {
        ws,
        id,
        conn,
        state_hash,
        now,
    } = initiated_flow(state, presented)
        .await?
        .map_err(CallbackError::InvalidState)?;
    let invalid_here = || {
        CallbackError::InvalidState(InvalidState {
            workspace_id: Some(ws.clone()),
            connection_id: Some(id.clone()),
        })
    };
    // A hosted connect link (an auth config that is not OAuth) is never completed here.
    let oauth_config = load::<AuthConfig>(state, &ws, &conn.auth_config_id)
        .await?
        .is_some_and(|c| matches!(c.settings, Some(AuthSettings::Oauth2(_))));
    if !oauth_config {
        return Err(invalid_here());
    }
    let binding = query.binding.as_deref();
    if !super::binding::callback_allowed(state, (&ws, &state_hash, &conn.user_id), binding).await? {
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
        (None, Some(code)) => {
            claim(state, (&ws, &id), &actor, &state_hash, now)
                .await
                .map_err(|e| match e {
                    CommandError::Domain(DomainError::Rejected(_)) => invalid_here(),
                    other => other.into(),
                })?;
            exchange(state, &ws, &id, &conn, code, now).await?
        }
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

/// An initiated connect flow, as the log holds it now.
pub(super) struct InitiatedFlow {
    pub(super) ws: String,
    pub(super) id: String,
    pub(super) conn: Connection,
    pub(super) state_hash: String,
    pub(super) now: OffsetDateTime,
}

/// The connect flow a presented `state` (or hosted link secret) names: found by its hash
/// in the projections, then checked against the log (the authority): still initiated, this
/// hash, unexpired. Otherwise which flow it named, if any (`Ok(Err(_))`).
pub(super) async fn initiated_flow(
    state: &AppState,
    presented: &str,
) -> Result<Result<InitiatedFlow, InvalidState>, CommandError> {
    let nothing = InvalidState {
        workspace_id: None,
        connection_id: None,
    };
    if presented.is_empty() || presented.len() > 512 {
        return Ok(Err(nothing));
    }
    let state_hash = oauth::state_hash(presented);
    let Some(row) = state
        .projections
        .connection_by_state_hash(&state_hash)
        .await?
    else {
        return Ok(Err(nothing));
    };
    let (ws, id) = (row.workspace_id, row.id);
    let now = state.clock.now();
    let conn = load::<Connection>(state, &ws, &id).await?.filter(|conn| {
        conn.status == Some(ConnectionStatus::Initiated)
            && conn.state_hash.as_deref() == Some(state_hash.as_str())
            && conn.state_expires_at.is_some_and(|exp| now < exp)
    });
    Ok(match conn {
        Some(conn) => Ok(InitiatedFlow {
            ws,
            id,
            conn,
            state_hash,
            now,
        }),
        None => Err(InvalidState {
            workspace_id: Some(ws),
            connection_id: Some(id),
        }),
    })
}

//! What an authenticated caller can do, independent of HTTP: run a domain command through
//! the ledger, then wait (bounded) until the projections show it (read-your-writes).

pub mod agents;
pub mod audit;
pub mod auth_configs;
pub mod connections;
pub mod dynamic_credentials;
pub mod end_user_sign_in;
pub mod idempotency;
pub mod mcp_session;
pub mod members;
pub mod oidc_callback;
pub mod problem;
pub mod refusals;
pub mod sealing;
pub mod second_factor;
pub mod team_sso;
pub mod webhooks;
pub mod written;

pub use end_user_sign_in::{configure_identity_provider, BrowserClientId, IdentityProviderInput};

use std::time::Duration;

use secrecy::SecretString;
use uuid::Uuid;

use crate::app::AppState;
use crate::domain::access::{AccessDenied, DENIAL_AGGREGATE};
use crate::domain::api_key::{ApiKey, ApiKeyCommand, NewApiKey};
use crate::domain::{ApiKeyCreated, DomainError, Event, Role, SYSTEM_WORKSPACE};
use crate::ledger::{Actor, ActorType, AggregateKey, LedgerError};
use crate::projector::store::ApiKeyRow;
use crate::projector::{wait_for, ProjectionError};

/// How long a write waits for the projections to show it before answering anyway.
const READ_YOUR_WRITES: Duration = Duration::from_secs(5);

/// An authenticated API key, or a team member signed in to the console (`actor_type`
/// `Member`, `api_key_id` then the member's id): the commands treat both alike.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub workspace_id: String,
    pub api_key_id: String,
    pub role: Role,
    pub actor_type: ActorType,
}

impl Caller {
    pub fn actor(&self) -> Actor {
        Actor {
            actor_type: self.actor_type,
            id: self.api_key_id.clone(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error(transparent)]
    Ledger(LedgerError),
    #[error(transparent)]
    Projection(#[from] ProjectionError),
    #[error(transparent)]
    Crypto(#[from] crate::crypto::CryptoError),
    /// The write is in the log, but the projections do not show it yet: a read of it now
    /// would answer as if it had not happened.
    #[error("recorded at log position {position}, not yet visible: {reason}")]
    NotYetVisible { position: u64, reason: String },
}

/// Endpoints the service will connect to (OAuth endpoints, JWKS, tool base URLs), each
/// `(field, url)`, judged by the deployment's destination policy (`net::destination`):
/// https only (plain http to loopback only with `--allow-loopback-urls`), no user info, no
/// internal address, by address or by what the name resolves to now. A refusal is a clear
/// 422 now; the connection judges the destination again (the DNS answer may change).
pub async fn check_destinations(
    state: &AppState,
    urls: &[(&'static str, &str)],
) -> Result<(), CommandError> {
    for (field, url) in urls {
        state
            .destinations
            .check_url(url)
            .await
            .map_err(|refused| destination_refused(field, refused))?;
    }
    Ok(())
}

/// URLs the service hands out but never connects to (where a provider sends the user
/// back): their form only (https, or plain http to loopback where allowed; no user info).
pub fn check_return_urls(
    state: &AppState,
    field: &'static str,
    urls: &[&str],
) -> Result<(), CommandError> {
    for url in urls {
        state
            .destinations
            .url_form(url)
            .map_err(|refused| destination_refused(field, refused))?;
    }
    Ok(())
}

/// A host the service connects to directly (native connectors), by the same policy: a name
/// or an address, never a socket path, no internal address.
pub async fn check_destination_host(
    state: &AppState,
    field: &'static str,
    host: &str,
) -> Result<(), CommandError> {
    state
        .destinations
        .check_host(host)
        .await
        .map_err(|refused| destination_refused(field, refused))?;
    Ok(())
}

fn destination_refused(field: &'static str, refused: crate::net::Refused) -> CommandError {
    DomainError::Invalid {
        field,
        reason: refused.to_string(),
    }
    .into()
}

/// Waits (bounded) until the projections include `position`; says so when they do not
/// (with the event the projector is stuck on, if it is).
pub async fn wait_for_write(state: &AppState, position: u64) -> Result<(), CommandError> {
    written::reached(position);
    let reason = match wait_for(state.projections.as_ref(), position, READ_YOUR_WRITES).await {
        Ok(true) => return Ok(()),
        // The write is in the log whatever the read side says: never an error that reads
        // as if it failed.
        Err(e) => {
            tracing::warn!(error = %e, position, "projections unreadable after a write");
            "the projections cannot be read now".to_string()
        }
        Ok(false) => match state.projection_health.stuck() {
            Some(stuck) if stuck.position <= position => format!("the projections are {stuck}"),
            _ => format!(
                "the projections did not reach it within {}s",
                READ_YOUR_WRITES.as_secs()
            ),
        },
    };
    Err(CommandError::NotYetVisible { position, reason })
}

/// Why a read cannot be answered as of the log position its client named.
#[derive(Debug, PartialEq, Eq)]
pub enum NotReadable {
    /// The log itself has not reached the position: no write ever answered it, so waiting
    /// cannot help (a client's mistake, answered at once).
    BeyondLog { position: u64, head: u64 },
    /// The log has it; the projections did not reach it within `max_wait`.
    Lagging { position: u64 },
}

/// Waits (bounded by `max_wait`) until the projections include `position`, for a read
/// that must see a write answered earlier, maybe by another instance. A position beyond the
/// log's head is refused without waiting.
pub async fn wait_to_read(
    state: &AppState,
    position: u64,
    max_wait: Duration,
) -> Result<(), NotReadable> {
    let store = state.projections.as_ref();
    if let Ok(true) = wait_for(store, position, Duration::ZERO).await {
        return Ok(());
    }
    // The log is the authority on what was written; when it cannot be read the projections
    // may still catch up, so only a head it answered refuses the position.
    if let Ok(head) = state.log.head().await {
        if head < position {
            return Err(NotReadable::BeyondLog { position, head });
        }
    }
    match wait_for(store, position, max_wait).await {
        Ok(true) => Ok(()),
        _ => Err(NotReadable::Lagging { position }),
    }
}

impl From<LedgerError> for CommandError {
    fn from(e: LedgerError) -> Self {
        match e {
            LedgerError::Domain(d) => CommandError::Domain(d),
            other => CommandError::Ledger(other),
        }
    }
}

/// A created key: its projection row and the secret, shown once.
pub struct CreatedApiKey {
    pub row: ApiKeyRow,
    pub key: SecretString,
}

pub async fn create_api_key(
    state: &AppState,
    caller: &Caller,
    name: String,
    role: Role,
    expires_at: Option<time::OffsetDateTime>,
) -> Result<CreatedApiKey, CommandError> {
    if let Some(at) = expires_at {
        if at <= state.clock.now() {
            return Err(DomainError::Invalid {
                field: "expires_at",
                reason: "must be in the future".into(),
            }
            .into());
        }
    }
    let secret = NewApiKey::generate(&mut rand::rngs::OsRng);
    let id = Uuid::now_v7().to_string();
    let created = ApiKeyCreated {
        name,
        role,
        key_prefix: secret.key_prefix.clone(),
        key_hash: secret.key_hash.clone(),
        expires_at,
    };
    let committed = state
        .ledger
        .create::<ApiKey>(
            &caller.workspace_id,
            &id,
            &caller.actor(),
            &ApiKeyCommand::Create(created.clone()),
        )
        .await?;
    wait_for_write(state, committed.position).await?;
    let row = match state.projections.api_key(&caller.workspace_id, &id).await? {
        Some(row) => row,
        // Projections lag beyond the bound: answer from the event itself.
        None => ApiKeyRow {
            workspace_id: caller.workspace_id.clone(),
            id: id.clone(),
            name: created.name,
            role: role.as_str().to_string(),
            key_prefix: created.key_prefix,
            created_at: crate::projector::plan::rfc3339(state.clock.now()),
            expires_at: expires_at.map(crate::projector::plan::rfc3339),
            revoked_at: None,
        },
    };
    Ok(CreatedApiKey {
        row,
        key: secret.secret,
    })
}

/// Revokes a key of the caller's workspace; effective for authentication when this returns.
pub async fn revoke_api_key(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<(), CommandError> {
    // The aggregate lives under the caller's workspace: another workspace's key id names
    // an aggregate that does not exist here, so it is simply not found.
    if AggregateKey::new(&caller.workspace_id, "api_key", id).is_err() {
        return Err(DomainError::NotFound("api key").into());
    }
    let committed = state
        .ledger
        .execute::<ApiKey>(
            &caller.workspace_id,
            id,
            &caller.actor(),
            &ApiKeyCommand::Revoke { reason: None },
        )
        .await?;
    wait_for_write(state, committed.position).await?;
    Ok(())
}

/// Opts the workspace in (or out) of keeping redacted upstream response bodies in
/// `tool.completed` events.
pub async fn set_tool_response_storage(
    state: &AppState,
    caller: &Caller,
    store: bool,
) -> Result<(), CommandError> {
    change_workspace(
        state,
        caller,
        crate::domain::workspace::WorkspaceCommand::SetToolResponseStorage(store),
    )
    .await
}

/// One change to the caller's workspace aggregate, read back before the answer. A setting
/// already in force writes nothing (a repeated `PUT`, a form sent twice).
pub async fn change_workspace(
    state: &AppState,
    caller: &Caller,
    command: crate::domain::workspace::WorkspaceCommand,
) -> Result<(), CommandError> {
    use crate::domain::workspace::Workspace;
    let current: Workspace = state
        .ledger
        .load(&caller.workspace_id, &caller.workspace_id)
        .await?;
    if command.already_in_force(&current) {
        return Ok(());
    }
    let committed = state
        .ledger
        .execute::<Workspace>(
            &caller.workspace_id,
            &caller.workspace_id,
            &caller.actor(),
            &command,
        )
        .await?;
    wait_for_write(state, committed.position).await?;
    Ok(())
}

/// An end user authenticated by the workspace's identity provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndUser {
    pub workspace_id: String,
    pub user_id: String,
}

/// An id asked for that the caller's workspace does not have: charged to the client's
/// refusal budget whether it is unknown or another workspace's (both probes take the same
/// path); the latter is recorded as `access.denied`, beside the answer rather than before
/// it, so neither the answer nor its time tells them apart.
pub fn probe_of_other_workspace(
    state: &AppState,
    caller: &Caller,
    (method, route): (&str, &str),
    id: &str,
    elsewhere: bool,
) {
    if refusals::charge() && elsewhere {
        let denial = AccessDenied {
            method: method.to_string(),
            route: route.to_string(),
            status: 404,
            reason: crate::domain::DenialReason::OtherWorkspace,
            target_id: Some(crate::domain::access::sanitize(id, 128)),
        };
        let (state, workspace, actor) =
            (state.clone(), caller.workspace_id.clone(), caller.actor());
        // Outside the request's task: already charged, and the answer does not wait.
        tokio::spawn(async move {
            record_denial(&state, Some(&workspace), actor, denial).await;
        });
    }
}

/// Records a refused request. Best effort towards the caller (the refusal stands either
/// way) but never silent: a failure to record is logged.
pub async fn record_denial(
    state: &AppState,
    workspace_id: Option<&str>,
    actor: Actor,
    denial: AccessDenied,
) {
    if let Ok(serde_json::Value::String(reason)) = serde_json::to_value(denial.reason) {
        state.metrics.access_denied(&reason);
    }
    // Past the client's refusal budget nothing is recorded (the edge answers 429).
    if !refusals::charge() {
        return;
    }
    let workspace = workspace_id.unwrap_or(SYSTEM_WORKSPACE);
    let key = match AggregateKey::new(workspace, DENIAL_AGGREGATE, Uuid::now_v7().to_string()) {
        Ok(k) => k,
        Err(e) => {
            tracing::error!(error = %e, "cannot name an access-denial aggregate");
            return;
        }
    };
    if let Err(e) = state
        .ledger
        .append_first(&key, &actor, &Event::AccessDenied(denial))
        .await
    {
        tracing::error!(error = %e, "could not record an access denial in the ledger");
    }
}

//! Using a connection's credential for one upstream call: refreshed first when it is near
//! expiry (single-flight, like every refresh), then opened into a `tools::Credential` that
//! lives only for the call.

use super::*;
use crate::gateway::tools::Credential;

/// Why a connection's credential cannot be used right now.
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    /// Not in this workspace (or deleted).
    #[error("connection not found")]
    NotFound,
    #[error("the connection is {}", .0.as_str())]
    Inactive(ConnectionStatus),
    #[error("the auth config is disabled")]
    AuthConfigDisabled,
    #[error("the credential expired and could not be refreshed: {0}")]
    RefreshFailed(String),
    #[error(transparent)]
    Command(#[from] CommandError),
}

/// A connection ready for a call: its state (after any refresh) and its auth config.
pub struct UsableConnection {
    pub connection: Connection,
    pub config: AuthConfig,
}

/// Loads a connection and its auth config and checks both are usable.
pub async fn usable(
    state: &AppState,
    workspace_id: &str,
    id: &str,
) -> Result<UsableConnection, UsageError> {
    // A connection's auth config never changes: when this instance has seen the
    // connection before, both are read from the log at once.
    let known_config = state
        .ledger
        .peek::<Connection>(workspace_id, id)
        .map(|c| c.auth_config_id)
        .filter(|a| !a.is_empty());
    let (connection, config) = match &known_config {
        Some(config_id) => {
            let (c, a) = tokio::join!(
                load::<Connection>(state, workspace_id, id),
                load::<AuthConfig>(state, workspace_id, config_id)
            );
            (c?, a?)
        }
        None => (load::<Connection>(state, workspace_id, id).await?, None),
    };
    let connection = connection
        .filter(Connection::exists)
        .ok_or(UsageError::NotFound)?;
    match connection.status {
        Some(ConnectionStatus::Active) => {}
        Some(ConnectionStatus::Deleted) | None => return Err(UsageError::NotFound),
        Some(other) => return Err(UsageError::Inactive(other)),
    }
    let config = match config {
        Some(c) if known_config.as_deref() == Some(connection.auth_config_id.as_str()) => c,
        _ => load::<AuthConfig>(state, workspace_id, &connection.auth_config_id)
            .await?
            .ok_or(UsageError::NotFound)?,
    };
    if config.lifecycle != Lifecycle::Enabled {
        return Err(UsageError::AuthConfigDisabled);
    }
    Ok(UsableConnection { connection, config })
}

/// The connection's credential for a call now: an OAuth access token within the refresh
/// buffer of its expiry is refreshed first (concurrent callers share one refresh).
pub async fn credential_for_call(
    state: &AppState,
    workspace_id: &str,
    id: &str,
    actor: &Actor,
    loaded: UsableConnection,
) -> Result<(UsableConnection, Credential), UsageError> {
    // The caller has just loaded and checked the connection: read it again only if it
    // must be refreshed.
    let mut usable_now = loaded;
    let near_expiry = |c: &Connection| {
        let buffer = time::Duration::try_from(state.connections.refresh_buffer)
            .unwrap_or(time::Duration::minutes(5));
        c.tokens
            .as_ref()
            .and_then(|t| t.expires_at)
            .is_some_and(|at| at - buffer <= state.clock.now())
    };
    if near_expiry(&usable_now.connection) {
        // `refresh` joins a round still in flight, but a caller that saw the old token while
        // another caller's round ran to its end would start a round of its own right after.
        // So callers take turns here, look again, and adopt a round that ended since they
        // looked (whatever its outcome) instead of repeating it.
        let seen = usable_now.connection.refresh_rounds;
        let gate = before_use_gates().get(&format!("{workspace_id}/{id}"));
        let _turn = gate.lock().await;
        usable_now = usable(state, workspace_id, id).await?;
        let mut outcome = None;
        if usable_now.connection.refresh_rounds == seen && near_expiry(&usable_now.connection) {
            // The rounds this caller saw: a round ended since (on any instance) is adopted.
            let trigger = RefreshTrigger::BeforeUse;
            outcome = Some(refresh_after(state, workspace_id, id, actor, trigger, seen).await?);
            usable_now = usable(state, workspace_id, id).await?;
        }
        let expired = usable_now
            .connection
            .tokens
            .as_ref()
            .and_then(|t| t.expires_at)
            .is_some_and(|at| at <= state.clock.now());
        if expired {
            let reason = match outcome {
                Some(RefreshOutcome::Failed { error }) => error,
                Some(RefreshOutcome::Expired { reason }) => reason,
                Some(RefreshOutcome::Refreshed { .. }) => {
                    "the provider issued an expired token".into()
                }
                None => usable_now
                    .connection
                    .last_error
                    .clone()
                    .unwrap_or_else(|| "the access token has expired".into()),
            };
            return Err(UsageError::RefreshFailed(reason));
        }
    }
    let credential = open_credential(state, workspace_id, id, &usable_now).await?;
    Ok((usable_now, credential))
}

/// Per connection on this instance: the callers about to refresh before use take turns.
fn before_use_gates() -> &'static RefreshLocks {
    static GATES: std::sync::OnceLock<RefreshLocks> = std::sync::OnceLock::new();
    GATES.get_or_init(RefreshLocks::default)
}

async fn open_credential(
    state: &AppState,
    ws: &str,
    id: &str,
    usable: &UsableConnection,
) -> Result<Credential, CommandError> {
    use crate::domain::auth_config::ApiKeySettings;
    let settings = usable
        .config
        .settings
        .as_ref()
        .ok_or_else(|| invalid("auth_config_id", "the auth config has no settings"))?;
    let conn = &usable.connection;
    if let AuthSettings::Oauth2(_) = settings {
        let tokens = conn
            .tokens
            .as_ref()
            .ok_or_else(|| invalid("connection", "the connection holds no token"))?;
        let token =
            sealing::open_text(state, slot(ws, id, "access_token"), &tokens.access_token).await?;
        return Ok(Credential::Bearer(token));
    }
    if let AuthSettings::NoAuth = settings {
        return Ok(Credential::None);
    }
    let sealed = conn
        .credentials
        .as_ref()
        .ok_or_else(|| invalid("connection", "the connection holds no credentials"))?;
    let text = sealing::open_text(state, slot(ws, id, "credentials"), sealed).await?;
    let value: zeroize::Zeroizing<String> =
        zeroize::Zeroizing::new(text.expose_secret().to_string());
    let json: serde_json::Value = serde_json::from_str(&value)
        .map_err(|_| invalid("connection", "stored credentials are not JSON"))?;
    let field = |name: &str| -> Result<SecretString, CommandError> {
        json.get(name)
            .and_then(serde_json::Value::as_str)
            .map(|s| SecretString::from(s.to_string()))
            .ok_or_else(|| invalid("connection", "stored credentials lack a field"))
    };
    Ok(match settings {
        AuthSettings::ApiKey(ApiKeySettings {
            key_name,
            location,
            prefix,
        }) => Credential::ApiKey {
            name: key_name.clone(),
            location: *location,
            prefix: prefix.clone(),
            value: field("api_key")?,
        },
        AuthSettings::BearerToken => Credential::Bearer(field("token")?),
        AuthSettings::Basic => Credential::Basic {
            username: field("username")?.expose_secret().to_string(),
            password: field("password")?,
        },
        AuthSettings::Postgres(_) | AuthSettings::Connector(_) => {
            return Err(invalid(
                "connection",
                "a native connector's connection is used through its connector, not over HTTP",
            ))
        }
        AuthSettings::Oauth2(_) | AuthSettings::NoAuth => Credential::None,
    })
}

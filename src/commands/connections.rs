//! Connection commands: the OAuth connect flow (initiate, callback), connections from
//! credentials, single-flight refresh, revocation at the provider (RFC 7009), deletion with
//! crypto-shredding. Secrets are sealed under the connection's own data key before any
//! event is decided; plaintext lives only in this module's locals.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use time::OffsetDateTime;
use uuid::Uuid;

use super::sealing::{self, SecretSlot};
use super::{wait_for_write, CommandError};
use crate::app::AppState;
use crate::domain::auth_config::{AuthConfig, AuthSettings, Lifecycle, OAuth2Settings};
use crate::domain::connection::{
    Connection, ConnectionCommand, ConnectionStatus, OAuthTokens, ProviderRevocation,
    RefreshTrigger,
};
use crate::domain::{
    ConnectionAuthorizationFailed, ConnectionAuthorized, ConnectionCreated, ConnectionExpired,
    ConnectionInitiated, ConnectionRefreshed, ConnectionRevoked, DomainError, RefreshFailed,
    RefreshStarted,
};
use crate::ledger::{Actor, LedgerError};
use crate::oauth::{self, ClientCredentials, OAuthError, TokenSet};

/// How long the `state` of a connect flow stays usable.
pub const STATE_TTL: time::Duration = time::Duration::minutes(10);
/// The path of the callback the ledger registers with providers.
pub const CALLBACK_PATH: &str = "/v1/oauth/callback";

/// Deployment settings of the connection machinery.
#[derive(Debug, Clone)]
pub struct ConnectionSettings {
    /// `{public_url}/v1/oauth/callback` is the redirect URI registered with providers.
    pub public_url: String,
    /// Refresh this long before the access token expires.
    pub refresh_buffer: Duration,
    /// Attempts per refresh round on transient failures (5xx, timeouts).
    pub refresh_attempts: u32,
    /// First retry delay; doubles per attempt.
    pub retry_base_delay: Duration,
    /// The provider call timeout (also bounds the refresh lease).
    pub provider_timeout: Duration,
    /// When the proactive refresh runs (`None`: never).
    pub refresh_schedule: Option<cron::Schedule>,
}

impl Default for ConnectionSettings {
    fn default() -> Self {
        ConnectionSettings {
            public_url: "http://127.0.0.1:8080".into(),
            refresh_buffer: Duration::from_secs(300),
            refresh_attempts: 3,
            retry_base_delay: Duration::from_millis(500),
            provider_timeout: Duration::from_secs(10),
            refresh_schedule: crate::scheduler::parse_schedule(
                crate::scheduler::DEFAULT_REFRESH_SCHEDULE,
            )
            .ok(),
        }
    }
}

impl ConnectionSettings {
    pub fn callback_url(&self) -> String {
        format!("{}{CALLBACK_PATH}", self.public_url.trim_end_matches('/'))
    }

    fn lease(&self) -> time::Duration {
        let per_attempt = self.provider_timeout + self.retry_base_delay * 8;
        let total = per_attempt * self.refresh_attempts.max(1) + Duration::from_secs(10);
        time::Duration::try_from(total).unwrap_or(time::Duration::minutes(5))
    }
}

/// In-process single flight: concurrent refreshes of one connection on this instance queue
/// here, so only the first reaches the log (across instances the aggregate version decides).
#[derive(Default)]
pub struct RefreshLocks(Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>);

impl RefreshLocks {
    fn get(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = match self.0.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        // Forget locks nobody holds, so the map stays the size of what is in flight.
        map.retain(|_, l| Arc::strong_count(l) > 1);
        map.entry(key.to_string()).or_default().clone()
    }
}

fn invalid(field: &'static str, reason: impl Into<String>) -> CommandError {
    CommandError::Domain(DomainError::Invalid {
        field,
        reason: reason.into(),
    })
}

fn slot<'a>(workspace_id: &'a str, id: &'a str, field: &'a str) -> SecretSlot<'a> {
    SecretSlot {
        workspace_id,
        resource_type: "connection",
        resource_id: id,
        field,
    }
}

fn client_secret_slot<'a>(workspace_id: &'a str, auth_config_id: &'a str) -> SecretSlot<'a> {
    SecretSlot {
        workspace_id,
        resource_type: "auth_config",
        resource_id: auth_config_id,
        field: "client_secret",
    }
}

/// The state of an aggregate from the log; an id that cannot name one names none.
async fn load<A: crate::domain::Aggregate>(
    state: &AppState,
    workspace_id: &str,
    id: &str,
) -> Result<Option<A>, CommandError> {
    match state.ledger.load::<A>(workspace_id, id).await {
        Err(LedgerError::Envelope(_)) => Ok(None),
        Err(e) => Err(e.into()),
        Ok(a) => Ok(Some(a)),
    }
}

/// The auth config a connection is made from: must exist in the workspace and be enabled.
async fn usable_auth_config(
    state: &AppState,
    workspace_id: &str,
    auth_config_id: &str,
) -> Result<AuthConfig, CommandError> {
    let config = load::<AuthConfig>(state, workspace_id, auth_config_id).await?;
    match config {
        Some(c) if c.lifecycle == Lifecycle::Enabled => Ok(c),
        Some(c) if c.lifecycle == Lifecycle::Disabled => Err(DomainError::Rejected(
            "the auth config is disabled: no new connections or token use".into(),
        )
        .into()),
        _ => Err(invalid(
            "auth_config_id",
            "no such auth config in this workspace",
        )),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateConnectionInput {
    pub auth_config_id: String,
    pub user_id: String,
    /// OAuth: where the end user returns to (must be on the config's allow-list).
    pub redirect_url: Option<String>,
    /// OAuth: a subset of the config's scopes (default: all of them).
    pub scopes: Option<Vec<String>>,
    /// Non-OAuth: the end user's credentials, shaped by the auth type.
    pub credentials: Option<serde_json::Value>,
}

/// What `POST /v1/connections` answers.
#[derive(Debug)]
pub struct CreatedConnection {
    pub id: String,
    pub status: ConnectionStatus,
    /// OAuth only: where to send the end user.
    pub connect_url: Option<String>,
    pub expires_at: Option<OffsetDateTime>,
    pub position: u64,
}

pub async fn create(
    state: &AppState,
    workspace_id: &str,
    actor: &Actor,
    input: CreateConnectionInput,
) -> Result<CreatedConnection, CommandError> {
    crate::domain::check_name("user_id", &input.user_id, 256)?;
    let config = usable_auth_config(state, workspace_id, &input.auth_config_id).await?;
    match config.settings.clone() {
        Some(AuthSettings::Oauth2(o)) => {
            if input.credentials.is_some() {
                return Err(invalid(
                    "credentials",
                    "an oauth2 connection is made through the connect flow; give redirect_url",
                ));
            }
            initiate_oauth(state, workspace_id, actor, input, &config, &o).await
        }
        Some(settings) => {
            if input.redirect_url.is_some() || input.scopes.is_some() {
                return Err(invalid(
                    "redirect_url",
                    format!(
                        "only oauth2 connections take redirect_url/scopes; this auth config is {}",
                        settings.auth_type()
                    ),
                ));
            }
            create_from_credentials(state, workspace_id, actor, input, &config, &settings).await
        }
        None => Err(invalid("auth_config_id", "no such auth config")),
    }
}

async fn initiate_oauth(
    state: &AppState,
    workspace_id: &str,
    actor: &Actor,
    input: CreateConnectionInput,
    config: &AuthConfig,
    o: &OAuth2Settings,
) -> Result<CreatedConnection, CommandError> {
    let redirect_url = input
        .redirect_url
        .ok_or_else(|| invalid("redirect_url", "required for an oauth2 connection"))?;
    if !o.redirect_urls.contains(&redirect_url) {
        return Err(invalid(
            "redirect_url",
            "not on the auth config's allowed redirect URLs (exact match)",
        ));
    }
    let scopes = match input.scopes {
        Some(s) => {
            if let Some(extra) = s.iter().find(|x| !o.scopes.contains(x)) {
                return Err(invalid(
                    "scopes",
                    format!("{extra} is not among the auth config's scopes"),
                ));
            }
            s
        }
        None => o.scopes.clone(),
    };
    let id = Uuid::now_v7().to_string();
    let data_key_id = state
        .vault
        .create_data_key(&format!("connection:{workspace_id}/{id}"))
        .await?;
    let result = async {
        let connect_state = oauth::random_token();
        let (pkce_verifier, challenge) = if o.pkce {
            let verifier = oauth::random_token();
            let sealed = sealing::seal(
                state,
                slot(workspace_id, &id, "pkce_verifier"),
                &data_key_id,
                verifier.as_bytes(),
            )
            .await?;
            (Some(sealed), Some(oauth::pkce_challenge(&verifier)))
        } else {
            (None, None)
        };
        let callback = state.connections.callback_url();
        let connect_url = oauth::authorize_url(&oauth::AuthorizeRequest {
            authorization_url: &o.authorization_url,
            client_id: &o.client_id,
            redirect_uri: &callback,
            scopes: &scopes,
            scope_separator: &o.scope_separator,
            state: &connect_state,
            code_challenge: challenge.as_deref(),
            extra_params: &o.extra_authorize_params,
        })
        .map_err(|e| invalid("authorization_url", e.to_string()))?;
        let expires_at = state.clock.now() + STATE_TTL;
        let command = ConnectionCommand::Initiate(ConnectionInitiated {
            auth_config_id: input.auth_config_id.clone(),
            auth_config_version: config.version,
            user_id: input.user_id.clone(),
            redirect_url,
            requested_scopes: scopes.clone(),
            state_hash: oauth::state_hash(&connect_state),
            state_expires_at: expires_at,
            pkce_verifier,
            data_key_id: data_key_id.clone(),
        });
        let committed = state
            .ledger
            .execute::<Connection>(workspace_id, &id, actor, &command)
            .await?;
        Ok::<_, CommandError>((connect_url, expires_at, committed.position))
    }
    .await;
    match result {
        Ok((connect_url, expires_at, position)) => {
            wait_for_write(state, position).await?;
            Ok(CreatedConnection {
                id,
                status: ConnectionStatus::Initiated,
                connect_url: Some(connect_url),
                expires_at: Some(expires_at),
                position,
            })
        }
        Err(e) => {
            shred_quietly(state, &data_key_id).await;
            Err(e)
        }
    }
}

/// Credentials by auth type, exactly these fields.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApiKeyCredentials {
    api_key: String,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BearerCredentials {
    token: String,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BasicCredentials {
    username: String,
    password: String,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresCredentials {
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for PostgresCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresCredentials")
            .field("user", &self.user)
            .field("password", &"***")
            .finish()
    }
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoCredentials {}

pub(crate) fn shape<T: serde::de::DeserializeOwned>(
    value: &serde_json::Value,
    expected: &str,
) -> Result<T, CommandError> {
    use serde_json::Value;
    // Only field names and JSON types are reported, never values: serde's "invalid type"
    // message quotes what it got (`integer `123``, `string "…"`), which would echo a
    // credential given with the wrong type.
    let kind = |v: &Value| match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    let Some(fields) = value.as_object() else {
        return Err(invalid(
            "credentials",
            format!("expected {expected}, got {}", kind(value)),
        ));
    };
    serde_json::from_value(value.clone()).map_err(|e| {
        let message = e.to_string();
        let reason = if message.starts_with("missing field") || message.starts_with("unknown field")
        {
            message
        } else {
            match fields.iter().find(|(_, v)| !v.is_string()) {
                Some((name, v)) => format!("field `{name}` is {}, not a string", kind(v)),
                None => "a field has the wrong type".to_string(),
            }
        };
        invalid("credentials", format!("expected {expected}: {reason}"))
    })
}

fn non_empty(field: &'static str, v: &str) -> Result<(), CommandError> {
    if v.is_empty() || v.len() > 8192 {
        return Err(invalid(field, "must be 1-8192 bytes"));
    }
    Ok(())
}

async fn create_from_credentials(
    state: &AppState,
    workspace_id: &str,
    actor: &Actor,
    input: CreateConnectionInput,
    config: &AuthConfig,
    settings: &AuthSettings,
) -> Result<CreatedConnection, CommandError> {
    let creds = input.credentials.clone().unwrap_or(serde_json::Value::Null);
    let required = || invalid("credentials", "required for this auth type");
    // Validate the shape, then keep the canonical JSON to seal.
    match settings {
        AuthSettings::ApiKey(_) => {
            let c: ApiKeyCredentials = shape(&creds, "{\"api_key\": string}")?;
            non_empty("credentials.api_key", &c.api_key)?;
        }
        AuthSettings::BearerToken => {
            let c: BearerCredentials = shape(&creds, "{\"token\": string}")?;
            non_empty("credentials.token", &c.token)?;
        }
        AuthSettings::Basic => {
            let c: BasicCredentials =
                shape(&creds, "{\"username\": string, \"password\": string}")?;
            non_empty("credentials.username", &c.username)?;
            if c.password.len() > 8192 {
                return Err(invalid("credentials.password", "at most 8192 bytes"));
            }
        }
        AuthSettings::Postgres(p) => {
            let c: PostgresCredentials = shape(&creds, "{\"user\": string, \"password\": string}")?;
            non_empty("credentials.user", &c.user)?;
            super::check_loopback_host(state, "host", &p.host)?;
            crate::connectors::postgres::test(
                p,
                &c.user,
                &c.password,
                state.connections.provider_timeout,
            )
            .await
            .map_err(|e| {
                CommandError::Domain(DomainError::Rejected(format!(
                    "connection test failed: {e}"
                )))
            })?;
        }
        AuthSettings::NoAuth => {
            if !creds.is_null() {
                let _: NoCredentials = shape(&creds, "no credentials")?;
            }
        }
        AuthSettings::Oauth2(_) => return Err(required()),
    }
    if creds.is_null() && !matches!(settings, AuthSettings::NoAuth) {
        return Err(required());
    }
    let id = Uuid::now_v7().to_string();
    let data_key_id = state
        .vault
        .create_data_key(&format!("connection:{workspace_id}/{id}"))
        .await?;
    let result = async {
        let credentials = if matches!(settings, AuthSettings::NoAuth) {
            None
        } else {
            let text = SecretString::from(creds.to_string());
            Some(
                sealing::seal(
                    state,
                    slot(workspace_id, &id, "credentials"),
                    &data_key_id,
                    text.expose_secret().as_bytes(),
                )
                .await?,
            )
        };
        let command = ConnectionCommand::Create(ConnectionCreated {
            auth_config_id: input.auth_config_id.clone(),
            auth_config_version: config.version,
            user_id: input.user_id.clone(),
            credentials,
            data_key_id: data_key_id.clone(),
        });
        Ok::<_, CommandError>(
            state
                .ledger
                .execute::<Connection>(workspace_id, &id, actor, &command)
                .await?
                .position,
        )
    }
    .await;
    match result {
        Ok(position) => {
            wait_for_write(state, position).await?;
            Ok(CreatedConnection {
                id,
                status: ConnectionStatus::Active,
                connect_url: None,
                expires_at: None,
                position,
            })
        }
        Err(e) => {
            shred_quietly(state, &data_key_id).await;
            Err(e)
        }
    }
}

async fn shred_quietly(state: &AppState, data_key_id: &str) {
    if let Err(e) = state.vault.shred(data_key_id).await {
        tracing::warn!(error = %e, "could not destroy the data key of a refused connection");
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
            error: clip(error, 128),
            error_description: query.error_description.as_deref().map(|d| clip(d, 512)),
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

fn clip(s: &str, max: usize) -> String {
    s.chars().filter(|c| !c.is_control()).take(max).collect()
}

/// The plaintext client credentials of an OAuth auth config.
struct OpenedClient {
    settings: OAuth2Settings,
    secret: SecretString,
}

async fn open_client(
    state: &AppState,
    workspace_id: &str,
    auth_config_id: &str,
    config: &AuthConfig,
) -> Result<OpenedClient, CommandError> {
    let Some(AuthSettings::Oauth2(o)) = config.settings.clone() else {
        return Err(DomainError::Rejected("the auth config is not oauth2".into()).into());
    };
    let secret = sealing::open_text(
        state,
        client_secret_slot(workspace_id, auth_config_id),
        &o.client_secret,
    )
    .await?;
    Ok(OpenedClient {
        settings: o,
        secret,
    })
}

impl OpenedClient {
    fn credentials(&self) -> ClientCredentials<'_> {
        ClientCredentials {
            client_id: &self.settings.client_id,
            client_secret: self.secret.expose_secret(),
            method: self.settings.client_auth_method,
            scope_separator: &self.settings.scope_separator,
        }
    }
}

/// Exchanges the code; a refusal by the provider is an authorization failure (an event),
/// an error on our side is an error.
async fn exchange(
    state: &AppState,
    ws: &str,
    id: &str,
    conn: &Connection,
    code: &str,
    now: OffsetDateTime,
) -> Result<Result<ConnectionAuthorized, ConnectionAuthorizationFailed>, CommandError> {
    let config = match usable_auth_config(state, ws, &conn.auth_config_id).await {
        Ok(c) => c,
        Err(CommandError::Domain(d)) => {
            return Ok(Err(ConnectionAuthorizationFailed {
                error: "auth_config_unavailable".into(),
                error_description: Some(d.to_string()),
            }))
        }
        Err(e) => return Err(e),
    };
    let client = open_client(state, ws, &conn.auth_config_id, &config).await?;
    let verifier = match &conn.pkce_verifier {
        Some(v) => Some(sealing::open_text(state, slot(ws, id, "pkce_verifier"), v).await?),
        None => None,
    };
    let answer = state
        .oauth
        .exchange_code(
            &client.settings.token_url,
            &client.credentials(),
            code,
            &state.connections.callback_url(),
            verifier.as_ref().map(|v| v.expose_secret()),
        )
        .await;
    match answer {
        Ok(tokens) => {
            let scopes = tokens
                .scope
                .clone()
                .unwrap_or_else(|| conn.requested_scopes.clone());
            let sealed = seal_tokens(state, ws, id, &conn.data_key_id, &tokens, None, now).await?;
            Ok(Ok(ConnectionAuthorized {
                scopes,
                tokens: sealed,
            }))
        }
        Err(e) => Ok(Err(ConnectionAuthorizationFailed {
            error: e.code().to_string(),
            error_description: Some(clip(&e.to_string(), 512)),
        })),
    }
}

/// Seals a token response; without a new refresh token the previous one is kept.
async fn seal_tokens(
    state: &AppState,
    ws: &str,
    id: &str,
    data_key_id: &str,
    tokens: &TokenSet,
    previous_refresh: Option<&crate::domain::auth_config::SealedSecret>,
    now: OffsetDateTime,
) -> Result<OAuthTokens, CommandError> {
    let access_token = sealing::seal(
        state,
        slot(ws, id, "access_token"),
        data_key_id,
        tokens.access_token.expose_secret().as_bytes(),
    )
    .await?;
    let refresh_token = match &tokens.refresh_token {
        Some(rt) => Some(
            sealing::seal(
                state,
                slot(ws, id, "refresh_token"),
                data_key_id,
                rt.expose_secret().as_bytes(),
            )
            .await?,
        ),
        None => previous_refresh.cloned(),
    };
    let expires_at = tokens
        .expires_in
        .and_then(|s| i64::try_from(s).ok())
        .map(|s| now + time::Duration::seconds(s));
    Ok(OAuthTokens {
        access_token,
        refresh_token,
        token_type: tokens.token_type.clone(),
        expires_at,
    })
}

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
    let not_found = || CommandError::Domain(DomainError::NotFound("connection"));
    let seen = load::<Connection>(state, workspace_id, id)
        .await?
        .filter(Connection::exists)
        .ok_or_else(not_found)?
        .refresh_rounds;
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
            Ok(_) => return run_refresh(state, workspace_id, id, actor).await,
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
                let sealed = seal_tokens(
                    state,
                    ws,
                    id,
                    &conn.data_key_id,
                    &set,
                    Some(&sealed_rt),
                    now,
                )
                .await?;
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
                return Ok(RefreshOutcome::Refreshed { by_this_call: true });
            }
            Err(e) => {
                let retryable = e.retryable();
                let is_final = !retryable || attempt == attempts;
                let message = clip(&e.to_string(), 512);
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
                let token_dead = tokens
                    .expires_at
                    .is_some_and(|exp| exp <= state.clock.now());
                let outcome = if matches!(e, OAuthError::InvalidGrant { .. }) || token_dead {
                    let reason = if matches!(e, OAuthError::InvalidGrant { .. }) {
                        message.clone()
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
                    RefreshOutcome::Expired { reason }
                } else {
                    RefreshOutcome::Failed { error: message }
                };
                return Ok(outcome);
            }
        }
    }
    Ok(RefreshOutcome::Failed {
        error: "no attempt made".into(),
    })
}

/// Revokes a connection: first at the provider (RFC 7009, when it has an endpoint and a
/// token was issued; its answer is recorded), then in the ledger.
pub async fn revoke(
    state: &AppState,
    workspace_id: &str,
    id: &str,
    actor: &Actor,
    reason: Option<String>,
) -> Result<u64, CommandError> {
    let conn = load::<Connection>(state, workspace_id, id)
        .await?
        .filter(Connection::exists)
        .ok_or(CommandError::Domain(DomainError::NotFound("connection")))?;
    if conn.status == Some(ConnectionStatus::Revoked) {
        return Err(DomainError::Rejected("already revoked".into()).into());
    }
    let provider = revoke_at_provider(state, workspace_id, id, &conn).await;
    let c = state
        .ledger
        .execute::<Connection>(
            workspace_id,
            id,
            actor,
            &ConnectionCommand::Revoke(ConnectionRevoked { reason, provider }),
        )
        .await?;
    wait_for_write(state, c.position).await?;
    Ok(c.position)
}

async fn revoke_at_provider(
    state: &AppState,
    ws: &str,
    id: &str,
    conn: &Connection,
) -> ProviderRevocation {
    let answer = |outcome: &str, detail: Option<String>| ProviderRevocation {
        outcome: outcome.into(),
        http_status: None,
        detail,
    };
    let Some(tokens) = &conn.tokens else {
        return answer("nothing_to_revoke", None);
    };
    let config = match load::<AuthConfig>(state, ws, &conn.auth_config_id).await {
        Ok(Some(c)) => c,
        _ => return answer("failed", Some("auth config unavailable".into())),
    };
    let revocation_url = match &config.settings {
        Some(AuthSettings::Oauth2(o)) => o.revocation_url.clone(),
        _ => None,
    };
    let Some(url) = revocation_url else {
        return answer("not_supported", None);
    };
    let client = match open_client(state, ws, &conn.auth_config_id, &config).await {
        Ok(c) => c,
        Err(e) => return answer("failed", Some(e.to_string())),
    };
    // The refresh token revokes the whole grant (RFC 7009 §2.1); else the access token.
    let (sealed, field, hint) = match &tokens.refresh_token {
        Some(rt) => (rt, "refresh_token", "refresh_token"),
        None => (&tokens.access_token, "access_token", "access_token"),
    };
    let token = match sealing::open_text(state, slot(ws, id, field), sealed).await {
        Ok(t) => t,
        Err(e) => return answer("failed", Some(e.to_string())),
    };
    let a = state
        .oauth
        .revoke(&url, &client.credentials(), token.expose_secret(), hint)
        .await;
    ProviderRevocation {
        outcome: a.outcome.as_str().to_string(),
        http_status: a.http_status,
        detail: a.detail,
    }
}

/// Deletes a connection: revoked first if still live, then the deletion event, then its
/// data key is destroyed (its sealed tokens in the log become unrecoverable).
pub async fn delete(
    state: &AppState,
    workspace_id: &str,
    id: &str,
    actor: &Actor,
) -> Result<u64, CommandError> {
    let conn = load::<Connection>(state, workspace_id, id)
        .await?
        .filter(Connection::exists)
        .ok_or(CommandError::Domain(DomainError::NotFound("connection")))?;
    if conn.status != Some(ConnectionStatus::Revoked) {
        match revoke(state, workspace_id, id, actor, Some("deleted".into())).await {
            Ok(_) | Err(CommandError::Domain(DomainError::Rejected(_))) => {}
            Err(e) => return Err(e),
        }
    }
    let c = state
        .ledger
        .execute::<Connection>(workspace_id, id, actor, &ConnectionCommand::Delete)
        .await?;
    state.vault.shred(&conn.data_key_id).await?;
    wait_for_write(state, c.position).await?;
    Ok(c.position)
}

/// After an auth config narrowed its scopes: every active connection that holds a removed
/// scope needs the user's consent again.
pub async fn mark_needs_reconsent(
    state: &AppState,
    workspace_id: &str,
    auth_config_id: &str,
    auth_config_version: u64,
    removed_scopes: &[String],
    actor: &Actor,
) -> Result<u64, CommandError> {
    let mut marked = 0;
    for row in state
        .projections
        .live_connections_of(workspace_id, auth_config_id)
        .await?
    {
        let command = ConnectionCommand::MarkNeedsReconsent(crate::domain::NeedsReconsent {
            auth_config_version,
            removed_scopes: removed_scopes.to_vec(),
        });
        match state
            .ledger
            .execute::<Connection>(workspace_id, &row.id, actor, &command)
            .await
        {
            Ok(c) => {
                marked += 1;
                wait_for_write(state, c.position).await?;
            }
            Err(LedgerError::Domain(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(marked)
}

//! `POST /v1/connections`: the OAuth connect flow's first leg, a hosted connect link for
//! the other auth types (`hosted`), or a connection from the end user's credentials
//! (shape-checked, tested by the connector where one exists).

use super::*;
use crate::crypto::SealingKey;
use crate::ledger::Committed;
use crate::projector::store::ConnectionRow;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateConnectionInput {
    pub auth_config_id: String,
    pub user_id: String,
    /// Where the end user returns to when the connect flow ends. OAuth: must be on the
    /// config's allow-list. Other auth types (a hosted connect link, when no `credentials`
    /// are given): an https URL (plain http only to loopback where allowed), no user info;
    /// default: authledger's own "connected" page.
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
    /// Where to send the end user: the provider's consent (OAuth) or the hosted connect page.
    pub connect_url: Option<String>,
    /// Whether `connect_url` leads on to the provider's consent (another origin), also when
    /// it is this service's connect page first (a bound link).
    pub via_provider: bool,
    pub expires_at: Option<OffsetDateTime>,
    pub position: u64,
    /// The connection as the projections show it at `position` (built from the event, not
    /// read back).
    pub row: Option<ConnectionRow>,
}

/// The projections' row of a connection just created by `committed`.
pub(super) fn created_row(
    workspace_id: &str,
    id: &str,
    committed: &Committed,
) -> Option<ConnectionRow> {
    crate::projector::plan::first_connection_row(
        (workspace_id, id),
        &committed.event,
        committed.version,
        committed.occurred_at,
    )
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
            if input.scopes.is_some() {
                return Err(invalid(
                    "scopes",
                    format!(
                        "only oauth2 connections take scopes; this auth config is {}",
                        settings.auth_type()
                    ),
                ));
            }
            if input.credentials.is_none() && !matches!(settings, AuthSettings::NoAuth) {
                // No credentials: the end user gives them on the hosted connect page.
                return super::hosted::start(state, workspace_id, actor, input, &config).await;
            }
            if input.redirect_url.is_some() {
                return Err(invalid(
                    "redirect_url",
                    "a connection from credentials is made at once; give redirect_url without \
                     credentials for a connect link",
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
    let data_key = state
        .vault
        .create_data_key(&format!("connection:{workspace_id}/{id}"))
        .await?;
    let data_key_id = data_key.id().to_string();
    let result = async {
        let connect_state = oauth::random_token();
        let (pkce_verifier, challenge) = if o.pkce {
            let verifier = oauth::random_token();
            let sealed = sealing::seal(
                state,
                slot(workspace_id, &id, "pkce_verifier"),
                &data_key,
                verifier.as_bytes(),
            )
            .await?;
            (Some(sealed), Some(oauth::pkce_challenge(&verifier)))
        } else {
            (None, None)
        };
        let provider_url = authorize_url(state, o, &scopes, &connect_state, challenge.as_deref())?;
        // A bound link goes through the person check first (`binding`).
        let connect_url = match super::binding::bound(state, workspace_id).await? {
            true => state.connections.connect_page_url(&connect_state),
            false => provider_url,
        };
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
            .create::<Connection>(workspace_id, &id, actor, &command)
            .await?;
        Ok::<_, CommandError>((connect_url, expires_at, committed))
    }
    .await;
    match result {
        Ok((connect_url, expires_at, committed)) => {
            wait_for_write(state, committed.position).await?;
            Ok(CreatedConnection {
                row: created_row(workspace_id, &id, &committed),
                id,
                status: ConnectionStatus::Initiated,
                connect_url: Some(connect_url),
                via_provider: true,
                expires_at: Some(expires_at),
                position: committed.position,
            })
        }
        Err(e) => {
            crate::commands::sealing::shred_unused(state, &data_key_id, "connection").await;
            Err(e)
        }
    }
}

/// The provider's authorization URL of a connect flow (its `state`, the PKCE challenge of
/// its verifier).
pub(super) fn authorize_url(
    state: &AppState,
    o: &OAuth2Settings,
    scopes: &[String],
    connect_state: &str,
    code_challenge: Option<&str>,
) -> Result<String, CommandError> {
    let callback = state.connections.callback_url();
    oauth::authorize_url(&oauth::AuthorizeRequest {
        authorization_url: &o.authorization_url,
        client_id: &o.client_id,
        redirect_uri: &callback,
        scopes,
        scope_separator: &o.scope_separator,
        state: connect_state,
        code_challenge,
        extra_params: &o.extra_authorize_params,
    })
    .map_err(|e| invalid("authorization_url", e.to_string()))
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

/// Checks the end user's credentials for `settings`: exactly the auth type's fields, sizes,
/// and the connector's test where one exists (PostgreSQL: connect and `SELECT 1`). Shared by
/// `POST /v1/connections` and the hosted connect page.
pub(crate) async fn check_credentials(
    state: &AppState,
    settings: &AuthSettings,
    creds: &serde_json::Value,
) -> Result<(), CommandError> {
    let required = || invalid("credentials", "required for this auth type");
    match settings {
        AuthSettings::ApiKey(_) => {
            let c: ApiKeyCredentials = shape(creds, "{\"api_key\": string}")?;
            non_empty("credentials.api_key", &c.api_key)?;
        }
        AuthSettings::BearerToken => {
            let c: BearerCredentials = shape(creds, "{\"token\": string}")?;
            non_empty("credentials.token", &c.token)?;
        }
        AuthSettings::Basic => {
            let c: BasicCredentials = shape(creds, "{\"username\": string, \"password\": string}")?;
            non_empty("credentials.username", &c.username)?;
            if c.password.len() > 8192 {
                return Err(invalid("credentials.password", "at most 8192 bytes"));
            }
        }
        AuthSettings::Postgres(p) => {
            let c: PostgresCredentials = shape(creds, "{\"user\": string, \"password\": string}")?;
            non_empty("credentials.user", &c.user)?;
            crate::commands::check_destination_host(state, "host", &p.host).await?;
            crate::connectors::postgres::test_legacy(
                p,
                &c.user,
                &c.password,
                state.connections.provider_timeout,
                &state.destinations,
            )
            .await
            .map_err(|e| {
                CommandError::Domain(DomainError::Rejected(format!(
                    "connection test failed: {e}"
                )))
            })?;
        }
        AuthSettings::Connector(c) => {
            super::super::auth_configs::connector_test(state, c, creds)
                .await
                .map_err(|e| match e {
                    Ok(failure) => CommandError::Domain(DomainError::Rejected(format!(
                        "connection test failed: {failure}"
                    ))),
                    Err(e) => e,
                })?;
        }
        AuthSettings::NoAuth => {
            if !creds.is_null() {
                let _: NoCredentials = shape(creds, "no credentials")?;
            }
        }
        AuthSettings::Oauth2(_) => return Err(required()),
    }
    if creds.is_null() && !matches!(settings, AuthSettings::NoAuth) {
        return Err(required());
    }
    Ok(())
}

/// The checked credentials sealed under the connection's data key (none for `no_auth`).
pub(super) async fn seal_credentials(
    state: &AppState,
    (workspace_id, id, data_key): (&str, &str, SealingKey<'_>),
    settings: &AuthSettings,
    creds: &serde_json::Value,
) -> Result<Option<crate::domain::auth_config::SealedSecret>, CommandError> {
    if matches!(settings, AuthSettings::NoAuth) {
        return Ok(None);
    }
    let text = SecretString::from(creds.to_string());
    let sealed = sealing::seal(
        state,
        slot(workspace_id, id, "credentials"),
        data_key,
        text.expose_secret().as_bytes(),
    )
    .await?;
    Ok(Some(sealed))
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
    check_credentials(state, settings, &creds).await?;
    let id = Uuid::now_v7().to_string();
    let data_key = state
        .vault
        .create_data_key(&format!("connection:{workspace_id}/{id}"))
        .await?;
    let data_key_id = data_key.id().to_string();
    let result = async {
        let credentials = seal_credentials(
            state,
            (workspace_id, &id, (&data_key).into()),
            settings,
            &creds,
        )
        .await?;
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
                .create::<Connection>(workspace_id, &id, actor, &command)
                .await?,
        )
    }
    .await;
    match result {
        Ok(committed) => {
            wait_for_write(state, committed.position).await?;
            Ok(CreatedConnection {
                row: created_row(workspace_id, &id, &committed),
                id,
                status: ConnectionStatus::Active,
                connect_url: None,
                via_provider: false,
                expires_at: None,
                position: committed.position,
            })
        }
        Err(e) => {
            crate::commands::sealing::shred_unused(state, &data_key_id, "connection").await;
            Err(e)
        }
    }
}

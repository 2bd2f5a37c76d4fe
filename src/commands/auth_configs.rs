//! Auth config commands: build settings from the request (pre-filled from the provider
//! catalog), seal the client secret under the auth config's own data key, run the domain
//! command, and shred the data key when the auth config is deleted.

use std::collections::BTreeMap;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use uuid::Uuid;

use super::{wait_for_write, Caller, CommandError};
use crate::app::AppState;
use crate::crypto::resource_aad;
use crate::domain::auth_config::{
    ApiKeySettings, AuthConfig, AuthConfigCommand, AuthSettings, ClientAuthMethod, OAuth2Settings,
    PostgresSettings, SealedSecret,
};
use crate::domain::connector_test::{TestOutcome, AUTH_CONFIG_TEST_AGGREGATE};
use crate::domain::{AuthConfigCreated, AuthConfigTested, DomainError};

/// The `oauth2` part of a create or update request. On update every field is optional and
/// absent fields keep their value.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuth2Input {
    pub client_id: Option<String>,
    pub client_secret: Option<SecretString>,
    pub scopes: Option<Vec<String>>,
    pub redirect_urls: Option<Vec<String>>,
    pub authorization_url: Option<String>,
    pub token_url: Option<String>,
    pub revocation_url: Option<String>,
    pub client_auth_method: Option<ClientAuthMethod>,
    pub pkce: Option<bool>,
    pub extra_authorize_params: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmptyInput {}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthTypeInput {
    Oauth2,
    ApiKey,
    BearerToken,
    Basic,
    NoAuth,
    Postgres,
    Connector,
}

/// The `connector` part of a request: a connector definition's id (`src/connectors/
/// definitions`; on update it may be left out) and the values of its `config` fields,
/// checked against the definition.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectorInput {
    pub id: Option<String>,
    #[serde(default)]
    pub settings: serde_json::Value,
    /// Dynamic database credentials for agents (`commands::dynamic_credentials`); on update,
    /// left out keeps them as they are.
    pub dynamic_credentials: Option<crate::domain::dynamic_credential::DynamicCredentialsPolicy>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateAuthConfigInput {
    pub name: String,
    /// A catalog provider id (endpoints pre-filled) or `custom` (endpoints given).
    pub provider: String,
    pub auth_type: AuthTypeInput,
    pub oauth2: Option<OAuth2Input>,
    pub api_key: Option<ApiKeySettings>,
    pub postgres: Option<PostgresSettings>,
    pub connector: Option<ConnectorInput>,
    pub bearer_token: Option<EmptyInput>,
    pub basic: Option<EmptyInput>,
    pub no_auth: Option<EmptyInput>,
    /// Let agents obtain the upstream access token itself (`POST /v1/connections/{id}/access-token`).
    #[serde(default)]
    pub token_release: bool,
    /// Offer it to the workspace's end users (listed on their My connections); default on.
    pub offered: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateAuthConfigInput {
    pub name: Option<String>,
    pub oauth2: Option<OAuth2Input>,
    pub api_key: Option<ApiKeySettings>,
    pub postgres: Option<PostgresSettings>,
    pub connector: Option<ConnectorInput>,
    pub token_release: Option<bool>,
    pub offered: Option<bool>,
}

impl UpdateAuthConfigInput {
    /// The new client secret, when that is all this update changes: a rotation, recorded
    /// as its own event (`auth_config.client_secret_rotated`).
    fn client_secret_only(&self) -> Option<&SecretString> {
        let o = self.oauth2.as_ref()?;
        let nothing_else = self.name.is_none()
            && self.api_key.is_none()
            && self.postgres.is_none()
            && self.connector.is_none()
            && self.token_release.is_none()
            && self.offered.is_none()
            && o.client_id.is_none()
            && o.scopes.is_none()
            && o.redirect_urls.is_none()
            && o.authorization_url.is_none()
            && o.token_url.is_none()
            && o.revocation_url.is_none()
            && o.client_auth_method.is_none()
            && o.pkce.is_none()
            && o.extra_authorize_params.is_none();
        o.client_secret.as_ref().filter(|_| nothing_else)
    }
}

fn invalid(field: &'static str, reason: impl Into<String>) -> CommandError {
    CommandError::Domain(DomainError::Invalid {
        field,
        reason: reason.into(),
    })
}

async fn seal_client_secret(
    state: &AppState,
    caller: &Caller,
    id: &str,
    data_key_id: Option<&str>,
    secret: &SecretString,
) -> Result<SealedSecret, CommandError> {
    let plaintext = secret.expose_secret().as_bytes();
    if plaintext.is_empty() || plaintext.len() > 4096 {
        return Err(invalid("client_secret", "must be 1-4096 bytes"));
    }
    let aad = resource_aad(&caller.workspace_id, "auth_config", id, "client_secret");
    let sealed = match data_key_id {
        Some(d) => state.vault.seal(d, plaintext, &aad).await?,
        None => {
            let new = state
                .vault
                .create_data_key(&format!("auth_config:{}/{id}", caller.workspace_id))
                .await?;
            state.vault.seal(&new, plaintext, &aad).await?
        }
    };
    Ok(SealedSecret {
        data_key_id: sealed.data_key_id,
        nonce: sealed.nonce,
        ciphertext: sealed.ciphertext,
        fingerprint: state.vault.fingerprint(plaintext),
    })
}

async fn oauth2_settings(
    state: &AppState,
    caller: &Caller,
    id: &str,
    provider: &str,
    input: OAuth2Input,
) -> Result<OAuth2Settings, CommandError> {
    let catalog = if provider == "custom" {
        None
    } else {
        Some(crate::providers::provider(provider).ok_or_else(|| {
            invalid(
                "provider",
                format!("{provider} is not in the catalog; use \"custom\" with explicit URLs"),
            )
        })?)
    };
    let endpoint = |given: Option<String>, from_catalog: Option<String>, field: &'static str| {
        given
            .or(from_catalog)
            .ok_or_else(|| invalid(field, "required for a custom provider"))
    };
    let authorization_url = endpoint(
        input.authorization_url,
        catalog.map(|c| c.oauth2.authorization_url.clone()),
        "authorization_url",
    )?;
    let token_url = endpoint(
        input.token_url,
        catalog.map(|c| c.oauth2.token_url.clone()),
        "token_url",
    )?;
    let revocation_url = input
        .revocation_url
        .or_else(|| catalog.and_then(|c| c.oauth2.revocation_url.clone()));
    let mut urls = vec![
        ("authorization_url", authorization_url.as_str()),
        ("token_url", token_url.as_str()),
    ];
    urls.extend(revocation_url.as_deref().map(|u| ("revocation_url", u)));
    super::check_destinations(state, &urls).await?;
    let redirect_urls = input
        .redirect_urls
        .ok_or_else(|| invalid("redirect_urls", "at least one is required"))?;
    let returns: Vec<&str> = redirect_urls.iter().map(String::as_str).collect();
    super::check_return_urls(state, "redirect_urls", &returns)?;
    let client_id = input
        .client_id
        .ok_or_else(|| invalid("client_id", "required"))?;
    let secret = input
        .client_secret
        .ok_or_else(|| invalid("client_secret", "required"))?;
    let client_secret = seal_client_secret(state, caller, id, None, &secret).await?;
    let client_auth_method =
        input
            .client_auth_method
            .unwrap_or(match catalog.map(|c| &c.oauth2.client_auth_method) {
                Some(crate::providers::ClientAuthMethod::ClientSecretBasic) => {
                    ClientAuthMethod::ClientSecretBasic
                }
                _ => ClientAuthMethod::ClientSecretPost,
            });
    Ok(OAuth2Settings {
        authorization_url,
        token_url,
        revocation_url,
        client_id,
        client_secret,
        scopes: input.scopes.unwrap_or_else(|| {
            catalog
                .map(|c| c.oauth2.default_scopes.clone())
                .unwrap_or_default()
        }),
        client_auth_method,
        pkce: input.pkce.unwrap_or(true),
        scope_separator: catalog
            .map(|c| c.oauth2.scope_separator.clone())
            .unwrap_or_else(|| " ".into()),
        extra_authorize_params: input.extra_authorize_params.unwrap_or_else(|| {
            catalog
                .map(|c| c.oauth2.extra_authorize_params.clone())
                .unwrap_or_default()
        }),
        redirect_urls,
    })
}

/// Creates an auth config; returns its id and the log position reached.
pub async fn create(
    state: &AppState,
    caller: &Caller,
    input: CreateAuthConfigInput,
) -> Result<(String, u64), CommandError> {
    let id = Uuid::now_v7().to_string();
    let given = [
        ("oauth2", input.oauth2.is_some()),
        ("api_key", input.api_key.is_some()),
        ("postgres", input.postgres.is_some()),
        ("connector", input.connector.is_some()),
        ("bearer_token", input.bearer_token.is_some()),
        ("basic", input.basic.is_some()),
        ("no_auth", input.no_auth.is_some()),
    ];
    let type_name = match input.auth_type {
        AuthTypeInput::Oauth2 => "oauth2",
        AuthTypeInput::ApiKey => "api_key",
        AuthTypeInput::BearerToken => "bearer_token",
        AuthTypeInput::Basic => "basic",
        AuthTypeInput::NoAuth => "no_auth",
        AuthTypeInput::Postgres => "postgres",
        AuthTypeInput::Connector => "connector",
    };
    if let Some((other, _)) = given
        .iter()
        .find(|(name, present)| *present && *name != type_name)
    {
        return Err(invalid(
            "auth_type",
            format!("settings under \"{other}\" do not match auth_type {type_name}"),
        ));
    }
    let settings = match input.auth_type {
        AuthTypeInput::Oauth2 => {
            let o = input
                .oauth2
                .ok_or_else(|| invalid("oauth2", "required for auth_type oauth2"))?;
            AuthSettings::Oauth2(oauth2_settings(state, caller, &id, &input.provider, o).await?)
        }
        AuthTypeInput::ApiKey => AuthSettings::ApiKey(
            input
                .api_key
                .ok_or_else(|| invalid("api_key", "required"))?,
        ),
        AuthTypeInput::Postgres => {
            let p = input
                .postgres
                .ok_or_else(|| invalid("postgres", "required"))?;
            super::check_destination_host(state, "host", &p.host).await?;
            AuthSettings::Postgres(p)
        }
        AuthTypeInput::Connector => {
            let c = input
                .connector
                .ok_or_else(|| invalid("connector", "required for auth_type connector"))?;
            let id =
                c.id.ok_or_else(|| invalid("connector", "the connector's id is required"))?;
            let dynamic = c.dynamic_credentials;
            AuthSettings::Connector(connector_settings(state, &id, &c.settings, dynamic).await?)
        }
        AuthTypeInput::BearerToken => AuthSettings::BearerToken,
        AuthTypeInput::Basic => AuthSettings::Basic,
        AuthTypeInput::NoAuth => AuthSettings::NoAuth,
    };
    let command = AuthConfigCommand::Create(AuthConfigCreated {
        name: input.name,
        provider: input.provider,
        settings,
        token_release: input.token_release,
        offered: input.offered.unwrap_or(true),
    });
    let committed = state
        .ledger
        .create::<AuthConfig>(&caller.workspace_id, &id, &caller.actor(), &command)
        .await;
    let committed = match committed {
        Ok(c) => c,
        Err(e) => {
            // Nothing references a data key made for a refused create: destroy it.
            shred_unused_secret(state, &command).await;
            return Err(e.into());
        }
    };
    wait_for_write(state, committed.position).await?;
    Ok((id, committed.position))
}

async fn shred_unused_secret(state: &AppState, command: &AuthConfigCommand) {
    if let AuthConfigCommand::Create(c) = command {
        if let AuthSettings::Oauth2(o) = &c.settings {
            super::sealing::shred_unused(state, &o.client_secret.data_key_id, "auth_config").await;
        }
    }
}

/// The current state of an auth config of the caller's workspace, from the log.
async fn load(state: &AppState, caller: &Caller, id: &str) -> Result<AuthConfig, CommandError> {
    match state
        .ledger
        .load::<AuthConfig>(&caller.workspace_id, id)
        .await
    {
        // An id that cannot name an aggregate names none.
        Err(crate::ledger::LedgerError::Envelope(_)) => {
            Err(DomainError::NotFound("auth config").into())
        }
        other => Ok(other?),
    }
}

/// Applies a partial update; a new client secret is sealed under the same data key.
pub async fn update(
    state: &AppState,
    caller: &Caller,
    id: &str,
    input: UpdateAuthConfigInput,
) -> Result<u64, CommandError> {
    let current = load(state, caller, id).await?;
    let old = current
        .settings
        .clone()
        .ok_or(CommandError::Domain(DomainError::NotFound("auth config")))?;
    if let (AuthSettings::Oauth2(o), Some(secret)) = (&old, input.client_secret_only()) {
        let dk = o.client_secret.data_key_id.clone();
        let sealed = seal_client_secret(state, caller, id, Some(&dk), secret).await?;
        let committed = state
            .ledger
            .execute::<AuthConfig>(
                &caller.workspace_id,
                id,
                &caller.actor(),
                &AuthConfigCommand::RotateClientSecret(sealed),
            )
            .await?;
        wait_for_write(state, committed.position).await?;
        return Ok(committed.position);
    }
    let settings = match (
        old,
        input.oauth2,
        input.api_key,
        input.postgres,
        input.connector,
    ) {
        (AuthSettings::Connector(old), None, None, None, Some(c)) => {
            if c.id.as_deref().is_some_and(|id| id != old.connector) {
                return Err(invalid(
                    "connector",
                    "the connector of an auth config cannot change",
                ));
            }
            let dynamic = c.dynamic_credentials.or(old.dynamic_credentials);
            AuthSettings::Connector(
                connector_settings(state, &old.connector, &c.settings, dynamic).await?,
            )
        }
        (AuthSettings::Oauth2(o), Some(i), None, None, None) => {
            AuthSettings::Oauth2(updated_oauth2(state, caller, id, o, i).await?)
        }
        (AuthSettings::ApiKey(_), None, Some(k), None, None) => AuthSettings::ApiKey(k),
        (AuthSettings::Postgres(_), None, None, Some(p), None) => {
            super::check_destination_host(state, "host", &p.host).await?;
            AuthSettings::Postgres(p)
        }
        (old, None, None, None, None) => old,
        (old, ..) => {
            return Err(invalid(
                "auth_type",
                format!(
                    "this auth config is {}; settings of another type were given",
                    old.auth_type()
                ),
            ))
        }
    };
    let command = AuthConfigCommand::Update {
        name: input.name.unwrap_or(current.name.clone()),
        settings,
        token_release: input.token_release.unwrap_or(current.token_release),
        offered: input.offered.unwrap_or(current.offered),
    };
    let committed = state
        .ledger
        .execute::<AuthConfig>(&caller.workspace_id, id, &caller.actor(), &command)
        .await?;
    wait_for_write(state, committed.position).await?;
    if let crate::domain::Event::AuthConfigUpdated(u) = &committed.event {
        if !u.removed_scopes.is_empty() {
            super::connections::mark_needs_reconsent(
                state,
                &caller.workspace_id,
                id,
                u.version,
                &u.removed_scopes,
                &caller.actor(),
            )
            .await?;
        }
    }
    Ok(committed.position)
}

/// An OAuth2 auth config's settings with what an update gives changed: endpoints checked
/// against the destination policy, return URLs checked, a new client secret sealed.
async fn updated_oauth2(
    state: &AppState,
    caller: &Caller,
    id: &str,
    mut o: OAuth2Settings,
    i: OAuth2Input,
) -> Result<OAuth2Settings, CommandError> {
    if let Some(v) = i.client_id {
        o.client_id = v;
    }
    if let Some(v) = i.scopes {
        o.scopes = v;
    }
    if let Some(v) = i.redirect_urls {
        o.redirect_urls = v;
    }
    if let Some(v) = i.authorization_url {
        o.authorization_url = v;
    }
    if let Some(v) = i.token_url {
        o.token_url = v;
    }
    if let Some(v) = i.revocation_url {
        o.revocation_url = Some(v);
    }
    if let Some(v) = i.client_auth_method {
        o.client_auth_method = v;
    }
    if let Some(v) = i.pkce {
        o.pkce = v;
    }
    if let Some(v) = i.extra_authorize_params {
        o.extra_authorize_params = v;
    }
    let mut urls = vec![
        ("authorization_url", o.authorization_url.as_str()),
        ("token_url", o.token_url.as_str()),
    ];
    urls.extend(o.revocation_url.as_deref().map(|u| ("revocation_url", u)));
    super::check_destinations(state, &urls).await?;
    let returns: Vec<&str> = o.redirect_urls.iter().map(String::as_str).collect();
    super::check_return_urls(state, "redirect_urls", &returns)?;
    if let Some(secret) = i.client_secret {
        let dk = o.client_secret.data_key_id.clone();
        o.client_secret = seal_client_secret(state, caller, id, Some(&dk), &secret).await?;
    }
    Ok(o)
}

/// The outcome of deleting an auth config.
pub enum Deleted {
    Done {
        revoked_connections: u64,
    },
    /// Refused: these live connections depend on it (no `cascade=revoke`).
    HasDependants(Vec<String>),
}

/// Deletes an auth config; with `cascade` its live connections are revoked first (at the
/// provider too), otherwise their existence refuses the deletion.
pub async fn delete(
    state: &AppState,
    caller: &Caller,
    id: &str,
    cascade: bool,
) -> Result<Deleted, CommandError> {
    let live = state
        .projections
        .live_connections_of(&caller.workspace_id, id)
        .await?;
    if !live.is_empty() && !cascade {
        return Ok(Deleted::HasDependants(
            live.into_iter().map(|r| r.id).collect(),
        ));
    }
    let mut revoked = 0u64;
    for row in &live {
        match super::connections::revoke(
            state,
            &caller.workspace_id,
            &row.id,
            &caller.actor(),
            Some("auth config deleted".into()),
        )
        .await
        {
            Ok(_) => revoked += 1,
            Err(CommandError::Domain(DomainError::Rejected(_) | DomainError::NotFound(_))) => {}
            Err(e) => return Err(e),
        }
    }
    lifecycle(
        state,
        caller,
        id,
        AuthConfigCommand::Delete {
            dependants: revoked,
            cascade,
        },
    )
    .await?;
    Ok(Deleted::Done {
        revoked_connections: revoked,
    })
}

/// Runs the auth config's native connector test (postgres: connect, `SELECT 1`); the run is
/// recorded as `auth_config.tested`.
pub async fn test(
    state: &AppState,
    caller: &Caller,
    id: &str,
    credentials: Option<serde_json::Value>,
) -> Result<serde_json::Value, CommandError> {
    let config = load(state, caller, id).await?;
    let settings = config
        .settings
        .ok_or(CommandError::Domain(DomainError::NotFound("auth config")))?;
    let run = TestRun {
        workspace_id: &caller.workspace_id,
        actor: &caller.actor(),
        auth_config_id: id,
    };
    run_test(state, run, &settings, credentials).await
}

/// Who runs a connector test, of which auth config.
#[derive(Clone, Copy)]
pub(crate) struct TestRun<'a> {
    pub workspace_id: &'a str,
    pub actor: &'a crate::ledger::Actor,
    pub auth_config_id: &'a str,
}

/// The connector test of `settings` with the credentials given, recorded as
/// `auth_config.tested` once it ran (input refused before anything was tried is not a run).
/// Shared by every face: the API, the console and the hosted connect page. The answer is
/// the report (`ok`, and `class` + `error` when it failed); the record is appended before it
/// is given (no record, no answer).
pub(crate) async fn run_test(
    state: &AppState,
    run: TestRun<'_>,
    settings: &AuthSettings,
    credentials: Option<serde_json::Value>,
) -> Result<serde_json::Value, CommandError> {
    let started = std::time::Instant::now();
    let (connector, driver, outcome) = match settings {
        AuthSettings::Postgres(p) => {
            let c = credentials.ok_or_else(|| {
                invalid(
                    "credentials",
                    "{\"user\", \"password\"} are required to test",
                )
            })?;
            // Shaped like a connection's credentials: errors never echo a value.
            let c: super::connections::PostgresCredentials =
                super::connections::shape(&c, "{\"user\": string, \"password\": string}")?;
            super::check_destination_host(state, "host", &p.host).await?;
            let outcome = crate::connectors::postgres::test_legacy(
                p,
                &c.user,
                &c.password,
                state.connections.provider_timeout,
                &state.destinations,
            )
            .await;
            ("postgres".to_string(), "postgres".to_string(), outcome)
        }
        AuthSettings::Connector(c) => {
            let given = credentials.ok_or_else(|| {
                invalid(
                    "credentials",
                    "the connection's credentials are required to test",
                )
            })?;
            let definition = known_connector(&c.connector)?;
            let outcome = match connector_test(state, c, &given).await {
                Ok(rtt) => Ok(rtt),
                Err(Ok(failure)) => Err(failure.into()),
                Err(Err(e)) => return Err(e),
            };
            (definition.id.clone(), definition.driver.clone(), outcome)
        }
        other => {
            return Err(invalid(
                "auth_type",
                format!(
                    "{} has no connector test; its connections are checked by the provider",
                    other.auth_type()
                ),
            ))
        }
    };
    let tested = match &outcome {
        Ok(rtt) => Some(AuthConfigTested {
            auth_config_id: run.auth_config_id.to_string(),
            connector: connector.clone(),
            outcome: TestOutcome::Ok,
            class: None,
            duration_ms: millis(*rtt),
        }),
        Err(crate::connectors::ConnectorError::Failed(f)) => Some(AuthConfigTested {
            auth_config_id: run.auth_config_id.to_string(),
            connector: connector.clone(),
            outcome: TestOutcome::Failed,
            class: Some(f.class.as_str().to_string()),
            duration_ms: millis(started.elapsed()),
        }),
        // Refused before any connection was tried: not a run.
        Err(_) => None,
    };
    if let Some(tested) = tested {
        record_test(state, run, tested).await?;
    }
    report(&connector, &driver, outcome)
}

fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Appends `auth_config.tested` (its own aggregate per run) and waits for the read side.
async fn record_test(
    state: &AppState,
    run: TestRun<'_>,
    tested: AuthConfigTested,
) -> Result<u64, CommandError> {
    let key = crate::ledger::AggregateKey::new(
        run.workspace_id,
        AUTH_CONFIG_TEST_AGGREGATE,
        Uuid::now_v7().to_string(),
    )
    .map_err(|e| CommandError::Ledger(e.into()))?;
    let event = crate::domain::Event::AuthConfigTested(tested);
    let committed = state.ledger.append_first(&key, run.actor, &event).await?;
    wait_for_write(state, committed.position).await?;
    Ok(committed.position)
}

/// A connector test's answer: passed with its round trip, or failed with its class and a
/// message without secrets; a destination the policy refuses is a 422.
fn report(
    connector: &str,
    driver: &str,
    outcome: Result<std::time::Duration, crate::connectors::ConnectorError>,
) -> Result<serde_json::Value, CommandError> {
    use crate::connectors::ConnectorError;
    Ok(match outcome {
        Ok(rtt) => serde_json::json!({
            "ok": true,
            "connector": connector,
            "driver": driver,
            "latency_ms": rtt.as_millis() as u64,
        }),
        Err(ConnectorError::Failed(f)) => serde_json::json!({
            "ok": false,
            "connector": connector,
            "driver": driver,
            "class": f.class,
            "error": f.to_string(),
        }),
        Err(ConnectorError::Refused(r)) => return Err(invalid("host", r.to_string())),
        Err(e @ ConnectorError::NoDriver(_)) => return Err(invalid("connector", e.to_string())),
    })
}

/// Tests a connector auth config with a connection's credentials (checked against the
/// definition first). `Err(Ok(failure))`: the test ran and failed; `Err(Err(_))`: it could
/// not run (bad input, a refused destination).
pub(crate) async fn connector_test(
    state: &AppState,
    c: &crate::domain::auth_config::ConnectorSettings,
    given: &serde_json::Value,
) -> Result<std::time::Duration, Result<crate::connectors::Failure, CommandError>> {
    use crate::connectors::ConnectorError;
    let definition = known_connector(&c.connector).map_err(Err)?;
    let credentials = connector_credentials(definition, given).map_err(Err)?;
    recheck_destinations(state, definition, &c.settings)
        .await
        .map_err(Err)?;
    let values = crate::connectors::Values {
        settings: &c.settings,
        credentials: &credentials,
    };
    crate::connectors::test(
        definition,
        &values,
        state.connections.provider_timeout,
        &state.destinations,
    )
    .await
    .map_err(|e| match e {
        ConnectorError::Failed(f) => Ok(f),
        ConnectorError::Refused(r) => Err(invalid("host", r.to_string())),
        e @ ConnectorError::NoDriver(_) => Err(invalid("connector", e.to_string())),
    })
}

fn known_connector(id: &str) -> Result<&'static crate::connectors::Definition, CommandError> {
    crate::connectors::definition(id).ok_or_else(|| {
        let shown: String = id.chars().take(64).collect();
        invalid(
            "connector",
            format!("no connector {shown:?} (the README lists them)"),
        )
    })
}

fn refusal(r: crate::connectors::definition::Refusal) -> CommandError {
    invalid(r.field, r.reason)
}

/// A connection's credentials for a connector, checked against its definition.
pub(crate) fn connector_credentials(
    definition: &'static crate::connectors::Definition,
    given: &serde_json::Value,
) -> Result<BTreeMap<String, serde_json::Value>, CommandError> {
    crate::connectors::definition::check(definition, crate::connectors::Part::Credentials, given)
        .map_err(refusal)
}

/// The auth config's part of a connector's values, checked against its definition, hosts and
/// endpoints judged by the destination policy.
async fn connector_settings(
    state: &AppState,
    id: &str,
    given: &serde_json::Value,
    dynamic_credentials: Option<crate::domain::dynamic_credential::DynamicCredentialsPolicy>,
) -> Result<crate::domain::auth_config::ConnectorSettings, CommandError> {
    let definition = known_connector(id)?;
    super::dynamic_credentials::check_policy(definition, dynamic_credentials.as_ref())?;
    let settings =
        crate::connectors::definition::check(definition, crate::connectors::Part::Config, given)
            .map_err(refusal)?;
    recheck_destinations(state, definition, &settings).await?;
    Ok(crate::domain::auth_config::ConnectorSettings {
        connector: definition.id.clone(),
        settings,
        dynamic_credentials,
    })
}

/// Judges the definition's host and URL fields with the destination policy (again at every
/// test: the policy may have changed since the auth config was made).
pub(crate) async fn recheck_destinations(
    state: &AppState,
    definition: &'static crate::connectors::Definition,
    settings: &BTreeMap<String, serde_json::Value>,
) -> Result<(), CommandError> {
    use crate::connectors::definition::FieldType;
    for field in definition.fields_of(crate::connectors::Part::Config) {
        let Some(value) = settings.get(&field.name).and_then(|v| v.as_str()) else {
            continue;
        };
        match field.kind {
            FieldType::Host => super::check_destination_host(state, &field.name, value).await?,
            FieldType::Url => super::check_destinations(state, &[(&field.name, value)]).await?,
            _ => {}
        }
    }
    Ok(())
}

/// Disables, enables or deletes; deletion shreds the auth config's data key afterwards, so
/// its history stays verifiable and its secret becomes unrecoverable.
pub async fn lifecycle(
    state: &AppState,
    caller: &Caller,
    id: &str,
    command: AuthConfigCommand,
) -> Result<u64, CommandError> {
    let data_key = match (&command, load(state, caller, id).await?.settings) {
        (AuthConfigCommand::Delete { .. }, Some(AuthSettings::Oauth2(o))) => {
            Some(o.client_secret.data_key_id)
        }
        _ => None,
    };
    let committed = state
        .ledger
        .execute::<AuthConfig>(&caller.workspace_id, id, &caller.actor(), &command)
        .await?;
    if let Some(dk) = data_key {
        state.vault.shred(&dk).await?;
    }
    wait_for_write(state, committed.position).await?;
    Ok(committed.position)
}

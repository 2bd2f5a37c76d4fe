//! Token release: hands an agent the connection's current upstream access token, for APIs
//! the gateway does not cover. Only when the auth config opted in; refreshed first when
//! near expiry; `credential.released` is appended before the token leaves (fail closed).

use secrecy::SecretString;
use uuid::Uuid;

use super::AgentError;
use crate::app::AppState;
use crate::commands::connections;
use crate::commands::{wait_for_write, Caller};
use crate::domain::auth_config::AuthSettings;
use crate::domain::credential_release::CredentialRelease;
use crate::domain::CredentialReleased;
use crate::gateway::tools::Credential;

pub struct Released {
    pub access_token: SecretString,
    pub token_type: String,
    pub expires_at: Option<time::OffsetDateTime>,
}

pub async fn release(state: &AppState, caller: &Caller, id: &str) -> Result<Released, AgentError> {
    let ws = &caller.workspace_id;
    let scope = super::connection_in_scope(state, caller, id).await?;
    // Whether the auth config releases tokens at all is decided before the connection's
    // state: a caller refused the token must not start a connect flow on demand (below).
    if let Some(row) = state.projections.connection(ws, id).await? {
        let config = state
            .ledger
            .load::<crate::domain::auth_config::AuthConfig>(ws, &row.auth_config_id)
            .await?;
        if !config.token_release {
            return Err(AgentError::TokenReleaseDisabled);
        }
        if !matches!(config.settings, Some(AuthSettings::Oauth2(_))) {
            return Err(super::invalid(
                "connection",
                "only OAuth connections hold an access token to release",
            ));
        }
    }
    let usable = super::usable_or_connect(state, ws, super::Asker::key(caller), id).await?;
    if !scope.allows_auth_config(&usable.connection.auth_config_id) {
        return Err(AgentError::OutsideGateway);
    }
    if !usable.config.token_release {
        return Err(AgentError::TokenReleaseDisabled);
    }
    if !matches!(usable.config.settings, Some(AuthSettings::Oauth2(_))) {
        return Err(super::invalid(
            "connection",
            "only OAuth connections hold an access token to release",
        ));
    }
    let (usable, credential) =
        connections::credential_for_call(state, ws, id, &caller.actor(), usable).await?;
    let Credential::Bearer(access_token) = credential else {
        return Err(super::invalid(
            "connection",
            "the connection holds no access token",
        ));
    };
    let tokens = usable
        .connection
        .tokens
        .as_ref()
        .ok_or_else(|| super::invalid("connection", "the connection holds no access token"))?;
    let event = CredentialReleased {
        connection_id: id.to_string(),
        auth_config_id: usable.connection.auth_config_id.clone(),
        user_id: usable.connection.user_id.clone(),
        fingerprint: tokens.access_token.fingerprint.clone(),
        expires_at: tokens.expires_at,
    };
    let committed = state
        .ledger
        .create::<CredentialRelease>(ws, &Uuid::now_v7().to_string(), &caller.actor(), &event)
        .await?;
    wait_for_write(state, committed.position).await?;
    Ok(Released {
        access_token,
        token_type: tokens.token_type.clone(),
        expires_at: tokens.expires_at,
    })
}

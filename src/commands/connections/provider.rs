//! Talking to the provider with the auth config's client credentials: code exchange and
//! sealing what it answers.

use super::*;

/// The plaintext client credentials of an OAuth auth config.
pub(super) struct OpenedClient {
    pub(super) settings: OAuth2Settings,
    secret: SecretString,
}

pub(super) async fn open_client(
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
    pub(super) fn credentials(&self) -> ClientCredentials<'_> {
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
pub(super) async fn exchange(
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
            // The domain keeps only the requested ones (and records the grant if wider).
            Ok(Ok(ConnectionAuthorized {
                scopes,
                tokens: sealed,
                granted_scopes: None,
            }))
        }
        Err(e) => Ok(Err(ConnectionAuthorizationFailed {
            error: e.code().to_string(),
            error_description: Some(clip_text(&e.to_string(), 512)),
        })),
    }
}

/// Seals a token response; without a new refresh token the previous one is kept.
pub(super) async fn seal_tokens(
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

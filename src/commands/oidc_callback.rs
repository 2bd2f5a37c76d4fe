//! The part of an OpenID Connect sign-in both audiences share (the team's SSO, end users'
//! sign-in): what a provider's callback proves once checked. The issuer the response named
//! (RFC 9207) is the one asked, the code is exchanged with the client secret and the PKCE
//! verifier, the `id_token` is verified (signature, issuer, audience = client id, nonce,
//! expiry). A refusal is the `access.denied` reason the caller records.

use crate::app::AppState;
use crate::domain::DenialReason;
use crate::oauth::oidc::{self, Discovery, Expected, Flow, Identity, OidcError};

/// The client a workspace registered at its provider, and where the provider returns.
pub struct Client<'a> {
    pub id: &'a str,
    pub secret: &'a str,
    pub redirect_uri: &'a str,
    /// For the logs: which sign-in this is (`team SSO`, `end user`).
    pub purpose: &'static str,
}

/// The identity the provider vouches for at this callback, or why it is refused.
pub async fn identify(
    state: &AppState,
    discovery: &Discovery,
    client: &Client<'_>,
    (configured_issuer, flow): (&str, &Flow),
    (code, iss): (&str, Option<&str>),
) -> Result<Identity, DenialReason> {
    // RFC 9207: a provider that names itself in the response must be the one asked (a
    // response from another provider mixed into this flow is refused before its code goes
    // anywhere).
    if iss.is_some_and(|iss| iss != discovery.issuer) {
        return Err(DenialReason::SsoProviderError);
    }
    let id_token = oidc::exchange_code(
        &state.oauth,
        discovery,
        (client.id, client.secret),
        code,
        client.redirect_uri,
        &flow.code_verifier,
    )
    .await
    .map_err(|e| {
        tracing::info!(purpose = client.purpose, error = %e, "code exchange refused");
        DenialReason::SsoProviderError
    })?;
    let expected = Expected {
        issuer: configured_issuer,
        client_id: client.id,
        nonce: &flow.nonce,
    };
    let now = state.clock.now().unix_timestamp();
    oidc::verify_id_token(&state.identity, discovery, &id_token, &expected, now)
        .await
        .map_err(|e| {
            tracing::info!(purpose = client.purpose, error = %e, "id_token refused");
            match e {
                OidcError::Nonce => DenialReason::InvalidSsoState,
                OidcError::IdToken(_) => DenialReason::InvalidToken,
                _ => DenialReason::SsoProviderError,
            }
        })
}

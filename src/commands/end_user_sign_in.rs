//! End users' browser sign-in, HTTP-free: the workspace's end-user identity provider as
//! a browser sign-in needs it (issuer, audience, JWKS URL as before, plus the client id and
//! client secret it issued to authledger for the `/me/` pages).
//!
//! A sign-in is the code flow with PKCE (`oauth::oidc`), as team SSO's: the face keeps
//! the flow's single-use secrets and hands them back with the code; the end user is the
//! `id_token`'s `sub`, and their session is recorded by its hash (`end_user.signed_in`,
//! aggregate `end_user`), so every instance decides it from the log.
//!
//! The client secret is sealed under a data key of its own and shown only as its
//! fingerprint; the one it replaces (or the one dropped when the client id is cleared, which
//! turns browser sign-in off) is shredded once the change is written.

use secrecy::{ExposeSecret as _, SecretString};

use super::members::MemberToken;
use super::oidc_callback;
use super::sealing::{self, SecretSlot};
use super::{check_destinations, record_denial, wait_for_write, Caller, CommandError, EndUser};
use crate::app::AppState;
use crate::domain::end_user::{end_user_id, EndUserCommand, EndUserSessions};
use crate::domain::workspace::{Workspace, WorkspaceCommand};
use crate::domain::{
    AccessDenied, DenialReason, DomainError, EndUserSignedIn, IdentityProviderConfigured,
};
use crate::ledger::{Actor, ActorType};
use crate::oauth::oidc::{self, Discovery, Flow};

/// Where the provider sends an end user's browser back, under the service's public URL.
pub const CALLBACK_PATH: &str = "/me/callback";

pub(crate) fn slot(workspace_id: &str) -> SecretSlot<'_> {
    SecretSlot {
        workspace_id,
        resource_type: "workspace",
        resource_id: workspace_id,
        field: "end_user_client_secret",
    }
}

/// The redirect URI an admin registers at the end users' provider.
pub fn redirect_uri(state: &AppState) -> String {
    format!(
        "{}{CALLBACK_PATH}",
        state.connections.public_url.trim_end_matches('/')
    )
}

/// What an admin enters. `client_secret` `None` (or empty) keeps the one configured.
pub struct IdentityProviderInput {
    pub issuer: String,
    pub audience: String,
    pub jwks_url: String,
    pub client_id: BrowserClientId,
    pub client_secret: Option<SecretString>,
}

/// What the admin said of the browser sign-in's client id. Saying nothing keeps it (and
/// its sealed secret): a client that only knows the JWT settings must not turn browser
/// sign-in off and shred its secret by leaving out a field it never knew.
pub enum BrowserClientId {
    /// Not mentioned: the one configured stays.
    Keep,
    /// This id; empty turns browser sign-in off.
    Set(String),
}

/// Sets the identity provider whose JWTs identify the workspace's end users
/// (`workspace.identity_provider_configured`) and, with a client id, their browser sign-in:
/// then the issuer must be an endpoint URL the destination policy allows whose discovery
/// document fits (a clear 422 now rather than a broken sign-in later).
pub async fn configure_identity_provider(
    state: &AppState,
    caller: &Caller,
    input: IdentityProviderInput,
) -> Result<IdentityProviderConfigured, CommandError> {
    let ws: Workspace = state
        .ledger
        .load(&caller.workspace_id, &caller.workspace_id)
        .await?;
    let client_id = match input.client_id {
        BrowserClientId::Keep => ws
            .identity_provider
            .as_ref()
            .and_then(|idp| idp.client_id.clone()),
        BrowserClientId::Set(c) => Some(c.trim().to_string()),
    }
    .filter(|c| !c.is_empty());
    let issuer = input.issuer.trim().to_string();
    let jwks_url = input.jwks_url.trim().to_string();
    check_destinations(state, &[("jwks_url", jwks_url.as_str())]).await?;
    if client_id.is_some() {
        crate::domain::workspace::check_endpoint_url("issuer", &issuer)?;
        check_destinations(state, &[("issuer", issuer.as_str())]).await?;
        oidc::discover(&state.destinations, &issuer)
            .await
            .map_err(|e| DomainError::Invalid {
                field: "issuer",
                reason: e.to_string(),
            })?;
    }
    let previous = ws.identity_provider.and_then(|idp| idp.client_secret);
    let new_secret = input
        .client_secret
        .filter(|s| !s.expose_secret().trim().is_empty());
    let client_secret = match (&client_id, &new_secret, &previous) {
        (None, _, _) => None,
        (Some(_), Some(secret), _) => {
            let owner = format!("workspace:{}/end_user_sign_in", caller.workspace_id);
            let data_key = state.vault.create_data_key(&owner).await?;
            Some(
                sealing::seal(
                    state,
                    slot(&caller.workspace_id),
                    &data_key,
                    secret.expose_secret().trim().as_bytes(),
                )
                .await?,
            )
        }
        (Some(_), None, Some(kept)) => Some(kept.clone()),
        (Some(_), None, None) => {
            return Err(DomainError::Invalid {
                field: "client_secret",
                reason: "the client secret your provider issued is required".into(),
            }
            .into())
        }
    };
    let replaced = previous.filter(|p| {
        client_secret
            .as_ref()
            .is_none_or(|now| now.data_key_id != p.data_key_id)
    });
    let idp = IdentityProviderConfigured {
        issuer,
        audience: input.audience.trim().to_string(),
        jwks_url,
        client_id,
        client_secret,
    };
    super::change_workspace(
        state,
        caller,
        WorkspaceCommand::ConfigureIdentityProvider(idp.clone()),
    )
    .await?;
    if let Some(old) = replaced {
        state.vault.shred(&old.data_key_id).await?;
    }
    Ok(idp)
}

/// How long an end user's session may last at most, and idle.
pub const SESSION_ABSOLUTE: std::time::Duration = std::time::Duration::from_secs(12 * 3600);
pub const SESSION_IDLE: std::time::Duration = std::time::Duration::from_secs(30 * 60);

const ROUTE: &str = "/me/callback";

/// Why a sign-in step did not sign anyone in; refusals were recorded as `access.denied`.
#[derive(Debug, thiserror::Error)]
pub enum EndUserSignInError {
    #[error("browser sign-in is not set up for this workspace")]
    NotConfigured,
    #[error("sign-in refused: {0:?}")]
    Refused(DenialReason),
    #[error(transparent)]
    Command(#[from] CommandError),
}

/// An open end-user session, as the `/me/` pages see it.
#[derive(Debug, Clone)]
pub struct EndUserSession {
    pub user: EndUser,
    pub session: MemberToken,
}

/// The workspace's identity provider with a browser client, and its discovery document.
async fn provider(
    state: &AppState,
    workspace_id: &str,
) -> Result<(IdentityProviderConfigured, Discovery), EndUserSignInError> {
    if crate::ledger::AggregateKey::new(workspace_id, "workspace", workspace_id).is_err() {
        return Err(EndUserSignInError::NotConfigured);
    }
    let ws: Workspace = state
        .ledger
        .load(workspace_id, workspace_id)
        .await
        .map_err(|_| EndUserSignInError::NotConfigured)?;
    let idp = ws
        .identity_provider
        .filter(|idp| idp.browser_client().is_some())
        .ok_or(EndUserSignInError::NotConfigured)?;
    match oidc::discover(&state.destinations, &idp.issuer).await {
        Ok(d) => Ok((idp, d)),
        Err(e) => {
            tracing::warn!(workspace = workspace_id, error = %e, "end users' provider discovery failed");
            Err(EndUserSignInError::Refused(DenialReason::SsoProviderError))
        }
    }
}

/// Starts a sign-in: the flow's secrets (for the face to keep, single use) and the
/// provider's authorization URL. The state names its workspace.
pub async fn start(
    state: &AppState,
    workspace_id: &str,
) -> Result<(Flow, String), EndUserSignInError> {
    let (idp, discovery) = provider(state, workspace_id).await?;
    let Some((client_id, _)) = idp.browser_client() else {
        return Err(EndUserSignInError::NotConfigured);
    };
    let mut flow = Flow::new();
    flow.state = format!("{workspace_id}.{}", flow.state);
    let url = oidc::authorization_url(&discovery, client_id, &redirect_uri(state), &flow).map_err(
        |e| {
            tracing::warn!(workspace = workspace_id, error = %e, "end users' authorization URL");
            EndUserSignInError::Refused(DenialReason::SsoProviderError)
        },
    )?;
    Ok((flow, url))
}

/// Records a refused sign-in step (`access.denied` at the callback, with its reason).
pub async fn deny(state: &AppState, workspace_id: &str, user: Option<&str>, reason: DenialReason) {
    let actor = match user {
        Some(u) => Actor {
            actor_type: ActorType::User,
            id: u.to_string(),
        },
        None => Actor {
            actor_type: ActorType::Anonymous,
            id: "me-sign-in".into(),
        },
    };
    let status = match reason {
        DenialReason::InvalidSsoState | DenialReason::SsoProviderError => 400,
        _ => 401,
    };
    let denial = AccessDenied {
        method: "GET".into(),
        route: ROUTE.into(),
        status,
        reason,
        target_id: None,
    };
    let ws = state
        .projections
        .workspace(workspace_id)
        .await
        .ok()
        .flatten()
        .map(|w| w.id);
    record_denial(state, ws.as_deref(), actor, denial).await;
}

async fn refuse<T>(
    state: &AppState,
    workspace_id: &str,
    reason: DenialReason,
) -> Result<T, EndUserSignInError> {
    deny(state, workspace_id, None, reason).await;
    Err(EndUserSignInError::Refused(reason))
}

/// Completes a sign-in at the callback: `flow` is the one the face kept for this browser
/// (its state already matched), `code` the provider's, `iss` the issuer the response named
/// (RFC 9207). The code is exchanged with the client secret and PKCE verifier, the
/// `id_token` verified (signature, issuer, audience = client id, nonce, expiry); the end user
/// is its `sub`, and a session opens (`end_user.signed_in`).
pub async fn complete(
    state: &AppState,
    workspace_id: &str,
    flow: &Flow,
    (code, iss): (&str, Option<&str>),
) -> Result<EndUserSession, EndUserSignInError> {
    let (idp, discovery) = match provider(state, workspace_id).await {
        Ok(p) => p,
        Err(EndUserSignInError::Refused(reason)) => {
            return refuse(state, workspace_id, reason).await
        }
        Err(e) => return Err(e),
    };
    let Some((client_id, sealed)) = idp.browser_client() else {
        return Err(EndUserSignInError::NotConfigured);
    };
    let secret = sealing::open_text(state, slot(workspace_id), sealed).await?;
    let client = oidc_callback::Client {
        id: client_id,
        secret: secret.expose_secret(),
        redirect_uri: &redirect_uri(state),
        purpose: "end user",
    };
    let identity =
        match oidc_callback::identify(state, &discovery, &client, (&idp.issuer, flow), (code, iss))
            .await
        {
            Ok(identity) => identity,
            Err(reason) => return refuse(state, workspace_id, reason).await,
        };
    open_session(state, workspace_id, &identity.subject, &identity.issuer).await
}

async fn open_session(
    state: &AppState,
    workspace_id: &str,
    user_id: &str,
    issuer: &str,
) -> Result<EndUserSession, EndUserSignInError> {
    let id = end_user_id(user_id);
    let session = MemberToken::generate(workspace_id, &id);
    let actor = Actor {
        actor_type: ActorType::User,
        id: user_id.to_string(),
    };
    let committed = state
        .ledger
        .execute::<EndUserSessions>(
            workspace_id,
            &id,
            &actor,
            &EndUserCommand::SignIn(EndUserSignedIn {
                user_id: user_id.to_string(),
                issuer: issuer.to_string(),
                session_hash: session.hash(),
                expires_at: state.clock.now() + SESSION_ABSOLUTE,
            }),
        )
        .await
        .map_err(CommandError::from)?;
    wait_for_write(state, committed.position).await?;
    Ok(EndUserSession {
        user: EndUser {
            workspace_id: workspace_id.to_string(),
            user_id: user_id.to_string(),
        },
        session,
    })
}

/// The end user behind a session token, if the session is open now (decided from the
/// end user's events in the log: signed out on any instance is closed here too).
pub async fn session(
    state: &AppState,
    token: &str,
) -> Result<Option<EndUserSession>, CommandError> {
    let Some(session) = MemberToken::parse(token) else {
        return Ok(None);
    };
    if !session.member_id.starts_with("eu_")
        || crate::ledger::AggregateKey::new(&session.workspace_id, "end_user", &session.member_id)
            .is_err()
    {
        return Ok(None);
    }
    let sessions: EndUserSessions = state
        .ledger
        .load(&session.workspace_id, &session.member_id)
        .await?;
    let user = sessions
        .session(&session.hash(), state.clock.now())
        .map(|user_id| EndUser {
            workspace_id: session.workspace_id.clone(),
            user_id: user_id.to_string(),
        });
    Ok(user.map(|user| EndUserSession { user, session }))
}

/// Ends the session (`end_user.signed_out`).
pub async fn sign_out(state: &AppState, s: &EndUserSession) -> Result<(), CommandError> {
    let actor = Actor {
        actor_type: ActorType::User,
        id: s.user.user_id.clone(),
    };
    let committed = state
        .ledger
        .execute::<EndUserSessions>(
            &s.session.workspace_id,
            &s.session.member_id,
            &actor,
            &EndUserCommand::SignOut {
                session_hash: s.session.hash(),
            },
        )
        .await?;
    wait_for_write(state, committed.position).await?;
    Ok(())
}

/// A callback without a usable flow, or the provider's error: recorded.
pub async fn bad_state(state: &AppState, workspace_id: Option<&str>, reason: DenialReason) {
    deny(
        state,
        workspace_id.unwrap_or(crate::domain::SYSTEM_WORKSPACE),
        None,
        reason,
    )
    .await;
}

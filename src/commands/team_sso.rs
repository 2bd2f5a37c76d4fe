//! Team SSO, HTTP-free: the workspace's setting (the organisation's own OpenID Connect
//! provider for console sign-in) and a sign-in through it.
//!
//! A sign-in is the code flow with PKCE (`oauth::oidc`): the face keeps the flow's
//! single-use secrets (state, nonce, PKCE verifier) and hands them back with the code;
//! here the code is exchanged with the client secret, the `id_token` verified, and the
//! identity decided against the member whose email it carries
//! ([`Member::sso_sign_in`]): a provider-verified email of a member (or a pending
//! invitee, who joins by SSO) signs in; the provider's `sub` is bound at the first SSO
//! sign-in (`member.sso_linked`), so a later token with the same email and another `sub`
//! is refused. Every refusal is an `access.denied` with its reason.
//!
//! The second factor: an SSO sign-in is complete when the provider says so. The
//! organisation's provider is responsible for its own factors (MFA policies there); the
//! workspace's second-factor requirement applies to password sign-ins.

use secrecy::{ExposeSecret as _, SecretString};

use super::members::{self, MemberSession, SignInError};
use super::oidc_callback;
use super::sealing::{self, SecretSlot};
use super::{check_destinations, Caller, CommandError};
use crate::app::AppState;
use crate::domain::member::{member_id, Member, MemberCommand, SsoSignIn};
use crate::domain::workspace::{TeamSsoConfigured, Workspace, WorkspaceCommand};
use crate::domain::{DenialReason, DomainError, MemberSsoLinked};
use crate::ledger::{Actor, ActorType};
use crate::oauth::oidc::{self, Discovery, Flow};

/// Where the provider sends the browser back, under the service's public URL.
pub const CALLBACK_PATH: &str = "/console/sso/callback";
const ROUTE: &str = "/console/sso/callback";

fn slot(workspace_id: &str) -> SecretSlot<'_> {
    SecretSlot {
        workspace_id,
        resource_type: "workspace",
        resource_id: workspace_id,
        field: "team_sso_client_secret",
    }
}

/// The redirect URI an admin registers at their provider.
pub fn redirect_uri(state: &AppState) -> String {
    format!(
        "{}{CALLBACK_PATH}",
        state.connections.public_url.trim_end_matches('/')
    )
}

/// The team SSO settings as a page may show them (the secret only as its fingerprint).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeamSsoView {
    pub issuer: String,
    pub client_id: String,
    pub secret_fingerprint: String,
    pub enabled: bool,
}

/// The workspace's team SSO settings, if any were ever configured.
pub async fn settings(
    state: &AppState,
    workspace_id: &str,
) -> Result<Option<TeamSsoView>, CommandError> {
    let ws: Workspace = state.ledger.load(workspace_id, workspace_id).await?;
    Ok(ws.team_sso.map(|s| TeamSsoView {
        issuer: s.issuer,
        client_id: s.client_id,
        secret_fingerprint: s.client_secret.fingerprint,
        enabled: s.enabled,
    }))
}

/// Whether members of `workspace_id` may sign in with SSO now.
pub async fn enabled(state: &AppState, workspace_id: &str) -> bool {
    if crate::ledger::AggregateKey::new(workspace_id, "workspace", workspace_id).is_err() {
        return false;
    }
    state
        .ledger
        .load::<Workspace>(workspace_id, workspace_id)
        .await
        .is_ok_and(|ws| ws.team_sso_enabled().is_some())
}

/// What an admin enters. `client_secret`: `None` keeps the one configured.
pub struct TeamSsoInput {
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Option<SecretString>,
    pub enabled: bool,
}

/// Configures (or turns off) team SSO (`workspace.team_sso_configured`). The issuer is
/// judged by the destination policy and, when SSO is on, its discovery document must fit
/// (a clear 422 now rather than a broken sign-in later). A new client secret is sealed
/// under a data key of its own; the one it replaces is shredded once the change is written.
pub async fn configure(
    state: &AppState,
    caller: &Caller,
    input: TeamSsoInput,
) -> Result<(), CommandError> {
    let issuer = input.issuer.trim().to_string();
    let client_id = input.client_id.trim().to_string();
    crate::domain::workspace::check_endpoint_url("issuer", &issuer)?;
    check_destinations(state, &[("issuer", issuer.as_str())]).await?;
    if input.enabled {
        oidc::discover(&state.destinations, &issuer)
            .await
            .map_err(|e| DomainError::Invalid {
                field: "issuer",
                reason: e.to_string(),
            })?;
    }
    let ws: Workspace = state
        .ledger
        .load(&caller.workspace_id, &caller.workspace_id)
        .await?;
    let previous = ws.team_sso.map(|s| s.client_secret);
    let new_secret = input
        .client_secret
        .filter(|s| !s.expose_secret().trim().is_empty());
    let client_secret = match (&new_secret, &previous) {
        (Some(secret), _) => {
            let owner = format!("workspace:{}/team_sso", caller.workspace_id);
            let data_key = state.vault.create_data_key(&owner).await?;
            sealing::seal(
                state,
                slot(&caller.workspace_id),
                &data_key,
                secret.expose_secret().trim().as_bytes(),
            )
            .await?
        }
        (None, Some(kept)) => kept.clone(),
        (None, None) => {
            return Err(DomainError::Invalid {
                field: "client_secret",
                reason: "the client secret your provider issued is required".into(),
            }
            .into())
        }
    };
    let replaced =
        previous.filter(|p| new_secret.is_some() && p.data_key_id != client_secret.data_key_id);
    super::change_workspace(
        state,
        caller,
        WorkspaceCommand::ConfigureTeamSso(TeamSsoConfigured {
            issuer,
            client_id,
            client_secret,
            enabled: input.enabled,
        }),
    )
    .await?;
    if let Some(old) = replaced {
        state.vault.shred(&old.data_key_id).await?;
    }
    Ok(())
}

/// Why an SSO step did not sign anyone in; each refusal was recorded as `access.denied`.
#[derive(Debug, thiserror::Error)]
pub enum SsoError {
    #[error("single sign-on is not set up for this workspace")]
    NotConfigured,
    #[error("sign-in refused: {0:?}")]
    Refused(DenialReason),
    #[error(transparent)]
    SignIn(#[from] SignInError),
}

impl From<CommandError> for SsoError {
    fn from(e: CommandError) -> Self {
        SsoError::SignIn(SignInError::Command(e))
    }
}

/// The workspace's enabled settings and its provider's discovery document.
async fn provider(
    state: &AppState,
    workspace_id: &str,
) -> Result<(TeamSsoConfigured, Discovery), SsoError> {
    if crate::ledger::AggregateKey::new(workspace_id, "workspace", workspace_id).is_err() {
        return Err(SsoError::NotConfigured);
    }
    let ws: Workspace = state
        .ledger
        .load(workspace_id, workspace_id)
        .await
        .map_err(|_| SsoError::NotConfigured)?;
    let sso = ws
        .team_sso_enabled()
        .cloned()
        .ok_or(SsoError::NotConfigured)?;
    match oidc::discover(&state.destinations, &sso.issuer).await {
        Ok(d) => Ok((sso, d)),
        Err(e) => {
            tracing::warn!(workspace = workspace_id, error = %e, "team SSO discovery failed");
            Err(SsoError::Refused(DenialReason::SsoProviderError))
        }
    }
}

/// Starts a sign-in: the flow's secrets (for the face to keep, single use) and the URL
/// of the provider's authorization endpoint to send the browser to.
pub async fn start(state: &AppState, workspace_id: &str) -> Result<(Flow, String), SsoError> {
    let (sso, discovery) = provider(state, workspace_id).await?;
    let mut flow = Flow::new();
    // The state names its workspace, so a callback that lost its flow is filed there.
    flow.state = format!("{workspace_id}.{}", flow.state);
    let url = oidc::authorization_url(&discovery, &sso.client_id, &redirect_uri(state), &flow)
        .map_err(|e| {
            tracing::warn!(workspace = workspace_id, error = %e, "team SSO authorization URL");
            SsoError::Refused(DenialReason::SsoProviderError)
        })?;
    Ok((flow, url))
}

/// Records a refused SSO step (the member the email names as actor, when there is one).
pub async fn deny(
    state: &AppState,
    workspace_id: &str,
    member: Option<&str>,
    reason: DenialReason,
) {
    let actor = Actor {
        actor_type: if member.is_some() {
            ActorType::Member
        } else {
            ActorType::Anonymous
        },
        id: member.unwrap_or("console-sso").to_string(),
    };
    let status = match reason {
        DenialReason::InvalidSsoState | DenialReason::SsoProviderError => 400,
        DenialReason::SsoEmailUnverified | DenialReason::SsoSubjectMismatch => 403,
        _ => 401,
    };
    members::deny_at(state, workspace_id, actor, reason, status, ROUTE).await;
}

async fn refuse<T>(
    state: &AppState,
    workspace_id: &str,
    member: Option<&str>,
    reason: DenialReason,
) -> Result<T, SsoError> {
    deny(state, workspace_id, member, reason).await;
    Err(SsoError::Refused(reason))
}

/// Completes a sign-in at the callback: `flow` is the one the face kept for this browser
/// (its `state` already matched), `code` the provider's and `iss` the issuer the
/// authorization response named, if it named one (RFC 9207). `throttled` is the edge's verdict
/// on this address, decided before anything is sent to the provider.
pub async fn complete(
    state: &AppState,
    workspace_id: &str,
    flow: &Flow,
    (code, iss): (&str, Option<&str>),
    throttled: bool,
) -> Result<MemberSession, SsoError> {
    if throttled {
        deny(state, workspace_id, None, DenialReason::SignInThrottled).await;
        return Err(SignInError::Throttled.into());
    }
    let (sso, discovery) = match provider(state, workspace_id).await {
        Ok(p) => p,
        Err(SsoError::Refused(reason)) => return refuse(state, workspace_id, None, reason).await,
        Err(e) => return Err(e),
    };
    let secret = sealing::open_text(state, slot(workspace_id), &sso.client_secret).await?;
    let client = oidc_callback::Client {
        id: &sso.client_id,
        secret: secret.expose_secret(),
        redirect_uri: &redirect_uri(state),
        purpose: "team SSO",
    };
    let identity =
        match oidc_callback::identify(state, &discovery, &client, (&sso.issuer, flow), (code, iss))
            .await
        {
            Ok(identity) => identity,
            Err(reason) => return refuse(state, workspace_id, None, reason).await,
        };
    let now = state.clock.now();
    let Some(email) = identity.email.clone() else {
        return refuse(state, workspace_id, None, DenialReason::SsoEmailUnverified).await;
    };
    let id = member_id(&email);
    if !identity.email_verified {
        return refuse(
            state,
            workspace_id,
            Some(&id),
            DenialReason::SsoEmailUnverified,
        )
        .await;
    }
    let member: Member = state
        .ledger
        .load(workspace_id, &id)
        .await
        .unwrap_or_default();
    let invite_hash = match member.sso_sign_in(&identity.issuer, &identity.subject, now) {
        SsoSignIn::SignIn => None,
        SsoSignIn::Link => Some(None),
        SsoSignIn::Join { invite_hash } => Some(Some(invite_hash)),
        SsoSignIn::OtherSubject => {
            return refuse(
                state,
                workspace_id,
                Some(&id),
                DenialReason::SsoSubjectMismatch,
            )
            .await
        }
        SsoSignIn::NotMember => {
            return refuse(state, workspace_id, Some(&id), DenialReason::UnknownMember).await
        }
    };
    if let Some(invite_hash) = invite_hash {
        let actor = Actor {
            actor_type: ActorType::Member,
            id: id.clone(),
        };
        let link = MemberCommand::LinkSso {
            link: MemberSsoLinked {
                issuer: identity.issuer.clone(),
                subject: identity.subject.clone(),
                invite_hash,
            },
            now,
        };
        state
            .ledger
            .execute::<Member>(workspace_id, &id, &actor, &link)
            .await
            .map_err(CommandError::from)?;
    }
    let session =
        members::open_session_by(state, workspace_id, &id, None, Some(identity.issuer)).await?;
    Ok(session)
}

/// Ends a flow that came back with the provider's error (the person cancelled, or the
/// provider refused): recorded, nothing exchanged.
pub async fn provider_refused(state: &AppState, workspace_id: &str) {
    deny(state, workspace_id, None, DenialReason::SsoProviderError).await;
}

/// A callback without a usable flow (no, expired, or already used state): recorded.
pub async fn bad_state(state: &AppState, workspace_id: Option<&str>) {
    deny(
        state,
        workspace_id.unwrap_or(crate::domain::SYSTEM_WORKSPACE),
        None,
        DenialReason::InvalidSsoState,
    )
    .await;
}

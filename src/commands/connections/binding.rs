//! A connect link completes only the connection of the person it names. When the
//! workspace's end users sign in in the browser (its identity provider has a browser
//! client), every connect link, a hosted form's or an OAuth consent's, is opened at
//! `{public_url}/connect/{secret}` by the signed-in person whose `sub` is the link's
//! `user_id`: anyone else gets neither the form nor the provider's consent, and the attempt
//! is recorded (`access.denied`, `other_user`). For OAuth that page is the only way to the
//! provider: it leaves a binding in the browser (an HMAC of the flow's state hash and its
//! user, in a cookie) that the callback requires, so a consent reached some other way (an
//! authorization URL built or leaked elsewhere) completes nothing.
//!
//! Without such a provider a link is a bearer capability (README): whoever opens it
//! completes that user's connection.

use super::callback::initiated_flow;
use super::hosted::LinkError;
use super::*;
use crate::commands::{record_denial, EndUser};
use crate::domain::workspace::Workspace;
use crate::domain::{AccessDenied, DenialReason};
use crate::ledger::ActorType;

/// Whether the connect links of `workspace_id` are bound to their person: its end users'
/// identity provider has a browser client.
pub async fn bound(state: &AppState, workspace_id: &str) -> Result<bool, CommandError> {
    let ws = load::<Workspace>(state, workspace_id, workspace_id).await?;
    Ok(ws
        .and_then(|w| w.identity_provider)
        .is_some_and(|idp| idp.browser_client().is_some()))
}

/// Who presents a link: the signed-in end user, if any.
pub type Presenter<'a> = Option<&'a EndUser>;

/// Checks a bound link's person: `Ok` when the workspace's links are not bound or the
/// presenter is the link's user; no one signed in is `SignInRequired`; anyone else is
/// recorded (`other_user`) and refused.
pub(super) async fn check_person(
    state: &AppState,
    (method, route): (&str, &str),
    (workspace_id, connection_id, user_id): (&str, &str, &str),
    presenter: Presenter<'_>,
) -> Result<(), LinkError> {
    if !bound(state, workspace_id).await? {
        return Ok(());
    }
    let Some(person) = presenter.filter(|p| p.workspace_id == workspace_id) else {
        return Err(LinkError::SignInRequired {
            workspace_id: workspace_id.to_string(),
        });
    };
    if person.user_id == user_id {
        return Ok(());
    }
    let denial = AccessDenied {
        method: method.into(),
        route: route.into(),
        status: 403,
        reason: DenialReason::OtherUser,
        target_id: Some(connection_id.to_string()),
    };
    let actor = Actor {
        actor_type: ActorType::User,
        id: person.user_id.clone(),
    };
    record_denial(state, Some(workspace_id), actor, denial).await;
    Err(LinkError::OtherPerson)
}

/// The name of the cookie that carries a flow's binding (one per flow, so two flows in one
/// browser keep theirs).
pub fn cookie_name(state_hash: &str, secure: bool) -> String {
    let short: String = state_hash
        .trim_start_matches("sha256:")
        .chars()
        .take(16)
        .collect();
    match secure {
        true => format!("__Host-authledger_bind_{short}"),
        false => format!("authledger_bind_{short}"),
    }
}

/// The cookie name of the flow a presented OAuth `state` names.
pub fn cookie_name_of_state(presented: &str, secure: bool) -> String {
    cookie_name(&oauth::state_hash(presented), secure)
}

/// The binding of a flow to its person, under the deployment's key.
fn binding(state: &AppState, state_hash: &str, user_id: &str) -> String {
    state
        .vault
        .fingerprint(format!("connect-binding:{state_hash}:{user_id}").as_bytes())
        .trim_start_matches("hmac-sha256:")
        .to_string()
}

/// At the callback: a bound workspace's flow completes only in a browser that passed the
/// person check for it.
pub(super) async fn callback_allowed(
    state: &AppState,
    (workspace_id, state_hash, user_id): (&str, &str, &str),
    presented: Option<&str>,
) -> Result<bool, CommandError> {
    if !bound(state, workspace_id).await? {
        return Ok(true);
    }
    let expected = binding(state, state_hash, user_id);
    Ok(presented.is_some_and(|given| {
        bool::from(subtle::ConstantTimeEq::ct_eq(
            given.as_bytes(),
            expected.as_bytes(),
        ))
    }))
}

/// The way to an OAuth flow's consent for its person: the provider's authorization URL and
/// the binding cookie to leave in the browser first.
#[derive(Debug)]
pub struct Consent {
    pub authorize_url: String,
    pub cookie_name: String,
    pub cookie_value: String,
    pub expires_at: OffsetDateTime,
}

/// Opens the OAuth flow a presented `state` names for `presenter`, in a bound workspace. An
/// unbound workspace's OAuth state never opens here (its link is the provider's URL), nor
/// does a hosted link, a claimed flow or a disabled auth config: `Ok(None)` for the caller
/// to treat the secret as a hosted link.
pub async fn consent(
    state: &AppState,
    route: (&str, &str),
    presented: &str,
    presenter: Presenter<'_>,
    secure: bool,
) -> Result<Option<Consent>, LinkError> {
    let Ok(flow) = initiated_flow(state, presented).await? else {
        return Ok(None);
    };
    if flow.conn.authorization_started || !bound(state, &flow.ws).await? {
        return Ok(None);
    }
    let config = load::<AuthConfig>(state, &flow.ws, &flow.conn.auth_config_id)
        .await?
        .filter(|c| c.lifecycle == Lifecycle::Enabled);
    let Some(AuthSettings::Oauth2(o)) = config.and_then(|c| c.settings) else {
        return Ok(None);
    };
    check_person(
        state,
        route,
        (&flow.ws, &flow.id, &flow.conn.user_id),
        presenter,
    )
    .await?;
    let challenge = match &flow.conn.pkce_verifier {
        Some(v) => {
            let verifier =
                sealing::open_text(state, slot(&flow.ws, &flow.id, "pkce_verifier"), v).await?;
            Some(oauth::pkce_challenge(verifier.expose_secret()))
        }
        None => None,
    };
    let authorize_url = super::create::authorize_url(
        state,
        &o,
        &flow.conn.requested_scopes,
        presented,
        challenge.as_deref(),
    )?;
    Ok(Some(Consent {
        authorize_url,
        cookie_name: cookie_name(&flow.state_hash, secure),
        cookie_value: binding(state, &flow.state_hash, &flow.conn.user_id),
        expires_at: flow.conn.state_expires_at.unwrap_or(flow.now),
    }))
}

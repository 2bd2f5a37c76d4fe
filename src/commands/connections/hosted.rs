//! Hosted connect links: the connect flow of an auth config that is not OAuth. Starting one
//! records `connection.initiated` exactly as the OAuth flow does, with the hash of the link's
//! secret as its `state_hash` (the secret itself is never stored) and its expiry; the end
//! user opens `{public_url}/connect/{secret}` (the portal face), gives the credentials the
//! auth type needs, and `connection.credentials_submitted` (sealed credentials) ends
//! `initiated`: the link is then used up. Unknown, expired and used links are refused and
//! recorded as `access.denied` (`invalid_connect_link`), as the OAuth callback records a bad
//! state.
//!
//! When the workspace's end users sign in in the browser, a link opens only for its person
//! (`binding`); otherwise it is a bearer capability: whoever opens it completes that user's
//! connection.

use super::binding::{check_person, Presenter};
use super::callback::{initiated_flow, InitiatedFlow};
use super::create::{check_credentials, seal_credentials};
use super::*;
use crate::commands::record_denial;
use crate::domain::{AccessDenied, CredentialsSubmitted, DenialReason};
use crate::ledger::ActorType;

/// How long a hosted connect link stays usable (the end user may first have to make the key
/// at the service).
pub const LINK_TTL: time::Duration = time::Duration::minutes(30);
/// The hosted connect page: `{public_url}{CONNECT_PATH}{secret}`.
pub const CONNECT_PATH: &str = "/connect/";
/// Where a link sends the end user when the connect request named no return URL.
pub const CONNECTED_PATH: &str = "/connect/done";

impl ConnectionSettings {
    /// The hosted connect page of a link's secret.
    pub fn connect_page_url(&self, secret: &str) -> String {
        format!(
            "{}{CONNECT_PATH}{secret}",
            self.public_url.trim_end_matches('/')
        )
    }

    fn connected_url(&self) -> String {
        format!("{}{CONNECTED_PATH}", self.public_url.trim_end_matches('/'))
    }
}

/// Starts a hosted connect flow for `input.user_id` on `config` (any auth type but OAuth):
/// a single-use link that expires after `LINK_TTL`.
pub async fn start(
    state: &AppState,
    workspace_id: &str,
    actor: &Actor,
    input: CreateConnectionInput,
    config: &AuthConfig,
) -> Result<CreatedConnection, CommandError> {
    crate::domain::check_name("user_id", &input.user_id, 256)?;
    if matches!(config.settings, Some(AuthSettings::Oauth2(_)) | None) {
        return Err(invalid(
            "auth_config_id",
            "an oauth2 auth config connects through the provider's consent",
        ));
    }
    let redirect_url = match input.redirect_url {
        Some(url) => {
            crate::commands::check_return_urls(state, "redirect_url", &[url.as_str()])?;
            url
        }
        None => state.connections.connected_url(),
    };
    let id = Uuid::now_v7().to_string();
    let data_key_id = state
        .vault
        .create_data_key(&format!("connection:{workspace_id}/{id}"))
        .await?
        .id()
        .to_string();
    let secret = oauth::random_token();
    let expires_at = state.clock.now() + LINK_TTL;
    let command = ConnectionCommand::Initiate(ConnectionInitiated {
        auth_config_id: input.auth_config_id.clone(),
        auth_config_version: config.version,
        user_id: input.user_id.clone(),
        redirect_url,
        requested_scopes: Vec::new(),
        state_hash: oauth::state_hash(&secret),
        state_expires_at: expires_at,
        pkce_verifier: None,
        data_key_id: data_key_id.clone(),
    });
    let committed = match state
        .ledger
        .create::<Connection>(workspace_id, &id, actor, &command)
        .await
    {
        Ok(c) => c,
        Err(e) => {
            crate::commands::sealing::shred_unused(state, &data_key_id, "connection").await;
            return Err(e.into());
        }
    };
    wait_for_write(state, committed.position).await?;
    Ok(CreatedConnection {
        row: super::create::created_row(workspace_id, &id, &committed),
        id,
        status: ConnectionStatus::Initiated,
        connect_url: Some(state.connections.connect_page_url(&secret)),
        via_provider: false,
        expires_at: Some(expires_at),
        position: committed.position,
    })
}

/// `start` on demand (the gateway's `connection-required`): the auth config must be usable;
/// the link returns to authledger's own "connected" page.
pub async fn start_for(
    state: &AppState,
    workspace_id: &str,
    actor: &Actor,
    auth_config_id: &str,
    user_id: &str,
) -> Result<CreatedConnection, CommandError> {
    let config = usable_auth_config(state, workspace_id, auth_config_id).await?;
    let input = CreateConnectionInput {
        auth_config_id: auth_config_id.to_string(),
        user_id: user_id.to_string(),
        redirect_url: None,
        scopes: None,
        credentials: None,
    };
    start(state, workspace_id, actor, input, &config).await
}

/// A usable hosted connect link: whose connection it completes, and what it asks for.
#[derive(Debug, Clone)]
pub struct HostedLink {
    pub workspace_id: String,
    pub connection_id: String,
    pub user_id: String,
    pub auth_config_id: String,
    pub auth_config_name: String,
    pub provider: String,
    /// The auth config's settings (never OAuth): which fields the form has.
    pub settings: AuthSettings,
    pub expires_at: OffsetDateTime,
    /// Where the end user is sent when the link is completed.
    pub redirect_url: String,
    state_hash: String,
    data_key_id: String,
}

/// Why a link cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("the connect link is unknown, expired or already used")]
    Invalid(InvalidState),
    /// The workspace binds links to their person and no one of it is signed in.
    #[error("sign in as the person the connect link names")]
    SignInRequired { workspace_id: String },
    /// Signed in as someone else than the link names (recorded).
    #[error("the connect link names another person")]
    OtherPerson,
    #[error(transparent)]
    Command(#[from] CommandError),
}

/// Opens a presented link for `presenter`; an unknown, expired or used one is refused and
/// recorded as `access.denied` on `route` (method, path) by the anonymous browser that
/// presented it; a bound one only for its person (`binding::check_person`).
pub async fn open(
    state: &AppState,
    route: (&str, &str),
    presented: &str,
    presenter: Presenter<'_>,
) -> Result<HostedLink, LinkError> {
    let link = recorded(state, route, find(state, presented).await).await?;
    check_person(
        state,
        route,
        (&link.workspace_id, &link.connection_id, &link.user_id),
        presenter,
    )
    .await?;
    Ok(link)
}

/// Tests the credentials where the auth type has a test (a native connector): the run is
/// recorded as `auth_config.tested` by the link's person; the credentials are not kept.
pub async fn test(
    state: &AppState,
    route: (&str, &str),
    presented: &str,
    presenter: Presenter<'_>,
    credentials: &serde_json::Value,
) -> Result<HostedLink, LinkError> {
    let link = open(state, route, presented, presenter).await?;
    let actor = Actor {
        actor_type: ActorType::User,
        id: link.user_id.clone(),
    };
    let run = crate::commands::auth_configs::TestRun {
        workspace_id: &link.workspace_id,
        actor: &actor,
        auth_config_id: &link.auth_config_id,
    };
    let report = crate::commands::auth_configs::run_test(
        state,
        run,
        &link.settings,
        Some(credentials.clone()),
    )
    .await?;
    if report["ok"] != serde_json::Value::Bool(true) {
        let said = report["error"].as_str().unwrap_or("failed");
        let failed = format!("connection test failed: {said}");
        return Err(LinkError::Command(DomainError::Rejected(failed).into()));
    }
    Ok(link)
}

/// Whether the auth type has a test the page can offer.
pub fn has_test(settings: &AuthSettings) -> bool {
    matches!(
        settings,
        AuthSettings::Postgres(_) | AuthSettings::Connector(_)
    )
}

/// Completes the link: checks (and tests) the credentials, seals them under the
/// connection's data key and appends `connection.credentials_submitted` at the version the
/// link was read at (a concurrent submission of the same link is refused as used). Where to
/// send the end user follows, as after the OAuth callback.
pub async fn submit(
    state: &AppState,
    route: (&str, &str),
    presented: &str,
    presenter: Presenter<'_>,
    credentials: &serde_json::Value,
) -> Result<CallbackOutcome, LinkError> {
    let link = open(state, route, presented, presenter).await?;
    check_credentials(state, &link.settings, credentials).await?;
    let (ws, id) = (link.workspace_id.as_str(), link.connection_id.as_str());
    let sealed = seal_credentials(
        state,
        (ws, id, (&link.data_key_id).into()),
        &link.settings,
        credentials,
    )
    .await?;
    let command = ConnectionCommand::SubmitCredentials {
        state_hash: link.state_hash.clone(),
        now: state.clock.now(),
        submitted: CredentialsSubmitted {
            credentials: sealed,
        },
    };
    let actor = Actor {
        actor_type: ActorType::User,
        id: link.user_id.clone(),
    };
    let outcome = match state
        .ledger
        .execute::<Connection>(ws, id, &actor, &command)
        .await
    {
        Ok(c) => {
            wait_for_write(state, c.position).await?;
            Ok(CallbackOutcome {
                connection_id: id.to_string(),
                status: ConnectionStatus::Active,
                redirect_url: link.redirect_url.clone(),
                error: None,
            })
        }
        // Used or expired meanwhile (another submission of the same link won).
        Err(LedgerError::Domain(DomainError::Rejected(_))) => {
            Err(LinkError::Invalid(InvalidState {
                workspace_id: Some(link.workspace_id.clone()),
                connection_id: Some(link.connection_id.clone()),
            }))
        }
        Err(e) => Err(LinkError::Command(e.into())),
    };
    recorded(state, route, outcome).await
}

/// Records a refused link as `access.denied`, passing every outcome through.
async fn recorded<T>(
    state: &AppState,
    (method, route): (&str, &str),
    outcome: Result<T, LinkError>,
) -> Result<T, LinkError> {
    if let Err(LinkError::Invalid(s)) = &outcome {
        let denial = AccessDenied {
            method: method.into(),
            route: route.into(),
            status: 400,
            reason: DenialReason::InvalidConnectLink,
            target_id: s.connection_id.clone(),
        };
        let actor = Actor {
            actor_type: ActorType::Anonymous,
            id: "connect-link".into(),
        };
        record_denial(state, s.workspace_id.as_deref(), actor, denial).await;
    }
    outcome
}

/// The link a presented secret names, checked against the log: initiated, this hash,
/// unexpired, never claimed by an OAuth callback, and its auth config enabled and not OAuth.
async fn find(state: &AppState, presented: &str) -> Result<HostedLink, LinkError> {
    let InitiatedFlow {
        ws,
        id,
        conn,
        state_hash,
        now,
    } = initiated_flow(state, presented)
        .await?
        .map_err(LinkError::Invalid)?;
    let invalid_here = || {
        LinkError::Invalid(InvalidState {
            workspace_id: Some(ws.clone()),
            connection_id: Some(id.clone()),
        })
    };
    // Never a flow an OAuth callback has claimed.
    if conn.authorization_started {
        return Err(invalid_here());
    }
    let config = load::<AuthConfig>(state, &ws, &conn.auth_config_id)
        .await?
        .filter(|c| c.lifecycle == Lifecycle::Enabled);
    let (config, settings) = match config {
        Some(c) => match c.settings.clone() {
            // An OAuth flow's state (which its provider sees) never opens a hosted page.
            Some(s) if !matches!(s, AuthSettings::Oauth2(_)) => (c, s),
            _ => return Err(invalid_here()),
        },
        None => return Err(invalid_here()),
    };
    Ok(HostedLink {
        workspace_id: ws.clone(),
        connection_id: id.clone(),
        user_id: conn.user_id.clone(),
        auth_config_id: conn.auth_config_id.clone(),
        auth_config_name: config.name.clone(),
        provider: config.provider.clone(),
        settings,
        expires_at: conn.state_expires_at.unwrap_or(now),
        redirect_url: conn.redirect_url.clone().unwrap_or_default(),
        state_hash,
        data_key_id: conn.data_key_id.clone(),
    })
}

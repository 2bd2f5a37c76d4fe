//! What agents do: get scoped tokens, run tools through the gateway, wait for step-up
//! approvals. An agent never holds a user's long-lived credential; every step is an event.

pub mod approvals;
pub mod gateway_configs;
pub mod release;
pub mod tokens;

use crate::app::AppState;
use crate::commands::connections::{self, UsageError};
use crate::commands::problem::Problem;
use crate::commands::{record_denial, Caller, CommandError};
use crate::domain::access::{sanitize, AccessDenied};
use crate::domain::approval::ApprovalRefusal;
use crate::domain::token::TokenRefusal;
use crate::domain::{DenialReason, DomainError, Role};
use crate::ledger::Actor;

/// Who asks for a user's connection (and so, on demand, for a connect flow for that user).
#[derive(Debug, Clone, Copy)]
pub struct Asker<'a> {
    pub caller: &'a Caller,
    /// The user of the scoped token the caller presented, if it presented one.
    pub token_user: Option<&'a str>,
}

impl<'a> Asker<'a> {
    /// An API key (or console member) asking in its own right.
    pub fn key(caller: &'a Caller) -> Asker<'a> {
        Asker {
            caller,
            token_user: None,
        }
    }

    /// Whether a connect flow for `user_id` may be started on this asker's word: a scoped
    /// token of that very user; a key whose role makes connections for any user (admin,
    /// developer: `Permission::ManageConnections`); an agent key only when the workspace
    /// lets agents start connect flows for any user (`workspace.agent_connect_flows_set`).
    pub async fn may_connect(&self, state: &AppState, user_id: &str) -> Result<bool, AgentError> {
        if let Some(user) = self.token_user {
            return Ok(user == user_id);
        }
        match self.caller.role {
            Role::Admin | Role::Developer => Ok(true),
            Role::Agent => {
                let ws = &self.caller.workspace_id;
                let workspace = state
                    .ledger
                    .load::<crate::domain::workspace::Workspace>(ws, ws)
                    .await?;
                Ok(workspace.agents_connect_any_user)
            }
            Role::Viewer | Role::Auditor => Ok(false),
        }
    }
}

/// Why an agent's request was refused (each is its own problem type at the API).
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// Unknown here; `elsewhere` when the id exists in another workspace (audited).
    #[error("no such {what}")]
    NotFound { what: &'static str, elsewhere: bool },
    /// The user has no active connection for the auth config the call needs.
    #[error("the user has no active connection for this auth config")]
    ConnectionRequired {
        auth_config_id: String,
        user_id: String,
        /// Where the user connects: the provider's consent (OAuth) or the hosted connect
        /// page (every other auth type); none only when no flow could be started.
        connect_url: Option<String>,
    },
    /// The caller may not start a connect flow for this user: an agent key, in a workspace
    /// that does not let agents start connect flows for any user.
    #[error("this key may not start a connect flow for user {user_id}")]
    ConnectNotAllowed { user_id: String },
    #[error("the connection is {0}")]
    ConnectionInactive(String),
    #[error("the auth config is disabled")]
    AuthConfigDisabled,
    #[error("not granted: {}", .0.join(" "))]
    ScopeEscalation(Vec<String>),
    #[error("the connection belongs to another user")]
    OtherUser,
    #[error("the token does not cover this: {0}")]
    TokenMismatch(&'static str),
    #[error(transparent)]
    Token(TokenRefusal),
    #[error(transparent)]
    Approval(ApprovalRefusal),
    #[error("this tool needs the user's approval")]
    ApprovalRequired {
        approval_id: String,
        expires_at: time::OffsetDateTime,
    },
    #[error("the arguments do not match the tool's schema")]
    InvalidArguments(Vec<String>),
    /// The auth config does not allow releasing its access tokens to agents.
    #[error("token release is not enabled on this auth config")]
    TokenReleaseDisabled,
    /// The caller's gateways do not include this tool through this auth config.
    #[error("outside the caller's gateways")]
    OutsideGateway,
    #[error("the credential could not be refreshed: {0}")]
    CredentialUnavailable(String),
    #[error("the upstream did not answer in time")]
    UpstreamTimeout { tool_call_id: String },
    #[error("the upstream cannot be reached: {detail}")]
    UpstreamUnreachable {
        tool_call_id: String,
        detail: String,
    },
    #[error(transparent)]
    Command(CommandError),
}

impl From<CommandError> for AgentError {
    fn from(e: CommandError) -> Self {
        match e {
            CommandError::Domain(DomainError::Token(r)) => AgentError::Token(r),
            CommandError::Domain(DomainError::Approval(r)) => AgentError::Approval(r),
            other => AgentError::Command(other),
        }
    }
}

impl From<crate::ledger::LedgerError> for AgentError {
    fn from(e: crate::ledger::LedgerError) -> Self {
        CommandError::from(e).into()
    }
}

impl From<crate::projector::ProjectionError> for AgentError {
    fn from(e: crate::projector::ProjectionError) -> Self {
        AgentError::Command(e.into())
    }
}

impl From<DomainError> for AgentError {
    fn from(e: DomainError) -> Self {
        CommandError::Domain(e).into()
    }
}

impl AgentError {
    /// The refusals that are recorded as `access.denied` (attempts to reach beyond what
    /// the caller holds).
    pub fn denial_reason(&self) -> Option<DenialReason> {
        match self {
            AgentError::NotFound {
                elsewhere: true, ..
            } => Some(DenialReason::OtherWorkspace),
            AgentError::ScopeEscalation(_) => Some(DenialReason::ScopeEscalation),
            AgentError::OutsideGateway => Some(DenialReason::OutsideGateway),
            AgentError::OtherUser => Some(DenialReason::OtherUser),
            AgentError::ConnectNotAllowed { .. } => Some(DenialReason::ConnectNotAllowed),
            AgentError::TokenMismatch(_) | AgentError::Token(TokenRefusal::OtherTool) => {
                Some(DenialReason::TokenMismatch)
            }
            AgentError::Token(TokenRefusal::Expired) => Some(DenialReason::ExpiredToken),
            AgentError::Token(TokenRefusal::Revoked) => Some(DenialReason::RevokedToken),
            AgentError::Token(TokenRefusal::UsedUp) => Some(DenialReason::TokenUsedUp),
            _ => None,
        }
    }
}

/// Where a refusal happened, for its `access.denied` event: the route as in the route
/// table and the id the caller named.
pub struct At<'a> {
    pub method: &'static str,
    pub route: &'static str,
    pub target: Option<&'a str>,
}

/// The problem an agent refusal answers; refusals that reach beyond the caller's grant are
/// recorded as `access.denied` first. Every face answers agent refusals through this.
pub async fn refused(
    state: &AppState,
    actor: Actor,
    ws: &str,
    at: At<'_>,
    e: &AgentError,
) -> Problem {
    let problem = Problem::from(e);
    if let Some(reason) = e.denial_reason() {
        let denial = AccessDenied {
            method: at.method.to_string(),
            route: at.route.to_string(),
            status: problem.status,
            reason,
            target_id: at.target.map(|t| sanitize(t, 128)),
        };
        record_denial(state, Some(ws), actor, denial).await;
    }
    problem
}

pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> AgentError {
    DomainError::Invalid {
        field,
        reason: reason.into(),
    }
    .into()
}

/// The connection exists in the caller's workspace (not deleted) and the caller's gateway
/// scope reaches it; another workspace's id answers as unknown (and is marked so). The
/// caller's scope, for what the caller checks next.
pub async fn connection_in_scope(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<gateway_configs::ToolScope, AgentError> {
    let ws = &caller.workspace_id;
    let found = state.projections.connection(ws, id).await?;
    if found.filter(|r| r.status != "deleted").is_none() {
        let elsewhere = state.projections.connection_elsewhere(ws, id).await?;
        return Err(AgentError::NotFound {
            what: "connection",
            elsewhere,
        });
    }
    let scope = gateway_configs::scope_of(state, caller, None).await?;
    check_scope_first(state, ws, &scope, None, Some(id), None).await?;
    Ok(scope)
}

/// Refuses, before any connection is resolved (or a connect flow started), a request whose
/// auth config lies outside the caller's gateways: named directly, or through the
/// connection id. Otherwise a bound key could start connect flows or probe connections
/// beyond its gateways.
pub async fn check_scope_first(
    state: &AppState,
    workspace_id: &str,
    scope: &gateway_configs::ToolScope,
    tool: Option<&str>,
    connection_id: Option<&str>,
    user: Option<(&str, &str)>,
) -> Result<(), AgentError> {
    if *scope == gateway_configs::ToolScope::All {
        return Ok(());
    }
    let allowed = |auth_config_id: &str| match tool {
        Some(t) => scope.allows(auth_config_id, t),
        None => scope.allows_auth_config(auth_config_id),
    };
    if let Some((_, auth_config_id)) = user {
        if !allowed(auth_config_id) {
            return Err(AgentError::OutsideGateway);
        }
    }
    if let Some(id) = connection_id {
        if let Some(row) = state.projections.connection(workspace_id, id).await? {
            if !allowed(&row.auth_config_id) {
                return Err(AgentError::OutsideGateway);
            }
        }
    }
    Ok(())
}

/// `missing` scopes of `needed` that `granted` lacks.
pub fn missing_scopes(needed: &[String], granted: &[String]) -> Vec<String> {
    needed
        .iter()
        .filter(|s| !granted.contains(s))
        .cloned()
        .collect()
}

/// The connection a request names: by id (must be in the workspace), or the user's active
/// connection of an auth config. With neither active, the answer is `ConnectionRequired`
/// carrying a fresh connect link for the user (connect on demand).
pub async fn resolve_connection(
    state: &AppState,
    workspace_id: &str,
    asker: Asker<'_>,
    connection_id: Option<&str>,
    user: Option<(&str, &str)>,
) -> Result<String, AgentError> {
    if let Some(id) = connection_id {
        let found = state.projections.connection(workspace_id, id).await?;
        let Some(row) = found.filter(|r| r.status != "deleted") else {
            let elsewhere = state
                .projections
                .connection_elsewhere(workspace_id, id)
                .await?;
            return Err(AgentError::NotFound {
                what: "connection",
                elsewhere,
            });
        };
        if let Some((user_id, auth_config_id)) = user {
            if row.user_id != user_id {
                return Err(AgentError::OtherUser);
            }
            if row.auth_config_id != auth_config_id {
                return Err(invalid(
                    "auth_config_id",
                    "the connection is not from this auth config",
                ));
            }
        }
        return Ok(row.id);
    }
    let Some((user_id, auth_config_id)) = user else {
        return Err(invalid(
            "connection_id",
            "give connection_id, or user_id and auth_config_id",
        ));
    };
    crate::domain::check_name("user_id", user_id, 256)?;
    let config = state
        .projections
        .auth_config(workspace_id, auth_config_id)
        .await?
        .filter(|c| c.status != "deleted");
    let Some(config) = config else {
        let elsewhere = state
            .projections
            .auth_config_elsewhere(workspace_id, auth_config_id)
            .await?;
        return Err(AgentError::NotFound {
            what: "auth config",
            elsewhere,
        });
    };
    if config.status == "disabled" {
        return Err(AgentError::AuthConfigDisabled);
    }
    let filter = crate::projector::store::ConnectionFilter {
        user_id: Some(user_id.to_string()),
        auth_config_id: Some(auth_config_id.to_string()),
        status: Some("active".into()),
        after_id: None,
        limit: 200,
    };
    let active = state.projections.connections(workspace_id, &filter).await?;
    // The newest active connection (ids are UUIDv7, so the last is the latest).
    if let Some(row) = active.last() {
        return Ok(row.id.clone());
    }
    Err(connection_required(state, workspace_id, asker, auth_config_id, user_id).await)
}

/// The refusal for a user without an active connection: starts a connect flow for that
/// user and hands back its link (the provider's consent for OAuth, with the auth config's
/// first registered redirect URL; the hosted connect page for every other auth type), when
/// the asker may act for that user; otherwise `ConnectNotAllowed` (recorded).
pub async fn connection_required(
    state: &AppState,
    workspace_id: &str,
    asker: Asker<'_>,
    auth_config_id: &str,
    user_id: &str,
) -> AgentError {
    match asker.may_connect(state, user_id).await {
        Ok(true) => {}
        Ok(false) => {
            return AgentError::ConnectNotAllowed {
                user_id: user_id.to_string(),
            }
        }
        Err(e) => return e,
    }
    let actor = asker.caller.actor();
    let oauth_redirect = match state
        .ledger
        .load::<crate::domain::auth_config::AuthConfig>(workspace_id, auth_config_id)
        .await
    {
        Ok(c) => match c.settings {
            Some(crate::domain::auth_config::AuthSettings::Oauth2(o)) => {
                Some(o.redirect_urls.first().cloned())
            }
            _ => None,
        },
        Err(_) => Some(None),
    };
    let started = match oauth_redirect {
        // OAuth without a registered redirect URL: no flow to offer.
        Some(None) => None,
        Some(Some(redirect_url)) => {
            let input = connections::CreateConnectionInput {
                auth_config_id: auth_config_id.to_string(),
                user_id: user_id.to_string(),
                redirect_url: Some(redirect_url),
                scopes: None,
                credentials: None,
            };
            Some(connections::create(state, workspace_id, &actor, input).await)
        }
        None => Some(
            connections::hosted::start_for(state, workspace_id, &actor, auth_config_id, user_id)
                .await,
        ),
    };
    let connect_url = match started {
        Some(Ok(created)) => created.connect_url,
        Some(Err(e)) => {
            tracing::warn!(error = %e, "cannot start a connect flow on demand");
            None
        }
        None => None,
    };
    AgentError::ConnectionRequired {
        auth_config_id: auth_config_id.to_string(),
        user_id: user_id.to_string(),
        connect_url,
    }
}

/// The connection ready for a call; an inactive one answers `connection-required` with a
/// fresh connect link for its user (connect on demand).
pub async fn usable_or_connect(
    state: &AppState,
    workspace_id: &str,
    asker: Asker<'_>,
    connection_id: &str,
) -> Result<connections::UsableConnection, AgentError> {
    match connections::usable(state, workspace_id, connection_id).await {
        Err(UsageError::Inactive(_)) => {
            let c = state
                .ledger
                .load::<crate::domain::connection::Connection>(workspace_id, connection_id)
                .await?;
            let auth_config_id = c.auth_config_id;
            let user_id = c.user_id;
            Err(connection_required(state, workspace_id, asker, &auth_config_id, &user_id).await)
        }
        other => Ok(other?),
    }
}

impl From<UsageError> for AgentError {
    fn from(e: UsageError) -> Self {
        match e {
            UsageError::NotFound => AgentError::NotFound {
                what: "connection",
                elsewhere: false,
            },
            UsageError::Inactive(s) => AgentError::ConnectionInactive(s.as_str().to_string()),
            UsageError::AuthConfigDisabled => AgentError::AuthConfigDisabled,
            UsageError::RefreshFailed(r) => AgentError::CredentialUnavailable(r),
            UsageError::Command(c) => c.into(),
        }
    }
}

//! The operations a plan is made of: backend-neutral writes to the projections, grouped
//! by the area whose rows they move (the store runs each as SQL).

use super::cache::Family;
use super::plan::rfc3339;
use crate::domain::connection::OAuthTokens;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    pub position: i64,
    pub event_id: String,
    pub workspace_id: String,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub aggregate_version: i64,
    pub kind: String,
    pub actor_type: String,
    pub actor_id: String,
    pub occurred_at: String,
    pub occurred_at_unix: i64,
    pub key_id: String,
    /// `sha256:<hex>` of the envelope as stored (a checkpoint Merkle leaf).
    pub event_hash: String,
    /// Who and what the event concerns, flattened for audit queries (absent ones are
    /// filled from the connection's row where it exists).
    pub user_id: Option<String>,
    pub auth_config_id: Option<String>,
    pub connection_id: Option<String>,
    pub token_id: Option<String>,
    pub tool: Option<String>,
    pub outcome: Option<String>,
    pub reason: Option<String>,
}

/// One write to the projections, grouped by the area whose rows it moves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Audit(AuditRow),
    Workspace(WorkspaceOp),
    ApiKey(ApiKeyOp),
    /// Sets the auth config's current row (insert at version 1) and records the version.
    AuthConfig(AuthConfigVersion),
    /// One connection event: `change.new` inserts the row (the first event), anything else
    /// updates it guarded by `version - 1` (never applied twice or out of order).
    Connection(ConnectionOp),
    Agents(AgentsOp),
    Member(MemberOp),
    Webhook(WebhookOp),
    DynamicCredential(DynamicCredentialOp),
}

/// One dynamic credential event; `Issued` inserts the row, every later event sets its
/// status (guarded by `version - 1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DynamicCredentialOp {
    pub workspace_id: String,
    pub id: String,
    pub version: i64,
    pub at: String,
    pub change: DynamicCredentialChange,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DynamicCredentialChange {
    Issued {
        connection_id: String,
        username: String,
        expires_at_unix: i64,
    },
    /// `dropping`, `expired` or `revoked`.
    Status(&'static str),
}

/// One webhook event; `created` inserts the row, every later event moves it (guarded by
/// `version - 1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookOp {
    pub workspace_id: String,
    pub id: String,
    pub version: i64,
    pub at: String,
    pub change: WebhookChange,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookChange {
    /// `events` as a JSON array; `position` is the creation's (delivery starts after it).
    Created {
        url: String,
        events: String,
        enabled: bool,
        fingerprint: String,
        position: i64,
    },
    /// Settings replaced; turning it on clears why it was disabled.
    Updated {
        url: String,
        events: String,
        enabled: bool,
    },
    SecretRotated {
        fingerprint: String,
    },
    Disabled {
        reason: String,
    },
    Deleted,
    /// Changes nothing shown (a replay request): only the version moves.
    Version,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkspaceOp {
    Create {
        id: String,
        name: String,
        at: String,
        version: i64,
    },
    ConfigureIdentityProvider {
        id: String,
        issuer: String,
        audience: String,
        jwks_url: String,
        version: i64,
    },
    SetToolResponseStorage {
        id: String,
        store_tool_responses: bool,
        version: i64,
    },
    SetSecondFactorRequirement {
        id: String,
        required: bool,
        version: i64,
    },
    SetAgentConnectFlows {
        id: String,
        any_user: bool,
        version: i64,
    },
    /// A change the workspace row keeps nothing of but the version (team SSO settings are
    /// read from the workspace's events).
    Advance { id: String, version: i64 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiKeyOp {
    Create {
        workspace_id: String,
        id: String,
        name: String,
        role: String,
        key_prefix: String,
        key_hash: String,
        at: String,
        expires_at: Option<String>,
        version: i64,
    },
    Revoke {
        workspace_id: String,
        id: String,
        at: String,
        version: i64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfigVersion {
    pub workspace_id: String,
    pub id: String,
    pub version: i64,
    pub kind: String,
    pub name: Option<String>,
    pub provider: Option<String>,
    pub auth_type: Option<String>,
    pub status: Option<String>,
    /// Public settings JSON (no secret), when the event changes them.
    pub settings: Option<String>,
    /// The new client secret's fingerprint, when only the secret changes (a rotation):
    /// set into the stored settings.
    pub client_secret_fingerprint: Option<String>,
    pub changed: String,
    pub at: String,
    pub actor_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionOp {
    pub workspace_id: String,
    pub id: String,
    pub version: i64,
    pub at: String,
    pub change: ConnectionChange,
}

/// One team member event; the first invite inserts the row, every later event moves it
/// (guarded by `version - 1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberOp {
    pub workspace_id: String,
    pub id: String,
    pub version: i64,
    pub at: String,
    pub change: MemberChange,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberChange {
    /// Invited, or invited again (after a removal, or a new link): status `invited`.
    Invited {
        email: String,
        role: String,
        expires_at: String,
    },
    /// Joined: status `active`.
    Joined,
    SignedIn,
    Role(String),
    SecondFactor(bool),
    Removed,
    /// An event that changes nothing shown (a sign-out): only the version moves.
    Version,
}

/// Workspace tools, step-up approvals and gateways.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentsOp {
    DefineWorkspaceTool {
        workspace_id: String,
        name: String,
        definition: String,
        version: i64,
        at: String,
    },
    RemoveWorkspaceTool {
        workspace_id: String,
        name: String,
    },
    RequestApproval {
        workspace_id: String,
        id: String,
        user_id: String,
        connection_id: String,
        tool: String,
        argument_fingerprint: String,
        expires_at: String,
        at: String,
    },
    /// `status`: approved, denied or consumed.
    ApprovalStatus {
        workspace_id: String,
        id: String,
        status: &'static str,
        tool_call_id: Option<String>,
        at: String,
    },
    DefineGateway {
        workspace_id: String,
        id: String,
        name: String,
        servers: String,
        agent_key_ids: Vec<String>,
        version: i64,
        at: String,
    },
    DeleteGateway {
        workspace_id: String,
        id: String,
        version: i64,
        at: String,
    },
}

impl Op {
    /// The cached reads this op can make stale (see `cache`).
    pub fn family(&self) -> Option<Family> {
        match self {
            Op::Audit(_)
            | Op::AuthConfig(_)
            | Op::Member(_)
            | Op::Webhook(_)
            | Op::DynamicCredential(_) => None,
            Op::Agents(AgentsOp::RequestApproval { .. } | AgentsOp::ApprovalStatus { .. }) => None,
            Op::Agents(
                AgentsOp::DefineWorkspaceTool { .. } | AgentsOp::RemoveWorkspaceTool { .. },
            ) => Some(Family::WorkspaceTools),
            Op::Agents(AgentsOp::DefineGateway { .. } | AgentsOp::DeleteGateway { .. }) => {
                Some(Family::Gateways)
            }
            Op::Workspace(_) => Some(Family::Workspaces),
            Op::ApiKey(_) => Some(Family::ApiKeys),
            Op::Connection(_) => Some(Family::Connections),
        }
    }

    /// The aggregate type whose projection row this op moves to `version`, if any. A row
    /// that holds a version must be moved by every event of its aggregate: an update is
    /// guarded by `version - 1`, so one skipped event would stop the projector for good.
    pub fn advances_row(&self) -> Option<(&'static str, i64)> {
        match self {
            Op::Workspace(
                WorkspaceOp::Create { version, .. }
                | WorkspaceOp::ConfigureIdentityProvider { version, .. }
                | WorkspaceOp::SetToolResponseStorage { version, .. }
                | WorkspaceOp::SetSecondFactorRequirement { version, .. }
                | WorkspaceOp::SetAgentConnectFlows { version, .. }
                | WorkspaceOp::Advance { version, .. },
            ) => Some(("workspace", *version)),
            Op::ApiKey(ApiKeyOp::Create { version, .. } | ApiKeyOp::Revoke { version, .. }) => {
                Some(("api_key", *version))
            }
            Op::AuthConfig(a) => Some(("auth_config", a.version)),
            Op::Connection(c) => Some(("connection", c.version)),
            Op::Member(m) => Some(("member", m.version)),
            Op::Webhook(w) => Some(("webhook", w.version)),
            Op::DynamicCredential(d) => Some(("dynamic_credential", d.version)),
            Op::Agents(
                AgentsOp::DefineGateway { version, .. } | AgentsOp::DeleteGateway { version, .. },
            ) => Some(("gateway", *version)),
            Op::Agents(AgentsOp::DefineWorkspaceTool { version, .. }) => {
                Some(("workspace_tool", *version))
            }
            Op::Agents(
                AgentsOp::RemoveWorkspaceTool { .. }
                | AgentsOp::RequestApproval { .. }
                | AgentsOp::ApprovalStatus { .. },
            )
            | Op::Audit(_) => None,
        }
    }
}

/// What a connection event changes; `None` / `false` leaves a column as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectionChange {
    /// Set by the first event (`initiated`, `created`): the row is inserted.
    pub new: Option<NewConnection>,
    pub status: Option<&'static str>,
    /// Granted scopes as a JSON array.
    pub scopes: Option<String>,
    /// Token metadata, when the event carries tokens.
    pub tokens: Option<TokenState>,
    /// `Some(None)` clears the reason, `Some(Some(_))` sets it.
    pub status_reason: Option<Option<String>>,
    pub clear_state_hash: bool,
    /// Sets `last_refreshed_at` to the event time.
    pub refreshed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewConnection {
    pub auth_config_id: String,
    pub user_id: String,
    /// JSON array.
    pub requested_scopes: String,
    pub redirect_url: Option<String>,
    pub state_hash: Option<String>,
}

/// The access token's expiry (RFC 3339 and Unix seconds, for ordering) and whether a
/// refresh token is held. Never a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenState {
    pub expires_at: Option<String>,
    pub expires_at_unix: Option<i64>,
    pub has_refresh_token: bool,
}

impl TokenState {
    pub(super) fn of(tokens: &OAuthTokens) -> TokenState {
        TokenState {
            expires_at: tokens.expires_at.map(rfc3339),
            expires_at_unix: tokens.expires_at.map(time::OffsetDateTime::unix_timestamp),
            has_refresh_token: tokens.refresh_token.is_some(),
        }
    }
}

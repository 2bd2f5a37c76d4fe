//! Pure: what one event changes in the projections, as backend-neutral operations.

use crate::domain::connection::OAuthTokens;
use crate::domain::Event;
use crate::ledger::EventBody;

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

/// What agent events concern: (connection, token, tool).
fn agent_facts(
    body: &EventBody,
    event: &Event,
) -> (Option<String>, Option<String>, Option<String>) {
    let s = |v: &str| Some(v.to_string());
    let token = || s(&body.aggregate_id);
    match event {
        Event::TokenIssued(e) => (s(&e.connection_id), token(), e.tool.clone()),
        Event::TokenUsed(e) => (s(&e.connection_id), token(), s(&e.tool)),
        Event::TokenRevoked(_) => (None, token(), None),
        Event::ToolRequested(e) => (s(&e.connection_id), e.token_id.clone(), s(&e.tool)),
        Event::ToolCompleted(e) => (s(&e.connection_id), None, s(&e.tool)),
        Event::ApprovalRequested(e) => (s(&e.connection_id), None, s(&e.tool)),
        Event::ApprovalApproved(e) | Event::ApprovalDenied(e) => {
            (s(&e.connection_id), None, s(&e.tool))
        }
        Event::CredentialReleased(e) => (s(&e.connection_id), None, None),
        Event::ToolDefined(e) => (None, None, s(&e.definition.name)),
        Event::ToolRemoved(e) => (None, None, s(&e.name)),
        _ => (
            (body.aggregate_type == "connection").then(|| body.aggregate_id.clone()),
            None,
            None,
        ),
    }
}

/// The audit columns an event's payload gives: (user, auth config, outcome, reason).
fn audit_facts(
    body: &EventBody,
    event: &Event,
) -> (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
) {
    let s = |v: &str| Some(v.to_string());
    let failure = |r: String| (None, None, s("failure"), Some(r));
    match event {
        Event::ConnectionInitiated(e) => (s(&e.user_id), s(&e.auth_config_id), None, None),
        Event::ConnectionCreated(e) => (s(&e.user_id), s(&e.auth_config_id), s("success"), None),
        Event::ConnectionAuthorized(_) | Event::ConnectionRefreshed(_) => {
            (None, None, s("success"), None)
        }
        Event::ConnectionAuthorizationFailed(e) => failure(e.error.clone()),
        Event::ConnectionRefreshFailed(e) => failure(e.error.clone()),
        Event::ConnectionExpired(e) => failure(e.reason.clone()),
        Event::ConnectionRevoked(e) => (None, None, s(&e.provider.outcome), e.reason.clone()),
        Event::TokenIssued(e) => (s(&e.user_id), s(&e.auth_config_id), s("success"), None),
        Event::ToolRequested(e) => (s(&e.user_id), s(&e.auth_config_id), None, None),
        Event::ToolCompleted(e) => (None, None, s(e.outcome.as_str()), e.error.clone()),
        Event::ApprovalRequested(e) => (s(&e.user_id), None, s("pending"), None),
        Event::ApprovalApproved(e) => (None, None, s("approved"), e.note.clone()),
        Event::ApprovalDenied(e) => (None, None, s("denied"), e.note.clone()),
        Event::ApprovalConsumed(_) => (None, None, s("consumed"), None),
        Event::TokenRevoked(e) => (None, None, s("revoked"), e.reason.clone()),
        Event::CredentialReleased(e) => (s(&e.user_id), s(&e.auth_config_id), s("released"), None),
        Event::AccessDenied(e) => {
            let reason = serde_json::to_value(e.reason)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string));
            (None, None, s("denied"), reason)
        }
        _ if body.aggregate_type == "auth_config" => (None, s(&body.aggregate_id), None, None),
        _ => (None, None, None, None),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Audit(AuditRow),
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
    CreateWorkspace {
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
    CreateApiKey {
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
    RevokeApiKey {
        workspace_id: String,
        id: String,
        at: String,
        version: i64,
    },
    /// Sets the auth config's current row (insert at version 1) and records the version.
    AuthConfigVersion {
        workspace_id: String,
        id: String,
        version: i64,
        kind: String,
        name: Option<String>,
        provider: Option<String>,
        auth_type: Option<String>,
        status: Option<String>,
        /// Public settings JSON (no secret), when the event changes them.
        settings: Option<String>,
        /// The new client secret's fingerprint, when only the secret changes (a rotation):
        /// set into the stored settings.
        client_secret_fingerprint: Option<String>,
        changed: String,
        at: String,
        actor_id: String,
    },
    /// One connection event: `change.new` inserts the row (the first event), anything else
    /// updates it guarded by `version - 1` (never applied twice or out of order).
    ConnectionChange {
        workspace_id: String,
        id: String,
        version: i64,
        at: String,
        change: ConnectionChange,
    },
}

impl Op {
    /// The cached reads this op can make stale (see `cache`).
    pub fn family(&self) -> Option<Family> {
        match self {
            Op::Audit(_)
            | Op::RequestApproval { .. }
            | Op::ApprovalStatus { .. }
            | Op::AuthConfigVersion { .. } => None,
            Op::DefineWorkspaceTool { .. } | Op::RemoveWorkspaceTool { .. } => {
                Some(Family::WorkspaceTools)
            }
            Op::DefineGateway { .. } | Op::DeleteGateway { .. } => Some(Family::Gateways),
            Op::CreateWorkspace { .. }
            | Op::ConfigureIdentityProvider { .. }
            | Op::SetToolResponseStorage { .. } => Some(Family::Workspaces),
            Op::CreateApiKey { .. } | Op::RevokeApiKey { .. } => Some(Family::ApiKeys),
            Op::ConnectionChange { .. } => Some(Family::Connections),
        }
    }
}

impl Op {
    /// The aggregate type whose projection row this op moves to `version`, if any. A row
    /// that holds a version must be moved by every event of its aggregate: an update is
    /// guarded by `version - 1`, so one skipped event would stop the projector for good.
    pub fn advances_row(&self) -> Option<(&'static str, i64)> {
        match self {
            Op::CreateWorkspace { version, .. }
            | Op::ConfigureIdentityProvider { version, .. }
            | Op::SetToolResponseStorage { version, .. } => Some(("workspace", *version)),
            Op::CreateApiKey { version, .. } | Op::RevokeApiKey { version, .. } => {
                Some(("api_key", *version))
            }
            Op::AuthConfigVersion { version, .. } => Some(("auth_config", *version)),
            Op::ConnectionChange { version, .. } => Some(("connection", *version)),
            Op::DefineGateway { version, .. } | Op::DeleteGateway { version, .. } => {
                Some(("gateway", *version))
            }
            Op::DefineWorkspaceTool { version, .. } => Some(("workspace_tool", *version)),
            Op::RemoveWorkspaceTool { .. }
            | Op::Audit(_)
            | Op::RequestApproval { .. }
            | Op::ApprovalStatus { .. } => None,
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
    fn of(tokens: &OAuthTokens) -> TokenState {
        TokenState {
            expires_at: tokens.expires_at.map(rfc3339),
            expires_at_unix: tokens.expires_at.map(time::OffsetDateTime::unix_timestamp),
            has_refresh_token: tokens.refresh_token.is_some(),
        }
    }
}

/// Settings as projections and the API show them: sealed secrets reduced to fingerprints.
pub fn public_settings(settings: &crate::domain::auth_config::AuthSettings) -> serde_json::Value {
    let mut v = serde_json::to_value(settings).unwrap_or_default();
    if let Some(secret) = v.get_mut("client_secret") {
        let fingerprint = secret.get("fingerprint").cloned().unwrap_or_default();
        *secret = serde_json::json!({ "fingerprint": fingerprint });
    }
    v
}

/// `public_settings` plus whether token release is on (shown with the settings).
pub fn shown_settings(
    settings: &crate::domain::auth_config::AuthSettings,
    token_release: bool,
) -> serde_json::Value {
    let mut v = public_settings(settings);
    if let Some(map) = v.as_object_mut() {
        map.insert(
            "token_release".into(),
            serde_json::Value::Bool(token_release),
        );
    }
    v
}

pub fn rfc3339(t: time::OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

use super::cache::Family;

pub fn plan(position: u64, body: &EventBody, event: &Event, event_hash: &str) -> Vec<Op> {
    let at = rfc3339(body.occurred_at);
    let version = i64::try_from(body.aggregate_version).unwrap_or(i64::MAX);
    let actor_type = serde_json::to_value(body.actor.actor_type)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let (user_id, auth_config_id, outcome, reason) = audit_facts(body, event);
    let (connection_id, token_id, tool) = agent_facts(body, event);
    let mut ops = vec![Op::Audit(AuditRow {
        position: i64::try_from(position).unwrap_or(i64::MAX),
        event_id: body.event_id.to_string(),
        workspace_id: body.workspace_id.clone(),
        aggregate_type: body.aggregate_type.clone(),
        aggregate_id: body.aggregate_id.clone(),
        aggregate_version: version,
        kind: body.kind.clone(),
        actor_type,
        actor_id: body.actor.id.clone(),
        occurred_at: at.clone(),
        occurred_at_unix: body.occurred_at.unix_timestamp(),
        key_id: body.key_id.clone(),
        event_hash: event_hash.to_string(),
        user_id,
        auth_config_id,
        connection_id,
        token_id,
        tool,
        outcome,
        reason,
    })];
    match event {
        Event::WorkspaceCreated(e) => ops.push(Op::CreateWorkspace {
            id: body.aggregate_id.clone(),
            name: e.name.clone(),
            at,
            version,
        }),
        Event::IdentityProviderConfigured(e) => ops.push(Op::ConfigureIdentityProvider {
            id: body.aggregate_id.clone(),
            issuer: e.issuer.clone(),
            audience: e.audience.clone(),
            jwks_url: e.jwks_url.clone(),
            version,
        }),
        Event::ApiKeyCreated(e) => ops.push(Op::CreateApiKey {
            workspace_id: body.workspace_id.clone(),
            id: body.aggregate_id.clone(),
            name: e.name.clone(),
            role: e.role.as_str().to_string(),
            key_prefix: e.key_prefix.clone(),
            key_hash: e.key_hash.clone(),
            at,
            expires_at: e.expires_at.map(rfc3339),
            version,
        }),
        Event::ApiKeyRevoked(_) => ops.push(Op::RevokeApiKey {
            workspace_id: body.workspace_id.clone(),
            id: body.aggregate_id.clone(),
            at,
            version,
        }),
        Event::AuthConfigCreated(e) => ops.push(auth_config_op(
            body,
            at,
            version,
            AuthConfigChange {
                name: Some(e.name.clone()),
                provider: Some(e.provider.clone()),
                auth_type: Some(e.settings.auth_type().to_string()),
                status: Some("enabled"),
                settings: Some(shown_settings(&e.settings, e.token_release).to_string()),
                changed: vec!["created".into()],
                ..Default::default()
            },
        )),
        Event::AuthConfigUpdated(e) => ops.push(auth_config_op(
            body,
            at,
            version,
            AuthConfigChange {
                name: Some(e.name.clone()),
                settings: Some(shown_settings(&e.settings, e.token_release).to_string()),
                changed: e.changed.clone(),
                ..Default::default()
            },
        )),
        Event::ClientSecretRotated(e) => ops.push(auth_config_op(
            body,
            at,
            version,
            AuthConfigChange {
                client_secret_fingerprint: Some(e.client_secret.fingerprint.clone()),
                changed: vec!["client_secret".into()],
                ..Default::default()
            },
        )),
        Event::AuthConfigDisabled(_) => ops.push(auth_config_op(
            body,
            at,
            version,
            AuthConfigChange {
                status: Some("disabled"),
                changed: vec!["status".into()],
                ..Default::default()
            },
        )),
        Event::AuthConfigEnabled(_) => ops.push(auth_config_op(
            body,
            at,
            version,
            AuthConfigChange {
                status: Some("enabled"),
                changed: vec!["status".into()],
                ..Default::default()
            },
        )),
        Event::AuthConfigDeleted(_) => ops.push(auth_config_op(
            body,
            at,
            version,
            AuthConfigChange {
                status: Some("deleted"),
                changed: vec!["status".into()],
                ..Default::default()
            },
        )),
        Event::SigningKeyRotated(_)
        | Event::AccessDenied(_)
        | Event::AuditQueried(_)
        | Event::CheckpointCreated(_)
        | Event::CheckpointCosigned(_)
        | Event::TokenIssued(_)
        | Event::TokenUsed(_)
        | Event::TokenRevoked(_)
        | Event::ToolRequested(_)
        | Event::ToolCompleted(_)
        | Event::CredentialReleased(_) => {}
        Event::ToolResponseStorageSet(e) => ops.push(Op::SetToolResponseStorage {
            id: body.aggregate_id.clone(),
            store_tool_responses: e.store_tool_responses,
            version,
        }),
        Event::ToolDefined(e) => ops.push(Op::DefineWorkspaceTool {
            workspace_id: body.workspace_id.clone(),
            name: e.definition.name.clone(),
            definition: serde_json::to_string(&e.definition).unwrap_or_default(),
            version,
            at,
        }),
        Event::ToolRemoved(e) => ops.push(Op::RemoveWorkspaceTool {
            workspace_id: body.workspace_id.clone(),
            name: e.name.clone(),
        }),
        Event::ApprovalRequested(e) => ops.push(Op::RequestApproval {
            workspace_id: body.workspace_id.clone(),
            id: body.aggregate_id.clone(),
            user_id: e.user_id.clone(),
            connection_id: e.connection_id.clone(),
            tool: e.tool.clone(),
            argument_fingerprint: e.argument_fingerprint.clone(),
            expires_at: rfc3339(e.expires_at),
            at,
        }),
        Event::ApprovalApproved(_) | Event::ApprovalDenied(_) | Event::ApprovalConsumed(_) => {
            let (status, tool_call_id) = match event {
                Event::ApprovalApproved(_) => ("approved", None),
                Event::ApprovalDenied(_) => ("denied", None),
                Event::ApprovalConsumed(c) => ("consumed", Some(c.tool_call_id.clone())),
                _ => ("pending", None),
            };
            ops.push(Op::ApprovalStatus {
                workspace_id: body.workspace_id.clone(),
                id: body.aggregate_id.clone(),
                status,
                tool_call_id,
                at,
            })
        }
        Event::GatewayDefined(e) => ops.push(Op::DefineGateway {
            workspace_id: body.workspace_id.clone(),
            id: body.aggregate_id.clone(),
            name: e.name.clone(),
            servers: serde_json::to_string(&e.servers).unwrap_or_default(),
            agent_key_ids: e.agent_key_ids.clone(),
            version,
            at,
        }),
        Event::GatewayDeleted(_) => ops.push(Op::DeleteGateway {
            workspace_id: body.workspace_id.clone(),
            id: body.aggregate_id.clone(),
            version,
            at,
        }),
        Event::ConnectionInitiated(_)
        | Event::ConnectionCreated(_)
        | Event::ConnectionAuthorizationStarted(_)
        | Event::ConnectionAuthorized(_)
        | Event::ConnectionAuthorizationFailed(_)
        | Event::ConnectionRefreshStarted(_)
        | Event::ConnectionRefreshed(_)
        | Event::ConnectionRefreshFailed(_)
        | Event::ConnectionExpired(_)
        | Event::ConnectionNeedsReconsent(_)
        | Event::ConnectionRevoked(_)
        | Event::ConnectionDeleted(_) => {
            if let Some(change) = connection_change(event) {
                ops.push(Op::ConnectionChange {
                    workspace_id: body.workspace_id.clone(),
                    id: body.aggregate_id.clone(),
                    version,
                    at,
                    change,
                });
            }
        }
    }
    ops
}

fn json_list(items: &[String]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".into())
}

/// The projection change of a connection event (`None` for any other event).
fn connection_change(event: &Event) -> Option<ConnectionChange> {
    let change = match event {
        Event::ConnectionInitiated(e) => ConnectionChange {
            new: Some(NewConnection {
                auth_config_id: e.auth_config_id.clone(),
                user_id: e.user_id.clone(),
                requested_scopes: json_list(&e.requested_scopes),
                redirect_url: Some(e.redirect_url.clone()),
                state_hash: Some(e.state_hash.clone()),
            }),
            status: Some("initiated"),
            ..Default::default()
        },
        Event::ConnectionCreated(e) => ConnectionChange {
            new: Some(NewConnection {
                auth_config_id: e.auth_config_id.clone(),
                user_id: e.user_id.clone(),
                requested_scopes: "[]".into(),
                redirect_url: None,
                state_hash: None,
            }),
            status: Some("active"),
            ..Default::default()
        },
        Event::ConnectionAuthorized(e) => ConnectionChange {
            status: Some("active"),
            scopes: Some(json_list(&e.scopes)),
            tokens: Some(TokenState::of(&e.tokens)),
            status_reason: Some(None),
            clear_state_hash: true,
            ..Default::default()
        },
        Event::ConnectionAuthorizationFailed(e) => ConnectionChange {
            status: Some("error"),
            status_reason: Some(Some(match &e.error_description {
                Some(d) => format!("{}: {d}", e.error),
                None => e.error.clone(),
            })),
            clear_state_hash: true,
            ..Default::default()
        },
        Event::ConnectionRefreshStarted(_) | Event::ConnectionAuthorizationStarted(_) => {
            ConnectionChange::default()
        }
        Event::ConnectionRefreshed(e) => ConnectionChange {
            scopes: Some(json_list(&e.scopes)),
            tokens: Some(TokenState::of(&e.tokens)),
            status_reason: Some(None),
            refreshed: true,
            ..Default::default()
        },
        Event::ConnectionRefreshFailed(e) => ConnectionChange {
            status_reason: Some(Some(e.error.clone())),
            ..Default::default()
        },
        Event::ConnectionExpired(e) => ConnectionChange {
            status: Some("expired"),
            status_reason: Some(Some(e.reason.clone())),
            ..Default::default()
        },
        Event::ConnectionNeedsReconsent(e) => ConnectionChange {
            status: Some("needs_reconsent"),
            status_reason: Some(Some(format!(
                "scopes removed: {}",
                e.removed_scopes.join(", ")
            ))),
            ..Default::default()
        },
        Event::ConnectionRevoked(e) => ConnectionChange {
            status: Some("revoked"),
            status_reason: Some(Some(
                e.reason
                    .clone()
                    .unwrap_or_else(|| format!("provider revocation: {}", e.provider.outcome)),
            )),
            clear_state_hash: true,
            ..Default::default()
        },
        Event::ConnectionDeleted(_) => ConnectionChange {
            status: Some("deleted"),
            clear_state_hash: true,
            ..Default::default()
        },
        _ => return None,
    };
    Some(change)
}

#[derive(Default)]
struct AuthConfigChange {
    name: Option<String>,
    provider: Option<String>,
    auth_type: Option<String>,
    status: Option<&'static str>,
    settings: Option<String>,
    client_secret_fingerprint: Option<String>,
    changed: Vec<String>,
}

fn auth_config_op(body: &EventBody, at: String, version: i64, c: AuthConfigChange) -> Op {
    Op::AuthConfigVersion {
        workspace_id: body.workspace_id.clone(),
        id: body.aggregate_id.clone(),
        version,
        kind: body.kind.clone(),
        name: c.name,
        provider: c.provider,
        auth_type: c.auth_type,
        status: c.status.map(str::to_string),
        settings: c.settings,
        client_secret_fingerprint: c.client_secret_fingerprint,
        changed: serde_json::to_string(&c.changed).unwrap_or_default(),
        at,
        actor_id: body.actor.id.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::auth_config::SealedSecret;
    use crate::domain::connection::{
        ConnectionAuthorizationFailed, ConnectionAuthorized, ConnectionRevoked, NeedsReconsent,
        ProviderRevocation,
    };
    use crate::ledger::{Actor, ActorType};
    use time::macros::datetime;

    fn body(version: u64, kind: &str) -> EventBody {
        EventBody {
            event_id: uuid::Uuid::nil(),
            workspace_id: "ws1".into(),
            aggregate_type: "connection".into(),
            aggregate_id: "c1".into(),
            aggregate_version: version,
            kind: kind.into(),
            schema_version: 1,
            occurred_at: datetime!(2026-05-01 10:00:00.25 UTC),
            actor: Actor {
                actor_type: ActorType::System,
                id: "system".into(),
            },
            payload: serde_json::Value::Null,
            prev_hash: None,
            key_id: "ed25519:00".into(),
        }
    }

    /// The connection op `plan` makes of `event` (after the audit row).
    fn change(version: u64, event: &Event) -> (i64, String, ConnectionChange) {
        let ops = plan(7, &body(version, event.kind()), event, "sha256:00");
        assert_eq!(ops.len(), 2, "{ops:?}");
        match ops.into_iter().nth(1) {
            Some(Op::ConnectionChange {
                workspace_id,
                id,
                version,
                at,
                change,
            }) => {
                assert_eq!((workspace_id.as_str(), id.as_str()), ("ws1", "c1"));
                (version, at, change)
            }
            other => unreachable!("not a connection change: {other:?}"),
        }
    }

    fn sealed() -> SealedSecret {
        SealedSecret {
            data_key_id: "dk:1".into(),
            nonce: "n".into(),
            ciphertext: "c".into(),
            fingerprint: "hmac-sha256:f".into(),
        }
    }

    #[test]
    fn every_connection_event_makes_one_connection_change() {
        for e in Event::examples() {
            let is_connection = e.kind().starts_with("connection.");
            let ops = plan(1, &body(1, e.kind()), &e, "sha256:00");
            let changes = ops
                .iter()
                .filter(|op| matches!(op, Op::ConnectionChange { .. }))
                .count();
            assert_eq!(changes, usize::from(is_connection), "{}", e.kind());
        }
    }

    /// The aggregate type each kind is written under, where its projection row holds the
    /// aggregate's version (workspace tools are removed by deleting the row).
    fn versioned_row(kind: &str) -> Option<&'static str> {
        let prefix = kind.split('.').next().unwrap_or_default();
        match prefix {
            "workspace" | "api_key" | "auth_config" | "connection" | "gateway" => [
                "workspace",
                "api_key",
                "auth_config",
                "connection",
                "gateway",
            ]
            .into_iter()
            .find(|t| *t == prefix),
            _ if kind == "tool.defined" => Some("workspace_tool"),
            _ => None,
        }
    }

    #[test]
    fn every_event_of_a_versioned_row_advances_its_version() {
        for e in Event::examples() {
            let mut b = body(4, e.kind());
            let expected = versioned_row(e.kind());
            if let Some(t) = expected {
                b.aggregate_type = t.into();
            }
            let moved: Vec<_> = plan(1, &b, &e, "sha256:00")
                .iter()
                .filter_map(Op::advances_row)
                .collect();
            match expected {
                Some(t) => assert_eq!(moved, vec![(t, 4)], "{}", e.kind()),
                None => assert!(moved.is_empty(), "{}: {moved:?}", e.kind()),
            }
        }
    }

    #[test]
    fn authorized_sets_tokens_and_consumes_the_state() {
        let e = Event::ConnectionAuthorized(ConnectionAuthorized {
            granted_scopes: None,
            scopes: vec!["read".into(), "write".into()],
            tokens: OAuthTokens {
                access_token: sealed(),
                refresh_token: Some(sealed()),
                token_type: "Bearer".into(),
                expires_at: Some(datetime!(2026-05-01 11:00:00.5 UTC)),
            },
        });
        let (version, at, c) = change(2, &e);
        assert_eq!((version, at.as_str()), (2, "2026-05-01T10:00:00.25Z"));
        assert_eq!(
            c,
            ConnectionChange {
                status: Some("active"),
                scopes: Some(r#"["read","write"]"#.into()),
                tokens: Some(TokenState {
                    expires_at: Some("2026-05-01T11:00:00.5Z".into()),
                    expires_at_unix: Some(1_777_633_200),
                    has_refresh_token: true,
                }),
                status_reason: Some(None),
                clear_state_hash: true,
                ..Default::default()
            }
        );
        // Nothing sealed reaches the projection.
        assert!(!format!("{c:?}").contains("hmac-sha256"));
    }

    #[test]
    fn failures_and_endings_explain_the_status() {
        let failed = Event::ConnectionAuthorizationFailed(ConnectionAuthorizationFailed {
            error: "access_denied".into(),
            error_description: Some("user said no".into()),
        });
        let (_, _, c) = change(2, &failed);
        assert_eq!(c.status, Some("error"));
        assert_eq!(
            c.status_reason,
            Some(Some("access_denied: user said no".into()))
        );
        assert!(c.clear_state_hash);

        let reconsent = Event::ConnectionNeedsReconsent(NeedsReconsent {
            auth_config_version: 3,
            removed_scopes: vec!["a".into(), "b".into()],
        });
        let (_, _, c) = change(3, &reconsent);
        assert_eq!(c.status, Some("needs_reconsent"));
        assert_eq!(c.status_reason, Some(Some("scopes removed: a, b".into())));

        let revoked = |reason: Option<&str>| {
            Event::ConnectionRevoked(ConnectionRevoked {
                reason: reason.map(str::to_string),
                provider: ProviderRevocation {
                    outcome: "not_supported".into(),
                    http_status: None,
                    detail: None,
                },
            })
        };
        let (_, _, c) = change(4, &revoked(Some("user request")));
        assert_eq!(
            (c.status, c.status_reason),
            (Some("revoked"), Some(Some("user request".into())))
        );
        let (_, _, c) = change(4, &revoked(None));
        assert_eq!(
            c.status_reason,
            Some(Some("provider revocation: not_supported".into()))
        );
    }

    #[test]
    fn refresh_started_only_advances_the_version() {
        let e = Event::ConnectionRefreshStarted(crate::domain::RefreshStarted {
            trigger: crate::domain::connection::RefreshTrigger::Scheduled,
            lease_expires_at: datetime!(2026-05-01 10:01:00 UTC),
        });
        assert_eq!(
            change(3, &e),
            (
                3,
                "2026-05-01T10:00:00.25Z".into(),
                ConnectionChange::default()
            )
        );
    }
}

//! Pure domain: event kinds and aggregates. No I/O, no clock, no randomness here; time and
//! random material arrive in commands.
//!
//! Every aggregate is `decide(state, command) -> event` and `apply(state, event)`.

pub mod access;
pub mod api_key;
pub mod approval;
pub mod audit;
pub mod auth_config;
pub mod checkpoint;
pub mod connection;
pub mod connector_test;
pub mod cosignature;
pub mod credential_release;
pub mod dynamic_credential;
pub mod end_user;
mod examples;
pub mod gateway;
pub mod idempotency;
pub mod mcp_session;
pub mod member;
pub mod signing_key;
pub mod token;
pub mod tool_call;
pub mod webhook;
pub mod workspace;
pub mod workspace_tool;

use serde::{Deserialize, Serialize};

pub use access::{AccessDenied, DenialReason};
pub use api_key::{ApiKeyCreated, ApiKeyRevoked, Role};
pub use approval::{ApprovalConsumed, ApprovalDecided, ApprovalRequested};
pub use audit::AuditQueried;
pub use auth_config::{
    AuthConfigCreated, AuthConfigDeleted, AuthConfigStatusChanged, AuthConfigUpdated,
    ClientSecretRotated,
};
pub use checkpoint::CheckpointCreated;
pub use connection::{
    AuthorizationStarted, ConnectionAuthorizationFailed, ConnectionAuthorized, ConnectionCreated,
    ConnectionDeleted, ConnectionExpired, ConnectionInitiated, ConnectionRefreshed,
    ConnectionRevoked, CredentialsSubmitted, NeedsReconsent, RefreshFailed, RefreshStarted,
};
pub use connector_test::AuthConfigTested;
pub use cosignature::CheckpointCosigned;
pub use credential_release::CredentialReleased;
pub use dynamic_credential::{CredentialDropStarted, CredentialDropped, CredentialIssued};
pub use end_user::{EndUserSignedIn, EndUserSignedOut};
pub use gateway::{GatewayDefined, GatewayDeleted};
pub use idempotency::{IdempotencyClaimed, IdempotencyCompleted};
pub use mcp_session::McpSessionStarted;
pub use member::{
    MemberInvited, MemberJoined, MemberRemoved, MemberRoleChanged, MemberSecondFactorEnrolled,
    MemberSecondFactorReset, MemberSignedIn, MemberSignedOut, MemberSsoLinked,
};
pub use signing_key::SigningKeyRotated;
pub use token::{TokenIssued, TokenRevoked, TokenUsed};
pub use tool_call::{ToolCompleted, ToolRequested, ToolUndoRequested, ToolUndone};
pub use webhook::{
    WebhookCreated, WebhookDeleted, WebhookDisabled, WebhookReplayRequested, WebhookSecretRotated,
    WebhookUpdated,
};
pub use workspace::{
    AgentConnectFlowsSet, IdentityProviderConfigured, SecondFactorRequirementSet,
    TeamSsoConfigured, ToolResponseStorageSet, WorkspaceCreated,
};
pub use workspace_tool::{ToolDefined, ToolRemoved};

/// The workspace id of ledger-wide aggregates (the signing key ring).
pub const SYSTEM_WORKSPACE: &str = "system";

/// Every event kind the ledger writes. The serde tag is the `kind` field of the signed
/// body and the name of its schema, `schemas/events/v1/<kind>.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "payload")]
pub enum Event {
    #[serde(rename = "workspace.created")]
    WorkspaceCreated(WorkspaceCreated),
    #[serde(rename = "workspace.identity_provider_configured")]
    IdentityProviderConfigured(IdentityProviderConfigured),
    #[serde(rename = "api_key.created")]
    ApiKeyCreated(ApiKeyCreated),
    #[serde(rename = "api_key.revoked")]
    ApiKeyRevoked(ApiKeyRevoked),
    #[serde(rename = "signing_key.rotated")]
    SigningKeyRotated(SigningKeyRotated),
    #[serde(rename = "access.denied")]
    AccessDenied(AccessDenied),
    #[serde(rename = "auth_config.created")]
    AuthConfigCreated(AuthConfigCreated),
    #[serde(rename = "auth_config.updated")]
    AuthConfigUpdated(AuthConfigUpdated),
    #[serde(rename = "auth_config.client_secret_rotated")]
    ClientSecretRotated(ClientSecretRotated),
    #[serde(rename = "auth_config.disabled")]
    AuthConfigDisabled(AuthConfigStatusChanged),
    #[serde(rename = "auth_config.enabled")]
    AuthConfigEnabled(AuthConfigStatusChanged),
    #[serde(rename = "auth_config.deleted")]
    AuthConfigDeleted(AuthConfigDeleted),
    #[serde(rename = "connection.initiated")]
    ConnectionInitiated(ConnectionInitiated),
    #[serde(rename = "connection.created")]
    ConnectionCreated(ConnectionCreated),
    #[serde(rename = "connection.authorization_started")]
    ConnectionAuthorizationStarted(AuthorizationStarted),
    #[serde(rename = "connection.authorized")]
    ConnectionAuthorized(ConnectionAuthorized),
    #[serde(rename = "connection.authorization_failed")]
    ConnectionAuthorizationFailed(ConnectionAuthorizationFailed),
    #[serde(rename = "connection.refresh_started")]
    ConnectionRefreshStarted(RefreshStarted),
    #[serde(rename = "connection.refreshed")]
    ConnectionRefreshed(ConnectionRefreshed),
    #[serde(rename = "connection.refresh_failed")]
    ConnectionRefreshFailed(RefreshFailed),
    #[serde(rename = "connection.expired")]
    ConnectionExpired(ConnectionExpired),
    #[serde(rename = "connection.needs_reconsent")]
    ConnectionNeedsReconsent(NeedsReconsent),
    #[serde(rename = "connection.revoked")]
    ConnectionRevoked(ConnectionRevoked),
    #[serde(rename = "connection.deleted")]
    ConnectionDeleted(ConnectionDeleted),
    #[serde(rename = "audit.queried")]
    AuditQueried(AuditQueried),
    #[serde(rename = "ledger.checkpoint")]
    CheckpointCreated(CheckpointCreated),
    #[serde(rename = "token.issued")]
    TokenIssued(TokenIssued),
    #[serde(rename = "token.used")]
    TokenUsed(TokenUsed),
    #[serde(rename = "token.revoked")]
    TokenRevoked(TokenRevoked),
    #[serde(rename = "tool.requested")]
    ToolRequested(ToolRequested),
    #[serde(rename = "tool.completed")]
    ToolCompleted(ToolCompleted),
    #[serde(rename = "approval.requested")]
    ApprovalRequested(ApprovalRequested),
    #[serde(rename = "approval.approved")]
    ApprovalApproved(ApprovalDecided),
    #[serde(rename = "approval.denied")]
    ApprovalDenied(ApprovalDecided),
    #[serde(rename = "approval.consumed")]
    ApprovalConsumed(ApprovalConsumed),
    #[serde(rename = "tool.defined")]
    ToolDefined(ToolDefined),
    #[serde(rename = "tool.removed")]
    ToolRemoved(ToolRemoved),
    #[serde(rename = "gateway.defined")]
    GatewayDefined(GatewayDefined),
    #[serde(rename = "gateway.deleted")]
    GatewayDeleted(GatewayDeleted),
    #[serde(rename = "credential.released")]
    CredentialReleased(CredentialReleased),
    #[serde(rename = "workspace.tool_response_storage_set")]
    ToolResponseStorageSet(ToolResponseStorageSet),
    #[serde(rename = "checkpoint.cosigned")]
    CheckpointCosigned(CheckpointCosigned),
    #[serde(rename = "idempotency.claimed")]
    IdempotencyClaimed(IdempotencyClaimed),
    #[serde(rename = "idempotency.completed")]
    IdempotencyCompleted(IdempotencyCompleted),
    #[serde(rename = "member.invited")]
    MemberInvited(MemberInvited),
    #[serde(rename = "member.joined")]
    MemberJoined(MemberJoined),
    #[serde(rename = "member.signed_in")]
    MemberSignedIn(MemberSignedIn),
    #[serde(rename = "member.signed_out")]
    MemberSignedOut(MemberSignedOut),
    #[serde(rename = "member.role_changed")]
    MemberRoleChanged(MemberRoleChanged),
    #[serde(rename = "member.removed")]
    MemberRemoved(MemberRemoved),
    #[serde(rename = "member.second_factor_enrolled")]
    MemberSecondFactorEnrolled(MemberSecondFactorEnrolled),
    #[serde(rename = "member.second_factor_reset")]
    MemberSecondFactorReset(MemberSecondFactorReset),
    #[serde(rename = "workspace.second_factor_requirement_set")]
    SecondFactorRequirementSet(SecondFactorRequirementSet),
    #[serde(rename = "connection.credentials_submitted")]
    ConnectionCredentialsSubmitted(CredentialsSubmitted),
    #[serde(rename = "workspace.agent_connect_flows_set")]
    AgentConnectFlowsSet(AgentConnectFlowsSet),
    #[serde(rename = "workspace.team_sso_configured")]
    TeamSsoConfigured(TeamSsoConfigured),
    #[serde(rename = "member.sso_linked")]
    MemberSsoLinked(MemberSsoLinked),
    #[serde(rename = "end_user.signed_in")]
    EndUserSignedIn(EndUserSignedIn),
    #[serde(rename = "end_user.signed_out")]
    EndUserSignedOut(EndUserSignedOut),
    #[serde(rename = "tool.undo_requested")]
    ToolUndoRequested(ToolUndoRequested),
    #[serde(rename = "tool.undone")]
    ToolUndone(ToolUndone),
    #[serde(rename = "webhook.created")]
    WebhookCreated(WebhookCreated),
    #[serde(rename = "webhook.updated")]
    WebhookUpdated(WebhookUpdated),
    #[serde(rename = "webhook.secret_rotated")]
    WebhookSecretRotated(WebhookSecretRotated),
    #[serde(rename = "webhook.disabled")]
    WebhookDisabled(WebhookDisabled),
    #[serde(rename = "webhook.replay_requested")]
    WebhookReplayRequested(WebhookReplayRequested),
    #[serde(rename = "webhook.deleted")]
    WebhookDeleted(WebhookDeleted),
    #[serde(rename = "auth_config.tested")]
    AuthConfigTested(AuthConfigTested),
    #[serde(rename = "credential.issued")]
    CredentialIssued(CredentialIssued),
    #[serde(rename = "credential.drop_started")]
    CredentialDropStarted(CredentialDropStarted),
    #[serde(rename = "credential.expired")]
    CredentialExpired(CredentialDropped),
    #[serde(rename = "credential.revoked")]
    CredentialRevoked(CredentialDropped),
    #[serde(rename = "mcp.session_started")]
    McpSessionStarted(McpSessionStarted),
}

/// Every kind name; a test checks each has a schema and an example.
pub const ALL_KINDS: &[&str] = &[
    "workspace.created",
    "workspace.identity_provider_configured",
    "api_key.created",
    "api_key.revoked",
    "signing_key.rotated",
    "access.denied",
    "auth_config.created",
    "auth_config.updated",
    "auth_config.client_secret_rotated",
    "auth_config.disabled",
    "auth_config.enabled",
    "auth_config.deleted",
    "connection.initiated",
    "connection.created",
    "connection.authorization_started",
    "connection.authorized",
    "connection.authorization_failed",
    "connection.refresh_started",
    "connection.refreshed",
    "connection.refresh_failed",
    "connection.expired",
    "connection.needs_reconsent",
    "connection.revoked",
    "connection.deleted",
    "audit.queried",
    "ledger.checkpoint",
    "token.issued",
    "token.used",
    "token.revoked",
    "tool.requested",
    "tool.completed",
    "approval.requested",
    "approval.approved",
    "approval.denied",
    "approval.consumed",
    "tool.defined",
    "tool.removed",
    "gateway.defined",
    "gateway.deleted",
    "credential.released",
    "workspace.tool_response_storage_set",
    "checkpoint.cosigned",
    "idempotency.claimed",
    "idempotency.completed",
    "member.invited",
    "member.joined",
    "member.signed_in",
    "member.signed_out",
    "member.role_changed",
    "member.removed",
    "member.second_factor_enrolled",
    "member.second_factor_reset",
    "workspace.second_factor_requirement_set",
    "connection.credentials_submitted",
    "workspace.agent_connect_flows_set",
    "workspace.team_sso_configured",
    "member.sso_linked",
    "end_user.signed_in",
    "end_user.signed_out",
    "tool.undo_requested",
    "tool.undone",
    "webhook.created",
    "webhook.updated",
    "webhook.secret_rotated",
    "webhook.disabled",
    "webhook.replay_requested",
    "webhook.deleted",
    "auth_config.tested",
    "credential.issued",
    "credential.drop_started",
    "credential.expired",
    "credential.revoked",
    "mcp.session_started",
];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DomainError {
    #[error("{0} already exists")]
    AlreadyExists(&'static str),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("{0}")]
    Rejected(String),
    #[error("cannot read event: {0}")]
    Undecodable(String),
    #[error(transparent)]
    Token(#[from] token::TokenRefusal),
    #[error(transparent)]
    Approval(#[from] approval::ApprovalRefusal),
    #[error(transparent)]
    Undo(#[from] tool_call::UndoRefusal),
}

impl Event {
    pub fn kind(&self) -> &'static str {
        match self {
            Event::WorkspaceCreated(_) => "workspace.created",
            Event::IdentityProviderConfigured(_) => "workspace.identity_provider_configured",
            Event::ApiKeyCreated(_) => "api_key.created",
            Event::ApiKeyRevoked(_) => "api_key.revoked",
            Event::SigningKeyRotated(_) => "signing_key.rotated",
            Event::AccessDenied(_) => "access.denied",
            Event::AuthConfigCreated(_) => "auth_config.created",
            Event::AuthConfigUpdated(_) => "auth_config.updated",
            Event::ClientSecretRotated(_) => "auth_config.client_secret_rotated",
            Event::AuthConfigDisabled(_) => "auth_config.disabled",
            Event::AuthConfigEnabled(_) => "auth_config.enabled",
            Event::AuthConfigDeleted(_) => "auth_config.deleted",
            Event::ConnectionInitiated(_) => "connection.initiated",
            Event::ConnectionCreated(_) => "connection.created",
            Event::ConnectionAuthorizationStarted(_) => "connection.authorization_started",
            Event::ConnectionAuthorized(_) => "connection.authorized",
            Event::ConnectionAuthorizationFailed(_) => "connection.authorization_failed",
            Event::ConnectionRefreshStarted(_) => "connection.refresh_started",
            Event::ConnectionRefreshed(_) => "connection.refreshed",
            Event::ConnectionRefreshFailed(_) => "connection.refresh_failed",
            Event::ConnectionExpired(_) => "connection.expired",
            Event::ConnectionNeedsReconsent(_) => "connection.needs_reconsent",
            Event::ConnectionRevoked(_) => "connection.revoked",
            Event::ConnectionDeleted(_) => "connection.deleted",
            Event::AuditQueried(_) => "audit.queried",
            Event::CheckpointCreated(_) => "ledger.checkpoint",
            Event::TokenIssued(_) => "token.issued",
            Event::TokenUsed(_) => "token.used",
            Event::TokenRevoked(_) => "token.revoked",
            Event::ToolRequested(_) => "tool.requested",
            Event::ToolCompleted(_) => "tool.completed",
            Event::ApprovalRequested(_) => "approval.requested",
            Event::ApprovalApproved(_) => "approval.approved",
            Event::ApprovalDenied(_) => "approval.denied",
            Event::ApprovalConsumed(_) => "approval.consumed",
            Event::ToolDefined(_) => "tool.defined",
            Event::ToolRemoved(_) => "tool.removed",
            Event::GatewayDefined(_) => "gateway.defined",
            Event::GatewayDeleted(_) => "gateway.deleted",
            Event::CredentialReleased(_) => "credential.released",
            Event::ToolResponseStorageSet(_) => "workspace.tool_response_storage_set",
            Event::CheckpointCosigned(_) => "checkpoint.cosigned",
            Event::IdempotencyClaimed(_) => "idempotency.claimed",
            Event::IdempotencyCompleted(_) => "idempotency.completed",
            Event::MemberInvited(_) => "member.invited",
            Event::MemberJoined(_) => "member.joined",
            Event::MemberSignedIn(_) => "member.signed_in",
            Event::MemberSignedOut(_) => "member.signed_out",
            Event::MemberRoleChanged(_) => "member.role_changed",
            Event::MemberRemoved(_) => "member.removed",
            Event::MemberSecondFactorEnrolled(_) => "member.second_factor_enrolled",
            Event::MemberSecondFactorReset(_) => "member.second_factor_reset",
            Event::SecondFactorRequirementSet(_) => "workspace.second_factor_requirement_set",
            Event::ConnectionCredentialsSubmitted(_) => "connection.credentials_submitted",
            Event::AgentConnectFlowsSet(_) => "workspace.agent_connect_flows_set",
            Event::TeamSsoConfigured(_) => "workspace.team_sso_configured",
            Event::MemberSsoLinked(_) => "member.sso_linked",
            Event::EndUserSignedIn(_) => "end_user.signed_in",
            Event::EndUserSignedOut(_) => "end_user.signed_out",
            Event::ToolUndoRequested(_) => "tool.undo_requested",
            Event::ToolUndone(_) => "tool.undone",
            Event::WebhookCreated(_) => "webhook.created",
            Event::WebhookUpdated(_) => "webhook.updated",
            Event::WebhookSecretRotated(_) => "webhook.secret_rotated",
            Event::WebhookDisabled(_) => "webhook.disabled",
            Event::WebhookReplayRequested(_) => "webhook.replay_requested",
            Event::WebhookDeleted(_) => "webhook.deleted",
            Event::AuthConfigTested(_) => "auth_config.tested",
            Event::CredentialIssued(_) => "credential.issued",
            Event::CredentialDropStarted(_) => "credential.drop_started",
            Event::CredentialExpired(_) => "credential.expired",
            Event::CredentialRevoked(_) => "credential.revoked",
            Event::McpSessionStarted(_) => "mcp.session_started",
        }
    }

    /// Version of the payload schema for this kind.
    pub fn schema_version(&self) -> u32 {
        1
    }

    /// `(kind, payload)` as they go into the signed body.
    pub fn to_parts(&self) -> Result<(String, serde_json::Value), DomainError> {
        let mut v =
            serde_json::to_value(self).map_err(|e| DomainError::Undecodable(e.to_string()))?;
        let payload = v
            .get_mut("payload")
            .map(serde_json::Value::take)
            .unwrap_or_default();
        Ok((self.kind().to_string(), payload))
    }

    pub fn from_parts(kind: &str, payload: &serde_json::Value) -> Result<Event, DomainError> {
        Event::from_owned_parts(kind, payload.clone())
    }

    /// `from_parts` taking the payload: its values move into the event, uncopied.
    pub fn from_owned_parts(kind: &str, payload: serde_json::Value) -> Result<Event, DomainError> {
        let mut tagged = serde_json::Map::with_capacity(2);
        tagged.insert("kind".into(), serde_json::Value::String(kind.to_string()));
        tagged.insert("payload".into(), payload);
        serde_json::from_value(serde_json::Value::Object(tagged))
            .map_err(|e| DomainError::Undecodable(format!("{kind}: {e}")))
    }
}

/// A pure aggregate: state folded from its events, and the decision for one command.
/// `Clone + 'static`: the ledger keeps folded states per instance (see `ledger::writer`).
pub trait Aggregate: Default + Clone + Send + Sync + 'static {
    /// The `aggregate_type` of its events (a subject token).
    const TYPE: &'static str;
    type Command: Send + Sync;

    fn apply(&mut self, event: &Event);
    fn decide(&self, command: &Self::Command) -> Result<Event, DomainError>;
}

/// Checks a human-given name: trimmed, 1..=max characters, no control characters.
pub fn check_name(field: &'static str, value: &str, max: usize) -> Result<(), DomainError> {
    let n = value.chars().count();
    if value.trim() != value || n == 0 || n > max || value.chars().any(char::is_control) {
        return Err(DomainError::Invalid {
            field,
            reason: format!(
                "must be 1-{max} characters, no leading/trailing space or control characters"
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_through_parts() {
        let examples = Event::examples();
        assert_eq!(examples.len(), ALL_KINDS.len());
        for (ev, kind) in examples.iter().zip(ALL_KINDS) {
            let (k, payload) = ev.to_parts().unwrap_or_else(|e| unreachable!("{e}"));
            assert_eq!(&k, kind);
            assert_eq!(
                &Event::from_parts(&k, &payload).unwrap_or_else(|e| unreachable!("{e}")),
                ev
            );
        }
    }

    #[test]
    fn unknown_kind_is_an_error_not_a_panic() {
        assert!(Event::from_parts("nope", &serde_json::json!({})).is_err());
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;
        use serde_json::Value;

        fn json() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::from),
                any::<i64>().prop_map(Value::from),
                any::<u64>().prop_map(Value::from),
                (-1e9f64..1e9).prop_map(Value::from),
                "\\PC{0,16}".prop_map(Value::from),
            ];
            leaf.prop_recursive(3, 48, 6, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                    prop::collection::btree_map("[a-z_]{1,16}", inner, 0..6)
                        .prop_map(|m| Value::Object(m.into_iter().collect())),
                ]
            })
        }

        proptest! {
            /// Any JSON under any kind decodes to an event of that kind or is refused; never
            /// a panic.
            #[test]
            fn any_payload_decodes_to_its_kind_or_is_refused(kind in 0..ALL_KINDS.len(), payload in json()) {
                if let Ok(event) = Event::from_parts(ALL_KINDS[kind], &payload) {
                    prop_assert_eq!(event.kind(), ALL_KINDS[kind]);
                }
            }

            /// A real payload with one field replaced (or removed) decodes to its kind or is
            /// refused.
            #[test]
            fn a_damaged_payload_decodes_to_its_kind_or_is_refused(example in 0..ALL_KINDS.len(), field in any::<prop::sample::Index>(), value in proptest::option::of(json())) {
                let event = &Event::examples()[example];
                let (kind, mut payload) = event.to_parts().map_err(|e| TestCaseError::fail(e.to_string()))?;
                if let Some(map) = payload.as_object_mut() {
                    if !map.is_empty() {
                        let key = map.keys().nth(field.index(map.len())).cloned().unwrap_or_default();
                        match value {
                            Some(v) => map.insert(key, v),
                            None => map.remove(&key),
                        };
                    }
                }
                if let Ok(decoded) = Event::from_parts(&kind, &payload) {
                    prop_assert_eq!(decoded.kind(), event.kind());
                }
            }
        }
    }
}

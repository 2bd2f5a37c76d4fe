//! Pure: what one event changes in the projections, as backend-neutral operations.

use super::op::{
    AgentsOp, ApiKeyOp, AuditRow, AuthConfigVersion, ConnectionChange, ConnectionOp,
    DynamicCredentialChange, DynamicCredentialOp, MemberChange, MemberOp, NewConnection, Op,
    TokenState, WebhookChange, WebhookOp, WorkspaceOp,
};
use super::store::ConnectionRow;
use crate::domain::Event;
use crate::ledger::EventBody;

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
        Event::ToolUndoRequested(e) => (s(&e.connection_id), None, s(&e.tool)),
        Event::ToolUndone(e) => (s(&e.connection_id), None, s(&e.tool)),
        Event::ApprovalRequested(e) => (s(&e.connection_id), None, s(&e.tool)),
        Event::ApprovalApproved(e) | Event::ApprovalDenied(e) => {
            (s(&e.connection_id), None, s(&e.tool))
        }
        Event::CredentialReleased(e) => (s(&e.connection_id), None, None),
        Event::CredentialIssued(e) => (s(&e.connection_id), None, None),
        Event::CredentialDropStarted(e) => (s(&e.connection_id), None, None),
        Event::CredentialExpired(e) | Event::CredentialRevoked(e) => {
            (s(&e.connection_id), None, None)
        }
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
        Event::ConnectionAuthorized(_)
        | Event::ConnectionRefreshed(_)
        | Event::ConnectionCredentialsSubmitted(_) => (None, None, s("success"), None),
        Event::ConnectionAuthorizationFailed(e) => failure(e.error.clone()),
        Event::ConnectionRefreshFailed(e) => failure(e.error.clone()),
        Event::ConnectionExpired(e) => failure(e.reason.clone()),
        Event::ConnectionRevoked(e) => (None, None, s(&e.provider.outcome), e.reason.clone()),
        Event::TokenIssued(e) => (s(&e.user_id), s(&e.auth_config_id), s("success"), None),
        Event::ToolRequested(e) => (s(&e.user_id), s(&e.auth_config_id), None, None),
        Event::ToolCompleted(e) => (None, None, s(e.outcome.as_str()), e.error.clone()),
        Event::ToolUndoRequested(e) => (s(&e.user_id), None, None, None),
        Event::ToolUndone(e) => (None, None, s(e.outcome.as_str()), e.error.clone()),
        Event::ApprovalRequested(e) => (s(&e.user_id), None, s("pending"), None),
        Event::ApprovalApproved(e) => (None, None, s("approved"), e.note.clone()),
        Event::ApprovalDenied(e) => (None, None, s("denied"), e.note.clone()),
        Event::ApprovalConsumed(_) => (None, None, s("consumed"), None),
        Event::TokenRevoked(e) => (None, None, s("revoked"), e.reason.clone()),
        Event::CredentialReleased(e) => (s(&e.user_id), s(&e.auth_config_id), s("released"), None),
        Event::CredentialIssued(e) => (s(&e.user_id), s(&e.auth_config_id), s("issued"), None),
        Event::CredentialExpired(e) | Event::CredentialRevoked(e) => {
            (None, None, s("dropped"), s(e.reason.as_str()))
        }
        Event::IdempotencyCompleted(e) => {
            let outcome = match e.outcome {
                crate::domain::idempotency::IdempotencyOutcome::Recorded => "recorded",
                crate::domain::idempotency::IdempotencyOutcome::Released => "released",
            };
            (None, None, s(outcome), None)
        }
        Event::AuthConfigTested(e) => (
            None,
            s(&e.auth_config_id),
            s(e.outcome.as_str()),
            e.class.clone(),
        ),
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

/// Settings as projections and the API show them: sealed secrets reduced to fingerprints.
pub fn public_settings(settings: &crate::domain::auth_config::AuthSettings) -> serde_json::Value {
    let mut v = serde_json::to_value(settings).unwrap_or_default();
    if let Some(secret) = v.get_mut("client_secret") {
        let fingerprint = secret.get("fingerprint").cloned().unwrap_or_default();
        *secret = serde_json::json!({ "fingerprint": fingerprint });
    }
    v
}

/// `public_settings` plus whether token release is on and whether end users are offered the
/// auth config (shown with the settings).
pub fn shown_settings(
    settings: &crate::domain::auth_config::AuthSettings,
    token_release: bool,
    offered: bool,
) -> serde_json::Value {
    let mut v = public_settings(settings);
    if let Some(map) = v.as_object_mut() {
        map.insert(
            "token_release".into(),
            serde_json::Value::Bool(token_release),
        );
        map.insert("offered".into(), serde_json::Value::Bool(offered));
    }
    v
}

pub fn rfc3339(t: time::OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

pub fn plan(position: u64, body: &EventBody, event: &Event, event_hash: &str) -> Vec<Op> {
    let at = rfc3339(body.occurred_at);
    let version = i64::try_from(body.aggregate_version).unwrap_or(i64::MAX);
    let audit = Op::Audit(audit_row(position, body, event, event_hash, &at));
    std::iter::once(audit)
        .chain(row_op(position, body, event, at, version))
        .collect()
}

/// The event as the audit view lists it.
fn audit_row(
    position: u64,
    body: &EventBody,
    event: &Event,
    event_hash: &str,
    at: &str,
) -> AuditRow {
    let (user_id, auth_config_id, outcome, reason) = audit_facts(body, event);
    let (connection_id, token_id, tool) = agent_facts(body, event);
    AuditRow {
        position: i64::try_from(position).unwrap_or(i64::MAX),
        event_id: body.event_id.to_string(),
        workspace_id: body.workspace_id.clone(),
        aggregate_type: body.aggregate_type.clone(),
        aggregate_id: body.aggregate_id.clone(),
        aggregate_version: i64::try_from(body.aggregate_version).unwrap_or(i64::MAX),
        kind: body.kind.clone(),
        actor_type: body.actor.actor_type.as_str().to_string(),
        actor_id: body.actor.id.clone(),
        occurred_at: at.to_string(),
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
    }
}

/// The op on the projection row of the event's aggregate, if it has one.
fn row_op(position: u64, body: &EventBody, event: &Event, at: String, version: i64) -> Option<Op> {
    match event {
        Event::WorkspaceCreated(_)
        | Event::IdentityProviderConfigured(_)
        | Event::ToolResponseStorageSet(_)
        | Event::SecondFactorRequirementSet(_)
        | Event::AgentConnectFlowsSet(_)
        | Event::TeamSsoConfigured(_) => workspace_op(body, event, at, version).map(Op::Workspace),
        Event::ApiKeyCreated(_) | Event::ApiKeyRevoked(_) => {
            api_key_op(body, event, at, version).map(Op::ApiKey)
        }
        Event::AuthConfigCreated(_)
        | Event::AuthConfigUpdated(_)
        | Event::ClientSecretRotated(_)
        | Event::AuthConfigDisabled(_)
        | Event::AuthConfigEnabled(_)
        | Event::AuthConfigDeleted(_) => {
            auth_config_change(event).map(|c| auth_config_op(body, at, version, c))
        }
        Event::ToolDefined(_)
        | Event::ToolRemoved(_)
        | Event::ApprovalRequested(_)
        | Event::ApprovalApproved(_)
        | Event::ApprovalDenied(_)
        | Event::ApprovalConsumed(_)
        | Event::GatewayDefined(_)
        | Event::GatewayDeleted(_) => agents_op(body, event, at, version).map(Op::Agents),
        Event::ConnectionInitiated(_)
        | Event::ConnectionCreated(_)
        | Event::ConnectionAuthorizationStarted(_)
        | Event::ConnectionAuthorized(_)
        | Event::ConnectionCredentialsSubmitted(_)
        | Event::ConnectionAuthorizationFailed(_)
        | Event::ConnectionRefreshStarted(_)
        | Event::ConnectionRefreshed(_)
        | Event::ConnectionRefreshFailed(_)
        | Event::ConnectionExpired(_)
        | Event::ConnectionNeedsReconsent(_)
        | Event::ConnectionRevoked(_)
        | Event::ConnectionDeleted(_) => connection_change(event).map(|change| {
            Op::Connection(ConnectionOp {
                workspace_id: body.workspace_id.clone(),
                id: body.aggregate_id.clone(),
                version,
                at,
                change,
            })
        }),
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
        | Event::CredentialReleased(_)
        | Event::IdempotencyClaimed(_)
        | Event::IdempotencyCompleted(_)
        | Event::EndUserSignedIn(_)
        | Event::EndUserSignedOut(_)
        | Event::ToolUndoRequested(_)
        | Event::ToolUndone(_)
        | Event::AuthConfigTested(_)
        | Event::McpSessionStarted(_) => None,
        Event::MemberInvited(_)
        | Event::MemberJoined(_)
        | Event::MemberSignedIn(_)
        | Event::MemberSignedOut(_)
        | Event::MemberRoleChanged(_)
        | Event::MemberRemoved(_)
        | Event::MemberSecondFactorEnrolled(_)
        | Event::MemberSecondFactorReset(_)
        | Event::MemberSsoLinked(_) => Some(Op::Member(MemberOp {
            workspace_id: body.workspace_id.clone(),
            id: body.aggregate_id.clone(),
            version,
            at,
            change: member_change(event),
        })),
        Event::WebhookCreated(_)
        | Event::WebhookUpdated(_)
        | Event::WebhookSecretRotated(_)
        | Event::WebhookDisabled(_)
        | Event::WebhookReplayRequested(_)
        | Event::WebhookDeleted(_) => Some(Op::Webhook(WebhookOp {
            workspace_id: body.workspace_id.clone(),
            id: body.aggregate_id.clone(),
            version,
            at,
            change: webhook_change(event, position),
        })),
        Event::CredentialIssued(_)
        | Event::CredentialDropStarted(_)
        | Event::CredentialExpired(_)
        | Event::CredentialRevoked(_) => Some(Op::DynamicCredential(DynamicCredentialOp {
            workspace_id: body.workspace_id.clone(),
            id: body.aggregate_id.clone(),
            version,
            at,
            change: match event {
                Event::CredentialIssued(e) => DynamicCredentialChange::Issued {
                    connection_id: e.connection_id.clone(),
                    username: e.username.clone(),
                    expires_at_unix: e.expires_at.unix_timestamp(),
                },
                Event::CredentialDropStarted(_) => DynamicCredentialChange::Status("dropping"),
                Event::CredentialExpired(_) => DynamicCredentialChange::Status("expired"),
                _ => DynamicCredentialChange::Status("revoked"),
            },
        })),
    }
}

fn webhook_change(event: &Event, position: u64) -> WebhookChange {
    let events = |e: &[String]| serde_json::to_string(e).unwrap_or_else(|_| "[]".into());
    match event {
        Event::WebhookCreated(e) => WebhookChange::Created {
            url: e.url.clone(),
            events: events(&e.events),
            enabled: e.enabled,
            fingerprint: e.secret.fingerprint.clone(),
            position: i64::try_from(position).unwrap_or(i64::MAX),
        },
        Event::WebhookUpdated(e) => WebhookChange::Updated {
            url: e.url.clone(),
            events: events(&e.events),
            enabled: e.enabled,
        },
        Event::WebhookSecretRotated(e) => WebhookChange::SecretRotated {
            fingerprint: e.secret.fingerprint.clone(),
        },
        Event::WebhookDisabled(e) => WebhookChange::Disabled {
            reason: e.reason.clone(),
        },
        Event::WebhookDeleted(_) => WebhookChange::Deleted,
        _ => WebhookChange::Version,
    }
}

fn member_change(event: &Event) -> MemberChange {
    match event {
        Event::MemberInvited(e) => MemberChange::Invited {
            email: e.email.clone(),
            role: e.role.as_str().to_string(),
            expires_at: rfc3339(e.expires_at),
        },
        Event::MemberJoined(_) => MemberChange::Joined,
        Event::MemberSignedIn(_) => MemberChange::SignedIn,
        Event::MemberRoleChanged(e) => MemberChange::Role(e.role.as_str().to_string()),
        Event::MemberRemoved(_) => MemberChange::Removed,
        Event::MemberSecondFactorEnrolled(_) => MemberChange::SecondFactor(true),
        Event::MemberSecondFactorReset(_) => MemberChange::SecondFactor(false),
        // An invitee who joined by SSO is active like one who set a password.
        Event::MemberSsoLinked(e) if e.invite_hash.is_some() => MemberChange::Joined,
        _ => MemberChange::Version,
    }
}

fn workspace_op(body: &EventBody, event: &Event, at: String, version: i64) -> Option<WorkspaceOp> {
    let id = body.aggregate_id.clone();
    Some(match event {
        Event::WorkspaceCreated(e) => WorkspaceOp::Create {
            id,
            name: e.name.clone(),
            at,
            version,
        },
        Event::IdentityProviderConfigured(e) => WorkspaceOp::ConfigureIdentityProvider {
            id,
            issuer: e.issuer.clone(),
            audience: e.audience.clone(),
            jwks_url: e.jwks_url.clone(),
            version,
        },
        Event::ToolResponseStorageSet(e) => WorkspaceOp::SetToolResponseStorage {
            id,
            store_tool_responses: e.store_tool_responses,
            version,
        },
        Event::SecondFactorRequirementSet(e) => WorkspaceOp::SetSecondFactorRequirement {
            id,
            required: e.required,
            version,
        },
        Event::AgentConnectFlowsSet(e) => WorkspaceOp::SetAgentConnectFlows {
            id,
            any_user: e.any_user,
            version,
        },
        Event::TeamSsoConfigured(_) => WorkspaceOp::Advance { id, version },
        _ => return None,
    })
}

fn api_key_op(body: &EventBody, event: &Event, at: String, version: i64) -> Option<ApiKeyOp> {
    let (workspace_id, id) = (body.workspace_id.clone(), body.aggregate_id.clone());
    Some(match event {
        Event::ApiKeyCreated(e) => ApiKeyOp::Create {
            workspace_id,
            id,
            name: e.name.clone(),
            role: e.role.as_str().to_string(),
            key_prefix: e.key_prefix.clone(),
            key_hash: e.key_hash.clone(),
            at,
            expires_at: e.expires_at.map(rfc3339),
            version,
        },
        Event::ApiKeyRevoked(_) => ApiKeyOp::Revoke {
            workspace_id,
            id,
            at,
            version,
        },
        _ => return None,
    })
}

fn auth_config_change(event: &Event) -> Option<AuthConfigChange> {
    let status = |status: &'static str| AuthConfigChange {
        status: Some(status),
        changed: vec!["status".into()],
        ..Default::default()
    };
    Some(match event {
        Event::AuthConfigCreated(e) => AuthConfigChange {
            name: Some(e.name.clone()),
            provider: Some(e.provider.clone()),
            auth_type: Some(e.settings.auth_type().to_string()),
            status: Some("enabled"),
            settings: Some(shown_settings(&e.settings, e.token_release, e.offered).to_string()),
            changed: vec!["created".into()],
            ..Default::default()
        },
        Event::AuthConfigUpdated(e) => AuthConfigChange {
            name: Some(e.name.clone()),
            settings: Some(shown_settings(&e.settings, e.token_release, e.offered).to_string()),
            changed: e.changed.clone(),
            ..Default::default()
        },
        Event::ClientSecretRotated(e) => AuthConfigChange {
            client_secret_fingerprint: Some(e.client_secret.fingerprint.clone()),
            changed: vec!["client_secret".into()],
            ..Default::default()
        },
        Event::AuthConfigDisabled(_) => status("disabled"),
        Event::AuthConfigEnabled(_) => status("enabled"),
        Event::AuthConfigDeleted(_) => status("deleted"),
        _ => return None,
    })
}

fn agents_op(body: &EventBody, event: &Event, at: String, version: i64) -> Option<AgentsOp> {
    let (workspace_id, id) = (body.workspace_id.clone(), body.aggregate_id.clone());
    let status =
        |status: &'static str, tool_call_id: Option<String>, at: String| AgentsOp::ApprovalStatus {
            workspace_id: body.workspace_id.clone(),
            id: body.aggregate_id.clone(),
            status,
            tool_call_id,
            at,
        };
    Some(match event {
        Event::ToolDefined(e) => AgentsOp::DefineWorkspaceTool {
            workspace_id,
            name: e.definition.name.clone(),
            definition: serde_json::to_string(&e.definition).unwrap_or_default(),
            version,
            at,
        },
        Event::ToolRemoved(e) => AgentsOp::RemoveWorkspaceTool {
            workspace_id,
            name: e.name.clone(),
        },
        Event::ApprovalRequested(e) => AgentsOp::RequestApproval {
            workspace_id,
            id,
            user_id: e.user_id.clone(),
            connection_id: e.connection_id.clone(),
            tool: e.tool.clone(),
            argument_fingerprint: e.argument_fingerprint.clone(),
            expires_at: rfc3339(e.expires_at),
            at,
        },
        Event::ApprovalApproved(_) => status("approved", None, at),
        Event::ApprovalDenied(_) => status("denied", None, at),
        Event::ApprovalConsumed(c) => status("consumed", Some(c.tool_call_id.clone()), at),
        Event::GatewayDefined(e) => AgentsOp::DefineGateway {
            workspace_id,
            id,
            name: e.name.clone(),
            servers: serde_json::to_string(&e.servers).unwrap_or_default(),
            agent_key_ids: e.agent_key_ids.clone(),
            version,
            at,
        },
        Event::GatewayDeleted(_) => AgentsOp::DeleteGateway {
            workspace_id,
            id,
            version,
            at,
        },
        _ => return None,
    })
}

fn json_list(items: &[String]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".into())
}

/// The row a connection's first event (`connection.initiated` or `connection.created`)
/// inserts, as the projections show it once they include that event: a write's answer needs
/// no read of it. `None` for any other event. Held to what the insert writes by the
/// integration tests that compare a create's answer with a read (`connection_lifecycle`,
/// `hosted_connect`, `connections::full_connect_flow` on both backends).
pub fn first_connection_row(
    (workspace_id, id): (&str, &str),
    event: &Event,
    version: u64,
    occurred_at: time::OffsetDateTime,
) -> Option<ConnectionRow> {
    let change = connection_change(event)?;
    let new = change.new?;
    let at = rfc3339(occurred_at);
    Some(ConnectionRow {
        workspace_id: workspace_id.to_string(),
        id: id.to_string(),
        auth_config_id: new.auth_config_id,
        user_id: new.user_id,
        status: change.status.unwrap_or_default().to_string(),
        scopes: change.scopes.unwrap_or_else(|| "[]".into()),
        requested_scopes: new.requested_scopes,
        redirect_url: new.redirect_url,
        expires_at: None,
        has_refresh_token: false,
        status_reason: None,
        created_at: at.clone(),
        updated_at: at,
        last_refreshed_at: None,
        last_used_at: None,
        version: i64::try_from(version).unwrap_or(i64::MAX),
    })
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
        Event::ConnectionCredentialsSubmitted(_) => ConnectionChange {
            status: Some("active"),
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
    Op::AuthConfig(AuthConfigVersion {
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
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::auth_config::SealedSecret;
    use crate::domain::connection::OAuthTokens;
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
            trace_id: None,
        }
    }

    /// The connection op `plan` makes of `event` (after the audit row).
    fn change(version: u64, event: &Event) -> (i64, String, ConnectionChange) {
        let ops = plan(7, &body(version, event.kind()), event, "sha256:00");
        assert_eq!(ops.len(), 2, "{ops:?}");
        match ops.into_iter().nth(1) {
            Some(Op::Connection(ConnectionOp {
                workspace_id,
                id,
                version,
                at,
                change,
            })) => {
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
                .filter(|op| matches!(op, Op::Connection(_)))
                .count();
            assert_eq!(changes, usize::from(is_connection), "{}", e.kind());
        }
    }

    /// The aggregate type each kind is written under, where its projection row holds the
    /// aggregate's version (workspace tools are removed by deleting the row).
    fn versioned_row(kind: &str) -> Option<&'static str> {
        if kind == "auth_config.tested" {
            // Each run is its own aggregate: the auth config's version does not move.
            return None;
        }
        let prefix = kind.split('.').next().unwrap_or_default();
        match prefix {
            "workspace" | "api_key" | "auth_config" | "connection" | "gateway" | "member"
            | "webhook" => [
                "workspace",
                "api_key",
                "auth_config",
                "connection",
                "gateway",
                "member",
                "webhook",
            ]
            .into_iter()
            .find(|t| *t == prefix),
            _ if kind == "tool.defined" => Some("workspace_tool"),
            "credential" if kind != "credential.released" => Some("dynamic_credential"),
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

//! Pure: what one event changes in the projections, as backend-neutral operations.

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
    pub key_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Audit(AuditRow),
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
        changed: String,
        at: String,
        actor_id: String,
    },
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

pub fn rfc3339(t: time::OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

pub fn plan(position: u64, body: &EventBody, event: &Event) -> Vec<Op> {
    let at = rfc3339(body.occurred_at);
    let version = i64::try_from(body.aggregate_version).unwrap_or(i64::MAX);
    let actor_type = serde_json::to_value(body.actor.actor_type)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
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
        key_id: body.key_id.clone(),
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
                settings: Some(public_settings(&e.settings).to_string()),
                changed: vec!["created".into()],
            },
        )),
        Event::AuthConfigUpdated(e) => ops.push(auth_config_op(
            body,
            at,
            version,
            AuthConfigChange {
                name: Some(e.name.clone()),
                settings: Some(public_settings(&e.settings).to_string()),
                changed: e.changed.clone(),
                ..Default::default()
            },
        )),
        Event::ClientSecretRotated(_) => ops.push(auth_config_op(
            body,
            at,
            version,
            AuthConfigChange {
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
        Event::SigningKeyRotated(_) | Event::AccessDenied(_) => {}
    }
    ops
}

#[derive(Default)]
struct AuthConfigChange {
    name: Option<String>,
    provider: Option<String>,
    auth_type: Option<String>,
    status: Option<&'static str>,
    settings: Option<String>,
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
        changed: serde_json::to_string(&c.changed).unwrap_or_default(),
        at,
        actor_id: body.actor.id.clone(),
    }
}

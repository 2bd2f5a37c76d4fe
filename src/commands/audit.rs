//! Audit queries: record who asked (fail closed: no record, no answer), and read one event
//! exactly as signed with its signature checked against the trusted keys.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use uuid::Uuid;

use super::{Caller, CommandError};
use crate::app::AppState;
use crate::domain::audit::AUDIT_QUERY_AGGREGATE;
use crate::domain::{AuditQueried, DomainError, Event};
use crate::ledger::envelope::open_envelope;
use crate::ledger::keys::SignatureProblem;
use crate::ledger::AggregateKey;
use crate::projector::store::AuditEventRow;

/// Appends `audit.queried` for this query. The query is refused if it cannot be recorded.
pub async fn record_query(
    state: &AppState,
    caller: &Caller,
    route: &str,
    filters: BTreeMap<String, String>,
) -> Result<u64, CommandError> {
    record_query_by(state, &caller.workspace_id, &caller.actor(), route, filters).await
}

/// [`record_query`] for any actor (the CLI's operator exports as `system`).
pub async fn record_query_by(
    state: &AppState,
    workspace_id: &str,
    actor: &crate::ledger::Actor,
    route: &str,
    filters: BTreeMap<String, String>,
) -> Result<u64, CommandError> {
    let key = AggregateKey::new(
        workspace_id,
        AUDIT_QUERY_AGGREGATE,
        Uuid::now_v7().to_string(),
    )
    .map_err(|e| CommandError::Ledger(e.into()))?;
    let event = Event::AuditQueried(AuditQueried {
        route: route.to_string(),
        filters,
    });
    let committed = state.ledger.append_first(&key, actor, &event).await?;
    crate::commands::written::reached(committed.position);
    Ok(committed.position)
}

/// One event as stored and signed: the envelope, its body, and whether each signature
/// verifies with a key this service trusts.
pub async fn signed_event(state: &AppState, row: &AuditEventRow) -> Result<Value, CommandError> {
    let position = u64::try_from(row.position).unwrap_or(0);
    let records = state
        .log
        .read_from(position, 1)
        .await
        .map_err(|e| CommandError::Ledger(crate::ledger::LedgerError::Log(e)))?;
    let record = records
        .into_iter()
        .find(|r| r.position == position)
        .ok_or(DomainError::NotFound("event"))?;
    let opened = open_envelope(&record.envelope).map_err(|e| {
        CommandError::Ledger(crate::ledger::LedgerError::Corrupt {
            position,
            reason: e.to_string(),
        })
    })?;
    if opened.body.event_id.to_string() != row.event_id {
        return Err(CommandError::Ledger(crate::ledger::LedgerError::Corrupt {
            position,
            reason: "the log and the audit view disagree on this position".into(),
        }));
    }
    let signatures: Vec<Value> = opened
        .signatures
        .iter()
        .map(|(key_id, sig)| {
            let check = state.trusted_keys.verify(key_id, &opened.body_bytes, sig);
            json!({
                "key_id": key_id,
                "valid": check.is_ok(),
                "problem": match check {
                    Ok(()) => Value::Null,
                    Err(SignatureProblem::UnknownKey) => json!("unknown_key"),
                    Err(SignatureProblem::BadSignature) => json!("bad_signature"),
                },
            })
        })
        .collect();
    let envelope: Value = serde_json::from_slice(&record.envelope).unwrap_or(Value::Null);
    let body: Value = serde_json::from_slice(&opened.body_bytes).unwrap_or(Value::Null);
    Ok(json!({
        "position": position,
        "event_hash": opened.hash,
        "envelope": envelope,
        "body": body,
        "signatures": signatures,
        "verified": !signatures.is_empty() && signatures.iter().all(|s| s["valid"] == json!(true)),
    }))
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    crate::projector::plan::rfc3339(t)
}

/// A connection as it was at `at`, rebuilt from its events (`None`: it did not exist yet,
/// or the id names no connection of this workspace).
pub async fn connection_as_of(
    state: &AppState,
    workspace_id: &str,
    id: &str,
    at: time::OffsetDateTime,
) -> Result<Option<Value>, CommandError> {
    use crate::domain::connection::Connection;
    let (c, version) = match state
        .ledger
        .load_as_of::<Connection>(workspace_id, id, at)
        .await
    {
        Err(crate::ledger::LedgerError::Envelope(_)) => return Ok(None),
        other => other?,
    };
    let Some(status) = c.status else {
        return Ok(None);
    };
    Ok(Some(json!({
        "id": id,
        "as_of": rfc3339(at),
        "version": version,
        "auth_config_id": c.auth_config_id,
        "user_id": c.user_id,
        "status": status.as_str(),
        "status_reason": c.last_error,
        "scopes": c.scopes,
        "requested_scopes": c.requested_scopes,
        "redirect_url": c.redirect_url,
        "expires_at": c.tokens.as_ref().and_then(|t| t.expires_at).map(rfc3339),
        "has_refresh_token": c.tokens.as_ref().is_some_and(|t| t.refresh_token.is_some()),
    })))
}

/// An auth config as it was at `at` (settings without secrets).
pub async fn auth_config_as_of(
    state: &AppState,
    workspace_id: &str,
    id: &str,
    at: time::OffsetDateTime,
) -> Result<Option<Value>, CommandError> {
    use crate::domain::auth_config::{AuthConfig, Lifecycle};
    let (c, version) = match state
        .ledger
        .load_as_of::<AuthConfig>(workspace_id, id, at)
        .await
    {
        Err(crate::ledger::LedgerError::Envelope(_)) => return Ok(None),
        other => other?,
    };
    let status = match c.lifecycle {
        Lifecycle::Absent => return Ok(None),
        Lifecycle::Enabled => "enabled",
        Lifecycle::Disabled => "disabled",
        Lifecycle::Deleted => "deleted",
    };
    Ok(Some(json!({
        "id": id,
        "as_of": rfc3339(at),
        "version": version,
        "name": c.name,
        "provider": c.provider,
        "auth_type": c.settings.as_ref().map(|s| s.auth_type()),
        "status": status,
        "settings": c.settings.as_ref().map(|s| crate::projector::plan::shown_settings(s, c.token_release, c.offered)),
    })))
}

/// "Who could act as this person, and who did": each of the user's connections as of `at`
/// (status, scopes) and every actor that acted on it, how often and when last.
pub async fn access_report(
    state: &AppState,
    workspace_id: &str,
    user_id: &str,
    at: time::OffsetDateTime,
) -> Result<Value, CommandError> {
    let until = at.unix_timestamp();
    let ids = state
        .projections
        .audited_connections_of_user(workspace_id, user_id, until)
        .await?;
    let mut connections = Vec::with_capacity(ids.len());
    for id in ids {
        let Some(mut view) = connection_as_of(state, workspace_id, &id, at).await? else {
            continue;
        };
        let actors: Vec<Value> = state
            .projections
            .actors_of_connection(workspace_id, &id, until)
            .await?
            .into_iter()
            .map(|(actor_type, actor_id, events, last)| {
                json!({
                    "actor": { "type": actor_type, "id": actor_id },
                    "events": events,
                    "last_at": time::OffsetDateTime::from_unix_timestamp(last).ok().map(rfc3339),
                })
            })
            .collect();
        if let Value::Object(map) = &mut view {
            map.insert("actors".into(), Value::Array(actors));
            let live = map
                .get("status")
                .and_then(Value::as_str)
                .is_some_and(|s| matches!(s, "active" | "needs_reconsent"));
            map.insert("could_act".into(), json!(live));
        }
        connections.push(view);
    }
    Ok(json!({
        "user_id": user_id,
        "as_of": rfc3339(at),
        "connections": connections,
    }))
}

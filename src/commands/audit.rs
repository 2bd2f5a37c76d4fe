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
    let key = AggregateKey::new(
        &caller.workspace_id,
        AUDIT_QUERY_AGGREGATE,
        Uuid::now_v7().to_string(),
    )
    .map_err(|e| CommandError::Ledger(e.into()))?;
    let event = Event::AuditQueried(AuditQueried {
        route: route.to_string(),
        filters,
    });
    let committed = state
        .ledger
        .append_next(&key, &caller.actor(), &event)
        .await?;
    crate::api::consistency::record_position(committed.position);
    Ok(committed.position)
}

/// One event as stored and signed: the envelope, its body, and whether each signature
/// verifies with a key this service trusts.
pub async fn signed_event(state: &AppState, row: &AuditEventRow) -> Result<Value, CommandError> {
    let position = u64::try_from(row.position).unwrap_or(0);
    let records = state.log.read_from(position, 1).await.map_err(|e| {
        CommandError::Ledger(crate::ledger::LedgerError::Log(e))
    })?;
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

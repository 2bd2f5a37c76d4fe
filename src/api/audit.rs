//! `/v1/audit/events`: the compliance audit view. Every query is itself recorded
//! (`audit.queried`, with the filters) before it is answered.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::error::ApiError;
use super::extract::ApiQuery;
use super::routes::Route;
use crate::app::AppState;
use crate::commands::{audit, Caller};
use crate::projector::store::{AuditEventRow, AuditFilter};

const MAX_LIMIT: i64 = 1000;
const DEFAULT_LIMIT: i64 = 100;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    pub from: Option<String>,
    pub to: Option<String>,
    pub kind: Option<String>,
    pub actor: Option<String>,
    pub user_id: Option<String>,
    pub auth_config_id: Option<String>,
    pub connection_id: Option<String>,
    pub outcome: Option<String>,
    pub order: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
    pub min_position: Option<u64>,
}

impl AuditQuery {
    /// The filters as given, for the `audit.queried` record.
    pub fn as_filters(&self) -> BTreeMap<String, String> {
        let fields = [
            ("from", &self.from),
            ("to", &self.to),
            ("kind", &self.kind),
            ("actor", &self.actor),
            ("user_id", &self.user_id),
            ("auth_config_id", &self.auth_config_id),
            ("connection_id", &self.connection_id),
            ("outcome", &self.outcome),
            ("order", &self.order),
            ("cursor", &self.cursor),
        ];
        let mut out: BTreeMap<String, String> = fields
            .into_iter()
            .filter_map(|(k, v)| {
                v.as_ref()
                    .map(|v| (k.to_string(), v.chars().take(256).collect()))
            })
            .collect();
        if let Some(l) = self.limit {
            out.insert("limit".into(), l.to_string());
        }
        out
    }
}

fn bad(detail: impl Into<String>) -> ApiError {
    ApiError::BadRequest(detail.into())
}

fn instant(field: &str, v: &Option<String>) -> Result<Option<i64>, ApiError> {
    v.as_deref()
        .map(|s| {
            OffsetDateTime::parse(s, &Rfc3339)
                .map(|t| t.unix_timestamp())
                .map_err(|_| bad(format!("{field} must be an RFC 3339 time")))
        })
        .transpose()
}

/// The cursor names the last position served and the order it was served in.
pub fn encode_cursor(position: i64, descending: bool) -> String {
    B64URL.encode(format!("{}:{position}", if descending { "d" } else { "a" }))
}

fn decode_cursor(c: &str, descending: bool) -> Result<i64, ApiError> {
    let text = B64URL
        .decode(c.as_bytes())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| bad("cursor is not one this API issued"))?;
    let (dir, pos) = text
        .split_once(':')
        .ok_or_else(|| bad("cursor is not one this API issued"))?;
    if (dir == "d") != descending {
        return Err(bad("cursor was issued for the other order"));
    }
    pos.parse::<i64>()
        .map_err(|_| bad("cursor is not one this API issued"))
}

pub fn filter_of(q: &AuditQuery) -> Result<AuditFilter, ApiError> {
    let descending = match q.order.as_deref() {
        None | Some("desc") => true,
        Some("asc") => false,
        Some(_) => return Err(bad("order must be asc or desc")),
    };
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(bad(format!("limit must be 1-{MAX_LIMIT}")));
    }
    let (kind, kind_prefix) = match q.kind.as_deref() {
        None => (None, None),
        Some(k)
            if k.is_empty()
                || !k
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c == '_' || c == '.') =>
        {
            return Err(bad(
                "kind is an event kind (e.g. connection.refreshed) or a prefix ending in '.'",
            ))
        }
        Some(k) if k.ends_with('.') => (None, Some(k.to_string())),
        Some(k) => (Some(k.to_string()), None),
    };
    Ok(AuditFilter {
        from_unix: instant("from", &q.from)?,
        to_unix: instant("to", &q.to)?,
        kind,
        kind_prefix,
        actor_id: q.actor.clone(),
        user_id: q.user_id.clone(),
        auth_config_id: q.auth_config_id.clone(),
        connection_id: q.connection_id.clone(),
        outcome: q.outcome.clone(),
        cursor_position: q
            .cursor
            .as_deref()
            .map(|c| decode_cursor(c, descending))
            .transpose()?,
        descending,
        // One more than asked, to know whether there is a next page.
        limit: limit + 1,
    })
}

pub fn view(row: &AuditEventRow) -> Value {
    row.view()
}

pub async fn list(
    State(state): State<AppState>,
    Extension(route): Extension<Route>,
    Extension(caller): Extension<Caller>,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Response, ApiError> {
    let filter = filter_of(&q)?;
    audit::record_query(&state, &caller, route.0.path, q.as_filters()).await?;
    let want = usize::try_from(filter.limit - 1).unwrap_or(0);
    let mut rows = state
        .projections
        .audit_events(&caller.workspace_id, &filter)
        .await?;
    let next_cursor = if rows.len() > want {
        rows.truncate(want);
        rows.last()
            .map(|r| encode_cursor(r.position, filter.descending))
    } else {
        None
    };
    Ok(Json(json!({
        "items": rows.iter().map(view).collect::<Vec<_>>(),
        "next_cursor": next_cursor,
    }))
    .into_response())
}

/// One event exactly as signed, with its signature checked.
pub async fn get(
    State(state): State<AppState>,
    Extension(route): Extension<Route>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let filters = [("event_id".to_string(), id.chars().take(128).collect())]
        .into_iter()
        .collect();
    audit::record_query(&state, &caller, route.0.path, filters).await?;
    let Some(row) = state
        .projections
        .audit_event(&caller.workspace_id, &id)
        .await?
    else {
        let elsewhere = state
            .projections
            .audit_event_elsewhere(&caller.workspace_id, &id)
            .await?;
        return super::not_found_audited(&state, &caller, route.pair(), &id, elsewhere, "event")
            .await;
    };
    let mut signed = audit::signed_event(&state, &row).await?;
    let position = u64::try_from(row.position).unwrap_or(0);
    let inclusion = crate::audit::checkpoints::inclusion(&state, position).await?;
    if let Value::Object(map) = &mut signed {
        map.insert("event".into(), view(&row));
        // Null until a checkpoint covers the event (the next scheduled one will).
        map.insert(
            "inclusion".into(),
            match inclusion {
                Some((cp, proof)) => json!({
                    "checkpoint": checkpoint_view(&cp),
                    "leaf_index": position - 1,
                    "proof": proof.iter().map(crate::audit::merkle::to_hex).collect::<Vec<_>>(),
                    "algorithm": "RFC 9162 §2.1.3 (SHA-256; leaf = sha256(envelope))",
                }),
                None => Value::Null,
            },
        );
    }
    Ok(Json(signed).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_are_bound_to_their_order() {
        let c = encode_cursor(42, true);
        assert_eq!(decode_cursor(&c, true).ok(), Some(42));
        assert!(decode_cursor(&c, false).is_err());
        assert!(decode_cursor("garbage!", true).is_err());
    }

    #[test]
    fn kind_filters_are_exact_or_prefix_and_never_wildcards() {
        let q = |k: &str| AuditQuery {
            kind: Some(k.into()),
            ..Default::default()
        };
        let f = filter_of(&q("connection.")).ok();
        assert_eq!(
            f.as_ref().and_then(|f| f.kind_prefix.clone()).as_deref(),
            Some("connection.")
        );
        let f = filter_of(&q("connection.refreshed")).ok();
        assert_eq!(
            f.and_then(|f| f.kind).as_deref(),
            Some("connection.refreshed")
        );
        assert!(filter_of(&q("conn%")).is_err());
        assert!(filter_of(&AuditQuery {
            limit: Some(1001),
            ..Default::default()
        })
        .is_err());
        assert!(filter_of(&AuditQuery {
            from: Some("yesterday".into()),
            ..Default::default()
        })
        .is_err());
    }
}

fn checkpoint_view(c: &crate::audit::checkpoints::StoredCheckpoint) -> Value {
    let cp = &c.checkpoint;
    json!({
        "sequence": cp.sequence,
        "from_position": cp.from_position,
        "to_position": cp.to_position,
        "count": cp.count,
        "tree_size": cp.tree_size,
        "merkle_root": cp.merkle_root,
        "previous_tree_size": cp.previous_tree_size,
        "previous_root": cp.previous_root,
        "position": c.position,
        "event_id": c.event_id,
        "signed_at": c.occurred_at,
        "key_id": c.key_id,
        "envelope_hash": c.envelope_hash,
        "note": cp.note,
    })
}

/// Every signed checkpoint, oldest first, with the positions not yet covered.
pub async fn checkpoints(
    State(state): State<AppState>,
    Extension(route): Extension<Route>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, ApiError> {
    audit::record_query(&state, &caller, route.0.path, BTreeMap::new()).await?;
    let all = crate::audit::checkpoints::checkpoints(&state).await?;
    let head =
        state.log.head().await.map_err(|e| {
            crate::commands::CommandError::Ledger(crate::ledger::LedgerError::Log(e))
        })?;
    let covered = all.last().map(|c| c.checkpoint.tree_size).unwrap_or(0);
    Ok(Json(json!({
        "items": all.iter().map(checkpoint_view).collect::<Vec<_>>(),
        "log_head": head,
        "uncovered_positions": head.saturating_sub(covered),
    }))
    .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyQuery {
    pub from: u64,
    pub min_position: Option<u64>,
}

/// RFC 6962 consistency proof: checkpoint `from`'s tree is a prefix of checkpoint `{id}`'s.
pub async fn consistency(
    State(state): State<AppState>,
    Extension(route): Extension<Route>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<ConsistencyQuery>,
) -> Result<Response, ApiError> {
    let n: u64 = id
        .parse()
        .map_err(|_| bad("the checkpoint is named by its sequence number"))?;
    let filters = [
        ("checkpoint".to_string(), n.to_string()),
        ("from".to_string(), q.from.to_string()),
    ]
    .into_iter()
    .collect();
    audit::record_query(&state, &caller, route.0.path, filters).await?;
    let (old, new, proof) = crate::audit::checkpoints::consistency(&state, q.from, n).await?;
    Ok(Json(json!({
        "from": checkpoint_view(&old),
        "to": checkpoint_view(&new),
        "proof": proof.iter().map(crate::audit::merkle::to_hex).collect::<Vec<_>>(),
        "algorithm": "RFC 9162 §2.1.4 (SHA-256)",
    }))
    .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CosignatureBody {
    /// The witness's verifier key (`<name>+<hex key id>+<base64(0x04 || key)>`).
    pub witness_key: String,
    /// base64(key id || timestamp || signature) of a `cosignature/v1` of the note.
    pub cosignature: String,
}

/// A witness's cosignature of checkpoint `{id}`'s note, recorded as `checkpoint.cosigned`
/// once it verifies.
pub async fn cosign(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    super::extract::ApiJson(body): super::extract::ApiJson<CosignatureBody>,
) -> Result<Response, ApiError> {
    let n: u64 = id
        .parse()
        .map_err(|_| bad("the checkpoint is named by its sequence number"))?;
    let (event, position) = crate::audit::checkpoints::record_cosignature(
        &state,
        &caller.actor(),
        n,
        &body.witness_key,
        &body.cosignature,
    )
    .await?;
    // Like any write: answered once the export and the checkpoint reads show it.
    crate::commands::wait_for_write(&state, position).await?;
    Ok((
        axum::http::StatusCode::CREATED,
        Json(json!({
            "checkpoint_sequence": event.checkpoint_sequence,
            "tree_size": event.tree_size,
            "witness_name": event.witness_name,
            "witness_key": event.witness_key,
            "timestamp": event.timestamp,
            "position": position,
        })),
    )
        .into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    pub format: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub kind: Option<String>,
    pub actor: Option<String>,
    pub user_id: Option<String>,
    pub auth_config_id: Option<String>,
    pub connection_id: Option<String>,
    pub outcome: Option<String>,
    pub min_position: Option<u64>,
}

impl ExportQuery {
    pub fn as_audit_query(&self) -> AuditQuery {
        AuditQuery {
            from: self.from.clone(),
            to: self.to.clone(),
            kind: self.kind.clone(),
            actor: self.actor.clone(),
            user_id: self.user_id.clone(),
            auth_config_id: self.auth_config_id.clone(),
            connection_id: self.connection_id.clone(),
            outcome: self.outcome.clone(),
            order: Some("asc".into()),
            ..Default::default()
        }
    }
}

/// Parses export parameters into (format, filter, filters as given).
pub fn export_request(
    q: &ExportQuery,
) -> Result<
    (
        crate::audit::export::Format,
        AuditFilter,
        BTreeMap<String, String>,
    ),
    ApiError,
> {
    let format = match q.format.as_deref() {
        None | Some("jsonl") => crate::audit::export::Format::Jsonl,
        Some("csv") => crate::audit::export::Format::Csv,
        Some(_) => return Err(bad("format must be jsonl or csv")),
    };
    let aq = q.as_audit_query();
    let filter = filter_of(&aq)?;
    let mut given = aq.as_filters();
    given.remove("order");
    given.insert(
        "format".into(),
        q.format.clone().unwrap_or_else(|| "jsonl".into()),
    );
    Ok((format, filter, given))
}

/// Streams the export (memory flat whatever its size).
pub async fn export(
    State(state): State<AppState>,
    Extension(route): Extension<Route>,
    Extension(caller): Extension<Caller>,
    ApiQuery(q): ApiQuery<ExportQuery>,
) -> Result<Response, ApiError> {
    let request = export_request(&q)?;
    export_download(&state, &caller, route.0.path, request).await
}

/// Records the export as asked on `route` (fail closed), then streams it as a download;
/// the console's export is this too.
pub async fn export_download(
    state: &AppState,
    caller: &Caller,
    route: &str,
    (format, filter, given): (
        crate::audit::export::Format,
        AuditFilter,
        BTreeMap<String, String>,
    ),
) -> Result<Response, ApiError> {
    audit::record_query(state, caller, route, given.clone()).await?;
    let rx = crate::audit::export::start(
        state.clone(),
        caller.workspace_id.clone(),
        filter,
        given,
        format,
    );
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    });
    let (content_type, name) = match format {
        crate::audit::export::Format::Jsonl => ("application/x-ndjson", "audit.jsonl"),
        crate::audit::export::Format::Csv => ("text/csv; charset=utf-8", "audit.csv"),
    };
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, content_type.to_string()),
            (
                axum::http::header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
            (axum::http::header::CACHE_CONTROL, "no-store".to_string()),
        ],
        axum::body::Body::from_stream(stream),
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessQuery {
    pub user_id: String,
    pub as_of: Option<String>,
    pub min_position: Option<u64>,
}

/// Who could act as this person (their live connections and scopes), and who did.
pub async fn access(
    State(state): State<AppState>,
    Extension(route): Extension<Route>,
    Extension(caller): Extension<Caller>,
    ApiQuery(q): ApiQuery<AccessQuery>,
) -> Result<Response, ApiError> {
    let at = super::extract::AsOfQuery {
        as_of: q.as_of.clone(),
        min_position: None,
    }
    .instant()?
    .unwrap_or_else(|| state.clock.now());
    let mut filters: BTreeMap<String, String> = BTreeMap::new();
    filters.insert("user_id".into(), q.user_id.chars().take(256).collect());
    if let Some(a) = &q.as_of {
        filters.insert("as_of".into(), a.chars().take(64).collect());
    }
    audit::record_query(&state, &caller, route.0.path, filters).await?;
    let report = audit::access_report(&state, &caller.workspace_id, &q.user_id, at).await?;
    Ok(Json(report).into_response())
}

//! The audit explorer under `/console/audit`, for compliance officers: the events with every
//! filter of `GET /v1/audit/events` (newest first, paged by cursor), one event as signed
//! with its inclusion proof in the latest checkpoint (checked again in the browser by
//! `static/audit-verify.js`), the checkpoints, the export download and the access report.
//! Each page has the permission of its API route, and records itself with the API's own
//! command (`commands::audit::record_query`: no record, no answer) under its console path.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use serde_json::Value;

use super::pages::unavailable;
use super::session::Signed;
use super::{refused, render, Me};
use crate::api::audit::{AuditQuery, ExportQuery};
use crate::api::error::ApiError;
use crate::api::routes::RouteId;
use crate::app::AppState;
use crate::audit::{checkpoints as cps, merkle};
use crate::commands::{audit, CommandError};
use crate::domain::DomainError;
use crate::ledger::LedgerError;
use crate::projector::store::AuditEventRow;

/// Events per page unless the form asks for another page size.
const PAGE: i64 = 50;

/// The explorer's routes, mounted by `console::router`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/console/audit", get(events))
        .route("/console/audit/events/{id}", get(event))
        .route("/console/audit/checkpoints", get(checkpoints))
        .route("/console/audit/export", get(export))
        .route("/console/audit/access", get(access))
        .route("/console/static/audit-verify.js", get(script))
}

async fn script() -> Response {
    crate::web::asset(
        "text/javascript; charset=utf-8",
        include_str!("static/audit-verify.js"),
    )
}

/// The filter form as submitted (GET, so a filtered view is a link); empty fields are unset.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Filters {
    from: String,
    to: String,
    kind: String,
    actor: String,
    user_id: String,
    auth_config_id: String,
    connection_id: String,
    outcome: String,
    order: String,
    limit: String,
    cursor: String,
    format: String,
}

fn given(v: &str) -> Option<String> {
    let v = v.trim();
    (!v.is_empty()).then(|| v.to_string())
}

/// A time as typed: RFC 3339, or `YYYY-MM-DDTHH:MM[:SS]` (or with a space) read as UTC.
fn instant(v: &str) -> Option<String> {
    let v = given(v)?.replacen(' ', "T", 1);
    let zoned = v.ends_with('Z') || v.get(19..).is_some_and(|z| z.contains(['+', '-']));
    Some(match v.len() {
        16 if !zoned => format!("{v}:00Z"),
        19 if !zoned => format!("{v}Z"),
        _ => v,
    })
}

impl Filters {
    fn audit_query(&self) -> Result<AuditQuery, String> {
        let limit = match given(&self.limit) {
            None => PAGE,
            Some(l) => l.parse().map_err(|_| "Page size must be a number.")?,
        };
        Ok(AuditQuery {
            order: given(&self.order),
            limit: Some(limit),
            cursor: given(&self.cursor),
            ..self.export_query().as_audit_query()
        })
    }

    fn export_query(&self) -> ExportQuery {
        ExportQuery {
            format: given(&self.format),
            from: instant(&self.from),
            to: instant(&self.to),
            kind: given(&self.kind),
            actor: given(&self.actor),
            user_id: given(&self.user_id),
            auth_config_id: given(&self.auth_config_id),
            connection_id: given(&self.connection_id),
            outcome: given(&self.outcome),
            min_position: None,
        }
    }

    /// This view's query string with `extra` set (the page's links), empty fields left out.
    fn link(&self, path: &str, keep_paging: bool, extra: &[(&str, &str)]) -> String {
        let mut fields = vec![
            ("from", &self.from),
            ("to", &self.to),
            ("kind", &self.kind),
            ("actor", &self.actor),
            ("user_id", &self.user_id),
            ("auth_config_id", &self.auth_config_id),
            ("connection_id", &self.connection_id),
            ("outcome", &self.outcome),
        ];
        if keep_paging {
            fields.extend([("order", &self.order), ("limit", &self.limit)]);
        }
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in fields {
            if let Some(v) = given(v) {
                query.append_pair(k, &v);
            }
        }
        for (k, v) in extra {
            query.append_pair(k, v);
        }
        format!("{path}?{}", query.finish())
    }
}

use crate::web::when;

/// One row of the event list.
struct Row {
    id: String,
    time: String,
    kind: String,
    actor: String,
    subject: String,
    outcome: String,
}

impl Row {
    fn of(r: &AuditEventRow) -> Row {
        let mut subject = format!("{} {}", r.aggregate_type, r.aggregate_id);
        if let Some(user) = &r.user_id {
            subject.push_str(&format!(" · user {user}"));
        }
        Row {
            id: r.event_id.clone(),
            time: when(&r.occurred_at),
            kind: r.kind.clone(),
            actor: format!("{} {}", r.actor_type, r.actor_id),
            subject,
            outcome: [r.outcome.as_deref(), r.reason.as_deref()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(": "),
        }
    }
}

#[derive(Template)]
#[template(path = "audit_events.html")]
struct EventsPage<'a> {
    me: Option<Me>,
    section: &'a str,
    f: &'a Filters,
    kinds: &'static [&'static str],
    rows: Vec<Row>,
    next: Option<String>,
    export_jsonl: String,
    export_csv: String,
    error: Option<String>,
}

/// What a page does with a refusal of the API's checks.
enum Refusal {
    /// A bad filter or form value: the form shows it.
    Form(String),
    /// Anything else: its own page.
    Page(Response),
}

fn refusal(signed: &Signed, state: &AppState, e: ApiError) -> Refusal {
    match e {
        ApiError::BadRequest(detail) => Refusal::Form(detail),
        ApiError::NotFound(what) => Refusal::Page(signed.respond(
            state,
            refused(
                StatusCode::NOT_FOUND,
                Some(signed.me(state)),
                "Not found",
                &format!("No such {what} in this workspace."),
            ),
        )),
        ApiError::Command(e) => Refusal::Page(unavailable(signed, state, &e)),
    }
}

/// A refusal as a page of its own (a bad value: 400 with its words).
fn refusal_page(signed: &Signed, state: &AppState, heading: &str, e: ApiError) -> Response {
    match refusal(signed, state, e) {
        Refusal::Page(answer) => answer,
        Refusal::Form(detail) => signed.respond(
            state,
            refused(
                StatusCode::BAD_REQUEST,
                Some(signed.me(state)),
                heading,
                &detail,
            ),
        ),
    }
}

pub async fn events(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(f): Query<Filters>,
) -> Response {
    let at = ("GET", "/console/audit");
    let signed = signed_for!(state, headers, RouteId::AuditEvents, at);
    let mut page = EventsPage {
        me: Some(signed.me(&state)),
        section: "audit",
        f: &f,
        kinds: crate::domain::ALL_KINDS,
        rows: Vec::new(),
        next: None,
        export_jsonl: f.link("/console/audit/export", false, &[("format", "jsonl")]),
        export_csv: f.link("/console/audit/export", false, &[("format", "csv")]),
        error: None,
    };
    let status = match list(&state, &signed, &f, at.1).await {
        Ok((rows, next)) => {
            page.rows = rows.iter().map(Row::of).collect();
            page.next = next.map(|c| f.link(at.1, true, &[("cursor", &c)]));
            StatusCode::OK
        }
        Err(e) => match refusal(&signed, &state, e) {
            Refusal::Form(detail) => {
                page.error = Some(detail);
                StatusCode::BAD_REQUEST
            }
            Refusal::Page(answer) => return answer,
        },
    };
    signed.respond(&state, render(status, &page))
}

/// The API's list: the filter checked, the query recorded, one page and the next cursor.
async fn list(
    state: &AppState,
    signed: &Signed,
    f: &Filters,
    route: &str,
) -> Result<(Vec<AuditEventRow>, Option<String>), ApiError> {
    let q = f.audit_query().map_err(ApiError::BadRequest)?;
    let filter = crate::api::audit::filter_of(&q)?;
    let caller = &signed.member.caller;
    audit::record_query(state, caller, route, q.as_filters()).await?;
    let want = usize::try_from(filter.limit - 1).unwrap_or(0);
    let mut rows = state
        .projections
        .audit_events(&caller.workspace_id, &filter)
        .await?;
    let mut next = None;
    if rows.len() > want {
        rows.truncate(want);
        next = rows
            .last()
            .map(|r| crate::api::audit::encode_cursor(r.position, filter.descending));
    }
    Ok((rows, next))
}

/// The latest checkpoint and the event's inclusion proof in its tree.
struct Inclusion {
    sequence: u64,
    tree_size: u64,
    leaf_index: u64,
    root: String,
    signed_at: String,
    key_id: String,
    proof: Vec<String>,
    /// The checkpoint event's envelope exactly as stored.
    envelope: String,
}

#[derive(Template)]
#[template(path = "audit_event.html")]
struct EventPage<'a> {
    me: Option<Me>,
    section: &'a str,
    row: Row,
    position: i64,
    hash: String,
    /// The envelope exactly as stored (the bytes the browser hashes and opens).
    envelope: String,
    /// The signed body, decoded and indented for reading.
    body: String,
    server_verified: bool,
    /// (key id, whether the server's check passed, its problem)
    server_signatures: Vec<(String, bool, String)>,
    inclusion: Option<Inclusion>,
    /// (key id, public key in base64): the keys this service trusts.
    keys: Vec<(String, String)>,
}

pub async fn event(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    // The route template, as the API records it (never the id a caller typed).
    let at = ("GET", "/console/audit/events/{id}");
    let signed = signed_for!(state, headers, RouteId::AuditEvent, at);
    match event_page(&state, &signed, &id).await {
        Ok(page) => signed.respond(&state, render(StatusCode::OK, &page)),
        Err(e) => refusal_page(&signed, &state, "Invalid request", e),
    }
}

async fn event_page<'a>(
    state: &AppState,
    signed: &Signed,
    id: &str,
) -> Result<EventPage<'a>, ApiError> {
    let caller = &signed.member.caller;
    let route = "/console/audit/events/{id}";
    let filters = [("event_id".to_string(), id.chars().take(128).collect())];
    audit::record_query(state, caller, route, filters.into_iter().collect()).await?;
    let Some(row) = state
        .projections
        .audit_event(&caller.workspace_id, id)
        .await?
    else {
        let elsewhere = state
            .projections
            .audit_event_elsewhere(&caller.workspace_id, id)
            .await?;
        crate::commands::probe_of_other_workspace(state, caller, ("GET", route), id, elsewhere);
        return Err(ApiError::NotFound("event"));
    };
    let server = audit::signed_event(state, &row).await?;
    let position = u64::try_from(row.position).unwrap_or(0);
    let server_signatures = server["signatures"]
        .as_array()
        .map(|sigs| sigs.iter().map(signature_claim).collect())
        .unwrap_or_default();
    Ok(EventPage {
        me: Some(signed.me(state)),
        section: "audit",
        position: row.position,
        hash: server["event_hash"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        envelope: envelope_at(state, position).await?,
        body: serde_json::to_string_pretty(&server["body"]).unwrap_or_default(),
        server_verified: server["verified"] == Value::Bool(true),
        server_signatures,
        inclusion: inclusion(state, position).await?,
        keys: trusted_keys(state),
        row: Row::of(&row),
    })
}

fn signature_claim(s: &Value) -> (String, bool, String) {
    (
        s["key_id"].as_str().unwrap_or_default().to_string(),
        s["valid"] == Value::Bool(true),
        s["problem"].as_str().unwrap_or_default().to_string(),
    )
}

fn trusted_keys(state: &AppState) -> Vec<(String, String)> {
    use base64::Engine as _;
    state
        .trusted_keys
        .ids()
        .filter_map(|id| {
            let key = state.trusted_keys.get(id)?;
            let b64 = base64::engine::general_purpose::STANDARD.encode(key.as_bytes());
            Some((id.clone(), b64))
        })
        .collect()
}

/// The stored envelope at `position`, byte for byte (as text: envelopes are JSON).
async fn envelope_at(state: &AppState, position: u64) -> Result<String, CommandError> {
    let corrupt = |reason: &str| {
        CommandError::Ledger(LedgerError::Corrupt {
            position,
            reason: reason.into(),
        })
    };
    let record = state
        .log
        .read_from(position, 1)
        .await
        .map_err(|e| CommandError::Ledger(LedgerError::Log(e)))?
        .into_iter()
        .find(|r| r.position == position)
        .ok_or(DomainError::NotFound("event"))?;
    String::from_utf8(record.envelope.to_vec()).map_err(|_| corrupt("the envelope is not UTF-8"))
}

/// The event's inclusion proof in the latest checkpoint (`None` until one covers it).
async fn inclusion(state: &AppState, position: u64) -> Result<Option<Inclusion>, CommandError> {
    let all = cps::checkpoints(state).await?;
    let Some(cp) = all
        .into_iter()
        .last()
        .filter(|c| c.checkpoint.tree_size >= position && position > 0)
    else {
        return Ok(None);
    };
    let leaves = cps::leaves(state, cp.checkpoint.tree_size).await?;
    let index = usize::try_from(position - 1).unwrap_or(usize::MAX);
    let proof = merkle::inclusion_proof(&leaves, index).ok_or(CommandError::Ledger(
        LedgerError::Corrupt {
            position,
            reason: "no inclusion proof".into(),
        },
    ))?;
    Ok(Some(Inclusion {
        sequence: cp.checkpoint.sequence,
        tree_size: cp.checkpoint.tree_size,
        leaf_index: position - 1,
        root: cp.checkpoint.merkle_root.clone(),
        signed_at: when(&cp.occurred_at),
        key_id: cp.key_id.clone(),
        proof: proof.iter().map(merkle::to_hex).collect(),
        envelope: envelope_at(state, cp.position).await?,
    }))
}

/// One row of the checkpoints list.
struct CheckpointRow {
    sequence: u64,
    tree_size: u64,
    from: u64,
    to: u64,
    root: String,
    signed_at: String,
    key_id: String,
}

impl CheckpointRow {
    fn of(c: cps::StoredCheckpoint) -> CheckpointRow {
        CheckpointRow {
            sequence: c.checkpoint.sequence,
            tree_size: c.checkpoint.tree_size,
            from: c.checkpoint.from_position,
            to: c.checkpoint.to_position,
            root: c.checkpoint.merkle_root,
            signed_at: when(&c.occurred_at),
            key_id: c.key_id,
        }
    }
}

#[derive(Template)]
#[template(path = "audit_checkpoints.html")]
struct CheckpointsPage<'a> {
    me: Option<Me>,
    section: &'a str,
    rows: Vec<CheckpointRow>,
    head: u64,
    uncovered: u64,
}

pub async fn checkpoints(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let at = ("GET", "/console/audit/checkpoints");
    let signed = signed_for!(state, headers, RouteId::AuditCheckpoints, at);
    let caller = &signed.member.caller;
    let read = async {
        audit::record_query(&state, caller, at.1, Default::default()).await?;
        let rows = cps::checkpoints(&state).await?;
        let head = state
            .log
            .head()
            .await
            .map_err(|e| CommandError::Ledger(LedgerError::Log(e)))?;
        Ok::<_, CommandError>((rows, head))
    };
    match read.await {
        Ok((rows, head)) => {
            let covered = rows.last().map_or(0, |c| c.checkpoint.tree_size);
            let page = CheckpointsPage {
                me: Some(signed.me(&state)),
                section: "audit",
                uncovered: head.saturating_sub(covered),
                head,
                rows: rows.into_iter().rev().map(CheckpointRow::of).collect(),
            };
            signed.respond(&state, render(StatusCode::OK, &page))
        }
        Err(e) => unavailable(&signed, &state, &e),
    }
}

/// The export download: the API's export (same parameters, same record) under the session.
pub async fn export(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(f): Query<Filters>,
) -> Response {
    let at = ("GET", "/console/audit/export");
    let signed = signed_for!(state, headers, RouteId::AuditExport, at);
    let caller = &signed.member.caller;
    let answer = match crate::api::audit::export_request(&f.export_query()) {
        Ok(request) => crate::api::audit::export_download(&state, caller, at.1, request).await,
        Err(e) => Err(e),
    };
    match answer {
        Ok(download) => signed.respond(&state, download),
        Err(e) => refusal_page(&signed, &state, "Invalid export", e),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct AccessForm {
    user_id: String,
    as_of: String,
}

/// One connection of the access report.
struct Access {
    id: String,
    auth_config_id: String,
    status: String,
    scopes: String,
    could_act: bool,
    /// (actor, events, last at)
    actors: Vec<(String, u64, String)>,
}

#[derive(Template)]
#[template(path = "audit_access.html")]
struct AccessPage<'a> {
    me: Option<Me>,
    section: &'a str,
    form: &'a AccessForm,
    as_of: Option<String>,
    rows: Vec<Access>,
    error: Option<String>,
}

/// "Who could act as this person, as of T, and who did": the API's access report.
pub async fn access(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(form): Query<AccessForm>,
) -> Response {
    let at = ("GET", "/console/audit/access");
    let signed = signed_for!(state, headers, RouteId::AuditAccess, at);
    let mut page = AccessPage {
        me: Some(signed.me(&state)),
        section: "audit",
        form: &form,
        as_of: None,
        rows: Vec::new(),
        error: None,
    };
    let mut status = StatusCode::OK;
    if let Some(user_id) = given(&form.user_id) {
        match report(&state, &signed, &user_id, instant(&form.as_of), at.1).await {
            Ok(report) => {
                page.as_of = report["as_of"].as_str().map(when);
                page.rows = access_rows(&report);
            }
            Err(e) => match refusal(&signed, &state, e) {
                Refusal::Form(detail) => {
                    page.error = Some(detail);
                    status = StatusCode::BAD_REQUEST;
                }
                Refusal::Page(answer) => return answer,
            },
        }
    }
    signed.respond(&state, render(status, &page))
}

async fn report(
    state: &AppState,
    signed: &Signed,
    user_id: &str,
    as_of: Option<String>,
    route: &str,
) -> Result<Value, ApiError> {
    let caller = &signed.member.caller;
    let asked = crate::api::extract::AsOfQuery {
        as_of: as_of.clone(),
        min_position: None,
    };
    let at = asked.instant()?.unwrap_or_else(|| state.clock.now());
    let mut filters = std::collections::BTreeMap::new();
    filters.insert("user_id".to_string(), user_id.chars().take(256).collect());
    if let Some(a) = as_of {
        filters.insert("as_of".into(), a.chars().take(64).collect());
    }
    audit::record_query(state, caller, route, filters).await?;
    Ok(audit::access_report(state, &caller.workspace_id, user_id, at).await?)
}

fn access_rows(report: &Value) -> Vec<Access> {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let connections = report["connections"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    connections
        .iter()
        .map(|c| Access {
            id: text(&c["id"]),
            auth_config_id: text(&c["auth_config_id"]),
            status: text(&c["status"]),
            scopes: c["scopes"]
                .as_array()
                .map(|s| s.iter().filter_map(Value::as_str).collect::<Vec<_>>())
                .unwrap_or_default()
                .join(" "),
            could_act: c["could_act"] == Value::Bool(true),
            actors: c["actors"]
                .as_array()
                .map(|actors| {
                    actors
                        .iter()
                        .map(|a| {
                            let who = format!(
                                "{} {}",
                                text(&a["actor"]["type"]),
                                text(&a["actor"]["id"])
                            );
                            (
                                who,
                                a["events"].as_u64().unwrap_or(0),
                                when(&text(&a["last_at"])),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_typed_without_a_zone_are_utc_and_rfc3339_passes_through() {
        assert_eq!(
            instant(" 2026-12-04T09:30 ").as_deref(),
            Some("2026-12-04T09:30:00Z")
        );
        assert_eq!(
            instant("2026-12-04 09:30:15").as_deref(),
            Some("2026-12-04T09:30:15Z")
        );
        let zoned = "2026-12-04T09:30:15+01:00";
        assert_eq!(instant(zoned).as_deref(), Some(zoned));
        assert_eq!(instant("").as_deref(), None);
    }

    #[test]
    fn links_keep_the_filters_and_leave_out_empty_fields() {
        let f = Filters {
            kind: "auth_config.".into(),
            actor: "a b".into(),
            order: "asc".into(),
            ..Filters::default()
        };
        assert_eq!(
            f.link("/console/audit", true, &[("cursor", "YTo1")]),
            "/console/audit?kind=auth_config.&actor=a+b&order=asc&cursor=YTo1"
        );
        assert_eq!(
            f.link("/console/audit/export", false, &[("format", "csv")]),
            "/console/audit/export?kind=auth_config.&actor=a+b&format=csv"
        );
    }
}

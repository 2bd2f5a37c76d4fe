//! The connections screen: the list filtered by end user, auth config and status (a GET
//! form), status badges, granted scopes, last refreshed and last used; a new connection (the
//! connect link of an OAuth2 auth config, or the end user's credentials); a connection's
//! detail with refresh, revoke and delete (destructive ones confirmed by a checkbox the
//! server checks), and its history: its events from the audit view, read as the API's audit
//! read is (recorded first as `audit.queried`, for roles that may read the audit). A tool
//! call in the history that can be undone has **Undo** (the permission of
//! `POST /v1/tool-calls/{id}/undo`), through `gateway::undo` as the API does.

use std::collections::{BTreeMap, HashMap};

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;

use super::auth_configs::{
    actor_names, connector_of, may, non_secret_credentials, settings_map, visible, when, Outcome,
};
use super::pages::unavailable;
use super::session::Signed;
use super::{form_error, render, Me};
use crate::api::routes::RouteId;
use crate::app::AppState;
use crate::commands::connections::{self, CreateConnectionInput, RefreshOutcome};
use crate::connectors::definition::{form_fields, from_form, FormField};
use crate::connectors::Part;
use crate::domain::connection::{ConnectionStatus, RefreshTrigger};
use crate::gateway::undo::{self, UndoStanding, Undoer};
use crate::projector::store::{AuditFilter, AuthConfigRow, ConnectionFilter, ConnectionRow};

/// Rows per page of the list.
const PAGE: i64 = 50;
/// Events shown in a connection's history.
const HISTORY: i64 = 200;

/// The connections screen's routes.
pub fn routes(router: Router<AppState>) -> Router<AppState> {
    router
        .route("/console/connections", get(list).post(create))
        .route("/console/connections/new", get(new_page))
        .route("/console/connections/returned", get(returned))
        .route("/console/connections/{id}", get(detail))
        .route("/console/connections/{id}/refresh", post(refresh))
        .route("/console/connections/{id}/revoke", post(revoke))
        .route("/console/connections/{id}/delete", post(delete))
        .route("/console/connections/{id}/undo", post(undo_call))
}

/// The statuses a connection is filtered by (deleted ones are gone from the list).
const STATUSES: [ConnectionStatus; 6] = [
    ConnectionStatus::Initiated,
    ConnectionStatus::Active,
    ConnectionStatus::NeedsReconsent,
    ConnectionStatus::Expired,
    ConnectionStatus::Revoked,
    ConnectionStatus::Error,
];

/// A connection as a row of the list or the detail page shows it.
struct Shown {
    row: ConnectionRow,
    auth_config: String,
    status_label: String,
    scopes: String,
    requested: String,
    last_refreshed: String,
    last_used: String,
    expires: String,
    created: String,
}

fn json_words(text: &str) -> String {
    serde_json::from_str::<Vec<String>>(text)
        .unwrap_or_default()
        .join(" ")
}

fn shown(row: ConnectionRow, names: &BTreeMap<String, String>) -> Shown {
    let at = |t: &Option<String>| t.as_deref().map_or_else(|| "never".into(), when);
    Shown {
        auth_config: names
            .get(&row.auth_config_id)
            .cloned()
            .unwrap_or_else(|| row.auth_config_id.clone()),
        status_label: row.status.replace('_', " "),
        scopes: json_words(&row.scopes),
        requested: json_words(&row.requested_scopes),
        last_refreshed: at(&row.last_refreshed_at),
        last_used: at(&row.last_used_at),
        expires: row.expires_at.as_deref().map_or_else(String::new, when),
        created: when(&row.created_at),
        row,
    }
}

// ---------------------------------------------------------------------------------------
// The list
// ---------------------------------------------------------------------------------------

#[derive(Deserialize, Default, Clone)]
#[serde(default)]
pub struct ListQuery {
    user_id: String,
    auth_config_id: String,
    status: String,
    /// The last id of the page before.
    after: String,
}

#[derive(Template)]
#[template(path = "connections.html")]
struct Connections<'a> {
    me: Option<Me>,
    section: &'a str,
    q: ListQuery,
    rows: Vec<Shown>,
    configs: Vec<AuthConfigRow>,
    statuses: Vec<(&'static str, String)>,
    next: Option<String>,
    can_create: bool,
    notice: Option<String>,
}

async fn list_page(
    state: &AppState,
    signed: &Signed,
    q: ListQuery,
    notice: Option<String>,
) -> Response {
    let ws = &signed.member.caller.workspace_id;
    let given = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_string());
    let status = given(&q.status).filter(|s| STATUSES.iter().any(|v| v.as_str() == s));
    let filter = ConnectionFilter {
        user_id: given(&q.user_id),
        auth_config_id: given(&q.auth_config_id),
        status,
        after_id: given(&q.after).filter(|id| uuid::Uuid::parse_str(id).is_ok()),
        limit: PAGE + 1,
    };
    let reads = async {
        let configs = state.projections.auth_configs(ws).await?;
        let rows = state.projections.connections(ws, &filter).await?;
        Ok::<_, crate::projector::store::ProjectionError>((configs, rows))
    };
    let (configs, mut rows) = match reads.await {
        Ok(r) => r,
        Err(e) => return unavailable(signed, state, &e.into()),
    };
    let next = if rows.len() > usize::try_from(PAGE).unwrap_or(0) {
        rows.truncate(usize::try_from(PAGE).unwrap_or(0));
        rows.last().map(|r| r.id.clone())
    } else {
        None
    };
    let names: BTreeMap<String, String> = configs
        .iter()
        .map(|c| (c.id.clone(), c.name.clone()))
        .collect();
    let page = Connections {
        me: Some(signed.me(state)),
        section: "connections",
        rows: rows.into_iter().map(|r| shown(r, &names)).collect(),
        configs,
        statuses: STATUSES
            .iter()
            .map(|s| (s.as_str(), s.as_str().replace('_', " ")))
            .collect(),
        next,
        can_create: may(signed, RouteId::CreateConnection),
        notice,
        q,
    };
    signed.respond(state, render(StatusCode::OK, &page))
}

pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Response {
    let at = ("GET", "/console/connections");
    let signed = signed_for!(state, headers, RouteId::ListConnections, at);
    list_page(&state, &signed, q, None).await
}

// ---------------------------------------------------------------------------------------
// A new connection
// ---------------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "connection_new.html")]
struct NewConnection<'a> {
    me: Option<Me>,
    csrf: String,
    section: &'a str,
    config: AuthConfigRow,
    redirect_urls: Vec<String>,
    scopes: Vec<String>,
    user_id: String,
    error: Option<String>,
    /// OAuth2: the link that starts the end user's consent, made just now.
    connect_url: Option<String>,
    /// A native connector's credential fields (its definition's), non-secret ones kept
    /// after a refusal; and what its test does.
    connector_fields: Vec<FormField>,
    test_operation: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct NewQuery {
    auth_config_id: String,
}

async fn new_page_of(
    state: &AppState,
    signed: &Signed,
    id: &str,
    (status, error, connect_url): (StatusCode, Option<String>, Option<String>),
    (user_id, kept): (String, BTreeMap<String, serde_json::Value>),
) -> Response {
    let ws = &signed.member.caller.workspace_id;
    let read = state.projections.auth_config(ws, id).await;
    let deleted = |c: &AuthConfigRow| c.status == "deleted";
    let elsewhere = state.projections.auth_config_elsewhere(ws, id);
    let at = (("GET", "/console/connections/new"), id);
    let config = match visible(state, signed, at, read, (deleted, elsewhere)).await {
        Ok(c) => c,
        Err(answer) => return answer,
    };
    let settings = settings_map(&config.settings);
    let words = |k: &str| {
        settings
            .get(k)
            .map(|v| v.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default()
    };
    let (connector_fields, test_operation) = match connector_of(&config) {
        Some((d, _)) => (
            form_fields(d, Part::Credentials, &kept),
            d.test.operation.clone(),
        ),
        None => (Vec::new(), String::new()),
    };
    let me = signed.me(state);
    let page = NewConnection {
        csrf: me.csrf.clone(),
        me: Some(me),
        section: "connections",
        connector_fields,
        test_operation,
        redirect_urls: words("redirect_urls"),
        scopes: words("scopes"),
        config,
        user_id,
        error,
        connect_url,
    };
    signed.respond(state, render(status, &page))
}

pub async fn new_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<NewQuery>,
) -> Response {
    let at = ("GET", "/console/connections/new");
    let signed = signed_for!(state, headers, RouteId::CreateConnection, at);
    let ok = (StatusCode::OK, None, None);
    let blank = (String::new(), BTreeMap::new());
    new_page_of(&state, &signed, &q.auth_config_id, ok, blank).await
}

/// Every field a new-connection form has; the auth config's type says which count.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct CreateForm {
    csrf: String,
    auth_config_id: String,
    user_id: String,
    redirect_url: String,
    /// Checked scopes (repeated field).
    scope: Vec<String>,
    api_key: String,
    token: String,
    username: String,
    password: String,
    user: String,
    /// A connector's `f_<field>` inputs.
    fields: HashMap<String, String>,
}

/// The end user's credentials in the shape the auth type takes (the command checks them).
fn credentials(config: &AuthConfigRow, f: &CreateForm) -> Option<serde_json::Value> {
    use serde_json::json;
    if let Some((d, _)) = connector_of(config) {
        return Some(from_form(d, Part::Credentials, &f.fields));
    }
    match config.auth_type.as_str() {
        "api_key" => Some(json!({ "api_key": f.api_key })),
        "bearer_token" => Some(json!({ "token": f.token })),
        "basic" => Some(json!({ "username": f.username.trim(), "password": f.password })),
        "postgres" => Some(json!({ "user": f.user.trim(), "password": f.password })),
        _ => None,
    }
}

pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let at = ("POST", "/console/connections");
    let signed = signed_for!(state, headers, RouteId::CreateConnection, at);
    // Repeated fields (`scope`) need the form read as pairs.
    let form = parse_create(&body);
    if let Err(answer) = signed.check_form(&state, &headers, &form.csrf, at.1).await {
        return answer;
    }
    let ws = &signed.member.caller.workspace_id;
    let config = match state
        .projections
        .auth_config(ws, &form.auth_config_id)
        .await
    {
        Ok(c) => c,
        Err(e) => return unavailable(&signed, &state, &e.into()),
    };
    let config = config.as_ref();
    let oauth = config.is_some_and(|c| c.auth_type == "oauth2");
    let given = config.and_then(|c| credentials(c, &form));
    // A connector's non-secret credentials are filled in again after a refusal.
    let kept = match (config.and_then(connector_of), &given) {
        (Some((d, _)), Some(given)) => non_secret_credentials(d, given),
        _ => BTreeMap::new(),
    };
    let input = CreateConnectionInput {
        auth_config_id: form.auth_config_id.clone(),
        user_id: form.user_id.trim().to_string(),
        redirect_url: oauth.then(|| form.redirect_url.clone()),
        scopes: oauth.then(|| form.scope.clone()),
        credentials: given,
    };
    let caller = &signed.member.caller;
    let user_id = input.user_id.clone();
    match connections::create(&state, ws, &caller.actor(), input).await {
        Ok(created) if created.connect_url.is_some() => {
            let made = (StatusCode::OK, None, created.connect_url);
            let shown = (user_id, BTreeMap::new());
            new_page_of(&state, &signed, &form.auth_config_id, made, shown).await
        }
        Ok(created) => {
            let done = Outcome::done(format!("Connected {user_id}."));
            after(&state, &signed, at, &created.id, done).await
        }
        Err(e) => {
            let failed = (StatusCode::UNPROCESSABLE_ENTITY, Some(form_error(&e)), None);
            let shown = (user_id, kept);
            new_page_of(&state, &signed, &form.auth_config_id, failed, shown).await
        }
    }
}

fn parse_create(body: &[u8]) -> CreateForm {
    let mut f = CreateForm::default();
    for (k, v) in url::form_urlencoded::parse(body) {
        let v = v.into_owned();
        match k.as_ref() {
            "csrf" => f.csrf = v,
            "auth_config_id" => f.auth_config_id = v,
            "user_id" => f.user_id = v,
            "redirect_url" => f.redirect_url = v,
            "scope" => f.scope.push(v),
            "api_key" => f.api_key = v,
            "token" => f.token = v,
            "username" => f.username = v,
            "password" => f.password = v,
            "user" => f.user = v,
            k if k.starts_with(crate::connectors::definition::FORM_PREFIX) => {
                f.fields.insert(k.to_string(), v);
            }
            _ => {}
        }
    }
    f
}

// ---------------------------------------------------------------------------------------
// A connection: detail, history, actions
// ---------------------------------------------------------------------------------------

/// One event of a connection's history.
struct Event {
    at: String,
    kind: String,
    actor: String,
    outcome: String,
    reason: String,
    /// A completed tool call's id, when the member may undo it now.
    undo_call: Option<String>,
    /// `undone` or `undo failed` for a completed call whose undo was tried.
    undo_outcome: &'static str,
}

#[derive(Template)]
#[template(path = "connection.html")]
struct Detail<'a> {
    me: Option<Me>,
    csrf: String,
    section: &'a str,
    c: Shown,
    can_manage: bool,
    live: bool,
    /// `None`: the member's role may not read the audit.
    history: Option<Vec<Event>>,
    notice: Option<String>,
    error: Option<String>,
}

/// The connection's events, oldest first, recorded as an audit query before they are read.
async fn history(
    state: &AppState,
    signed: &Signed,
    id: &str,
) -> Result<Option<Vec<Event>>, crate::commands::CommandError> {
    if !may(signed, RouteId::AuditEvents) {
        return Ok(None);
    }
    let caller = &signed.member.caller;
    let filters = BTreeMap::from([("connection_id".to_string(), id.to_string())]);
    crate::commands::audit::record_query(state, caller, "/console/connections/{id}", filters)
        .await?;
    let filter = AuditFilter {
        connection_id: Some(id.to_string()),
        limit: HISTORY,
        ..AuditFilter::default()
    };
    let rows = state
        .projections
        .audit_events(&caller.workspace_id, &filter)
        .await?;
    let names = actor_names(state, signed).await;
    let may_undo = may(signed, RouteId::UndoToolCall);
    let now = state.clock.now();
    let mut events = Vec::with_capacity(rows.len());
    for r in rows {
        let completed = r.kind == "tool.completed" && r.outcome.as_deref() == Some("success");
        let standing = if completed {
            undo::standing(state, &caller.workspace_id, &r.aggregate_id, now)
                .await
                .unwrap_or(UndoStanding::None)
        } else {
            UndoStanding::None
        };
        let (can, undo_outcome) = match standing {
            UndoStanding::Possible => (true, ""),
            UndoStanding::Failed { retry, .. } => (retry, "undo failed"),
            UndoStanding::Undone => (false, "undone"),
            UndoStanding::Running => (false, "undo in progress"),
            UndoStanding::None => (false, ""),
        };
        events.push(Event {
            at: when(&r.occurred_at),
            kind: r.kind,
            actor: names
                .get(&r.actor_id)
                .cloned()
                .unwrap_or_else(|| format!("{} {}", r.actor_type, r.actor_id)),
            outcome: r.outcome.unwrap_or_default(),
            reason: r.reason.unwrap_or_default(),
            undo_call: (can && may_undo).then_some(r.aggregate_id),
            undo_outcome,
        });
    }
    Ok(Some(events))
}

/// The connection of this workspace (not deleted), or the page to answer instead.
async fn found(
    state: &AppState,
    signed: &Signed,
    at: (&str, &str),
    id: &str,
) -> Result<ConnectionRow, Response> {
    let ws = &signed.member.caller.workspace_id;
    let read = state.projections.connection(ws, id).await;
    let deleted = |row: &ConnectionRow| row.status == ConnectionStatus::Deleted.as_str();
    let elsewhere = state.projections.connection_elsewhere(ws, id);
    visible(state, signed, (at, id), read, (deleted, elsewhere)).await
}

async fn detail_page(
    state: &AppState,
    signed: &Signed,
    row: ConnectionRow,
    (status, outcome): (StatusCode, Outcome),
) -> Response {
    let ws = &signed.member.caller.workspace_id;
    let config = match state.projections.auth_config(ws, &row.auth_config_id).await {
        Ok(c) => c,
        Err(e) => return unavailable(signed, state, &e.into()),
    };
    let names: BTreeMap<String, String> = config.into_iter().map(|c| (c.id, c.name)).collect();
    let (events, error) = match history(state, signed, &row.id).await {
        Ok(h) => (h, outcome.error),
        Err(e) => (
            Some(Vec::new()),
            Some(format!("History unavailable: {}", form_error(&e))),
        ),
    };
    let live = ConnectionStatus::parse(&row.status).is_some_and(ConnectionStatus::is_live);
    let me = signed.me(state);
    let page = Detail {
        csrf: me.csrf.clone(),
        me: Some(me),
        section: "connections",
        c: shown(row, &names),
        can_manage: may(signed, RouteId::RevokeConnection),
        live,
        history: events,
        notice: outcome.notice,
        error,
    };
    signed.respond(state, render(status, &page))
}

/// After a write: the connection's page again, fresh, with what the write did.
async fn after(
    state: &AppState,
    signed: &Signed,
    at: (&str, &str),
    id: &str,
    outcome: (StatusCode, Outcome),
) -> Response {
    match found(state, signed, at, id).await {
        Ok(row) => detail_page(state, signed, row, outcome).await,
        Err(answer) => answer,
    }
}

pub async fn detail(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let at = ("GET", "/console/connections/{id}");
    let signed = signed_for!(state, headers, RouteId::GetConnection, at);
    after(
        &state,
        &signed,
        at,
        &id,
        (StatusCode::OK, Outcome::default()),
    )
    .await
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct ReturnQuery {
    connection_id: String,
    status: String,
    error: String,
}

/// Where a connect flow started in the console sends the end user back (the callback adds
/// the connection, its status and the provider's error, if any).
pub async fn returned(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ReturnQuery>,
) -> Response {
    let at = ("GET", "/console/connections/returned");
    let signed = signed_for!(state, headers, RouteId::GetConnection, at);
    let outcome = if q.error.is_empty() {
        Outcome::done(format!(
            "Back from the provider: the connection is {}.",
            q.status.replace('_', " ")
        ))
    } else {
        Outcome::failed(
            StatusCode::OK,
            format!("The provider answered: {}", q.error),
        )
    };
    after(&state, &signed, at, &q.connection_id, outcome).await
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct ActionForm {
    csrf: String,
    confirm: String,
    reason: String,
}

/// Checks the form; a destructive action also needs its confirmation ticked.
async fn action(
    state: &AppState,
    headers: &HeaderMap,
    signed: &Signed,
    (form, destructive): (&ActionForm, bool),
    (at, id): ((&str, &str), &str),
) -> Result<(), Response> {
    signed.check_form(state, headers, &form.csrf, at.1).await?;
    let row = found(state, signed, at, id).await?;
    if destructive && form.confirm != "yes" {
        let unconfirmed = Outcome::failed(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Tick the confirmation first: nothing was done.",
        );
        return Err(detail_page(state, signed, row, unconfirmed).await);
    }
    Ok(())
}

pub async fn refresh(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<ActionForm>,
) -> Response {
    let at = ("POST", "/console/connections/{id}/refresh");
    let signed = signed_for!(state, headers, RouteId::RefreshConnection, at);
    if let Err(answer) = action(&state, &headers, &signed, (&form, false), (at, &id)).await {
        return answer;
    }
    let (ws, actor) = (
        &signed.member.caller.workspace_id,
        signed.member.caller.actor(),
    );
    let failed = |m: String| Outcome::failed(StatusCode::BAD_GATEWAY, m);
    let outcome = match connections::refresh(&state, ws, &id, &actor, RefreshTrigger::OnDemand)
        .await
    {
        Ok(RefreshOutcome::Refreshed { .. }) => Outcome::done("Refreshed: new tokens from the provider."),
        Ok(RefreshOutcome::Failed { error }) => failed(format!(
            "The provider did not refresh it ({error}); it stays active until its token expires."
        )),
        Ok(RefreshOutcome::Expired { reason }) => failed(format!(
            "The provider refused the refresh ({reason}): the connection is expired and must be reconnected."
        )),
        Err(e) => Outcome::failed(StatusCode::UNPROCESSABLE_ENTITY, form_error(&e)),
    };
    after(&state, &signed, at, &id, outcome).await
}

pub async fn revoke(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<ActionForm>,
) -> Response {
    let at = ("POST", "/console/connections/{id}/revoke");
    let signed = signed_for!(state, headers, RouteId::RevokeConnection, at);
    if let Err(answer) = action(&state, &headers, &signed, (&form, true), (at, &id)).await {
        return answer;
    }
    let (ws, actor) = (
        &signed.member.caller.workspace_id,
        signed.member.caller.actor(),
    );
    let reason = Some(form.reason.trim().to_string()).filter(|r| !r.is_empty());
    let outcome = match connections::revoke(&state, ws, &id, &actor, reason).await {
        Ok(_) => Outcome::done("Revoked, at the provider too where it supports revocation."),
        Err(e) => Outcome::failed(StatusCode::UNPROCESSABLE_ENTITY, form_error(&e)),
    };
    after(&state, &signed, at, &id, outcome).await
}

pub async fn delete(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<ActionForm>,
) -> Response {
    let at = ("POST", "/console/connections/{id}/delete");
    let signed = signed_for!(state, headers, RouteId::DeleteConnection, at);
    if let Err(answer) = action(&state, &headers, &signed, (&form, true), (at, &id)).await {
        return answer;
    }
    let (ws, actor) = (
        &signed.member.caller.workspace_id,
        signed.member.caller.actor(),
    );
    match connections::delete(&state, ws, &id, &actor).await {
        Ok(_) => {
            let notice = Some("Connection deleted; its credentials are destroyed.".to_string());
            list_page(&state, &signed, ListQuery::default(), notice).await
        }
        Err(e) => {
            let failed = Outcome::failed(StatusCode::UNPROCESSABLE_ENTITY, form_error(&e));
            after(&state, &signed, at, &id, failed).await
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct UndoForm {
    csrf: String,
    call: String,
}

/// **Undo** on a tool call of the connection's history: `gateway::undo` with the member's
/// caller, as `POST /v1/tool-calls/{id}/undo` does. A call of another connection (or none)
/// answers like an unknown one.
pub async fn undo_call(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<UndoForm>,
) -> Response {
    let at = ("POST", "/console/connections/{id}/undo");
    let signed = signed_for!(state, headers, RouteId::UndoToolCall, at);
    if let Err(answer) = signed.check_form(&state, &headers, &form.csrf, at.1).await {
        return answer;
    }
    if let Err(answer) = found(&state, &signed, at, &id).await {
        return answer;
    }
    let undoer = Undoer::Key(signed.member.caller.clone());
    let unknown = || {
        Outcome::failed(
            StatusCode::NOT_FOUND,
            "No such tool call on this connection.",
        )
    };
    let outcome = match undo::visible(&state, &undoer, &form.call).await {
        Ok(call)
            if call
                .requested
                .as_ref()
                .is_some_and(|r| r.connection_id == id) =>
        {
            match undo::undo(&state, &undoer, &form.call).await {
                Ok(done) if done.succeeded() => {
                    Outcome::done("Undone: the service took the call's action back.")
                }
                Ok(failed) => Outcome::failed(
                    StatusCode::BAD_GATEWAY,
                    match failed.status {
                        Some(s) => format!(
                            "The service did not undo it (it answered {s}); you can try again."
                        ),
                        None => "The service could not be reached; you can try again.".to_string(),
                    },
                ),
                Err(e) => {
                    let problem = crate::commands::problem::Problem::from(&e);
                    let status =
                        StatusCode::from_u16(problem.status).unwrap_or(StatusCode::CONFLICT);
                    Outcome::failed(status, format!("Not undone: {}", problem.title))
                }
            }
        }
        Ok(_) | Err(_) => unknown(),
    };
    after(&state, &signed, at, &id, outcome).await
}

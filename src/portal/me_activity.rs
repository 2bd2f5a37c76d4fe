//! **My activity**, `/me/activity`: the tool calls agents made for the signed-in end user,
//! newest first — the tool, when, which agent asked (the actor of `tool.requested`), and the
//! outcome (from the call's `tool.completed`; none yet while it runs or waits). Read from the
//! audit view filtered to this person and only them (`user_id` = the session's user; the
//! outcomes only on their own calls' connections), and recorded first as an audit query
//! (`audit.queried`) with the end user as the actor.
//!
//! A call that can be undone (its tool declares an undo, it succeeded, its window is open,
//! it is not undone: `gateway::undo::standing`, from the call's own events) has an **Undo**
//! form (CSRF-checked) that goes through `gateway::undo::undo` with the person as the undoer;
//! afterwards the call reads "undone", or "undo failed" (with the service's status) and can
//! be tried again. Another person's call id answers exactly like an unknown one (404, "No
//! such tool call") and the attempt is recorded (`access.denied`, reason `other_user`).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use futures::StreamExt as _;
use serde::Deserialize;

use super::me::{current, unavailable, user_actor, Signed};
use crate::app::AppState;
use crate::commands::agents::AgentError;
use crate::commands::{record_denial, CommandError};
use crate::domain::AccessDenied;
use crate::gateway::undo::{self, UndoStanding, Undoer};
use crate::projector::store::{AuditEventRow, AuditFilter};
use crate::web::render;

const ROUTE: &str = "/me/activity";
const UNDO_ROUTE: &str = "/me/activity/undo";
/// The most calls the page lists.
const LIMIT: i64 = 200;

/// One tool call as this person sees it.
struct Call {
    id: String,
    tool: String,
    at: String,
    /// The exact time (RFC 3339), for `<time datetime>`.
    at_exact: String,
    agent: String,
    outcome: String,
    /// `undoable`, `running`, `undone`, `failed` or empty (no undo).
    undo: &'static str,
    /// The service's status of a failed undo.
    undo_status: String,
    /// Whether the Undo button is shown (undoable, or failed within the window).
    can_undo: bool,
}

#[derive(Template)]
#[template(path = "portal/me_activity.html")]
struct MyActivity<'a> {
    user_id: String,
    csrf: String,
    calls: Vec<Call>,
    notice: Option<&'a str>,
    error: Option<&'a str>,
}

async fn calls(state: &AppState, signed: &Signed) -> Result<Vec<Call>, CommandError> {
    let user = &signed.me.user;
    let ws = &user.workspace_id;
    let mut filters = BTreeMap::new();
    filters.insert("user_id".to_string(), user.user_id.clone());
    filters.insert("kind".to_string(), "tool.requested".to_string());
    crate::commands::audit::record_query_by(state, ws, &user_actor(&signed.me), ROUTE, filters)
        .await?;
    let requested = state
        .projections
        .audit_events(
            ws,
            &AuditFilter {
                kind: Some("tool.requested".into()),
                user_id: Some(user.user_id.clone()),
                descending: true,
                limit: LIMIT,
                ..AuditFilter::default()
            },
        )
        .await?;
    // Outcomes: the completions on this person's own calls' connections, by call.
    let connections: BTreeSet<&str> = requested
        .iter()
        .filter_map(|r| r.connection_id.as_deref())
        .collect();
    let mut outcomes: HashMap<String, AuditEventRow> = HashMap::new();
    for connection in connections {
        let done = state
            .projections
            .audit_events(
                ws,
                &AuditFilter {
                    kind: Some("tool.completed".into()),
                    connection_id: Some(connection.to_string()),
                    descending: true,
                    limit: LIMIT * 4,
                    ..AuditFilter::default()
                },
            )
            .await?;
        outcomes.extend(done.into_iter().map(|r| (r.aggregate_id.clone(), r)));
    }
    // Where each successful call's undo stands, from its own events (a few at a time).
    let now = state.clock.now();
    let succeeded: Vec<String> = requested
        .iter()
        .filter(|r| {
            outcomes
                .get(&r.aggregate_id)
                .is_some_and(|d| d.outcome.as_deref() == Some("success"))
        })
        .map(|r| r.aggregate_id.clone())
        .collect();
    let standings: HashMap<String, UndoStanding> = futures::stream::iter(succeeded)
        .map(|id| async move {
            let standing = undo::standing(state, ws, &id, now).await;
            (id, standing)
        })
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .map(|(id, standing)| match standing {
            Ok(s) => Ok((id, s)),
            Err(AgentError::Command(e)) => Err(e),
            Err(other) => {
                tracing::warn!(error = %other, "undo standing");
                Ok((id, UndoStanding::None))
            }
        })
        .collect::<Result<_, CommandError>>()?;
    // Agents by the names their keys were given.
    let key_names: HashMap<String, String> = state
        .projections
        .api_keys(ws)
        .await?
        .into_iter()
        .map(|k| (k.id, k.name))
        .collect();
    Ok(requested
        .into_iter()
        .map(|r| {
            let outcome = outcomes
                .get(&r.aggregate_id)
                .and_then(|done| done.outcome.clone())
                .unwrap_or_else(|| "no outcome yet".into());
            let standing = standings
                .get(&r.aggregate_id)
                .copied()
                .unwrap_or(UndoStanding::None);
            let (undo, undo_status, can_undo) = match standing {
                UndoStanding::None => ("", String::new(), false),
                UndoStanding::Possible => ("undoable", String::new(), true),
                UndoStanding::Running => ("running", String::new(), false),
                UndoStanding::Undone => ("undone", String::new(), false),
                UndoStanding::Failed { status, retry } => (
                    "failed",
                    status.map(|s| s.to_string()).unwrap_or_default(),
                    retry,
                ),
            };
            Call {
                id: r.aggregate_id,
                tool: r.tool.unwrap_or_default(),
                at: crate::web::when(&r.occurred_at),
                at_exact: r.occurred_at,
                agent: match (r.actor_type.as_str(), key_names.get(&r.actor_id)) {
                    ("api_key", Some(name)) => format!("{name} (agent key {})", r.actor_id),
                    ("api_key", None) => format!("Agent key {}", r.actor_id),
                    (other, _) => format!("{other} {}", r.actor_id),
                },
                outcome,
                undo,
                undo_status,
                can_undo,
            }
        })
        .collect())
}

async fn page_of(
    state: &AppState,
    signed: &Signed,
    status: StatusCode,
    (notice, error): (Option<&str>, Option<&str>),
) -> Response {
    let calls = match calls(state, signed).await {
        Ok(c) => c,
        Err(e) => return unavailable(&e),
    };
    let page = MyActivity {
        user_id: signed.me.user.user_id.clone(),
        csrf: signed.csrf(state),
        calls,
        notice,
        error,
    };
    signed.respond(state, render(status, &page))
}

#[derive(Deserialize)]
pub struct DoneQuery {
    #[serde(default)]
    undo: Option<String>,
}

/// `/me/activity`: what agents did for this person.
pub async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<DoneQuery>,
) -> Response {
    let signed = match current(&state, &headers).await {
        Ok(s) => s,
        Err(answer) => return answer,
    };
    let (notice, error) = match q.undo.as_deref() {
        Some("undone") => (Some("Undone: the service took the action back."), None),
        Some("failed") => (
            None,
            Some("Undo failed: the service did not take the action back. You can try again."),
        ),
        _ => (None, None),
    };
    page_of(&state, &signed, StatusCode::OK, (notice, error)).await
}

#[derive(Deserialize)]
pub struct UndoForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    call: String,
}

/// **Undo**: `gateway::undo::undo` with this person as the undoer.
pub async fn undo_call(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<UndoForm>,
) -> Response {
    let signed = match Signed::posting(&state, &headers, &form.csrf, UNDO_ROUTE).await {
        Ok(s) => s,
        Err(answer) => return answer,
    };
    let undoer = Undoer::User(signed.me.user.clone());
    match undo::undo(&state, &undoer, &form.call).await {
        Ok(done) => {
            let to = if done.succeeded() { "undone" } else { "failed" };
            signed.respond(
                &state,
                Redirect::to(&format!("/me/activity?undo={to}")).into_response(),
            )
        }
        // Unknown, another workspace's or another person's: the same answer; the attempts
        // beyond what this person holds are recorded.
        Err(e @ (AgentError::NotFound { .. } | AgentError::OtherUser)) => {
            if let Some(reason) = e.denial_reason() {
                let denial = AccessDenied {
                    method: "POST".into(),
                    route: UNDO_ROUTE.into(),
                    status: 404,
                    reason,
                    target_id: Some(crate::domain::access::sanitize(&form.call, 128)),
                };
                let ws = signed.me.user.workspace_id.clone();
                record_denial(&state, Some(&ws), user_actor(&signed.me), denial).await;
            }
            let error = Some("No such tool call.");
            page_of(&state, &signed, StatusCode::NOT_FOUND, (None, error)).await
        }
        Err(e) => {
            let problem = crate::commands::problem::Problem::from(&e);
            let error = format!("Not undone: {}", problem.title);
            let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::CONFLICT);
            page_of(&state, &signed, status, (None, Some(&error))).await
        }
    }
}

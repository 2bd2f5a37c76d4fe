//! **My activity**, `/me/activity`: the tool calls agents made for the signed-in end user,
//! newest first — the tool, when, which agent asked (the actor of `tool.requested`), and the
//! outcome (from the call's `tool.completed`; none yet while it runs or waits). Read from the
//! audit view filtered to this person and only them (`user_id` = the session's user; the
//! outcomes only on their own calls' connections), and recorded first as an audit query
//! (`audit.queried`) with the end user as the actor.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::me::{current, unavailable, user_actor, Signed};
use crate::app::AppState;
use crate::commands::CommandError;
use crate::projector::store::{AuditEventRow, AuditFilter};
use crate::web::render;

const ROUTE: &str = "/me/activity";
/// The most calls the page lists.
const LIMIT: i64 = 200;

/// One tool call as this person sees it.
struct Call {
    tool: String,
    at: String,
    agent: String,
    outcome: String,
}

#[derive(Template)]
#[template(path = "portal/me_activity.html")]
struct MyActivity {
    user_id: String,
    calls: Vec<Call>,
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
    Ok(requested
        .into_iter()
        .map(|r| {
            let outcome = outcomes
                .get(&r.aggregate_id)
                .and_then(|done| done.outcome.clone())
                .unwrap_or_else(|| "no outcome yet".into());
            Call {
                tool: r.tool.unwrap_or_default(),
                at: r.occurred_at,
                agent: match r.actor_type.as_str() {
                    "api_key" => format!("Agent key {}", r.actor_id),
                    other => format!("{other} {}", r.actor_id),
                },
                outcome,
            }
        })
        .collect())
}

/// `/me/activity`: what agents did for this person.
pub async fn show(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let signed = match current(&state, &headers).await {
        Ok(s) => s,
        Err(answer) => return answer,
    };
    let calls = match calls(&state, &signed).await {
        Ok(c) => c,
        Err(e) => return unavailable(&e),
    };
    let page = MyActivity {
        user_id: signed.me.user.user_id.clone(),
        calls,
    };
    signed.respond(&state, render(StatusCode::OK, &page))
}

//! **My approvals**, `/me/approvals`: the signed-in end user's own step-up requests
//! (`approvals_of_user` for the session's user, never anyone else's). Each pending one shows
//! the exact tool, the connection in plain words (the service's name and the connection
//! id), the arguments' fingerprint (the arguments themselves are not kept) and the expiry,
//! with **Approve** / **Deny** forms (CSRF-checked) that go through
//! `commands::agents::approvals::decide` with the end user as the approver and actor.
//! Decided and expired ones are listed below with their outcome. Another person's approval
//! id answers exactly like an unknown id (404, "No such approval") and the attempt is
//! recorded (`access.denied`, reason `other_user`).

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;

use super::me::{current, unavailable, user_actor, Signed};
use crate::app::AppState;
use crate::commands::agents::approvals::{self, Approver};
use crate::commands::agents::AgentError;
use crate::commands::{record_denial, CommandError};
use crate::domain::AccessDenied;
use crate::projector::store::{ApprovalRow, ConnectionFilter};
use crate::web::render;

const ROUTE: &str = "/me/approvals/decide";

/// One approval as this person sees it.
struct Mine {
    row: ApprovalRow,
    /// The service the connection is to, in the workspace's words.
    service: String,
    /// `pending`, `approved`, `denied`, `used` or `expired`.
    status: &'static str,
}

fn outcome(row: &ApprovalRow, now: time::OffsetDateTime) -> &'static str {
    let past = time::OffsetDateTime::parse(
        &row.expires_at,
        &time::format_description::well_known::Rfc3339,
    )
    .map_or(true, |at| at <= now);
    match row.status.as_str() {
        "pending" if past => "expired",
        "pending" => "pending",
        "approved" => "approved",
        "denied" => "denied",
        "consumed" => "used",
        _ => "expired",
    }
}

#[derive(Template)]
#[template(path = "portal/me_approvals.html")]
struct MyApprovals<'a> {
    user_id: String,
    csrf: String,
    pending: Vec<Mine>,
    decided: Vec<Mine>,
    notice: Option<&'a str>,
    error: Option<&'a str>,
}

async fn mine(state: &AppState, signed: &Signed) -> Result<Vec<Mine>, CommandError> {
    let user = &signed.me.user;
    let ws = &user.workspace_id;
    let rows = state
        .projections
        .approvals_of_user(ws, &user.user_id, 200)
        .await?;
    let names: HashMap<String, String> = state
        .projections
        .auth_configs(ws)
        .await?
        .into_iter()
        .map(|c| (c.id, c.name))
        .collect();
    let filter = ConnectionFilter {
        user_id: Some(user.user_id.clone()),
        limit: 1000,
        ..ConnectionFilter::default()
    };
    let services: HashMap<String, String> = state
        .projections
        .connections(ws, &filter)
        .await?
        .into_iter()
        .map(|c| {
            let name = names.get(&c.auth_config_id).cloned().unwrap_or_default();
            (c.id, name)
        })
        .collect();
    let now = state.clock.now();
    Ok(rows
        .into_iter()
        .map(|row| Mine {
            service: services
                .get(&row.connection_id)
                .cloned()
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| "a service".into()),
            status: outcome(&row, now),
            row,
        })
        .collect())
}

async fn page_of(
    state: &AppState,
    signed: &Signed,
    status: StatusCode,
    (notice, error): (Option<&str>, Option<&str>),
) -> Response {
    let all = match mine(state, signed).await {
        Ok(all) => all,
        Err(e) => return unavailable(&e),
    };
    let (pending, decided): (Vec<_>, Vec<_>) = all.into_iter().partition(|m| m.status == "pending");
    let page = MyApprovals {
        user_id: signed.me.user.user_id.clone(),
        csrf: signed.csrf(state),
        pending,
        decided,
        notice,
        error,
    };
    signed.respond(state, render(status, &page))
}

#[derive(Deserialize)]
pub struct DoneQuery {
    #[serde(default)]
    done: Option<String>,
}

/// `/me/approvals`: what waits for this person's decision, and what they decided.
pub async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<DoneQuery>,
) -> Response {
    let signed = match current(&state, &headers).await {
        Ok(s) => s,
        Err(answer) => return answer,
    };
    let notice = match q.done.as_deref() {
        Some("approved") => Some("Approved: the agent's next call with this approval runs, once."),
        Some("denied") => Some("Denied: the agent's call with this approval is refused."),
        _ => None,
    };
    page_of(&state, &signed, StatusCode::OK, (notice, None)).await
}

#[derive(Deserialize)]
pub struct DecideForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    approval: String,
    #[serde(default)]
    decision: String,
}

/// **Approve** / **Deny**: `approvals::decide` with this person as the approver.
pub async fn decide(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<DecideForm>,
) -> Response {
    let signed = match Signed::posting(&state, &headers, &form.csrf, ROUTE).await {
        Ok(s) => s,
        Err(answer) => return answer,
    };
    let approve = match form.decision.as_str() {
        "approve" => true,
        "deny" => false,
        _ => {
            let error = Some("Choose Approve or Deny.");
            return page_of(
                &state,
                &signed,
                StatusCode::UNPROCESSABLE_ENTITY,
                (None, error),
            )
            .await;
        }
    };
    let approver = Approver::User(signed.me.user.clone());
    match approvals::decide(&state, &approver, &form.approval, approve, None).await {
        Ok(_) => {
            let done = if approve { "approved" } else { "denied" };
            signed.respond(
                &state,
                Redirect::to(&format!("/me/approvals?done={done}")).into_response(),
            )
        }
        // Unknown, another workspace's or another person's: the same answer; the attempts
        // beyond what this person holds are recorded.
        Err(e @ (AgentError::NotFound { .. } | AgentError::OtherUser)) => {
            if let Some(reason) = e.denial_reason() {
                let denial = AccessDenied {
                    method: "POST".into(),
                    route: ROUTE.into(),
                    status: 404,
                    reason,
                    target_id: Some(form.approval.clone()),
                };
                let ws = signed.me.user.workspace_id.clone();
                record_denial(&state, Some(&ws), user_actor(&signed.me), denial).await;
            }
            let error = Some("No such approval.");
            page_of(&state, &signed, StatusCode::NOT_FOUND, (None, error)).await
        }
        Err(e) => {
            let problem = crate::commands::problem::Problem::from(&e);
            let why = problem.detail.unwrap_or(problem.title);
            let error = format!("Not decided: {why}");
            page_of(
                &state,
                &signed,
                StatusCode::UNPROCESSABLE_ENTITY,
                (None, Some(&error)),
            )
            .await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(status: &str, expires_at: &str) -> ApprovalRow {
        ApprovalRow {
            id: "a".into(),
            user_id: "u".into(),
            connection_id: "c".into(),
            tool: "t".into(),
            argument_fingerprint: "f".into(),
            status: status.into(),
            expires_at: expires_at.into(),
            tool_call_id: None,
            created_at: String::new(),
            updated_at: String::new(),
        }
    }

    #[test]
    fn a_pending_approval_past_its_expiry_reads_expired() {
        let now = time::macros::datetime!(2026-01-01 12:00 UTC);
        assert_eq!(
            outcome(&row("pending", "2026-01-01T12:05:00Z"), now),
            "pending"
        );
        assert_eq!(
            outcome(&row("pending", "2026-01-01T11:55:00Z"), now),
            "expired"
        );
        assert_eq!(
            outcome(&row("consumed", "2026-01-01T11:55:00Z"), now),
            "used"
        );
        assert_eq!(
            outcome(&row("denied", "2026-01-01T12:05:00Z"), now),
            "denied"
        );
    }
}

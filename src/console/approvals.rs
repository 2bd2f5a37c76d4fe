//! The approvals screen: the workspace's step-up requests, pending ones first, each with
//! the exact tool, connection, end user and arguments' fingerprint it was asked for; an
//! admin approves or denies (the permission of `/v1/approvals/{id}/approve`), through the
//! same command as the API, with an optional note that goes into the event.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;

use super::pages::unavailable;
use super::session::Signed;
use super::{render, Me};
use crate::api::routes::RouteId;
use crate::app::AppState;
use crate::commands::agents::approvals::{self, Approver};
use crate::commands::agents::AgentError;
use crate::projector::store::ApprovalRow;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/console/approvals", get(page))
        .route("/console/approvals/decide", post(decide))
}

/// One approval as the page lists it: pending ones past their expiry read `expired`.
struct Listed {
    row: ApprovalRow,
    status: &'static str,
}

impl Listed {
    fn of(row: ApprovalRow, now: time::OffsetDateTime) -> Listed {
        let past = time::OffsetDateTime::parse(
            &row.expires_at,
            &time::format_description::well_known::Rfc3339,
        )
        .map_or(true, |at| at <= now);
        let status = match row.status.as_str() {
            "pending" if past => "expired",
            "pending" => "pending",
            "approved" => "approved",
            "denied" => "denied",
            "consumed" => "consumed",
            _ => "expired",
        };
        Listed { row, status }
    }
}

#[derive(Template)]
#[template(path = "approvals.html")]
struct ApprovalsPage<'a> {
    me: Option<Me>,
    csrf: String,
    section: &'a str,
    pending: Vec<Listed>,
    decided: Vec<Listed>,
    notice: Option<String>,
    error: Option<String>,
}

async fn approvals_page(
    state: &AppState,
    signed: &Signed,
    status: StatusCode,
    (notice, error): (Option<String>, Option<String>),
) -> Response {
    let workspace = &signed.member.caller.workspace_id;
    let rows = match state.projections.approvals(workspace, 200).await {
        Ok(rows) => rows,
        Err(e) => return unavailable(signed, state, &e.into()),
    };
    let now = state.clock.now();
    let (pending, decided): (Vec<_>, Vec<_>) = rows
        .into_iter()
        .map(|row| Listed::of(row, now))
        .partition(|l| l.status == "pending");
    let me = signed.me(state);
    let page = ApprovalsPage {
        csrf: me.csrf.clone(),
        me: Some(me),
        section: "approvals",
        pending,
        decided,
        notice,
        error,
    };
    signed.respond(state, render(status, &page))
}

pub async fn page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let at = ("GET", "/console/approvals");
    let signed = signed_for!(state, headers, RouteId::ApproveApproval, at);
    approvals_page(&state, &signed, StatusCode::OK, (None, None)).await
}

#[derive(Deserialize)]
pub struct DecideForm {
    csrf: String,
    approval: String,
    decision: String,
    #[serde(default)]
    note: String,
}

pub async fn decide(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<DecideForm>,
) -> Response {
    let at = ("POST", "/console/approvals/decide");
    let signed = signed_for!(state, headers, RouteId::ApproveApproval, at);
    if let Err(answer) = signed.check_form(&state, &headers, &form.csrf, at.1).await {
        return answer;
    }
    let approve = match form.decision.as_str() {
        "approve" => true,
        "deny" => false,
        _ => {
            let error = Some("Choose approve or deny.".to_string());
            return approvals_page(
                &state,
                &signed,
                StatusCode::UNPROCESSABLE_ENTITY,
                (None, error),
            )
            .await;
        }
    };
    let caller = &signed.member.caller;
    let approver = Approver::Admin {
        workspace_id: caller.workspace_id.clone(),
        actor: caller.actor(),
    };
    let note = Some(form.note.trim().to_string()).filter(|n| !n.is_empty());
    match approvals::decide(&state, &approver, &form.approval, approve, note).await {
        Ok(_) => {
            let word = if approve { "Approved" } else { "Denied" };
            let notice = Some(format!(
                "{word}: the agent's next call with this approval {}.",
                if approve { "runs" } else { "is refused" }
            ));
            approvals_page(&state, &signed, StatusCode::OK, (notice, None)).await
        }
        Err(e) => {
            // The command's words for refusals; internals are logged, never shown.
            let error = Some(match e {
                AgentError::Command(c) => super::form_error(&c),
                other => other.to_string(),
            });
            approvals_page(
                &state,
                &signed,
                StatusCode::UNPROCESSABLE_ENTITY,
                (None, error),
            )
            .await
        }
    }
}

//! The console's screens: overview, team (members, invites, role changes, removal); the
//! auth configs and connections screens have their own files. Each: the session, the route's permission from the API's table, one command
//! or read, a template.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Form;
use serde::Deserialize;

use super::session::Signed;
use super::{form_error, refused, render, Me};
use crate::api::routes::RouteId;
use crate::app::AppState;
use crate::commands::{members, CommandError};
use crate::domain::Role;
use crate::projector::store::{AuditFilter, ConnectionFilter};

pub(super) fn unavailable(signed: &Signed, state: &AppState, e: &CommandError) -> Response {
    let me = signed.me(state);
    refused(
        StatusCode::SERVICE_UNAVAILABLE,
        Some(me),
        "Unavailable",
        &form_error(e),
    )
}

#[derive(Template)]
#[template(path = "overview.html")]
struct Overview<'a> {
    me: Option<Me>,
    section: &'a str,
    auth_configs: usize,
    connections_total: usize,
    /// (status, count)
    connections: Vec<(String, usize)>,
    /// (when, actor, reason)
    refusals: Vec<(String, String, String)>,
}

pub async fn overview(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let signed = signed_for!(
        state,
        headers,
        RouteId::ListAuthConfigs,
        ("GET", "/console/")
    );
    match overview_data(&state, &signed).await {
        Ok(page) => signed.respond(&state, render(StatusCode::OK, &page)),
        Err(e) => unavailable(&signed, &state, &e),
    }
}

async fn overview_data<'a>(
    state: &AppState,
    signed: &Signed,
) -> Result<Overview<'a>, CommandError> {
    let ws = &signed.member.caller.workspace_id;
    let configs = state.projections.auth_configs(ws).await?;
    let filter = ConnectionFilter {
        limit: 10_000,
        ..ConnectionFilter::default()
    };
    let mut by_status = std::collections::BTreeMap::<String, usize>::new();
    for c in state.projections.connections(ws, &filter).await? {
        *by_status.entry(c.status).or_default() += 1;
    }
    // Refusals are audit rows: only roles that may read the audit see them.
    let may_audit = crate::api::routes::role_allows(
        signed.member.caller.role,
        crate::api::routes::Permission::ReadAudit,
    );
    let mut refusals = Vec::new();
    if may_audit {
        let filter = AuditFilter {
            kind: Some("access.denied".into()),
            descending: true,
            limit: 10,
            ..AuditFilter::default()
        };
        for r in state.projections.audit_events(ws, &filter).await? {
            let reason = r.reason.unwrap_or_default();
            // To the second, in UTC: `2026-12-04 11:51:18 UTC`.
            let when = r.occurred_at.get(..19).map_or(r.occurred_at.clone(), |t| {
                format!("{} UTC", t.replace('T', " "))
            });
            refusals.push((when, format!("{} {}", r.actor_type, r.actor_id), reason));
        }
    }
    Ok(Overview {
        me: Some(signed.me(state)),
        section: "overview",
        auth_configs: configs.len(),
        connections_total: by_status.values().sum(),
        connections: by_status.into_iter().collect(),
        refusals,
    })
}

#[derive(Template)]
#[template(path = "team.html")]
struct Team<'a> {
    me: Option<Me>,
    csrf: String,
    section: &'a str,
    members: Vec<crate::projector::store::MemberRow>,
    second_factor_required: bool,
    can_invite: bool,
    invite_link: Option<String>,
    notice: Option<String>,
    error: Option<String>,
}

/// What a team form did: a new invite link, a notice, or an error.
#[derive(Default)]
pub(super) struct TeamOutcome {
    pub link: Option<String>,
    pub notice: Option<String>,
    pub error: Option<String>,
}

pub(super) async fn team_page(
    state: &AppState,
    signed: &Signed,
    status: StatusCode,
    outcome: TeamOutcome,
) -> Response {
    let caller = &signed.member.caller;
    let members = match members::list(state, caller).await {
        Ok(m) => m,
        Err(e) => return unavailable(signed, state, &e),
    };
    let second_factor_required =
        match crate::commands::second_factor::required(state, &caller.workspace_id).await {
            Ok(r) => r,
            Err(e) => return unavailable(signed, state, &e),
        };
    let me = signed.me(state);
    let page = Team {
        csrf: me.csrf.clone(),
        me: Some(me),
        section: "team",
        members,
        second_factor_required,
        can_invite: crate::api::routes::role_allows(
            signed.member.caller.role,
            crate::api::routes::Permission::ManageMembers,
        ),
        invite_link: outcome.link,
        notice: outcome.notice,
        error: outcome.error,
    };
    signed.respond(state, render(status, &page))
}

fn failed(e: &CommandError) -> TeamOutcome {
    TeamOutcome {
        error: Some(form_error(e)),
        ..TeamOutcome::default()
    }
}

pub async fn team(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let at = ("GET", "/console/team");
    let signed = signed_for!(state, headers, RouteId::GetWorkspace, at);
    team_page(&state, &signed, StatusCode::OK, TeamOutcome::default()).await
}

#[derive(Deserialize)]
pub struct MemberForm {
    csrf: String,
    member: String,
    role: Option<String>,
}

/// Changing a member's role (the permission of `PATCH /v1/members/{id}`); the member's
/// sessions end at once.
pub async fn change_role(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<MemberForm>,
) -> Response {
    let at = ("POST", "/console/team/role");
    let signed = signed_for!(state, headers, RouteId::ChangeMemberRole, at);
    if let Err(answer) = signed.check_form(&state, &headers, &form.csrf, at.1).await {
        return answer;
    }
    let Some(role) = form.role.as_deref().and_then(Role::parse) else {
        let outcome = TeamOutcome {
            error: Some("Choose a role.".into()),
            ..TeamOutcome::default()
        };
        return team_page(&state, &signed, StatusCode::UNPROCESSABLE_ENTITY, outcome).await;
    };
    match members::change_role(&state, &signed.member.caller, &form.member, role).await {
        Ok(()) => {
            let outcome = TeamOutcome {
                notice: Some(format!(
                    "Role changed to {}; their sessions ended.",
                    role.as_str()
                )),
                ..TeamOutcome::default()
            };
            team_page(&state, &signed, StatusCode::OK, outcome).await
        }
        Err(e) => {
            team_page(
                &state,
                &signed,
                StatusCode::UNPROCESSABLE_ENTITY,
                failed(&e),
            )
            .await
        }
    }
}

pub async fn remove(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<MemberForm>,
) -> Response {
    let at = ("POST", "/console/team/remove");
    let signed = signed_for!(state, headers, RouteId::RemoveMember, at);
    if let Err(answer) = signed.check_form(&state, &headers, &form.csrf, at.1).await {
        return answer;
    }
    match members::remove(&state, &signed.member.caller, &form.member).await {
        Ok(()) => {
            let outcome = TeamOutcome {
                notice: Some("Member removed; their sessions ended.".into()),
                ..TeamOutcome::default()
            };
            team_page(&state, &signed, StatusCode::OK, outcome).await
        }
        Err(e) => {
            team_page(
                &state,
                &signed,
                StatusCode::UNPROCESSABLE_ENTITY,
                failed(&e),
            )
            .await
        }
    }
}

#[derive(Deserialize)]
pub struct InviteForm {
    csrf: String,
    email: String,
    role: String,
}

/// Inviting a member: the permission of `POST /v1/members`.
pub async fn invite(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<InviteForm>,
) -> Response {
    let at = ("POST", "/console/team/invites");
    let signed = signed_for!(state, headers, RouteId::InviteMember, at);
    if let Err(answer) = signed.check_form(&state, &headers, &form.csrf, at.1).await {
        return answer;
    }
    let Some(role) = Role::parse(&form.role) else {
        let outcome = TeamOutcome {
            error: Some("Choose a role.".into()),
            ..TeamOutcome::default()
        };
        return team_page(&state, &signed, StatusCode::UNPROCESSABLE_ENTITY, outcome).await;
    };
    match members::invite_member(&state, &signed.member.caller, &form.email, role).await {
        Ok(token) => {
            let outcome = TeamOutcome {
                link: Some(members::sign_up_url(&state, &token)),
                ..TeamOutcome::default()
            };
            team_page(&state, &signed, StatusCode::OK, outcome).await
        }
        Err(e) => {
            team_page(
                &state,
                &signed,
                StatusCode::UNPROCESSABLE_ENTITY,
                failed(&e),
            )
            .await
        }
    }
}

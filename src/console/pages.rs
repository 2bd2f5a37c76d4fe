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
    /// Connections that will stop working without someone acting: broken ones, and active
    /// ones whose access token ends within a day with no refresh token to renew it.
    attention: Vec<Attention>,
    /// Step-up requests waiting for a person (`None`: not this member's to decide).
    pending_approvals: Option<usize>,
    /// Whether the member may read the audit (refusals are audit rows).
    shows_refusals: bool,
    /// (when, actor, reason)
    refusals: Vec<(String, String, String)>,
}

struct Attention {
    id: String,
    user_id: String,
    status: String,
    why: String,
}

/// How far ahead an access token without a refresh token counts as expiring.
const EXPIRING_WITHIN: time::Duration = time::Duration::hours(24);

/// Whether the connection needs someone: broken, or about to expire with no way to renew.
fn needs_attention(
    c: &crate::projector::store::ConnectionRow,
    now: time::OffsetDateTime,
) -> Option<Attention> {
    let why = match c.status.as_str() {
        "error" | "expired" | "needs_reconsent" => c
            .status_reason
            .clone()
            .unwrap_or_else(|| c.status.replace('_', " ")),
        "active" if !c.has_refresh_token => {
            let ends = c.expires_at.as_deref().and_then(|t| {
                time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
            })?;
            if ends - now > EXPIRING_WITHIN {
                return None;
            }
            format!(
                "access token ends {} and cannot be refreshed",
                day_time(t_str(&ends))
            )
        }
        _ => return None,
    };
    Some(Attention {
        id: c.id.clone(),
        user_id: c.user_id.clone(),
        status: c.status.replace('_', " "),
        why,
    })
}

fn t_str(t: &time::OffsetDateTime) -> String {
    crate::projector::plan::rfc3339(*t)
}

/// An RFC 3339 time to the second, in UTC: `2026-12-04 11:51:18 UTC`.
fn day_time(t: String) -> String {
    t.get(..19)
        .map_or(t.clone(), |s| format!("{} UTC", s.replace('T', " ")))
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
    let now = state.clock.now();
    let mut by_status = std::collections::BTreeMap::<String, usize>::new();
    let mut attention = Vec::new();
    for c in state.projections.connections(ws, &filter).await? {
        attention.extend(needs_attention(&c, now));
        *by_status.entry(c.status).or_default() += 1;
    }
    let me = signed.me(state);
    let pending_approvals = if me.decides_approvals() {
        let rows = state.projections.approvals(ws, 1000).await?;
        let open = |a: &&crate::projector::store::ApprovalRow| {
            a.status == "pending" && a.expires_at.as_str() > t_str(&now).as_str()
        };
        Some(rows.iter().filter(open).count())
    } else {
        None
    };
    let shows_refusals = me.reads_audit();
    let refusals = if shows_refusals {
        recent_refusals(state, signed).await?
    } else {
        Vec::new()
    };
    Ok(Overview {
        me: Some(me),
        section: "overview",
        auth_configs: configs.len(),
        connections_total: by_status.values().sum(),
        connections: by_status.into_iter().collect(),
        attention,
        pending_approvals,
        shows_refusals,
        refusals,
    })
}

/// The newest refusals, read from the audit view: recorded first as an audit query (no
/// record, no answer), like every other read of the audit.
async fn recent_refusals(
    state: &AppState,
    signed: &Signed,
) -> Result<Vec<(String, String, String)>, CommandError> {
    const SHOWN: i64 = 10;
    let filters = std::collections::BTreeMap::from([
        ("kind".to_string(), "access.denied".to_string()),
        ("limit".to_string(), SHOWN.to_string()),
    ]);
    crate::commands::audit::record_query(state, &signed.member.caller, "/console/", filters)
        .await?;
    let filter = AuditFilter {
        kind: Some("access.denied".into()),
        descending: true,
        limit: SHOWN,
        ..AuditFilter::default()
    };
    let rows = state
        .projections
        .audit_events(&signed.member.caller.workspace_id, &filter)
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let who = format!("{} {}", r.actor_type, r.actor_id);
            (day_time(r.occurred_at), who, r.reason.unwrap_or_default())
        })
        .collect())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::projector::store::ConnectionRow;

    fn connection(status: &str, expires_at: Option<&str>, refresh: bool) -> ConnectionRow {
        ConnectionRow {
            workspace_id: "ws".into(),
            id: "c1".into(),
            auth_config_id: "ac".into(),
            user_id: "alice".into(),
            status: status.into(),
            scopes: "[]".into(),
            requested_scopes: "[]".into(),
            redirect_url: None,
            expires_at: expires_at.map(str::to_string),
            has_refresh_token: refresh,
            status_reason: None,
            created_at: "2026-12-01T00:00:00Z".into(),
            updated_at: "2026-12-01T00:00:00Z".into(),
            last_refreshed_at: None,
            last_used_at: None,
            version: 1,
        }
    }

    #[test]
    fn broken_connections_and_tokens_that_cannot_renew_need_attention() {
        let now = time::macros::datetime!(2026-12-04 12:00 UTC);
        let soon = Some("2026-12-05T06:00:00Z");
        let later = Some("2026-12-07T00:00:00Z");
        let cases = [
            (connection("active", soon, false), true),
            (connection("active", soon, true), false),
            (connection("active", later, false), false),
            (connection("active", None, false), false),
            (connection("error", None, true), true),
            (connection("expired", None, false), true),
            (connection("needs_reconsent", None, true), true),
            (connection("revoked", None, false), false),
            (connection("initiated", None, false), false),
        ];
        for (c, want) in cases {
            let got = needs_attention(&c, now);
            assert_eq!(got.is_some(), want, "{} {:?}", c.status, c.expires_at);
        }
        let why = needs_attention(&connection("active", soon, false), now).map(|a| a.why);
        assert_eq!(
            why.as_deref(),
            Some("access token ends 2026-12-05 06:00:00 UTC and cannot be refreshed")
        );
    }
}

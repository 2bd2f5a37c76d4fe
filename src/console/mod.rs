//! The console: team pages under `/console/`, server-rendered from templates checked at
//! compile time (`templates/`), one stylesheet and one small script served from the binary
//! (no CDN, no inline script: the Content-Security-Policy forbids both). Handlers are thin:
//! a session from the cookie (`session`), the route's permission from the API's route table
//! (`allow`, the same `role_allows`), one command or read, a template.

/// Signs the request in and checks its route in the API's table, or answers instead.
macro_rules! signed_for {
    ($state:expr, $headers:expr, $route:expr, $at:expr) => {{
        let signed = match $crate::console::session::current(&$state, &$headers).await {
            Ok(s) => s,
            Err(answer) => return answer,
        };
        if let Err(answer) = $crate::console::allow(&$state, &signed.member, $route, $at).await {
            return signed.respond(&$state, answer);
        }
        signed
    }};
}

mod api_keys;
mod approvals;
mod audit;
mod auth_configs;
mod connections;
mod gateways;
mod identity_provider;
pub mod pages;
mod second_factor;
pub mod session;
mod sso;
mod throttle;
mod tools;

use std::sync::Arc;

use askama::Template;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};

use crate::api::routes::{role_allows, RouteId, ROUTES};
use crate::app::AppState;
use crate::commands::members::MemberSession;
use crate::commands::record_denial;
use crate::domain::{AccessDenied, DenialReason};

/// Form posts are small; anything larger is not the console's.
const MAX_FORM_BYTES: usize = 16 * 1024;

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub fn router(state: AppState) -> Router {
    let screens = connections::routes(auth_configs::routes(Router::new()));
    let screens = tools::routes(gateways::routes(screens));
    screens
        .route("/console", get(|| async { Redirect::to("/console/") }))
        .route("/console/", get(pages::overview))
        .route(
            "/console/sign-in",
            get(session::sign_in_page).post(session::sign_in),
        )
        .route(
            "/console/sign-up",
            get(session::sign_up_page).post(session::sign_up),
        )
        .route(
            "/console/sign-in/second-factor",
            get(second_factor::code_page).post(second_factor::submit_code),
        )
        .route(
            "/console/sign-in/set-up",
            get(second_factor::sign_in_set_up_page).post(second_factor::sign_in_set_up),
        )
        .route("/console/sso/start", post(sso::start))
        .route("/console/sso/callback", get(sso::callback))
        .route("/console/identity-provider", get(identity_provider::show))
        .route(
            "/console/identity-provider/end-users",
            post(identity_provider::end_users),
        )
        .route(
            "/console/identity-provider/team-sso",
            post(identity_provider::team_sso),
        )
        .route("/console/sign-out", post(session::sign_out))
        .route("/console/account", get(second_factor::account))
        .route("/console/account/second-factor", post(second_factor::enrol))
        .route(
            "/console/team/second-factor/reset",
            post(second_factor::reset),
        )
        .route(
            "/console/team/second-factor/requirement",
            post(second_factor::set_requirement),
        )
        .route(
            "/console/api-keys",
            get(api_keys::page).post(api_keys::create),
        )
        .route("/console/api-keys/revoke", post(api_keys::revoke))
        .route("/console/team", get(pages::team))
        .route("/console/team/invites", post(pages::invite))
        .route("/console/team/role", post(pages::change_role))
        .route("/console/team/remove", post(pages::remove))
        .route("/console/static/console.css", get(stylesheet))
        .route("/console/static/console.js", get(script))
        .merge(audit::routes())
        .merge(approvals::routes())
        .layer(Extension(Arc::new(throttle::Throttle::default())))
        .layer(Extension(Arc::new(sso::UsedFlows::default())))
        .layer(axum::middleware::map_response(security_headers))
        .layer(DefaultBodyLimit::max(MAX_FORM_BYTES))
        .with_state(state)
}

async fn security_headers(res: Response) -> Response {
    crate::web::page_headers(res, CSP)
}

async fn stylesheet() -> Response {
    crate::web::asset(
        "text/css; charset=utf-8",
        include_str!("static/console.css"),
    )
}

async fn script() -> Response {
    crate::web::asset(
        "text/javascript; charset=utf-8",
        include_str!("static/console.js"),
    )
}

/// What every signed-in page shows of its member.
pub struct Me {
    pub email: String,
    pub role: &'static str,
    pub csrf: String,
    /// Whether the API keys screen is theirs (the permission of `/v1/api-keys`).
    pub manages_keys: bool,
}

impl Me {
    /// Whether the approvals screen is theirs (the permission of deciding approvals).
    pub fn decides_approvals(&self) -> bool {
        crate::domain::Role::parse(self.role)
            .is_some_and(|role| role_allows(role, crate::api::routes::Permission::DecideApprovals))
    }

    /// Whether the Identity provider screen is theirs (the permission of
    /// `PUT /v1/workspace/identity-provider` in the route table).
    pub fn configures_identity_provider(&self) -> bool {
        self.holds(RouteId::ConfigureIdentityProvider)
    }

    /// Whether the gateways screen is theirs (the permission of `GET /v1/gateways`).
    pub fn reads_gateways(&self) -> bool {
        self.holds(RouteId::ListGateways)
    }

    /// Whether their role holds the permission of `route` in the API's route table.
    fn holds(&self, route: RouteId) -> bool {
        let spec = ROUTES.iter().find(|r| r.id == route);
        crate::domain::Role::parse(self.role)
            .zip(spec)
            .is_some_and(|(role, spec)| role_allows(role, spec.permission))
    }

    /// Whether the audit explorer is theirs (the permission of `/v1/audit/events`).
    pub fn reads_audit(&self) -> bool {
        crate::domain::Role::parse(self.role)
            .is_some_and(|role| role_allows(role, crate::api::routes::Permission::ReadAudit))
    }
}

pub use crate::web::render;

#[derive(Template)]
#[template(path = "refused.html")]
struct Refused<'a> {
    me: Option<Me>,
    section: &'a str,
    heading: &'a str,
    message: &'a str,
}

/// A page saying why the request was refused.
pub fn refused(status: StatusCode, me: Option<Me>, heading: &str, message: &str) -> Response {
    render(
        status,
        &Refused {
            me,
            section: "",
            heading,
            message,
        },
    )
}

/// Whether the member's role holds the permission of `route` in the API's route table;
/// a refusal is recorded as `access.denied` (the console path as its route) and answered 403.
pub async fn allow(
    state: &AppState,
    member: &MemberSession,
    route: RouteId,
    (method, path): (&str, &str),
) -> Result<(), Response> {
    let permitted = ROUTES
        .iter()
        .find(|spec| spec.id == route)
        .is_some_and(|spec| role_allows(member.caller.role, spec.permission));
    if permitted {
        return Ok(());
    }
    let denial = AccessDenied {
        method: method.to_string(),
        route: path.to_string(),
        status: 403,
        reason: DenialReason::RoleNotPermitted,
        target_id: None,
    };
    record_denial(
        state,
        Some(&member.caller.workspace_id),
        member.caller.actor(),
        denial,
    )
    .await;
    Err(refused(
        StatusCode::FORBIDDEN,
        None,
        "Not allowed",
        "Your role does not allow this. The attempt was recorded.",
    ))
}

pub use crate::web::form_error;

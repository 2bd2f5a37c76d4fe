//! End users' pages (a face beside the console, for the people agents act for): the
//! hosted connect page (`connect`) and the end user's own pages under `/me/` (`me`: sign-in
//! with the workspace's identity provider, My connections; `me_approvals`: My approvals;
//! `me_activity`: My activity). Server-rendered from
//! templates checked at compile time (`templates/portal/`), one stylesheet served from the
//! binary, no script: the same security headers and Content-Security-Policy as the console.
//! Refused links are charged to the client's refusal budget, as refused OAuth callbacks are.

mod connect;
mod me;
mod me_activity;
mod me_approvals;

use std::sync::Arc;

use askama::Template;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;

use crate::api::ratelimit::Limits;
use crate::app::AppState;

/// Form posts are small; anything larger is not the portal's.
const MAX_FORM_BYTES: usize = 16 * 1024;

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The CSP of a page whose form's answer redirects to `return_url` (browsers hold a form's
/// redirects to `form-action` too): the same policy, that one origin added.
fn csp_with_form_target(return_url: &str) -> Option<HeaderValue> {
    let origin = url::Url::parse(return_url).ok()?.origin();
    if !origin.is_tuple() {
        return None;
    }
    let csp = CSP.replace(
        "form-action 'self'",
        &format!("form-action 'self' {}", origin.ascii_serialization()),
    );
    HeaderValue::from_str(&csp).ok()
}

pub fn router(state: AppState, limits: Arc<Limits>) -> Router {
    Router::new()
        .route("/connect/done", get(connect::connected))
        .route("/connect/static/portal.css", get(stylesheet))
        .route("/connect/{link}", get(connect::page).post(connect::submit))
        .route("/me/", get(me::show))
        .route(
            "/me",
            get(|| async { axum::response::Redirect::to("/me/") }),
        )
        .route("/me/sign-in", get(me::sign_in_form))
        .route("/me/sign-in/start", get(me::start))
        .route("/me/callback", get(me::callback))
        .route("/me/sign-out", axum::routing::post(me::sign_out))
        .route("/me/connect", axum::routing::post(me::connect))
        .route("/me/disconnect", axum::routing::post(me::disconnect))
        .route("/me/activity", get(me_activity::show))
        .route(
            "/me/activity/undo",
            axum::routing::post(me_activity::undo_call),
        )
        .route("/me/approvals", get(me_approvals::show))
        .route(
            "/me/approvals/decide",
            axum::routing::post(me_approvals::decide),
        )
        .layer(axum::Extension(Arc::new(me::UsedFlows::default())))
        .layer(axum::middleware::from_fn_with_state(
            limits,
            crate::api::auth::within_link_budget,
        ))
        .layer(axum::middleware::map_response(security_headers))
        .layer(DefaultBodyLimit::max(MAX_FORM_BYTES))
        .with_state(state)
}

async fn security_headers(res: Response) -> Response {
    crate::web::page_headers(res, CSP)
}

async fn stylesheet() -> Response {
    crate::web::asset("text/css; charset=utf-8", include_str!("static/portal.css"))
}

use crate::web::render;

#[derive(Template)]
#[template(path = "portal/message.html")]
struct Message<'a> {
    heading: &'a str,
    message: &'a str,
}

/// A page that only says something (a refusal, or that the connection is made).
fn message(status: StatusCode, heading: &str, message: &str) -> Response {
    render(status, &Message { heading, message })
}

//! End users' pages (a face beside the console, for the people agents act for): today the
//! hosted connect page (`connect`); the `/me/` pages join it later. Server-rendered from
//! templates checked at compile time (`templates/portal/`), one stylesheet served from the
//! binary, no script: the same security headers and Content-Security-Policy as the console.
//! Refused links are charged to the client's refusal budget, as refused OAuth callbacks are.

mod connect;

use std::sync::Arc;

use askama::Template;
use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
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
        .layer(axum::middleware::from_fn_with_state(
            limits,
            crate::api::auth::within_link_budget,
        ))
        .layer(axum::middleware::map_response(security_headers))
        .layer(DefaultBodyLimit::max(MAX_FORM_BYTES))
        .with_state(state)
}

async fn security_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    // A page whose form may end at another origin (the app's return URL) sets its own.
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
    }
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // The page's URL is a capability: never sent to another site as a referrer (not
    // `no-referrer`: browsers then send `Origin: null` on the form's POST).
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        include_str!("static/portal.css"),
    )
        .into_response()
}

/// A template as an HTML answer (a rendering failure is logged, answered 500).
fn render(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "a portal page failed to render");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

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

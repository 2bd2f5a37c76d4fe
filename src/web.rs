//! What the server-rendered faces (the team console, end users' pages) share: the security
//! headers every page carries, a template as an answer, a static asset, a request cookie,
//! a command's refusal in the words a form shows.

use askama::Template;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};

/// Sets the headers every page carries: `csp` unless the page set its own (a form that may
/// end at another origin widens `form-action`), no framing, no referrer to other sites
/// (page URLs can be capabilities; not `no-referrer`: browsers then send `Origin: null` on
/// the page's own form posts), no sniffing, and `no-store` unless the answer says otherwise.
pub fn page_headers(mut res: Response, csp: &'static str) -> Response {
    let h = res.headers_mut();
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(csp),
        );
    }
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
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

/// A template as an HTML answer (a rendering failure is logged, answered 500).
pub fn render(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "a page failed to render");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// A stylesheet or script served from the binary (cacheable for five minutes).
pub fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
        .into_response()
}

/// The value of the request's cookie `name`, if it has one.
pub fn cookie_value<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| kv.trim().strip_prefix(name)?.strip_prefix('='))
}

/// A command's refusal as the words a form shows (internals logged, never shown).
pub fn form_error(e: &crate::commands::CommandError) -> String {
    let problem = crate::commands::problem::Problem::from(e);
    problem.detail.unwrap_or(problem.title)
}

/// An RFC 3339 time as the pages show it: `2026-12-04T11:51:18.123Z` as
/// `2026-12-04 11:51:18 UTC` (the exact value stays in a `<time datetime>`).
pub fn when(t: &str) -> String {
    t.get(..19)
        .map_or(t.to_string(), |s| format!("{} UTC", s.replace('T', " ")))
}

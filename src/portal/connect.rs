//! The hosted connect page (`/connect/{link}`): the form an auth config that is not OAuth
//! needs, bound to one user and one auth config by a single-use, expiring link
//! (`commands::connections::hosted`). **Test** (where the auth type has a test) checks the
//! credentials and keeps nothing; **Connect** seals them and completes the connection,
//! then sends the end user to the app's return URL, as the OAuth callback does.
//!
//! CSRF: the page sets a random value in a host-only, `SameSite=Strict` cookie and its form
//! carries an HMAC of that value and the link; a POST needs both, from the service's own
//! origin. The credentials are never put back into a page (only a username).

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{message, render};
use crate::app::AppState;
use crate::commands::connections::binding;
use crate::commands::connections::hosted::{self, HostedLink, LinkError, CONNECT_PATH};
use crate::commands::problem::Problem;
use crate::commands::record_denial;
use crate::domain::auth_config::{AuthSettings, KeyLocation};
use crate::domain::{AccessDenied, DenialReason};
use crate::ledger::{Actor, ActorType};

/// The route template refusals name (never the link itself).
const ROUTE: &str = "/connect/{link}";

#[derive(Template)]
#[template(path = "portal/connect.html")]
struct ConnectPage {
    name: String,
    provider: String,
    user_id: String,
    auth_type: &'static str,
    asks_for: &'static str,
    expires_at: String,
    action: String,
    csrf: String,
    key_name: String,
    key_location: &'static str,
    host: String,
    database: String,
    /// What was typed as a user name (never a secret) when the page is shown again.
    username: String,
    /// A native connector's credential fields, from its definition.
    fields: Vec<crate::connectors::definition::FormField>,
    has_test: bool,
    error: Option<String>,
    test_result: Option<String>,
    test_ok: bool,
}

/// What a page shows besides the link: an error, a test's outcome, the user name typed.
#[derive(Default)]
struct Shown {
    error: Option<String>,
    test: Option<(bool, String)>,
    username: String,
    /// A connector's non-secret credential values, shown again.
    kept: std::collections::BTreeMap<String, Value>,
}

/// The connector definition of a native connector's auth config.
fn connector_of(settings: &AuthSettings) -> Option<&'static crate::connectors::Definition> {
    match settings {
        AuthSettings::Connector(c) => crate::connectors::definition(&c.connector),
        _ => None,
    }
}

fn page_of(link: &HostedLink, presented: &str, csrf: String, shown: Shown) -> ConnectPage {
    let (auth_type, asks_for) = match &link.settings {
        AuthSettings::ApiKey(_) => ("api_key", "an API key of your account"),
        AuthSettings::BearerToken => ("bearer_token", "an access token of your account"),
        AuthSettings::Basic => ("basic", "your username and password"),
        AuthSettings::Postgres(_) => ("postgres", "a database user and its password"),
        AuthSettings::Connector(_) => ("connector", "the credentials below"),
        AuthSettings::NoAuth => ("no_auth", "nothing but your agreement"),
        AuthSettings::Oauth2(_) => ("oauth2", "your consent at the provider"),
    };
    let (key_name, key_location) = match &link.settings {
        AuthSettings::ApiKey(k) => (
            k.key_name.clone(),
            match k.location {
                KeyLocation::Header => "header",
                KeyLocation::Query => "query string",
                KeyLocation::Cookie => "cookie",
            },
        ),
        _ => (String::new(), ""),
    };
    let (host, database) = match &link.settings {
        AuthSettings::Postgres(p) => (format!("{}:{}", p.host, p.port), p.database.clone()),
        AuthSettings::Connector(c) => {
            let at = |k: &str| {
                c.settings
                    .get(k)
                    .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
            };
            let place = at("host")
                .map(|h| format!("{h}:{}", at("port").unwrap_or_default()))
                .or_else(|| at("endpoint"))
                .unwrap_or_default();
            let what = ["database", "vhost", "bucket"]
                .iter()
                .find_map(|k| at(k))
                .unwrap_or_default();
            (place, what)
        }
        _ => (String::new(), String::new()),
    };
    let expires_at = crate::projector::plan::rfc3339(link.expires_at);
    ConnectPage {
        name: link.auth_config_name.clone(),
        provider: link.provider.clone(),
        user_id: link.user_id.clone(),
        auth_type,
        asks_for,
        expires_at,
        action: format!("{CONNECT_PATH}{presented}"),
        csrf,
        key_name,
        key_location,
        host,
        database,
        username: shown.username,
        fields: connector_of(&link.settings)
            .map(|d| {
                crate::connectors::definition::form_fields(
                    d,
                    crate::connectors::Part::Credentials,
                    &shown.kept,
                )
            })
            .unwrap_or_default(),
        has_test: hosted::has_test(&link.settings),
        error: shown.error,
        test_ok: shown.test.as_ref().is_some_and(|(ok, _)| *ok),
        test_result: shown.test.map(|(_, text)| text),
    }
}

// ---------------------------------------------------------------------------------------
// CSRF: a random value in a cookie, its HMAC with the link in the form
// ---------------------------------------------------------------------------------------

fn secure(state: &AppState) -> bool {
    state.connections.public_url.starts_with("https://")
}

fn cookie_name(state: &AppState) -> &'static str {
    if secure(state) {
        "__Host-authledger_connect"
    } else {
        "authledger_connect"
    }
}

fn cookie_value<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    crate::web::cookie_value(headers, name).filter(|v| !v.is_empty() && v.len() <= 128)
}

fn csrf_token(state: &AppState, nonce: &str, presented: &str) -> String {
    let link_hash = crate::oauth::state_hash(presented);
    state
        .vault
        .fingerprint(format!("portal-csrf:{nonce}:{link_hash}").as_bytes())
        .trim_start_matches("hmac-sha256:")
        .to_string()
}

/// The browser's CSRF nonce, or a new one and the cookie that sets it.
fn nonce(state: &AppState, headers: &HeaderMap) -> (String, Option<HeaderValue>) {
    if let Some(n) = cookie_value(headers, cookie_name(state)) {
        return (n.to_string(), None);
    }
    let n = crate::oauth::random_token();
    let mut c = format!(
        "{}={n}; Path=/; HttpOnly; SameSite=Strict; Max-Age=3600",
        cookie_name(state)
    );
    if secure(state) {
        c.push_str("; Secure");
    }
    (n, HeaderValue::from_str(&c).ok())
}

/// A POST's `Origin` (browsers send it on form posts) must be the service's own.
fn same_origin(state: &AppState, headers: &HeaderMap) -> bool {
    let public = state.connections.public_url.trim_end_matches('/');
    match headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) {
        Some(origin) => public == origin || public.starts_with(&format!("{origin}/")),
        None => true,
    }
}

fn csrf_ok(state: &AppState, headers: &HeaderMap, presented: &str, given: &str) -> bool {
    let Some(nonce) = cookie_value(headers, cookie_name(state)) else {
        return false;
    };
    let expected = csrf_token(state, nonce, presented);
    same_origin(state, headers)
        && bool::from(subtle::ConstantTimeEq::ct_eq(
            given.as_bytes(),
            expected.as_bytes(),
        ))
}

// ---------------------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------------------

fn with_cookie(mut response: Response, cookie: Option<HeaderValue>) -> Response {
    if let Some(c) = cookie {
        response.headers_mut().append(header::SET_COOKIE, c);
    }
    response
}

/// The form page, allowed to post into a redirect to the link's return URL.
fn form_page(link: &HostedLink, status: StatusCode, page: &ConnectPage) -> Response {
    let mut response = render(status, page);
    if let Some(csp) = super::csp_with_form_target(&link.redirect_url) {
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    response
}

/// The answer for a link that cannot be used: nothing happened (the refusal is recorded),
/// or its person has to sign in first.
fn refused_link(e: &LinkError, presented: &str) -> Response {
    match e {
        LinkError::SignInRequired { workspace_id } => {
            super::me::sign_in_then(workspace_id, &format!("{CONNECT_PATH}{presented}"))
        }
        LinkError::OtherPerson => message(
            StatusCode::FORBIDDEN,
            "This link is for someone else",
            "This connect link was made for another person of your organisation: only they can \
             connect with it. If it is yours, sign out and sign in with your own account; \
             otherwise ask the application for a link of your own. Nothing was saved.",
        ),
        LinkError::Invalid(_) => message(
            StatusCode::BAD_REQUEST,
            "This link cannot be used",
            "The connect link is unknown, has expired or was already used. Nothing was saved. \
             Go back to the application and start connecting again to get a new link.",
        ),
        LinkError::Command(c) => {
            let problem = Problem::from(c);
            message(
                StatusCode::from_u16(problem.status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
                "Not available right now",
                &problem.detail.unwrap_or(problem.title),
            )
        }
    }
}

/// `GET /connect/{link}`: the form, or (a bound OAuth flow, its person signed in) on to the
/// provider's consent with the flow's binding left in the browser.
pub async fn page(
    State(state): State<AppState>,
    Path(presented): Path<String>,
    headers: HeaderMap,
) -> Response {
    let at = ("GET", ROUTE);
    let presenter = super::me::presenter(&state, &headers).await;
    match binding::consent(&state, at, &presented, presenter.as_ref(), secure(&state)).await {
        Ok(Some(consent)) => return to_consent(&state, &consent),
        Ok(None) => {}
        Err(e) => return refused_link(&e, &presented),
    }
    let link = match hosted::open(&state, at, &presented, presenter.as_ref()).await {
        Ok(l) => l,
        Err(e) => return refused_link(&e, &presented),
    };
    let (nonce, cookie) = nonce(&state, &headers);
    let csrf = csrf_token(&state, &nonce, &presented);
    let page = page_of(&link, &presented, csrf, Shown::default());
    with_cookie(form_page(&link, StatusCode::OK, &page), cookie)
}

/// `303` to the provider, the binding cookie set for the callback (`Path=/`: the callback is
/// under `/v1/`; `SameSite=Lax`: the provider's redirect back is a top-level navigation).
fn to_consent(state: &AppState, consent: &binding::Consent) -> Response {
    let seconds = (consent.expires_at - state.clock.now())
        .whole_seconds()
        .max(0);
    let mut c = format!(
        "{}={}; Path=/; HttpOnly; SameSite=Lax; Max-Age={seconds}",
        consent.cookie_name, consent.cookie_value
    );
    if secure(state) {
        c.push_str("; Secure");
    }
    let mut r = (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, consent.authorize_url.clone()),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&c) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

/// Every field the form may have; the auth type says which count.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct ConnectForm {
    csrf: String,
    action: String,
    api_key: String,
    token: String,
    username: String,
    user: String,
    password: String,
    /// A native connector's `f_<field>` inputs.
    #[serde(flatten)]
    fields: std::collections::HashMap<String, String>,
}

impl std::fmt::Debug for ConnectForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectForm")
            .field("action", &self.action)
            .finish_non_exhaustive()
    }
}

/// The credentials in the shape the auth type takes (the command checks them).
fn credentials(settings: &AuthSettings, f: &ConnectForm) -> Value {
    match settings {
        AuthSettings::ApiKey(_) => json!({ "api_key": f.api_key }),
        AuthSettings::BearerToken => json!({ "token": f.token }),
        AuthSettings::Basic => json!({ "username": f.username.trim(), "password": f.password }),
        AuthSettings::Postgres(_) => json!({ "user": f.user.trim(), "password": f.password }),
        AuthSettings::Connector(_) => connector_of(settings)
            .map(|d| {
                crate::connectors::definition::from_form(
                    d,
                    crate::connectors::Part::Credentials,
                    &f.fields,
                )
            })
            .unwrap_or(Value::Null),
        AuthSettings::NoAuth | AuthSettings::Oauth2(_) => Value::Null,
    }
}

/// `POST /connect/{link}`: **Test** or **Connect**.
pub async fn submit(
    State(state): State<AppState>,
    Path(presented): Path<String>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<ConnectForm>,
) -> Response {
    let at = ("POST", ROUTE);
    if !csrf_ok(&state, &headers, &presented, &form.csrf) {
        return csrf_refused(&state, &presented).await;
    }
    let presenter = super::me::presenter(&state, &headers).await;
    let person = presenter.as_ref();
    let link = match hosted::open(&state, at, &presented, person).await {
        Ok(l) => l,
        Err(e) => return refused_link(&e, &presented),
    };
    let creds = credentials(&link.settings, &form);
    let username = match &link.settings {
        AuthSettings::Basic => form.username.trim().to_string(),
        AuthSettings::Postgres(_) => form.user.trim().to_string(),
        _ => String::new(),
    };
    // A connector's non-secret credential values are shown again (never a secret).
    let kept: std::collections::BTreeMap<String, Value> = connector_of(&link.settings)
        .and_then(|d| {
            let given = creds.as_object()?;
            Some(
                d.fields_of(crate::connectors::Part::Credentials)
                    .filter(|f| !f.secret)
                    .filter_map(|f| Some((f.name.clone(), given.get(&f.name)?.clone())))
                    .collect(),
            )
        })
        .unwrap_or_default();
    let again = |shown: Shown, status: StatusCode| {
        let nonce = cookie_value(&headers, cookie_name(&state)).unwrap_or_default();
        let csrf = csrf_token(&state, nonce, &presented);
        form_page(&link, status, &page_of(&link, &presented, csrf, shown))
    };
    if form.action == "test" && hosted::has_test(&link.settings) {
        let shown = match hosted::test(&state, at, &presented, person, &creds).await {
            Ok(_) => Shown {
                test: Some((
                    true,
                    "Test passed: the service accepted these credentials.".into(),
                )),
                username: username.clone(),
                kept: kept.clone(),
                ..Shown::default()
            },
            Err(LinkError::Command(e)) => Shown {
                test: Some((false, format!("Test failed: {}", words(&e)))),
                username: username.clone(),
                kept: kept.clone(),
                ..Shown::default()
            },
            Err(e) => return refused_link(&e, &presented),
        };
        return again(shown, StatusCode::OK);
    }
    match hosted::submit(&state, at, &presented, person, &creds).await {
        Ok(outcome) => match outcome.return_url() {
            Ok(url) => (
                StatusCode::SEE_OTHER,
                [
                    (header::LOCATION, url),
                    (header::CACHE_CONTROL, "no-store".to_string()),
                ],
            )
                .into_response(),
            Err(_) => message(
                StatusCode::OK,
                "Connected",
                "Your account is connected. You can close this page.",
            ),
        },
        Err(LinkError::Command(e)) if is_refusal(&e) => {
            let shown = Shown {
                error: Some(format!("Not connected: {}", words(&e))),
                test: hosted::has_test(&link.settings)
                    .then(|| (false, "Nothing was saved.".into())),
                username,
                kept,
            };
            again(shown, StatusCode::UNPROCESSABLE_ENTITY)
        }
        Err(e) => refused_link(&e, &presented),
    }
}

/// A refusal of the credentials themselves (shape, size, a failed test), shown on the form.
fn is_refusal(e: &crate::commands::CommandError) -> bool {
    use crate::commands::CommandError;
    use crate::domain::DomainError;
    matches!(
        e,
        CommandError::Domain(DomainError::Invalid { .. } | DomainError::Rejected(_))
    )
}

/// A command's refusal as the words a form shows (never a credential: the commands report
/// field names and types, not values).
fn words(e: &crate::commands::CommandError) -> String {
    let problem = Problem::from(e);
    problem.detail.unwrap_or(problem.title)
}

/// A form without this browser's CSRF token (or from another origin): recorded, refused,
/// nothing happens.
async fn csrf_refused(state: &AppState, presented: &str) -> Response {
    // Which workspace the refusal is recorded in: the link's, whoever presents it.
    let workspace = match hosted::open(state, ("POST", ROUTE), presented, None).await {
        Ok(link) => Some(link.workspace_id),
        Err(LinkError::SignInRequired { workspace_id }) => Some(workspace_id),
        Err(e) => return refused_link(&e, presented),
    };
    let denial = AccessDenied {
        method: "POST".into(),
        route: ROUTE.into(),
        status: 403,
        reason: DenialReason::InvalidCsrf,
        target_id: None,
    };
    let actor = Actor {
        actor_type: ActorType::Anonymous,
        id: "connect-link".into(),
    };
    record_denial(state, workspace.as_deref(), actor, denial).await;
    message(
        StatusCode::FORBIDDEN,
        "Form expired",
        "This form did not come from this browser's connect page. Open the link again and \
         try again. Nothing was saved.",
    )
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct ConnectedQuery {
    status: String,
}

/// `GET /connect/done`: where a link without an app return URL ends.
pub async fn connected(Query(q): Query<ConnectedQuery>) -> Response {
    if q.status == "active" {
        message(
            StatusCode::OK,
            "Connected",
            "Your account is connected. You can close this page and go back to the application.",
        )
    } else {
        message(
            StatusCode::OK,
            "Not connected",
            "The connection was not made. Go back to the application to try again.",
        )
    }
}

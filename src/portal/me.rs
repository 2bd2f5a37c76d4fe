//! End users' own pages, `/me/`: sign-in with the workspace's identity provider in the
//! browser, and **My connections**.
//!
//! Sign-in: `/me/sign-in?workspace=…` → `/me/sign-in/start` (the flow's state, nonce and
//! PKCE verifier in a ten-minute MAC'd cookie, then a redirect to the provider) → the
//! provider → `/me/callback` (the flow cookie ended, its state matched and taken once per
//! instance, then `commands::end_user_sign_in::complete`). Every refusal is recorded
//! (`access.denied`) and shown on a page that says why.
//!
//! The session cookie is the end user's own, never the team console's: `authledger_me`
//! (`__Host-authledger_me` with `Secure` on https), `Path=/` (the hosted connect page at
//! `/connect/` checks a bound link's person with it), `HttpOnly`, `SameSite=Lax`, holding
//! `<session token>~<last used, unix seconds>~<MAC>`. The session is decided from the log
//! (`end_user.signed_in` / `end_user.signed_out`, absolute end), the MAC'd last use ends
//! an idle one. The console's cookie has another name and `/me/` never reads it; the console
//! and the API never read this one. CSRF: every form carries an HMAC of the session token,
//! and every POST must come from the service's own origin. A sign-in started from a connect
//! link returns to it (`next`: only `/connect/…` or `/me/…` paths).
//!
//! My connections: every enabled auth config the workspace offers its end users (`offered`,
//! on unless an admin hides it), plus any other config the person has a connection from,
//! with this person's status for each; **Connect** only for an offered one. **Connect** starts the existing
//! connect flow for them (`commands::connections::create`: the provider's consent or the
//! hosted page, returning to `/me/`); **Disconnect** is `revoke_own` (revoked at the
//! provider and in the ledger; another person's connection id answers exactly like an
//! unknown id, and the attempt is recorded).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use serde::Deserialize;

use crate::app::AppState;
use crate::commands::agents::At;
use crate::commands::connections::CreateConnectionInput;
use crate::commands::end_user_sign_in::{
    self as sign_in, EndUserSession, EndUserSignInError, SESSION_IDLE,
};
use crate::commands::{record_denial, CommandError, EndUser};
use crate::domain::{AccessDenied, DenialReason};
use crate::ledger::{Actor, ActorType};
use crate::oauth::oidc::Flow;
use crate::projector::store::ConnectionFilter;
use crate::web::render;

/// How long a started sign-in may take at the provider.
const FLOW_SECS: i64 = 600;

fn secure(state: &AppState) -> bool {
    state.connections.public_url.starts_with("https://")
}

fn session_cookie(state: &AppState) -> &'static str {
    if secure(state) {
        "__Host-authledger_me"
    } else {
        "authledger_me"
    }
}

fn flow_cookie(state: &AppState) -> &'static str {
    if secure(state) {
        "__Secure-authledger_me_flow"
    } else {
        "authledger_me_flow"
    }
}

/// A `Set-Cookie` value: host-only, `HttpOnly`, `SameSite=Lax`, `Secure` on https. The
/// session's is `Path=/` (the connect page at `/connect/` checks a bound link's person
/// with it); the sign-in flow's `Path=/me`.
fn cookie(state: &AppState, name: &str, value: &str, max_age: Option<u64>) -> HeaderValue {
    let path = if name == flow_cookie(state) {
        "/me"
    } else {
        "/"
    };
    let mut c = format!("{name}={value}; Path={path}; HttpOnly; SameSite=Lax");
    if secure(state) {
        c.push_str("; Secure");
    }
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={age}"));
    }
    HeaderValue::from_str(&c).unwrap_or(HeaderValue::from_static("authledger_me=; Max-Age=0"))
}

/// The HMAC that binds a value to this deployment, for `purpose` (hex).
fn mac(state: &AppState, purpose: &str, value: &str) -> String {
    let f = state
        .vault
        .fingerprint(format!("me-{purpose}:{value}").as_bytes());
    f.trim_start_matches("hmac-sha256:").to_string()
}

fn mac_matches(state: &AppState, purpose: &str, value: &str, given: &str) -> bool {
    subtle::ConstantTimeEq::ct_eq(given.as_bytes(), mac(state, purpose, value).as_bytes()).into()
}

fn session_value(state: &AppState, token: &str, now_unix: i64) -> HeaderValue {
    let v = format!("{token}~{now_unix}");
    let value = format!("{v}~{}", mac(state, "idle", &v));
    cookie(state, session_cookie(state), &value, None)
}

/// A POST's `Origin` (browsers send it on form posts) must be the service's own.
fn same_origin(state: &AppState, headers: &HeaderMap) -> bool {
    let public = state.connections.public_url.trim_end_matches('/');
    match headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) {
        Some(origin) => public == origin || public.starts_with(&format!("{origin}/")),
        None => true,
    }
}

/// A signed-in end user for this request; answering through it renews the idle clock.
pub(super) struct Signed {
    pub(super) me: EndUserSession,
    token: String,
    now_unix: i64,
}

impl Signed {
    pub(super) fn csrf(&self, state: &AppState) -> String {
        mac(state, "csrf", &self.token)
    }

    pub(super) fn respond(&self, state: &AppState, mut r: Response) -> Response {
        r.headers_mut().append(
            header::SET_COOKIE,
            session_value(state, &self.token, self.now_unix),
        );
        r
    }

    /// The signed-in person posting a form to `route`, its CSRF token and origin checked;
    /// otherwise the answer (sign-in, or a recorded 403).
    pub(super) async fn posting(
        state: &AppState,
        headers: &HeaderMap,
        csrf: &str,
        route: &str,
    ) -> Result<Signed, Response> {
        let signed = current(state, headers).await?;
        signed.check_form(state, headers, csrf, route).await?;
        Ok(signed)
    }

    /// The form's CSRF token and origin; a mismatch is recorded (`access.denied`) and a 403.
    pub(super) async fn check_form(
        &self,
        state: &AppState,
        headers: &HeaderMap,
        csrf: &str,
        route: &str,
    ) -> Result<(), Response> {
        if same_origin(state, headers) && mac_matches(state, "csrf", &self.token, csrf) {
            return Ok(());
        }
        let denial = AccessDenied {
            method: "POST".into(),
            route: route.to_string(),
            status: 403,
            reason: DenialReason::InvalidCsrf,
            target_id: None,
        };
        record_denial(
            state,
            Some(&self.me.user.workspace_id),
            user_actor(&self.me),
            denial,
        )
        .await;
        Err(super::message(
            StatusCode::FORBIDDEN,
            "Form expired",
            "This form did not come from your current session. Reload the page and try again.",
        ))
    }
}

pub(super) fn user_actor(me: &EndUserSession) -> Actor {
    Actor {
        actor_type: ActorType::User,
        id: me.user.user_id.clone(),
    }
}

/// The signed-in end user, or the answer to give instead (the sign-in page).
pub(super) async fn current(state: &AppState, headers: &HeaderMap) -> Result<Signed, Response> {
    let now_unix = state.clock.now().unix_timestamp();
    let to_sign_in = || {
        let mut r = Redirect::to("/me/sign-in").into_response();
        r.headers_mut().append(
            header::SET_COOKIE,
            cookie(state, session_cookie(state), "", Some(0)),
        );
        r
    };
    let Some(value) = crate::web::cookie_value(headers, session_cookie(state)) else {
        return Err(to_sign_in());
    };
    let mut parts = value.rsplitn(3, '~');
    let (Some(given), Some(seen), Some(token)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(to_sign_in());
    };
    let idle = i64::try_from(SESSION_IDLE.as_secs()).unwrap_or(i64::MAX);
    let fresh = seen
        .parse::<i64>()
        .is_ok_and(|seen| now_unix >= seen && now_unix - seen < idle);
    if !fresh || !mac_matches(state, "idle", &format!("{token}~{seen}"), given) {
        return Err(to_sign_in());
    }
    match sign_in::session(state, token).await {
        Ok(Some(me)) => Ok(Signed {
            me,
            token: token.to_string(),
            now_unix,
        }),
        Ok(None) => Err(to_sign_in()),
        Err(e) => Err(unavailable(&e)),
    }
}

/// The signed-in end user presenting a connect link, if any (no redirect: the connect page
/// decides whether it needs one).
pub(super) async fn presenter(state: &AppState, headers: &HeaderMap) -> Option<EndUser> {
    current(state, headers).await.ok().map(|s| s.me.user)
}

/// Where a sign-in started from a page returns: a connect link (`/connect/{secret}`) or a
/// `/me/` page, nothing else.
fn safe_next(next: &str) -> Option<&str> {
    let plain = next
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_'));
    let ours = next.starts_with("/connect/") || next.starts_with("/me/");
    (plain && ours && next.len() <= 256 && !next.contains("//")).then_some(next)
}

/// The sign-in that returns to `next` afterwards.
pub(super) fn sign_in_then(workspace_id: &str, next: &str) -> Response {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("workspace", workspace_id)
        .append_pair("next", next)
        .finish();
    Redirect::to(&format!("/me/sign-in?{query}")).into_response()
}

pub(super) fn unavailable(e: &CommandError) -> Response {
    tracing::warn!(error = %e, "an end user's page is unavailable");
    super::message(
        StatusCode::SERVICE_UNAVAILABLE,
        "Unavailable",
        "This page is unavailable right now. Try again later.",
    )
}

// ---------------------------------------------------------------------------------------
// Sign-in
// ---------------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "portal/me_sign_in.html")]
struct SignInPage<'a> {
    workspace: String,
    /// The start URL with where to return after (a connect link), when there is one.
    start: String,
    heading: &'a str,
    error: Option<&'a str>,
}

fn sign_in_page(
    status: StatusCode,
    (workspace, next): (&str, Option<&str>),
    heading: &str,
    error: Option<&str>,
) -> Response {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    query.append_pair("workspace", workspace);
    if let Some(next) = next.and_then(safe_next) {
        query.append_pair("next", next);
    }
    let page = SignInPage {
        workspace: workspace.to_string(),
        start: format!("/me/sign-in/start?{}", query.finish()),
        heading,
        error,
    };
    render(status, &page)
}

#[derive(Deserialize)]
pub struct WorkspaceQuery {
    #[serde(default)]
    workspace: String,
    #[serde(default)]
    next: String,
}

/// `/me/sign-in?workspace=…`: a button that goes to the workspace's provider.
pub async fn sign_in_form(Query(q): Query<WorkspaceQuery>) -> Response {
    let heading = match safe_next(&q.next) {
        Some(n) if n.starts_with("/connect/") => "Sign in to connect your account",
        _ => "Sign in",
    };
    sign_in_page(
        StatusCode::OK,
        (q.workspace.trim(), Some(&q.next)),
        heading,
        None,
    )
}

/// `/me/sign-in/start?workspace=…`: the flow cookie, and on to the provider.
pub async fn start(State(state): State<AppState>, Query(q): Query<WorkspaceQuery>) -> Response {
    let workspace = q.workspace.trim();
    match sign_in::start(&state, workspace).await {
        Ok((flow, url)) => {
            let end = state.clock.now().unix_timestamp() + FLOW_SECS;
            let next = safe_next(&q.next).unwrap_or("/me/");
            let value = format!(
                "{workspace}~{}~{}~{}~{end}~{next}",
                flow.state, flow.nonce, flow.code_verifier
            );
            let kept = format!("{value}~{}", mac(&state, "flow", &value));
            let mut r = Redirect::to(&url).into_response();
            r.headers_mut().append(
                header::SET_COOKIE,
                cookie(
                    &state,
                    flow_cookie(&state),
                    &kept,
                    Some(FLOW_SECS.unsigned_abs()),
                ),
            );
            r
        }
        Err(EndUserSignInError::NotConfigured) => sign_in_page(
            StatusCode::NOT_FOUND,
            (workspace, None),
            "Sign in",
            Some("Sign-in in the browser is not set up for this workspace. Ask the workspace's admins."),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "an end user's sign-in could not start");
            sign_in_page(
                StatusCode::SERVICE_UNAVAILABLE,
                (workspace, None),
                "Sign in",
                Some("Your organisation's identity provider cannot be reached right now. Try again later."),
            )
        }
    }
}

/// States of callbacks this instance already took (until their flows' ends).
#[derive(Default)]
pub struct UsedFlows(Mutex<HashMap<String, Instant>>);

impl UsedFlows {
    /// Takes `state` once; false if it was taken before.
    fn take(&self, state: &str, now: Instant) -> bool {
        let Ok(mut used) = self.0.lock() else {
            return false;
        };
        used.retain(|_, until| now < *until);
        let key = crate::oauth::state_hash(state);
        if used.contains_key(&key) {
            return false;
        }
        used.insert(key, now + Duration::from_secs(FLOW_SECS.unsigned_abs()));
        true
    }
}

/// A sign-in flow this browser keeps: its workspace, secrets, and where to return.
struct KeptFlow {
    workspace: String,
    flow: Flow,
    next: String,
}

/// The whole, unexpired flow cookie.
fn kept_flow(state: &AppState, headers: &HeaderMap) -> Option<KeptFlow> {
    let kept = crate::web::cookie_value(headers, flow_cookie(state))?;
    let (value, given) = kept.rsplit_once('~')?;
    if !mac_matches(state, "flow", value, given) {
        return None;
    }
    let parts: Vec<&str> = value.split('~').collect();
    let [workspace, st, nonce, verifier, end, next] = parts.as_slice() else {
        return None;
    };
    let end: i64 = end.parse().ok()?;
    (state.clock.now().unix_timestamp() < end).then(|| KeptFlow {
        workspace: workspace.to_string(),
        flow: Flow {
            state: st.to_string(),
            nonce: nonce.to_string(),
            code_verifier: verifier.to_string(),
        },
        next: safe_next(next).unwrap_or("/me/").to_string(),
    })
}

/// What a refusal says to the person.
fn explain(reason: DenialReason) -> (StatusCode, &'static str, &'static str) {
    match reason {
        DenialReason::InvalidSsoState => (
            StatusCode::BAD_REQUEST,
            "Sign-in link expired or already used",
            "This sign-in did not start in this browser, took too long, or was already completed. Start again.",
        ),
        DenialReason::InvalidToken => (
            StatusCode::UNAUTHORIZED,
            "Your identity provider's answer was not accepted",
            "The identity provider's answer could not be verified. Start again; if it keeps failing, ask the workspace's admins.",
        ),
        _ => (
            StatusCode::BAD_GATEWAY,
            "Your identity provider refused the sign-in",
            "The sign-in with your organisation's identity provider did not complete. Try again.",
        ),
    }
}

fn refusal(workspace: &str, reason: DenialReason) -> Response {
    let (status, heading, message) = explain(reason);
    sign_in_page(status, (workspace, None), heading, Some(message))
}

#[derive(Deserialize)]
pub struct CallbackQuery {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    iss: Option<String>,
}

/// The provider's redirect back: a session, or a page that says why not. The flow cookie
/// ends either way.
pub async fn callback(
    State(state): State<AppState>,
    Extension(used): Extension<std::sync::Arc<UsedFlows>>,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> Response {
    let mut r = callback_answer(&state, &used, &headers, q).await;
    r.headers_mut().append(
        header::SET_COOKIE,
        cookie(&state, flow_cookie(&state), "", Some(0)),
    );
    r
}

async fn callback_answer(
    state: &AppState,
    used: &UsedFlows,
    headers: &HeaderMap,
    q: CallbackQuery,
) -> Response {
    let given = q.state.unwrap_or_default();
    let Some(KeptFlow {
        workspace,
        flow,
        next,
    }) = kept_flow(state, headers)
    else {
        let named = given
            .split_once('.')
            .map(|(ws, _)| ws)
            .filter(|ws| crate::ledger::AggregateKey::new(*ws, "workspace", *ws).is_ok());
        sign_in::bad_state(state, named, DenialReason::InvalidSsoState).await;
        return refusal(named.unwrap_or_default(), DenialReason::InvalidSsoState);
    };
    let same: bool = subtle::ConstantTimeEq::ct_eq(given.as_bytes(), flow.state.as_bytes()).into();
    if !same || !used.take(&flow.state, Instant::now()) {
        sign_in::bad_state(state, Some(&workspace), DenialReason::InvalidSsoState).await;
        return refusal(&workspace, DenialReason::InvalidSsoState);
    }
    let code = q.code.filter(|c| !c.is_empty() && c.len() <= 2048);
    let (None, Some(code)) = (q.error, code) else {
        sign_in::bad_state(state, Some(&workspace), DenialReason::SsoProviderError).await;
        return refusal(&workspace, DenialReason::SsoProviderError);
    };
    match sign_in::complete(state, &workspace, &flow, (&code, q.iss.as_deref())).await {
        Ok(me) => {
            let now = state.clock.now().unix_timestamp();
            let mut r = Redirect::to(&next).into_response();
            r.headers_mut().append(
                header::SET_COOKIE,
                session_value(state, &me.session.expose(), now),
            );
            r
        }
        Err(EndUserSignInError::Refused(reason)) => refusal(&workspace, reason),
        Err(EndUserSignInError::NotConfigured) => {
            sign_in::bad_state(state, Some(&workspace), DenialReason::InvalidSsoState).await;
            refusal(&workspace, DenialReason::InvalidSsoState)
        }
        Err(EndUserSignInError::Command(e)) => unavailable(&e),
    }
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// Ends the session (`end_user.signed_out`) and the cookie.
pub async fn sign_out(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    let signed = match Signed::posting(&state, &headers, &form.csrf, "/me/sign-out").await {
        Ok(s) => s,
        Err(answer) => return answer,
    };
    if let Err(e) = sign_in::sign_out(&state, &signed.me).await {
        return unavailable(&e);
    }
    let workspace = &signed.me.user.workspace_id;
    let mut r = Redirect::to(&format!("/me/sign-in?workspace={workspace}")).into_response();
    r.headers_mut().append(
        header::SET_COOKIE,
        cookie(&state, session_cookie(&state), "", Some(0)),
    );
    r
}

// ---------------------------------------------------------------------------------------
// My connections
// ---------------------------------------------------------------------------------------

/// One service as the person sees it.
struct Service {
    auth_config_id: String,
    name: String,
    provider: String,
    /// This person's status, in words.
    status: &'static str,
    /// The status as the API names it (`not_connected` when there is no connection).
    status_key: String,
    status_reason: Option<String>,
    scopes: String,
    last_used: String,
    /// The connection Disconnect revokes, when there is one to revoke.
    disconnect: Option<String>,
    /// Empty: no Connect button (the person's connection is active).
    connect_label: &'static str,
    offered: bool,
}

fn status_words(status: &str) -> &'static str {
    match status {
        "active" => "Connected",
        "initiated" => "Connecting (not finished)",
        "expired" => "Expired",
        "revoked" => "Disconnected",
        "error" => "Error",
        "needs_reconsent" => "Needs your consent again",
        _ => "Not connected",
    }
}

#[derive(Template)]
#[template(path = "portal/me.html")]
struct MyConnections<'a> {
    user_id: String,
    csrf: String,
    services: Vec<Service>,
    notice: Option<&'a str>,
    error: Option<String>,
}

/// Whether an auth config's shown settings offer it to end users (offered unless `false`).
fn offered_to_end_users(settings: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(settings)
        .map_or(true, |v| v["offered"] != serde_json::Value::Bool(false))
}

async fn services(state: &AppState, me: &EndUserSession) -> Result<Vec<Service>, CommandError> {
    let ws = &me.user.workspace_id;
    let configs = state.projections.auth_configs(ws).await?;
    let filter = ConnectionFilter {
        user_id: Some(me.user.user_id.clone()),
        limit: 1000,
        ..ConnectionFilter::default()
    };
    let connections = state.projections.connections(ws, &filter).await?;
    let mut out = Vec::new();
    for config in configs {
        // Creation order: the last is the person's latest connection to this service.
        let latest = connections.iter().rfind(|c| c.auth_config_id == config.id);
        let offered = config.status == "enabled" && offered_to_end_users(&config.settings);
        if !offered && latest.is_none() {
            continue;
        }
        let status_key = latest.map_or("not_connected".to_string(), |c| c.status.clone());
        let scopes: Vec<String> = latest
            .and_then(|c| serde_json::from_str(&c.scopes).ok())
            .unwrap_or_default();
        let revocable = matches!(
            status_key.as_str(),
            "active" | "needs_reconsent" | "expired" | "error" | "initiated"
        );
        out.push(Service {
            auth_config_id: config.id.clone(),
            name: config.name.clone(),
            provider: config.provider.clone(),
            status: status_words(&status_key),
            status_reason: latest.and_then(|c| c.status_reason.clone()),
            scopes: scopes.join(", "),
            last_used: latest
                .and_then(|c| c.last_used_at.clone())
                .unwrap_or_else(|| "never".into()),
            disconnect: latest.filter(|_| revocable).map(|c| c.id.clone()),
            // An active connection is not connected twice (Disconnect first).
            connect_label: match status_key.as_str() {
                "active" => "",
                "not_connected" => "Connect",
                _ => "Connect again",
            },
            status_key,
            offered,
        });
    }
    Ok(out)
}

async fn my_page(
    state: &AppState,
    signed: &Signed,
    status: StatusCode,
    notice: Option<&str>,
    error: Option<String>,
) -> Response {
    let services = match services(state, &signed.me).await {
        Ok(s) => s,
        Err(e) => return unavailable(&e),
    };
    let page = MyConnections {
        user_id: signed.me.user.user_id.clone(),
        csrf: signed.csrf(state),
        services,
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

/// `/me/`: My connections.
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
        Some("disconnected") => Some("Disconnected: the service's access was revoked."),
        _ => None,
    };
    my_page(&state, &signed, StatusCode::OK, notice, None).await
}

#[derive(Template)]
#[template(path = "portal/me_continue.html")]
struct Continue {
    url: String,
}

#[derive(Deserialize)]
pub struct ConnectForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    auth_config_id: String,
}

/// **Connect**: the existing connect flow for this person, returning to `/me/`.
pub async fn connect(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<ConnectForm>,
) -> Response {
    let signed = match Signed::posting(&state, &headers, &form.csrf, "/me/connect").await {
        Ok(s) => s,
        Err(answer) => return answer,
    };
    let ws = signed.me.user.workspace_id.clone();
    // Only what the workspace offers its end users (a crafted form names any config).
    let offered = match state
        .projections
        .auth_config(&ws, &form.auth_config_id)
        .await
    {
        Ok(c) => c.is_some_and(|c| c.status == "enabled" && offered_to_end_users(&c.settings)),
        Err(e) => return unavailable(&CommandError::from(e)),
    };
    if !offered {
        let why = "This service is not offered to you here.".to_string();
        let status = StatusCode::UNPROCESSABLE_ENTITY;
        return my_page(&state, &signed, status, None, Some(why)).await;
    }
    let back = format!("{}/me/", state.connections.public_url.trim_end_matches('/'));
    let input = CreateConnectionInput {
        auth_config_id: form.auth_config_id,
        user_id: signed.me.user.user_id.clone(),
        redirect_url: Some(back.clone()),
        scopes: None,
        credentials: None,
    };
    match crate::commands::connections::create(&state, &ws, &user_actor(&signed.me), input).await {
        Ok(created) => match created.connect_url {
            // The hosted page is this service's own: straight there.
            Some(url) if !created.via_provider => {
                signed.respond(&state, Redirect::to(&url).into_response())
            }
            // On to the provider's consent (through the connect page when the link is
            // bound): a page that moves on by itself (`form-action 'self'` forbids a form's
            // redirect to another origin, also at the end of a chain).
            Some(url) => signed.respond(&state, render(StatusCode::OK, &Continue { url })),
            None => signed.respond(&state, Redirect::to("/me/").into_response()),
        },
        Err(e) => {
            let why = crate::web::form_error(&e);
            my_page(
                &state,
                &signed,
                StatusCode::UNPROCESSABLE_ENTITY,
                None,
                Some(format!("This service cannot be connected from here: {why}")),
            )
            .await
        }
    }
}

#[derive(Deserialize)]
pub struct DisconnectForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    connection_id: String,
}

/// **Disconnect**: `revoke_own` (at the provider, then in the ledger). Another person's
/// connection answers exactly like an unknown id (404), and the attempt is recorded.
pub async fn disconnect(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<DisconnectForm>,
) -> Response {
    let signed = match Signed::posting(&state, &headers, &form.csrf, "/me/disconnect").await {
        Ok(s) => s,
        Err(answer) => return answer,
    };
    let at = At {
        method: "POST",
        route: "/me/disconnect",
        target: Some(&form.connection_id),
    };
    let revoked = crate::commands::connections::revoke_own(
        &state,
        &signed.me.user,
        &form.connection_id,
        Some("disconnected by the end user".into()),
        at,
    )
    .await;
    match revoked {
        Ok(_) => signed.respond(
            &state,
            Redirect::to("/me/?done=disconnected").into_response(),
        ),
        Err(CommandError::Domain(crate::domain::DomainError::NotFound(_))) => {
            my_page(
                &state,
                &signed,
                StatusCode::NOT_FOUND,
                None,
                Some("No such connection.".into()),
            )
            .await
        }
        Err(e) => {
            let why = crate::web::form_error(&e);
            my_page(
                &state,
                &signed,
                StatusCode::UNPROCESSABLE_ENTITY,
                None,
                Some(format!("Not disconnected: {why}")),
            )
            .await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_is_taken_once_until_its_flow_ends() {
        let used = UsedFlows::default();
        let now = Instant::now();
        assert!(used.take("s-1", now));
        assert!(!used.take("s-1", now));
        let later = now + Duration::from_secs(FLOW_SECS.unsigned_abs() + 1);
        assert!(used.take("s-1", later));
    }

    #[test]
    fn every_status_has_its_words() {
        let words: std::collections::BTreeSet<&str> = [
            "active",
            "initiated",
            "expired",
            "revoked",
            "error",
            "needs_reconsent",
            "not_connected",
        ]
        .iter()
        .map(|s| status_words(s))
        .collect();
        assert_eq!(words.len(), 7);
    }
}

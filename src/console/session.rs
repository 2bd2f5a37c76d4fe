//! Console sessions in the browser: the cookie, CSRF tokens, sign-up, sign-in, sign-out.
//!
//! The cookie holds `<session token>~<last used, unix seconds>~<MAC>`: the session itself is
//! decided from the member's events in the log (`commands::members::session`: signed out or
//! past its absolute end on any instance means closed everywhere); the MAC'd last-use time
//! (HMAC with the vault's fingerprint key, shared by every instance) ends an idle session
//! without a write per request. The cookie is `__Host-authledger_session` (`Secure`, host
//! only, `Path=/`) when the public URL is https; browsers refuse a `__Host-` cookie without
//! `Secure`, and `Secure` cookies are not kept over plain http, so on a plain-http loopback
//! URL the cookie is `authledger_session` with the same attributes but `Secure`.
//! `HttpOnly` and `SameSite=Lax` always. CSRF: every form of a signed-in page carries an
//! HMAC of the session token, and every POST must come from the console's own origin.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use askama::Template;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use secrecy::SecretString;
use serde::Deserialize;

use super::throttle::Throttle;
use super::{form_error, refused, render, Me};
use crate::app::AppState;
use crate::commands::members::{self, MemberSession, SignInError, SignInOutcome, SESSION_IDLE};
use crate::commands::record_denial;
use crate::domain::member::Member;
use crate::domain::{AccessDenied, DenialReason};
use crate::ledger::{Actor, ActorType};

fn cookie_name(state: &AppState) -> &'static str {
    if secure(state) {
        "__Host-authledger_session"
    } else {
        "authledger_session"
    }
}

pub(super) fn secure(state: &AppState) -> bool {
    state.connections.public_url.starts_with("https://")
}

/// The HMAC that binds a value to this deployment (hex of the vault's fingerprint).
pub(super) fn mac(state: &AppState, purpose: &str, value: &str) -> String {
    let f = state
        .vault
        .fingerprint(format!("console-{purpose}:{value}").as_bytes());
    f.trim_start_matches("hmac-sha256:").to_string()
}

fn set_cookie(state: &AppState, token: &str, now_unix: i64) -> HeaderValue {
    let value = format!(
        "{token}~{now_unix}~{}",
        mac(state, "idle", &format!("{token}~{now_unix}"))
    );
    cookie_header(state, &value, None)
}

fn clear_cookie(state: &AppState) -> HeaderValue {
    cookie_header(state, "", Some(0))
}

fn cookie_header(state: &AppState, value: &str, max_age: Option<u64>) -> HeaderValue {
    named_cookie(state, cookie_name(state), value, max_age)
}

/// A `Set-Cookie` value: host-only, `Path=/`, `HttpOnly`, `SameSite=Lax`, `Secure` on https.
pub(super) fn named_cookie(
    state: &AppState,
    name: &str,
    value: &str,
    max_age: Option<u64>,
) -> HeaderValue {
    let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax");
    if secure(state) {
        c.push_str("; Secure");
    }
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={age}"));
    }
    HeaderValue::from_str(&c).unwrap_or(HeaderValue::from_static("authledger_session=; Max-Age=0"))
}

pub(super) use crate::web::cookie_value;

/// Whether `given` is the MAC of `value` for `purpose`, compared in constant time.
pub(super) fn mac_matches(state: &AppState, purpose: &str, value: &str, given: &str) -> bool {
    subtle::ConstantTimeEq::ct_eq(given.as_bytes(), mac(state, purpose, value).as_bytes()).into()
}

/// The cookie's session token, if the cookie is whole and its last use is recent.
fn cookie_token(state: &AppState, headers: &HeaderMap, now_unix: i64) -> Option<String> {
    let value = cookie_value(headers, cookie_name(state))?;
    let mut parts = value.rsplitn(3, '~');
    let (given_mac, seen, token) = (parts.next()?, parts.next()?, parts.next()?);
    let seen: i64 = seen.parse().ok()?;
    let idle = i64::try_from(SESSION_IDLE.as_secs()).unwrap_or(i64::MAX);
    let fresh = now_unix >= seen && now_unix - seen < idle;
    (fresh && mac_matches(state, "idle", &format!("{token}~{seen}"), given_mac))
        .then(|| token.to_string())
}

/// A signed-in member for this request; answering through it renews the idle clock.
pub struct Signed {
    pub member: MemberSession,
    token: String,
    now_unix: i64,
}

impl Signed {
    pub fn me(&self, state: &AppState) -> Me {
        Me {
            email: self.member.email.clone(),
            role: self.member.caller.role.as_str(),
            csrf: mac(state, "csrf", &self.token),
            manages_keys: crate::api::routes::role_allows(
                self.member.caller.role,
                crate::api::routes::Permission::ManageApiKeys,
            ),
        }
    }

    /// `response` with the cookie renewed (its last use now).
    pub fn respond(&self, state: &AppState, mut response: Response) -> Response {
        response.headers_mut().append(
            header::SET_COOKIE,
            set_cookie(state, &self.token, self.now_unix),
        );
        response
    }

    /// Checks a form's CSRF token and origin; a mismatch is `access.denied` and a 403.
    pub async fn check_form(
        &self,
        state: &AppState,
        headers: &HeaderMap,
        csrf: &str,
        path: &str,
    ) -> Result<(), Response> {
        if same_origin(state, headers) && mac_matches(state, "csrf", &self.token, csrf) {
            return Ok(());
        }
        let denial = AccessDenied {
            method: "POST".into(),
            route: path.to_string(),
            status: 403,
            reason: DenialReason::InvalidCsrf,
            target_id: None,
        };
        let caller = &self.member.caller;
        record_denial(state, Some(&caller.workspace_id), caller.actor(), denial).await;
        Err(refused(
            StatusCode::FORBIDDEN,
            None,
            "Form expired",
            "This form did not come from your current console session. Reload the page and try again.",
        ))
    }
}

/// A POST's `Origin` (browsers send it on form posts) must be the console's own.
pub(super) fn same_origin(state: &AppState, headers: &HeaderMap) -> bool {
    let public = state.connections.public_url.trim_end_matches('/');
    match headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) {
        Some(origin) => public == origin || public.starts_with(&format!("{origin}/")),
        None => true,
    }
}

/// The signed-in member, or the answer to give instead (to the sign-in page).
pub async fn current(state: &AppState, headers: &HeaderMap) -> Result<Signed, Response> {
    let now_unix = state.clock.now().unix_timestamp();
    let to_sign_in = || {
        let mut r = Redirect::to("/console/sign-in").into_response();
        r.headers_mut()
            .append(header::SET_COOKIE, clear_cookie(state));
        r
    };
    let Some(token) = cookie_token(state, headers, now_unix) else {
        return Err(to_sign_in());
    };
    match members::session(state, &token).await {
        Ok(Some(member)) => Ok(Signed {
            member,
            token,
            now_unix,
        }),
        Ok(None) => Err(to_sign_in()),
        Err(e) => Err(refused(
            StatusCode::SERVICE_UNAVAILABLE,
            None,
            "Unavailable",
            &form_error(&e),
        )),
    }
}

pub(super) fn signed_in(state: &AppState, session: &MemberSession) -> Response {
    let now = state.clock.now().unix_timestamp();
    let mut r = Redirect::to("/console/").into_response();
    r.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(state, &session.session.expose(), now),
    );
    r
}

#[derive(Template)]
#[template(path = "sign_in.html")]
struct SignInPage<'a> {
    me: Option<Me>,
    section: &'a str,
    workspace: String,
    email: String,
    error: Option<&'a str>,
}

/// The sign-in page again, with `error` (the SSO start answers with it too).
pub(super) fn sign_in_error(status: StatusCode, workspace: &str, error: &str) -> Response {
    let page = SignInPage {
        me: None,
        section: "",
        workspace: workspace.to_string(),
        email: String::new(),
        error: Some(error),
    };
    render(status, &page)
}

#[derive(Deserialize)]
pub struct SignInQuery {
    #[serde(default)]
    workspace: String,
}

pub async fn sign_in_page(Query(q): Query<SignInQuery>) -> Response {
    let page = SignInPage {
        me: None,
        section: "",
        workspace: q.workspace,
        email: String::new(),
        error: None,
    };
    render(StatusCode::OK, &page)
}

#[derive(Deserialize)]
pub struct SignInForm {
    workspace: String,
    email: String,
    password: SecretString,
}

pub async fn sign_in(
    State(state): State<AppState>,
    Extension(throttle): Extension<Arc<Throttle>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Response {
    let again = |status, error| {
        let page = SignInPage {
            me: None,
            section: "",
            workspace: form.workspace.clone(),
            email: form.email.clone(),
            error: Some(error),
        };
        render(status, &page)
    };
    if !same_origin(&state, &headers) {
        return again(StatusCode::FORBIDDEN, "This form came from another site.");
    }
    let account = format!(
        "{}/{}",
        form.workspace,
        crate::domain::member::member_id(&form.email)
    );
    let address = crate::api::ratelimit::client_key(peer.ip());
    let throttled = throttle.throttled(&account, &address, Instant::now());
    let email = form.email.clone();
    match members::sign_in(
        &state,
        form.workspace.trim(),
        &email,
        form.password,
        throttled,
    )
    .await
    {
        Ok(SignInOutcome::Session(session)) => signed_in(&state, &session),
        Ok(SignInOutcome::SecondFactorNeeded {
            workspace_id,
            member_id,
        }) => super::second_factor::ask_for_code(&state, &workspace_id, &member_id),
        Ok(SignInOutcome::SecondFactorSetUpNeeded {
            workspace_id,
            member_id,
        }) => super::second_factor::ask_for_set_up(&state, &workspace_id, &member_id),
        Err(SignInError::Refused | SignInError::WrongCode) => {
            throttle.failed(&account, &address, Instant::now());
            again(StatusCode::UNAUTHORIZED, "Wrong email or password.")
        }
        Err(SignInError::Throttled) => again(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many failed sign-ins. Try again in 15 minutes.",
        ),
        Err(SignInError::Command(e)) => {
            tracing::warn!(error = %e, "console sign-in failed");
            again(
                StatusCode::SERVICE_UNAVAILABLE,
                "Sign-in is unavailable right now.",
            )
        }
    }
}

#[derive(Template)]
#[template(path = "sign_up.html")]
struct SignUpPage<'a> {
    me: Option<Me>,
    section: &'a str,
    invite: String,
    email: Option<String>,
    error: Option<String>,
    /// The workspace, when it has team SSO on: the invitee may join by SSO instead.
    sso_workspace: Option<String>,
}

#[derive(Deserialize)]
pub struct SignUpQuery {
    #[serde(default)]
    invite: String,
}

/// The invitee's email, while the invite is pending.
async fn invited_email(state: &AppState, invite: &str) -> Option<String> {
    let token = members::MemberToken::parse(invite)?;
    let member: Member = state
        .ledger
        .load(&token.workspace_id, &token.member_id)
        .await
        .ok()?;
    let pending = member.invite.as_ref()?;
    (pending.invite_hash == token.hash()
        && state.clock.now() < pending.expires_at
        && !member.joined())
    .then(|| pending.email.clone())
}

pub async fn sign_up_page(State(state): State<AppState>, Query(q): Query<SignUpQuery>) -> Response {
    let email = invited_email(&state, &q.invite).await;
    let status = if email.is_some() {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    };
    let workspace = members::MemberToken::parse(&q.invite).map(|t| t.workspace_id);
    let sso_workspace = match workspace {
        Some(ws) if email.is_some() && crate::commands::team_sso::enabled(&state, &ws).await => {
            Some(ws)
        }
        _ => None,
    };
    let page = SignUpPage {
        me: None,
        section: "",
        invite: q.invite,
        email,
        error: None,
        sso_workspace,
    };
    render(status, &page)
}

#[derive(Deserialize)]
pub struct SignUpForm {
    invite: String,
    password: SecretString,
}

pub async fn sign_up(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<SignUpForm>,
) -> Response {
    let email = invited_email(&state, &form.invite).await;
    if email.is_none() || !same_origin(&state, &headers) {
        let actor = Actor {
            actor_type: ActorType::Anonymous,
            id: "console-sign-up".into(),
        };
        let denial = AccessDenied {
            method: "POST".into(),
            route: "/console/sign-up".into(),
            status: 404,
            reason: DenialReason::InvalidInvite,
            target_id: None,
        };
        let ws = members::MemberToken::parse(&form.invite).map(|t| t.workspace_id);
        let known = match &ws {
            Some(ws) => state
                .projections
                .workspace(ws)
                .await
                .ok()
                .flatten()
                .is_some(),
            None => false,
        };
        record_denial(&state, ws.as_deref().filter(|_| known), actor, denial).await;
        let page = SignUpPage {
            me: None,
            section: "",
            invite: String::new(),
            error: None,
            email: None,
            sso_workspace: None,
        };
        return render(StatusCode::NOT_FOUND, &page);
    }
    match members::join(&state, &form.invite, form.password).await {
        Ok(session) => signed_in(&state, &session),
        Err(e) => {
            let page = SignUpPage {
                me: None,
                section: "",
                invite: form.invite,
                error: Some(form_error(&e)),
                email,
                sso_workspace: None,
            };
            render(StatusCode::UNPROCESSABLE_ENTITY, &page)
        }
    }
}

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: String,
}

pub async fn sign_out(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    let signed = match current(&state, &headers).await {
        Ok(s) => s,
        Err(answer) => return answer,
    };
    if let Err(answer) = signed
        .check_form(&state, &headers, &form.csrf, "/console/sign-out")
        .await
    {
        return answer;
    }
    if let Err(e) = members::sign_out(&state, &signed.member).await {
        tracing::warn!(error = %e, "console sign-out not recorded");
    }
    let workspace = &signed.member.caller.workspace_id;
    let mut r = Redirect::to(&format!("/console/sign-in?workspace={workspace}")).into_response();
    r.headers_mut()
        .append(header::SET_COOKIE, clear_cookie(&state));
    r
}

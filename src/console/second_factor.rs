//! The second factor in the browser: setting up an authenticator app on the member's own
//! account page (a QR code of the `otpauth://` URI, the key to type in, a first code to
//! confirm), the code step of a sign-in, and an admin's reset on the team page.
//!
//! Between the password and the code, the browser holds a short-lived sign-in cookie
//! (`<workspace>~<member>~<end, unix seconds>~<MAC>`): proof that the password was right,
//! good for five minutes, never a session. The secret being set up travels in the form
//! with a MAC binding it to the member and an end time, so the server keeps no state and
//! only a secret it generated can be confirmed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use askama::Template;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use serde::Deserialize;

use super::pages::{team_page, TeamOutcome};
use super::session::{self, Signed};
use super::throttle::Throttle;
use super::{form_error, render, Me};
use crate::api::routes::RouteId;
use crate::app::AppState;
use crate::commands::members::{MemberSession, SignInError};
use crate::commands::second_factor;
use crate::crypto::totp;
use crate::domain::member::Member;

/// How long the code step of a sign-in stays open after the password.
const PENDING_SECS: i64 = 300;
/// How long a set-up form stays good (the member scans, then types a code).
const SETUP_SECS: i64 = 900;

fn pending_name(state: &AppState) -> &'static str {
    if session::secure(state) {
        "__Host-authledger_sign_in"
    } else {
        "authledger_sign_in"
    }
}

/// After a right password for a member with a second factor: the sign-in cookie, and on
/// to the code page.
pub fn ask_for_code(state: &AppState, workspace_id: &str, member_id: &str) -> Response {
    pending_step(
        state,
        workspace_id,
        member_id,
        "/console/sign-in/second-factor",
    )
}

/// After a right password in a workspace that requires a second factor, for a member
/// without one: the sign-in cookie, and on to setting one up.
pub fn ask_for_set_up(state: &AppState, workspace_id: &str, member_id: &str) -> Response {
    pending_step(state, workspace_id, member_id, "/console/sign-in/set-up")
}

fn pending_step(state: &AppState, workspace_id: &str, member_id: &str, to: &str) -> Response {
    let end = state.clock.now().unix_timestamp() + PENDING_SECS;
    let value = format!("{workspace_id}~{member_id}~{end}");
    let cookie = format!("{value}~{}", session::mac(state, "pending-sign-in", &value));
    let mut r = Redirect::to(to).into_response();
    r.headers_mut().append(
        header::SET_COOKIE,
        session::named_cookie(
            state,
            pending_name(state),
            &cookie,
            Some(PENDING_SECS.unsigned_abs()),
        ),
    );
    r
}

/// (workspace, member) of a whole, unexpired sign-in cookie.
fn pending(state: &AppState, headers: &HeaderMap) -> Option<(String, String)> {
    let cookie = session::cookie_value(headers, pending_name(state))?;
    let (value, given) = cookie.rsplit_once('~')?;
    if !session::mac_matches(state, "pending-sign-in", value, given) {
        return None;
    }
    let mut parts = value.splitn(3, '~');
    let (workspace, member, end) = (parts.next()?, parts.next()?, parts.next()?);
    let end: i64 = end.parse().ok()?;
    (state.clock.now().unix_timestamp() < end).then(|| (workspace.to_string(), member.to_string()))
}

/// The session's cookie set, the sign-in step's cookie ended.
fn signed_in_ending_pending(state: &AppState, member: &MemberSession) -> Response {
    let mut r = session::signed_in(state, member);
    r.headers_mut().append(
        header::SET_COOKIE,
        session::named_cookie(state, pending_name(state), "", Some(0)),
    );
    r
}

fn back_to_sign_in(state: &AppState) -> Response {
    let mut r = Redirect::to("/console/sign-in").into_response();
    r.headers_mut().append(
        header::SET_COOKIE,
        session::named_cookie(state, pending_name(state), "", Some(0)),
    );
    r
}

#[derive(Template)]
#[template(path = "second_factor.html")]
struct CodePage<'a> {
    me: Option<Me>,
    section: &'a str,
    error: Option<&'a str>,
}

pub async fn code_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if pending(&state, &headers).is_none() {
        return back_to_sign_in(&state);
    }
    let page = CodePage {
        me: None,
        section: "",
        error: None,
    };
    render(StatusCode::OK, &page)
}

#[derive(Deserialize)]
pub struct CodeForm {
    code: String,
}

/// The code step: a session on a right, unused code; the same throttle as passwords.
pub async fn submit_code(
    State(state): State<AppState>,
    Extension(throttle): Extension<Arc<Throttle>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<CodeForm>,
) -> Response {
    let Some((workspace, member)) = pending(&state, &headers) else {
        return back_to_sign_in(&state);
    };
    let again = |status, error| {
        let page = CodePage {
            me: None,
            section: "",
            error: Some(error),
        };
        render(status, &page)
    };
    if !session::same_origin(&state, &headers) {
        return again(StatusCode::FORBIDDEN, "This form came from another site.");
    }
    let account = format!("{workspace}/{member}");
    let address = crate::api::ratelimit::client_key(peer.ip());
    let throttled = throttle.throttled(&account, &address, Instant::now());
    match second_factor::complete_sign_in(&state, &workspace, &member, &form.code, throttled).await
    {
        Ok(session) => signed_in_ending_pending(&state, &session),
        Err(SignInError::WrongCode) => {
            throttle.failed(&account, &address, Instant::now());
            again(
                StatusCode::UNAUTHORIZED,
                "That code is wrong or was already used. Enter the code your app shows now.",
            )
        }
        Err(SignInError::Refused) => back_to_sign_in(&state),
        Err(SignInError::Throttled) => again(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many failed sign-ins. Try again in 15 minutes.",
        ),
        Err(SignInError::Command(e)) => {
            tracing::warn!(error = %e, "console second-factor sign-in failed");
            again(
                StatusCode::SERVICE_UNAVAILABLE,
                "Sign-in is unavailable right now.",
            )
        }
    }
}

/// A secret offered for set-up, with the form fields that carry it back.
struct Setup {
    key: String,
    qr_svg: String,
    end: i64,
    proof: String,
}

fn setup(state: &AppState, workspace: &str, member: &str, email: &str) -> Setup {
    let secret = totp::new_secret();
    let key = totp::encode_secret(&secret);
    let end = state.clock.now().unix_timestamp() + SETUP_SECS;
    let issuer = format!("authledger {workspace}");
    let uri = totp::otpauth_uri(&secret, &issuer, email);
    Setup {
        proof: session::mac(
            state,
            "second-factor-setup",
            &format!("{member}~{key}~{end}"),
        ),
        qr_svg: qr_svg(&uri),
        key,
        end,
    }
}

/// The URI as an inline SVG QR code (markup, not script: the CSP allows it).
fn qr_svg(uri: &str) -> String {
    let Ok(code) = qrcode::QrCode::new(uri.as_bytes()) else {
        return String::new();
    };
    let svg = code
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(200, 200)
        .quiet_zone(true)
        .build();
    // Inline in HTML: no XML declaration.
    match svg.find("<svg") {
        Some(start) => svg[start..].to_string(),
        None => String::new(),
    }
}

/// Groups of four, as authenticator apps show keys.
fn spaced(key: &str) -> String {
    key.as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage<'a> {
    me: Option<Me>,
    csrf: String,
    section: &'a str,
    email: String,
    enrolled: bool,
    setup: Option<Setup>,
    spaced_key: String,
    notice: Option<&'a str>,
    error: Option<String>,
}

async fn account_page(
    state: &AppState,
    signed: &Signed,
    status: StatusCode,
    notice: Option<&str>,
    error: Option<String>,
) -> Response {
    let caller = &signed.member.caller;
    let member: Result<Member, _> = state
        .ledger
        .load(&caller.workspace_id, &signed.member.session.member_id)
        .await;
    let enrolled = member.is_ok_and(|m| m.second_factor.is_some());
    let setup = (!enrolled).then(|| {
        let member = &signed.member.session.member_id;
        setup(state, &caller.workspace_id, member, &signed.member.email)
    });
    let me = signed.me(state);
    let page = AccountPage {
        csrf: me.csrf.clone(),
        me: Some(me),
        section: "account",
        email: signed.member.email.clone(),
        enrolled,
        spaced_key: setup.as_ref().map(|s| spaced(&s.key)).unwrap_or_default(),
        setup,
        notice,
        error,
    };
    signed.respond(state, render(status, &page))
}

/// Every member's own page: any role may set up its own second factor.
pub async fn account(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let at = ("GET", "/console/account");
    let signed = signed_for!(state, headers, RouteId::GetWorkspace, at);
    account_page(&state, &signed, StatusCode::OK, None, None).await
}

#[derive(Deserialize)]
pub struct SetupForm {
    csrf: String,
    key: String,
    end: i64,
    proof: String,
    code: String,
}

pub async fn enrol(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<SetupForm>,
) -> Response {
    let at = ("POST", "/console/account/second-factor");
    let signed = signed_for!(state, headers, RouteId::GetWorkspace, at);
    if let Err(answer) = signed.check_form(&state, &headers, &form.csrf, at.1).await {
        return answer;
    }
    if !offered(&state, &signed.member.session.member_id, &form) {
        let error = "This set-up form expired. Scan the new code below.".to_string();
        return account_page(
            &state,
            &signed,
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
            Some(error),
        )
        .await;
    }
    match second_factor::enrol(&state, &signed.member, &form.key, &form.code).await {
        Ok(()) => {
            let notice = "Two-step sign-in is on. Each sign-in now asks for a code from your app.";
            account_page(&state, &signed, StatusCode::OK, Some(notice), None).await
        }
        Err(e) => {
            let error = form_error(&e);
            account_page(
                &state,
                &signed,
                StatusCode::UNPROCESSABLE_ENTITY,
                None,
                Some(error),
            )
            .await
        }
    }
}

/// Whether the set-up form carries a key this service offered this member, still fresh.
fn offered(state: &AppState, member: &str, form: &SetupForm) -> bool {
    let bound = format!("{member}~{}~{}", form.key, form.end);
    let fresh = state.clock.now().unix_timestamp() < form.end;
    fresh && session::mac_matches(state, "second-factor-setup", &bound, &form.proof)
}

#[derive(Template)]
#[template(path = "second_factor_set_up.html")]
struct SetUpPage<'a> {
    me: Option<Me>,
    section: &'a str,
    setup: Setup,
    spaced_key: String,
    error: Option<String>,
}

async fn set_up_page(
    state: &AppState,
    (workspace, member): (&str, &str),
    status: StatusCode,
    error: Option<String>,
) -> Response {
    let email = state
        .ledger
        .load::<Member>(workspace, member)
        .await
        .ok()
        .and_then(|m| m.email)
        .unwrap_or_default();
    let setup = setup(state, workspace, member, &email);
    let page = SetUpPage {
        me: None,
        section: "",
        spaced_key: spaced(&setup.key),
        setup,
        error,
    };
    render(status, &page)
}

/// The set-up step of a sign-in in a workspace that requires a second factor.
pub async fn sign_in_set_up_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some((workspace, member)) = pending(&state, &headers) else {
        return back_to_sign_in(&state);
    };
    set_up_page(&state, (&workspace, &member), StatusCode::OK, None).await
}

#[derive(Deserialize)]
pub struct SignInSetupForm {
    key: String,
    end: i64,
    proof: String,
    code: String,
}

pub async fn sign_in_set_up(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<SignInSetupForm>,
) -> Response {
    let Some((workspace, member)) = pending(&state, &headers) else {
        return back_to_sign_in(&state);
    };
    let at = (workspace.as_str(), member.as_str());
    if !session::same_origin(&state, &headers) {
        let error = "This form came from another site.".to_string();
        return set_up_page(&state, at, StatusCode::FORBIDDEN, Some(error)).await;
    }
    let setup = SetupForm {
        csrf: String::new(),
        key: form.key,
        end: form.end,
        proof: form.proof,
        code: form.code,
    };
    if !offered(&state, &member, &setup) {
        let error = "This set-up form expired. Scan the new code below.".to_string();
        return set_up_page(&state, at, StatusCode::UNPROCESSABLE_ENTITY, Some(error)).await;
    }
    match second_factor::set_up_at_sign_in(&state, &workspace, &member, &setup.key, &setup.code)
        .await
    {
        Ok(session) => signed_in_ending_pending(&state, &session),
        Err(e) => {
            let error = form_error(&e);
            set_up_page(&state, at, StatusCode::UNPROCESSABLE_ENTITY, Some(error)).await
        }
    }
}

#[derive(Deserialize)]
pub struct RequirementForm {
    csrf: String,
    required: String,
}

/// An admin requires a second factor of every member, or stops requiring it.
pub async fn set_requirement(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<RequirementForm>,
) -> Response {
    let at = ("POST", "/console/team/second-factor/requirement");
    let signed = signed_for!(state, headers, RouteId::SetSecondFactorRequirement, at);
    if let Err(answer) = signed.check_form(&state, &headers, &form.csrf, at.1).await {
        return answer;
    }
    let required = form.required == "true";
    let outcome =
        match second_factor::set_requirement(&state, &signed.member.caller, required).await {
            Ok(()) if required => TeamOutcome {
                notice: Some(
                    "Two-step sign-in is now required: members without it set it up at their next sign-in."
                        .into(),
                ),
                ..TeamOutcome::default()
            },
            Ok(()) => TeamOutcome {
                notice: Some("Two-step sign-in is now each member's choice.".into()),
                ..TeamOutcome::default()
            },
            Err(e) => TeamOutcome {
                error: Some(form_error(&e)),
                ..TeamOutcome::default()
            },
        };
    let status = if outcome.error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    team_page(&state, &signed, status, outcome).await
}

#[derive(Deserialize)]
pub struct ResetForm {
    csrf: String,
    member: String,
}

/// An admin resets a member's second factor (the permission of
/// `POST /v1/members/{id}/second-factor/reset`).
pub async fn reset(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<ResetForm>,
) -> Response {
    let at = ("POST", "/console/team/second-factor/reset");
    let signed = signed_for!(state, headers, RouteId::ResetMemberSecondFactor, at);
    if let Err(answer) = signed.check_form(&state, &headers, &form.csrf, at.1).await {
        return answer;
    }
    let outcome = match second_factor::reset(&state, &signed.member.caller, &form.member).await {
        Ok(()) => TeamOutcome {
            notice: Some("Second factor reset; their sessions ended.".into()),
            ..TeamOutcome::default()
        },
        Err(e) => TeamOutcome {
            error: Some(form_error(&e)),
            ..TeamOutcome::default()
        },
    };
    let status = if outcome.error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    team_page(&state, &signed, status, outcome).await
}

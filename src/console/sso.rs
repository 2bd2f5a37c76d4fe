//! Team sign-in with the organisation's own OpenID Connect provider (SSO), in the browser:
//! the sign-in page's **Sign in with SSO** button starts the code flow
//! (`POST /console/sso/start`, answered by a page that moves on to the provider by a meta
//! refresh, since the sign-in page's CSP `form-action 'self'` forbids a form's redirect to
//! another origin), the provider sends the browser back to
//! `/console/sso/callback`, and `commands::team_sso` does the rest.
//!
//! Between start and callback the browser holds a short-lived flow cookie
//! (`<workspace>~<state>~<nonce>~<PKCE verifier>~<end, unix seconds>~<MAC>`, `HttpOnly`,
//! `SameSite=Lax` so the provider's redirect carries it): good for ten minutes, for one
//! callback. The callback ends it whatever happens; its `state` must equal the query's; a
//! state already seen by this instance is refused before anything goes to the provider
//! (and the provider's code is single-use, RFC 6749 §4.1.2, so a replay elsewhere fails
//! there). Every refusal is recorded (`access.denied`) and shown on a page that says why.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use askama::Template;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use axum::{Extension, Form};
use serde::Deserialize;

use super::session::{self, same_origin};
use super::throttle::Throttle;
use super::{render, Me};
use crate::app::AppState;
use crate::commands::members::SignInError;
use crate::commands::team_sso::{self, SsoError};
use crate::domain::DenialReason;
use crate::oauth::oidc::Flow;

/// How long a started SSO sign-in may take at the provider.
const FLOW_SECS: i64 = 600;

fn flow_cookie(state: &AppState) -> &'static str {
    if session::secure(state) {
        "__Host-authledger_sso"
    } else {
        "authledger_sso"
    }
}

fn ending_flow(state: &AppState, mut r: Response) -> Response {
    r.headers_mut().append(
        header::SET_COOKIE,
        session::named_cookie(state, flow_cookie(state), "", Some(0)),
    );
    r
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
        let ttl = Duration::from_secs(FLOW_SECS.unsigned_abs());
        used.insert(key, now + ttl);
        true
    }
}

#[derive(Template)]
#[template(path = "sso_continue.html")]
struct Continue<'a> {
    me: Option<Me>,
    section: &'a str,
    url: String,
}

#[derive(Deserialize)]
pub struct StartForm {
    #[serde(default)]
    workspace: String,
}

/// The sign-in page's SSO button: the flow cookie, and on to the provider.
pub async fn start(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<StartForm>,
) -> Response {
    let workspace = form.workspace.trim();
    if !same_origin(&state, &headers) {
        return session::sign_in_error(
            StatusCode::FORBIDDEN,
            workspace,
            "This form came from another site.",
        );
    }
    match team_sso::start(&state, workspace).await {
        Ok((flow, url)) => {
            let end = state.clock.now().unix_timestamp() + FLOW_SECS;
            let value = format!(
                "{workspace}~{}~{}~{}~{end}",
                flow.state, flow.nonce, flow.code_verifier
            );
            let cookie = format!("{value}~{}", session::mac(&state, "sso-flow", &value));
            // A page that moves on by itself (meta refresh, no script), not a redirect: the
            // sign-in page's `form-action 'self'` forbids a form's redirect to another origin.
            let page = Continue {
                me: None,
                section: "",
                url,
            };
            let mut r = render(StatusCode::OK, &page);
            r.headers_mut().append(
                header::SET_COOKIE,
                session::named_cookie(
                    &state,
                    flow_cookie(&state),
                    &cookie,
                    Some(FLOW_SECS.unsigned_abs()),
                ),
            );
            r
        }
        Err(SsoError::NotConfigured) => session::sign_in_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            workspace,
            "Single sign-on is not set up for this workspace. Sign in with your email and password.",
        ),
        Err(e) => {
            tracing::warn!(error = %e, "team SSO could not start");
            session::sign_in_error(
                StatusCode::SERVICE_UNAVAILABLE,
                workspace,
                "Your organisation's identity provider cannot be reached right now. Try again later.",
            )
        }
    }
}

/// (workspace, flow) of a whole, unexpired flow cookie.
fn kept_flow(state: &AppState, headers: &HeaderMap) -> Option<(String, Flow)> {
    let cookie = session::cookie_value(headers, flow_cookie(state))?;
    let (value, given) = cookie.rsplit_once('~')?;
    if !session::mac_matches(state, "sso-flow", value, given) {
        return None;
    }
    let parts: Vec<&str> = value.split('~').collect();
    let [workspace, st, nonce, verifier, end] = parts.as_slice() else {
        return None;
    };
    let end: i64 = end.parse().ok()?;
    (state.clock.now().unix_timestamp() < end).then(|| {
        (
            workspace.to_string(),
            Flow {
                state: st.to_string(),
                nonce: nonce.to_string(),
                code_verifier: verifier.to_string(),
            },
        )
    })
}

#[derive(Template)]
#[template(path = "sso_refused.html")]
struct Refused<'a> {
    me: Option<Me>,
    section: &'a str,
    heading: &'a str,
    message: &'a str,
    workspace: String,
}

fn refused_page(status: StatusCode, workspace: &str, heading: &str, message: &str) -> Response {
    let page = Refused {
        me: None,
        section: "",
        heading,
        message,
        workspace: workspace.to_string(),
    };
    render(status, &page)
}

/// What a refusal says to the person.
fn explain(reason: DenialReason) -> (StatusCode, &'static str, &'static str) {
    match reason {
        DenialReason::UnknownMember => (
            StatusCode::FORBIDDEN,
            "Not a member of this workspace",
            "Your identity provider signed you in, but no member of this workspace has that \
             email address. Ask an admin of the workspace to invite you.",
        ),
        DenialReason::SsoEmailUnverified => (
            StatusCode::FORBIDDEN,
            "Email address not verified",
            "Your identity provider did not confirm that your email address is verified, so it \
             cannot sign you in here. Verify the address at your provider, then try again.",
        ),
        DenialReason::SsoSubjectMismatch => (
            StatusCode::FORBIDDEN,
            "Another account at your identity provider",
            "This workspace's member with that email address signed in before through another \
             account at your identity provider. Sign in with that account, or ask an admin.",
        ),
        DenialReason::InvalidSsoState => (
            StatusCode::BAD_REQUEST,
            "Sign-in link expired or already used",
            "This sign-in did not start in this browser, took too long, or was already \
             completed. Start again from the sign-in page.",
        ),
        DenialReason::SignInThrottled => (
            StatusCode::TOO_MANY_REQUESTS,
            "Too many failed sign-ins",
            "Too many failed sign-ins. Try again in 15 minutes.",
        ),
        _ => (
            StatusCode::BAD_GATEWAY,
            "Your identity provider refused the sign-in",
            "The sign-in with your organisation's identity provider did not complete. Try \
             again; if it keeps failing, ask an admin to check the single sign-on settings.",
        ),
    }
}

fn refusal(workspace: &str, reason: DenialReason) -> Response {
    let (status, heading, message) = explain(reason);
    refused_page(status, workspace, heading, message)
}

#[derive(Deserialize)]
pub struct CallbackQuery {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    error: Option<String>,
    /// The issuer that answered (RFC 9207), when the provider names it.
    #[serde(default)]
    iss: Option<String>,
}

/// The provider's redirect back: a session, or a page that says why not. The flow cookie
/// ends either way.
pub async fn callback(
    State(state): State<AppState>,
    Extension(throttle): Extension<Arc<Throttle>>,
    Extension(used): Extension<Arc<UsedFlows>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> Response {
    let answer = callback_answer(&state, &throttle, &used, peer, &headers, q).await;
    ending_flow(&state, answer)
}

async fn callback_answer(
    state: &AppState,
    throttle: &Throttle,
    used: &UsedFlows,
    peer: SocketAddr,
    headers: &HeaderMap,
    q: CallbackQuery,
) -> Response {
    let given = q.state.unwrap_or_default();
    let Some((workspace, flow)) = kept_flow(state, headers) else {
        // The state names the workspace it was made for (a claim, used only to file the
        // refusal where its admins look).
        let named = given
            .split_once('.')
            .map(|(ws, _)| ws)
            .filter(|ws| crate::ledger::AggregateKey::new(*ws, "workspace", *ws).is_ok());
        team_sso::bad_state(state, named).await;
        return refusal(named.unwrap_or_default(), DenialReason::InvalidSsoState);
    };
    let same: bool = subtle::ConstantTimeEq::ct_eq(given.as_bytes(), flow.state.as_bytes()).into();
    if !same || !used.take(&flow.state, Instant::now()) {
        team_sso::bad_state(state, Some(&workspace)).await;
        return refusal(&workspace, DenialReason::InvalidSsoState);
    }
    if q.error.is_some() {
        team_sso::provider_refused(state, &workspace).await;
        return refusal(&workspace, DenialReason::SsoProviderError);
    }
    let Some(code) = q.code.filter(|c| !c.is_empty() && c.len() <= 2048) else {
        team_sso::provider_refused(state, &workspace).await;
        return refusal(&workspace, DenialReason::SsoProviderError);
    };
    // Whose sign-in it is is known only after the exchange: the account throttled is this
    // address's SSO sign-ins in this workspace (and the address's failures overall).
    let address = crate::api::ratelimit::client_key(peer.ip());
    let account = format!("{workspace}/sso/{address}");
    let throttled = throttle.throttled(&account, &address, Instant::now());
    match team_sso::complete(
        state,
        &workspace,
        &flow,
        (&code, q.iss.as_deref()),
        throttled,
    )
    .await
    {
        Ok(session) => session::signed_in(state, &session),
        Err(SsoError::Refused(reason)) => {
            throttle.failed(&account, &address, Instant::now());
            refusal(&workspace, reason)
        }
        Err(SsoError::SignIn(SignInError::Throttled)) => {
            refusal(&workspace, DenialReason::SignInThrottled)
        }
        Err(SsoError::NotConfigured) => {
            team_sso::bad_state(state, Some(&workspace)).await;
            refusal(&workspace, DenialReason::InvalidSsoState)
        }
        Err(e) => {
            tracing::warn!(error = %e, "team SSO sign-in failed");
            refused_page(
                StatusCode::SERVICE_UNAVAILABLE,
                &workspace,
                "Sign-in unavailable",
                "Sign-in is unavailable right now. Try again later.",
            )
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
        assert!(used.take("s-2", now));
        let later = now + Duration::from_secs(FLOW_SECS.unsigned_abs() + 1);
        assert!(
            used.take("s-1", later),
            "forgotten once its flow could no longer come back"
        );
    }

    #[test]
    fn every_refusal_says_something_of_its_own() {
        let reasons = [
            DenialReason::UnknownMember,
            DenialReason::SsoEmailUnverified,
            DenialReason::SsoSubjectMismatch,
            DenialReason::InvalidSsoState,
            DenialReason::SsoProviderError,
        ];
        let headings: std::collections::BTreeSet<&str> =
            reasons.iter().map(|r| explain(*r).1).collect();
        assert_eq!(headings.len(), reasons.len());
    }
}

//! The Identity provider screen: the end users' identity provider (whose JWTs identify the
//! workspace's end users: issuer, audience, JWKS URL) and team SSO (the organisation's own
//! OpenID Connect provider for console sign-in: issuer, client id, a write-only client
//! secret shown only as its fingerprint, the redirect URI to register there, on/off).
//! The end users' provider also takes the client id and write-only client secret of their
//! browser sign-in at `/me/` (the secret shown only as its fingerprint, the redirect URI to
//! register shown beside them).
//! Both through the API's commands, under the permission of
//! `PUT /v1/workspace/identity-provider`; the destination policy judges every URL when it
//! is saved.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Form;
use secrecy::SecretString;
use serde::Deserialize;

use super::pages::unavailable;
use super::session::Signed;
use super::{form_error, render, Me};
use crate::api::routes::RouteId;
use crate::app::AppState;
use crate::commands::team_sso::{self, TeamSsoInput, TeamSsoView};
use crate::commands::IdentityProviderInput;
use crate::domain::workspace::Workspace;
use crate::domain::IdentityProviderConfigured;

const ROUTE: RouteId = RouteId::ConfigureIdentityProvider;

#[derive(Template)]
#[template(path = "identity_provider.html")]
struct Page<'a> {
    me: Option<Me>,
    csrf: String,
    section: &'a str,
    end_users: IdentityProviderConfigured,
    end_users_set: bool,
    /// The end users' client id as the form shows it, and the stored secret's fingerprint.
    end_users_client_id: String,
    end_users_secret_fingerprint: Option<String>,
    /// The redirect URI to register for end users' browser sign-in (`/me/`).
    end_users_redirect_uri: String,
    sso: Option<TeamSsoView>,
    /// What the SSO form shows (the settings, or what was just entered and refused).
    sso_issuer: String,
    sso_client_id: String,
    sso_enabled: bool,
    redirect_uri: String,
    notice: Option<&'a str>,
    error: Option<String>,
    /// Which form the notice or error belongs to: `end-users` or `team-sso`.
    about: &'a str,
}

#[derive(Default)]
struct Outcome<'a> {
    notice: Option<&'a str>,
    error: Option<String>,
    about: &'a str,
    /// The SSO form's entries to show again after a refusal.
    sso_entered: Option<(String, String, bool)>,
    end_users_entered: Option<IdentityProviderConfigured>,
}

async fn page(state: &AppState, signed: &Signed, status: StatusCode, o: Outcome<'_>) -> Response {
    let workspace_id = &signed.member.caller.workspace_id;
    let ws: Workspace = match state.ledger.load(workspace_id, workspace_id).await {
        Ok(ws) => ws,
        Err(e) => return unavailable(signed, state, &e.into()),
    };
    let sso = match team_sso::settings(state, workspace_id).await {
        Ok(sso) => sso,
        Err(e) => return unavailable(signed, state, &e),
    };
    let end_users_set = ws.identity_provider.is_some();
    let end_users =
        o.end_users_entered
            .or(ws.identity_provider)
            .unwrap_or(IdentityProviderConfigured {
                issuer: String::new(),
                audience: String::new(),
                jwks_url: String::new(),
                client_id: None,
                client_secret: None,
            });
    let end_users_client_id = end_users.client_id.clone().unwrap_or_default();
    let end_users_secret_fingerprint = end_users
        .client_secret
        .as_ref()
        .map(|s| s.fingerprint.clone());
    let (sso_issuer, sso_client_id, sso_enabled) = o.sso_entered.unwrap_or_else(|| match &sso {
        Some(s) => (s.issuer.clone(), s.client_id.clone(), s.enabled),
        None => (String::new(), String::new(), true),
    });
    let me = signed.me(state);
    let p = Page {
        csrf: me.csrf.clone(),
        me: Some(me),
        section: "identity-provider",
        end_users,
        end_users_set,
        end_users_client_id,
        end_users_secret_fingerprint,
        end_users_redirect_uri: crate::commands::end_user_sign_in::redirect_uri(state),
        sso,
        sso_issuer,
        sso_client_id,
        sso_enabled,
        redirect_uri: team_sso::redirect_uri(state),
        notice: o.notice,
        error: o.error,
        about: o.about,
    };
    signed.respond(state, render(status, &p))
}

pub async fn show(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let at = ("GET", "/console/identity-provider");
    let signed = signed_for!(state, headers, ROUTE, at);
    page(&state, &signed, StatusCode::OK, Outcome::default()).await
}

#[derive(Deserialize)]
pub struct EndUsersForm {
    csrf: String,
    issuer: String,
    audience: String,
    jwks_url: String,
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    client_secret: Option<SecretString>,
}

pub async fn end_users(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<EndUsersForm>,
) -> Response {
    let at = ("POST", "/console/identity-provider/end-users");
    let signed = signed_for!(state, headers, ROUTE, at);
    if let Err(answer) = signed.check_form(&state, &headers, &form.csrf, at.1).await {
        return answer;
    }
    // What the form shows again after a refusal (never the secret).
    let entered = IdentityProviderConfigured {
        issuer: form.issuer.trim().to_string(),
        audience: form.audience.trim().to_string(),
        jwks_url: form.jwks_url.trim().to_string(),
        client_id: Some(form.client_id.trim().to_string()),
        client_secret: None,
    };
    let input = IdentityProviderInput {
        issuer: form.issuer,
        audience: form.audience,
        jwks_url: form.jwks_url,
        client_id: crate::commands::BrowserClientId::Set(form.client_id),
        client_secret: form.client_secret,
    };
    let caller = &signed.member.caller;
    let (status, outcome) =
        match crate::commands::configure_identity_provider(&state, caller, input).await {
            Ok(_) => (
                StatusCode::OK,
                Outcome {
                    notice: Some("End users' identity provider saved."),
                    about: "end-users",
                    ..Outcome::default()
                },
            ),
            Err(e) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                Outcome {
                    error: Some(form_error(&e)),
                    about: "end-users",
                    end_users_entered: Some(entered),
                    ..Outcome::default()
                },
            ),
        };
    page(&state, &signed, status, outcome).await
}

#[derive(Deserialize)]
pub struct TeamSsoForm {
    csrf: String,
    issuer: String,
    client_id: String,
    #[serde(default)]
    client_secret: Option<SecretString>,
    /// A checkbox: present (`on`) when ticked.
    #[serde(default)]
    enabled: Option<String>,
}

pub async fn team_sso(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<TeamSsoForm>,
) -> Response {
    let at = ("POST", "/console/identity-provider/team-sso");
    let signed = signed_for!(state, headers, ROUTE, at);
    if let Err(answer) = signed.check_form(&state, &headers, &form.csrf, at.1).await {
        return answer;
    }
    let enabled = form.enabled.is_some();
    let entered = (form.issuer.clone(), form.client_id.clone(), enabled);
    let input = TeamSsoInput {
        issuer: form.issuer,
        client_id: form.client_id,
        client_secret: form.client_secret,
        enabled,
    };
    let (status, outcome) = match team_sso::configure(&state, &signed.member.caller, input).await {
        Ok(()) => (
            StatusCode::OK,
            Outcome {
                notice: Some(if enabled {
                    "Single sign-on saved: members can sign in with your identity provider."
                } else {
                    "Single sign-on saved and turned off: members sign in with their passwords."
                }),
                about: "team-sso",
                ..Outcome::default()
            },
        ),
        Err(e) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Outcome {
                error: Some(form_error(&e)),
                about: "team-sso",
                sso_entered: Some(entered),
                ..Outcome::default()
            },
        ),
    };
    page(&state, &signed, status, outcome).await
}

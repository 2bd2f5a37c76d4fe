//! The API keys screen: list, create with a role and an expiry (the key shown once, with a
//! copy button), revoke. The same commands and the same route permissions as
//! `/v1/api-keys`.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Form;
use secrecy::ExposeSecret;
use serde::Deserialize;

use super::pages::unavailable;
use super::session::Signed;
use super::{form_error, render, Me};
use crate::api::routes::RouteId;
use crate::app::AppState;
use crate::domain::Role;
use crate::projector::store::ApiKeyRow;

#[derive(Template)]
#[template(path = "api_keys.html")]
struct ApiKeys<'a> {
    me: Option<Me>,
    csrf: String,
    section: &'a str,
    rows: Vec<ApiKeyRow>,
    new_key: Option<String>,
    notice: Option<String>,
    error: Option<String>,
}

/// What a form did: the new key (shown this once), a notice, or an error.
#[derive(Default)]
struct Outcome {
    new_key: Option<String>,
    notice: Option<String>,
    error: Option<String>,
}

async fn keys_page(state: &AppState, signed: &Signed, status: StatusCode, o: Outcome) -> Response {
    let rows = match state
        .projections
        .api_keys(&signed.member.caller.workspace_id)
        .await
    {
        Ok(rows) => rows,
        Err(e) => return unavailable(signed, state, &e.into()),
    };
    let me = signed.me(state);
    let page = ApiKeys {
        csrf: me.csrf.clone(),
        me: Some(me),
        section: "api-keys",
        rows,
        new_key: o.new_key,
        notice: o.notice,
        error: o.error,
    };
    signed.respond(state, render(status, &page))
}

fn failed(message: String) -> (StatusCode, Outcome) {
    let o = Outcome {
        error: Some(message),
        ..Outcome::default()
    };
    (StatusCode::UNPROCESSABLE_ENTITY, o)
}

pub async fn page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let at = ("GET", "/console/api-keys");
    let signed = signed_for!(state, headers, RouteId::ListApiKeys, at);
    keys_page(&state, &signed, StatusCode::OK, Outcome::default()).await
}

#[derive(Deserialize)]
pub struct CreateForm {
    csrf: String,
    name: String,
    role: String,
    #[serde(default)]
    expires_in_days: String,
}

pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<CreateForm>,
) -> Response {
    let at = ("POST", "/console/api-keys");
    let signed = signed_for!(state, headers, RouteId::CreateApiKey, at);
    if let Err(answer) = signed.check_form(&state, &headers, &form.csrf, at.1).await {
        return answer;
    }
    let (status, outcome) = match parse_create(&state, &form) {
        Err(message) => failed(message),
        Ok((role, expires_at)) => {
            let name = form.name.trim().to_string();
            let caller = &signed.member.caller;
            match crate::commands::create_api_key(&state, caller, name, role, expires_at).await {
                Ok(created) => (
                    StatusCode::OK,
                    Outcome {
                        new_key: Some(created.key.expose_secret().to_string()),
                        ..Outcome::default()
                    },
                ),
                Err(e) => failed(form_error(&e)),
            }
        }
    };
    keys_page(&state, &signed, status, outcome).await
}

/// The role and the expiry a create form asks for, or what is wrong with them.
fn parse_create(
    state: &AppState,
    form: &CreateForm,
) -> Result<(Role, Option<time::OffsetDateTime>), String> {
    let role = Role::parse(&form.role).ok_or("Choose a role.")?;
    let days = form.expires_in_days.trim();
    if days.is_empty() {
        return Ok((role, None));
    }
    let days: i64 = days
        .parse()
        .ok()
        .filter(|d| (1..=3650).contains(d))
        .ok_or("Expiry must be 1 to 3650 days, or empty.")?;
    Ok((role, Some(state.clock.now() + time::Duration::days(days))))
}

#[derive(Deserialize)]
pub struct RevokeForm {
    csrf: String,
    id: String,
}

pub async fn revoke(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<RevokeForm>,
) -> Response {
    let at = ("POST", "/console/api-keys/revoke");
    let signed = signed_for!(state, headers, RouteId::RevokeApiKey, at);
    if let Err(answer) = signed.check_form(&state, &headers, &form.csrf, at.1).await {
        return answer;
    }
    let (status, outcome) =
        match crate::commands::revoke_api_key(&state, &signed.member.caller, &form.id).await {
            Ok(()) => (
                StatusCode::OK,
                Outcome {
                    notice: Some("API key revoked.".into()),
                    ..Outcome::default()
                },
            ),
            Err(e) => failed(form_error(&e)),
        };
    keys_page(&state, &signed, status, outcome).await
}

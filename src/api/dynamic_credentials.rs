//! `POST /v1/connections/{id}/dynamic-credentials`: a short-lived database user for an
//! agent (`commands::dynamic_credentials`), its password answered once and never cached.

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use secrecy::ExposeSecret as _;
use serde_json::json;

use super::agents::refuse;
use super::extract::ApiJson;
use super::routes::Route;
use crate::app::AppState;
use crate::commands::dynamic_credentials::{self, IssueInput};
use crate::commands::Caller;
use crate::gateway::Authority;
use crate::projector::plan::rfc3339;

pub async fn issue(
    State(state): State<AppState>,
    Extension(route): Extension<Route>,
    Extension(caller): Extension<Caller>,
    authority: Option<Extension<Authority>>,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<IssueInput>,
) -> Response {
    let at = route.at(Some(&id));
    let token = authority.as_ref().and_then(|Extension(a)| a.token());
    match dynamic_credentials::issue(&state, &caller, token, &id, input).await {
        Ok(issued) => {
            let mut resp = (
                StatusCode::CREATED,
                Json(json!({
                    "id": issued.id,
                    "connection_id": id,
                    "username": issued.username,
                    "password": issued.password.expose_secret(),
                    "host": issued.host,
                    "port": issued.port,
                    "database": issued.database,
                    "grants": issued.grants,
                    "expires_at": rfc3339(issued.expires_at),
                })),
            )
                .into_response();
            resp.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            resp
        }
        Err(e) => refuse(&state, caller.actor(), &caller.workspace_id, at, e).await,
    }
}

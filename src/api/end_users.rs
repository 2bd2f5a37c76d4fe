//! The workspace's identity provider (admin) and what end users can do with its JWTs.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;

use super::error::ApiError;
use super::extract::ApiJson;
use crate::app::AppState;
use crate::commands::{self, Caller, EndUser};
use crate::domain::IdentityProviderConfigured;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityProviderBody {
    pub issuer: String,
    pub audience: String,
    pub jwks_url: String,
}

pub async fn configure_identity_provider(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<IdentityProviderBody>,
) -> Result<Response, ApiError> {
    let idp = IdentityProviderConfigured {
        issuer: body.issuer,
        audience: body.audience,
        jwks_url: body.jwks_url,
    };
    commands::configure_identity_provider(&state, &caller, idp.clone()).await?;
    Ok(
        Json(json!({ "issuer": idp.issuer, "audience": idp.audience, "jwks_url": idp.jwks_url }))
            .into_response(),
    )
}

/// Who the end user is, as authledger sees them.
pub async fn me(Extension(user): Extension<EndUser>) -> Response {
    Json(json!({ "workspace_id": user.workspace_id, "user_id": user.user_id })).into_response()
}

//! The one error type of the HTTP edge: maps command errors to problem+json (the mapping
//! is `commands::problem`, shared with the MCP face) and hides internals (they are logged).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::problem::Problem;
use crate::commands::CommandError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    BadRequest(String),
}

impl From<crate::projector::ProjectionError> for ApiError {
    fn from(e: crate::projector::ProjectionError) -> Self {
        ApiError::Command(CommandError::Projection(e))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let p = match self {
            ApiError::NotFound(what) => Problem::not_found(what),
            ApiError::BadRequest(d) => Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid-request",
                "Invalid request",
                Some(d),
            ),
            ApiError::Command(e) => Problem::from(&e),
        };
        p.into_response()
    }
}

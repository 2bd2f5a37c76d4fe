//! The one error type of the HTTP edge: maps command errors to problem+json and hides
//! internals (they are logged).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::problem::Problem;
use crate::commands::CommandError;
use crate::domain::DomainError;
use crate::ledger::{LedgerError, LogError};

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
            ApiError::Command(CommandError::NotYetVisible { position, reason }) => {
                return not_yet_visible(position, &reason)
            }
            ApiError::NotFound(what) => Problem::new(
                StatusCode::NOT_FOUND,
                "not-found",
                &format!("No such {what}"),
                None,
            ),
            ApiError::BadRequest(d) => Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid-request",
                "Invalid request",
                Some(d),
            ),
            ApiError::Command(CommandError::Domain(d)) => match d {
                DomainError::NotFound(what) => Problem::new(
                    StatusCode::NOT_FOUND,
                    "not-found",
                    &format!("No such {what}"),
                    None,
                ),
                DomainError::AlreadyExists(_) | DomainError::Rejected(_) => Problem::new(
                    StatusCode::CONFLICT,
                    "conflict",
                    "Conflicts with the current state",
                    Some(d.to_string()),
                ),
                DomainError::Invalid { .. } => Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "validation-failed",
                    "The request is not valid",
                    Some(d.to_string()),
                ),
                DomainError::Undecodable(_) => internal(&d),
                // Token and approval refusals are mapped by the agent routes; reaching here
                // means a state conflict all the same.
                DomainError::Token(_) | DomainError::Approval(_) => Problem::new(
                    StatusCode::CONFLICT,
                    "conflict",
                    "Conflicts with the current state",
                    Some(d.to_string()),
                ),
            },
            ApiError::Command(CommandError::Ledger(LedgerError::Log(LogError::Unavailable(e)))) => {
                tracing::warn!(error = %e, "event log unavailable");
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "The ledger is unavailable; nothing was written",
                    None,
                )
            }
            ApiError::Command(CommandError::Ledger(LedgerError::Contended(..))) => Problem::new(
                StatusCode::CONFLICT,
                "contended",
                "Too many concurrent changes; retry",
                None,
            ),
            ApiError::Command(CommandError::Crypto(crate::crypto::CryptoError::Store(e))) => {
                tracing::warn!(error = %e, "data-key store unavailable");
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "Secret storage is unavailable; nothing was written",
                    None,
                )
            }
            ApiError::Command(e) => internal(&e),
        };
        p.into_response()
    }
}

/// A write that succeeded but cannot be read back yet: 503 (retry the read with
/// `?min_position=`), never a 404 that says it did not happen.
fn not_yet_visible(position: u64, reason: &str) -> Response {
    tracing::warn!(position, reason, "write recorded but not yet visible");
    let mut response = Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "projection-lagging",
        "Recorded, but not yet visible",
        Some(format!(
            "the change is recorded at log position {position} but cannot be shown yet: \
             {reason}; read it again with ?min_position={position}"
        )),
    )
    .with("position", serde_json::json!(position))
    .into_response();
    response.headers_mut().insert(
        axum::http::header::RETRY_AFTER,
        axum::http::HeaderValue::from_static("1"),
    );
    response
}

fn internal(e: &dyn std::fmt::Display) -> Problem {
    tracing::error!(error = %e, "internal error");
    Problem::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "Internal error",
        None,
    )
}

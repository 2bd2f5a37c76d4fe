//! A JSON body extractor whose rejections are problem+json (400 malformed, 413 too large,
//! 415 wrong content type, 422 wrong shape).

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use super::problem::Problem;

pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(rejection) => Err(problem_of(&rejection)),
        }
    }
}

fn problem_of(r: &JsonRejection) -> Problem {
    let status = r.status();
    let (kind, title) = match status {
        StatusCode::PAYLOAD_TOO_LARGE => ("payload-too-large", "Request body too large"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            "unsupported-media-type",
            "Expected Content-Type: application/json",
        ),
        StatusCode::UNPROCESSABLE_ENTITY => ("validation-failed", "The request is not valid"),
        _ => ("malformed-json", "The body is not valid JSON"),
    };
    Problem::new(status, kind, title, Some(r.body_text()))
}

/// A query-string extractor whose rejection is a problem+json 400 (axum's own is plain text).
pub struct ApiQuery<T>(pub T);

impl<S, T> axum::extract::FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(ApiQuery(v)),
            Err(rejection) => Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid-request",
                "Invalid request",
                Some(rejection.body_text()),
            )),
        }
    }
}

/// `?as_of=<RFC 3339>` (point-in-time reads) and the consistency layer's `min_position`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AsOfQuery {
    pub as_of: Option<String>,
    pub min_position: Option<u64>,
}

impl AsOfQuery {
    pub fn instant(&self) -> Result<Option<time::OffsetDateTime>, super::error::ApiError> {
        self.as_of
            .as_deref()
            .map(|s| {
                time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                    .map_err(|_| {
                        super::error::ApiError::BadRequest("as_of must be an RFC 3339 time".into())
                    })
            })
            .transpose()
    }
}

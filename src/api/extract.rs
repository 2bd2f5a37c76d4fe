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

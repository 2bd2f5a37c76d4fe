//! `application/problem+json` (RFC 9457) responses: the problem document
//! (`commands::problem::Problem`, stable `type`) as an HTTP answer.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

pub use crate::commands::problem::{Problem, PROJECTION_LAGGING};

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (
            status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            body,
        )
            .into_response();
        if self.is(PROJECTION_LAGGING) {
            // The projections lag: the same read succeeds once they catch up.
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        }
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            // The unread rest of the body is still in flight: close the connection so the
            // client does not send its next request down a socket the server is dropping.
            response.headers_mut().insert(
                header::CONNECTION,
                header::HeaderValue::from_static("close"),
            );
        }
        response
    }
}

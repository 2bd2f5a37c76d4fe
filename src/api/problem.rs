//! `application/problem+json` (RFC 9457) errors with a stable `type`; internals are logged,
//! never returned.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub type_uri: String,
    pub title: String,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// RFC 9457 extension members (e.g. `dependants`).
    #[serde(flatten)]
    pub extensions: serde_json::Map<String, serde_json::Value>,
}

impl Problem {
    /// `kind` becomes `https://authledger.dev/problems/<kind>`.
    pub fn new(status: StatusCode, kind: &str, title: &str, detail: Option<String>) -> Self {
        Problem {
            type_uri: format!("https://authledger.dev/problems/{kind}"),
            title: title.to_string(),
            status: status.as_u16(),
            detail,
            extensions: serde_json::Map::new(),
        }
    }

    pub fn with(mut self, key: &str, value: serde_json::Value) -> Self {
        self.extensions.insert(key.to_string(), value);
        self
    }
}

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

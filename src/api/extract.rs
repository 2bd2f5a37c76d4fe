//! A JSON body extractor whose rejections are problem+json (400 malformed, 413 too large,
//! 415 wrong content type, 422 wrong shape). A body serde refuses names the failing member
//! as a JSON pointer (RFC 6901): `errors: [{"pointer": "/scopes/0", "detail": "…"}]`.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderMap, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::json;

use super::problem::Problem;

pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Expected Content-Type: application/json",
                Some("Expected request with `Content-Type: application/json`".into()),
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|r| {
            let status = r.status();
            if status == StatusCode::PAYLOAD_TOO_LARGE {
                Problem::new(
                    status,
                    "payload-too-large",
                    "Request body too large",
                    Some(r.body_text()),
                )
            } else {
                Problem::new(
                    StatusCode::BAD_REQUEST,
                    "malformed-json",
                    "The body is not valid JSON",
                    Some(r.body_text()),
                )
            }
        })?;
        decode(&bytes).map(ApiJson)
    }
}

/// `application/json` or `application/<anything>+json`, as axum's `Json` accepts.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or("").trim();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    kind.eq_ignore_ascii_case("application")
        && (subtype.eq_ignore_ascii_case("json")
            || subtype.len() > 5 && subtype[subtype.len() - 5..].eq_ignore_ascii_case("+json"))
}

/// A JSON body as `T`, or the problem that names where it fails: `400 malformed-json` for
/// bytes that are not JSON, `422 validation-failed` for JSON of the wrong shape (wrong type,
/// missing or unknown member, bad value), each with `errors[0].pointer`.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let refused = match serde_path_to_error::deserialize::<_, T>(&mut de) {
        Ok(v) => match de.end() {
            Ok(()) => return Ok(v),
            // Trailing characters: a syntax error past the value.
            Err(e) => (String::new(), e),
        },
        Err(e) => (pointer(e.path()), e.into_inner()),
    };
    let (mut at, e) = refused;
    let message = e.to_string();
    use serde_json::error::Category;
    let (status, kind, title) = match e.classify() {
        Category::Data => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation-failed",
            "The request is not valid",
        ),
        Category::Syntax | Category::Eof | Category::Io => (
            StatusCode::BAD_REQUEST,
            "malformed-json",
            "The body is not valid JSON",
        ),
    };
    // serde reports a missing member at the object that lacks it (an unknown one at its
    // own key): the pointer names the member itself.
    if let Some((name, _)) = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split_once('`'))
    {
        at.push('/');
        at.push_str(&escape(name));
    }
    let detail = if at.is_empty() {
        message.clone()
    } else {
        format!("{at}: {message}")
    };
    Err(Problem::new(status, kind, title, Some(detail))
        .with("errors", json!([{ "pointer": at, "detail": message }])))
}

/// serde's path as a JSON pointer (`""` is the whole body).
fn pointer(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => {
                out.push('/');
                out.push_str(&index.to_string());
            }
            Segment::Map { key } => {
                out.push('/');
                out.push_str(&escape(key));
            }
            // An enum's variant or a member serde does not name: the pointer stops at
            // what is known.
            Segment::Enum { .. } | Segment::Unknown => break,
        }
    }
    out
}

/// RFC 6901: `~` is `~0`, `/` is `~1`.
fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        scopes: Vec<String>,
        ttl: Option<u32>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        inner: Option<Inner>,
        #[serde(rename = "a/b~c")]
        odd: Option<bool>,
    }

    fn refused(body: &str) -> (u16, String, serde_json::Value) {
        let Err(p) = decode::<Body>(body.as_bytes()) else {
            panic!("{body} was accepted")
        };
        let errors = p.extensions["errors"].clone();
        let kind = p.type_uri.rsplit('/').next().unwrap_or("").to_string();
        (p.status, kind, errors[0]["pointer"].clone())
    }

    #[test]
    fn each_refusal_names_its_member_as_a_json_pointer() {
        let cases = [
            (
                r#"{"name": "x", "inner": {"scopes": ["a", 5]}}"#,
                422,
                "/inner/scopes/1",
            ),
            (
                r#"{"name": "x", "inner": {"scopes": []}, "extra": 1}"#,
                422,
                "/extra",
            ),
            (
                r#"{"name": "x", "inner": {"scopes": [], "nope": 1}}"#,
                422,
                "/inner/nope",
            ),
            (r#"{"inner": {"scopes": []}}"#, 422, "/name"),
            (r#"{"name": "x", "inner": {}}"#, 422, "/inner/scopes"),
            (
                r#"{"name": "x", "inner": {"scopes": [], "ttl": -1}}"#,
                422,
                "/inner/ttl",
            ),
            (r#"{"name": "x", "a/b~c": "yes"}"#, 422, "/a~1b~0c"),
            (r#""text""#, 422, ""),
            (r#"{"name": "x""#, 400, ""),
            (r#"{"name": "x"} trailing"#, 400, ""),
            ("", 400, ""),
        ];
        for (body, status, at) in cases {
            let (s, kind, pointer) = refused(body);
            assert_eq!((s, pointer.as_str()), (status, Some(at)), "{body}");
            let expected = if status == 400 {
                "malformed-json"
            } else {
                "validation-failed"
            };
            assert_eq!(kind, expected, "{body}");
        }
        assert!(decode::<Body>(br#"{"name": "x", "inner": {"scopes": ["a"]}}"#).is_ok());
    }
}

//! Pure classification of token and revocation endpoint answers: `(status, body)` → a
//! [`TokenSet`] or an [`OAuthError`]. No I/O, so every case is unit-tested.

use secrecy::SecretString;
use serde::Deserialize;
use serde_json::Value;

use super::{invalid, safe_text, separator, OAuthError, TokenSet};

/// Longest provider error description kept (characters).
const MAX_DESCRIPTION: usize = 300;
/// Longest provider error code kept (characters); a longer one is not an error code.
const MAX_ERROR_CODE: usize = 64;

/// Error codes some providers answer instead of `invalid_grant` for a dead code or refresh
/// token (GitHub: `bad_verification_code`, `bad_refresh_token`; Slack: `invalid_code`,
/// `invalid_refresh_token`). They mean the same thing: the grant is gone.
const INVALID_GRANT_ALIASES: [&str; 4] = [
    "bad_verification_code",
    "bad_refresh_token",
    "invalid_code",
    "invalid_refresh_token",
];

/// A token endpoint answer, leniently typed where providers differ.
#[derive(Deserialize)]
struct RawTokenResponse {
    #[serde(default)]
    access_token: Option<Value>,
    #[serde(default)]
    token_type: Option<Value>,
    #[serde(default)]
    refresh_token: Option<Value>,
    #[serde(default)]
    expires_in: Option<Value>,
    #[serde(default)]
    scope: Option<Value>,
    #[serde(default)]
    id_token: Option<Value>,
    #[serde(default)]
    error: Option<Value>,
    #[serde(default)]
    error_description: Option<Value>,
}

#[derive(Deserialize)]
struct RawErrorResponse {
    #[serde(default)]
    error: Option<Value>,
    #[serde(default)]
    error_description: Option<Value>,
}

/// Classifies a token endpoint answer (RFC 6749 §5.1, §5.2).
///
/// - 2xx: a JSON object with `access_token` (RFC 6749 A.12: 1*VSCHAR) and `token_type`
///   (required, kept as spelled); `expires_in` a non-negative integer or a numeric string;
///   `refresh_token` optional (an empty one counts as absent); `scope` a string (split on
///   whitespace and `scope_separator`) or an array of strings. A 2xx carrying an `error` and
///   no `access_token` (GitHub, Slack) is an error response. Anything else is
///   [`OAuthError::Invalid`].
/// - otherwise see [`error_response`].
///
/// `secrets` are the values the request carried: scrubbed from any provider text kept.
pub fn token_response(
    status: u16,
    body: &[u8],
    scope_separator: &str,
    secrets: &[&str],
) -> Result<TokenSet, OAuthError> {
    if !(200..300).contains(&status) {
        return Err(error_response(status, body, secrets));
    }
    // serde_json's messages may quote parts of the body: never passed on.
    let raw: RawTokenResponse =
        json_object(body).ok_or_else(|| invalid("the token response is not a JSON object"))?;
    let access_token = match raw.access_token {
        None | Some(Value::Null) => {
            if let Some(code) = error_code(raw.error.as_ref(), secrets) {
                let description = description(raw.error_description.as_ref(), secrets);
                return Err(from_code(status, code, description));
            }
            return Err(invalid("the token response has no access_token"));
        }
        Some(Value::String(s)) if is_vschar_token(&s) => SecretString::from(s),
        Some(_) => return Err(invalid("the access_token is not a valid token string")),
    };
    let token_type = match raw.token_type {
        Some(Value::String(s)) if !s.trim().is_empty() && is_vschar(s.trim()) => {
            s.trim().to_string()
        }
        None | Some(Value::Null) => {
            return Err(invalid("the token response has no token_type"));
        }
        Some(_) => return Err(invalid("the token_type is not a valid string")),
    };
    let refresh_token = match raw.refresh_token {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) if is_vschar_token(&s) => Some(SecretString::from(s)),
        Some(_) => return Err(invalid("the refresh_token is not a valid token string")),
    };
    let expires_in = match raw.expires_in {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(
            n.as_u64()
                .or_else(|| {
                    n.as_f64()
                        .filter(|f| f.is_finite() && *f >= 0.0 && f.fract() == 0.0)
                        .filter(|f| *f < u64::MAX as f64)
                        .map(|f| f as u64)
                })
                .ok_or_else(|| invalid("expires_in is not a non-negative integer"))?,
        ),
        Some(Value::String(s)) => Some(
            s.trim()
                .parse::<u64>()
                .map_err(|_| invalid("expires_in is not a number"))?,
        ),
        Some(_) => return Err(invalid("expires_in is not a number")),
    };
    let scope = match raw.scope {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(split_scopes(&s, scope_separator)),
        Some(Value::Array(items)) => {
            let mut scopes = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Value::String(s) => scopes.extend(split_scopes(&s, scope_separator)),
                    _ => return Err(invalid("scope is not a string")),
                }
            }
            Some(dedup(scopes))
        }
        Some(_) => return Err(invalid("scope is not a string")),
    };
    let id_token = match raw.id_token {
        None | Some(Value::Null) => None,
        Some(Value::String(t)) if !t.is_empty() => Some(SecretString::from(t)),
        Some(_) => return Err(invalid("id_token is not a string")),
    };
    Ok(TokenSet {
        access_token,
        refresh_token,
        token_type,
        expires_in,
        scope,
        id_token,
    })
}

/// Classifies a non-2xx answer of a token or revocation endpoint.
///
/// - 5xx, 429, 408 → [`OAuthError::Transient`] (with the OAuth error code, if the body has
///   one);
/// - 3xx (redirects are never followed) and 1xx → [`OAuthError::Invalid`];
/// - other 4xx with an RFC 6749 §5.2 JSON body: `invalid_grant` (and its provider aliases) →
///   [`OAuthError::InvalidGrant`]; `temporarily_unavailable` / `server_error` →
///   [`OAuthError::Transient`]; any other code → [`OAuthError::Provider`];
/// - other 4xx without one (HTML, empty, a JSON without `error`) → [`OAuthError::Provider`]
///   with `error: "http_<status>"`.
pub fn error_response(status: u16, body: &[u8], secrets: &[&str]) -> OAuthError {
    let parsed = json_object::<RawErrorResponse>(body).and_then(|raw| {
        error_code(raw.error.as_ref(), secrets)
            .map(|code| (code, description(raw.error_description.as_ref(), secrets)))
    });
    if status >= 500 || status == 429 || status == 408 {
        return OAuthError::Transient {
            reason: match parsed {
                Some((code, _)) => format!("HTTP {status} ({code})"),
                None => format!("HTTP {status}"),
            },
        };
    }
    if (300..400).contains(&status) {
        return invalid(format!(
            "the endpoint answered a redirect (HTTP {status}), which is not followed: \
             is the endpoint URL right?"
        ));
    }
    if status < 200 {
        return invalid(format!("unexpected HTTP {status}"));
    }
    match parsed {
        Some((code, description)) => from_code(status, code, description),
        None => OAuthError::Provider {
            status,
            error: format!("http_{status}"),
            description: None,
        },
    }
}

/// A JSON object (not an array, which derived `Deserialize` would also accept) without
/// repeated members. `None` otherwise; serde_json's message is dropped since it may quote
/// the body.
fn json_object<T: serde::de::DeserializeOwned>(body: &[u8]) -> Option<T> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace())?;
    if *first != b'{' {
        return None;
    }
    serde_json::from_slice(body).ok()
}

fn from_code(status: u16, code: String, description: Option<String>) -> OAuthError {
    match code.as_str() {
        "invalid_grant" => OAuthError::InvalidGrant { description },
        c if INVALID_GRANT_ALIASES.contains(&c) => OAuthError::InvalidGrant {
            description: Some(match description {
                Some(d) => format!("{c}: {d}"),
                None => c.to_string(),
            }),
        },
        "temporarily_unavailable" | "server_error" => OAuthError::Transient {
            reason: format!("HTTP {status} ({code})"),
        },
        _ => OAuthError::Provider {
            status,
            error: code,
            description,
        },
    }
}

/// An RFC 6749 §5.2 error code: 1*( %x20-21 / %x23-5B / %x5D-7E ), kept short, and never
/// one that contains a secret of the request.
fn error_code(v: Option<&Value>, secrets: &[&str]) -> Option<String> {
    let Some(Value::String(s)) = v else {
        return None;
    };
    let s = s.trim();
    let valid = !s.is_empty()
        && s.chars().count() <= MAX_ERROR_CODE
        && s.bytes()
            .all(|b| matches!(b, 0x20..=0x21 | 0x23..=0x5B | 0x5D..=0x7E));
    let leaks = secrets.iter().any(|x| !x.is_empty() && s.contains(x));
    (valid && !leaks).then(|| s.to_string())
}

fn description(v: Option<&Value>, secrets: &[&str]) -> Option<String> {
    match v {
        Some(Value::String(s)) => safe_text(s, secrets, MAX_DESCRIPTION),
        _ => None,
    }
}

/// RFC 6749 A.1: VSCHAR = %x20-7E.
fn is_vschar(s: &str) -> bool {
    s.bytes().all(|b| (0x20..=0x7E).contains(&b))
}

/// A token: 1*VSCHAR, and no leading or trailing space (which no real token has and which
/// would not survive an `Authorization` header).
fn is_vschar_token(s: &str) -> bool {
    !s.is_empty() && is_vschar(s) && s.trim() == s
}

fn split_scopes(s: &str, sep: &str) -> Vec<String> {
    let sep = separator(sep);
    let scopes = s
        .split(char::is_whitespace)
        .flat_map(|part| part.split(sep))
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect();
    dedup(scopes)
}

fn dedup(scopes: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(scopes.len());
    for s in scopes {
        if !out.contains(&s) {
            out.push(s);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret as _;

    use super::*;

    fn ok(body: &str) -> TokenSet {
        token_response(200, body.as_bytes(), " ", &[]).unwrap()
    }

    fn err(status: u16, body: &str) -> OAuthError {
        token_response(status, body.as_bytes(), " ", &[]).unwrap_err()
    }

    #[test]
    fn a_full_token_response() {
        let t = ok(
            r#"{"access_token":"at-1","token_type":"Bearer","expires_in":3600,
                     "refresh_token":"rt-1","scope":"read write","id_token":"x"}"#,
        );
        assert_eq!(t.access_token.expose_secret(), "at-1");
        assert_eq!(t.refresh_token.as_ref().unwrap().expose_secret(), "rt-1");
        assert_eq!(t.token_type, "Bearer");
        assert!(t.is_bearer());
        assert_eq!(t.expires_in, Some(3600));
        assert_eq!(t.scope, Some(vec!["read".to_string(), "write".to_string()]));
        let debug = format!("{t:?}");
        assert!(
            !debug.contains("at-1") && !debug.contains("rt-1"),
            "{debug}"
        );
    }

    #[test]
    fn a_minimal_token_response_and_provider_variants() {
        let t = ok(r#"{"access_token":"at","token_type":"bearer"}"#);
        assert!(t.is_bearer());
        assert_eq!(
            (t.expires_in, t.scope, t.refresh_token.is_none()),
            (None, None, true)
        );
        // Numeric string, empty refresh token, nulls, another token type (kept as is).
        let t = ok(
            r#"{"access_token":"at","token_type":"bot","expires_in":"7200",
                     "refresh_token":"","scope":null}"#,
        );
        assert_eq!(t.token_type, "bot");
        assert!(!t.is_bearer());
        assert_eq!(t.expires_in, Some(7200));
        assert!(t.refresh_token.is_none());
        let t = ok(r#"{"access_token":"at","token_type":"Bearer","expires_in":3600.0}"#);
        assert_eq!(t.expires_in, Some(3600));
        // Scopes: the configured separator as well as whitespace; arrays; duplicates dropped.
        let t = token_response(
            200,
            br#"{"access_token":"at","token_type":"bearer","scope":"chat:write,users:read read"}"#,
            ",",
            &[],
        )
        .unwrap();
        assert_eq!(t.scope.unwrap(), vec!["chat:write", "users:read", "read"]);
        let t = ok(r#"{"access_token":"at","token_type":"bearer","scope":["a","b a"]}"#);
        assert_eq!(t.scope.unwrap(), vec!["a", "b"]);
        let t = ok(r#"{"access_token":"at","token_type":"bearer","scope":""}"#);
        assert_eq!(t.scope, Some(vec![]));
    }

    #[test]
    fn invalid_2xx_answers() {
        for body in [
            "",
            "<html>ok</html>",
            "access_token=at&token_type=bearer",
            "[]",
            r#"["at","bearer"]"#,
            r#"{"token_type":"bearer"}"#,
            r#"{"access_token":"","token_type":"bearer"}"#,
            r#"{"access_token":42,"token_type":"bearer"}"#,
            r#"{"access_token":"a\nb","token_type":"bearer"}"#,
            r#"{"access_token":"at"}"#,
            r#"{"access_token":"at","token_type":""}"#,
            r#"{"access_token":"at","token_type":"bearer","expires_in":-1}"#,
            r#"{"access_token":"at","token_type":"bearer","expires_in":"soon"}"#,
            r#"{"access_token":"at","token_type":"bearer","expires_in":1.5}"#,
            r#"{"access_token":"at","token_type":"bearer","refresh_token":7}"#,
            r#"{"access_token":"at","token_type":"bearer","scope":5}"#,
            r#"{"access_token":"at","access_token":"at2","token_type":"bearer"}"#,
        ] {
            let e = err(200, body);
            assert!(matches!(e, OAuthError::Invalid { .. }), "{body}: {e:?}");
            assert_eq!(e.code(), "invalid_response");
            assert!(!e.retryable());
        }
        // A 201 is a 2xx too.
        assert!(token_response(
            201,
            br#"{"access_token":"at","token_type":"bearer"}"#,
            " ",
            &[]
        )
        .is_ok());
    }

    #[test]
    fn invalid_messages_quote_nothing_from_the_body() {
        let e = err(
            200,
            r#"{"access_token":["leaked-token"],"token_type":"bearer"}"#,
        );
        assert!(!e.to_string().contains("leaked-token"), "{e}");
        let e = err(
            200,
            r#"{"access_token":"x","token_type":"bearer","expires_in":"leaky"}"#,
        );
        assert!(!e.to_string().contains("leaky"), "{e}");
    }

    #[test]
    fn error_classification() {
        let cases: Vec<(u16, &str, OAuthError)> = vec![
            (
                400,
                r#"{"error":"invalid_grant","error_description":"code expired"}"#,
                OAuthError::InvalidGrant {
                    description: Some("code expired".into()),
                },
            ),
            (
                400,
                r#"{"error":"invalid_request"}"#,
                OAuthError::Provider {
                    status: 400,
                    error: "invalid_request".into(),
                    description: None,
                },
            ),
            (
                401,
                r#"{"error":"invalid_client","error_description":"bad secret"}"#,
                OAuthError::Provider {
                    status: 401,
                    error: "invalid_client".into(),
                    description: Some("bad secret".into()),
                },
            ),
            (
                400,
                r#"{"error":"invalid_scope"}"#,
                OAuthError::Provider {
                    status: 400,
                    error: "invalid_scope".into(),
                    description: None,
                },
            ),
            (
                403,
                "<html><h1>Forbidden</h1></html>",
                OAuthError::Provider {
                    status: 403,
                    error: "http_403".into(),
                    description: None,
                },
            ),
            (
                404,
                "",
                OAuthError::Provider {
                    status: 404,
                    error: "http_404".into(),
                    description: None,
                },
            ),
            (
                400,
                r#"{"message":"no"}"#,
                OAuthError::Provider {
                    status: 400,
                    error: "http_400".into(),
                    description: None,
                },
            ),
            (
                400,
                r#"{"error":{"code":1}}"#,
                OAuthError::Provider {
                    status: 400,
                    error: "http_400".into(),
                    description: None,
                },
            ),
            (
                400,
                "{\"error\":\"bad\\\"quote\"}",
                OAuthError::Provider {
                    status: 400,
                    error: "http_400".into(),
                    description: None,
                },
            ),
            (
                500,
                "<html><body><h1>500 Internal Server Error</h1></body></html>",
                OAuthError::Transient {
                    reason: "HTTP 500".into(),
                },
            ),
            (
                503,
                r#"{"error":"temporarily_unavailable"}"#,
                OAuthError::Transient {
                    reason: "HTTP 503 (temporarily_unavailable)".into(),
                },
            ),
            (
                502,
                r#"{"error":"invalid_grant"}"#,
                OAuthError::Transient {
                    reason: "HTTP 502 (invalid_grant)".into(),
                },
            ),
            (
                429,
                "slow down",
                OAuthError::Transient {
                    reason: "HTTP 429".into(),
                },
            ),
            (
                408,
                "",
                OAuthError::Transient {
                    reason: "HTTP 408".into(),
                },
            ),
            (
                400,
                r#"{"error":"temporarily_unavailable"}"#,
                OAuthError::Transient {
                    reason: "HTTP 400 (temporarily_unavailable)".into(),
                },
            ),
            // GitHub and Slack answer 200 with an error body.
            (
                200,
                r#"{"error":"bad_verification_code","error_description":"The code passed is incorrect or expired."}"#,
                OAuthError::InvalidGrant {
                    description: Some(
                        "bad_verification_code: The code passed is incorrect or expired.".into(),
                    ),
                },
            ),
            (
                200,
                r#"{"ok":false,"error":"invalid_client_id"}"#,
                OAuthError::Provider {
                    status: 200,
                    error: "invalid_client_id".into(),
                    description: None,
                },
            ),
        ];
        for (status, body, expected) in cases {
            let got = token_response(status, body.as_bytes(), " ", &[]).unwrap_err();
            assert_eq!(got, expected, "{status} {body}");
            assert_eq!(
                got.retryable(),
                matches!(expected, OAuthError::Transient { .. })
            );
        }
        for status in [301, 302, 303, 307, 308, 101] {
            let e = err(status, "");
            assert!(matches!(e, OAuthError::Invalid { .. }), "{status}: {e:?}");
            assert!(!e.retryable());
        }
    }

    #[test]
    fn provider_text_is_bounded_and_scrubbed() {
        let long = "x".repeat(5000);
        let body = format!(
            r#"{{"error":"invalid_request","error_description":"client_secret=s3cr%2Ft bad; code c0de\n{long}"}}"#
        );
        let e = token_response(400, body.as_bytes(), " ", &["s3cr/t", "c0de"]).unwrap_err();
        let text = e.to_string();
        assert!(!text.contains("s3cr") && !text.contains("c0de"), "{text}");
        assert!(text.contains("[redacted]"), "{text}");
        assert!(text.chars().count() < 400, "{}", text.len());
        assert!(!text.contains('\n'));
        // An error code that carries a secret is not kept either.
        let e = token_response(400, br#"{"error":"c0de"}"#, " ", &["c0de"]).unwrap_err();
        assert_eq!(e.code(), "http_400");
        let long_code = format!(r#"{{"error":"{}"}}"#, "e".repeat(65));
        assert_eq!(err(400, &long_code).code(), "http_400");
    }
}

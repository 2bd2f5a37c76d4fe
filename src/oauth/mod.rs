//! The HTTP side of OAuth 2.0 as a client: the authorization request URL of the connect flow,
//! PKCE, and the token endpoint (code exchange, refresh) and revocation endpoint calls.
//!
//! - RFC 6749: authorization code grant (§4.1), refresh (§6), client authentication (§2.3.1:
//!   `client_secret_basic` with the id and secret form-encoded before base64, or
//!   `client_secret_post`), token response (§5.1) and error response (§5.2).
//! - RFC 7636: PKCE, `S256` only ([`pkce_challenge`]); [`random_token`] makes verifiers and
//!   `state` values (32 random bytes from the OS, base64url).
//! - RFC 7009: token revocation ([`OAuthClient::revoke`]).
//! - RFC 9700: redirects are never followed (a token endpoint that redirects is misconfigured,
//!   and following would replay credentials to another origin); bounded response bodies and
//!   a timeout on every call.
//!
//! Everything here works on plaintext values the caller passes in (the caller unseals them and
//! seals what comes back). Nothing is logged with a secret in it, and no error carries one:
//! error descriptions come from the provider, are bounded, stripped of control characters,
//! and scrubbed of every secret value the request carried (in case a provider echoes the
//! request back); transport errors are described without their URL.
//!
//! What the errors mean for a caller is [`OAuthError::retryable`] (only
//! [`OAuthError::Transient`]) and [`OAuthError::code`] (a short, safe code for events and
//! metrics).

use std::collections::BTreeMap;
use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use rand::RngCore as _;
use reqwest::Url;
use secrecy::SecretString;
use sha2::{Digest as _, Sha256};

pub use crate::domain::auth_config::ClientAuthMethod;

mod client;
pub mod oidc;
mod response;

pub use client::{OAuthClient, RevocationAnswer, RevocationOutcome, MAX_RESPONSE_BYTES};
pub use response::{error_response, token_response};

/// The client's registration at a provider, in plaintext (unsealed by the caller).
///
/// `Debug` never shows the secret.
#[derive(Clone, Copy)]
pub struct ClientCredentials<'a> {
    pub client_id: &'a str,
    pub client_secret: &'a str,
    pub method: ClientAuthMethod,
    /// How this provider delimits scopes (the auth config's `scope_separator`; RFC 6749 says
    /// a space, some providers use a comma). It joins the `scope` parameter of a refresh and
    /// splits the `scope` of token responses (which are also split on whitespace). Empty
    /// means a space.
    pub scope_separator: &'a str,
}

impl<'a> ClientCredentials<'a> {
    /// Credentials with the standard scope separator (a space).
    pub fn new(
        client_id: &'a str,
        client_secret: &'a str,
        method: ClientAuthMethod,
    ) -> ClientCredentials<'a> {
        ClientCredentials {
            client_id,
            client_secret,
            method,
            scope_separator: " ",
        }
    }

    pub fn with_scope_separator(mut self, separator: &'a str) -> ClientCredentials<'a> {
        self.scope_separator = separator;
        self
    }
}

impl fmt::Debug for ClientCredentials<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .field("method", &self.method)
            .field("scope_separator", &self.scope_separator)
            .finish()
    }
}

/// What the authorization request URL (RFC 6749 §4.1.1) is built from.
#[derive(Debug, Clone, Copy)]
pub struct AuthorizeRequest<'a> {
    /// The provider's authorization endpoint; a query it already has is kept.
    pub authorization_url: &'a str,
    pub client_id: &'a str,
    pub redirect_uri: &'a str,
    /// Omitted from the URL when empty.
    pub scopes: &'a [String],
    /// Empty means a space.
    pub scope_separator: &'a str,
    /// Required (CSRF protection, RFC 6749 §10.12); see [`random_token`].
    pub state: &'a str,
    /// `BASE64URL(SHA256(verifier))` (see [`pkce_challenge`]); sent with
    /// `code_challenge_method=S256`.
    pub code_challenge: Option<&'a str>,
    /// Provider-specific parameters (e.g. `access_type=offline`); they may not repeat a
    /// parameter this module sets.
    pub extra_params: &'a BTreeMap<String, String>,
}

/// The parameters [`authorize_url`] sets itself (neither the configured URL's query nor the
/// extra parameters may carry them: a provider refuses a repeated parameter).
const AUTHORIZE_PARAMS: [&str; 7] = [
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
];

/// Builds the authorization request URL: `response_type=code`, `client_id`, `redirect_uri`,
/// `scope` (joined by the separator, omitted when there are no scopes), `state`, and
/// `code_challenge` with `code_challenge_method=S256` when given, then the extra parameters;
/// a query already in `authorization_url` is kept in front.
pub fn authorize_url(req: &AuthorizeRequest) -> Result<String, OAuthError> {
    let mut url = endpoint_url(req.authorization_url, "authorization")?;
    if req.client_id.is_empty() {
        return Err(invalid("client_id is empty"));
    }
    if req.redirect_uri.is_empty() {
        return Err(invalid("redirect_uri is empty"));
    }
    if req.state.is_empty() {
        return Err(invalid("state is empty"));
    }
    if req.code_challenge.is_some_and(str::is_empty) {
        return Err(invalid("code_challenge is empty"));
    }
    if let Some((k, _)) = url
        .query_pairs()
        .find(|(k, _)| AUTHORIZE_PARAMS.contains(&k.as_ref()))
    {
        return Err(invalid(format!(
            "the authorization endpoint URL already has a {k} parameter"
        )));
    }
    if let Some(k) = req
        .extra_params
        .keys()
        .find(|k| AUTHORIZE_PARAMS.contains(&k.as_str()))
    {
        return Err(invalid(format!(
            "extra parameter {k} would repeat a protocol parameter"
        )));
    }
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", req.client_id)
            .append_pair("redirect_uri", req.redirect_uri);
        if !req.scopes.is_empty() {
            q.append_pair("scope", &join_scopes(req.scopes, req.scope_separator));
        }
        q.append_pair("state", req.state);
        if let Some(challenge) = req.code_challenge {
            q.append_pair("code_challenge", challenge)
                .append_pair("code_challenge_method", "S256");
        }
        for (k, v) in req.extra_params {
            q.append_pair(k, v);
        }
    }
    Ok(url.into())
}

/// 32 random bytes from the operating system, base64url without padding (43 characters):
/// a `state` value or a PKCE code verifier (RFC 7636 §4.1, 256 bits of entropy).
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let token = B64URL.encode(bytes);
    zeroize::Zeroize::zeroize(&mut bytes);
    token
}

/// The PKCE `S256` code challenge: `BASE64URL(SHA256(ASCII(verifier)))` (RFC 7636 §4.2).
pub fn pkce_challenge(verifier: &str) -> String {
    B64URL.encode(Sha256::digest(verifier.as_bytes()))
}

/// `sha256:<hex>` of a `state` value: what is stored instead of the state itself.
pub fn state_hash(state: &str) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(state.as_bytes())))
}

/// A successful token response (RFC 6749 §5.1).
///
/// `Debug` shows the tokens as `[REDACTED]`.
#[derive(Debug)]
pub struct TokenSet {
    pub access_token: SecretString,
    /// Absent when the provider issues none, or (on a refresh) did not rotate it: then the
    /// old refresh token stays valid (RFC 6749 §6).
    pub refresh_token: Option<SecretString>,
    /// As the provider spelled it (usually `Bearer`, any case; see [`TokenSet::is_bearer`]).
    pub token_type: String,
    /// Lifetime of the access token in seconds, if the provider said.
    pub expires_in: Option<u64>,
    /// The granted scopes, if the provider said (absent: as requested, RFC 6749 §5.1).
    pub scope: Option<Vec<String>>,
    /// The OpenID Connect ID token (OIDC Core §3.1.3.3), when the provider issued one; see
    /// [`oidc`] for its verification.
    pub id_token: Option<SecretString>,
}

impl TokenSet {
    /// Whether the access token is an RFC 6750 bearer token (`token_type` is
    /// case-insensitive).
    pub fn is_bearer(&self) -> bool {
        self.token_type.eq_ignore_ascii_case("bearer")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OAuthError {
    /// 400 `invalid_grant`: the grant (code / refresh token) is dead — not retryable.
    #[error(
        "the grant is invalid, expired or revoked (invalid_grant){}",
        suffix(description)
    )]
    InvalidGrant { description: Option<String> },
    /// Any other RFC 6749 §5.2 error response (`invalid_client`, `invalid_request`,
    /// `unauthorized_client`, `invalid_scope`, ...), or a 4xx without an OAuth error body
    /// (`error` is then `http_<status>`) — not retryable.
    #[error(
        "the provider refused the request: HTTP {status} {error}{}",
        suffix(description)
    )]
    Provider {
        status: u16,
        error: String,
        description: Option<String>,
    },
    /// 5xx, 429, 408, `temporarily_unavailable` / `server_error`, timeouts, connection
    /// failures: retryable with backoff.
    #[error("transient failure: {reason}")]
    Transient { reason: String },
    /// A 2xx answer that is not a valid token response (no `access_token`, bad JSON, a body
    /// over the size limit, ...), a redirect, or an unusable URL — not retryable.
    #[error("invalid response or request: {reason}")]
    Invalid { reason: String },
}

impl OAuthError {
    /// Whether trying again later (with backoff) may succeed.
    pub fn retryable(&self) -> bool {
        matches!(self, OAuthError::Transient { .. })
    }

    /// A short code safe to record: `invalid_grant`, the provider's error code (or
    /// `http_<status>`), `transient` or `invalid_response`.
    pub fn code(&self) -> &str {
        match self {
            OAuthError::InvalidGrant { .. } => "invalid_grant",
            OAuthError::Provider { error, .. } => error,
            OAuthError::Transient { .. } => "transient",
            OAuthError::Invalid { .. } => "invalid_response",
        }
    }
}

fn suffix(description: &Option<String>) -> String {
    description
        .as_deref()
        .map(|d| format!(": {d}"))
        .unwrap_or_default()
}

fn invalid(reason: impl Into<String>) -> OAuthError {
    OAuthError::Invalid {
        reason: reason.into(),
    }
}

fn separator(sep: &str) -> &str {
    if sep.is_empty() {
        " "
    } else {
        sep
    }
}

fn join_scopes(scopes: &[String], sep: &str) -> String {
    scopes.join(separator(sep))
}

/// Parses an endpoint URL: `http` or `https`, a host, no credentials (`user:pass@` would be
/// sent as Basic credentials), no fragment (RFC 6749 §3.1, §3.2). The URL itself never goes
/// into the error.
fn endpoint_url(url: &str, what: &str) -> Result<Url, OAuthError> {
    let parsed = Url::parse(url).map_err(|_| invalid(format!("the {what} URL is not a URL")))?;
    if !matches!(parsed.scheme(), "https" | "http") {
        return Err(invalid(format!("the {what} URL is not http(s)")));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(invalid(format!("the {what} URL has no host")));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(invalid(format!("the {what} URL carries credentials")));
    }
    if parsed.fragment().is_some() {
        return Err(invalid(format!("the {what} URL has a fragment")));
    }
    Ok(parsed)
}

/// `application/x-www-form-urlencoded` encoding of one value (what RFC 6749 §2.3.1 asks for
/// the Basic credentials, and what a form body carries).
fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(char::from(b))
            }
            b' ' => out.push('+'),
            _ => {
                out.push('%');
                out.push_str(&format!("{b:02X}"));
            }
        }
    }
    out
}

/// Replaces every occurrence of a secret (as is, and form-encoded) by `[redacted]`.
fn scrub(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_string();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        if out.contains(secret) {
            out = out.replace(secret, "[redacted]");
        }
        let encoded = form_encode(secret);
        if encoded != *secret && out.contains(&encoded) {
            out = out.replace(&encoded, "[redacted]");
        }
    }
    out
}

/// Text from a provider made safe for an error message: secrets scrubbed (before
/// truncation, so no prefix of a secret survives), control characters replaced, at most
/// `max` characters. `None` when nothing is left.
fn safe_text(text: &str, secrets: &[&str], max: usize) -> Option<String> {
    let scrubbed = scrub(text, secrets);
    let cleaned: String = scrubbed
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let trimmed = cleaned.trim();
    if trimmed.is_empty() {
        return None;
    }
    let mut out: String = trimmed.chars().take(max).collect();
    if trimmed.chars().count() > max {
        out.push('…');
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req<'a>(
        url: &'a str,
        scopes: &'a [String],
        extra: &'a BTreeMap<String, String>,
    ) -> AuthorizeRequest<'a> {
        AuthorizeRequest {
            authorization_url: url,
            client_id: "client 1",
            redirect_uri: "https://app.example.com/callback?x=1",
            scopes,
            scope_separator: " ",
            state: "st&te",
            code_challenge: Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"),
            extra_params: extra,
        }
    }

    fn pairs(url: &str) -> Vec<(String, String)> {
        Url::parse(url)
            .unwrap()
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    #[test]
    fn authorize_url_has_every_parameter_in_order() {
        let scopes = vec!["read".to_string(), "write:all".to_string()];
        let extra = BTreeMap::from([("access_type".to_string(), "offline".to_string())]);
        let url = authorize_url(&req("https://p.example.com/authorize", &scopes, &extra)).unwrap();
        assert!(url.starts_with("https://p.example.com/authorize?response_type=code&"));
        let s = |k: &str, v: &str| (k.to_string(), v.to_string());
        assert_eq!(
            pairs(&url),
            vec![
                s("response_type", "code"),
                s("client_id", "client 1"),
                s("redirect_uri", "https://app.example.com/callback?x=1"),
                s("scope", "read write:all"),
                s("state", "st&te"),
                s(
                    "code_challenge",
                    "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
                ),
                s("code_challenge_method", "S256"),
                s("access_type", "offline"),
            ]
        );
        // Reserved characters are encoded, not passed through.
        assert!(url.contains("state=st%26te"));
        assert!(url.contains("redirect_uri=https%3A%2F%2Fapp.example.com%2Fcallback%3Fx%3D1"));
    }

    #[test]
    fn authorize_url_keeps_an_existing_query_and_omits_what_is_absent() {
        let extra = BTreeMap::new();
        let mut r = req("https://p.example.com/o/authorize?tenant=abc", &[], &extra);
        r.code_challenge = None;
        let url = authorize_url(&r).unwrap();
        let p = pairs(&url);
        assert_eq!(p[0], ("tenant".to_string(), "abc".to_string()));
        assert_eq!(p[1], ("response_type".to_string(), "code".to_string()));
        assert!(p
            .iter()
            .all(|(k, _)| k != "scope" && k != "code_challenge" && k != "code_challenge_method"));
    }

    #[test]
    fn authorize_url_joins_scopes_with_the_separator() {
        let scopes = vec!["chat:write".to_string(), "users:read".to_string()];
        let extra = BTreeMap::new();
        let mut r = req(
            "https://slack.example.com/oauth/v2/authorize",
            &scopes,
            &extra,
        );
        r.scope_separator = ",";
        let p = pairs(&authorize_url(&r).unwrap());
        assert!(p.contains(&("scope".to_string(), "chat:write,users:read".to_string())));
        r.scope_separator = "";
        let p = pairs(&authorize_url(&r).unwrap());
        assert!(p.contains(&("scope".to_string(), "chat:write users:read".to_string())));
    }

    #[test]
    fn authorize_url_refuses_unusable_input() {
        let extra = BTreeMap::new();
        for bad in [
            "not a url",
            "ftp://p.example.com/authorize",
            "https://user:pw@p.example.com/authorize",
            "https://p.example.com/authorize#frag",
            "https://p.example.com/authorize?state=fixed",
            "https://p.example.com/authorize?response_type=token",
        ] {
            let e = authorize_url(&req(bad, &[], &extra)).unwrap_err();
            assert!(matches!(e, OAuthError::Invalid { .. }), "{bad}: {e:?}");
            assert!(!e.to_string().contains("pw@"), "{e}");
        }
        let clash = BTreeMap::from([("redirect_uri".to_string(), "https://evil".to_string())]);
        let e = authorize_url(&req("https://p.example.com/a", &[], &clash)).unwrap_err();
        assert!(e.to_string().contains("redirect_uri"), "{e}");
        let mut r = req("https://p.example.com/a", &[], &extra);
        r.state = "";
        assert!(authorize_url(&r).is_err());
    }

    /// RFC 7636 Appendix B. (The challenge sometimes quoted as ending in `…buxRmrX35jM` is a
    /// corrupted copy: SHA-256 of the verifier gives `…buGJSstw-cM`, as the RFC prints.)
    #[test]
    fn pkce_rfc7636_appendix_b() {
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn random_tokens_are_valid_verifiers_and_distinct() {
        let a = random_token();
        let b = random_token();
        assert_ne!(a, b);
        for t in [&a, &b] {
            assert_eq!(t.len(), 43);
            assert!(t
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
            assert_eq!(B64URL.decode(t).unwrap().len(), 32);
        }
    }

    #[test]
    fn state_hash_is_prefixed_hex_sha256() {
        assert_eq!(
            state_hash("abc"),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn form_encoding_and_scrubbing() {
        assert_eq!(form_encode("a b+c:d/é~*"), "a+b%2Bc%3Ad%2F%C3%A9%7E*");
        assert_eq!(
            scrub("got s3cr:t and s3cr%3At", &["s3cr:t", ""]),
            "got [redacted] and [redacted]"
        );
        // Scrubbed before truncation: no prefix of a secret is left.
        assert_eq!(
            safe_text("xx topsecretvalue", &["topsecretvalue"], 5).as_deref(),
            Some("xx [r…")
        );
        assert_eq!(safe_text("a\nb\u{7}", &[], 100).as_deref(), Some("a b"));
        assert_eq!(safe_text(" \n", &[], 100), None);
    }

    #[test]
    fn credentials_debug_hides_the_secret() {
        let c = ClientCredentials::new("id", "hunter2", ClientAuthMethod::ClientSecretBasic);
        let d = format!("{c:?}");
        assert!(d.contains("\"id\"") && !d.contains("hunter2"), "{d}");
    }

    #[test]
    fn error_codes_and_retryability() {
        let cases = [
            (
                OAuthError::InvalidGrant { description: None },
                "invalid_grant",
                false,
            ),
            (
                OAuthError::Provider {
                    status: 401,
                    error: "invalid_client".into(),
                    description: None,
                },
                "invalid_client",
                false,
            ),
            (
                OAuthError::Transient { reason: "x".into() },
                "transient",
                true,
            ),
            (
                OAuthError::Invalid { reason: "x".into() },
                "invalid_response",
                false,
            ),
        ];
        for (e, code, retryable) in cases {
            assert_eq!(e.code(), code);
            assert_eq!(e.retryable(), retryable);
        }
    }
}

//! The HTTP calls: token endpoint (code exchange, refresh) and revocation endpoint.

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use reqwest::Url;
use zeroize::Zeroizing;

use crate::net::{HttpClient, Policy};

use super::response::{error_response, token_response};
use super::{
    endpoint_url, form_encode, invalid, join_scopes, safe_text, ClientAuthMethod,
    ClientCredentials, OAuthError, TokenSet,
};

/// Largest response body read (bytes); a longer 2xx body is [`OAuthError::Invalid`], a
/// longer error body is classified from its first bytes.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// The outcome of a revocation request (RFC 7009 §2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevocationOutcome {
    /// The provider answered 2xx: the token is revoked, or was already invalid (RFC 7009
    /// answers 200 for unknown tokens as well).
    Revoked,
    /// Anything else: the provider may still consider the token valid.
    Failed,
}

impl RevocationOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            RevocationOutcome::Revoked => "revoked",
            RevocationOutcome::Failed => "failed",
        }
    }
}

/// What a revocation request came to. Never carries a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevocationAnswer {
    pub outcome: RevocationOutcome,
    /// The provider's HTTP status; `None` when no answer came (timeout, connection failure,
    /// unusable URL).
    pub http_status: Option<u16>,
    /// Why it failed (the OAuth error, or the transport failure), for operators.
    pub detail: Option<String>,
    /// Whether trying again later may succeed (5xx, 429, `Retry-After`-style refusals,
    /// timeouts, connection failures).
    pub retryable: bool,
}

/// An OAuth 2.0 client for token and revocation endpoints. Cheap to clone; share one.
///
/// Redirects are never followed; every call is bounded by the timeout given to
/// [`OAuthClient::new`] (connect, send and read the whole body).
#[derive(Debug, Clone)]
pub struct OAuthClient {
    http: HttpClient,
    timeout: Duration,
}

/// Which endpoint a request goes to (for messages).
#[derive(Clone, Copy)]
enum Endpoint {
    Token,
    Revocation,
}

impl Endpoint {
    fn name(self) -> &'static str {
        match self {
            Endpoint::Token => "token endpoint",
            Endpoint::Revocation => "revocation endpoint",
        }
    }
}

/// A status and a body read up to [`MAX_RESPONSE_BYTES`] (zeroized on drop: it may hold
/// tokens).
struct Answer {
    status: u16,
    body: Zeroizing<Vec<u8>>,
    truncated: bool,
}

impl OAuthClient {
    /// A client that reaches only what `destinations` allows (every endpoint is judged
    /// again when it is called: the DNS answer may have changed since it was configured).
    pub fn new(timeout: Duration, destinations: &Arc<Policy>) -> Result<OAuthClient, OAuthError> {
        if timeout.is_zero() {
            return Err(invalid("the OAuth client timeout must be positive"));
        }
        let http = HttpClient::new(destinations, |b| {
            b.timeout(timeout)
                .connect_timeout(timeout)
                .user_agent(concat!("authledger/", env!("CARGO_PKG_VERSION")))
        })
        .map_err(|_| invalid("could not build the HTTP client"))?;
        Ok(OAuthClient { http, timeout })
    }

    /// Exchanges an authorization code (RFC 6749 §4.1.3), with the PKCE verifier when the
    /// authorization request carried a challenge (RFC 7636 §4.5). `redirect_uri` must be the
    /// one the authorization request named.
    pub async fn exchange_code(
        &self,
        token_url: &str,
        creds: &ClientCredentials<'_>,
        code: &str,
        redirect_uri: &str,
        code_verifier: Option<&str>,
    ) -> Result<TokenSet, OAuthError> {
        let mut params = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
        ];
        if let Some(verifier) = code_verifier {
            params.push(("code_verifier", verifier));
        }
        let secrets = [code, code_verifier.unwrap_or("")];
        self.token_request(token_url, creds, &params, &secrets)
            .await
    }

    /// Refreshes (RFC 6749 §6). `scopes`: `None` (or empty) asks for the whole original grant;
    /// otherwise a subset of it, joined with the credentials' scope separator. The answer may
    /// carry a new refresh token (rotation, RFC 9700 §4.14.2): the old one is then dead and
    /// the new one must be stored; without one, the old one stays in use.
    pub async fn refresh(
        &self,
        token_url: &str,
        creds: &ClientCredentials<'_>,
        refresh_token: &str,
        scopes: Option<&[String]>,
    ) -> Result<TokenSet, OAuthError> {
        let scope = scopes
            .filter(|s| !s.is_empty())
            .map(|s| join_scopes(s, creds.scope_separator));
        let mut params = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ];
        if let Some(scope) = scope.as_deref() {
            params.push(("scope", scope));
        }
        let secrets = [refresh_token];
        self.token_request(token_url, creds, &params, &secrets)
            .await
    }

    /// Revokes a token (RFC 7009 §2.1). `token_type_hint`: `refresh_token` (which revokes the
    /// whole grant at most providers) or `access_token`; empty sends none.
    pub async fn revoke(
        &self,
        revocation_url: &str,
        creds: &ClientCredentials<'_>,
        token: &str,
        token_type_hint: &str,
    ) -> RevocationAnswer {
        let mut params = vec![("token", token)];
        if !token_type_hint.is_empty() {
            params.push(("token_type_hint", token_type_hint));
        }
        let basic = basic_credentials(creds);
        let secrets = [creds.client_secret, basic.as_str(), token];
        let answer = match self
            .post_form(
                Endpoint::Revocation,
                revocation_url,
                creds,
                &params,
                &secrets,
            )
            .await
        {
            Ok(answer) => answer,
            Err(e) => {
                return RevocationAnswer {
                    outcome: RevocationOutcome::Failed,
                    http_status: None,
                    retryable: e.retryable(),
                    detail: Some(e.to_string()),
                }
            }
        };
        if (200..300).contains(&answer.status) {
            return RevocationAnswer {
                outcome: RevocationOutcome::Revoked,
                http_status: Some(answer.status),
                detail: None,
                retryable: false,
            };
        }
        let e = error_response(answer.status, &answer.body, &secrets);
        tracing::debug!(
            endpoint = Endpoint::Revocation.name(),
            status = answer.status,
            error = e.code(),
            "oauth revocation refused"
        );
        RevocationAnswer {
            outcome: RevocationOutcome::Failed,
            http_status: Some(answer.status),
            retryable: e.retryable(),
            detail: Some(e.to_string()),
        }
    }

    async fn token_request(
        &self,
        token_url: &str,
        creds: &ClientCredentials<'_>,
        params: &[(&str, &str)],
        request_secrets: &[&str],
    ) -> Result<TokenSet, OAuthError> {
        let basic = basic_credentials(creds);
        let mut secrets = vec![creds.client_secret, basic.as_str()];
        secrets.extend_from_slice(request_secrets);
        let secrets = secrets.as_slice();
        let answer = self
            .post_form(Endpoint::Token, token_url, creds, params, secrets)
            .await?;
        if answer.truncated && (200..300).contains(&answer.status) {
            return Err(invalid(format!(
                "the token response is larger than {MAX_RESPONSE_BYTES} bytes"
            )));
        }
        let result = token_response(answer.status, &answer.body, creds.scope_separator, secrets);
        if let Err(e) = &result {
            tracing::debug!(
                endpoint = Endpoint::Token.name(),
                status = answer.status,
                error = e.code(),
                "oauth token request failed"
            );
        }
        result
    }

    /// POSTs a form with the client's authentication; reads the answer (bounded). A client
    /// span of the current trace when traces are exported (`traceparent` sent).
    async fn post_form(
        &self,
        endpoint: Endpoint,
        url: &str,
        creds: &ClientCredentials<'_>,
        params: &[(&str, &str)],
        secrets: &[&str],
    ) -> Result<Answer, OAuthError> {
        use tracing::Instrument as _;
        let span = match endpoint {
            Endpoint::Token => "oauth token",
            Endpoint::Revocation => "oauth revocation",
        };
        self.post_form_once(endpoint, url, creds, params, secrets)
            .instrument(crate::telemetry::client_span(span, "POST"))
            .await
    }

    async fn post_form_once(
        &self,
        endpoint: Endpoint,
        url: &str,
        creds: &ClientCredentials<'_>,
        params: &[(&str, &str)],
        secrets: &[&str],
    ) -> Result<Answer, OAuthError> {
        let url = endpoint_url(url, endpoint.name())?;
        let where_ = origin(&url);
        let mut body = Zeroizing::new(String::new());
        let mut add = |k: &str, v: &str| {
            if !body.is_empty() {
                body.push('&');
            }
            body.push_str(&form_encode(k));
            body.push('=');
            body.push_str(&form_encode(v));
        };
        for (k, v) in params {
            add(k, v);
        }
        let mut request = self
            .http
            .request(reqwest::Method::POST, url.as_str())
            .map_err(|refused| invalid(format!("the {} {where_}: {refused}", endpoint.name())))?
            .header(ACCEPT, "application/json")
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded");
        for (name, value) in crate::telemetry::outbound_headers() {
            request = request.header(name, value);
        }
        match creds.method {
            ClientAuthMethod::ClientSecretBasic => {
                let value = Zeroizing::new(format!("Basic {}", basic_credentials(creds).as_str()));
                let mut header = HeaderValue::from_str(&value)
                    .map_err(|_| invalid("the client credentials cannot be sent in a header"))?;
                header.set_sensitive(true);
                request = request.header(AUTHORIZATION, header);
            }
            ClientAuthMethod::ClientSecretPost => {
                add("client_id", creds.client_id);
                add("client_secret", creds.client_secret);
            }
        }
        let response = request
            .body(body.as_bytes().to_vec())
            .send()
            .await
            .map_err(|e| self.transport_error(e, endpoint, &where_, secrets))?;
        let status = response.status().as_u16();
        let (body, truncated) = read_capped(response, MAX_RESPONSE_BYTES)
            .await
            .map_err(|e| self.transport_error(e, endpoint, &where_, secrets))?;
        Ok(Answer {
            status,
            body,
            truncated,
        })
    }

    /// A failed exchange, described without its URL (which may carry a query) and scrubbed.
    fn transport_error(
        &self,
        e: reqwest::Error,
        endpoint: Endpoint,
        where_: &str,
        secrets: &[&str],
    ) -> OAuthError {
        let e = e.without_url();
        if e.is_builder() {
            return invalid(format!(
                "the {} request could not be built",
                endpoint.name()
            ));
        }
        // The name now resolves to an address the policy forbids: not worth retrying.
        if let Some(refused) = crate::net::client::refusal(&e) {
            return invalid(format!("the {} {where_}: {refused}", endpoint.name()));
        }
        // The innermost cause ("Connection refused", "invalid peer certificate", ...), for
        // the operator's log only.
        let mut cause: Option<&dyn std::error::Error> = std::error::Error::source(&e);
        while let Some(next) = cause.and_then(std::error::Error::source) {
            cause = Some(next);
        }
        let cause = cause
            .and_then(|c| safe_text(&c.to_string(), secrets, 200))
            .map(|c| format!(" ({c})"))
            .unwrap_or_default();
        // A refused connection and a timeout read the same to the caller: the answer must
        // not tell an open port from a closed or filtered one.
        let what = if e.is_timeout() || e.is_connect() {
            format!(
                "timed out or could not be reached (no answer within {} ms)",
                self.timeout.as_millis()
            )
        } else if e.is_body() || e.is_decode() {
            "reading the answer failed".to_string()
        } else {
            "the request failed".to_string()
        };
        tracing::debug!(endpoint = endpoint.name(), at = %where_, "{what}{cause}");
        OAuthError::Transient {
            reason: format!("{} {where_}: {what}", endpoint.name()),
        }
    }
}

/// The `client_secret_basic` credentials: RFC 6749 §2.3.1 form-encodes id and secret, then
/// base64 (reqwest's `basic_auth` does not form-encode). Also scrubbed from provider text.
fn basic_credentials(creds: &ClientCredentials<'_>) -> Zeroizing<String> {
    let joined = Zeroizing::new(format!(
        "{}:{}",
        form_encode(creds.client_id),
        form_encode(creds.client_secret)
    ));
    Zeroizing::new(B64.encode(joined.as_bytes()))
}

/// `scheme://host:port` of a URL: enough to tell endpoints apart, nothing from the path or
/// query.
fn origin(url: &Url) -> String {
    url.origin().ascii_serialization()
}

/// Reads at most `cap` bytes of the body; whether there was more.
async fn read_capped(
    mut response: reqwest::Response,
    cap: usize,
) -> Result<(Zeroizing<Vec<u8>>, bool), reqwest::Error> {
    let mut body = Zeroizing::new(Vec::new());
    if response.content_length().is_some_and(|n| n > cap as u64) {
        return Ok((body, true));
    }
    while let Some(chunk) = response.chunk().await? {
        let room = cap.saturating_sub(body.len());
        if chunk.len() > room {
            body.extend_from_slice(chunk.get(..room).unwrap_or_default());
            return Ok((body, true));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, false))
}

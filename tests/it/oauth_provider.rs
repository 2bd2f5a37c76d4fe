//! A real, local OAuth 2.0 authorization server for integration tests (the connect flow,
//! refresh and revocation are tested against it), plus tests of the fixture itself.
//!
//! It is an axum server on `127.0.0.1:0`, started by a test and stopped on drop, that checks
//! what real providers check:
//!
//! - RFC 6749: registered clients, exact redirect URI match (an unknown client or redirect URI
//!   gets a 400 page, never a redirect), scope subset, single-use short-lived codes bound to the
//!   client and the redirect URI, a reused code → `invalid_grant` and every token issued from it
//!   revoked (§4.1.2, §10.5), client authentication with the one method the client is registered
//!   for (`client_secret_basic` with form-encoded id and secret per §2.3.1, or
//!   `client_secret_post`; both at once → `invalid_request`), §5.2 JSON errors with the proper
//!   status (`invalid_client` is 401 with `WWW-Authenticate`), `Cache-Control: no-store`,
//!   parameters sent twice → `invalid_request`.
//! - RFC 7636 / RFC 9700: PKCE with `S256` required (`plain` and a missing method are refused),
//!   verifier syntax and hash checked; refresh tokens rotated, a rotated refresh token presented
//!   again → `invalid_grant` and (by default) the whole grant revoked; refresh may narrow scope,
//!   never widen it; the authorization response carries `iss` (RFC 9207); 303 redirects.
//! - RFC 7009: `/revoke` authenticates the client, revokes an access token (just that one) or a
//!   refresh token (the whole grant), answers 200 for unknown tokens and other clients' tokens
//!   (without revoking them).
//! - RFC 6750: `/api/me` (and `/api/require/{scope}`) take `Authorization: Bearer` only and answer
//!   401 `invalid_token` (expired, revoked, unknown) or 403 `insufficient_scope`.
//!
//! Everything received is logged verbatim (secrets included: it is a fake provider) so tests can
//! assert how a client authenticated and what it sent.
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Form, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use base64::Engine as _;
use rand::RngCore as _;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

const REALM: &str = "oauth-provider";

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

/// How a client authenticates at the token and revocation endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuthMethod {
    /// `Authorization: Basic base64(form(client_id) ":" form(client_secret))`.
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
}

impl ClientAuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            ClientAuthMethod::ClientSecretBasic => "client_secret_basic",
            ClientAuthMethod::ClientSecretPost => "client_secret_post",
        }
    }
}

/// A registered (confidential) client.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub client_id: String,
    pub client_secret: String,
    pub auth_method: ClientAuthMethod,
    /// Compared by exact string match.
    pub redirect_uris: Vec<String>,
    /// The scopes this client may request.
    pub scopes: Vec<String>,
    /// Whether the provider issues refresh tokens to this client (some providers do not).
    pub refresh_tokens: bool,
}

impl ClientConfig {
    pub fn new(
        client_id: &str,
        client_secret: &str,
        auth_method: ClientAuthMethod,
    ) -> ClientConfig {
        ClientConfig {
            client_id: client_id.to_string(),
            client_secret: client_secret.to_string(),
            auth_method,
            redirect_uris: Vec::new(),
            scopes: Vec::new(),
            refresh_tokens: true,
        }
    }

    pub fn redirect_uri(mut self, uri: &str) -> ClientConfig {
        self.redirect_uris.push(uri.to_string());
        self
    }

    pub fn scopes(mut self, scopes: &[&str]) -> ClientConfig {
        self.scopes.extend(scopes.iter().map(|s| s.to_string()));
        self
    }

    pub fn without_refresh_tokens(mut self) -> ClientConfig {
        self.refresh_tokens = false;
        self
    }
}

/// What the simulated user answers on the consent screen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Consent {
    /// Grants every requested scope.
    Grant,
    /// Denies: redirect with `error=access_denied&state=…`.
    Deny,
    /// Grants only the requested scopes that are in this list (a narrower grant); if none of
    /// them is, it is a denial.
    GrantOnly(Vec<String>),
}

#[derive(Debug, Clone)]
pub struct ProviderConfig {
    pub clients: Vec<ClientConfig>,
    /// The user who "logs in" at the authorization endpoint.
    pub user_id: String,
    pub consent: Consent,
    pub access_token_ttl: Duration,
    pub code_ttl: Duration,
    /// `None`: refresh tokens do not expire.
    pub refresh_token_ttl: Option<Duration>,
    /// RFC 9700 §4.14.2: presenting a rotated refresh token revokes the whole grant.
    pub revoke_grant_on_refresh_reuse: bool,
}

impl Default for ProviderConfig {
    fn default() -> ProviderConfig {
        ProviderConfig {
            clients: Vec::new(),
            user_id: "user-1".to_string(),
            consent: Consent::Grant,
            access_token_ttl: Duration::from_secs(3600),
            code_ttl: Duration::from_secs(60),
            refresh_token_ttl: None,
            revoke_grant_on_refresh_reuse: true,
        }
    }
}

impl ProviderConfig {
    pub fn client(mut self, client: ClientConfig) -> ProviderConfig {
        self.clients.push(client);
        self
    }
}

// ---------------------------------------------------------------------------------------------
// Public records
// ---------------------------------------------------------------------------------------------

/// A token endpoint success response (also what `issue_tokens` returns).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: String,
    pub expires_in: u64,
    pub refresh_token: Option<String>,
    pub scope: String,
}

/// An injected answer for the next token request(s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenFault {
    /// 400 `{"error":"invalid_grant"}` without looking at the request (nothing is consumed).
    InvalidGrant,
    /// 500 with an HTML body (as a broken proxy would answer), nothing consumed.
    ServerError,
    /// Waits, then processes the request normally. The request is processed in full even if
    /// the client gave up meanwhile (a lost response: a slow refresh still rotates the token).
    Slow(Duration),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Authorize,
    Token,
    Revoke,
    Api,
    Metadata,
}

/// One request as the provider received it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub endpoint: Endpoint,
    pub path: String,
    /// Query parameters (GET) or form parameters (POST), verbatim and in order.
    pub params: Vec<(String, String)>,
    pub authorization: Option<String>,
    pub content_type: Option<String>,
    /// The client id the request named (Basic header or `client_id` parameter).
    pub client_id: Option<String>,
    /// How the client presented its credentials (`None`: no credentials, or both methods).
    pub client_auth: Option<ClientAuthMethod>,
    pub status: u16,
    /// The OAuth error code answered, if any (`error=` in a redirect, or the JSON error).
    pub error: Option<String>,
}

impl RecordedRequest {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn grant_type(&self) -> Option<&str> {
        self.param("grant_type")
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    pub authorization_requests: u64,
    pub codes_issued: u64,
    /// Every POST /token, whatever its outcome (faults included).
    pub token_requests: u64,
    /// POST /token with `grant_type=authorization_code`, whatever the outcome.
    pub code_exchanges: u64,
    /// POST /token with `grant_type=refresh_token`, whatever the outcome.
    pub refresh_requests: u64,
    /// Successful refreshes (each rotated a refresh token).
    pub refreshes: u64,
    /// Access tokens issued (HTTP or `issue_tokens`).
    pub tokens_issued: u64,
    /// Every POST /revoke, whatever its outcome.
    pub revocation_requests: u64,
    /// Tokens actually revoked through POST /revoke.
    pub revocations: u64,
    pub api_requests: u64,
    pub faults_injected: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Access,
    Refresh,
}

#[derive(Debug, Clone)]
pub struct TokenInfo {
    pub kind: TokenKind,
    pub client_id: String,
    pub user_id: String,
    pub scopes: Vec<String>,
    pub revoked: bool,
    pub expired: bool,
    /// A refresh token that has been exchanged for a new one.
    pub rotated: bool,
    /// Usable now: not revoked, not expired, not rotated.
    pub active: bool,
}

// ---------------------------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------------------------

struct CodeRecord {
    client_id: String,
    redirect_uri: String,
    scopes: Vec<String>,
    user_id: String,
    challenge: String,
    expires_at: Instant,
    used: bool,
    grant: u64,
}

struct TokenRecord {
    kind: TokenKind,
    client_id: String,
    user_id: String,
    scopes: Vec<String>,
    expires_at: Option<Instant>,
    revoked: bool,
    rotated: bool,
    grant: u64,
}

impl TokenRecord {
    fn expired(&self, now: Instant) -> bool {
        self.expires_at.is_some_and(|t| t <= now)
    }
}

struct ProviderState {
    clients: HashMap<String, ClientConfig>,
    user_id: String,
    consent: Consent,
    access_token_ttl: Duration,
    code_ttl: Duration,
    refresh_token_ttl: Option<Duration>,
    revoke_grant_on_refresh_reuse: bool,
    codes: HashMap<String, CodeRecord>,
    tokens: HashMap<String, TokenRecord>,
    next_grant: u64,
    token_faults: VecDeque<TokenFault>,
    revocation_faults: u32,
    counters: Counters,
    log: Vec<RecordedRequest>,
}

impl ProviderState {
    fn new_grant(&mut self) -> u64 {
        self.next_grant += 1;
        self.next_grant
    }

    fn revoke_grant(&mut self, grant: u64) {
        for t in self.tokens.values_mut().filter(|t| t.grant == grant) {
            t.revoked = true;
        }
    }

    /// Issues an access token (and a refresh token unless the client gets none).
    fn issue(
        &mut self,
        client_id: &str,
        user_id: &str,
        scopes: &[String],
        refresh_scopes: &[String],
        grant: u64,
    ) -> TokenResponse {
        let now = Instant::now();
        let access = random_token("at_");
        self.tokens.insert(
            access.clone(),
            TokenRecord {
                kind: TokenKind::Access,
                client_id: client_id.to_string(),
                user_id: user_id.to_string(),
                scopes: scopes.to_vec(),
                expires_at: Some(now + self.access_token_ttl),
                revoked: false,
                rotated: false,
                grant,
            },
        );
        let with_refresh = self.clients.get(client_id).is_none_or(|c| c.refresh_tokens);
        let refresh = with_refresh.then(|| {
            let refresh = random_token("rt_");
            self.tokens.insert(
                refresh.clone(),
                TokenRecord {
                    kind: TokenKind::Refresh,
                    client_id: client_id.to_string(),
                    user_id: user_id.to_string(),
                    scopes: refresh_scopes.to_vec(),
                    expires_at: self.refresh_token_ttl.map(|ttl| now + ttl),
                    revoked: false,
                    rotated: false,
                    grant,
                },
            );
            refresh
        });
        self.counters.tokens_issued += 1;
        TokenResponse {
            access_token: access,
            token_type: "Bearer".to_string(),
            expires_in: self.access_token_ttl.as_secs(),
            refresh_token: refresh,
            scope: scopes.join(" "),
        }
    }
}

struct Shared {
    issuer: String,
    state: Mutex<ProviderState>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, ProviderState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn record(&self, r: RecordedRequest) {
        self.lock().log.push(r);
    }
}

// ---------------------------------------------------------------------------------------------
// The handle
// ---------------------------------------------------------------------------------------------

/// A running provider; the server stops when this is dropped.
pub struct OAuthProvider {
    base_url: String,
    shared: Arc<Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for OAuthProvider {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

impl OAuthProvider {
    /// Binds 127.0.0.1:0 and serves until dropped. Must run inside a tokio runtime.
    pub async fn start(config: ProviderConfig) -> OAuthProvider {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("oauth provider: bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("oauth provider: local addr");
        let base_url = format!("http://{addr}");
        let state = ProviderState {
            clients: config
                .clients
                .into_iter()
                .map(|c| (c.client_id.clone(), c))
                .collect(),
            user_id: config.user_id,
            consent: config.consent,
            access_token_ttl: config.access_token_ttl,
            code_ttl: config.code_ttl,
            refresh_token_ttl: config.refresh_token_ttl,
            revoke_grant_on_refresh_reuse: config.revoke_grant_on_refresh_reuse,
            codes: HashMap::new(),
            tokens: HashMap::new(),
            next_grant: 0,
            token_faults: VecDeque::new(),
            revocation_faults: 0,
            counters: Counters::default(),
            log: Vec::new(),
        };
        let shared = Arc::new(Shared {
            issuer: base_url.clone(),
            state: Mutex::new(state),
        });
        let app = Router::new()
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .route("/revoke", post(revoke))
            .route("/api/me", get(api_me))
            .route("/api/require/{scope}", get(api_require))
            .route("/.well-known/oauth-authorization-server", get(metadata))
            .with_state(shared.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await;
        });
        OAuthProvider {
            base_url,
            shared,
            shutdown: Some(tx),
        }
    }

    /// `http://127.0.0.1:<port>`; also the issuer (`iss`).
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn issuer(&self) -> &str {
        &self.base_url
    }

    pub fn authorization_url(&self) -> String {
        format!("{}/authorize", self.base_url)
    }

    pub fn token_url(&self) -> String {
        format!("{}/token", self.base_url)
    }

    pub fn revocation_url(&self) -> String {
        format!("{}/revoke", self.base_url)
    }

    /// The protected resource: `GET` with `Authorization: Bearer <access token>`.
    pub fn api_me_url(&self) -> String {
        format!("{}/api/me", self.base_url)
    }

    /// A protected resource that also requires `scope` (403 `insufficient_scope` otherwise).
    pub fn api_require_url(&self, scope: &str) -> String {
        format!("{}/api/require/{scope}", self.base_url)
    }

    pub fn metadata_url(&self) -> String {
        format!("{}/.well-known/oauth-authorization-server", self.base_url)
    }

    // --- configuration while running -------------------------------------------------------

    /// Registers (or replaces) a client.
    pub fn register_client(&self, client: ClientConfig) {
        self.shared
            .lock()
            .clients
            .insert(client.client_id.clone(), client);
    }

    pub fn set_consent(&self, consent: Consent) {
        self.shared.lock().consent = consent;
    }

    /// The user who logs in at the authorization endpoint from now on.
    pub fn set_user(&self, user_id: &str) {
        self.shared.lock().user_id = user_id.to_string();
    }

    /// Lifetime of access tokens issued from now on (`expires_in` is its whole seconds).
    pub fn set_access_token_ttl(&self, ttl: Duration) {
        self.shared.lock().access_token_ttl = ttl;
    }

    /// Lifetime of authorization codes issued from now on (`Duration::ZERO`: born expired).
    pub fn set_code_ttl(&self, ttl: Duration) {
        self.shared.lock().code_ttl = ttl;
    }

    pub fn set_refresh_token_ttl(&self, ttl: Option<Duration>) {
        self.shared.lock().refresh_token_ttl = ttl;
    }

    // --- faults ----------------------------------------------------------------------------

    /// The next `n` POST /token requests get `fault` (queued after faults already queued).
    pub fn fail_next_token_requests(&self, n: usize, fault: TokenFault) {
        let mut st = self.shared.lock();
        st.token_faults.extend(std::iter::repeat_n(fault, n));
    }

    /// The next `n` POST /revoke requests get 503 with `Retry-After: 1` (RFC 7009 §2.2.1).
    pub fn fail_next_revocations(&self, n: u32) {
        self.shared.lock().revocation_faults += n;
    }

    // --- tokens ----------------------------------------------------------------------------

    /// Issues tokens directly (as if `user_id` had gone through the flow with `client_id`).
    pub fn issue_tokens(&self, client_id: &str, user_id: &str, scopes: &[&str]) -> TokenResponse {
        let mut st = self.shared.lock();
        assert!(
            st.clients.contains_key(client_id),
            "issue_tokens: unknown client {client_id:?}"
        );
        let scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
        let grant = st.new_grant();
        st.issue(client_id, user_id, &scopes, &scopes, grant)
    }

    /// Makes an access or refresh token expired now. Panics on an unknown token.
    pub fn expire_token(&self, token: &str) {
        let mut st = self.shared.lock();
        let t = st
            .tokens
            .get_mut(token)
            .unwrap_or_else(|| panic!("expire_token: unknown token {token:?}"));
        t.expires_at = Some(Instant::now());
    }

    /// Provider-side revocation (the user withdrew consent): revokes every token of the grant
    /// `token` belongs to. Panics on an unknown token.
    pub fn revoke_grant_of(&self, token: &str) {
        let mut st = self.shared.lock();
        let grant = st
            .tokens
            .get(token)
            .unwrap_or_else(|| panic!("revoke_grant_of: unknown token {token:?}"))
            .grant;
        st.revoke_grant(grant);
    }

    /// Revokes every token issued to `user_id`.
    pub fn revoke_user(&self, user_id: &str) {
        let mut st = self.shared.lock();
        for t in st.tokens.values_mut().filter(|t| t.user_id == user_id) {
            t.revoked = true;
        }
    }

    pub fn token_info(&self, token: &str) -> Option<TokenInfo> {
        let st = self.shared.lock();
        let now = Instant::now();
        st.tokens.get(token).map(|t| {
            let expired = t.expired(now);
            TokenInfo {
                kind: t.kind,
                client_id: t.client_id.clone(),
                user_id: t.user_id.clone(),
                scopes: t.scopes.clone(),
                revoked: t.revoked,
                expired,
                rotated: t.rotated,
                active: !t.revoked && !expired && !t.rotated,
            }
        })
    }

    /// Whether `token` is known and usable now.
    pub fn is_active(&self, token: &str) -> bool {
        self.token_info(token).is_some_and(|i| i.active)
    }

    // --- observation -----------------------------------------------------------------------

    pub fn counters(&self) -> Counters {
        self.shared.lock().counters.clone()
    }

    /// Every request received, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().log.clone()
    }

    pub fn requests_to(&self, endpoint: Endpoint) -> Vec<RecordedRequest> {
        self.shared
            .lock()
            .log
            .iter()
            .filter(|r| r.endpoint == endpoint)
            .cloned()
            .collect()
    }

    pub fn last_request_to(&self, endpoint: Endpoint) -> Option<RecordedRequest> {
        self.shared
            .lock()
            .log
            .iter()
            .rev()
            .find(|r| r.endpoint == endpoint)
            .cloned()
    }

    // --- the browser -----------------------------------------------------------------------

    /// Plays the user's browser: GETs an authorization request URL (as a client built it) and
    /// returns the `Location` the provider redirected to (the client's callback with `code` and
    /// `state`, or with `error`). Panics, with the page, if the provider did not redirect.
    pub async fn visit(&self, authorization_request_url: &str) -> reqwest::Url {
        let http = no_redirect_client();
        let r = http
            .get(authorization_request_url)
            .send()
            .await
            .expect("oauth provider: GET authorization URL");
        let status = r.status();
        let location = r
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        match location {
            Some(l) if status.is_redirection() => reqwest::Url::parse(&l).unwrap_or_else(|e| {
                panic!("oauth provider redirected to an invalid URL {l:?}: {e}")
            }),
            _ => {
                let body = r.text().await.unwrap_or_default();
                panic!("authorization request was not redirected ({status}): {body}")
            }
        }
    }

    /// Builds an authorization request URL for `client_id` (what a correct client would send).
    pub fn authorization_request(
        &self,
        client_id: &str,
        redirect_uri: &str,
        scope: &str,
        state: &str,
        code_challenge: &str,
    ) -> String {
        let mut url = reqwest::Url::parse(&self.authorization_url()).expect("authorization URL");
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", scope)
            .append_pair("state", state)
            .append_pair("code_challenge", code_challenge)
            .append_pair("code_challenge_method", "S256");
        url.to_string()
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers for tests
// ---------------------------------------------------------------------------------------------

/// A reqwest client that does not follow redirects (to read `Location`).
pub fn no_redirect_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("reqwest client")
}

/// `(code_verifier, code_challenge)` for PKCE S256.
pub fn pkce_pair() -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let verifier = B64URL.encode(bytes);
    let challenge = pkce_challenge(&verifier);
    (verifier, challenge)
}

/// `BASE64URL(SHA256(verifier))`.
pub fn pkce_challenge(verifier: &str) -> String {
    B64URL.encode(Sha256::digest(verifier.as_bytes()))
}

/// The `Authorization` value for `client_secret_basic` per RFC 6749 §2.3.1 (id and secret
/// form-urlencoded before base64).
pub fn basic_auth_header(client_id: &str, client_secret: &str) -> String {
    format!(
        "Basic {}",
        B64.encode(format!(
            "{}:{}",
            form_encode(client_id),
            form_encode(client_secret)
        ))
    )
}

/// `application/x-www-form-urlencoded` encoding of one value.
pub fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn form_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

fn random_token(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{prefix}{}", B64URL.encode(bytes))
}

fn scopes_of(s: &str) -> Vec<String> {
    s.split(' ')
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn duplicate_param(params: &[(String, String)]) -> Option<&str> {
    params
        .iter()
        .enumerate()
        .find(|(i, (k, _))| params[..*i].iter().any(|(k2, _)| k2 == k))
        .map(|(_, (k, _))| k.as_str())
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// RFC 7636 §4.1: 43–128 characters of `[A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~"`.
fn valid_verifier(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// An RFC 6749 §5.2 error.
struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: String,
}

impl OAuthError {
    fn new(error: &'static str, description: impl Into<String>) -> OAuthError {
        let status = if error == "invalid_client" {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::BAD_REQUEST
        };
        OAuthError {
            status,
            error,
            description: description.into(),
        }
    }

    fn into_response(self) -> Response {
        let mut r = (
            self.status,
            [
                (header::CACHE_CONTROL, "no-store"),
                (header::PRAGMA, "no-cache"),
            ],
            Json(json!({ "error": self.error, "error_description": self.description })),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"oauth-provider\""),
            );
        }
        r
    }
}

fn error_page(description: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        format!("<!doctype html><title>Authorization error</title><h1>invalid_request</h1><p>{description}</p>"),
    )
        .into_response()
}

// ---------------------------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------------------------

async fn metadata(State(s): State<Arc<Shared>>) -> Response {
    let scopes: Vec<String> = {
        let st = s.lock();
        let mut all: Vec<String> = st
            .clients
            .values()
            .flat_map(|c| c.scopes.iter().cloned())
            .collect();
        all.sort();
        all.dedup();
        all
    };
    s.record(RecordedRequest {
        endpoint: Endpoint::Metadata,
        path: "/.well-known/oauth-authorization-server".into(),
        params: Vec::new(),
        authorization: None,
        content_type: None,
        client_id: None,
        client_auth: None,
        status: 200,
        error: None,
    });
    let i = &s.issuer;
    Json(json!({
        "issuer": i,
        "authorization_endpoint": format!("{i}/authorize"),
        "token_endpoint": format!("{i}/token"),
        "revocation_endpoint": format!("{i}/revoke"),
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "scopes_supported": scopes,
        "authorization_response_iss_parameter_supported": true,
    }))
    .into_response()
}

async fn authorize(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Response {
    let params = match query {
        Ok(Query(p)) => p,
        Err(e) => {
            let mut st = s.lock();
            st.counters.authorization_requests += 1;
            st.log.push(RecordedRequest {
                endpoint: Endpoint::Authorize,
                path: "/authorize".into(),
                params: Vec::new(),
                authorization: header_str(&headers, header::AUTHORIZATION),
                content_type: None,
                client_id: None,
                client_auth: None,
                status: 400,
                error: Some("invalid_request".into()),
            });
            return error_page(&format!("malformed query: {e}"));
        }
    };
    let (response, status, error) = authorize_inner(&s, &params);
    let mut st = s.lock();
    st.counters.authorization_requests += 1;
    st.log.push(RecordedRequest {
        endpoint: Endpoint::Authorize,
        path: "/authorize".into(),
        client_id: param(&params, "client_id").map(str::to_string),
        params,
        authorization: header_str(&headers, header::AUTHORIZATION),
        content_type: None,
        client_auth: None,
        status,
        error,
    });
    response
}

/// Returns the response, its status and the OAuth error code, if any.
fn authorize_inner(s: &Shared, params: &[(String, String)]) -> (Response, u16, Option<String>) {
    let page = |d: &str| (error_page(d), 400, Some("invalid_request".to_string()));
    if let Some(k) = duplicate_param(params) {
        return page(&format!("parameter {k} sent more than once"));
    }
    let Some(client_id) = param(params, "client_id") else {
        return page("client_id missing");
    };
    let Some(redirect_uri) = param(params, "redirect_uri") else {
        return page("redirect_uri missing");
    };
    let mut st = s.lock();
    let Some(client) = st.clients.get(client_id).cloned() else {
        return page("unknown client_id");
    };
    if !client.redirect_uris.iter().any(|u| u == redirect_uri) {
        return page("redirect_uri is not registered for this client");
    }
    let Ok(mut location) = reqwest::Url::parse(redirect_uri) else {
        return page("registered redirect_uri is not a URL");
    };
    let state = param(params, "state");

    // From here on the redirect URI is trusted: errors go back to the client (§4.1.2.1).
    let redirect = |location: &mut reqwest::Url, pairs: &[(&str, &str)]| {
        {
            let mut q = location.query_pairs_mut();
            for (k, v) in pairs {
                q.append_pair(k, v);
            }
            if let Some(state) = state {
                q.append_pair("state", state);
            }
            q.append_pair("iss", &s.issuer);
        }
        let mut r = StatusCode::SEE_OTHER.into_response();
        r.headers_mut().insert(
            header::LOCATION,
            HeaderValue::from_str(location.as_str()).expect("location header"),
        );
        r.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        r
    };
    let fail = |error: &'static str, description: &str| {
        let r = redirect(
            &mut location.clone(),
            &[("error", error), ("error_description", description)],
        );
        (r, 303, Some(error.to_string()))
    };

    if param(params, "response_type") != Some("code") {
        return fail(
            "unsupported_response_type",
            "only response_type=code is supported",
        );
    }
    match param(params, "code_challenge_method") {
        Some("S256") => {}
        Some("plain") => {
            return fail(
                "invalid_request",
                "code_challenge_method plain is not allowed, use S256",
            )
        }
        Some(_) => return fail("invalid_request", "unsupported code_challenge_method"),
        None => {
            return fail(
                "invalid_request",
                "PKCE required: code_challenge_method=S256",
            )
        }
    }
    let challenge = match param(params, "code_challenge") {
        None => return fail("invalid_request", "PKCE required: code_challenge missing"),
        Some(c) if c.len() != 43 || B64URL.decode(c).map(|b| b.len()) != Ok(32) => {
            return fail(
                "invalid_request",
                "code_challenge is not a base64url SHA-256 hash",
            )
        }
        Some(c) => c.to_string(),
    };
    let requested = scopes_of(param(params, "scope").unwrap_or(""));
    if requested.is_empty() {
        return fail("invalid_scope", "scope is required");
    }
    if let Some(bad) = requested.iter().find(|r| !client.scopes.contains(r)) {
        return fail(
            "invalid_scope",
            &format!("scope {bad} is not allowed for this client"),
        );
    }
    let granted: Vec<String> = match &st.consent {
        Consent::Grant => requested,
        Consent::Deny => Vec::new(),
        Consent::GrantOnly(allowed) => requested
            .into_iter()
            .filter(|r| allowed.contains(r))
            .collect(),
    };
    if granted.is_empty() {
        return fail("access_denied", "the user denied the request");
    }
    let code = random_token("code_");
    let grant = st.new_grant();
    let record = CodeRecord {
        client_id: client_id.to_string(),
        redirect_uri: redirect_uri.to_string(),
        scopes: granted,
        user_id: st.user_id.clone(),
        challenge,
        expires_at: Instant::now() + st.code_ttl,
        used: false,
        grant,
    };
    st.codes.insert(code.clone(), record);
    st.counters.codes_issued += 1;
    (redirect(&mut location, &[("code", &code)]), 303, None)
}

async fn token(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    let form = form.map(|Form(p)| p).map_err(|e| e.body_text());
    // Processed in its own task: once received, a request is handled in full even if the
    // client disconnects (what a slow real server does).
    let task = tokio::spawn(async move { token_task(s, headers, form).await });
    match task.await {
        Ok(r) => r,
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("oauth provider token handler failed: {e}"),
        )
            .into_response(),
    }
}

async fn token_task(
    s: Arc<Shared>,
    headers: HeaderMap,
    form: Result<Vec<(String, String)>, String>,
) -> Response {
    let params = form.clone().unwrap_or_default();
    let fault = {
        let mut st = s.lock();
        st.counters.token_requests += 1;
        match param(&params, "grant_type") {
            Some("authorization_code") => st.counters.code_exchanges += 1,
            Some("refresh_token") => st.counters.refresh_requests += 1,
            _ => {}
        }
        let fault = st.token_faults.pop_front();
        if fault.is_some() {
            st.counters.faults_injected += 1;
        }
        fault
    };
    let mut rec = RecordedRequest {
        endpoint: Endpoint::Token,
        path: "/token".into(),
        params: params.clone(),
        authorization: header_str(&headers, header::AUTHORIZATION),
        content_type: header_str(&headers, header::CONTENT_TYPE),
        client_id: None,
        client_auth: None,
        status: 0,
        error: None,
    };
    match fault {
        Some(TokenFault::InvalidGrant) => {
            rec.status = 400;
            rec.error = Some("invalid_grant".into());
            s.record(rec);
            return OAuthError::new("invalid_grant", "injected: the grant is invalid")
                .into_response();
        }
        Some(TokenFault::ServerError) => {
            rec.status = 500;
            s.record(rec);
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                [(header::CONTENT_TYPE, "text/html")],
                "<html><body><h1>500 Internal Server Error</h1></body></html>",
            )
                .into_response();
        }
        Some(TokenFault::Slow(d)) => tokio::time::sleep(d).await,
        None => {}
    }
    let result = match form {
        Err(e) => Err(OAuthError::new(
            "invalid_request",
            format!("body must be application/x-www-form-urlencoded: {e}"),
        )),
        Ok(params) => {
            let mut st = s.lock();
            token_grant(&mut st, &headers, &params, &mut rec)
        }
    };
    let response = match result {
        Ok(t) => {
            rec.status = 200;
            (
                StatusCode::OK,
                [
                    (header::CACHE_CONTROL, "no-store"),
                    (header::PRAGMA, "no-cache"),
                ],
                Json(json!({
                    "access_token": t.access_token,
                    "token_type": t.token_type,
                    "expires_in": t.expires_in,
                    "refresh_token": t.refresh_token,
                    "scope": t.scope,
                })),
            )
                .into_response()
        }
        Err(e) => {
            rec.status = e.status.as_u16();
            rec.error = Some(e.error.to_string());
            e.into_response()
        }
    };
    s.record(rec);
    response
}

/// Authenticates the client of a token or revocation request; fills in `rec`.
fn authenticate(
    st: &ProviderState,
    headers: &HeaderMap,
    params: &[(String, String)],
    rec: &mut RecordedRequest,
) -> Result<ClientConfig, OAuthError> {
    let body_id = param(params, "client_id");
    let body_secret = param(params, "client_secret");
    let basic = match header_str(headers, header::AUTHORIZATION) {
        Some(h) if h.get(..6).is_some_and(|p| p.eq_ignore_ascii_case("basic ")) => {
            let decoded = B64
                .decode(h.get(6..).unwrap_or("").trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| OAuthError::new("invalid_client", "malformed Basic credentials"))?;
            let (id, secret) = decoded
                .split_once(':')
                .ok_or_else(|| OAuthError::new("invalid_client", "malformed Basic credentials"))?;
            let id = form_decode(id)
                .ok_or_else(|| OAuthError::new("invalid_client", "malformed Basic credentials"))?;
            let secret = form_decode(secret)
                .ok_or_else(|| OAuthError::new("invalid_client", "malformed Basic credentials"))?;
            Some((id, secret))
        }
        _ => None,
    };
    let (id, secret, method) = match (basic, body_secret) {
        (Some(_), Some(_)) => {
            rec.client_id = body_id.map(str::to_string);
            return Err(OAuthError::new(
                "invalid_request",
                "more than one client authentication method",
            ));
        }
        (Some((id, secret)), None) => {
            rec.client_id = Some(id.clone());
            rec.client_auth = Some(ClientAuthMethod::ClientSecretBasic);
            if body_id.is_some_and(|b| b != id) {
                return Err(OAuthError::new(
                    "invalid_client",
                    "client_id in the body differs from the Basic credentials",
                ));
            }
            (id, secret, ClientAuthMethod::ClientSecretBasic)
        }
        (None, Some(secret)) => {
            rec.client_id = body_id.map(str::to_string);
            rec.client_auth = Some(ClientAuthMethod::ClientSecretPost);
            let id = body_id.ok_or_else(|| {
                OAuthError::new("invalid_client", "client_secret without client_id")
            })?;
            (
                id.to_string(),
                secret.to_string(),
                ClientAuthMethod::ClientSecretPost,
            )
        }
        (None, None) => {
            rec.client_id = body_id.map(str::to_string);
            return Err(OAuthError::new(
                "invalid_client",
                "client authentication required",
            ));
        }
    };
    let client = st
        .clients
        .get(&id)
        .ok_or_else(|| OAuthError::new("invalid_client", "unknown client"))?;
    if client.auth_method != method {
        return Err(OAuthError::new(
            "invalid_client",
            format!(
                "client is registered for {}, not {}",
                client.auth_method.as_str(),
                method.as_str()
            ),
        ));
    }
    let equal = client.client_secret.len() == secret.len()
        && client
            .client_secret
            .bytes()
            .zip(secret.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if !equal {
        return Err(OAuthError::new(
            "invalid_client",
            "client authentication failed",
        ));
    }
    Ok(client.clone())
}

fn token_grant(
    st: &mut ProviderState,
    headers: &HeaderMap,
    params: &[(String, String)],
    rec: &mut RecordedRequest,
) -> Result<TokenResponse, OAuthError> {
    if let Some(k) = duplicate_param(params) {
        return Err(OAuthError::new(
            "invalid_request",
            format!("parameter {k} sent more than once"),
        ));
    }
    let client = authenticate(st, headers, params, rec)?;
    match param(params, "grant_type") {
        Some("authorization_code") => exchange_code(st, &client, params),
        Some("refresh_token") => refresh(st, &client, params),
        Some(other) => Err(OAuthError::new(
            "unsupported_grant_type",
            format!("grant_type {other} is not supported"),
        )),
        None => Err(OAuthError::new("invalid_request", "grant_type missing")),
    }
}

fn exchange_code(
    st: &mut ProviderState,
    client: &ClientConfig,
    params: &[(String, String)],
) -> Result<TokenResponse, OAuthError> {
    let code =
        param(params, "code").ok_or_else(|| OAuthError::new("invalid_request", "code missing"))?;
    let redirect_uri = param(params, "redirect_uri")
        .ok_or_else(|| OAuthError::new("invalid_request", "redirect_uri missing"))?;
    let verifier = param(params, "code_verifier").ok_or_else(|| {
        OAuthError::new(
            "invalid_request",
            "code_verifier missing (PKCE is required)",
        )
    })?;
    let now = Instant::now();
    let c = st
        .codes
        .get(code)
        .ok_or_else(|| OAuthError::new("invalid_grant", "unknown authorization code"))?;
    if c.used {
        // RFC 6749 §4.1.2: revoke every token issued from this code.
        let grant = c.grant;
        st.revoke_grant(grant);
        return Err(OAuthError::new(
            "invalid_grant",
            "authorization code already used; its tokens are revoked",
        ));
    }
    if c.client_id != client.client_id {
        return Err(OAuthError::new(
            "invalid_grant",
            "authorization code was issued to another client",
        ));
    }
    if c.expires_at <= now {
        return Err(OAuthError::new(
            "invalid_grant",
            "authorization code expired",
        ));
    }
    if c.redirect_uri != redirect_uri {
        return Err(OAuthError::new(
            "invalid_grant",
            "redirect_uri differs from the authorization request",
        ));
    }
    if !valid_verifier(verifier) {
        return Err(OAuthError::new(
            "invalid_request",
            "code_verifier is not 43-128 unreserved characters",
        ));
    }
    if pkce_challenge(verifier) != c.challenge {
        return Err(OAuthError::new("invalid_grant", "PKCE verification failed"));
    }
    let (user, scopes, grant) = (c.user_id.clone(), c.scopes.clone(), c.grant);
    if let Some(c) = st.codes.get_mut(code) {
        c.used = true;
    }
    Ok(st.issue(&client.client_id, &user, &scopes, &scopes, grant))
}

fn refresh(
    st: &mut ProviderState,
    client: &ClientConfig,
    params: &[(String, String)],
) -> Result<TokenResponse, OAuthError> {
    let presented = param(params, "refresh_token")
        .ok_or_else(|| OAuthError::new("invalid_request", "refresh_token missing"))?;
    let now = Instant::now();
    let t = st
        .tokens
        .get(presented)
        .filter(|t| t.kind == TokenKind::Refresh)
        .ok_or_else(|| OAuthError::new("invalid_grant", "unknown refresh token"))?;
    if t.client_id != client.client_id {
        return Err(OAuthError::new(
            "invalid_grant",
            "refresh token was issued to another client",
        ));
    }
    if t.revoked {
        return Err(OAuthError::new("invalid_grant", "refresh token revoked"));
    }
    if t.rotated {
        let grant = t.grant;
        if st.revoke_grant_on_refresh_reuse {
            st.revoke_grant(grant);
        }
        return Err(OAuthError::new(
            "invalid_grant",
            "refresh token already used (rotated)",
        ));
    }
    if t.expired(now) {
        return Err(OAuthError::new("invalid_grant", "refresh token expired"));
    }
    let original = t.scopes.clone();
    let access_scopes = match param(params, "scope") {
        None => original.clone(),
        Some(s) => {
            let requested = scopes_of(s);
            if requested.is_empty() {
                return Err(OAuthError::new("invalid_scope", "empty scope"));
            }
            if let Some(bad) = requested.iter().find(|r| !original.contains(r)) {
                return Err(OAuthError::new(
                    "invalid_scope",
                    format!("scope {bad} was not originally granted"),
                ));
            }
            requested
        }
    };
    let (user, grant) = (t.user_id.clone(), t.grant);
    if let Some(t) = st.tokens.get_mut(presented) {
        t.rotated = true;
    }
    st.counters.refreshes += 1;
    Ok(st.issue(&client.client_id, &user, &access_scopes, &original, grant))
}

async fn revoke(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    let mut st = s.lock();
    st.counters.revocation_requests += 1;
    let form = form.map(|Form(p)| p).map_err(|e| e.body_text());
    let mut rec = RecordedRequest {
        endpoint: Endpoint::Revoke,
        path: "/revoke".into(),
        params: form.clone().unwrap_or_default(),
        authorization: header_str(&headers, header::AUTHORIZATION),
        content_type: header_str(&headers, header::CONTENT_TYPE),
        client_id: None,
        client_auth: None,
        status: 0,
        error: None,
    };
    if st.revocation_faults > 0 {
        st.revocation_faults -= 1;
        st.counters.faults_injected += 1;
        rec.status = 503;
        rec.error = Some("temporarily_unavailable".into());
        st.log.push(rec);
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "1")],
            Json(json!({ "error": "temporarily_unavailable" })),
        )
            .into_response();
    }
    let result = (|| {
        let params = form.map_err(|e| {
            OAuthError::new("invalid_request", format!("body must be form-encoded: {e}"))
        })?;
        if let Some(k) = duplicate_param(&params) {
            return Err(OAuthError::new(
                "invalid_request",
                format!("parameter {k} sent more than once"),
            ));
        }
        let client = authenticate(&st, &headers, &params, &mut rec)?;
        let token = param(&params, "token")
            .ok_or_else(|| OAuthError::new("invalid_request", "token missing"))?;
        // token_type_hint is only a hint (§2.1): every kind is searched.
        let Some(t) = st.tokens.get(token) else {
            return Ok(());
        };
        if t.client_id != client.client_id {
            return Ok(()); // not this client's token: 200, nothing revoked, nothing revealed
        }
        if t.revoked {
            return Ok(());
        }
        match t.kind {
            TokenKind::Refresh => {
                let grant = t.grant;
                st.revoke_grant(grant);
            }
            TokenKind::Access => {
                if let Some(t) = st.tokens.get_mut(token) {
                    t.revoked = true;
                }
            }
        }
        st.counters.revocations += 1;
        Ok(())
    })();
    let response = match result {
        Ok(()) => {
            rec.status = 200;
            StatusCode::OK.into_response()
        }
        Err(e) => {
            rec.status = e.status.as_u16();
            rec.error = Some(e.error.to_string());
            e.into_response()
        }
    };
    st.log.push(rec);
    response
}

async fn api_me(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    api(&s, &headers, "/api/me".to_string(), None)
}

async fn api_require(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(scope): Path<String>,
) -> Response {
    api(&s, &headers, format!("/api/require/{scope}"), Some(scope))
}

/// RFC 6750 resource server behaviour.
fn api(s: &Shared, headers: &HeaderMap, path: String, required_scope: Option<String>) -> Response {
    let mut st = s.lock();
    st.counters.api_requests += 1;
    let authorization = header_str(headers, header::AUTHORIZATION);
    let bearer = authorization
        .as_deref()
        .filter(|h| {
            h.get(..7)
                .is_some_and(|p| p.eq_ignore_ascii_case("bearer "))
        })
        .map(|h| h.get(7..).unwrap_or("").trim().to_string());
    let now = Instant::now();
    let outcome: Result<Value, (StatusCode, Option<&'static str>, &'static str)> = match &bearer {
        None => Err((StatusCode::UNAUTHORIZED, None, "bearer token required")),
        Some(tok) => match st.tokens.get(tok).filter(|t| t.kind == TokenKind::Access) {
            None => Err((
                StatusCode::UNAUTHORIZED,
                Some("invalid_token"),
                "unknown token",
            )),
            Some(t) if t.revoked => Err((
                StatusCode::UNAUTHORIZED,
                Some("invalid_token"),
                "token revoked",
            )),
            Some(t) if t.expired(now) => Err((
                StatusCode::UNAUTHORIZED,
                Some("invalid_token"),
                "token expired",
            )),
            Some(t)
                if required_scope
                    .as_ref()
                    .is_some_and(|r| !t.scopes.contains(r)) =>
            {
                Err((
                    StatusCode::FORBIDDEN,
                    Some("insufficient_scope"),
                    "token lacks the required scope",
                ))
            }
            Some(t) => Ok(json!({
                "sub": t.user_id,
                "user_id": t.user_id,
                "client_id": t.client_id,
                "scope": t.scopes.join(" "),
                "scopes": t.scopes,
            })),
        },
    };
    let (response, status, error) = match outcome {
        Ok(body) => (Json(body).into_response(), 200, None),
        Err((status, error, description)) => {
            let challenge = match (error, &required_scope) {
                (None, _) => format!("Bearer realm=\"{REALM}\""),
                (Some(e @ "insufficient_scope"), Some(scope)) => {
                    format!("Bearer realm=\"{REALM}\", error=\"{e}\", error_description=\"{description}\", scope=\"{scope}\"")
                }
                (Some(e), _) => format!(
                    "Bearer realm=\"{REALM}\", error=\"{e}\", error_description=\"{description}\""
                ),
            };
            let mut r = (
                status,
                Json(json!({ "error": error, "error_description": description })),
            )
                .into_response();
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_str(&challenge).expect("challenge header"),
            );
            (r, status.as_u16(), error.map(str::to_string))
        }
    };
    st.log.push(RecordedRequest {
        endpoint: Endpoint::Api,
        path,
        params: Vec::new(),
        authorization,
        content_type: None,
        client_id: None,
        client_auth: None,
        status,
        error,
    });
    response
}

// ---------------------------------------------------------------------------------------------
// Tests of the fixture
// ---------------------------------------------------------------------------------------------

mod self_tests {
    use super::*;
    use reqwest::StatusCode;

    const BASIC_ID: &str = "basic-client";
    const BASIC_SECRET: &str = "basic-secret";
    const POST_ID: &str = "post-client";
    const POST_SECRET: &str = "post-secret";
    const REDIRECT: &str = "http://127.0.0.1:9/callback";

    fn config() -> ProviderConfig {
        ProviderConfig::default()
            .client(
                ClientConfig::new(BASIC_ID, BASIC_SECRET, ClientAuthMethod::ClientSecretBasic)
                    .redirect_uri(REDIRECT)
                    .scopes(&["read", "write", "admin"]),
            )
            .client(
                ClientConfig::new(POST_ID, POST_SECRET, ClientAuthMethod::ClientSecretPost)
                    .redirect_uri(REDIRECT)
                    .scopes(&["read", "write"]),
            )
    }

    fn query(url: &reqwest::Url, name: &str) -> Option<String> {
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    /// Runs the front channel; returns (code, verifier).
    async fn code_for(p: &OAuthProvider, client_id: &str, scope: &str) -> (String, String) {
        let (verifier, challenge) = pkce_pair();
        let loc = p
            .visit(&p.authorization_request(client_id, REDIRECT, scope, "st-1", &challenge))
            .await;
        let code = query(&loc, "code").unwrap_or_else(|| panic!("no code in {loc}"));
        (code, verifier)
    }

    struct Client<'a> {
        id: &'a str,
        secret: &'a str,
        method: ClientAuthMethod,
    }

    const BASIC: Client<'static> = Client {
        id: BASIC_ID,
        secret: BASIC_SECRET,
        method: ClientAuthMethod::ClientSecretBasic,
    };
    const POST: Client<'static> = Client {
        id: POST_ID,
        secret: POST_SECRET,
        method: ClientAuthMethod::ClientSecretPost,
    };

    /// POSTs a form to `url` authenticated as `c`; returns status and JSON (Null if none).
    async fn post_form(url: &str, c: &Client<'_>, form: &[(&str, &str)]) -> (StatusCode, Value) {
        let mut form: Vec<(&str, &str)> = form.to_vec();
        let mut req = reqwest::Client::new().post(url);
        match c.method {
            ClientAuthMethod::ClientSecretBasic => {
                req = req.header("authorization", basic_auth_header(c.id, c.secret))
            }
            ClientAuthMethod::ClientSecretPost => {
                form.extend([("client_id", c.id), ("client_secret", c.secret)])
            }
        }
        let r = req.form(&form).send().await.expect("POST");
        let status = r.status();
        let body = r.text().await.expect("body");
        (status, serde_json::from_str(&body).unwrap_or(Value::Null))
    }

    async fn exchange(
        p: &OAuthProvider,
        c: &Client<'_>,
        code: &str,
        verifier: &str,
    ) -> (StatusCode, Value) {
        post_form(
            &p.token_url(),
            c,
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", verifier),
            ],
        )
        .await
    }

    async fn refresh(p: &OAuthProvider, c: &Client<'_>, rt: &str) -> (StatusCode, Value) {
        post_form(
            &p.token_url(),
            c,
            &[("grant_type", "refresh_token"), ("refresh_token", rt)],
        )
        .await
    }

    async fn me(p: &OAuthProvider, access: &str) -> (StatusCode, Value, String) {
        let r = reqwest::Client::new()
            .get(p.api_me_url())
            .bearer_auth(access)
            .send()
            .await
            .expect("GET /api/me");
        let status = r.status();
        let challenge = r
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        (status, r.json().await.unwrap_or(Value::Null), challenge)
    }

    fn s(v: &Value, k: &str) -> String {
        v[k].as_str()
            .unwrap_or_else(|| panic!("{k} missing in {v}"))
            .to_string()
    }

    async fn full_flow(c: Client<'_>) {
        let p = OAuthProvider::start(config()).await;
        let (verifier, challenge) = pkce_pair();
        let loc = p
            .visit(&p.authorization_request(c.id, REDIRECT, "read write", "xyz state", &challenge))
            .await;
        assert!(loc.as_str().starts_with(REDIRECT), "{loc}");
        assert_eq!(query(&loc, "state").as_deref(), Some("xyz state"));
        assert_eq!(query(&loc, "iss").as_deref(), Some(p.issuer()));
        let code = query(&loc, "code").expect("code");

        let r = reqwest::Client::new();
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier.as_str()),
        ];
        let mut req = r.post(p.token_url());
        match c.method {
            ClientAuthMethod::ClientSecretBasic => req = req.basic_auth(c.id, Some(c.secret)),
            ClientAuthMethod::ClientSecretPost => {
                form.extend([("client_id", c.id), ("client_secret", c.secret)])
            }
        }
        let resp = req.form(&form).send().await.expect("token");
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(
            resp.headers()
                .get("cache-control")
                .and_then(|v| v.to_str().ok()),
            Some("no-store")
        );
        let t: TokenResponse = resp.json().await.expect("token json");
        assert_eq!(t.token_type, "Bearer");
        assert_eq!(t.expires_in, 3600);
        assert_eq!(t.scope, "read write");
        assert!(t.refresh_token.is_some());

        let (status, body, _) = me(&p, &t.access_token).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["user_id"], "user-1");
        assert_eq!(body["client_id"], c.id);
        assert_eq!(body["scopes"], json!(["read", "write"]));

        let req = p
            .last_request_to(Endpoint::Token)
            .expect("token request logged");
        assert_eq!(req.client_auth, Some(c.method));
        assert_eq!(req.client_id.as_deref(), Some(c.id));
        assert_eq!(req.param("code_verifier"), Some(verifier.as_str()));
        assert_eq!(req.grant_type(), Some("authorization_code"));
        assert_eq!(req.status, 200);
        match c.method {
            ClientAuthMethod::ClientSecretBasic => assert_eq!(req.param("client_secret"), None),
            ClientAuthMethod::ClientSecretPost => assert!(req.authorization.is_none()),
        }
        let a = p
            .last_request_to(Endpoint::Authorize)
            .expect("authorize logged");
        assert_eq!(a.param("code_challenge"), Some(challenge.as_str()));
        assert_eq!(a.param("code_challenge_method"), Some("S256"));
        let n = p.counters();
        assert_eq!(
            (
                n.authorization_requests,
                n.codes_issued,
                n.token_requests,
                n.code_exchanges
            ),
            (1, 1, 1, 1)
        );
        assert_eq!((n.tokens_issued, n.api_requests, n.refreshes), (1, 1, 0));
    }

    #[tokio::test]
    async fn code_flow_with_pkce_client_secret_basic() {
        full_flow(BASIC).await;
    }

    #[tokio::test]
    async fn code_flow_with_pkce_client_secret_post() {
        full_flow(POST).await;
    }

    #[tokio::test]
    async fn metadata_describes_the_endpoints() {
        let p = OAuthProvider::start(config()).await;
        let m: Value = reqwest::get(p.metadata_url())
            .await
            .expect("metadata")
            .json()
            .await
            .expect("json");
        assert_eq!(m["issuer"], p.issuer());
        assert_eq!(m["token_endpoint"], p.token_url());
        assert_eq!(m["authorization_endpoint"], p.authorization_url());
        assert_eq!(m["revocation_endpoint"], p.revocation_url());
        assert_eq!(m["code_challenge_methods_supported"], json!(["S256"]));
    }

    #[tokio::test]
    async fn client_authentication_is_checked() {
        let p = OAuthProvider::start(config()).await;
        let (code, verifier) = code_for(&p, BASIC_ID, "read").await;
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier.as_str()),
        ];

        for wrong in [
            Client {
                secret: "nope",
                ..BASIC
            },
            Client {
                secret: "nope",
                ..POST
            },
            Client { id: "who", ..BASIC },
        ] {
            let (status, body) = post_form(&p.token_url(), &wrong, &form).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
            assert_eq!(body["error"], "invalid_client");
        }
        // The basic client presenting its (right) secret in the body: wrong method.
        let (status, body) = post_form(
            &p.token_url(),
            &Client {
                method: ClientAuthMethod::ClientSecretPost,
                ..BASIC
            },
            &form,
        )
        .await;
        assert_eq!(
            (status, s(&body, "error").as_str()),
            (StatusCode::UNAUTHORIZED, "invalid_client"),
            "{body}"
        );
        // The post client using Basic: wrong method.
        let (status, body) = post_form(
            &p.token_url(),
            &Client {
                method: ClientAuthMethod::ClientSecretBasic,
                ..POST
            },
            &form,
        )
        .await;
        assert_eq!(
            (status, s(&body, "error").as_str()),
            (StatusCode::UNAUTHORIZED, "invalid_client"),
            "{body}"
        );
        // No credentials at all.
        let r = reqwest::Client::new()
            .post(p.token_url())
            .form(&form)
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert!(r.headers().get("www-authenticate").is_some());
        // Both methods at once.
        let mut both = form.to_vec();
        both.extend([("client_id", BASIC_ID), ("client_secret", BASIC_SECRET)]);
        let (status, body) = post_form(&p.token_url(), &BASIC, &both).await;
        assert_eq!(
            (status, s(&body, "error").as_str()),
            (StatusCode::BAD_REQUEST, "invalid_request"),
            "{body}"
        );
        // Not form-encoded.
        let r = reqwest::Client::new()
            .post(p.token_url())
            .header("authorization", basic_auth_header(BASIC_ID, BASIC_SECRET))
            .json(&json!({"grant_type": "authorization_code"}))
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            r.json::<Value>().await.expect("json")["error"],
            "invalid_request"
        );
        // None of that consumed the code.
        let (status, body) = exchange(&p, &BASIC, &code, &verifier).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(p.counters().token_requests, 9);
    }

    #[tokio::test]
    async fn basic_credentials_are_form_encoded() {
        let p = OAuthProvider::start(config()).await;
        let secret = "s3cr3t:+/& é%";
        p.register_client(
            ClientConfig::new("odd:id", secret, ClientAuthMethod::ClientSecretBasic)
                .redirect_uri(REDIRECT)
                .scopes(&["read"]),
        );
        let (code, verifier) = code_for(&p, "odd:id", "read").await;
        let c = Client {
            id: "odd:id",
            secret,
            method: ClientAuthMethod::ClientSecretBasic,
        };
        let (status, body) = exchange(&p, &c, &code, &verifier).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            p.last_request_to(Endpoint::Token)
                .and_then(|r| r.client_id)
                .as_deref(),
            Some("odd:id")
        );
    }

    #[tokio::test]
    async fn wrong_redirect_uri_is_never_redirected_to() {
        let p = OAuthProvider::start(config()).await;
        let http = no_redirect_client();
        let (_, challenge) = pkce_pair();
        for (client, uri) in [
            (BASIC_ID, "http://127.0.0.1:9/callback/"),
            (BASIC_ID, "http://127.0.0.1:9/callback?x=1"),
            (BASIC_ID, "http://127.0.0.1:9/CALLBACK"),
            (BASIC_ID, "http://evil.example/callback"),
            ("unknown-client", REDIRECT),
        ] {
            let r = http
                .get(p.authorization_request(client, uri, "read", "st", &challenge))
                .send()
                .await
                .expect("get");
            assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{client} {uri}");
            assert!(r.headers().get("location").is_none());
        }
        // Missing redirect_uri: also a page.
        let url = p
            .authorization_request(BASIC_ID, REDIRECT, "read", "st", &challenge)
            .replace("redirect_uri=", "x=");
        assert_eq!(
            http.get(url).send().await.expect("get").status(),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(p.counters().codes_issued, 0);

        // The token request must repeat the exact redirect_uri.
        let (code, verifier) = code_for(&p, BASIC_ID, "read").await;
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", "http://127.0.0.1:9/callback/"),
            ("code_verifier", verifier.as_str()),
        ];
        let (status, body) = post_form(&p.token_url(), &BASIC, &form).await;
        assert_eq!(
            (status, s(&body, "error").as_str()),
            (StatusCode::BAD_REQUEST, "invalid_grant"),
            "{body}"
        );
        let (status, body) = post_form(
            &p.token_url(),
            &BASIC,
            &form[..2]
                .iter()
                .chain(&form[3..])
                .copied()
                .collect::<Vec<_>>(),
        )
        .await;
        assert_eq!(
            (status, s(&body, "error").as_str()),
            (StatusCode::BAD_REQUEST, "invalid_request"),
            "{body}"
        );
    }

    #[tokio::test]
    async fn pkce_s256_is_required() {
        let p = OAuthProvider::start(config()).await;
        let (verifier, challenge) = pkce_pair();
        let good = p.authorization_request(BASIC_ID, REDIRECT, "read", "st", &challenge);
        for (url, what) in [
            (good.replace("&code_challenge_method=S256", ""), "no method"),
            (
                good.replace("code_challenge_method=S256", "code_challenge_method=plain"),
                "plain",
            ),
            (
                good.replace(&format!("&code_challenge={challenge}"), ""),
                "no challenge",
            ),
            (good.replace(&challenge, "short"), "malformed challenge"),
        ] {
            let loc = p.visit(&url).await;
            assert_eq!(
                query(&loc, "error").as_deref(),
                Some("invalid_request"),
                "{what}: {loc}"
            );
            assert_eq!(query(&loc, "state").as_deref(), Some("st"), "{what}");
            assert_eq!(query(&loc, "code"), None, "{what}");
        }
        // plain with the verifier as challenge is refused too.
        let plain = p
            .authorization_request(BASIC_ID, REDIRECT, "read", "st", &verifier)
            .replace("code_challenge_method=S256", "code_challenge_method=plain");
        assert_eq!(
            query(&p.visit(&plain).await, "error").as_deref(),
            Some("invalid_request")
        );
        assert_eq!(p.counters().codes_issued, 0);

        // Token side: missing, malformed and wrong verifiers.
        let (code, verifier) = code_for(&p, BASIC_ID, "read").await;
        let (other_verifier, _) = pkce_pair();
        let base = [
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
        ];
        let (status, body) = post_form(&p.token_url(), &BASIC, &base).await;
        assert_eq!(
            (status, s(&body, "error").as_str()),
            (StatusCode::BAD_REQUEST, "invalid_request"),
            "{body}"
        );
        let (status, body) = exchange(&p, &BASIC, &code, "too-short").await;
        assert_eq!(
            (status, s(&body, "error").as_str()),
            (StatusCode::BAD_REQUEST, "invalid_request"),
            "{body}"
        );
        let (status, body) = exchange(&p, &BASIC, &code, &other_verifier).await;
        assert_eq!(
            (status, s(&body, "error").as_str()),
            (StatusCode::BAD_REQUEST, "invalid_grant"),
            "{body}"
        );
        let (status, body) = exchange(&p, &BASIC, &code, &pkce_challenge(&verifier)).await; // the challenge itself
        assert_eq!(
            (status, s(&body, "error").as_str()),
            (StatusCode::BAD_REQUEST, "invalid_grant"),
            "{body}"
        );
        let (status, body) = exchange(&p, &BASIC, &code, &verifier).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    #[tokio::test]
    async fn code_reuse_is_refused_and_revokes_its_tokens() {
        let p = OAuthProvider::start(config()).await;
        let (code, verifier) = code_for(&p, POST_ID, "read").await;
        let (status, first) = exchange(&p, &POST, &code, &verifier).await;
        assert_eq!(status, StatusCode::OK);
        let (access, refresh_token) = (s(&first, "access_token"), s(&first, "refresh_token"));
        assert_eq!(me(&p, &access).await.0, StatusCode::OK);

        let (status, body) = exchange(&p, &POST, &code, &verifier).await;
        assert_eq!(
            (status, s(&body, "error").as_str()),
            (StatusCode::BAD_REQUEST, "invalid_grant"),
            "{body}"
        );
        let (status, _, challenge) = me(&p, &access).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(
            challenge.contains("invalid_token") && challenge.contains("revoked"),
            "{challenge}"
        );
        let (status, body) = refresh(&p, &POST, &refresh_token).await;
        assert_eq!(
            (status, s(&body, "error").as_str()),
            (StatusCode::BAD_REQUEST, "invalid_grant"),
            "{body}"
        );
        assert!(p
            .token_info(&refresh_token)
            .is_some_and(|i| i.revoked && !i.active));
    }

    #[tokio::test]
    async fn codes_are_bound_to_the_client_and_expire() {
        let p = OAuthProvider::start(config()).await;
        let (code, verifier) = code_for(&p, BASIC_ID, "read").await;
        let (status, body) = exchange(&p, &POST, &code, &verifier).await;
        assert_eq!(
            (status, s(&body, "error").as_str()),
            (StatusCode::BAD_REQUEST, "invalid_grant"),
            "{body}"
        );
        let (status, _) = exchange(&p, &BASIC, &code, &verifier).await;
        assert_eq!(status, StatusCode::OK);

        p.set_code_ttl(Duration::ZERO);
        let (code, verifier) = code_for(&p, BASIC_ID, "read").await;
        let (status, body) = exchange(&p, &BASIC, &code, &verifier).await;
        assert_eq!(
            (status, s(&body, "error").as_str()),
            (StatusCode::BAD_REQUEST, "invalid_grant"),
            "{body}"
        );
        let (status, body) = exchange(&p, &BASIC, "code_unknown", &verifier).await;
        assert_eq!(
            (status, s(&body, "error").as_str()),
            (StatusCode::BAD_REQUEST, "invalid_grant"),
            "{body}"
        );
        let (status, body) = post_form(&p.token_url(), &BASIC, &[("grant_type", "password")]).await;
        assert_eq!(
            (status, s(&body, "error").as_str()),
            (StatusCode::BAD_REQUEST, "unsupported_grant_type"),
            "{body}"
        );
    }

    #[tokio::test]
    async fn scopes_and_consent() {
        let p = OAuthProvider::start(config()).await;
        let (_, challenge) = pkce_pair();
        let loc = p
            .visit(&p.authorization_request(POST_ID, REDIRECT, "read admin", "st", &challenge))
            .await;
        assert_eq!(
            query(&loc, "error").as_deref(),
            Some("invalid_scope"),
            "{loc}"
        );
        let loc = p
            .visit(&p.authorization_request(POST_ID, REDIRECT, "", "st", &challenge))
            .await;
        assert_eq!(
            query(&loc, "error").as_deref(),
            Some("invalid_scope"),
            "{loc}"
        );

        p.set_consent(Consent::Deny);
        let loc = p
            .visit(&p.authorization_request(POST_ID, REDIRECT, "read", "deny-state", &challenge))
            .await;
        assert_eq!(query(&loc, "error").as_deref(), Some("access_denied"));
        assert_eq!(query(&loc, "state").as_deref(), Some("deny-state"));
        assert_eq!(query(&loc, "code"), None);
        assert_eq!(
            p.last_request_to(Endpoint::Authorize)
                .and_then(|r| r.error)
                .as_deref(),
            Some("access_denied")
        );

        p.set_consent(Consent::GrantOnly(vec!["read".into()]));
        p.set_user("user-42");
        let (code, verifier) = code_for(&p, POST_ID, "read write").await;
        let (status, body) = exchange(&p, &POST, &code, &verifier).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["scope"], "read");
        let (_, who, _) = me(&p, &s(&body, "access_token")).await;
        assert_eq!(
            (who["user_id"].clone(), who["scopes"].clone()),
            (json!("user-42"), json!(["read"]))
        );
    }

    #[tokio::test]
    async fn refresh_rotates_and_detects_reuse() {
        let p = OAuthProvider::start(config()).await;
        let (code, verifier) = code_for(&p, BASIC_ID, "read write").await;
        let (_, t0) = exchange(&p, &BASIC, &code, &verifier).await;
        let rt0 = s(&t0, "refresh_token");

        let (status, t1) = refresh(&p, &BASIC, &rt0).await;
        assert_eq!(status, StatusCode::OK, "{t1}");
        let rt1 = s(&t1, "refresh_token");
        assert_ne!(rt0, rt1);
        assert_ne!(s(&t0, "access_token"), s(&t1, "access_token"));
        assert_eq!(t1["scope"], "read write");
        assert!(p.token_info(&rt0).is_some_and(|i| i.rotated && !i.active));
        assert_eq!(me(&p, &s(&t1, "access_token")).await.0, StatusCode::OK);

        // Narrowing is allowed, widening is not; the refresh token keeps the original scope.
        let (status, t2) = post_form(
            &p.token_url(),
            &BASIC,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &rt1),
                ("scope", "read"),
            ],
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{t2}");
        assert_eq!(t2["scope"], "read");
        let rt2 = s(&t2, "refresh_token");
        assert_eq!(
            p.token_info(&rt2).map(|i| i.scopes),
            Some(vec!["read".to_string(), "write".to_string()])
        );
        let (status, body) = post_form(
            &p.token_url(),
            &BASIC,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &rt2),
                ("scope", "read admin"),
            ],
        )
        .await;
        assert_eq!(
            (status, s(&body, "error").as_str()),
            (StatusCode::BAD_REQUEST, "invalid_scope"),
            "{body}"
        );
        // Another client cannot use it.
        let (status, body) = refresh(&p, &POST, &rt2).await;
        assert_eq!(
            (status, s(&body, "error").as_str()),
            (StatusCode::BAD_REQUEST, "invalid_grant"),
            "{body}"
        );
        assert!(p.is_active(&rt2));

        // Reusing a rotated refresh token: refused, and the whole grant revoked.
        let (status, body) = refresh(&p, &BASIC, &rt0).await;
        assert_eq!(
            (status, s(&body, "error").as_str()),
            (StatusCode::BAD_REQUEST, "invalid_grant"),
            "{body}"
        );
        assert!(!p.is_active(&rt2));
        assert_eq!(
            me(&p, &s(&t2, "access_token")).await.0,
            StatusCode::UNAUTHORIZED
        );
        let (status, _) = refresh(&p, &BASIC, &rt2).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);

        let n = p.counters();
        assert_eq!(
            (n.refresh_requests, n.refreshes, n.code_exchanges),
            (6, 2, 1)
        );

        // Expired refresh tokens.
        let t = p.issue_tokens(BASIC_ID, "user-9", &["read"]);
        let rt = t.refresh_token.expect("refresh token");
        p.expire_token(&rt);
        let (status, body) = refresh(&p, &BASIC, &rt).await;
        assert_eq!(
            (status, s(&body, "error").as_str()),
            (StatusCode::BAD_REQUEST, "invalid_grant"),
            "{body}"
        );
    }

    #[tokio::test]
    async fn clients_without_refresh_tokens() {
        let p = OAuthProvider::start(config()).await;
        p.register_client(
            ClientConfig::new("no-rt", "x", ClientAuthMethod::ClientSecretPost)
                .redirect_uri(REDIRECT)
                .scopes(&["read"])
                .without_refresh_tokens(),
        );
        let (code, verifier) = code_for(&p, "no-rt", "read").await;
        let (status, body) = exchange(
            &p,
            &Client {
                id: "no-rt",
                secret: "x",
                method: ClientAuthMethod::ClientSecretPost,
            },
            &code,
            &verifier,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            body.get("refresh_token").is_none_or(Value::is_null),
            "{body}"
        );
    }

    #[tokio::test]
    async fn revocation() {
        let p = OAuthProvider::start(config()).await;
        let t = p.issue_tokens(POST_ID, "user-7", &["read"]);
        let rt = t.refresh_token.clone().expect("refresh token");

        // Access token: only it is revoked.
        let (status, _) = post_form(
            &p.revocation_url(),
            &POST,
            &[
                ("token", &t.access_token),
                ("token_type_hint", "access_token"),
            ],
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let (status, _, challenge) = me(&p, &t.access_token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(challenge.contains("revoked"), "{challenge}");
        assert!(p.is_active(&rt));

        // Refresh token (with a wrong hint): the grant is revoked.
        let (status, t2) = refresh(&p, &POST, &rt).await;
        assert_eq!(status, StatusCode::OK);
        let rt2 = s(&t2, "refresh_token");
        let (status, _) = post_form(
            &p.revocation_url(),
            &POST,
            &[("token", &rt2), ("token_type_hint", "access_token")],
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let (status, body) = refresh(&p, &POST, &rt2).await;
        assert_eq!(
            (status, s(&body, "error").as_str()),
            (StatusCode::BAD_REQUEST, "invalid_grant"),
            "{body}"
        );
        assert_eq!(
            me(&p, &s(&t2, "access_token")).await.0,
            StatusCode::UNAUTHORIZED
        );

        // Unknown tokens and other clients' tokens: 200, nothing revoked.
        let (status, _) =
            post_form(&p.revocation_url(), &POST, &[("token", "no-such-token")]).await;
        assert_eq!(status, StatusCode::OK);
        let other = p.issue_tokens(BASIC_ID, "user-8", &["read"]);
        let (status, _) = post_form(
            &p.revocation_url(),
            &POST,
            &[("token", &other.access_token)],
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert!(p.is_active(&other.access_token));

        // Client authentication is required; the token parameter too.
        let (status, body) = post_form(
            &p.revocation_url(),
            &Client {
                secret: "bad",
                ..POST
            },
            &[("token", &other.access_token)],
        )
        .await;
        assert_eq!(
            (status, s(&body, "error").as_str()),
            (StatusCode::UNAUTHORIZED, "invalid_client"),
            "{body}"
        );
        let r = reqwest::Client::new()
            .post(p.revocation_url())
            .form(&[("token", &other.access_token)])
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let (status, body) = post_form(&p.revocation_url(), &BASIC, &[]).await;
        assert_eq!(
            (status, s(&body, "error").as_str()),
            (StatusCode::BAD_REQUEST, "invalid_request"),
            "{body}"
        );
        let (status, _) = post_form(
            &p.revocation_url(),
            &BASIC,
            &[("token", &other.access_token)],
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert!(!p.is_active(&other.access_token));

        // Injected unavailability.
        p.fail_next_revocations(1);
        let r = reqwest::Client::new()
            .post(p.revocation_url())
            .basic_auth(BASIC_ID, Some(BASIC_SECRET))
            .form(&[("token", "x")])
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            r.headers().get("retry-after").and_then(|v| v.to_str().ok()),
            Some("1")
        );

        let n = p.counters();
        assert_eq!(
            (n.revocation_requests, n.revocations, n.faults_injected),
            (9, 3, 1)
        );
        let logged = p.requests_to(Endpoint::Revoke);
        assert_eq!(logged.len(), 9);
        assert_eq!(
            logged[0].client_auth,
            Some(ClientAuthMethod::ClientSecretPost)
        );
        assert_eq!(logged[0].param("token_type_hint"), Some("access_token"));
    }

    #[tokio::test]
    async fn injected_token_faults() {
        let p = OAuthProvider::start(config()).await;
        let t = p.issue_tokens(BASIC_ID, "user-1", &["read"]);
        let rt = t.refresh_token.expect("refresh token");

        p.fail_next_token_requests(2, TokenFault::InvalidGrant);
        p.fail_next_token_requests(1, TokenFault::ServerError);
        for _ in 0..2 {
            let (status, body) = refresh(&p, &BASIC, &rt).await;
            assert_eq!(
                (status, s(&body, "error").as_str()),
                (StatusCode::BAD_REQUEST, "invalid_grant"),
                "{body}"
            );
        }
        let (status, body) = refresh(&p, &BASIC, &rt).await;
        assert_eq!(
            (status, body),
            (StatusCode::INTERNAL_SERVER_ERROR, Value::Null)
        );
        // Nothing was consumed by the faults.
        assert!(p.is_active(&rt));
        let (status, t1) = refresh(&p, &BASIC, &rt).await;
        assert_eq!(status, StatusCode::OK, "{t1}");

        // Slow: answered after the delay, and processed even when the client gave up.
        let rt1 = s(&t1, "refresh_token");
        p.fail_next_token_requests(1, TokenFault::Slow(Duration::from_millis(800)));
        let started = Instant::now();
        let r = reqwest::Client::builder()
            .timeout(Duration::from_millis(200))
            .build()
            .expect("client")
            .post(p.token_url())
            .basic_auth(BASIC_ID, Some(BASIC_SECRET))
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", rt1.as_str()),
            ])
            .send()
            .await;
        assert!(r.is_err_and(|e| e.is_timeout()));
        crate::harness::eventually(Duration::from_secs(5), "slow refresh processed", || async {
            p.token_info(&rt1).is_some_and(|i| i.rotated)
        })
        .await;
        assert!(started.elapsed() >= Duration::from_millis(800));

        p.fail_next_token_requests(1, TokenFault::Slow(Duration::from_millis(300)));
        let t = p.issue_tokens(BASIC_ID, "user-1", &["read"]);
        let started = Instant::now();
        let (status, body) = refresh(&p, &BASIC, t.refresh_token.as_deref().expect("rt")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(started.elapsed() >= Duration::from_millis(300));

        let n = p.counters();
        assert_eq!(
            (
                n.token_requests,
                n.refresh_requests,
                n.refreshes,
                n.faults_injected
            ),
            (6, 6, 3, 5)
        );
        let statuses: Vec<u16> = p
            .requests_to(Endpoint::Token)
            .iter()
            .map(|r| r.status)
            .collect();
        assert_eq!(statuses, vec![400, 400, 500, 200, 200, 200]);
    }

    #[tokio::test]
    async fn protected_resource() {
        let p = OAuthProvider::start(config()).await;
        p.set_access_token_ttl(Duration::from_secs(120));
        let t = p.issue_tokens(BASIC_ID, "user-5", &["read", "write"]);
        assert_eq!(t.expires_in, 120);

        let (status, body, _) = me(&p, &t.access_token).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            (body["sub"].clone(), body["scope"].clone()),
            (json!("user-5"), json!("read write"))
        );

        let http = reqwest::Client::new();
        let r = http
            .get(p.api_require_url("write"))
            .bearer_auth(&t.access_token)
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), StatusCode::OK);
        let r = http
            .get(p.api_require_url("admin"))
            .bearer_auth(&t.access_token)
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let challenge = r
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        assert!(challenge.contains("insufficient_scope"), "{challenge}");

        let r = http.get(p.api_me_url()).send().await.expect("get");
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            r.headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok()),
            Some("Bearer realm=\"oauth-provider\"")
        );
        let r = http
            .get(p.api_me_url())
            .basic_auth("a", Some("b"))
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        // A refresh token is not an access token.
        assert_eq!(
            me(&p, t.refresh_token.as_deref().expect("rt")).await.0,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(me(&p, "at_made_up").await.0, StatusCode::UNAUTHORIZED);

        p.expire_token(&t.access_token);
        let (status, _, challenge) = me(&p, &t.access_token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(
            challenge.contains("invalid_token") && challenge.contains("expired"),
            "{challenge}"
        );

        // Expiry by lifetime.
        p.set_access_token_ttl(Duration::from_millis(1500));
        let short = p.issue_tokens(BASIC_ID, "user-5", &["read"]);
        assert_eq!(me(&p, &short.access_token).await.0, StatusCode::OK);
        tokio::time::sleep(Duration::from_millis(1600)).await;
        assert_eq!(
            me(&p, &short.access_token).await.0,
            StatusCode::UNAUTHORIZED
        );

        let revoked = p.issue_tokens(BASIC_ID, "user-6", &["read"]);
        p.revoke_grant_of(&revoked.access_token);
        let (status, _, challenge) = me(&p, &revoked.access_token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(challenge.contains("revoked"), "{challenge}");

        let logged = p.requests_to(Endpoint::Api);
        assert_eq!(
            logged.first().and_then(|r| r.authorization.clone()),
            Some(format!("Bearer {}", t.access_token))
        );
        assert_eq!(p.counters().api_requests, logged.len() as u64);
    }

    #[tokio::test]
    async fn stops_on_drop() {
        let p = OAuthProvider::start(config()).await;
        let url = p.metadata_url();
        assert!(reqwest::get(&url)
            .await
            .is_ok_and(|r| r.status().is_success()));
        drop(p);
        crate::harness::eventually(Duration::from_secs(5), "provider stopped", || async {
            // A fresh client: no pooled keep-alive connection.
            reqwest::Client::new().get(&url).send().await.is_err()
        })
        .await;
    }
}

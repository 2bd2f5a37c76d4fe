//! `authledger::oauth` against the real local OAuth provider (`oauth_provider`): the connect
//! flow (authorization URL, code exchange with PKCE) for both client authentication methods,
//! refresh with rotation, revocation, fault classification, and that no secret ever shows in
//! an error. A second, tiny server plays a misbehaving provider (echoes requests back,
//! redirects, answers huge bodies).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use authledger::domain::auth_config::ClientAuthMethod as Method;
use authledger::oauth::{
    self, AuthorizeRequest, ClientCredentials, OAuthClient, OAuthError, RevocationOutcome, TokenSet,
};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post as route_post;
use axum::Router;
use secrecy::ExposeSecret as _;

use crate::fixtures::oauth_provider::{
    basic_auth_header, ClientAuthMethod as FixtureMethod, ClientConfig, Endpoint, OAuthProvider,
    ProviderConfig, TokenFault,
};

/// Characters that must be form-encoded before base64 (RFC 6749 §2.3.1).
const BASIC_ID: &str = "basic client:1";
const BASIC_SECRET: &str = "b4sic s3cret:/+%&=é";
const POST_ID: &str = "post-client";
const POST_SECRET: &str = "p0st-s3cret+&=";
const REDIRECT: &str = "http://127.0.0.1:9/callback";

fn config() -> ProviderConfig {
    ProviderConfig::default()
        .client(
            ClientConfig::new(BASIC_ID, BASIC_SECRET, FixtureMethod::ClientSecretBasic)
                .redirect_uri(REDIRECT)
                .scopes(&["read", "write", "admin"]),
        )
        .client(
            ClientConfig::new(POST_ID, POST_SECRET, FixtureMethod::ClientSecretPost)
                .redirect_uri(REDIRECT)
                .scopes(&["read", "write"]),
        )
}

fn basic() -> ClientCredentials<'static> {
    ClientCredentials::new(BASIC_ID, BASIC_SECRET, Method::ClientSecretBasic)
}

fn post() -> ClientCredentials<'static> {
    ClientCredentials::new(POST_ID, POST_SECRET, Method::ClientSecretPost)
}

/// The test provider is on this machine: loopback destinations allowed.
fn loopback() -> std::sync::Arc<authledger::net::Policy> {
    std::sync::Arc::new(authledger::net::Policy::new(true, Vec::new()))
}

fn client() -> OAuthClient {
    OAuthClient::new(Duration::from_secs(5), &loopback()).unwrap()
}

fn scopes(s: &[&str]) -> Vec<String> {
    s.iter().map(|s| s.to_string()).collect()
}

fn query(url: &reqwest::Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// What one connect flow used (the secrets a test then looks for in errors).
struct Connected {
    tokens: TokenSet,
    code: String,
    verifier: String,
    state: String,
}

/// The whole connect flow as the service runs it: authorization URL with state and PKCE,
/// the browser at the provider, the code exchanged.
async fn connect(p: &OAuthProvider, creds: &ClientCredentials<'_>) -> Connected {
    let state = oauth::random_token();
    let verifier = oauth::random_token();
    let challenge = oauth::pkce_challenge(&verifier);
    let requested = scopes(&["read", "write"]);
    let extra = BTreeMap::from([("prompt".to_string(), "consent".to_string())]);
    let url = oauth::authorize_url(&AuthorizeRequest {
        authorization_url: &p.authorization_url(),
        client_id: creds.client_id,
        redirect_uri: REDIRECT,
        scopes: &requested,
        scope_separator: " ",
        state: &state,
        code_challenge: Some(&challenge),
        extra_params: &extra,
    })
    .unwrap();
    let location = p.visit(&url).await;
    assert!(location.as_str().starts_with(REDIRECT), "{location}");
    assert_eq!(query(&location, "state").as_deref(), Some(state.as_str()));
    assert_eq!(query(&location, "iss").as_deref(), Some(p.issuer()));
    let code = query(&location, "code").unwrap_or_else(|| panic!("no code in {location}"));

    let a = p.last_request_to(Endpoint::Authorize).unwrap();
    assert_eq!(a.status, 303);
    assert_eq!(a.param("response_type"), Some("code"));
    assert_eq!(a.param("client_id"), Some(creds.client_id));
    assert_eq!(a.param("redirect_uri"), Some(REDIRECT));
    assert_eq!(a.param("scope"), Some("read write"));
    assert_eq!(a.param("state"), Some(state.as_str()));
    assert_eq!(a.param("code_challenge"), Some(challenge.as_str()));
    assert_eq!(a.param("code_challenge_method"), Some("S256"));
    assert_eq!(a.param("prompt"), Some("consent"));

    let tokens = client()
        .exchange_code(&p.token_url(), creds, &code, REDIRECT, Some(&verifier))
        .await
        .unwrap();
    Connected {
        tokens,
        code,
        verifier,
        state,
    }
}

async fn code_exchange(creds: ClientCredentials<'static>) {
    let p = OAuthProvider::start(config()).await;
    let c = connect(&p, &creds).await;
    let t = &c.tokens;
    assert!(p.is_active(t.access_token.expose_secret()));
    let rt = t.refresh_token.as_ref().expect("a refresh token");
    assert!(p.is_active(rt.expose_secret()));
    assert_eq!(t.token_type, "Bearer");
    assert!(t.is_bearer());
    assert_eq!(t.expires_in, Some(3600));
    assert_eq!(t.scope, Some(scopes(&["read", "write"])));
    let debug = format!("{t:?}");
    assert!(!debug.contains(t.access_token.expose_secret()), "{debug}");
    assert!(!debug.contains(rt.expose_secret()), "{debug}");
    assert!(oauth::state_hash(&c.state).starts_with("sha256:"));

    // What the provider received.
    let r = p.last_request_to(Endpoint::Token).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        r.content_type.as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(r.client_id.as_deref(), Some(creds.client_id));
    let mut expected = vec![
        ("grant_type", "authorization_code"),
        ("code", c.code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", c.verifier.as_str()),
    ];
    match creds.method {
        Method::ClientSecretBasic => {
            assert_eq!(r.client_auth, Some(FixtureMethod::ClientSecretBasic));
            assert_eq!(
                r.authorization.as_deref(),
                Some(basic_auth_header(BASIC_ID, BASIC_SECRET).as_str())
            );
        }
        Method::ClientSecretPost => {
            assert_eq!(r.client_auth, Some(FixtureMethod::ClientSecretPost));
            assert_eq!(r.authorization, None);
            expected.extend([("client_id", POST_ID), ("client_secret", POST_SECRET)]);
        }
    }
    let got: Vec<(&str, &str)> = r
        .params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(got, expected);
    let n = p.counters();
    assert_eq!((n.code_exchanges, n.tokens_issued), (1, 1));
}

#[tokio::test]
async fn code_exchange_with_pkce_client_secret_basic() {
    code_exchange(basic()).await;
}

#[tokio::test]
async fn code_exchange_with_pkce_client_secret_post() {
    code_exchange(post()).await;
}

#[tokio::test]
async fn a_code_is_single_use() {
    let p = OAuthProvider::start(config()).await;
    let c = connect(&p, &post()).await;
    let e = client()
        .exchange_code(
            &p.token_url(),
            &post(),
            &c.code,
            REDIRECT,
            Some(&c.verifier),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, OAuthError::InvalidGrant { .. }), "{e:?}");
    // RFC 6749 §4.1.2: the tokens issued from a reused code are revoked.
    assert!(!p.is_active(c.tokens.access_token.expose_secret()));
}

#[tokio::test]
async fn refresh_rotates_and_the_old_token_is_then_invalid_grant() {
    let p = OAuthProvider::start(config()).await;
    let c = connect(&p, &basic()).await;
    let old_rt = c.tokens.refresh_token.unwrap().expose_secret().to_string();

    // Narrowing the scope on refresh (RFC 6749 §6).
    let narrow = scopes(&["read"]);
    let t = client()
        .refresh(&p.token_url(), &basic(), &old_rt, Some(&narrow))
        .await
        .unwrap();
    let new_rt = t
        .refresh_token
        .as_ref()
        .unwrap()
        .expose_secret()
        .to_string();
    assert_ne!(new_rt, old_rt);
    assert_ne!(
        t.access_token.expose_secret(),
        c.tokens.access_token.expose_secret()
    );
    assert_eq!(t.scope, Some(scopes(&["read"])));
    assert!(p.is_active(t.access_token.expose_secret()));
    assert!(p.is_active(&new_rt));
    assert!(!p.is_active(&old_rt), "the rotated refresh token is dead");
    let r = p.last_request_to(Endpoint::Token).unwrap();
    assert_eq!(
        r.params,
        vec![
            ("grant_type".to_string(), "refresh_token".to_string()),
            ("refresh_token".to_string(), old_rt.clone()),
            ("scope".to_string(), "read".to_string()),
        ]
    );
    assert_eq!(r.client_auth, Some(FixtureMethod::ClientSecretBasic));

    // Without `scope`: the whole grant as it stands.
    let t2 = client()
        .refresh(&p.token_url(), &basic(), &new_rt, None)
        .await
        .unwrap();
    let newest_rt = t2
        .refresh_token
        .as_ref()
        .unwrap()
        .expose_secret()
        .to_string();
    assert_eq!(
        p.last_request_to(Endpoint::Token).unwrap().param("scope"),
        None
    );

    // The rotated token presented again: invalid_grant, not retryable.
    let e = client()
        .refresh(&p.token_url(), &basic(), &old_rt, None)
        .await
        .unwrap_err();
    assert!(matches!(e, OAuthError::InvalidGrant { .. }), "{e:?}");
    assert!(!e.retryable());
    assert_eq!(e.code(), "invalid_grant");
    assert!(!e.to_string().contains(&old_rt), "{e}");
    // RFC 9700 §4.14.2: the provider revoked the whole grant on reuse.
    assert!(!p.is_active(&newest_rt));
    assert_eq!(p.counters().refreshes, 2);
}

#[tokio::test]
async fn injected_faults_are_classified() {
    let p = OAuthProvider::start(config()).await;
    let c = connect(&p, &post()).await;
    let rt = c.tokens.refresh_token.unwrap().expose_secret().to_string();

    p.fail_next_token_requests(1, TokenFault::ServerError);
    let e = client()
        .refresh(&p.token_url(), &post(), &rt, None)
        .await
        .unwrap_err();
    assert!(matches!(e, OAuthError::Transient { .. }), "{e:?}");
    assert!(e.retryable());
    assert_eq!(e.code(), "transient");
    assert!(e.to_string().contains("HTTP 500"), "{e}");
    assert!(!e.to_string().contains("<html>"), "{e}");

    p.fail_next_token_requests(1, TokenFault::InvalidGrant);
    let e = client()
        .refresh(&p.token_url(), &post(), &rt, None)
        .await
        .unwrap_err();
    assert!(matches!(e, OAuthError::InvalidGrant { .. }), "{e:?}");
    assert!(!e.retryable());

    // Nothing was consumed by the faults: the refresh token still works.
    assert!(client()
        .refresh(&p.token_url(), &post(), &rt, None)
        .await
        .is_ok());
    assert_eq!(p.counters().faults_injected, 2);
}

#[tokio::test]
async fn a_slow_provider_times_out_as_transient() {
    let p = OAuthProvider::start(config()).await;
    let c = connect(&p, &basic()).await;
    let rt = c.tokens.refresh_token.unwrap().expose_secret().to_string();
    p.fail_next_token_requests(1, TokenFault::Slow(Duration::from_secs(3)));
    let impatient = OAuthClient::new(Duration::from_millis(300), &loopback()).unwrap();
    let started = Instant::now();
    let e = impatient
        .refresh(&p.token_url(), &basic(), &rt, None)
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "took {took:?}");
    assert!(matches!(e, OAuthError::Transient { .. }), "{e:?}");
    assert!(e.retryable());
    assert!(e.to_string().contains("timed out"), "{e}");
    assert!(!e.to_string().contains(&rt) && !e.to_string().contains(BASIC_SECRET));
    assert_eq!(p.counters().refresh_requests, 1);
}

#[tokio::test]
async fn wrong_client_credentials_are_invalid_client() {
    let p = OAuthProvider::start(config()).await;
    let http = client();
    for creds in [
        ClientCredentials::new(BASIC_ID, "wrong-secret-1", Method::ClientSecretBasic),
        ClientCredentials::new(POST_ID, "wrong-secret-2", Method::ClientSecretPost),
        // Right secret, but not the method the client is registered for.
        ClientCredentials::new(BASIC_ID, BASIC_SECRET, Method::ClientSecretPost),
        ClientCredentials::new("nobody", "wrong-secret-3", Method::ClientSecretBasic),
    ] {
        let e = http
            .refresh(&p.token_url(), &creds, "rt_whatever", None)
            .await
            .unwrap_err();
        match &e {
            OAuthError::Provider { status, error, .. } => {
                assert_eq!((*status, error.as_str()), (401, "invalid_client"), "{e}");
            }
            other => panic!("{creds:?}: {other:?}"),
        }
        assert_eq!(e.code(), "invalid_client");
        assert!(!e.retryable());
        assert!(!format!("{e} {e:?}").contains(creds.client_secret));
    }
}

#[tokio::test]
async fn revoking_a_refresh_token_revokes_the_grant() {
    let p = OAuthProvider::start(config()).await;
    for creds in [basic(), post()] {
        let c = connect(&p, &creds).await;
        let at = c.tokens.access_token.expose_secret().to_string();
        let rt = c.tokens.refresh_token.unwrap().expose_secret().to_string();

        // A provider that cannot answer now: failed, retryable, nothing revoked.
        p.fail_next_revocations(1);
        let a = client()
            .revoke(&p.revocation_url(), &creds, &rt, "refresh_token")
            .await;
        assert_eq!(a.outcome, RevocationOutcome::Failed);
        assert_eq!(a.http_status, Some(503));
        assert!(a.retryable, "{a:?}");
        assert!(!a.detail.as_deref().unwrap_or("").contains(&rt));
        assert!(p.is_active(&rt));

        let a = client()
            .revoke(&p.revocation_url(), &creds, &rt, "refresh_token")
            .await;
        assert_eq!(a.outcome, RevocationOutcome::Revoked, "{a:?}");
        assert_eq!(a.http_status, Some(200));
        assert_eq!(a.detail, None);
        assert!(!p.is_active(&rt));
        assert!(!p.is_active(&at), "the whole grant is revoked");
        let r = p.last_request_to(Endpoint::Revoke).unwrap();
        assert_eq!(r.param("token"), Some(rt.as_str()));
        assert_eq!(r.param("token_type_hint"), Some("refresh_token"));
        assert_eq!(
            r.client_auth,
            Some(match creds.method {
                Method::ClientSecretBasic => FixtureMethod::ClientSecretBasic,
                Method::ClientSecretPost => FixtureMethod::ClientSecretPost,
            })
        );

        // Revoked again (or an unknown token): 200 per RFC 7009 §2.2.
        let a = client().revoke(&p.revocation_url(), &creds, &rt, "").await;
        assert_eq!(a.outcome, RevocationOutcome::Revoked);
        assert_eq!(
            p.last_request_to(Endpoint::Revoke)
                .unwrap()
                .param("token_type_hint"),
            None
        );
    }

    // Wrong client secret: refused, not retryable.
    let c = connect(&p, &basic()).await;
    let rt = c.tokens.refresh_token.unwrap().expose_secret().to_string();
    let wrong = ClientCredentials::new(BASIC_ID, "not-the-secret", Method::ClientSecretBasic);
    let a = client()
        .revoke(&p.revocation_url(), &wrong, &rt, "refresh_token")
        .await;
    assert_eq!(a.outcome, RevocationOutcome::Failed);
    assert_eq!(a.http_status, Some(401));
    assert!(!a.retryable);
    let detail = a.detail.unwrap();
    assert!(detail.contains("invalid_client"), "{detail}");
    assert!(!detail.contains("not-the-secret") && !detail.contains(&rt));
    assert!(p.is_active(&rt));
}

/// A misbehaving provider: echoes what it got (body and `Authorization`) back in error
/// descriptions and 500 pages, redirects, answers oversized bodies.
struct Rogue {
    base: String,
    ok_hits: Arc<AtomicU64>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

async fn rogue() -> Rogue {
    fn echo(headers: &HeaderMap, body: &str) -> String {
        let auth = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        format!("you sent {body} with {auth}")
    }
    let ok_hits = Arc::new(AtomicU64::new(0));
    let hits = ok_hits.clone();
    let app = Router::new()
        .route(
            "/echo400",
            route_post(|headers: HeaderMap, body: String| async move {
                let description = echo(&headers, &body);
                (
                    StatusCode::BAD_REQUEST,
                    axum::Json(serde_json::json!({
                        "error": "invalid_request",
                        "error_description": description,
                    })),
                )
            }),
        )
        .route(
            "/echo500",
            route_post(|headers: HeaderMap, body: String| async move {
                (StatusCode::INTERNAL_SERVER_ERROR, echo(&headers, &body))
            }),
        )
        .route(
            "/echo200",
            route_post(|headers: HeaderMap, body: String| async move {
                // GitHub style: 200 with an error body.
                axum::Json(serde_json::json!({
                    "error": "bad_verification_code",
                    "error_description": echo(&headers, &body),
                }))
            }),
        )
        .route(
            "/redirect",
            route_post(|| async {
                (
                    StatusCode::TEMPORARY_REDIRECT,
                    [(header::LOCATION, "/ok")],
                    "",
                )
                    .into_response()
            }),
        )
        .route(
            "/ok",
            route_post(move || {
                let hits = hits.clone();
                async move {
                    hits.fetch_add(1, Ordering::SeqCst);
                    axum::Json(serde_json::json!({"access_token": "at", "token_type": "bearer"}))
                }
            }),
        )
        .route(
            "/big",
            route_post(|| async {
                let padding = "x".repeat(100 * 1024);
                axum::Json(serde_json::json!({
                    "access_token": "at", "token_type": "bearer", "padding": padding,
                }))
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await;
    });
    Rogue {
        base,
        ok_hits,
        _shutdown: tx,
    }
}

#[tokio::test]
async fn redirects_are_not_followed_and_bodies_are_bounded() {
    let r = rogue().await;
    let e = client()
        .refresh(&format!("{}/redirect", r.base), &basic(), "rt_1", None)
        .await
        .unwrap_err();
    assert!(matches!(e, OAuthError::Invalid { .. }), "{e:?}");
    assert!(e.to_string().contains("307"), "{e}");
    assert_eq!(
        r.ok_hits.load(Ordering::SeqCst),
        0,
        "the redirect was followed"
    );
    let a = client()
        .revoke(&format!("{}/redirect", r.base), &basic(), "rt_1", "")
        .await;
    assert_eq!(
        (a.outcome, a.http_status, a.retryable),
        (RevocationOutcome::Failed, Some(307), false)
    );
    assert_eq!(r.ok_hits.load(Ordering::SeqCst), 0);

    let e = client()
        .refresh(&format!("{}/big", r.base), &basic(), "rt_1", None)
        .await
        .unwrap_err();
    assert!(matches!(e, OAuthError::Invalid { .. }), "{e:?}");
    assert!(e.to_string().contains("larger than"), "{e}");

    // An unusable URL never leaves the process.
    let e = client()
        .refresh(
            "https://user:pw@example.invalid/token",
            &basic(),
            "rt",
            None,
        )
        .await
        .unwrap_err();
    assert!(matches!(e, OAuthError::Invalid { .. }), "{e:?}");
    assert!(!e.to_string().contains("pw"), "{e}");
}

#[tokio::test]
async fn no_secret_appears_in_any_error() {
    let p = OAuthProvider::start(config()).await;
    let r = rogue().await;
    let c = connect(&p, &basic()).await;
    let rt = c
        .tokens
        .refresh_token
        .as_ref()
        .unwrap()
        .expose_secret()
        .to_string();
    let at = c.tokens.access_token.expose_secret().to_string();
    let http = client();
    let mut errors: Vec<OAuthError> = Vec::new();
    let mut details: Vec<String> = Vec::new();

    // The code presented again (invalid_grant) and the rotated refresh token.
    errors.push(
        http.exchange_code(
            &p.token_url(),
            &basic(),
            &c.code,
            REDIRECT,
            Some(&c.verifier),
        )
        .await
        .unwrap_err(),
    );
    errors.push(
        http.refresh(&p.token_url(), &basic(), &rt, None)
            .await
            .unwrap_err(),
    );
    // Wrong secret, both methods.
    let wrong_basic = ClientCredentials::new(BASIC_ID, "wr0ng-secret-a", Method::ClientSecretBasic);
    let wrong_post = ClientCredentials::new(POST_ID, "wr0ng-secret-b", Method::ClientSecretPost);
    for creds in [&wrong_basic, &wrong_post] {
        errors.push(
            http.refresh(&p.token_url(), creds, &rt, None)
                .await
                .unwrap_err(),
        );
    }
    // Injected 500 and timeout.
    p.fail_next_token_requests(1, TokenFault::ServerError);
    errors.push(
        http.refresh(&p.token_url(), &basic(), &rt, None)
            .await
            .unwrap_err(),
    );
    p.fail_next_token_requests(1, TokenFault::Slow(Duration::from_secs(2)));
    errors.push(
        OAuthClient::new(Duration::from_millis(200), &loopback())
            .unwrap()
            .refresh(&p.token_url(), &basic(), &rt, None)
            .await
            .unwrap_err(),
    );
    // Connection refused.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let e = http
        .refresh(&format!("http://{closed}/token"), &basic(), &rt, None)
        .await
        .unwrap_err();
    assert!(matches!(e, OAuthError::Transient { .. }), "{e:?}");
    errors.push(e);
    // A provider echoing the request back: with Basic and with post credentials, on a code
    // exchange and a refresh, as a 400, a 500 and a 200.
    for path in ["echo400", "echo500", "echo200"] {
        let url = format!("{}/{path}", r.base);
        for creds in [basic(), post()] {
            errors.push(
                http.exchange_code(&url, &creds, &c.code, REDIRECT, Some(&c.verifier))
                    .await
                    .unwrap_err(),
            );
            errors.push(http.refresh(&url, &creds, &rt, None).await.unwrap_err());
            let a = http.revoke(&url, &creds, &at, "access_token").await;
            let expected = if path == "echo200" {
                RevocationOutcome::Revoked
            } else {
                RevocationOutcome::Failed
            };
            assert_eq!(a.outcome, expected, "{path}: {a:?}");
            details.push(format!("{a:?}"));
        }
    }
    // Revocation with a wrong secret, and against a closed port.
    for url in [p.revocation_url(), format!("http://{closed}/revoke")] {
        let a = http.revoke(&url, &wrong_basic, &rt, "refresh_token").await;
        assert_eq!(a.outcome, RevocationOutcome::Failed);
        details.push(format!("{a:?}"));
    }

    let basic_header = basic_auth_header(BASIC_ID, BASIC_SECRET);
    let basic_b64 = basic_header.trim_start_matches("Basic ");
    let secrets = [
        BASIC_SECRET,
        POST_SECRET,
        "wr0ng-secret-a",
        "wr0ng-secret-b",
        basic_b64,
        rt.as_str(),
        at.as_str(),
        c.code.as_str(),
        c.verifier.as_str(),
    ];
    // Form-encoded forms too (what a body echo shows).
    let encoded: Vec<String> = secrets.iter().map(|s| url_form(s)).collect();
    let mut texts: Vec<String> = errors
        .iter()
        .flat_map(|e| [e.to_string(), format!("{e:?}")])
        .collect();
    texts.extend(details);
    for text in &texts {
        for s in secrets
            .iter()
            .copied()
            .chain(encoded.iter().map(String::as_str))
        {
            assert!(!text.contains(s), "secret {s:?} in {text}");
        }
    }
    // The echoes were there, scrubbed (the test would prove nothing otherwise).
    assert!(
        texts
            .iter()
            .any(|t| t.contains("you sent") && t.contains("[redacted]")),
        "{texts:#?}"
    );
    // And the classification held: 400 → Provider, 500 → Transient, 200 with an error →
    // InvalidGrant (GitHub's bad_verification_code).
    let codes: Vec<&str> = errors.iter().map(OAuthError::code).collect();
    for expected in [
        "invalid_grant",
        "invalid_client",
        "transient",
        "invalid_request",
    ] {
        assert!(codes.contains(&expected), "{codes:?}");
    }
}

fn url_form(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(char::from(b))
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

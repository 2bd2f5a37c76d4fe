//! The OAuth 2.0 connect flow, refresh and revocation end to end: the real `authledger serve`
//! binary, driven over HTTP, against the real local provider (`oauth_provider`), on the
//! embedded backend and on JetStream + PostgreSQL (two instances for the single flight).
//!
//! The ledger never shows a token, so a tiny recording proxy (`TokenTap`) sits in front of
//! the provider's token endpoint: it forwards every request verbatim and keeps the token
//! responses, which is how a test learns the strings that must never show anywhere.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use reqwest::{Client, Method, StatusCode, Url};
use secrecy::ExposeSecret;
use serde_json::{json, Value};

use authledger::crypto::{
    load_master_keys, resource_aad, CryptoError, Sealed, SqliteDataKeys, Vault,
};
use authledger::ledger::envelope::{open_envelope, EventBody};

use crate::fixtures::oauth_provider::{
    basic_auth_header, no_redirect_client, pkce_challenge, ClientAuthMethod, ClientConfig, Consent,
    Endpoint, OAuthProvider, ProviderConfig, RecordedRequest, TokenFault,
};
use crate::harness::{args, eventually, run_cli};
use crate::support::{data_dir, request, Deployment, Reply, Stack};

/// Characters that must be form-encoded in HTTP Basic (RFC 6749 §2.3.1).
const CLIENT_ID: &str = "authledger e2e:client";
const CLIENT_SECRET: &str = "e2e-cl1ent-s3cret/+&=:Zq7";
const RETURN_TO: &str = "https://app.example.com/connected";
const PROBLEMS: &str = "https://authledger.dev/problems/";

/// Every instance: loopback provider URLs allowed, no scheduler unless a test asks, quick
/// retries and provider timeouts.
const BASE_ENV: &[(&str, &str)] = &[
    ("AUTHLEDGER_ALLOW_LOOPBACK_URLS", "true"),
    ("AUTHLEDGER_REFRESH_SCHEDULE", "off"),
    ("AUTHLEDGER_REFRESH_RETRY_MS", "50"),
    ("AUTHLEDGER_PROVIDER_TIMEOUT_SECS", "5"),
];

// ---------------------------------------------------------------------------------------------
// The token tap: a recording proxy in front of the provider's token endpoint
// ---------------------------------------------------------------------------------------------

struct TokenTap {
    url: String,
    issued: Arc<Mutex<Vec<Value>>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for TokenTap {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

impl TokenTap {
    async fn start(upstream: String) -> TokenTap {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("tap: bind");
        let url = format!("http://{}/token", listener.local_addr().expect("tap: addr"));
        let issued = Arc::new(Mutex::new(Vec::new()));
        let http = Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("tap: client");
        let record = issued.clone();
        let app = Router::new().route(
            "/token",
            post(move |headers: HeaderMap, body: Bytes| {
                let (http, upstream, record) = (http.clone(), upstream.clone(), record.clone());
                async move { forward(&http, &upstream, &headers, body, &record).await }
            }),
        );
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await;
        });
        TokenTap {
            url,
            issued,
            shutdown: Some(tx),
        }
    }

    /// Every successful token response, in order.
    fn issued(&self) -> Vec<Value> {
        self.issued.lock().expect("tap lock").clone()
    }

    /// The `n`th issued (access token, refresh token).
    fn tokens(&self, n: usize) -> (String, String) {
        let all = self.issued();
        let t = all
            .get(n)
            .unwrap_or_else(|| panic!("no token response #{n}: {all:?}"));
        (
            t["access_token"]
                .as_str()
                .expect("access_token")
                .to_string(),
            t["refresh_token"]
                .as_str()
                .expect("refresh_token")
                .to_string(),
        )
    }

    /// Every token string the provider issued.
    fn all_tokens(&self) -> Vec<String> {
        self.issued()
            .iter()
            .flat_map(|t| [t["access_token"].clone(), t["refresh_token"].clone()])
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect()
    }
}

async fn forward(
    http: &Client,
    upstream: &str,
    headers: &HeaderMap,
    body: Bytes,
    record: &Mutex<Vec<Value>>,
) -> Response {
    let mut req = http.post(upstream).body(body.to_vec());
    for name in ["authorization", "content-type", "accept"] {
        if let Some(v) = headers.get(name) {
            req = req.header(name, v.as_bytes());
        }
    }
    let answer = match req.send().await {
        Ok(a) => a,
        Err(e) => return (axum::http::StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let status = answer.status().as_u16();
    let mut out = Response::builder().status(status);
    for name in [
        "content-type",
        "cache-control",
        "pragma",
        "www-authenticate",
    ] {
        if let Some(v) = answer.headers().get(name) {
            out = out.header(name, v.as_bytes());
        }
    }
    let bytes = answer.bytes().await.unwrap_or_default();
    if status == 200 {
        if let Ok(v) = serde_json::from_slice::<Value>(&bytes) {
            record.lock().expect("tap lock").push(v);
        }
    }
    out.body(Body::from(bytes)).expect("tap: response")
}

// ---------------------------------------------------------------------------------------------
// A deployment of the service
// ---------------------------------------------------------------------------------------------

/// `support::Deployment` (one or more `serve` instances on one log, with the workspace's
/// admin key), an HTTP client, and every response body any call received (scanned for
/// secrets).
struct Env {
    d: Deployment,
    http: Client,
    bodies: Mutex<Vec<String>>,
}

impl std::ops::Deref for Env {
    type Target = Deployment;
    fn deref(&self) -> &Deployment {
        &self.d
    }
}

async fn deploy(stack: Stack, instances: usize, extra_env: &[(&str, &str)]) -> Env {
    let envs: Vec<(&str, &str)> = BASE_ENV.iter().chain(extra_env).copied().collect();
    Env {
        d: Deployment::start_instances(stack, instances, &envs).await,
        http: Client::new(),
        bodies: Mutex::new(Vec::new()),
    }
}

impl Env {
    /// The OAuth redirect URI of instance 0 (its default public URL is its listen address).
    fn callback(&self) -> String {
        self.svc.url("/v1/oauth/callback")
    }

    /// The embedded data dir (keys, data keys, the log).
    fn data(&self) -> PathBuf {
        data_dir(self.dir.path())
    }

    async fn call_on(&self, i: usize, method: Method, path: &str, body: Option<Value>) -> Reply {
        let r = Reply::of(request(
            &self.http,
            self.instance(i),
            &self.admin,
            method,
            path,
            body,
        ))
        .await;
        self.bodies.lock().expect("bodies").push(r.text.clone());
        r
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        self.call_on(0, method, path, body).await
    }

    async fn get_connection(&self, id: &str) -> Reply {
        self.call(Method::GET, &format!("/v1/connections/{id}"), None)
            .await
    }

    async fn log_head(&self) -> u64 {
        let r: Value = self
            .http
            .get(self.svc.url("/readyz"))
            .send()
            .await
            .expect("readyz")
            .json()
            .await
            .expect("readyz json");
        r["log_head"].as_u64().expect("log_head")
    }

    /// The whole log through `authledger dump-log`: the decoded bodies and the raw text.
    async fn events(&self) -> (Vec<EventBody>, String) {
        let a = [self.storage.clone(), args(&["dump-log"])].concat();
        let out = tokio::task::spawn_blocking(move || run_cli(&a))
            .await
            .expect("join");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).expect("utf-8");
        let bodies = text
            .lines()
            .map(|line| {
                let rec: Value = serde_json::from_str(line).expect("dump line");
                open_envelope(rec["envelope"].as_str().expect("envelope").as_bytes())
                    .expect("open envelope")
                    .body
            })
            .collect();
        (bodies, text)
    }

    /// The kinds of one connection's events, in order.
    async fn kinds_of(&self, id: &str) -> Vec<String> {
        let (events, _) = self.events().await;
        of(&events, id).iter().map(|e| e.kind.clone()).collect()
    }

    /// Creates the oauth2 auth config (token endpoint behind the tap).
    async fn create_auth_config(&self, provider: &OAuthProvider, tap: &TokenTap) -> String {
        let r = self
            .call(
                Method::POST,
                "/v1/auth-configs",
                Some(json!({
                    "name": "Example provider", "provider": "custom", "auth_type": "oauth2",
                    "oauth2": {
                        "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                        "authorization_url": provider.authorization_url(),
                        "token_url": tap.url,
                        "revocation_url": provider.revocation_url(),
                        "client_auth_method": "client_secret_basic",
                        "scopes": ["read", "write"],
                        "redirect_urls": [RETURN_TO],
                    }
                })),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.body["id"].as_str().expect("id").to_string()
    }

    /// `POST /v1/connections`: (id, connect_url).
    async fn initiate(&self, auth_config_id: &str, user_id: &str) -> (String, Url) {
        let r = self
            .call(
                Method::POST,
                "/v1/connections",
                Some(json!({ "auth_config_id": auth_config_id, "user_id": user_id, "redirect_url": RETURN_TO })),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        assert_eq!(r.body["status"], "initiated", "{}", r.body);
        let url = Url::parse(r.body["connect_url"].as_str().expect("connect_url")).expect("url");
        (r.body["id"].as_str().expect("id").to_string(), url)
    }

    /// Plays the browser on our callback: (status, `Location` if any, body).
    async fn follow_callback(&self, callback: &Url) -> (StatusCode, Option<Url>, Value) {
        let r = no_redirect_client()
            .get(callback.as_str())
            .send()
            .await
            .expect("callback");
        let status = r.status();
        let location = r
            .headers()
            .get("location")
            .map(|v| Url::parse(v.to_str().expect("ascii")).expect("location url"));
        let text = r.text().await.unwrap_or_default();
        self.bodies.lock().expect("bodies").push(text.clone());
        (
            status,
            location,
            serde_json::from_str(&text).unwrap_or(Value::Null),
        )
    }

    /// The whole connect flow for `user_id`: initiate, consent at the provider, callback.
    /// Returns the connection id once it is active.
    async fn connect(
        &self,
        provider: &OAuthProvider,
        auth_config_id: &str,
        user_id: &str,
    ) -> String {
        let (id, connect_url) = self.initiate(auth_config_id, user_id).await;
        let callback = provider.visit(connect_url.as_str()).await;
        let (status, location, body) = self.follow_callback(&callback).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
        let location = location.expect("location");
        assert_eq!(
            query(&location, "status").as_deref(),
            Some("active"),
            "{location}"
        );
        assert_eq!(
            query(&location, "connection_id").as_deref(),
            Some(id.as_str())
        );
        id
    }

    async fn refresh_on(&self, i: usize, id: &str) -> Reply {
        self.call_on(
            i,
            Method::POST,
            &format!("/v1/connections/{id}/refresh"),
            None,
        )
        .await
    }
}

fn query(url: &Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn of<'a>(events: &'a [EventBody], id: &str) -> Vec<&'a EventBody> {
    events.iter().filter(|e| e.aggregate_id == id).collect()
}

fn token_requests(provider: &OAuthProvider, grant_type: &str) -> Vec<RecordedRequest> {
    provider
        .requests_to(Endpoint::Token)
        .into_iter()
        .filter(|r| r.grant_type() == Some(grant_type))
        .collect()
}

async fn provider_and_tap(dep: &Env) -> (OAuthProvider, TokenTap) {
    let provider = OAuthProvider::start(ProviderConfig::default()).await;
    provider.register_client(
        ClientConfig::new(
            CLIENT_ID,
            CLIENT_SECRET,
            ClientAuthMethod::ClientSecretBasic,
        )
        .redirect_uri(&dep.callback())
        .scopes(&["read", "write"]),
    );
    let tap = TokenTap::start(provider.token_url()).await;
    (provider, tap)
}

/// The client authenticated with HTTP Basic, form-encoded id and secret.
fn assert_basic_auth(r: &RecordedRequest) {
    assert_eq!(
        r.client_auth,
        Some(ClientAuthMethod::ClientSecretBasic),
        "{r:?}"
    );
    assert_eq!(
        r.authorization.as_deref(),
        Some(basic_auth_header(CLIENT_ID, CLIENT_SECRET).as_str())
    );
    assert_eq!(
        r.param("client_secret"),
        None,
        "the secret goes in the header only"
    );
}

/// A connection as the API shows it carries no token, only facts about them.
fn assert_no_token_fields(conn: &Value) {
    for key in conn.as_object().expect("object").keys() {
        assert!(
            !key.contains("token") || key == "has_refresh_token",
            "{key} in {conn}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 1. The full connect flow, refresh, revocation and deletion
// ---------------------------------------------------------------------------------------------

async fn full_connect_flow(backend: Stack) {
    let dep = deploy(backend, 1, &[]).await;
    let (provider, tap) = provider_and_tap(&dep).await;
    let ac = dep.create_auth_config(&provider, &tap).await;

    // A redirect_url off the allow-list is refused and writes nothing.
    let head = dep.log_head().await;
    for bad in [
        "https://evil.example.com/connected",
        "https://app.example.com/connected/",
        "https://app.example.com/connected?x=1",
    ] {
        let r = dep
            .call(
                Method::POST,
                "/v1/connections",
                Some(json!({ "auth_config_id": ac, "user_id": "alice", "redirect_url": bad })),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{bad}: {}",
            r.body
        );
        assert_eq!(r.body["type"], format!("{PROBLEMS}validation-failed"));
        assert!(
            r.body["detail"]
                .as_str()
                .unwrap_or("")
                .contains("redirect_url"),
            "{}",
            r.body
        );
    }
    let r = dep.call(Method::GET, "/v1/connections", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["items"], json!([]), "nothing was created");
    assert_eq!(
        dep.log_head().await,
        head,
        "a refused connection writes nothing"
    );

    // Initiate: 201 with the connect URL and the write's position.
    let r = dep
        .call(
            Method::POST,
            "/v1/connections",
            Some(json!({ "auth_config_id": ac, "user_id": "alice", "redirect_url": RETURN_TO })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let id = r.body["id"].as_str().expect("id").to_string();
    assert_eq!(r.body["status"], "initiated");
    assert!(r.body["connect_expires_at"].is_string(), "{}", r.body);
    let position = r.body["position"].as_u64().expect("position");
    assert_eq!(
        r.headers
            .get("authledger-position")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok()),
        Some(position)
    );
    assert!(position > head);
    // Besides the connect URL and the write's position, the answer is the connection as a
    // read shows it (built from the event, not read back).
    let read = dep
        .call(Method::GET, &format!("/v1/connections/{id}"), None)
        .await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.body);
    assert_eq!(
        crate::support::as_read(&r.body, &["connect_url", "connect_expires_at", "position"]),
        read.body
    );

    // The connect URL: the provider's authorization endpoint, our callback, state and PKCE S256.
    let connect_url =
        Url::parse(r.body["connect_url"].as_str().expect("connect_url")).expect("url");
    let base = {
        let mut u = connect_url.clone();
        u.set_query(None);
        u.to_string()
    };
    assert_eq!(base, provider.authorization_url());
    assert_eq!(
        query(&connect_url, "response_type").as_deref(),
        Some("code")
    );
    assert_eq!(query(&connect_url, "client_id").as_deref(), Some(CLIENT_ID));
    assert_eq!(query(&connect_url, "redirect_uri"), Some(dep.callback()));
    assert_eq!(query(&connect_url, "scope").as_deref(), Some("read write"));
    assert_eq!(
        query(&connect_url, "code_challenge_method").as_deref(),
        Some("S256")
    );
    let state = query(&connect_url, "state").expect("state");
    let challenge = query(&connect_url, "code_challenge").expect("code_challenge");
    assert!(state.len() >= 32 && challenge.len() == 43, "{connect_url}");

    let r = dep.get_connection(&id).await;
    assert_eq!(
        (r.status, r.body["status"].as_str()),
        (StatusCode::OK, Some("initiated"))
    );
    assert_eq!(r.body["requested_scopes"], json!(["read", "write"]));

    // The browser: consent at the provider, back to our callback with code and state.
    let callback = provider.visit(connect_url.as_str()).await;
    assert_eq!(
        format!(
            "{}://{}{}",
            callback.scheme(),
            callback.authority(),
            callback.path()
        ),
        dep.callback()
    );
    assert_eq!(query(&callback, "state"), Some(state.clone()));
    assert!(query(&callback, "code").is_some(), "{callback}");
    let (status, location, body) = dep.follow_callback(&callback).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let location = location.expect("location");
    assert_eq!(
        format!(
            "{}://{}{}",
            location.scheme(),
            location.authority(),
            location.path()
        ),
        RETURN_TO
    );
    assert_eq!(query(&location, "connection_id"), Some(id.clone()));
    assert_eq!(query(&location, "status").as_deref(), Some("active"));
    assert_eq!(query(&location, "error"), None);

    // What the provider received: the code exchange with the PKCE verifier, Basic auth.
    let exchanges = provider.requests_to(Endpoint::Token);
    assert_eq!(exchanges.len(), 1, "{exchanges:?}");
    let exchange = &exchanges[0];
    assert_eq!(exchange.grant_type(), Some("authorization_code"));
    assert_eq!(exchange.status, 200, "{exchange:?}");
    assert_eq!(exchange.param("code"), query(&callback, "code").as_deref());
    assert_eq!(
        exchange.param("redirect_uri"),
        Some(dep.callback().as_str())
    );
    let verifier = exchange.param("code_verifier").expect("code_verifier");
    assert_eq!(
        pkce_challenge(verifier),
        challenge,
        "the verifier matches the challenge"
    );
    assert_basic_auth(exchange);
    let (at1, rt1) = tap.tokens(0);

    // Active, with scopes and expiry, and no token.
    let r = dep.get_connection(&id).await;
    assert_eq!(r.status, StatusCode::OK);
    let conn = r.body.clone();
    assert_eq!(conn["status"], "active", "{conn}");
    assert_eq!(conn["scopes"], json!(["read", "write"]));
    assert!(conn["expires_at"].is_string(), "{conn}");
    assert_eq!(conn["has_refresh_token"], true);
    assert_eq!(conn["user_id"], "alice");
    assert_eq!(conn["auth_config_id"], ac);
    assert_no_token_fields(&conn);
    let version = conn["version"].as_i64().expect("version");

    // Listed under its filters.
    let r = dep
        .call(
            Method::GET,
            &format!("/v1/connections?user_id=alice&auth_config_id={ac}&status=active&limit=10"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.body["items"].as_array().map(Vec::len),
        Some(1),
        "{}",
        r.body
    );
    assert_eq!(r.body["items"][0]["id"], id.as_str());
    assert_eq!(r.body["next_cursor"], Value::Null);
    let r = dep
        .call(Method::GET, "/v1/connections?user_id=bob", None)
        .await;
    assert_eq!(r.body["items"], json!([]));

    // Replaying the callback: 400, nothing changes, no second exchange, and it is audited.
    let (status, location, body) = dep.follow_callback(&callback).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(location, None);
    assert_eq!(body["type"], format!("{PROBLEMS}invalid-oauth-state"));
    let r = dep.get_connection(&id).await;
    assert_eq!(r.body["version"].as_i64(), Some(version), "{}", r.body);
    assert_eq!(r.body["status"], "active");
    assert_eq!(provider.requests_to(Endpoint::Token).len(), 1);

    // On-demand refresh: a new token, the refresh token rotated at the provider.
    let r = dep.refresh_on(0, &id).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["status"], "active");
    assert!(r.body["last_refreshed_at"].is_string(), "{}", r.body);
    assert!(r.body["version"].as_i64().expect("version") > version);
    assert_no_token_fields(&r.body);
    let refreshes = token_requests(&provider, "refresh_token");
    assert_eq!(refreshes.len(), 1, "{refreshes:?}");
    assert_eq!(refreshes[0].param("refresh_token"), Some(rt1.as_str()));
    assert_eq!(refreshes[0].status, 200);
    assert_basic_auth(&refreshes[0]);
    let (at2, rt2) = tap.tokens(1);
    assert_ne!((&at1, &rt1), (&at2, &rt2));
    let old = provider.token_info(&rt1).expect("old refresh token");
    assert!(old.rotated && !old.active, "{old:?}");
    assert!(provider.is_active(&at2) && provider.is_active(&rt2));

    // Revoke: the provider's revocation endpoint gets the (current) refresh token.
    let r = dep
        .call(
            Method::POST,
            &format!("/v1/connections/{id}/revoke"),
            Some(json!({ "reason": "user disconnected" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["status"], "revoked");
    assert_eq!(r.body["status_reason"], "user disconnected");
    let revocations = provider.requests_to(Endpoint::Revoke);
    assert_eq!(revocations.len(), 1, "{revocations:?}");
    assert_eq!(revocations[0].param("token"), Some(rt2.as_str()));
    assert_eq!(
        revocations[0].param("token_type_hint"),
        Some("refresh_token")
    );
    assert_eq!(revocations[0].status, 200);
    assert_basic_auth(&revocations[0]);
    assert!(
        !provider.is_active(&rt2),
        "the grant is revoked at the provider"
    );
    assert!(
        !provider.is_active(&at2),
        "revoking the refresh token ends the grant"
    );
    let r = dep.get_connection(&id).await;
    assert_eq!(r.body["status"], "revoked");
    // A revoked connection is not refreshed (and the provider is not asked).
    let r = dep.refresh_on(0, &id).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert_eq!(token_requests(&provider, "refresh_token").len(), 1);
    let r = dep
        .call(Method::POST, &format!("/v1/connections/{id}/revoke"), None)
        .await;
    assert_eq!(
        r.status,
        StatusCode::CONFLICT,
        "already revoked: {}",
        r.body
    );

    // Delete: 204, then gone.
    let r = dep
        .call(Method::DELETE, &format!("/v1/connections/{id}"), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert_eq!(dep.get_connection(&id).await.status, StatusCode::NOT_FOUND);
    let r = dep
        .call(Method::DELETE, &format!("/v1/connections/{id}"), None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = dep.call(Method::GET, "/v1/connections", None).await;
    assert_eq!(
        r.body["items"],
        json!([]),
        "a deleted connection is not listed"
    );
    assert_eq!(
        provider.requests_to(Endpoint::Revoke).len(),
        1,
        "nothing left to revoke"
    );

    // No response ever carried a token or the client secret.
    let secrets: Vec<String> = [tap.all_tokens(), vec![CLIENT_SECRET.to_string()]].concat();
    assert_eq!(secrets.len(), 5);
    for body in dep.bodies.lock().expect("bodies").iter() {
        for s in &secrets {
            assert!(!body.contains(s.as_str()), "a secret in a response: {body}");
        }
    }

    // The log: the connection's history, and the replay's audit event.
    let (events, _) = dep.events().await;
    let kinds: Vec<&str> = of(&events, &id).iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "connection.initiated",
            "connection.authorization_started",
            "connection.authorized",
            "connection.refresh_started",
            "connection.refreshed",
            "connection.revoked",
            "connection.deleted"
        ]
    );
    let authorized = of(&events, &id)[2];
    assert_eq!(
        (
            authorized.actor.id.as_str(),
            format!("{:?}", authorized.actor.actor_type)
        ),
        ("alice", "User".to_string()),
        "the end user authorized the connection"
    );
    let revoked = of(&events, &id)[5];
    assert_eq!(
        revoked.payload["provider"]["outcome"], "revoked",
        "{:?}",
        revoked.payload
    );
    let denials: Vec<&EventBody> = events
        .iter()
        .filter(|e| e.kind == "access.denied" && e.payload["reason"] == "invalid_oauth_state")
        .collect();
    assert_eq!(denials.len(), 1, "{denials:?}");
    // A consumed state no longer names its connection (only its hash was ever stored, and
    // the projection forgets it once used): the denial is recorded without a target.
    assert_eq!(
        (&denials[0].payload["status"], &denials[0].payload["route"]),
        (&json!(400), &json!("/v1/oauth/callback"))
    );
    assert_eq!(denials[0].actor.id, "oauth-callback");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_flow_refresh_and_revocation_embedded() {
    full_connect_flow(Stack::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_flow_refresh_and_revocation_jetstream_postgres() {
    full_connect_flow(Stack::JetStreamPg).await;
}

// ---------------------------------------------------------------------------------------------
// 2. Single-flight refresh
// ---------------------------------------------------------------------------------------------

/// 20 concurrent refreshes (split over every instance) while the first provider call is
/// slow: exactly one reaches the provider, all 20 answer 200 with the refreshed connection.
async fn concurrent_refreshes_are_single_flight(backend: Stack, instances: usize) {
    let dep = deploy(backend, instances, &[]).await;
    let (provider, tap) = provider_and_tap(&dep).await;
    let ac = dep.create_auth_config(&provider, &tap).await;
    let id = dep.connect(&provider, &ac, "alice").await;
    let before = dep.get_connection(&id).await.body;
    assert_eq!(provider.requests_to(Endpoint::Token).len(), 1);

    provider.fail_next_token_requests(1, TokenFault::Slow(Duration::from_millis(1500)));
    let started = std::time::Instant::now();
    let answers =
        futures::future::join_all((0..20).map(|i| dep.refresh_on(i % instances, &id))).await;
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "every answer waited for the one provider call"
    );
    for (i, r) in answers.iter().enumerate() {
        assert_eq!(r.status, StatusCode::OK, "request {i}: {}", r.body);
        assert_eq!(r.body["id"], id.as_str());
        assert_eq!(r.body["status"], "active", "request {i}: {}", r.body);
        assert!(
            r.body["last_refreshed_at"].is_string(),
            "request {i} (instance {}) answered before the refresh it adopted: {}",
            i % instances,
            r.body
        );
    }
    // Read-your-writes for every caller, the adopters on the other instance included.
    let after = dep.get_connection(&id).await.body;
    for (i, r) in answers.iter().enumerate() {
        assert_eq!(
            r.body["version"], after["version"],
            "request {i}: {}",
            r.body
        );
        assert_eq!(r.body["expires_at"], after["expires_at"], "request {i}");
    }
    // ...each with the position of the event that ended the round.
    let positions: std::collections::BTreeSet<Option<u64>> = answers
        .iter()
        .map(|r| {
            r.headers
                .get("authledger-position")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
        })
        .collect();
    assert_eq!(positions.len(), 1, "{positions:?}");
    assert!(positions.iter().all(Option::is_some), "{positions:?}");
    let refreshes = token_requests(&provider, "refresh_token");
    assert_eq!(
        refreshes.len(),
        1,
        "exactly one provider call: {refreshes:?}"
    );
    assert_eq!(provider.requests_to(Endpoint::Token).len(), 2);
    let (_, rt2) = tap.tokens(1);
    assert!(provider.is_active(&rt2));

    let kinds = dep.kinds_of(&id).await;
    let count = |k: &str| kinds.iter().filter(|x| x.as_str() == k).count();
    assert_eq!(
        (
            count("connection.refresh_started"),
            count("connection.refreshed")
        ),
        (1, 1),
        "{kinds:?}"
    );
    assert_eq!(
        after["version"].as_i64(),
        before["version"].as_i64().map(|v| v + 2),
        "one round: started + refreshed"
    );

    // The next refresh is a new round (the lease ended).
    let r = dep.refresh_on(instances - 1, &id).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(token_requests(&provider, "refresh_token").len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_refreshes_make_one_provider_call_embedded() {
    concurrent_refreshes_are_single_flight(Stack::Embedded, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_refreshes_make_one_provider_call_across_two_instances() {
    concurrent_refreshes_are_single_flight(Stack::JetStreamPg, 2).await;
}

/// Issue 15, item 14: the provider's redirect back delivered 12 times at once, to two
/// instances: the state is claimed in the log first, so the code is sent to the provider
/// once and one callback completes the flow; the others are refused as replays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_callbacks_on_two_instances_send_the_code_once() {
    let dep = deploy(Stack::JetStreamPg, 2, &[]).await;
    let (provider, tap) = provider_and_tap(&dep).await;
    let ac = dep.create_auth_config(&provider, &tap).await;
    let (id, connect_url) = dep.initiate(&ac, "alice").await;
    let callback = provider.visit(connect_url.as_str()).await;
    let query = callback.query().expect("code and state").to_string();
    provider.fail_next_token_requests(50, TokenFault::Slow(Duration::from_millis(300)));
    let before = provider.counters().code_exchanges;
    let http = no_redirect_client();
    let answers = futures::future::join_all((0..12).map(|i| {
        let url = dep
            .instance(i % 2)
            .url(&format!("/v1/oauth/callback?{query}"));
        http.get(url).send()
    }))
    .await;
    let statuses: Vec<StatusCode> = answers
        .into_iter()
        .map(|a| a.expect("callback").status())
        .collect();
    assert_eq!(
        provider.counters().code_exchanges - before,
        1,
        "the code is sent once"
    );
    let completed = statuses
        .iter()
        .filter(|s| **s == StatusCode::SEE_OTHER)
        .count();
    let replays = statuses
        .iter()
        .filter(|s| **s == StatusCode::BAD_REQUEST)
        .count();
    assert_eq!((completed, replays), (1, 11), "{statuses:?}");
    let r = dep.get_connection(&id).await;
    assert_ne!(r.body["status"], "initiated", "{}", r.body);
}

// ---------------------------------------------------------------------------------------------
// 3. Failures
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denied_consent_bad_state_and_refresh_failures() {
    let dep = deploy(
        Stack::Embedded,
        1,
        &[
            ("AUTHLEDGER_REFRESH_ATTEMPTS", "3"),
            ("AUTHLEDGER_REFRESH_RETRY_MS", "20"),
        ],
    )
    .await;
    let (provider, tap) = provider_and_tap(&dep).await;
    let ac = dep.create_auth_config(&provider, &tap).await;

    // Consent denied: back to the app with the error; the connection is in error.
    provider.set_consent(Consent::Deny);
    let (denied, connect_url) = dep.initiate(&ac, "dora").await;
    let callback = provider.visit(connect_url.as_str()).await;
    assert_eq!(query(&callback, "error").as_deref(), Some("access_denied"));
    let (status, location, body) = dep.follow_callback(&callback).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let location = location.expect("location");
    assert!(location.as_str().starts_with(RETURN_TO), "{location}");
    assert_eq!(query(&location, "connection_id"), Some(denied.clone()));
    assert_eq!(query(&location, "status").as_deref(), Some("error"));
    assert_eq!(query(&location, "error").as_deref(), Some("access_denied"));
    let r = dep.get_connection(&denied).await;
    assert_eq!(r.body["status"], "error", "{}", r.body);
    assert!(
        r.body["status_reason"]
            .as_str()
            .unwrap_or("")
            .contains("access_denied"),
        "{}",
        r.body
    );
    assert_eq!(r.body["has_refresh_token"], false);
    assert!(
        provider.requests_to(Endpoint::Token).is_empty(),
        "no code, no exchange"
    );
    // Its state is spent too.
    let (status, _, _) = dep.follow_callback(&callback).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    provider.set_consent(Consent::Grant);

    // Unknown (or absent) state: 400, audited.
    let mut unknown = Url::parse(&dep.callback()).expect("url");
    unknown
        .query_pairs_mut()
        .append_pair("code", "made-up-code")
        .append_pair("state", "no-such-state-0123456789abcdef");
    let (status, location, body) = dep.follow_callback(&unknown).await;
    assert_eq!(
        (status, location),
        (StatusCode::BAD_REQUEST, None),
        "{body}"
    );
    assert_eq!(body["type"], format!("{PROBLEMS}invalid-oauth-state"));
    let bare = Url::parse(&dep.callback()).expect("url");
    let (status, _, body) = dep.follow_callback(&bare).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["type"], format!("{PROBLEMS}invalid-oauth-state"));
    assert!(provider.requests_to(Endpoint::Token).is_empty());

    // Two 500s, then success: three attempts in one round, each recorded.
    let id = dep.connect(&provider, &ac, "alice").await;
    provider.fail_next_token_requests(2, TokenFault::ServerError);
    let r = dep.refresh_on(0, &id).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body["last_refreshed_at"].is_string());
    assert_eq!(r.body["status_reason"], Value::Null, "{}", r.body);
    let attempts = token_requests(&provider, "refresh_token");
    assert_eq!(
        attempts.iter().map(|r| r.status).collect::<Vec<_>>(),
        [500, 500, 200]
    );
    let (events, _) = dep.events().await;
    let round: Vec<(String, Value)> = of(&events, &id)
        .iter()
        // initiated, authorization_started, authorized
        .skip(3)
        .map(|e| (e.kind.clone(), e.payload.clone()))
        .collect();
    let kinds: Vec<&str> = round.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "connection.refresh_started",
            "connection.refresh_failed",
            "connection.refresh_failed",
            "connection.refreshed"
        ]
    );
    for (n, (_, p)) in round[1..3].iter().enumerate() {
        assert_eq!(
            (&p["attempt"], &p["retryable"], &p["final"]),
            (&json!(n + 1), &json!(true), &json!(false)),
            "{p}"
        );
    }
    assert_eq!(round[3].1["attempts"], 3);
    assert_eq!(round[0].1["trigger"], "on_demand");

    // Every attempt fails: 502, and the connection stays active (its token is still good).
    provider.fail_next_token_requests(3, TokenFault::ServerError);
    let r = dep.refresh_on(0, &id).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.body);
    assert_eq!(r.body["type"], format!("{PROBLEMS}refresh-failed"));
    assert_eq!(token_requests(&provider, "refresh_token").len(), 6);
    let r = dep.get_connection(&id).await;
    assert_eq!(r.body["status"], "active", "{}", r.body);
    assert_eq!(r.body["has_refresh_token"], true);
    let kinds = dep.kinds_of(&id).await;
    assert_eq!(
        kinds[kinds.len() - 4..],
        [
            "connection.refresh_started",
            "connection.refresh_failed",
            "connection.refresh_failed",
            "connection.refresh_failed"
        ]
    );
    // The round ended: the next refresh runs (and works).
    let r = dep.refresh_on(0, &id).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(token_requests(&provider, "refresh_token").len(), 7);

    // invalid_grant: the grant is dead, at once (no retry); the connection is expired.
    provider.fail_next_token_requests(1, TokenFault::InvalidGrant);
    let r = dep.refresh_on(0, &id).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert_eq!(r.body["type"], format!("{PROBLEMS}connection-expired"));
    assert_eq!(
        token_requests(&provider, "refresh_token").len(),
        8,
        "not retried"
    );
    let r = dep.get_connection(&id).await;
    assert_eq!(r.body["status"], "expired", "{}", r.body);
    assert!(
        r.body["status_reason"]
            .as_str()
            .unwrap_or("")
            .contains("invalid_grant"),
        "{}",
        r.body
    );
    let kinds = dep.kinds_of(&id).await;
    assert_eq!(
        kinds[kinds.len() - 3..],
        [
            "connection.refresh_started",
            "connection.refresh_failed",
            "connection.expired"
        ]
    );
    // An expired connection is not refreshed again.
    let r = dep.refresh_on(0, &id).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    // The rounds this instance ran, by outcome.
    let metrics = dep.call_on(0, Method::GET, "/metrics", None).await.text;
    for (result, n) in [("refreshed", 2), ("failed", 1), ("expired", 1)] {
        let sample = format!("authledger_connection_refreshes_total{{result=\"{result}\"}} {n}");
        assert!(
            metrics.lines().any(|l| l == sample),
            "{sample} in\n{metrics}"
        );
    }
    assert_eq!(token_requests(&provider, "refresh_token").len(), 8);

    // Every bad state was audited (the replay of the denied flow, the unknown, the bare one).
    let (events, _) = dep.events().await;
    let denials: Vec<&EventBody> = events
        .iter()
        .filter(|e| e.kind == "access.denied" && e.payload["reason"] == "invalid_oauth_state")
        .collect();
    assert_eq!(denials.len(), 3, "{denials:?}");
    for d in &denials {
        assert_eq!(
            (&d.payload["status"], &d.payload["route"]),
            (&json!(400), &json!("/v1/oauth/callback")),
            "{:?}",
            d.payload
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 4. Secrets never in the log; shredded on delete
// ---------------------------------------------------------------------------------------------

fn sealed_at(payload: &Value, pointer: &str) -> Option<Sealed> {
    let s = payload.pointer(pointer)?;
    Some(Sealed {
        data_key_id: s["data_key_id"].as_str()?.into(),
        nonce: s["nonce"].as_str()?.into(),
        ciphertext: s["ciphertext"].as_str()?.into(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_in_the_log_and_tokens_are_shredded_on_delete() {
    let dep = deploy(Stack::Embedded, 1, &[]).await;
    let (provider, tap) = provider_and_tap(&dep).await;
    let ac = dep.create_auth_config(&provider, &tap).await;
    let id = dep.connect(&provider, &ac, "alice").await;
    let r = dep.refresh_on(0, &id).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let verifier = token_requests(&provider, "authorization_code")[0]
        .param("code_verifier")
        .expect("verifier")
        .to_string();
    let (at1, rt1) = tap.tokens(0);
    let (at2, rt2) = tap.tokens(1);
    let secrets = [
        at1.as_str(),
        rt1.as_str(),
        at2.as_str(),
        rt2.as_str(),
        CLIENT_SECRET,
        verifier.as_str(),
    ];

    // Neither the raw log nor any decoded event body (the DSSE payload is base64) holds one,
    // nor any database file.
    let (events, text) = dep.events().await;
    let decoded: Vec<String> = events
        .iter()
        .map(|e| serde_json::to_string(e).expect("body json"))
        .collect();
    for s in secrets {
        assert!(!text.contains(s), "a secret in dump-log");
        for d in &decoded {
            assert!(!d.contains(s), "a secret in an event: {d}");
        }
        for file in [
            "ledger.db",
            "ledger.db-wal",
            "projections.db",
            "projections.db-wal",
            "data_keys.db",
            "data_keys.db-wal",
        ] {
            if let Ok(bytes) = std::fs::read(dep.data().join(file)) {
                assert!(
                    !bytes.windows(s.len()).any(|w| w == s.as_bytes()),
                    "a secret in {file}"
                );
            }
        }
    }

    // The sealed secrets of the connection: the verifier, two token pairs.
    let mine = of(&events, &id);
    let initiated = mine
        .iter()
        .find(|e| e.kind == "connection.initiated")
        .expect("initiated");
    let authorized = mine
        .iter()
        .find(|e| e.kind == "connection.authorized")
        .expect("authorized");
    let refreshed = mine
        .iter()
        .find(|e| e.kind == "connection.refreshed")
        .expect("refreshed");
    let sealed = vec![
        (
            "pkce_verifier",
            sealed_at(&initiated.payload, "/pkce_verifier"),
            verifier.clone(),
        ),
        (
            "access_token",
            sealed_at(&authorized.payload, "/tokens/access_token"),
            at1.clone(),
        ),
        (
            "refresh_token",
            sealed_at(&authorized.payload, "/tokens/refresh_token"),
            rt1.clone(),
        ),
        (
            "access_token",
            sealed_at(&refreshed.payload, "/tokens/access_token"),
            at2.clone(),
        ),
        (
            "refresh_token",
            sealed_at(&refreshed.payload, "/tokens/refresh_token"),
            rt2.clone(),
        ),
    ];
    let data_key = initiated.payload["data_key_id"].as_str().expect("data key");
    for (field, s, _) in &sealed {
        let s = s
            .as_ref()
            .unwrap_or_else(|| panic!("{field} is sealed in the log"));
        assert_eq!(
            s.data_key_id, data_key,
            "sealed under the connection's own data key"
        );
    }

    // With the operator's master key and data-key store they open (to exactly what the
    // provider issued) while the connection lives...
    let vault = Vault::with_keys(
        load_master_keys(&dep.data().join("keys"), false).expect("master"),
        Arc::new(
            SqliteDataKeys::open(&dep.data().join("data_keys.db"))
                .await
                .expect("data keys"),
        ),
    )
    .await
    .expect("vault");
    for (field, s, plain) in &sealed {
        let aad = resource_aad(&dep.workspace, "connection", &id, field);
        let opened = vault
            .open(s.as_ref().expect("sealed"), &aad)
            .await
            .unwrap_or_else(|e| panic!("{field}: {e}"));
        assert_eq!(opened.expose_secret(), plain.as_bytes(), "{field}");
        // ...bound to their resource and field.
        let other = resource_aad(&dep.workspace, "connection", "other", field);
        assert!(vault
            .open(s.as_ref().expect("sealed"), &other)
            .await
            .is_err());
    }

    // ...and after DELETE never again: the data key is destroyed, the log unchanged.
    let r = dep
        .call(Method::DELETE, &format!("/v1/connections/{id}"), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let (after, _) = dep.events().await;
    let deleted = of(&after, &id)
        .into_iter()
        .find(|e| e.kind == "connection.deleted")
        .expect("deleted event");
    assert_eq!(deleted.payload["data_key_id"], data_key);
    assert_eq!(
        of(&after, &id).len(),
        mine.len() + 2,
        "revoked + deleted appended"
    );
    for (field, s, _) in &sealed {
        let aad = resource_aad(&dep.workspace, "connection", &id, field);
        let err = vault
            .open(s.as_ref().expect("sealed"), &aad)
            .await
            .expect_err("shredded");
        assert!(matches!(err, CryptoError::Shredded(_)), "{field}: {err}");
    }
    // The provider was told first: the grant is revoked.
    assert!(!provider.is_active(&rt2) && !provider.is_active(&at2));
    // The log still verifies.
    let a = [dep.storage.clone(), args(&["verify", "--json"])].concat();
    let out = tokio::task::spawn_blocking(move || run_cli(&a))
        .await
        .expect("join");
    let report: Value = serde_json::from_slice(&out.stdout).expect("report");
    assert_eq!(report["ok"], true, "{report}");
}

// ---------------------------------------------------------------------------------------------
// 5. The scheduler refreshes before expiry
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduler_refreshes_connections_before_their_token_expires() {
    let dep = deploy(
        Stack::Embedded,
        1,
        &[
            ("AUTHLEDGER_REFRESH_SCHEDULE", "* * * * * *"),
            ("AUTHLEDGER_REFRESH_BUFFER_SECS", "60"),
        ],
    )
    .await;
    let (provider, tap) = provider_and_tap(&dep).await;
    let ac = dep.create_auth_config(&provider, &tap).await;
    // The first token lives 20 s (within the 60 s buffer); later ones an hour.
    provider.set_access_token_ttl(Duration::from_secs(20));
    let id = dep.connect(&provider, &ac, "alice").await;
    provider.set_access_token_ttl(Duration::from_secs(3600));
    assert_eq!(tap.issued()[0]["expires_in"], 20);

    // No API call: the scheduler renews it.
    eventually(Duration::from_secs(15), "a scheduled refresh", || async {
        dep.get_connection(&id).await.body["last_refreshed_at"].is_string()
    })
    .await;
    let last = dep.get_connection(&id).await.body;
    assert_eq!(last["status"], "active", "{last}");
    let expires_at = time::OffsetDateTime::parse(
        last["expires_at"].as_str().expect("expires_at"),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("rfc3339");
    assert!(
        expires_at > time::OffsetDateTime::now_utc() + time::Duration::minutes(50),
        "the new token's expiry: {last}"
    );
    let (_, rt1) = tap.tokens(0);
    assert!(!provider.is_active(&rt1), "rotated");

    // Once renewed it is no longer due: the next ticks leave it alone.
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert_eq!(token_requests(&provider, "refresh_token").len(), 1);
    let (events, _) = dep.events().await;
    let mine = of(&events, &id);
    let kinds: Vec<&str> = mine.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "connection.initiated",
            "connection.authorization_started",
            "connection.authorized",
            "connection.refresh_started",
            "connection.refreshed"
        ]
    );
    let started = mine[3];
    assert_eq!(
        started.payload["trigger"], "scheduled",
        "{:?}",
        started.payload
    );
    let actor = serde_json::to_value(&started.actor).expect("actor");
    assert_eq!(actor["type"], "system", "{actor}");
    assert_eq!(
        serde_json::to_value(&mine[4].actor).expect("actor")["type"],
        "system"
    );
}

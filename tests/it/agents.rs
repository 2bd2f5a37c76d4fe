//! Agents end to end (issue 6), over HTTP against the real `authledger serve` binary: scoped
//! tokens (verified offline against `/.well-known/jwks.json`), the gateway calling real
//! upstreams with credentials the agent never sees, every refusal with its problem type and
//! audit record, refresh before use (one refresh grant for 50 concurrent calls), step-up
//! approvals by the end user, connect on demand, upstream retries, timeouts and redirects,
//! credential injection, and workspace tool definitions. The main flows run on the embedded
//! log and on JetStream + PostgreSQL.
//!
//! Upstreams are the real local OAuth provider (`oauth_provider`: its `/api/...` resources
//! check the bearer token like a real API) and a recording HTTP server (`support::Upstream`)
//! that answers 200, 500, a stall or a redirect, and keeps every request it got.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::header;
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Validation};
use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use crate::end_user;
use crate::fixtures::oauth_provider::{Endpoint, OAuthProvider};
use crate::harness::{args, run_cli};
use crate::support::{
    self, follow_connect_url, oauth_config_body, request, Api, Deployment, Hit, Reply, Stack,
    TestClock, Upstream, BASE_ENV, NO_RATE_LIMIT, RETURN_TO,
};

const CLIENT_ID: &str = "agents-e2e-client";
const CLIENT_SECRET: &str = "agents-e2e-cl1ent-s3cret";
/// The user the test provider logs in (the provider-side identity of every grant).
const PROVIDER_USER: &str = "user-1";

/// Every instance: on top of the shared base (loopback URLs, no scheduler), quick provider
/// retries, and no request rate limit (not under test here).
const AGENTS_ENV: &[(&str, &str)] = &[
    ("AUTHLEDGER_REFRESH_RETRY_MS", "50"),
    ("AUTHLEDGER_PROVIDER_TIMEOUT_SECS", "5"),
];

// ---------------------------------------------------------------------------------------------
// A recording upstream
// ---------------------------------------------------------------------------------------------

/// The recording upstream of these tests. `/fail` answers 500, `/slow` answers after 5 s,
/// `/redirect` answers 302 to `redirect_to`; anything else 200 with the method and path
/// (never a header or the query, so it cannot echo a credential back).
async fn recording_upstream(redirect_to: Option<String>) -> Upstream {
    Upstream::start(move |hit: Hit| {
        let redirect_to = redirect_to.clone();
        async move { answer(redirect_to.as_deref(), hit).await }
    })
    .await
}

async fn answer(redirect_to: Option<&str>, hit: Hit) -> Response {
    match hit.path.as_str() {
        "/fail" => (
            StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(json!({ "error": "boom" })),
        )
            .into_response(),
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            axum::Json(json!({ "late": true })).into_response()
        }
        "/redirect" => match redirect_to {
            Some(to) => (StatusCode::FOUND, [(header::LOCATION, to.to_string())]).into_response(),
            None => StatusCode::NOT_FOUND.into_response(),
        },
        path => {
            axum::Json(json!({ "ok": true, "method": hit.method, "path": path })).into_response()
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A deployment of the service
// ---------------------------------------------------------------------------------------------

/// One `serve` instance with its workspace's admin key (`support::Deployment`), an HTTP
/// client, and every response body any call received (scanned for secrets).
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

async fn deploy(stack: Stack, extra_env: &[(&str, &str)]) -> Env {
    let envs: Vec<(&str, &str)> = [BASE_ENV, AGENTS_ENV, NO_RATE_LIMIT, extra_env].concat();
    Env {
        d: Deployment::start(stack, &envs).await,
        http: Client::new(),
        bodies: Mutex::new(Vec::new()),
    }
}

impl Env {
    async fn send(&self, req: reqwest::RequestBuilder) -> Reply {
        let reply = self.send_unrecorded(req).await;
        self.bodies.lock().expect("bodies").push(reply.text.clone());
        reply
    }

    /// Like `send`, without keeping the body for the secret scan (the one answer that
    /// carries a secret by design: a newly issued token).
    async fn send_unrecorded(&self, req: reqwest::RequestBuilder) -> Reply {
        Reply::of(req).await
    }

    /// A new API key of `role`: (id, key).
    async fn key(&self, role: &str) -> (String, String) {
        self.key_of(&self.admin, role).await
    }

    /// `POST /v1/tokens`. A 201 carries the token (kept out of the secret scan); any other
    /// answer is scanned like every other.
    async fn issue(&self, bearer: &str, body: Value) -> Reply {
        let req = self
            .http
            .post(self.svc.url("/v1/tokens"))
            .bearer_auth(bearer)
            .json(&body);
        let reply = self.send_unrecorded(req).await;
        if reply.status != StatusCode::CREATED {
            self.bodies.lock().expect("bodies").push(reply.text.clone());
        }
        reply
    }

    async fn execute(&self, bearer: &str, body: Value) -> Reply {
        self.post(bearer, "/v1/tools/execute", body).await
    }

    async fn define(&self, bearer: &str, definition: Value) -> Reply {
        self.post(bearer, "/v1/tools", definition).await
    }

    /// This workspace's audit events matching `query`, oldest first.
    async fn audit(&self, query: &str) -> Vec<Value> {
        self.audit_events(query).await
    }

    /// Polls the audit view until `done` holds (projections follow the log).
    async fn audit_until(
        &self,
        query: &str,
        what: &str,
        done: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        self.audit_events_until(query, what, Duration::from_secs(15), done)
            .await
    }

    /// Waits for an `access.denied` event with `reason` on `route`, and returns its body.
    async fn denial(&self, reason: &str, route: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut checked = std::collections::HashSet::new();
        loop {
            let items = self.audit("kind=access.denied").await;
            for e in items.iter().filter(|e| e["reason"] == reason) {
                let id = e["event_id"].as_str().expect("event_id").to_string();
                if !checked.insert(id.clone()) {
                    continue;
                }
                let detail = self
                    .get(&self.admin, &format!("/v1/audit/events/{id}"))
                    .await;
                if detail.body["body"]["payload"]["route"] == route {
                    return detail.body["body"].clone();
                }
            }
            assert!(
                Instant::now() < deadline,
                "no access.denied {reason} on {route}: {items:#?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The events of one aggregate (e.g. a tool call), oldest first, once there are `n`.
    async fn events_of(&self, kind_prefix: &str, aggregate_id: &str, n: usize) -> Vec<Value> {
        let items = self
            .audit_until(
                &format!("kind={kind_prefix}"),
                &format!("{n} {kind_prefix} events of {aggregate_id}"),
                |items| {
                    items
                        .iter()
                        .filter(|e| e["aggregate"]["id"] == aggregate_id)
                        .count()
                        >= n
                },
            )
            .await;
        items
            .into_iter()
            .filter(|e| e["aggregate"]["id"] == aggregate_id)
            .collect()
    }

    /// The body of one event as signed (`GET /v1/audit/events/{id}`).
    async fn event_body(&self, bearer: &str, event_id: &str) -> Reply {
        self.get(bearer, &format!("/v1/audit/events/{event_id}"))
            .await
    }

    /// An OAuth 2.0 auth config at the test provider, scopes `read write`.
    async fn oauth_config(&self, provider: &OAuthProvider) -> String {
        let r = self
            .post(
                &self.admin,
                "/v1/auth-configs",
                oauth_config_body(provider, CLIENT_ID, CLIENT_SECRET),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        r.str("id")
    }

    /// An auth config of another auth type (`api_key`, `bearer_token`), provider `custom`.
    async fn credential_config(&self, auth_type: &str, settings: Value) -> String {
        let mut body = json!({ "name": format!("{auth_type} config"), "provider": "custom", "auth_type": auth_type });
        body[auth_type] = settings;
        let r = self.post(&self.admin, "/v1/auth-configs", body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        r.str("id")
    }

    /// A connection from credentials (active at once).
    async fn credential_connection(&self, config: &str, user: &str, credentials: Value) -> String {
        self.credential_connection_by(&self.admin, config, user, credentials)
            .await
    }

    /// The whole OAuth connect flow for `user`: returns the active connection's id.
    async fn connect(&self, provider: &OAuthProvider, config: &str, user: &str) -> String {
        let r = self
            .post(
                &self.admin,
                "/v1/connections",
                json!({ "auth_config_id": config, "user_id": user, "redirect_url": RETURN_TO }),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        let id = r.str("id");
        assert_eq!(
            self.finish_connect(provider, &r.str("connect_url")).await,
            id
        );
        id
    }

    /// Plays the user's browser on a connect URL: consent at the provider, then our
    /// callback. Returns the connection id the callback reports active.
    async fn finish_connect(&self, provider: &OAuthProvider, connect_url: &str) -> String {
        let location = follow_connect_url(provider, connect_url).await;
        let param = |name: &str| {
            location
                .query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        };
        assert_eq!(param("status").as_deref(), Some("active"), "{location}");
        param("connection_id").expect("connection_id")
    }

    /// Lets agent keys start connect flows (connect on demand) for any user of the workspace
    /// (`workspace.agent_connect_flows_set`; off by default).
    async fn let_agents_connect_anyone(&self) {
        let r = self
            .call(
                &self.admin,
                Method::PUT,
                "/v1/workspace/agent-connect-flows",
                Some(json!({ "any_user": true })),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }

    /// The whole log as `authledger dump-log` prints it.
    async fn dump_log(&self) -> String {
        let a = [self.storage.clone(), args(&["dump-log"])].concat();
        let out = tokio::task::spawn_blocking(move || run_cli(&a))
            .await
            .expect("join");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8")
    }

    /// Asserts no response body so far, and not the log, holds any of `secrets`.
    async fn assert_never_shown(&self, secrets: &[String]) {
        let log = self.dump_log().await;
        let bodies = self.bodies.lock().expect("bodies").clone();
        for s in secrets {
            assert!(!s.is_empty());
            assert!(!log.contains(s.as_str()), "the log holds a secret");
            for b in &bodies {
                assert!(!b.contains(s.as_str()), "a response holds a secret: {b}");
            }
        }
    }
}

impl Api for Env {
    async fn call(&self, bearer: &str, method: Method, path: &str, body: Option<Value>) -> Reply {
        self.send(request(&self.http, &self.svc, bearer, method, path, body))
            .await
    }

    fn admin(&self) -> &str {
        &self.admin
    }
}

/// The test provider, with our client registered for the service's callback.
async fn provider_for(env: &Env) -> OAuthProvider {
    support::provider_for(&env.svc, CLIENT_ID, CLIENT_SECRET).await
}

/// A workspace tool definition of provider `custom` with free-form arguments.
fn tool(
    name: &str,
    base_url: &str,
    method: &str,
    path: &str,
    scopes: &[&str],
    risk: &str,
) -> Value {
    json!({
        "name": name, "provider": "custom", "description": format!("End-to-end test tool {name}."),
        "method": method, "base_url": base_url, "path": path,
        "parameters": { "type": "object" },
        "required_scopes": scopes, "risk": risk,
    })
}

/// The access tokens the provider's protected resources were called with, in order.
fn bearer_tokens_seen(provider: &OAuthProvider) -> Vec<(String, u16)> {
    provider
        .requests_to(Endpoint::Api)
        .into_iter()
        .map(|r| {
            let token = r
                .authorization
                .as_deref()
                .and_then(|a| a.strip_prefix("Bearer "))
                .unwrap_or("")
                .to_string();
            (token, r.status)
        })
        .collect()
}

/// `sha256:<hex>` of a token string, as the ledger records it.
fn fingerprint(token: &str) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(token.as_bytes())))
}

/// Verifies a scoped token offline, with nothing but the service's published JWKS.
async fn verify_offline(env: &Env, token: &str) -> Result<Value, String> {
    let jwks: JwkSet = env
        .http
        .get(env.svc.url("/.well-known/jwks.json"))
        .send()
        .await
        .expect("jwks")
        .json()
        .await
        .expect("jwks json");
    let header = jsonwebtoken::decode_header(token).map_err(|e| e.to_string())?;
    if header.alg != Algorithm::EdDSA || header.typ.as_deref() != Some("at+jwt") {
        return Err(format!("header {header:?}"));
    }
    let kid = header.kid.ok_or("no kid")?;
    let jwk = jwks.find(&kid).ok_or("kid not in the JWKS")?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
    let mut v = Validation::new(Algorithm::EdDSA);
    v.set_audience(&["authledger"]);
    v.set_issuer(&[format!("http://{}", env.svc.addr)]);
    v.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
    v.leeway = 0;
    jsonwebtoken::decode::<Value>(token, &key, &v)
        .map(|d| d.claims)
        .map_err(|e| e.to_string())
}

fn unix_of(rfc3339: &str) -> i64 {
    time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .expect("rfc3339")
        .unix_timestamp()
}

// ---------------------------------------------------------------------------------------------
// 1-3. Scoped tokens, the gateway with a token, and every refusal
// ---------------------------------------------------------------------------------------------

/// What the scoped-token tests start from: one deployment, the test provider, an OAuth 2.0
/// auth config on it, alice's active connection, an agent key and an auditor key, and three
/// workspace tools at the provider (`custom.me` needs `read`, `custom.require_write`
/// `write`, `custom.require_admin` `admin`, which the connection was never granted).
struct Scene {
    env: Env,
    provider: OAuthProvider,
    ac: String,
    alice: String,
    agent_id: String,
    agent: String,
    auditor: String,
    base: String,
}

async fn scene(stack: Stack, extra_env: &[(&str, &str)]) -> Scene {
    let env = deploy(stack, extra_env).await;
    let provider = provider_for(&env).await;
    let ac = env.oauth_config(&provider).await;
    let alice = env.connect(&provider, &ac, "alice").await;
    let (agent_id, agent) = env.key("agent").await;
    let (_, auditor) = env.key("auditor").await;
    let base = provider.base_url().to_string();
    for def in [
        tool("custom.me", &base, "GET", "/api/me", &["read"], "read"),
        tool(
            "custom.require_write",
            &base,
            "GET",
            "/api/require/write",
            &["write"],
            "write",
        ),
        tool(
            "custom.require_admin",
            &base,
            "GET",
            "/api/require/admin",
            &["admin"],
            "read",
        ),
    ] {
        let r = env.define(&env.admin, def).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
    Scene {
        env,
        provider,
        ac,
        alice,
        agent_id,
        agent,
        auditor,
        base,
    }
}

impl Env {
    /// A `read` token of `connection` for ten minutes, issued to `agent`: (token, id).
    async fn read_token(&self, agent: &str, connection: &str) -> (String, String) {
        let r = self
            .issue(
                agent,
                json!({ "connection_id": connection, "scopes": ["read"], "ttl_seconds": 600 }),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        (r.str("token"), r.str("id"))
    }

    /// Neither a scoped token nor an access token `provider` saw is in any response or in
    /// the log.
    async fn assert_no_token_shown(&self, provider: &OAuthProvider, scoped_tokens: Vec<String>) {
        let mut secrets = scoped_tokens;
        secrets.extend(bearer_tokens_seen(provider).into_iter().map(|(t, _)| t));
        self.assert_never_shown(&secrets).await;
    }
}

/// Runs an async `scenario(stack)` as two named tests, one per storage stack.
macro_rules! on_both_stacks {
    ($scenario:ident) => {
        mod $scenario {
            use crate::support::Stack;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn embedded() {
                super::$scenario(Stack::Embedded).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_jetstream_and_postgres() {
                super::$scenario(Stack::JetStreamPg).await;
            }
        }
    };
}

// 1. Issue a token for a subset of the granted scopes.
on_both_stacks!(a_scoped_token_holds_a_subset_of_the_grant_and_verifies_offline);
async fn a_scoped_token_holds_a_subset_of_the_grant_and_verifies_offline(stack: Stack) {
    let Scene {
        env,
        provider,
        alice,
        agent_id,
        agent,
        auditor,
        ac,
        ..
    } = scene(stack, &[]).await;
    let mut scoped_tokens = Vec::new();
    let r = env
        .issue(
            &agent,
            json!({ "connection_id": alice, "scopes": ["read"], "ttl_seconds": 600 }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(
        r.headers.get("cache-control").and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    let token = r.str("token");
    scoped_tokens.push(token.clone());
    let token_id = r.str("id");
    let issued_event_id = r.str("issued_event_id");
    // Answered once `token.issued` is durable: the audit view shows it from this position.
    let issued_at = r
        .headers
        .get("authledger-position")
        .and_then(|v| v.to_str().ok())
        .expect("the issuance answers its log position")
        .to_string();
    assert_eq!(r.body["scopes"], json!(["read"]));
    assert_eq!(r.body["status"], "active");
    assert_eq!(r.body["token_type"], "Bearer");
    assert_eq!(r.body["connection_id"], alice.as_str());
    assert_eq!(r.body["fingerprint"], fingerprint(&token));
    let expires_at = unix_of(&r.str("expires_at"));
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    assert!((now + 590..=now + 601).contains(&expires_at), "{}", r.text);

    // Offline: the JWKS alone verifies it, and its claims say what it allows.
    let claims = verify_offline(&env, &token)
        .await
        .expect("verifies offline");
    assert_eq!(claims["jti"], token_id.as_str());
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["aud"], "authledger");
    assert_eq!(claims["scope"], "read");
    assert_eq!(claims["workspace_id"], env.workspace.as_str());
    assert_eq!(claims["connection_id"], alice.as_str());
    assert_eq!(claims["auth_config_id"], ac.as_str());
    assert_eq!(claims["client_id"], agent_id.as_str());
    assert_eq!(claims["issued_event_id"], issued_event_id.as_str());
    assert_eq!(claims["exp"].as_i64(), Some(expires_at));
    assert!(claims.get("tool").is_none() && claims.get("max_uses").is_none());

    // The token.issued event: fingerprint only, never the token.
    let e = env
        .event_body(
            &auditor,
            &format!("{issued_event_id}?min_position={issued_at}"),
        )
        .await;
    assert_eq!(e.status, StatusCode::OK, "{}", e.text);
    assert_eq!(e.body["event"]["kind"], "token.issued", "{}", e.text);
    assert_eq!(e.body["body"]["aggregate_id"], token_id.as_str());
    assert_eq!(
        e.body["body"]["payload"]["fingerprint"],
        fingerprint(&token)
    );
    assert_eq!(e.body["body"]["payload"]["scopes"], json!(["read"]));
    assert_eq!(
        e.body["body"]["actor"]["id"],
        agent_id.as_str(),
        "{}",
        e.text
    );
    assert!(!e.text.contains(&token));
    // The ledger's view of the token has no token either.
    let r = env.get(&agent, &format!("/v1/tokens/{token_id}")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        (r.body["status"].as_str(), r.body["uses"].as_u64()),
        (Some("active"), Some(0))
    );
    assert!(r.body.get("token").is_none(), "{}", r.text);
    env.assert_no_token_shown(&provider, scoped_tokens).await;
}

// 2. The gateway with the token.
on_both_stacks!(the_gateway_calls_with_the_connections_credential_and_records_the_call);
async fn the_gateway_calls_with_the_connections_credential_and_records_the_call(stack: Stack) {
    let Scene {
        env,
        provider,
        alice,
        agent,
        auditor,
        base,
        ..
    } = scene(stack, &[]).await;
    let (token, token_id) = env.read_token(&agent, &alice).await;
    // An agent argument named like the credential header goes to the query, never a header.
    let r = env
        .execute(
            &token,
            json!({ "tool": "custom.me", "arguments": { "authorization": "Bearer agent-forged" } }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.body["status"], 200,
        "the provider accepted the injected token: {}",
        r.text
    );
    assert_eq!(r.body["body"]["client_id"], CLIENT_ID);
    assert_eq!(r.body["body"]["user_id"], PROVIDER_USER);
    let call_id = r.str("tool_call_id");
    let seen = bearer_tokens_seen(&provider);
    assert_eq!(seen.len(), 1, "{seen:?}");
    let (access_token, status) = seen[0].clone();
    assert_eq!(status, 200);
    let info = provider
        .token_info(&access_token)
        .expect("a token the provider issued");
    assert!(info.active && info.client_id == CLIENT_ID, "{info:?}");
    assert!(!r.text.contains(&access_token));
    // tool.requested then tool.completed, and the token use.
    let events = env.events_of("tool.", &call_id, 2).await;
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["kind"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(kinds, ["tool.requested", "tool.completed"]);
    assert_eq!(events[0]["token_id"], token_id.as_str());
    assert_eq!(events[0]["connection_id"], alice.as_str());
    assert_eq!(events[0]["tool"], "custom.me");
    assert_eq!(events[1]["outcome"], "success");
    let used = env
        .audit_until("kind=token.used", "token.used", |items| {
            items.iter().any(|e| e["token_id"] == token_id.as_str())
        })
        .await;
    let used = used
        .iter()
        .find(|e| e["token_id"] == token_id.as_str())
        .expect("used");
    let e = env
        .event_body(&auditor, used["event_id"].as_str().expect("id"))
        .await;
    assert_eq!(e.body["body"]["payload"]["tool_call_id"], call_id.as_str());
    let requested = env
        .event_body(&auditor, events[0]["event_id"].as_str().expect("id"))
        .await;
    assert_eq!(
        requested.body["body"]["payload"]["url"],
        format!("{base}/api/me"),
        "recorded without the query: {}",
        requested.text
    );
    let r = env.get(&agent, &format!("/v1/tokens/{token_id}")).await;
    assert_eq!(r.body["uses"], 1, "{}", r.text);
    env.assert_no_token_shown(&provider, vec![token]).await;
}

// 3. Refusals.
on_both_stacks!(scope_escalation_is_refused_at_issue_and_at_the_gateway);
async fn scope_escalation_is_refused_at_issue_and_at_the_gateway(stack: Stack) {
    let Scene {
        env,
        provider,
        alice,
        agent,
        ..
    } = scene(stack, &[]).await;
    let (token, _) = env.read_token(&agent, &alice).await;
    // Scope escalation: at issue, and a token's scopes at the gateway.
    let r = env
        .issue(
            &agent,
            json!({ "connection_id": alice, "scopes": ["read", "admin"] }),
        )
        .await;
    r.expect(StatusCode::FORBIDDEN, "scope-escalation");
    assert_eq!(r.body["missing_scopes"], json!(["admin"]));
    env.denial("scope_escalation", "/v1/tokens").await;
    let api_before = provider.counters().api_requests;
    let r = env
        .execute(
            &token,
            json!({ "tool": "custom.require_write", "arguments": {} }),
        )
        .await;
    r.expect(StatusCode::FORBIDDEN, "scope-escalation");
    assert_eq!(r.body["missing_scopes"], json!(["write"]));
    // With the API key, a tool needing a scope the connection was never granted.
    let r = env
        .execute(
            &agent,
            json!({ "tool": "custom.require_admin", "connection_id": alice }),
        )
        .await;
    r.expect(StatusCode::FORBIDDEN, "scope-escalation");
    assert_eq!(
        provider.counters().api_requests,
        api_before,
        "refused before any upstream call"
    );
    env.denial("scope_escalation", "/v1/tools/execute").await;
    env.assert_no_token_shown(&provider, vec![token]).await;
}

on_both_stacks!(malformed_token_requests_are_refused_and_issue_nothing);
async fn malformed_token_requests_are_refused_and_issue_nothing(stack: Stack) {
    let Scene {
        env,
        provider,
        alice,
        agent,
        ..
    } = scene(stack, &[]).await;
    // Malformed requests for a token are 422 and issue nothing.
    for (case, body) in [
        (
            "ttl 0",
            json!({ "connection_id": alice, "scopes": ["read"], "ttl_seconds": 0 }),
        ),
        (
            "ttl past the maximum",
            json!({ "connection_id": alice, "scopes": ["read"], "ttl_seconds": 901 }),
        ),
        (
            "max_uses 0",
            json!({ "connection_id": alice, "scopes": ["read"], "max_uses": 0 }),
        ),
        ("neither scopes nor tool", json!({ "connection_id": alice })),
        (
            "scopes short of the tool's",
            json!({ "connection_id": alice, "scopes": ["read"], "tool": "custom.require_write" }),
        ),
        (
            "user without auth config",
            json!({ "user_id": "alice", "scopes": ["read"] }),
        ),
        (
            "unknown field",
            json!({ "connection_id": alice, "scopes": ["read"], "admin": true }),
        ),
    ] {
        let r = env.issue(&agent, body).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{case}: {}",
            r.text
        );
    }
    env.assert_no_token_shown(&provider, Vec::new()).await;
}

on_both_stacks!(another_workspaces_or_users_connection_is_refused_and_audited);
async fn another_workspaces_or_users_connection_is_refused_and_audited(stack: Stack) {
    let Scene {
        env,
        provider,
        ac,
        alice,
        agent,
        ..
    } = scene(stack, &[]).await;
    // Another workspace's connection answers like an unknown id, and is audited.
    let other_admin = env.other_workspace("Other").await;
    let other_config = {
        let r = env
            .post(
                &other_admin,
                "/v1/auth-configs",
                json!({ "name": "Theirs", "provider": "custom", "auth_type": "api_key",
                        "api_key": { "key_name": "X-Api-Key", "location": "header", "prefix": null } }),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        r.str("id")
    };
    let r = env
        .post(
            &other_admin,
            "/v1/connections",
            json!({ "auth_config_id": other_config, "user_id": "alice", "credentials": { "api_key": "their-key-0001" } }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let theirs = r.str("id");
    let unknown = uuid::Uuid::now_v7().to_string();
    let r_theirs = env
        .execute(
            &agent,
            json!({ "tool": "custom.me", "connection_id": theirs }),
        )
        .await;
    let r_unknown = env
        .execute(
            &agent,
            json!({ "tool": "custom.me", "connection_id": unknown }),
        )
        .await;
    r_theirs.expect(StatusCode::NOT_FOUND, "not-found");
    assert_eq!(
        r_theirs.body, r_unknown.body,
        "indistinguishable from an unknown id"
    );
    let d = env.denial("other_workspace", "/v1/tools/execute").await;
    assert_eq!(d["payload"]["target_id"], theirs.as_str());
    let r = env
        .issue(
            &agent,
            json!({ "connection_id": theirs, "scopes": ["read"] }),
        )
        .await;
    r.expect(StatusCode::NOT_FOUND, "not-found");
    env.denial("other_workspace", "/v1/tokens").await;

    // Another user's connection.
    let r = env
        .execute(
            &agent,
            json!({ "tool": "custom.me", "connection_id": alice, "user_id": "bob", "auth_config_id": ac }),
        )
        .await;
    r.expect(StatusCode::FORBIDDEN, "other-user");
    env.denial("other_user", "/v1/tools/execute").await;
    env.assert_no_token_shown(&provider, Vec::new()).await;
}

on_both_stacks!(a_token_serves_only_its_own_connection_and_tool);
async fn a_token_serves_only_its_own_connection_and_tool(stack: Stack) {
    let Scene {
        env,
        provider,
        ac,
        alice,
        agent,
        ..
    } = scene(stack, &[]).await;
    let (token, _) = env.read_token(&agent, &alice).await;
    let mut scoped_tokens = vec![token.clone()];
    // A token presented for another connection than its own.
    let bob = env.connect(&provider, &ac, "bob").await;
    let r = env
        .execute(&token, json!({ "tool": "custom.me", "connection_id": bob }))
        .await;
    r.expect(StatusCode::FORBIDDEN, "token-mismatch");

    // A token bound to one tool, used for another.
    let r = env
        .issue(
            &agent,
            json!({ "connection_id": alice, "tool": "custom.me", "scopes": ["read", "write"] }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let bound = r.str("token");
    scoped_tokens.push(bound.clone());
    let claims = verify_offline(&env, &bound).await.expect("verifies");
    assert_eq!(claims["tool"], "custom.me");
    let r = env
        .execute(&bound, json!({ "tool": "custom.require_write" }))
        .await;
    r.expect(StatusCode::FORBIDDEN, "token-mismatch");
    env.denial("token_mismatch", "/v1/tools/execute").await;
    let r = env.execute(&bound, json!({ "tool": "custom.me" })).await;
    assert_eq!(
        (r.status, &r.body["status"]),
        (StatusCode::OK, &json!(200)),
        "{}",
        r.text
    );
    env.assert_no_token_shown(&provider, scoped_tokens).await;
}

on_both_stacks!(revoked_and_used_up_tokens_are_refused_and_max_uses_holds_under_concurrency);
async fn revoked_and_used_up_tokens_are_refused_and_max_uses_holds_under_concurrency(stack: Stack) {
    let Scene {
        env,
        provider,
        alice,
        agent,
        ..
    } = scene(stack, &[]).await;
    let mut scoped_tokens = Vec::new();
    // Revoked.
    let r = env
        .issue(
            &agent,
            json!({ "connection_id": alice, "scopes": ["read"] }),
        )
        .await;
    let revoked = r.str("token");
    let revoked_id = r.str("id");
    scoped_tokens.push(revoked.clone());
    let r = env
        .post(
            &agent,
            &format!("/v1/tokens/{revoked_id}/revoke"),
            json!({ "reason": "done" }),
        )
        .await;
    assert_eq!(
        (r.status, r.body["status"].as_str()),
        (StatusCode::OK, Some("revoked")),
        "{}",
        r.text
    );
    let r = env.execute(&revoked, json!({ "tool": "custom.me" })).await;
    r.expect(StatusCode::UNAUTHORIZED, "token-revoked");
    env.denial("revoked_token", "/v1/tools/execute").await;

    // Used up: max_uses 1.
    let r = env
        .issue(
            &agent,
            json!({ "connection_id": alice, "scopes": ["read"], "max_uses": 1 }),
        )
        .await;
    let once = r.str("token");
    scoped_tokens.push(once.clone());
    assert_eq!(
        verify_offline(&env, &once).await.expect("verifies")["max_uses"],
        1
    );
    let r = env.execute(&once, json!({ "tool": "custom.me" })).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = env.execute(&once, json!({ "tool": "custom.me" })).await;
    r.expect(StatusCode::FORBIDDEN, "token-used-up");
    env.denial("token_used_up", "/v1/tools/execute").await;

    // max_uses holds exactly under concurrent use: 8 calls, 3 uses.
    let r = env
        .issue(
            &agent,
            json!({ "connection_id": alice, "scopes": ["read"], "max_uses": 3 }),
        )
        .await;
    let three = r.str("token");
    let three_id = r.str("id");
    scoped_tokens.push(three.clone());
    let api_before = provider.counters().api_requests;
    let replies = futures::future::join_all(
        (0..8).map(|_| env.execute(&three, json!({ "tool": "custom.me" }))),
    )
    .await;
    let ok = replies
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .count();
    let used_up = replies
        .iter()
        .filter(|r| r.status == StatusCode::FORBIDDEN && r.problem() == "token-used-up")
        .count();
    assert_eq!(
        (ok, used_up),
        (3, 5),
        "{:?}",
        replies.iter().map(|r| &r.text).collect::<Vec<_>>()
    );
    assert_eq!(provider.counters().api_requests, api_before + 3);
    let r = env.get(&agent, &format!("/v1/tokens/{three_id}")).await;
    assert_eq!(
        (r.body["status"].as_str(), r.body["uses"].as_u64()),
        (Some("used_up"), Some(3))
    );
    env.assert_no_token_shown(&provider, scoped_tokens).await;
}

on_both_stacks!(a_revoked_connection_or_a_disabled_auth_config_stops_every_call);
async fn a_revoked_connection_or_a_disabled_auth_config_stops_every_call(stack: Stack) {
    let Scene {
        env,
        provider,
        ac,
        alice,
        agent,
        ..
    } = scene(stack, &[]).await;
    env.let_agents_connect_anyone().await;
    let (token, _) = env.read_token(&agent, &alice).await;
    let mut scoped_tokens = vec![token.clone()];
    // Inactive connection: revoked → the user must connect again.
    let dave = env.connect(&provider, &ac, "dave").await;
    let r = env
        .issue(&agent, json!({ "connection_id": dave, "scopes": ["read"] }))
        .await;
    let daves = r.str("token");
    scoped_tokens.push(daves.clone());
    let r = env
        .post(
            &env.admin,
            &format!("/v1/connections/{dave}/revoke"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    for bearer in [&daves, &agent] {
        let r = env
            .execute(
                bearer,
                json!({ "tool": "custom.me", "connection_id": dave }),
            )
            .await;
        r.expect(StatusCode::CONFLICT, "connection-required");
        assert_eq!(r.body["user_id"], "dave");
        assert!(
            r.str("connect_url")
                .starts_with(&provider.authorization_url()),
            "{}",
            r.text
        );
    }

    // Disabled auth config: nothing runs on it, by token, id or user.
    let r = env
        .post(
            &env.admin,
            &format!("/v1/auth-configs/{ac}/disable"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let api_before = provider.counters().api_requests;
    for (bearer, body) in [
        (&token, json!({ "tool": "custom.me" })),
        (
            &agent,
            json!({ "tool": "custom.me", "connection_id": alice }),
        ),
        (
            &agent,
            json!({ "tool": "custom.me", "user_id": "alice", "auth_config_id": ac }),
        ),
    ] {
        let r = env.execute(bearer, body).await;
        r.expect(StatusCode::CONFLICT, "auth-config-disabled");
    }
    let r = env
        .issue(
            &agent,
            json!({ "connection_id": alice, "scopes": ["read"] }),
        )
        .await;
    r.expect(StatusCode::CONFLICT, "auth-config-disabled");
    assert_eq!(provider.counters().api_requests, api_before);
    let r = env
        .post(
            &env.admin,
            &format!("/v1/auth-configs/{ac}/enable"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = env.execute(&token, json!({ "tool": "custom.me" })).await;
    assert_eq!(
        (r.status, &r.body["status"]),
        (StatusCode::OK, &json!(200)),
        "{}",
        r.text
    );
    env.assert_no_token_shown(&provider, scoped_tokens).await;
}

on_both_stacks!(forged_tokens_and_tokens_on_key_only_routes_are_refused);
async fn forged_tokens_and_tokens_on_key_only_routes_are_refused(stack: Stack) {
    let Scene {
        env,
        provider,
        alice,
        agent,
        base,
        ..
    } = scene(stack, &[]).await;
    let (token, token_id) = env.read_token(&agent, &alice).await;
    // Forged tokens: a changed claim, a changed signature, another key under our kid.
    let parts: Vec<&str> = token.split('.').collect();
    let mut claims = verify_offline(&env, &token).await.expect("verifies");
    claims["scope"] = json!("read write admin");
    let forged_claims = format!(
        "{}.{}.{}",
        parts[0],
        B64URL.encode(serde_json::to_vec(&claims).expect("json")),
        parts[2]
    );
    let mut sig: Vec<char> = parts[2].chars().collect();
    sig[10] = if sig[10] == 'A' { 'B' } else { 'A' };
    let forged_sig = format!(
        "{}.{}.{}",
        parts[0],
        parts[1],
        sig.iter().collect::<String>()
    );
    let rogue = {
        use ed25519_dalek::pkcs8::EncodePrivateKey as _;
        let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
        let der = key.to_pkcs8_der().expect("der");
        let mut header = jsonwebtoken::Header::new(Algorithm::EdDSA);
        header.typ = Some("at+jwt".into());
        header.kid = jsonwebtoken::decode_header(&token).expect("header").kid;
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ed_der(der.as_bytes()))
            .expect("encode")
    };
    let api_before = provider.counters().api_requests;
    for forged in [&forged_claims, &forged_sig, &rogue] {
        assert!(
            verify_offline(&env, forged).await.is_err(),
            "offline refuses it too"
        );
        let r = env
            .execute(forged, json!({ "tool": "custom.require_admin" }))
            .await;
        r.expect(StatusCode::UNAUTHORIZED, "unauthorized");
        let r = env.get(forged, "/v1/tools").await;
        r.expect(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    assert_eq!(provider.counters().api_requests, api_before);

    // A token is not an API key: routes that take only keys refuse it.
    for (method, path, body) in [
        (
            Method::POST,
            "/v1/tokens".to_string(),
            Some(json!({ "connection_id": alice, "scopes": ["read"] })),
        ),
        (Method::GET, format!("/v1/tokens/{token_id}"), None),
        (
            Method::POST,
            format!("/v1/tokens/{token_id}/revoke"),
            Some(json!({})),
        ),
        (
            Method::POST,
            "/v1/tools".to_string(),
            Some(tool("custom.x", &base, "GET", "/api/me", &[], "read")),
        ),
        (Method::GET, format!("/v1/connections/{alice}"), None),
        (Method::GET, "/v1/workspace".to_string(), None),
    ] {
        let r = env.call(&token, method.clone(), &path, body).await;
        assert_eq!(
            r.status,
            StatusCode::UNAUTHORIZED,
            "{method} {path}: {}",
            r.text
        );
    }
    // The token still works where tokens are taken (nothing above revoked it).
    let r = env.get(&agent, &format!("/v1/tokens/{token_id}")).await;
    assert_eq!(r.body["status"], "active", "{}", r.text);
    env.assert_no_token_shown(&provider, vec![token]).await;
}

// A token ends at its expiry (the service's clock, moved by the test) and with its agent's
// API key.
on_both_stacks!(a_token_ends_at_its_expiry_and_with_its_agents_key);
async fn a_token_ends_at_its_expiry_and_with_its_agents_key(stack: Stack) {
    let clock = TestClock::new();
    let Scene {
        env,
        provider,
        alice,
        agent_id,
        agent,
        ..
    } = scene(stack, &[clock.env()]).await;
    let (token, _) = env.read_token(&agent, &alice).await;
    // Expired: a one-minute token, once the service's time is past its exp.
    let r = env
        .issue(
            &agent,
            json!({ "connection_id": alice, "scopes": ["read"], "ttl_seconds": 60 }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let short_lived = r.str("token");
    let r = env
        .execute(&short_lived, json!({ "tool": "custom.me" }))
        .await;
    assert_eq!(r.status, StatusCode::OK, "alive before its exp: {}", r.text);
    clock.advance(Duration::from_secs(61));
    let r = env
        .execute(&short_lived, json!({ "tool": "custom.me" }))
        .await;
    r.expect(StatusCode::UNAUTHORIZED, "unauthorized");
    let r = env.get(&short_lived, "/v1/tools").await;
    r.expect(StatusCode::UNAUTHORIZED, "unauthorized");

    // Revoking the agent's API key ends the tokens issued to it.
    let r = env
        .call(
            &env.admin,
            Method::DELETE,
            &format!("/v1/api-keys/{agent_id}"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let r = env.execute(&token, json!({ "tool": "custom.me" })).await;
    r.expect(StatusCode::UNAUTHORIZED, "unauthorized");
    env.assert_no_token_shown(&provider, vec![token, short_lived])
        .await;
}

// ---------------------------------------------------------------------------------------------
// 4. Refresh before the call: one refresh grant for 50 concurrent calls
// ---------------------------------------------------------------------------------------------

async fn refresh_before_use(backend: Stack) {
    let env = deploy(backend, &[]).await;
    let provider = provider_for(&env).await;
    let ac = env.oauth_config(&provider).await;
    // The connect flow's access token lives one second: inside the refresh buffer at once;
    // the provider ends it before the calls come.
    provider.set_access_token_ttl(Duration::from_secs(1));
    let alice = env.connect(&provider, &ac, "alice").await;
    provider.set_access_token_ttl(Duration::from_secs(3600));
    let (_, agent) = env.key("agent").await;
    let r = env
        .define(
            &env.admin,
            tool(
                "custom.me",
                provider.base_url(),
                "GET",
                "/api/me",
                &["read"],
                "read",
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = env
        .issue(
            &agent,
            json!({ "connection_id": alice, "scopes": ["read"] }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let token = r.str("token");
    // Dead at the provider now, rather than a second from now.
    provider.expire_access_tokens();
    let before = provider.counters();
    assert_eq!((before.refresh_requests, before.api_requests), (0, 0));

    let replies = futures::future::join_all((0..50).map(|i| {
        // Half with the agent's key, half with its scoped token.
        if i % 2 == 0 {
            env.execute(
                &agent,
                json!({ "tool": "custom.me", "connection_id": alice }),
            )
        } else {
            env.execute(&token, json!({ "tool": "custom.me" }))
        }
    }))
    .await;
    for r in &replies {
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(
            r.body["status"], 200,
            "the upstream accepted the credential: {}",
            r.text
        );
    }
    let after = provider.counters();
    let rounds: Vec<String> = env
        .audit("kind=connection.")
        .await
        .iter()
        .filter(|e| e["connection_id"] == alice.as_str())
        .map(|e| format!("{} {} {}", e["position"], e["kind"], e["occurred_at"]))
        .collect();
    assert_eq!(
        after.refresh_requests, 1,
        "exactly one refresh grant: {after:?}, {rounds:#?}"
    );
    assert_eq!(after.refreshes, 1);
    assert_eq!(after.api_requests, 50);
    // Every call carried the one refreshed access token, which the provider accepted.
    let seen = bearer_tokens_seen(&provider);
    assert_eq!(seen.len(), 50);
    assert!(
        seen.iter().all(|(t, s)| *t == seen[0].0 && *s == 200),
        "{seen:?}"
    );
    assert!(provider.is_active(&seen[0].0));
    let refresh = provider
        .requests_to(Endpoint::Token)
        .into_iter()
        .filter(|r| r.grant_type() == Some("refresh_token"))
        .collect::<Vec<_>>();
    assert_eq!(refresh.len(), 1);
    // The connection now expires an hour out; the refresh was triggered before use.
    let r = env
        .get(&env.admin, &format!("/v1/connections/{alice}"))
        .await;
    let expires = unix_of(&r.str("expires_at"));
    assert!(
        expires > time::OffsetDateTime::now_utc().unix_timestamp() + 3000,
        "{}",
        r.text
    );
    let started = env
        .audit_until("kind=connection.", "the refresh events", |items| {
            items.iter().any(|e| e["kind"] == "connection.refreshed")
        })
        .await;
    let kinds: Vec<&str> = started
        .iter()
        .filter(|e| e["connection_id"] == alice.as_str())
        .filter_map(|e| e["kind"].as_str())
        .filter(|k| k.contains("refresh"))
        .collect();
    assert_eq!(
        kinds,
        ["connection.refresh_started", "connection.refreshed"],
        "{started:#?}"
    );
    let refresh_started = started
        .iter()
        .find(|e| e["kind"] == "connection.refresh_started")
        .expect("refresh_started");
    let e = env
        .event_body(
            &env.admin,
            refresh_started["event_id"].as_str().expect("id"),
        )
        .await;
    assert_eq!(
        e.body["body"]["payload"]["trigger"], "before_use",
        "{}",
        e.text
    );
    // Later calls use the fresh token as it is.
    let r = env.execute(&token, json!({ "tool": "custom.me" })).await;
    assert_eq!(r.body["status"], 200, "{}", r.text);
    assert_eq!(provider.counters().refresh_requests, 1);
    let mut secrets = vec![token];
    secrets.extend(seen.into_iter().map(|(t, _)| t));
    env.assert_never_shown(&secrets).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_before_use_is_single_flight_embedded() {
    refresh_before_use(Stack::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_before_use_is_single_flight_on_jetstream_and_postgres() {
    refresh_before_use(Stack::JetStreamPg).await;
}

// ---------------------------------------------------------------------------------------------
// 5. Step-up approvals
// ---------------------------------------------------------------------------------------------

async fn step_up(backend: Stack) {
    let env = deploy(backend, &[]).await;
    // The workspace's identity provider: end users present its JWTs (EdDSA).
    let idp = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    let jwk = json!({ "kty": "OKP", "kid": "idp-1", "crv": "Ed25519", "alg": "EdDSA",
        "x": B64URL.encode(idp.verifying_key().as_bytes()) });
    let jwks_url = end_user::serve_jwks(json!({ "keys": [jwk] })).await;
    let r = env
        .call(
            &env.admin,
            Method::PUT,
            "/v1/workspace/identity-provider",
            Some(json!({ "issuer": end_user::ISSUER, "audience": end_user::AUDIENCE, "jwks_url": jwks_url })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let idp_key = {
        use ed25519_dalek::pkcs8::EncodePrivateKey as _;
        EncodingKey::from_ed_der(idp.to_pkcs8_der().expect("der").as_bytes())
    };
    let jwt = |user: &str| {
        end_user::token(
            Algorithm::EdDSA,
            "idp-1",
            &idp_key,
            &end_user::claims(user, end_user::ISSUER, end_user::AUDIENCE, 300),
        )
    };
    let as_user = |user: &str, path: String| {
        env.send(
            env.http
                .post(env.svc.url(&path))
                .bearer_auth(jwt(user))
                .header("Authledger-Workspace", env.workspace.as_str()),
        )
    };

    let provider = provider_for(&env).await;
    let ac = env.oauth_config(&provider).await;
    let alice = env.connect(&provider, &ac, "alice").await;
    let upstream = recording_upstream(None).await;
    let mut def = tool(
        "custom.delete_item",
        &upstream.base_url,
        "DELETE",
        "/items/{id}",
        &["write"],
        "destructive",
    );
    def["parameters"] = json!({ "type": "object", "additionalProperties": false, "required": ["id"],
        "properties": { "id": { "type": "string" } } });
    let r = env.define(&env.admin, def).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let (_, agent) = env.key("agent").await;
    let call = |id: &str, approval: Option<&str>| {
        let mut body = json!({ "tool": "custom.delete_item", "connection_id": alice, "arguments": { "id": id } });
        if let Some(a) = approval {
            body["approval_id"] = json!(a);
        }
        body
    };

    // The first call asks for approval and runs nothing.
    let r = env.execute(&agent, call("42", None)).await;
    r.expect(StatusCode::FORBIDDEN, "approval-required");
    let approval = r.str("approval_id");
    assert!(r.body["approval_expires_at"].is_string(), "{}", r.text);
    let r = env.get(&agent, &format!("/v1/approvals/{approval}")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        (
            r.body["status"].as_str(),
            r.body["user_id"].as_str(),
            r.body["tool"].as_str()
        ),
        (Some("pending"), Some("alice"), Some("custom.delete_item"))
    );
    // Pending is not approved.
    let r = env.execute(&agent, call("42", Some(&approval))).await;
    r.expect(StatusCode::FORBIDDEN, "approval-pending");
    // The user finds it among their own pending approvals; another user does not.
    let mine = |user: &str| {
        env.send(
            env.http
                .get(env.svc.url("/v1/me/approvals"))
                .bearer_auth(jwt(user))
                .header("Authledger-Workspace", env.workspace.as_str()),
        )
    };
    let r = mine("alice").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let listed = r.body["items"].as_array().expect("items").clone();
    assert!(
        listed.iter().any(|a| a["id"] == approval.as_str()
            && a["status"] == "pending"
            && a["tool"] == "custom.delete_item"),
        "{}",
        r.text
    );
    let r = mine("bob").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(!r.text.contains(approval.as_str()), "{}", r.text);

    // Who may not decide: another end user (answered like an unknown approval, audited),
    // the agent's key, and a scoped token (not an end-user JWT).
    let r = as_user("bob", format!("/v1/approvals/{approval}/approve")).await;
    r.expect(StatusCode::NOT_FOUND, "not-found");
    let unknown = as_user(
        "bob",
        format!("/v1/approvals/{}/approve", uuid::Uuid::now_v7()),
    )
    .await;
    assert_eq!(
        r.body, unknown.body,
        "indistinguishable from an unknown approval"
    );
    env.denial("other_user", "/v1/approvals/{id}/approve").await;
    let r = env
        .post(
            &agent,
            &format!("/v1/approvals/{approval}/approve"),
            json!({}),
        )
        .await;
    r.expect(StatusCode::FORBIDDEN, "forbidden");
    let r = env
        .issue(
            &agent,
            json!({ "connection_id": alice, "scopes": ["write"] }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let scoped = r.str("token");
    let r = env
        .post(
            &scoped,
            &format!("/v1/approvals/{approval}/approve"),
            json!({}),
        )
        .await;
    r.expect(StatusCode::UNAUTHORIZED, "unauthorized");
    assert!(upstream.hits().is_empty());

    // The connection's user approves (once).
    let r = as_user("alice", format!("/v1/approvals/{approval}/approve")).await;
    assert_eq!(
        (r.status, r.body["status"].as_str()),
        (StatusCode::OK, Some("approved")),
        "{}",
        r.text
    );
    let r = as_user("alice", format!("/v1/approvals/{approval}/approve")).await;
    r.expect(StatusCode::CONFLICT, "approval-decided");

    // For other arguments the approval does not count.
    let r = env.execute(&agent, call("43", Some(&approval))).await;
    r.expect(StatusCode::FORBIDDEN, "approval-mismatch");
    assert!(upstream.hits().is_empty());

    // The retry runs exactly once, even when sent four times at once.
    let replies =
        futures::future::join_all((0..4).map(|_| env.execute(&agent, call("42", Some(&approval)))))
            .await;
    let ran: Vec<&Reply> = replies
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .collect();
    assert_eq!(
        ran.len(),
        1,
        "{:?}",
        replies.iter().map(|r| &r.text).collect::<Vec<_>>()
    );
    for r in replies.iter().filter(|r| r.status != StatusCode::OK) {
        r.expect(StatusCode::CONFLICT, "approval-consumed");
    }
    assert_eq!(ran[0].body["status"], 200, "{}", ran[0].text);
    let call_id = ran[0].str("tool_call_id");
    let hits = upstream.hits();
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!(
        (hits[0].method.as_str(), hits[0].path.as_str()),
        ("DELETE", "/items/42")
    );
    let auth = hits[0].header("authorization");
    assert_eq!(auth.len(), 1);
    let access_token = auth[0].strip_prefix("Bearer ").expect("bearer").to_string();
    assert!(
        provider.is_active(&access_token),
        "the connection's own access token"
    );
    assert!(!ran[0].text.contains(&access_token));
    // Again, later: consumed.
    let r = env.execute(&agent, call("42", Some(&approval))).await;
    r.expect(StatusCode::CONFLICT, "approval-consumed");
    assert_eq!(upstream.hits().len(), 1);
    let r = env.get(&agent, &format!("/v1/approvals/{approval}")).await;
    assert_eq!(
        (r.body["status"].as_str(), r.body["tool_call_id"].as_str()),
        (Some("consumed"), Some(call_id.as_str())),
        "{}",
        r.text
    );

    // With a scoped token: the approval request costs no use; the approved retry uses it.
    let r = env
        .issue(
            &agent,
            json!({ "connection_id": alice, "tool": "custom.delete_item", "max_uses": 1 }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let (once, once_id) = (r.str("token"), r.str("id"));
    let by_token = json!({ "tool": "custom.delete_item", "arguments": { "id": "99" } });
    let r = env.execute(&once, by_token.clone()).await;
    r.expect(StatusCode::FORBIDDEN, "approval-required");
    let token_approval = r.str("approval_id");
    let r = env.get(&agent, &format!("/v1/tokens/{once_id}")).await;
    assert_eq!(r.body["uses"], 0, "{}", r.text);
    let r = as_user("alice", format!("/v1/approvals/{token_approval}/approve")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let mut with_approval = by_token.clone();
    with_approval["approval_id"] = json!(token_approval);
    let r = env.execute(&once, with_approval).await;
    assert_eq!(
        (r.status, &r.body["status"]),
        (StatusCode::OK, &json!(200)),
        "{}",
        r.text
    );
    assert_eq!(upstream.hits_to("/items/99").len(), 1);
    let r = env.get(&agent, &format!("/v1/tokens/{once_id}")).await;
    assert_eq!(
        (r.body["uses"].as_u64(), r.body["status"].as_str()),
        (Some(1), Some("used_up"))
    );
    // A token that can no longer be used (used up, revoked) cannot raise approval requests.
    let r = env
        .issue(
            &agent,
            json!({ "connection_id": alice, "scopes": ["write"] }),
        )
        .await;
    let (revoked, revoked_id) = (r.str("token"), r.str("id"));
    let r = env
        .post(
            &agent,
            &format!("/v1/tokens/{revoked_id}/revoke"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let requests_before = env.audit("kind=approval.requested").await.len();
    let r = env.execute(&once, by_token.clone()).await;
    r.expect(StatusCode::FORBIDDEN, "token-used-up");
    let r = env.execute(&revoked, by_token.clone()).await;
    r.expect(StatusCode::UNAUTHORIZED, "token-revoked");
    assert_eq!(
        env.audit("kind=approval.requested").await.len(),
        requests_before,
        "no approval was requested for a dead token"
    );
    let hits_so_far = upstream.hits().len();

    // A denied approval never runs.
    let r = env.execute(&agent, call("7", None)).await;
    r.expect(StatusCode::FORBIDDEN, "approval-required");
    let denied = r.str("approval_id");
    let r = as_user("alice", format!("/v1/approvals/{denied}/deny")).await;
    assert_eq!(
        (r.status, r.body["status"].as_str()),
        (StatusCode::OK, Some("denied")),
        "{}",
        r.text
    );
    let r = env.execute(&agent, call("7", Some(&denied))).await;
    r.expect(StatusCode::FORBIDDEN, "approval-denied");
    assert_eq!(
        upstream.hits().len(),
        hits_so_far,
        "a denied approval runs nothing"
    );
    // An admin key decides too (a third approval, denied by the admin).
    let r = env.execute(&agent, call("8", None)).await;
    let third = r.str("approval_id");
    let r = env
        .post(
            &env.admin,
            &format!("/v1/approvals/{third}/deny"),
            json!({ "note": "no" }),
        )
        .await;
    assert_eq!(
        (r.status, r.body["status"].as_str()),
        (StatusCode::OK, Some("denied")),
        "{}",
        r.text
    );

    // The audit log tells the story.
    let events = env.events_of("approval.", &approval, 3).await;
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["kind"].as_str()).collect();
    assert_eq!(
        kinds,
        [
            "approval.requested",
            "approval.approved",
            "approval.consumed"
        ]
    );
    assert_eq!(events[1]["actor"]["id"], "alice");
    assert_eq!(events[1]["actor"]["type"], "user");
    let events = env.events_of("approval.", &denied, 2).await;
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["kind"].as_str()).collect();
    assert_eq!(kinds, ["approval.requested", "approval.denied"]);
    let tool_events = env.events_of("tool.", &call_id, 2).await;
    let e = env
        .event_body(&env.admin, tool_events[0]["event_id"].as_str().expect("id"))
        .await;
    assert_eq!(
        e.body["body"]["payload"]["approval_id"],
        approval.as_str(),
        "{}",
        e.text
    );
    env.assert_never_shown(&[access_token, scoped, once, revoked])
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destructive_tools_run_once_per_user_approval_embedded() {
    step_up(Stack::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destructive_tools_run_once_per_user_approval_on_jetstream_and_postgres() {
    step_up(Stack::JetStreamPg).await;
}

// ---------------------------------------------------------------------------------------------
// 6. Connect on demand
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_without_a_connection_is_sent_to_connect_and_the_retry_succeeds() {
    let env = deploy(Stack::Embedded, &[]).await;
    let provider = provider_for(&env).await;
    let ac = env.oauth_config(&provider).await;
    let r = env
        .define(
            &env.admin,
            tool(
                "custom.me",
                provider.base_url(),
                "GET",
                "/api/me",
                &["read"],
                "read",
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let (_, agent) = env.key("agent").await;
    let as_carol = json!({ "tool": "custom.me", "user_id": "carol", "auth_config_id": ac });
    // Off by default: an agent key may not start a connect flow for an arbitrary user.
    let r = env.execute(&agent, as_carol.clone()).await;
    r.expect(StatusCode::FORBIDDEN, "connect-not-allowed");
    env.let_agents_connect_anyone().await;

    let r = env.execute(&agent, as_carol.clone()).await;
    r.expect(StatusCode::CONFLICT, "connection-required");
    assert_eq!(
        (
            r.body["user_id"].as_str(),
            r.body["auth_config_id"].as_str()
        ),
        (Some("carol"), Some(ac.as_str()))
    );
    let connect_url = r.str("connect_url");
    assert!(
        connect_url.starts_with(&format!("{}?", provider.authorization_url())),
        "{connect_url}"
    );
    assert_eq!(provider.counters().api_requests, 0);
    // A token for carol is refused the same way.
    let r = env
        .issue(
            &agent,
            json!({ "user_id": "carol", "auth_config_id": ac, "scopes": ["read"] }),
        )
        .await;
    r.expect(StatusCode::CONFLICT, "connection-required");

    // A credential-based auth config: the link is authledger's hosted connect page.
    let keyed = env
        .credential_config(
            "api_key",
            json!({ "key_name": "X-Api-Key", "location": "header", "prefix": null }),
        )
        .await;
    let r = env
        .execute(
            &agent,
            json!({ "tool": "custom.me", "user_id": "carol", "auth_config_id": keyed }),
        )
        .await;
    r.expect(StatusCode::CONFLICT, "connection-required");
    assert!(
        r.str("connect_url").starts_with(&env.svc.url("/connect/")),
        "{}",
        r.text
    );

    // Carol follows the link; then the same call goes through.
    let carol = env.finish_connect(&provider, &connect_url).await;
    let r = env
        .get(&env.admin, &format!("/v1/connections/{carol}"))
        .await;
    assert_eq!(
        (r.body["status"].as_str(), r.body["user_id"].as_str()),
        (Some("active"), Some("carol"))
    );
    let r = env.execute(&agent, as_carol).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["status"], 200, "{}", r.text);
    let r = env
        .issue(
            &agent,
            json!({ "user_id": "carol", "auth_config_id": ac, "scopes": ["read"] }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["connection_id"], carol.as_str());
    let token = r.str("token");
    let r = env.execute(&token, json!({ "tool": "custom.me" })).await;
    assert_eq!(r.body["status"], 200, "{}", r.text);
}

// ---------------------------------------------------------------------------------------------
// 7. Upstream behaviour and credential injection
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_errors_are_retried_only_when_idempotent_stalls_time_out_and_redirects_stop() {
    let env = deploy(
        Stack::Embedded,
        &[
            ("AUTHLEDGER_UPSTREAM_TIMEOUT_SECS", "1"),
            ("AUTHLEDGER_UPSTREAM_RETRIES", "2"),
        ],
    )
    .await;
    // Where a redirect points: it must never be called (it would get the credential).
    let elsewhere = recording_upstream(None).await;
    let upstream = recording_upstream(Some(format!("{}/steal", elsewhere.base_url))).await;
    let key = "upstream-key-SECRET-3f9a1c";
    let config = env
        .credential_config(
            "api_key",
            json!({ "key_name": "X-Api-Key", "location": "header", "prefix": null }),
        )
        .await;
    let conn = env
        .credential_connection(&config, "alice", json!({ "api_key": key }))
        .await;
    let base = upstream.base_url.clone();
    for def in [
        tool("custom.get_fail", &base, "GET", "/fail", &[], "read"),
        tool("custom.post_fail", &base, "POST", "/fail", &[], "write"),
        tool("custom.slow", &base, "POST", "/slow", &[], "write"),
        tool("custom.redirect", &base, "GET", "/redirect", &[], "read"),
    ] {
        let r = env.define(&env.admin, def).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
    let (_, agent) = env.key("agent").await;
    let run = |tool: &str| env.execute(&agent, json!({ "tool": tool, "connection_id": conn }));

    // 500 on GET: three attempts (one + two retries), then the 500 is relayed.
    let r = run("custom.get_fail").await;
    assert_eq!(
        (r.status, &r.body["status"]),
        (StatusCode::OK, &json!(500)),
        "{}",
        r.text
    );
    assert_eq!(upstream.hits_to("/fail").len(), 3);
    let events = env.events_of("tool.", &r.str("tool_call_id"), 2).await;
    assert_eq!(events[1]["outcome"], "upstream_error");
    let e = env
        .event_body(&env.admin, events[1]["event_id"].as_str().expect("id"))
        .await;
    assert_eq!(e.body["body"]["payload"]["attempts"], 3, "{}", e.text);
    assert_eq!(e.body["body"]["payload"]["status"], 500);
    // 500 on POST: one attempt only.
    let r = run("custom.post_fail").await;
    assert_eq!(r.body["status"], 500, "{}", r.text);
    let fails = upstream.hits_to("/fail");
    assert_eq!(fails.len(), 4, "{fails:?}");
    assert_eq!(fails.iter().filter(|h| h.method == "POST").count(), 1);

    // A stalled upstream: 504 after the timeout, recorded as such.
    let started = Instant::now();
    let r = run("custom.slow").await;
    let took = started.elapsed();
    r.expect(StatusCode::GATEWAY_TIMEOUT, "upstream-timeout");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "{took:?}"
    );
    assert_eq!(upstream.hits_to("/slow").len(), 1, "a POST is not retried");
    let events = env.events_of("tool.", &r.str("tool_call_id"), 2).await;
    assert_eq!(events[1]["kind"], "tool.completed");
    assert_eq!(events[1]["outcome"], "timeout");

    // A redirect is relayed, never followed.
    let r = run("custom.redirect").await;
    assert_eq!(
        (r.status, &r.body["status"]),
        (StatusCode::OK, &json!(302)),
        "{}",
        r.text
    );
    assert_eq!(upstream.hits_to("/redirect").len(), 1);
    assert_eq!(upstream.hits_to("/redirect")[0].header("x-api-key"), [key]);
    assert!(
        elsewhere.hits().is_empty(),
        "the redirect target was called"
    );
    env.assert_never_shown(&[key.to_string()]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_are_injected_where_the_auth_config_says_and_arguments_cannot_override_them() {
    let env = deploy(Stack::Embedded, &[]).await;
    let upstream = recording_upstream(None).await;
    let base = upstream.base_url.clone();
    for def in [
        tool("custom.echo", &base, "GET", "/echo", &[], "read"),
        tool("custom.echo_post", &base, "POST", "/echo", &[], "write"),
    ] {
        let r = env.define(&env.admin, def).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
    let (_, agent) = env.key("agent").await;
    let header_key = "hdr-key-SECRET-77aa01";
    let query_key = "qry-key-SECRET-19bc02";
    let prefixed_key = "pfx-key-SECRET-55de03";
    let bearer = "brr-tok-SECRET-0f1e04";
    let header_conn = {
        let c = env
            .credential_config(
                "api_key",
                json!({ "key_name": "X-Api-Key", "location": "header", "prefix": null }),
            )
            .await;
        env.credential_connection(&c, "u1", json!({ "api_key": header_key }))
            .await
    };
    let query_conn = {
        let c = env
            .credential_config(
                "api_key",
                json!({ "key_name": "api_key", "location": "query", "prefix": null }),
            )
            .await;
        env.credential_connection(&c, "u1", json!({ "api_key": query_key }))
            .await
    };
    let prefixed_conn = {
        let c = env
            .credential_config(
                "api_key",
                json!({ "key_name": "Authorization", "location": "header", "prefix": "Token" }),
            )
            .await;
        env.credential_connection(&c, "u1", json!({ "api_key": prefixed_key }))
            .await
    };
    let bearer_conn = {
        let c = env.credential_config("bearer_token", json!({})).await;
        env.credential_connection(&c, "u1", json!({ "token": bearer }))
            .await
    };
    // What an agent tries: its own values under the credentials' names.
    let forged = json!({ "Authorization": "Bearer agent-forged", "authorization": "agent-forged",
        "X-Api-Key": "agent-forged", "api_key": "agent-forged", "q": "hello" });
    let last = || upstream.hits().last().cloned().expect("a hit");
    for tool_name in ["custom.echo", "custom.echo_post"] {
        let run = |conn: &String| {
            env.execute(
                &agent,
                json!({ "tool": tool_name, "connection_id": conn, "arguments": forged }),
            )
        };
        let r = run(&header_conn).await;
        assert_eq!(r.body["status"], 200, "{}", r.text);
        let h = last();
        assert_eq!(h.header("x-api-key"), [header_key], "{h:?}");
        assert!(h.header("authorization").is_empty(), "{h:?}");

        let r = run(&query_conn).await;
        assert_eq!(r.body["status"], 200, "{}", r.text);
        let h = last();
        assert_eq!(h.query("api_key"), [query_key], "{h:?}");
        assert!(
            h.header("x-api-key").is_empty() && h.header("authorization").is_empty(),
            "{h:?}"
        );

        let r = run(&prefixed_conn).await;
        assert_eq!(r.body["status"], 200, "{}", r.text);
        let h = last();
        assert_eq!(
            h.header("authorization"),
            [format!("Token {prefixed_key}")],
            "{h:?}"
        );

        let r = run(&bearer_conn).await;
        assert_eq!(r.body["status"], 200, "{}", r.text);
        let h = last();
        assert_eq!(
            h.header("authorization"),
            [format!("Bearer {bearer}")],
            "{h:?}"
        );
        // The agent's arguments arrive as arguments (query for GET, JSON body for POST).
        if tool_name == "custom.echo" {
            assert_eq!(h.query("q"), ["hello"], "{h:?}");
        } else {
            let sent: Value = serde_json::from_str(&h.body).expect("json body");
            assert_eq!(sent["q"], "hello", "{h:?}");
        }
    }
    let secrets: Vec<String> = [header_key, query_key, prefixed_key, bearer]
        .iter()
        .map(|s| s.to_string())
        .collect();
    // The audit view (tool.requested records the URL without its query) holds none either.
    let audit = env
        .audit_until("kind=tool.completed", "8 completed calls", |items| {
            items.len() == 8
        })
        .await;
    for e in &audit {
        let body = env
            .event_body(&env.admin, e["event_id"].as_str().expect("id"))
            .await;
        assert_eq!(body.status, StatusCode::OK);
    }
    let requested = env.audit("kind=tool.requested").await;
    for e in &requested {
        let body = env
            .event_body(&env.admin, e["event_id"].as_str().expect("id"))
            .await;
        let url = body.body["body"]["payload"]["url"]
            .as_str()
            .expect("url")
            .to_string();
        assert_eq!(url, format!("{base}/echo"), "no query string in the record");
    }
    env.assert_never_shown(&secrets).await;
}

// ---------------------------------------------------------------------------------------------
// 8. Workspace tools
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workspace_tools_are_defined_by_developers_and_listed_by_what_a_token_covers() {
    let env = deploy(Stack::Embedded, &[]).await;
    let provider = provider_for(&env).await;
    let ac = env.oauth_config(&provider).await;
    let alice = env.connect(&provider, &ac, "alice").await;
    let (_, developer) = env.key("developer").await;
    let (_, viewer) = env.key("viewer").await;
    let (_, agent) = env.key("agent").await;
    let base = provider.base_url().to_string();
    let read = tool(
        "custom.read_items",
        &base,
        "GET",
        "/api/require/read",
        &["read"],
        "read",
    );
    let write = tool(
        "custom.write_items",
        &base,
        "GET",
        "/api/require/write",
        &["write"],
        "write",
    );
    let both = tool(
        "custom.sync_items",
        &base,
        "GET",
        "/api/me",
        &["read", "write"],
        "write",
    );

    for def in [&read, &write, &both] {
        let r = env.define(&developer, def.clone()).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        assert_eq!(
            (r.body["source"].as_str(), r.body["version"].as_u64()),
            (Some("workspace"), Some(1))
        );
        assert_eq!(r.body["name"], def["name"]);
    }
    let names_of = |r: &Reply, source: &str| -> Vec<String> {
        r.body["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter(|t| t["source"] == source)
            .filter_map(|t| t["name"].as_str().map(str::to_string))
            .collect()
    };
    let r = env.get(&agent, "/v1/tools").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        names_of(&r, "workspace"),
        [
            "custom.read_items",
            "custom.sync_items",
            "custom.write_items"
        ]
    );
    let builtins = names_of(&r, "builtin");
    assert!(!builtins.is_empty(), "{}", r.text);
    let listed = r.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|t| t["name"] == "custom.read_items")
        .cloned()
        .expect("listed");
    assert_eq!(listed["base_url"], read["base_url"]);
    assert_eq!(listed["required_scopes"], json!(["read"]));

    // Who may define: developers and admins, not viewers or agents.
    let extra = tool("custom.extra", &base, "GET", "/api/me", &[], "read");
    for key in [&viewer, &agent] {
        let r = env.define(key, extra.clone()).await;
        r.expect(StatusCode::FORBIDDEN, "forbidden");
    }
    let r = env
        .call(&viewer, Method::DELETE, "/v1/tools/custom.read_items", None)
        .await;
    r.expect(StatusCode::FORBIDDEN, "forbidden");

    // Invalid definitions are 422 and define nothing.
    let with = |key: &str, value: Value| {
        let mut d = extra.clone();
        d[key] = value;
        d
    };
    let mut unknown_field = extra.clone();
    unknown_field["headerz"] = json!({});
    let invalid = [
        ("bad name", with("name", json!("Custom.Extra"))),
        (
            "plain http off loopback",
            with("base_url", json!("http://api.example.com")),
        ),
        (
            "base URL with a path",
            with("base_url", json!(format!("{base}/api"))),
        ),
        (
            "credential header",
            with("headers", json!({ "Authorization": "Bearer x" })),
        ),
        (
            "api key header",
            with("headers", json!({ "X-Api-Key": "x" })),
        ),
        ("path escapes", with("path", json!("/api/../admin"))),
        (
            "placeholder not a parameter",
            with("path", json!("/api/{nope}")),
        ),
        (
            "not an object schema",
            with("parameters", json!({ "type": "array" })),
        ),
        (
            "remote $ref",
            with(
                "parameters",
                json!({ "type": "object", "properties": { "x": { "$ref": "https://example.com/s.json" } } }),
            ),
        ),
        ("unknown risk", with("risk", json!("harmless"))),
        ("unknown field", unknown_field),
        ("a built-in name", with("name", json!(builtins[0].clone()))),
    ];
    for (case, def) in invalid {
        let r = env.define(&developer, def).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{case}: {}",
            r.text
        );
    }
    let r = env.get(&agent, "/v1/tools").await;
    assert_eq!(
        names_of(&r, "workspace").len(),
        3,
        "nothing more was defined"
    );
    assert!(!r.text.contains("custom.extra"));

    // A scoped token lists only what its scopes (and tool binding) cover, on its provider.
    let listed_for = |scopes: Value, bound: Option<&str>| {
        let env = &env;
        let agent = &agent;
        let alice = &alice;
        let bound = bound.map(str::to_string);
        async move {
            let mut body = json!({ "connection_id": alice, "scopes": scopes });
            if let Some(t) = bound {
                body["tool"] = json!(t);
            }
            let r = env.issue(agent, body).await;
            assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
            let r = env.get(&r.str("token"), "/v1/tools").await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
            let all: Vec<String> = r.body["items"]
                .as_array()
                .expect("items")
                .iter()
                .filter_map(|t| t["name"].as_str().map(str::to_string))
                .collect();
            all
        }
    };
    assert_eq!(
        listed_for(json!(["read"]), None).await,
        ["custom.read_items"]
    );
    assert_eq!(
        listed_for(json!(["write"]), None).await,
        ["custom.write_items"]
    );
    assert_eq!(
        listed_for(json!(["read", "write"]), None).await,
        [
            "custom.read_items",
            "custom.sync_items",
            "custom.write_items"
        ]
    );
    assert_eq!(
        listed_for(json!(["read", "write"]), Some("custom.sync_items")).await,
        ["custom.sync_items"]
    );

    // Redefine (a new revision), the same again (a conflict), remove.
    let mut changed = read.clone();
    changed["description"] = json!("Reads the items, second revision.");
    let r = env.define(&developer, changed.clone()).await;
    assert_eq!(
        (r.status, r.body["version"].as_u64()),
        (StatusCode::CREATED, Some(2)),
        "{}",
        r.text
    );
    let r = env.define(&developer, changed).await;
    r.expect(StatusCode::CONFLICT, "conflict");
    let r = env
        .execute(
            &agent,
            json!({ "tool": "custom.read_items", "connection_id": alice }),
        )
        .await;
    assert_eq!(r.body["status"], 200, "{}", r.text);
    let r = env
        .call(
            &developer,
            Method::DELETE,
            "/v1/tools/custom.read_items",
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let r = env.get(&agent, "/v1/tools").await;
    assert_eq!(
        names_of(&r, "workspace"),
        ["custom.sync_items", "custom.write_items"]
    );
    let r = env
        .execute(
            &agent,
            json!({ "tool": "custom.read_items", "connection_id": alice }),
        )
        .await;
    r.expect(StatusCode::NOT_FOUND, "not-found");
    let r = env
        .call(
            &developer,
            Method::DELETE,
            "/v1/tools/custom.read_items",
            None,
        )
        .await;
    r.expect(StatusCode::NOT_FOUND, "not-found");
    let defined = env
        .audit_until("kind=tool.", "tool definition events", |items| {
            items.len() >= 5
        })
        .await;
    let kinds: Vec<&str> = defined.iter().filter_map(|e| e["kind"].as_str()).collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "tool.defined").count(),
        4,
        "{kinds:?}"
    );
    assert_eq!(kinds.iter().filter(|k| **k == "tool.removed").count(), 1);
}

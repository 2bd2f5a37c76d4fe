//! Idempotent retries (issue 21): a POST with an `Idempotency-Key` runs once; a retry with
//! the same key and request gets the recorded answer (`Idempotent-Replayed: true`), on any
//! instance and after a restart; another request with the key is 422; a retry while the
//! first still runs is 409 with `Retry-After`; keys of another API key or workspace are
//! their own; bad keys are refused. The OpenAPI document names the header on exactly the
//! routes that take it.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::response::IntoResponse as _;
use reqwest::header::HeaderValue;
use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};

use authledger::api::routes::{idempotent, ROUTES};
use authledger::crypto::{DataKeyStore, MasterKey, PgDataKeys, SqliteDataKeys, Vault};

use crate::harness::Service;
use crate::support::{Api, Deployment, Hit, Reply, Stack, Upstream, BASE_ENV, NO_RATE_LIMIT};

const KEY_HEADER: &str = "Idempotency-Key";
const REPLAYED: &str = "idempotent-replayed";
/// How long the slow upstream takes to answer: longer than the agent's patience.
pub(crate) const SLOW: Duration = Duration::from_secs(3);

fn envs() -> Vec<(&'static str, &'static str)> {
    [BASE_ENV, NO_RATE_LIMIT].concat()
}

pub(crate) struct Env {
    pub(crate) d: Deployment,
    /// Where retries go: a second instance on the shared stack, else the same one.
    other: Option<Service>,
    http: Client,
}

impl Api for Env {
    async fn call(&self, bearer: &str, method: Method, path: &str, body: Option<Value>) -> Reply {
        Reply::of(crate::support::request(
            &self.http,
            &self.d.svc,
            bearer,
            method,
            path,
            body,
        ))
        .await
    }

    fn admin(&self) -> &str {
        &self.d.admin
    }
}

impl Env {
    async fn start(stack: Stack, two_instances: bool) -> Env {
        Env::start_with(stack, two_instances, &envs()).await
    }

    /// `start` with the instances' environment `envs`.
    pub(crate) async fn start_with(
        stack: Stack,
        two_instances: bool,
        envs: &[(&str, &str)],
    ) -> Env {
        let d = Deployment::start(stack, envs).await;
        let other = match two_instances {
            true => Some(d.second_instance(envs).await),
            false => None,
        };
        Env {
            d,
            other,
            http: Client::new(),
        }
    }

    pub(crate) fn retry_svc(&self) -> &Service {
        self.other.as_ref().unwrap_or(&self.d.svc)
    }

    /// `POST path` on `svc` with `bearer` and an `Idempotency-Key` of raw bytes `key`.
    async fn keyed_on(
        &self,
        svc: &Service,
        bearer: &str,
        key: &[u8],
        path: &str,
        body: &Value,
    ) -> Reply {
        let req = self
            .http
            .post(svc.url(path))
            .bearer_auth(bearer)
            .header(
                KEY_HEADER,
                HeaderValue::from_bytes(key).expect("header value"),
            )
            .json(body);
        Reply::of(req).await
    }

    async fn keyed(&self, bearer: &str, key: &str, path: &str, body: &Value) -> Reply {
        self.keyed_on(&self.d.svc, bearer, key.as_bytes(), path, body)
            .await
    }

    /// An `api_key` auth config, a connection of user `u1` on it, and tool
    /// `custom.send_email` (POST /send at `base_url`, risk write): the connection's id.
    pub(crate) async fn tool_connection(&self, base_url: &str) -> String {
        let r = self
            .post(
                self.admin(),
                "/v1/auth-configs",
                json!({ "name": "mail", "provider": "custom", "auth_type": "api_key",
                    "api_key": { "key_name": "X-Api-Key", "location": "header", "prefix": null } }),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        let config = r.str("id");
        let r = self
            .post(
                self.admin(),
                "/v1/tools",
                json!({ "name": "custom.send_email", "provider": "custom",
                    "description": "Sends one email.", "method": "POST", "base_url": base_url,
                    "path": "/send", "parameters": { "type": "object" },
                    "required_scopes": [], "risk": "write" }),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        self.credential_connection_by(self.admin(), &config, "u1", json!({ "api_key": "k-1" }))
            .await
    }

    /// How many events of `kind` the workspace's audit view holds once the projections
    /// show at least `expected` of them (more is a test failure at the caller).
    async fn count(&self, kind: &str, expected: usize) -> usize {
        self.audit_events_until(
            &format!("kind={kind}"),
            kind,
            Duration::from_secs(15),
            |i| i.len() >= expected,
        )
        .await
        .len()
    }
}

fn replayed(r: &Reply) -> bool {
    r.headers
        .get(REPLAYED)
        .is_some_and(|v| v.as_bytes() == b"true")
}

/// An upstream that takes `SLOW` to send each email.
pub(crate) async fn slow_upstream() -> Upstream {
    Upstream::start(|_: Hit| async {
        tokio::time::sleep(SLOW).await;
        axum::Json(json!({ "sent": true })).into_response()
    })
    .await
}

/// The test: the agent's client gives up on a slow tool call and retries with the
/// same key (on the other instance when there are two): while the first runs the retry is
/// 409 with `Retry-After`; after, it is the first call's answer. The upstream is called
/// once and every answer names the same `tool_call_id`.
async fn a_retried_tool_call_runs_once(stack: Stack, two_instances: bool) {
    let env = Env::start(stack, two_instances).await;
    let upstream = slow_upstream().await;
    let conn = env.tool_connection(&upstream.base_url).await;
    let (_, agent) = env.key_of(env.admin(), "agent").await;
    let body = json!({ "tool": "custom.send_email", "connection_id": conn,
        "arguments": { "to": "bob@example.com" } });

    let impatient = Client::builder()
        .timeout(Duration::from_secs(1))
        .build()
        .expect("client");
    let first = impatient
        .post(env.d.svc.url("/v1/tools/execute"))
        .bearer_auth(&agent)
        .header(KEY_HEADER, "send-bob-1")
        .json(&body)
        .send()
        .await;
    assert!(
        first.as_ref().is_err_and(reqwest::Error::is_timeout),
        "the first call should outlast the client: {first:?}"
    );

    // The first call is still with the upstream: the retry waits its turn.
    let r = env
        .keyed_on(
            env.retry_svc(),
            &agent,
            b"send-bob-1",
            "/v1/tools/execute",
            &body,
        )
        .await;
    r.expect(StatusCode::CONFLICT, "idempotency-key-in-use");
    let wait: u64 = r
        .headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds");
    assert!((1..=5).contains(&wait), "Retry-After {wait}");

    let deadline = Instant::now() + Duration::from_secs(30);
    let answer = loop {
        let r = env
            .keyed_on(
                env.retry_svc(),
                &agent,
                b"send-bob-1",
                "/v1/tools/execute",
                &body,
            )
            .await;
        if r.status != StatusCode::CONFLICT {
            break r;
        }
        assert!(Instant::now() < deadline, "still running: {}", r.text);
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert!(replayed(&answer), "the retry is the first call's answer");
    assert_eq!(
        answer.body["body"],
        json!({ "sent": true }),
        "{}",
        answer.text
    );
    let tool_call_id = answer.str("tool_call_id");
    // Once more, on the first instance: the same answer.
    let again = env
        .keyed(&agent, "send-bob-1", "/v1/tools/execute", &body)
        .await;
    assert!(replayed(&again), "{}", again.text);
    assert_eq!(again.str("tool_call_id"), tool_call_id);

    assert_eq!(
        upstream.hits_to("/send").len(),
        1,
        "the email went out once"
    );
    let requested = env
        .audit_events_until(
            "kind=tool.",
            "the tool call",
            Duration::from_secs(15),
            |i| i.iter().any(|e| e["kind"] == "tool.completed"),
        )
        .await;
    let kinds: Vec<&str> = requested
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .filter(|k| *k != "tool.defined")
        .collect();
    assert_eq!(
        kinds,
        ["tool.requested", "tool.completed"],
        "{requested:#?}"
    );
    // The key's record: claimed once, answered once.
    assert_eq!(env.count("idempotency.claimed", 1).await, 1);
    assert_eq!(env.count("idempotency.completed", 1).await, 1);

    // Six requests with one key at once, spread over the instances: one runs.
    let race = json!({ "tool": "custom.send_email", "connection_id": conn,
        "arguments": { "to": "carol@example.com" } });
    let answers = futures::future::join_all((0..6).map(|i| {
        let svc = if i % 2 == 0 {
            &env.d.svc
        } else {
            env.retry_svc()
        };
        env.keyed_on(svc, &agent, b"race-1", "/v1/tools/execute", &race)
    }))
    .await;
    let ran: Vec<&Reply> = answers
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .collect();
    assert_eq!(ran.len(), 1, "{answers:#?}");
    assert!(!replayed(ran[0]));
    for r in answers.iter().filter(|r| r.status != StatusCode::OK) {
        r.expect(StatusCode::CONFLICT, "idempotency-key-in-use");
    }
    assert_eq!(upstream.hits_to("/send").len(), 2, "one email per key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tool_call_retried_on_the_other_instance_runs_once() {
    a_retried_tool_call_runs_once(Stack::JetStreamPg, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_call_retried_while_it_runs_runs_once_embedded() {
    a_retried_tool_call_runs_once(Stack::Embedded, false).await;
}

/// Tokens, API keys, connections, auth configs and revocations with keys: replayed (also
/// after a restart) without a second event, 422 for another request, separate per API key
/// and per workspace; a request that wrote nothing frees its key; bad keys are refused.
async fn keys_replay_and_refuse(stack: Stack) {
    let mut env = Env::start(stack, false).await;
    let upstream = slow_upstream().await;
    let conn = env.tool_connection(&upstream.base_url).await;
    let (_, agent) = env.key_of(env.admin(), "agent").await;
    let (_, agent2) = env.key_of(env.admin(), "agent").await;
    let token_req =
        json!({ "connection_id": conn, "tool": "custom.send_email", "ttl_seconds": 300 });

    // A token issue replayed is the same token, with one token.issued.
    let first = env.keyed(&agent, "tok-1", "/v1/tokens", &token_req).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    assert!(!replayed(&first));
    let token = first.str("token");
    let again = env.keyed(&agent, "tok-1", "/v1/tokens", &token_req).await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.text);
    assert!(replayed(&again));
    assert_eq!(again.body, first.body);
    assert_eq!(
        again
            .headers
            .get("cache-control")
            .map(HeaderValue::as_bytes),
        Some(&b"no-store"[..])
    );
    // The same key with another request.
    let other_req =
        json!({ "connection_id": conn, "tool": "custom.send_email", "ttl_seconds": 60 });
    env.keyed(&agent, "tok-1", "/v1/tokens", &other_req)
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY, "idempotency-key-reused");
    env.keyed(&agent, "tok-1", "/v1/tokens?x=1", &token_req)
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY, "idempotency-key-reused");
    // Another API key's equal key is its own.
    let theirs = env.keyed(&agent2, "tok-1", "/v1/tokens", &token_req).await;
    assert_eq!(theirs.status, StatusCode::CREATED, "{}", theirs.text);
    assert!(!replayed(&theirs));
    assert_ne!(theirs.str("token"), token);
    assert_eq!(env.count("token.issued", 2).await, 2);

    // API keys: another workspace's equal key is its own.
    let key_req = json!({ "name": "ci", "role": "viewer" });
    let mine = env
        .keyed(env.admin(), "key-1", "/v1/api-keys", &key_req)
        .await;
    assert_eq!(mine.status, StatusCode::CREATED, "{}", mine.text);
    let admin2 = env.d.other_workspace("globex").await;
    let elsewhere = env.keyed(&admin2, "key-1", "/v1/api-keys", &key_req).await;
    assert_eq!(elsewhere.status, StatusCode::CREATED, "{}", elsewhere.text);
    assert!(!replayed(&elsewhere));
    assert_ne!(elsewhere.str("id"), mine.str("id"));
    // The replay answers the first request's log position too (read-your-writes).
    let position = |r: &Reply| r.headers.get("authledger-position").cloned();
    let mine_again = env
        .keyed(env.admin(), "key-1", "/v1/api-keys", &key_req)
        .await;
    assert!(replayed(&mine_again));
    assert!(position(&mine).is_some(), "{:?}", mine.headers);
    assert_eq!(position(&mine_again), position(&mine));

    // Approvals: an admin's decision replayed.
    let r = env
        .post(
            env.admin(),
            "/v1/tools",
            json!({ "name": "custom.delete_mail", "provider": "custom",
                "description": "Deletes all mail.", "method": "DELETE",
                "base_url": upstream.base_url, "path": "/mail",
                "parameters": { "type": "object" }, "required_scopes": [], "risk": "destructive" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let asked = env
        .post(
            &agent,
            "/v1/tools/execute",
            json!({ "tool": "custom.delete_mail", "connection_id": conn, "arguments": {} }),
        )
        .await;
    asked.expect(StatusCode::FORBIDDEN, "approval-required");
    let approve = format!("/v1/approvals/{}/approve", asked.str("approval_id"));
    let approved = env.keyed(env.admin(), "appr-1", &approve, &json!({})).await;
    assert!(approved.status.is_success(), "{}", approved.text);
    let again = env.keyed(env.admin(), "appr-1", &approve, &json!({})).await;
    assert_eq!(
        (again.status, &again.body),
        (approved.status, &approved.body)
    );
    assert!(replayed(&again));

    // Connections, auth configs and revocations.
    let config_req = json!({ "name": "second", "provider": "custom", "auth_type": "api_key",
        "api_key": { "key_name": "X-Key", "location": "header", "prefix": null } });
    let config = env
        .keyed(env.admin(), "cfg-1", "/v1/auth-configs", &config_req)
        .await;
    assert_eq!(config.status, StatusCode::CREATED, "{}", config.text);
    let conn_req = json!({ "auth_config_id": config.str("id"), "user_id": "u2",
        "credentials": { "api_key": "k-2" } });
    let made = env
        .keyed(env.admin(), "conn-1", "/v1/connections", &conn_req)
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.text);
    let revoke = format!("/v1/tokens/{}/revoke", first.str("id"));
    let revoked = env.keyed(&agent, "rev-1", &revoke, &json!({})).await;
    assert!(revoked.status.is_success(), "{}", revoked.text);

    // A request that wrote nothing frees its key: the same key then runs another request.
    let unknown = json!({ "connection_id": "no-such-connection", "tool": "custom.send_email" });
    let refused = env.keyed(&agent, "tok-2", "/v1/tokens", &unknown).await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND, "{}", refused.text);
    let now_ok = env.keyed(&agent, "tok-2", "/v1/tokens", &token_req).await;
    assert_eq!(now_ok.status, StatusCode::CREATED, "{}", now_ok.text);
    assert!(!replayed(&now_ok));

    // Bad keys: a clear problem, nothing run.
    let long = vec![b'k'; 256];
    for bad in [&b""[..], &long, b"two words", b"caf\xc3\xa9"] {
        env.keyed_on(&env.d.svc, &agent, bad, "/v1/tokens", &token_req)
            .await
            .expect(StatusCode::BAD_REQUEST, "invalid-idempotency-key");
    }
    assert_eq!(env.count("token.issued", 3).await, 3);

    // A scoped token's keys are its own, apart from its agent key's.
    let fast =
        Upstream::start(|_: Hit| async { axum::Json(json!({ "pong": true })).into_response() })
            .await;
    let r = env
        .post(
            env.admin(),
            "/v1/tools",
            json!({ "name": "custom.ping", "provider": "custom", "description": "Pings.",
                "method": "POST", "base_url": fast.base_url, "path": "/ping",
                "parameters": { "type": "object" }, "required_scopes": [], "risk": "write" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = env
        .post(
            &agent2,
            "/v1/tokens",
            json!({ "connection_id": conn, "tool": "custom.ping" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let scoped = r.str("token");
    let ping = json!({ "tool": "custom.ping", "connection_id": conn, "arguments": {} });
    let by_token = env
        .keyed(&scoped, "ping-1", "/v1/tools/execute", &ping)
        .await;
    assert_eq!(by_token.status, StatusCode::OK, "{}", by_token.text);
    let by_key = env
        .keyed(&agent2, "ping-1", "/v1/tools/execute", &ping)
        .await;
    assert_eq!(by_key.status, StatusCode::OK, "{}", by_key.text);
    assert!(!replayed(&by_key));
    assert_ne!(by_key.str("tool_call_id"), by_token.str("tool_call_id"));
    let again = env
        .keyed(&scoped, "ping-1", "/v1/tools/execute", &ping)
        .await;
    assert!(replayed(&again), "{}", again.text);
    assert_eq!(again.str("tool_call_id"), by_token.str("tool_call_id"));
    assert_eq!(fast.hits_to("/ping").len(), 2);

    // After a restart the log still decides: the same answers, nothing run again.
    env.d.restart(&envs()).await;
    for (bearer, key, path, body, was) in [
        (&agent, "tok-1", "/v1/tokens", &token_req, &first),
        (&env.d.admin, "key-1", "/v1/api-keys", &key_req, &mine),
        (
            &env.d.admin,
            "cfg-1",
            "/v1/auth-configs",
            &config_req,
            &config,
        ),
        (&env.d.admin, "conn-1", "/v1/connections", &conn_req, &made),
        (&agent, "rev-1", revoke.as_str(), &json!({}), &revoked),
        (
            &env.d.admin,
            "appr-1",
            approve.as_str(),
            &json!({}),
            &approved,
        ),
    ] {
        let r = env.keyed(bearer, key, path, body).await;
        assert_eq!(
            (r.status, &r.body),
            (was.status, &was.body),
            "{path}: {}",
            r.text
        );
        assert!(replayed(&r), "{path}");
    }
    assert_eq!(env.count("token.issued", 4).await, 4);
    assert_eq!(
        env.count("api_key.created", 4).await,
        4,
        "admin, two agents, ci; none again"
    );
    assert_eq!(env.count("connection.created", 2).await, 2);
    assert_eq!(env.count("token.revoked", 1).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_replay_and_refuse_embedded() {
    keys_replay_and_refuse(Stack::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_replay_and_refuse_on_jetstream_and_postgres() {
    keys_replay_and_refuse(Stack::JetStreamPg).await;
}

/// The lease bounds a claim: a request that outlasts it is cut off and answers (and
/// replays) `idempotent-outcome-unknown`, never run again by a retry; a claim whose
/// instance died holds its key only until its lease ends, then a retry runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_holds_its_key_no_longer_than_its_lease() {
    let lease = [("AUTHLEDGER_IDEMPOTENCY_LEASE_SECS", "3")];
    let with_lease = [envs(), lease.to_vec()].concat();
    let mut env = Env::start(Stack::Embedded, false).await;
    env.d.restart(&with_lease).await;
    let upstream = Upstream::start(|_: Hit| async {
        tokio::time::sleep(Duration::from_secs(6)).await;
        axum::Json(json!({ "sent": true })).into_response()
    })
    .await;
    let conn = env.tool_connection(&upstream.base_url).await;
    let (_, agent) = env.key_of(env.admin(), "agent").await;
    let body = json!({ "tool": "custom.send_email", "connection_id": conn, "arguments": {} });

    // Outlasting the lease: cut off, and the retry is that answer, not a second call.
    let started = Instant::now();
    let r = env
        .keyed(&agent, "slow-1", "/v1/tools/execute", &body)
        .await;
    r.expect(StatusCode::GATEWAY_TIMEOUT, "idempotent-outcome-unknown");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "cut off at the lease, not after the upstream"
    );
    let again = env
        .keyed(&agent, "slow-1", "/v1/tools/execute", &body)
        .await;
    again.expect(StatusCode::GATEWAY_TIMEOUT, "idempotent-outcome-unknown");
    assert!(replayed(&again));
    assert_eq!(upstream.hits_to("/send").len(), 1);

    // The instance dies mid-call: after a restart the key is held until the lease ends,
    // then a retry runs.
    let env_ref = &env;
    let pending = tokio::spawn({
        let (http, url, agent, body) = (
            env_ref.http.clone(),
            env_ref.d.svc.url("/v1/tools/execute"),
            agent.clone(),
            body.clone(),
        );
        async move {
            let _ = http
                .post(url)
                .bearer_auth(agent)
                .header(KEY_HEADER, "dies-1")
                .json(&body)
                .send()
                .await;
        }
    });
    crate::harness::eventually(
        Duration::from_secs(10),
        "the call reaches the upstream",
        || {
            let n = upstream.hits_to("/send").len();
            async move { n == 2 }
        },
    )
    .await;
    let claimed_by = Instant::now();
    env.d.restart(&with_lease).await;
    pending.abort();
    let mut saw_in_use = false;
    let answer = loop {
        let r = env
            .keyed(&agent, "dies-1", "/v1/tools/execute", &body)
            .await;
        if r.status != StatusCode::CONFLICT {
            break r;
        }
        saw_in_use = true;
        assert!(
            claimed_by.elapsed() < Duration::from_secs(15),
            "the dead claim still holds its key: {}",
            r.text
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(!replayed(&answer), "the retry ran: {}", answer.text);
    assert_eq!(
        upstream.hits_to("/send").len(),
        3,
        "the retry called the upstream"
    );
    // Held until the lease ended, if the restart was quicker than the lease.
    if claimed_by.elapsed() < Duration::from_secs(2) {
        assert!(saw_in_use);
    }
}

/// The retention sweep's query: live data keys of idempotency records created before a
/// time, on both data-key stores; other owners and newer keys are not its business.
async fn the_sweep_finds_only_old_idempotency_keys(store: Arc<dyn DataKeyStore>) {
    let vault = Vault::load(
        MasterKey::generate().expect("master"),
        vec![],
        store.clone(),
    )
    .await
    .expect("vault");
    let answer = vault
        .create_data_key("ws1/idempotency/0123abcd")
        .await
        .expect("key")
        .id()
        .to_string();
    let connection = vault
        .create_data_key("ws1/connection/c1")
        .await
        .expect("key")
        .id()
        .to_string();
    let pattern = "%/idempotency/%";
    let rfc3339 = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .expect("time")
    };
    let now = time::OffsetDateTime::now_utc();
    let later = rfc3339(now + time::Duration::hours(1));
    let earlier = rfc3339(now - time::Duration::hours(1));
    assert_eq!(
        store
            .owned_before(pattern, &later, 10)
            .await
            .expect("query"),
        vec![answer.clone()]
    );
    assert!(store
        .owned_before(pattern, &earlier, 10)
        .await
        .expect("query")
        .is_empty());
    vault.shred(&answer).await.expect("shred");
    assert!(store
        .owned_before(pattern, &later, 10)
        .await
        .expect("query")
        .is_empty());
    assert!(store.list_ids().await.expect("ids").contains(&connection));
}

#[tokio::test]
async fn the_sweep_finds_only_old_idempotency_keys_sqlite() {
    let dir = tempfile::tempdir().expect("dir");
    let store = SqliteDataKeys::open(&dir.path().join("data_keys.db"))
        .await
        .expect("store");
    the_sweep_finds_only_old_idempotency_keys(Arc::new(store)).await;
}

#[tokio::test]
async fn the_sweep_finds_only_old_idempotency_keys_postgres() {
    let url = crate::harness::fresh_pg_database().await;
    let store = PgDataKeys::open(&url).await.expect("store");
    the_sweep_finds_only_old_idempotency_keys(Arc::new(store)).await;
}

/// The OpenAPI document names `Idempotency-Key` on exactly the routes that accept it.
#[test]
fn the_openapi_document_names_the_header_where_it_is_accepted() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/openapi.json");
    let doc: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("openapi.json")).expect("json");
    let param = json!({ "$ref": "#/components/parameters/IdempotencyKey" });
    assert_eq!(
        doc["components"]["parameters"]["IdempotencyKey"]["name"],
        KEY_HEADER
    );
    let mut documented = BTreeSet::new();
    for (p, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("item") {
            let takes = op["parameters"]
                .as_array()
                .is_some_and(|ps| ps.contains(&param));
            if takes {
                let responses = &op["responses"];
                for code in ["400", "409", "422"] {
                    assert!(responses.get(code).is_some(), "{method} {p} lacks {code}");
                }
                documented.insert((method.to_uppercase(), p.clone()));
            }
        }
    }
    let accepted: BTreeSet<(String, String)> = ROUTES
        .iter()
        .filter(|r| idempotent(r))
        .map(|r| (r.method.to_string(), r.path.to_string()))
        .collect();
    assert_eq!(documented, accepted);
    assert!(accepted.contains(&("POST".to_string(), "/v1/tools/execute".to_string())));
}

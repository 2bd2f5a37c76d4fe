//! Webhooks (issue 18): endpoints registered over the API receive their workspace's events
//! from the log, signed per Standard Webhooks, at a real receiver (`webhook_receiver.py`)
//! that verifies each delivery with the reference library from PyPI (`standardwebhooks`)
//! and dedupes by `webhook-id`. In log order; a receiver down for a while loses nothing;
//! two instances deliver each event once; a rotated secret and the one it replaced both
//! verify during the grace period; replay sends again; an endpoint failing for the whole
//! retry schedule (the service's clock moved by the test) is disabled and that is an event;
//! a redirect is a failed attempt, never followed; an operator's `replay` keeps the
//! cursors; a private address is refused when the webhook is made.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};

use crate::harness::{eventually, free_port, Service};
use crate::support::{request, Deployment, Reply, Stack, TestClock, BASE_ENV, NO_RATE_LIMIT};

const WAIT: Duration = Duration::from_secs(30);

/// The receiver: a Python process verifying with `standardwebhooks`; killed on drop.
struct Receiver {
    child: Option<Child>,
    port: u16,
    state: PathBuf,
    secret: String,
    http: Client,
    _dir: tempfile::TempDir,
}

impl Receiver {
    async fn start(secret: &str) -> Receiver {
        let dir = tempfile::tempdir().expect("dir");
        let mut r = Receiver {
            child: None,
            port: free_port(),
            state: dir.path().join("state.json"),
            secret: secret.to_string(),
            http: Client::new(),
            _dir: dir,
        };
        r.up().await;
        r
    }

    /// Starts the process (again) on its port, with its state file.
    async fn up(&mut self) {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/webhook_receiver.py");
        let child = Command::new("python3")
            .arg(script)
            .arg(self.port.to_string())
            .arg(&self.state)
            .arg(&self.secret)
            .stdout(Stdio::null())
            .spawn()
            .expect("python3 webhook_receiver.py");
        self.child = Some(child);
        let (http, url) = (self.http.clone(), self.base("/_state"));
        eventually(WAIT, "the receiver listens", || {
            let (http, url) = (http.clone(), url.clone());
            async move { http.get(url).send().await.is_ok() }
        })
        .await;
    }

    fn down(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn base(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn url(&self) -> String {
        self.base("/hook")
    }

    /// Verifies with `secret` from now on (and after a restart).
    async fn use_secret(&mut self, secret: &str) {
        self.secret = secret.to_string();
        self.control(json!({ "secret": secret })).await;
    }

    async fn control(&self, body: Value) {
        let r = self
            .http
            .post(self.base("/_control"))
            .json(&body)
            .send()
            .await
            .expect("control");
        assert!(r.status().is_success());
    }

    async fn state(&self) -> Value {
        self.http
            .get(self.base("/_state"))
            .send()
            .await
            .expect("state")
            .json()
            .await
            .expect("json")
    }

    /// The accepted deliveries' bodies, in the order they arrived (deduped by id).
    async fn accepted(&self) -> Vec<Value> {
        let s = self.state().await;
        s["accepted"]
            .as_array()
            .expect("accepted")
            .iter()
            .map(|a| {
                assert_eq!(a["id"], a["body"]["event_id"], "webhook-id is the event id");
                a["body"].clone()
            })
            .collect()
    }

    async fn accepted_until(&self, what: &str, n: usize) -> Vec<Value> {
        eventually(WAIT, what, || async { self.accepted().await.len() >= n }).await;
        self.accepted().await
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.down();
    }
}

struct Env {
    d: Deployment,
    http: Client,
    config: String,
}

impl Env {
    async fn start(stack: Stack, clock: Option<&TestClock>, instances: usize) -> Env {
        let mut envs = [BASE_ENV, NO_RATE_LIMIT].concat();
        if let Some(c) = clock {
            envs.push(c.env());
        }
        let d = Deployment::start_instances(stack, instances, &envs).await;
        let mut env = Env {
            d,
            http: Client::new(),
            config: String::new(),
        };
        let r = env
            .call(
                0,
                Method::POST,
                "/v1/auth-configs",
                Some(
                    json!({ "name": "mail", "provider": "custom", "auth_type": "api_key",
                    "api_key": { "key_name": "X-Api-Key", "location": "header", "prefix": null } }),
                ),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        env.config = r.str("id");
        env
    }

    fn svc(&self, i: usize) -> &Service {
        self.d.instance(i)
    }

    async fn call(&self, i: usize, method: Method, path: &str, body: Option<Value>) -> Reply {
        Reply::of(request(
            &self.http,
            self.svc(i),
            &self.d.admin,
            method,
            path,
            body,
        ))
        .await
    }

    /// A webhook for `events` at `url`: (id, secret).
    async fn webhook(&self, url: &str, events: Value) -> (String, String) {
        let r = self
            .call(
                0,
                Method::POST,
                "/v1/webhooks",
                Some(json!({ "url": url, "events": events })),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        let secret = r.str("secret");
        assert!(secret.starts_with("whsec_"), "{secret}");
        (r.str("id"), secret)
    }

    /// A connection of `user` made through instance `i` (`connection.created`): its id.
    async fn connection(&self, i: usize, user: &str) -> String {
        let r = self
            .call(
                i,
                Method::POST,
                "/v1/connections",
                Some(json!({ "auth_config_id": self.config, "user_id": user,
                    "credentials": { "api_key": "k-1" } })),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        r.str("id")
    }

    /// The workspace's `connection.*` events as the audit view lists them, oldest first.
    async fn connection_events(&self) -> Vec<Value> {
        let r = self
            .call(
                0,
                Method::GET,
                "/v1/audit/events?kind=connection.&order=asc&limit=1000",
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        r.body["items"].as_array().expect("items").clone()
    }

    /// A sample of instance 0's `/metrics` (its full name with labels), 0 when absent.
    async fn metric(&self, sample: &str) -> f64 {
        let r = self.call(0, Method::GET, "/metrics", None).await;
        r.text
            .lines()
            .find_map(|l| l.strip_prefix(sample)?.trim().parse().ok())
            .unwrap_or(0.0)
    }

    async fn deliveries(&self, id: &str) -> Vec<Value> {
        let r = self
            .call(
                0,
                Method::GET,
                &format!("/v1/webhooks/{id}/deliveries"),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        r.body["items"].as_array().expect("items").clone()
    }
}

/// What a receiver got equals the audit view of those events, in log order.
fn same_events(got: &[Value], logged: &[Value]) {
    let ids = |v: &[Value]| v.iter().map(|e| e["event_id"].clone()).collect::<Vec<_>>();
    assert_eq!(ids(got), ids(logged), "the log's events, in log order");
    for (g, l) in got.iter().zip(logged) {
        assert_eq!(g, l, "the body is the event's audit view");
    }
}

async fn signed_and_verified_in_log_order(stack: Stack) {
    let env = Env::start(stack, None, 1).await;
    let mut receiver = Receiver::start("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").await;
    let (id, secret) = env.webhook(&receiver.url(), json!(["connection."])).await;
    receiver.use_secret(&secret).await;

    let conn = env.connection(0, "u1").await;
    let r = env
        .call(
            0,
            Method::POST,
            &format!("/v1/connections/{conn}/revoke"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = env
        .call(0, Method::DELETE, &format!("/v1/connections/{conn}"), None)
        .await;
    assert!(r.status.is_success(), "{}", r.text);

    let logged = env.connection_events().await;
    assert!(logged.len() >= 3, "{logged:#?}");
    let got = receiver
        .accepted_until("every connection event", logged.len())
        .await;
    same_events(&got, &logged);
    let kinds: Vec<&str> = got.iter().filter_map(|e| e["kind"].as_str()).collect();
    assert!(
        kinds.iter().all(|k| k.starts_with("connection.")),
        "{kinds:?}"
    );
    assert_eq!(receiver.state().await["rejected"], 0);

    // The attempts are visible; the secret is in no answer but the first.
    let deliveries = env.deliveries(&id).await;
    assert!(deliveries.iter().any(|d| d["status"] == "delivered"
        && d["response_code"] == 204
        && d["attempt"] == 1
        && d["latency_ms"].is_i64()));
    let delivered = env
        .metric("authledger_webhook_deliveries_total{result=\"delivered\"}")
        .await;
    assert!(delivered >= logged.len() as f64, "{delivered}");
    let r = env
        .call(0, Method::GET, &format!("/v1/webhooks/{id}"), None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(!r.text.contains(&secret) && r.body.get("secret").is_none());
    let r = env.call(0, Method::GET, "/v1/webhooks", None).await;
    assert_eq!(r.body["items"][0]["id"], id.as_str());
    assert!(!r.text.contains(&secret));
    let all = env
        .call(
            0,
            Method::GET,
            "/v1/audit/events?kind=webhook.&limit=100",
            None,
        )
        .await;
    assert!(all.text.contains("webhook.created") && !all.text.contains(&secret));
}

#[tokio::test]
async fn a_connections_events_arrive_signed_and_verified_in_log_order_embedded() {
    signed_and_verified_in_log_order(Stack::Embedded).await;
}

#[tokio::test]
async fn a_connections_events_arrive_signed_and_verified_in_log_order_jetstream_pg() {
    signed_and_verified_in_log_order(Stack::JetStreamPg).await;
}

/// The receiver is stopped, events happen, it starts again: every event arrives, in log
/// order, after the retries the schedule (on the service's clock) calls for.
#[tokio::test]
async fn a_receiver_down_for_a_while_loses_nothing_and_keeps_the_order() {
    let clock = TestClock::new();
    let env = Env::start(Stack::Embedded, Some(&clock), 1).await;
    let mut receiver = Receiver::start("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").await;
    let (id, secret) = env
        .webhook(&receiver.url(), json!(["connection.created"]))
        .await;
    receiver.use_secret(&secret).await;
    env.connection(0, "u0").await;
    receiver.accepted_until("the first event", 1).await;

    receiver.down();
    for u in 1..=4 {
        env.connection(0, &format!("u{u}")).await;
    }
    eventually(WAIT, "a failed attempt", || async {
        env.deliveries(&id)
            .await
            .iter()
            .any(|d| d["status"] == "failed")
    })
    .await;
    receiver.up().await;
    // The next attempt is due within the first backoff (5 s): move the clock, never sleep.
    eventually(WAIT, "every event after the receiver is back", || async {
        clock.advance(Duration::from_secs(6));
        receiver.accepted().await.len() >= 5
    })
    .await;
    let logged: Vec<Value> = env
        .connection_events()
        .await
        .into_iter()
        .filter(|e| e["kind"] == "connection.created")
        .collect();
    same_events(&receiver.accepted().await, &logged);
    let deliveries = env.deliveries(&id).await;
    let failed = deliveries
        .iter()
        .filter(|d| d["status"] == "failed")
        .count();
    assert!(failed >= 1, "{deliveries:#?}");
    assert!(
        deliveries
            .iter()
            .any(|d| d["status"] == "delivered" && d["attempt"].as_i64() > Some(1)),
        "the event that failed was delivered on a later attempt: {deliveries:#?}"
    );
}

/// Two instances on JetStream + PostgreSQL, writes through both: every event once.
#[tokio::test]
async fn two_instances_deliver_each_event_once() {
    let env = Env::start(Stack::JetStreamPg, None, 2).await;
    let mut receiver = Receiver::start("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").await;
    let (_, secret) = env
        .webhook(&receiver.url(), json!(["connection.created"]))
        .await;
    receiver.use_secret(&secret).await;
    for u in 0..12 {
        env.connection(u % 2, &format!("u{u}")).await;
    }
    let got = receiver.accepted_until("twelve events", 12).await;
    let logged: Vec<Value> = env
        .connection_events()
        .await
        .into_iter()
        .filter(|e| e["kind"] == "connection.created")
        .collect();
    same_events(&got, &logged);
    // Settle: nothing more arrives, and nothing arrived twice (no failure, so no retry).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let state = receiver.state().await;
    let received = state["received"].as_array().expect("received");
    assert_eq!(received.len(), 12, "{state:#}");
}

/// After a rotation the new secret verifies, and so does the old one during the grace
/// period (both signatures in `webhook-signature`).
#[tokio::test]
async fn a_rotated_secret_and_the_old_one_both_verify_during_the_grace_period() {
    let env = Env::start(Stack::Embedded, None, 1).await;
    let mut receiver = Receiver::start("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").await;
    let (id, old) = env
        .webhook(&receiver.url(), json!(["connection.created"]))
        .await;
    receiver.use_secret(&old).await;
    env.connection(0, "u0").await;
    receiver.accepted_until("one event", 1).await;

    let r = env
        .call(
            0,
            Method::POST,
            &format!("/v1/webhooks/{id}/rotate-secret"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let new = r.str("secret");
    assert_ne!(new, old);
    assert_eq!(r.body["previous_secret_valid_for_secs"], 86400);

    receiver.use_secret(&new).await;
    env.connection(0, "u1").await;
    receiver
        .accepted_until("an event under the new secret", 2)
        .await;
    receiver.use_secret(&old).await;
    env.connection(0, "u2").await;
    receiver
        .accepted_until("an event under the old secret", 3)
        .await;
    assert_eq!(receiver.state().await["rejected"], 0);
    let r = env
        .call(
            0,
            Method::GET,
            "/v1/audit/events?kind=webhook.secret_rotated",
            None,
        )
        .await;
    assert_eq!(
        r.body["items"].as_array().map(Vec::len),
        Some(1),
        "{}",
        r.text
    );
    assert!(!r.text.contains(&new));
}

/// Replay sends every wanted event from a position again (the receiver sees them twice,
/// and its dedupe keeps one).
#[tokio::test]
async fn replay_sends_again_from_a_position() {
    let env = Env::start(Stack::Embedded, None, 1).await;
    let mut receiver = Receiver::start("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").await;
    let (id, secret) = env
        .webhook(&receiver.url(), json!(["connection.created"]))
        .await;
    receiver.use_secret(&secret).await;
    for u in 0..3 {
        env.connection(0, &format!("u{u}")).await;
    }
    let got = receiver.accepted_until("three events", 3).await;
    let second = got[1]["position"].as_i64().expect("position");
    let r = env
        .call(
            0,
            Method::POST,
            &format!("/v1/webhooks/{id}/replay"),
            Some(json!({ "from_position": second })),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    eventually(WAIT, "the replayed events", || async {
        receiver.state().await["received"]
            .as_array()
            .is_some_and(|r| r.len() >= 5)
    })
    .await;
    let state = receiver.state().await;
    let received: Vec<&str> = state["received"]
        .as_array()
        .expect("received")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let ids: Vec<&str> = got.iter().filter_map(|e| e["event_id"].as_str()).collect();
    assert_eq!(received, [ids[0], ids[1], ids[2], ids[1], ids[2]]);
    let r = env
        .call(
            0,
            Method::GET,
            "/v1/audit/events?kind=webhook.replay_requested",
            None,
        )
        .await;
    assert_eq!(
        r.body["items"].as_array().map(Vec::len),
        Some(1),
        "{}",
        r.text
    );
    // A position the log starts after is refused.
    let r = env
        .call(
            0,
            Method::POST,
            &format!("/v1/webhooks/{id}/replay"),
            Some(json!({ "from_position": 0 })),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
}

/// A receiver that keeps failing: retried on the schedule, and once it has failed for a
/// day (the clock moved by the test) the endpoint is disabled, recorded as an event.
#[tokio::test]
async fn an_endpoint_failing_for_the_whole_schedule_is_disabled() {
    let clock = TestClock::new();
    let env = Env::start(Stack::Embedded, Some(&clock), 1).await;
    let mut receiver = Receiver::start("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").await;
    let (id, secret) = env
        .webhook(&receiver.url(), json!(["connection.created"]))
        .await;
    receiver.use_secret(&secret).await;
    receiver.control(json!({ "status": 503 })).await;
    env.connection(0, "u0").await;
    eventually(WAIT, "a failed attempt", || async {
        env.deliveries(&id)
            .await
            .iter()
            .any(|d| d["response_code"] == 503)
    })
    .await;
    assert!(
        env.metric("authledger_webhook_deliveries_total{result=\"failed\"}")
            .await
            >= 1.0
    );
    clock.advance(Duration::from_secs(3600));
    eventually(WAIT, "a second attempt", || async {
        env.deliveries(&id).await.len() >= 2
    })
    .await;
    let r = env
        .call(0, Method::GET, &format!("/v1/webhooks/{id}"), None)
        .await;
    assert_eq!(r.body["enabled"], true, "{}", r.text);

    clock.advance(Duration::from_secs(24 * 3600));
    eventually(WAIT, "the endpoint disabled", || async {
        let r = env
            .call(0, Method::GET, &format!("/v1/webhooks/{id}"), None)
            .await;
        r.body["enabled"] == false
    })
    .await;
    let r = env
        .call(0, Method::GET, &format!("/v1/webhooks/{id}"), None)
        .await;
    assert!(
        r.body["disabled_reason"]
            .as_str()
            .is_some_and(|s| s.contains("503")),
        "{}",
        r.text
    );
    let r = env
        .call(
            0,
            Method::GET,
            "/v1/audit/events?kind=webhook.disabled",
            None,
        )
        .await;
    let items = r.body["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{}", r.text);
    assert_eq!(items[0]["actor"]["type"], "system");
    // Nothing more is tried while it is off.
    let attempts = env.deliveries(&id).await.len();
    clock.advance(Duration::from_secs(7200));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(env.deliveries(&id).await.len(), attempts);

    // Turned on again, with a receiver that answers, the event arrives.
    receiver.control(json!({ "status": 204 })).await;
    let _ = &mut receiver;
    let r = env
        .call(
            0,
            Method::PATCH,
            &format!("/v1/webhooks/{id}"),
            Some(json!({ "enabled": true })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["disabled_reason"], Value::Null);
    // The receiver checks timestamps against its own clock: the service's is a day ahead
    // now, so it refuses; the attempt itself is what this checks.
    eventually(WAIT, "an attempt after turning it on", || async {
        env.deliveries(&id).await.len() > attempts
    })
    .await;
}

/// Without `--allow-loopback-urls`, loopback and private addresses are refused when the
/// webhook is made (422); private ones also when loopback is allowed.
#[tokio::test]
async fn a_private_address_is_refused_at_creation() {
    let d = Deployment::start(Stack::Embedded, NO_RATE_LIMIT).await;
    let http = Client::new();
    for url in [
        "http://127.0.0.1:9/hook",
        "https://127.0.0.1/hook",
        "https://10.1.2.3/hook",
        "https://169.254.169.254/latest",
        "https://[fd00::1]/hook",
        "http://hooks.example.com/plain-http",
    ] {
        let r = Reply::of(request(
            &http,
            &d.svc,
            &d.admin,
            Method::POST,
            "/v1/webhooks",
            Some(json!({ "url": url })),
        ))
        .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{url}: {}",
            r.text
        );
        assert!(!r.text.contains("whsec_"));
    }
    let r = Reply::of(request(
        &http,
        &d.svc,
        &d.admin,
        Method::GET,
        "/v1/webhooks",
        None,
    ))
    .await;
    assert_eq!(r.body["items"], json!([]), "{}", r.text);

    let env = Env::start(Stack::Embedded, None, 1).await;
    let r = env
        .call(
            0,
            Method::POST,
            "/v1/webhooks",
            Some(json!({ "url": "https://192.168.1.1/hook" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    let r = env
        .call(
            0,
            Method::POST,
            "/v1/webhooks",
            Some(json!({ "url": "https://hooks.example.com/x", "events": ["Bad Kind"] })),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
}

/// `authledger replay` rebuilds the projections, not the delivery state: after it, an
/// endpoint goes on from its cursor (nothing delivered is sent again).
#[tokio::test]
async fn an_operator_replay_keeps_the_delivery_cursors() {
    let mut env = Env::start(Stack::Embedded, None, 1).await;
    let mut receiver = Receiver::start("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").await;
    let (id, secret) = env
        .webhook(&receiver.url(), json!(["connection.created"]))
        .await;
    receiver.use_secret(&secret).await;
    env.connection(0, "u0").await;
    receiver.accepted_until("one event", 1).await;
    // Killed only once it is done with the endpoint: killed between the receiver's answer
    // and the cursor's move, it would send the event again (at least once); holding the
    // lease, the next instance would wait the lease out.
    let delivered = env.deliveries(&id).await[0]["position"]
        .as_i64()
        .expect("position");
    let projections = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}",
        crate::support::data_dir(env.d.dir.path())
            .join("projections.db")
            .display()
    ))
    .await
    .expect("projections");
    eventually(WAIT, "the endpoint's cursor moved and released", || async {
        let (position, owner): (i64, Option<String>) = sqlx::query_as(
            "SELECT position, lease_owner FROM webhook_cursors WHERE webhook_id = ?",
        )
        .bind(&id)
        .fetch_one(&projections)
        .await
        .expect("cursor");
        position >= delivered && owner.is_none()
    })
    .await;
    projections.close().await;

    let _ = env.d.svc.child.kill();
    let _ = env.d.svc.child.wait();
    let out = crate::support::cli(&env.d.storage, &["replay"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let envs = [BASE_ENV, NO_RATE_LIMIT].concat();
    env.d.restart(&envs).await;

    env.connection(0, "u1").await;
    receiver.accepted_until("the next event", 2).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let state = receiver.state().await;
    assert_eq!(
        state["received"].as_array().map(Vec::len),
        Some(2),
        "{state:#}"
    );
    assert_eq!(env.deliveries(&id).await.len(), 2);
}

/// A redirect is not followed: the attempt failed (3xx is not 2xx), and the place it
/// points to never hears of the delivery.
#[tokio::test]
async fn a_redirect_is_a_failed_attempt_never_followed() {
    let env = Env::start(Stack::Embedded, None, 1).await;
    let mut receiver = Receiver::start("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").await;
    let (id, secret) = env
        .webhook(&receiver.url(), json!(["connection.created"]))
        .await;
    receiver.use_secret(&secret).await;
    receiver.control(json!({ "status": 307 })).await;
    env.connection(0, "u0").await;
    eventually(WAIT, "a redirected attempt", || async {
        env.deliveries(&id)
            .await
            .iter()
            .any(|d| d["response_code"] == 307)
    })
    .await;
    let d = env.deliveries(&id).await;
    assert_eq!(d[0]["status"], "failed", "{d:#?}");
    let state = receiver.state().await;
    assert_eq!(state.get("followed"), None, "{state:#}");
    assert_eq!(state["accepted"], json!([]));
}

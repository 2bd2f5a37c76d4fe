//! Undo of tool calls (issue 20) over HTTP against a real `serve` and a real local upstream,
//! on both stacks: an agent's call creates a calendar event; Alice (the connection's end
//! user, with her identity provider's JWT) undoes it, and the upstream receives exactly the
//! compensating request (path from the arguments and the answer, her credential); a second
//! undo is `409 already-undone`; a Slack-like undo sends its body built from the answer (a
//! developer key); a tool without an undo is `409 not-undoable`; Alice undoing Bob's call and
//! another workspace undoing it both answer like an unknown id and are recorded
//! (`access.denied`); an undo the upstream answers 500 is recorded (`tool.undone`,
//! `upstream_error`) and answered `502 undo-failed`, and a retry succeeds; past the window
//! (the service's clock moved, never slept) is `409 undo-window-closed`. The undo events are
//! on the call's own aggregate, by who undid it.

use std::sync::atomic::{AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::response::IntoResponse;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::end_user;
use crate::harness::eventually;
use crate::support::{Deployment, Hit, Stack, TestClock, Upstream, BASE_ENV, NO_RATE_LIMIT};

pub(crate) async fn call(
    dep: &Deployment,
    bearer: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = reqwest::Client::new()
        .request(method, dep.svc.url(path))
        .bearer_auth(bearer)
        .header("Authledger-Workspace", dep.workspace.as_str());
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.expect(path);
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

pub(crate) async fn created(dep: &Deployment, path: &str, body: Value) -> Value {
    let (s, v) = call(dep, &dep.admin, Method::POST, path, Some(body)).await;
    assert!(s.is_success(), "{path}: {s} {v}");
    v
}

/// A recording upstream like a calendar and a chat service: creating answers with new ids
/// (numbered in the order of creation);
/// deleting answers `fail_with` when set (else 204).
pub(crate) struct Calendar {
    pub upstream: Upstream,
    pub fail_with: Arc<AtomicU16>,
    /// How long deleting takes, in milliseconds.
    pub slow_ms: Arc<AtomicU64>,
}

pub(crate) async fn calendar() -> Calendar {
    let fail_with = Arc::new(AtomicU16::new(0));
    let slow_ms = Arc::new(AtomicU64::new(0));
    let made = Arc::new(AtomicUsize::new(0));
    let (fail, slow) = (fail_with.clone(), slow_ms.clone());
    let upstream = Upstream::start(move |hit: Hit| {
        let (fail, made, slow) = (fail.clone(), made.clone(), slow.clone());
        async move {
            let next = || made.fetch_add(1, Ordering::SeqCst) + 1;
            match (hit.method.as_str(), hit.path.as_str()) {
                ("POST", p) if p.ends_with("/events") => {
                    let n = next();
                    axum::Json(json!({ "id": format!("ev-{n}"), "status": "confirmed" }))
                        .into_response()
                }
                ("POST", "/chat.postMessage") => {
                    let n = next();
                    axum::Json(
                        json!({ "ok": true, "channel": "C0CHAN", "ts": format!("1700.{n}") }),
                    )
                    .into_response()
                }
                ("POST", "/ping") => axum::Json(json!({ "pong": true })).into_response(),
                _ => match fail.load(Ordering::SeqCst) {
                    _ if slow.load(Ordering::SeqCst) > 0 => {
                        let wait = slow.load(Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(wait)).await;
                        StatusCode::NO_CONTENT.into_response()
                    }
                    0 => StatusCode::NO_CONTENT.into_response(),
                    code => (
                        StatusCode::from_u16(code).expect("status"),
                        axum::Json(json!({ "error": "try later" })),
                    )
                        .into_response(),
                },
            }
        }
    })
    .await;
    Calendar {
        upstream,
        fail_with,
        slow_ms,
    }
}

/// The workspace's tools on `base_url`: two with an undo, one without.
pub(crate) fn tools(base_url: &str) -> Vec<Value> {
    let object = |props: Value, required: Value| json!({ "type": "object", "additionalProperties": false, "properties": props, "required": required });
    vec![
        json!({ "name": "custom.create_event", "provider": "custom",
            "description": "Creates a calendar event.", "method": "POST", "base_url": base_url,
            "path": "/calendars/{calendarId}/events", "risk": "write",
            "parameters": object(json!({ "calendarId": { "type": "string" }, "summary": { "type": "string" } }), json!(["calendarId"])),
            "undo": { "method": "DELETE", "path": "/calendars/{calendarId}/events/{response.id}" } }),
        json!({ "name": "custom.post_message", "provider": "custom",
            "description": "Posts a chat message.", "method": "POST", "base_url": base_url,
            "path": "/chat.postMessage", "risk": "write",
            "parameters": object(json!({ "channel": { "type": "string" }, "text": { "type": "string" } }), json!(["channel", "text"])),
            "undo": { "method": "POST", "path": "/chat.delete",
                      "body": { "channel": "{response.channel}", "ts": "{response.ts}", "as_user": true },
                      "window_seconds": 3600 } }),
        json!({ "name": "custom.ping", "provider": "custom", "description": "Pings.",
            "method": "POST", "base_url": base_url, "path": "/ping", "risk": "write",
            "parameters": object(json!({}), json!([])) }),
    ]
}

/// The workspace's identity provider (EdDSA JWTs) and a JWT maker for its users.
pub(crate) async fn identity_provider(dep: &Deployment) -> impl Fn(&str) -> String {
    let idp = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    let jwk = json!({ "kty": "OKP", "kid": "idp-1", "crv": "Ed25519", "alg": "EdDSA",
        "x": B64URL.encode(idp.verifying_key().as_bytes()) });
    let jwks_url = end_user::serve_jwks(json!({ "keys": [jwk] })).await;
    let (s, v) = call(
        dep,
        &dep.admin,
        Method::PUT,
        "/v1/workspace/identity-provider",
        Some(json!({ "issuer": end_user::ISSUER, "audience": end_user::AUDIENCE, "jwks_url": jwks_url })),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let key = {
        use ed25519_dalek::pkcs8::EncodePrivateKey as _;
        EncodingKey::from_ed_der(idp.to_pkcs8_der().expect("der").as_bytes())
    };
    move |user: &str| {
        end_user::token(
            Algorithm::EdDSA,
            "idp-1",
            &key,
            &end_user::claims(user, end_user::ISSUER, end_user::AUDIENCE, 300),
        )
    }
}

/// An API-key service with a connection per user (`<user>-calendar-key-0001`), the tools,
/// and an agent key: (connections by user, agent key).
pub(crate) async fn workspace_with(
    dep: &Deployment,
    base_url: &str,
    users: &[&str],
) -> (Vec<String>, String) {
    let config = created(
        dep,
        "/v1/auth-configs",
        json!({ "name": "Calendar API", "provider": "custom", "auth_type": "api_key",
            "api_key": { "key_name": "X-Api-Key", "location": "header", "prefix": null } }),
    )
    .await;
    let config = config["id"].as_str().expect("id").to_string();
    let mut connections = Vec::new();
    for user in users {
        let body = json!({ "auth_config_id": config, "user_id": user,
            "credentials": { "api_key": format!("{user}-calendar-key-0001") } });
        let c = created(dep, "/v1/connections", body).await;
        connections.push(c["id"].as_str().expect("id").to_string());
    }
    for tool in tools(base_url) {
        created(dep, "/v1/tools", tool).await;
    }
    let key = created(
        dep,
        "/v1/api-keys",
        json!({ "name": "agent", "role": "agent" }),
    )
    .await;
    (connections, key["key"].as_str().expect("key").to_string())
}

/// The agent's call; its `tool_call_id`.
pub(crate) async fn run(
    dep: &Deployment,
    agent: &str,
    connection: &str,
    tool: &str,
    args: Value,
) -> String {
    let body = json!({ "tool": tool, "connection_id": connection, "arguments": args });
    let (s, v) = call(dep, agent, Method::POST, "/v1/tools/execute", Some(body)).await;
    assert_eq!(s, StatusCode::OK, "{tool}: {v}");
    v["tool_call_id"]
        .as_str()
        .expect("tool_call_id")
        .to_string()
}

async fn undo(dep: &Deployment, bearer: &str, id: &str) -> (StatusCode, Value) {
    let path = format!("/v1/tool-calls/{id}/undo");
    call(dep, bearer, Method::POST, &path, None).await
}

fn expect(answer: &(StatusCode, Value), status: StatusCode, problem: &str) {
    assert_eq!(answer.0, status, "{}", answer.1);
    assert_eq!(
        answer.1["type"],
        format!("https://authledger.dev/problems/{problem}"),
        "{}",
        answer.1
    );
}

async fn audit(dep: &Deployment, kind: &str) -> Vec<Value> {
    let path = format!("/v1/audit/events?kind={kind}&limit=200");
    let (s, v) = call(dep, &dep.admin, Method::GET, &path, None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["items"].as_array().cloned().unwrap_or_default()
}

async fn flow(stack: Stack) {
    let clock = TestClock::new();
    let envs: Vec<(&str, &str)> = [BASE_ENV, NO_RATE_LIMIT, &[clock.env()]].concat();
    let dep = Deployment::start(stack, &envs).await;
    let jwt = identity_provider(&dep).await;
    let cal = calendar().await;
    let (connections, agent) =
        workspace_with(&dep, &cal.upstream.base_url, &["alice", "bob"]).await;
    let (alices, bobs) = (connections[0].as_str(), connections[1].as_str());
    let developer = created(
        &dep,
        "/v1/api-keys",
        json!({ "name": "dev", "role": "developer" }),
    )
    .await["key"]
        .as_str()
        .expect("key")
        .to_string();

    // Alice undoes the event an agent created for her: exactly the compensating request.
    let made = run(
        &dep,
        &agent,
        alices,
        "custom.create_event",
        json!({ "calendarId": "team cal", "summary": "Sync" }),
    )
    .await;
    let answer = undo(&dep, &jwt("alice"), &made).await;
    assert_eq!(answer.0, StatusCode::OK, "{}", answer.1);
    assert_eq!(
        (
            answer.1["undone"].clone(),
            answer.1["status"].clone(),
            answer.1["tool_call_id"].clone()
        ),
        (json!(true), json!(204), json!(made))
    );
    let deletes: Vec<Hit> = cal
        .upstream
        .hits()
        .into_iter()
        .filter(|h| h.method == "DELETE")
        .collect();
    assert_eq!(deletes.len(), 1, "{deletes:?}");
    assert_eq!(deletes[0].path, "/calendars/team%20cal/events/ev-1");
    assert_eq!(deletes[0].header("x-api-key"), ["alice-calendar-key-0001"]);
    assert!(deletes[0].body.is_empty() && deletes[0].query.is_empty());

    // Only once.
    let hits = cal.upstream.hits().len();
    expect(
        &undo(&dep, &dep.admin, &made).await,
        StatusCode::CONFLICT,
        "already-undone",
    );
    expect(
        &undo(&dep, &jwt("alice"), &made).await,
        StatusCode::CONFLICT,
        "already-undone",
    );
    assert_eq!(cal.upstream.hits().len(), hits);

    // The Slack-like undo: its body from the answer, sent with the credential (a developer).
    let posted = run(
        &dep,
        &agent,
        alices,
        "custom.post_message",
        json!({ "channel": "#general", "text": "hello" }),
    )
    .await;
    let answer = undo(&dep, &developer, &posted).await;
    assert_eq!(answer.0, StatusCode::OK, "{}", answer.1);
    let deleted = cal.upstream.hits_to("/chat.delete");
    assert_eq!(deleted.len(), 1);
    assert_eq!(deleted[0].method, "POST");
    let body: Value = serde_json::from_str(&deleted[0].body).expect("json body");
    assert_eq!(
        body,
        json!({ "channel": "C0CHAN", "ts": "1700.2", "as_user": true })
    );
    assert_eq!(deleted[0].header("x-api-key"), ["alice-calendar-key-0001"]);
    assert_eq!(deleted[0].header("content-type"), ["application/json"]);

    // A workspace tool's undo is checked like the rest of its definition.
    let mut bad = tools(&cal.upstream.base_url)[0].clone();
    bad["name"] = json!("custom.bad_undo");
    bad["undo"] = json!({ "method": "DELETE", "path": "/calendars/{nope}/events/{response.id}" });
    let (s, v) = call(&dep, &dep.admin, Method::POST, "/v1/tools", Some(bad)).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(v.to_string().contains("undo"), "{v}");

    // A tool without an undo; an unknown id.
    let pinged = run(&dep, &agent, alices, "custom.ping", json!({})).await;
    expect(
        &undo(&dep, &dep.admin, &pinged).await,
        StatusCode::CONFLICT,
        "not-undoable",
    );
    expect(
        &undo(&dep, &dep.admin, "0190c0de-0000-7000-8000-000000000000").await,
        StatusCode::NOT_FOUND,
        "not-found",
    );

    // Bob's call: not Alice's to undo, nor another workspace's; both like an unknown id.
    let bobs_event = run(
        &dep,
        &agent,
        bobs,
        "custom.create_event",
        json!({ "calendarId": "primary" }),
    )
    .await;
    let hits = cal.upstream.hits().len();
    let as_alice = undo(&dep, &jwt("alice"), &bobs_event).await;
    expect(&as_alice, StatusCode::NOT_FOUND, "not-found");
    let unknown = undo(&dep, &jwt("alice"), "0190c0de-0000-7000-8000-000000000001").await;
    assert_eq!(
        as_alice.1, unknown.1,
        "Bob's call told apart from an unknown one"
    );
    let elsewhere = dep.other_workspace("Elsewhere").await;
    let path = format!("/v1/tool-calls/{bobs_event}/undo");
    let r = reqwest::Client::new()
        .post(dep.svc.url(&path))
        .bearer_auth(&elsewhere)
        .send()
        .await
        .expect("undo");
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(cal.upstream.hits().len(), hits, "nothing sent");
    eventually(Duration::from_secs(10), "the refusals recorded", || async {
        let denied = audit(&dep, "access.denied").await;
        denied
            .iter()
            .any(|e| e["reason"] == "other_user" && e["actor"]["id"] == "alice")
    })
    .await;
    // The other workspace's probe is recorded in its own workspace.
    eventually(Duration::from_secs(10), "the probe recorded", || async {
        let (s, v) = call(
            &dep,
            &elsewhere,
            Method::GET,
            "/v1/audit/events?kind=access.denied&limit=200",
            None,
        )
        .await;
        s == StatusCode::OK
            && v["items"]
                .as_array()
                .is_some_and(|items| items.iter().any(|e| e["reason"] == "other_workspace"))
    })
    .await;

    // A failed undo is recorded with the upstream's status, and may be tried again.
    cal.fail_with.store(500, Ordering::SeqCst);
    let failed = undo(&dep, &developer, &bobs_event).await;
    expect(&failed, StatusCode::BAD_GATEWAY, "undo-failed");
    assert_eq!(failed.1["upstream_status"], 500, "{}", failed.1);
    assert_eq!(failed.1["tool_call_id"], json!(bobs_event));
    cal.fail_with.store(0, Ordering::SeqCst);
    let retried = undo(&dep, &jwt("bob"), &bobs_event).await;
    assert_eq!(retried.0, StatusCode::OK, "{}", retried.1);
    let to_bobs = cal.upstream.hits_to("/calendars/primary/events/ev-3");
    assert!(to_bobs.len() >= 2, "{to_bobs:?}");
    assert!(to_bobs
        .iter()
        .all(|h| h.header("x-api-key") == ["bob-calendar-key-0001"]));

    // Past the window: the service's clock moves a day and a minute.
    let late = run(
        &dep,
        &agent,
        alices,
        "custom.create_event",
        json!({ "calendarId": "primary" }),
    )
    .await;
    let quick = run(
        &dep,
        &agent,
        alices,
        "custom.post_message",
        json!({ "channel": "#general", "text": "soon gone" }),
    )
    .await;
    clock.advance(Duration::from_secs(3600));
    expect(
        &undo(&dep, &dep.admin, &quick).await,
        StatusCode::CONFLICT,
        "undo-window-closed",
    );
    clock.advance(Duration::from_secs(23 * 3600 + 60));
    let hits = cal.upstream.hits().len();
    expect(
        &undo(&dep, &dep.admin, &late).await,
        StatusCode::CONFLICT,
        "undo-window-closed",
    );
    assert_eq!(cal.upstream.hits().len(), hits);

    // On the record: each undo on its call's aggregate, by who asked, with its outcome.
    let requested = audit(&dep, "tool.undo_requested").await;
    let undone = audit(&dep, "tool.undone").await;
    let on = |events: &[Value], id: &str| -> Vec<Value> {
        events
            .iter()
            .filter(|e| e["aggregate"]["type"] == "tool_call" && e["aggregate"]["id"] == id)
            .cloned()
            .collect()
    };
    let mine = on(&requested, &made);
    assert_eq!(mine.len(), 1, "{requested:?}");
    assert_eq!(
        (
            mine[0]["actor"]["type"].as_str(),
            mine[0]["actor"]["id"].as_str()
        ),
        (Some("user"), Some("alice"))
    );
    assert_eq!(mine[0]["user_id"], "alice");
    assert_eq!(on(&undone, &made)[0]["outcome"], "success");
    let bobs_outcomes: Vec<Value> = on(&undone, &bobs_event)
        .iter()
        .map(|e| e["outcome"].clone())
        .collect();
    let mut sorted = bobs_outcomes.clone();
    sorted.sort_by_key(|v| v.to_string());
    assert_eq!(
        sorted,
        [json!("success"), json!("upstream_error")],
        "{bobs_outcomes:?}"
    );
    for id in [&pinged, &late, &quick] {
        assert!(
            on(&requested, id).is_empty(),
            "a refused undo wrote nothing"
        );
    }
}

/// Two instances asked at once to undo one call (the upstream slow to answer): one sends
/// the compensating request, the other is refused; the upstream receives it once.
#[tokio::test(flavor = "multi_thread")]
async fn two_instances_undo_a_call_once() {
    let envs: Vec<(&str, &str)> = [BASE_ENV, NO_RATE_LIMIT].concat();
    let dep = Deployment::start_instances(Stack::JetStreamPg, 2, &envs).await;
    let cal = calendar().await;
    let (connections, agent) = workspace_with(&dep, &cal.upstream.base_url, &["alice"]).await;
    cal.slow_ms.store(300, Ordering::SeqCst);
    for round in 0..3 {
        let made = run(
            &dep,
            &agent,
            &connections[0],
            "custom.create_event",
            json!({ "calendarId": "primary" }),
        )
        .await;
        // The call's outcome is appended right after its answer; until it is in the log,
        // another instance refuses the undo as `call-not-completed` (a race of its own).
        eventually(
            Duration::from_secs(15),
            "the call's tool.completed",
            || async {
                audit(&dep, "tool.completed")
                    .await
                    .iter()
                    .any(|e| e["aggregate"]["id"] == made.as_str())
            },
        )
        .await;
        let path = format!("/v1/tool-calls/{made}/undo");
        let ask = |i: usize| {
            let url = dep.instance(i).url(&path);
            let admin = dep.admin.clone();
            async move {
                let r = reqwest::Client::new()
                    .post(url)
                    .bearer_auth(admin)
                    .send()
                    .await
                    .expect("undo");
                let status = r.status();
                (status, r.json::<Value>().await.unwrap_or(Value::Null))
            }
        };
        let (a, b) = tokio::join!(ask(0), ask(1));
        let mut statuses = [a.0, b.0];
        statuses.sort();
        assert_eq!(
            statuses,
            [StatusCode::OK, StatusCode::CONFLICT],
            "round {round}: {a:?} {b:?}"
        );
        let refused = if a.0 == StatusCode::CONFLICT {
            &a.1
        } else {
            &b.1
        };
        let kind = refused["type"].as_str().unwrap_or_default();
        assert!(
            kind.ends_with("/undo-in-progress") || kind.ends_with("/already-undone"),
            "{refused}"
        );
        let sent = cal
            .upstream
            .hits_to(&format!("/calendars/primary/events/ev-{}", round + 1));
        assert_eq!(sent.len(), 1, "round {round}: {sent:?}");
    }
}

/// An undo asked right after the call's answer: on the instance that made the call it
/// waits for the call's `tool.completed` and undoes; on another instance, before the
/// outcome is in the log, it is refused as `call-not-completed` (never `not-undoable`), and
/// succeeds once it is.
#[tokio::test(flavor = "multi_thread")]
async fn an_undo_right_after_the_answer_waits_for_the_outcome() {
    let envs: Vec<(&str, &str)> = [BASE_ENV, NO_RATE_LIMIT].concat();
    let dep = Deployment::start_instances(Stack::JetStreamPg, 2, &envs).await;
    let cal = calendar().await;
    let (connections, agent) = workspace_with(&dep, &cal.upstream.base_url, &["alice"]).await;
    let create = || {
        run(
            &dep,
            &agent,
            &connections[0],
            "custom.create_event",
            json!({ "calendarId": "primary" }),
        )
    };
    let made = create().await;
    expect_undone(undo(&dep, &dep.admin, &made).await);

    let made = create().await;
    let path = format!("/v1/tool-calls/{made}/undo");
    let http = reqwest::Client::new();
    let elsewhere = http
        .post(dep.instance(1).url(&path))
        .bearer_auth(&dep.admin)
        .send()
        .await
        .expect("undo");
    let status = elsewhere.status();
    let answer: Value = elsewhere.json().await.unwrap_or(Value::Null);
    if status != StatusCode::OK {
        expect(
            &(status, answer),
            StatusCode::CONFLICT,
            "call-not-completed",
        );
        eventually(
            Duration::from_secs(15),
            "the call's tool.completed",
            || async {
                audit(&dep, "tool.completed")
                    .await
                    .iter()
                    .any(|e| e["aggregate"]["id"] == made.as_str())
            },
        )
        .await;
        let r = http
            .post(dep.instance(1).url(&path))
            .bearer_auth(&dep.admin)
            .send()
            .await
            .expect("undo");
        assert_eq!(r.status(), StatusCode::OK);
    }
}

fn expect_undone(answer: (StatusCode, Value)) {
    assert_eq!(answer.0, StatusCode::OK, "{}", answer.1);
}

#[tokio::test(flavor = "multi_thread")]
async fn undo_embedded() {
    flow(Stack::Embedded).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn undo_jetstream_pg() {
    flow(Stack::JetStreamPg).await;
}

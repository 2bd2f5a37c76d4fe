//! A gateway tool call costs one flush before its answer (issue 19, item 3): the answer
//! waits for `tool.requested` to be durable, and its `Authledger-Position` covers it;
//! `tool.completed` follows in the log right after. A `serve` killed between the two leaves
//! the call requested and never completed: once restarted with its clock past the upstream
//! timeout, recovery completes it with outcome `unknown` and `recovered: true`, exactly once
//! (also when two instances recover it at the same time), and the log still verifies.

use std::time::Duration;

use axum::response::IntoResponse as _;
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

use crate::harness::{eventually, Service};
use crate::idempotency::Env;
use crate::support::{Api as _, Hit, Reply, Stack, TestClock, Upstream, BASE_ENV, NO_RATE_LIMIT};

const WAIT: Duration = Duration::from_secs(30);
/// Further than any call may run (the upstream timeout times its attempts, and room for
/// the completion's own tries).
const PAST_EVERY_ATTEMPT: Duration = Duration::from_secs(3600);

fn envs(clock: &TestClock) -> Vec<(&str, &str)> {
    [BASE_ENV, NO_RATE_LIMIT, &[clock.env()]].concat()
}

async fn execute(http: &Client, svc: &Service, agent: &str, conn: &str) -> Reply {
    Reply::of(
        http.post(svc.url("/v1/tools/execute"))
            .bearer_auth(agent)
            .json(&json!({ "tool": "custom.send_email", "connection_id": conn,
                "arguments": { "to": "bob@example.com" } })),
    )
    .await
}

/// The `tool.` events of the workspace once `done` holds, oldest first.
async fn tool_events(env: &Env, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    env.audit_events_until("kind=tool.", what, WAIT, |items| done(&only_calls(items)))
        .await
        .into_iter()
        .filter(|e| e["kind"] != "tool.defined")
        .collect()
}

fn only_calls(items: &[Value]) -> Vec<Value> {
    items
        .iter()
        .filter(|e| e["kind"] != "tool.defined")
        .cloned()
        .collect()
}

fn completed(items: &[Value]) -> Vec<&Value> {
    items
        .iter()
        .filter(|e| e["kind"] == "tool.completed")
        .collect()
}

/// The payload of event `id` as signed.
async fn payload(env: &Env, id: &Value) -> Value {
    let id = id.as_str().expect("event id");
    let r = env
        .get(&env.d.admin, &format!("/v1/audit/events/{id}"))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body["body"]["payload"].clone()
}

async fn a_call_is_answered_and_its_completion_follows(stack: Stack) {
    let clock = TestClock::new();
    let env = Env::start_with(stack, false, &envs(&clock)).await;
    let upstream =
        Upstream::start(|_: Hit| async { axum::Json(json!({ "sent": true })).into_response() })
            .await;
    let conn = env.tool_connection(&upstream.base_url).await;
    let (_, agent) = env.key_of(&env.d.admin, "agent").await;
    let r = execute(&Client::new(), &env.d.svc, &agent, &conn).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["body"], json!({ "sent": true }), "{}", r.text);
    let call_id = r.str("tool_call_id");
    let position: u64 = r
        .headers
        .get("authledger-position")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("the answer names the position of tool.requested");

    // Read your write: the call's `tool.requested` is at (or before) the answer's position.
    let seen = env
        .get(
            &env.d.admin,
            &format!(
                "/v1/audit/events?kind=tool.requested&order=asc&limit=10&min_position={position}"
            ),
        )
        .await;
    assert_eq!(seen.status, StatusCode::OK, "{}", seen.text);
    let requested = seen.body["items"].as_array().expect("items");
    assert_eq!(requested.len(), 1, "{}", seen.text);
    assert_eq!(requested[0]["aggregate"]["id"], call_id.as_str());
    assert!(
        requested[0]["position"].as_u64().expect("position") <= position,
        "{}",
        seen.text
    );

    // `tool.completed` follows, by the service that made the call, with the outcome.
    let events = tool_events(&env, "the call's tool.completed", |items| {
        !completed(items).is_empty()
    })
    .await;
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["kind"].as_str()).collect();
    assert_eq!(kinds, ["tool.requested", "tool.completed"], "{events:#?}");
    let done = &events[1];
    assert_eq!(done["aggregate"]["id"], call_id.as_str());
    assert_eq!(done["outcome"], "success", "{done:#}");
    let payload = payload(&env, &done["event_id"]).await;
    assert_eq!(
        (
            &payload["status"],
            &payload["attempts"],
            payload.get("recovered")
        ),
        (&json!(200), &json!(1), None),
        "{payload:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_is_answered_and_its_completion_follows_embedded() {
    a_call_is_answered_and_its_completion_follows(Stack::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_is_answered_and_its_completion_follows_jetstream_pg() {
    a_call_is_answered_and_its_completion_follows(Stack::JetStreamPg).await;
}

/// An upstream that never answers: the call is in flight until the service dies.
async fn stalled_upstream() -> Upstream {
    Upstream::start(|_: Hit| async {
        std::future::pending::<()>().await;
        StatusCode::OK.into_response()
    })
    .await
}

/// Sends a call to a stalled upstream through `svc` and SIGKILLs `svc` once the upstream
/// has it (so `tool.requested` is durable and `tool.completed` never written).
async fn killed_mid_call(env: &mut Env, upstream: &Upstream) {
    let conn = env.tool_connection(&upstream.base_url).await;
    let (_, agent) = env.key_of(&env.d.admin, "agent").await;
    let call = {
        let (http, svc_url) = (Client::new(), env.d.svc.url("/v1/tools/execute"));
        let body = json!({ "tool": "custom.send_email", "connection_id": conn,
            "arguments": { "to": "bob@example.com" } });
        tokio::spawn(async move {
            http.post(svc_url)
                .bearer_auth(agent)
                .json(&body)
                .send()
                .await
        })
    };
    eventually(WAIT, "the call at the upstream", || async {
        upstream.hits_to("/send").len() == 1
    })
    .await;
    env.d.svc.child.kill().expect("SIGKILL serve");
    env.d.svc.child.wait().expect("wait");
    let cut = call.await.expect("join");
    assert!(cut.is_err(), "the killed service answered: {cut:?}");
}

/// The one recovered completion of the workspace's one call, checked as signed.
async fn recovered_once(env: &Env) {
    let events = tool_events(env, "the recovered tool.completed", |items| {
        !completed(items).is_empty()
    })
    .await;
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["kind"].as_str()).collect();
    assert_eq!(kinds, ["tool.requested", "tool.completed"], "{events:#?}");
    assert_eq!(events[0]["aggregate"]["id"], events[1]["aggregate"]["id"]);
    assert_eq!(events[1]["outcome"], "unknown", "{:#}", events[1]);
    let payload = payload(env, &events[1]["event_id"]).await;
    assert_eq!(
        (
            &payload["recovered"],
            &payload["outcome"],
            &payload["status"],
            &payload["attempts"]
        ),
        (&json!(true), &json!("unknown"), &Value::Null, &json!(0)),
        "{payload:#}"
    );
    let out = crate::support::cli(&env.d.storage, &["verify", "--json"]).await;
    let report: Value = serde_json::from_slice(&out.stdout).expect("verify report");
    assert_eq!(report["ok"], true, "{report}");
}

/// How many times `svc`'s log says its start-up recovery sweep finished.
fn start_sweeps(env: &Env, svc: &Service) -> usize {
    let port = svc.addr.rsplit(':').next().expect("port");
    let log = env.d.dir.path().join(format!("serve-{port}.err"));
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .matches("tool call recovery at start done")
        .count()
}

async fn a_service_killed_mid_call_completes_it_as_unknown_on_restart(stack: Stack) {
    let clock = TestClock::new();
    let envs = envs(&clock);
    let mut env = Env::start_with(stack, false, &envs).await;
    let upstream = stalled_upstream().await;
    killed_mid_call(&mut env, &upstream).await;

    // Restarted with its time short of the upstream timeout: an attempt of the call might
    // still be running (on another instance), so the start-up sweep leaves it open.
    env.d.restart(&envs).await;
    eventually(WAIT, "the start-up sweep", || async {
        start_sweeps(&env, &env.d.svc) == 2
    })
    .await;
    let open = tool_events(&env, "the requested call", |items| items.len() == 1).await;
    let kinds: Vec<&str> = open.iter().filter_map(|e| e["kind"].as_str()).collect();
    assert_eq!(kinds, ["tool.requested"], "{open:#?}");

    // Killed again (idle) and restarted past every attempt: completed as unknown, once.
    clock.advance(PAST_EVERY_ATTEMPT);
    env.d.restart(&envs).await;
    recovered_once(&env).await;
    assert_eq!(
        upstream.hits_to("/send").len(),
        1,
        "recovery never calls again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_killed_mid_call_completes_it_as_unknown_on_restart_embedded() {
    a_service_killed_mid_call_completes_it_as_unknown_on_restart(Stack::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_killed_mid_call_completes_it_as_unknown_on_restart_jetstream_pg() {
    a_service_killed_mid_call_completes_it_as_unknown_on_restart(Stack::JetStreamPg).await;
}

/// Two instances on one JetStream log start at once, both past every attempt of a call
/// the killed one left open: both sweep it, one completes it, and the log holds one
/// completion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_recovering_one_call_complete_it_once() {
    let clock = TestClock::new();
    let envs = envs(&clock);
    let mut env = Env::start_with(Stack::JetStreamPg, false, &envs).await;
    let mut other = env.d.second_instance(&envs).await;
    let upstream = stalled_upstream().await;
    killed_mid_call(&mut env, &upstream).await;
    let _ = other.child.kill();
    let _ = other.child.wait();
    clock.advance(PAST_EVERY_ATTEMPT);

    let port = env
        .d
        .svc
        .addr
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    let (first, second) = tokio::join!(
        Service::start_on(port, &env.d.storage, &envs, env.d.dir.path()),
        env.d.second_instance(&envs),
    );
    env.d.svc = first;
    other = second;
    eventually(WAIT, "both start-up sweeps", || async {
        start_sweeps(&env, &env.d.svc) == 2 && start_sweeps(&env, &other) == 1
    })
    .await;
    recovered_once(&env).await;
    // Both instances' projections agree: one completion, whichever instance is asked.
    let r = Reply::of(
        Client::new()
            .get(other.url("/v1/audit/events?kind=tool.completed&limit=10"))
            .bearer_auth(&env.d.admin),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.body["items"].as_array().map(Vec::len),
        Some(1),
        "{}",
        r.text
    );
}

/// The sweep the scheduler runs every minute, on two ledgers (two instances' caches) over
/// one log and a clock of the test's: a young call stays open; each sweep reads on from
/// where the last stopped; a call this instance is still completing is left to it; a call
/// past the age is completed as `unknown` once, also when two instances sweep it at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweeps_read_on_and_complete_each_old_call_once() {
    use std::sync::Arc;

    use authledger::clock::ManualClock;
    use authledger::domain::tool_call::{ToolCall, ToolCallCommand};
    use authledger::domain::Event;
    use authledger::gateway::recover::{Recovery, Swept};
    use authledger::ledger::envelope::open_envelope;
    use authledger::ledger::sqlite_log::SqliteEventLog;
    use authledger::ledger::{Actor, EventLog, Ledger, Signer};
    use authledger::metrics::Metrics;

    let dir = tempfile::tempdir().expect("dir");
    let log: Arc<dyn EventLog> = Arc::new(
        SqliteEventLog::open(&dir.path().join("ledger.db"))
            .await
            .expect("log"),
    );
    let t0 = time::macros::datetime!(2026-01-01 12:00 UTC);
    let clock = Arc::new(ManualClock::new(t0));
    let instance = || {
        Ledger::new(
            log.clone(),
            Signer::from_seed(&[7; 32]),
            clock.clone(),
            Metrics::new(),
        )
    };
    let (a, b) = (instance(), instance());
    let Some(Event::ToolRequested(requested)) = Event::examples()
        .into_iter()
        .find(|e| matches!(e, Event::ToolRequested(_)))
    else {
        panic!("a tool.requested example");
    };
    let agent = Actor::system("agent");
    let request = |id: &'static str| {
        let (a, requested, agent) = (&a, requested.clone(), agent.clone());
        async move {
            a.create::<ToolCall>("ws1", id, &agent, &ToolCallCommand::Request(requested))
                .await
                .expect("tool.requested");
        }
    };
    let completions_of = |id: &'static str| {
        let log = log.clone();
        async move {
            log.read_from(1, 1000)
                .await
                .expect("read")
                .iter()
                .map(|e| open_envelope(&e.envelope).expect("envelope").body)
                .filter(|b| b.kind == "tool.completed" && b.aggregate_id == id)
                .map(|b| b.payload)
                .collect::<Vec<_>>()
        }
    };
    let age = Duration::from_secs(120);
    let minutes = |m: i64| t0 + time::Duration::minutes(m);
    let never = |_: &str| false;

    request("call-1").await;
    let (mut ra, mut rb) = (Recovery::new(), Recovery::new());
    let young = Swept {
        recovered: 0,
        completed_elsewhere: 0,
        still_open: 1,
    };
    assert_eq!(
        ra.sweep_on(&a, minutes(1), age, never)
            .await
            .expect("sweep"),
        young
    );
    assert_eq!(
        rb.sweep_on(&b, minutes(1), age, never)
            .await
            .expect("sweep"),
        young
    );

    // Ten minutes on, a new call: the next sweep reads it, and leaves it (young).
    clock.advance(time::Duration::minutes(10));
    request("call-2").await;
    let completing_it = |id: &str| id == "call-1";
    assert_eq!(
        ra.sweep_on(&a, minutes(11), age, completing_it)
            .await
            .expect("sweep"),
        Swept {
            recovered: 0,
            completed_elsewhere: 0,
            still_open: 2
        },
        "a call this instance is still completing is left to it"
    );
    assert_eq!(
        ra.sweep_on(&a, minutes(11), age, never)
            .await
            .expect("sweep"),
        Swept {
            recovered: 1,
            completed_elsewhere: 0,
            still_open: 1
        }
    );
    let done = completions_of("call-1").await;
    assert_eq!(done.len(), 1, "{done:?}");
    assert_eq!(
        (&done[0]["outcome"], &done[0]["recovered"]),
        (&json!("unknown"), &json!(true))
    );
    // The other instance reads the completion on and has nothing to do.
    assert_eq!(
        rb.sweep_on(&b, minutes(11), age, never)
            .await
            .expect("sweep"),
        Swept {
            recovered: 0,
            completed_elsewhere: 0,
            still_open: 1
        }
    );

    // Both instances sweep the old call-2 at once: one completion.
    let (x, y) = tokio::join!(
        ra.sweep_on(&a, minutes(20), age, never),
        rb.sweep_on(&b, minutes(20), age, never),
    );
    let (x, y) = (x.expect("sweep"), y.expect("sweep"));
    assert_eq!(x.recovered + y.recovered, 1, "{x:?} {y:?}");
    assert_eq!(x.still_open + y.still_open, 0, "{x:?} {y:?}");
    assert_eq!(completions_of("call-2").await.len(), 1);
    assert_eq!(completions_of("call-1").await.len(), 1);
}

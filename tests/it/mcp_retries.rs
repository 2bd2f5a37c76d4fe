//! MCP `tools/call` retried within a session (issue 21): rmcp's own Streamable HTTP client
//! keeps the session it is given and calls through it; then JSON-RPC messages as a retrying
//! client sends them (the test chooses each message's id and session): `initialize` opens a session (`Mcp-Session-Id`, recorded as
//! `mcp.session_started`); a call to a slow upstream whose client gave up, retried with the
//! same id in the same session (on the other instance on JetStream + PostgreSQL), is refused
//! while the first runs and then answered with the first call's result; the upstream is
//! called once. Another call with the id is refused; another session's same id is its own
//! call; an unknown session is 404, another caller's too (and recorded).

use std::time::{Duration, Instant};

use reqwest::{Client, StatusCode};
use rmcp::model::CallToolRequestParams;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::ServiceExt as _;
use serde_json::{json, Value};

use crate::harness::Service;
use crate::idempotency::{slow_upstream, Env};
use crate::support::{Api as _, Reply, Stack, BASE_ENV, NO_RATE_LIMIT};

const TOOL: &str = "custom.send_email";

/// One JSON-RPC message posted to `svc`'s `/mcp` with `bearer` in `session`, as any
/// Streamable HTTP client sends it, through `http` (its timeout is the client's patience):
/// the answer's JSON (`null` for 202) and the session it names (`Mcp-Session-Id`).
async fn post(
    http: &Client,
    svc: &Service,
    bearer: &str,
    session: Option<&str>,
    message: Value,
) -> Result<(Value, Option<String>), String> {
    let mut req = http
        .post(svc.url("/mcp"))
        .bearer_auth(bearer)
        .header("accept", "application/json, text/event-stream")
        .json(&message);
    if let Some(s) = session {
        req = req.header("mcp-session-id", s);
    }
    let r = req.send().await.map_err(|e| match e.is_timeout() {
        true => "timeout".to_string(),
        false => e.to_string(),
    })?;
    let status = r.status();
    let session = r
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let text = r.text().await.map_err(|e| e.to_string())?;
    match status {
        StatusCode::ACCEPTED => Ok((Value::Null, session)),
        StatusCode::OK => Ok((
            serde_json::from_str(&text).map_err(|e| e.to_string())?,
            session,
        )),
        other => Err(format!("{other}: {text}")),
    }
}

/// A session for `bearer` on `svc`: initialize, then `notifications/initialized`.
async fn session(http: &Client, svc: &Service, bearer: &str) -> String {
    let init = json!({ "jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": { "name": "retrying-agent", "version": "1.0" } } });
    let (answer, session) = post(http, svc, bearer, None, init)
        .await
        .expect("initialize");
    assert!(answer.get("result").is_some(), "{answer}");
    let session = session.expect("initialize answers Mcp-Session-Id");
    let done = json!({ "jsonrpc": "2.0", "method": "notifications/initialized" });
    post(http, svc, bearer, Some(&session), done)
        .await
        .expect("initialized");
    session
}

fn call(id: u64, to: &str, conn: &str) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {
        "name": TOOL, "arguments": { "to": to, "connection_id": conn } } })
}

/// The tool result's JSON (`tool_call_id`, `status`, `body`, ...) of a `tools/call` answer.
fn result_of(answer: &Value) -> Value {
    let text = answer["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("a tool result: {answer}"));
    serde_json::from_str(text).expect("result JSON")
}

/// The problem type a JSON-RPC error answer carries in its data.
fn refused_as(answer: &Value) -> String {
    let t = answer["error"]["data"]["type"].as_str().unwrap_or_default();
    t.rsplit('/').next().unwrap_or_default().to_string()
}

async fn a_retried_mcp_call_runs_once(stack: Stack, two_instances: bool) {
    let env = Env::start_with(stack, two_instances, &[BASE_ENV, NO_RATE_LIMIT].concat()).await;
    let upstream = slow_upstream().await;
    let conn = env.tool_connection(&upstream.base_url).await;
    let (_, agent) = env.key_of(env.admin(), "agent").await;
    let (_, other_agent) = env.key_of(env.admin(), "agent").await;
    let http = Client::new();
    let first_svc = &env.d.svc;
    let retry_svc = env.retry_svc();

    // rmcp's own client keeps the session it is given and calls through it, on one
    // instance (it knows one URL).
    let config = StreamableHttpClientTransportConfig::with_uri(first_svc.url("/mcp"))
        .auth_header(agent.as_str());
    let client =
        ().serve(StreamableHttpClientTransport::from_config(config))
            .await
            .expect("rmcp initialize");
    let tools = client.list_all_tools().await.expect("tools/list");
    assert!(tools.iter().any(|t| t.name == TOOL), "{tools:?}");
    let mut arguments = serde_json::Map::new();
    arguments.insert("to".into(), json!("alice"));
    arguments.insert("connection_id".into(), json!(conn));
    let done = client
        .call_tool(CallToolRequestParams::new(TOOL).with_arguments(arguments))
        .await
        .expect("tools/call in the session");
    assert_ne!(done.is_error, Some(true), "{done:?}");
    client.cancel().await.expect("end the client");
    assert_eq!(upstream.hits_to("/send").len(), 1);

    let s1 = session(&http, first_svc, &agent).await;
    // The session holds on the other instance too (it lives in the log).
    let list = json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/list" });
    let (listed, _) = post(&http, retry_svc, &agent, Some(&s1), list)
        .await
        .expect("tools/list");
    assert!(listed["result"]["tools"].is_array(), "{listed}");

    // The agent's client gives up on a slow call...
    let impatient = Client::builder()
        .timeout(Duration::from_secs(1))
        .build()
        .expect("client");
    let gave_up = post(
        &impatient,
        first_svc,
        &agent,
        Some(&s1),
        call(7, "bob", &conn),
    )
    .await;
    assert_eq!(
        gave_up.as_ref().err().map(String::as_str),
        Some("timeout"),
        "the call should outlast the client: {gave_up:?}"
    );
    // ...and retries it with the same id in the same session: refused while it runs.
    let (busy, _) = post(&http, retry_svc, &agent, Some(&s1), call(7, "bob", &conn))
        .await
        .expect("retry");
    assert_eq!(refused_as(&busy), "idempotency-key-in-use", "{busy}");
    let wait = busy["error"]["data"]["retry_after"]
        .as_u64()
        .expect("retry_after");
    assert!((1..=5).contains(&wait), "retry_after {wait}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let answer = loop {
        let (a, _) = post(&http, retry_svc, &agent, Some(&s1), call(7, "bob", &conn))
            .await
            .expect("retry");
        if refused_as(&a) != "idempotency-key-in-use" {
            break a;
        }
        assert!(Instant::now() < deadline, "still running: {a}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let first = result_of(&answer);
    assert_eq!(first["body"], json!({ "sent": true }), "{answer}");
    let tool_call_id = first["tool_call_id"].as_str().expect("tool_call_id");
    // Once more, on the first instance: the same result.
    let (again, _) = post(&http, first_svc, &agent, Some(&s1), call(7, "bob", &conn))
        .await
        .expect("again");
    assert_eq!(result_of(&again)["tool_call_id"], tool_call_id, "{again}");
    assert_eq!(
        upstream.hits_to("/send").len(),
        2,
        "the email went out once"
    );

    // Another call with the id in this session: refused, not run.
    let (reused, _) = post(&http, retry_svc, &agent, Some(&s1), call(7, "carol", &conn))
        .await
        .expect("reused");
    assert_eq!(refused_as(&reused), "mcp-request-id-reused", "{reused}");
    assert_eq!(reused["error"]["code"], json!(-32600), "{reused}");
    // A string id "7" is another id: it runs.
    let mut as_string = call(7, "dave", &conn);
    as_string["id"] = json!("7");
    let (ran, _) = post(&http, first_svc, &agent, Some(&s1), as_string)
        .await
        .expect("string id");
    assert_ne!(result_of(&ran)["tool_call_id"], tool_call_id, "{ran}");

    // Another session's id 7 is its own call.
    let s2 = session(&http, retry_svc, &agent).await;
    assert_ne!(s1, s2);
    let (own, _) = post(&http, first_svc, &agent, Some(&s2), call(7, "bob", &conn))
        .await
        .expect("other session");
    assert_ne!(result_of(&own)["tool_call_id"], tool_call_id, "{own}");
    assert_eq!(upstream.hits_to("/send").len(), 4, "one email per call");

    // An unknown session, and another caller presenting this one: 404, the latter recorded.
    for (bearer, session) in [(&agent, "not-a-session"), (&other_agent, s1.as_str())] {
        let r = Reply::of(
            http.post(first_svc.url("/mcp"))
                .bearer_auth(bearer)
                .header("mcp-session-id", session)
                .header("accept", "application/json, text/event-stream")
                .json(&call(8, "eve", &conn)),
        )
        .await;
        r.expect(StatusCode::NOT_FOUND, "mcp-session-not-found");
    }
    let denied = env
        .audit_events_until(
            "kind=access.denied",
            "the other caller's session refused",
            Duration::from_secs(15),
            |e| e.iter().any(|e| e["reason"] == "other_user"),
        )
        .await;
    assert_eq!(denied.len(), 1, "{denied:#?}");
    assert_eq!(upstream.hits_to("/send").len(), 4, "nothing ran for them");

    // The log: two sessions, each call's id claimed once.
    let sessions = env
        .audit_events_until(
            "kind=mcp.session_started",
            "the sessions",
            Duration::from_secs(15),
            |e| e.len() >= 3,
        )
        .await;
    // rmcp's and the two above.
    assert_eq!(sessions.len(), 3, "{sessions:#?}");
    let claims = env
        .audit_events_until(
            "kind=idempotency.claimed",
            "the claims",
            Duration::from_secs(15),
            |e| e.len() >= 4,
        )
        .await;
    // rmcp's call, id 7 in the first session, "7" there, 7 in the second.
    assert_eq!(claims.len(), 4, "{claims:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_mcp_call_retried_on_the_other_instance_runs_once() {
    a_retried_mcp_call_runs_once(Stack::JetStreamPg, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mcp_call_retried_while_it_runs_runs_once_embedded() {
    a_retried_mcp_call_runs_once(Stack::Embedded, false).await;
}

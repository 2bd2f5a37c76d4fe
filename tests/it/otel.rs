//! OpenTelemetry traces as an operator meets them: a real `serve` with
//! `OTEL_EXPORTER_OTLP_ENDPOINT` pointing at a real OTLP/HTTP receiver
//! (`otlp_receiver.py`, decoding the protobuf with the official `opentelemetry-proto`
//! package). A tool call with a W3C `traceparent` is a server span in the caller's trace,
//! its upstream receives a `traceparent` of the same trace (the client span's), and the
//! events it appended carry the trace id in their signed bodies, which `authledger verify`,
//! `tools/verifier/verify.py` and `tools/verify-export` accept; an OAuth code exchange sends
//! the callback's trace to the token endpoint. Without the variable
//! nothing is exported, no `traceparent` goes out and no event carries a trace id.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use axum::response::IntoResponse;
use base64::Engine as _;
use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};

use crate::fixtures::oauth_provider::Endpoint;
use crate::harness::{args, eventually, run_cli};
use crate::support::{
    complete_connect, data_dir, oauth_config_body, provider_for, request, Deployment, Hit, Reply,
    Stack, Upstream, BASE_ENV, NO_RATE_LIMIT, RETURN_TO,
};

/// The caller's trace and span (W3C trace context, sampled).
const TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const PARENT: &str = "b7ad6b7169203331";

/// The receiver, killed on drop; spans land in `spans` as JSON lines.
struct Receiver {
    child: Child,
    port: u16,
    spans: PathBuf,
    _dir: tempfile::TempDir,
}

impl Receiver {
    fn start() -> Receiver {
        let dir = tempfile::tempdir().expect("dir");
        let spans = dir.path().join("spans.jsonl");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/otlp_receiver.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg(&spans)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 tests/it/otlp_receiver.py (tools/test installs opentelemetry-proto)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the receiver's port");
        let port = line
            .trim()
            .strip_prefix("port ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("the receiver did not start: {line:?}"));
        Receiver {
            child,
            port,
            spans,
            _dir: dir,
        }
    }

    fn spans(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.spans)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("a span line"))
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn created(d: &Deployment, http: &Client, bearer: &str, path: &str, body: Value) -> Value {
    let r = Reply::of(request(
        http,
        &d.svc,
        bearer,
        Method::POST,
        path,
        Some(body),
    ))
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{path}: {}", r.text);
    r.body
}

/// A workspace tool at `upstream`, an api_key connection and an agent key; returns
/// (connection id, agent key).
async fn tool_setup(d: &Deployment, http: &Client, upstream: &str) -> (String, String) {
    created(
        d,
        http,
        &d.admin,
        "/v1/tools",
        json!({ "name": "custom.traced", "provider": "custom", "description": "Traced tool.",
            "method": "POST", "base_url": upstream, "path": "/traced",
            "parameters": { "type": "object" }, "required_scopes": [], "risk": "read" }),
    )
    .await;
    let config = created(
        d,
        http,
        &d.admin,
        "/v1/auth-configs",
        json!({ "name": "traced", "provider": "custom", "auth_type": "api_key",
            "api_key": { "key_name": "X-Api-Key", "location": "header", "prefix": null } }),
    )
    .await;
    let conn = created(
        d,
        http,
        &d.admin,
        "/v1/connections",
        json!({ "auth_config_id": config["id"], "user_id": "u1",
            "credentials": { "api_key": "otel-test-key" } }),
    )
    .await;
    let agent = created(
        d,
        http,
        &d.admin,
        "/v1/api-keys",
        json!({ "name": "agent", "role": "agent" }),
    )
    .await;
    (
        conn["id"].as_str().expect("id").to_string(),
        agent["key"].as_str().expect("key").to_string(),
    )
}

/// The tool call, with the caller's `traceparent`; returns the upstream's hit.
async fn traced_call(
    d: &Deployment,
    http: &Client,
    up: &Upstream,
    conn: &str,
    agent: &str,
) -> (Reply, Hit) {
    let r = Reply::of(
        request(
            http,
            &d.svc,
            agent,
            Method::POST,
            "/v1/tools/execute",
            Some(json!({ "tool": "custom.traced", "connection_id": conn, "arguments": {} })),
        )
        .header("traceparent", format!("00-{TRACE}-{PARENT}-01")),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["status"], 200, "{}", r.text);
    // `tool.completed` is appended right after the answer (read from the log, so that
    // waiting for it traces and records nothing).
    let call_id = r.str("tool_call_id");
    eventually(
        Duration::from_secs(15),
        "the call's tool.completed",
        || async {
            let dump = String::from_utf8(cli_ok(&d.storage, &["dump-log"])).expect("utf-8");
            bodies(&dump)
                .iter()
                .any(|b| b["kind"] == "tool.completed" && b["aggregate_id"] == call_id.as_str())
        },
    )
    .await;
    let hit = up
        .hits_to("/traced")
        .last()
        .cloned()
        .expect("the upstream was called");
    (r, hit)
}

/// Every signed body in the log, as `authledger dump-log` prints it.
fn bodies(dump: &str) -> Vec<Value> {
    dump.lines()
        .map(|l| {
            let line: Value = serde_json::from_str(l).expect("dump line");
            let envelope: Value =
                serde_json::from_str(line["envelope"].as_str().expect("envelope")).expect("json");
            let body = base64::engine::general_purpose::STANDARD
                .decode(envelope["payload"].as_str().expect("payload"))
                .expect("base64");
            serde_json::from_slice(&body).expect("body")
        })
        .collect()
}

fn cli_ok(storage: &[String], command: &[&str]) -> Vec<u8> {
    let out = run_cli(&[storage.to_vec(), args(command)].concat());
    assert!(
        out.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `authledger verify`, `tools/verifier/verify.py` on the dump and `tools/verify-export` on
/// this workspace's export all accept the log.
fn three_verifiers_accept(d: &Deployment, dump: &str) {
    let report: Value =
        serde_json::from_slice(&cli_ok(&d.storage, &["verify", "--json"])).expect("report");
    assert_eq!(report["ok"], true, "{report}");

    let ring: Value = serde_json::from_slice(&cli_ok(&d.storage, &["keys", "show"])).expect("ring");
    let first_key = ring["keys"][0]["public_key"].as_str().expect("pk");
    let dump_path = d.dir.path().join("otel-dump.jsonl");
    std::fs::write(&dump_path, dump).expect("write dump");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("python3")
        .arg(root.join("tools/verifier/verify.py"))
        .arg("--log")
        .arg(&dump_path)
        .args(["--trusted-key", first_key])
        .output()
        .expect("python3 tools/verifier/verify.py");
    assert!(
        out.status.success(),
        "verify.py: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let export = cli_ok(&d.storage, &["export", "--workspace", &d.workspace]);
    let export_path = d.dir.path().join("otel-export.jsonl");
    std::fs::write(&export_path, export).expect("write export");
    let out = Command::new("python3")
        .arg(root.join("tools/verify-export"))
        .arg("--ring")
        .arg(data_dir(d.dir.path()).join("keys/ring.json"))
        .arg(&export_path)
        .output()
        .expect("python3 tools/verify-export");
    assert!(
        out.status.success(),
        "verify-export: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn a_traced_tool_call_is_one_trace_from_caller_to_upstream_and_log(stack: Stack) {
    let receiver = Receiver::start();
    let endpoint = format!("http://127.0.0.1:{}", receiver.port);
    let otel = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_SERVICE_NAME", "authledger-otel-test"),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ];
    let d = Deployment::start(stack, &[BASE_ENV, NO_RATE_LIMIT, &otel].concat()).await;
    let http = Client::new();
    let up =
        Upstream::start(|_hit: Hit| async { axum::Json(json!({ "ok": true })).into_response() })
            .await;
    let (conn, agent) = tool_setup(&d, &http, &up.base_url).await;
    let (_, hit) = traced_call(&d, &http, &up, &conn, &agent).await;

    // The upstream got a traceparent of the caller's trace, from a span of ours.
    let sent = hit.header("traceparent");
    assert_eq!(sent.len(), 1, "one traceparent: {sent:?}");
    let parts: Vec<&str> = sent[0].split('-').collect();
    assert_eq!(parts.len(), 4, "{sent:?}");
    assert_eq!(
        (parts[0], parts[1], parts[3]),
        ("00", TRACE, "01"),
        "{sent:?}"
    );
    let upstream_parent = parts[2].to_string();
    assert_ne!(
        upstream_parent, PARENT,
        "the gateway's own span, not the caller's"
    );

    // The receiver decoded the spans: the request's server span, a child of the caller's
    // span and named by its route, and the upstream call's client span inside it.
    eventually(Duration::from_secs(20), "the exported spans", || {
        let spans = receiver.spans();
        let both = spans
            .iter()
            .any(|s| s["span_id"] == upstream_parent.as_str())
            && spans.iter().any(|s| s["name"] == "POST /v1/tools/execute");
        async move { both }
    })
    .await;
    // The start-up's health polls were not traced.
    assert!(
        !receiver
            .spans()
            .iter()
            .any(|s| s["name"] == "GET /healthz" || s["attributes"]["http.route"] == "/healthz"),
        "{:?}",
        receiver.spans()
    );
    let spans: Vec<Value> = receiver
        .spans()
        .into_iter()
        .filter(|s| s["trace_id"] == TRACE)
        .collect();
    let server = spans
        .iter()
        .find(|s| s["name"] == "POST /v1/tools/execute")
        .unwrap_or_else(|| panic!("a server span in the caller's trace: {spans:?}"));
    assert_eq!(server["kind"], "SPAN_KIND_SERVER", "{server}");
    assert_eq!(server["parent_span_id"], PARENT, "{server}");
    assert_eq!(server["service"], "authledger-otel-test", "{server}");
    assert_eq!(
        server["attributes"]["http.route"], "/v1/tools/execute",
        "{server}"
    );
    assert_eq!(
        server["attributes"]["http.response.status_code"], 200,
        "{server}"
    );
    let client = spans
        .iter()
        .find(|s| s["span_id"] == upstream_parent.as_str())
        .unwrap_or_else(|| panic!("the upstream call's span in the trace: {spans:?}"));
    assert_eq!(client["kind"], "SPAN_KIND_CLIENT", "{client}");
    assert_eq!(client["name"], "upstream", "{client}");
    assert_eq!(client["parent_span_id"], server["span_id"], "{client}");

    // OAuth: the callback's code exchange is a client span of the callback's trace (the
    // browser sent no traceparent: a trace of its own), and the callback's events say so.
    let provider = provider_for(&d.svc, "otel-client", "otel-secret").await;
    let config = created(
        &d,
        &http,
        &d.admin,
        "/v1/auth-configs",
        oauth_config_body(&provider, "otel-client", "otel-secret"),
    )
    .await;
    let connecting = created(
        &d,
        &http,
        &d.admin,
        "/v1/connections",
        json!({ "auth_config_id": config["id"], "user_id": "u-oauth", "redirect_url": RETURN_TO }),
    )
    .await;
    complete_connect(
        &provider,
        connecting["connect_url"].as_str().expect("connect_url"),
    )
    .await;
    let exchange = provider
        .last_request_to(Endpoint::Token)
        .expect("the code exchange");
    let sent = exchange
        .traceparent
        .expect("a traceparent at the token endpoint");
    let oauth_trace = sent.split('-').nth(1).expect("a trace id").to_string();
    assert!(oauth_trace.len() == 32 && oauth_trace != TRACE, "{sent}");

    // The events the call appended carry the trace id in their signed bodies.
    let dump = String::from_utf8(cli_ok(&d.storage, &["dump-log"])).expect("utf-8");
    let bodies = bodies(&dump);
    for kind in ["tool.requested", "tool.completed"] {
        let event = bodies
            .iter()
            .rev()
            .find(|b| b["kind"] == kind)
            .unwrap_or_else(|| panic!("a {kind} event"));
        assert_eq!(event["trace_id"], TRACE, "{event}");
    }
    for kind in ["connection.authorization_started", "connection.authorized"] {
        let event = bodies
            .iter()
            .find(|b| b["kind"] == kind && b["aggregate_id"] == connecting["id"])
            .unwrap_or_else(|| panic!("the callback's {kind}"));
        assert_eq!(event["trace_id"], oauth_trace.as_str(), "{event}");
    }
    // Events of setup requests without a traceparent are in traces of their own.
    let setup = bodies
        .iter()
        .find(|b| b["kind"] == "connection.created")
        .expect("connection.created");
    let own = setup["trace_id"].as_str().expect("a trace id of its own");
    assert!(own.len() == 32 && own != TRACE, "{setup}");
    // Bootstrap ran before `serve` (not traced): no trace id, and still valid.
    assert!(bodies[0].get("trace_id").is_none(), "{}", bodies[0]);
    // `events/v1/body.json` accepts every body as signed, and no other trace id spelling.
    for line in dump.lines() {
        let line: Value = serde_json::from_str(line).expect("dump line");
        crate::schemas::check_envelope(line["envelope"].as_str().expect("envelope").as_bytes());
    }
    let schema = crate::schemas::validator("body");
    let mut traced = bodies
        .iter()
        .rev()
        .find(|b| b["kind"] == "tool.completed")
        .cloned()
        .expect("tool.completed");
    for bad in [
        json!(TRACE.to_uppercase()),
        json!("0".repeat(32)),
        json!(&TRACE[1..]),
        json!(null),
    ] {
        traced["trace_id"] = bad.clone();
        assert!(!schema.is_valid(&traced), "body.json took trace_id {bad}");
    }
    three_verifiers_accept(&d, &dump);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_traced_tool_call_is_one_trace_embedded() {
    a_traced_tool_call_is_one_trace_from_caller_to_upstream_and_log(Stack::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_traced_tool_call_is_one_trace_jetstream_pg() {
    a_traced_tool_call_is_one_trace_from_caller_to_upstream_and_log(Stack::JetStreamPg).await;
}

/// Without an OTLP endpoint (the service name alone asks for nothing): no span context
/// exists, so no `traceparent` goes upstream and no event records a trace id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_endpoint_nothing_is_traced() {
    let env = [
        ("OTEL_SERVICE_NAME", "authledger-otel-test"),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ];
    let d = Deployment::start(Stack::Embedded, &[BASE_ENV, NO_RATE_LIMIT, &env].concat()).await;
    let http = Client::new();
    let up =
        Upstream::start(|_hit: Hit| async { axum::Json(json!({ "ok": true })).into_response() })
            .await;
    let (conn, agent) = tool_setup(&d, &http, &up.base_url).await;
    let (_, hit) = traced_call(&d, &http, &up, &conn, &agent).await;
    assert!(hit.header("traceparent").is_empty(), "{:?}", hit.headers);
    let dump = String::from_utf8(cli_ok(&d.storage, &["dump-log"])).expect("utf-8");
    let bodies = bodies(&dump);
    assert!(bodies.iter().any(|b| b["kind"] == "tool.completed"));
    for body in &bodies {
        assert!(body.get("trace_id").is_none(), "{body}");
    }
}

// ---------------------------------------------------------------------------------------------
// Lag gauges beside the other metrics (`/metrics`)
// ---------------------------------------------------------------------------------------------

/// The value of `sample` (a metric with its labels) in `/metrics`, if present.
async fn sample(d: &Deployment, http: &Client, sample: &str) -> Option<f64> {
    let r = Reply::of(request(
        http,
        &d.svc,
        &d.admin,
        Method::GET,
        "/metrics",
        None,
    ))
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.text
        .lines()
        .find_map(|l| l.strip_prefix(sample)?.trim().parse().ok())
}

/// A webhook endpoint whose receiver is down falls behind (`webhook_lag_events` counts the
/// events since the oldest it has not received), catches up to 0 once the receiver is up
/// again, and its gauge goes with it when the endpoint is deleted; the projection's lag is
/// 0 once it caught up; `promtool` accepts the names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_and_projection_lag_are_gauges() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let clock = crate::support::TestClock::new();
    let d = Deployment::start(
        Stack::Embedded,
        &[BASE_ENV, NO_RATE_LIMIT, &[clock.env()]].concat(),
    )
    .await;
    let http = Client::new();
    let down = Arc::new(AtomicBool::new(true));
    let up = {
        let down = down.clone();
        Upstream::start(move |_hit: Hit| {
            let status = if down.load(Ordering::SeqCst) {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::NO_CONTENT
            };
            async move { status.into_response() }
        })
        .await
    };
    let hook = created(
        &d,
        &http,
        &d.admin,
        "/v1/webhooks",
        json!({ "url": format!("{}/hook", up.base_url), "events": ["connection."] }),
    )
    .await;
    let id = hook["id"].as_str().expect("id").to_string();
    let gauge = format!(r#"authledger_webhook_lag_events{{webhook="{id}"}}"#);
    // The endpoint's cursor is set on its first round; until then it reports nothing due.
    eventually(
        Duration::from_secs(20),
        "the endpoint's first round",
        || {
            let (d, http, gauge) = (&d, &http, gauge.clone());
            async move { sample(d, http, &gauge).await == Some(0.0) }
        },
    )
    .await;
    let config = created(
        &d,
        &http,
        &d.admin,
        "/v1/auth-configs",
        json!({ "name": "lagging", "provider": "custom", "auth_type": "api_key",
            "api_key": { "key_name": "X-Api-Key", "location": "header", "prefix": null } }),
    )
    .await;
    for user in ["u1", "u2", "u3"] {
        created(
            &d,
            &http,
            &d.admin,
            "/v1/connections",
            json!({ "auth_config_id": config["id"], "user_id": user,
                "credentials": { "api_key": "k" } }),
        )
        .await;
    }
    // Behind by at least the config and the three connections (the oldest undelivered
    // event is the auth config's, which the endpoint passes over, or the first connection).
    eventually(
        Duration::from_secs(20),
        "the endpoint to report its lag",
        || {
            let (d, http, gauge) = (&d, &http, gauge.clone());
            async move { sample(d, http, &gauge).await.is_some_and(|v| v >= 3.0) }
        },
    )
    .await;
    // The round that sets the gauge tries the receiver right after: wait for that try.
    eventually(
        Duration::from_secs(20),
        "the receiver to be tried (and answer 503)",
        || {
            let up = &up;
            async move { !up.hits_to("/hook").is_empty() }
        },
    )
    .await;
    let r = Reply::of(request(
        &http,
        &d.svc,
        &d.admin,
        Method::GET,
        "/metrics",
        None,
    ))
    .await;
    crate::observability::promtool_accepts(&r.text);
    assert!(
        r.text
            .contains("# TYPE authledger_webhook_lag_events gauge"),
        "{}",
        r.text
    );

    // The receiver is back; the retry is due on the service's clock, not ours.
    down.store(false, Ordering::SeqCst);
    clock.advance(Duration::from_secs(3600));
    eventually(Duration::from_secs(30), "the endpoint to catch up", || {
        let (d, http, gauge) = (&d, &http, gauge.clone());
        async move { sample(d, http, &gauge).await == Some(0.0) }
    })
    .await;
    let r = Reply::of(request(
        &http,
        &d.svc,
        &d.admin,
        Method::GET,
        "/metrics",
        None,
    ))
    .await;
    let projection_lag: Vec<&str> = r
        .text
        .lines()
        .filter(|l| l.starts_with("authledger_projection_lag_events{"))
        .collect();
    assert!(!projection_lag.is_empty(), "{}", r.text);
    assert!(
        projection_lag.iter().all(|l| l.ends_with(" 0")),
        "{projection_lag:?}"
    );

    // Deleted: its gauge goes.
    let r = Reply::of(request(
        &http,
        &d.svc,
        &d.admin,
        Method::DELETE,
        &format!("/v1/webhooks/{id}"),
        None,
    ))
    .await;
    assert!(r.status.is_success(), "{}", r.text);
    eventually(
        Duration::from_secs(20),
        "the deleted endpoint's gauge to go",
        || {
            let (d, http, gauge) = (&d, &http, gauge.clone());
            async move { sample(d, http, &gauge).await.is_none() }
        },
    )
    .await;
}

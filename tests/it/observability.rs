//! Logs and metrics as an operator meets them, against a real `serve` whose stderr is a file
//! (so not a terminal): JSON request lines with their fields and no secret, text without
//! ANSI codes, `x-request-id` in and out, Prometheus metrics after requests.

use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};

use crate::support::{request, Deployment, Reply, Stack, NO_RATE_LIMIT};

const SECRET: &str = "sk-live-observability-4242-do-not-log";
const QUERY_SECRET: &str = "query-secret-7f7f";

fn stderr_of(d: &Deployment) -> String {
    let port = d.svc.addr.rsplit(':').next().unwrap_or_default();
    std::fs::read_to_string(d.dir.path().join(format!("serve-{port}.err"))).unwrap_or_default()
}

/// An `api_key` auth config and a connection holding `SECRET`; returns the connection id.
async fn connection_with_secret(d: &Deployment, http: &Client) -> String {
    let r = Reply::of(request(
        http,
        &d.svc,
        &d.admin,
        Method::POST,
        "/v1/auth-configs",
        Some(json!({ "name": "logged", "provider": "custom", "auth_type": "api_key",
                     "api_key": { "key_name": "X-Api-Key", "location": "header", "prefix": null } })),
    ))
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let config = r.str("id");
    let r = Reply::of(request(
        http,
        &d.svc,
        &d.admin,
        Method::POST,
        "/v1/connections",
        Some(json!({ "auth_config_id": config, "user_id": "user-1",
                     "credentials": { "api_key": SECRET } })),
    ))
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    r.str("id")
}

async fn json_request_lines_carry_their_fields_and_no_secret(stack: Stack) {
    let d = Deployment::start(stack, NO_RATE_LIMIT).await;
    let http = Client::new();
    let connection = connection_with_secret(&d, &http).await;
    let r = Reply::of(
        request(
            &http,
            &d.svc,
            &d.admin,
            Method::GET,
            &format!("/v1/connections/{connection}"),
            None,
        )
        .header("x-request-id", "obs-req-1"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.headers["x-request-id"], "obs-req-1");
    // A query string with a value that must not be logged, and a refused key.
    let r = Reply::of(request(
        &http,
        &d.svc,
        &d.admin,
        Method::GET,
        &format!("/v1/connections?user_id={QUERY_SECRET}"),
        None,
    ))
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let wrong_key = "al_wrong_key_for_the_log_test";
    let r = Reply::of(request(
        &http,
        &d.svc,
        wrong_key,
        Method::GET,
        &format!("/v1/connections/{connection}"),
        None,
    ))
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);

    let mut lines: Vec<Value> = Vec::new();
    crate::harness::eventually(
        std::time::Duration::from_secs(10),
        "the request lines",
        || {
            let log = stderr_of(&d);
            let parsed: Vec<Value> = log
                .lines()
                .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
                .collect();
            let done = parsed
                .iter()
                .filter(|l| l["message"] == "request" && l["status"] == 401)
                .count()
                > 0;
            lines = parsed;
            async move { done }
        },
    )
    .await;
    for l in &lines {
        for key in ["timestamp", "level", "target", "message"] {
            assert!(l.get(key).is_some(), "{key} missing in {l}");
        }
    }
    let requests: Vec<&Value> = lines
        .iter()
        .filter(|l| l["message"] == "request" && l["target"] == "authledger::request")
        .collect();
    let get = requests
        .iter()
        .find(|l| l["request_id"] == "obs-req-1")
        .unwrap_or_else(|| panic!("no line of obs-req-1 in {requests:?}"));
    assert_eq!(get["method"], "GET", "{get}");
    assert_eq!(get["route"], "/v1/connections/{id}", "{get}");
    assert_eq!(get["status"], 200, "{get}");
    assert!(
        get["latency_ms"].as_f64().is_some_and(|ms| ms >= 0.0),
        "{get}"
    );
    assert_eq!(get["workspace"], d.workspace.as_str(), "{get}");
    assert_eq!(get["actor_type"], "api_key", "{get}");
    assert!(
        get["actor_id"].as_str().is_some_and(|a| !a.is_empty()),
        "{get}"
    );
    let created = requests
        .iter()
        .find(|l| l["route"] == "/v1/connections" && l["method"] == "POST")
        .expect("the connection's creation is logged");
    assert_eq!(created["status"], 201, "{created}");
    let refused = requests
        .iter()
        .find(|l| l["status"] == 401)
        .expect("the refusal is logged");
    assert_eq!(refused["route"], "/v1/connections/{id}", "{refused}");
    assert!(refused.get("workspace").is_none(), "{refused}");
    // Every request line has a request id (made when the client sent none).
    for l in &requests {
        assert!(
            l["request_id"].as_str().is_some_and(|id| !id.is_empty()),
            "{l}"
        );
    }
    let log = stderr_of(&d);
    for secret in [
        SECRET,
        QUERY_SECRET,
        d.admin.as_str(),
        wrong_key,
        connection.as_str(),
    ] {
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_request_lines_carry_their_fields_and_no_secret_embedded() {
    json_request_lines_carry_their_fields_and_no_secret(Stack::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_request_lines_carry_their_fields_and_no_secret_jetstream_pg() {
    json_request_lines_carry_their_fields_and_no_secret(Stack::JetStreamPg).await;
}

/// `AUTHLEDGER_LOG_FORMAT=text` to a file: plain lines, no ANSI escape codes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_logs_off_a_terminal_have_no_ansi_codes() {
    let d = Deployment::start(Stack::Embedded, &[("AUTHLEDGER_LOG_FORMAT", "text")]).await;
    let http = Client::new();
    let r = Reply::of(request(
        &http,
        &d.svc,
        &d.admin,
        Method::GET,
        "/v1/auth-configs",
        None,
    ))
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let mut log = String::new();
    crate::harness::eventually(std::time::Duration::from_secs(10), "the line", || {
        log = stderr_of(&d);
        let done = log.contains("route=\"/v1/auth-configs\"");
        async move { done }
    })
    .await;
    assert!(!log.contains('\u{1b}'), "ANSI codes in:\n{log}");
    assert!(
        log.lines().all(|l| !l.trim_start().starts_with('{')),
        "{log}"
    );
    assert!(log.contains("authledger::request"), "{log}");
}

/// `x-request-id`: a sane one comes back as sent, on every kind of answer; a bad or
/// missing one is replaced by a UUIDv7.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_ids_come_back_on_every_answer() {
    let d = Deployment::start(Stack::Embedded, &[]).await;
    let http = Client::new();
    let cases = [
        ("/v1/auth-configs", Some(d.admin.as_str()), StatusCode::OK),
        (
            "/v1/auth-configs",
            Some("al_nope"),
            StatusCode::UNAUTHORIZED,
        ),
        ("/v1/auth-configs", None, StatusCode::UNAUTHORIZED),
        ("/no/such/route", None, StatusCode::NOT_FOUND),
        ("/healthz", None, StatusCode::OK),
        ("/console/", None, StatusCode::OK),
    ];
    for (path, key, status) in cases {
        let req = |id: Option<&str>| {
            let mut r = http.get(d.svc.url(path));
            if let Some(k) = key {
                r = r.bearer_auth(k);
            }
            if let Some(id) = id {
                r = r.header("x-request-id", id);
            }
            r
        };
        let r = req(Some("trace-abc.123")).send().await.expect("send");
        assert_eq!(r.status(), status, "{path}");
        assert_eq!(r.headers()["x-request-id"], "trace-abc.123", "{path}");
        for bad in [None, Some("has spaces in it"), Some(&*"x".repeat(129))] {
            let r = req(bad).send().await.expect("send");
            let id = r.headers()["x-request-id"].to_str().expect("ascii");
            let uuid = uuid::Uuid::parse_str(id).unwrap_or_else(|_| panic!("{path}: {id}"));
            assert_eq!(uuid.get_version_num(), 7, "{path}: {id}");
        }
    }
}

fn metric_value(text: &str, line_start: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// After requests, `/metrics` has them by route template, method and status with their
/// latency, rate-limit refusals by budget, refusals by reason and the build's version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_refusals_and_the_build() {
    let d = Deployment::start(
        Stack::Embedded,
        &[
            ("AUTHLEDGER_RATE_LIMIT_PER_SEC", "0.01"),
            ("AUTHLEDGER_RATE_LIMIT_BURST", "6"),
        ],
    )
    .await;
    let http = Client::new();
    let mut statuses = Vec::new();
    for _ in 0..8 {
        let r = request(
            &http,
            &d.svc,
            &d.admin,
            Method::GET,
            "/v1/auth-configs",
            None,
        )
        .send()
        .await
        .expect("send");
        statuses.push(r.status());
    }
    assert!(statuses.contains(&StatusCode::OK), "{statuses:?}");
    assert!(
        statuses.contains(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count() as f64;
    let r = request(
        &http,
        &d.svc,
        "al_unknown",
        Method::GET,
        "/v1/auth-configs/x1",
        None,
    )
    .send()
    .await
    .expect("send");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = http
        .get(d.svc.url("/metrics"))
        .send()
        .await
        .expect("metrics");
    assert_eq!(r.status(), StatusCode::OK);
    let text = r.text().await.expect("text");
    let get_ok =
        r#"authledger_http_requests_total{method="GET",route="/v1/auth-configs",status="200"}"#;
    assert_eq!(metric_value(&text, get_ok), Some(ok), "{text}");
    let limited =
        r#"authledger_http_requests_total{method="GET",route="/v1/auth-configs",status="429"}"#;
    assert_eq!(metric_value(&text, limited), Some(8.0 - ok), "{text}");
    assert_eq!(
        metric_value(
            &text,
            r#"authledger_http_request_duration_seconds_count{method="GET",route="/v1/auth-configs",status="200"}"#
        ),
        Some(ok),
        "{text}"
    );
    assert!(
        text.contains(r#"authledger_http_request_duration_seconds_bucket{le="0.001",method="GET",route="/v1/auth-configs",status="200"}"#)
            || text.contains(r#"authledger_http_request_duration_seconds_bucket{method="GET",route="/v1/auth-configs",status="200",le="0.001"}"#),
        "{text}"
    );
    assert_eq!(
        metric_value(
            &text,
            r#"authledger_http_requests_total{method="GET",route="/v1/auth-configs/{id}",status="401"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        metric_value(
            &text,
            r#"authledger_rate_limit_refusals_total{budget="requests"}"#
        ),
        Some(8.0 - ok),
        "{text}"
    );
    assert_eq!(
        metric_value(
            &text,
            r#"authledger_access_denied_total{reason="unknown_key"}"#
        ),
        Some(1.0),
        "{text}"
    );
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        metric_value(
            &text,
            &format!(r#"authledger_build_info{{version="{version}"}}"#)
        ),
        Some(1.0),
        "{text}"
    );
    // No raw path, query or id in any label.
    assert!(!text.contains("/x1"), "{text}");
    promtool_accepts(&text);
}

/// `promtool check metrics` accepts the exposition `text` (skipped where there is none).
pub(crate) fn promtool_accepts(text: &str) {
    if let Some(promtool) = promtool() {
        let mut child = std::process::Command::new(promtool)
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("promtool");
        use std::io::Write as _;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(as_prometheus_text(text).as_bytes())
            .expect("write");
        let out = child.wait_with_output().expect("promtool");
        assert!(
            out.status.success(),
            "promtool check metrics:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The OpenMetrics exposition as Prometheus text, which `promtool check metrics` reads: a
/// counter family is named with its `_total` there, and there is no `# EOF`.
fn as_prometheus_text(open_metrics: &str) -> String {
    let counters: Vec<&str> = open_metrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::new();
    for line in open_metrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let mut line = line.to_string();
        for prefix in ["# HELP ", "# TYPE "] {
            if let Some(rest) = line.strip_prefix(prefix) {
                let name = rest.split(' ').next().unwrap_or_default();
                if counters.contains(&name) {
                    line = format!("{prefix}{name}_total{}", &rest[name.len()..]);
                }
            }
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// `promtool` when it is on the PATH (`tools/test` unpacks it from Debian's `prometheus`
/// package).
fn promtool() -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("promtool"))
            .find(|p| p.is_file())
    })
}

/// stderr is written by a thread of its own: a log reader that stops reading (a full pipe)
/// holds up no request, and once it reads again every line is there, none dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_reader_of_stderr_holds_up_no_request() {
    use std::io::BufRead as _;
    let dir = tempfile::tempdir().expect("dir");
    let port = crate::harness::free_port();
    let mut serve = std::process::Command::new(crate::harness::bin())
        .args(["--data-dir", &dir.path().display().to_string()])
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env_remove("AUTHLEDGER_SIGNING_KEY")
        .env("AUTHLEDGER_CHECKPOINT_SCHEDULE", "off")
        .env("RUST_LOG", "info")
        .env("AUTHLEDGER_LOG_FORMAT", "json")
        .stdout(std::process::Stdio::null())
        // A pipe nobody reads until the end: it fills after a few hundred lines.
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn serve");
    let http = Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .expect("client");
    let health = format!("http://127.0.0.1:{port}/healthz");
    crate::harness::eventually(std::time::Duration::from_secs(30), "serve", || {
        let r = http.get(&health).send();
        async move { r.await.is_ok_and(|r| r.status().is_success()) }
    })
    .await;
    const REQUESTS: usize = 3000;
    for i in 0..REQUESTS {
        let r = http
            .get(&health)
            .header("x-request-id", format!("stalled-{i}"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("request {i} with stderr unread: {e}"));
        assert_eq!(r.status(), StatusCode::OK, "request {i}");
    }
    // Now read: every request's line arrives.
    let stderr = serve.stderr.take().expect("stderr");
    let seen = tokio::task::spawn_blocking(move || {
        let mut seen = std::collections::HashSet::new();
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let parsed: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
            if let Some(id) = parsed["request_id"].as_str() {
                if id.starts_with("stalled-") {
                    seen.insert(id.to_string());
                }
            }
            if seen.len() == REQUESTS {
                break;
            }
        }
        seen.len()
    });
    let seen = tokio::time::timeout(std::time::Duration::from_secs(30), seen).await;
    let _ = serve.kill();
    let _ = serve.wait();
    assert_eq!(
        seen.expect("the lines were written out").expect("join"),
        REQUESTS,
        "a request's log line was lost"
    );
}

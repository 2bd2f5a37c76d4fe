//! Issue 15, items 2 and 9: no credential the gateway injected ever comes back, neither into
//! the signed log nor to the agent, whatever the upstream does with it. Against the real
//! `serve` binary (embedded log) with `store_tool_responses` on, a real local upstream
//! answers `401 {"message": "invalid credential <what it got>"}`, echoes the request (headers,
//! URL, body) in several encodings, or reflects the credential in its `Content-Type`. For
//! a bearer token, an API key with a prefix in a header, an API key in the query and basic
//! auth, the upstream did receive the credential, and none of its encodings (raw,
//! base64 of the secret or of `user:password`, URL-encoded, JSON-escaped, hex) is in the
//! agent's answers (HTTP and MCP), in `tool.completed` as `/v1/audit/events/{id}` serves it,
//! in the JSONL export (envelopes decoded) or in `dump-log`.

use std::time::Duration;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine as _;
use reqwest::{Client, Method, StatusCode};
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::ServiceExt as _;
use serde_json::{json, Value};

use crate::support::{
    cli, request, Deployment, Hit, Reply, Stack, Upstream, BASE_ENV, NO_RATE_LIMIT,
};

/// The credentials, with characters that every encoding writes differently.
const BEARER: &str = "brr-SECRET/7f3a+Q x=9b";
const HEADER_KEY: &str = "hdr-SECRET?k=1&z/+4c";
const QUERY_KEY: &str = "qry-SECRET&x=2 %/+5d";
const USER: &str = "alice";
const PASSWORD: &str = "pw-SECRET:9/+z\"6e";

/// The upstream: `/deny` answers 401 quoting the credential it got; `/echo` echoes the
/// request (headers as JSON, the URL percent-encoded, the body, the whole echo once more
/// with every character `\uXXXX`-escaped, and the credential in base64 and hex); `/reflect`
/// answers 200 with the credential in its `Content-Type`.
async fn upstream() -> Upstream {
    Upstream::start(|hit: Hit| async move { answer(&hit) }).await
}

/// What the upstream takes for the credential: the `Authorization` header (a basic one
/// decoded to `user:password`), else `X-Api-Key`, else the `api_key` query parameter.
fn credential_of(hit: &Hit) -> String {
    if let Some(auth) = hit.header("authorization").first() {
        if let Some(basic) = auth.strip_prefix("Basic ") {
            let pair = STANDARD.decode(basic).unwrap_or_default();
            return String::from_utf8_lossy(&pair).into_owned();
        }
        return auth.to_string();
    }
    if let Some(key) = hit.header("x-api-key").first() {
        return key.to_string();
    }
    hit.query("api_key")
        .first()
        .copied()
        .unwrap_or("")
        .to_string()
}

fn answer(hit: &Hit) -> Response {
    let credential = credential_of(hit);
    match hit.path.as_str() {
        "/deny" => (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({ "message": format!("invalid credential {credential}") })),
        )
            .into_response(),
        "/reflect" => (
            [(
                header::CONTENT_TYPE,
                format!(
                    "text/plain; credential=\"{}\"",
                    credential.replace('"', "'")
                ),
            )],
            format!("you sent {credential}"),
        )
            .into_response(),
        _ => {
            let headers: serde_json::Map<String, Value> = hit
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect();
            let query: String = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(hit.query.iter())
                .finish();
            let echo = json!({ "headers": headers, "url": format!("{}?{query}", hit.path),
                "body": hit.body });
            axum::Json(json!({
                "echo": echo,
                "escaped": escape_all(&echo.to_string()),
                "credential_b64": STANDARD.encode(&credential),
                "credential_b64url": URL_SAFE_NO_PAD.encode(&credential),
                "credential_hex": hex::encode(&credential),
                "credential_url": url::form_urlencoded::byte_serialize(credential.as_bytes())
                    .collect::<String>(),
            }))
            .into_response()
        }
    }
}

/// Every character as `\uXXXX` (what an `ensure_ascii` encoder, or a cautious one, writes).
fn escape_all(s: &str) -> String {
    s.encode_utf16().map(|u| format!("\\u{u:04x}")).collect()
}

/// Every form of `secret` that must not appear.
fn forms(secret: &str) -> Vec<String> {
    let b = secret.as_bytes();
    let json = serde_json::to_string(secret).expect("json");
    vec![
        secret.to_string(),
        STANDARD.encode(b),
        URL_SAFE.encode(b),
        URL_SAFE_NO_PAD.encode(b),
        hex::encode(b),
        url::form_urlencoded::byte_serialize(b).collect(),
        b.iter().map(|c| format!("%{c:02X}")).collect(),
        json[1..json.len() - 1].to_string(),
        escape_all(secret),
    ]
}

/// `text`, and every string inside it that is JSON or base64 of UTF-8, decoded (so an
/// envelope's payload is read as the body it signs).
fn readings(text: &str) -> Vec<String> {
    let mut out = vec![text.to_string()];
    let mut i = 0;
    while i < out.len() {
        let current = out[i].clone();
        i += 1;
        if let Ok(v) = serde_json::from_str::<Value>(&current) {
            let mut strings = Vec::new();
            strings_of(&v, &mut strings);
            for s in strings {
                if let Ok(bytes) = STANDARD.decode(&s) {
                    if let Ok(decoded) = String::from_utf8(bytes) {
                        out.push(decoded);
                    }
                }
                if s.starts_with('{') || s.starts_with('[') {
                    out.push(s);
                }
            }
        }
    }
    out
}

/// The kind of the event an export line carries (its envelope's payload, decoded).
fn kind_of_exported(line: &str) -> Option<String> {
    let line: Value = serde_json::from_str(line).ok()?;
    if line["type"] != "event" {
        return None;
    }
    let envelope: Value = serde_json::from_str(line["envelope"].as_str()?).ok()?;
    let body = STANDARD.decode(envelope["payload"].as_str()?).ok()?;
    let body: Value = serde_json::from_slice(&body).ok()?;
    body["kind"].as_str().map(str::to_string)
}

fn strings_of(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|i| strings_of(i, out)),
        Value::Object(map) => map.values().for_each(|i| strings_of(i, out)),
        _ => {}
    }
}

/// Asserts that no reading of `text` holds any form of any of `secrets`.
#[track_caller]
fn assert_clean(what: &str, text: &str, secrets: &[&str]) {
    for reading in readings(text) {
        for secret in secrets {
            for form in forms(secret) {
                assert!(
                    !reading.contains(&form),
                    "{what} holds {form:?} (a form of {secret:?}): {reading}"
                );
            }
        }
    }
}

/// One `serve` on the embedded log (`support::Deployment`) and a client; shared with
/// `hardening`.
pub(crate) struct Env {
    pub d: Deployment,
    pub http: Client,
}

impl Env {
    pub async fn start() -> Env {
        Env {
            d: Deployment::start(Stack::Embedded, &[BASE_ENV, NO_RATE_LIMIT].concat()).await,
            http: Client::new(),
        }
    }

    pub async fn call(
        &self,
        bearer: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Reply {
        Reply::of(request(&self.http, &self.d.svc, bearer, method, path, body)).await
    }

    /// `POST path body` by the admin, which must answer 201: the body.
    pub async fn created(&self, path: &str, body: Value) -> Value {
        let r = self
            .call(&self.d.admin, Method::POST, path, Some(body))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{path}: {}", r.text);
        r.body
    }

    /// A new API key of `role`, made by `bearer`: (id, key).
    pub async fn key_by(&self, bearer: &str, role: &str) -> (String, String) {
        let r = self
            .call(
                bearer,
                Method::POST,
                "/v1/api-keys",
                Some(json!({ "name": format!("{role} key"), "role": role })),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        (r.str("id"), r.str("key"))
    }

    /// An auth config of provider `custom` and a connection of user `u1` on it.
    pub async fn connection(&self, auth_type: &str, settings: Value, credentials: Value) -> String {
        let mut body = json!({ "name": auth_type, "provider": "custom", "auth_type": auth_type });
        body[auth_type] = settings;
        let config = self.created("/v1/auth-configs", body).await;
        let conn = self
            .created(
                "/v1/connections",
                json!({ "auth_config_id": config["id"], "user_id": "u1", "credentials": credentials }),
            )
            .await;
        conn["id"].as_str().expect("id").to_string()
    }

    /// A workspace tool of provider `custom` at `base_url`, free-form arguments.
    pub async fn tool(&self, name: &str, method: &str, base_url: &str, path: &str) {
        self.created(
            "/v1/tools",
            json!({ "name": name, "provider": "custom", "description": format!("Test tool {name}."),
                "method": method, "base_url": base_url, "path": path,
                "parameters": { "type": "object" }, "required_scopes": [], "risk": "read" }),
        )
        .await;
    }

    /// An rmcp client session (initialize done) on `/mcp` with `bearer`.
    pub async fn mcp(&self, bearer: &str) -> RunningService<RoleClient, ()> {
        let config = StreamableHttpClientTransportConfig::with_uri(self.d.svc.url("/mcp"))
            .auth_header(bearer.to_string());
        tokio::time::timeout(
            Duration::from_secs(20),
            ().serve(StreamableHttpClientTransport::from_config(config)),
        )
        .await
        .expect("initialize in time")
        .expect("MCP initialize")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_form_of_the_credential_reaches_the_log_or_the_agent() {
    let env = Env::start().await;
    let up = upstream().await;
    let r = env
        .call(
            &env.d.admin,
            Method::PUT,
            "/v1/workspace/tool-response-storage",
            Some(json!({ "store_tool_responses": true })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    for (name, method, path) in [
        ("custom.deny", "GET", "/deny"),
        ("custom.echo", "POST", "/echo"),
        ("custom.reflect", "GET", "/reflect"),
    ] {
        env.tool(name, method, &up.base_url, path).await;
    }
    let (_, agent) = env.key_by(&env.d.admin, "agent").await;

    let pair = format!("{USER}:{PASSWORD}");
    // (connection, the secrets it uses, what the upstream must have received)
    let connections = [
        (
            env.connection("bearer_token", json!({}), json!({ "token": BEARER }))
                .await,
            vec![BEARER],
            format!("Bearer {BEARER}"),
        ),
        (
            env.connection(
                "api_key",
                json!({ "key_name": "X-Api-Key", "location": "header", "prefix": "Token" }),
                json!({ "api_key": HEADER_KEY }),
            )
            .await,
            vec![HEADER_KEY],
            format!("Token {HEADER_KEY}"),
        ),
        (
            env.connection(
                "api_key",
                json!({ "key_name": "api_key", "location": "query", "prefix": null }),
                json!({ "api_key": QUERY_KEY }),
            )
            .await,
            vec![QUERY_KEY],
            QUERY_KEY.to_string(),
        ),
        (
            env.connection(
                "basic",
                json!({}),
                json!({ "username": USER, "password": PASSWORD }),
            )
            .await,
            vec![PASSWORD, pair.as_str()],
            pair.clone(),
        ),
    ];
    let all: Vec<&str> = vec![BEARER, HEADER_KEY, QUERY_KEY, PASSWORD, pair.as_str()];

    // Over HTTP: each tool through each connection, with arguments for the echo to return.
    let mut calls = 0;
    for (conn, secrets, received) in &connections {
        for tool in ["custom.deny", "custom.echo", "custom.reflect"] {
            let r = env
                .call(
                    &agent,
                    Method::POST,
                    "/v1/tools/execute",
                    Some(json!({ "tool": tool, "connection_id": conn,
                        "arguments": { "note": "hello" } })),
                )
                .await;
            calls += 1;
            assert_eq!(r.status, StatusCode::OK, "{tool}: {}", r.text);
            let hit = up.hits().last().cloned().expect("a hit");
            assert_eq!(
                &credential_of(&hit),
                received,
                "the upstream got the credential"
            );
            assert_clean(&format!("{tool}'s answer"), &r.text, secrets);
            // Not a vacuous pass: the answer came, with the secret cut out of it.
            assert!(r.text.contains("[redacted]"), "{tool}: {}", r.text);
            if tool == "custom.echo" {
                assert_eq!(
                    r.body["body"]["echo"]["body"],
                    json!({ "note": "hello" }).to_string()
                );
            }
            if tool == "custom.deny" {
                assert_eq!(r.body["status"], 401, "{}", r.text);
                assert!(
                    r.body["body"]["message"]
                        .as_str()
                        .is_some_and(|m| m.starts_with("invalid credential ")),
                    "{}",
                    r.text
                );
            }
        }
    }

    // A large answer (scrubbed off the async runtime): still clean, kept only as its size.
    let long = "x".repeat(30 * 1024);
    let r = env
        .call(
            &agent,
            Method::POST,
            "/v1/tools/execute",
            Some(
                json!({ "tool": "custom.echo", "connection_id": connections[0].0,
                "arguments": { "note": long } }),
            ),
        )
        .await;
    calls += 1;
    assert_eq!(
        r.body["status"],
        200,
        "{}",
        &r.text[..r.text.len().min(500)]
    );
    assert!(r.text.len() > 100 * 1024, "the echo came back whole");
    assert_clean("a large answer", &r.text, &[BEARER]);
    assert!(r.text.contains("[redacted]"));

    // Over MCP: the same tools through the bearer and basic connections.
    let client = env.mcp(&agent).await;
    for (conn, secrets, _) in [&connections[0], &connections[3]] {
        for tool in ["custom.deny", "custom.echo", "custom.reflect"] {
            let args = json!({ "connection_id": conn, "note": "hello" });
            let result: CallToolResult = client
                .call_tool(
                    CallToolRequestParams::new(tool.to_string())
                        .with_arguments(args.as_object().expect("object").clone()),
                )
                .await
                .expect("tools/call");
            calls += 1;
            let text = serde_json::to_string(&result).expect("result json");
            assert_clean(&format!("MCP {tool}"), &text, secrets);
            assert!(text.contains("[redacted]"), "MCP {tool}: {text}");
        }
    }
    client.cancel().await.expect("close MCP");

    // The record: every tool.completed kept the (scrubbed) response.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let completed = loop {
        let r = env
            .call(
                &env.d.admin,
                Method::GET,
                "/v1/audit/events?kind=tool.completed&limit=1000",
                None,
            )
            .await;
        let items = r.body["items"].as_array().cloned().unwrap_or_default();
        if items.len() == calls {
            break items;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{calls} tool.completed: {}",
            r.text
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for e in &completed {
        let id = e["event_id"].as_str().expect("event_id");
        let r = env
            .call(
                &env.d.admin,
                Method::GET,
                &format!("/v1/audit/events/{id}"),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let response = &r.body["body"]["payload"]["response"];
        assert!(!response.is_null(), "responses are stored: {}", r.text);
        let omitted = response["omitted"] == "too large";
        assert!(
            omitted || response.to_string().contains("[redacted]"),
            "{}",
            r.text
        );
        assert_clean("tool.completed", &r.text, &all);
    }
    let r = env
        .call(
            &env.d.admin,
            Method::GET,
            "/v1/audit/export?format=jsonl",
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let mut exported = 0;
    for line in r.text.lines() {
        assert_clean("the export", line, &all);
        if kind_of_exported(line).as_deref() == Some("tool.completed") {
            exported += 1;
        }
    }
    assert_eq!(exported, calls, "every tool.completed is exported");
    let out = cli(&env.d.storage, &["dump-log"]).await;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        assert_clean("dump-log", line, &all);
    }
}

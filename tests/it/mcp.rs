//! The MCP server (`POST /mcp`) with a real MCP client: rmcp's own Streamable HTTP client
//! against the real `serve` binary, whose tools call the real local OAuth provider through a
//! user's connection. Covers initialize, tools/list (API key: everything; scoped token:
//! narrowed), tools/call through the gateway (credential injected, never shown; step-up as a
//! tool error carrying the approval id, then the approved call), and the HTTP refusals
//! (401/403, audited) plus rmcp's Host/Origin checks.

use std::time::Duration;

use reqwest::{Client, Method, StatusCode};
use rmcp::model::{CallToolRequestParams, CallToolResult, JsonObject, Tool};
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::ServiceExt as _;
use serde_json::{json, Value};

use crate::fixtures::oauth_provider::{Endpoint, OAuthProvider};
use crate::support::{
    bootstrap_workspace, complete_connect, log_events, oauth_config_body, provider_for, request,
    Deployment, Reply, Stack, BASE_ENV, PROBLEMS, RETURN_TO,
};

const CLIENT_ID: &str = "mcp-client";
const CLIENT_SECRET: &str = "mcp-cl1ent-s3cret";

const WHOAMI: &str = "example.whoami";
const REQUIRE: &str = "example.require_scope";
const PURGE: &str = "example.purge";

/// A serve process with its admin key, the test OAuth provider, and an HTTP client.
struct Env {
    d: Deployment,
    http: Client,
}

impl std::ops::Deref for Env {
    type Target = Deployment;
    fn deref(&self) -> &Deployment {
        &self.d
    }
}

impl Env {
    async fn start() -> Env {
        Env {
            d: Deployment::start(Stack::Embedded, BASE_ENV).await,
            http: Client::new(),
        }
    }

    async fn call(
        &self,
        key: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let r = Reply::of(request(&self.http, &self.svc, key, method, path, body)).await;
        (r.status, r.body)
    }

    async fn post(&self, key: &str, path: &str, body: Value) -> Value {
        let (status, v) = self.call(key, Method::POST, path, Some(body.clone())).await;
        assert!(status.is_success(), "POST {path} {body}: {status} {v}");
        v
    }

    /// A new API key of `role`.
    async fn key(&self, role: &str) -> String {
        let v = self
            .post(
                &self.admin,
                "/v1/api-keys",
                json!({ "name": format!("{role} key"), "role": role }),
            )
            .await;
        v["key"].as_str().expect("key").to_string()
    }

    /// An rmcp client session (initialize done) with `bearer`.
    async fn mcp(&self, bearer: &str) -> RunningService<RoleClient, ()> {
        self.try_mcp(Some(bearer)).await.expect("MCP initialize")
    }

    async fn try_mcp(
        &self,
        bearer: Option<&str>,
    ) -> Result<RunningService<RoleClient, ()>, String> {
        let mut config = StreamableHttpClientTransportConfig::with_uri(self.svc.url("/mcp"));
        if let Some(b) = bearer {
            config = config.auth_header(b);
        }
        let transport = StreamableHttpClientTransport::from_config(config);
        tokio::time::timeout(Duration::from_secs(20), ().serve(transport))
            .await
            .expect("initialize in time")
            .map_err(|e| e.to_string())
    }

    /// Every `access.denied` event: (status, reason, method, route).
    async fn denials(&self) -> Vec<(u64, String, String, String)> {
        self.events()
            .await
            .into_iter()
            .filter(|(kind, _)| kind == "access.denied")
            .map(|(_, p)| {
                (
                    p["status"].as_u64().expect("status"),
                    p["reason"].as_str().expect("reason").to_string(),
                    p["method"].as_str().expect("method").to_string(),
                    p["route"].as_str().expect("route").to_string(),
                )
            })
            .collect()
    }

    /// Every event so far: (kind, payload), read from the embedded log.
    async fn events(&self) -> Vec<(String, Value)> {
        log_events(self.dir.path())
            .await
            .into_iter()
            .map(|(_, body)| (body.kind, body.payload))
            .collect()
    }
}

/// The test provider with our client registered, and an oauth2 auth config for it; returns
/// (provider, auth config id).
async fn provider_and_auth_config(env: &Env) -> (OAuthProvider, String) {
    let provider = provider_for(&env.svc, CLIENT_ID, CLIENT_SECRET).await;
    let v = env
        .post(
            &env.admin,
            "/v1/auth-configs",
            oauth_config_body(&provider, CLIENT_ID, CLIENT_SECRET),
        )
        .await;
    (provider, v["id"].as_str().expect("id").to_string())
}

/// The connect flow for `user_id`: initiate, consent at the provider, our callback.
async fn connect(
    env: &Env,
    provider: &OAuthProvider,
    auth_config_id: &str,
    user_id: &str,
) -> String {
    let v = env
        .post(
            &env.admin,
            "/v1/connections",
            json!({ "auth_config_id": auth_config_id, "user_id": user_id, "redirect_url": RETURN_TO }),
        )
        .await;
    let id = v["id"].as_str().expect("id").to_string();
    complete_connect(provider, v["connect_url"].as_str().expect("connect_url")).await;
    id
}

/// The workspace's three tools against the provider's protected API.
async fn define_tools(env: &Env, provider: &OAuthProvider) {
    let base = provider.base_url().to_string();
    for def in [
        json!({
            "name": WHOAMI, "provider": "custom", "description": "Who the connected user is",
            "method": "GET", "base_url": base, "path": "/api/me",
            "parameters": { "type": "object", "properties": {}, "additionalProperties": false },
            "required_scopes": ["read"], "risk": "read",
        }),
        json!({
            "name": REQUIRE, "provider": "custom", "description": "Checks that the grant holds a scope",
            "method": "GET", "base_url": base, "path": "/api/require/{scope}",
            "parameters": {
                "type": "object",
                "properties": { "scope": { "type": "string" } },
                "required": ["scope"],
                "additionalProperties": false,
            },
            "required_scopes": ["read"], "risk": "read",
        }),
        json!({
            "name": PURGE, "provider": "custom", "description": "Deletes the user's account",
            "method": "DELETE", "base_url": base, "path": "/api/me",
            "parameters": { "type": "object", "properties": {}, "additionalProperties": false },
            "required_scopes": ["write"], "risk": "destructive",
        }),
    ] {
        env.post(&env.admin, "/v1/tools", def).await;
    }
}

fn args_of(v: Value) -> JsonObject {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

/// The one text block of a tool result, as JSON.
fn text_json(r: &CallToolResult) -> Value {
    assert_eq!(r.content.len(), 1, "{r:?}");
    let text = r.content[0].as_text().expect("text content").text.clone();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn tool<'a>(tools: &'a [Tool], name: &str) -> &'a Tool {
    tools
        .iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("{name} not listed"))
}

fn properties(t: &Tool) -> Vec<String> {
    t.input_schema["properties"]
        .as_object()
        .expect("properties")
        .keys()
        .cloned()
        .collect()
}

async fn call(
    client: &RunningService<RoleClient, ()>,
    name: &str,
    arguments: Value,
) -> CallToolResult {
    client
        .call_tool(CallToolRequestParams::new(name.to_string()).with_arguments(args_of(arguments)))
        .await
        .expect("tools/call")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_lists_and_calls_gateway_tools_for_a_real_client() {
    let env = Env::start().await;
    let (provider, auth_config) = provider_and_auth_config(&env).await;
    let connection = connect(&env, &provider, &auth_config, "alice").await;
    define_tools(&env, &provider).await;
    let agent = env.key("agent").await;
    // Connect on demand below: agent keys start connect flows for any user here.
    let (status, v) = env
        .call(
            &env.admin,
            Method::PUT,
            "/v1/workspace/agent-connect-flows",
            Some(json!({ "any_user": true })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");

    // initialize
    let client = env.mcp(&agent).await;
    let info = client.peer_info().expect("server info");
    assert_eq!(
        info.server_info.as_ref().map(|i| i.name.as_str()),
        Some("authledger")
    );
    assert!(info.capabilities.tools.is_some(), "{info:?}");

    // tools/list: the workspace's tools and the built-ins, with routing fields and hints.
    let tools = client.list_all_tools().await.expect("tools/list");
    let whoami = tool(&tools, WHOAMI);
    assert_eq!(
        whoami.description.as_deref(),
        Some("Who the connected user is")
    );
    let annotations = whoami.annotations.clone().expect("annotations");
    assert_eq!(annotations.read_only_hint, Some(true));
    assert_eq!(annotations.destructive_hint, Some(false));
    let mut props = properties(whoami);
    props.sort();
    assert_eq!(props, ["auth_config_id", "connection_id", "user_id"]);
    assert_eq!(whoami.input_schema["additionalProperties"], json!(false));
    let purge = tool(&tools, PURGE);
    assert_eq!(
        purge.annotations.clone().expect("hints").destructive_hint,
        Some(true)
    );
    assert!(properties(purge).contains(&"approval_id".to_string()));
    assert!(
        tools.iter().any(|t| t.name == "github.get_repository"),
        "built-ins are listed"
    );
    assert!(properties(tool(&tools, REQUIRE)).contains(&"scope".to_string()));

    // tools/call through the gateway: the provider sees the connection's real access token,
    // the agent never does.
    let r = call(&client, WHOAMI, json!({ "connection_id": connection })).await;
    assert_eq!(r.is_error, Some(false), "{r:?}");
    let answer = text_json(&r);
    assert_eq!(answer["status"], 200, "{answer}");
    assert_eq!(answer["body"]["user_id"], "user-1", "{answer}");
    assert!(answer["tool_call_id"].is_string(), "{answer}");
    let seen = provider
        .last_request_to(Endpoint::Api)
        .expect("the provider was called");
    let bearer = seen
        .authorization
        .as_deref()
        .and_then(|a| a.strip_prefix("Bearer "))
        .expect("bearer")
        .to_string();
    assert!(
        provider.token_info(&bearer).is_some(),
        "a token the provider issued"
    );
    assert!(
        !format!("{r:?}").contains(&bearer),
        "the result never shows the token"
    );

    // Routing by user and auth config; the tool's own argument goes into the path.
    let r = call(
        &client,
        REQUIRE,
        json!({ "user_id": "alice", "auth_config_id": auth_config, "scope": "write" }),
    )
    .await;
    assert_eq!(r.is_error, Some(false), "{r:?}");
    assert_eq!(
        provider.last_request_to(Endpoint::Api).expect("api").path,
        "/api/require/write"
    );

    // Refusals are tool errors carrying the problem.
    let r = call(&client, WHOAMI, json!({})).await;
    assert_eq!(r.is_error, Some(true));
    assert_eq!(
        text_json(&r)["type"],
        format!("{PROBLEMS}validation-failed"),
        "{r:?}"
    );
    let r = call(
        &client,
        REQUIRE,
        json!({ "connection_id": connection, "scope": 7 }),
    )
    .await;
    assert_eq!(r.is_error, Some(true));
    assert_eq!(
        text_json(&r)["type"],
        format!("{PROBLEMS}invalid-arguments"),
        "{r:?}"
    );
    let r = call(&client, WHOAMI, json!({ "connection_id": 42 })).await;
    assert_eq!(
        text_json(&r)["type"],
        format!("{PROBLEMS}invalid-arguments"),
        "{r:?}"
    );
    let r = call(
        &client,
        "example.nothing",
        json!({ "connection_id": connection }),
    )
    .await;
    assert_eq!(r.is_error, Some(true));
    assert_eq!(
        text_json(&r)["type"],
        format!("{PROBLEMS}not-found"),
        "{r:?}"
    );
    let r = call(
        &client,
        WHOAMI,
        json!({ "user_id": "bob", "auth_config_id": auth_config }),
    )
    .await;
    let problem = text_json(&r);
    assert_eq!(
        problem["type"],
        format!("{PROBLEMS}connection-required"),
        "{problem}"
    );
    assert!(
        problem["connect_url"].is_string(),
        "connect on demand: {problem}"
    );

    // Step-up: a destructive tool answers a tool error carrying the approval id; approved,
    // the same call runs (the provider has no DELETE: a non-2xx answer is a tool error too).
    let purge_args = json!({ "connection_id": connection });
    let r = call(&client, PURGE, purge_args.clone()).await;
    assert_eq!(r.is_error, Some(true));
    let problem = text_json(&r);
    assert_eq!(
        problem["type"],
        format!("{PROBLEMS}approval-required"),
        "{problem}"
    );
    let approval_id = problem["approval_id"]
        .as_str()
        .expect("approval_id")
        .to_string();
    env.post(
        &env.admin,
        &format!("/v1/approvals/{approval_id}/approve"),
        json!({}),
    )
    .await;
    let mut approved = purge_args.clone();
    approved["approval_id"] = json!(approval_id);
    let r = call(&client, PURGE, approved.clone()).await;
    let answer = text_json(&r);
    assert_eq!(r.is_error, Some(true), "{answer}");
    assert_eq!(answer["status"], 405, "{answer}");
    let r = call(&client, PURGE, approved).await;
    assert_eq!(
        text_json(&r)["type"],
        format!("{PROBLEMS}approval-consumed"),
        "{r:?}"
    );

    // The same events as the HTTP gateway: each upstream call completed in the ledger
    // (`tool.completed` is appended right after the answer).
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let completed: Vec<Value> = loop {
        let completed: Vec<Value> = env
            .events()
            .await
            .into_iter()
            .filter(|(k, _)| k == "tool.completed")
            .map(|(_, p)| p)
            .collect();
        if completed.len() >= 3 || std::time::Instant::now() > deadline {
            break completed;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(completed.len(), 3, "{completed:?}");
    assert!(completed
        .iter()
        .all(|p| p["connection_id"] == json!(connection)));
    client.cancel().await.expect("close");

    // A scoped token: only the tools its scopes cover on its connection's provider, and the
    // connection comes from the token.
    let issued = env
        .post(
            &agent,
            "/v1/tokens",
            json!({ "connection_id": connection, "scopes": ["read"] }),
        )
        .await;
    let token = issued["token"].as_str().expect("token").to_string();
    let client = env.mcp(&token).await;
    let tools = client.list_all_tools().await.expect("tools/list");
    let mut names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    names.sort();
    assert_eq!(names, [REQUIRE, WHOAMI], "read-only custom tools");
    assert_eq!(properties(tool(&tools, WHOAMI)), Vec::<String>::new());
    let r = call(&client, WHOAMI, json!({})).await;
    assert_eq!(r.is_error, Some(false), "{r:?}");
    assert_eq!(text_json(&r)["body"]["user_id"], "user-1");
    // Beyond the token: refused as a tool error, and audited like the HTTP gateway.
    let before = env.denials().await.len();
    let r = call(&client, PURGE, json!({})).await;
    assert_eq!(
        text_json(&r)["type"],
        format!("{PROBLEMS}scope-escalation"),
        "{r:?}"
    );
    let denials = env.denials().await;
    assert_eq!(
        denials[before..],
        [(
            403,
            "scope_escalation".to_string(),
            "POST".to_string(),
            "/mcp".to_string()
        )]
    );
    client.cancel().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_refuses_unauthenticated_and_unpermitted_callers_and_foreign_origins() {
    let env = Env::start().await;
    let agent = env.key("agent").await;
    let viewer = env.key("viewer").await;
    let before = env.denials().await.len();

    // The real client cannot even initialize without a valid key.
    assert!(env.try_mcp(None).await.is_err());
    assert!(env.try_mcp(Some("alk_not-a-real-key")).await.is_err());
    assert!(env.try_mcp(Some(&viewer)).await.is_err());

    // The same, raw: 401 / 403 problems before anything reaches MCP.
    let initialize = json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": { "name": "raw", "version": "0" }
        }
    });
    let post = |bearer: Option<&str>, extra: &[(&str, &str)]| {
        let mut req = env
            .http
            .post(env.svc.url("/mcp"))
            .header("accept", "application/json, text/event-stream")
            .json(&initialize);
        if let Some(b) = bearer {
            req = req.bearer_auth(b);
        }
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        req.send()
    };
    let r = post(None, &[]).await.expect("post");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.json::<Value>().await.expect("problem")["type"],
        format!("{PROBLEMS}unauthorized")
    );
    let r = post(Some(&viewer), &[]).await.expect("post");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    // rmcp's DNS-rebinding protection stays on: foreign Origin or Host → 403.
    let r = post(Some(&agent), &[("origin", "https://evil.example")])
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = post(Some(&agent), &[("host", "evil.example")])
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // The service's own origin, and no origin at all, are served.
    let own = env.svc.url("");
    let r = post(Some(&agent), &[("origin", own.as_str())])
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.expect("json-rpc");
    assert_eq!(v["result"]["serverInfo"]["name"], "authledger", "{v}");
    // An initialize opens a session (its id in the log, for retried calls: `mcp_retries`);
    // GET (a session stream) is not served.
    let r = post(Some(&agent), &[]).await.expect("post");
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers().get("mcp-session-id").is_some());
    let (status, _) = env.call(&agent, Method::GET, "/mcp", None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);

    let mut got: Vec<(u64, String)> = env.denials().await[before..]
        .iter()
        .map(|(s, reason, m, route)| {
            assert_eq!((m.as_str(), route.as_str()), ("POST", "/mcp"));
            (*s, reason.clone())
        })
        .collect();
    got.sort();
    let mut want: Vec<(u64, String)> = [
        (401, "missing_credentials"),
        (401, "missing_credentials"),
        (401, "unknown_key"),
        (403, "role_not_permitted"),
        (403, "role_not_permitted"),
    ]
    .into_iter()
    .map(|(s, r)| (s, r.to_string()))
    .collect();
    want.sort();
    assert_eq!(got, want, "every refusal is an access.denied event");
}

/// An rmcp client session (initialize done) on `path` (e.g. `/mcp/{gateway_id}`).
async fn mcp_at(
    env: &Env,
    path: &str,
    bearer: &str,
) -> Result<RunningService<RoleClient, ()>, String> {
    let config =
        StreamableHttpClientTransportConfig::with_uri(env.svc.url(path)).auth_header(bearer);
    let transport = StreamableHttpClientTransport::from_config(config);
    tokio::time::timeout(Duration::from_secs(20), ().serve(transport))
        .await
        .expect("initialize in time")
        .map_err(|e| e.to_string())
}

/// A raw MCP `initialize` POSTed to `path`: (status, body text).
async fn raw_initialize(env: &Env, path: &str, bearer: &str) -> (StatusCode, String) {
    let r = env
        .http
        .post(env.svc.url(path))
        .header("accept", "application/json, text/event-stream")
        .bearer_auth(bearer)
        .json(&json!({
            "jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18", "capabilities": {},
                "clientInfo": { "name": "raw", "version": "0" }
            }
        }))
        .send()
        .await
        .expect("post");
    let status = r.status();
    (status, r.text().await.expect("body"))
}

/// Every `access.denied` event's payload (with its `target_id`), from the log.
async fn denial_payloads(env: &Env) -> Vec<Value> {
    env.events()
        .await
        .into_iter()
        .filter(|(kind, _)| kind == "access.denied")
        .map(|(_, p)| p)
        .collect()
}

fn sorted_names(tools: &[Tool]) -> Vec<String> {
    let mut names: Vec<String> = tools.iter().map(|t| t.name.to_string()).collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_gateway_mount_serves_one_gateways_tools_and_refuses_the_rest() {
    const ROUTE: &str = "/mcp/{gateway_id}";
    let env = Env::start().await;
    let (provider, auth_config) = provider_and_auth_config(&env).await;
    let connection = connect(&env, &provider, &auth_config, "alice").await;
    define_tools(&env, &provider).await;
    let agent = env.key("agent").await;
    let bound = env
        .post(
            &env.admin,
            "/v1/api-keys",
            json!({ "name": "bound agent", "role": "agent" }),
        )
        .await;
    let (bound_id, bound) = (
        bound["id"].as_str().expect("id").to_string(),
        bound["key"].as_str().expect("key").to_string(),
    );
    let gateway = |name: &str, tools: &[&str], keys: &[&str]| {
        json!({ "name": name, "servers": [{ "auth_config_id": auth_config, "tools": tools }],
                "agent_key_ids": keys })
    };
    let a = env
        .post(
            &env.admin,
            "/v1/gateways",
            gateway("whoami only", &[WHOAMI], &[&bound_id]),
        )
        .await["id"]
        .as_str()
        .expect("id")
        .to_string();
    let b = env
        .post(
            &env.admin,
            "/v1/gateways",
            gateway("scope checks", &[REQUIRE, PURGE], &[]),
        )
        .await["id"]
        .as_str()
        .expect("id")
        .to_string();
    let path_a = format!("/mcp/{a}");
    let path_b = format!("/mcp/{b}");

    // tools/list on a gateway's mount: exactly its tools (no built-ins, no others).
    let client = mcp_at(&env, &path_a, &agent).await.expect("initialize");
    let tools = client.list_all_tools().await.expect("tools/list");
    assert_eq!(sorted_names(&tools), [WHOAMI]);
    let mut props = properties(tool(&tools, WHOAMI));
    props.sort();
    assert_eq!(props, ["auth_config_id", "connection_id", "user_id"]);
    // Its tool runs through the gateway as on /mcp.
    let r = call(&client, WHOAMI, json!({ "connection_id": connection })).await;
    assert_eq!(r.is_error, Some(false), "{r:?}");
    assert_eq!(text_json(&r)["body"]["user_id"], "user-1", "{r:?}");
    // Any other tool, of the workspace or built in, is a tool error: outside-gateway, audited
    // on this route; nothing reaches the provider.
    let api_calls = provider.counters().api_requests;
    let before = denial_payloads(&env).await.len();
    for (name, arguments) in [
        (
            REQUIRE,
            json!({ "connection_id": connection, "scope": "read" }),
        ),
        (
            "github.get_repository",
            json!({ "connection_id": connection, "owner": "o", "repo": "r" }),
        ),
    ] {
        let r = call(&client, name, arguments).await;
        assert_eq!(r.is_error, Some(true), "{name}: {r:?}");
        assert_eq!(
            text_json(&r)["type"],
            format!("{PROBLEMS}outside-gateway"),
            "{name}: {r:?}"
        );
    }
    assert_eq!(provider.counters().api_requests, api_calls);
    let denials = denial_payloads(&env).await;
    assert_eq!(denials.len() - before, 2, "{denials:#?}");
    for d in &denials[before..] {
        assert_eq!(
            (&d["status"], &d["reason"], &d["method"], &d["route"]),
            (
                &json!(403),
                &json!("outside_gateway"),
                &json!("POST"),
                &json!(ROUTE)
            ),
            "{d}"
        );
        assert_eq!(d["target_id"], connection.as_str(), "{d}");
    }
    client.cancel().await.expect("close");

    // The other gateway's mount lists its own tools.
    let client = mcp_at(&env, &path_b, &agent).await.expect("initialize");
    let tools = client.list_all_tools().await.expect("tools/list");
    assert_eq!(sorted_names(&tools), [PURGE, REQUIRE]);
    let r = call(&client, WHOAMI, json!({ "connection_id": connection })).await;
    assert_eq!(
        text_json(&r)["type"],
        format!("{PROBLEMS}outside-gateway"),
        "{r:?}"
    );
    client.cancel().await.expect("close");

    // A key bound to gateway A: its mount works, B's is an HTTP 403 (audited), and /mcp
    // itself offers only A's tools.
    let client = mcp_at(&env, &path_a, &bound).await.expect("initialize");
    let tools = client.list_all_tools().await.expect("tools/list");
    assert_eq!(sorted_names(&tools), [WHOAMI]);
    client.cancel().await.expect("close");
    let client = env.mcp(&bound).await;
    let tools = client.list_all_tools().await.expect("tools/list");
    assert_eq!(sorted_names(&tools), [WHOAMI]);
    client.cancel().await.expect("close");
    let before = denial_payloads(&env).await.len();
    assert!(mcp_at(&env, &path_b, &bound).await.is_err());
    let (status, text) = raw_initialize(&env, &path_b, &bound).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{text}");
    let problem: Value = serde_json::from_str(&text).expect("problem");
    assert_eq!(
        problem["type"],
        format!("{PROBLEMS}outside-gateway"),
        "{text}"
    );
    let denials = denial_payloads(&env).await;
    assert!(denials.len() - before >= 2, "{denials:#?}");
    for d in &denials[before..] {
        assert_eq!(
            (&d["status"], &d["reason"], &d["route"], &d["target_id"]),
            (
                &json!(403),
                &json!("outside_gateway"),
                &json!(ROUTE),
                &json!(b)
            ),
            "{d}"
        );
    }

    // Unknown gateway ids (never defined, or deleted) are 404s and not audited.
    let unknown = uuid::Uuid::now_v7().to_string();
    let (status, unknown_text) = raw_initialize(&env, &format!("/mcp/{unknown}"), &agent).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{unknown_text}");
    let problem: Value = serde_json::from_str(&unknown_text).expect("problem");
    assert_eq!(
        problem["type"],
        format!("{PROBLEMS}not-found"),
        "{unknown_text}"
    );
    assert!(mcp_at(&env, &format!("/mcp/{unknown}"), &agent)
        .await
        .is_err());
    for odd in ["x".repeat(300), "g.*.>".to_string()] {
        let (status, text) = raw_initialize(&env, &format!("/mcp/{odd}"), &agent).await;
        assert_eq!(
            (status, &text),
            (StatusCode::NOT_FOUND, &unknown_text),
            "{odd}"
        );
    }
    let (status, _) = env
        .call(
            &env.admin,
            Method::DELETE,
            &format!("/v1/gateways/{b}"),
            None,
        )
        .await;
    assert!(status.is_success(), "{status}");
    let (status, text) = raw_initialize(&env, &path_b, &agent).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "deleted: {text}");

    // Another workspace's gateway answers exactly like an unknown id, and is audited.
    let other_admin = bootstrap_workspace(&env.storage, "Other").await;
    crate::harness::eventually(Duration::from_secs(15), "the other workspace", || async {
        env.call(&other_admin, Method::GET, "/v1/workspace", None)
            .await
            .0
            == StatusCode::OK
    })
    .await;
    env.post(
        &other_admin,
        "/v1/tools",
        json!({
            "name": WHOAMI, "provider": "custom", "description": "Theirs",
            "method": "GET", "base_url": provider.base_url(), "path": "/api/me",
            "parameters": { "type": "object", "properties": {}, "additionalProperties": false },
            "required_scopes": [], "risk": "read",
        }),
    )
    .await;
    let their_config = env
        .post(
            &other_admin,
            "/v1/auth-configs",
            json!({ "name": "Theirs", "provider": "custom", "auth_type": "api_key",
                    "api_key": { "key_name": "X-Api-Key", "location": "header", "prefix": null } }),
        )
        .await["id"]
        .as_str()
        .expect("id")
        .to_string();
    let theirs = env
        .post(
            &other_admin,
            "/v1/gateways",
            json!({ "name": "theirs", "servers": [{ "auth_config_id": their_config, "tools": [WHOAMI] }] }),
        )
        .await["id"]
        .as_str()
        .expect("id")
        .to_string();
    let (status, text) = raw_initialize(&env, &format!("/mcp/{theirs}"), &other_admin).await;
    assert_eq!(status, StatusCode::OK, "their own mount works: {text}");
    let before = denial_payloads(&env).await.len();
    let (status, their_text) = raw_initialize(&env, &format!("/mcp/{theirs}"), &agent).await;
    assert_eq!(
        (status, &their_text),
        (StatusCode::NOT_FOUND, &unknown_text),
        "like an unknown id"
    );
    let denials = denial_payloads(&env).await;
    assert_eq!(
        denials[before..],
        [json!({
            "method": "POST", "route": ROUTE, "status": 404,
            "reason": "other_workspace", "target_id": theirs,
        })]
    );
    assert!(
        !denials.iter().any(|d| d["target_id"] == unknown.as_str()
            || d["target_id"] == b.as_str() && d["status"] == 404),
        "unknown and deleted ids are not audited: {denials:#?}"
    );
}

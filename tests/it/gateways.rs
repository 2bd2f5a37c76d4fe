//! Gateway configs (issue 6) end to end, over HTTP against the real `authledger serve`
//! binary (embedded log): a gateway bundles (auth config, tools) pairs; an API key listed in
//! its `agent_key_ids` reaches only those pairs through `GET /v1/tools`,
//! `POST /v1/tools/execute` and `POST /v1/tokens`, every refusal being a 403
//! `outside-gateway` and an `access.denied` event (`outside_gateway`); unbound keys reach
//! everything. Replacing widens or narrows a gateway (`gateway.defined`, revision + 1);
//! deleting it (`gateway.deleted`) or replacing it without a key leaves that key bound to
//! nothing, never unrestricted. Definitions are checked against the
//! workspace (auth configs, tools of the auth config's provider, live keys), and another
//! workspace's gateway answers exactly like an unknown one.
//!
//! The upstream is the shared recording HTTP server (`support::Upstream`), which keeps every
//! request (method, path, headers) and here answers 200 JSON, so each test sees whether, and with which injected
//! credential, a call went out.

use std::time::Duration;

use axum::response::IntoResponse;
use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};

use crate::support::{
    request, Api, Deployment, Hit, Reply, Stack, Upstream, BASE_ENV, NO_RATE_LIMIT,
};

const READ: &str = "custom.read_thing";
const WRITE: &str = "custom.write_thing";
const UPSTREAM_SECRET: &str = "upstream-secret-value";
/// The credentials of the two auth configs' connections (what the upstream must receive).
const KEY_A: &str = "gw-test-key-A-0a1b2c";
const KEY_B: &str = "gw-test-key-B-3d4e5f";

// ---------------------------------------------------------------------------------------------
// A recording upstream
// ---------------------------------------------------------------------------------------------

/// The recording upstream of these tests: answers every request 200 `{"ok": true, ...}`.
async fn recording_upstream() -> Upstream {
    Upstream::start(|hit: Hit| async move {
        // A secret-looking field: kept only redacted, and only when opted in.
        axum::Json(json!({ "ok": true, "path": hit.path, "refresh_token": UPSTREAM_SECRET }))
            .into_response()
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// The service
// ---------------------------------------------------------------------------------------------

impl Reply {
    /// A successful tool call: the upstream answered 200.
    #[track_caller]
    fn expect_ran(&self) {
        assert_eq!(
            (self.status, self.body["status"].as_u64()),
            (StatusCode::OK, Some(200)),
            "{}",
            self.text
        );
    }
}

/// One `serve` instance (embedded log) with its workspace's admin key.
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
        // Workspace tools point at the local upstream (plain http on 127.0.0.1).
        Env {
            d: Deployment::start(Stack::Embedded, &[BASE_ENV, NO_RATE_LIMIT].concat()).await,
            http: Client::new(),
        }
    }

    async fn key(&self, role: &str) -> (String, String) {
        self.key_of(&self.admin, role).await
    }

    /// An `api_key` auth config of provider `custom` sending the key in header `header`.
    async fn api_key_config(&self, admin: &str, header: &str) -> String {
        let r = self
            .post(
                admin,
                "/v1/auth-configs",
                json!({
                    "name": format!("{header} config"), "provider": "custom", "auth_type": "api_key",
                    "api_key": { "key_name": header, "location": "header", "prefix": null },
                }),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        r.str("id")
    }

    /// A connection from credentials (active at once).
    async fn connection(&self, admin: &str, config: &str, user: &str, key: &str) -> String {
        self.credential_connection_by(admin, config, user, json!({ "api_key": key }))
            .await
    }

    /// Defines `custom.read_thing` (GET /read) and `custom.write_thing` (POST /write).
    async fn define_tools(&self, developer: &str, base_url: &str) {
        for (name, method, path, risk) in [
            (READ, "GET", "/read", "read"),
            (WRITE, "POST", "/write", "write"),
        ] {
            let r = self
                .post(
                    developer,
                    "/v1/tools",
                    json!({
                        "name": name, "provider": "custom",
                        "description": format!("Gateway test tool {name}."),
                        "method": method, "base_url": base_url, "path": path,
                        "parameters": { "type": "object" },
                        "required_scopes": [], "risk": risk,
                    }),
                )
                .await;
            assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        }
    }

    async fn execute(&self, bearer: &str, tool: &str, connection_id: &str) -> Reply {
        self.post(
            bearer,
            "/v1/tools/execute",
            json!({ "tool": tool, "connection_id": connection_id }),
        )
        .await
    }

    async fn issue(&self, bearer: &str, tool: &str, connection_id: &str) -> Reply {
        self.post(
            bearer,
            "/v1/tokens",
            json!({ "tool": tool, "connection_id": connection_id }),
        )
        .await
    }

    /// The tool names `bearer` sees in `GET /v1/tools`.
    async fn tool_names(&self, bearer: &str) -> Vec<String> {
        let r = self.get(bearer, "/v1/tools").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        r.body["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|t| t["name"].as_str().expect("name").to_string())
            .collect()
    }

    async fn gateway_ids(&self, bearer: &str) -> Vec<String> {
        let r = self.get(bearer, "/v1/gateways").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        r.body["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|g| g["id"].as_str().expect("id").to_string())
            .collect()
    }

    /// This workspace's audit events of `kind`, oldest first.
    async fn audit(&self, kind: &str) -> Vec<Value> {
        self.audit_events(&format!("kind={kind}")).await
    }

    /// The events of `kind` once `done` holds for them (the audit view follows the log),
    /// each as signed (`body`: kind, actor, payload ...).
    async fn signed_events_until(
        &self,
        kind: &str,
        what: &str,
        done: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let items = self
            .audit_events_until(&format!("kind={kind}"), what, Duration::from_secs(10), done)
            .await;
        let mut out = Vec::new();
        for e in &items {
            let id = e["event_id"].as_str().expect("event_id");
            let r = self
                .get(&self.admin, &format!("/v1/audit/events/{id}"))
                .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
            out.push(r.body["body"].clone());
        }
        out
    }
}

impl Api for Env {
    async fn call(&self, bearer: &str, method: Method, path: &str, body: Option<Value>) -> Reply {
        Reply::of(request(&self.http, &self.svc, bearer, method, path, body)).await
    }

    fn admin(&self) -> &str {
        &self.admin
    }
}

/// A gateway definition: `servers` as (auth config id, tools).
fn gateway(name: &str, servers: &[(&str, &[&str])], keys: &[&str]) -> Value {
    let servers: Vec<Value> = servers
        .iter()
        .map(|(ac, tools)| json!({ "auth_config_id": ac, "tools": tools }))
        .collect();
    json!({ "name": name, "servers": servers, "agent_key_ids": keys })
}

/// What every test starts from: an upstream, the two workspace tools (defined by a
/// developer), auth configs A (`X-Api-Key`) and B (`X-Other-Key`) with one connection each
/// for user alice, and two agent keys: `bound` (to be listed in a gateway) and `unbound`.
struct Fixture {
    env: Env,
    upstream: Upstream,
    developer: String,
    config_a: String,
    config_b: String,
    conn_a: String,
    conn_b: String,
    bound_id: String,
    bound: String,
    unbound_id: String,
    unbound: String,
}

impl Fixture {
    async fn start() -> Fixture {
        let env = Env::start().await;
        let upstream = recording_upstream().await;
        let (_, developer) = env.key("developer").await;
        env.define_tools(&developer, &upstream.base_url).await;
        let config_a = env.api_key_config(&env.admin, "X-Api-Key").await;
        let config_b = env.api_key_config(&env.admin, "X-Other-Key").await;
        let conn_a = env.connection(&env.admin, &config_a, "alice", KEY_A).await;
        let conn_b = env.connection(&env.admin, &config_b, "alice", KEY_B).await;
        let (bound_id, bound) = env.key("agent").await;
        let (unbound_id, unbound) = env.key("agent").await;
        Fixture {
            env,
            upstream,
            developer,
            config_a,
            config_b,
            conn_a,
            conn_b,
            bound_id,
            bound,
            unbound_id,
            unbound,
        }
    }

    /// Asserts the last upstream request was `method path` carrying exactly `key` in
    /// `header` and no other credential.
    #[track_caller]
    fn assert_last_hit(&self, method: &str, path: &str, header: &str, key: &str) {
        let hit = self
            .upstream
            .hits()
            .last()
            .cloned()
            .expect("an upstream hit");
        assert_eq!((hit.method.as_str(), hit.path.as_str()), (method, path));
        assert_eq!(hit.header(header), [key], "{hit:?}");
        let other = if header == "x-api-key" {
            "x-other-key"
        } else {
            "x-api-key"
        };
        assert!(hit.header(other).is_empty(), "{hit:?}");
    }

    /// Everything an unbound key reaches: every tool listed, both tools through both auth
    /// configs, tokens for both connections.
    async fn assert_reaches_everything(&self, key: &str) {
        let env = &self.env;
        let names = env.tool_names(key).await;
        for t in [READ, WRITE, "gmail.send_message", "slack.post_message"] {
            assert!(names.iter().any(|n| n == t), "{t} not in {names:?}");
        }
        for (tool, method, path) in [(READ, "GET", "/read"), (WRITE, "POST", "/write")] {
            env.execute(key, tool, &self.conn_a).await.expect_ran();
            self.assert_last_hit(method, path, "x-api-key", KEY_A);
            env.execute(key, tool, &self.conn_b).await.expect_ran();
            self.assert_last_hit(method, path, "x-other-key", KEY_B);
        }
        for conn in [&self.conn_a, &self.conn_b] {
            let r = env.issue(key, WRITE, conn).await;
            assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 1. A bound key reaches only its gateway; every refusal is a 403 and an access.denied
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bound_key_reaches_only_its_gateways_pairs_and_each_refusal_is_audited() {
    let f = Fixture::start().await;
    let env = &f.env;
    // Before any gateway, the key is unbound: it gets a token for B's connection.
    let early = env.issue(&f.bound, READ, &f.conn_b).await;
    assert_eq!(early.status, StatusCode::CREATED, "{}", early.text);
    let early_token = early.str("token");

    let r = env
        .post(
            // Binding a key is an admin's decision (a developer may then edit the gateway).
            &env.admin,
            "/v1/gateways",
            gateway("support", &[(&f.config_a, &[READ])], &[&f.bound_id]),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let id = r.str("id");
    assert_eq!(r.body["name"], "support");
    assert_eq!(
        r.body["servers"],
        json!([{ "auth_config_id": f.config_a, "tools": [READ] }])
    );
    assert_eq!(r.body["agent_key_ids"], json!([f.bound_id]));
    assert_eq!(r.body["mcp_path"], format!("/mcp/{id}"));
    let fetched = env.get(&env.admin, &format!("/v1/gateways/{id}")).await;
    assert_eq!(fetched.status, StatusCode::OK, "{}", fetched.text);
    assert_eq!(fetched.body, r.body);
    assert_eq!(env.gateway_ids(&env.admin).await, [id.as_str()]);

    // The bound key sees one tool, and runs it through A with A's credential.
    assert_eq!(env.tool_names(&f.bound).await, [READ]);
    env.execute(&f.bound, READ, &f.conn_a).await.expect_ran();
    f.assert_last_hit("GET", "/read", "x-api-key", KEY_A);
    // A token for the allowed pair works, and runs that pair.
    let t = env.issue(&f.bound, READ, &f.conn_a).await;
    assert_eq!(t.status, StatusCode::CREATED, "{}", t.text);
    env.execute(&t.str("token"), READ, &f.conn_a)
        .await
        .expect_ran();
    let upstream_calls = f.upstream.hits().len();
    assert_eq!(upstream_calls, 2);

    // Everything else is outside the gateway: (route, target connection) of each refusal.
    let mut refused: Vec<(&str, &str)> = Vec::new();
    // Another tool through the gateway's auth config.
    env.execute(&f.bound, WRITE, &f.conn_a)
        .await
        .expect(StatusCode::FORBIDDEN, "outside-gateway");
    refused.push(("/v1/tools/execute", &f.conn_a));
    // The gateway's tool through another auth config: by connection id, and by user.
    env.execute(&f.bound, READ, &f.conn_b)
        .await
        .expect(StatusCode::FORBIDDEN, "outside-gateway");
    refused.push(("/v1/tools/execute", &f.conn_b));
    env.post(
        &f.bound,
        "/v1/tools/execute",
        json!({ "tool": READ, "user_id": "alice", "auth_config_id": f.config_b }),
    )
    .await
    .expect(StatusCode::FORBIDDEN, "outside-gateway");
    refused.push(("/v1/tools/execute", ""));
    // A built-in tool nobody put in the gateway.
    env.execute(&f.bound, "slack.post_message", &f.conn_a)
        .await
        .expect(StatusCode::FORBIDDEN, "outside-gateway");
    refused.push(("/v1/tools/execute", &f.conn_a));
    // Tokens: for B's connection (with the gateway's tool, or with no tool), for A's
    // connection with another tool.
    env.issue(&f.bound, READ, &f.conn_b)
        .await
        .expect(StatusCode::FORBIDDEN, "outside-gateway");
    refused.push(("/v1/tokens", &f.conn_b));
    env.post(
        &f.bound,
        "/v1/tokens",
        json!({ "connection_id": f.conn_b, "scopes": [] }),
    )
    .await
    .expect(StatusCode::FORBIDDEN, "outside-gateway");
    refused.push(("/v1/tokens", &f.conn_b));
    env.issue(&f.bound, WRITE, &f.conn_a)
        .await
        .expect(StatusCode::FORBIDDEN, "outside-gateway");
    refused.push(("/v1/tokens", &f.conn_a));
    // A token issued before the key was bound is held to the gateway too.
    env.execute(&early_token, READ, &f.conn_b)
        .await
        .expect(StatusCode::FORBIDDEN, "outside-gateway");
    refused.push(("/v1/tools/execute", &f.conn_b));
    // No refused call reached the upstream.
    assert_eq!(f.upstream.hits().len(), upstream_calls);

    // Each refusal is one access.denied (outside_gateway) by the bound key, on its route.
    let n = refused.len();
    let denials = env
        .signed_events_until("access.denied", &format!("{n} denials"), |items| {
            items.len() >= n
        })
        .await;
    let mut seen: Vec<(String, String)> = denials
        .iter()
        .map(|d| {
            let p = &d["payload"];
            assert_eq!(p["reason"], "outside_gateway", "{d}");
            assert_eq!(p["status"], 403, "{d}");
            assert_eq!(p["method"], "POST", "{d}");
            assert_eq!(d["actor"]["id"], f.bound_id.as_str(), "{d}");
            (
                p["route"].as_str().expect("route").to_string(),
                p["target_id"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let mut expected: Vec<(String, String)> = refused
        .iter()
        .map(|(r, t)| (r.to_string(), t.to_string()))
        .collect();
    seen.sort();
    expected.sort();
    assert_eq!(seen, expected);

    // An unbound key of the same workspace reaches everything, and is never refused.
    f.assert_reaches_everything(&f.unbound).await;
    let denials = env.audit("access.denied").await;
    assert_eq!(denials.len(), n, "{denials:#?}");
    assert!(denials
        .iter()
        .all(|d| d["actor"]["id"] != f.unbound_id.as_str()));
}

// ---------------------------------------------------------------------------------------------
// 2. Replace widens or narrows the gateway; leaving a key out or deleting the gateway
//    leaves the key bound to nothing
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replacing_a_gateway_changes_what_its_keys_reach_and_deleting_it_leaves_them_nothing() {
    let f = Fixture::start().await;
    let env = &f.env;
    let r = env
        .post(
            // Binding a key is an admin's decision (a developer may then edit the gateway).
            &env.admin,
            "/v1/gateways",
            gateway("support", &[(&f.config_a, &[READ])], &[&f.bound_id]),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let id = r.str("id");
    let path = format!("/v1/gateways/{id}");
    env.execute(&f.bound, WRITE, &f.conn_a)
        .await
        .expect(StatusCode::FORBIDDEN, "outside-gateway");

    // Replace: the write tool joins the server of A.
    let r = env
        .call(
            &f.developer,
            Method::PUT,
            &path,
            Some(gateway(
                "support",
                &[(&f.config_a, &[READ, WRITE])],
                &[&f.bound_id],
            )),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.str("id"), id);
    assert_eq!(r.body["servers"][0]["tools"], json!([READ, WRITE]));
    assert_eq!(env.tool_names(&f.bound).await, [READ, WRITE]);
    env.execute(&f.bound, WRITE, &f.conn_a).await.expect_ran();
    f.assert_last_hit("POST", "/write", "x-api-key", KEY_A);
    let t = env.issue(&f.bound, WRITE, &f.conn_a).await;
    assert_eq!(t.status, StatusCode::CREATED, "{}", t.text);
    // Still nothing through B.
    env.execute(&f.bound, WRITE, &f.conn_b)
        .await
        .expect(StatusCode::FORBIDDEN, "outside-gateway");

    // Replace again, narrower: only B's server, with the read tool.
    let r = env
        .call(
            &f.developer,
            Method::PUT,
            &path,
            Some(gateway(
                "support",
                &[(&f.config_b, &[READ])],
                &[&f.bound_id],
            )),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    env.execute(&f.bound, WRITE, &f.conn_a)
        .await
        .expect(StatusCode::FORBIDDEN, "outside-gateway");
    env.execute(&f.bound, READ, &f.conn_a)
        .await
        .expect(StatusCode::FORBIDDEN, "outside-gateway");
    env.execute(&f.bound, READ, &f.conn_b).await.expect_ran();
    f.assert_last_hit("GET", "/read", "x-other-key", KEY_B);

    // Replace without the key: the key is left bound to nothing, never to everything.
    let no_keys: &[&str] = &[];
    let r = env
        .call(
            &f.developer,
            Method::PUT,
            &path,
            Some(gateway("support", &[(&f.config_b, &[READ])], no_keys)),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(env.tool_names(&f.bound).await.is_empty());
    let hits = f.upstream.hits().len();
    for (tool, conn) in [(READ, &f.conn_b), (WRITE, &f.conn_a), (READ, &f.conn_a)] {
        env.execute(&f.bound, tool, conn)
            .await
            .expect(StatusCode::FORBIDDEN, "outside-gateway");
        env.issue(&f.bound, tool, conn)
            .await
            .expect(StatusCode::FORBIDDEN, "outside-gateway");
    }
    assert_eq!(f.upstream.hits().len(), hits, "no call went out");
    // Listed again (by the admin: a developer keeps only keys already bound), it reaches
    // the gateway's pairs again.
    let r = env
        .call(
            &env.admin,
            Method::PUT,
            &path,
            Some(gateway(
                "support",
                &[(&f.config_b, &[READ])],
                &[&f.bound_id],
            )),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    env.execute(&f.bound, READ, &f.conn_b).await.expect_ran();
    env.execute(&f.bound, WRITE, &f.conn_a)
        .await
        .expect(StatusCode::FORBIDDEN, "outside-gateway");

    // Delete: the gateway is gone for every route.
    let r = env.call(&f.developer, Method::DELETE, &path, None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    env.get(&env.admin, &path)
        .await
        .expect(StatusCode::NOT_FOUND, "not-found");
    env.call(&f.developer, Method::DELETE, &path, None)
        .await
        .expect(StatusCode::NOT_FOUND, "not-found");
    env.call(
        &f.developer,
        Method::PUT,
        &path,
        Some(gateway(
            "support",
            &[(&f.config_a, &[READ])],
            &[&f.bound_id],
        )),
    )
    .await
    .expect(StatusCode::NOT_FOUND, "not-found");
    assert!(env.gateway_ids(&env.admin).await.is_empty());

    // Fail closed: deleting a gateway never widens what its keys reach. A key bound only to
    // deleted gateways reaches nothing.
    assert!(env.tool_names(&f.bound).await.is_empty());
    env.execute(&f.bound, READ, &f.conn_b)
        .await
        .expect(StatusCode::FORBIDDEN, "outside-gateway");
    env.execute(&f.bound, WRITE, &f.conn_a)
        .await
        .expect(StatusCode::FORBIDDEN, "outside-gateway");

    // The history: gateway.defined revisions 1 to 5 (each the whole definition), then
    // gateway.deleted, all of this gateway's aggregate and by the developer.
    let defined = env
        .signed_events_until("gateway.defined", "5 definitions", |items| items.len() >= 5)
        .await;
    let revisions: Vec<u64> = defined
        .iter()
        .map(|e| e["payload"]["revision"].as_u64().expect("revision"))
        .collect();
    assert_eq!(revisions, [1, 2, 3, 4, 5]);
    assert_eq!(
        defined[1]["payload"]["servers"],
        json!([{ "auth_config_id": f.config_a, "tools": [READ, WRITE] }])
    );
    assert_eq!(defined[2]["payload"]["agent_key_ids"], json!([f.bound_id]));
    assert_eq!(defined[3]["payload"]["agent_key_ids"], json!([]));
    assert_eq!(defined[4]["payload"]["agent_key_ids"], json!([f.bound_id]));
    let deleted = env
        .signed_events_until("gateway.deleted", "the deletion", |items| !items.is_empty())
        .await;
    assert_eq!(deleted.len(), 1);
    assert_eq!(deleted[0]["payload"]["name"], "support");
    for e in defined.iter().chain(&deleted) {
        assert_eq!(e["aggregate_id"], id.as_str(), "{e}");
        assert_eq!(e["actor"]["type"], "api_key", "{e}");
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Validation, roles, other workspaces, revisions
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn definitions_are_checked_and_another_workspaces_gateway_is_unknown() {
    let f = Fixture::start().await;
    let env = &f.env;
    let (_, viewer) = env.key("viewer").await;
    let (revoked_id, _) = env.key("agent").await;
    let r = env
        .call(
            &env.admin,
            Method::DELETE,
            &format!("/v1/api-keys/{revoked_id}"),
            None,
        )
        .await;
    assert!(r.status.is_success(), "{}", r.text);
    let other_admin = env.other_workspace("Other").await;
    let (other_key_id, _) = env.key_of(&other_admin, "agent").await;
    let unknown = uuid::Uuid::now_v7().to_string();

    // Each invalid definition is a 422 naming what is wrong, and creates nothing.
    let a = f.config_a.as_str();
    let invalid: Vec<(&str, Value)> = vec![
        (
            "unknown auth config",
            gateway("g", &[(&unknown, &[READ])], &[]),
        ),
        (
            "a tool of another provider",
            gateway("g", &[(a, &["gmail.send_message"])], &[]),
        ),
        (
            "an unknown tool",
            gateway("g", &[(a, &["custom.no_such_tool"])], &[]),
        ),
        (
            "a revoked key",
            gateway("g", &[(a, &[READ])], &[&revoked_id]),
        ),
        (
            "another workspace's key",
            gateway("g", &[(a, &[READ])], &[&other_key_id]),
        ),
        ("an unknown key", gateway("g", &[(a, &[READ])], &[&unknown])),
        ("no servers", gateway("g", &[], &[])),
        ("a server without tools", gateway("g", &[(a, &[])], &[])),
        (
            "the same auth config twice",
            gateway("g", &[(a, &[READ]), (a, &[WRITE])], &[]),
        ),
        ("an empty name", gateway("", &[(a, &[READ])], &[])),
    ];
    for (what, body) in &invalid {
        let r = env.post(&f.developer, "/v1/gateways", body.clone()).await;
        assert_eq!(
            (r.status, r.problem()),
            (StatusCode::UNPROCESSABLE_ENTITY, "validation-failed"),
            "{what}: {}",
            r.text
        );
    }
    // Only admins and developers define gateways.
    let good = gateway("support", &[(a, &[READ])], &[&f.bound_id]);
    for key in [&viewer, &f.bound] {
        env.post(key, "/v1/gateways", good.clone())
            .await
            .expect(StatusCode::FORBIDDEN, "forbidden");
    }
    assert!(env.gateway_ids(&env.admin).await.is_empty());
    // None of this bound the key.
    assert_eq!(
        env.tool_names(&f.bound).await.len(),
        env.tool_names(&f.unbound).await.len()
    );

    let r = env.post(&env.admin, "/v1/gateways", good.clone()).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let id = r.str("id");
    let path = format!("/v1/gateways/{id}");
    // Viewers read gateways; agents do not.
    assert_eq!(env.gateway_ids(&viewer).await, [id.as_str()]);
    env.get(&f.bound, &path)
        .await
        .expect(StatusCode::FORBIDDEN, "forbidden");
    // An invalid replacement changes nothing (and is no revision).
    for (what, body) in &invalid {
        let r = env
            .call(&f.developer, Method::PUT, &path, Some(body.clone()))
            .await;
        assert_eq!(
            (r.status, r.problem()),
            (StatusCode::UNPROCESSABLE_ENTITY, "validation-failed"),
            "PUT {what}: {}",
            r.text
        );
    }
    env.call(&viewer, Method::PUT, &path, Some(good.clone()))
        .await
        .expect(StatusCode::FORBIDDEN, "forbidden");
    env.call(&viewer, Method::DELETE, &path, None)
        .await
        .expect(StatusCode::FORBIDDEN, "forbidden");
    let unchanged = env.get(&env.admin, &path).await;
    assert_eq!(unchanged.status, StatusCode::OK, "{}", unchanged.text);
    assert_eq!(unchanged.body, r.body);
    let r = env
        .call(
            // A new binding: the admin's (a developer keeps only the keys already bound).
            &env.admin,
            Method::PUT,
            &path,
            Some(gateway(
                "support v2",
                &[(a, &[READ]), (&f.config_b, &[READ, WRITE])],
                &[&f.bound_id, &f.unbound_id],
            )),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["name"], "support v2");
    let defined = env
        .signed_events_until("gateway.defined", "2 definitions", |items| items.len() >= 2)
        .await;
    let revisions: Vec<(u64, &str)> = defined
        .iter()
        .map(|e| {
            (
                e["payload"]["revision"].as_u64().expect("revision"),
                e["payload"]["name"].as_str().expect("name"),
            )
        })
        .collect();
    assert_eq!(revisions, [(1, "support"), (2, "support v2")]);

    // Another workspace's gateway answers exactly like an unknown id, for every method,
    // and is left as it was.
    let other_upstream = recording_upstream().await;
    env.define_tools(&other_admin, &other_upstream.base_url)
        .await;
    let other_config = env.api_key_config(&other_admin, "X-Api-Key").await;
    let r = env
        .post(
            &other_admin,
            "/v1/gateways",
            gateway("theirs", &[(&other_config, &[READ])], &[]),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let theirs = r.str("id");
    let before = env
        .get(&other_admin, &format!("/v1/gateways/{theirs}"))
        .await;
    assert_eq!(before.status, StatusCode::OK, "{}", before.text);
    for (method, body) in [
        (Method::GET, None),
        (Method::PUT, Some(good.clone())),
        (Method::DELETE, None),
    ] {
        let elsewhere = env
            .call(
                &env.admin,
                method.clone(),
                &format!("/v1/gateways/{theirs}"),
                body.clone(),
            )
            .await;
        let nowhere = env
            .call(
                &env.admin,
                method.clone(),
                &format!("/v1/gateways/{unknown}"),
                body,
            )
            .await;
        elsewhere.expect(StatusCode::NOT_FOUND, "not-found");
        assert_eq!(
            (elsewhere.status, &elsewhere.text),
            (nowhere.status, &nowhere.text),
            "{method}"
        );
    }
    let after = env
        .get(&other_admin, &format!("/v1/gateways/{theirs}"))
        .await;
    assert_eq!(after.body, before.body);
    assert_eq!(env.gateway_ids(&other_admin).await, [theirs.as_str()]);
    assert_eq!(env.gateway_ids(&env.admin).await, [id.as_str()]);
    // Reaching into another workspace is audited (the unknown id is not).
    let denials = env
        .signed_events_until("access.denied", "3 other-workspace denials", |items| {
            items
                .iter()
                .filter(|d| d["reason"] == "other_workspace")
                .count()
                >= 3
        })
        .await;
    let reaching: Vec<&Value> = denials
        .iter()
        .filter(|d| d["payload"]["target_id"] == theirs.as_str())
        .collect();
    assert_eq!(reaching.len(), 3, "{denials:#?}");
    assert!(reaching
        .iter()
        .all(|d| d["payload"]["reason"] == "other_workspace" && d["payload"]["status"] == 404));
    assert!(!denials
        .iter()
        .any(|d| d["payload"]["target_id"] == unknown.as_str()));
}

// ---------------------------------------------------------------------------------------------
// Known bug: the gateway check comes after connection resolution
// ---------------------------------------------------------------------------------------------

/// A bound key naming a user and an auth config outside its gateways is refused (403
/// `outside-gateway`, audited) before any connection is resolved: it can neither start a
/// connect flow for that user on such an auth config nor learn (409 vs 403) whether the user
/// has a connection there. (Regression: connect on demand once ran before the gateway check.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bound_key_cannot_start_connect_flows_outside_its_gateways() {
    let f = Fixture::start().await;
    let env = &f.env;
    let r = env
        .post(
            &env.admin,
            "/v1/auth-configs",
            json!({
                "name": "OAuth outside the gateway", "provider": "custom", "auth_type": "oauth2",
                "oauth2": {
                    "client_id": "gw-client", "client_secret": "gw-cl1ent-s3cret",
                    "authorization_url": "http://127.0.0.1:9/authorize",
                    "token_url": "http://127.0.0.1:9/token",
                    "client_auth_method": "client_secret_basic",
                    "scopes": ["read"],
                    "redirect_urls": ["https://app.example.com/connected"],
                }
            }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let config_c = r.str("id");
    let r = env
        .post(
            // Binding a key is an admin's decision (a developer may then edit the gateway).
            &env.admin,
            "/v1/gateways",
            gateway("support", &[(&f.config_a, &[READ])], &[&f.bound_id]),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    for config in [&config_c, &f.config_b] {
        let by_user = json!({ "tool": READ, "user_id": "bob", "auth_config_id": config });
        env.post(&f.bound, "/v1/tools/execute", by_user.clone())
            .await
            .expect(StatusCode::FORBIDDEN, "outside-gateway");
        env.post(&f.bound, "/v1/tokens", by_user)
            .await
            .expect(StatusCode::FORBIDDEN, "outside-gateway");
    }
    let started = env.audit("connection.initiated").await;
    assert!(started.is_empty(), "{started:#?}");
    let denials = env
        .signed_events_until("access.denied", "4 denials", |items| items.len() >= 4)
        .await;
    assert!(denials
        .iter()
        .all(|d| d["payload"]["reason"] == "outside_gateway"));
}

// ---------------------------------------------------------------------------------------------
// 5. Response bodies: kept only when the workspace opts in, and then redacted
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_bodies_are_kept_only_when_the_workspace_opts_in_and_then_redacted() {
    let f = Fixture::start().await;
    let env = &f.env;
    const ROUTE: &str = "/v1/workspace/tool-response-storage";
    env.execute(&f.unbound, READ, &f.conn_a).await.expect_ran();
    // Only an admin opts in; setting what is already set answers 200 and writes nothing
    // (one `workspace.tool_response_storage_set` below).
    let r = env
        .call(
            &f.developer,
            Method::PUT,
            ROUTE,
            Some(json!({ "store_tool_responses": true })),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let r = env
        .call(
            &env.admin,
            Method::PUT,
            ROUTE,
            Some(json!({ "store_tool_responses": "yes" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    let r = env
        .call(
            &env.admin,
            Method::PUT,
            ROUTE,
            Some(json!({ "store_tool_responses": true })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = env
        .call(
            &env.admin,
            Method::PUT,
            ROUTE,
            Some(json!({ "store_tool_responses": true })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    env.execute(&f.unbound, READ, &f.conn_a).await.expect_ran();
    let done = env
        .signed_events_until("tool.completed", "two calls", |items| items.len() >= 2)
        .await;
    assert_eq!(done[0]["payload"]["response"], Value::Null, "{:#}", done[0]);
    assert_eq!(
        done[1]["payload"]["response"],
        json!({ "ok": true, "path": "/read", "refresh_token": "[redacted]" }),
        "{:#}",
        done[1]
    );
    for e in &done {
        assert!(!e.to_string().contains(UPSTREAM_SECRET), "{e:#}");
    }
    // The agent itself still gets the whole answer (it is its own upstream's).
    let r = env.execute(&f.unbound, READ, &f.conn_a).await;
    assert_eq!(r.body["body"]["refresh_token"], UPSTREAM_SECRET);
    let set = env
        .signed_events_until(
            "workspace.tool_response_storage_set",
            "the opt-in",
            |items| !items.is_empty(),
        )
        .await;
    assert_eq!(set.len(), 1);
    assert_eq!(set[0]["payload"], json!({ "store_tool_responses": true }));
}

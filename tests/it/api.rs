//! Workspaces, roles and API keys over real HTTP: every route × every role × own / other
//! workspace / no key / revoked key / expired key, each refusal audited in the ledger; bad
//! input; rate limits; and the OpenAPI document matching the router.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};

use authledger::api::routes::{role_allows, Permission, ALL_ROLES, ROUTES};
use authledger::domain::Role;
use authledger::ledger::envelope::open_envelope;
use authledger::ledger::sqlite_log::SqliteEventLog;
use authledger::ledger::EventLog;

use crate::harness::{args, run_cli};
use crate::support::{Deployment, Stack, TestClock};

struct Env {
    d: Deployment,
    http: Client,
    other_admin: String,
}

impl std::ops::Deref for Env {
    type Target = Deployment;
    fn deref(&self) -> &Deployment {
        &self.d
    }
}

fn role_name(r: Role) -> &'static str {
    r.as_str()
}

impl Env {
    async fn start(envs: &[(&str, &str)]) -> Env {
        let d = Deployment::start(Stack::Embedded, envs).await;
        let other_admin = d.other_workspace("Other").await;
        Env {
            d,
            http: Client::new(),
            other_admin,
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, self.svc.url(path));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let text = resp.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Creates a key with the admin key; returns (id, key).
    async fn create_key(&self, role: Role, expires_at: Option<String>) -> (String, String) {
        let (status, v) = self
            .call(Method::POST, "/v1/api-keys", Some(&self.admin), Some(json!({
                "name": format!("{} key", role_name(role)), "role": role_name(role), "expires_at": expires_at
            })))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
        (
            v["id"].as_str().expect("id").to_string(),
            v["key"].as_str().expect("key").to_string(),
        )
    }

    /// A member invited by `admin` with a fresh email (a viewer, not joined): their id.
    async fn invite_member(&self, admin: &str) -> String {
        let email = format!("m{}@example.com", uuid::Uuid::now_v7().simple());
        let (status, v) = self
            .call(
                Method::POST,
                "/v1/members",
                Some(admin),
                Some(json!({ "email": email, "role": "viewer" })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
        v["id"].as_str().expect("id").to_string()
    }

    /// Every `access.denied` event so far: (status, reason, method, route, actor type).
    async fn denials(&self) -> Vec<(u64, String, String, String, String)> {
        let log = SqliteEventLog::open(&self.dir.path().join("data/ledger.db"))
            .await
            .expect("open log");
        let mut out = Vec::new();
        for e in log.read_from(1, 100_000).await.expect("read") {
            let body = open_envelope(&e.envelope).expect("envelope").body;
            if body.kind == "access.denied" {
                let p = &body.payload;
                out.push((
                    p["status"].as_u64().expect("status"),
                    p["reason"].as_str().expect("reason").to_string(),
                    p["method"].as_str().expect("method").to_string(),
                    p["route"].as_str().expect("route").to_string(),
                    serde_json::to_value(body.actor.actor_type)
                        .expect("actor")
                        .as_str()
                        .expect("s")
                        .to_string(),
                ));
            }
        }
        log.close().await;
        out
    }
}

fn path_for(template: &str, id: &str) -> String {
    template.replace("{id}", id)
}

/// What an allowed call answers: its success status, or, where the target's state refuses an
/// authorized call, that refusal and its problem type.
fn success_status(method: &str, path: &str) -> (StatusCode, Option<&'static str>) {
    match (method, path) {
        // Authorized, but an api_key connection has no refresh token to refresh with.
        ("POST", "/v1/connections/{id}/refresh") => (StatusCode::CONFLICT, Some("conflict")),
        // Authorized, but an api_key auth config has no connector test.
        ("POST", "/v1/auth-configs/{id}/test") => {
            (StatusCode::UNPROCESSABLE_ENTITY, Some("validation-failed"))
        }
        // Authorized; the token request asks for a lifetime beyond the maximum.
        ("POST", "/v1/tokens") => (StatusCode::UNPROCESSABLE_ENTITY, Some("validation-failed")),
        // Authorized; a bare POST is not an MCP message (rmcp wants
        // `Accept: application/json, text/event-stream`).
        ("POST", "/mcp") | ("POST", "/mcp/{gateway_id}") => (StatusCode::NOT_ACCEPTABLE, None),
        // Authorized; the api_key auth config makes no dynamic database credentials.
        ("POST", "/v1/connections/{id}/dynamic-credentials") => {
            (StatusCode::UNPROCESSABLE_ENTITY, Some("validation-failed"))
        }
        // Authorized; the api_key auth config has not opted in to token release.
        ("POST", "/v1/connections/{id}/access-token") => {
            (StatusCode::FORBIDDEN, Some("token-release-disabled"))
        }
        // Authorized, but the invitee has no second factor to reset.
        ("POST", "/v1/members/{id}/second-factor/reset") => {
            (StatusCode::CONFLICT, Some("conflict"))
        }
        // Authorized; the body is not a witness's cosignature (nothing is recorded).
        ("POST", "/v1/audit/checkpoints/{id}/cosignatures") => {
            (StatusCode::UNPROCESSABLE_ENTITY, Some("validation-failed"))
        }
        ("POST", "/v1/tools/execute") => {
            (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid-arguments"))
        }
        // Authorized; the call did not succeed, so there is nothing to undo.
        ("POST", "/v1/tool-calls/{id}/undo") => (StatusCode::CONFLICT, Some("not-undoable")),
        ("POST", "/v1/webhooks/{id}/replay") => (StatusCode::ACCEPTED, None),
        ("POST", "/v1/webhooks/{id}/rotate-secret") => (StatusCode::OK, None),
        ("POST", p)
            if p.ends_with("/disable")
                || p.ends_with("/enable")
                || p.ends_with("/revoke")
                || p.ends_with("/approve")
                || p.ends_with("/deny") =>
        {
            (StatusCode::OK, None)
        }
        ("POST", _) => (StatusCode::CREATED, None),
        ("DELETE", _) => (StatusCode::NO_CONTENT, None),
        _ => (StatusCode::OK, None),
    }
}

/// A simple auth config body (no secret).
fn auth_config_body(name: &str) -> Value {
    json!({ "name": name, "provider": "custom", "auth_type": "api_key",
            "api_key": { "key_name": "X-Api-Key", "location": "header", "prefix": null } })
}

impl Env {
    /// Creates an auth config with `key`; returns its id.
    async fn create_auth_config(&self, key: &str, disabled: bool) -> String {
        let (s, v) = self
            .call(
                Method::POST,
                "/v1/auth-configs",
                Some(key),
                Some(auth_config_body("table target")),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let id = v["id"].as_str().expect("id").to_string();
        if disabled {
            let (s, v) = self
                .call(
                    Method::POST,
                    &format!("/v1/auth-configs/{id}/disable"),
                    Some(key),
                    None,
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{v}");
        }
        id
    }

    /// Creates a connection from an `api_key` auth config with `key`; returns its id. Checks
    /// the write's answer: active at once, and its log position in body and header.
    async fn create_connection(&self, key: &str, auth_config_id: &str) -> String {
        let resp = self
            .http
            .post(self.svc.url("/v1/connections"))
            .bearer_auth(key)
            .json(&connection_body(auth_config_id))
            .send()
            .await
            .expect("send");
        let status = resp.status();
        let position = resp
            .headers()
            .get("authledger-position")
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.parse::<u64>().ok());
        let v: Value = resp.json().await.expect("json");
        assert_eq!(status, StatusCode::CREATED, "{v}");
        assert_eq!(v["status"], "active", "{v}");
        assert!(position.is_some(), "a write answers Authledger-Position");
        assert_eq!(v["position"].as_u64(), position, "{v}");
        v["id"].as_str().expect("id").to_string()
    }

    /// The path of a fresh target of the kind the route names (the template itself when it
    /// names no id).
    async fn target_for(&self, fx: &Fixtures, path: &str) -> String {
        let id = if path == "/v1/audit/access" {
            return format!("{path}?user_id=table-user");
        } else if path == "/mcp/{gateway_id}" {
            let id = self.create_gateway(&self.admin, &fx.auth_config).await;
            return path.replace("{gateway_id}", &id);
        } else if !path.contains("{id}") && !path.contains("{name}") {
            return path.to_string();
        } else if path.starts_with("/v1/auth-configs") {
            self.create_auth_config(&self.admin, path.ends_with("/enable"))
                .await
        } else if path.starts_with("/v1/connections") {
            self.create_connection(&self.admin, &fx.auth_config).await
        } else if path == "/v1/audit/events/{id}" {
            fx.event.clone()
        } else if path == "/v1/audit/checkpoints/{id}/consistency" {
            return format!("{}?from=1", path_for(path, &fx.checkpoint));
        } else if path == "/v1/audit/checkpoints/{id}/cosignatures" {
            fx.checkpoint.clone()
        } else if path.starts_with("/v1/tokens") {
            self.create_token(&self.admin, &fx.connection).await
        } else if path.starts_with("/v1/gateways") {
            self.create_gateway(&self.admin, &fx.auth_config).await
        } else if path.starts_with("/v1/approvals") {
            self.create_approval(&self.admin, &fx.connection).await
        } else if path == "/v1/tools/{name}" {
            return path.replace("{name}", &self.fresh_tool().await);
        } else if path.starts_with("/v1/members") {
            self.invite_member(&self.admin).await
        } else if path.starts_with("/v1/tool-calls") {
            self.create_tool_call(&self.admin, &fx.connection).await
        } else if path.starts_with("/v1/webhooks") {
            self.create_webhook(&self.admin).await
        } else {
            self.create_key(Role::Viewer, None).await.0
        };
        path_for(path, &id)
    }

    /// The id of one event of the workspace `key` belongs to, from the audit view.
    async fn some_event(&self, key: &str) -> String {
        let (s, v) = self
            .call(
                Method::GET,
                "/v1/audit/events?kind=api_key.created&limit=1",
                Some(key),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v["items"][0]["event_id"]
            .as_str()
            .expect("event id")
            .to_string()
    }

    /// The sequence number of the newest signed checkpoint, once there is one.
    async fn some_checkpoint(&self) -> String {
        for _ in 0..100 {
            let (s, v) = self
                .call(
                    Method::GET,
                    "/v1/audit/checkpoints",
                    Some(&self.admin),
                    None,
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{v}");
            if let Some(last) = v["items"].as_array().and_then(|a| a.last()) {
                return last["sequence"].as_u64().expect("sequence").to_string();
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("no checkpoint within 20 s");
    }
}

/// Ids of the caller's own workspace that the table's targets and bodies need.
struct Fixtures {
    /// An `api_key` auth config: connections are made from it.
    auth_config: String,
    /// An active connection from it (tokens and tool calls name it).
    connection: String,
    /// An event of the workspace (audit view).
    event: String,
    /// A signed checkpoint's sequence number (checkpoints cover the whole log).
    checkpoint: String,
}

/// A workspace tool for the `custom` provider of `auth_config_body` (never called here).
fn tool_body(name: &str, risk: &str) -> Value {
    json!({ "name": name, "provider": "custom", "description": "a tool of the table",
            "method": "GET", "base_url": "https://api.example.invalid", "path": "/things",
            "parameters": { "type": "object", "properties": { "q": { "type": "string" } },
                            "additionalProperties": false },
            "risk": risk })
}

const TABLE_TOOL: &str = "custom.table_read";

fn webhook_body() -> Value {
    json!({ "url": "https://198.51.100.7/table", "enabled": false })
}

fn gateway_body(auth_config: &str) -> Value {
    json!({ "name": "table gateway",
            "servers": [{ "auth_config_id": auth_config, "tools": [TABLE_TOOL] }] })
}
const TABLE_DESTROY: &str = "custom.table_destroy";

impl Env {
    /// Defines the table's two workspace tools with `key`.
    async fn define_tools(&self, key: &str) {
        for (name, risk) in [(TABLE_TOOL, "read"), (TABLE_DESTROY, "destructive")] {
            let (s, v) = self
                .call(
                    Method::POST,
                    "/v1/tools",
                    Some(key),
                    Some(tool_body(name, risk)),
                )
                .await;
            assert_eq!(s, StatusCode::CREATED, "{v}");
        }
    }

    /// A fresh workspace tool's name (defined with the admin key).
    async fn fresh_tool(&self) -> String {
        let name = format!("custom.t{}", uuid::Uuid::now_v7().simple());
        let (s, v) = self
            .call(
                Method::POST,
                "/v1/tools",
                Some(&self.admin),
                Some(tool_body(&name, "read")),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        name
    }

    /// A webhook made with `key` that is off (no delivery is attempted from the table).
    async fn create_webhook(&self, key: &str) -> String {
        let (s, v) = self
            .call(
                Method::POST,
                "/v1/webhooks",
                Some(key),
                Some(webhook_body()),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        v["id"].as_str().expect("id").to_string()
    }

    /// Creates a gateway over `auth_config` with `key`; returns its id.
    async fn create_gateway(&self, key: &str, auth_config: &str) -> String {
        let (s, v) = self
            .call(
                Method::POST,
                "/v1/gateways",
                Some(key),
                Some(gateway_body(auth_config)),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        v["id"].as_str().expect("id").to_string()
    }

    /// Issues a scoped token for `connection` with `key`; returns its id.
    async fn create_token(&self, key: &str, connection: &str) -> String {
        let (s, v) = self
            .call(
                Method::POST,
                "/v1/tokens",
                Some(key),
                Some(json!({ "connection_id": connection, "tool": TABLE_TOOL })),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        v["id"].as_str().expect("id").to_string()
    }

    /// Asks for a destructive call on `connection` with `key`; returns the approval id.
    async fn create_approval(&self, key: &str, connection: &str) -> String {
        let (s, v) = self
            .call(
                Method::POST,
                "/v1/tools/execute",
                Some(key),
                Some(
                    json!({ "tool": TABLE_DESTROY, "connection_id": connection, "arguments": {} }),
                ),
            )
            .await;
        assert_eq!(
            (s, v["type"].as_str()),
            (
                StatusCode::FORBIDDEN,
                Some("https://authledger.dev/problems/approval-required")
            ),
            "{v}"
        );
        v["approval_id"].as_str().expect("approval id").to_string()
    }

    /// A call on `connection` with `key` whose upstream cannot be reached (it is recorded,
    /// and has no undo); returns its id.
    async fn create_tool_call(&self, key: &str, connection: &str) -> String {
        let body = json!({ "tool": TABLE_TOOL, "connection_id": connection, "arguments": {} });
        let (s, v) = self
            .call(Method::POST, "/v1/tools/execute", Some(key), Some(body))
            .await;
        assert!(s.is_server_error(), "{s}: {v}");
        v["tool_call_id"]
            .as_str()
            .expect("tool call id")
            .to_string()
    }
}

/// A connection from an `api_key` auth config: the end user's key as credentials.
fn connection_body(auth_config_id: &str) -> Value {
    json!({ "auth_config_id": auth_config_id, "user_id": "table-user",
            "credentials": { "api_key": "end-user-secret" } })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_by_every_caller_is_allowed_or_refused_and_refusals_are_audited() {
    // A checkpoint every second, so the consistency route has one to name. No request rate
    // limit: every route is called by every key in a burst (the limiter has its own test).
    // The service's clock is the test's, to expire a key.
    let clock = TestClock::new();
    let env = Env::start(
        &[
            &[
                ("AUTHLEDGER_CHECKPOINT_SCHEDULE", "* * * * * *"),
                clock.env(),
            ][..],
            crate::support::NO_RATE_LIMIT,
        ]
        .concat(),
    )
    .await;
    let mut keys: Vec<(Role, String)> = vec![(Role::Admin, env.admin.clone())];
    for role in ALL_ROLES.into_iter().filter(|r| *r != Role::Admin) {
        keys.push((role, env.create_key(role, None).await.1));
    }
    let (revoked_id, revoked) = env.create_key(Role::Admin, None).await;
    let (s, _) = env
        .call(
            Method::DELETE,
            &format!("/v1/api-keys/{revoked_id}"),
            Some(&env.admin),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let expiry = clock.now() + time::Duration::seconds(30);
    let soon = expiry
        .format(&time::format_description::well_known::Rfc3339)
        .expect("time");
    let (_, expired) = env.create_key(Role::Admin, Some(soon)).await;
    // The service's time, moved past the key's expiry.
    clock.advance(Duration::from_secs(60));
    // Another workspace's key id, for the isolation column.
    let (s, other_keys) = env
        .call(Method::GET, "/v1/api-keys", Some(&env.other_admin), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    let other_id = other_keys["items"][0]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let other_auth_config = env.create_auth_config(&env.other_admin, false).await;
    let other_connection = env
        .create_connection(&env.other_admin, &other_auth_config)
        .await;
    let other_event = env.some_event(&env.other_admin).await;
    env.define_tools(&env.other_admin).await;
    let other_token = env.create_token(&env.other_admin, &other_connection).await;
    let other_approval = env
        .create_approval(&env.other_admin, &other_connection)
        .await;
    let other_tool_call = env
        .create_tool_call(&env.other_admin, &other_connection)
        .await;
    let other_gateway = env
        .create_gateway(&env.other_admin, &other_auth_config)
        .await;
    let other_member = env.invite_member(&env.other_admin).await;
    let other_webhook = env.create_webhook(&env.other_admin).await;
    env.define_tools(&env.admin).await;
    let auth_config = env.create_auth_config(&env.admin, false).await;
    let fx = Fixtures {
        connection: env.create_connection(&env.admin, &auth_config).await,
        auth_config,
        event: env.some_event(&env.admin).await,
        checkpoint: env.some_checkpoint().await,
    };

    // Setup itself may have been refused (polling a key before it was projected).
    let baseline = env.denials().await.len();
    let mut expected_denials: Vec<(u64, String, String, String)> = Vec::new();
    for spec in ROUTES.iter().filter(|r| r.permission != Permission::Public) {
        let method = Method::from_bytes(spec.method.as_bytes()).expect("method");
        let body = match (spec.method, spec.path) {
            ("POST", "/v1/auth-configs") => Some(auth_config_body("made in the table")),
            ("POST", "/v1/auth-configs/{id}/test") => Some(json!({})),
            ("POST", "/v1/audit/checkpoints/{id}/cosignatures") => {
                Some(json!({ "witness_key": "w+00000000+AA==", "cosignature": "AA==" }))
            }
            ("POST", "/v1/connections") => Some(connection_body(&fx.auth_config)),
            ("POST", "/v1/gateways") | ("PUT", "/v1/gateways/{id}") => {
                Some(gateway_body(&fx.auth_config))
            }
            ("POST", "/v1/tokens") => {
                Some(json!({ "connection_id": fx.connection, "ttl_seconds": 5000 }))
            }
            ("POST", "/v1/tools/execute") => Some(
                json!({ "tool": TABLE_TOOL, "connection_id": fx.connection, "arguments": { "unexpected": 1 } }),
            ),
            ("PATCH", "/v1/members/{id}") => Some(json!({ "role": "developer" })),
            ("POST", "/v1/webhooks") => Some(webhook_body()),
            ("PATCH", "/v1/webhooks/{id}") => Some(json!({ "enabled": false })),
            ("POST", "/v1/webhooks/{id}/replay") => Some(json!({ "from_position": 1 })),
            ("POST", "/v1/connections/{id}/dynamic-credentials") => {
                Some(json!({ "ttl_seconds": 60, "grants": ["read"] }))
            }
            ("PATCH", _) => Some(json!({ "name": "renamed in the table" })),
            ("POST", "/v1/api-keys") => {
                Some(json!({ "name": "made in the table", "role": "viewer" }))
            }
            ("PUT", "/v1/workspace/tool-response-storage") => {
                Some(json!({ "store_tool_responses": true }))
            }
            ("PUT", "/v1/workspace/second-factor-requirement") => Some(json!({ "required": true })),
            ("PUT", "/v1/workspace/agent-connect-flows") => Some(json!({ "any_user": true })),
            ("PUT", _) => Some(
                json!({ "issuer": "https://idp.example.com/", "audience": "authledger", "jwks_url": "https://idp.example.com/jwks" }),
            ),
            _ => None,
        };
        if spec.permission == Permission::EndUser {
            // End-user routes take a JWT, never an API key (of any role, valid or not).
            for (key, reason) in [
                (None, "missing_credentials"),
                (Some(env.admin.as_str()), "invalid_token"),
                (Some(revoked.as_str()), "invalid_token"),
            ] {
                let (status, v) = env.call(method.clone(), spec.path, key, None).await;
                assert_eq!(
                    status,
                    StatusCode::UNAUTHORIZED,
                    "{} {}: {v}",
                    spec.method,
                    spec.path
                );
                expected_denials.push((401, reason.into(), spec.method.into(), spec.path.into()));
            }
            continue;
        }
        // Own workspace, every role.
        for (role, key) in &keys {
            let target = env.target_for(&fx, spec.path).await;
            let body = if (spec.method, spec.path) == ("POST", "/v1/tools") {
                let name = format!("custom.t{}", uuid::Uuid::now_v7().simple());
                Some(tool_body(&name, "read"))
            } else if (spec.method, spec.path) == ("POST", "/v1/members") {
                let email = format!("m{}@example.com", uuid::Uuid::now_v7().simple());
                Some(json!({ "email": email, "role": "viewer" }))
            } else {
                body.clone()
            };
            let (status, v) = env
                .call(method.clone(), &target, Some(key), body.clone())
                .await;
            if role_allows(*role, spec.permission) {
                let (want, problem) = success_status(spec.method, spec.path);
                assert_eq!(
                    status, want,
                    "{} {} as {role:?}: {v}",
                    spec.method, spec.path
                );
                if let Some(kind) = problem {
                    assert_eq!(
                        v["type"],
                        format!("https://authledger.dev/problems/{kind}"),
                        "{} {} as {role:?}",
                        spec.method,
                        spec.path
                    );
                }
            } else {
                assert_eq!(
                    status,
                    StatusCode::FORBIDDEN,
                    "{} {} as {role:?}: {v}",
                    spec.method,
                    spec.path
                );
                assert_eq!(v["type"], "https://authledger.dev/problems/forbidden");
                expected_denials.push((
                    403,
                    "role_not_permitted".into(),
                    spec.method.into(),
                    spec.path.into(),
                ));
            }
        }
        // No key, garbage key, revoked key, expired key.
        let id = "01900000-0000-7000-8000-00000000abcd";
        // Where a JWT may stand in for a key (scoped tokens, end users' approvals), a bearer
        // that is not a key is checked, and refused, as a token.
        let not_a_key = if matches!(
            spec.permission,
            Permission::CallTools | Permission::DecideApprovals | Permission::UndoToolCalls
        ) {
            "invalid_token"
        } else {
            "unknown_key"
        };
        for (key, reason) in [
            (None, "missing_credentials"),
            (Some("alk_not-a-real-key"), "unknown_key"),
            (Some("Basic dXNlcjpwYXNz"), not_a_key),
            (Some(revoked.as_str()), "revoked_key"),
            (Some(expired.as_str()), "expired_key"),
        ] {
            let (status, v) = env
                .call(method.clone(), &path_for(spec.path, id), key, body.clone())
                .await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{} {} with {reason}: {v}",
                spec.method,
                spec.path
            );
            assert_eq!(v["type"], "https://authledger.dev/problems/unauthorized");
            expected_denials.push((401, reason.into(), spec.method.into(), spec.path.into()));
        }
        // Another workspace's id: the same 404 as an unknown id, and audited. (Checkpoints
        // are the whole log's, not a workspace's: there is no other workspace's checkpoint.)
        if spec.path.contains("{id}") && !spec.path.starts_with("/v1/audit/checkpoints") {
            let theirs = if spec.path.starts_with("/v1/auth-configs") {
                &other_auth_config
            } else if spec.path.starts_with("/v1/connections") {
                &other_connection
            } else if spec.path.starts_with("/v1/audit/events") {
                &other_event
            } else if spec.path.starts_with("/v1/tokens") {
                &other_token
            } else if spec.path.starts_with("/v1/gateways") {
                &other_gateway
            } else if spec.path.starts_with("/v1/approvals") {
                &other_approval
            } else if spec.path.starts_with("/v1/members") {
                &other_member
            } else if spec.path.starts_with("/v1/tool-calls") {
                &other_tool_call
            } else if spec.path.starts_with("/v1/webhooks") {
                &other_webhook
            } else {
                &other_id
            };
            let (status, v) = env
                .call(
                    method.clone(),
                    &path_for(spec.path, theirs),
                    Some(&env.admin),
                    body.clone(),
                )
                .await;
            let (status_unknown, v_unknown) = env
                .call(
                    method.clone(),
                    &path_for(spec.path, id),
                    Some(&env.admin),
                    body.clone(),
                )
                .await;
            assert_eq!(
                (status, status_unknown),
                (StatusCode::NOT_FOUND, StatusCode::NOT_FOUND)
            );
            assert_eq!(
                v, v_unknown,
                "another workspace's id must look exactly like an unknown one"
            );
            expected_denials.push((
                404,
                "other_workspace".into(),
                spec.method.into(),
                spec.path.into(),
            ));
        }
    }
    // The other workspace's key is untouched by all of the above.
    let (_, still) = env
        .call(Method::GET, "/v1/api-keys", Some(&env.other_admin), None)
        .await;
    assert_eq!(still["items"][0]["revoked_at"], Value::Null);
    let (s, theirs) = env
        .call(
            Method::GET,
            &format!("/v1/connections/{other_connection}"),
            Some(&env.other_admin),
            None,
        )
        .await;
    assert_eq!(
        (s, theirs["status"].as_str()),
        (StatusCode::OK, Some("active")),
        "{theirs}"
    );

    let all = env.denials().await;
    for (_, reason, _, _, actor) in &all[baseline..] {
        let want =
            if ["missing_credentials", "unknown_key", "invalid_token"].contains(&reason.as_str()) {
                "anonymous"
            } else {
                "api_key"
            };
        assert_eq!(actor, want, "actor of a {reason} denial");
    }
    let recorded: Vec<(u64, String, String, String)> = all
        .into_iter()
        .skip(baseline)
        .map(|(s, r, m, p, _)| (s, r, m, p))
        .collect();
    let mut want = expected_denials.clone();
    want.sort();
    let mut got = recorded.clone();
    got.sort();
    assert_eq!(
        got, want,
        "every refusal, and only refusals, is an access.denied event"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_are_shown_once_usable_at_once_and_revoked_at_once() {
    let env = Env::start(&[]).await;
    let (id, key) = env.create_key(Role::Developer, None).await;
    assert!(key.starts_with("alk_"));
    // Usable immediately (read-your-writes), attributed to the key.
    let (s, ws) = env
        .call(Method::GET, "/v1/workspace", Some(&key), None)
        .await;
    assert_eq!((s, ws["name"].as_str()), (StatusCode::OK, Some("default")));
    // Never shown again.
    let (_, list) = env
        .call(Method::GET, "/v1/api-keys", Some(&env.admin), None)
        .await;
    assert!(!list.to_string().contains(&key));
    assert!(list["items"]
        .as_array()
        .expect("items")
        .iter()
        .all(|k| k.get("key").is_none()));
    let (s, one) = env
        .call(
            Method::GET,
            &format!("/v1/api-keys/{id}"),
            Some(&env.admin),
            None,
        )
        .await;
    assert_eq!(
        (s, one["role"].as_str(), one["key"].as_str()),
        (StatusCode::OK, Some("developer"), None)
    );
    // Revoked at once; revoking twice is a conflict, not a second event.
    let (s, _) = env
        .call(
            Method::DELETE,
            &format!("/v1/api-keys/{id}"),
            Some(&env.admin),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = env
        .call(Method::GET, "/v1/workspace", Some(&key), None)
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, v) = env
        .call(
            Method::DELETE,
            &format!("/v1/api-keys/{id}"),
            Some(&env.admin),
            None,
        )
        .await;
    assert_eq!(
        (s, v["type"].as_str()),
        (
            StatusCode::CONFLICT,
            Some("https://authledger.dev/problems/conflict")
        )
    );
    // The events name the admin key as the actor; the key itself is nowhere in the ledger.
    let dump = run_cli(&args(&[
        "--data-dir",
        &env.dir.path().join("data").display().to_string(),
        "dump-log",
    ]));
    let text = String::from_utf8_lossy(&dump.stdout).to_string();
    assert!(!text.contains(&key) && !text.contains(&env.admin));
    let admin_id = list["items"][0]["id"]
        .as_str()
        .expect("admin id")
        .to_string();
    let mut created_by_admin = 0;
    for line in text.lines() {
        let rec: Value = serde_json::from_str(line).expect("line");
        let body = open_envelope(rec["envelope"].as_str().expect("env").as_bytes())
            .expect("envelope")
            .body;
        if body.kind == "api_key.created" && body.aggregate_id == id {
            assert_eq!(
                (
                    serde_json::to_value(body.actor.actor_type).expect("t"),
                    body.actor.id.as_str()
                ),
                (json!("api_key"), admin_id.as_str())
            );
            created_by_admin += 1;
        }
    }
    assert_eq!(created_by_admin, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_clear_problem_and_writes_nothing() {
    // No scheduled checkpoints: the log head must move only if a request wrote.
    let env = Env::start(&[("AUTHLEDGER_CHECKPOINT_SCHEDULE", "off")]).await;
    let head_before = env.call(Method::GET, "/readyz", None, None).await.1["log_head"]
        .as_u64()
        .expect("head");
    let post = |body: reqwest::Body, content_type: &'static str| {
        env.http
            .post(env.svc.url("/v1/api-keys"))
            .bearer_auth(&env.admin)
            .header("content-type", content_type)
            .body(body)
    };
    let cases: Vec<(reqwest::RequestBuilder, StatusCode, &str)> = vec![
        (
            post("{not json".into(), "application/json"),
            StatusCode::BAD_REQUEST,
            "malformed-json",
        ),
        (
            post(
                r#"{"name": 5, "role": "viewer"}"#.into(),
                "application/json",
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation-failed",
        ),
        (
            post(
                r#"{"name": "x", "role": "root"}"#.into(),
                "application/json",
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation-failed",
        ),
        (
            post(
                r#"{"name": "x", "role": "viewer", "admin": true}"#.into(),
                "application/json",
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation-failed",
        ),
        (
            post(
                r#"{"name": "", "role": "viewer"}"#.into(),
                "application/json",
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation-failed",
        ),
        (
            post(
                r#"{"name": "x", "role": "viewer", "expires_at": "2001-01-01T00:00:00Z"}"#.into(),
                "application/json",
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation-failed",
        ),
        (
            post(
                r#"{"name": "x", "role": "viewer", "expires_at": "tomorrow"}"#.into(),
                "application/json",
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation-failed",
        ),
        (
            post(r#"{"name": "x", "role": "viewer"}"#.into(), "text/plain"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
        ),
        (
            post(
                format!(r#"{{"name": "{}", "role": "viewer"}}"#, "x".repeat(200_000)).into(),
                "application/json",
            ),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
        ),
    ];
    for (req, status, kind) in cases {
        let resp = req.send().await.expect("send");
        assert_eq!(resp.status(), status, "{kind}");
        assert_eq!(
            resp.headers()["content-type"],
            "application/problem+json",
            "{kind}"
        );
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            // The unread body makes the server drop the socket; the client must not reuse it.
            assert_eq!(resp.headers()["connection"], "close", "{kind}");
        }
        let v: Value = resp.json().await.expect("problem");
        assert_eq!(v["type"], format!("https://authledger.dev/problems/{kind}"));
    }
    for (method, path) in [
        (Method::GET, "/v1/api-keys/nope"),
        (Method::DELETE, "/v1/api-keys/..%2F..%2Fetc"),
        (Method::GET, "/v1/api-keys/a.b.c"),
    ] {
        let (s, v) = env.call(method, path, Some(&env.admin), None).await;
        assert_eq!(
            (s, v["type"].as_str()),
            (
                StatusCode::NOT_FOUND,
                Some("https://authledger.dev/problems/not-found")
            ),
            "{path}"
        );
    }
    let (s, v) = env
        .call(Method::PUT, "/v1/api-keys", Some(&env.admin), None)
        .await;
    assert_eq!(
        (s, v["type"].as_str()),
        (
            StatusCode::METHOD_NOT_ALLOWED,
            Some("https://authledger.dev/problems/method-not-allowed")
        )
    );
    let head_after = env.call(Method::GET, "/readyz", None, None).await.1["log_head"]
        .as_u64()
        .expect("head");
    assert_eq!(head_before, head_after, "a refused request must not write");
}

/// Bad input to `POST /v1/connections` (and to the list's query) is a problem+json that
/// never echoes a credential, and nothing is created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_connection_input_gets_a_clear_problem_and_creates_nothing() {
    let env = Env::start(&[("AUTHLEDGER_CHECKPOINT_SCHEDULE", "off")]).await;
    let ours = env.create_auth_config(&env.admin, false).await;
    let theirs = env.create_auth_config(&env.other_admin, false).await;
    let head_before = env.call(Method::GET, "/readyz", None, None).await.1["log_head"]
        .as_u64()
        .expect("head");
    let post = |body: String, content_type: &'static str| {
        env.http
            .post(env.svc.url("/v1/connections"))
            .bearer_auth(&env.admin)
            .header("content-type", content_type)
            .body(body)
    };
    let json_post = |v: Value| post(v.to_string(), "application/json");
    let secret = "hunter2-end-user-secret";
    let cases: Vec<(&str, reqwest::RequestBuilder, StatusCode, &str)> = vec![
        (
            "malformed json",
            post(
                format!(r#"{{"auth_config_id": "{ours}", "user_id": "u""#),
                "application/json",
            ),
            StatusCode::BAD_REQUEST,
            "malformed-json",
        ),
        (
            "unknown field",
            json_post(json!({ "auth_config_id": ours, "user_id": "u",
                              "credentials": { "api_key": secret }, "status": "active" })),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation-failed",
        ),
        (
            "user_id of the wrong type",
            json_post(json!({ "auth_config_id": ours, "user_id": 5,
                              "credentials": { "api_key": secret } })),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation-failed",
        ),
        (
            "missing user_id",
            json_post(json!({ "auth_config_id": ours, "credentials": { "api_key": secret } })),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation-failed",
        ),
        (
            "empty user_id",
            json_post(json!({ "auth_config_id": ours, "user_id": "",
                              "credentials": { "api_key": secret } })),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation-failed",
        ),
        (
            // (Without credentials an api_key auth config starts a hosted connect link.)
            "scopes on an api_key auth config",
            json_post(json!({ "auth_config_id": ours, "user_id": "u", "scopes": ["read"] })),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation-failed",
        ),
        (
            "credentials of another auth type",
            json_post(json!({ "auth_config_id": ours, "user_id": "u",
                              "credentials": { "token": secret } })),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation-failed",
        ),
        (
            "a credential of the wrong type",
            json_post(json!({ "auth_config_id": ours, "user_id": "u",
                              "credentials": { "api_key": 4815162342u64 } })),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation-failed",
        ),
        (
            "redirect_url on an api_key auth config",
            json_post(json!({ "auth_config_id": ours, "user_id": "u",
                              "redirect_url": "https://app.example.com/done",
                              "credentials": { "api_key": secret } })),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation-failed",
        ),
        (
            "not json",
            post(
                json!({ "auth_config_id": ours, "user_id": "u",
                        "credentials": { "api_key": secret } })
                .to_string(),
                "text/plain",
            ),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
        ),
        (
            "oversize body",
            json_post(json!({ "auth_config_id": ours, "user_id": "u",
                              "credentials": { "api_key": "k".repeat(70 * 1024) } })),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
        ),
    ];
    for (case, req, status, kind) in cases {
        let resp = req.send().await.expect("send");
        assert_eq!(resp.status(), status, "{case}");
        assert_eq!(
            resp.headers()["content-type"],
            "application/problem+json",
            "{case}"
        );
        assert!(
            resp.headers().get("authledger-position").is_none(),
            "{case}: nothing was written"
        );
        let text = resp.text().await.expect("body");
        assert!(
            !text.contains(secret) && !text.contains("4815162342"),
            "{case}: a credential is echoed: {text}"
        );
        let v: Value = serde_json::from_str(&text).expect("problem");
        assert_eq!(
            v["type"],
            format!("https://authledger.dev/problems/{kind}"),
            "{case}: {v}"
        );
    }
    // Another workspace's auth config is refused exactly like an unknown one.
    let mut answers = Vec::new();
    for id in [theirs.as_str(), "01900000-0000-7000-8000-00000000abcd"] {
        let resp = json_post(json!({ "auth_config_id": id, "user_id": "u",
                                     "credentials": { "api_key": secret } }))
        .send()
        .await
        .expect("send");
        answers.push((resp.status(), resp.text().await.expect("body")));
    }
    assert_eq!(
        answers[0].0,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        answers[0].1
    );
    assert_eq!(
        answers[0], answers[1],
        "another workspace's auth config must look exactly like an unknown one"
    );
    // Bad list queries.
    for query in [
        "limit=0",
        "limit=201",
        "limit=ten",
        "cursor=not-a-cursor",
        "status=deleted",
        "status=bogus",
        "min_position=-1",
        "colour=blue",
    ] {
        let resp = env
            .http
            .get(env.svc.url(&format!("/v1/connections?{query}")))
            .bearer_auth(&env.admin)
            .send()
            .await
            .expect("send");
        let status = resp.status();
        let content_type = resp.headers().get("content-type").cloned();
        let text = resp.text().await.expect("body");
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {text}");
        assert_eq!(
            content_type.as_ref().and_then(|c| c.to_str().ok()),
            Some("application/problem+json"),
            "{query}: {text}"
        );
    }
    // Nothing was created, nothing was written.
    let (s, list) = env
        .call(Method::GET, "/v1/connections", Some(&env.admin), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{list}");
    assert_eq!(list["items"], json!([]), "{list}");
    assert_eq!(list["next_cursor"], Value::Null, "{list}");
    let head_after = env.call(Method::GET, "/readyz", None, None).await.1["log_head"]
        .as_u64()
        .expect("head");
    assert_eq!(head_before, head_after, "a refused request must not write");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_key_is_rate_limited_with_retry_after() {
    let env = Env::start(&[
        ("AUTHLEDGER_RATE_LIMIT_PER_SEC", "0.5"),
        ("AUTHLEDGER_RATE_LIMIT_BURST", "3"),
    ])
    .await;
    let (_, other) = env.create_key(Role::Viewer, None).await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let resp = env
            .http
            .get(env.svc.url("/v1/workspace"))
            .bearer_auth(&other)
            .send()
            .await
            .expect("send");
        if resp.status() == StatusCode::TOO_MANY_REQUESTS {
            let retry: u64 = resp.headers()["retry-after"]
                .to_str()
                .expect("ascii")
                .parse()
                .expect("seconds");
            assert!((1..=2).contains(&retry), "Retry-After {retry}");
            let v: Value = resp.json().await.expect("problem");
            assert_eq!(v["type"], "https://authledger.dev/problems/rate-limited");
            statuses.push(429);
        } else {
            statuses.push(resp.status().as_u16());
        }
    }
    assert_eq!(&statuses[..3], &[200, 200, 200], "{statuses:?}");
    assert!(statuses[3..].iter().all(|s| *s == 429), "{statuses:?}");
    // Buckets are per key: the admin key (which created one key) still has tokens.
    let (s, _) = env
        .call(Method::GET, "/v1/workspace", Some(&env.admin), None)
        .await;
    assert_eq!(s, StatusCode::OK);
}

/// `schemas/openapi.json` lists exactly the routes the router serves, with the roles the
/// route table allows.
#[test]
fn the_openapi_document_matches_the_route_table() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/openapi.json");
    let doc: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("openapi.json")).expect("json");
    assert_eq!(doc["openapi"], "3.1.0");
    let mut documented = BTreeSet::new();
    for (p, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("item") {
            if method == "parameters" {
                continue;
            }
            let method = method.to_uppercase();
            documented.insert((method.clone(), p.clone()));
            let spec = ROUTES.iter().find(|r| r.method == method && r.path == p);
            let Some(spec) = spec else {
                panic!("documented {method} {p} is not served")
            };
            let roles: Vec<&str> = op["x-authledger-roles"]
                .as_array()
                .expect("x-authledger-roles")
                .iter()
                .map(|r| r.as_str().expect("role"))
                .collect();
            if spec.permission == Permission::EndUser {
                assert_eq!(roles, ["end_user"], "{method} {p} roles");
                assert_eq!(
                    op["security"],
                    json!([{ "endUserJwt": [] }]),
                    "{method} {p} security"
                );
                continue;
            }
            let allowed: Vec<&str> = if spec.permission == Permission::Public {
                vec![]
            } else {
                ALL_ROLES
                    .iter()
                    .filter(|r| role_allows(**r, spec.permission))
                    .map(|r| role_name(*r))
                    .collect()
            };
            assert_eq!(roles, allowed, "{method} {p} roles");
            let secured = op["security"]
                .as_array()
                .map(|s| !s.is_empty())
                .unwrap_or(false);
            assert_eq!(
                secured,
                spec.permission != Permission::Public,
                "{method} {p} security"
            );
            let responses = op["responses"].as_object().expect("responses");
            if spec.permission != Permission::Public {
                assert!(
                    responses.contains_key("401") && responses.contains_key("429"),
                    "{method} {p} error responses"
                );
                assert_eq!(
                    responses.contains_key("403"),
                    allowed.len() < ALL_ROLES.len(),
                    "{method} {p} 403"
                );
            }
        }
    }
    let served: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|r| (r.method.to_string(), r.path.to_string()))
        .collect();
    assert_eq!(documented, served, "router and OpenAPI document differ");
}

/// Every route in the table is really served (not the no-such-route fallback).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_in_the_table_is_served() {
    let env = Env::start(&[]).await;
    for spec in ROUTES {
        let method = Method::from_bytes(spec.method.as_bytes()).expect("method");
        let (_, v) = env
            .call(method, &path_for(spec.path, "x"), None, None)
            .await;
        assert_ne!(
            v["type"], "https://authledger.dev/problems/no-such-route",
            "{} {}",
            spec.method, spec.path
        );
        assert_ne!(
            v["type"], "https://authledger.dev/problems/method-not-allowed",
            "{} {}",
            spec.method, spec.path
        );
    }
}

/// Refusals are events, so a client hammering the API without credentials could grow the
/// ledger without bound: past a per-address budget the answer is 429 and nothing is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_beyond_the_per_client_budget_are_429_and_not_recorded() {
    let env = Env::start(&[
        ("AUTHLEDGER_DENIAL_RATE_LIMIT_PER_SEC", "0.2"),
        ("AUTHLEDGER_DENIAL_RATE_LIMIT_BURST", "5"),
    ])
    .await;
    let baseline = env.denials().await.len();
    let mut refused = 0;
    let mut limited = 0;
    for _ in 0..20 {
        let r = env
            .http
            .get(env.svc.url("/v1/workspace"))
            .send()
            .await
            .expect("request");
        match r.status() {
            StatusCode::UNAUTHORIZED => refused += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                assert!(r.headers().contains_key("retry-after"));
                limited += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    // Setup may have spent part of the budget (polling a key before it was projected).
    assert!((1..=6).contains(&refused), "{refused} refused");
    assert_eq!(refused + limited, 20);
    // The public OAuth callback has its own budget (tests/it/limits.rs): a bad state is
    // still refused and recorded.
    let r = env
        .http
        .get(env.svc.url("/v1/oauth/callback?state=nope&code=x"))
        .send()
        .await
        .expect("callback");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // Only the refusals that were answered 401 (and the callback's 400) are in the ledger.
    assert_eq!(env.denials().await.len() - baseline, refused + 1);
    // Authenticated callers are unaffected.
    let (s, _) = env
        .call(Method::GET, "/v1/workspace", Some(&env.admin), None)
        .await;
    assert_eq!(s, StatusCode::OK);
}

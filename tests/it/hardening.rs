//! Issue 15, items 11, 14, 15 and 8, end to end against the real `serve` binary: a revoked
//! or used-up scoped token lists no tools (HTTP and MCP); concurrent callbacks with one
//! state send the code to the provider once (two instances: `connections`); scopes granted
//! beyond the auth config's are not kept nor put in tokens; gateways bind only agent keys.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::fixtures::oauth_provider::{
    no_redirect_client, Consent, Endpoint, OAuthProvider, TokenFault,
};
use crate::scrubbing::Env;
use crate::support::{self, follow_connect_url, oauth_config_body, Hit, Upstream, RETURN_TO};

const CLIENT_ID: &str = "hardening-client";
const CLIENT_SECRET: &str = "hardening-cl1ent-s3cret";

/// An upstream that answers every request 200 `{"ok": true}`.
async fn ok_upstream() -> Upstream {
    Upstream::start(|_hit: Hit| async move {
        axum::response::IntoResponse::into_response(axum::Json(json!({ "ok": true })))
    })
    .await
}

/// A service whose workspace has the tool `custom.ping` (provider `custom`) on an upstream
/// that answers 200.
async fn with_ping_tool() -> (Env, Upstream) {
    let env = Env::start().await;
    let up = ok_upstream().await;
    env.tool("custom.ping", "GET", &up.base_url, "/ping").await;
    (env, up)
}

// ---------------------------------------------------------------------------------------------
// Item 11: a token that can no longer be used lists nothing
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_or_used_up_token_lists_no_tools() {
    let (env, _up) = &with_ping_tool().await;
    let conn = env
        .connection("bearer_token", json!({}), json!({ "token": "tok-item-11" }))
        .await;
    let (_, agent) = env.key_by(&env.d.admin, "agent").await;
    let issue = |max_uses: Option<u32>| {
        let body = match max_uses {
            Some(m) => json!({ "connection_id": conn, "tool": "custom.ping", "max_uses": m }),
            None => json!({ "connection_id": conn, "tool": "custom.ping" }),
        };
        env.call(&agent, Method::POST, "/v1/tokens", Some(body))
    };
    let listed = |token: String| async move {
        let r = env.call(&token, Method::GET, "/v1/tools", None).await;
        (r.status, r.problem().to_string(), r.text)
    };

    // A live token lists its tools.
    let r = issue(None).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let (token, token_id) = (r.str("token"), r.str("id"));
    let (status, _, text) = listed(token.clone()).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(text.contains("custom.ping"), "{text}");
    let client = env.mcp(&token).await;
    let tools = client.list_all_tools().await.expect("tools/list");
    assert!(tools.iter().any(|t| t.name == "custom.ping"));
    client.cancel().await.expect("close");

    // Revoked: refused, over HTTP and MCP.
    let r = env
        .call(
            &agent,
            Method::POST,
            &format!("/v1/tokens/{token_id}/revoke"),
            Some(json!({ "reason": "done" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let (status, problem, text) = listed(token.clone()).await;
    assert_eq!(
        (status, problem.as_str()),
        (StatusCode::UNAUTHORIZED, "token-revoked"),
        "{text}"
    );
    assert!(!text.contains("custom.ping"), "{text}");
    let client = env.mcp(&token).await;
    let listed_mcp = client.list_all_tools().await;
    assert!(
        listed_mcp.is_err(),
        "MCP tools/list with a revoked token: {listed_mcp:?}"
    );
    let _ = client.cancel().await;

    // Used up: max_uses 1, used once.
    let r = issue(Some(1)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let once = r.str("token");
    let r = env
        .call(
            &once,
            Method::POST,
            "/v1/tools/execute",
            Some(json!({ "tool": "custom.ping" })),
        )
        .await;
    assert_eq!(r.body["status"], 200, "{}", r.text);
    let (status, problem, text) = listed(once.clone()).await;
    assert_eq!(
        (status, problem.as_str()),
        (StatusCode::FORBIDDEN, "token-used-up"),
        "{text}"
    );
    let client = env.mcp(&once).await;
    let listed_mcp = client.list_all_tools().await;
    assert!(
        listed_mcp.is_err(),
        "MCP tools/list with a used-up token: {listed_mcp:?}"
    );
    let _ = client.cancel().await;

    // Each refusal is audited like any other. The audit view is a projection, and a
    // refusal is recorded beside its answer, so the last one may still be on its way.
    let reasons = || async {
        let r = env
            .call(
                &env.d.admin,
                Method::GET,
                "/v1/audit/events?kind=access.denied&limit=100",
                None,
            )
            .await;
        r.body["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter_map(|e| e["reason"].as_str().map(str::to_string))
            .collect::<Vec<_>>()
    };
    let both_audited = |seen: &[String]| {
        ["revoked_token", "token_used_up"]
            .iter()
            .all(|reason| seen.iter().filter(|r| r == reason).count() >= 2)
    };
    crate::harness::eventually(
        Duration::from_secs(10),
        "revoked_token and token_used_up on /v1/tools and /mcp",
        || async { both_audited(&reasons().await) },
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// Item 14: one state, many callbacks: the code goes to the provider once
// ---------------------------------------------------------------------------------------------

/// The test provider and an OAuth auth config at it (scopes `read write`): its id.
async fn oauth_config(env: &Env) -> (OAuthProvider, String) {
    let provider = support::provider_for(&env.d.svc, CLIENT_ID, CLIENT_SECRET).await;
    let config = env
        .created(
            "/v1/auth-configs",
            oauth_config_body(&provider, CLIENT_ID, CLIENT_SECRET),
        )
        .await;
    (provider, config["id"].as_str().expect("id").to_string())
}

/// A connect flow for `user`: (connection id, connect URL).
async fn start_connect(env: &Env, config: &str, user: &str) -> (String, String) {
    let conn = env
        .created(
            "/v1/connections",
            json!({ "auth_config_id": config, "user_id": user, "redirect_url": RETURN_TO }),
        )
        .await;
    let text = |k: &str| conn[k].as_str().expect(k).to_string();
    (text("id"), text("connect_url"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_callbacks_with_one_state_send_the_code_to_the_provider_once() {
    let env = &Env::start().await;
    let (provider, config) = oauth_config(env).await;
    let (id, connect_url) = start_connect(env, &config, "u1").await;
    // The user consents; the redirect back (code and state) is then delivered many times
    // at once, while the provider is slow to answer the exchange.
    let callback = provider.visit(&connect_url).await;
    provider.fail_next_token_requests(50, TokenFault::Slow(Duration::from_millis(300)));
    let before = provider.counters().code_exchanges;
    let http = no_redirect_client();
    let answers =
        futures::future::join_all((0..12).map(|_| http.get(callback.as_str()).send())).await;
    let mut active = 0;
    for answer in answers {
        let answer = answer.expect("callback");
        let location = answer
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        if location.contains("status=active") {
            active += 1;
        }
    }
    assert_eq!(
        provider.counters().code_exchanges - before,
        1,
        "the code is sent to the provider once"
    );
    assert_eq!(active, 1, "one callback completes the flow");
    let r = env
        .call(
            &env.d.admin,
            Method::GET,
            &format!("/v1/connections/{id}"),
            None,
        )
        .await;
    assert_eq!(r.body["status"], "active", "{}", r.text);
}

// ---------------------------------------------------------------------------------------------
// Item 15: scopes granted beyond the auth config's are not kept
// ---------------------------------------------------------------------------------------------

fn scopes_of(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scopes_the_provider_grants_beyond_the_request_are_not_kept_nor_put_in_tokens() {
    let env = &Env::start().await;
    let provider = support::provider_for(&env.d.svc, CLIENT_ID, CLIENT_SECRET).await;
    // The auth config asks for `read`; the provider grants `read write` all the same.
    let mut body = oauth_config_body(&provider, CLIENT_ID, CLIENT_SECRET);
    body["oauth2"]["scopes"] = json!(["read"]);
    let config = env.created("/v1/auth-configs", body).await["id"]
        .as_str()
        .expect("id")
        .to_string();
    provider.set_consent(Consent::GrantExtra(vec!["write".into()]));
    let (id, connect_url) = start_connect(env, &config, "u1").await;
    let back = follow_connect_url(&provider, &connect_url).await;
    assert!(back.as_str().contains("status=active"), "{back}");
    let exchange = provider
        .last_request_to(Endpoint::Token)
        .expect("the code was exchanged");
    assert_eq!(exchange.status, 200, "{exchange:?}");

    // The connection keeps what was asked and granted.
    let r = env
        .call(
            &env.d.admin,
            Method::GET,
            &format!("/v1/connections/{id}"),
            None,
        )
        .await;
    assert_eq!(scopes_of(&r.body["scopes"]), ["read"], "{}", r.text);
    // The event records both.
    let r = env
        .call(
            &env.d.admin,
            Method::GET,
            "/v1/audit/events?kind=connection.authorized&limit=10",
            None,
        )
        .await;
    let event_id = r.body["items"][0]["event_id"]
        .as_str()
        .expect("event")
        .to_string();
    let r = env
        .call(
            &env.d.admin,
            Method::GET,
            &format!("/v1/audit/events/{event_id}"),
            None,
        )
        .await;
    let payload = &r.body["body"]["payload"];
    assert_eq!(scopes_of(&payload["scopes"]), ["read"], "{}", r.text);
    assert_eq!(
        scopes_of(&payload["granted_scopes"]),
        ["read", "write"],
        "{}",
        r.text
    );

    // A scoped token cannot carry the extra scope.
    let (_, agent) = env.key_by(&env.d.admin, "agent").await;
    let r = env
        .call(
            &agent,
            Method::POST,
            "/v1/tokens",
            Some(json!({ "connection_id": id, "scopes": ["write"] })),
        )
        .await;
    r.expect(StatusCode::FORBIDDEN, "scope-escalation");
    let r = env
        .call(
            &agent,
            Method::POST,
            "/v1/tokens",
            Some(json!({ "connection_id": id, "scopes": ["read"] })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
}

// ---------------------------------------------------------------------------------------------
// Item 8: only agent keys are bound, and binding one is an admin's decision
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateways_bind_only_agent_keys_and_developers_only_keys_they_made() {
    let (env, _up) = &with_ping_tool().await;
    let config = env
        .created(
            "/v1/auth-configs",
            json!({ "name": "k", "provider": "custom", "auth_type": "bearer_token", "bearer_token": {} }),
        )
        .await["id"]
        .as_str()
        .expect("id")
        .to_string();
    let admin_id = {
        let r = env
            .call(&env.d.admin, Method::GET, "/v1/api-keys", None)
            .await;
        r.body["items"]
            .as_array()
            .expect("items")
            .iter()
            .find(|k| k["role"] == "admin")
            .and_then(|k| k["id"].as_str())
            .expect("the admin key")
            .to_string()
    };
    let (developer_id, developer) = env.key_by(&env.d.admin, "developer").await;
    let (agent_id, agent) = env.key_by(&env.d.admin, "agent").await;
    let gateway = |keys: &[&str]| {
        json!({ "name": "g", "servers": [{ "auth_config_id": config, "tools": ["custom.ping"] }],
                "agent_key_ids": keys })
    };
    let define = |bearer: String, keys: &[&str]| {
        let body = gateway(keys);
        async move {
            env.call(&bearer, Method::POST, "/v1/gateways", Some(body))
                .await
        }
    };

    // Not the admin's key, nor a developer's: they would lose their tools for good.
    for (who, bearer) in [("admin", &env.d.admin), ("developer", &developer)] {
        for key in [&admin_id, &developer_id] {
            let r = define(bearer.clone(), &[key]).await;
            assert_eq!(
                (r.status, r.problem()),
                (StatusCode::UNPROCESSABLE_ENTITY, "validation-failed"),
                "{who} binding a non-agent key: {}",
                r.text
            );
        }
    }
    // A developer does not bind an agent key the admin made.
    let r = define(developer.clone(), &[&agent_id]).await;
    assert_eq!(
        (r.status, r.problem()),
        (StatusCode::UNPROCESSABLE_ENTITY, "validation-failed"),
        "{}",
        r.text
    );
    // The admin still reaches every tool.
    let r = env.call(&env.d.admin, Method::GET, "/v1/tools", None).await;
    assert!(r.text.contains("custom.ping"), "{}", r.text);
    let r = env.call(&agent, Method::GET, "/v1/tools", None).await;
    assert!(
        r.text.contains("custom.ping") && r.text.contains("gmail."),
        "unbound: {}",
        r.text
    );

    // The admin binds an agent key; a developer may then edit that gateway keeping it.
    let r = define(env.d.admin.clone(), &[&agent_id]).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let id = r.str("id");
    let r = env
        .call(
            &developer,
            Method::PUT,
            &format!("/v1/gateways/{id}"),
            Some(gateway(&[&agent_id])),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = env.call(&agent, Method::GET, "/v1/tools", None).await;
    assert!(
        r.text.contains("custom.ping") && !r.text.contains("gmail."),
        "bound: {}",
        r.text
    );
}

//! Issue 15, items 11, 14, 15 and 8, end to end against the real `serve` binary: a revoked
//! or used-up scoped token lists no tools (HTTP and MCP).

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::scrubbing::Env;
use crate::support::{Hit, Upstream};

/// An upstream that answers every request 200 `{"ok": true}`.
async fn ok_upstream() -> Upstream {
    Upstream::start(|_hit: Hit| async move {
        axum::response::IntoResponse::into_response(axum::Json(json!({ "ok": true })))
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// Item 11: a token that can no longer be used lists nothing
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_or_used_up_token_lists_no_tools() {
    let env = &Env::start().await;
    let up = ok_upstream().await;
    env.tool("custom.ping", "GET", &up.base_url, "/ping").await;
    let conn = env
        .connection("bearer_token", json!({}), json!({ "token": "tok-item-11" }))
        .await;
    let (_, agent) = env.key_by(&env.e.admin, "agent").await;
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

    // Each refusal is audited like any other.
    let r = env
        .call(
            &env.e.admin,
            Method::GET,
            "/v1/audit/events?kind=access.denied&limit=100",
            None,
        )
        .await;
    let reasons: Vec<_> = r.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|e| e["reason"].as_str())
        .collect();
    for reason in ["revoked_token", "token_used_up"] {
        assert!(
            reasons.iter().filter(|r| **r == reason).count() >= 2,
            "{reason} on /v1/tools and /mcp: {reasons:?}"
        );
    }
}

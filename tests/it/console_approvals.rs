//! The approvals screen in a real browser, on both stacks: an agent's destructive tool call
//! waits for a person; an admin sees the exact tool, connection, end user and arguments'
//! fingerprint, approves one call with a note (the agent's retry with the approval runs,
//! once) and denies another (the retry is refused and nothing reaches the upstream); a
//! developer sees no approvals screen and a crafted decision of theirs is refused and
//! recorded.

use axum::response::IntoResponse;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::console::browser::{post_form, Console, Driver, PASSWORD};
use crate::support::{Deployment, Hit, Stack, Upstream, BASE_ENV, NO_RATE_LIMIT};

async fn post(dep: &Deployment, bearer: &str, path: &str, body: Value) -> (StatusCode, Value) {
    let r = reqwest::Client::new()
        .post(dep.svc.url(path))
        .bearer_auth(bearer)
        .json(&body)
        .send()
        .await
        .expect(path);
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// An API-key auth config, alice's connection to it, a destructive tool on `upstream`,
/// and an agent key: (connection id, agent key).
async fn scene(dep: &Deployment, upstream: &Upstream) -> (String, String) {
    let config = json!({ "name": "Items API", "provider": "custom", "auth_type": "api_key",
        "api_key": { "key_name": "X-Api-Key", "location": "header", "prefix": null } });
    let (s, c) = post(dep, &dep.admin, "/v1/auth-configs", config).await;
    assert_eq!(s, StatusCode::CREATED, "{c}");
    let connection = json!({ "auth_config_id": c["id"], "user_id": "alice",
        "credentials": { "api_key": "alice-items-key-0001" } });
    let (s, conn) = post(dep, &dep.admin, "/v1/connections", connection).await;
    assert_eq!(s, StatusCode::CREATED, "{conn}");
    let tool = json!({ "name": "custom.delete_item", "provider": "custom",
        "description": "Deletes one item.", "method": "DELETE", "base_url": upstream.base_url,
        "path": "/items/{id}", "required_scopes": [], "risk": "destructive",
        "parameters": { "type": "object", "additionalProperties": false, "required": ["id"],
                        "properties": { "id": { "type": "string" } } } });
    let (s, t) = post(dep, &dep.admin, "/v1/tools", tool).await;
    assert_eq!(s, StatusCode::CREATED, "{t}");
    let (s, key) = post(
        dep,
        &dep.admin,
        "/v1/api-keys",
        json!({ "name": "agent", "role": "agent" }),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{key}");
    let agent = key["key"].as_str().expect("the agent's key").to_string();
    (conn["id"].as_str().expect("id").to_string(), agent)
}

async fn delete_item(
    dep: &Deployment,
    agent: &str,
    connection: &str,
    id: &str,
    approval: Option<&str>,
) -> (StatusCode, Value) {
    let mut body = json!({ "tool": "custom.delete_item", "connection_id": connection,
        "arguments": { "id": id } });
    if let Some(a) = approval {
        body["approval_id"] = json!(a);
    }
    post(dep, agent, "/v1/tools/execute", body).await
}

/// The overview's count of pending approvals.
async fn pending_count(ui: &Console) -> String {
    ui.find("#count-pending-approvals")
        .await
        .text()
        .await
        .expect("its text")
}

/// Decides the pending approval of `tool` for alice from the page: `approve` or `deny`.
async fn decide(ui: &Console, approval: &str, decision: &str, note: &str) {
    ui.fill(&format!("#note-{approval}"), note).await;
    let button = ui
        .find(&format!(
            "form.decide:has(input[value='{approval}']) button[value='{decision}']"
        ))
        .await;
    ui.click_to_next_page(button).await;
}

async fn flow(stack: Stack, shots: bool) {
    let driver = Driver::start();
    let envs: Vec<(&str, &str)> = [BASE_ENV, NO_RATE_LIMIT].concat();
    let dep = Deployment::start(stack, &envs).await;
    let upstream = Upstream::start(|_hit: Hit| async {
        axum::Json(json!({ "deleted": true })).into_response()
    })
    .await;
    let (connection, agent) = scene(&dep, &upstream).await;

    // Two calls ask for approval and run nothing.
    let (s, first) = delete_item(&dep, &agent, &connection, "41", None).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{first}");
    let approve_me = first["approval_id"]
        .as_str()
        .expect("an approval")
        .to_string();
    let (_, second) = delete_item(&dep, &agent, &connection, "42", None).await;
    let deny_me = second["approval_id"]
        .as_str()
        .expect("an approval")
        .to_string();
    assert!(upstream.hits().is_empty());

    let c = driver.browser().await;
    let ui = Console { c, dep, shots };
    ui.go(&ui.dep.console_sign_up.clone()).await;
    ui.fill("#password", PASSWORD).await;
    ui.submit("main button[type=submit]").await;
    // The overview counts what waits for a person, and links to it.
    ui.go("/console/").await;
    assert_eq!(pending_count(&ui).await, "2");
    ui.check_page("overview-pending").await;
    ui.go("/console/approvals").await;
    let page = ui.text().await;
    for shown in [
        "custom.delete_item",
        "alice",
        connection.as_str(),
        "sha256:",
    ] {
        assert!(page.contains(shown), "{shown} not on the page: {page}");
    }
    // Asked and expires read as times; the approval is still open.
    let asked = ui.time("#pending dd:nth-of-type(5) time").await;
    let expires = ui.time("#pending dd:nth-of-type(6) time").await;
    assert!(asked < expires && expires > time::OffsetDateTime::now_utc());
    ui.check_page("approvals").await;

    decide(&ui, &approve_me, "approve", "ticket OPS-17").await;
    assert!(ui.text().await.contains("Approved"), "{}", ui.text().await);
    decide(&ui, &deny_me, "deny", "not this one").await;
    assert!(ui.text().await.contains("Denied"), "{}", ui.text().await);
    let page = ui.text().await;
    assert!(page.contains("Nothing is waiting"), "{page}");
    ui.go("/console/").await;
    assert_eq!(pending_count(&ui).await, "0");
    ui.go("/console/approvals").await;
    let page = ui.text().await;
    assert!(
        page.contains("approved") && page.contains("denied"),
        "{page}"
    );
    ui.time("#decided time").await;

    // The approved call runs once, with its own arguments; the denied one never runs.
    let (s, ran) = delete_item(&ui.dep, &agent, &connection, "41", Some(&approve_me)).await;
    assert_eq!(s, StatusCode::OK, "{ran}");
    let (s, again) = delete_item(&ui.dep, &agent, &connection, "41", Some(&approve_me)).await;
    assert_eq!(s, StatusCode::CONFLICT, "used once: {again}");
    assert!(
        again["type"]
            .as_str()
            .is_some_and(|t| t.ends_with("/approval-consumed")),
        "{again}"
    );
    let (s, denied) = delete_item(&ui.dep, &agent, &connection, "42", Some(&deny_me)).await;
    assert!(s.is_client_error(), "{denied}");
    assert!(
        denied["type"]
            .as_str()
            .is_some_and(|t| t.ends_with("/approval-denied")),
        "{denied}"
    );
    let hits: Vec<String> = upstream.hits().iter().map(|h| h.path.clone()).collect();
    assert_eq!(hits, ["/items/41"]);
    let mut decided = ui.audit("approval.approved").await;
    decided.extend(ui.audit("approval.denied").await);
    assert_eq!(decided.len(), 2, "{decided:?}");
    assert!(
        decided.iter().all(|e| e["actor"]["type"] == "member"),
        "decided by the member: {decided:?}"
    );

    // A developer has no approvals screen; a crafted decision is refused and recorded.
    let (_, third) = delete_item(&ui.dep, &agent, &connection, "43", None).await;
    let pending = third["approval_id"]
        .as_str()
        .expect("an approval")
        .to_string();
    let invite_link = {
        ui.go("/console/team").await;
        ui.fill("#email", "dev@example.com").await;
        ui.find("#role")
            .await
            .select_by_value("developer")
            .await
            .expect("select");
        ui.submit("#invite button").await;
        ui.value("#invite-link").await
    };
    ui.submit("form.signout button").await;
    ui.go(&invite_link).await;
    ui.fill("#password", PASSWORD).await;
    ui.submit("main button[type=submit]").await;
    assert!(!ui.text().await.is_empty());
    let nav = ui.find("nav").await.text().await.expect("nav text");
    assert!(!nav.contains("Approvals"), "{nav}");
    let cookie = ui.cookie().await;
    let csrf = ui.value("form.signout input[name=csrf]").await;
    let status = post_form(
        &ui.dep,
        &cookie,
        "/console/approvals/decide",
        &[
            ("csrf", csrf.as_str()),
            ("approval", pending.as_str()),
            ("decision", "approve"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    ui.denied("role_not_permitted", "member").await;
    let (s, still) = delete_item(&ui.dep, &agent, &connection, "43", Some(&pending)).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "still pending: {still}");
    assert!(
        still["type"]
            .as_str()
            .is_some_and(|t| t.ends_with("/approval-pending")),
        "{still}"
    );
    assert_eq!(upstream.hits().len(), 1);
    let _ = ui.c.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn console_approvals_embedded() {
    flow(Stack::Embedded, true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn console_approvals_jetstream_pg() {
    flow(Stack::JetStreamPg, false).await;
}

//! My approvals (issue 20), in a real browser against a real local OIDC provider, on both
//! stacks: Alice signs in at `/me/sign-in`; an agent's destructive calls on her connection
//! wait for a person; she sees them on My approvals (the exact tool, the service of her
//! connection, the arguments' fingerprint, the expiry) and nothing of Bob's; she approves
//! one (the agent's retry with it runs once against the recording upstream) and denies
//! another (it never reaches the upstream); the decisions are hers in the log. A crafted
//! decision on Bob's approval answers exactly like an unknown id and is recorded. My activity
//! lists Alice's calls that ran (tool, time, outcome, agent), newest first, and none of Bob's;
//! reading it is recorded as an audit query by Alice.

use std::time::Duration;

use axum::response::IntoResponse;
use fantoccini::Locator;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::console::browser::{Console, Driver};
use crate::fixtures::oidc_provider::{OidcClient, OidcConfig, OidcProvider, OidcUser};
use crate::harness::eventually;
use crate::me_pages::{post_me, through_provider};
use crate::support::{Deployment, Hit, Stack, Upstream, BASE_ENV, NO_RATE_LIMIT};

async fn call(
    dep: &Deployment,
    bearer: &str,
    method: reqwest::Method,
    path: &str,
    body: Value,
) -> (StatusCode, Value) {
    let r = reqwest::Client::new()
        .request(method, dep.svc.url(path))
        .bearer_auth(bearer)
        .json(&body)
        .send()
        .await
        .expect(path);
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn created(dep: &Deployment, path: &str, body: Value) -> String {
    let (s, v) = call(dep, &dep.admin, reqwest::Method::POST, path, body).await;
    assert!(s.is_success(), "{path}: {s} {v}");
    v["id"].as_str().map(str::to_string).unwrap_or_default()
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
    let method = reqwest::Method::POST;
    call(dep, agent, method, "/v1/tools/execute", body).await
}

/// The approval an agent's destructive call asked for (nothing ran).
async fn waits(dep: &Deployment, agent: &str, connection: &str, id: &str) -> String {
    let (s, v) = delete_item(dep, agent, connection, id, None).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    v["approval_id"].as_str().expect("an approval").to_string()
}

async fn decide(ui: &Console, approval: &str, decision: &str) {
    let button = ui
        .find(&format!("#approval-{approval} button[value='{decision}']"))
        .await;
    ui.click_to_next_page(button).await;
}

async fn flow(stack: Stack, shots: bool) {
    let driver = Driver::start();
    let envs: Vec<(&str, &str)> = [BASE_ENV, NO_RATE_LIMIT].concat();
    let dep = Deployment::start(stack, &envs).await;
    let idp = OidcProvider::start(OidcConfig {
        users: vec![OidcUser::new("alice@example.com", "sub-alice")],
        ..OidcConfig::default()
    })
    .await;
    idp.register(OidcClient {
        client_id: "authledger-me".into(),
        client_secret: "me-approvals-secret-7Hq2".into(),
        redirect_uris: vec![dep.svc.url("/me/callback")],
    });
    let provider = json!({ "issuer": idp.issuer, "audience": "authledger-end-users",
        "jwks_url": format!("{}/jwks", idp.issuer), "client_id": "authledger-me",
        "client_secret": "me-approvals-secret-7Hq2" });
    let (s, v) = call(
        &dep,
        &dep.admin,
        reqwest::Method::PUT,
        "/v1/workspace/identity-provider",
        provider,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");

    // An API-key service, Alice's and Bob's connections to it, a destructive tool on a
    // recording upstream, and an agent.
    let upstream = Upstream::start(|_hit: Hit| async {
        axum::Json(json!({ "deleted": true })).into_response()
    })
    .await;
    let config = created(
        &dep,
        "/v1/auth-configs",
        json!({ "name": "Items API", "provider": "custom", "auth_type": "api_key",
            "api_key": { "key_name": "X-Api-Key", "location": "header", "prefix": null } }),
    )
    .await;
    let mut connections = Vec::new();
    for user in ["sub-alice", "sub-bob"] {
        let body = json!({ "auth_config_id": config, "user_id": user,
            "credentials": { "api_key": format!("{user}-items-key-0001") } });
        connections.push(created(&dep, "/v1/connections", body).await);
    }
    let [alices, bobs] = [connections[0].clone(), connections[1].clone()];
    created(
        &dep,
        "/v1/tools",
        json!({ "name": "custom.delete_item", "provider": "custom",
            "description": "Deletes one item.", "method": "DELETE", "base_url": upstream.base_url,
            "path": "/items/{id}", "required_scopes": [], "risk": "destructive",
            "parameters": { "type": "object", "additionalProperties": false, "required": ["id"],
                            "properties": { "id": { "type": "string" } } } }),
    )
    .await;
    let (s, key) = call(
        &dep,
        &dep.admin,
        reqwest::Method::POST,
        "/v1/api-keys",
        json!({ "name": "agent", "role": "agent" }),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{key}");
    let agent = key["key"].as_str().expect("the agent's key").to_string();

    let approve_me = waits(&dep, &agent, &alices, "41").await;
    let deny_me = waits(&dep, &agent, &alices, "42").await;
    let bobs_approval = waits(&dep, &agent, &bobs, "99").await;
    assert!(upstream.hits().is_empty());

    // Alice signs in and finds what waits for her, and nothing of Bob's.
    let c = driver.browser().await;
    let ui = Console { c, dep, shots };
    ui.go(&format!("/me/sign-in?workspace={}", ui.dep.workspace))
        .await;
    through_provider(&ui, &idp).await;
    assert_eq!(ui.path().await, "/me/", "{}", ui.text().await);
    let link = ui.find("#me-approvals-link").await;
    ui.click_to_next_page(link).await;
    assert_eq!(ui.path().await, "/me/approvals");
    let page = ui.text().await;
    for shown in [
        "custom.delete_item",
        "Items API",
        alices.as_str(),
        "sha256:",
        "the arguments themselves are not kept",
        "Expires",
    ] {
        assert!(page.contains(shown), "{shown} not on the page: {page}");
    }
    for other in [bobs.as_str(), bobs_approval.as_str(), "sub-bob"] {
        assert!(!page.contains(other), "Bob's {other} on Alice's page");
    }
    for id in [&approve_me, &deny_me] {
        let card = format!("#pending #approval-{id}");
        let expires = ui.time(&format!("{card} .expires time")).await;
        assert!(expires > time::OffsetDateTime::now_utc(), "{id} expired");
    }
    ui.check_page("me-approvals").await;

    decide(&ui, &approve_me, "approve").await;
    assert!(ui.text().await.contains("Approved"), "{}", ui.text().await);
    decide(&ui, &deny_me, "deny").await;
    assert!(ui.text().await.contains("Denied"), "{}", ui.text().await);
    let page = ui.text().await;
    assert!(page.contains("Nothing is waiting"), "{page}");
    for (id, outcome) in [(&approve_me, "approved"), (&deny_me, "denied")] {
        let card = ui.find(&format!("#decided #approval-{id}")).await;
        let status = card.attr("data-status").await.expect("attr");
        assert_eq!(status.as_deref(), Some(outcome));
    }
    ui.check_page("me-approvals-decided").await;

    // The approved call runs once; the denied one never reaches the upstream.
    let (s, ran) = delete_item(&ui.dep, &agent, &alices, "41", Some(&approve_me)).await;
    assert_eq!(s, StatusCode::OK, "{ran}");
    let (s, again) = delete_item(&ui.dep, &agent, &alices, "41", Some(&approve_me)).await;
    assert_eq!(s, StatusCode::CONFLICT, "used once: {again}");
    let (s, denied) = delete_item(&ui.dep, &agent, &alices, "42", Some(&deny_me)).await;
    assert!(s.is_client_error(), "{denied}");
    let hits: Vec<String> = upstream.hits().iter().map(|h| h.path.clone()).collect();
    assert_eq!(hits, ["/items/41"]);
    let mut decided = ui.audit("approval.approved").await;
    decided.extend(ui.audit("approval.denied").await);
    assert_eq!(decided.len(), 2, "{decided:?}");
    assert!(
        decided
            .iter()
            .all(|e| e["actor"]["type"] == "user" && e["actor"]["id"] == "sub-alice"),
        "decided by Alice: {decided:?}"
    );

    // A crafted decision on Bob's approval answers like an unknown id, and is recorded.
    ui.go("/me/").await;
    let csrf = ui.value("input[name=csrf]").await;
    let me_cookie = format!(
        "authledger_me={}",
        ui.c.get_named_cookie("authledger_me")
            .await
            .expect("cookie")
            .value()
    );
    let mut answers = Vec::new();
    for id in [
        bobs_approval.as_str(),
        "0190c0de-0000-7000-8000-000000000000",
    ] {
        let form = [
            ("csrf", csrf.as_str()),
            ("approval", id),
            ("decision", "approve"),
        ];
        let (s, body) = post_me(&ui, &me_cookie, "/me/approvals/decide", &form).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{body}");
        assert!(body.contains("No such approval."), "{body}");
        assert!(!body.contains(id), "the id echoed: {body}");
        answers.push(body.replace(&csrf, ""));
    }
    assert_eq!(
        answers[0], answers[1],
        "Bob's approval told apart from an unknown one"
    );
    ui.denied("other_user", "user").await;
    let refused = ui.audit("access.denied").await;
    assert!(
        refused
            .iter()
            .any(|e| e["reason"] == "other_user" && e["actor"]["id"] == "sub-alice"),
        "{refused:?}"
    );
    let (s, bob_runs) = delete_item(&ui.dep, &agent, &bobs, "99", Some(&bobs_approval)).await;
    assert!(s.is_client_error(), "Bob's call still waits: {bob_runs}");
    assert_eq!(upstream.hits().len(), 1);

    // Bob's call runs (an admin approves it); My activity shows Alice's calls and only hers.
    let path = format!("/v1/approvals/{bobs_approval}/approve");
    let (s, v) = call(
        &ui.dep,
        &ui.dep.admin,
        reqwest::Method::POST,
        &path,
        json!({}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = delete_item(&ui.dep, &agent, &bobs, "99", Some(&bobs_approval)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let requested = |user: &'static str| {
        let dep = &ui.dep;
        async move {
            let path = format!("/v1/audit/events?kind=tool.requested&user_id={user}&limit=200");
            let (s, v) = call(dep, &dep.admin, reqwest::Method::GET, &path, Value::Null).await;
            assert_eq!(s, StatusCode::OK, "{v}");
            v["items"].as_array().cloned().unwrap_or_default()
        }
    };
    // A second call of Alice's, approved by an admin, runs after Bob's.
    let later = waits(&ui.dep, &agent, &alices, "43").await;
    let path = format!("/v1/approvals/{later}/approve");
    let (s, v) = call(
        &ui.dep,
        &ui.dep.admin,
        reqwest::Method::POST,
        &path,
        json!({}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = delete_item(&ui.dep, &agent, &alices, "43", Some(&later)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // The calls that ran (Alice's 41 and 43, Bob's 99) are in the audit view.
    eventually(Duration::from_secs(10), "the calls audited", || async {
        requested("sub-alice").await.len() == 2 && requested("sub-bob").await.len() == 1
    })
    .await;
    let alices_calls = requested("sub-alice").await;
    ui.go("/me/").await;
    let link = ui.find("#me-activity-link").await;
    ui.click_to_next_page(link).await;
    assert_eq!(ui.path().await, "/me/activity");
    let shown =
        ui.c.find_all(Locator::Css("#activity li.call"))
            .await
            .expect("calls");
    assert_eq!(
        shown.len(),
        alices_calls.len(),
        "Alice's calls, and only hers"
    );
    let page = ui.text().await;
    let agent_id = alices_calls[0]["actor"]["id"].as_str().expect("the agent");
    for shown in ["custom.delete_item", agent_id, "success"] {
        assert!(page.contains(shown), "{shown} not on the page: {page}");
    }
    let mut times = Vec::new();
    for when in
        ui.c.find_all(Locator::Css("#activity .when time"))
            .await
            .expect("times")
    {
        let exact = when.attr("datetime").await.expect("datetime");
        times.push(exact.expect("an exact time"));
    }
    assert_eq!(times.len(), 2);
    assert!(times[0] > times[1], "newest first: {times:?}");
    ui.check_page("me-activity").await;
    let queried = ui.audit("audit.queried").await;
    assert!(
        queried
            .iter()
            .any(|e| e["actor"]["type"] == "user" && e["actor"]["id"] == "sub-alice"),
        "{queried:?}"
    );
    let _ = ui.c.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn me_approvals_embedded() {
    flow(Stack::Embedded, true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn me_approvals_jetstream_pg() {
    flow(Stack::JetStreamPg, false).await;
}

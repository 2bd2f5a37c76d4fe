//! The gateways & tools screens in a real browser, on both stacks. An admin defines a
//! workspace tool (a bad parameters schema first: a clear error, the input kept), filters
//! the catalog, and creates a gateway bundling the tool with an agent key bound; the agent,
//! through the MCP URL copied from the page and through `/v1/tools`, sees exactly the
//! bundle. The admin edits the bundle (the agent sees the new one); a developer's binding of
//! a key that is not theirs is the command's refusal, shown on the form; a viewer sees the
//! gateways read-only, no catalog, and a crafted POST is refused and recorded; another
//! workspace's gateway id answers like an unknown one; the admin deletes the gateway (the
//! key then reaches nothing). The writes are in the audit with the member as actor.

use std::time::Duration;

use fantoccini::Locator;
use reqwest::StatusCode;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::ServiceExt as _;
use serde_json::{json, Value};

use crate::console::browser::{get_status, post_form, Console, Driver, PASSWORD};
use crate::support::{Deployment, Stack, BASE_ENV, NO_RATE_LIMIT};

async fn post(dep: &Deployment, bearer: &str, path: &str, body: Value) -> Value {
    let r = reqwest::Client::new()
        .post(dep.svc.url(path))
        .bearer_auth(bearer)
        .json(&body)
        .send()
        .await
        .expect(path);
    let status = r.status();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{path}: {status} {body}");
    body
}

/// An API-key auth config of provider `custom` in the deployment's workspace (or the one
/// `admin` names): its id.
async fn items_config(dep: &Deployment, admin: &str) -> String {
    let config = json!({ "name": "Items API", "provider": "custom", "auth_type": "api_key",
        "api_key": { "key_name": "X-Api-Key", "location": "header", "prefix": null } });
    let c = post(dep, admin, "/v1/auth-configs", config).await;
    c["id"].as_str().expect("id").to_string()
}

fn item_tool(name: &str, method: &str, risk: &str, base_url: &str) -> Value {
    json!({ "name": name, "provider": "custom", "description": "Does one thing to an item.",
        "method": method, "base_url": base_url, "path": "/items/{id}", "required_scopes": [],
        "risk": risk, "parameters": { "type": "object", "additionalProperties": false,
            "required": ["id"], "properties": { "id": { "type": "string" } } } })
}

/// An agent key: (id, secret).
async fn agent_key(dep: &Deployment, name: &str) -> (String, String) {
    let key = post(
        dep,
        &dep.admin,
        "/v1/api-keys",
        json!({ "name": name, "role": "agent" }),
    )
    .await;
    (
        key["id"].as_str().expect("id").to_string(),
        key["key"].as_str().expect("key").to_string(),
    )
}

/// The tools `/v1/tools` lists to `bearer`, by name.
async fn listed(dep: &Deployment, bearer: &str) -> Vec<String> {
    let r = reqwest::Client::new()
        .get(dep.svc.url("/v1/tools"))
        .bearer_auth(bearer)
        .send()
        .await
        .expect("tools");
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.expect("json");
    let mut names: Vec<String> = body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|t| t["name"].as_str().expect("name").to_string())
        .collect();
    names.sort();
    names
}

/// The tools an MCP client lists at `url` with `bearer`, by name.
async fn listed_over_mcp(url: &str, bearer: &str) -> Vec<String> {
    let config = StreamableHttpClientTransportConfig::with_uri(url.to_string()).auth_header(bearer);
    let transport = StreamableHttpClientTransport::from_config(config);
    let client = tokio::time::timeout(Duration::from_secs(20), ().serve(transport))
        .await
        .expect("initialize in time")
        .expect("MCP initialize");
    let mut names: Vec<String> = client
        .list_all_tools()
        .await
        .expect("tools/list")
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    client.cancel().await.expect("close");
    names.sort();
    names
}

async fn tick(ui: &Console, css: &str, on: bool) {
    let box_ = ui.find(css).await;
    let checked = box_.prop("checked").await.expect("checked").as_deref() == Some("true");
    if checked != on {
        box_.click().await.expect("tick");
    }
}

async fn nav(ui: &Console) -> String {
    ui.find("nav").await.text().await.expect("nav text")
}

async fn csrf(ui: &Console) -> String {
    ui.value("form.signout input[name=csrf]").await
}

async fn join(ui: &Console, invite: &str) {
    ui.submit("form.signout button").await;
    ui.go(invite).await;
    ui.fill("#password", PASSWORD).await;
    ui.submit("main button[type=submit]").await;
}

async fn invite(ui: &Console, email: &str, role: &str) -> String {
    ui.go("/console/team").await;
    ui.fill("#email", email).await;
    ui.find("#role")
        .await
        .select_by_value(role)
        .await
        .expect("select");
    ui.submit("#invite button").await;
    ui.value("#invite-link").await
}

/// The routes of the members' `role_not_permitted` refusals in the audit.
async fn refused_routes(ui: &Console) -> Vec<String> {
    let mut routes = Vec::new();
    for e in ui.audit("access.denied").await {
        if e["reason"] != "role_not_permitted" || e["actor"]["type"] != "member" {
            continue;
        }
        let id = e["event_id"].as_str().expect("id");
        let detail: Value = reqwest::Client::new()
            .get(ui.dep.svc.url(&format!("/v1/audit/events/{id}")))
            .bearer_auth(&ui.dep.admin)
            .send()
            .await
            .expect("event")
            .json()
            .await
            .expect("json");
        let route = detail["body"]["payload"]["route"].as_str();
        routes.push(route.expect("route").to_string());
    }
    routes
}

/// How many `kind` events of the workspace a member did.
async fn by_member_of(ui: &Console, kind: &str) -> usize {
    ui.audit(kind)
        .await
        .iter()
        .filter(|e| e["actor"]["type"] == "member")
        .count()
}

async fn flow(stack: Stack, shots: bool) {
    let driver = Driver::start();
    let envs: Vec<(&str, &str)> = [BASE_ENV, NO_RATE_LIMIT].concat();
    let dep = Deployment::start(stack, &envs).await;
    // The upstream is never called: listing is what these tests prove. Any loopback URL will do.
    let base_url = "http://127.0.0.1:9";
    let config = items_config(&dep, &dep.admin).await;
    let mut delete_tool = item_tool("custom.delete_item", "DELETE", "destructive", base_url);
    delete_tool["undo"] = json!({ "method": "POST", "path": "/items/{id}/restore" });
    post(&dep, &dep.admin, "/v1/tools", delete_tool).await;
    let (agent_id, agent) = agent_key(&dep, "support agent").await;

    let c = driver.browser().await;
    let ui = Console { c, dep, shots };
    ui.go(&ui.dep.console_sign_up.clone()).await;
    ui.fill("#password", PASSWORD).await;
    ui.submit("main button[type=submit]").await;
    assert!(nav(&ui).await.contains("Gateways & tools"));

    // The catalog: built-in and workspace tools with their risk; filtered without script.
    ui.go("/console/gateways").await;
    assert!(ui.text().await.contains("No gateways yet"));
    ui.c.find(Locator::LinkText("Tool catalog"))
        .await
        .expect("the catalog tab")
        .click()
        .await
        .expect("click");
    assert_eq!(ui.path().await, "/console/tools");
    let page = ui.text().await;
    for shown in [
        "github.delete_repository",
        "slack.post_message",
        "custom.delete_item",
        "destructive",
        "workspace",
    ] {
        assert!(page.contains(shown), "{shown} not in the catalog: {page}");
    }
    ui.check_page("tools").await;
    for (select, choice) in [("#f-provider", "github"), ("#f-risk", "destructive")] {
        ui.find(select)
            .await
            .select_by_value(choice)
            .await
            .expect("select");
    }
    ui.submit("#filter button").await;
    let rows =
        ui.c.find_all(Locator::Css("#tools tbody tr"))
            .await
            .expect("rows");
    assert_eq!(rows.len(), 1);
    assert!(rows[0]
        .text()
        .await
        .expect("row")
        .contains("github.delete_repository"));
    let url = ui.c.current_url().await.expect("url");
    assert_eq!(url.query(), Some("provider=github&risk=destructive"));

    // Define a workspace tool: a bad parameters schema first (the path's {id} not required).
    ui.go("/console/tools").await;
    ui.submit("#define-tool").await;
    assert_eq!(ui.path().await, "/console/tools/new");
    let bad_schema = r#"{"type": "object", "properties": {"id": {"type": "string"}}}"#;
    ui.fill("#t-name", "custom.get_item").await;
    ui.fill("#t-provider", "custom").await;
    ui.fill("#t-description", "Gets one item by id.").await;
    ui.fill("#t-base-url", base_url).await;
    ui.fill("#t-path", "/items/{id}").await;
    ui.fill("#t-scopes", "items.read").await;
    ui.fill("#t-parameters", bad_schema).await;
    ui.submit("#tool-form button").await;
    let error = ui.find("#form-error").await.text().await.expect("text");
    assert!(
        error.contains("parameters") && error.contains("path parameter id must be required"),
        "{error}"
    );
    let beside = ui
        .find("#parameters-error")
        .await
        .text()
        .await
        .expect("text");
    assert_eq!(beside, "path parameter id must be required");
    assert_eq!(ui.value("#t-name").await, "custom.get_item");
    assert_eq!(ui.value("#t-path").await, "/items/{id}");
    assert_eq!(ui.value("#t-scopes").await, "items.read");
    assert_eq!(ui.value("#t-parameters").await, bad_schema);
    let invalid = ui
        .find("#t-parameters")
        .await
        .attr("aria-invalid")
        .await
        .expect("attr");
    assert_eq!(invalid.as_deref(), Some("true"));
    ui.check_page("tool-define-error").await;
    ui.fill(
        "#t-parameters",
        r#"{"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}}"#,
    )
    .await;
    ui.submit("#tool-form button").await;
    let page = ui.text().await;
    assert!(
        page.contains("Defined workspace tool custom.get_item"),
        "{page}"
    );
    assert_eq!(
        listed(&ui.dep, &ui.dep.admin)
            .await
            .iter()
            .filter(|t| t.starts_with("custom."))
            .collect::<Vec<_>>(),
        ["custom.delete_item", "custom.get_item"],
        "defined through the API's command"
    );
    ui.go("/console/tools/custom.get_item").await;
    let page = ui.text().await;
    assert!(page.contains("items.read") && page.contains("\"required\""));
    ui.check_page("tool").await;
    // Redefining starts from the tool's definition.
    ui.submit("#redefine").await;
    assert_eq!(ui.value("#t-name").await, "custom.get_item");
    assert_eq!(ui.value("#t-base-url").await, base_url);
    ui.axe("tool-redefine").await;
    ui.fill("#t-description", "Gets one item by its id.").await;
    ui.submit("#tool-form button").await;
    let page = ui.text().await;
    assert!(
        page.contains("Redefined workspace tool custom.get_item (version 2)"),
        "{page}"
    );
    // Redefining in the console keeps an undo set over the API (the form has no undo field).
    ui.go("/console/tools/custom.delete_item").await;
    ui.submit("#redefine").await;
    ui.fill("#t-description", "Deletes one item by its id.")
        .await;
    ui.submit("#tool-form button").await;
    let page = ui.text().await;
    assert!(
        page.contains("Redefined workspace tool custom.delete_item (version 2)"),
        "{page}"
    );
    let r = reqwest::Client::new()
        .get(ui.dep.svc.url("/v1/tools"))
        .bearer_auth(&ui.dep.admin)
        .send()
        .await
        .expect("tools");
    let body: Value = r.json().await.expect("json");
    let undo = body["items"]
        .as_array()
        .and_then(|items| items.iter().find(|t| t["name"] == "custom.delete_item"))
        .map(|t| t["undo"].clone())
        .expect("the tool");
    assert_eq!(undo["path"], "/items/{id}/restore", "{undo}");

    // A gateway bundling it, with the agent key bound.
    ui.go("/console/gateways").await;
    ui.submit("#new-gateway").await;
    assert_eq!(ui.path().await, "/console/gateways/new");
    let page = ui.text().await;
    assert!(page.contains("Items API") && page.contains("custom.delete_item"));
    assert!(
        !page.contains("github.get_repository"),
        "only the provider's tools: {page}"
    );
    ui.check_page("gateway-new").await;
    let get_item = format!("input[name=tool][value='{config} custom.get_item']");
    let delete_item = format!("input[name=tool][value='{config} custom.delete_item']");
    let bind_agent = format!("input[name=key][value='{agent_id}']");
    ui.fill("#g-name", "Support bot").await;
    tick(&ui, &get_item, true).await;
    tick(&ui, &bind_agent, true).await;
    ui.submit("#gateway-form button").await;
    let page = ui.text().await;
    assert!(page.contains("Created \"Support bot\""), "{page}");
    let mcp_url = ui.value("#mcp-url").await;
    let gateway = mcp_url
        .strip_prefix(&ui.dep.svc.url("/mcp/"))
        .expect("the gateway's MCP URL on the service's public URL")
        .to_string();
    assert!(page.contains(&gateway), "its id on its page: {page}");
    assert!(page.contains(&agent_id) && page.contains("custom.get_item"));
    ui.check_page("gateway").await;

    // The agent sees exactly the bundle, over the copied MCP URL and over /v1/tools.
    assert_eq!(listed_over_mcp(&mcp_url, &agent).await, ["custom.get_item"]);
    assert_eq!(listed(&ui.dep, &agent).await, ["custom.get_item"]);

    // The list shows it with its MCP URL and a copy button.
    ui.go("/console/gateways").await;
    let page = ui.text().await;
    assert!(page.contains("Support bot") && page.contains("Items API"));
    assert_eq!(ui.value(&format!("#mcp-{gateway}")).await, mcp_url);
    ui.find(&format!("button.copy[data-copy='mcp-{gateway}']"))
        .await;
    ui.check_page("gateways").await;

    // Edit: the destructive tool added; the agent's bundle follows.
    ui.go(&format!("/console/gateways/{gateway}")).await;
    ui.submit("#edit-gateway").await;
    assert_eq!(ui.value("#g-name").await, "Support bot");
    ui.check_page("gateway-edit").await;
    ui.fill("#g-name", "Support bot (with deletes)").await;
    tick(&ui, &delete_item, true).await;
    ui.submit("#gateway-form button").await;
    let page = ui.text().await;
    assert!(
        page.contains("Saved \"Support bot (with deletes)\""),
        "{page}"
    );
    assert_eq!(
        listed(&ui.dep, &agent).await,
        ["custom.delete_item", "custom.get_item"]
    );
    assert_eq!(
        listed_over_mcp(&mcp_url, &agent).await,
        ["custom.delete_item", "custom.get_item"]
    );

    // Another workspace's gateway id answers exactly like an unknown one (and is recorded).
    let other_admin = ui.dep.other_workspace("globex").await;
    let other_config = items_config(&ui.dep, &other_admin).await;
    let other_tool = item_tool("custom.get_item", "GET", "read", base_url);
    post(&ui.dep, &other_admin, "/v1/tools", other_tool).await;
    let other = post(
        &ui.dep,
        &other_admin,
        "/v1/gateways",
        json!({ "name": "Globex bot", "servers": [
            { "auth_config_id": other_config, "tools": ["custom.get_item"] }] }),
    )
    .await;
    let other = other["id"].as_str().expect("id").to_string();
    let unknown = "0190a000-0000-7000-8000-000000000001";
    let cookie = ui.cookie().await;
    for id in [other.as_str(), unknown] {
        let path = format!("/console/gateways/{id}");
        assert_eq!(
            get_status(&ui.dep, &cookie, &path).await,
            StatusCode::NOT_FOUND
        );
        ui.go(&path).await;
        let page = ui.text().await;
        assert!(
            page.contains("There is no such item in this workspace."),
            "{page}"
        );
        assert!(!page.contains("Globex"), "{page}");
    }
    ui.denied("other_workspace", "member").await;

    // A developer may edit gateways but not bind a key that is not theirs: the command's
    // refusal, on the form, with what they ticked kept.
    let (second_id, _second) = agent_key(&ui.dep, "another agent").await;
    let developer = invite(&ui, "dev@example.com", "developer").await;
    let viewer = invite(&ui, "viewer@example.com", "viewer").await;
    join(&ui, &developer).await;
    assert!(nav(&ui).await.contains("Gateways & tools"));
    ui.go(&format!("/console/gateways/{gateway}/edit")).await;
    tick(&ui, &format!("input[name=key][value='{second_id}']"), true).await;
    ui.submit("#gateway-form button").await;
    let error = ui.find("#form-error").await.text().await.expect("text");
    assert!(
        error.contains(&second_id) && error.contains("binding a key is for an admin"),
        "{error}"
    );
    let second_ticked = ui
        .find(&format!("input[name=key][value='{second_id}']"))
        .await
        .prop("checked")
        .await
        .expect("checked");
    assert_eq!(second_ticked.as_deref(), Some("true"), "the form kept");
    ui.check_page("gateway-edit-refused").await;
    assert_eq!(
        listed(&ui.dep, &agent).await,
        ["custom.delete_item", "custom.get_item"],
        "nothing changed"
    );

    // A viewer sees the gateways read-only and no catalog; a crafted POST is refused.
    join(&ui, &viewer).await;
    assert!(nav(&ui).await.contains("Gateways & tools"));
    ui.go("/console/gateways").await;
    let page = ui.text().await;
    assert!(page.contains("Support bot (with deletes)"), "{page}");
    for absent in ["#new-gateway", "a[href='/console/tools']"] {
        assert!(
            ui.c.find(Locator::Css(absent)).await.is_err(),
            "{absent} shown to a viewer"
        );
    }
    ui.check_page("gateways-viewer").await;
    ui.go(&format!("/console/gateways/{gateway}")).await;
    for absent in ["#edit-gateway", "form#delete"] {
        assert!(
            ui.c.find(Locator::Css(absent)).await.is_err(),
            "{absent} shown to a viewer"
        );
    }
    ui.axe("gateway-viewer").await;
    let cookie = ui.cookie().await;
    let token = csrf(&ui).await;
    let crafted = [
        ("csrf", token.as_str()),
        ("name", "Viewer's own"),
        ("tool", &format!("{config} custom.delete_item")),
    ];
    assert_eq!(
        post_form(&ui.dep, &cookie, "/console/gateways", &crafted).await,
        StatusCode::FORBIDDEN
    );
    let delete = format!("/console/gateways/{gateway}/delete");
    let confirm = [("csrf", token.as_str()), ("confirm", "yes")];
    assert_eq!(
        post_form(&ui.dep, &cookie, &delete, &confirm).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        get_status(&ui.dep, &cookie, "/console/tools").await,
        StatusCode::FORBIDDEN
    );
    crate::harness::eventually(Duration::from_secs(10), "the refusals", || async {
        let routes = refused_routes(&ui).await;
        [
            "/console/gateways",
            "/console/gateways/{id}/delete",
            "/console/tools",
        ]
        .iter()
        .all(|r| routes.iter().any(|seen| seen == r))
    })
    .await;
    assert_eq!(listed(&ui.dep, &agent).await.len(), 2, "nothing changed");

    // The admin deletes it: the server checks the confirmation; then the key reaches nothing.
    ui.submit("form.signout button").await;
    ui.sign_in("admin@example.com", PASSWORD).await;
    let cookie = ui.cookie().await;
    let token = csrf(&ui).await;
    assert_eq!(
        post_form(&ui.dep, &cookie, &delete, &[("csrf", token.as_str())]).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unconfirmed"
    );
    assert_eq!(listed(&ui.dep, &agent).await.len(), 2, "still there");
    ui.go(&format!("/console/gateways/{gateway}")).await;
    tick(&ui, "#delete-confirm", true).await;
    ui.submit("form#delete button").await;
    let page = ui.text().await;
    assert!(
        page.contains("Deleted \"Support bot (with deletes)\"") && page.contains("No gateways yet"),
        "{page}"
    );
    assert!(
        listed(&ui.dep, &agent).await.is_empty(),
        "a deleted gateway binds its key to nothing"
    );
    assert_eq!(
        get_status(&ui.dep, &cookie, &format!("/console/gateways/{gateway}")).await,
        StatusCode::NOT_FOUND
    );

    // The workspace tool removed from its page (confirmed); built-ins have no such control.
    ui.go("/console/tools/custom.get_item").await;
    tick(&ui, "#remove-confirm", true).await;
    ui.submit("form#remove button").await;
    let page = ui.text().await;
    assert!(
        page.contains("Removed workspace tool custom.get_item"),
        "{page}"
    );
    let left = listed(&ui.dep, &ui.dep.admin).await;
    assert!(
        !left.iter().any(|t| t == "custom.get_item")
            && left.iter().any(|t| t == "custom.delete_item"),
        "{left:?}"
    );
    ui.go("/console/tools/github.delete_repository").await;
    assert!(ui.c.find(Locator::Css("form#remove")).await.is_err());
    assert!(ui.text().await.contains("built-in"));

    // Every write is in the audit, the member as actor.
    assert_eq!(by_member_of(&ui, "tool.removed").await, 1);
    assert_eq!(
        by_member_of(&ui, "gateway.defined").await,
        2,
        "created, edited"
    );
    assert_eq!(by_member_of(&ui, "gateway.deleted").await, 1);
    assert_eq!(
        by_member_of(&ui, "tool.defined").await,
        3,
        "defined, redefined, the destructive one redefined"
    );
    let _ = ui.c.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn console_gateways_and_tools_embedded() {
    flow(Stack::Embedded, true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn console_gateways_and_tools_jetstream_pg() {
    flow(Stack::JetStreamPg, false).await;
}

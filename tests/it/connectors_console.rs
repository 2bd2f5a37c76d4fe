//! A native connector's forms in Chromium, rendered from its definition: the console's
//! create form (pick the connector, its settings with labels, help, the enum as a select,
//! defaults filled in) makes the auth config; the hosted connect page asks for its
//! credentials (the secret a password input) and its Test and Connect reach the real
//! Redis server. axe-core on each page, screenshots at desktop and 360 px.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::console::browser::{Console, Driver, PASSWORD};
use crate::support::{request, Deployment, Reply, Stack, BASE_ENV};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connector_forms_render_from_definitions_in_the_console_and_connect_page() {
    let password = format!("Rd-{}", uuid::Uuid::now_v7().simple());
    let server = crate::connectors_redis::redis(&password).await;
    let driver = Driver::start();
    let dep = Deployment::start(Stack::Embedded, BASE_ENV).await;
    let c = driver.browser().await;
    let ui = Console {
        c,
        dep,
        shots: true,
    };
    ui.go(&ui.dep.console_sign_up.clone()).await;
    ui.fill("#password", PASSWORD).await;
    ui.submit("main button[type=submit]").await;

    // The picker, then the PostgreSQL form: its SSL Mode a select with the definition's choices.
    ui.go("/console/auth-configs/new?type=connector&connector=postgres")
        .await;
    let text = ui.text().await;
    for expected in [
        "Native connector",
        "Host",
        "Port",
        "SSL Mode",
        "CA certificate (PEM)",
    ] {
        assert!(text.contains(expected), "{expected}: {text}");
    }
    let choices =
        ui.c.execute(
            "return [...document.querySelectorAll('#f_ssl_mode option')].map(o => o.value);",
            vec![],
        )
        .await
        .expect("options");
    assert_eq!(
        choices,
        json!(["disable", "require", "verify-ca", "verify-full"])
    );
    ui.check_page("auth-config-new-connector").await;

    // A Redis auth config from its form.
    ui.go("/console/auth-configs/new?type=connector&connector=redis")
        .await;
    ui.fill("#cn-name", "Cache").await;
    ui.fill("#f_host", "127.0.0.1").await;
    ui.fill("#f_port", &server.port.to_string()).await;
    ui.submit("#create-connector button").await;
    let text = ui.text().await;
    assert!(text.contains("Cache"), "{text}");
    let http = reqwest::Client::new();
    let list = Reply::of(request(
        &http,
        &ui.dep.svc,
        &ui.dep.admin,
        Method::GET,
        "/v1/auth-configs",
        None,
    ))
    .await;
    let config = list.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|c| c["name"] == "Cache")
        .unwrap_or_else(|| panic!("no Cache in {}", list.text))
        .clone();
    assert_eq!(config["auth_type"], "connector", "{config}");
    let id = config["id"].as_str().expect("id").to_string();

    // The hosted connect page: the credential fields of the definition.
    let r = Reply::of(request(
        &http,
        &ui.dep.svc,
        &ui.dep.admin,
        Method::POST,
        "/v1/connections",
        Some(json!({ "auth_config_id": id, "user_id": "analyst" })),
    ))
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let connection = r.str("id");
    ui.go(&r.str("connect_url")).await;
    let kind: Value =
        ui.c.execute("return document.querySelector('#f_password').type;", vec![])
            .await
            .expect("password input");
    assert_eq!(kind, json!("password"));
    ui.check_page("connect-connector").await;
    ui.fill("#f_username", "app").await;
    ui.fill("#f_password", "Not-The-Password-48").await;
    ui.submit("#test").await;
    let text = ui.text().await;
    assert!(text.contains("Test failed"), "{text}");
    ui.check_page("connect-connector-test-failed").await;
    ui.fill("#f_password", &password).await;
    ui.submit("#connect").await;
    let r = Reply::of(request(
        &http,
        &ui.dep.svc,
        &ui.dep.admin,
        Method::GET,
        &format!("/v1/connections/{connection}"),
        None,
    ))
    .await;
    assert_eq!(r.body["status"], "active", "{}", r.text);
}

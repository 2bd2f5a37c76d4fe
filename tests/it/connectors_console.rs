//! A native connector's forms in Chromium, rendered from its definition: the console's
//! create form (pick the connector, its settings with labels, help, the enum as a select,
//! defaults filled in) makes the auth config; the hosted connect page asks for its
//! credentials (the secret a password input) and its Test and Connect reach the real
//! Redis server. axe-core on each page, screenshots at desktop and 360 px.
//!
//! A connector's whole job in the console (issues 16 and 17), on both stacks against a
//! PostgreSQL cluster of the test's own with SCRAM passwords: **Test** on the auth config's
//! page from the definition's credential fields (a wrong password `invalid_credentials`
//! with the server's words, the right one passes; the password never echoed), each run an
//! `auth_config.tested` event (console and API) in the audit view; **Edit** pre-filled from
//! the stored settings, a new version (an unchanged save records nothing); a connection for
//! an end user from the new connection form; a viewer sees no Test or Edit and their crafted
//! POSTs are refused and recorded; no password in a page, the log or a file of the service.

use std::time::Duration;

use fantoccini::Locator;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::console::browser::{post_form, Console, Driver, PASSWORD};
use crate::fixtures::postgres::PrivatePostgres;
use crate::harness::eventually;
use crate::support::{cli, request, Deployment, Reply, Stack, BASE_ENV};

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
    // The end user's run is recorded as theirs (issue 17).
    let runs = ui.audit("auth_config.tested").await;
    assert!(
        runs.iter().any(|e| e["actor"]["type"] == "user"
            && e["actor"]["id"] == "analyst"
            && e["outcome"] == "failed"
            && e["reason"] == "invalid_credentials"),
        "{runs:?}"
    );
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

// ---------------------------------------------------------------------------------------
// A connector's whole job in the console (issues 16 and 17), against a real PostgreSQL
// ---------------------------------------------------------------------------------------

/// The right and a wrong password of `tester` on the test's own cluster.
const WRONG: &str = "Not-The-Password-77";

/// A PostgreSQL cluster of the test's own where `tester` logs in with a SCRAM password
/// (the suite's shared server trusts every local login, so it cannot refuse a password).
async fn password_postgres() -> (PrivatePostgres, String) {
    let pg = PrivatePostgres::start();
    let password = format!("Pg-{}", uuid::Uuid::now_v7().simple());
    let pool = sqlx::PgPool::connect(&pg.url()).await.expect("superuser");
    for sql in [
        "ALTER SYSTEM SET password_encryption = 'scram-sha-256'".to_string(),
        "SELECT pg_reload_conf()".to_string(),
        format!("CREATE ROLE tester LOGIN PASSWORD '{password}'"),
        "CREATE DATABASE appdb".to_string(),
    ] {
        sqlx::query(&sql).execute(&pool).await.expect(&sql);
    }
    std::fs::write(
        pg.data_dir().join("pg_hba.conf"),
        "local all postgres trust\n\
         host all postgres 127.0.0.1/32 trust\n\
         host all tester 127.0.0.1/32 scram-sha-256\n",
    )
    .expect("pg_hba");
    sqlx::query("SELECT pg_reload_conf()")
        .execute(&pool)
        .await
        .expect("reload");
    pool.close().await;
    (pg, password)
}

async fn has(ui: &Console, css: &str) -> bool {
    ui.c.find(Locator::Css(css)).await.is_ok()
}

async fn text_of(ui: &Console, css: &str) -> String {
    ui.c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|_| panic!("{css}"))
        .text()
        .await
        .expect("text")
}

async fn select(ui: &Console, css: &str, value: &str) {
    let s = ui.find(css).await;
    s.select_by_value(value).await.expect(value);
}

async fn api(ui: &Console, method: Method, path: &str, body: Option<Value>) -> Reply {
    let http = reqwest::Client::new();
    Reply::of(request(
        &http,
        &ui.dep.svc,
        &ui.dep.admin,
        method,
        path,
        body,
    ))
    .await
}

/// The page's whole HTML, kept for the leak check at the end.
async fn page(ui: &Console, pages: &mut Vec<String>) -> String {
    let html = ui.c.source().await.expect("source");
    pages.push(html.clone());
    html
}

async fn connector_console_flow(stack: Stack, shots: bool) {
    let (pg, password) = password_postgres().await;
    let driver = Driver::start();
    let mut envs = BASE_ENV.to_vec();
    envs.push(("AUTHLEDGER_PROVIDER_TIMEOUT_SECS", "5"));
    let dep = Deployment::start(stack, &envs).await;
    let c = driver.browser().await;
    let ui = Console { c, dep, shots };
    let mut pages = Vec::new();
    ui.go(&ui.dep.console_sign_up.clone()).await;
    ui.fill("#password", PASSWORD).await;
    ui.submit("main button[type=submit]").await;

    // The auth config, from the PostgreSQL connector's form.
    ui.go("/console/auth-configs/new?type=connector&connector=postgres")
        .await;
    ui.fill("#cn-name", "Orders DB").await;
    ui.fill("#f_host", "127.0.0.1").await;
    ui.fill("#f_port", &pg.port().to_string()).await;
    select(&ui, "#f_ssl_mode", "disable").await;
    ui.submit("#create-connector button").await;
    let list = api(&ui, Method::GET, "/v1/auth-configs", None).await;
    let id = list.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|c| c["name"] == "Orders DB")
        .unwrap_or_else(|| panic!("no Orders DB in {}", list.text))["id"]
        .as_str()
        .expect("id")
        .to_string();

    // Test: the definition's credential fields, the password a password input.
    ui.go(&format!("/console/auth-configs/{id}")).await;
    assert!(
        has(&ui, "#test-connection").await,
        "no Test for a connector"
    );
    let kind: Value =
        ui.c.execute("return document.querySelector('#f_password').type;", vec![])
            .await
            .expect("password input");
    assert_eq!(kind, json!("password"));
    ui.check_page("auth-config-connector").await;

    // A wrong password: the failure, its class and what the server said.
    ui.fill("#f_user", "tester").await;
    ui.fill("#f_password", WRONG).await;
    ui.submit("#test-connection button").await;
    let result = text_of(&ui, "#test-result").await;
    assert!(result.starts_with("Test failed."), "{result}");
    assert_eq!(text_of(&ui, "#test-class").await, "invalid_credentials");
    assert!(
        text_of(&ui, "#test-said").await.contains("tester"),
        "{result}"
    );
    assert_eq!(ui.value("#f_user").await, "tester", "the user kept");
    assert_eq!(ui.value("#f_password").await, "", "a secret never again");
    let html = page(&ui, &mut pages).await;
    assert!(!html.contains(WRONG), "the page shows the password given");
    ui.check_page("auth-config-connector-test-failed").await;

    // The right one: passed, with the operation and its time.
    ui.fill("#f_password", &password).await;
    ui.submit("#test-connection button").await;
    let result = text_of(&ui, "#test-result").await;
    assert!(
        result.starts_with("Test passed.") && result.contains("SELECT 1"),
        "{result}"
    );
    page(&ui, &mut pages).await;
    ui.check_page("auth-config-connector-test-passed").await;

    // Over the API too: each run is an event (outcome, class, no secret), in the audit.
    let r = api(
        &ui,
        Method::POST,
        &format!("/v1/auth-configs/{id}/test"),
        Some(json!({ "credentials": { "user": "tester", "password": WRONG } })),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["class"], "invalid_credentials", "{}", r.text);
    let tested = ui.audit("auth_config.tested").await;
    let facts: Vec<(String, String, String, String)> = tested
        .iter()
        .map(|e| {
            let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
            (
                s(&e["actor"]["type"]),
                s(&e["outcome"]),
                s(&e["reason"]),
                s(&e["auth_config_id"]),
            )
        })
        .collect();
    let f = |a: &str, o: &str, r: &str| (a.to_string(), o.to_string(), r.to_string(), id.clone());
    assert_eq!(
        facts,
        [
            f("api_key", "failed", "invalid_credentials"),
            f("member", "ok", ""),
            f("member", "failed", "invalid_credentials"),
        ],
        "newest first: {tested:?}"
    );
    ui.go("/console/audit?kind=auth_config.tested").await;
    let text = ui.text().await;
    assert!(
        text.contains("auth_config.tested") && text.contains("invalid_credentials"),
        "{text}"
    );
    page(&ui, &mut pages).await;
    // The rows in view for the screenshots.
    ui.c.execute(
        "document.querySelector('main table').scrollIntoView(); return true;",
        vec![],
    )
    .await
    .expect("scroll to the events");
    ui.check_page("audit-auth-config-tested").await;

    // Edit: the settings pre-filled from the definition; a new version through the update.
    ui.go(&format!("/console/auth-configs/{id}/edit")).await;
    assert_eq!(ui.value("#f_host").await, "127.0.0.1");
    assert_eq!(ui.value("#f_port").await, pg.port().to_string());
    assert_eq!(ui.value("#f_database").await, "postgres");
    assert_eq!(ui.value("#f_ssl_mode").await, "disable");
    ui.check_page("auth-config-connector-edit").await;
    ui.fill("#f_database", "appdb").await;
    ui.submit("#edit-auth-config button[type=submit]").await;
    assert!(ui.text().await.contains("Saved as a new version."));
    let config = api(&ui, Method::GET, &format!("/v1/auth-configs/{id}"), None).await;
    assert_eq!(config.body["version"], 2, "{}", config.text);
    assert_eq!(
        config.body["settings"]["settings"]["database"], "appdb",
        "{}",
        config.text
    );
    assert_eq!(config.body["settings"]["settings"]["port"], pg.port());
    // Saving unchanged records nothing.
    ui.go(&format!("/console/auth-configs/{id}/edit")).await;
    ui.submit("#edit-auth-config button[type=submit]").await;
    let text = ui.text().await;
    assert!(text.contains("nothing changed"), "{text}");
    let config = api(&ui, Method::GET, &format!("/v1/auth-configs/{id}"), None).await;
    assert_eq!(config.body["version"], 2, "{}", config.text);
    // The new database is the one tested.
    ui.go(&format!("/console/auth-configs/{id}")).await;
    ui.fill("#f_user", "tester").await;
    ui.fill("#f_password", &password).await;
    ui.submit("#test-connection button").await;
    let result = text_of(&ui, "#test-result").await;
    assert!(result.starts_with("Test passed."), "{result}");

    // A connection for an end user, from the console's new connection form.
    ui.go("/console/connections").await;
    select(&ui, "#new-config", &id).await;
    ui.submit("#new-connection button").await;
    assert!(has(&ui, "#f_password").await, "no credential fields");
    ui.check_page("connection-new-connector").await;
    ui.fill("#user_id", "dana").await;
    ui.fill("#f_user", "tester").await;
    ui.fill("#f_password", WRONG).await;
    ui.submit("#create-connection button").await;
    let text = ui.text().await;
    assert!(text.contains("invalid_credentials"), "{text}");
    assert_eq!(ui.value("#f_user").await, "tester");
    assert_eq!(ui.value("#f_password").await, "");
    let html = page(&ui, &mut pages).await;
    assert!(!html.contains(WRONG), "the page shows the password given");
    ui.check_page("connection-new-connector-refused").await;
    ui.fill("#f_password", &password).await;
    ui.submit("#create-connection button").await;
    let text = ui.text().await;
    assert!(text.contains("Connected dana."), "{text}");
    page(&ui, &mut pages).await;
    let made = api(&ui, Method::GET, "/v1/connections?user_id=dana", None).await;
    assert_eq!(made.body["items"][0]["status"], "active", "{}", made.text);
    assert_eq!(made.body["items"][0]["auth_config_id"], id.as_str());

    // A viewer: no Test, no Edit; a crafted test or edit is refused and recorded.
    ui.go("/console/team").await;
    ui.fill("#email", "viewer@example.com").await;
    select(&ui, "#role", "viewer").await;
    ui.submit("#invite button").await;
    let invite = ui.value("#invite-link").await;
    ui.submit("form.signout button").await;
    ui.go(&invite).await;
    ui.fill("#password", PASSWORD).await;
    ui.submit("main button[type=submit]").await;
    ui.go(&format!("/console/auth-configs/{id}")).await;
    assert!(ui.text().await.contains("Settings"));
    for control in ["#test-connection", "a[href$='/edit']", "#f_password"] {
        assert!(!has(&ui, control).await, "a viewer sees {control}");
    }
    let cookie = ui.cookie().await;
    let csrf = ui.value("form.signout input[name=csrf]").await;
    let before = ui.audit("access.denied").await.len();
    let runs = ui.audit("auth_config.tested").await.len();
    let crafted = post_form(
        &ui.dep,
        &cookie,
        &format!("/console/auth-configs/{id}/test"),
        &[
            ("csrf", &csrf),
            ("f_user", "tester"),
            ("f_password", &password),
        ],
    )
    .await;
    assert_eq!(crafted, StatusCode::FORBIDDEN);
    let crafted = post_form(
        &ui.dep,
        &cookie,
        &format!("/console/auth-configs/{id}/edit"),
        &[
            ("csrf", &csrf),
            ("name", "Mine"),
            ("f_database", "postgres"),
        ],
    )
    .await;
    assert_eq!(crafted, StatusCode::FORBIDDEN);
    eventually(Duration::from_secs(10), "two more refusals", || async {
        let denied = ui.audit("access.denied").await;
        denied.len() >= before + 2
            && denied
                .iter()
                .take(2)
                .all(|e| e["reason"] == "role_not_permitted" && e["actor"]["type"] == "member")
    })
    .await;
    assert_eq!(ui.audit("auth_config.tested").await.len(), runs, "no run");
    let config = api(&ui, Method::GET, &format!("/v1/auth-configs/{id}"), None).await;
    assert_eq!(config.body["name"], "Orders DB", "{}", config.text);

    // No password given, right or wrong, in a page, the log or any file of the service.
    for secret in [password.as_str(), WRONG] {
        for html in &pages {
            assert!(!html.contains(secret), "a password in a page");
        }
        let dump = cli(&ui.dep.storage, &["dump-log"]).await;
        assert!(dump.status.success());
        let mut log = String::from_utf8_lossy(&dump.stdout).to_string();
        for line in String::from_utf8_lossy(&dump.stdout).lines() {
            let rec: Value = serde_json::from_str(line).expect("dump-log line");
            let body = authledger::ledger::envelope::open_envelope(
                rec["envelope"].as_str().expect("envelope").as_bytes(),
            )
            .expect("open envelope")
            .body;
            log.push_str(&serde_json::to_string(&body).expect("body"));
        }
        assert!(log.contains("auth_config.tested"), "the log was read");
        assert!(!log.contains(secret), "a password in the log");
        let needle = secret.as_bytes();
        let mut files = vec![ui.dep.dir.path().to_path_buf()];
        while let Some(path) = files.pop() {
            if path.is_dir() {
                for entry in std::fs::read_dir(&path).expect("dir").flatten() {
                    files.push(entry.path());
                }
            } else if let Ok(bytes) = std::fs::read(&path) {
                assert!(
                    !bytes.windows(needle.len()).any(|w| w == needle),
                    "a password in {}",
                    path.display()
                );
            }
        }
    }
    let _ = ui.c.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn connector_test_edit_and_connection_in_the_console_embedded() {
    connector_console_flow(Stack::Embedded, true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn connector_test_edit_and_connection_in_the_console_jetstream_pg() {
    connector_console_flow(Stack::JetStreamPg, false).await;
}

//! The console's auth configs and connections screens in a real browser (the helpers of
//! `console.rs`: headless Chromium, axe-core on every page, screenshots at desktop and
//! 360 px into `target/console-screenshots/`), against a real `serve` on both stacks.
//!
//! The flow: the first admin creates an OAuth2 auth config from the provider picker (the
//! script fills the catalog's endpoints and scopes; without it the picker's GET form does),
//! sees its detail (the client secret only as a fingerprint), edits it (version 2, with a
//! diff and the member who changed it), disables and enables it; creates a custom OAuth2
//! auth config at the test provider and a connection through the real consent flow, which
//! returns to the console; refreshes it; creates an API-key auth config and a connection
//! from an end user's key, filters the list, revokes it (refused without the confirmation);
//! tests a PostgreSQL connector (passes against the test database, fails on a closed port);
//! deletes an auth config with a dependent connection (refused without the cascade, then
//! cascades with it); a viewer sees no create, edit or revoke controls, and their crafted
//! POST is refused and recorded as `access.denied`.

use std::time::Duration;

use fantoccini::Locator;
use reqwest::StatusCode;
use serde_json::Value;

use crate::console::browser::{get_status, post_form, Console, Driver, PASSWORD};
use crate::harness::eventually;
use crate::support::{provider_for, Deployment, Stack, BASE_ENV};

const CLIENT_ID: &str = "console-client";
const CLIENT_SECRET: &str = "console-s3cret-never-shown";

impl Console {
    async fn value_or_text(&self, css: &str) -> String {
        self.find(css).await.text().await.expect("text")
    }

    async fn has(&self, css: &str) -> bool {
        self.c.find(Locator::Css(css)).await.is_ok()
    }

    async fn csrf(&self) -> String {
        self.value("form.signout input[name=csrf]").await
    }

    async fn click_link(&self, text: &str) {
        let link = self
            .c
            .find(Locator::LinkText(text))
            .await
            .unwrap_or_else(|_| panic!("link {text}"));
        self.click_to_next_page(link).await;
    }

    async fn api(&self, path: &str) -> Value {
        reqwest::Client::new()
            .get(self.dep.svc.url(path))
            .bearer_auth(&self.dep.admin)
            .send()
            .await
            .expect("api")
            .json()
            .await
            .expect("json")
    }

    /// The id at the end of the current page's path (`/console/…/{id}`).
    async fn id_in_path(&self) -> String {
        let path = self.path().await;
        path.rsplit('/').next().expect("id").to_string()
    }
}

/// An OAuth2 auth config from the catalog through the picker, its detail, an edit (a new
/// version with its diff), disable and enable. Returns its id.
async fn oauth_from_the_catalog(ui: &Console) -> String {
    let github = authledger::providers::provider("github").expect("github in the catalog");
    // Without script the picker is a GET form: the page comes back pre-filled.
    ui.go("/console/auth-configs/new?type=oauth2&q=sla&provider=slack")
        .await;
    let slack = authledger::providers::provider("slack").expect("slack");
    assert_eq!(
        ui.value("#authorization_url").await,
        slack.oauth2.authorization_url
    );
    assert!(ui.has("#provider-choice option[value=slack]").await);
    assert!(!ui.has("#provider-choice option[value=github]").await);

    ui.go("/console/auth-configs/new?type=oauth2").await;
    ui.check_page("auth-config-new-oauth2").await;
    ui.fill("#provider-search", "Git").await;
    let choice = ui.find("#provider-choice").await;
    choice.select_by_value("github").await.expect("github");
    assert_eq!(
        ui.value("#authorization_url").await,
        github.oauth2.authorization_url
    );
    assert_eq!(ui.value("#token_url").await, github.oauth2.token_url);
    assert_eq!(
        ui.value("#scopes").await,
        github.oauth2.default_scopes.join(" ")
    );
    assert_eq!(ui.value("#oauth-provider").await, "github");
    ui.fill("#client_id", "gh-client").await;
    ui.fill("#client_secret", CLIENT_SECRET).await;
    ui.submit("#create-oauth2 button[type=submit]").await;
    let listed = ui.text().await;
    assert!(
        listed.contains(&format!("Created \"{}\"", github.name)),
        "{listed}"
    );
    assert!(
        listed.contains("oauth2") && listed.contains("github"),
        "{listed}"
    );

    // The detail: settings, the secret only as its fingerprint.
    ui.click_link(&github.name).await;
    let id = ui.id_in_path().await;
    let detail = ui.text().await;
    assert!(detail.contains("client_secret.fingerprint"), "{detail}");
    assert!(detail.contains("hmac-sha256:"), "{detail}");
    assert!(!ui.c.source().await.expect("html").contains(CLIENT_SECRET));
    assert!(detail.contains("Version 1"), "{detail}");
    ui.check_page("auth-config-detail").await;

    // Edit: a new version, its diff, who made it.
    ui.click_link("Edit").await;
    ui.check_page("auth-config-edit").await;
    ui.fill("#name", "GitHub (team)").await;
    ui.fill("#scopes", "repo read:user").await;
    ui.submit("#edit-auth-config button[type=submit]").await;
    let edited = ui.text().await;
    assert!(edited.contains("Saved as a new version"), "{edited}");
    assert!(edited.contains("Version 2"), "{edited}");
    let diff = ui
        .find("#versions li:first-child table.diff")
        .await
        .text()
        .await
        .expect("text");
    assert!(
        diff.contains("scopes") && diff.contains("repo read:user"),
        "{diff}"
    );
    assert!(
        diff.contains("GitHub (team)") && diff.contains(&github.name),
        "{diff}"
    );
    let who = ui
        .value_or_text("#versions li:first-child .who-changed")
        .await;
    assert_eq!(who, "admin@example.com");
    ui.check_page("auth-config-versions").await;
    let api = ui.api(&format!("/v1/auth-configs/{id}")).await;
    assert_eq!(api["version"], 2, "{api}");
    assert_eq!(
        api["settings"]["scopes"],
        serde_json::json!(["repo", "read:user"])
    );

    // Disable and enable.
    ui.submit("#disable button").await;
    assert!(ui.text().await.contains("Disabled"));
    assert_eq!(
        ui.api(&format!("/v1/auth-configs/{id}")).await["status"],
        "disabled"
    );
    ui.submit("#enable button").await;
    assert!(ui.text().await.contains("Enabled."));
    assert_eq!(
        ui.api(&format!("/v1/auth-configs/{id}")).await["status"],
        "enabled"
    );
    id
}

/// A custom OAuth2 auth config at the test provider and a connection through its real
/// consent flow, back to the console; then a refresh. Returns the auth config's and the
/// connection's ids.
async fn oauth_connection(
    ui: &Console,
    provider: &crate::fixtures::oauth_provider::OAuthProvider,
) -> (String, String) {
    ui.go("/console/auth-configs/new?type=oauth2").await;
    ui.fill("#oauth-name", "Example provider").await;
    ui.fill("#client_id", CLIENT_ID).await;
    ui.fill("#client_secret", CLIENT_SECRET).await;
    ui.fill("#authorization_url", &provider.authorization_url())
        .await;
    ui.fill("#token_url", &provider.token_url()).await;
    ui.fill("#revocation_url", &provider.revocation_url()).await;
    ui.fill("#scopes", "read write").await;
    let returns = ui.value("#redirect_urls").await;
    assert_eq!(returns, ui.dep.svc.url("/console/connections/returned"));
    ui.submit("#create-oauth2 button[type=submit]").await;
    assert!(ui.text().await.contains("Created \"Example provider\""));
    ui.click_link("Example provider").await;
    let config = ui.id_in_path().await;

    ui.go("/console/connections").await;
    let pick = ui.find("#new-config").await;
    pick.select_by_value(&config).await.expect("choose");
    ui.submit("#new-connection button").await;
    ui.check_page("connection-new-oauth2").await;
    ui.fill("#user_id", "alice").await;
    ui.submit("#create-connection button[type=submit]").await;
    let url = ui.value("#connect-url").await;
    assert!(url.starts_with(&provider.authorization_url()), "{url}");
    ui.check_page("connection-connect-link").await;

    // The consent page (the test provider grants at once), the callback, back here.
    let open = ui.find("#open-connect").await;
    ui.click_to_next_page(open).await;
    assert_eq!(ui.path().await, "/console/connections/returned");
    let page = ui.text().await;
    assert!(page.contains("the connection is active"), "{page}");
    let id = ui.value_or_text("main dl.facts dd code").await;
    assert_eq!(ui.value_or_text("#granted").await, "read write");
    let history = ui.value_or_text("#history").await;
    assert!(
        history.contains("connection.initiated") && history.contains("connection.authorized"),
        "{history}"
    );
    ui.check_page("connection-detail").await;

    ui.submit("#refresh button").await;
    let refreshed = ui.text().await;
    assert!(refreshed.contains("Refreshed"), "{refreshed}");
    assert_ne!(ui.value_or_text("#last-refreshed").await, "never");
    let api = ui.api(&format!("/v1/connections/{id}")).await;
    assert_eq!(api["status"], "active", "{api}");
    assert!(api["last_refreshed_at"].is_string(), "{api}");
    (config, id)
}

/// An API-key auth config and a connection from an end user's key; the list's filters;
/// revoking needs its confirmation.
async fn api_key_connection(ui: &Console) {
    ui.go("/console/auth-configs/new?type=custom").await;
    ui.check_page("auth-config-new-custom").await;
    ui.fill("#name", "Acme API").await;
    ui.fill("#key_name", "X-Acme-Key").await;
    ui.submit("#create-auth-config button").await;
    assert!(ui.text().await.contains("Created \"Acme API\""));
    ui.click_link("Acme API").await;
    let config = ui.id_in_path().await;
    ui.go(&format!("/console/connections/new?auth_config_id={config}"))
        .await;
    ui.fill("#user_id", "bob").await;
    ui.fill("#api_key", "bob-upstream-key-123").await;
    ui.submit("#create-connection button[type=submit]").await;
    let page = ui.text().await;
    assert!(page.contains("Connected bob."), "{page}");
    assert!(!ui
        .c
        .source()
        .await
        .expect("html")
        .contains("bob-upstream-key-123"));
    let id = ui.value_or_text("main dl.facts dd code").await;

    // Filters: by status, by end user, by auth config.
    ui.go("/console/connections").await;
    ui.fill("#f-user", "bob").await;
    ui.submit("#filter button").await;
    let rows = ui.value_or_text("#connections tbody").await;
    assert!(rows.contains("bob") && !rows.contains("alice"), "{rows}");
    ui.go("/console/connections?status=active").await;
    let rows = ui.value_or_text("#connections tbody").await;
    assert!(rows.contains("bob") && rows.contains("alice"), "{rows}");
    ui.check_page("connections").await;
    ui.go(&format!("/console/connections?auth_config_id={config}"))
        .await;
    let rows = ui.value_or_text("#connections tbody").await;
    assert!(rows.contains("bob") && !rows.contains("alice"), "{rows}");
    ui.go("/console/connections?status=revoked").await;
    assert!(ui.has("#no-connections").await);

    // Revoke: a post without the confirmation does nothing.
    ui.go(&format!("/console/connections/{id}")).await;
    let cookie = ui.cookie().await;
    let csrf = ui.csrf().await;
    let path = format!("/console/connections/{id}/revoke");
    let unconfirmed = post_form(&ui.dep, &cookie, &path, &[("csrf", &csrf)]).await;
    assert_eq!(unconfirmed, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        ui.api(&format!("/v1/connections/{id}")).await["status"],
        "active"
    );
    ui.fill("#revoke-reason", "left the team").await;
    ui.find("#revoke-confirm")
        .await
        .click()
        .await
        .expect("tick");
    ui.submit("#revoke button").await;
    let page = ui.text().await;
    assert!(
        page.contains("Revoked") && page.contains("left the team"),
        "{page}"
    );
    assert_eq!(ui.value_or_text("#status").await, "revoked");
    assert_eq!(
        ui.api(&format!("/v1/connections/{id}")).await["status"],
        "revoked"
    );
}

/// The PostgreSQL connector's test: passes against the test database, fails on a closed
/// port, with the result on the page.
async fn postgres_test(ui: &Console) {
    let url = std::env::var("AUTHLEDGER_TEST_DATABASE_URL")
        .expect("AUTHLEDGER_TEST_DATABASE_URL: the connector test needs a PostgreSQL");
    let url = url::Url::parse(&url).expect("database url");
    ui.go("/console/auth-configs/new?type=postgres").await;
    ui.check_page("auth-config-new-postgres").await;
    ui.fill("#pg-name", "Warehouse").await;
    ui.fill("#host", url.host_str().expect("host")).await;
    ui.fill("#port", &url.port().unwrap_or(5432).to_string())
        .await;
    ui.fill("#database", url.path().trim_start_matches('/'))
        .await;
    let tls = ui.find("#ssl_mode").await;
    tls.select_by_value("disable").await.expect("disable");
    ui.submit("#create-postgres button").await;
    assert!(ui.text().await.contains("Created \"Warehouse\""));
    ui.click_link("Warehouse").await;
    ui.fill("#test-user", url.username()).await;
    ui.fill("#test-password", url.password().unwrap_or("unused"))
        .await;
    ui.submit("#test-connection button").await;
    let result = ui.value_or_text("#test-result").await;
    assert!(result.starts_with("Test passed."), "{result}");
    ui.check_page("auth-config-test").await;

    // A closed port: a clear failure, classified (issue 17).
    ui.click_link("Edit").await;
    let closed = crate::harness::free_port();
    ui.fill("#port", &closed.to_string()).await;
    ui.submit("#edit-auth-config button[type=submit]").await;
    ui.fill("#test-user", url.username()).await;
    ui.submit("#test-connection button").await;
    let result = ui.value_or_text("#test-result").await;
    assert!(
        result.starts_with("Test failed.") && result.contains("unreachable"),
        "{result}"
    );
}

/// Deleting an auth config with a live connection: refused without the cascade (the
/// dependants named), done with it (the connection revoked).
async fn delete_with_dependants(ui: &Console, config: &str, connection: &str) {
    ui.go(&format!("/console/auth-configs/{config}")).await;
    let dependants = ui.value_or_text("#dependants").await;
    assert!(dependants.contains("alice"), "{dependants}");
    ui.submit("#delete button").await;
    let refused = ui.text().await;
    assert!(
        refused.contains("1 live connection(s) depend on it"),
        "{refused}"
    );
    assert_eq!(
        ui.api(&format!("/v1/auth-configs/{config}")).await["status"],
        "enabled"
    );
    ui.find("#cascade").await.click().await.expect("tick");
    ui.submit("#delete button").await;
    let done = ui.text().await;
    assert!(done.contains("1 connection(s) revoked"), "{done}");
    assert_eq!(
        ui.api(&format!("/v1/connections/{connection}")).await["status"],
        "revoked"
    );
    let events = ui.audit("auth_config.deleted").await;
    assert!(
        events.iter().any(|e| e["actor"]["type"] == "member"),
        "{events:?}"
    );
}

/// A viewer: no create, edit or revoke controls; a crafted POST is refused and recorded.
async fn viewer_limits(ui: &Console, config: &str, connection: &str) {
    ui.go("/console/team").await;
    ui.fill("#email", "viewer@example.com").await;
    let role = ui.find("#role").await;
    role.select_by_value("viewer").await.expect("viewer");
    ui.submit("#invite button").await;
    let invite = ui.value("#invite-link").await;
    ui.submit("form.signout button").await;
    ui.go(&invite).await;
    ui.fill("#password", PASSWORD).await;
    ui.submit("main button[type=submit]").await;

    ui.go("/console/auth-configs").await;
    assert!(!ui.has("#create-auth-config").await);
    ui.go(&format!("/console/auth-configs/{config}")).await;
    assert!(ui.text().await.contains("Settings"));
    for control in [
        "a[href$='/edit']",
        "#disable",
        "#enable",
        "#delete",
        "#test-connection",
    ] {
        assert!(!ui.has(control).await, "a viewer sees {control}");
    }
    ui.go("/console/connections").await;
    assert!(!ui.has("#new-connection").await);
    ui.go(&format!("/console/connections/{connection}")).await;
    for control in ["#refresh", "#revoke", "#delete"] {
        assert!(!ui.has(control).await, "a viewer sees {control}");
    }
    assert!(ui.text().await.contains("admins and auditors may read"));
    ui.go("/console/auth-configs/new?type=oauth2").await;
    assert!(ui.text().await.contains("Not allowed"));

    ui.go("/console/connections").await;
    let cookie = ui.cookie().await;
    let csrf = ui.csrf().await;
    let before = ui.audit("access.denied").await.len();
    let crafted = post_form(
        &ui.dep,
        &cookie,
        &format!("/console/connections/{connection}/delete"),
        &[("csrf", &csrf), ("confirm", "yes")],
    )
    .await;
    assert_eq!(crafted, StatusCode::FORBIDDEN);
    let crafted = post_form(
        &ui.dep,
        &cookie,
        &format!("/console/auth-configs/{config}/disable"),
        &[("csrf", &csrf)],
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
    assert_ne!(
        ui.api(&format!("/v1/connections/{connection}")).await["status"],
        "deleted"
    );
    assert_eq!(
        get_status(&ui.dep, &cookie, "/console/connections").await,
        StatusCode::OK
    );
}

async fn flow(stack: Stack, shots: bool) {
    let driver = Driver::start();
    let dep = Deployment::start(stack, BASE_ENV).await;
    let provider = provider_for(&dep.svc, CLIENT_ID, CLIENT_SECRET).await;
    let c = driver.browser().await;
    let ui = Console { c, dep, shots };
    ui.go(&ui.dep.console_sign_up.clone()).await;
    ui.fill("#password", PASSWORD).await;
    ui.submit("main button[type=submit]").await;
    assert_eq!(ui.path().await, "/console/");

    let _github = oauth_from_the_catalog(&ui).await;
    let (config, alice) = oauth_connection(&ui, &provider).await;
    api_key_connection(&ui).await;
    postgres_test(&ui).await;
    let kept = ui.api("/v1/connections?user_id=bob").await;
    let bob = kept["items"][0]["id"].as_str().expect("bob").to_string();
    let acme = kept["items"][0]["auth_config_id"].as_str().expect("config");
    delete_with_dependants(&ui, &config, &alice).await;
    viewer_limits(&ui, acme, &bob).await;
    let _ = ui.c.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn console_auth_configs_and_connections_embedded() {
    flow(Stack::Embedded, true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn console_auth_configs_and_connections_jetstream_pg() {
    flow(Stack::JetStreamPg, false).await;
}

//! The hosted connect page (issue 20) in a real browser (headless Chromium, axe-core on every
//! page, screenshots at desktop and 360 px into `target/console-screenshots/`), against a
//! real `serve` on both stacks.
//!
//! An agent's tool call on an api_key auth config for a user without a connection is refused
//! `403 connect-not-allowed` (recorded) until the workspace lets agents start connect flows
//! for any user; then it gets `409 connection-required` with a `connect_url`. The end user
//! opens it, gives the key, lands on the "connected" page, and the agent's retry reaches a
//! real local upstream that checks the key. The link is refused on second use and after it
//! expires (the service's clock moved). A basic and a bearer auth config go through the page
//! from `POST /v1/connections` with an app return URL (the browser lands there); the
//! PostgreSQL connector's **Test** fails clearly for a wrong user (nothing saved) and passes
//! for the right one. A form without the browser's CSRF cookie is refused and recorded. No
//! credential is ever in a page or in the log.

use std::time::Duration;

use axum::response::IntoResponse;
use base64::Engine as _;
use fantoccini::Locator;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;

use crate::console::browser::{Console, Driver};
use crate::harness::eventually;
use crate::support::{request, Deployment, Hit, Reply, Stack, TestClock, Upstream, BASE_ENV};

const KEY: &str = "user-key-SECRET-7d1e42";
const USER: &str = "bob-at-service";
const PASSWORD: &str = "basic-pass-SECRET-c0ffee";
const TOKEN: &str = "bearer-tok-SECRET-9a8b7c";

/// What the upstream service says: each path checks its own credential.
fn upstream_answer(hit: Hit) -> axum::response::Response {
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"))
    );
    let bearer = format!("Bearer {TOKEN}");
    let ok = match hit.path.as_str() {
        "/key/me" => hit.header("x-api-key") == [KEY],
        "/basic/me" => hit.header("authorization") == [basic.as_str()],
        "/bearer/me" => hit.header("authorization") == [bearer.as_str()],
        _ => false,
    };
    if ok {
        axum::Json(json!({ "me": "the end user" })).into_response()
    } else {
        StatusCode::UNAUTHORIZED.into_response()
    }
}

struct Scene {
    ui: Console,
    clock: TestClock,
    http: reqwest::Client,
    upstream: Upstream,
    app: Upstream,
}

impl Scene {
    async fn call(&self, bearer: &str, method: Method, path: &str, body: Option<Value>) -> Reply {
        Reply::of(request(
            &self.http,
            &self.ui.dep.svc,
            bearer,
            method,
            path,
            body,
        ))
        .await
    }

    async fn execute(&self, bearer: &str, body: Value) -> Reply {
        self.call(bearer, Method::POST, "/v1/tools/execute", Some(body))
            .await
    }

    async fn admin_post(&self, path: &str, body: Value) -> Reply {
        let admin = self.ui.dep.admin.clone();
        self.call(&admin, Method::POST, path, Some(body)).await
    }

    async fn config(&self, name: &str, auth_type: &str, settings: Value) -> String {
        let mut body = json!({ "name": name, "provider": "custom", "auth_type": auth_type });
        body[auth_type] = settings;
        let r = self.admin_post("/v1/auth-configs", body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        r.str("id")
    }

    async fn tool(&self, name: &str, path: &str) {
        let def = json!({
            "name": name, "provider": "custom", "description": format!("Hosted connect test tool {name}."),
            "method": "GET", "base_url": self.upstream.base_url, "path": path,
            "parameters": { "type": "object" }, "required_scopes": [], "risk": "read",
        });
        let r = self.admin_post("/v1/tools", def).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }

    async fn connection(&self, id: &str) -> Value {
        let admin = self.ui.dep.admin.clone();
        let r = self
            .call(&admin, Method::GET, &format!("/v1/connections/{id}"), None)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        r.body
    }

    /// A hosted connect link from `POST /v1/connections`: (connection id, link, its expiry).
    async fn link(
        &self,
        config: &str,
        user: &str,
        redirect_url: Option<&str>,
    ) -> (String, String, String) {
        let mut body = json!({ "auth_config_id": config, "user_id": user });
        if let Some(r) = redirect_url {
            body["redirect_url"] = json!(r);
        }
        let r = self.admin_post("/v1/connections", body).await;
        assert_eq!(
            (r.status, r.body["status"].as_str()),
            (StatusCode::CREATED, Some("initiated")),
            "{}",
            r.text
        );
        let link = r.str("connect_url");
        assert!(
            link.starts_with(&self.ui.dep.svc.url("/connect/")),
            "{link}"
        );
        // Besides the link and the write's position, the answer is the connection as a
        // read shows it (built from the event, not read back).
        assert_eq!(
            crate::support::as_read(&r.body, &["connect_url", "connect_expires_at", "position"]),
            self.connection(&r.str("id")).await
        );
        (r.str("id"), link, r.str("connect_expires_at"))
    }

    /// The page's whole HTML: no credential may be in it.
    async fn assert_no_secret_in_page(&self) {
        let html = self.ui.c.source().await.expect("source");
        for s in [KEY, PASSWORD, TOKEN] {
            assert!(!html.contains(s), "the page shows a credential");
        }
    }

    /// The page's security headers, as the console's.
    async fn assert_headers(&self, link: &str) {
        let r = self.http.get(link).send().await.expect("page");
        let h = r.headers();
        let csp = h["content-security-policy"].to_str().expect("csp");
        assert!(
            csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
            "{csp}"
        );
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert_eq!(h["x-frame-options"], "DENY");
        assert_eq!(h["referrer-policy"], "same-origin");
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["cache-control"], "no-store");
    }
}

/// The agent's side: refused until the workspace allows it, then 409 with a link; the end
/// user completes it in the browser; the retry reaches the upstream with the key.
async fn api_key_on_demand(s: &Scene) {
    let ui = &s.ui;
    let config = s
        .config(
            "Acme CRM",
            "api_key",
            json!({ "key_name": "X-Api-Key", "location": "header", "prefix": null }),
        )
        .await;
    s.tool("custom.key_me", "/key/me").await;
    let admin = ui.dep.admin.clone();
    let r = s
        .call(
            &admin,
            Method::POST,
            "/v1/api-keys",
            Some(json!({ "name": "agent", "role": "agent" })),
        )
        .await;
    let agent = r.str("key");
    let call = json!({ "tool": "custom.key_me", "user_id": "carol", "auth_config_id": config });

    // Off by default: an agent key may not start a connect flow for an arbitrary user.
    let r = s.execute(&agent, call.clone()).await;
    r.expect(StatusCode::FORBIDDEN, "connect-not-allowed");
    assert!(r.body.get("connect_url").is_none(), "{}", r.text);
    ui.denied("connect_not_allowed", "api_key").await;
    // Only an admin changes the setting; then the same call gets a link.
    let r = s
        .call(
            &agent,
            Method::PUT,
            "/v1/workspace/agent-connect-flows",
            Some(json!({ "any_user": true })),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let r = s
        .call(
            &admin,
            Method::PUT,
            "/v1/workspace/agent-connect-flows",
            Some(json!({ "any_user": true })),
        )
        .await;
    assert_eq!(
        (r.status, &r.body),
        (StatusCode::OK, &json!({ "any_user": true })),
        "{}",
        r.text
    );
    assert_eq!(ui.audit("workspace.agent_connect_flows_set").await.len(), 1);

    let r = s.execute(&agent, call.clone()).await;
    r.expect(StatusCode::CONFLICT, "connection-required");
    let link = r.str("connect_url");
    assert!(link.starts_with(&ui.dep.svc.url("/connect/")), "{link}");
    s.assert_headers(&link).await;

    ui.go(&link).await;
    let text = ui.text().await;
    assert!(
        text.contains("Connect Acme CRM") && text.contains("carol") && text.contains("X-Api-Key"),
        "{text}"
    );
    assert!(
        ui.c.find(Locator::Css("#test")).await.is_err(),
        "no test for an API key"
    );
    ui.check_page("connect-api-key").await;
    ui.fill("#api_key", KEY).await;
    ui.submit("#connect").await;
    assert_eq!(ui.path().await, "/connect/done", "{}", ui.text().await);
    assert!(ui.text().await.contains("Your account is connected"));
    ui.check_page("connect-done").await;
    s.assert_no_secret_in_page().await;

    // The retry reaches the upstream, which checks the key.
    let r = s.execute(&agent, call).await;
    assert_eq!(
        (r.status, &r.body["status"]),
        (StatusCode::OK, &json!(200)),
        "{}",
        r.text
    );
    assert_eq!(s.upstream.hits_to("/key/me").len(), 1);

    // Second use: a clear page, nothing happens, the refusal recorded.
    ui.go(&link).await;
    assert!(ui.text().await.contains("This link cannot be used"));
    ui.check_page("connect-link-used").await;
    // A used link names no connection any more: its refusal is recorded in the ledger's
    // own workspace, as a replayed OAuth state is (the log is checked at the end).
    let r = s.http.get(&link).send().await.expect("get");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // The OAuth callback never completes a hosted link either.
    let secret = link.rsplit('/').next().expect("secret");
    let r = s
        .http
        .get(
            ui.dep
                .svc
                .url(&format!("/v1/oauth/callback?state={secret}&code=x")),
        )
        .send()
        .await
        .expect("callback");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

/// Basic and bearer auth configs through the page, from `POST /v1/connections` with the
/// app's return URL: the browser lands there; the upstream sees the credentials.
async fn basic_and_bearer(s: &Scene) {
    let ui = &s.ui;
    let return_to = format!("{}/connected", s.app.base_url);
    let basic = s.config("Legacy ERP", "basic", json!({})).await;
    s.tool("custom.basic_me", "/basic/me").await;
    let (id, link, expires) = s.link(&basic, "dave", Some(&return_to)).await;
    ui.go(&link).await;
    ui.check_page("connect-basic").await;
    let shown = ui.time("#link-expires").await;
    let expires = time::OffsetDateTime::parse(&expires, &Rfc3339).expect("connect_expires_at");
    assert_eq!(shown, expires, "the page shows the link's own expiry");
    ui.fill("#username", USER).await;
    ui.fill("#password", PASSWORD).await;
    ui.submit("#connect").await;
    let here = ui.c.current_url().await.expect("url");
    assert_eq!(
        format!("{}{}", here.origin().ascii_serialization(), here.path()),
        return_to
    );
    let status: Vec<_> = here.query_pairs().collect();
    assert!(
        status.iter().any(|(k, v)| k == "status" && v == "active")
            && status
                .iter()
                .any(|(k, v)| k == "connection_id" && v == id.as_str()),
        "{here}"
    );
    assert_eq!(s.connection(&id).await["status"], "active");
    let admin = ui.dep.admin.clone();
    let r = s
        .execute(
            &admin,
            json!({ "tool": "custom.basic_me", "connection_id": id }),
        )
        .await;
    assert_eq!(r.body["status"], 200, "{}", r.text);

    let bearer = s.config("Ticket desk", "bearer_token", json!({})).await;
    s.tool("custom.bearer_me", "/bearer/me").await;
    let (id, link, _) = s.link(&bearer, "erin", Some(&return_to)).await;
    ui.go(&link).await;
    ui.check_page("connect-bearer").await;
    // Empty: refused by the browser's `required`; a value that is too long by the server.
    ui.fill("#token", TOKEN).await;
    ui.submit("#connect").await;
    assert!(ui
        .c
        .current_url()
        .await
        .expect("url")
        .as_str()
        .starts_with(&return_to));
    assert_eq!(s.connection(&id).await["status"], "active");
    let r = s
        .execute(
            &admin,
            json!({ "tool": "custom.bearer_me", "connection_id": id }),
        )
        .await;
    assert_eq!(r.body["status"], 200, "{}", r.text);
}

/// The PostgreSQL connector: Test fails clearly for a user the server does not know
/// (nothing saved; the shared test PostgreSQL trusts every password, so the wrong
/// credential is the user), passes for the right one; Connect with the wrong one saves
/// nothing, with the right one completes.
async fn postgres_with_test(s: &Scene) {
    let ui = &s.ui;
    let url = std::env::var("AUTHLEDGER_TEST_DATABASE_URL")
        .expect("AUTHLEDGER_TEST_DATABASE_URL: the connector test needs a PostgreSQL");
    let url = url::Url::parse(&url).expect("database url");
    let config = s
        .config(
            "Warehouse",
            "postgres",
            json!({ "host": url.host_str().expect("host"), "port": url.port().unwrap_or(5432),
                    "database": url.path().trim_start_matches('/'), "ssl_mode": "disable" }),
        )
        .await;
    let (id, link, _) = s.link(&config, "frank", None).await;
    ui.go(&link).await;
    ui.check_page("connect-postgres").await;
    let (right, wrong) = (url.username(), "nobody-here");
    let pass = url.password().unwrap_or(PASSWORD);

    ui.fill("#user", wrong).await;
    ui.fill("#password", PASSWORD).await;
    ui.submit("#test").await;
    let result = ui.text().await;
    assert!(
        result.contains("Test failed") && result.contains("nobody-here"),
        "{result}"
    );
    ui.check_page("connect-postgres-test-failed").await;
    s.assert_no_secret_in_page().await;
    assert_eq!(s.connection(&id).await["status"], "initiated");

    ui.fill("#user", right).await;
    ui.fill("#password", pass).await;
    ui.submit("#test").await;
    assert!(ui.text().await.contains("Test passed"));
    assert_eq!(s.connection(&id).await["status"], "initiated");

    ui.fill("#user", wrong).await;
    ui.fill("#password", PASSWORD).await;
    ui.submit("#connect").await;
    let text = ui.text().await;
    assert!(
        text.contains("Not connected") && text.contains("Nothing was saved"),
        "{text}"
    );
    s.assert_no_secret_in_page().await;
    assert_eq!(s.connection(&id).await["status"], "initiated");

    ui.fill("#user", right).await;
    ui.fill("#password", pass).await;
    ui.submit("#connect").await;
    assert_eq!(ui.path().await, "/connect/done");
    assert_eq!(s.connection(&id).await["status"], "active");
}

/// A form posted without this browser's CSRF cookie (another site's page): refused,
/// recorded, nothing saved. Then a link past its 30 minutes: refused.
async fn csrf_and_expiry(s: &Scene, config: &str) {
    let ui = &s.ui;
    let (id, link, _) = s.link(config, "grace", None).await;
    let r = s
        .http
        .post(&link)
        .header("origin", ui.dep.svc.url("").trim_end_matches('/'))
        .form(&[("csrf", "forged"), ("action", "connect"), ("api_key", KEY)])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    ui.denied("invalid_csrf", "anonymous").await;
    assert_eq!(s.connection(&id).await["status"], "initiated");

    ui.go(&link).await;
    assert!(ui.text().await.contains("Connect Acme CRM"));
    s.clock.advance(Duration::from_secs(31 * 60));
    ui.fill("#api_key", KEY).await;
    ui.submit("#connect").await;
    assert!(ui.text().await.contains("This link cannot be used"));
    ui.check_page("connect-link-expired").await;
    ui.denied("invalid_connect_link", "anonymous").await;
    assert_eq!(s.connection(&id).await["status"], "initiated");
    s.assert_no_secret_in_page().await;
}

/// No credential in the log, in any form the scan knows.
async fn assert_log_has_no_secret(dep: &Deployment) {
    let a = [dep.storage.clone(), crate::harness::args(&["dump-log"])].concat();
    let out = tokio::task::spawn_blocking(move || crate::harness::run_cli(&a))
        .await
        .expect("join");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let raw = String::from_utf8(out.stdout).expect("utf-8");
    // Each line's envelope holds the signed body base64-encoded: read both.
    let mut log = raw.clone();
    for line in raw.lines() {
        let line: Value = serde_json::from_str(line).expect("a dump line");
        let envelope: Value =
            serde_json::from_str(line["envelope"].as_str().expect("envelope")).expect("json");
        let body = base64::engine::general_purpose::STANDARD
            .decode(envelope["payload"].as_str().expect("payload"))
            .expect("base64");
        log.push_str(&String::from_utf8(body).expect("utf-8 body"));
    }
    assert!(log.contains("connection.credentials_submitted"));
    // The used link (twice: the page and the callback), the expired one.
    assert!(
        log.matches("invalid_connect_link").count() >= 2,
        "refused links recorded"
    );
    let b64 = |v: &str| base64::engine::general_purpose::STANDARD.encode(v);
    for secret in [KEY, PASSWORD, TOKEN] {
        assert!(!log.contains(secret), "the log holds a credential");
        assert!(
            !log.contains(&b64(secret)),
            "the log holds a credential (base64)"
        );
    }
}

async fn flow(stack: Stack, shots: bool) {
    let clock = TestClock::new();
    let mut envs = BASE_ENV.to_vec();
    envs.push(clock.env());
    let driver = Driver::start();
    let dep = Deployment::start(stack, &envs).await;
    let upstream = Upstream::start(|hit| async move { upstream_answer(hit) }).await;
    let app = Upstream::start(|_| async {
        axum::response::Html("<!doctype html><title>App</title><main>Back in the app</main>")
            .into_response()
    })
    .await;
    let c = driver.browser().await;
    let s = Scene {
        ui: Console { c, dep, shots },
        clock,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client"),
        upstream,
        app,
    };
    api_key_on_demand(&s).await;
    basic_and_bearer(&s).await;
    postgres_with_test(&s).await;
    let configs = s
        .call(
            &s.ui.dep.admin.clone(),
            Method::GET,
            "/v1/auth-configs",
            None,
        )
        .await;
    let acme = configs.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|c| c["name"] == "Acme CRM")
        .and_then(|c| c["id"].as_str())
        .expect("Acme CRM")
        .to_string();
    csrf_and_expiry(&s, &acme).await;
    eventually(Duration::from_secs(10), "the projections", || async {
        s.ui.audit("connection.credentials_submitted").await.len() == 4
    })
    .await;
    assert_log_has_no_secret(&s.ui.dep).await;
    let _ = s.ui.c.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn hosted_connect_page_embedded() {
    flow(Stack::Embedded, true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn hosted_connect_page_jetstream_pg() {
    flow(Stack::JetStreamPg, false).await;
}

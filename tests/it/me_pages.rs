//! End users' own pages (issue 20), in a real browser against a real local OIDC provider
//! (`fixtures::oidc_provider`), on both stacks: the admin gives the end users' identity
//! provider a client id and secret on the Identity provider screen (the redirect URI to
//! register shown, the secret only as its fingerprint); an end user signs in at
//! `/me/sign-in` through the provider (code + PKCE, `end_user.signed_in`), sees the services
//! the workspace offers with their status, connects an OAuth service through the provider's
//! consent (back on My connections with the granted scopes) and an API-key service through the hosted
//! page and is back on My connections with it active, disconnects it (revoked in the ledger),
//! and signs out (`end_user.signed_out`). A replayed callback is refused and recorded; a
//! session ends after 30 idle minutes and at 12 hours whatever its use (the test clock). A crafted disconnect of another person's
//! connection answers exactly like an unknown id and is recorded; a team session does not
//! open `/me/`, an end user's session does not open `/console/`; the client secret is in no
//! page, not in the log and in no file of the service.

use std::time::Duration;

use fantoccini::Locator;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::console::browser::{get_status, Console, Driver, PASSWORD};
use crate::fixtures::oidc_provider::{OidcClient, OidcConfig, OidcProvider, OidcUser};
use crate::harness::eventually;
use crate::support::{
    cli, oauth_config_body, provider_for, Deployment, Stack, TestClock, BASE_ENV, NO_RATE_LIMIT,
};

const CLIENT_ID: &str = "authledger-me";
const CLIENT_SECRET: &str = "me-client-secret-Zp4Kq8Wd1";
const KEY: &str = "alice-crm-key-SECRET-51f3";

async fn source(ui: &Console) -> String {
    ui.c.source().await.expect("page source")
}

async fn admin(ui: &Console, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
    let mut r = reqwest::Client::new()
        .request(method, ui.dep.svc.url(path))
        .bearer_auth(&ui.dep.admin);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().await.expect("request");
    let status = r.status();
    let text = r.text().await.expect("body");
    assert!(status.is_success(), "{path}: {status} {text}");
    serde_json::from_str(&text).expect("json")
}

/// The `data-status` of the service card of `config` on My connections.
async fn status_of(ui: &Console, config: &str) -> String {
    match ui.c.find(Locator::Css(&format!("#service-{config}"))).await {
        Ok(card) => card
            .attr("data-status")
            .await
            .ok()
            .flatten()
            .unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// A POST to `/me/…` with the end user's cookie: (status, body).
pub(crate) async fn post_me(
    ui: &Console,
    cookie: &str,
    path: &str,
    form: &[(&str, &str)],
) -> (StatusCode, String) {
    let r = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .post(ui.dep.svc.url(path))
        .header("cookie", cookie)
        .header("origin", ui.dep.svc.url("").trim_end_matches('/'))
        .form(form)
        .send()
        .await
        .expect("post");
    (r.status(), r.text().await.expect("body"))
}

/// From the sign-in page's button, through the provider's login page as Alice, back.
pub(crate) async fn through_provider(ui: &Console, idp: &OidcProvider) {
    let start = ui.find("#me-sign-in-button").await;
    ui.click_to_next_page(start).await;
    let provider = idp.issuer.clone();
    eventually(
        Duration::from_secs(10),
        "the provider's login page",
        || async {
            ui.c.current_url()
                .await
                .is_ok_and(|u| u.as_str().starts_with(&provider))
                && ui.c.find(Locator::Css("#login-email")).await.is_ok()
        },
    )
    .await;
    ui.fill("#login-email", "alice@example.com").await;
    ui.submit("#login-submit").await;
}

async fn flow(stack: Stack, shots: bool) {
    let clock = TestClock::new();
    let driver = Driver::start();
    let mut envs: Vec<(&str, &str)> = [BASE_ENV, NO_RATE_LIMIT].concat();
    envs.push(clock.env());
    let dep = Deployment::start(stack, &envs).await;
    let idp = OidcProvider::start(OidcConfig {
        users: vec![OidcUser::new("alice@example.com", "sub-alice")],
        ..OidcConfig::default()
    })
    .await;
    let mut pages = Vec::new();
    let c = driver.browser().await;
    let ui = Console { c, dep, shots };
    ui.go(&ui.dep.console_sign_up.clone()).await;
    ui.fill("#password", PASSWORD).await;
    ui.submit("main button[type=submit]").await;

    // The admin: the end users' provider with a browser client, on the Identity provider screen.
    ui.go("/console/identity-provider").await;
    let redirect_uri = ui.value("#eu-redirect-uri").await;
    assert_eq!(redirect_uri, ui.dep.svc.url("/me/callback"));
    idp.register(OidcClient {
        client_id: CLIENT_ID.into(),
        client_secret: CLIENT_SECRET.into(),
        redirect_uris: vec![redirect_uri.clone()],
    });
    ui.fill("#eu-issuer", &idp.issuer).await;
    ui.fill("#eu-audience", "authledger-end-users").await;
    ui.fill("#eu-jwks", &format!("{}/jwks", idp.issuer)).await;
    ui.fill("#eu-client-id", CLIENT_ID).await;
    ui.fill("#eu-client-secret", CLIENT_SECRET).await;
    ui.submit("#end-users-form button[type=submit]").await;
    let page = ui.text().await;
    assert!(
        page.contains("End users' identity provider saved"),
        "{page}"
    );
    let fingerprint = ui
        .find("#eu-secret-fingerprint")
        .await
        .text()
        .await
        .expect("text");
    assert!(fingerprint.starts_with("hmac-sha256:"), "{fingerprint}");
    ui.check_page("me-identity-provider").await;
    pages.push(source(&ui).await);
    let configured = ui.audit("workspace.identity_provider_configured").await;
    assert_eq!(configured.len(), 1, "{configured:?}");

    // What the workspace offers: an API-key service (enabled), and Bob's connection to it.
    let config = admin(
        &ui,
        reqwest::Method::POST,
        "/v1/auth-configs",
        Some(json!({ "name": "Acme CRM", "provider": "custom", "auth_type": "api_key",
                     "api_key": { "key_name": "X-Api-Key", "location": "header", "prefix": null } })),
    )
    .await["id"]
        .as_str()
        .expect("id")
        .to_string();
    let bobs = admin(
        &ui,
        reqwest::Method::POST,
        "/v1/connections",
        Some(json!({ "auth_config_id": config, "user_id": "sub-bob",
                     "credentials": { "api_key": "bob-key-SECRET" } })),
    )
    .await["id"]
        .as_str()
        .expect("id")
        .to_string();

    // A service the workspace does not offer its end users (`offered: false`).
    let hidden = admin(
        &ui,
        reqwest::Method::POST,
        "/v1/auth-configs",
        Some(
            json!({ "name": "Internal billing", "provider": "custom", "auth_type": "bearer_token",
                     "bearer_token": {}, "offered": false }),
        ),
    )
    .await["id"]
        .as_str()
        .expect("id")
        .to_string();

    // An OAuth service: its consent returns to /me/.
    let oauth = provider_for(&ui.dep.svc, "me-oauth-client", "me-oauth-secret").await;
    let mut body = oauth_config_body(&oauth, "me-oauth-client", "me-oauth-secret");
    body["oauth2"]["redirect_urls"] = json!([ui.dep.svc.url("/me/")]);
    let oauth_config = admin(&ui, reqwest::Method::POST, "/v1/auth-configs", Some(body)).await
        ["id"]
        .as_str()
        .expect("id")
        .to_string();

    // A team session does not open /me/.
    let team_cookie = ui.cookie().await;
    let r = get_status(&ui.dep, &team_cookie, "/me/").await;
    assert_eq!(r, StatusCode::SEE_OTHER, "to the end users' sign-in");

    // The end user signs in through the provider (the team cookie still in this browser).
    ui.go(&format!("/me/sign-in?workspace={}", ui.dep.workspace))
        .await;
    ui.check_page("me-sign-in").await;
    through_provider(&ui, &idp).await;
    assert_eq!(ui.path().await, "/me/", "{}", ui.text().await);
    let page = ui.text().await;
    assert!(
        page.contains("My connections") && page.contains("sub-alice") && page.contains("Acme CRM"),
        "{page}"
    );
    assert_eq!(status_of(&ui, &config).await, "not_connected");
    assert_eq!(status_of(&ui, &hidden).await, "", "not offered: not listed");
    assert!(!page.contains("Internal billing"));
    assert!(!page.contains(&bobs), "not Bob's connection");
    ui.check_page("me-connections").await;
    pages.push(source(&ui).await);
    let me =
        ui.c.get_named_cookie("authledger_me")
            .await
            .expect("the end user's session cookie");
    assert_eq!(me.http_only(), Some(true));
    assert_eq!(format!("{:?}", me.same_site()), "Some(Lax)");
    // `Path=/`: the connect page (`/connect/…`) checks a bound link's person with it.
    assert_eq!(me.path(), Some("/"));
    let me_cookie = format!("authledger_me={}", me.value());
    let signed_in = ui.audit("end_user.signed_in").await;
    assert_eq!(signed_in.len(), 1, "{signed_in:?}");
    assert_eq!(signed_in[0]["actor"]["type"], "user");
    assert_eq!(signed_in[0]["actor"]["id"], "sub-alice");

    // The same callback again (the back button, or a stolen URL): refused, recorded, and
    // nothing sent to the provider again.
    let exchanges = idp.token_outcomes().len();
    let callback = idp.last_redirect().expect("the callback URL");
    ui.go(&callback).await;
    let page = ui.text().await;
    assert!(page.contains("expired or already used"), "{page}");
    ui.check_page("me-sign-in-refused").await;
    ui.denied("invalid_sso_state", "anonymous").await;
    assert_eq!(idp.token_outcomes().len(), exchanges);

    // An end user's session does not open the console.
    let r = get_status(&ui.dep, &me_cookie, "/console/").await;
    assert_eq!(r, StatusCode::SEE_OTHER, "to the console's sign-in");

    // Connect an OAuth service: on to the provider's consent (it grants at once), back to
    // My connections with the granted scopes.
    ui.go("/me/").await;
    assert_eq!(status_of(&ui, &oauth_config).await, "not_connected");
    ui.submit(&format!("#service-{oauth_config} button.connect"))
        .await;
    for _ in 0..100 {
        if ui.path().await == "/me/" && status_of(&ui, &oauth_config).await == "active" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        (ui.path().await, status_of(&ui, &oauth_config).await),
        ("/me/".to_string(), "active".to_string()),
        "back from the consent: {}",
        ui.text().await
    );
    let card = ui
        .find(&format!("#service-{oauth_config} .scopes"))
        .await
        .text()
        .await
        .expect("text");
    assert_eq!(card, "read, write");

    // Connect: the hosted page for this person, then back to My connections, active.
    ui.go("/me/").await;
    assert_eq!(ui.path().await, "/me/", "still signed in");
    ui.submit(&format!("#service-{config} button.connect"))
        .await;
    assert!(
        ui.path().await.starts_with("/connect/"),
        "{}",
        ui.path().await
    );
    let text = ui.text().await;
    assert!(text.contains("sub-alice"), "{text}");
    ui.fill("#api_key", KEY).await;
    ui.submit("#connect").await;
    assert_eq!(ui.path().await, "/me/", "{}", ui.text().await);
    eventually(Duration::from_secs(10), "active", || async {
        ui.go("/me/").await;
        status_of(&ui, &config).await == "active"
    })
    .await;
    let page = ui.text().await;
    assert!(page.contains("Connected"), "{page}");
    assert!(
        ui.c.find(Locator::Css(&format!("#service-{config} button.connect")))
            .await
            .is_err(),
        "an active connection is not connected twice"
    );
    ui.check_page("me-connected").await;
    pages.push(source(&ui).await);
    let csrf = ui
        .value("form[action='/me/disconnect'] input[name=csrf]")
        .await;
    // The session cookie as renewed by the last page.
    let me_cookie = format!(
        "authledger_me={}",
        ui.c.get_named_cookie("authledger_me")
            .await
            .expect("cookie")
            .value()
    );

    // A crafted connect of the service not offered: refused, nothing started.
    let (status, _) = post_me(
        &ui,
        &me_cookie,
        "/me/connect",
        &[("csrf", &csrf), ("auth_config_id", &hidden)],
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(ui
        .audit("connection.initiated")
        .await
        .iter()
        .all(|e| e["auth_config_id"] != hidden.as_str()));

    // A crafted disconnect of Bob's connection: exactly like an unknown id, and recorded.
    let theirs = post_me(
        &ui,
        &me_cookie,
        "/me/disconnect",
        &[("csrf", &csrf), ("connection_id", &bobs)],
    )
    .await;
    let unknown = post_me(
        &ui,
        &me_cookie,
        "/me/disconnect",
        &[
            ("csrf", &csrf),
            ("connection_id", "01900000-0000-7000-8000-000000000000"),
        ],
    )
    .await;
    assert_eq!(theirs.0, StatusCode::NOT_FOUND);
    assert_eq!(
        theirs, unknown,
        "another person's id answers like an unknown one"
    );
    ui.denied("other_user", "user").await;
    let bob = admin(
        &ui,
        reqwest::Method::GET,
        &format!("/v1/connections/{bobs}"),
        None,
    )
    .await;
    assert_eq!(bob["status"], "active", "Bob's connection untouched");
    // A forged form: refused and recorded.
    let forged = post_me(
        &ui,
        &me_cookie,
        "/me/disconnect",
        &[("csrf", "forged"), ("connection_id", &bobs)],
    )
    .await;
    assert_eq!(forged.0, StatusCode::FORBIDDEN);
    ui.denied("invalid_csrf", "user").await;

    // Disconnect: revoked in the ledger, and shown so.
    ui.go("/me/").await;
    ui.submit(&format!("#service-{config} button.disconnect"))
        .await;
    assert_eq!(ui.path().await, "/me/", "{}", ui.text().await);
    assert!(ui.text().await.contains("Disconnected"));
    assert_eq!(status_of(&ui, &config).await, "revoked");
    let revoked = ui.audit("connection.revoked").await;
    assert_eq!(revoked.len(), 1, "{revoked:?}");
    assert_eq!(revoked[0]["actor"]["id"], "sub-alice");
    ui.check_page("me-disconnected").await;
    pages.push(source(&ui).await);

    // Sign out: recorded, and /me/ asks to sign in again.
    ui.submit("#me-sign-out").await;
    assert_eq!(ui.path().await, "/me/sign-in", "{}", ui.text().await);
    assert_eq!(ui.audit("end_user.signed_out").await.len(), 1);
    let r = get_status(&ui.dep, &me_cookie, "/me/").await;
    assert_eq!(r, StatusCode::SEE_OTHER, "the session is closed");

    // Lifetimes (the service's clock moved): a cookie not used for 30 minutes is over while
    // the browser's, renewed by each page, goes on; no session outlives its 12 hours.
    ui.go(&format!("/me/sign-in?workspace={}", ui.dep.workspace))
        .await;
    through_provider(&ui, &idp).await;
    assert_eq!(ui.path().await, "/me/", "{}", ui.text().await);
    let first = format!(
        "authledger_me={}",
        ui.c.get_named_cookie("authledger_me")
            .await
            .expect("cookie")
            .value()
    );
    let mut minutes = 0;
    for step in [25, 10] {
        clock.advance(Duration::from_secs(step * 60));
        minutes += step;
        ui.go("/me/").await;
        assert_eq!(ui.path().await, "/me/", "renewed at {minutes} min");
    }
    let r = get_status(&ui.dep, &first, "/me/").await;
    assert_eq!(r, StatusCode::SEE_OTHER, "idle for {minutes} minutes");
    while minutes + 25 < 12 * 60 {
        clock.advance(Duration::from_secs(25 * 60));
        minutes += 25;
        ui.go("/me/").await;
        assert_eq!(ui.path().await, "/me/", "at {minutes} min");
    }
    clock.advance(Duration::from_secs(25 * 60));
    ui.go("/me/").await;
    assert_eq!(ui.path().await, "/me/sign-in", "past the absolute end");

    // The client secret: in no page, not in the log, not in any file of the service.
    for page in &pages {
        assert!(!page.contains(CLIENT_SECRET), "the client secret in a page");
        assert!(!page.contains(KEY), "the API key in a page");
    }
    let dump = cli(&ui.dep.storage, &["dump-log"]).await;
    assert!(dump.status.success());
    let secret = CLIENT_SECRET.as_bytes();
    assert!(
        !dump.stdout.windows(secret.len()).any(|w| w == secret),
        "the client secret in the log"
    );
    let mut files = vec![ui.dep.dir.path().to_path_buf()];
    let mut scanned = 0;
    while let Some(path) = files.pop() {
        if path.is_dir() {
            for entry in std::fs::read_dir(&path).expect("dir").flatten() {
                files.push(entry.path());
            }
        } else if let Ok(bytes) = std::fs::read(&path) {
            scanned += 1;
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret),
                "the client secret in {}",
                path.display()
            );
        }
    }
    assert!(scanned > 0);
    let _ = ui.c.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn me_pages_embedded() {
    flow(Stack::Embedded, true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn me_pages_jetstream_pg() {
    flow(Stack::JetStreamPg, false).await;
}

//! The console in a real browser: headless Chromium driven through chromedriver (Debian's
//! `chromium` and `chromium-driver`; `tools/test` installs them), against a real `serve`
//! on both stacks. Every page visited is checked with axe-core (vendored: `console/axe.md`):
//! no serious or critical violation. Screenshots of the main pages, desktop and 360 px
//! wide, go to `target/console-screenshots/`.
//!
//! The flow: the first admin opens the link `serve` printed and sets a password; creates a
//! custom auth config; creates an API key (shown once, usable) and revokes it; invites a
//! viewer; signs out; a wrong password is refused and
//! recorded; signs in; the viewer joins through the invite, sees no create form, and a
//! crafted POST of theirs is refused and recorded; a form without the session's CSRF token
//! is refused and recorded; the admin changes the viewer's role (the viewer's session ends
//! at once) and removes them (no sign-in any more); sign-up, sign-in, sign-out, role changes
//! and removal are events with the member as actor.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::harness::eventually;
use crate::support::{Deployment, Stack};

const AXE: &str = include_str!("console/axe.min.js");
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
pub(crate) const PASSWORD: &str = "correct horse battery staple";

/// chromedriver on a free port, stopped (by its PID) on drop.
pub(crate) struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    pub(crate) fn start() -> Driver {
        for (what, path) in [("chromium", CHROMIUM), ("chromedriver", CHROMEDRIVER)] {
            assert!(
                Path::new(path).exists(),
                "{what} is missing at {path}: the browser tests need Debian's `chromium` and \
                 `chromium-driver` (tools/test installs them: apt-get install chromium chromium-driver)"
            );
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        Driver { child, port }
    }

    pub(crate) async fn browser(&self) -> Client {
        let url = format!("http://127.0.0.1:{}", self.port);
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,900"],
            }),
        );
        let mut last = String::new();
        for _ in 0..100 {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(c) => return c,
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromedriver did not start a browser: {last}");
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn screenshots_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/console-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir
}

/// One browser session and what the checks need.
pub(crate) struct Console {
    pub(crate) c: Client,
    pub(crate) dep: Deployment,
    pub(crate) shots: bool,
}

impl Console {
    pub(crate) async fn go(&self, path_or_url: &str) {
        let url = if path_or_url.starts_with("http") {
            path_or_url.to_string()
        } else {
            self.dep.svc.url(path_or_url)
        };
        self.c.goto(&url).await.expect("goto");
    }

    /// axe-core on the current page: no serious or critical violation.
    pub(crate) async fn axe(&self, page: &str) {
        self.c
            .execute(&format!("{AXE}\n;return true;"), vec![])
            .await
            .expect("inject axe");
        let found = self
            .c
            .execute_async(
                "const done = arguments[arguments.length - 1];
                 axe.run(document, {resultTypes: ['violations']}).then(r => done(JSON.stringify(
                   r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')
                     .map(v => ({id: v.id, impact: v.impact, help: v.help,
                                 nodes: v.nodes.map(n => n.target)})))))
                   .catch(e => done('axe failed: ' + e));",
                vec![],
            )
            .await
            .expect("run axe");
        let text = found.as_str().unwrap_or_default().to_string();
        assert_eq!(text, "[]", "axe on {page}: serious or critical violations");
    }

    /// axe, then screenshots at desktop and 360 px wide (embedded stack only).
    pub(crate) async fn check_page(&self, name: &str) {
        self.axe(name).await;
        if !self.shots {
            return;
        }
        let dir = screenshots_dir();
        for (suffix, width, height) in [("desktop", 1280, 900), ("360", 360, 800)] {
            self.c
                .set_window_size(width, height)
                .await
                .expect("window size");
            let png = self.c.screenshot().await.expect("screenshot");
            std::fs::write(dir.join(format!("{name}-{suffix}.png")), png).expect("write png");
            if width == 360 {
                // The page must not scroll sideways; if it does, name what reaches past.
                let overflow = self
                    .c
                    .execute(
                        "const root = document.documentElement, w = root.clientWidth;
                         if (root.scrollWidth <= w) return [];
                         const past = [...document.querySelectorAll('body *')]
                           .filter(e => e.getBoundingClientRect().right > w + 1)
                           .map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right));
                         return ['page ' + root.scrollWidth + ' px wide', ...past];",
                        vec![],
                    )
                    .await
                    .expect("overflow");
                assert_eq!(overflow, json!([]), "{name} scrolls sideways at 360 px");
                self.axe(&format!("{name} at 360 px")).await;
            }
        }
        self.c
            .set_window_size(1280, 900)
            .await
            .expect("window size");
    }

    pub(crate) async fn fill(&self, css: &str, text: &str) {
        let field = self.c.find(Locator::Css(css)).await.expect(css);
        field.clear().await.expect("clear");
        field.send_keys(text).await.expect("type");
    }

    /// Clicks a submit button and waits for the page it leads to (every form posts and
    /// answers with a new page): the old page's marker gone, the new one loaded.
    pub(crate) async fn submit(&self, css: &str) {
        let button = self.c.find(Locator::Css(css)).await.expect(css);
        self.click_to_next_page(button).await;
    }

    pub(crate) async fn click_to_next_page(&self, button: fantoccini::elements::Element) {
        self.c
            .execute("window.__before_submit = true; return true;", vec![])
            .await
            .expect("mark the page");
        button.click().await.expect("click");
        eventually(Duration::from_secs(10), "the next page", || async {
            self.c
                .execute(
                    "return window.__before_submit === undefined && document.readyState === 'complete';",
                    vec![],
                )
                .await
                .is_ok_and(|v| v == json!(true))
        })
        .await;
    }

    pub(crate) async fn text(&self) -> String {
        self.c
            .find(Locator::Css("main"))
            .await
            .expect("main")
            .text()
            .await
            .expect("text")
    }

    pub(crate) async fn path(&self) -> String {
        self.c.current_url().await.expect("url").path().to_string()
    }

    pub(crate) async fn cookie(&self) -> String {
        let c = self
            .c
            .get_named_cookie("authledger_session")
            .await
            .expect("the session cookie");
        assert_eq!(c.http_only(), Some(true));
        assert_eq!(format!("{:?}", c.same_site()), "Some(Lax)");
        format!("authledger_session={}", c.value())
    }

    pub(crate) async fn sign_in(&self, email: &str, password: &str) {
        self.go(&format!(
            "/console/sign-in?workspace={}",
            self.dep.workspace
        ))
        .await;
        self.fill("#email", email).await;
        self.fill("#password", password).await;
        self.submit("main button[type=submit]").await;
    }

    pub(crate) async fn audit(&self, kind: &str) -> Vec<Value> {
        let r = reqwest::Client::new()
            .get(
                self.dep
                    .svc
                    .url(&format!("/v1/audit/events?kind={kind}&limit=200")),
            )
            .bearer_auth(&self.dep.admin)
            .send()
            .await
            .expect("audit");
        let body: Value = r.json().await.expect("json");
        body["items"].as_array().cloned().unwrap_or_default()
    }

    /// Waits until an `access.denied` with `reason` by `actor_type` is in the audit view.
    pub(crate) async fn denied(&self, reason: &str, actor_type: &str) {
        eventually(Duration::from_secs(10), reason, || async {
            self.audit("access.denied")
                .await
                .iter()
                .any(|e| e["reason"] == reason && e["actor"]["type"] == actor_type)
        })
        .await;
    }
}

pub(crate) async fn post_form(
    dep: &Deployment,
    cookie: &str,
    path: &str,
    form: &[(&str, &str)],
) -> StatusCode {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .post(dep.svc.url(path))
        .header("cookie", cookie)
        .header("origin", dep.svc.url("").trim_end_matches('/'))
        .form(form)
        .send()
        .await
        .expect("post")
        .status()
}

pub(crate) async fn get_status(dep: &Deployment, cookie: &str, path: &str) -> StatusCode {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .get(dep.svc.url(path))
        .header("cookie", cookie)
        .send()
        .await
        .expect("get")
        .status()
}

async fn flow(stack: Stack, shots: bool) {
    let driver = Driver::start();
    let dep = Deployment::start(stack, &[]).await;
    let c = driver.browser().await;
    let ui = Console { c, dep, shots };

    // The link serve printed: set the first admin's password, land on the overview.
    ui.go(&ui.dep.console_sign_up.clone()).await;
    assert!(ui.text().await.contains("admin@example.com"));
    ui.check_page("sign-up").await;
    ui.fill("#password", PASSWORD).await;
    ui.submit("main button[type=submit]").await;
    assert_eq!(ui.path().await, "/console/", "{}", ui.text().await);
    assert!(ui.text().await.contains("Overview"));
    ui.axe("overview").await;
    // The link was single use.
    ui.go(&ui.dep.console_sign_up.clone()).await;
    assert!(ui.text().await.contains("unknown, already used or expired"));

    // A custom auth config, listed with its columns.
    ui.go("/console/auth-configs").await;
    ui.fill("#name", "Acme API").await;
    ui.submit("#create-auth-config button").await;
    let listed = ui.text().await;
    assert!(listed.contains("Created \"Acme API\""), "{listed}");
    assert!(listed.contains("Acme API") && listed.contains("api_key") && listed.contains("custom"));
    ui.check_page("auth-configs").await;

    // An API key: shown once with a copy button, usable, then revoked.
    ui.go("/console/api-keys").await;
    ui.fill("#key-name", "ci agent").await;
    ui.fill("#key-days", "30").await;
    ui.submit("#create-api-key button").await;
    let key =
        ui.c.find(Locator::Css("#new-key"))
            .await
            .expect("the new key")
            .prop("value")
            .await
            .expect("value")
            .expect("a key");
    assert!(key.starts_with("alk_"), "{key}");
    assert!(ui.c.find(Locator::Css("button.copy")).await.is_ok());
    let workspace = |key: String| {
        let url = ui.dep.svc.url("/v1/workspace");
        async move {
            let r = reqwest::Client::new()
                .get(url)
                .bearer_auth(key)
                .send()
                .await;
            r.expect("workspace").status()
        }
    };
    assert_eq!(workspace(key.clone()).await, StatusCode::OK);
    ui.check_page("api-keys").await;
    let revoke =
        ui.c.find(Locator::Css("button[aria-label='Revoke ci agent']"))
            .await
            .expect("revoke");
    ui.click_to_next_page(revoke).await;
    let keys = ui.text().await;
    assert!(
        keys.contains("API key revoked") && !keys.contains(&key),
        "{keys}"
    );
    assert_eq!(workspace(key).await, StatusCode::UNAUTHORIZED);

    // Invite a viewer: the link is shown once, with a copy button.
    ui.go("/console/team").await;
    ui.fill("#email", "viewer@example.com").await;
    let role = ui.c.find(Locator::Css("#role")).await.expect("role");
    role.select_by_value("viewer").await.expect("viewer");
    ui.submit("#invite button").await;
    let invite =
        ui.c.find(Locator::Css("#invite-link"))
            .await
            .expect("the invite link")
            .prop("value")
            .await
            .expect("value")
            .expect("a link");
    assert!(ui.c.find(Locator::Css("button.copy")).await.is_ok());
    ui.check_page("team").await;
    let admin_cookie = ui.cookie().await;

    // A form without the session's CSRF token is refused and recorded.
    let forged = post_form(
        &ui.dep,
        &admin_cookie,
        "/console/auth-configs",
        &[
            ("csrf", "forged"),
            ("name", "Forged"),
            ("auth_type", "basic"),
        ],
    )
    .await;
    assert_eq!(forged, StatusCode::FORBIDDEN);
    ui.denied("invalid_csrf", "member").await;

    // Sign out; a wrong password is refused and recorded; the right one signs in.
    ui.submit("form.signout button").await;
    assert_eq!(ui.path().await, "/console/sign-in");
    ui.check_page("sign-in").await;
    let after_sign_out = post_form(
        &ui.dep,
        &admin_cookie,
        "/console/auth-configs",
        &[("csrf", "x"), ("name", "Late"), ("auth_type", "basic")],
    )
    .await;
    assert_eq!(
        after_sign_out,
        StatusCode::SEE_OTHER,
        "a signed-out session still works"
    );
    ui.sign_in("admin@example.com", "wrong password, clearly")
        .await;
    assert!(ui.text().await.contains("Wrong email or password"));
    ui.denied("wrong_password", "member").await;
    ui.sign_in("admin@example.com", PASSWORD).await;
    assert_eq!(ui.path().await, "/console/");
    let overview = ui.text().await;
    assert!(
        overview.contains("wrong_password") && overview.contains("invalid_csrf"),
        "{overview}"
    );
    ui.check_page("overview").await;
    ui.submit("form.signout button").await;

    // The viewer joins through the invite: no create form; a crafted POST is refused.
    ui.go(&invite).await;
    assert!(ui.text().await.contains("viewer@example.com"));
    ui.fill("#password", PASSWORD).await;
    ui.submit("main button[type=submit]").await;
    assert_eq!(ui.path().await, "/console/");
    ui.go("/console/auth-configs").await;
    assert!(ui.text().await.contains("Acme API"));
    assert!(ui
        .c
        .find(Locator::Css("#create-auth-config"))
        .await
        .is_err());
    let viewer_cookie = ui.cookie().await;
    let csrf =
        ui.c.find(Locator::Css("form.signout input[name=csrf]"))
            .await
            .expect("csrf")
            .prop("value")
            .await
            .expect("value")
            .expect("csrf");
    let crafted = post_form(
        &ui.dep,
        &viewer_cookie,
        "/console/auth-configs",
        &[
            ("csrf", &csrf),
            ("name", "Viewer's"),
            ("auth_type", "basic"),
        ],
    )
    .await;
    assert_eq!(crafted, StatusCode::FORBIDDEN);
    ui.denied("role_not_permitted", "member").await;
    assert!(ui
        .c
        .find(Locator::Css("a[href='/console/api-keys']"))
        .await
        .is_err());
    ui.go("/console/api-keys").await;
    assert!(ui.text().await.contains("Not allowed"));

    // The admin makes the viewer a developer: the viewer's session (still open, its
    // cookie kept aside) ends at once.
    assert_eq!(
        get_status(&ui.dep, &viewer_cookie, "/console/").await,
        StatusCode::OK
    );
    ui.c.delete_all_cookies()
        .await
        .expect("forget the viewer's cookie");
    ui.sign_in("admin@example.com", PASSWORD).await;
    ui.go("/console/team").await;
    assert!(ui.text().await.contains("viewer@example.com"));
    ui.check_page("team-members").await;
    let viewer_id = authledger::domain::member::member_id("viewer@example.com");
    let role =
        ui.c.find(Locator::Css(&format!("#role-{viewer_id}")))
            .await
            .expect("the viewer's role select");
    role.select_by_value("developer").await.expect("developer");
    let change =
        ui.c.find(Locator::XPath(&format!(
            "//select[@id='role-{viewer_id}']/following-sibling::button"
        )))
        .await
        .expect("change role");
    ui.click_to_next_page(change).await;
    assert!(ui.text().await.contains("Role changed to developer"));
    assert_eq!(
        get_status(&ui.dep, &viewer_cookie, "/console/").await,
        StatusCode::SEE_OTHER,
        "the viewer's session survived the role change"
    );
    // Removed: no sign-in any more.
    let remove = format!("//form[input[@name='member' and @value='{viewer_id}']]//button[contains(@class, 'danger')]");
    let remove = ui.c.find(Locator::XPath(&remove)).await.expect("remove");
    ui.click_to_next_page(remove).await;
    assert!(ui.text().await.contains("Member removed"));
    ui.submit("form.signout button").await;
    ui.sign_in("viewer@example.com", PASSWORD).await;
    assert!(ui.text().await.contains("Wrong email or password"));
    ui.denied("unknown_member", "member").await;

    // Every step is an event with the member as actor.
    for kind in [
        "member.joined",
        "member.signed_in",
        "member.signed_out",
        "member.role_changed",
        "member.removed",
    ] {
        let events = ui.audit(kind).await;
        assert!(
            events.iter().any(|e| e["actor"]["type"] == "member"),
            "{kind} by a member: {events:?}"
        );
    }
    assert_eq!(ui.audit("member.joined").await.len(), 2);
    let _ = ui.c.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn console_first_admin_auth_config_invite_and_role_limits_embedded() {
    flow(Stack::Embedded, true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn console_first_admin_auth_config_invite_and_role_limits_jetstream_pg() {
    flow(Stack::JetStreamPg, false).await;
}

/// Behind an https public URL the cookie is `__Host-` and `Secure`; every console answer
/// carries the strict headers; a form posted from another origin is refused.
#[tokio::test(flavor = "multi_thread")]
async fn console_cookie_and_headers_behind_an_https_public_url() {
    const PUBLIC: &str = "https://console.example";
    let dep = Deployment::start(Stack::Embedded, &[("AUTHLEDGER_PUBLIC_URL", PUBLIC)]).await;
    assert!(
        dep.console_sign_up.starts_with(PUBLIC),
        "{}",
        dep.console_sign_up
    );
    let invite = dep.console_sign_up.split("invite=").nth(1).expect("invite");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");

    let page = http
        .get(dep.svc.url("/console/sign-in"))
        .send()
        .await
        .expect("sign-in page");
    let header = |name: &str| {
        page.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let csp = header("content-security-policy");
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(header("x-frame-options"), "DENY");
    assert_eq!(header("referrer-policy"), "same-origin");
    assert!(!page.text().await.expect("html").contains("<script>"));

    let sign_up = |origin: &'static str| {
        http.post(dep.svc.url("/console/sign-up"))
            .header("origin", origin)
            .form(&[("invite", invite), ("password", PASSWORD)])
            .send()
    };
    let foreign = sign_up("https://evil.example").await.expect("post");
    assert_eq!(foreign.status(), StatusCode::NOT_FOUND);
    let joined = sign_up(PUBLIC).await.expect("post");
    assert_eq!(joined.status(), StatusCode::SEE_OTHER);
    let cookie = joined
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .expect("a session cookie")
        .to_string();
    assert!(cookie.starts_with("__Host-authledger_session="), "{cookie}");
    for attribute in ["; Path=/", "; HttpOnly", "; SameSite=Lax", "; Secure"] {
        assert!(cookie.contains(attribute), "{attribute} missing: {cookie}");
    }
    assert!(!cookie.contains("Domain"), "{cookie}");
}

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

pub mod browser;

use std::time::Duration;

use fantoccini::Locator;
use reqwest::StatusCode;
use serde_json::Value;

use crate::support::{Deployment, Stack};
use browser::{get_status, post_form, Console, Driver, PASSWORD};

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
    let key = ui.value("#new-key").await;
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
    // Its expiry reads as a date and time, 30 days from now.
    let expires = ui.time("#api-keys time").await;
    let days = (expires - time::OffsetDateTime::now_utc()).whole_hours() as f64 / 24.0;
    assert!((29.9..=30.0).contains(&days), "expires in {days} days");
    ui.check_page("api-keys").await;
    let revoke = ui.find("button[aria-label='Revoke ci agent']").await;
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
    let role = ui.find("#role").await;
    role.select_by_value("viewer").await.expect("viewer");
    ui.submit("#invite button").await;
    let invite = ui.value("#invite-link").await;
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
    let csrf = ui.value("form.signout input[name=csrf]").await;
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
    let role = ui.find(&format!("#role-{viewer_id}")).await;
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

/// The code an authenticator app shows for `key` (as the account page prints it) at `at`:
/// computed here with `totp-rs`, independently of the service's own TOTP code.
fn authenticator_code(key: &str, at: time::OffsetDateTime) -> String {
    let secret = totp_rs::Secret::Encoded(key.replace(' ', ""))
        .to_bytes()
        .expect("a base32 key");
    let totp = totp_rs::TOTP::new(totp_rs::Algorithm::SHA1, 6, 1, 30, secret).expect("totp");
    totp.generate(u64::try_from(at.unix_timestamp()).expect("after 1970"))
}

/// Another six digits than `code`.
fn wrong(code: &str) -> String {
    let n: u32 = code.parse().expect("digits");
    format!("{:06}", (n + 1) % 1_000_000)
}

/// Two-step sign-in: the admin sets up an authenticator on their account page (a wrong
/// first code is refused), signs in with password and code, a wrong code and a code used
/// once already are refused and recorded, the sign-in step expires after five minutes,
/// and an admin's reset brings back sign-in with the password alone. Time moves by the
/// service's test clock.
async fn second_factor_flow(stack: Stack, shots: bool) {
    let driver = Driver::start();
    let clock = crate::support::TestClock::new();
    let dep = Deployment::start(stack, &[clock.env()]).await;
    let c = driver.browser().await;
    let ui = Console { c, dep, shots };
    let key = || async {
        let shown = ui.find("#setup-key").await;
        shown.text().await.expect("key text")
    };

    ui.go(&ui.dep.console_sign_up.clone()).await;
    ui.fill("#password", PASSWORD).await;
    ui.submit("main button[type=submit]").await;
    ui.go("/console/account").await;
    assert!(ui.text().await.contains("Off"), "{}", ui.text().await);
    ui.check_page("account").await;

    // A wrong first code sets nothing up; the right one does.
    let first = authenticator_code(&key().await, clock.now());
    ui.fill("#code", &wrong(&first)).await;
    ui.submit("#second-factor-setup button").await;
    assert!(
        ui.text().await.contains("does not match"),
        "{}",
        ui.text().await
    );
    let key = key().await;
    let enrolment_code = authenticator_code(&key, clock.now());
    ui.fill("#code", &enrolment_code).await;
    ui.submit("#second-factor-setup button").await;
    assert!(
        ui.text().await.contains("Two-step sign-in is on"),
        "{}",
        ui.text().await
    );

    // Password, then code: a wrong code and the enrolment's code are refused and recorded.
    ui.submit("form.signout button").await;
    ui.sign_in("admin@example.com", PASSWORD).await;
    assert_eq!(ui.path().await, "/console/sign-in/second-factor");
    ui.check_page("second-factor").await;
    ui.fill("#code", &wrong(&authenticator_code(&key, clock.now())))
        .await;
    ui.submit("main button[type=submit]").await;
    assert!(ui.text().await.contains("wrong or was already used"));
    ui.denied("wrong_second_factor", "member").await;
    ui.fill("#code", &enrolment_code).await;
    ui.submit("main button[type=submit]").await;
    assert_eq!(ui.path().await, "/console/sign-in/second-factor");
    ui.denied("second_factor_reused", "member").await;

    // The step between password and code lasts five minutes.
    clock.advance(Duration::from_secs(301));
    ui.fill("#code", &authenticator_code(&key, clock.now()))
        .await;
    ui.submit("main button[type=submit]").await;
    assert_eq!(ui.path().await, "/console/sign-in");
    assert_eq!(
        get_status(&ui.dep, "", "/console/sign-in/second-factor").await,
        StatusCode::SEE_OTHER
    );

    // A fresh code signs in, once.
    ui.sign_in("admin@example.com", PASSWORD).await;
    let code = authenticator_code(&key, clock.now());
    ui.fill("#code", &code).await;
    ui.submit("main button[type=submit]").await;
    assert_eq!(ui.path().await, "/console/", "{}", ui.text().await);
    let newest = ui.audit("member.signed_in").await[0]["event_id"].clone();
    let detail: Value = reqwest::Client::new()
        .get(ui.dep.svc.url(&format!(
            "/v1/audit/events/{}",
            newest.as_str().unwrap_or_default()
        )))
        .bearer_auth(&ui.dep.admin)
        .send()
        .await
        .expect("event")
        .json()
        .await
        .expect("json");
    let step = u64::try_from(clock.now().unix_timestamp() / 30).expect("step");
    let recorded = detail
        .pointer("/body/payload/second_factor_step")
        .and_then(Value::as_u64);
    assert!(
        recorded.is_some_and(|s| s.abs_diff(step) <= 1),
        "the sign-in records its code's step: {detail}"
    );
    ui.go("/console/team").await;
    ui.check_page("team-two-step").await;

    // The admin resets their own second factor: the session ends; the password alone
    // signs in again.
    let reset = ui
        .find("form[action='/console/team/second-factor/reset'] button")
        .await;
    ui.click_to_next_page(reset).await;
    ui.go("/console/team").await;
    assert_eq!(ui.path().await, "/console/sign-in");
    ui.sign_in("admin@example.com", PASSWORD).await;
    assert_eq!(ui.path().await, "/console/");

    // The workspace requires two-step sign-in: the next sign-in sets it up first.
    ui.go("/console/team").await;
    ui.submit("#second-factor-requirement button").await;
    assert!(
        ui.text().await.contains("now required"),
        "{}",
        ui.text().await
    );
    ui.submit("form.signout button").await;
    ui.sign_in("admin@example.com", PASSWORD).await;
    assert_eq!(ui.path().await, "/console/sign-in/set-up");
    ui.check_page("second-factor-set-up").await;
    let shown = ui.find("#setup-key").await;
    let new_key = shown.text().await.expect("key text");
    ui.fill("#code", &authenticator_code(&new_key, clock.now()))
        .await;
    ui.submit("#second-factor-setup button").await;
    assert_eq!(ui.path().await, "/console/", "{}", ui.text().await);
    for kind in [
        "member.second_factor_enrolled",
        "member.second_factor_reset",
        "workspace.second_factor_requirement_set",
    ] {
        let events = ui.audit(kind).await;
        assert!(
            events.iter().any(|e| e["actor"]["type"] == "member"),
            "{kind} by a member: {events:?}"
        );
    }
    let enrolled = ui.audit("member.second_factor_enrolled").await;
    let text = serde_json::to_string(&enrolled).expect("json");
    assert!(
        !text.contains(&key.replace(' ', "")),
        "the key in the log: {text}"
    );
    let _ = ui.c.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn console_two_step_sign_in_embedded() {
    second_factor_flow(Stack::Embedded, true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn console_two_step_sign_in_jetstream_pg() {
    second_factor_flow(Stack::JetStreamPg, false).await;
}

/// A session ends after 30 minutes without a request (the renewed cookie is what keeps
/// it), and after 12 hours whatever its activity; time moves by the test clock.
#[tokio::test(flavor = "multi_thread")]
async fn console_sessions_end_when_idle_and_at_their_absolute_end() {
    let clock = crate::support::TestClock::new();
    let dep = Deployment::start(Stack::Embedded, &[clock.env()]).await;
    let invite = dep.console_sign_up.split("invite=").nth(1).expect("invite");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let origin = dep.svc.url("");
    let joined = http
        .post(dep.svc.url("/console/sign-up"))
        .header("origin", origin.trim_end_matches('/'))
        .form(&[("invite", invite), ("password", PASSWORD)])
        .send()
        .await
        .expect("sign up");
    assert_eq!(joined.status(), StatusCode::SEE_OTHER);
    let first = session_cookie(&joined);

    // Each answer renews the cookie; the renewed one is good for another 30 minutes.
    let minute = Duration::from_secs(60);
    clock.advance(29 * minute);
    let (status, second) = overview(&http, &dep, &first).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "29 minutes idle is within the limit"
    );
    let second = second.expect("a renewed cookie");
    clock.advance(29 * minute);
    let (status, third) = overview(&http, &dep, &second).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the renewed cookie counts from its own use"
    );
    let (status, _) = overview(&http, &dep, &first).await;
    assert_eq!(
        status,
        StatusCode::SEE_OTHER,
        "the first cookie is 58 minutes idle"
    );

    // 31 minutes without a request: the session is over, even with the newest cookie.
    let third = third.expect("a renewed cookie");
    clock.advance(31 * minute);
    let (status, _) = overview(&http, &dep, &third).await;
    assert_eq!(
        status,
        StatusCode::SEE_OTHER,
        "31 minutes idle ends the session"
    );

    // Signed in again and active every 25 minutes: good until 12 hours after sign-in.
    let signed = http
        .post(dep.svc.url("/console/sign-in"))
        .header("origin", origin.trim_end_matches('/'))
        .form(&[
            ("workspace", dep.workspace.as_str()),
            ("email", "admin@example.com"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .expect("sign in");
    assert_eq!(signed.status(), StatusCode::SEE_OTHER);
    let mut cookie = session_cookie(&signed);
    let mut elapsed = Duration::ZERO;
    loop {
        clock.advance(25 * minute);
        elapsed += 25 * minute;
        let (status, renewed) = overview(&http, &dep, &cookie).await;
        if elapsed < Duration::from_secs(12 * 3600) {
            assert_eq!(status, StatusCode::OK, "active for {elapsed:?}");
            cookie = renewed.expect("a renewed cookie");
        } else {
            assert_eq!(
                status,
                StatusCode::SEE_OTHER,
                "past 12 hours at {elapsed:?}"
            );
            break;
        }
    }
}

/// The `name=value` of the session cookie an answer sets.
fn session_cookie(answer: &reqwest::Response) -> String {
    let set = answer
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.contains("authledger_session=") && !c.contains("Max-Age=0"))
        .expect("a session cookie");
    set.split(';').next().expect("name=value").to_string()
}

/// The overview with `cookie`: its status and the renewed cookie, if one was set.
async fn overview(
    http: &reqwest::Client,
    dep: &Deployment,
    cookie: &str,
) -> (StatusCode, Option<String>) {
    let answer = http
        .get(dep.svc.url("/console/"))
        .header("cookie", cookie)
        .send()
        .await
        .expect("overview");
    let renewed = answer
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|c| c.contains("authledger_session=") && !c.contains("Max-Age=0"))
        .then(|| session_cookie(&answer));
    (answer.status(), renewed)
}

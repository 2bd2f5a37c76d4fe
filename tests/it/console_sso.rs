//! Team sign-in with the organisation's own OIDC provider (SSO), in a real browser against
//! a real local OIDC provider (`fixtures::oidc_provider`), on both stacks: the admin sets
//! up SSO on the Identity provider screen; an invitee joins by SSO; members sign in with
//! SSO and land on the overview as themselves; an unknown email, an unverified email, a
//! replayed callback and another `sub` for a known email are refused, shown and recorded;
//! the client secret is in no page and nowhere in the log or the service's files; a viewer
//! has no Identity provider screen and a crafted change of theirs is refused and recorded.

use std::time::Duration;

use fantoccini::Locator;
use reqwest::StatusCode;
use serde_json::Value;

use crate::console::browser::{get_status, post_form, Console, Driver, PASSWORD};
use crate::fixtures::oidc_provider::{OidcClient, OidcConfig, OidcProvider, OidcUser, Seen};
use crate::harness::eventually;
use crate::support::{cli, Deployment, Stack, BASE_ENV, NO_RATE_LIMIT};

const CLIENT_ID: &str = "authledger-console";
const CLIENT_SECRET: &str = "sso-client-secret-7Qx9Lm2Vb";

fn member_id(email: &str) -> String {
    authledger::domain::member::member_id(email)
}

/// The page's HTML (to look for what must never be in it).
async fn source(ui: &Console) -> String {
    ui.c.source().await.expect("page source")
}

/// From the sign-in page's SSO button to the provider's login page.
async fn to_provider(ui: &Console, idp: &OidcProvider) {
    ui.go(&format!("/console/sign-in?workspace={}", ui.dep.workspace))
        .await;
    let button = ui.find("button[formaction='/console/sso/start']").await;
    ui.click_to_next_page(button).await;
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
    let heading = ui.find("h1").await.text().await.expect("text");
    assert_eq!(
        heading, "Sign in to Example IdP",
        "at the provider's login page"
    );
}

/// From the sign-in page, through the provider's login page as `email`, back to the console.
async fn sso_sign_in(ui: &Console, idp: &OidcProvider, email: &str) {
    to_provider(ui, idp).await;
    ui.fill("#login-email", email).await;
    let submit = ui.find("#login-submit").await;
    ui.click_to_next_page(submit).await;
}

/// The email the console's header shows as signed in.
async fn signed_in_as(ui: &Console) -> String {
    match ui.c.find(Locator::Css(".who a")).await {
        Ok(e) => e.text().await.expect("text"),
        Err(_) => String::new(),
    }
}

async fn sign_out(ui: &Console) {
    ui.submit("form.signout button").await;
}

/// The events of `kind` whose actor is `actor_id`.
async fn by(ui: &Console, kind: &str, actor_id: &str) -> Vec<Value> {
    ui.audit(kind)
        .await
        .into_iter()
        .filter(|e| e["actor"]["id"] == actor_id)
        .collect()
}

/// Waits for an `access.denied` with `reason` in the workspace's audit view.
async fn denied(ui: &Console, reason: &str) {
    eventually(Duration::from_secs(10), reason, || async {
        ui.audit("access.denied")
            .await
            .iter()
            .any(|e| e["reason"] == reason)
    })
    .await;
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

async fn flow(stack: Stack, shots: bool) {
    let driver = Driver::start();
    let envs: Vec<(&str, &str)> = [BASE_ENV, NO_RATE_LIMIT].concat();
    let dep = Deployment::start(stack, &envs).await;
    let idp = OidcProvider::start(OidcConfig {
        users: vec![
            OidcUser::new("admin@example.com", "sub-admin"),
            OidcUser::new("dev@example.com", "sub-dev"),
            OidcUser::new("stranger@example.com", "sub-stranger"),
            OidcUser {
                email_verified: false,
                ..OidcUser::new("viewer@example.com", "sub-viewer")
            },
        ],
        // Only client_secret_post: the relying party must read discovery to choose it.
        auth_methods: vec!["client_secret_post"],
        ..OidcConfig::default()
    })
    .await;
    let mut pages = Vec::new();

    let c = driver.browser().await;
    let ui = Console { c, dep, shots };
    ui.go(&ui.dep.console_sign_up.clone()).await;
    ui.fill("#password", PASSWORD).await;
    ui.submit("main button[type=submit]").await;

    // The admin's Identity provider screen: the redirect URI to register, then SSO on.
    ui.go("/console/identity-provider").await;
    ui.check_page("identity-provider").await;
    let redirect_uri = ui.value("#redirect-uri").await;
    assert!(
        redirect_uri.ends_with("/console/sso/callback"),
        "{redirect_uri}"
    );
    idp.register(OidcClient {
        client_id: CLIENT_ID.into(),
        client_secret: CLIENT_SECRET.into(),
        redirect_uris: vec![redirect_uri.clone()],
    });
    // A wrong issuer is refused on the spot (discovery must name the configured issuer).
    idp.claim_issuer(Some("https://elsewhere.example.com"));
    ui.fill("#sso-issuer", &idp.issuer).await;
    ui.fill("#sso-client-id", CLIENT_ID).await;
    ui.fill("#sso-client-secret", CLIENT_SECRET).await;
    ui.submit("#team-sso-form button[type=submit]").await;
    let page = ui.text().await;
    assert!(page.contains("issuer"), "a clear refusal: {page}");
    pages.push(source(&ui).await);
    idp.claim_issuer(None);
    ui.fill("#sso-client-secret", CLIENT_SECRET).await;
    ui.submit("#team-sso-form button[type=submit]").await;
    let page = ui.text().await;
    assert!(page.contains("Single sign-on saved"), "{page}");
    let fingerprint = ui
        .find("#sso-secret-fingerprint")
        .await
        .text()
        .await
        .expect("text");
    assert!(fingerprint.starts_with("hmac-sha256:"), "{fingerprint}");
    pages.push(source(&ui).await);
    // The end users' identity provider, on the same screen.
    ui.fill("#eu-issuer", &idp.issuer).await;
    ui.fill("#eu-audience", "authledger-end-users").await;
    ui.fill("#eu-jwks", &format!("{}/jwks", idp.issuer)).await;
    ui.submit("#end-users-form button[type=submit]").await;
    assert!(
        ui.text()
            .await
            .contains("End users' identity provider saved"),
        "{}",
        ui.text().await
    );
    ui.check_page("identity-provider-configured").await;
    pages.push(source(&ui).await);
    let configured = ui.audit("workspace.team_sso_configured").await;
    assert_eq!(configured.len(), 1, "{configured:?}");
    assert_eq!(configured[0]["actor"]["type"], "member");
    assert_eq!(
        ui.audit("workspace.identity_provider_configured")
            .await
            .len(),
        1
    );

    // Invites: a developer who will join by SSO, a viewer who joins with a password.
    let dev_link = invite(&ui, "dev@example.com", "developer").await;
    let viewer_link = invite(&ui, "viewer@example.com", "viewer").await;
    sign_out(&ui).await;

    // The sign-in page offers SSO.
    ui.go(&format!("/console/sign-in?workspace={}", ui.dep.workspace))
        .await;
    ui.check_page("sign-in-sso").await;

    // The invitee's link offers SSO instead of a password; they join by SSO and land on
    // the overview as themselves.
    ui.go(&dev_link).await;
    let offered = ui.text().await;
    assert!(
        offered.contains("Your team uses single sign-on"),
        "{offered}"
    );
    sso_sign_in(&ui, &idp, "dev@example.com").await;
    assert_eq!(ui.path().await, "/console/", "{}", ui.text().await);
    assert_eq!(signed_in_as(&ui).await, "dev@example.com");
    let dev = member_id("dev@example.com");
    let linked = by(&ui, "member.sso_linked", &dev).await;
    assert_eq!(linked.len(), 1, "joined by SSO: {linked:?}");
    let signed = by(&ui, "member.signed_in", &dev).await;
    assert_eq!(signed.len(), 1, "{signed:?}");
    assert_eq!(signed[0]["actor"]["type"], "member");
    // What the provider saw: PKCE S256, state, nonce, openid email; the secret by post.
    let seen = idp.seen();
    let authorize = seen
        .iter()
        .rev()
        .find_map(|s| match s {
            Seen::Authorize(q) => Some(q.clone()),
            _ => None,
        })
        .expect("an authorization request");
    assert_eq!(authorize["code_challenge_method"], "S256");
    assert_eq!(authorize["scope"], "openid email");
    assert_eq!(authorize["redirect_uri"], redirect_uri);
    assert!(authorize["state"].starts_with(&format!("{}.", ui.dep.workspace)));
    assert!(!authorize["nonce"].is_empty());
    let token = seen
        .iter()
        .rev()
        .find_map(|s| match s {
            Seen::Token {
                auth,
                params,
                outcome,
            } => Some((auth.clone(), params.clone(), outcome.clone())),
            _ => None,
        })
        .expect("a token request");
    assert_eq!(token.0, "client_secret_post");
    assert_eq!(token.2, "ok");
    assert_eq!(token.1["code_verifier"].len(), 43);

    // The same callback again (the browser's back button, or a stolen URL): refused.
    let callback = idp.last_redirect().expect("the callback URL");
    ui.go(&callback).await;
    let page = ui.text().await;
    assert!(page.contains("expired or already used"), "{page}");
    ui.check_page("sso-refused").await;
    denied(&ui, "invalid_sso_state").await;
    assert_eq!(
        idp.token_outcomes().len(),
        1,
        "nothing sent to the provider again"
    );
    ui.go("/console/").await;
    sign_out(&ui).await;

    // A person the provider knows but the workspace does not.
    sso_sign_in(&ui, &idp, "stranger@example.com").await;
    let page = ui.text().await;
    assert!(page.contains("Not a member of this workspace"), "{page}");
    assert_eq!(signed_in_as(&ui).await, "");
    denied(&ui, "unknown_member").await;

    // An invitee whose email the provider has not verified.
    sso_sign_in(&ui, &idp, "viewer@example.com").await;
    let page = ui.text().await;
    assert!(page.contains("Email address not verified"), "{page}");
    denied(&ui, "sso_email_unverified").await;
    assert!(
        by(&ui, "member.sso_linked", &member_id("viewer@example.com"))
            .await
            .is_empty()
    );

    // The developer's address now belongs to another account at the provider.
    idp.set_user(OidcUser::new("dev@example.com", "sub-someone-else"));
    sso_sign_in(&ui, &idp, "dev@example.com").await;
    let page = ui.text().await;
    assert!(
        page.contains("Another account at your identity provider"),
        "{page}"
    );
    assert_eq!(signed_in_as(&ui).await, "");
    denied(&ui, "sso_subject_mismatch").await;
    assert_eq!(
        by(&ui, "member.signed_in", &dev).await.len(),
        1,
        "no new session"
    );

    // A token signed with a key not in the provider's JWKS: refused.
    idp.sign_with_rogue_key(true);
    sso_sign_in(&ui, &idp, "admin@example.com").await;
    let page = ui.text().await;
    assert!(page.contains("refused the sign-in"), "{page}");
    assert_eq!(signed_in_as(&ui).await, "");
    denied(&ui, "invalid_token").await;
    idp.sign_with_rogue_key(false);

    // The person cancels at the provider: its error comes back, nothing is exchanged.
    let exchanges = idp.token_outcomes().len();
    to_provider(&ui, &idp).await;
    let cancel = ui.find("#login-cancel").await;
    ui.click_to_next_page(cancel).await;
    let page = ui.text().await;
    assert!(page.contains("refused the sign-in"), "{page}");
    denied(&ui, "sso_provider_error").await;
    assert_eq!(idp.token_outcomes().len(), exchanges);

    // A member who joined with a password signs in with SSO too (first time: bound).
    sso_sign_in(&ui, &idp, "admin@example.com").await;
    assert_eq!(ui.path().await, "/console/");
    assert_eq!(signed_in_as(&ui).await, "admin@example.com");
    let admin = member_id("admin@example.com");
    assert_eq!(by(&ui, "member.sso_linked", &admin).await.len(), 1);
    pages.push(source(&ui).await);
    sign_out(&ui).await;

    // An authorization response naming another issuer (RFC 9207): its code goes nowhere.
    let exchanges = idp.token_outcomes().len();
    let refusals = ui.audit("access.denied").await.len();
    idp.answer_as(Some("https://mixed-up.example.com"));
    sso_sign_in(&ui, &idp, "admin@example.com").await;
    assert!(ui.text().await.contains("refused the sign-in"));
    assert_eq!(signed_in_as(&ui).await, "");
    eventually(Duration::from_secs(10), "the mix-up recorded", || async {
        ui.audit("access.denied").await.len() > refusals
    })
    .await;
    assert_eq!(idp.token_outcomes().len(), exchanges);
    idp.answer_as(None);

    // The viewer joins with a password: no Identity provider link; crafted changes refused.
    ui.go(&viewer_link).await;
    ui.fill("#password", PASSWORD).await;
    ui.submit("main button[type=submit]").await;
    let nav = ui.find("nav").await.text().await.expect("nav text");
    assert!(!nav.contains("Identity provider"), "{nav}");
    let cookie = ui.cookie().await;
    let csrf = ui.value("form.signout input[name=csrf]").await;
    let status = post_form(
        &ui.dep,
        &cookie,
        "/console/identity-provider/team-sso",
        &[
            ("csrf", csrf.as_str()),
            ("issuer", "https://evil.example.com"),
            ("client_id", "x"),
            ("client_secret", "y"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        get_status(&ui.dep, &cookie, "/console/identity-provider").await,
        StatusCode::FORBIDDEN
    );
    ui.denied("role_not_permitted", "member").await;
    assert_eq!(ui.audit("workspace.team_sso_configured").await.len(), 1);

    // The client secret: in no page, not in the log, not in any file of the service.
    for page in &pages {
        assert!(!page.contains(CLIENT_SECRET), "the client secret in a page");
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
async fn console_sso_embedded() {
    flow(Stack::Embedded, true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn console_sso_jetstream_pg() {
    flow(Stack::JetStreamPg, false).await;
}

//! Undo on My activity (issue 20), in a real browser against a real local OIDC provider, on
//! both stacks: an agent created two calendar events and pinged for Alice, and created one
//! for Bob. Signed in, Alice sees **Undo** on her two events and not on the ping (its tool
//! declares no undo); she clicks it on one: the upstream receives exactly the compensating
//! request with her credential, and the call reads "undone" with no button left. The other
//! one's undo fails (the upstream answers 500): it reads "undo failed (… 500)" and its
//! button stays; the second click undoes it. A crafted undo of Bob's call answers exactly
//! like an unknown id and is recorded; Bob's event is untouched. In the console, the
//! connection's history shows the calls undone and **Undo** on a third, which an admin
//! clicks.

use std::sync::atomic::Ordering;

use fantoccini::Locator;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::console::browser::{Console, Driver, PASSWORD};
use crate::fixtures::oidc_provider::{OidcClient, OidcConfig, OidcProvider, OidcUser};
use crate::me_pages::{post_me, through_provider};
use crate::support::{Deployment, Stack, BASE_ENV, NO_RATE_LIMIT};
use crate::undo::{calendar, call, run, workspace_with};

async fn click_undo(ui: &Console, call: &str) {
    let button = ui.find(&format!("#call-{call} form.undo button")).await;
    ui.click_to_next_page(button).await;
}

async fn undo_state(ui: &Console, call: &str) -> String {
    ui.find(&format!("#call-{call}"))
        .await
        .attr("data-undo")
        .await
        .expect("attr")
        .unwrap_or_default()
}

async fn has_button(ui: &Console, call: &str) -> bool {
    ui.c.find(Locator::Css(&format!("#call-{call} form.undo button")))
        .await
        .is_ok()
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
        client_secret: "me-undo-secret-4Rt9".into(),
        redirect_uris: vec![dep.svc.url("/me/callback")],
    });
    let provider = json!({ "issuer": idp.issuer, "audience": "authledger-end-users",
        "jwks_url": format!("{}/jwks", idp.issuer), "client_id": "authledger-me",
        "client_secret": "me-undo-secret-4Rt9" });
    let (s, v) = call(
        &dep,
        &dep.admin,
        Method::PUT,
        "/v1/workspace/identity-provider",
        Some(provider),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");

    let cal = calendar().await;
    let (connections, agent) =
        workspace_with(&dep, &cal.upstream.base_url, &["sub-alice", "sub-bob"]).await;
    let (alices, bobs) = (connections[0].as_str(), connections[1].as_str());
    let first = run(
        &dep,
        &agent,
        alices,
        "custom.create_event",
        json!({ "calendarId": "primary", "summary": "Standup" }),
    )
    .await;
    let second = run(
        &dep,
        &agent,
        alices,
        "custom.create_event",
        json!({ "calendarId": "primary", "summary": "Retro" }),
    )
    .await;
    let pinged = run(&dep, &agent, alices, "custom.ping", json!({})).await;
    let bobs_call = run(
        &dep,
        &agent,
        bobs,
        "custom.create_event",
        json!({ "calendarId": "primary" }),
    )
    .await;

    let c = driver.browser().await;
    let ui = Console { c, dep, shots };
    ui.go(&format!("/me/sign-in?workspace={}", ui.dep.workspace))
        .await;
    through_provider(&ui, &idp).await;
    assert_eq!(ui.path().await, "/me/", "{}", ui.text().await);
    ui.go("/me/activity").await;
    let page = ui.text().await;
    assert!(!page.contains(&bobs_call), "Bob's call on Alice's page");
    for id in [&first, &second] {
        assert!(has_button(&ui, id).await, "Undo on {id}");
        assert_eq!(undo_state(&ui, id).await, "undoable");
    }
    assert!(!has_button(&ui, &pinged).await, "no undo for the ping");
    ui.check_page("me-activity-undo").await;

    // Undo the first: exactly the compensating request, with Alice's credential.
    click_undo(&ui, &first).await;
    assert_eq!(ui.path().await, "/me/activity");
    let page = ui.text().await;
    assert!(
        page.contains("Undone: the service took the action back."),
        "{page}"
    );
    assert_eq!(undo_state(&ui, &first).await, "undone");
    assert!(!has_button(&ui, &first).await, "undone once");
    let deletes: Vec<_> = cal
        .upstream
        .hits()
        .into_iter()
        .filter(|h| h.method == "DELETE")
        .collect();
    assert_eq!(deletes.len(), 1, "{deletes:?}");
    assert_eq!(deletes[0].path, "/calendars/primary/events/ev-1");
    assert_eq!(
        deletes[0].header("x-api-key"),
        ["sub-alice-calendar-key-0001"]
    );
    let card = ui.find(&format!("#call-{first}")).await;
    ui.c.execute(
        "arguments[0].scrollIntoView({block: 'center'}); return true;",
        vec![serde_json::to_value(&card).expect("element")],
    )
    .await
    .expect("scroll");
    ui.check_page("me-activity-undone").await;

    // The second's undo fails, reads so, and may be tried again.
    cal.fail_with.store(500, Ordering::SeqCst);
    click_undo(&ui, &second).await;
    let page = ui.text().await;
    assert!(page.contains("Undo failed"), "{page}");
    assert!(
        page.contains("undo failed (the service answered 500)"),
        "{page}"
    );
    assert_eq!(undo_state(&ui, &second).await, "failed");
    ui.check_page("me-activity-undo-failed").await;
    cal.fail_with.store(0, Ordering::SeqCst);
    click_undo(&ui, &second).await;
    assert_eq!(undo_state(&ui, &second).await, "undone");
    let undone = ui.audit("tool.undone").await;
    assert_eq!(undone.len(), 3, "{undone:?}");
    assert!(
        undone
            .iter()
            .all(|e| e["actor"]["type"] == "user" && e["actor"]["id"] == "sub-alice"),
        "{undone:?}"
    );

    // A crafted undo of Bob's call answers like an unknown id, and is recorded.
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
    for id in [bobs_call.as_str(), "0190c0de-0000-7000-8000-000000000000"] {
        let form = [("csrf", csrf.as_str()), ("call", id)];
        let (s, body) = post_me(&ui, &me_cookie, "/me/activity/undo", &form).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{body}");
        assert!(body.contains("No such tool call."), "{body}");
        answers.push(body.replace(&csrf, ""));
    }
    assert_eq!(
        answers[0], answers[1],
        "Bob's call told apart from an unknown one"
    );
    ui.denied("other_user", "user").await;
    assert!(
        cal.upstream
            .hits_to("/calendars/primary/events/ev-3")
            .is_empty(),
        "Bob's event untouched"
    );

    // The console lists the connection's calls in its history: an admin undoes one there.
    let third = run(
        &ui.dep,
        &agent,
        alices,
        "custom.create_event",
        json!({ "calendarId": "primary", "summary": "Planning" }),
    )
    .await;
    ui.go(&ui.dep.console_sign_up.clone()).await;
    ui.fill("#password", PASSWORD).await;
    ui.submit("main button[type=submit]").await;
    assert_eq!(ui.path().await, "/console/");
    ui.go(&format!("/console/connections/{alices}")).await;
    let page = ui.text().await;
    assert!(page.contains("undone"), "the undone calls read so: {page}");
    for done in [&first, &second] {
        let button = format!("#undo-{done}");
        assert!(
            ui.c.find(Locator::Css(&button)).await.is_err(),
            "{done} undone"
        );
    }
    ui.c.execute(
        "document.getElementById('history').scrollIntoView({block: 'end'}); return true;",
        vec![],
    )
    .await
    .expect("scroll");
    ui.check_page("console-connection-undo").await;
    let button = ui.find(&format!("#undo-{third}")).await;
    ui.click_to_next_page(button).await;
    let page = ui.text().await;
    assert!(
        page.contains("Undone: the service took the call's action back."),
        "{page}"
    );
    assert!(ui
        .c
        .find(Locator::Css(&format!("#undo-{third}")))
        .await
        .is_err());
    assert_eq!(
        cal.upstream.hits_to("/calendars/primary/events/ev-4").len(),
        1,
        "the third event deleted once"
    );
    let by_admin = ui.audit("tool.undo_requested").await;
    assert!(
        by_admin
            .iter()
            .any(|e| e["aggregate"]["id"] == json!(third) && e["actor"]["type"] == "member"),
        "{by_admin:?}"
    );
    let _ = ui.c.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn me_undo_embedded() {
    flow(Stack::Embedded, true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn me_undo_jetstream_pg() {
    flow(Stack::JetStreamPg, false).await;
}

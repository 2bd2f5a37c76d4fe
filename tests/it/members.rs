//! `/v1/members` on both stacks: the team the console signs in, managed through the API
//! with the same commands as the console's team screen. An admin key invites (the sign-up
//! link shown once), the invitee joins through the console and shows as active; a role
//! change ends their console session at once; removal ends sign-in; bad input is a clear
//! error that changes nothing; other roles are refused and recorded; another workspace's
//! member ids answer like unknown ones.

use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};

use crate::harness::eventually;
use crate::support::{request, Deployment, Reply, Stack};

const PASSWORD: &str = "correct horse battery staple";

struct Team<'a> {
    http: Client,
    dep: &'a Deployment,
}

impl Team<'_> {
    async fn call(&self, key: &str, method: Method, path: &str, body: Option<Value>) -> Reply {
        Reply::of(request(&self.http, &self.dep.svc, key, method, path, body)).await
    }

    /// Posts a console form (same origin); the answer's status and session cookie.
    async fn console_form(
        &self,
        path: &str,
        form: &[(&str, &str)],
    ) -> (StatusCode, Option<String>) {
        let answer = Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client")
            .post(self.dep.svc.url(path))
            .header("origin", self.dep.svc.url("").trim_end_matches('/'))
            .form(form)
            .send()
            .await
            .expect("console form");
        let cookie = answer
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|c| c.starts_with("authledger_session=") && !c.contains("Max-Age=0"))
            .and_then(|c| c.split(';').next())
            .map(str::to_string);
        (answer.status(), cookie)
    }

    async fn overview_status(&self, cookie: &str) -> StatusCode {
        Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client")
            .get(self.dep.svc.url("/console/"))
            .header("cookie", cookie)
            .send()
            .await
            .expect("overview")
            .status()
    }

    async fn sign_in(&self, email: &str) -> (StatusCode, Option<String>) {
        self.console_form(
            "/console/sign-in",
            &[
                ("workspace", self.dep.workspace.as_str()),
                ("email", email),
                ("password", PASSWORD),
            ],
        )
        .await
    }

    async fn audit(&self, kind: &str) -> Vec<Value> {
        let r = self
            .call(
                &self.dep.admin,
                Method::GET,
                &format!("/v1/audit/events?kind={kind}"),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        r.body["items"].as_array().cloned().unwrap_or_default()
    }
}

async fn members_flow(stack: Stack) {
    let dep = Deployment::start(stack, &[]).await;
    let team = Team {
        http: Client::new(),
        dep: &dep,
    };
    let admin = dep.admin.as_str();

    // Invite: the sign-up link is in this answer only.
    let invited = team
        .call(
            admin,
            Method::POST,
            "/v1/members",
            Some(json!({ "email": "Dana@Example.com ", "role": "developer" })),
        )
        .await;
    assert_eq!(invited.status, StatusCode::CREATED, "{}", invited.text);
    assert_eq!(invited.body["email"], "dana@example.com");
    assert_eq!(invited.body["status"], "invited");
    assert_eq!(invited.body["role"], "developer");
    let dana = invited.str("id");
    let link = invited.str("sign_up_url");
    let invite = link.split("invite=").nth(1).expect("an invite token");
    let listed = team.call(admin, Method::GET, "/v1/members", None).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);
    assert!(
        !listed.text.contains(invite),
        "the link is shown once: {}",
        listed.text
    );
    let emails: Vec<&str> = listed.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|m| m["email"].as_str())
        .collect();
    assert_eq!(emails, ["admin@example.com", "dana@example.com"]);

    // Dana joins through the console: active, signed in.
    let (status, cookie) = team
        .console_form(
            "/console/sign-up",
            &[("invite", invite), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let cookie = cookie.expect("a session");
    assert_eq!(team.overview_status(&cookie).await, StatusCode::OK);
    let path = format!("/v1/members/{dana}");
    let joined = team.call(admin, Method::GET, &path, None).await;
    assert_eq!(joined.body["status"], "active", "{}", joined.text);
    assert!(joined.body["joined_at"].is_string(), "{}", joined.text);
    assert!(
        joined.body["last_signed_in_at"].is_string(),
        "{}",
        joined.text
    );
    let again = team
        .call(
            admin,
            Method::POST,
            "/v1/members",
            Some(json!({ "email": "dana@example.com", "role": "admin" })),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.text);

    bad_input_changes_nothing(&team, &path).await;

    // A new role ends the session at once.
    let changed = team
        .call(
            admin,
            Method::PATCH,
            &path,
            Some(json!({ "role": "viewer" })),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.text);
    assert_eq!(changed.body["role"], "viewer");
    assert_eq!(team.overview_status(&cookie).await, StatusCode::SEE_OTHER);
    let (status, viewer_cookie) = team.sign_in("dana@example.com").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(viewer_cookie.is_some(), "dana signs in again as a viewer");

    // No second factor to reset: refused, nothing recorded as a reset.
    let reset = team
        .call(
            admin,
            Method::POST,
            &format!("{path}/second-factor/reset"),
            None,
        )
        .await;
    assert_eq!(reset.status, StatusCode::CONFLICT, "{}", reset.text);

    other_roles_and_workspaces_are_refused(&team, &dana).await;

    // Removal: gone from the list, 404 after, and no more sign-in.
    let removed = team.call(admin, Method::DELETE, &path, None).await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT, "{}", removed.text);
    let gone = team.call(admin, Method::GET, &path, None).await;
    gone.expect(StatusCode::NOT_FOUND, "not-found");
    let listed = team.call(admin, Method::GET, "/v1/members", None).await;
    assert!(!listed.text.contains("dana@"), "{}", listed.text);
    let (status, cookie) = team.sign_in("dana@example.com").await;
    assert_ne!(status, StatusCode::SEE_OTHER);
    assert!(cookie.is_none());

    // Workspace settings: the two-step rule set once, a repeated PUT writes nothing.
    for _ in 0..2 {
        let r = team
            .call(
                admin,
                Method::PUT,
                "/v1/workspace/second-factor-requirement",
                Some(json!({ "required": true })),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.body, json!({ "required": true }));
    }
    let set = team.audit("workspace.second_factor_requirement_set").await;
    assert_eq!(set.len(), 1, "{set:?}");
    // So for the other workspace settings.
    for (path, body, kind) in [
        (
            "/v1/workspace/tool-response-storage",
            json!({ "store_tool_responses": true }),
            "workspace.tool_response_storage_set",
        ),
        (
            "/v1/workspace/agent-connect-flows",
            json!({ "any_user": true }),
            "workspace.agent_connect_flows_set",
        ),
    ] {
        for _ in 0..2 {
            let r = team
                .call(admin, Method::PUT, path, Some(body.clone()))
                .await;
            assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text);
        }
        let set = team.audit(kind).await;
        assert_eq!(set.len(), 1, "{kind}: {set:?}");
    }

    // Each change is an event with the admin key as actor.
    for kind in ["member.invited", "member.role_changed", "member.removed"] {
        let events = team.audit(kind).await;
        assert!(
            events
                .iter()
                .any(|e| e["aggregate"]["id"] == dana.as_str() && e["actor"]["type"] == "api_key"),
            "{kind}: {events:?}"
        );
    }
}

/// Malformed JSON, wrong types, unknown fields, an agent's role and a bad email: each a
/// clear error; the member is as before.
async fn bad_input_changes_nothing(team: &Team<'_>, path: &str) {
    let admin = team.dep.admin.as_str();
    let before = team.call(admin, Method::GET, path, None).await;
    let malformed = Reply::of(
        team.http
            .patch(team.dep.svc.url(path))
            .bearer_auth(admin)
            .header("content-type", "application/json")
            .body("{\"role\": "),
    )
    .await;
    assert_eq!(
        malformed.status,
        StatusCode::BAD_REQUEST,
        "{}",
        malformed.text
    );
    for body in [
        json!({ "role": 5 }),
        json!({ "role": "owner" }),
        json!({ "role": "viewer", "email": "x@example.com" }),
    ] {
        let r = team
            .call(admin, Method::PATCH, path, Some(body.clone()))
            .await;
        assert!(
            r.status == StatusCode::BAD_REQUEST || r.status == StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {} {}",
            r.status,
            r.text
        );
    }
    let agent = team
        .call(admin, Method::PATCH, path, Some(json!({ "role": "agent" })))
        .await;
    assert_eq!(
        agent.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        agent.text
    );
    for email in ["not an email", "", "a@b"] {
        let r = team
            .call(
                admin,
                Method::POST,
                "/v1/members",
                Some(json!({ "email": email, "role": "viewer" })),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{email}: {}",
            r.text
        );
    }
    let after = team.call(admin, Method::GET, path, None).await;
    assert_eq!(before.body, after.body);
}

/// A developer's and an auditor's keys are refused and recorded; another workspace's admin
/// gets 404 for this workspace's member, as for an unknown id, and changes nothing.
async fn other_roles_and_workspaces_are_refused(team: &Team<'_>, dana: &str) {
    let admin = team.dep.admin.as_str();
    let path = format!("/v1/members/{dana}");
    for role in ["developer", "auditor"] {
        let key = team
            .call(
                admin,
                Method::POST,
                "/v1/api-keys",
                Some(json!({ "name": role, "role": role })),
            )
            .await;
        let key = key.str("key");
        let r = team.call(&key, Method::GET, "/v1/members", None).await;
        r.expect(StatusCode::FORBIDDEN, "forbidden");
        let r = team
            .call(&key, Method::PATCH, &path, Some(json!({ "role": "admin" })))
            .await;
        r.expect(StatusCode::FORBIDDEN, "forbidden");
    }
    eventually(
        std::time::Duration::from_secs(10),
        "the refusals in the audit view",
        || async {
            team.audit("access.denied")
                .await
                .iter()
                .filter(|e| e["reason"] == "role_not_permitted" && e["actor"]["type"] == "api_key")
                .count()
                >= 4
        },
    )
    .await;

    let other = team.dep.other_workspace("other").await;
    for (method, body) in [
        (Method::GET, None),
        (Method::PATCH, Some(json!({ "role": "admin" }))),
        (Method::DELETE, None),
    ] {
        let r = team.call(&other, method.clone(), &path, body).await;
        r.expect(StatusCode::NOT_FOUND, "not-found");
    }
    let unknown = team
        .call(
            admin,
            Method::GET,
            "/v1/members/0123456789abcdef0123456789abcdef",
            None,
        )
        .await;
    unknown.expect(StatusCode::NOT_FOUND, "not-found");
    let still = team.call(admin, Method::GET, &path, None).await;
    assert_eq!(still.body["role"], "viewer", "{}", still.text);
}

#[tokio::test(flavor = "multi_thread")]
async fn members_are_managed_through_the_api_embedded() {
    members_flow(Stack::Embedded).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn members_are_managed_through_the_api_jetstream_pg() {
    members_flow(Stack::JetStreamPg).await;
}

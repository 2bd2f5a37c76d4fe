//! Token release (`POST /v1/connections/{id}/access-token`) end to end: the real `serve`
//! binary, the real local OAuth provider, connections made through the connect flow.
//! Covers the opt-in (off by default, `PATCH` turns it on, audited as a change), the answer
//! (`no-store`, a token the provider really issued), the `credential.released` event (the
//! connection and the sealed token's fingerprint, never the token), refresh before release
//! of a near-expiry token, and the refusals (another workspace's id answers like an unknown
//! id, viewers, non-OAuth auth configs).

use std::time::Duration;

use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};

use crate::fixtures::oauth_provider::OAuthProvider;
use crate::harness::eventually;
use crate::support::{
    self, bootstrap_workspace, complete_connect, log_events, oauth_config_body, request,
    Deployment, Stack, BASE_ENV, PROBLEMS, RETURN_TO,
};

const CLIENT_ID: &str = "release-client";
const CLIENT_SECRET: &str = "rel3ase-cl1ent-s3cret";
/// The service refreshes a token this close to its expiry before using it.
const REFRESH_BUFFER_SECS: u64 = 300;

/// An answer with its `Cache-Control` (a released token must never be cached).
struct Reply {
    status: StatusCode,
    cache_control: Option<String>,
    text: String,
    body: Value,
}

impl From<support::Reply> for Reply {
    fn from(r: support::Reply) -> Reply {
        Reply {
            status: r.status,
            cache_control: r
                .headers
                .get("cache-control")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            text: r.text,
            body: r.body,
        }
    }
}

/// A serve process with its admin key, and an HTTP client.
struct Env {
    d: Deployment,
    http: Client,
}

impl std::ops::Deref for Env {
    type Target = Deployment;
    fn deref(&self) -> &Deployment {
        &self.d
    }
}

impl Env {
    async fn start() -> Env {
        let buffer = REFRESH_BUFFER_SECS.to_string();
        let envs = [
            BASE_ENV,
            &[("AUTHLEDGER_REFRESH_BUFFER_SECS", buffer.as_str())],
        ]
        .concat();
        Env {
            d: Deployment::start(Stack::Embedded, &envs).await,
            http: Client::new(),
        }
    }

    async fn call(&self, key: &str, method: Method, path: &str, body: Option<Value>) -> Reply {
        support::Reply::of(request(&self.http, &self.svc, key, method, path, body))
            .await
            .into()
    }

    async fn post(&self, key: &str, path: &str, body: Value) -> Value {
        let r = self.call(key, Method::POST, path, Some(body.clone())).await;
        assert!(
            r.status.is_success(),
            "POST {path} {body}: {} {}",
            r.status,
            r.text
        );
        r.body
    }

    async fn get(&self, key: &str, path: &str) -> Value {
        let r = self.call(key, Method::GET, path, None).await;
        assert_eq!(r.status, StatusCode::OK, "GET {path}: {}", r.text);
        r.body
    }

    /// A new API key of `role` in `admin`'s workspace: (id, key).
    async fn key_of(&self, admin: &str, role: &str) -> (String, String) {
        let v = self
            .post(
                admin,
                "/v1/api-keys",
                json!({ "name": format!("{role} key"), "role": role }),
            )
            .await;
        (
            v["id"].as_str().expect("id").to_string(),
            v["key"].as_str().expect("key").to_string(),
        )
    }

    async fn release(&self, key: &str, connection_id: &str) -> Reply {
        self.call(
            key,
            Method::POST,
            &format!("/v1/connections/{connection_id}/access-token"),
            None,
        )
        .await
    }

    /// A second workspace (bootstrapped by the CLI on the same log): its admin key.
    async fn other_workspace(&self) -> String {
        let key = bootstrap_workspace(&self.storage, "Other").await;
        eventually(Duration::from_secs(15), "the other workspace", || async {
            self.call(&key, Method::GET, "/v1/workspace", None)
                .await
                .status
                == StatusCode::OK
        })
        .await;
        key
    }

    /// Every event so far, as signed: (position, kind, whole body JSON), from the log.
    async fn events(&self) -> Vec<(u64, String, Value)> {
        log_events(self.dir.path())
            .await
            .into_iter()
            .map(|(position, body)| {
                let whole = serde_json::to_value(&body).expect("body json");
                (position, body.kind, whole)
            })
            .collect()
    }

    async fn events_of(&self, kind: &str) -> Vec<(u64, Value)> {
        self.events()
            .await
            .into_iter()
            .filter(|(_, k, _)| k == kind)
            .map(|(p, _, b)| (p, b))
            .collect()
    }

    /// The serve process's own output so far (stdout and stderr).
    fn service_output(&self) -> String {
        let mut all = String::new();
        for entry in std::fs::read_dir(self.dir.path()).expect("dir") {
            let path = entry.expect("entry").path();
            if path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("serve-"))
            {
                all.push_str(&std::fs::read_to_string(&path).unwrap_or_default());
            }
        }
        all
    }
}

/// The test provider with our client registered.
async fn provider(env: &Env) -> OAuthProvider {
    support::provider_for(&env.svc, CLIENT_ID, CLIENT_SECRET).await
}

/// An oauth2 auth config at the provider, created by `admin` (`token_release` as given, or
/// left out).
async fn oauth_config(
    env: &Env,
    admin: &str,
    provider: &OAuthProvider,
    token_release: Option<bool>,
) -> String {
    let mut body = oauth_config_body(provider, CLIENT_ID, CLIENT_SECRET);
    if let Some(on) = token_release {
        body["token_release"] = json!(on);
    }
    let v = env.post(admin, "/v1/auth-configs", body).await;
    v["id"].as_str().expect("id").to_string()
}

/// The connect flow for `user_id`, by `admin`: initiate, consent at the provider, callback.
async fn connect(
    env: &Env,
    admin: &str,
    provider: &OAuthProvider,
    auth_config_id: &str,
    user_id: &str,
) -> String {
    let v = env
        .post(
            admin,
            "/v1/connections",
            json!({ "auth_config_id": auth_config_id, "user_id": user_id, "redirect_url": RETURN_TO }),
        )
        .await;
    let id = v["id"].as_str().expect("id").to_string();
    complete_connect(provider, v["connect_url"].as_str().expect("connect_url")).await;
    id
}

/// The access-token fingerprint an event of `kind` sealed for `connection_id`.
fn sealed_fingerprint(events: &[(u64, String, Value)], kind: &str, connection_id: &str) -> String {
    let found: Vec<&Value> = events
        .iter()
        .filter(|(_, k, b)| k == kind && b["aggregate_id"] == connection_id)
        .map(|(_, _, b)| b)
        .collect();
    assert_eq!(found.len(), 1, "one {kind} of {connection_id}: {found:#?}");
    found[0]["payload"]["tokens"]["access_token"]["fingerprint"]
        .as_str()
        .unwrap_or_else(|| panic!("fingerprint in {}", found[0]))
        .to_string()
}

fn expires_at(reply: &Reply) -> time::OffsetDateTime {
    time::OffsetDateTime::parse(
        reply.body["expires_at"].as_str().expect("expires_at"),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("RFC 3339")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_release_is_opt_in_audited_and_refreshes_a_near_expiry_token_first() {
    let env = Env::start().await;
    let provider = provider(&env).await;
    let config = oauth_config(&env, &env.admin, &provider, None).await;
    let alice = connect(&env, &env.admin, &provider, &config, "alice").await;
    let (agent_id, agent) = env.key_of(&env.admin, "agent").await;
    let (_, developer) = env.key_of(&env.admin, "developer").await;
    let (_, auditor) = env.key_of(&env.admin, "auditor").await;

    // Off by default: refused, and nothing is released.
    let shown = env
        .get(&env.admin, &format!("/v1/auth-configs/{config}"))
        .await;
    assert_eq!(shown["settings"]["token_release"], json!(false), "{shown}");
    let r = env.release(&agent, &alice).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert_eq!(
        r.body["type"],
        format!("{PROBLEMS}token-release-disabled"),
        "{}",
        r.text
    );
    assert!(r.body.get("access_token").is_none(), "{}", r.text);
    assert!(env.events_of("credential.released").await.is_empty());

    // Turned on: one auth_config.updated naming the change.
    let patched = env
        .call(
            &env.admin,
            Method::PATCH,
            &format!("/v1/auth-configs/{config}"),
            Some(json!({ "token_release": true })),
        )
        .await;
    assert!(patched.status.is_success(), "{}", patched.text);
    let updated = env.events_of("auth_config.updated").await;
    assert_eq!(updated.len(), 1, "{updated:#?}");
    let payload = &updated[0].1["payload"];
    assert_eq!(updated[0].1["aggregate_id"], config.as_str());
    assert_eq!(payload["changed"], json!(["token_release"]), "{payload}");
    assert_eq!(payload["token_release"], json!(true), "{payload}");
    let shown = env
        .get(&env.admin, &format!("/v1/auth-configs/{config}"))
        .await;
    assert_eq!(shown["settings"]["token_release"], json!(true), "{shown}");

    // Released to an agent: the provider's live token for alice's grant, never cached.
    let before = provider.counters();
    let r = env.release(&agent, &alice).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.cache_control.as_deref(), Some("no-store"));
    let token = r.body["access_token"]
        .as_str()
        .expect("access_token")
        .to_string();
    assert_eq!(r.body["token_type"], "Bearer", "{}", r.text);
    assert_eq!(r.body["connection_id"], alice.as_str(), "{}", r.text);
    let left = expires_at(&r) - time::OffsetDateTime::now_utc();
    assert!(
        left > time::Duration::minutes(50) && left <= time::Duration::minutes(61),
        "the provider's one-hour token: {left}"
    );
    let info = provider
        .token_info(&token)
        .expect("a token the provider issued");
    assert!(info.active, "{info:?}");
    assert_eq!(
        (info.client_id.as_str(), info.user_id.as_str()),
        (CLIENT_ID, "user-1")
    );
    assert!(provider.is_active(&token));
    // Far from expiry: released as it is, no refresh; developers and admins may ask too.
    for key in [&developer, &env.admin] {
        let again = env.release(key, &alice).await;
        assert_eq!(again.status, StatusCode::OK, "{}", again.text);
        assert_eq!(again.body["access_token"], token.as_str());
    }
    let after = provider.counters();
    assert_eq!(
        (after.refresh_requests, after.tokens_issued),
        (before.refresh_requests, before.tokens_issued),
        "nothing refreshed"
    );

    // Each release is a credential.released event: the connection and the sealed token's
    // fingerprint, never the token.
    let events = env.events().await;
    let authorized_fp = sealed_fingerprint(&events, "connection.authorized", &alice);
    let released: Vec<&Value> = events
        .iter()
        .filter(|(_, k, _)| k == "credential.released")
        .map(|(_, _, b)| b)
        .collect();
    assert_eq!(released.len(), 3, "{released:#?}");
    for b in &released {
        let p = &b["payload"];
        assert_eq!(p["connection_id"], alice.as_str(), "{b}");
        assert_eq!(p["auth_config_id"], config.as_str(), "{b}");
        assert_eq!(p["user_id"], "alice", "{b}");
        assert_eq!(p["fingerprint"], authorized_fp.as_str(), "{b}");
        assert!(p["expires_at"].is_string(), "{b}");
    }
    assert_eq!(
        released[0]["actor"]["id"],
        agent_id.as_str(),
        "{}",
        released[0]
    );
    for (_, kind, b) in &events {
        assert!(!b.to_string().contains(&token), "{kind} holds the token");
    }
    // The audit view (auditors read it): the same, and no token anywhere in it.
    let listed = env
        .call(
            &auditor,
            Method::GET,
            "/v1/audit/events?kind=credential.released&order=asc",
            None,
        )
        .await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);
    let items = listed.body["items"].as_array().expect("items");
    assert_eq!(items.len(), 3, "{}", listed.text);
    assert!(!listed.text.contains(&token));
    for item in items {
        assert_eq!(item["kind"], "credential.released");
        assert_eq!(item["connection_id"], alice.as_str(), "{item}");
        assert_eq!(item["auth_config_id"], config.as_str(), "{item}");
        assert_eq!(item["outcome"], "released", "{item}");
        let id = item["event_id"].as_str().expect("event_id");
        let one = env
            .call(
                &auditor,
                Method::GET,
                &format!("/v1/audit/events/{id}"),
                None,
            )
            .await;
        assert_eq!(one.status, StatusCode::OK, "{}", one.text);
        assert_eq!(
            one.body["body"]["payload"]["fingerprint"],
            authorized_fp.as_str(),
            "{}",
            one.text
        );
        assert!(
            !one.text.contains(&token),
            "the signed event holds the token"
        );
    }

    // Near expiry (the provider now issues 60 s tokens, inside the 300 s buffer): refreshed
    // first, and the released token is the refreshed one.
    provider.set_access_token_ttl(Duration::from_secs(60));
    provider.set_user("user-2");
    let bob = connect(&env, &env.admin, &provider, &config, "bob").await;
    let before = provider.counters();
    let r = env.release(&agent, &bob).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let after = provider.counters();
    assert_eq!(after.refreshes, before.refreshes + 1, "one refresh");
    assert_eq!(after.tokens_issued, before.tokens_issued + 1);
    let fresh = r.body["access_token"].as_str().expect("token").to_string();
    assert_ne!(fresh, token);
    let info = provider.token_info(&fresh).expect("issued by the provider");
    assert!(info.active, "{info:?}");
    assert_eq!(info.user_id, "user-2", "bob's grant");
    let left = expires_at(&r) - time::OffsetDateTime::now_utc();
    assert!(left <= time::Duration::seconds(60), "{left}");
    let events = env.events().await;
    let authorized = sealed_fingerprint(&events, "connection.authorized", &bob);
    let refreshed = sealed_fingerprint(&events, "connection.refreshed", &bob);
    assert_ne!(authorized, refreshed);
    let released_at = |events: &[(u64, String, Value)]| -> Vec<(u64, String)> {
        events
            .iter()
            .filter(|(_, k, b)| {
                k == "credential.released" && b["payload"]["connection_id"] == bob.as_str()
            })
            .map(|(p, _, b)| {
                (
                    *p,
                    b["payload"]["fingerprint"]
                        .as_str()
                        .expect("fp")
                        .to_string(),
                )
            })
            .collect()
    };
    let bob_released = released_at(&events);
    assert_eq!(bob_released.len(), 1, "{bob_released:?}");
    assert_eq!(
        bob_released[0].1, refreshed,
        "the refreshed token was released"
    );
    let refreshed_at = events
        .iter()
        .find(|(_, k, b)| k == "connection.refreshed" && b["aggregate_id"] == bob.as_str())
        .map(|(p, _, _)| *p)
        .expect("refreshed");
    assert!(
        refreshed_at < bob_released[0].0,
        "refreshed before released"
    );
    for (_, kind, b) in &events {
        assert!(!b.to_string().contains(&fresh), "{kind} holds the token");
    }
    // Neither token ever reached the service's own output.
    let output = env.service_output();
    assert!(!output.contains(&token) && !output.contains(&fresh));

    // Turned off again: refused again, nothing more released.
    let patched = env
        .call(
            &env.admin,
            Method::PATCH,
            &format!("/v1/auth-configs/{config}"),
            Some(json!({ "token_release": false })),
        )
        .await;
    assert!(patched.status.is_success(), "{}", patched.text);
    let updated = env.events_of("auth_config.updated").await;
    assert_eq!(updated.len(), 2, "{updated:#?}");
    assert_eq!(updated[1].1["payload"]["changed"], json!(["token_release"]));
    // Off is the absence of the field in the signed form.
    assert!(
        updated[1].1["payload"].get("token_release").is_none(),
        "{}",
        updated[1].1
    );
    let released = env.events_of("credential.released").await.len();
    let r = env.release(&agent, &alice).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert_eq!(r.body["type"], format!("{PROBLEMS}token-release-disabled"));
    assert_eq!(env.events_of("credential.released").await.len(), released);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_release_refuses_other_workspaces_viewers_and_non_oauth_connections() {
    let env = Env::start().await;
    let provider = provider(&env).await;
    let (_, agent) = env.key_of(&env.admin, "agent").await;
    let (_, viewer) = env.key_of(&env.admin, "viewer").await;
    let config = oauth_config(&env, &env.admin, &provider, Some(true)).await;
    let shown = env
        .get(&env.admin, &format!("/v1/auth-configs/{config}"))
        .await;
    assert_eq!(shown["settings"]["token_release"], json!(true), "{shown}");
    let mine = connect(&env, &env.admin, &provider, &config, "alice").await;

    // Another workspace's connection, releasable there, answers exactly like an unknown id.
    let other_admin = env.other_workspace().await;
    let other_config = oauth_config(&env, &other_admin, &provider, Some(true)).await;
    let theirs = connect(&env, &other_admin, &provider, &other_config, "carol").await;
    let own = env.release(&other_admin, &theirs).await;
    assert_eq!(own.status, StatusCode::OK, "their own admin: {}", own.text);
    let their_token = own.body["access_token"]
        .as_str()
        .expect("token")
        .to_string();
    let unknown = uuid::Uuid::now_v7().to_string();
    let elsewhere = env.release(&agent, &theirs).await;
    let nowhere = env.release(&agent, &unknown).await;
    assert_eq!(
        elsewhere.status,
        StatusCode::NOT_FOUND,
        "{}",
        elsewhere.text
    );
    assert_eq!(elsewhere.body["type"], format!("{PROBLEMS}not-found"));
    assert_eq!(
        (elsewhere.status, &elsewhere.text, &elsewhere.cache_control),
        (nowhere.status, &nowhere.text, &nowhere.cache_control)
    );
    assert!(!elsewhere.text.contains(&their_token));
    // The reach into another workspace is audited; the unknown id is not.
    let denials: Vec<Value> = env
        .events_of("access.denied")
        .await
        .into_iter()
        .map(|(_, b)| b["payload"].clone())
        .collect();
    let reaching: Vec<&Value> = denials
        .iter()
        .filter(|d| d["target_id"] == theirs.as_str())
        .collect();
    assert_eq!(reaching.len(), 1, "{denials:#?}");
    assert_eq!(reaching[0]["reason"], "other_workspace");
    assert_eq!(reaching[0]["status"], 404);
    assert_eq!(reaching[0]["route"], "/v1/connections/{id}/access-token");
    assert!(!denials.iter().any(|d| d["target_id"] == unknown.as_str()));

    // Viewers (and auditors) may not release.
    let (_, auditor) = env.key_of(&env.admin, "auditor").await;
    for key in [&viewer, &auditor] {
        let r = env.release(key, &mine).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
        assert!(r.body.get("access_token").is_none(), "{}", r.text);
    }

    // A non-OAuth auth config holds no access token to release, even opted in.
    let api_key_config = env
        .post(
            &env.admin,
            "/v1/auth-configs",
            json!({ "name": "Keyed", "provider": "custom", "auth_type": "api_key",
                    "api_key": { "key_name": "X-Api-Key", "location": "header", "prefix": null },
                    "token_release": true }),
        )
        .await["id"]
        .as_str()
        .expect("id")
        .to_string();
    let keyed = env
        .post(
            &env.admin,
            "/v1/connections",
            json!({ "auth_config_id": api_key_config, "user_id": "alice",
                    "credentials": { "api_key": "upstream-k3y-0001" } }),
        )
        .await;
    assert_eq!(keyed["status"], "active", "{keyed}");
    let keyed = keyed["id"].as_str().expect("id").to_string();
    let r = env.release(&agent, &keyed).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(r.body["type"], format!("{PROBLEMS}validation-failed"));
    assert!(!r.text.contains("upstream-k3y-0001"));

    // A key bound to a gateway that does not cover the auth config: outside-gateway,
    // audited.
    env.post(
        &env.admin,
        "/v1/tools",
        json!({
            "name": "example.ping", "provider": "custom", "description": "Ping",
            "method": "GET", "base_url": provider.base_url(), "path": "/api/me",
            "parameters": { "type": "object", "properties": {}, "additionalProperties": false },
            "required_scopes": [], "risk": "read",
        }),
    )
    .await;
    let (bound_id, bound) = env.key_of(&env.admin, "agent").await;
    env.post(
        &env.admin,
        "/v1/gateways",
        json!({ "name": "keyed only",
                "servers": [{ "auth_config_id": api_key_config, "tools": ["example.ping"] }],
                "agent_key_ids": [bound_id] }),
    )
    .await;
    let r = env.release(&bound, &mine).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert_eq!(r.body["type"], format!("{PROBLEMS}outside-gateway"));
    let denied = env.events_of("access.denied").await;
    let last = &denied.last().expect("a denial").1["payload"];
    assert_eq!(
        (&last["reason"], &last["target_id"]),
        (&json!("outside_gateway"), &json!(mine)),
        "{last}"
    );

    // A refusal comes before connect on demand: on an inactive connection, an auth config
    // that does not release tokens (or a key whose gateway does not cover it) is refused as
    // such, and no connect flow is started for a caller who could not have the token anyway.
    let closed_config = oauth_config(&env, &env.admin, &provider, None).await;
    let revoked = connect(&env, &env.admin, &provider, &closed_config, "dave").await;
    let r = env
        .call(
            &env.admin,
            Method::POST,
            &format!("/v1/connections/{revoked}/revoke"),
            None,
        )
        .await;
    assert!(r.status.is_success(), "{}", r.text);
    let initiated = env.events_of("connection.initiated").await.len();
    let r = env.release(&agent, &revoked).await;
    assert_eq!(
        (r.status, &r.body["type"]),
        (
            StatusCode::FORBIDDEN,
            &json!(format!("{PROBLEMS}token-release-disabled"))
        ),
        "{}",
        r.text
    );
    let r = env.release(&bound, &revoked).await;
    assert_eq!(
        (r.status, &r.body["type"]),
        (
            StatusCode::FORBIDDEN,
            &json!(format!("{PROBLEMS}outside-gateway"))
        ),
        "{}",
        r.text
    );
    assert_eq!(
        env.events_of("connection.initiated").await.len(),
        initiated,
        "no connect flow started"
    );

    // The only release is their admin's own.
    let released = env.events_of("credential.released").await;
    assert_eq!(released.len(), 1, "{released:#?}");
    assert_eq!(released[0].1["payload"]["connection_id"], theirs.as_str());
    // The one that worked still works for its owner: nothing was disturbed.
    assert_eq!(env.release(&agent, &mine).await.status, StatusCode::OK);
}

//! A connect link completes only the connection of the person it names (issue 20), over
//! HTTP against a real `serve`, a real local OIDC provider (the workspace's end users sign
//! in with it) and a real local OAuth provider, on both stacks.
//!
//! With browser sign-in set up for end users, a hosted link for Alice sends a browser without
//! a session to sign in first (and back to the link after); Bob signed in gets "for someone
//! else" and the attempt is recorded (`other_user`); Alice gets the form and connects. An
//! OAuth link is an authledger page, not the provider's URL: Bob is refused there too;
//! Alice is sent on to the provider with the flow's binding in her browser; the provider's
//! redirect back completes nothing without that binding (or with a forged one) and the
//! connection with it.

use reqwest::{Client, StatusCode, Url};
use serde_json::{json, Value};

use crate::fixtures::oauth_provider::no_redirect_client;
use crate::fixtures::oidc_provider::{OidcClient, OidcConfig, OidcProvider, OidcUser};
use crate::harness::eventually;
use crate::support::{
    oauth_config_body, provider_for, Deployment, Stack, BASE_ENV, NO_RATE_LIMIT, RETURN_TO,
};

const CLIENT_ID: &str = "authledger-me";
const CLIENT_SECRET: &str = "me-client-secret-bound-5e1";
const KEY: &str = "alice-crm-key-SECRET-bound";

fn location(r: &reqwest::Response) -> String {
    r.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .expect("a redirect")
        .to_string()
}

/// `name=value` of a `Set-Cookie` whose name starts with `prefix`.
fn cookie_of(r: &reqwest::Response, prefix: &str) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(prefix))
        .and_then(|v| v.split(';').next())
        .map(str::to_string)
}

fn form_value(page: &str, name: &str) -> String {
    let at = page
        .find(&format!("name=\"{name}\" value=\""))
        .unwrap_or_else(|| panic!("no {name} in {page}"));
    let rest = &page[at + name.len() + 15..];
    rest[..rest.find('"').expect("end of value")].to_string()
}

struct Scene {
    dep: Deployment,
    idp: OidcProvider,
    http: Client,
}

impl Scene {
    async fn start(stack: Stack) -> Scene {
        let envs: Vec<(&str, &str)> = [BASE_ENV, NO_RATE_LIMIT].concat();
        let dep = Deployment::start(stack, &envs).await;
        let idp = OidcProvider::start(OidcConfig {
            users: vec![
                OidcUser::new("alice@example.com", "sub-alice"),
                OidcUser::new("bob@example.com", "sub-bob"),
            ],
            ..OidcConfig::default()
        })
        .await;
        idp.register(OidcClient {
            client_id: CLIENT_ID.into(),
            client_secret: CLIENT_SECRET.into(),
            redirect_uris: vec![dep.svc.url("/me/callback")],
        });
        let scene = Scene {
            dep,
            idp,
            http: no_redirect_client(),
        };
        let issuer = scene.idp.issuer.clone();
        scene
            .admin(
                reqwest::Method::PUT,
                "/v1/workspace/identity-provider",
                json!({ "issuer": issuer, "audience": "bound-links",
                        "jwks_url": format!("{issuer}/jwks"),
                        "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET }),
            )
            .await;
        scene
    }

    async fn admin(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let r = Client::new()
            .request(method, self.dep.svc.url(path))
            .bearer_auth(&self.dep.admin)
            .json(&body)
            .send()
            .await
            .expect("request");
        let status = r.status();
        let text = r.text().await.expect("body");
        assert!(status.is_success(), "{path}: {status} {text}");
        serde_json::from_str(&text).expect("json")
    }

    async fn get(&self, url: &str, cookies: &[&str]) -> reqwest::Response {
        let mut r = self.http.get(url);
        if !cookies.is_empty() {
            r = r.header("cookie", cookies.join("; "));
        }
        r.send().await.expect("GET")
    }

    /// Signs `email` in through the provider from the sign-in page `sign_in` (a path with
    /// `workspace` and `next`): the session cookie, and where the callback sent the browser.
    async fn sign_in(&self, sign_in: &str, email: &str) -> (String, String) {
        let page = self.get(&self.dep.svc.url(sign_in), &[]).await;
        assert_eq!(page.status(), StatusCode::OK);
        let page = page.text().await.expect("page");
        let start = page
            .split("id=\"me-sign-in-button\" href=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .expect("the sign-in button")
            .replace("&#38;", "&")
            .replace("&amp;", "&");
        let started = self.get(&self.dep.svc.url(&start), &[]).await;
        assert_eq!(started.status(), StatusCode::SEE_OTHER);
        let flow = cookie_of(&started, "authledger_me_flow=").expect("flow cookie");
        let authorize = Url::parse(&location(&started)).expect("authorize URL");
        let mut login: Vec<(String, String)> = authorize.query_pairs().into_owned().collect();
        login.push(("email".into(), email.into()));
        login.push(("action".into(), "login".into()));
        let back = self
            .http
            .post(format!("{}/authorize", self.idp.issuer))
            .form(&login)
            .send()
            .await
            .expect("provider login");
        assert_eq!(back.status(), StatusCode::SEE_OTHER);
        let callback = self.get(&location(&back), &[&flow]).await;
        assert_eq!(callback.status(), StatusCode::SEE_OTHER);
        let session = cookie_of(&callback, "authledger_me=").expect("session cookie");
        (session, location(&callback))
    }

    /// Waits for an `access.denied` with `reason` by end user `user`.
    async fn denied(&self, reason: &str, user: &str) {
        let url = self
            .dep
            .svc
            .url("/v1/audit/events?kind=access.denied&limit=200");
        eventually(
            std::time::Duration::from_secs(10),
            "the refusal recorded",
            || async {
                let r = Client::new()
                    .get(&url)
                    .bearer_auth(&self.dep.admin)
                    .send()
                    .await
                    .expect("audit");
                let body: Value = r.json().await.expect("json");
                body["items"].as_array().is_some_and(|items| {
                    items
                        .iter()
                        .any(|e| e["reason"] == reason && e["actor"]["id"] == user)
                })
            },
        )
        .await;
    }
}

async fn bound_links(stack: Stack) {
    let s = Scene::start(stack).await;
    let svc = s.dep.svc.url("");
    let svc = svc.trim_end_matches('/');

    // A hosted link for Alice.
    let config = s
        .admin(
            reqwest::Method::POST,
            "/v1/auth-configs",
            json!({ "name": "CRM", "provider": "custom", "auth_type": "api_key",
                    "api_key": { "key_name": "x-api-key", "location": "header" } }),
        )
        .await;
    let created = s
        .admin(
            reqwest::Method::POST,
            "/v1/connections",
            json!({ "auth_config_id": config["id"], "user_id": "sub-alice" }),
        )
        .await;
    let link = created["connect_url"].as_str().expect("connect_url");
    let path = link.strip_prefix(svc).expect("an authledger page");
    assert!(path.starts_with("/connect/"), "{link}");

    // No session: sign in first, then back to the link.
    let r = s.get(link, &[]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let sign_in = location(&r);
    assert!(sign_in.starts_with("/me/sign-in?"), "{sign_in}");
    let (bob, back) = s.sign_in(&sign_in, "bob@example.com").await;
    assert_eq!(back, path, "the sign-in returns to the link");

    // Bob: not his link.
    let r = s.get(link, &[&bob]).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let text = r.text().await.expect("page");
    assert!(text.contains("for someone else"), "{text}");
    assert!(!text.contains("x-api-key"), "no form for Bob");
    s.denied("other_user", "sub-bob").await;

    // Alice: the form, and connected.
    let (alice, back) = s.sign_in(&sign_in, "alice@example.com").await;
    assert_eq!(back, path);
    let r = s.get(link, &[&alice]).await;
    assert_eq!(r.status(), StatusCode::OK);
    let nonce = cookie_of(&r, "authledger_connect=").expect("CSRF cookie");
    let page = r.text().await.expect("page");
    let csrf = form_value(&page, "csrf");
    // Bob cannot post into Alice's form either, even with a CSRF pair of his own.
    let post = |who: String| {
        s.http
            .post(link)
            .header("cookie", format!("{who}; {nonce}"))
            .header("origin", svc)
            .form(&[
                ("csrf", csrf.as_str()),
                ("action", "connect"),
                ("api_key", KEY),
            ])
            .send()
    };
    let r = post(bob.clone()).await.expect("Bob's post");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = post(alice.clone()).await.expect("Alice's post");
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(location(&r).contains("status=active"), "{}", location(&r));

    // An OAuth link: an authledger page, never the provider's URL itself.
    let provider = provider_for(&s.dep.svc, "bound-client", "bound-secret").await;
    let oauth = s
        .admin(
            reqwest::Method::POST,
            "/v1/auth-configs",
            oauth_config_body(&provider, "bound-client", "bound-secret"),
        )
        .await;
    let created = s
        .admin(
            reqwest::Method::POST,
            "/v1/connections",
            json!({ "auth_config_id": oauth["id"], "user_id": "sub-alice",
                    "redirect_url": RETURN_TO }),
        )
        .await;
    let link = created["connect_url"].as_str().expect("connect_url");
    assert!(link.starts_with(&format!("{svc}/connect/")), "{link}");
    let r = s.get(link, &[&bob]).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    // Alice: on to the provider, the flow's binding left in her browser.
    let r = s.get(link, &[&alice]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let binding = cookie_of(&r, "authledger_bind_").expect("the binding cookie");
    let authorize = location(&r);
    assert!(
        authorize.starts_with(&provider.authorization_url()),
        "{authorize}"
    );
    let callback = provider.visit(&authorize).await;

    // The provider's redirect back without the binding, or a forged one: nothing completes.
    let r = s.get(callback.as_str(), &[]).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let (name, _) = binding.split_once('=').expect("name=value");
    let forged = format!("{name}=0000");
    let r = s.get(callback.as_str(), &[&forged]).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // With it: connected.
    let r = s.get(callback.as_str(), &[&binding]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let back = location(&r);
    assert!(
        back.starts_with(RETURN_TO) && back.contains("status=active"),
        "{back}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connect_link_completes_only_its_persons_connection_embedded() {
    bound_links(Stack::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connect_link_completes_only_its_persons_connection_on_jetstream_and_postgres() {
    bound_links(Stack::JetStreamPg).await;
}

/// A PUT of the identity provider that leaves `client_id` out (a client that only knows the
/// JWT settings) keeps browser sign-in and its sealed secret; `null` turns it off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaving_the_client_id_out_keeps_browser_sign_in() {
    let s = Scene::start(Stack::Embedded).await;
    let issuer = s.idp.issuer.clone();
    let jwt_only = json!({ "issuer": issuer, "audience": "bound-links",
                           "jwks_url": format!("{issuer}/jwks") });
    let first = s
        .admin(
            reqwest::Method::PUT,
            "/v1/workspace/identity-provider",
            jwt_only.clone(),
        )
        .await;
    assert_eq!(first["client_id"], CLIENT_ID, "{first}");
    let fingerprint = first["client_secret_fingerprint"].clone();
    assert!(fingerprint.is_string(), "{first}");
    let sign_in = format!("/me/sign-in?workspace={}&next=/me/", s.dep.workspace);
    // The kept secret still works at the provider's token endpoint.
    let (session, _) = s.sign_in(&sign_in, "alice@example.com").await;
    assert!(!session.is_empty());

    let mut off = jwt_only;
    off["client_id"] = Value::Null;
    let after = s
        .admin(reqwest::Method::PUT, "/v1/workspace/identity-provider", off)
        .await;
    assert!(after.get("client_id").is_none(), "{after}");
    assert!(after.get("client_secret_fingerprint").is_none(), "{after}");
    // Starting a sign-in now finds none set up (the start reads the projection, which
    // applies the change a moment after the answer).
    let start = s.dep.svc.url(&format!(
        "/me/sign-in/start?workspace={}&next=/me/",
        s.dep.workspace
    ));
    eventually(
        std::time::Duration::from_secs(10),
        "browser sign-in turned off",
        || async { s.get(&start, &[]).await.status() == StatusCode::NOT_FOUND },
    )
    .await;
}

//! MCP as the signed-in person (issue 20), with the official MCP Python SDK
//! (`mcp_person_client.py`) against a real `serve` and the real local OIDC provider
//! (`fixtures::oidc_provider`, issuing access tokens as JWTs for the workspace's audience),
//! on both stacks.
//!
//! The client discovers where to sign in the way the MCP authorization specification says
//! (401 with `resource_metadata` → RFC 9728 metadata naming the workspace's identity provider
//! → the provider's metadata), signs Alice in (code + PKCE, a client pre-registered at the
//! provider), initializes, lists the tools of Alice's connections and calls one: the real
//! local upstream sees Alice's key, and the call is recorded with Alice (`user`) as actor and
//! the MCP client (the token's `azp`) on `tool.requested`. Bob's token never reaches Alice's
//! connection: naming it (or Alice as `user_id`) answers exactly like an unknown id and is
//! recorded as `access.denied` (`other_user`); without a name Bob acts through his own.

use std::time::Duration;

use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};

use crate::fixtures::oidc_provider::{OidcClient, OidcConfig, OidcProvider, OidcUser};
use crate::support::{request, Api, Deployment, Reply, Stack, Upstream, BASE_ENV, NO_RATE_LIMIT};

const CLIENT_ID: &str = "mcp-desktop";
const CLIENT_SECRET: &str = "mcp-desktop-s3cret-Qw7";
/// Never contacted: the script takes the code from the provider's redirect.
const REDIRECT: &str = "http://127.0.0.1:9/callback";
const AUDIENCE: &str = "authledger-people";
const TOOL: &str = "crm.whoami";
const ALICE_KEY: &str = "alice-crm-key-SECRET-7c1";
const BOB_KEY: &str = "bob-crm-key-SECRET-2e9";

struct Env {
    d: Deployment,
    http: Client,
}

impl Api for Env {
    async fn call(&self, bearer: &str, method: Method, path: &str, body: Option<Value>) -> Reply {
        Reply::of(request(&self.http, &self.d.svc, bearer, method, path, body)).await
    }

    fn admin(&self) -> &str {
        &self.d.admin
    }
}

/// The Python client signed in as `email` at `url`, making `calls`: its report.
async fn python_client(url: &str, email: &str, calls: &[Value]) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/mcp_person_client.py");
    let mut cmd = tokio::process::Command::new("python3");
    cmd.arg(script).args([
        "--url",
        url,
        "--client-id",
        CLIENT_ID,
        "--client-secret",
        CLIENT_SECRET,
        "--redirect-uri",
        REDIRECT,
        "--email",
        email,
    ]);
    for arguments in calls {
        cmd.args(["--call", TOOL, &arguments.to_string()]);
    }
    let out = tokio::time::timeout(Duration::from_secs(90), cmd.output())
        .await
        .expect("the MCP client finishes")
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "MCP client as {email}: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    serde_json::from_slice(&out.stdout).expect("the client's JSON report")
}

/// A call's text as the problem (or answer) JSON it carries.
fn text_of(call: &Value) -> Value {
    serde_json::from_str(call["text"].as_str().expect("text")).expect("JSON text")
}

async fn flow(stack: Stack) {
    let env = Env {
        d: Deployment::start(stack, &[BASE_ENV, NO_RATE_LIMIT].concat()).await,
        http: Client::new(),
    };
    let admin = env.admin().to_string();
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
        redirect_uris: vec![REDIRECT.into()],
    });
    idp.issue_access_tokens(AUDIENCE);
    let r = env
        .call(
            &admin,
            Method::PUT,
            "/v1/workspace/identity-provider",
            Some(json!({ "issuer": idp.issuer, "audience": AUDIENCE,
                         "jwks_url": format!("{}/jwks", idp.issuer) })),
        )
        .await;
    assert!(r.status.is_success(), "{}", r.text);

    // A CRM the workspace offers, Alice's and Bob's connections to it, and its tool.
    let upstream = Upstream::start(|_hit| async {
        axum::response::IntoResponse::into_response(axum::Json(json!({ "hello": "from the CRM" })))
    })
    .await;
    let r = env
        .post(
            &admin,
            "/v1/auth-configs",
            json!({ "name": "Acme CRM", "provider": "custom", "auth_type": "api_key",
                    "api_key": { "key_name": "X-Api-Key", "location": "header", "prefix": null } }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let config = r.str("id");
    let connect = |user: &'static str, key: &'static str| {
        let body = json!({ "auth_config_id": config, "user_id": user,
                           "credentials": { "api_key": key } });
        let env = &env;
        let admin = admin.clone();
        async move {
            let r = env.post(&admin, "/v1/connections", body).await;
            assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
            r.str("id")
        }
    };
    let alices = connect("sub-alice", ALICE_KEY).await;
    let bobs = connect("sub-bob", BOB_KEY).await;
    let r = env
        .post(
            &admin,
            "/v1/tools",
            json!({ "name": TOOL, "provider": "custom", "description": "Who the CRM says you are",
                    "method": "GET", "base_url": upstream.base_url, "path": "/api/me",
                    "parameters": { "type": "object", "properties": {}, "additionalProperties": false },
                    "required_scopes": [], "risk": "read" }),
        )
        .await;
    assert!(r.status.is_success(), "{}", r.text);
    let r = env
        .post(
            &admin,
            "/v1/gateways",
            json!({ "name": "crm", "servers": [{ "auth_config_id": config, "tools": [TOOL] }] }),
        )
        .await;
    assert!(r.status.is_success(), "{}", r.text);
    let gateway = r.str("id");

    // Discovery by hand: the 401's challenge, the metadata it names, the root metadata.
    let ws = env.d.workspace.clone();
    let url = env.d.svc.url(&format!("/mcp/w/{ws}"));
    let metadata_url = env
        .d
        .svc
        .url(&format!("/.well-known/oauth-protected-resource/mcp/w/{ws}"));
    let r = env
        .http
        .post(&url)
        .json(&json!({}))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.headers()["www-authenticate"].to_str().expect("ascii"),
        format!("Bearer resource_metadata=\"{metadata_url}\"")
    );
    let metadata: Value = env
        .http
        .get(&metadata_url)
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(metadata["resource"], json!(url));
    assert_eq!(metadata["authorization_servers"], json!([idp.issuer]));
    assert_eq!(metadata["bearer_methods_supported"], json!(["header"]));
    let r = env
        .http
        .get(
            env.d
                .svc
                .url("/.well-known/oauth-protected-resource/mcp/w/ws_unknown"),
        )
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = env
        .http
        .post(env.d.svc.url("/mcp"))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let root = env.d.svc.url("/.well-known/oauth-protected-resource");
    assert_eq!(
        r.headers()["www-authenticate"].to_str().expect("ascii"),
        format!("Bearer resource_metadata=\"{root}\"")
    );
    let root: Value = env
        .http
        .get(&root)
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(root["bearer_methods_supported"], json!(["header"]));
    assert!(root.get("authorization_servers").is_none(), "{root}");

    // Alice, through the SDK: discovery, sign-in, initialize, tools, a call.
    let alice = python_client(&url, "alice@example.com", &[json!({})]).await;
    let exchanges: Vec<(String, String, u64)> = alice["exchanges"]
        .as_array()
        .expect("exchanges")
        .iter()
        .map(|e| {
            (
                e["method"].as_str().unwrap_or_default().to_string(),
                e["url"].as_str().unwrap_or_default().to_string(),
                e["status"].as_u64().unwrap_or_default(),
            )
        })
        .collect();
    let first = &alice["exchanges"][0];
    assert_eq!(
        (first["url"].as_str(), first["status"].as_u64()),
        (Some(url.as_str()), Some(401))
    );
    assert_eq!(
        first["www_authenticate"],
        json!(format!("Bearer resource_metadata=\"{metadata_url}\""))
    );
    let step = |method: &str, url: &str, status: u64| {
        exchanges
            .iter()
            .position(|e| (e.0.as_str(), e.1.as_str(), e.2) == (method, url, status))
            .unwrap_or_else(|| panic!("no {method} {url} {status} in {exchanges:#?}"))
    };
    let prm = step("GET", &metadata_url, 200);
    let asm = step(
        "GET",
        &format!("{}/.well-known/openid-configuration", idp.issuer),
        200,
    );
    let token = step("POST", &format!("{}/token", idp.issuer), 200);
    let signed_in = exchanges
        .iter()
        .rposition(|e| e.1 == url && e.2 == 200)
        .expect("a signed-in MCP request");
    assert!(
        prm < asm && asm < token && token < signed_in,
        "{exchanges:#?}"
    );
    assert_eq!(alice["server"], json!("authledger"));
    assert_eq!(alice["tools"], json!([TOOL]));
    assert_eq!(
        alice["tool_arguments"][TOOL],
        json!(["auth_config_id", "connection_id"])
    );
    let call = &alice["calls"][0];
    assert_eq!(call["is_error"], json!(false), "{call}");
    assert_eq!(text_of(call)["body"], json!({ "hello": "from the CRM" }));
    let keys = || -> Vec<String> {
        upstream
            .hits_to("/api/me")
            .iter()
            .map(|h| h.header("x-api-key").join(","))
            .collect()
    };
    assert_eq!(keys(), [ALICE_KEY]);

    // Alice's token also works on the gateway's URL, and on `/mcp` with the workspace named
    // in the header (as the end-user JSON routes take it); not without it.
    let token = alice["access_token"].as_str().expect("access token");
    let tools_at = |path: String, workspace: Option<String>| {
        let mut r = env
            .http
            .post(env.d.svc.url(&path))
            .header("accept", "application/json, text/event-stream")
            .bearer_auth(token)
            .json(&json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {} }));
        if let Some(ws) = workspace {
            r = r.header("authledger-workspace", ws);
        }
        async move {
            let r = r.send().await.expect("post");
            let status = r.status();
            (status, r.text().await.expect("body"))
        }
    };
    for (path, header) in [
        (format!("/mcp/w/{ws}/{gateway}"), None),
        ("/mcp".to_string(), Some(ws.clone())),
        (format!("/mcp/{gateway}"), Some(ws.clone())),
    ] {
        let (status, body) = tools_at(path.clone(), header).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        let v: Value = serde_json::from_str(&body).expect("JSON-RPC");
        let names: Vec<&str> = v["result"]["tools"]
            .as_array()
            .unwrap_or_else(|| panic!("{path}: {body}"))
            .iter()
            .filter_map(|t| t["name"].as_str())
            .collect();
        assert_eq!(names, [TOOL], "{path}");
    }
    let (status, _) = tools_at("/mcp".to_string(), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Only MCP acts as the person: the JSON tool routes still want a key or scoped token.
    let r = env
        .http
        .get(env.d.svc.url("/v1/tools"))
        .bearer_auth(token)
        .header("authledger-workspace", &ws)
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let gateway_metadata: Value = env
        .http
        .get(env.d.svc.url(&format!(
            "/.well-known/oauth-protected-resource/mcp/w/{ws}/{gateway}"
        )))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(
        gateway_metadata["resource"],
        json!(env.d.svc.url(&format!("/mcp/w/{ws}/{gateway}")))
    );
    assert_eq!(
        gateway_metadata["authorization_servers"],
        json!([idp.issuer])
    );

    // Bob: Alice's connection by id, or Alice by user_id, answers like an unknown id.
    let unknown = "01900000-0000-7000-8000-00000000dead";
    let bob = python_client(
        &url,
        "bob@example.com",
        &[
            json!({ "connection_id": alices }),
            json!({ "connection_id": unknown }),
            json!({ "user_id": "sub-alice", "auth_config_id": config }),
            json!({}),
        ],
    )
    .await;
    let calls = bob["calls"].as_array().expect("calls");
    for call in &calls[..3] {
        assert_eq!(call["is_error"], json!(true), "{call}");
    }
    assert_eq!(text_of(&calls[0]), text_of(&calls[1]));
    assert_eq!(text_of(&calls[2]), text_of(&calls[1]));
    assert_eq!(text_of(&calls[1])["status"], json!(404));
    assert_eq!(calls[3]["is_error"], json!(false), "{}", calls[3]);
    assert_eq!(
        keys(),
        [ALICE_KEY, BOB_KEY],
        "Bob's call went through his own"
    );

    // On the record: the person and the client; Bob's attempts refused and recorded.
    let denied = env
        .audit_events_until(
            "kind=access.denied",
            "Bob's attempts",
            Duration::from_secs(10),
            |e| {
                e.iter()
                    .filter(|e| e["reason"] == json!("other_user"))
                    .count()
                    >= 2
            },
        )
        .await;
    let bobs_attempts: Vec<&Value> = denied
        .iter()
        .filter(|e| e["reason"] == json!("other_user"))
        .collect();
    for e in &bobs_attempts {
        assert_eq!(
            e["actor"],
            json!({ "type": "user", "id": "sub-bob" }),
            "{e}"
        );
    }
    let requested = env
        .audit_events_until(
            "kind=tool.requested",
            "both calls",
            Duration::from_secs(10),
            |e| e.len() >= 2,
        )
        .await;
    let by = |user: &str| {
        requested
            .iter()
            .find(|e| e["actor"] == json!({ "type": "user", "id": user }))
            .unwrap_or_else(|| panic!("no call by {user}: {requested:#?}"))
    };
    assert_eq!(by("sub-alice")["connection_id"], json!(alices));
    assert_eq!(by("sub-bob")["connection_id"], json!(bobs));
    let event_id = by("sub-alice")["event_id"]
        .as_str()
        .expect("event id")
        .to_string();
    let signed = env
        .get(&admin, &format!("/v1/audit/events/{event_id}"))
        .await;
    assert_eq!(signed.status, StatusCode::OK, "{}", signed.text);
    assert!(
        signed.body["body"]
            .to_string()
            .contains(&format!("\"mcp_client\":\"{CLIENT_ID}\"")),
        "{}",
        signed.body["body"]
    );
}

#[tokio::test]
async fn a_person_signs_in_with_the_mcp_sdk_and_reaches_only_their_connections_embedded() {
    flow(Stack::Embedded).await;
}

#[tokio::test]
async fn a_person_signs_in_with_the_mcp_sdk_and_reaches_only_their_connections_jetstream_pg() {
    flow(Stack::JetStreamPg).await;
}

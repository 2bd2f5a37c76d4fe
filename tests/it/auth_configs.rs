//! Auth configs over HTTP: catalog pre-fill, sealed client secrets (never returned, never
//! in the log in plaintext), versions with changed fields, and crypto-shredding on delete.

use std::sync::Arc;

use reqwest::{Client, Method, StatusCode};
use secrecy::ExposeSecret;
use serde_json::{json, Value};

use authledger::crypto::{load_master_keys, resource_aad, Sealed, SqliteDataKeys, Vault};
use authledger::ledger::envelope::open_envelope;

use crate::harness::{args, run_cli, Service};

async fn call(
    http: &Client,
    svc: &Service,
    key: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = http.request(method, svc.url(path)).bearer_auth(key);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.expect("request");
    let s = r.status();
    (s, r.json().await.unwrap_or(Value::Null))
}

/// Every sealed client secret of `id` in the log, in order.
fn sealed_secrets_in_log(data: &std::path::Path, id: &str) -> (Vec<Sealed>, String) {
    let out = run_cli(&args(&[
        "--data-dir",
        &data.display().to_string(),
        "dump-log",
    ]));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let mut found = Vec::new();
    for line in text.lines() {
        let rec: Value = serde_json::from_str(line).expect("line");
        let body = open_envelope(rec["envelope"].as_str().expect("env").as_bytes())
            .expect("envelope")
            .body;
        if body.aggregate_id != id {
            continue;
        }
        let secret = body
            .payload
            .pointer("/settings/client_secret")
            .or_else(|| body.payload.get("client_secret"));
        if let Some(s) = secret {
            found.push(Sealed {
                data_key_id: s["data_key_id"].as_str().expect("dk").into(),
                nonce: s["nonce"].as_str().expect("nonce").into(),
                ciphertext: s["ciphertext"].as_str().expect("ct").into(),
            });
        }
    }
    (found, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_configs_seal_their_secrets_keep_versions_and_are_shredded_on_delete() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("data");
    let svc = Service::start(
        &args(&["--data-dir", &data.display().to_string()]),
        &[],
        dir.path(),
    )
    .await;
    let printed: Value =
        serde_json::from_str(&std::fs::read_to_string(&svc.stdout_path).expect("stdout"))
            .expect("json");
    let admin = printed["admin_api_key"].as_str().expect("key").to_string();
    let workspace = printed["workspace_id"].as_str().expect("ws").to_string();
    let http = Client::new();
    let secret_v1 = "gmail-client-secret-ONE-4f9c2";
    let secret_v2 = "gmail-client-secret-TWO-8d1e7";

    // Create from the catalog: endpoints pre-filled, the secret sealed.
    let (s, created) = call(&http, &svc, &admin, Method::POST, "/v1/auth-configs", Some(json!({
        "name": "Gmail send-only", "provider": "google", "auth_type": "oauth2",
        "oauth2": { "client_id": "1234.apps.googleusercontent.com", "client_secret": secret_v1,
                    "scopes": ["https://www.googleapis.com/auth/gmail.send", "https://www.googleapis.com/auth/gmail.readonly"],
                    "redirect_urls": ["https://app.example.com/connected"] }
    }))).await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().expect("id").to_string();
    let settings = &created["settings"];
    assert_eq!(
        settings["authorization_url"],
        "https://accounts.google.com/o/oauth2/v2/auth"
    );
    assert_eq!(settings["token_url"], "https://oauth2.googleapis.com/token");
    assert_eq!(settings["extra_authorize_params"]["access_type"], "offline");
    assert_eq!(settings["pkce"], true);
    let fp1 = settings["client_secret"]["fingerprint"]
        .as_str()
        .expect("fingerprint")
        .to_string();
    assert!(fp1.starts_with("hmac-sha256:"));
    assert_eq!(
        settings["client_secret"].as_object().expect("obj").len(),
        1,
        "only the fingerprint is shown"
    );
    assert_eq!(
        (created["version"].as_i64(), created["status"].as_str()),
        (Some(1), Some("enabled"))
    );

    // Narrow the scopes, then rotate the secret: two versions with what changed.
    let (s, v) = call(
        &http,
        &svc,
        &admin,
        Method::PATCH,
        &format!("/v1/auth-configs/{id}"),
        Some(json!({
        "oauth2": { "scopes": ["https://www.googleapis.com/auth/gmail.send"] } })),
    )
    .await;
    assert_eq!((s, v["version"].as_i64()), (StatusCode::OK, Some(2)), "{v}");
    let (s, v) = call(
        &http,
        &svc,
        &admin,
        Method::PATCH,
        &format!("/v1/auth-configs/{id}"),
        Some(json!({
        "oauth2": { "client_secret": secret_v2 } })),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let fp2 = v["settings"]["client_secret"]["fingerprint"]
        .as_str()
        .expect("fp")
        .to_string();
    assert_ne!(fp1, fp2);
    let (s, v) = call(
        &http,
        &svc,
        &admin,
        Method::PATCH,
        &format!("/v1/auth-configs/{id}"),
        Some(json!({ "name": "Gmail send-only" })),
    )
    .await;
    assert_eq!(
        (s, v["type"].as_str()),
        (
            StatusCode::CONFLICT,
            Some("https://authledger.dev/problems/conflict")
        ),
        "nothing changed"
    );
    let (_, versions) = call(
        &http,
        &svc,
        &admin,
        Method::GET,
        &format!("/v1/auth-configs/{id}/versions"),
        None,
    )
    .await;
    let changed: Vec<Value> = versions["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|v| v["changed"].clone())
        .collect();
    assert_eq!(
        changed,
        vec![
            json!(["created"]),
            json!(["scopes"]),
            json!(["client_secret"])
        ]
    );

    // Nothing anywhere shows a plaintext secret: API, log, projections.
    let (_, list) = call(&http, &svc, &admin, Method::GET, "/v1/auth-configs", None).await;
    assert_eq!(list["items"].as_array().expect("items").len(), 1);
    let (sealed, log_text) = sealed_secrets_in_log(&data, &id);
    for text in [list.to_string(), versions.to_string(), log_text.clone()] {
        assert!(
            !text.contains(secret_v1) && !text.contains(secret_v2),
            "a plaintext secret leaked"
        );
    }
    for file in [
        "projections.db",
        "projections.db-wal",
        "ledger.db",
        "ledger.db-wal",
    ] {
        if let Ok(bytes) = std::fs::read(data.join(file)) {
            for secret in [secret_v1, secret_v2] {
                assert!(
                    !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                    "{secret} in {file}"
                );
            }
        }
    }
    assert_eq!(
        sealed.len(),
        3,
        "created + two versions carry the sealed secret"
    );

    // With the operator's master key and data-key store, the latest sealed secret opens.
    let vault = Vault::with_keys(
        load_master_keys(&data.join("keys"), false).expect("master"),
        Arc::new(
            SqliteDataKeys::open(&data.join("data_keys.db"))
                .await
                .expect("data keys"),
        ),
    )
    .await
    .expect("vault");
    let aad = resource_aad(&workspace, "auth_config", &id, "client_secret");
    let opened = vault
        .open(sealed.last().expect("sealed"), &aad)
        .await
        .expect("open");
    assert_eq!(opened.expose_secret(), secret_v2.as_bytes());
    // The ciphertext is bound to its resource: under another id it does not open.
    assert!(vault
        .open(
            &sealed[0],
            &resource_aad(&workspace, "auth_config", "other", "client_secret")
        )
        .await
        .is_err());

    // Disable / enable, then delete: the data key is destroyed.
    let (s, v) = call(
        &http,
        &svc,
        &admin,
        Method::POST,
        &format!("/v1/auth-configs/{id}/disable"),
        Some(json!({ "reason": "incident" })),
    )
    .await;
    assert_eq!(
        (s, v["status"].as_str()),
        (StatusCode::OK, Some("disabled")),
        "{v}"
    );
    let (s, _) = call(
        &http,
        &svc,
        &admin,
        Method::POST,
        &format!("/v1/auth-configs/{id}/disable"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, v) = call(
        &http,
        &svc,
        &admin,
        Method::POST,
        &format!("/v1/auth-configs/{id}/enable"),
        None,
    )
    .await;
    assert_eq!((s, v["status"].as_str()), (StatusCode::OK, Some("enabled")));
    let (s, _) = call(
        &http,
        &svc,
        &admin,
        Method::DELETE,
        &format!("/v1/auth-configs/{id}?cascade=everything"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = call(
        &http,
        &svc,
        &admin,
        Method::DELETE,
        &format!("/v1/auth-configs/{id}"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = call(
        &http,
        &svc,
        &admin,
        Method::DELETE,
        &format!("/v1/auth-configs/{id}"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, list) = call(&http, &svc, &admin, Method::GET, "/v1/auth-configs", None).await;
    assert!(list["items"].as_array().expect("items").is_empty());
    // Crypto-shredding: every version's ciphertext is still in the (verifiable) log, and
    // none of them can be opened any more.
    let (sealed_after, _) = sealed_secrets_in_log(&data, &id);
    assert_eq!(sealed_after, sealed);
    for s in &sealed_after {
        let err = vault.open(s, &aad).await.expect_err("shredded");
        assert!(
            matches!(err, authledger::crypto::CryptoError::Shredded(_)),
            "{err}"
        );
    }
    let report: Value = serde_json::from_slice(
        &run_cli(&args(&[
            "--data-dir",
            &data.display().to_string(),
            "verify",
            "--json",
        ]))
        .stdout,
    )
    .expect("report");
    assert_eq!(report["ok"], true, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_auth_config_input_is_refused_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("data");
    let svc = Service::start(
        &args(&["--data-dir", &data.display().to_string()]),
        &[],
        dir.path(),
    )
    .await;
    let printed: Value =
        serde_json::from_str(&std::fs::read_to_string(&svc.stdout_path).expect("stdout"))
            .expect("json");
    let admin = printed["admin_api_key"].as_str().expect("key").to_string();
    let http = Client::new();
    let head = |v: Value| v["log_head"].as_u64().expect("head");
    let before = head(
        http.get(svc.url("/readyz"))
            .send()
            .await
            .expect("r")
            .json()
            .await
            .expect("j"),
    );
    let oauth = |extra: Value| {
        let mut o = json!({ "client_id": "c", "client_secret": "s", "redirect_urls": ["https://app.example.com/cb"] });
        for (k, v) in extra.as_object().expect("obj") {
            o[k] = v.clone();
        }
        o
    };
    let cases = [
        (
            json!({ "name": "x", "provider": "custom", "auth_type": "oauth2", "oauth2": oauth(json!({})) }),
            422,
            "required for a custom provider",
        ),
        (
            json!({ "name": "x", "provider": "nosuch", "auth_type": "oauth2", "oauth2": oauth(json!({})) }),
            422,
            "catalog",
        ),
        (
            json!({ "name": "x", "provider": "custom", "auth_type": "oauth2", "oauth2": oauth(json!({
            "authorization_url": "http://127.0.0.1:9/auth", "token_url": "http://127.0.0.1:9/token" })) }),
            422,
            "loopback",
        ),
        (
            json!({ "name": "x", "provider": "google", "auth_type": "oauth2", "oauth2": oauth(json!({ "redirect_urls": [] })) }),
            422,
            "redirect_urls",
        ),
        (
            json!({ "name": "x", "provider": "google", "auth_type": "oauth2", "oauth2": oauth(json!({ "extra_authorize_params": { "state": "fixed" } })) }),
            422,
            "extra_authorize_params",
        ),
        (
            json!({ "name": "x", "provider": "custom", "auth_type": "api_key", "oauth2": oauth(json!({})) }),
            422,
            "auth_type",
        ),
        (
            json!({ "name": "x", "provider": "custom", "auth_type": "api_key", "api_key": { "key_name": "k", "location": "body", "prefix": null } }),
            422,
            "",
        ),
        (
            json!({ "name": "x", "provider": "google", "auth_type": "oauth2", "oauth2": oauth(json!({})), "admin": true }),
            422,
            "",
        ),
        (
            json!({ "name": "", "provider": "custom", "auth_type": "no_auth" }),
            422,
            "name",
        ),
    ];
    for (body, status, word) in cases {
        let (s, v) = call(
            &http,
            &svc,
            &admin,
            Method::POST,
            "/v1/auth-configs",
            Some(body.clone()),
        )
        .await;
        assert_eq!(s.as_u16(), status, "{body}: {v}");
        assert!(
            v["detail"].as_str().unwrap_or("").contains(word),
            "{body}: {v}"
        );
    }
    let after = head(
        http.get(svc.url("/readyz"))
            .send()
            .await
            .expect("r")
            .json()
            .await
            .expect("j"),
    );
    assert_eq!(before, after, "a refused create must not write to the log");
}

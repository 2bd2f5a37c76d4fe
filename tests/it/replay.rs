//! `authledger replay`: a projection rebuilt from the log answers every read route exactly as
//! the live one did (embedded, and JetStream + PostgreSQL), it is swapped in whole (a new
//! embedded file; one PostgreSQL transaction, also with `serve` running), `--until` rebuilds
//! the state as of a position or a time, and an unknown projection is refused in one line.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use authledger::projector::store::{AuthConfigReads as _, ProjectionWriter as _};
use authledger::projector::SqliteProjections;

use crate::harness::{args, fresh_pg_database, run_cli, NatsServer, Service};

const REDIRECT: &str = "https://app.example.com/connected";

/// The service's environment in these tests: loopback provider URLs allowed, nothing
/// scheduled (so the log only grows by what the test does).
const ENVS: &[(&str, &str)] = &[
    ("AUTHLEDGER_ALLOW_LOOPBACK_URLS", "true"),
    ("AUTHLEDGER_CHECKPOINT_SCHEDULE", "off"),
    ("AUTHLEDGER_REFRESH_SCHEDULE", "off"),
];

/// `ENVS` without the request rate limit: the test reads every route in a burst with one
/// key, faster than the default 50/s (burst 100) allows.
fn envs() -> Vec<(&'static str, &'static str)> {
    [ENVS, crate::support::NO_RATE_LIMIT].concat()
}

/// A client of one service with one API key.
struct Api {
    http: reqwest::Client,
    base: String,
    key: String,
}

/// One answer: status, body, and the `Authledger-Position` of a write.
struct Resp {
    status: StatusCode,
    body: Value,
    position: Option<u64>,
}

impl Api {
    fn new(svc: &Service, key: &str) -> Api {
        Api {
            http: reqwest::Client::new(),
            base: svc.url(""),
            key: key.to_string(),
        }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Resp {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.expect("request");
        let status = r.status();
        let position = r
            .headers()
            .get("authledger-position")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let text = r.text().await.expect("body");
        Resp {
            status,
            body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
            position,
        }
    }

    async fn get(&self, path: &str) -> Resp {
        self.call(Method::GET, path, None).await
    }

    /// A write that must succeed with `want`; returns the answer.
    async fn write(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        want: StatusCode,
    ) -> Resp {
        let r = self.call(method, path, body.clone()).await;
        assert_eq!(r.status, want, "{path} {body:?}: {}", r.body);
        r
    }

    async fn create_key(&self, name: &str, role: &str) -> (String, String) {
        let r = self
            .write(
                Method::POST,
                "/v1/api-keys",
                Some(json!({ "name": name, "role": role })),
                StatusCode::CREATED,
            )
            .await;
        (
            id_of(&r.body),
            r.body["key"].as_str().expect("key").to_string(),
        )
    }

    async fn auth_config(&self, body: Value) -> Resp {
        self.write(
            Method::POST,
            "/v1/auth-configs",
            Some(body),
            StatusCode::CREATED,
        )
        .await
    }

    async fn log_head(&self) -> u64 {
        self.get("/readyz").await.body["log_head"]
            .as_u64()
            .expect("log_head")
    }
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().expect("id").to_string()
}

fn api_key_config(name: &str) -> Value {
    json!({ "name": name, "provider": "custom", "auth_type": "api_key",
            "api_key": { "key_name": "X-Api-Key", "location": "header", "prefix": null } })
}

/// What the tests build and read back.
struct Fixture {
    /// Every auth config, the deleted one included.
    auth_configs: Vec<String>,
    /// Every API key (the admin's included).
    api_keys: Vec<String>,
}

/// A varied workspace state, built through the API as admin (and an auditor).
async fn populate(svc: &Service, admin: &str) -> Fixture {
    let api = Api::new(svc, admin);
    let me = api.get("/v1/api-keys").await;
    let mut api_keys: Vec<String> = me.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(id_of)
        .collect();

    // API keys of several roles; one revoked.
    let (developer, developer_key) = api.create_key("ci deploy", "developer").await;
    let (viewer, _) = api.create_key("dashboard", "viewer").await;
    let (auditor, auditor_key) = api.create_key("compliance", "auditor").await;
    let (second_admin, _) = api.create_key("break glass", "admin").await;
    api.write(
        Method::DELETE,
        &format!("/v1/api-keys/{viewer}"),
        None,
        StatusCode::NO_CONTENT,
    )
    .await;
    api_keys.extend([developer, viewer, auditor, second_admin]);

    // The identity provider of the workspace.
    let idp = api
        .call(
            Method::PUT,
            "/v1/workspace/identity-provider",
            Some(
                json!({ "issuer": "https://idp.example.com/", "audience": "authledger",
                         "jwks_url": "https://idp.example.com/.well-known/jwks.json" }),
            ),
        )
        .await;
    assert_eq!(idp.status, StatusCode::OK, "{}", idp.body);

    // Auth configs of several types: one changed, one disabled, one deleted.
    let weather = id_of(&api.auth_config(api_key_config("Weather")).await.body);
    let tickets = id_of(
        &api.auth_config(json!({ "name": "Tickets", "provider": "custom",
            "auth_type": "bearer_token", "bearer_token": {} }))
            .await
            .body,
    );
    let wiki = id_of(
        &api.auth_config(
            json!({ "name": "Wiki", "provider": "custom", "auth_type": "basic", "basic": {} }),
        )
        .await
        .body,
    );
    let public = id_of(
        &api.auth_config(json!({ "name": "Public", "provider": "custom", "auth_type": "no_auth" }))
            .await
            .body,
    );
    let oauth = id_of(
        &api.auth_config(
            json!({ "name": "OAuth", "provider": "custom", "auth_type": "oauth2",
            "oauth2": { "client_id": "c", "client_secret": "oauth-client-secret-3f9a",
                        "scopes": ["read"], "redirect_urls": [REDIRECT],
                        "authorization_url": "http://127.0.0.1:9/authorize",
                        "token_url": "http://127.0.0.1:9/token" } }),
        )
        .await
        .body,
    );
    api.write(
        Method::PATCH,
        &format!("/v1/auth-configs/{weather}"),
        Some(json!({ "name": "Weather (prod)" })),
        StatusCode::OK,
    )
    .await;
    api.write(
        Method::POST,
        &format!("/v1/auth-configs/{tickets}/disable"),
        None,
        StatusCode::OK,
    )
    .await;
    let deleted = api
        .call(Method::DELETE, &format!("/v1/auth-configs/{wiki}"), None)
        .await;
    assert!(deleted.status.is_success(), "{}", deleted.body);

    // Connections: from the api_key config (one revoked), a no_auth one, an OAuth one
    // waiting for its callback.
    let mut weather_connections = Vec::new();
    for (user, secret) in [
        ("user-1", "wx-SECRET-1"),
        ("user-2", "wx-SECRET-2"),
        ("user-3", "wx-SECRET-3"),
    ] {
        let r = api
            .write(
                Method::POST,
                "/v1/connections",
                Some(json!({ "auth_config_id": weather, "user_id": user,
                             "credentials": { "api_key": secret } })),
                StatusCode::CREATED,
            )
            .await;
        weather_connections.push(id_of(&r.body));
    }
    api.write(
        Method::POST,
        &format!("/v1/connections/{}/revoke", weather_connections[1]),
        None,
        StatusCode::OK,
    )
    .await;
    api.write(
        Method::POST,
        "/v1/connections",
        Some(json!({ "auth_config_id": public, "user_id": "user-1" })),
        StatusCode::CREATED,
    )
    .await;
    let initiated = api
        .write(
            Method::POST,
            "/v1/connections",
            Some(json!({ "auth_config_id": oauth, "user_id": "user-4",
                         "redirect_url": REDIRECT })),
            StatusCode::CREATED,
        )
        .await;
    assert_eq!(initiated.body["status"], "initiated", "{}", initiated.body);

    // The auditor reads the audit view; the developer is refused a key (access.denied).
    let auditor_api = Api::new(svc, &auditor_key);
    let r = auditor_api
        .get("/v1/audit/events?kind=connection.&order=asc")
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let refused = Api::new(svc, &developer_key)
        .call(
            Method::POST,
            "/v1/api-keys",
            Some(json!({ "name": "nope", "role": "admin" })),
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);

    Fixture {
        auth_configs: vec![weather, tickets, wiki, public, oauth],
        api_keys,
    }
}

/// Waits until the service's projections have caught up with its log; returns the head.
async fn caught_up(svc: &Service) -> u64 {
    let http = reqwest::Client::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let r: Value = http
            .get(svc.url("/readyz"))
            .send()
            .await
            .expect("readyz")
            .json()
            .await
            .expect("json");
        if r["projection_offset"] == r["log_head"] {
            return r["log_head"].as_u64().expect("log_head");
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the projections did not catch up: {r}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every read route's answer, by request. Audit reads are themselves recorded
/// (`audit.queried`): the unfiltered audit view is cut at `cutoff`, the log head before the
/// first capture, so the records of capturing never enter what is compared.
async fn capture(api: &Api, fx: &Fixture, cutoff: u64) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    let mut read = |path: String, r: Resp| {
        out.insert(path, json!({ "status": r.status.as_u16(), "body": r.body }));
    };
    for path in ["/v1/workspace", "/v1/api-keys", "/v1/auth-configs"] {
        read(path.to_string(), api.get(path).await);
    }
    for id in &fx.api_keys {
        let path = format!("/v1/api-keys/{id}");
        read(path.clone(), api.get(&path).await);
    }
    for id in &fx.auth_configs {
        for path in [
            format!("/v1/auth-configs/{id}"),
            format!("/v1/auth-configs/{id}/versions"),
        ] {
            read(path.clone(), api.get(&path).await);
        }
    }
    // Every page of the connections (small pages, so the cursor is exercised).
    let mut connection_ids = Vec::new();
    let mut path = "/v1/connections?limit=2".to_string();
    loop {
        let r = api.get(&path).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        for item in r.body["items"].as_array().expect("items") {
            connection_ids.push(id_of(item));
        }
        let next = r.body["next_cursor"].as_str().map(str::to_string);
        read(path, r);
        match next {
            Some(c) => path = format!("/v1/connections?limit=2&cursor={c}"),
            None => break,
        }
    }
    assert!(connection_ids.len() >= 4, "{connection_ids:?}");
    for kind in [
        "",
        "workspace.",
        "api_key.",
        "auth_config.",
        "connection.",
        "access.",
    ] {
        let query = if kind.is_empty() {
            String::new()
        } else {
            format!("&kind={kind}")
        };
        let path = format!("/v1/audit/events?order=asc&limit=1000{query}");
        let mut r = api.get(&path).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.body);
        let items = r.body["items"].as_array_mut().expect("items");
        items.retain(|e| e["position"].as_u64().expect("position") <= cutoff);
        assert!(!items.is_empty(), "{path}");
        assert!(r.body["next_cursor"].is_null(), "{path}: one page");
        if kind.is_empty() {
            let event_ids: Vec<String> = r.body["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(|e| e["event_id"].as_str().expect("event_id").to_string())
                .collect();
            read(path, r);
            for id in event_ids {
                let path = format!("/v1/audit/events/{id}");
                read(path.clone(), api.get(&path).await);
            }
        } else {
            read(path, r);
        }
    }
    for id in &connection_ids {
        let path = format!("/v1/connections/{id}");
        read(path.clone(), api.get(&path).await);
    }
    out
}

fn assert_same_answers(before: &BTreeMap<String, Value>, after: &BTreeMap<String, Value>) {
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>(),
        "the same requests"
    );
    for (path, want) in before {
        assert_eq!(
            &after[path], want,
            "{path} answers differently after replay"
        );
    }
}

/// Stops `serve` gracefully (SIGTERM) and waits for it.
fn stop(mut svc: Service) {
    svc.signal(nix::sys::signal::Signal::SIGTERM);
    let _ = svc.child.wait();
}

/// Runs `replay` with `extra` arguments; checks the final line and returns the count.
fn replay(storage: &[String], extra: &[&str]) -> u64 {
    let out = run_cli(&[storage.to_vec(), args(&["replay"]), args(extra)].concat());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let last = stdout.lines().last().expect("a final line").to_string();
    replayed_count(&last).unwrap_or_else(|| panic!("final line format: {last:?}"))
}

/// `replayed N events in S s (R events/s)` → N.
fn replayed_count(line: &str) -> Option<u64> {
    let rest = line.strip_prefix("replayed ")?;
    let (n, rest) = rest.split_once(" events in ")?;
    let (secs, rest) = rest.split_once(" s (")?;
    let rate = rest.strip_suffix(" events/s)")?;
    let decimals = secs.split_once('.')?.1;
    (decimals.len() == 2
        && secs.parse::<f64>().is_ok()
        && rate.chars().all(|c| c.is_ascii_digit())
        && !rate.is_empty())
    .then_some(())?;
    n.parse().ok()
}

fn leftovers(data: &Path) -> Vec<String> {
    std::fs::read_dir(data)
        .expect("data dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.contains(".replay-"))
        .collect()
}

#[test]
fn the_final_line_format_is_checked() {
    assert_eq!(
        replayed_count("replayed 42 events in 0.13 s (323 events/s)"),
        Some(42)
    );
    assert_eq!(
        replayed_count("replayed 42 events into the projections"),
        None
    );
    assert_eq!(
        replayed_count("replayed 42 events in 1 s (42 events/s)"),
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_rebuilt_projections_answer_every_read_as_before() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("data");
    let storage = args(&["--data-dir", &data.display().to_string()]);
    let svc = Service::start(&storage, &envs(), dir.path()).await;
    let printed: Value =
        serde_json::from_str(&std::fs::read_to_string(&svc.stdout_path).expect("stdout"))
            .expect("the first serve prints the admin key");
    let admin = printed["admin_api_key"].as_str().expect("key").to_string();
    let fx = populate(&svc, &admin).await;
    let cutoff = caught_up(&svc).await;
    let before = capture(&Api::new(&svc, &admin), &fx, cutoff).await;
    let head = caught_up(&svc).await;
    assert!(head > cutoff);
    stop(svc);

    let inode = std::fs::metadata(data.join("projections.db"))
        .expect("projections")
        .ino();
    assert_eq!(replay(&storage, &[]), head, "every event of the log");
    assert_ne!(
        std::fs::metadata(data.join("projections.db"))
            .expect("projections")
            .ino(),
        inode,
        "a new file was swapped in"
    );
    assert!(leftovers(&data).is_empty(), "{:?}", leftovers(&data));
    assert!(
        !data.join("projections.db-wal").exists(),
        "no WAL of the old file is left beside the new one"
    );

    let svc = Service::start(&storage, &envs(), dir.path()).await;
    assert_eq!(caught_up(&svc).await, head, "serve wrote nothing at start");
    let after = capture(&Api::new(&svc, &admin), &fx, cutoff).await;
    assert_same_answers(&before, &after);

    // While serve has the projections open, an embedded replay is refused (it would swap
    // the file under the running service) and changes nothing.
    let out = run_cli(&[storage.clone(), args(&["replay"])].concat());
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("in use"), "{stderr}");
    assert!(leftovers(&data).is_empty(), "{:?}", leftovers(&data));
    let again = capture(&Api::new(&svc, &admin), &fx, cutoff).await;
    assert_same_answers(&before, &again);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_and_postgres_rebuilt_projections_answer_every_read_as_before() {
    let nats = NatsServer::start();
    let pg = fresh_pg_database().await;
    let dir = tempfile::tempdir().expect("dir");
    let storage = args(&[
        "--data-dir",
        &dir.path().join("data").display().to_string(),
        "--key-dir",
        &dir.path().join("keys").display().to_string(),
        "--nats-url",
        &nats.url(),
        "--database-url",
        &pg,
    ]);
    assert!(
        run_cli(&[storage.clone(), args(&["keys", "init"])].concat())
            .status
            .success()
    );
    let out = run_cli(&[storage.clone(), args(&["bootstrap", "--workspace", "Acme"])].concat());
    assert!(out.status.success(), "{out:?}");
    let printed: Value = serde_json::from_slice(&out.stdout).expect("json");
    let admin = printed["admin_api_key"].as_str().expect("key").to_string();

    let svc = Service::start(&storage, &envs(), dir.path()).await;
    let fx = populate(&svc, &admin).await;
    let cutoff = caught_up(&svc).await;
    let before = capture(&Api::new(&svc, &admin), &fx, cutoff).await;
    let head = caught_up(&svc).await;
    stop(svc);

    assert_eq!(replay(&storage, &[]), head, "every event of the log");
    let svc = Service::start(&storage, &envs(), dir.path()).await;
    assert_eq!(caught_up(&svc).await, head);
    let api = Api::new(&svc, &admin);
    let after = capture(&api, &fx, cutoff).await;
    assert_same_answers(&before, &after);

    // With PostgreSQL the rebuild is one transaction: it may run beside serve, which
    // answers from the old rows meanwhile and continues from the replayed position after.
    let head = caught_up(&svc).await;
    let storage2 = storage.clone();
    let replaying = tokio::task::spawn_blocking(move || replay(&storage2, &[]));
    for _ in 0..20 {
        let r = api.get("/v1/auth-configs").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(
            r.body, before["/v1/auth-configs"]["body"],
            "never half-built"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let n = replaying.await.expect("join");
    assert!(n >= head, "{n} < {head}");
    caught_up(&svc).await;
    let again = capture(&api, &fx, cutoff).await;
    assert_same_answers(&before, &again);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn until_rebuilds_the_state_as_of_a_position_or_a_time() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("data");
    let storage = args(&["--data-dir", &data.display().to_string()]);
    let svc = Service::start(&storage, &envs(), dir.path()).await;
    let printed: Value =
        serde_json::from_str(&std::fs::read_to_string(&svc.stdout_path).expect("stdout"))
            .expect("the first serve prints the admin key");
    let admin = printed["admin_api_key"].as_str().expect("key").to_string();
    let workspace = printed["workspace_id"].as_str().expect("ws").to_string();
    let api = Api::new(&svc, &admin);
    let mut created = Vec::new();
    let mut positions = Vec::new();
    let mut between = String::new();
    for name in ["First", "Second", "Third", "Fourth"] {
        if name == "Third" {
            // A time after Second was written and before Third is.
            tokio::time::sleep(Duration::from_millis(20)).await;
            between = time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .expect("time");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let r = api.auth_config(api_key_config(name)).await;
        created.push(id_of(&r.body));
        positions.push(r.position.expect("Authledger-Position"));
    }
    let head = api.log_head().await;
    stop(svc);

    let names = |rows: Vec<authledger::projector::store::AuthConfigRow>| {
        rows.into_iter().map(|r| r.name).collect::<Vec<_>>()
    };
    // The rows `GET /v1/auth-configs` answers from, and the offset, as the replay left them.
    let projected = || async {
        let store = SqliteProjections::open(&data.join("projections.db"))
            .await
            .expect("projections");
        let rows = store.auth_configs(&workspace).await.expect("rows");
        let offset = store.offset().await.expect("offset");
        store.close().await;
        (names(rows), offset)
    };

    // Until the position of the second config: only the first two exist.
    let n = replay(&storage, &["--until", &positions[1].to_string()]);
    assert_eq!(n, positions[1]);
    assert_eq!(
        projected().await,
        (args(&["First", "Second"]), positions[1])
    );

    // Until a time between the second and the third: the same state.
    let n = replay(&storage, &["--until", &between]);
    assert_eq!(n, positions[1], "until {between}");
    assert_eq!(
        projected().await,
        (args(&["First", "Second"]), positions[1])
    );

    // Until a time before anything: empty; after the head: everything.
    assert_eq!(replay(&storage, &["--until", "2000-01-01T00:00:00Z"]), 0);
    assert_eq!(projected().await, (Vec::new(), 0));
    assert_eq!(
        replay(&storage, &["--until", &(head + 100).to_string()]),
        head
    );
    assert_eq!(
        projected().await,
        (args(&["First", "Second", "Third", "Fourth"]), head)
    );

    // As of the first config, then a serve catches up from there (as documented).
    assert_eq!(
        replay(&storage, &["--until", &positions[0].to_string()]),
        positions[0]
    );
    assert_eq!(projected().await, (args(&["First"]), positions[0]));
    let svc = Service::start(&storage, &envs(), dir.path()).await;
    let r = Api::new(&svc, &admin).get("/v1/auth-configs").await;
    assert_eq!(r.status, StatusCode::OK);
    let listed: Vec<String> = r.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(id_of)
        .collect();
    assert_eq!(listed, created);

    // Not a position nor a time: one clear line.
    stop(svc);
    let out = run_cli(&[storage.clone(), args(&["replay", "--until", "yesterday"])].concat());
    assert_one_line_error(&out, "RFC 3339");
}

fn assert_one_line_error(out: &std::process::Output, needle: &str) {
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    assert!(lines[0].starts_with("authledger: error: "), "{stderr}");
    assert!(lines[0].contains(needle), "{stderr}");
    assert!(out.stdout.is_empty(), "{out:?}");
}

#[test]
fn an_unknown_projection_is_refused_in_one_line() {
    let dir = tempfile::tempdir().expect("dir");
    let storage = args(&["--data-dir", &dir.path().display().to_string()]);
    assert!(
        run_cli(&[storage.clone(), args(&["bootstrap", "--workspace", "A"])].concat())
            .status
            .success()
    );
    let out = run_cli(&[storage.clone(), args(&["replay", "--projection", "nope"])].concat());
    assert_one_line_error(&out, "unknown projection \"nope\" (valid: state)");
    let out = run_cli(&[storage, args(&["replay", "--projection", "state"])].concat());
    assert!(out.status.success(), "{out:?}");
}

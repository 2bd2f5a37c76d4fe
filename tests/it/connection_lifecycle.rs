//! Connection lifecycle against the real `serve` binary over HTTP: connections from
//! credentials (shapes checked, secrets never shown), the postgres connector against a
//! PostgreSQL cluster with password authentication that the test starts itself, auth config
//! deletion with dependants and scope narrowing (needs_reconsent, cascade revocation at a
//! real local OAuth provider), end users' own connections, read-your-writes and cursor
//! pagination.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use jsonwebtoken::Algorithm;
use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};

use authledger::ledger::envelope::open_envelope;

use crate::end_user::{claims, keys, serve_jwks, token, AUDIENCE, ISSUER};
use crate::fixtures::oauth_provider::{
    no_redirect_client, ClientAuthMethod, ClientConfig, Endpoint, OAuthProvider, ProviderConfig,
};
use crate::harness::{args, free_port, run_cli, Service};
use crate::support::{Deployment, Stack};

const PROBLEM_JSON: &str = "application/problem+json";
const PROBLEMS: &str = "https://authledger.dev/problems/";
/// Where end users return to after the connect flow (on the auth configs' allow-list).
const REDIRECT: &str = "https://app.example.com/connected";

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// One HTTP answer (its raw text goes to the `Api` transcript, for leak checks).
struct Resp {
    status: StatusCode,
    content_type: String,
    position: Option<String>,
    retry_after: Option<String>,
    body: Value,
}

/// A client of one service with one API key; remembers every response body it received.
struct Api {
    http: Client,
    base: String,
    key: String,
    transcript: Mutex<String>,
}

impl Api {
    fn new(svc: &Service, key: &str) -> Api {
        Api {
            http: Client::new(),
            base: svc.url(""),
            key: key.to_string(),
            transcript: Mutex::new(String::new()),
        }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Resp {
        let req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.key);
        self.send(req, body).await
    }

    async fn send(&self, mut req: reqwest::RequestBuilder, body: Option<Value>) -> Resp {
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.expect("request");
        let header = |name: &str| {
            r.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let status = r.status();
        let content_type = header("content-type").unwrap_or_default();
        let position = header("authledger-position");
        let retry_after = header("retry-after");
        let text = r.text().await.expect("body");
        self.transcript
            .lock()
            .expect("transcript")
            .push_str(&format!("{text}\n"));
        Resp {
            status,
            content_type,
            position,
            retry_after,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
        }
    }

    async fn get(&self, path: &str) -> Resp {
        self.call(Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> Resp {
        self.call(Method::POST, path, Some(body)).await
    }

    fn transcript(&self) -> String {
        self.transcript.lock().expect("transcript").clone()
    }

    /// Creates an auth config; returns its id.
    async fn auth_config(&self, body: Value) -> String {
        let r = self.post("/v1/auth-configs", body.clone()).await;
        assert_eq!(r.status, StatusCode::CREATED, "{body}: {}", r.body);
        r.body["id"].as_str().expect("id").to_string()
    }

    /// Every connection id the list shows (all pages).
    async fn connection_ids(&self) -> Vec<String> {
        let mut ids = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/v1/connections?limit=200&cursor={c}"),
                None => "/v1/connections?limit=200".to_string(),
            };
            let r = self.get(&path).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            for item in r.body["items"].as_array().expect("items") {
                ids.push(item["id"].as_str().expect("id").to_string());
            }
            match r.body["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => return ids,
            }
        }
    }

    async fn log_head(&self) -> u64 {
        let r = self.get("/readyz").await;
        r.body["log_head"].as_u64().expect("log_head")
    }

    async fn status_of(&self, connection_id: &str) -> String {
        let r = self.get(&format!("/v1/connections/{connection_id}")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.body["status"].as_str().expect("status").to_string()
    }
}

/// A serve process on a fresh embedded data dir, with its first admin key.
struct Env {
    d: Deployment,
}

impl std::ops::Deref for Env {
    type Target = Deployment;
    fn deref(&self) -> &Deployment {
        &self.d
    }
}

impl Env {
    async fn start() -> Env {
        let envs = [
            ("AUTHLEDGER_ALLOW_LOOPBACK_URLS", "true"),
            ("AUTHLEDGER_REFRESH_SCHEDULE", "off"),
        ];
        Env {
            d: Deployment::start(Stack::Embedded, &envs).await,
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn api(&self) -> Api {
        Api::new(&self.svc, &self.admin)
    }

    /// A second workspace (CLI bootstrap while serve runs); its admin API once serve knows it.
    async fn other_workspace(&self) -> Api {
        Api::new(&self.svc, &self.d.other_workspace("Other").await)
    }

    /// The raw `dump-log` output and every event body, decoded.
    fn log(&self) -> (String, Vec<Value>) {
        let out = run_cli(&args(&[
            "--data-dir",
            &self.data().display().to_string(),
            "dump-log",
        ]));
        assert!(out.status.success(), "{out:?}");
        let raw = String::from_utf8_lossy(&out.stdout).to_string();
        let bodies = raw
            .lines()
            .map(|line| {
                let rec: Value = serde_json::from_str(line).expect("line");
                let body = open_envelope(rec["envelope"].as_str().expect("envelope").as_bytes())
                    .expect("envelope")
                    .body;
                serde_json::to_value(&body).expect("body")
            })
            .collect();
        (raw, bodies)
    }
}

fn assert_problem(r: &Resp, status: StatusCode, kind: &str, what: &str) {
    assert_eq!(r.status, status, "{what}: {}", r.body);
    assert_eq!(r.content_type, PROBLEM_JSON, "{what}");
    assert_eq!(
        r.body["type"],
        format!("{PROBLEMS}{kind}"),
        "{what}: {}",
        r.body
    );
    assert_eq!(r.body["status"], status.as_u16(), "{what}");
}

fn contains_bytes(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

// ---------------------------------------------------------------------------------------------
// 1. Connections from credentials
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credential_connections_check_their_shape_and_never_show_the_secret() {
    let env = Env::start().await;
    let api = env.api();
    let api_key = api
        .auth_config(
            json!({ "name": "Weather", "provider": "custom", "auth_type": "api_key",
            "api_key": { "key_name": "X-Api-Key", "location": "header", "prefix": null } }),
        )
        .await;
    let bearer = api
        .auth_config(json!({ "name": "Tickets", "provider": "custom",
            "auth_type": "bearer_token", "bearer_token": {} }))
        .await;
    let basic = api
        .auth_config(
            json!({ "name": "Wiki", "provider": "custom", "auth_type": "basic",
            "basic": {} }),
        )
        .await;
    let no_auth = api
        .auth_config(json!({ "name": "Public", "provider": "custom", "auth_type": "no_auth" }))
        .await;
    let oauth2 = api
        .auth_config(
            json!({ "name": "OAuth", "provider": "custom", "auth_type": "oauth2",
            "oauth2": { "client_id": "c", "client_secret": "oauth-client-secret-7c1d",
                        "scopes": ["read"], "redirect_urls": [REDIRECT],
                        "authorization_url": "http://127.0.0.1:9/authorize",
                        "token_url": "http://127.0.0.1:9/token" } }),
        )
        .await;

    let key_secret = "wx-key-SECRET-5b7e0c1a";
    let token_secret = "tk-bearer-SECRET-91f3d2";
    let password_secret = "pw-basic-SECRET-4ad8e6";
    let numeric_secret = 918_273_645_546_372_819_u64;
    let string_secret = "bare-string-SECRET-0e9f";
    let secrets = [
        key_secret.to_string(),
        token_secret.to_string(),
        password_secret.to_string(),
        numeric_secret.to_string(),
        string_secret.to_string(),
    ];

    // Good credentials: active at once.
    let mut created = Vec::new();
    for (config, credentials) in [
        (&api_key, Some(json!({ "api_key": key_secret }))),
        (&bearer, Some(json!({ "token": token_secret }))),
        (
            &basic,
            Some(json!({ "username": "alice", "password": password_secret })),
        ),
        (&no_auth, None),
        (&no_auth, Some(json!({}))),
    ] {
        let mut body = json!({ "auth_config_id": config, "user_id": "user-1" });
        if let Some(c) = &credentials {
            body["credentials"] = c.clone();
        }
        let r = api.post("/v1/connections", body.clone()).await;
        assert_eq!(r.status, StatusCode::CREATED, "{body}: {}", r.body);
        assert_eq!(r.body["status"], "active", "{}", r.body);
        assert_eq!(r.body["auth_config_id"], config.as_str());
        assert!(r.body.get("connect_url").is_none(), "{}", r.body);
        let id = r.body["id"].as_str().expect("id").to_string();
        // The answer is the connection as a read shows it (the answer is built from the
        // event, not read back), plus the write's position.
        let read = api.get(&format!("/v1/connections/{id}")).await;
        assert_eq!(read.status, StatusCode::OK, "{}", read.body);
        assert!(r.body["position"].is_u64(), "{}", r.body);
        assert_eq!(crate::support::as_read(&r.body, &["position"]), read.body);
        created.push(id);
    }
    let mut listed = api.connection_ids().await;
    listed.sort();
    let mut want = created.clone();
    want.sort();
    assert_eq!(listed, want);

    // Wrong shapes, unusable auth configs: 422, nothing written.
    let other = env.other_workspace().await;
    let foreign = other
        .auth_config(
            json!({ "name": "Theirs", "provider": "custom", "auth_type": "api_key",
            "api_key": { "key_name": "X-Api-Key", "location": "header", "prefix": null } }),
        )
        .await;
    let head = api.log_head().await;
    let connection = |config: &str, credentials: Value| json!({ "auth_config_id": config, "user_id": "user-1", "credentials": credentials });
    let refusals = vec![
        ("missing field", connection(&api_key, json!({}))),
        (
            "extra field",
            connection(&api_key, json!({ "api_key": key_secret, "header": "X" })),
        ),
        (
            "wrong type (number)",
            connection(&api_key, json!({ "api_key": numeric_secret })),
        ),
        (
            "wrong type (bare string)",
            connection(&api_key, json!(string_secret)),
        ),
        (
            "wrong type (bool)",
            connection(&bearer, json!({ "token": true })),
        ),
        (
            "another type's field",
            connection(&bearer, json!({ "api_key": key_secret })),
        ),
        ("empty key", connection(&api_key, json!({ "api_key": "" }))),
        (
            "basic without password",
            connection(&basic, json!({ "username": "alice" })),
        ),
        (
            "basic with an extra field",
            connection(
                &basic,
                json!({ "username": "alice", "password": password_secret, "otp": "123456" }),
            ),
        ),
        (
            "basic password of the wrong type",
            connection(
                &basic,
                json!({ "username": "alice", "password": numeric_secret }),
            ),
        ),
        (
            "credentials for no_auth",
            connection(&no_auth, json!({ "token": token_secret })),
        ),
        (
            "credentials for an oauth2 config",
            connection(&oauth2, json!({ "token": token_secret })),
        ),
        (
            "redirect_url for an api_key config",
            json!({ "auth_config_id": api_key, "user_id": "user-1", "redirect_url": REDIRECT,
                    "credentials": { "api_key": key_secret } }),
        ),
        (
            "scopes for a bearer config",
            json!({ "auth_config_id": bearer, "user_id": "user-1", "scopes": ["read"],
                    "credentials": { "token": token_secret } }),
        ),
        (
            "empty user_id",
            json!({ "auth_config_id": api_key, "user_id": "",
                    "credentials": { "api_key": key_secret } }),
        ),
    ];
    for (case, body) in &refusals {
        let r = api.post("/v1/connections", body.clone()).await;
        assert_problem(
            &r,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation-failed",
            case,
        );
    }
    // An unknown auth config and another workspace's answer alike.
    let unknown_id = uuid::Uuid::now_v7().to_string();
    let mut answers = Vec::new();
    for (case, config) in [
        ("unknown auth config", unknown_id.as_str()),
        ("another workspace's auth config", foreign.as_str()),
        ("not an id", "../etc/passwd"),
    ] {
        let r = api
            .post(
                "/v1/connections",
                connection(config, json!({ "api_key": key_secret })),
            )
            .await;
        assert_problem(
            &r,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation-failed",
            case,
        );
        answers.push(r.body);
    }
    assert_eq!(
        answers[0], answers[1],
        "another workspace's id answers like an unknown one"
    );
    assert_eq!(answers[0], answers[2]);
    assert_eq!(
        api.log_head().await,
        head,
        "a refused connection writes nothing"
    );
    let mut listed_after = api.connection_ids().await;
    listed_after.sort();
    assert_eq!(listed_after, want, "a refused connection lists nothing");

    // A disabled auth config makes no new connections: 409, nothing written.
    let r = api
        .post(&format!("/v1/auth-configs/{api_key}/disable"), json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let head = api.log_head().await;
    let r = api
        .post(
            "/v1/connections",
            connection(&api_key, json!({ "api_key": key_secret })),
        )
        .await;
    assert_problem(&r, StatusCode::CONFLICT, "conflict", "disabled auth config");
    assert!(
        r.body["detail"].as_str().unwrap_or("").contains("disabled"),
        "{}",
        r.body
    );
    assert_eq!(api.log_head().await, head);
    let mut listed_after = api.connection_ids().await;
    listed_after.sort();
    assert_eq!(listed_after, want);

    // The plaintext never shows: not in any response, not in the log (raw or decoded), not
    // in the stored files.
    let (raw, bodies) = env.log();
    let decoded = serde_json::to_string(&bodies).expect("json");
    assert!(
        bodies
            .iter()
            .filter(|b| b["kind"] == "connection.created")
            .count()
            == created.len(),
        "one connection.created per connection"
    );
    let created_with_credentials = bodies
        .iter()
        .filter(|b| b["kind"] == "connection.created" && !b["payload"]["credentials"].is_null())
        .count();
    assert_eq!(
        created_with_credentials, 3,
        "no_auth connections seal nothing"
    );
    let transcript = format!("{}{}", api.transcript(), other.transcript());
    let data = env.data();
    for secret in &secrets {
        assert!(
            !transcript.contains(secret.as_str()),
            "{secret} in a response"
        );
        assert!(!raw.contains(secret.as_str()), "{secret} in dump-log");
        assert!(
            !decoded.contains(secret.as_str()),
            "{secret} in an event body"
        );
        for file in [
            "ledger.db",
            "ledger.db-wal",
            "projections.db",
            "projections.db-wal",
        ] {
            if let Ok(bytes) = std::fs::read(data.join(file)) {
                assert!(!contains_bytes(&bytes, secret), "{secret} in {file}");
            }
        }
    }
    // Without credentials (absent or null) the end user gives them on the hosted connect
    // page: the connection waits for them.
    for body in [
        json!({ "auth_config_id": bearer, "user_id": "user-1" }),
        connection(&bearer, Value::Null),
    ] {
        let r = api.post("/v1/connections", body).await;
        assert_eq!(
            (r.status, r.body["status"].as_str()),
            (StatusCode::CREATED, Some("initiated")),
            "{}",
            r.body
        );
        assert!(r.body["connect_url"]
            .as_str()
            .is_some_and(|u| u.contains("/connect/")));
    }
}

// ---------------------------------------------------------------------------------------------
// 2. The postgres connector
// ---------------------------------------------------------------------------------------------

/// A throwaway PostgreSQL cluster with password (SCRAM) authentication only, started by the
/// test on a free port; stopped by its postmaster's PID on drop.
struct PasswordCluster {
    dir: tempfile::TempDir,
    port: u16,
    superuser_password: String,
}

fn pg_bin() -> PathBuf {
    if let Ok(p) = std::env::var("AUTHLEDGER_TEST_PG_BIN") {
        return PathBuf::from(p);
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.flatten().map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    found.retain(|p| p.join("initdb").is_file());
    found.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    found.pop().expect(
        "PostgreSQL server binaries not found under /usr/lib/postgresql (set AUTHLEDGER_TEST_PG_BIN)",
    )
}

fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// initdb and postgres refuse to run as root: as root, run them as `postgres`.
fn as_pg(program: &Path, cwd: &Path) -> Command {
    let mut cmd = if running_as_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    };
    cmd.current_dir(cwd)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

impl PasswordCluster {
    fn start() -> PasswordCluster {
        let bin = pg_bin();
        let dir = tempfile::tempdir().expect("pg dir");
        let root = dir.path();
        if running_as_root() {
            let ok = Command::new("chown")
                .arg("postgres")
                .arg(root)
                .status()
                .expect("chown");
            assert!(ok.success(), "chown postgres {}", root.display());
        }
        let superuser_password = format!("su-{}", uuid::Uuid::now_v7().simple());
        let pwfile = root.join("pwfile");
        std::fs::write(&pwfile, format!("{superuser_password}\n")).expect("pwfile");
        if running_as_root() {
            let _ = Command::new("chown").arg("postgres").arg(&pwfile).status();
        }
        let data = root.join("data");
        let status = as_pg(&bin.join("initdb"), root)
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "-A", "scram-sha-256", "--no-sync"])
            .arg(format!("--pwfile={}", pwfile.display()))
            .status()
            .expect("initdb");
        assert!(status.success(), "initdb failed");
        let port = free_port();
        let status = as_pg(&bin.join("pg_ctl"), root)
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(root.join("pg.log"))
            .arg("-w")
            .arg("-o")
            .arg(format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
                root.display()
            ))
            .arg("start")
            .status()
            .expect("pg_ctl start");
        let cluster = PasswordCluster {
            dir,
            port,
            superuser_password,
        };
        assert!(
            status.success(),
            "pg_ctl start failed: {}",
            std::fs::read_to_string(cluster.dir.path().join("pg.log")).unwrap_or_default()
        );
        cluster
    }

    fn superuser_url(&self) -> String {
        format!(
            "postgres://postgres:{}@127.0.0.1:{}/postgres",
            self.superuser_password, self.port
        )
    }

    fn postmaster_pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.dir.path().join("data").join("postmaster.pid"))
            .ok()?
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for PasswordCluster {
    fn drop(&mut self) {
        let Some(pid) = self.postmaster_pid() else {
            return;
        };
        // Immediate shutdown of this cluster's postmaster (and so its children), by PID.
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGQUIT,
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgres_connector_really_logs_in_and_never_shows_the_password() {
    let cluster = PasswordCluster::start();
    let role = format!("tester_{}", uuid::Uuid::now_v7().simple());
    let password = format!("Pg-Pass-{}", uuid::Uuid::now_v7().simple());
    let wrong = format!("Wrong-Pass-{}", uuid::Uuid::now_v7().simple());
    {
        let pool = sqlx::PgPool::connect(&cluster.superuser_url())
            .await
            .expect("connect as the superuser");
        sqlx::query(&format!("CREATE ROLE {role} LOGIN PASSWORD '{password}'"))
            .execute(&pool)
            .await
            .expect("create role");
        // The cluster really checks passwords (pg_hba is scram-sha-256, not trust).
        let refused = sqlx::PgPool::connect(&format!(
            "postgres://{role}:{wrong}@127.0.0.1:{}/postgres",
            cluster.port
        ))
        .await;
        assert!(refused.is_err(), "the cluster accepted a wrong password");
        pool.close().await;
    }

    let env = Env::start().await;
    let api = env.api();
    let pg = api
        .auth_config(
            json!({ "name": "Warehouse", "provider": "custom", "auth_type": "postgres",
            "postgres": { "host": "127.0.0.1", "port": cluster.port, "database": "postgres",
                          "ssl_mode": "disable" } }),
        )
        .await;
    let test = format!("/v1/auth-configs/{pg}/test");

    let r = api
        .post(
            &test,
            json!({ "credentials": { "user": role, "password": password } }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        (r.body["ok"].as_bool(), r.body["connector"].as_str()),
        (Some(true), Some("postgres")),
        "{}",
        r.body
    );
    assert!(r.body["latency_ms"].is_u64(), "{}", r.body);

    let r = api
        .post(
            &test,
            json!({ "credentials": { "user": role, "password": wrong } }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["ok"], false, "{}", r.body);
    let error = r.body["error"].as_str().expect("error").to_string();
    assert!(error.contains("password authentication failed"), "{error}");
    assert!(
        !error.contains(&wrong) && !error.contains(&password),
        "{error}"
    );

    // An unknown role fails the same way; no credentials or a non-postgres config is a 422.
    let r = api
        .post(
            &test,
            json!({ "credentials": { "user": "nobody_here", "password": wrong } }),
        )
        .await;
    assert_eq!(
        (r.status, r.body["ok"].as_bool()),
        (StatusCode::OK, Some(false))
    );
    let r = api.post(&test, json!({})).await;
    assert_problem(
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation-failed",
        "no credentials",
    );
    // Credentials of the wrong shape are refused without being echoed.
    let numeric_password = 987_654_321_987_654_u64;
    let bare_password = format!("bare-{password}");
    for (case, credentials) in [
        (
            "numeric password",
            json!({ "user": role, "password": numeric_password }),
        ),
        ("bare string", json!(bare_password)),
        (
            "extra field",
            json!({ "user": role, "password": password, "sslmode": "disable" }),
        ),
        ("missing password", json!({ "user": role })),
    ] {
        let r = api.post(&test, json!({ "credentials": credentials })).await;
        assert_problem(
            &r,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation-failed",
            case,
        );
        let r = api
            .post(
                "/v1/connections",
                json!({ "auth_config_id": pg, "user_id": "analyst-0", "credentials": credentials }),
            )
            .await;
        assert_problem(
            &r,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation-failed",
            case,
        );
    }
    let api_key = api
        .auth_config(
            json!({ "name": "Weather", "provider": "custom", "auth_type": "api_key",
            "api_key": { "key_name": "X-Api-Key", "location": "header", "prefix": null } }),
        )
        .await;
    let r = api
        .post(
            &format!("/v1/auth-configs/{api_key}/test"),
            json!({ "credentials": { "user": role, "password": password } }),
        )
        .await;
    assert_problem(
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation-failed",
        "api_key test",
    );

    // A connection is tested before it is made: good credentials → active ...
    let r = api
        .post(
            "/v1/connections",
            json!({ "auth_config_id": pg, "user_id": "analyst-1",
                    "credentials": { "user": role, "password": password } }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["status"], "active");
    let good = r.body["id"].as_str().expect("id").to_string();

    // ... a wrong password → 409 and nothing written.
    let head = api.log_head().await;
    let r = api
        .post(
            "/v1/connections",
            json!({ "auth_config_id": pg, "user_id": "analyst-2",
                    "credentials": { "user": role, "password": wrong } }),
        )
        .await;
    assert_problem(&r, StatusCode::CONFLICT, "conflict", "wrong password");
    let detail = r.body["detail"].as_str().unwrap_or("").to_string();
    assert!(detail.contains("connection test failed"), "{detail}");
    assert_eq!(api.log_head().await, head);
    assert_eq!(api.connection_ids().await, vec![good]);

    // Nowhere a password: responses, log, stored files.
    let (raw, bodies) = env.log();
    let decoded = serde_json::to_string(&bodies).expect("json");
    let transcript = api.transcript();
    for secret in [
        &password,
        &wrong,
        &numeric_password.to_string(),
        &bare_password,
    ] {
        assert!(
            !transcript.contains(secret.as_str()),
            "password in a response"
        );
        assert!(!raw.contains(secret.as_str()) && !decoded.contains(secret.as_str()));
        for file in [
            "ledger.db",
            "ledger.db-wal",
            "projections.db",
            "projections.db-wal",
        ] {
            if let Ok(bytes) = std::fs::read(env.data().join(file)) {
                assert!(!contains_bytes(&bytes, secret), "password in {file}");
            }
        }
    }
    drop(env);
    drop(cluster);
}

// ---------------------------------------------------------------------------------------------
// 3. Scope narrowing and deletion with dependants
// ---------------------------------------------------------------------------------------------

const CLIENT_ID: &str = "lifecycle-client";
const CLIENT_SECRET: &str = "lifecycle-client-secret-3e8a";

async fn oauth_setup(env: &Env, api: &Api) -> (OAuthProvider, String) {
    let provider = OAuthProvider::start(ProviderConfig::default()).await;
    provider.register_client(
        ClientConfig::new(
            CLIENT_ID,
            CLIENT_SECRET,
            ClientAuthMethod::ClientSecretBasic,
        )
        .redirect_uri(&env.svc.url("/v1/oauth/callback"))
        .scopes(&["read", "write"]),
    );
    let config = api
        .auth_config(
            json!({ "name": "Fixture", "provider": "custom", "auth_type": "oauth2",
            "oauth2": { "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                        "scopes": ["read", "write"], "redirect_urls": [REDIRECT],
                        "authorization_url": provider.authorization_url(),
                        "token_url": provider.token_url(),
                        "revocation_url": provider.revocation_url(),
                        "client_auth_method": "client_secret_basic" } }),
        )
        .await;
    (provider, config)
}

/// The whole connect flow: initiate, the browser at the provider, our callback (303).
async fn connect(
    api: &Api,
    provider: &OAuthProvider,
    config: &str,
    user: &str,
    scopes: Option<&[&str]>,
) -> String {
    let mut body = json!({ "auth_config_id": config, "user_id": user, "redirect_url": REDIRECT });
    if let Some(s) = scopes {
        body["scopes"] = json!(s);
    }
    let r = api.post("/v1/connections", body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["status"], "initiated");
    let id = r.body["id"].as_str().expect("id").to_string();
    let callback = provider
        .visit(r.body["connect_url"].as_str().expect("connect_url"))
        .await;
    let r = no_redirect_client()
        .get(callback.as_str())
        .send()
        .await
        .expect("callback");
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let location = r
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .expect("location")
        .to_string();
    assert!(location.starts_with(REDIRECT), "{location}");
    assert!(location.contains("status=active"), "{location}");
    assert!(location.contains(&id), "{location}");
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn narrowing_scopes_asks_for_reconsent_and_deleting_needs_a_cascade() {
    let env = Env::start().await;
    let api = env.api();
    let (provider, config) = oauth_setup(&env, &api).await;

    let full = connect(&api, &provider, &config, "user-full", None).await;
    let narrow = connect(&api, &provider, &config, "user-narrow", Some(&["read"])).await;
    let scopes_of = |id: String| {
        let api = &api;
        async move { api.get(&format!("/v1/connections/{id}")).await.body["scopes"].clone() }
    };
    assert_eq!(scopes_of(full.clone()).await, json!(["read", "write"]));
    assert_eq!(scopes_of(narrow.clone()).await, json!(["read"]));
    let listed = api.get("/v1/auth-configs").await;
    let row = listed.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|i| i["id"] == config.as_str())
        .cloned()
        .expect("listed");
    assert_eq!(row["connections"], 2, "{row}");

    // Narrowing: only the connection holding the removed scope needs consent again.
    let r = api
        .call(
            Method::PATCH,
            &format!("/v1/auth-configs/{config}"),
            Some(json!({ "oauth2": { "scopes": ["read"] } })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["settings"]["scopes"], json!(["read"]));
    assert_eq!(api.status_of(&full).await, "needs_reconsent");
    assert_eq!(api.status_of(&narrow).await, "active");
    let r = api.get("/v1/connections?status=needs_reconsent").await;
    let ids: Vec<&str> = r.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["id"].as_str())
        .collect();
    assert_eq!(ids, vec![full.as_str()]);

    // Deleting with live dependants is refused, naming them; nothing changes.
    let head = api.log_head().await;
    let r = api
        .call(Method::DELETE, &format!("/v1/auth-configs/{config}"), None)
        .await;
    assert_problem(
        &r,
        StatusCode::CONFLICT,
        "has-dependants",
        "delete with dependants",
    );
    let mut dependants: Vec<String> = r.body["dependants"]
        .as_array()
        .expect("dependants")
        .iter()
        .map(|v| v.as_str().expect("id").to_string())
        .collect();
    dependants.sort();
    let mut both = vec![full.clone(), narrow.clone()];
    both.sort();
    assert_eq!(dependants, both);
    assert_eq!(
        api.log_head().await,
        head,
        "a refused delete writes nothing"
    );
    assert_eq!(api.status_of(&full).await, "needs_reconsent");
    assert_eq!(api.status_of(&narrow).await, "active");
    assert_eq!(
        api.get(&format!("/v1/auth-configs/{config}")).await.body["status"],
        "enabled"
    );
    assert!(provider.requests_to(Endpoint::Revoke).is_empty());

    // With cascade: each connection revoked at the provider, then in the ledger.
    let r = api
        .call(
            Method::DELETE,
            &format!("/v1/auth-configs/{config}?cascade=revoke"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert_eq!(api.status_of(&full).await, "revoked");
    assert_eq!(api.status_of(&narrow).await, "revoked");
    let revocations = provider.requests_to(Endpoint::Revoke);
    assert_eq!(revocations.len(), 2, "{revocations:?}");
    let mut tokens = Vec::new();
    for req in &revocations {
        assert_eq!(req.status, 200, "{req:?}");
        assert_eq!(req.client_id.as_deref(), Some(CLIENT_ID));
        assert_eq!(req.param("token_type_hint"), Some("refresh_token"));
        let t = req.param("token").expect("token").to_string();
        assert!(!provider.is_active(&t), "the provider still honours {t}");
        let info = provider
            .token_info(&t)
            .expect("a token the provider issued");
        assert!(info.revoked);
        tokens.push(t);
    }
    assert_ne!(tokens[0], tokens[1], "one revocation per connection");
    let (_, bodies) = env.log();
    let outcomes: Vec<(String, Value)> = bodies
        .iter()
        .filter(|b| b["kind"] == "connection.revoked")
        .map(|b| {
            (
                b["aggregate_id"].as_str().expect("id").to_string(),
                b["payload"]["provider"]["outcome"].clone(),
            )
        })
        .collect();
    assert_eq!(outcomes.len(), 2, "{outcomes:?}");
    assert!(outcomes.iter().all(|(_, o)| o == "revoked"), "{outcomes:?}");
    let listed = api.get("/v1/auth-configs").await;
    assert!(
        listed.body["items"]
            .as_array()
            .expect("items")
            .iter()
            .all(|i| i["id"] != config.as_str()),
        "{}",
        listed.body
    );
    // Gone: a second delete is a 404.
    let r = api
        .call(Method::DELETE, &format!("/v1/auth-configs/{config}"), None)
        .await;
    assert_problem(&r, StatusCode::NOT_FOUND, "not-found", "second delete");
}

// ---------------------------------------------------------------------------------------------
// 4. End users' own connections
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_users_see_and_revoke_only_their_own_connections() {
    let keys = keys();
    let jwks_url = serve_jwks(json!({ "keys": [keys.rsa.1, keys.ec.1, keys.ed.1] })).await;
    let env = Env::start().await;
    let api = env.api();
    let r = api
        .call(
            Method::PUT,
            "/v1/workspace/identity-provider",
            Some(json!({ "issuer": ISSUER, "audience": AUDIENCE, "jwks_url": jwks_url })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let config = api
        .auth_config(json!({ "name": "Tickets", "provider": "custom",
            "auth_type": "bearer_token", "bearer_token": {} }))
        .await;
    let make = |user: &'static str, n: usize| {
        let api = &api;
        let config = config.clone();
        async move {
            let mut ids = Vec::new();
            for i in 0..n {
                let r = api
                    .post(
                        "/v1/connections",
                        json!({ "auth_config_id": config, "user_id": user,
                                "credentials": { "token": format!("tok-{user}-{i}") } }),
                    )
                    .await;
                assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
                ids.push(r.body["id"].as_str().expect("id").to_string());
            }
            ids
        }
    };
    let a_ids = make("user-a", 2).await;
    let b_ids = make("user-b", 1).await;

    let as_user = |jwt: String| {
        let mut api = Api::new(&env.svc, &jwt);
        api.http = Client::builder()
            .default_headers(
                [(
                    reqwest::header::HeaderName::from_static("authledger-workspace"),
                    reqwest::header::HeaderValue::from_str(&env.workspace).expect("header"),
                )]
                .into_iter()
                .collect(),
            )
            .build()
            .expect("client");
        api
    };
    let alice = as_user(token(
        Algorithm::ES256,
        "ec-1",
        &keys.ec.0,
        &claims("user-a", ISSUER, AUDIENCE, 300),
    ));
    let bob = as_user(token(
        Algorithm::EdDSA,
        "ed-1",
        &keys.ed.0,
        &claims("user-b", ISSUER, AUDIENCE, 300),
    ));
    let alice_rsa = as_user(token(
        Algorithm::RS256,
        "rsa-1",
        &keys.rsa.0,
        &claims("user-a", ISSUER, AUDIENCE, 300),
    ));
    let ids_of = |r: &Resp| -> Vec<String> {
        r.body["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| {
                assert!(i["user_id"].is_string());
                i["id"].as_str().expect("id").to_string()
            })
            .collect()
    };
    for who in [&alice, &alice_rsa] {
        let r = who.get("/v1/me/connections").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(ids_of(&r), a_ids);
        assert!(r.body["items"]
            .as_array()
            .expect("items")
            .iter()
            .all(|i| i["user_id"] == "user-a"));
    }
    let r = bob.get("/v1/me/connections").await;
    assert_eq!(ids_of(&r), b_ids);
    // Filters cannot widen the view.
    let r = alice
        .get(&format!(
            "/v1/me/connections?auth_config_id={config}&limit=1"
        ))
        .await;
    assert_eq!(ids_of(&r), a_ids[..1].to_vec());
    let r = alice.get("/v1/me/connections?user_id=user-b").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);

    // Another user's connection answers exactly like an unknown one, and is audited.
    let b_id = &b_ids[0];
    let theirs = alice
        .post(&format!("/v1/me/connections/{b_id}/revoke"), json!({}))
        .await;
    let unknown = alice
        .post(
            &format!("/v1/me/connections/{}/revoke", uuid::Uuid::now_v7()),
            json!({}),
        )
        .await;
    assert_problem(
        &theirs,
        StatusCode::NOT_FOUND,
        "not-found",
        "another user's",
    );
    assert_eq!(
        (theirs.status, &theirs.content_type, &theirs.body),
        (unknown.status, &unknown.content_type, &unknown.body)
    );
    assert_eq!(api.status_of(b_id).await, "active");
    let (_, bodies) = env.log();
    let denials: Vec<&Value> = bodies
        .iter()
        .filter(|b| b["kind"] == "access.denied" && b["payload"]["reason"] == "other_user")
        .collect();
    assert_eq!(denials.len(), 1, "{denials:?}");
    let d = denials[0];
    assert_eq!(d["payload"]["target_id"], b_id.as_str());
    assert_eq!(d["payload"]["route"], "/v1/me/connections/{id}/revoke");
    assert_eq!(d["payload"]["status"], 404);
    assert_eq!(d["actor"]["id"], "user-a", "{d}");
    assert_eq!(d["workspace_id"], env.workspace.as_str());

    // Alice revokes her own.
    let r = alice
        .post(
            &format!("/v1/me/connections/{}/revoke", a_ids[0]),
            json!({ "reason": "no longer needed" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        (r.body["id"].as_str(), r.body["status"].as_str()),
        (Some(a_ids[0].as_str()), Some("revoked"))
    );
    assert!(r.position.is_some(), "a write answers its position");
    assert_eq!(api.status_of(&a_ids[0]).await, "revoked");
    assert_eq!(api.status_of(&a_ids[1]).await, "active");
    let r = alice
        .post(
            &format!("/v1/me/connections/{}/revoke", a_ids[0]),
            json!({}),
        )
        .await;
    assert_problem(&r, StatusCode::CONFLICT, "conflict", "revoked twice");
    let (_, bodies) = env.log();
    let revoked: Vec<&Value> = bodies
        .iter()
        .filter(|b| b["kind"] == "connection.revoked")
        .collect();
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0]["aggregate_id"], a_ids[0].as_str());
    assert_eq!(revoked[0]["actor"]["id"], "user-a");

    // An API key is not an end user, not even an admin's.
    for (method, path) in [
        (Method::GET, "/v1/me/connections".to_string()),
        (
            Method::POST,
            format!("/v1/me/connections/{}/revoke", a_ids[1]),
        ),
    ] {
        let r = api.call(method, &path, Some(json!({}))).await;
        assert_problem(&r, StatusCode::UNAUTHORIZED, "unauthorized", &path);
    }
    assert_eq!(api.status_of(&a_ids[1]).await, "active");
}

// ---------------------------------------------------------------------------------------------
// 5. Read-your-writes and pagination
// ---------------------------------------------------------------------------------------------

fn position(r: &Resp, what: &str) -> u64 {
    r.position
        .as_deref()
        .unwrap_or_else(|| panic!("{what}: no authledger-position header"))
        .parse()
        .unwrap_or_else(|e| panic!("{what}: authledger-position not a number: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_answer_their_position_and_lists_page_by_cursor() {
    let env = Env::start().await;
    let api = env.api();

    // Every write answers the position it reached; positions only grow.
    let r = api
        .post(
            "/v1/auth-configs",
            json!({ "name": "Public", "provider": "custom", "auth_type": "no_auth" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let mut positions = vec![position(&r, "create auth config")];
    let config = r.body["id"].as_str().expect("id").to_string();
    let r = api
        .call(
            Method::PATCH,
            &format!("/v1/auth-configs/{config}"),
            Some(json!({ "name": "Public API" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    positions.push(position(&r, "update auth config"));
    let r = api
        .post(
            "/v1/connections",
            json!({ "auth_config_id": config, "user_id": "ryw" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let created_at = position(&r, "create connection");
    assert_eq!(r.body["position"].as_u64(), Some(created_at));
    positions.push(created_at);
    let ryw = r.body["id"].as_str().expect("id").to_string();
    let r = api
        .post(&format!("/v1/connections/{ryw}/revoke"), json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    positions.push(position(&r, "revoke connection"));
    let r = api
        .call(Method::DELETE, &format!("/v1/connections/{ryw}"), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    positions.push(position(&r, "delete connection"));
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
    // Reads answer no position.
    assert!(api.get("/v1/connections").await.position.is_none());

    // min_position: reached → 200; malformed → 400; beyond the log → 400 without waiting
    // (no write ever answered it; a position the log has but the projections lack is a 503
    // after the bounded wait: `readiness::a_stuck_projector_is_reported_*`).
    let last = *positions.last().expect("positions");
    let r = api
        .get(&format!("/v1/connections?min_position={last}"))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = api
        .get(&format!("/v1/connections/{ryw}?min_position={created_at}"))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "deleted: {}", r.body);
    for bad in ["abc", "-1", "", "1.5"] {
        let r = api
            .get(&format!("/v1/connections?min_position={bad}"))
            .await;
        assert_problem(&r, StatusCode::BAD_REQUEST, "invalid-request", bad);
    }
    let started = Instant::now();
    let r = api.get("/v1/connections?min_position=1000000000000").await;
    assert_problem(
        &r,
        StatusCode::BAD_REQUEST,
        "invalid-request",
        "beyond the log",
    );
    assert!(
        r.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("was never written")),
        "{}",
        r.body
    );
    assert!(
        r.retry_after.is_none(),
        "a retry cannot help: no Retry-After"
    );
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "waited for a position the log never had"
    );

    // Cursor pagination: 5 connections, pages of 2 → 2 + 2 + 1, in creation order.
    let paged = api
        .auth_config(json!({ "name": "Paged", "provider": "custom", "auth_type": "no_auth" }))
        .await;
    let mut created = Vec::new();
    for i in 0..5 {
        let r = api
            .post(
                "/v1/connections",
                json!({ "auth_config_id": paged, "user_id": format!("page-user-{i}") }),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        created.push(r.body["id"].as_str().expect("id").to_string());
    }
    let mut seen = Vec::new();
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/v1/connections?auth_config_id={paged}&limit=2");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let r = api.get(&path).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let items = r.body["items"].as_array().expect("items");
        pages.push(items.len());
        seen.extend(
            items
                .iter()
                .map(|i| i["id"].as_str().expect("id").to_string()),
        );
        match r.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
        assert!(pages.len() < 10, "pagination does not end");
    }
    assert_eq!(pages, vec![2, 2, 1]);
    assert_eq!(seen, created, "every id once, in creation order");
    // Unfiltered, they come in the same order.
    let mut all = api.connection_ids().await;
    all.retain(|id| created.contains(id));
    assert_eq!(all, created);

    // Cursors and limits the API did not issue or allow.
    let forged = B64URL.encode("not-a-connection-id");
    for bad in [
        "!!!".to_string(),
        "not%20a%20cursor".to_string(),
        "%FF%FE".to_string(),
        B64URL.encode([0xff, 0xfe, 0x00]),
        forged,
    ] {
        let r = api
            .get(&format!("/v1/connections?limit=2&cursor={bad}"))
            .await;
        assert_problem(&r, StatusCode::BAD_REQUEST, "invalid-request", &bad);
    }
    for limit in ["0", "500", "-1", "201"] {
        let r = api.get(&format!("/v1/connections?limit={limit}")).await;
        assert_problem(&r, StatusCode::BAD_REQUEST, "invalid-request", limit);
    }
    let r = api.get("/v1/connections?limit=200").await;
    assert_eq!(r.status, StatusCode::OK);
    let r = api.get("/v1/connections?status=deleted").await;
    assert_problem(
        &r,
        StatusCode::BAD_REQUEST,
        "invalid-request",
        "status=deleted",
    );
}

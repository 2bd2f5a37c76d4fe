//! Helpers shared by the HTTP end-to-end tests: a recording upstream HTTP server, starting
//! `serve` (`Deployment`: either stack, one or more instances), the service's clock moved by
//! the test (`TestClock`), sending requests and reading the answers, the test OAuth provider
//! with our client, the browser side of the connect flow, a second workspace, and reading
//! the embedded log.

use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use reqwest::{Client, Method, RequestBuilder, StatusCode, Url};
use serde_json::Value;

use authledger::ledger::envelope::{open_envelope, EventBody};
use authledger::ledger::sqlite_log::SqliteEventLog;
use authledger::ledger::EventLog;

use crate::fixtures::oauth_provider::{
    no_redirect_client, ClientAuthMethod, ClientConfig, OAuthProvider, ProviderConfig,
};
use crate::harness::{args, run_cli, NatsServer, Service};

pub const PROBLEMS: &str = "https://authledger.dev/problems/";
/// Where connect flows send the user back (registered on every OAuth auth config).
pub const RETURN_TO: &str = "https://app.example.com/connected";

/// What every instance needs: loopback URLs allowed (the provider and upstreams are local)
/// and no refresh scheduler (tests drive refreshes themselves).
pub const BASE_ENV: &[(&str, &str)] = &[
    ("AUTHLEDGER_ALLOW_LOOPBACK_URLS", "true"),
    ("AUTHLEDGER_REFRESH_SCHEDULE", "off"),
];

/// No request rate limit, for tests that make many calls (the limit has its own tests).
pub const NO_RATE_LIMIT: &[(&str, &str)] = &[
    ("AUTHLEDGER_RATE_LIMIT_PER_SEC", "100000"),
    ("AUTHLEDGER_RATE_LIMIT_BURST", "100000"),
    ("AUTHLEDGER_WORKSPACE_RATE_LIMIT_PER_SEC", "100000"),
    ("AUTHLEDGER_WORKSPACE_RATE_LIMIT_BURST", "100000"),
];

// ---------------------------------------------------------------------------------------------
// A recording upstream
// ---------------------------------------------------------------------------------------------

/// One request as an upstream received it.
#[derive(Debug, Clone)]
pub struct Hit {
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    /// Lower-cased names, in order.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Hit {
    pub fn header(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn query(&self, name: &str) -> Vec<&str> {
        self.query
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn of(method: &axum::http::Method, uri: &Uri, headers: &HeaderMap, body: String) -> Hit {
        Hit {
            method: method.as_str().to_string(),
            path: uri.path().to_string(),
            query: url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
            headers: headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_ascii_lowercase(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body,
        }
    }
}

/// A local HTTP server that records every request, then lets `answer` reply to it (each
/// test file decides what its upstream says). Stops on drop.
pub struct Upstream {
    pub base_url: String,
    hits: Arc<Mutex<Vec<Hit>>>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Upstream {
    pub async fn start<F, Fut>(answer: F) -> Upstream
    where
        F: Fn(Hit) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Response> + Send + 'static,
    {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("upstream: bind");
        let base_url = format!("http://{}", listener.local_addr().expect("upstream: addr"));
        let hits = Arc::new(Mutex::new(Vec::new()));
        let record = hits.clone();
        let app = axum::Router::new().fallback(
            move |method: axum::http::Method, uri: Uri, headers: HeaderMap, body: String| {
                let (record, answer) = (record.clone(), answer.clone());
                async move {
                    let hit = Hit::of(&method, &uri, &headers, body);
                    record.lock().expect("hits").push(hit.clone());
                    answer(hit).await
                }
            },
        );
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await;
        });
        Upstream {
            base_url,
            hits,
            _stop: tx,
        }
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.hits.lock().expect("hits").clone()
    }

    pub fn hits_to(&self, path: &str) -> Vec<Hit> {
        self.hits().into_iter().filter(|h| h.path == path).collect()
    }
}

// ---------------------------------------------------------------------------------------------
// The service and its answers
// ---------------------------------------------------------------------------------------------

/// A first `serve` on a fresh embedded log: it bootstraps a workspace and prints its admin
/// key. Fields drop in order: the service stops before its directory goes.
pub struct Embedded {
    pub svc: Service,
    pub admin: String,
    pub workspace: String,
    /// The first admin's console sign-up link, as `serve` printed it.
    pub console_sign_up: String,
    /// `--data-dir <dir>/data`, for CLI commands on the same log.
    pub storage: Vec<String>,
    pub dir: tempfile::TempDir,
}

impl Embedded {
    pub async fn start(envs: &[(&str, &str)]) -> Embedded {
        let dir = tempfile::tempdir().expect("dir");
        let storage = args(&["--data-dir", &data_dir(dir.path()).display().to_string()]);
        let svc = Service::start(&storage, envs, dir.path()).await;
        let printed: Value =
            serde_json::from_str(&std::fs::read_to_string(&svc.stdout_path).expect("stdout"))
                .expect("the first serve prints the workspace and admin key");
        Embedded {
            console_sign_up: printed["console_sign_up_url"]
                .as_str()
                .expect("the first serve prints the console sign-up link")
                .into(),
            admin: printed["admin_api_key"].as_str().expect("key").into(),
            workspace: printed["workspace_id"].as_str().expect("ws").into(),
            svc,
            storage,
            dir,
        }
    }
}

/// The embedded log's data directory under a test's temp dir.
pub fn data_dir(dir: &Path) -> std::path::PathBuf {
    dir.join("data")
}

/// An answer: status, headers, the body as JSON (`Null` when it is not) and as text.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Reply {
    /// Sends `req` and reads the whole answer.
    pub async fn of(req: RequestBuilder) -> Reply {
        let r = req.send().await.expect("request");
        let status = r.status();
        let headers = r.headers().clone();
        let text = r.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
            text,
        }
    }

    /// The problem type without its URI prefix (`""` when the answer is not a problem).
    pub fn problem(&self) -> &str {
        self.body["type"]
            .as_str()
            .and_then(|t| t.strip_prefix(PROBLEMS))
            .unwrap_or("")
    }

    pub fn str(&self, key: &str) -> String {
        self.body[key]
            .as_str()
            .unwrap_or_else(|| panic!("no string {key} in {}", self.text))
            .to_string()
    }

    #[track_caller]
    pub fn expect(&self, status: StatusCode, problem: &str) {
        assert_eq!(
            (self.status, self.problem()),
            (status, problem),
            "{}",
            self.text
        );
    }
}

/// `method path` on `svc` with `bearer`, and `body` as JSON when there is one.
pub fn request(
    http: &Client,
    svc: &Service,
    bearer: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> RequestBuilder {
    let req = http.request(method, svc.url(path)).bearer_auth(bearer);
    match body {
        Some(b) => req.json(&b),
        None => req,
    }
}

/// The calls the agents and gateways tests make on their `Env`, over its own `call` (the
/// agents `Env` keeps every answer for its secret scan).
pub trait Api {
    async fn call(&self, bearer: &str, method: Method, path: &str, body: Option<Value>) -> Reply;

    fn admin(&self) -> &str;

    async fn get(&self, bearer: &str, path: &str) -> Reply {
        self.call(bearer, Method::GET, path, None).await
    }

    async fn post(&self, bearer: &str, path: &str, body: Value) -> Reply {
        self.call(bearer, Method::POST, path, Some(body)).await
    }

    /// A new API key of `role` (made by `admin`): (id, key).
    async fn key_of(&self, admin: &str, role: &str) -> (String, String) {
        let r = self
            .post(
                admin,
                "/v1/api-keys",
                serde_json::json!({ "name": format!("{role} key"), "role": role }),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        (r.str("id"), r.str("key"))
    }

    /// A connection from `credentials`, made by `admin` (active at once): its id.
    async fn credential_connection_by(
        &self,
        admin: &str,
        config: &str,
        user: &str,
        credentials: Value,
    ) -> String {
        let r = self
            .post(
                admin,
                "/v1/connections",
                serde_json::json!({ "auth_config_id": config, "user_id": user, "credentials": credentials }),
            )
            .await;
        assert_eq!(
            (r.status, r.body["status"].as_str()),
            (StatusCode::CREATED, Some("active")),
            "{}",
            r.text
        );
        r.str("id")
    }

    /// This workspace's audit events matching `query`, oldest first.
    async fn audit_events(&self, query: &str) -> Vec<Value> {
        let r = self
            .get(
                self.admin(),
                &format!("/v1/audit/events?{query}&order=asc&limit=1000"),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        r.body["items"].as_array().expect("items").clone()
    }

    /// Polls the audit view until `done` holds (projections follow the log), failing after
    /// `timeout`.
    async fn audit_events_until(
        &self,
        query: &str,
        what: &str,
        timeout: Duration,
        done: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let items = self.audit_events(query).await;
            if done(&items) {
                return items;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {items:#?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Bootstraps workspace `name` with the CLI on `storage` (while the service runs): its
/// admin key. The caller waits until the service shows it.
/// A create's answer without the members only a write answers (each must be there): what a
/// read of the same resource shows, when the answer is built from the write itself.
pub fn as_read(answer: &Value, only_in_the_answer: &[&str]) -> Value {
    let mut read = answer.clone();
    if let Some(map) = read.as_object_mut() {
        for member in only_in_the_answer {
            assert!(map.remove(*member).is_some(), "{member} missing: {answer}");
        }
    }
    read
}

pub async fn bootstrap_workspace(storage: &[String], name: &str) -> String {
    let out = cli(storage, &["bootstrap", "--workspace", name]).await;
    let printed: Value = serde_json::from_slice(&out.stdout).expect("json");
    printed["admin_api_key"].as_str().expect("key").to_string()
}

/// Runs the CLI on `storage` off the async runtime; fails the test unless it succeeds.
pub async fn cli(storage: &[String], command: &[&str]) -> std::process::Output {
    let a = [storage.to_vec(), args(command)].concat();
    let out = tokio::task::spawn_blocking(move || run_cli(&a))
        .await
        .expect("join");
    assert!(
        out.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Every event in the embedded log under `dir`, as signed: (position, body).
pub async fn log_events(dir: &Path) -> Vec<(u64, EventBody)> {
    let log = SqliteEventLog::open(&data_dir(dir).join("ledger.db"))
        .await
        .expect("open log");
    let mut out = Vec::new();
    for e in log.read_from(1, 100_000).await.expect("read") {
        let body = open_envelope(&e.envelope).expect("envelope").body;
        out.push((e.position, body));
    }
    log.close().await;
    out
}

// ---------------------------------------------------------------------------------------------
// The test OAuth provider and the connect flow
// ---------------------------------------------------------------------------------------------

/// The test provider, with our client registered for the service's callback.
pub async fn provider_for(svc: &Service, client_id: &str, client_secret: &str) -> OAuthProvider {
    let provider = OAuthProvider::start(ProviderConfig::default()).await;
    provider.register_client(
        ClientConfig::new(
            client_id,
            client_secret,
            ClientAuthMethod::ClientSecretBasic,
        )
        .redirect_uri(&svc.url("/v1/oauth/callback"))
        .scopes(&["read", "write"]),
    );
    provider
}

/// The body of an OAuth 2.0 auth config at the test provider, scopes `read write`.
pub fn oauth_config_body(provider: &OAuthProvider, client_id: &str, client_secret: &str) -> Value {
    serde_json::json!({
        "name": "Example provider", "provider": "custom", "auth_type": "oauth2",
        "oauth2": {
            "client_id": client_id, "client_secret": client_secret,
            "authorization_url": provider.authorization_url(),
            "token_url": provider.token_url(),
            "revocation_url": provider.revocation_url(),
            "client_auth_method": "client_secret_basic",
            "scopes": ["read", "write"],
            "redirect_urls": [RETURN_TO],
        }
    })
}

/// Plays the user's browser on a connect URL: consent at the provider, then our callback.
/// Returns where the callback sends the user (its query says how the connect went).
pub async fn follow_connect_url(provider: &OAuthProvider, connect_url: &str) -> Url {
    let callback = provider.visit(connect_url).await;
    let r = no_redirect_client()
        .get(callback.as_str())
        .send()
        .await
        .expect("callback");
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    Url::parse(
        r.headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .expect("location"),
    )
    .expect("location url")
}

/// `follow_connect_url`, and asserts the connect went through (`status=active`).
pub async fn complete_connect(provider: &OAuthProvider, connect_url: &str) {
    let location = follow_connect_url(provider, connect_url).await;
    assert!(
        location
            .query_pairs()
            .any(|(k, v)| k == "status" && v == "active"),
        "{location}"
    );
}

// ---------------------------------------------------------------------------------------------
// The service's clock
// ---------------------------------------------------------------------------------------------

/// The service's clock, moved by the test instead of waiting: `serve` reads the system time
/// plus the seconds in this file when `env()` is in its environment (debug builds only:
/// `authledger::test_clock`). Starts with no offset.
pub struct TestClock {
    path: String,
    ahead: Mutex<i64>,
    _dir: tempfile::TempDir,
}

impl TestClock {
    pub fn new() -> TestClock {
        let dir = tempfile::tempdir().expect("clock dir");
        let path = dir.path().join("clock").display().to_string();
        std::fs::write(&path, "0").expect("clock file");
        TestClock {
            path,
            ahead: Mutex::new(0),
            _dir: dir,
        }
    }

    /// The variable that gives `serve` this clock (`authledger::test_clock::CLOCK_FILE_ENV`,
    /// spelled out so that the suite still compiles where the module is compiled out).
    pub fn env(&self) -> (&'static str, &str) {
        ("AUTHLEDGER_TEST_CLOCK_FILE", &self.path)
    }

    /// Moves the service's time forward by `by` (whole seconds).
    pub fn advance(&self, by: Duration) {
        let mut ahead = self.ahead.lock().expect("clock");
        *ahead += i64::try_from(by.as_secs()).expect("seconds");
        // Renamed into place: the service never reads a half-written file.
        let next = format!("{}.next", self.path);
        std::fs::write(&next, ahead.to_string()).expect("clock file");
        std::fs::rename(&next, &self.path).expect("clock file");
    }

    /// What the service reads as now.
    pub fn now(&self) -> time::OffsetDateTime {
        time::OffsetDateTime::now_utc()
            + time::Duration::seconds(*self.ahead.lock().expect("clock"))
    }
}

// ---------------------------------------------------------------------------------------------
// A deployment on either storage stack
// ---------------------------------------------------------------------------------------------

/// Where a deployment keeps its log and projections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stack {
    /// The embedded default: SQLite log and projections in the data dir.
    Embedded,
    /// A test-owned JetStream server and a fresh PostgreSQL database.
    JetStreamPg,
    /// A test-owned 3-node JetStream cluster (the stream with 3 replicas) and a fresh
    /// PostgreSQL database.
    JetStreamClusterPg,
}

impl Stack {
    /// Whether several `serve` processes may share the log (the embedded log has one
    /// writer process).
    pub fn shared_log(self) -> bool {
        self != Stack::Embedded
    }
}

/// One `serve` instance on `Stack` with its workspace's admin key. Fields drop in order:
/// the service stops before its NATS server and directory go.
pub struct Deployment {
    pub svc: Service,
    /// Instances 1.. on the same log and projections (`start_instances`).
    pub more: Vec<Service>,
    pub admin: String,
    pub workspace: String,
    /// The first admin's console sign-up link (`serve`'s, or `bootstrap`'s path on it).
    pub console_sign_up: String,
    /// Storage arguments for CLI commands and restarts on the same log and projections.
    pub storage: Vec<String>,
    /// The projections' PostgreSQL database (JetStream stack only).
    pub database_url: Option<String>,
    /// The NATS servers the deployment owns (none, one, or a cluster's three).
    pub _nats: Vec<crate::harness::NatsServer>,
    pub dir: tempfile::TempDir,
}

impl Deployment {
    pub async fn start(stack: Stack, envs: &[(&str, &str)]) -> Deployment {
        match stack {
            Stack::Embedded => {
                let e = Embedded::start(envs).await;
                Deployment {
                    console_sign_up: e.console_sign_up,
                    svc: e.svc,
                    more: Vec::new(),
                    admin: e.admin,
                    workspace: e.workspace,
                    storage: e.storage,
                    database_url: None,
                    _nats: Vec::new(),
                    dir: e.dir,
                }
            }
            Stack::JetStreamPg => Deployment::on_nats(vec![NatsServer::start()], envs).await,
            Stack::JetStreamClusterPg => {
                Deployment::on_nats(NatsServer::start_cluster(3), envs).await
            }
        }
    }

    /// `keys init`, `bootstrap` and `serve` on `nats` (one server, or a cluster whose
    /// stream gets one replica per server) and a fresh PostgreSQL database.
    async fn on_nats(nats: Vec<NatsServer>, envs: &[(&str, &str)]) -> Deployment {
        let dir = tempfile::tempdir().expect("dir");
        let pg = crate::harness::fresh_pg_database().await;
        let urls = nats
            .iter()
            .map(NatsServer::url)
            .collect::<Vec<_>>()
            .join(",");
        let replicas = nats.len().to_string();
        let storage = args(&[
            "--data-dir",
            &data_dir(dir.path()).display().to_string(),
            "--nats-url",
            &urls,
            "--nats-replicas",
            &replicas,
            "--database-url",
            &pg,
        ]);
        let out = run_cli(&[storage.clone(), args(&["keys", "init"])].concat());
        assert!(
            out.status.success(),
            "keys init: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let printed = bootstrapped(&storage, nats.len() > 1).await;
        let svc = Service::start(&storage, envs, dir.path()).await;
        let path = printed["console_sign_up_path"].as_str().expect("path");
        Deployment {
            console_sign_up: svc.url(path),
            svc,
            more: Vec::new(),
            admin: printed["admin_api_key"].as_str().expect("key").into(),
            workspace: printed["workspace_id"].as_str().expect("ws").into(),
            storage,
            database_url: Some(pg),
            _nats: nats,
            dir,
        }
    }

    /// `start` with `instances` `serve` processes on one log and one set of projections
    /// (JetStream stack: the embedded log has one writer process). Instance 0 is `svc`; the
    /// others, in `more`, each have their own data dir and share instance 0's key dir.
    pub async fn start_instances(
        stack: Stack,
        instances: usize,
        envs: &[(&str, &str)],
    ) -> Deployment {
        assert!(
            instances == 1 || stack.shared_log(),
            "the embedded log has one writer process"
        );
        let mut d = Deployment::start(stack, envs).await;
        for i in 1..instances {
            let storage = d.instance_storage(i);
            d.more
                .push(Service::start(&storage, envs, d.dir.path()).await);
        }
        d
    }

    /// Instance `i` of `start_instances` (0 is `svc`).
    pub fn instance(&self, i: usize) -> &Service {
        match i {
            0 => &self.svc,
            _ => &self.more[i - 1],
        }
    }

    /// The storage arguments of instance `i`: its own data dir, instance 0's key dir.
    fn instance_storage(&self, i: usize) -> Vec<String> {
        let mut storage = self.storage.clone();
        let at = storage
            .iter()
            .position(|a| a == "--data-dir")
            .expect("--data-dir")
            + 1;
        let data = std::mem::replace(
            &mut storage[at],
            self.dir
                .path()
                .join(format!("instance{i}"))
                .display()
                .to_string(),
        );
        storage.extend(args(&[
            "--key-dir",
            &Path::new(&data).join("keys").display().to_string(),
        ]));
        storage
    }

    /// `serve` again on the same storage and address (the old process is killed first).
    pub async fn restart(&mut self, envs: &[(&str, &str)]) {
        let _ = self.svc.child.kill();
        let _ = self.svc.child.wait();
        let port = self
            .svc
            .addr
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port");
        self.svc = Service::start_on(port, &self.storage, envs, self.dir.path()).await;
    }

    /// A second workspace, bootstrapped by the CLI while the service runs: its admin key,
    /// once the service accepts it.
    pub async fn other_workspace(&self, name: &str) -> String {
        let key = bootstrap_workspace(&self.storage, name).await;
        let http = Client::new();
        crate::harness::eventually(Duration::from_secs(15), "the other workspace", || async {
            http.get(self.svc.url("/v1/workspace"))
                .bearer_auth(&key)
                .send()
                .await
                .is_ok_and(|r| r.status() == StatusCode::OK)
        })
        .await;
        key
    }

    /// Another `serve` instance on this deployment's JetStream log and PostgreSQL (its own
    /// data dir, this one's keys).
    pub async fn second_instance(&self, envs: &[(&str, &str)]) -> Service {
        let own = self.dir.path().join("second");
        let mut storage = Vec::new();
        let mut flags = self.storage.iter();
        while let Some(flag) = flags.next() {
            let value = flags.next().expect("a value for every storage flag");
            if flag == "--data-dir" {
                storage.extend([flag.clone(), own.display().to_string()]);
                storage.extend(["--key-dir".to_string(), format!("{value}/keys")]);
            } else {
                storage.extend([flag.clone(), value.clone()]);
            }
        }
        assert!(
            self.database_url.is_some(),
            "a second instance needs the shared stack"
        );
        Service::start(&storage, envs, self.dir.path()).await
    }

    /// The embedded projections file (embedded stack).
    pub fn projections_db(&self) -> std::path::PathBuf {
        data_dir(self.dir.path()).join("projections.db")
    }

    /// Runs `sql` on the projections, behind the service's back (to damage or hold them).
    pub async fn projections_sql(&self, sql: &str) {
        match &self.database_url {
            Some(url) => {
                let pool = sqlx::PgPool::connect(url).await.expect("connect");
                sqlx::raw_sql(sql).execute(&pool).await.expect("sql");
                pool.close().await;
            }
            None => {
                let c = rusqlite::Connection::open(self.projections_db()).expect("open");
                c.busy_timeout(Duration::from_secs(10)).expect("timeout");
                c.execute_batch(sql).expect("sql");
            }
        }
    }
}

/// What `bootstrap` printed. A cluster elects its JetStream leader first and the stream
/// cannot be made until then, so there it is tried again for up to a minute (each try's
/// error kept for the message); one server answers at once.
async fn bootstrapped(storage: &[String], cluster: bool) -> Value {
    let command = [
        storage.to_vec(),
        args(&["bootstrap", "--workspace", "acme"]),
    ]
    .concat();
    let deadline = Instant::now() + Duration::from_secs(if cluster { 60 } else { 0 });
    loop {
        let c = command.clone();
        let out = tokio::task::spawn_blocking(move || run_cli(&c))
            .await
            .expect("join");
        if out.status.success() {
            return serde_json::from_slice(&out.stdout).expect("json");
        }
        assert!(
            Instant::now() < deadline,
            "bootstrap: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

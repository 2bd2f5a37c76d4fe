//! What the native connector tests share: a service allowed to reach loopback, an auth
//! config made from a connector definition over the API, its `POST …/test` and a
//! connection made with credentials, and the failure cases every driver must classify
//! (a closed port, a listener that accepts and never answers). Each driver's own file
//! starts its real server on free ports.

use std::time::Duration;

use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};

use crate::harness::free_port;
use crate::support::{cli, request, Deployment, Reply, Stack, BASE_ENV};

/// The connector test's timeout in these services (a silent listener costs this much).
pub const TIMEOUT_SECS: &str = "2";

pub struct Lab {
    pub env: Deployment,
    http: Client,
    /// Every answer's text, for the leak check.
    transcript: std::sync::Mutex<String>,
}

impl Lab {
    pub async fn start(stack: Stack) -> Lab {
        Lab::with_timeout(stack, TIMEOUT_SECS).await
    }

    /// A lab whose connector tests wait `secs` (RabbitMQ answers a refused login only
    /// after 3 s).
    pub async fn with_timeout(stack: Stack, secs: &str) -> Lab {
        let mut envs = BASE_ENV.to_vec();
        envs.push(("AUTHLEDGER_PROVIDER_TIMEOUT_SECS", secs));
        Lab {
            env: Deployment::start(stack, &envs).await,
            http: Client::new(),
            transcript: std::sync::Mutex::new(String::new()),
        }
    }

    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        let r = Reply::of(request(
            &self.http,
            &self.env.svc,
            &self.env.admin,
            method,
            path,
            body,
        ))
        .await;
        self.transcript
            .lock()
            .expect("transcript")
            .push_str(&r.text);
        r
    }

    /// `POST /v1/auth-configs` with the connector and its settings: the answer.
    pub async fn try_config(&self, connector: &str, settings: Value) -> Reply {
        self.call(
            Method::POST,
            "/v1/auth-configs",
            Some(json!({
                "name": format!("{connector} under test"), "provider": connector,
                "auth_type": "connector",
                "connector": { "id": connector, "settings": settings },
            })),
        )
        .await
    }

    /// An auth config made from the connector; its id.
    pub async fn config(&self, connector: &str, settings: Value) -> String {
        let r = self.try_config(connector, settings).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        r.str("id")
    }

    /// `POST /v1/auth-configs/{id}/test` with the credentials: the report.
    pub async fn test(&self, id: &str, credentials: Value) -> Value {
        let r = self
            .call(
                Method::POST,
                &format!("/v1/auth-configs/{id}/test"),
                Some(json!({ "credentials": credentials })),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        r.body
    }

    #[track_caller]
    pub fn passed(report: &Value) {
        assert_eq!(report["ok"], true, "{report}");
        assert!(report["latency_ms"].is_u64(), "{report}");
    }

    /// The report failed with `class`; its message.
    pub async fn fails(&self, id: &str, credentials: Value, class: &str) -> String {
        let report = self.test(id, credentials).await;
        assert_eq!(
            (report["ok"].as_bool(), report["class"].as_str()),
            (Some(false), Some(class)),
            "{report}"
        );
        report["error"].as_str().expect("error").to_string()
    }

    /// `POST /v1/connections` with the credentials: the answer.
    pub async fn connect(&self, id: &str, user: &str, credentials: Value) -> Reply {
        self.call(
            Method::POST,
            "/v1/connections",
            Some(json!({ "auth_config_id": id, "user_id": user, "credentials": credentials })),
        )
        .await
    }

    /// Checks the usual cases: a connection made (tested) with good credentials; bad
    /// credentials refused (409, nothing written); a closed port `unreachable`; a listener
    /// that never answers `timeout`; a setting of the wrong kind a 422 naming it.
    pub async fn common_cases(
        &self,
        connector: &str,
        settings: &Value,
        good: &Value,
        wrong_password: &Value,
    ) {
        let id = self.config(connector, settings.clone()).await;
        let r = self.connect(&id, "owner-1", good.clone()).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        assert_eq!(r.body["status"], "active", "{}", r.text);
        let r = self.connect(&id, "owner-2", wrong_password.clone()).await;
        r.expect(StatusCode::CONFLICT, "conflict");
        assert!(r.text.contains("invalid_credentials"), "{}", r.text);

        let closed = free_port();
        let mut s = settings.clone();
        s["port"] = json!(closed);
        let unreachable = self.config(connector, s).await;
        let said = self.fails(&unreachable, good.clone(), "unreachable").await;
        assert!(said.contains("refused"), "{said}");

        let silent = Silent::start().await;
        let mut s = settings.clone();
        s["port"] = json!(silent.port);
        let quiet = self.config(connector, s).await;
        let started = std::time::Instant::now();
        self.fails(&quiet, good.clone(), "timeout").await;
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{:?}",
            started.elapsed()
        );

        let mut s = settings.clone();
        s["port"] = json!("five four three two");
        let r = self.try_config(connector, s).await;
        r.expect(StatusCode::UNPROCESSABLE_ENTITY, "validation-failed");
        assert!(r.text.contains("port"), "{}", r.text);
        let mut s = settings.clone();
        s["no_such_field"] = json!(1);
        let r = self.try_config(connector, s).await;
        r.expect(StatusCode::UNPROCESSABLE_ENTITY, "validation-failed");
        assert!(r.text.contains("no_such_field"), "{}", r.text);
    }

    /// No secret in any answer received, nor in the log (`dump-log`).
    pub async fn assert_nowhere(&self, secrets: &[&str]) {
        let dump = cli(&self.env.storage, &["dump-log"]).await;
        let raw = String::from_utf8_lossy(&dump.stdout).to_string();
        // The signed bodies, opened (the envelope holds them encoded).
        let mut log = raw.clone();
        for line in raw.lines() {
            let rec: Value = serde_json::from_str(line).expect("dump-log line");
            let body = authledger::ledger::envelope::open_envelope(
                rec["envelope"].as_str().expect("envelope").as_bytes(),
            )
            .expect("open envelope")
            .body;
            log.push_str(&serde_json::to_string(&body).expect("body"));
        }
        let transcript = self.transcript.lock().expect("transcript").clone();
        for s in secrets {
            assert!(!transcript.contains(s), "a secret in an answer");
            assert!(!log.contains(s), "a secret in the log");
        }
        assert!(log.contains("auth_config.created"), "the log was read");
    }
}

/// A listener that accepts connections and never says a word.
/// A connection's hosted connect page as a browser opened it: its link, the connection,
/// the page and what a form post needs (cookie, CSRF token, origin).
pub struct HostedPage {
    browser: Client,
    pub link: String,
    pub connection: String,
    pub html: String,
    cookie: String,
    csrf: String,
    origin: String,
}

impl Lab {
    /// Creates a connection for `user` through auth config `id` and opens its hosted
    /// connect page in a fresh browser (no redirects followed).
    pub async fn open_hosted_page(&self, id: &str, user: &str) -> HostedPage {
        let r = self
            .call(
                Method::POST,
                "/v1/connections",
                Some(json!({ "auth_config_id": id, "user_id": user })),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        let link = r.str("connect_url");
        let browser = Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        let page = browser.get(&link).send().await.expect("page");
        assert_eq!(page.status(), StatusCode::OK);
        let cookie = page
            .headers()
            .get("set-cookie")
            .and_then(|c| c.to_str().ok())
            .and_then(|c| c.split(';').next())
            .expect("the CSRF cookie")
            .to_string();
        let html = page.text().await.expect("html");
        let csrf = crate::connectors_redis::input_value(&html, "csrf");
        HostedPage {
            browser,
            link,
            connection: r.str("id"),
            html,
            cookie,
            csrf,
            origin: self.env.svc.url("").trim_end_matches('/').to_string(),
        }
    }
}

impl HostedPage {
    /// Posts `form` (its CSRF token added) to the page, as the browser that opened it.
    pub async fn post(&self, form: Vec<(&str, String)>) -> reqwest::Response {
        let mut fields = vec![("csrf", self.csrf.clone())];
        fields.extend(form);
        self.browser
            .post(&self.link)
            .header("Origin", &self.origin)
            .header("Cookie", &self.cookie)
            .form(&fields)
            .send()
            .await
            .expect("post")
    }
}

pub struct Silent {
    pub port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl Silent {
    pub async fn start() -> Silent {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((sock, _)) = listener.accept().await {
                held.push(sock);
            }
        });
        Silent { port, task }
    }
}

impl Drop for Silent {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `program`'s path, or a failure that says `tools/test` installs it (never a skip).
pub fn binary(program: &str, package: &str) -> std::path::PathBuf {
    // RabbitMQ's own script first: /usr/sbin's wrapper switches to the `rabbitmq` user.
    for dir in [
        "/usr/lib/rabbitmq/bin",
        "/usr/sbin",
        "/usr/bin",
        "/usr/local/bin",
    ] {
        let p = std::path::Path::new(dir).join(program);
        if p.is_file() {
            return p;
        }
    }
    panic!("{program} is not installed: tools/test installs it (apt-get install -y {package})");
}

/// Waits (bounded) until `port` on 127.0.0.1 accepts connections.
pub async fn wait_for_port(port: u16, what: &str, within: Duration) {
    let deadline = std::time::Instant::now() + within;
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "{what} did not start listening on {port}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The stacks every connector test runs on.
pub const STACKS: [Stack; 2] = [Stack::Embedded, Stack::JetStreamPg];

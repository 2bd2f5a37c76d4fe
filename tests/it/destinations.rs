//! The outbound destination policy end to end (issue 15, items 1, 3, 4, 7 and 13): every
//! spelling that used to get around the loopback ban, https to internal addresses, the
//! PostgreSQL connector's host, user info in URLs, the operator's allow list, and a JWKS
//! that streams without end, all against the real service.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{request, Deployment, Reply, Stack, Upstream, BASE_ENV};

/// A service that does not allow loopback destinations (production's default).
const STRICT_ENV: &[(&str, &str)] = &[("AUTHLEDGER_REFRESH_SCHEDULE", "off")];

/// An upstream that answers 200 to anything (and records what reached it).
async fn upstream() -> Upstream {
    Upstream::start(|_| async { axum::response::IntoResponse::into_response("{}") }).await
}

async fn call(env: &Deployment, method: Method, path: &str, body: Option<Value>) -> Reply {
    Reply::of(request(
        &Client::new(),
        &env.svc,
        &env.admin,
        method,
        path,
        body,
    ))
    .await
}

/// `POST path body` as the admin, which must answer 201.
async fn create(env: &Deployment, path: &str, body: Value) -> Reply {
    let r = call(env, Method::POST, path, Some(body)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{path}: {}", r.text);
    r
}

fn tool(name: &str, base_url: &str) -> Value {
    json!({
        "name": name, "provider": "custom", "description": "Destination policy test tool.",
        "method": "GET", "base_url": base_url, "path": "/items",
        "parameters": { "type": "object" }, "required_scopes": [], "risk": "read",
    })
}

fn oauth_config(token_url: &str, authorization_url: &str) -> Value {
    json!({
        "name": "Provider", "provider": "custom", "auth_type": "oauth2",
        "oauth2": {
            "client_id": "c", "client_secret": "s",
            "authorization_url": authorization_url, "token_url": token_url,
            "scopes": ["read"], "redirect_urls": ["https://app.example.com/cb"],
        }
    })
}

fn postgres_config(host: &str, port: u16) -> Value {
    json!({
        "name": "Warehouse", "provider": "custom", "auth_type": "postgres",
        "postgres": { "host": host, "port": port, "database": "postgres", "ssl_mode": "disable" },
    })
}

fn identity_provider(jwks_url: &str) -> Value {
    json!({ "issuer": "https://idp.test/", "audience": "authledger-test", "jwks_url": jwks_url })
}

/// A refusal by the policy: 422, and the detail says the destination is refused and why.
#[track_caller]
fn assert_refused(r: &Reply, what: &str, why: &str) {
    r.expect(StatusCode::UNPROCESSABLE_ENTITY, "validation-failed");
    let detail = r.body["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains(why),
        "{what}: the detail should say {why:?}: {}",
        r.text
    );
}

/// A name from this machine's hosts file that resolves to a loopback address, other than
/// `localhost` (which the policy knows by name), so the refusal comes from resolving it.
fn hosts_file_loopback_name() -> String {
    let hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    hosts
        .lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let ip: IpAddr = words.next()?.parse().ok()?;
            ip.is_loopback().then_some(words)
        })
        .flatten()
        .find(|name| !name.contains("localhost") && name.parse::<IpAddr>().is_err())
        .unwrap_or("localhost")
        .to_string()
}

/// Item 1: tool base URLs that are plain http in any spelling are judged as plain http, and
/// a service without `--allow-loopback-urls` refuses them; the upstream is never called.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_base_urls_in_any_spelling_of_http_are_refused_without_loopback_urls() {
    let env = Deployment::start(Stack::Embedded, STRICT_ENV).await;
    let up = upstream().await;
    let hostport = up.base_url.trim_start_matches("http://").to_string();
    for (i, spelling) in [
        format!("HTTP://{hostport}"),
        format!("hTTp://{hostport}"),
        format!("http://{hostport}"),
        format!("http:{hostport}"),
        format!("http:/{hostport}"),
        format!("http:\\\\{hostport}"),
        format!("HtTp:\\/{hostport}"),
    ]
    .iter()
    .enumerate()
    {
        let r = call(
            &env,
            Method::POST,
            "/v1/tools",
            Some(tool(&format!("custom.spelling_{i}"), spelling)),
        )
        .await;
        assert_refused(&r, spelling, "destination refused");
        assert!(
            r.text.contains("--allow-loopback-urls"),
            "{spelling}: {}",
            r.text
        );
    }
    let r = call(&env, Method::GET, "/v1/tools", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let defined: Vec<&Value> = r.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|t| t["source"] == "workspace")
        .collect();
    assert!(defined.is_empty(), "{defined:?}");
    assert!(up.hits().is_empty(), "{:?}", up.hits());
}

/// Item 3: https does not make an internal address a destination: token and authorization
/// endpoints, JWKS and tool base URLs to loopback (in every spelling), link-local, private,
/// unspecified addresses and hosts-file names are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_to_internal_addresses_is_refused_for_every_endpoint() {
    let env = Deployment::start(Stack::Embedded, STRICT_ENV).await;
    let name = hosts_file_loopback_name();
    let hosts = [
        "127.0.0.1:8443".to_string(),
        "localhost:8443".into(),
        "[::1]:8443".into(),
        "169.254.169.254".into(),
        "10.0.0.1".into(),
        "172.16.5.4".into(),
        "192.168.1.1".into(),
        "100.64.0.1".into(),
        "0.0.0.0:8443".into(),
        "0:8443".into(),
        "127.1:8443".into(),
        "2130706433:8443".into(),
        "0x7f.0.0.1:8443".into(),
        "[::ffff:127.0.0.1]:8443".into(),
        "[::ffff:169.254.169.254]".into(),
        "[fd00::1]".into(),
        "[fe80::1]".into(),
        format!("{name}:8443"),
    ];
    for (i, host) in hosts.iter().enumerate() {
        let url = format!("https://{host}/x");
        let r = call(
            &env,
            Method::POST,
            "/v1/auth-configs",
            Some(oauth_config(&url, "https://auth.example.com/authorize")),
        )
        .await;
        assert_refused(&r, &format!("token_url {url}"), "destination refused");
        assert!(r.text.contains("token_url"), "{}", r.text);
        let r = call(
            &env,
            Method::POST,
            "/v1/auth-configs",
            Some(oauth_config("https://auth.example.com/token", &url)),
        )
        .await;
        assert_refused(
            &r,
            &format!("authorization_url {url}"),
            "destination refused",
        );
        let r = call(
            &env,
            Method::PUT,
            "/v1/workspace/identity-provider",
            Some(identity_provider(&url)),
        )
        .await;
        assert_refused(&r, &format!("jwks_url {url}"), "destination refused");
        let base = format!("https://{host}");
        let r = call(
            &env,
            Method::POST,
            "/v1/tools",
            Some(tool(&format!("custom.internal_{i}"), &base)),
        )
        .await;
        assert_refused(&r, &format!("base_url {base}"), "destination refused");
    }
    // The refusal says why.
    let r = call(
        &env,
        Method::PUT,
        "/v1/workspace/identity-provider",
        Some(identity_provider("https://169.254.169.254/jwks")),
    )
    .await;
    assert_refused(&r, "metadata", "169.254.169.254 is a link-local address");
    let r = call(
        &env,
        Method::PUT,
        "/v1/workspace/identity-provider",
        Some(identity_provider(&format!("https://{name}/jwks"))),
    )
    .await;
    let why = if name == "localhost" {
        "is"
    } else {
        "resolves to"
    };
    assert_refused(&r, &name, &format!("{name} {why} a loopback address"));
    // A public destination is still fine (the name does not resolve here: it is judged
    // again when the service connects).
    let r = call(
        &env,
        Method::PUT,
        "/v1/workspace/identity-provider",
        Some(identity_provider("https://idp.example.com/jwks")),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

/// Item 13: with `--allow-loopback-urls`, user info cannot smuggle another host past the
/// loopback rule (`http://127.0.0.1:1@evil/` names `evil`); loopback itself still works in
/// any spelling.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_info_never_passes_even_with_loopback_urls() {
    let env = Deployment::start(Stack::Embedded, BASE_ENV).await;
    let up = upstream().await;
    let hostport = up.base_url.trim_start_matches("http://").to_string();
    let smuggled = [
        "http://127.0.0.1:1@evil.example.com".to_string(),
        format!("http://{hostport}@evil.example.com"),
        "http://localhost@10.0.0.1".to_string(),
        format!("https://user:pw@{hostport}"),
    ];
    for (i, base) in smuggled.iter().enumerate() {
        let url = format!("{base}/x");
        let r = call(
            &env,
            Method::POST,
            "/v1/tools",
            Some(tool(&format!("custom.smuggled_{i}"), base)),
        )
        .await;
        assert_refused(&r, base, "user info");
        let r = call(
            &env,
            Method::POST,
            "/v1/auth-configs",
            Some(oauth_config(&url, "https://auth.example.com/authorize")),
        )
        .await;
        assert_refused(&r, &url, "user info");
        let r = call(
            &env,
            Method::PUT,
            "/v1/workspace/identity-provider",
            Some(identity_provider(&url)),
        )
        .await;
        assert_refused(&r, &url, "user info");
    }
    // Loopback is allowed here, in any spelling of http.
    for (i, base) in [format!("HTTP://{hostport}"), format!("http:{hostport}")]
        .iter()
        .enumerate()
    {
        let r = call(
            &env,
            Method::POST,
            "/v1/tools",
            Some(tool(&format!("custom.loopback_{i}"), base)),
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED, "{base}: {}", r.text);
    }
    let r = call(
        &env,
        Method::PUT,
        "/v1/workspace/identity-provider",
        Some(identity_provider(&format!("{}/jwks", up.base_url))),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // Plain http off loopback stays refused.
    let r = call(
        &env,
        Method::POST,
        "/v1/tools",
        Some(tool("custom.plain", "http://api.example.com")),
    )
    .await;
    r.expect(StatusCode::UNPROCESSABLE_ENTITY, "validation-failed");
}

/// Item 4: the PostgreSQL connector's host: mapped, shorthand and zero addresses, hosts-file
/// names, socket directories and private addresses are refused when the auth config is
/// made (and when it is tested).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgres_host_check_cannot_be_bypassed() {
    let env = Deployment::start(Stack::Embedded, STRICT_ENV).await;
    let name = hosts_file_loopback_name();
    for (host, why) in [
        ("::ffff:127.0.0.1", "loopback"),
        ("127.1", "loopback"),
        ("0", "unspecified"),
        ("2130706433", "loopback"),
        ("localhost", "loopback"),
        (name.as_str(), "loopback"),
        ("[::1]", "loopback"),
        ("10.0.0.5", "private"),
        ("192.168.10.10", "private"),
        ("169.254.169.254", "link-local"),
        ("/var/run/postgresql", "socket"),
        ("/tmp", "socket"),
    ] {
        let r = call(
            &env,
            Method::POST,
            "/v1/auth-configs",
            Some(postgres_config(host, 5432)),
        )
        .await;
        assert_refused(&r, host, why);
    }
    // Made while the host was acceptable, tested after it no longer is: refused on use too.
    let id = create(
        &env,
        "/v1/auth-configs",
        postgres_config("db.example.com", 5432),
    )
    .await
    .str("id");
    let r = call(
        &env,
        Method::PATCH,
        &format!("/v1/auth-configs/{id}"),
        Some(json!({ "postgres": { "host": "127.1", "port": 5432, "database": "postgres", "ssl_mode": "disable" } })),
    )
    .await;
    assert_refused(&r, "update to 127.1", "loopback");
}

/// Item 4, as issue 17 changed it: connector failures are classified the way a
/// troubleshooting table reads (a closed port `unreachable`, a silent listener `timeout`),
/// and a server that is not PostgreSQL reads like a closed port: what answered is never
/// quoted. (Which ports the policy lets a tenant probe is the destination policy's job.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_connection_failures_are_classified_without_quoting_what_answered() {
    let mut envs = BASE_ENV.to_vec();
    envs.push(("AUTHLEDGER_PROVIDER_TIMEOUT_SECS", "1"));
    let env = Deployment::start(Stack::Embedded, &envs).await;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let silent_port = silent.local_addr().expect("addr").port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = silent.accept().await {
            held.push(sock);
        }
    });
    let http = upstream().await;
    let http_port: u16 = http
        .base_url
        .rsplit(':')
        .next()
        .expect("port")
        .parse()
        .expect("port");
    let mut errors = Vec::new();
    for port in [closed, silent_port, http_port] {
        let id = create(&env, "/v1/auth-configs", postgres_config("127.0.0.1", port))
            .await
            .str("id");
        let r = call(
            &env,
            Method::POST,
            &format!("/v1/auth-configs/{id}/test"),
            Some(json!({ "credentials": { "user": "u", "password": "p" } })),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.body["ok"], false, "{}", r.text);
        errors.push(r.body["error"].as_str().expect("error").to_string());
    }
    assert!(errors[0].starts_with("unreachable: "), "{}", errors[0]);
    assert!(errors[1].starts_with("timeout: "), "{}", errors[1]);
    assert!(errors[2].starts_with("unreachable: "), "{}", errors[2]);
    assert!(
        !errors[2].contains("{}") && !errors[2].contains("HTTP"),
        "{}",
        errors[2]
    );
}

/// The operator's allow list (`--allow-destination`): named hosts and ranges pass, the rest
/// of the policy stands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_allow_list_names_exceptions() {
    let name = hosts_file_loopback_name();
    let allowed = format!("10.20.0.0/16,{name}");
    let mut envs = STRICT_ENV.to_vec();
    envs.push(("AUTHLEDGER_ALLOW_DESTINATIONS", allowed.as_str()));
    let env = Deployment::start(Stack::Embedded, &envs).await;
    for (url, ok) in [
        ("https://10.20.3.4/token".to_string(), true),
        (format!("https://{name}/token"), true),
        ("https://10.21.0.1/token".to_string(), false),
        ("https://127.0.0.1/token".to_string(), false),
        ("http://10.20.3.4/token".to_string(), false),
    ] {
        let r = call(
            &env,
            Method::POST,
            "/v1/auth-configs",
            Some(oauth_config(&url, "https://auth.example.com/authorize")),
        )
        .await;
        if ok {
            assert_eq!(r.status, StatusCode::CREATED, "{url}: {}", r.text);
        } else {
            assert_refused(&r, &url, "destination refused");
        }
    }
    create(&env, "/v1/auth-configs", postgres_config("10.20.0.9", 5432)).await;
}

/// A JWKS server that answers 200 with a chunked body of `total` bytes and no length,
/// counting what it managed to send before the client hung up.
struct EndlessJwks {
    url: String,
    sent: Arc<AtomicU64>,
    finished: Arc<AtomicBool>,
    closed: Arc<AtomicBool>,
}

impl EndlessJwks {
    async fn start(total: u64) -> EndlessJwks {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/jwks", listener.local_addr().expect("addr"));
        let sent = Arc::new(AtomicU64::new(0));
        let finished = Arc::new(AtomicBool::new(false));
        let closed = Arc::new(AtomicBool::new(false));
        let (s, f, c) = (sent.clone(), finished.clone(), closed.clone());
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let (s, f, c) = (s.clone(), f.clone(), c.clone());
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match sock.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let start = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                                  transfer-encoding: chunked\r\n\r\n";
                    if sock.write_all(start).await.is_err() {
                        return;
                    }
                    // `{"keys": [` and then whitespace for ever: valid JSON so far.
                    let mut first = true;
                    let chunk = vec![b' '; 64 * 1024];
                    while s.load(Ordering::SeqCst) < total {
                        let data: &[u8] = if first { b"{\"keys\": [" } else { &chunk };
                        first = false;
                        let mut frame = format!("{:x}\r\n", data.len()).into_bytes();
                        frame.extend_from_slice(data);
                        frame.extend_from_slice(b"\r\n");
                        if sock.write_all(&frame).await.is_err() {
                            c.store(true, Ordering::SeqCst);
                            return;
                        }
                        s.fetch_add(data.len() as u64, Ordering::SeqCst);
                    }
                    let _ = sock.write_all(b"0\r\n\r\n").await;
                    f.store(true, Ordering::SeqCst);
                });
            }
        });
        EndlessJwks {
            url,
            sent,
            finished,
            closed,
        }
    }
}

/// Peak resident memory of a process (`VmHWM`), in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

/// Item 7: a JWKS answer without a length is cut off at 1 MiB while it streams: the service
/// refuses it, stops reading (the server sees the connection closed long before it has sent
/// everything) and its memory does not grow with the body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jwks_without_length_is_cut_off_at_the_limit_while_it_streams() {
    const TOTAL: u64 = 512 * 1024 * 1024;
    let jwks = EndlessJwks::start(TOTAL).await;
    let env = Deployment::start(Stack::Embedded, BASE_ENV).await;
    let r = call(
        &env,
        Method::PUT,
        "/v1/workspace/identity-provider",
        Some(identity_provider(&jwks.url)),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let before = peak_rss_kib(env.svc.child.id());
    let header = B64URL.encode(br#"{"alg":"RS256","typ":"JWT","kid":"k1"}"#);
    let claims = B64URL.encode(
        br#"{"sub":"u","iss":"https://idp.test/","aud":"authledger-test","exp":4102444800}"#,
    );
    let token = format!("{header}.{claims}.{}", B64URL.encode(b"not a signature"));
    let started = Instant::now();
    let r = Reply::of(
        Client::new()
            .get(env.svc.url("/v1/me"))
            .bearer_auth(&token)
            .header("Authledger-Workspace", &env.workspace),
    )
    .await;
    r.expect(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    // The server notices the closed connection at its next write.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !jwks.closed.load(Ordering::SeqCst) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let sent = jwks.sent.load(Ordering::SeqCst);
    assert!(
        !jwks.finished.load(Ordering::SeqCst),
        "the whole body was read"
    );
    assert!(
        jwks.closed.load(Ordering::SeqCst),
        "the service kept the connection open"
    );
    assert!(
        sent < 64 * 1024 * 1024,
        "the service read on: {sent} of {TOTAL} bytes sent"
    );
    let grown = peak_rss_kib(env.svc.child.id()).saturating_sub(before);
    eprintln!("JWKS server sent {sent} of {TOTAL} bytes; the service's peak RSS grew {grown} KiB");
    assert!(grown < 64 * 1024, "the service grew by {grown} KiB");
    assert!(started.elapsed() < Duration::from_secs(10));
    // Log lines are written by a thread of their own: the line may land just after the answer.
    let path = env.dir.path().join(format!(
        "serve-{}.err",
        env.svc.addr.rsplit(':').next().expect("port")
    ));
    crate::harness::eventually(
        Duration::from_secs(10),
        "the JWKS refusal's log line",
        || {
            let logged = std::fs::read_to_string(&path)
                .unwrap_or_default()
                .contains("JWKS larger than 1048576 bytes");
            async move { logged }
        },
    )
    .await;
}

/// Configuration time is not the only check: a tool defined while loopback destinations
/// were allowed is judged again when it is called, after the service restarted without
/// `--allow-loopback-urls`; the upstream never sees the call (nor the credential), and the
/// recorded outcome says the destination was refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_is_judged_again_when_the_service_connects() {
    let mut env = Deployment::start(Stack::Embedded, BASE_ENV).await;
    let up = upstream().await;
    let config = create(
        &env,
        "/v1/auth-configs",
        json!({ "name": "Items", "provider": "custom", "auth_type": "api_key",
            "api_key": { "key_name": "X-Api-Key", "location": "header", "prefix": null } }),
    )
    .await
    .str("id");
    let connection = create(
        &env,
        "/v1/connections",
        json!({ "auth_config_id": config, "user_id": "alice",
            "credentials": { "api_key": "items-secret-0001" } }),
    )
    .await
    .str("id");
    create(&env, "/v1/tools", tool("custom.items", &up.base_url)).await;
    let agent = create(
        &env,
        "/v1/api-keys",
        json!({ "name": "agent", "role": "agent" }),
    )
    .await
    .str("key");
    let execute = |svc_env: &Deployment| {
        Reply::of(
            Client::new()
                .post(svc_env.svc.url("/v1/tools/execute"))
                .bearer_auth(&agent)
                .json(&json!({ "tool": "custom.items", "connection_id": connection })),
        )
    };
    let r = execute(&env).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(up.hits().len(), 1);
    // Its `tool.completed` follows the answer: in the log before the service is killed.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = call(
            &env,
            Method::GET,
            "/v1/audit/events?kind=tool.completed",
            None,
        )
        .await;
        if r.body["items"].as_array().map_or(0, Vec::len) == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "no tool.completed: {}", r.text);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The same log, served without loopback destinations.
    env.svc.child.kill().expect("kill");
    env.svc.child.wait().expect("wait");
    env.svc = crate::harness::Service::start(&env.storage, STRICT_ENV, env.dir.path()).await;
    let r = execute(&env).await;
    r.expect(StatusCode::BAD_GATEWAY, "upstream-unreachable");
    assert_eq!(
        up.hits().len(),
        1,
        "the upstream was called: {:?}",
        up.hits()
    );
    // Read your write: the refused call's `tool.requested` at the position its answer
    // named; its `tool.completed` (appended right after the answer) follows.
    let refused_call = r.str("tool_call_id");
    let position = r
        .headers
        .get("authledger-position")
        .and_then(|v| v.to_str().ok())
        .expect("the refused call names the position of what it recorded")
        .to_string();
    let r = call(
        &env,
        Method::GET,
        &format!("/v1/audit/events?kind=tool.requested&order=asc&limit=10&min_position={position}"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let items = r.body["items"].as_array().expect("items");
    assert_eq!(items.len(), 2, "{}", r.text);
    assert_eq!(
        items[1]["aggregate"]["id"],
        refused_call.as_str(),
        "{}",
        r.text
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    let r = loop {
        let r = call(
            &env,
            Method::GET,
            "/v1/audit/events?kind=tool.completed&order=asc&limit=10",
            None,
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        if r.body["items"].as_array().map_or(0, Vec::len) >= 2 || Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let items = r.body["items"].as_array().expect("items");
    assert_eq!(items.len(), 2, "{}", r.text);
    assert_eq!(
        items[1]["aggregate"]["id"],
        refused_call.as_str(),
        "{}",
        r.text
    );
    let last = items[1].to_string();
    assert!(last.contains("destination refused"), "{last}");
    assert!(last.contains("--allow-loopback-urls"), "{last}");
}

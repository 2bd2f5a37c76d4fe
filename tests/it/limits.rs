//! The limits a hostile tenant or client could turn against others (issue 15): a failing
//! or slow JWKS, refusal budgets (OAuth callbacks, refusals decided by handlers), silent
//! connections and the connection cap. Assertions are on counts, order and states, never
//! on how long something took.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::Algorithm;
use reqwest::{Client, Method, StatusCode};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::end_user::{claims, keys, serve_jwks, token, AUDIENCE, ISSUER};
use crate::fixtures::oauth_provider::no_redirect_client;
use crate::support::{
    bootstrap_workspace, complete_connect, log_events, oauth_config_body, provider_for, request,
    Deployment, Reply, Stack, RETURN_TO,
};

/// `RS256` header with kid `k1`, empty claims, a junk signature: parses, never verifies.
const UNVERIFIABLE: &str = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.e30.c2ln";

/// The `access.denied` events recorded so far: (status, reason).
async fn denials(env: &Deployment) -> Vec<(u64, String)> {
    log_events(env.dir.path())
        .await
        .into_iter()
        .filter(|(_, b)| b.kind == "access.denied")
        .map(|(_, b)| {
            (
                b.payload["status"].as_u64().unwrap_or(0),
                b.payload["reason"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// What the service wrote on stderr (for failure messages).
fn server_log(env: &Deployment) -> String {
    let port = env.svc.addr.rsplit(':').next().unwrap_or_default();
    std::fs::read_to_string(env.dir.path().join(format!("serve-{port}.err"))).unwrap_or_default()
}

/// Waits until the denials recorded after the first `before` are `want` (never more).
async fn recorded_eventually(env: &Deployment, before: usize, want: &[(u64, String)]) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let recorded: Vec<_> = denials(env).await.split_off(before);
        if recorded.len() >= want.len() {
            assert_eq!(recorded, want);
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{recorded:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn set_idp(env: &Deployment, admin: &str, jwks_url: &str) {
    let r = Reply::of(request(
        &Client::new(),
        &env.svc,
        admin,
        Method::PUT,
        "/v1/workspace/identity-provider",
        Some(json!({ "issuer": ISSUER, "audience": AUDIENCE, "jwks_url": jwks_url })),
    ))
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

/// A second workspace on `env`'s log: (its admin key, its workspace id), once served.
async fn second_workspace(env: &Deployment, name: &str) -> (String, String) {
    let admin = bootstrap_workspace(&env.storage, name).await;
    let http = Client::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let workspace = loop {
        let r = Reply::of(request(
            &http,
            &env.svc,
            &admin,
            Method::GET,
            "/v1/workspace",
            None,
        ))
        .await;
        if r.status == StatusCode::OK {
            break r.str("id");
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the new workspace is not served"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(!workspace.is_empty());
    (admin, workspace)
}

/// The id of an API key of a second workspace on `env`'s log.
async fn other_workspace_key_id(env: &Deployment) -> String {
    let (admin_b, _) = second_workspace(env, "other").await;
    let keys_b = Reply::of(request(
        &Client::new(),
        &env.svc,
        &admin_b,
        Method::GET,
        "/v1/api-keys",
        None,
    ))
    .await;
    keys_b.body["items"][0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("a key id in {}", keys_b.text))
        .to_string()
}

fn me(env: &Deployment, workspace: &str, jwt: &str) -> reqwest::RequestBuilder {
    Client::new()
        .get(env.svc.url("/v1/me"))
        .bearer_auth(jwt)
        .header("authledger-workspace", workspace)
}

/// Item 5: end-user requests against a failing JWKS do not each become an outbound fetch
/// (the failure is remembered, fetches are single-flight), and their 503s are audited and
/// charged to the client's refusal budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_jwks_is_fetched_once_per_backoff_and_its_503s_are_capped_and_audited() {
    let hits = Arc::new(AtomicUsize::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let jwks_url = format!("http://{}/jwks", listener.local_addr().expect("addr"));
    let counter = hits.clone();
    let app = axum::Router::new().route(
        "/jwks",
        axum::routing::get(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            async { (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "down") }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let env = Deployment::start(
        Stack::Embedded,
        &[
            ("AUTHLEDGER_ALLOW_LOOPBACK_URLS", "true"),
            ("AUTHLEDGER_DENIAL_RATE_LIMIT_PER_SEC", "0.001"),
            ("AUTHLEDGER_DENIAL_RATE_LIMIT_BURST", "10"),
        ],
    )
    .await;
    set_idp(&env, &env.admin, &jwks_url).await;
    let before = denials(&env).await.len();

    let requests = (0..60).map(|_| Reply::of(me(&env, &env.workspace, UNVERIFIABLE)));
    let replies = futures::future::join_all(requests).await;
    let unavailable = replies
        .iter()
        .filter(|r| r.status == StatusCode::SERVICE_UNAVAILABLE)
        .count();
    let limited = replies
        .iter()
        .filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!(unavailable + limited, 60, "only 503 and 429");
    assert!(
        (1..=10).contains(&unavailable),
        "{unavailable} answered 503"
    );
    // One fetch, then the remembered failure (5 s, doubling): at most a couple more if the
    // requests were very slow.
    let fetches = hits.load(Ordering::SeqCst);
    assert!(
        (1..=3).contains(&fetches),
        "{fetches} fetches for 60 requests"
    );
    // Each 503 is recorded; the ones past the budget are not.
    let recorded: Vec<_> = denials(&env).await.split_off(before);
    assert_eq!(
        recorded.len(),
        unavailable,
        "{recorded:?}: {}",
        server_log(&env)
    );
    assert!(recorded
        .iter()
        .all(|(s, r)| *s == 503 && r == "identity_provider_unavailable"));
}

/// A JWKS server that takes each connection, reports it, and holds it open (never
/// answering) until the connection is closed by the client, which it records.
struct HoldingJwks {
    url: String,
    arrived: tokio::sync::mpsc::UnboundedReceiver<()>,
    closed_by_client: Arc<AtomicBool>,
}

async fn holding_jwks() -> HoldingJwks {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/jwks", listener.local_addr().expect("addr"));
    let (tx, arrived) = tokio::sync::mpsc::unbounded_channel();
    let closed_by_client = Arc::new(AtomicBool::new(false));
    let closed = closed_by_client.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let tx = tx.clone();
            let closed = closed.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let mut reported = false;
                loop {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => {
                            closed.store(true, Ordering::SeqCst);
                            return;
                        }
                        Ok(_) if !reported => {
                            reported = true;
                            let _ = tx.send(());
                        }
                        Ok(_) => {}
                    }
                }
            });
        }
    });
    HoldingJwks {
        url,
        arrived,
        closed_by_client,
    }
}

/// Item 6: workspace B's JWKS hangs; workspace A's end users are answered meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_jwks_in_one_workspace_does_not_stall_another() {
    let keys = keys();
    let jwks_a = serve_jwks(json!({ "keys": [keys.rsa.1] })).await;
    let mut jwks_b = holding_jwks().await;
    let env = Deployment::start(
        Stack::Embedded,
        &[("AUTHLEDGER_ALLOW_LOOPBACK_URLS", "true")],
    )
    .await;
    set_idp(&env, &env.admin, &jwks_a).await;
    let (admin_b, workspace_b) = second_workspace(&env, "other").await;
    set_idp(&env, &admin_b, &jwks_b.url).await;
    let jwt = token(
        Algorithm::RS256,
        "rsa-1",
        &keys.rsa.0,
        &claims("alice", ISSUER, AUDIENCE, 300),
    );

    // B's end user: its JWKS fetch is now hanging at B's provider.
    let b = tokio::spawn(Reply::of(me(&env, &workspace_b, UNVERIFIABLE)));
    tokio::time::timeout(Duration::from_secs(30), jwks_b.arrived.recv())
        .await
        .expect("B's JWKS is fetched")
        .expect("arrived");
    // A's end user is answered while B's provider still holds the fetch open.
    let a = Reply::of(me(&env, &env.workspace, &jwt)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.body["user_id"], "alice");
    assert!(
        !jwks_b.closed_by_client.load(Ordering::SeqCst),
        "A was answered only after B's fetch gave up"
    );
    assert!(!b.is_finished(), "B was answered before its fetch ended");
    // B's end user gets the provider's failure once its fetch gives up.
    let b = b.await.expect("join");
    assert_eq!(b.status, StatusCode::SERVICE_UNAVAILABLE, "{}", b.text);
}

/// Item 10: refused OAuth callbacks have their own per-address budget, and a valid callback
/// is never charged nor refused (behind a proxy every user shares one address).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_oauth_callbacks_are_never_charged_and_bad_ones_have_their_own_budget() {
    let env = Deployment::start(
        Stack::Embedded,
        &[
            ("AUTHLEDGER_ALLOW_LOOPBACK_URLS", "true"),
            ("AUTHLEDGER_DENIAL_RATE_LIMIT_PER_SEC", "0.001"),
            ("AUTHLEDGER_DENIAL_RATE_LIMIT_BURST", "3"),
        ],
    )
    .await;
    let http = Client::new();
    let provider = provider_for(&env.svc, "limits-client", "limits-s3cret").await;
    let config = Reply::of(request(
        &http,
        &env.svc,
        &env.admin,
        Method::POST,
        "/v1/auth-configs",
        Some(oauth_config_body(
            &provider,
            "limits-client",
            "limits-s3cret",
        )),
    ))
    .await;
    assert_eq!(config.status, StatusCode::CREATED, "{}", config.text);
    let connection = Reply::of(request(
        &http,
        &env.svc,
        &env.admin,
        Method::POST,
        "/v1/connections",
        Some(json!({ "auth_config_id": config.str("id"), "user_id": "u1", "redirect_url": RETURN_TO })),
    ))
    .await;
    assert_eq!(
        connection.status,
        StatusCode::CREATED,
        "{}",
        connection.text
    );

    // A flood of bad callbacks spends the callback budget, and only it.
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let r = no_redirect_client()
            .get(env.svc.url("/v1/oauth/callback?state=forged&code=x"))
            .send()
            .await
            .expect("callback");
        statuses.push(r.status());
    }
    assert_eq!(
        statuses,
        [
            [StatusCode::BAD_REQUEST; 3],
            [StatusCode::TOO_MANY_REQUESTS; 3]
        ]
        .concat()
    );
    let r = http
        .get(env.svc.url("/v1/workspace"))
        .send()
        .await
        .expect("unauthenticated");
    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "the refusal budget is its own"
    );
    // The real user's callback from the same address goes through.
    complete_connect(&provider, &connection.str("connect_url")).await;
}

/// Item 17: refusals decided by handlers (here another workspace's id) are charged to the
/// same per-address budget as the edge's: past it 429, and nothing more is recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authenticated_refusals_are_capped_per_address_like_the_others() {
    let env = Deployment::start(
        Stack::Embedded,
        &[
            ("AUTHLEDGER_DENIAL_RATE_LIMIT_PER_SEC", "0.001"),
            ("AUTHLEDGER_DENIAL_RATE_LIMIT_BURST", "4"),
        ],
    )
    .await;
    let id_b = other_workspace_key_id(&env).await;
    let http = Client::new();
    let before = denials(&env).await.len();
    let mut statuses = Vec::new();
    for _ in 0..12 {
        let path = format!("/v1/api-keys/{id_b}");
        let r = Reply::of(request(
            &http,
            &env.svc,
            &env.admin,
            Method::GET,
            &path,
            None,
        ))
        .await;
        statuses.push(r.status);
    }
    let not_found = statuses
        .iter()
        .filter(|s| **s == StatusCode::NOT_FOUND)
        .count();
    let limited = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    // Setup may have spent part of the budget (polling the new key before it was served).
    assert!((1..=4).contains(&not_found), "{statuses:?}");
    assert_eq!(not_found + limited, 12, "{statuses:?}");
    // Only the answered refusals are recorded (beside the answer: wait for them).
    recorded_eventually(
        &env,
        before,
        &vec![(404, "other_workspace".to_string()); not_found],
    )
    .await;
    // The caller's own workspace still answers.
    let r = Reply::of(request(
        &http,
        &env.svc,
        &env.admin,
        Method::GET,
        "/v1/workspace",
        None,
    ))
    .await;
    assert_eq!(r.status, StatusCode::OK);
}

/// Whether the server closed `sock` (EOF or reset) rather than leaving it open.
async fn closed_by_server(sock: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(Duration::from_millis(20), sock.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    )
}

/// Item 18: silent connections are closed after the header-read timeout, and the service
/// still answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_are_closed_after_the_header_read_timeout() {
    let env = Deployment::start(
        Stack::Embedded,
        &[("AUTHLEDGER_HEADER_READ_TIMEOUT_SECS", "1")],
    )
    .await;
    let mut silent = Vec::new();
    for _ in 0..300 {
        silent.push(TcpStream::connect(&env.svc.addr).await.expect("connect"));
    }
    // One that started a request head and stalled is closed too.
    let mut partial = TcpStream::connect(&env.svc.addr).await.expect("connect");
    partial
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    silent.push(partial);
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let mut open = silent.len();
    while open > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "{open} silent sockets still open"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        open = 0;
        for s in silent.iter_mut() {
            if !closed_by_server(s).await {
                open += 1;
            }
        }
    }
    assert_eq!(open, 0);
    let r = reqwest::get(env.svc.url("/healthz"))
        .await
        .expect("healthz");
    assert_eq!(r.status(), StatusCode::OK);
}

/// Item 18: past the connection cap a new connection waits until one closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_cap_wait_until_one_closes() {
    let env = Deployment::start(
        Stack::Embedded,
        &[
            ("AUTHLEDGER_MAX_CONNECTIONS", "3"),
            ("AUTHLEDGER_HEADER_READ_TIMEOUT_SECS", "600"),
        ],
    )
    .await;
    // Let the harness's own health-check connection go first.
    let mut holders = Vec::new();
    for _ in 0..3 {
        let mut sock = TcpStream::connect(&env.svc.addr).await.expect("connect");
        // Proves the connection was accepted and served: an answer on it.
        sock.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("write");
        let mut buf = [0u8; 12];
        sock.read_exact(&mut buf).await.expect("answer");
        assert_eq!(&buf, b"HTTP/1.1 200");
        holders.push(sock);
    }
    let url = env.svc.url("/healthz");
    let waiting = tokio::spawn(async move { reqwest::get(url).await.map(|r| r.status()) });
    // While the three are open the fourth is not served (it waits in the backlog).
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!waiting.is_finished(), "a fourth connection was served");
    drop(holders.pop());
    let status = tokio::time::timeout(Duration::from_secs(60), waiting)
        .await
        .expect("served once a connection closed")
        .expect("join")
        .expect("request");
    assert_eq!(status, StatusCode::OK);
}

/// Item 16: once the data dir is removed the service is not ready, and a write is not
/// acknowledged (it would be lost: the open file is no longer the log's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_data_dir_is_not_ready_and_writes_are_not_acknowledged() {
    let env = Deployment::start(Stack::Embedded, &[]).await;
    let http = Client::new();
    let create = |name: &str| {
        request(
            &http,
            &env.svc,
            &env.admin,
            Method::POST,
            "/v1/api-keys",
            Some(json!({ "name": name, "role": "viewer" })),
        )
    };
    let r = Reply::of(create("before")).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = reqwest::get(env.svc.url("/readyz")).await.expect("readyz");
    assert_eq!(r.status(), StatusCode::OK);

    std::fs::remove_dir_all(crate::support::data_dir(env.dir.path())).expect("remove");
    let r = Reply::of(http.get(env.svc.url("/readyz"))).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text);
    assert!(r.text.contains("event log"), "{}", r.text);
    let r = Reply::of(create("after")).await;
    assert!(
        r.status.is_server_error(),
        "a write to a removed log was answered {}: {}",
        r.status,
        r.text
    );
}

/// Item 12: an unknown id and another workspace's id take the same path: both are charged
/// to the refusal budget (so 429 comes at the same point whichever is probed), and only
/// the latter is recorded, without the answer waiting for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_other_workspace_ids_take_the_same_path() {
    let env = Deployment::start(
        Stack::Embedded,
        &[
            ("AUTHLEDGER_DENIAL_RATE_LIMIT_PER_SEC", "0.001"),
            ("AUTHLEDGER_DENIAL_RATE_LIMIT_BURST", "6"),
        ],
    )
    .await;
    let id_b = other_workspace_key_id(&env).await;
    let http = Client::new();
    let unknown = "01900000-0000-7000-8000-000000000000";
    let before = denials(&env).await.len();
    let mut answers = Vec::new();
    for i in 0..20 {
        let id = if i % 2 == 0 { unknown } else { id_b.as_str() };
        let path = format!("/v1/api-keys/{id}");
        let r = Reply::of(request(
            &http,
            &env.svc,
            &env.admin,
            Method::GET,
            &path,
            None,
        ))
        .await;
        answers.push((id == unknown, r.status, r.text));
    }
    let statuses: Vec<_> = answers.iter().map(|(u, s, _)| (*u, *s)).collect();
    let first_limited = statuses
        .iter()
        .position(|(_, s)| *s == StatusCode::TOO_MANY_REQUESTS)
        .unwrap_or_else(|| panic!("never limited: {statuses:?}"));
    assert!(first_limited >= 2, "{statuses:?}");
    assert!(
        statuses[..first_limited]
            .iter()
            .all(|(_, s)| *s == StatusCode::NOT_FOUND),
        "{statuses:?}"
    );
    assert!(
        statuses[first_limited..]
            .iter()
            .all(|(_, s)| *s == StatusCode::TOO_MANY_REQUESTS),
        "unknown ids are charged like another workspace's: {statuses:?}"
    );
    // The two 404s are the same answer.
    let bodies: std::collections::BTreeSet<_> = answers[..first_limited]
        .iter()
        .map(|(_, _, t)| t.clone())
        .collect();
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    // Only another workspace's ids are recorded (beside the answer: wait for them).
    let elsewhere = statuses[..first_limited].iter().filter(|(u, _)| !u).count();
    recorded_eventually(
        &env,
        before,
        &vec![(404, "other_workspace".to_string()); elsewhere],
    )
    .await;
}

//! PostgreSQL stops under load and comes back (issue 21): the service keeps answering
//! clearly while it is gone, fails closed where it needs it, and recovers by itself.
//!
//! One `serve` on a test-owned JetStream server and a PostgreSQL cluster of the test's own
//! (projections and data keys). Writers create API keys throughout; PostgreSQL is stopped
//! (immediate, like a crash) for 10 s, then started again. Checks: every answer is a 201 or
//! a 503 that says what happened (nothing written, or recorded at a position not yet
//! visible), never a hang, a 401 or another 5xx; `/readyz` says 503 while the database is
//! gone and 200 after, by itself; sealing a secret during the outage is refused with a
//! problem, not a 500; afterwards every acknowledged write is in the log once, the log
//! verifies and the projections equal a fresh replay.

use std::time::Duration;

use reqwest::{Client, StatusCode};
use serde_json::json;

use crate::failover::{check_answers, check_exactly_once_and_converged, Writers};
use crate::fixtures::postgres::PrivatePostgres;
use crate::harness::{args, eventually, NatsServer, Service};
use crate::support::{cli, data_dir, Reply, BASE_ENV, NO_RATE_LIMIT};

const OUTAGE: Duration = Duration::from_secs(10);

#[tokio::test]
async fn the_service_rides_out_a_postgres_outage() {
    let pg = PrivatePostgres::start();
    let nats = NatsServer::start();
    let dir = tempfile::tempdir().expect("dir");
    let storage = args(&[
        "--data-dir",
        &data_dir(dir.path()).display().to_string(),
        "--nats-url",
        &nats.url(),
        "--database-url",
        &pg.url(),
    ]);
    cli(&storage, &["keys", "init"]).await;
    let printed = cli(&storage, &["bootstrap", "--workspace", "acme"]).await;
    let printed: serde_json::Value = serde_json::from_slice(&printed.stdout).expect("json");
    let admin = printed["admin_api_key"]
        .as_str()
        .expect("admin key")
        .to_string();
    let svc = Service::start(&storage, &[BASE_ENV, NO_RATE_LIMIT].concat(), dir.path()).await;
    let http = Client::new();

    let writers = Writers::start(&admin, &[svc.url("")]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    pg.stop();
    let gone = tokio::time::Instant::now();
    eventually(OUTAGE, "readiness to say the database is gone", || async {
        Reply::of(http.get(svc.url("/readyz"))).await.status == StatusCode::SERVICE_UNAVAILABLE
    })
    .await;
    // Sealing a secret needs its data key, kept in PostgreSQL: refused, saying why.
    let sealed = Reply::of(
        http.post(svc.url("/v1/auth-configs"))
            .bearer_auth(&admin)
            .json(&json!({
                "name": "needs a data key",
                "provider": "custom",
                "auth_type": "oauth2",
                "oauth2": {
                    "client_id": "c",
                    "client_secret": "s3cret",
                    "authorization_url": "https://idp.example.com/authorize",
                    "token_url": "https://idp.example.com/token",
                    "redirect_urls": ["https://app.example.com/cb"]
                }
            })),
    )
    .await;
    assert_eq!(
        sealed.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        sealed.text
    );
    assert!(!sealed.text.contains("s3cret"), "{}", sealed.text);
    tokio::time::sleep(OUTAGE.saturating_sub(gone.elapsed())).await;
    pg.start_again();

    // Ready again by itself while the writers go on; once they stop, caught up.
    eventually(Duration::from_secs(60), "ready again by itself", || async {
        Reply::of(http.get(svc.url("/readyz"))).await.status == StatusCode::OK
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let answers = writers.stop().await;
    eventually(
        Duration::from_secs(30),
        "the projections caught up",
        || async {
            let r = Reply::of(http.get(svc.url("/readyz"))).await;
            r.status == StatusCode::OK && r.body["log_head"] == r.body["projection_offset"]
        },
    )
    .await;
    let (acknowledged, recorded) = check_answers(&answers, "the PostgreSQL outage");
    let slowest = answers.iter().map(|(_, took)| *took).max();
    assert!(
        answers
            .iter()
            .any(|(a, _)| a.status == Some(StatusCode::SERVICE_UNAVAILABLE)),
        "no write noticed the outage"
    );
    // A request waits for a database connection for a bounded time (3 s), then for its
    // write to show (5 s): never through the whole outage.
    assert!(
        slowest < Some(OUTAGE),
        "a request held through the outage: {slowest:?}"
    );
    assert!(
        acknowledged.len() > 10,
        "too few writes went through: {}",
        acknowledged.len()
    );
    drop(svc);
    check_exactly_once_and_converged(&storage, Some(&pg.url()), &acknowledged, &recorded).await;
    let refused: Vec<String> = answers
        .iter()
        .filter(|(a, _)| a.status != Some(StatusCode::CREATED))
        .map(|(a, took)| format!("{:?} {} after {took:?}", a.status, a.problem))
        .collect();
    eprintln!(
        "postgres outage: {} writes, {} acknowledged, {} recorded but not yet visible, \
         slowest answer {slowest:?}; refused: {refused:#?}",
        answers.len(),
        acknowledged.len(),
        recorded.len()
    );
}

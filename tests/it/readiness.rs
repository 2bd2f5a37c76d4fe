//! The read side never stops silently: an event the projector cannot apply is reported
//! (log line, metric, `/readyz` 503 with the position and kind), writes it hides answer 503
//! instead of 404, and readiness also judges lag and stall. On both storage stacks.

use std::time::Duration;

use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};

use crate::harness::eventually;
use crate::support::{request, Deployment, Reply, Stack, BASE_ENV};

const TIMEOUT: Duration = Duration::from_secs(30);

async fn call(d: &Deployment, method: Method, path: &str, body: Option<Value>) -> Reply {
    Reply::of(request(
        &Client::new(),
        &d.svc,
        &d.admin,
        method,
        path,
        body,
    ))
    .await
}

async fn readyz(d: &Deployment) -> Reply {
    Reply::of(Client::new().get(d.svc.url("/readyz"))).await
}

fn identity_provider() -> Value {
    json!({
        "issuer": "https://idp.example.com",
        "audience": "authledger",
        "jwks_url": "https://idp.example.com/jwks.json",
    })
}

/// The sequence that stopped the projector for good (issue 22): two workspace settings,
/// then a create that answered 404 although it was written.
async fn workspace_settings_then_create(stack: Stack) {
    let d = Deployment::start(stack, BASE_ENV).await;
    let r = call(
        &d,
        Method::PUT,
        "/v1/workspace/tool-response-storage",
        Some(json!({ "store_tool_responses": true })),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = call(
        &d,
        Method::PUT,
        "/v1/workspace/identity-provider",
        Some(identity_provider()),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = call(
        &d,
        Method::POST,
        "/v1/auth-configs",
        Some(json!({ "name": "k", "provider": "custom", "auth_type": "bearer_token" })),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let id = r.str("id");
    let r = call(&d, Method::GET, &format!("/v1/auth-configs/{id}"), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    let r = readyz(&d).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.body["log_head"], r.body["projection_offset"],
        "{}",
        r.text
    );
}

#[tokio::test]
async fn workspace_settings_then_a_create_on_the_embedded_stack() {
    workspace_settings_then_create(Stack::Embedded).await;
}

#[tokio::test]
async fn workspace_settings_then_a_create_on_jetstream_and_postgres() {
    workspace_settings_then_create(Stack::JetStreamPg).await;
}

/// A projection row damaged behind the service's back makes the next workspace event
/// unappliable: the write answers 503 (recorded, not visible) with its position, readiness
/// names the stuck position and kind, the metric shows it; once the row is repaired the
/// projector applies the event by itself and readiness is 200 again.
async fn a_stuck_projector_is_reported_until_it_recovers(stack: Stack) {
    let mut d = Deployment::start(stack, BASE_ENV).await;
    let r = call(&d, Method::GET, "/v1/workspace", None).await;
    assert_eq!(r.body["id"], json!(d.workspace), "{}", r.text);
    d.projections_sql("UPDATE workspaces SET version = version + 100")
        .await;

    let r = call(
        &d,
        Method::PUT,
        "/v1/workspace/identity-provider",
        Some(identity_provider()),
    )
    .await;
    r.expect(StatusCode::SERVICE_UNAVAILABLE, "projection-lagging");
    let position: u64 = r.headers["authledger-position"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("position");
    assert_eq!(r.body["position"], json!(position), "{}", r.text);
    assert!(r.headers.contains_key("retry-after"), "{:?}", r.headers);

    let r = readyz(&d).await;
    r.expect(StatusCode::SERVICE_UNAVAILABLE, "not-ready");
    assert_eq!(r.body["stuck_position"], json!(position), "{}", r.text);
    assert_eq!(
        r.body["stuck_kind"],
        json!("workspace.identity_provider_configured"),
        "{}",
        r.text
    );
    assert!(r.str("detail").contains("out of order"), "{}", r.text);
    // A restart finds the same event stuck (and says so) instead of serving as if ready.
    d.restart(BASE_ENV).await;
    eventually(TIMEOUT, "stuck again after a restart", || async {
        readyz(&d).await.body["stuck_position"] == json!(position)
    })
    .await;
    let metrics = Reply::of(Client::new().get(d.svc.url("/metrics"))).await;
    assert!(
        metrics.text.contains(&format!(
            "authledger_projection_stuck_position{{projection=\"state\"}} {position}"
        )),
        "{}",
        metrics.text
    );
    // Another write behind the stuck one says so, with the same reason.
    let r = call(
        &d,
        Method::POST,
        "/v1/auth-configs",
        Some(json!({ "name": "k", "provider": "custom", "auth_type": "bearer_token" })),
    )
    .await;
    r.expect(StatusCode::SERVICE_UNAVAILABLE, "projection-lagging");
    assert!(
        r.str("detail")
            .contains(&format!("stuck at log position {position}")),
        "{}",
        r.text
    );

    // A read that must see the stuck write waits its bound, then says to retry.
    let r = call(
        &d,
        Method::GET,
        &format!("/v1/workspace?min_position={position}"),
        None,
    )
    .await;
    r.expect(StatusCode::SERVICE_UNAVAILABLE, "projection-lagging");
    assert!(r.headers.contains_key("retry-after"), "{:?}", r.headers);

    d.projections_sql("UPDATE workspaces SET version = version - 100")
        .await;
    eventually(TIMEOUT, "readiness after the repair", || async {
        readyz(&d).await.status == StatusCode::OK
    })
    .await;
    let r = readyz(&d).await;
    assert_eq!(
        r.body["log_head"], r.body["projection_offset"],
        "{}",
        r.text
    );
    let r = call(&d, Method::GET, "/v1/auth-configs", None).await;
    assert_eq!(
        r.body["items"].as_array().map(Vec::len),
        Some(1),
        "{}",
        r.text
    );
    let stderr = std::fs::read_dir(d.dir.path())
        .expect("dir")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".err"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect::<String>();
    assert!(
        stderr.contains("projector cannot apply this event")
            && stderr.contains(&format!("\"position\":{position}")),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_stuck_projector_is_reported_on_the_embedded_stack() {
    a_stuck_projector_is_reported_until_it_recovers(Stack::Embedded).await;
}

#[tokio::test]
async fn a_stuck_projector_is_reported_on_jetstream_and_postgres() {
    a_stuck_projector_is_reported_until_it_recovers(Stack::JetStreamPg).await;
}

/// The projector waits (no error) on a lock another PostgreSQL session holds on its offset:
/// readiness goes 503 once the log is further ahead than the lag bound, and once the
/// projections have stood still past the stall bound; 200 again when the lock goes.
#[tokio::test]
async fn lag_and_stall_past_their_bounds_are_not_ready() {
    let envs = [
        BASE_ENV,
        &[
            ("AUTHLEDGER_READINESS_MAX_LAG", "3"),
            ("AUTHLEDGER_READINESS_MAX_STALL_SECS", "2"),
        ],
    ]
    .concat();
    let d = Deployment::start(Stack::JetStreamPg, &envs).await;
    let url = d.database_url.clone().expect("postgres");
    let mut holder = <sqlx::PgConnection as sqlx::Connection>::connect(&url)
        .await
        .expect("connect");
    sqlx::raw_sql("BEGIN; SELECT position FROM projection_offsets FOR UPDATE")
        .execute(&mut holder)
        .await
        .expect("hold the offset row");

    // Two refused requests: the log moves ahead, within the lag bound.
    let refused = || async {
        let r = Reply::of(
            Client::new()
                .get(d.svc.url("/v1/api-keys"))
                .bearer_auth("nope"),
        )
        .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    };
    for _ in 0..2 {
        refused().await;
    }
    eventually(TIMEOUT, "not ready: stalled", || async {
        let r = readyz(&d).await;
        r.status == StatusCode::SERVICE_UNAVAILABLE && r.text.contains("have not advanced for")
    })
    .await;
    for _ in 0..3 {
        refused().await;
    }
    let r = readyz(&d).await;
    r.expect(StatusCode::SERVICE_UNAVAILABLE, "not-ready");
    assert!(
        r.text.contains("lag the log by 5 events (bound 3"),
        "{}",
        r.text
    );

    sqlx::raw_sql("ROLLBACK")
        .execute(&mut holder)
        .await
        .expect("release");
    eventually(TIMEOUT, "ready once the projector moves", || async {
        readyz(&d).await.status == StatusCode::OK
    })
    .await;
}

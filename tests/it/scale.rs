//! The scale deployment: two `serve` instances on one JetStream and one PostgreSQL. Every
//! event is applied exactly once to the shared projections, whichever instance wrote it.

use std::time::Duration;

use serde_json::Value;

use crate::harness::{args, eventually, fresh_pg_database, run_cli, NatsServer, Service};

/// One JetStream, one PostgreSQL database and one signing key, shared by every instance
/// and CLI run; each has its own data dir.
struct Deployment {
    nats: NatsServer,
    pg: String,
    dir: tempfile::TempDir,
}

impl Deployment {
    async fn start() -> Deployment {
        let d = Deployment {
            nats: NatsServer::start(),
            pg: fresh_pg_database().await,
            dir: tempfile::tempdir().expect("dir"),
        };
        assert!(
            run_cli(&[d.storage("cli"), args(&["keys", "init"])].concat())
                .status
                .success()
        );
        d
    }

    /// Storage flags for the instance (or CLI run) whose data dir is `data`.
    fn storage(&self, data: &str) -> Vec<String> {
        args(&[
            "--data-dir",
            &self.dir.path().join(data).display().to_string(),
            "--key-dir",
            &self.dir.path().join("shared-keys").display().to_string(),
            "--nats-url",
            &self.nats.url(),
            "--database-url",
            &self.pg,
        ])
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_share_one_log_and_apply_each_event_once() {
    let d = Deployment::start().await;
    let dir = &d.dir;
    let shared = |data: &str| d.storage(data);
    let one = Service::start(&shared("one"), &[], dir.path()).await;
    let two = Service::start(&shared("two"), &[], dir.path()).await;

    // Writers from several processes at once (the CLI works with the services running).
    let mut writers = Vec::new();
    for i in 0..8 {
        let a = [
            shared("cli"),
            args(&["bootstrap", "--workspace", &format!("ws{i}")]),
        ]
        .concat();
        writers.push(tokio::task::spawn_blocking(move || run_cli(&a)));
    }
    for w in writers {
        let out = w.await.expect("join");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let client = reqwest::Client::new();
    for svc in [&one, &two] {
        eventually(
            Duration::from_secs(20),
            "both instances to see the projections caught up",
            || async {
                let r: Value = client
                    .get(svc.url("/readyz"))
                    .send()
                    .await
                    .expect("readyz")
                    .json()
                    .await
                    .expect("json");
                r["log_head"] == 24 && r["projection_offset"] == 24
            },
        )
        .await;
    }

    let pool = sqlx::PgPool::connect(&d.pg).await.expect("pg");
    let audit: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_events")
        .fetch_one(&pool)
        .await
        .expect("count");
    let distinct: i64 = sqlx::query_scalar("SELECT COUNT(DISTINCT event_id) FROM audit_events")
        .fetch_one(&pool)
        .await
        .expect("count");
    let max: i64 = sqlx::query_scalar("SELECT MAX(position) FROM audit_events")
        .fetch_one(&pool)
        .await
        .expect("max");
    assert_eq!(
        (audit, distinct, max),
        (24, 24, 24),
        "each event applied exactly once"
    );
    let workspaces: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM workspaces")
        .fetch_one(&pool)
        .await
        .expect("ws");
    let keys_n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM api_keys WHERE role = 'admin' AND revoked_at IS NULL",
    )
    .fetch_one(&pool)
    .await
    .expect("keys");
    assert_eq!((workspaces, keys_n), (8, 8));

    // Rebuilding the projections from the log gives the same rows.
    let before: Vec<(i64, String)> =
        sqlx::query_as("SELECT position, event_id FROM audit_events ORDER BY position")
            .fetch_all(&pool)
            .await
            .expect("rows");
    drop(one);
    drop(two);
    let replay = run_cli(&[shared("cli"), args(&["replay"])].concat());
    assert!(
        replay.status.success(),
        "{}",
        String::from_utf8_lossy(&replay.stderr)
    );
    let after: Vec<(i64, String)> =
        sqlx::query_as("SELECT position, event_id FROM audit_events ORDER BY position")
            .fetch_all(&pool)
            .await
            .expect("rows");
    assert_eq!(before, after);

    let report: Value = serde_json::from_slice(
        &run_cli(&[shared("cli"), args(&["verify", "--json"])].concat()).stdout,
    )
    .expect("report");
    assert_eq!(
        (report["ok"].as_bool(), report["events"].as_u64()),
        (Some(true), Some(24)),
        "{report}"
    );
}

/// Each instance caches the API key behind every request. A key revoked through one
/// instance is refused by that instance at once (the revocation waits for the projection,
/// and the cache entry goes before the new offset is announced) and by the other as soon
/// as its projector sees the log move (at the latest when the entry's 1 s age runs out).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_key_revoked_through_one_instance_is_refused_by_both() {
    let d = Deployment::start().await;
    let dir = &d.dir;
    let shared = |data: &str| d.storage(data);
    let out = run_cli(&[shared("cli"), args(&["bootstrap", "--workspace", "w"])].concat());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Value = serde_json::from_slice(&out.stdout).expect("json");
    let admin = printed["admin_api_key"].as_str().expect("key").to_string();
    let one = Service::start(&shared("one"), &[], dir.path()).await;
    let two = Service::start(&shared("two"), &[], dir.path()).await;
    let client = reqwest::Client::new();
    let status = |svc: &Service, key: &str| {
        let req = client
            .get(svc.url("/v1/workspace"))
            .bearer_auth(key.to_string());
        async move { req.send().await.expect("request").status().as_u16() }
    };
    for svc in [&one, &two] {
        eventually(Duration::from_secs(20), "the admin key to work", || async {
            status(svc, &admin).await == 200
        })
        .await;
    }
    let created: Value = client
        .post(one.url("/v1/api-keys"))
        .bearer_auth(&admin)
        .json(&serde_json::json!({"name": "agent", "role": "developer"}))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    let (id, key) = (
        created["id"].as_str().expect("id").to_string(),
        created["key"].as_str().expect("key").to_string(),
    );
    // Usable at once where it was created; then on the other instance, twice (the second
    // answer comes from its cache).
    assert_eq!(status(&one, &key).await, 200);
    eventually(
        Duration::from_secs(10),
        "the key to work on two",
        || async { status(&two, &key).await == 200 },
    )
    .await;
    assert_eq!(status(&two, &key).await, 200);
    assert_eq!(status(&one, &key).await, 200);

    let revoked = client
        .delete(one.url(&format!("/v1/api-keys/{id}")))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("revoke");
    assert!(revoked.status().is_success(), "{}", revoked.status());
    assert_eq!(
        status(&one, &key).await,
        401,
        "refused at once where revoked"
    );
    eventually(
        Duration::from_secs(5),
        "the other instance to refuse the key",
        || async { status(&two, &key).await == 401 },
    )
    .await;
    for _ in 0..20 {
        assert_eq!(status(&two, &key).await, 401, "refused for good");
        assert_eq!(status(&one, &key).await, 401, "refused for good");
    }
}

//! Tampering with the log on purpose: `authledger verify` must name the first bad event.
//! Embedded: edit the SQLite file. JetStream: publish forged messages straight onto an
//! aggregate subject with a plain NATS client, and delete from an unprotected stream.

use std::path::Path;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde_json::Value;

use authledger::domain::{Event, WorkspaceCreated};
use authledger::ledger::jetstream_log::{JetStreamEventLog, JetStreamOptions};
use authledger::ledger::sqlite_log::SqliteEventLog;
use authledger::ledger::writer::seal_event;
use authledger::ledger::{Actor, AggregateKey, EventLog, KeyDir, Signer};

use crate::harness::{args, ledger, run_cli, NatsServer};

fn key(id: &str) -> AggregateKey {
    AggregateKey::new("ws1", "workspace", id).expect("key")
}

/// Nine events: a1 b1 c1 a2 b2 c2 a3 b3 c3 (positions 1..9).
async fn populate(log: Arc<dyn EventLog>, signer: Signer) {
    let l = ledger(log, signer);
    for v in 1..=3 {
        for agg in ["a", "b", "c"] {
            l.append_next(
                &key(agg),
                &Actor::system("t"),
                &Event::WorkspaceCreated(WorkspaceCreated {
                    name: format!("{agg}{v}"),
                }),
            )
            .await
            .expect("append");
        }
    }
}

/// Runs `verify --json`; returns (exit code, report).
fn verify(storage: &[String]) -> (i32, Value) {
    let mut a = storage.to_vec();
    a.extend(args(&["verify", "--json"]));
    let out = run_cli(&a);
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "no JSON report; stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), report)
}

fn assert_fails_at(storage: &[String], position: u64, words: &[&str]) {
    let (code, report) = verify(storage);
    assert_eq!(code, 1, "verify must exit 1 on a tampered log: {report}");
    assert_eq!(report["ok"], false);
    let f = &report["failure"];
    assert_eq!(f["position"], position, "{report}");
    let problem = f["problem"].as_str().expect("problem").to_lowercase();
    assert!(
        words.iter().any(|w| problem.contains(w)),
        "problem {problem:?} should mention one of {words:?}"
    );
}

// ---------- embedded: edit the SQLite file ----------

struct SqliteCase {
    dir: tempfile::TempDir,
    pool: sqlx::SqlitePool,
}

impl SqliteCase {
    async fn new() -> SqliteCase {
        let dir = tempfile::tempdir().expect("dir");
        let signer = KeyDir::new(dir.path().join("keys")).init().expect("key");
        let log = Arc::new(
            SqliteEventLog::open(&dir.path().join("ledger.db"))
                .await
                .expect("open"),
        );
        populate(log.clone(), signer).await;
        log.close().await;
        let pool = sqlx::SqlitePool::connect(&format!(
            "sqlite://{}",
            dir.path().join("ledger.db").display()
        ))
        .await
        .expect("open file");
        // An attacker with the file ignores the append-only triggers.
        sqlx::raw_sql("DROP TRIGGER events_are_append_only_update; DROP TRIGGER events_are_append_only_delete;")
            .execute(&pool)
            .await
            .expect("drop triggers");
        SqliteCase { dir, pool }
    }

    fn storage(&self) -> Vec<String> {
        args(&["--data-dir", &self.dir.path().display().to_string()])
    }

    async fn envelope(&self, position: i64) -> Value {
        let raw: Vec<u8> = sqlx::query_scalar("SELECT envelope FROM events WHERE position = ?")
            .bind(position)
            .fetch_one(&self.pool)
            .await
            .expect("row");
        serde_json::from_slice(&raw).expect("json")
    }

    async fn set_envelope(&self, position: i64, env: &Value) {
        sqlx::query("UPDATE events SET envelope = ? WHERE position = ?")
            .bind(serde_json::to_vec(env).expect("json"))
            .bind(position)
            .execute(&self.pool)
            .await
            .expect("update");
    }
}

fn body_of(env: &Value) -> Vec<u8> {
    B64.decode(env["payload"].as_str().expect("payload"))
        .expect("b64")
}

#[tokio::test]
async fn sqlite_clean_log_verifies() {
    let case = SqliteCase::new().await;
    let (code, report) = verify(&case.storage());
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["events"], 9);
    assert_eq!(report["aggregates"], 3);
    assert_eq!(report["keys"], 1);
    assert!(report["events_per_sec"].as_f64().expect("rate") > 0.0);
}

#[tokio::test]
async fn sqlite_altered_body_byte_is_caught() {
    let case = SqliteCase::new().await;
    let mut env = case.envelope(5).await;
    let mut body = body_of(&env);
    // Change the name (not an id or hash, which would fail to parse instead).
    let needle = br#""name":"b2""#;
    let i = body
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("name");
    body[i + needle.len() - 2] = b'x';
    env["payload"] = Value::String(B64.encode(&body));
    case.set_envelope(5, &env).await;
    assert_fails_at(&case.storage(), 5, &["signature"]);
}

#[tokio::test]
async fn sqlite_forged_or_missing_signature_is_caught() {
    let case = SqliteCase::new().await;
    let mut env = case.envelope(4).await;
    env["signatures"][0]["sig"] = Value::String(B64.encode([7u8; 64]));
    case.set_envelope(4, &env).await;
    assert_fails_at(&case.storage(), 4, &["signature"]);

    let case = SqliteCase::new().await;
    let mut env = case.envelope(6).await;
    env["signatures"] = Value::Array(vec![]);
    case.set_envelope(6, &env).await;
    assert_fails_at(&case.storage(), 6, &["no signature"]);
}

#[tokio::test]
async fn sqlite_event_removed_from_the_middle_is_caught() {
    // Deleted: the global positions show a gap.
    let case = SqliteCase::new().await;
    sqlx::query("DELETE FROM events WHERE position = 4")
        .execute(&case.pool)
        .await
        .expect("delete");
    assert_fails_at(&case.storage(), 5, &["gap"]);

    // Deleted and positions renumbered to hide the gap: the aggregate's chain shows it.
    let case = SqliteCase::new().await;
    sqlx::raw_sql(
        "DELETE FROM events WHERE position = 4;
         UPDATE events SET position = -(position - 1) WHERE position > 4;
         UPDATE events SET position = -position WHERE position < 0;",
    )
    .execute(&case.pool)
    .await
    .expect("renumber");
    // a3 (now at position 6) follows a1.
    assert_fails_at(&case.storage(), 6, &["missing"]);
}

#[tokio::test]
async fn sqlite_two_events_swapped_are_caught() {
    let case = SqliteCase::new().await;
    // Swap a2 (position 4) and a3 (position 7), rows and all.
    sqlx::raw_sql(
        "UPDATE events SET position = -4 WHERE position = 4;
         UPDATE events SET position = 4 WHERE position = 7;
         UPDATE events SET position = 7 WHERE position = -4;",
    )
    .execute(&case.pool)
    .await
    .expect("swap");
    assert_fails_at(&case.storage(), 4, &["missing", "out of order"]);
}

#[tokio::test]
async fn sqlite_event_signed_by_unknown_key_is_caught() {
    let case = SqliteCase::new().await;
    // A well-formed, correctly chained a2, but signed by a key the ring does not hold.
    let a1: Vec<u8> = sqlx::query_scalar("SELECT envelope FROM events WHERE position = 1")
        .fetch_one(&case.pool)
        .await
        .expect("a1");
    let intruder = Signer::generate();
    let (forged, _) = seal_event(
        &intruder,
        &key("a"),
        1,
        Some(authledger::ledger::envelope::event_hash(&a1)),
        &Actor::system("intruder"),
        &Event::WorkspaceCreated(WorkspaceCreated {
            name: "mine now".into(),
        }),
        time::OffsetDateTime::now_utc(),
    )
    .expect("seal");
    sqlx::query("UPDATE events SET envelope = ?, event_id = ? WHERE position = 4")
        .bind(forged.envelope.as_ref())
        .bind(forged.event_id.to_string())
        .execute(&case.pool)
        .await
        .expect("replace");
    assert_fails_at(&case.storage(), 4, &["unknown key"]);
}

// ---------- JetStream: forge with a plain NATS client ----------

async fn jetstream_case(nats: &NatsServer, data: &Path, protected: bool) -> Arc<dyn EventLog> {
    let signer = KeyDir::new(data.join("keys")).init().expect("key");
    let opts: JetStreamOptions = nats.options("LEDGER");
    let log: Arc<dyn EventLog> = if protected {
        Arc::new(JetStreamEventLog::open(opts).await.expect("open"))
    } else {
        // A stream created by hand without deny_delete, as a careless operator might.
        let client = async_nats::connect(nats.url()).await.expect("connect");
        let js = async_nats::jetstream::new(client);
        let mut cfg = JetStreamEventLog::stream_config(&opts);
        cfg.deny_delete = false;
        cfg.deny_purge = false;
        js.create_stream(cfg)
            .await
            .expect("create unprotected stream");
        assert!(
            JetStreamEventLog::open(opts.clone()).await.is_err(),
            "writer must refuse an unprotected stream"
        );
        Arc::new(
            JetStreamEventLog::open_read_only(opts)
                .await
                .expect("open read-only"),
        )
    };
    populate(log.clone(), signer).await;
    log
}

fn js_storage(nats: &NatsServer, data: &Path) -> Vec<String> {
    args(&[
        "--data-dir",
        &data.display().to_string(),
        "--nats-url",
        &nats.url(),
        "--nats-stream",
        "LEDGER",
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_forged_messages_are_caught() {
    let nats = NatsServer::start();
    let data = tempfile::tempdir().expect("dir");
    let log = jetstream_case(&nats, data.path(), true).await;
    let storage = js_storage(&nats, data.path());
    let (code, report) = verify(&storage);
    assert_eq!((code, report["events"].as_u64()), (0, Some(9)), "{report}");

    let client = async_nats::connect(nats.url()).await.expect("plain client");
    let js = async_nats::jetstream::new(client);
    // 1. A copy of c3 with one body byte changed, appended as c4 (signature no longer fits).
    let c3 = log
        .last_of_aggregate(&key("c"))
        .await
        .expect("read")
        .expect("c3");
    let mut env: Value = serde_json::from_slice(&c3.envelope).expect("json");
    let mut body: Value = serde_json::from_slice(&body_of(&env)).expect("body");
    body["aggregate_version"] = Value::from(4);
    body["prev_hash"] = Value::String(authledger::ledger::envelope::event_hash(&c3.envelope));
    body["event_id"] = Value::String(uuid::Uuid::now_v7().to_string());
    env["payload"] = Value::String(B64.encode(serde_json::to_vec(&body).expect("json")));
    js.publish(
        "ledger.ws1.workspace.c",
        serde_json::to_vec(&env).expect("json").into(),
    )
    .await
    .expect("publish")
    .await
    .expect("ack");
    assert_fails_at(&storage, 10, &["signature"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_event_signed_by_unknown_key_is_caught() {
    let nats = NatsServer::start();
    let data = tempfile::tempdir().expect("dir");
    let log = jetstream_case(&nats, data.path(), true).await;
    let b3 = log
        .last_of_aggregate(&key("b"))
        .await
        .expect("read")
        .expect("b3");
    let (forged, _) = seal_event(
        &Signer::generate(),
        &key("b"),
        3,
        Some(authledger::ledger::envelope::event_hash(&b3.envelope)),
        &Actor::system("intruder"),
        &Event::WorkspaceCreated(WorkspaceCreated {
            name: "forged".into(),
        }),
        time::OffsetDateTime::now_utc(),
    )
    .expect("seal");
    let client = async_nats::connect(nats.url()).await.expect("plain client");
    async_nats::jetstream::new(client)
        .publish("ledger.ws1.workspace.b", forged.envelope.clone())
        .await
        .expect("publish")
        .await
        .expect("ack");
    assert_fails_at(&js_storage(&nats, data.path()), 10, &["unknown key"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_replayed_copy_of_an_event_is_caught() {
    let nats = NatsServer::start();
    let data = tempfile::tempdir().expect("dir");
    let log = jetstream_case(&nats, data.path(), true).await;
    let a2 = log.read_aggregate(&key("a")).await.expect("read")[1].clone();
    let client = async_nats::connect(nats.url()).await.expect("plain client");
    async_nats::jetstream::new(client)
        .publish("ledger.ws1.workspace.a", a2.envelope.clone())
        .await
        .expect("publish")
        .await
        .expect("ack");
    assert_fails_at(&js_storage(&nats, data.path()), 10, &["twice", "again"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_deleted_event_on_unprotected_stream_is_caught() {
    let nats = NatsServer::start();
    let data = tempfile::tempdir().expect("dir");
    let _log = jetstream_case(&nats, data.path(), false).await;
    let client = async_nats::connect(nats.url()).await.expect("plain client");
    let stream = async_nats::jetstream::new(client)
        .get_stream("LEDGER")
        .await
        .expect("stream");
    assert!(stream.delete_message(5).await.expect("delete"));
    let storage = js_storage(&nats, data.path());
    let (_, report) = verify(&storage);
    let warnings = report["warnings"].to_string();
    assert!(
        warnings.contains("deny_delete"),
        "verify should warn about the unprotected stream: {report}"
    );
    assert_fails_at(&storage, 6, &["gap"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_deleted_last_event_is_caught_without_hanging() {
    let nats = NatsServer::start();
    let data = tempfile::tempdir().expect("dir");
    let _log = jetstream_case(&nats, data.path(), false).await;
    let client = async_nats::connect(nats.url()).await.expect("plain client");
    let stream = async_nats::jetstream::new(client)
        .get_stream("LEDGER")
        .await
        .expect("stream");
    assert!(stream.delete_message(9).await.expect("delete"));
    // The stream still reports sequence 9 as its last: the missing tail is named (a read
    // that waited on the deleted message would time out and exit 2, not report exit 1).
    assert_fails_at(&js_storage(&nats, data.path()), 9, &["could not be read"]);
}

// ---------- signed with the real key: what only the schema and the rules refuse ----------

impl SqliteCase {
    /// The data dir's own signing key (an insider, or anyone who copied the data dir).
    fn signer(&self) -> Signer {
        KeyDir::new(self.dir.path().join("keys"))
            .load_signer(false)
            .expect("signer")
    }
}

/// Defect 2: bodies that `events/v1/body.json` forbids, re-signed with the real key, are
/// refused at their position.
#[tokio::test]
async fn sqlite_bodies_the_schema_forbids_are_refused_even_when_signed() {
    type Edit = fn(&mut Value);
    let cases: [(&str, Edit); 7] = [
        ("extra body field", |b| b["extra"] = Value::from(1)),
        ("extra actor field", |b| {
            b["actor"]["extra"] = Value::from("x")
        }),
        ("event_id not a UUIDv7", |b| {
            let id = b["event_id"].as_str().expect("id").to_string();
            b["event_id"] = Value::from(format!("{}4{}", &id[..14], &id[15..]));
        }),
        ("upper-case event_id", |b| {
            let id = b["event_id"].as_str().expect("id").to_uppercase();
            b["event_id"] = Value::from(id);
        }),
        ("schema_version 0", |b| b["schema_version"] = Value::from(0)),
        ("upper-case kind", |b| {
            b["kind"] = Value::from("Workspace.created")
        }),
        ("payload an array", |b| b["payload"] = serde_json::json!([])),
    ];
    for (what, edit) in cases {
        let case = SqliteCase::new().await;
        let env = case.envelope(1).await;
        let mut body: Value = serde_json::from_slice(&body_of(&env)).expect("body");
        edit(&mut body);
        let sealed = case
            .signer()
            .seal(&serde_json::to_vec(&body).expect("json"))
            .expect("seal");
        let sealed: Value = serde_json::from_slice(&sealed).expect("env");
        case.set_envelope(1, &sealed).await;
        let (code, report) = verify(&case.storage());
        assert_eq!(code, 1, "{what}: {report}");
        assert_eq!(report["failure"]["position"], 1, "{what}: {report}");
    }
}

/// Defect 3: a checkpoint whose sequence is not 1, 2, … is refused, even with the right
/// root and signature.
#[tokio::test]
async fn sqlite_checkpoint_sequence_must_count_from_one() {
    use authledger::audit::merkle;
    use authledger::domain::checkpoint::CheckpointCreated;
    let case = SqliteCase::new().await;
    let signer = case.signer();
    let log = SqliteEventLog::open(&case.dir.path().join("ledger.db"))
        .await
        .expect("open");
    let events = log.read_from(1, 100).await.expect("read");
    let leaves: Vec<merkle::Hash> = events
        .iter()
        .map(|e| merkle::leaf_hash(<sha2::Sha256 as sha2::Digest>::digest(&e.envelope).as_slice()))
        .collect();
    let checkpoint = Event::CheckpointCreated(CheckpointCreated {
        sequence: 2,
        from_position: 1,
        to_position: 9,
        count: 9,
        tree_size: 9,
        merkle_root: merkle::to_hex(&merkle::root(&leaves)),
        previous_tree_size: None,
        previous_root: None,
        note: None,
    });
    let key = AggregateKey::new("system", "checkpoint", "ledger").expect("key");
    let (signed, _) = seal_event(
        &signer,
        &key,
        0,
        None,
        &Actor::system("checkpointer"),
        &checkpoint,
        time::OffsetDateTime::now_utc(),
    )
    .expect("seal");
    log.append(&signed, 0).await.expect("append");
    log.close().await;
    assert_fails_at(&case.storage(), 10, &["sequence"]);
}

/// Defect 4: a damaged index column is reported at its position (exit 1), and dump-log
/// still dumps what is there.
#[tokio::test]
async fn sqlite_damaged_index_column_is_named_and_still_dumped() {
    let case = SqliteCase::new().await;
    sqlx::query("UPDATE events SET workspace_id = 'ws.1' WHERE position = 5")
        .execute(&case.pool)
        .await
        .expect("damage");
    assert_fails_at(&case.storage(), 5, &["stored under", "index"]);
    let out = run_cli(&[case.storage(), args(&["dump-log"])].concat());
    assert!(
        out.status.success(),
        "dump-log: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 9);
}

/// Defect 1 end to end: a signature whose R is the identity (a small-order point), made
/// with the real key, passes a cofactored batch and dalek's lenient `verify`. `authledger
/// verify` and the API's `verified` flag both refuse it, by the one rule of §3.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_order_r_is_refused_by_verify_and_by_the_api() {
    use crate::vectors::craft;
    use authledger::ledger::envelope::{encode_envelope, pae};
    let crate::support::Deployment {
        svc,
        admin,
        storage,
        dir,
        ..
    } = crate::support::Deployment::start(crate::support::Stack::Embedded, &[]).await;
    drop(svc);
    let events = crate::support::log_events(dir.path()).await;
    let (position, body) = events
        .iter()
        .find(|(_, b)| {
            b.kind == "api_key.created"
                && events
                    .iter()
                    .filter(|(_, o)| o.aggregate_id == b.aggregate_id)
                    .count()
                    == 1
        })
        .cloned()
        .expect("an api_key.created alone in its aggregate");
    let data = crate::support::data_dir(dir.path());
    let seed_text = std::fs::read_to_string(data.join("keys/active.key")).expect("active.key");
    let seed: [u8; 32] = B64
        .decode(seed_text.trim())
        .expect("b64")
        .try_into()
        .expect("32-byte seed");
    let signer = Signer::from_seed(&seed);
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", data.join("ledger.db").display()))
        .await
        .expect("open file");
    let raw: Vec<u8> = sqlx::query_scalar("SELECT envelope FROM events WHERE position = ?")
        .bind(position as i64)
        .fetch_one(&pool)
        .await
        .expect("row");
    let body_bytes = authledger::ledger::envelope::open_envelope(&raw)
        .expect("opens")
        .body_bytes;
    let sig = craft::sign(
        craft::torsion(0),
        curve25519_dalek::scalar::Scalar::ZERO,
        craft::secret(&seed),
        signer.public_key().as_bytes(),
        &pae(authledger::ledger::PAYLOAD_TYPE, &body_bytes),
    );
    let forged = encode_envelope(&body_bytes, signer.key_id(), &sig).expect("envelope");
    sqlx::raw_sql("DROP TRIGGER events_are_append_only_update;")
        .execute(&pool)
        .await
        .expect("drop trigger");
    sqlx::query("UPDATE events SET envelope = ? WHERE position = ?")
        .bind(forged.as_ref())
        .bind(position as i64)
        .execute(&pool)
        .await
        .expect("forge");
    pool.close().await;

    assert_fails_at(&storage, position, &["small order"]);
    let svc = crate::harness::Service::start(&storage, &[], dir.path()).await;
    let r: Value = reqwest::Client::new()
        .get(svc.url(&format!("/v1/audit/events/{}", body.event_id)))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("get event")
        .json()
        .await
        .expect("json");
    assert_eq!(r["verified"], false, "{r}");
}

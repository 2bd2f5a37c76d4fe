//! `replay`'s batched rebuild (multi-row statements, the log read ahead, indexes built after
//! the rows) against the live projector, on a log of a few thousand mixed events written by
//! the audit benchmark's workload (connect flows, refresh rounds, expiries, revocations,
//! denials, audit queries, auth config changes; several connections interleaved, as
//! concurrent writers leave them): every projected table of a whole replay equals what the
//! projector built event batch by event batch, and so does a replay `--until` a position in
//! the middle, or the time of that position, against a projector stopped there. Into SQLite
//! and into PostgreSQL. The whole replay is compared with a projector that applies one event
//! per transaction (nothing folded), the middle with one whose batches end anywhere.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use authledger::config::StorageArgs;
use authledger::ledger::sqlite_log::SqliteEventLog;
use authledger::ledger::{EventLog, KeyDir, Ledger};
use authledger::metrics::Metrics;
use authledger::ops::{replay, ReplayUntil};
use authledger::projector::{
    PgProjections, ProjectionStore, ProjectionWriter as _, SqliteProjections,
};

use crate::harness::fresh_pg_database;
use crate::model::{pg_projections, sqlite_projections};

#[allow(dead_code)]
#[path = "../../tools/bench-src/audit/workload.rs"]
mod workload;

/// Events in the log (the prelude's included).
const EVENTS: u64 = 3_000;
/// Writers whose bursts are interleaved (each owns its connections).
const WRITERS: u64 = 8;

type Tables = BTreeMap<String, Vec<String>>;

/// Writes `EVENTS` mixed events into `<data>/ledger.db`, signed with `<data>/keys`.
async fn write_log(data: &Path) -> Arc<dyn EventLog> {
    let keys = data.join("keys");
    let signer = KeyDir::new(&keys).init().expect("signing key");
    authledger::crypto::master::load_master_file(&keys, true).expect("master key");
    let log: Arc<dyn EventLog> = Arc::new(
        SqliteEventLog::open(&data.join("ledger.db"))
            .await
            .expect("log"),
    );
    let clock = Arc::new(workload::BenchClock::spanning(
        time::Duration::days(30),
        EVENTS,
    ));
    let ledger = Ledger::new(log.clone(), signer, clock.clone(), Metrics::new());
    let (workspaces, mut written) = workload::prelude(&ledger, 3, 10, 7).await.expect("prelude");
    let workspaces = Arc::new(workspaces);
    let mut writers: Vec<workload::TaskGen> = (0..WRITERS)
        .map(|t| {
            workload::TaskGen::new(t, WRITERS, 6, clock.clone(), workspaces.clone(), 7)
                .expect("writer")
        })
        .collect();
    'fill: loop {
        for writer in &mut writers {
            for a in writer.next_burst().expect("burst") {
                if written >= EVENTS - 1 {
                    break 'fill;
                }
                ledger
                    .append_next(&a.key, &a.actor, &a.event)
                    .await
                    .expect("append");
                written += 1;
            }
        }
    }
    append_awkward_text(&ledger, &workspaces[0].id).await;
    assert_eq!(log.head().await.expect("head"), EVENTS);
    log
}

/// A tool call's failure whose words hold what a bulk load's text format reads specially
/// (tab, line breaks, backslash, its NULL marker): its audit row must come back as written.
async fn append_awkward_text(ledger: &Ledger, workspace_id: &str) {
    let words = "upstream said:\tno\\N\r\nline two \\ end\\";
    crate::projection_writers::tool_completed(
        ledger,
        workspace_id,
        "call-awkward",
        "conn-awkward",
        Some(words),
    )
    .await;
}

/// Applies the log up to `until` the way `serve`'s projector does: batches of at most
/// `batch` events, each in its own transaction with the offset.
async fn project_live(store: &dyn ProjectionStore, log: &dyn EventLog, until: u64, batch: u64) {
    loop {
        let offset = store.offset().await.expect("offset");
        if offset >= until {
            break;
        }
        let limit = usize::try_from((until - offset).min(batch)).expect("limit");
        let n = store.catch_up(log, limit).await.expect("live batch");
        assert!(n > 0, "the projector stopped at {offset} before {until}");
    }
    assert_eq!(store.offset().await.expect("offset"), until);
}

fn storage(data: &Path, database_url: Option<String>) -> StorageArgs {
    StorageArgs {
        data_dir: data.to_path_buf(),
        nats_url: None,
        nats_stream: "AUTHLEDGER".into(),
        nats_subject_prefix: "ledger".into(),
        nats_replicas: 1,
        nats_duplicate_window_secs: 120,
        database_url,
        key_dir: Some(data.join("keys")),
    }
}

fn assert_same(live: &Tables, replayed: &Tables, what: &str) {
    assert!(
        live.get("audit_events")
            .is_some_and(|rows| !rows.is_empty()),
        "{what}: nothing projected"
    );
    for (table, rows) in live {
        let other = replayed.get(table).cloned().unwrap_or_default();
        let only_live: Vec<&String> = rows.iter().filter(|r| !other.contains(r)).collect();
        let only_replayed: Vec<&String> = other.iter().filter(|r| !rows.contains(r)).collect();
        assert!(
            only_live.is_empty() && only_replayed.is_empty() && *rows == other,
            "{what}: table {table} differs (rows only live, only replayed): {:#?}",
            (
                only_live.iter().take(5).collect::<Vec<_>>(),
                only_replayed.iter().take(5).collect::<Vec<_>>()
            )
        );
    }
}

/// The `occurred_at` of the event at `position`, as its signed body says.
async fn occurred_at(log: &dyn EventLog, position: u64) -> time::OffsetDateTime {
    let event = log
        .read_from(position, 1)
        .await
        .expect("read")
        .into_iter()
        .next()
        .expect("event");
    assert_eq!(event.position, position);
    authledger::ledger::envelope::open_envelope(&event.envelope)
        .expect("open")
        .body
        .occurred_at
}

/// What `replay` (whole, `--until` the middle position, `--until` its time) must equal:
/// `live(until)` projects the log up to `until` live into fresh projections and snapshots
/// them; `current()` snapshots the projections `replay` writes.
async fn check<L, LF, C, CF>(data: &Path, database_url: Option<String>, live: L, current: C)
where
    L: Fn(u64, u64) -> LF,
    LF: std::future::Future<Output = Tables>,
    C: Fn() -> CF,
    CF: std::future::Future<Output = Tables>,
{
    let args = storage(data, database_url);
    let log = SqliteEventLog::open(&data.join("ledger.db"))
        .await
        .expect("log");

    // The reference: one event per transaction, so nothing is folded or batched together.
    let whole = live(EVENTS, 1).await;
    let report = replay(&args, "state", None, false).await.expect("replay");
    assert_eq!((report.events, report.position), (EVENTS, EVENTS));
    assert_same(&whole, &current().await, "whole replay");

    // In the middle of a refresh round or a connect flow, most likely: some connections
    // stop half-way. The live side in batches of 97, which end anywhere.
    let middle = EVENTS / 2 + 17;
    let as_of_middle = live(middle, 97).await;
    let report = replay(&args, "state", Some(ReplayUntil::Position(middle)), false)
        .await
        .expect("replay --until position");
    assert_eq!((report.events, report.position), (middle, middle));
    assert_same(&as_of_middle, &current().await, "replay --until a position");

    let at = occurred_at(&log, middle).await;
    assert!(
        occurred_at(&log, middle + 1).await > at,
        "the workload's clock moves with every event"
    );
    let report = replay(&args, "state", Some(ReplayUntil::Time(at)), false)
        .await
        .expect("replay --until time");
    assert_eq!((report.events, report.position), (middle, middle));
    assert_same(&as_of_middle, &current().await, "replay --until a time");
    log.close().await;
}

#[tokio::test]
async fn a_batched_replay_into_sqlite_equals_the_live_projections_whole_and_until() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("data");
    let log = write_log(&data).await;
    let live_dir = dir.path().to_path_buf();
    let live = |until: u64, batch: u64| {
        let log = log.clone();
        let file = live_dir.join(format!("live-{until}.db"));
        async move {
            let store = SqliteProjections::open(&file).await.expect("live store");
            project_live(&store, log.as_ref(), until, batch).await;
            store.close().await;
            sqlite_projections(&file)
        }
    };
    let file = data.join("projections.db");
    check(&data, None, live, || async { sqlite_projections(&file) }).await;
    // The swapped-in file is whole: no WAL beside it, its indexes all there.
    assert!(!data.join("projections.db-wal").exists());
    let c = rusqlite::Connection::open(&file).expect("open");
    let indexes: i64 = c
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name LIKE 'audit_events_by_%'",
            [],
            |r| r.get(0),
        )
        .expect("indexes");
    assert_eq!(indexes, 8, "every audit index rebuilt");

    // A connection row out of step with the log: the batched update names the event.
    let middle = EVENTS / 2;
    let file = dir.path().join("stepped.db");
    let store = SqliteProjections::open(&file).await.expect("store");
    project_live(&store, log.as_ref(), middle, 512).await;
    let mut first_update = None;
    for e in log.read_from(middle + 1, 512).await.expect("read") {
        let body = authledger::ledger::envelope::open_envelope(&e.envelope)
            .expect("open")
            .body;
        let update = body.kind.starts_with("connection.")
            && !matches!(
                body.kind.as_str(),
                "connection.initiated" | "connection.created"
            );
        let known = sqlx::query("SELECT 1 FROM connections WHERE id = $1")
            .bind(&body.aggregate_id)
            .fetch_optional(store.pool())
            .await
            .expect("row")
            .is_some();
        if update && known {
            first_update = Some((e.position, body.aggregate_id));
            break;
        }
    }
    let (position, connection) = first_update.expect("a connection update after the middle");
    sqlx::query("UPDATE connections SET version = version + 100 WHERE id = $1")
        .bind(&connection)
        .execute(store.pool())
        .await
        .expect("step");
    match store.catch_up(log.as_ref(), 512).await {
        Err(authledger::projector::ProjectionError::Undecodable {
            position: at,
            reason,
        }) => {
            assert_eq!(at, position, "{reason}");
            assert!(reason.contains("out of order"), "{reason}");
        }
        other => panic!("a connection out of step must stop the batch: {other:?}"),
    }
    assert_eq!(store.offset().await.expect("offset"), middle);
    store.close().await;
}

#[tokio::test]
async fn a_batched_replay_into_postgres_equals_the_live_projections_whole_and_until() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("data");
    let log = write_log(&data).await;
    let live = |until: u64, batch: u64| {
        let log = log.clone();
        async move {
            let url = fresh_pg_database().await;
            let store = PgProjections::open(&url).await.expect("live store");
            project_live(&store, log.as_ref(), until, batch).await;
            store.pool().close().await;
            pg_projections(&url).await
        }
    };
    let url = fresh_pg_database().await;
    let indexes = |url: String| async move {
        let pool = sqlx::PgPool::connect(&url).await.expect("connect");
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() ORDER BY 1",
        )
        .fetch_all(&pool)
        .await
        .expect("indexes");
        pool.close().await;
        names
    };
    // The migrations' indexes, before any replay.
    PgProjections::open(&url)
        .await
        .expect("migrate")
        .pool()
        .close()
        .await;
    let before = indexes(url.clone()).await;
    let current = {
        let url = url.clone();
        move || {
            let url = url.clone();
            async move { pg_projections(&url).await }
        }
    };
    check(&data, Some(url.clone()), live, current).await;
    assert_eq!(indexes(url).await, before, "every index rebuilt, by name");

    // With another client connected (`serve`), the rebuild keeps the indexes in place and
    // gives the same rows.
    let url2 = fresh_pg_database().await;
    let other = sqlx::PgPool::connect(&url2).await.expect("connect");
    let args = storage(&data, Some(url2.clone()));
    replay(&args, "state", None, false).await.expect("replay");
    sqlx::query("SELECT 1")
        .execute(&other)
        .await
        .expect("other");
    let whole = {
        let url = fresh_pg_database().await;
        let store = PgProjections::open(&url).await.expect("live store");
        project_live(&store, log.as_ref(), EVENTS, 512).await;
        store.pool().close().await;
        pg_projections(&url).await
    };
    assert_same(
        &whole,
        &pg_projections(&url2).await,
        "replay beside a client",
    );
    other.close().await;
}

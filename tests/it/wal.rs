//! The SQLite files written under load keep a bounded WAL: checkpoints run beside the
//! writer, and the writer starts the WAL over when it grows long (`authledger::wal`).
//! Without that, steady writes with readers alongside grew a WAL without end.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use authledger::domain::audit::AUDIT_QUERY_AGGREGATE;
use authledger::domain::{AuditQueried, Event};
use authledger::ledger::sqlite_log::SqliteEventLog;
use authledger::ledger::{Actor, ActorType, AggregateKey, EventLog, Ledger, Signer};
use authledger::projector::store::{AuditReads as _, ProjectionWriter as _};
use authledger::projector::SqliteProjections;
use authledger::wal::WalPolicy;

use crate::harness::ledger;

/// Small enough that the test crosses it many times over.
fn policy() -> WalPolicy {
    WalPolicy {
        checkpoint_every: Duration::from_millis(20),
        restart_after_frames: 256,
    }
}

/// What the WAL may reach in these runs. With the writer never starting the WAL over they
/// grew it to 30-60 MiB; with it, to 2-4 MiB (the policy's restart point is 1 MiB).
const BOUND: u64 = 12 << 20;

fn wal_of(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

fn wal_bytes(db: &Path) -> u64 {
    std::fs::metadata(wal_of(db)).map_or(0, |m| m.len())
}

/// Appends `count` events, each its own aggregate (one commit each when alone).
async fn append(l: &Ledger, writer: usize, count: usize) {
    let actor = Actor {
        actor_type: ActorType::System,
        id: format!("writer-{writer}"),
    };
    for i in 0..count {
        let key = AggregateKey::new("ws1", AUDIT_QUERY_AGGREGATE, format!("q-{writer}-{i}"))
            .expect("key");
        let event = Event::AuditQueried(AuditQueried {
            route: "/v1/audit/events".into(),
            filters: BTreeMap::from([("kind".to_string(), "x".repeat(200))]),
        });
        l.append_next(&key, &actor, &event).await.expect("append");
    }
}

/// Runs `work` with `read` looping alongside (the request path and the projector read
/// while appends go on), sampling the WAL every few milliseconds; fails when it outgrew
/// `BOUND`.
async fn wal_stays_bounded<R, F>(db: &Path, work: impl Future<Output = ()>, read: R)
where
    R: Fn() -> F + Send + 'static,
    F: Future<Output = ()> + Send,
{
    let done = Arc::new(AtomicBool::new(false));
    let watched = db.to_path_buf();
    let finished = done.clone();
    let sampler = tokio::spawn(async move {
        let mut largest = 0;
        while !finished.load(Ordering::Acquire) {
            largest = largest.max(wal_bytes(&watched));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        largest.max(wal_bytes(&watched))
    });
    let finished = done.clone();
    let reader = tokio::spawn(async move {
        let mut reads = 0u64;
        while !finished.load(Ordering::Acquire) {
            read().await;
            reads += 1;
            tokio::task::yield_now().await;
        }
        reads
    });
    work.await;
    done.store(true, Ordering::Release);
    assert!(
        reader.await.expect("reader") > 0,
        "nothing was read alongside"
    );
    let largest = sampler.await.expect("sampler");
    assert!(
        largest <= BOUND,
        "the WAL grew to {largest} bytes (bound {BOUND})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_log_wal_starts_over_under_steady_appends_and_reads() {
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("ledger.db");
    let wal = policy();
    let log = Arc::new(SqliteEventLog::open_with(&db, wal).await.expect("log"));
    let l = Arc::new(ledger(log.clone(), Signer::generate()));
    let reading = log.clone();
    let writes = async {
        let writers: Vec<_> = (0..2)
            .map(|w| {
                let l = l.clone();
                tokio::spawn(async move { append(&l, w, 1500).await })
            })
            .collect();
        for w in writers {
            w.await.expect("writer");
        }
    };
    wal_stays_bounded(&db, writes, move || {
        let log = reading.clone();
        async move {
            let head = log.head().await.expect("head");
            log.read_from(head.saturating_sub(20).max(1), 20)
                .await
                .expect("read");
        }
    })
    .await;
    assert_eq!(log.head().await.expect("head"), 3000);
    // Nothing was lost on the way: every event reads back, verified.
    let events = log.read_from(1, 3000).await.expect("read all");
    assert_eq!(events.len(), 3000);
    log.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_projections_wal_starts_over_under_steady_batches_and_reads() {
    let dir = tempfile::tempdir().expect("dir");
    let log: Arc<dyn EventLog> = Arc::new(
        SqliteEventLog::open(&dir.path().join("ledger.db"))
            .await
            .expect("log"),
    );
    let l = Arc::new(ledger(log.clone(), Signer::generate()));
    let db = dir.path().join("projections.db");
    let wal = policy();
    let store = Arc::new(SqliteProjections::open_with(&db, wal).await.expect("store"));
    let reading = store.clone();
    let batches = async {
        for round in 0..300 {
            append(&l, round, 10).await;
            while store.catch_up(log.as_ref(), 4).await.expect("apply") > 0 {}
        }
    };
    wal_stays_bounded(&db, batches, move || {
        let store = reading.clone();
        async move {
            store.offset().await.expect("offset");
            store
                .aggregate_elsewhere("ws2", AUDIT_QUERY_AGGREGATE, "q-0-1")
                .await
                .expect("read");
        }
    })
    .await;
    assert_eq!(store.offset().await.expect("offset"), 3000);
    // Every event is in the audit view.
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_events")
        .fetch_one(store.pool())
        .await
        .expect("count");
    assert_eq!(rows, 3000);
}

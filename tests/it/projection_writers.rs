//! Two writers sharing one projection store (as `serve` and a CLI command beside it, or two
//! instances on one PostgreSQL database): each event applied once, on both SQL backends.

use std::sync::Arc;

use authledger::domain::auth_config::{AuthConfig, AuthConfigCommand};
use authledger::domain::AuthConfigCreated;
use authledger::ledger::{Actor, EventLog, Ledger};
use authledger::projector::{PgProjections, ProjectionStore, SqliteProjections};

use crate::harness::fresh_pg_database;
use crate::projections::{embedded_ledger, oauth, secret, Pg, Sqlite};

/// Audit rows and their distinct positions, and the stored offset.
trait CountRows {
    async fn counts(&self) -> (i64, i64, i64);
}

const COUNTS: &str = "SELECT (SELECT COUNT(*) FROM audit_events),
    (SELECT COUNT(DISTINCT position) FROM audit_events),
    (SELECT position FROM projection_offsets)";

impl CountRows for Sqlite {
    async fn counts(&self) -> (i64, i64, i64) {
        sqlx::query_as(COUNTS)
            .fetch_one(&self.0)
            .await
            .expect("counts")
    }
}

impl CountRows for Pg {
    async fn counts(&self) -> (i64, i64, i64) {
        sqlx::query_as(COUNTS)
            .fetch_one(&self.0)
            .await
            .expect("counts")
    }
}

/// `n` auth configs created in workspace `ws1`: one event each.
async fn create_auth_configs(l: &Ledger, admin: &Actor, n: usize) {
    for n in 0..n {
        let create = AuthConfigCommand::Create(AuthConfigCreated {
            name: format!("config {n}"),
            provider: "google".into(),
            settings: oauth(&["a"], 'a'),
            token_release: false,
            offered: true,
        });
        l.execute::<AuthConfig>("ws1", &format!("ac{n}"), admin, &create)
            .await
            .expect("create");
    }
}

/// Two writers on one projection database, each handed the log's events as its
/// subscription delivers them (the fast path: no read of the offset first), while the other
/// moves the offset under it: ahead (the events are applied already) and back to 0 (a reset
/// by another process). Each event is applied exactly once, and nothing is reported stuck.
async fn writers_sharing_a_database_apply_each_event_once(
    a: Arc<dyn ProjectionStore>,
    b: Arc<dyn ProjectionStore>,
    db: impl CountRows,
) {
    let dir = tempfile::tempdir().expect("dir");
    let (log, l, admin) = embedded_ledger(dir.path()).await;
    create_auth_configs(&l, &admin, 12).await;
    let events = log.read_from(1, 100).await.expect("read");
    assert_eq!(events.len(), 12);
    // After each call: every event up to the offset applied once, none after it.
    let once = |n: i64| (n, n, n);

    assert_eq!(a.apply_next(log.as_ref(), 2, &events).await.expect("a"), 2);
    assert_eq!(db.counts().await, once(2));
    // b has applied nothing yet: it is handed 1.. while the offset is at 2.
    let n = b.apply_next(log.as_ref(), 4, &events).await.expect("b");
    assert!(n > 0);
    let offset = 2 + i64::try_from(n).expect("n");
    assert_eq!(db.counts().await, once(offset));
    // a last applied 2 and is handed 3.., while the offset is further on.
    let n = a
        .apply_next(log.as_ref(), 2, &events[2..])
        .await
        .expect("a");
    assert!(n > 0);
    let offset = offset + i64::try_from(n).expect("n");
    assert_eq!(db.counts().await, once(offset));
    // Emptied by b; a is handed what follows what it last applied: it starts again from 1.
    b.reset().await.expect("reset");
    let after = usize::try_from(offset).expect("offset");
    assert_eq!(
        a.apply_next(log.as_ref(), 3, &events[after..])
            .await
            .expect("a"),
        3
    );
    assert_eq!(db.counts().await, once(3));
    while a.catch_up(log.as_ref(), 100).await.expect("catch up") > 0 {}
    assert_eq!(db.counts().await, once(12));
}

/// Two embedded projection stores on one file (as `serve` and a CLI command beside it).
async fn two_sqlite_writers() -> (
    tempfile::TempDir,
    Arc<dyn ProjectionStore>,
    Arc<dyn ProjectionStore>,
    Sqlite,
) {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("p.db");
    let a = SqliteProjections::open(&path).await.expect("open a");
    let b = SqliteProjections::open(&path).await.expect("open b");
    let pool = a.pool().clone();
    (dir, Arc::new(a), Arc::new(b), Sqlite(pool))
}

/// Two PostgreSQL projection stores on one fresh database (two instances).
async fn two_postgres_writers() -> (Arc<dyn ProjectionStore>, Arc<dyn ProjectionStore>, Pg) {
    let url = fresh_pg_database().await;
    let a = PgProjections::open(&url).await.expect("open a");
    let b = PgProjections::open(&url).await.expect("open b");
    let pool = a.pool().clone();
    (Arc::new(a), Arc::new(b), Pg(pool))
}

#[tokio::test]
async fn sqlite_writers_sharing_a_file_apply_each_event_once() {
    let (_dir, a, b, db) = two_sqlite_writers().await;
    writers_sharing_a_database_apply_each_event_once(a, b, db).await;
}

#[tokio::test]
async fn postgres_writers_sharing_a_database_apply_each_event_once() {
    let (a, b, db) = two_postgres_writers().await;
    writers_sharing_a_database_apply_each_event_once(a, b, db).await;
}

/// A log whose first `read_from` lets another writer apply everything first: the reader
/// read the offset before that writer moved it, and then reads the events it would apply.
struct OvertakingLog {
    inner: Arc<dyn EventLog>,
    other: tokio::sync::Mutex<Option<Arc<dyn ProjectionStore>>>,
}

#[async_trait::async_trait]
impl EventLog for OvertakingLog {
    async fn append(
        &self,
        event: &authledger::ledger::SignedEvent,
        expected_version: u64,
    ) -> Result<authledger::ledger::Appended, authledger::ledger::LogError> {
        self.inner.append(event, expected_version).await
    }
    async fn read_aggregate(
        &self,
        key: &authledger::ledger::AggregateKey,
    ) -> Result<Vec<authledger::ledger::RecordedEvent>, authledger::ledger::LogError> {
        self.inner.read_aggregate(key).await
    }
    async fn last_of_aggregate(
        &self,
        key: &authledger::ledger::AggregateKey,
    ) -> Result<Option<authledger::ledger::RecordedEvent>, authledger::ledger::LogError> {
        self.inner.last_of_aggregate(key).await
    }
    async fn read_from(
        &self,
        from: u64,
        limit: usize,
    ) -> Result<Vec<authledger::ledger::RecordedEvent>, authledger::ledger::LogError> {
        if let Some(other) = self.other.lock().await.take() {
            while other
                .catch_up(self.inner.as_ref(), 100)
                .await
                .expect("the other writer")
                > 0
            {}
        }
        self.inner.read_from(from, limit).await
    }
    async fn subscribe(
        &self,
        from: u64,
    ) -> Result<authledger::ledger::log::EventStream, authledger::ledger::LogError> {
        self.inner.subscribe(from).await
    }
    async fn head(&self) -> Result<u64, authledger::ledger::LogError> {
        self.inner.head().await
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
}

/// A catch-up (a CLI command beside a running `serve`) overtaken between its read of the
/// offset and its batch by another writer that applied the same events: it applies nothing
/// twice and fails nothing (seen as "UNIQUE constraint failed" from `export --follow`).
async fn a_catch_up_overtaken_by_another_writer_applies_nothing_twice(
    a: Arc<dyn ProjectionStore>,
    b: Arc<dyn ProjectionStore>,
    db: impl CountRows,
) {
    let dir = tempfile::tempdir().expect("dir");
    let (log, l, admin) = embedded_ledger(dir.path()).await;
    create_auth_configs(&l, &admin, 5).await;
    let overtaking = OvertakingLog {
        inner: log.clone(),
        other: tokio::sync::Mutex::new(Some(b)),
    };
    let applied = a.catch_up(&overtaking, 100).await.expect("catch up");
    assert_eq!(applied, 0, "everything was applied by the other writer");
    assert_eq!(db.counts().await, (5, 5, 5));
    assert_eq!(a.offset().await.expect("offset"), 5);
}

#[tokio::test]
async fn sqlite_catch_up_overtaken_by_another_writer_applies_nothing_twice() {
    let (_dir, a, b, db) = two_sqlite_writers().await;
    a_catch_up_overtaken_by_another_writer_applies_nothing_twice(a, b, db).await;
}

#[tokio::test]
async fn postgres_catch_up_overtaken_by_another_writer_applies_nothing_twice() {
    let (a, b, db) = two_postgres_writers().await;
    a_catch_up_overtaken_by_another_writer_applies_nothing_twice(a, b, db).await;
}

// One batch's audit rows and new connection rows: the rows each audit row looks up (a
// missing user and auth config, from its connection) are those one event at a time sees.

use authledger::domain::connection::{Connection, ConnectionCommand};
use authledger::domain::tool_call::{ToolCompleted, ToolOutcome};
use authledger::domain::{ConnectionCreated, Event};
use authledger::ledger::AggregateKey;

/// Audit rows by position: kind, user, auth config.
type AuditFacts = Vec<(i64, String, Option<String>, Option<String>)>;

const FACTS: &str =
    "SELECT position, kind, user_id, auth_config_id FROM audit_events ORDER BY position";

/// A tool call's `tool.completed` on `connection` in `workspace`: a success, or with
/// `error` an upstream failure whose words are `error`.
pub(crate) async fn tool_completed(
    l: &Ledger,
    workspace: &str,
    call: &str,
    connection: &str,
    error: Option<&str>,
) {
    let completed = ToolCompleted {
        tool: "custom.echo".into(),
        connection_id: connection.into(),
        outcome: match error {
            None => ToolOutcome::Success,
            Some(_) => ToolOutcome::UpstreamError,
        },
        status: Some(if error.is_none() { 200 } else { 502 }),
        latency_ms: 12,
        attempts: 1,
        response: None,
        error: error.map(str::to_string),
        undo: None,
        recovered: false,
    };
    let key = AggregateKey::new(workspace, "tool_call", call).expect("key");
    l.append_next(
        &key,
        &Actor::system("test"),
        &Event::ToolCompleted(completed),
    )
    .await
    .expect("append");
}

async fn create_connection(l: &Ledger, admin: &Actor, id: &str, user: &str) {
    let create = ConnectionCommand::Create(ConnectionCreated {
        auth_config_id: "ac1".into(),
        auth_config_version: 1,
        user_id: user.into(),
        credentials: Some(secret('4')),
        data_key_id: format!("dk_{id}"),
    });
    l.execute::<Connection>("ws1", id, admin, &create)
        .await
        .expect("create");
}

/// A call on `cx` before `cx` exists (its audit row finds no user), `cx` created, a call
/// on it (finds its user), then two more creates; all applied in one batch.
async fn one_batch_sees_each_connection_as_one_event_at_a_time(
    store: Arc<dyn ProjectionStore>,
    facts: impl std::future::Future<Output = AuditFacts>,
) {
    let dir = tempfile::tempdir().expect("dir");
    let (log, l, admin) = embedded_ledger(dir.path()).await;
    tool_completed(&l, "ws1", "call-1", "cx", None).await;
    create_connection(&l, &admin, "cx", "u1").await;
    tool_completed(&l, "ws1", "call-2", "cx", None).await;
    create_connection(&l, &admin, "cy", "u2").await;
    create_connection(&l, &admin, "cz", "u3").await;
    assert_eq!(store.catch_up(log.as_ref(), 100).await.expect("batch"), 5);
    let s = |v: &str| Some(v.to_string());
    assert_eq!(
        facts.await,
        vec![
            (1, "tool.completed".into(), None, None),
            (2, "connection.created".into(), s("u1"), s("ac1")),
            (3, "tool.completed".into(), s("u1"), s("ac1")),
            (4, "connection.created".into(), s("u2"), s("ac1")),
            (5, "connection.created".into(), s("u3"), s("ac1")),
        ]
    );
}

#[tokio::test]
async fn a_sqlite_batch_sees_each_connection_as_one_event_at_a_time() {
    let dir = tempfile::tempdir().expect("dir");
    let store = SqliteProjections::open(&dir.path().join("p.db"))
        .await
        .expect("open");
    let pool = store.pool().clone();
    let facts = async move { sqlx::query_as(FACTS).fetch_all(&pool).await.expect("rows") };
    one_batch_sees_each_connection_as_one_event_at_a_time(Arc::new(store), facts).await;
}

#[tokio::test]
async fn a_postgres_batch_sees_each_connection_as_one_event_at_a_time() {
    let store = PgProjections::open(&fresh_pg_database().await)
        .await
        .expect("open");
    let pool = store.pool().clone();
    let facts = async move { sqlx::query_as(FACTS).fetch_all(&pool).await.expect("rows") };
    one_batch_sees_each_connection_as_one_event_at_a_time(Arc::new(store), facts).await;
}

/// Read-your-writes waiters on one instance whose events another instance applies: only a
/// read of the offset can tell them, one of them reads it for all, and every one of them
/// sees the write.
async fn waiters_see_what_another_writer_applied(
    waiting: Arc<dyn ProjectionStore>,
    writing: Arc<dyn ProjectionStore>,
) {
    let dir = tempfile::tempdir().expect("dir");
    let (log, l, admin) = embedded_ledger(dir.path()).await;
    create_auth_configs(&l, &admin, 3).await;
    let waiters: Vec<_> = (0..16)
        .map(|_| {
            let store = waiting.clone();
            tokio::spawn(async move {
                authledger::projector::wait_for(
                    store.as_ref(),
                    3,
                    std::time::Duration::from_secs(60),
                )
                .await
            })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    while writing.catch_up(log.as_ref(), 100).await.expect("catch up") > 0 {}
    // Long before their deadline: a poll woke them, not their last look.
    let seen = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        for waiter in waiters {
            assert!(
                waiter.await.expect("task").expect("read"),
                "the waiter saw the write"
            );
        }
    });
    seen.await.expect("the waiters were told within 20 s");
    // Nothing moved since: a waiter past the position returns at once, one before it at
    // its deadline.
    assert!(!authledger::projector::wait_for(
        waiting.as_ref(),
        4,
        std::time::Duration::from_millis(60)
    )
    .await
    .expect("read"));
}

#[tokio::test]
async fn sqlite_waiters_see_what_another_writer_applied() {
    let (_dir, a, b, _) = two_sqlite_writers().await;
    waiters_see_what_another_writer_applied(a, b).await;
}

#[tokio::test]
async fn postgres_waiters_see_what_another_writer_applied() {
    let (a, b, _) = two_postgres_writers().await;
    waiters_see_what_another_writer_applied(a, b).await;
}

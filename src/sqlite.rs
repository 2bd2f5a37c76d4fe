//! How every SQLite file of the data dir is opened (the event log's readers, the
//! projections, the data keys): WAL, a busy timeout instead of immediate `SQLITE_BUSY`, and
//! a small pool that never pings (the file is in-process; a ping costs a round trip to the
//! connection's worker thread on every acquire). Each caller adds what is its own.

use std::path::Path;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;

/// Connections per file: one writer at a time in WAL mode, a few readers beside it.
const POOL_SIZE: u32 = 4;
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The options of a data-dir file in WAL mode, synced as `synchronous` says.
pub fn file_options(path: &Path, synchronous: SqliteSynchronous) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(synchronous)
        .busy_timeout(BUSY_TIMEOUT)
}

/// A pool over one file opened with `options`.
pub async fn open_pool(options: SqliteConnectOptions) -> Result<SqlitePool, sqlx::Error> {
    SqlitePoolOptions::new()
        .test_before_acquire(false)
        .max_connections(POOL_SIZE)
        // A COMMIT that fails with a full disk is rolled back by SQLite itself; the
        // ROLLBACK sqlx then sends fails ("no transaction is active") and sqlx keeps
        // counting the connection as inside a transaction: every later `begin` on it would
        // fail for good (a projector stuck after the disk was freed). Such a connection is
        // closed instead of going back to the pool.
        .after_release(|connection, _| {
            let clean = !sqlx::Connection::is_in_transaction(connection);
            Box::pin(async move { Ok(clean) })
        })
        .connect_with(options)
        .await
}

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
        .connect_with(options)
        .await
}

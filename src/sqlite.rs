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

/// Read-only `rusqlite` connections for short reads run on the caller's thread (an indexed
/// read takes microseconds, less than handing it to a connection thread and back). WAL
/// readers wait for neither the writer nor each other.
pub struct PointReaders {
    path: std::path::PathBuf,
    /// Most idle connections kept open.
    keep: usize,
    idle: std::sync::Mutex<Vec<rusqlite::Connection>>,
}

impl PointReaders {
    pub fn new(path: &Path, keep: usize) -> Self {
        PointReaders {
            path: path.to_path_buf(),
            keep,
            idle: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// Runs `read` on an idle connection, or a new one.
    pub fn with<T>(
        &self,
        read: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        let idle = self.idle.lock().map(|mut idle| idle.pop());
        let connection = match idle {
            Ok(Some(c)) => c,
            _ => open_point_reader(&self.path)?,
        };
        let result = read(&connection);
        // A connection whose read failed is dropped, not reused.
        if result.is_ok() {
            if let Ok(mut idle) = self.idle.lock() {
                if idle.len() < self.keep {
                    idle.push(connection);
                }
            }
        }
        result
    }
}

fn open_point_reader(path: &Path) -> rusqlite::Result<rusqlite::Connection> {
    use rusqlite::OpenFlags;
    let connection = rusqlite::Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    // Only a WAL reset (a checkpoint restarting the WAL) can make a reader wait at all.
    connection.busy_timeout(Duration::from_millis(500))?;
    Ok(connection)
}

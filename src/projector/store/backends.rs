//! The two backends' stores: how each opens its pool, runs its migrations, begins a batch
//! and keeps its WAL short (SQLite), and what both keep beside the pool: the offset this
//! instance saw applied and the read cache.

use std::time::Duration;

use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::SqliteSynchronous;
use sqlx::{PgPool, SqlitePool};

use super::audit_insert::Placeholders;
use super::{db, ProjectionError};
use crate::projector::cache::{Family, ReadCache};

pub struct SqliteProjections {
    pub(super) pool: SqlitePool,
    pub(super) description: String,
    pub(super) applied: tokio::sync::watch::Sender<u64>,
    /// When this instance's read-your-writes waiters last read the offset (`poll_due`).
    pub(super) last_poll: std::sync::Mutex<Option<tokio::time::Instant>>,
    pub(super) cache: ReadCache,
    /// A fresh file being rebuilt by `replay` (`open_for_rebuild`): nobody reads it until
    /// it is swapped in.
    rebuilding: bool,
    /// Runs live batches and keeps the WAL short (none on a file being rebuilt: its
    /// rebuild runs on the pool, with no WAL).
    pub(super) batch_writer: Option<super::sqlite_batch::BatchWriter>,
    /// Short reads on the caller's thread (`crate::sqlite::PointReaders`).
    pub(super) point_readers: crate::sqlite::PointReaders,
}

/// Idle inline readers of the projections file kept open.
const IDLE_POINT_READERS: usize = 8;

/// Page cache of a file being rebuilt, in KiB (SQLite's negative `cache_size`).
const REBUILD_CACHE_KIB: i64 = -262_144;

impl PgProjections {
    /// Drops the non-unique indexes of the tables a rebuild refills (`tables`) and returns
    /// their `CREATE INDEX` statements, for `build_indexes` once the rows are in, when the
    /// replay is the database's only client (`open_for_rebuild`; `serve` stopped). While
    /// others are connected nothing is dropped: the tables are rebuilt in place and they
    /// keep reading the previous rows until the commit (a dropped index would lock them
    /// out of the tables until then).
    pub(super) async fn defer_indexes(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
        tables: &[&str],
    ) -> Result<Vec<String>, ProjectionError> {
        if !self.rebuilding {
            return Ok(Vec::new());
        }
        let others: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()
             AND backend_type = 'client backend' AND application_name <> $1",
        )
        .bind(REBUILD_APPLICATION)
        .fetch_one(&mut **tx)
        .await
        .map_err(db)?;
        if others > 0 {
            tracing::info!(
                clients = others,
                "other clients use the projections: rebuilding with their indexes in place"
            );
            return Ok(Vec::new());
        }
        let tables: Vec<String> = tables.iter().map(|t| (*t).to_string()).collect();
        let indexes: Vec<(String, String)> = sqlx::query_as(
            "SELECT indexname, indexdef FROM pg_indexes
             WHERE schemaname = current_schema() AND tablename = ANY($1)
             AND indexdef NOT LIKE 'CREATE UNIQUE%'",
        )
        .bind(&tables)
        .fetch_all(&mut **tx)
        .await
        .map_err(db)?;
        for (name, _) in &indexes {
            sqlx::query(&format!("DROP INDEX \"{}\"", name.replace('"', "\"\"")))
                .execute(&mut **tx)
                .await
                .map_err(db)?;
        }
        Ok(indexes.into_iter().map(|(_, sql)| sql).collect())
    }
}

impl SqliteProjections {
    pub(super) const LOCK_OFFSET: &'static str =
        "SELECT position FROM projection_offsets WHERE name = $1";
    pub(super) const PLACEHOLDERS: Placeholders = Placeholders::Anonymous;

    pub async fn open(path: &std::path::Path) -> Result<Self, ProjectionError> {
        Self::open_with(path, crate::wal::WalPolicy::default()).await
    }

    /// `open`, with the WAL checkpointed and started over as `wal` says.
    pub async fn open_with(
        path: &std::path::Path,
        wal: crate::wal::WalPolicy,
    ) -> Result<Self, ProjectionError> {
        let options = crate::sqlite::file_options(path, SqliteSynchronous::Normal)
            .pragma("wal_autocheckpoint", "0")
            .pragma("journal_size_limit", wal.journal_size_limit().to_string());
        Self::open_options(path, options, wal, false).await
    }

    /// A new file that `replay` fills in one transaction before anyone reads it, then makes
    /// self-contained, syncs and renames over the live one (`swap`): no WAL (every page
    /// would be written twice), the rollback journal in memory (a failed rebuild's file is
    /// deleted anyway), no sync until then, a large page cache, and the non-unique indexes
    /// built after the rows are in (`defer_indexes`).
    pub async fn open_for_rebuild(path: &std::path::Path) -> Result<Self, ProjectionError> {
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(path)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Memory)
            .synchronous(SqliteSynchronous::Off)
            .busy_timeout(Duration::from_secs(10))
            .pragma("cache_size", REBUILD_CACHE_KIB.to_string());
        Self::open_options(path, options, crate::wal::WalPolicy::default(), true).await
    }

    async fn open_options(
        path: &std::path::Path,
        options: sqlx::sqlite::SqliteConnectOptions,
        wal: crate::wal::WalPolicy,
        rebuilding: bool,
    ) -> Result<Self, ProjectionError> {
        let options = options
            .create_if_missing(true)
            // A batch's multi-row inserts need a statement journal: in memory, not a temp
            // file created, written and unlinked per batch.
            .pragma("temp_store", "memory");
        let pool = crate::sqlite::open_pool(options).await.map_err(|e| {
            ProjectionError::Misconfigured(format!(
                "cannot open projections {}: {e}",
                path.display()
            ))
        })?;
        sqlx::migrate!("./projections/sqlite")
            .run(&pool)
            .await
            .map_err(|e| {
                ProjectionError::Misconfigured(format!("projection migrations failed: {e}"))
            })?;
        let batch_writer = match rebuilding {
            true => None,
            false => Some(super::sqlite_batch::BatchWriter::start(path, wal)?),
        };
        Ok(SqliteProjections {
            pool,
            batch_writer,
            point_readers: crate::sqlite::PointReaders::new(path, IDLE_POINT_READERS),
            description: format!("SQLite projections {}", path.display()),
            applied: tokio::sync::watch::Sender::new(0),
            last_poll: Default::default(),
            cache: ReadCache::default(),
            rebuilding,
        })
    }

    /// Drops the non-unique indexes of a file being rebuilt (`open_for_rebuild`: all of
    /// its tables are new, so `tables` does not narrow it) and
    /// returns their `CREATE INDEX` statements, for `build_indexes` once the rows are in:
    /// one sort per index instead of an index update per row. Unique indexes stay (they
    /// decide `ON CONFLICT`). Nothing on a live file, which others read meanwhile.
    pub(super) async fn defer_indexes(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
        _tables: &[&str],
    ) -> Result<Vec<String>, ProjectionError> {
        if !self.rebuilding {
            return Ok(Vec::new());
        }
        let indexes: Vec<(String, String)> = sqlx::query_as(
            "SELECT name, sql FROM sqlite_master
             WHERE type = 'index' AND sql IS NOT NULL AND sql NOT LIKE 'CREATE UNIQUE%'",
        )
        .fetch_all(&mut **tx)
        .await
        .map_err(db)?;
        for (name, _) in &indexes {
            sqlx::query(&format!("DROP INDEX \"{}\"", name.replace('"', "\"\"")))
                .execute(&mut **tx)
                .await
                .map_err(db)?;
        }
        Ok(indexes.into_iter().map(|(_, sql)| sql).collect())
    }

    pub(super) async fn begin(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
        // IMMEDIATE takes the write lock up front: the batch is serialised with any other.
        self.pool.begin_with("BEGIN IMMEDIATE").await
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Closes every connection to the file, waiting (bounded) also for ones that were still
    /// on their way back to the pool when it closed (`SqlitePool::close` alone can miss
    /// those, leaving one open).
    pub async fn close(&self) {
        if let Some(writer) = &self.batch_writer {
            writer.close().await;
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            self.pool.close().await;
            if self.pool.size() == 0 || tokio::time::Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

pub struct PgProjections {
    pub(super) pool: PgPool,
    pub(super) description: String,
    pub(super) applied: tokio::sync::watch::Sender<u64>,
    /// When this instance's read-your-writes waiters last read the offset (`poll_due`).
    pub(super) last_poll: std::sync::Mutex<Option<tokio::time::Instant>>,
    pub(super) cache: ReadCache,
    /// Opened by `replay` (`open_for_rebuild`): may defer index builds.
    rebuilding: bool,
}

/// The `application_name` of a replay's connections (`defer_indexes` counts the others).
const REBUILD_APPLICATION: &str = "authledger-replay";

impl PgProjections {
    // FOR UPDATE: a second instance waits here, then sees the advanced offset.
    pub(super) const LOCK_OFFSET: &'static str =
        "SELECT position FROM projection_offsets WHERE name = $1 FOR UPDATE";
    pub(super) const PLACEHOLDERS: Placeholders = Placeholders::Numbered;

    pub async fn open(url: &str) -> Result<Self, ProjectionError> {
        Self::open_as(url, false).await
    }

    /// `open` for `replay`: its connections say so (`application_name`), and its rebuild
    /// builds the indexes after the rows when nobody else is connected (`defer_indexes`).
    pub async fn open_for_rebuild(url: &str) -> Result<Self, ProjectionError> {
        Self::open_as(url, true).await
    }

    async fn open_as(url: &str, rebuilding: bool) -> Result<Self, ProjectionError> {
        let mut options = url
            .parse::<sqlx::postgres::PgConnectOptions>()
            .map_err(|e| ProjectionError::Misconfigured(format!("bad PostgreSQL URL: {e}")))?
            // Statements are prepared once per connection; a generic plan cached while
            // the tables were small (a replay into fresh tables) turns connection lookups
            // into scans. Plan each execution for its values instead.
            .options([("plan_cache_mode", "force_custom_plan")]);
        if rebuilding {
            options = options.application_name(REBUILD_APPLICATION);
        }
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(crate::config::PG_ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|e| {
                ProjectionError::Misconfigured(format!("cannot connect to PostgreSQL: {e}"))
            })?;
        sqlx::migrate!("./projections/postgres")
            .run(&pool)
            .await
            .map_err(|e| {
                ProjectionError::Misconfigured(format!("projection migrations failed: {e}"))
            })?;
        Ok(PgProjections {
            pool,
            description: "PostgreSQL projections".into(),
            applied: tokio::sync::watch::Sender::new(0),
            last_poll: Default::default(),
            cache: ReadCache::default(),
            rebuilding,
        })
    }

    pub(super) async fn begin(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
        self.pool.begin().await
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// What both stores do the same way beside their SQL.
macro_rules! store_common {
    ($store:ident) => {
        impl $store {
            /// Offsets only grow (until a `reset`): announces the highest seen.
            pub(super) fn announce(&self, offset: u64) {
                self.applied.send_if_modified(|seen| {
                    let newer = offset > *seen;
                    if newer {
                        *seen = offset;
                    }
                    newer
                });
            }

            /// An offset read from the database: when it moved past what this instance
            /// knew, someone else applied the events in between, so any cached read may be
            /// stale.
            pub(super) fn saw_offset(&self, offset: u64) {
                if offset > *self.applied.borrow() {
                    self.cache.changed_all();
                    self.announce(offset);
                }
            }

            /// Whether this caller reads the offset now: once per `every` for all of this
            /// instance's waiters (a read announces what it found to all of them).
            pub(super) fn poll_due(&self, every: std::time::Duration) -> bool {
                let now = tokio::time::Instant::now();
                let mut last = self
                    .last_poll
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if last.is_some_and(|t| now.duration_since(t) < every) {
                    return false;
                }
                *last = Some(now);
                true
            }

            /// `read` answered from the cache while `family` has not changed since.
            pub(super) async fn cached<T, F>(
                &self,
                family: Family,
                key: String,
                read: F,
            ) -> Result<T, ProjectionError>
            where
                T: Clone + Send + Sync + 'static,
                F: std::future::Future<Output = Result<T, ProjectionError>>,
            {
                if let Some(hit) = self.cache.get::<T>(family, &key) {
                    return Ok(hit);
                }
                let generation = self.cache.generation(family);
                let value = read.await?;
                self.cache.put(family, key, generation, value.clone());
                Ok(value)
            }

            /// Whether `table` has a row with this id in a workspace other than `workspace_id`.
            pub(super) async fn exists_elsewhere(
                &self,
                table: &'static str,
                workspace_id: &str,
                id: &str,
            ) -> Result<bool, ProjectionError> {
                let n: i64 = sqlx::query_scalar(&format!(
                    "SELECT COUNT(*) FROM {table} WHERE workspace_id <> $1 AND id = $2"
                ))
                .bind(workspace_id)
                .bind(id)
                .fetch_one(&self.pool)
                .await
                .map_err(db)?;
                Ok(n > 0)
            }
        }
    };
}

store_common!(SqliteProjections);
store_common!(PgProjections);

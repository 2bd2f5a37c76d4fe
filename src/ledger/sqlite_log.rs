//! Embedded event log: one SQLite file, WAL, `synchronous=FULL` (an acknowledged append
//! has been fsynced), an append-only table with unique `(aggregate, version)` and unique
//! event id. One writer connection serialises appends; readers use a separate pool.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use tokio::sync::Notify;

use super::envelope::AggregateKey;
use super::log::{Appended, EventLog, EventStream, LogError, RecordedEvent, SignedEvent};

const SCHEMA: &str = include_str!("sqlite_log.sql");

/// How often a subscriber looks for events appended by another process.
const POLL_INTERVAL: Duration = Duration::from_millis(200);

pub struct SqliteEventLog {
    path: String,
    writer: SqlitePool,
    reader: SqlitePool,
    appended: Arc<Notify>,
}

impl SqliteEventLog {
    /// Opens (creating when missing) the log file at `path`.
    pub async fn open(path: &Path) -> Result<Self, LogError> {
        let options = SqliteConnectOptions::from_str("sqlite://")
            .map_err(|e| LogError::Misconfigured(e.to_string()))?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await
            .map_err(|e| {
                LogError::Misconfigured(format!("cannot open event log {}: {e}", path.display()))
            })?;
        sqlx::raw_sql(SCHEMA)
            .execute(&writer)
            .await
            .map_err(backend)?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(|e| {
                LogError::Misconfigured(format!("cannot open event log {}: {e}", path.display()))
            })?;
        Ok(SqliteEventLog {
            path: path.display().to_string(),
            writer,
            reader,
            appended: Arc::new(Notify::new()),
        })
    }

    pub async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }
}

fn backend(e: sqlx::Error) -> LogError {
    match e {
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
            LogError::Unavailable(e.to_string())
        }
        other => LogError::Backend(other.to_string()),
    }
}

fn row_to_event(row: &sqlx::sqlite::SqliteRow) -> Result<RecordedEvent, LogError> {
    let position: i64 = row.try_get("position").map_err(backend)?;
    let version: i64 = row.try_get("aggregate_version").map_err(backend)?;
    let key = AggregateKey::new(
        row.try_get::<String, _>("workspace_id").map_err(backend)?,
        row.try_get::<String, _>("aggregate_type")
            .map_err(backend)?,
        row.try_get::<String, _>("aggregate_id").map_err(backend)?,
    )
    .map_err(|e| LogError::Backend(format!("stored event at position {position}: {e}")))?;
    let envelope: Vec<u8> = row.try_get("envelope").map_err(backend)?;
    Ok(RecordedEvent {
        position: u64::try_from(position).unwrap_or(0),
        key,
        version: u64::try_from(version).ok(),
        envelope: Bytes::from(envelope),
    })
}

const SELECT: &str =
    "SELECT position, workspace_id, aggregate_type, aggregate_id, aggregate_version, envelope FROM events";

fn to_i64(v: u64) -> Result<i64, LogError> {
    i64::try_from(v).map_err(|_| LogError::Invalid(format!("{v} is out of range")))
}

#[async_trait::async_trait]
impl EventLog for SqliteEventLog {
    async fn append(
        &self,
        event: &SignedEvent,
        expected_version: u64,
    ) -> Result<Appended, LogError> {
        if event.version != expected_version + 1 {
            return Err(LogError::Invalid(format!(
                "event version {} does not follow expected version {expected_version}",
                event.version
            )));
        }
        let mut tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(backend)?;
        let existing = sqlx::query("SELECT position, envelope FROM events WHERE event_id = ?")
            .bind(event.event_id.to_string())
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend)?;
        if let Some(row) = existing {
            let stored: Vec<u8> = row.try_get("envelope").map_err(backend)?;
            if stored != event.envelope.as_ref() {
                return Err(LogError::EventIdReused(event.event_id));
            }
            let position: i64 = row.try_get("position").map_err(backend)?;
            return Ok(Appended {
                position: u64::try_from(position).unwrap_or(0),
                duplicate: true,
            });
        }
        let actual: i64 = sqlx::query_scalar(
            "SELECT COALESCE(MAX(aggregate_version), 0) FROM events
             WHERE workspace_id = ? AND aggregate_type = ? AND aggregate_id = ?",
        )
        .bind(&event.key.workspace_id)
        .bind(&event.key.aggregate_type)
        .bind(&event.key.aggregate_id)
        .fetch_one(&mut *tx)
        .await
        .map_err(backend)?;
        let actual = u64::try_from(actual).unwrap_or(0);
        if actual != expected_version {
            return Err(LogError::Conflict {
                key: event.key.clone(),
                expected: expected_version,
                actual,
            });
        }
        let position: i64 = sqlx::query_scalar(
            "INSERT INTO events (event_id, workspace_id, aggregate_type, aggregate_id, aggregate_version, envelope)
             VALUES (?, ?, ?, ?, ?, ?) RETURNING position",
        )
        .bind(event.event_id.to_string())
        .bind(&event.key.workspace_id)
        .bind(&event.key.aggregate_type)
        .bind(&event.key.aggregate_id)
        .bind(to_i64(event.version)?)
        .bind(event.envelope.as_ref())
        .fetch_one(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        self.appended.notify_waiters();
        Ok(Appended {
            position: u64::try_from(position).unwrap_or(0),
            duplicate: false,
        })
    }

    async fn read_aggregate(&self, key: &AggregateKey) -> Result<Vec<RecordedEvent>, LogError> {
        let rows = sqlx::query(&format!(
            "{SELECT} WHERE workspace_id = ? AND aggregate_type = ? AND aggregate_id = ? ORDER BY aggregate_version"
        ))
        .bind(&key.workspace_id)
        .bind(&key.aggregate_type)
        .bind(&key.aggregate_id)
        .fetch_all(&self.reader)
        .await
        .map_err(backend)?;
        rows.iter().map(row_to_event).collect()
    }

    async fn last_of_aggregate(
        &self,
        key: &AggregateKey,
    ) -> Result<Option<RecordedEvent>, LogError> {
        let row = sqlx::query(&format!(
            "{SELECT} WHERE workspace_id = ? AND aggregate_type = ? AND aggregate_id = ?
             ORDER BY aggregate_version DESC LIMIT 1"
        ))
        .bind(&key.workspace_id)
        .bind(&key.aggregate_type)
        .bind(&key.aggregate_id)
        .fetch_optional(&self.reader)
        .await
        .map_err(backend)?;
        row.as_ref().map(row_to_event).transpose()
    }

    async fn read_from(&self, from: u64, limit: usize) -> Result<Vec<RecordedEvent>, LogError> {
        let rows = sqlx::query(&format!(
            "{SELECT} WHERE position >= ? ORDER BY position LIMIT ?"
        ))
        .bind(to_i64(from)?)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.reader)
        .await
        .map_err(backend)?;
        rows.iter().map(row_to_event).collect()
    }

    async fn subscribe(&self, from: u64) -> Result<EventStream, LogError> {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<RecordedEvent, LogError>>(512);
        let reader = SqliteEventLog {
            path: self.path.clone(),
            writer: self.writer.clone(),
            reader: self.reader.clone(),
            appended: self.appended.clone(),
        };
        tokio::spawn(async move {
            let mut next = from.max(1);
            loop {
                // Register interest before reading so an append in between is not missed.
                let notified = reader.appended.notified();
                match reader.read_from(next, 512).await {
                    Ok(batch) if batch.is_empty() => {
                        tokio::select! {
                            _ = notified => {}
                            _ = tokio::time::sleep(POLL_INTERVAL) => {}
                            _ = tx.closed() => return,
                        }
                    }
                    Ok(batch) => {
                        for ev in batch {
                            next = ev.position + 1;
                            if tx.send(Ok(ev)).await.is_err() {
                                return;
                            }
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                }
            }
        });
        Ok(tokio_stream_from(rx))
    }

    async fn head(&self) -> Result<u64, LogError> {
        let head: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(position), 0) FROM events")
            .fetch_one(&self.reader)
            .await
            .map_err(backend)?;
        Ok(u64::try_from(head).unwrap_or(0))
    }

    fn describe(&self) -> String {
        format!("embedded SQLite log {}", self.path)
    }
}

/// Turns a channel receiver into an `EventStream`.
pub(crate) fn tokio_stream_from(
    rx: tokio::sync::mpsc::Receiver<Result<RecordedEvent, LogError>>,
) -> EventStream {
    futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
    .boxed()
}

//! Embedded event log: one SQLite file, WAL, `synchronous=FULL` (an acknowledged append
//! has been fsynced), an append-only table with unique `(aggregate, version)` and unique
//! event id. One writer thread owns the writer connection (`rusqlite`, so a group runs
//! without a hand-off per statement) and commits the appends waiting for it together
//! (group commit: one fsync for all of them, each still checked on its own). Scans (the
//! subscription, `read_from`, whole aggregates) use a `sqlx` pool; the short reads on the
//! request path (what follows a cached fold, an aggregate's last event) run inline on
//! `rusqlite` connections: an indexed read takes microseconds, less than handing it to a
//! connection thread and back.
//!
//! An append is acknowledged only while the file at the log's path is still the one it
//! opened: a removed or replaced data directory leaves the open file writable, but what
//! is written there is lost, so such appends answer `Unavailable` and `head` (readiness)
//! fails until the service is restarted on a usable directory.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use sqlx::sqlite::SqliteSynchronous;
use sqlx::{Row, SqlitePool};
use tokio::sync::{broadcast, mpsc, oneshot};

use super::envelope::AggregateKey;
use super::log::{Appended, EventLog, EventStream, Flush, LogError, RecordedEvent, SignedEvent};
use super::sqlite_intake::{AppendRequest, Intake, WriterCommand, HOLD, MAX_GROUP};
use crate::sqlite::PointReaders;
use crate::wal::{Checkpointer, WalPolicy};

const SCHEMA: &str = include_str!("sqlite_log.sql");

/// How often a subscriber looks for events appended by another process.
const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// Most events an inline read returns; a longer tail is read through the pool instead, so
/// a request thread never blocks on a long read.
const INLINE_ROWS: usize = 64;
/// Idle inline readers kept open.
const IDLE_POINT_READERS: usize = 8;

pub struct SqliteEventLog {
    path: String,
    storage: Storage,
    reader: SqlitePool,
    point_readers: PointReaders,
    /// Each committed group's new events, in position order: subscribers in this process
    /// take them from here instead of reading back what was just written.
    committed: broadcast::Sender<Arc<Vec<RecordedEvent>>>,
    writer: mpsc::Sender<WriterCommand>,
}

impl SqliteEventLog {
    /// Opens (creating when missing) the log file at `path`.
    pub async fn open(path: &Path) -> Result<Self, LogError> {
        Self::open_with(path, WalPolicy::default()).await
    }

    /// `open`, with the WAL checkpointed and started over as `wal` says.
    pub async fn open_with(path: &Path, wal: WalPolicy) -> Result<Self, LogError> {
        let file = path.to_path_buf();
        let connection = tokio::task::spawn_blocking(move || open_writer(&file, &wal))
            .await
            .map_err(|e| LogError::Misconfigured(e.to_string()))?
            .map_err(|e| {
                LogError::Misconfigured(format!("cannot open event log {}: {e}", path.display()))
            })?;
        let options = crate::sqlite::file_options(path, SqliteSynchronous::Full).foreign_keys(true);
        let reader = crate::sqlite::open_pool(options).await.map_err(|e| {
            LogError::Misconfigured(format!("cannot open event log {}: {e}", path.display()))
        })?;
        let storage = Storage::opened(path)?;
        let (committed, _) = broadcast::channel(1024);
        let (writer, queue) = mpsc::channel(4 * MAX_GROUP);
        let announce = committed.clone();
        // The writer holds the checkpointer: when the writer ends, so does it.
        let checkpointer = Checkpointer::start(path, wal, "authledger-log-checkpoint")
            .map_err(|e| LogError::Misconfigured(format!("cannot start the checkpointer: {e}")))?;
        let written = storage.clone();
        std::thread::Builder::new()
            .name("authledger-log-writer".into())
            .spawn(move || run_writer(connection, queue, (&announce, &written), &checkpointer))
            .map_err(|e| LogError::Misconfigured(format!("cannot start the log writer: {e}")))?;
        Ok(SqliteEventLog {
            path: path.display().to_string(),
            storage,
            reader,
            point_readers: PointReaders::new(path, IDLE_POINT_READERS),
            committed,
            writer,
        })
    }

    pub async fn close(&self) {
        let (done, closed) = oneshot::channel();
        if self.writer.send(WriterCommand::Close(done)).await.is_ok() {
            let _ = closed.await;
        }
        self.reader.close().await;
    }
}

/// The log's file as opened (device and inode), to tell it from whatever is at its path now,
/// and whether the last appends failed for want of disk space.
#[derive(Debug, Clone)]
struct Storage {
    path: std::path::PathBuf,
    opened: (u64, u64),
    /// Set by the writer when a group failed with a full disk, cleared by the next commit.
    full: Arc<std::sync::atomic::AtomicBool>,
}

/// Free space the log's filesystem needs, after appends failed for want of it, before the
/// log says it is usable again: a WAL's length (`WalPolicy::default`, 4096 pages), so the
/// appends a ready instance is sent do not fail again at once.
const SPACE_TO_RESUME: u64 = 16 * 1024 * 1024;

/// Free space below which a failed write is taken for a full disk (a few pages' worth).
const LOW_SPACE: u64 = 1024 * 1024;

impl Storage {
    fn opened(path: &Path) -> Result<Self, LogError> {
        let opened = file_identity(path).map_err(|e| {
            LogError::Misconfigured(format!("cannot open event log {}: {e}", path.display()))
        })?;
        Ok(Storage {
            path: path.to_path_buf(),
            opened,
            full: Arc::default(),
        })
    }

    /// The writer's note of a group's answers: any commit means the disk took it; a
    /// refusal for a full disk (and no commit) means appends will keep failing until space
    /// is freed.
    fn note(&self, results: &[Result<Appended, LogError>]) {
        use std::sync::atomic::Ordering;
        if results.iter().any(Result::is_ok) {
            self.full.store(false, Ordering::Release);
        } else if results
            .iter()
            .any(|r| matches!(r, Err(LogError::DiskFull(_))))
        {
            self.full.store(true, Ordering::Release);
        }
    }

    /// SQLite reports some writes that fail for want of space as I/O errors (a WAL or its
    /// shared-memory index that cannot grow): a failed append on a filesystem with less
    /// than `LOW_SPACE` free is named a full disk, so the refusal says what to do.
    fn name_full_disk(
        &self,
        results: Vec<Result<Appended, LogError>>,
    ) -> Vec<Result<Appended, LogError>> {
        let io_failed = |r: &Result<Appended, LogError>| {
            matches!(r, Err(LogError::Unavailable(_) | LogError::Backend(_)))
        };
        if !results.iter().any(io_failed) || !self.free_below(LOW_SPACE) {
            return results;
        }
        results
            .into_iter()
            .map(|r| match r {
                Err(LogError::Unavailable(e) | LogError::Backend(e)) => Err(LogError::DiskFull(e)),
                other => other,
            })
            .collect()
    }

    fn dir(&self) -> &Path {
        self.path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
    }

    fn free_below(&self, bytes: u64) -> bool {
        free_bytes(self.dir()).is_ok_and(|free| free < bytes)
    }

    /// Whether an append may be tried: not on a filesystem with less than `LOW_SPACE` free
    /// (its own pages may still fit in a reused WAL, but the projections and the WAL index
    /// on the same disk could not follow, so it would be written and never shown), nor,
    /// once refused, until `SPACE_TO_RESUME` is free. Readiness and writes then agree.
    fn room_for_appends(&self) -> Result<(), LogError> {
        if self.free_below(LOW_SPACE) {
            self.full.store(true, std::sync::atomic::Ordering::Release);
        }
        self.has_room()
    }

    /// After appends failed for a full disk: not usable while the filesystem has less than
    /// `SPACE_TO_RESUME` free (it says so); usable again by itself once space is freed.
    fn has_room(&self) -> Result<(), LogError> {
        if !self.full.load(std::sync::atomic::Ordering::Acquire) {
            return Ok(());
        }
        let dir = self.dir();
        let free = free_bytes(dir);
        match free {
            Ok(free) if free >= SPACE_TO_RESUME => Ok(()),
            Ok(free) => Err(LogError::DiskFull(format!(
                "{free} bytes free on {}: appends are refused until {} MiB are free",
                dir.display(),
                SPACE_TO_RESUME / (1024 * 1024)
            ))),
            Err(e) => Err(LogError::DiskFull(format!(
                "its free space is unknown ({}: {e})",
                dir.display()
            ))),
        }
    }

    /// Whether the file at the path is still the one opened (what is written lands there).
    fn still_ours(&self) -> Result<(), LogError> {
        match file_identity(&self.path) {
            Ok(now) if now == self.opened => Ok(()),
            Ok(_) => Err(LogError::Unavailable(format!(
                "event log {} was replaced since it was opened: restart the service",
                self.path.display()
            ))),
            Err(e) => Err(LogError::Unavailable(format!(
                "event log {} is gone ({e}): restart the service on a usable data dir",
                self.path.display()
            ))),
        }
    }

    /// `still_ours`, and the file's permissions still allow writing. Never by opening the
    /// file: closing any descriptor of it would drop this process's SQLite locks.
    fn usable(&self) -> Result<(), LogError> {
        self.still_ours()?;
        match std::fs::metadata(&self.path) {
            Ok(m) if !m.permissions().readonly() => self.has_room(),
            Ok(_) => Err(LogError::Unavailable(format!(
                "event log {} is read-only",
                self.path.display()
            ))),
            Err(e) => Err(LogError::Unavailable(format!(
                "event log {}: {e}",
                self.path.display()
            ))),
        }
    }
}

#[cfg(unix)]
fn file_identity(path: &Path) -> std::io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).map(|m| (m.dev(), m.ino()))
}

/// Bytes an unprivileged writer may still use on the filesystem holding `dir`.
#[cfg(unix)]
fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    let stat = nix::sys::statvfs::statvfs(dir).map_err(std::io::Error::from)?;
    #[allow(clippy::useless_conversion)] // the field types differ between platforms
    let free = u64::from(stat.blocks_available()).saturating_mul(u64::from(stat.fragment_size()));
    Ok(free)
}

#[cfg(not(unix))]
fn free_bytes(_dir: &Path) -> std::io::Result<u64> {
    Ok(u64::MAX)
}

#[cfg(not(unix))]
fn file_identity(path: &Path) -> std::io::Result<(u64, u64)> {
    std::fs::metadata(path).map(|_| (0, 0))
}

fn backend(e: sqlx::Error) -> LogError {
    match e {
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
            LogError::Unavailable(e.to_string())
        }
        other => LogError::Backend(other.to_string()),
    }
}

/// A write that may succeed if tried again (the file is busy or the disk failed for a
/// moment) is `Unavailable`: the ledger retries it with the same bytes.
fn write_error(e: rusqlite::Error) -> LogError {
    use rusqlite::ErrorCode::*;
    match e.sqlite_error_code() {
        Some(DiskFull) => LogError::DiskFull(e.to_string()),
        Some(DatabaseBusy | DatabaseLocked | SystemIoFailure | CannotOpen) => {
            LogError::Unavailable(e.to_string())
        }
        _ => LogError::Backend(e.to_string()),
    }
}

/// The writer's own connection: WAL, `synchronous=FULL`, the schema in place.
fn open_writer(path: &Path, wal: &WalPolicy) -> Result<rusqlite::Connection, String> {
    let open = || -> Result<(rusqlite::Connection, String), rusqlite::Error> {
        let connection = rusqlite::Connection::open(path)?;
        connection.busy_timeout(Duration::from_secs(10))?;
        let mode: String = connection.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        connection.pragma_update(None, "synchronous", "FULL")?;
        connection.pragma_update(None, "foreign_keys", "ON")?;
        // Checkpoints run on their own thread (`Checkpointer`): inside a commit they
        // would hold every append waiting behind it for milliseconds.
        crate::wal::writer_pragmas(&connection, wal)?;
        connection.execute_batch(SCHEMA)?;
        Ok((connection, mode))
    };
    let (connection, mode) = open().map_err(|e| e.to_string())?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(format!("journal mode is {mode}, not WAL"));
    }
    Ok(connection)
}

/// At most `limit` events of one aggregate after `after_version`, oldest or newest first.
fn tail_inline(
    connection: &rusqlite::Connection,
    key: &AggregateKey,
    after_version: i64,
    newest_first: bool,
    limit: usize,
) -> rusqlite::Result<Vec<(i64, i64, Vec<u8>)>> {
    let sql = if newest_first {
        "SELECT position, aggregate_version, envelope FROM events
          WHERE workspace_id = ?1 AND aggregate_type = ?2 AND aggregate_id = ?3
            AND aggregate_version > ?4 ORDER BY aggregate_version DESC LIMIT ?5"
    } else {
        "SELECT position, aggregate_version, envelope FROM events
          WHERE workspace_id = ?1 AND aggregate_type = ?2 AND aggregate_id = ?3
            AND aggregate_version > ?4 ORDER BY aggregate_version LIMIT ?5"
    };
    let mut statement = connection.prepare_cached(sql)?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = statement.query_map(
        rusqlite::params![
            key.workspace_id,
            key.aggregate_type,
            key.aggregate_id,
            after_version,
            limit
        ],
        |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
    )?;
    rows.collect()
}

fn inline_event(
    key: &AggregateKey,
    (position, version, envelope): (i64, i64, Vec<u8>),
) -> RecordedEvent {
    RecordedEvent {
        position: u64::try_from(position).unwrap_or(0),
        key: key.clone(),
        version: u64::try_from(version).ok(),
        envelope: Bytes::from(envelope),
        sealed: Default::default(),
    }
}

/// Commits a group, or refuses it whole without trying when the disk has no room for it
/// (`Storage::room_for_appends`); notes a refusal for space either way.
fn append_or_refuse(
    connection: &mut rusqlite::Connection,
    group: &[AppendRequest],
    storage: &Storage,
) -> Vec<Result<Appended, LogError>> {
    if let Err(e) = storage.room_for_appends() {
        let message = e.to_string();
        return group
            .iter()
            .map(|_| Err(LogError::DiskFull(message.clone())))
            .collect();
    }
    let results = match append_group(connection, group) {
        Ok(results) => results,
        // Something failed beyond one event's own checks (I/O, the file): nothing of
        // the group was committed. Run each alone so each gets its own answer.
        Err(_) => group
            .iter()
            .map(|request| {
                append_group(connection, std::slice::from_ref(request)).and_then(|mut one| {
                    one.pop()
                        .unwrap_or_else(|| Err(LogError::Backend("no result".into())))
                })
            })
            .collect(),
    };
    let results = storage.name_full_disk(results);
    storage.note(&results);
    results
}

/// The writer thread: commits each group the intake hands it (every append waiting, up to
/// `MAX_GROUP`; an unwaited one held for the next) in one transaction, all on this thread
/// (no hand-off per statement). Ends on `Close` or when the log is dropped, after what was
/// queued before.
fn run_writer(
    mut connection: rusqlite::Connection,
    queue: mpsc::Receiver<WriterCommand>,
    (committed, storage): (&broadcast::Sender<Arc<Vec<RecordedEvent>>>, &Storage),
    checkpointer: &Checkpointer,
) {
    let mut intake = Intake::new(queue, HOLD);
    loop {
        let next = intake.next_group();
        if !next.appends.is_empty() {
            commit_and_answer(&mut connection, next.appends, (committed, storage));
            checkpointer.committed();
            // After the answers, so no caller waits on it.
            checkpointer.restart_when_asked(&connection, "event log");
        }
        if let Some(done) = next.close {
            drop(connection);
            let _ = done.send(());
            return;
        }
        if next.ended {
            return;
        }
    }
}

/// Commits one group, announces its new events to this process's subscribers, then
/// answers each append.
fn commit_and_answer(
    connection: &mut rusqlite::Connection,
    group: Vec<AppendRequest>,
    (committed, storage): (&broadcast::Sender<Arc<Vec<RecordedEvent>>>, &Storage),
) {
    let results = append_or_refuse(connection, &group, storage);
    // Committed to a file that is no longer the log's (its directory was removed or
    // replaced): lost at the next start, so not acknowledged, not announced.
    let results = match storage.still_ours() {
        Ok(()) => results,
        Err(e) => {
            tracing::error!(error = %e, "event log storage lost; refusing appends");
            let message = e.to_string();
            results
                .into_iter()
                .map(|r| r.and(Err(LogError::Unavailable(message.clone()))))
                .collect()
        }
    };
    if committed.receiver_count() > 0 {
        let new: Vec<RecordedEvent> = group
            .iter()
            .zip(&results)
            .filter_map(|(request, result)| match result {
                Ok(a) if !a.duplicate => Some(RecordedEvent {
                    position: a.position,
                    key: request.event.key.clone(),
                    version: Some(request.event.version),
                    envelope: request.event.envelope.clone(),
                    sealed: request.event.sealed.clone(),
                }),
                _ => None,
            })
            .collect();
        if !new.is_empty() {
            let _ = committed.send(Arc::new(new));
        }
    }
    for (request, result) in group.into_iter().zip(results) {
        // The caller may have gone; its event is in the log (or not) all the same.
        let _ = request.reply.send(result);
    }
}

/// One transaction for the group. Each event's own refusals (conflict, reused id) are its
/// answer and do not stop the others; any other error fails the whole group.
fn append_group(
    connection: &mut rusqlite::Connection,
    group: &[AppendRequest],
) -> Result<Vec<Result<Appended, LogError>>, LogError> {
    let tx = connection
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(write_error)?;
    let mut results = Vec::with_capacity(group.len());
    for request in group {
        results.push(append_in(&tx, &request.event, request.expected_version)?);
    }
    tx.commit().map_err(write_error)?;
    Ok(results)
}

/// Checks and inserts one event inside the group's transaction (which sees the events
/// inserted before it). Outer error: the transaction failed; inner: this event's answer.
///
/// A new aggregate's first event (most appends: a token, a tool call, an audit query) is
/// inserted straight away: the unique indexes refuse it when its id or its version 1 is
/// taken, and only then is the log asked why. Any other event is checked first.
fn append_in(
    tx: &rusqlite::Transaction<'_>,
    event: &SignedEvent,
    expected_version: u64,
) -> Result<Result<Appended, LogError>, LogError> {
    let version = to_i64(event.version)?;
    if expected_version == 0 {
        match insert(tx, event, version) {
            Ok(appended) => return Ok(Ok(appended)),
            Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation) => {}
            Err(e) => return Err(write_error(e)),
        }
    }
    if let Some(refused) = check(tx, event, expected_version)? {
        return Ok(refused);
    }
    insert(tx, event, version).map(Ok).map_err(write_error)
}

/// Why `event` cannot follow `expected_version`, if it cannot: the same event already
/// appended (its answer, a duplicate), its id reused by another event, or another version.
fn check(
    tx: &rusqlite::Transaction<'_>,
    event: &SignedEvent,
    expected_version: u64,
) -> Result<Option<Result<Appended, LogError>>, LogError> {
    let event_id = event.event_id.to_string();
    let (same_id, same_envelope, actual): (Option<i64>, Option<Vec<u8>>, i64) = tx
        .prepare_cached(
            "SELECT (SELECT position FROM events WHERE event_id = ?1),
                    (SELECT envelope FROM events WHERE event_id = ?1),
                    (SELECT COALESCE(MAX(aggregate_version), 0) FROM events
                      WHERE workspace_id = ?2 AND aggregate_type = ?3 AND aggregate_id = ?4)",
        )
        .and_then(|mut check| {
            check.query_row(
                rusqlite::params![
                    event_id,
                    event.key.workspace_id,
                    event.key.aggregate_type,
                    event.key.aggregate_id
                ],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
        })
        .map_err(write_error)?;
    if let Some(position) = same_id {
        if same_envelope.as_deref() != Some(event.envelope.as_ref()) {
            return Ok(Some(Err(LogError::EventIdReused(event.event_id))));
        }
        return Ok(Some(Ok(Appended {
            position: u64::try_from(position).unwrap_or(0),
            duplicate: true,
        })));
    }
    let actual = u64::try_from(actual).unwrap_or(0);
    if actual != expected_version {
        return Ok(Some(Err(LogError::Conflict {
            key: event.key.clone(),
            expected: expected_version,
            actual,
        })));
    }
    Ok(None)
}

fn insert(
    tx: &rusqlite::Transaction<'_>,
    event: &SignedEvent,
    version: i64,
) -> rusqlite::Result<Appended> {
    // The position is the row id just inserted: `RETURNING` would run as a trigger, which
    // makes SQLite journal every page the insert changes in case the statement fails.
    tx.prepare_cached(
        "INSERT INTO events (event_id, workspace_id, aggregate_type, aggregate_id, aggregate_version, envelope)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .and_then(|mut insert| {
        insert.execute(rusqlite::params![
            event.event_id.to_string(),
            event.key.workspace_id,
            event.key.aggregate_type,
            event.key.aggregate_id,
            version,
            event.envelope.as_ref()
        ])
    })?;
    let position = tx.last_insert_rowid();
    Ok(Appended {
        position: u64::try_from(position).unwrap_or(0),
        duplicate: false,
    })
}

fn row_to_event(row: &sqlx::sqlite::SqliteRow) -> Result<RecordedEvent, LogError> {
    let position: i64 = row.try_get("position").map_err(backend)?;
    let version: i64 = row.try_get("aggregate_version").map_err(backend)?;
    // Unchecked: a damaged index column reaches the verifier, which compares it with the
    // signed body and names the position, instead of stopping every reader here.
    let key = AggregateKey::from_index(
        row.try_get::<String, _>("workspace_id").map_err(backend)?,
        row.try_get::<String, _>("aggregate_type")
            .map_err(backend)?,
        row.try_get::<String, _>("aggregate_id").map_err(backend)?,
    );
    let envelope: Vec<u8> = row.try_get("envelope").map_err(backend)?;
    Ok(RecordedEvent {
        position: u64::try_from(position).unwrap_or(0),
        key,
        version: u64::try_from(version).ok(),
        envelope: Bytes::from(envelope),
        sealed: Default::default(),
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
        self.append_with(event, expected_version, Flush::Now).await
    }

    /// An append with [`Flush::WithNext`] is held by the writer (`sqlite_intake`) until the
    /// next append that must be durable now, or [`HOLD`], and shares its flush.
    async fn append_with(
        &self,
        event: &SignedEvent,
        expected_version: u64,
        flush: Flush,
    ) -> Result<Appended, LogError> {
        if event.version != expected_version + 1 {
            return Err(LogError::Invalid(format!(
                "event version {} does not follow expected version {expected_version}",
                event.version
            )));
        }
        let (reply, answer) = oneshot::channel();
        let request = AppendRequest {
            event: event.clone(),
            expected_version,
            flush,
            reply,
        };
        self.writer
            .send(WriterCommand::Append(request))
            .await
            .map_err(|_| LogError::Unavailable("the event log is closed".into()))?;
        answer
            .await
            .map_err(|_| LogError::Unavailable("the event log writer stopped".into()))?
    }

    /// A short aggregate (a new one is empty: every create looks) on the caller's thread;
    /// a long one through the read pool, as `read_aggregate_after` reads.
    async fn read_aggregate(&self, key: &AggregateKey) -> Result<Vec<RecordedEvent>, LogError> {
        self.read_aggregate_after(key, 0, 0).await
    }

    async fn read_aggregate_after(
        &self,
        key: &AggregateKey,
        after_version: u64,
        _after_position: u64,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        let after = to_i64(after_version)?;
        let rows = self
            .point_readers
            .with(|c| tail_inline(c, key, after, false, INLINE_ROWS + 1))
            .map_err(write_error)?;
        if rows.len() <= INLINE_ROWS {
            return Ok(rows.into_iter().map(|r| inline_event(key, r)).collect());
        }
        let rows = sqlx::query(&format!(
            "{SELECT} WHERE workspace_id = ? AND aggregate_type = ? AND aggregate_id = ?
             AND aggregate_version > ? ORDER BY aggregate_version"
        ))
        .bind(&key.workspace_id)
        .bind(&key.aggregate_type)
        .bind(&key.aggregate_id)
        .bind(after)
        .fetch_all(&self.reader)
        .await
        .map_err(backend)?;
        rows.iter().map(row_to_event).collect()
    }

    async fn last_of_aggregate(
        &self,
        key: &AggregateKey,
    ) -> Result<Option<RecordedEvent>, LogError> {
        let rows = self
            .point_readers
            .with(|c| tail_inline(c, key, 0, true, 1))
            .map_err(write_error)?;
        Ok(rows.into_iter().next().map(|r| inline_event(key, r)))
    }

    async fn read_from(&self, from: u64, limit: usize) -> Result<Vec<RecordedEvent>, LogError> {
        read_from(&self.reader, from, limit).await
    }

    async fn subscribe(&self, from: u64) -> Result<EventStream, LogError> {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<RecordedEvent, LogError>>(512);
        // The task holds the read pool, not the log: dropping the log ends its writer.
        let reader = self.reader.clone();
        // Subscribed before the first read: nothing committed in between is missed (what
        // both deliver is passed on once, by position).
        let live = self.committed.subscribe();
        tokio::spawn(follow(reader, live, from.max(1), tx));
        Ok(tokio_stream_from(rx))
    }

    async fn head(&self) -> Result<u64, LogError> {
        // Readiness asks the head: a log whose file is gone or read-only is not ready.
        self.storage.usable()?;
        let head: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(position), 0) FROM events")
            .fetch_one(&self.reader)
            .await
            .map_err(backend)?;
        Ok(u64::try_from(head).unwrap_or(0))
    }

    fn hands_on_sealed(&self) -> bool {
        true
    }

    fn describe(&self) -> String {
        format!("embedded SQLite log {}", self.path)
    }
}

/// A subscription: reads the log up to its end, then passes on what this process's writer
/// commits; reads again on a gap (another process appended), when it fell behind the
/// broadcast, and every `POLL_INTERVAL` when nothing arrives.
async fn follow(
    reader: SqlitePool,
    mut live: broadcast::Receiver<Arc<Vec<RecordedEvent>>>,
    mut next: u64,
    tx: mpsc::Sender<Result<RecordedEvent, LogError>>,
) {
    let mut read = true;
    loop {
        while read {
            match read_from(&reader, next, 512).await {
                Ok(batch) => {
                    read = batch.len() == 512;
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
        let events = tokio::select! {
            got = live.recv() => got,
            _ = tokio::time::sleep(POLL_INTERVAL) => {
                read = true;
                continue;
            }
            _ = tx.closed() => return,
        };
        match events {
            Ok(events) => {
                let fresh = events.iter().position(|e| e.position >= next);
                match fresh.map(|i| &events[i..]) {
                    None => {}
                    Some(fresh) if fresh[0].position == next => {
                        for ev in fresh {
                            next = ev.position + 1;
                            if tx.send(Ok(ev.clone())).await.is_err() {
                                return;
                            }
                        }
                    }
                    // Someone else's events came in between: read them from the log.
                    Some(_) => read = true,
                }
            }
            Err(broadcast::error::RecvError::Lagged(_)) => read = true,
            // The writer is gone: nothing more will be committed here.
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

async fn read_from(
    reader: &SqlitePool,
    from: u64,
    limit: usize,
) -> Result<Vec<RecordedEvent>, LogError> {
    let rows = sqlx::query(&format!(
        "{SELECT} WHERE position >= ? ORDER BY position LIMIT ?"
    ))
    .bind(to_i64(from)?)
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(reader)
    .await
    .map_err(backend)?;
    rows.iter().map(row_to_event).collect()
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

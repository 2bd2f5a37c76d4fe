//! The embedded projections' batch writer: a thread of its own owns a `rusqlite` connection
//! and runs each live batch whole (`BEGIN IMMEDIATE`, its statements, the offset moved,
//! `COMMIT`), so a batch costs one hand-off to the thread and back. Through `sqlx` every
//! statement was a round trip to the connection's worker thread: two thread wake-ups each,
//! and at one request at a time those wake-ups were most of a request's CPU.
//!
//! Its WAL is kept short as the log's is: a [`Checkpointer`] beside it, woken by its commits,
//! and a checkpoint of its own between two batches when that one asks (`crate::wal`).

use std::path::Path;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::exec::SyncSqlite;
use super::{ProjectionError, SqliteProjections};
use crate::projector::cache::Family;
use crate::projector::op::Op;
use crate::wal::{Checkpointer, WalPolicy};

/// What a batch did.
pub(super) enum Applied {
    /// Committed; the cached families it changed.
    Done(Vec<Family>),
    /// The offset was not where the batch starts (another process moved it): nothing written.
    Moved,
}

struct Batch {
    planned: Vec<(u64, Vec<Op>)>,
    from: u64,
    last: u64,
    reply: oneshot::Sender<Result<Applied, ProjectionError>>,
}

enum Command {
    Apply(Batch),
    Close(oneshot::Sender<()>),
}

/// The handle on the writer thread; dropping it ends the thread.
pub(super) struct BatchWriter {
    queue: mpsc::Sender<Command>,
}

impl BatchWriter {
    pub(super) fn start(path: &Path, wal: WalPolicy) -> Result<BatchWriter, ProjectionError> {
        let connection = open(path, &wal).map_err(|e| {
            ProjectionError::Misconfigured(format!(
                "cannot open projections {} for writing: {e}",
                path.display()
            ))
        })?;
        let checkpointer = Checkpointer::start(path, wal, "authledger-projections-checkpoint")
            .map_err(|e| {
                ProjectionError::Misconfigured(format!(
                    "cannot start the projections' checkpointer: {e}"
                ))
            })?;
        let (queue, commands) = mpsc::channel(16);
        std::thread::Builder::new()
            .name("authledger-projector".into())
            .spawn(move || run(connection, commands, &checkpointer))
            .map_err(|e| {
                ProjectionError::Misconfigured(format!("cannot start the projection writer: {e}"))
            })?;
        Ok(BatchWriter { queue })
    }

    /// Applies `planned` (the events after `from`, up to `last`) in one transaction.
    pub(super) async fn apply(
        &self,
        planned: Vec<(u64, Vec<Op>)>,
        from: u64,
        last: u64,
    ) -> Result<Applied, ProjectionError> {
        let (reply, answer) = oneshot::channel();
        let batch = Batch {
            planned,
            from,
            last,
            reply,
        };
        let stopped = || ProjectionError::Database("the projection writer has stopped".into());
        self.queue
            .send(Command::Apply(batch))
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Ends the thread and closes its connection.
    pub(super) async fn close(&self) {
        let (done, closed) = oneshot::channel();
        if self.queue.send(Command::Close(done)).await.is_ok() {
            let _ = closed.await;
        }
    }
}

fn open(path: &Path, wal: &WalPolicy) -> rusqlite::Result<rusqlite::Connection> {
    let connection = rusqlite::Connection::open(path)?;
    connection.busy_timeout(Duration::from_secs(10))?;
    // The file is in WAL mode already (set by the pool, and kept by the file).
    connection.pragma_update(None, "synchronous", "NORMAL")?;
    crate::wal::writer_pragmas(&connection, wal)?;
    connection.pragma_update(None, "temp_store", "MEMORY")?;
    connection.pragma_update(None, "foreign_keys", "ON")?;
    Ok(connection)
}

fn run(
    mut connection: rusqlite::Connection,
    mut commands: mpsc::Receiver<Command>,
    checkpointer: &Checkpointer,
) {
    while let Some(command) = commands.blocking_recv() {
        match command {
            Command::Apply(batch) => {
                let result = apply(&mut connection, batch.planned, batch.from, batch.last);
                if matches!(result, Ok(Applied::Done(_))) {
                    checkpointer.committed();
                }
                // The caller may have gone; the batch is committed (or not) all the same.
                let _ = batch.reply.send(result);
                checkpointer.restart_when_asked(&connection, "projections");
            }
            Command::Close(done) => {
                drop(connection);
                let _ = done.send(());
                return;
            }
        }
    }
}

fn apply(
    connection: &mut rusqlite::Connection,
    planned: Vec<(u64, Vec<Op>)>,
    from: u64,
    last: u64,
) -> Result<Applied, ProjectionError> {
    let database = |e: rusqlite::Error| ProjectionError::Database(e.to_string());
    connection
        .execute_batch("BEGIN IMMEDIATE")
        .map_err(database)?;
    // Every statement runs at once on this thread: the future never waits.
    let written = futures::executor::block_on(SqliteProjections::apply_planned(
        &mut SyncSqlite(&mut *connection),
        planned,
        from,
        last,
    ));
    match written {
        Ok(Some(changed)) => match connection.execute_batch("COMMIT") {
            Ok(()) => Ok(Applied::Done(changed)),
            Err(e) => {
                rollback(connection);
                Err(database(e))
            }
        },
        Ok(None) => {
            rollback(connection);
            Ok(Applied::Moved)
        }
        // Another process may have applied these events first (their rows collide with
        // this batch's before the offset is reached): the offset, read under this
        // transaction's write lock, tells.
        Err(e) if offset_is_not(connection, from) => {
            tracing::debug!(error = %e, "the batch was applied by another process first");
            rollback(connection);
            Ok(Applied::Moved)
        }
        Err(e) => {
            rollback(connection);
            Err(e)
        }
    }
}

/// Whether the stored offset is somewhere other than `from` (false when it cannot be read:
/// the batch's own error is then the one reported).
fn offset_is_not(connection: &rusqlite::Connection, from: u64) -> bool {
    connection
        .prepare_cached("SELECT position FROM projection_offsets WHERE name = ?1")
        .and_then(|mut read| read.query_row([super::PROJECTION], |row| row.get::<_, i64>(0)))
        .is_ok_and(|at| u64::try_from(at).ok() != Some(from))
}

/// Ends the open transaction, if SQLite has not already (it rolls back by itself on some
/// failures, a full disk among them).
fn rollback(connection: &rusqlite::Connection) {
    if !connection.is_autocommit() {
        let _ = connection.execute_batch("ROLLBACK");
    }
}

//! WAL upkeep for the SQLite files written under load: the embedded event log and the
//! SQLite projections.
//!
//! Checkpoints run beside the writer (PASSIVE, on a connection of their own), never inside
//! a commit, where they would hold every append behind them for milliseconds. But SQLite
//! starts the WAL over (writes again from its first frame) only when a write transaction
//! begins with every frame already copied into the database file, and a checkpointer on
//! another connection practically never leaves a busy writer that moment: the WAL then
//! grows without bound (measured: 0.9 GB of projections WAL after a minute of load). So
//! when a pass finds the WAL longer than [`WalPolicy::restart_after_frames`], the
//! checkpointer asks the writer ([`WalRestart`]) to run one checkpoint itself between two
//! transactions: it copies only the frames written since the pass, and the writer's next
//! transaction starts the WAL over. A reader still inside an old snapshot can make that
//! restart wait for the next request; nothing waits on it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// When a WAL is checkpointed and when it is started over.
#[derive(Clone, Copy, Debug)]
pub struct WalPolicy {
    /// How often the checkpointer copies the WAL into the database file.
    pub checkpoint_every: Duration,
    /// WAL length (frames of one page each) past which the writer is asked to checkpoint
    /// once itself, so the WAL starts over.
    pub restart_after_frames: i64,
}

impl Default for WalPolicy {
    fn default() -> Self {
        WalPolicy {
            // Often, so each pass copies little: a pass ends by flushing the database
            // file, and the filesystem holds the next commit's flush of the WAL behind it
            // for as long as that takes. Every 200 ms, the one-client p99 of a token was
            // 11-15 ms (p50 0.5 ms); every 20 ms, 2.2-2.3 ms (BENCHMARKS.md).
            checkpoint_every: Duration::from_millis(20),
            // 4096 pages: a 16 MiB WAL.
            restart_after_frames: 4096,
        }
    }
}

impl WalPolicy {
    /// `PRAGMA journal_size_limit`: after a restart SQLite cuts a WAL that grew past this
    /// (a long-lived reader can hold the restart back) down to it.
    pub fn journal_size_limit(&self) -> i64 {
        self.restart_after_frames
            .saturating_mul(4096)
            .saturating_mul(2)
    }
}

/// The checkpointer's request to the writer: "checkpoint once yourself".
#[derive(Clone, Debug, Default)]
pub struct WalRestart(Arc<AtomicBool>);

impl WalRestart {
    /// Called by the checkpointer with what its PASSIVE pass reported: the WAL's length
    /// in frames (`-1` when the file is not in WAL mode).
    pub fn after_pass(&self, policy: &WalPolicy, wal_frames: i64) {
        if wal_frames >= policy.restart_after_frames {
            self.0.store(true, Ordering::Release);
        }
    }

    /// Called by the writer between transactions: whether to checkpoint now (once per
    /// request).
    pub fn take(&self) -> bool {
        self.0.swap(false, Ordering::AcqRel)
    }
}

/// The writer's handle on a checkpointer thread beside its connection (see
/// [`Checkpointer::start`]). Dropping it stops the thread (after its current pass).
pub struct Checkpointer {
    committed: std::sync::mpsc::SyncSender<()>,
    restart: WalRestart,
}

impl Checkpointer {
    /// Starts a thread named `name` that copies the WAL of the file at `path` into the
    /// database file (PASSIVE: it never waits for, nor blocks, the writer or the readers)
    /// at most every `policy.checkpoint_every` while the writer commits, and not at all
    /// while it is idle; when the WAL is long it asks the writer to start it over. The
    /// writer's connection should have `wal_autocheckpoint` off ([`writer_pragmas`]).
    pub fn start(
        path: &std::path::Path,
        policy: WalPolicy,
        name: &str,
    ) -> std::io::Result<Checkpointer> {
        let (committed, commits) = std::sync::mpsc::sync_channel(1);
        let restart = WalRestart::default();
        let asked = restart.clone();
        let file = path.to_path_buf();
        let what = name.to_string();
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || run_checkpointer(&file, &policy, &asked, &commits, &what))?;
        Ok(Checkpointer { committed, restart })
    }

    /// Called by the writer after each commit: wakes the checkpointer if it is idle.
    pub fn committed(&self) {
        // Full: a wake-up is already pending.
        let _ = self.committed.try_send(());
    }

    /// Called by the writer between two transactions: checkpoints once itself when the
    /// checkpointer asked (it copies only what came since the last pass; the next
    /// transaction then starts the WAL over).
    pub fn restart_when_asked(&self, connection: &rusqlite::Connection, what: &str) {
        if self.restart.take() {
            if let Err(e) = connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                tracing::warn!(error = %e, what, "checkpoint by the writer failed");
            }
        }
    }
}

/// A writer connection's WAL settings: no checkpoint inside its commits (the
/// [`Checkpointer`] runs them beside it), and a WAL cut back to twice the restart length.
pub fn writer_pragmas(
    connection: &rusqlite::Connection,
    policy: &WalPolicy,
) -> rusqlite::Result<()> {
    connection.pragma_update(None, "wal_autocheckpoint", 0)?;
    connection.pragma_update(None, "journal_size_limit", policy.journal_size_limit())
}

/// Waits for a commit, passes, rests `checkpoint_every`, and again; a pass that could not
/// copy every frame (a reader still needed them) is tried again without waiting for a
/// commit. Ends when the writer's handle is dropped.
fn run_checkpointer(
    path: &std::path::Path,
    policy: &WalPolicy,
    restart: &WalRestart,
    commits: &std::sync::mpsc::Receiver<()>,
    what: &str,
) {
    let connection = match rusqlite::Connection::open(path)
        .and_then(|c| c.busy_timeout(Duration::from_secs(1)).map(|()| c))
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, what, "the checkpointer cannot open the file; the WAL will grow");
            return;
        }
    };
    let mut behind = false;
    loop {
        // A wake-up still queued is taken before the writer's end is seen.
        let writer_gone = if behind {
            matches!(
                commits.try_recv(),
                Err(std::sync::mpsc::TryRecvError::Disconnected)
            )
        } else {
            commits.recv().is_err()
        };
        if writer_gone {
            return;
        }
        match connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
            Ok((row.get::<_, i64>(1)?, row.get::<_, i64>(2)?))
        }) {
            Ok((frames, copied)) => {
                restart.after_pass(policy, frames);
                behind = copied < frames;
            }
            Err(e) => {
                tracing::warn!(error = %e, what, "checkpoint failed; retrying");
                behind = true;
            }
        }
        std::thread::sleep(policy.checkpoint_every);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_wal_asks_the_writer_once() {
        let policy = WalPolicy {
            checkpoint_every: Duration::from_millis(10),
            restart_after_frames: 100,
        };
        let restart = WalRestart::default();
        restart.after_pass(&policy, 99);
        assert!(!restart.take());
        restart.after_pass(&policy, -1);
        assert!(!restart.take());
        restart.after_pass(&policy, 100);
        assert!(restart.take());
        assert!(!restart.take(), "one checkpoint per request");
        assert_eq!(policy.journal_size_limit(), 100 * 4096 * 2);
    }
}

//! The embedded data key store's writer: new data keys committed in groups on a thread of
//! its own, one transaction and one flush for every key waiting (as the event log's writer
//! commits appends). With one `synchronous=FULL` commit per key, concurrent connection
//! creates queued on SQLite's write lock and its busy handler's sleeps: tens of
//! milliseconds each under load. Its WAL is checkpointed beside it (`crate::wal`), not
//! inside a group's commit.

use std::path::Path;
use std::time::Duration;

use tokio::sync::mpsc;

use super::key_queue::{self, KeyQueue, Put};
use super::CryptoError;
use crate::wal::{Checkpointer, WalPolicy};

/// Starts the writer on the store's file (its schema already in place); `insert` is the
/// store's statement (`$1`…`$6`: id, owner, master key id, nonce, wrapped, created at),
/// which inserts nothing for an id already taken, live or shredded.
pub(super) fn start(
    path: &Path,
    insert: &'static str,
    wal: WalPolicy,
) -> Result<KeyQueue, CryptoError> {
    let connection = open(path, &wal).map_err(|e| {
        CryptoError::Store(format!("cannot open data keys {}: {e}", path.display()))
    })?;
    let (queue, requests) = KeyQueue::new();
    let checkpointer = Checkpointer::start(path, wal, "authledger-keys-checkpoint")
        .map_err(|e| CryptoError::Store(format!("cannot start the data key checkpointer: {e}")))?;
    std::thread::Builder::new()
        .name("authledger-keys".into())
        .spawn(move || run(connection, requests, insert, &checkpointer))
        .map_err(|e| CryptoError::Store(format!("cannot start the data key writer: {e}")))?;
    Ok(queue)
}

fn open(path: &Path, wal: &WalPolicy) -> rusqlite::Result<rusqlite::Connection> {
    let connection = rusqlite::Connection::open(path)?;
    connection.busy_timeout(Duration::from_secs(10))?;
    // The file is in WAL mode already (set by the store's pool, and kept by the file).
    connection.pragma_update(None, "synchronous", "FULL")?;
    connection.pragma_update(None, "secure_delete", "ON")?;
    // Checkpoints beside the writer, not inside a group's commit (see `crate::wal`).
    crate::wal::writer_pragmas(&connection, wal)?;
    Ok(connection)
}

fn run(
    mut connection: rusqlite::Connection,
    mut requests: mpsc::Receiver<Put>,
    insert: &'static str,
    checkpointer: &Checkpointer,
) {
    while let Some(first) = requests.blocking_recv() {
        let group = key_queue::group(first, &mut requests);
        let results = match insert_group(&mut connection, &group, insert) {
            Ok(inserted) => inserted.into_iter().map(Ok).collect(),
            // Nothing of the group was committed: each alone, for its own answer.
            Err(_) => group
                .iter()
                .map(|put| {
                    insert_group(&mut connection, std::slice::from_ref(put), insert)
                        .map(|inserted| inserted.first().copied().unwrap_or(false))
                        .map_err(|e| CryptoError::Store(e.to_string()))
                })
                .collect::<Vec<_>>(),
        };
        key_queue::answer(group, results);
        checkpointer.committed();
        checkpointer.restart_when_asked(&connection, "data keys");
    }
}

/// One transaction for the group: whether each key was inserted.
fn insert_group(
    connection: &mut rusqlite::Connection,
    group: &[Put],
    insert: &str,
) -> rusqlite::Result<Vec<bool>> {
    let tx = connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut inserted = Vec::with_capacity(group.len());
    {
        let mut statement = tx.prepare_cached(insert)?;
        for Put {
            key, created_at, ..
        } in group
        {
            let rows = statement.execute(rusqlite::params![
                key.id,
                key.owner,
                key.master_key_id,
                key.nonce,
                key.wrapped,
                created_at
            ])?;
            inserted.push(rows == 1);
        }
    }
    tx.commit()?;
    Ok(inserted)
}

#[cfg(test)]
mod tests {
    use super::super::store::{DataKeyStore, SqliteDataKeys, Stored, WrappedKey};

    fn key(id: &str) -> WrappedKey {
        WrappedKey {
            id: id.into(),
            owner: format!("ws/connection/{id}"),
            master_key_id: "mk".into(),
            nonce: vec![1; 12],
            wrapped: vec![2; 48],
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_puts_all_land_and_a_taken_id_is_refused() {
        let dir = tempfile::tempdir().expect("dir");
        let store = std::sync::Arc::new(
            SqliteDataKeys::open(&dir.path().join("data_keys.db"))
                .await
                .expect("open"),
        );
        let puts: Vec<_> = (0..200)
            .map(|n| {
                let store = store.clone();
                // Ids ending in 1 repeat the one before: one of the two puts wins.
                let id = format!("dk:{}", if n % 10 == 1 { n - 1 } else { n });
                tokio::spawn(async move { store.put(&key(&id)).await })
            })
            .collect();
        let mut inserted = 0;
        for put in puts {
            inserted += usize::from(put.await.expect("task").expect("put"));
        }
        assert_eq!(inserted, 180, "each id once");
        assert_eq!(store.list_ids().await.expect("ids").len(), 180);
        assert!(matches!(store.get("dk:5").await, Ok(Stored::Live(k)) if k == key("dk:5")));
        assert!(!store.put(&key("dk:5")).await.expect("put again"));
        store.destroy("dk:5").await.expect("shred");
        assert!(!store.put(&key("dk:5")).await.expect("a shredded id"));
    }

    /// The writer's commits never checkpoint; the checkpointer beside it copies the WAL and
    /// has the writer start it over, so one put after another keeps it short. Without the
    /// checkpointer, or without the writer's restart, these 3,000 commits grew it to 39 MiB.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_wal_stays_short_under_one_put_after_another() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("data_keys.db");
        let policy = crate::wal::WalPolicy {
            checkpoint_every: std::time::Duration::from_millis(5),
            restart_after_frames: 64,
        };
        let store = SqliteDataKeys::open_with(&path, policy)
            .await
            .expect("open");
        let wal = dir.path().join("data_keys.db-wal");
        let mut longest = 0;
        for n in 0..3000 {
            assert!(store.put(&key(&format!("dk:{n}"))).await.expect("put"));
            longest = longest.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
        }
        assert_eq!(store.list_ids().await.expect("ids").len(), 3000);
        assert!(longest < 4 << 20, "the WAL reached {longest} bytes");
    }
}

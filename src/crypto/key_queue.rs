//! What both data key writers share (`key_writer`: SQLite on a thread; `pg_key_writer`:
//! PostgreSQL in a task): new keys queued by the requests that create them, taken by the
//! writer in groups of whatever is waiting, each put answered on its own.

use tokio::sync::{mpsc, oneshot};

use super::store::WrappedKey;
use super::CryptoError;

/// Keys written together at most.
const MAX_GROUP: usize = 256;
const QUEUE: usize = 1024;

/// The requests' end of a writer's queue; dropping it ends the writer once it is empty.
pub(super) struct KeyQueue {
    queue: mpsc::Sender<Put>,
}

/// One new key waiting, and where its answer goes: whether it was inserted (false: its id
/// was already taken, live or shredded).
pub(super) struct Put {
    pub(super) key: WrappedKey,
    pub(super) created_at: String,
    reply: oneshot::Sender<Result<bool, CryptoError>>,
}

impl KeyQueue {
    /// A queue and the receiving end its writer takes groups from.
    pub(super) fn new() -> (KeyQueue, mpsc::Receiver<Put>) {
        let (queue, requests) = mpsc::channel(QUEUE);
        (KeyQueue { queue }, requests)
    }

    /// Inserts the key through the writer, durably; false when its id is already taken.
    pub(super) async fn put(
        &self,
        key: &WrappedKey,
        created_at: String,
    ) -> Result<bool, CryptoError> {
        let (reply, answer) = oneshot::channel();
        let put = Put {
            key: key.clone(),
            created_at,
            reply,
        };
        let stopped = || CryptoError::Store("the data key writer has stopped".into());
        self.queue.send(put).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// `first` and whatever else is waiting now, up to a group's size.
pub(super) fn group(first: Put, requests: &mut mpsc::Receiver<Put>) -> Vec<Put> {
    let mut group = vec![first];
    while group.len() < MAX_GROUP {
        match requests.try_recv() {
            Ok(put) => group.push(put),
            Err(_) => break,
        }
    }
    group
}

/// Each put's own result, in the group's order.
pub(super) fn answer(group: Vec<Put>, results: Vec<Result<bool, CryptoError>>) {
    for (put, result) in group.into_iter().zip(results) {
        // The caller may have gone; the key is stored (or not) all the same.
        let _ = put.reply.send(result);
    }
}

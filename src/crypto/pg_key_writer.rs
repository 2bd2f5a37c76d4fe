//! PostgreSQL's data key writer: new data keys inserted in groups by one task, one
//! statement and one commit for every key waiting. With one `INSERT` per key, each
//! connection create paid a round trip and a commit of its own on the database server
//! (the embedded store groups its keys the same way: `key_writer`).

use std::collections::HashSet;

use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};

use super::store::WrappedKey;
use super::CryptoError;

/// Keys inserted together at most.
const MAX_GROUP: usize = 256;
const QUEUE: usize = 1024;

/// A new key unless its id is taken, live or shredded; `RETURNING` names those inserted.
const INSERT_GROUP: &str =
    "INSERT INTO data_keys (id, owner, master_key_id, nonce, wrapped, created_at)
     SELECT k.id, k.owner, k.master_key_id, k.nonce, k.wrapped, k.created_at
     FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bytea[], $5::bytea[], $6::text[])
          AS k (id, owner, master_key_id, nonce, wrapped, created_at)
     WHERE NOT EXISTS (SELECT 1 FROM shredded_data_keys s WHERE s.id = k.id)
     ON CONFLICT (id) DO NOTHING
     RETURNING id";

/// The handle on the writer task; dropping it ends the task once the queue is empty.
pub(super) struct PgKeyWriter {
    queue: mpsc::Sender<Put>,
}

struct Put {
    key: WrappedKey,
    created_at: String,
    reply: oneshot::Sender<Result<bool, CryptoError>>,
}

impl PgKeyWriter {
    /// Starts the writer on the store's pool (its tables already in place).
    pub(super) fn start(pool: PgPool) -> PgKeyWriter {
        let (queue, requests) = mpsc::channel(QUEUE);
        tokio::spawn(run(pool, requests));
        PgKeyWriter { queue }
    }

    /// Inserts the key, durably; false when its id is already taken.
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

async fn run(pool: PgPool, mut requests: mpsc::Receiver<Put>) {
    while let Some(first) = requests.recv().await {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match requests.try_recv() {
                Ok(put) => group.push(put),
                Err(_) => break,
            }
        }
        let results = match insert_group(&pool, &group).await {
            Ok(inserted) => inserted.into_iter().map(Ok).collect(),
            // Nothing of the group was committed: each alone, for its own answer.
            Err(_) => {
                let mut alone = Vec::with_capacity(group.len());
                for put in &group {
                    let result = insert_group(&pool, std::slice::from_ref(put))
                        .await
                        .map(|inserted| inserted.first().copied().unwrap_or(false))
                        .map_err(|e| CryptoError::Store(e.to_string()));
                    alone.push(result);
                }
                alone
            }
        };
        for (put, result) in group.into_iter().zip(results) {
            // The caller may have gone; the key is stored (or not) all the same.
            let _ = put.reply.send(result);
        }
    }
}

/// One statement for the group: whether each key was inserted. Of two puts of one id in a
/// group, the first is the one that may have inserted it.
async fn insert_group(pool: &PgPool, group: &[Put]) -> Result<Vec<bool>, sqlx::Error> {
    let column = |f: fn(&Put) -> String| group.iter().map(f).collect::<Vec<_>>();
    let bytes = |f: fn(&Put) -> Vec<u8>| group.iter().map(f).collect::<Vec<_>>();
    let inserted: HashSet<String> = sqlx::query_scalar(INSERT_GROUP)
        .bind(column(|p| p.key.id.clone()))
        .bind(column(|p| p.key.owner.clone()))
        .bind(column(|p| p.key.master_key_id.clone()))
        .bind(bytes(|p| p.key.nonce.clone()))
        .bind(bytes(|p| p.key.wrapped.clone()))
        .bind(column(|p| p.created_at.clone()))
        .fetch_all(pool)
        .await?
        .into_iter()
        .collect();
    let mut seen = HashSet::with_capacity(group.len());
    Ok(group
        .iter()
        .map(|put| seen.insert(put.key.id.as_str()) && inserted.contains(&put.key.id))
        .collect())
}

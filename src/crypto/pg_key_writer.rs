//! PostgreSQL's data key writer: new data keys inserted in groups by one task, one
//! statement and one commit for every key waiting. With one `INSERT` per key, each
//! connection create paid a round trip and a commit of its own on the database server
//! (the embedded store groups its keys the same way: `key_writer`).

use std::collections::HashSet;

use sqlx::PgPool;
use tokio::sync::mpsc;

use super::key_queue::{self, KeyQueue, Put};
use super::CryptoError;

/// A new key unless its id is taken, live or shredded; `RETURNING` names those inserted.
const INSERT_GROUP: &str =
    "INSERT INTO data_keys (id, owner, master_key_id, nonce, wrapped, created_at)
     SELECT k.id, k.owner, k.master_key_id, k.nonce, k.wrapped, k.created_at
     FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bytea[], $5::bytea[], $6::text[])
          AS k (id, owner, master_key_id, nonce, wrapped, created_at)
     WHERE NOT EXISTS (SELECT 1 FROM shredded_data_keys s WHERE s.id = k.id)
     ON CONFLICT (id) DO NOTHING
     RETURNING id";

/// Starts the writer on the store's pool (its tables already in place).
pub(super) fn start(pool: PgPool) -> KeyQueue {
    let (queue, requests) = KeyQueue::new();
    tokio::spawn(run(pool, requests));
    queue
}

async fn run(pool: PgPool, mut requests: mpsc::Receiver<Put>) {
    while let Some(first) = requests.recv().await {
        let group = key_queue::group(first, &mut requests);
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
        key_queue::answer(group, results);
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

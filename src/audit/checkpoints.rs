//! The checkpoint job and the proofs served from checkpoints. Leaves come from the audit
//! projection (`event_hash` per position, derived from the log); `authledger verify`
//! recomputes every root from the log itself, trusting no projection.

use std::time::Duration;

use tokio::sync::watch;

use super::merkle::{self, Hash};
use crate::app::AppState;
use crate::commands::CommandError;
use crate::domain::checkpoint::{CheckpointChain, Commit, CHECKPOINT_ID};
use crate::domain::cosignature::{Record, WitnessCosignatures};
use crate::domain::{CheckpointCosigned, CheckpointCreated, DomainError, Event, SYSTEM_WORKSPACE};
use crate::ledger::envelope::open_envelope;
use crate::ledger::note::{self, Note, NoteSignature, WitnessKey};
use crate::ledger::{Actor, AggregateKey, EventLog, LedgerError};

/// Default: every minute, at second 0.
pub const DEFAULT_CHECKPOINT_SCHEDULE: &str = "0 * * * * *";

fn corrupt(position: u64, reason: impl Into<String>) -> CommandError {
    CommandError::Ledger(LedgerError::Corrupt {
        position,
        reason: reason.into(),
    })
}

/// The Merkle leaf hashes of positions `1..=tree_size` (`SHA-256(0x00 || sha256(envelope))`),
/// from the audit projection.
pub async fn leaves(state: &AppState, tree_size: u64) -> Result<Vec<Hash>, CommandError> {
    leaves_between(state, 1, tree_size).await
}

/// The leaf hashes of positions `from..=to`, which must all be projected.
async fn leaves_between(state: &AppState, from: u64, to: u64) -> Result<Vec<Hash>, CommandError> {
    if from > to {
        return Ok(Vec::new());
    }
    let rows = state
        .projections
        .event_hashes(
            i64::try_from(from).unwrap_or(i64::MAX),
            i64::try_from(to).unwrap_or(i64::MAX),
        )
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for (expected, (position, hash)) in (i64::try_from(from).unwrap_or(i64::MAX)..).zip(rows) {
        let p = u64::try_from(position).unwrap_or(0);
        if position != expected {
            return Err(corrupt(
                p,
                "the audit projection has a gap; run `authledger replay`",
            ));
        }
        let leaf = hash
            .as_deref()
            .and_then(|h| h.strip_prefix("sha256:"))
            .and_then(merkle::from_hex)
            .ok_or_else(|| corrupt(p, "no event hash projected; run `authledger replay`"))?;
        out.push(merkle::leaf_hash(&leaf));
    }
    if out.len() as u64 != to - from + 1 {
        return Err(corrupt(
            to,
            "the projections have not reached this position yet",
        ));
    }
    Ok(out)
}

/// Appends a checkpoint covering the log up to its head; `None` when nothing but the last
/// checkpoint itself was appended since.
pub async fn checkpoint_now(state: &AppState) -> Result<Option<CheckpointCreated>, CommandError> {
    let head = state
        .log
        .head()
        .await
        .map_err(|e| CommandError::Ledger(LedgerError::Log(e)))?;
    let chain = state
        .ledger
        .load::<CheckpointChain>(SYSTEM_WORKSPACE, CHECKPOINT_ID)
        .await?;
    if head <= chain.tree_size + 1 {
        return Ok(None);
    }
    if !crate::projector::wait_for(state.projections.as_ref(), head, Duration::from_secs(30))
        .await?
    {
        return Err(corrupt(head, "projections lag; checkpoint postponed"));
    }
    // The tree of the log so far is kept between ticks: each tick reads only new leaves.
    let root = {
        let mut tree = state.checkpoint_tree.lock().await;
        if tree.size() > head {
            *tree = merkle::CompactRange::new();
        }
        for leaf in leaves_between(state, tree.size() + 1, head).await? {
            tree.push(leaf);
        }
        tree.root()
    };
    let checkpoint = note::Checkpoint {
        origin: origin(state.log.as_ref()).await?,
        tree_size: head,
        root,
    };
    let signer = state.ledger.signer();
    let signed = note::signed_checkpoint(
        &checkpoint,
        &signer.public_key(),
        signer.sign_note(&checkpoint.body()),
    );
    let committed = state
        .ledger
        .execute::<CheckpointChain>(
            SYSTEM_WORKSPACE,
            CHECKPOINT_ID,
            &Actor::system("checkpointer"),
            &Commit {
                tree_size: head,
                merkle_root: merkle::to_hex(&root),
                note: Some(signed.text()),
            },
        )
        .await;
    match committed {
        Ok(c) => match c.event {
            Event::CheckpointCreated(cp) => Ok(Some(cp)),
            _ => Ok(None),
        },
        // Another instance covered this head first.
        Err(LedgerError::Domain(DomainError::Rejected(_))) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The log's origin line (`schemas/README.md` §7c): `authledger/` + the event id at
/// position 1.
pub async fn origin(log: &dyn EventLog) -> Result<String, CommandError> {
    let first = log
        .read_from(1, 1)
        .await
        .map_err(|e| CommandError::Ledger(LedgerError::Log(e)))?;
    let first = first
        .first()
        .filter(|r| r.position == 1)
        .ok_or_else(|| corrupt(1, "the log has no first event"))?;
    let opened = open_envelope(&first.envelope).map_err(|e| corrupt(1, e.to_string()))?;
    Ok(note::origin_of(&opened.body.event_id.to_string()))
}

/// Runs the checkpoint job on `schedule` until `stop`.
pub async fn run_checkpointer(
    state: AppState,
    schedule: cron::Schedule,
    stop: watch::Receiver<bool>,
) {
    crate::scheduler::on_schedule("checkpoint", schedule, stop, || async {
        match checkpoint_now(&state).await {
            Ok(Some(c)) => tracing::info!(
                sequence = c.sequence,
                tree_size = c.tree_size,
                "checkpoint signed"
            ),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "checkpoint failed; retrying at the next tick"),
        }
    })
    .await;
}

/// A checkpoint as stored: its payload, its position and envelope hash.
#[derive(Debug, Clone)]
pub struct StoredCheckpoint {
    pub position: u64,
    pub event_id: String,
    pub occurred_at: String,
    pub key_id: String,
    pub envelope_hash: String,
    pub checkpoint: CheckpointCreated,
}

/// Every checkpoint, in order, read from the log.
pub async fn checkpoints(state: &AppState) -> Result<Vec<StoredCheckpoint>, CommandError> {
    let key = AggregateKey::new(
        SYSTEM_WORKSPACE,
        crate::domain::checkpoint::CHECKPOINT_AGGREGATE,
        CHECKPOINT_ID,
    )
    .map_err(|e| CommandError::Ledger(e.into()))?;
    let records = state
        .log
        .read_aggregate(&key)
        .await
        .map_err(|e| CommandError::Ledger(LedgerError::Log(e)))?;
    let mut out = Vec::with_capacity(records.len());
    for r in records {
        let opened = open_envelope(&r.envelope).map_err(|e| corrupt(r.position, e.to_string()))?;
        let event = Event::from_parts(&opened.body.kind, &opened.body.payload)
            .map_err(|e| corrupt(r.position, e.to_string()))?;
        if let Event::CheckpointCreated(c) = event {
            out.push(StoredCheckpoint {
                position: r.position,
                event_id: opened.body.event_id.to_string(),
                occurred_at: crate::projector::plan::rfc3339(opened.body.occurred_at),
                key_id: opened.body.key_id.clone(),
                envelope_hash: opened.hash,
                checkpoint: c,
            });
        }
    }
    Ok(out)
}

/// The inclusion proof of `position` in the first checkpoint that covers it.
pub async fn inclusion(
    state: &AppState,
    position: u64,
) -> Result<Option<(StoredCheckpoint, Vec<Hash>)>, CommandError> {
    let all = checkpoints(state).await?;
    let Some(cp) = all.into_iter().find(|c| c.checkpoint.tree_size >= position) else {
        return Ok(None);
    };
    let leaves = leaves(state, cp.checkpoint.tree_size).await?;
    let index = usize::try_from(position.saturating_sub(1)).unwrap_or(usize::MAX);
    let proof = merkle::inclusion_proof(&leaves, index)
        .ok_or_else(|| corrupt(position, "no inclusion proof"))?;
    Ok(Some((cp, proof)))
}

/// The consistency proof from checkpoint `m`'s tree to checkpoint `n`'s (by sequence).
pub async fn consistency(
    state: &AppState,
    m: u64,
    n: u64,
) -> Result<(StoredCheckpoint, StoredCheckpoint, Vec<Hash>), CommandError> {
    let all = checkpoints(state).await?;
    let find = |s: u64| {
        all.iter()
            .find(|c| c.checkpoint.sequence == s)
            .cloned()
            .ok_or(CommandError::Domain(DomainError::NotFound("checkpoint")))
    };
    let (old, new) = (find(m)?, find(n)?);
    if m > n {
        return Err(DomainError::Invalid {
            field: "from",
            reason: "must not be after the checkpoint".into(),
        }
        .into());
    }
    let leaves = leaves(state, new.checkpoint.tree_size).await?;
    let size = usize::try_from(old.checkpoint.tree_size).unwrap_or(usize::MAX);
    let proof = merkle::consistency_proof(&leaves, size)
        .ok_or_else(|| corrupt(new.position, "no consistency proof"))?;
    Ok((old, new, proof))
}

fn invalid(field: &'static str, reason: impl Into<String>) -> CommandError {
    DomainError::Invalid {
        field,
        reason: reason.into(),
    }
    .into()
}

/// Records a witness's cosignature of checkpoint `sequence` (`checkpoint.cosigned`) once it
/// verifies (strict Ed25519) against that checkpoint's signed note and the witness key.
pub async fn record_cosignature(
    state: &AppState,
    actor: &Actor,
    sequence: u64,
    witness_key: &str,
    cosignature: &str,
) -> Result<(CheckpointCosigned, u64), CommandError> {
    use base64::Engine as _;
    let witness =
        WitnessKey::parse(witness_key).map_err(|e| invalid("witness_key", e.to_string()))?;
    let all = checkpoints(state).await?;
    let cp = all
        .iter()
        .find(|c| c.checkpoint.sequence == sequence)
        .ok_or(CommandError::Domain(DomainError::NotFound("checkpoint")))?;
    let text = cp
        .checkpoint
        .note
        .as_deref()
        .ok_or_else(|| invalid("checkpoint", "this checkpoint has no signed note"))?;
    let mut signed = Note::parse(text).map_err(|e| corrupt(cp.position, e.to_string()))?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(cosignature)
        .ok()
        .filter(|r| r.len() == 4 + 8 + 64)
        .ok_or_else(|| {
            invalid(
                "cosignature",
                "base64 of key id (4), timestamp (8), signature (64)",
            )
        })?;
    signed.signatures.push(NoteSignature {
        name: witness.name.clone(),
        key_id: [raw[0], raw[1], raw[2], raw[3]],
        bytes: raw[4..].to_vec(),
    });
    let timestamp = signed.verify_cosignature(&witness).map_err(|_| {
        invalid(
            "cosignature",
            "does not verify for this witness key and checkpoint",
        )
    })?;
    let event = CheckpointCosigned {
        checkpoint_sequence: sequence,
        tree_size: cp.checkpoint.tree_size,
        witness_key: witness.vkey(),
        witness_name: witness.name.clone(),
        timestamp,
        cosignature: cosignature.to_string(),
    };
    let committed = state
        .ledger
        .execute::<WitnessCosignatures>(
            SYSTEM_WORKSPACE,
            &witness.storage_id(),
            actor,
            &Record(event.clone()),
        )
        .await?;
    Ok((event, committed.position))
}

//! Trust that does not live next to the signing key (`schemas/README.md` §7c).
//!
//! Whoever holds a copy of the data dir holds `active.key` and can re-sign history,
//! checkpoints included; a truncated tail leaves no trace in the log. What such a rewrite
//! cannot forge is a commitment made outside: a checkpoint note kept earlier (or cosigned by
//! a witness, which holds its own key), and a witness's cosignatures. This module checks the
//! log against those anchors, beside [`super::verify`] (which checks the log against itself):
//!
//! - every checkpoint note in the log says what its `ledger.checkpoint` payload says (origin,
//!   tree size, root) and carries a valid log signature (strict Ed25519);
//! - a trusted checkpoint (`--trust-checkpoint`): the log is of the same origin, holds at
//!   least its tree size, and its first `tree_size` events hash to its root (truncation, a
//!   rewritten prefix and a fork all fail here);
//! - a witness key (`--witness-key`): the log holds at least one cosignature by it, and every
//!   one verifies against the checkpoint it names.

use std::collections::BTreeMap;

use ed25519_dalek::VerifyingKey;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::envelope::open_envelope;
use super::keys::{parse_public, KeyRing};
use super::log::{EventLog, LogError};
use super::note::{self, Checkpoint, Note, NoteSignature, WitnessKey};
use super::AggregateKey;
use crate::audit::merkle;
use crate::domain::checkpoint::{CHECKPOINT_AGGREGATE, CHECKPOINT_ID};
use crate::domain::cosignature::COSIGNATURE_AGGREGATE;
use crate::domain::{Event, SYSTEM_WORKSPACE};

#[derive(Debug, thiserror::Error)]
pub enum AnchorError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("aggregate key: {0}")]
    Key(String),
}

/// What the anchors check found. `failure` names the first problem.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AnchorReport {
    pub ok: bool,
    /// The log's origin line (`authledger/<event id at position 1>`).
    pub origin: Option<String>,
    /// Checkpoint notes found in the log and verified.
    pub checkpoint_notes: u64,
    /// Checkpoints written before notes existed (nothing to check).
    pub checkpoints_without_note: u64,
    /// Per witness key given: the cosignatures verified and the largest tree they cover.
    pub witnesses: Vec<WitnessSummary>,
    /// The trusted checkpoint's tree size, once the log is found to extend it.
    pub trusted_tree_size: Option<u64>,
    /// Where trust came from, in words (for the summary line).
    pub anchors: Vec<String>,
    pub failure: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct WitnessSummary {
    pub name: String,
    pub cosignatures: u64,
    pub largest_tree_size: u64,
}

impl AnchorReport {
    fn fail(mut self, reason: impl Into<String>) -> AnchorReport {
        self.ok = false;
        self.failure = Some(reason.into());
        self
    }
}

struct LogCheckpoint {
    tree_size: u64,
    position: u64,
    body: Option<String>,
}

/// Checks the log against the anchors. The log itself is verified by `verify_log`; this
/// reads only position 1, the checkpoint and key-rotation chains, the cosignature chains
/// of the given witnesses and, with a trusted checkpoint, its first `tree_size` envelopes.
pub async fn check(
    log: &dyn EventLog,
    ring: &KeyRing,
    trusted: Option<&Note>,
    witnesses: &[WitnessKey],
) -> Result<AnchorReport, AnchorError> {
    let mut report = AnchorReport {
        ok: true,
        ..Default::default()
    };
    let head = log.head().await?;
    let origin = match first_event_id(log).await? {
        Some(Ok(id)) => note::origin_of(&id),
        Some(Err(reason)) => return Ok(report.fail(format!("position 1: {reason}"))),
        None => {
            if trusted.is_some() || !witnesses.is_empty() {
                return Ok(report.fail("the log is empty"));
            }
            return Ok(report);
        }
    };
    report.origin = Some(origin.clone());
    let keys = log_keys(log, ring).await?;
    let checkpoints = match log_checkpoints(log, &origin, &keys, &mut report).await? {
        Ok(checkpoints) => checkpoints,
        Err(reason) => return Ok(report.fail(reason)),
    };
    for w in witnesses {
        let summary = match cosignatures_of(log, w, &checkpoints).await? {
            Ok(summary) => summary,
            Err(reason) => return Ok(report.fail(reason)),
        };
        report.anchors.push(format!(
            "witness {}: {} cosignatures, up to tree size {}",
            w.name, summary.cosignatures, summary.largest_tree_size
        ));
        report.witnesses.push(summary);
    }
    if let Some(t) = trusted {
        let extends = Extends {
            origin: &origin,
            head,
            keys: &keys,
            witnesses,
        };
        match extends.check(log, t).await? {
            Ok((tree_size, anchor)) => {
                report.trusted_tree_size = Some(tree_size);
                report.anchors.push(anchor);
            }
            Err(reason) => return Ok(report.fail(reason)),
        }
    }
    Ok(report)
}

/// Every checkpoint of the log by sequence, each note checked against what the event
/// states and signed by a trusted log key; `Err` is the failure.
async fn log_checkpoints(
    log: &dyn EventLog,
    origin: &str,
    keys: &[VerifyingKey],
    report: &mut AnchorReport,
) -> Result<Result<BTreeMap<u64, LogCheckpoint>, String>, AnchorError> {
    let mut checkpoints: BTreeMap<u64, LogCheckpoint> = BTreeMap::new();
    for r in log
        .read_aggregate(&system_key(CHECKPOINT_AGGREGATE, CHECKPOINT_ID)?)
        .await?
    {
        let Some(Event::CheckpointCreated(c)) = event_of(&r.envelope) else {
            continue;
        };
        let mut entry = LogCheckpoint {
            tree_size: c.tree_size,
            position: r.position,
            body: None,
        };
        let Some(text) = c.note.as_deref() else {
            report.checkpoints_without_note += 1;
            checkpoints.insert(c.sequence, entry);
            continue;
        };
        let expected = merkle::from_hex(&c.merkle_root).map(|root| Checkpoint {
            origin: origin.to_string(),
            tree_size: c.tree_size,
            root,
        });
        let body = match (Note::parse(text), expected) {
            (Err(e), _) => Err(e.to_string()),
            (_, None) => Err("merkle_root is not hex".into()),
            (Ok(n), Some(e)) if n.body != e.body() => {
                Err("its note does not state this log's origin, tree size and root".into())
            }
            (Ok(n), Some(_)) => match n.verify_log_signature(origin, keys.iter()) {
                Ok(_) => Ok(n.body),
                Err(_) => Err("its note has no valid signature by a trusted log key".to_string()),
            },
        };
        match body {
            Ok(body) => entry.body = Some(body),
            Err(p) => {
                return Ok(Err(format!(
                    "checkpoint {} at position {}: {p}",
                    c.sequence, r.position
                )))
            }
        }
        checkpoints.insert(c.sequence, entry);
        report.checkpoint_notes += 1;
    }
    Ok(Ok(checkpoints))
}

/// The witness's cosignatures in the log, each checked against the checkpoint it names;
/// `Err` is the failure (a bad one, or none at all).
async fn cosignatures_of(
    log: &dyn EventLog,
    w: &WitnessKey,
    checkpoints: &BTreeMap<u64, LogCheckpoint>,
) -> Result<Result<WitnessSummary, String>, AnchorError> {
    let mut summary = WitnessSummary {
        name: w.name.clone(),
        cosignatures: 0,
        largest_tree_size: 0,
    };
    for r in log
        .read_aggregate(&system_key(COSIGNATURE_AGGREGATE, &w.storage_id())?)
        .await?
    {
        let Some(Event::CheckpointCosigned(c)) = event_of(&r.envelope) else {
            continue;
        };
        let valid = checkpoints
            .get(&c.checkpoint_sequence)
            .filter(|cp| cp.tree_size == c.tree_size && cp.position < r.position)
            .and_then(|cp| cp.body.clone())
            .is_some_and(|body| cosigned(&body, w, &c.cosignature));
        if !valid || c.witness_key != w.vkey() {
            return Ok(Err(format!(
                "position {}: the cosignature by {} does not verify against checkpoint {}",
                r.position, w.name, c.checkpoint_sequence
            )));
        }
        summary.cosignatures += 1;
        summary.largest_tree_size = summary.largest_tree_size.max(c.tree_size);
    }
    if summary.cosignatures == 0 {
        return Ok(Err(format!(
            "no cosignature by the witness {} in the log",
            w.name
        )));
    }
    Ok(Ok(summary))
}

/// What a checkpoint kept outside the data dir is checked against.
struct Extends<'a> {
    origin: &'a str,
    head: u64,
    keys: &'a [VerifyingKey],
    witnesses: &'a [WitnessKey],
}

impl Extends<'_> {
    /// The log extends the trusted checkpoint: same origin, at least as long, and its
    /// prefix hashes to the checkpoint's root. `Ok` carries the tree size and the anchor
    /// line (who signed the trusted checkpoint); `Err` is the failure.
    async fn check(
        &self,
        log: &dyn EventLog,
        t: &Note,
    ) -> Result<Result<(u64, String), String>, AnchorError> {
        let cp = match t.checkpoint() {
            Ok(cp) => cp,
            Err(e) => return Ok(Err(format!("the trusted checkpoint: {e}"))),
        };
        if cp.origin != self.origin {
            return Ok(Err(format!(
                "the trusted checkpoint is of another log (origin {}, this log is {})",
                cp.origin, self.origin
            )));
        }
        if self.head < cp.tree_size {
            return Ok(Err(format!(
                "the log holds {} events but the trusted checkpoint covers {}: the log was truncated",
                self.head, cp.tree_size
            )));
        }
        let Some(root) = prefix_root(log, cp.tree_size).await? else {
            return Ok(Err(format!(
                "the log's positions 1..{} are not contiguous",
                cp.tree_size
            )));
        };
        if root != cp.root {
            return Ok(Err(format!(
                "the log's first {} events do not hash to the trusted checkpoint's root: history was rewritten (or forked) since",
                cp.tree_size
            )));
        }
        let mut signers = Vec::new();
        if t.verify_log_signature(self.origin, self.keys.iter())
            .is_ok()
        {
            signers.push("the log key".to_string());
        }
        for w in self.witnesses {
            if t.verify_cosignature(w).is_ok() {
                signers.push(format!("witness {}", w.name));
            }
        }
        let anchor = format!(
            "trusted checkpoint: the log extends tree size {} ({})",
            cp.tree_size,
            if signers.is_empty() {
                "no signature on it checked".to_string()
            } else {
                format!("signed by {}", signers.join(", "))
            }
        );
        Ok(Ok((cp.tree_size, anchor)))
    }
}

fn system_key(aggregate: &str, id: &str) -> Result<AggregateKey, AnchorError> {
    AggregateKey::new(SYSTEM_WORKSPACE, aggregate, id).map_err(|e| AnchorError::Key(e.to_string()))
}

fn event_of(envelope: &[u8]) -> Option<Event> {
    let opened = open_envelope(envelope).ok()?;
    Event::from_parts(&opened.body.kind, &opened.body.payload).ok()
}

fn cosigned(body: &str, witness: &WitnessKey, cosignature: &str) -> bool {
    use base64::Engine as _;
    let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(cosignature) else {
        return false;
    };
    if raw.len() != 76 {
        return false;
    }
    let note = Note {
        body: body.to_string(),
        signatures: vec![NoteSignature {
            name: witness.name.clone(),
            key_id: [raw[0], raw[1], raw[2], raw[3]],
            bytes: raw[4..].to_vec(),
        }],
    };
    note.verify_cosignature(witness).is_ok()
}

/// The event id at position 1: `None` for an empty log, `Some(Err)` when it does not open.
async fn first_event_id(log: &dyn EventLog) -> Result<Option<Result<String, String>>, LogError> {
    let first = log.read_from(1, 1).await?;
    let Some(r) = first.first() else {
        return Ok(None);
    };
    if r.position != 1 {
        return Ok(Some(Err("the log does not start at position 1".into())));
    }
    Ok(Some(
        open_envelope(&r.envelope)
            .map(|o| o.body.event_id.to_string())
            .map_err(|e| e.to_string()),
    ))
}

/// The trusted keys and every key a `signing_key.rotated` event names (`verify_log` checks
/// that chain; here any of them may have signed a note).
async fn log_keys(log: &dyn EventLog, ring: &KeyRing) -> Result<Vec<VerifyingKey>, AnchorError> {
    let mut keys: Vec<VerifyingKey> = ring.ids().filter_map(|id| ring.get(id).copied()).collect();
    for r in log
        .read_aggregate(&system_key("signing_key", "ring")?)
        .await?
    {
        if let Some(Event::SigningKeyRotated(k)) = event_of(&r.envelope) {
            if let Ok(public) = parse_public(&k.new_public_key, "new_public_key") {
                keys.push(public);
            }
        }
    }
    Ok(keys)
}

/// The RFC 6962 root of the log's first `size` envelopes, recomputed from the log; `None`
/// when positions `1..=size` are not all there in order.
async fn prefix_root(log: &dyn EventLog, size: u64) -> Result<Option<merkle::Hash>, LogError> {
    let mut tree = merkle::CompactRange::new();
    let mut next = 1;
    while next <= size {
        let page = log.read_from(next, 4096).await?;
        if page.is_empty() {
            break;
        }
        for e in page.iter().take_while(|e| e.position <= size) {
            if e.position != next {
                return Ok(None);
            }
            let digest: [u8; 32] = Sha256::digest(&e.envelope).into();
            tree.push(merkle::leaf_hash(&digest));
            next += 1;
        }
        if page.last().is_some_and(|e| e.position >= size) {
            break;
        }
    }
    Ok((tree.size() == size).then(|| tree.root()))
}

//! Walks the whole log and checks what an auditor relies on: every signature under a
//! trusted key, every chain link, versions 1..n per aggregate with none missing or
//! repeated, unique event ids, and no gap in global positions. Stops at the first bad
//! event and names it.
//!
//! Signatures are checked one by one by the rule of `signature::verify` (schemas/README.md
//! §3), spread over threads (`VerifyOptions::threads`); everything order-dependent is a
//! single sequential pass. The verdict and the first bad position never depend on the
//! number of threads.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use ed25519_dalek::VerifyingKey;
use serde::Serialize;
use uuid::Uuid;

use super::envelope::{open_envelope, pae, AggregateKey, EventBody, OpenedEnvelope, PAYLOAD_TYPE};
use super::keys::{parse_public, KeyRing};
use super::log::{EventLog, LogError, RecordedEvent};
use super::signature::{self, SignatureError};
use crate::audit::merkle;
use crate::domain::{Event, SYSTEM_WORKSPACE};

/// The first bad event and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    pub position: u64,
    pub event_id: Option<String>,
    pub aggregate: Option<String>,
    pub version: Option<u64>,
    pub problem: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub ok: bool,
    pub log: String,
    pub events: u64,
    pub aggregates: usize,
    /// Keys that signed at least one event.
    pub keys: usize,
    pub first_position: Option<u64>,
    pub last_position: Option<u64>,
    pub seconds: f64,
    pub events_per_sec: f64,
    pub warnings: Vec<String>,
    pub failure: Option<Failure>,
    /// What the verdict rests on: where the trusted keys came from.
    pub trust: String,
    /// Signed checkpoints checked (signature, chain, Merkle root recomputed from the log).
    pub checkpoints: u64,
    /// Positions after the last checkpoint's tree (not yet committed to by a checkpoint).
    pub uncovered_positions: u64,
}

/// How a verification runs; none of it changes the verdict.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// Threads that check signatures (default: the CPU count, at most 8).
    pub threads: Option<usize>,
    /// Events read and checked per step (default 4096).
    pub page: Option<usize>,
    /// Where the trusted keys came from, for the report (see `trust::TrustedKeys`).
    pub trust: Option<String>,
}

impl VerifyOptions {
    fn threads(&self) -> usize {
        self.threads
            .unwrap_or_else(|| {
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(1)
                    .min(8)
            })
            .max(1)
    }
}

/// Sequential state of a verification.
pub struct Verifier {
    threads: usize,
    trusted: KeyRing,
    tails: HashMap<AggregateKey, (u64, String)>,
    event_ids: HashSet<Uuid>,
    last_position: Option<u64>,
    first_position: Option<u64>,
    keys_used: BTreeSet<String>,
    events: u64,
    /// The Merkle leaf hash of every position so far (over `sha256(envelope)`).
    leaves: Vec<merkle::Hash>,
    /// The tree of the last checkpoint, grown to the next checkpoint's size when it comes.
    covered: merkle::CompactRange,
    checkpoints: u64,
}

struct SigJob {
    index: usize,
    message: Vec<u8>,
    signature: [u8; 64],
    key: VerifyingKey,
}

impl Verifier {
    pub fn new(trusted: KeyRing) -> Self {
        Self::with_threads(trusted, VerifyOptions::default().threads())
    }

    /// A verifier that checks signatures on `threads` threads.
    pub fn with_threads(trusted: KeyRing, threads: usize) -> Self {
        Verifier {
            threads: threads.max(1),
            trusted,
            tails: HashMap::new(),
            event_ids: HashSet::new(),
            last_position: None,
            first_position: None,
            keys_used: BTreeSet::new(),
            events: 0,
            leaves: Vec::new(),
            covered: merkle::CompactRange::new(),
            checkpoints: 0,
        }
    }

    /// Checks a `ledger.checkpoint`: it covers only earlier positions, extends the previous
    /// checkpoint, and its root is the Merkle tree hash recomputed from the log.
    fn check_checkpoint(
        &mut self,
        position: u64,
        payload: &serde_json::Value,
    ) -> Result<(), String> {
        let c = match Event::from_parts("ledger.checkpoint", payload) {
            Ok(Event::CheckpointCreated(c)) => c,
            Ok(_) => return Err("not a checkpoint".into()),
            Err(e) => return Err(e.to_string()),
        };
        if c.sequence != self.checkpoints + 1 {
            return Err(format!(
                "checkpoint sequence {} where {} is due (sequences are 1, 2, … in log order)",
                c.sequence,
                self.checkpoints + 1
            ));
        }
        let previous = self.covered.size();
        let previous_root = (previous > 0).then(|| merkle::to_hex(&self.covered.root()));
        if c.tree_size >= position || c.tree_size <= previous {
            return Err(format!(
                "checkpoint {} covers up to position {} but must cover more than {previous} and only positions before its own ({position})",
                c.sequence, c.tree_size
            ));
        }
        let linked = c.previous_tree_size == (previous > 0).then_some(previous)
            && c.previous_root == previous_root
            && c.from_position == previous + 1
            && c.count == c.tree_size - previous
            && c.to_position == c.tree_size;
        if !linked {
            return Err(format!(
                "checkpoint {} does not extend the previous checkpoint (tree size {previous})",
                c.sequence
            ));
        }
        let upto = usize::try_from(c.tree_size).unwrap_or(usize::MAX);
        let start = usize::try_from(previous).unwrap_or(usize::MAX);
        for leaf in self.leaves.get(start..upto).unwrap_or_default() {
            self.covered.push(*leaf);
        }
        let root = merkle::to_hex(&self.covered.root());
        if root != c.merkle_root {
            return Err(format!(
                "checkpoint {} claims Merkle root {} over positions 1..={} but the log gives {root}",
                c.sequence, c.merkle_root, c.tree_size
            ));
        }
        self.checkpoints += 1;
        Ok(())
    }

    /// Checks the next events in global order.
    pub fn check_batch(&mut self, batch: &[RecordedEvent]) -> Result<(), Failure> {
        let checked = self.check_sequential(batch);
        checked.decide(batch, self.threads)
    }

    /// The order-dependent checks of a page, up to its first structural failure; the
    /// signatures are left to `Checked::decide` (which may run while the next page is
    /// checked here: the verdict is the same).
    fn check_sequential(&mut self, batch: &[RecordedEvent]) -> Checked {
        let mut jobs = Vec::with_capacity(batch.len());
        let mut structural = None;
        for (i, rec) in batch.iter().enumerate() {
            match self.check_one(rec) {
                Ok(job) => jobs.push(SigJob { index: i, ..job }),
                Err(boxed) => {
                    let (failure, job) = *boxed;
                    if let Some(job) = job {
                        jobs.push(SigJob { index: i, ..job });
                    }
                    structural = Some(failure);
                    break;
                }
            }
        }
        Checked { jobs, structural }
    }

    /// Sequential checks for one event; returns the signature check still to do.
    fn check_one(&mut self, rec: &RecordedEvent) -> Result<SigJob, Box<(Failure, Option<SigJob>)>> {
        let fail = |problem: String| Box::new((describe(rec, &problem), None));
        self.check_position(rec.position).map_err(fail)?;
        let opened = open_envelope(&rec.envelope).map_err(|e| fail(e.to_string()))?;
        let leaf = opened
            .hash
            .strip_prefix("sha256:")
            .and_then(merkle::from_hex)
            .ok_or_else(|| fail("envelope hash is not sha256".into()))?;
        self.leaves.push(merkle::leaf_hash(&leaf));
        let job = self.signature_job(&opened).map_err(fail)?;
        match self.check_body(rec, &opened) {
            Ok(()) => Ok(job),
            Err(problem) => Err(Box::new((describe(rec, &problem), Some(job)))),
        }
    }

    /// Global positions run 1, 2, 3, … without a gap or a repeat.
    fn check_position(&mut self, position: u64) -> Result<(), String> {
        let expected = self.last_position.map(|p| p + 1).unwrap_or(1);
        if position != expected {
            return Err(if position > expected {
                format!(
                    "gap in global positions: expected {expected}, found {position} (events removed)"
                )
            } else {
                format!("global position {position} repeats or goes backwards")
            });
        }
        self.last_position = Some(position);
        self.first_position.get_or_insert(position);
        Ok(())
    }

    /// The signature to check, by a key of the trusted ring the body names.
    fn signature_job(&self, opened: &OpenedEnvelope) -> Result<SigJob, String> {
        let body = &opened.body;
        let (hint, sig) = opened.signatures[0].clone();
        if hint != body.key_id {
            return Err(format!(
                "envelope key id {hint} differs from the signed body's key_id {}",
                body.key_id
            ));
        }
        let Some(key) = self.trusted.get(&body.key_id).copied() else {
            return Err(format!(
                "signed by unknown key {} (not in the trusted key ring)",
                body.key_id
            ));
        };
        Ok(SigJob {
            index: 0,
            message: pae(PAYLOAD_TYPE, &opened.body_bytes),
            signature: sig,
            key,
        })
    }

    /// What the signed body says against where the log filed it, the events before it,
    /// the key ring and the checkpoint chain; on success the event is counted.
    fn check_body(&mut self, rec: &RecordedEvent, opened: &OpenedEnvelope) -> Result<(), String> {
        let body = &opened.body;
        let body_key = body.aggregate_key().map_err(|e| e.to_string())?;
        filed_as_signed(rec, body, &body_key)?;
        if !self.event_ids.insert(body.event_id) {
            return Err(format!("event id {} appears twice", body.event_id));
        }
        self.check_chain(body, &body_key)?;
        self.check_ring(body)?;
        let in_checkpoints = body.workspace_id == SYSTEM_WORKSPACE
            && body.aggregate_type == crate::domain::checkpoint::CHECKPOINT_AGGREGATE
            && body.aggregate_id == crate::domain::checkpoint::CHECKPOINT_ID;
        if (body.kind == "ledger.checkpoint") != in_checkpoints {
            return Err(format!(
                "ledger.checkpoint events belong to {SYSTEM_WORKSPACE}/checkpoint/ledger, and only they"
            ));
        }
        if in_checkpoints {
            self.check_checkpoint(rec.position, &body.payload)?;
        }
        self.tails
            .insert(body_key, (body.aggregate_version, opened.hash.clone()));
        self.keys_used.insert(body.key_id.clone());
        self.events += 1;
        Ok(())
    }

    /// The aggregate's versions run 1, 2, 3, … and each event names its predecessor's hash.
    fn check_chain(&self, body: &EventBody, body_key: &AggregateKey) -> Result<(), String> {
        let (last_version, last_hash) = match self.tails.get(body_key) {
            Some((v, h)) => (*v, Some(h.as_str())),
            None => (0, None),
        };
        if body.aggregate_version != last_version + 1 {
            return Err(if body.aggregate_version <= last_version {
                format!(
                    "version {} of {body_key} appears again or out of order (already at version {last_version})",
                    body.aggregate_version
                )
            } else {
                format!(
                    "version {} of {body_key} follows version {last_version}: version {} is missing or out of order",
                    body.aggregate_version,
                    last_version + 1
                )
            });
        }
        if body.prev_hash.as_deref() != last_hash {
            return Err(format!(
                "chain broken: prev_hash {} does not match the previous event's hash {}",
                body.prev_hash.as_deref().unwrap_or("null"),
                last_hash.unwrap_or("null (first event)")
            ));
        }
        Ok(())
    }

    /// A rotation signed by a trusted key makes the new key trusted from here on; only the
    /// system ring aggregate may hold one.
    fn check_ring(&mut self, body: &EventBody) -> Result<(), String> {
        let in_ring = body.workspace_id == SYSTEM_WORKSPACE
            && body.aggregate_type == "signing_key"
            && body.aggregate_id == crate::domain::signing_key::RING_ID;
        if body.kind == "signing_key.rotated" && !in_ring {
            return Err(format!(
                "signing_key.rotated outside {SYSTEM_WORKSPACE}/signing_key/ring"
            ));
        }
        if !in_ring {
            return Ok(());
        }
        match Event::from_parts(&body.kind, &body.payload) {
            Ok(Event::SigningKeyRotated(r)) => {
                if r.previous_key_id != body.key_id {
                    return Err(format!(
                        "key rotation signed by {} instead of the outgoing key {}",
                        body.key_id, r.previous_key_id
                    ));
                }
                match parse_public(&r.new_public_key, "new_public_key") {
                    Ok(pk) if super::keys::key_id(&pk) == r.new_key_id => {
                        self.trusted.insert(pk);
                        Ok(())
                    }
                    _ => Err("key rotation names an invalid new key".into()),
                }
            }
            Ok(_) => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// The log filed the event where its signed body says: aggregate and (where the log
/// indexes one) version.
fn filed_as_signed(
    rec: &RecordedEvent,
    body: &EventBody,
    body_key: &AggregateKey,
) -> Result<(), String> {
    if *body_key != rec.key {
        return Err(format!(
            "stored under aggregate {} but the signed body says {body_key}",
            rec.key
        ));
    }
    match rec.version {
        Some(v) if v != body.aggregate_version => Err(format!(
            "indexed as version {v} but the signed body says version {}",
            body.aggregate_version
        )),
        _ => Ok(()),
    }
}

fn describe(rec: &RecordedEvent, problem: &str) -> Failure {
    let opened = open_envelope(&rec.envelope).ok();
    Failure {
        position: rec.position,
        event_id: opened.as_ref().map(|o| o.body.event_id.to_string()),
        aggregate: Some(rec.key.to_string()),
        version: opened
            .as_ref()
            .map(|o| o.body.aggregate_version)
            .or(rec.version),
        problem: problem.to_string(),
    }
}

/// A page after its sequential checks: the signatures still to check, and the first
/// structural failure (the signature jobs stop there).
struct Checked {
    jobs: Vec<SigJob>,
    structural: Option<Failure>,
}

impl Checked {
    /// The page's verdict: a bad signature at or before the structural failure is the root
    /// cause; else the structural failure.
    fn decide(self, batch: &[RecordedEvent], threads: usize) -> Result<(), Failure> {
        if let Some((bad, why)) = first_bad_signature(&self.jobs, threads) {
            let rec = &batch[bad];
            let key = open_envelope(&rec.envelope)
                .ok()
                .and_then(|o| o.signatures.first().map(|s| s.0.clone()))
                .unwrap_or_else(|| "?".into());
            return Err(describe(
                rec,
                &format!(
                    "signature does not verify under trusted key {key}: {why} (body or signature altered, or forged)"
                ),
            ));
        }
        match self.structural {
            Some(f) => Err(f),
            None => Ok(()),
        }
    }
}

/// Index (into the batch) of the first event whose signature fails, and why; the work is
/// split over `threads` threads, which changes only how fast the answer comes.
fn first_bad_signature(jobs: &[SigJob], threads: usize) -> Option<(usize, SignatureError)> {
    if jobs.is_empty() {
        return None;
    }
    let check = |chunk: &[SigJob]| {
        chunk.iter().find_map(|j| {
            signature::verify(&j.key, &j.message, &j.signature)
                .err()
                .map(|e| (j.index, e))
        })
    };
    if threads <= 1 {
        return check(jobs);
    }
    let chunk = jobs.len().div_ceil(threads).max(1);
    let bad: Vec<Option<(usize, SignatureError)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = jobs
            .chunks(chunk)
            .map(|c| scope.spawn(move || check(c)))
            .collect();
        handles
            .into_iter()
            .zip(jobs.chunks(chunk))
            // A thread that died is re-checked here rather than trusted.
            .map(|(h, c)| h.join().unwrap_or_else(|_| check(c)))
            .collect()
    });
    bad.into_iter().flatten().min_by_key(|(i, _)| *i)
}

/// Verifies the log from position 1 to its head at the start of the run.
pub async fn verify_log(
    log: Arc<dyn EventLog>,
    trusted: KeyRing,
    warnings: Vec<String>,
) -> Result<VerifyReport, LogError> {
    verify_log_with(log, trusted, warnings, &VerifyOptions::default()).await
}

/// `verify_log` with explicit options (thread count, page size, trust description).
pub async fn verify_log_with(
    log: Arc<dyn EventLog>,
    trusted: KeyRing,
    warnings: Vec<String>,
    options: &VerifyOptions,
) -> Result<VerifyReport, LogError> {
    let page_size = options.page.unwrap_or(4096).max(1);
    let started = Instant::now();
    let head = log.head().await?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Vec<RecordedEvent>, LogError>>(2);
    let reader_log = log.clone();
    // Read ahead while the previous page is being checked.
    let reader = tokio::spawn(async move {
        let mut next = 1;
        while next <= head {
            let page = reader_log.read_from(next, page_size).await;
            let page = match page {
                Ok(p) => p
                    .into_iter()
                    .take_while(|e| e.position <= head)
                    .collect::<Vec<_>>(),
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            };
            let Some(last) = page.last().map(|e| e.position) else {
                return;
            };
            next = last + 1;
            if tx.send(Ok(page)).await.is_err() {
                return;
            }
        }
    });
    let threads = options.threads();
    let mut verifier = Verifier::with_threads(trusted, threads);
    // Signatures of page N are checked while page N+1 gets its sequential checks; pages
    // are decided in order, so the first failure is the same as checking one by one.
    let (sig_tx, mut sig_rx) = tokio::sync::mpsc::channel::<(Vec<RecordedEvent>, Checked)>(1);
    let signatures = tokio::task::spawn_blocking(move || {
        while let Some((page, checked)) = sig_rx.blocking_recv() {
            checked.decide(&page, threads)?;
        }
        Ok::<(), Failure>(())
    });
    while let Some(page) = rx.recv().await {
        let page = page?;
        let (v, page, checked) = tokio::task::spawn_blocking(move || {
            let checked = verifier.check_sequential(&page);
            (verifier, page, checked)
        })
        .await
        .map_err(|e| LogError::Backend(format!("verifier task failed: {e}")))?;
        verifier = v;
        let stop = checked.structural.is_some();
        // Stop when the signature stage stopped at a failure, or this page holds one.
        if sig_tx.send((page, checked)).await.is_err() || stop {
            break;
        }
    }
    drop(sig_tx);
    let mut failure = signatures
        .await
        .map_err(|e| LogError::Backend(format!("signature task failed: {e}")))?
        .err();
    reader.abort();
    if failure.is_none() && verifier.last_position.unwrap_or(0) < head {
        failure = Some(Failure {
            position: verifier.last_position.unwrap_or(0) + 1,
            event_id: None,
            aggregate: None,
            version: None,
            problem: format!(
                "the log reports head position {head} but events after {} could not be read",
                verifier.last_position.unwrap_or(0)
            ),
        });
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(VerifyReport {
        ok: failure.is_none(),
        log: log.describe(),
        events: verifier.events,
        aggregates: verifier.tails.len(),
        keys: verifier.keys_used.len(),
        first_position: verifier.first_position,
        last_position: verifier.last_position,
        seconds,
        events_per_sec: if seconds > 0.0 {
            verifier.events as f64 / seconds
        } else {
            0.0
        },
        warnings,
        failure,
        trust: options
            .trust
            .clone()
            .unwrap_or_else(|| "keys given by the caller".into()),
        checkpoints: verifier.checkpoints,
        uncovered_positions: verifier
            .last_position
            .unwrap_or(0)
            .saturating_sub(verifier.covered.size()),
    })
}

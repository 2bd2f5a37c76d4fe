//! The write path: load an aggregate, decide, sign, chain, append with the expected
//! version. A conflict reloads and decides again; it never overwrites.

use std::any::Any;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use uuid::Uuid;

use super::envelope::{open_envelope, Actor, AggregateKey, EnvelopeError, EventBody};
use super::generations::Generations;
use super::keys::Signer;
use super::log::{EventLog, Flush, InProcess, LogError, Sealed, SignedEvent};
use crate::clock::Clock;
use crate::domain::{Aggregate, DomainError, Event};
use crate::metrics::{Metrics, ResultLabel};

/// How many times a command is re-decided after losing a version race.
const MAX_ATTEMPTS: usize = 24;
/// Entries per generation of the per-instance caches (a miss only costs one read of the
/// aggregate). Most aggregates are written once (a token, a tool call, a denial): they age
/// out in two generations while those in use stay.
const CACHE_ENTRIES: usize = 4_096;

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    #[error("gave up after {0} version conflicts on {1}")]
    Contended(usize, AggregateKey),
    #[error("stored event at position {position} is unreadable: {reason}")]
    Corrupt { position: u64, reason: String },
}

/// What an accepted command wrote.
#[derive(Debug, Clone)]
pub struct Committed {
    pub position: u64,
    pub version: u64,
    pub event_id: Uuid,
    pub event: Event,
    /// The event's `occurred_at`, as signed.
    pub occurred_at: time::OffsetDateTime,
    pub duplicate: bool,
}

pub struct Ledger {
    log: Arc<dyn EventLog>,
    signer: RwLock<Arc<Signer>>,
    clock: Arc<dyn Clock>,
    metrics: Metrics,
    /// Last (version, hash) per aggregate this instance appended to with `append_next`
    /// (the others' tails are in `folded`).
    tails: Mutex<Generations<AggregateKey, (u64, String)>>,
    /// Folded state per aggregate as this instance last read or wrote it. Never trusted
    /// alone: `load` asks the log for anything after it, and a decision made on it must
    /// win its append (the expected version) or is re-decided on a fresh read.
    folded: Mutex<Generations<AggregateKey, Folded>>,
}

/// How `execute_as` appends a command's event: with the id the caller chose (else a new
/// one), decided on the empty state without a read (`fresh`: the caller just minted the
/// aggregate's id), flushed as soon as the log can or with the next append.
#[derive(Clone, Copy)]
struct How {
    event_id: Option<Uuid>,
    fresh: bool,
    flush: Flush,
}

impl How {
    const EXISTING: How = How {
        event_id: None,
        fresh: false,
        flush: Flush::Now,
    };
    const FRESH: How = How {
        fresh: true,
        ..How::EXISTING
    };
}

/// One aggregate's state folded up to `version` (0: no events), whose last event sits at
/// `position` with `hash`.
#[derive(Clone)]
struct Folded {
    state: Arc<dyn Any + Send + Sync>,
    version: u64,
    hash: Option<String>,
    position: u64,
}

impl Folded {
    /// No events yet.
    fn empty() -> Self {
        Folded {
            state: Arc::new(()),
            version: 0,
            hash: None,
            position: 0,
        }
    }

    fn tail(&self) -> Option<(u64, String)> {
        self.hash.clone().map(|h| (self.version, h))
    }
}

impl Ledger {
    pub fn new(
        log: Arc<dyn EventLog>,
        signer: Signer,
        clock: Arc<dyn Clock>,
        metrics: Metrics,
    ) -> Self {
        Ledger {
            log,
            signer: RwLock::new(Arc::new(signer)),
            clock,
            metrics,
            tails: Mutex::new(Generations::new(CACHE_ENTRIES)),
            folded: Mutex::new(Generations::new(CACHE_ENTRIES)),
        }
    }

    pub fn log(&self) -> &Arc<dyn EventLog> {
        &self.log
    }

    /// The ledger's clock reading (what its events' `occurred_at` says now).
    pub fn now(&self) -> time::OffsetDateTime {
        self.clock.now()
    }

    pub fn signer(&self) -> Arc<Signer> {
        match self.signer.read() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// From now on sign with `next` (after its rotation event is in the log).
    pub fn replace_signer(&self, next: Signer) {
        match self.signer.write() {
            Ok(mut s) => *s = Arc::new(next),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(next),
        }
    }

    /// Runs one command against aggregate `A` identified by `(workspace, id)`.
    pub async fn execute<A: Aggregate>(
        &self,
        workspace_id: &str,
        aggregate_id: &str,
        actor: &Actor,
        command: &A::Command,
    ) -> Result<Committed, LedgerError> {
        self.execute_as::<A>(workspace_id, aggregate_id, actor, command, How::EXISTING)
            .await
    }

    /// `execute` for an event no caller waits on (a tool call's `tool.completed`, after the
    /// agent was answered): the log may flush it with the next append (`Flush::WithNext`).
    /// It is durable when this returns, as with `execute`.
    pub async fn execute_unwaited<A: Aggregate>(
        &self,
        workspace_id: &str,
        aggregate_id: &str,
        actor: &Actor,
        command: &A::Command,
    ) -> Result<Committed, LedgerError> {
        let how = How {
            flush: Flush::WithNext,
            ..How::EXISTING
        };
        self.execute_as::<A>(workspace_id, aggregate_id, actor, command, how)
            .await
    }

    /// `execute` on an aggregate whose id the caller has just generated (a fresh UUID):
    /// decided on the empty state without reading the log. Should the id exist after all,
    /// the append loses (expected version 0) and the command is decided again on the log.
    pub async fn create<A: Aggregate>(
        &self,
        workspace_id: &str,
        aggregate_id: &str,
        actor: &Actor,
        command: &A::Command,
    ) -> Result<Committed, LedgerError> {
        self.execute_as::<A>(workspace_id, aggregate_id, actor, command, How::FRESH)
            .await
    }

    /// `create` with the event id chosen by the caller: for an event whose id must be
    /// known before it is signed (a scoped token carries the id of its `token.issued`).
    /// Conflicts are re-decided like `execute`; the id is only used once it lands.
    pub async fn create_with_id<A: Aggregate>(
        &self,
        workspace_id: &str,
        aggregate_id: &str,
        actor: &Actor,
        command: &A::Command,
        event_id: Uuid,
    ) -> Result<Committed, LedgerError> {
        let how = How {
            event_id: Some(event_id),
            ..How::FRESH
        };
        self.execute_as::<A>(workspace_id, aggregate_id, actor, command, how)
            .await
    }

    /// Decides first on the cached state (no read): the append names the version that
    /// state had, so a stale cache can only lose the race, never overwrite. A refusal or a
    /// lost race is decided again on state read from the log.
    async fn execute_as<A: Aggregate>(
        &self,
        workspace_id: &str,
        aggregate_id: &str,
        actor: &Actor,
        command: &A::Command,
        how: How,
    ) -> Result<Committed, LedgerError> {
        let How {
            event_id,
            fresh,
            flush,
        } = how;
        let key = AggregateKey::new(workspace_id, A::TYPE, aggregate_id)?;
        let mut trust_cache = true;
        let mut attempt = 0;
        loop {
            let cached = match (trust_cache, fresh) {
                (false, _) => None,
                (true, false) => self.cached::<A>(&key),
                (true, true) => Some(
                    self.cached::<A>(&key)
                        .unwrap_or_else(|| (A::default(), Folded::empty())),
                ),
            };
            let from_cache = cached.is_some();
            let (state, folded) = match cached {
                Some(c) => c,
                None => self.load_key::<A>(&key).await?,
            };
            trust_cache = false;
            let event = match state.decide(command) {
                Ok(event) => event,
                Err(_) if from_cache => continue,
                Err(e) => return Err(e.into()),
            };
            let id = event_id.unwrap_or_else(Uuid::now_v7);
            match self
                .append_after_as(&key, folded.tail(), actor, &event, id, flush)
                .await
            {
                Ok((committed, hash)) => {
                    let mut next = state;
                    next.apply(&committed.event);
                    self.remember(
                        &key,
                        Folded {
                            state: Arc::new(next),
                            version: committed.version,
                            hash: Some(hash),
                            position: committed.position,
                        },
                    );
                    return Ok(committed);
                }
                Err(LedgerError::Log(LogError::Conflict { .. })) => {
                    // The next read picks up only what the cache misses.
                    if from_cache {
                        continue;
                    }
                    attempt += 1;
                    if attempt >= MAX_ATTEMPTS {
                        return Err(LedgerError::Contended(MAX_ATTEMPTS, key));
                    }
                    conflict_backoff(attempt - 1).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The current state of aggregate `A` identified by `(workspace, id)`, folded from the log.
    pub async fn load<A: Aggregate>(
        &self,
        workspace_id: &str,
        aggregate_id: &str,
    ) -> Result<A, LedgerError> {
        let key = AggregateKey::new(workspace_id, A::TYPE, aggregate_id)?;
        Ok(self.load_key::<A>(&key).await?.0)
    }

    /// The state of aggregate `A` as it was at `as_of`: its events up to that time, folded.
    /// Returns the state and the version it had then (0: it did not exist yet).
    pub async fn load_as_of<A: Aggregate>(
        &self,
        workspace_id: &str,
        aggregate_id: &str,
        as_of: time::OffsetDateTime,
    ) -> Result<(A, u64), LedgerError> {
        let key = AggregateKey::new(workspace_id, A::TYPE, aggregate_id)?;
        let mut state = A::default();
        let mut version = 0;
        for r in self.log.read_aggregate(&key).await? {
            let corrupt = |reason: String| LedgerError::Corrupt {
                position: r.position,
                reason,
            };
            let opened = open_envelope(&r.envelope).map_err(|e| corrupt(e.to_string()))?;
            if opened.body.occurred_at > as_of {
                break;
            }
            let event = Event::from_parts(&opened.body.kind, &opened.body.payload)
                .map_err(|e| corrupt(e.to_string()))?;
            state.apply(&event);
            version = opened.body.aggregate_version;
        }
        Ok((state, version))
    }

    /// This instance's last fold of an aggregate, unchecked: for facts that never change
    /// once written (which auth config a connection belongs to), never for decisions.
    pub fn peek<A: Aggregate>(&self, workspace_id: &str, aggregate_id: &str) -> Option<A> {
        let key = AggregateKey::new(workspace_id, A::TYPE, aggregate_id).ok()?;
        self.cached::<A>(&key).map(|(state, _)| state)
    }

    /// The cached state of an aggregate, unchecked (for deciding: the append checks it).
    fn cached<A: Aggregate>(&self, key: &AggregateKey) -> Option<(A, Folded)> {
        let folded = self.folded.lock().ok()?.get(key)?;
        let state = folded.state.downcast_ref::<A>()?.clone();
        Some((state, folded))
    }

    fn remember(&self, key: &AggregateKey, folded: Folded) {
        if let Ok(mut f) = self.folded.lock() {
            let newer = f.peek(key).is_none_or(|old| old.version <= folded.version);
            if newer {
                f.insert(key.clone(), folded);
            }
        }
    }

    /// The aggregate's state as the log holds it now: the cached fold plus whatever the
    /// log has after it (usually nothing: one small read), or a full fold on a miss or
    /// when what follows does not chain onto the cached tail.
    async fn load_key<A: Aggregate>(&self, key: &AggregateKey) -> Result<(A, Folded), LedgerError> {
        if let Some((state, folded)) = self.cached::<A>(key) {
            let after = self
                .log
                .read_aggregate_after(key, folded.version, folded.position)
                .await?;
            if after.is_empty() {
                return Ok((state, folded));
            }
            if let Some(next) = fold_onto::<A>(state, folded, &after, true)? {
                self.remember(key, next.1.clone());
                return Ok(next);
            }
        }
        let events = self.log.read_aggregate(key).await?;
        let empty = Folded::empty();
        // A full fold takes the log as it is (`verify` is what judges its chain).
        let Some((state, folded)) = fold_onto::<A>(A::default(), empty, &events, false)? else {
            return Err(LedgerError::Corrupt {
                position: events.first().map_or(0, |r| r.position),
                reason: format!("the events of {key} could not be folded"),
            });
        };
        self.remember(key, folded.clone());
        Ok((state, folded))
    }

    /// Appends the first event of an aggregate whose id the caller has just generated (a
    /// record of something that happened: an audit query, a denial): no read, and nothing
    /// cached, as nothing follows it. Should the id exist after all, the append loses
    /// (expected version 0) and goes on as `append_next`.
    pub async fn append_first(
        &self,
        key: &AggregateKey,
        actor: &Actor,
        event: &Event,
    ) -> Result<Committed, LedgerError> {
        match self
            .append_after_as(key, None, actor, event, Uuid::now_v7(), Flush::Now)
            .await
        {
            Err(LedgerError::Log(LogError::Conflict { .. })) => {
                self.append_next(key, actor, event).await
            }
            other => other.map(|(committed, _)| committed),
        }
    }

    /// Appends an event that needs no decision over prior state (a record of something that
    /// happened), chaining it to the aggregate's tail. Uses this instance's cached tail (of
    /// its own last `append_next` there) and re-reads it only after a conflict.
    pub async fn append_next(
        &self,
        key: &AggregateKey,
        actor: &Actor,
        event: &Event,
    ) -> Result<Committed, LedgerError> {
        for attempt in 0..MAX_ATTEMPTS {
            let cached = self.tails.lock().ok().and_then(|mut t| t.get(key));
            let tail = match cached {
                Some(t) => Some(t),
                None => match self.log.last_of_aggregate(key).await? {
                    Some(r) => {
                        let o = open_envelope(&r.envelope).map_err(|e| LedgerError::Corrupt {
                            position: r.position,
                            reason: e.to_string(),
                        })?;
                        Some((o.body.aggregate_version, o.hash))
                    }
                    None => None,
                },
            };
            match self
                .append_after_as(key, tail, actor, event, Uuid::now_v7(), Flush::Now)
                .await
            {
                Ok((committed, hash)) => {
                    if let Ok(mut t) = self.tails.lock() {
                        t.insert(key.clone(), (committed.version, hash));
                    }
                    return Ok(committed);
                }
                Err(LedgerError::Log(LogError::Conflict { .. })) => {
                    if let Ok(mut t) = self.tails.lock() {
                        t.remove(key);
                    }
                    conflict_backoff(attempt).await;
                }
                Err(e) => return Err(e),
            }
        }
        Err(LedgerError::Contended(MAX_ATTEMPTS, key.clone()))
    }

    /// Builds, signs and appends the next event after `tail` (version, hash), with the
    /// event id `event_id`; the new tail's hash comes back with what was committed.
    async fn append_after_as(
        &self,
        key: &AggregateKey,
        tail: Option<(u64, String)>,
        actor: &Actor,
        event: &Event,
        event_id: Uuid,
        flush: Flush,
    ) -> Result<(Committed, String), LedgerError> {
        let (expected, prev_hash) = match tail {
            Some((v, h)) => (v, Some(h)),
            None => (0, None),
        };
        let signer = self.signer();
        let occurred_at = self.clock.now();
        let (mut signed, hash, body) = seal_event_as(
            &signer,
            key,
            (expected, prev_hash),
            actor,
            event,
            occurred_at,
            event_id,
        )?;
        if self.log.hands_on_sealed() {
            signed.sealed = sealed(body, event, &hash);
        }
        let event_id = signed.event_id;
        let started = Instant::now();
        let mut result = self.log.append_with(&signed, expected, flush).await;
        // An unconfirmed append may have landed: retrying the same signed event is
        // deduplicated by its id, so a bounded retry is safe and never doubles it. A full
        // disk may give back a few pages (a checkpointed WAL) within the same bound.
        for backoff_ms in [100u64, 400, 1600] {
            if !matches!(
                result,
                Err(LogError::Unavailable(_) | LogError::DiskFull(_))
            ) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(backoff_ms)).await;
            result = self.log.append_with(&signed, expected, flush).await;
        }
        // What a caller waits for: an unwaited append's time includes its hold.
        if flush == Flush::Now {
            self.metrics
                .append_seconds
                .observe(started.elapsed().as_secs_f64());
        }
        let label = match &result {
            Ok(a) if a.duplicate => "duplicate",
            Ok(_) => "ok",
            Err(LogError::Conflict { .. }) => "conflict",
            Err(_) => "error",
        };
        self.metrics
            .appends
            .get_or_create(&ResultLabel { result: label })
            .inc();
        match result {
            Ok(appended) => Ok((
                Committed {
                    position: appended.position,
                    version: expected + 1,
                    event_id,
                    event: event.clone(),
                    occurred_at,
                    duplicate: appended.duplicate,
                },
                hash,
            )),
            Err(e) => {
                if matches!(e, LogError::Conflict { .. }) {
                    self.metrics.conflicts.inc();
                }
                Err(e.into())
            }
        }
    }
}

/// Folds `events` (in version order) onto `state` at `folded`. With `chained`, `None` when
/// they do not continue it: a version gap or a `prev_hash` that is not the folded tail's.
fn fold_onto<A: Aggregate>(
    mut state: A,
    mut folded: Folded,
    events: &[super::log::RecordedEvent],
    chained: bool,
) -> Result<Option<(A, Folded)>, LedgerError> {
    for r in events {
        let corrupt = |reason: String| LedgerError::Corrupt {
            position: r.position,
            reason,
        };
        let opened = open_envelope(&r.envelope).map_err(|e| corrupt(e.to_string()))?;
        if chained
            && (opened.body.aggregate_version != folded.version + 1
                || opened.body.prev_hash != folded.hash)
        {
            return Ok(None);
        }
        let event = Event::from_parts(&opened.body.kind, &opened.body.payload)
            .map_err(|e| corrupt(e.to_string()))?;
        state.apply(&event);
        folded.version = opened.body.aggregate_version;
        folded.hash = Some(opened.hash);
        folded.position = r.position;
    }
    let shared: Arc<dyn Any + Send + Sync> = Arc::new(state.clone());
    folded.state = shared;
    Ok(Some((state, folded)))
}

/// Jittered exponential backoff after losing a version race, so that writers contending
/// for one aggregate spread out instead of colliding again in lockstep.
async fn conflict_backoff(attempt: usize) {
    use rand::Rng as _;
    let cap_us = 200u64 << attempt.min(8);
    let wait = rand::thread_rng().gen_range(0..=cap_us);
    tokio::time::sleep(std::time::Duration::from_micros(wait)).await;
}

/// Builds and signs the event that follows version `expected` (whose hash is `prev_hash`)
/// of aggregate `key`. Returns the event ready to append and its hash.
pub fn seal_event(
    signer: &Signer,
    key: &AggregateKey,
    expected: u64,
    prev_hash: Option<String>,
    actor: &Actor,
    event: &Event,
    occurred_at: time::OffsetDateTime,
) -> Result<(SignedEvent, String), LedgerError> {
    let (signed, hash, _) = seal_event_as(
        signer,
        key,
        (expected, prev_hash),
        actor,
        event,
        occurred_at,
        Uuid::now_v7(),
    )?;
    Ok((signed, hash))
}

/// `seal_event` with a given event id; also gives back the body it signed.
fn seal_event_as(
    signer: &Signer,
    key: &AggregateKey,
    (expected, prev_hash): (u64, Option<String>),
    actor: &Actor,
    event: &Event,
    occurred_at: time::OffsetDateTime,
    event_id: Uuid,
) -> Result<(SignedEvent, String, EventBody), LedgerError> {
    let (kind, payload) = event.to_parts()?;
    let body = EventBody {
        event_id,
        workspace_id: key.workspace_id.clone(),
        aggregate_type: key.aggregate_type.clone(),
        aggregate_id: key.aggregate_id.clone(),
        aggregate_version: expected + 1,
        kind,
        schema_version: event.schema_version(),
        occurred_at,
        actor: actor.clone(),
        payload,
        prev_hash,
        key_id: signer.key_id().to_string(),
        trace_id: crate::telemetry::current_trace_id(),
    };
    let body_bytes =
        serde_json::to_vec(&body).map_err(|e| EnvelopeError::Malformed(e.to_string()))?;
    let envelope = signer.seal(&body_bytes)?;
    let hash = super::envelope::event_hash(&envelope);
    Ok((
        SignedEvent {
            key: key.clone(),
            version: expected + 1,
            event_id,
            envelope,
            sealed: InProcess::default(),
        },
        hash,
        body,
    ))
}

/// What was sealed, for a log that hands it to this process's projector.
fn sealed(mut body: EventBody, event: &Event, hash: &str) -> InProcess {
    body.payload = serde_json::Value::Null;
    InProcess(Some(Arc::new(Sealed {
        body,
        event: event.clone(),
        hash: hash.to_string(),
    })))
}

//! The `EventLog` trait: the only source of truth. Two backends implement it
//! (`sqlite_log` embedded, `jetstream_log` at scale) and pass one conformance suite.

use std::sync::Arc;

use bytes::Bytes;
use futures::stream::BoxStream;
use uuid::Uuid;

use super::envelope::{AggregateKey, EventBody};
use crate::domain::Event;

/// A signed event ready to append: the envelope bytes plus the facts the log indexes by.
/// Built only by `Ledger` (which signs and chains) or by tests.
#[derive(Debug, Clone)]
pub struct SignedEvent {
    pub key: AggregateKey,
    pub version: u64,
    pub event_id: Uuid,
    pub envelope: Bytes,
    /// What was sealed, as this process built it.
    pub sealed: InProcess,
}

/// An event as this process's `Ledger` sealed it: its body (without the payload, which
/// `event` is) and its envelope's hash. It goes with the event to this process's projector,
/// which then need not parse back the bytes it was just handed (a debug build checks that
/// both give the same plan).
#[derive(Debug)]
pub struct Sealed {
    pub body: EventBody,
    pub event: Event,
    pub hash: String,
}

/// `Sealed` beside an event in this process, never part of what the event is: events
/// compare by what the log holds, and one read back from the log has none.
#[derive(Clone, Default)]
pub struct InProcess(pub Option<Arc<Sealed>>);

impl std::fmt::Debug for InProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "sealed here"
        } else {
            "read back"
        })
    }
}

impl PartialEq for InProcess {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for InProcess {}

/// An event as the log holds it: its global position and the envelope bytes verbatim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedEvent {
    /// Global position, 1-based, strictly increasing (the JetStream stream sequence or the
    /// SQLite row id).
    pub position: u64,
    /// Where the log filed the event (the subject / the indexed columns). A verifier
    /// checks it against what the signed body says.
    pub key: AggregateKey,
    /// The version the log indexed the event under, where the backend keeps one (SQLite);
    /// JetStream indexes by subject only.
    pub version: Option<u64>,
    pub envelope: Bytes,
    /// What was sealed, when this process appended it (the embedded log hands it on).
    pub sealed: InProcess,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub position: u64,
    /// True when this event id was already in the log (a retry after a lost ack).
    pub duplicate: bool,
}

/// How soon an append must be durable. Either way it is durable before the append returns
/// and before any reader sees it; the difference is whether it may wait for company.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flush {
    /// Flushed as soon as the log can (with whatever is waiting beside it): a caller waits.
    Now,
    /// No caller waits on it (a tool call's `tool.completed`, appended after the agent was
    /// answered): a log may hold it briefly and flush it with the next `Now` append, one
    /// flush for both.
    WithNext,
}

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// Someone else appended first: reload the aggregate and decide again.
    #[error("version conflict on {key}: expected version {expected}, log is at {actual}")]
    Conflict {
        key: AggregateKey,
        expected: u64,
        actual: u64,
    },
    #[error("event {0} is already in the log with different content")]
    EventIdReused(Uuid),
    #[error("invalid append: {0}")]
    Invalid(String),
    /// The log could not be reached or did not confirm in time. The append may or may not
    /// have happened: retrying with the same signed event is safe (deduplicated by id).
    #[error("event log unavailable: {0}")]
    Unavailable(String),
    /// The log's disk is full: the append failed whole (nothing was appended); appends keep
    /// failing until space is freed.
    #[error("the event log's disk is full: {0}")]
    DiskFull(String),
    #[error("event log misconfigured: {0}")]
    Misconfigured(String),
    #[error("event log error: {0}")]
    Backend(String),
}

pub type EventStream = BoxStream<'static, Result<RecordedEvent, LogError>>;

/// A reader through a range of the log (`EventLog::read_range`).
#[async_trait::async_trait]
pub trait RangeReader: Send {
    /// The next events of the range in order, at most `page`; empty once the range (or
    /// the log) has ended.
    async fn next_page(&mut self, page: usize) -> Result<Vec<RecordedEvent>, LogError>;
}

/// `read_range` by pages of `read_from`.
struct PagedRange<'a, L: ?Sized> {
    log: &'a L,
    next: u64,
    until: u64,
}

#[async_trait::async_trait]
impl<L: EventLog + ?Sized> RangeReader for PagedRange<'_, L> {
    async fn next_page(&mut self, page: usize) -> Result<Vec<RecordedEvent>, LogError> {
        if self.next > self.until || page == 0 {
            return Ok(Vec::new());
        }
        let left = usize::try_from(self.until - self.next + 1).unwrap_or(usize::MAX);
        let mut events = self.log.read_from(self.next, page.min(left)).await?;
        events.retain(|e| e.position <= self.until);
        self.next = events.last().map_or(self.until + 1, |e| e.position + 1);
        Ok(events)
    }
}

#[async_trait::async_trait]
pub trait EventLog: Send + Sync + 'static {
    /// Appends one event to its aggregate if the aggregate is at `expected_version`
    /// (0 = new aggregate). `event.version` must be `expected_version + 1`.
    /// Exactly once by event id: appending the same signed event again returns its
    /// original position with `duplicate = true`.
    async fn append(
        &self,
        event: &SignedEvent,
        expected_version: u64,
    ) -> Result<Appended, LogError>;

    /// `append`, saying how soon it must be flushed. A log with nothing to gain from
    /// holding an append (JetStream acknowledges each publish on its own) appends at once.
    async fn append_with(
        &self,
        event: &SignedEvent,
        expected_version: u64,
        flush: Flush,
    ) -> Result<Appended, LogError> {
        let _ = flush;
        self.append(event, expected_version).await
    }

    /// Every event of one aggregate, in version order.
    async fn read_aggregate(&self, key: &AggregateKey) -> Result<Vec<RecordedEvent>, LogError>;

    /// The events of one aggregate after version `after_version`, in version order.
    /// `after_position` is where the event at that version sits (0 when `after_version`
    /// is 0): a backend may start there. Usually empty: it is how a cached fold is checked.
    async fn read_aggregate_after(
        &self,
        key: &AggregateKey,
        after_version: u64,
        after_position: u64,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        let _ = after_position;
        let all = self.read_aggregate(key).await?;
        Ok(all
            .into_iter()
            .skip(usize::try_from(after_version).unwrap_or(usize::MAX))
            .collect())
    }

    /// The last event of one aggregate, if any.
    async fn last_of_aggregate(
        &self,
        key: &AggregateKey,
    ) -> Result<Option<RecordedEvent>, LogError>;

    /// Up to `limit` events with position >= `from`, in global order.
    async fn read_from(&self, from: u64, limit: usize) -> Result<Vec<RecordedEvent>, LogError>;

    /// Events from position `from` on: first those already written, then new ones as they
    /// are appended. Ends only on error.
    async fn subscribe(&self, from: u64) -> Result<EventStream, LogError>;

    /// A reader through the events at positions `from..=until`, page by page, for a reader
    /// that goes through a long stretch (a rebuild). Pages of `read_from` unless a backend
    /// has a cheaper way to stream a range.
    async fn read_range(
        &self,
        from: u64,
        until: u64,
    ) -> Result<Box<dyn RangeReader + '_>, LogError> {
        Ok(Box::new(PagedRange {
            log: self,
            next: from.max(1),
            until,
        }))
    }

    /// The position of the last event (0 when empty).
    async fn head(&self) -> Result<u64, LogError>;

    /// A short human name for logs and readiness output.
    fn describe(&self) -> String;

    /// Whether this process's subscribers get an append's `Sealed` with it (the embedded
    /// log hands it on); the `Ledger` builds one only then.
    fn hands_on_sealed(&self) -> bool {
        false
    }
}

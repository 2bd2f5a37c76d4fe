//! JetStream event log: one stream, one subject per aggregate
//! (`<prefix>.<workspace>.<aggregate_type>.<aggregate_id>`), file storage, no limits,
//! `deny_delete` + `deny_purge`, an explicit duplicate window.
//!
//! Concurrency: `Nats-Expected-Last-Subject-Sequence` carries the *stream* sequence of the
//! aggregate's last message (cached per subject, re-read on a miss or conflict).
//! Exactly once: `Nats-Msg-Id` = event id inside the duplicate window; outside it, a
//! conflict whose winning event has our id and bytes is reported as a duplicate.

use std::sync::Mutex;
use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use futures::StreamExt;

use super::envelope::{open_envelope, AggregateKey};
use super::generations::Generations;
use super::log::{
    Appended, EventLog, EventStream, LogError, RangeReader, RecordedEvent, SignedEvent,
};

/// Oldest server the ledger runs on.
pub const MIN_SERVER: (u64, u64) = (2, 10);
/// Events of one aggregate read with direct gets before switching to a consumer.
const DIRECT_READS: usize = 32;
/// Aggregate tails kept per generation (see `tails`).
const TAILS_PER_GENERATION: usize = 16_384;

#[derive(Debug, Clone)]
pub struct JetStreamOptions {
    pub url: String,
    pub stream: String,
    pub subject_prefix: String,
    pub replicas: usize,
    pub duplicate_window: Duration,
    /// How long an append waits for the server's acknowledgement.
    pub ack_timeout: Duration,
}

impl JetStreamOptions {
    pub fn new(url: impl Into<String>) -> Self {
        JetStreamOptions {
            url: url.into(),
            stream: "AUTHLEDGER".into(),
            subject_prefix: "ledger".into(),
            replicas: 1,
            duplicate_window: Duration::from_secs(120),
            ack_timeout: Duration::from_secs(5),
        }
    }
}

/// What the ledger needs from the stream it writes to. Returns every shortfall, empty when
/// the stream is fit for a ledger.
pub fn stream_problems(config: &stream::Config, opts: &JetStreamOptions) -> Vec<String> {
    let mut problems = Vec::new();
    let wanted = format!("{}.>", opts.subject_prefix);
    if !config.subjects.contains(&wanted) {
        problems.push(format!(
            "stream subjects {:?} do not include {wanted}",
            config.subjects
        ));
    }
    if config.storage != stream::StorageType::File {
        problems.push("storage is not file".into());
    }
    if !config.deny_delete {
        problems.push("deny_delete is off (events could be deleted)".into());
    }
    if !config.deny_purge {
        problems.push("deny_purge is off (events could be purged)".into());
    }
    if config.allow_rollup {
        problems.push("allow_rollup is on (a rollup header would purge an aggregate)".into());
    }
    if config.max_messages > 0 || config.max_bytes > 0 || config.max_messages_per_subject > 0 {
        problems.push("stream has message or byte limits (old events would be discarded)".into());
    }
    if !config.max_age.is_zero() {
        problems.push("stream has a max_age (old events would expire)".into());
    }
    if config.retention != stream::RetentionPolicy::Limits {
        problems.push("retention is not limits (events would be removed once consumed)".into());
    }
    if config.duplicate_window.is_zero() {
        problems.push("duplicate_window is zero (retries could duplicate events)".into());
    }
    if config.sealed {
        problems.push("stream is sealed (no appends possible)".into());
    }
    if config.persist_mode == Some(stream::PersistenceMode::Async) {
        problems.push("persist_mode is async (acknowledged before stored)".into());
    }
    if config.allow_message_ttl {
        problems.push("per-message TTL is allowed (events could expire)".into());
    }
    problems
}

/// The URL without credentials (`nats://user:pass@host` -> `nats://***@host`), for logs
/// and error messages.
/// A comma-separated list of servers is redacted server by server.
pub fn redact_url(url: &str) -> String {
    url.split(',')
        .map(|url| match (url.find("://"), url.rfind('@')) {
            (Some(scheme), Some(at)) if at > scheme => {
                format!("{}***{}", &url[..scheme + 3], &url[at..])
            }
            (None, Some(at)) => format!("***{}", &url[at..]),
            _ => url.to_string(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The servers of `--nats-url`: one URL or the standard comma-separated list. Any one that
/// answers is enough to start: the client learns the rest of the cluster from it and fails
/// over between them.
pub fn server_addrs(urls: &str) -> Result<Vec<async_nats::ServerAddr>, LogError> {
    urls.split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(|u| {
            u.parse::<async_nats::ServerAddr>().map_err(|e| {
                LogError::Misconfigured(format!("invalid NATS URL {}: {e}", redact_url(u)))
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .and_then(|addrs| {
            if addrs.is_empty() {
                Err(LogError::Misconfigured("no NATS URL given".into()))
            } else {
                Ok(addrs)
            }
        })
}

pub fn parse_server_version(v: &str) -> Option<(u64, u64, u64)> {
    let core = v.trim_start_matches('v').split(['-', '+']).next()?;
    let mut parts = core.split('.').map(|p| p.parse::<u64>().ok());
    Some((
        parts.next()??,
        parts.next()??,
        parts.next().flatten().unwrap_or(0),
    ))
}

pub struct JetStreamEventLog {
    opts: JetStreamOptions,
    client: async_nats::Client,
    js: jetstream::Context,
    stream: stream::Stream,
    /// subject -> (aggregate version, stream sequence) of the aggregate's last event.
    /// Bounded by generations: a miss costs one direct read, and most aggregates are
    /// written once (a token, a tool call), so those in use keep their place.
    tails: Mutex<Generations<String, (u64, u64)>>,
    parser: SubjectParser,
    /// Problems of the stream config found at open (empty for a writable log).
    pub warnings: Vec<String>,
}

fn unavailable(e: impl std::fmt::Display) -> LogError {
    LogError::Unavailable(e.to_string())
}

impl JetStreamEventLog {
    /// Opens the log for writing: creates the stream when missing, and refuses a server or
    /// stream that cannot keep the ledger's promises.
    pub async fn open(opts: JetStreamOptions) -> Result<Self, LogError> {
        let log = Self::connect(opts, true).await?;
        if !log.warnings.is_empty() {
            return Err(LogError::Misconfigured(format!(
                "stream {} is not fit for a ledger: {}",
                log.opts.stream,
                log.warnings.join("; ")
            )));
        }
        Ok(log)
    }

    /// Opens an existing stream for reading (verify, replay): never creates it, and keeps
    /// config shortfalls as warnings so an auditor can still inspect what is there.
    pub async fn open_read_only(opts: JetStreamOptions) -> Result<Self, LogError> {
        Self::connect(opts, false).await
    }

    async fn connect(opts: JetStreamOptions, create: bool) -> Result<Self, LogError> {
        let servers = server_addrs(&opts.url)?;
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(5))
            .name("authledger")
            .connect(servers)
            .await
            .map_err(|e| {
                LogError::Misconfigured(format!(
                    "cannot connect to NATS at {}: {e}",
                    redact_url(&opts.url)
                ))
            })?;
        let version = client.server_info().version;
        match parse_server_version(&version) {
            Some((major, minor, _)) if (major, minor) >= MIN_SERVER => {}
            _ => {
                return Err(LogError::Misconfigured(format!(
                    "NATS server {version} at {} is too old: the ledger needs {}.{} or newer",
                    redact_url(&opts.url),
                    MIN_SERVER.0,
                    MIN_SERVER.1
                )))
            }
        }
        let mut js = jetstream::new(client.clone());
        js.set_timeout(opts.ack_timeout);
        let stream = match js.get_stream(&opts.stream).await {
            Ok(s) => s,
            Err(e) => {
                let not_found = matches!(e.kind(), jetstream::context::GetStreamErrorKind::JetStream(ref je)
                    if je.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND);
                if not_found && create {
                    js.create_stream(Self::stream_config(&opts))
                        .await
                        .map_err(|e| {
                            LogError::Misconfigured(format!(
                                "cannot create stream {}: {e}",
                                opts.stream
                            ))
                        })?
                } else if not_found {
                    return Err(LogError::Misconfigured(format!(
                        "stream {} does not exist at {}",
                        opts.stream,
                        redact_url(&opts.url)
                    )));
                } else {
                    return Err(LogError::Misconfigured(format!(
                        "cannot open stream {}: {e}",
                        opts.stream
                    )));
                }
            }
        };
        let warnings = stream_problems(&stream.cached_info().config, &opts);
        let parser = SubjectParser {
            prefix: opts.subject_prefix.clone(),
        };
        Ok(JetStreamEventLog {
            opts,
            client,
            js,
            stream,
            tails: Mutex::new(Generations::new(TAILS_PER_GENERATION)),
            parser,
            warnings,
        })
    }

    pub fn stream_config(opts: &JetStreamOptions) -> stream::Config {
        stream::Config {
            name: opts.stream.clone(),
            description: Some("authledger signed event log".into()),
            subjects: vec![format!("{}.>", opts.subject_prefix)],
            storage: stream::StorageType::File,
            retention: stream::RetentionPolicy::Limits,
            num_replicas: opts.replicas,
            max_messages: -1,
            max_bytes: -1,
            max_messages_per_subject: -1,
            max_age: Duration::ZERO,
            max_message_size: -1,
            duplicate_window: opts.duplicate_window,
            deny_delete: true,
            deny_purge: true,
            allow_rollup: false,
            allow_direct: true,
            ..Default::default()
        }
    }

    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    fn subject(&self, key: &AggregateKey) -> String {
        key.subject(&self.opts.subject_prefix)
    }

    fn record(
        &self,
        subject: &str,
        position: u64,
        payload: bytes::Bytes,
    ) -> Result<RecordedEvent, LogError> {
        Ok(RecordedEvent {
            position,
            key: self.parser.key(subject)?,
            version: None,
            envelope: payload,
            sealed: Default::default(),
        })
    }

    /// (version, stream sequence) of the aggregate's last event, read from the server.
    async fn fetch_tail(&self, subject: &str) -> Result<(u64, u64), LogError> {
        match self.stream.get_last_raw_message_by_subject(subject).await {
            Ok(msg) => {
                let opened = open_envelope(&msg.payload).map_err(|e| {
                    LogError::Backend(format!(
                        "last event on {subject} (seq {}) is unreadable: {e}",
                        msg.sequence
                    ))
                })?;
                let tail = (opened.body.aggregate_version, msg.sequence);
                self.remember(subject, tail);
                Ok(tail)
            }
            Err(e) if e.kind() == stream::LastRawMessageErrorKind::NoMessageFound => Ok((0, 0)),
            Err(e) => Err(unavailable(e)),
        }
    }

    fn cached_tail(&self, subject: &str) -> Option<(u64, u64)> {
        self.tails.lock().ok().and_then(|mut t| t.get(subject))
    }

    fn remember(&self, subject: &str, tail: (u64, u64)) {
        if let Ok(mut t) = self.tails.lock() {
            t.insert(subject.to_string(), tail);
        }
    }

    fn forget(&self, subject: &str) {
        if let Ok(mut t) = self.tails.lock() {
            t.remove(subject);
        }
    }

    /// The expected version did not match: is it because this very event already won?
    async fn conflict_or_duplicate(
        &self,
        event: &SignedEvent,
        expected: u64,
    ) -> Result<Appended, LogError> {
        let events = self.read_aggregate(&event.key).await?;
        let actual = events.len() as u64;
        if let Some(winner) = events.get(expected as usize) {
            if winner.envelope == event.envelope {
                return Ok(Appended {
                    position: winner.position,
                    duplicate: true,
                });
            }
        }
        Err(LogError::Conflict {
            key: event.key.clone(),
            expected,
            actual,
        })
    }

    /// An ordered consumer from `start`, its name, and how many matching messages it has
    /// pending.
    async fn ordered_consumer(
        &self,
        filter_subject: String,
        start: u64,
    ) -> Result<(consumer::pull::Ordered, String, u64), LogError> {
        let consumer = self
            .stream
            .create_consumer(consumer::pull::OrderedConfig {
                filter_subject,
                deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                    start_sequence: start.max(1),
                },
                ..Default::default()
            })
            .await
            .map_err(unavailable)?;
        let pending = consumer.cached_info().num_pending;
        let name = consumer.cached_info().name.clone();
        Ok((
            consumer.messages().await.map_err(unavailable)?,
            name,
            pending,
        ))
    }

    /// Reads from `from` up to `until` (inclusive) in order, at most `limit` events.
    /// Stops when nothing is pending, so deleted messages never leave it waiting.
    async fn read_range(
        &self,
        filter_subject: String,
        from: u64,
        until: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        let mut out = Vec::new();
        if from > until || limit == 0 {
            return Ok(out);
        }
        let (mut messages, name, pending) = self.ordered_consumer(filter_subject, from).await?;
        let result = self
            .drain_range(&mut messages, pending, (from, until), limit, &mut out)
            .await
            .map(|_| ());
        drop(messages);
        // The server keeps an idle ordered consumer for 30 s and allows 1000 per stream:
        // one per read would exhaust them under load. Best effort: it expires anyway.
        if let Err(e) = self.stream.delete_consumer(&name).await {
            tracing::debug!(error = %e, "could not delete a finished read consumer");
        }
        result.map(|()| out)
    }

    /// Reads into `out` what follows its last event (or `from`), up to `until` and at most
    /// `limit` events. Whether the range may go on after `out`.
    async fn drain_range(
        &self,
        messages: &mut consumer::pull::Ordered,
        pending: u64,
        (from, until): (u64, u64),
        limit: usize,
        out: &mut Vec<RecordedEvent>,
    ) -> Result<Drained, LogError> {
        if pending == 0 {
            return Ok(Drained::RangeEnded);
        }
        while let Some(msg) = tokio::time::timeout(self.opts.ack_timeout, messages.next())
            .await
            .map_err(|_| unavailable("timed out reading the stream"))?
        {
            let msg = msg.map_err(unavailable)?;
            let info = msg.info().map_err(unavailable)?;
            let (seq, left) = (info.stream_sequence, info.pending);
            // After a reconnect an ordered consumer may hand out a position again: what
            // was read is skipped, never returned twice (a reader would take it for a
            // reordered log).
            if seq < out.last().map_or(from, |e| e.position + 1) {
                continue;
            }
            if seq > until {
                break;
            }
            out.push(self.record(msg.subject.as_str(), seq, msg.payload.clone())?);
            if seq >= until || left == 0 {
                break;
            }
            if out.len() >= limit {
                return Ok(Drained::Limit);
            }
        }
        Ok(Drained::RangeEnded)
    }
}

#[async_trait::async_trait]
impl EventLog for JetStreamEventLog {
    async fn append(
        &self,
        event: &SignedEvent,
        expected_version: u64,
    ) -> Result<Appended, LogError> {
        if event.version != expected_version + 1 {
            return Err(LogError::Invalid(format!(
                "event version {} does not follow expected version {expected_version}",
                event.version
            )));
        }
        let subject = self.subject(&event.key);
        let (version, seq) = match self.cached_tail(&subject) {
            Some(t) if t.0 == expected_version => t,
            // A new aggregate: the server itself checks that the subject is empty
            // (expected last subject sequence 0), no read first.
            None if expected_version == 0 => (0, 0),
            _ => self.fetch_tail(&subject).await?,
        };
        if version != expected_version {
            return self.conflict_or_duplicate(event, expected_version).await;
        }
        let publish = jetstream::message::PublishMessage::build()
            .payload(event.envelope.clone())
            .message_id(event.event_id.to_string())
            .expected_last_subject_sequence(seq);
        let ack = match self.js.send_publish(subject.clone(), publish).await {
            Ok(fut) => fut.await,
            Err(e) => Err(e),
        };
        match ack {
            Ok(ack) if ack.duplicate => {
                // The server deduplicates by Nats-Msg-Id alone: make sure the stored event
                // is this very one, not another event reusing its id.
                self.forget(&subject);
                let stored = self
                    .stream
                    .get_raw_message(ack.sequence)
                    .await
                    .map_err(unavailable)?;
                if stored.payload != event.envelope {
                    return Err(LogError::EventIdReused(event.event_id));
                }
                Ok(Appended {
                    position: ack.sequence,
                    duplicate: true,
                })
            }
            Ok(ack) => {
                self.remember(&subject, (event.version, ack.sequence));
                Ok(Appended {
                    position: ack.sequence,
                    duplicate: false,
                })
            }
            Err(e) if e.kind() == jetstream::context::PublishErrorKind::WrongLastSequence => {
                self.forget(&subject);
                self.conflict_or_duplicate(event, expected_version).await
            }
            Err(e) => {
                self.forget(&subject);
                Err(LogError::Unavailable(format!(
                    "append to {subject} not confirmed: {e}"
                )))
            }
        }
    }

    async fn read_aggregate(&self, key: &AggregateKey) -> Result<Vec<RecordedEvent>, LogError> {
        self.read_aggregate_after(key, 0, 0).await
    }

    /// One direct read of the subject's last message answers the usual case (nothing
    /// after `after_position`); otherwise reads on from there.
    async fn read_aggregate_after(
        &self,
        key: &AggregateKey,
        after_version: u64,
        after_position: u64,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        let subject = self.subject(key);
        let last = match self.stream.get_last_raw_message_by_subject(&subject).await {
            Ok(msg) if msg.sequence == after_position && after_version > 0 => return Ok(Vec::new()),
            Ok(msg) => msg.sequence,
            Err(e) if e.kind() == stream::LastRawMessageErrorKind::NoMessageFound => {
                return Ok(Vec::new())
            }
            Err(e) => return Err(unavailable(e)),
        };
        let start = if after_version > 0 && after_position < last {
            after_position + 1
        } else {
            1
        };
        // Small aggregates (most) are read with direct gets: no consumer to create and
        // delete. A replica may answer direct gets from behind the leader, so the result
        // counts only if it reaches `last`; otherwise the rest comes through a consumer.
        let mut out = Vec::new();
        let mut next = start;
        for _ in 0..DIRECT_READS {
            match self
                .stream
                .direct_get_next_for_subject(subject.as_str(), Some(next))
                .await
            {
                Ok(msg) if msg.sequence <= last => {
                    next = msg.sequence + 1;
                    let done = msg.sequence == last;
                    out.push(self.record(msg.subject.as_str(), msg.sequence, msg.payload)?);
                    if done {
                        return Ok(out);
                    }
                }
                Ok(_) => break,
                Err(e) if e.kind() == stream::DirectGetErrorKind::NotFound => break,
                Err(e) => {
                    tracing::debug!(error = %e, "direct get failed; reading through a consumer");
                    break;
                }
            }
        }
        out.extend(self.read_range(subject, next, last, usize::MAX).await?);
        Ok(out)
    }

    async fn last_of_aggregate(
        &self,
        key: &AggregateKey,
    ) -> Result<Option<RecordedEvent>, LogError> {
        let subject = self.subject(key);
        match self.stream.get_last_raw_message_by_subject(&subject).await {
            Ok(msg) => {
                // The writer reads the tail right before appending: remember it so the
                // append does not read it again.
                if let Ok(opened) = open_envelope(&msg.payload) {
                    self.remember(&subject, (opened.body.aggregate_version, msg.sequence));
                }
                Ok(Some(self.record(
                    msg.subject.as_str(),
                    msg.sequence,
                    msg.payload,
                )?))
            }
            Err(e) if e.kind() == stream::LastRawMessageErrorKind::NoMessageFound => Ok(None),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn read_from(&self, from: u64, limit: usize) -> Result<Vec<RecordedEvent>, LogError> {
        let head = self.head().await?;
        self.read_range(String::new(), from.max(1), head, limit)
            .await
    }

    async fn subscribe(&self, from: u64) -> Result<EventStream, LogError> {
        let (messages, _, _) = self.ordered_consumer(String::new(), from).await?;
        let this = self.parser.clone();
        // Positions delivered again after a reconnect are dropped (see `drain_range`).
        let mut next = from.max(1);
        Ok(messages
            .filter_map(move |m| {
                let event = (|| {
                    let msg = m.map_err(unavailable)?;
                    let seq = msg.info().map_err(unavailable)?.stream_sequence;
                    Ok(RecordedEvent {
                        position: seq,
                        key: this.key(msg.subject.as_str())?,
                        version: None,
                        envelope: msg.payload.clone(),
                        sealed: Default::default(),
                    })
                })();
                let keep = match &event {
                    Ok(e) if e.position < next => None,
                    Ok(e) => {
                        next = e.position + 1;
                        Some(event)
                    }
                    Err(_) => Some(event),
                };
                std::future::ready(keep)
            })
            .boxed())
    }

    /// One ordered consumer through the whole range (a page of `read_from` costs a stream
    /// info request and a consumer of its own).
    async fn read_range(
        &self,
        from: u64,
        until: u64,
    ) -> Result<Box<dyn RangeReader + '_>, LogError> {
        let from = from.max(1);
        if from > until {
            return Ok(Box::new(StreamedRange::ended(self)));
        }
        let (messages, name, pending) = self.ordered_consumer(String::new(), from).await?;
        Ok(Box::new(StreamedRange {
            log: self,
            consumer: Some((messages, name)),
            pending,
            next: from,
            until,
        }))
    }

    async fn head(&self) -> Result<u64, LogError> {
        let info = self.stream.get_info().await.map_err(unavailable)?;
        Ok(info.state.last_sequence)
    }

    fn describe(&self) -> String {
        format!(
            "JetStream stream {} at {}",
            self.opts.stream,
            redact_url(&self.opts.url)
        )
    }
}

/// Why `drain_range` stopped.
enum Drained {
    /// `limit` events were read: the range may go on.
    Limit,
    /// `until` was reached, or the stream had nothing after the last event read.
    RangeEnded,
}

/// `read_range` on one ordered consumer, read page by page with `drain_range`'s rules.
struct StreamedRange<'a> {
    log: &'a JetStreamEventLog,
    /// The consumer and its name; `None` once the range has ended.
    consumer: Option<(consumer::pull::Ordered, String)>,
    /// Messages the stream held from the consumer's start when it was made: none means
    /// the log ends before the range.
    pending: u64,
    next: u64,
    until: u64,
}

impl<'a> StreamedRange<'a> {
    fn ended(log: &'a JetStreamEventLog) -> StreamedRange<'a> {
        StreamedRange {
            log,
            consumer: None,
            pending: 0,
            next: 1,
            until: 0,
        }
    }

    /// Ends the range and deletes its consumer (best effort: an idle one expires anyway).
    async fn end(&mut self) {
        if let Some((messages, name)) = self.consumer.take() {
            drop(messages);
            if let Err(e) = self.log.stream.delete_consumer(&name).await {
                tracing::debug!(error = %e, "could not delete a finished range consumer");
            }
        }
    }
}

#[async_trait::async_trait]
impl RangeReader for StreamedRange<'_> {
    async fn next_page(&mut self, page: usize) -> Result<Vec<RecordedEvent>, LogError> {
        let left = self.until.saturating_sub(self.next).saturating_add(1);
        let mut out = Vec::with_capacity(page.min(usize::try_from(left).unwrap_or(page)));
        let Some((messages, _)) = self.consumer.as_mut() else {
            return Ok(out);
        };
        let read = self
            .log
            .drain_range(
                messages,
                self.pending,
                (self.next, self.until),
                page,
                &mut out,
            )
            .await;
        match (read, out.last()) {
            (Ok(Drained::Limit), Some(last)) => self.next = last.position + 1,
            (Ok(_), _) => self.end().await,
            (Err(e), _) => {
                self.end().await;
                return Err(e);
            }
        }
        Ok(out)
    }
}

#[derive(Clone)]
struct SubjectParser {
    prefix: String,
}

impl SubjectParser {
    fn key(&self, subject: &str) -> Result<AggregateKey, LogError> {
        let rest = subject
            .strip_prefix(&self.prefix)
            .and_then(|r| r.strip_prefix('.'))
            .ok_or_else(|| LogError::Backend(format!("message on unexpected subject {subject}")))?;
        let parts: Vec<&str> = rest.split('.').collect();
        match parts.as_slice() {
            [w, t, a] => AggregateKey::new(*w, *t, *a)
                .map_err(|e| LogError::Backend(format!("message on subject {subject}: {e}"))),
            _ => Err(LogError::Backend(format!(
                "message on malformed subject {subject}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_reach_messages() {
        assert_eq!(
            redact_url("nats://alice:s3cret@10.0.0.1:4222"),
            "nats://***@10.0.0.1:4222"
        );
        assert_eq!(redact_url("tok@host:4222"), "***@host:4222");
        assert_eq!(redact_url("nats://127.0.0.1:4222"), "nats://127.0.0.1:4222");
        assert_eq!(
            redact_url("nats://a:b@h1:4222,nats://h2:4222"),
            "nats://***@h1:4222,nats://h2:4222"
        );
    }

    #[test]
    fn a_server_list_is_accepted() {
        let addrs = server_addrs("nats://127.0.0.1:4222, nats://127.0.0.1:4223,").ok();
        assert_eq!(addrs.map(|a| a.len()), Some(2));
        assert!(server_addrs("").is_err());
        assert!(server_addrs("nats://127.0.0.1:4222,::bad url::").is_err());
    }

    #[test]
    fn server_versions() {
        assert_eq!(parse_server_version("2.15.1"), Some((2, 15, 1)));
        assert_eq!(parse_server_version("v2.10.0-beta.1"), Some((2, 10, 0)));
        assert_eq!(parse_server_version("2.9"), Some((2, 9, 0)));
        assert_eq!(parse_server_version("garbage"), None);
    }

    #[test]
    fn the_stream_we_create_has_no_problems_and_a_bare_one_has_all() {
        let opts = JetStreamOptions::new("nats://127.0.0.1:4222");
        assert!(stream_problems(&JetStreamEventLog::stream_config(&opts), &opts).is_empty());
        let bare = stream::Config {
            name: "X".into(),
            ..Default::default()
        };
        let problems = stream_problems(&bare, &opts).join("\n");
        for word in ["deny_delete", "deny_purge", "duplicate_window", "subjects"] {
            assert!(problems.contains(word), "{problems}");
        }
    }
}

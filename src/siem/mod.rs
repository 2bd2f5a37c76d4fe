//! The SIEM feed's syslog sink: every workspace's audit events pushed to a syslog daemon
//! as RFC 5424 messages ([`rfc5424`]) over TCP or TLS ([`transport`]), configured per
//! deployment (`serve --syslog-url …`).
//!
//! Driven from the log like webhook delivery: the sink has a durable cursor (a log
//! position, in `siem_cursors` beside the projections; `replay` keeps it) and sends the
//! audit view's events after it, in log order, in batches on one connection; the cursor
//! moves once a batch is written. With several instances, one holds the sink's lease (a
//! conditional `UPDATE`, renewed every round) and sends: one connection at a time, so the
//! daemon receives the events in log order. An instance that stops lets the lease go; one
//! that dies leaves it to run out ([`LEASE`]) and the next holder sends from the cursor.
//!
//! Delivery is at least once: a batch whose write failed is sent again on the next
//! connection. Plain TCP syslog has no acknowledgement: the sink notices a daemon that
//! closed its end before it writes (the connection's reader), and a new connection's
//! first batch counts only if the daemon keeps the connection open a moment after it
//! (`transport::SETTLE`: a daemon refusing the client after the TLS 1.3 handshake); but a
//! daemon that dies with messages still in its socket buffer loses them (RFC 6587 §4;
//! RELP is the protocol that acknowledges). A daemon that is down is tried again with exponential backoff
//! (250 ms doubling to 20 s, with jitter); nothing moves the cursor meanwhile, so nothing
//! is skipped. Failures are counted (`syslog_failures` by stage), logged (the first of a
//! run, then every tenth), and kept on the cursor row (count, since when, last error);
//! `syslog_lag_events` says how far behind the log head the sink is.

pub mod rfc5424;
pub mod transport;

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng as _;
use tokio::sync::watch;
use tokio_rustls::rustls::ClientConfig;

use crate::app::AppState;
use crate::projector::store::reads::{Lease, SiemCursorRow};
use crate::projector::store::AuditEventRow;
use rfc5424::Origin;
use transport::{Connection, Destination, Failure};

/// The sink's name in `siem_cursors` (one syslog sink per deployment).
pub const SINK: &str = "syslog";
/// How often the sink looks for new events.
pub const TICK: Duration = Duration::from_millis(250);
/// How long the sink's lease lasts without renewal (renewed every round that sends, and
/// every `LEASE / 3` while it waits to try again).
pub const LEASE: Duration = Duration::from_secs(30);
/// Events per batch (one write).
const BATCH: i64 = 200;
/// The pause after a round that failed (the projections unreachable).
const AFTER_ERROR: Duration = Duration::from_secs(2);
/// The first retry's delay and the longest.
const RETRY_FIRST: Duration = Duration::from_millis(250);
const RETRY_MAX: Duration = Duration::from_secs(20);
/// The error text kept on the cursor, at most.
const MAX_ERROR: usize = 300;

#[derive(Debug, thiserror::Error)]
pub enum SiemError {
    #[error(transparent)]
    Projection(#[from] crate::projector::ProjectionError),
    #[error(transparent)]
    Log(#[from] crate::ledger::LogError),
    /// A setting that cannot work (the message names the flag).
    #[error("{0}")]
    Setting(String),
}

/// The sink as the deployment configured it.
#[derive(Clone)]
pub struct SyslogSink {
    pub destination: Destination,
    /// Present for `tls://`.
    pub tls: Option<Arc<ClientConfig>>,
    pub origin: Origin,
    /// Event kinds, or prefixes ending in `.`; empty: every kind.
    pub events: Vec<String>,
    /// On the sink's first run, send the whole log (else: from the log head then).
    pub backfill: bool,
}

/// What `serve`'s flags say about the sink (files named, not read yet).
#[derive(Debug, Clone, Default)]
pub struct SyslogOptions {
    pub url: String,
    pub ca_file: Option<std::path::PathBuf>,
    pub client_cert_file: Option<std::path::PathBuf>,
    pub client_key_file: Option<std::path::PathBuf>,
    pub facility: String,
    pub app_name: String,
    pub hostname: Option<String>,
    pub events: Vec<String>,
    pub backfill: bool,
}

impl SyslogSink {
    /// The sink from `serve`'s options: the URL judged by the destination policy, the
    /// certificate files read and checked now (a bad setting stops `serve` with its flag).
    pub fn configure(
        options: &SyslogOptions,
        policy: &crate::net::Policy,
    ) -> Result<SyslogSink, SiemError> {
        let setting = SiemError::Setting;
        let destination = Destination::parse(&options.url, policy).map_err(setting)?;
        let read = |flag: &str, path: &std::path::Path| {
            std::fs::read(path)
                .map_err(|e| SiemError::Setting(format!("--{flag} {}: {e}", path.display())))
        };
        let ca = options
            .ca_file
            .as_deref()
            .map(|p| read("syslog-ca", p))
            .transpose()?;
        let client = match (&options.client_cert_file, &options.client_key_file) {
            (Some(cert), Some(key)) => Some((
                read("syslog-client-cert", cert)?,
                zeroize::Zeroizing::new(read("syslog-client-key", key)?),
            )),
            (None, None) => None,
            _ => {
                return Err(setting(
                    "--syslog-client-cert and --syslog-client-key go together".into(),
                ))
            }
        };
        let tls = if destination.tls {
            let client = client.as_ref().map(|(c, k)| (c.as_slice(), k.as_slice()));
            Some(transport::tls_config(ca.as_deref(), client).map_err(setting)?)
        } else if ca.is_some() || client.is_some() {
            return Err(setting(
                "--syslog-ca and client certificates need a tls:// --syslog-url".into(),
            ));
        } else {
            None
        };
        crate::domain::webhook::check_filters(&options.events)
            .map_err(|e| setting(format!("--syslog-events: {e}")))?;
        let facility = options.facility.parse().map_err(setting)?;
        let hostname = options.hostname.clone().unwrap_or_else(system_hostname);
        Ok(SyslogSink {
            destination,
            tls,
            origin: Origin::new(facility, &hostname, &options.app_name, std::process::id()),
            events: options.events.clone(),
            backfill: options.backfill,
        })
    }

    /// Whether the sink sends events of `kind` (the webhook filters' rule).
    fn wants(&self, kind: &str) -> bool {
        crate::domain::webhook::Webhook::wants(&self.events, kind)
    }
}

/// This machine's name (the kernel's), or the NILVALUE.
fn system_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "-".into())
}

/// The sink's state in this instance: its connection and when to try again.
struct Sender {
    owner: String,
    connection: Option<Connection>,
    failures: u32,
    retry_at: Option<Instant>,
    /// When this instance last took or renewed the lease.
    renewed: Option<Instant>,
}

/// Sends until `stop` turns true. Every instance runs this when the sink is configured.
pub async fn run(state: AppState, sink: SyslogSink, mut stop: watch::Receiver<bool>) {
    let mut sender = Sender {
        owner: uuid::Uuid::now_v7().to_string(),
        connection: None,
        failures: 0,
        retry_at: None,
        renewed: None,
    };
    tracing::info!(destination = %sink.destination, "SIEM feed: syslog sink running");
    loop {
        let pause = match round(&state, &sink, &mut sender).await {
            Ok(()) => TICK,
            Err(e) => {
                tracing::warn!(error = %e, "SIEM feed round failed; trying again");
                AFTER_ERROR
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stop.changed() => break,
        }
        if *stop.borrow() {
            break;
        }
    }
    // Another instance may take over at once.
    let _ = state
        .projections
        .release_siem_cursor(SINK, &sender.owner)
        .await;
}

fn millis(t: time::OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// One look at the log: sends what is due, if this instance holds (or takes) the lease.
async fn round(state: &AppState, sink: &SyslogSink, sender: &mut Sender) -> Result<(), SiemError> {
    let Some(seen) = state.projections.siem_cursor(SINK).await? else {
        let start = if sink.backfill {
            0
        } else {
            state.log.head().await?
        };
        state
            .projections
            .ensure_siem_cursor(SINK, i64::try_from(start).unwrap_or(i64::MAX))
            .await?;
        return Ok(());
    };
    // Reads first: with nothing due the sink writes nothing (no lease renewal per tick).
    let due = state
        .projections
        .audit_events_after(seen.position, 1)
        .await?;
    record_lag(state, due.first()).await;
    if due.is_empty() {
        return Ok(());
    }
    // While waiting to try again, the lease is still renewed now and then (it outlasts a
    // failed attempt's timeouts plus the longest wait only so).
    let waiting = sender.retry_at.is_some_and(|t| Instant::now() < t);
    if waiting && sender.renewed.is_some_and(|t| t.elapsed() < LEASE / 3) {
        return Ok(());
    }
    let now = state.clock.now();
    let now_ms = millis(now);
    let lease = Lease {
        owner: &sender.owner,
        now_ms,
        until_ms: now_ms.saturating_add(i64::try_from(LEASE.as_millis()).unwrap_or(i64::MAX)),
    };
    let Some(cursor) = state.projections.claim_siem_cursor(SINK, lease).await? else {
        // Another instance sends; a connection of ours would only sit idle.
        sender.connection = None;
        sender.renewed = None;
        return Ok(());
    };
    sender.renewed = Some(Instant::now());
    if waiting {
        return Ok(());
    }
    let events = state
        .projections
        .audit_events_after(cursor.position, BATCH)
        .await?;
    let Some(last) = events.last().map(|e| e.position) else {
        return Ok(());
    };
    let mut bytes = Vec::new();
    let mut sent = 0u64;
    for event in events.iter().filter(|e| sink.wants(&e.kind)) {
        bytes.extend(rfc5424::frame(&rfc5424::message(&sink.origin, event)));
        sent += 1;
    }
    if sent > 0 {
        if let Err(failure) = send(state, sink, sender, &bytes).await {
            return failed(state, sender, &cursor, failure).await;
        }
        state.metrics.syslog_messages.inc_by(sent);
    }
    sender.failures = 0;
    sender.retry_at = None;
    if !state
        .projections
        .advance_siem_cursor(SINK, &sender.owner, last)
        .await?
    {
        // The lease ran out meanwhile: the next holder sends from the cursor (again).
        sender.connection = None;
    }
    Ok(())
}

/// Writes `bytes` on the open connection, or on a new one.
async fn send(
    state: &AppState,
    sink: &SyslogSink,
    sender: &mut Sender,
    bytes: &[u8],
) -> Result<(), Failure> {
    if sender
        .connection
        .as_ref()
        .is_some_and(Connection::is_closed)
    {
        sender.connection = None;
    }
    let connection = match &mut sender.connection {
        Some(c) => c,
        None => {
            let opened =
                Connection::open(&sink.destination, &state.destinations, sink.tls.as_ref()).await?;
            if sender.failures > 0 {
                tracing::info!(destination = %sink.destination, after = sender.failures, "SIEM feed: connected again");
            }
            sender.connection.insert(opened)
        }
    };
    let written = connection.send(bytes).await;
    if written.is_err() {
        sender.connection = None;
    }
    written
}

/// A failed attempt: counted, logged, kept on the cursor, and the next one scheduled.
async fn failed(
    state: &AppState,
    sender: &mut Sender,
    cursor: &SiemCursorRow,
    failure: Failure,
) -> Result<(), SiemError> {
    sender.failures = sender.failures.saturating_add(1);
    let exp = sender.failures.saturating_sub(1).min(16);
    let delay = RETRY_FIRST
        .saturating_mul(1u32 << exp)
        .min(RETRY_MAX)
        .mul_f64(rand::thread_rng().gen_range(0.8..1.2));
    sender.retry_at = Some(Instant::now() + delay);
    state.metrics.syslog_failure(failure.stage);
    let failing_for = cursor.failures + 1;
    if sender.failures == 1 || sender.failures.is_multiple_of(10) {
        tracing::warn!(
            error = %failure,
            failures = failing_for,
            position = cursor.position,
            retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            "SIEM feed: cannot send to the syslog daemon; the events wait"
        );
    }
    let error: String = failure.to_string().chars().take(MAX_ERROR).collect();
    state
        .projections
        .siem_failed(
            SINK,
            &sender.owner,
            state.clock.now().unix_timestamp(),
            &error,
        )
        .await?;
    Ok(())
}

/// `syslog_lag_events`: events appended since the oldest one not sent yet, counting it;
/// 0 when none is due.
async fn record_lag(state: &AppState, oldest_due: Option<&AuditEventRow>) {
    let lag = match oldest_due {
        None => 0,
        Some(event) => match state.log.head().await {
            Ok(head) => head.saturating_sub(u64::try_from(event.position).unwrap_or(0)) + 1,
            Err(_) => return,
        },
    };
    state
        .metrics
        .syslog_lag
        .set(i64::try_from(lag).unwrap_or(i64::MAX));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(url: &str) -> SyslogOptions {
        SyslogOptions {
            url: url.into(),
            facility: "authpriv".into(),
            app_name: "authledger".into(),
            hostname: Some("h".into()),
            ..SyslogOptions::default()
        }
    }

    fn refused(o: &SyslogOptions) -> String {
        match SyslogSink::configure(o, &crate::net::Policy::new(true, Vec::new())) {
            Ok(_) => panic!("{o:?} was accepted"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn settings_that_cannot_work_stop_serve_naming_their_flag() {
        let policy = crate::net::Policy::new(true, Vec::new());
        let sink = SyslogSink::configure(&options("tls://127.0.0.1:6514"), &policy).expect("tls");
        assert!(sink.tls.is_some() && sink.wants("access.denied"));
        let sink = SyslogSink::configure(&options("tcp://127.0.0.1:514"), &policy).expect("tcp");
        assert!(sink.tls.is_none());

        let mut o = options("tcp://127.0.0.1:514");
        o.ca_file = Some("/nonexistent/ca.pem".into());
        assert!(refused(&o).contains("--syslog-ca"));
        let mut o = options("tls://127.0.0.1:6514");
        o.client_cert_file = Some("/nonexistent/cert.pem".into());
        assert!(refused(&o).contains("go together"));
        let mut o = options("tls://127.0.0.1:6514");
        o.facility = "kern".into();
        assert!(refused(&o).contains("facility"));
        let mut o = options("tls://127.0.0.1:6514");
        o.events = vec!["Access Denied".into()];
        assert!(refused(&o).contains("--syslog-events"));
        assert!(refused(&options("tcp://10.1.2.3:514")).contains("destination refused"));
    }

    #[test]
    fn filters_choose_kinds_and_prefixes() {
        let policy = crate::net::Policy::new(true, Vec::new());
        let mut o = options("tcp://127.0.0.1:514");
        o.events = vec!["access.".into(), "token.issued".into()];
        let sink = SyslogSink::configure(&o, &policy).expect("sink");
        assert!(sink.wants("access.denied"));
        assert!(sink.wants("token.issued"));
        assert!(!sink.wants("token.used"));
        assert!(!sink.wants("connection.created"));
    }
}

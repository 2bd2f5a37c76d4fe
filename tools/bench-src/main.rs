//! `authledger-bench`: raw JetStream vs the ledger write and read paths, in one run, against
//! one NATS server and one payload size. Driven by `tools/bench` (which starts a private
//! nats-server); see `BENCHMARKS.md`.
//!
//! Phases, in order:
//! 1. raw JetStream publish, pipelined (a sliding window of publishes in flight, each with a
//!    `Nats-Msg-Id`), of envelope-sized payloads onto a separate stream with the same config
//!    as the ledger stream;
//! 2. ledger append: `Ledger::append_next` through `JetStreamEventLog`, many tasks each
//!    writing round-robin to its own aggregates;
//! 3. raw consume of the ledger stream with an ordered pull consumer;
//! 4. `verify_log` over the ledger stream;
//! 5. optionally the embedded SQLite backend: append and verify.

use std::future::IntoFuture as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use async_nats::jetstream::{self, consumer};
use bytes::Bytes;
use clap::Parser;
use futures::stream::{FuturesUnordered, StreamExt};

use authledger::clock::SystemClock;
use authledger::domain::{Event, WorkspaceCreated};
use authledger::ledger::jetstream_log::{JetStreamEventLog, JetStreamOptions};
use authledger::ledger::sqlite_log::SqliteEventLog;
use authledger::ledger::verify::verify_log;
use authledger::ledger::writer::seal_event;
use authledger::ledger::{Actor, AggregateKey, EventLog, KeyRing, Ledger, Signer};
use authledger::metrics::Metrics;

#[derive(Parser, Debug)]
#[command(name = "authledger-bench", about = "Raw JetStream vs ledger append/consume/verify throughput")]
struct Args {
    /// NATS server to benchmark against (a private one: the run creates two streams).
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    nats_url: String,
    /// Events per JetStream phase (raw publish, ledger append, consume, verify).
    #[arg(long, default_value_t = 100_000)]
    events: u64,
    /// Target size of one stored message (the DSSE envelope) in bytes. The event name is
    /// padded so ledger envelopes have this size; raw payloads have the same size.
    #[arg(long, default_value_t = 1024)]
    payload_bytes: usize,
    /// Raw publish: publishes in flight (sliding window).
    #[arg(long, default_value_t = 512)]
    window: usize,
    /// Ledger append: concurrent writer tasks.
    #[arg(long, default_value_t = 256)]
    tasks: u64,
    /// Ledger append: aggregates per task (each task writes to its own, round-robin).
    #[arg(long, default_value_t = 8)]
    aggregates_per_task: u64,
    /// Events for the embedded SQLite phases (0 skips them).
    #[arg(long, default_value_t = 10_000)]
    sqlite_events: u64,
    /// Directory for the SQLite log file (default: the system temp dir).
    #[arg(long)]
    sqlite_dir: Option<std::path::PathBuf>,
    /// Keep the benchmark streams on the server after the run.
    #[arg(long)]
    keep_streams: bool,
}

struct Row {
    phase: String,
    events: u64,
    seconds: f64,
    note: String,
}

impl Row {
    fn rate(&self) -> f64 {
        if self.seconds > 0.0 {
            self.events as f64 / self.seconds
        } else {
            0.0
        }
    }
}

fn actor() -> Actor {
    Actor::system("bench")
}

fn padded_event(pad: usize) -> Event {
    Event::WorkspaceCreated(WorkspaceCreated { name: "x".repeat(pad) })
}

fn agg_key(task: u64, agg: u64) -> anyhow::Result<AggregateKey> {
    Ok(AggregateKey::new("bench", "workspace", format!("t{task:04}-a{agg:04}"))?)
}

/// Envelope size of a typical (chained, mid-aggregate) event with a name of `pad` bytes.
fn sample_envelope_len(signer: &Signer, pad: usize) -> anyhow::Result<usize> {
    let key = agg_key(0, 0)?;
    let prev = Some(format!("sha256:{}", "0".repeat(64)));
    let (signed, _) =
        seal_event(signer, &key, 9, prev, &actor(), &padded_event(pad), time::OffsetDateTime::now_utc())?;
    Ok(signed.envelope.len())
}

/// The name padding whose envelope is closest to `target` bytes, and that envelope's size.
fn choose_padding(signer: &Signer, target: usize) -> anyhow::Result<(usize, usize)> {
    let base = sample_envelope_len(signer, 0)?;
    if base >= target {
        return Ok((0, base));
    }
    // base64 makes each name byte cost ~4/3 envelope bytes.
    let mut pad = (target - base) * 3 / 4;
    let mut best = (pad, sample_envelope_len(signer, pad)?);
    for p in pad.saturating_sub(4)..pad + 8 {
        let len = sample_envelope_len(signer, p)?;
        if len.abs_diff(target) < best.1.abs_diff(target) {
            best = (p, len);
        }
    }
    pad = best.0;
    Ok((pad, best.1))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// Splits `total` into `parts` nearly equal shares that add up to `total`.
fn share(total: u64, parts: u64, i: u64) -> u64 {
    total / parts + u64::from(i < total % parts)
}

async fn raw_publish(
    js: &jetstream::Context,
    prefix: &str,
    events: u64,
    window: usize,
    payload: Bytes,
    subjects: u64,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut in_flight = FuturesUnordered::new();
    for i in 0..events {
        let subject = format!("{prefix}.bench.workspace.s{:06}", i % subjects.max(1));
        let msg = jetstream::message::PublishMessage::build()
            .payload(payload.clone())
            .message_id(uuid::Uuid::now_v7().to_string());
        let ack = js.send_publish(subject, msg).await.context("raw publish")?;
        in_flight.push(ack.into_future());
        while in_flight.len() >= window {
            if let Some(ack) = in_flight.next().await {
                let ack = ack.context("raw publish ack")?;
                if ack.duplicate {
                    bail!("raw publish: unexpected duplicate ack at sequence {}", ack.sequence);
                }
            }
        }
    }
    while let Some(ack) = in_flight.next().await {
        ack.context("raw publish ack")?;
    }
    Ok(started.elapsed().as_secs_f64())
}

/// Appends `events` events from `tasks` tasks, each on `aggs` aggregates of its own.
/// Returns (seconds, sorted per-append latencies).
async fn ledger_append(
    ledger: Arc<Ledger>,
    events: u64,
    tasks: u64,
    aggs: u64,
    pad: usize,
) -> anyhow::Result<(f64, Vec<Duration>)> {
    let started = Instant::now();
    let mut handles = Vec::new();
    for t in 0..tasks {
        let ledger = ledger.clone();
        let n = share(events, tasks, t);
        handles.push(tokio::spawn(async move {
            let keys = (0..aggs.max(1)).map(|a| agg_key(t, a)).collect::<anyhow::Result<Vec<_>>>()?;
            let event = padded_event(pad);
            let actor = actor();
            let mut lat = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
            for i in 0..n {
                let key = &keys[usize::try_from(i % aggs.max(1)).unwrap_or(0)];
                let t0 = Instant::now();
                let c = ledger.append_next(key, &actor, &event).await.with_context(|| format!("append to {key}"))?;
                lat.push(t0.elapsed());
                if c.duplicate {
                    bail!("append to {key}: unexpected duplicate");
                }
            }
            anyhow::Ok(lat)
        }));
    }
    let mut lat = Vec::new();
    for h in handles {
        lat.extend(h.await??);
    }
    let seconds = started.elapsed().as_secs_f64();
    lat.sort_unstable();
    Ok((seconds, lat))
}

/// Reads the whole stream with an ordered pull consumer. Returns (seconds, messages, bytes).
async fn raw_consume(stream: &jetstream::stream::Stream, expected: u64) -> anyhow::Result<(f64, u64, u64)> {
    let started = Instant::now();
    let consumer = stream
        .create_consumer(consumer::pull::OrderedConfig {
            deliver_policy: consumer::DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .context("create ordered consumer")?;
    let mut messages = consumer.messages().await.context("consume")?;
    let (mut count, mut bytes) = (0u64, 0u64);
    while count < expected {
        let Some(msg) = tokio::time::timeout(Duration::from_secs(30), messages.next())
            .await
            .context("consume: no message for 30 s")?
        else {
            bail!("consume: stream ended after {count} of {expected} messages");
        };
        let msg = msg.context("consume")?;
        bytes += msg.payload.len() as u64;
        count += 1;
    }
    Ok((started.elapsed().as_secs_f64(), count, bytes))
}

async fn verify(log: Arc<dyn EventLog>, ring: KeyRing, expected: u64, label: &str) -> anyhow::Result<f64> {
    let report = verify_log(log, ring, Vec::new()).await.with_context(|| format!("{label} verify"))?;
    if !report.ok || report.events != expected {
        bail!(
            "{label} verify: ok={} events={} (expected {expected}) failure={:?}",
            report.ok,
            report.events,
            report.failure
        );
    }
    Ok(report.seconds)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.events == 0 || args.tasks == 0 || args.window == 0 {
        bail!("--events, --tasks and --window must be positive");
    }
    let run = uuid::Uuid::now_v7().simple().to_string();
    let run = &run[run.len() - 8..];
    let signer = Signer::generate();
    let mut ring = KeyRing::default();
    ring.insert(signer.public_key());
    let (pad, envelope_len) = choose_padding(&signer, args.payload_bytes)?;
    if envelope_len.abs_diff(args.payload_bytes) > 4 {
        eprintln!(
            "note: smallest/closest ledger envelope is {envelope_len} bytes (asked for {}); using {envelope_len}",
            args.payload_bytes
        );
    }
    let payload = Bytes::from(vec![b'x'; envelope_len]);

    // One connection for the ledger (inside JetStreamEventLog), one for raw JetStream.
    let mut ledger_opts = JetStreamOptions::new(args.nats_url.clone());
    ledger_opts.stream = format!("BENCH_LEDGER_{run}");
    ledger_opts.subject_prefix = format!("benchledger{run}");
    ledger_opts.ack_timeout = Duration::from_secs(30);
    let mut raw_opts = ledger_opts.clone();
    raw_opts.stream = format!("BENCH_RAW_{run}");
    raw_opts.subject_prefix = format!("benchraw{run}");

    let client = async_nats::ConnectOptions::new()
        .name("authledger-bench")
        .connect(args.nats_url.as_str())
        .await
        .with_context(|| format!("connect to {}", args.nats_url))?;
    let server_version = client.server_info().version;
    let mut js = jetstream::new(client.clone());
    js.set_timeout(Duration::from_secs(30));
    let raw_stream = js
        .create_stream(JetStreamEventLog::stream_config(&raw_opts))
        .await
        .context("create raw stream")?;

    let mut rows: Vec<Row> = Vec::new();
    let subjects = args.tasks * args.aggregates_per_task.max(1);

    // 1. Raw pipelined publish.
    eprintln!("[1/4] raw JetStream publish: {} x {envelope_len} B, window {} ...", args.events, args.window);
    let secs = raw_publish(&js, &raw_opts.subject_prefix, args.events, args.window, payload, subjects).await?;
    let raw_rate = args.events as f64 / secs;
    let raw_head = raw_stream.get_info().await.context("raw stream info")?.state.messages;
    if raw_head != args.events {
        bail!("raw stream holds {raw_head} messages, expected {}", args.events);
    }
    rows.push(Row {
        phase: "1. raw JetStream publish (pipelined)".into(),
        events: args.events,
        seconds: secs,
        note: format!("{} in flight, Nats-Msg-Id set, {subjects} subjects", args.window),
    });

    // 2. Ledger append.
    eprintln!(
        "[2/4] ledger append_next: {} events, {} tasks x {} aggregates ...",
        args.events, args.tasks, args.aggregates_per_task
    );
    let log = Arc::new(JetStreamEventLog::open(ledger_opts.clone()).await?);
    let dyn_log: Arc<dyn EventLog> = log.clone();
    let ledger = Arc::new(Ledger::new(dyn_log.clone(), signer, Arc::new(SystemClock), Metrics::new()));
    let (secs, lat) = ledger_append(ledger.clone(), args.events, args.tasks, args.aggregates_per_task, pad).await?;
    let append_rate = args.events as f64 / secs;
    let ratio = append_rate / raw_rate;
    rows.push(Row {
        phase: "2. ledger append (`Ledger::append_next`, JetStream)".into(),
        events: args.events,
        seconds: secs,
        note: format!(
            "{} tasks x {} aggregates; {:.0}% of raw (target >= 50%: {}); latency p50 {} p99 {}",
            args.tasks,
            args.aggregates_per_task,
            ratio * 100.0,
            if ratio >= 0.5 { "met" } else { "NOT met" },
            ms(percentile(&lat, 0.5)),
            ms(percentile(&lat, 0.99)),
        ),
    });

    // 3. Raw consume of the ledger stream.
    eprintln!("[3/4] raw consume of the ledger stream ...");
    let ledger_stream = js.get_stream(&ledger_opts.stream).await.context("ledger stream")?;
    let (secs, count, bytes) = raw_consume(&ledger_stream, args.events).await?;
    let mean_envelope = bytes as f64 / count.max(1) as f64;
    rows.push(Row {
        phase: "3. raw consume of the ledger stream (ordered pull)".into(),
        events: count,
        seconds: secs,
        note: format!("mean ledger envelope {mean_envelope:.0} B (raw payload {envelope_len} B)"),
    });

    // 4. verify_log over the ledger stream.
    eprintln!("[4/4] verify_log over the ledger stream ...");
    let secs = verify(dyn_log.clone(), ring.clone(), args.events, "JetStream").await?;
    let verify_rate = args.events as f64 / secs;
    rows.push(Row {
        phase: "4. `verify_log` (JetStream)".into(),
        events: args.events,
        seconds: secs,
        note: format!("target >= 40,000/s: {}", if verify_rate >= 40_000.0 { "met" } else { "NOT met" }),
    });

    // 5. Optional: embedded SQLite backend.
    if args.sqlite_events > 0 {
        let dir = args.sqlite_dir.clone().unwrap_or_else(std::env::temp_dir).join(format!("authledger-bench-{run}"));
        std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        let path = dir.join("events.db");
        let result = async {
            eprintln!("[5/5] SQLite append + verify: {} events ...", args.sqlite_events);
            let sqlite = Arc::new(SqliteEventLog::open(&path).await?);
            let sqlite_dyn: Arc<dyn EventLog> = sqlite.clone();
            let signer = Signer::generate();
            let mut ring = KeyRing::default();
            ring.insert(signer.public_key());
            let ledger = Arc::new(Ledger::new(sqlite_dyn.clone(), signer, Arc::new(SystemClock), Metrics::new()));
            let (secs, lat) =
                ledger_append(ledger, args.sqlite_events, args.tasks, args.aggregates_per_task, pad).await?;
            rows.push(Row {
                phase: "5a. SQLite ledger append (embedded, `synchronous=FULL`)".into(),
                events: args.sqlite_events,
                seconds: secs,
                note: format!(
                    "{} tasks x {} aggregates; one writer connection; latency p50 {} p99 {}",
                    args.tasks,
                    args.aggregates_per_task,
                    ms(percentile(&lat, 0.5)),
                    ms(percentile(&lat, 0.99)),
                ),
            });
            let secs = verify(sqlite_dyn, ring, args.sqlite_events, "SQLite").await?;
            rows.push(Row {
                phase: "5b. `verify_log` (SQLite)".into(),
                events: args.sqlite_events,
                seconds: secs,
                note: String::new(),
            });
            sqlite.close().await;
            anyhow::Ok(())
        }
        .await;
        let _ = std::fs::remove_dir_all(&dir);
        result?;
    }

    if !args.keep_streams {
        let _ = js.delete_stream(&raw_opts.stream).await;
        let _ = js.delete_stream(&ledger_opts.stream).await;
    }

    println!();
    println!(
        "nats-server {server_version} at {}; {} events per JetStream phase; envelope {envelope_len} B (name padded by {pad} B)",
        args.nats_url, args.events
    );
    println!();
    println!("| Phase | Events | Seconds | Events/s | Notes |");
    println!("|---|---:|---:|---:|---|");
    for r in &rows {
        println!("| {} | {} | {:.2} | {:.0} | {} |", r.phase, r.events, r.seconds, r.rate(), r.note);
    }
    println!();
    println!(
        "append/raw ratio: {:.1}% (target >= 50%); verify: {:.0}/s (target >= 40,000/s)",
        ratio * 100.0,
        verify_rate
    );
    Ok(())
}

//! `authledger-bench`: raw JetStream vs the ledger write and read paths, in one run, against
//! one NATS server and one payload size. Driven by `tools/bench` (which starts a private
//! nats-server); see `BENCHMARKS.md`.
//!
//! Phases 1 and 2 run interleaved for `--rounds` rounds (the machine may be shared, so both
//! see the same conditions); 3 and 4 then read the whole ledger stream, once per round.
//! The table shows medians. Phases:
//! 1. raw JetStream publish, pipelined (a sliding window of publishes in flight, each with a
//!    `Nats-Msg-Id`), of envelope-sized payloads onto a separate stream with the same config
//!    as the ledger stream;
//! 2. ledger append: `Ledger::append_next` through `JetStreamEventLog`, many tasks each
//!    writing round-robin to its own aggregates;
//! 3. raw consume of the ledger stream with an ordered pull consumer;
//! 4. `verify_log` over the ledger stream;
//! 5. optionally the embedded SQLite backend: append and verify.
//!
//! Phase 0 times `seal_event` alone, phase 0b `verify_log`'s checks alone (`verify_cpu.rs`).
//!
//! `--suite audit` runs the audit benchmarks instead (see `audit.rs`); `--suite agents`
//! the agent benchmarks over HTTP against `authledger serve` (see `agents.rs`); `--suite soak`
//! a long mixed workload sampled for growth (see `soak.rs`).

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

mod agents;
mod audit;
mod soak;
mod verify_cpu;

/// Which benchmark suite runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Suite {
    /// Raw JetStream vs ledger append, consume and verify (+ embedded SQLite).
    Default,
    /// Issue 5: replay, audit query latency and export on a realistic ledger.
    Audit,
    /// Issue 6: token issuance and gateway overhead over HTTP against `authledger serve`.
    Agents,
    /// Issue 21: a mixed workload for a while, RSS / fds / WAL / lag / latency sampled.
    Soak,
    /// Reads `--consume-stream` whole with an ordered pull consumer, counting only: what
    /// any reader of that log needs at least (tools/peers/replay-floor.sh).
    Consume,
}

#[derive(Parser, Debug)]
#[command(
    name = "authledger-bench",
    about = "Raw JetStream vs ledger append/consume/verify throughput"
)]
struct Args {
    /// The suite to run.
    #[arg(long, value_enum, default_value_t = Suite::Default)]
    suite: Suite,
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
    /// PID of the nats-server (on this machine), to report its CPU time per event.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Rounds of phases 1+2 (interleaved), and of 3 and 4; the table shows medians.
    #[arg(long, default_value_t = 3)]
    rounds: u64,
    /// Keep the benchmark streams on the server after the run (audit: also the work dir
    /// and the PostgreSQL database; agents: the work dir and the PostgreSQL database).
    #[arg(long)]
    keep_streams: bool,
    /// consume: the stream to read (all of its messages).
    #[arg(long)]
    consume_stream: Option<String>,
    /// audit, agents: a PostgreSQL URL whose user may CREATE DATABASE (a fresh database is
    /// made for the projections); without it the PostgreSQL phases are skipped (agents:
    /// JetStream then runs with SQLite projections).
    #[arg(long)]
    database_url: Option<String>,
    /// audit, agents: PID of the PostgreSQL postmaster (on this machine), for CPU time.
    #[arg(long)]
    pg_pid: Option<u32>,
    /// audit: the PostgreSQL cluster's data directory, to report its size.
    #[arg(long)]
    pg_data_dir: Option<std::path::PathBuf>,
    /// audit, agents: directory for keys, SQLite projections, export and service logs
    /// (default: temp dir).
    #[arg(long)]
    work_dir: Option<std::path::PathBuf>,
    /// audit, agents: the `authledger` binary the exports (audit) and services (agents)
    /// run as child processes.
    #[arg(long, default_value = "target/release/authledger")]
    authledger_bin: std::path::PathBuf,
    /// audit: workspaces (event shares n : n-1 : ... : 1).
    #[arg(long, default_value_t = 4)]
    workspaces: u32,
    /// audit: days of `occurred_at` the events span.
    #[arg(long, default_value_t = 90)]
    span_days: u32,
    /// audit: measured queries per filter shape and backend (first pages; cursor pages too).
    #[arg(long, default_value_t = 300)]
    queries: usize,
    /// audit: live connections per fill task.
    #[arg(long, default_value_t = 16)]
    slots: usize,
    /// audit: export formats to run (comma-separated: jsonl, csv).
    #[arg(long, default_value = "jsonl,csv")]
    export_formats: String,
    /// audit: no checkpoint before the exports (so no inclusion proofs).
    #[arg(long)]
    no_checkpoint: bool,
    /// audit: replay the first N events (comma-separated list) into fresh PostgreSQL
    /// databases with the server's default plan cache, to show how that replay scales.
    #[arg(long, default_value = "10000,20000")]
    pg_default_replay: String,
    /// audit: give up a `--pg-default-replay` point after this many seconds.
    #[arg(long, default_value_t = 900)]
    pg_default_timeout_secs: u64,
    /// audit: `plan_cache_mode` set on the database of the whole-log PostgreSQL replay
    /// ("default": none; the rebuild is then quadratic, see BENCHMARKS.md).
    #[arg(long, default_value = "force_custom_plan")]
    pg_replay_plan_cache_mode: String,
    /// audit: seed of the workload and of the query targets.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// agents: backends to run (comma-separated: embedded, jetstream).
    #[arg(long, default_value = "embedded,jetstream")]
    agents_backends: String,
    /// agents: concurrent HTTP clients of the floor and token issuance loads (each its own
    /// keep-alive connection).
    #[arg(long, default_value_t = 64)]
    token_clients: usize,
    /// agents: measured requests of the floor and token issuance loads.
    #[arg(long, default_value_t = 20_000)]
    token_requests: u64,
    /// agents: warm-up requests before the floor and token issuance loads.
    #[arg(long, default_value_t = 2_000)]
    warmup: u64,
    /// agents: calls per gateway row (direct, agent key, scoped token; sequential and
    /// concurrent).
    #[arg(long, default_value_t = 2_000)]
    gateway_calls: u64,
    /// agents: clients of the concurrent gateway rows.
    #[arg(long, default_value_t = 16)]
    gateway_clients: usize,
    /// soak: seconds of load per backend.
    #[arg(long, default_value_t = 600)]
    soak_secs: u64,
    /// soak: seconds between samples.
    #[arg(long, default_value_t = 10)]
    soak_sample_secs: u64,
    /// soak: concurrent clients (each its own keep-alive connection).
    #[arg(long, default_value_t = 8)]
    soak_clients: usize,
}

struct Row {
    phase: String,
    events: u64,
    rate: f64,
    note: String,
}

fn actor() -> Actor {
    Actor::system("bench")
}

fn padded_event(pad: usize) -> Event {
    Event::WorkspaceCreated(WorkspaceCreated {
        name: "x".repeat(pad),
    })
}

fn agg_key(task: u64, agg: u64) -> anyhow::Result<AggregateKey> {
    Ok(AggregateKey::new(
        "bench",
        "workspace",
        format!("t{task:04}-a{agg:04}"),
    )?)
}

/// Envelope size of a typical (chained, mid-aggregate) event with a name of `pad` bytes.
fn sample_envelope_len(signer: &Signer, pad: usize) -> anyhow::Result<usize> {
    let key = agg_key(0, 0)?;
    let prev = Some(format!("sha256:{}", "0".repeat(64)));
    let (signed, _) = seal_event(
        signer,
        &key,
        9,
        prev,
        &actor(),
        &padded_event(pad),
        time::OffsetDateTime::now_utc(),
    )?;
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
                    bail!(
                        "raw publish: unexpected duplicate ack at sequence {}",
                        ack.sequence
                    );
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
            let keys = (0..aggs.max(1))
                .map(|a| agg_key(t, a))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let event = padded_event(pad);
            let actor = actor();
            let mut lat = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
            for i in 0..n {
                let key = &keys[usize::try_from(i % aggs.max(1)).unwrap_or(0)];
                let t0 = Instant::now();
                let c = ledger
                    .append_next(key, &actor, &event)
                    .await
                    .with_context(|| format!("append to {key}"))?;
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
async fn raw_consume(
    stream: &jetstream::stream::Stream,
    expected: u64,
) -> anyhow::Result<(f64, u64, u64)> {
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

/// `--suite consume`: one raw consume of a stream already there; prints the seconds,
/// messages, bytes and this process's CPU seconds.
async fn consume_only(args: &Args) -> anyhow::Result<()> {
    let name = args
        .consume_stream
        .as_deref()
        .context("--suite consume needs --consume-stream")?;
    let client = async_nats::connect(args.nats_url.as_str())
        .await
        .with_context(|| format!("connect to {}", args.nats_url))?;
    let js = jetstream::new(client);
    let mut stream = js.get_stream(name).await.context("the stream")?;
    let messages = stream.info().await.context("stream info")?.state.messages;
    let cpu_before = cpu_seconds("self").unwrap_or(0.0);
    let (seconds, count, bytes) = raw_consume(&stream, messages).await?;
    let cpu = cpu_seconds("self").unwrap_or(0.0) - cpu_before;
    println!("consumed {count} messages ({bytes} bytes) in {seconds:.3} s, {cpu:.2} s of CPU");
    Ok(())
}

async fn verify(
    log: Arc<dyn EventLog>,
    ring: KeyRing,
    expected: u64,
    label: &str,
) -> anyhow::Result<f64> {
    let report = verify_log(log, ring, Vec::new())
        .await
        .with_context(|| format!("{label} verify"))?;
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

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn spread(rates: &[f64]) -> String {
    let min = rates.iter().copied().fold(f64::INFINITY, f64::min);
    let max = rates.iter().copied().fold(0.0, f64::max);
    if rates.len() > 1 {
        format!("rounds {min:.0}–{max:.0}/s")
    } else {
        String::new()
    }
}

/// user + system CPU seconds of a process so far (Linux /proc, USER_HZ = 100).
fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

/// CPU seconds used by this process and by the server, accumulated over measured spans.
#[derive(Default, Clone, Copy)]
struct Cpu {
    client: f64,
    server: Option<f64>,
}

impl Cpu {
    fn now(server_pid: Option<u32>) -> Cpu {
        Cpu {
            client: cpu_seconds("self").unwrap_or(0.0),
            server: server_pid.and_then(|p| cpu_seconds(&p.to_string())),
        }
    }

    fn add_span(&mut self, start: Cpu, end: Cpu) {
        self.client += end.client - start.client;
        self.server = match (start.server, end.server) {
            (Some(a), Some(b)) => Some(self.server.unwrap_or(0.0) + b - a),
            _ => None,
        };
    }

    fn per_event(&self, events: u64) -> String {
        let us = |s: f64| s * 1e6 / events.max(1) as f64;
        match self.server {
            Some(server) => format!(
                "CPU/event: client {:.0} µs, server {:.0} µs",
                us(self.client),
                us(server)
            ),
            None => format!("CPU/event: client {:.0} µs", us(self.client)),
        }
    }
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.events == 0 || args.tasks == 0 || args.window == 0 || args.rounds == 0 {
        bail!("--events, --tasks, --window and --rounds must be positive");
    }
    if args.suite == Suite::Audit {
        return audit::run(&args).await;
    }
    if args.suite == Suite::Agents {
        return agents::run(&args).await;
    }
    if args.suite == Suite::Soak {
        return soak::run(&args).await;
    }
    if args.suite == Suite::Consume {
        return consume_only(&args).await;
    }
    let rounds = args.rounds;
    let load_before = load_average();
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
    if pad > 400 {
        eprintln!(
            "note: names are padded to {pad} characters, over the 400 allowed by schemas/events/v1/workspace.created.json \
             (the log and verify do not check it; a schema validator would)"
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
    let log = Arc::new(JetStreamEventLog::open(ledger_opts.clone()).await?);
    let dyn_log: Arc<dyn EventLog> = log.clone();
    let ledger = Arc::new(Ledger::new(
        dyn_log.clone(),
        signer,
        Arc::new(SystemClock),
        Metrics::new(),
    ));

    let mut rows: Vec<Row> = Vec::new();

    // 0. The CPU cost of building one event: serialise, sign, envelope, hash (one thread).
    {
        let seal_n = args.events.min(20_000);
        let key = agg_key(0, 0)?;
        let event = padded_event(pad);
        let prev = Some(format!("sha256:{}", "0".repeat(64)));
        let signer = ledger.signer();
        let started = Instant::now();
        for v in 0..seal_n {
            let now = time::OffsetDateTime::now_utc();
            seal_event(&signer, &key, v, prev.clone(), &actor(), &event, now)?;
        }
        let secs = started.elapsed().as_secs_f64();
        rows.push(Row {
            phase: "0. `seal_event` alone (serialise + sign + envelope + hash), one thread".into(),
            events: seal_n,
            rate: seal_n as f64 / secs,
            note: format!(
                "{:.1} µs/event; no I/O; the CPU floor of an append",
                secs * 1e6 / seal_n as f64
            ),
        });
    }

    // 0b. The CPU cost of verify_log's checks, no I/O, taken apart.
    rows.push(verify_cpu::run(
        &ledger.signer(),
        &ring,
        args.events.min(20_000),
        pad,
    )?);

    let subjects = args.tasks * args.aggregates_per_task.max(1);
    let total = args.events * rounds;

    // 1 + 2, interleaved per round so both see the same machine conditions.
    let (mut raw_rates, mut append_rates, mut ratios, mut lat) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut raw_cpu, mut append_cpu) = (Cpu::default(), Cpu::default());
    let spid = args.server_pid;
    for r in 1..=rounds {
        let c0 = Cpu::now(spid);
        eprintln!(
            "[round {r}/{rounds}] raw JetStream publish: {} x {envelope_len} B, window {} ...",
            args.events, args.window
        );
        let secs = raw_publish(
            &js,
            &raw_opts.subject_prefix,
            args.events,
            args.window,
            payload.clone(),
            subjects,
        )
        .await?;
        let raw = args.events as f64 / secs;
        eprintln!("    {raw:.0}/s");
        let c1 = Cpu::now(spid);
        raw_cpu.add_span(c0, c1);
        eprintln!(
            "[round {r}/{rounds}] ledger append_next: {} events, {} tasks x {} aggregates ...",
            args.events, args.tasks, args.aggregates_per_task
        );
        let (secs, l) = ledger_append(
            ledger.clone(),
            args.events,
            args.tasks,
            args.aggregates_per_task,
            pad,
        )
        .await?;
        let append = args.events as f64 / secs;
        append_cpu.add_span(c1, Cpu::now(spid));
        eprintln!("    {append:.0}/s ({:.0}% of raw)", append / raw * 100.0);
        raw_rates.push(raw);
        append_rates.push(append);
        ratios.push(append / raw);
        lat.extend(l);
    }
    lat.sort_unstable();
    let raw_count = raw_stream
        .get_info()
        .await
        .context("raw stream info")?
        .state
        .messages;
    let ledger_head = log.head().await?;
    if raw_count != total || ledger_head != total {
        bail!("raw stream holds {raw_count} and ledger stream {ledger_head} messages, expected {total} each");
    }
    let raw_rate = median(&raw_rates);
    let append_rate = median(&append_rates);
    let ratio = append_rate / raw_rate;
    rows.push(Row {
        phase: "1. raw JetStream publish, pipelined".into(),
        events: args.events,
        rate: raw_rate,
        note: format!(
            "{} in flight, Nats-Msg-Id set, {subjects} subjects; {}; {}",
            args.window,
            raw_cpu.per_event(total),
            spread(&raw_rates)
        ),
    });
    rows.push(Row {
        phase: "2. ledger append (`Ledger::append_next`, JetStream)".into(),
        events: args.events,
        rate: append_rate,
        note: format!(
            "{} tasks x {} aggregates; **{:.0}% of raw** (per-round ratios {}); latency p50 {} p99 {}; {}; {}",
            args.tasks,
            args.aggregates_per_task,
            ratio * 100.0,
            ratios.iter().map(|x| format!("{:.0}%", x * 100.0)).collect::<Vec<_>>().join(", "),
            ms(percentile(&lat, 0.5)),
            ms(percentile(&lat, 0.99)),
            append_cpu.per_event(total),
            spread(&append_rates),
        ),
    });

    // 3. Raw consume of the whole ledger stream.
    let ledger_stream = js
        .get_stream(&ledger_opts.stream)
        .await
        .context("ledger stream")?;
    let mut consume_rates = Vec::new();
    let mut mean_envelope = 0.0;
    let mut consume_cpu = Cpu::default();
    for r in 1..=rounds {
        eprintln!("[round {r}/{rounds}] raw consume of the ledger stream ({total} events) ...");
        let c0 = Cpu::now(spid);
        let (secs, count, bytes) = raw_consume(&ledger_stream, total).await?;
        consume_cpu.add_span(c0, Cpu::now(spid));
        mean_envelope = bytes as f64 / count.max(1) as f64;
        consume_rates.push(count as f64 / secs);
    }
    rows.push(Row {
        phase: "3. raw consume of the ledger stream (ordered pull consumer)".into(),
        events: total,
        rate: median(&consume_rates),
        note: format!(
            "mean ledger envelope {mean_envelope:.0} B; {}; {}",
            consume_cpu.per_event(total * rounds),
            spread(&consume_rates)
        ),
    });

    // 4. verify_log over the whole ledger stream.
    let mut verify_rates = Vec::new();
    let mut verify_cpu = Cpu::default();
    for r in 1..=rounds {
        eprintln!("[round {r}/{rounds}] verify_log over the ledger stream ({total} events) ...");
        let c0 = Cpu::now(spid);
        let secs = verify(dyn_log.clone(), ring.clone(), total, "JetStream").await?;
        verify_rates.push(total as f64 / secs);
        verify_cpu.add_span(c0, Cpu::now(spid));
    }
    let verify_rate = median(&verify_rates);
    rows.push(Row {
        phase: "4. `verify_log` (JetStream)".into(),
        events: total,
        rate: verify_rate,
        note: format!(
            "target >= 40,000/s: **{}**; {}; {}",
            if verify_rate >= 40_000.0 {
                "met"
            } else {
                "NOT met"
            },
            verify_cpu.per_event(total * rounds),
            spread(&verify_rates)
        ),
    });

    // 5. Optional: embedded SQLite backend (one round).
    if args.sqlite_events > 0 {
        let dir = args
            .sqlite_dir
            .clone()
            .unwrap_or_else(std::env::temp_dir)
            .join(format!("authledger-bench-{run}"));
        std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        let path = dir.join("events.db");
        let result = async {
            eprintln!("[sqlite] append + verify: {} events ...", args.sqlite_events);
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
                rate: args.sqlite_events as f64 / secs,
                note: format!(
                    "one round; {} tasks x {} aggregates, one writer connection; latency p50 {} p99 {}",
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
                rate: args.sqlite_events as f64 / secs,
                note: "one round".into(),
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
        "nats-server {server_version} at {}; {} events per round, {rounds} rounds (median shown); \
         envelope {envelope_len} B (name padded by {pad} B); load average before {load_before}, after {}",
        args.nats_url,
        args.events,
        load_average()
    );
    println!();
    println!("| Phase | Events (per round) | Events/s (median) | Notes |");
    println!("|---|---:|---:|---|");
    for r in &rows {
        println!(
            "| {} | {} | {:.0} | {} |",
            r.phase,
            r.events,
            r.rate,
            r.note.trim_end_matches("; ")
        );
    }
    println!();
    println!(
        "ledger append / raw publish: {:.1}% (target >= 50%: {}); verify_log: {:.0}/s (target >= 40,000/s: {})",
        ratio * 100.0,
        if ratio >= 0.5 { "met" } else { "NOT met" },
        verify_rate,
        if verify_rate >= 40_000.0 { "met" } else { "NOT met" },
    );
    Ok(())
}
